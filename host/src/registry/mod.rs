//! A rule set: every rule of a rules directory, compiled and ready, with the pipeline
//! policy and one version that names it all.
//!
//! A rules directory holds, for each rule, a manifest `NAME.toml` ([`manifest`]) beside its
//! component (`NAME.wasm` unless the manifest says otherwise) and the list files it names;
//! and optionally `pipeline.toml`, the policy that combines the rules' answers
//! ([`PipelinePolicy`]); for a canary, `canary.toml`, its policy ([`canary`]); and, for
//! any rule, its test vectors `NAME.vectors.toml` ([`vectors`]), which must pass before
//! the set can be used. Loading is all or nothing:
//! one bad file or one failing vector and the whole set is refused, naming the file and
//! why.

pub mod breaker;
pub mod canary;
pub mod kept;
pub mod live;
pub mod manifest;
pub mod vectors;
pub mod watch;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::lists::NamedList;
use crate::model::{Rail, RuleKind};
use crate::runtime::{CompiledRule, RuleContext, Runtime, WarmRecord};

pub use manifest::Manifest;
pub use vectors::Vectors;

/// The file of the pipeline policy in a rules directory.
pub const POLICY_FILE: &str = "pipeline.toml";
/// The most rules a set may hold.
pub const RULES_MAX: usize = 64;
/// The largest component file the host compiles.
pub const COMPONENT_BYTES_MAX: u64 = 32 * 1024 * 1024;
/// The largest manifest or policy file.
const TEXT_FILE_BYTES_MAX: u64 = 1024 * 1024;

/// Why a rules directory could not be loaded: the file at fault and the reason.
#[derive(Debug, thiserror::Error)]
#[error("{}: {message}", path.display())]
pub struct LoadError {
    /// The file (or directory) at fault.
    pub path: PathBuf,
    /// Why.
    pub message: String,
}

impl LoadError {
    pub(crate) fn new(path: &Path, message: impl Into<String>) -> Self {
        LoadError {
            path: path.to_owned(),
            message: message.into(),
        }
    }
}

/// Whether a file of a rules directory named `name` is a rule's manifest: a `.toml` that
/// is not the pipeline policy, a canary's policy or test vectors.
pub fn is_manifest_name(name: &str) -> bool {
    name.ends_with(".toml")
        && name != POLICY_FILE
        && name != canary::CANARY_FILE
        && !name.ends_with(vectors::FILE_SUFFIX)
}

/// How fraud scores combine into one.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ScoreCombination {
    /// The highest score of any fraud rule.
    #[default]
    Max,
    /// The sum of the scores, capped at 1000.
    Sum,
}

/// What the fraud score means.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct FraudPolicy {
    /// How scores combine.
    pub combine: ScoreCombination,
    /// A combined score at or above this holds the payment for review.
    pub review_at: u16,
    /// A combined score at or above this rejects the payment (ISO 20022 FRAD).
    pub reject_at: u16,
}

impl Default for FraudPolicy {
    fn default() -> Self {
        FraudPolicy {
            combine: ScoreCombination::Max,
            review_at: 600,
            reject_at: 900,
        }
    }
}

/// Which rails routing rules may choose from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct RoutingPolicy {
    /// The rails this deployment can send on, offered to every routing rule.
    pub candidates: Vec<Rail>,
}

impl Default for RoutingPolicy {
    fn default() -> Self {
        RoutingPolicy {
            candidates: Rail::ALL.to_vec(),
        }
    }
}

/// The pipeline policy of a rule set (`pipeline.toml`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct PipelinePolicy {
    /// Fraud thresholds and combination.
    pub fraud: FraudPolicy,
    /// Routing candidates.
    pub routing: RoutingPolicy,
}

