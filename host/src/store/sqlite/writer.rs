//! The writer thread: the one connection that writes, taking every queued decision into
//! one transaction (group commit) and holding the audit chain's head between them.

use std::sync::{Arc, mpsc};
use std::time::Instant;

use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

use super::super::audit::{GENESIS, entry_hash};
use super::super::audit_keys::AuditKeys;
use super::super::queue::{Job, ShadowRow, Write};
use super::super::{
    AuditSealing, CommitObserver, DECIDED, DecisionRecord, PERSONAL_DATA_ERASED, ReviewRecord,
    SERVICE_ACTOR, StoreError, erasure_detail,
};
use super::{SHADOW_IDLE_WRITE, SHADOW_ROWS_PER_WRITE};

/// The head of the audit chain: the next sequence number and the last hash.
#[derive(Clone, Copy)]
pub(super) struct ChainHead {
    next_seq: i64,
    last_hash: [u8; 32],
}

pub(super) fn chain_head(conn: &Connection) -> Result<ChainHead, StoreError> {
    let last = conn
        .query_row(
            "SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1",
            [],
            |row| Ok((row.get::<_, i64>(0)?, row.get::<_, Vec<u8>>(1)?)),
        )
        .optional()?;
    Ok(match last {
        None => ChainHead {
            next_seq: 1,
            last_hash: GENESIS,
        },
        Some((seq, hash)) => ChainHead {
            next_seq: seq + 1,
            last_hash: hash.try_into().map_err(|_| {
                StoreError::failed(format!("audit entry {seq}: hash is not 32 bytes"))
            })?,
        },
    })
}

/// The writer's view of the audit chain: its head, and how entries are authenticated.
pub(super) struct Chain {
    pub(super) head: ChainHead,
    pub(super) sealing: AuditSealing,
    /// When the data keys are next brought up to date (today's and tomorrow's made).
    pub(super) keys_due: Instant,
}

/// How often the writer makes sure the data keys of today and tomorrow exist.
const DATA_KEYS_EVERY: std::time::Duration = std::time::Duration::from_secs(600);

impl Chain {
    /// Makes the coming days' data keys when due.
    fn keep_keys(&mut self, conn: &Connection) {
        if Instant::now() < self.keys_due {
            return;
        }
        self.keys_due = Instant::now() + DATA_KEYS_EVERY;
        if let Err(error) = super::sync_data_keys(conn, &self.sealing.personal) {
            tracing::error!("cannot bring the data keys up to date: {error}");
        }
    }

    /// Checkpoints the head (at most once per interval unless `force`).
    fn checkpoint(&mut self, force: bool) {
        if self.head.next_seq > 1 {
            self.sealing.checkpoints.record(
                &self.sealing.keys,
                self.head.next_seq - 1,
                &self.head.last_hash,
                force,
            );
        }
    }
}

pub(super) fn write_loop(
    mut conn: Connection,
    jobs: mpsc::Receiver<Job>,
    shadows: &mpsc::Receiver<ShadowRow>,
    mut chain: Chain,
    batch_max: usize,
    observer: Arc<dyn CommitObserver>,
) {
    loop {
        let first = match jobs.recv_timeout(SHADOW_IDLE_WRITE) {
            Ok(first) => first,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                // An idle writer still checkpoints the last commits within the interval.
                chain.checkpoint(false);
                chain.keep_keys(&conn);
                write_shadows(&mut conn, shadows, SHADOW_ROWS_PER_WRITE);
                continue;
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                chain.checkpoint(true);
                write_shadows(&mut conn, shadows, usize::MAX);
                return;
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
        let erasing = batch
            .iter()
            .any(|job| matches!(job.write, Write::Erase { .. }));
        let outcomes = commit_batch(&mut conn, &mut chain.head, &chain.sealing.keys, &batch);
        if erasing && outcomes.is_ok() {
            // An erased key's old bytes: zeroed in the database file (`secure_delete`), and
            // the write-ahead log, which still holds the page as it was, checkpointed and
            // truncated (readers in the middle of a read can delay it to the next).
            if let Err(error) = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(())) {
                tracing::warn!("the write-ahead log was not truncated after an erasure: {error}");
            }
        }
        observer.committed(batch.len(), started.elapsed().as_secs_f64());
        match outcomes {
            Ok(outcomes) => {
                for (job, outcome) in batch.into_iter().zip(outcomes) {
                    let _ = job.reply.send(outcome);
                }
                chain.checkpoint(false);
                chain.keep_keys(&conn);
            }
            Err(error) => {
                tracing::error!(decisions = batch.len(), "a commit failed: {error}");
                // Nothing of the batch is on disk; the chain is where the disk says.
                match chain_head(&conn) {
                    Ok(on_disk) => chain.head = on_disk,
                    Err(e) => tracing::error!("cannot re-read the audit chain: {e}"),
                }
                for job in batch {
                    let _ = job.reply.send(Err(StoreError::failed(error.to_string())));
                }
            }
        }
        write_shadows(&mut conn, shadows, SHADOW_ROWS_PER_WRITE);
    }
}

