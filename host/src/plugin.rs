//! Rule projects, for the people who write rules: `payrules plugin new` scaffolds one,
//! `plugin build` turns it into what a rules directory holds, and `plugin test` runs its
//! test vectors ([`crate::registry::vectors`]) in the real sandbox and reports each case.
//!
//! A project is a directory with the rule's manifest `NAME.toml`, its test vectors
//! `NAME.vectors.toml`, the lists its manifest names, and the source: a Rust crate
//! (`Cargo.toml`, using `payrules-sdk`) or a Python module (`rule.py`, built with
//! componentize-py). Building writes `dist/`: the component, the manifest, the vectors
//! and the lists, ready to copy into a rules directory.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::model::{RuleKind, RuleOutcome};
use crate::registry::vectors::FILE_SUFFIX;
use crate::registry::{Manifest, VectorsReport};
use crate::runtime::CONTRACT_VERSION;

/// The target rule components are built for.
pub const TARGET: &str = "wasm32-wasip2";
/// Where a build puts what a rules directory needs, inside the project.
pub const DIST: &str = "dist";
/// The flags rule components are built with unless the user sets their own: a small
/// shadow stack keeps the initial memory, and so each instantiation, small.
const WASM_RUSTFLAGS: &str = "-C link-arg=-zstack-size=131072";
/// The SDK of the checkout this binary was built from, the default `--sdk` while it exists.
const BUILT_SDK: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../plugins/sdk");
/// The module a Python rule project keeps its rule in.
pub const PYTHON_SOURCE: &str = "rule.py";
/// The componentize-py release Python rules are built and tested with.
pub const COMPONENTIZE_PY: &str = "componentize-py==0.25.1";
/// The contract's WIT files, as built into this binary: a Python build hands them to
/// componentize-py, and `payrules wit export` writes them for rule teams.
pub const WIT_FILES: [(&str, &str); 3] = [
    ("types.wit", include_str!("../../wit/types.wit")),
    (
        "capabilities.wit",
        include_str!("../../wit/capabilities.wit"),
    ),
    ("worlds.wit", include_str!("../../wit/worlds.wit")),
];

/// The language a rule project is written in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Language {
    /// A crate using `payrules-sdk`, built with cargo.
    Rust,
    /// A module `rule.py`, built with componentize-py.
    Python,
}

impl Language {
    /// Every language, by name.
    pub const ALL: [Language; 2] = [Language::Rust, Language::Python];

    /// The name `--lang` takes.
    pub fn name(self) -> &'static str {
        match self {
            Language::Rust => "rust",
            Language::Python => "python",
        }
    }

    /// The language of the project in `dir`, if it is one: a `Cargo.toml` makes it Rust,
    /// a `rule.py` Python.
    pub fn of_project(dir: &Path) -> Option<Language> {
        if dir.join("Cargo.toml").is_file() {
            Some(Language::Rust)
        } else if dir.join(PYTHON_SOURCE).is_file() {
            Some(Language::Python)
        } else {
            None
        }
    }
}

/// Why a project could not be made, read or built.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ProjectError(String);

fn error(message: impl Into<String>) -> ProjectError {
    ProjectError(message.into())
}

/// What `plugin new` makes.
pub struct NewProject<'a> {
    /// The rule's name: lower-case letters, digits and `-`.
    pub name: &'a str,
    /// Its kind.
    pub kind: RuleKind,
    /// Where (default: `./NAME`); must not exist or be empty.
    pub dir: &'a Path,
    /// What it is written in.
    pub language: Language,
    /// For Rust, the `payrules-sdk` crate to depend on (default: the checkout this binary
    /// was built from).
    pub sdk: Option<&'a Path>,
}

