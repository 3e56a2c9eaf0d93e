//! What every test needs: one shared runtime, rules directories made to order, payments.

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use payrules::model::{Decision, Payment};
use payrules::pipeline::Pipeline;
use payrules::registry::RuleSet;
use payrules::runtime::Runtime;
use payrules::velocity::VelocityBook;

/// Tuesday 2026-11-24 10:00 UTC: a weekday morning, before every cut-off.
pub const TUESDAY_MORNING_UNIX_MS: i64 = 1_795_514_400_000;

/// One engine for the whole test binary, as in production (its pool reserves address
/// space for a thousand instances; one per test would be wasteful).
pub fn runtime() -> Arc<Runtime> {
    static RUNTIME: OnceLock<Arc<Runtime>> = OnceLock::new();
    Arc::clone(RUNTIME.get_or_init(|| Arc::new(Runtime::new().expect("the runtime starts"))))
}

/// The workspace root.
pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The example rules directory.
pub fn example_rules() -> PathBuf {
    workspace().join("examples/rules")
}

/// Copies a directory tree.
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let path = entry.unwrap().path();
        let target = to.join(path.file_name().unwrap());
        if path.is_dir() {
            copy_dir(&path, &target);
        } else {
            std::fs::copy(&path, &target).unwrap();
        }
    }
}

/// An example payment by file name.
pub fn example_payment(name: &str) -> Payment {
    let path = workspace().join("examples/payments").join(name);
    let text = std::fs::read_to_string(&path).expect("the example payment exists");
    Payment::from_json(&text).expect("the example payment is valid")
}

/// A fresh pipeline with an empty velocity book.
pub fn pipeline() -> Pipeline {
    Pipeline::new(runtime(), Arc::new(VelocityBook::new()))
}

/// Loads a rules directory with the shared runtime.
pub fn load(dir: &Path) -> RuleSet {
    RuleSet::load(dir, &runtime()).unwrap_or_else(|e| panic!("the rules load: {e}"))
}

/// A temporary rules directory.
pub struct RulesDir {
    dir: tempfile::TempDir,
}

impl RulesDir {
    /// An empty one.
    pub fn new() -> Self {
        RulesDir {
            dir: tempfile::tempdir().expect("a temporary directory"),
        }
    }

    /// Its path.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Adds a rule: `NAME.toml` with `manifest`, and the component at `wasm` as `NAME.wasm`.
    pub fn rule(self, name: &str, manifest: &str, wasm: &str) -> Self {
        std::fs::write(self.path().join(format!("{name}.toml")), manifest).expect("write manifest");
        let component = format!("{}.wasm", name.replace('-', "_"));
        std::fs::copy(wasm, self.path().join(component)).expect("copy component");
        self
    }

    /// Adds any file.
    pub fn file(self, name: &str, contents: &[u8]) -> Self {
        let path = self.path().join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("create parent");
        }
        std::fs::write(path, contents).expect("write file");
        self
    }

    /// Adds the misbehaving rule as `NAME`, behaving as `behaviour`, with extra manifest
    /// lines (limits, failure policy).
    pub fn misbehaving(self, name: &str, behaviour: &str, extra: &str) -> Self {
        let manifest = format!(
            "kind = \"compliance\"\ncapabilities = [\"config\", \"log\"]\n{extra}\n[config]\nbehaviour = \"{behaviour}\"\n"
        );
        self.rule(name, &manifest, payrules_rule_artifacts::MISBEHAVING)
    }

    /// Loads it.
    pub fn load(&self) -> RuleSet {
        load(self.path())
    }

    /// Loads it, expecting a refusal, and returns the error text.
    pub fn load_error(&self) -> String {
        match RuleSet::load(self.path(), &runtime()) {
            Ok(_) => panic!("the rules directory should have been refused"),
            Err(error) => error.to_string(),
        }
    }
}

/// Decides one example payment with `rules` on Tuesday morning.
pub fn decide(pipeline: &Pipeline, rules: &RuleSet, payment: &Payment) -> Decision {
    pipeline.evaluate(rules, payment, "pay_test", TUESDAY_MORNING_UNIX_MS)
}
