//! The writer task: one connection that writes, taking every queued decision into one
//! transaction (group commit), several statements per round trip.
//!
//! A batch is one transaction of two round trips, whatever its size:
//!
//! 1. `BEGIN` and the chain's head row locked `FOR UPDATE` (every host's writer appends
//!    through that row, so entries are numbered without gaps in commit order across
//!    hosts, and no head is trusted from memory); with them, in the same round trip, the
//!    idempotency records (each decision's claim fenced: its token must still be the
//!    key's, and the claim is removed) and the messages, `ON CONFLICT DO NOTHING …
//!    RETURNING`: a key taken by another host fails that decision alone, with no savepoint
//!    (more than 64 subtransactions in one transaction slow every session of a PostgreSQL
//!    cluster).
//! 2. The payments, the audit entries (hashed and authenticated here, from the head read
//!    in 1), the new head and `COMMIT`, pipelined. `synchronous_commit` is on: the commit
//!    is on the database's disk (and its synchronous standbys, if configured) before
//!    anyone is answered.
//!
//! (The head lock riding with the records took one host from 3.20k to 3.28k decisions/s
//! on the 2-core bench machine: most of a batch's time is the database's own work, which
//! statements prepared once per connection cut — BENCHMARKS.md.)

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, Statement};

use super::{Inner, pg_error};
use crate::store::audit::entry_hash;
use crate::store::audit_keys::AuditKeys;
use crate::store::queue::{Job, MessageRows, ShadowRow, Write};
use crate::store::{
    AuditSealing, CommitObserver, DECIDED, DecisionRecord, PERSONAL_DATA_ERASED, ReviewRecord,
    SERVICE_ACTOR, StoreError, erasure_detail,
};

/// How often an idle writer checkpoints the head and writes shadow decisions.
const IDLE_TICK: Duration = Duration::from_millis(100);
/// The most shadow decisions written in one statement.
const SHADOW_ROWS_PER_WRITE: usize = 256;

/// The head this host last wrote, and the checkpoints of it.
struct Sealed {
    sealing: AuditSealing,
    head: Option<(i64, [u8; 32])>,
}

impl Sealed {
    /// A batch moved the head to `seq`/`hash` (only a later head counts).
    fn advanced(&mut self, seq: i64, hash: [u8; 32]) {
        if self.head.is_none_or(|(at, _)| seq > at) {
            self.head = Some((seq, hash));
        }
        self.checkpoint(false);
    }

    fn checkpoint(&mut self, force: bool) {
        if let Some((seq, hash)) = self.head {
            self.sealing
                .checkpoints
                .record(&self.sealing.keys, seq, &hash, force);
        }
    }
}

