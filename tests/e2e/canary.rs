//! Canary releases: a candidate rule set in the rules directory's `canary/` decides a
//! share of live traffic for real, by debtor account; its figures beside the live set's
//! match a count by hand; a failing rule aborts it; promotion makes it the live set,
//! through the API or by a deployment that writes the rules directory itself.

use std::collections::BTreeMap;

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::server::{AUDITOR, OPERATOR, SUBMITTER, Server, audit_verify, payment};
use crate::support::{copy_dir, example_rules};

/// A rules directory of the examples with a canary in `canary/`: the examples with the
/// fraud review threshold at 100 (so the canary holds more payments) and `canary_toml`.
fn rules_with_canary(canary_toml: &str) -> tempfile::TempDir {
    let rules = tempfile::tempdir().unwrap();
    copy_dir(&example_rules(), rules.path());
    let canary = rules.path().join("canary");
    copy_dir(&example_rules(), &canary);
    let policy = std::fs::read_to_string(canary.join("pipeline.toml")).unwrap();
    let stricter = policy.replace("review-at = 600", "review-at = 100");
    assert_ne!(stricter, policy);
    std::fs::write(canary.join("pipeline.toml"), stricter).unwrap();
    std::fs::write(canary.join("canary.toml"), canary_toml).unwrap();
    rules
}

/// The example payroll payment from debtor account `account`.
fn from_account(account: &str, tag: &str) -> Value {
    let mut value = payment("us-payroll-fednow.json", tag);
    value["debtor"]["account"] = json!({ "id": account });
    value
}

/// Whether the canary at `percent` takes `account`, computed here as the docs say.
fn canary_takes(account: &str, percent: u64) -> bool {
    let digest = Sha256::digest(account.as_bytes());
    u64::from_be_bytes(digest[..8].try_into().unwrap()) % 100 < percent
}

fn post(server: &Server, path: &str, body: &Value) -> crate::server::Reply {
    server.request(
        "POST",
        path,
        &[
            ("Authorization", &format!("Bearer {OPERATOR}")),
            ("Content-Type", "application/json"),
        ],
        Some(body.to_string().as_bytes()),
    )
}

/// The figures of a set as the docs define them, from its decisions as an auditor reads
/// them: counts by status, decisions with a failed rule, and the nearest-rank p50 and p99
/// of the time in rules (the sum of the rules' `duration_us`).
fn figures_by_hand(decisions: &[Value]) -> Value {
    let count = |status: &str| decisions.iter().filter(|d| d["status"] == status).count();
    let failed = decisions
        .iter()
        .filter(|d| {
            d["rules"]
                .as_array()
                .unwrap()
                .iter()
                .any(|r| r["outcome"] == "failed")
        })
        .count();
    let mut times: Vec<u64> = decisions
        .iter()
        .map(|d| {
            d["rules"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r["duration_us"].as_u64().unwrap())
                .sum()
        })
        .collect();
    times.sort_unstable();
    let rank = |p: usize| times[(p * times.len()).div_ceil(100).max(1) - 1];
    json!({
        "decisions": decisions.len(),
        "accepted": count("accepted"),
        "rejected": count("rejected"),
        "pending_review": count("pending_review"),
        "with_rule_failure": failed,
        "rules_p50_us": rank(50),
        "rules_p99_us": rank(99),
    })
}

