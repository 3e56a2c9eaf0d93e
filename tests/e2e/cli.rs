//! `payrules evaluate` and `wit export` as a user runs them: the real binary, the example
//! rules.

use std::process::{Command, Output};

use crate::support::workspace;

fn payrules(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_payrules"))
        .current_dir(workspace())
        .args(args)
        .output()
        .expect("the payrules binary runs")
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn evaluate_prints_the_decision_and_the_trace_of_every_rule() {
    let output = payrules(&["evaluate", "examples/payments/sanctioned-creditor.json"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(text.contains(": rejected"), "{text}");
    assert!(
        text.contains("RR04") && text.contains("sanctions-screening") && text.contains("fuel"),
        "{text}"
    );
}

#[test]
fn evaluate_decides_every_example_payment() {
    // `payrules evaluate examples/payments/*.json`, the glob expanded as a shell would.
    let mut files: Vec<String> = std::fs::read_dir(workspace().join("examples/payments"))
        .expect("examples/payments")
        .map(|entry| entry.expect("entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "json"))
        .map(|path| {
            format!(
                "examples/payments/{}",
                path.file_name().expect("name").to_string_lossy()
            )
        })
        .collect();
    files.sort();
    let mut args = vec!["evaluate"];
    args.extend(files.iter().map(String::as_str));
    let output = payrules(&args);
    assert!(output.status.success(), "{}", stderr(&output));
    let text = String::from_utf8_lossy(&output.stdout);
    for file in &files {
        assert!(
            text.contains(&format!("{file}: ")),
            "{file} was decided: {text}"
        );
    }
}

#[test]
fn evaluate_prints_json_decisions_one_per_line() {
    let output = payrules(&[
        "evaluate",
        "--json",
        "--now-unix-ms",
        "1795514400000",
        "examples/payments/us-payroll-fednow.json",
        "examples/payments/over-limit.json",
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|line| serde_json::from_str(line).expect("each line is JSON"))
        .collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["status"], "accepted");
    assert_eq!(lines[0]["route"]["rail"], "fednow");
    assert_eq!(lines[0]["decided_at_unix_ms"], 1_795_514_400_000_i64);
    assert_eq!(lines[1]["status"], "rejected");
    assert_eq!(lines[1]["reasons"][0]["code"], "AM02");
}

#[test]
fn bad_input_gets_one_line_naming_the_field_and_exit_status_2() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let write = |name: &str, text: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).expect("write");
        path.display().to_string()
    };
    let valid =
        std::fs::read_to_string(workspace().join("examples/payments/sepa-instant-supplier.json"))
            .expect("example");
    let cases = [
        (write("broken.json", "{\"end_to_end_id\": "), "EOF"),
        (
            write(
                "amount.json",
                &valid.replace("\"12480.00\"", "\"12480.005\""),
            ),
            "amount: ",
        ),
        (
            write("zero.json", &valid.replace("\"12480.00\"", "\"0.00\"")),
            "(AM01)",
        ),
        (
            write("currency.json", &valid.replace("\"EUR\"", "\"EUX\"")),
            "currency: ",
        ),
        (
            workspace()
                .join("examples/invalid/invalid-iban.json")
                .display()
                .to_string(),
            "debtor.account.iban: ",
        ),
        (
            dir.path().join("missing.json").display().to_string(),
            "cannot read it",
        ),
    ];
    for (path, expected) in cases {
        let output = payrules(&["evaluate", &path]);
        let message = stderr(&output);
        assert_eq!(output.status.code(), Some(2), "{path}: {message}");
        assert_eq!(message.trim_end().lines().count(), 1, "one line: {message}");
        assert!(
            message.starts_with("error: ") && message.contains(expected),
            "{path}: {message}"
        );
    }
}

#[test]
fn a_rules_directory_that_cannot_load_is_named_with_exit_status_2() {
    let dir = tempfile::tempdir().expect("temporary directory");
    std::fs::write(dir.path().join("orphan.toml"), "kind = \"compliance\"\n").expect("write");
    let output = payrules(&[
        "evaluate",
        "examples/payments/sepa-instant-supplier.json",
        "--rules",
        &dir.path().display().to_string(),
    ]);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("orphan.wasm"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn the_readme_run_command_serves_the_example_rules_on_its_defaults() {
    let readme = std::fs::read_to_string(workspace().join("README.md")).unwrap();
    let run = readme
        .lines()
        .find(|line| line.starts_with("rustup target add wasm32-wasip2 && cargo build --release"))
        .expect("the README's run command");
    assert!(run.ends_with("&& target/release/payrules serve"), "{run}");

    // The same command in a fresh directory holding the examples, on any free port (the
    // only change: 8080 may be taken where the tests run).
    let dir = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(workspace().join("examples"), dir.path().join("examples")).unwrap();
    let mut command = Command::new(env!("CARGO_BIN_EXE_payrules"));
    command
        .current_dir(dir.path())
        .args(["serve", "--listen", "127.0.0.1:0"]);
    let (mut child, base) = crate::server::spawn_serve(command);
    let key_file = dir.path().join("payrules-dev.key");
    let outcome = base.map(|base| {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key_file).unwrap().permissions().mode() & 0o777;
        let key = std::fs::read_to_string(&key_file).unwrap();
        // The README's curl example.
        let body = std::fs::read_to_string(
            workspace().join("examples/payments/sepa-instant-supplier.json"),
        )
        .unwrap();
        let reply = ureq::post(format!("{base}/v1/payments"))
            .header("Authorization", format!("Bearer {}", key.trim()))
            .header("Content-Type", "application/json")
            .header("Idempotency-Key", "\"order-4471\"")
            .send(body);
        (mode, reply.map(|r| r.status().as_u16()))
    });
    let _ = child.kill();
    let _ = child.wait();
    let (mode, status) =
        outcome.unwrap_or_else(|line| panic!("the service did not start: {line:?}"));
    assert_eq!(mode, 0o600, "the local key is readable by its owner only");
    assert_eq!(status.unwrap(), 201);
    assert!(
        dir.path().join("payrules.db").is_file(),
        "the store is made where it runs"
    );
}

/// `payrules wit export DIR` writes the contract this payrules speaks, byte for byte the
/// WIT the host and the SDK are built from, for rule teams in other languages.
#[test]
fn wit_export_writes_the_contract_the_host_speaks() {
    let out = tempfile::tempdir().unwrap();
    let dir = out.path().join("payrules-wit");
    let output = payrules(&["wit", "export", dir.to_str().unwrap()]);
    assert!(output.status.success(), "{}", stderr(&output));
    let said = String::from_utf8_lossy(&output.stdout);
    assert!(said.starts_with("payrules:rules@0.1.0 in "), "{said}");
    for file in ["types.wit", "capabilities.wit", "worlds.wit"] {
        assert_eq!(
            std::fs::read(dir.join(file)).unwrap(),
            std::fs::read(workspace().join("wit").join(file)).unwrap(),
            "{file}"
        );
    }
    let refused = payrules(&["wit", "export", "/proc/payrules-cannot-write-here"]);
    assert_eq!(refused.status.code(), Some(2), "{}", stderr(&refused));
    assert!(stderr(&refused).contains("/proc/payrules-cannot-write-here"));
}
