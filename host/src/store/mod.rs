//! The store: where decisions become durable, and what the service reads back.
//!
//! The service knows only the [`Store`] trait and the plain types here. A backend keeps,
//! in one database: payments and their decisions, idempotency records, ISO 20022
//! messages' status reports, the reviews of held payments, the hash-chained audit log,
//! and shadow decisions. Two
//! backends implement it: [`sqlite`], embedded (the default: one process, one file), and
//! [`postgres`], one database for several hosts. [`conformance`] is the one
//! specification of the behaviour the service relies on: every backend's tests run all
//! of it.
//!
//! What every backend promises, whatever its engine:
//!
//! - **Durable before it answers.** [`Store::commit`] returns once the payment, its
//!   decision, its idempotency record and its audit entry are durable together: all or
//!   none.
//! - **Decided once.** A second commit under an idempotency key (or message id) already
//!   recorded fails with [`StoreError::KeyTaken`] and records nothing. A request holds
//!   its key while it decides ([`Store::claim`]); a backend shared by several hosts keeps
//!   that claim in the database with a lease and a fencing token, and refuses the commit
//!   of a request whose claim was taken over.
//! - **One chain, in commit order.** Audit entries are numbered 1, 2, 3… without gaps in
//!   the order their transactions commit, each naming the previous entry's hash and
//!   authenticated with the audit key ([`audit`], [`audit_keys`]). The head of the chain
//!   is the database's to serialise: a backend for several hosts must not trust a head
//!   held in one process's memory.
//! - **Retry or not.** [`StoreError::Unavailable`] says a retry may work (the database
//!   is busy or unreachable); [`StoreError::Failed`] that it will not.

pub mod audit;
pub mod audit_keys;
#[cfg(test)]
pub(crate) mod conformance;
pub mod outbox;
pub mod personal;
pub mod postgres;
pub(crate) mod queue;
pub mod sqlite;

use std::future::Future;
use std::pin::Pin;

use crate::model::{Decision, Payment, Reason, Review, Status};
use audit::AuditEntry;
use audit_keys::{AuditKeys, CheckpointLog};
use outbox::{DeadLetter, Delivery, DeliveryOutcome, EndpointBacklog, EventRoutes, OutboxEvent};
use personal::{PersonalData, Sealer, context};

pub use postgres::{PgSettings, PgStore};
pub use sqlite::SqliteStore;

/// The most rows a listing returns.
pub const LIST_LIMIT_MAX: u32 = 500;

/// The audit action of a decision.
pub const DECIDED: &str = "payment.decided";
/// The audit action of a held payment's review by a person.
pub const REVIEWED: &str = "payment.reviewed";
/// The audit action of a held payment rejected by payrules because nobody reviewed it
/// before the deadline.
pub const REVIEW_EXPIRED: &str = "payment.review_expired";
/// The audit action of a data key erased at the end of its retention (crypto-shredding:
/// the personal data it sealed can no longer be read); its subject is the key's id.
pub const PERSONAL_DATA_ERASED: &str = "personal_data.erased";
/// The actor of the service's own audit entries.
pub const SERVICE_ACTOR: &str = "payrules";

/// What a store's asynchronous operations return.
pub type StoreFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'a>>;

/// A durable store of decisions: what the service needs of a database.
///
/// Asynchronous methods are those on a request's path. The blocking ones (`for_each_*`,
/// `accepted_since`) serve start-up, reports and the command line: call them from a
/// thread that may block.
pub trait Store: Send + Sync {
    /// The keyed hash (HMAC-SHA256 with this store's own secret) of a canonical payload.
    /// Idempotency records keep this, never the payload itself.
    fn fingerprint(&self, canonical_payload: &[u8]) -> [u8; 32];

