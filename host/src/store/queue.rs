//! What a backend's writer is given: the writes its callers queue, each answered once it
//! is durable. Both backends queue the same writes; their writers differ.

use super::outbox::{DeliveryOutcome, EventRoutes};
use super::personal::{PersonalData, context};
use super::{DecisionRecord, NewDecision, NewMessage, ReviewRecord, StoreError, now_unix_ms};
use crate::model::{Decision, Review};

/// A write and who waits for its outcome.
pub(crate) struct Job {
    pub(crate) write: Write,
    pub(crate) reply: tokio::sync::oneshot::Sender<Result<(), StoreError>>,
}

/// What a writer writes: a decision (with its audit entry), a message with its decisions,
/// a review (with its audit entry), an audit entry of the service's own, or the forgetting
/// of old idempotency records.
pub(crate) enum Write {
    Decision(Box<DecisionRecord>),
    Message(Box<MessageRows>),
    Review(Box<ReviewRecord>),
    Event(Event),
    /// Idempotency records made before this instant are forgotten, and the events whose
    /// deliveries are done (outside the chain).
    Expire {
        before_unix_ms: i64,
    },
    /// The data keys of the days before `before_day` erased, each with its audit entry
    /// ([`super::PERSONAL_DATA_ERASED`]): what they sealed can no longer be read.
    Erase {
        before_day: i64,
        retention_days: u32,
    },
    /// What became of delivery attempts (outside the chain).
    Deliveries(Vec<DeliveryOutcome>),
    /// Dead deliveries made pending again (an operator's; the caller audits it).
    Redeliver {
        endpoint: String,
        event_id: Option<String>,
    },
    /// A host's overview tally for a span, in place of the last (outside the chain).
    Rollup(super::Rollup),
    /// The rollups of a span length older than an instant forgotten (outside the chain).
    PruneRollups {
        span_ms: i64,
        before_unix_ms: i64,
    },
}

impl Write {
    /// A decision, serialised with its audit detail.
    pub(crate) fn decision(
        new: NewDecision,
        routes: &EventRoutes,
        personal: &PersonalData,
    ) -> Result<Write, StoreError> {
        Ok(Write::Decision(Box::new(DecisionRecord::new(
            new, routes, personal,
        )?)))
    }

    /// A message and its decisions, serialised.
    pub(crate) fn message(
        message: NewMessage,
        routes: &EventRoutes,
        personal: &PersonalData,
    ) -> Result<Write, StoreError> {
        let decisions = message
            .decisions
            .into_iter()
            .map(|new| DecisionRecord::new(new, routes, personal))
            .collect::<Result<Vec<_>, _>>()?;
        let report = personal.seal(
            &context::report(&message.principal, &message.message_id),
            &message.report,
            now_unix_ms(),
        )?;
        Ok(Write::Message(Box::new(MessageRows {
            principal: message.principal,
            message_id: message.message_id,
            fingerprint: message.fingerprint,
            received_at_ms: message.received_at_unix_ms,
            report,
            decisions,
        })))
    }

    /// A review, with its audit detail.
    pub(crate) fn review(
        review: Review,
        routes: &EventRoutes,
        personal: &PersonalData,
    ) -> Result<Write, StoreError> {
        let mut record = ReviewRecord::new(review, routes);
        // The audit detail hashes the note; the row keeps it sealed.
        if let Some(note) = &record.review.note {
            record.review.note = Some(personal.seal(
                &context::note(&record.review.payment_id),
                note,
                now_unix_ms(),
            )?);
        }
        Ok(Write::Review(Box::new(record)))
    }

    /// An audit entry of the service's own, now.
    pub(crate) fn event(action: &str, subject: &str, detail: &serde_json::Value) -> Write {
        Write::Event(Event {
            at_ms: now_unix_ms(),
            action: action.to_owned(),
            subject: subject.to_owned(),
            detail: detail.to_string(),
        })
    }
}

/// A message and its decisions, written together.
pub(crate) struct MessageRows {
    pub(crate) principal: String,
    pub(crate) message_id: String,
    pub(crate) fingerprint: [u8; 32],
    pub(crate) received_at_ms: i64,
    pub(crate) report: String,
    pub(crate) decisions: Vec<DecisionRecord>,
}

/// An audit entry of the service's own, e.g. `rules.loaded`.
pub(crate) struct Event {
    pub(crate) at_ms: i64,
    pub(crate) action: String,
    pub(crate) subject: String,
    pub(crate) detail: String,
}

/// A shadow rule set's decision: outside the audit chain, since it decides nothing.
pub(crate) struct ShadowRow {
    pub(crate) payment_id: String,
    pub(crate) shadow_version: String,
    pub(crate) decided_at_ms: i64,
    pub(crate) decision: String,
}

impl ShadowRow {
    /// The row of `decision`, made by shadow set `shadow_version`.
    pub(crate) fn new(
        decision: &Decision,
        shadow_version: &str,
        personal: &PersonalData,
    ) -> Result<ShadowRow, StoreError> {
        let json = serde_json::to_string(decision)
            .map_err(|e| StoreError::failed(format!("a shadow decision: {e}")))?;
        Ok(ShadowRow {
            payment_id: decision.payment_id.clone(),
            shadow_version: shadow_version.to_owned(),
            decided_at_ms: decision.decided_at_unix_ms,
            decision: personal.seal(
                &context::shadow(&decision.payment_id, shadow_version),
                &json,
                now_unix_ms(),
            )?,
        })
    }
}