/// Scaffolds a rule project that builds and passes its own vectors as it is; returns
/// the files written.
pub fn new_project(project: &NewProject<'_>) -> Result<Vec<PathBuf>, ProjectError> {
    let name = project.name;
    let valid_name = name.len() <= 64
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !name.ends_with('-');
    if !valid_name {
        return Err(error(format!(
            "{name:?}: a rule name is 1 to 64 lower-case letters, digits and '-', starting \
             with a letter (it names the manifest, the component and the crate)"
        )));
    }
    if ["pipeline", "canary"].contains(&name) {
        return Err(error(format!(
            "{name:?}: {name}.toml in a rules directory is not a rule's manifest but the \
             {name} policy: choose another name"
        )));
    }
    let dir = project.dir;
    if dir.exists()
        && std::fs::read_dir(dir)
            .map_err(|e| error(format!("{}: {e}", dir.display())))?
            .next()
            .is_some()
    {
        return Err(error(format!(
            "{} exists and is not empty: choose another --dir",
            dir.display()
        )));
    }
    let sdk = match project.language {
        Language::Rust => sdk_dir(project.sdk)?,
        Language::Python if project.sdk.is_some() => {
            return Err(error(
                "--sdk names the Rust SDK crate; a Python project needs none \
                 (`payrules plugin build` writes its helpers beside it)",
            ));
        }
        Language::Python => None,
    };
    let kind = project.kind.name();
    let source_path = match project.language {
        Language::Rust => "src/lib.rs",
        Language::Python => PYTHON_SOURCE,
    };
    let fill = |template: &str| {
        template
            .replace("{{name}}", name)
            .replace("{{kind}}", kind)
            .replace("{{sdk_version}}", CONTRACT_VERSION)
            .replace("{{sdk_override}}", &sdk_override(sdk.as_deref()))
            .replace("{{source}}", source_path)
    };
    let (manifest, cases) = match project.kind {
        RuleKind::Compliance => (
            include_str!("../templates/compliance.toml.tmpl"),
            include_str!("../templates/compliance.vectors.tmpl"),
        ),
        RuleKind::Fraud => (
            include_str!("../templates/fraud.toml.tmpl"),
            include_str!("../templates/fraud.vectors.tmpl"),
        ),
        RuleKind::Routing => (
            include_str!("../templates/routing.toml.tmpl"),
            include_str!("../templates/routing.vectors.tmpl"),
        ),
    };
    let source = match (project.language, project.kind) {
        (Language::Rust, RuleKind::Compliance) => {
            include_str!("../templates/rust/compliance.rs.tmpl")
        }
        (Language::Rust, RuleKind::Fraud) => include_str!("../templates/rust/fraud.rs.tmpl"),
        (Language::Rust, RuleKind::Routing) => include_str!("../templates/rust/routing.rs.tmpl"),
        (Language::Python, RuleKind::Compliance) => {
            include_str!("../templates/python/compliance.py.tmpl")
        }
        (Language::Python, RuleKind::Fraud) => include_str!("../templates/python/fraud.py.tmpl"),
        (Language::Python, RuleKind::Routing) => {
            include_str!("../templates/python/routing.py.tmpl")
        }
    };
    let (readme_extra, ignored) = match project.language {
        Language::Rust => (
            include_str!("../templates/rust/README.extra.tmpl"),
            "/target/\n/dist/\n",
        ),
        Language::Python => (
            include_str!("../templates/python/README.extra.tmpl"),
            "/build/\n/dist/\n__pycache__/\n",
        ),
    };
    let mut files = vec![
        (PathBuf::from(source_path), fill(source)),
        (PathBuf::from(format!("{name}.toml")), fill(manifest)),
        (
            PathBuf::from(format!("{name}{FILE_SUFFIX}")),
            fill(include_str!("../templates/payment.toml.tmpl")) + &fill(cases),
        ),
        (
            PathBuf::from("README.md"),
            fill(include_str!("../templates/README.md.tmpl")) + &fill(readme_extra),
        ),
        (PathBuf::from(".gitignore"), ignored.to_owned()),
    ];
    if project.language == Language::Rust {
        files.push((
            PathBuf::from("Cargo.toml"),
            fill(include_str!("../templates/rust/Cargo.toml.tmpl")),
        ));
    }
    let mut written = Vec::with_capacity(files.len());
    for (relative, text) in files {
        let path = dir.join(relative);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| error(format!("{}: {e}", parent.display())))?;
        }
        std::fs::write(&path, text).map_err(|e| error(format!("{}: {e}", path.display())))?;
        written.push(path);
    }
    Ok(written)
}