/// The writer: one connection, one batch at a time, until its queue closes; between
/// batches it writes shadow decisions; at the end, what is left of them, and the last
/// head is checkpointed.
///
/// One writer per host: a second connection overlapping batches (the next one's first
/// round trip done while the last commits) was measured on the 2-core bench machine,
/// where the database shares the cores, and made smaller batches and more database work
/// (one host 4.21k and 4.32k decisions/s with two, 4.38k and 4.44k with one).
pub(super) async fn write_loop(
    inner: Arc<Inner>,
    mut jobs: mpsc::UnboundedReceiver<Job>,
    shadows: std::sync::mpsc::Receiver<ShadowRow>,
    sealing: AuditSealing,
    batch_max: usize,
    observer: Arc<dyn CommitObserver>,
) {
    let mut client: Option<Writer> = None;
    let mut sealed = Sealed {
        sealing,
        head: None,
    };
    loop {
        let first = match tokio::time::timeout(IDLE_TICK, jobs.recv()).await {
            Ok(Some(first)) => first,
            Ok(None) => break,
            Err(_idle) => {
                sealed.checkpoint(false);
                let rows = shadows_queued(&shadows);
                write_shadows(&inner, &mut client, rows).await;
                continue;
            }
        };
        let mut batch = vec![first];
        while batch.len() < batch_max {
            match jobs.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let started = Instant::now();
        let outcome = match writer_client(&inner, &mut client).await {
            Ok(conn) => commit_batch(conn, &sealed.sealing.keys, &batch).await,
            Err(error) => Err(error),
        };
        observer.committed(batch.len(), started.elapsed().as_secs_f64());
        match outcome {
            Ok((outcomes, head)) => {
                for (job, outcome) in batch.into_iter().zip(outcomes) {
                    let _ = job.reply.send(outcome);
                }
                if let Some((seq, hash)) = head {
                    sealed.advanced(seq, hash);
                }
            }
            Err(error) => {
                tracing::error!(decisions = batch.len(), "a commit failed: {error}");
                // Whether the connection broke or the transaction failed, start the next
                // batch on a fresh connection: nothing of this one is left open.
                client = None;
                for job in batch {
                    let _ = job.reply.send(Err(same_error(&error)));
                }
            }
        }
        let rows = shadows_queued(&shadows);
        write_shadows(&inner, &mut client, rows).await;
    }
    loop {
        let rows = shadows_queued(&shadows);
        if rows.is_empty() {
            break;
        }
        write_shadows(&inner, &mut client, rows).await;
    }
    sealed.checkpoint(true);
}

/// The shadow decisions queued, up to one statement's worth.
fn shadows_queued(shadows: &std::sync::mpsc::Receiver<ShadowRow>) -> Vec<ShadowRow> {
    shadows.try_iter().take(SHADOW_ROWS_PER_WRITE).collect()
}

/// The same error again, for each caller of a failed batch.
fn same_error(error: &StoreError) -> StoreError {
    match error {
        StoreError::KeyTaken => StoreError::KeyTaken,
        StoreError::AlreadyReviewed => StoreError::AlreadyReviewed,
        StoreError::NotHeld => StoreError::NotHeld,
        StoreError::Unavailable { reason } => StoreError::Unavailable {
            reason: reason.clone(),
        },
        StoreError::Failed { source } => StoreError::failed(source.to_string()),
        StoreError::Closed => StoreError::Closed,
        StoreError::Erased { data_key } => StoreError::Erased {
            data_key: data_key.clone(),
        },
    }
}

/// The writer's connection, with its statements prepared once (parsed and planned once
/// per connection, not per batch: a statement prepared inside a batch would be sent after
/// the batch's COMMIT, which is pipelined).
pub(super) struct Writer {
    client: Client,
    record: Statement,
    messages: Statement,
    reviews: Statement,
    events: Statement,
    payments: Statement,
    entries: Statement,
    head: Statement,
    expire: Statement,
    shadows: Statement,
}

impl std::ops::Deref for Writer {
    type Target = Client;

    fn deref(&self) -> &Client {
        &self.client
    }
}

impl Writer {
    async fn connect(inner: &Inner) -> Result<Writer, StoreError> {
        let client = inner.connect(false).await?;
        let prepare = |sql: &'static str| client.prepare(sql);
        let prepared = tokio::try_join!(
            prepare(FENCE_AND_RECORD),
            prepare(RECORD_MESSAGES),
            prepare(RECORD_REVIEWS),
            prepare(INSERT_EVENTS),
            prepare(INSERT_PAYMENTS),
            prepare(INSERT_ENTRIES),
            prepare(MOVE_HEAD),
            prepare(EXPIRE),
            prepare(INSERT_SHADOWS),
        )
        .map_err(pg_error)?;
        let (record, messages, reviews, events, payments, entries, head, expire, shadows) =
            prepared;
        Ok(Writer {
            client,
            record,
            messages,
            reviews,
            events,
            payments,
            entries,
            head,
            expire,
            shadows,
        })
    }
}

/// The writer's connection, made anew if it is missing or broken.
async fn writer_client<'c>(
    inner: &Inner,
    client: &'c mut Option<Writer>,
) -> Result<&'c Writer, StoreError> {
    if client.as_ref().is_none_or(|w| w.client.is_closed()) {
        *client = Some(Writer::connect(inner).await?);
    }
    client
        .as_ref()
        .ok_or_else(|| StoreError::failed("no writer connection"))
}

/// The columns of rows to insert, one array per column (sent as `unnest` arguments).
#[derive(Default)]
struct Payments<'a> {
    id: Vec<&'a str>,
    received_at_ms: Vec<i64>,
    submitted_by: Vec<&'a str>,
    end_to_end_id: Vec<&'a str>,
    amount: Vec<&'a str>,
    currency: Vec<&'a str>,
    status: Vec<&'a str>,
    rule_set_version: Vec<&'a str>,
    payment: Vec<&'a str>,
    decision: Vec<&'a str>,
    rules_fired: Vec<&'a str>,
}

