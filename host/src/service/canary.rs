//! The canary: a candidate rule set deciding a share of live traffic for real, chosen by
//! the debtor account ([`in_canary`]), from a `canary/` subdirectory of the rules
//! directory (followed like `shadow/`) or a directory an operator names.
//!
//! While it runs, every stored decision is counted on its side ([`CanaryStats`]), and
//! every [`CANARY_JUDGE_INTERVAL`] the canary's figures are held against its abort policy
//! (`canary.toml`): a breach ends it at once, audited with the figures. An operator
//! changes its share, removes it, or promotes it: its files are written into the rules
//! directory, which then goes live as any change does; a read-only rules directory (a
//! ConfigMap) is promoted by the deployment, and the canary ends as promoted whenever the
//! live set's version becomes its own. Every step is in the audit log.
//!
//! [`in_canary`]: crate::registry::canary::in_canary
//! [`CanaryStats`]: crate::registry::canary::CanaryStats

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use serde::Serialize;

use super::rules::{holds_rules, listed};
use super::{Service, ServiceError};
use crate::model::Payment;
use crate::pipeline::shadow::DirectoryState;
use crate::registry::RuleSet;
use crate::registry::canary::{ArmFigures, CANARY_FILE, CanaryPolicy, CanaryStats, in_canary};
use crate::registry::live::{Rejected, ReloadOutcome};
use crate::store::audit::AuditEntry;
use crate::store::now_unix_ms;

/// The subdirectory of the rules directory whose rules run as the canary.
pub const CANARY_SUBDIR: &str = "canary";
/// How often the canary's figures are held against its abort policy.
pub const CANARY_JUDGE_INTERVAL: Duration = Duration::from_secs(1);
/// The audit action of a canary started.
pub const CANARY_STARTED: &str = "rules.canary_started";
/// The audit action of a canary's share changed by an operator.
pub const CANARY_PERCENT: &str = "rules.canary_percent";
/// The audit action of a canary aborted by its policy.
pub const CANARY_ABORTED: &str = "rules.canary_aborted";
/// The audit action of a canary removed.
pub const CANARY_REMOVED: &str = "rules.canary_removed";
/// The audit action of a canary promoted (its version live).
pub const CANARY_PROMOTED: &str = "rules.canary_promoted";

/// Where a canary came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CanarySource {
    /// The rules directory's `canary/`.
    Directory,
    /// An operator (`POST /v1/rules/canary`).
    Api,
}

/// A canary on this host.
pub struct Canary {
    /// Its rules.
    pub rules: Arc<RuleSet>,
    /// The directory it was loaded from.
    pub dir: PathBuf,
    /// Where it came from.
    pub source: CanarySource,
    /// Its policy (its share as started).
    pub policy: CanaryPolicy,
    /// Its share of traffic now, percent.
    percent: AtomicU8,
    /// When it started, ms since the Unix epoch.
    pub started_at_unix_ms: i64,
    /// What each side decided since.
    pub stats: CanaryStats,
}

impl Canary {
    /// Its share of traffic now, percent.
    pub fn percent(&self) -> u8 {
        self.percent.load(Ordering::Relaxed)
    }
}

/// How a canary ended.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct Ended {
    /// `aborted` (by its policy), `removed` or `promoted`.
    pub outcome: &'static str,
    /// When, ms since the Unix epoch.
    pub at_unix_ms: i64,
    /// Who or what ended it.
    pub by: String,
    /// Why.
    pub why: String,
}

/// The canary of this host: the one running, and the last one that ended.
#[derive(Default)]
pub struct CanarySlot {
    running: RwLock<Option<Arc<Canary>>>,
    last_ended: Mutex<Option<(Arc<Canary>, Ended)>>,
    directory: Mutex<DirectoryState>,
    last_rejected: Mutex<Option<Rejected>>,
}

