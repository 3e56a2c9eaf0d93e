//! `/v1/rules`: the live rule set, reloading it, and its history.

use std::sync::Arc;

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::AppState;
use super::auth::Principal;
use super::error::{ApiError, ErrorBody};
use crate::config::Role;
use crate::model::{FailurePolicy, RuleKind};
use crate::registry::live::{Rejected, ReloadOutcome};
use crate::service::rules::{LOADED, REJECTED};

/// One rule of the live set.
#[derive(Debug, Serialize, ToSchema)]
pub struct RuleView {
    /// Its name.
    pub name: String,
    /// compliance, fraud or routing.
    pub kind: RuleKind,
    /// The sha256 of its component.
    pub version: String,
    /// Its place among the rules of its kind.
    pub order: i32,
    /// What a failure of it means.
    pub failure_policy: FailurePolicy,
    /// The host capabilities it may import.
    pub capabilities: Vec<String>,
    /// Its bounds.
    pub limits: LimitsView,
    /// Its circuit breaker on this host (absent when circuits are off): while `open`, it
    /// is not run and its failure policy applies.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub circuit: Option<crate::registry::breaker::CircuitSnapshot>,
}

/// A rule's bounds.
#[derive(Debug, Serialize, ToSchema)]
pub struct LimitsView {
    /// Fuel per evaluation.
    pub fuel: u64,
    /// Largest linear memory, bytes.
    pub memory_bytes_max: u64,
    /// Wall-clock deadline, ms.
    pub timeout_ms: u64,
    /// Largest answer, bytes.
    pub output_bytes_max: u64,
    /// Most host calls per evaluation.
    pub host_calls_max: u32,
}

/// The live rule set.
#[derive(Debug, Serialize, ToSchema)]
pub struct RuleSetView {
    /// sha256 over every rule, manifest, list and the policy: every decision names it.
    pub version: String,
    /// When it went live, ms since the Unix epoch.
    pub loaded_at_unix_ms: i64,
    /// The rules directory it was loaded from.
    pub rules_dir: String,
    /// The rules in pipeline order.
    pub rules: Vec<RuleView>,
    /// The last candidate refused (it changed nothing live), if any since the start.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_rejected: Option<Rejected>,
    /// The shadow set deciding beside it, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shadow: Option<super::shadow::ShadowView>,
    /// The last candidate refused as the shadow set (by `POST /v1/rules/shadow` or from
    /// the `shadow/` subdirectory; it changed nothing), if any since the start.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shadow_last_rejected: Option<Rejected>,
}

