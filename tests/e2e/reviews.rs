//! Reviewing held payments over real HTTP: the queue, approve and reject, who may, what
//! the submitter sees, two reviewers at once, four eyes, the deadline, and the audit
//! chain after all of it.

use serde_json::{Value, json};

use crate::server::{
    AUDITOR, DESK, OPERATOR, OTHER_REVIEWER, REVIEWER, SUBMITTER, Server, audit_verify, payment,
};

/// Submits the example payment the rules hold (a weak sanctions match) as `key`; returns
/// its id.
fn held(server: &Server, key: &str, tag: &str) -> String {
    let reply = server.submit(key, tag, &payment("weak-match-review.json", tag));
    assert_eq!(reply.status, 201, "{}", reply.body);
    let decision = reply.json();
    assert_eq!(decision["status"], "pending_review", "{decision}");
    decision["payment_id"].as_str().expect("an id").to_owned()
}

fn queue(server: &Server, query: &str) -> Vec<Value> {
    let reply = server.get(&format!("/v1/reviews{query}"), Some(REVIEWER));
    assert_eq!(reply.status, 200, "{}", reply.body);
    reply.json()["payments"]
        .as_array()
        .expect("payments")
        .clone()
}

#[test]
fn a_held_payment_is_approved_once_and_its_submitter_sees_the_outcome() {
    let mut server = Server::start();
    let id = held(&server, SUBMITTER, "held-1");
    let accepted = server.submit(
        SUBMITTER,
        "ok-1",
        &payment("us-payroll-fednow.json", "ok-1"),
    );
    assert_eq!(accepted.json()["status"], "accepted");

    let open = queue(&server, "");
    assert_eq!(open.len(), 1, "{open:?}");
    assert_eq!(open[0]["payment_id"], id.as_str());
    assert_eq!(open[0]["final_status"], "pending_review");
    assert!(
        open[0]["reasons"][0]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "the reviewer sees why it was held: {open:?}"
    );
    let deadline = open[0]["deadline_unix_ms"].as_i64().expect("a deadline");
    let received = open[0]["received_at_unix_ms"].as_i64().expect("received");
    assert_eq!(deadline - received, 24 * 3600 * 1000, "24 h by default");

    // Who may: reviewers review, auditors read the queue, nobody else does either.
    for key in [SUBMITTER, OPERATOR, AUDITOR] {
        let refused = server.review(key, &id, &json!({"verdict": "approve"}));
        assert_eq!(refused.status, 403, "{}", refused.body);
        assert_eq!(refused.code(), "role_required");
    }
    for (key, status) in [(SUBMITTER, 403), (OPERATOR, 403), (AUDITOR, 200)] {
        assert_eq!(server.get("/v1/reviews", Some(key)).status, status);
    }

    let approve = json!({"verdict": "approve", "note": "customer called; invoice seen"});
    let reply = server.review(REVIEWER, &id, &approve);
    assert_eq!(reply.status, 201, "{}", reply.body);
    let answer = reply.json();
    assert_eq!(answer["final_status"], "accepted");
    assert_eq!(answer["review"]["reviewer"], "analyst");
    assert_eq!(
        reply.header("location"),
        Some(format!("/v1/payments/{id}").as_str())
    );
    // The same verdict again (a retry): the review recorded, 200; another: 409.
    let again = server.review(REVIEWER, &id, &approve);
    assert_eq!(again.status, 200, "{}", again.body);
    assert_eq!(again.json()["review"], answer["review"]);
    let late = server.review(
        OTHER_REVIEWER,
        &id,
        &json!({"verdict": "reject", "reason_code": "AG01"}),
    );
    assert_eq!(late.status, 409, "{}", late.body);
    assert_eq!(late.code(), "payment_already_reviewed");
    assert!(late.body.contains("approve by analyst"), "{}", late.body);

    // The submitter sees the outcome, not who reviewed it nor the note.
    let mine = server
        .get(&format!("/v1/payments/{id}"), Some(SUBMITTER))
        .json();
    assert_eq!(mine["final_status"], "accepted", "{mine}");
    assert_eq!(
        mine["decision"]["status"], "pending_review",
        "the decision stays as made"
    );
    assert_eq!(mine["review"]["verdict"], "approve");
    assert!(mine["review"].get("reviewer").is_none(), "{mine}");
    assert!(!mine.to_string().contains("invoice seen"), "{mine}");
    let whole = server
        .get(&format!("/v1/payments/{id}"), Some(AUDITOR))
        .json();
    assert_eq!(whole["review"]["note"], "customer called; invoice seen");
    assert_eq!(
        whole["review"]["decision_sha256"].as_str().map(str::len),
        Some(64)
    );

    assert!(queue(&server, "").is_empty(), "resolved, out of the queue");
    let resolved = queue(&server, "?status=resolved");
    assert_eq!(resolved.len(), 1);
    assert_eq!(resolved[0]["review"]["verdict"], "approve");
    assert!(resolved[0].get("deadline_unix_ms").is_none());
    let listed = server.all_payments();
    let row = listed
        .iter()
        .find(|p| p["payment_id"] == id.as_str())
        .expect("listed");
    assert_eq!(
        (&row["status"], &row["final_status"]),
        (&json!("pending_review"), &json!("accepted"))
    );

    let audit = server.get("/v1/audit?limit=100", Some(AUDITOR)).json();
    let reviewed: Vec<&Value> = audit["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .filter(|e| e["action"] == "payment.reviewed")
        .collect();
    assert_eq!(reviewed.len(), 1, "{audit}");
    assert_eq!(reviewed[0]["actor"], "analyst");
    assert_eq!(reviewed[0]["subject"], id.as_str());

    let metrics = server.get("/metrics", None).body;
    assert!(
        metrics.contains("payrules_reviews_total{verdict=\"approve\",by=\"reviewer\"} 1"),
        "{metrics}"
    );
    server.kill();
    let verify = audit_verify(&server.store());
    let out = String::from_utf8_lossy(&verify.stdout);
    assert!(verify.status.success(), "{out}");
}

#[test]
fn a_review_that_cannot_stand_is_refused_with_its_reason() {
    let server = Server::start();
    let id = held(&server, SUBMITTER, "held-2");
    let accepted = server.submit(
        SUBMITTER,
        "ok-2",
        &payment("us-payroll-fednow.json", "ok-2"),
    );
    let accepted_id = accepted.json()["payment_id"].as_str().unwrap().to_owned();
    let long_note = "n".repeat(2_001);
    for (payment_id, body, status, code) in [
        (
            &id,
            json!({"verdict": "reject"}),
            422,
            "reason_code_required",
        ),
        (
            &id,
            json!({"verdict": "reject", "reason_code": "XX99"}),
            422,
            "reason_code_invalid",
        ),
        (
            &id,
            json!({"verdict": "reject", "reason_code": "ag01"}),
            422,
            "reason_code_invalid",
        ),
        (
            &id,
            json!({"verdict": "approve", "note": long_note}),
            422,
            "note_too_long",
        ),
        (
            &id,
            json!({"verdict": "approve", "note": "a\u{1b}[31m"}),
            422,
            "note_invalid",
        ),
        (&id, json!({"verdict": "maybe"}), 400, "invalid_body"),
        (
            &id,
            json!({"verdict": "approve", "by": "someone"}),
            400,
            "invalid_body",
        ),
        (
            &accepted_id,
            json!({"verdict": "approve"}),
            409,
            "payment_not_held",
        ),
        (
            &"pay_0000".to_owned(),
            json!({"verdict": "approve"}),
            404,
            "payment_not_found",
        ),
    ] {
        let reply = server.review(REVIEWER, payment_id, &body);
        assert_eq!(reply.status, status, "{body}: {}", reply.body);
        assert_eq!(reply.code(), code, "{body}: {}", reply.body);
    }
    // Nothing of it was recorded: the payment still waits.
    assert_eq!(queue(&server, "").len(), 1);
    let reject = json!({"verdict": "reject", "reason_code": "AG01", "note": "no invoice"});
    let reply = server.review(REVIEWER, &id, &reject);
    assert_eq!(reply.status, 201, "{}", reply.body);
    assert_eq!(reply.json()["final_status"], "rejected");
    let mine = server
        .get(&format!("/v1/payments/{id}"), Some(SUBMITTER))
        .json();
    assert_eq!(mine["final_status"], "rejected");
    assert_eq!(mine["review"]["reason_code"], "AG01");
}

/// Two reviewers resolving the same payments at the same instant, one approving and one
/// rejecting: for each payment exactly one verdict is recorded, the other is told which
/// stands, and the chain holds one review entry per payment.
#[test]
fn two_reviewers_at_once_resolve_each_payment_exactly_once() {
    let mut server = Server::start();
    let ids: Vec<String> = (0..6)
        .map(|n| held(&server, SUBMITTER, &format!("race-{n}")))
        .collect();
    let server_ref = &server;
    let outcomes: Vec<(String, u16, u16)> = std::thread::scope(|scope| {
        let handles: Vec<_> = ids
            .iter()
            .map(|id| {
                let barrier = std::sync::Arc::new(std::sync::Barrier::new(2));
                let approve = {
                    let barrier = std::sync::Arc::clone(&barrier);
                    scope.spawn(move || {
                        barrier.wait();
                        server_ref
                            .review(REVIEWER, id, &json!({"verdict": "approve"}))
                            .status
                    })
                };
                let reject = scope.spawn(move || {
                    barrier.wait();
                    server_ref
                        .review(
                            OTHER_REVIEWER,
                            id,
                            &json!({"verdict": "reject", "reason_code": "FRAD"}),
                        )
                        .status
                });
                (id.clone(), approve, reject)
            })
            .collect();
        handles
            .into_iter()
            .map(|(id, a, r)| (id, a.join().unwrap(), r.join().unwrap()))
            .collect()
    });
    for (id, approve, reject) in &outcomes {
        let mut statuses = [*approve, *reject];
        statuses.sort_unstable();
        assert_eq!(
            statuses,
            [201, 409],
            "{id}: approve {approve}, reject {reject}"
        );
        let stored = server
            .get(&format!("/v1/payments/{id}"), Some(AUDITOR))
            .json();
        let expected = if *approve == 201 {
            "accepted"
        } else {
            "rejected"
        };
        assert_eq!(stored["final_status"], expected, "{stored}");
    }
    let audit = server.get("/v1/audit?limit=500", Some(AUDITOR)).json();
    let reviewed = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "payment.reviewed")
        .count();
    assert_eq!(reviewed, ids.len());
    server.kill();
    let verify = audit_verify(&server.store());
    assert!(
        verify.status.success(),
        "{}",
        String::from_utf8_lossy(&verify.stdout)
    );
}

