//! The relay: one host of those sharing the store delivers the outbox's events to the
//! webhook endpoints (the lease decides which: `Store::relay_lease`), at least once, in
//! order per payment and endpoint, off the decision path.
//!
//! Each round takes the deliveries due (an event whose earlier event of the same payment
//! is still pending for that endpoint waits for it), POSTs them at once (at most
//! [`IN_FLIGHT_MAX`] at a time), and records each outcome: delivered (removed), failed
//! (tried again after the endpoint's backoff), or dead after its last attempt. An
//! endpoint none of whose attempts in a round succeeded is paused for its backoff too
//! (doubling while it stays down): a receiver that is down costs one probe per pause, not
//! an attempt per event per round, and its events keep their attempts for when it is back. A host that
//! dies mid-round leaves its deliveries pending: the next holder of the lease sends them
//! again (a receiver drops a second delivery by its `Payrules-Event-Id`).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use tokio::task::JoinSet;

use super::Service;
use crate::store::outbox::{Delivery, DeliveryOutcome};
use crate::store::{StoreError, now_unix_ms};
use crate::webhooks::Webhooks;

/// Deliveries read per round at most.
const ROUND_MAX: u32 = 256;
/// Deliveries in flight at once at most.
const IN_FLIGHT_MAX: usize = 32;
/// How long an idle relay waits before it looks again.
const IDLE: Duration = Duration::from_millis(100);
/// How long the relay's lease lasts; renewed every [`LEASE_RENEW`].
const LEASE_MS: u64 = 10_000;
/// How often the lease is renewed (or tried for, by a host that does not hold it).
const LEASE_RENEW: Duration = Duration::from_secs(2);

impl Service {
    /// Relays events to `webhooks` from now on, while this host holds the relay's lease (a
    /// tokio task: call it on the runtime that serves).
    pub fn relay_events(self: &Arc<Self>, webhooks: Arc<Webhooks>) {
        if webhooks.is_empty() {
            return;
        }
        let service = Arc::clone(self);
        tokio::spawn(async move {
            let names: Vec<String> = webhooks
                .endpoints()
                .iter()
                .map(|e| e.name.clone())
                .collect();
            let mut paused = Paused::default();
            let mut holding = false;
            let mut lease_tried: Option<tokio::time::Instant> = None;
            let mut warned = false;
            loop {
                let now = tokio::time::Instant::now();
                if lease_tried.is_none_or(|at| now.duration_since(at) >= LEASE_RENEW) {
                    lease_tried = Some(now);
                    holding = match service.store.relay_lease(service.host_id(), LEASE_MS).await {
                        Ok(held) => held,
                        Err(StoreError::Closed) => return,
                        Err(error) => {
                            if !warned {
                                tracing::warn!("the relay's lease cannot be taken: {error}");
                                warned = true;
                            }
                            false
                        }
                    };
                }
                if !holding {
                    tokio::time::sleep(LEASE_RENEW).await;
                    continue;
                }
                let active = paused.active(&names);
                if active.is_empty() {
                    tokio::time::sleep(IDLE).await;
                    continue;
                }
                match service.relay_round(&webhooks, &active, &mut paused).await {
                    Ok(delivered) if delivered == ROUND_MAX as usize => continue,
                    Ok(_) => warned = false,
                    Err(StoreError::Closed) => return,
                    Err(error) => {
                        if !warned {
                            tracing::warn!("events not relayed (retried): {error}");
                            warned = true;
                        }
                    }
                }
                tokio::time::sleep(IDLE).await;
            }
        });
    }

    /// One round: the deliveries due, sent, their outcomes recorded; how many there were.
    async fn relay_round(
        &self,
        webhooks: &Arc<Webhooks>,
        names: &[String],
        paused: &mut Paused,
    ) -> Result<usize, StoreError> {
        let due = self
            .store
            .due_deliveries(names, now_unix_ms(), ROUND_MAX)
            .await?;
        let count = due.len();
        if due.is_empty() {
            return Ok(0);
        }
        let mut sending = JoinSet::new();
        let mut outcomes = Vec::with_capacity(count);
        for delivery in due {
            if sending.len() >= IN_FLIGHT_MAX
                && let Some(Ok(outcome)) = sending.join_next().await
            {
                outcomes.push(outcome);
            }
            let webhooks = Arc::clone(webhooks);
            sending.spawn(async move { attempt(&webhooks, delivery).await });
        }
        while let Some(joined) = sending.join_next().await {
            if let Ok(outcome) = joined {
                outcomes.push(outcome);
            }
        }
        let mut round: HashMap<&str, (usize, usize)> = HashMap::new();
        for outcome in &outcomes {
            match outcome {
                DeliveryOutcome::Delivered { endpoint, .. } => {
                    self.metrics.webhook_delivery(endpoint, "delivered");
                    round.entry(endpoint).or_default().0 += 1;
                }
                DeliveryOutcome::Failed { endpoint, dead, .. } => {
                    self.metrics
                        .webhook_delivery(endpoint, if *dead { "dead" } else { "failed" });
                    round.entry(endpoint).or_default().1 += 1;
                }
            }
        }
        for (name, (delivered, failed)) in round {
            if let Some(endpoint) = webhooks.endpoint(name) {
                paused.after_round(name, delivered, failed, |failed_rounds| {
                    endpoint.backoff_ms(failed_rounds, random())
                });
            }
        }
        self.store.record_deliveries(outcomes).await?;
        Ok(count)
    }
}

