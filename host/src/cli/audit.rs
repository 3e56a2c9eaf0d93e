//! `payrules audit verify | new-key`: check the audit log; rotate its key.

use clap::Subcommand;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use super::BadInput;
use payrules::config::{AuditKeySource, Config};
use payrules::store::audit_keys::{AuditKeys, read_checkpoints};
use payrules::store::personal::MasterKeys;

#[derive(Subcommand)]
pub enum AuditCommand {
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
pub struct AuditFiles {
    /// The store: a SQLite file, or a `postgres://` URL (the password from `PGPASSWORD`,
    /// or use --config); by default the config's, or `payrules.db`.
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
    /// The master key file that unwraps the sealed rows' data keys (instead of the
    /// config's, or the one beside the store).
    #[arg(long)]
    master_key_file: Option<PathBuf>,
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
                    super::store_at(&mut config, store);
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
        if let Some(master_key_file) = &self.master_key_file {
            config.personal_data.master_key_file = Some(master_key_file.clone());
            config.personal_data.master_key_env = None;
        }
        Ok(config)
    }
}

/// Runs an audit command.
pub fn run(command: &AuditCommand) -> anyhow::Result<ExitCode> {
    match command {
        AuditCommand::Verify { at } => Ok(audit_verify(at)),
        AuditCommand::NewKey { at } => audit_new_key(at).map(|()| ExitCode::SUCCESS),
    }
}

/// The audit keys the config names. `serve` makes the default key file beside the store
/// when it is missing (`make_default`); nothing else makes one.
pub(super) fn audit_keys(config: &Config, make_default: bool) -> Result<AuditKeys, BadInput> {
    if config.store.url.is_some()
        && config.audit.key_file.is_none()
        && config.audit.key_env.is_none()
    {
        // A key made beside one host would sign entries no other host's verifier knows.
        return Err(BadInput(
            "store.url: the hosts sharing a database sign one audit chain, so they share \
             its audit keys: set audit.key_file or audit.key_env (the same keys on every \
             host; `payrules audit new-key --key-file FILE` makes a key file)"
                .to_owned(),
        ));
    }
    keys_from(
        config.audit_key_source(),
        "audit.key_env",
        "audit key",
        "audit.key_file or audit.key_env",
        make_default,
        (AuditKeys::parse, AuditKeys::load, AuditKeys::add_key),
    )
}

/// The master keys that wrap the store's data keys, as the config names them. `serve`
/// makes the default key file beside the store when it is missing (`make_default`).
pub(super) fn master_keys(config: &Config, make_default: bool) -> Result<MasterKeys, BadInput> {
    if config.store.url.is_some()
        && config.personal_data.master_key_file.is_none()
        && config.personal_data.master_key_env.is_none()
    {
        // A key made beside one host would wrap data keys no other host could unwrap.
        return Err(BadInput(
            "store.url: the hosts sharing a database read each other's sealed rows, so they \
             share its master keys: set personal_data.master_key_file or \
             personal_data.master_key_env (the same keys on every host; `payrules keys \
             new-master-key --key-file FILE` makes a key file)"
                .to_owned(),
        ));
    }
    keys_from(
        config.master_key_source(),
        "personal_data.master_key_env",
        "master key",
        "personal_data.master_key_file or personal_data.master_key_env",
        make_default,
        (MasterKeys::parse, MasterKeys::load, MasterKeys::add_key),
    )
}

/// How a kind of keys is parsed from text, loaded from a file, and added to one.
type KeyFunctions<K> = (
    fn(&str, &str) -> Result<K, String>,
    fn(&std::path::Path) -> Result<K, String>,
    fn(&std::path::Path) -> Result<String, String>,
);

/// Keys from where `source` says: a variable (`env_setting` names the setting), or a
/// file, made beside the store when it is the default one and `make_default`.
fn keys_from<K>(
    source: AuditKeySource,
    env_setting: &str,
    noun: &str,
    settings: &str,
    make_default: bool,
    (parse, load, add): KeyFunctions<K>,
) -> Result<K, BadInput> {
    match source {
        AuditKeySource::Env(name) => {
            let text = std::env::var(&name).map_err(|e| {
                BadInput(format!(
                    "{env_setting}: the variable {name} cannot be read: {e}"
                ))
            })?;
            parse(&text, &format!("the variable {name}")).map_err(BadInput)
        }
        AuditKeySource::File {
            path,
            made_if_missing,
        } => {
            if make_default && made_if_missing && !path.exists() {
                add(&path).map_err(BadInput)?;
                eprintln!(
                    "payrules: made the {noun} {} beside the store (for local use: in \
                     production keep it where the database's readers and writers cannot \
                     read it, {settings})",
                    path.display()
                );
            }
            load(&path).map_err(BadInput)
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
        let master = master_keys(&config, false)?;
        let store = payrules::service::open_existing_store(&config, master).map_err(BadInput)?;
        let verdict = payrules::store::audit::verify(&*store, &keys, &checkpoints)
            .map_err(|e| BadInput(format!("{}: {e}", store.location())))?;
        Ok((store.location(), verdict))
    })();
    let mut out = std::io::stdout().lock();
    match checked {
        Ok((location, Ok(verified))) => {
            let _ = write!(
                out,
                "{location}: audit chain intact, {} entries",
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
        Ok((location, Err(fault))) => {
            let _ = writeln!(out, "{location}: audit chain BROKEN at {fault}");
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
