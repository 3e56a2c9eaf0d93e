//! `payrules wit export`: the contract's WIT files, for rule teams writing in languages
//! other than Rust (or checking them into their own repositories).

use clap::Subcommand;
use std::io::Write;
use std::path::{Path, PathBuf};

use super::BadInput;
use payrules::plugin::WIT_FILES;
use payrules::runtime::CONTRACT_VERSION;

#[derive(Subcommand)]
pub enum WitCommand {
    /// Write the contract this payrules speaks (the WIT package payrules:rules, its
    /// types, capabilities and one world per rule kind) into DIR, created if missing.
    Export {
        /// Where to write types.wit, capabilities.wit and worlds.wit.
        dir: PathBuf,
    },
}

/// Runs a wit command.
pub fn run(command: &WitCommand) -> anyhow::Result<()> {
    match command {
        WitCommand::Export { dir } => export(dir),
    }
}

fn export(dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| BadInput(format!("{}: {e}", dir.display())))?;
    for (file, text) in WIT_FILES {
        let path = dir.join(file);
        std::fs::write(&path, text).map_err(|e| BadInput(format!("{}: {e}", path.display())))?;
    }
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "payrules:rules@{CONTRACT_VERSION} in {}: {}",
        dir.display(),
        WIT_FILES.map(|(file, _)| file).join(", ")
    )?;
    writeln!(
        out,
        "its worlds: compliance-rule, fraud-rule, routing-rule (a rule imports only the \
         capabilities its manifest grants)"
    )?;
    Ok(())
}
