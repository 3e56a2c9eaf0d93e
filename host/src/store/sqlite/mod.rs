//! The embedded store: payments, decisions, idempotency records and the audit log in one
//! SQLite file, for one process (the default).
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

mod writer;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, mpsc};

use rusqlite::{Connection, OpenFlags, OptionalExtension, TransactionBehavior, params};

use super::audit::AuditEntry;
use super::outbox::{DeadLetter, Delivery, DeliveryOutcome, EndpointBacklog, EventRoutes};
use super::personal::{MasterKeys, PersonalData, Sealer, WrappedKey, context};
use super::queue::{Job, ShadowRow, Write};
use super::{
    Accepted, AuditSealing, Claim, CommitObserver, DECIDED, DecidedRow, EntryRow, HostBeat,
    HostRow, IdempotencyRecord, LIST_LIMIT_MAX, ListQuery, NewDecision, NewMessage, Page,
    PaymentSummary, REVIEW_EXPIRED, REVIEWED, ReviewPage, ReviewQuery, ReviewState, Rollup, Store,
    StoreError, StoreFuture, StoredMessage, StoredPayment, keyed_fingerprint, now_unix_ms,
    opened_decision, opened_review_row, opened_row, parse_status, review_item, status_name,
    stored_decision, stored_payment, stored_shadow_decision, unless_erased,
};
use crate::model::{Decision, Payment, Review, Verdict, final_status};
use writer::{Chain, chain_head, write_loop};

/// Connections kept for reads.
const READERS_MAX: usize = 8;
/// How long a connection waits for a lock before it reports the database busy.
const BUSY_TIMEOUT_MS: u64 = 5_000;
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
    // Idempotency records expire (store::Store::expire_idempotency).
    r#"
CREATE INDEX idempotency_keys_by_age ON idempotency_keys (created_at_ms);
"#,
    // Reviews of held payments: one per payment, never changed.
    r#"
CREATE TABLE reviews (
    seq INTEGER PRIMARY KEY,
    payment_id TEXT NOT NULL UNIQUE REFERENCES payments (id),
    verdict TEXT NOT NULL,
    reason_code TEXT,
    note TEXT,
    reviewer TEXT NOT NULL,
    reviewed_at_ms INTEGER NOT NULL,
    decision_sha256 TEXT NOT NULL,
    expired INTEGER NOT NULL
);
CREATE INDEX reviews_by_time ON reviews (reviewed_at_ms);
CREATE TRIGGER reviews_are_append_only_update BEFORE UPDATE ON reviews
BEGIN SELECT RAISE(ABORT, 'reviews are append-only'); END;
CREATE TRIGGER reviews_are_append_only_delete BEFORE DELETE ON reviews
BEGIN SELECT RAISE(ABORT, 'reviews are append-only'); END;
"#,
    // The outbox: events written with what they announce, and their deliveries per
    // webhook endpoint (pending until delivered, then removed; dead after the last try).
    r#"
CREATE TABLE outbox (
    seq INTEGER PRIMARY KEY,
    event_id TEXT NOT NULL UNIQUE,
    event_type TEXT NOT NULL,
    payment_id TEXT NOT NULL,
    created_at_ms INTEGER NOT NULL,
    payload TEXT NOT NULL
);
CREATE INDEX outbox_by_age ON outbox (created_at_ms);
CREATE TABLE webhook_deliveries (
    endpoint TEXT NOT NULL,
    seq INTEGER NOT NULL REFERENCES outbox (seq),
    payment_id TEXT NOT NULL,
    state TEXT NOT NULL,
    attempts INTEGER NOT NULL,
    next_attempt_ms INTEGER NOT NULL,
    last_attempt_ms INTEGER,
    last_error TEXT,
    PRIMARY KEY (endpoint, seq)
) WITHOUT ROWID;
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (state, next_attempt_ms, seq);
CREATE INDEX webhook_deliveries_by_payment ON webhook_deliveries (endpoint, payment_id, seq);
"#,
    // 8: a decision searched by its end-to-end id (the identifier customers quote).
    r#"
CREATE INDEX payments_by_end_to_end_id ON payments (end_to_end_id, seq);
"#,
    // 9: personal data sealed (`store::personal`): the data keys, wrapped by a master key
    // outside the database; the rules that fired kept in clear for search, since the
    // decision is sealed (filled here from the decisions written before, in clear).
    r#"
CREATE TABLE data_keys (
    id TEXT PRIMARY KEY,
    day INTEGER NOT NULL,
    master_key_id TEXT NOT NULL,
    wrapped BLOB NOT NULL,
    created_at_ms INTEGER NOT NULL,
    erased_at_ms INTEGER
) WITHOUT ROWID;
ALTER TABLE payments ADD COLUMN rules_fired TEXT NOT NULL DEFAULT ' ';
UPDATE payments SET rules_fired = ' ' || COALESCE((
    SELECT group_concat(json_extract(run.value, '$.name'), ' ')
    FROM json_each(payments.decision, '$.rules') AS run
    WHERE json_extract(run.value, '$.outcome') <> 'pass'
      AND NOT (json_extract(run.value, '$.outcome') = 'score'
               AND json_extract(run.value, '$.score') = 0)
) || ' ', '');
"#,
    // 10: the audit log by action, as PostgreSQL has it: the rule-set history and the
    // rollback in force (read at every start) without a scan of every decision's entry.
    r#"
CREATE INDEX audit_log_by_action ON audit_log (action, seq);
"#,
    // 11: the overview's figures, per host and minute or hour (the console's 24-hour and
    // 7-day charts).
    r#"
CREATE TABLE rollups (
    span_ms INTEGER NOT NULL,
    start_ms INTEGER NOT NULL,
    host_id TEXT NOT NULL,
    tally TEXT NOT NULL,
    PRIMARY KEY (span_ms, start_ms, host_id)
) WITHOUT ROWID;
"#,
];

/// The data keys the store holds, wrapped.
fn data_keys(conn: &Connection) -> Result<Vec<WrappedKey>, StoreError> {
    let mut statement = conn.prepare_cached(
        "SELECT id, day, master_key_id, wrapped, created_at_ms, erased_at_ms FROM data_keys \
         ORDER BY day",
    )?;
    let rows = statement.query_map([], |row| {
        Ok(WrappedKey {
            id: row.get(0)?,
            day: row.get(1)?,
            master_key_id: row.get(2)?,
            wrapped: row.get(3)?,
            created_at_ms: row.get(4)?,
            erased_at_ms: row.get(5)?,
        })
    })?;
    Ok(rows.collect::<Result<Vec<_>, _>>()?)
}

