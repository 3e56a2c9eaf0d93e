//! The store for several hosts: payments, decisions, idempotency records, claims and the
//! audit log in one PostgreSQL database that every host writes.
//!
//! What makes several hosts one service is in the database, not in a host's memory:
//!
//! - **Decided once.** A request claims its idempotency key with a row
//!   (`idempotency_claims`): a lease on the database's clock and a fencing token from a
//!   sequence. A duplicate sent to another host meanwhile finds the claim held (409, as
//!   on one host); a claim whose host died is taken over when its lease ends, and that
//!   host's late commit is refused, because the commit removes the claim only if its
//!   token is still the key's. The idempotency record's primary key is the last word: two
//!   commits under one key cannot both land.
//! - **One chain.** Every transaction that appends to the audit log locks the one head
//!   row first, so entries are numbered without gaps in commit order whichever host
//!   writes them ([`writer`]).
//! - **Durable before 2xx.** Decisions commit with `synchronous_commit = on`, many per
//!   transaction, in two round trips per transaction, no savepoints.
//! - **Several hosts, one velocity.** [`Store::accepted_after`] is what each host follows
//!   of the others' accepted payments; `hosts` is the fleet's heartbeat table.
//!
//! Each host keeps one writer connection and a few reader connections (TLS, verified,
//! with [`PgSettings::tls_ca_file`]), on a small runtime
//! of the store's own (so the blocking methods work from any thread, and a connection
//! never depends on which runtime asked first). A broken connection is made again on the
//! next use; while the database cannot be reached, operations fail at once as
//! [`StoreError::Unavailable`] (answered 503 with `Retry-After`), and the service
//! recovers by itself when it is back.

mod schema;
mod writer;

use std::collections::HashMap;
use std::future::Future;
use std::str::FromStr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_postgres::types::Type;
use tokio_postgres::{Client, NoTls, Row};

use super::audit::AuditEntry;
use super::outbox::{
    DELIVERY_ERROR_CHARS_MAX, DeadLetter, Delivery, DeliveryOutcome, EndpointBacklog, EventRoutes,
};
use super::personal::{MasterKeys, PersonalData, Sealer, context};
use super::queue::{Job, ShadowRow, Write};
use super::{
    Accepted, AuditSealing, Claim, CommitObserver, DECIDED, DecidedRow, EntryRow, HostBeat,
    HostRow, IdempotencyRecord, LIST_LIMIT_MAX, ListQuery, NewDecision, NewMessage, Page,
    PaymentSummary, REVIEW_EXPIRED, REVIEWED, ReviewPage, ReviewQuery, ReviewState, Rollup, Store,
    StoreError, StoreFuture, StoredMessage, StoredPayment, decision_of, keyed_fingerprint,
    opened_decision, opened_review_row, opened_row, parse_status, review_item, status_name,
    stored_decision, stored_payment, stored_shadow_decision, unless_erased,
};
use crate::model::{Decision, Payment, Review, Verdict, final_status};
use writer::write_loop;

/// Reader connections per host (each pipelines many queries).
const READERS: usize = 4;
/// How long making a connection may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Shadow decisions waiting for the writer; past this, recording one waits.
const SHADOW_PENDING_MAX: usize = 4_096;
/// Rows read per round trip by the blocking methods (verify, backtest, the shadow report).
#[cfg(not(test))]
const PAGE_ROWS: i64 = 1_000;
/// In the tests, small pages: the conformance suite's chains of up to 61 entries are read
/// over many pages, so paging itself is tested.
#[cfg(test)]
const PAGE_ROWS: i64 = 7;

/// Where the store is and how to log in.
#[derive(Clone)]
pub struct PgSettings {
    /// `postgres://user@host:port/database` (or the key=value form); never a password.
    pub url: String,
    /// The password, read from a file or the environment by the caller.
    pub password: Option<String>,
    /// The most decisions committed in one transaction.
    pub commit_batch_max: usize,
    /// Who this host is, recorded on the claims it holds (e.g. `hostname:pid`).
    pub holder: String,
    /// TLS to the database, verified against the CA certificates in this PEM file (and
    /// the server's name or address): set, every connection is TLS or none is made.
    pub tls_ca_file: Option<std::path::PathBuf>,
    /// This host's certificate and key files (PEM), presented when the server asks for a
    /// client certificate (mutual TLS); only with `tls_ca_file`.
    pub tls_client: Option<(std::path::PathBuf, std::path::PathBuf)>,
}

/// What the store's tasks share.
pub(super) struct Inner {
    handle: tokio::runtime::Handle,
    writer_config: tokio_postgres::Config,
    reader_config: tokio_postgres::Config,
    readers: Vec<tokio::sync::Mutex<Option<Arc<Reader>>>>,
    next_reader: AtomicUsize,
    holder: String,
    tls: Option<tokio_postgres_rustls::MakeRustlsConnect>,
}

impl Inner {
    /// A new connection, made on the store's runtime (which drives it from then on).
    async fn connect(&self, reader: bool) -> Result<Client, StoreError> {
        let config = if reader {
            self.reader_config.clone()
        } else {
            self.writer_config.clone()
        };
        let handle = self.handle.clone();
        let tls = self.tls.clone();
        let connecting = self.handle.spawn(async move {
            match tls {
                Some(tls) => {
                    let (client, connection) = config.connect(tls).await?;
                    handle.spawn(drive(connection));
                    Ok::<_, tokio_postgres::Error>(client)
                }
                None => {
                    let (client, connection) = config.connect(NoTls).await?;
                    handle.spawn(drive(connection));
                    Ok(client)
                }
            }
        });
        // Whatever stops a connection being made (refused, the server starting or
        // shutting down, a database not allowing connections, a timeout) is a database
        // the service cannot reach right now: a retry may work.
        connecting
            .await
            .map_err(|_| StoreError::Closed)?
            .map_err(|error| StoreError::Unavailable {
                reason: format!("cannot connect: {}", with_causes(&error)),
            })
    }

    /// A reader connection (round robin), made again if it broke.
    async fn reader(&self) -> Result<Arc<Reader>, StoreError> {
        let at = self.next_reader.fetch_add(1, Ordering::Relaxed) % self.readers.len();
        let mut slot = self.readers[at].lock().await;
        if let Some(reader) = slot.as_ref().filter(|r| !r.client.is_closed()) {
            return Ok(Arc::clone(reader));
        }
        let client = self.connect(true).await?;
        let claim = client
            .prepare_typed(CLAIM, &[Type::TEXT, Type::TEXT, Type::TEXT, Type::INT8])
            .await
            .map_err(pg_error)?;
        let reader = Arc::new(Reader { client, claim });
        *slot = Some(Arc::clone(&reader));
        Ok(reader)
    }

    /// One query on a reader, its parameters typed (one round trip: parsed and planned
    /// each time, for what is not on a submission's path).
    async fn query(
        &self,
        sql: &str,
        params: &[(&(dyn tokio_postgres::types::ToSql + Sync), Type)],
    ) -> Result<Vec<Row>, StoreError> {
        let reader = self.reader().await?;
        reader
            .client
            .query_typed(sql, params)
            .await
            .map_err(pg_error)
    }
}

/// An error and its causes, `a: b: c` (a TLS failure says why: "error performing TLS
/// handshake: invalid peer certificate: UnknownIssuer").
fn with_causes(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(next) = cause {
        let more = next.to_string();
        if !text.ends_with(&more) {
            text = format!("{text}: {more}");
        }
        cause = next.source();
    }
    text
}

/// Drives a connection until it ends.
async fn drive<S, T>(connection: tokio_postgres::Connection<S, T>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    if let Err(error) = connection.await {
        tracing::warn!("a PostgreSQL connection ended: {error}");
    }
}

/// The TLS connector for a CA file: TLS 1.2 or 1.3 (rustls' safe defaults, the ring
/// provider), the server's certificate verified up to one of these CAs and for the host
/// name or address connected to.
/// With `client` (certificate and key files), this host's certificate is presented when
/// the server asks for one.
fn tls_for(
    ca_file: &std::path::Path,
    client: Option<&(std::path::PathBuf, std::path::PathBuf)>,
) -> Result<tokio_postgres_rustls::MakeRustlsConnect, StoreError> {
    let identity = client.map(|(certificate, key)| {
        (
            certificate.as_path(),
            key.as_path(),
            ("store.tls_client_certificate", "store.tls_client_key"),
        )
    });
    crate::tls::client_trusting_as(ca_file, "store.tls_ca_file", identity)
        .map(tokio_postgres_rustls::MakeRustlsConnect::new)
        .map_err(StoreError::failed)
}

/// A reader connection, with the statement every submission runs prepared on it (parsed
/// and planned once per connection, not per payment).
struct Reader {
    client: Client,
    claim: tokio_postgres::Statement,
}

/// A submission's one look-up: the key's record if it was used, else the claim (taken,
/// taken over, or refused).
const CLAIM: &str = "\
WITH existing AS (
    SELECT fingerprint, payment_id FROM idempotency_keys WHERE principal = $1 AND key = $2
), claimed AS (
    INSERT INTO idempotency_claims AS c (principal, key, token, holder, lease_until)
    SELECT $1, $2, nextval('idempotency_claim_tokens'), $3,
           clock_timestamp() + $4 * interval '1 millisecond'
    WHERE NOT EXISTS (SELECT 1 FROM existing)
    ON CONFLICT (principal, key) DO UPDATE
        SET token = excluded.token, holder = excluded.holder, lease_until = excluded.lease_until
        WHERE c.lease_until < clock_timestamp() OR c.holder = $3
    RETURNING token
)
SELECT (SELECT fingerprint FROM existing), (SELECT payment_id FROM existing),
       (SELECT token FROM claimed)";

/// The PostgreSQL store of one host.
pub struct PgStore {
    inner: Arc<Inner>,
    runtime: Mutex<Option<tokio::runtime::Runtime>>,
    writer: Mutex<Option<mpsc::UnboundedSender<Job>>>,
    writer_done: Mutex<Option<std::sync::mpsc::Receiver<()>>>,
    shadow_writes: std::sync::mpsc::SyncSender<ShadowRow>,
    fingerprint_key: [u8; 32],
    location: String,
    /// Where events go ([`Store::route_events`]).
    routes: std::sync::RwLock<EventRoutes>,
    /// Seals and opens the personal data in the rows.
    personal: Sealer,
}

/// How often a host makes sure the data keys of today and tomorrow exist, and takes
/// those other hosts made.
const DATA_KEYS_EVERY: std::time::Duration = std::time::Duration::from_secs(600);

impl PgStore {
    /// Connects to the database `settings` names, brings its schema up to date (one host
    /// at a time), and starts this host's writer.
    pub fn open(
        settings: &PgSettings,
        observer: Arc<dyn CommitObserver>,
        sealing: AuditSealing,
    ) -> Result<PgStore, StoreError> {
        let (runtime, inner, location) = start(settings)?;
        let personal = Arc::clone(&sealing.personal);
        let opened = wait(&inner.handle, {
            let inner = Arc::clone(&inner);
            let personal = Arc::clone(&personal);
            async move {
                let client = inner.connect(false).await?;
                schema::migrate(&client).await?;
                schema::sync_data_keys(&client, &personal).await?;
                schema::secret(&client, "idempotency_fingerprint_key").await
            }
        });
        let fingerprint_key = match opened {
            Ok(key) => key,
            Err(error) => {
                // Dropping a runtime blocks, which an asynchronous caller may not do.
                runtime.shutdown_background();
                return Err(at(&location, error));
            }
        };
        let (sender, jobs) = mpsc::unbounded_channel();
        let (shadow_writes, shadows) = std::sync::mpsc::sync_channel(SHADOW_PENDING_MAX);
        let (done, writer_done) = std::sync::mpsc::sync_channel(1);
        runtime.spawn({
            let inner = Arc::clone(&inner);
            let personal = Arc::clone(&personal);
            async move {
                let mut every = tokio::time::interval(DATA_KEYS_EVERY);
                every.tick().await;
                loop {
                    every.tick().await;
                    let synced = async {
                        let client = inner.connect(false).await?;
                        schema::sync_data_keys(&client, &personal).await
                    };
                    if let Err(error) = synced.await {
                        tracing::error!("cannot bring the data keys up to date: {error}");
                    }
                }
            }
        });
        runtime.spawn({
            let inner = Arc::clone(&inner);
            let batch_max = settings.commit_batch_max.max(1);
            async move {
                write_loop(inner, jobs, shadows, sealing, batch_max, observer).await;
                let _ = done.send(());
            }
        });
        Ok(PgStore {
            inner,
            runtime: Mutex::new(Some(runtime)),
            writer: Mutex::new(Some(sender)),
            writer_done: Mutex::new(Some(writer_done)),
            shadow_writes,
            fingerprint_key,
            location,
            routes: std::sync::RwLock::new(EventRoutes::default()),
            personal,
        })
    }

