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

use crate::model::{Decision, FailurePolicy, Payment, RuleKind, RuleOutcome, RuleRun};
use crate::registry::{Rule, RuleSet};
use crate::runtime::{Evaluation, RuleRunResult, Runtime};
use crate::velocity::VelocityBook;

/// Runs payments through rule sets.
pub struct Pipeline {
    runtime: Arc<Runtime>,
    velocity: Arc<VelocityBook>,
}

impl Pipeline {
    /// A pipeline on `runtime` whose rules read `velocity`.
    pub fn new(runtime: Arc<Runtime>, velocity: Arc<VelocityBook>) -> Self {
        Pipeline { runtime, velocity }
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
        let span = tracing::info_span!("pipeline", payment_id, rule_set = %&rules.version[..12]);
        let _entered = span.enter();
        let mut evaluation =
            self.runtime
                .evaluation(payment, payment_id, now_unix_ms, Arc::clone(&self.velocity));
        let mut runs = Vec::with_capacity(rules.rules().len());
        let stage = |kind: RuleKind| tracing::debug_span!("stage", kind = kind.name());
        let compliance = stage(RuleKind::Compliance).entered();
        for rule in rules.of_kind(RuleKind::Compliance) {
            runs.push(execute(&mut evaluation, rule, |e| {
                e.check(&rule.compiled, &rule.context)
            }));
        }
        drop(compliance);
        if !combine::compliance_rejects(&runs) {
            let fraud = stage(RuleKind::Fraud).entered();
            for rule in rules.of_kind(RuleKind::Fraud) {
                runs.push(execute(&mut evaluation, rule, |e| {
                    e.score(&rule.compiled, &rule.context)
                }));
            }
            drop(fraud);
            if !combine::fraud_rejects(&runs, &rules.policy.fraud) {
                let _routing = stage(RuleKind::Routing).entered();
                let candidates = &rules.policy.routing.candidates;
                for rule in rules.of_kind(RuleKind::Routing) {
                    let run = execute(&mut evaluation, rule, |e| {
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
            decided_at_unix_ms: now_unix_ms,
            rules: runs,
        }
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