/// The `[patch.crates-io]` lines that build a project against the SDK crate in `sdk` (a
/// payrules checkout's) in place of the published one; none without.
fn sdk_override(sdk: Option<&Path>) -> String {
    let Some(sdk) = sdk else {
        return String::new();
    };
    format!(
        "\n# The SDK of a payrules checkout in place of the published crate (`payrules plugin new\n\
         # --sdk`, or the checkout payrules was built from): delete these two lines to build\n\
         # against the published payrules-sdk.\n\
         [patch.crates-io]\npayrules-sdk = {{ path = {:?} }}\n",
        sdk.display().to_string()
    )
}

/// The Rust SDK crate to build against in place of the published one: `--sdk`, or the
/// checkout this binary was built from if it is still there; none (the published crate,
/// by version) otherwise.
fn sdk_dir(given: Option<&Path>) -> Result<Option<PathBuf>, ProjectError> {
    let sdk = match given {
        Some(given) => given.to_owned(),
        None if Path::new(BUILT_SDK).join("Cargo.toml").is_file() => PathBuf::from(BUILT_SDK),
        None => return Ok(None),
    };
    let sdk = sdk.canonicalize().map_err(|e| {
        error(format!(
            "the payrules SDK is not at {} ({e}): pass --sdk with the path of \
             plugins/sdk in a payrules checkout",
            sdk.display()
        ))
    })?;
    if !sdk.join("Cargo.toml").is_file() {
        return Err(error(format!(
            "{} holds no Cargo.toml: --sdk must be the plugins/sdk directory of a payrules checkout",
            sdk.display()
        )));
    }
    Ok(Some(sdk))
}

/// Whether `dir` is a rule project (Rust or Python) rather than a rules directory.
pub fn is_project(dir: &Path) -> bool {
    Language::of_project(dir).is_some()
}

/// A built project.
#[derive(Debug)]
pub struct Built {
    /// The rule's name.
    pub name: String,
    /// `DIR/dist`: what to copy into a rules directory.
    pub dist: PathBuf,
    /// The component in `dist`.
    pub component: PathBuf,
    /// Its size.
    pub component_bytes: u64,
}

/// Builds the project in `dir` into a component and writes `dir/dist`. Installs nothing:
/// if a tool or the target is missing, the error says which command adds it. The
/// builder's own output goes to this process's stderr.
pub fn build(dir: &Path) -> Result<Built, ProjectError> {
    let Some(language) = Language::of_project(dir) else {
        return Err(error(format!(
            "{} has neither Cargo.toml nor {PYTHON_SOURCE}: not a rule project (make one \
             with payrules plugin new)",
            dir.display()
        )));
    };
    let (name, manifest_text, manifest) = project_manifest(dir)?;
    let built = match language {
        Language::Rust => build_rust(dir)?,
        Language::Python => build_python(dir, &manifest)?,
    };
    let dist = dir.join(DIST);
    if dist.exists() {
        std::fs::remove_dir_all(&dist).map_err(|e| error(format!("{}: {e}", dist.display())))?;
    }
    let component = dist.join(&manifest.component);
    copy(&built, &component)?;
    std::fs::write(dist.join(format!("{name}.toml")), manifest_text)
        .map_err(|e| error(format!("{}: {e}", dist.display())))?;
    let vectors = format!("{name}{FILE_SUFFIX}");
    if dir.join(&vectors).is_file() {
        copy(&dir.join(&vectors), &dist.join(&vectors))?;
    }
    for file in manifest.lists.values() {
        copy(&dir.join(file), &dist.join(file))?;
    }
    let component_bytes = std::fs::metadata(&component)
        .map_err(|e| error(format!("{}: {e}", component.display())))?
        .len();
    Ok(Built {
        name,
        dist,
        component,
        component_bytes,
    })
}