/// One attempt at one delivery, and what became of it.
async fn attempt(webhooks: &Webhooks, delivery: Delivery) -> DeliveryOutcome {
    let Some(endpoint) = webhooks.endpoint(&delivery.endpoint) else {
        unreachable!("due deliveries are read for the configured endpoints only");
    };
    let at_ms = now_unix_ms();
    match endpoint.deliver(&delivery, at_ms / 1000).await {
        Ok(()) => DeliveryOutcome::Delivered {
            endpoint: delivery.endpoint,
            seq: delivery.seq,
        },
        Err(error) => {
            let attempts = delivery.attempts.saturating_add(1);
            let dead = attempts >= endpoint.attempts_max;
            let wait_ms = endpoint.backoff_ms(attempts, random());
            if dead {
                tracing::warn!(
                    endpoint = %delivery.endpoint,
                    event_id = %delivery.event_id,
                    attempts,
                    "an event was dead-lettered: {error}"
                );
            }
            DeliveryOutcome::Failed {
                endpoint: delivery.endpoint,
                seq: delivery.seq,
                attempts,
                at_ms,
                next_attempt_ms: at_ms.saturating_add(i64::try_from(wait_ms).unwrap_or(i64::MAX)),
                dead,
                error,
            }
        }
    }
}

impl Service {
    /// Pending and dead deliveries per endpoint.
    pub async fn delivery_backlog(
        &self,
    ) -> Result<Vec<crate::store::outbox::EndpointBacklog>, super::ServiceError> {
        Ok(self.store.delivery_backlog().await?)
    }

    /// Dead letters after `after_seq`, oldest first.
    pub async fn dead_letters(
        &self,
        endpoint: Option<&str>,
        after_seq: i64,
        limit: u32,
    ) -> Result<Vec<crate::store::outbox::DeadLetter>, super::ServiceError> {
        Ok(self.store.dead_letters(endpoint, after_seq, limit).await?)
    }

    /// Makes `endpoint`'s dead letters (one event's, if given) pending again, due now, and
    /// audits it as `webhook.redelivered` by `actor`; returns how many.
    pub async fn redeliver(
        &self,
        endpoint: &str,
        event_id: Option<&str>,
        actor: &str,
    ) -> Result<u64, super::ServiceError> {
        let mut requeued = 0_u64;
        let mut after = 0;
        loop {
            let page = self
                .store
                .dead_letters(Some(endpoint), after, crate::store::LIST_LIMIT_MAX)
                .await?;
            let full = page.len() == crate::store::LIST_LIMIT_MAX as usize;
            requeued += page
                .iter()
                .filter(|l| event_id.is_none_or(|id| l.event_id == id))
                .count() as u64;
            match page.last() {
                Some(last) if full => after = last.seq,
                _ => break,
            }
        }
        if requeued == 0 {
            return Ok(0);
        }
        self.store.redeliver(endpoint, event_id).await?;
        self.store
            .audit_event(
                "webhook.redelivered",
                endpoint,
                &serde_json::json!({"actor": actor, "event_id": event_id, "requeued": requeued}),
            )
            .await?;
        tracing::info!(endpoint, requeued, actor, "dead letters sent again");
        Ok(requeued)
    }
}

/// A random number for a backoff's jitter (without randomness, the delay is still within
/// its bounds).
fn random() -> u64 {
    let mut random = [0u8; 8];
    let _ = getrandom::fill(&mut random);
    u64::from_le_bytes(random)
}

/// The endpoints paused because a whole round of attempts to them failed.
#[derive(Default)]
struct Paused {
    /// Until when, and after how many such rounds in a row.
    endpoints: HashMap<String, (Instant, u32)>,
}

impl Paused {
    /// The endpoints of `names` not paused now.
    fn active(&self, names: &[String]) -> Vec<String> {
        let now = Instant::now();
        names
            .iter()
            .filter(|name| {
                self.endpoints
                    .get(*name)
                    .is_none_or(|(until, _)| *until <= now)
            })
            .cloned()
            .collect()
    }

    /// A round made `delivered` and `failed` attempts to `name`: one delivered lifts a
    /// pause; none, the endpoint pauses for `backoff_ms(rounds failed in a row)`.
    fn after_round(
        &mut self,
        name: &str,
        delivered: usize,
        failed: usize,
        backoff_ms: impl FnOnce(u32) -> u64,
    ) {
        if delivered > 0 {
            self.endpoints.remove(name);
            return;
        }
        if failed == 0 {
            return;
        }
        let rounds = self
            .endpoints
            .get(name)
            .map_or(0, |(_, r)| *r)
            .saturating_add(1);
        let until = Instant::now() + Duration::from_millis(backoff_ms(rounds));
        self.endpoints.insert(name.to_owned(), (until, rounds));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_endpoint_whose_whole_round_failed_pauses_and_a_delivery_lifts_it() {
        let names = vec!["core".to_owned(), "ledger".to_owned()];
        let mut paused = Paused::default();
        paused.after_round("core", 0, 5, |rounds| 60_000 * u64::from(rounds));
        assert_eq!(paused.active(&names), ["ledger"]);
        paused.after_round("core", 0, 1, |rounds| {
            assert_eq!(rounds, 2, "rounds in a row are counted");
            0
        });
        assert_eq!(paused.active(&names), names, "a pause of 0 ms is over");
        paused.after_round("core", 1, 4, |_| 60_000);
        assert_eq!(paused.active(&names), names, "one delivery lifts it");
        paused.after_round("ledger", 0, 0, |_| 60_000);
        assert_eq!(paused.active(&names), names, "no attempt, no pause");
    }
}
