//! A shadow rule set: a candidate that decides live traffic beside the live set without
//! affecting any answer.
//!
//! After a payment's live decision is committed, the request hands the payment to the
//! shadow's own thread ([`ShadowRunner::after`] only queues it) and answers; the thread
//! decides it with the shadow set at the same instant, without feeding the velocity
//! figures, and queues the decision for the store's writer. It decides only while a
//! decider is free (fewer live payments queued or being decided than there are deciders,
//! [`LiveLoad`]), in the `SCHED_IDLE` scheduling class (on Linux) besides, so it takes
//! only the CPU live work leaves; its queue is bounded: when the shadow falls behind (at
//! saturation, it samples), payments are skipped (and counted) rather than slowing
//! anything live.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, SyncSender, TrySendError};
use std::sync::{Arc, Mutex, RwLock};
use std::thread::JoinHandle;

use serde::Serialize;

use super::Pipeline;
use super::deciders::LiveLoad;
use crate::model::{Decision, Payment};
use crate::registry::RuleSet;
use crate::registry::live::Rejected;
use crate::store::Store;

/// How many payments may wait for the shadow.
pub const QUEUE_MAX: usize = 1_024;
/// How long the shadow waits before looking again for a free decider.
const WAIT_FOR_A_FREE_DECIDER: std::time::Duration = std::time::Duration::from_millis(1);

/// Where a shadow set came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ShadowSource {
    /// `POST /v1/rules/shadow`.
    Api,
    /// The `shadow/` subdirectory of the rules directory.
    Directory,
}

/// The installed shadow set.
#[derive(Clone)]
pub struct Installed {
    /// The set.
    pub rules: Arc<RuleSet>,
    /// Its directory.
    pub dir: PathBuf,
    /// How it was installed.
    pub source: ShadowSource,
    /// When, ms since the Unix epoch.
    pub installed_at_unix_ms: i64,
}

/// What the rules directory's `shadow/` held when it was last looked at.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum DirectoryState {
    /// No rules.
    #[default]
    Empty,
    /// A set that loads, by version.
    Loads(String),
    /// Rules that do not load, and why.
    Refused(String),
}

struct Job {
    rules: Arc<RuleSet>,
    payment: Payment,
    payment_id: String,
    decided_at_unix_ms: i64,
}

/// Runs the shadow set, if one is installed.
pub struct ShadowRunner {
    installed: RwLock<Option<Installed>>,
    sender: Mutex<Option<SyncSender<Job>>>,
    thread: Mutex<Option<JoinHandle<()>>>,
    decided: Arc<AtomicU64>,
    skipped: AtomicU64,
    /// What the rules directory's `shadow/` held when last looked at.
    directory: Mutex<DirectoryState>,
    /// The last candidate refused as the shadow set since the start.
    last_rejected: Mutex<Option<Rejected>>,
}