/// `cargo build --release --target wasm32-wasip2`; the component it made.
fn build_rust(dir: &Path) -> Result<PathBuf, ProjectError> {
    let package = package_name(dir)?;
    check_target_installed()?;
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    // Absolute: cargo runs in `dir`, while a relative `dir` (and a relative
    // CARGO_TARGET_DIR) are relative to where the user stands.
    let target_dir = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| dir.join("target"));
    let target_dir = std::path::absolute(&target_dir)
        .map_err(|e| error(format!("{}: {e}", target_dir.display())))?;
    let mut command = Command::new(&cargo);
    command
        .current_dir(dir)
        .args(["build", "--release", "--lib", "--target", TARGET])
        .arg("--target-dir")
        .arg(&target_dir);
    if std::env::var_os("CARGO_TARGET_WASM32_WASIP2_RUSTFLAGS").is_none() {
        command.env("CARGO_TARGET_WASM32_WASIP2_RUSTFLAGS", WASM_RUSTFLAGS);
    }
    let status = command.status().map_err(|e| {
        error(format!(
            "cannot run {} ({e}): install Rust with rustup (https://rustup.rs), then \
             rustup target add {TARGET}",
            cargo.to_string_lossy()
        ))
    })?;
    if !status.success() {
        return Err(error(format!(
            "cargo could not build {} for {TARGET} (it said why above)",
            dir.display()
        )));
    }
    let built = target_dir
        .join(TARGET)
        .join("release")
        .join(format!("{}.wasm", package.replace('-', "_")));
    if !built.is_file() {
        return Err(error(format!(
            "cargo built no component at {}: is the crate's [lib] crate-type \"cdylib\"?",
            built.display()
        )));
    }
    Ok(built)
}

/// Where a Python build writes what it generates, inside the project.
const PYTHON_BUILD: &str = "build";

/// The WIT world of one Python rule: the capabilities its manifest grants and the
/// interface of its kind. componentize-py imports every interface of the world it is
/// given, and the loader refuses an import the manifest does not grant, so the world is
/// made from the manifest rather than taken from `worlds.wit`.
pub fn python_world(manifest: &Manifest) -> String {
    let (package, version) = ("payrules:rules", CONTRACT_VERSION);
    let mut world = String::from(
        "// Written by `payrules plugin build` from the rule's manifest: do not edit.\n\
         package local:rule;\n\nworld payrules-rule {\n",
    );
    for capability in &manifest.capabilities {
        world.push_str(&format!(
            "    import {package}/{}@{version};\n",
            capability.name()
        ));
    }
    world.push_str(&format!(
        "    export {package}/{}@{version};\n}}\n",
        manifest.kind.name()
    ));
    world
}

/// The module componentize-py builds from: it exports the rule's class through a wrapper
/// that logs the exception ending a call (the rule has no stderr for a traceback).
const PYTHON_ENTRY: &str = "payrules_entry";

/// The entry module for a rule of `kind`.
fn python_entry(kind: RuleKind) -> String {
    let (class, method, parameters) = match kind {
        RuleKind::Compliance => ("Compliance", "check", "payment"),
        RuleKind::Fraud => ("Fraud", "score", "payment"),
        RuleKind::Routing => ("Routing", "route", "payment, candidates"),
    };
    include_str!("../templates/python/entry.py.tmpl")
        .replace("{{class}}", class)
        .replace("{{method}}", method)
        .replace("{{parameters}}", parameters)
}

