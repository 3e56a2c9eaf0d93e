//! What the operators' overview charts: decisions by status, the submissions' latency, and
//! each rule's time, fuel and failures, tallied as decisions are made.
//!
//! A [`Tally`] is what happened in one span of time. The service's [`Overview`] holds the
//! span in progress; every [`SAMPLE_EVERY`] (on the wall clock's ten-second marks) a
//! sampler takes it and keeps the last hour of samples in memory (the 15-minute and 1-hour
//! views, this host only), and adds each sample to its minute's row in the store, which
//! every host writes (the 24-hour and 7-day views, every host, merged). Tallies of several
//! samples or hosts merge exactly: counts add, and histograms add bucket by bucket, so the
//! fleet's p99 is the p99 of every host's submissions, not an average of percentiles.
//!
//! Latency and fuel are kept in log-linear [`Histogram`]s: eight buckets per power of two,
//! so a percentile read from one is within 12.5 % above the true value (it is the upper
//! bound of the bucket holding it), never below.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::model::{Decision, FailureKind, RuleOutcome, Status};

/// How often the sampler takes the span in progress.
pub const SAMPLE_EVERY: Duration = Duration::from_secs(10);
/// Samples kept in memory: one hour.
pub const SAMPLES_KEPT: usize = 360;
/// A minute row's span, ms.
pub const MINUTE_MS: i64 = 60_000;
/// An hour row's span, ms.
pub const HOUR_MS: i64 = 3_600_000;
/// Minute rows older than this are pruned (the 24-hour view, and the hour being summed).
pub const MINUTES_KEPT_MS: i64 = 26 * HOUR_MS;
/// Hour rows older than this are pruned (the 7-day view).
pub const HOURS_KEPT_MS: i64 = 8 * 24 * HOUR_MS;

/// Counts by value, in log-linear buckets: values below 16 each have their own bucket;
/// above, eight buckets per power of two. Sparse: only buckets that hold a value are kept.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Histogram(BTreeMap<u16, u64>);

impl Histogram {
    /// The bucket of `value`.
    fn bucket(value: u64) -> u16 {
        if value < 16 {
            return u16::try_from(value).unwrap_or(0);
        }
        let exponent = 63 - value.leading_zeros(); // ≥ 4
        let mantissa = (value >> (exponent - 3)) & 7;
        u16::try_from((u64::from(exponent) - 2) * 8 + mantissa).unwrap_or(u16::MAX)
    }

    /// The largest value bucket `index` holds.
    fn upper_bound(index: u16) -> u64 {
        if index < 16 {
            return u64::from(index);
        }
        let exponent = u32::from(index / 8) + 2;
        let mantissa = u64::from(index % 8);
        let bound = (u128::from(9 + mantissa) << (exponent - 3)) - 1;
        u64::try_from(bound).unwrap_or(u64::MAX)
    }

    /// Counts one value.
    pub fn record(&mut self, value: u64) {
        *self.0.entry(Histogram::bucket(value)).or_default() += 1;
    }

    /// Adds another histogram's counts.
    pub fn merge(&mut self, other: &Histogram) {
        for (bucket, count) in &other.0 {
            *self.0.entry(*bucket).or_default() += count;
        }
    }

    /// How many values it holds.
    pub fn count(&self) -> u64 {
        self.0.values().sum()
    }

    /// The value at or below which `per_mille` ‰ of the values lie (upper bound of its
    /// bucket), or `None` when empty.
    pub fn percentile(&self, per_mille: u64) -> Option<u64> {
        let total = self.count();
        if total == 0 {
            return None;
        }
        let rank = total.saturating_mul(per_mille.min(1000)).div_ceil(1000);
        let rank = rank.max(1);
        let mut seen = 0;
        for (bucket, count) in &self.0 {
            seen += count;
            if seen >= rank {
                return Some(Histogram::upper_bound(*bucket));
            }
        }
        self.0
            .keys()
            .next_back()
            .map(|b| Histogram::upper_bound(*b))
    }
}

/// Decisions by status.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ByStatus {
    /// Accepted.
    pub accepted: u64,
    /// Rejected.
    pub rejected: u64,
    /// Held for review.
    pub pending_review: u64,
}

impl ByStatus {
    fn merge(&mut self, other: &ByStatus) {
        self.accepted += other.accepted;
        self.rejected += other.rejected;
        self.pending_review += other.pending_review;
    }

    /// Every decision.
    pub fn total(&self) -> u64 {
        self.accepted + self.rejected + self.pending_review
    }
}

/// One version of one rule in a span.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleTally {
    /// Decisions it took part in (run, or skipped by its open circuit).
    pub calls: u64,
    /// Those where it failed (its failure policy applied), an open circuit included.
    pub failures: u64,
    /// Its wall time per run, µs.
    pub time_us: Histogram,
    /// Its fuel per run.
    pub fuel: Histogram,
}

