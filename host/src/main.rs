//! The `payrules` command.
//!
//! - `payrules serve [--config FILE]` runs the HTTP service.
//! - `payrules evaluate PAYMENT.json --rules DIR` decides payments with the rules of a
//!   directory and prints each decision and the trace of every rule, with no server.
//! - `payrules parse FILE` prints the payments of an ISO 20022 message as JSON.
//! - `payrules audit verify` checks the store's audit chain; `payrules audit new-key`
//!   rotates the audit key.
//! - `payrules keys new` makes an API key and the config lines for it.
//! - `payrules plugin new|build|test` scaffolds, builds and tests a rule project.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use sha2::{Digest, Sha256};

use payrules::api::{self, AppState, auth};
use payrules::config::{AuditKeySource, Config, LogFormat, Role};
use payrules::model::{Decision, Payment, RuleKind, RuleOutcome};
use payrules::pipeline::Pipeline;
use payrules::plugin::{self, Language};
use payrules::registry::{RuleSet, hex};
use payrules::runtime::Runtime;
use payrules::service::{self, StartError, Started};
use payrules::store::SqliteStore;
use payrules::store::audit_keys::{AuditKeys, read_checkpoints};
use payrules::telemetry;
use payrules::velocity::VelocityBook;

/// The largest payment file `evaluate` reads.
const PAYMENT_BYTES_MAX: u64 = 1024 * 1024;

#[derive(Parser)]
#[command(
    name = "payrules",
    version,
    about = "Payment rules in sandboxed WebAssembly"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the HTTP service: payments in, decisions out, every decision durable.
    Serve {
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
    },
    /// The audit log.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// API keys.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Rules directories.
    Rules {
        #[command(subcommand)]
        command: RulesCommand,
    },
    /// Replay payments through a candidate rules directory and compare its decisions with
    /// the recorded ones: how many change, from what to what, by which rule, examples.
    /// The payments are those a store received (a running or stopped instance), or a
    /// file of payments decided by both the baseline and the candidate.
    Backtest(Backtest),
    /// Rule projects: scaffold, build, test.
    Plugin {
        #[command(subcommand)]
        command: PluginCommand,
    },
    /// Read an ISO 20022 pacs.008 or pain.001 message and print its payments as JSON; a
    /// message that must be refused gets a JSON error (ISO code, message, element path)
    /// on stderr and exit status 2.
    Parse {
        /// The XML message.
        file: PathBuf,
    },
    /// Decide payments with the rules of a directory and print each decision and its trace.
    Evaluate {
        /// Payment files in the canonical JSON form, decided in order (so later ones see
        /// the velocity of earlier accepted ones).
        #[arg(required = true)]
        payments: Vec<PathBuf>,
        /// The rules directory (manifests, components, lists, pipeline.toml).
        #[arg(long, default_value = "examples/rules")]
        rules: PathBuf,
        /// Print the decisions as JSON, one per line, instead of text.
        #[arg(long)]
        json: bool,
        /// Decide at this instant (milliseconds since the Unix epoch) instead of now, to
        /// replay a decision.
        #[arg(long)]
        now_unix_ms: Option<i64>,
    },
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Check the audit chain entry by entry against the audit keys and the checkpoints,
    /// that every decided payment is stored as it was decided and every stored payment
    /// has its entry; name the first fault (exit status 1).
    Verify {
        #[command(flatten)]
        at: AuditFiles,
    },
    /// Add a new audit key at the head of the key file (made if missing, mode 0600): it
    /// signs from the next start; the older keys stay listed to verify what they signed.
    NewKey {
        #[command(flatten)]
        at: AuditFiles,
    },
}

