//! Operating the rules: reloading the live set (every trigger — the directory watcher, an
//! operator — goes through [`Service::reload`]), and the shadow set: installed by an
//! operator or by a `shadow/` subdirectory of the rules directory, removed, and compared
//! with the live decisions. Each change is logged, counted and recorded in the audit log,
//! which is the rule sets' history.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::{Service, ServiceError};
use crate::compare::Comparison;
use crate::pipeline::shadow::{DirectoryState, Installed, ShadowSource};
use crate::registry::RuleSet;
use crate::registry::live::{Prepared, Rejected, ReloadOutcome, Source};
use crate::store::now_unix_ms;

/// The audit action of a rule set going live.
pub const LOADED: &str = "rules.loaded";
/// The audit action of a candidate refused.
pub const REJECTED: &str = "rules.rejected";

/// The audit action of a rule's circuit opening (from closed: the rule stops running).
pub const CIRCUIT_OPENED: &str = "rule.circuit_opened";
/// The audit action of a rule's circuit closing (a probe passed: the rule runs again).
pub const CIRCUIT_CLOSED: &str = "rule.circuit_closed";
/// The audit action of a warm rule's answer contradicted by a fresh instance (the rule
/// version goes back to fresh instances).
pub const WARM_MISMATCH: &str = "rule.warm_mismatch";

/// The subdirectory of the rules directory whose rules run as the shadow set.
pub const SHADOW_SUBDIR: &str = "shadow";
/// The longest directory name an operator may give for a shadow set (Linux's PATH_MAX).
pub const SHADOW_DIR_BYTES_MAX: usize = 4096;
/// The longest error text kept (in answers and the audit log) for a refused candidate.
pub const ERROR_TEXT_BYTES_MAX: usize = 2048;

/// Why a shadow set an operator named was not installed.
#[derive(Debug, thiserror::Error)]
pub enum ShadowError {
    /// The directory is not under a configured shadow root (or does not exist).
    #[error("{0}")]
    NotAllowed(String),
    /// It does not load (the shadow set is unchanged).
    #[error("{0}")]
    DoesNotLoad(String),
}

