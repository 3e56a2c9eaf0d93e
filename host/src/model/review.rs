//! A review: what a person (or, at the deadline, payrules) decided about a payment the
//! rules held. The rules' decision stays as it was made; the review is a record of its
//! own beside it, and the payment's final status follows from both.

use serde::{Deserialize, Serialize};

use super::Status;

/// What a reviewer decided.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// The payment goes ahead (its final status is `accepted`).
    Approve,
    /// The payment is refused (its final status is `rejected`), with an ISO 20022 reason.
    Reject,
}

impl Verdict {
    /// The verdict as the API and the store spell it.
    pub fn name(self) -> &'static str {
        match self {
            Verdict::Approve => "approve",
            Verdict::Reject => "reject",
        }
    }

    /// The verdict stored under `text`.
    pub fn parse(text: &str) -> Option<Verdict> {
        match text {
            "approve" => Some(Verdict::Approve),
            "reject" => Some(Verdict::Reject),
            _ => None,
        }
    }
}

/// A held payment's review, as recorded.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Review {
    /// The payment reviewed.
    pub payment_id: String,
    /// What was decided.
    pub verdict: Verdict,
    /// The ISO 20022 external status reason code (required for a reject).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason_code: Option<String>,
    /// The reviewer's note.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// The API key that reviewed it, or `payrules` when the deadline passed unreviewed.
    pub reviewer: String,
    /// When, ms since the Unix epoch.
    pub reviewed_at_unix_ms: i64,
    /// The sha256 (hex) of the decision as stored when it was reviewed.
    pub decision_sha256: String,
    /// Whether nobody reviewed it in time and payrules rejected it at the deadline.
    pub expired: bool,
}

impl Review {}

/// A payment's final status: its decision's, or its review's verdict's once a held payment
/// is reviewed.
pub fn final_status(decided: Status, verdict: Option<Verdict>) -> Status {
    match verdict {
        Some(Verdict::Approve) if decided == Status::PendingReview => Status::Accepted,
        Some(Verdict::Reject) if decided == Status::PendingReview => Status::Rejected,
        _ => decided,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_held_payment_ends_as_its_review_says_and_others_as_decided() {
        for (decided, verdict, expected) in [
            (Status::PendingReview, None, Status::PendingReview),
            (
                Status::PendingReview,
                Some(Verdict::Approve),
                Status::Accepted,
            ),
            (
                Status::PendingReview,
                Some(Verdict::Reject),
                Status::Rejected,
            ),
            (Status::Accepted, Some(Verdict::Reject), Status::Accepted),
            (Status::Rejected, None, Status::Rejected),
        ] {
            assert_eq!(final_status(decided, verdict), expected);
        }
    }

    #[test]
    fn verdicts_read_back_as_written() {
        for verdict in [Verdict::Approve, Verdict::Reject] {
            assert_eq!(Verdict::parse(verdict.name()), Some(verdict));
        }
        assert_eq!(Verdict::parse("Approve"), None);
    }
}
