//! Review: `GET /v1/reviews` (the queue of held payments, and those resolved) and
//! `POST /v1/payments/{id}/review` (a reviewer's verdict). The flow is the service's
//! ([`crate::service::reviews`]); this reads and bounds the requests and maps the answers.

use std::sync::Arc;

use axum::Json;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::AppState;
use super::auth::Principal;
use super::error::{ApiError, ErrorBody};
use super::payments::LIST_LIMIT_DEFAULT;
use crate::config::Role;
use crate::model::{Reason, Review, Verdict};
use crate::service::reviews::{NOTE_CHARS_MAX, ReviewRequest};
use crate::store::{PaymentSummary, ReviewQuery, ReviewState};

/// A reviewer's verdict.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReviewBody {
    /// `approve` (the payment goes ahead) or `reject`.
    pub verdict: Verdict,
    /// An ISO 20022 external status reason code (ExternalStatusReason1Code, e.g. `AG01`,
    /// `RR04`, `FRAD`): required to reject.
    #[schema(min_length = 4, max_length = 4, pattern = "^[A-Z0-9]{4}$")]
    pub reason_code: Option<String>,
    /// A note for the record (at most 2,000 characters; line breaks and tabs are the only
    /// control characters allowed). Shown to reviewers and auditors, never to the
    /// submitter; the audit log keeps its sha256.
    #[schema(max_length = 2000)]
    pub note: Option<String>,
}

/// A review as recorded, with the final status it gives the payment.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReviewAnswer {
    /// The review.
    pub review: Review,
    /// The payment's final status: `accepted` (approved) or `rejected`.
    pub final_status: crate::model::Status,
}

/// Resolve a held payment: approve it, or reject it with an ISO 20022 reason code. The
/// rules' decision stays as made; the review is recorded beside it with an audit entry,
/// in one transaction. A payment is reviewed once: a second, different verdict is 409
/// (the same verdict sent again by the same reviewer gets the recorded review back, 200).
#[utoipa::path(
    post,
    path = "/v1/payments/{id}/review",
    tag = "reviews",
    params(("id" = String, Path, max_length = 64, pattern = "^pay_[0-9a-f]+$",
        description = "The held payment's id")),
    request_body = ReviewBody,
    responses(
        (status = 201, description = "Recorded", body = ReviewAnswer,
            headers(("Location" = String, description = "The payment's URL"))),
        (status = 200, description = "The same verdict by the same reviewer, recorded before", body = ReviewAnswer),
        (status = 400, description = "The body is not a review", body = ErrorBody),
        (status = 401, description = "No valid API key", body = ErrorBody),
        (status = 403, description = "Not a reviewer (`role_required`), or four eyes: this key submitted the payment (`four_eyes_own_payment`)", body = ErrorBody),
        (status = 404, description = "No such payment", body = ErrorBody),
        (status = 409, description = "The payment was not held for review (`payment_not_held`), or was reviewed already (`payment_already_reviewed`)", body = ErrorBody),
        (status = 422, description = "A reject without a reason code (`reason_code_required`), a code not in the ISO list (`reason_code_invalid`), a note too long or with control characters", body = ErrorBody),
        (status = 503, description = "The store is unavailable; retry", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
pub async fn review(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    Path(id): Path<String>,
    body: Result<Json<ReviewBody>, JsonRejection>,
) -> Result<Response, ApiError> {
    principal.require(&[Role::Reviewer])?;
    let Json(body) =
        body.map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "invalid_body", e.body_text()))?;
    if id.len() > 64 {
        return Err(ApiError::not_found("payment_not_found", "no such payment"));
    }
    // Bounded before anything else reads it (the service counts characters).
    if body
        .note
        .as_ref()
        .is_some_and(|n| n.len() > NOTE_CHARS_MAX * 4)
    {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "note_too_long",
            format!("the note has more than {NOTE_CHARS_MAX} characters"),
        )
        .field("note"));
    }
    let reviewed = state
        .service
        .review_payment(
            &principal.name,
            &id,
            ReviewRequest {
                verdict: body.verdict,
                reason_code: body.reason_code,
                note: body.note,
            },
        )
        .await?;
    let status = if reviewed.replayed {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    let final_status = crate::model::final_status(
        crate::model::Status::PendingReview,
        Some(reviewed.review.verdict),
    );
    let location = format!("/v1/payments/{}", reviewed.review.payment_id);
    let answer = ReviewAnswer {
        review: reviewed.review,
        final_status,
    };
    Ok((status, [(header::LOCATION, location)], Json(answer)).into_response())
}