impl<'a> Payments<'a> {
    fn push(&mut self, r: &'a DecisionRecord) {
        self.id.push(&r.payment_id);
        self.received_at_ms.push(r.received_at_ms);
        self.submitted_by.push(&r.submitted_by);
        self.end_to_end_id.push(&r.end_to_end_id);
        self.amount.push(&r.amount);
        self.currency.push(&r.currency);
        self.status.push(&r.status);
        self.rule_set_version.push(&r.rule_set_version);
        self.payment.push(&r.payment);
        self.decision.push(&r.decision);
        self.rules_fired.push(&r.rules_fired);
    }
}

/// The events of a batch, one array per column, and their routes (event id, endpoint).
#[derive(Default)]
struct Events<'a> {
    event_id: Vec<&'a str>,
    event_type: Vec<&'a str>,
    payment_id: Vec<&'a str>,
    created_at_ms: Vec<i64>,
    payload: Vec<&'a str>,
    route_event: Vec<&'a str>,
    route_endpoint: Vec<&'a str>,
}

impl<'a> Events<'a> {
    fn push(&mut self, event: Option<&'a crate::store::outbox::OutboxEvent>) {
        let Some(event) = event else {
            return;
        };
        self.event_id.push(&event.event_id);
        self.event_type.push(event.event_type);
        self.payment_id.push(&event.payment_id);
        self.created_at_ms.push(event.created_at_ms);
        self.payload.push(&event.payload);
        for endpoint in &event.endpoints {
            self.route_event.push(&event.event_id);
            self.route_endpoint.push(endpoint);
        }
    }
}

#[derive(Default)]
struct Entries {
    seq: Vec<i64>,
    at_ms: Vec<i64>,
    actor: Vec<String>,
    action: Vec<String>,
    subject: Vec<String>,
    detail: Vec<String>,
    prev_hash: Vec<Vec<u8>>,
    hash: Vec<Vec<u8>>,
    key_id: Vec<String>,
    mac: Vec<Vec<u8>>,
}

/// The chain as this batch extends it.
struct Appender<'k> {
    keys: &'k AuditKeys,
    seq: i64,
    hash: [u8; 32],
    entries: Entries,
}

impl Appender<'_> {
    fn append(&mut self, at_ms: i64, actor: &str, action: &str, subject: &str, detail: &str) {
        let seq = self.seq + 1;
        let hash = entry_hash(&self.hash, seq, at_ms, actor, action, subject, detail);
        let (key_id, mac) = self.keys.sign_entry(&hash);
        let e = &mut self.entries;
        e.seq.push(seq);
        e.at_ms.push(at_ms);
        e.actor.push(actor.to_owned());
        e.action.push(action.to_owned());
        e.subject.push(subject.to_owned());
        e.detail.push(detail.to_owned());
        e.prev_hash.push(self.hash.to_vec());
        e.hash.push(hash.to_vec());
        e.key_id.push(key_id);
        e.mac.push(mac.to_vec());
        self.seq = seq;
        self.hash = hash;
    }

    fn decided(&mut self, r: &DecisionRecord) {
        self.append(
            r.received_at_ms,
            &r.submitted_by,
            DECIDED,
            &r.payment_id,
            &r.audit_detail,
        );
    }
}

const FENCE_AND_RECORD: &str = "\
WITH input AS (
    SELECT * FROM unnest($1::text[], $2::text[], $3::bytea[], $4::text[], $5::int8[], $6::int8[])
        AS u(principal, key, fingerprint, payment_id, created_at_ms, token)
), fenced AS (
    DELETE FROM idempotency_claims c USING input i
    WHERE c.principal = i.principal AND c.key = i.key AND c.token = i.token
    RETURNING c.principal, c.key
)
INSERT INTO idempotency_keys (principal, key, fingerprint, payment_id, created_at_ms)
SELECT i.principal, i.key, i.fingerprint, i.payment_id, i.created_at_ms FROM input i
WHERE i.token IS NULL
   OR EXISTS (SELECT 1 FROM fenced f WHERE f.principal = i.principal AND f.key = i.key)
