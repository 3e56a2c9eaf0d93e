//! The live rule set of a rules directory, and how a new one replaces it.
//!
//! A reload loads the directory as a candidate, off the request path, reusing the
//! compiled code of every component that did not change. Only a candidate that loads
//! whole (every manifest parses, every component compiles for its kind's world with only
//! the capabilities the host grants, every list reads) replaces the live set, in one
//! pointer swap: a payment takes the live set once when it starts and decides with it to
//! the end, so no payment ever sees two versions. A candidate that fails changes nothing
//! live; it is kept as the last rejected one, with its error, for operators to see.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Instant;

use serde::Serialize;

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

/// The live rule set and its directory.
pub struct LiveRules {
    dir: PathBuf,
    runtime: Arc<Runtime>,
    current: RwLock<Arc<RuleSet>>,
    loaded_at_unix_ms: Mutex<i64>,
    last_rejected: Mutex<Option<Rejected>>,
    /// Where a copy of the last set that went live is kept, if anywhere.
    last_good: Option<PathBuf>,
}

impl LiveRules {
    /// Loads `dir` as the first live set.
    pub fn load(
        dir: &Path,
        runtime: Arc<Runtime>,
        now_unix_ms: i64,
    ) -> Result<LiveRules, LoadError> {
        let set = RuleSet::load(dir, &runtime)?;
        Ok(LiveRules::with(dir, runtime, set, now_unix_ms))
    }

    /// A live set that starts with `set`, loaded from `dir`.
    pub fn with(dir: &Path, runtime: Arc<Runtime>, set: RuleSet, now_unix_ms: i64) -> LiveRules {
        LiveRules {
            dir: dir.to_owned(),
            runtime,
            current: RwLock::new(Arc::new(set)),
            loaded_at_unix_ms: Mutex::new(now_unix_ms),
            last_rejected: Mutex::new(None),
            last_good: None,
        }
    }

    /// From now on, keep a copy of every set that goes live in `last_good`, for
    /// `payrules serve --from-last-good` after a restart; and of this one now if
    /// `keep_now` (not when this one was started from that copy).
    pub fn keeping_last_good(mut self, last_good: &Path, keep_now: bool) -> LiveRules {
        self.last_good = Some(last_good.to_owned());
        if keep_now {
            self.keep_last_good();
        }
        self
    }

    /// Copies the rules directory beside the store and checks that the copy loads as the
    /// live version (a change landing during the copy makes it differ: then the copy is
    /// dropped, and the reload that change triggers keeps a new one). The copy replaces
    /// the previous one only once it is whole.
    fn keep_last_good(&self) {
        let Some(target) = &self.last_good else {
            return;
        };
        let live = self.current();
        let staging = target.with_extension("new");
        let kept = (|| -> Result<(), String> {
            let _ = std::fs::remove_dir_all(&staging);
            copy_dir(&self.dir, &staging).map_err(|e| format!("copying: {e}"))?;
            // The same content as the live set, whose vectors passed: the version says so.
            let copy = RuleSet::load_untested(&staging, &self.runtime, Some(&live))
                .map_err(|e| e.to_string())?;
            if copy.version != live.version {
                return Err("the directory changed while it was copied".to_owned());
            }
            let old = target.with_extension("old");
            let _ = std::fs::remove_dir_all(&old);
            if target.exists() {
                std::fs::rename(target, &old).map_err(|e| e.to_string())?;
            }
            std::fs::rename(&staging, target).map_err(|e| e.to_string())?;
            let _ = std::fs::remove_dir_all(&old);
            Ok(())
        })();
        match kept {
            Ok(()) => tracing::debug!(version = %live.version, "kept as the last good rule set"),
            Err(error) => {
                let _ = std::fs::remove_dir_all(&staging);
                tracing::warn!(
                    "cannot keep the last good rule set in {}: {error}",
                    target.display()
                );
            }
        }
    }

    /// The live set. Take it once per payment.
    pub fn current(&self) -> Arc<RuleSet> {
        Arc::clone(&self.current.read().unwrap_or_else(|p| p.into_inner()))
    }

    /// When the live set went live, ms since the Unix epoch.
    pub fn loaded_at_unix_ms(&self) -> i64 {
        *self
            .loaded_at_unix_ms
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    /// The last candidate refused, if any.
    pub fn last_rejected(&self) -> Option<Rejected> {
        self.last_rejected
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Loads another directory (a shadow set) exactly as the live loader would, reusing
    /// the compiled code of `reuse` (by default the live set's). Blocks while it compiles.
    pub fn load_beside(&self, dir: &Path, reuse: Option<&RuleSet>) -> Result<RuleSet, LoadError> {
        match reuse {
            Some(set) => RuleSet::load_reusing(dir, &self.runtime, Some(set)),
            None => RuleSet::load_reusing(dir, &self.runtime, Some(&self.current())),
        }
    }

    /// The rules directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Loads the directory as a candidate (blocks while it compiles: call it off the
    /// request path). The live set is not touched: [`LiveRules::make_live`] swaps a
    /// candidate in, once its going live is recorded; a refusal is kept as the last one.
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
        match loaded {
            Ok(candidate) if candidate.version == live.version => Prepared::Unchanged {
                version: live.version.clone(),
            },
            Ok(candidate) => Prepared::Candidate {
                from: live.version.clone(),
                load_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
                set: candidate,
            },
            Err(error) => Prepared::Rejected(self.refuse(Rejected {
                at_unix_ms: now_unix_ms,
                trigger: trigger.to_owned(),
                error: error.to_string(),
            })),
        }
    }

    /// Makes a prepared candidate the live set (requests already deciding finish on the
    /// set they took), and keeps a copy of it as the last good set.
    pub fn make_live(&self, set: RuleSet, now_unix_ms: i64) {
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(set);
        *self
            .loaded_at_unix_ms
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = now_unix_ms;
        self.keep_last_good();
    }

    /// Keeps `rejected` as the last candidate refused; returns it.
    pub fn refuse(&self, rejected: Rejected) -> Rejected {
        *self.last_rejected.lock().unwrap_or_else(|p| p.into_inner()) = Some(rejected.clone());
        rejected
    }
}

/// A candidate loaded from the rules directory, not yet live.
pub enum Prepared {
    /// The directory holds the live set already.
    Unchanged {
        /// The live version.
        version: String,
    },
    /// A different set that loads whole.
    Candidate {
        /// The live version it would replace.
        from: String,
        /// How long loading it took, ms.
        load_ms: u64,
        /// The set.
        set: RuleSet,
    },
    /// The candidate was refused.
    Rejected(Rejected),
}

/// Copies the rules directory `from` into `to` (created), as the loader sees it:
/// symlinks followed (a Kubernetes ConfigMap mount is `x.toml -> ..data/x.toml`), only
/// regular files and directories that resolve inside `from`, hidden entries (`..data`,
/// `..2026_11_26_...`) left out since what they hold is copied through the links.
fn copy_dir(from: &Path, to: &Path) -> std::io::Result<()> {
    let root = from.canonicalize()?;
    copy_within(&root, from, to)
}

fn copy_within(root: &Path, from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        if entry.file_name().to_string_lossy().starts_with('.') {
            continue;
        }
        let Ok(resolved) = entry.path().canonicalize() else {
            continue;
        };
        if !resolved.starts_with(root) {
            continue;
        }
        let kind = std::fs::metadata(&resolved)?;
        let target = to.join(entry.file_name());
        if kind.is_dir() {
            copy_within(root, &resolved, &target)?;
        } else if kind.is_file() {
            std::fs::copy(&resolved, target)?;
        }
    }
    Ok(())
}