    /// Connects to an existing store for reading only (`payrules audit verify`,
    /// backtest): writes fail as [`StoreError::Closed`].
    pub fn open_existing(settings: &PgSettings, master: MasterKeys) -> Result<PgStore, StoreError> {
        let (runtime, inner, location) = start(settings)?;
        let personal = PersonalData::new(master);
        let checked = wait(&inner.handle, {
            let inner = Arc::clone(&inner);
            let personal = Arc::clone(&personal);
            async move {
                let client = inner.connect(true).await?;
                schema::check_version(&client).await?;
                personal
                    .absorb(&schema::data_keys(&client).await?)
                    .map_err(StoreError::failed)
            }
        });
        if let Err(error) = checked {
            runtime.shutdown_background();
            return Err(at(&location, error));
        }
        let (shadow_writes, _) = std::sync::mpsc::sync_channel(0);
        Ok(PgStore {
            inner,
            runtime: Mutex::new(Some(runtime)),
            writer: Mutex::new(None),
            writer_done: Mutex::new(None),
            shadow_writes,
            fingerprint_key: [0; 32],
            location,
            routes: std::sync::RwLock::new(EventRoutes::default()),
            personal,
        })
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

    /// Runs `work` on the store's runtime and waits for it on this thread.
    fn wait<T: Send + 'static>(
        &self,
        work: impl FnOnce(Arc<Inner>) -> WorkFuture<T>,
    ) -> Result<T, StoreError> {
        wait(&self.inner.handle, work(Arc::clone(&self.inner)))
    }
}

type WorkFuture<T> = std::pin::Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send>>;

impl PgStore {
    /// Reads rows page after page on the store's runtime — `read(inner, after)` gives the
    /// rows whose sequence number comes after `after`, in order, at most [`PAGE_ROWS`] —
    /// and visits each on this thread, until a page comes back short or `visit` says stop:
    /// what the blocking readers (verify, backtest, the shadow report) stream with.
    fn each_page<T: Send + 'static>(
        &self,
        read: impl Fn(Arc<Inner>, i64) -> WorkFuture<Vec<(i64, T)>>,
        visit: &mut dyn FnMut(T) -> bool,
    ) -> Result<(), StoreError> {
        let mut after = 0_i64;
        loop {
            let page = self.wait(|inner| read(inner, after))?;
            let full = page.len() as i64 == PAGE_ROWS;
            for (seq, row) in page {
                after = seq;
                if !visit(row) {
                    return Ok(());
                }
            }
            if !full {
                return Ok(());
            }
        }
    }
}

/// The store's runtime and shared state for `settings`, and where it is (for messages).
fn start(
    settings: &PgSettings,
) -> Result<(tokio::runtime::Runtime, Arc<Inner>, String), StoreError> {
    let mut config = tokio_postgres::Config::from_str(&settings.url).map_err(|e| {
        StoreError::failed(format!(
            "store.url is not a PostgreSQL connection string: {e}"
        ))
    })?;
    let location = describe(&config);
    if config.get_password().is_some() {
        return Err(StoreError::failed(format!(
            "store.url for {location} carries a password: give it in store.password_file or \
             store.password_env instead (a URL ends up in logs and shell histories)"
        )));
    }
    if settings.tls_client.is_some() && settings.tls_ca_file.is_none() {
        return Err(StoreError::failed(
            "store.tls_client_certificate needs store.tls_ca_file",
        ));
    }
    let tls = settings
        .tls_ca_file
        .as_deref()
        .map(|ca| tls_for(ca, settings.tls_client.as_ref()))
        .transpose()?;
    if config.get_ssl_mode() == tokio_postgres::config::SslMode::Require && tls.is_none() {
        return Err(StoreError::failed(format!(
            "store.url for {location} asks for sslmode=require: set store.tls_ca_file to the \
             CA certificate(s) that signed the database's certificate, which payrules then \
             verifies (it does not encrypt without verifying)"
        )));
    }
    if let Some(password) = &settings.password {
        config.password(password.as_bytes());
    }
    config
        .application_name("payrules")
        .connect_timeout(CONNECT_TIMEOUT)
        .keepalives(true)
        .keepalives_idle(Duration::from_secs(30))
        .ssl_mode(if tls.is_some() {
            tokio_postgres::config::SslMode::Require
        } else {
            tokio_postgres::config::SslMode::Disable
        });
    // The writer names itself, so that an operator (and `bench/hosts/run.sh`) can tell
    // in `pg_stat_activity` the connection that holds the chain's head from the readers.
    let mut writer_config = config.clone();
    writer_config.application_name("payrules writer");
    // Readers also take and release claims and beat: none of it need survive a crash of
    // the database (a claim frees a key whose request fails then anyway, and whose commit
    // would be fenced off), so none of it waits for a WAL flush.
    let mut reader_config = config;
    reader_config.options("-c synchronous_commit=off");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("payrules-postgres")
        .enable_all()
        .build()
        .map_err(|e| StoreError::failed(format!("cannot start the store's runtime: {e}")))?;
    let inner = Arc::new(Inner {
        handle: runtime.handle().clone(),
        writer_config,
        reader_config,
        readers: (0..READERS)
            .map(|_| tokio::sync::Mutex::new(None))
            .collect(),
        next_reader: AtomicUsize::new(0),
        holder: settings.holder.clone(),
        tls,
    });
    Ok((runtime, inner, location))
}

/// `postgres://user@host:port/database`, never a password.
fn describe(config: &tokio_postgres::Config) -> String {
    use tokio_postgres::config::Host;
    let hosts: Vec<String> = config
        .get_hosts()
        .iter()
        .map(|host| match host {
            Host::Tcp(name) => name.clone(),
            Host::Unix(path) => path.display().to_string(),
        })
        .collect();
    let port = config.get_ports().first().copied().unwrap_or(5432);
    format!(
        "postgres://{}@{}:{port}/{}",
        config.get_user().unwrap_or(""),
        hosts.join(","),
        config.get_dbname().unwrap_or("")
    )
}

fn at(location: &str, error: StoreError) -> StoreError {
    match error {
        StoreError::Unavailable { reason } => StoreError::Unavailable {
            reason: format!("{location}: {reason}"),
        },
        StoreError::Failed { source } => StoreError::failed(format!("{location}: {source}")),
        other => other,
    }
}

/// Runs `work` on `handle`'s runtime and waits for it on this thread (which may be any
/// thread that may block, even one of another runtime).
fn wait<T: Send + 'static>(
    handle: &tokio::runtime::Handle,
    work: impl Future<Output = Result<T, StoreError>> + Send + 'static,
) -> Result<T, StoreError> {
    let (reply, answer) = std::sync::mpsc::sync_channel(1);
    handle.spawn(async move {
        let _ = reply.send(work.await);
    });
    answer.recv().map_err(|_| StoreError::Closed)?
}

/// A PostgreSQL error as the store reports it: [`StoreError::Unavailable`] for what a
/// retry may get past (no connection, the server shutting down or starting, too many
/// connections, a serialization failure or deadlock), [`StoreError::Failed`] otherwise.
pub(super) fn pg_error(error: tokio_postgres::Error) -> StoreError {
    use tokio_postgres::error::SqlState;
    let retryable = match error.code() {
        Some(code) => {
            let class = &code.code()[..2];
            // 08: connection exception; 53: insufficient resources; 57P0x: shutdown.
            class == "08"
                || class == "53"
                || [
                    SqlState::ADMIN_SHUTDOWN,
                    SqlState::CRASH_SHUTDOWN,
                    SqlState::CANNOT_CONNECT_NOW,
                    SqlState::T_R_SERIALIZATION_FAILURE,
                    SqlState::T_R_DEADLOCK_DETECTED,
                ]
                .contains(code)
        }
        // No SQLSTATE: the connection (closed, refused, timed out, an I/O error).
        None => {
            error.is_closed()
                || std::error::Error::source(&error)
                    .is_some_and(|source| source.downcast_ref::<std::io::Error>().is_some())
                || error.to_string().contains("timeout")
        }
    };
    if retryable {
        StoreError::Unavailable {
            reason: error.to_string(),
        }
    } else {
        StoreError::failed(error)
    }
}

fn get<'r, T: tokio_postgres::types::FromSql<'r>>(
    row: &'r Row,
    at: usize,
) -> Result<T, StoreError> {
    row.try_get(at).map_err(pg_error)
}

fn fingerprint_of(bytes: Vec<u8>) -> Result<[u8; 32], StoreError> {
    <[u8; 32]>::try_from(bytes)
        .map_err(|_| StoreError::failed("a stored fingerprint is not 32 bytes"))
}

const AUDIT_COLUMNS: &str =
    "seq, at_ms, actor, action, subject, detail, prev_hash, hash, key_id, mac";

/// The first payment (in the order stored) with no `decided` entry, for `audit verify`.
/// The rows missing are found first, apart from the `ORDER BY … LIMIT 1` (a materialized
/// CTE is planned on its own): with the limit beside it, a planner holding statistics from
/// when the tables were small (right after a burst of traffic, before autovacuum analyses
/// them) expects to find a row at once and picks a nested loop over every `decided` entry
/// for each payment — quadratic: 15 s for 34,000 payments on the bench machine, where
/// this takes milliseconds (a hash anti-join).
const PAYMENT_WITHOUT_ENTRY: &str = "\
WITH missing AS MATERIALIZED (
    SELECT p.id, p.seq FROM payments p
    WHERE NOT EXISTS (SELECT 1 FROM audit_log a WHERE a.action = $1 AND a.subject = p.id)
)
SELECT id FROM missing ORDER BY seq LIMIT 1";

/// The same for reviews and their `reviewed` or `review expired` entries.
const REVIEW_WITHOUT_ENTRY: &str = "\
WITH missing AS MATERIALIZED (
    SELECT r.payment_id, r.seq FROM reviews r
    WHERE NOT EXISTS (SELECT 1 FROM audit_log a
                      WHERE a.action = ANY($1) AND a.subject = r.payment_id)
)
SELECT payment_id FROM missing ORDER BY seq LIMIT 1";

fn audit_row(row: &Row) -> Result<AuditEntry, StoreError> {
    let seq: i64 = get(row, 0)?;
    let prev: Vec<u8> = get(row, 6)?;
    let hash: Vec<u8> = get(row, 7)?;
    let (Ok(prev_hash), Ok(hash)) = (<[u8; 32]>::try_from(prev), <[u8; 32]>::try_from(hash)) else {
        return Err(StoreError::failed(format!(
            "audit entry {seq}: a hash is not 32 bytes"
        )));
    };
    Ok(AuditEntry {
        seq,
        at_unix_ms: get(row, 1)?,
        actor: get(row, 2)?,
        action: get(row, 3)?,
        subject: get(row, 4)?,
        detail: get(row, 5)?,
        prev_hash,
        hash,
        key_id: get(row, 8)?,
        mac: get(row, 9)?,
    })
}

