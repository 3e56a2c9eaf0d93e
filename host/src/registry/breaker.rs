//! A circuit breaker per rule: a rule that keeps failing (traps, timeouts, exhausted fuel,
//! invalid answers) is opened — not run, its failure policy applied at once — for a
//! cool-down, then half-open: one payment probes it; a probe that passes closes the
//! circuit, one that fails opens it again. A broken rule then costs the payments a
//! failure policy, not a deadline each.
//!
//! Counting is over fixed windows: within one `window`, at least `failures` failures that
//! are at least `failure_rate_percent` of the rule's runs open the circuit. Each rule of a
//! loaded set has its own breaker, closed when the set is loaded (a reload is a new start
//! for every rule). The state is this host's: each host of a fleet opens its own.

use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use serde::Serialize;

/// When a circuit opens, and for how long.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BreakerPolicy {
    /// Failures within one window that may open the circuit.
    pub failures: u32,
    /// And the share of the window's runs they must be, percent.
    pub failure_rate_percent: u32,
    /// The counting window.
    pub window: Duration,
    /// How long an open circuit stays open before a probe.
    pub cool_down: Duration,
}

/// A circuit's state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CircuitState {
    /// The rule runs.
    Closed,
    /// The rule does not run; its failure policy applies.
    Open,
    /// One payment probes the rule; the others find it open.
    HalfOpen,
}

impl CircuitState {
    /// Its name, as the API and the metrics spell it.
    pub fn name(self) -> &'static str {
        match self {
            CircuitState::Closed => "closed",
            CircuitState::Open => "open",
            CircuitState::HalfOpen => "half_open",
        }
    }
}

/// Whether a rule runs for this payment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Admission {
    /// It runs (closed).
    Run,
    /// It runs as the half-open circuit's one probe.
    Probe,
    /// It does not: the circuit is open.
    Refused,
}

/// A circuit that changed state, for the log, the metrics and the audit log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transition {
    /// The state it left.
    pub from: CircuitState,
    /// The state it entered.
    pub to: CircuitState,
    /// Failures counted in the window when it opened (0 otherwise).
    pub failures: u32,
    /// Runs counted in the window when it opened (0 otherwise).
    pub runs: u32,
}

/// What a circuit looks like now.
#[derive(Clone, Copy, Debug, Serialize, utoipa::ToSchema)]
pub struct CircuitSnapshot {
    /// Closed, open or half-open.
    pub state: CircuitState,
    /// Runs in the current window (closed).
    pub runs_in_window: u32,
    /// Failures in the current window (closed).
    pub failures_in_window: u32,
    /// How many times it has opened since the rule set was loaded.
    pub opened: u64,
    /// When it last opened, ms since the Unix epoch.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub opened_at_unix_ms: Option<i64>,
}

/// One rule's circuit.
#[derive(Debug)]
pub struct Breaker {
    inner: Mutex<Inner>,
}

#[derive(Debug)]
struct Inner {
    state: CircuitState,
    window_started: Option<Instant>,
    runs: u32,
    failures: u32,
    opened_at: Option<Instant>,
    opened_at_unix_ms: Option<i64>,
    opened: u64,
}

impl Default for Breaker {
    fn default() -> Self {
        Breaker {
            inner: Mutex::new(Inner {
                state: CircuitState::Closed,
                window_started: None,
                runs: 0,
                failures: 0,
                opened_at: None,
                opened_at_unix_ms: None,
                opened: 0,
            }),
        }
    }
}

impl Breaker {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether the rule runs now; past an open circuit's cool-down, the first caller
    /// gets the probe (and the transition to half-open).
    pub fn admit(&self, policy: &BreakerPolicy, now: Instant) -> (Admission, Option<Transition>) {
        let mut inner = self.lock();
        match inner.state {
            CircuitState::Closed => (Admission::Run, None),
            CircuitState::HalfOpen => (Admission::Refused, None),
            CircuitState::Open => {
                let cooled = inner
                    .opened_at
                    .is_none_or(|at| now.saturating_duration_since(at) >= policy.cool_down);
                if !cooled {
                    return (Admission::Refused, None);
                }
                inner.state = CircuitState::HalfOpen;
                (
                    Admission::Probe,
                    Some(Transition {
                        from: CircuitState::Open,
                        to: CircuitState::HalfOpen,
                        failures: 0,
                        runs: 0,
                    }),
                )
            }
        }
    }