/// Brings the data keys up to date: unwraps those held, wraps again by the first master
/// key those another wraps (a rotation), makes today's and tomorrow's if missing.
pub(super) fn sync_data_keys(conn: &Connection, personal: &PersonalData) -> Result<(), StoreError> {
    let held = data_keys(conn)?;
    personal.absorb(&held).map_err(StoreError::failed)?;
    let rewrapped = personal.to_rewrap(&held)?;
    let made = personal.to_make(now_unix_ms())?;
    if rewrapped.is_empty() && made.is_empty() {
        return Ok(());
    }
    let tx = conn.unchecked_transaction()?;
    for key in &rewrapped {
        tx.execute(
            "UPDATE data_keys SET master_key_id = ?2, wrapped = ?3 WHERE id = ?1",
            params![key.id, key.master_key_id, key.wrapped],
        )?;
    }
    for key in &made {
        tx.execute(
            "INSERT INTO data_keys (id, day, master_key_id, wrapped, created_at_ms) \
             VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT DO NOTHING",
            params![
                key.id,
                key.day,
                key.master_key_id,
                key.wrapped,
                key.created_at_ms
            ],
        )?;
    }
    tx.commit()?;
    if !rewrapped.is_empty() {
        tracing::info!(
            keys = rewrapped.len(),
            "data keys wrapped again by the first master key"
        );
    }
    personal
        .absorb(&data_keys(conn)?)
        .map_err(StoreError::failed)
}

impl From<rusqlite::Error> for StoreError {
    fn from(error: rusqlite::Error) -> Self {
        use rusqlite::ErrorCode::{DatabaseBusy, DatabaseLocked};
        match error.sqlite_error_code() {
            // Still locked after the busy timeout: another writer holds it; retry.
            Some(DatabaseBusy | DatabaseLocked) => StoreError::Unavailable {
                reason: error.to_string(),
            },
            _ => StoreError::failed(error),
        }
    }
}

/// The embedded store: one SQLite file, one writer thread, a pool of readers.
pub struct SqliteStore {
    path: PathBuf,
    writer: Mutex<Option<mpsc::Sender<Job>>>,
    shadow_writes: mpsc::SyncSender<ShadowRow>,
    writer_thread: Mutex<Option<std::thread::JoinHandle<()>>>,
    readers: Mutex<Vec<Connection>>,
    fingerprint_key: [u8; 32],
    /// The one host of this store, as it last beat.
    host: Mutex<Option<(HostBeat, i64)>>,
    /// The database file, locked (`flock`) while this store writes it: a second process
    /// serving the same file would fork the audit chain, so it is refused.
    held: Mutex<Option<std::fs::File>>,
    /// Where events go ([`Store::route_events`]).
    routes: std::sync::RwLock<EventRoutes>,
    /// Seals and opens the personal data in the rows.
    personal: Sealer,
}

