//! The `payrules` command.
//!
//! `payrules evaluate PAYMENT.json --rules DIR` decides one payment with the rules of a
//! directory and prints the decision and the trace of every rule, with no server.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context;
use clap::{Parser, Subcommand};
use sha2::{Digest, Sha256};

use payrules::model::{Decision, Payment, RuleOutcome};
use payrules::pipeline::Pipeline;
use payrules::registry::{RuleSet, hex};
use payrules::runtime::Runtime;
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
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("PAYRULES_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let result = match cli.command {
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
    let pipeline = Pipeline::new(runtime, Arc::new(VelocityBook::new()));
    let mut out = std::io::stdout().lock();
    for (index, (path, payment, payment_id)) in payments.iter().enumerate() {
        let now = match now_unix_ms {
            Some(now) => now + i64::try_from(index).unwrap_or(0),
            None => SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
                .unwrap_or(0),
        };
        let decision = pipeline.evaluate(&rules, payment, payment_id, now);
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
    let status = serde_json::to_value(decision.status).unwrap_or_default();
    writeln!(
        out,
        "{}: {}",
        path.display(),
        status.as_str().unwrap_or("?")
    )?;
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
        let rail = serde_json::to_value(route.rail).unwrap_or_default();
        writeln!(
            out,
            "  route {} (by {}): {}",
            rail.as_str().unwrap_or("?"),
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
            RuleOutcome::Route { rail, .. } => format!(
                "route {}",
                serde_json::to_value(rail)
                    .unwrap_or_default()
                    .as_str()
                    .unwrap_or("?")
            ),
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
