//! The overview page: decisions per second by status, the submissions' latency, and each
//! rule's time, fuel and failures over a window, as charts drawn on the server
//! ([`super::chart`]), from the same figures as `GET /v1/overview`.
//!
//! Floating point here is for drawing and display (coordinates, rates, milliseconds),
//! never for money: the figures themselves are integer counts.
#![allow(clippy::float_arithmetic)]

use std::sync::Arc;

use askama::Template;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::Response;
use serde::Deserialize;

use super::chart::{self, Chart, Series};
use super::rule::pair;
use super::{Frame, instant, page, unavailable, viewer};
use crate::api::AppState;
use crate::api::overview::Percentiles;
use crate::config::Role;
use crate::service::overview::{OverviewFigures, Window};
use crate::telemetry::overview::Tally;

/// Colours for rules' lines, in turn.
const RULE_CLASSES: usize = 8;

#[derive(Template)]
#[template(path = "console/overview.html")]
struct OverviewPage {
    frame: Frame,
    windows: Vec<(&'static str, bool)>,
    source: String,
    totals: Totals,
    charts: Vec<Chart>,
    rules: Vec<RuleRow>,
}

struct Totals {
    decisions: u64,
    accepted: u64,
    rejected: u64,
    pending_review: u64,
    latency: String,
}

struct RuleRow {
    name: String,
    calls: u64,
    failures: u64,
    time: String,
    fuel: String,
    versions: usize,
}

#[derive(Deserialize)]
pub(super) struct OverviewParams {
    window: Option<String>,
}

pub(super) async fn overview(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Query(params): Query<OverviewParams>,
) -> Response {
    let (session_id, session) = match viewer(
        &state,
        &headers,
        &[Role::Operator, Role::Auditor],
        "Overview",
        "reading the overview",
    ) {
        Ok(session) => session,
        Err(refused) => return refused,
    };
    let mut notice = state.console_sessions.take_flash(&session_id);
    let window = match params.window.as_deref() {
        None => Window::Minutes15,
        Some(name) => Window::parse(name).unwrap_or_else(|| {
            notice = Some(format!(
                "There is no window {name:?}: the windows are 15m, 1h, 24h and 7d."
            ));
            Window::Minutes15
        }),
    };
    let figures = match state.service.overview(window).await {
        Ok(figures) => figures,
        Err(error) => return unavailable(&error),
    };
    let source = if window.from_store() {
        format!(
            "Every host sharing the store ({}), from its figures per minute and hour; \
             points of {}.",
            plural(figures.hosts.len(), "host"),
            span_name(window.point_ms())
        )
    } else {
        format!(
            "This host ({}), sampled every 10 seconds; points of {}; the last point is in \
             progress.",
            state.service.host_id(),
            span_name(window.point_ms())
        )
    };
    let total = &figures.total;
    page(&OverviewPage {
        frame: Frame::of(&session, "Overview", notice),
        windows: Window::ALL
            .into_iter()
            .map(|w| (w.name(), w == window))
            .collect(),
        source,
        totals: Totals {
            decisions: total.decisions.total(),
            accepted: total.decisions.accepted,
            rejected: total.decisions.rejected,
            pending_review: total.decisions.pending_review,
            latency: Percentiles::of(&total.latency_us).map_or_else(
                || "no submission answered".to_owned(),
                |p| format!("{} / {} / {} ms", ms(p.p50), ms(p.p95), ms(p.p99)),
            ),
        },
        charts: charts(&figures),
        rules: total
            .rules
            .iter()
            .map(|(name, versions)| {
                let all = total.rule(name);
                RuleRow {
                    name: name.clone(),
                    calls: all.calls,
                    failures: all.failures,
                    time: pair(&all.time_us, 500, 990),
                    fuel: pair(&all.fuel, 500, 950),
                    versions: versions.len(),
                }
            })
            .collect(),
    })
}

/// The page's charts.
fn charts(figures: &OverviewFigures) -> Vec<Chart> {
    let window = figures.window;
    let point_ms = window.point_ms();
    #[allow(clippy::cast_precision_loss)]
    let seconds = point_ms as f64 / 1000.0;
    let time = |ms: i64| {
        let at = instant(ms);
        if window == Window::Week {
            at.get(5..16).unwrap_or(&at).replace('T', " ")
        } else {
            at.get(11..16).unwrap_or(&at).to_owned()
        }
    };
    let draw = |title: String, series: Vec<Series>, value: fn(f64) -> String| {
        chart::draw(title, series, figures.from_unix_ms, point_ms, time, value)
    };
    let each = |f: &dyn Fn(&Tally) -> Option<f64>| -> Vec<Option<f64>> {
        figures.points.iter().map(f).collect()
    };
    #[allow(clippy::cast_precision_loss)]
    let statuses = [
        (
            "accepted",
            "accepted",
            (|t| t.decisions.accepted) as fn(&Tally) -> u64,
        ),
        ("rejected", "rejected", |t| t.decisions.rejected),
        ("held for review", "pending", |t| t.decisions.pending_review),
    ]
    .into_iter()
    .map(|(name, class, count)| Series {
        name: name.to_owned(),
        class: class.to_owned(),
        values: each(&|t| Some(count(t) as f64 / seconds)),
    })
    .collect();
    #[allow(clippy::cast_precision_loss)]
    let latency = [("p50", 500), ("p95", 950), ("p99", 990)]
        .into_iter()
        .map(|(name, per_mille)| Series {
            name: name.to_owned(),
            class: name.to_owned(),
            values: each(&|t| {
                t.latency_us
                    .percentile(per_mille)
                    .map(|us| us as f64 / 1000.0)
            }),
        })
        .collect();
    let names: Vec<&String> = figures.total.rules.keys().collect();
    #[allow(clippy::cast_precision_loss)]
    let per_rule = |figure: &dyn Fn(&Tally, &str) -> Option<f64>| -> Vec<Series> {
        names
            .iter()
            .enumerate()
            .map(|(i, name)| Series {
                name: (*name).clone(),
                class: format!("s{}", i % RULE_CLASSES),
                values: each(&|t| figure(t, name)),
            })
            .collect()
    };
    #[allow(clippy::cast_precision_loss)]
    let rule_time = per_rule(&|t, name| t.rule(name).time_us.percentile(990).map(|v| v as f64));
    #[allow(clippy::cast_precision_loss)]
    let rule_fuel = per_rule(&|t, name| t.rule(name).fuel.percentile(950).map(|v| v as f64));
    #[allow(clippy::cast_precision_loss)]
    let rule_failures = per_rule(&|t, name| Some(t.rule(name).failures as f64));
    let per = span_name(point_ms);
    vec![
        draw("Decisions per second, by status".to_owned(), statuses, rate),
        draw(
            "Submission latency, ms (answers 2xx)".to_owned(),
            latency,
            decimal,
        ),
        draw("Time in each rule, p99, µs".to_owned(), rule_time, whole),
        draw("Fuel per rule, p95".to_owned(), rule_fuel, whole),
        draw(format!("Rule failures per {per}"), rule_failures, whole),
    ]
}

fn rate(value: f64) -> String {
    if value >= 10.0 {
        format!("{value:.0}")
    } else {
        format!("{value:.2}")
    }
}

fn decimal(value: f64) -> String {
    if value >= 10.0 {
        format!("{value:.0}")
    } else {
        format!("{value:.1}")
    }
}

fn whole(value: f64) -> String {
    if value >= 1_000_000.0 {
        format!("{:.1}M", value / 1_000_000.0)
    } else if value >= 10_000.0 {
        format!("{:.0}k", value / 1_000.0)
    } else {
        format!("{value:.0}")
    }
}

/// Microseconds as milliseconds, to a tenth.
fn ms(us: u64) -> String {
    format!("{}.{}", us / 1000, us % 1000 / 100)
}

fn span_name(ms: i64) -> &'static str {
    match ms {
        10_000 => "10 seconds",
        60_000 => "1 minute",
        600_000 => "10 minutes",
        _ => "1 hour",
    }
}

fn plural(count: usize, noun: &str) -> String {
    if count == 1 {
        format!("1 {noun}")
    } else {
        format!("{count} {noun}s")
    }
}
