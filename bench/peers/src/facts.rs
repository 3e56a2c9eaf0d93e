//! What the host gives a peer engine besides the payment, and what every engine's answer
//! is compared on.
//!
//! payrules' rules ask the host during the call (velocity figures, the sanctions index);
//! a peer gets the same answers from the same host code: the velocity book's five
//! figures the velocity rule reads (`floor::signals`), and, where the engine cannot call
//! the host, the screening index's answer for each named party. The time to gather them counts in the
//! peer's time per payment.

use payrules::lists::NamedList;
use payrules::model::{Decision, Urgency};

/// The similarity at or above which the screening rule looks at a match (`weak-match`).
pub const WEAK_MATCH: u16 = 850;

/// The best similarity (0..=1000) of `name` to an entry of `list`, 0 if none reaches
/// [`WEAK_MATCH`]: what the screening rule's `lists.fuzzy-match` call answers.
pub fn best_match(list: &NamedList, name: &str) -> u16 {
    list.fuzzy_match(name, WEAK_MATCH, 3, None)
        .expect("a payment's party name is within the look-up's bound")
        .first()
        .map_or(0, |m| m.similarity)
}

/// Whether `name` is written with tricks that hide what it says (the screening rule's
/// `name-disguised` finding; the same function the rule runs).
pub fn disguised(name: &str) -> bool {
    !payrules_sdk::names::disguises(name).is_empty()
}

/// What every engine's decision is compared on: the status, the reason codes in order,
/// the risk score and the rail. (The reasons' messages are not compared: the peers
/// return codes only.)
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    pub status: String,
    pub codes: Vec<String>,
    pub score: Option<u16>,
    pub rail: Option<String>,
}

impl Outcome {
    /// The outcome of a payrules decision.
    pub fn of(decision: &Decision) -> Outcome {
        Outcome {
            status: decision.status.name().to_owned(),
            codes: decision.reasons.iter().map(|r| r.code.clone()).collect(),
            score: decision.risk_score,
            rail: decision.route.as_ref().map(|r| r.rail.name().to_owned()),
        }
    }
}

/// The urgency as the API and the manifests spell it.
pub fn urgency_name(urgency: Urgency) -> &'static str {
    match urgency {
        Urgency::Normal => "normal",
        Urgency::Urgent => "urgent",
        Urgency::Instant => "instant",
    }
}
