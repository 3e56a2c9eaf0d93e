//! `payrules serve`: the HTTP service, until SIGTERM or Ctrl-C.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;

use super::BadInput;
use super::audit::{audit_keys, master_keys};
use payrules::api::rate::RateLimits;
use payrules::api::{self, AppState, auth};
use payrules::config::{Config, Role};
use payrules::service::{self, StartError, Started};
use payrules::telemetry;

/// `payrules serve`.
#[derive(clap::Args)]
pub struct Args {
    /// The config file (TOML); without one, every setting has its default: the example
    /// rules, `payrules.db`, 127.0.0.1:8080.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Listen here instead of the config's address (port 0: any free port).
    #[arg(long)]
    listen: Option<std::net::SocketAddr>,
    /// If the rules directory does not load, start with the last rule set that went
    /// live (kept beside the store) instead of refusing to start.
    #[arg(long)]
    from_last_good: bool,
}

/// Runs the service.
pub fn run(args: &Args) -> anyhow::Result<()> {
    serve(args.config.as_deref(), args.listen, args.from_last_good)
}

/// The name of the key file `serve` makes when the config has no API keys.
const DEV_KEY_FILE: &str = "payrules-dev.key";

fn serve(
    config_path: Option<&Path>,
    listen: Option<std::net::SocketAddr>,
    from_last_good: bool,
) -> anyhow::Result<()> {
    let mut config = match config_path {
        Some(path) => Config::load(path).map_err(BadInput)?,
        None => Config::default(),
    };
    if let Some(listen) = listen {
        config.listen = listen;
    }
    let telemetry = telemetry::init(config.log.format, &config.log.level, &config.telemetry)
        .map_err(BadInput)?;
    // The listener's certificate and key are read before anything starts: a fault in
    // them stops the start-up here, naming the setting.
    let tls = config
        .tls
        .as_ref()
        .map(payrules::tls::server)
        .transpose()
        .map_err(BadInput)?
        .map(Arc::new);
    let audit_keys = audit_keys(&config, true)?;
    let master_keys = master_keys(&config, true)?;
    let Started { service, trigger } =
        service::start(&config, audit_keys, master_keys, from_last_good).map_err(|error| {
            match error {
                StartError::BadInput(message) => anyhow::Error::new(BadInput(message)),
                StartError::Failed(message) => anyhow::anyhow!(message),
            }
        })?;
    // A local key only for a service with no other way in (no keys, no tokens).
    let keys = if config.api_keys.is_empty() && config.oauth.is_none() {
        dev_keys(&config.store_dir())?
    } else {
        auth::Keys::new(&config.api_keys)
    };
    let rates = RateLimits::new(
        &config.api_keys,
        &config.tenants,
        config.limits.key_requests_per_second,
        config.limits.key_burst,
    );
    let tokens = config
        .oauth
        .as_ref()
        .map(payrules::api::oauth::TokenVerifier::new)
        .transpose()
        .map_err(BadInput)?
        .map(Arc::new);
    let mut state = AppState::new(Arc::clone(&service), keys, rates, config.limits.clone());
    state.tokens = tokens.clone();
    let state = Arc::new(state);
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("payrules-http")
        .build()
        .context("starting the async runtime")?;
    tokio.block_on(async {
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("listening on {}", config.listen))?;
        let address = listener.local_addr()?;
        service
            .announce_start(trigger)
            .await
            .context("writing the audit log")?;
        service.expire_idempotency_records(Duration::from_secs(
            config
                .store
                .idempotency_retention_hours
                .saturating_mul(3_600),
        ));
        if let Some(days) = config.personal_data.retention_days {
            service.erase_personal_data_after(days);
        }
        // Several hosts: the others' accepted payments enter this host's velocity figures,
        // and this host is on the fleet's list.
        service.follow_other_hosts();
        service.follow_rollbacks();
        service.judge_canaries();
        service.follow_fleet_canary();
        service.expire_unreviewed();
        service.record_circuit_transitions();
        service.record_warm_mismatches();
        service.relay_events(std::sync::Arc::clone(service.webhooks()));
        service.sample_overview();
        service.beat(address.to_string()).await;
        // Hot reload: a burst of changes in the rules directory becomes one reload.
        let (changed, mut changes) = tokio::sync::mpsc::channel::<()>(1);
        let _watch = payrules::registry::watch::watch(
            &config.rules_dir,
            Duration::from_millis(config.reload_settle_ms),
            move || {
                // Full: a reload is already queued, and it will see this change too.
                let _ = changed.try_send(());
            },
        )
        .with_context(|| format!("watching {}", config.rules_dir.display()))?;
        let reloader = Arc::clone(&service);
        tokio::spawn(async move {
            while changes.recv().await.is_some() {
                reloader.reload("watch").await;
            }
        });
        // The certificate and key are read again when their files change (a renewal, a
        // mounted secret's update): the next handshakes get them; a fault keeps the pair
        // in use.
        let _tls_watch = match &tls {
            Some(tls) => {
                let reloaded = Arc::clone(tls);
                Some(
                    payrules::registry::watch::watch_contents(
                        &tls.files(),
                        Duration::from_millis(config.reload_settle_ms),
                        move || match reloaded.reload() {
                            Ok(()) => tracing::info!(
                                certificate_sha256 = %reloaded.certificate_sha256(),
                                "TLS certificate reloaded"
                            ),
                            Err(error) => tracing::error!(
                                "TLS certificate not reloaded, the one in use stays: {error}"
                            ),
                        },
                    )
                    .context("watching the TLS certificate and key")?,
                )
            }
            None => None,
        };
        // The API keys are read again when the config file changes (a key added, removed,
        // rotated, given an expiry): no restart. Only the keys: other settings need one.
        let settle = Duration::from_millis(config.reload_settle_ms);
        let _config_watch = match config_path {
            Some(path) if !config.api_keys.is_empty() || config.oauth.is_some() => {
                let (state, file) = (Arc::clone(&state), path.to_owned());
                on_change(&[path.to_owned()], settle, move || {
                    let (state, file) = (Arc::clone(&state), file.clone());
                    async move { reload_keys(&state, &file).await }
                })?
            }
            _ => None,
        };
        // OAuth: a JWKS URL fetched now and periodically; a JWKS file read again when it
        // changes.
        let _jwks_watch = match &tokens {
            Some(tokens) => {
                tokens.refresh_periodically();
                match tokens.jwks_file() {
                    Some(file) => {
                        let tokens = Arc::clone(tokens);
                        on_change(&[file.to_owned()], settle, move || {
                            let tokens = Arc::clone(&tokens);
                            async move {
                                match tokens.refresh().await {
                                    Ok(keys) => tracing::info!(keys, "JWKS file read again"),
                                    Err(error) => tracing::error!(
                                        "JWKS file not read again, the keys held stay: {error}"
                                    ),
                                }
                            }
                        })?
                    }
                    None => None,
                }
            }
            None => None,
        };
        let rules = service.rule_set();
        tracing::info!(
            %address,
            rule_set = %rules.version,
            rules = rules.rules().len(),
            store = %service.store().location(),
            "payrules is serving"
        );
        let mut out = std::io::stdout().lock();
        let scheme = if tls.is_some() { "https" } else { "http" };
        writeln!(out, "payrules listening on {scheme}://{address}")?;
        out.flush()?;
        drop(out);
        let app = api::router(Arc::clone(&state));
        api::serve(
            listener,
            app,
            &config.limits,
            tls.as_ref().map(|tls| Arc::clone(&tls.config)),
            shutdown_signal(
                Arc::clone(&state),
                Duration::from_millis(config.limits.shutdown_drain_delay_ms),
            ),
        )
        .await;
        if let Err(error) = service
            .record_overview(payrules::store::now_unix_ms())
            .await
        {
            tracing::warn!("the overview's last figures were not recorded: {error}");
        }
        service.leave().await;
        anyhow::Ok(())
    })?;
    service.stop();
    tracing::info!("stopped; every decision answered is on disk");
    telemetry.shutdown();
    Ok(())
}

