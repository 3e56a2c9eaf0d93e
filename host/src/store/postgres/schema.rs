//! The PostgreSQL schema and its migrations.

use tokio_postgres::Client;

use super::pg_error;
use crate::store::audit::GENESIS;
use crate::store::personal::{PersonalData, WrappedKey};
use crate::store::{StoreError, now_unix_ms};

/// The advisory lock key under which hosts migrate, one at a time ("payrules" in ASCII).
const MIGRATION_LOCK: i64 = 0x7061_7972_756c_6573;

/// The schema, one migration per entry: entry `n` takes the database from version `n` to
/// `n + 1` (`payrules_schema.version`). Never edit a released migration; add one.
///
/// Text columns keep payments, decisions and audit details byte for byte as written
/// (`TEXT`, not `JSONB`, which would reformat them and break their hashes).
const MIGRATIONS: &[&str] = &[
    r"
CREATE TABLE payments (
    seq BIGSERIAL PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    received_at_ms BIGINT NOT NULL,
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

-- A decision's idempotency record. Its payment row is inserted later in the same
-- transaction, hence the deferred check.
CREATE TABLE idempotency_keys (
    principal TEXT NOT NULL,
    key TEXT NOT NULL,
    fingerprint BYTEA NOT NULL,
    payment_id TEXT NOT NULL REFERENCES payments (id) DEFERRABLE INITIALLY DEFERRED,
    created_at_ms BIGINT NOT NULL,
    PRIMARY KEY (principal, key)
);
CREATE INDEX idempotency_keys_by_age ON idempotency_keys (created_at_ms);

-- A key held by a request being decided on some host: a lease (on the database's clock)
-- and a fencing token the commit must still hold. UNLOGGED: no WAL (a claim costs a
-- payment no write-ahead log, nor a standby any replication); a crash of the database
-- empties it, which frees keys whose requests fail then anyway, and whose late commits
-- the fence refuses (no claim, no commit).
CREATE UNLOGGED TABLE idempotency_claims (
    principal TEXT NOT NULL,
    key TEXT NOT NULL,
    token BIGINT NOT NULL,
    holder TEXT NOT NULL,
    lease_until TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (principal, key)
);
CREATE SEQUENCE idempotency_claim_tokens;

CREATE TABLE messages (
    principal TEXT NOT NULL,
    message_id TEXT NOT NULL,
    fingerprint BYTEA NOT NULL,
    received_at_ms BIGINT NOT NULL,
    report TEXT NOT NULL,
    PRIMARY KEY (principal, message_id)
);

CREATE TABLE audit_log (
    seq BIGINT PRIMARY KEY,
    at_ms BIGINT NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    subject TEXT NOT NULL,
    detail TEXT NOT NULL,
    prev_hash BYTEA NOT NULL,
    hash BYTEA NOT NULL,
    key_id TEXT,
    mac BYTEA
);
CREATE INDEX audit_log_by_action ON audit_log (action, seq);
CREATE FUNCTION payrules_audit_log_is_append_only() RETURNS trigger
    LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'the audit log is append-only'; END $$;
CREATE TRIGGER audit_log_is_append_only BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION payrules_audit_log_is_append_only();
CREATE TRIGGER audit_log_is_not_truncated BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION payrules_audit_log_is_append_only();

-- The chain's head: one row, locked by every transaction that appends, so entries are
-- numbered without gaps in commit order whichever host writes them.
CREATE TABLE audit_head (
    id INT PRIMARY KEY CHECK (id = 1),
    seq BIGINT NOT NULL,
    hash BYTEA NOT NULL
);

CREATE TABLE store_secrets (
    name TEXT PRIMARY KEY,
    value BYTEA NOT NULL
);

CREATE TABLE shadow_decisions (
    seq BIGSERIAL PRIMARY KEY,
    payment_id TEXT NOT NULL,
    shadow_version TEXT NOT NULL,
    decided_at_ms BIGINT NOT NULL,
    decision TEXT NOT NULL
);
CREATE INDEX shadow_decisions_by_version ON shadow_decisions (shadow_version, seq);
",
    // The fleet: each host's last heartbeat (GET /v1/hosts).
    r"
CREATE TABLE hosts (
    id TEXT PRIMARY KEY,
    address TEXT NOT NULL,
    version TEXT NOT NULL,
    rule_set_version TEXT NOT NULL,
    started_at_ms BIGINT NOT NULL,
    heartbeat TIMESTAMPTZ NOT NULL
);
",
    // Reviews of held payments: one per payment, never changed.
    r"
CREATE TABLE reviews (
    seq BIGSERIAL PRIMARY KEY,
    payment_id TEXT NOT NULL UNIQUE REFERENCES payments (id),
    verdict TEXT NOT NULL,
    reason_code TEXT,
    note TEXT,
    reviewer TEXT NOT NULL,
    reviewed_at_ms BIGINT NOT NULL,
    decision_sha256 TEXT NOT NULL,
    expired BOOLEAN NOT NULL
);
CREATE INDEX reviews_by_time ON reviews (reviewed_at_ms);
CREATE FUNCTION payrules_reviews_are_append_only() RETURNS trigger
    LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'reviews are append-only'; END $$;
CREATE TRIGGER reviews_are_append_only BEFORE UPDATE OR DELETE ON reviews
    FOR EACH ROW EXECUTE FUNCTION payrules_reviews_are_append_only();
CREATE TRIGGER reviews_are_not_truncated BEFORE TRUNCATE ON reviews
    FOR EACH STATEMENT EXECUTE FUNCTION payrules_reviews_are_append_only();
",
    // The outbox: events written with what they announce, their deliveries per webhook
    // endpoint (pending until delivered, then removed; dead after the last try), and the
    // lease of the one host that relays them.
    r"
CREATE TABLE outbox (
    seq BIGSERIAL PRIMARY KEY,
    event_id TEXT NOT NULL UNIQUE,
    event_type TEXT NOT NULL,
    payment_id TEXT NOT NULL,
    created_at_ms BIGINT NOT NULL,
    payload TEXT NOT NULL
);
CREATE INDEX outbox_by_age ON outbox (created_at_ms);
CREATE TABLE webhook_deliveries (
    endpoint TEXT NOT NULL,
    seq BIGINT NOT NULL REFERENCES outbox (seq),
    payment_id TEXT NOT NULL,
    state TEXT NOT NULL,
    attempts INT NOT NULL,
    next_attempt_ms BIGINT NOT NULL,
    last_attempt_ms BIGINT,
    last_error TEXT,
    PRIMARY KEY (endpoint, seq)
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (state, next_attempt_ms, seq);
CREATE INDEX webhook_deliveries_by_payment ON webhook_deliveries (endpoint, payment_id, seq);
CREATE TABLE relay_lease (
    id INT PRIMARY KEY CHECK (id = 1),
    holder TEXT NOT NULL,
    lease_until TIMESTAMPTZ NOT NULL
);
",
    // 5: a decision searched by its end-to-end id (the identifier customers quote).
    "
CREATE INDEX payments_by_end_to_end_id ON payments (end_to_end_id, seq);
",
    // 6: personal data sealed (`store::personal`): the data keys, wrapped by a master key
    // outside the database; the rules that fired kept in clear for search, since the
    // decision is sealed (filled here from the decisions written before, in clear).
    "
CREATE TABLE data_keys (
    id TEXT PRIMARY KEY,
    day BIGINT NOT NULL,
    master_key_id TEXT NOT NULL,
    wrapped BYTEA NOT NULL,
    created_at_ms BIGINT NOT NULL,
    erased_at_ms BIGINT
);
ALTER TABLE payments ADD COLUMN rules_fired TEXT NOT NULL DEFAULT ' ';
UPDATE payments SET rules_fired = ' ' || COALESCE((
    SELECT string_agg(run ->> 'name', ' ')
    FROM jsonb_array_elements(payments.decision::jsonb -> 'rules') AS run
    WHERE run ->> 'outcome' <> 'pass'
      AND NOT (run ->> 'outcome' = 'score' AND (run ->> 'score')::int = 0)
) || ' ', '');
",
    // 7: the canary each host runs, in its heartbeat (GET /v1/hosts).
    "
ALTER TABLE hosts ADD COLUMN canary_version TEXT, ADD COLUMN canary_percent SMALLINT;
",
    // 8: the overview's figures, per host and minute or hour (the console's 24-hour and
    // 7-day charts).
    "
CREATE TABLE rollups (
    span_ms BIGINT NOT NULL,
    start_ms BIGINT NOT NULL,
    host_id TEXT NOT NULL,
    tally TEXT NOT NULL,
    PRIMARY KEY (span_ms, start_ms, host_id)
);
",
    // 9: a payment's row kept whole in its page, up to the page's limit. A decision is
    // sealed (ciphertext does not compress): on every row past 2 KB (a typical decision
    // is 2.1 KB) PostgreSQL tried to compress it, failed, and moved it to the TOAST
    // table — work for nothing, about half the cost of the insert (31 → 16 µs a row
    // measured on the bench machine), for 15 % more space (two rows of ≈ 2.9 KB to a
    // page). Larger rows are still moved out of line.
    "
ALTER TABLE payments SET (toast_tuple_target = 8160);
",
];

/// Brings the schema up to date, one host at a time (a transaction-scoped advisory lock:
/// hosts started together wait for the first), and makes the chain's head row.
pub(super) async fn migrate(client: &Client) -> Result<(), StoreError> {
    // A schema already current is read, not written: a service role with no right to
    // create tables serves it.
    if current(client).await? {
        return Ok(());
    }
    client.batch_execute("BEGIN").await.map_err(pg_error)?;
    let migrated = async {
        client
            .execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
            .await?;
        client
            .batch_execute(
                "CREATE TABLE IF NOT EXISTS payrules_schema (\
                 id INT PRIMARY KEY CHECK (id = 1), version INT NOT NULL); \
                 INSERT INTO payrules_schema (id, version) VALUES (1, 0) \
                 ON CONFLICT DO NOTHING",
            )
            .await?;
        let version: i32 = client
            .query_one("SELECT version FROM payrules_schema WHERE id = 1", &[])
            .await?
            .try_get(0)?;
        Ok::<_, tokio_postgres::Error>(version)
    }
    .await;
    let version = match migrated {
        Ok(version) => usize::try_from(version).unwrap_or(usize::MAX),
        Err(error) => {
            let _ = client.batch_execute("ROLLBACK").await;
            return Err(pg_error(error));
        }
    };
    if version > MIGRATIONS.len() {
        let _ = client.batch_execute("ROLLBACK").await;
        return Err(StoreError::failed(format!(
            "the store's schema is version {version}, newer than this payrules ({})",
            MIGRATIONS.len()
        )));
    }
    let applied = async {
        for (index, migration) in MIGRATIONS.iter().enumerate().skip(version) {
            client.batch_execute(migration).await?;
            let version = i32::try_from(index + 1).unwrap_or(i32::MAX);
            client
                .execute(
                    "UPDATE payrules_schema SET version = $1 WHERE id = 1",
                    &[&version],
                )
                .await?;
            tracing::info!(version, "store schema migrated");
        }
        client
            .execute(
                "INSERT INTO audit_head (id, seq, hash) VALUES (1, 0, $1) ON CONFLICT DO NOTHING",
                &[&GENESIS.as_slice()],
            )
            .await?;
        client.batch_execute("COMMIT").await
    }
    .await;
    if let Err(error) = applied {
        let _ = client.batch_execute("ROLLBACK").await;
        return Err(pg_error(error));
    }
    Ok(())
}

/// The schema's version, or `None` where the database holds no payrules store.
async fn schema_version(client: &Client) -> Result<Option<i32>, StoreError> {
    let exists: bool = client
        .query_one("SELECT to_regclass('payrules_schema') IS NOT NULL", &[])
        .await
        .and_then(|row| row.try_get(0))
        .map_err(pg_error)?;
    if !exists {
        return Ok(None);
    }
    client
        .query_one("SELECT version FROM payrules_schema WHERE id = 1", &[])
        .await
        .and_then(|row| row.try_get(0))
        .map_err(pg_error)
}

/// Whether `version` is the one this payrules reads.
fn is_current(version: i32) -> bool {
    usize::try_from(version).ok() == Some(MIGRATIONS.len())
}

/// Whether the schema is this payrules' version and the chain's head row is there.
async fn current(client: &Client) -> Result<bool, StoreError> {
    if !schema_version(client).await?.is_some_and(is_current) {
        return Ok(false);
    }
    client
        .query_one("SELECT EXISTS (SELECT 1 FROM audit_head WHERE id = 1)", &[])
        .await
        .and_then(|row| row.try_get(0))
        .map_err(pg_error)
}

/// The schema version this payrules reads, checked by read-only opens.
pub(super) async fn check_version(client: &Client) -> Result<(), StoreError> {
    match schema_version(client).await? {
        None => Err(StoreError::failed("no payrules store in this database")),
        Some(version) if is_current(version) => Ok(()),
        Some(version) => Err(StoreError::failed(format!(
            "schema version {version}, this payrules reads {}",
            MIGRATIONS.len()
        ))),
    }
}

/// A 32-byte secret of this store, made by the first host that needs it and read by all.
pub(super) async fn secret(client: &Client, name: &str) -> Result<[u8; 32], StoreError> {
    let mut candidate = [0u8; 32];
    getrandom::fill(&mut candidate)
        .map_err(|e| StoreError::failed(format!("no randomness for a secret: {e}")))?;
    client
        .execute(
            "INSERT INTO store_secrets (name, value) VALUES ($1, $2) ON CONFLICT DO NOTHING",
            &[&name, &candidate.as_slice()],
        )
        .await
        .map_err(pg_error)?;
    let value: Vec<u8> = client
        .query_one("SELECT value FROM store_secrets WHERE name = $1", &[&name])
        .await
        .map_err(pg_error)?
        .try_get(0)
        .map_err(pg_error)?;
    value
        .try_into()
        .map_err(|_| StoreError::failed(format!("the secret {name} is not 32 bytes")))
}

/// The data keys the store holds, as [`wrapped_keys`] reads them.
pub(super) const DATA_KEYS: &str = "SELECT id, day, master_key_id, wrapped, created_at_ms, \
     erased_at_ms FROM data_keys ORDER BY day";

/// The data keys the store holds, wrapped.
pub(super) async fn data_keys(client: &Client) -> Result<Vec<WrappedKey>, StoreError> {
    let rows = client.query(DATA_KEYS, &[]).await.map_err(pg_error)?;
    wrapped_keys(&rows)
}

/// The data keys in rows [`DATA_KEYS`] selected.
pub(super) fn wrapped_keys(rows: &[tokio_postgres::Row]) -> Result<Vec<WrappedKey>, StoreError> {
    rows.iter()
        .map(|row| {
            Ok(WrappedKey {
                id: row.try_get(0)?,
                day: row.try_get(1)?,
                master_key_id: row.try_get(2)?,
                wrapped: row.try_get(3)?,
                created_at_ms: row.try_get(4)?,
                erased_at_ms: row.try_get(5)?,
            })
        })
        .collect::<Result<Vec<_>, tokio_postgres::Error>>()
        .map_err(pg_error)
}

/// Brings the data keys up to date: unwraps those held, wraps again by the first master
/// key those another wraps (a rotation), makes today's and tomorrow's if missing — the
/// first host to insert a day's key wins, the others read it.
pub(super) async fn sync_data_keys(
    client: &Client,
    personal: &PersonalData,
) -> Result<(), StoreError> {
    let held = data_keys(client).await?;
    personal.absorb(&held).map_err(StoreError::failed)?;
    let rewrapped = personal.to_rewrap(&held)?;
    for key in &rewrapped {
        client
            .execute(
                "UPDATE data_keys SET master_key_id = $2, wrapped = $3 WHERE id = $1",
                &[&key.id, &key.master_key_id, &key.wrapped],
            )
            .await
            .map_err(pg_error)?;
    }
    if !rewrapped.is_empty() {
        tracing::info!(
            keys = rewrapped.len(),
            "data keys wrapped again by the first master key"
        );
    }
    let made = personal.to_make(now_unix_ms())?;
    for key in &made {
        client
            .execute(
                "INSERT INTO data_keys (id, day, master_key_id, wrapped, created_at_ms) \
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
                &[
                    &key.id,
                    &key.day,
                    &key.master_key_id,
                    &key.wrapped,
                    &key.created_at_ms,
                ],
            )
            .await
            .map_err(pg_error)?;
    }
    if rewrapped.is_empty() && made.is_empty() {
        return Ok(());
    }
    personal
        .absorb(&data_keys(client).await?)
        .map_err(StoreError::failed)
}
