//! `/v1/payments`: submit a payment, read one, list them.

use std::sync::Arc;

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::auth::{DecisionView, Principal, ReviewView};
use super::error::{ApiError, ErrorBody};
use super::{AppState, idempotency};
use crate::config::Role;
use crate::model::{Payment, Status, final_status};
use crate::service::ServiceError;
use crate::store::{ListQuery, PaymentSummary};

/// The header that says an answer is the stored decision of an earlier request.
pub const REPLAYED: &str = "idempotent-replayed";

/// Submit one payment (the canonical JSON payment, as `payrules parse` prints it) and
/// get its decision; or a whole ISO 20022 pacs.008 or pain.001 (`application/xml`) and get
/// its status report — a pacs.002 for a pacs.008, a pain.002 for a pain.001 — (or, with
/// `Accept: application/json`, every decision). The decisions are durable before the
/// answer is sent.
#[utoipa::path(
    post,
    path = "/v1/payments",
    tag = "payments",
    request_body(
        description = "A canonical JSON payment, or an ISO 20022 pacs.008 / pain.001 message",
        content((Payment = "application/json"), (String = "application/xml")),
    ),
    params(
        ("Idempotency-Key" = String, Header, min_length = 1, max_length = 255,
            description = "Unique per payment: a retry with the same key and payload gets the same decision. 1 to 255 visible ASCII characters, bare or quoted (\"...\"). Refused when missing on a JSON submission; with XML the message's MsgId is the key and this header is not read."),
    ),
    responses(
        (status = 201, description = "Decided and stored: the decision (JSON: the client's view for a submitter, whole for a key that is also auditor or operator) or the status report (XML): pacs.002.001.10 for a pacs.008, pain.002.001.10 for a pain.001",
            content((DecisionView = "application/json"), (String = "application/xml")),
            headers(("Location" = String, description = "The payment's URL (JSON submissions)"))),
        (status = 200, description = "A retry: the decision or report stored under this key or MsgId",
            content((DecisionView = "application/json"), (String = "application/xml")),
            headers(("Idempotent-Replayed" = String, description = "`true`"))),
        (status = 400, description = "Malformed JSON, a message that is not a readable pacs.008 or pain.001, or a missing or invalid Idempotency-Key", body = ErrorBody),
        (status = 401, description = "No API key, or not a valid one", body = ErrorBody),
        (status = 403, description = "The key lacks the submitter role", body = ErrorBody),
        (status = 409, description = "A request with this key or MsgId is being decided right now", body = ErrorBody),
        (status = 413, description = "The body is larger than allowed", body = ErrorBody),
        (status = 415, description = "The body is neither application/json nor application/xml", body = ErrorBody),
        (status = 429, description = "The API key is past its rate; retry after `Retry-After`", body = ErrorBody),
        (status = 422, description = "A field is invalid, the message contradicts itself, or the key or MsgId was used for another payload", body = ErrorBody),
        (status = 503, description = "Overloaded or shutting down; retry after `Retry-After`", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
pub async fn submit(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    principal.require(&[Role::Submitter])?;
    if let BodyKind::Xml = body_kind(&headers)? {
        return super::messages::submit(&state, &principal, &headers, body).await;
    }
    let key = idempotency::key(&headers)?;
    let body = read_body(body, state.limits.body_bytes_max).await?;
    let text = std::str::from_utf8(&body).map_err(|e| {
        ApiError::bad_request("body_not_utf8", format!("the body is not UTF-8: {e}"))
    })?;
    let payment = Payment::from_json(text)?;
    let submitted = state
        .service
        .submit_payment(&principal.name, &key, payment)
        .await
        .map_err(|error| match error {
            ServiceError::InFlight => ApiError::new(
                StatusCode::CONFLICT,
                "idempotency_key_in_flight",
                "a request with this Idempotency-Key is being decided; retry to get its decision",
            )
            .field("Idempotency-Key")
            .retry_after(1),
            ServiceError::KeyReused { previous } => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "idempotency_key_reused",
                format!(
                    "this Idempotency-Key was used for another payment ({previous}); use a new key"
                ),
            )
            .field("Idempotency-Key"),
            other => other.into(),
        })?;
    let status = if submitted.replayed {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    let mut response = (status, Json(principal.view(submitted.decision))).into_response();
    let headers = response.headers_mut();
    if submitted.replayed {
        headers.insert(REPLAYED, HeaderValue::from_static("true"));
    }
    if let Ok(location) = HeaderValue::from_str(&format!("/v1/payments/{}", submitted.payment_id)) {
        headers.insert(header::LOCATION, location);
    }
    Ok(response)
}

/// What a submission's body is.
enum BodyKind {
    /// One canonical JSON payment.
    Json,
    /// An ISO 20022 pacs.008 or pain.001 message.
    Xml,
}

/// The kind of body declared by `Content-Type`; anything else is refused.
fn body_kind(headers: &HeaderMap) -> Result<BodyKind, ApiError> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let media_type = content_type.split(';').next().unwrap_or("").trim();
    if media_type.eq_ignore_ascii_case("application/json") {
        return Ok(BodyKind::Json);
    }
    if media_type.eq_ignore_ascii_case("application/xml")
        || media_type.eq_ignore_ascii_case("text/xml")
    {
        return Ok(BodyKind::Xml);
    }
    Err(ApiError::new(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "content_type_unsupported",
        format!(
            "send a payment as Content-Type: application/json or an ISO 20022 message as \
             application/xml (got {:?})",
            if content_type.is_empty() {
                "nothing"
            } else {
                content_type
            }
        ),
    )
    .field("Content-Type"))
}

/// Reads a body of at most `max` bytes.
pub(super) async fn read_body(body: Body, max: usize) -> Result<Bytes, ApiError> {
    axum::body::to_bytes(body, max).await.map_err(|error| {
        let too_large = std::error::Error::source(&error)
            .is_some_and(|source| source.is::<http_body_util::LengthLimitError>());
        if too_large {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "body_too_large",
                format!("the body is larger than the {max} bytes allowed"),
            )
        } else {
            ApiError::bad_request("body_unreadable", "the body could not be read to its end")
        }
    })
}

