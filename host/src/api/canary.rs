//! `/v1/rules/canary`: a candidate rule set that decides a share of live traffic for real
//! (by debtor account), its figures beside the live set's, and the operator's steps —
//! start, change the share, promote, remove. A canary is also started by a `canary/`
//! subdirectory of the rules directory, which every reload looks at.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::extract::rejection::JsonRejection;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::AppState;
use super::auth::Principal;
use super::error::{ApiError, ErrorBody};
use crate::config::Role;
use crate::registry::canary::{ArmFigures, CanaryPolicy};
use crate::registry::live::ReloadOutcome;
use crate::service::canary::{CanaryError, CanarySource, Ended};

/// The canary and what each set decided while it ran (on this host).
#[derive(Debug, Serialize, ToSchema)]
pub struct CanaryView {
    /// `running`, or how it ended: `aborted`, `removed`, `promoted`.
    pub state: &'static str,
    /// Its version.
    pub version: String,
    /// The directory it was loaded from.
    pub dir: String,
    /// `api` or `directory` (the rules directory's `canary/`).
    pub source: CanarySource,
    /// Its share of live traffic, percent, by debtor account.
    pub percent: u8,
    /// Its policy (`canary.toml`): the share it started with and when it is aborted.
    pub policy: CanaryPolicy,
    /// When it started, ms since the Unix epoch.
    pub started_at_unix_ms: i64,
    /// How it ended, if it did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ended: Option<Ended>,
    /// What the live set decided meanwhile (the payments not sent to the canary).
    pub live: ArmFigures,
    /// What the canary decided.
    pub canary: ArmFigures,
}

/// The canary running, or else the last one that ended.
fn view(state: &AppState) -> Result<CanaryView, ApiError> {
    let (canary, ended, live, candidate) = state
        .service
        .canary_figures()
        .ok_or_else(|| ApiError::not_found("no_canary", "no canary has run since the start"))?;
    Ok(CanaryView {
        state: ended.as_ref().map_or("running", |e| e.outcome),
        version: canary.rules.version.clone(),
        dir: canary.dir.display().to_string(),
        source: canary.source,
        percent: canary.percent(),
        policy: canary.policy,
        started_at_unix_ms: canary.started_at_unix_ms,
        ended,
        live,
        canary: candidate,
    })
}

fn canary_error(error: CanaryError) -> ApiError {
    let message = error.to_string();
    match error {
        CanaryError::NotAllowed(_) => ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "canary_dir_not_allowed",
            message,
        )
        .field("dir"),
        CanaryError::DoesNotLoad(_) => ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "rule_set_rejected",
            message,
        ),
        CanaryError::NoCanary => ApiError::not_found("no_canary", message),
        CanaryError::BadPercent(_) => {
            ApiError::bad_request("invalid_percent", message).field("percent")
        }
        CanaryError::ReadOnly(_) => {
            ApiError::new(StatusCode::CONFLICT, "rules_dir_read_only", message)
        }
        CanaryError::Service(error) => error.into(),
    }
}