impl ShadowRunner {
    /// Starts the shadow thread, deciding with `pipeline` whenever `live` has a free
    /// decider, and recording in `store`.
    pub fn start(
        pipeline: Arc<Pipeline>,
        store: Arc<dyn Store>,
        live: Arc<LiveLoad>,
    ) -> std::io::Result<ShadowRunner> {
        let (sender, receiver) = mpsc::sync_channel::<Job>(QUEUE_MAX);
        let decided = Arc::new(AtomicU64::new(0));
        let counter = Arc::clone(&decided);
        let thread = std::thread::Builder::new()
            .name("payrules-shadow".to_owned())
            .spawn(move || {
                lower_priority();
                for job in receiver {
                    while !live.has_free_decider() {
                        std::thread::sleep(WAIT_FOR_A_FREE_DECIDER);
                    }
                    let decision = pipeline.evaluate(
                        &job.rules,
                        &job.payment,
                        &job.payment_id,
                        job.decided_at_unix_ms,
                    );
                    match store.record_shadow(&decision, &job.rules.version) {
                        Ok(()) => {
                            counter.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(error) => tracing::warn!(
                            payment_id = %job.payment_id,
                            "a shadow decision was not recorded: {error}"
                        ),
                    }
                }
            })?;
        Ok(ShadowRunner {
            installed: RwLock::new(None),
            sender: Mutex::new(Some(sender)),
            thread: Mutex::new(Some(thread)),
            decided,
            skipped: AtomicU64::new(0),
            directory: Mutex::new(DirectoryState::Empty),
            last_rejected: Mutex::new(None),
        })
    }

    /// Installs `installed` as the shadow set (replacing any); payments decided from now
    /// on are also decided by it.
    pub fn install(&self, installed: Installed) {
        *self.installed.write().unwrap_or_else(|p| p.into_inner()) = Some(installed);
    }

    /// Removes the shadow set; returns it.
    pub fn remove(&self) -> Option<Installed> {
        self.installed
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .take()
    }

    /// The shadow set, if any.
    pub fn installed(&self) -> Option<Installed> {
        self.installed
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Payments the shadow decided and recorded, and payments it skipped because it had
    /// fallen behind.
    pub fn counts(&self) -> (u64, u64) {
        (
            self.decided.load(Ordering::Relaxed),
            self.skipped.load(Ordering::Relaxed),
        )
    }

    /// Notes what the rules directory's `shadow/` holds now; whether that differs from
    /// what was last noted (so an unchanged `shadow/` is installed, or reported as
    /// refused, once).
    pub fn directory_seen(&self, state: DirectoryState) -> bool {
        let mut seen = self.directory.lock().unwrap_or_else(|p| p.into_inner());
        let changed = *seen != state;
        *seen = state;
        changed
    }

    /// Notes a candidate refused as the shadow set (the shadow set is unchanged).
    pub fn rejected(&self, rejected: Rejected) {
        *self.last_rejected.lock().unwrap_or_else(|p| p.into_inner()) = Some(rejected);
    }

    /// The last candidate refused as the shadow set since the start, if any.
    pub fn last_rejected(&self) -> Option<Rejected> {
        self.last_rejected
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Whether a shadow set is installed.
    pub fn is_installed(&self) -> bool {
        self.installed
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .is_some()
    }

    /// Queues a payment whose live decision is committed for the shadow set, if one is
    /// installed. Never blocks.
    pub fn after(&self, payment: Payment, decision: &Decision) {
        let Some(rules) = self
            .installed
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .map(|installed| Arc::clone(&installed.rules))
        else {
            return;
        };
        let job = Job {
            rules,
            payment,
            payment_id: decision.payment_id.clone(),
            decided_at_unix_ms: decision.decided_at_unix_ms,
        };
        let sender = self.sender.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(sender) = sender.as_ref()
            && let Err(TrySendError::Full(_)) = sender.try_send(job)
        {
            self.skipped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Stops taking payments and waits for the queued ones.
    pub fn stop(&self) {
        drop(self.sender.lock().unwrap_or_else(|p| p.into_inner()).take());
        if let Some(thread) = self.thread.lock().unwrap_or_else(|p| p.into_inner()).take() {
            let _ = thread.join();
        }
    }
}

/// Puts the calling thread in the `SCHED_IDLE` scheduling class (Linux): it runs only on
/// CPU no other thread wants, and a live thread that wakes up preempts it at once (the
/// scheduler preempts an idle-class thread for any other on wakeup; at nice 19, tried
/// first, the shadow added 17-39 % to the live p99 at saturation).
fn lower_priority() {
    #[cfg(target_os = "linux")]
    {
        let param = libc::sched_param { sched_priority: 0 };
        // SAFETY: sched_setscheduler reads the `sched_param` we own for the duration of
        // the call and changes only the calling thread's (pid 0) scheduling policy; it
        // touches no memory of ours afterwards.
        #[allow(unsafe_code)]
        let changed = unsafe { libc::sched_setscheduler(0, libc::SCHED_IDLE, &param) };
        if changed != 0 {
            tracing::warn!(
                "the shadow thread keeps its scheduling class: {}",
                std::io::Error::last_os_error()
            );
        }
    }
}
