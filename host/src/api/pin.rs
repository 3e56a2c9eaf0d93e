//! `POST /v1/rules/shadow/pins`: a divergence between the shadow and the live set, pinned
//! as a test vector case for the rule whose answers differed.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::extract::rejection::JsonRejection;
use axum::http::StatusCode;
use serde::Deserialize;
use utoipa::ToSchema;

use super::AppState;
use super::auth::Principal;
use super::error::{ApiError, ErrorBody};
use crate::config::Role;
use crate::service::pin::{PinError, PinRequest, Pinned, Side};

/// What to pin.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PinBody {
    /// The payment where the shadow set's answer differed.
    pub payment_id: String,
    /// The rule whose answers differed.
    pub rule: String,
    /// Which answer the case expects: `shadow` (the new version is right) or `live` (it
    /// is a regression).
    pub expect: Side,
    /// The payment as submitted, personal data and all (auditors only); by default its
    /// personal data is replaced by pseudonyms of the same shape.
    #[serde(default)]
    pub personal_data: bool,
}

impl From<PinError> for ApiError {
    fn from(error: PinError) -> Self {
        let message = error.to_string();
        let unprocessable = |code| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, code, &message);
        match error {
            PinError::NoShadow => ApiError::not_found("no_shadow", message),
            PinError::NotFound => {
                ApiError::not_found("payment_not_found", message).field("payment_id")
            }
            PinError::NotShadowed(_) => {
                ApiError::not_found("not_shadowed", message).field("payment_id")
            }
            PinError::NoSuchRule { .. } => {
                ApiError::not_found("rule_not_found", message).field("rule")
            }
            PinError::Agreed { .. } => unprocessable("rule_answers_agree").field("rule"),
            PinError::DoesNotReproduce { .. } => unprocessable("pin_does_not_reproduce"),
            PinError::NeedsPersonalData { .. } => unprocessable("pin_needs_personal_data"),
            PinError::Service(error) => error.into(),
            PinError::Failed(_) => {
                tracing::error!("pinning failed: {message}");
                ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "pin_failed", message)
            }
        }
    }
}

/// Pins a payment where the shadow set's rule answered otherwise than the live set's as a
/// test vector case (TOML, to append to the rule's `NAME.vectors.toml`): the payment at its
/// decision's instant, expecting the side named. The case is run through both versions of
/// the rule first: it must hold on that side and fail on the other, or nothing is pinned
/// (422, with both answers). The payment's personal data is replaced by pseudonyms unless
/// an auditor asks for `personal_data`; a divergence that turns on that data is refused
/// with `pin_needs_personal_data`. Every pin is an audit entry (`rules.vector_pinned`).
#[utoipa::path(
    post,
    path = "/v1/rules/shadow/pins",
    tag = "rules",
    request_body = PinBody,
    responses(
        (status = 200, description = "The case, checked on both sides", body = Pinned),
        (status = 400, description = "The body is not a pin request", body = ErrorBody),
        (status = 401, description = "No valid API key", body = ErrorBody),
        (status = 403, description = "Neither operator nor auditor; or personal data asked by a key that is not an auditor's", body = ErrorBody),
        (status = 404, description = "No shadow set, payment, shadow decision or rule", body = ErrorBody),
        (status = 422, description = "The rule's answers agree, or the case would not pin the divergence", body = ErrorBody),
        (status = 503, description = "The store is unavailable", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
pub async fn pin(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    body: Result<Json<PinBody>, JsonRejection>,
) -> Result<Json<Pinned>, ApiError> {
    principal.require(&[Role::Operator, Role::Auditor])?;
    let Json(body) =
        body.map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "invalid_body", e.body_text()))?;
    if body.personal_data {
        // The payment as submitted is for those who may read payments.
        principal.require(&[Role::Auditor])?;
    }
    let pinned = state
        .service
        .pin_divergence(PinRequest {
            payment_id: body.payment_id,
            rule: body.rule,
            expect: body.expect,
            personal_data: body.personal_data,
            actor: format!("api:{}", principal.name),
        })
        .await?;
    Ok(Json(pinned))
}
