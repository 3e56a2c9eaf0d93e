//! The application: a payment's path, written once, whatever the door (HTTP JSON, HTTP ISO
//! 20022, and later the console).
//!
//! [`Service`] holds what deciding needs — the live rules, the deciders, the store, the
//! velocity book, the shadow runner, the metrics, the idempotency keys in flight — and
//! offers the operations: submit a payment ([`payments`]), submit a message
//! ([`messages`]), review a held payment ([`reviews`]), reload the rules and run a shadow
//! set ([`rules`]), roll the rules back ([`rollback`]), run a canary ([`canary`]),
//! reproduce a past decision ([`reproduce`]), and the queries.
//! The HTTP layer (`api`) authenticates, reads and bounds requests, calls these, and maps
//! [`ServiceError`] to its answers; it holds no flow of its own.
//!
//! The order of a submission: claim the key in this process (a concurrent duplicate is
//! refused at once) → replay a stored answer if the key was used → decide on a decider
//! thread → commit (durable before any answer) → only then count the payment in the
//! velocity figures, the metrics and the shadow set. A decision that is not stored counts
//! nowhere.

pub mod canary;
pub mod follow;
pub mod hosts;
pub mod messages;
pub mod overview;
pub mod payments;
pub mod pin;
pub mod relay;
pub mod reproduce;
pub mod reviews;
pub mod rollback;
pub mod rule_page;
pub mod rules;
pub mod start;

pub use start::{StartError, Started, open_existing_store, postgres_settings, start};

use std::sync::Arc;

use crate::model::{Decision, Payment, Review, Status};
use crate::pipeline::Deciders;
use crate::pipeline::shadow::ShadowRunner;
use crate::registry::RuleSet;
use crate::registry::live::LiveRules;
use crate::store::audit::AuditEntry;
use crate::store::{BoxError, ListQuery, Page, Store, StoreError, StoredPayment};
use crate::telemetry::Metrics;
use crate::velocity::VelocityBook;
use payments::InFlight;

/// The application.
pub struct Service {
    rules: Arc<LiveRules>,
    store: Arc<dyn Store>,
    velocity: Arc<VelocityBook>,
    metrics: Arc<Metrics>,
    deciders: Deciders,
    shadow: ShadowRunner,
    in_flight: InFlight,
    /// One reload (or rollback) at a time, from loading the candidate to its swap.
    reloading: tokio::sync::Mutex<()>,
    /// The newest rollback entry of the audit log this host has acted on.
    rollback_followed: std::sync::atomic::AtomicI64,
    /// The canary deciding a share of traffic, if any, and the last one that ended.
    canary: canary::CanarySlot,
    /// The newest canary entry of the audit log this host has acted on.
    canary_followed: std::sync::atomic::AtomicI64,
    /// Where an operator may name a shadow set (canonical).
    shadow_roots: Vec<std::path::PathBuf>,
    /// How long a request's claim on its idempotency key lasts at most.
    claim_lease_ms: u64,
    /// What this host follows of the other hosts' decisions.
    following: follow::Following,
    /// This process among the hosts sharing the store.
    host_id: String,
    /// When it started, ms since the Unix epoch.
    started_at_unix_ms: i64,
    /// How held payments are reviewed.
    review_policy: reviews::ReviewPolicy,
    /// Where events are delivered (none configured: none).
    webhooks: Arc<crate::webhooks::Webhooks>,
    /// What checks the audit chain: the keys and this host's checkpoint file.
    audit_check: Option<(crate::store::audit_keys::AuditKeys, std::path::PathBuf)>,
    /// Warm answers a fresh instance contradicted, until
    /// [`Service::record_warm_mismatches`] takes them.
    warm_mismatches: std::sync::Mutex<
        Option<tokio::sync::mpsc::UnboundedReceiver<crate::pipeline::WarmMismatch>>,
    >,
    /// The rules' circuit transitions, until [`Service::record_circuit_transitions`]
    /// takes them.
    circuit_transitions: std::sync::Mutex<
        Option<tokio::sync::mpsc::UnboundedReceiver<crate::pipeline::RuleTransition>>,
    >,
    /// When rules' circuits open (none: circuits are off).
    breaker_policy: Option<crate::registry::breaker::BreakerPolicy>,
}

