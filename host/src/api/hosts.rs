//! `GET /v1/hosts`: the hosts sharing the store, and the rule sets they run.

use std::collections::BTreeSet;
use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use serde::Serialize;
use utoipa::ToSchema;

use super::AppState;
use super::auth::Principal;
use super::error::{ApiError, ErrorBody};
use crate::config::Role;
use crate::service::hosts::LIVE_WITHIN;

/// A host as the store last heard of it.
#[derive(Debug, Serialize, ToSchema)]
pub struct HostView {
    /// `hostname:pid:random`, unique per process.
    pub id: String,
    /// The address it listens on.
    pub address: String,
    /// The payrules version it runs.
    pub version: String,
    /// Its live rule set's version (as of its last beat, every 5 s).
    pub rule_set_version: String,
    /// The canary it runs beside it, if any (as of its last beat).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub canary: Option<HostCanary>,
    /// When it started, ms since the Unix epoch.
    pub started_at_unix_ms: i64,
    /// When it last beat, ms since the Unix epoch.
    pub heartbeat_unix_ms: i64,
    /// How long ago that was, ms (on the database's clock).
    pub heartbeat_age_ms: i64,
    /// Whether it beat within the last 15 s (three beats).
    pub live: bool,
    /// Whether it is the host answering.
    pub this_host: bool,
}

/// A canary a host runs.
#[derive(Debug, Serialize, ToSchema)]
pub struct HostCanary {
    /// Its version.
    pub version: String,
    /// Its share of live traffic, percent.
    pub percent: u8,
}

/// The fleet.
#[derive(Debug, Serialize, ToSchema)]
pub struct HostsView {
    /// Every host heard of in the last day, the most recent beat first; a host that
    /// stopped on purpose has left the list.
    pub hosts: Vec<HostView>,
    /// The rule-set versions the live hosts run: more than one while a new set is
    /// rolling out, or when a host is stuck on an old one.
    pub live_rule_set_versions: Vec<String>,
}

/// The hosts sharing this store (one, on the embedded store) and the rule sets they run.
#[utoipa::path(
    get,
    path = "/v1/hosts",
    tag = "service",
    responses(
        (status = 200, description = "The hosts", body = HostsView),
        (status = 401, description = "No valid API key", body = ErrorBody),
        (status = 403, description = "Neither an operator nor an auditor", body = ErrorBody),
        (status = 503, description = "The store is unavailable", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
pub async fn list(
    State(state): State<Arc<AppState>>,
    principal: Principal,
) -> Result<Json<HostsView>, ApiError> {
    principal.require(&[Role::Operator, Role::Auditor])?;
    let rows = state.service.hosts().await?;
    let live_within = i64::try_from(LIVE_WITHIN.as_millis()).unwrap_or(i64::MAX);
    let this_host = state.service.host_id();
    let hosts: Vec<HostView> = rows
        .into_iter()
        .map(|row| HostView {
            live: row.heartbeat_age_ms < live_within,
            this_host: row.beat.id == this_host,
            id: row.beat.id,
            address: row.beat.address,
            version: row.beat.version,
            rule_set_version: row.beat.rule_set_version,
            canary: row
                .beat
                .canary
                .map(|(version, percent)| HostCanary { version, percent }),
            started_at_unix_ms: row.beat.started_at_unix_ms,
            heartbeat_unix_ms: row.heartbeat_unix_ms,
            heartbeat_age_ms: row.heartbeat_age_ms,
        })
        .collect();
    let live_rule_set_versions: BTreeSet<String> = hosts
        .iter()
        .filter(|h| h.live)
        .map(|h| h.rule_set_version.clone())
        .collect();
    Ok(Json(HostsView {
        hosts,
        live_rule_set_versions: live_rule_set_versions.into_iter().collect(),
    }))
}
