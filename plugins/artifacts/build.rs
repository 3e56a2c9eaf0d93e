//! Builds every rule component of the repository for `wasm32-wasip2` and writes
//! `rules.rs`, a constant path per component.
//!
//! The components build with a nested `cargo rustc --crate-type cdylib` into their own
//! target directory (`target/rules`), so the outer build's lock is never contended and
//! the rule crates stay plain libraries for their native unit tests. Cargo's own
//! fingerprints make a rebuild with nothing changed take well under a second.

use std::env;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

/// (package, crate name) of every rule component.
const RULES: &[(&str, &str)] = &[
    ("sanctions-screening", "sanctions_screening"),
    ("limits", "limits"),
    ("velocity-risk", "velocity_risk"),
    ("rail-router", "rail_router"),
    ("misbehaving", "misbehaving"),
    ("escape", "escape"),
    ("preparing", "preparing"),
];

/// Rules built only for the tests, never installed among the examples.
const TEST_RULES: &[&str] = &["misbehaving", "escape", "preparing"];

const TARGET: &str = "wasm32-wasip2";

fn main() {
    let manifest_dir =
        PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let workspace = manifest_dir
        .join("../..")
        .canonicalize()
        .expect("the workspace root exists");
    for watched in [
        "wit",
        "plugins/sdk",
        "plugins/names",
        "plugins/sanctions-screening",
        "plugins/limits",
        "plugins/velocity-risk",
        "plugins/rail-router",
        "tests/rules",
        "Cargo.lock",
    ] {
        println!(
            "cargo:rerun-if-changed={}",
            workspace.join(watched).display()
        );
    }
    let target_dir = env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace.join("target"))
        .join("rules");
    let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut consts = String::new();
    for (package, crate_name) in RULES {
        let mut command = Command::new(&cargo);
        command
            .current_dir(&workspace)
            .args([
                "rustc",
                "--quiet",
                "--release",
                "--lib",
                "--crate-type",
                "cdylib",
            ])
            .args(["--package", package, "--target", TARGET])
            .arg("--target-dir")
            .arg(&target_dir);
        // The outer build's flags are for the host, not for the guest.
        for var in [
            "RUSTFLAGS",
            "CARGO_ENCODED_RUSTFLAGS",
            "CARGO_BUILD_TARGET",
            "CARGO_TARGET_DIR",
            "CARGO_MAKEFLAGS",
            "MAKEFLAGS",
            "MFLAGS",
            "RUSTC_WRAPPER",
            "RUSTC_WORKSPACE_WRAPPER",
        ] {
            command.env_remove(var);
        }
        // A small shadow stack keeps a rule's initial memory, and so its instantiation, small.
        command.env(
            "CARGO_TARGET_WASM32_WASIP2_RUSTFLAGS",
            "-C link-arg=-zstack-size=131072",
        );
        // No DWARF in the components: smaller files, faster compiles; the name section
        // stays, so traps still name the guest functions.
        command.env("CARGO_PROFILE_RELEASE_DEBUG", "false");
        // Optimised for size, as one unit: ≈10 % smaller components that compile ≈30 %
        // faster when they land (hot reload), at no measured cost per payment.
        command.env("CARGO_PROFILE_RELEASE_OPT_LEVEL", "s");
        command.env("CARGO_PROFILE_RELEASE_LTO", "true");
        command.env("CARGO_PROFILE_RELEASE_CODEGEN_UNITS", "1");
        let status = command
            .status()
            .unwrap_or_else(|e| panic!("cannot run cargo to build {package}: {e}"));
        if !status.success() {
            panic!(
                "building the rule component {package} for {TARGET} failed (the compiler said \
                 why above). If the target is \
                 missing, add it with: rustup target add {TARGET}"
            );
        }
        let wasm = target_dir
            .join(TARGET)
            .join("release")
            .join(format!("{crate_name}.wasm"));
        assert!(wasm.exists(), "{} was not produced", wasm.display());
        let _ = writeln!(
            consts,
            "/// The `{package}` rule component.\npub const {}: &str = {:?};",
            crate_name.to_uppercase(),
            wasm.display().to_string()
        );
    }
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    std::fs::write(out.join("rules.rs"), consts).expect("OUT_DIR is writable");
    install_examples(&workspace, &target_dir);
}

/// Copies the example rule components beside their manifests in `examples/rules`, so the
/// example rules directory is ready to run after any build of the workspace.
fn install_examples(workspace: &Path, target_dir: &Path) {
    let examples = workspace.join("examples/rules");
    // The test rules (misbehaving, escape) stay in target/rules.
    for (_, crate_name) in RULES
        .iter()
        .filter(|(package, _)| !TEST_RULES.contains(package))
    {
        let built = target_dir
            .join(TARGET)
            .join("release")
            .join(format!("{crate_name}.wasm"));
        let installed = examples.join(format!("{crate_name}.wasm"));
        let same = std::fs::read(&installed).ok() == std::fs::read(&built).ok();
        if !same {
            std::fs::copy(&built, &installed)
                .unwrap_or_else(|e| panic!("cannot install {}: {e}", installed.display()));
        }
    }
}
