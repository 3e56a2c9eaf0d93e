//! A canary: a candidate rule set that decides a share of live traffic for real, beside
//! the live set, until it is promoted or aborted.
//!
//! A payment goes to the canary when the hash of its debtor account falls within the
//! canary's percentage ([`in_canary`]): one customer's payments see one rule set, a retry
//! sees the set the first try saw, and raising the percentage only moves accounts from
//! the live set to the canary. [`CanaryStats`] counts what each set decided while the
//! canary runs — decisions by status, decisions with a rule failure, and the time in rules
//! — and [`AbortPolicy::breached`] says when those figures abort it. The policy comes from
//! `canary.toml` in the candidate directory ([`CanaryPolicy`]).

use std::collections::VecDeque;
use std::sync::Mutex;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::model::{Decision, Payment, RuleOutcome, Status};

/// The file of a canary's policy in its directory (not a rule manifest).
pub const CANARY_FILE: &str = "canary.toml";
/// The most recent decisions of each set whose time in rules the percentiles are taken
/// over.
pub const LATENCY_SAMPLE_MAX: usize = 10_000;

/// Whether `payment` goes to a canary deciding `percent` % of traffic: by the SHA-256 of
/// its debtor account, so the same account always lands on the same side.
pub fn in_canary(payment: &Payment, percent: u8) -> bool {
    let digest = Sha256::digest(payment.debtor_account().as_bytes());
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    u64::from_be_bytes(first) % 100 < u64::from(percent)
}

/// What a canary's directory says of it in `canary.toml`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CanaryPolicy {
    /// The share of live traffic it decides, 0 to 100 (an operator may change it).
    #[serde(default = "default_percent")]
    pub percent: u8,
    /// When it is aborted.
    #[serde(default)]
    pub abort: AbortPolicy,
}

fn default_percent() -> u8 {
    10
}

impl Default for CanaryPolicy {
    fn default() -> Self {
        CanaryPolicy {
            percent: default_percent(),
            abort: AbortPolicy::default(),
        }
    }
}

impl CanaryPolicy {
    /// Parses `canary.toml`.
    pub fn parse(text: &str) -> Result<CanaryPolicy, String> {
        let policy: CanaryPolicy = toml::from_str(text).map_err(|e| e.to_string())?;
        if policy.percent > 100 {
            return Err(format!("percent: {} is more than 100", policy.percent));
        }
        for (field, value) in [
            (
                "abort.rule_failure_percent_max",
                policy.abort.rule_failure_percent_max,
            ),
            (
                "abort.reject_percent_above_live_max",
                policy.abort.reject_percent_above_live_max,
            ),
        ] {
            if value > 100 {
                return Err(format!("{field}: {value} is more than 100"));
            }
        }
        Ok(policy)
    }
}

/// When a canary is aborted: any threshold crossed once it has decided
/// `decisions_min` payments (on the host that judges it).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct AbortPolicy {
    /// How many decisions the canary makes before it is judged.
    pub decisions_min: u64,
    /// The most of its decisions, in percent, that may have a rule fail (0: any failure
    /// aborts).
    pub rule_failure_percent_max: u8,
    /// The highest 99th percentile of its time in rules per payment, ms.
    pub p99_ms_max: u64,
    /// How many percentage points its share of rejects may exceed the live set's.
    pub reject_percent_above_live_max: u8,
}

impl Default for AbortPolicy {
    fn default() -> Self {
        AbortPolicy {
            decisions_min: 100,
            rule_failure_percent_max: 1,
            p99_ms_max: 50,
            reject_percent_above_live_max: 5,
        }
    }
}

impl AbortPolicy {
    /// Why the canary's figures abort it, if they do.
    pub fn breached(&self, live: &ArmFigures, canary: &ArmFigures) -> Option<String> {
        if canary.decisions < self.decisions_min.max(1) {
            return None;
        }
        let threshold = u64::from(self.rule_failure_percent_max);
        if canary.with_rule_failure * 100 > threshold * canary.decisions {
            return Some(format!(
                "{} of its {} decisions had a rule fail, more than {}%",
                canary.with_rule_failure, canary.decisions, self.rule_failure_percent_max
            ));
        }
        if canary.rules_p99_us > self.p99_ms_max.saturating_mul(1000) {
            return Some(format!(
                "its p99 time in rules is {} µs, more than {} ms",
                canary.rules_p99_us, self.p99_ms_max
            ));
        }
        // Reject shares compared in integers: canary/c > live/l + m/100.
        let margin = u64::from(self.reject_percent_above_live_max);
        let (c, l) = (canary.decisions, live.decisions.max(1));
        if canary.rejected * 100 * l > (live.rejected * 100 + margin * l) * c {
            return Some(format!(
                "it rejected {} of {} payments, more than {} points above the live set's {} of {}",
                canary.rejected, canary.decisions, margin, live.rejected, live.decisions
            ));
        }
        None
    }
}

