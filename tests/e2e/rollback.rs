//! Rollback: a rule set that went live before made live again in one request, under load,
//! from the copy kept beside the store; held until the rules directory changes or it is
//! released; across a restart; and on every host sharing a PostgreSQL database.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use serde_json::{Value, json};

use crate::server::{AUDITOR, OPERATOR, SUBMITTER, Server, audit_verify, payment};
use crate::support::{copy_dir, example_rules};

fn post(server: &Server, path: &str, key: &str, body: &Value) -> crate::server::Reply {
    server.request(
        "POST",
        path,
        &[
            ("Authorization", &format!("Bearer {key}")),
            ("Content-Type", "application/json"),
        ],
        Some(body.to_string().as_bytes()),
    )
}

fn release(server: &Server, key: &str) -> crate::server::Reply {
    server.request(
        "DELETE",
        "/v1/rules/rollback",
        &[("Authorization", &format!("Bearer {key}"))],
        None,
    )
}

fn live(server: &Server) -> Value {
    let reply = server.get("/v1/rules", Some(OPERATOR));
    assert_eq!(reply.status, 200, "{}", reply.body);
    reply.json()
}

/// Changes the example policy's review threshold in `dir` and waits until `server` runs
/// the new version; returns it.
fn review_at(server: &Server, dir: &std::path::Path, threshold: u32) -> String {
    let before = live(server)["version"].as_str().unwrap().to_owned();
    let policy = std::fs::read_to_string(example_rules().join("pipeline.toml")).unwrap();
    let changed = policy.replace("review-at = 600", &format!("review-at = {threshold}"));
    assert_ne!(changed, policy);
    std::fs::write(dir.join("pipeline.toml"), changed).unwrap();
    let rules = server.wait_for("/v1/rules", "the new policy live", |status, rules| {
        status == 200 && rules["version"] != before.as_str()
    });
    rules["version"].as_str().unwrap().to_owned()
}

/// Takes the velocity rule out of `dir` and waits until `server` runs the set without it
/// (whose live rules then no longer hold its compiled code); returns its version.
fn without_velocity_rule(server: &Server, dir: &std::path::Path) -> String {
    let before = live(server)["version"].as_str().unwrap().to_owned();
    for file in [
        "velocity-risk.toml",
        "velocity-risk.vectors.toml",
        "velocity_risk.wasm",
    ] {
        std::fs::remove_file(dir.join(file)).unwrap();
    }
    let rules = server.wait_for(
        "/v1/rules",
        "the set without velocity-risk",
        |status, rules| status == 200 && rules["version"] != before.as_str(),
    );
    assert_eq!(rules["rules"].as_array().unwrap().len(), 3, "{rules}");
    rules["version"].as_str().unwrap().to_owned()
}