/// The canary running, or the last one that ended (how, and its figures); 404 if none
/// ran since the start.
#[utoipa::path(
    get,
    path = "/v1/rules/canary",
    tag = "rules",
    responses(
        (status = 200, description = "The canary and the figures of each set", body = CanaryView),
        (status = 401, description = "No valid API key", body = ErrorBody),
        (status = 403, description = "Neither operator nor auditor", body = ErrorBody),
        (status = 404, description = "No canary ran since the start (`no_canary`)", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
pub async fn get_canary(
    State(state): State<Arc<AppState>>,
    principal: Principal,
) -> Result<Json<CanaryView>, ApiError> {
    principal.require(&[Role::Operator, Role::Auditor])?;
    view(&state).map(Json)
}

/// What to start.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StartRequest {
    /// A rules directory on the server, under one of the configured `shadow_roots`,
    /// loaded exactly as the live loader would (vectors included), with its `canary.toml`.
    #[schema(min_length = 1, max_length = 4096)]
    pub dir: String,
    /// Its share of live traffic, percent (default: its `canary.toml`'s, else 10).
    #[schema(minimum = 0, maximum = 100)]
    pub percent: Option<u16>,
}

/// Start a canary from a directory on the server: it decides the given share of live
/// traffic for real, by debtor account, until promoted, removed or aborted by its policy.
/// Replaces any canary.
#[utoipa::path(
    post,
    path = "/v1/rules/canary",
    tag = "rules",
    request_body = StartRequest,
    responses(
        (status = 200, description = "Started", body = CanaryView),
        (status = 400, description = "The body is not {\"dir\", \"percent\"} (`invalid_body`, `invalid_percent`)", body = ErrorBody),
        (status = 401, description = "No valid API key", body = ErrorBody),
        (status = 403, description = "Not an operator", body = ErrorBody),
        (status = 422, description = "Not under a configured shadow root (`canary_dir_not_allowed`), or it does not load, its canary.toml is invalid, or it is the live set (`rule_set_rejected`); nothing changed", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
pub async fn start_canary(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    body: Result<Json<StartRequest>, JsonRejection>,
) -> Result<Json<CanaryView>, ApiError> {
    principal.require(&[Role::Operator])?;
    let Json(request) = body.map_err(|e| ApiError::bad_request("invalid_body", e.body_text()))?;
    let actor = format!("api:{}", principal.name);
    state
        .service
        .start_canary_from(&request.dir, request.percent, &actor)
        .await
        .map_err(canary_error)?;
    view(&state).map(Json)
}

/// The canary's new share.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PercentRequest {
    /// Percent of live traffic, 0 (paused) to 100.
    #[schema(minimum = 0, maximum = 100)]
    pub percent: u16,
}

/// Change the canary's share of live traffic (raising it moves more accounts to it;
/// lowering it moves some back), audited.
#[utoipa::path(
    post,
    path = "/v1/rules/canary/percent",
    tag = "rules",
    request_body = PercentRequest,
    responses(
        (status = 200, description = "Changed", body = CanaryView),
        (status = 400, description = "Not {\"percent\": 0..=100} (`invalid_body`, `invalid_percent`)", body = ErrorBody),
        (status = 401, description = "No valid API key", body = ErrorBody),
        (status = 403, description = "Not an operator", body = ErrorBody),
        (status = 404, description = "No canary runs (`no_canary`)", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
pub async fn set_percent(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    body: Result<Json<PercentRequest>, JsonRejection>,
) -> Result<Json<CanaryView>, ApiError> {
    principal.require(&[Role::Operator])?;
    let Json(request) = body.map_err(|e| ApiError::bad_request("invalid_body", e.body_text()))?;
    let actor = format!("api:{}", principal.name);
    state
        .service
        .set_canary_percent(request.percent, &actor)
        .await
        .map_err(canary_error)?;
    view(&state).map(Json)
}

/// What a promotion did.
#[derive(Debug, Serialize, ToSchema)]
pub struct PromotedView {
    /// The reload of the rules directory after the canary's files were written into it:
    /// `swapped` or `unchanged`.
    pub outcome: &'static str,
    /// The live version now.
    pub version: String,
    /// Whether the canary ended as promoted (its version is live).
    pub promoted: bool,
}

/// Promote the canary: its files are written into the rules directory, which is reloaded;
/// the canary ends as promoted when its version is live. A read-only rules directory is
/// promoted by the deployment instead (409, saying so).
#[utoipa::path(
    post,
    path = "/v1/rules/canary/promote",
    tag = "rules",
    responses(
        (status = 200, description = "Written and reloaded", body = PromotedView),
        (status = 401, description = "No valid API key", body = ErrorBody),
        (status = 403, description = "Not an operator", body = ErrorBody),
        (status = 404, description = "No canary runs (`no_canary`)", body = ErrorBody),
        (status = 409, description = "The rules directory cannot be written: promote by the deployment (`rules_dir_read_only`)", body = ErrorBody),
        (status = 422, description = "Written, but the rules directory does not load: the live set stays (`rule_set_rejected`)", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
pub async fn promote(
    State(state): State<Arc<AppState>>,
    principal: Principal,
) -> Result<Json<PromotedView>, ApiError> {
    principal.require(&[Role::Operator])?;
    let actor = format!("api:{}", principal.name);
    let outcome = state
        .service
        .promote_canary(&actor)
        .await
        .map_err(canary_error)?;
    let promoted = state.service.canary().running().is_none();
    match outcome {
        ReloadOutcome::Swapped { to, .. } => Ok(Json(PromotedView {
            outcome: "swapped",
            version: to,
            promoted,
        })),
        ReloadOutcome::Unchanged { version } => Ok(Json(PromotedView {
            outcome: "unchanged",
            version,
            promoted,
        })),
        ReloadOutcome::Rejected(rejected) => Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "rule_set_rejected",
            rejected.error,
        )),
    }
}

/// Remove the canary: the live set decides every payment again. Audited.
#[utoipa::path(
    delete,
    path = "/v1/rules/canary",
    tag = "rules",
    responses(
        (status = 200, description = "Removed: its final figures", body = CanaryView),
        (status = 401, description = "No valid API key", body = ErrorBody),
        (status = 403, description = "Not an operator", body = ErrorBody),
        (status = 404, description = "No canary runs (`no_canary`)", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
pub async fn remove_canary(
    State(state): State<Arc<AppState>>,
    principal: Principal,
) -> Result<Json<CanaryView>, ApiError> {
    principal.require(&[Role::Operator])?;
    let actor = format!("api:{}", principal.name);
    state
        .service
        .remove_canary(&actor)
        .await
        .map_err(canary_error)?;
    view(&state).map(Json)
}
