//! `/v1/rules`: the live rule set, reloading it, rolling it back, and its history.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
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
use crate::registry::kept::KeptSets;
use crate::registry::live::{Held, Rejected, ReloadOutcome};
use crate::service::canary;
use crate::service::rollback::{ROLLBACK_RELEASED, ROLLED_BACK, RollbackError};
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
    /// `fresh` (an instance per payment) or `warm` (an instance per decider thread,
    /// reused).
    pub isolation: &'static str,
    /// A warm rule's payments on this host since its set was loaded, how many of its
    /// answers were decided again on a fresh instance and compared, how many differed,
    /// and whether a difference sent it back to fresh instances (absent for a fresh rule).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub warm: Option<crate::runtime::WarmFigures>,
}

impl RuleView {
    /// What the live rule `rule` is.
    pub fn of(rule: &crate::registry::Rule, service: &crate::service::Service) -> RuleView {
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
            isolation: match m.isolation {
                crate::runtime::Isolation::Fresh => "fresh",
                crate::runtime::Isolation::Warm(_) => "warm",
            },
            warm: matches!(m.isolation, crate::runtime::Isolation::Warm(_))
                .then(|| rule.context.warm.figures()),
        }
    }
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
    /// The rollback in force on this host, if any: the live set is a kept one, held over
    /// the version the rules directory holds until the directory changes or it is
    /// released (`DELETE /v1/rules/rollback`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rollback: Option<Held>,
    /// The versions kept on this host (that went live here, or ran as a canary), which
    /// `POST /v1/rules/rollback` can make live again: the most recently live first.
    pub kept_versions: Vec<String>,
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
        .map(|rule| RuleView::of(rule, service))
        .collect();
    Ok(Json(RuleSetView {
        version: set.version.clone(),
        loaded_at_unix_ms: service.live_rules().loaded_at_unix_ms(),
        rules_dir: service.live_rules().dir().display().to_string(),
        rules,
        last_rejected: service.live_rules().last_rejected(),
        shadow: super::shadow::view(&state),
        shadow_last_rejected: service.shadow().last_rejected(),
        rollback: service.live_rules().held(),
        kept_versions: kept_versions(&state),
    }))
}

/// The versions this host keeps, the most recently live first.
fn kept_versions(state: &AppState) -> Vec<String> {
    state
        .service
        .live_rules()
        .kept()
        .map(KeptSets::versions)
        .unwrap_or_default()
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
    reload_view(state.service.reload(&trigger).await).map(Json)
}

/// A reload's outcome as answered: a refusal is a 422.
fn reload_view(outcome: ReloadOutcome) -> Result<ReloadView, ApiError> {
    match outcome {
        ReloadOutcome::Unchanged { version } => Ok(ReloadView {
            outcome: "unchanged",
            version,
            previous_version: None,
            load_ms: None,
        }),
        ReloadOutcome::Swapped {
            from, to, load_ms, ..
        } => Ok(ReloadView {
            outcome: "swapped",
            version: to,
            previous_version: Some(from),
            load_ms: Some(load_ms),
        }),
        ReloadOutcome::Rejected(rejected) => Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "rule_set_rejected",
            rejected.error,
        )),
    }
}

/// The audit actions the rule-set history is made of.
pub const HISTORY_ACTIONS: [&str; 9] = [
    LOADED,
    REJECTED,
    ROLLED_BACK,
    ROLLBACK_RELEASED,
    canary::CANARY_STARTED,
    canary::CANARY_PERCENT,
    canary::CANARY_ABORTED,
    canary::CANARY_REMOVED,
    canary::CANARY_PROMOTED,
];

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
    /// `loaded`, `rejected`, `rolled_back`, `rollback_released`, or a canary's step:
    /// `canary_started`, `canary_percent`, `canary_aborted`, `canary_removed`,
    /// `canary_promoted`.
    pub outcome: String,
    /// The version that went live (made live again, for a rollback; whose rollback
    /// ended, for a release); for a rejection, the version that stayed live.
    pub version: String,
    /// Whether this host keeps that version, so that `POST /v1/rules/rollback` can make
    /// it live again (for a version that went live; absent otherwise).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kept: Option<bool>,
    /// What it records: trigger, previous version, rules, load time, the host, or the
    /// error; for a rollback, who asked and the directory version it holds over.
    #[schema(value_type = Object)]
    pub detail: serde_json::Value,
}

/// The history of the rule set, newest first: every version that went live (at start,
/// by the watcher, by an operator, on any host sharing the store), every candidate
/// refused, every rollback and its release, every canary's steps. Kept in the audit log.
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
    let entries = state.service.audit_of(&HISTORY_ACTIONS, limit).await?;
    let kept = state.service.live_rules().kept();
    Ok(Json(
        entries
            .into_iter()
            .map(|entry| {
                let outcome = entry.action.trim_start_matches("rules.").to_owned();
                let went_live = entry.action == LOADED || entry.action == ROLLED_BACK;
                HistoryEntry {
                    seq: entry.seq,
                    at_unix_ms: entry.at_unix_ms,
                    outcome,
                    kept: went_live
                        .then(|| kept.is_some_and(|k| k.path_of(&entry.subject).is_some())),
                    version: entry.subject,
                    detail: serde_json::from_str(&entry.detail).unwrap_or_default(),
                }
            })
            .collect(),
    ))
}

