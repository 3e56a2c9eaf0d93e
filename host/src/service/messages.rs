//! Submitting an ISO 20022 message (pacs.008 or pain.001): each transaction becomes a
//! payment; those valid are decided on every decider at once, those not are rejected
//! with the reason code of their first fault; all of it is committed in one transaction
//! with the status report that answers it. The message's MsgId is its idempotency key
//! (scoped per API key): the same message again gets the very same report; another
//! message under a used MsgId is refused. Once its held transactions are reviewed, the
//! message's status ([`Service::message_status`]) is the report followed up: each
//! reviewed line with its outcome, under a report id of its own.

use std::collections::HashMap;
use std::sync::Arc;

use super::payments::new_payment_id;
use super::{Service, ServiceError};
use crate::iso20022::report::{StatusReason, StatusReport, TxReport, TxStatus};
use crate::iso20022::{ParsedMessage, RawPayment};
use crate::model::{Decision, Payment, Review, Status, Uetr, Verdict};
use crate::store::{IdempotencyClaim, NewDecision, NewMessage, StoreError, now_unix_ms};

/// What a message got: its status report, and the decision of each decided transaction
/// by payment id (on a replay, only if asked for).
#[derive(Debug)]
pub struct MessageAnswer {
    /// The report (the pacs.002's content).
    pub report: StatusReport,
    /// Each decided transaction's decision, by payment id.
    pub decisions: HashMap<String, Decision>,
    /// Whether this is the stored report of an earlier request with the same MsgId.
    pub replayed: bool,
}

/// The idempotency key of a message: its MsgId, in a namespace of its own.
fn key_of(message_id: &str) -> String {
    format!("iso20022:{message_id}")
}

impl Service {
    /// Decides and stores every transaction of `message`, sent by `principal`; or, for a
    /// MsgId used before, the stored report (same message) or
    /// [`ServiceError::KeyReused`]. `with_decisions`: a replay also reads each decision.
    pub async fn submit_message(
        &self,
        principal: &Arc<str>,
        message: ParsedMessage,
        with_decisions: bool,
    ) -> Result<MessageAnswer, ServiceError> {
        let canonical = serde_json::to_vec(&message).map_err(ServiceError::internal)?;
        let fingerprint = self.store.fingerprint(&canonical);
        let key = key_of(&message.message_id);
        let Some(_claim) = self.in_flight.claim(principal, &key) else {
            return Err(ServiceError::InFlight);
        };
        if let Some(answer) = self
            .replay_message(principal, &message.message_id, &fingerprint, with_decisions)
            .await?
        {
            return Ok(answer);
        }
        let received_at = now_unix_ms();
        let (lines, decided) = self
            .decide_transactions(&message.payments, received_at)
            .await?;
        let report = StatusReport {
            report_id: new_payment_id()?.replacen("pay_", "PR", 1),
            created_at_unix_ms: now_unix_ms(),
            original_message_id: message.message_id.clone(),
            original_message_type: message.message_type.clone(),
            transactions: lines,
        };
        let decisions = decided
            .iter()
            .map(|(payment, decision)| NewDecision {
                payment_id: decision.payment_id.clone(),
                received_at_unix_ms: received_at,
                submitted_by: principal.to_string(),
                payment: payment.clone(),
                decision: decision.clone(),
                idempotency: IdempotencyClaim {
                    principal: principal.to_string(),
                    key: key.clone(),
                    fingerprint,
                    // A message id is claimed by its row when the message commits.
                    token: None,
                },
            })
            .collect();
        let record = NewMessage {
            principal: principal.to_string(),
            message_id: message.message_id.clone(),
            fingerprint,
            received_at_unix_ms: received_at,
            decisions,
            report: serde_json::to_string(&report).map_err(ServiceError::internal)?,
        };
        // Followed by the other hosts; this one counts them itself once stored.
        let accepted: Vec<&str> = decided
            .iter()
            .filter(|(_, d)| d.status == crate::model::Status::Accepted && self.store.shared())
            .map(|(_, d)| d.payment_id.as_str())
            .collect();
        self.following.expect(accepted.iter().copied());
        let committed = self.store.commit_message(record).await;
        if committed.is_err() {
            self.following.forget(accepted);
        }
        match committed {
            Ok(()) => {}
            Err(StoreError::KeyTaken) => {
                return self
                    .replay_message(principal, &message.message_id, &fingerprint, with_decisions)
                    .await?
                    .ok_or_else(|| {
                        ServiceError::internal("a message id was taken, then vanished")
                    });
            }
            Err(error) => return Err(error.into()),
        }
        let decisions = decided
            .iter()
            .map(|(_, d)| (d.payment_id.clone(), d.clone()))
            .collect();
        self.stored(decided);
        tracing::info!(
            message_id = %message.message_id,
            transactions = report.transactions.len(),
            group_status = report.group_status(),
            "message decided"
        );
        Ok(MessageAnswer {
            report,
            decisions,
            replayed: false,
        })
    }

