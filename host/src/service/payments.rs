//! Submitting one payment: claim its idempotency key, replay or decide, commit, count.
//!
//! Idempotency follows the IETF `Idempotency-Key` draft: a key is scoped to the API key
//! that sent it; while a request holds it, a second request with it is refused at once
//! (never decided twice); once the first has committed, a retry with the same payload gets
//! the stored decision, and one with another payload is refused. The store keeps a keyed
//! hash of the canonical payload, never a second copy.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use super::{Service, ServiceError};
use crate::model::{Decision, Payment, Status};
use crate::store::{IdempotencyClaim, NewDecision, StoreError, now_unix_ms};

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
        if let Some(stored) = self.replay(principal, key, &fingerprint).await? {
            return Ok(stored);
        }
        let payment_id = new_payment_id()?;
        let received_at = now_unix_ms();
        let (payment, decision) = self
            .deciders
            .decide(self.rule_set(), payment, payment_id.clone(), received_at)
            .await
            .map_err(ServiceError::internal)?;
        // Kept for what counts the payment once it is stored.
        let kept = (decision.status == Status::Accepted || self.shadow.is_installed())
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
            },
        };
        match self.store.commit(record).await {
            Ok(()) => {}
            // Another host took the key between our look-up and our commit.
            Err(StoreError::KeyTaken) => {
                return self
                    .replay(principal, key, &fingerprint)
                    .await?
                    .ok_or_else(|| {
                        ServiceError::internal("an idempotency key was taken, then vanished")
                    });
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
        Ok(Some(Submitted {
            payment_id: record.payment_id,
            decision: stored.decision,
            replayed: true,
        }))
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

/// A principal's name and a key.
type ScopedKey = (Arc<str>, String);

/// Keys held by requests being decided right now in this process.
#[derive(Default)]
pub struct InFlight {
    held: Arc<Mutex<HashSet<ScopedKey>>>,
}

/// A held key, released when dropped (also when the request is cancelled or times out).
pub struct Claim {
    held: Arc<Mutex<HashSet<ScopedKey>>>,
    entry: ScopedKey,
}

impl InFlight {
    /// Holds `key` of `principal`, or `None` if another request holds it.
    pub fn claim(&self, principal: &Arc<str>, key: &str) -> Option<Claim> {
        let entry = (Arc::clone(principal), key.to_owned());
        let mut held = self.held.lock().unwrap_or_else(|p| p.into_inner());
        if !held.insert(entry.clone()) {
            return None;
        }
        Some(Claim {
            held: Arc::clone(&self.held),
            entry,
        })
    }
}

impl Drop for Claim {
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