ON CONFLICT DO NOTHING
RETURNING payment_id";

const RECORD_MESSAGES: &str = "\
INSERT INTO messages (principal, message_id, fingerprint, received_at_ms, report)
SELECT * FROM unnest($1::text[], $2::text[], $3::bytea[], $4::int8[], $5::text[])
ON CONFLICT DO NOTHING
RETURNING principal, message_id";

/// The reviews of payments held and not reviewed yet (the head lock, taken before, orders
/// hosts reviewing the same payment: the second finds the first's row).
const RECORD_REVIEWS: &str = "\
INSERT INTO reviews (payment_id, verdict, reason_code, note, reviewer, reviewed_at_ms,
                     decision_sha256, expired)
SELECT i.* FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::int8[],
                       $7::text[], $8::bool[])
    AS i(payment_id, verdict, reason_code, note, reviewer, reviewed_at_ms, decision_sha256, expired)
WHERE EXISTS (SELECT 1 FROM payments p WHERE p.id = i.payment_id AND p.status = 'pending_review')
ON CONFLICT DO NOTHING
RETURNING payment_id";

/// Events and a pending delivery for each endpoint that receives each.
const INSERT_EVENTS: &str = "\
WITH ev AS (
    INSERT INTO outbox (event_id, event_type, payment_id, created_at_ms, payload)
    SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::int8[], $5::text[])
    RETURNING seq, event_id, payment_id
)
INSERT INTO webhook_deliveries (endpoint, seq, payment_id, state, attempts, next_attempt_ms)
SELECT r.endpoint, ev.seq, ev.payment_id, 'pending', 0, 0
FROM ev JOIN unnest($6::text[], $7::text[]) AS r(event_id, endpoint) ON r.event_id = ev.event_id";

const INSERT_PAYMENTS: &str = "\
INSERT INTO payments (id, received_at_ms, submitted_by, end_to_end_id, amount, currency,
                      status, rule_set_version, payment, decision, rules_fired)
SELECT * FROM unnest($1::text[], $2::int8[], $3::text[], $4::text[], $5::text[], $6::text[],
                     $7::text[], $8::text[], $9::text[], $10::text[], $11::text[])";

const MOVE_HEAD: &str = "UPDATE audit_head SET seq = $1, hash = $2 WHERE id = 1";

/// Idempotency records made before an instant, and claims whose lease has ended; one
/// statement, so that it is sent before COMMIT like the others.
const EXPIRE: &str = "\
WITH forgotten AS (DELETE FROM idempotency_keys WHERE created_at_ms < $1 RETURNING 1),
     ended AS (DELETE FROM idempotency_claims WHERE lease_until < clock_timestamp() RETURNING 1),
     done AS (DELETE FROM outbox o WHERE o.created_at_ms < $1
              AND NOT EXISTS (SELECT 1 FROM webhook_deliveries d WHERE d.seq = o.seq) RETURNING 1)
SELECT (SELECT count(*) FROM forgotten), (SELECT count(*) FROM ended), (SELECT count(*) FROM done)";

const INSERT_SHADOWS: &str = "\
INSERT INTO shadow_decisions (payment_id, shadow_version, decided_at_ms, decision)
SELECT * FROM unnest($1::text[], $2::text[], $3::int8[], $4::text[])";

const INSERT_ENTRIES: &str = "\
INSERT INTO audit_log (seq, at_ms, actor, action, subject, detail, prev_hash, hash, key_id, mac)
SELECT * FROM unnest($1::int8[], $2::int8[], $3::text[], $4::text[], $5::text[], $6::text[],
                     $7::bytea[], $8::bytea[], $9::text[], $10::bytea[])";

/// Commits a batch in one transaction. Each job's outcome, and the head it left (if it
/// appended), or an error that failed all of it (nothing of it committed, or — if the
/// connection broke during `COMMIT` — not known: [`StoreError::Unavailable`], and a retry
/// finds the decision if it was).
async fn commit_batch(
    client: &Writer,
    keys: &AuditKeys,
    batch: &[Job],
) -> Result<(Vec<Result<(), StoreError>>, Option<(i64, [u8; 32])>), StoreError> {
    let result = commit_locked(client, keys, batch).await;
    if result.is_err() && !client.is_closed() {
        let _ = client.batch_execute("ROLLBACK").await;
    }
    result
}

