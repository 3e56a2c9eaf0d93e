//! Durable payments, decisions, idempotency records and the audit log, in an embedded
//! SQLite database.
//!
//! This module is the only one that knows SQL. Its seam is narrow on purpose: the API
//! hands it a [`NewDecision`] and awaits [`Store::commit`]; it reads back plain model
//! types. A PostgreSQL backend for many hosts will implement the same methods.
//!
//! Durability: the database runs in WAL mode with `synchronous=FULL`, so a commit has
//! been fsync'd when it returns. The payment, its decision, its idempotency record and
//! its audit entry go in one transaction: all or none.
//!
//! Group commit: one writer thread owns the write connection. Callers queue their
//! decisions; the writer takes every queued one (up to `commit_batch_max`) into a single
//! transaction, so under load one fsync covers many decisions, and answers each caller
//! when that transaction is durable. Each decision has its own savepoint, so one bad
//! record fails alone. Reads go through a small pool of read-only connections, which
//! WAL lets run beside the writer.
//!
//! Shadow decisions (a candidate rule set's, for comparison) never share a live commit:
//! they queue apart, and the writer inserts them between live commits, in small
//! transactions of their own with `synchronous=NORMAL` (no fsync of their own; the next
//! live commit's fsync covers them), so they neither lengthen a live commit nor add one.

pub mod audit;
pub mod audit_keys;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Instant;

use rusqlite::{Connection, OpenFlags, OptionalExtension, TransactionBehavior, params};
use sha2::{Digest, Sha256};

use crate::model::{Decision, Payment, Status};
use audit::{AuditEntry, ChainBreak, GENESIS, Verified, Verifier, entry_hash};
use audit_keys::{AuditKeys, Checkpoint, CheckpointLog};

/// Connections kept for reads.
const READERS_MAX: usize = 8;
/// How long a connection waits for a lock before it reports the database busy.
const BUSY_TIMEOUT_MS: u64 = 5_000;
/// The most rows a listing returns.
pub const LIST_LIMIT_MAX: u32 = 500;
/// Shadow decisions waiting for the writer; past this, recording one waits.
const SHADOW_PENDING_MAX: usize = 4_096;
/// The most shadow decisions the writer inserts in one go between live commits: a live
/// decision arriving meanwhile waits for at most this many inserts.
const SHADOW_ROWS_PER_WRITE: usize = 64;
/// How often an idle writer looks for shadow decisions to write.
const SHADOW_IDLE_WRITE: std::time::Duration = std::time::Duration::from_millis(100);

/// The schema, one migration per entry: entry `n` takes the database from version `n`
/// to `n + 1` (`PRAGMA user_version`). Never edit a released migration; add one.
const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE payments (
    seq INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    received_at_ms INTEGER NOT NULL,
    submitted_by TEXT NOT NULL,
    end_to_end_id TEXT NOT NULL,
    amount TEXT NOT NULL,
    currency TEXT NOT NULL,
    status TEXT NOT NULL,
    rule_set_version TEXT NOT NULL,
    payment TEXT NOT NULL,
    decision TEXT NOT NULL
);
CREATE INDEX payments_by_status ON payments (status, seq);
CREATE INDEX payments_by_submitter ON payments (submitted_by, seq);
CREATE INDEX payments_by_time ON payments (received_at_ms);

CREATE TABLE idempotency_keys (
    principal TEXT NOT NULL,
    key TEXT NOT NULL,
    fingerprint BLOB NOT NULL,
    payment_id TEXT NOT NULL REFERENCES payments (id),
    created_at_ms INTEGER NOT NULL,
    PRIMARY KEY (principal, key)
) WITHOUT ROWID;

CREATE TABLE audit_log (
    seq INTEGER PRIMARY KEY,
    at_ms INTEGER NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    subject TEXT NOT NULL,
    detail TEXT NOT NULL,
    prev_hash BLOB NOT NULL,
    hash BLOB NOT NULL
);
CREATE TRIGGER audit_log_is_append_only_update BEFORE UPDATE ON audit_log
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER audit_log_is_append_only_delete BEFORE DELETE ON audit_log
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;

CREATE TABLE store_secrets (
    name TEXT PRIMARY KEY,
    value BLOB NOT NULL
) WITHOUT ROWID;
"#,
    r#"
CREATE TABLE messages (
    principal TEXT NOT NULL,
    message_id TEXT NOT NULL,
    fingerprint BLOB NOT NULL,
    received_at_ms INTEGER NOT NULL,
    report TEXT NOT NULL,
    PRIMARY KEY (principal, message_id)
) WITHOUT ROWID;
"#,
    r#"