/// Where a store's audit files are: by default beside the store, as `serve` keeps them.
#[derive(clap::Args)]
struct AuditFiles {
    /// The store file; by default the config's, or `payrules.db`.
    #[arg(long)]
    store: Option<PathBuf>,
    /// Take the store and audit settings from this config file.
    #[arg(long, conflicts_with = "store")]
    config: Option<PathBuf>,
    /// The audit key file (instead of the config's, or the one beside the store).
    #[arg(long)]
    key_file: Option<PathBuf>,
    /// The checkpoint file (instead of the config's, or the one beside the store).
    #[arg(long)]
    checkpoints: Option<PathBuf>,
}

impl AuditFiles {
    /// The config these name: a config file's, or the defaults for `--store`, with the
    /// key and checkpoint files given here in place of the config's.
    fn config(&self) -> Result<Config, BadInput> {
        let mut config = match (&self.store, &self.config) {
            (_, Some(path)) => Config::load(path).map_err(BadInput)?,
            (store, None) => {
                let mut config = Config::default();
                if let Some(store) = store {
                    config.store.path.clone_from(store);
                }
                config
            }
        };
        if let Some(key_file) = &self.key_file {
            config.audit.key_file = Some(key_file.clone());
            config.audit.key_env = None;
        }
        if let Some(checkpoints) = &self.checkpoints {
            config.audit.checkpoint_file = Some(checkpoints.clone());
        }
        Ok(config)
    }
}

#[derive(Subcommand)]
enum RulesCommand {
    /// Load a rules directory exactly as the live loader would (every manifest, component,
    /// capability, list and test vector); print its version and rules, or the file at
    /// fault and why (exit status 2). For the CI of rule teams.
    Check {
        /// The rules directory.
        dir: PathBuf,
    },
}

#[derive(Subcommand)]
enum PluginCommand {
    /// Scaffold a rule project that builds and passes its own test vectors as it is:
    /// manifest, source using the SDK, test vectors, README.
    New {
        /// The rule's name (lower-case letters, digits, '-').
        name: String,
        /// What the rule decides.
        #[arg(long, value_parser = parse_kind)]
        kind: RuleKind,
        /// Where to make it (default: ./NAME); must not exist or be empty.
        #[arg(long)]
        dir: Option<PathBuf>,
        /// What to write it in: rust (built with cargo) or python (built with
        /// componentize-py).
        #[arg(long, value_parser = parse_language, default_value = "rust")]
        lang: Language,
        /// For Rust, the payrules-sdk crate to depend on (default: plugins/sdk of the
        /// checkout this binary was built from).
        #[arg(long)]
        sdk: Option<PathBuf>,
    },
    /// Build a rule project (Rust or Python) into a component in DIR/dist: the component, its manifest,
    /// vectors and lists, checked as the live loader would, ready for a rules directory.
    Build {
        /// The project (default: the current directory).
        #[arg(default_value = ".")]
        dir: PathBuf,
    },
    /// Run test vectors in the real sandbox with the real limits and report every case
    /// (answer, fuel, time, what did not hold); exit status 1 if any case fails. DIR is a
    /// rule project (built first) or a rules directory.
    Test {
        /// The project or rules directory (default: the current directory).
        #[arg(default_value = ".")]
        dir: PathBuf,
    },
}

fn parse_language(text: &str) -> Result<Language, String> {
    Language::ALL
        .into_iter()
        .find(|language| language.name() == text)
        .ok_or_else(|| format!("{text:?} is not a language (rust, python)"))
}

fn parse_kind(text: &str) -> Result<RuleKind, String> {
    [RuleKind::Compliance, RuleKind::Fraud, RuleKind::Routing]
        .into_iter()
        .find(|kind| kind.name() == text)
        .ok_or_else(|| format!("{text:?} is not a kind (compliance, fraud, routing)"))
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Make a random API key; print it once, with the config lines that hold its hash.
    New {
        /// Who will hold it (what logs and the audit log show).
        #[arg(long)]
        name: String,
        /// Its roles: submitter, operator, auditor.
        #[arg(long = "role", required = true, value_parser = parse_role)]
        roles: Vec<Role>,
    },
}

