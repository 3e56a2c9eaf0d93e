//! How the rules' answers become one decision. Pure functions over the trace: no wasm,
//! no I/O, so every combination is tested here.
//!
//! - Compliance: any reject rejects; any review holds.
//! - Fraud: the scores combine by the policy (max or capped sum); at or above
//!   `reject-at` rejects (FRAD), at or above `review-at` holds.
//! - Routing: in order, the first route wins; a router that declines passes to the next;
//!   if routers ran and none chose a rail, the payment is rejected with the last decline.
//! - A failed rule counts as its failure policy says: review holds, reject rejects
//!   (MS03), skip counts as if it had not run.
//! - Rejects come before findings in the reasons; status is rejected if any reject,
//!   pending review if any finding, else accepted.

use crate::model::{ChosenRoute, FailurePolicy, Reason, RuleKind, RuleOutcome, RuleRun, Status};
use crate::registry::{FraudPolicy, ScoreCombination};

/// The finding code for a rule that failed under a `review` policy.
pub const RULE_FAILED_CODE: &str = "rule-failed";
/// The finding code for a fraud score at or above the review threshold.
pub const FRAUD_REVIEW_CODE: &str = "fraud-score-review";
/// ISO 20022: reason not specified by the agent; used for a failed rule under `reject`.
pub const RULE_FAILED_REJECT_CODE: &str = "MS03";
/// ISO 20022: fraudulent origin; used for a fraud score at or above `reject-at`.
pub const FRAUD_REJECT_CODE: &str = "FRAD";

/// The combined answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Combined {
    /// The status.
    pub status: Status,
    /// Rejects first, then findings.
    pub reasons: Vec<Reason>,
    /// The combined fraud score, if any fraud rule scored.
    pub risk_score: Option<u16>,
    /// The route, if one was chosen.
    pub route: Option<ChosenRoute>,
}

#[derive(Default)]
struct Tally {
    rejects: Vec<Reason>,
    findings: Vec<Reason>,
}

impl Tally {
    /// Counts a failed rule as its policy says; `true` if it counted (not skipped).
    fn failure(&mut self, run: &RuleRun, policy: FailurePolicy, message: &str) -> bool {
        let reason = |code: &str, text: String| Reason {
            code: code.to_owned(),
            message: text,
            rule: Some(run.name.clone()),
        };
        match policy {
            FailurePolicy::Review => {
                self.findings.push(reason(
                    RULE_FAILED_CODE,
                    format!(
                        "rule {} failed and its policy holds the payment: {message}",
                        run.name
                    ),
                ));
                true
            }
            FailurePolicy::Reject => {
                self.rejects.push(reason(
                    RULE_FAILED_REJECT_CODE,
                    format!(
                        "rule {} failed and its policy rejects the payment: {message}",
                        run.name
                    ),
                ));
                true
            }
            FailurePolicy::Skip => false,
        }
    }
}

fn with_rule(reason: &Reason, run: &RuleRun) -> Reason {
    Reason {
        rule: Some(run.name.clone()),
        ..reason.clone()
    }
}

/// Whether the compliance rules run so far already reject the payment, so the later
/// stages need not run.
pub fn compliance_rejects(runs: &[RuleRun]) -> bool {
    runs.iter()
        .filter(|run| run.kind == RuleKind::Compliance)
        .any(|run| {
            matches!(
                run.outcome,
                RuleOutcome::Reject { .. }
                    | RuleOutcome::Failed {
                        policy: FailurePolicy::Reject,
                        ..
                    }
            )
        })
}

/// Combines scores by the policy; `None` if there are none.
pub fn combine_scores(scores: &[u16], combination: ScoreCombination) -> Option<u16> {
    if scores.is_empty() {
        return None;
    }
    Some(match combination {
        ScoreCombination::Max => scores.iter().copied().max().unwrap_or(0),
        ScoreCombination::Sum => {
            let total: u32 = scores.iter().map(|s| u32::from(*s)).sum();
            u16::try_from(total.min(1000)).unwrap_or(1000)
        }
    })
}

