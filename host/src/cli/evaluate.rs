//! `payrules evaluate`: decide payment files with a rules directory, no server.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;

use super::{BadInput, read_payment};
use payrules::model::{Decision, RuleOutcome};
use payrules::pipeline::Pipeline;
use payrules::registry::RuleSet;
use payrules::runtime::Runtime;
use payrules::velocity::VelocityBook;

/// `payrules evaluate`.
#[derive(clap::Args)]
pub struct Args {
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
}

/// Runs it.
pub fn run(args: &Args) -> anyhow::Result<()> {
    evaluate(&args.payments, &args.rules, args.json, args.now_unix_ms)
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