    /// Decides each valid transaction at `received_at` (all at once across the
    /// deciders) and reports each: the report's lines, in the message's order, and the
    /// decided payments.
    async fn decide_transactions(
        &self,
        transactions: &[RawPayment],
        received_at: i64,
    ) -> Result<(Vec<TxReport>, Vec<(Payment, Decision)>), ServiceError> {
        let mut pending = Vec::with_capacity(transactions.len());
        for raw in transactions {
            let line = TxReport {
                payment_id: None,
                payment_information_id: raw.payment_information_id.clone(),
                instruction_id: raw.instruction_id.as_deref().map(max35),
                end_to_end_id: raw.end_to_end_id.as_deref().map(max35),
                uetr: raw
                    .uetr
                    .clone()
                    .filter(|u| Uetr::try_from(u.clone()).is_ok()),
                status: TxStatus::Rejected,
                reasons: Vec::new(),
            };
            match canonical_payment(raw) {
                Ok(payment) => {
                    let payment_id = new_payment_id()?;
                    let (rules, canary) = self.rules_for(&payment);
                    let answer = self
                        .deciders
                        .enqueue(rules, payment, payment_id.clone(), received_at)
                        .map_err(ServiceError::internal)?;
                    pending.push((line, Some((payment_id, canary, answer))));
                }
                Err(reason) => {
                    let mut line = line;
                    line.reasons.push(reason);
                    pending.push((line, None));
                }
            }
        }
        let mut lines = Vec::with_capacity(pending.len());
        let mut decided = Vec::new();
        for (mut line, queued) in pending {
            if let Some((payment_id, canary, answer)) = queued {
                let (payment, mut decision) = answer.await.map_err(ServiceError::internal)?;
                decision.canary = canary;
                line.payment_id = Some(payment_id);
                line.status = match decision.status {
                    Status::Accepted => TxStatus::AcceptedSettlementInProcess,
                    Status::PendingReview => TxStatus::Pending,
                    Status::Rejected => TxStatus::Rejected,
                };
                line.reasons = decision
                    .reasons
                    .iter()
                    .map(|r| StatusReason {
                        code: r.code.clone(),
                        message: r.message.clone(),
                    })
                    .collect();
                decided.push((payment, decision));
            }
            lines.push(line);
        }
        Ok((lines, decided))
    }

    /// The stored report for a MsgId already used: the same report for the same message,
    /// [`ServiceError::KeyReused`] for another; `None` for a MsgId not used.
    async fn replay_message(
        &self,
        principal: &str,
        message_id: &str,
        fingerprint: &[u8; 32],
        with_decisions: bool,
    ) -> Result<Option<MessageAnswer>, ServiceError> {
        let Some(stored) = self.store.message(principal, message_id).await? else {
            return Ok(None);
        };
        if &stored.fingerprint != fingerprint {
            return Err(ServiceError::KeyReused {
                previous: message_id.to_owned(),
            });
        }
        let report: StatusReport =
            serde_json::from_str(&stored.report).map_err(ServiceError::internal)?;
        let mut decisions = HashMap::new();
        if with_decisions {
            for id in report
                .transactions
                .iter()
                .filter_map(|t| t.payment_id.as_deref())
            {
                if let Some(stored) = self.store.payment(id).await? {
                    decisions.insert(id.to_owned(), stored.decision);
                }
            }
        }
        self.metrics.replay();
        Ok(Some(MessageAnswer {
            report,
            decisions,
            replayed: true,
        }))
    }
}

