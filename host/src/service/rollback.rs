//! Rollback: an operator makes a rule set that went live before live again at once, from
//! the copy kept by version beside the store ([`KeptSets`]) with its compiled code from
//! the code cache, so nothing compiles on the way back.
//!
//! The rollback is an audit entry ([`ROLLED_BACK`]: the version made live, and the
//! version of the rules directory it was made over), and the newest such entry (or its
//! release, [`ROLLBACK_RELEASED`]) is the fleet's state. It is in force on every host whose
//! rules directory holds the version it was made over: there a reload finds the directory
//! unchanged and a restart starts with the set rolled back to. A directory changed to any
//! other version goes live as usual (the fix deployed); changed back, the rollback is in
//! force again, until an operator releases it. Every host reads the newest entry at start
//! and, when other hosts share the store, every [`ROLLBACK_FOLLOW_INTERVAL`], and makes the
//! set live from its own kept copy where it is in force, recording it in the audit log.
//!
//! [`KeptSets`]: crate::registry::kept::KeptSets

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::rules::{LOADED, listed};
use super::{Service, ServiceError};
use crate::registry::kept::{KEPT_SETS_MAX, is_version};
use crate::registry::live::{Held, ReloadOutcome, Source};
use crate::registry::{LoadError, RuleSet};
use crate::store::StoreError;
use crate::store::audit::AuditEntry;

/// The audit action of a rollback: its subject the version made live again.
pub const ROLLED_BACK: &str = "rules.rolled_back";
/// The audit action of a rollback released by an operator.
pub const ROLLBACK_RELEASED: &str = "rules.rollback_released";
/// How often a host sharing its store looks for a rollback another host recorded.
pub const ROLLBACK_FOLLOW_INTERVAL: Duration = Duration::from_secs(1);
/// How many entries of the history are searched for the version before the live one.
const HISTORY_SEARCHED: u32 = 500;

/// Why a rollback was not made.
#[derive(Debug, thiserror::Error)]
pub enum RollbackError {
    /// The version asked for is not of a version's form.
    #[error("{0:?} is not a rule-set version (64 lower-case hex digits)")]
    NotAVersion(String),
    /// No version was asked for, and the history holds none before the live one.
    #[error("the history holds no rule set before the live one")]
    NoEarlier,
    /// The version asked for is the live one.
    #[error("the rule set {0} is live already")]
    AlreadyLive(String),
    /// The version is not kept on this host.
    #[error(
        "the rule set {0} is not kept on this host (the {KEPT_SETS_MAX} sets most recently live or started as a canary are)"
    )]
    NotKept(String),
    /// The kept copy does not load (its vectors fail, it was altered, ...).
    #[error("{0}")]
    DoesNotLoad(String),
    /// A release was asked for, and there is no rollback to release.
    #[error("no rollback is in force")]
    NotHeld,
    /// The store could not record it (nothing changed).
    #[error(transparent)]
    Service(#[from] ServiceError),
}

/// A rollback made.
#[derive(Debug)]
pub struct RolledBack {
    /// The version it replaced.
    pub from: String,
    /// The version made live again.
    pub to: String,
    /// The rules directory's version it holds over.
    pub over: String,
    /// How long loading the kept copy took, ms.
    pub load_ms: u64,
    /// Components compiled to load it (0 when the code cache held them all).
    pub compiled: u64,
}

impl Service {
    /// Makes the kept rule set `to` live again (by default the version live before the
    /// live one, from the history), recorded in the audit log first. A task of its own, so
    /// a caller that goes away cannot stop it half way.
    pub async fn rollback(
        self: &Arc<Self>,
        to: Option<String>,
        actor: &str,
    ) -> Result<RolledBack, RollbackError> {
        let service = Arc::clone(self);
        let actor = actor.to_owned();
        tokio::spawn(async move { service.rollback_recorded(to, &actor).await })
            .await
            .map_err(|e| ServiceError::internal(format!("the rollback failed: {e}")))?
    }

    async fn rollback_recorded(
        &self,
        to: Option<String>,
        actor: &str,
    ) -> Result<RolledBack, RollbackError> {
        let _one_at_a_time = self.reloading.lock().await;
        let live = self.rule_set();
        let to = match to {
            Some(version) if !is_version(&version) => {
                return Err(RollbackError::NotAVersion(
                    version.chars().take(80).collect(),
                ));
            }
            Some(version) => version,
            None => self.earlier_version(&live.version).await?,
        };
        if to == live.version {
            return Err(RollbackError::AlreadyLive(to));
        }
        if self
            .rules
            .kept()
            .and_then(|kept| kept.path_of(&to))
            .is_none()
        {
            return Err(RollbackError::NotKept(to));
        }
        let over = self
            .rules
            .directory_version()
            .unwrap_or_else(|| live.version.clone());
        let (set, load_ms, compiled) = self
            .load_kept(&to)
            .await
            .map_err(|e| RollbackError::DoesNotLoad(e.to_string()))?;
        let detail = serde_json::json!({
            "previous_version": live.version,
            "over_directory_version": over,
            "by": actor,
            "host": self.host_id,
            "load_ms": load_ms,
            "compiled": compiled,
            "rules": listed(&set),
        });
        self.store
            .audit_event(ROLLED_BACK, &to, &detail)
            .await
            .map_err(ServiceError::from)?;
        let held = Held {
            version: to.clone(),
            over: over.clone(),
        };
        self.swap(set, Source::Kept(held)).await;
        tracing::warn!(from = %live.version, to = %to, by = actor, load_ms, compiled, "rolled back");
        Ok(RolledBack {
            from: live.version.clone(),
            to,
            over,
            load_ms,
            compiled,
        })
    }