/// Which held payments to list.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct QueueParams {
    /// `open` (not reviewed yet: the queue, oldest first; the default) or `resolved`
    /// (reviewed or expired, the most recently reviewed first).
    #[param(pattern = "^(open|resolved)$")]
    status: Option<String>,
    /// Only payments submitted by this API key.
    #[param(max_length = 64)]
    submitted_by: Option<String>,
    /// Only payments received at or after this instant (RFC 3339 in UTC).
    #[param(format = DateTime)]
    since: Option<String>,
    /// At most this many (1 to 500; 50 when absent).
    #[param(minimum = 1, maximum = 500)]
    limit: Option<u32>,
    /// The `next_cursor` of the previous page.
    #[param(pattern = "^[1-9][0-9]*$")]
    cursor: Option<String>,
}

/// A held payment in the queue.
#[derive(Debug, Serialize, ToSchema)]
pub struct QueueItem {
    /// The payment (its final status is `pending_review` while open).
    #[serde(flatten)]
    pub payment: PaymentSummary,
    /// Why the rules held it.
    pub reasons: Vec<Reason>,
    /// The sha256 of its decision as stored (a review records it).
    pub decision_sha256: String,
    /// Its review, once resolved.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub review: Option<Review>,
    /// When nobody reviewing it means payrules rejects it, ms since the Unix epoch
    /// (open payments only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deadline_unix_ms: Option<i64>,
}

/// A page of held payments.
#[derive(Debug, Serialize, ToSchema)]
pub struct QueuePage {
    /// The payments.
    pub payments: Vec<QueueItem>,
    /// Pass as `cursor` for the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// The review queue: payments the rules held, not reviewed yet, oldest first, each with
/// why it was held and its deadline; or, with `status=resolved`, those reviewed.
#[utoipa::path(
    get,
    path = "/v1/reviews",
    tag = "reviews",
    params(QueueParams),
    responses(
        (status = 200, description = "A page of held payments", body = QueuePage),
        (status = 400, description = "A query parameter is invalid", body = ErrorBody),
        (status = 401, description = "No valid API key", body = ErrorBody),
        (status = 403, description = "Neither a reviewer nor an auditor", body = ErrorBody),
        (status = 503, description = "The store is unavailable; retry", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
pub async fn queue(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    params: Result<Query<QueueParams>, QueryRejection>,
) -> Result<Json<QueuePage>, ApiError> {
    principal.require(&[Role::Reviewer, Role::Auditor])?;
    let params = super::query::params(params)?;
    let state_asked = match params.status.as_deref() {
        None | Some("open") => ReviewState::Open,
        Some("resolved") => ReviewState::Resolved,
        Some(_) => {
            return Err(
                ApiError::bad_request("status_invalid", "status must be open or resolved")
                    .field("status"),
            );
        }
    };
    if params.submitted_by.as_ref().is_some_and(|s| s.len() > 64) {
        return Err(ApiError::bad_request(
            "submitted_by_invalid",
            "submitted_by names an API key: at most 64 characters",
        )
        .field("submitted_by"));
    }
    let query = ReviewQuery {
        state: state_asked,
        submitted_by: params.submitted_by,
        since_unix_ms: params
            .since
            .as_deref()
            .map(|text| super::query::instant(text, "since"))
            .transpose()?,
        received_before_unix_ms: None,
        cursor: params
            .cursor
            .as_deref()
            .map(super::query::cursor)
            .transpose()?,
        limit: super::query::limit(params.limit, LIST_LIMIT_DEFAULT)?,
    };
    let page = state.service.reviews(query).await?;
    let deadline_ms =
        i64::try_from(state.service.review_policy().deadline.as_millis()).unwrap_or(i64::MAX);
    Ok(Json(QueuePage {
        payments: page
            .items
            .into_iter()
            .map(|item| QueueItem {
                deadline_unix_ms: item
                    .review
                    .is_none()
                    .then(|| item.summary.received_at_unix_ms.saturating_add(deadline_ms)),
                payment: item.summary,
                reasons: item.reasons,
                decision_sha256: item.decision_sha256,
                review: item.review,
            })
            .collect(),
        next_cursor: page.next_cursor.map(|c| c.to_string()),
    }))
}