    /// Holds idempotency key `key` of `principal` for a request about to decide, for at
    /// most `lease_ms` — or, if the key was used, its record ([`Claim::Recorded`]: the
    /// request is a retry). [`Claim::Busy`] while another request (on any host sharing
    /// the store) holds it. The commit under the key ends the claim; a request that ends
    /// without one [`releases`](Store::release) it.
    fn claim<'a>(
        &'a self,
        principal: &'a str,
        key: &'a str,
        lease_ms: u64,
    ) -> StoreFuture<'a, Claim>;

    /// Lets go of a claim (its token) whose request ends without a commit.
    fn release<'a>(&'a self, principal: &'a str, key: &'a str, token: i64) -> StoreFuture<'a, ()>;

    /// Records a decision, its payment, its idempotency record and its audit entry in one
    /// durable transaction. [`StoreError::KeyTaken`] if the key was used already.
    fn commit(&self, decision: NewDecision) -> StoreFuture<'_, ()>;

    /// Records a message's decisions, its status report and their audit entries in one
    /// durable transaction. [`StoreError::KeyTaken`] if the message id was used already.
    fn commit_message(&self, message: NewMessage) -> StoreFuture<'_, ()>;

    /// Appends an entry of the service's own (`rules.loaded`, ...) to the audit log, its
    /// actor [`SERVICE_ACTOR`]; returns when it is durable.
    fn audit_event<'a>(
        &'a self,
        action: &'a str,
        subject: &'a str,
        detail: &'a serde_json::Value,
    ) -> StoreFuture<'a, ()>;

    /// What an idempotency key of `principal` was used for, if it was.
    fn idempotency<'a>(
        &'a self,
        principal: &'a str,
        key: &'a str,
    ) -> StoreFuture<'a, Option<IdempotencyRecord>>;

    /// A message `principal` sent before under `message_id`, if any.
    fn message<'a>(
        &'a self,
        principal: &'a str,
        message_id: &'a str,
    ) -> StoreFuture<'a, Option<StoredMessage>>;

    /// A stored payment, its decision, and its review if it has one.
    fn payment<'a>(&'a self, payment_id: &'a str) -> StoreFuture<'a, Option<StoredPayment>>;

    /// Records the review of a held payment and its audit entry ([`REVIEWED`], or
    /// [`REVIEW_EXPIRED`] for one payrules made at the deadline) in one durable
    /// transaction. A payment has one review: [`StoreError::AlreadyReviewed`] if it has
    /// one (whichever host recorded it), [`StoreError::NotHeld`] if it is missing or was
    /// not held for review.
    fn review(&self, review: Review) -> StoreFuture<'_, ()>;

    /// Held payments: those open (not reviewed yet), oldest first — the review queue — or
    /// those reviewed, the most recently reviewed first.
    fn reviews(&self, query: ReviewQuery) -> StoreFuture<'_, ReviewPage>;

    /// The reviews of these payments (of those that have one), in no particular order.
    fn reviews_of<'a>(&'a self, payment_ids: &'a [String]) -> StoreFuture<'a, Vec<Review>>;

    /// Payments, newest first.
    fn list(&self, query: ListQuery) -> StoreFuture<'_, Page>;

    /// Audit entries after `after_seq`, oldest first, at most `limit`
    /// (1..=[`LIST_LIMIT_MAX`]).
    fn audit_entries(&self, after_seq: i64, limit: u32) -> StoreFuture<'_, Vec<AuditEntry>>;

    /// The newest audit entries with one of these actions, newest first.
    fn audit_entries_of<'a>(
        &'a self,
        actions: &'a [&'a str],
        limit: u32,
    ) -> StoreFuture<'a, Vec<AuditEntry>>;

    /// Forgets the idempotency records made before `before_unix_ms` (a retry with such a
    /// key is then a new payment, as the IETF draft has it); their payments, decisions and
    /// audit entries stay. A message's MsgId stays claimed: its row is the status report.
    fn expire_idempotency(&self, before_unix_ms: i64) -> StoreFuture<'_, ()>;

    /// Erases the data keys of the UTC days before `before_day` (days since 1970-01-01),
    /// each with its audit entry ([`PERSONAL_DATA_ERASED`]) in the same transaction: the
    /// personal data they sealed can no longer be read by anyone, while the rows' clear
    /// columns and the audit chain (which keeps hashes) stay. `retention_days` is recorded
    /// in each entry.
    fn erase_personal_data(&self, before_day: i64, retention_days: u32) -> StoreFuture<'_, ()>;

    /// Queues a shadow rule set's decision (outside the audit chain: it decides nothing).
    /// May wait while the backend's queue is full; does not wait for the write.
    fn record_shadow(&self, decision: &Decision, shadow_version: &str) -> Result<(), StoreError>;

    /// Visits the decisions the shadow set `shadow_version` made, in order, each with the
    /// live decision of the same payment. Blocking.
    fn for_each_shadowed(
        &self,
        shadow_version: &str,
        visit: &mut dyn FnMut(Decision, Decision),
    ) -> Result<(), StoreError>;

    /// The decision the shadow set `shadow_version` made for payment `payment_id`, if it
    /// recorded one (and its personal data is not erased).
    fn shadowed<'a>(
        &'a self,
        payment_id: &'a str,
        shadow_version: &'a str,
    ) -> StoreFuture<'a, Option<Decision>>;

    /// Accepted payments received at or after `since_unix_ms`, oldest first, with the
    /// instant they were decided, and the held payments approved at or after it, with the
    /// instant of their approval: what velocity figures are rebuilt from; read in one
    /// snapshot with the chain's head, so that following [`Store::accepted_after`] that
    /// head misses none and counts none twice. Blocking.
    fn accepted_since(&self, since_unix_ms: i64) -> Result<Accepted, StoreError>;

    /// Whether other hosts write this store too: then each host follows their decisions
    /// ([`Store::accepted_after`]) into its velocity figures.
    fn shared(&self) -> bool;

    /// The accepted payments whose decisions' audit entries come after entry `after_seq`,
    /// and the held payments whose approvals' entries do (at the instant of approval), in
    /// chain order, reading at most `limit` entries: what a host follows of the decisions
    /// and reviews other hosts commit. The payments `counted` says yes to (those this host
    /// counted itself) are passed without reading them and listed in
    /// [`Accepted::counted`].
    fn accepted_after<'a>(
        &'a self,
        after_seq: i64,
        limit: u32,
        counted: &'a (dyn Fn(&str) -> bool + Sync),
    ) -> StoreFuture<'a, Accepted>;

    /// Visits every payment received in `since_unix_ms..until_unix_ms`, in the order
    /// decided, with its stored decision: what a backtest replays. Blocking.
    fn for_each_decided(
        &self,
        since_unix_ms: i64,
        until_unix_ms: i64,
        visit: &mut dyn FnMut(Payment, Decision),
    ) -> Result<(), StoreError>;

    /// Visits the audit log in order, each entry with the row it records: the payment a
    /// [`DECIDED`] entry decided, the review a [`REVIEWED`] or [`REVIEW_EXPIRED`] entry
    /// made (when stored), until `visit` says `false`: what `payrules audit verify`
    /// reads. Blocking.
    fn for_each_audit_entry(
        &self,
        visit: &mut dyn FnMut(AuditEntry, Option<EntryRow>) -> bool,
    ) -> Result<(), StoreError>;

    /// The first stored payment (in decision order) with no [`DECIDED`] audit entry.
    /// Blocking.
    fn first_payment_without_entry(&self) -> Result<Option<String>, StoreError>;

    /// The payment of the first stored review (in review order) with no [`REVIEWED`] or
    /// [`REVIEW_EXPIRED`] audit entry. Blocking.
    fn first_review_without_entry(&self) -> Result<Option<String>, StoreError>;

    /// Records this host's heartbeat (who it is, where, what it runs), in place of its
    /// last one; forgets hosts silent for a day.
    fn heartbeat<'a>(&'a self, host: &'a HostBeat) -> StoreFuture<'a, ()>;

    /// The hosts that beat, the most recent first, with the age of each one's last beat
    /// (on the database's clock).
    fn hosts(&self) -> StoreFuture<'_, Vec<HostRow>>;

    /// A host stopping leaves the list.
    fn leave<'a>(&'a self, host_id: &'a str) -> StoreFuture<'a, ()>;

    /// From now on, writes an event with each decision and review, in its transaction,
    /// for each endpoint that receives its type ([`outbox`]); none before this is called.
    fn route_events(&self, routes: EventRoutes);

    /// Deliveries to these endpoints due at `now_unix_ms`, the longest due first, at most
    /// `limit`: never an event of a payment whose earlier event is still pending for the
    /// same endpoint.
    fn due_deliveries<'a>(
        &'a self,
        endpoints: &'a [String],
        now_unix_ms: i64,
        limit: u32,
    ) -> StoreFuture<'a, Vec<Delivery>>;

    /// Records what became of delivery attempts.
    fn record_deliveries(&self, outcomes: Vec<DeliveryOutcome>) -> StoreFuture<'_, ()>;

    /// Dead-lettered deliveries after `after_seq` (of `endpoint`, if given), oldest first.
    fn dead_letters<'a>(
        &'a self,
        endpoint: Option<&'a str>,
        after_seq: i64,
        limit: u32,
    ) -> StoreFuture<'a, Vec<DeadLetter>>;

    /// Pending and dead deliveries per endpoint.
    fn delivery_backlog(&self) -> StoreFuture<'_, Vec<EndpointBacklog>>;

    /// Makes `endpoint`'s dead deliveries (one event's, if `event_id` is given) pending
    /// again, due now, their attempts counted from zero.
    fn redeliver<'a>(&'a self, endpoint: &'a str, event_id: Option<&'a str>)
    -> StoreFuture<'a, ()>;

    /// Whether `holder` holds (taking or renewing it) the lease to relay events, for
    /// `lease_ms`: one host of those sharing a store delivers.
    fn relay_lease<'a>(&'a self, holder: &'a str, lease_ms: u64) -> StoreFuture<'a, bool>;

    /// Records a host's overview tally for a span ([`Rollup`]), in place of the one it
    /// recorded for the same span (outside the chain: figures, not a record of decisions).
    fn record_rollup(&self, rollup: Rollup) -> StoreFuture<'_, ()>;

    /// The rollups of spans of `span_ms` starting in `[from_unix_ms, to_unix_ms)`, of one
    /// host or of every host, by start then host.
    fn rollups<'a>(
        &'a self,
        span_ms: i64,
        from_unix_ms: i64,
        to_unix_ms: i64,
        host_id: Option<&'a str>,
    ) -> StoreFuture<'a, Vec<Rollup>>;

    /// Forgets the rollups of spans of `span_ms` that started before `before_unix_ms`.
    fn prune_rollups(&self, span_ms: i64, before_unix_ms: i64) -> StoreFuture<'_, ()>;

    /// Stops taking writes, makes those queued durable, and waits until they are.
    fn close(&self);

    /// Where it is, for logs and messages (never a credential).
    fn location(&self) -> String;
}