impl SqliteStore {
    /// Opens (creating if needed, mode 0600) the database at `path`, brings its schema up
    /// to date, and starts the writer.
    pub fn open(
        path: &Path,
        commit_batch_max: usize,
        observer: Arc<dyn CommitObserver>,
        sealing: AuditSealing,
    ) -> Result<SqliteStore, StoreError> {
        let at = |e: rusqlite::Error| StoreError::failed(format!("{}: {e}", path.display()));
        create_private(path)?;
        let held = hold(path)?;
        let mut conn = Connection::open(path).map_err(at)?;
        configure(&conn)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        migrate(&mut conn)?;
        // What the writer deletes or overwrites (an erased data key) is zeroed in the file.
        conn.pragma_update(None, "secure_delete", "ON")?;
        let personal = Arc::clone(&sealing.personal);
        sync_data_keys(&conn, &personal)?;
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
                    Chain {
                        head,
                        sealing,
                        keys_due: std::time::Instant::now() + std::time::Duration::from_secs(600),
                    },
                    commit_batch_max,
                    observer,
                );
            })
            .map_err(|e| StoreError::failed(format!("cannot start the writer: {e}")))?;
        Ok(SqliteStore {
            path: path.to_owned(),
            writer: Mutex::new(Some(sender)),
            shadow_writes,
            writer_thread: Mutex::new(Some(writer_thread)),
            readers: Mutex::new(Vec::new()),
            fingerprint_key,
            host: Mutex::new(None),
            held: Mutex::new(Some(held)),
            routes: std::sync::RwLock::new(EventRoutes::default()),
            personal,
        })
    }

    /// Opens an existing database for reading only (`payrules audit verify`, backtest):
    /// writes fail as [`StoreError::Closed`].
    pub fn open_existing(path: &Path, master: MasterKeys) -> Result<SqliteStore, StoreError> {
        if !path.is_file() {
            return Err(StoreError::failed(format!(
                "{}: no store there",
                path.display()
            )));
        }
        let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY)
            .map_err(|e| StoreError::failed(format!("{}: {e}", path.display())))?;
        configure(&conn)?;
        let version: usize = conn
            .pragma_query_value(None, "user_version", |r| r.get::<_, i64>(0))?
            .try_into()
            .unwrap_or(usize::MAX);
        if version != MIGRATIONS.len() {
            return Err(StoreError::failed(format!(
                "{}: schema version {version}, this payrules reads {}",
                path.display(),
                MIGRATIONS.len()
            )));
        }
        let personal = PersonalData::new(master);
        personal
            .absorb(&data_keys(&conn)?)
            .map_err(|e| StoreError::failed(format!("{}: {e}", path.display())))?;
        let fingerprint_key = [0; 32];
        let (shadow_writes, _) = mpsc::sync_channel(0);
        Ok(SqliteStore {
            path: path.to_owned(),
            writer: Mutex::new(None),
            shadow_writes,
            writer_thread: Mutex::new(None),
            readers: Mutex::new(vec![conn]),
            fingerprint_key,
            host: Mutex::new(None),
            held: Mutex::new(None),
            routes: std::sync::RwLock::new(EventRoutes::default()),
            personal,
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn routes(&self) -> std::sync::RwLockReadGuard<'_, EventRoutes> {
        self.routes.read().unwrap_or_else(|p| p.into_inner())
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

    /// Runs `work` on a reader on a blocking thread.
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
        .map_err(|e| StoreError::failed(format!("a read task failed: {e}")))?;
        self.give_back(conn);
        result
    }

    /// Runs `work` on a reader on this thread: for primary-key look-ups of a few
    /// microseconds, which every submission makes (a hop to a blocking thread cost more
    /// than the read: no-rules throughput 6.0k → 9.4k/s when it moved), and for the
    /// blocking methods.
    fn read_here<T>(
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

impl Store for SqliteStore {
    fn fingerprint(&self, canonical_payload: &[u8]) -> [u8; 32] {
        keyed_fingerprint(&self.fingerprint_key, canonical_payload)
    }

    /// One process writes a SQLite store (the file is locked by the process that serves
    /// it), so the service's in-process hold of a key is its claim: no row, no token;
    /// only the look-up of the key's record.
    fn claim<'a>(&'a self, principal: &'a str, key: &'a str, _: u64) -> StoreFuture<'a, Claim> {
        Box::pin(async move {
            Ok(match self.idempotency(principal, key).await? {
                Some(record) => Claim::Recorded(record),
                None => Claim::Held { token: None },
            })
        })
    }

    fn release<'a>(&'a self, _: &'a str, _: &'a str, _: i64) -> StoreFuture<'a, ()> {
        Box::pin(async { Ok(()) })
    }

    fn commit(&self, decision: NewDecision) -> StoreFuture<'_, ()> {
        Box::pin(async move {
            let write = Write::decision(decision, &self.routes(), &self.personal)?;
            self.send(write).await
        })
    }

    fn commit_message(&self, message: NewMessage) -> StoreFuture<'_, ()> {
        Box::pin(async move {
            let write = Write::message(message, &self.routes(), &self.personal)?;
            self.send(write).await
        })
    }

    fn audit_event<'a>(
        &'a self,
        action: &'a str,
        subject: &'a str,
        detail: &'a serde_json::Value,
    ) -> StoreFuture<'a, ()> {
        Box::pin(self.send(Write::event(action, subject, detail)))
    }

    fn idempotency<'a>(
        &'a self,
        principal: &'a str,
        key: &'a str,
    ) -> StoreFuture<'a, Option<IdempotencyRecord>> {
        Box::pin(async move {
            let found = self.read_here(|conn| {
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
        })
    }

    fn message<'a>(
        &'a self,
        principal: &'a str,
        message_id: &'a str,
    ) -> StoreFuture<'a, Option<StoredMessage>> {
        Box::pin(async move {
            let found = self.read_here(|conn| {
                fingerprinted(
                    conn,
                    "SELECT fingerprint, report FROM messages \
                     WHERE principal = ?1 AND message_id = ?2",
                    principal,
                    message_id,
                )
            })?;
            found
                .map(|(fingerprint, report)| {
                    Ok(StoredMessage {
                        fingerprint,
                        report: self
                            .personal
                            .open(&context::report(principal, message_id), &report)?,
                    })
                })
                .transpose()
        })
    }

    fn payment<'a>(&'a self, payment_id: &'a str) -> StoreFuture<'a, Option<StoredPayment>> {
        let id = payment_id.to_owned();
        let personal = Arc::clone(&self.personal);
        Box::pin(self.read(move |conn| {
            let found = conn
                .prepare_cached(&format!(
                    "SELECT p.id, p.received_at_ms, p.submitted_by, p.payment, p.decision, \
                     {REVIEW_COLUMNS} FROM payments p LEFT JOIN reviews r ON r.payment_id = p.id \
                     WHERE p.id = ?1"
                ))?
                .query_row(params![id], |row| {
                    Ok((
                        row.get::<_, String>(0)?,
                        row.get::<_, i64>(1)?,
                        row.get::<_, String>(2)?,
                        row.get::<_, String>(3)?,
                        row.get::<_, String>(4)?,
                        review_at(row, 5, Some(&personal))?,
                    ))
                })
                .optional()?;
            found
                .map(
                    |(payment_id, received, submitted_by, payment, decision, review)| {
                        let decision = opened_decision(&personal, &payment_id, &decision)?;
                        Ok(StoredPayment {
                            payment: stored_payment(&personal, &payment_id, &payment)?,
                            decision: serde_json::from_str(&decision).map_err(|e| {
                                StoreError::failed(format!("a stored decision: {e}"))
                            })?,
                            decision_sha256: super::audit::sha256_hex(&decision),
                            payment_id,
                            received_at_unix_ms: received,
                            submitted_by,
                            review: review.transpose().map_err(StoreError::failed)?,
                        })
                    },
                )
                .transpose()
        }))
    }

    fn review(&self, review: Review) -> StoreFuture<'_, ()> {
        let write = Write::review(review, &self.routes(), &self.personal);
        Box::pin(async move { self.send(write?).await })
    }

    fn reviews(&self, query: ReviewQuery) -> StoreFuture<'_, ReviewPage> {
        let personal = Arc::clone(&self.personal);
        Box::pin(self.read(move |conn| reviews(conn, &query, &personal)))
    }

    fn reviews_of<'a>(&'a self, payment_ids: &'a [String]) -> StoreFuture<'a, Vec<Review>> {
        let ids = serde_json::to_string(payment_ids).unwrap_or_else(|_| "[]".to_owned());
        let personal = Arc::clone(&self.personal);
        Box::pin(self.read(move |conn| {
            let mut statement = conn.prepare_cached(&format!(
                "SELECT {REVIEW_COLUMNS} FROM reviews r \
                 WHERE r.payment_id IN (SELECT value FROM json_each(?1))"
            ))?;
            let rows =
                statement.query_map(params![ids], |row| review_at(row, 0, Some(&personal)))?;
            let mut reviews = Vec::new();
            for row in rows {
                if let Some(review) = row? {
                    reviews.push(review.map_err(StoreError::failed)?);
                }
            }
            Ok(reviews)
        }))
    }

    fn list(&self, query: ListQuery) -> StoreFuture<'_, Page> {
        Box::pin(self.read(move |conn| list(conn, &query)))
    }

    fn audit_entries(&self, after_seq: i64, limit: u32) -> StoreFuture<'_, Vec<AuditEntry>> {
        Box::pin(self.read(move |conn| {
            let mut statement = conn.prepare_cached(
                "SELECT seq, at_ms, actor, action, subject, detail, prev_hash, hash, key_id, mac \
                 FROM audit_log WHERE seq > ?1 ORDER BY seq LIMIT ?2",
            )?;
            let rows = statement.query_map(
                params![after_seq, limit.clamp(1, LIST_LIMIT_MAX)],
                audit_row,
            )?;
            rows.map(|row| row?.map_err(StoreError::failed))
                .collect::<Result<Vec<_>, _>>()
        }))
    }

    fn audit_entries_of<'a>(
        &'a self,
        actions: &'a [&'a str],
        limit: u32,
    ) -> StoreFuture<'a, Vec<AuditEntry>> {
        let actions = serde_json::to_string(actions).unwrap_or_else(|_| "[]".to_owned());
        Box::pin(self.read(move |conn| {
            let mut statement = conn.prepare_cached(
                "SELECT seq, at_ms, actor, action, subject, detail, prev_hash, hash, key_id, mac \
                 FROM audit_log WHERE action IN (SELECT value FROM json_each(?1)) \
                 ORDER BY seq DESC LIMIT ?2",
            )?;
            let rows =
                statement.query_map(params![actions, limit.clamp(1, LIST_LIMIT_MAX)], audit_row)?;
            rows.map(|row| row?.map_err(StoreError::failed))
                .collect::<Result<Vec<_>, _>>()
        }))
    }

    fn expire_idempotency(&self, before_unix_ms: i64) -> StoreFuture<'_, ()> {
        Box::pin(self.send(Write::Expire { before_unix_ms }))
    }

    fn erase_personal_data(&self, before_day: i64, retention_days: u32) -> StoreFuture<'_, ()> {
        Box::pin(async move {
            self.send(Write::Erase {
                before_day,
                retention_days,
            })
            .await?;
            // The keys erased are forgotten here too (the writer zeroed their old bytes in
            // the file and emptied the write-ahead log of them).
            let keys = self.read(data_keys);
            self.personal
                .absorb(&keys.await?)
                .map_err(StoreError::failed)
        })
    }

    /// Queues the decision for the writer, which inserts it between live commits. Waits
    /// only while `SHADOW_PENDING_MAX` are already queued (the shadow's own thread calls
    /// it, so a writer that falls behind slows the shadow, never the live path).
    fn record_shadow(&self, decision: &Decision, shadow_version: &str) -> Result<(), StoreError> {
        let row = ShadowRow::new(decision, shadow_version, &self.personal)?;
        self.shadow_writes.send(row).map_err(|_| StoreError::Closed)
    }

    fn for_each_shadowed(
        &self,
        shadow_version: &str,
        visit: &mut dyn FnMut(Decision, Decision),
    ) -> Result<(), StoreError> {
        self.read_here(|conn| {
            let mut statement = conn.prepare(
                "SELECT p.id, p.decision, s.decision FROM shadow_decisions s \
                 JOIN payments p ON p.id = s.payment_id \
                 WHERE s.shadow_version = ?1 ORDER BY s.seq",
            )?;
            let mut rows = statement.query(params![shadow_version])?;
            while let Some(row) = rows.next()? {
                let id = row.get::<_, String>(0)?;
                let live = unless_erased(stored_decision(
                    &self.personal,
                    &id,
                    &row.get::<_, String>(1)?,
                ))?;
                let shadow = unless_erased(stored_shadow_decision(
                    &self.personal,
                    &id,
                    shadow_version,
                    &row.get::<_, String>(2)?,
                ))?;
                // A pair whose personal data was erased is past comparing.
                let (Some(live), Some(shadow)) = (live, shadow) else {
                    continue;
                };
                visit(live, shadow);
            }
            Ok(())
        })
    }

    fn shadowed<'a>(
        &'a self,
        payment_id: &'a str,
        shadow_version: &'a str,
    ) -> StoreFuture<'a, Option<Decision>> {
        let (id, version) = (payment_id.to_owned(), shadow_version.to_owned());
        let personal = Arc::clone(&self.personal);
        Box::pin(self.read(move |conn| {
            let stored: Option<String> = conn
                .prepare_cached(
                    "SELECT decision FROM shadow_decisions \
                     WHERE payment_id = ?1 AND shadow_version = ?2",
                )?
                .query_row(params![id, version], |row| row.get(0))
                .optional()?;
            match stored {
                None => Ok(None),
                Some(stored) => {
                    unless_erased(stored_shadow_decision(&personal, &id, &version, &stored))
                }
            }
        }))
    }

    fn accepted_since(&self, since_unix_ms: i64) -> Result<Accepted, StoreError> {
        self.read_here(|conn| {
            // One read transaction: the head and the payments of one snapshot.
            let tx = conn.unchecked_transaction()?;
            let through_seq: i64 =
                tx.query_row("SELECT COALESCE(MAX(seq), 0) FROM audit_log", [], |row| {
                    row.get(0)
                })?;
            // Accepted as decided, then approved after review (at their approval).
            let mut statement = tx.prepare(
                "SELECT id, payment, decision, NULL FROM payments \
                 WHERE status = 'accepted' AND received_at_ms >= ?1 \
                 UNION ALL \
                 SELECT p.id, p.payment, p.decision, r.reviewed_at_ms FROM reviews r \
                 JOIN payments p ON p.id = r.payment_id \
                 WHERE r.verdict = 'approve' AND r.reviewed_at_ms >= ?1",
            )?;
            let rows = statement.query_map(params![since_unix_ms], |row| {
                Ok((
                    row.get::<_, String>(0)?,
                    row.get::<_, String>(1)?,
                    row.get::<_, String>(2)?,
                    row.get::<_, Option<i64>>(3)?,
                ))
            })?;
            let mut payments = Vec::new();
            for row in rows {
                let (id, payment, decision, approved_at) = row?;
                // Erased (past its retention, which is longer than any velocity window).
                let Some(payment) = unless_erased(stored_payment(&self.personal, &id, &payment))?
                else {
                    continue;
                };
                let at = match approved_at {
                    Some(at) => at,
                    None => stored_decision(&self.personal, &id, &decision)?.decided_at_unix_ms,
                };
                payments.push((id, payment, at));
            }
            Ok(Accepted {
                payments,
                counted: Vec::new(),
                through_seq,
            })
        })
    }

    /// One process writes a SQLite store: no other host to follow.
    fn shared(&self) -> bool {
        false
    }

    fn accepted_after<'a>(
        &'a self,
        after_seq: i64,
        limit: u32,
        counted: &'a (dyn Fn(&str) -> bool + Sync),
    ) -> StoreFuture<'a, Accepted> {
        Box::pin(async move {
            // An accepted decision's entry, or an approval's (counted at its instant). (A
            // SQLite store has no other host to follow: this reads the payments whole.)
            let rows = self
                .read(move |conn| {
                    let mut statement = conn.prepare_cached(
                        "SELECT a.seq, p.id, p.payment, p.decision, r.reviewed_at_ms \
                         FROM audit_log a \
                         LEFT JOIN reviews r ON a.action = ?4 AND r.payment_id = a.subject \
                             AND r.verdict = 'approve' \
                         LEFT JOIN payments p ON p.id = a.subject \
                             AND ((a.action = ?1 AND p.status = 'accepted') \
                                  OR r.payment_id IS NOT NULL) \
                         WHERE a.seq > ?2 ORDER BY a.seq LIMIT ?3",
                    )?;
                    let rows = statement.query_map(
                        params![DECIDED, after_seq, limit.clamp(1, LIST_LIMIT_MAX), REVIEWED],
                        |row| {
                            Ok((
                                row.get::<_, i64>(0)?,
                                row.get::<_, Option<String>>(1)?,
                                row.get::<_, Option<String>>(2)?,
                                row.get::<_, Option<String>>(3)?,
                                row.get::<_, Option<i64>>(4)?,
                            ))
                        },
                    )?;
                    Ok(rows.collect::<Result<Vec<_>, _>>()?)
                })
                .await?;
            let mut accepted = Accepted {
                payments: Vec::new(),
                counted: Vec::new(),
                through_seq: after_seq,
            };
            for (seq, id, payment, decision, approved_at) in rows {
                accepted.through_seq = seq;
                if let (Some(id), Some(payment), Some(decision)) = (id, payment, decision) {
                    if counted(&id) {
                        accepted.counted.push(id);
                        continue;
                    }
                    let Some(payment) =
                        unless_erased(stored_payment(&self.personal, &id, &payment))?
                    else {
                        continue;
                    };
                    let at = match approved_at {
                        Some(at) => at,
                        None => stored_decision(&self.personal, &id, &decision)?.decided_at_unix_ms,
                    };
                    accepted.payments.push((id, payment, at));
                }
            }
            Ok(accepted)
        })
    }

    fn for_each_decided(
        &self,
        since_unix_ms: i64,
        until_unix_ms: i64,
        visit: &mut dyn FnMut(Payment, Decision),
    ) -> Result<(), StoreError> {
        self.read_here(|conn| {
            let mut statement = conn.prepare(
                "SELECT id, payment, decision FROM payments \
                 WHERE received_at_ms >= ?1 AND received_at_ms < ?2 ORDER BY seq",
            )?;
            let mut rows = statement.query(params![since_unix_ms, until_unix_ms])?;
            while let Some(row) = rows.next()? {
                let id = row.get::<_, String>(0)?;
                // A payment whose personal data was erased cannot be replayed.
                let payment = unless_erased(stored_payment(
                    &self.personal,
                    &id,
                    &row.get::<_, String>(1)?,
                ))?;
                let decision = unless_erased(stored_decision(
                    &self.personal,
                    &id,
                    &row.get::<_, String>(2)?,
                ))?;
                if let (Some(payment), Some(decision)) = (payment, decision) {
                    visit(payment, decision);
                }
            }
            Ok(())
        })
    }

    fn for_each_audit_entry(
        &self,
        visit: &mut dyn FnMut(AuditEntry, Option<EntryRow>) -> bool,
    ) -> Result<(), StoreError> {
        self.read_here(|conn| {
            let mut reviewed = conn.prepare(&format!(
                "SELECT {REVIEW_COLUMNS}, p.decision FROM reviews r \
                 JOIN payments p ON p.id = r.payment_id WHERE r.payment_id = ?1"
            ))?;
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
                let entry = audit_row(row)?.map_err(StoreError::failed)?;
                let row = if entry.action == DECIDED {
                    payment
                        .query_row(params![entry.subject], |r| {
                            Ok(DecidedRow {
                                payment: r.get(0)?,
                                decision: r.get(1)?,
                                submitted_by: r.get(2)?,
                                status: r.get(3)?,
                                rule_set_version: r.get(4)?,
                                amount: r.get(5)?,
                                currency: r.get(6)?,
                                end_to_end_id: r.get(7)?,
                                unopened: None,
                            })
                        })
                        .optional()?
                        .map(|row| opened_row(&self.personal, &entry.subject, row))
                        .transpose()?
                        .map(EntryRow::Decided)
                } else if entry.action == REVIEWED || entry.action == REVIEW_EXPIRED {
                    let found = reviewed
                        .query_row(params![entry.subject], |r| {
                            Ok((review_at(r, 0, None)?, r.get::<_, String>(8)?))
                        })
                        .optional()?;
                    match found {
                        Some((Some(review), decision)) => {
                            Some(EntryRow::Reviewed(opened_review_row(
                                &self.personal,
                                review.map_err(StoreError::failed)?,
                                &decision,
                            )?))
                        }
                        _ => None,
                    }
                } else {
                    None
                };
                if !visit(entry, row) {
                    break;
                }
            }
            Ok(())
        })
    }

    fn first_payment_without_entry(&self) -> Result<Option<String>, StoreError> {
        self.read_here(|conn| {
            Ok(conn
                .query_row(
                    "SELECT id FROM payments WHERE id NOT IN \
                     (SELECT subject FROM audit_log WHERE action = ?1) ORDER BY seq LIMIT 1",
                    params![DECIDED],
                    |row| row.get(0),
                )
                .optional()?)
        })
    }

    fn first_review_without_entry(&self) -> Result<Option<String>, StoreError> {
        self.read_here(|conn| {
            Ok(conn
                .query_row(
                    "SELECT payment_id FROM reviews WHERE payment_id NOT IN \
                     (SELECT subject FROM audit_log WHERE action IN (?1, ?2)) \
                     ORDER BY seq LIMIT 1",
                    params![REVIEWED, REVIEW_EXPIRED],
                    |row| row.get(0),
                )
                .optional()?)
        })
    }

    /// One process serves a SQLite store: its host is kept in memory.
    fn heartbeat<'a>(&'a self, host: &'a HostBeat) -> StoreFuture<'a, ()> {
        *self.host.lock().unwrap_or_else(|p| p.into_inner()) = Some((host.clone(), now_unix_ms()));
        Box::pin(async { Ok(()) })
    }

    fn hosts(&self) -> StoreFuture<'_, Vec<HostRow>> {
        let host = self.host.lock().unwrap_or_else(|p| p.into_inner()).clone();
        Box::pin(async move {
            Ok(host
                .map(|(beat, at)| HostRow {
                    beat,
                    heartbeat_unix_ms: at,
                    heartbeat_age_ms: now_unix_ms().saturating_sub(at),
                })
                .into_iter()
                .collect())
        })
    }

    fn leave<'a>(&'a self, _: &'a str) -> StoreFuture<'a, ()> {
        *self.host.lock().unwrap_or_else(|p| p.into_inner()) = None;
        Box::pin(async { Ok(()) })
    }

    fn route_events(&self, routes: EventRoutes) {
        *self.routes.write().unwrap_or_else(|p| p.into_inner()) = routes;
    }

    fn due_deliveries<'a>(
        &'a self,
        endpoints: &'a [String],
        now_unix_ms: i64,
        limit: u32,
    ) -> StoreFuture<'a, Vec<Delivery>> {
        let endpoints = serde_json::to_string(endpoints).unwrap_or_else(|_| "[]".to_owned());
        Box::pin(self.read(move |conn| {
            let mut statement = conn.prepare_cached(
                "SELECT d.endpoint, d.seq, d.attempts, o.event_id, o.event_type, o.payment_id, \
                        o.payload \
                 FROM webhook_deliveries d JOIN outbox o ON o.seq = d.seq \
                 WHERE d.state = 'pending' AND d.next_attempt_ms <= ?1 \
                   AND d.endpoint IN (SELECT value FROM json_each(?3)) \
                   AND NOT EXISTS (SELECT 1 FROM webhook_deliveries e \
                       WHERE e.endpoint = d.endpoint AND e.payment_id = d.payment_id \
                         AND e.seq < d.seq AND e.state = 'pending') \
                 ORDER BY d.next_attempt_ms, d.seq, d.endpoint LIMIT ?2",
            )?;
            let rows = statement.query_map(params![now_unix_ms, limit, endpoints], |row| {
                Ok(Delivery {
                    endpoint: row.get(0)?,
                    seq: row.get(1)?,
                    attempts: row.get(2)?,
                    event_id: row.get(3)?,
                    event_type: row.get(4)?,
                    payment_id: row.get(5)?,
                    payload: row.get(6)?,
                })
            })?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        }))
    }

    fn record_deliveries(&self, outcomes: Vec<DeliveryOutcome>) -> StoreFuture<'_, ()> {
        Box::pin(self.send(Write::Deliveries(outcomes)))
    }

    fn dead_letters<'a>(
        &'a self,
        endpoint: Option<&'a str>,
        after_seq: i64,
        limit: u32,
    ) -> StoreFuture<'a, Vec<DeadLetter>> {
        let endpoint = endpoint.map(str::to_owned);
        Box::pin(self.read(move |conn| {
            let mut statement = conn.prepare_cached(
                "SELECT d.endpoint, d.seq, o.event_id, o.event_type, o.payment_id, d.attempts, \
                        d.last_attempt_ms, d.last_error \
                 FROM webhook_deliveries d JOIN outbox o ON o.seq = d.seq \
                 WHERE d.state = 'dead' AND (?1 IS NULL OR d.endpoint = ?1) AND d.seq > ?2 \
                 ORDER BY d.seq, d.endpoint LIMIT ?3",
            )?;
            let rows = statement.query_map(
                params![endpoint, after_seq, limit.clamp(1, LIST_LIMIT_MAX)],
                |row| {
                    Ok(DeadLetter {
                        endpoint: row.get(0)?,
                        seq: row.get(1)?,
                        event_id: row.get(2)?,
                        event_type: row.get(3)?,
                        payment_id: row.get(4)?,
                        attempts: row.get(5)?,
                        last_attempt_ms: row.get(6)?,
                        last_error: row.get(7)?,
                    })
                },
            )?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        }))
    }

    fn delivery_backlog(&self) -> StoreFuture<'_, Vec<EndpointBacklog>> {
        Box::pin(self.read(|conn| {
            let mut statement = conn.prepare_cached(
                "SELECT endpoint, SUM(state = 'pending'), SUM(state = 'dead') \
                 FROM webhook_deliveries GROUP BY endpoint ORDER BY endpoint",
            )?;
            let rows = statement.query_map([], |row| {
                Ok(EndpointBacklog {
                    endpoint: row.get(0)?,
                    pending: row.get::<_, i64>(1)?.try_into().unwrap_or(0),
                    dead: row.get::<_, i64>(2)?.try_into().unwrap_or(0),
                })
            })?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        }))
    }

    fn redeliver<'a>(
        &'a self,
        endpoint: &'a str,
        event_id: Option<&'a str>,
    ) -> StoreFuture<'a, ()> {
        Box::pin(self.send(Write::Redeliver {
            endpoint: endpoint.to_owned(),
            event_id: event_id.map(str::to_owned),
        }))
    }

    /// One process serves a SQLite store: it relays.
    fn relay_lease<'a>(&'a self, _: &'a str, _: u64) -> StoreFuture<'a, bool> {
        Box::pin(async { Ok(true) })
    }

    fn record_rollup(&self, rollup: Rollup) -> StoreFuture<'_, ()> {
        Box::pin(self.send(Write::Rollup(rollup)))
    }

    fn rollups<'a>(
        &'a self,
        span_ms: i64,
        from_unix_ms: i64,
        to_unix_ms: i64,
        host_id: Option<&'a str>,
    ) -> StoreFuture<'a, Vec<Rollup>> {
        let host_id = host_id.map(str::to_owned);
        Box::pin(self.read(move |conn| {
            let mut statement = conn.prepare_cached(
                "SELECT host_id, start_ms, tally FROM rollups \
                 WHERE span_ms = ?1 AND start_ms >= ?2 AND start_ms < ?3 \
                   AND (?4 IS NULL OR host_id = ?4) \
                 ORDER BY start_ms, host_id",
            )?;
            let rows = statement.query_map(
                params![span_ms, from_unix_ms, to_unix_ms, host_id],
                |row| {
                    Ok(Rollup {
                        host_id: row.get(0)?,
                        span_ms,
                        start_unix_ms: row.get(1)?,
                        tally: row.get(2)?,
                    })
                },
            )?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        }))
    }

    fn prune_rollups(&self, span_ms: i64, before_unix_ms: i64) -> StoreFuture<'_, ()> {
        Box::pin(self.send(Write::PruneRollups {
            span_ms,
            before_unix_ms,
        }))
    }

    /// Stops taking decisions, commits those queued, and waits for the writer to finish.
    fn close(&self) {
        drop(self.writer.lock().unwrap_or_else(|p| p.into_inner()).take());
        if let Some(thread) = self
            .writer_thread
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
        {
            let _ = thread.join();
        }
        drop(self.held.lock().unwrap_or_else(|p| p.into_inner()).take());
    }

    fn location(&self) -> String {
        self.path.display().to_string()
    }
}