impl Service {
    /// The status of message `message_id` that `principal` sent, as of now: the report
    /// first answered, each transaction held for review and reviewed since given its
    /// outcome (`ACSP` approved, `RJCT` rejected with the reviewer's reason code), under
    /// a new report id (the same for the same outcomes, so asking twice gives the same
    /// report) dated at the latest review. `None` if the key sent no such message.
    pub async fn message_status(
        &self,
        principal: &str,
        message_id: &str,
    ) -> Result<Option<StatusReport>, ServiceError> {
        let Some(stored) = self.store.message(principal, message_id).await? else {
            return Ok(None);
        };
        let report: StatusReport =
            serde_json::from_str(&stored.report).map_err(ServiceError::internal)?;
        let held: Vec<String> = report
            .transactions
            .iter()
            .filter(|line| line.status == TxStatus::Pending)
            .filter_map(|line| line.payment_id.clone())
            .collect();
        if held.is_empty() {
            return Ok(Some(report));
        }
        let reviews = self.store.reviews_of(&held).await?;
        Ok(Some(followed_up(report, reviews)))
    }
}

/// `report` with each reviewed line given its review's outcome.
fn followed_up(mut report: StatusReport, mut reviews: Vec<Review>) -> StatusReport {
    if reviews.is_empty() {
        return report;
    }
    reviews.sort_by(|a, b| a.payment_id.cmp(&b.payment_id));
    let by_id: HashMap<&str, &Review> =
        reviews.iter().map(|r| (r.payment_id.as_str(), r)).collect();
    for line in &mut report.transactions {
        let Some(review) = line.payment_id.as_deref().and_then(|id| by_id.get(id)) else {
            continue;
        };
        match review.verdict {
            Verdict::Approve => {
                line.status = TxStatus::AcceptedSettlementInProcess;
                line.reasons.clear();
            }
            Verdict::Reject => {
                line.status = TxStatus::Rejected;
                line.reasons = vec![StatusReason {
                    code: review
                        .reason_code
                        .clone()
                        .unwrap_or_else(|| "NARR".to_owned()),
                    message: if review.expired {
                        "not reviewed before the review deadline".to_owned()
                    } else {
                        "rejected on review".to_owned()
                    },
                }];
            }
        }
    }
    // A report id of its own (Max35Text: "PR" and 32 hex digits), the same for the same
    // outcomes: the original report's id and each review, hashed.
    let mut outcomes = report.report_id.clone();
    for review in &reviews {
        outcomes.push_str(&format!(
            "|{}:{}:{}",
            review.payment_id,
            review.verdict.name(),
            review.reviewed_at_unix_ms
        ));
    }
    let digest = crate::store::audit::sha256_hex(&outcomes);
    report.report_id = format!("PR{}", &digest[..32]);
    report.created_at_unix_ms = reviews
        .iter()
        .map(|r| r.reviewed_at_unix_ms)
        .max()
        .unwrap_or(report.created_at_unix_ms);
    report
}

/// A raw transaction as a validated payment, or the reason it is not one.
fn canonical_payment(raw: &RawPayment) -> Result<Payment, StatusReason> {
    let json = serde_json::to_string(raw).map_err(|e| StatusReason {
        code: "FF01".to_owned(),
        message: e.to_string(),
    })?;
    Payment::from_json(&json).map_err(|invalid| StatusReason {
        code: invalid.code.to_owned(),
        message: if invalid.field.is_empty() {
            invalid.reason
        } else {
            format!("{}: {}", invalid.field, invalid.reason)
        },
    })
}

fn max35(text: &str) -> String {
    text.chars().take(35).collect()
}