impl PipelinePolicy {
    /// Parses and checks a policy file's text.
    pub fn parse(text: &str) -> Result<PipelinePolicy, String> {
        let policy: PipelinePolicy = toml::from_str(text).map_err(|e| toml_error(text, &e))?;
        let fraud = policy.fraud;
        if fraud.review_at == 0 || fraud.review_at > fraud.reject_at || fraud.reject_at > 1000 {
            return Err(format!(
                "fraud thresholds must satisfy 1 <= review-at <= reject-at <= 1000 (review-at {}, reject-at {})",
                fraud.review_at, fraud.reject_at
            ));
        }
        if policy.routing.candidates.is_empty() {
            return Err("routing.candidates must name at least one rail".to_owned());
        }
        Ok(policy)
    }
}

/// One loaded rule.
pub struct Rule {
    /// What its manifest says.
    pub manifest: Manifest,
    /// The sha256 of its component, hex.
    pub version: String,
    /// The compiled, pre-instantiated component.
    pub compiled: CompiledRule,
    /// What the sandbox needs besides the code.
    pub context: Arc<RuleContext>,
    /// Its test vectors, if it ships a `NAME.vectors.toml`.
    pub vectors: Option<Arc<Vectors>>,
    /// Its circuit on this host, closed when the set is loaded.
    pub breaker: breaker::Breaker,
}

/// One rule's test vectors run: the file and each case's report.
pub struct VectorsReport {
    /// The rule.
    pub rule: String,
    /// Its vectors file.
    pub path: PathBuf,
    /// Each case, in file order.
    pub cases: Vec<vectors::CaseReport>,
}

/// One case of a rule's test vectors as it ran when its set was loaded.
#[derive(Clone, Debug)]
pub struct CaseResult {
    /// The case's name.
    pub name: String,
    /// What the rule answered.
    pub outcome: crate::model::RuleOutcome,
    /// What did not hold; empty when it passed (a set loads only when all pass).
    pub mismatches: Vec<String>,
    /// The fuel it used.
    pub fuel_used: u64,
    /// Its wall time, µs.
    pub duration_us: u64,
}

/// Every rule of a directory, in pipeline order.
pub struct RuleSet {
    /// sha256 over every rule's name, component, manifest and lists, and the policy.
    pub version: String,
    /// How answers combine.
    pub policy: PipelinePolicy,
    rules: Vec<Rule>,
    /// Each rule's test vectors as they ran when the set was loaded (by rule name; none
    /// for a rule without vectors, or a set loaded untested).
    vector_results: BTreeMap<String, (PathBuf, Vec<CaseResult>)>,
    /// The lists the rules read, by content (sha256 of the file, and whether it is CSV):
    /// a reload reuses a list whose file did not change, index and remembered answers
    /// with it.
    lists: BTreeMap<(String, bool), Arc<NamedList>>,
}

impl RuleSet {
    /// Loads every rule of `dir` and the policy, compiling each component with `runtime`,
    /// and runs every rule's test vectors: a failing case refuses the set.
    pub fn load(dir: &Path, runtime: &Runtime) -> Result<RuleSet, LoadError> {
        RuleSet::load_reusing(dir, runtime, None)
    }

    /// Loads `dir` like [`RuleSet::load`], reusing the compiled code of `previous` for
    /// every component it already holds (same bytes, kind and capabilities) and its lists
    /// whose files did not change: a reload compiles and indexes only what changed. The
    /// vectors always run, reused code or not.
    pub fn load_reusing(
        dir: &Path,
        runtime: &Runtime,
        previous: Option<&RuleSet>,
    ) -> Result<RuleSet, LoadError> {
        let mut set = RuleSet::load_untested(dir, runtime, previous)?;
        for report in set.run_vectors(runtime) {
            let failed: Vec<_> = report.cases.iter().filter(|case| !case.passed()).collect();
            if let Some(first) = failed.first() {
                let more = match failed.len() - 1 {
                    0 => String::new(),
                    n => format!(" (and {n} more failing of {})", report.cases.len()),
                };
                return Err(LoadError::new(
                    &report.path,
                    format!(
                        "test vector {:?} of {} fails: {}{more}",
                        first.name,
                        report.rule,
                        first.mismatches.join("; ")
                    ),
                ));
            }
            let cases = report
                .cases
                .into_iter()
                .map(|case| CaseResult {
                    name: case.name,
                    outcome: case.outcome,
                    mismatches: case.mismatches,
                    fuel_used: case.fuel_used,
                    duration_us: u64::try_from(case.duration.as_micros()).unwrap_or(u64::MAX),
                })
                .collect();
            set.vector_results.insert(report.rule, (report.path, cases));
        }
        Ok(set)
    }