fn parse_role(text: &str) -> Result<Role, String> {
    Role::ALL
        .into_iter()
        .find(|role| role.name() == text)
        .ok_or_else(|| format!("{text:?} is not a role (submitter, operator, auditor)"))
}

/// A failure that is the input's fault: exit status 2.
#[derive(Debug)]
struct BadInput(String);

impl std::fmt::Display for BadInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for BadInput {}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if !matches!(cli.command, Command::Serve { .. }) {
        telemetry::init_logging(LogFormat::Text, "warn");
    }
    let result = match cli.command {
        Command::Serve {
            config,
            listen,
            from_last_good,
        } => serve(config.as_deref(), listen, from_last_good),
        Command::Audit {
            command: AuditCommand::Verify { at },
        } => return audit_verify(&at),
        Command::Audit {
            command: AuditCommand::NewKey { at },
        } => audit_new_key(&at),
        Command::Keys {
            command: KeysCommand::New { name, roles },
        } => keys_new(&name, &roles),
        Command::Rules {
            command: RulesCommand::Check { dir },
        } => rules_check(&dir),
        Command::Plugin { command } => match command {
            PluginCommand::New {
                name,
                kind,
                dir,
                lang,
                sdk,
            } => plugin_new(&name, kind, dir, lang, sdk.as_deref()),
            PluginCommand::Build { dir } => plugin_build(&dir).map(drop),
            PluginCommand::Test { dir } => match plugin_test(&dir) {
                Ok(true) => Ok(()),
                Ok(false) => return ExitCode::FAILURE,
                Err(error) => Err(error),
            },
        },
        Command::Backtest(args) => backtest(&args),
        Command::Parse { file } => return parse(&file),
        Command::Evaluate {
            payments,
            rules,
            json,
            now_unix_ms,
        } => evaluate(&payments, &rules, json, now_unix_ms),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        // A reader that went away (`payrules evaluate ... | head`) is not an error.
        Err(error)
            if error
                .downcast_ref::<std::io::Error>()
                .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe) =>
        {
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("error: {error:#}");
            if error.downcast_ref::<BadInput>().is_some() {
                ExitCode::from(2)
            } else {
                ExitCode::FAILURE
            }
        }
    }
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
    telemetry::init_logging(config.log.format, &config.log.level);
    let audit_keys = audit_keys(&config, true)?;
    let Started { service, trigger } = service::start(&config, audit_keys, from_last_good)
        .map_err(|error| match error {
            StartError::BadInput(message) => anyhow::Error::new(BadInput(message)),
            StartError::Failed(message) => anyhow::anyhow!(message),
        })?;
    let keys = if config.api_keys.is_empty() {
        dev_keys(&config.store_dir())?
    } else {
        auth::Keys::new(&config.api_keys)
    };
    let state = Arc::new(AppState::new(
        Arc::clone(&service),
        keys,
        config.limits.clone(),
    ));
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
        let rules = service.rule_set();
        tracing::info!(
            %address,
            rule_set = %rules.version,
            rules = rules.rules().len(),
            store = %service.store().location(),
            "payrules is serving"
        );
        let mut out = std::io::stdout().lock();
        writeln!(out, "payrules listening on http://{address}")?;
        out.flush()?;
        drop(out);
        let app = api::router(Arc::clone(&state));
        api::serve(
            listener,
            app,
            &config.limits,
            shutdown_signal(
                Arc::clone(&state),
                Duration::from_millis(config.limits.shutdown_drain_delay_ms),
            ),
        )
        .await;
        anyhow::Ok(())
    })?;
    service.stop();
    tracing::info!("stopped; every decision answered is on disk");
    Ok(())
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
    let path = store_dir.join(DEV_KEY_FILE);
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
        sha256: auth::key_sha256(&key),
        roles: Role::ALL.to_vec(),
    }]))
}