/// The columns of a review (table `r`), as [`review_at`] reads them.
const REVIEW_COLUMNS: &str = "r.payment_id, r.verdict, r.reason_code, r.note, r.reviewer, \
     r.reviewed_at_ms, r.decision_sha256, r.expired";

/// The review in [`REVIEW_COLUMNS`] from column `at`, if there is one (a LEFT JOIN may
/// find none).
fn review_at(
    row: &Row,
    at: usize,
    personal: Option<&PersonalData>,
) -> Result<Option<Review>, StoreError> {
    let Some(payment_id) = get::<Option<String>>(row, at)? else {
        return Ok(None);
    };
    let verdict: &str = get(row, at + 1)?;
    let verdict = Verdict::parse(verdict).ok_or_else(|| {
        StoreError::failed(format!(
            "the review of {payment_id}: unknown verdict {verdict:?}"
        ))
    })?;
    let note = match (get::<Option<&str>>(row, at + 3)?, personal) {
        (Some(sealed), Some(personal)) => {
            unless_erased(personal.open(&context::note(&payment_id), sealed))?
        }
        (note, _) => note.map(str::to_owned),
    };
    Ok(Some(Review {
        payment_id,
        verdict,
        reason_code: get(row, at + 2)?,
        note,
        reviewer: get(row, at + 4)?,
        reviewed_at_unix_ms: get(row, at + 5)?,
        decision_sha256: get(row, at + 6)?,
        expired: get(row, at + 7)?,
    }))
}

/// The columns of a payment's summary (table `p`) and its review's verdict, as
/// [`summary_at`] reads them.
const SUMMARY_COLUMNS: &str = "p.id, p.received_at_ms, p.submitted_by, p.end_to_end_id, \
     p.amount, p.currency, p.status, p.rule_set_version, r.verdict";

/// The summary in [`SUMMARY_COLUMNS`] from column `at`.
fn summary_at(row: &Row, at: usize) -> Result<PaymentSummary, StoreError> {
    let status: &str = get(row, at + 6)?;
    let status = parse_status(status)
        .ok_or_else(|| StoreError::failed(format!("unknown status {status:?}")))?;
    let verdict = get::<Option<&str>>(row, at + 8)?
        .map(|v| {
            Verdict::parse(v).ok_or_else(|| StoreError::failed(format!("unknown verdict {v:?}")))
        })
        .transpose()?;
    Ok(PaymentSummary {
        payment_id: get(row, at)?,
        received_at_unix_ms: get(row, at + 1)?,
        submitted_by: get(row, at + 2)?,
        end_to_end_id: get(row, at + 3)?,
        amount: get(row, at + 4)?,
        currency: get(row, at + 5)?,
        status,
        final_status: final_status(status, verdict),
        rule_set_version: get(row, at + 7)?,
    })
}

/// Failed delivery attempts, one array per column (sent as `unnest` arguments).
#[derive(Default)]
struct FailedColumns<'a> {
    endpoint: Vec<&'a str>,
    seq: Vec<i64>,
    attempts: Vec<i32>,
    at_ms: Vec<i64>,
    next_ms: Vec<i64>,
    state: Vec<&'static str>,
    error: Vec<String>,
}

impl Store for PgStore {
    fn fingerprint(&self, canonical_payload: &[u8]) -> [u8; 32] {
        keyed_fingerprint(&self.fingerprint_key, canonical_payload)
    }

