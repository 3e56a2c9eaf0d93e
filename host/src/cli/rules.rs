//! `payrules rules check`: load a rules directory exactly as the live loader would.

use clap::Subcommand;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;

use super::BadInput;
use payrules::registry::RuleSet;
use payrules::runtime::Runtime;

#[derive(Subcommand)]
pub enum RulesCommand {
    /// Load a rules directory exactly as the live loader would (every manifest, component,
    /// capability, list and test vector); print its version and rules, or the file at
    /// fault and why (exit status 2). For the CI of rule teams.
    Check {
        /// The rules directory.
        dir: PathBuf,
    },
}

/// Runs a rules command.
pub fn run(command: &RulesCommand) -> anyhow::Result<()> {
    match command {
        RulesCommand::Check { dir } => rules_check(dir),
    }
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