/// What to roll back to.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RollbackRequest {
    /// The rule-set version to make live again (64 hex digits, one of `kept_versions` in
    /// `GET /v1/rules`); absent: the version live before the live one.
    #[schema(min_length = 64, max_length = 64, pattern = "^[0-9a-f]{64}$")]
    pub version: Option<String>,
}

/// What a rollback did.
#[derive(Debug, Serialize, ToSchema)]
pub struct RollbackView {
    /// The version live now.
    pub version: String,
    /// The version it replaced.
    pub previous_version: String,
    /// The rules directory's version it holds over: the rollback holds until the
    /// directory changes to another version, or it is released.
    pub over_directory_version: String,
    /// How long loading the kept copy took, ms.
    pub load_ms: u64,
    /// Components compiled to load it: 0 when the code cache held them all.
    pub compiled: u64,
}

/// Make a rule set that went live before live again at once, from the copy kept beside
/// the store (its compiled code reused), recorded in the audit log. Every host sharing the
/// store whose rules directory holds the same version follows within a second. It holds
/// until the rules directory changes to another version or it is released.
#[utoipa::path(
    post,
    path = "/v1/rules/rollback",
    tag = "rules",
    request_body(content = RollbackRequest, description = "Optional: `{}` or no body rolls back to the previous version"),
    responses(
        (status = 200, description = "Rolled back", body = RollbackView),
        (status = 400, description = "The body is not {\"version\": ...} (`invalid_body`), or the version is not of a version's form (`invalid_version`)", body = ErrorBody),
        (status = 401, description = "No valid API key", body = ErrorBody),
        (status = 403, description = "Not an operator", body = ErrorBody),
        (status = 404, description = "The version is not kept on this host (`rule_set_not_kept`)", body = ErrorBody),
        (status = 409, description = "The version is live already (`rule_set_already_live`), or the history holds none before it (`no_earlier_rule_set`)", body = ErrorBody),
        (status = 422, description = "The kept copy does not load (`rule_set_rejected`); nothing changed", body = ErrorBody),
        (status = 503, description = "The audit log cannot record it; nothing changed", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
pub async fn rollback(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    body: Bytes,
) -> Result<Json<RollbackView>, ApiError> {
    principal.require(&[Role::Operator])?;
    let request: RollbackRequest = if body.iter().all(u8::is_ascii_whitespace) {
        RollbackRequest::default()
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| ApiError::bad_request("invalid_body", e.to_string()))?
    };
    let actor = format!("api:{}", principal.name);
    let done = state
        .service
        .rollback(request.version, &actor)
        .await
        .map_err(rollback_error)?;
    Ok(Json(RollbackView {
        version: done.to,
        previous_version: done.from,
        over_directory_version: done.over,
        load_ms: done.load_ms,
        compiled: done.compiled,
    }))
}

/// End the rollback in force on this host and on every host following it: the rules
/// directory's version goes live again, as a reload would make it.
#[utoipa::path(
    delete,
    path = "/v1/rules/rollback",
    tag = "rules",
    responses(
        (status = 200, description = "Released: the reload's outcome", body = ReloadView),
        (status = 401, description = "No valid API key", body = ErrorBody),
        (status = 403, description = "Not an operator", body = ErrorBody),
        (status = 409, description = "No rollback is in force (`no_rollback`)", body = ErrorBody),
        (status = 422, description = "Released, but the rules directory does not load: the rolled-back set stays live (`rule_set_rejected`)", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
pub async fn release_rollback(
    State(state): State<Arc<AppState>>,
    principal: Principal,
) -> Result<Json<ReloadView>, ApiError> {
    principal.require(&[Role::Operator])?;
    let actor = format!("api:{}", principal.name);
    let outcome = state
        .service
        .release_rollback(&actor)
        .await
        .map_err(rollback_error)?;
    reload_view(outcome).map(Json)
}

fn rollback_error(error: RollbackError) -> ApiError {
    let message = error.to_string();
    match error {
        RollbackError::NotAVersion(_) => {
            ApiError::bad_request("invalid_version", message).field("version")
        }
        RollbackError::NotKept(_) => ApiError::not_found("rule_set_not_kept", message),
        RollbackError::AlreadyLive(_) => {
            ApiError::new(StatusCode::CONFLICT, "rule_set_already_live", message)
        }
        RollbackError::NoEarlier => {
            ApiError::new(StatusCode::CONFLICT, "no_earlier_rule_set", message)
        }
        RollbackError::NotHeld => ApiError::new(StatusCode::CONFLICT, "no_rollback", message),
        RollbackError::DoesNotLoad(_) => ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "rule_set_rejected",
            message,
        ),
        RollbackError::Service(error) => error.into(),
    }
}