/// `componentize-py --stub-wasi` on `rule.py`, against the contract's WIT and a world made
/// from the manifest; the component it made.
fn build_python(dir: &Path, manifest: &Manifest) -> Result<PathBuf, ProjectError> {
    // Absolute: componentize-py runs in `dir`.
    let build = std::path::absolute(dir.join(PYTHON_BUILD))
        .map_err(|e| error(format!("{}: {e}", dir.display())))?;
    let write = |relative: &str, text: &str| {
        let path = build.join(relative);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| error(format!("{}: {e}", parent.display())))?;
        }
        std::fs::write(&path, text).map_err(|e| error(format!("{}: {e}", path.display())))
    };
    for (file, text) in WIT_FILES {
        write(&format!("wit/deps/payrules-rules/{file}"), text)?;
    }
    write("wit/world.wit", &python_world(manifest))?;
    write(
        "python/payrules.py",
        include_str!("../templates/python/payrules.py"),
    )?;
    write(
        &format!("python/{PYTHON_ENTRY}.py"),
        &python_entry(manifest.kind),
    )?;
    let component = build.join("rule.wasm");
    let program = "componentize-py";
    // From the project's directory, so `rule.py` (and any module beside it) is found.
    let status = Command::new(program)
        .current_dir(dir)
        .arg("-d")
        .arg(build.join("wit"))
        .args([
            "-w",
            "local:rule/payrules-rule",
            "componentize",
            PYTHON_ENTRY,
        ])
        .args(["-p", "."])
        .arg("-p")
        .arg(build.join("python"))
        .arg("--stub-wasi")
        .arg("-o")
        .arg(&component)
        .status()
        .map_err(|e| {
            error(format!(
                "cannot run {program} ({e}): install it with: pip install {COMPONENTIZE_PY}"
            ))
        })?;
    if !status.success() {
        return Err(error(format!(
            "componentize-py could not build {} (it said why above)",
            dir.display()
        )));
    }
    Ok(component)
}

