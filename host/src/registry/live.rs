//! The live rule set of a rules directory, and how a new one replaces it.
//!
//! A reload loads the directory as a candidate, off the request path, reusing the
//! compiled code of every component that did not change. Only a candidate that loads
//! whole (every manifest parses, every component compiles for its kind's world with only
//! the capabilities the host grants, every list reads) replaces the live set, in one
//! pointer swap: a payment takes the live set once when it starts and decides with it to
//! the end, so no payment ever sees two versions. A candidate that fails changes nothing
//! live; it is kept as the last rejected one, with its error, for operators to see.
//!
//! Every set that goes live from the directory is kept by version ([`KeptSets`]), so an
//! operator can make an earlier one live again (a rollback) over the version the directory
//! holds: while the directory holds that version, a reload finds it unchanged; another
//! version goes live as usual; until the rollback is released.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Instant;

use serde::Serialize;

use super::kept::KeptSets;
use super::{LoadError, RuleSet};
use crate::runtime::Runtime;

/// A candidate that was refused.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct Rejected {
    /// When, ms since the Unix epoch.
    pub at_unix_ms: i64,
    /// What asked for the reload: `watch`, `api`, ...
    pub trigger: String,
    /// The file at fault and why.
    pub error: String,
}

/// What a reload did.
#[derive(Clone, Debug)]
pub enum ReloadOutcome {
    /// The directory holds the live set already.
    Unchanged {
        /// The live version.
        version: String,
    },
    /// A new set is live.
    Swapped {
        /// The version it replaced.
        from: String,
        /// The version now live.
        to: String,
        /// How long loading the candidate took, ms.
        load_ms: u64,
        /// The new set's rules: name and component sha256 of each, in pipeline order.
        rules: Vec<(String, String)>,
    },
    /// The candidate was refused; the live set is unchanged.
    Rejected(Rejected),
}

/// A rollback: a kept set made live again over a version of the rules directory. It is in
/// force on a host while that host's directory holds that version (another version there
/// goes live as usual; the same version again brings the rollback back), until released.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Held {
    /// The version made live again.
    pub version: String,
    /// The rules directory's version it holds over.
    pub over: String,
}

/// Where a set going live comes from.
pub enum Source {
    /// The rules directory: a copy is kept.
    Directory,
    /// A kept set made live again by a rollback.
    Kept(Held),
}

/// The live rule set and its directory.
pub struct LiveRules {
    dir: PathBuf,
    runtime: Arc<Runtime>,
    current: RwLock<Arc<RuleSet>>,
    loaded_at_unix_ms: Mutex<i64>,
    last_rejected: Mutex<Option<Rejected>>,
    /// Where the sets that went live are kept, if anywhere.
    kept: Option<KeptSets>,
    /// The version the rules directory held when it last loaded whole (none: it has not
    /// since the start).
    directory_version: Mutex<Option<String>>,
    /// The rollback not released, if any (in force while the directory holds its `over`).
    rollback: Mutex<Option<Held>>,
}

impl LiveRules {
    /// Loads `dir` as the first live set.
    pub fn load(
        dir: &Path,
        runtime: Arc<Runtime>,
        now_unix_ms: i64,
    ) -> Result<LiveRules, LoadError> {
        let set = RuleSet::load(dir, &runtime)?;
        let version = set.version.clone();
        let live = LiveRules::with(dir, runtime, set, now_unix_ms);
        *lock(&live.directory_version) = Some(version);
        Ok(live)
    }

    /// A live set that starts with `set` (not loaded from `dir`: the directory's version is
    /// unknown until it loads).
    pub fn with(dir: &Path, runtime: Arc<Runtime>, set: RuleSet, now_unix_ms: i64) -> LiveRules {
        LiveRules {
            dir: dir.to_owned(),
            runtime,
            current: RwLock::new(Arc::new(set)),
            loaded_at_unix_ms: Mutex::new(now_unix_ms),
            last_rejected: Mutex::new(None),
            kept: None,
            directory_version: Mutex::new(None),
            rollback: Mutex::new(None),
        }
    }