/// Read one payment, its decision, its review if it was held and reviewed, and its final
/// status. Submitters see the payments they submitted; auditors and reviewers see all.
#[utoipa::path(
    get,
    path = "/v1/payments/{id}",
    tag = "payments",
    params(("id" = String, Path, max_length = 64, pattern = "^pay_[0-9a-f]+$",
        description = "The payment id from the submission")),
    responses(
        (status = 200, description = "The payment, its decision and review (whole for auditors and reviewers, the client's view for submitters) and its final status", body = PaymentView),
        (status = 401, description = "No valid API key", body = ErrorBody),
        (status = 403, description = "Not a submitter, auditor or reviewer", body = ErrorBody),
        (status = 404, description = "No such payment (or not this key's; for a submitter, also one whose personal data was erased)", body = ErrorBody),
        (status = 410, description = "Its personal data was erased at the end of its retention (auditors and reviewers)", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
pub async fn get(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    Path(id): Path<String>,
) -> Result<Json<PaymentView>, ApiError> {
    principal.require(&[Role::Submitter, Role::Auditor, Role::Reviewer])?;
    let not_found = || ApiError::not_found("payment_not_found", format!("no payment {id}"));
    if id.len() > 64 {
        return Err(not_found());
    }
    let sees_all = principal.has(Role::Auditor) || principal.has(Role::Reviewer);
    let stored = match state.service.payment(&id).await {
        Ok(stored) => stored.ok_or_else(not_found)?,
        // Whose it was went with it: a submitter is told no more than of another's.
        Err(ServiceError::Erased) if !sees_all => return Err(not_found()),
        Err(error) => return Err(error.into()),
    };
    if !sees_all && stored.submitted_by != *principal.name {
        return Err(not_found());
    }
    Ok(Json(PaymentView {
        final_status: final_status(
            stored.decision.status,
            stored.review.as_ref().map(|r| r.verdict),
        ),
        review: stored.review.map(|review| principal.view_review(review)),
        payment_id: stored.payment_id,
        received_at_unix_ms: stored.received_at_unix_ms,
        submitted_by: stored.submitted_by,
        payment: stored.payment,
        decision: principal.view(stored.decision),
    }))
}

/// Decide a stored payment again with the exact rule set that decided it (its kept copy,
/// by version), at its recorded instant, with the velocity figures of that instant, and
/// say whether the decision is the same — answer, and each rule's version, answer, fuel
/// and logs — or what differs.
#[utoipa::path(
    get,
    path = "/v1/payments/{id}/reproduction",
    tag = "payments",
    params(("id" = String, Path, max_length = 64, pattern = "^pay_[0-9a-f]+$",
        description = "The payment id from the submission")),
    responses(
        (status = 200, description = "Reproduced: the same decision, or the differences", body = crate::service::reproduce::Reproduction),
        (status = 401, description = "No valid API key", body = ErrorBody),
        (status = 403, description = "Neither an auditor nor a reviewer", body = ErrorBody),
        (status = 404, description = "No such payment (`payment_not_found`), or the rule set that decided it is not kept on this host (`rule_set_not_kept`)", body = ErrorBody),
        (status = 410, description = "Its personal data was erased at the end of its retention", body = ErrorBody),
        (status = 422, description = "The kept rule set does not load (`rule_set_rejected`)", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
pub async fn reproduction(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    Path(id): Path<String>,
) -> Result<Json<crate::service::reproduce::Reproduction>, ApiError> {
    use crate::service::reproduce::ReproduceError;
    principal.require(&[Role::Auditor, Role::Reviewer])?;
    if id.len() > 64 {
        return Err(ApiError::not_found(
            "payment_not_found",
            format!("no payment {id}"),
        ));
    }
    match state.service.reproduce(&id).await {
        Ok(reproduction) => Ok(Json(reproduction)),
        Err(ReproduceError::Service(ServiceError::NotFound)) => Err(ApiError::not_found(
            "payment_not_found",
            format!("no payment {id}"),
        )),
        Err(ReproduceError::Service(error)) => Err(error.into()),
        Err(error @ ReproduceError::NotKept(_)) => {
            Err(ApiError::not_found("rule_set_not_kept", error.to_string()))
        }
        Err(error @ ReproduceError::DoesNotLoad(_)) => Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "rule_set_rejected",
            error.to_string(),
        )),
    }
}

/// A stored payment with its decision, as the key reading it may see it.
#[derive(Debug, Serialize, ToSchema)]
pub struct PaymentView {
    /// The host's id.
    pub payment_id: String,
    /// When it arrived, ms since the Unix epoch.
    pub received_at_unix_ms: i64,
    /// The API key that submitted it.
    pub submitted_by: String,
    /// The payment as validated.
    pub payment: Payment,
    /// Its decision: whole for auditors, operators and reviewers, the client's view for
    /// submitters.
    pub decision: DecisionView,
    /// Where it ended: the decision's status, or for a held payment that was reviewed,
    /// the review's (`accepted` when approved, `rejected` when rejected).
    pub final_status: Status,
    /// Its review, once a held payment was reviewed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub review: Option<ReviewView>,
}

/// The query of a listing.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ListParams {
    /// Only payments with this status: `accepted`, `rejected` or `pending_review`.
    #[param(value_type = Option<Status>)]
    status: Option<String>,
    /// Only payments received at or after this instant (RFC 3339 in UTC, e.g.
    /// `2026-11-22T08:00:00Z`).
    #[param(format = DateTime)]
    since: Option<String>,
    /// Only payments received before this instant (RFC 3339 in UTC).
    #[param(format = DateTime)]
    until: Option<String>,
    /// Only payments with this end-to-end id.
    #[param(min_length = 1, max_length = 35)]
    end_to_end_id: Option<String>,
    /// Only payments a rule of this name fired in: it rejected, held, scored above zero,
    /// routed, declined or failed.
    #[param(pattern = "^[A-Za-z0-9_-]{1,64}$")]
    rule: Option<String>,
    /// Only payments decided by this rule-set version (or one starting with these hex
    /// digits).
    #[param(pattern = "^[0-9a-f]{4,64}$")]
    rule_set_version: Option<String>,
    /// At most this many (1 to 500; 50 when absent).
    #[param(minimum = 1, maximum = 500)]
    limit: Option<u32>,
    /// The `next_cursor` of the previous page.
    #[param(pattern = "^[1-9][0-9]*$")]
    cursor: Option<String>,
}

/// A page of payments, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct PaymentPage {
    /// The payments.
    pub payments: Vec<PaymentSummary>,
    /// Pass as `cursor` for the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// The default page size.
pub(super) const LIST_LIMIT_DEFAULT: u32 = 50;

/// List payments, newest first, with cursor pagination. Submitters see the payments
/// they submitted; auditors see all.
#[utoipa::path(
    get,
    path = "/v1/payments",
    tag = "payments",
    params(ListParams),
    responses(
        (status = 200, description = "A page of payments", body = PaymentPage),
        (status = 400, description = "A query parameter is invalid", body = ErrorBody),
        (status = 401, description = "No valid API key", body = ErrorBody),
        (status = 403, description = "Neither submitter nor auditor", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
pub async fn list(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    params: Result<Query<ListParams>, QueryRejection>,
) -> Result<Json<PaymentPage>, ApiError> {
    principal.require(&[Role::Submitter, Role::Auditor])?;
    let params = super::query::params(params)?;
    let status = params
        .status
        .as_deref()
        .map(|text| {
            serde_json::from_value::<Status>(serde_json::Value::String(text.to_owned())).map_err(
                |_| {
                    ApiError::bad_request(
                        "status_invalid",
                        "status must be accepted, rejected or pending_review",
                    )
                    .field("status")
                },
            )
        })
        .transpose()?;
    let since_unix_ms = params
        .since
        .as_deref()
        .map(|text| super::query::instant(text, "since"))
        .transpose()?;
    let limit = super::query::limit(params.limit, LIST_LIMIT_DEFAULT)?;
    let cursor = params
        .cursor
        .as_deref()
        .map(super::query::cursor)
        .transpose()?;
    let until_unix_ms = params
        .until
        .as_deref()
        .map(|text| super::query::instant(text, "until"))
        .transpose()?;
    let end_to_end_id = params
        .end_to_end_id
        .as_deref()
        .map(super::query::end_to_end_id)
        .transpose()?;
    let rule_fired = params
        .rule
        .as_deref()
        .map(super::query::rule_name)
        .transpose()?;
    let rule_set_version = params
        .rule_set_version
        .as_deref()
        .map(super::query::rule_set_version)
        .transpose()?;
    let submitted_by = (!principal.has(Role::Auditor)).then(|| principal.name.to_string());
    let page = state
        .service
        .list(ListQuery {
            status,
            since_unix_ms,
            until_unix_ms,
            submitted_by,
            end_to_end_id,
            rule_set_version,
            rule_fired,
            cursor,
            limit,
        })
        .await?;
    Ok(Json(PaymentPage {
        payments: page.payments,
        next_cursor: page.next_cursor.map(|c| c.to_string()),
    }))
}