/// Inserts up to `most` queued shadow decisions in one transaction without an fsync of
/// its own (`synchronous=NORMAL` in WAL mode: the next live commit's fsync makes them
/// durable; a power loss before it loses them, never the database). A failure loses them
/// and is logged: they are for comparison and decide nothing.
fn write_shadows(conn: &mut Connection, shadows: &mpsc::Receiver<ShadowRow>, most: usize) {
    let rows: Vec<ShadowRow> = shadows.try_iter().take(most).collect();
    if rows.is_empty() {
        return;
    }
    let written = (|| -> Result<(), rusqlite::Error> {
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        {
            let mut insert = tx.prepare_cached(
                "INSERT INTO shadow_decisions (payment_id, shadow_version, decided_at_ms, \
                 decision) VALUES (?1, ?2, ?3, ?4)",
            )?;
            for row in &rows {
                insert.execute(params![
                    row.payment_id,
                    row.shadow_version,
                    row.decided_at_ms,
                    row.decision
                ])?;
            }
        }
        tx.commit()
    })();
    // Live commits are fsync'd whatever happened above.
    let restored = conn.pragma_update(None, "synchronous", "FULL");
    if let Err(error) = written {
        tracing::warn!(rows = rows.len(), "shadow decisions not written: {error}");
    }
    if let Err(error) = restored {
        tracing::error!("cannot set synchronous=FULL again on the writer: {error}");
    }
}

/// Commits a batch in one transaction; each job in its own savepoint, so a job that
/// fails (a key taken by another host, say) fails alone.
fn commit_batch(
    conn: &mut Connection,
    head: &mut ChainHead,
    keys: &AuditKeys,
    batch: &[Job],
) -> Result<Vec<Result<(), StoreError>>, StoreError> {
    let mut tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let mut outcomes = Vec::with_capacity(batch.len());
    let mut next = *head;
    for job in batch {
        let savepoint = tx.savepoint()?;
        match insert(&savepoint, &next, keys, &job.write) {
            Ok(advanced) => {
                savepoint.commit()?;
                next = advanced;
                outcomes.push(Ok(()));
            }
            Err(error) => {
                drop(savepoint);
                outcomes.push(Err(error));
            }
        }
    }
    tx.commit()?;
    *head = next;
    Ok(outcomes)
}

