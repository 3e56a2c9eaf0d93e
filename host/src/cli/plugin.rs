//! `payrules plugin new | build | test`: rule projects, from nothing to a tested component.

use clap::Subcommand;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;

use super::BadInput;
use payrules::model::RuleKind;
use payrules::plugin::{self, Language};
use payrules::registry::RuleSet;
use payrules::runtime::Runtime;

#[derive(Subcommand)]
pub enum PluginCommand {
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
        /// For Rust, a payrules-sdk crate to build against in place of the published
        /// one (a `[patch.crates-io]` path override; default: plugins/sdk of the checkout
        /// this binary was built from, if it is still there). The project depends on
        /// payrules-sdk by version either way.
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

/// Runs a plugin command.
pub fn run(command: PluginCommand) -> anyhow::Result<ExitCode> {
    match command {
        PluginCommand::New {
            name,
            kind,
            dir,
            lang,
            sdk,
        } => plugin_new(&name, kind, dir, lang, sdk.as_deref()).map(|()| ExitCode::SUCCESS),
        PluginCommand::Build { dir } => plugin_build(&dir).map(|_| ExitCode::SUCCESS),
        PluginCommand::Test { dir } => Ok(if plugin_test(&dir)? {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        }),
    }
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
