//! Start-up: from a validated [`Config`] to a running [`Service`] — the WebAssembly
//! runtime and its code cache, the live rules (or the last good set), the store with its
//! audit keys and checkpoints, the velocity figures rebuilt from what was stored, the
//! deciders and the shadow runner.

use std::sync::Arc;

use super::Service;
use crate::config::{AUDIT_CHECKPOINT_INTERVAL_MS_DEFAULT, Config};
use crate::pipeline::shadow::ShadowRunner;
use crate::pipeline::{Deciders, Pipeline};
use crate::registry::RuleSet;
use crate::registry::kept::KeptSets;
use crate::registry::live::LiveRules;
use crate::runtime::Runtime;
use crate::store::audit_keys::{AuditKeys, CheckpointLog};
use crate::store::personal::{MasterKeys, PersonalData};
use crate::store::{AuditSealing, PgSettings, PgStore, SqliteStore, Store, now_unix_ms};
use crate::telemetry::Metrics;
use crate::velocity::{VelocityBook, WINDOW_SECONDS_MAX};

/// The directory, beside the store, that keeps compiled rule components by content hash.
pub const CODE_CACHE_DIR: &str = "payrules-compiled";
/// The directory, beside the store, that keeps the rule sets that went live by version
/// (for rollbacks and `--from-last-good`).
pub const RULE_SETS_DIR: &str = "payrules-rule-sets";

/// Why the service did not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The configuration or the rules directory is at fault (the operator's to fix).
    #[error("{0}")]
    BadInput(String),
    /// Something else failed (a store that cannot be opened, no threads).
    #[error("{0}")]
    Failed(String),
}

/// A started service, and how its rule set came to be live: `start`, or
/// `start-from-last-good`.
pub struct Started {
    /// The service.
    pub service: Arc<Service>,
    /// What started the live set, for the audit log.
    pub trigger: &'static str,
}

/// Starts the service `config` describes, its audit log authenticated with `audit_keys`
/// and its personal data sealed under data keys `master_keys` wrap (both read by the
/// binary from where the config says). With `from_last_good`, a rules directory that does
/// not load is replaced by the copy of the last set that went live.
pub fn start(
    config: &Config,
    audit_keys: AuditKeys,
    master_keys: MasterKeys,
    from_last_good: bool,
) -> Result<Started, StartError> {
    let store_dir = config.store_dir();
    let kept = KeptSets::open(&store_dir.join(RULE_SETS_DIR)).map_err(|e| {
        StartError::Failed(format!(
            "making the kept rule sets' directory {}: {e}",
            store_dir.join(RULE_SETS_DIR).display()
        ))
    })?;
    let code_cache = store_dir.join(CODE_CACHE_DIR);
    let failed =
        |what: &str, error: &dyn std::fmt::Display| StartError::Failed(format!("{what}: {error}"));
    let runtime = Arc::new(
        Runtime::new()
            .map_err(|e| failed("starting the WebAssembly runtime", &e))?
            .with_code_cache(&code_cache, config.store.code_cache_bytes_max)
            .map_err(|e| {
                failed(
                    &format!("making the compiled-code cache {}", code_cache.display()),
                    &e,
                )
            })?,
    );
    let now = now_unix_ms();
    let (live, trigger) = match LiveRules::load(&config.rules_dir, Arc::clone(&runtime), now) {
        Ok(live) => (live, "start"),
        Err(error) if from_last_good => {
            let last_good = kept.last_live().ok_or_else(|| {
                StartError::BadInput(format!(
                    "the rules directory does not load ({error}), and no rule set that went \
                     live is kept in {}",
                    kept.dir().display()
                ))
            })?;
            let set = RuleSet::load(&last_good, &runtime).map_err(|e| {
                StartError::BadInput(format!(
                    "the rules directory does not load ({error}), nor does the last good rule set: {e}"
                ))
            })?;
            tracing::warn!(
                %error,
                version = %set.version,
                "the rules directory does not load; starting with the last good rule set"
            );
            eprintln!(
                "payrules: {error}; starting with the last good rule set {} (--from-last-good)",
                set.version
            );
            (
                LiveRules::with(&config.rules_dir, Arc::clone(&runtime), set, now),
                "start-from-last-good",
            )
        }
        Err(error) => {
            return Err(StartError::BadInput(format!(
                "the rules directory does not load, so payrules does not start \
                 (--from-last-good starts with the last rule set that went live): {error}"
            )));
        }
    };
    let live = Arc::new(live.keeping(kept));
    let metrics = Arc::new(Metrics::new());
    let host_id = host_id();
    let store = open_store(config, audit_keys.clone(), master_keys, &metrics, &host_id)?;
    let velocity = Arc::new(VelocityBook::new());
    let window_ms = i64::from(WINDOW_SECONDS_MAX) * 1000;
    let accepted = store
        .accepted_since(now_unix_ms() - window_ms)
        .map_err(|e| {
            failed(
                "reading accepted payments back into the velocity figures",
                &e,
            )
        })?;
    for (_, payment, at) in &accepted.payments {
        velocity.record(payment, *at);
    }
    tracing::info!(
        velocity_payments = accepted.payments.len(),
        through_audit_entry = accepted.through_seq,
        "velocity figures rebuilt from the store"
    );
    let (pipeline, warm_mismatches) =
        Pipeline::new(runtime, Arc::clone(&velocity)).with_warm_mismatches();
    let (pipeline, circuits) = match config.circuit_breaker.policy() {
        Some(policy) => {
            let (pipeline, transitions) = pipeline.with_breakers(policy);
            (pipeline, Some((policy, transitions)))
        }
        None => (pipeline, None),
    };
    let pipeline = Arc::new(pipeline);
    let cores = std::thread::available_parallelism().map_or(2, std::num::NonZero::get);
    let deciders = Deciders::start(Arc::clone(&pipeline), cores)
        .map_err(|e| failed("starting the deciders", &e))?;
    let shadow = ShadowRunner::start(pipeline, Arc::clone(&store), deciders.load())
        .map_err(|e| failed("starting the shadow runner", &e))?;
    let webhooks =
        crate::webhooks::Webhooks::from_config(&config.webhooks).map_err(StartError::BadInput)?;
    let service = Service::new(live, store, velocity, metrics, deciders, shadow)
        .with_shadow_roots(&config.shadow_roots)
        .with_claim_lease(config.store.idempotency_lease_ms)
        .with_followed_through(accepted.through_seq)
        .with_host_id(host_id)
        .with_review_policy((&config.review).into())
        .with_webhooks(webhooks)
        .with_audit_check(audit_keys, config.audit_checkpoint_file())
        .with_circuits(circuits)
        .with_warm_mismatches(warm_mismatches);
    Ok(Started {
        service: Arc::new(service),
        trigger,
    })
}

