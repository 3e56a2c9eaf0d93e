//! The pipeline: validate → compliance → fraud → routing → decision.
//!
//! Validation happens when a payment is read ([`Payment::from_json`]); this module runs
//! the rules of a [`RuleSet`] on a valid payment in one sandbox evaluation and combines
//! their answers with [`combine`]. Compliance rules all run; if they reject, fraud and
//! routing do not. Fraud rules all run; if the score rejects, routing does not. Routing
//! rules run in order until one routes or a failure policy stops them. Rules read the
//! velocity figures; the service feeds them once a decision is stored.

pub mod combine;
mod deciders;
pub mod shadow;

pub use deciders::{DecideError, Deciders, LiveLoad};

use std::sync::Arc;
use std::time::Instant;

use crate::model::{Decision, FailureKind, FailurePolicy, Payment, RuleKind, RuleOutcome, RuleRun};
use crate::registry::breaker::{Admission, BreakerPolicy, Transition};
use crate::registry::{Rule, RuleSet};
use crate::runtime::{Evaluation, RuleRunResult, Runtime, WarmInstances};
use crate::velocity::VelocityBook;

/// Runs payments through rule sets.
pub struct Pipeline {
    runtime: Arc<Runtime>,
    velocity: Arc<VelocityBook>,
    breakers: Option<Breakers>,
    warm_mismatches: Option<tokio::sync::mpsc::UnboundedSender<WarmMismatch>>,
}

/// A warm rule's answer that differed from the same rule's on a fresh instance for the
/// same payment: the rule carried something from one payment to the next. The fresh
/// answer decided the payment, and the rule version runs on fresh instances from then on.
#[derive(Clone, Debug)]
pub struct WarmMismatch {
    /// The rule.
    pub rule: String,
    /// Its version (the component's sha256).
    pub version: String,
    /// The version of the rule set it is in.
    pub rule_set_version: String,
    /// The payment decided twice.
    pub payment_id: String,
    /// The warm instance's answer, summarised (kind and codes: no personal data).
    pub warm: String,
    /// The fresh instance's answer, summarised.
    pub fresh: String,
    /// When, ms since the Unix epoch.
    pub at_unix_ms: i64,
}

/// The circuit breakers' policy, and where their transitions go.
pub struct Breakers {
    /// When a circuit opens, and for how long.
    pub policy: BreakerPolicy,
    transitions: tokio::sync::mpsc::UnboundedSender<RuleTransition>,
}

/// A rule's circuit that changed state.
#[derive(Clone, Debug)]
pub struct RuleTransition {
    /// The rule.
    pub rule: String,
    /// Its version (the component's sha256).
    pub version: String,
    /// The version of the rule set it is in.
    pub rule_set_version: String,
    /// What changed.
    pub transition: Transition,
    /// When, ms since the Unix epoch.
    pub at_unix_ms: i64,
}

impl Pipeline {
    /// A pipeline on `runtime` whose rules read `velocity`; every rule runs (no circuit
    /// breakers: what a backtest or `evaluate` wants).
    pub fn new(runtime: Arc<Runtime>, velocity: Arc<VelocityBook>) -> Self {
        Pipeline {
            runtime,
            velocity,
            breakers: None,
            warm_mismatches: None,
        }
    }

    /// The same, reporting warm answers that a fresh instance contradicted to the receiver
    /// this returns.
    pub fn with_warm_mismatches(
        mut self,
    ) -> (Self, tokio::sync::mpsc::UnboundedReceiver<WarmMismatch>) {
        let (sender, receiver) = tokio::sync::mpsc::unbounded_channel();
        self.warm_mismatches = Some(sender);
        (self, receiver)
    }

    /// The same with each rule's circuit breaker under `policy`; transitions are sent to
    /// the receiver this returns.
    pub fn with_breakers(
        mut self,
        policy: BreakerPolicy,
    ) -> (Self, tokio::sync::mpsc::UnboundedReceiver<RuleTransition>) {
        let (transitions, receiver) = tokio::sync::mpsc::unbounded_channel();
        self.breakers = Some(Breakers {
            policy,
            transitions,
        });
        (self, receiver)
    }

    /// The runtime rules are compiled with.
    pub fn runtime(&self) -> &Runtime {
        &self.runtime
    }

