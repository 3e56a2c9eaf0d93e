//! Recorded decisions side by side with a candidate rule set's: what a backtest
//! (`payrules backtest`) and a shadow rule set (`GET /v1/rules/shadow/report`) report.
//!
//! A decision *changes* when its status or its rail differs. Each change is counted by
//! transition (`accepted → rejected`, `accepted, route fednow → accepted, route rtp`) and
//! by its cause: the first rule, in pipeline order (compliance, fraud, routing), whose
//! own answer differs (a rule that ran in only one of the two differs by having run);
//! if no rule's answer differs, the pipeline policy (`pipeline.toml`) made the change.
//! The first few changed payments are kept as examples with every rule that differs.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::Serialize;

use crate::model::{Decision, Payment, RuleKind, RuleRun, Status};
use crate::pipeline::Pipeline;
use crate::registry::RuleSet;
use crate::runtime::Runtime;
use crate::store::{Store, StoreError};
use crate::velocity::{VelocityBook, WINDOW_SECONDS_MAX};

/// Replays the payments a store received in `since_unix_ms..until_unix_ms` through
/// `candidate`, each at the instant it was decided, and compares with the stored
/// decisions. The velocity figures the candidate sees are the recorded history: the
/// payments the live rules accepted, from the longest window before `since_unix_ms` on.
pub fn backtest_store(
    store: &dyn Store,
    runtime: Arc<Runtime>,
    candidate: &RuleSet,
    since_unix_ms: i64,
    until_unix_ms: i64,
) -> Result<Comparison, StoreError> {
    let velocity = Arc::new(VelocityBook::new());
    let window_ms = i64::from(WINDOW_SECONDS_MAX) * 1000;
    store.for_each_decided(
        since_unix_ms.saturating_sub(window_ms),
        since_unix_ms,
        &mut |payment, decision| {
            if decision.status == Status::Accepted {
                velocity.record(&payment, decision.decided_at_unix_ms);
            }
        },
    )?;
    let pipeline = Pipeline::new(runtime, Arc::clone(&velocity));
    let mut comparison = Comparison::new(&candidate.version);
    store.for_each_decided(since_unix_ms, until_unix_ms, &mut |payment, recorded| {
        let decision = pipeline.evaluate(
            candidate,
            &payment,
            &recorded.payment_id,
            recorded.decided_at_unix_ms,
        );
        comparison.add(&recorded, &decision);
        if recorded.status == Status::Accepted {
            velocity.record(&payment, recorded.decided_at_unix_ms);
        }
    })?;
    Ok(comparison)
}

/// Decides `payments` (with their ids) in order from `at_unix_ms`, one millisecond apart,
/// with `baseline` and with `candidate`, and compares. The velocity figures are what the baseline accepted.
pub fn backtest_payments(
    runtime: Arc<Runtime>,
    baseline: &RuleSet,
    candidate: &RuleSet,
    payments: &[(Payment, String)],
    at_unix_ms: i64,
) -> Comparison {
    let pipeline = Pipeline::new(runtime, Arc::new(VelocityBook::new()));
    let mut comparison = Comparison::new(&candidate.version);
    for (index, (payment, id)) in payments.iter().enumerate() {
        // One millisecond apart, so each sees the ones before it in the velocity figures.
        let at = at_unix_ms + i64::try_from(index).unwrap_or(i64::MAX - at_unix_ms);
        let decision = pipeline.evaluate(candidate, payment, id, at);
        let recorded = pipeline.evaluate(baseline, payment, id, at);
        comparison.add(&recorded, &decision);
    }
    comparison
}