#[test]
fn a_rollback_under_load_is_live_at_once_without_a_failed_request_or_a_compile() {
    let rules = tempfile::tempdir().unwrap();
    copy_dir(&example_rules(), rules.path());
    let server = Server::with_rules(rules.path());
    let first = live(&server)["version"].as_str().unwrap().to_owned();
    // The set rolled back to holds a component the live set does not: it comes from the
    // code cache, not from a compile.
    let second = without_velocity_rule(&server, rules.path());

    let stop = AtomicBool::new(false);
    let sent = AtomicUsize::new(0);
    let answers = Mutex::new(Vec::<(u16, Value)>::new());
    let rolled_back = std::thread::scope(|scope| {
        for worker in 0..2 {
            let (stop, sent, answers, server) = (&stop, &sent, &answers, &server);
            scope.spawn(move || {
                let mut n = 0;
                while !stop.load(Ordering::SeqCst) {
                    n += 1;
                    let key = format!("rollback-{worker}-{n}");
                    let reply =
                        server.submit(SUBMITTER, &key, &payment("us-payroll-fednow.json", &key));
                    sent.fetch_add(1, Ordering::SeqCst);
                    let body = serde_json::from_str(&reply.body).unwrap_or(Value::Null);
                    answers.lock().unwrap().push((reply.status, body));
                }
            });
        }
        std::thread::sleep(Duration::from_millis(300));
        let reply = post(&server, "/v1/rules/rollback", OPERATOR, &json!({}));
        let decided_before = answers.lock().unwrap().len();
        std::thread::sleep(Duration::from_millis(300));
        stop.store(true, Ordering::SeqCst);
        (reply, decided_before)
    });
    let (reply, decided_before) = rolled_back;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let done = reply.json();
    assert_eq!(
        done["version"],
        first.as_str(),
        "back to the version before"
    );
    assert_eq!(done["previous_version"], second.as_str());
    assert_eq!(done["over_directory_version"], second.as_str());
    assert_eq!(
        done["compiled"], 0,
        "nothing compiled on the way back: {done}"
    );
    assert_eq!(
        live(&server)["rules"].as_array().unwrap().len(),
        4,
        "velocity-risk is back"
    );

    let answers = answers.into_inner().unwrap();
    assert!(
        answers.len() > decided_before + 10,
        "load went on after the rollback"
    );
    let failed: Vec<_> = answers
        .iter()
        .filter(|(status, _)| *status != 201)
        .collect();
    assert!(
        failed.is_empty(),
        "{} failed of {}: {:?}",
        failed.len(),
        answers.len(),
        failed.first()
    );
    let versions: Vec<&str> = answers
        .iter()
        .map(|(_, body)| body["rule_set_version"].as_str().expect("a version"))
        .collect();
    assert!(
        versions.iter().all(|v| *v == first || *v == second),
        "{versions:?}"
    );
    assert_eq!(
        versions.last(),
        Some(&first.as_str()),
        "what is decided after the rollback is decided by the set rolled back to"
    );
    let after = &versions[decided_before + 2..];
    assert!(
        after.iter().all(|v| *v == first),
        "no decision of the rolled-back-from set after it"
    );

    let rules_now = live(&server);
    assert_eq!(rules_now["version"], first.as_str());
    assert_eq!(rules_now["rollback"]["version"], first.as_str());
    assert_eq!(rules_now["rollback"]["over"], second.as_str());
    let kept: Vec<&str> = rules_now["kept_versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(
        kept,
        [first.as_str(), second.as_str()],
        "the most recently live first"
    );
    let history = server.get("/v1/rules/history", Some(AUDITOR)).json();
    assert_eq!(history[0]["outcome"], "rolled_back", "{history}");
    assert_eq!(history[0]["version"], first.as_str());
    assert_eq!(history[0]["kept"], true);
    assert_eq!(history[0]["detail"]["by"], "api:ops");

    // It holds: a reload, a file rewritten with the same content, change nothing.
    let reload = post(&server, "/v1/rules/reload", OPERATOR, &json!({}));
    assert_eq!(reload.json()["outcome"], "unchanged", "{}", reload.body);
    let policy = std::fs::read(rules.path().join("pipeline.toml")).unwrap();
    std::fs::write(rules.path().join("pipeline.toml"), &policy).unwrap();
    std::thread::sleep(Duration::from_millis(600));
    assert_eq!(
        live(&server)["version"],
        first.as_str(),
        "the rollback holds"
    );

    // What is refused, and why.
    for (who, body, status, code) in [
        (SUBMITTER, json!({}), 403, "role_required"),
        (AUDITOR, json!({}), 403, "role_required"),
        (
            OPERATOR,
            json!({ "version": first }),
            409,
            "rule_set_already_live",
        ),
        (
            OPERATOR,
            json!({ "version": "0".repeat(64) }),
            404,
            "rule_set_not_kept",
        ),
        (
            OPERATOR,
            json!({ "version": "../../etc" }),
            400,
            "invalid_version",
        ),
        (OPERATOR, json!({ "versions": second }), 400, "invalid_body"),
    ] {
        let reply = post(&server, "/v1/rules/rollback", who, &body);
        assert_eq!(
            (reply.status, reply.code().as_str()),
            (status, code),
            "{body}: {}",
            reply.body
        );
    }
    assert_eq!(
        live(&server)["version"],
        first.as_str(),
        "a refusal changes nothing"
    );

    // A new version in the directory goes live: the rollback is not in force over it.
    let third = review_at(&server, rules.path(), 400);
    let rules_now = live(&server);
    assert_eq!(rules_now["version"], third.as_str());
    assert!(rules_now.get("rollback").is_none(), "{rules_now}");
    // The directory back at the version rolled back from: the rollback, not released,
    // is in force again (as a restart would find it).
    std::fs::copy(
        example_rules().join("pipeline.toml"),
        rules.path().join("pipeline.toml"),
    )
    .unwrap();
    let rules_now = server.wait_for(
        "/v1/rules",
        "the rollback in force again",
        |status, rules| status == 200 && rules["version"] == first.as_str(),
    );
    assert_eq!(
        rules_now["rollback"]["over"],
        second.as_str(),
        "{rules_now}"
    );
    // Released: the directory's version, for good.
    let released = release(&server, OPERATOR);
    assert_eq!(
        released.json()["version"],
        second.as_str(),
        "{}",
        released.body
    );
    assert_eq!(release(&server, OPERATOR).code(), "no_rollback");

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
fn a_rollback_holds_across_a_restart_until_released() {
    let rules = tempfile::tempdir().unwrap();
    copy_dir(&example_rules(), rules.path());
    let server = Server::with_rules(rules.path());
    let first = live(&server)["version"].as_str().unwrap().to_owned();
    let second = review_at(&server, rules.path(), 500);
    let reply = post(
        &server,
        "/v1/rules/rollback",
        OPERATOR,
        &json!({ "version": first }),
    );
    assert_eq!(reply.status, 200, "{}", reply.body);

    let server = server.crash_and_restart();
    let rules_now = live(&server);
    assert_eq!(
        rules_now["version"],
        first.as_str(),
        "the rollback outlives a restart"
    );
    assert_eq!(rules_now["rollback"]["over"], second.as_str());

    assert_eq!(release(&server, AUDITOR).status, 403);
    let released = release(&server, OPERATOR);
    assert_eq!(released.status, 200, "{}", released.body);
    assert_eq!(released.json()["outcome"], "swapped");
    assert_eq!(released.json()["version"], second.as_str());
    let rules_now = live(&server);
    assert_eq!(
        rules_now["version"],
        second.as_str(),
        "the directory's version again"
    );
    assert!(rules_now.get("rollback").is_none());
    let history = server.get("/v1/rules/history", Some(OPERATOR)).json();
    let outcomes: Vec<&str> = history
        .as_array()
        .unwrap()
        .iter()
        .take(4)
        .map(|e| e["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(outcomes[..2], ["loaded", "rollback_released"], "{history}");
    assert_eq!(release(&server, OPERATOR).code(), "no_rollback");

    // Released for good: the next restart starts with the directory's version.
    let server = server.crash_and_restart();
    assert_eq!(live(&server)["version"], second.as_str());

    // A kept copy altered on disk does not go live: it no longer loads as its version.
    let kept = server
        .store()
        .with_file_name("payrules-rule-sets")
        .join(&first);
    let policy = std::fs::read_to_string(kept.join("pipeline.toml")).unwrap();
    let altered = policy.replace("review-at = 600", "review-at = 650");
    assert_ne!(altered, policy);
    std::fs::write(kept.join("pipeline.toml"), altered).unwrap();
    let altered = post(
        &server,
        "/v1/rules/rollback",
        OPERATOR,
        &json!({ "version": first }),
    );
    assert_eq!(altered.status, 422, "{}", altered.body);
    assert!(altered.body.contains("it was altered"), "{}", altered.body);
    assert_eq!(live(&server)["version"], second.as_str(), "nothing changed");
}

#[test]
fn a_rollback_on_one_host_is_made_on_every_host_whose_directory_holds_the_same_version() {
    let Some(db) = crate::postgres::Database::make() else {
        return;
    };
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    copy_dir(&example_rules(), dir_a.path());
    copy_dir(&example_rules(), dir_b.path());
    let mut a = Server::on_postgres_with_rules(&db, dir_a.path(), "", "");
    let mut b = Server::on_postgres_with_rules(&db, dir_b.path(), "", "");
    let first = live(&a)["version"].as_str().unwrap().to_owned();
    // A new version deployed to both hosts.
    let second = review_at(&a, dir_a.path(), 500);
    assert_eq!(review_at(&b, dir_b.path(), 500), second);

    let reply = post(&a, "/v1/rules/rollback", OPERATOR, &json!({}));
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.json()["version"], first.as_str());
    let followed = b.wait_for(
        "/v1/rules",
        "the other host rolled back",
        |status, rules| status == 200 && rules["version"] == first.as_str(),
    );
    assert_eq!(followed["rollback"]["over"], second.as_str(), "{followed}");
    let hosts = b.wait_for(
        "/v1/hosts",
        "both hosts report the set rolled back to",
        |status, hosts| {
            status == 200
                && hosts["hosts"].as_array().is_some_and(|all| {
                    all.len() == 2 && all.iter().all(|h| h["rule_set_version"] == first.as_str())
                })
        },
    );
    assert_eq!(hosts["hosts"].as_array().unwrap().len(), 2);
    let history = b.get("/v1/rules/history", Some(AUDITOR)).json();
    let followed_entry = history
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["outcome"] == "loaded" && e["version"] == first.as_str())
        .unwrap_or_else(|| panic!("the other host recorded following it: {history}"));
    assert!(
        followed_entry["detail"]["trigger"]
            .as_str()
            .unwrap()
            .contains("rules.rolled_back"),
        "{followed_entry}"
    );

    // Released on the other host: both go back to their directory's version.
    let released = release(&b, OPERATOR);
    assert_eq!(released.status, 200, "{}", released.body);
    a.wait_for(
        "/v1/rules",
        "the first host released too",
        |status, rules| {
            status == 200 && rules["version"] == second.as_str() && rules.get("rollback").is_none()
        },
    );
    for host in [&mut a, &mut b] {
        let status = host.terminate();
        assert!(status.success(), "{status}\n{}", host.log());
    }
}