    /// Records how a run the breaker admitted ended.
    pub fn record(
        &self,
        policy: &BreakerPolicy,
        admission: Admission,
        failed: bool,
        now: Instant,
        now_unix_ms: i64,
    ) -> Option<Transition> {
        let mut inner = self.lock();
        match admission {
            Admission::Refused => None,
            Admission::Probe if failed => {
                inner.open(now, now_unix_ms);
                Some(Transition {
                    from: CircuitState::HalfOpen,
                    to: CircuitState::Open,
                    failures: 1,
                    runs: 1,
                })
            }
            Admission::Probe => {
                inner.state = CircuitState::Closed;
                inner.window_started = Some(now);
                inner.runs = 0;
                inner.failures = 0;
                Some(Transition {
                    from: CircuitState::HalfOpen,
                    to: CircuitState::Closed,
                    failures: 0,
                    runs: 0,
                })
            }
            Admission::Run => {
                // A run admitted while closed may end after another opened the circuit.
                if inner.state != CircuitState::Closed {
                    return None;
                }
                if inner
                    .window_started
                    .is_none_or(|start| now.saturating_duration_since(start) >= policy.window)
                {
                    inner.window_started = Some(now);
                    inner.runs = 0;
                    inner.failures = 0;
                }
                inner.runs = inner.runs.saturating_add(1);
                if !failed {
                    return None;
                }
                inner.failures = inner.failures.saturating_add(1);
                let (runs, failures) = (inner.runs, inner.failures);
                let enough = failures >= policy.failures
                    && u64::from(failures) * 100
                        >= u64::from(policy.failure_rate_percent) * u64::from(runs);
                if !enough {
                    return None;
                }
                inner.open(now, now_unix_ms);
                Some(Transition {
                    from: CircuitState::Closed,
                    to: CircuitState::Open,
                    failures,
                    runs,
                })
            }
        }
    }

    /// The circuit now.
    pub fn snapshot(&self) -> CircuitSnapshot {
        let inner = self.lock();
        let closed = inner.state == CircuitState::Closed;
        CircuitSnapshot {
            state: inner.state,
            runs_in_window: if closed { inner.runs } else { 0 },
            failures_in_window: if closed { inner.failures } else { 0 },
            opened: inner.opened,
            opened_at_unix_ms: inner.opened_at_unix_ms,
        }
    }
}

impl Inner {
    fn open(&mut self, now: Instant, now_unix_ms: i64) {
        self.state = CircuitState::Open;
        self.opened_at = Some(now);
        self.opened_at_unix_ms = Some(now_unix_ms);
        self.opened += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLICY: BreakerPolicy = BreakerPolicy {
        failures: 3,
        failure_rate_percent: 50,
        window: Duration::from_secs(10),
        cool_down: Duration::from_secs(30),
    };

    /// Runs the rule once at `at` (if admitted), failing or not; the admission and any
    /// transitions.
    fn run(breaker: &Breaker, at: Instant, failed: bool) -> (Admission, Vec<CircuitState>) {
        let (admission, entered) = breaker.admit(&POLICY, at);
        let left = breaker.record(&POLICY, admission, failed, at, 0);
        let states = entered.into_iter().chain(left).map(|t| t.to).collect();
        (admission, states)
    }

    #[test]
    fn enough_failures_at_a_high_enough_rate_open_the_circuit() {
        let breaker = Breaker::default();
        let start = Instant::now();
        assert_eq!(run(&breaker, start, true), (Admission::Run, vec![]));
        assert_eq!(run(&breaker, start, true), (Admission::Run, vec![]));
        assert_eq!(
            run(&breaker, start, true),
            (Admission::Run, vec![CircuitState::Open])
        );
        assert_eq!(run(&breaker, start, false), (Admission::Refused, vec![]));
        let snapshot = breaker.snapshot();
        assert_eq!(snapshot.state, CircuitState::Open);
        assert_eq!(snapshot.opened, 1);
    }

    #[test]
    fn failures_that_are_a_small_share_of_the_runs_do_not() {
        let breaker = Breaker::default();
        let start = Instant::now();
        for _ in 0..10 {
            run(&breaker, start, false);
        }
        for _ in 0..5 {
            assert_eq!(run(&breaker, start, true).1, vec![]);
        }
        // 5 of 15 is a third: under half.
        assert_eq!(breaker.snapshot().state, CircuitState::Closed);
        assert_eq!(breaker.snapshot().failures_in_window, 5);
    }

    #[test]
    fn failures_in_different_windows_do_not_add_up() {
        let breaker = Breaker::default();
        let start = Instant::now();
        run(&breaker, start, true);
        run(&breaker, start, true);
        let later = start + POLICY.window;
        assert_eq!(run(&breaker, later, true).1, vec![]);
        assert_eq!(breaker.snapshot().failures_in_window, 1);
    }

    #[test]
    fn after_the_cool_down_one_probe_closes_or_reopens_the_circuit() {
        let breaker = Breaker::default();
        let start = Instant::now();
        for _ in 0..3 {
            run(&breaker, start, true);
        }
        let cooled = start + POLICY.cool_down;
        assert_eq!(
            run(&breaker, cooled - Duration::from_millis(1), false).0,
            Admission::Refused
        );
        // The probe fails: open again, for another cool-down.
        assert_eq!(
            run(&breaker, cooled, true),
            (
                Admission::Probe,
                vec![CircuitState::HalfOpen, CircuitState::Open]
            )
        );
        assert_eq!(run(&breaker, cooled, false).0, Admission::Refused);
        // While a probe runs, the others find the circuit open.
        let again = cooled + POLICY.cool_down;
        let (probe, _) = breaker.admit(&POLICY, again);
        assert_eq!(probe, Admission::Probe);
        assert_eq!(breaker.admit(&POLICY, again).0, Admission::Refused);
        let closed = breaker.record(&POLICY, probe, false, again, 0).unwrap();
        assert_eq!(closed.to, CircuitState::Closed);
        assert_eq!(run(&breaker, again, true), (Admission::Run, vec![]));
        assert_eq!(breaker.snapshot().opened, 2);
    }
}
