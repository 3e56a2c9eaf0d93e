//! Several hosts, one set of velocity figures: each host counts the payments it accepts
//! as it stores them, and follows what the other hosts accept, in chain order, by polling
//! the store ([`Store::accepted_after`]) every [`FOLLOW_INTERVAL`].
//!
//! A rule's velocity host call never waits on the network: it reads this host's book,
//! which lags the other hosts by the polling interval plus a query (the
//! `payrules_velocity_follow_delay_seconds` histogram measures it: from another host's
//! decision to its entry here). At start, the book is rebuilt from one snapshot of the
//! store that also gives the chain position to follow from, so the host has caught up
//! before it listens. Polling, not LISTEN/NOTIFY: PostgreSQL-protocol engines that
//! distribute the database lack it.
//!
//! [`Store::accepted_after`]: crate::store::Store::accepted_after

use std::collections::HashSet;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::Service;
use crate::store::{StoreError, now_unix_ms};

/// How often a host looks for the other hosts' decisions.
pub const FOLLOW_INTERVAL: Duration = Duration::from_millis(100);
/// Audit entries read per poll at most (a host catching up reads page after page).
const FOLLOW_PAGE: u32 = 500;

/// What a host follows of the others, and what it counted itself.
#[derive(Default)]
pub struct Following {
    /// The last audit entry followed.
    through_seq: AtomicI64,
    /// Accepted payments this host is storing or has stored and counted itself, not yet
    /// passed by the follower (which then skips them): a bounded set, as the follower
    /// passes each within its lag.
    own: Mutex<HashSet<String>>,
}

impl Following {
    /// Following starts after entry `seq` (the chain's head when the book was rebuilt).
    pub fn from(seq: i64) -> Following {
        Following {
            through_seq: AtomicI64::new(seq),
            own: Mutex::new(HashSet::new()),
        }
    }

    /// Payments about to be committed by this host, which counts them itself once
    /// stored: the follower is to skip them.
    pub(super) fn expect<'a>(&self, ids: impl IntoIterator<Item = &'a str>) {
        let mut own = self.own.lock().unwrap_or_else(|p| p.into_inner());
        own.extend(ids.into_iter().map(str::to_owned));
    }

    /// Payments whose commit failed (or whose outcome is unknown): if the database has
    /// them after all, the follower counts them.
    pub(super) fn forget<'a>(&self, ids: impl IntoIterator<Item = &'a str>) {
        let mut own = self.own.lock().unwrap_or_else(|p| p.into_inner());
        for id in ids {
            own.remove(id);
        }
    }

    /// Whether this host counted `id` itself (the follower passes it unread).
    fn counted(&self, id: &str) -> bool {
        self.own
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(id)
    }

    /// The follower passed these (counted here): they leave the set. Only once the page
    /// that passed them is read whole: a page that fails is read again.
    fn passed(&self, ids: &[String]) {
        let mut own = self.own.lock().unwrap_or_else(|p| p.into_inner());
        for id in ids {
            own.remove(id);
        }
    }
}

impl Service {
    /// Follows, from now on, the accepted payments the other hosts sharing the store
    /// commit into this host's velocity figures (a tokio task: call it on the runtime that
    /// serves). Nothing to do on a store no other host writes.
    pub fn follow_other_hosts(self: &Arc<Self>) {
        if !self.store.shared() {
            return;
        }
        let service = Arc::clone(self);
        tokio::spawn(async move {
            let mut warned = false;
            loop {
                let at = service.following.through_seq.load(Ordering::SeqCst);
                let counted = |id: &str| service.following.counted(id);
                match service
                    .store
                    .accepted_after(at, FOLLOW_PAGE, &counted)
                    .await
                {
                    Ok(page) => {
                        warned = false;
                        service.following.passed(&page.counted);
                        let now = now_unix_ms();
                        for (_, payment, decided_at) in &page.payments {
                            service.velocity.record(payment, *decided_at);
                            let delay_ms = now.saturating_sub(*decided_at).max(0);
                            service.metrics.followed(
                                Duration::from_millis(delay_ms.unsigned_abs()).as_secs_f64(),
                            );
                        }
                        service
                            .following
                            .through_seq
                            .store(page.through_seq, Ordering::SeqCst);
                        // A full page: more is waiting; read it at once.
                        if page.through_seq - at >= i64::from(FOLLOW_PAGE) {
                            continue;
                        }
                    }
                    Err(StoreError::Closed) => return,
                    Err(error) => {
                        if !warned {
                            tracing::warn!(
                                "cannot follow the other hosts' decisions (velocity figures \
                                 lag until the store answers): {error}"
                            );
                            warned = true;
                        }
                    }
                }
                tokio::time::sleep(FOLLOW_INTERVAL).await;
            }
        });
    }
}
