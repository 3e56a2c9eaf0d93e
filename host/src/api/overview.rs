//! `GET /v1/overview`: decisions by status, the submissions' latency and each rule's
//! time, fuel and failures, over the last 15 minutes or hour (this host, sampled every
//! 10 s) or the last 24 hours or 7 days (every host, from the store): what the console's
//! overview charts.

use std::sync::Arc;

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::AppState;
use super::auth::Principal;
use super::error::{ApiError, ErrorBody};
use crate::config::Role;
use crate::service::overview::{OverviewFigures, Window};
use crate::telemetry::overview::{ByStatus, Histogram, RuleTally, Tally};

/// Which window.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct OverviewParams {
    /// `15m` (default), `1h`, `24h` or `7d`.
    pub window: Option<String>,
}

/// Percentiles of a histogram, each the upper bound of the bucket holding it (at most
/// 12.5 % above the true value, never below).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, ToSchema)]
pub struct Percentiles {
    /// Half the values are at or below it.
    pub p50: u64,
    /// 95 %.
    pub p95: u64,
    /// 99 %.
    pub p99: u64,
}

impl Percentiles {
    /// Those of `histogram`, if it holds a value.
    pub fn of(histogram: &Histogram) -> Option<Percentiles> {
        Some(Percentiles {
            p50: histogram.percentile(500)?,
            p95: histogram.percentile(950)?,
            p99: histogram.percentile(990)?,
        })
    }
}

/// Decisions by status.
#[derive(Clone, Copy, Debug, Serialize, ToSchema)]
pub struct StatusCounts {
    /// Accepted.
    pub accepted: u64,
    /// Rejected.
    pub rejected: u64,
    /// Held for review.
    pub pending_review: u64,
}

impl From<ByStatus> for StatusCounts {
    fn from(counts: ByStatus) -> Self {
        StatusCounts {
            accepted: counts.accepted,
            rejected: counts.rejected,
            pending_review: counts.pending_review,
        }
    }
}

/// One rule's figures (over every version of it, or one).
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct RuleFigures {
    /// Decisions it took part in.
    pub calls: u64,
    /// Of which it failed (its failure policy applied; an open circuit counts).
    pub failures: u64,
    /// Its wall time per run, µs (absent when it never ran).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub time_us: Option<Percentiles>,
    /// Its fuel per run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fuel: Option<Percentiles>,
}

impl From<&RuleTally> for RuleFigures {
    fn from(tally: &RuleTally) -> Self {
        RuleFigures {
            calls: tally.calls,
            failures: tally.failures,
            time_us: Percentiles::of(&tally.time_us),
            fuel: Percentiles::of(&tally.fuel),
        }
    }
}

/// A rule in a span: its figures, and each version's.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct RuleSpan {
    /// Its name.
    pub name: String,
    /// Over every version.
    #[serde(flatten)]
    pub figures: RuleFigures,
    /// By version (the sha256 of its component).
    pub versions: Vec<RuleVersionFigures>,
}

/// One version of a rule in a span.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct RuleVersionFigures {
    /// The sha256 of its component.
    pub version: String,
    /// Its figures.
    #[serde(flatten)]
    pub figures: RuleFigures,
}

/// What happened in a span: a point of a chart, or the whole window.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct SpanFigures {
    /// When the span starts, ms since the Unix epoch.
    pub start_unix_ms: i64,
    /// Decisions made, by status.
    pub decisions: StatusCounts,
    /// Time from a submission's arrival to its answer, µs, over the submissions answered
    /// 2xx (absent when none was).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latency_us: Option<Percentiles>,
    /// Each rule that ran, by name.
    pub rules: Vec<RuleSpan>,
}

impl SpanFigures {
    /// The figures of `tally`, a span starting at `start_unix_ms`.
    pub fn of(start_unix_ms: i64, tally: &Tally) -> SpanFigures {
        SpanFigures {
            start_unix_ms,
            decisions: tally.decisions.into(),
            latency_us: Percentiles::of(&tally.latency_us),
            rules: tally
                .rules
                .iter()
                .map(|(name, versions)| RuleSpan {
                    name: name.clone(),
                    figures: (&tally.rule(name)).into(),
                    versions: versions
                        .iter()
                        .map(|(version, tally)| RuleVersionFigures {
                            version: version.clone(),
                            figures: tally.into(),
                        })
                        .collect(),
                })
                .collect(),
        }
    }
}

/// The overview of a window.
#[derive(Debug, Serialize, ToSchema)]
pub struct OverviewView {
    /// `15m`, `1h`, `24h` or `7d`.
    pub window: String,
    /// Where the figures come from: `this_host` (sampled in memory every 10 s) or
    /// `every_host` (the store's minute and hour rows).
    pub source: String,
    /// The hosts whose figures it holds.
    pub hosts: Vec<String>,
    /// The first point's start, ms since the Unix epoch.
    pub from_unix_ms: i64,
    /// When it was read: the last point (in progress) ends here.
    pub to_unix_ms: i64,
    /// Each point's span, seconds.
    pub point_seconds: i64,
    /// The points, oldest first.
    pub points: Vec<SpanFigures>,
    /// The whole window.
    pub total: SpanFigures,
}

impl From<&OverviewFigures> for OverviewView {
    fn from(figures: &OverviewFigures) -> Self {
        let point = figures.window.point_ms();
        OverviewView {
            window: figures.window.name().to_owned(),
            source: if figures.window.from_store() {
                "every_host"
            } else {
                "this_host"
            }
            .to_owned(),
            hosts: figures.hosts.clone(),
            from_unix_ms: figures.from_unix_ms,
            to_unix_ms: figures.to_unix_ms,
            point_seconds: point / 1000,
            points: (0_i64..)
                .zip(&figures.points)
                .map(|(i, tally)| SpanFigures::of(figures.from_unix_ms + i * point, tally))
                .collect(),
            total: SpanFigures::of(figures.from_unix_ms, &figures.total),
        }
    }
}

/// The window named in a query (`15m` when absent), or 400 `window_invalid`.
pub fn window(name: Option<&str>) -> Result<Window, ApiError> {
    let Some(name) = name else {
        return Ok(Window::Minutes15);
    };
    Window::parse(name).ok_or_else(|| {
        ApiError::bad_request(
            "window_invalid",
            format!("window must be one of 15m, 1h, 24h, 7d (not {name:?})"),
        )
        .field("window")
    })
}

/// Decisions per point by status, the submissions' latency percentiles, and each rule's
/// calls, failures, time and fuel, over a window: the last 15 minutes (10-s points) or
/// hour (1-min points) of this host, or the last 24 hours (10-min points) or 7 days
/// (1-h points) of every host sharing the store.
#[utoipa::path(
    get,
    path = "/v1/overview",
    tag = "service",
    params(OverviewParams),
    responses(
        (status = 200, description = "The window's figures", body = OverviewView),
        (status = 400, description = "An unknown window", body = ErrorBody),
        (status = 401, description = "No valid API key", body = ErrorBody),
        (status = 403, description = "Neither an operator nor an auditor", body = ErrorBody),
        (status = 503, description = "The store is unavailable", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
pub async fn overview(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    params: Result<Query<OverviewParams>, QueryRejection>,
) -> Result<Json<OverviewView>, ApiError> {
    principal.require(&[Role::Operator, Role::Auditor])?;
    let params = super::query::params(params)?;
    let window = window(params.window.as_deref())?;
    let figures = state.service.overview(window).await?;
    Ok(Json((&figures).into()))
}