    /// The rule `name`'s test vectors as they ran when the set was loaded: the file and
    /// each case, or `None` when it has none (or the set was loaded untested).
    pub fn vector_results(&self, name: &str) -> Option<(&Path, &[CaseResult])> {
        self.vector_results
            .get(name)
            .map(|(path, cases)| (path.as_path(), cases.as_slice()))
    }

    /// Loads `dir` like [`RuleSet::load_reusing`] without running the test vectors (they
    /// are parsed and checked): for `payrules plugin test`, which reports every case.
    pub fn load_untested(
        dir: &Path,
        runtime: &Runtime,
        previous: Option<&RuleSet>,
    ) -> Result<RuleSet, LoadError> {
        // Files are read only where they resolve inside the directory (symlinks followed:
        // a Kubernetes ConfigMap mount is a tree of them), so resolve it once.
        let root = dir
            .canonicalize()
            .map_err(|e| LoadError::new(dir, format!("cannot read the rules directory: {e}")))?;
        let entries = std::fs::read_dir(dir)
            .map_err(|e| LoadError::new(dir, format!("cannot read the rules directory: {e}")))?;
        let mut manifests = Vec::new();
        for entry in entries {
            let path = entry
                .map_err(|e| LoadError::new(dir, e.to_string()))?
                .path();
            let is_manifest = path
                .file_name()
                .and_then(|name| name.to_str())
                .is_some_and(is_manifest_name)
                && path.is_file();
            if is_manifest {
                manifests.push(path);
            }
        }
        manifests.sort();
        if manifests.len() > RULES_MAX {
            return Err(LoadError::new(
                dir,
                format!(
                    "{} rules, more than the {RULES_MAX} allowed",
                    manifests.len()
                ),
            ));
        }
        let mut set_hash = Sha256::new();
        let policy_path = dir.join(POLICY_FILE);
        let policy = if policy_path.exists() {
            let text = read_text(&root, &policy_path)?;
            set_hash.update(b"policy\0");
            set_hash.update(text.as_bytes());
            PipelinePolicy::parse(&text).map_err(|e| LoadError::new(&policy_path, e))?
        } else {
            PipelinePolicy::default()
        };
        let mut lists: BTreeMap<PathBuf, (Arc<NamedList>, String)> = BTreeMap::new();
        let mut by_content = BTreeMap::new();
        let mut rules = Vec::with_capacity(manifests.len());
        for path in manifests {
            let name = path
                .file_stem()
                .and_then(|stem| stem.to_str())
                .ok_or_else(|| LoadError::new(&path, "the file name is not valid UTF-8"))?
                .to_owned();
            let text = read_text(&root, &path)?;
            let manifest = Manifest::parse(&name, &text).map_err(|e| LoadError::new(&path, e))?;
            let component_path = dir.join(&manifest.component);
            let wasm = read_bytes(&root, &component_path, COMPONENT_BYTES_MAX)?;
            let version = hex(&Sha256::digest(&wasm));
            set_hash.update(name.as_bytes());
            set_hash.update(b"\0");
            set_hash.update(version.as_bytes());
            set_hash.update(Sha256::digest(text.as_bytes()));
            let mut rule_lists = BTreeMap::new();
            for (list_name, file) in &manifest.lists {
                let list_path = dir.join(file);
                if !lists.contains_key(&list_path) {
                    let bytes = read_bytes(&root, &list_path, crate::lists::LIST_BYTES_MAX as u64)?;
                    let csv = list_path.extension().is_some_and(|ext| ext == "csv");
                    let content = (hex(&Sha256::digest(&bytes)), csv);
                    let kept = previous.and_then(|set| set.lists.get(&content)).cloned();
                    let list = match kept {
                        Some(list) => list,
                        None => Arc::new(
                            NamedList::parse(&bytes, csv)
                                .map_err(|e| LoadError::new(&list_path, e.to_string()))?,
                        ),
                    };
                    by_content.insert(content.clone(), Arc::clone(&list));
                    lists.insert(list_path.clone(), (list, content.0));
                }
                let (list, list_hash) = &lists[&list_path];
                set_hash.update(list_name.as_bytes());
                set_hash.update(list_hash.as_bytes());
                rule_lists.insert(list_name.clone(), Arc::clone(list));
            }
            let context = Arc::new(RuleContext {
                name: name.clone(),
                limits: manifest.limits,
                config: manifest.config.clone(),
                lists: rule_lists,
                isolation: manifest.isolation,
                warm: WarmRecord::default(),
            });
            // A prepared rule version started from what its `prepare` made of its
            // configuration and lists: it is reused only where those are the same too.
            let reusable = previous.and_then(|set| {
                set.rules.iter().find(|rule| {
                    rule.version == version
                        && rule.manifest.kind == manifest.kind
                        && rule.manifest.capabilities == manifest.capabilities
                        && (!rule.compiled.prepared()
                            || (rule.context.config == context.config
                                && rule.context.limits == context.limits
                                && same_lists(&rule.context.lists, &context.lists)))
                })
            });
            let compiled = match reusable {
                Some(rule) => rule.compiled.clone(),
                None => runtime
                    .compile_rule(&wasm, manifest.kind, &manifest.capabilities, &context)
                    .map_err(|e| LoadError::new(&component_path, e.to_string()))?,
            };
            let vectors_path = dir.join(format!("{name}{}", vectors::FILE_SUFFIX));
            let vectors = if vectors_path.is_file() {
                let text = read_text(&root, &vectors_path)?;
                let mut parsed = Vectors::parse(&text, manifest.kind)
                    .map_err(|e| LoadError::new(&vectors_path, e))?;
                parsed.path = vectors_path;
                Some(Arc::new(parsed))
            } else {
                None
            };
            rules.push(Rule {
                manifest,
                version,
                compiled,
                context,
                vectors,
                breaker: breaker::Breaker::default(),
            });
        }
        rules.sort_by(|a, b| {
            kind_rank(a.manifest.kind)
                .cmp(&kind_rank(b.manifest.kind))
                .then(a.manifest.order.cmp(&b.manifest.order))
                .then(a.manifest.name.cmp(&b.manifest.name))
        });
        Ok(RuleSet {
            version: hex(&set_hash.finalize()),
            policy,
            rules,
            vector_results: BTreeMap::new(),
            lists: by_content,
        })
    }