/// `text` cut to [`ERROR_TEXT_BYTES_MAX`] bytes (at a character boundary).
fn bounded(text: &str) -> String {
    if text.len() <= ERROR_TEXT_BYTES_MAX {
        return text.to_owned();
    }
    let mut end = ERROR_TEXT_BYTES_MAX;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

/// The audit action of a shadow set installed.
pub const SHADOW_INSTALLED: &str = "rules.shadow_installed";
/// The audit action of a shadow set removed.
pub const SHADOW_REMOVED: &str = "rules.shadow_removed";
/// The audit action of a candidate refused as the shadow set.
pub const SHADOW_REJECTED: &str = "rules.shadow_rejected";

impl Service {
    /// Records the rules' circuit transitions as they come: each in the log and the
    /// metrics; a circuit opened from closed (the rule stops running) and one closed (it
    /// runs again) in the audit log too. A failed probe that opens it again is logged and
    /// counted, not audited (it repeats every cool-down while the rule stays broken). A
    /// tokio task; call it on the runtime that serves.
    pub fn record_circuit_transitions(self: &Arc<Self>) {
        let taken = self
            .circuit_transitions
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        let Some(mut transitions) = taken else {
            return;
        };
        let service = Arc::clone(self);
        tokio::spawn(async move {
            while let Some(change) = transitions.recv().await {
                service.circuit_changed(&change).await;
            }
        });
    }

    /// Records warm answers that a fresh instance contradicted as they come: the metrics and
    /// the audit log (the pipeline has logged each). A tokio task; call it on the runtime
    /// that serves.
    pub fn record_warm_mismatches(self: &Arc<Self>) {
        let taken = self
            .warm_mismatches
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        let Some(mut mismatches) = taken else {
            return;
        };
        let service = Arc::clone(self);
        tokio::spawn(async move {
            while let Some(mismatch) = mismatches.recv().await {
                service.metrics.warm_mismatch(&mismatch.rule);
                let detail = serde_json::json!({
                    "rule_version": mismatch.version,
                    "rule_set_version": mismatch.rule_set_version,
                    "payment_id": mismatch.payment_id,
                    "warm": mismatch.warm,
                    "fresh": mismatch.fresh,
                    "at_unix_ms": mismatch.at_unix_ms,
                    "host": service.host_id,
                });
                if let Err(error) = service
                    .store
                    .audit_event(WARM_MISMATCH, &mismatch.rule, &detail)
                    .await
                {
                    tracing::error!(rule = %mismatch.rule, "the warm mismatch was not audited: {error}");
                }
            }
        });
    }

    async fn circuit_changed(&self, change: &crate::pipeline::RuleTransition) {
        use crate::registry::breaker::CircuitState;
        let transition = &change.transition;
        self.metrics.circuit_transition(&change.rule, transition.to);
        let action = match (transition.from, transition.to) {
            (CircuitState::Closed, CircuitState::Open) => {
                tracing::error!(
                    rule = %change.rule,
                    failures = transition.failures,
                    runs = transition.runs,
                    "rule circuit opened: the rule is not run, its failure policy applies"
                );
                Some(CIRCUIT_OPENED)
            }
            (_, CircuitState::Closed) => {
                tracing::warn!(rule = %change.rule, "rule circuit closed: a probe passed");
                Some(CIRCUIT_CLOSED)
            }
            (from, to) => {
                tracing::info!(
                    rule = %change.rule,
                    from = from.name(),
                    to = to.name(),
                    "rule circuit changed"
                );
                None
            }
        };
        let Some(action) = action else { return };
        let policy = self.breaker_policy();
        let detail = serde_json::json!({
            "rule_version": change.version,
            "rule_set_version": change.rule_set_version,
            "failures": transition.failures,
            "runs": transition.runs,
            "at_unix_ms": change.at_unix_ms,
            "window_ms": policy.map(|p| p.window.as_millis()),
            "cool_down_ms": policy.map(|p| p.cool_down.as_millis()),
        });
        if let Err(error) = self.store.audit_event(action, &change.rule, &detail).await {
            tracing::error!(rule = %change.rule, "the circuit transition was not audited: {error}");
        }
    }

    /// Records the rule set the service started with in the audit log (the history's
    /// first line), makes live the rollback in force over it if there is one, then starts
    /// following the rules directory's `shadow/`.
    pub async fn announce_start(&self, trigger: &str) -> Result<(), ServiceError> {
        let rules = self.rule_set();
        self.store
            .audit_event(
                LOADED,
                &rules.version,
                &serde_json::json!({
                    "trigger": trigger,
                    "rules_dir": self.rules.dir().display().to_string(),
                    "rules": listed(&rules),
                    "host": self.host_id,
                }),
            )
            .await?;
        self.follow_rollback(trigger).await;
        self.follow_shadow_directory(trigger).await;
        self.follow_canary_directory(trigger).await;
        Ok(())
    }

    /// Reloads the rules directory off the request path and records the outcome: the log,
    /// the metrics, and the audit log (which is the rule-set history). Every trigger calls
    /// this. The reload runs in a task of its own, so a caller that goes away (a request
    /// that times out, a client that disconnects) cannot stop it half way: a new set goes
    /// live only once its audit entry is durable, and not at all if it cannot be written.
    pub async fn reload(self: &Arc<Self>, trigger: &str) -> ReloadOutcome {
        let service = Arc::clone(self);
        let who = trigger.to_owned();
        let whole = tokio::spawn(async move { service.reload_recorded(&who).await });
        match whole.await {
            Ok(outcome) => outcome,
            Err(error) => ReloadOutcome::Rejected(Rejected {
                at_unix_ms: now_unix_ms(),
                trigger: trigger.to_owned(),
                error: format!("the reload failed: {error}"),
            }),
        }
    }

    /// Loads a candidate, records its fate, and swaps it in only once recorded; one
    /// reload at a time, so the history's order is the swaps' order.
    async fn reload_recorded(&self, trigger: &str) -> ReloadOutcome {
        let _one_at_a_time = self.reloading.lock().await;
        self.reload_locked(trigger).await
    }

    /// [`Service::reload`]'s work, the reload lock held by the caller.
    pub(super) async fn reload_locked(&self, trigger: &str) -> ReloadOutcome {
        let live = Arc::clone(&self.rules);
        let who = trigger.to_owned();
        let prepared = tokio::task::spawn_blocking(move || live.prepare(&who, now_unix_ms())).await;
        let outcome = match prepared {
            Ok(Prepared::Unchanged { version }) => {
                tracing::debug!(trigger, version = %version, "rules directory unchanged");
                ReloadOutcome::Unchanged { version }
            }
            Ok(Prepared::Candidate {
                from,
                load_ms,
                set,
                source,
            }) => self.go_live(trigger, from, load_ms, set, source).await,
            Ok(Prepared::Rejected(rejected)) => self.refused(trigger, rejected).await,
            Err(error) => {
                let rejected = self.rules.refuse(Rejected {
                    at_unix_ms: now_unix_ms(),
                    trigger: trigger.to_owned(),
                    error: format!("loading the rules directory failed: {error}"),
                });
                self.refused(trigger, rejected).await
            }
        };
        self.metrics.reload(&outcome);
        self.follow_shadow_directory(trigger).await;
        self.follow_canary_directory(trigger).await;
        outcome
    }

    /// Records `set` going live, then swaps it in; if the record cannot be written, the
    /// live set stays and the candidate is refused.
    async fn go_live(
        &self,
        trigger: &str,
        from: String,
        load_ms: u64,
        set: RuleSet,
        source: Source,
    ) -> ReloadOutcome {
        let to = set.version.clone();
        let rules: Vec<(String, String)> = set
            .rules()
            .iter()
            .map(|rule| (rule.manifest.name.clone(), rule.version.clone()))
            .collect();
        let detail = serde_json::json!({
            "trigger": trigger,
            "previous_version": from,
            "load_ms": load_ms,
            "rules_dir": self.rules.dir().display().to_string(),
            "rules": listed(&set),
            "host": self.host_id,
            "rollback_over_directory_version": match &source {
                Source::Kept(held) => Some(&held.over),
                Source::Directory => None,
            },
        });
        if let Err(error) = self.store.audit_event(LOADED, &to, &detail).await {
            tracing::error!(trigger, to = %to, "cannot record the new rule set in the audit log, so it does not go live: {error}");
            let rejected = self.rules.refuse(Rejected {
                at_unix_ms: now_unix_ms(),
                trigger: trigger.to_owned(),
                error: format!("the audit log could not record it, so it did not go live: {error}"),
            });
            return ReloadOutcome::Rejected(rejected);
        }
        self.swap(set, source).await;
        tracing::info!(trigger, from = %from, to = %to, load_ms, "new rule set live");
        ReloadOutcome::Swapped {
            from,
            to,
            load_ms,
            rules,
        }
    }

    /// Makes `set` live (off the async threads: keeping a copy reads and writes files).
    pub(super) async fn swap(&self, set: RuleSet, source: Source) {
        let live = Arc::clone(&self.rules);
        let swapped =
            tokio::task::spawn_blocking(move || live.make_live(set, source, now_unix_ms())).await;
        if let Err(error) = swapped {
            tracing::error!("the swap task failed: {error}");
        }
        self.metrics.rule_set(&self.rule_set().version);
        self.canary_promoted_if_live("the rules directory").await;
    }

    /// Records a refused candidate (the live set is unchanged).
    pub(super) async fn refused(&self, trigger: &str, rejected: Rejected) -> ReloadOutcome {
        tracing::warn!(trigger, error = %rejected.error, "rule set candidate rejected; the live set is unchanged");
        let detail = serde_json::json!({ "trigger": trigger, "error": rejected.error });
        if let Err(error) = self
            .store
            .audit_event(REJECTED, &self.rule_set().version, &detail)
            .await
        {
            tracing::error!("cannot record the refused rule set in the audit log: {error}");
        }
        ReloadOutcome::Rejected(rejected)
    }

    /// Loads `dir` (reusing the compiled code of the live set and of `reuse`) as the live
    /// loader would, off the async threads: a candidate `what` set (`shadow`, `canary`),
    /// which must hold rules.
    pub(super) async fn load_candidate(
        &self,
        dir: &Path,
        reuse: Option<Arc<RuleSet>>,
        what: &str,
    ) -> Result<RuleSet, String> {
        let live = Arc::clone(&self.rules);
        let load_dir = dir.to_owned();
        let set =
            tokio::task::spawn_blocking(move || live.load_beside(&load_dir, reuse.as_deref()))
                .await
                .map_err(|e| format!("loading failed: {e}"))?
                .map_err(|e| bounded(&e.to_string()))?;
        if set.rules().is_empty() {
            return Err(format!(
                "{}: no rules in the directory: an empty {what} set is refused",
                dir.display()
            ));
        }
        Ok(set)
    }

    /// Installs the rules directory an operator named as the shadow set: only a directory
    /// under one of the configured shadow roots (after resolving symlinks), so the API
    /// cannot be made to read other paths of the host.
    pub async fn install_shadow_from(&self, dir: &str, actor: &str) -> Result<(), ShadowError> {
        let resolved = self
            .under_shadow_roots(dir)
            .map_err(ShadowError::NotAllowed)?;
        self.install_shadow(resolved, ShadowSource::Api, actor)
            .await
            .map_err(ShadowError::DoesNotLoad)
    }

    /// `dir` resolved (symlinks followed), if it is a directory under one of the
    /// configured shadow roots, where operators may name candidate rule sets (a shadow
    /// set, a canary); else why not, saying the same of a path that does not exist.
    pub(super) fn under_shadow_roots(&self, dir: &str) -> Result<PathBuf, String> {
        let not_allowed = || {
            format!(
                "{:?} is not a directory under a configured shadow root (shadow_roots)",
                dir.chars().take(256).collect::<String>()
            )
        };
        if dir.is_empty() || dir.len() > SHADOW_DIR_BYTES_MAX || dir.contains('\0') {
            return Err(not_allowed());
        }
        let resolved = Path::new(dir).canonicalize().map_err(|_| not_allowed())?;
        let allowed = resolved.is_dir()
            && self
                .shadow_roots
                .iter()
                .any(|root| resolved.starts_with(root));
        if !allowed {
            return Err(not_allowed());
        }
        Ok(resolved)
    }

    /// Loads `dir` (reusing the live set's compiled code) and installs it as the shadow set,
    /// recording it in the audit log; a refusal is recorded too.
    pub async fn install_shadow(
        &self,
        dir: PathBuf,
        source: ShadowSource,
        actor: &str,
    ) -> Result<(), String> {
        match self.load_candidate(&dir, None, "shadow").await {
            Ok(loaded) => {
                self.install_shadow_set(loaded, dir, source, actor).await;
                Ok(())
            }
            Err(error) => {
                self.shadow_refused(&dir, actor, &error).await;
                Err(error)
            }
        }
    }

    /// Records a candidate refused as the shadow set (which stays as it was): the log, the
    /// audit log, and `last_rejected` in the rule set's view.
    async fn shadow_refused(&self, dir: &Path, trigger: &str, error: &str) {
        tracing::warn!(trigger, dir = %dir.display(), error, "shadow rule set candidate rejected; the shadow set is unchanged");
        self.shadow.rejected(Rejected {
            at_unix_ms: now_unix_ms(),
            trigger: trigger.to_owned(),
            error: error.to_owned(),
        });
        let detail = serde_json::json!({
            "dir": dir.display().to_string(),
            "trigger": trigger,
            "error": error,
        });
        let version = self.rule_set().version.clone();
        if let Err(error) = self
            .store
            .audit_event(SHADOW_REJECTED, &version, &detail)
            .await
        {
            tracing::error!("cannot record the refused shadow set in the audit log: {error}");
        }
    }

    /// Installs a loaded set as the shadow set, recording it in the audit log.
    async fn install_shadow_set(
        &self,
        loaded: RuleSet,
        dir: PathBuf,
        source: ShadowSource,
        actor: &str,
    ) {
        let rules = Arc::new(loaded);
        let version = rules.version.clone();
        self.shadow.install(Installed {
            rules,
            dir: dir.clone(),
            source,
            installed_at_unix_ms: now_unix_ms(),
        });
        tracing::info!(version = %version, dir = %dir.display(), by = actor, "shadow rule set installed");
        let detail = serde_json::json!({ "dir": dir.display().to_string(), "by": actor });
        if let Err(error) = self
            .store
            .audit_event(SHADOW_INSTALLED, &version, &detail)
            .await
        {
            tracing::error!("cannot record the shadow set in the audit log: {error}");
        }
    }

    /// Removes the shadow set, if any, recording it in the audit log; returns its version.
    pub async fn remove_shadow(&self, actor: &str) -> Option<String> {
        let removed = self.shadow.remove()?;
        let version = removed.rules.version.clone();
        tracing::info!(version = %version, by = actor, "shadow rule set removed");
        let detail = serde_json::json!({ "by": actor });
        if let Err(error) = self
            .store
            .audit_event(SHADOW_REMOVED, &version, &detail)
            .await
        {
            tracing::error!("cannot record the shadow set's removal in the audit log: {error}");
        }
        Some(version)
    }

    /// Makes the shadow set follow the rules directory's `shadow/`: installs what it holds
    /// when that changes, records it as refused when it changes to rules that do not load
    /// (the shadow set stays as it was), and removes a shadow set it installed when it is
    /// gone. A shadow set installed by an operator stays until `shadow/` changes. Called at
    /// start and after every reload.
    pub async fn follow_shadow_directory(&self, trigger: &str) {
        let dir = self.rules.dir().join(SHADOW_SUBDIR);
        let installed = self.shadow.installed();
        if !holds_rules(&dir) {
            self.shadow.directory_seen(DirectoryState::Empty);
            if installed.is_some_and(|i| i.source == ShadowSource::Directory) {
                self.remove_shadow(trigger).await;
            }
            return;
        }
        // Compare by content: load it, reusing the shadow set's compiled code (or the live
        // set's), so an unchanged shadow/ costs no compile.
        match self
            .load_candidate(&dir, installed.map(|i| i.rules), "shadow")
            .await
        {
            Ok(set) => {
                if self
                    .shadow
                    .directory_seen(DirectoryState::Loads(set.version.clone()))
                {
                    self.install_shadow_set(set, dir, ShadowSource::Directory, trigger)
                        .await;
                }
            }
            Err(error) => {
                if self
                    .shadow
                    .directory_seen(DirectoryState::Refused(error.clone()))
                {
                    self.shadow_refused(&dir, trigger, &error).await;
                }
            }
        }
    }

    /// The decisions of the shadow set `version` beside the live ones (the same report as
    /// `payrules backtest`), read off the async threads.
    pub async fn shadow_report(&self, version: String) -> Result<Comparison, ServiceError> {
        let store = Arc::clone(&self.store);
        tokio::task::spawn_blocking(move || {
            let mut comparison = Comparison::new(&version);
            store
                .for_each_shadowed(&version, &mut |live, shadow| comparison.add(&live, &shadow))
                .map(|()| comparison)
        })
        .await
        .map_err(|e| ServiceError::internal(format!("the report failed: {e}")))?
        .map_err(ServiceError::from)
    }
}

/// The rules of `set` as an audit entry lists them: name and component sha256 of each.
pub(super) fn listed(set: &RuleSet) -> Vec<serde_json::Value> {
    set.rules()
        .iter()
        .map(|rule| serde_json::json!({ "name": rule.manifest.name, "version": rule.version }))
        .collect()
}

pub(super) fn holds_rules(dir: &Path) -> bool {
    std::fs::read_dir(dir).is_ok_and(|entries| {
        entries
            .filter_map(Result::ok)
            .any(|entry| crate::registry::is_manifest_name(&entry.file_name().to_string_lossy()))
    })
}