/// `BEGIN`, and the head row locked until the transaction ends.
async fn lock_head(client: &Writer) -> Result<(i64, [u8; 32]), StoreError> {
    use tokio_postgres::SimpleQueryMessage;
    let messages = client
        .simple_query(
            "BEGIN; SELECT seq, encode(hash, 'hex') FROM audit_head WHERE id = 1 FOR UPDATE",
        )
        .await
        .map_err(pg_error)?;
    let row = messages
        .iter()
        .find_map(|m| match m {
            SimpleQueryMessage::Row(row) => Some(row),
            _ => None,
        })
        .ok_or_else(|| StoreError::failed("the audit head row is missing"))?;
    let seq = row
        .get(0)
        .and_then(|s| s.parse::<i64>().ok())
        .ok_or_else(|| StoreError::failed("the audit head's seq is unreadable"))?;
    let hash = row
        .get(1)
        .and_then(crate::store::audit_keys::hex_32)
        .ok_or_else(|| StoreError::failed("the audit head's hash is not 32 bytes"))?;
    Ok((seq, hash))
}

async fn commit_locked(
    client: &Writer,
    keys: &AuditKeys,
    batch: &[Job],
) -> Result<(Vec<Result<(), StoreError>>, Option<(i64, [u8; 32])>), StoreError> {
    // Round trip 1: BEGIN and the head locked, then which decisions and messages may be
    // recorded (which does not depend on the head), sent together.
    let decisions: Vec<&DecisionRecord> = batch
        .iter()
        .filter_map(|job| match &job.write {
            Write::Decision(r) => Some(&**r),
            _ => None,
        })
        .collect();
    let messages: Vec<&MessageRows> = batch
        .iter()
        .filter_map(|job| match &job.write {
            Write::Message(m) => Some(&**m),
            _ => None,
        })
        .collect();
    let reviews: Vec<&ReviewRecord> = batch
        .iter()
        .filter_map(|job| match &job.write {
            Write::Review(r) => Some(&**r),
            _ => None,
        })
        .collect();
    let erasure = batch.iter().find_map(|job| match &job.write {
        Write::Erase {
            before_day,
            retention_days,
        } => Some((*before_day, *retention_days)),
        _ => None,
    });
    let ((head_seq, head_hash), recorded, claimed, mut reviewed, erased) = tokio::try_join!(
        lock_head(client),
        record_idempotency(client, &decisions),
        record_messages(client, &messages),
        record_reviews(client, &reviews),
        erase_data_keys(client, erasure.map(|(before_day, _)| before_day)),
    )?;

    // Each job's outcome, and the rows and entries of those recorded, in batch order.
    let mut claimed: HashMap<(&str, &str), usize> = claimed;
    let mut outcomes = Vec::with_capacity(batch.len());
    let mut payments = Payments::default();
    let mut chain = Appender {
        keys,
        seq: head_seq,
        hash: head_hash,
        entries: Entries::default(),
    };
    let mut expire_before = None;
    let mut events = Events::default();
    for job in batch {
        match &job.write {
            Write::Decision(r) => {
                if recorded.contains(r.payment_id.as_str()) {
                    payments.push(r);
                    chain.decided(r);
                    events.push(r.event.as_ref());
                    outcomes.push(Ok(()));
                } else {
                    outcomes.push(Err(StoreError::KeyTaken));
                }
            }
            Write::Message(m) => {
                let won = claimed
                    .get_mut(&(m.principal.as_str(), m.message_id.as_str()))
                    .filter(|left| **left > 0)
                    .map(|left| *left -= 1)
                    .is_some();
                if won {
                    for r in &m.decisions {
                        payments.push(r);
                        chain.decided(r);
                        events.push(r.event.as_ref());
                    }
                    outcomes.push(Ok(()));
                } else {
                    outcomes.push(Err(StoreError::KeyTaken));
                }
            }
            Write::Review(r) => match reviewed.remove(r.review.payment_id.as_str()) {
                Some(Ok(())) => {
                    let review = &r.review;
                    chain.append(
                        review.reviewed_at_unix_ms,
                        &review.reviewer,
                        r.action,
                        &review.payment_id,
                        &r.audit_detail,
                    );
                    events.push(r.event.as_ref());
                    outcomes.push(Ok(()));
                }
                Some(Err(refused)) => outcomes.push(Err(refused)),
                // A second review of one payment in one batch: the first was the one.
                None => outcomes.push(Err(StoreError::AlreadyReviewed)),
            },
            Write::Event(e) => {
                chain.append(e.at_ms, SERVICE_ACTOR, &e.action, &e.subject, &e.detail);
                outcomes.push(Ok(()));
            }
            // The keys the statement erased (none if another host did first), each audited
            // in this transaction; a second erasure in one batch finds none left.
            Write::Erase { retention_days, .. } => {
                for (id, day, at_ms) in &erased {
                    chain.append(
                        *at_ms,
                        SERVICE_ACTOR,
                        PERSONAL_DATA_ERASED,
                        id,
                        &erasure_detail(id, *day, *retention_days),
                    );
                }
                outcomes.push(Ok(()));
            }
            Write::Expire { before_unix_ms } => {
                expire_before =
                    Some(expire_before.map_or(*before_unix_ms, |b: i64| b.max(*before_unix_ms)));
                outcomes.push(Ok(()));
            }
            // The store writes these on a connection of their own, never through here.
            Write::Deliveries(_)
            | Write::Redeliver { .. }
            | Write::Rollup(_)
            | Write::PruneRollups { .. } => outcomes.push(Err(StoreError::failed(
                "deliveries and rollups are not written by the writer",
            ))),
        }
    }

    // Round trip 2: the rows, the entries, the head, the commit.
    let appended = chain.seq > head_seq;
    let insert_payments = async {
        if payments.id.is_empty() {
            return Ok(0);
        }
        let p = &payments;
        client
            .execute(
                &client.payments,
                &[
                    &p.id,
                    &p.received_at_ms,
                    &p.submitted_by,
                    &p.end_to_end_id,
                    &p.amount,
                    &p.currency,
                    &p.status,
                    &p.rule_set_version,
                    &p.payment,
                    &p.decision,
                    &p.rules_fired,
                ],
            )
            .await
    };
    let insert_entries = async {
        if !appended {
            return Ok(0);
        }
        let e = &chain.entries;
        client
            .execute(
                &client.entries,
                &[
                    &e.seq,
                    &e.at_ms,
                    &e.actor,
                    &e.action,
                    &e.subject,
                    &e.detail,
                    &e.prev_hash,
                    &e.hash,
                    &e.key_id,
                    &e.mac,
                ],
            )
            .await
    };
    let insert_events = async {
        if events.event_id.is_empty() {
            return Ok(0);
        }
        let e = &events;
        client
            .execute(
                &client.events,
                &[
                    &e.event_id,
                    &e.event_type,
                    &e.payment_id,
                    &e.created_at_ms,
                    &e.payload,
                    &e.route_event,
                    &e.route_endpoint,
                ],
            )
            .await
    };
    let new_hash = chain.hash.to_vec();
    let move_head = async {
        if !appended {
            return Ok(0);
        }
        client.execute(&client.head, &[&chain.seq, &new_hash]).await
    };
    let expire = async {
        let Some(before) = expire_before else {
            return Ok(0);
        };
        // One statement, so it is sent before COMMIT like the others.
        let row = client.query(&client.expire, &[&before]).await?;
        let forgotten: i64 = row.first().map_or(Ok(0), |r| r.try_get(0))?;
        if forgotten > 0 {
            tracing::info!(forgotten, "idempotency records expired");
        }
        Ok(u64::try_from(forgotten).unwrap_or(0))
    };
    // Sent in this order on the one connection; the server runs them in that order, so a
    // statement that fails aborts the transaction and COMMIT then commits nothing.
    let commit = client.batch_execute("COMMIT");
    let written = tokio::try_join!(
        insert_payments,
        insert_events,
        insert_entries,
        move_head,
        expire,
        commit
    );
    written.map_err(pg_error)?;
    Ok((outcomes, appended.then_some((chain.seq, chain.hash))))
}