impl Drop for SqliteStore {
    fn drop(&mut self) {
        self.close();
    }
}

/// A page of payments, newest first.
fn list(conn: &Connection, query: &ListQuery) -> Result<Page, StoreError> {
    use rusqlite::types::Value;
    let limit = query.limit.clamp(1, LIST_LIMIT_MAX);
    // Only the filters given, so the planner can use the index of the one that selects
    // (`?n IS NULL OR …` would hide it).
    let mut conditions: Vec<String> = Vec::new();
    let mut values: Vec<Value> = Vec::new();
    let mut filter = |condition: &str, value: Value| {
        values.push(value);
        conditions.push(condition.replace('?', &format!("?{}", values.len())));
    };
    if let Some(status) = query.status {
        filter("p.status = ?", Value::Text(status_name(status).to_owned()));
    }
    if let Some(since) = query.since_unix_ms {
        filter("p.received_at_ms >= ?", Value::Integer(since));
    }
    if let Some(until) = query.until_unix_ms {
        filter("p.received_at_ms < ?", Value::Integer(until));
    }
    if let Some(submitted_by) = &query.submitted_by {
        filter("p.submitted_by = ?", Value::Text(submitted_by.clone()));
    }
    if let Some(end_to_end_id) = &query.end_to_end_id {
        filter("p.end_to_end_id = ?", Value::Text(end_to_end_id.clone()));
    }
    if let Some(version) = &query.rule_set_version {
        filter(
            &format!("substr(p.rule_set_version, 1, {}) = ?", version.len()),
            Value::Text(version.clone()),
        );
    }
    if let Some(rule) = &query.rule_fired {
        filter(
            "instr(p.rules_fired, ' ' || ? || ' ') > 0",
            Value::Text(rule.clone()),
        );
    }
    if let Some(cursor) = query.cursor {
        filter("p.seq < ?", Value::Integer(cursor));
    }
    values.push(Value::Integer(i64::from(limit)));
    let sql = format!(
        "SELECT p.seq, p.id, p.received_at_ms, p.submitted_by, p.end_to_end_id, p.amount, \
                p.currency, p.status, p.rule_set_version, r.verdict \
         FROM payments p LEFT JOIN reviews r ON r.payment_id = p.id \
         {} ORDER BY p.seq DESC LIMIT ?{}",
        if conditions.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", conditions.join(" AND "))
        },
        values.len()
    );
    let mut statement = conn.prepare_cached(&sql)?;
    let mut last_seq = None;
    let rows = statement.query_map(rusqlite::params_from_iter(values), |row| {
        Ok((row.get::<_, i64>(0)?, summary_at(row, 1)?))
    })?;
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
}

