//! Each security control against the attack it stops, on the real binary: the attacks of
//! the security review (issue 16), reproduced.
//!
//! - Screening: a listed name disguised (invisible characters, spacing, look-alike letters
//!   of other scripts, fullwidth forms) is still refused over HTTP by the real sanctions
//!   component; an unlisted name so disguised is held for review.
//! - The audit log: someone who can write the database file drops the triggers, edits a
//!   payment and recomputes every later hash; removes the newest entries; inserts a
//!   payment with no entry; edits a column listings filter on; flips a review's verdict;
//!   forges a review with no entry. `payrules audit verify` names each.
//! - Metrics: invented HTTP methods do not grow `/metrics`.
//! - Rules directories: symlinks out of them and special files are refused; a
//!   ConfigMap-style tree of symlinks loads and is kept as the last good set.

use std::path::Path;

use payrules::store::audit::entry_hash;
use serde_json::Value;

use crate::server::{AUDITOR, REVIEWER, SUBMITTER, Server, audit_verify, payment};
use crate::support::RulesDir;

#[test]
fn disguised_sanctioned_names_are_refused_over_http() {
    let server = Server::start();
    let disguises = [
        "K\u{200B}i\u{200B}m J\u{200B}o\u{200B}n\u{200B}g-U\u{200B}n",
        "Ki\u{00AD}m Jo\u{00AD}ng Un",
        "Kim\u{2060}Jong\u{2060}Un",
        "K.i.m J.o.n.g-U.n",
        "K i m J o n g U n",
        "\u{041A}im J\u{043E}ng Un",
        "\u{FF2B}\u{FF49}\u{FF4D} \u{FF2A}\u{FF4F}\u{FF4E}\u{FF47} \u{FF35}\u{FF4E}",
        "H\u{0456}zb\u{0430}llah",
    ];
    for (n, name) in disguises.iter().enumerate() {
        let key = format!("disguised-{n}");
        let mut body = payment("us-payroll-fednow.json", &key);
        body["creditor"]["name"] = Value::String((*name).to_owned());
        let reply = server.submit(SUBMITTER, &key, &body);
        assert_eq!(reply.status, 201, "{}", reply.body);
        let decision = reply.json();
        assert_eq!(
            decision["status"],
            "rejected",
            "{} was not refused: {decision}",
            name.escape_unicode()
        );
        assert!(
            decision.to_string().contains("RR04"),
            "{}: {decision}",
            name.escape_unicode()
        );
    }
    // An unlisted name written with a soft hyphen: nothing to refuse, but it is a finding.
    let mut body = payment("us-payroll-fednow.json", "soft-hyphen");
    body["creditor"]["name"] = Value::String("Maria Gon\u{00AD}zalez".to_owned());
    let reply = server.submit(SUBMITTER, "soft-hyphen", &body);
    let decision = reply.json();
    assert_eq!(decision["status"], "pending_review", "{decision}");
    assert!(
        decision.to_string().contains("name-disguised"),
        "{decision}"
    );
}

/// A stopped service's store, its audit key, master key and checkpoints, copied so each
/// attack starts from the same untouched files.
struct Evidence {
    dir: tempfile::TempDir,
}

impl Evidence {
    fn copy_of(store: &Path) -> Evidence {
        let dir = tempfile::tempdir().unwrap();
        let from = store.parent().unwrap();
        for name in [
            "payrules.db",
            "payrules.db-wal",
            "payrules-audit.key",
            "payrules-master.key",
            "payrules-audit.checkpoints",
        ] {
            if from.join(name).exists() {
                std::fs::copy(from.join(name), dir.path().join(name)).unwrap();
            }
        }
        Evidence { dir }
    }

    fn store(&self) -> std::path::PathBuf {
        self.dir.path().join("payrules.db")
    }

    fn db(&self) -> rusqlite::Connection {
        rusqlite::Connection::open(self.store()).unwrap()
    }

    /// `payrules audit verify` on it: exit code and what it printed.
    fn verify(&self) -> (Option<i32>, String) {
        let output = audit_verify(&self.store());
        let out = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        (output.status.code(), out)
    }
}

