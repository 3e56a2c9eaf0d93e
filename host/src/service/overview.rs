//! The overview's figures over time: the sampler that keeps them (in memory for the last
//! hour, in the store for a week) and the views read from them.
//!
//! Every [`SAMPLE_EVERY`], on the wall clock's ten-second marks, the sampler ends the
//! span in progress ([`crate::telemetry::overview`]) and writes this host's tally for the
//! current minute to the store, in place of the last (so the store's figures are at most
//! one sample behind, and a host that stops loses at most its last ten seconds). Half a
//! minute into each hour, it sums the hour before from every host's minute rows into one
//! row per host (any host may: the sum is the same; rows of a host that died are summed
//! too), and prunes: minute rows after [`MINUTES_KEPT_MS`], hour rows after
//! [`HOURS_KEPT_MS`]. At start it sums every hour the minute rows still cover.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use super::{Service, ServiceError};
use crate::store::{Rollup, StoreError, now_unix_ms};
use crate::telemetry::overview::{
    HOUR_MS, HOURS_KEPT_MS, MINUTE_MS, MINUTES_KEPT_MS, SAMPLE_EVERY, Tally,
};

/// How long after an hour ends its minutes are summed: every host has written its last
/// minute of it by then (they write on the ten-second marks).
const HOUR_SETTLES_MS: i64 = 30_000;

/// A window the overview shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Window {
    /// The last 15 minutes, in 10-second points, this host.
    Minutes15,
    /// The last hour, in 1-minute points, this host.
    Hour,
    /// The last 24 hours, in 10-minute points, every host.
    Day,
    /// The last 7 days, in 1-hour points, every host.
    Week,
}

impl Window {
    /// Every window, shortest first.
    pub const ALL: [Window; 4] = [Window::Minutes15, Window::Hour, Window::Day, Window::Week];

    /// Its name in a query: `15m`, `1h`, `24h`, `7d`.
    pub fn name(self) -> &'static str {
        match self {
            Window::Minutes15 => "15m",
            Window::Hour => "1h",
            Window::Day => "24h",
            Window::Week => "7d",
        }
    }

    /// The window named `name`.
    pub fn parse(name: &str) -> Option<Window> {
        Window::ALL.into_iter().find(|w| w.name() == name)
    }

    /// How long it is, ms.
    pub fn length_ms(self) -> i64 {
        match self {
            Window::Minutes15 => 15 * MINUTE_MS,
            Window::Hour => HOUR_MS,
            Window::Day => 24 * HOUR_MS,
            Window::Week => 7 * 24 * HOUR_MS,
        }
    }

    /// One point's span, ms.
    pub fn point_ms(self) -> i64 {
        match self {
            Window::Minutes15 => 10_000,
            Window::Hour => MINUTE_MS,
            Window::Day => 10 * MINUTE_MS,
            Window::Week => HOUR_MS,
        }
    }

    /// Whether it is read from the store (every host) rather than this host's memory.
    pub fn from_store(self) -> bool {
        matches!(self, Window::Day | Window::Week)
    }
}

/// The figures of one window: a tally per point, and the whole window's.
#[derive(Debug)]
pub struct OverviewFigures {
    /// Which window.
    pub window: Window,
    /// The first point's start, ms since the Unix epoch.
    pub from_unix_ms: i64,
    /// When it was read (the last point ends here).
    pub to_unix_ms: i64,
    /// Each point's tally, oldest first; each spans [`Window::point_ms`].
    pub points: Vec<Tally>,
    /// Everything in the window.
    pub total: Tally,
    /// The hosts whose figures it holds (this host alone for the in-memory windows).
    pub hosts: Vec<String>,
}

