//! The outbox: decision and review events written in the same transaction as what they
//! announce, and their deliveries to each webhook endpoint, until delivered or
//! dead-lettered.
//!
//! A store writes events only once it is told where they go ([`Store::route_events`]):
//! an event is an `outbox` row (its id, type, payment and JSON payload) and one
//! `webhook_deliveries` row per endpoint that receives its type, `pending` until
//! delivered (then removed) or `dead` after its last attempt. What an event says of a
//! decision or a review is written here, once for every backend.
//!
//! [`Store::route_events`]: super::Store::route_events

use serde_json::json;

use super::DecisionRecord;
use crate::model::{Decision, Review, Status, final_status};

/// The event type of a decision.
pub const PAYMENT_DECIDED: &str = "payment.decided";
/// The event type of a held payment's review (by a reviewer, or at the deadline).
pub const PAYMENT_REVIEWED: &str = "payment.reviewed";

/// Which endpoints receive which event types.
#[derive(Clone, Debug, Default)]
pub struct EventRoutes {
    routes: Vec<(String, Vec<String>)>,
}

impl EventRoutes {
    /// Routes: each endpoint's name with the event types it receives.
    pub fn new(routes: Vec<(String, Vec<String>)>) -> EventRoutes {
        EventRoutes { routes }
    }

    /// The endpoints that receive `event_type`.
    fn endpoints_for(&self, event_type: &str) -> Vec<String> {
        self.routes
            .iter()
            .filter(|(_, types)| types.iter().any(|t| t == event_type))
            .map(|(name, _)| name.clone())
            .collect()
    }

    /// Whether no endpoint receives anything.
    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }

    /// The event announcing `decision`, if an endpoint receives it.
    pub(crate) fn decided(
        &self,
        record: &DecisionRecord,
        decision: &Decision,
    ) -> Option<OutboxEvent> {
        let endpoints = self.endpoints_for(PAYMENT_DECIDED);
        if endpoints.is_empty() {
            return None;
        }
        let reasons: Vec<&str> = decision.reasons.iter().map(|r| r.code.as_str()).collect();
        let data = json!({
            "payment_id": record.payment_id,
            "end_to_end_id": record.end_to_end_id,
            "submitted_by": record.submitted_by,
            "amount": record.amount,
            "currency": record.currency,
            "status": record.status,
            "reasons": reasons,
            "route": decision.route.as_ref().map(|r| r.rail.name()),
            "rule_set_version": record.rule_set_version,
            "decided_at_unix_ms": decision.decided_at_unix_ms,
        });
        Some(OutboxEvent::new(
            PAYMENT_DECIDED,
            &record.payment_id,
            decision.decided_at_unix_ms,
            data,
            endpoints,
        ))
    }

    /// The event announcing `review`, if an endpoint receives it.
    pub(crate) fn reviewed(&self, review: &Review) -> Option<OutboxEvent> {
        let endpoints = self.endpoints_for(PAYMENT_REVIEWED);
        if endpoints.is_empty() {
            return None;
        }
        let data = json!({
            "payment_id": review.payment_id,
            "verdict": review.verdict,
            "reason_code": review.reason_code,
            "reviewer": review.reviewer,
            "expired": review.expired,
            "final_status": final_status(Status::PendingReview, Some(review.verdict)),
            "reviewed_at_unix_ms": review.reviewed_at_unix_ms,
        });
        Some(OutboxEvent::new(
            PAYMENT_REVIEWED,
            &review.payment_id,
            review.reviewed_at_unix_ms,
            data,
            endpoints,
        ))
    }
}

/// An event to write with the row it announces.
#[derive(Clone, Debug)]
pub struct OutboxEvent {
    /// `evt_` + the type's last word + the payment id: one per payment and type, so a
    /// receiver can drop a second delivery.
    pub event_id: String,
    /// [`PAYMENT_DECIDED`] or [`PAYMENT_REVIEWED`].
    pub event_type: &'static str,
    /// The payment it is about (deliveries keep each payment's events in order).
    pub payment_id: String,
    /// When what it announces happened, ms since the Unix epoch.
    pub created_at_ms: i64,
    /// The JSON body POSTed.
    pub payload: String,
    /// The endpoints it goes to.
    pub endpoints: Vec<String>,
}

impl OutboxEvent {
    fn new(
        event_type: &'static str,
        payment_id: &str,
        at_ms: i64,
        data: serde_json::Value,
        endpoints: Vec<String>,
    ) -> OutboxEvent {
        let word = event_type.rsplit('.').next().unwrap_or(event_type);
        let event_id = format!("evt_{word}_{payment_id}");
        let payload = json!({
            "id": event_id,
            "type": event_type,
            "created_at_unix_ms": at_ms,
            "data": data,
        })
        .to_string();
        OutboxEvent {
            event_id,
            event_type,
            payment_id: payment_id.to_owned(),
            created_at_ms: at_ms,
            payload,
            endpoints,
        }
    }
}

/// An event due for delivery to one endpoint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Delivery {
    /// The endpoint's name.
    pub endpoint: String,
    /// The event's place in the outbox.
    pub seq: i64,
    /// Attempts made so far.
    pub attempts: u32,
    /// The event's id.
    pub event_id: String,
    /// Its type.
    pub event_type: String,
    /// Its payment.
    pub payment_id: String,
    /// The JSON body.
    pub payload: String,
}

/// What became of an attempt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DeliveryOutcome {
    /// The endpoint took it (2xx): the delivery is done.
    Delivered {
        /// The endpoint.
        endpoint: String,
        /// The event.
        seq: i64,
    },
    /// It failed: tried again at `next_attempt_ms`, or dead-lettered when `dead`.
    Failed {
        /// The endpoint.
        endpoint: String,
        /// The event.
        seq: i64,
        /// Attempts made, this one included.
        attempts: u32,
        /// When this attempt was made, ms since the Unix epoch.
        at_ms: i64,
        /// When to try again, ms since the Unix epoch.
        next_attempt_ms: i64,
        /// Whether that was the last attempt.
        dead: bool,
        /// Why it failed (a status, a timeout, a refused connection), bounded.
        error: String,
    },
}

/// A delivery given up on after its last attempt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeadLetter {
    /// The endpoint.
    pub endpoint: String,
    /// The event's place in the outbox.
    pub seq: i64,
    /// The event's id.
    pub event_id: String,
    /// Its type.
    pub event_type: String,
    /// Its payment.
    pub payment_id: String,
    /// Attempts made.
    pub attempts: u32,
    /// When the last was made, ms since the Unix epoch.
    pub last_attempt_ms: Option<i64>,
    /// Why the last failed.
    pub last_error: Option<String>,
}

/// How many deliveries wait, and how many are dead, for one endpoint.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EndpointBacklog {
    /// The endpoint.
    pub endpoint: String,
    /// Deliveries still to make (some perhaps after a failure).
    pub pending: u64,
    /// Deliveries given up on.
    pub dead: u64,
}

/// The bound on a stored delivery error, characters.
pub const DELIVERY_ERROR_CHARS_MAX: usize = 300;