/// A payment's summary from the columns `id, received_at_ms, submitted_by, end_to_end_id,
/// amount, currency, status, rule_set_version` and its review's verdict (or NULL),
/// starting at column `at`.
fn summary_at(row: &rusqlite::Row<'_>, at: usize) -> rusqlite::Result<PaymentSummary> {
    let status: String = row.get(at + 6)?;
    let verdict: Option<String> = row.get(at + 8)?;
    let unreadable = |what: String| {
        rusqlite::Error::FromSqlConversionFailure(at, rusqlite::types::Type::Text, what.into())
    };
    let status =
        parse_status(&status).ok_or_else(|| unreadable(format!("unknown status {status:?}")))?;
    let verdict = match verdict.as_deref().map(Verdict::parse) {
        None => None,
        Some(Some(verdict)) => Some(verdict),
        Some(None) => return Err(unreadable(format!("unknown verdict {verdict:?}"))),
    };
    Ok(PaymentSummary {
        payment_id: row.get(at)?,
        received_at_unix_ms: row.get(at + 1)?,
        submitted_by: row.get(at + 2)?,
        end_to_end_id: row.get(at + 3)?,
        amount: row.get(at + 4)?,
        currency: row.get(at + 5)?,
        status,
        final_status: final_status(status, verdict),
        rule_set_version: row.get(at + 7)?,
    })
}