impl Service {
    /// Starts the sampler (see the module's comment), on the runtime that serves.
    pub fn sample_overview(self: &Arc<Self>) {
        let service = Arc::clone(self);
        tokio::spawn(async move {
            let mut summed_through = i64::MIN;
            loop {
                tokio::time::sleep(until_next_mark(now_unix_ms())).await;
                let now = now_unix_ms();
                match service.record_overview(now).await {
                    Ok(()) => {}
                    Err(StoreError::Closed) => return,
                    Err(error) => tracing::warn!("the overview's minute was not recorded: {error}"),
                }
                let last_hour = (now - HOUR_SETTLES_MS).div_euclid(HOUR_MS) * HOUR_MS - HOUR_MS;
                if last_hour > summed_through {
                    let first = if summed_through == i64::MIN {
                        last_hour - (MINUTES_KEPT_MS / HOUR_MS - 2) * HOUR_MS
                    } else {
                        summed_through + HOUR_MS
                    };
                    match service.sum_hours(first, last_hour, now).await {
                        Ok(()) => summed_through = last_hour,
                        Err(StoreError::Closed) => return,
                        Err(error) => {
                            tracing::warn!("the overview's hours were not summed: {error}")
                        }
                    }
                }
            }
        });
    }

    /// Takes a sample at `now` and writes this host's minute so far (nothing for a minute
    /// with nothing in it). Also called as the host stops, so that it keeps all but its
    /// last moments' figures.
    pub async fn record_overview(&self, now: i64) -> Result<(), StoreError> {
        let (start, tally) = self.metrics.overview().sample(now);
        if tally.is_empty() {
            return Ok(());
        }
        let tally = serde_json::to_string(&tally).map_err(StoreError::failed)?;
        self.store
            .record_rollup(Rollup {
                host_id: self.host_id.clone(),
                span_ms: MINUTE_MS,
                start_unix_ms: start,
                tally,
            })
            .await
    }

    /// Sums the hours starting from `first` through `last` (each host's minute rows into
    /// its hour row) and prunes what is past keeping.
    async fn sum_hours(&self, first: i64, last: i64, now: i64) -> Result<(), StoreError> {
        let minutes = self
            .store
            .rollups(MINUTE_MS, first, last + HOUR_MS, None)
            .await?;
        let hours = tokio::task::spawn_blocking(move || {
            let mut hours: BTreeMap<(i64, String), Tally> = BTreeMap::new();
            for row in minutes {
                let Some(tally) = parsed(&row) else { continue };
                let hour = row.start_unix_ms.div_euclid(HOUR_MS) * HOUR_MS;
                hours.entry((hour, row.host_id)).or_default().merge(&tally);
            }
            hours
        })
        .await
        .map_err(|e| StoreError::failed(format!("summing the overview's hours failed: {e}")))?;
        for ((hour, host_id), tally) in hours {
            self.store
                .record_rollup(Rollup {
                    host_id,
                    span_ms: HOUR_MS,
                    start_unix_ms: hour,
                    tally: serde_json::to_string(&tally).map_err(StoreError::failed)?,
                })
                .await?;
        }
        self.store
            .prune_rollups(MINUTE_MS, now - MINUTES_KEPT_MS)
            .await?;
        self.store.prune_rollups(HOUR_MS, now - HOURS_KEPT_MS).await
    }

