//! The service in process, with the real example rules and a real SQLite store: a
//! decision counts (velocity, metrics, the shadow set) only once it is stored; a reload
//! goes live only with its audit entry.

use std::sync::Arc;
use std::time::Duration;

use payrules::model::Status;
use payrules::pipeline::shadow::ShadowRunner;
use payrules::pipeline::{Deciders, Pipeline};
use payrules::registry::live::LiveRules;
use payrules::service::{Service, ServiceError};
use payrules::store::audit_keys::{AuditKeys, CheckpointLog};
use payrules::store::personal::{MasterKeys, PersonalData};
use payrules::store::{AuditSealing, SqliteStore, Store, now_unix_ms};
use payrules::telemetry::Metrics;
use payrules::velocity::{Scope, VelocityBook};

use crate::support::{copy_dir, example_payment, example_rules, runtime};

/// A service on the example rules, storing in `store`, feeding `velocity`.
fn service(store: Arc<dyn Store>, velocity: &Arc<VelocityBook>) -> Service {
    let live = Arc::new(
        LiveRules::load(&example_rules(), runtime(), now_unix_ms()).expect("the examples load"),
    );
    let pipeline = Arc::new(Pipeline::new(runtime(), Arc::clone(velocity)));
    let deciders = Deciders::start(Arc::clone(&pipeline), 2).expect("deciders");
    let shadow =
        ShadowRunner::start(pipeline, Arc::clone(&store), deciders.load()).expect("a runner");
    Service::new(
        live,
        store,
        Arc::clone(velocity),
        Arc::new(Metrics::new()),
        deciders,
        shadow,
    )
}