#[test]
fn four_eyes_keeps_a_key_from_reviewing_what_it_submitted() {
    let server = Server::with_limits("[review]\nfour_eyes = true");
    let own = held(&server, DESK, "desk-1");
    let refused = server.review(DESK, &own, &json!({"verdict": "approve"}));
    assert_eq!(refused.status, 403, "{}", refused.body);
    assert_eq!(refused.code(), "four_eyes_own_payment");
    let other = held(&server, SUBMITTER, "desk-2");
    let reviewed = server.review(DESK, &other, &json!({"verdict": "approve"}));
    assert_eq!(
        reviewed.status, 201,
        "another key's payment: {}",
        reviewed.body
    );
    let by_another = server.review(REVIEWER, &own, &json!({"verdict": "approve"}));
    assert_eq!(by_another.status, 201, "{}", by_another.body);

    // Without four eyes (the default), the same key may.
    let relaxed = Server::start();
    let own = held(&relaxed, DESK, "desk-3");
    assert_eq!(
        relaxed
            .review(DESK, &own, &json!({"verdict": "approve"}))
            .status,
        201
    );
}

#[test]
fn a_payment_nobody_reviews_is_rejected_at_the_deadline_and_audited_as_such() {
    let mut server =
        Server::with_limits("[review]\ndeadline_seconds = 1\nexpiry_reason_code = \"AB05\"");
    let id = held(&server, SUBMITTER, "late-1");
    let started = std::time::Instant::now();
    let stored = loop {
        let stored = server
            .get(&format!("/v1/payments/{id}"), Some(AUDITOR))
            .json();
        if stored["final_status"] != "pending_review" {
            break stored;
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(20),
            "still held: {stored}"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    assert_eq!(stored["final_status"], "rejected", "{stored}");
    assert_eq!(stored["review"]["expired"], true);
    assert_eq!(stored["review"]["reviewer"], "payrules");
    assert_eq!(stored["review"]["reason_code"], "AB05");
    let received = stored["received_at_unix_ms"].as_i64().unwrap();
    let reviewed = stored["review"]["reviewed_at_unix_ms"].as_i64().unwrap();
    assert!(reviewed - received >= 1_000, "not before the deadline");
    let late = server.review(REVIEWER, &id, &json!({"verdict": "approve"}));
    assert_eq!(late.status, 409);
    assert!(
        late.body.contains("at the review deadline"),
        "{}",
        late.body
    );
    let audit = server.get("/v1/audit?limit=100", Some(AUDITOR)).json();
    assert!(
        audit["entries"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["action"] == "payment.review_expired" && e["actor"] == "payrules"),
        "{audit}"
    );
    let metrics = server.get("/metrics", None).body;
    assert!(
        metrics.contains("payrules_reviews_total{verdict=\"reject\",by=\"deadline\"} 1"),
        "{metrics}"
    );
    server.kill();
    let verify = audit_verify(&server.store());
    assert!(
        verify.status.success(),
        "{}",
        String::from_utf8_lossy(&verify.stdout)
    );
}
