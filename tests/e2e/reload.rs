//! Hot reload: the rules directory changed under a running service, while payments keep
//! arriving.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::server::{AUDITOR, OPERATOR, SUBMITTER, Server, payment};
use crate::support::{copy_dir, example_rules};

/// A copy of the example rules directory to change.
fn copy_of_examples() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&example_rules(), dir.path());
    dir
}

/// The version `payrules rules check` gives a directory: what the live loader must make
/// live for it.
fn checked_version(dir: &Path) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_payrules"))
        .args(["rules", "check"])
        .arg(dir)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let text = String::from_utf8(output.stdout).unwrap();
    text.lines()
        .next()
        .unwrap()
        .rsplit(' ')
        .next()
        .unwrap()
        .to_owned()
}

fn live(server: &Server) -> Value {
    let reply = server.get("/v1/rules", Some(OPERATOR));
    assert_eq!(reply.status, 200, "{}", reply.body);
    reply.json()
}

/// Waits (at most 20 s) until `done` holds of the live rules.
fn wait_for(server: &Server, what: &str, done: impl Fn(&Value) -> bool) -> Value {
    server.wait_for("/v1/rules", what, |status, rules| {
        status == 200 && done(rules)
    })
}

/// What a change should do.
enum Expect {
    /// Go live with the version `payrules rules check` gives the directory.
    Live,
    /// Be refused, leaving the live version as it was.
    Refused,
    /// Be refused for a reason that says this.
    RefusedSaying(&'static str),
}

#[test]
fn the_rules_change_twenty_times_under_load_without_a_failed_request_or_a_mixed_decision() {
    let rules = copy_of_examples();
    let dir = rules.path().to_owned();
    let server = Server::with_rules(&dir);
    let original: BTreeMap<String, Vec<u8>> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .map(|p| {
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                std::fs::read(&p).unwrap(),
            )
        })
        .collect();
    let write = |name: &str, bytes: &[u8]| std::fs::write(dir.join(name), bytes).unwrap();
    let restore = |name: &str| std::fs::write(dir.join(name), &original[name]).unwrap();
    let policy = String::from_utf8(original["pipeline.toml"].clone()).unwrap();
    let limits_manifest = String::from_utf8(original["limits.toml"].clone()).unwrap();
    let limits_vectors = String::from_utf8(original["limits.vectors.toml"].clone()).unwrap();
    let capped_at_100 = limits_manifest.replace("USD = \"10000000.00\"", "USD = \"100.00\"");
    assert_ne!(capped_at_100, limits_manifest);

