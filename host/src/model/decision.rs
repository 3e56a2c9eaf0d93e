//! The decision: what payrules answers for a payment, and the trace of every rule that
//! made it.

use serde::{Deserialize, Serialize};

/// The three answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Go ahead, on `route`.
    Accepted,
    /// Refused; `reasons` say why with ISO 20022 codes.
    Rejected,
    /// Held for a person to look at.
    PendingReview,
}

impl Status {
    /// The status as the API spells it (`"pending_review"`).
    pub fn name(self) -> &'static str {
        match self {
            Status::Accepted => "accepted",
            Status::Rejected => "rejected",
            Status::PendingReview => "pending_review",
        }
    }
}

/// Why a payment was rejected or held.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Reason {
    /// ISO 20022 status reason code, or a rule-defined finding code.
    pub code: String,
    /// One sentence.
    pub message: String,
    /// The rule that gave it; `None` when payrules itself did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
}

/// The kinds of rule, in the order the pipeline runs them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RuleKind {
    /// `check(payment) -> verdict`.
    Compliance,
    /// `score(payment) -> risk`.
    Fraud,
    /// `route(payment, candidates) -> result<route, reason>`.
    Routing,
}

impl RuleKind {
    /// The name manifests use.
    pub fn name(self) -> &'static str {
        match self {
            RuleKind::Compliance => "compliance",
            RuleKind::Fraud => "fraud",
            RuleKind::Routing => "routing",
        }
    }
}

/// A payment rail.
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum Rail {
    /// The Clearing House RTP.
    Rtp,
    /// FedNow.
    Fednow,
    /// ACH.
    Ach,
    /// SEPA Instant Credit Transfer.
    SepaInstant,
    /// SEPA Credit Transfer.
    SepaCreditTransfer,
    /// SWIFT.
    Swift,
    /// A transfer between two accounts of this institution.
    BookTransfer,
}

impl Rail {
    /// The rail's name as manifests, decisions and the API spell it (`"sepa-instant"`).
    pub fn name(self) -> &'static str {
        match self {
            Rail::Rtp => "rtp",
            Rail::Fednow => "fednow",
            Rail::Ach => "ach",
            Rail::SepaInstant => "sepa-instant",
            Rail::SepaCreditTransfer => "sepa-credit-transfer",
            Rail::Swift => "swift",
            Rail::BookTransfer => "book-transfer",
        }
    }

    /// Every rail.
    pub const ALL: [Rail; 7] = [
        Rail::Rtp,
        Rail::Fednow,
        Rail::Ach,
        Rail::SepaInstant,
        Rail::SepaCreditTransfer,
        Rail::Swift,
        Rail::BookTransfer,
    ];
}

/// One contribution to a fraud score.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RiskReason {
    /// Rule-defined code.
    pub code: String,
    /// Points added.
    pub points: u16,
    /// One sentence.
    pub message: String,
}

/// What a rule answered, or how it failed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum RuleOutcome {
    /// Compliance: nothing to object to.
    Pass,
    /// Compliance: hold for review.
    Review {
        /// What the rule found.
        findings: Vec<Reason>,
    },
    /// Compliance: refuse.
    Reject {
        /// Why, with an ISO code.
        reason: Reason,
    },
    /// Fraud: a score.
    Score {
        /// 0..=1000.
        score: u16,
        /// A reason for every point.
        reasons: Vec<RiskReason>,
    },
    /// Routing: a rail.
    Route {
        /// The rail chosen.
        rail: Rail,
        /// Why.
        explanation: String,
    },
    /// Routing: no rail from this rule.
    Decline {
        /// Why, with an ISO code.
        reason: Reason,
    },
    /// The rule broke a bound or answered nonsense; its failure policy applied.
    Failed {
        /// What went wrong.
        failure: FailureKind,
        /// Detail for operators.
        message: String,
        /// What the pipeline did about it.
        policy: FailurePolicy,
    },
}

impl RuleOutcome {
    /// Whether the rule fired: answered anything but a pass or a score of 0 (what
    /// `GET /v1/payments?rule=` finds).
    pub fn fired(&self) -> bool {
        !matches!(
            self,
            RuleOutcome::Pass | RuleOutcome::Score { score: 0, .. }
        )
    }

    /// The reason codes the answer carries: a reject or decline reason, review findings,
    /// risk reasons.
    pub fn codes(&self) -> Vec<&str> {
        match self {
            RuleOutcome::Pass | RuleOutcome::Route { .. } | RuleOutcome::Failed { .. } => {
                Vec::new()
            }
            RuleOutcome::Review { findings } => findings.iter().map(|r| r.code.as_str()).collect(),
            RuleOutcome::Reject { reason } | RuleOutcome::Decline { reason } => {
                vec![reason.code.as_str()]
            }
            RuleOutcome::Score { reasons, .. } => reasons.iter().map(|r| r.code.as_str()).collect(),
        }
    }

    /// The answer in one line: its verdict and its score, rail or reason codes
    /// (`score 200 [new-creditor]`, `route fednow`, `reject [RR04]`).
    pub fn summary(&self) -> String {
        let codes = self.codes().join(", ");
        match self {
            RuleOutcome::Pass => "pass".to_owned(),
            RuleOutcome::Review { .. } => format!("review [{codes}]"),
            RuleOutcome::Reject { .. } => format!("reject [{codes}]"),
            RuleOutcome::Decline { .. } => format!("decline [{codes}]"),
            RuleOutcome::Score { score, .. } => format!("score {score} [{codes}]"),
            RuleOutcome::Route { rail, .. } => format!("route {}", rail.name()),
            RuleOutcome::Failed {
                failure, message, ..
            } => format!("failed ({failure:?}: {message})"),
        }
    }
}