    /// Runs the test vectors of every rule that has them, in pipeline order.
    pub fn run_vectors(&self, runtime: &Runtime) -> Vec<VectorsReport> {
        self.rules
            .iter()
            .filter_map(|rule| {
                let vectors = rule.vectors.as_ref()?;
                Some(VectorsReport {
                    rule: rule.manifest.name.clone(),
                    path: vectors.path.clone(),
                    cases: vectors.run(runtime, rule, &self.policy.routing.candidates),
                })
            })
            .collect()
    }

    /// Every rule, compliance first, then fraud, then routing, each by order then name.
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// The rules of one kind, in order.
    pub fn of_kind(&self, kind: RuleKind) -> impl Iterator<Item = &Rule> {
        self.rules
            .iter()
            .filter(move |rule| rule.manifest.kind == kind)
    }
}

fn kind_rank(kind: RuleKind) -> u8 {
    match kind {
        RuleKind::Compliance => 0,
        RuleKind::Fraud => 1,
        RuleKind::Routing => 2,
    }
}

/// Reads a file of the rules directory `root` (canonical): only a regular file, only
/// where it resolves inside `root` after following symlinks (a `lists/leak.txt ->
/// /etc/passwd` is refused), at most `max` bytes whatever its size claims (a device reads
/// without end), opened without blocking (a FIFO in place of a file would wait for a
/// writer forever).
fn read_bytes(root: &Path, path: &Path, max: u64) -> Result<Vec<u8>, LoadError> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let unreadable = |e: std::io::Error| LoadError::new(path, format!("cannot read it: {e}"));
    let resolved = path.canonicalize().map_err(unreadable)?;
    if !resolved.starts_with(root) {
        return Err(LoadError::new(
            path,
            "it resolves outside the rules directory (a symlink out of it is not followed)",
        ));
    }
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(&resolved)
        .map_err(unreadable)?;
    if !file.metadata().map_err(unreadable)?.is_file() {
        return Err(LoadError::new(
            path,
            "not a regular file (a device, a FIFO or a socket is never read)",
        ));
    }
    let mut bytes = Vec::new();
    file.take(max + 1)
        .read_to_end(&mut bytes)
        .map_err(unreadable)?;
    if bytes.len() as u64 > max {
        return Err(LoadError::new(
            path,
            format!("more than the {max} bytes allowed"),
        ));
    }
    Ok(bytes)
}

