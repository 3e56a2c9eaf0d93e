//! Several hosts on one PostgreSQL database: real `payrules serve` processes, a real
//! server, traffic over real HTTP. Each test has a database of its own.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Barrier, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::postgres::Database;
use crate::server::{
    AUDITOR, OPERATOR, OTHER_REVIEWER, REVIEWER, Reply, SUBMITTER, Server, audit_verify_config,
    payment,
};

const EXAMPLES: [&str; 3] = [
    "us-payroll-fednow.json",
    "sanctioned-creditor.json",
    "sepa-instant-supplier.json",
];

fn example(n: usize, tag: &str) -> Value {
    payment(EXAMPLES[n % EXAMPLES.len()], tag)
}

/// How many stored payments carry each end-to-end id, as a host lists them.
fn stored_by_end_to_end_id(host: &Server) -> HashMap<String, usize> {
    let mut counts = HashMap::new();
    for payment in host.all_payments() {
        let id = payment["end_to_end_id"].as_str().expect("an id").to_owned();
        *counts.entry(id).or_insert(0) += 1;
    }
    counts
}

/// Stops `hosts` (SIGTERM: each checkpoints its head) and verifies the chain with each
/// host's checkpoints.
fn stop_and_verify(hosts: &mut [&mut Server]) {
    for host in hosts.iter_mut() {
        let status = host.terminate();
        assert!(status.success(), "{status}\n{}", host.log());
    }
    for host in hosts.iter() {
        let checkpoints = host.config().with_file_name("payrules-audit.checkpoints");
        assert!(checkpoints.exists(), "each host checkpoints what it wrote");
        let verify = audit_verify_config(&host.config(), &checkpoints);
        let out = String::from_utf8_lossy(&verify.stdout);
        assert!(
            verify.status.success() && out.contains("intact"),
            "{out}{}",
            String::from_utf8_lossy(&verify.stderr)
        );
        assert!(out.starts_with("postgres://"), "{out}");
    }
}

