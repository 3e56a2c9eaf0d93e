//! The store's behaviour, specified once: plain functions every backend's tests call (in
//! the spirit of arrow-rs `object_store`'s integration suite). A backend is a
//! [`Harness`]: a way to open one store (a fresh one the first time, the same one after),
//! with the audit keys and checkpoint file it was opened with. A new backend proves itself
//! by passing every function here.

use std::path::PathBuf;
use std::sync::Arc;

use super::audit::{self, Verified};
use super::audit_keys::{AuditKeys, read_checkpoints};
use super::{
    Claim, DECIDED, IdempotencyClaim, IdempotencyRecord, ListQuery, NewDecision, NewMessage,
    REVIEW_EXPIRED, REVIEWED, ReviewQuery, ReviewState, SERVICE_ACTOR, Store, StoreError,
};
use crate::model::{Decision, Payment, Review, Status, Verdict};

/// How a backend's tests give the suite a store.
pub struct Harness {
    /// Opens the store: empty the first time, the same store (closed first) after.
    pub open: Box<dyn Fn() -> Arc<dyn Store>>,
    /// The audit keys the store signs with.
    pub keys: AuditKeys,
    /// The checkpoint file it writes.
    pub checkpoint_file: PathBuf,
    /// Everything the database holds, as text, read past the store (the file's bytes, or
    /// every row): what someone with a copy of the database sees.
    pub raw: Box<dyn Fn() -> String>,
}

impl Harness {
    /// Verifies the store's chain with the harness's keys and checkpoints; panics on a fault.
    pub fn verify(&self, store: &dyn Store) -> Verified {
        let checkpoints = if self.checkpoint_file.exists() {
            read_checkpoints(&self.checkpoint_file).expect("the checkpoints read")
        } else {
            Vec::new()
        };
        audit::verify(store, &self.keys, &checkpoints)
            .expect("the store reads")
            .unwrap_or_else(|fault| panic!("the audit chain verifies: {fault}"))
    }
}

/// The test master key.
pub fn test_master() -> crate::store::personal::MasterKeys {
    crate::store::personal::MasterKeys::parse(
        &format!("conformance-master {}", "6b".repeat(32)),
        "test",
    )
    .expect("a key")
}

/// The test audit key.
pub fn test_keys() -> AuditKeys {
    AuditKeys::parse(&format!("conformance {}", "5a".repeat(32)), "test").expect("a key")
}

const PAYMENT: &str = include_str!("../../../examples/payments/us-payroll-fednow.json");

fn payment(tag: &str) -> Payment {
    let mut value: serde_json::Value = serde_json::from_str(PAYMENT).expect("JSON");
    value["end_to_end_id"] = serde_json::Value::String(format!("E2E-{tag}"));
    Payment::from_json(&value.to_string()).expect("the example payment is valid")
}

/// A decision of `status` for payment `id`, made at `at`.
fn decision(id: &str, status: Status, at: i64) -> Decision {
    serde_json::from_value(serde_json::json!({
        "payment_id": id,
        "end_to_end_id": format!("E2E-{id}"),
        "status": status,
        "reasons": [],
        "rule_set_version": "rules-v1",
        "decided_at_unix_ms": at,
        "rules": [],
    }))
    .expect("a decision")
}

/// A decided payment `id` submitted by `by` under idempotency key `key`.
fn new_decision(store: &dyn Store, id: &str, by: &str, key: &str, status: Status) -> NewDecision {
    let at = 1_790_000_000_000 + i64::from(id.bytes().map(u32::from).sum::<u32>());
    let payment = payment(id);
    let fingerprint = store.fingerprint(
        serde_json::to_string(&payment)
            .expect("serialises")
            .as_bytes(),
    );
    NewDecision {
        payment_id: id.to_owned(),
        received_at_unix_ms: at,
        submitted_by: by.to_owned(),
        decision: decision(id, status, at),
        payment,
        idempotency: IdempotencyClaim {
            principal: by.to_owned(),
            key: key.to_owned(),
            fingerprint,
            token: None,
        },
    }
}

/// A committed decision is read back exactly: the payment and decision by id, the
/// idempotency record by principal and key, a row in the listing, an authenticated audit
/// entry naming it.
pub async fn a_commit_is_read_back_as_written(harness: &Harness) {
    let store = (harness.open)();
    let new = new_decision(&*store, "pay_a", "checkout", "k1", Status::Accepted);
    store.commit(new.clone()).await.expect("commits");
    let stored = store
        .payment("pay_a")
        .await
        .expect("reads")
        .expect("stored");
    assert_eq!(stored.submitted_by, "checkout");
    assert_eq!(stored.received_at_unix_ms, new.received_at_unix_ms);
    assert_eq!(
        serde_json::to_value(&stored.payment).unwrap(),
        serde_json::to_value(&new.payment).unwrap()
    );
    assert_eq!(
        serde_json::to_value(&stored.decision).unwrap(),
        serde_json::to_value(&new.decision).unwrap()
    );
    let record = store
        .idempotency("checkout", "k1")
        .await
        .expect("reads")
        .expect("recorded");
    assert_eq!(record.payment_id, "pay_a");
    assert_eq!(record.fingerprint, new.idempotency.fingerprint);
    assert!(
        store
            .idempotency("treasury", "k1")
            .await
            .expect("reads")
            .is_none(),
        "keys are scoped per principal"
    );
    let entries = store.audit_entries(0, 10).await.expect("reads");
    let entry = entries
        .iter()
        .find(|e| e.action == DECIDED)
        .expect("an entry");
    assert_eq!(entry.subject, "pay_a");
    assert_eq!(entry.actor, "checkout");
    assert_eq!(
        entry.key_id.as_deref(),
        Some(harness.keys.signing_id()),
        "entries are authenticated"
    );
    assert!(store.payment("pay_missing").await.expect("reads").is_none());
    store.close();
    harness.verify(&*store);
}

/// A second commit under a key already recorded fails as `KeyTaken` and records
/// nothing of itself: no payment, no audit entry; the chain stays whole.
pub async fn a_second_commit_under_a_used_key_records_nothing(harness: &Harness) {
    let store = (harness.open)();
    store
        .commit(new_decision(
            &*store,
            "pay_first",
            "checkout",
            "k",
            Status::Accepted,
        ))
        .await
        .expect("commits");
    let again = new_decision(&*store, "pay_second", "checkout", "k", Status::Rejected);
    assert!(matches!(
        store.commit(again).await,
        Err(StoreError::KeyTaken)
    ));
    assert!(store.payment("pay_second").await.expect("reads").is_none());
    let decided = store
        .audit_entries(0, 50)
        .await
        .expect("reads")
        .into_iter()
        .filter(|e| e.action == DECIDED)
        .count();
    assert_eq!(decided, 1);
    // The next commit still chains on.
    store
        .commit(new_decision(
            &*store,
            "pay_third",
            "checkout",
            "k3",
            Status::Accepted,
        ))
        .await
        .expect("commits");
    store.close();
    assert_eq!(harness.verify(&*store).entries, 2);
}

/// A message is recorded whole (report and decisions) once per principal and message id;
/// a second one under the same id is `KeyTaken` and none of its decisions is stored.
pub async fn message_ids_are_claimed_once(harness: &Harness) {
    let store = (harness.open)();
    let fingerprint = store.fingerprint(b"the message");
    let message = |id: &str, decisions: Vec<NewDecision>| NewMessage {
        principal: "bank".to_owned(),
        message_id: "MSG-1".to_owned(),
        fingerprint,
        received_at_unix_ms: 1_790_000_000_000,
        decisions,
        report: format!("{{\"report\":\"{id}\"}}"),
    };
    let decisions = ["pay_m1", "pay_m2"]
        .iter()
        .map(|id| new_decision(&*store, id, "bank", "iso20022:MSG-1", Status::Accepted))
        .collect();
    // Both decisions share the message's key: the key is the message's, not each one's.
    let first = message("first", decisions);
    store
        .commit_message(first)
        .await
        .expect("the message commits");
    let stored = store
        .message("bank", "MSG-1")
        .await
        .expect("reads")
        .expect("stored");
    assert_eq!(stored.report, "{\"report\":\"first\"}");
    assert_eq!(stored.fingerprint, fingerprint);
    assert!(
        store
            .message("other", "MSG-1")
            .await
            .expect("reads")
            .is_none()
    );
    let again = message(
        "second",
        vec![new_decision(
            &*store,
            "pay_m3",
            "bank",
            "iso20022:MSG-1",
            Status::Accepted,
        )],
    );
    assert!(matches!(
        store.commit_message(again).await,
        Err(StoreError::KeyTaken)
    ));
    assert!(store.payment("pay_m3").await.expect("reads").is_none());
    for id in ["pay_m1", "pay_m2"] {
        assert!(store.payment(id).await.expect("reads").is_some(), "{id}");
    }
    store.close();
    assert_eq!(harness.verify(&*store).entries, 2);
}