fn insert(
    conn: &Connection,
    head: &ChainHead,
    keys: &AuditKeys,
    write: &Write,
) -> Result<ChainHead, StoreError> {
    match write {
        Write::Decision(r) => {
            insert_decision(conn, r)?;
            insert_idempotency(conn, r)?;
            insert_event(conn, r.event.as_ref())?;
            audit_decided(conn, head, keys, r)
        }
        Write::Message(m) => {
            let inserted = conn
                .prepare_cached(
                    "INSERT INTO messages (principal, message_id, fingerprint, received_at_ms, \
                     report) VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT DO NOTHING",
                )?
                .execute(params![
                    m.principal,
                    m.message_id,
                    m.fingerprint.as_slice(),
                    m.received_at_ms,
                    m.report
                ])?;
            if inserted == 0 {
                return Err(StoreError::KeyTaken);
            }
            let mut head = *head;
            for r in &m.decisions {
                insert_decision(conn, r)?;
                insert_event(conn, r.event.as_ref())?;
                head = audit_decided(conn, &head, keys, r)?;
            }
            Ok(head)
        }
        Write::Review(r) => {
            insert_review(conn, r)?;
            insert_event(conn, r.event.as_ref())?;
            let review = &r.review;
            audit(
                conn,
                head,
                keys,
                review.reviewed_at_unix_ms,
                &review.reviewer,
                r.action,
                &review.payment_id,
                &r.audit_detail,
            )
        }
        Write::Expire { before_unix_ms } => {
            let forgotten = conn
                .prepare_cached("DELETE FROM idempotency_keys WHERE created_at_ms < ?1")?
                .execute(params![before_unix_ms])?;
            if forgotten > 0 {
                tracing::info!(forgotten, "idempotency records expired");
            }
            conn.prepare_cached(
                "DELETE FROM outbox WHERE created_at_ms < ?1 \
                 AND seq NOT IN (SELECT seq FROM webhook_deliveries)",
            )?
            .execute(params![before_unix_ms])?;
            Ok(*head)
        }
        Write::Erase {
            before_day,
            retention_days,
        } => {
            let now = super::super::now_unix_ms();
            let mut erased = conn
                .prepare_cached(
                    "UPDATE data_keys SET wrapped = x'', erased_at_ms = ?2 \
                     WHERE day < ?1 AND erased_at_ms IS NULL RETURNING id, day",
                )?
                .query_map(params![before_day, now], |row| {
                    Ok((row.get::<_, String>(0)?, row.get::<_, i64>(1)?))
                })?
                .collect::<Result<Vec<_>, _>>()?;
            erased.sort();
            let mut head = *head;
            for (id, day) in &erased {
                head = audit(
                    conn,
                    &head,
                    keys,
                    now,
                    SERVICE_ACTOR,
                    PERSONAL_DATA_ERASED,
                    id,
                    &erasure_detail(id, *day, *retention_days),
                )?;
            }
            Ok(head)
        }
        Write::Deliveries(outcomes) => {
            record_outcomes(conn, outcomes)?;
            Ok(*head)
        }
        Write::Redeliver { endpoint, event_id } => {
            conn.prepare_cached(
                "UPDATE webhook_deliveries SET state = 'pending', attempts = 0, \
                 next_attempt_ms = 0 WHERE endpoint = ?1 AND state = 'dead' \
                 AND (?2 IS NULL OR seq = (SELECT seq FROM outbox WHERE event_id = ?2))",
            )?
            .execute(params![endpoint, event_id])?;
            Ok(*head)
        }
        Write::Rollup(rollup) => {
            conn.prepare_cached(
                "INSERT INTO rollups (span_ms, start_ms, host_id, tally) VALUES (?1, ?2, ?3, ?4) \
                 ON CONFLICT (span_ms, start_ms, host_id) DO UPDATE SET tally = excluded.tally",
            )?
            .execute(params![
                rollup.span_ms,
                rollup.start_unix_ms,
                rollup.host_id,
                rollup.tally
            ])?;
            Ok(*head)
        }
        Write::PruneRollups {
            span_ms,
            before_unix_ms,
        } => {
            conn.prepare_cached("DELETE FROM rollups WHERE span_ms = ?1 AND start_ms < ?2")?
                .execute(params![span_ms, before_unix_ms])?;
            Ok(*head)
        }
        Write::Event(e) => audit(
            conn,
            head,
            keys,
            e.at_ms,
            SERVICE_ACTOR,
            &e.action,
            &e.subject,
            &e.detail,
        ),
    }
}

/// Appends a decided payment's audit entry; returns the new head.
fn audit_decided(
    conn: &Connection,
    head: &ChainHead,
    keys: &AuditKeys,
    r: &DecisionRecord,
) -> Result<ChainHead, StoreError> {
    audit(
        conn,
        head,
        keys,
        r.received_at_ms,
        &r.submitted_by,
        DECIDED,
        &r.payment_id,
        &r.audit_detail,
    )
}

/// Appends one entry to the audit chain, authenticated by the signing audit key; returns
/// the new head.
#[allow(clippy::too_many_arguments)]
fn audit(
    conn: &Connection,
    head: &ChainHead,
    keys: &AuditKeys,
    at_ms: i64,
    actor: &str,
    action: &str,
    subject: &str,
    detail: &str,
) -> Result<ChainHead, StoreError> {
    let hash = entry_hash(
        &head.last_hash,
        head.next_seq,
        at_ms,
        actor,
        action,
        subject,
        detail,
    );
    let (key_id, mac) = keys.sign_entry(&hash);
    conn.prepare_cached(
        "INSERT INTO audit_log (seq, at_ms, actor, action, subject, detail, prev_hash, hash, \
         key_id, mac) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
    )?
    .execute(params![
        head.next_seq,
        at_ms,
        actor,
        action,
        subject,
        detail,
        head.last_hash.as_slice(),
        hash.as_slice(),
        key_id,
        mac.as_slice()
    ])?;
    Ok(ChainHead {
        next_seq: head.next_seq + 1,
        last_hash: hash,
    })
}

