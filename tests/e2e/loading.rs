//! Rules directories that must be refused, each with the file at fault and why.

use crate::support::RulesDir;
use payrules_rule_artifacts::{ESCAPE, LIMITS, MISBEHAVING, SANCTIONS_SCREENING, VELOCITY_RISK};

#[test]
fn a_component_that_reaches_for_files_or_the_wall_clock_is_refused() {
    let error = RulesDir::new()
        .rule("escape", "kind = \"compliance\"\n", ESCAPE)
        .load_error();
    assert!(error.contains("escape.wasm"), "{error}");
    assert!(
        error.contains("wasi:filesystem") || error.contains("wasi:clocks"),
        "the refused import is named: {error}"
    );
    assert!(error.contains("no such capability"), "{error}");
}

#[test]
fn a_component_that_imports_a_capability_its_manifest_does_not_grant_is_refused() {
    let error = RulesDir::new()
        .rule("limits", "kind = \"compliance\"\n", LIMITS)
        .load_error();
    assert!(
        error.contains("limits.wasm") && error.contains("\"config\" capability"),
        "{error}"
    );
}

#[test]
fn a_component_of_another_world_is_refused() {
    let manifest = "kind = \"fraud\"\ncapabilities = [\"config\"]\n";
    let error = RulesDir::new()
        .rule("limits", manifest, LIMITS)
        .load_error();
    assert!(
        error.contains("does not export the fraud interface"),
        "{error}"
    );
}

/// A rule built against another version of the contract (here the limits component with
/// every `payrules:rules/...@0.1.0` name made `@0.2.0`, the same length) is refused with
/// both versions and the SDK to rebuild with, not with a linker's message.
#[test]
fn a_component_built_against_another_contract_version_is_refused_naming_both() {
    let mut wasm = std::fs::read(LIMITS).unwrap();
    let mut renamed = 0;
    let prefix = b"payrules:rules/";
    let mut at = 0;
    while let Some(found) = wasm[at..].windows(prefix.len()).position(|w| w == prefix) {
        let start = at + found + prefix.len();
        let name_end = start + wasm[start..].iter().position(|b| *b == b'@').unwrap();
        assert_eq!(&wasm[name_end..name_end + 6], b"@0.1.0");
        wasm[name_end + 3] = b'2';
        renamed += 1;
        at = name_end;
    }
    assert!(renamed >= 3, "the component names the contract");
    let error = RulesDir::new()
        .file(
            "limits.toml",
            b"kind = \"compliance\"\ncapabilities = [\"config\"]\n",
        )
        .file("limits.wasm", &wasm)
        .load_error();
    assert!(
        error.contains("limits.wasm")
            && error.contains("@0.2.0")
            && error.contains("speaks payrules:rules@0.1.0")
            && error.contains("rebuild it with payrules-sdk 0.1.0"),
        "{error}"
    );
}

#[test]
fn a_corrupt_component_is_refused() {
    let dir = RulesDir::new()
        .file("broken.toml", b"kind = \"compliance\"\n")
        .file("broken.wasm", b"\0asm garbage");
    let error = dir.load_error();
    assert!(
        error.contains("broken.wasm") && error.contains("not a valid WebAssembly component"),
        "{error}"
    );
}

#[test]
fn a_manifest_without_its_component_is_refused() {
    let error = RulesDir::new()
        .file("ghost.toml", b"kind = \"compliance\"\n")
        .load_error();
    assert!(
        error.contains("ghost.wasm") && error.contains("cannot read it"),
        "{error}"
    );
}

#[test]
fn a_manifest_with_a_syntax_error_is_refused_with_its_line() {
    let dir = RulesDir::new().rule("misbehaving", "kind = \"compliance\n", MISBEHAVING);
    let error = dir.load_error();
    assert!(
        error.contains("misbehaving.toml") && error.contains("line 1"),
        "{error}"
    );
}

#[test]
fn a_missing_list_file_is_refused() {
    let manifest = "kind = \"compliance\"\ncapabilities = [\"lists\", \"config\"]\n[lists]\nsanctions = \"lists/none.csv\"\n";
    let error = RulesDir::new()
        .rule("sanctions-screening", manifest, SANCTIONS_SCREENING)
        .load_error();
    assert!(error.contains("none.csv"), "{error}");
}

#[test]
fn a_bad_pipeline_policy_is_refused() {
    let manifest = "kind = \"fraud\"\ncapabilities = [\"velocity\", \"config\"]\n";
    let dir = RulesDir::new()
        .rule("velocity-risk", manifest, VELOCITY_RISK)
        .file(
            "pipeline.toml",
            b"[fraud]\nreview-at = 950\nreject-at = 900\n",
        );
    let error = dir.load_error();
    assert!(
        error.contains("pipeline.toml") && error.contains("review-at"),
        "{error}"
    );
}