/// Why an operation could not be done. The HTTP layer maps each to a status and a code.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// A request with this idempotency key (or message id) is being decided right now.
    #[error("a request with this key is being decided")]
    InFlight,
    /// The key (or message id) was used for another payload; `previous` names what it
    /// was used for.
    #[error("the key was used for another payload ({previous})")]
    KeyReused {
        /// The payment (or message) the key was first used for.
        previous: String,
    },
    /// The store cannot be reached right now: a retry with the same key is safe.
    #[error("the store is unavailable: {0}")]
    Unavailable(String),
    /// The service is shutting down: a retry (on another host) is safe.
    #[error("the service is shutting down")]
    ShuttingDown,
    /// No such payment.
    #[error("no such payment")]
    NotFound,
    /// The payment was not held for review: its decision's status.
    #[error("the payment was not held for review (it was {})", status.name())]
    NotHeld {
        /// The decision's status.
        status: Status,
    },
    /// The payment was reviewed already: the review that stands.
    #[error("the payment was reviewed already ({} by {})", .0.verdict.name(), .0.reviewer)]
    AlreadyReviewed(Box<Review>),
    /// Four eyes: a key may not review a payment it submitted.
    #[error("a payment may not be reviewed with the key that submitted it")]
    OwnPayment,
    /// A field of the request is invalid.
    #[error("{field}: {message}")]
    Invalid {
        /// The field at fault.
        field: &'static str,
        /// A stable code, e.g. `reason_code_required`.
        code: &'static str,
        /// Why, in a sentence.
        message: String,
    },
    /// What was asked for held personal data erased at the end of its retention.
    #[error("its personal data was erased at the end of its retention")]
    Erased,
    /// A fault of payrules or its database: detail for the logs.
    #[error("{0}")]
    Internal(BoxError),
}

impl ServiceError {
    /// An internal fault with this cause.
    pub fn internal(error: impl Into<BoxError>) -> ServiceError {
        ServiceError::Internal(error.into())
    }
}

impl From<StoreError> for ServiceError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::Unavailable { reason } => ServiceError::Unavailable(reason),
            StoreError::Closed => ServiceError::ShuttingDown,
            StoreError::Erased { .. } => ServiceError::Erased,
            // The review operation handles these itself: elsewhere they are faults.
            StoreError::AlreadyReviewed
            | StoreError::NotHeld
            | StoreError::KeyTaken
            | StoreError::Failed { .. } => ServiceError::internal(error),
        }
    }
}

impl Service {
    /// A service deciding with `rules` on `deciders`, storing in `store`; accepted
    /// payments feed `velocity` once stored. The shadow runner decides beside it.
    pub fn new(
        rules: Arc<LiveRules>,
        store: Arc<dyn Store>,
        velocity: Arc<VelocityBook>,
        metrics: Arc<Metrics>,
        deciders: Deciders,
        shadow: ShadowRunner,
    ) -> Service {
        metrics.rule_set(&rules.current().version);
        Service {
            rules,
            store,
            velocity,
            metrics,
            deciders,
            shadow,
            in_flight: InFlight::default(),
            reloading: tokio::sync::Mutex::new(()),
            rollback_followed: std::sync::atomic::AtomicI64::new(0),
            canary: canary::CanarySlot::default(),
            canary_followed: std::sync::atomic::AtomicI64::new(0),
            shadow_roots: Vec::new(),
            claim_lease_ms: crate::config::IDEMPOTENCY_LEASE_MS_DEFAULT,
            following: follow::Following::default(),
            host_id: "payrules".to_owned(),
            started_at_unix_ms: crate::store::now_unix_ms(),
            review_policy: reviews::ReviewPolicy::default(),
            webhooks: Arc::new(crate::webhooks::Webhooks::none()),
            audit_check: None,
            circuit_transitions: std::sync::Mutex::new(None),
            warm_mismatches: std::sync::Mutex::new(None),
            breaker_policy: None,
        }
    }

    /// Lets the service check its audit chain (`verify_audit`) with `keys` and the
    /// checkpoints in `checkpoint_file`.
    pub fn with_audit_check(
        mut self,
        keys: crate::store::audit_keys::AuditKeys,
        checkpoint_file: std::path::PathBuf,
    ) -> Service {
        self.audit_check = Some((keys, checkpoint_file));
        self
    }