    type Change<'a> = (&'a str, Box<dyn Fn() + 'a>, Expect);
    let changes: Vec<Change> = vec![
        (
            "review at 100: the new-creditor score now holds payments",
            Box::new(|| {
                write(
                    "pipeline.toml",
                    policy
                        .replace("review-at = 600", "review-at = 100")
                        .as_bytes(),
                )
            }),
            Expect::Live,
        ),
        (
            "review at 600 again",
            Box::new(|| restore("pipeline.toml")),
            Expect::Live,
        ),
        (
            "a corrupt component",
            Box::new(|| write("limits.wasm", b"\0asm garbage")),
            Expect::Refused,
        ),
        (
            "the component restored",
            Box::new(|| restore("limits.wasm")),
            Expect::Live,
        ),
        (
            "a fraud component where a compliance rule is",
            Box::new(|| write("limits.wasm", &original["velocity_risk.wasm"])),
            Expect::Refused,
        ),
        (
            "restored",
            Box::new(|| restore("limits.wasm")),
            Expect::Live,
        ),
        (
            "a manifest with a syntax error",
            Box::new(|| write("limits.toml", b"kind = \"compliance\nbroken")),
            Expect::Refused,
        ),
        (
            "restored",
            Box::new(|| restore("limits.toml")),
            Expect::Live,
        ),
        (
            "a manifest asking for a capability the host does not grant",
            Box::new(|| {
                write(
                    "limits.toml",
                    limits_manifest
                        .replace("capabilities = [", "capabilities = [\"filesystem\", ")
                        .as_bytes(),
                )
            }),
            Expect::Refused,
        ),
        (
            "restored",
            Box::new(|| restore("limits.toml")),
            Expect::Live,
        ),
        (
            "half of a component, then the rest",
            Box::new(|| {
                let full = &original["sanctions_screening.wasm"];
                write("sanctions_screening.wasm", &full[..full.len() / 2]);
                std::thread::sleep(Duration::from_millis(400));
                write("sanctions_screening.wasm", full);
            }),
            Expect::Live,
        ),
        (
            "a list changed: a name added to the sanctions list",
            Box::new(|| {
                let mut list = std::fs::read_to_string(dir.join("lists/sdn-sample.csv")).unwrap();
                list.push_str(
                    "9001,HARBOR COFFEE ROASTERS LLC,entity,TEST,,added by the reload test\n",
                );
                std::fs::write(dir.join("lists/sdn-sample.csv"), list).unwrap();
            }),
            Expect::Live,
        ),
        (
            "the list restored",
            Box::new(|| copy_dir(&example_rules().join("lists"), &dir.join("lists"))),
            Expect::Live,
        ),
        (
            "a rule removed",
            Box::new(|| std::fs::remove_file(dir.join("velocity-risk.toml")).unwrap()),
            Expect::Live,
        ),
        (
            "the rule back",
            Box::new(|| restore("velocity-risk.toml")),
            Expect::Live,
        ),
        (
            "a rule renamed",
            Box::new(|| {
                std::fs::rename(dir.join("limits.wasm"), dir.join("limits_2026.wasm")).unwrap();
                std::fs::rename(dir.join("limits.toml"), dir.join("limits-2026.toml")).unwrap();
            }),
            Expect::Live,
        ),
        (
            "its old name back",
            Box::new(|| {
                std::fs::rename(dir.join("limits_2026.wasm"), dir.join("limits.wasm")).unwrap();
                std::fs::rename(dir.join("limits-2026.toml"), dir.join("limits.toml")).unwrap();
            }),
            Expect::Live,
        ),
        (
            "the directory emptied",
            Box::new(|| {
                for name in original.keys() {
                    std::fs::remove_file(dir.join(name)).unwrap();
                }
            }),
            Expect::Refused,
        ),
        (
            "the directory refilled",
            Box::new(|| {
                for name in original.keys() {
                    restore(name);
                }
            }),
            Expect::Live,
        ),
        (
            "a limits version whose own test vectors fail: instant USD capped at 100",
            Box::new(|| write("limits.toml", capped_at_100.as_bytes())),
            Expect::RefusedSaying(
                "limits.vectors.toml: test vector \"a domestic instant payroll payment passes\" \
                 of limits fails: expected pass, got reject [AM02]",
            ),
        ),
        (
            "the same version with its vectors updated for the new cap",
            Box::new(|| {
                let updated = limits_vectors.replace("amount = \"3250.75\"", "amount = \"99.00\"")
                    + "\n[[case]]\nname = \"an instant USD payment over 100 is refused\"\n\
                       payment = { amount = \"100.01\" }\n\
                       expect = { verdict = \"reject\", reason = \"AM02\" }\n";
                assert_ne!(updated, limits_vectors);
                write("limits.vectors.toml", updated.as_bytes());
            }),
            Expect::Live,
        ),
        (
            "the old limits and vectors back",
            Box::new(|| {
                restore("limits.vectors.toml");
                restore("limits.toml");
            }),
            Expect::Live,
        ),
        (
            "a component replaced by an empty file",
            Box::new(|| write("rail_router.wasm", b"")),
            Expect::Refused,
        ),
        (
            "restored",
            Box::new(|| restore("rail_router.wasm")),
            Expect::Live,
        ),
    ];
    assert!(changes.len() >= 20);

