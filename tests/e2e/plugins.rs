//! Rule projects as their authors use them: `payrules plugin new`, `plugin build`,
//! `plugin test`, and test vectors that fail, for the author and for the loader.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output};

use crate::support::{copy_dir, example_rules, workspace};

fn payrules(args: &[&str], cwd: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_payrules"))
        .args(args)
        .current_dir(cwd)
        // Every scaffold in the suite builds into one target directory: the SDK and
        // wit-bindgen compile once.
        .env(
            "CARGO_TARGET_DIR",
            Path::new(env!("CARGO_TARGET_TMPDIR")).join("rule-projects"),
        )
        .output()
        .expect("payrules runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The scaffolds the tests make: a rule of each kind.
const SCAFFOLDS: [(&str, &str); 3] = [
    ("hold-large", "compliance"),
    ("round-amounts", "fraud"),
    ("by-currency", "routing"),
];

/// Runs `payrules plugin test NAME` in `cwd`, asserts every case passed, and returns the
/// report.
fn assert_passes(name: &str, cwd: &Path) -> String {
    let tested = payrules(&["plugin", "test", name], cwd);
    let report = text(&tested.stdout);
    assert!(
        tested.status.success(),
        "{name}: {report}\n{}",
        text(&tested.stderr)
    );
    report
}

/// Runs payrules and asserts it refuses the input (exit status 2) saying `why`.
fn assert_refused(args: &[&str], cwd: &Path, why: &str) {
    let output = payrules(args, cwd);
    let error = text(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{args:?}: {error}");
    assert!(error.contains(why), "{args:?}: {error}");
}

#[test]
fn a_scaffolded_rule_of_every_kind_builds_passes_its_vectors_and_loads_beside_the_examples() {
    let work = tempfile::tempdir().unwrap();
    let rules = work.path().join("rules");
    copy_dir(&example_rules(), &rules);
    for (name, kind) in SCAFFOLDS {
        let made = payrules(&["plugin", "new", name, "--kind", kind], work.path());
        assert!(made.status.success(), "{}", text(&made.stderr));
        let project = work.path().join(name);
        for file in [
            "Cargo.toml".to_owned(),
            "src/lib.rs".to_owned(),
            "README.md".to_owned(),
            format!("{name}.toml"),
            format!("{name}.vectors.toml"),
        ] {
            assert!(project.join(&file).is_file(), "{name}: {file} scaffolded");
        }
        let report = assert_passes(name, work.path());
        assert!(report.contains("3 passed, 0 failed"), "{name}: {report}");
        assert!(report.contains("fuel"), "{report}");
        // What the build wrote is a rules directory's worth: it loads beside the examples.
        copy_dir(&project.join("dist"), &rules);
    }
    let checked = payrules(&["rules", "check", rules.to_str().unwrap()], work.path());
    let listing = text(&checked.stdout);
    assert!(checked.status.success(), "{}", text(&checked.stderr));
    for (name, _) in SCAFFOLDS {
        assert!(
            listing
                .lines()
                .any(|line| line.contains(name) && line.ends_with("3 vectors pass")),
            "{name} in {listing}"
        );
    }
    assert_eq!(listing.lines().count(), 1 + 7, "{listing}");
}

#[test]
fn plugin_test_fails_on_a_wrong_expectation_showing_what_differs() {
    let work = tempfile::tempdir().unwrap();
    copy_dir(&example_rules(), work.path());
    let vectors = work.path().join("velocity-risk.vectors.toml");
    let original = std::fs::read_to_string(&vectors).unwrap();
    let wrong = original.replace(
        "expect = { score = 200, reason = \"new-creditor\" }",
        "expect = { score = { min = 600 }, reason = \"debtor-burst\" }",
    );
    assert_ne!(wrong, original);
    std::fs::write(&vectors, wrong).unwrap();

    let tested = payrules(&["plugin", "test", "."], work.path());
    let report = text(&tested.stdout);
    assert_eq!(tested.status.code(), Some(1), "{report}");
    assert!(
        report.contains("FAIL  a new creditor for 1000 or more scores 200"),
        "{report}"
    );
    assert!(
        report.contains("- expected score 600..=1000, got score 200 [new-creditor]"),
        "{report}"
    );
    assert!(
        report.contains("- expected reason debtor-burst, got score 200 [new-creditor]"),
        "{report}"
    );
    assert!(report.contains("35 passed, 1 failed"), "{report}");

    // The loader refuses the same directory, naming the file and the case.
    let checked = payrules(&["rules", "check", "."], work.path());
    assert_eq!(checked.status.code(), Some(2));
    let error = text(&checked.stderr);
    assert!(
        error.contains(
            "velocity-risk.vectors.toml: test vector \"a new creditor for 1000 or more scores 200\" \
             of velocity-risk fails: expected score 600..=1000"
        ),
        "{error}"
    );
}

#[test]
fn broken_vectors_files_and_projects_get_a_specific_error() {
    let work = tempfile::tempdir().unwrap();
    copy_dir(&example_rules(), work.path());
    let vectors = work.path().join("limits.vectors.toml");
    let original = std::fs::read_to_string(&vectors).unwrap();
    std::fs::write(
        &vectors,
        original.replace("amount = \"25000000.01\"", "amount = 25000000.01"),
    )
    .unwrap();
    let checked = payrules(&["plugin", "test", "."], work.path());
    assert_eq!(checked.status.code(), Some(2));
    let error = text(&checked.stderr);
    assert!(
        error.contains(
            "limits.vectors.toml: case 3 (\"one cent over the USD maximum is refused\"): payment.amount"
        ),
        "{error}"
    );

    // A rules directory without vectors tests nothing, and says so.
    let bare = tempfile::tempdir().unwrap();
    for file in ["limits.toml", "limits.wasm"] {
        std::fs::copy(example_rules().join(file), bare.path().join(file)).unwrap();
    }
    let tested = payrules(&["plugin", "test", "."], bare.path());
    assert_eq!(tested.status.code(), Some(2));
    assert!(
        text(&tested.stderr).contains("no rule has test vectors"),
        "{}",
        text(&tested.stderr)
    );

    // Scaffolding refuses a bad name and a directory in use; building needs a project.
    assert_refused(
        &["plugin", "new", "My Rule", "--kind", "fraud"],
        work.path(),
        "a rule name is",
    );
    assert_refused(
        &["plugin", "new", "canary", "--kind", "fraud"],
        work.path(),
        "not a rule's manifest but the canary policy",
    );
    assert_refused(
        &["plugin", "new", "x", "--kind", "fraud", "--dir", "."],
        work.path(),
        "exists and is not empty",
    );
    assert_refused(
        &["plugin", "new", "x", "--kind", "kyc"],
        work.path(),
        "is not a kind",
    );
    assert_refused(&["plugin", "build", "."], work.path(), "not a rule project");
}

/// Whether componentize-py is on PATH to build Python rules. Where it is not, a Python
/// test prints why it is skipped (past the test harness's capture) and passes; `.ci/run`
/// installs it and sets `PAYRULES_REQUIRE_PYTHON`, so there it can never be skipped.
fn componentize_py_available(test: &str) -> bool {
    let found = Command::new("componentize-py")
        .arg("--version")
        .output()
        .is_ok_and(|output| output.status.success());
    if !found {
        assert!(
            std::env::var_os("PAYRULES_REQUIRE_PYTHON").is_none(),
            "PAYRULES_REQUIRE_PYTHON is set, but componentize-py is not on PATH"
        );
        let _ = writeln!(
            std::io::stderr(),
            "{test}: skipped: componentize-py is not installed (pip install componentize-py==0.25.1)"
        );
    }
    found
}

/// A decision of `payrules evaluate --json` without what differs between two builds of
/// the same rules: ids and versions, time and fuel.
fn answers(output: &[u8]) -> Vec<serde_json::Value> {
    text(output)
        .lines()
        .map(|line| {
            let mut decision: serde_json::Value = serde_json::from_str(line).unwrap();
            let object = decision.as_object_mut().unwrap();
            object.remove("payment_id");
            object.remove("rule_set_version");
            for rule in object["rules"].as_array_mut().unwrap() {
                let rule = rule.as_object_mut().unwrap();
                for key in ["version", "duration_us", "instantiation_us", "fuel_used"] {
                    rule.remove(key);
                }
            }
            decision
        })
        .collect()
}

#[test]
fn velocity_risk_in_python_passes_the_rust_rules_vectors_and_decides_every_example_alike() {
    if !componentize_py_available("velocity_risk_in_python") {
        return;
    }
    let project = workspace().join("plugins/velocity-risk-py");
    for file in ["velocity-risk.toml", "velocity-risk.vectors.toml"] {
        assert_eq!(
            std::fs::read(project.join(file)).unwrap(),
            std::fs::read(example_rules().join(file)).unwrap(),
            "{file}: the Python rule's is the Rust rule's"
        );
    }
    let work = tempfile::tempdir().unwrap();
    let copy = work.path().join("velocity-risk-py");
    copy_dir(&project, &copy);
    let report = assert_passes("velocity-risk-py", work.path());
    assert!(report.contains("10 passed, 0 failed"), "{report}");

    // In place of the Rust rule, it gives every example payment the same decision,
    // every reason and message included.
    let python_rules = work.path().join("rules");
    copy_dir(&example_rules(), &python_rules);
    copy_dir(&copy.join("dist"), &python_rules);
    let mut payments: Vec<_> = std::fs::read_dir(workspace().join("examples/payments"))
        .unwrap()
        .map(|entry| entry.unwrap().path().display().to_string())
        .collect();
    payments.sort();
    let decide = |rules: &Path| {
        let mut args = vec![
            "evaluate".to_owned(),
            "--json".to_owned(),
            "--now-unix-ms".to_owned(),
            crate::support::TUESDAY_MORNING_UNIX_MS.to_string(),
            "--rules".to_owned(),
            rules.display().to_string(),
        ];
        args.extend(payments.iter().cloned());
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let output = payrules(&args, work.path());
        assert!(output.status.success(), "{}", text(&output.stderr));
        answers(&output.stdout)
    };
    let by_rust = decide(&example_rules());
    let by_python = decide(&python_rules);
    assert_eq!(by_rust.len(), payments.len());
    assert!(
        by_rust
            .iter()
            .any(|decision| decision.to_string().contains("new-creditor")),
        "the examples exercise the rule"
    );
    assert_eq!(by_python, by_rust);

    // Warm (an instance of CPython kept from payment to payment), with every answer from
    // a reused instance checked on a fresh one: the Rust rule's answers, and no check
    // finds a difference.
    let manifest = python_rules.join("velocity-risk.toml");
    let text = std::fs::read_to_string(&manifest).unwrap();
    std::fs::write(
        &manifest,
        format!("isolation = \"warm\"\n{text}\n[warm]\nverify-one-in = 1\n"),
    )
    .unwrap();
    let warm_rules = crate::support::load(&python_rules);
    let rust_rules = crate::support::load(&example_rules());
    let pipeline = crate::support::pipeline();
    let mut warm = payrules::runtime::WarmInstances::new();
    let velocity_risk = |decision: &payrules::model::Decision| {
        decision
            .rules
            .iter()
            .find(|run| run.name == "velocity-risk")
            .map(|run| run.outcome.clone())
    };
    for round in 0..3 {
        for path in payments.iter().filter(|path| path.ends_with(".json")) {
            let payment =
                payrules::model::Payment::from_json(&std::fs::read_to_string(path).unwrap())
                    .unwrap();
            let id = format!("pay_{round}");
            let now = crate::support::TUESDAY_MORNING_UNIX_MS;
            let by_warm_python = pipeline.evaluate_warm(&mut warm, &warm_rules, &payment, &id, now);
            let by_fresh_rust = pipeline.evaluate(&rust_rules, &payment, &id, now);
            assert_eq!(
                velocity_risk(&by_warm_python),
                velocity_risk(&by_fresh_rust),
                "{path}"
            );
        }
    }
    let rule = warm_rules
        .rules()
        .iter()
        .find(|rule| rule.manifest.name == "velocity-risk")
        .unwrap();
    let figures = rule.context.warm.figures();
    assert!(
        figures.verified > 0 && figures.mismatches == 0 && !figures.fresh_again,
        "{figures:?}"
    );
}

#[test]
fn a_scaffolded_python_rule_of_every_kind_builds_and_passes_its_vectors() {
    if !componentize_py_available("a_scaffolded_python_rule") {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    for (name, kind) in SCAFFOLDS {
        let made = payrules(
            &["plugin", "new", name, "--kind", kind, "--lang", "python"],
            work.path(),
        );
        assert!(made.status.success(), "{}", text(&made.stderr));
        let project = work.path().join(name);
        assert!(project.join("rule.py").is_file());
        assert!(!project.join("Cargo.toml").exists());
        let report = assert_passes(name, work.path());
        assert!(report.contains("3 passed, 0 failed"), "{name}: {report}");
        // The component imports what the manifest grants (config) and nothing else: no
        // other capability, no WASI.
        let world = std::fs::read_to_string(project.join("build/wit/world.wit")).unwrap();
        let imports: Vec<&str> = world.lines().filter(|l| l.contains("import ")).collect();
        assert_eq!(
            imports,
            ["    import payrules:rules/config@0.1.0;"],
            "{world}"
        );
    }

    // A Python exception fails the case, and with `log` granted the report shows it,
    // with where it was raised.
    let project = work.path().join("round-amounts");
    let manifest = project.join("round-amounts.toml");
    let granted = std::fs::read_to_string(&manifest).unwrap().replace(
        "capabilities = [\"config\"]",
        "capabilities = [\"config\", \"log\"]",
    );
    std::fs::write(&manifest, granted).unwrap();
    let source = project.join("rule.py");
    let broken = std::fs::read_to_string(&source).unwrap().replace(
        "    amount = payment.amount\n",
        "    amount = payment.amount\n    1 / 0\n",
    );
    std::fs::write(&source, broken).unwrap();
    let tested = payrules(&["plugin", "test", "round-amounts"], work.path());
    let report = text(&tested.stdout);
    assert_eq!(tested.status.code(), Some(1), "{report}");
    assert!(report.contains("0 passed, 3 failed"), "{report}");
    assert!(
        report.contains("log error: ZeroDivisionError: division by zero (at rule.py:13 in score"),
        "{report}"
    );
}

#[test]
fn a_python_project_needs_componentize_py_and_no_sdk_and_says_so() {
    let work = tempfile::tempdir().unwrap();
    assert_refused(
        &[
            "plugin", "new", "x", "--kind", "fraud", "--lang", "python", "--sdk", ".",
        ],
        work.path(),
        "a Python project needs none",
    );
    assert_refused(
        &["plugin", "new", "x", "--kind", "fraud", "--lang", "cobol"],
        work.path(),
        "is not a language (rust, python)",
    );

    let made = payrules(
        &["plugin", "new", "x", "--kind", "fraud", "--lang", "python"],
        work.path(),
    );
    assert!(made.status.success(), "{}", text(&made.stderr));
    // Without componentize-py on PATH, the build names the command that installs it.
    let empty = tempfile::tempdir().unwrap();
    let built = Command::new(env!("CARGO_BIN_EXE_payrules"))
        .args(["plugin", "build", "x"])
        .current_dir(work.path())
        .env("PATH", empty.path())
        .output()
        .unwrap();
    assert_eq!(built.status.code(), Some(2));
    assert!(
        text(&built.stderr).contains("install it with: pip install componentize-py==0.25.1"),
        "{}",
        text(&built.stderr)
    );
}

/// As a new user: `payrules plugin new` in some directory, then the next step it prints,
/// run exactly as printed from the same directory, with no CARGO_TARGET_DIR (the rule's
/// own `target/`, compiled from nothing): it builds and passes its vectors.
#[test]
fn the_next_step_plugin_new_prints_works_exactly_as_printed() {
    let work = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_payrules"))
            .args(args)
            .current_dir(work.path())
            .env_remove("CARGO_TARGET_DIR")
            .output()
            .expect("payrules runs")
    };
    let made = run(&["plugin", "new", "big-amount", "--kind", "fraud"]);
    assert!(made.status.success(), "{}", text(&made.stderr));
    // Outside the repository, the SDK by version, as a published crate would be, with the
    // checkout's SDK as a path override in its place.
    let manifest = std::fs::read_to_string(work.path().join("big-amount/Cargo.toml")).unwrap();
    let sdk = crate::support::workspace()
        .join("plugins/sdk")
        .canonicalize()
        .unwrap();
    assert!(
        manifest.contains("\npayrules-sdk = \"0.1.0\"\n")
            && manifest.contains(&format!(
                "[patch.crates-io]\npayrules-sdk = {{ path = {:?} }}",
                sdk.display().to_string()
            )),
        "{manifest}"
    );
    let printed = text(&made.stdout);
    let next = printed
        .lines()
        .find_map(|line| line.strip_prefix("next: "))
        .unwrap_or_else(|| panic!("a next step in {printed}"));
    let command = next.split("   (").next().unwrap();
    let words: Vec<&str> = command.split_whitespace().collect();
    assert_eq!(words.first(), Some(&"payrules"), "{next}");
    let tested = run(&words[1..]);
    let report = text(&tested.stdout);
    assert!(
        tested.status.success(),
        "{command}: {report}\n{}",
        text(&tested.stderr)
    );
    assert!(report.contains("3 passed, 0 failed"), "{report}");
    assert!(
        work.path()
            .join("big-amount/target/wasm32-wasip2/release")
            .is_dir()
            && !work.path().join("big-amount/big-amount").exists(),
        "the build went to the project's own target/"
    );
}