CREATE TABLE shadow_decisions (
    seq INTEGER PRIMARY KEY,
    payment_id TEXT NOT NULL,
    shadow_version TEXT NOT NULL,
    decided_at_ms INTEGER NOT NULL,
    decision TEXT NOT NULL
);
CREATE INDEX shadow_decisions_by_version ON shadow_decisions (shadow_version, seq);
"#,
    // Audit entries authenticated by a key outside the database (NULL in entries written
    // before: see audit::Verifier).
    r#"
ALTER TABLE audit_log ADD COLUMN key_id TEXT;
ALTER TABLE audit_log ADD COLUMN mac BLOB;
"#,
];

/// Why the store could not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Another request already recorded a decision under this idempotency key.
    #[error("the idempotency key is already used")]
    KeyTaken,
    /// The database failed (disk, lock, corruption): detail for the logs.
    #[error("the store failed: {0}")]
    Failed(String),
    /// The writer has stopped (the service is shutting down).
    #[error("the store is closed")]
    Closed,
}

impl From<rusqlite::Error> for StoreError {
    fn from(error: rusqlite::Error) -> Self {
        StoreError::Failed(error.to_string())
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

/// A stored payment with its decision.
#[derive(Clone, Debug, serde::Serialize, utoipa::ToSchema)]
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
    /// Only submitted by this API key.
    pub submitted_by: Option<String>,
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

struct Job {
    write: Write,
    reply: tokio::sync::oneshot::Sender<Result<(), StoreError>>,
}

/// What the writer writes: a decision (with its audit entry), or an audit entry of the
/// service's own.
enum Write {
    Decision(Box<Row>),
    Message(Box<MessageRows>),
    Event(Event),
}

/// A shadow rule set's decision: outside the audit chain, since it decides nothing.
struct ShadowRow {
    payment_id: String,
    shadow_version: String,
    decided_at_ms: i64,
    decision: String,
}

/// A message and its decisions, written together.
struct MessageRows {
    principal: String,
    message_id: String,
    fingerprint: [u8; 32],
    received_at_ms: i64,
    report: String,
    decisions: Vec<Row>,
}

/// An audit entry of the service's own, e.g. `rules.loaded`.
struct Event {
    at_ms: i64,
    action: String,
    subject: String,
    detail: String,
}

/// A decision ready for the writer: serialised and hashed by the caller, so the single
/// writer thread does only SQL.
struct Row {
    payment_id: String,
    received_at_ms: i64,
    submitted_by: String,
    end_to_end_id: String,
    amount: String,
    currency: String,
    status: String,
    rule_set_version: String,
    payment: String,
    decision: String,
    idempotency: IdempotencyClaim,
    audit_detail: String,
}

/// How the writer authenticates the audit log: the keys, and the checkpoint file it
/// appends the chain's head to.
pub struct AuditSealing {
    /// The audit keys; the first signs.
    pub keys: AuditKeys,
    /// The checkpoint file.
    pub checkpoints: CheckpointLog,
}

/// The store.
pub struct Store {
    path: PathBuf,
    writer: Mutex<Option<mpsc::Sender<Job>>>,
    shadow_writes: mpsc::SyncSender<ShadowRow>,
    writer_thread: Mutex<Option<std::thread::JoinHandle<()>>>,
    readers: Mutex<Vec<Connection>>,
    fingerprint_key: [u8; 32],
}

impl Store {
    /// Opens (creating if needed) the database at `path`, brings its schema up to date,
    /// and starts the writer.
    pub fn open(
        path: &Path,
        commit_batch_max: usize,
        observer: Arc<dyn CommitObserver>,
        sealing: AuditSealing,
    ) -> Result<Store, StoreError> {
        create_private(path)?;
        let mut conn = Connection::open(path)
            .map_err(|e| StoreError::Failed(format!("{}: {e}", path.display())))?;
        configure(&conn)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        migrate(&mut conn)?;
        let fingerprint_key = secret(&conn, "idempotency_fingerprint_key")?;
        let head = chain_head(&conn)?;
        let (sender, receiver) = mpsc::channel::<Job>();
        let (shadow_writes, shadows) = mpsc::sync_channel::<ShadowRow>(SHADOW_PENDING_MAX);
        let writer_thread = std::thread::Builder::new()
            .name("payrules-store-writer".into())
            .spawn(move || {
                write_loop(
                    conn,
                    receiver,
                    &shadows,
                    Chain { head, sealing },
                    commit_batch_max,
                    observer,
                );
            })
            .map_err(|e| StoreError::Failed(format!("cannot start the writer: {e}")))?;
        Ok(Store {
            path: path.to_owned(),
            writer: Mutex::new(Some(sender)),
            shadow_writes,
            writer_thread: Mutex::new(Some(writer_thread)),
            readers: Mutex::new(Vec::new()),
            fingerprint_key,
        })
    }

    /// Opens an existing database for reading only (`payrules audit verify`).
    pub fn open_existing(path: &Path) -> Result<Store, StoreError> {
        if !path.is_file() {
            return Err(StoreError::Failed(format!(
                "{}: no store there",
                path.display()
            )));
        }
        let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY)
            .map_err(|e| StoreError::Failed(format!("{}: {e}", path.display())))?;
        configure(&conn)?;
        let version: usize = conn
            .pragma_query_value(None, "user_version", |r| r.get::<_, i64>(0))?
            .try_into()
            .unwrap_or(usize::MAX);
        if version != MIGRATIONS.len() {
            return Err(StoreError::Failed(format!(
                "{}: schema version {version}, this payrules reads {}",
                path.display(),
                MIGRATIONS.len()
            )));
        }
        let fingerprint_key = [0; 32];
        // Read only: recording a shadow decision fails as closed.
        let (shadow_writes, _) = mpsc::sync_channel(0);
        Ok(Store {
            path: path.to_owned(),
            writer: Mutex::new(None),
            shadow_writes,
            writer_thread: Mutex::new(None),
            readers: Mutex::new(vec![conn]),
            fingerprint_key,
        })
    }

    /// The keyed hash (HMAC-SHA256 with this store's own secret) of a canonical payload.
    /// Idempotency records keep this, never the payload itself.
    pub fn fingerprint(&self, canonical_payload: &[u8]) -> [u8; 32] {
        use hmac::Mac;
        let mut mac = <hmac::Hmac<Sha256> as Mac>::new_from_slice(&self.fingerprint_key)
            .unwrap_or_else(|e| unreachable!("HMAC takes a key of any length: {e}"));
        mac.update(canonical_payload);
        mac.finalize().into_bytes().into()
    }

    /// Records a decision, its payment, its idempotency record and its audit entry in one
    /// durable transaction. Returns when it is on disk.
    pub async fn commit(&self, decision: NewDecision) -> Result<(), StoreError> {
        let row = Row::new(decision)?;
        self.send(Write::Decision(Box::new(row))).await
    }

    /// Records a message's decisions, its status report and their audit entries in one
    /// durable transaction. [`StoreError::KeyTaken`] if the message id was used already.
    pub async fn commit_message(&self, message: NewMessage) -> Result<(), StoreError> {
        let decisions = message
            .decisions
            .into_iter()
            .map(Row::new)
            .collect::<Result<Vec<_>, _>>()?;
        self.send(Write::Message(Box::new(MessageRows {
            principal: message.principal,
            message_id: message.message_id,
            fingerprint: message.fingerprint,
            received_at_ms: message.received_at_unix_ms,
            report: message.report,
            decisions,
        })))
        .await
    }

    /// A message `principal` sent before under `message_id`, if any.
    pub fn message(
        &self,
        principal: &str,
        message_id: &str,
    ) -> Result<Option<StoredMessage>, StoreError> {
        let found = self.read_blocking(|conn| {
            fingerprinted(
                conn,
                "SELECT fingerprint, report FROM messages \
                 WHERE principal = ?1 AND message_id = ?2",
                principal,
                message_id,
            )
        })?;
        Ok(found.map(|(fingerprint, report)| StoredMessage {
            fingerprint,
            report,
        }))
    }

    /// Appends an entry of the service's own (`rules.loaded`, ...) to the audit log, and
    /// returns when it is durable. Its actor is `payrules`.
    pub async fn audit_event(
        &self,
        action: &str,
        subject: &str,
        detail: &serde_json::Value,
    ) -> Result<(), StoreError> {
        self.send(Write::Event(Event {
            at_ms: now_unix_ms(),
            action: action.to_owned(),
            subject: subject.to_owned(),
            detail: detail.to_string(),
        }))
        .await
    }

    /// Queues a shadow rule set's decision for the writer, which inserts it between live
    /// commits. Waits only while `SHADOW_PENDING_MAX` are already queued (the shadow's own
    /// thread calls it, so a writer that falls behind slows the shadow, never the live
    /// path); does not wait for the insert.
    pub fn record_shadow(
        &self,
        decision: &Decision,
        shadow_version: &str,
    ) -> Result<(), StoreError> {
        let row = ShadowRow {
            payment_id: decision.payment_id.clone(),
            shadow_version: shadow_version.to_owned(),
            decided_at_ms: decision.decided_at_unix_ms,
            decision: serde_json::to_string(decision)
                .map_err(|e| StoreError::Failed(format!("a shadow decision: {e}")))?,
        };
        self.shadow_writes.send(row).map_err(|_| StoreError::Closed)
    }

    /// Visits the decisions the shadow set `shadow_version` made, in order, each with the
    /// live decision of the same payment.
    pub fn for_each_shadowed(
        &self,
        shadow_version: &str,
        mut visit: impl FnMut(Decision, Decision),
    ) -> Result<(), StoreError> {
        self.read_blocking(|conn| {
            let mut statement = conn.prepare(
                "SELECT p.decision, s.decision FROM shadow_decisions s \
                 JOIN payments p ON p.id = s.payment_id \
                 WHERE s.shadow_version = ?1 ORDER BY s.seq",
            )?;
            let mut rows = statement.query(params![shadow_version])?;
            while let Some(row) = rows.next()? {
                let live: Decision = serde_json::from_str(&row.get::<_, String>(0)?)
                    .map_err(|e| StoreError::Failed(format!("a stored decision: {e}")))?;
                let shadow: Decision = serde_json::from_str(&row.get::<_, String>(1)?)
                    .map_err(|e| StoreError::Failed(format!("a shadow decision: {e}")))?;
                visit(live, shadow);
            }
            Ok(())
        })
    }

    async fn send(&self, write: Write) -> Result<(), StoreError> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        {
            let writer = self.writer.lock().unwrap_or_else(|p| p.into_inner());
            let writer = writer.as_ref().ok_or(StoreError::Closed)?;
            writer
                .send(Job { write, reply })
                .map_err(|_| StoreError::Closed)?;
        }
        answer.await.map_err(|_| StoreError::Closed)?
    }