#[test]
fn a_canary_at_20_percent_decides_a_fifth_by_account_and_reports_what_a_hand_count_gives() {
    let rules = rules_with_canary("percent = 20\n[abort]\ndecisions_min = 1000000\n");
    let server = Server::with_rules(rules.path());
    let started = server.wait_for("/v1/rules/canary", "the canary started", |status, _| {
        status == 200
    });
    assert_eq!(started["state"], "running", "{started}");
    assert_eq!(started["percent"], 20);
    assert_eq!(started["source"], "directory");
    let canary_version = started["version"].as_str().unwrap().to_owned();
    let live_version = server.get("/v1/rules", Some(OPERATOR)).json()["version"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_ne!(canary_version, live_version);

    let mut sides: BTreeMap<bool, Vec<String>> = BTreeMap::new();
    for n in 0..1000 {
        let account = format!("ACCT{n:07}");
        let key = format!("canary-{n}");
        let reply = server.submit(SUBMITTER, &key, &from_account(&account, &key));
        assert_eq!(reply.status, 201, "{}", reply.body);
        let decided = reply.json();
        let by_canary = decided["rule_set_version"] == canary_version.as_str();
        if !by_canary {
            assert_eq!(decided["rule_set_version"], live_version.as_str());
        }
        assert_eq!(
            by_canary,
            canary_takes(&account, 20),
            "{account}: by its hash"
        );
        sides
            .entry(by_canary)
            .or_default()
            .push(decided["payment_id"].as_str().unwrap().to_owned());
    }
    let to_canary = sides[&true].len();
    assert!(
        (150..=250).contains(&to_canary),
        "about a fifth: {to_canary}"
    );
    // One customer, one rule set: a retry replays, and a new payment from the same
    // account goes the same way.
    for n in [0, 1, 2, 3, 4, 5, 6, 7] {
        let account = format!("ACCT{n:07}");
        let again = server.submit(
            SUBMITTER,
            &format!("canary-{n}"),
            &from_account(&account, &format!("canary-{n}")),
        );
        assert_eq!(again.status, 200, "{}", again.body);
        let next = server.submit(
            SUBMITTER,
            &format!("next-{n}"),
            &from_account(&account, &format!("next-{n}")),
        );
        assert_eq!(
            next.json()["rule_set_version"] == canary_version.as_str(),
            canary_takes(&account, 20),
            "{account}"
        );
    }

    // The report, against a count by hand of every stored decision (the auditor's view
    // says which set decided each).
    let report = server.get("/v1/rules/canary", Some(AUDITOR)).json();
    let mut by_side: BTreeMap<bool, Vec<Value>> = BTreeMap::new();
    for payment in server.all_payments() {
        let id = payment["payment_id"].as_str().unwrap();
        let whole = server
            .get(&format!("/v1/payments/{id}"), Some(AUDITOR))
            .json();
        let decision = whole["decision"].clone();
        let canary = decision["canary"] == true;
        assert_eq!(
            canary,
            decision["rule_set_version"] == canary_version.as_str(),
            "{decision}"
        );
        by_side.entry(canary).or_default().push(decision);
    }
    assert_eq!(
        report["canary"],
        figures_by_hand(&by_side[&true]),
        "{report}"
    );
    assert_eq!(
        report["live"],
        figures_by_hand(&by_side[&false]),
        "{report}"
    );
    // Every debtor is new to the payroll's creditor (score 200): the canary, reviewing
    // from 100, holds what the live set, from 600, accepts.
    let share = |side: &str, status: &str| {
        report[side][status].as_u64().unwrap() * 100 / report[side]["decisions"].as_u64().unwrap()
    };
    assert!(
        share("canary", "pending_review") > 90 && share("live", "accepted") > 90,
        "{report}"
    );

    // The canary's set is kept: what it decided can be reproduced by the same rules.
    let reproduced = server
        .get(
            &format!("/v1/payments/{}/reproduction", sides[&true][0]),
            Some(AUDITOR),
        )
        .json();
    assert_eq!(reproduced["same"], true, "{reproduced}");
    assert_eq!(reproduced["rule_set_version"], canary_version.as_str());

    // An operator raises its share, then promotes it.
    let raised = post(
        &server,
        "/v1/rules/canary/percent",
        &json!({ "percent": 50 }),
    );
    assert_eq!(raised.json()["percent"], 50, "{}", raised.body);
    assert_eq!(
        post(
            &server,
            "/v1/rules/canary/percent",
            &json!({ "percent": 101 })
        )
        .code(),
        "invalid_percent"
    );
    let promoted = post(&server, "/v1/rules/canary/promote", &json!({}));
    assert_eq!(promoted.status, 200, "{}", promoted.body);
    assert_eq!(promoted.json()["version"], canary_version.as_str());
    assert_eq!(promoted.json()["promoted"], true);
    assert_eq!(
        server.get("/v1/rules", Some(OPERATOR)).json()["version"],
        canary_version.as_str()
    );
    let ended = server.get("/v1/rules/canary", Some(OPERATOR)).json();
    assert_eq!(ended["state"], "promoted", "{ended}");
    let after = server.submit(SUBMITTER, "after", &from_account("ACCT0000000", "after"));
    assert_eq!(after.json()["rule_set_version"], canary_version.as_str());
    let history = server.get("/v1/rules/history", Some(AUDITOR)).json();
    let steps: Vec<&str> = history
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["outcome"].as_str().unwrap())
        .filter(|o| o.starts_with("canary"))
        .collect();
    assert_eq!(
        steps,
        ["canary_promoted", "canary_percent", "canary_started"],
        "newest first: {history}"
    );
    assert!(
        !rules.path().join("canary.toml").exists(),
        "the policy stays in canary/"
    );

    let mut server = server;
    server.kill();
    let verify = audit_verify(&server.store());
    assert!(
        verify.status.success(),
        "{}",
        String::from_utf8_lossy(&verify.stdout)
    );
}