/// The audit keys the config names. `serve` makes the default key file beside the store
/// when it is missing (`make_default`); nothing else makes one.
fn audit_keys(config: &Config, make_default: bool) -> Result<AuditKeys, BadInput> {
    match config.audit_key_source() {
        AuditKeySource::Env(name) => {
            let text = std::env::var(&name).map_err(|e| {
                BadInput(format!(
                    "audit.key_env: the variable {name} cannot be read: {e}"
                ))
            })?;
            AuditKeys::parse(&text, &format!("the variable {name}")).map_err(BadInput)
        }
        AuditKeySource::File {
            path,
            made_if_missing,
        } => {
            if make_default && made_if_missing && !path.exists() {
                AuditKeys::add_key(&path).map_err(BadInput)?;
                eprintln!(
                    "payrules: made the audit key {} beside the store (for local use: in \
                     production keep it where the database's writers cannot read it, \
                     audit.key_file or audit.key_env)",
                    path.display()
                );
            }
            AuditKeys::load(&path).map_err(BadInput)
        }
    }
}

fn audit_verify(at: &AuditFiles) -> ExitCode {
    let checked = (|| -> Result<_, BadInput> {
        let config = at.config()?;
        let keys = audit_keys(&config, false)?;
        let checkpoint_file = config.audit_checkpoint_file();
        let checkpoints = if checkpoint_file.exists() {
            read_checkpoints(&checkpoint_file).map_err(BadInput)?
        } else {
            Vec::new()
        };
        let path = config.store.path;
        let verdict = SqliteStore::open_existing(&path)
            .and_then(|store| payrules::store::audit::verify(&store, &keys, &checkpoints))
            .map_err(|e| BadInput(e.to_string()))?;
        Ok((path, verdict))
    })();
    let mut out = std::io::stdout().lock();
    match checked {
        Ok((path, Ok(verified))) => {
            let _ = write!(
                out,
                "{}: audit chain intact, {} entries",
                path.display(),
                verified.entries
            );
            if verified.unauthenticated > 0 {
                let _ = write!(
                    out,
                    " ({} from before audit keys, vouched for by the first signed entry)",
                    verified.unauthenticated
                );
            }
            if let Some(last) = verified.last_checkpoint {
                let _ = write!(
                    out,
                    "; last checkpoint at entry {last} ({} entries after it)",
                    verified.entries - last
                );
            }
            let _ = writeln!(out);
            ExitCode::SUCCESS
        }
        Ok((path, Err(fault))) => {
            let _ = writeln!(out, "{}: audit chain BROKEN at {fault}", path.display());
            ExitCode::FAILURE
        }
        Err(BadInput(error)) => {
            eprintln!("error: {error}");
            ExitCode::from(2)
        }
    }
}

fn audit_new_key(at: &AuditFiles) -> anyhow::Result<()> {
    let config = at.config()?;
    let path = match config.audit_key_source() {
        AuditKeySource::File { path, .. } => path,
        AuditKeySource::Env(name) => {
            return Err(BadInput(format!(
                "the audit keys come from the variable {name}: add a key there \
                 (`ID HEX`, first), or name a file with --key-file"
            ))
            .into());
        }
    };
    let id = AuditKeys::add_key(&path).map_err(BadInput)?;
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "added audit key {id} at the head of {}: it signs from the next start of payrules; \
         the keys after it still verify what they signed (keep them listed)",
        path.display()
    )?;
    Ok(())
}

fn rules_check(dir: &Path) -> anyhow::Result<()> {
    let runtime = Runtime::new().context("starting the WebAssembly runtime")?;
    let rules = RuleSet::load(dir, &runtime).map_err(|e| BadInput(e.to_string()))?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "{}: rule set {}", dir.display(), rules.version)?;
    for rule in rules.rules() {
        let vectors = rule.vectors.as_ref().map_or_else(
            || "no vectors".to_owned(),
            |v| format!("{} vectors pass", v.cases.len()),
        );
        writeln!(
            out,
            "  {:<10} {:<24} order {:<4} {}  {vectors}",
            rule.manifest.kind.name(),
            rule.manifest.name,
            rule.manifest.order,
            rule.version
        )?;
    }
    Ok(())
}