/// A host's heartbeat: who it is and what it runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostBeat {
    /// `hostname:pid:random`, unique per process.
    pub id: String,
    /// The address it listens on.
    pub address: String,
    /// The payrules version it runs.
    pub version: String,
    /// Its live rule set's version.
    pub rule_set_version: String,
    /// The canary it runs, if any: its version and its share of traffic, percent.
    pub canary: Option<(String, u8)>,
    /// When it started, ms since the Unix epoch.
    pub started_at_unix_ms: i64,
}

/// One host's overview tally ([`crate::telemetry::overview::Tally`], JSON) for a span of
/// time: a minute or an hour.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rollup {
    /// The host.
    pub host_id: String,
    /// The span's length, ms.
    pub span_ms: i64,
    /// When it starts, ms since the Unix epoch.
    pub start_unix_ms: i64,
    /// The tally, JSON.
    pub tally: String,
}

/// A host as the store last heard of it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostRow {
    /// What it said.
    pub beat: HostBeat,
    /// When it last beat, ms since the Unix epoch.
    pub heartbeat_unix_ms: i64,
    /// How long ago that was, ms.
    pub heartbeat_age_ms: i64,
}

/// Accepted payments read from the store, and how far along the chain the read went.
#[derive(Debug, Default)]
pub struct Accepted {
    /// Each payment's id, the payment, and the instant it was decided (ms since the Unix
    /// epoch), in decision order.
    pub payments: Vec<(String, Payment, i64)>,
    /// The ids of the accepted payments passed unread, as the caller had counted them
    /// ([`Store::accepted_after`]; always empty from [`Store::accepted_since`]).
    pub counted: Vec<String>,
    /// The last audit entry the read covered: continue after it.
    pub through_seq: i64,
}

