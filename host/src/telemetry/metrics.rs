//! The service's metrics, in a Prometheus registry.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::model::{Decision, FailureKind, RuleOutcome, Status};
use crate::registry::breaker::CircuitState;
use crate::registry::live::ReloadOutcome;
use crate::store::CommitObserver;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    route: String,
    method: String,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StatusLabels {
    status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RuleLabels {
    rule: String,
    kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FailureLabels {
    rule: String,
    failure: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct VersionLabels {
    version: String,
}

/// Latency buckets from 50 µs to about 3.3 s.
fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.000_05, 2.0, 17))
}

/// Fuel buckets from 1,000 to about 1.3 × 10⁸ units.
fn fuel_histogram() -> Histogram {
    Histogram::new(exponential_buckets(1_000.0, 4.0, 9))
}

/// Every metric the service keeps.
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Histogram, fn() -> Histogram>,
    shed: Counter,
    decisions: Family<StatusLabels, Counter>,
    replays: Counter,
    rule_seconds: Family<RuleLabels, Histogram, fn() -> Histogram>,
    rule_fuel: Family<RuleLabels, Histogram, fn() -> Histogram>,
    rule_failures: Family<FailureLabels, Counter>,
    commit_seconds: Histogram,
    commit_batch: Histogram,
    rule_set: Family<VersionLabels, Gauge>,
    reloads: Family<OutcomeLabels, Counter>,
    follow_delay: Histogram,
    reviews: Family<ReviewLabels, Counter>,
    webhook_deliveries: Family<DeliveryLabels, Counter>,
    circuit_transitions: Family<CircuitLabels, Counter>,
    warm_mismatches: Family<WarmLabels, Counter>,
    /// What the console's overview charts, tallied beside the registry.
    overview: super::overview::Overview,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CircuitLabels {
    rule: String,
    to: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct WarmLabels {
    rule: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DeliveryLabels {
    endpoint: String,
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReviewLabels {
    verdict: String,
    by: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: String,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    /// A registry with every metric at zero.
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("payrules");
        let requests = Family::<RequestLabels, Histogram, fn() -> Histogram>::new_with_constructor(
            latency_histogram,
        );
        registry.register(
            "http_request_duration_seconds",
            "Time from a request's arrival to its answer, by route, method and status",
            requests.clone(),
        );
        let shed = Counter::default();
        registry.register(
            "http_requests_shed",
            "Requests refused with 503 because the service was at its concurrency limit",
            shed.clone(),
        );
        let decisions = Family::<StatusLabels, Counter>::default();
        registry.register(
            "decisions",
            "Decisions made and stored, by status",
            decisions.clone(),
        );
        let replays = Counter::default();
        registry.register(
            "idempotent_replays",
            "Retries answered with the decision stored under their idempotency key",
            replays.clone(),
        );
        let rule_seconds = Family::<RuleLabels, Histogram, fn() -> Histogram>::new_with_constructor(
            latency_histogram,
        );
        registry.register(
            "rule_duration_seconds",
            "Time a rule took per payment, instantiation included",
            rule_seconds.clone(),
        );
        let rule_fuel = Family::<RuleLabels, Histogram, fn() -> Histogram>::new_with_constructor(
            fuel_histogram,
        );
        registry.register(
            "rule_fuel",
            "Fuel a rule used per payment",
            rule_fuel.clone(),
        );
        let rule_failures = Family::<FailureLabels, Counter>::default();
        registry.register(
            "rule_failures",
            "Rules that broke a bound or the contract, by rule and kind of failure",
            rule_failures.clone(),
        );
        let commit_seconds = latency_histogram();
        registry.register(
            "store_commit_duration_seconds",
            "Time of one store transaction (one fsync), however many decisions it held",
            commit_seconds.clone(),
        );
        let commit_batch = Histogram::new(exponential_buckets(1.0, 2.0, 11));
        registry.register(
            "store_commit_batch_size",
            "Decisions committed per transaction (group commit)",
            commit_batch.clone(),
        );
        let rule_set = Family::<VersionLabels, Gauge>::default();
        registry.register(
            "rule_set_info",
            "The live rule set's version (value 1)",
            rule_set.clone(),
        );
        let reloads = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "rule_set_reloads",
            "Reloads of the rules directory, by outcome: swapped, unchanged, rejected",
            reloads.clone(),
        );
        let follow_delay = latency_histogram();
        registry.register(
            "velocity_follow_delay_seconds",
            "Several hosts: time from another host's decision of an accepted payment to its \
             entry in this host's velocity figures",
            follow_delay.clone(),
        );
        let reviews = Family::<ReviewLabels, Counter>::default();
        registry.register(
            "reviews",
            "Held payments resolved, by verdict (approve, reject) and by whom (reviewer, or \
             deadline when nobody reviewed it in time)",
            reviews.clone(),
        );
        let webhook_deliveries = Family::<DeliveryLabels, Counter>::default();
        registry.register(
            "webhook_deliveries",
            "Webhook delivery attempts, by endpoint (configured names only) and outcome: \
             delivered, failed (retried), dead (given up)",
            webhook_deliveries.clone(),
        );
        let circuit_transitions = Family::<CircuitLabels, Counter>::default();
        registry.register(
            "rule_circuit_transitions",
            "Rules' circuit breakers changing state, by rule and the state entered: open (the \
             rule stops running), half_open (one payment probes it), closed",
            circuit_transitions.clone(),
        );
        let warm_mismatches = Family::<WarmLabels, Counter>::default();
        registry.register(
            "rule_warm_mismatches",
            "Warm rules' answers that a fresh instance of the rule contradicted for the same \
             payment (each sends the rule version back to fresh instances), by rule",
            warm_mismatches.clone(),
        );
        Metrics {
            circuit_transitions,
            warm_mismatches,
            overview: super::overview::Overview::default(),
            webhook_deliveries,
            reviews,
            follow_delay,
            reloads,
            registry,
            requests,
            shed,
            decisions,
            replays,
            rule_seconds,
            rule_fuel,
            rule_failures,
            commit_seconds,
            commit_batch,
            rule_set,
        }
    }

    /// An accepted payment of another host entered this host's velocity figures
    /// `seconds` after it was decided.
    pub fn followed(&self, seconds: f64) {
        self.follow_delay.observe(seconds);
    }

    /// A held payment resolved: by a reviewer, or at the deadline.
    pub fn review(&self, verdict: crate::model::Verdict, at_deadline: bool) {
        self.reviews
            .get_or_create(&ReviewLabels {
                verdict: verdict.name().to_owned(),
                by: if at_deadline { "deadline" } else { "reviewer" }.to_owned(),
            })
            .inc();
    }

    /// A webhook delivery attempt to `endpoint` ended with `outcome`.
    pub fn webhook_delivery(&self, endpoint: &str, outcome: &str) {
        self.webhook_deliveries
            .get_or_create(&DeliveryLabels {
                endpoint: endpoint.to_owned(),
                outcome: outcome.to_owned(),
            })
            .inc();
    }

    /// The overview's tally in progress and its samples.
    pub fn overview(&self) -> &super::overview::Overview {
        &self.overview
    }

    /// A request answered.
    pub fn request(&self, route: &str, method: &str, status: u16, seconds: f64) {
        if route == "/v1/payments" && method == "POST" && (200..300).contains(&status) {
            self.overview
                .answered(std::time::Duration::try_from_secs_f64(seconds).unwrap_or_default());
        }
        self.requests
            .get_or_create(&RequestLabels {
                route: route.to_owned(),
                method: method.to_owned(),
                status,
            })
            .observe(seconds);
    }

    /// A request refused at the concurrency limit.
    pub fn shed(&self) {
        self.shed.inc();
    }

    /// A retry answered from the store.
    pub fn replay(&self) {
        self.replays.inc();
    }

    /// A decision made and stored, with its rules' figures.
    pub fn decision(&self, decision: &Decision) {
        self.overview.decision(decision);
        let status = match decision.status {
            Status::Accepted => "accepted",
            Status::Rejected => "rejected",
            Status::PendingReview => "pending_review",
        };
        self.decisions
            .get_or_create(&StatusLabels {
                status: status.to_owned(),
            })
            .inc();
        for run in &decision.rules {
            if let RuleOutcome::Failed {
                failure: FailureKind::CircuitOpen,
                ..
            } = &run.outcome
            {
                // Not run: no time, no fuel; counted as a failure below.
                self.rule_failure(&run.name, FailureKind::CircuitOpen);
                continue;
            }
            let labels = RuleLabels {
                rule: run.name.clone(),
                kind: run.kind.name().to_owned(),
            };
            self.rule_seconds
                .get_or_create(&labels)
                .observe(std::time::Duration::from_micros(run.duration_us).as_secs_f64());
            #[allow(clippy::cast_precision_loss)]
            self.rule_fuel
                .get_or_create(&labels)
                .observe(run.fuel_used as f64);
            if let RuleOutcome::Failed { failure, .. } = &run.outcome {
                self.rule_failure(&run.name, *failure);
            }
        }
    }

    fn rule_failure(&self, rule: &str, failure: FailureKind) {
        let failure = serde_json::to_value(failure)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        self.rule_failures
            .get_or_create(&FailureLabels {
                rule: rule.to_owned(),
                failure,
            })
            .inc();
    }

    /// A rule's circuit entered `to`.
    pub fn circuit_transition(&self, rule: &str, to: CircuitState) {
        self.circuit_transitions
            .get_or_create(&CircuitLabels {
                rule: rule.to_owned(),
                to: to.name().to_owned(),
            })
            .inc();
    }

    /// A warm rule's answer was contradicted by a fresh instance.
    pub fn warm_mismatch(&self, rule: &str) {
        self.warm_mismatches
            .get_or_create(&WarmLabels {
                rule: rule.to_owned(),
            })
            .inc();
    }

    /// The live rule set is now `version`.
    pub fn rule_set(&self, version: &str) {
        self.rule_set.clear();
        self.rule_set
            .get_or_create(&VersionLabels {
                version: version.to_owned(),
            })
            .set(1);
    }

    /// A reload of the rules directory ended so.
    pub fn reload(&self, outcome: &ReloadOutcome) {
        let outcome = match outcome {
            ReloadOutcome::Unchanged { .. } => "unchanged",
            ReloadOutcome::Swapped { .. } => "swapped",
            ReloadOutcome::Rejected(_) => "rejected",
        };
        self.reloads
            .get_or_create(&OutcomeLabels {
                outcome: outcome.to_owned(),
            })
            .inc();
    }

    /// The registry in the Prometheus text format.
    pub fn render(&self) -> String {
        let mut text = String::new();
        if let Err(error) = prometheus_client::encoding::text::encode(&mut text, &self.registry) {
            tracing::error!("cannot encode the metrics: {error}");
        }
        text
    }
}

impl CommitObserver for Metrics {
    fn committed(&self, decisions: usize, seconds: f64) {
        self.commit_seconds.observe(seconds);
        #[allow(clippy::cast_precision_loss)]
        self.commit_batch.observe(decisions as f64);
    }
}