    /// The figures of `window`, ending now.
    pub async fn overview(&self, window: Window) -> Result<OverviewFigures, ServiceError> {
        let now = now_unix_ms();
        let point = window.point_ms();
        let count = window.length_ms() / point;
        let last_start = now.div_euclid(point) * point;
        let from = last_start - (count - 1) * point;
        let slots = usize::try_from(count).unwrap_or(0);
        let (points, hosts) = if window.from_store() {
            // Whole hours from the hour rows up to the hour before this one; that hour and
            // this one from the minute rows (the hour before is summed only half a minute
            // into this one, at the sampler's next tick: until then it has no hour row).
            let cut = now.div_euclid(HOUR_MS) * HOUR_MS - HOUR_MS;
            let mut rows = if window == Window::Week {
                self.store.rollups(HOUR_MS, from, cut, None).await?
            } else {
                Vec::new()
            };
            let minutes_from = if window == Window::Week { cut } else { from };
            rows.extend(
                self.store
                    .rollups(MINUTE_MS, minutes_from, now + 1, None)
                    .await?,
            );
            // A fleet's day is thousands of rows of JSON: parsed off the async threads.
            tokio::task::spawn_blocking(move || {
                let mut points = vec![Tally::default(); slots];
                let mut hosts = std::collections::BTreeSet::new();
                for row in &rows {
                    if let Some(tally) = parsed(row) {
                        place(&mut points, from, point, row.start_unix_ms, &tally);
                        hosts.insert(row.host_id.clone());
                    }
                }
                (points, hosts)
            })
            .await
            .map_err(|e| ServiceError::Unavailable(format!("reading the overview failed: {e}")))?
        } else {
            let mut points = vec![Tally::default(); slots];
            for sample in self.metrics.overview().since(from, now) {
                // A sample belongs to the point its last instant is in.
                place(
                    &mut points,
                    from,
                    point,
                    sample.to_unix_ms - 1,
                    &sample.tally,
                );
            }
            (points, std::iter::once(self.host_id.clone()).collect())
        };
        let mut total = Tally::default();
        for tally in &points {
            total.merge(tally);
        }
        Ok(OverviewFigures {
            window,
            from_unix_ms: from,
            to_unix_ms: now,
            points,
            total,
            hosts: hosts.into_iter().collect(),
        })
    }
}

/// Adds `tally`, of the instant `at`, to its point (points of `point` ms from `from`);
/// an instant outside them is left out.
fn place(points: &mut [Tally], from: i64, point: i64, at: i64, tally: &Tally) {
    if at < from {
        return;
    }
    if let Ok(index) = usize::try_from((at - from) / point)
        && let Some(slot) = points.get_mut(index)
    {
        slot.merge(tally);
    }
}

/// A row's tally, or `None` (logged) when it does not parse: a row written by another
/// version, or damaged, leaves a gap in a chart rather than failing the page.
fn parsed(row: &Rollup) -> Option<Tally> {
    match serde_json::from_str(&row.tally) {
        Ok(tally) => Some(tally),
        Err(error) => {
            tracing::warn!(
                host = %row.host_id,
                start = row.start_unix_ms,
                "an overview row does not parse: {error}"
            );
            None
        }
    }
}

/// How long from `now_unix_ms` to the next [`SAMPLE_EVERY`] mark of the wall clock.
fn until_next_mark(now_unix_ms: i64) -> Duration {
    let every = i64::try_from(SAMPLE_EVERY.as_millis()).unwrap_or(10_000);
    let wait = every - now_unix_ms.rem_euclid(every);
    Duration::from_millis(u64::try_from(wait).unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_cover_their_length_in_whole_points() {
        for window in Window::ALL {
            assert_eq!(Window::parse(window.name()), Some(window));
            assert_eq!(window.length_ms() % window.point_ms(), 0, "{window:?}");
            assert!(window.length_ms() / window.point_ms() <= 168, "{window:?}");
        }
        assert_eq!(Window::parse("2h"), None);
    }

    #[test]
    fn a_tally_goes_to_the_point_its_instant_is_in_and_nowhere_outside() {
        let mut one = Tally::default();
        one.decisions.accepted = 1;
        let mut points = vec![Tally::default(); 3];
        // Points of 10 s from 1,000 ms: [1000, 11000), [11000, 21000), [21000, 31000).
        for at in [999, 1_000, 10_999, 11_000, 30_999, 31_000] {
            place(&mut points, 1_000, 10_000, at, &one);
        }
        let counts: Vec<u64> = points.iter().map(|p| p.decisions.accepted).collect();
        assert_eq!(counts, [2, 1, 1]);
    }

    #[test]
    fn the_sampler_wakes_on_the_ten_second_marks() {
        assert_eq!(until_next_mark(1_790_000_000_000), Duration::from_secs(10));
        assert_eq!(
            until_next_mark(1_790_000_003_250),
            Duration::from_millis(6_750)
        );
        assert_eq!(until_next_mark(1_790_000_009_999), Duration::from_millis(1));
    }
}