impl RuleTally {
    fn merge(&mut self, other: &RuleTally) {
        self.calls += other.calls;
        self.failures += other.failures;
        self.time_us.merge(&other.time_us);
        self.fuel.merge(&other.fuel);
    }
}

/// What happened in one span of time.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tally {
    /// Decisions made, by status.
    pub decisions: ByStatus,
    /// Time from a submission's arrival to its answer, µs, for every submission answered
    /// 2xx (a decision, or a retry answered from the store).
    pub latency_us: Histogram,
    /// Each rule by name, then by component version (sha256).
    pub rules: BTreeMap<String, BTreeMap<String, RuleTally>>,
}

impl Tally {
    /// Adds another span's tally.
    pub fn merge(&mut self, other: &Tally) {
        self.decisions.merge(&other.decisions);
        self.latency_us.merge(&other.latency_us);
        for (name, versions) in &other.rules {
            let mine = self.rules.entry(name.clone()).or_default();
            for (version, tally) in versions {
                mine.entry(version.clone()).or_default().merge(tally);
            }
        }
    }

    /// Whether nothing happened.
    pub fn is_empty(&self) -> bool {
        self.decisions.total() == 0 && self.latency_us.count() == 0 && self.rules.is_empty()
    }

    /// One rule's figures over every version of it.
    pub fn rule(&self, name: &str) -> RuleTally {
        let mut all = RuleTally::default();
        for tally in self.rules.get(name).into_iter().flat_map(BTreeMap::values) {
            all.merge(tally);
        }
        all
    }

    fn decision(&mut self, decision: &Decision) {
        match decision.status {
            Status::Accepted => self.decisions.accepted += 1,
            Status::Rejected => self.decisions.rejected += 1,
            Status::PendingReview => self.decisions.pending_review += 1,
        }
        for run in &decision.rules {
            // Looked up before inserting: no key is allocated once a rule version is known.
            if !self.rules.contains_key(&run.name) {
                self.rules.insert(run.name.clone(), BTreeMap::new());
            }
            let Some(versions) = self.rules.get_mut(&run.name) else {
                continue;
            };
            if !versions.contains_key(&run.version) {
                versions.insert(run.version.clone(), RuleTally::default());
            }
            let Some(tally) = versions.get_mut(&run.version) else {
                continue;
            };
            tally.calls += 1;
            match &run.outcome {
                RuleOutcome::Failed {
                    failure: FailureKind::CircuitOpen,
                    ..
                } => {
                    // Not run: no time, no fuel.
                    tally.failures += 1;
                    continue;
                }
                RuleOutcome::Failed { .. } => tally.failures += 1,
                _ => {}
            }
            tally.time_us.record(run.duration_us);
            tally.fuel.record(run.fuel_used);
        }
    }
}

/// A sample: the tally of the [`SAMPLE_EVERY`] span that ended at `at_unix_ms`.
#[derive(Clone, Debug)]
pub struct Sample {
    /// When its span began, ms since the Unix epoch.
    pub from_unix_ms: i64,
    /// When it ended.
    pub to_unix_ms: i64,
    /// What happened in it.
    pub tally: Tally,
}

/// This host's tally in progress, its last hour of samples, and its current minute.
pub struct Overview {
    current: Mutex<(i64, Tally)>,
    samples: Mutex<VecDeque<Sample>>,
    minute: Mutex<Option<(i64, Tally)>>,
}

impl Default for Overview {
    fn default() -> Self {
        Overview {
            current: Mutex::new((crate::store::now_unix_ms(), Tally::default())),
            samples: Mutex::new(VecDeque::with_capacity(SAMPLES_KEPT)),
            minute: Mutex::new(None),
        }
    }
}

impl Overview {
    /// A decision made and stored.
    pub fn decision(&self, decision: &Decision) {
        self.current
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .1
            .decision(decision);
    }

    /// A submission answered 2xx after `latency`.
    pub fn answered(&self, latency: Duration) {
        self.current
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .1
            .latency_us
            .record(u64::try_from(latency.as_micros()).unwrap_or(u64::MAX));
    }

    /// Ends the span in progress at `now_unix_ms`, keeps it as a sample, and returns the
    /// minute it ended in (its start, ms since the Unix epoch) with that minute's tally so
    /// far: what the host writes to the store.
    pub fn sample(&self, now_unix_ms: i64) -> (i64, Tally) {
        let sample = self.take(now_unix_ms);
        let start = (sample.to_unix_ms - 1).div_euclid(MINUTE_MS) * MINUTE_MS;
        let mut minute = self.minute.lock().unwrap_or_else(|p| p.into_inner());
        match &mut *minute {
            Some((at, tally)) if *at == start => tally.merge(&sample.tally),
            _ => *minute = Some((start, sample.tally)),
        }
        minute.clone().unwrap_or_default()
    }

