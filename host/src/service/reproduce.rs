//! Reproducing a past decision: a stored payment decided again by the exact rule set that
//! decided it — the kept copy of its version (`payrules-rule-sets/`), its components from
//! the live set or the code cache — at its recorded instant, with the velocity figures as
//! they stood then (the payments accepted before it, and held payments approved before
//! it, over the longest window), and compared rule by rule with what was recorded. Same
//! code, same input, same instant: the same decision, or the differences say where not.

use std::sync::Arc;

use serde::Serialize;

use super::{Service, ServiceError};
use crate::compare::differences;
use crate::model::Decision;
use crate::pipeline::Pipeline;
use crate::registry::kept::KEPT_SETS_MAX;
use crate::velocity::{VelocityBook, WINDOW_SECONDS_MAX};

/// A decision reproduced.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Reproduction {
    /// The payment.
    pub payment_id: String,
    /// The rule set that decided it, and decided it again.
    pub rule_set_version: String,
    /// Whether the reproduction gives the recorded decision (answer, and each rule's
    /// version, answer, fuel and logs).
    pub same: bool,
    /// What differs, if anything.
    pub differences: Vec<String>,
    /// How many accepted (or approved) payments the velocity figures held before it.
    pub velocity_payments: usize,
    /// The decision as recorded.
    pub recorded: Decision,
    /// The decision as reproduced (times are this run's).
    pub reproduced: Decision,
}

/// Why a decision could not be reproduced.
#[derive(Debug, thiserror::Error)]
pub enum ReproduceError {
    /// The rule set that decided it is not kept on this host.
    #[error(
        "the rule set {0} that decided it is not kept on this host (the {KEPT_SETS_MAX} sets \
         most recently live or tried as a canary are), so it cannot be decided again by the \
         same rules"
    )]
    NotKept(String),
    /// The kept set does not load (altered, or its vectors fail now).
    #[error("{0}")]
    DoesNotLoad(String),
    /// The payment is missing, erased, or the store failed.
    #[error(transparent)]
    Service(#[from] ServiceError),
}

impl Service {
    /// Decides the stored payment `payment_id` again with the rule set that decided it,
    /// at its recorded instant, with the velocity figures of that instant, and compares.
    /// Blocking work (the store's history, loading, deciding) on a blocking thread.
    pub async fn reproduce(&self, payment_id: &str) -> Result<Reproduction, ReproduceError> {
        let stored = self
            .store
            .payment(payment_id)
            .await
            .map_err(ServiceError::from)?
            .ok_or(ServiceError::NotFound)?;
        let recorded = stored.decision;
        let version = recorded.rule_set_version.clone();
        if self
            .rules
            .kept()
            .and_then(|k| k.path_of(&version))
            .is_none()
        {
            return Err(ReproduceError::NotKept(version));
        }
        let store = Arc::clone(&self.store);
        let rules = Arc::clone(&self.rules);
        let payment = stored.payment;
        let id = payment_id.to_owned();
        tokio::task::spawn_blocking(move || {
            let set = rules
                .load_kept(&version)
                .map_err(|e| ReproduceError::DoesNotLoad(e.to_string()))?;
            let at = recorded.decided_at_unix_ms;
            let window_ms = i64::from(WINDOW_SECONDS_MAX) * 1000;
            let history = store
                .accepted_since(at.saturating_sub(window_ms))
                .map_err(ServiceError::from)?;
            // What counted before it: accepted (or approved) earlier, or in the same
            // millisecond but listed before it; never the payment itself.
            let velocity = Arc::new(VelocityBook::new());
            let mut counted = 0;
            let mut passed_it = false;
            for (other, payment, decided_at) in &history.payments {
                passed_it |= *other == id;
                if *other != id && (*decided_at < at || (*decided_at == at && !passed_it)) {
                    velocity.record(payment, *decided_at);
                    counted += 1;
                }
            }
            let pipeline = Pipeline::new(Arc::clone(rules.runtime()), velocity);
            let mut reproduced = pipeline.evaluate(&set, &payment, &id, at);
            reproduced.canary = recorded.canary;
            let differences = differences(&recorded, &reproduced);
            Ok(Reproduction {
                payment_id: id,
                rule_set_version: version,
                same: differences.is_empty(),
                differences,
                velocity_payments: counted,
                recorded,
                reproduced,
            })
        })
        .await
        .map_err(|e| ServiceError::internal(format!("the reproduction failed: {e}")))?
    }
}