/// A decided payment's row as stored, every field as the text the backend keeps: what
/// `verify` compares with its audit entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DecidedRow {
    /// The payment, canonical JSON.
    pub payment: String,
    /// The decision, JSON.
    pub decision: String,
    /// The API key's name.
    pub submitted_by: String,
    /// The status column.
    pub status: String,
    /// The rule set column.
    pub rule_set_version: String,
    /// The amount column.
    pub amount: String,
    /// The currency column.
    pub currency: String,
    /// The end-to-end id column.
    pub end_to_end_id: String,
    /// Why its payment or decision could not be opened, if it could not: then `payment`
    /// and `decision` are the sealed values, and only the clear columns can be checked.
    pub unopened: Option<Unopened>,
}

/// Why a sealed value of a row could not be opened for the audit verifier.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Unopened {
    /// Its data key was erased at the end of its retention (this id).
    Erased(String),
    /// It does not open with its key: altered, moved from another row, or its key
    /// removed behind the service's back (why, in a sentence).
    Altered(String),
}

/// The row an audit entry records, as stored: what `verify` compares with the entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EntryRow {
    /// A decided payment's row.
    Decided(DecidedRow),
    /// A review's row.
    Reviewed(ReviewedRow),
}

/// A review as stored, with the decision (as stored) of the payment it reviewed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReviewedRow {
    /// The review.
    pub review: Review,
    /// The reviewed payment's decision, JSON as stored.
    pub decision: String,
    /// Why the review's note or the decision could not be opened, if one could not: then
    /// those cannot be checked.
    pub unopened: Option<Unopened>,
}

/// A review ready for a backend to write, with its audit entry's action and detail.
pub struct ReviewRecord {
    /// The review.
    pub review: Review,
    /// [`REVIEWED`] or [`REVIEW_EXPIRED`].
    pub action: &'static str,
    /// Its audit entry's detail: verdict, reason code, the sha256 of the decision reviewed
    /// and of the note (the note itself stays out of the log).
    pub audit_detail: String,
    /// The event announcing it, if an endpoint receives it.
    pub event: Option<OutboxEvent>,
}

impl ReviewRecord {
    /// A review with its audit detail and its event.
    pub fn new(review: Review, routes: &EventRoutes) -> ReviewRecord {
        let audit_detail = review_detail(&review).to_string();
        ReviewRecord {
            action: if review.expired {
                REVIEW_EXPIRED
            } else {
                REVIEWED
            },
            event: routes.reviewed(&review),
            review,
            audit_detail,
        }
    }
}