/// Inserts the idempotency records of the decisions whose claim still holds; returns the
/// payment ids recorded.
async fn record_idempotency<'r>(
    client: &Writer,
    decisions: &[&'r DecisionRecord],
) -> Result<HashSet<&'r str>, StoreError> {
    if decisions.is_empty() {
        return Ok(HashSet::new());
    }
    let principal: Vec<&str> = decisions
        .iter()
        .map(|r| r.idempotency.principal.as_str())
        .collect();
    let key: Vec<&str> = decisions
        .iter()
        .map(|r| r.idempotency.key.as_str())
        .collect();
    let fingerprint: Vec<&[u8]> = decisions
        .iter()
        .map(|r| r.idempotency.fingerprint.as_slice())
        .collect();
    let payment_id: Vec<&str> = decisions.iter().map(|r| r.payment_id.as_str()).collect();
    let created: Vec<i64> = decisions.iter().map(|r| r.received_at_ms).collect();
    let token: Vec<Option<i64>> = decisions.iter().map(|r| r.idempotency.token).collect();
    let params: [&(dyn ToSql + Sync); 6] = [
        &principal,
        &key,
        &fingerprint,
        &payment_id,
        &created,
        &token,
    ];
    let rows = client
        .query(&client.record, &params)
        .await
        .map_err(pg_error)?;
    let mut recorded = HashSet::with_capacity(rows.len());
    for row in rows {
        let id: &str = row.try_get(0).map_err(pg_error)?;
        if let Some(r) = decisions.iter().find(|r| r.payment_id == id) {
            recorded.insert(r.payment_id.as_str());
        }
    }
    Ok(recorded)
}

