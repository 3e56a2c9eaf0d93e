//! Rule projects as their authors use them: `payrules plugin new`, `plugin build`,
//! `plugin test`, and test vectors that fail, for the author and for the loader.

use std::path::Path;
use std::process::{Command, Output};

use crate::support::{copy_dir, example_rules};

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

#[test]
fn a_scaffolded_rule_of_every_kind_builds_passes_its_vectors_and_loads_beside_the_examples() {
    let work = tempfile::tempdir().unwrap();
    let rules = work.path().join("rules");
    copy_dir(&example_rules(), &rules);
    for (name, kind) in [
        ("hold-large", "compliance"),
        ("round-amounts", "fraud"),
        ("by-currency", "routing"),
    ] {
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
        let tested = payrules(&["plugin", "test", name], work.path());
        let report = text(&tested.stdout);
        assert!(
            tested.status.success(),
            "{name}: {report}\n{}",
            text(&tested.stderr)
        );
        assert!(report.contains("3 passed, 0 failed"), "{name}: {report}");
        assert!(report.contains("fuel"), "{report}");
        // What the build wrote is a rules directory's worth: it loads beside the examples.
        copy_dir(&project.join("dist"), &rules);
    }
    let checked = payrules(&["rules", "check", rules.to_str().unwrap()], work.path());
    let listing = text(&checked.stdout);
    assert!(checked.status.success(), "{}", text(&checked.stderr));
    for name in ["hold-large", "round-amounts", "by-currency"] {
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
    assert!(report.contains("30 passed, 1 failed"), "{report}");

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
    let bad = payrules(
        &["plugin", "new", "My Rule", "--kind", "fraud"],
        work.path(),
    );
    assert_eq!(bad.status.code(), Some(2));
    assert!(text(&bad.stderr).contains("a rule name is"));
    let taken = payrules(
        &["plugin", "new", "x", "--kind", "fraud", "--dir", "."],
        work.path(),
    );
    assert_eq!(taken.status.code(), Some(2));
    assert!(text(&taken.stderr).contains("exists and is not empty"));
    let unknown = payrules(&["plugin", "new", "x", "--kind", "kyc"], work.path());
    assert_eq!(unknown.status.code(), Some(2));
    let not_project = payrules(&["plugin", "build", "."], work.path());
    assert_eq!(not_project.status.code(), Some(2));
    assert!(
        text(&not_project.stderr).contains("not a rule project"),
        "{}",
        text(&not_project.stderr)
    );
}