/// The audit detail of a data key erased at the end of its retention.
pub fn erasure_detail(data_key: &str, day: i64, retention_days: u32) -> String {
    serde_json::json!({
        "data_key": data_key,
        "day": personal::data_key_id(day).trim_start_matches('d'),
        "retention_days": retention_days,
    })
    .to_string()
}

/// What a review's audit entry records of it.
pub fn review_detail(review: &Review) -> serde_json::Value {
    serde_json::json!({
        "verdict": review.verdict.name(),
        "reason_code": review.reason_code,
        "decision_sha256": review.decision_sha256,
        "note_sha256": review.note.as_deref().map(audit::sha256_hex),
    })
}

/// A decision ready for a backend to write: serialised, with its audit entry's detail
/// (what the entry records of it), made by the caller so a writer does only I/O.
pub struct DecisionRecord {
    /// The host's id for the payment.
    pub payment_id: String,
    /// When the request arrived, ms since the Unix epoch.
    pub received_at_ms: i64,
    /// The API key's name.
    pub submitted_by: String,
    /// The payment's end-to-end id (a listed column).
    pub end_to_end_id: String,
    /// Its amount, a decimal string (a listed column).
    pub amount: String,
    /// Its currency (a listed column).
    pub currency: String,
    /// The decision's status name (a listed column).
    pub status: String,
    /// The rule set that decided.
    pub rule_set_version: String,
    /// The payment, canonical JSON, sealed ([`personal`]).
    pub payment: String,
    /// The decision, JSON, sealed.
    pub decision: String,
    /// The rules that fired, in clear for search ([`rules_fired`]).
    pub rules_fired: String,
    /// The idempotency key it was submitted under.
    pub idempotency: IdempotencyClaim,
    /// Its audit entry's detail: status, rule set, key, and the sha256 of payment and decision.
    pub audit_detail: String,
    /// The event announcing it, if an endpoint receives it.
    pub event: Option<OutboxEvent>,
}

impl DecisionRecord {
    /// Serialises a decision and computes its audit detail and its event.
    pub fn new(
        new: NewDecision,
        routes: &EventRoutes,
        personal: &PersonalData,
    ) -> Result<DecisionRecord, StoreError> {
        let payment = serde_json::to_string(&new.payment)
            .map_err(|e| StoreError::failed(format!("cannot serialise a payment: {e}")))?;
        let decision = serde_json::to_string(&new.decision)
            .map_err(|e| StoreError::failed(format!("cannot serialise a decision: {e}")))?;
        let status = status_name(new.decision.status);
        let audit_detail = serde_json::json!({
            "status": status,
            "rule_set_version": new.decision.rule_set_version,
            "idempotency_key": new.idempotency.key,
            "payment_sha256": audit::sha256_hex(&payment),
            "decision_sha256": audit::sha256_hex(&decision),
        })
        .to_string();
        // The audit entry hashes what was decided; the row keeps it sealed.
        let now = now_unix_ms();
        let payment = personal.seal(&context::payment(&new.payment_id), &payment, now)?;
        let decision = personal.seal(&context::decision(&new.payment_id), &decision, now)?;
        let mut record = DecisionRecord {
            rules_fired: rules_fired(&new.decision),
            end_to_end_id: new.payment.end_to_end_id.to_string(),
            amount: new.payment.amount.value().to_string(),
            currency: new.payment.currency.code().to_owned(),
            status: status.to_owned(),
            rule_set_version: new.decision.rule_set_version.clone(),
            payment_id: new.payment_id,
            received_at_ms: new.received_at_unix_ms,
            submitted_by: new.submitted_by,
            payment,
            decision,
            idempotency: new.idempotency,
            audit_detail,
            event: None,
        };
        record.event = routes.decided(&record, &new.decision);
        Ok(record)
    }
}

/// How the writer authenticates the audit log: the keys, and the checkpoint file it
/// appends the chain's head to.
pub struct AuditSealing {
    /// The audit keys; the first signs.
    pub keys: AuditKeys,
    /// The checkpoint file.
    pub checkpoints: CheckpointLog,
    /// What seals the personal data in the rows (the data keys, under the master keys).
    pub personal: Sealer,
}

/// The names of the rules that fired in a decision, each between spaces (` sanctions
/// limits `): the clear column `GET /v1/payments?rule=` searches, the decision itself
/// being sealed.
pub fn rules_fired(decision: &Decision) -> String {
    let mut fired = String::from(" ");
    for run in decision.rules.iter().filter(|run| run.outcome.fired()) {
        fired.push_str(&run.name);
        fired.push(' ');
    }
    fired
}

/// The name a status is stored and listed under.
pub fn status_name(status: Status) -> &'static str {
    match status {
        Status::Accepted => "accepted",
        Status::Rejected => "rejected",
        Status::PendingReview => "pending_review",
    }
}