/// The project's manifest: the one `NAME.toml` in `dir` that is neither `Cargo.toml` nor
/// a vectors file.
fn project_manifest(dir: &Path) -> Result<(String, String, Manifest), ProjectError> {
    let entries = std::fs::read_dir(dir).map_err(|e| error(format!("{}: {e}", dir.display())))?;
    let mut found = Vec::new();
    for entry in entries {
        let path = entry
            .map_err(|e| error(format!("{}: {e}", dir.display())))?
            .path();
        let Some(file) = path.file_name().and_then(|name| name.to_str()) else {
            continue;
        };
        if file.ends_with(".toml")
            && file != "Cargo.toml"
            && file != "pyproject.toml"
            && !file.ends_with(FILE_SUFFIX)
            && path.is_file()
        {
            found.push((file.trim_end_matches(".toml").to_owned(), path));
        }
    }
    let (name, path) = match found.len() {
        1 => found.remove(0),
        0 => {
            return Err(error(format!(
                "{} holds no rule manifest (NAME.toml beside the source)",
                dir.display()
            )));
        }
        _ => {
            return Err(error(format!(
                "{} holds {} manifests ({}): a project is one rule",
                dir.display(),
                found.len(),
                found
                    .iter()
                    .map(|(name, _)| format!("{name}.toml"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
    };
    let text = std::fs::read_to_string(&path)
        .map_err(|e| error(format!("{}: cannot read it: {e}", path.display())))?;
    let manifest =
        Manifest::parse(&name, &text).map_err(|e| error(format!("{}: {e}", path.display())))?;
    Ok((name, text, manifest))
}

fn package_name(dir: &Path) -> Result<String, ProjectError> {
    let path = dir.join("Cargo.toml");
    let text = std::fs::read_to_string(&path)
        .map_err(|e| error(format!("{}: cannot read it: {e}", path.display())))?;
    let table: toml::Table =
        toml::from_str(&text).map_err(|e| error(format!("{}: {e}", path.display())))?;
    table
        .get("package")
        .and_then(|package| package.get("name"))
        .and_then(|name| name.as_str())
        .map(str::to_owned)
        .ok_or_else(|| error(format!("{}: no [package] name", path.display())))
}

/// Fails with the command that adds the target when rustup says it is not installed. Without
/// rustup (a distribution's Rust) the build itself will say.
fn check_target_installed() -> Result<(), ProjectError> {
    let Ok(output) = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output()
    else {
        return Ok(());
    };
    let installed = String::from_utf8_lossy(&output.stdout);
    if output.status.success() && !installed.lines().any(|line| line.trim() == TARGET) {
        return Err(error(format!(
            "the {TARGET} target is not installed; add it with: rustup target add {TARGET}"
        )));
    }
    Ok(())
}

fn copy(from: &Path, to: &Path) -> Result<(), ProjectError> {
    if let Some(parent) = to.parent() {
        std::fs::create_dir_all(parent).map_err(|e| error(format!("{}: {e}", parent.display())))?;
    }
    std::fs::copy(from, to).map(drop).map_err(|e| {
        error(format!(
            "cannot copy {} to {}: {e}",
            from.display(),
            to.display()
        ))
    })
}

/// Writes the report of a vectors run: each case with its answer, fuel and time, and what
/// did not hold under each failing one. Returns (passed, failed).
pub fn write_report(
    out: &mut impl Write,
    reports: &[VectorsReport],
) -> std::io::Result<(usize, usize)> {
    let (mut passed, mut failed) = (0, 0);
    for report in reports {
        writeln!(out, "{} ({})", report.rule, report.path.display())?;
        // One line per answer: a failure's whole message (a wasm backtrace) comes once,
        // under the case.
        let first_line = |text: String| match text.split_once('\n') {
            Some((first, _)) => format!("{} …", first.trim_end()),
            None => text,
        };
        let answers: Vec<String> = report
            .cases
            .iter()
            .map(|case| first_line(case.outcome.summary()))
            .collect();
        let width = |texts: &mut dyn Iterator<Item = &str>| {
            texts.map(|text| text.chars().count()).max().unwrap_or(0)
        };
        let name_width = width(&mut report.cases.iter().map(|case| case.name.as_str()));
        let answer_width = width(&mut answers.iter().map(String::as_str));
        for (case, answer) in report.cases.iter().zip(&answers) {
            let mark = if case.passed() { "ok  " } else { "FAIL" };
            writeln!(
                out,
                "  {mark}  {:<name_width$}  {answer:<answer_width$}  fuel {:>9}  {:>6} µs \
                 (instantiation {} µs)",
                case.name,
                case.fuel_used,
                case.duration.as_micros(),
                case.instantiation.as_micros(),
            )?;
            for mismatch in &case.mismatches {
                writeln!(out, "          - {}", first_line(mismatch.clone()))?;
            }
            // What a failing rule logged is often why (a Python rule logs the exception
            // that ended it), then how it failed.
            if !case.passed() {
                for line in &case.logs {
                    writeln!(out, "          log {}: {}", line.level, line.message)?;
                }
                if let RuleOutcome::Failed { message, .. } = &case.outcome
                    && message.contains('\n')
                {
                    for line in message.lines() {
                        writeln!(out, "          | {line}")?;
                    }
                }
            }
            if case.passed() {
                passed += 1;
            } else {
                failed += 1;
            }
        }
    }
    writeln!(
        out,
        "{passed} passed, {failed} failed ({} rules with vectors)",
        reports.len()
    )?;
    Ok((passed, failed))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_python_rules_world_imports_exactly_what_its_manifest_grants() {
        let manifest = Manifest::parse(
            "velocity-risk",
            "kind = \"fraud\"\ncapabilities = [\"velocity\", \"config\"]\n",
        )
        .unwrap();
        assert_eq!(
            python_world(&manifest),
            "// Written by `payrules plugin build` from the rule's manifest: do not edit.\n\
             package local:rule;\n\n\
             world payrules-rule {\n    \
                 import payrules:rules/velocity@0.1.0;\n    \
                 import payrules:rules/config@0.1.0;\n    \
                 export payrules:rules/fraud@0.1.0;\n}\n"
        );
        let bare = Manifest::parse("x", "kind = \"routing\"\n").unwrap();
        assert!(!python_world(&bare).contains("import"));
    }

    /// The version the host checks components against, the WIT files' package and the
    /// SDK crate's version are one.
    #[test]
    fn the_contract_the_wit_files_declare_and_the_sdk_version_are_the_hosts() {
        assert!(
            WIT_FILES[0]
                .1
                .contains(&format!("package payrules:rules@{CONTRACT_VERSION};")),
            "wit/types.wit"
        );
        let sdk: toml::Table =
            toml::from_str(include_str!("../../plugins/sdk/Cargo.toml")).unwrap();
        assert_eq!(
            sdk["package"]["version"].as_str(),
            Some(CONTRACT_VERSION),
            "plugins/sdk/Cargo.toml"
        );
    }
}