    /// Decides `payment` with `rules` at the instant `now_unix_ms`. Deciding changes
    /// nothing: an accepted payment counts in the velocity figures only once it is stored
    /// (the service records it after the commit), and a shadow or backtested rule set
    /// decides with the same call without changing what the live set sees.
    pub fn evaluate(
        &self,
        rules: &RuleSet,
        payment: &Payment,
        payment_id: &str,
        now_unix_ms: i64,
    ) -> Decision {
        self.evaluate_in(None, rules, payment, payment_id, now_unix_ms)
    }

    /// [`Pipeline::evaluate`] on a thread that keeps `warm` instances: the rules whose
    /// isolation is warm run in them (the deciders do this; every other caller runs every
    /// rule on a fresh instance).
    pub fn evaluate_warm(
        &self,
        warm: &mut WarmInstances,
        rules: &RuleSet,
        payment: &Payment,
        payment_id: &str,
        now_unix_ms: i64,
    ) -> Decision {
        self.evaluate_in(Some(warm), rules, payment, payment_id, now_unix_ms)
    }

    fn evaluate_in(
        &self,
        warm: Option<&mut WarmInstances>,
        rules: &RuleSet,
        payment: &Payment,
        payment_id: &str,
        now_unix_ms: i64,
    ) -> Decision {
        let span = tracing::info_span!("pipeline", payment_id, rule_set = %&rules.version[..12]);
        let _entered = span.enter();
        let velocity = Arc::clone(&self.velocity);
        let mut evaluation = match warm {
            Some(warm) => {
                self.runtime
                    .evaluation_warm(payment, payment_id, now_unix_ms, velocity, warm)
            }
            None => self
                .runtime
                .evaluation(payment, payment_id, now_unix_ms, velocity),
        };
        let mut runs = Vec::with_capacity(rules.rules().len());
        let stage = |kind: RuleKind| tracing::debug_span!("stage", kind = kind.name());
        let compliance = stage(RuleKind::Compliance).entered();
        for rule in rules.of_kind(RuleKind::Compliance) {
            runs.push(
                self.execute(&mut evaluation, rules, rule, payment_id, now_unix_ms, |e| {
                    e.check(&rule.compiled, &rule.context)
                }),
            );
        }
        drop(compliance);
        if !combine::compliance_rejects(&runs) {
            let fraud = stage(RuleKind::Fraud).entered();
            for rule in rules.of_kind(RuleKind::Fraud) {
                runs.push(self.execute(
                    &mut evaluation,
                    rules,
                    rule,
                    payment_id,
                    now_unix_ms,
                    |e| e.score(&rule.compiled, &rule.context),
                ));
            }
            drop(fraud);
            if !combine::fraud_rejects(&runs, &rules.policy.fraud) {
                let _routing = stage(RuleKind::Routing).entered();
                let candidates = &rules.policy.routing.candidates;
                for rule in rules.of_kind(RuleKind::Routing) {
                    let run =
                        self.execute(&mut evaluation, rules, rule, payment_id, now_unix_ms, |e| {
                            e.route(&rule.compiled, &rule.context, candidates)
                        });
                    let settled = match &run.outcome {
                        RuleOutcome::Route { .. } => true,
                        RuleOutcome::Failed { policy, .. } => *policy != FailurePolicy::Skip,
                        _ => false,
                    };
                    runs.push(run);
                    if settled {
                        break;
                    }
                }
            }
        }
        drop(evaluation);
        let combined = combine::combine(&runs, &rules.policy.fraud);
        tracing::info!(status = ?combined.status, rules = runs.len(), "decided");
        Decision {
            payment_id: payment_id.to_owned(),
            end_to_end_id: payment.end_to_end_id.to_string(),
            status: combined.status,
            reasons: combined.reasons,
            risk_score: combined.risk_score,
            route: combined.route,
            rule_set_version: rules.version.clone(),
            canary: false,
            decided_at_unix_ms: now_unix_ms,
            rules: runs,
        }
    }
}