/// The status stored under `text`.
pub fn parse_status(text: &str) -> Option<Status> {
    match text {
        "accepted" => Some(Status::Accepted),
        "rejected" => Some(Status::Rejected),
        "pending_review" => Some(Status::PendingReview),
        _ => None,
    }
}

/// Now, in ms since the Unix epoch.
pub fn now_unix_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// The keyed hash (HMAC-SHA256) of a canonical payload under a store's own secret: what
/// [`Store::fingerprint`] gives.
pub(crate) fn keyed_fingerprint(secret: &[u8; 32], canonical_payload: &[u8]) -> [u8; 32] {
    use hmac::Mac;
    let mut mac = <hmac::Hmac<sha2::Sha256> as Mac>::new_from_slice(secret)
        .unwrap_or_else(|e| unreachable!("HMAC takes a key of any length: {e}"));
    mac.update(canonical_payload);
    mac.finalize().into_bytes().into()
}

/// A stored payment read back (opened, if sealed).
pub(crate) fn stored_payment(
    personal: &PersonalData,
    payment_id: &str,
    stored: &str,
) -> Result<Payment, StoreError> {
    let json = personal.open(&context::payment(payment_id), stored)?;
    Payment::from_json(&json).map_err(|e| StoreError::failed(format!("a stored payment: {e}")))
}

/// A payment's decision as it was stored, opened: the text its audit entry hashes.
pub(crate) fn opened_decision(
    personal: &PersonalData,
    payment_id: &str,
    stored: &str,
) -> Result<String, StoreError> {
    personal.open(&context::decision(payment_id), stored)
}

/// A stored decision read back (opened, if sealed).
pub(crate) fn stored_decision(
    personal: &PersonalData,
    payment_id: &str,
    stored: &str,
) -> Result<Decision, StoreError> {
    decision_of(&opened_decision(personal, payment_id, stored)?)
}

/// A decision's JSON read.
pub(crate) fn decision_of(json: &str) -> Result<Decision, StoreError> {
    serde_json::from_str(json).map_err(|e| StoreError::failed(format!("a stored decision: {e}")))
}

/// A decided row as the audit verifier reads it: its payment and decision opened.
pub(crate) fn opened_row(
    personal: &PersonalData,
    payment_id: &str,
    row: DecidedRow,
) -> Result<DecidedRow, StoreError> {
    let payment = personal.open(&context::payment(payment_id), &row.payment);
    let decision = opened_decision(personal, payment_id, &row.decision);
    match (payment, decision) {
        (Ok(payment), Ok(decision)) => Ok(DecidedRow {
            payment,
            decision,
            ..row
        }),
        (Err(error), _) | (_, Err(error)) => Ok(DecidedRow {
            unopened: Some(unopened(error)?),
            ..row
        }),
    }
}

/// What a read gave, or `None` for a row whose personal data was erased (the readers
/// that rebuild figures or replay history pass over such rows).
pub(crate) fn unless_erased<T>(read: Result<T, StoreError>) -> Result<Option<T>, StoreError> {
    match read {
        Ok(value) => Ok(Some(value)),
        Err(StoreError::Erased { .. }) => Ok(None),
        Err(error) => Err(error),
    }
}

/// A review as the audit verifier reads it (its note as stored): with its note and the
/// decision it reviewed opened, or why one could not be.
pub(crate) fn opened_review_row(
    personal: &PersonalData,
    mut review: Review,
    stored_decision: &str,
) -> Result<ReviewedRow, StoreError> {
    let note = review
        .note
        .as_deref()
        .map(|note| personal.open(&context::note(&review.payment_id), note));
    let decision = opened_decision(personal, &review.payment_id, stored_decision);
    match (note.transpose(), decision) {
        (Ok(note), Ok(decision)) => {
            review.note = note;
            Ok(ReviewedRow {
                review,
                decision,
                unopened: None,
            })
        }
        (Err(error), _) | (_, Err(error)) => Ok(ReviewedRow {
            review,
            decision: String::new(),
            unopened: Some(unopened(error)?),
        }),
    }
}

/// Why a sealed value did not open, for the verifier; the database being unreachable is
/// not about the row, and stays an error.
fn unopened(error: StoreError) -> Result<Unopened, StoreError> {
    match error {
        StoreError::Erased { data_key } => Ok(Unopened::Erased(data_key)),
        StoreError::Failed { source } => Ok(Unopened::Altered(source.to_string())),
        other => Err(other),
    }
}