#[test]
fn a_canary_whose_rule_fails_is_aborted_and_a_deployment_promotes_another() {
    let rules = rules_with_canary(
        "percent = 100\n[abort]\ndecisions_min = 5\nrule_failure_percent_max = 0\n",
    );
    let canary = rules.path().join("canary");
    std::fs::write(
        canary.join("zz-panics.toml"),
        "kind = \"compliance\"\norder = 99\ncapabilities = [\"config\", \"log\"]\n[config]\nbehaviour = \"panic\"\n",
    )
    .unwrap();
    std::fs::copy(
        payrules_rule_artifacts::MISBEHAVING,
        canary.join("zz_panics.wasm"),
    )
    .unwrap();
    let server = Server::with_rules(rules.path());
    let started = server.wait_for("/v1/rules/canary", "the canary started", |status, _| {
        status == 200
    });
    let canary_version = started["version"].as_str().unwrap().to_owned();
    for n in 0..6 {
        let key = format!("failing-{n}");
        let reply = server.submit(SUBMITTER, &key, &from_account(&format!("A{n}"), &key));
        assert_eq!(reply.json()["rule_set_version"], canary_version.as_str());
        assert_eq!(
            reply.json()["status"],
            "pending_review",
            "its failure policy holds it"
        );
    }
    let aborted = server.wait_for("/v1/rules/canary", "the canary aborted", |_, canary| {
        canary["state"] == "aborted"
    });
    assert_eq!(aborted["ended"]["by"], "payrules");
    assert!(
        aborted["ended"]["why"]
            .as_str()
            .unwrap()
            .contains("had a rule fail"),
        "{aborted}"
    );
    assert_eq!(aborted["canary"]["with_rule_failure"], 6);
    let live = server.submit(SUBMITTER, "after", &from_account("A0", "after"));
    assert_ne!(
        live.json()["rule_set_version"],
        canary_version.as_str(),
        "the live set decides again"
    );
    // Aborted for good: a restart with the same canary/ does not bring it back.
    let server = server.crash_and_restart();
    assert_eq!(
        server.get("/v1/rules/canary", Some(OPERATOR)).code(),
        "no_canary"
    );
    let live = server.submit(SUBMITTER, "restarted", &from_account("A0", "restarted"));
    assert_ne!(live.json()["rule_set_version"], canary_version.as_str());
    let history = server.get("/v1/rules/history", Some(AUDITOR)).json();
    let entry = history
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["outcome"] == "canary_aborted")
        .cloned()
        .expect("the abort is audited");
    assert_eq!(entry["version"], canary_version.as_str());
    assert_eq!(entry["detail"]["canary"]["with_rule_failure"], 6);

    // Another candidate in canary/ (the failing rule gone) starts; the deployment writes
    // its files as the rules directory (as a read-only mount would be updated), and the
    // canary ends as promoted once its version is live.
    std::fs::remove_file(canary.join("zz-panics.toml")).unwrap();
    std::fs::remove_file(canary.join("zz_panics.wasm")).unwrap();
    let second = server.wait_for("/v1/rules/canary", "the next canary", |_, c| {
        c["state"] == "running" && c["version"] != canary_version.as_str()
    });
    let second_version = second["version"].as_str().unwrap().to_owned();
    std::fs::copy(
        canary.join("pipeline.toml"),
        rules.path().join("pipeline.toml"),
    )
    .unwrap();
    let ended = server.wait_for("/v1/rules/canary", "promoted by the deployment", |_, c| {
        c["state"] == "promoted"
    });
    assert_eq!(ended["version"], second_version.as_str());
    assert_eq!(
        server.get("/v1/rules", Some(OPERATOR)).json()["version"],
        second_version.as_str()
    );
}