/// Commits made at once from many tasks form one chain: entries numbered 1..=n without
/// gaps, in commit order, every one verified.
pub async fn concurrent_commits_form_one_gap_free_chain(harness: &Harness) {
    let store = (harness.open)();
    let commits = (0..48).map(|n| {
        let store = Arc::clone(&store);
        tokio::spawn(async move {
            let id = format!("pay_c{n:02}");
            let new = new_decision(&*store, &id, "checkout", &id, Status::Accepted);
            store.commit(new).await
        })
    });
    for commit in commits.collect::<Vec<_>>() {
        commit.await.expect("the task ends").expect("commits");
    }
    store
        .audit_event(
            "rules.loaded",
            "rules-v2",
            &serde_json::json!({"trigger": "test"}),
        )
        .await
        .expect("an event commits");
    let entries = store.audit_entries(0, 500).await.expect("reads");
    let seqs: Vec<i64> = entries.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, (1..=49).collect::<Vec<_>>());
    assert_eq!(entries[48].action, "rules.loaded");
    store.close();
    let verified = harness.verify(&*store);
    assert_eq!(verified.entries, 49);
    assert_eq!(
        verified.last_checkpoint,
        Some(49),
        "closing checkpoints the head"
    );
}

/// Listings are newest first, filtered by status, submitter and instant, and paged by
/// cursor until the last page.
pub async fn listings_filter_and_page_newest_first(harness: &Harness) {
    let store = (harness.open)();
    let statuses = [
        Status::Accepted,
        Status::Rejected,
        Status::Accepted,
        Status::PendingReview,
        Status::Accepted,
        Status::Accepted,
        Status::Rejected,
    ];
    for (n, status) in statuses.iter().enumerate() {
        let by = if n % 2 == 0 { "checkout" } else { "treasury" };
        let id = format!("pay_l{n}");
        store
            .commit(new_decision(&*store, &id, by, &id, *status))
            .await
            .expect("commits");
    }
    let query = |status, submitted_by: Option<&str>, cursor, limit| ListQuery {
        status,
        submitted_by: submitted_by.map(str::to_owned),
        cursor,
        limit,
        ..ListQuery::default()
    };
    let mut ids = Vec::new();
    let mut cursor = None;
    loop {
        let page = store
            .list(query(None, None, cursor, 3))
            .await
            .expect("lists");
        ids.extend(page.payments.iter().map(|p| p.payment_id.clone()));
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    let newest_first: Vec<String> = (0..7).rev().map(|n| format!("pay_l{n}")).collect();
    assert_eq!(ids, newest_first);
    let accepted = store
        .list(query(Some(Status::Accepted), None, None, 50))
        .await
        .expect("lists");
    assert_eq!(accepted.payments.len(), 4);
    assert!(accepted.next_cursor.is_none());
    let treasury = store
        .list(query(None, Some("treasury"), None, 50))
        .await
        .expect("lists");
    let treasury: Vec<&str> = treasury
        .payments
        .iter()
        .map(|p| p.payment_id.as_str())
        .collect();
    assert_eq!(treasury, ["pay_l5", "pay_l3", "pay_l1"]);
    let row = &accepted.payments[0];
    assert_eq!(
        (row.amount.as_str(), row.currency.as_str()),
        ("3250.75", "USD")
    );
    assert_eq!(row.end_to_end_id, "E2E-pay_l5");
    let newest = store
        .payment("pay_l6")
        .await
        .expect("reads")
        .expect("stored");
    let since = store
        .list(ListQuery {
            since_unix_ms: Some(newest.received_at_unix_ms),
            limit: 50,
            ..ListQuery::default()
        })
        .await
        .expect("lists");
    assert!(
        since
            .payments
            .iter()
            .all(|p| p.received_at_unix_ms >= newest.received_at_unix_ms)
            && since.payments.iter().any(|p| p.payment_id == "pay_l6")
    );
    store.close();
}

/// A listing finds payments by end-to-end id, by the rule set that decided them (a version
/// or its first digits), by a rule that fired in them (anything but a pass or a zero
/// score), and before an instant; filters combine.
pub async fn listings_search_by_end_to_end_id_rule_set_and_rule_fired(harness: &Harness) {
    let store = (harness.open)();
    let run = |name: &str, outcome: serde_json::Value| {
        let mut run = serde_json::json!({
            "name": name, "kind": "fraud", "version": "ab".repeat(32),
            "duration_us": 10, "instantiation_us": 5, "fuel_used": 100,
        });
        for (key, value) in outcome.as_object().expect("an outcome") {
            run[key] = value.clone();
        }
        run
    };
    let traces = [
        // 0: velocity scored, screening passed; rule set aaaa…
        (
            "aaaa1111",
            vec![
                run("screening", serde_json::json!({"outcome": "pass"})),
                run(
                    "velocity",
                    serde_json::json!({"outcome": "score", "score": 200,
                        "reasons": [{"code": "burst", "points": 200, "message": "m"}]}),
                ),
            ],
        ),
        // 1: velocity scored zero (did not fire); rule set aaaa…
        (
            "aaaa1111",
            vec![run(
                "velocity",
                serde_json::json!({"outcome": "score", "score": 0, "reasons": []}),
            )],
        ),
        // 2: screening rejected; rule set bbbb…
        (
            "bbbb2222",
            vec![run(
                "screening",
                serde_json::json!({"outcome": "reject",
                    "reason": {"code": "RR04", "message": "m", "rule": null}}),
            )],
        ),
        // 3: velocity failed; rule set bbbb…
        (
            "bbbb2222",
            vec![run(
                "velocity",
                serde_json::json!({"outcome": "failed", "failure": "trap", "message": "m",
                    "policy": "review"}),
            )],
        ),
    ];
    for (n, (version, runs)) in traces.iter().enumerate() {
        let id = format!("pay_s{n}");
        let mut new = new_decision(&*store, &id, "checkout", &id, Status::Accepted);
        new.decision.rule_set_version = format!("{version}{}", "0".repeat(56));
        new.decision.rules =
            serde_json::from_value(serde_json::Value::Array(runs.clone())).expect("runs");
        store.commit(new).await.expect("commits");
    }
    let listed = &store;
    let found = |query: ListQuery| async move {
        let page = listed
            .list(ListQuery { limit: 50, ..query })
            .await
            .expect("lists");
        page.payments
            .into_iter()
            .map(|p| p.payment_id)
            .collect::<Vec<_>>()
    };
    assert_eq!(
        found(ListQuery {
            end_to_end_id: Some("E2E-pay_s2".to_owned()),
            ..ListQuery::default()
        })
        .await,
        ["pay_s2"]
    );
    assert_eq!(
        found(ListQuery {
            end_to_end_id: Some("E2E-pay_s".to_owned()),
            ..ListQuery::default()
        })
        .await,
        Vec::<String>::new(),
        "an end-to-end id matches whole"
    );
    assert_eq!(
        found(ListQuery {
            rule_set_version: Some("bbbb".to_owned()),
            ..ListQuery::default()
        })
        .await,
        ["pay_s3", "pay_s2"]
    );
    assert_eq!(
        found(ListQuery {
            rule_set_version: Some(format!("aaaa1111{}", "0".repeat(56))),
            ..ListQuery::default()
        })
        .await,
        ["pay_s1", "pay_s0"]
    );
    assert_eq!(
        found(ListQuery {
            rule_fired: Some("velocity".to_owned()),
            ..ListQuery::default()
        })
        .await,
        ["pay_s3", "pay_s0"],
        "a score of zero is not firing; a failure is"
    );
    assert_eq!(
        found(ListQuery {
            rule_fired: Some("screening".to_owned()),
            ..ListQuery::default()
        })
        .await,
        ["pay_s2"],
        "a pass is not firing"
    );
    assert_eq!(
        found(ListQuery {
            rule_fired: Some("velocity".to_owned()),
            rule_set_version: Some("aaaa".to_owned()),
            ..ListQuery::default()
        })
        .await,
        ["pay_s0"]
    );
    let third = store
        .payment("pay_s2")
        .await
        .expect("reads")
        .expect("stored");
    let before = found(ListQuery {
        until_unix_ms: Some(third.received_at_unix_ms),
        ..ListQuery::default()
    })
    .await;
    assert!(
        !before.contains(&"pay_s2".to_owned()) && !before.is_empty(),
        "{before:?}"
    );
    store.close();
}

/// Shadow decisions are kept outside the chain and read back beside the live decision of
/// the same payment, by shadow version.
pub async fn shadow_decisions_are_read_beside_live_ones(harness: &Harness) {
    let store = (harness.open)();
    for id in ["pay_s1", "pay_s2"] {
        store
            .commit(new_decision(&*store, id, "checkout", id, Status::Accepted))
            .await
            .expect("commits");
    }
    store
        .record_shadow(&decision("pay_s1", Status::Rejected, 5), "shadow-v1")
        .expect("queued");
    store
        .record_shadow(&decision("pay_s2", Status::Accepted, 6), "shadow-v2")
        .expect("queued");
    store.close();
    let store = (harness.open)();
    let mut pairs = Vec::new();
    store
        .for_each_shadowed("shadow-v1", &mut |live, shadow| {
            pairs.push((live.payment_id, live.status, shadow.status));
        })
        .expect("reads");
    assert_eq!(
        pairs,
        [("pay_s1".to_owned(), Status::Accepted, Status::Rejected)]
    );
    // One payment's shadow decision, by payment and version.
    let one = store
        .shadowed("pay_s1", "shadow-v1")
        .await
        .expect("reads")
        .expect("recorded");
    assert_eq!(
        (one.payment_id.as_str(), one.status),
        ("pay_s1", Status::Rejected)
    );
    assert!(
        store
            .shadowed("pay_s1", "shadow-v2")
            .await
            .expect("reads")
            .is_none()
    );
    assert!(
        store
            .shadowed("pay_s9", "shadow-v1")
            .await
            .expect("reads")
            .is_none()
    );
    store.close();
    assert_eq!(
        harness.verify(&*store).entries,
        2,
        "shadow decisions are not in the chain"
    );
}

/// A store opened again keeps its payments, its chain (which goes on from its head) and
/// its fingerprint secret; a closed store refuses writes.
pub async fn a_reopened_store_keeps_everything(harness: &Harness) {
    let store = (harness.open)();
    let fingerprint = store.fingerprint(b"payload");
    store
        .commit(new_decision(
            &*store,
            "pay_r1",
            "checkout",
            "k1",
            Status::Accepted,
        ))
        .await
        .expect("commits");
    store.close();
    assert!(matches!(
        store
            .commit(new_decision(
                &*store,
                "pay_late",
                "checkout",
                "k9",
                Status::Accepted
            ))
            .await,
        Err(StoreError::Closed)
    ));
    let store = (harness.open)();
    assert_eq!(store.fingerprint(b"payload"), fingerprint);
    assert!(store.payment("pay_r1").await.expect("reads").is_some());
    store
        .commit(new_decision(
            &*store,
            "pay_r2",
            "checkout",
            "k2",
            Status::Accepted,
        ))
        .await
        .expect("commits after a reopen");
    let seqs: Vec<i64> = store
        .audit_entries(0, 10)
        .await
        .expect("reads")
        .iter()
        .map(|e| e.seq)
        .collect();
    assert_eq!(seqs, [1, 2]);
    store.close();
    assert_eq!(harness.verify(&*store).entries, 2);
}

/// What start-up and backtests read: accepted payments since an instant, oldest first;
/// every payment of a period in decision order.
pub async fn history_is_read_in_decision_order(harness: &Harness) {
    let store = (harness.open)();
    let statuses = [Status::Accepted, Status::Rejected, Status::Accepted];
    let mut received = Vec::new();
    for (n, status) in statuses.iter().enumerate() {
        let id = format!("pay_h{n}");
        let new = new_decision(&*store, &id, "checkout", &id, *status);
        received.push(new.received_at_unix_ms);
        store.commit(new).await.expect("commits");
    }
    let accepted: Vec<String> = store
        .accepted_since(0)
        .expect("reads")
        .payments
        .into_iter()
        .map(|(_, payment, _)| payment.end_to_end_id.to_string())
        .collect();
    assert_eq!(accepted, ["E2E-pay_h0", "E2E-pay_h2"]);
    let mut decided = Vec::new();
    store
        .for_each_decided(0, i64::MAX, &mut |_, decision| {
            decided.push(decision.payment_id);
        })
        .expect("reads");
    assert_eq!(decided, ["pay_h0", "pay_h1", "pay_h2"]);
    let mut none = 0;
    let after_all = received.iter().max().copied().unwrap_or(0) + 1;
    store
        .for_each_decided(after_all, i64::MAX, &mut |_, _| none += 1)
        .expect("reads");
    assert_eq!(none, 0);
    store.close();
}

/// Idempotency records made before an instant are forgotten (a retry with such a key is a
/// new payment); their payments and audit entries stay, and the chain still verifies.
pub async fn idempotency_records_expire_and_their_payments_stay(harness: &Harness) {
    let store = (harness.open)();
    let old = new_decision(&*store, "pay_old", "checkout", "k-old", Status::Accepted);
    let cutoff = old.received_at_unix_ms + 1;
    store.commit(old).await.expect("commits");
    let mut recent = new_decision(
        &*store,
        "pay_recent",
        "checkout",
        "k-recent",
        Status::Accepted,
    );
    recent.received_at_unix_ms = cutoff + 1_000;
    store.commit(recent).await.expect("commits");
    store.expire_idempotency(cutoff).await.expect("expires");
    assert!(
        store
            .idempotency("checkout", "k-old")
            .await
            .expect("reads")
            .is_none()
    );
    assert!(
        store
            .idempotency("checkout", "k-recent")
            .await
            .expect("reads")
            .is_some()
    );
    assert!(
        store.payment("pay_old").await.expect("reads").is_some(),
        "the payment stays"
    );
    // The key is free again: a new payment under it is recorded.
    store
        .commit(new_decision(
            &*store,
            "pay_again",
            "checkout",
            "k-old",
            Status::Accepted,
        ))
        .await
        .expect("a new payment under an expired key");
    store.close();
    assert_eq!(harness.verify(&*store).entries, 3);
}

/// The behaviours of a store shared by several hosts (each host a store opened on the
/// same database): a claim holds a key against every host until it is committed,
/// released, or its lease ends; then another may take it.
pub async fn a_claim_holds_a_key_against_every_host_until_its_lease_ends(harness: &Harness) {
    let (a, b) = ((harness.open)(), (harness.open)());
    let Claim::Held { token: Some(first) } =
        a.claim("checkout", "k", 60_000).await.expect("claims")
    else {
        panic!("a shared store gives a fencing token");
    };
    assert_eq!(
        b.claim("checkout", "k", 60_000).await.expect("asks"),
        Claim::Busy
    );
    assert!(
        matches!(
            b.claim("treasury", "k", 60_000).await.expect("claims"),
            Claim::Held { .. }
        ),
        "keys are scoped per principal"
    );
    // Released: free at once.
    a.release("checkout", "k", first).await.expect("releases");
    let Claim::Held {
        token: Some(second),
    } = b.claim("checkout", "k", 50).await.expect("claims")
    else {
        panic!("free after its release");
    };
    assert!(second > first, "tokens only grow");
    // A lease of 50 ms that ends: another host takes the key over, with a newer token.
    tokio::time::sleep(std::time::Duration::from_millis(120)).await;
    let Claim::Held { token: Some(third) } =
        a.claim("checkout", "k", 60_000).await.expect("claims")
    else {
        panic!("taken over once the lease ended");
    };
    assert!(third > second);
    // Its own host takes a claim of its own again (a request of that host that ended
    // without its commit left it), and the new token fences off the old one.
    let Claim::Held {
        token: Some(fourth),
    } = a.claim("checkout", "k", 60_000).await.expect("claims")
    else {
        panic!("a host takes its own claim over");
    };
    assert!(fourth > third);
    let mut stale = new_decision(&*a, "pay_stale", "checkout", "k", Status::Accepted);
    stale.idempotency.token = Some(third);
    assert!(matches!(a.commit(stale).await, Err(StoreError::KeyTaken)));
    let third = fourth;
    // Committed: the commit ends the claim; the key is then answered by its record.
    let mut new = new_decision(&*a, "pay_k", "checkout", "k", Status::Accepted);
    new.idempotency.token = Some(third);
    let fingerprint = new.idempotency.fingerprint;
    a.commit(new).await.expect("commits under its claim");
    assert_eq!(
        b.claim("checkout", "k", 60_000).await.expect("claims"),
        Claim::Recorded(IdempotencyRecord {
            fingerprint,
            payment_id: "pay_k".to_owned(),
        }),
        "the commit ended the claim: the key is answered by its record"
    );
    a.close();
    b.close();
}

/// A claim on a key already used is answered with the key's record (the request is a
/// retry, to be replayed) and takes nothing; a key never used is held.
pub async fn a_used_key_is_answered_with_its_record_not_claimed(harness: &Harness) {
    let store = (harness.open)();
    let new = new_decision(&*store, "pay_u", "checkout", "used", Status::Accepted);
    let fingerprint = new.idempotency.fingerprint;
    store.commit(new).await.expect("commits");
    assert_eq!(
        store
            .claim("checkout", "used", 60_000)
            .await
            .expect("claims"),
        Claim::Recorded(IdempotencyRecord {
            fingerprint,
            payment_id: "pay_u".to_owned(),
        })
    );
    assert!(matches!(
        store
            .claim("checkout", "fresh", 60_000)
            .await
            .expect("claims"),
        Claim::Held { .. }
    ));
    assert!(
        matches!(
            store
                .claim("treasury", "used", 60_000)
                .await
                .expect("claims"),
            Claim::Held { .. }
        ),
        "keys are scoped per principal"
    );
    store.close();
}

/// A host whose lease ended and whose key was taken over cannot commit under it any more
/// (the fencing token): its late commit records nothing, and the new holder's stands.
pub async fn a_commit_whose_claim_was_taken_over_is_refused(harness: &Harness) {
    let (a, b) = ((harness.open)(), (harness.open)());
    let Claim::Held { token: Some(stale) } = a.claim("checkout", "k", 30).await.expect("claims")
    else {
        panic!("a shared store gives a fencing token");
    };
    tokio::time::sleep(std::time::Duration::from_millis(80)).await;
    let Claim::Held {
        token: Some(current),
    } = b.claim("checkout", "k", 60_000).await.expect("claims")
    else {
        panic!("taken over once the lease ended");
    };
    let mut late = new_decision(&*a, "pay_late", "checkout", "k", Status::Accepted);
    late.idempotency.token = Some(stale);
    assert!(matches!(a.commit(late).await, Err(StoreError::KeyTaken)));
    assert!(a.payment("pay_late").await.expect("reads").is_none());
    let mut decided = new_decision(&*b, "pay_new", "checkout", "k", Status::Rejected);
    decided.idempotency.token = Some(current);
    b.commit(decided).await.expect("the holder commits");
    let record = a
        .idempotency("checkout", "k")
        .await
        .expect("reads")
        .expect("recorded");
    assert_eq!(record.payment_id, "pay_new");
    a.close();
    b.close();
    assert_eq!(harness.verify(&*a).entries, 1);
}

/// Hosts committing at once into one database form one chain: numbered without gaps, in
/// commit order, every entry verified, whichever host wrote it.
pub async fn hosts_sharing_a_database_form_one_chain(harness: &Harness) {
    let hosts: Vec<Arc<dyn Store>> = (0..3).map(|_| (harness.open)()).collect();
    let commits = (0..60).map(|n| {
        let store = Arc::clone(&hosts[n % hosts.len()]);
        tokio::spawn(async move {
            let id = format!("pay_h{n:02}");
            let new = new_decision(&*store, &id, "checkout", &id, Status::Accepted);
            store.commit(new).await
        })
    });
    for commit in commits.collect::<Vec<_>>() {
        commit.await.expect("the task ends").expect("commits");
    }
    // The same key from two hosts at once: one decision.
    let twice = [0, 1].map(|h| {
        let store = Arc::clone(&hosts[h]);
        tokio::spawn(async move {
            let new = new_decision(
                &*store,
                &format!("pay_twice{h}"),
                "checkout",
                "same",
                Status::Accepted,
            );
            store.commit(new).await
        })
    });
    let mut outcomes = Vec::new();
    for commit in twice {
        outcomes.push(commit.await.expect("the task ends"));
    }
    assert_eq!(
        outcomes.iter().filter(|o| o.is_ok()).count(),
        1,
        "{outcomes:?}"
    );
    assert!(
        outcomes
            .iter()
            .any(|o| matches!(o, Err(StoreError::KeyTaken)))
    );
    let seqs: Vec<i64> = hosts[2]
        .audit_entries(0, 500)
        .await
        .expect("reads")
        .iter()
        .map(|e| e.seq)
        .collect();
    assert_eq!(seqs, (1..=61).collect::<Vec<_>>());
    for host in &hosts {
        host.close();
    }
    assert_eq!(harness.verify(&*hosts[0]).entries, 61);
}

/// What a host follows of other hosts' decisions: the accepted payments after a point of
/// the chain, in chain order, each once, the point moving past every entry read (rejected
/// payments and the service's own entries included); a snapshot and the following after
/// it miss nothing and count nothing twice.
pub async fn accepted_payments_are_followed_in_chain_order(harness: &Harness) {
    let store = (harness.open)();
    let commit = |id: &str, status| {
        let new = new_decision(&*store, id, "checkout", id, status);
        let store = Arc::clone(&store);
        async move { store.commit(new).await.expect("commits") }
    };
    commit("pay_f1", Status::Accepted).await;
    commit("pay_f2", Status::Rejected).await;
    let snapshot = store.accepted_since(0).expect("reads");
    let ids = |accepted: &super::Accepted| -> Vec<String> {
        accepted
            .payments
            .iter()
            .map(|(id, _, _)| id.clone())
            .collect()
    };
    assert_eq!(ids(&snapshot), ["pay_f1"]);
    assert_eq!(snapshot.through_seq, 2);
    commit("pay_f3", Status::Accepted).await;
    store
        .audit_event("rules.loaded", "v2", &serde_json::json!({}))
        .await
        .expect("an event");
    commit("pay_f4", Status::PendingReview).await;
    commit("pay_f5", Status::Accepted).await;
    let mut followed = Vec::new();
    let mut at = snapshot.through_seq;
    loop {
        let page = store
            .accepted_after(at, 2, &|_| false)
            .await
            .expect("reads");
        if page.through_seq == at {
            break;
        }
        assert!(page.through_seq > at);
        at = page.through_seq;
        followed.extend(ids(&page));
    }
    assert_eq!(followed, ["pay_f3", "pay_f5"]);
    assert_eq!(at, 6, "past every entry");
    let decided_at = store
        .accepted_after(snapshot.through_seq, 10, &|_| false)
        .await
        .expect("reads");
    let f3 = store
        .payment("pay_f3")
        .await
        .expect("reads")
        .expect("stored");
    assert_eq!(decided_at.payments[0].2, f3.decision.decided_at_unix_ms);
    // What the caller counted itself is passed unread, and said so; the rest is read.
    let own = store
        .accepted_after(snapshot.through_seq, 10, &|id| id == "pay_f3")
        .await
        .expect("reads");
    assert_eq!(ids(&own), ["pay_f5"]);
    assert_eq!(own.counted, ["pay_f3"]);
    assert_eq!(own.through_seq, 6);
    let after_all = store
        .accepted_after(at, 10, &|_| false)
        .await
        .expect("reads");
    assert!(after_all.payments.is_empty());
    assert_eq!(after_all.through_seq, at, "nothing new: the point stays");
    store.close();
}

/// A host's heartbeat replaces its last; the list says how long ago each beat was; a host
/// that leaves is off the list.
pub async fn hosts_beat_and_leave(harness: &Harness) {
    let store = (harness.open)();
    let mut beat = super::HostBeat {
        id: "host-a:1:00".to_owned(),
        address: "10.0.0.1:8080".to_owned(),
        version: "0.1.0".to_owned(),
        rule_set_version: "rules-v1".to_owned(),
        canary: None,
        started_at_unix_ms: 1_790_000_000_000,
    };
    store.heartbeat(&beat).await.expect("beats");
    beat.rule_set_version = "rules-v2".to_owned();
    beat.canary = Some(("rules-v3".to_owned(), 20));
    store.heartbeat(&beat).await.expect("beats again");
    let hosts = store.hosts().await.expect("lists");
    assert_eq!(hosts.len(), 1, "{hosts:?}");
    assert_eq!(hosts[0].beat, beat, "the last beat stands");
    assert!((0..5_000).contains(&hosts[0].heartbeat_age_ms), "{hosts:?}");
    assert!(
        (hosts[0].heartbeat_unix_ms - super::now_unix_ms()).abs() < 5_000,
        "{hosts:?}"
    );
    store.leave("host-a:1:00").await.expect("leaves");
    assert!(store.hosts().await.expect("lists").is_empty());
    store.close();
}

/// Overview rollups: one per host and span, replaced in place, read by span, time and host,
/// pruned by age, kept across a reopen, outside the audit chain.
pub async fn rollups_are_kept_per_host_and_span(harness: &Harness) {
    let store = (harness.open)();
    let rollup = |host: &str, span_ms: i64, start: i64, tally: &str| super::Rollup {
        host_id: host.to_owned(),
        span_ms,
        start_unix_ms: start,
        tally: tally.to_owned(),
    };
    const MINUTE: i64 = 60_000;
    let t0 = 1_790_000_040_000 - 1_790_000_040_000 % MINUTE;
    for (host, start, tally) in [
        ("host-b", t0, r#"{"b":0}"#),
        ("host-a", t0, r#"{"a":0}"#),
        ("host-a", t0 + MINUTE, r#"{"a":1}"#),
        ("host-a", t0 + 2 * MINUTE, r#"{"a":2}"#),
    ] {
        store
            .record_rollup(rollup(host, MINUTE, start, tally))
            .await
            .expect("recorded");
    }
    store
        .record_rollup(rollup("host-a", 3_600_000, t0, r#"{"hour":0}"#))
        .await
        .expect("an hour recorded");
    // The same host and span again: in place of the first.
    store
        .record_rollup(rollup("host-a", MINUTE, t0 + MINUTE, r#"{"a":"1 again"}"#))
        .await
        .expect("replaced");
    let all = store
        .rollups(MINUTE, t0, t0 + 3 * MINUTE, None)
        .await
        .expect("read");
    assert_eq!(
        all,
        vec![
            rollup("host-a", MINUTE, t0, r#"{"a":0}"#),
            rollup("host-b", MINUTE, t0, r#"{"b":0}"#),
            rollup("host-a", MINUTE, t0 + MINUTE, r#"{"a":"1 again"}"#),
            rollup("host-a", MINUTE, t0 + 2 * MINUTE, r#"{"a":2}"#),
        ],
        "by start then host, one per host and span"
    );
    let window = store
        .rollups(MINUTE, t0 + MINUTE, t0 + 2 * MINUTE, Some("host-a"))
        .await
        .expect("read");
    assert_eq!(
        window,
        vec![rollup("host-a", MINUTE, t0 + MINUTE, r#"{"a":"1 again"}"#)],
        "from inclusive, to exclusive"
    );
    assert!(
        store
            .rollups(MINUTE, t0, t0 + MINUTE, Some("host-c"))
            .await
            .expect("read")
            .is_empty()
    );
    store
        .prune_rollups(MINUTE, t0 + MINUTE)
        .await
        .expect("pruned");
    store.close();
    let store = (harness.open)();
    let left = store
        .rollups(MINUTE, 0, i64::MAX, None)
        .await
        .expect("read");
    assert_eq!(
        left.iter().map(|r| r.start_unix_ms).collect::<Vec<_>>(),
        vec![t0 + MINUTE, t0 + 2 * MINUTE],
        "the minutes before the cut are gone, the rest kept across a reopen"
    );
    assert_eq!(
        store
            .rollups(3_600_000, 0, i64::MAX, None)
            .await
            .expect("read")
            .len(),
        1,
        "pruning minutes leaves the hours"
    );
    assert_eq!(harness.verify(&*store).entries, 0, "outside the chain");
    store.close();
}

/// A review of `id` by `reviewer`, made at `at`, of the decision whose sha256 is `sha`.
fn review(id: &str, verdict: Verdict, reviewer: &str, at: i64, sha: &str) -> Review {
    Review {
        payment_id: id.to_owned(),
        verdict,
        reason_code: (verdict == Verdict::Reject).then(|| "AG01".to_owned()),
        note: Some(format!("looked at {id}")),
        reviewer: reviewer.to_owned(),
        reviewed_at_unix_ms: at,
        decision_sha256: sha.to_owned(),
        expired: false,
    }
}

/// The queue of `store`'s open reviews, as payment ids.
async fn open_queue(store: &dyn Store, query: ReviewQuery) -> (Vec<String>, Option<i64>) {
    let page = store.reviews(query).await.expect("reads");
    (
        page.items
            .into_iter()
            .map(|item| item.summary.payment_id)
            .collect(),
        page.next_cursor,
    )
}

fn queue_query(state: ReviewState, limit: u32) -> ReviewQuery {
    ReviewQuery {
        state,
        submitted_by: None,
        since_unix_ms: None,
        received_before_unix_ms: None,
        cursor: None,
        limit,
    }
}

/// A held payment waits in the queue (oldest first, with why it was held and the hash of
/// its decision) until one review resolves it: the review is read back with the payment,
/// audited, listed as resolved, and gives the payment its final status; a second review
/// is refused and records nothing, as is a review of a payment not held or not stored.
pub async fn a_held_payment_is_reviewed_once(harness: &Harness) {
    let store = (harness.open)();
    for (id, status) in [
        ("pay_h1", Status::PendingReview),
        ("pay_h2", Status::Accepted),
        ("pay_h3", Status::PendingReview),
    ] {
        let new = new_decision(&*store, id, "checkout", id, status);
        store.commit(new).await.expect("commits");
    }
    let (queue, _) = open_queue(&*store, queue_query(ReviewState::Open, 10)).await;
    assert_eq!(queue, ["pay_h1", "pay_h3"], "held ones, oldest first");
    let page = store
        .reviews(queue_query(ReviewState::Open, 10))
        .await
        .expect("reads");
    let held = store
        .payment("pay_h1")
        .await
        .expect("reads")
        .expect("stored");
    assert_eq!(page.items[0].decision_sha256, held.decision_sha256);
    assert_eq!(page.items[0].summary.final_status, Status::PendingReview);
    assert!(held.review.is_none());

    let approval = review(
        "pay_h1",
        Verdict::Approve,
        "analyst",
        1_790_000_100_000,
        &held.decision_sha256,
    );
    store.review(approval.clone()).await.expect("reviews");
    let again = review(
        "pay_h1",
        Verdict::Reject,
        "other",
        1_790_000_100_001,
        &held.decision_sha256,
    );
    assert!(matches!(
        store.review(again).await,
        Err(StoreError::AlreadyReviewed)
    ));
    let accepted = store
        .payment("pay_h2")
        .await
        .expect("reads")
        .expect("stored");
    let not_held = review(
        "pay_h2",
        Verdict::Approve,
        "analyst",
        1,
        &accepted.decision_sha256,
    );
    assert!(matches!(
        store.review(not_held).await,
        Err(StoreError::NotHeld)
    ));
    let missing = review("pay_none", Verdict::Approve, "analyst", 1, "00");
    assert!(matches!(
        store.review(missing).await,
        Err(StoreError::NotHeld)
    ));

    let reviewed = store
        .payment("pay_h1")
        .await
        .expect("reads")
        .expect("stored");
    assert_eq!(reviewed.review.as_ref(), Some(&approval));
    assert_eq!(
        reviewed.decision.status,
        Status::PendingReview,
        "the decision stays as made"
    );
    let (queue, _) = open_queue(&*store, queue_query(ReviewState::Open, 10)).await;
    assert_eq!(queue, ["pay_h3"]);
    let resolved = store
        .reviews(queue_query(ReviewState::Resolved, 10))
        .await
        .expect("reads");
    assert_eq!(resolved.items.len(), 1);
    assert_eq!(resolved.items[0].review.as_ref(), Some(&approval));
    assert_eq!(resolved.items[0].summary.final_status, Status::Accepted);
    let listed = store
        .list(ListQuery {
            limit: 10,
            ..ListQuery::default()
        })
        .await
        .expect("lists");
    let h1 = listed
        .payments
        .iter()
        .find(|p| p.payment_id == "pay_h1")
        .expect("listed");
    assert_eq!(
        (h1.status, h1.final_status),
        (Status::PendingReview, Status::Accepted)
    );
    let of = store
        .reviews_of(&["pay_h1".to_owned(), "pay_h3".to_owned()])
        .await
        .expect("reads");
    assert_eq!(of, std::slice::from_ref(&approval));

    let entries = store.audit_entries(0, 100).await.expect("reads");
    let entry = entries
        .iter()
        .find(|e| e.action == REVIEWED)
        .expect("audited");
    assert_eq!(
        (entry.subject.as_str(), entry.actor.as_str()),
        ("pay_h1", "analyst")
    );
    assert_eq!(entry.at_unix_ms, approval.reviewed_at_unix_ms);
    assert!(
        !entry.detail.contains("looked at"),
        "the note stays out of the log"
    );
    assert_eq!(entries.iter().filter(|e| e.action == REVIEWED).count(), 1);
    harness.verify(&*store);
    store.close();
    drop(store);
    let store = (harness.open)();
    let kept = store
        .payment("pay_h1")
        .await
        .expect("reads")
        .expect("stored");
    assert_eq!(kept.review, Some(approval));
    harness.verify(&*store);
    store.close();
}

/// Reviews of one payment sent at once (as by two reviewers on two hosts): exactly one
/// is recorded, every other is told the payment was reviewed already; the chain holds
/// one entry for it.
pub async fn concurrent_reviews_of_one_payment_record_exactly_one(harness: &Harness) {
    let store = (harness.open)();
    let new = new_decision(&*store, "pay_c", "checkout", "k", Status::PendingReview);
    store.commit(new).await.expect("commits");
    let sha = store
        .payment("pay_c")
        .await
        .expect("reads")
        .expect("stored")
        .decision_sha256;
    let attempts = (0..8).map(|n| {
        let store = Arc::clone(&store);
        let verdict = if n % 2 == 0 {
            Verdict::Approve
        } else {
            Verdict::Reject
        };
        let review = review(
            "pay_c",
            verdict,
            &format!("analyst-{n}"),
            1_790_000_200_000 + n,
            &sha,
        );
        tokio::spawn(async move { store.review(review).await })
    });
    let mut recorded = 0;
    for attempt in attempts.collect::<Vec<_>>() {
        match attempt.await.expect("the task") {
            Ok(()) => recorded += 1,
            Err(StoreError::AlreadyReviewed) => {}
            Err(other) => panic!("unexpected: {other}"),
        }
    }
    assert_eq!(recorded, 1);
    let entries = store.audit_entries(0, 100).await.expect("reads");
    assert_eq!(entries.iter().filter(|e| e.action == REVIEWED).count(), 1);
    harness.verify(&*store);
    store.close();
}

/// A held payment approved counts as accepted from its approval on: the velocity snapshot
/// has it at the approval's instant, and a host following the chain meets it at the
/// approval's entry. A rejected or expired one never counts.
pub async fn approvals_count_in_velocity_from_their_instant(harness: &Harness) {
    let store = (harness.open)();
    for id in ["pay_v1", "pay_v2", "pay_v3"] {
        let new = new_decision(&*store, id, "checkout", id, Status::PendingReview);
        store.commit(new).await.expect("commits");
    }
    let before = store.accepted_since(0).expect("reads");
    assert!(before.payments.is_empty(), "held payments do not count");
    let sha = |id: &'static str| {
        let store = Arc::clone(&store);
        async move {
            store
                .payment(id)
                .await
                .expect("reads")
                .expect("stored")
                .decision_sha256
        }
    };
    let approved_at = 1_790_000_300_000;
    store
        .review(review(
            "pay_v1",
            Verdict::Approve,
            "analyst",
            approved_at,
            &sha("pay_v1").await,
        ))
        .await
        .expect("approves");
    store
        .review(review(
            "pay_v2",
            Verdict::Reject,
            "analyst",
            approved_at + 1,
            &sha("pay_v2").await,
        ))
        .await
        .expect("rejects");
    let mut expired = review(
        "pay_v3",
        Verdict::Reject,
        SERVICE_ACTOR,
        approved_at + 2,
        &sha("pay_v3").await,
    );
    expired.expired = true;
    store.review(expired).await.expect("expires");
    let entries = store.audit_entries(0, 100).await.expect("reads");
    assert_eq!(
        entries
            .iter()
            .filter(|e| e.action == REVIEW_EXPIRED)
            .count(),
        1,
        "the deadline's rejection is audited as such"
    );

    let snapshot = store.accepted_since(0).expect("reads");
    let counted: Vec<(&str, i64)> = snapshot
        .payments
        .iter()
        .map(|(id, _, at)| (id.as_str(), *at))
        .collect();
    assert_eq!(counted, [("pay_v1", approved_at)]);
    assert!(
        store
            .accepted_since(approved_at + 1)
            .expect("reads")
            .payments
            .is_empty(),
        "counted from the approval's instant"
    );
    let followed = store
        .accepted_after(before.through_seq, 100, &|_| false)
        .await
        .expect("reads");
    let followed: Vec<(&str, i64)> = followed
        .payments
        .iter()
        .map(|(id, _, at)| (id.as_str(), *at))
        .collect();
    assert_eq!(followed, [("pay_v1", approved_at)]);
    harness.verify(&*store);
    store.close();
}

/// The queue pages oldest first by cursor, and filters by submitter and by when the
/// payment arrived (what the deadline looks for).
pub async fn the_review_queue_pages_and_filters(harness: &Harness) {
    let store = (harness.open)();
    let mut arrived = Vec::new();
    for (id, by) in [
        ("pay_q1", "checkout"),
        ("pay_q2", "treasury"),
        ("pay_q3", "checkout"),
        ("pay_q4", "checkout"),
    ] {
        let new = new_decision(&*store, id, by, id, Status::PendingReview);
        arrived.push(new.received_at_unix_ms);
        store.commit(new).await.expect("commits");
    }
    let mut seen = Vec::new();
    let mut query = queue_query(ReviewState::Open, 3);
    loop {
        let (ids, next) = open_queue(&*store, query.clone()).await;
        seen.extend(ids);
        let Some(next) = next else { break };
        query.cursor = Some(next);
    }
    assert_eq!(seen, ["pay_q1", "pay_q2", "pay_q3", "pay_q4"]);
    let (mine, _) = open_queue(
        &*store,
        ReviewQuery {
            submitted_by: Some("treasury".to_owned()),
            ..queue_query(ReviewState::Open, 10)
        },
    )
    .await;
    assert_eq!(mine, ["pay_q2"]);
    let oldest = *arrived.iter().min().expect("some");
    let (overdue, _) = open_queue(
        &*store,
        ReviewQuery {
            received_before_unix_ms: Some(oldest + 1),
            ..queue_query(ReviewState::Open, 10)
        },
    )
    .await;
    assert_eq!(overdue.len(), 1, "only what arrived before the instant");
    store.close();
}

/// Routes sending both event types to `core` and decisions only to `ledger`.
fn routes() -> super::outbox::EventRoutes {
    super::outbox::EventRoutes::new(vec![
        (
            "core".to_owned(),
            vec!["payment.decided".to_owned(), "payment.reviewed".to_owned()],
        ),
        ("ledger".to_owned(), vec!["payment.decided".to_owned()]),
    ])
}

fn endpoints() -> Vec<String> {
    vec!["core".to_owned(), "ledger".to_owned()]
}

/// Events are written in the transaction of what they announce, one delivery per endpoint
/// that receives their type: none for a commit that fails, none before events are routed;
/// a payment's later event waits while its earlier one is pending for that endpoint; a
/// delivered one is gone, a failed one waits its turn, a dead one is listed, counted, and
/// made pending again by a redelivery.
pub async fn events_are_written_with_what_they_announce_and_delivered_in_order(harness: &Harness) {
    use super::outbox::DeliveryOutcome;
    let store = (harness.open)();
    let before = new_decision(&*store, "pay_e0", "checkout", "e0", Status::Accepted);
    store.commit(before).await.expect("commits");
    store.route_events(routes());
    for (id, status) in [
        ("pay_e1", Status::PendingReview),
        ("pay_e2", Status::Accepted),
    ] {
        let new = new_decision(&*store, id, "checkout", id, status);
        store.commit(new).await.expect("commits");
    }
    let taken = new_decision(&*store, "pay_e3", "checkout", "pay_e2", Status::Accepted);
    assert!(matches!(
        store.commit(taken).await,
        Err(StoreError::KeyTaken)
    ));
    let sha = store
        .payment("pay_e1")
        .await
        .expect("reads")
        .expect("stored")
        .decision_sha256;
    store
        .review(review(
            "pay_e1",
            Verdict::Approve,
            "analyst",
            1_790_000_400_000,
            &sha,
        ))
        .await
        .expect("reviews");

    let due = store
        .due_deliveries(&endpoints(), i64::MAX, 100)
        .await
        .expect("reads");
    let seen: Vec<(&str, &str, &str)> = due
        .iter()
        .map(|d| {
            (
                d.endpoint.as_str(),
                d.payment_id.as_str(),
                d.event_type.as_str(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            ("core", "pay_e1", "payment.decided"),
            ("ledger", "pay_e1", "payment.decided"),
            ("core", "pay_e2", "payment.decided"),
            ("ledger", "pay_e2", "payment.decided"),
        ],
        "no event before routing nor of a failed commit; the review's waits for the decision's"
    );
    let payload: serde_json::Value = serde_json::from_str(&due[0].payload).expect("JSON");
    assert_eq!(payload["id"], "evt_decided_pay_e1");
    assert_eq!(payload["type"], "payment.decided");
    assert_eq!(payload["data"]["status"], "pending_review");
    assert_eq!(due[0].event_id, "evt_decided_pay_e1");
    let only_core = store
        .due_deliveries(&["core".to_owned()], i64::MAX, 100)
        .await
        .expect("reads");
    assert!(only_core.iter().all(|d| d.endpoint == "core"));

    let at = |d: &super::outbox::Delivery| (d.endpoint.clone(), d.seq);
    let (core_e1, ledger_e1, core_e2, ledger_e2) =
        (at(&due[0]), at(&due[1]), at(&due[2]), at(&due[3]));
    store
        .record_deliveries(vec![
            DeliveryOutcome::Delivered {
                endpoint: core_e1.0.clone(),
                seq: core_e1.1,
            },
            DeliveryOutcome::Failed {
                endpoint: ledger_e1.0.clone(),
                seq: ledger_e1.1,
                attempts: 1,
                at_ms: 1_000,
                next_attempt_ms: 5_000,
                dead: false,
                error: "answered 503".to_owned(),
            },
            DeliveryOutcome::Failed {
                endpoint: core_e2.0.clone(),
                seq: core_e2.1,
                attempts: 3,
                at_ms: 1_000,
                next_attempt_ms: 2_000,
                dead: true,
                error: "no answer within 5000 ms".to_owned(),
            },
            DeliveryOutcome::Delivered {
                endpoint: ledger_e2.0.clone(),
                seq: ledger_e2.1,
            },
        ])
        .await
        .expect("records");
    let due = store
        .due_deliveries(&endpoints(), 4_999, 100)
        .await
        .expect("reads");
    let seen: Vec<(&str, &str)> = due
        .iter()
        .map(|d| (d.endpoint.as_str(), d.event_type.as_str()))
        .collect();
    assert_eq!(
        seen,
        [("core", "payment.reviewed")],
        "the review's event once the decision's is delivered; the failed one not before its time"
    );
    let later = store
        .due_deliveries(&endpoints(), 5_000, 100)
        .await
        .expect("reads");
    assert!(
        later
            .iter()
            .any(|d| d.endpoint == "ledger" && d.attempts == 1)
    );

    let dead = store.dead_letters(None, 0, 10).await.expect("reads");
    assert_eq!(dead.len(), 1);
    assert_eq!(
        (
            dead[0].endpoint.as_str(),
            dead[0].payment_id.as_str(),
            dead[0].attempts
        ),
        ("core", "pay_e2", 3)
    );
    assert_eq!(
        dead[0].last_error.as_deref(),
        Some("no answer within 5000 ms")
    );
    let backlog = store.delivery_backlog().await.expect("reads");
    let counts: Vec<(&str, u64, u64)> = backlog
        .iter()
        .map(|b| (b.endpoint.as_str(), b.pending, b.dead))
        .collect();
    assert_eq!(counts, [("core", 1, 1), ("ledger", 1, 0)]);
    store
        .redeliver("core", Some("evt_decided_pay_e2"))
        .await
        .expect("redelivers");
    assert!(
        store
            .dead_letters(None, 0, 10)
            .await
            .expect("reads")
            .is_empty()
    );
    let again = store
        .due_deliveries(&endpoints(), 0, 100)
        .await
        .expect("reads");
    assert!(
        again
            .iter()
            .any(|d| d.event_id == "evt_decided_pay_e2" && d.endpoint == "core" && d.attempts == 0),
        "pending again, due now"
    );
    harness.verify(&*store);
    store.close();
}

/// One holder at a time holds the relay's lease, renews it, and loses it once it ends.
pub async fn one_host_at_a_time_holds_the_relay_lease(harness: &Harness) {
    let store = (harness.open)();
    assert!(store.relay_lease("host-a", 60_000).await.expect("asks"));
    assert!(store.relay_lease("host-a", 60_000).await.expect("renews"));
    if store.shared() {
        assert!(!store.relay_lease("host-b", 60_000).await.expect("asks"));
        assert!(
            store
                .relay_lease("host-a", 1)
                .await
                .expect("renews, shortly")
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        assert!(
            store.relay_lease("host-b", 60_000).await.expect("asks"),
            "an ended lease is taken over"
        );
        assert!(!store.relay_lease("host-a", 60_000).await.expect("asks"));
    }
    store.close();
}

/// Personal data is sealed at rest: a payment's names, account and remittance text, the
/// names a decision's reasons quote (live and shadow), a reviewer's note and a status
/// report are nowhere in the database in clear — a copy of it shows ciphertext — while the
/// store reads each back whole and the audit chain, which hashes what was decided,
/// verifies.
pub async fn personal_data_is_sealed_at_rest(harness: &Harness) {
    const NAME: &str = "Zebulon Quxworth-Pemberly";
    const REMITTANCE: &str = "INVOICE QXZ-SECRET-4471";
    let store = (harness.open)();
    let mut new = new_decision(&*store, "pay_pd", "checkout", "k-pd", Status::PendingReview);
    let mut value = serde_json::to_value(&new.payment).expect("JSON");
    value["debtor"]["name"] = serde_json::json!(NAME);
    value["remittance"] = serde_json::json!(REMITTANCE);
    new.payment = Payment::from_json(&value.to_string()).expect("valid");
    let iban = new.payment.debtor_account().to_owned();
    new.decision.reasons.push(crate::model::Reason {
        code: "NAME_MATCH".to_owned(),
        message: format!("the debtor's name matched {NAME} (0.97)"),
        rule: Some("sanctions".to_owned()),
    });
    store.commit(new.clone()).await.expect("commits");
    let mut shadow = new.decision.clone();
    shadow.status = Status::Rejected;
    store.record_shadow(&shadow, "shadow-pd").expect("queued");
    let stored = store
        .payment("pay_pd")
        .await
        .expect("reads")
        .expect("stored");
    let mut reviewed = review(
        "pay_pd",
        Verdict::Approve,
        "ops",
        1_790_000_100_000,
        &stored.decision_sha256,
    );
    reviewed.note = Some(format!("called {NAME} back"));
    store.review(reviewed).await.expect("reviewed");
    let message = NewMessage {
        principal: "bank".to_owned(),
        message_id: "MSG-PD".to_owned(),
        fingerprint: store.fingerprint(b"pd"),
        received_at_unix_ms: 1_790_000_000_000,
        decisions: vec![new_decision(
            &*store,
            "pay_pd2",
            "bank",
            "iso20022:MSG-PD",
            Status::Accepted,
        )],
        report: format!("<AddtlInf>matched {NAME}</AddtlInf>"),
    };
    store
        .commit_message(message)
        .await
        .expect("the message commits");
    store.close();

    let raw = (harness.raw)();
    for secret in [NAME, "Quxworth", REMITTANCE, iban.as_str()] {
        assert!(
            !raw.contains(secret),
            "{secret:?} is in the database in clear"
        );
    }
    assert!(raw.contains("pd1."), "sealed values are there");

    let store = (harness.open)();
    let stored = store
        .payment("pay_pd")
        .await
        .expect("reads")
        .expect("stored");
    assert_eq!(
        stored.payment.debtor.name.as_ref().map(|n| n.as_str()),
        Some(NAME)
    );
    assert_eq!(
        stored.payment.remittance.as_ref().map(|r| r.as_str()),
        Some(REMITTANCE)
    );
    assert!(stored.decision.reasons[0].message.contains(NAME));
    assert_eq!(
        stored.review.as_ref().and_then(|r| r.note.as_deref()),
        Some(format!("called {NAME} back").as_str())
    );
    let report = store
        .message("bank", "MSG-PD")
        .await
        .expect("reads")
        .expect("stored");
    assert_eq!(
        report.report,
        format!("<AddtlInf>matched {NAME}</AddtlInf>")
    );
    let mut shadowed = Vec::new();
    store
        .for_each_shadowed("shadow-pd", &mut |live, shadow| {
            shadowed.push((live.reasons[0].message.clone(), shadow.status));
        })
        .expect("reads");
    assert_eq!(shadowed.len(), 1);
    assert!(shadowed[0].0.contains(NAME) && shadowed[0].1 == Status::Rejected);
    let queue = store
        .reviews(queue_query(ReviewState::Resolved, 10))
        .await
        .expect("reads");
    assert_eq!(
        queue.items[0].reasons[0].message,
        new.decision.reasons[0].message
    );
    let mut backtested = 0;
    store
        .for_each_decided(0, i64::MAX, &mut |payment, _| {
            backtested += usize::from(
                payment
                    .debtor
                    .name
                    .as_ref()
                    .is_some_and(|n| n.as_str() == NAME),
            );
        })
        .expect("reads");
    assert_eq!(backtested, 1);
    store.close();
    harness.verify(&*store);
}

/// Personal data past its retention is erased by erasing its day's data key, on the record:
/// what the key sealed no longer reads (an `Erased` error, never a wrong answer), the
/// readers that rebuild figures or replay history pass over it, the payments' summaries
/// stay listed, the erasure is an audit entry (once, however often it is asked for), and
/// the chain still verifies — checking what is left in clear.
pub async fn erased_personal_data_reads_as_erased_and_the_chain_still_verifies(harness: &Harness) {
    let store = (harness.open)();
    store
        .commit(new_decision(
            &*store,
            "pay_e1",
            "checkout",
            "k-e1",
            Status::Accepted,
        ))
        .await
        .expect("commits");
    store
        .commit(new_decision(
            &*store,
            "pay_e2",
            "checkout",
            "k-e2",
            Status::PendingReview,
        ))
        .await
        .expect("commits");
    let held = store
        .payment("pay_e2")
        .await
        .expect("reads")
        .expect("stored");
    store
        .review(review(
            "pay_e2",
            Verdict::Approve,
            "ops",
            1_790_000_100_000,
            &held.decision_sha256,
        ))
        .await
        .expect("reviewed");
    store
        .record_shadow(&decision("pay_e1", Status::Rejected, 5), "shadow-e")
        .expect("queued");
    let message = NewMessage {
        principal: "bank".to_owned(),
        message_id: "MSG-E".to_owned(),
        fingerprint: store.fingerprint(b"e"),
        received_at_unix_ms: 1_790_000_000_000,
        decisions: vec![new_decision(
            &*store,
            "pay_e3",
            "bank",
            "iso20022:MSG-E",
            Status::Accepted,
        )],
        report: "<AddtlInf>a name</AddtlInf>".to_owned(),
    };
    store.commit_message(message).await.expect("commits");
    store.close();
    let store = (harness.open)();
    let before = store.accepted_since(0).expect("reads").payments.len();
    assert_eq!(before, 3, "accepted, approved, and the message's");

    // Everything above was sealed today: erase through today.
    let today = super::now_unix_ms().div_euclid(86_400_000);
    let today_key = super::personal::data_key_id(today);
    store
        .erase_personal_data(today + 1, 400)
        .await
        .expect("erases");
    store
        .erase_personal_data(today + 1, 400)
        .await
        .expect("a second time finds none");

    for id in ["pay_e1", "pay_e2", "pay_e3"] {
        match store.payment(id).await {
            Err(StoreError::Erased { data_key }) => assert_eq!(data_key, today_key),
            other => panic!("{id}: {:?}", other.map(|p| p.map(|p| p.payment_id))),
        }
    }
    assert!(matches!(
        store.message("bank", "MSG-E").await,
        Err(StoreError::Erased { .. })
    ));
    let listed = store
        .list(ListQuery {
            limit: 10,
            ..ListQuery::default()
        })
        .await
        .expect("the summaries are listed");
    assert_eq!(listed.payments.len(), 3);
    let reviews = store
        .reviews_of(&["pay_e2".to_owned()])
        .await
        .expect("reads");
    assert_eq!(reviews[0].note, None, "the note went with its key");
    assert_eq!(reviews[0].verdict, Verdict::Approve);
    let resolved = store
        .reviews(queue_query(ReviewState::Resolved, 10))
        .await
        .expect("the resolved queue still lists it");
    assert_eq!(resolved.items.len(), 1);
    assert!(resolved.items[0].reasons.is_empty());
    assert_eq!(resolved.items[0].decision_sha256, held.decision_sha256);
    assert!(store.accepted_since(0).expect("reads").payments.is_empty());
    let mut replayed = 0;
    store
        .for_each_decided(0, i64::MAX, &mut |_, _| replayed += 1)
        .expect("reads");
    assert_eq!(replayed, 0);
    let mut compared = 0;
    store
        .for_each_shadowed("shadow-e", &mut |_, _| compared += 1)
        .expect("reads");
    assert_eq!(compared, 0);
    let erasures: Vec<_> = store
        .audit_entries(0, 100)
        .await
        .expect("reads")
        .into_iter()
        .filter(|e| e.action == super::PERSONAL_DATA_ERASED)
        .collect();
    assert_eq!(erasures.len(), 1, "erased once: {erasures:?}");
    assert_eq!(erasures[0].subject, today_key);
    assert!(
        erasures[0].detail.contains("\"retention_days\":400"),
        "{}",
        erasures[0].detail
    );
    store.close();

    // Opened again (another host, or a restart): still erased, not made again.
    let store = (harness.open)();
    assert!(matches!(
        store.payment("pay_e1").await,
        Err(StoreError::Erased { .. })
    ));
    store.close();
    let verified = harness.verify(&*store);
    assert_eq!(verified.entries, 5, "3 decisions, 1 review, 1 erasure");
}
