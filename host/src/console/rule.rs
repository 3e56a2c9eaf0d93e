//! A rule's page: what `GET /v1/rules/by-name/{name}` says — its manifest, its test
//! vectors' results, its measured figures by version, and what changed from the same rule
//! in another kept set (chosen with a GET form).

use std::sync::Arc;

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

use super::{Frame, page, unavailable, viewer};
use crate::api::AppState;
use crate::api::rule_page::RulePageView;
use crate::config::Role;
use crate::service::rule_page::RulePageError;
use crate::telemetry::overview::Histogram;

#[derive(Template)]
#[template(path = "console/rule.html")]
struct RulePage {
    frame: Frame,
    view: RulePageView,
    failure_policy: String,
    capabilities: String,
    measured: Vec<Measured>,
    against_version: Option<String>,
    fuel_live: String,
    fuel_other: String,
}

struct Measured {
    version: String,
    live: bool,
    calls: u64,
    failures: u64,
    time: String,
    fuel: String,
}

#[derive(Deserialize)]
pub(super) struct RuleParams {
    against: Option<String>,
}

pub(super) async fn rule(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(name): Path<String>,
    Query(params): Query<RuleParams>,
) -> Response {
    let (session_id, session) = match viewer(
        &state,
        &headers,
        &[Role::Operator, Role::Auditor],
        "Rule",
        "reading the rules",
    ) {
        Ok(session) => session,
        Err(refused) => return refused,
    };
    let against = params.against.filter(|v| !v.is_empty());
    let page_of = match state.service.rule_page(&name, against.as_deref()).await {
        Ok(found) => found,
        Err(RulePageError::Service(error)) => return unavailable(&error),
        Err(error) => {
            state
                .console_sessions
                .flash(&session_id, format!("{error}."));
            return Redirect::to("/console/rules").into_response();
        }
    };
    let view = RulePageView::of(&page_of, &state.service);
    let live_version = view.rule.version.clone();
    let measured = page_of
        .measured
        .iter()
        .map(|(version, tally)| Measured {
            version: version.chars().take(12).collect(),
            live: *version == live_version,
            calls: tally.calls,
            failures: tally.failures,
            time: pair(&tally.time_us, 500, 990),
            fuel: pair(&tally.fuel, 500, 950),
        })
        .collect();
    let (fuel_live, fuel_other) = view.comparison.as_ref().map_or_else(
        || (String::new(), String::new()),
        |c| {
            (
                measured_or_not(c.fuel_p95.live),
                measured_or_not(c.fuel_p95.other),
            )
        },
    );
    let failure_policy = serde_json::to_value(view.rule.failure_policy)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default();
    let capabilities = if view.rule.capabilities.is_empty() {
        "none".to_owned()
    } else {
        view.rule.capabilities.join(", ")
    };
    let against_version = view.comparison.as_ref().map(|c| c.rule_set_version.clone());
    page(&RulePage {
        frame: Frame::of(
            &session,
            "Rule",
            state.console_sessions.take_flash(&session_id),
        ),
        view,
        failure_policy,
        capabilities,
        measured,
        against_version,
        fuel_live,
        fuel_other,
    })
}

fn measured_or_not(value: Option<u64>) -> String {
    value.map_or_else(|| "not run".to_owned(), |v| v.to_string())
}

/// Two percentiles of a histogram, `a / b`, or a dash when it is empty.
pub(super) fn pair(histogram: &Histogram, a: u64, b: u64) -> String {
    match (histogram.percentile(a), histogram.percentile(b)) {
        (Some(a), Some(b)) => format!("{a} / {b}"),
        _ => "–".to_owned(),
    }
}