#[test]
fn a_canary_runs_alike_on_every_host_sharing_the_store() {
    let Some(db) = crate::postgres::Database::make() else {
        return;
    };
    let rules_a = rules_with_canary("percent = 20\n[abort]\ndecisions_min = 1000000\n");
    let rules_b = rules_with_canary("percent = 20\n[abort]\ndecisions_min = 1000000\n");
    let mut a = Server::on_postgres_with_rules(&db, rules_a.path(), "", "");
    let mut b = Server::on_postgres_with_rules(&db, rules_b.path(), "", "");
    let on_a = a.wait_for("/v1/rules/canary", "a runs the canary", |status, _| {
        status == 200
    });
    let on_b = b.wait_for("/v1/rules/canary", "b runs the canary", |status, _| {
        status == 200
    });
    assert_eq!(on_a["version"], on_b["version"]);
    let started = b.get("/v1/rules/history", Some(AUDITOR)).json();
    let starts = started
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["outcome"] == "canary_started")
        .count();
    assert!((1..=2).contains(&starts), "{started}");

    // The share raised on one host is the share on the other; the same account goes to
    // the same set on both.
    let raised = post(&a, "/v1/rules/canary/percent", &json!({ "percent": 60 }));
    assert_eq!(raised.status, 200, "{}", raised.body);
    b.wait_for("/v1/rules/canary", "b follows the new share", |_, c| {
        c["percent"] == 60
    });
    for n in 0..40 {
        let account = format!("FLEET{n:04}");
        let on = |host: &Server, tag: String| {
            host.submit(SUBMITTER, &tag, &from_account(&account, &tag))
                .json()["rule_set_version"]
                .clone()
        };
        assert_eq!(
            on(&a, format!("a-{n}")),
            on(&b, format!("b-{n}")),
            "{account}"
        );
    }

    // Each host says which canary it runs, at which share.
    a.wait_for(
        "/v1/hosts",
        "both hosts report the canary",
        |status, fleet| {
            status == 200
                && fleet["hosts"].as_array().is_some_and(|hosts| {
                    hosts.len() == 2
                        && hosts.iter().all(|h| {
                            h["canary"]["version"] == on_a["version"]
                                && h["canary"]["percent"] == 60
                        })
                })
        },
    );

    // Removed on the other host: gone from both.
    let removed = b.request(
        "DELETE",
        "/v1/rules/canary",
        &[("Authorization", &format!("Bearer {OPERATOR}"))],
        None,
    );
    assert_eq!(removed.status, 200, "{}", removed.body);
    let ended = a.wait_for("/v1/rules/canary", "a removes it too", |_, c| {
        c["state"] == "removed"
    });
    assert!(
        ended["ended"]["by"]
            .as_str()
            .unwrap()
            .starts_with("the fleet"),
        "{ended}"
    );
    for host in [&mut a, &mut b] {
        let status = host.terminate();
        assert!(status.success(), "{status}\n{}", host.log());
    }
}