    /// Stops taking decisions, commits those queued, and waits for the writer to finish.
    pub fn close(&self) {
        drop(self.writer.lock().unwrap_or_else(|p| p.into_inner()).take());
        if let Some(thread) = self
            .writer_thread
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
        {
            let _ = thread.join();
        }
    }

    /// What an idempotency key of `principal` was used for, if it was. A primary-key
    /// look-up of a few microseconds, run on the caller's thread: every submission makes
    /// one, and a hop to a blocking thread would cost more than the read.
    pub fn idempotency(
        &self,
        principal: &str,
        key: &str,
    ) -> Result<Option<IdempotencyRecord>, StoreError> {
        let found = self.read_blocking(|conn| {
            fingerprinted(
                conn,
                "SELECT fingerprint, payment_id FROM idempotency_keys \
                 WHERE principal = ?1 AND key = ?2",
                principal,
                key,
            )
        })?;
        Ok(found.map(|(fingerprint, payment_id)| IdempotencyRecord {
            fingerprint,
            payment_id,
        }))
    }

    /// A stored payment and its decision.
    pub async fn payment(&self, payment_id: &str) -> Result<Option<StoredPayment>, StoreError> {
        let id = payment_id.to_owned();
        self.read(move |conn| {
            conn.prepare_cached(
                "SELECT id, received_at_ms, submitted_by, payment, decision \
                 FROM payments WHERE id = ?1",
            )?
            .query_row(params![id], |row| {
                Ok((
                    row.get::<_, String>(0)?,
                    row.get::<_, i64>(1)?,
                    row.get::<_, String>(2)?,
                    row.get::<_, String>(3)?,
                    row.get::<_, String>(4)?,
                ))
            })
            .optional()?
            .map(|(payment_id, received, submitted_by, payment, decision)| {
                Ok(StoredPayment {
                    payment_id,
                    received_at_unix_ms: received,
                    submitted_by,
                    payment: Payment::from_json(&payment)
                        .map_err(|e| StoreError::Failed(format!("a stored payment: {e}")))?,
                    decision: serde_json::from_str(&decision)
                        .map_err(|e| StoreError::Failed(format!("a stored decision: {e}")))?,
                })
            })
            .transpose()
        })
        .await
    }

