//! Reviewing held payments: the queue, a reviewer's verdict, and the deadline.
//!
//! A payment the rules hold (`pending_review`) waits for one review. The rules' decision
//! is never changed: the review is a record of its own (reviewer, verdict, ISO 20022
//! reason, note, instant, the sha256 of the decision reviewed), stored with its audit
//! entry in one transaction, and the payment's final status follows from it. A payment
//! is reviewed once, whichever host two reviewers reach: the store's unique review per
//! payment decides, and the loser is told which review stands (a retry of the same
//! verdict by the same reviewer gets that review back, as an idempotent replay).
//!
//! An approved payment counts in the velocity figures from its approval on (on every
//! host: the others follow the approval's audit entry). A payment nobody reviewed within
//! `review.deadline_seconds` is rejected by payrules itself, audited as
//! `payment.review_expired`. With `review.four_eyes`, a key cannot review a payment it
//! submitted.

use std::sync::Arc;
use std::time::Duration;

use super::{Service, ServiceError};
use crate::model::reason_code::is_status_reason_code;
use crate::model::{Payment, Review, Status, Verdict};
use crate::store::{ReviewPage, ReviewQuery, ReviewState, SERVICE_ACTOR, StoreError, now_unix_ms};

/// The longest note a reviewer may leave, characters.
pub const NOTE_CHARS_MAX: usize = 2_000;
/// How many overdue payments the deadline rejects per sweep at most (the next sweep
/// takes the rest).
const EXPIRY_BATCH_MAX: u32 = 200;

/// How held payments are reviewed (from `[review]` in the config).
#[derive(Clone, Debug)]
pub struct ReviewPolicy {
    /// How long a held payment may wait for a review.
    pub deadline: Duration,
    /// The reason code of a payment rejected at the deadline.
    pub expiry_reason_code: String,
    /// Whether a key may not review what it submitted.
    pub four_eyes: bool,
}

impl Default for ReviewPolicy {
    fn default() -> Self {
        ReviewPolicy {
            deadline: Duration::from_secs(crate::config::REVIEW_DEADLINE_SECONDS_DEFAULT),
            expiry_reason_code: crate::config::REVIEW_EXPIRY_REASON_CODE_DEFAULT.to_owned(),
            four_eyes: false,
        }
    }
}

impl From<&crate::config::ReviewConfig> for ReviewPolicy {
    fn from(config: &crate::config::ReviewConfig) -> Self {
        ReviewPolicy {
            deadline: Duration::from_secs(config.deadline_seconds),
            expiry_reason_code: config.expiry_reason_code.clone(),
            four_eyes: config.four_eyes,
        }
    }
}

/// A reviewer's verdict on a held payment, as asked.
#[derive(Clone, Debug)]
pub struct ReviewRequest {
    /// Approve or reject.
    pub verdict: Verdict,
    /// The ISO 20022 external status reason code (required to reject).
    pub reason_code: Option<String>,
    /// A note for the record.
    pub note: Option<String>,
}

/// A review as recorded, and whether it was recorded by an earlier, identical request.
#[derive(Debug)]
pub struct Reviewed {
    /// The review.
    pub review: Review,
    /// Whether this is the review an identical earlier request recorded.
    pub replayed: bool,
}