impl CanarySlot {
    /// The canary running, if any.
    pub fn running(&self) -> Option<Arc<Canary>> {
        self.running
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The last canary that ended, and how.
    pub fn last_ended(&self) -> Option<(Arc<Canary>, Ended)> {
        lock(&self.last_ended).clone()
    }

    /// The last candidate refused as the canary since the start.
    pub fn last_rejected(&self) -> Option<Rejected> {
        lock(&self.last_rejected).clone()
    }

    fn install(&self, canary: Canary) {
        *self.running.write().unwrap_or_else(|p| p.into_inner()) = Some(Arc::new(canary));
    }

    fn end(&self, ended: Ended) -> Option<Arc<Canary>> {
        let taken = self
            .running
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .take()?;
        *lock(&self.last_ended) = Some((Arc::clone(&taken), ended));
        Some(taken)
    }

    /// Notes what `canary/` holds; whether that changed.
    fn directory_seen(&self, state: DirectoryState) -> bool {
        let mut seen = lock(&self.directory);
        let changed = *seen != state;
        *seen = state;
        changed
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Why a canary operation was not done.
#[derive(Debug, thiserror::Error)]
pub enum CanaryError {
    /// The directory is not under a configured shadow root.
    #[error("{0}")]
    NotAllowed(String),
    /// It does not load, or its `canary.toml` is invalid, or it holds the live set.
    #[error("{0}")]
    DoesNotLoad(String),
    /// No canary runs.
    #[error("no canary runs")]
    NoCanary,
    /// A share outside 0..=100.
    #[error("percent: {0} is not a share of traffic (0 to 100)")]
    BadPercent(u16),
    /// The rules directory cannot be written: the deployment promotes.
    #[error("{0}")]
    ReadOnly(String),
    /// The store could not record it.
    #[error(transparent)]
    Service(#[from] ServiceError),
}

impl Service {
    /// The rule set that decides `payment`, and whether it is the canary's.
    pub fn rules_for(&self, payment: &Payment) -> (Arc<RuleSet>, bool) {
        if let Some(canary) = self.canary.running() {
            let percent = canary.percent();
            if percent > 0 && in_canary(payment, percent) {
                return (Arc::clone(&canary.rules), true);
            }
        }
        (self.rule_set(), false)
    }

    /// The canary slot (for views).
    pub fn canary(&self) -> &CanarySlot {
        &self.canary
    }

    /// Starts the canary from a directory an operator named (under a shadow root), at
    /// `percent` or its policy's share.
    pub async fn start_canary_from(
        &self,
        dir: &str,
        percent: Option<u16>,
        actor: &str,
    ) -> Result<(), CanaryError> {
        let resolved = self
            .under_shadow_roots(dir)
            .map_err(CanaryError::NotAllowed)?;
        let percent = percent.map(checked_percent).transpose()?;
        self.start_canary(resolved, CanarySource::Api, percent, actor, false)
            .await
    }

    /// Loads `dir` as the canary (its vectors run; compiled code reused) with its
    /// `canary.toml`, and starts it, replacing any canary; recorded in the audit log unless
    /// it joins a canary the fleet runs already (`joining`).
    async fn start_canary(
        &self,
        dir: PathBuf,
        source: CanarySource,
        percent: Option<u8>,
        actor: &str,
        joining: bool,
    ) -> Result<(), CanaryError> {
        let loaded = self
            .load_candidate(&dir, None, "canary")
            .await
            .and_then(|set| {
                if set.version == self.rule_set().version {
                    return Err(format!(
                        "{}: it holds the live rule set {}: nothing to try",
                        dir.display(),
                        set.version
                    ));
                }
                Ok((set, canary_policy(&dir)?))
            });
        let (set, policy) = match loaded {
            Ok(loaded) => loaded,
            Err(error) => {
                tracing::warn!(dir = %dir.display(), by = actor, "canary refused: {error}");
                *lock(&self.canary.last_rejected) = Some(Rejected {
                    at_unix_ms: now_unix_ms(),
                    trigger: actor.to_owned(),
                    error: error.clone(),
                });
                return Err(CanaryError::DoesNotLoad(error));
            }
        };
        let percent = percent.unwrap_or(policy.percent);
        if !joining {
            let detail = serde_json::json!({
                "dir": dir.display().to_string(),
                "source": source,
                "percent": percent,
                "policy": policy,
                "by": actor,
                "host": self.host_id,
                "rules": listed(&set),
            });
            self.store
                .audit_event(CANARY_STARTED, &set.version, &detail)
                .await
                .map_err(ServiceError::from)?;
        }
        tracing::warn!(version = %set.version, percent, by = actor, joining, "canary started");
        if let Some(previous) = self.canary.running() {
            self.canary.end(Ended {
                outcome: "removed",
                at_unix_ms: now_unix_ms(),
                by: actor.to_owned(),
                why: format!("replaced by the canary {}", set.version),
            });
            tracing::info!(version = %previous.rules.version, "canary replaced");
        }
        let rules = Arc::new(set);
        self.keep_canary(&dir, &rules).await;
        self.canary.install(Canary {
            rules,
            dir,
            source,
            policy,
            percent: AtomicU8::new(percent),
            started_at_unix_ms: now_unix_ms(),
            stats: CanaryStats::default(),
        });
        Ok(())
    }

    /// Keeps the canary's set beside the store (not as a live one), so that what it decides
    /// can be reproduced by the same rules later; off the async threads.
    async fn keep_canary(&self, dir: &Path, set: &Arc<RuleSet>) {
        let (live, dir, set) = (Arc::clone(&self.rules), dir.to_owned(), Arc::clone(set));
        let kept = tokio::task::spawn_blocking(move || match live.kept() {
            Some(kept) => kept.store(&dir, &set, live.runtime()),
            None => Ok(()),
        })
        .await;
        if let Ok(Err(error)) | Err(error) = kept.map_err(|e| e.to_string()) {
            tracing::warn!(
                "the canary's rule set is not kept (its decisions cannot be reproduced): {error}"
            );
        }
    }

    /// Changes the canary's share of traffic (an operator's step), audited.
    pub async fn set_canary_percent(&self, percent: u16, actor: &str) -> Result<(), CanaryError> {
        let percent = checked_percent(percent)?;
        let canary = self.canary.running().ok_or(CanaryError::NoCanary)?;
        let detail = serde_json::json!({
            "from": canary.percent(),
            "percent": percent,
            "by": actor,
            "host": self.host_id,
        });
        self.store
            .audit_event(CANARY_PERCENT, &canary.rules.version, &detail)
            .await
            .map_err(ServiceError::from)?;
        canary.percent.store(percent, Ordering::Relaxed);
        tracing::warn!(version = %canary.rules.version, percent, by = actor, "canary share changed");
        Ok(())
    }

    /// Ends the canary running (if it is still `expected`, when given), recorded in the
    /// audit log with its figures.
    async fn end_canary(
        &self,
        expected: Option<&Arc<Canary>>,
        action: &str,
        outcome: &'static str,
        why: String,
        by: &str,
    ) -> Result<(), CanaryError> {
        let canary = self.canary.running().ok_or(CanaryError::NoCanary)?;
        if expected.is_some_and(|expected| !Arc::ptr_eq(expected, &canary)) {
            return Ok(());
        }
        let (live, candidate) = canary.stats.figures();
        let detail = serde_json::json!({
            "why": why,
            "by": by,
            "host": self.host_id,
            "percent": canary.percent(),
            "live": live,
            "canary": candidate,
        });
        self.store
            .audit_event(action, &canary.rules.version, &detail)
            .await
            .map_err(ServiceError::from)?;
        tracing::warn!(version = %canary.rules.version, outcome, by, %why, "canary ended");
        self.canary.end(Ended {
            outcome,
            at_unix_ms: now_unix_ms(),
            by: by.to_owned(),
            why,
        });
        Ok(())
    }

    /// Removes the canary (an operator's step): the live set decides every payment again.
    pub async fn remove_canary(&self, actor: &str) -> Result<(), CanaryError> {
        self.end_canary(
            None,
            CANARY_REMOVED,
            "removed",
            "removed by an operator".to_owned(),
            actor,
        )
        .await
    }

    /// Promotes the canary: writes its files into the rules directory (which must be
    /// writable: a read-only one is promoted by the deployment) and reloads it; the canary
    /// ends as promoted once its version is live.
    pub async fn promote_canary(&self, actor: &str) -> Result<ReloadOutcome, CanaryError> {
        let canary = self.canary.running().ok_or(CanaryError::NoCanary)?;
        let _one_at_a_time = self.reloading.lock().await;
        let (from, to) = (canary.dir.clone(), self.rules.dir().to_owned());
        tokio::task::spawn_blocking(move || replace_rules(&from, &to))
            .await
            .map_err(|e| ServiceError::internal(format!("the promotion failed: {e}")))?
            .map_err(|error| {
                CanaryError::ReadOnly(format!(
                    "the rules directory {} cannot be written ({error}): promote by deploying \
                     the canary's files ({}) as the rules directory; the canary ends as \
                     promoted when its version {} is live",
                    self.rules.dir().display(),
                    canary.dir.display(),
                    canary.rules.version
                ))
            })?;
        let outcome = self
            .reload_locked(&format!("canary promoted by {actor}"))
            .await;
        self.metrics.reload(&outcome);
        Ok(outcome)
    }

    /// Ends the canary as promoted if the live set is now its version (after any swap:
    /// by a promotion, or by a deployment that made its content the rules directory).
    pub(super) async fn canary_promoted_if_live(&self, trigger: &str) {
        let Some(canary) = self.canary.running() else {
            return;
        };
        if canary.rules.version != self.rule_set().version {
            return;
        }
        let why = "its version is live".to_owned();
        if let Err(error) = self
            .end_canary(Some(&canary), CANARY_PROMOTED, "promoted", why, trigger)
            .await
        {
            tracing::error!("the canary's promotion was not recorded: {error}");
        }
    }

    /// Holds the canary's figures against its abort policy every
    /// [`CANARY_JUDGE_INTERVAL`] (a tokio task: call it on the runtime that serves).
    pub fn judge_canaries(self: &Arc<Self>) {
        let service = Arc::clone(self);
        tokio::spawn(async move {
            let mut every = tokio::time::interval(CANARY_JUDGE_INTERVAL);
            loop {
                every.tick().await;
                let Some(canary) = service.canary.running() else {
                    continue;
                };
                let (live, candidate) = canary.stats.figures();
                let Some(why) = canary.policy.abort.breached(&live, &candidate) else {
                    continue;
                };
                if let Err(error) = service
                    .end_canary(Some(&canary), CANARY_ABORTED, "aborted", why, "payrules")
                    .await
                {
                    tracing::error!("the canary's abort was not recorded: {error}");
                }
            }
        });
    }

    /// Makes the canary follow the rules directory's `canary/`: starts what it holds when
    /// that changes (unless it is the live set: promoted), and removes a canary it started
    /// when it is gone. A canary an operator started stays until `canary/` changes; one
    /// that ended stays ended until `canary/` changes. Called at start and after every
    /// reload.
    pub async fn follow_canary_directory(&self, trigger: &str) {
        let dir = self.rules.dir().join(CANARY_SUBDIR);
        let running = self.canary.running();
        if !holds_rules(&dir) {
            self.canary.directory_seen(DirectoryState::Empty);
            if let Some(canary) = running.filter(|c| c.source == CanarySource::Directory) {
                let _ = self
                    .end_canary(
                        Some(&canary),
                        CANARY_REMOVED,
                        "removed",
                        format!("{} no longer holds rules", dir.display()),
                        trigger,
                    )
                    .await;
            }
            return;
        }
        let reuse = running.map(|c| Arc::clone(&c.rules));
        match self.load_candidate(&dir, reuse, "canary").await {
            Ok(set) => {
                let changed = self
                    .canary
                    .directory_seen(DirectoryState::Loads(set.version.clone()));
                if !changed || set.version == self.rule_set().version {
                    return;
                }
                // What the fleet did with this version comes first: a canary it ended stays
                // ended (a restart does not bring it back), one it runs is joined.
                let joined = match self.fleet_canary().await {
                    Some(entry) if entry.subject == set.version => {
                        if ENDINGS.contains(&entry.action.as_str()) {
                            tracing::info!(version = %set.version, "the canary in {} ended before: it stays ended", dir.display());
                            return;
                        }
                        Some(percent_of(&entry))
                    }
                    _ => None,
                };
                let _ = self
                    .start_canary(
                        dir,
                        CanarySource::Directory,
                        joined.flatten(),
                        trigger,
                        joined.is_some(),
                    )
                    .await;
            }
            Err(error) => {
                if self
                    .canary
                    .directory_seen(DirectoryState::Refused(error.clone()))
                {
                    tracing::warn!(trigger, "canary candidate refused: {error}");
                    *lock(&self.canary.last_rejected) = Some(Rejected {
                        at_unix_ms: now_unix_ms(),
                        trigger: trigger.to_owned(),
                        error,
                    });
                }
            }
        }
    }

    /// The fleet's newest canary entry: the state of the canary every host follows.
    async fn fleet_canary(&self) -> Option<AuditEntry> {
        match self.store.audit_entries_of(&CANARY_ACTIONS, 1).await {
            Ok(mut entries) => entries.pop(),
            Err(error) => {
                tracing::warn!("cannot read the fleet's canary: {error}");
                None
            }
        }
    }

    /// Follows, from now on, the canary steps the other hosts sharing the store record
    /// (a tokio task: call it on the runtime that serves): a canary started elsewhere is
    /// started here from this host's own copy, and its share, abort, removal and promotion
    /// apply here, within [`CANARY_JUDGE_INTERVAL`]. Nothing to do on a store no other
    /// host writes.
    pub fn follow_fleet_canary(self: &Arc<Self>) {
        if !self.store.shared() {
            return;
        }
        let service = Arc::clone(self);
        tokio::spawn(async move {
            let mut every = tokio::time::interval(CANARY_JUDGE_INTERVAL);
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                every.tick().await;
                let Some(entry) = service.fleet_canary().await else {
                    continue;
                };
                if service
                    .canary_followed
                    .fetch_max(entry.seq, Ordering::SeqCst)
                    >= entry.seq
                {
                    continue;
                }
                service.follow_canary_entry(&entry).await;
            }
        });
    }

    /// Applies a canary step another host recorded (this host's own steps find it done).
    async fn follow_canary_entry(&self, entry: &AuditEntry) {
        let running = self.canary.running();
        let here = running
            .as_ref()
            .filter(|c| c.rules.version == entry.subject);
        let by = format!("the fleet (audit entry {})", entry.seq);
        let detail: serde_json::Value = serde_json::from_str(&entry.detail).unwrap_or_default();
        match (entry.action.as_str(), here) {
            (CANARY_STARTED | CANARY_PERCENT, Some(canary)) => {
                if let Some(percent) = percent_of(entry) {
                    canary.percent.store(percent, Ordering::Relaxed);
                }
            }
            (CANARY_STARTED, None) => {
                let (source, dir) = match detail["source"].as_str() {
                    Some("directory") => (
                        CanarySource::Directory,
                        Ok(self.rules.dir().join(CANARY_SUBDIR)),
                    ),
                    _ => (
                        CanarySource::Api,
                        self.under_shadow_roots(detail["dir"].as_str().unwrap_or_default()),
                    ),
                };
                let started = match dir {
                    Ok(dir) => self
                        .start_canary(dir, source, percent_of(entry), &by, true)
                        .await
                        .map_err(|e| e.to_string()),
                    Err(error) => Err(error),
                };
                let running = self.canary.running();
                let wrong = running.filter(|c| c.rules.version != entry.subject);
                if let Err(error) = started.and_then(|()| match wrong {
                    Some(c) => Err(format!("this host's copy is {}", c.rules.version)),
                    None => Ok(()),
                }) {
                    tracing::warn!(version = %entry.subject, "cannot follow the fleet's canary: {error}");
                    if let Some(c) = self.canary.running() {
                        self.canary.end(Ended {
                            outcome: "removed",
                            at_unix_ms: now_unix_ms(),
                            by: by.clone(),
                            why: format!("not the fleet's canary {}", entry.subject),
                        });
                        tracing::info!(version = %c.rules.version, "canary removed");
                    }
                    *lock(&self.canary.last_rejected) = Some(Rejected {
                        at_unix_ms: now_unix_ms(),
                        trigger: by,
                        error: format!(
                            "the fleet's canary {} cannot run here: {error}",
                            entry.subject
                        ),
                    });
                }
            }
            (action, Some(_)) if ENDINGS.contains(&action) => {
                self.canary.end(Ended {
                    outcome: match action {
                        CANARY_ABORTED => "aborted",
                        CANARY_PROMOTED => "promoted",
                        _ => "removed",
                    },
                    at_unix_ms: now_unix_ms(),
                    by,
                    why: detail["why"].as_str().unwrap_or_default().to_owned(),
                });
                tracing::warn!(version = %entry.subject, action, "canary ended with the fleet");
            }
            _ => {}
        }
    }

    /// The live set's figures and the canary's, of the canary running or else the last
    /// one that ended.
    pub fn canary_figures(&self) -> Option<(Arc<Canary>, Option<Ended>, ArmFigures, ArmFigures)> {
        let (canary, ended) = match self.canary.running() {
            Some(canary) => (canary, None),
            None => {
                let (canary, ended) = self.canary.last_ended()?;
                (canary, Some(ended))
            }
        };
        let (live, candidate) = canary.stats.figures();
        Some((canary, ended, live, candidate))
    }
}

/// Every canary step, as the audit log names them.
const CANARY_ACTIONS: [&str; 5] = [
    CANARY_STARTED,
    CANARY_PERCENT,
    CANARY_ABORTED,
    CANARY_REMOVED,
    CANARY_PROMOTED,
];
/// The steps that end a canary.
const ENDINGS: [&str; 3] = [CANARY_ABORTED, CANARY_REMOVED, CANARY_PROMOTED];

/// The share a canary step records.
fn percent_of(entry: &AuditEntry) -> Option<u8> {
    let detail: serde_json::Value = serde_json::from_str(&entry.detail).ok()?;
    u8::try_from(detail["percent"].as_u64()?).ok()
}

/// `percent` if it is a share of traffic.
fn checked_percent(percent: u16) -> Result<u8, CanaryError> {
    u8::try_from(percent)
        .ok()
        .filter(|p| *p <= 100)
        .ok_or(CanaryError::BadPercent(percent))
}

/// The canary policy of `dir` (its `canary.toml`; defaults without one).
fn canary_policy(dir: &Path) -> Result<CanaryPolicy, String> {
    let path = dir.join(CANARY_FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) => CanaryPolicy::parse(&text).map_err(|e| format!("{}: {e}", path.display())),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(CanaryPolicy::default()),
        Err(error) => Err(format!("{}: {error}", path.display())),
    }
}

/// Makes the rules directory `to` hold the rule set of `from`: every file of `from` but its
/// `canary.toml` written (aside, then renamed; subdirectories such as `lists/` likewise),
/// then every other file of `to` removed. `to`'s other subdirectories (`shadow/`,
/// `canary/`) are left as they are. Nothing is written if `to` cannot be written.
fn replace_rules(from: &Path, to: &Path) -> std::io::Result<()> {
    let probe = to.join(".payrules-promoting");
    std::fs::write(&probe, b"")?;
    std::fs::remove_file(&probe)?;
    replace_files(from, to)
}

fn replace_files(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    let mut written = Vec::new();
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let name = entry.file_name();
        if name == CANARY_FILE || name.to_string_lossy().starts_with('.') {
            continue;
        }
        let source = entry.path().canonicalize()?;
        let kind = std::fs::metadata(&source)?;
        if kind.is_dir() {
            replace_files(&source, &to.join(&name))?;
        } else if kind.is_file() {
            let staging = to.join(format!(".{}.promoting", name.to_string_lossy()));
            std::fs::copy(&source, &staging)?;
            std::fs::rename(&staging, to.join(&name))?;
            written.push(name);
        }
    }
    for entry in std::fs::read_dir(to)? {
        let entry = entry?;
        let name = entry.file_name();
        let is_file = entry
            .file_type()
            .is_ok_and(|t| t.is_file() || t.is_symlink());
        if is_file && !name.to_string_lossy().starts_with('.') && !written.contains(&name) {
            std::fs::remove_file(entry.path())?;
        }
    }
    Ok(())
}