/// Recomputes the hash of every entry from `from_seq` on, keeping their MACs: all an
/// attacker without the audit key can do.
fn rechain(db: &rusqlite::Connection, from_seq: i64) {
    let entries: Vec<(i64, i64, String, String, String, String)> = db
        .prepare("SELECT seq, at_ms, actor, action, subject, detail FROM audit_log ORDER BY seq")
        .unwrap()
        .query_map([], |r| {
            Ok((
                r.get(0)?,
                r.get(1)?,
                r.get(2)?,
                r.get(3)?,
                r.get(4)?,
                r.get(5)?,
            ))
        })
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let mut prev: [u8; 32] = if from_seq == 1 {
        [0; 32]
    } else {
        let hash: Vec<u8> = db
            .query_row(
                "SELECT hash FROM audit_log WHERE seq = ?1",
                [from_seq - 1],
                |r| r.get(0),
            )
            .unwrap();
        hash.try_into().unwrap()
    };
    for (seq, at, actor, action, subject, detail) in entries {
        if seq < from_seq {
            continue;
        }
        let hash = entry_hash(&prev, seq, at, &actor, &action, &subject, &detail);
        db.execute(
            "UPDATE audit_log SET prev_hash = ?1, hash = ?2 WHERE seq = ?3",
            rusqlite::params![prev.as_slice(), hash.as_slice(), seq],
        )
        .unwrap();
        prev = hash;
    }
}

fn sha256_hex(text: &str) -> String {
    use sha2::Digest;
    payrules::registry::hex(&sha2::Sha256::digest(text.as_bytes()))
}

#[test]
fn audit_verify_catches_a_history_rewritten_by_someone_with_the_database_file() {
    let mut server = Server::start();
    for n in 0..4 {
        let key = format!("r{n}");
        let reply = server.submit(SUBMITTER, &key, &payment("us-payroll-fednow.json", &key));
        assert_eq!(reply.status, 201, "{}", reply.body);
    }
    // A graceful stop checkpoints the head.
    assert!(server.terminate().success());
    let original = server.store();
    let (code, out) = Evidence::copy_of(&original).verify();
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.contains("intact, 5 entries") && out.contains("last checkpoint at entry 5"),
        "{out}"
    );

    // 1. Triggers dropped, an amount edited (payment, column and the entry's digest),
    //    every later hash recomputed. The payment is sealed, so the attacker writes the
    //    edited payment in clear in its place (as if written before sealing), knowing it
    //    whole: the strongest case.
    let evidence = Evidence::copy_of(&original);
    let db = evidence.db();
    db.execute_batch(
        "DROP TRIGGER audit_log_is_append_only_update;
         DROP TRIGGER audit_log_is_append_only_delete;",
    )
    .unwrap();
    let (id, stored): (String, String) = db
        .query_row("SELECT id, payment FROM payments WHERE seq = 2", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .unwrap();
    assert!(stored.starts_with("pd1."), "sealed: {stored}");
    let plain = serde_json::to_string(
        &payrules::model::Payment::from_json(&payment("us-payroll-fednow.json", "r1").to_string())
            .unwrap(),
    )
    .unwrap();
    let edited = plain.replace("\"3250.75\"", "\"32.50\"");
    assert_ne!(edited, plain);
    let detail: String = db
        .query_row(
            "SELECT detail FROM audit_log WHERE subject = ?1",
            [&id],
            |r| r.get(0),
        )
        .unwrap();
    let mut detail: Value = serde_json::from_str(&detail).unwrap();
    detail["payment_sha256"] = Value::String(sha256_hex(&edited));
    db.execute(
        "UPDATE payments SET payment = ?1, amount = '32.50' WHERE id = ?2",
        [&edited, &id],
    )
    .unwrap();
    db.execute(
        "UPDATE audit_log SET detail = ?1 WHERE subject = ?2",
        [&detail.to_string(), &id],
    )
    .unwrap();
    let seq: i64 = db
        .query_row("SELECT seq FROM audit_log WHERE subject = ?1", [&id], |r| {
            r.get(0)
        })
        .unwrap();
    rechain(&db, seq);
    let (code, out) = evidence.verify();
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains(&format!("BROKEN at audit entry {seq}"))
            && out.contains("authentication code"),
        "{out}"
    );
    // The MACs stripped too, as if every entry predated audit keys: the checkpoint still
    // names the true head; without the checkpoint file, an unsigned chain is refused.
    db.execute("UPDATE audit_log SET key_id = NULL, mac = NULL", [])
        .unwrap();
    let (code, out) = evidence.verify();
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("not the one its checkpoint recorded"), "{out}");
    std::fs::remove_file(evidence.dir.path().join("payrules-audit.checkpoints")).unwrap();
    let (code, out) = evidence.verify();
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("no entry is authenticated"), "{out}");

    // 2. The newest entry and its payment removed.
    let evidence = Evidence::copy_of(&original);
    let db = evidence.db();
    db.execute_batch(
        "DROP TRIGGER audit_log_is_append_only_delete;
         DELETE FROM idempotency_keys WHERE payment_id =
             (SELECT subject FROM audit_log ORDER BY seq DESC LIMIT 1);
         DELETE FROM payments WHERE id = (SELECT subject FROM audit_log ORDER BY seq DESC LIMIT 1);
         DELETE FROM audit_log WHERE seq = (SELECT max(seq) FROM audit_log);",
    )
    .unwrap();
    let (code, out) = evidence.verify();
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("removed from its end"), "{out}");

    // 3. A payment inserted with no entry.
    let evidence = Evidence::copy_of(&original);
    evidence
        .db()
        .execute(
            "INSERT INTO payments (id, received_at_ms, submitted_by, end_to_end_id, amount, \
             currency, status, rule_set_version, payment, decision) \
             SELECT 'pay_forged', received_at_ms, submitted_by, 'E2E-forged', amount, currency, \
             status, rule_set_version, payment, decision FROM payments WHERE seq = 1",
            [],
        )
        .unwrap();
    let (code, out) = evidence.verify();
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("payment pay_forged is stored with no audit entry"),
        "{out}"
    );

    // 4. Only a column that listings filter on.
    let evidence = Evidence::copy_of(&original);
    evidence
        .db()
        .execute("UPDATE payments SET status = 'rejected' WHERE seq = 3", [])
        .unwrap();
    let (code, out) = evidence.verify();
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("a column of its row"), "{out}");

    // 5. The checkpoint file removed.
    let evidence = Evidence::copy_of(&original);
    std::fs::remove_file(evidence.dir.path().join("payrules-audit.checkpoints")).unwrap();
    let (code, out) = evidence.verify();
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("no checkpoint"), "{out}");
}

