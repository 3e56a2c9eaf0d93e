//! The fleet: each host says every [`HEARTBEAT_INTERVAL`] who it is and which rule set
//! (and canary) it runs (into the store, so every host can list every other), and leaves the list when it
//! stops. `GET /v1/hosts` shows an operator at once a host still running an old rule set,
//! or one that stopped beating.

use std::sync::Arc;
use std::time::Duration;

use super::{Service, ServiceError};
use crate::store::{HostBeat, HostRow, StoreError};

/// How often a host beats.
pub const HEARTBEAT_INTERVAL: Duration = Duration::from_secs(5);
/// A host whose last beat is older than this is shown as not live (three beats missed).
pub const LIVE_WITHIN: Duration = Duration::from_secs(15);

impl Service {
    /// What this host says of itself.
    fn beat_of(&self, address: &str) -> HostBeat {
        HostBeat {
            id: self.host_id.clone(),
            address: address.to_owned(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            rule_set_version: self.rule_set().version.clone(),
            canary: self
                .canary()
                .running()
                .map(|canary| (canary.rules.version.clone(), canary.percent())),
            started_at_unix_ms: self.started_at_unix_ms,
        }
    }

    /// Beats now (so the host is listed before it serves), then every
    /// [`HEARTBEAT_INTERVAL`] from a tokio task, on the runtime that serves.
    pub async fn beat(self: &Arc<Self>, address: String) {
        if let Err(error) = self.store.heartbeat(&self.beat_of(&address)).await {
            tracing::warn!("the first heartbeat was not recorded: {error}");
        }
        let service = Arc::clone(self);
        tokio::spawn(async move {
            let mut every = tokio::time::interval(HEARTBEAT_INTERVAL);
            every.tick().await;
            loop {
                every.tick().await;
                match service.store.heartbeat(&service.beat_of(&address)).await {
                    Ok(()) => {}
                    Err(StoreError::Closed) => return,
                    Err(error) => tracing::warn!("a heartbeat was not recorded: {error}"),
                }
            }
        });
    }

    /// The hosts sharing the store, the most recent beat first.
    pub async fn hosts(&self) -> Result<Vec<HostRow>, ServiceError> {
        Ok(self.store.hosts().await?)
    }

    /// Leaves the fleet's list (a host stopping on purpose).
    pub async fn leave(&self) {
        if let Err(error) = self.store.leave(&self.host_id).await {
            tracing::warn!("did not leave the list of hosts: {error}");
        }
    }
}