/// A page of held payments: the open ones oldest first, or the reviewed ones most recently
/// reviewed first.
fn reviews(
    conn: &Connection,
    query: &ReviewQuery,
    personal: &PersonalData,
) -> Result<ReviewPage, StoreError> {
    let limit = query.limit.clamp(1, LIST_LIMIT_MAX);
    let sql = match query.state {
        ReviewState::Open => format!(
            "SELECT p.seq, p.id, p.received_at_ms, p.submitted_by, p.end_to_end_id, p.amount, \
                    p.currency, p.status, p.rule_set_version, NULL, p.decision, {REVIEW_COLUMNS} \
             FROM payments p LEFT JOIN reviews r ON r.payment_id = p.id \
             WHERE p.status = 'pending_review' AND r.payment_id IS NULL \
               AND (?1 IS NULL OR p.submitted_by = ?1) \
               AND (?2 IS NULL OR p.received_at_ms >= ?2) \
               AND (?3 IS NULL OR p.received_at_ms < ?3) \
               AND (?4 IS NULL OR p.seq > ?4) \
             ORDER BY p.seq LIMIT ?5"
        ),
        ReviewState::Resolved => format!(
            "SELECT r.seq, p.id, p.received_at_ms, p.submitted_by, p.end_to_end_id, p.amount, \
                    p.currency, p.status, p.rule_set_version, r.verdict, p.decision, \
                    {REVIEW_COLUMNS} \
             FROM reviews r JOIN payments p ON p.id = r.payment_id \
             WHERE (?1 IS NULL OR p.submitted_by = ?1) \
               AND (?2 IS NULL OR p.received_at_ms >= ?2) \
               AND (?3 IS NULL OR p.received_at_ms < ?3) \
               AND (?4 IS NULL OR r.seq < ?4) \
             ORDER BY r.seq DESC LIMIT ?5"
        ),
    };
    let mut statement = conn.prepare_cached(&sql)?;
    let rows = statement.query_map(
        params![
            query.submitted_by,
            query.since_unix_ms,
            query.received_before_unix_ms,
            query.cursor,
            limit
        ],
        |row| {
            Ok((
                row.get::<_, i64>(0)?,
                summary_at(row, 1)?,
                row.get::<_, String>(10)?,
                review_at(row, 11, Some(personal))?,
            ))
        },
    )?;
    let mut items = Vec::new();
    let mut last_seq = None;
    for row in rows {
        let (seq, summary, decision, review) = row?;
        last_seq = Some(seq);
        let review = review.transpose().map_err(StoreError::failed)?;
        items.push(review_item(personal, summary, &decision, review)?);
    }
    let next_cursor = if items.len() == limit as usize {
        last_seq
    } else {
        None
    };
    Ok(ReviewPage { items, next_cursor })
}

