//! `GET /v1/rules/by-name/{name}`: one live rule — its test vectors' results, its
//! measured figures by version, and what changed from the same rule in another kept set.

use std::sync::Arc;

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::AppState;
use super::auth::Principal;
use super::error::{ApiError, ErrorBody};
use super::overview::{RuleFigures, RuleVersionFigures};
use super::rules::RuleView;
use crate::config::Role;
use crate::model::RuleOutcome;
use crate::service::rule_page::{RulePage, RulePageError};

/// What to compare with.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct RulePageParams {
    /// A kept rule set's version (`kept_versions`); by default the set live before the
    /// live one, if kept.
    pub against: Option<String>,
}

/// One case of the rule's test vectors, as it ran when the set went live.
#[derive(Debug, Serialize, ToSchema)]
pub struct VectorCaseView {
    /// The case's name.
    pub name: String,
    /// Whether every expectation held (always, for a live set: one failing case refuses
    /// the set).
    pub passed: bool,
    /// The answer in one line (`score 200 [new-creditor]`).
    pub summary: String,
    /// The answer.
    pub outcome: RuleOutcome,
    /// Fuel used.
    pub fuel_used: u64,
    /// Wall time, µs.
    pub duration_us: u64,
}

/// The rule's test vectors.
#[derive(Debug, Serialize, ToSchema)]
pub struct VectorsView {
    /// The file, in the rules directory.
    pub file: String,
    /// Each case, in file order.
    pub cases: Vec<VectorCaseView>,
}

/// One difference between two versions of the rule.
#[derive(Debug, Serialize, ToSchema)]
pub struct ChangeView {
    /// What: `component`, `capabilities`, `failure_policy`, `limits.fuel`, `config`, …
    pub field: String,
    /// In the live set.
    pub live: String,
    /// In the other set.
    pub other: String,
}

/// The rule compared with itself in another kept set.
#[derive(Debug, Serialize, ToSchema)]
pub struct ComparisonView {
    /// The other set's version.
    pub rule_set_version: String,
    /// Whether that set has this rule.
    pub present: bool,
    /// Its component's sha256 there.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// What differs (empty: nothing).
    pub changes: Vec<ChangeView>,
    /// Fuel per run at p95 over the last 7 days on every host: the live component's and
    /// the other's (absent: not run in that time).
    pub fuel_p95: FuelPair,
}

/// Two measured fuel figures.
#[derive(Debug, Serialize, ToSchema)]
pub struct FuelPair {
    /// The live component's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub live: Option<u64>,
    /// The other's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub other: Option<u64>,
}

/// One live rule, for those who run it.
#[derive(Debug, Serialize, ToSchema)]
pub struct RulePageView {
    /// The rule as the live set has it.
    pub rule: RuleView,
    /// Its test vectors as they ran when the set went live (absent: it has none).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vectors: Option<VectorsView>,
    /// Its figures over the last 7 days on every host, by component version.
    pub measured: Vec<RuleVersionFigures>,
    /// It compared with the same rule in another kept set (absent: no other set kept).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub comparison: Option<ComparisonView>,
    /// The kept rule sets, the most recently live first: what it may be compared with.
    pub kept_versions: Vec<String>,
}

impl RulePageView {
    /// The view of `page`.
    pub fn of(page: &RulePage, service: &crate::service::Service) -> RulePageView {
        let rule = &page.set.rules()[page.index];
        let name = &rule.manifest.name;
        let vectors = page
            .set
            .vector_results(name)
            .map(|(path, cases)| VectorsView {
                file: path
                    .file_name()
                    .map_or_else(String::new, |n| n.to_string_lossy().into_owned()),
                cases: cases
                    .iter()
                    .map(|case| VectorCaseView {
                        name: case.name.clone(),
                        passed: case.mismatches.is_empty(),
                        summary: case.outcome.summary(),
                        outcome: case.outcome.clone(),
                        fuel_used: case.fuel_used,
                        duration_us: case.duration_us,
                    })
                    .collect(),
            });
        let fuel_p95 = |version: &str| {
            page.measured
                .get(version)
                .and_then(|tally| tally.fuel.percentile(950))
        };
        let comparison = page.against.as_ref().map(|against| ComparisonView {
            rule_set_version: against.set_version.clone(),
            present: against.rule.is_some(),
            version: against.rule.as_ref().map(|(_, version)| version.clone()),
            changes: against
                .changes
                .iter()
                .map(|c| ChangeView {
                    field: c.field.clone(),
                    live: c.live.clone(),
                    other: c.other.clone(),
                })
                .collect(),
            fuel_p95: FuelPair {
                live: fuel_p95(&rule.version),
                other: against
                    .rule
                    .as_ref()
                    .and_then(|(_, version)| fuel_p95(version)),
            },
        });
        RulePageView {
            rule: RuleView::of(rule, service),
            vectors,
            measured: page
                .measured
                .iter()
                .map(|(version, tally)| RuleVersionFigures {
                    version: version.clone(),
                    figures: RuleFigures::from(tally),
                })
                .collect(),
            comparison,
            kept_versions: page.kept_versions.clone(),
        }
    }
}

impl From<RulePageError> for ApiError {
    fn from(error: RulePageError) -> Self {
        match error {
            RulePageError::NoSuchRule(_) => {
                ApiError::not_found("rule_not_found", error.to_string())
            }
            RulePageError::NotKept(_) => {
                ApiError::not_found("rule_set_not_kept", error.to_string()).field("against")
            }
            RulePageError::Unreadable(_) => ApiError::new(
                axum::http::StatusCode::CONFLICT,
                "kept_rule_set_unreadable",
                error.to_string(),
            ),
            RulePageError::Service(error) => error.into(),
        }
    }
}

/// One live rule: its manifest (capabilities, limits, failure policy), its test vectors
/// as they ran when the set went live, its measured time, fuel and failures by component
/// version over the last 7 days on every host, and what changed from the same rule in
/// another kept set (by default the one live before).
#[utoipa::path(
    get,
    path = "/v1/rules/by-name/{name}",
    tag = "rules",
    params(("name" = String, Path, description = "The rule's name"), RulePageParams),
    responses(
        (status = 200, description = "The rule", body = RulePageView),
        (status = 400, description = "A query parameter is invalid", body = ErrorBody),
        (status = 401, description = "No valid API key", body = ErrorBody),
        (status = 403, description = "Neither operator nor auditor", body = ErrorBody),
        (status = 404, description = "No such live rule, or the set named is not kept", body = ErrorBody),
        (status = 409, description = "The kept set's files do not read", body = ErrorBody),
        (status = 503, description = "The store is unavailable", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
pub async fn rule(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    Path(name): Path<String>,
    params: Result<Query<RulePageParams>, QueryRejection>,
) -> Result<Json<RulePageView>, ApiError> {
    principal.require(&[Role::Operator, Role::Auditor])?;
    let params = super::query::params(params)?;
    let page = state
        .service
        .rule_page(&name, params.against.as_deref())
        .await?;
    Ok(Json(RulePageView::of(&page, &state.service)))
}