#[test]
fn the_rule_set_version_changes_with_any_rule_manifest_or_list() {
    let manifest = "kind = \"compliance\"\ncapabilities = [\"lists\", \"config\"]\n[lists]\nsanctions = \"sdn.csv\"\n";
    let base = |csv: &[u8], manifest: &str| {
        RulesDir::new()
            .rule("sanctions-screening", manifest, SANCTIONS_SCREENING)
            .file("sdn.csv", csv)
            .load()
            .version
    };
    let original = base(b"id,name\n1,ACME\n", manifest);
    assert_eq!(
        original,
        base(b"id,name\n1,ACME\n", manifest),
        "the same content has the same version"
    );
    assert_ne!(
        original,
        base(b"id,name\n1,ACME\n2,OTHER\n", manifest),
        "a list change is a new version"
    );
    let config_change = format!("{manifest}[config]\nstrong-match = 950\n");
    assert_ne!(
        original,
        base(b"id,name\n1,ACME\n", &config_change),
        "a manifest change is a new version"
    );
}

/// A reload reuses a list whose file did not change (its index and the answers it
/// remembers with it) and reads one whose file changed; the two rules naming one file
/// share one list.
#[test]
fn a_reload_reuses_a_list_whose_file_did_not_change() {
    let manifest = "kind = \"compliance\"\ncapabilities = [\"lists\", \"config\"]\n[lists]\nsanctions = \"sdn.csv\"\n";
    let dir = RulesDir::new()
        .rule("sanctions-screening", manifest, SANCTIONS_SCREENING)
        .rule("second-screening", manifest, SANCTIONS_SCREENING)
        .file("sdn.csv", b"id,name\n1,ACME TRADING\n");
    let runtime = crate::support::runtime();
    let list = |set: &payrules::registry::RuleSet, rule: &str| {
        let rule = set
            .rules()
            .iter()
            .find(|r| r.manifest.name == rule)
            .expect("the rule is loaded");
        std::sync::Arc::clone(&rule.context.lists["sanctions"])
    };
    let first = payrules::registry::RuleSet::load(dir.path(), &runtime).expect("loads");
    assert!(std::sync::Arc::ptr_eq(
        &list(&first, "sanctions-screening"),
        &list(&first, "second-screening")
    ));
    let again = payrules::registry::RuleSet::load_reusing(dir.path(), &runtime, Some(&first))
        .expect("reloads");
    assert!(
        std::sync::Arc::ptr_eq(
            &list(&first, "sanctions-screening"),
            &list(&again, "sanctions-screening")
        ),
        "an unchanged list is reused"
    );
    let fresh = payrules::registry::RuleSet::load(dir.path(), &runtime).expect("loads");
    assert!(!std::sync::Arc::ptr_eq(
        &list(&first, "sanctions-screening"),
        &list(&fresh, "sanctions-screening")
    ));
    let dir = dir.file("sdn.csv", b"id,name\n1,ACME TRADING\n2,OTHER HOLDING\n");
    let changed = payrules::registry::RuleSet::load_reusing(dir.path(), &runtime, Some(&again))
        .expect("reloads");
    let reread = list(&changed, "sanctions-screening");
    assert!(!std::sync::Arc::ptr_eq(
        &list(&again, "sanctions-screening"),
        &reread
    ));
    assert_eq!(reread.len(), 2, "the changed file is read");
}

#[test]
fn a_component_that_compiles_slower_than_the_bound_is_refused() {
    let dir = RulesDir::new().rule(
        "velocity-risk",
        "kind = \"fraud\"\ncapabilities = [\"velocity\", \"config\"]\n",
        VELOCITY_RISK,
    );
    // A fresh runtime, so no compiled code is reused; ≈0.2 s to compile against 1 ms.
    let hurried = payrules::runtime::Runtime::new()
        .unwrap()
        .with_compile_time_per_mib(std::time::Duration::from_millis(1));
    let error = payrules::registry::RuleSet::load(dir.path(), &hurried)
        .err()
        .expect("refused")
        .to_string();
    assert!(
        error.contains("velocity_risk.wasm: compiling it took longer than 1 ms"),
        "{error}"
    );
    // The default bound leaves room for it.
    dir.load();
}