/// Watches `files` and, after each burst of changes to their content, runs `job` on the
/// runtime, one run at a time (a change during a run queues one more).
fn on_change<Job, Run>(
    files: &[std::path::PathBuf],
    settle: Duration,
    job: Job,
) -> anyhow::Result<Option<payrules::registry::watch::FileWatch>>
where
    Job: Fn() -> Run + Send + 'static,
    Run: std::future::Future<Output = ()> + Send,
{
    let (changed, mut changes) = tokio::sync::mpsc::channel::<()>(1);
    let watch = payrules::registry::watch::watch_contents(files, settle, move || {
        // Full: a run is already queued, and it will see this change too.
        let _ = changed.try_send(());
    })
    .with_context(|| format!("watching {files:?}"))?;
    tokio::spawn(async move {
        while changes.recv().await.is_some() {
            job().await;
        }
    });
    Ok(Some(watch))
}

/// Reads the config file again and, if it is valid and its keys changed, puts its keys
/// and their rate limits in place, audited (`keys.reloaded`: the names added and removed,
/// never a hash); a config that does not load changes nothing, and says why in the log.
async fn reload_keys(state: &AppState, path: &Path) {
    let config = match Config::load(path) {
        Ok(config) => config,
        Err(error) => {
            tracing::error!("the config was not read again, the keys in use stay: {error}");
            return;
        }
    };
    let (added, removed) = state.keys.replace(&config.api_keys);
    state.rates.replace(
        &config.api_keys,
        &config.tenants,
        config.limits.key_requests_per_second,
        config.limits.key_burst,
    );
    tracing::info!(
        identities = config.api_keys.len(),
        ?added,
        ?removed,
        "API keys read again from the config"
    );
    let detail = serde_json::json!({
        "config": path.display().to_string(),
        "identities": config.api_keys.len(),
        "added": added,
        "removed": removed,
    });
    if let Err(error) = state
        .service
        .store()
        .audit_event("keys.reloaded", "api_keys", &detail)
        .await
    {
        tracing::error!("the keys' reload was not audited: {error}");
    }
}

