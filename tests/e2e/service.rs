//! The service's payment path, in process with the real example rules and a real SQLite
//! store: a decision counts (velocity, metrics, the shadow set) only once it is stored.

use std::sync::Arc;

use payrules::model::Status;
use payrules::pipeline::shadow::ShadowRunner;
use payrules::pipeline::{Deciders, Pipeline};
use payrules::registry::live::LiveRules;
use payrules::service::{Service, ServiceError};
use payrules::store::audit_keys::{AuditKeys, CheckpointLog};
use payrules::store::{AuditSealing, SqliteStore, Store, now_unix_ms};
use payrules::telemetry::Metrics;
use payrules::velocity::{Scope, VelocityBook};

use crate::support::{example_payment, example_rules, runtime};

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