    let stop = AtomicBool::new(false);
    let sent = AtomicUsize::new(0);
    let answers = Mutex::new(Vec::<(u16, Value)>::new());
    let mut live_versions = BTreeSet::new();
    std::thread::scope(|scope| {
        for worker in 0..2 {
            let (stop, sent, answers, server) = (&stop, &sent, &answers, &server);
            scope.spawn(move || {
                let examples = [
                    "us-payroll-fednow.json",
                    "sepa-instant-supplier.json",
                    "sanctioned-creditor.json",
                ];
                let mut n = 0;
                while !stop.load(Ordering::SeqCst) {
                    n += 1;
                    let key = format!("reload-{worker}-{n}");
                    let reply = server.submit(SUBMITTER, &key, &payment(examples[n % 3], &key));
                    sent.fetch_add(1, Ordering::SeqCst);
                    let body = serde_json::from_str(&reply.body).unwrap_or(Value::Null);
                    answers.lock().unwrap().push((reply.status, body));
                }
            });
        }
        // The clients stop when this scope's main thread ends, also by a failed assertion.
        struct StopOnDrop<'a>(&'a AtomicBool);
        impl Drop for StopOnDrop<'_> {
            fn drop(&mut self) {
                self.0.store(true, Ordering::SeqCst);
            }
        }
        let _stop = StopOnDrop(&stop);
        let mut expected = live(&server)["version"].as_str().unwrap().to_owned();
        live_versions.insert(expected.clone());
        for (what, change, expect) in &changes {
            let rejected_before = live(&server)["last_rejected"]["at_unix_ms"].as_i64();
            change();
            match expect {
                Expect::Live => {
                    expected = checked_version(&dir);
                    let want = expected.clone();
                    wait_for(&server, what, |rules| rules["version"] == want.as_str());
                    live_versions.insert(expected.clone());
                }
                Expect::Refused | Expect::RefusedSaying(_) => {
                    let rules = wait_for(&server, what, |rules| {
                        rules["last_rejected"]["at_unix_ms"].as_i64() != rejected_before
                    });
                    assert_eq!(
                        rules["version"],
                        expected.as_str(),
                        "{what}: the live set did not change"
                    );
                    if let Expect::RefusedSaying(reason) = expect {
                        let error = rules["last_rejected"]["error"].as_str().unwrap_or_default();
                        assert!(error.contains(reason), "{what}: refused for {error}");
                    }
                }
            }
            // Let payments decide on this version before the next change.
            std::thread::sleep(Duration::from_millis(50));
        }
    });

    let answers = answers.into_inner().unwrap();
    assert!(
        answers.len() > 40,
        "payments kept arriving: {}",
        answers.len()
    );
    for (status, body) in &answers {
        assert_eq!(*status, 201, "no request failed during the swaps: {body}");
    }
    // Every decision names one version that was live, and its rules are exactly that
    // version's rules (no payment saw two versions).
    let history = server
        .get("/v1/rules/history?limit=500", Some(AUDITOR))
        .json();
    let mut rules_of: BTreeMap<String, BTreeSet<(String, String)>> = BTreeMap::new();
    for entry in history
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["outcome"] == "loaded")
    {
        let rules = entry["detail"]["rules"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                (
                    r["name"].as_str().unwrap().to_owned(),
                    r["version"].as_str().unwrap().to_owned(),
                )
            })
            .collect();
        rules_of.insert(entry["version"].as_str().unwrap().to_owned(), rules);
    }
    let mut used = BTreeSet::new();
    for (_, answer) in &answers {
        // The rules that decided, as an auditor reads them.
        let id = answer["payment_id"]
            .as_str()
            .expect("a decision names its payment");
        let decision = &server
            .get(&format!("/v1/payments/{id}"), Some(AUDITOR))
            .json()["decision"];
        let version = decision["rule_set_version"].as_str().unwrap();
        assert!(live_versions.contains(version), "{version} was never live");
        let set = &rules_of[version];
        for run in decision["rules"].as_array().unwrap() {
            let rule = (
                run["name"].as_str().unwrap().to_owned(),
                run["version"].as_str().unwrap().to_owned(),
            );
            assert!(
                set.contains(&rule),
                "{rule:?} is not a rule of {version}: a mixed decision"
            );
        }
        used.insert(version.to_owned());
    }
    assert!(
        used.len() >= 5,
        "decisions were made on many versions: {}",
        used.len()
    );
    let metrics = server.get("/metrics", None).body;
    assert!(
        metrics.contains("payrules_rule_set_reloads_total{outcome=\"rejected\"}"),
        "{metrics}"
    );
}