/// The live rule set: each rule's name, kind, version hash, order and limits; and the
/// last candidate that was refused.
#[utoipa::path(
    get,
    path = "/v1/rules",
    tag = "rules",
    responses(
        (status = 200, description = "The live rule set", body = RuleSetView),
        (status = 401, description = "No valid API key", body = ErrorBody),
        (status = 403, description = "Neither operator nor auditor", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
pub async fn live(
    State(state): State<Arc<AppState>>,
    principal: Principal,
) -> Result<Json<RuleSetView>, ApiError> {
    principal.require(&[Role::Operator, Role::Auditor])?;
    let service = &state.service;
    let set = service.rule_set();
    let rules = set
        .rules()
        .iter()
        .map(|rule| {
            let m = &rule.manifest;
            RuleView {
                name: m.name.clone(),
                kind: m.kind,
                version: rule.version.clone(),
                order: m.order,
                failure_policy: m.failure_policy,
                capabilities: m.capabilities.iter().map(|c| c.name().to_owned()).collect(),
                limits: LimitsView {
                    fuel: m.limits.fuel,
                    memory_bytes_max: m.limits.memory_bytes_max,
                    timeout_ms: m.limits.timeout_ms,
                    output_bytes_max: m.limits.output_bytes_max,
                    host_calls_max: m.limits.host_calls_max,
                },
                circuit: service.breaker_policy().map(|_| rule.breaker.snapshot()),
            }
        })
        .collect();
    Ok(Json(RuleSetView {
        version: set.version.clone(),
        loaded_at_unix_ms: service.live_rules().loaded_at_unix_ms(),
        rules_dir: service.live_rules().dir().display().to_string(),
        rules,
        last_rejected: service.live_rules().last_rejected(),
        shadow: super::shadow::view(&state),
        shadow_last_rejected: service.shadow().last_rejected(),
    }))
}

/// What a reload did.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReloadView {
    /// `swapped` or `unchanged` (a refused candidate answers 422).
    pub outcome: &'static str,
    /// The live version after the reload.
    pub version: String,
    /// The version it replaced, when it swapped.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub previous_version: Option<String>,
    /// How long loading the candidate took, ms, when it swapped.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub load_ms: Option<u64>,
}

/// Rescan the rules directory now, exactly as the watcher would, and answer with the
/// outcome.
#[utoipa::path(
    post,
    path = "/v1/rules/reload",
    tag = "rules",
    responses(
        (status = 200, description = "Swapped, or unchanged", body = ReloadView),
        (status = 401, description = "No valid API key", body = ErrorBody),
        (status = 403, description = "Not an operator", body = ErrorBody),
        (status = 422, description = "The candidate was refused; the live set is unchanged", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
pub async fn reload_now(
    State(state): State<Arc<AppState>>,
    principal: Principal,
) -> Result<Json<ReloadView>, ApiError> {
    principal.require(&[Role::Operator])?;
    let trigger = format!("api:{}", principal.name);
    match state.service.reload(&trigger).await {
        ReloadOutcome::Unchanged { version } => Ok(Json(ReloadView {
            outcome: "unchanged",
            version,
            previous_version: None,
            load_ms: None,
        })),
        ReloadOutcome::Swapped {
            from, to, load_ms, ..
        } => Ok(Json(ReloadView {
            outcome: "swapped",
            version: to,
            previous_version: Some(from),
            load_ms: Some(load_ms),
        })),
        ReloadOutcome::Rejected(rejected) => Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "rule_set_rejected",
            rejected.error,
        )),
    }
}

/// The query of the history.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct HistoryParams {
    /// At most this many (1 to 500; 50 when absent).
    #[param(minimum = 1, maximum = 500)]
    limit: Option<u32>,
}

/// One event of the rule-set history.
#[derive(Debug, Serialize, ToSchema)]
pub struct HistoryEntry {
    /// Its audit entry's sequence number.
    pub seq: i64,
    /// When, ms since the Unix epoch.
    pub at_unix_ms: i64,
    /// `loaded` or `rejected`.
    pub outcome: &'static str,
    /// The version that went live; for a rejection, the version that stayed live.
    pub version: String,
    /// What it records: trigger, previous version, rules, load time, or the error.
    #[schema(value_type = Object)]
    pub detail: serde_json::Value,
}

/// The history of the rule set, newest first: every version that went live (at start,
/// by the watcher, by an operator) and every candidate refused. Kept in the audit log.
#[utoipa::path(
    get,
    path = "/v1/rules/history",
    tag = "rules",
    params(HistoryParams),
    responses(
        (status = 200, description = "The history", body = Vec<HistoryEntry>),
        (status = 400, description = "A query parameter is invalid", body = ErrorBody),
        (status = 401, description = "No valid API key", body = ErrorBody),
        (status = 403, description = "Neither operator nor auditor", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
pub async fn history(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    params: Result<Query<HistoryParams>, QueryRejection>,
) -> Result<Json<Vec<HistoryEntry>>, ApiError> {
    principal.require(&[Role::Operator, Role::Auditor])?;
    let params = super::query::params(params)?;
    let limit = super::query::limit(params.limit, 50)?;
    let entries = state.service.audit_of(&[LOADED, REJECTED], limit).await?;
    Ok(Json(
        entries
            .into_iter()
            .map(|entry| HistoryEntry {
                seq: entry.seq,
                at_unix_ms: entry.at_unix_ms,
                outcome: if entry.action == LOADED {
                    "loaded"
                } else {
                    "rejected"
                },
                version: entry.subject,
                detail: serde_json::from_str(&entry.detail).unwrap_or_default(),
            })
            .collect(),
    ))
}