/// The columns of a review (table `r`), as [`review_at`] reads them.
const REVIEW_COLUMNS: &str = "r.payment_id, r.verdict, r.reason_code, r.note, r.reviewer, \
     r.reviewed_at_ms, r.decision_sha256, r.expired";

/// The review in [`REVIEW_COLUMNS`] from column `at`: `None` when there is none (a LEFT
/// JOIN found none), an error text when its verdict is unreadable.
#[allow(clippy::type_complexity)]
fn review_at(
    row: &rusqlite::Row<'_>,
    at: usize,
    personal: Option<&PersonalData>,
) -> rusqlite::Result<Option<Result<Review, String>>> {
    let Some(payment_id) = row.get::<_, Option<String>>(at)? else {
        return Ok(None);
    };
    let verdict: String = row.get(at + 1)?;
    let Some(verdict) = Verdict::parse(&verdict) else {
        return Ok(Some(Err(format!(
            "the review of {payment_id}: unknown verdict {verdict:?}"
        ))));
    };
    let note = match (row.get::<_, Option<String>>(at + 3)?, personal) {
        (Some(sealed), Some(personal)) => {
            match unless_erased(personal.open(&context::note(&payment_id), &sealed)) {
                Ok(note) => note,
                Err(e) => return Ok(Some(Err(e.to_string()))),
            }
        }
        (note, _) => note,
    };
    Ok(Some(Ok(Review {
        payment_id,
        verdict,
        reason_code: row.get(at + 2)?,
        note,
        reviewer: row.get(at + 4)?,
        reviewed_at_unix_ms: row.get(at + 5)?,
        decision_sha256: row.get(at + 6)?,
        expired: row.get(at + 7)?,
    })))
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
                .map_err(|_| StoreError::failed("a stored fingerprint is not 32 bytes"))?;
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
        Err(e) => Err(StoreError::failed(format!("{}: {e}", path.display()))),
    }
}