    /// Takes the key if no claim holds it, if its lease has ended, or if the claim is
    /// this host's own (the service holds a key once per process before it asks, so a
    /// claim of ours that it does not hold is left from a request that ended without
    /// reaching the database — a commit failed while the database was away, a request
    /// timed out — and the new token fences off anything of that request still queued).
    fn claim<'a>(
        &'a self,
        principal: &'a str,
        key: &'a str,
        lease_ms: u64,
    ) -> StoreFuture<'a, Claim> {
        Box::pin(async move {
            let lease = i64::try_from(lease_ms).unwrap_or(i64::MAX);
            // One statement, one round trip, prepared on the reader.
            let reader = self.inner.reader().await?;
            let rows = reader
                .client
                .query(
                    &reader.claim,
                    &[&principal, &key, &self.inner.holder, &lease],
                )
                .await
                .map_err(pg_error)?;
            let row = rows
                .first()
                .ok_or_else(|| StoreError::failed("a claim answered no row"))?;
            let fingerprint: Option<Vec<u8>> = get(row, 0)?;
            let payment_id: Option<String> = get(row, 1)?;
            let token: Option<i64> = get(row, 2)?;
            Ok(match (fingerprint, payment_id, token) {
                (Some(fingerprint), Some(payment_id), _) => Claim::Recorded(IdempotencyRecord {
                    fingerprint: fingerprint_of(fingerprint)?,
                    payment_id,
                }),
                (_, _, Some(token)) => Claim::Held { token: Some(token) },
                _ => Claim::Busy,
            })
        })
    }

    fn release<'a>(&'a self, principal: &'a str, key: &'a str, token: i64) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            self.inner
                .query(
                    "DELETE FROM idempotency_claims WHERE principal = $1 AND key = $2 AND token = $3",
                    &[
                        (&principal, Type::TEXT),
                        (&key, Type::TEXT),
                        (&token, Type::INT8),
                    ],
                )
                .await?;
            Ok(())
        })
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
            let rows = self
                .inner
                .query(
                    "SELECT fingerprint, payment_id FROM idempotency_keys \
                     WHERE principal = $1 AND key = $2",
                    &[(&principal, Type::TEXT), (&key, Type::TEXT)],
                )
                .await?;
            rows.first()
                .map(|row| {
                    Ok(IdempotencyRecord {
                        fingerprint: fingerprint_of(get(row, 0)?)?,
                        payment_id: get(row, 1)?,
                    })
                })
                .transpose()
        })
    }

    fn message<'a>(
        &'a self,
        principal: &'a str,
        message_id: &'a str,
    ) -> StoreFuture<'a, Option<StoredMessage>> {
        Box::pin(async move {
            let rows = self
                .inner
                .query(
                    "SELECT fingerprint, report FROM messages \
                     WHERE principal = $1 AND message_id = $2",
                    &[(&principal, Type::TEXT), (&message_id, Type::TEXT)],
                )
                .await?;
            rows.first()
                .map(|row| {
                    Ok(StoredMessage {
                        fingerprint: fingerprint_of(get(row, 0)?)?,
                        report: self
                            .personal
                            .open(&context::report(principal, message_id), get(row, 1)?)?,
                    })
                })
                .transpose()
        })
    }

    fn payment<'a>(&'a self, payment_id: &'a str) -> StoreFuture<'a, Option<StoredPayment>> {
        Box::pin(async move {
            let rows = self
                .inner
                .query(
                    &format!(
                        "SELECT p.id, p.received_at_ms, p.submitted_by, p.payment, p.decision, \
                         {REVIEW_COLUMNS} FROM payments p \
                         LEFT JOIN reviews r ON r.payment_id = p.id WHERE p.id = $1"
                    ),
                    &[(&payment_id, Type::TEXT)],
                )
                .await?;
            rows.first()
                .map(|row| {
                    let id: String = get(row, 0)?;
                    let decision = opened_decision(&self.personal, &id, get(row, 4)?)?;
                    Ok(StoredPayment {
                        payment: stored_payment(&self.personal, &id, get(row, 3)?)?,
                        decision: decision_of(&decision)?,
                        decision_sha256: super::audit::sha256_hex(&decision),
                        payment_id: id,
                        received_at_unix_ms: get(row, 1)?,
                        submitted_by: get(row, 2)?,
                        review: review_at(row, 5, Some(&self.personal))?,
                    })
                })
                .transpose()
        })
    }

    fn review(&self, review: Review) -> StoreFuture<'_, ()> {
        let write = Write::review(review, &self.routes(), &self.personal);
        Box::pin(async move { self.send(write?).await })
    }

    fn reviews(&self, query: ReviewQuery) -> StoreFuture<'_, ReviewPage> {
        Box::pin(async move {
            let limit = query.limit.clamp(1, LIST_LIMIT_MAX);
            let sql = match query.state {
                ReviewState::Open => format!(
                    "SELECT p.seq, {SUMMARY_COLUMNS}, p.decision, {REVIEW_COLUMNS} \
                     FROM payments p LEFT JOIN reviews r ON r.payment_id = p.id \
                     WHERE p.status = 'pending_review' AND r.payment_id IS NULL \
                       AND ($1::text IS NULL OR p.submitted_by = $1) \
                       AND ($2::int8 IS NULL OR p.received_at_ms >= $2) \
                       AND ($3::int8 IS NULL OR p.received_at_ms < $3) \
                       AND ($4::int8 IS NULL OR p.seq > $4) \
                     ORDER BY p.seq LIMIT $5"
                ),
                ReviewState::Resolved => format!(
                    "SELECT r.seq, {SUMMARY_COLUMNS}, p.decision, {REVIEW_COLUMNS} \
                     FROM reviews r JOIN payments p ON p.id = r.payment_id \
                     WHERE ($1::text IS NULL OR p.submitted_by = $1) \
                       AND ($2::int8 IS NULL OR p.received_at_ms >= $2) \
                       AND ($3::int8 IS NULL OR p.received_at_ms < $3) \
                       AND ($4::int8 IS NULL OR r.seq < $4) \
                     ORDER BY r.seq DESC LIMIT $5"
                ),
            };
            let rows = self
                .inner
                .query(
                    &sql,
                    &[
                        (&query.submitted_by, Type::TEXT),
                        (&query.since_unix_ms, Type::INT8),
                        (&query.received_before_unix_ms, Type::INT8),
                        (&query.cursor, Type::INT8),
                        (&i64::from(limit), Type::INT8),
                    ],
                )
                .await?;
            let mut items = Vec::with_capacity(rows.len());
            let mut last_seq = None;
            for row in &rows {
                last_seq = Some(get::<i64>(row, 0)?);
                let summary = summary_at(row, 1)?;
                let review = review_at(row, 11, Some(&self.personal))?;
                items.push(review_item(&self.personal, summary, get(row, 10)?, review)?);
            }
            let next_cursor = if items.len() == limit as usize {
                last_seq
            } else {
                None
            };
            Ok(ReviewPage { items, next_cursor })
        })
    }

    fn reviews_of<'a>(&'a self, payment_ids: &'a [String]) -> StoreFuture<'a, Vec<Review>> {
        Box::pin(async move {
            let rows = self
                .inner
                .query(
                    &format!("SELECT {REVIEW_COLUMNS} FROM reviews r WHERE r.payment_id = ANY($1)"),
                    &[(&payment_ids, Type::TEXT_ARRAY)],
                )
                .await?;
            let mut reviews = Vec::with_capacity(rows.len());
            for row in &rows {
                reviews.extend(review_at(row, 0, Some(&self.personal))?);
            }
            Ok(reviews)
        })
    }

    fn list(&self, query: ListQuery) -> StoreFuture<'_, Page> {
        Box::pin(async move {
            let limit = i64::from(query.limit.clamp(1, LIST_LIMIT_MAX));
            let status = query.status.map(status_name);
            // Only the filters given (each as a typed parameter), so the plan uses the
            // index of the one that selects.
            let mut conditions: Vec<String> = Vec::new();
            let mut params: Vec<(&(dyn tokio_postgres::types::ToSql + Sync), Type)> = Vec::new();
            macro_rules! filter {
                ($condition:expr, $param:expr, $kind:expr $(,)?) => {{
                    params.push(($param, $kind));
                    conditions.push($condition.replace('?', &format!("${}", params.len())));
                }};
            }
            if let Some(status) = &status {
                filter!("p.status = ?", status, Type::TEXT);
            }
            if let Some(since) = &query.since_unix_ms {
                filter!("p.received_at_ms >= ?", since, Type::INT8);
            }
            if let Some(until) = &query.until_unix_ms {
                filter!("p.received_at_ms < ?", until, Type::INT8);
            }
            if let Some(submitted_by) = &query.submitted_by {
                filter!("p.submitted_by = ?", submitted_by, Type::TEXT);
            }
            if let Some(end_to_end_id) = &query.end_to_end_id {
                filter!("p.end_to_end_id = ?", end_to_end_id, Type::TEXT);
            }
            if let Some(version) = &query.rule_set_version {
                filter!("starts_with(p.rule_set_version, ?)", version, Type::TEXT);
            }
            if let Some(rule) = &query.rule_fired {
                filter!(
                    "position(' ' || ? || ' ' in p.rules_fired) > 0",
                    rule,
                    Type::TEXT,
                );
            }
            if let Some(cursor) = &query.cursor {
                filter!("p.seq < ?", cursor, Type::INT8);
            }
            params.push((&limit, Type::INT8));
            let sql = format!(
                "SELECT p.seq, {SUMMARY_COLUMNS} \
                 FROM payments p LEFT JOIN reviews r ON r.payment_id = p.id \
                 {} ORDER BY p.seq DESC LIMIT ${}",
                if conditions.is_empty() {
                    String::new()
                } else {
                    format!("WHERE {}", conditions.join(" AND "))
                },
                params.len()
            );
            let rows = self.inner.query(&sql, &params).await?;
            let mut payments = Vec::with_capacity(rows.len());
            let mut last_seq = None;
            for row in &rows {
                last_seq = Some(get::<i64>(row, 0)?);
                payments.push(summary_at(row, 1)?);
            }
            let next_cursor = if payments.len() as i64 == limit {
                last_seq
            } else {
                None
            };
            Ok(Page {
                payments,
                next_cursor,
            })
        })
    }

    fn audit_entries(&self, after_seq: i64, limit: u32) -> StoreFuture<'_, Vec<AuditEntry>> {
        Box::pin(async move {
            let limit = i64::from(limit.clamp(1, LIST_LIMIT_MAX));
            let rows = self
                .inner
                .query(
                    &format!(
                        "SELECT {AUDIT_COLUMNS} FROM audit_log WHERE seq > $1 ORDER BY seq LIMIT $2"
                    ),
                    &[(&after_seq, Type::INT8), (&limit, Type::INT8)],
                )
                .await?;
            rows.iter().map(audit_row).collect()
        })
    }

    fn audit_entries_of<'a>(
        &'a self,
        actions: &'a [&'a str],
        limit: u32,
    ) -> StoreFuture<'a, Vec<AuditEntry>> {
        Box::pin(async move {
            let limit = i64::from(limit.clamp(1, LIST_LIMIT_MAX));
            let actions: Vec<&str> = actions.to_vec();
            let rows = self
                .inner
                .query(
                    &format!(
                        "SELECT {AUDIT_COLUMNS} FROM audit_log WHERE action = ANY($1) \
                         ORDER BY seq DESC LIMIT $2"
                    ),
                    &[(&actions, Type::TEXT_ARRAY), (&limit, Type::INT8)],
                )
                .await?;
            rows.iter().map(audit_row).collect()
        })
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
            // The keys erased (by this host or another) are forgotten here too.
            let rows = self.inner.query(schema::DATA_KEYS, &[]).await?;
            self.personal
                .absorb(&schema::wrapped_keys(&rows)?)
                .map_err(StoreError::failed)
        })
    }

    fn record_shadow(&self, decision: &Decision, shadow_version: &str) -> Result<(), StoreError> {
        let row = ShadowRow::new(decision, shadow_version, &self.personal)?;
        self.shadow_writes.send(row).map_err(|_| StoreError::Closed)
    }

    fn shadowed<'a>(
        &'a self,
        payment_id: &'a str,
        shadow_version: &'a str,
    ) -> StoreFuture<'a, Option<Decision>> {
        Box::pin(async move {
            let rows = self
                .inner
                .query(
                    "SELECT decision FROM shadow_decisions \
                     WHERE payment_id = $1 AND shadow_version = $2",
                    &[(&payment_id, Type::TEXT), (&shadow_version, Type::TEXT)],
                )
                .await?;
            match rows.first() {
                None => Ok(None),
                Some(row) => unless_erased(stored_shadow_decision(
                    &self.personal,
                    payment_id,
                    shadow_version,
                    get(row, 0)?,
                )),
            }
        })
    }

    fn for_each_shadowed(
        &self,
        shadow_version: &str,
        visit: &mut dyn FnMut(Decision, Decision),
    ) -> Result<(), StoreError> {
        let version = shadow_version.to_owned();
        self.each_page(
            |inner, after| {
                let version = version.clone();
                let personal = Arc::clone(&self.personal);
                Box::pin(async move {
                    let rows = inner
                        .query(
                            "SELECT s.seq, p.decision, s.decision, p.id FROM shadow_decisions s \
                             JOIN payments p ON p.id = s.payment_id \
                             WHERE s.shadow_version = $1 AND s.seq > $2 ORDER BY s.seq LIMIT $3",
                            &[
                                (&version, Type::TEXT),
                                (&after, Type::INT8),
                                (&PAGE_ROWS, Type::INT8),
                            ],
                        )
                        .await?;
                    rows.iter()
                        .map(|row| {
                            let id: &str = get(row, 3)?;
                            // A pair whose personal data was erased is past comparing.
                            let pair = match (
                                unless_erased(stored_decision(&personal, id, get(row, 1)?))?,
                                unless_erased(stored_shadow_decision(
                                    &personal,
                                    id,
                                    &version,
                                    get(row, 2)?,
                                ))?,
                            ) {
                                (Some(live), Some(shadow)) => Some((live, shadow)),
                                _ => None,
                            };
                            Ok((get(row, 0)?, pair))
                        })
                        .collect()
                })
            },
            &mut |pair| {
                if let Some((live, shadow)) = pair {
                    visit(live, shadow);
                }
                true
            },
        )
    }

    fn accepted_since(&self, since_unix_ms: i64) -> Result<Accepted, StoreError> {
        let personal = Arc::clone(&self.personal);
        self.wait(move |inner| {
            Box::pin(async move {
                // A connection of its own for one REPEATABLE READ snapshot: the head and
                // the payments as of the same instant (the head row moves in the same
                // transaction as the entries it counts).
                let client = inner.connect(true).await?;
                let read = async {
                    client
                        .batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
                        .await?;
                    let head = client
                        .query_one("SELECT seq FROM audit_head WHERE id = 1", &[])
                        .await?;
                    // Accepted as decided, then approved after review (at their approval).
                    let rows = client
                        .query(
                            "SELECT id, payment, decision, NULL::int8 FROM payments \
                             WHERE status = 'accepted' AND received_at_ms >= $1 \
                             UNION ALL \
                             SELECT p.id, p.payment, p.decision, r.reviewed_at_ms FROM reviews r \
                             JOIN payments p ON p.id = r.payment_id \
                             WHERE r.verdict = 'approve' AND r.reviewed_at_ms >= $1",
                            &[&since_unix_ms],
                        )
                        .await?;
                    client.batch_execute("COMMIT").await?;
                    Ok::<_, tokio_postgres::Error>((head, rows))
                }
                .await;
                let (head, rows) = read.map_err(pg_error)?;
                let mut payments = Vec::with_capacity(rows.len());
                for row in &rows {
                    let id: String = get(row, 0)?;
                    // Erased (past its retention, which is longer than any velocity window).
                    let Some(payment) =
                        unless_erased(stored_payment(&personal, &id, get(row, 1)?))?
                    else {
                        continue;
                    };
                    let at = match get::<Option<i64>>(row, 3)? {
                        Some(approved_at) => approved_at,
                        None => stored_decision(&personal, &id, get(row, 2)?)?.decided_at_unix_ms,
                    };
                    payments.push((id, payment, at));
                }
                Ok(Accepted {
                    payments,
                    counted: Vec::new(),
                    through_seq: get(&head, 0)?,
                })
            })
        })
    }

    fn shared(&self) -> bool {
        true
    }

    fn accepted_after<'a>(
        &'a self,
        after_seq: i64,
        limit: u32,
        counted: &'a (dyn Fn(&str) -> bool + Sync),
    ) -> StoreFuture<'a, Accepted> {
        Box::pin(async move {
            let limit = i64::from(limit.clamp(1, LIST_LIMIT_MAX));
            // Which entries are an accepted decision's or an approval's, read without
            // their payments: those this host committed itself (all of them with one host,
            // half with two) are passed unread; only the others' payments are read.
            let entries = self
                .inner
                .query(
                    "SELECT a.seq, p.id, r.reviewed_at_ms \
                     FROM audit_log a \
                     LEFT JOIN reviews r ON a.action = $4 AND r.payment_id = a.subject \
                         AND r.verdict = 'approve' \
                     LEFT JOIN payments p ON p.id = a.subject \
                         AND ((a.action = $1 AND p.status = 'accepted') \
                              OR r.payment_id IS NOT NULL) \
                     WHERE a.seq > $2 ORDER BY a.seq LIMIT $3",
                    &[
                        (&DECIDED, Type::TEXT),
                        (&after_seq, Type::INT8),
                        (&limit, Type::INT8),
                        (&REVIEWED, Type::TEXT),
                    ],
                )
                .await?;
            let mut accepted = Accepted {
                payments: Vec::new(),
                counted: Vec::new(),
                through_seq: after_seq,
            };
            let mut unread: Vec<(String, Option<i64>)> = Vec::new();
            for row in &entries {
                accepted.through_seq = get(row, 0)?;
                if let Some(id) = get::<Option<String>>(row, 1)? {
                    if counted(&id) {
                        accepted.counted.push(id);
                    } else {
                        unread.push((id, get(row, 2)?));
                    }
                }
            }
            if unread.is_empty() {
                return Ok(accepted);
            }
            let ids: Vec<&str> = unread.iter().map(|(id, _)| id.as_str()).collect();
            let rows = self
                .inner
                .query(
                    "SELECT id, payment, decision FROM payments WHERE id = ANY($1)",
                    &[(&ids, Type::TEXT_ARRAY)],
                )
                .await?;
            let mut by_id: HashMap<&str, &Row> = HashMap::with_capacity(rows.len());
            for row in &rows {
                by_id.insert(get(row, 0)?, row);
            }
            for (id, approved_at) in unread {
                // Payment rows are never deleted (erasure destroys their data key): the
                // first read found it, so this one must; if not, the page is read again.
                let row = by_id.get(id.as_str()).ok_or_else(|| {
                    StoreError::failed(format!("payment {id} was not found after its entry"))
                })?;
                let Some(payment) =
                    unless_erased(stored_payment(&self.personal, &id, get(row, 1)?))?
                else {
                    continue;
                };
                let at = match approved_at {
                    Some(approved_at) => approved_at,
                    None => stored_decision(&self.personal, &id, get(row, 2)?)?.decided_at_unix_ms,
                };
                accepted.payments.push((id, payment, at));
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
        self.each_page(
            |inner, after| {
                let personal = Arc::clone(&self.personal);
                Box::pin(async move {
                    let rows = inner
                        .query(
                            "SELECT seq, payment, decision, id FROM payments \
                             WHERE received_at_ms >= $1 AND received_at_ms < $2 AND seq > $3 \
                             ORDER BY seq LIMIT $4",
                            &[
                                (&since_unix_ms, Type::INT8),
                                (&until_unix_ms, Type::INT8),
                                (&after, Type::INT8),
                                (&PAGE_ROWS, Type::INT8),
                            ],
                        )
                        .await?;
                    rows.iter()
                        .map(|row| {
                            let id: &str = get(row, 3)?;
                            // A payment whose personal data was erased cannot be replayed.
                            let pair = match (
                                unless_erased(stored_payment(&personal, id, get(row, 1)?))?,
                                unless_erased(stored_decision(&personal, id, get(row, 2)?))?,
                            ) {
                                (Some(payment), Some(decision)) => Some((payment, decision)),
                                _ => None,
                            };
                            Ok((get(row, 0)?, pair))
                        })
                        .collect()
                })
            },
            &mut |pair| {
                if let Some((payment, decision)) = pair {
                    visit(payment, decision);
                }
                true
            },
        )
    }

    fn for_each_audit_entry(
        &self,
        visit: &mut dyn FnMut(AuditEntry, Option<EntryRow>) -> bool,
    ) -> Result<(), StoreError> {
        self.each_page(
            |inner, after| {
                let personal = Arc::clone(&self.personal);
                Box::pin(async move {
                    let rows = inner
                        .query(
                            &format!(
                                "SELECT a.seq, a.at_ms, a.actor, a.action, a.subject, a.detail, \
                                        a.prev_hash, a.hash, a.key_id, a.mac, \
                                        p.payment, p.decision, p.submitted_by, p.status, \
                                        p.rule_set_version, p.amount, p.currency, \
                                        p.end_to_end_id, {REVIEW_COLUMNS}, rp.decision \
                                 FROM audit_log a \
                                 LEFT JOIN payments p ON a.action = $1 AND p.id = a.subject \
                                 LEFT JOIN reviews r ON a.action = ANY($4) \
                                     AND r.payment_id = a.subject \
                                 LEFT JOIN payments rp ON rp.id = r.payment_id \
                                 WHERE a.seq > $2 ORDER BY a.seq LIMIT $3"
                            ),
                            &[
                                (&DECIDED, Type::TEXT),
                                (&after, Type::INT8),
                                (&PAGE_ROWS, Type::INT8),
                                (&[REVIEWED, REVIEW_EXPIRED].as_slice(), Type::TEXT_ARRAY),
                            ],
                        )
                        .await?;
                    rows.iter()
                        .map(|row| {
                            let entry = audit_row(row)?;
                            let payment: Option<String> = get(row, 10)?;
                            let decided = match payment {
                                Some(payment) => Some(EntryRow::Decided(opened_row(
                                    &personal,
                                    &entry.subject,
                                    DecidedRow {
                                        payment,
                                        decision: get(row, 11)?,
                                        submitted_by: get(row, 12)?,
                                        status: get(row, 13)?,
                                        rule_set_version: get(row, 14)?,
                                        amount: get(row, 15)?,
                                        currency: get(row, 16)?,
                                        end_to_end_id: get(row, 17)?,
                                        unopened: None,
                                    },
                                )?)),
                                None => {
                                    match (review_at(row, 18, None)?, get::<Option<&str>>(row, 26)?)
                                    {
                                        (Some(review), Some(decision)) => Some(EntryRow::Reviewed(
                                            opened_review_row(&personal, review, decision)?,
                                        )),
                                        _ => None,
                                    }
                                }
                            };
                            Ok((entry.seq, (entry, decided)))
                        })
                        .collect()
                })
            },
            &mut |(entry, decided)| visit(entry, decided),
        )
    }

    fn first_payment_without_entry(&self) -> Result<Option<String>, StoreError> {
        self.wait(|inner| {
            Box::pin(async move {
                let rows = inner
                    .query(PAYMENT_WITHOUT_ENTRY, &[(&DECIDED, Type::TEXT)])
                    .await?;
                rows.first().map(|row| get(row, 0)).transpose()
            })
        })
    }

    fn first_review_without_entry(&self) -> Result<Option<String>, StoreError> {
        self.wait(|inner| {
            Box::pin(async move {
                let rows = inner
                    .query(
                        REVIEW_WITHOUT_ENTRY,
                        &[(&[REVIEWED, REVIEW_EXPIRED].as_slice(), Type::TEXT_ARRAY)],
                    )
                    .await?;
                rows.first().map(|row| get(row, 0)).transpose()
            })
        })
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
        Box::pin(async move {
            let rows = self
                .inner
                .query(
                    "SELECT d.endpoint, d.seq, d.attempts, o.event_id, o.event_type, \
                            o.payment_id, o.payload \
                     FROM webhook_deliveries d JOIN outbox o ON o.seq = d.seq \
                     WHERE d.state = 'pending' AND d.next_attempt_ms <= $1 \
                       AND d.endpoint = ANY($3) \
                       AND NOT EXISTS (SELECT 1 FROM webhook_deliveries e \
                           WHERE e.endpoint = d.endpoint AND e.payment_id = d.payment_id \
                             AND e.seq < d.seq AND e.state = 'pending') \
                     ORDER BY d.next_attempt_ms, d.seq, d.endpoint LIMIT $2",
                    &[
                        (&now_unix_ms, Type::INT8),
                        (&i64::from(limit), Type::INT8),
                        (&endpoints, Type::TEXT_ARRAY),
                    ],
                )
                .await?;
            rows.iter()
                .map(|row| {
                    Ok(Delivery {
                        endpoint: get(row, 0)?,
                        seq: get(row, 1)?,
                        attempts: u32::try_from(get::<i32>(row, 2)?).unwrap_or(0),
                        event_id: get(row, 3)?,
                        event_type: get(row, 4)?,
                        payment_id: get(row, 5)?,
                        payload: get(row, 6)?,
                    })
                })
                .collect()
        })
    }

    /// Written on a reader connection in one statement of its own (not through the
    /// writer: deliveries are outside the chain, and never wait on a decision's batch).
    fn record_deliveries(&self, outcomes: Vec<DeliveryOutcome>) -> StoreFuture<'_, ()> {
        Box::pin(async move {
            let (mut done_endpoint, mut done_seq) = (Vec::new(), Vec::new());
            let mut failed = FailedColumns::default();
            for outcome in &outcomes {
                match outcome {
                    DeliveryOutcome::Delivered { endpoint, seq } => {
                        done_endpoint.push(endpoint.as_str());
                        done_seq.push(*seq);
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
                        failed.endpoint.push(endpoint);
                        failed.seq.push(*seq);
                        failed
                            .attempts
                            .push(i32::try_from(*attempts).unwrap_or(i32::MAX));
                        failed.at_ms.push(*at_ms);
                        failed.next_ms.push(*next_attempt_ms);
                        failed.state.push(if *dead { "dead" } else { "pending" });
                        failed
                            .error
                            .push(error.chars().take(DELIVERY_ERROR_CHARS_MAX).collect());
                    }
                }
            }
            self.inner
                .query(
                    "WITH done AS (DELETE FROM webhook_deliveries d \
                         USING unnest($1::text[], $2::int8[]) AS x(endpoint, seq) \
                         WHERE d.endpoint = x.endpoint AND d.seq = x.seq RETURNING 1), \
                     failed AS (UPDATE webhook_deliveries d SET attempts = x.attempts, \
                         last_attempt_ms = x.at_ms, next_attempt_ms = x.next_ms, \
                         state = x.state, last_error = x.error \
                         FROM unnest($3::text[], $4::int8[], $5::int4[], $6::int8[], \
                                     $7::int8[], $8::text[], $9::text[]) \
                             AS x(endpoint, seq, attempts, at_ms, next_ms, state, error) \
                         WHERE d.endpoint = x.endpoint AND d.seq = x.seq \
                           AND d.state = 'pending' RETURNING 1) \
                     SELECT (SELECT count(*) FROM done), (SELECT count(*) FROM failed)",
                    &[
                        (&done_endpoint, Type::TEXT_ARRAY),
                        (&done_seq, Type::INT8_ARRAY),
                        (&failed.endpoint, Type::TEXT_ARRAY),
                        (&failed.seq, Type::INT8_ARRAY),
                        (&failed.attempts, Type::INT4_ARRAY),
                        (&failed.at_ms, Type::INT8_ARRAY),
                        (&failed.next_ms, Type::INT8_ARRAY),
                        (&failed.state, Type::TEXT_ARRAY),
                        (&failed.error, Type::TEXT_ARRAY),
                    ],
                )
                .await?;
            Ok(())
        })
    }

    fn dead_letters<'a>(
        &'a self,
        endpoint: Option<&'a str>,
        after_seq: i64,
        limit: u32,
    ) -> StoreFuture<'a, Vec<DeadLetter>> {
        Box::pin(async move {
            let limit = i64::from(limit.clamp(1, LIST_LIMIT_MAX));
            let rows = self
                .inner
                .query(
                    "SELECT d.endpoint, d.seq, o.event_id, o.event_type, o.payment_id, \
                            d.attempts, d.last_attempt_ms, d.last_error \
                     FROM webhook_deliveries d JOIN outbox o ON o.seq = d.seq \
                     WHERE d.state = 'dead' AND ($1::text IS NULL OR d.endpoint = $1) \
                       AND d.seq > $2 \
                     ORDER BY d.seq, d.endpoint LIMIT $3",
                    &[
                        (&endpoint, Type::TEXT),
                        (&after_seq, Type::INT8),
                        (&limit, Type::INT8),
                    ],
                )
                .await?;
            rows.iter()
                .map(|row| {
                    Ok(DeadLetter {
                        endpoint: get(row, 0)?,
                        seq: get(row, 1)?,
                        event_id: get(row, 2)?,
                        event_type: get(row, 3)?,
                        payment_id: get(row, 4)?,
                        attempts: u32::try_from(get::<i32>(row, 5)?).unwrap_or(0),
                        last_attempt_ms: get(row, 6)?,
                        last_error: get(row, 7)?,
                    })
                })
                .collect()
        })
    }

    fn delivery_backlog(&self) -> StoreFuture<'_, Vec<EndpointBacklog>> {
        Box::pin(async move {
            let rows = self
                .inner
                .query(
                    "SELECT endpoint, count(*) FILTER (WHERE state = 'pending'), \
                            count(*) FILTER (WHERE state = 'dead') \
                     FROM webhook_deliveries GROUP BY endpoint ORDER BY endpoint",
                    &[],
                )
                .await?;
            rows.iter()
                .map(|row| {
                    Ok(EndpointBacklog {
                        endpoint: get(row, 0)?,
                        pending: u64::try_from(get::<i64>(row, 1)?).unwrap_or(0),
                        dead: u64::try_from(get::<i64>(row, 2)?).unwrap_or(0),
                    })
                })
                .collect()
        })
    }

    fn redeliver<'a>(
        &'a self,
        endpoint: &'a str,
        event_id: Option<&'a str>,
    ) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            self.inner
                .query(
                    "UPDATE webhook_deliveries SET state = 'pending', attempts = 0, \
                     next_attempt_ms = 0 WHERE endpoint = $1 AND state = 'dead' \
                     AND ($2::text IS NULL OR seq = (SELECT seq FROM outbox WHERE event_id = $2)) \
                     RETURNING 1",
                    &[(&endpoint, Type::TEXT), (&event_id, Type::TEXT)],
                )
                .await?;
            Ok(())
        })
    }

    fn record_rollup(&self, rollup: Rollup) -> StoreFuture<'_, ()> {
        Box::pin(async move {
            self.inner
                .query(
                    "INSERT INTO rollups (span_ms, start_ms, host_id, tally) \
                     VALUES ($1, $2, $3, $4) \
                     ON CONFLICT (span_ms, start_ms, host_id) DO UPDATE SET tally = excluded.tally",
                    &[
                        (&rollup.span_ms, Type::INT8),
                        (&rollup.start_unix_ms, Type::INT8),
                        (&rollup.host_id, Type::TEXT),
                        (&rollup.tally, Type::TEXT),
                    ],
                )
                .await?;
            Ok(())
        })
    }

    fn rollups<'a>(
        &'a self,
        span_ms: i64,
        from_unix_ms: i64,
        to_unix_ms: i64,
        host_id: Option<&'a str>,
    ) -> StoreFuture<'a, Vec<Rollup>> {
        Box::pin(async move {
            let rows = self
                .inner
                .query(
                    "SELECT host_id, start_ms, tally FROM rollups \
                     WHERE span_ms = $1 AND start_ms >= $2 AND start_ms < $3 \
                       AND ($4::text IS NULL OR host_id = $4) \
                     ORDER BY start_ms, host_id",
                    &[
                        (&span_ms, Type::INT8),
                        (&from_unix_ms, Type::INT8),
                        (&to_unix_ms, Type::INT8),
                        (&host_id, Type::TEXT),
                    ],
                )
                .await?;
            Ok(rows
                .iter()
                .map(|row| Rollup {
                    host_id: row.get(0),
                    span_ms,
                    start_unix_ms: row.get(1),
                    tally: row.get(2),
                })
                .collect())
        })
    }

    fn prune_rollups(&self, span_ms: i64, before_unix_ms: i64) -> StoreFuture<'_, ()> {
        Box::pin(async move {
            self.inner
                .query(
                    "DELETE FROM rollups WHERE span_ms = $1 AND start_ms < $2",
                    &[(&span_ms, Type::INT8), (&before_unix_ms, Type::INT8)],
                )
                .await?;
            Ok(())
        })
    }

    /// The one row of `relay_lease`: taken if free or expired (on the database's clock),
    /// renewed by its holder.
    fn relay_lease<'a>(&'a self, holder: &'a str, lease_ms: u64) -> StoreFuture<'a, bool> {
        Box::pin(async move {
            let lease_ms = i64::try_from(lease_ms).unwrap_or(i64::MAX);
            let rows = self
                .inner
                .query(
                    "INSERT INTO relay_lease (id, holder, lease_until) \
                     VALUES (1, $1, clock_timestamp() + $2 * interval '1 millisecond') \
                     ON CONFLICT (id) DO UPDATE \
                         SET holder = EXCLUDED.holder, lease_until = EXCLUDED.lease_until \
                         WHERE relay_lease.holder = EXCLUDED.holder \
                            OR relay_lease.lease_until < clock_timestamp() \
                     RETURNING holder",
                    &[(&holder, Type::TEXT), (&lease_ms, Type::INT8)],
                )
                .await?;
            Ok(!rows.is_empty())
        })
    }

    fn heartbeat<'a>(&'a self, host: &'a HostBeat) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let canary_version = host.canary.as_ref().map(|(version, _)| version.as_str());
            let canary_percent = host.canary.as_ref().map(|(_, percent)| i16::from(*percent));
            self.inner
                .query(
                    "WITH beat AS (\
                         INSERT INTO hosts (id, address, version, rule_set_version, \
                                            started_at_ms, heartbeat, canary_version, \
                                            canary_percent) \
                         VALUES ($1, $2, $3, $4, $5, clock_timestamp(), $6, $7) \
                         ON CONFLICT (id) DO UPDATE SET address = excluded.address, \
                             version = excluded.version, \
                             rule_set_version = excluded.rule_set_version, \
                             heartbeat = excluded.heartbeat, \
                             canary_version = excluded.canary_version, \
                             canary_percent = excluded.canary_percent \
                         RETURNING 1) \
                     DELETE FROM hosts WHERE heartbeat < clock_timestamp() - interval '1 day'",
                    &[
                        (&host.id, Type::TEXT),
                        (&host.address, Type::TEXT),
                        (&host.version, Type::TEXT),
                        (&host.rule_set_version, Type::TEXT),
                        (&host.started_at_unix_ms, Type::INT8),
                        (&canary_version, Type::TEXT),
                        (&canary_percent, Type::INT2),
                    ],
                )
                .await?;
            Ok(())
        })
    }

    fn hosts(&self) -> StoreFuture<'_, Vec<HostRow>> {
        Box::pin(async move {
            let rows = self
                .inner
                .query(
                    "SELECT id, address, version, rule_set_version, started_at_ms, \
                            (extract(epoch FROM heartbeat) * 1000)::int8, \
                            (extract(epoch FROM clock_timestamp() - heartbeat) * 1000)::int8, \
                            canary_version, canary_percent \
                     FROM hosts ORDER BY heartbeat DESC, id",
                    &[],
                )
                .await?;
            rows.iter()
                .map(|row| {
                    Ok(HostRow {
                        beat: HostBeat {
                            id: get(row, 0)?,
                            address: get(row, 1)?,
                            version: get(row, 2)?,
                            rule_set_version: get(row, 3)?,
                            canary: get::<Option<String>>(row, 7)?
                                .zip(get::<Option<i16>>(row, 8)?)
                                .map(|(version, percent)| {
                                    (version, u8::try_from(percent).unwrap_or(0))
                                }),
                            started_at_unix_ms: get(row, 4)?,
                        },
                        heartbeat_unix_ms: get(row, 5)?,
                        heartbeat_age_ms: get(row, 6)?,
                    })
                })
                .collect()
        })
    }

    fn leave<'a>(&'a self, host_id: &'a str) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            self.inner
                .query("DELETE FROM hosts WHERE id = $1", &[(&host_id, Type::TEXT)])
                .await?;
            Ok(())
        })
    }

    /// Stops taking writes, commits those queued, writes the shadow decisions queued, and
    /// waits for the writer to finish.
    fn close(&self) {
        drop(self.writer.lock().unwrap_or_else(|p| p.into_inner()).take());
        if let Some(done) = self
            .writer_done
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
        {
            let _ = done.recv();
        }
    }

    fn location(&self) -> String {
        self.location.clone()
    }
}