/// A held payment as the review queue shows it: its summary, its decision's reasons and
/// digest, its review. One past its retention keeps its summary and review; its reasons
/// went with its key (the digest is then the one its review recorded).
pub(crate) fn review_item(
    personal: &PersonalData,
    summary: PaymentSummary,
    stored_decision: &str,
    review: Option<Review>,
) -> Result<ReviewItem, StoreError> {
    let opened = unless_erased(opened_decision(
        personal,
        &summary.payment_id,
        stored_decision,
    ))?;
    let (reasons, decision_sha256) = match opened {
        Some(decision) => (
            decision_of(&decision)?.reasons,
            audit::sha256_hex(&decision),
        ),
        None => (
            Vec::new(),
            review
                .as_ref()
                .map(|r| r.decision_sha256.clone())
                .unwrap_or_default(),
        ),
    };
    Ok(ReviewItem {
        summary,
        reasons,
        decision_sha256,
        review,
    })
}

/// A shadow set's stored decision read back (opened, if sealed).
pub(crate) fn stored_shadow_decision(
    personal: &PersonalData,
    payment_id: &str,
    shadow_version: &str,
    stored: &str,
) -> Result<Decision, StoreError> {
    decision_of(&personal.open(&context::shadow(payment_id, shadow_version), stored)?)
}

/// An error of a backend, kept for the logs.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Why the store could not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Another request already recorded a decision under this idempotency key (or
    /// message id).
    #[error("the idempotency key is already used")]
    KeyTaken,
    /// The database cannot be reached or is busy right now: the same request may work
    /// if retried (the service answers 503 with `Retry-After`).
    #[error("the store is unavailable: {reason}")]
    Unavailable {
        /// Why, for the logs.
        reason: String,
    },
    /// The database failed (disk, corruption, a constraint, data it cannot read back):
    /// retrying will not help; detail for the logs.
    #[error("the store failed: {source}")]
    Failed {
        /// What failed.
        source: BoxError,
    },
    /// The payment has a review already: a payment is reviewed once.
    #[error("the payment has been reviewed already")]
    AlreadyReviewed,
    /// The payment to review is not stored, or was not held for review.
    #[error("the payment is not held for review")]
    NotHeld,
    /// What was asked for was personal data erased at the end of its retention (its day's
    /// data key is gone).
    #[error("its personal data was erased at the end of its retention (data key {data_key})")]
    Erased {
        /// The erased data key, `d` + its day.
        data_key: String,
    },
    /// The store has stopped taking writes (the service is shutting down).
    #[error("the store is closed")]
    Closed,
}

impl StoreError {
    /// A failure with this cause.
    pub fn failed(source: impl Into<BoxError>) -> StoreError {
        StoreError::Failed {
            source: source.into(),
        }
    }
}

/// Observations of the writer, for metrics.
pub trait CommitObserver: Send + Sync + 'static {
    /// A transaction of `decisions` decisions committed (or failed) in `seconds`.
    fn committed(&self, decisions: usize, seconds: f64);
}

impl CommitObserver for () {
    fn committed(&self, _: usize, _: f64) {}
}

/// An idempotency key under which a decision is to be recorded.
#[derive(Clone, Debug)]
pub struct IdempotencyClaim {
    /// The API key's name: keys are scoped per API key.
    pub principal: String,
    /// The client's key.
    pub key: String,
    /// The keyed hash of the canonical payload (see [`Store::fingerprint`]).
    pub fingerprint: [u8; 32],
    /// The fencing token of the claim held on the key ([`Claim::Held`]), if the store
    /// gave one: the commit is refused ([`StoreError::KeyTaken`]) unless that claim still
    /// holds the key.
    pub token: Option<i64>,
}

/// The outcome of [`Store::claim`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Claim {
    /// The key is held for this request; a store shared by several hosts gives the
    /// fencing token its commit must carry (an embedded store, used by one process, whose
    /// in-process hold is the claim, gives none).
    Held {
        /// The fencing token.
        token: Option<i64>,
    },
    /// Another request holds the key right now.
    Busy,
    /// The key was used: what for (no claim is taken).
    Recorded(IdempotencyRecord),
}

/// A decided payment to record.
#[derive(Clone, Debug)]
pub struct NewDecision {
    /// The host's id for the payment.
    pub payment_id: String,
    /// When the request arrived, ms since the Unix epoch.
    pub received_at_unix_ms: i64,
    /// The API key's name.
    pub submitted_by: String,
    /// The payment.
    pub payment: Payment,
    /// Its decision.
    pub decision: Decision,
    /// The idempotency key it was submitted under.
    pub idempotency: IdempotencyClaim,
}

/// An ISO 20022 message decided transaction by transaction, to record as a whole: its
/// decided payments, and the status report that answers it.
#[derive(Clone, Debug)]
pub struct NewMessage {
    /// The API key's name: message ids are scoped per API key, like idempotency keys.
    pub principal: String,
    /// The message's MsgId.
    pub message_id: String,
    /// The keyed hash of the message's canonical payments.
    pub fingerprint: [u8; 32],
    /// When it arrived, ms since the Unix epoch.
    pub received_at_unix_ms: i64,
    /// Its decided payments (transactions refused before any rule saw them have none).
    pub decisions: Vec<NewDecision>,
    /// The status report, as JSON (so a retry gets the very same report).
    pub report: String,
}