#[test]
fn a_reload_by_an_operator_answers_its_outcome() {
    let rules = copy_of_examples();
    let server = Server::with_rules(rules.path());
    let reload = |key: &str| {
        server.request(
            "POST",
            "/v1/rules/reload",
            &[("Authorization", &format!("Bearer {key}"))],
            None,
        )
    };
    assert_eq!(reload(SUBMITTER).status, 403);
    let unchanged = reload(OPERATOR);
    assert_eq!(unchanged.status, 200, "{}", unchanged.body);
    assert_eq!(unchanged.json()["outcome"], "unchanged");

    std::fs::write(rules.path().join("limits.toml"), "kind = ").unwrap();
    let refused = reload(OPERATOR);
    assert_eq!(refused.status, 422, "{}", refused.body);
    assert_eq!(refused.code(), "rule_set_rejected");
    assert!(
        refused.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("limits.toml")
    );
    let last = live(&server)["last_rejected"].clone();
    assert!(
        last["error"].as_str().unwrap().contains("limits.toml"),
        "{last}"
    );

    let history = server.get("/v1/rules/history", Some(OPERATOR)).json();
    let outcomes: Vec<_> = history
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["outcome"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        outcomes.last().map(String::as_str),
        Some("loaded"),
        "the start is the first entry: {history}"
    );
    assert!(outcomes.iter().any(|o| o == "rejected"), "{history}");
}

#[test]
fn rules_check_refuses_a_broken_directory_naming_the_file() {
    let rules = copy_of_examples();
    std::fs::write(rules.path().join("rail_router.wasm"), b"not wasm").unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_payrules"))
        .args(["rules", "check"])
        .arg(rules.path())
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("rail_router.wasm"));
}

#[test]
fn a_broken_directory_stops_a_restart_unless_told_to_start_from_the_last_good_set() {
    let rules = copy_of_examples();
    let dir = rules.path();
    let mut server = Server::with_rules(dir);
    let policy = std::fs::read_to_string(dir.join("pipeline.toml")).unwrap();
    std::fs::write(
        dir.join("pipeline.toml"),
        policy.replace("review-at = 600", "review-at = 500"),
    )
    .unwrap();
    let good = checked_version(dir);
    wait_for(&server, "the new policy live", |rules| {
        rules["version"] == good.as_str()
    });
    let kept = server
        .store()
        .with_file_name("payrules-rule-sets")
        .join(&good);
    // The copy is made after the swap; wait for it rather than race it.
    let started = Instant::now();
    while !(kept.is_dir() && checked_version(&kept) == good) {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the last good set was not kept"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    server.kill();

    std::fs::write(dir.join("limits.wasm"), b"broken").unwrap();
    let config = server.store().with_file_name("payrules.toml");
    let refused = Command::new(env!("CARGO_BIN_EXE_payrules"))
        .args(["serve", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert_eq!(refused.status.code(), Some(2));
    let error = String::from_utf8_lossy(&refused.stderr);
    assert!(
        error.contains("limits.wasm") && error.contains("--from-last-good"),
        "{error}"
    );

    let mut command = Command::new(env!("CARGO_BIN_EXE_payrules"));
    command
        .args(["serve", "--from-last-good", "--config"])
        .arg(&config);
    let (mut child, base) = crate::server::spawn_serve(command);
    let version = base.map(|base| {
        let reply = ureq::get(format!("{base}/v1/rules"))
            .header("Authorization", format!("Bearer {OPERATOR}"))
            .call()
            .map(|mut r| r.body_mut().read_json::<Value>().unwrap());
        reply.map(|rules| rules["version"].as_str().unwrap().to_owned())
    });
    let _ = child.kill();
    let _ = child.wait();
    let version = version.unwrap_or_else(|line| panic!("it did not start: {line:?}"));
    assert_eq!(
        version.unwrap(),
        good,
        "it decides with the last set that went live"
    );
}