impl Drop for PgStore {
    fn drop(&mut self) {
        self.close();
        if let Some(runtime) = self
            .runtime
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
        {
            // Its connections end with it; nothing is left to wait for after close.
            runtime.shutdown_background();
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    //! The store's conformance suite on a real PostgreSQL server: each test in a database
    //! of its own, made for it and dropped after.
    //!
    //! `PAYRULES_TEST_POSTGRES` names the server (a role that may create databases, e.g.
    //! `postgres://postgres@127.0.0.1:5432/postgres`), `PAYRULES_TEST_POSTGRES_PASSWORD`
    //! its password if it needs one. Without it these tests say so and pass, unless
    //! `PAYRULES_REQUIRE_POSTGRES` is set (CI sets both): then they fail.

    use super::*;
    use crate::store::audit_keys::CheckpointLog;
    use crate::store::conformance::{self, Harness, test_keys, test_master};

    /// A database made for one test, dropped (with its connections) when this is.
    pub(crate) struct TestDatabase {
        admin: PgSettings,
        name: String,
        /// Settings that reach it.
        pub(crate) settings: PgSettings,
    }

    impl TestDatabase {
        /// A fresh database on the test server, or `None` (with a note) if there is none.
        pub(crate) fn make() -> Option<TestDatabase> {
            let Ok(url) = std::env::var("PAYRULES_TEST_POSTGRES") else {
                assert!(
                    std::env::var_os("PAYRULES_REQUIRE_POSTGRES").is_none(),
                    "PAYRULES_REQUIRE_POSTGRES is set, but PAYRULES_TEST_POSTGRES is not"
                );
                eprintln!("PAYRULES_TEST_POSTGRES is not set: the PostgreSQL test is skipped");
                return None;
            };
            let admin = PgSettings {
                url,
                password: std::env::var("PAYRULES_TEST_POSTGRES_PASSWORD").ok(),
                commit_batch_max: 64,
                holder: "test".to_owned(),
                tls_ca_file: None,
                tls_client: None,
            };
            let mut random = [0u8; 8];
            getrandom::fill(&mut random).expect("randomness");
            let name = format!("payrules_test_{}", crate::registry::hex(&random));
            admin_sql(&admin, &format!("CREATE DATABASE {name}"));
            let mut config = tokio_postgres::Config::from_str(&admin.url).expect("the URL");
            config.dbname(&name);
            let mut settings = admin.clone();
            settings.url = url_of(&config);
            Some(TestDatabase {
                admin,
                name,
                settings,
            })
        }
    }

    impl Drop for TestDatabase {
        fn drop(&mut self) {
            admin_sql(
                &self.admin,
                &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
            );
        }
    }

    /// A key=value connection string for `config` (without its password).
    fn url_of(config: &tokio_postgres::Config) -> String {
        use tokio_postgres::config::Host;
        let host = match config.get_hosts().first() {
            Some(Host::Tcp(name)) => name.clone(),
            Some(Host::Unix(path)) => path.display().to_string(),
            None => "localhost".to_owned(),
        };
        format!(
            "host={host} port={} user={} dbname={}",
            config.get_ports().first().copied().unwrap_or(5432),
            config.get_user().unwrap_or("postgres"),
            config.get_dbname().unwrap_or("postgres"),
        )
    }

    /// Connects to the test server as `settings` say and runs `work` on the connection,
    /// on a thread and runtime of its own (callers may be async).
    fn on_test_server<T: Send + 'static>(
        settings: &PgSettings,
        work: impl FnOnce(tokio_postgres::Client) -> WorkFuture<T> + Send + 'static,
    ) -> T {
        let settings = settings.clone();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime");
            runtime.block_on(async {
                let mut config = tokio_postgres::Config::from_str(&settings.url).expect("URL");
                if let Some(password) = &settings.password {
                    config.password(password.as_bytes());
                }
                let (client, connection) = config.connect(NoTls).await.expect("connects");
                tokio::spawn(connection);
                work(client).await.expect("the work on the test server")
            })
        })
        .join()
        .expect("the test server's thread")
    }

    /// Runs one statement as the admin.
    fn admin_sql(admin: &PgSettings, sql: &str) {
        let sql = sql.to_owned();
        on_test_server(admin, move |client| {
            Box::pin(async move {
                client
                    .batch_execute(&sql)
                    .await
                    .expect("the admin statement");
                Ok(())
            })
        });
    }

    pub(crate) fn harness(db: &TestDatabase, dir: &tempfile::TempDir) -> Harness {
        let checkpoint_file = dir.path().join("payrules-audit.checkpoints");
        let checkpoints = checkpoint_file.clone();
        let settings = db.settings.clone();
        let raw_settings = db.settings.clone();
        let opened = AtomicUsize::new(0);
        Harness {
            open: Box::new(move || {
                // Each store opened is a host of its own.
                let mut settings = settings.clone();
                settings.holder = format!("host-{}", opened.fetch_add(1, Ordering::Relaxed));
                let sealing = AuditSealing {
                    keys: test_keys(),
                    checkpoints: CheckpointLog::open(&checkpoints, 1_000).expect("checkpoints"),
                    personal: PersonalData::new(test_master()),
                };
                Arc::new(PgStore::open(&settings, Arc::new(()), sealing).expect("opens"))
            }),
            keys: test_keys(),
            checkpoint_file,
            raw: Box::new(move || rows_as_text(&raw_settings)),
        }
    }

    /// Every row of every table of the test database, as text.
    fn rows_as_text(settings: &PgSettings) -> String {
        on_test_server(settings, |client| {
            Box::pin(async move {
                let tables = client
                    .query(
                        "SELECT tablename FROM pg_tables WHERE schemaname = 'public'",
                        &[],
                    )
                    .await
                    .expect("the tables");
                let mut text = String::new();
                for table in &tables {
                    let table: &str = table.get(0);
                    for message in client
                        .simple_query(&format!("SELECT t::text FROM \"{table}\" t"))
                        .await
                        .expect("the rows")
                    {
                        if let tokio_postgres::SimpleQueryMessage::Row(row) = message {
                            text.push_str(row.get(0).unwrap_or(""));
                            text.push('\n');
                        }
                    }
                }
                Ok(text)
            })
        })
    }

    macro_rules! conformance {
        ($($behaviour:ident),* $(,)?) => {$(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $behaviour() {
                let Some(db) = TestDatabase::make() else { return };
                let dir = tempfile::tempdir().expect("a directory");
                conformance::$behaviour(&harness(&db, &dir)).await;
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
        a_claim_holds_a_key_against_every_host_until_its_lease_ends,
        a_commit_whose_claim_was_taken_over_is_refused,
        hosts_sharing_a_database_form_one_chain,
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

    /// Runs statements in the test database as `settings` (its role) and returns the
    /// error text of the first that fails, if one does.
    fn sql_as(settings: &PgSettings, sql: &str) -> Option<String> {
        let sql = sql.to_owned();
        on_test_server(settings, move |client| {
            Box::pin(async move {
                Ok(client.batch_execute(&sql).await.err().map(|e| {
                    e.as_db_error()
                        .map_or_else(|| e.to_string(), |d| d.message().to_owned())
                }))
            })
        })
    }

    /// The split docs/deployment.md recommends: an owner creates the schema, the service
    /// serves with a role that may append but not rewrite the audit log.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_service_role_without_ddl_rights_serves_a_current_schema() {
        let Some(db) = TestDatabase::make() else {
            return;
        };
        let dir = tempfile::tempdir().expect("a directory");
        let owner = harness(&db, &dir);
        let store = (owner.open)();
        store.close();
        drop(store);
        let role = format!("{}_service", db.name);
        admin_sql(
            &db.admin,
            &format!("CREATE ROLE {role} LOGIN PASSWORD 'service-password'"),
        );
        // The database goes first (the role's grants are in it), then the role.
        struct DropRole(Option<TestDatabase>, PgSettings, String);
        impl Drop for DropRole {
            fn drop(&mut self) {
                drop(self.0.take());
                admin_sql(&self.1, &format!("DROP ROLE IF EXISTS {}", self.2));
            }
        }
        let admin = db.admin.clone();
        let guard = DropRole(Some(db), admin, role.clone());
        let db = guard.0.as_ref().expect("the database");
        assert_eq!(
            sql_as(
                &db.settings,
                &format!(
                    "GRANT SELECT, INSERT ON ALL TABLES IN SCHEMA public TO {role}; \
                     GRANT UPDATE, DELETE ON idempotency_keys, idempotency_claims, hosts, \
                         webhook_deliveries, outbox TO {role}; \
                     GRANT UPDATE ON audit_head, relay_lease, data_keys TO {role}; \
                     GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO {role}"
                )
            ),
            None
        );
        let mut service = db.settings.clone();
        service.url = format!("{} user={role}", db.settings.url);
        service.password = Some("service-password".to_owned());
        let sealing = AuditSealing {
            keys: test_keys(),
            checkpoints: CheckpointLog::open(&owner.checkpoint_file, 1_000).expect("checkpoints"),
            personal: PersonalData::new(test_master()),
        };
        let store = PgStore::open(&service, Arc::new(()), sealing).expect("serves");
        let Claim::Held { token } = store.claim("checkout", "k", 60_000).await.expect("claims")
        else {
            panic!("the key is free");
        };
        store
            .audit_event("rules.loaded", "v1", &serde_json::json!({}))
            .await
            .expect("appends");
        store
            .release("checkout", "k", token.expect("a token"))
            .await
            .expect("releases");
        let beat = crate::store::HostBeat {
            id: "service-host".to_owned(),
            address: "127.0.0.1:1".to_owned(),
            version: "0".to_owned(),
            rule_set_version: "v1".to_owned(),
            canary: Some(("v2".to_owned(), 5)),
            started_at_unix_ms: 0,
        };
        store.heartbeat(&beat).await.expect("beats");
        store.heartbeat(&beat).await.expect("beats again");
        store.leave("service-host").await.expect("leaves");
        store.close();
        for attack in [
            "UPDATE audit_log SET detail = '{}'",
            "DELETE FROM audit_log",
            "DROP TRIGGER audit_log_is_append_only ON audit_log",
            "ALTER TABLE audit_log DISABLE TRIGGER USER",
            "TRUNCATE audit_log",
            "UPDATE reviews SET verdict = 'approve'",
            "DELETE FROM reviews",
            "ALTER TABLE reviews DISABLE TRIGGER USER",
        ] {
            let refused = sql_as(&service, attack);
            assert!(
                refused.as_deref().is_some_and(|e| e.contains("permission denied")
                    || e.contains("must be owner")),
                "{attack}: {refused:?}"
            );
        }
        assert_eq!(owner.verify(&store).entries, 1);
    }

    /// The CA of the test server's certificate and one that signed nothing, if the test
    /// server speaks TLS (`PAYRULES_TEST_POSTGRES_CA`, `…_OTHER_CA`; CI sets them).
    fn test_cas() -> Option<(std::path::PathBuf, std::path::PathBuf)> {
        match (
            std::env::var_os("PAYRULES_TEST_POSTGRES_CA"),
            std::env::var_os("PAYRULES_TEST_POSTGRES_OTHER_CA"),
        ) {
            (Some(ca), Some(other)) => Some((ca.into(), other.into())),
            _ => {
                assert!(
                    std::env::var_os("PAYRULES_REQUIRE_POSTGRES").is_none(),
                    "PAYRULES_REQUIRE_POSTGRES is set, but not the test server's CAs"
                );
                eprintln!("PAYRULES_TEST_POSTGRES_CA is not set: the TLS test is skipped");
                None
            }
        }
    }

    /// A client certificate the test server's `ssl_ca_file` trusts and one of another CA,
    /// each as (certificate, key) (`PAYRULES_TEST_POSTGRES_CLIENT`, `…_OTHER_CLIENT`: a
    /// directory path prefix `P` with `P.pem` and `P.key`; CI makes them).
    fn test_clients() -> Option<(
        (std::path::PathBuf, std::path::PathBuf),
        (std::path::PathBuf, std::path::PathBuf),
    )> {
        let pair = |name: &str| {
            std::env::var_os(name).map(|prefix| {
                let prefix = std::path::PathBuf::from(prefix);
                (prefix.with_extension("pem"), prefix.with_extension("key"))
            })
        };
        match (
            pair("PAYRULES_TEST_POSTGRES_CLIENT"),
            pair("PAYRULES_TEST_POSTGRES_OTHER_CLIENT"),
        ) {
            (Some(client), Some(other)) => Some((client, other)),
            _ => {
                assert!(
                    std::env::var_os("PAYRULES_REQUIRE_POSTGRES").is_none(),
                    "PAYRULES_REQUIRE_POSTGRES is set, but not the test clients' certificates"
                );
                eprintln!("PAYRULES_TEST_POSTGRES_CLIENT is not set: the mTLS test is skipped");
                None
            }
        }
    }

    /// With `tls_client`, the host presents its certificate and the server verifies it:
    /// the server names the certificate's subject for the session. A certificate of a CA
    /// the server does not trust gets no connection; a key file others may read, or the
    /// key of another certificate, is refused before any connection, naming the setting.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_client_certificate_is_presented_and_verified_by_the_database() {
        let Some(db) = TestDatabase::make() else {
            return;
        };
        let (Some((ca, _)), Some((client, other_client))) = (test_cas(), test_clients()) else {
            return;
        };
        let dir = tempfile::tempdir().expect("a directory");
        let sealing = || AuditSealing {
            keys: test_keys(),
            checkpoints: CheckpointLog::open(&dir.path().join("checkpoints"), 1_000)
                .expect("checkpoints"),
            personal: PersonalData::new(test_master()),
        };
        let mut settings = db.settings.clone();
        settings.tls_ca_file = Some(ca);
        settings.tls_client = Some(client.clone());
        let store = PgStore::open(&settings, Arc::new(()), sealing()).expect("opens with mTLS");
        let rows = store
            .inner
            .query(
                "SELECT ssl, client_dn FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
                &[],
            )
            .await
            .expect("reads");
        let ssl: bool = get(&rows[0], 0).unwrap();
        let client_dn: Option<String> = rows[0].get(1);
        assert!(ssl);
        assert_eq!(
            client_dn.as_deref(),
            Some("/CN=payrules-host"),
            "the server verified the host's certificate"
        );
        store.close();

        // A certificate the server's CA did not sign: no connection.
        settings.tls_client = Some(other_client.clone());
        match PgStore::open(&settings, Arc::new(()), sealing()) {
            Err(StoreError::Unavailable { .. } | StoreError::Failed { .. }) => {}
            Err(other) => panic!("refused, but how: {other}"),
            Ok(_) => panic!("the server took a certificate its CA did not sign"),
        }

        // A key others may read, and the key of another certificate: refused at once.
        let loose = dir.path().join("loose.key");
        std::fs::copy(&client.1, &loose).expect("copied");
        std::fs::set_permissions(&loose, std::os::unix::fs::PermissionsExt::from_mode(0o644))
            .expect("chmod");
        settings.tls_client = Some((client.0.clone(), loose));
        let error = PgStore::open(&settings, Arc::new(()), sealing())
            .err()
            .expect("refused")
            .to_string();
        assert!(
            error.contains("store.tls_client_key") && error.contains("chmod 600"),
            "{error}"
        );
        settings.tls_client = Some((client.0.clone(), other_client.1.clone()));
        let error = PgStore::open(&settings, Arc::new(()), sealing())
            .err()
            .expect("refused")
            .to_string();
        assert!(error.contains("is not the key of"), "{error}");
    }

    /// A renewal of the test client's certificate (another subject, the same CA), as
    /// (certificate, key) (`PAYRULES_TEST_POSTGRES_RENEWED_CLIENT`; CI makes it).
    fn test_renewed_client() -> Option<(std::path::PathBuf, std::path::PathBuf)> {
        match std::env::var_os("PAYRULES_TEST_POSTGRES_RENEWED_CLIENT") {
            Some(prefix) => {
                let prefix = std::path::PathBuf::from(prefix);
                Some((prefix.with_extension("pem"), prefix.with_extension("key")))
            }
            None => {
                assert!(
                    std::env::var_os("PAYRULES_REQUIRE_POSTGRES").is_none(),
                    "PAYRULES_REQUIRE_POSTGRES is set, but not PAYRULES_TEST_POSTGRES_RENEWED_CLIENT"
                );
                eprintln!("PAYRULES_TEST_POSTGRES_RENEWED_CLIENT is not set: the test is skipped");
                None
            }
        }
    }

    /// A client certificate renewed in place (new files over the old, as a renewal job or
    /// a mounted secret does) is what the host presents from its next connection to the
    /// database: no restart. The database names the renewed subject once the store's
    /// connections are new.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_renewed_client_certificate_is_presented_from_the_next_connection() {
        let Some(db) = TestDatabase::make() else {
            return;
        };
        let (Some((ca, _)), Some((client, _)), Some(renewed)) =
            (test_cas(), test_clients(), test_renewed_client())
        else {
            return;
        };
        let dir = tempfile::tempdir().expect("a directory");
        let (certificate, key) = (dir.path().join("host.pem"), dir.path().join("host.key"));
        let install = |(from_certificate, from_key): &(std::path::PathBuf, std::path::PathBuf)| {
            std::fs::copy(from_certificate, &certificate).expect("copied");
            std::fs::copy(from_key, &key).expect("copied");
            std::fs::set_permissions(&key, std::os::unix::fs::PermissionsExt::from_mode(0o600))
                .expect("chmod");
        };
        install(&client);
        let mut settings = db.settings.clone();
        settings.tls_ca_file = Some(ca);
        settings.tls_client = Some((certificate.clone(), key.clone()));
        let sealing = AuditSealing {
            keys: test_keys(),
            checkpoints: CheckpointLog::open(&dir.path().join("checkpoints"), 1_000)
                .expect("checkpoints"),
            personal: PersonalData::new(test_master()),
        };
        let store = PgStore::open(&settings, Arc::new(()), sealing).expect("opens with mTLS");
        let subject = || async {
            let rows = store
                .inner
                .query(
                    "SELECT client_dn FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
                    &[],
                )
                .await?;
            Ok::<_, StoreError>(rows[0].get::<_, Option<String>>(0))
        };
        assert_eq!(
            subject().await.expect("reads").as_deref(),
            Some("/CN=payrules-host")
        );

        install(&renewed);
        // The store's connections end (as at a database restart or a failover); every
        // connection made from then on presents the renewed certificate.
        admin_sql(
            &db.admin,
            &format!(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{}'",
                db.name
            ),
        );
        let started = std::time::Instant::now();
        let mut answered = 0;
        // Every reader, twice over: a reader whose connection was ended fails once, then
        // connects again.
        while answered < 2 * READERS {
            match subject().await {
                Ok(found) => {
                    assert_eq!(found.as_deref(), Some("/CN=payrules-host-renewed"));
                    answered += 1;
                }
                Err(error) => assert!(
                    started.elapsed() < Duration::from_secs(20),
                    "no new connection: {error}"
                ),
            }
        }
        store.close();
    }

    /// With `tls_ca_file`, every connection is TLS with the server's certificate verified:
    /// the server says the session is encrypted; a CA that did not sign the server's
    /// certificate gets no connection at all (never a plain one), and says why.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn tls_to_the_database_is_verified_and_used() {
        let Some(db) = TestDatabase::make() else {
            return;
        };
        let Some((ca, other_ca)) = test_cas() else {
            return;
        };
        let dir = tempfile::tempdir().expect("a directory");
        let sealing = || AuditSealing {
            keys: test_keys(),
            checkpoints: CheckpointLog::open(&dir.path().join("checkpoints"), 1_000)
                .expect("checkpoints"),
            personal: PersonalData::new(test_master()),
        };
        let mut settings = db.settings.clone();
        settings.tls_ca_file = Some(ca);
        let store = PgStore::open(&settings, Arc::new(()), sealing()).expect("opens over TLS");
        let rows = store
            .inner
            .query(
                "SELECT ssl, version FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
                &[],
            )
            .await
            .expect("reads");
        let (ssl, version): (bool, String) = (get(&rows[0], 0).unwrap(), get(&rows[0], 1).unwrap());
        assert!(ssl, "the session is encrypted");
        assert!(version.starts_with("TLSv1."), "{version}");
        store
            .commit(sample_decision(&store))
            .await
            .expect("commits over TLS");
        store.close();

        settings.tls_ca_file = Some(other_ca);
        match PgStore::open(&settings, Arc::new(()), sealing()) {
            Err(StoreError::Unavailable { reason }) => {
                assert!(reason.to_lowercase().contains("certificate"), "{reason}")
            }
            Err(other) => panic!("not Unavailable: {other}"),
            Ok(_) => panic!("connected to a server whose certificate no trusted CA signed"),
        }
        settings.tls_ca_file = Some(dir.path().join("missing.pem"));
        let error = PgStore::open(&settings, Arc::new(()), sealing())
            .err()
            .expect("refused")
            .to_string();
        assert!(error.contains("store.tls_ca_file"), "{error}");
    }

    /// A decision to commit, as the conformance suite makes them.
    fn sample_decision(store: &dyn Store) -> crate::store::NewDecision {
        let payment = crate::model::Payment::from_json(include_str!(
            "../../../../examples/payments/us-payroll-fednow.json"
        ))
        .expect("the example payment");
        let fingerprint = store.fingerprint(b"tls");
        crate::store::NewDecision {
            payment_id: "pay_tls".to_owned(),
            received_at_unix_ms: 1_790_000_000_000,
            submitted_by: "checkout".to_owned(),
            decision: serde_json::from_value(serde_json::json!({
                "payment_id": "pay_tls",
                "end_to_end_id": "E2E-tls",
                "status": "accepted",
                "reasons": [],
                "rule_set_version": "rules-v1",
                "decided_at_unix_ms": 1_790_000_000_000_i64,
                "rules": [],
            }))
            .expect("a decision"),
            payment,
            idempotency: crate::store::IdempotencyClaim {
                principal: "checkout".to_owned(),
                key: "tls".to_owned(),
                fingerprint,
                token: None,
            },
        }
    }

    /// `audit verify`'s look-ups of payments and reviews without their entry are planned
    /// as a hash anti-join, not a nested loop, even with the statistics of empty tables
    /// (taken before 20,000 payments arrived, as after a burst of traffic): a nested loop
    /// over every entry for each payment made `verify` quadratic (15 s for 34,000). And
    /// they find the first row missing its entry.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn verify_finds_rows_without_entries_without_a_quadratic_plan() {
        let Some(db) = TestDatabase::make() else {
            return;
        };
        let dir = tempfile::tempdir().expect("a directory");
        let store = (harness(&db, &dir).open)();
        drop(store);
        let plans = on_test_server(&db.settings, |client| {
            Box::pin(async move {
                client
                    .batch_execute(
                        "ANALYZE payments, audit_log, reviews;
                         INSERT INTO payments (id, received_at_ms, submitted_by, end_to_end_id,
                             amount, currency, status, rule_set_version, payment, decision)
                         SELECT 'P' || g, g, 'key', 'E' || g, '1.00', 'EUR', 'pending_review',
                                'v', '{}', '{}'
                         FROM generate_series(1, 20000) g;
                         INSERT INTO audit_log (seq, at_ms, actor, action, subject, detail,
                                                prev_hash, hash)
                         SELECT g, g, 'key', 'payment.decided', 'P' || g, '', '', ''
                         FROM generate_series(1, 20000) g WHERE g NOT IN (12345, 17000);
                         INSERT INTO reviews (payment_id, verdict, reviewer, reviewed_at_ms,
                                              decision_sha256, expired)
                         SELECT 'P' || g, 'approve', 'r', g, '', false
                         FROM generate_series(1, 20000) g;
                         INSERT INTO audit_log (seq, at_ms, actor, action, subject, detail,
                                                prev_hash, hash)
                         SELECT 100000 + g, g, 'r', 'payment.reviewed', 'P' || g, '', '', ''
                         FROM generate_series(1, 20000) g WHERE g <> 4321;",
                    )
                    .await
                    .map_err(pg_error)?;
                let mut found = Vec::new();
                for (sql, actions) in [
                    (PAYMENT_WITHOUT_ENTRY, None),
                    (REVIEW_WITHOUT_ENTRY, Some([REVIEWED, REVIEW_EXPIRED])),
                ] {
                    let decided = DECIDED;
                    let actions = actions.as_ref().map(|a| a.as_slice());
                    let params: [&(dyn tokio_postgres::types::ToSql + Sync); 1] = match &actions {
                        None => [&decided],
                        Some(actions) => [actions],
                    };
                    let plan: Vec<String> = client
                        .query(&format!("EXPLAIN {sql}"), &params)
                        .await
                        .map_err(pg_error)?
                        .iter()
                        .map(|row| row.get(0))
                        .collect();
                    let first: String = client
                        .query_one(sql, &params)
                        .await
                        .map_err(pg_error)?
                        .get(0);
                    found.push((plan.join("\n"), first));
                }
                Ok(found)
            })
        });
        for (plan, _) in &plans {
            assert!(!plan.contains("Nested Loop"), "a quadratic plan:\n{plan}");
        }
        assert_eq!(plans[0].1, "P12345");
        assert_eq!(plans[1].1, "P4321");
    }

    /// A payment whose sealed decision is 3 KB (ciphertext, which does not compress)
    /// stays whole in its row: no compression tried, nothing moved to the TOAST table
    /// (which cost half of a payment's insert).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_sealed_decision_stays_in_its_row() {
        let Some(db) = TestDatabase::make() else {
            return;
        };
        let dir = tempfile::tempdir().expect("a directory");
        drop((harness(&db, &dir).open)());
        let (toasted, stored, length) = on_test_server(&db.settings, |client| {
            Box::pin(async move {
                client
                    .batch_execute(
                        "INSERT INTO payments (id, received_at_ms, submitted_by, end_to_end_id,
                             amount, currency, status, rule_set_version, payment, decision)
                         SELECT 'P1', 1, 'key', 'E1', '1.00', 'EUR', 'accepted', 'v', '{}',
                                (SELECT string_agg(md5(random()::text), '')
                                 FROM generate_series(1, 96))",
                    )
                    .await
                    .map_err(pg_error)?;
                let row = client
                    .query_one(
                        "SELECT pg_relation_size(c.reltoastrelid),
                                (SELECT pg_column_size(decision) FROM payments),
                                (SELECT length(decision) FROM payments)::int4
                         FROM pg_class c WHERE c.relname = 'payments'",
                        &[],
                    )
                    .await
                    .map_err(pg_error)?;
                Ok((
                    row.get::<_, i64>(0),
                    row.get::<_, i32>(1),
                    row.get::<_, i32>(2),
                ))
            })
        });
        assert_eq!(length, 3072);
        assert_eq!(toasted, 0, "the decision was moved to the TOAST table");
        assert!(
            stored > length,
            "stored as written, not compressed: {stored} bytes"
        );
    }

    #[test]
    fn sslmode_require_without_a_ca_is_refused_rather_than_unverified() {
        let settings = PgSettings {
            url: "postgres://payrules@db.internal:5432/payrules?sslmode=require".to_owned(),
            password: None,
            commit_batch_max: 1,
            holder: "test".to_owned(),
            tls_ca_file: None,
            tls_client: None,
        };
        let error = PgStore::open_existing(&settings, test_master())
            .err()
            .expect("refused")
            .to_string();
        assert!(error.contains("store.tls_ca_file"), "{error}");
    }

    #[test]
    fn a_url_with_a_password_is_refused_and_locations_never_show_one() {
        let settings = PgSettings {
            url: "postgres://payrules:hunter2@db.internal:5433/payrules".to_owned(),
            password: None,
            commit_batch_max: 1,
            holder: "test".to_owned(),
            tls_ca_file: None,
            tls_client: None,
        };
        let error = PgStore::open_existing(&settings, test_master())
            .err()
            .expect("refused")
            .to_string();
        assert!(error.contains("password_file"), "{error}");
        assert!(!error.contains("hunter2"), "{error}");
        assert!(
            error.contains("postgres://payrules@db.internal:5433/payrules"),
            "{error}"
        );
    }

    #[test]
    fn an_unreachable_database_is_unavailable_not_failed() {
        // A port nothing listens on, on loopback.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .expect("a port")
            .local_addr()
            .expect("its address")
            .port();
        let settings = PgSettings {
            url: format!("postgres://payrules@127.0.0.1:{port}/payrules"),
            password: None,
            commit_batch_max: 1,
            holder: "test".to_owned(),
            tls_ca_file: None,
            tls_client: None,
        };
        match PgStore::open_existing(&settings, test_master()) {
            Err(StoreError::Unavailable { reason }) => assert!(reason.contains("127.0.0.1")),
            Err(other) => panic!("not Unavailable: {other}"),
            Ok(_) => panic!("opened a store where there is none"),
        }
    }
}