/// What differs between a recorded decision and the same payment decided again by the
/// same rule set (`GET /v1/payments/{id}/reproduction`): the answer (status, reasons,
/// score, route) and each rule's part — its version, its answer, the fuel it burned and
/// what it logged; not the times, which no two runs share. Empty when they agree.
pub fn differences(recorded: &Decision, reproduced: &Decision) -> Vec<String> {
    let mut found = Vec::new();
    let mut differ = |what: &str, a: String, b: String| {
        if a != b {
            found.push(format!("{what}: recorded {a}, reproduced {b}"));
        }
    };
    differ(
        "status",
        recorded.status.name().to_owned(),
        reproduced.status.name().to_owned(),
    );
    let reasons = |d: &Decision| {
        d.reasons
            .iter()
            .map(|r| format!("{} ({})", r.code, r.message))
            .collect::<Vec<_>>()
            .join("; ")
    };
    differ("reasons", reasons(recorded), reasons(reproduced));
    differ(
        "risk score",
        format!("{:?}", recorded.risk_score),
        format!("{:?}", reproduced.risk_score),
    );
    let route = |d: &Decision| {
        d.route.as_ref().map_or_else(
            || "none".to_owned(),
            |r| format!("{} by {}", r.rail.name(), r.rule),
        )
    };
    differ("route", route(recorded), route(reproduced));
    let count = recorded.rules.len().max(reproduced.rules.len());
    for index in 0..count {
        match (recorded.rules.get(index), reproduced.rules.get(index)) {
            (Some(a), Some(b)) if a.name == b.name => {
                let rule = &a.name;
                differ(
                    &format!("{rule} version"),
                    a.version.clone(),
                    b.version.clone(),
                );
                differ(rule, a.outcome.summary(), b.outcome.summary());
                differ(
                    &format!("{rule} fuel"),
                    a.fuel_used.to_string(),
                    b.fuel_used.to_string(),
                );
                let logs = |run: &RuleRun| {
                    run.logs
                        .iter()
                        .map(|l| format!("{}: {}", l.level, l.message))
                        .collect::<Vec<_>>()
                        .join(" | ")
                };
                differ(&format!("{rule} logs"), logs(a), logs(b));
            }
            (a, b) => differ(
                &format!("rule #{}", index + 1),
                a.map_or_else(|| "none".to_owned(), |r| r.name.clone()),
                b.map_or_else(|| "none".to_owned(), |r| r.name.clone()),
            ),
        }
    }
    found
}

/// How many changed payments a comparison keeps as examples.
pub const EXAMPLES_MAX: usize = 20;

/// The comparison of recorded decisions with a candidate's.
#[derive(Clone, Debug, Default, Serialize, utoipa::ToSchema)]
pub struct Comparison {
    /// The candidate rule set's version.
    pub candidate_version: String,
    /// The recorded decisions' rule set versions, with how many decisions each made.
    pub recorded_versions: BTreeMap<String, u64>,
    /// Payments compared.
    pub compared: u64,
    /// Of those, how many the candidate decides differently (status or rail).
    pub changed: u64,
    /// Status changes (`accepted → rejected`) and rail changes (`route fednow → route
    /// rtp`), most frequent first.
    pub transitions: Vec<Transition>,
    /// For each cause (a rule's name, or `pipeline policy`), how many changed payments.
    pub by_cause: BTreeMap<String, u64>,
    /// The first changed payments, in the order compared.
    pub examples: Vec<Example>,
}

/// One kind of change and how often.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Transition {
    /// What was recorded.
    pub from: String,
    /// What the candidate decides.
    pub to: String,
    /// How many payments.
    pub count: u64,
}

/// A changed payment.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct Example {
    /// The payment's id.
    pub payment_id: String,
    /// Its EndToEndId.
    pub end_to_end_id: String,
    /// The recorded outcome (status, and rail if routed).
    pub from: String,
    /// The candidate's.
    pub to: String,
    /// What made the change: a rule's name, or `pipeline policy`.
    pub cause: String,
    /// Each rule whose answer differs, in pipeline order: its recorded and candidate
    /// answers.
    pub rules: Vec<RuleChange>,
}

/// One rule's answer, recorded and candidate.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct RuleChange {
    /// The rule.
    pub rule: String,
    /// Its recorded answer (`absent` if it was not in the recorded set or did not run).
    pub from: String,
    /// Its candidate answer (`absent` likewise).
    pub to: String,
}

impl Comparison {
    /// An empty comparison against the candidate `candidate_version`.
    pub fn new(candidate_version: &str) -> Comparison {
        Comparison {
            candidate_version: candidate_version.to_owned(),
            ..Comparison::default()
        }
    }

    /// Adds one payment: its recorded decision and the candidate's.
    pub fn add(&mut self, recorded: &Decision, candidate: &Decision) {
        self.compared += 1;
        *self
            .recorded_versions
            .entry(recorded.rule_set_version.clone())
            .or_default() += 1;
        let (from, to) = (outcome(recorded), outcome(candidate));
        if from == to {
            return;
        }
        self.changed += 1;
        let transition = if recorded.status == candidate.status {
            (from.clone(), to.clone())
        } else {
            (
                recorded.status.name().to_owned(),
                candidate.status.name().to_owned(),
            )
        };
        match self
            .transitions
            .iter_mut()
            .find(|t| (t.from.as_str(), t.to.as_str()) == (&transition.0, &transition.1))
        {
            Some(existing) => existing.count += 1,
            None => self.transitions.push(Transition {
                from: transition.0,
                to: transition.1,
                count: 1,
            }),
        }
        self.transitions
            .sort_by(|a, b| b.count.cmp(&a.count).then(a.from.cmp(&b.from)));
        let rules = rule_changes(&recorded.rules, &candidate.rules);
        let cause = rules
            .first()
            .map_or_else(|| POLICY_CAUSE.to_owned(), |change| change.rule.clone());
        *self.by_cause.entry(cause.clone()).or_default() += 1;
        if self.examples.len() < EXAMPLES_MAX {
            self.examples.push(Example {
                payment_id: recorded.payment_id.clone(),
                end_to_end_id: recorded.end_to_end_id.clone(),
                from,
                to,
                cause,
                rules,
            });
        }
    }