fn plugin_new(
    name: &str,
    kind: RuleKind,
    dir: Option<PathBuf>,
    language: Language,
    sdk: Option<&Path>,
) -> anyhow::Result<()> {
    let dir = dir.unwrap_or_else(|| PathBuf::from(name));
    let written = plugin::new_project(&plugin::NewProject {
        name,
        kind,
        dir: &dir,
        language,
        sdk,
    })
    .map_err(|e| BadInput(e.to_string()))?;
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "a {} rule {name} in {}, in {}:",
        kind.name(),
        dir.display(),
        language.name()
    )?;
    for path in written {
        writeln!(out, "  {}", path.display())?;
    }
    writeln!(
        out,
        "next: payrules plugin test {}   (builds it and runs its vectors)",
        dir.display()
    )?;
    Ok(())
}

/// Builds the project and loads its `dist` exactly as the live loader would, vectors
/// left to the caller.
fn plugin_build(dir: &Path) -> anyhow::Result<(Arc<Runtime>, RuleSet, PathBuf)> {
    let built = plugin::build(dir).map_err(|e| BadInput(e.to_string()))?;
    let runtime = Arc::new(Runtime::new().context("starting the WebAssembly runtime")?);
    let rules = RuleSet::load_untested(&built.dist, &runtime, None)
        .map_err(|e| BadInput(format!("the built rule does not load: {e}")))?;
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "built {} ({} KiB): copy {}/* into a rules directory",
        built.component.display(),
        built.component_bytes.div_ceil(1024),
        built.dist.display()
    )?;
    let dist = built.dist;
    Ok((runtime, rules, dist))
}

/// Runs the vectors of a project (after building it) or of a rules directory; whether
/// every case passed.
fn plugin_test(dir: &Path) -> anyhow::Result<bool> {
    let (runtime, rules, rules_dir) = if plugin::is_project(dir) {
        plugin_build(dir)?
    } else {
        let runtime = Arc::new(Runtime::new().context("starting the WebAssembly runtime")?);
        let rules =
            RuleSet::load_untested(dir, &runtime, None).map_err(|e| BadInput(e.to_string()))?;
        (runtime, rules, dir.to_owned())
    };
    let reports = rules.run_vectors(&runtime);
    if reports.is_empty() {
        return Err(BadInput(format!(
            "{}: no rule has test vectors (NAME.vectors.toml beside NAME.toml), so nothing was tested",
            rules_dir.display()
        ))
        .into());
    }
    let mut out = std::io::stdout().lock();
    let (_, failed) = plugin::write_report(&mut out, &reports)?;
    Ok(failed == 0)
}

/// What `payrules backtest` is asked.
#[derive(clap::Args)]
struct Backtest {
    /// The candidate rules directory.
    #[arg(long)]
    rules: PathBuf,
    /// The store to replay (default: the config's, or `payrules.db`).
    #[arg(long, conflicts_with = "payments")]
    store: Option<PathBuf>,
    /// Take the store path (and, with --payments, the baseline rules) from this config.
    #[arg(long, conflicts_with = "store")]
    config: Option<PathBuf>,
    /// Replay payments received from this instant (RFC 3339, e.g.
    /// 2026-11-20T00:00:00Z) or this long ago (e.g. 24h, 7days); default: all.
    #[arg(long)]
    since: Option<String>,
    /// ... up to this instant or this long ago; default: now.
    #[arg(long)]
    until: Option<String>,
    /// Instead of a store: a file of payments in the canonical JSON form, one per line,
    /// decided now, one millisecond apart.
    #[arg(long)]
    payments: Option<PathBuf>,
    /// With --payments: the rules the candidate is compared with (default: the
    /// config's rules directory, or examples/rules).
    #[arg(long, requires = "payments")]
    baseline: Option<PathBuf>,
    /// Print the comparison as JSON.
    #[arg(long)]
    json: bool,
}