/// How a rule failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum FailureKind {
    /// It trapped (a panic, an unreachable, an out-of-bounds access).
    Trap,
    /// It used all its fuel (CPU bound).
    FuelExhausted,
    /// It ran past its wall-clock deadline.
    Timeout,
    /// It tried to grow its memory past its cap.
    MemoryLimit,
    /// It overflowed the WebAssembly stack.
    StackOverflow,
    /// It called the host more often than allowed.
    HostCallLimit,
    /// Its answer was larger than allowed.
    OutputTooLarge,
    /// Its answer broke the contract (unknown reason code, wrong score, a rail not offered).
    InvalidOutput,
    /// It could not be instantiated.
    Instantiation,
    /// It was not run: its circuit is open after repeated failures on this host.
    CircuitOpen,
}

/// What a failing rule means for the payment. Manifests spell these in kebab-case.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum FailurePolicy {
    /// Hold the payment for review (the default for compliance and fraud: fail closed).
    Review,
    /// Reject the payment (ISO 20022 MS03).
    Reject,
    /// Carry on as if the rule had not run (the default for routing: try the next router).
    Skip,
}

impl FailurePolicy {
    /// The policy a rule of `kind` gets when its manifest names none.
    pub fn default_for(kind: RuleKind) -> FailurePolicy {
        match kind {
            RuleKind::Compliance | RuleKind::Fraud => FailurePolicy::Review,
            RuleKind::Routing => FailurePolicy::Skip,
        }
    }
}

/// One rule's part in a decision.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RuleRun {
    /// The rule's name.
    pub name: String,
    /// Its kind.
    pub kind: RuleKind,
    /// The sha256 of its component, hex.
    pub version: String,
    /// What it answered.
    #[serde(flatten)]
    pub outcome: RuleOutcome,
    /// Wall time from instantiation to checked answer, microseconds.
    pub duration_us: u64,
    /// The part of `duration_us` spent instantiating the rule, microseconds.
    pub instantiation_us: u64,
    /// Fuel consumed (about one unit per WebAssembly instruction).
    pub fuel_used: u64,
    /// What the rule logged while deciding (at most 32 lines).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub logs: Vec<RuleLogLine>,
}

/// One line a rule logged.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RuleLogLine {
    /// debug, info, warn or error.
    pub level: String,
    /// The message (at most 1024 bytes).
    pub message: String,
}

/// The route a payment takes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ChosenRoute {
    /// The rail.
    pub rail: Rail,
    /// Why, from the rule.
    pub explanation: String,
    /// The routing rule that chose it.
    pub rule: String,
}

/// The decision for one payment.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Decision {
    /// The host's id for the payment.
    pub payment_id: String,
    /// The payment's end-to-end id.
    pub end_to_end_id: String,
    /// The answer.
    pub status: Status,
    /// Why rejected or held, ISO codes first; empty when accepted.
    pub reasons: Vec<Reason>,
    /// The combined fraud score, if fraud rules ran.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub risk_score: Option<u16>,
    /// The route, if a routing rule chose one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub route: Option<ChosenRoute>,
    /// The version of the rule set that decided (sha256 over its rules, manifests and lists).
    pub rule_set_version: String,
    /// Whether a canary rule set decided it (present only then): a candidate deciding a
    /// share of live traffic beside the live set.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub canary: bool,
    /// When, in milliseconds since the Unix epoch (the instant every rule saw).
    pub decided_at_unix_ms: i64,
    /// Every rule that ran, in order.
    pub rules: Vec<RuleRun>,
}

/// What a submitting system is told of a decision: the answer — status, the codes of its
/// reasons, the rail — without the rules' trace, their findings' messages or the fraud
/// score. Those are for operators and auditors: a fraud reason quotes velocity figures
/// (what the debtor or creditor paid, through every client's submissions), a screening
/// finding names a listed party, and neither may reach another client, nor tip off.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct ClientDecision {
    /// The host's id for the payment.
    pub payment_id: String,
    /// The payment's end-to-end id.
    pub end_to_end_id: String,
    /// The answer.
    pub status: Status,
    /// The codes of the reasons, ISO 20022 codes first; empty when accepted.
    pub reasons: Vec<ReasonCode>,
    /// The rail, if a routing rule chose one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub route: Option<ClientRoute>,
    /// The version of the rule set that decided.
    pub rule_set_version: String,
    /// When, in milliseconds since the Unix epoch.
    pub decided_at_unix_ms: i64,
}

/// A reason's code, without its message.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct ReasonCode {
    /// ISO 20022 status reason code, or a rule-defined finding code.
    pub code: String,
}

/// The rail chosen, without the rule's explanation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct ClientRoute {
    /// The rail.
    pub rail: Rail,
}

impl From<&Decision> for ClientDecision {
    fn from(decision: &Decision) -> Self {
        ClientDecision {
            payment_id: decision.payment_id.clone(),
            end_to_end_id: decision.end_to_end_id.clone(),
            status: decision.status,
            reasons: decision
                .reasons
                .iter()
                .map(|reason| ReasonCode {
                    code: reason.code.clone(),
                })
                .collect(),
            route: decision
                .route
                .as_ref()
                .map(|route| ClientRoute { rail: route.rail }),
            rule_set_version: decision.rule_set_version.clone(),
            decided_at_unix_ms: decision.decided_at_unix_ms,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_the_serialized_forms() {
        for rail in Rail::ALL {
            assert_eq!(serde_json::to_value(rail).unwrap(), rail.name());
        }
        for status in [Status::Accepted, Status::Rejected, Status::PendingReview] {
            assert_eq!(serde_json::to_value(status).unwrap(), status.name());
        }
    }
}
