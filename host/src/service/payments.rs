//! Submitting one payment: claim its idempotency key (or find it used: replay), decide,
//! commit, count.
//!
//! Idempotency follows the IETF `Idempotency-Key` draft: a key is scoped to the API key
//! that sent it; while a request holds it, a second request with it is refused at once
//! (never decided twice); once the first has committed, a retry with the same payload gets
//! the stored decision, and one with another payload is refused. The store keeps a keyed
//! hash of the canonical payload, never a second copy.
//!
//! A key is held twice over: in this process (a duplicate on the same host is refused
//! without a round trip to the database), then in the store ([`Store::claim`]), which is
//! what holds it against the other hosts sharing a database. The store's claim has a
//! lease (`store.idempotency_lease_ms`): a host that dies holding a key holds it that long
//! at most, and the fencing token refuses its commit if it comes later.
//!
//! [`Store::claim`]: crate::store::Store::claim

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use super::{Service, ServiceError};
use crate::model::{Decision, Payment, Status};
use crate::store::{
    Claim, IdempotencyClaim, IdempotencyRecord, NewDecision, Store, StoreError, now_unix_ms,
};

/// What a submission got.
#[derive(Debug)]
pub struct Submitted {
    /// The payment's id.
    pub payment_id: String,
    /// Its decision, stored.
    pub decision: Decision,
    /// Whether this is the stored decision of an earlier request with the same key.
    pub replayed: bool,
}

impl Service {
    /// Decides and stores `payment`, submitted by `principal` under idempotency key `key`;
    /// or, for a key used before, the stored decision (same payload) or
    /// [`ServiceError::KeyReused`] (another payload).
    pub async fn submit_payment(
        &self,
        principal: &Arc<str>,
        key: &str,
        payment: Payment,
    ) -> Result<Submitted, ServiceError> {
        let canonical = serde_json::to_vec(&payment).map_err(ServiceError::internal)?;
        let fingerprint = self.store.fingerprint(&canonical);
        let Some(_claim) = self.in_flight.claim(principal, key) else {
            return Err(ServiceError::InFlight);
        };
        // One look-up: the key's record if it was used (a replay), else a claim on it.
        let token = match self
            .store
            .claim(principal, key, self.claim_lease_ms)
            .await?
        {
            Claim::Held { token } => token,
            Claim::Recorded(record) => return self.replay_record(record, &fingerprint).await,
            // Held by a request on another host.
            Claim::Busy => return Err(ServiceError::InFlight),
        };
        let mut held = Held::new(&self.store, principal, key, token);
        let payment_id = new_payment_id()?;
        let received_at = now_unix_ms();
        let (rules, canary) = self.rules_for(&payment);
        let (payment, mut decision) = self
            .deciders
            .decide(rules, payment, payment_id.clone(), received_at)
            .await
            .map_err(ServiceError::internal)?;
        decision.canary = canary;
        // Kept for what counts the payment once it is stored.
        let kept = (decision.status == Status::Accepted
            || self.shadow.is_installed()
            || self.canary.running().is_some())
        .then(|| payment.clone());
        let record = NewDecision {
            payment_id: payment_id.clone(),
            received_at_unix_ms: received_at,
            submitted_by: principal.to_string(),
            payment,
            decision: decision.clone(),
            idempotency: IdempotencyClaim {
                principal: principal.to_string(),
                key: key.to_owned(),
                fingerprint,
                token,
            },
        };
        // Followed by the other hosts; this one counts it itself once stored.
        let own = decision.status == Status::Accepted && self.store.shared();
        if own {
            self.following.expect([payment_id.as_str()]);
        }
        let committed = self.store.commit(record).await;
        if own && committed.is_err() {
            self.following.forget([payment_id.as_str()]);
        }
        if matches!(committed, Ok(()) | Err(StoreError::KeyTaken)) {
            // The commit ended the claim (or found it taken over).
            held.ended();
        }
        match committed {
            Ok(()) => {}
            // Another host recorded the key between our look-up and our commit, or took
            // over our claim after its lease: its decision stands; until it is stored,
            // the key is in flight there.
            Err(StoreError::KeyTaken) => {
                return self
                    .replay(principal, key, &fingerprint)
                    .await?
                    .ok_or(ServiceError::InFlight);
            }
            Err(error) => return Err(error.into()),
        }
        if let Some(payment) = kept {
            self.stored(vec![(payment, decision.clone())]);
        } else {
            self.metrics.decision(&decision);
        }
        tracing::info!(payment_id = %payment_id, status = ?decision.status, "payment decided");
        Ok(Submitted {
            payment_id,
            decision,
            replayed: false,
        })
    }