/// A message recorded earlier.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredMessage {
    /// The keyed hash of the payments it carried.
    pub fingerprint: [u8; 32],
    /// Its status report, as JSON.
    pub report: String,
}

/// What an idempotency key was used for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdempotencyRecord {
    /// The keyed hash of the payload first sent with it.
    pub fingerprint: [u8; 32],
    /// The payment it created.
    pub payment_id: String,
}

/// A stored payment with its decision, and its review if it was held and reviewed.
#[derive(Clone, Debug)]
pub struct StoredPayment {
    /// The host's id.
    pub payment_id: String,
    /// When it arrived, ms since the Unix epoch.
    pub received_at_unix_ms: i64,
    /// The API key that submitted it.
    pub submitted_by: String,
    /// The payment as validated.
    pub payment: Payment,
    /// Its decision.
    pub decision: Decision,
    /// The sha256 (hex) of the decision as stored: what a review of it records.
    pub decision_sha256: String,
    /// Its review.
    pub review: Option<Review>,
}

/// One row of a listing.
#[derive(Clone, Debug, serde::Serialize, utoipa::ToSchema)]
pub struct PaymentSummary {
    /// The host's id.
    pub payment_id: String,
    /// When it arrived, ms since the Unix epoch.
    pub received_at_unix_ms: i64,
    /// The API key that submitted it.
    pub submitted_by: String,
    /// Its end-to-end id.
    pub end_to_end_id: String,
    /// Its amount, a decimal string.
    pub amount: String,
    /// Its currency.
    pub currency: String,
    /// The decision's status.
    pub status: Status,
    /// Its final status: the decision's, or for a held payment that was reviewed, the
    /// review's (`accepted` when approved, `rejected` when rejected).
    pub final_status: Status,
    /// The rule set that decided.
    pub rule_set_version: String,
}

/// Which payments to list, newest first.
#[derive(Clone, Debug, Default)]
pub struct ListQuery {
    /// Only with this status.
    pub status: Option<Status>,
    /// Only received at or after this instant, ms since the Unix epoch.
    pub since_unix_ms: Option<i64>,
    /// Only received before this instant, ms since the Unix epoch.
    pub until_unix_ms: Option<i64>,
    /// Only submitted by this API key.
    pub submitted_by: Option<String>,
    /// Only with this end-to-end id.
    pub end_to_end_id: Option<String>,
    /// Only decided by a rule set whose version starts with these lowercase hex digits.
    pub rule_set_version: Option<String>,
    /// Only those this rule fired in: it rejected, held, scored above zero, routed,
    /// declined or failed (anything but a pass or a zero score).
    pub rule_fired: Option<String>,
    /// Continue after this cursor (from a previous page).
    pub cursor: Option<i64>,
    /// At most this many (1..=[`LIST_LIMIT_MAX`]).
    pub limit: u32,
}

/// A page of a listing.
#[derive(Clone, Debug)]
pub struct Page {
    /// The payments, newest first.
    pub payments: Vec<PaymentSummary>,
    /// The cursor for the next page, if there may be one.
    pub next_cursor: Option<i64>,
}

/// Which held payments to list.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReviewState {
    /// Not reviewed yet: the queue, oldest first.
    Open,
    /// Reviewed (or expired), the most recently reviewed first.
    Resolved,
}

/// Which held payments to list.
#[derive(Clone, Debug)]
pub struct ReviewQuery {
    /// Open or resolved.
    pub state: ReviewState,
    /// Only submitted by this API key.
    pub submitted_by: Option<String>,
    /// Only received at or after this instant, ms since the Unix epoch.
    pub since_unix_ms: Option<i64>,
    /// Only received before this instant, ms since the Unix epoch (what the deadline
    /// looks for).
    pub received_before_unix_ms: Option<i64>,
    /// Continue after this cursor (from a previous page).
    pub cursor: Option<i64>,
    /// At most this many (1..=[`LIST_LIMIT_MAX`]).
    pub limit: u32,
}

/// A held payment in a review listing.
#[derive(Clone, Debug)]
pub struct ReviewItem {
    /// The payment's row.
    pub summary: PaymentSummary,
    /// Why the rules held it.
    pub reasons: Vec<Reason>,
    /// The sha256 (hex) of its decision as stored: what a review of it records.
    pub decision_sha256: String,
    /// Its review, once reviewed.
    pub review: Option<Review>,
}

/// A page of held payments.
#[derive(Clone, Debug)]
pub struct ReviewPage {
    /// The payments.
    pub items: Vec<ReviewItem>,
    /// The cursor for the next page, if there may be one.
    pub next_cursor: Option<i64>,
}