    /// From now on, keep a copy of every set that goes live from the directory in `kept`
    /// (for rollbacks, and `payrules serve --from-last-good` after a restart); and of this
    /// one now if it was loaded from the directory. A set started from a kept copy is
    /// marked as the last live one.
    pub fn keeping(mut self, kept: KeptSets) -> LiveRules {
        self.kept = Some(kept);
        let live = self.current();
        if lock(&self.directory_version).as_deref() == Some(live.version.as_str()) {
            self.keep(&live);
        } else if let Some(kept) = &self.kept
            && let Err(error) = kept.mark_live(&live.version)
        {
            tracing::warn!(version = %live.version, "cannot mark the kept rule set live: {error}");
        }
        self
    }

    /// Keeps a copy of the directory, which holds `live` (see [`KeptSets::keep`]).
    fn keep(&self, live: &RuleSet) {
        let Some(kept) = &self.kept else {
            return;
        };
        match kept.keep(&self.dir, live, &self.runtime) {
            Ok(()) => tracing::debug!(version = %live.version, "rule set kept"),
            Err(error) => tracing::warn!(
                version = %live.version,
                "cannot keep the rule set in {}: {error}",
                kept.dir().display()
            ),
        }
    }

    /// The kept sets, if sets are kept.
    pub fn kept(&self) -> Option<&KeptSets> {
        self.kept.as_ref()
    }

    /// The live set. Take it once per payment.
    pub fn current(&self) -> Arc<RuleSet> {
        Arc::clone(&self.current.read().unwrap_or_else(|p| p.into_inner()))
    }

    /// When the live set went live, ms since the Unix epoch.
    pub fn loaded_at_unix_ms(&self) -> i64 {
        *lock(&self.loaded_at_unix_ms)
    }

    /// The last candidate refused, if any.
    pub fn last_rejected(&self) -> Option<Rejected> {
        lock(&self.last_rejected).clone()
    }

    /// The rollback in force on this host, if any: one not released, over the version the
    /// rules directory holds.
    pub fn held(&self) -> Option<Held> {
        let directory = self.directory_version();
        lock(&self.rollback)
            .clone()
            .filter(|held| directory.as_deref() == Some(held.over.as_str()))
    }

    /// The rollback not released, in force here or not.
    pub fn rollback(&self) -> Option<Held> {
        lock(&self.rollback).clone()
    }

    /// Takes note of a rollback recorded by another host (without making anything live).
    pub fn note_rollback(&self, held: Held) {
        *lock(&self.rollback) = Some(held);
    }

    /// The version the rules directory held when it last loaded whole.
    pub fn directory_version(&self) -> Option<String> {
        lock(&self.directory_version).clone()
    }

    /// Loads another directory (a shadow set) exactly as the live loader would, reusing
    /// the compiled code of `reuse` (by default the live set's). Blocks while it compiles.
    pub fn load_beside(&self, dir: &Path, reuse: Option<&RuleSet>) -> Result<RuleSet, LoadError> {
        match reuse {
            Some(set) => RuleSet::load_reusing(dir, &self.runtime, Some(set)),
            None => RuleSet::load_reusing(dir, &self.runtime, Some(&self.current())),
        }
    }

    /// Loads the kept set `version` as the live loader would (vectors run), reusing the
    /// live set's compiled code and the code cache. Blocks while it loads.
    pub fn load_kept(&self, version: &str) -> Result<RuleSet, LoadError> {
        let path = self
            .kept
            .as_ref()
            .and_then(|kept| kept.path_of(version))
            .ok_or_else(|| {
                LoadError::new(
                    &self.dir,
                    format!("the rule set {version} is not kept on this host"),
                )
            })?;
        let set = RuleSet::load_reusing(&path, &self.runtime, Some(&self.current()))?;
        if set.version != version {
            return Err(LoadError::new(
                &path,
                format!(
                    "the kept copy loads as {}, not as {version}: it was altered",
                    set.version
                ),
            ));
        }
        Ok(set)
    }

    /// The runtime the sets are loaded with.
    pub fn runtime(&self) -> &Arc<Runtime> {
        &self.runtime
    }