    /// The stored answer for a key already used: the same decision for the same payload,
    /// [`ServiceError::KeyReused`] for another; `None` for a key not used.
    async fn replay(
        &self,
        principal: &str,
        key: &str,
        fingerprint: &[u8; 32],
    ) -> Result<Option<Submitted>, ServiceError> {
        let Some(record) = self.store.idempotency(principal, key).await? else {
            return Ok(None);
        };
        self.replay_record(record, fingerprint).await.map(Some)
    }

    /// The stored answer for a key's record: the same decision for the same payload,
    /// [`ServiceError::KeyReused`] for another.
    async fn replay_record(
        &self,
        record: IdempotencyRecord,
        fingerprint: &[u8; 32],
    ) -> Result<Submitted, ServiceError> {
        if &record.fingerprint != fingerprint {
            return Err(ServiceError::KeyReused {
                previous: record.payment_id,
            });
        }
        let stored = self
            .store
            .payment(&record.payment_id)
            .await?
            .ok_or_else(|| {
                ServiceError::internal("an idempotency record names a missing payment")
            })?;
        self.metrics.replay();
        Ok(Submitted {
            payment_id: record.payment_id,
            decision: stored.decision,
            replayed: true,
        })
    }
}

/// A new payment id: `pay_`, the time in ms (so ids sort by arrival), 80 random bits.
pub fn new_payment_id() -> Result<String, ServiceError> {
    let mut random = [0u8; 10];
    getrandom::fill(&mut random).map_err(ServiceError::internal)?;
    Ok(format!(
        "pay_{:012x}{}",
        now_unix_ms(),
        crate::registry::hex(&random)
    ))
}

/// A claim held in the store, let go of if its request ends without reaching the commit
/// (an error, a timeout, a cancelled request): a retry need not wait for the lease.
struct Held {
    store: Arc<dyn Store>,
    principal: String,
    key: String,
    token: Option<i64>,
}

impl Held {
    fn new(store: &Arc<dyn Store>, principal: &str, key: &str, token: Option<i64>) -> Held {
        Held {
            store: Arc::clone(store),
            principal: principal.to_owned(),
            key: key.to_owned(),
            token,
        }
    }

    /// The commit ended the claim: nothing to let go of.
    fn ended(&mut self) {
        self.token = None;
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        let Some(token) = self.token.take() else {
            return;
        };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let store = Arc::clone(&self.store);
        let (principal, key) = (
            std::mem::take(&mut self.principal),
            std::mem::take(&mut self.key),
        );
        runtime.spawn(async move {
            if let Err(error) = store.release(&principal, &key, token).await {
                tracing::warn!(
                    "an idempotency claim was not released (its lease ends it): {error}"
                );
            }
        });
    }
}

/// A principal's name and a key.
type ScopedKey = (Arc<str>, String);

/// Keys held by requests being decided right now in this process.
#[derive(Default)]
pub struct InFlight {
    held: Arc<Mutex<HashSet<ScopedKey>>>,
}

/// A held key, released when dropped (also when the request is cancelled or times out).
pub struct LocalHold {
    held: Arc<Mutex<HashSet<ScopedKey>>>,
    entry: ScopedKey,
}

impl InFlight {
    /// Holds `key` of `principal`, or `None` if another request holds it.
    pub fn claim(&self, principal: &Arc<str>, key: &str) -> Option<LocalHold> {
        let entry = (Arc::clone(principal), key.to_owned());
        let mut held = self.held.lock().unwrap_or_else(|p| p.into_inner());
        if !held.insert(entry.clone()) {
            return None;
        }
        Some(LocalHold {
            held: Arc::clone(&self.held),
            entry,
        })
    }
}

impl Drop for LocalHold {
    fn drop(&mut self) {
        self.held
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&self.entry);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_is_held_once_per_principal_until_released() {
        let in_flight = InFlight::default();
        let (a, b): (Arc<str>, Arc<str>) = (Arc::from("a"), Arc::from("b"));
        let claim = in_flight.claim(&a, "k").unwrap();
        assert!(in_flight.claim(&a, "k").is_none());
        assert!(
            in_flight.claim(&b, "k").is_some(),
            "keys are scoped per API key"
        );
        drop(claim);
        assert!(in_flight.claim(&a, "k").is_some());
    }
}
