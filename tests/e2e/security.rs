//! Each security control against the attack it stops, on the real binary: the attacks of
//! the security review (issue 16), reproduced.
//!
//! - Screening: a listed name disguised (invisible characters, spacing, look-alike letters
//!   of other scripts, fullwidth forms) is still refused over HTTP by the real sanctions
//!   component; an unlisted name so disguised is held for review.
//! - The audit log: someone who can write the database file drops the triggers, edits a
//!   payment and recomputes every later hash; removes the newest entries; inserts a
//!   payment with no entry; edits a column listings filter on. `payrules audit verify`
//!   names each.

use std::path::Path;

use payrules::store::audit::entry_hash;
use serde_json::Value;

use crate::server::{SUBMITTER, Server, audit_verify, payment};

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

/// A stopped service's store, its audit key and checkpoints, copied so each attack starts
/// from the same untouched files.
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
    //    every later hash recomputed.
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
    let edited = stored.replace("\"3250.75\"", "\"32.50\"");
    assert_ne!(edited, stored);
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