/// Unauthenticated requests with invented methods do not grow `/metrics`: every method
/// outside the standard ones is counted as `other` (issue 16, defect 6).
#[test]
fn invented_http_methods_do_not_grow_the_metrics() {
    use std::io::{Read, Write};
    let server = Server::start();
    for n in 0..200 {
        let mut stream = std::net::TcpStream::connect(server.address()).unwrap();
        write!(
            stream,
            "MADEUP{n} /v1/payments HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut answer = String::new();
        let _ = stream.read_to_string(&mut answer);
    }
    let metrics = server.get("/metrics", None).body;
    assert!(
        !metrics.contains("MADEUP"),
        "an invented method became a label"
    );
    assert!(
        metrics.contains("method=\"other\""),
        "invented methods are counted as other"
    );
    assert!(metrics.len() < 64 * 1024, "{} bytes", metrics.len());
}

const SCREENING_MANIFEST: &str = "kind = \"compliance\"\ncapabilities = [\"lists\", \"config\"]\n[lists]\nsanctions = \"lists/sdn.csv\"\n";

/// A list that is a symlink out of the rules directory is refused, not read (issue 16,
/// defect 4): `lists/sdn.csv -> /etc/passwd`.
#[test]
fn a_symlink_out_of_the_rules_directory_is_not_followed() {
    let rules = RulesDir::new().rule(
        "sanctions-screening",
        SCREENING_MANIFEST,
        payrules_rule_artifacts::SANCTIONS_SCREENING,
    );
    std::fs::create_dir_all(rules.path().join("lists")).unwrap();
    std::os::unix::fs::symlink("/etc/passwd", rules.path().join("lists/sdn.csv")).unwrap();
    let error = rules.load_error();
    assert!(
        error.contains("sdn.csv") && error.contains("outside the rules directory"),
        "{error}"
    );
    assert!(
        !error.contains("root:"),
        "nothing of the file is shown: {error}"
    );
}

/// A FIFO in place of a component is refused at once instead of blocking the load until
/// requests time out; a device is never read.
#[test]
fn special_files_in_a_rules_directory_are_refused_at_once() {
    let rules = RulesDir::new().file("fifo-rule.toml", b"kind = \"compliance\"\n");
    let fifo = rules.path().join("fifo_rule.wasm");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(made.success());
    let started = std::time::Instant::now();
    let error = rules.load_error();
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
    assert!(error.contains("not a regular file"), "{error}");

    let rules = RulesDir::new().file("zero-rule.toml", b"kind = \"compliance\"\n");
    std::os::unix::fs::symlink("/dev/zero", rules.path().join("zero_rule.wasm")).unwrap();
    let error = rules.load_error();
    assert!(error.contains("zero_rule.wasm"), "{error}");
}

/// A rules directory laid out as a Kubernetes ConfigMap mount (every file a symlink
/// through `..data` to a timestamped directory) loads, and its kept copy is made and
/// loads as the same version.
#[test]
fn a_configmap_style_rules_directory_loads_and_is_kept_as_last_good() {
    let mount = tempfile::tempdir().unwrap();
    let real = mount.path().join("..2026_11_26_14_35_00.000000001");
    crate::support::copy_dir(&crate::support::example_rules(), &real);
    std::os::unix::fs::symlink(
        "..2026_11_26_14_35_00.000000001",
        mount.path().join("..data"),
    )
    .unwrap();
    for entry in std::fs::read_dir(&real).unwrap() {
        let name = entry.unwrap().file_name();
        let link = Path::new("..data").join(&name);
        std::os::unix::fs::symlink(link, mount.path().join(&name)).unwrap();
    }
    let direct = crate::support::load(&crate::support::example_rules());
    let mounted = crate::support::load(mount.path());
    assert_eq!(mounted.version, direct.version);

    let store = tempfile::tempdir().unwrap();
    let kept = payrules::registry::kept::KeptSets::open(&store.path().join("kept")).unwrap();
    let live = payrules::registry::live::LiveRules::load(
        mount.path(),
        crate::support::runtime(),
        payrules::store::now_unix_ms(),
    )
    .expect("loads")
    .keeping(kept);
    let last_good = live
        .kept()
        .unwrap()
        .last_live()
        .expect("kept as the last live set");
    let kept = crate::support::load(&last_good);
    assert_eq!(kept.version, live.current().version);
    assert!(
        !last_good.join("..data").exists(),
        "the mount's internals are not copied"
    );
}

/// `POST /v1/rules/shadow` reads only directories under the configured shadow roots;
/// it says the same of a path outside them whether it exists or not, refuses an empty
/// set, bounds its input, and never echoes a file's content (issue 16, defect 3).
#[test]
fn a_shadow_set_is_read_only_from_under_the_shadow_roots() {
    use crate::server::OPERATOR;
    let server = Server::start();
    let install = |dir: &str| {
        let body = serde_json::json!({ "dir": dir }).to_string();
        server.request(
            "POST",
            "/v1/rules/shadow",
            &[
                ("Authorization", &format!("Bearer {OPERATOR}")),
                ("Content-Type", "application/json"),
            ],
            Some(body.as_bytes()),
        )
    };
    let outside = [
        "/".to_owned(),
        "/etc".to_owned(),
        "/proc/self".to_owned(),
        "/no/such/directory".to_owned(),
        "x".repeat(5_000),
    ];
    let mut messages = Vec::new();
    for dir in &outside {
        let reply = install(dir);
        assert_eq!(reply.status, 422, "{dir:.40}: {}", reply.body);
        assert_eq!(reply.code(), "shadow_dir_not_allowed", "{}", reply.body);
        assert!(reply.body.len() < 1_024, "the answer is bounded");
        messages.push(
            reply.json()["error"]["message"]
                .as_str()
                .unwrap()
                .replace(dir.as_str(), "DIR"),
        );
    }
    assert_eq!(
        messages[1], messages[3],
        "existing and missing paths are told apart"
    );

    // Under the root (the temporary directory): an empty set, and a file that is not
    // TOML whose content must not come back.
    let empty = tempfile::tempdir().unwrap();
    let reply = install(&empty.path().display().to_string());
    assert_eq!(reply.code(), "rule_set_rejected", "{}", reply.body);
    assert!(reply.body.contains("empty shadow set"), "{}", reply.body);
    let secret = tempfile::tempdir().unwrap();
    std::fs::write(
        secret.path().join("creds.toml"),
        "password = hunter2-do-not-echo\n",
    )
    .unwrap();
    let reply = install(&secret.path().display().to_string());
    assert_eq!(reply.status, 422, "{}", reply.body);
    assert!(!reply.body.contains("hunter2"), "{}", reply.body);
    let audit = server
        .get("/v1/audit?limit=500", Some(crate::server::AUDITOR))
        .body;
    assert!(!audit.contains("hunter2"), "the audit log echoes a file");
}

/// A local API key file that others may read is not trusted: `serve` refuses to start on
/// it, naming the file and its mode (issue 16, item 8).
#[test]
fn a_local_key_file_others_can_read_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(
        crate::support::workspace().join("examples"),
        dir.path().join("examples"),
    )
    .unwrap();
    let key_file = dir.path().join("payrules-dev.key");
    std::fs::write(&key_file, "pr_planted_by_someone_else\n").unwrap();
    std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_payrules"))
        .current_dir(dir.path())
        .args(["serve", "--listen", "127.0.0.1:0"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("payrules-dev.key") && stderr.contains("mode 644"),
        "{stderr}"
    );
}

/// The `Bearer` scheme is case-insensitive (RFC 9110): `bearer KEY` authenticates.
#[test]
fn the_bearer_scheme_is_case_insensitive() {
    use crate::server::AUDITOR;
    let server = Server::start();
    for scheme in ["Bearer", "bearer", "BEARER"] {
        let reply = server.request(
            "GET",
            "/v1/audit",
            &[("Authorization", &format!("{scheme} {AUDITOR}"))],
            None,
        );
        assert_eq!(reply.status, 200, "{scheme}: {}", reply.body);
    }
    let reply = server.request(
        "GET",
        "/v1/audit",
        &[("Authorization", &format!("Basic {AUDITOR}"))],
        None,
    );
    assert_eq!(reply.status, 401);
}

/// A submitting system is told the answer and its reason codes, never the rules'
/// findings: another client's payments from the same debtor show in the fraud reasons
/// (velocity figures) an auditor reads, and must not reach this client (issue 16,
/// defect 5). The same holds for its payment read back and for a pacs.002.
#[test]
fn a_submitter_never_sees_the_findings_that_quote_other_clients_payments() {
    use crate::server::{AUDITOR, OTHER_SUBMITTER};
    let server = Server::start();
    for n in 0..4 {
        let key = format!("checkout-{n}");
        let reply = server.submit(SUBMITTER, &key, &payment("us-payroll-fednow.json", &key));
        assert_eq!(reply.status, 201, "{}", reply.body);
    }
    let reply = server.submit(
        OTHER_SUBMITTER,
        "treasury-1",
        &payment("us-payroll-fednow.json", "treasury-1"),
    );
    assert_eq!(reply.status, 201, "{}", reply.body);
    let told = reply.json();
    let id = told["payment_id"].as_str().unwrap().to_owned();
    let whole = server
        .get(&format!("/v1/payments/{id}"), Some(AUDITOR))
        .json()["decision"]
        .clone();
    let findings: Vec<String> = whole["rules"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|rule| rule["reasons"].as_array())
        .flatten()
        .map(|reason| reason["message"].as_str().unwrap().to_owned())
        .collect();
    assert!(
        findings.iter().any(|m| m.contains("debtor")),
        "the auditor reads the velocity findings built on the other client's payments: {whole}"
    );
    let read_back = server
        .get(&format!("/v1/payments/{id}"), Some(OTHER_SUBMITTER))
        .json()["decision"]
        .clone();
    for view in [&told, &read_back] {
        let text = view.to_string();
        for finding in &findings {
            assert!(
                !text.contains(finding.as_str()),
                "{finding} reached the client: {text}"
            );
        }
        assert!(
            view.get("rules").is_none() && view.get("risk_score").is_none(),
            "{text}"
        );
        assert_eq!(view["status"], whole["status"]);
    }
}

/// Each API key is held to its rate: past its burst a key gets `429 rate_limited` with
/// `Retry-After` and the IETF `RateLimit` headers, while other keys are served (issue 16,
/// item 12).
#[test]
fn a_key_past_its_rate_is_answered_429_and_others_are_served() {
    use crate::server::{AUDITOR, OTHER_SUBMITTER};
    let server = Server::with_limits("key_requests_per_second = 2\nkey_burst = 5");
    let mut limited = None;
    for _ in 0..20 {
        let reply = server.get("/v1/payments", Some(SUBMITTER));
        if reply.status == 429 {
            limited = Some(reply);
            break;
        }
        assert_eq!(reply.status, 200, "{}", reply.body);
    }
    let limited = limited.expect("the key was held to its rate");
    assert_eq!(limited.code(), "rate_limited");
    assert!(limited.header("retry-after").is_some());
    assert_eq!(limited.header("ratelimit-policy"), Some("\"key\";q=2;w=1"));
    assert!(
        limited
            .header("ratelimit")
            .is_some_and(|v| v.starts_with("\"key\";r=0;t=")),
        "{limited:?}"
    );
    assert_eq!(
        server.get("/v1/payments", Some(OTHER_SUBMITTER)).status,
        200
    );
    assert_eq!(server.get("/v1/audit", Some(AUDITOR)).status, 200);
    // The bucket refills at its rate.
    std::thread::sleep(std::time::Duration::from_millis(1_100));
    assert_eq!(server.get("/v1/payments", Some(SUBMITTER)).status, 200);
}

/// Personal data at rest, against someone with the database file: the served store's
/// file holds no name, account or remittance line in clear (the real binary, a real
/// payment over HTTP); its data keys cannot be quietly erased or removed — `audit verify`
/// names a key erased with no audit entry, and a payment whose key is gone; and without
/// the right master key nothing opens (verify refuses to run, naming the key).
#[test]
fn sealed_personal_data_and_its_keys_cannot_be_read_or_quietly_destroyed() {
    let mut server = Server::start();
    for key in ["pd-1", "pd-2"] {
        let reply = server.submit(SUBMITTER, key, &payment("us-payroll-fednow.json", key));
        assert_eq!(reply.status, 201, "{}", reply.body);
    }
    let id = server.get("/v1/payments", Some(AUDITOR)).json()["payments"][0]["payment_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let whole = server
        .get(&format!("/v1/payments/{id}"), Some(AUDITOR))
        .json();
    assert_eq!(
        whole["payment"]["creditor"]["name"], "Maria Gonzalez",
        "{whole}"
    );
    assert!(server.terminate().success());
    let original = server.store();
    let mut files = String::new();
    for name in ["payrules.db", "payrules.db-wal"] {
        if let Ok(bytes) = std::fs::read(original.with_file_name(name)) {
            files.push_str(&String::from_utf8_lossy(&bytes));
        }
    }
    for secret in [
        "Maria Gonzalez",
        "Harbor Coffee",
        "Salary November",
        "44444444444",
    ] {
        assert!(
            !files.contains(secret),
            "{secret:?} is in the database file in clear"
        );
    }
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(original.with_file_name("payrules-master.key"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);

    // 1. A data key erased behind the service's back (no audit entry).
    let evidence = Evidence::copy_of(&original);
    evidence
        .db()
        .execute("UPDATE data_keys SET wrapped = x'', erased_at_ms = 1", [])
        .unwrap();
    let (code, out) = evidence.verify();
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("erased with no audit entry"), "{out}");

    // 2. The data keys deleted outright: the payments they sealed no longer open.
    let evidence = Evidence::copy_of(&original);
    evidence.db().execute("DELETE FROM data_keys", []).unwrap();
    let (code, out) = evidence.verify();
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("does not open"), "{out}");

    // 3. Another master key in the file: refused, naming the key it needs.
    let evidence = Evidence::copy_of(&original);
    let key_file = evidence.dir.path().join("payrules-master.key");
    std::fs::write(&key_file, format!("other {}\n", "ab".repeat(32))).unwrap();
    let (code, out) = evidence.verify();
    assert_eq!(code, Some(2), "{out}");
    assert!(
        out.contains("not among the master keys given (other)"),
        "{out}"
    );
}

/// Reviews are evidence too: a verdict flipped in the database (its triggers dropped),
/// and a review forged for a payment nobody reviewed, are each named by `audit verify`.
#[test]
fn audit_verify_catches_a_review_rewritten_or_forged_in_the_database() {
    let mut server = Server::start();
    let mut held = Vec::new();
    for key in ["rv-1", "rv-2"] {
        let reply = server.submit(SUBMITTER, key, &payment("weak-match-review.json", key));
        assert_eq!(reply.json()["status"], "pending_review", "{}", reply.body);
        held.push(reply.json()["payment_id"].as_str().unwrap().to_owned());
    }
    let reply = server.review(
        REVIEWER,
        &held[0],
        &serde_json::json!({"verdict": "reject", "reason_code": "AG01"}),
    );
    assert_eq!(reply.status, 201, "{}", reply.body);
    assert!(server.terminate().success());
    let original = server.store();
    let (code, out) = Evidence::copy_of(&original).verify();
    assert_eq!(code, Some(0), "{out}");

    // 1. The rejection turned into an approval.
    let evidence = Evidence::copy_of(&original);
    let db = evidence.db();
    let refused = db.execute(
        "UPDATE reviews SET verdict = 'approve', reason_code = NULL",
        [],
    );
    assert!(
        refused.is_err(),
        "reviews are append-only while the triggers stand"
    );
    db.execute_batch(
        "DROP TRIGGER reviews_are_append_only_update;
         UPDATE reviews SET verdict = 'approve', reason_code = NULL;",
    )
    .unwrap();
    let (code, out) = evidence.verify();
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains(&format!("payment {}", held[0])) && out.contains("its review"),
        "{out}"
    );

    // 2. An approval forged for the payment nobody reviewed.
    let evidence = Evidence::copy_of(&original);
    evidence
        .db()
        .execute(
            "INSERT INTO reviews (payment_id, verdict, reviewer, reviewed_at_ms, \
             decision_sha256, expired) VALUES (?1, 'approve', 'analyst', 1, '', 0)",
            [&held[1]],
        )
        .unwrap();
    let (code, out) = evidence.verify();
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains(&format!(
            "the review of payment {} is stored with no audit entry",
            held[1]
        )),
        "{out}"
    );
}