impl ReviewRequest {
    /// Checks what the request says by itself: a reject has an ISO 20022 reason code, any
    /// reason code is one, and the note is bounded plain text.
    fn validate(&self) -> Result<(), ServiceError> {
        let invalid = |field, code, message: String| ServiceError::Invalid {
            field,
            code,
            message,
        };
        match (&self.reason_code, self.verdict) {
            (None, Verdict::Reject) => {
                return Err(invalid(
                    "reason_code",
                    "reason_code_required",
                    "a reject needs an ISO 20022 external status reason code (e.g. AG01, RR04, \
                     FRAD)"
                        .to_owned(),
                ));
            }
            (Some(code), _) if !is_status_reason_code(code) => {
                return Err(invalid(
                    "reason_code",
                    "reason_code_invalid",
                    format!(
                        "{:?} is not an ISO 20022 external status reason code (four capitals \
                         or digits from the ISO list, e.g. AG01, RR04, FRAD)",
                        code.chars().take(16).collect::<String>()
                    ),
                ));
            }
            _ => {}
        }
        if let Some(note) = &self.note {
            if note.chars().count() > NOTE_CHARS_MAX {
                return Err(invalid(
                    "note",
                    "note_too_long",
                    format!("the note has more than {NOTE_CHARS_MAX} characters"),
                ));
            }
            if note
                .chars()
                .any(|c| c.is_control() && c != '\n' && c != '\t')
            {
                return Err(invalid(
                    "note",
                    "note_invalid",
                    "the note holds control characters (only line breaks and tabs may be in it)"
                        .to_owned(),
                ));
            }
        }
        Ok(())
    }

    /// Whether `review` is what this request, from `reviewer`, would record.
    fn is_recorded_by(&self, review: &Review, reviewer: &str) -> bool {
        !review.expired
            && review.reviewer == reviewer
            && review.verdict == self.verdict
            && review.reason_code == self.reason_code
            && review.note == self.note
    }
}

impl Service {
    /// Records `reviewer`'s verdict on held payment `payment_id`.
    pub async fn review_payment(
        &self,
        reviewer: &str,
        payment_id: &str,
        request: ReviewRequest,
    ) -> Result<Reviewed, ServiceError> {
        request.validate()?;
        let stored = self
            .store
            .payment(payment_id)
            .await?
            .ok_or(ServiceError::NotFound)?;
        if let Some(review) = stored.review {
            return settled(review, &request, reviewer);
        }
        if stored.decision.status != Status::PendingReview {
            return Err(ServiceError::NotHeld {
                status: stored.decision.status,
            });
        }
        if self.review_policy.four_eyes && stored.submitted_by == reviewer {
            return Err(ServiceError::OwnPayment);
        }
        let review = Review {
            payment_id: stored.payment_id.clone(),
            verdict: request.verdict,
            reason_code: request.reason_code.clone(),
            note: request.note.clone(),
            reviewer: reviewer.to_owned(),
            reviewed_at_unix_ms: now_unix_ms(),
            decision_sha256: stored.decision_sha256.clone(),
            expired: false,
        };
        match self
            .record_review(review, stored.decision.status, Some(&stored.payment))
            .await
        {
            Ok(review) => Ok(Reviewed {
                review,
                replayed: false,
            }),
            // Another reviewer (on any host) was first: theirs stands.
            Err(ServiceError::AlreadyReviewed(_)) => {
                let stored = self
                    .store
                    .payment(payment_id)
                    .await?
                    .ok_or(ServiceError::NotFound)?;
                let review = stored.review.ok_or_else(|| {
                    ServiceError::internal("a payment reviewed already has no review")
                })?;
                settled(review, &request, reviewer)
            }
            Err(other) => Err(other),
        }
    }

    /// Commits a review of a payment decided `decided`; counts an approved `payment` in
    /// the velocity figures once stored (a rejection needs no payment).
    async fn record_review(
        &self,
        review: Review,
        decided: Status,
        payment: Option<&Payment>,
    ) -> Result<Review, ServiceError> {
        let approved = review.verdict == Verdict::Approve;
        // Followed by the other hosts; this one counts it itself once stored.
        let own = approved && self.store.shared();
        if own {
            self.following.expect([review.payment_id.as_str()]);
        }
        let committed = self.store.review(review.clone()).await;
        if own && committed.is_err() {
            self.following.forget([review.payment_id.as_str()]);
        }
        match committed {
            Ok(()) => {}
            Err(StoreError::AlreadyReviewed) => {
                return Err(ServiceError::AlreadyReviewed(Box::new(review)));
            }
            Err(StoreError::NotHeld) => {
                return Err(ServiceError::NotHeld { status: decided });
            }
            Err(error) => return Err(error.into()),
        }
        if let Some(payment) = payment.filter(|_| approved) {
            self.velocity.record(payment, review.reviewed_at_unix_ms);
        }
        self.metrics.review(review.verdict, review.expired);
        tracing::info!(
            payment_id = %review.payment_id,
            verdict = review.verdict.name(),
            reviewer = %review.reviewer,
            expired = review.expired,
            "payment reviewed"
        );
        Ok(review)
    }