    /// Payments, newest first.
    pub async fn list(&self, query: ListQuery) -> Result<Page, StoreError> {
        self.read(move |conn| {
            let limit = query.limit.clamp(1, LIST_LIMIT_MAX);
            let status = query.status.map(status_name);
            let mut statement = conn.prepare_cached(
                "SELECT seq, id, received_at_ms, submitted_by, end_to_end_id, amount, currency, \
                        status, rule_set_version \
                 FROM payments \
                 WHERE (?1 IS NULL OR status = ?1) \
                   AND (?2 IS NULL OR received_at_ms >= ?2) \
                   AND (?3 IS NULL OR submitted_by = ?3) \
                   AND (?4 IS NULL OR seq < ?4) \
                 ORDER BY seq DESC LIMIT ?5",
            )?;
            let mut last_seq = None;
            let rows = statement.query_map(
                params![
                    status,
                    query.since_unix_ms,
                    query.submitted_by,
                    query.cursor,
                    limit
                ],
                |row| {
                    Ok((
                        row.get::<_, i64>(0)?,
                        PaymentSummary {
                            payment_id: row.get(1)?,
                            received_at_unix_ms: row.get(2)?,
                            submitted_by: row.get(3)?,
                            end_to_end_id: row.get(4)?,
                            amount: row.get(5)?,
                            currency: row.get(6)?,
                            status: parse_status(row.get_ref(7)?.as_str()?)?,
                            rule_set_version: row.get(8)?,
                        },
                    ))
                },
            )?;
            let mut payments = Vec::new();
            for row in rows {
                let (seq, summary) = row?;
                last_seq = Some(seq);
                payments.push(summary);
            }
            let next_cursor = if payments.len() == limit as usize {
                last_seq
            } else {
                None
            };
            Ok(Page {
                payments,
                next_cursor,
            })
        })
        .await
    }