fn read_text(root: &Path, path: &Path) -> Result<String, LoadError> {
    let bytes = read_bytes(root, path, TEXT_FILE_BYTES_MAX)?;
    String::from_utf8(bytes).map_err(|_| LoadError::new(path, "not valid UTF-8"))
}

/// A TOML error as "line L, column C: what", never quoting the file: an error reaches
/// operators over HTTP and the audit log, and a file named by mistake (another service's
/// secrets) must not be echoed back.
pub(crate) fn toml_error(text: &str, error: &toml::de::Error) -> String {
    let message = error.message().trim_end();
    match error.span() {
        Some(span) => {
            let before = text.get(..span.start).unwrap_or(text);
            let line = before.matches('\n').count() + 1;
            let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
            format!("line {line}, column {column}: {message}")
        }
        None => message.to_owned(),
    }
}

/// Whether two rule versions have the same lists: by name, and by content (a list whose
/// file did not change is the very same `Arc` in the next rule set).
fn same_lists(a: &BTreeMap<String, Arc<NamedList>>, b: &BTreeMap<String, Arc<NamedList>>) -> bool {
    a.len() == b.len()
        && a.iter().zip(b).all(|((a_name, a_list), (b_name, b_list))| {
            a_name == b_name && Arc::ptr_eq(a_list, b_list)
        })
}

/// Lower-case hex of a digest.
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut text, byte| {
            let _ = write!(text, "{byte:02x}");
            text
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_policy_offers_every_rail() {
        let policy = PipelinePolicy::parse("").expect("empty policy is the default");
        assert_eq!(policy, PipelinePolicy::default());
        assert_eq!(policy.routing.candidates.len(), 7);
    }

    #[test]
    fn policies_with_crossed_thresholds_are_refused() {
        assert!(PipelinePolicy::parse("[fraud]\nreview-at = 900\nreject-at = 800").is_err());
        assert!(PipelinePolicy::parse("[fraud]\nreject-at = 1200").is_err());
        assert!(PipelinePolicy::parse("[routing]\ncandidates = []").is_err());
        assert!(PipelinePolicy::parse("[routing]\ncandidates = [\"carrier-pigeon\"]").is_err());
        let policy = PipelinePolicy::parse("[fraud]\ncombine = \"sum\"\nreview-at = 500\n[routing]\ncandidates = [\"fednow\", \"ach\"]")
            .expect("valid");
        assert_eq!(policy.fraud.combine, ScoreCombination::Sum);
        assert_eq!(policy.routing.candidates, vec![Rail::Fednow, Rail::Ach]);
    }
}