/// Whether the fraud rules run so far reject the payment: a failure under the `reject`
/// policy, or a combined score at or above `reject-at`.
pub fn fraud_rejects(runs: &[RuleRun], policy: &FraudPolicy) -> bool {
    let mut scores = Vec::new();
    for run in runs.iter().filter(|run| run.kind == RuleKind::Fraud) {
        match &run.outcome {
            RuleOutcome::Score { score, .. } => scores.push(*score),
            RuleOutcome::Failed {
                policy: FailurePolicy::Reject,
                ..
            } => return true,
            _ => {}
        }
    }
    combine_scores(&scores, policy.combine).is_some_and(|score| score >= policy.reject_at)
}

/// Combines the trace of every rule that ran into the decision's answer.
pub fn combine(runs: &[RuleRun], policy: &FraudPolicy) -> Combined {
    let mut tally = Tally::default();
    for run in runs.iter().filter(|run| run.kind == RuleKind::Compliance) {
        match &run.outcome {
            RuleOutcome::Reject { reason } => tally.rejects.push(with_rule(reason, run)),
            RuleOutcome::Review { findings } => {
                tally
                    .findings
                    .extend(findings.iter().map(|f| with_rule(f, run)));
            }
            RuleOutcome::Failed {
                policy, message, ..
            } => {
                tally.failure(run, *policy, message);
            }
            _ => {}
        }
    }
    let mut scores = Vec::new();
    for run in runs.iter().filter(|run| run.kind == RuleKind::Fraud) {
        match &run.outcome {
            RuleOutcome::Score { score, .. } => scores.push(*score),
            RuleOutcome::Failed {
                policy, message, ..
            } => {
                tally.failure(run, *policy, message);
            }
            _ => {}
        }
    }
    let risk_score = combine_scores(&scores, policy.combine);
    if let Some(score) = risk_score {
        if score >= policy.reject_at {
            tally.rejects.push(Reason {
                code: FRAUD_REJECT_CODE.to_owned(),
                message: format!(
                    "fraud score {score} is at or above the reject threshold {}",
                    policy.reject_at
                ),
                rule: None,
            });
        } else if score >= policy.review_at {
            tally.findings.push(Reason {
                code: FRAUD_REVIEW_CODE.to_owned(),
                message: format!(
                    "fraud score {score} is at or above the review threshold {}",
                    policy.review_at
                ),
                rule: None,
            });
        }
    }
    let mut route = None;
    let mut last_decline = None;
    let mut routing_settled = false;
    let mut routers_ran = false;
    for run in runs.iter().filter(|run| run.kind == RuleKind::Routing) {
        routers_ran = true;
        match &run.outcome {
            RuleOutcome::Route { rail, explanation } => {
                route = Some(ChosenRoute {
                    rail: *rail,
                    explanation: explanation.clone(),
                    rule: run.name.clone(),
                });
                routing_settled = true;
            }
            RuleOutcome::Decline { reason } => last_decline = Some(with_rule(reason, run)),
            RuleOutcome::Failed {
                policy, message, ..
            } => {
                routing_settled = tally.failure(run, *policy, message);
            }
            _ => {}
        }
        if routing_settled {
            break;
        }
    }
    if routers_ran && !routing_settled {
        tally.rejects.push(last_decline.unwrap_or_else(|| Reason {
            code: RULE_FAILED_REJECT_CODE.to_owned(),
            message: "no routing rule chose a rail".to_owned(),
            rule: None,
        }));
    }
    let status = if !tally.rejects.is_empty() {
        Status::Rejected
    } else if !tally.findings.is_empty() {
        Status::PendingReview
    } else {
        Status::Accepted
    };
    let mut reasons = tally.rejects;
    reasons.extend(tally.findings);
    Combined {
        status,
        reasons,
        risk_score,
        route,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{FailureKind, Rail, RiskReason};

    fn run(name: &str, kind: RuleKind, outcome: RuleOutcome) -> RuleRun {
        RuleRun {
            name: name.to_owned(),
            kind,
            version: "v".to_owned(),
            outcome,
            duration_us: 0,
            instantiation_us: 0,
            fuel_used: 0,
            logs: Vec::new(),
        }
    }

    fn reason(code: &str) -> Reason {
        Reason {
            code: code.to_owned(),
            message: format!("{code} happened"),
            rule: None,
        }
    }

    fn pass(name: &str) -> RuleRun {
        run(name, RuleKind::Compliance, RuleOutcome::Pass)
    }
    fn review(name: &str, code: &str) -> RuleRun {
        run(
            name,
            RuleKind::Compliance,
            RuleOutcome::Review {
                findings: vec![reason(code)],
            },
        )
    }
    fn reject(name: &str, code: &str) -> RuleRun {
        run(
            name,
            RuleKind::Compliance,
            RuleOutcome::Reject {
                reason: reason(code),
            },
        )
    }
    fn failed(name: &str, kind: RuleKind, policy: FailurePolicy) -> RuleRun {
        run(
            name,
            kind,
            RuleOutcome::Failed {
                failure: FailureKind::FuelExhausted,
                message: "out of fuel".to_owned(),
                policy,
            },
        )
    }
    fn score(name: &str, score: u16) -> RuleRun {
        let reasons = if score == 0 {
            Vec::new()
        } else {
            vec![RiskReason {
                code: "r".to_owned(),
                points: score,
                message: "m".to_owned(),
            }]
        };
        run(name, RuleKind::Fraud, RuleOutcome::Score { score, reasons })
    }
    fn route(name: &str, rail: Rail) -> RuleRun {
        run(
            name,
            RuleKind::Routing,
            RuleOutcome::Route {
                rail,
                explanation: "because".to_owned(),
            },
        )
    }
    fn decline(name: &str, code: &str) -> RuleRun {
        run(
            name,
            RuleKind::Routing,
            RuleOutcome::Decline {
                reason: reason(code),
            },
        )
    }

    fn codes(combined: &Combined) -> Vec<&str> {
        combined.reasons.iter().map(|r| r.code.as_str()).collect()
    }

    const POLICY: FraudPolicy = FraudPolicy {
        combine: ScoreCombination::Max,
        review_at: 600,
        reject_at: 900,
    };

    #[test]
    fn compliance_verdicts_combine_reject_over_review_over_pass() {
        // (runs, status, reason codes in order)
        let cases: Vec<(Vec<RuleRun>, Status, Vec<&str>)> = vec![
            (vec![], Status::Accepted, vec![]),
            (vec![pass("a"), pass("b")], Status::Accepted, vec![]),
            (
                vec![pass("a"), review("b", "weak-match")],
                Status::PendingReview,
                vec!["weak-match"],
            ),
            (
                vec![review("a", "x"), review("b", "y")],
                Status::PendingReview,
                vec!["x", "y"],
            ),
            (
                vec![review("a", "x"), reject("b", "RR04")],
                Status::Rejected,
                vec!["RR04", "x"],
            ),
            (
                vec![reject("a", "RR04"), reject("b", "AM02")],
                Status::Rejected,
                vec!["RR04", "AM02"],
            ),
        ];
        for (runs, status, expected) in cases {
            let combined = combine(&runs, &POLICY);
            assert_eq!(combined.status, status, "{runs:?}");
            assert_eq!(codes(&combined), expected, "{runs:?}");
        }
    }

    #[test]
    fn reasons_name_the_rule_that_gave_them() {
        let combined = combine(&[reject("sanctions", "RR04")], &POLICY);
        assert_eq!(combined.reasons[0].rule.as_deref(), Some("sanctions"));
    }

    #[test]
    fn a_failed_rule_counts_as_its_policy_says() {
        for kind in [RuleKind::Compliance, RuleKind::Fraud] {
            let held = combine(&[failed("x", kind, FailurePolicy::Review)], &POLICY);
            assert_eq!(
                (held.status, codes(&held)),
                (Status::PendingReview, vec![RULE_FAILED_CODE])
            );
            let refused = combine(&[failed("x", kind, FailurePolicy::Reject)], &POLICY);
            assert_eq!(
                (refused.status, codes(&refused)),
                (Status::Rejected, vec![RULE_FAILED_REJECT_CODE])
            );
            let skipped = combine(&[failed("x", kind, FailurePolicy::Skip)], &POLICY);
            assert_eq!(skipped.status, Status::Accepted);
        }
        assert!(compliance_rejects(&[failed(
            "x",
            RuleKind::Compliance,
            FailurePolicy::Reject
        )]));
        assert!(!compliance_rejects(&[failed(
            "x",
            RuleKind::Compliance,
            FailurePolicy::Review
        )]));
    }

    #[test]
    fn scores_combine_by_policy_and_meet_the_thresholds() {
        assert_eq!(combine_scores(&[], ScoreCombination::Max), None);
        assert_eq!(
            combine_scores(&[100, 700, 300], ScoreCombination::Max),
            Some(700)
        );
        assert_eq!(
            combine_scores(&[100, 700, 300], ScoreCombination::Sum),
            Some(1000)
        );
        assert_eq!(
            combine_scores(&[100, 200], ScoreCombination::Sum),
            Some(300)
        );
        let cases = [
            (599, Status::Accepted, vec![]),
            (600, Status::PendingReview, vec![FRAUD_REVIEW_CODE]),
            (899, Status::PendingReview, vec![FRAUD_REVIEW_CODE]),
            (900, Status::Rejected, vec![FRAUD_REJECT_CODE]),
            (1000, Status::Rejected, vec![FRAUD_REJECT_CODE]),
        ];
        for (points, status, expected) in cases {
            let combined = combine(&[score("f", points)], &POLICY);
            assert_eq!(combined.risk_score, Some(points));
            assert_eq!(
                (combined.status, codes(&combined)),
                (status, expected),
                "{points}"
            );
        }
        let summed = FraudPolicy {
            combine: ScoreCombination::Sum,
            ..POLICY
        };
        assert!(fraud_rejects(&[score("a", 500), score("b", 450)], &summed));
        assert!(!fraud_rejects(&[score("a", 500), score("b", 450)], &POLICY));
    }

    #[test]
    fn the_first_route_wins_and_declines_pass_to_the_next_router() {
        let combined = combine(
            &[
                decline("a", "AG03"),
                route("b", Rail::Fednow),
                route("c", Rail::Ach),
            ],
            &POLICY,
        );
        assert_eq!(combined.status, Status::Accepted);
        let chosen = combined.route.expect("a route");
        assert_eq!((chosen.rail, chosen.rule.as_str()), (Rail::Fednow, "b"));
    }

    #[test]
    fn no_route_rejects_with_the_last_decline() {
        let combined = combine(&[decline("a", "AG03"), decline("b", "AM02")], &POLICY);
        assert_eq!(
            (combined.status, codes(&combined)),
            (Status::Rejected, vec!["AM02"])
        );
        let all_failed = combine(
            &[failed("a", RuleKind::Routing, FailurePolicy::Skip)],
            &POLICY,
        );
        assert_eq!(
            (all_failed.status, codes(&all_failed)),
            (Status::Rejected, vec![RULE_FAILED_REJECT_CODE])
        );
    }

    #[test]
    fn a_failed_router_skips_to_the_next_or_holds_as_its_policy_says() {
        let skipped = combine(
            &[
                failed("a", RuleKind::Routing, FailurePolicy::Skip),
                route("b", Rail::Swift),
            ],
            &POLICY,
        );
        assert_eq!(skipped.route.map(|r| r.rail), Some(Rail::Swift));
        let held = combine(
            &[
                failed("a", RuleKind::Routing, FailurePolicy::Review),
                route("b", Rail::Swift),
            ],
            &POLICY,
        );
        assert_eq!((held.status, held.route), (Status::PendingReview, None));
    }

    #[test]
    fn without_routing_rules_a_payment_is_accepted_with_no_route() {
        let combined = combine(&[pass("a"), score("f", 10)], &POLICY);
        assert_eq!((combined.status, combined.route), (Status::Accepted, None));
    }

    #[test]
    fn a_review_with_a_route_keeps_the_route_for_when_it_is_released() {
        let combined = combine(&[review("a", "x"), route("r", Rail::SepaInstant)], &POLICY);
        assert_eq!(combined.status, Status::PendingReview);
        assert_eq!(combined.route.map(|r| r.rail), Some(Rail::SepaInstant));
    }
}