    fn take(&self, now_unix_ms: i64) -> Sample {
        let (from, tally) = {
            let mut current = self.current.lock().unwrap_or_else(|p| p.into_inner());
            let from = std::mem::replace(&mut current.0, now_unix_ms);
            (from, std::mem::take(&mut current.1))
        };
        let sample = Sample {
            from_unix_ms: from,
            to_unix_ms: now_unix_ms,
            tally,
        };
        let mut samples = self.samples.lock().unwrap_or_else(|p| p.into_inner());
        if samples.len() == SAMPLES_KEPT {
            samples.pop_front();
        }
        samples.push_back(sample.clone());
        sample
    }

    /// The samples that ended after `since_unix_ms`, oldest first, and the span in
    /// progress as the last (ending now).
    pub fn since(&self, since_unix_ms: i64, now_unix_ms: i64) -> Vec<Sample> {
        let mut out: Vec<Sample> = self
            .samples
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .filter(|sample| sample.to_unix_ms > since_unix_ms)
            .cloned()
            .collect();
        let current = self.current.lock().unwrap_or_else(|p| p.into_inner());
        out.push(Sample {
            from_unix_ms: current.0,
            to_unix_ms: now_unix_ms,
            tally: current.1.clone(),
        });
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_value_falls_in_a_bucket_whose_bound_is_at_most_an_eighth_above_it() {
        let mut previous = 0;
        for value in (0..5_000).chain([
            65_535,
            65_536,
            1 << 40,
            (1 << 40) + 12_345,
            u64::MAX / 3,
            u64::MAX,
        ]) {
            let bucket = Histogram::bucket(value);
            let bound = Histogram::upper_bound(bucket);
            assert!(bound >= value, "{value}: bound {bound}");
            assert!(
                u128::from(bound) * 8 <= u128::from(value) * 9 + 8,
                "{value}: bound {bound} is more than 12.5 % above"
            );
            if value < 5_000 {
                assert!(bucket >= previous, "buckets are in value order");
                previous = bucket;
            }
            if bucket > 0 {
                assert!(Histogram::upper_bound(bucket - 1) < value, "{value}");
            }
        }
    }

    #[test]
    fn percentiles_of_a_histogram_are_read_by_rank() {
        let mut histogram = Histogram::default();
        assert_eq!(histogram.percentile(500), None);
        for value in 1..=100 {
            histogram.record(value * 100);
        }
        // The 50th of 100 values is 5,000; the 99th, 9,900; each read as its bucket's bound.
        let p50 = histogram.percentile(500).unwrap();
        let p99 = histogram.percentile(990).unwrap();
        assert!((5_000..=5_625).contains(&p50), "{p50}");
        assert!((9_900..=11_137).contains(&p99), "{p99}");
        assert_eq!(histogram.percentile(1000), histogram.percentile(999));
        assert_eq!(histogram.count(), 100);
    }

    #[test]
    fn tallies_merge_to_the_tally_of_everything() {
        let mut a = Tally::default();
        let mut b = Tally::default();
        let mut both = Tally::default();
        for (i, value) in [120_u64, 80, 4_000, 95, 15_000, 300]
            .into_iter()
            .enumerate()
        {
            let target = if i % 2 == 0 { &mut a } else { &mut b };
            target.latency_us.record(value);
            target.decisions.accepted += 1;
            both.latency_us.record(value);
            both.decisions.accepted += 1;
        }
        a.rules
            .entry("limits".into())
            .or_default()
            .entry("v1".into())
            .or_default()
            .calls = 2;
        b.rules
            .entry("limits".into())
            .or_default()
            .entry("v1".into())
            .or_default()
            .calls = 3;
        a.merge(&b);
        assert_eq!(a.decisions, both.decisions);
        assert_eq!(a.latency_us, both.latency_us);
        assert_eq!(a.rule("limits").calls, 5);
        let json = serde_json::to_string(&a).unwrap();
        assert_eq!(serde_json::from_str::<Tally>(&json).unwrap(), a);
    }

    #[test]
    fn a_sample_takes_the_span_in_progress_and_the_last_hour_is_kept() {
        let overview = Overview::default();
        overview.answered(Duration::from_micros(700));
        let (minute, first) = overview.sample(10_000);
        assert_eq!((minute, first.latency_us.count()), (0, 1));
        overview.answered(Duration::from_micros(900));
        let (minute, so_far) = overview.sample(20_000);
        assert_eq!(
            (minute, so_far.latency_us.count()),
            (0, 2),
            "the minute so far"
        );
        overview.answered(Duration::from_micros(900));
        let (minute, next) = overview.sample(60_001);
        assert_eq!(
            (minute, next.latency_us.count()),
            (60_000, 1),
            "the next minute"
        );
        for i in 0..SAMPLES_KEPT as i64 {
            overview.sample(70_000 + i * 10_000);
        }
        let since = overview.since(0, 9_999_999);
        assert_eq!(
            since.len(),
            SAMPLES_KEPT + 1,
            "an hour, and the span in progress"
        );
        assert_eq!(since[0].to_unix_ms, 70_000);
        assert_eq!(since[0].tally.latency_us.count(), 0);
    }
}