#[test]
fn a_component_compiled_once_is_loaded_from_the_code_cache_after() {
    let dir = RulesDir::new().rule(
        "misbehaving",
        "kind = \"compliance\"\ncapabilities = [\"config\", \"log\"]\n",
        MISBEHAVING,
    );
    let cache = tempfile::tempdir().unwrap();
    let with_cache = |limit_ms| {
        payrules::runtime::Runtime::new()
            .unwrap()
            .with_compile_time_per_mib(std::time::Duration::from_millis(limit_ms))
            .with_code_cache(cache.path(), payrules::config::CODE_CACHE_BYTES_MAX_DEFAULT)
            .unwrap()
    };
    let cached = |dir: &std::path::Path| -> Vec<std::path::PathBuf> {
        std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "cwasm"))
            .collect()
    };
    // Compiled once (a fresh runtime, the default bound), and kept.
    payrules::registry::RuleSet::load(dir.path(), &with_cache(10_000)).expect("loads");
    let files = cached(cache.path());
    assert_eq!(files.len(), 1, "{files:?}");
    // Another runtime that could not compile it in 1 ms loads it: from the cache.
    payrules::registry::RuleSet::load(dir.path(), &with_cache(1)).expect("loaded from the cache");
    // A damaged cache file is not used: compiled again, and replaced.
    std::fs::write(&files[0], b"not compiled code").unwrap();
    let error = payrules::registry::RuleSet::load(dir.path(), &with_cache(1))
        .err()
        .expect("compiles again, which 1 ms does not allow")
        .to_string();
    assert!(
        error.contains("compiling it took longer than 1 ms"),
        "{error}"
    );
    payrules::registry::RuleSet::load(dir.path(), &with_cache(10_000)).expect("recompiled");
    payrules::registry::RuleSet::load(dir.path(), &with_cache(1)).expect("cached again");

    // A rule that prepares keeps both its compiles (the component as Wizer instruments
    // it, and as prepared: the same bytes every time), so a restart compiles neither.
    let prepared = RulesDir::new().rule(
        "velocity-risk",
        "kind = \"fraud\"\ncapabilities = [\"velocity\", \"config\"]\n",
        VELOCITY_RISK,
    );
    let before = cached(cache.path()).len();
    let set = payrules::registry::RuleSet::load(prepared.path(), &with_cache(10_000)).unwrap();
    assert!(set.rules()[0].compiled.prepared());
    assert_eq!(cached(cache.path()).len(), before + 2);
    payrules::registry::RuleSet::load(prepared.path(), &with_cache(1))
        .expect("prepared again from the cache, with nothing to compile");
}

#[test]
fn the_code_cache_keeps_the_most_recently_used_code_within_its_bound() {
    let rule = |name: &str, kind: &str, capabilities: &str, wasm: &str| {
        RulesDir::new().rule(
            name,
            &format!("kind = \"{kind}\"\ncapabilities = [{capabilities}]\n"),
            wasm,
        )
    };
    let misbehaving = rule(
        "misbehaving",
        "compliance",
        "\"config\", \"log\"",
        MISBEHAVING,
    );
    let limits = rule("limits", "compliance", "\"config\"", LIMITS);
    let sanctions = rule(
        "sanctions-screening",
        "compliance",
        "\"lists\", \"config\"",
        SANCTIONS_SCREENING,
    );
    let cache = tempfile::tempdir().unwrap();
    let files = || -> Vec<(String, u64)> {
        let mut files: Vec<_> = std::fs::read_dir(cache.path())
            .unwrap()
            .map(|e| e.unwrap())
            .map(|e| {
                let len = e.metadata().unwrap().len();
                (e.file_name().to_string_lossy().into_owned(), len)
            })
            .collect();
        files.sort();
        files
    };
    let runtime = |bytes_max: u64, compile_ms: u64| {
        payrules::runtime::Runtime::new()
            .unwrap()
            .with_compile_time_per_mib(std::time::Duration::from_millis(compile_ms))
            .with_code_cache(cache.path(), bytes_max)
            .unwrap()
    };
    let compile = |dir: &RulesDir, bytes_max: u64| {
        payrules::registry::RuleSet::load(dir.path(), &runtime(bytes_max, 10_000))
            .unwrap_or_else(|e| panic!("loads: {e}"));
    };
    let from_cache = |dir: &RulesDir, bytes_max: u64| {
        payrules::registry::RuleSet::load(dir.path(), &runtime(bytes_max, 1)).is_ok()
    };
    // Each rule's compiled size, measured in a cache of its own.
    let compiled_bytes = |dir: &RulesDir| -> u64 {
        let scratch = tempfile::tempdir().unwrap();
        let runtime = payrules::runtime::Runtime::new()
            .unwrap()
            .with_code_cache(scratch.path(), u64::MAX)
            .unwrap();
        payrules::registry::RuleSet::load(dir.path(), &runtime).unwrap();
        std::fs::read_dir(scratch.path())
            .unwrap()
            .map(|e| e.unwrap().metadata().unwrap().len())
            .sum()
    };
    let (misbehaving_bytes, limits_bytes, sanctions_bytes) = (
        compiled_bytes(&misbehaving),
        compiled_bytes(&limits),
        compiled_bytes(&sanctions),
    );
    // Room for misbehaving with either of the others, not for all three.
    let bound = misbehaving_bytes
        + limits_bytes.max(sanctions_bytes)
        + limits_bytes.min(sanctions_bytes) / 2;
    compile(&misbehaving, bound);
    assert_eq!(files().len(), 1);
    compile(&limits, bound);
    assert_eq!(files().len(), 2);
    // misbehaving is used again, so limits is now the least recently used.
    assert!(from_cache(&misbehaving, bound));
    compile(&sanctions, bound);
    assert_eq!(files().len(), 2, "{:?}", files());
    assert!(
        from_cache(&misbehaving, bound),
        "the most recently used stays"
    );
    assert!(from_cache(&sanctions, bound), "the one just compiled stays");
    assert!(
        !from_cache(&limits, bound),
        "the least recently used was evicted, so it must compile (1 ms: refused)"
    );
    // A lower bound, at the next start, trims to the most recently used file alone.
    runtime(1, 10_000);
    let left = files();
    assert_eq!(left.len(), 1, "{left:?}");
    assert!(from_cache(&sanctions, 1));
}