/// Locks the database file for this process, or says which file another one serves.
fn hold(path: &Path) -> Result<std::fs::File, StoreError> {
    let file = std::fs::File::open(path)
        .map_err(|e| StoreError::failed(format!("{}: {e}", path.display())))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(StoreError::failed(format!(
            "{} is in use by another payrules process: one process serves a SQLite store \
             (several hosts share a PostgreSQL store: store.url)",
            path.display()
        ))),
        Err(std::fs::TryLockError::Error(e)) => Err(StoreError::failed(format!(
            "{}: cannot lock it: {e}",
            path.display()
        ))),
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
        return Err(StoreError::failed(format!(
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
            .map_err(|_| StoreError::failed(format!("the secret {name} is not 32 bytes")));
    }
    let mut value = [0u8; 32];
    getrandom::fill(&mut value)
        .map_err(|e| StoreError::failed(format!("no randomness for a secret: {e}")))?;
    conn.execute(
        "INSERT INTO store_secrets (name, value) VALUES (?1, ?2)",
        params![name, value.as_slice()],
    )?;
    Ok(value)
}

#[cfg(test)]
mod tests {
    //! The store's conformance suite, on a SQLite file in a temporary directory.

    use super::*;
    use crate::store::audit_keys::CheckpointLog;
    use crate::store::conformance::{self, Harness, test_keys, test_master};

    fn harness(dir: &tempfile::TempDir) -> Harness {
        let path = dir.path().join("payrules.db");
        let checkpoint_file = dir.path().join("payrules-audit.checkpoints");
        let checkpoints = checkpoint_file.clone();
        let raw_dir = dir.path().to_owned();
        Harness {
            open: Box::new(move || {
                let sealing = AuditSealing {
                    keys: test_keys(),
                    checkpoints: CheckpointLog::open(&checkpoints, 1_000).expect("checkpoints"),
                    personal: PersonalData::new(test_master()),
                };
                Arc::new(SqliteStore::open(&path, 64, Arc::new(()), sealing).expect("opens"))
            }),
            keys: test_keys(),
            checkpoint_file,
            raw: Box::new(move || {
                let mut text = String::new();
                for file in ["payrules.db", "payrules.db-wal"] {
                    if let Ok(bytes) = std::fs::read(raw_dir.join(file)) {
                        text.push_str(&String::from_utf8_lossy(&bytes));
                    }
                }
                text
            }),
        }
    }

    macro_rules! conformance {
        ($($behaviour:ident),* $(,)?) => {$(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $behaviour() {
                let dir = tempfile::tempdir().expect("a directory");
                conformance::$behaviour(&harness(&dir)).await;
            }
        )*};
    }

    conformance!(
        a_commit_is_read_back_as_written,
        a_second_commit_under_a_used_key_records_nothing,
        message_ids_are_claimed_once,
        concurrent_commits_form_one_gap_free_chain,
        listings_filter_and_page_newest_first,
        listings_search_by_end_to_end_id_rule_set_and_rule_fired,
        shadow_decisions_are_read_beside_live_ones,
        a_reopened_store_keeps_everything,
        history_is_read_in_decision_order,
        idempotency_records_expire_and_their_payments_stay,
        accepted_payments_are_followed_in_chain_order,
        hosts_beat_and_leave,
        a_used_key_is_answered_with_its_record_not_claimed,
        a_held_payment_is_reviewed_once,
        concurrent_reviews_of_one_payment_record_exactly_one,
        approvals_count_in_velocity_from_their_instant,
        the_review_queue_pages_and_filters,
        events_are_written_with_what_they_announce_and_delivered_in_order,
        one_host_at_a_time_holds_the_relay_lease,
        personal_data_is_sealed_at_rest,
        erased_personal_data_reads_as_erased_and_the_chain_still_verifies,
        rollups_are_kept_per_host_and_span,
    );

    #[test]
    fn a_second_process_cannot_serve_the_same_file() {
        let dir = tempfile::tempdir().expect("a directory");
        let harness = harness(&dir);
        let store = (harness.open)();
        let sealing = || AuditSealing {
            keys: test_keys(),
            checkpoints: CheckpointLog::open(&dir.path().join("other.checkpoints"), 1_000)
                .expect("checkpoints"),
            personal: PersonalData::new(test_master()),
        };
        let path = dir.path().join("payrules.db");
        let second = SqliteStore::open(&path, 64, Arc::new(()), sealing());
        let error = second
            .err()
            .expect("refused while the first serves it")
            .to_string();
        assert!(
            error.contains("in use by another payrules process"),
            "{error}"
        );
        assert!(
            SqliteStore::open_existing(&path, test_master()).is_ok(),
            "reading (verify, backtest) is not serving"
        );
        store.close();
        SqliteStore::open(&path, 64, Arc::new(()), sealing()).expect("free once closed");
    }

    #[test]
    fn the_store_file_is_readable_by_its_owner_only() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("a directory");
        let store = (harness(&dir).open)();
        store.close();
        let mode = std::fs::metadata(dir.path().join("payrules.db"))
            .expect("the file")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}