fn backtest(args: &Backtest) -> anyhow::Result<()> {
    let config = args
        .config
        .as_deref()
        .map(Config::load)
        .transpose()
        .map_err(|e| BadInput(e.to_string()))?;
    let now = payrules::store::now_unix_ms();
    let instant = |flag: &str, text: &Option<String>, default: i64| match text {
        None => Ok(default),
        Some(text) => {
            parse_instant(text, now).map_err(|e| BadInput(format!("--{flag} {text:?}: {e}")))
        }
    };
    let since = instant("since", &args.since, 0)?;
    let until = instant("until", &args.until, now.saturating_add(1))?;
    let runtime = Arc::new(Runtime::new().context("starting the WebAssembly runtime")?);
    let candidate = RuleSet::load(&args.rules, &runtime)
        .map_err(|e| BadInput(format!("the candidate: {e}")))?;
    let comparison = match &args.payments {
        Some(file) => {
            let baseline_dir = match (&args.baseline, &config) {
                (Some(dir), _) => dir.clone(),
                (None, Some(config)) => config.rules_dir.clone(),
                (None, None) => PathBuf::from(payrules::config::RULES_DIR_DEFAULT),
            };
            let baseline = RuleSet::load(&baseline_dir, &runtime)
                .map_err(|e| BadInput(format!("the baseline: {e}")))?;
            let payments = read_payment_lines(file)?;
            payrules::compare::backtest_payments(runtime, &baseline, &candidate, &payments, now)
        }
        None => {
            let path = match (&args.store, &config) {
                (Some(store), _) => store.clone(),
                (None, Some(config)) => config.store.path.clone(),
                (None, None) => PathBuf::from(payrules::config::STORE_PATH_DEFAULT),
            };
            let store = SqliteStore::open_existing(&path).map_err(|e| BadInput(e.to_string()))?;
            payrules::compare::backtest_store(&store, runtime, &candidate, since, until)?
        }
    };
    let mut out = std::io::stdout().lock();
    if args.json {
        serde_json::to_writer_pretty(&mut out, &comparison)?;
        writeln!(out)?;
    } else {
        comparison.write_text(&mut out)?;
    }
    Ok(())
}

/// An instant given as RFC 3339 (`2026-11-20T00:00:00Z`) or as a time ago (`24h`).
fn parse_instant(text: &str, now_unix_ms: i64) -> Result<i64, String> {
    if let Ok(ago) = humantime::parse_duration(text) {
        let ago = i64::try_from(ago.as_millis()).map_err(|_| "too long ago".to_owned())?;
        return Ok(now_unix_ms.saturating_sub(ago));
    }
    let time = humantime::parse_rfc3339_weak(text).map_err(|_| {
        "neither an RFC 3339 instant (2026-11-20T00:00:00Z) nor a time ago (24h)".to_owned()
    })?;
    let since_epoch = time
        .duration_since(std::time::UNIX_EPOCH)
        .map_err(|_| "before 1970".to_owned())?;
    i64::try_from(since_epoch.as_millis()).map_err(|_| "too far ahead".to_owned())
}

/// Reads a file of payments, one canonical JSON payment per line (blank lines skipped);
/// each one's id is derived from its content.
fn read_payment_lines(path: &Path) -> anyhow::Result<Vec<(Payment, String)>> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| BadInput(format!("{}: cannot read it: {e}", path.display())))?;
    let mut payments = Vec::new();
    for (index, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let payment = Payment::from_json(line).map_err(|e| {
            BadInput(format!(
                "{} line {}: {}{}{} ({})",
                path.display(),
                index + 1,
                e.field,
                if e.field.is_empty() { "" } else { ": " },
                e.reason,
                e.code
            ))
        })?;
        let id = format!("pay_{}", &hex(&Sha256::digest(line.as_bytes()))[..20]);
        payments.push((payment, id));
    }
    Ok(payments)
}