/// Inserts the messages not recorded before; returns how many of each (principal,
/// message id) were inserted (1, or 0 if taken).
async fn record_messages<'m>(
    client: &Writer,
    messages: &[&'m MessageRows],
) -> Result<HashMap<(&'m str, &'m str), usize>, StoreError> {
    let mut claimed = HashMap::new();
    if messages.is_empty() {
        return Ok(claimed);
    }
    let principal: Vec<&str> = messages.iter().map(|m| m.principal.as_str()).collect();
    let message_id: Vec<&str> = messages.iter().map(|m| m.message_id.as_str()).collect();
    let fingerprint: Vec<&[u8]> = messages.iter().map(|m| m.fingerprint.as_slice()).collect();
    let received: Vec<i64> = messages.iter().map(|m| m.received_at_ms).collect();
    let report: Vec<&str> = messages.iter().map(|m| m.report.as_str()).collect();
    let params: [&(dyn ToSql + Sync); 5] =
        [&principal, &message_id, &fingerprint, &received, &report];
    let rows = client
        .query(&client.messages, &params)
        .await
        .map_err(pg_error)?;
    for row in rows {
        let principal: &str = row.try_get(0).map_err(pg_error)?;
        let message_id: &str = row.try_get(1).map_err(pg_error)?;
        if let Some(m) = messages
            .iter()
            .find(|m| m.principal == principal && m.message_id == message_id)
        {
            *claimed
                .entry((m.principal.as_str(), m.message_id.as_str()))
                .or_insert(0) += 1;
        }
    }
    Ok(claimed)
}

/// Inserts the reviews of payments held and not reviewed yet; returns, for each payment
/// with a review in the batch, whether its (first) review was recorded or why not.
/// Erases (in the batch's transaction) the data keys of the days before `before_day` not
/// erased yet: their wrapped keys emptied, the instant recorded. Returns what it erased;
/// a host that erases the same keys at once waits on their rows and then finds none.
async fn erase_data_keys(
    client: &Writer,
    before_day: Option<i64>,
) -> Result<Vec<(String, i64, i64)>, StoreError> {
    let Some(before_day) = before_day else {
        return Ok(Vec::new());
    };
    let now = crate::store::now_unix_ms();
    let rows = client
        .client
        .query(
            "UPDATE data_keys SET wrapped = '\\x'::bytea, erased_at_ms = $2 \
             WHERE day < $1 AND erased_at_ms IS NULL RETURNING id, day",
            &[&before_day, &now],
        )
        .await
        .map_err(pg_error)?;
    let mut erased = rows
        .iter()
        .map(|row| Ok((row.try_get(0)?, row.try_get(1)?, now)))
        .collect::<Result<Vec<_>, tokio_postgres::Error>>()
        .map_err(pg_error)?;
    erased.sort();
    Ok(erased)
}