    /// The report as text, for a terminal.
    pub fn write_text(&self, out: &mut impl std::io::Write) -> std::io::Result<()> {
        writeln!(out, "candidate rule set {}", self.candidate_version)?;
        for (version, count) in &self.recorded_versions {
            writeln!(out, "recorded  rule set {version} ({count} decisions)")?;
        }
        let share = |n: u64| (n * 1000).checked_div(self.compared).unwrap_or(0);
        let permille = share(self.changed);
        writeln!(
            out,
            "{} payments compared, {} would change ({}.{}%)",
            self.compared,
            self.changed,
            permille / 10,
            permille % 10
        )?;
        for transition in &self.transitions {
            writeln!(
                out,
                "  {:>6}  {} -> {}",
                transition.count, transition.from, transition.to
            )?;
        }
        if !self.by_cause.is_empty() {
            writeln!(out, "by cause (the first rule whose answer differs):")?;
            for (cause, count) in &self.by_cause {
                writeln!(out, "  {count:>6}  {cause}")?;
            }
        }
        if !self.examples.is_empty() {
            writeln!(out, "examples:")?;
            for example in &self.examples {
                writeln!(
                    out,
                    "  {} ({}): {} -> {}, by {}",
                    example.payment_id,
                    example.end_to_end_id,
                    example.from,
                    example.to,
                    example.cause
                )?;
                for change in &example.rules {
                    writeln!(
                        out,
                        "      {}: {} -> {}",
                        change.rule, change.from, change.to
                    )?;
                }
            }
        }
        Ok(())
    }
}

/// A decision's outcome in words: its status, and its rail when accepted.
fn outcome(decision: &Decision) -> String {
    match (&decision.route, decision.status) {
        (Some(route), Status::Accepted) => format!("accepted, route {}", route.rail.name()),
        (_, status) => status.name().to_owned(),
    }
}

/// The cause of a change no rule's answer explains.
pub const POLICY_CAUSE: &str = "pipeline policy";

/// The rules whose answers differ, in pipeline order: by kind, then as they ran (the
/// candidate's runs first, then rules only the recorded decision ran).
fn rule_changes(recorded: &[RuleRun], candidate: &[RuleRun]) -> Vec<RuleChange> {
    let answer = |runs: &[RuleRun], name: &str| {
        runs.iter()
            .find(|run| run.name == name)
            .map_or_else(|| "absent".to_owned(), |run| run.outcome.summary())
    };
    let mut runs: Vec<&RuleRun> = Vec::new();
    for run in candidate.iter().chain(recorded) {
        if !runs.iter().any(|seen| seen.name == run.name) {
            runs.push(run);
        }
    }
    let rank = |kind: RuleKind| match kind {
        RuleKind::Compliance => 0,
        RuleKind::Fraud => 1,
        RuleKind::Routing => 2,
    };
    // A stable sort keeps the order they ran in within a kind.
    runs.sort_by_key(|run| rank(run.kind));
    runs.into_iter()
        .map(|run| run.name.as_str())
        .filter_map(|name| {
            let (from, to) = (answer(recorded, name), answer(candidate, name));
            (from != to).then(|| RuleChange {
                rule: name.to_owned(),
                from,
                to,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decision(status: &str, fuel: u64) -> Decision {
        serde_json::from_value(serde_json::json!({
            "payment_id": "pay_1",
            "end_to_end_id": "E2E-1",
            "status": status,
            "reasons": [],
            "rule_set_version": "v1",
            "decided_at_unix_ms": 1,
            "rules": [{
                "name": "limits", "kind": "compliance", "version": "c7", "outcome": "pass",
                "duration_us": fuel, "instantiation_us": 1, "fuel_used": fuel,
            }],
        }))
        .expect("a decision")
    }

    #[test]
    fn a_reproduction_differs_by_its_answer_and_each_rules_part_not_by_its_times() {
        assert!(differences(&decision("accepted", 10), &decision("accepted", 10)).is_empty());
        let mut timed = decision("accepted", 10);
        timed.rules[0].duration_us = 99;
        assert!(differences(&decision("accepted", 10), &timed).is_empty());
        assert_eq!(
            differences(&decision("accepted", 10), &decision("rejected", 11)),
            [
                "status: recorded accepted, reproduced rejected",
                "limits fuel: recorded 10, reproduced 11",
            ]
        );
    }
}
