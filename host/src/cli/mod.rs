//! The `payrules` command line: one module per command, each with its arguments (parsed
//! and checked by clap, once) and what it runs.
//!
//! - `payrules serve [--config FILE]` runs the HTTP service ([`serve`]).
//! - `payrules evaluate PAYMENT.json --rules DIR` decides payments with the rules of a
//!   directory and prints each decision and the trace of every rule, with no server
//!   ([`evaluate`]).
//! - `payrules parse FILE` prints the payments of an ISO 20022 message as JSON ([`parse`]).
//! - `payrules audit verify` checks the store's audit log; `payrules audit new-key`
//!   rotates the audit key ([`audit`]).
//! - `payrules keys new` makes an API key and the config lines for it ([`keys`]).
//! - `payrules rules check DIR` loads a rules directory as the live loader would ([`rules`]).
//! - `payrules plugin new|build|test` scaffolds, builds and tests a rule project ([`plugin`]).
//! - `payrules backtest` replays payments through a candidate rule set ([`backtest`]).
//! - `payrules wit export DIR` writes the rule contract's WIT files ([`wit`]).
//!
//! Exit status: 0 done, 1 a check that failed (a broken audit chain, a failing vector) or
//! an operational failure, 2 bad input (arguments, files, config).

mod audit;
mod backtest;
mod evaluate;
mod keys;
mod parse;
mod plugin;
mod rules;
mod serve;
mod wit;

use std::path::Path;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use payrules::config::LogFormat;
use payrules::model::Payment;
use payrules::telemetry;

/// Points `config` at the store `--store` names: a `postgres://` (or `postgresql://`)
/// URL, its password from `PGPASSWORD` as for PostgreSQL's own tools; else a SQLite file.
fn store_at(config: &mut payrules::config::Config, store: &Path) {
    let text = store.to_string_lossy();
    if text.starts_with("postgres://") || text.starts_with("postgresql://") {
        config.store.url = Some(text.into_owned());
        if std::env::var_os("PGPASSWORD").is_some() {
            config.store.password_env = Some("PGPASSWORD".to_owned());
        }
    } else {
        config.store.path = store.to_owned();
    }
}

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
    Serve(serve::Args),
    /// The audit log.
    Audit {
        #[command(subcommand)]
        command: audit::AuditCommand,
    },
    /// API keys.
    Keys {
        #[command(subcommand)]
        command: keys::KeysCommand,
    },
    /// Rules directories.
    Rules {
        #[command(subcommand)]
        command: rules::RulesCommand,
    },
    /// Replay payments through a candidate rules directory and compare its decisions with
    /// the recorded ones: how many change, from what to what, by which rule, examples.
    /// The payments are those a store received (a running or stopped instance), or a
    /// file of payments decided by both the baseline and the candidate.
    Backtest(backtest::Backtest),
    /// Rule projects: scaffold, build, test.
    Plugin {
        #[command(subcommand)]
        command: plugin::PluginCommand,
    },
    /// Read an ISO 20022 pacs.008 or pain.001 message and print its payments as JSON; a
    /// message that must be refused gets a JSON error (ISO code, message, element path)
    /// on stderr and exit status 2.
    Parse {
        /// The XML message.
        file: std::path::PathBuf,
    },
    /// Decide payments with the rules of a directory and print each decision and its trace.
    Evaluate(evaluate::Args),
    /// The rule contract's WIT files.
    Wit {
        #[command(subcommand)]
        command: wit::WitCommand,
    },
}

/// A failure that is the input's fault: exit status 2.
#[derive(Debug)]
pub(super) struct BadInput(String);

impl std::fmt::Display for BadInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for BadInput {}

/// Parses the command line and runs the command.
pub fn run() -> ExitCode {
    let cli = Cli::parse();
    if !matches!(cli.command, Command::Serve(_)) {
        telemetry::init_logging(LogFormat::Text, "warn");
    }
    let done = |result: anyhow::Result<()>| result.map(|()| ExitCode::SUCCESS);
    let result = match cli.command {
        Command::Serve(args) => done(serve::run(&args)),
        Command::Audit { command } => audit::run(&command),
        Command::Keys { command } => done(keys::run(&command)),
        Command::Rules { command } => done(rules::run(&command)),
        Command::Plugin { command } => plugin::run(command),
        Command::Backtest(args) => done(backtest::backtest(&args)),
        Command::Parse { file } => Ok(parse::parse(&file)),
        Command::Evaluate(args) => done(evaluate::run(&args)),
        Command::Wit { command } => done(wit::run(&command)),
    };
    match result {
        Ok(code) => code,
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

/// Reads a file of at most `max` bytes; the error says which file and why.
pub(super) fn read_limited(path: &Path, max: u64) -> Result<Vec<u8>, String> {
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
pub(super) fn read_payment(path: &Path) -> anyhow::Result<(Payment, String)> {
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
    Ok((payment, payment_id_of(&text)))
}

/// The payment id a payment read from a file gets: `pay_` and 80 bits of the sha256 of
/// its text, so the same file decides under the same id every time.
pub(super) fn payment_id_of(text: &str) -> String {
    use sha2::{Digest, Sha256};
    format!(
        "pay_{}",
        &payrules::registry::hex(&Sha256::digest(text.as_bytes()))[..20]
    )
}