async fn record_reviews<'r>(
    client: &Writer,
    reviews: &[&'r ReviewRecord],
) -> Result<HashMap<&'r str, Result<(), StoreError>>, StoreError> {
    let mut outcomes = HashMap::new();
    if reviews.is_empty() {
        return Ok(outcomes);
    }
    let column = |f: fn(&'r ReviewRecord) -> Option<&'r str>| -> Vec<Option<&'r str>> {
        reviews.iter().map(|r| f(r)).collect()
    };
    let payment_id = column(|r| Some(&r.review.payment_id));
    let verdict = column(|r| Some(r.review.verdict.name()));
    let reason_code = column(|r| r.review.reason_code.as_deref());
    let note = column(|r| r.review.note.as_deref());
    let reviewer = column(|r| Some(&r.review.reviewer));
    let at: Vec<i64> = reviews
        .iter()
        .map(|r| r.review.reviewed_at_unix_ms)
        .collect();
    let sha = column(|r| Some(&r.review.decision_sha256));
    let expired: Vec<bool> = reviews.iter().map(|r| r.review.expired).collect();
    let params: [&(dyn ToSql + Sync); 8] = [
        &payment_id,
        &verdict,
        &reason_code,
        &note,
        &reviewer,
        &at,
        &sha,
        &expired,
    ];
    let rows = client
        .query(&client.reviews, &params)
        .await
        .map_err(pg_error)?;
    for row in &rows {
        let id: &str = row.try_get(0).map_err(pg_error)?;
        if let Some(r) = reviews.iter().find(|r| r.review.payment_id == id) {
            outcomes.insert(r.review.payment_id.as_str(), Ok(()));
        }
    }
    // Those not recorded: reviewed already (by another host, or earlier), or not held.
    let refused: Vec<&str> = reviews
        .iter()
        .map(|r| r.review.payment_id.as_str())
        .filter(|id| !outcomes.contains_key(id))
        .collect();
    if !refused.is_empty() {
        let rows = client
            .query(
                "SELECT payment_id FROM reviews WHERE payment_id = ANY($1)",
                &[&refused],
            )
            .await
            .map_err(pg_error)?;
        let reviewed: HashSet<String> = rows
            .iter()
            .map(|row| row.try_get::<_, String>(0))
            .collect::<Result<_, _>>()
            .map_err(pg_error)?;
        for id in refused {
            let why = if reviewed.contains(id) {
                StoreError::AlreadyReviewed
            } else {
                StoreError::NotHeld
            };
            outcomes.insert(id, Err(why));
        }
    }
    Ok(outcomes)
}

/// Inserts shadow decisions in one statement, with `synchronous_commit = off` (they
/// decide nothing: a crash may lose the last of them, never the database). A failure
/// loses them and is logged.
async fn write_shadows(inner: &Inner, client: &mut Option<Writer>, rows: Vec<ShadowRow>) {
    if rows.is_empty() {
        return;
    }
    let written = async {
        let conn = writer_client(inner, client).await?;
        let payment_id: Vec<&str> = rows.iter().map(|r| r.payment_id.as_str()).collect();
        let version: Vec<&str> = rows.iter().map(|r| r.shadow_version.as_str()).collect();
        let at: Vec<i64> = rows.iter().map(|r| r.decided_at_ms).collect();
        let decision: Vec<&str> = rows.iter().map(|r| r.decision.as_str()).collect();
        let params: [&(dyn ToSql + Sync); 4] = [&payment_id, &version, &at, &decision];
        let insert = conn.execute(&conn.shadows, &params);
        tokio::try_join!(
            conn.batch_execute("BEGIN; SET LOCAL synchronous_commit = off"),
            insert,
            conn.batch_execute("COMMIT"),
        )
        .map_err(pg_error)?;
        Ok::<_, StoreError>(())
    }
    .await;
    if let Err(error) = written {
        tracing::warn!(rows = rows.len(), "shadow decisions not written: {error}");
        *client = None;
    }
}