    /// Ends the rollback (recorded first, so every host following it ends it too), and
    /// makes the rules directory's version live again.
    pub async fn release_rollback(&self, actor: &str) -> Result<ReloadOutcome, RollbackError> {
        let _one_at_a_time = self.reloading.lock().await;
        let held = self.rules.rollback().ok_or(RollbackError::NotHeld)?;
        let detail = serde_json::json!({
            "over_directory_version": held.over,
            "by": actor,
            "host": self.host_id,
        });
        self.store
            .audit_event(ROLLBACK_RELEASED, &held.version, &detail)
            .await
            .map_err(ServiceError::from)?;
        self.rules.release();
        let outcome = self
            .reload_locked(&format!("rollback released by {actor}"))
            .await;
        self.metrics.reload(&outcome);
        Ok(outcome)
    }

    /// The version that went live before `live`, the newest first in the history.
    async fn earlier_version(&self, live: &str) -> Result<String, RollbackError> {
        let history = self
            .store
            .audit_entries_of(&[LOADED, ROLLED_BACK], HISTORY_SEARCHED)
            .await
            .map_err(ServiceError::from)?;
        history
            .into_iter()
            .map(|entry| entry.subject)
            .find(|version| version != live)
            .ok_or(RollbackError::NoEarlier)
    }

    /// Loads the kept set `version` off the async threads; with the time it took and the
    /// number of components compiled meanwhile.
    async fn load_kept(&self, version: &str) -> Result<(RuleSet, u64, u64), LoadError> {
        let live = Arc::clone(&self.rules);
        let version = version.to_owned();
        let dir = self.rules.dir().to_owned();
        tokio::task::spawn_blocking(move || {
            let started = Instant::now();
            let compiled_before = live.runtime().compiled_total();
            let set = live.load_kept(&version)?;
            let load_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
            let compiled = live.runtime().compiled_total() - compiled_before;
            Ok((set, load_ms, compiled))
        })
        .await
        .map_err(|e| LoadError::new(&dir, format!("loading failed: {e}")))?
    }

    /// Follows, from now on, the rollbacks the other hosts sharing the store record (a
    /// tokio task: call it on the runtime that serves). Nothing to do on a store no other
    /// host writes: there, the only rollbacks are this host's.
    pub fn follow_rollbacks(self: &Arc<Self>) {
        if !self.store.shared() {
            return;
        }
        let service = Arc::clone(self);
        tokio::spawn(async move {
            let mut every = tokio::time::interval(ROLLBACK_FOLLOW_INTERVAL);
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                every.tick().await;
                if !service.follow_rollback("follow").await {
                    return;
                }
            }
        });
    }

    /// Applies the fleet's newest rollback entry if this host has not seen it: a rollback
    /// over the version this host's directory holds is made live here; a release ends the
    /// one in force here. Whether to go on following (not once the store is closed).
    pub(super) async fn follow_rollback(&self, trigger: &str) -> bool {
        let newest = match self
            .store
            .audit_entries_of(&[ROLLED_BACK, ROLLBACK_RELEASED], 1)
            .await
        {
            Ok(mut entries) => entries.pop(),
            Err(StoreError::Closed) => return false,
            Err(error) => {
                tracing::warn!("cannot read the fleet's rollbacks: {error}");
                return true;
            }
        };
        let Some(entry) = newest else { return true };
        if entry.seq <= self.rollback_followed.load(Ordering::SeqCst) {
            return true;
        }
        let _one_at_a_time = self.reloading.lock().await;
        self.rollback_followed.store(entry.seq, Ordering::SeqCst);
        let trigger = format!("{trigger}: {} (audit entry {})", entry.action, entry.seq);
        if entry.action == ROLLBACK_RELEASED {
            if self.rules.release().is_some() {
                let outcome = self.reload_locked(&trigger).await;
                self.metrics.reload(&outcome);
            }
            return true;
        }
        self.follow_rolled_back(&entry, &trigger).await;
        true
    }

    /// Takes note of the rollback `entry` records, and makes it live here if this host's
    /// directory holds the version it was made over (the reload records it, or its
    /// refusal when the kept copy is missing).
    async fn follow_rolled_back(&self, entry: &AuditEntry, trigger: &str) {
        let detail: serde_json::Value = serde_json::from_str(&entry.detail).unwrap_or_default();
        let Some(over) = detail["over_directory_version"].as_str() else {
            tracing::error!(
                seq = entry.seq,
                "a rollback entry names no directory version"
            );
            return;
        };
        self.rules.note_rollback(Held {
            version: entry.subject.clone(),
            over: over.to_owned(),
        });
        if self.rules.held().is_some() {
            let outcome = self.reload_locked(trigger).await;
            self.metrics.reload(&outcome);
        }
    }
}