/// The API keys are read again when the config file changes, with no restart: a key added
/// works, a key removed or past its `expires_at` is refused (and a console session of a
/// removed key ends), each reload audited; a config that does not load changes nothing.
#[test]
fn keys_added_removed_or_expired_in_the_config_take_effect_without_a_restart() {
    use crate::server::{AUDITOR, SUBMITTER};
    use payrules::api::auth::key_sha256;
    const ROTATED: &str = "pr_test_rotated_submitter_0008";
    let server = Server::start();
    let config = server.config();
    let original = std::fs::read_to_string(&config).unwrap();
    let eventually = |what: &str, done: &dyn Fn() -> bool| {
        let started = std::time::Instant::now();
        while !done() {
            assert!(started.elapsed().as_secs() < 20, "{what}\n{}", server.log());
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    };
    let status = |key: &str| server.get("/v1/payments", Some(key)).status;
    assert_eq!(status(ROTATED), 401);
    let login = server.request(
        "POST",
        "/console/login",
        &[("Content-Type", "application/x-www-form-urlencoded")],
        Some(format!("key={AUDITOR}").as_bytes()),
    );
    let session = login
        .header("set-cookie")
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let audit_page = || {
        server
            .request("GET", "/console/audit", &[("Cookie", &session)], None)
            .status
    };
    assert_eq!(audit_page(), 200);

    // A key added: it works at once.
    let rotated = format!(
        "[[api_keys]]\nname = \"rotated\"\nsha256 = \"{}\"\nroles = [\"submitter\"]\n",
        key_sha256(ROTATED)
    );
    std::fs::write(&config, format!("{original}\n{rotated}")).unwrap();
    eventually("the added key works", &|| status(ROTATED) == 200);
    let reloads = |added: &str| {
        server.get("/v1/audit", Some(AUDITOR)).json()["entries"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| {
                e["action"] == "keys.reloaded" && e["detail"].as_str().unwrap().contains(added)
            })
            .count()
    };
    assert_eq!(reloads("\"added\":[\"rotated\"]"), 1);

    // A config that does not load: nothing changes.
    std::fs::write(&config, "this is = [not toml").unwrap();
    eventually("the broken config is logged", &|| {
        server.log().contains("the config was not read again")
    });
    assert_eq!(status(ROTATED), 200);
    assert_eq!(status(SUBMITTER), 200);

    // The old submitter key removed, the new one given an expiry in the past; the auditor
    // key removed: its console session ends.
    let remove = |text: &str, name: &str, key: &str, roles: &str| {
        let block = format!(
            "[[api_keys]]\nname = \"{name}\"\nsha256 = \"{}\"\nroles = [{roles}]\n",
            key_sha256(key)
        );
        assert!(text.contains(&block), "{block} in the config");
        text.replace(&block, "")
    };
    let text = remove(&original, "checkout", SUBMITTER, "\"submitter\"");
    let text = remove(&text, "audit", AUDITOR, "\"auditor\"");
    let expired = rotated.replace(
        "roles = [\"submitter\"]\n",
        "roles = [\"submitter\"]\nexpires_at = \"2000-01-01T00:00:00Z\"\n",
    );
    std::fs::write(&config, format!("{text}\n{expired}")).unwrap();
    eventually("the removed key is refused", &|| status(SUBMITTER) == 401);
    let reply = server.get("/v1/payments", Some(ROTATED));
    assert_eq!(reply.status, 401, "{}", reply.body);
    assert!(
        reply.body.contains("expired at 2000-01-01T00:00:00Z"),
        "{}",
        reply.body
    );
    assert_eq!(audit_page(), 303, "the removed key's console session ended");
}

/// A client that spreads its traffic over several keys is still held to its tenant's
/// rate: the keys of one tenant share a bucket (429 naming the `tenant` policy), and
/// another client's key is served.
#[test]
fn a_tenant_that_spreads_its_traffic_over_keys_is_held_to_its_rate() {
    use crate::server::OTHER_SUBMITTER;
    use payrules::api::auth::key_sha256;
    let keys = ["pr_test_acme_one_0009", "pr_test_acme_two_0010"];
    let server = Server::with_limits(&format!(
        "\n[[tenants]]\nname = \"acme\"\nrequests_per_second = 2\nburst = 4\n\
         [[api_keys]]\nname = \"acme-1\"\nsha256 = \"{}\"\nroles = [\"submitter\"]\ntenant = \"acme\"\n\
         [[api_keys]]\nname = \"acme-2\"\nsha256 = \"{}\"\nroles = [\"submitter\"]\ntenant = \"acme\"\n",
        key_sha256(keys[0]),
        key_sha256(keys[1])
    ));
    let mut served = 0;
    let mut limited = None;
    for n in 0..20 {
        let reply = server.get("/v1/payments", Some(keys[n % 2]));
        if reply.status == 429 {
            limited = Some(reply);
            break;
        }
        assert_eq!(reply.status, 200, "{}", reply.body);
        served += 1;
    }
    let limited = limited.expect("the tenant was held to its rate");
    assert!(served < 10, "{served} served before the limit");
    assert_eq!(limited.code(), "rate_limited");
    assert_eq!(
        limited.header("ratelimit-policy"),
        Some("\"tenant\";q=2;w=1")
    );
    assert!(limited.body.contains("tenant"), "{}", limited.body);
    assert_eq!(
        server.get("/v1/payments", Some(OTHER_SUBMITTER)).status,
        200
    );
}
