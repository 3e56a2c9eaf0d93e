//! `/v1/webhooks`: the endpoints events go to, what waits for each, the dead letters, and
//! redelivering them.

use std::sync::Arc;

use axum::Json;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Query, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::AppState;
use super::auth::Principal;
use super::error::{ApiError, ErrorBody};
use crate::config::Role;

/// An endpoint and its backlog.
#[derive(Debug, Serialize, ToSchema)]
pub struct EndpointView {
    /// Its name.
    pub name: String,
    /// Where events are POSTed.
    pub url: String,
    /// The event types it receives.
    pub events: Vec<String>,
    /// Deliveries still to make (some after a failed attempt).
    pub pending: u64,
    /// Deliveries given up on after their last attempt.
    pub dead: u64,
}

/// The endpoints.
#[derive(Debug, Serialize, ToSchema)]
pub struct EndpointsView {
    /// Each configured endpoint.
    pub endpoints: Vec<EndpointView>,
}

/// The webhook endpoints events are delivered to, each with how many deliveries wait and
/// how many were given up on.
#[utoipa::path(
    get,
    path = "/v1/webhooks",
    tag = "webhooks",
    responses(
        (status = 200, description = "The endpoints", body = EndpointsView),
        (status = 401, description = "No valid API key", body = ErrorBody),
        (status = 403, description = "Neither an operator nor an auditor", body = ErrorBody),
        (status = 503, description = "The store is unavailable", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
pub async fn endpoints(
    State(state): State<Arc<AppState>>,
    principal: Principal,
) -> Result<Json<EndpointsView>, ApiError> {
    principal.require(&[Role::Operator, Role::Auditor])?;
    let backlog = state.service.delivery_backlog().await?;
    let endpoints = state
        .service
        .webhooks()
        .endpoints()
        .iter()
        .map(|endpoint| {
            let counts = backlog.iter().find(|b| b.endpoint == endpoint.name);
            EndpointView {
                name: endpoint.name.clone(),
                url: endpoint.url(),
                events: endpoint.events().to_vec(),
                pending: counts.map_or(0, |c| c.pending),
                dead: counts.map_or(0, |c| c.dead),
            }
        })
        .collect();
    Ok(Json(EndpointsView { endpoints }))
}

/// Which dead letters to list.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct DeadLetterParams {
    /// Only this endpoint's.
    #[param(max_length = 64)]
    endpoint: Option<String>,
    /// At most this many (1 to 500; 50 when absent).
    #[param(minimum = 1, maximum = 500)]
    limit: Option<u32>,
    /// The `next_cursor` of the previous page.
    #[param(pattern = "^[1-9][0-9]*$")]
    cursor: Option<String>,
}

/// A delivery given up on.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeadLetterView {
    /// The endpoint.
    pub endpoint: String,
    /// The event's id.
    pub event_id: String,
    /// Its type.
    pub event_type: String,
    /// Its payment.
    pub payment_id: String,
    /// Attempts made.
    pub attempts: u32,
    /// When the last was made, ms since the Unix epoch.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_attempt_unix_ms: Option<i64>,
    /// Why the last failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

/// A page of dead letters.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeadLetterPage {
    /// The dead letters, oldest event first.
    pub dead_letters: Vec<DeadLetterView>,
    /// Pass as `cursor` for the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// The deliveries given up on after their last attempt, oldest event first: what a
/// receiver never got. `POST /v1/webhooks/redeliver` sends them again.
#[utoipa::path(
    get,
    path = "/v1/webhooks/dead-letters",
    tag = "webhooks",
    params(DeadLetterParams),
    responses(
        (status = 200, description = "A page of dead letters", body = DeadLetterPage),
        (status = 400, description = "A query parameter is invalid", body = ErrorBody),
        (status = 401, description = "No valid API key", body = ErrorBody),
        (status = 403, description = "Neither an operator nor an auditor", body = ErrorBody),
        (status = 503, description = "The store is unavailable", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
pub async fn dead_letters(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    params: Result<Query<DeadLetterParams>, QueryRejection>,
) -> Result<Json<DeadLetterPage>, ApiError> {
    principal.require(&[Role::Operator, Role::Auditor])?;
    let params = super::query::params(params)?;
    let limit = super::query::limit(params.limit, super::payments::LIST_LIMIT_DEFAULT)?;
    let after = params
        .cursor
        .as_deref()
        .map(super::query::cursor)
        .transpose()?
        .unwrap_or(0);
    let letters = state
        .service
        .dead_letters(params.endpoint.as_deref(), after, limit)
        .await?;
    let next_cursor = (letters.len() == limit as usize)
        .then(|| letters.last().map(|l| l.seq.to_string()))
        .flatten();
    Ok(Json(DeadLetterPage {
        dead_letters: letters
            .into_iter()
            .map(|l| DeadLetterView {
                endpoint: l.endpoint,
                event_id: l.event_id,
                event_type: l.event_type,
                payment_id: l.payment_id,
                attempts: l.attempts,
                last_attempt_unix_ms: l.last_attempt_ms,
                last_error: l.last_error,
            })
            .collect(),
        next_cursor,
    }))
}

/// What to send again.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RedeliverRequest {
    /// The endpoint (its name in the config).
    #[schema(min_length = 1, max_length = 64)]
    pub endpoint: String,
    /// One event's dead letter; absent: every dead letter of the endpoint.
    #[schema(max_length = 128)]
    pub event_id: Option<String>,
}

/// How many were made pending again.
#[derive(Debug, Serialize, ToSchema)]
pub struct Redelivered {
    /// Dead letters made pending again, due now.
    pub requeued: u64,
}

/// Send dead letters again (after the receiver is fixed): they become pending, due now,
/// their attempts counted from zero. Audited as `webhook.redelivered`.
#[utoipa::path(
    post,
    path = "/v1/webhooks/redeliver",
    tag = "webhooks",
    request_body = RedeliverRequest,
    responses(
        (status = 200, description = "Made pending again", body = Redelivered),
        (status = 400, description = "The body is not a redelivery", body = ErrorBody),
        (status = 401, description = "No valid API key", body = ErrorBody),
        (status = 403, description = "Not an operator", body = ErrorBody),
        (status = 404, description = "No endpoint of that name (`webhook_not_found`)", body = ErrorBody),
        (status = 503, description = "The store is unavailable", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
pub async fn redeliver(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    body: Result<Json<RedeliverRequest>, JsonRejection>,
) -> Result<Json<Redelivered>, ApiError> {
    principal.require(&[Role::Operator])?;
    let Json(request) =
        body.map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "invalid_body", e.body_text()))?;
    if state
        .service
        .webhooks()
        .endpoint(&request.endpoint)
        .is_none()
    {
        return Err(ApiError::not_found(
            "webhook_not_found",
            "no webhook endpoint of that name is configured",
        )
        .field("endpoint"));
    }
    if request.event_id.as_ref().is_some_and(|id| id.len() > 128) {
        return Err(ApiError::bad_request(
            "event_id_invalid",
            "an event id has at most 128 characters",
        )
        .field("event_id"));
    }
    let requeued = state
        .service
        .redeliver(
            &request.endpoint,
            request.event_id.as_deref(),
            &format!("api:{}", principal.name),
        )
        .await?;
    Ok(Json(Redelivered { requeued }))
}