fn insert_decision(conn: &Connection, r: &DecisionRecord) -> Result<(), StoreError> {
    conn.prepare_cached(
        "INSERT INTO payments (id, received_at_ms, submitted_by, end_to_end_id, amount, \
         currency, status, rule_set_version, payment, decision, rules_fired) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
    )?
    .execute(params![
        r.payment_id,
        r.received_at_ms,
        r.submitted_by,
        r.end_to_end_id,
        r.amount,
        r.currency,
        r.status,
        r.rule_set_version,
        r.payment,
        r.decision,
        r.rules_fired
    ])?;
    Ok(())
}

fn insert_idempotency(conn: &Connection, r: &DecisionRecord) -> Result<(), StoreError> {
    let inserted = conn
        .prepare_cached(
            "INSERT INTO idempotency_keys (principal, key, fingerprint, payment_id, \
             created_at_ms) VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT DO NOTHING",
        )?
        .execute(params![
            r.idempotency.principal,
            r.idempotency.key,
            r.idempotency.fingerprint.as_slice(),
            r.payment_id,
            r.received_at_ms
        ])?;
    if inserted == 0 {
        return Err(StoreError::KeyTaken);
    }
    Ok(())
}

/// Inserts a review if its payment is held and has none yet.
fn insert_review(conn: &Connection, r: &ReviewRecord) -> Result<(), StoreError> {
    let review = &r.review;
    let inserted = conn
        .prepare_cached(
            "INSERT INTO reviews (payment_id, verdict, reason_code, note, reviewer, \
             reviewed_at_ms, decision_sha256, expired) \
             SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8 \
             WHERE EXISTS (SELECT 1 FROM payments WHERE id = ?1 AND status = 'pending_review') \
             ON CONFLICT DO NOTHING",
        )?
        .execute(params![
            review.payment_id,
            review.verdict.name(),
            review.reason_code,
            review.note,
            review.reviewer,
            review.reviewed_at_unix_ms,
            review.decision_sha256,
            review.expired
        ])?;
    if inserted == 1 {
        return Ok(());
    }
    let reviewed = conn
        .prepare_cached("SELECT 1 FROM reviews WHERE payment_id = ?1")?
        .query_row(params![review.payment_id], |_| Ok(()))
        .optional()?
        .is_some();
    Err(if reviewed {
        StoreError::AlreadyReviewed
    } else {
        StoreError::NotHeld
    })
}

/// Writes an event to the outbox with a pending delivery per endpoint that receives it.
fn insert_event(
    conn: &Connection,
    event: Option<&crate::store::outbox::OutboxEvent>,
) -> Result<(), StoreError> {
    let Some(event) = event else {
        return Ok(());
    };
    conn.prepare_cached(
        "INSERT INTO outbox (event_id, event_type, payment_id, created_at_ms, payload) \
         VALUES (?1, ?2, ?3, ?4, ?5)",
    )?
    .execute(params![
        event.event_id,
        event.event_type,
        event.payment_id,
        event.created_at_ms,
        event.payload
    ])?;
    let seq = conn.last_insert_rowid();
    let mut delivery = conn.prepare_cached(
        "INSERT INTO webhook_deliveries (endpoint, seq, payment_id, state, attempts, \
         next_attempt_ms) VALUES (?1, ?2, ?3, 'pending', 0, 0)",
    )?;
    for endpoint in &event.endpoints {
        delivery.execute(params![endpoint, seq, event.payment_id])?;
    }
    Ok(())
}

/// Records delivery attempts: a delivered one is removed; a failed one waits for its next
/// attempt, or is dead.
fn record_outcomes(
    conn: &Connection,
    outcomes: &[crate::store::outbox::DeliveryOutcome],
) -> Result<(), StoreError> {
    use crate::store::outbox::DeliveryOutcome;
    for outcome in outcomes {
        match outcome {
            DeliveryOutcome::Delivered { endpoint, seq } => {
                conn.prepare_cached(
                    "DELETE FROM webhook_deliveries WHERE endpoint = ?1 AND seq = ?2",
                )?
                .execute(params![endpoint, seq])?;
            }
            DeliveryOutcome::Failed {
                endpoint,
                seq,
                attempts,
                at_ms,
                next_attempt_ms,
                dead,
                error,
            } => {
                conn.prepare_cached(
                    "UPDATE webhook_deliveries SET attempts = ?3, last_attempt_ms = ?4, \
                     next_attempt_ms = ?5, state = ?6, last_error = ?7 \
                     WHERE endpoint = ?1 AND seq = ?2 AND state = 'pending'",
                )?
                .execute(params![
                    endpoint,
                    seq,
                    attempts,
                    at_ms,
                    next_attempt_ms,
                    if *dead { "dead" } else { "pending" },
                    error
                ])?;
            }
        }
    }
    Ok(())
}