fn keys_new(name: &str, roles: &[Role]) -> anyhow::Result<()> {
    let key = auth::new_key()?;
    let roles: Vec<String> = roles.iter().map(|r| format!("{:?}", r.name())).collect();
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "# The key (shown once; give it to {name}, keep it out of the config):"
    )?;
    writeln!(out, "# {key}")?;
    writeln!(out, "[[api_keys]]")?;
    writeln!(out, "name = {name:?}")?;
    writeln!(out, "sha256 = \"{}\"", auth::key_sha256(&key))?;
    writeln!(out, "roles = [{}]", roles.join(", "))?;
    Ok(())
}

fn evaluate(
    paths: &[PathBuf],
    rules_dir: &Path,
    json: bool,
    now_unix_ms: Option<i64>,
) -> anyhow::Result<()> {
    let payments = paths
        .iter()
        .map(|path| read_payment(path).map(|(payment, id)| (path, payment, id)))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let runtime = Arc::new(Runtime::new().context("starting the WebAssembly runtime")?);
    let rules = RuleSet::load(rules_dir, &runtime).map_err(|e| BadInput(e.to_string()))?;
    let velocity = Arc::new(VelocityBook::new());
    let pipeline = Pipeline::new(runtime, Arc::clone(&velocity));
    let mut out = std::io::stdout().lock();
    for (index, (path, payment, payment_id)) in payments.iter().enumerate() {
        let now = match now_unix_ms {
            Some(now) => now + i64::try_from(index).unwrap_or(0),
            None => payrules::store::now_unix_ms(),
        };
        let decision = pipeline.evaluate(&rules, payment, payment_id, now);
        // Later payments of the run see this one, as the service's would once stored.
        if decision.status == payrules::model::Status::Accepted {
            velocity.record(payment, now);
        }
        if json {
            serde_json::to_writer(&mut out, &decision)?;
            writeln!(out)?;
        } else {
            write_text(&mut out, path, &decision)?;
        }
    }
    Ok(())
}

/// `payrules parse FILE`: the contract of the ISO 20022 conformance kit.
fn parse(path: &Path) -> ExitCode {
    let refuse = |error: payrules::iso20022::IsoError| {
        let report = serde_json::json!({ "error": error });
        eprintln!("{report}");
        ExitCode::from(2)
    };
    let bytes = match read_limited(path, payrules::iso20022::limits::INPUT_BYTES_MAX as u64) {
        Ok(bytes) => bytes,
        Err(message) => return refuse(payrules::iso20022::IsoError::new("FF01", message)),
    };
    match payrules::iso20022::parse(&bytes) {
        Ok(message) => {
            let mut out = std::io::stdout().lock();
            match serde_json::to_writer(&mut out, &message)
                .and_then(|()| writeln!(out).map_err(serde_json::Error::io))
            {
                Ok(()) => ExitCode::SUCCESS,
                Err(error) => {
                    eprintln!("error: cannot write the result: {error}");
                    ExitCode::FAILURE
                }
            }
        }
        Err(error) => refuse(error),
    }
}

/// Reads a file of at most `max` bytes; the error says which file and why.
fn read_limited(path: &Path, max: u64) -> Result<Vec<u8>, String> {
    let metadata =
        std::fs::metadata(path).map_err(|e| format!("{}: cannot read it: {e}", path.display()))?;
    if metadata.len() > max {
        return Err(format!(
            "{}: {} bytes, more than the {max} allowed",
            path.display(),
            metadata.len()
        ));
    }
    std::fs::read(path).map_err(|e| format!("{}: cannot read it: {e}", path.display()))
}