    /// Held payments: the open queue (oldest first) or those reviewed.
    pub async fn reviews(&self, query: ReviewQuery) -> Result<ReviewPage, ServiceError> {
        Ok(self.store.reviews(query).await?)
    }

    /// The reviews of these payments (of those reviewed).
    pub async fn reviews_of(&self, payment_ids: &[String]) -> Result<Vec<Review>, ServiceError> {
        Ok(self.store.reviews_of(payment_ids).await?)
    }

    /// Rejects the held payments nobody reviewed within the deadline; returns how many.
    pub async fn expire_overdue_reviews(&self) -> Result<usize, ServiceError> {
        let deadline_ms =
            i64::try_from(self.review_policy.deadline.as_millis()).unwrap_or(i64::MAX);
        let page = self
            .store
            .reviews(ReviewQuery {
                state: ReviewState::Open,
                submitted_by: None,
                since_unix_ms: None,
                received_before_unix_ms: Some(now_unix_ms().saturating_sub(deadline_ms)),
                cursor: None,
                limit: EXPIRY_BATCH_MAX,
            })
            .await?;
        let mut expired = 0;
        for item in page.items {
            let payment_id = item.summary.payment_id;
            let review = Review {
                payment_id: payment_id.clone(),
                verdict: Verdict::Reject,
                reason_code: Some(self.review_policy.expiry_reason_code.clone()),
                note: Some(format!(
                    "not reviewed within {} of its decision",
                    humantime::format_duration(self.review_policy.deadline)
                )),
                reviewer: SERVICE_ACTOR.to_owned(),
                reviewed_at_unix_ms: now_unix_ms(),
                decision_sha256: item.decision_sha256,
                expired: true,
            };
            // A rejection: no velocity to count, so no payment to read.
            match self.record_review(review, item.summary.status, None).await {
                Ok(_) => expired += 1,
                // A reviewer (or another host's deadline) got there first.
                Err(ServiceError::AlreadyReviewed(_)) => {}
                Err(error) => return Err(error),
            }
        }
        Ok(expired)
    }

    /// Rejects, from now on, the held payments nobody reviews within the deadline,
    /// looking every tenth of the deadline (at most every 10 s, at least every 100 ms):
    /// a tokio task; call it on the runtime that serves.
    pub fn expire_unreviewed(self: &Arc<Self>) {
        let service = Arc::clone(self);
        let every = (self.review_policy.deadline / 10)
            .clamp(Duration::from_millis(100), Duration::from_secs(10));
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(every);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticks.tick().await;
                match service.expire_overdue_reviews().await {
                    Ok(0) => {}
                    Ok(expired) => {
                        tracing::info!(expired, "held payments rejected at the deadline")
                    }
                    Err(ServiceError::ShuttingDown) => return,
                    Err(error) => {
                        tracing::warn!("held payments past the deadline not rejected: {error}")
                    }
                }
            }
        });
    }
}

/// The answer to a review of a payment reviewed already: that review, as a replay, if this
/// request would have recorded it; else the conflict, naming the review that stands.
fn settled(
    review: Review,
    request: &ReviewRequest,
    reviewer: &str,
) -> Result<Reviewed, ServiceError> {
    if request.is_recorded_by(&review, reviewer) {
        return Ok(Reviewed {
            review,
            replayed: true,
        });
    }
    Err(ServiceError::AlreadyReviewed(Box::new(review)))
}