/// The store the config names — the embedded SQLite file, or the PostgreSQL database of
/// `store.url` — authenticated with its audit keys.
fn open_store(
    config: &Config,
    keys: AuditKeys,
    master_keys: MasterKeys,
    metrics: &Arc<Metrics>,
    host_id: &str,
) -> Result<Arc<dyn Store>, StartError> {
    let sealing = AuditSealing {
        keys,
        checkpoints: CheckpointLog::open(
            &config.audit_checkpoint_file(),
            config
                .audit
                .checkpoint_interval_ms
                .unwrap_or(AUDIT_CHECKPOINT_INTERVAL_MS_DEFAULT),
        )
        .map_err(StartError::BadInput)?,
        personal: PersonalData::new(master_keys),
    };
    if let Some(mut settings) = postgres_settings(config).map_err(StartError::BadInput)? {
        settings.holder = host_id.to_owned();
        let store = PgStore::open(&settings, Arc::clone(metrics) as _, sealing)
            .map_err(|e| StartError::Failed(format!("opening the store: {e}")))?;
        tracing::info!(store = %store.location(), "store opened");
        return Ok(Arc::new(store));
    }
    let path = &config.store.path;
    let store = SqliteStore::open(
        path,
        config.store.commit_batch_max,
        Arc::clone(metrics) as _,
        sealing,
    )
    .map_err(|e| StartError::Failed(format!("opening the store {}: {e}", path.display())))?;
    Ok(Arc::new(store))
}

/// An existing store, for reading only (`payrules audit verify`, backtest).
pub fn open_existing_store(config: &Config, master: MasterKeys) -> Result<Box<dyn Store>, String> {
    match postgres_settings(config)? {
        Some(settings) => Ok(Box::new(
            PgStore::open_existing(&settings, master).map_err(|e| e.to_string())?,
        )),
        None => Ok(Box::new(
            SqliteStore::open_existing(&config.store.path, master).map_err(|e| e.to_string())?,
        )),
    }
}

/// Where the PostgreSQL store is and how to log in, if the config names one; the password
/// read from its file (owner-only) or variable.
pub fn postgres_settings(config: &Config) -> Result<Option<PgSettings>, String> {
    let Some(url) = &config.store.url else {
        return Ok(None);
    };
    let password =
        match (&config.store.password_file, &config.store.password_env) {
            (Some(path), _) => Some(crate::config::read_private_line(
                path,
                "store.password_file",
                "the database password",
            )?),
            (None, Some(name)) => Some(std::env::var(name).map_err(|e| {
                format!("store.password_env: the variable {name} cannot be read: {e}")
            })?),
            (None, None) => None,
        };
    Ok(Some(PgSettings {
        url: url.clone(),
        password,
        commit_batch_max: config.store.commit_batch_max,
        holder: host_id(),
        tls_ca_file: config.store.tls_ca_file.clone(),
        tls_client: config
            .store
            .tls_client_certificate
            .clone()
            .zip(config.store.tls_client_key.clone()),
    }))
}

/// This process, as the claims it holds and the fleet's list name it:
/// `hostname:pid:random` (unique: two containers may share a hostname and a pid).
pub fn host_id() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "host".to_owned());
    let mut random = [0u8; 4];
    // Without randomness the pid still tells processes of one host apart.
    let _ = getrandom::fill(&mut random);
    format!(
        "{host}:{}:{}",
        std::process::id(),
        crate::registry::hex(&random)
    )
}