    /// The rules' circuit policy and where their transitions come from (none: circuits
    /// are off).
    pub fn with_circuits(
        mut self,
        circuits: Option<(
            crate::registry::breaker::BreakerPolicy,
            tokio::sync::mpsc::UnboundedReceiver<crate::pipeline::RuleTransition>,
        )>,
    ) -> Service {
        if let Some((policy, transitions)) = circuits {
            self.breaker_policy = Some(policy);
            *self
                .circuit_transitions
                .get_mut()
                .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(transitions);
        }
        self
    }

    /// Where warm answers a fresh instance contradicted come from.
    pub fn with_warm_mismatches(
        mut self,
        mismatches: tokio::sync::mpsc::UnboundedReceiver<crate::pipeline::WarmMismatch>,
    ) -> Service {
        *self
            .warm_mismatches
            .get_mut()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(mismatches);
        self
    }

    /// When rules' circuits open, if they have circuits.
    pub fn breaker_policy(&self) -> Option<&crate::registry::breaker::BreakerPolicy> {
        self.breaker_policy.as_ref()
    }

    /// Checks the whole audit chain as `payrules audit verify` does (keys, checkpoints,
    /// every payment and review against its entry), on a blocking thread: what was
    /// verified, or the first fault. `None` when the service was given no keys to check
    /// with.
    pub async fn verify_audit(
        &self,
    ) -> Result<
        Option<Result<crate::store::audit::Verified, crate::store::audit::ChainBreak>>,
        ServiceError,
    > {
        let Some((keys, checkpoint_file)) = self.audit_check.clone() else {
            return Ok(None);
        };
        let store = Arc::clone(&self.store);
        let checked = tokio::task::spawn_blocking(move || {
            let checkpoints = if checkpoint_file.exists() {
                crate::store::audit_keys::read_checkpoints(&checkpoint_file)
                    .map_err(ServiceError::internal)?
            } else {
                Vec::new()
            };
            Ok::<_, ServiceError>(crate::store::audit::verify(&*store, &keys, &checkpoints)?)
        })
        .await
        .map_err(ServiceError::internal)??;
        Ok(Some(checked))
    }

    /// Delivers events to `webhooks`: the store writes an event with each decision and
    /// review for the endpoints that receive its type, from now on.
    pub fn with_webhooks(mut self, webhooks: crate::webhooks::Webhooks) -> Service {
        if !webhooks.is_empty() {
            self.store.route_events(webhooks.routes());
        }
        self.webhooks = Arc::new(webhooks);
        self
    }

    /// The webhook endpoints.
    pub fn webhooks(&self) -> &Arc<crate::webhooks::Webhooks> {
        &self.webhooks
    }

    /// Reviews held payments under `policy`.
    pub fn with_review_policy(mut self, policy: reviews::ReviewPolicy) -> Service {
        self.review_policy = policy;
        self
    }

    /// How held payments are reviewed.
    pub fn review_policy(&self) -> &reviews::ReviewPolicy {
        &self.review_policy
    }

    /// Names this process among the hosts sharing the store.
    pub fn with_host_id(mut self, host_id: String) -> Service {
        self.host_id = host_id;
        self
    }

    /// This process among the hosts sharing the store.
    pub fn host_id(&self) -> &str {
        &self.host_id
    }

    /// Follows the other hosts' decisions after audit entry `seq` (where the velocity
    /// figures were rebuilt from).
    pub fn with_followed_through(mut self, seq: i64) -> Service {
        self.following = follow::Following::from(seq);
        self
    }

    /// Holds a request's idempotency key in the store for at most `lease_ms` (longer
    /// than a request may take).
    pub fn with_claim_lease(mut self, lease_ms: u64) -> Service {
        self.claim_lease_ms = lease_ms;
        self
    }

    /// Lets operators name shadow sets under these directories (those that do not exist
    /// are left out, with a warning).
    pub fn with_shadow_roots(mut self, roots: &[std::path::PathBuf]) -> Service {
        self.shadow_roots = roots
            .iter()
            .filter_map(|root| match root.canonicalize() {
                Ok(root) => Some(root),
                Err(error) => {
                    tracing::warn!(root = %root.display(), "a shadow root is left out: {error}");
                    None
                }
            })
            .collect();
        self
    }