    /// Audit entries after `after_seq`, oldest first.
    pub async fn audit_entries(
        &self,
        after_seq: i64,
        limit: u32,
    ) -> Result<Vec<AuditEntry>, StoreError> {
        self.read(move |conn| {
            let mut statement = conn.prepare_cached(
                "SELECT seq, at_ms, actor, action, subject, detail, prev_hash, hash, key_id, mac \
                 FROM audit_log WHERE seq > ?1 ORDER BY seq LIMIT ?2",
            )?;
            let rows = statement.query_map(
                params![after_seq, limit.clamp(1, LIST_LIMIT_MAX)],
                audit_row,
            )?;
            rows.map(|row| row?.map_err(StoreError::Failed))
                .collect::<Result<Vec<_>, _>>()
        })
        .await
    }

    /// The newest audit entries with one of these actions, newest first.
    pub async fn audit_entries_of(
        &self,
        actions: &[&str],
        limit: u32,
    ) -> Result<Vec<AuditEntry>, StoreError> {
        let actions =
            serde_json::to_string(actions).map_err(|e| StoreError::Failed(e.to_string()))?;
        self.read(move |conn| {
            let mut statement = conn.prepare_cached(
                "SELECT seq, at_ms, actor, action, subject, detail, prev_hash, hash, key_id, mac \
                 FROM audit_log WHERE action IN (SELECT value FROM json_each(?1)) \
                 ORDER BY seq DESC LIMIT ?2",
            )?;
            let rows =
                statement.query_map(params![actions, limit.clamp(1, LIST_LIMIT_MAX)], audit_row)?;
            rows.map(|row| row?.map_err(StoreError::Failed))
                .collect::<Result<Vec<_>, _>>()
        })
        .await
    }

    /// Accepted payments received at or after `since_unix_ms`, oldest first, with the
    /// instant they were decided: what the velocity figures are rebuilt from at start.
    pub fn accepted_since(&self, since_unix_ms: i64) -> Result<Vec<(Payment, i64)>, StoreError> {
        self.read_blocking(|conn| {
            let mut statement = conn.prepare(
                "SELECT payment, decision FROM payments \
                 WHERE status = 'accepted' AND received_at_ms >= ?1 ORDER BY seq",
            )?;
            let rows = statement.query_map(params![since_unix_ms], |row| {
                Ok((row.get::<_, String>(0)?, row.get::<_, String>(1)?))
            })?;
            let mut accepted = Vec::new();
            for row in rows {
                let (payment, decision) = row?;
                let payment = Payment::from_json(&payment)
                    .map_err(|e| StoreError::Failed(format!("a stored payment: {e}")))?;
                let decision: Decision = serde_json::from_str(&decision)
                    .map_err(|e| StoreError::Failed(format!("a stored decision: {e}")))?;
                accepted.push((payment, decision.decided_at_unix_ms));
            }
            Ok(accepted)
        })
    }

