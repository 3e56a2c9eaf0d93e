//! `payrules backtest`: replay stored (or listed) payments through a candidate rule set
//! and compare.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;

use super::{BadInput, payment_id_of};
use payrules::config::Config;
use payrules::model::Payment;
use payrules::registry::RuleSet;
use payrules::runtime::Runtime;

/// What `payrules backtest` is asked.
#[derive(clap::Args)]
pub struct Backtest {
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

pub(super) fn backtest(args: &Backtest) -> anyhow::Result<()> {
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
            let mut at = config.clone().unwrap_or_default();
            if let Some(store) = &args.store {
                super::store_at(&mut at, store);
            }
            let master = super::audit::master_keys(&at, false)?;
            let store = payrules::service::open_existing_store(&at, master).map_err(BadInput)?;
            payrules::compare::backtest_store(&*store, runtime, &candidate, since, until)?
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
        payments.push((payment, payment_id_of(line)));
    }
    Ok(payments)
}