#[test]
fn two_hosts_on_one_database_decide_each_key_once_and_keep_one_chain() {
    let Some(db) = Database::make() else { return };
    let mut a = Server::on_postgres(&db, "", "");
    let mut b = Server::on_postgres(&db, "", "");

    // Traffic split between them: each decision readable on the other host.
    for n in 0..24 {
        let (here, there) = if n % 2 == 0 { (&a, &b) } else { (&b, &a) };
        let key = format!("split-{n}");
        let reply = here.submit(SUBMITTER, &key, &example(n, &key));
        assert_eq!(reply.status, 201, "{key}: {}", reply.body);
        let id = reply.json()["payment_id"]
            .as_str()
            .expect("an id")
            .to_owned();
        let seen = there.get(&format!("/v1/payments/{id}"), Some(AUDITOR));
        assert_eq!(
            seen.status, 200,
            "{key} decided on one host, read on the other"
        );
        // A retry on the other host replays the same decision.
        let retry = there.submit(SUBMITTER, &key, &example(n, &key));
        assert_eq!(retry.status, 200, "{key}: {}", retry.body);
        assert_eq!(retry.json()["payment_id"], id.as_str());
    }

    // The same key sent to both hosts at the same instant, twenty times: one decision
    // each; the other request gets the stored decision (200) or "in flight" (409).
    for n in 0..20 {
        let key = format!("both-{n}");
        let body = example(n, &key);
        let barrier = Barrier::new(2);
        let replies: Vec<Reply> = std::thread::scope(|scope| {
            let sent: Vec<_> = [&a, &b]
                .into_iter()
                .map(|host| {
                    let (barrier, key, body) = (&barrier, &key, &body);
                    scope.spawn(move || {
                        barrier.wait();
                        host.submit(SUBMITTER, key, body)
                    })
                })
                .collect();
            sent.into_iter()
                .map(|s| s.join().expect("a reply"))
                .collect()
        });
        let created: Vec<&Reply> = replies.iter().filter(|r| r.status == 201).collect();
        assert_eq!(created.len(), 1, "{key}: {replies:?}");
        let id = created[0].json()["payment_id"].clone();
        for reply in &replies {
            match reply.status {
                201 => {}
                200 => assert_eq!(reply.json()["payment_id"], id, "{key}: the same decision"),
                409 => assert_eq!(reply.code(), "idempotency_key_in_flight", "{key}"),
                other => panic!("{key}: {other} {}", reply.body),
            }
        }
    }
    let stored = stored_by_end_to_end_id(&b);
    for n in 0..20 {
        assert_eq!(stored.get(&format!("E2E-both-{n}")), Some(&1), "both-{n}");
    }
    assert_eq!(stored.values().sum::<usize>(), 44);
    // The audit log is one chain, numbered without gaps, whichever host is asked.
    let entries = a.get("/v1/audit?limit=500", Some(AUDITOR)).json();
    let seqs: Vec<i64> = entries["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .map(|e| e["seq"].as_i64().expect("a seq"))
        .collect();
    assert_eq!(seqs, (1..=seqs.len() as i64).collect::<Vec<_>>());
    let decided = entries["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .filter(|e| e["action"] == "payment.decided")
        .count();
    assert_eq!(decided, 44);
    stop_and_verify(&mut [&mut a, &mut b]);
}

#[test]
fn a_host_killed_mid_burst_loses_nothing_it_acknowledged_and_its_keys_are_decided_once_on_the_other()
 {
    let Some(db) = Database::make() else { return };
    // A short lease, so that keys the dead host held are taken over within the test.
    let limits = "request_timeout_ms = 2000";
    let store = "idempotency_lease_ms = 3000";
    let a = Server::on_postgres(&db, limits, store);
    let mut b = Server::on_postgres(&db, limits, store);
    let answered = Mutex::new(Vec::<(String, String)>::new());
    let cut_off = Mutex::new(Vec::<(usize, String)>::new());
    let answered_by_a = AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    std::thread::scope(|scope| {
        for worker in 0..4 {
            let host = if worker % 2 == 0 { &a } else { &b };
            let (answered, cut_off, answered_by_a, stop) =
                (&answered, &cut_off, &answered_by_a, &stop);
            scope.spawn(move || {
                for n in 0.. {
                    if stop.load(Ordering::SeqCst) {
                        return;
                    }
                    let key = format!("kill-{worker}-{n}");
                    let reply = ureq::post(format!("{}/v1/payments", host.base))
                        .header("Authorization", &format!("Bearer {SUBMITTER}"))
                        .header("Content-Type", "application/json")
                        .header("Idempotency-Key", &key)
                        .send(example(n, &key).to_string());
                    match reply {
                        Ok(mut response) if response.status().is_success() => {
                            let decision: Value =
                                response.body_mut().read_json().expect("a decision");
                            let id = decision["payment_id"].as_str().expect("an id").to_owned();
                            answered.lock().unwrap().push((key, id));
                            if worker % 2 == 0 {
                                answered_by_a.fetch_add(1, Ordering::SeqCst);
                            }
                        }
                        Ok(response) => panic!("{key}: status {}", response.status()),
                        Err(_) => {
                            // Host A died under this request: committed or not, its retry
                            // on host B must tell.
                            cut_off.lock().unwrap().push((n, key));
                            return;
                        }
                    }
                }
            });
        }
        while answered_by_a.load(Ordering::SeqCst) < 40 {
            std::thread::sleep(Duration::from_millis(5));
        }
        a.sigkill();
        // Host B goes on serving a little while longer.
        std::thread::sleep(Duration::from_millis(300));
        stop.store(true, Ordering::SeqCst);
    });
    let answered = answered.into_inner().unwrap();
    let cut_off = cut_off.into_inner().unwrap();
    for (key, id) in &answered {
        let stored = b.get(&format!("/v1/payments/{id}"), Some(AUDITOR));
        assert_eq!(
            stored.status, 200,
            "{key} was answered 2xx but is not stored"
        );
    }
    // Each request cut off by the kill, retried on host B: decided once. While the dead
    // host's lease on its key runs, B answers 409; after it, B decides or replays.
    let started = Instant::now();
    for (n, key) in &cut_off {
        loop {
            let retry = b.submit(SUBMITTER, key, &example(*n, key));
            match retry.status {
                200 | 201 => break,
                409 if started.elapsed() < Duration::from_secs(15) => {
                    assert_eq!(retry.code(), "idempotency_key_in_flight");
                    std::thread::sleep(Duration::from_millis(100));
                }
                other => panic!("{key}: {other} {}", retry.body),
            }
        }
    }
    let stored = stored_by_end_to_end_id(&b);
    let keys = answered
        .iter()
        .map(|(k, _)| k)
        .chain(cut_off.iter().map(|(_, k)| k));
    for key in keys {
        assert_eq!(
            stored.get(&format!("E2E-{key}")),
            Some(&1),
            "{key}: decided once"
        );
    }
    assert!(
        stored.values().all(|&count| count == 1),
        "no key decided twice"
    );
    let status = b.terminate();
    assert!(status.success(), "{}", b.log());
    // The chain verifies with either host's checkpoints (the dead one's included).
    for host in [&a, &b] {
        let checkpoints = host.config().with_file_name("payrules-audit.checkpoints");
        let verify = audit_verify_config(&b.config(), &checkpoints);
        let out = String::from_utf8_lossy(&verify.stdout);
        assert!(
            verify.status.success(),
            "{out}{}",
            String::from_utf8_lossy(&verify.stderr)
        );
    }
}

/// A host under load through `outage` of its database: answers 503 with Retry-After
/// (never past the request timeout, never a 2xx not stored) while it lasts, then decides
/// again with no restart of its own; every key decided once; the chain verifies.
fn through_an_outage(db: &Database, outage_of_the_database: impl FnOnce()) {
    let mut host = Server::on_postgres(db, "", "");
    let answered = Mutex::new(Vec::<(String, String)>::new());
    let refused = Mutex::new(Vec::<(usize, String)>::new());
    let stop = AtomicBool::new(false);
    let outage = AtomicBool::new(false);
    let after_outage = AtomicUsize::new(0);
    std::thread::scope(|scope| {
        for worker in 0..3 {
            let (answered, refused, stop, outage, after_outage, host) =
                (&answered, &refused, &stop, &outage, &after_outage, &host);
            scope.spawn(move || {
                for n in 0.. {
                    if stop.load(Ordering::SeqCst) {
                        return;
                    }
                    let key = format!("outage-{worker}-{n}");
                    let started = Instant::now();
                    let reply = host.submit(SUBMITTER, &key, &example(n, &key));
                    assert!(
                        started.elapsed() < Duration::from_secs(12),
                        "{key}: no answer may wait past the request timeout"
                    );
                    match reply.status {
                        201 => {
                            let id = reply.json()["payment_id"]
                                .as_str()
                                .expect("an id")
                                .to_owned();
                            answered.lock().unwrap().push((key, id));
                            if outage.load(Ordering::SeqCst) {
                                after_outage.fetch_add(1, Ordering::SeqCst);
                            }
                        }
                        503 => {
                            assert!(reply.header("Retry-After").is_some(), "{key}: Retry-After");
                            assert_eq!(reply.code(), "store_unavailable", "{key}: {}", reply.body);
                            refused.lock().unwrap().push((n, key));
                            std::thread::sleep(Duration::from_millis(20));
                        }
                        other => panic!("{key}: {other} {}", reply.body),
                    }
                }
            });
        }
        while answered.lock().unwrap().len() < 30 {
            std::thread::sleep(Duration::from_millis(5));
        }
        outage_of_the_database();
        outage.store(true, Ordering::SeqCst);
        // Recovered with no restart: decisions stored again.
        let started = Instant::now();
        while after_outage.load(Ordering::SeqCst) < 30 {
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "the host did not recover by itself\n{}",
                host.log()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        stop.store(true, Ordering::SeqCst);
    });
    let answered = answered.into_inner().unwrap();
    let refused = refused.into_inner().unwrap();
    assert!(!refused.is_empty(), "the outage was seen as 503s");
    for (key, id) in &answered {
        let stored = host.get(&format!("/v1/payments/{id}"), Some(AUDITOR));
        assert_eq!(
            stored.status, 200,
            "{key} was answered 201 but is not stored"
        );
    }
    // A 503 may have come after the commit reached the database (the connection cut
    // during COMMIT): its retry tells, and it is decided once either way.
    for (n, key) in &refused {
        let retry = host.submit(SUBMITTER, key, &example(*n, key));
        assert!([200, 201].contains(&retry.status), "{key}: {}", retry.body);
    }
    let stored = stored_by_end_to_end_id(&host);
    assert!(
        stored.values().all(|&count| count == 1),
        "no key decided twice"
    );
    assert_eq!(stored.len(), answered.len() + refused.len());
    stop_and_verify(&mut [&mut host]);
}

#[test]
fn a_database_that_drops_every_connection_gets_503s_then_the_host_recovers_by_itself() {
    let Some(db) = Database::make() else { return };
    // The database stops taking connections to this database and drops every one it
    // has, for a second and a half.
    through_an_outage(&db, || {
        db.admin(&format!(
            "ALTER DATABASE {0} ALLOW_CONNECTIONS false; \
             SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE datname = '{0}' AND pid <> pg_backend_pid()",
            db.name()
        ));
        std::thread::sleep(Duration::from_millis(1_500));
        db.admin(&format!(
            "ALTER DATABASE {} ALLOW_CONNECTIONS true",
            db.name()
        ));
    });
}

#[test]
fn a_database_server_restarted_mid_load_gets_503s_then_the_host_recovers_by_itself() {
    // The whole server restarts: no other test may use it meanwhile.
    let Some(db) = Database::make_exclusive() else {
        return;
    };
    let Some(restart) = std::env::var_os("PAYRULES_TEST_POSTGRES_RESTART") else {
        assert!(
            std::env::var_os("PAYRULES_REQUIRE_POSTGRES").is_none(),
            "PAYRULES_REQUIRE_POSTGRES is set, but PAYRULES_TEST_POSTGRES_RESTART is not"
        );
        eprintln!("PAYRULES_TEST_POSTGRES_RESTART is not set: the restart test is skipped");
        return;
    };
    through_an_outage(&db, || {
        let status = std::process::Command::new("sh")
            .arg("-c")
            .arg(&restart)
            .stdout(std::process::Stdio::null())
            .status()
            .expect("the restart command runs");
        assert!(status.success(), "the restart command: {status}");
    });
}

/// The velocity-risk rule's reason codes in a stored decision, as an auditor reads it.
fn velocity_reasons(host: &Server, payment_id: &str) -> Vec<String> {
    let stored = host.get(&format!("/v1/payments/{payment_id}"), Some(AUDITOR));
    assert_eq!(stored.status, 200, "{}", stored.body);
    let decision = stored.json()["decision"].clone();
    let rule = decision["rules"]
        .as_array()
        .expect("the rules' trace")
        .iter()
        .find(|r| r["name"] == "velocity-risk")
        .unwrap_or_else(|| panic!("velocity-risk ran: {decision}"))
        .clone();
    rule["reasons"]
        .as_array()
        .expect("reasons")
        .iter()
        .map(|r| r["code"].as_str().expect("a code").to_owned())
        .collect()
}

#[test]
fn a_payment_accepted_on_one_host_counts_in_the_velocity_figures_of_the_other() {
    let Some(db) = Database::make() else { return };
    let a = Server::on_postgres(&db, "", "");
    // B starts before any payment: what it knows of A's, it learns by following.
    let b = Server::on_postgres(&db, "", "");
    let burst = |n: usize| {
        let mut body = payment("us-payroll-fednow.json", &format!("burst-{n}"));
        body["debtor"]["account"]["id"] = Value::from("70000000001");
        body
    };
    // Five payments of one debtor on host A within the hour: velocity-risk's debtor
    // burst (5 in an hour) for the next payment of that debtor, on any host.
    for n in 0..5 {
        let reply = a.submit(SUBMITTER, &format!("burst-{n}"), &burst(n));
        assert_eq!(reply.status, 201, "{}", reply.body);
        assert_eq!(reply.json()["status"], "accepted", "{}", reply.body);
    }
    let on_a = a.submit(SUBMITTER, "burst-a", &burst(5));
    let on_a = on_a.json()["payment_id"]
        .as_str()
        .expect("an id")
        .to_owned();
    assert!(
        velocity_reasons(&a, &on_a).contains(&"debtor-burst".to_owned()),
        "host A counts its own payments at once"
    );
    // Within the documented lag (the 100 ms polling interval and a query), host B's
    // figures hold A's payments.
    std::thread::sleep(Duration::from_millis(500));
    let on_b = b.submit(SUBMITTER, "burst-b", &burst(6));
    assert_eq!(on_b.status, 201, "{}", on_b.body);
    let on_b = on_b.json()["payment_id"]
        .as_str()
        .expect("an id")
        .to_owned();
    let reasons = velocity_reasons(&b, &on_b);
    assert!(
        reasons.contains(&"debtor-burst".to_owned())
            && reasons.contains(&"repeated-pair".to_owned()),
        "host B sees host A's payments: {reasons:?}"
    );
    // And B counts each once: its follower skips what B stored itself, and A's payments
    // are not counted twice however often B polls.
    let metrics = b.get("/metrics", Some(OPERATOR)).body;
    let followed: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("payrules_velocity_follow_delay_seconds_count "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("the follow delay is a metric:\n{metrics}"));
    assert_eq!(
        followed, 6,
        "B followed A's six accepted payments, not its own"
    );
}

#[test]
fn the_fleet_shows_each_host_and_the_rule_set_it_runs() {
    let Some(db) = Database::make() else { return };
    let a = Server::on_postgres(&db, "", "");
    // Host B runs another rule set: the examples with the review threshold moved.
    let rules = tempfile::tempdir().expect("a directory");
    crate::support::copy_dir(&crate::support::example_rules(), rules.path());
    let policy = rules.path().join("pipeline.toml");
    let text = std::fs::read_to_string(&policy).expect("the policy");
    std::fs::write(&policy, text.replace("review-at = 600", "review-at = 650"))
        .expect("the changed policy");
    let mut b = Server::on_postgres_with_rules(&db, rules.path(), "", "");
    let version = |host: &Server| {
        host.get("/v1/rules", Some(OPERATOR)).json()["version"]
            .as_str()
            .expect("a version")
            .to_owned()
    };
    let (version_a, version_b) = (version(&a), version(&b));
    assert_ne!(version_a, version_b);

    let fleet = a.get("/v1/hosts", Some(OPERATOR));
    assert_eq!(fleet.status, 200, "{}", fleet.body);
    let fleet = fleet.json();
    let hosts = fleet["hosts"].as_array().expect("hosts");
    assert_eq!(hosts.len(), 2, "{fleet}");
    assert!(hosts.iter().all(|h| h["live"] == true), "{fleet}");
    let this: Vec<&Value> = hosts.iter().filter(|h| h["this_host"] == true).collect();
    assert_eq!(this.len(), 1, "{fleet}");
    assert_eq!(this[0]["rule_set_version"], version_a.as_str());
    assert_eq!(this[0]["address"], a.address());
    let other = hosts.iter().find(|h| h["this_host"] == false).expect("B");
    assert_eq!(other["rule_set_version"], version_b.as_str());
    assert_eq!(other["address"], b.address());
    let mut both = vec![version_a.clone(), version_b];
    both.sort();
    assert_eq!(fleet["live_rule_set_versions"], serde_json::json!(both));
    // The auditor may look; a submitter may not.
    assert_eq!(b.get("/v1/hosts", Some(AUDITOR)).status, 200);
    assert_eq!(b.get("/v1/hosts", Some(SUBMITTER)).status, 403);

    // A host that stops on purpose leaves the list.
    assert!(b.terminate().success());
    let fleet = a.get("/v1/hosts", Some(OPERATOR)).json();
    let hosts = fleet["hosts"].as_array().expect("hosts");
    assert_eq!(hosts.len(), 1, "{fleet}");
    assert_eq!(hosts[0]["this_host"], true);
    assert_eq!(
        fleet["live_rule_set_versions"],
        serde_json::json!([version_a])
    );
}

#[test]
fn the_embedded_store_lists_its_one_host() {
    let server = Server::start();
    let fleet = server.get("/v1/hosts", Some(OPERATOR));
    assert_eq!(fleet.status, 200, "{}", fleet.body);
    let fleet = fleet.json();
    assert_eq!(fleet["hosts"].as_array().map(Vec::len), Some(1), "{fleet}");
    assert_eq!(fleet["hosts"][0]["this_host"], true);
    assert_eq!(fleet["hosts"][0]["address"], server.address());
}

/// The followed-payments count of a host's velocity figures (`/metrics`).
fn followed_count(host: &Server) -> u64 {
    let metrics = host.get("/metrics", Some(OPERATOR)).body;
    metrics
        .lines()
        .find_map(|l| l.strip_prefix("payrules_velocity_follow_delay_seconds_count "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("the follow delay is a metric:\n{metrics}"))
}

/// Two reviewers, on two hosts, resolving the same held payments at the same instant:
/// each payment is resolved once; the approvals won on one host count in the other's
/// velocity figures (followed through their audit entries), the rejections nowhere; one
/// chain verifies.
#[test]
fn reviewers_on_two_hosts_resolve_each_held_payment_once() {
    let Some(db) = Database::make() else { return };
    let mut a = Server::on_postgres(&db, "", "");
    let mut b = Server::on_postgres(&db, "", "");
    let held: Vec<String> = (0..5)
        .map(|n| {
            let tag = format!("held-{n}");
            let reply = a.submit(SUBMITTER, &tag, &payment("weak-match-review.json", &tag));
            assert_eq!(reply.json()["status"], "pending_review", "{}", reply.body);
            reply.json()["payment_id"]
                .as_str()
                .expect("an id")
                .to_owned()
        })
        .collect();
    let (a_ref, b_ref) = (&a, &b);
    let outcomes: Vec<(u16, u16)> = std::thread::scope(|scope| {
        let races: Vec<_> = held
            .iter()
            .map(|id| {
                let barrier = std::sync::Arc::new(Barrier::new(2));
                let on_a = {
                    let barrier = std::sync::Arc::clone(&barrier);
                    scope.spawn(move || {
                        barrier.wait();
                        a_ref
                            .review(REVIEWER, id, &serde_json::json!({"verdict": "approve"}))
                            .status
                    })
                };
                let on_b = scope.spawn(move || {
                    barrier.wait();
                    b_ref
                        .review(
                            OTHER_REVIEWER,
                            id,
                            &serde_json::json!({"verdict": "reject", "reason_code": "FRAD"}),
                        )
                        .status
                });
                (on_a, on_b)
            })
            .collect();
        races
            .into_iter()
            .map(|(x, y)| (x.join().unwrap(), y.join().unwrap()))
            .collect()
    });
    for (on_a, on_b) in &outcomes {
        let mut statuses = [*on_a, *on_b];
        statuses.sort_unstable();
        assert_eq!(statuses, [201, 409], "A {on_a}, B {on_b}");
    }
    let approvals_on_a = outcomes.iter().filter(|(on_a, _)| *on_a == 201).count() as u64;
    // Within the follow lag, B counts A's approvals; A follows nothing (B only rejected).
    let started = Instant::now();
    while followed_count(&b) < approvals_on_a && started.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(followed_count(&b), approvals_on_a);
    assert_eq!(followed_count(&a), 0);
    for id in &held {
        let on_b = b.get(&format!("/v1/payments/{id}"), Some(AUDITOR)).json();
        assert_ne!(on_b["final_status"], "pending_review", "{on_b}");
    }
    stop_and_verify(&mut [&mut a, &mut b]);
}

/// How many deliveries a host made, by its metrics.
fn delivered_by(host: &Server) -> u64 {
    let metrics = host.get("/metrics", None).body;
    metrics
        .lines()
        .find_map(|l| {
            l.strip_prefix(
                "payrules_webhook_deliveries_total{endpoint=\"core\",outcome=\"delivered\"} ",
            )
        })
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

/// Two hosts with one webhook: one of them relays (the lease), every event of either
/// reaches the receiver; the relaying host killed, the other takes the lease over and
/// delivers what comes after.
#[test]
fn one_host_relays_the_fleets_events_and_another_takes_over_when_it_dies() {
    let Some(db) = Database::make() else { return };
    let receiver = crate::webhooks::Receiver::listen("127.0.0.1:0".parse().unwrap());
    let (table, _secrets) = crate::webhooks::webhook_table(
        &format!("http://{}/events", receiver.address),
        "attempts_max = 1000",
    );
    let a = Server::on_postgres(&db, &table, "");
    let b = Server::on_postgres(&db, &table, "");
    for n in 0..10 {
        for (host, tag) in [(&a, "a"), (&b, "b")] {
            let key = format!("{tag}-{n}");
            let reply = host.submit(SUBMITTER, &key, &payment("us-payroll-fednow.json", &key));
            assert_eq!(reply.status, 201, "{}", reply.body);
        }
    }
    assert_eq!(receiver.wait_for(20).len(), 20);
    let (on_a, on_b) = (delivered_by(&a), delivered_by(&b));
    assert!(
        (on_a >= 20 && on_b == 0) || (on_b >= 20 && on_a == 0),
        "one relay: A delivered {on_a}, B {on_b}"
    );
    let (mut relay, survivor) = if on_a > 0 { (a, b) } else { (b, a) };
    relay.kill();
    for n in 0..5 {
        let key = format!("after-{n}");
        let reply = survivor.submit(SUBMITTER, &key, &payment("us-payroll-fednow.json", &key));
        assert_eq!(reply.status, 201, "{}", reply.body);
    }
    // Within the lease (10 s) and a renewal (2 s), the survivor relays.
    assert_eq!(receiver.wait_for(25).len(), 25);
    assert!(delivered_by(&survivor) >= 5);
}