    /// Visits every payment received in `since_unix_ms..until_unix_ms`, in the order
    /// decided, with its stored decision: what a backtest replays.
    pub fn for_each_decided(
        &self,
        since_unix_ms: i64,
        until_unix_ms: i64,
        mut visit: impl FnMut(Payment, Decision),
    ) -> Result<(), StoreError> {
        self.read_blocking(|conn| {
            let mut statement = conn.prepare(
                "SELECT payment, decision FROM payments \
                 WHERE received_at_ms >= ?1 AND received_at_ms < ?2 ORDER BY seq",
            )?;
            let mut rows = statement.query(params![since_unix_ms, until_unix_ms])?;
            while let Some(row) = rows.next()? {
                let payment = Payment::from_json(&row.get::<_, String>(0)?)
                    .map_err(|e| StoreError::Failed(format!("a stored payment: {e}")))?;
                let decision: Decision = serde_json::from_str(&row.get::<_, String>(1)?)
                    .map_err(|e| StoreError::Failed(format!("a stored decision: {e}")))?;
                visit(payment, decision);
            }
            Ok(())
        })
    }

    /// Checks the whole audit chain against the audit keys and the checkpoints (see
    /// [`Verifier`]), and both directions between the log and the tables: every decided
    /// payment's entry has its row, stored exactly as it was decided (payment, decision
    /// and the columns listings filter on), and every payment row has its entry. Returns
    /// what was verified, or the first fault.
    pub fn verify_audit(
        &self,
        keys: &AuditKeys,
        checkpoints: &[Checkpoint],
    ) -> Result<Result<Verified, ChainBreak>, StoreError> {
        self.read_blocking(|conn| {
            let mut verifier = match Verifier::new(keys, checkpoints) {
                Ok(verifier) => verifier,
                Err(fault) => return Ok(Err(fault)),
            };
            let mut statement = conn.prepare(
                "SELECT seq, at_ms, actor, action, subject, detail, prev_hash, hash, key_id, mac \
                 FROM audit_log ORDER BY seq",
            )?;
            let mut payment = conn.prepare(
                "SELECT payment, decision, submitted_by, status, rule_set_version, amount, \
                 currency, end_to_end_id FROM payments WHERE id = ?1",
            )?;
            let mut rows = statement.query([])?;
            while let Some(row) = rows.next()? {
                let entry = audit_row(row)?.map_err(StoreError::Failed)?;
                if let Err(fault) = verifier.check(&entry) {
                    return Ok(Err(fault));
                }
                if entry.action == DECIDED {
                    let stored = payment
                        .query_row(params![entry.subject], |r| {
                            (0..8)
                                .map(|i| r.get::<_, String>(i))
                                .collect::<rusqlite::Result<Vec<String>>>()
                        })
                        .optional()?;
                    let fault = |reason: &str| ChainBreak {
                        seq: entry.seq,
                        reason: format!("payment {}: {reason}", entry.subject),
                    };
                    let Some(stored) = stored else {
                        return Ok(Err(fault("the payment is missing from the store")));
                    };
                    if let Some(reason) = decided_row_differs(&entry, &stored)? {
                        return Ok(Err(fault(reason)));
                    }
                }
            }
            let verified = match verifier.finish() {
                Ok(verified) => verified,
                Err(fault) => return Ok(Err(fault)),
            };
            let unaudited: Option<String> = conn
                .query_row(
                    "SELECT id FROM payments WHERE id NOT IN \
                     (SELECT subject FROM audit_log WHERE action = ?1) ORDER BY seq LIMIT 1",
                    params![DECIDED],
                    |row| row.get(0),
                )
                .optional()?;
            if let Some(id) = unaudited {
                return Ok(Err(ChainBreak {
                    seq: 0,
                    reason: format!(
                        "payment {id} is stored with no audit entry (inserted behind the service's back)"
                    ),
                }));
            }
            Ok(Ok(verified))
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    async fn read<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let conn = self.take_reader()?;
        let (conn, result) = tokio::task::spawn_blocking(move || {
            let result = work(&conn);
            (conn, result)
        })
        .await
        .map_err(|e| StoreError::Failed(format!("a read task failed: {e}")))?;
        self.give_back(conn);
        result
    }

    fn read_blocking<T>(
        &self,
        work: impl FnOnce(&Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let conn = self.take_reader()?;
        let result = work(&conn);
        self.give_back(conn);
        result
    }

    fn take_reader(&self) -> Result<Connection, StoreError> {
        if let Some(conn) = self.readers.lock().unwrap_or_else(|p| p.into_inner()).pop() {
            return Ok(conn);
        }
        let conn = Connection::open_with_flags(
            &self.path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        configure(&conn)?;
        Ok(conn)
    }

    fn give_back(&self, conn: Connection) {
        let mut readers = self.readers.lock().unwrap_or_else(|p| p.into_inner());
        if readers.len() < READERS_MAX {
            readers.push(conn);
        }
    }
}

impl Drop for Store {
    fn drop(&mut self) {
        self.close();
    }
}

/// The audit action of a decision.
pub const DECIDED: &str = "payment.decided";
/// The actor of the service's own audit entries.
pub const SERVICE_ACTOR: &str = "payrules";

impl Row {
    fn new(new: NewDecision) -> Result<Row, StoreError> {
        let payment = serde_json::to_string(&new.payment)
            .map_err(|e| StoreError::Failed(format!("cannot serialise a payment: {e}")))?;
        let decision = serde_json::to_string(&new.decision)
            .map_err(|e| StoreError::Failed(format!("cannot serialise a decision: {e}")))?;
        let status = status_name(new.decision.status);
        let audit_detail = serde_json::json!({
            "status": status,
            "rule_set_version": new.decision.rule_set_version,
            "idempotency_key": new.idempotency.key,
            "payment_sha256": sha256_hex(&payment),
            "decision_sha256": sha256_hex(&decision),
        })
        .to_string();
        Ok(Row {
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
        })
    }
}

/// The head of the audit chain: the next sequence number and the last hash.
#[derive(Clone, Copy)]
struct ChainHead {
    next_seq: i64,
    last_hash: [u8; 32],
}

fn chain_head(conn: &Connection) -> Result<ChainHead, StoreError> {
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
                StoreError::Failed(format!("audit entry {seq}: hash is not 32 bytes"))
            })?,
        },
    })
}

