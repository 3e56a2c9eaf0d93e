//! `/v1/rules/shadow`: a candidate rule set that decides live traffic beside the live
//! set, never affecting an answer, and the comparison of its decisions with the live
//! ones. A shadow is installed by an operator (`POST` with a directory) or by a
//! `shadow/` subdirectory of the rules directory, which every reload looks at.

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
use crate::compare::Comparison;
use crate::config::Role;
use crate::pipeline::shadow::ShadowSource;
use crate::service::rules::ShadowError;

/// The shadow set.
#[derive(Debug, Serialize, ToSchema)]
pub struct ShadowView {
    /// Its version.
    pub version: String,
    /// The directory it was loaded from.
    pub dir: String,
    /// `api` or `directory` (the rules directory's `shadow/`).
    pub source: ShadowSource,
    /// When it was installed, ms since the Unix epoch.
    pub installed_at_unix_ms: i64,
    /// Its rules, by name.
    pub rules: Vec<String>,
    /// Payments it decided since the service started (any shadow set).
    pub decided: u64,
    /// Payments it skipped because it had fallen behind.
    pub skipped: u64,
}

/// The shadow set's view, if one is installed.
pub fn view(state: &AppState) -> Option<ShadowView> {
    let shadow = state.service.shadow();
    let installed = shadow.installed()?;
    let (decided, skipped) = shadow.counts();
    Some(ShadowView {
        version: installed.rules.version.clone(),
        dir: installed.dir.display().to_string(),
        source: installed.source,
        installed_at_unix_ms: installed.installed_at_unix_ms,
        rules: installed
            .rules
            .rules()
            .iter()
            .map(|rule| rule.manifest.name.clone())
            .collect(),
        decided,
        skipped,
    })
}

/// What to install.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InstallRequest {
    /// A rules directory on the server, under one of the configured `shadow_roots`,
    /// loaded exactly as the live loader would (vectors included).
    #[schema(min_length = 1, max_length = 4096)]
    pub dir: String,
}

/// Install a shadow rule set from a directory on the server: it decides every payment
/// after the live set has answered, never changing an answer, and its decisions are
/// recorded for `GET /v1/rules/shadow/report`. Replaces any shadow set.
#[utoipa::path(
    post,
    path = "/v1/rules/shadow",
    tag = "rules",
    request_body = InstallRequest,
    responses(
        (status = 200, description = "Installed", body = ShadowView),
        (status = 400, description = "The body is not {\"dir\": ...}", body = ErrorBody),
        (status = 401, description = "No valid API key", body = ErrorBody),
        (status = 403, description = "Not an operator", body = ErrorBody),
        (status = 422, description = "The directory is not under a configured shadow root (`shadow_dir_not_allowed`), or does not load (`rule_set_rejected`); nothing changed", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
pub async fn install_shadow(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    body: Result<Json<InstallRequest>, JsonRejection>,
) -> Result<Json<ShadowView>, ApiError> {
    principal.require(&[Role::Operator])?;
    let Json(request) =
        body.map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "invalid_body", e.body_text()))?;
    let actor = format!("api:{}", principal.name);
    state
        .service
        .install_shadow_from(&request.dir, &actor)
        .await
        .map_err(|error| match error {
            ShadowError::NotAllowed(message) => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "shadow_dir_not_allowed",
                message,
            )
            .field("dir"),
            ShadowError::DoesNotLoad(message) => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "rule_set_rejected",
                message,
            ),
        })?;
    view(&state)
        .map(Json)
        .ok_or_else(|| ApiError::not_found("no_shadow", "the shadow set was removed meanwhile"))
}

/// The shadow set, if one is installed.
#[utoipa::path(
    get,
    path = "/v1/rules/shadow",
    tag = "rules",
    responses(
        (status = 200, description = "The shadow set", body = ShadowView),
        (status = 401, description = "No valid API key", body = ErrorBody),
        (status = 403, description = "Neither operator nor auditor", body = ErrorBody),
        (status = 404, description = "No shadow set", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
pub async fn get_shadow(
    State(state): State<Arc<AppState>>,
    principal: Principal,
) -> Result<Json<ShadowView>, ApiError> {
    principal.require(&[Role::Operator, Role::Auditor])?;
    view(&state)
        .map(Json)
        .ok_or_else(|| ApiError::not_found("no_shadow", "no shadow rule set is installed"))
}

/// Remove the shadow set.
#[utoipa::path(
    delete,
    path = "/v1/rules/shadow",
    tag = "rules",
    responses(
        (status = 204, description = "Removed"),
        (status = 401, description = "No valid API key", body = ErrorBody),
        (status = 403, description = "Not an operator", body = ErrorBody),
        (status = 404, description = "No shadow set", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
pub async fn remove_shadow(
    State(state): State<Arc<AppState>>,
    principal: Principal,
) -> Result<StatusCode, ApiError> {
    principal.require(&[Role::Operator])?;
    let actor = format!("api:{}", principal.name);
    state
        .service
        .remove_shadow(&actor)
        .await
        .map(|_| StatusCode::NO_CONTENT)
        .ok_or_else(|| ApiError::not_found("no_shadow", "no shadow rule set is installed"))
}

/// The query of the shadow report.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ReportParams {
    /// The shadow version to report on (default: the installed one); earlier shadow sets'
    /// decisions stay in the store.
    version: Option<String>,
}

/// The shadow set's decisions side by side with the live ones: how many differ, from
/// what to what, by which rule, with examples (the same report as `payrules backtest`).
#[utoipa::path(
    get,
    path = "/v1/rules/shadow/report",
    tag = "rules",
    params(ReportParams),
    responses(
        (status = 200, description = "The comparison", body = Comparison),
        (status = 400, description = "A query parameter is invalid", body = ErrorBody),
        (status = 401, description = "No valid API key", body = ErrorBody),
        (status = 403, description = "Neither operator nor auditor", body = ErrorBody),
        (status = 404, description = "No shadow set installed and no version asked", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
pub async fn report(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    params: Result<Query<ReportParams>, QueryRejection>,
) -> Result<Json<Comparison>, ApiError> {
    principal.require(&[Role::Operator, Role::Auditor])?;
    let params = super::query::params(params)?;
    let version = match params.version {
        Some(version) => version,
        None => state
            .service
            .shadow()
            .installed()
            .map(|installed| installed.rules.version.clone())
            .ok_or_else(|| ApiError::not_found("no_shadow", "no shadow rule set is installed"))?,
    };
    let comparison = state.service.shadow_report(version).await?;
    Ok(Json(comparison))
}