/// Reads and validates a payment file; its id is derived from its content.
fn read_payment(path: &Path) -> anyhow::Result<(Payment, String)> {
    let metadata = std::fs::metadata(path)
        .map_err(|e| BadInput(format!("{}: cannot read it: {e}", path.display())))?;
    if metadata.len() > PAYMENT_BYTES_MAX {
        return Err(BadInput(format!(
            "{}: {} bytes, more than the {PAYMENT_BYTES_MAX} a payment may have",
            path.display(),
            metadata.len()
        ))
        .into());
    }
    let text = std::fs::read_to_string(path)
        .map_err(|e| BadInput(format!("{}: cannot read it: {e}", path.display())))?;
    let payment = Payment::from_json(&text).map_err(|e| {
        let field = if e.field.is_empty() {
            String::new()
        } else {
            format!("{}: ", e.field)
        };
        BadInput(format!(
            "{}: {field}{} ({})",
            path.display(),
            e.reason,
            e.code
        ))
    })?;
    let id = format!("pay_{}", &hex(&Sha256::digest(text.as_bytes()))[..20]);
    Ok((payment, id))
}

fn write_text(out: &mut impl Write, path: &Path, decision: &Decision) -> std::io::Result<()> {
    writeln!(out, "{}: {}", path.display(), decision.status.name())?;
    writeln!(
        out,
        "  payment {}  end-to-end {}",
        decision.payment_id, decision.end_to_end_id
    )?;
    writeln!(out, "  rule set {}", decision.rule_set_version)?;
    for reason in &decision.reasons {
        let rule = reason.rule.as_deref().unwrap_or("payrules");
        writeln!(
            out,
            "  reason {:<22} {:<20} {}",
            reason.code, rule, reason.message
        )?;
    }
    if let Some(score) = decision.risk_score {
        writeln!(out, "  risk score {score}")?;
    }
    if let Some(route) = &decision.route {
        writeln!(
            out,
            "  route {} (by {}): {}",
            route.rail.name(),
            route.rule,
            route.explanation
        )?;
    }
    writeln!(out, "  rules:")?;
    for run in &decision.rules {
        let outcome = match &run.outcome {
            RuleOutcome::Pass => "pass".to_owned(),
            RuleOutcome::Review { findings } => format!(
                "review {}",
                findings
                    .iter()
                    .map(|f| f.code.as_str())
                    .collect::<Vec<_>>()
                    .join(",")
            ),
            RuleOutcome::Reject { reason } => format!("reject {}", reason.code),
            RuleOutcome::Score { score, .. } => format!("score {score}"),
            RuleOutcome::Route { rail, .. } => format!("route {}", rail.name()),
            RuleOutcome::Decline { reason } => format!("decline {}", reason.code),
            RuleOutcome::Failed {
                failure, policy, ..
            } => format!("FAILED {failure:?} -> {policy:?}"),
        };
        writeln!(
            out,
            "    {:<10} {:<22} {}  {:<28} {:>6} us {:>10} fuel",
            run.kind.name(),
            run.name,
            &run.version[..12],
            outcome,
            run.duration_us,
            run.fuel_used
        )?;
        match &run.outcome {
            RuleOutcome::Review { findings } => {
                for finding in findings {
                    writeln!(out, "        {}: {}", finding.code, finding.message)?;
                }
            }
            RuleOutcome::Reject { reason } | RuleOutcome::Decline { reason } => {
                writeln!(out, "        {}: {}", reason.code, reason.message)?;
            }
            RuleOutcome::Score { reasons, .. } => {
                for reason in reasons {
                    writeln!(
                        out,
                        "        +{} {}: {}",
                        reason.points, reason.code, reason.message
                    )?;
                }
            }
            RuleOutcome::Route { explanation, .. } => writeln!(out, "        {explanation}")?,
            RuleOutcome::Failed { message, .. } => writeln!(out, "        {message}")?,
            RuleOutcome::Pass => {}
        }
        for line in &run.logs {
            writeln!(out, "        log {}: {}", line.level, line.message)?;
        }
    }
    Ok(())
}