fn store(dir: &tempfile::TempDir) -> Arc<dyn Store> {
    let sealing = AuditSealing {
        keys: AuditKeys::parse(&format!("t {}", "01".repeat(32)), "test").expect("a key"),
        checkpoints: CheckpointLog::open(&dir.path().join("checkpoints"), 1_000)
            .expect("checkpoints"),
        personal: PersonalData::new(
            MasterKeys::parse(&format!("m {}", "02".repeat(32)), "test").expect("a key"),
        ),
    };
    Arc::new(
        SqliteStore::open(&dir.path().join("payrules.db"), 64, Arc::new(()), sealing)
            .expect("the store opens"),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_payment_counts_in_velocity_once_stored_and_once_only() {
    let payment = example_payment("us-payroll-fednow.json");
    let debtor = payment.debtor_account().to_owned();
    let currency = payment.money().currency();
    let velocity = Arc::new(VelocityBook::new());
    let counted = || {
        velocity
            .figures(
                Scope::Debtor(&debtor),
                currency,
                3_600,
                now_unix_ms() + 1_000,
            )
            .count
    };
    let principal: Arc<str> = Arc::from("checkout");

    // A commit that fails (the store has stopped): decided, not stored, not counted.
    let dir = tempfile::tempdir().unwrap();
    let stopped = store(&dir);
    stopped.close();
    let failing = service(stopped, &velocity);
    let refused = failing
        .submit_payment(&principal, "k-1", payment.clone())
        .await;
    assert!(
        matches!(refused, Err(ServiceError::ShuttingDown)),
        "{refused:?}"
    );
    assert_eq!(
        counted(),
        0,
        "a decision that was not stored counts nowhere"
    );
    failing.stop();

    // The retry, stored: counted once; its replay is not counted again.
    let dir = tempfile::tempdir().unwrap();
    let working = service(store(&dir), &velocity);
    let first = working
        .submit_payment(&principal, "k-1", payment.clone())
        .await
        .expect("decided and stored");
    assert_eq!(
        first.decision.status,
        Status::Accepted,
        "{:?}",
        first.decision
    );
    assert!(!first.replayed);
    assert_eq!(counted(), 1);
    let again = working
        .submit_payment(&principal, "k-1", payment)
        .await
        .expect("replayed");
    assert!(again.replayed);
    assert_eq!(again.payment_id, first.payment_id);
    assert_eq!(counted(), 1, "a replay is not a second payment");
    working.stop();
}

/// A reload whose caller goes away (its request timed out) still finishes whole: the new
/// set goes live with its audit entry, never without (issue 16, defect 7).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_abandoned_by_its_caller_goes_live_with_its_audit_entry() {
    let rules = tempfile::tempdir().unwrap();
    copy_dir(&example_rules(), rules.path());
    let dir = tempfile::tempdir().unwrap();
    let velocity = Arc::new(VelocityBook::new());
    let store = store(&dir);
    let live = Arc::new(LiveRules::load(rules.path(), runtime(), now_unix_ms()).expect("loads"));
    let pipeline = Arc::new(Pipeline::new(runtime(), Arc::clone(&velocity)));
    let deciders = Deciders::start(Arc::clone(&pipeline), 2).expect("deciders");
    let shadow =
        ShadowRunner::start(pipeline, Arc::clone(&store), deciders.load()).expect("a runner");
    let service = Arc::new(Service::new(
        live,
        store,
        velocity,
        Arc::new(Metrics::new()),
        deciders,
        shadow,
    ));
    let before = service.rule_set().version.clone();
    let manifest = rules.path().join("sanctions-screening.toml");
    let text = std::fs::read_to_string(&manifest).unwrap();
    std::fs::write(
        &manifest,
        text.replace("weak-match = 850", "weak-match = 851"),
    )
    .unwrap();

    // The caller gives up after the reload's first poll, as a request that timed out
    // would: its future is dropped. (Polled once and dropped, deterministically: a zero
    // timeout depends on when the timer wheel ticks, and under load the reload could
    // finish first.)
    let gave_up = tokio::select! {
        biased;
        _ = service.reload("api:ops") => false,
        () = std::future::ready(()) => true,
    };
    assert!(gave_up, "the reload was still running when its caller left");

    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while service.rule_set().version == before {
        assert!(
            std::time::Instant::now() < deadline,
            "the reload never finished"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let live = service.rule_set().version.clone();
    let history = service
        .audit_of(&[payrules::service::rules::LOADED], 10)
        .await
        .expect("reads");
    assert!(
        history.iter().any(|entry| entry.subject == live),
        "the live set {live} went live with no audit entry: {history:?}"
    );
    service.stop();
}

/// A held payment counts in velocity only once approved (from its approval on); a
/// rejected one never does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_held_payment_counts_in_velocity_once_approved_and_never_when_rejected() {
    use payrules::model::Verdict;
    use payrules::service::reviews::ReviewRequest;
    let payment = example_payment("weak-match-review.json");
    let debtor = payment.debtor_account().to_owned();
    let currency = payment.money().currency();
    let velocity = Arc::new(VelocityBook::new());
    let counted = || {
        velocity
            .figures(
                Scope::Debtor(&debtor),
                currency,
                3_600,
                now_unix_ms() + 1_000,
            )
            .count
    };
    let dir = tempfile::tempdir().unwrap();
    let service = service(store(&dir), &velocity);
    let principal: Arc<str> = Arc::from("checkout");
    let mut held = Vec::new();
    for key in ["k-a", "k-b"] {
        let submitted = service
            .submit_payment(&principal, key, payment.clone())
            .await
            .expect("decided");
        assert_eq!(submitted.decision.status, Status::PendingReview);
        held.push(submitted.payment_id);
    }
    assert_eq!(counted(), 0, "held payments do not count");
    let reject = ReviewRequest {
        verdict: Verdict::Reject,
        reason_code: Some("AG01".to_owned()),
        note: None,
    };
    service
        .review_payment("analyst", &held[0], reject)
        .await
        .expect("rejected");
    assert_eq!(counted(), 0, "a rejected one never does");
    let approve = ReviewRequest {
        verdict: Verdict::Approve,
        reason_code: None,
        note: None,
    };
    service
        .review_payment("analyst", &held[1], approve.clone())
        .await
        .expect("approved");
    assert_eq!(counted(), 1, "an approved one does, at once");
    // The same approval again is a replay, and counts nothing more.
    let again = service
        .review_payment("analyst", &held[1], approve)
        .await
        .expect("a replay");
    assert!(again.replayed);
    assert_eq!(counted(), 1);
    service.stop();
}