impl Pipeline {
    /// Runs one rule — unless its circuit is open — and records its part in the trace,
    /// applying its failure policy to a failure.
    fn execute(
        &self,
        evaluation: &mut Evaluation,
        rules: &RuleSet,
        rule: &Rule,
        payment_id: &str,
        now_unix_ms: i64,
        call: impl FnOnce(&mut Evaluation) -> RuleRunResult,
    ) -> RuleRun {
        let call = |evaluation: &mut Evaluation| {
            let result = call(evaluation);
            if let (Some(warm), Ok(fresh)) = (&result.warm_mismatch, &result.outcome) {
                let mismatch = WarmMismatch {
                    rule: rule.manifest.name.clone(),
                    version: rule.version.clone(),
                    rule_set_version: rules.version.clone(),
                    payment_id: payment_id.to_owned(),
                    warm: warm.summary(),
                    fresh: fresh.summary(),
                    at_unix_ms: now_unix_ms,
                };
                tracing::error!(
                    rule = %mismatch.rule,
                    payment_id,
                    warm = %mismatch.warm,
                    fresh = %mismatch.fresh,
                    "a warm instance answered otherwise than a fresh one: the fresh answer \
                     decides, and the rule runs on fresh instances from now on"
                );
                if let Some(sender) = &self.warm_mismatches {
                    let _ = sender.send(mismatch);
                }
            }
            result
        };
        let Some(breakers) = &self.breakers else {
            return execute(evaluation, rule, call);
        };
        let transition = |transition: Transition| {
            let _ = breakers.transitions.send(RuleTransition {
                rule: rule.manifest.name.clone(),
                version: rule.version.clone(),
                rule_set_version: rules.version.clone(),
                transition,
                at_unix_ms: now_unix_ms,
            });
        };
        // One clock read per rule: the window and the cool-down are seconds long, so the
        // instant the rule started stands for when it ended too.
        let now = Instant::now();
        let (admission, entered) = rule.breaker.admit(&breakers.policy, now);
        if let Some(entered) = entered {
            transition(entered);
        }
        if admission == Admission::Refused {
            return not_run(rule, &breakers.policy);
        }
        let run = execute(evaluation, rule, call);
        let failed = matches!(run.outcome, RuleOutcome::Failed { .. });
        if let Some(left) =
            rule.breaker
                .record(&breakers.policy, admission, failed, now, now_unix_ms)
        {
            transition(left);
        }
        run
    }
}

/// The trace of a rule its open circuit kept from running: its failure policy applies.
fn not_run(rule: &Rule, policy: &BreakerPolicy) -> RuleRun {
    let circuit = rule.breaker.snapshot();
    RuleRun {
        name: rule.manifest.name.clone(),
        kind: rule.manifest.kind,
        version: rule.version.clone(),
        outcome: RuleOutcome::Failed {
            failure: FailureKind::CircuitOpen,
            message: format!(
                "not run: its circuit on this host is open after repeated failures (opened {} \
                 time(s) since the rule set was loaded); one payment probes it {} s after it \
                 opened",
                circuit.opened,
                policy.cool_down.as_secs_f64()
            ),
            policy: rule.manifest.failure_policy,
        },
        duration_us: 0,
        instantiation_us: 0,
        fuel_used: 0,
        logs: Vec::new(),
    }
}

/// Runs one rule and records its part in the trace, applying its failure policy to a
/// failure.
fn execute(
    evaluation: &mut Evaluation,
    rule: &Rule,
    call: impl FnOnce(&mut Evaluation) -> RuleRunResult,
) -> RuleRun {
    let span =
        tracing::debug_span!("rule", name = %rule.manifest.name, kind = rule.manifest.kind.name());
    let _entered = span.enter();
    let result = call(evaluation);
    let outcome = match result.outcome {
        Ok(outcome) => outcome,
        Err(failure) => {
            tracing::warn!(
                rule = %rule.manifest.name,
                failure = ?failure.kind,
                policy = ?rule.manifest.failure_policy,
                "rule failed: {}", failure.message
            );
            RuleOutcome::Failed {
                failure: failure.kind,
                message: failure.message,
                policy: rule.manifest.failure_policy,
            }
        }
    };
    tracing::debug!(
        duration_us = result.duration.as_micros(),
        fuel = result.fuel_used,
        failed = matches!(outcome, RuleOutcome::Failed { .. }),
        "rule ran"
    );
    RuleRun {
        name: rule.manifest.name.clone(),
        kind: rule.manifest.kind,
        version: rule.version.clone(),
        outcome,
        duration_us: u64::try_from(result.duration.as_micros()).unwrap_or(u64::MAX),
        instantiation_us: u64::try_from(result.instantiation.as_micros()).unwrap_or(u64::MAX),
        fuel_used: result.fuel_used,
        logs: result.logs,
    }
}