    /// Ends the rollback, if any (the next reload makes the directory's version live);
    /// returns it.
    pub fn release(&self) -> Option<Held> {
        lock(&self.rollback).take()
    }

    /// The rules directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Loads the directory as a candidate (blocks while it compiles: call it off the
    /// request path). The live set is not touched: [`LiveRules::make_live`] swaps a
    /// candidate in, once its going live is recorded; a refusal is kept as the last one.
    /// While a rollback holds over the version the directory holds, the candidate is the
    /// rollback's kept set (unchanged if live).
    pub fn prepare(&self, trigger: &str, now_unix_ms: i64) -> Prepared {
        let live = self.current();
        let started = Instant::now();
        let loaded =
            RuleSet::load_reusing(&self.dir, &self.runtime, Some(&live)).and_then(|candidate| {
                // A directory caught empty (`rm *` before a copy) would decide payments with
                // no compliance at all: refuse it; a restart can start with no rules.
                if candidate.rules().is_empty() && !live.rules().is_empty() {
                    return Err(LoadError::new(
                        &self.dir,
                        "no rules in the directory: a live set is never replaced by an empty one",
                    ));
                }
                Ok(candidate)
            });
        let candidate = match loaded {
            Ok(candidate) => candidate,
            Err(error) => {
                return Prepared::Rejected(self.refuse(Rejected {
                    at_unix_ms: now_unix_ms,
                    trigger: trigger.to_owned(),
                    error: error.to_string(),
                }));
            }
        };
        *lock(&self.directory_version) = Some(candidate.version.clone());
        let load_ms = || u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        match self.rollback() {
            // The directory holds what a rollback was made over: the rollback's set.
            Some(held) if held.over == candidate.version => {
                if held.version == live.version {
                    return Prepared::Unchanged {
                        version: live.version.clone(),
                    };
                }
                match self.load_kept(&held.version) {
                    Ok(set) => Prepared::Candidate {
                        from: live.version.clone(),
                        load_ms: load_ms(),
                        set,
                        source: Source::Kept(held),
                    },
                    Err(error) => Prepared::Rejected(self.refuse(Rejected {
                        at_unix_ms: now_unix_ms,
                        trigger: trigger.to_owned(),
                        error: format!("the rollback in force cannot be made live: {error}"),
                    })),
                }
            }
            _ if candidate.version == live.version => Prepared::Unchanged {
                version: live.version.clone(),
            },
            _ => Prepared::Candidate {
                from: live.version.clone(),
                load_ms: load_ms(),
                set: candidate,
                source: Source::Directory,
            },
        }
    }

    /// Makes a prepared set the live set (requests already deciding finish on the set
    /// they took). From the directory, it is kept; from a kept copy, it is marked as the
    /// last live one and its rollback is noted.
    pub fn make_live(&self, set: RuleSet, source: Source, now_unix_ms: i64) {
        let set = Arc::new(set);
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = Arc::clone(&set);
        *lock(&self.loaded_at_unix_ms) = now_unix_ms;
        match source {
            Source::Directory => self.keep(&set),
            Source::Kept(held) => {
                self.note_rollback(held);
                if let Some(kept) = &self.kept
                    && let Err(error) = kept.mark_live(&set.version)
                {
                    tracing::warn!(version = %set.version, "cannot mark the kept rule set live: {error}");
                }
            }
        }
    }

    /// Keeps `rejected` as the last candidate refused; returns it.
    pub fn refuse(&self, rejected: Rejected) -> Rejected {
        *lock(&self.last_rejected) = Some(rejected.clone());
        rejected
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A candidate loaded from the rules directory, not yet live.
pub enum Prepared {
    /// The directory holds the live set already.
    Unchanged {
        /// The live version.
        version: String,
    },
    /// A different set that loads whole: the directory's, or the kept set of the
    /// rollback made over the version the directory holds.
    Candidate {
        /// The live version it would replace.
        from: String,
        /// How long loading it took, ms.
        load_ms: u64,
        /// The set.
        set: RuleSet,
        /// Where it comes from.
        source: Source,
    },
    /// The candidate was refused.
    Rejected(Rejected),
}