/// What one set decided while the canary ran.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct ArmFigures {
    /// Decisions made.
    pub decisions: u64,
    /// Of which accepted.
    pub accepted: u64,
    /// Of which rejected.
    pub rejected: u64,
    /// Of which held for review.
    pub pending_review: u64,
    /// Decisions in which at least one rule failed (trap, fuel, timeout, ...; its failure
    /// policy applied).
    pub with_rule_failure: u64,
    /// The median time in rules per payment (the sum of its rules' times), µs, over the
    /// most recent decisions.
    pub rules_p50_us: u64,
    /// The 99th percentile of the same, µs.
    pub rules_p99_us: u64,
}

/// One set's counts and recent times in rules.
#[derive(Default)]
struct Arm {
    figures: ArmFigures,
    rules_us: VecDeque<u64>,
}

impl Arm {
    fn record(&mut self, decision: &Decision) {
        let figures = &mut self.figures;
        figures.decisions += 1;
        match decision.status {
            Status::Accepted => figures.accepted += 1,
            Status::Rejected => figures.rejected += 1,
            Status::PendingReview => figures.pending_review += 1,
        }
        if decision
            .rules
            .iter()
            .any(|run| matches!(run.outcome, RuleOutcome::Failed { .. }))
        {
            figures.with_rule_failure += 1;
        }
        if self.rules_us.len() == LATENCY_SAMPLE_MAX {
            self.rules_us.pop_front();
        }
        self.rules_us
            .push_back(decision.rules.iter().map(|run| run.duration_us).sum());
    }

    fn figures(&self) -> ArmFigures {
        let mut sorted: Vec<u64> = self.rules_us.iter().copied().collect();
        sorted.sort_unstable();
        // The nearest-rank percentile: the smallest value at or above p% of the sample.
        let rank = |p: usize| -> u64 {
            if sorted.is_empty() {
                return 0;
            }
            let index = (p * sorted.len()).div_ceil(100).max(1) - 1;
            sorted[index]
        };
        ArmFigures {
            rules_p50_us: rank(50),
            rules_p99_us: rank(99),
            ..self.figures.clone()
        }
    }
}

/// What the live set and the canary decided while the canary ran (on this host).
#[derive(Default)]
pub struct CanaryStats {
    arms: Mutex<(Arm, Arm)>,
}

impl CanaryStats {
    /// Counts a stored decision on its side (`decision.canary`).
    pub fn record(&self, decision: &Decision) {
        let mut arms = self.arms.lock().unwrap_or_else(|p| p.into_inner());
        if decision.canary {
            arms.1.record(decision);
        } else {
            arms.0.record(decision);
        }
    }

    /// The live set's figures and the canary's.
    pub fn figures(&self) -> (ArmFigures, ArmFigures) {
        let arms = self.arms.lock().unwrap_or_else(|p| p.into_inner());
        (arms.0.figures(), arms.1.figures())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn figures(decisions: u64, rejected: u64, failures: u64, p99_us: u64) -> ArmFigures {
        ArmFigures {
            decisions,
            rejected,
            accepted: decisions - rejected,
            with_rule_failure: failures,
            rules_p99_us: p99_us,
            ..ArmFigures::default()
        }
    }

    #[test]
    fn each_threshold_aborts_only_once_crossed_and_judged() {
        let policy = AbortPolicy {
            decisions_min: 100,
            rule_failure_percent_max: 1,
            p99_ms_max: 5,
            reject_percent_above_live_max: 5,
        };
        let live = figures(1000, 100, 0, 900);
        for (canary, aborts, why) in [
            (figures(99, 99, 99, 99_000), false, "too few to judge"),
            (
                figures(100, 10, 1, 900),
                false,
                "1% failures is the most allowed",
            ),
            (figures(100, 10, 2, 900), true, "2% failures"),
            (figures(200, 20, 0, 5_000), false, "p99 at the bound"),
            (figures(200, 20, 0, 5_001), true, "p99 above the bound"),
            (
                figures(100, 15, 0, 900),
                false,
                "15% rejects: 5 points above 10%",
            ),
            (figures(100, 16, 0, 900), true, "16% rejects"),
        ] {
            assert_eq!(policy.breached(&live, &canary).is_some(), aborts, "{why}");
        }
    }

    #[test]
    fn a_policy_file_is_checked_and_defaults_fill_the_rest() {
        let policy = CanaryPolicy::parse("percent = 20\n[abort]\np99_ms_max = 9\n").unwrap();
        assert_eq!(policy.percent, 20);
        assert_eq!(policy.abort.p99_ms_max, 9);
        assert_eq!(policy.abort.decisions_min, 100);
        assert!(
            CanaryPolicy::parse("percent = 101")
                .unwrap_err()
                .contains("percent")
        );
        assert!(
            CanaryPolicy::parse("percnt = 1")
                .unwrap_err()
                .contains("percnt")
        );
        assert!(
            CanaryPolicy::parse("[abort]\nrule_failure_percent_max = 300")
                .unwrap_err()
                .contains("rule_failure_percent_max")
        );
    }
}