/// The writer's view of the audit chain: its head, and how entries are authenticated.
struct Chain {
    head: ChainHead,
    sealing: AuditSealing,
}

impl Chain {
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

fn write_loop(
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
        let outcomes = commit_batch(&mut conn, &mut chain.head, &chain.sealing.keys, &batch);
        observer.committed(batch.len(), started.elapsed().as_secs_f64());
        match outcomes {
            Ok(outcomes) => {
                for (job, outcome) in batch.into_iter().zip(outcomes) {
                    let _ = job.reply.send(outcome);
                }
                chain.checkpoint(false);
            }
            Err(error) => {
                tracing::error!(decisions = batch.len(), "a commit failed: {error}");
                // Nothing of the batch is on disk; the chain is where the disk says.
                match chain_head(&conn) {
                    Ok(on_disk) => chain.head = on_disk,
                    Err(e) => tracing::error!("cannot re-read the audit chain: {e}"),
                }
                for job in batch {
                    let _ = job.reply.send(Err(StoreError::Failed(error.to_string())));
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
                head = audit(
                    conn,
                    &head,
                    keys,
                    r.received_at_ms,
                    &r.submitted_by,
                    DECIDED,
                    &r.payment_id,
                    &r.audit_detail,
                )?;
            }
            Ok(head)
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

fn insert_decision(conn: &Connection, r: &Row) -> Result<(), StoreError> {
    conn.prepare_cached(
        "INSERT INTO payments (id, received_at_ms, submitted_by, end_to_end_id, amount, \
         currency, status, rule_set_version, payment, decision) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
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
        r.decision
    ])?;
    Ok(())
}

fn insert_idempotency(conn: &Connection, r: &Row) -> Result<(), StoreError> {
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

/// A fingerprint and a text found by a two-part key (`sql` selects them by `?1`, `?2`).
fn fingerprinted(
    conn: &Connection,
    sql: &str,
    first: &str,
    second: &str,
) -> Result<Option<([u8; 32], String)>, StoreError> {
    conn.prepare_cached(sql)?
        .query_row(params![first, second], |row| {
            Ok((row.get::<_, Vec<u8>>(0)?, row.get::<_, String>(1)?))
        })
        .optional()?
        .map(|(fingerprint, text)| {
            let fingerprint = <[u8; 32]>::try_from(fingerprint)
                .map_err(|_| StoreError::Failed("a stored fingerprint is not 32 bytes".into()))?;
            Ok((fingerprint, text))
        })
        .transpose()
}

fn audit_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<Result<AuditEntry, String>> {
    let seq: i64 = row.get(0)?;
    let prev: Vec<u8> = row.get(6)?;
    let hash: Vec<u8> = row.get(7)?;
    let (Ok(prev_hash), Ok(hash)) = (<[u8; 32]>::try_from(prev), <[u8; 32]>::try_from(hash)) else {
        return Ok(Err(format!("audit entry {seq}: a hash is not 32 bytes")));
    };
    Ok(Ok(AuditEntry {
        seq,
        at_unix_ms: row.get(1)?,
        actor: row.get(2)?,
        action: row.get(3)?,
        subject: row.get(4)?,
        detail: row.get(5)?,
        prev_hash,
        hash,
        key_id: row.get(8)?,
        mac: row.get(9)?,
    }))
}

/// Creates the database file, if missing, readable by its owner only (mode 0600): SQLite
/// gives its `-wal` and `-shm` files the same mode.
fn create_private(path: &Path) -> Result<(), StoreError> {
    use std::os::unix::fs::OpenOptionsExt;
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
    {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(StoreError::Failed(format!("{}: {e}", path.display()))),
    }
}

fn configure(conn: &Connection) -> Result<(), StoreError> {
    conn.busy_timeout(std::time::Duration::from_millis(BUSY_TIMEOUT_MS))?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    Ok(())
}

fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    let version: usize = conn
        .pragma_query_value(None, "user_version", |r| r.get::<_, i64>(0))?
        .try_into()
        .unwrap_or(usize::MAX);
    if version > MIGRATIONS.len() {
        return Err(StoreError::Failed(format!(
            "the store's schema is version {version}, newer than this payrules ({})",
            MIGRATIONS.len()
        )));
    }
    for (index, migration) in MIGRATIONS.iter().enumerate().skip(version) {
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        tx.execute_batch(migration)?;
        tx.pragma_update(
            None,
            "user_version",
            i64::try_from(index + 1).unwrap_or(i64::MAX),
        )?;
        tx.commit()?;
        tracing::info!(version = index + 1, "store schema migrated");
    }
    Ok(())
}

/// A 32-byte secret of this store, made on first use and kept in it.
fn secret(conn: &Connection, name: &str) -> Result<[u8; 32], StoreError> {
    let existing: Option<Vec<u8>> = conn
        .query_row(
            "SELECT value FROM store_secrets WHERE name = ?1",
            params![name],
            |row| row.get(0),
        )
        .optional()?;
    if let Some(value) = existing {
        return value
            .try_into()
            .map_err(|_| StoreError::Failed(format!("the secret {name} is not 32 bytes")));
    }
    let mut value = [0u8; 32];
    getrandom::fill(&mut value)
        .map_err(|e| StoreError::Failed(format!("no randomness for a secret: {e}")))?;
    conn.execute(
        "INSERT INTO store_secrets (name, value) VALUES (?1, ?2)",
        params![name, value.as_slice()],
    )?;
    Ok(value)
}

fn status_name(status: Status) -> &'static str {
    match status {
        Status::Accepted => "accepted",
        Status::Rejected => "rejected",
        Status::PendingReview => "pending_review",
    }
}

fn parse_status(text: &str) -> rusqlite::Result<Status> {
    match text {
        "accepted" => Ok(Status::Accepted),
        "rejected" => Ok(Status::Rejected),
        "pending_review" => Ok(Status::PendingReview),
        other => Err(rusqlite::Error::FromSqlConversionFailure(
            7,
            rusqlite::types::Type::Text,
            format!("unknown status {other:?}").into(),
        )),
    }
}

/// Why a decided payment's row is not what its audit entry recorded, if it is not:
/// `stored` is payment, decision, submitted_by, status, rule_set_version, amount,
/// currency, end_to_end_id.
fn decided_row_differs(
    entry: &AuditEntry,
    stored: &[String],
) -> Result<Option<&'static str>, StoreError> {
    let detail: serde_json::Value =
        serde_json::from_str(&entry.detail).map_err(|e| StoreError::Failed(e.to_string()))?;
    if detail["payment_sha256"] != sha256_hex(&stored[0]) {
        return Ok(Some("the stored payment is not the one decided"));
    }
    if detail["decision_sha256"] != sha256_hex(&stored[1]) {
        return Ok(Some("the stored decision is not the one made"));
    }
    let payment: serde_json::Value =
        serde_json::from_str(&stored[0]).map_err(|e| StoreError::Failed(e.to_string()))?;
    let agrees = stored[2] == entry.actor
        && detail["status"] == stored[3].as_str()
        && detail["rule_set_version"] == stored[4].as_str()
        && payment["amount"] == stored[5].as_str()
        && payment["currency"] == stored[6].as_str()
        && payment["end_to_end_id"] == stored[7].as_str();
    Ok((!agrees).then_some(
        "a column of its row (submitter, status, rule set, amount, currency or end-to-end id) \
         is not what was decided",
    ))
}

fn sha256_hex(text: &str) -> String {
    crate::registry::hex(&Sha256::digest(text.as_bytes()))
}

/// Now, in ms since the Unix epoch.
pub fn now_unix_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}