    /// The live rule set.
    pub fn rule_set(&self) -> Arc<RuleSet> {
        self.rules.current()
    }

    /// The live rules and their history of refusals.
    pub fn live_rules(&self) -> &LiveRules {
        &self.rules
    }

    /// The shadow runner (its state, for views).
    pub fn shadow(&self) -> &ShadowRunner {
        &self.shadow
    }

    /// The metrics registry.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// The store (for the start-up and shutdown of the process).
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// A stored payment and its decision.
    pub async fn payment(&self, payment_id: &str) -> Result<Option<StoredPayment>, ServiceError> {
        Ok(self.store.payment(payment_id).await?)
    }

    /// Payments, newest first.
    pub async fn list(&self, query: ListQuery) -> Result<Page, ServiceError> {
        Ok(self.store.list(query).await?)
    }

    /// Audit entries after `after_seq`, oldest first.
    pub async fn audit(&self, after_seq: i64, limit: u32) -> Result<Vec<AuditEntry>, ServiceError> {
        Ok(self.store.audit_entries(after_seq, limit).await?)
    }

    /// The newest audit entries with one of these actions, newest first.
    pub async fn audit_of(
        &self,
        actions: &[&str],
        limit: u32,
    ) -> Result<Vec<AuditEntry>, ServiceError> {
        Ok(self.store.audit_entries_of(actions, limit).await?)
    }

    /// Counts stored decisions where they count: velocity (accepted payments), metrics,
    /// the canary's figures, and the shadow set (which decides them too, off the live
    /// path).
    fn stored(&self, decided: Vec<(Payment, Decision)>) {
        let shadowing = self.shadow.is_installed();
        let canary = self.canary.running();
        for (payment, decision) in decided {
            if decision.status == Status::Accepted {
                self.velocity.record(&payment, decision.decided_at_unix_ms);
            }
            self.metrics.decision(&decision);
            if let Some(canary) = &canary {
                canary.stats.record(&decision);
            }
            if shadowing {
                self.shadow.after(payment, &decision);
            }
        }
    }

    /// Forgets, every minute from now on, the idempotency records older than `retention`
    /// (a tokio task: call it on the runtime that serves).
    pub fn expire_idempotency_records(self: &Arc<Self>, retention: std::time::Duration) {
        let service = Arc::clone(self);
        let retention_ms = i64::try_from(retention.as_millis()).unwrap_or(i64::MAX);
        tokio::spawn(async move {
            let mut every = tokio::time::interval(std::time::Duration::from_secs(60));
            loop {
                every.tick().await;
                let before = crate::store::now_unix_ms().saturating_sub(retention_ms);
                match service.store.expire_idempotency(before).await {
                    Ok(()) => {}
                    Err(crate::store::StoreError::Closed) => return,
                    Err(error) => tracing::warn!("idempotency records not expired: {error}"),
                }
            }
        });
    }

    /// Erases, every hour from now on, the personal data of the UTC days that ended more
    /// than `retention_days` ago (their data keys: crypto-shredding), each audited (a
    /// tokio task: call it on the runtime that serves). Every host may run it: the store
    /// erases each key once.
    pub fn erase_personal_data_after(self: &Arc<Self>, retention_days: u32) {
        let service = Arc::clone(self);
        tokio::spawn(async move {
            let mut every = tokio::time::interval(std::time::Duration::from_secs(3_600));
            loop {
                every.tick().await;
                let today = crate::store::now_unix_ms().div_euclid(86_400_000);
                let before_day = today - i64::from(retention_days);
                match service
                    .store
                    .erase_personal_data(before_day, retention_days)
                    .await
                {
                    Ok(()) => {}
                    Err(crate::store::StoreError::Closed) => return,
                    Err(error) => tracing::warn!("personal data not erased: {error}"),
                }
            }
        });
    }

    /// Stops the decider threads once the payments queued have been decided, then the
    /// shadow thread once it has decided what it was given, then the store's writer.
    pub fn stop(&self) {
        self.deciders.stop();
        self.shadow.stop();
        self.store.close();
    }
}