/// Resolves on SIGTERM or SIGINT, once the service has been marked not ready and, on
/// SIGTERM, has gone on serving for `drain_delay` (cut short by a second signal) so load
/// balancers see `/readyz` fail and stop sending before the listener closes. Ctrl-C, a
/// person at a terminal, stops at once.
async fn shutdown_signal(state: Arc<AppState>, drain_delay: Duration) {
    use tokio::signal::unix::{SignalKind, signal};
    let mut terminate = match signal(SignalKind::terminate()) {
        Ok(terminate) => Some(terminate),
        Err(error) => {
            tracing::warn!("cannot watch for SIGTERM: {error}");
            None
        }
    };
    let sigterm = async {
        match terminate.as_mut() {
            Some(terminate) => terminate.recv().await,
            None => std::future::pending().await,
        }
    };
    let by_sigterm = tokio::select! {
        _ = sigterm => true,
        _ = tokio::signal::ctrl_c() => false,
    };
    tracing::info!("shutdown requested");
    state.drain();
    if by_sigterm && !drain_delay.is_zero() {
        tracing::info!(
            drain_delay_ms = drain_delay.as_millis(),
            "not ready; serving on until load balancers have stopped sending"
        );
        let again = async {
            match terminate.as_mut() {
                Some(terminate) => terminate.recv().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            () = tokio::time::sleep(drain_delay) => {},
            _ = again => tracing::info!("second SIGTERM: closing now"),
            _ = tokio::signal::ctrl_c() => tracing::info!("Ctrl-C: closing now"),
        }
    }
}

/// With no API keys configured, one key with every role, kept in a file beside the store
/// (mode 0600) so a local service works at once and the key never reaches a log.
fn dev_keys(store_dir: &Path) -> anyhow::Result<auth::Keys> {
    use std::os::unix::fs::OpenOptionsExt;
    use std::os::unix::fs::PermissionsExt;
    let path = store_dir.join(DEV_KEY_FILE);
    // A key file others may read (or write: then they chose the key) is not trusted.
    if let Ok(metadata) = std::fs::metadata(&path)
        && metadata.permissions().mode() & 0o077 != 0
    {
        return Err(BadInput(format!(
            "{}: mode {:03o} lets others read or change the local API key; allow its owner \
             only (chmod 600) or remove it to make a new one",
            path.display(),
            metadata.permissions().mode() & 0o777
        ))
        .into());
    }
    let key = match std::fs::read_to_string(&path) {
        Ok(key) if !key.trim().is_empty() => key.trim().to_owned(),
        _ => {
            let key = auth::new_key()?;
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&path)
                .with_context(|| format!("writing {}", path.display()))?;
            writeln!(file, "{key}")?;
            key
        }
    };
    eprintln!(
        "payrules: no API keys configured; the key in {} has every role (for local use; \
         configure [[api_keys]] for anything else)",
        path.display()
    );
    Ok(auth::Keys::new(&[payrules::config::ApiKeyConfig {
        name: "local".to_owned(),
        sha256: Some(auth::key_sha256(&key)),
        client_certificates: Vec::new(),
        roles: Role::ALL.to_vec(),
        requests_per_second: None,
        expires_at: None,
        tenant: None,
    }]))
}
