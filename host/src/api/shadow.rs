//! `/v1/rules/shadow`: a candidate rule set that decides live traffic beside the live
//! set, never affecting an answer, and the comparison of its decisions with the live
//! ones. A shadow is installed by an operator (`POST` with a directory) or by a
//! `shadow/` subdirectory of the rules directory, which every reload looks at.

use std::path::{Path, PathBuf};
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
use crate::pipeline::shadow::{DirectoryState, Installed, ShadowSource};
use crate::registry::RuleSet;
use crate::registry::live::Rejected;
use crate::store::now_unix_ms;

/// The subdirectory of the rules directory whose rules run as the shadow set.
pub const SHADOW_SUBDIR: &str = "shadow";
/// The audit action of a shadow set installed.
pub const INSTALLED: &str = "rules.shadow_installed";
/// The audit action of a shadow set removed.
pub const REMOVED: &str = "rules.shadow_removed";
/// The audit action of a candidate refused as the shadow set.
pub const REJECTED: &str = "rules.shadow_rejected";

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
    let installed = state.shadow.installed()?;
    let (decided, skipped) = state.shadow.counts();
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
    /// A rules directory on the server, loaded exactly as the live loader would (vectors
    /// included).
    pub dir: String,
}

/// Loads `dir` (reusing the compiled code of the live set and of `reuse`) as the live
/// loader would, off the async threads.
async fn load(
    state: &Arc<AppState>,
    dir: &Path,
    reuse: Option<Arc<RuleSet>>,
) -> Result<RuleSet, String> {
    let live = Arc::clone(&state.rules);
    let load_dir = dir.to_owned();
    tokio::task::spawn_blocking(move || live.load_beside(&load_dir, reuse.as_deref()))
        .await
        .map_err(|e| format!("loading failed: {e}"))?
        .map_err(|e| e.to_string())
}

/// Loads `dir` (reusing the live set's compiled code) and installs it as the shadow set,
/// recording it in the audit log; a refusal is recorded too.
async fn install(
    state: &Arc<AppState>,
    dir: PathBuf,
    source: ShadowSource,
    actor: &str,
) -> Result<ShadowView, String> {
    match load(state, &dir, None).await {
        Ok(loaded) => install_set(state, loaded, dir, source, actor).await,
        Err(error) => {
            refused(state, &dir, actor, &error).await;
            Err(error)
        }
    }
}

/// Records a candidate refused as the shadow set (which stays as it was): the log, the
/// audit log, and `last_rejected` in the rule set's view.
async fn refused(state: &Arc<AppState>, dir: &Path, trigger: &str, error: &str) {
    tracing::warn!(trigger, dir = %dir.display(), error, "shadow rule set candidate rejected; the shadow set is unchanged");
    state.shadow.rejected(Rejected {
        at_unix_ms: now_unix_ms(),
        trigger: trigger.to_owned(),
        error: error.to_owned(),
    });
    let detail = serde_json::json!({
        "dir": dir.display().to_string(),
        "trigger": trigger,
        "error": error,
    });
    let version = state.rule_set().version.clone();
    if let Err(error) = state.store.audit_event(REJECTED, &version, &detail).await {
        tracing::error!("cannot record the refused shadow set in the audit log: {error}");
    }
}

/// Installs a loaded set as the shadow set, recording it in the audit log.
async fn install_set(
    state: &Arc<AppState>,
    loaded: RuleSet,
    dir: PathBuf,
    source: ShadowSource,
    actor: &str,
) -> Result<ShadowView, String> {
    let rules = Arc::new(loaded);
    let version = rules.version.clone();
    state.shadow.install(Installed {
        rules,
        dir: dir.clone(),
        source,
        installed_at_unix_ms: now_unix_ms(),
    });
    tracing::info!(version = %version, dir = %dir.display(), by = actor, "shadow rule set installed");
    let detail = serde_json::json!({ "dir": dir.display().to_string(), "by": actor });
    if let Err(error) = state.store.audit_event(INSTALLED, &version, &detail).await {
        tracing::error!("cannot record the shadow set in the audit log: {error}");
    }
    view(state).ok_or_else(|| "the shadow set was removed meanwhile".to_owned())
}

async fn remove(state: &Arc<AppState>, actor: &str) -> Option<String> {
    let removed = state.shadow.remove()?;
    let version = removed.rules.version.clone();
    tracing::info!(version = %version, by = actor, "shadow rule set removed");
    let detail = serde_json::json!({ "by": actor });
    if let Err(error) = state.store.audit_event(REMOVED, &version, &detail).await {
        tracing::error!("cannot record the shadow set's removal in the audit log: {error}");
    }
    Some(version)
}

/// Makes the shadow set follow the rules directory's `shadow/`: installs what it holds
/// when that changes, records it as refused when it changes to rules that do not load
/// (the shadow set stays as it was), and removes a shadow set it installed when it is
/// gone. A shadow set installed by an operator stays until `shadow/` changes. Called at
/// start and after every reload.
pub async fn follow_directory(state: &Arc<AppState>, trigger: &str) {
    let dir = state.rules.dir().join(SHADOW_SUBDIR);
    let installed = state.shadow.installed();
    if !holds_rules(&dir) {
        state.shadow.directory_seen(DirectoryState::Empty);
        if installed.is_some_and(|i| i.source == ShadowSource::Directory) {
            remove(state, trigger).await;
        }
        return;
    }
    // Compare by content: load it, reusing the shadow set's compiled code (or the live
    // set's), so an unchanged shadow/ costs no compile.
    match load(state, &dir, installed.map(|i| i.rules)).await {
        Ok(set) => {
            if state
                .shadow
                .directory_seen(DirectoryState::Loads(set.version.clone()))
                && let Err(error) =
                    install_set(state, set, dir, ShadowSource::Directory, trigger).await
            {
                tracing::warn!("the shadow/ rules were not installed: {error}");
            }
        }
        Err(error) => {
            if state
                .shadow
                .directory_seen(DirectoryState::Refused(error.clone()))
            {
                refused(state, &dir, trigger, &error).await;
            }
        }
    }
}

fn holds_rules(dir: &Path) -> bool {
    std::fs::read_dir(dir).is_ok_and(|entries| {
        entries.filter_map(Result::ok).any(|entry| {
            let name = entry.file_name();
            let name = name.to_string_lossy();
            name.ends_with(".toml")
                && name != crate::registry::POLICY_FILE
                && !name.ends_with(crate::registry::vectors::FILE_SUFFIX)
        })
    })
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
        (status = 422, description = "The directory does not load; nothing changed", body = ErrorBody),
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
    install(
        &state,
        PathBuf::from(request.dir),
        ShadowSource::Api,
        &actor,
    )
    .await
    .map(Json)
    .map_err(|error| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "rule_set_rejected", error))
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
    remove(&state, &actor)
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
            .shadow
            .installed()
            .map(|installed| installed.rules.version.clone())
            .ok_or_else(|| ApiError::not_found("no_shadow", "no shadow rule set is installed"))?,
    };
    let store = Arc::clone(&state.store);
    let comparison = tokio::task::spawn_blocking(move || {
        let mut comparison = Comparison::new(&version);
        store
            .for_each_shadowed(&version, &mut |live, shadow| comparison.add(&live, &shadow))
            .map(|()| comparison)
    })
    .await
    .map_err(|e| ApiError::internal(format!("the report failed: {e}")))?
    .map_err(|e| ApiError::internal(e.to_string()))?;
    Ok(Json(comparison))
}
