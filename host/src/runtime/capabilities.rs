//! The host side of the capabilities a rule imports (`lists`, `velocity`, `clock`, `log`,
//! `config`), and the state one payment's store carries while its rules run.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use wasmtime::component::{HasSelf, Linker};

use super::RuleContext;
use super::bindings::payrules::rules as wit;
use super::limits::RuleLimiter;
use crate::lists::Unscreened;
use crate::model::{Currency, Date, Payment, RuleLogLine};
use crate::velocity::{Figures, Scope, VelocityBook, WINDOW_SECONDS_MAX};

/// The most log lines a rule keeps per evaluation; later lines are counted and dropped.
pub const LOG_LINES_MAX: usize = 32;
/// The longest log message kept, in bytes; longer ones are cut at a character boundary.
pub const LOG_MESSAGE_BYTES_MAX: usize = 1024;
/// The most random bytes one `wasi:random` call may ask for.
const RANDOM_BYTES_MAX: u64 = 1024 * 1024;

/// A host capability a manifest can grant.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Capability {
    /// `payrules:rules/lists`.
    Lists,
    /// `payrules:rules/velocity`.
    Velocity,
    /// `payrules:rules/clock`.
    Clock,
    /// `payrules:rules/log`.
    Log,
    /// `payrules:rules/config`.
    Config,
}

impl Capability {
    /// Every capability.
    pub const ALL: [Capability; 5] = [
        Capability::Lists,
        Capability::Velocity,
        Capability::Clock,
        Capability::Log,
        Capability::Config,
    ];

    /// The name manifests use.
    pub fn name(self) -> &'static str {
        match self {
            Capability::Lists => "lists",
            Capability::Velocity => "velocity",
            Capability::Clock => "clock",
            Capability::Log => "log",
            Capability::Config => "config",
        }
    }

    /// The capability behind a component import (its name without the version).
    pub(crate) fn from_import(interface: &str) -> Option<Capability> {
        let name = interface.strip_prefix("payrules:rules/")?;
        Capability::ALL.into_iter().find(|c| c.name() == name)
    }

    pub(crate) fn add_to_linker(self, linker: &mut Linker<EvalState>) -> wasmtime::Result<()> {
        type State = HasSelf<EvalState>;
        fn get(state: &mut EvalState) -> &mut EvalState {
            state
        }
        match self {
            Capability::Lists => wit::lists::add_to_linker::<_, State>(linker, get),
            Capability::Velocity => wit::velocity::add_to_linker::<_, State>(linker, get),
            Capability::Clock => wit::clock::add_to_linker::<_, State>(linker, get),
            Capability::Log => wit::log::add_to_linker::<_, State>(linker, get),
            Capability::Config => wit::config::add_to_linker::<_, State>(linker, get),
        }
    }
}

/// What the capabilities answer from for one payment, the same for every rule of it.
struct PaymentFacts {
    now: wit::clock::Instant,
    now_unix_ms: i64,
    velocity: Arc<VelocityBook>,
    debtor_account: String,
    creditor_account: String,
    currency: Currency,
    /// The velocity figures given for this payment, by scope and window: asked again for
    /// the same payment, the same answer, though other payments were stored meanwhile (so
    /// every rule of a decision sees one picture, and a warm answer decided again on a
    /// fresh instance is decided from the same facts).
    velocity_given: Mutex<Vec<((u8, u32), Figures)>>,
}

/// The data of one payment's store: the payment's facts, and the bounds and logs of the
/// rule running now.
pub(crate) struct EvalState {
    pub(crate) limiter: RuleLimiter,
    /// The payment's facts; `None` while a rule prepares (there is no payment).
    facts: Option<Arc<PaymentFacts>>,
    rule: Option<Arc<RuleContext>>,
    host_calls: u32,
    host_calls_max: u32,
    pub(crate) host_calls_exceeded: bool,
    /// When the running rule's time is up: host calls that do work proportional to what
    /// the rule asks stop there (the engine's deadline only interrupts WebAssembly code).
    deadline: Option<Instant>,
    /// Set when a host call stopped at the rule's deadline.
    pub(crate) deadline_passed_in_host: bool,
    logs: Vec<RuleLogLine>,
    logs_dropped: u32,
}

impl EvalState {
    pub(crate) fn new(payment: &Payment, now_unix_ms: i64, velocity: Arc<VelocityBook>) -> Self {
        EvalState::with_facts(Arc::new(PaymentFacts {
            now: instant(now_unix_ms),
            now_unix_ms,
            velocity,
            debtor_account: payment.debtor_account().to_owned(),
            creditor_account: payment.creditor_account().to_owned(),
            currency: payment.currency,
            velocity_given: Mutex::new(Vec::new()),
        }))
    }

    /// The state in which a rule version prepares: no payment, so `velocity` and `clock`
    /// trap.
    pub(crate) fn preparing() -> Self {
        EvalState::with(None)
    }

    fn with_facts(facts: Arc<PaymentFacts>) -> Self {
        EvalState::with(Some(facts))
    }

    fn with(facts: Option<Arc<PaymentFacts>>) -> Self {
        EvalState {
            limiter: RuleLimiter::default(),
            facts,
            rule: None,
            host_calls: 0,
            host_calls_max: 0,
            host_calls_exceeded: false,
            deadline: None,
            deadline_passed_in_host: false,
            logs: Vec::new(),
            logs_dropped: 0,
        }
    }

    /// The same payment's state for a new store (after a trap poisoned the old one, or
    /// for a warm rule's store).
    pub(crate) fn for_a_new_store(&self) -> Self {
        EvalState::with(self.facts.clone())
    }

    /// Gives a warm rule's store, which outlives payments, the facts of `payment`'s.
    pub(crate) fn take_facts_of(&mut self, payment: &EvalState) {
        let same = match (&self.facts, &payment.facts) {
            (Some(mine), Some(theirs)) => Arc::ptr_eq(mine, theirs),
            _ => false,
        };
        if !same {
            self.facts.clone_from(&payment.facts);
        }
    }

    /// Prepares the store for the next rule: its bounds, its context, empty logs.
    pub(crate) fn begin_rule(&mut self, context: &Arc<RuleContext>) {
        self.limiter = RuleLimiter {
            memory_bytes_max: usize::try_from(context.limits.memory_bytes_max)
                .unwrap_or(usize::MAX),
            memory_denied: false,
            grew: false,
        };
        self.rule = Some(Arc::clone(context));
        self.host_calls = 0;
        self.host_calls_max = context.limits.host_calls_max;
        self.host_calls_exceeded = false;
        self.deadline =
            Instant::now().checked_add(Duration::from_millis(context.limits.timeout_ms));
        self.deadline_passed_in_host = false;
        self.logs.clear();
        self.logs_dropped = 0;
    }

    /// Ends the rule's run and hands back what it logged.
    pub(crate) fn end_rule(&mut self) -> Vec<RuleLogLine> {
        if self.logs_dropped > 0 {
            let rule = self.rule_name();
            tracing::warn!(rule, dropped = self.logs_dropped, "rule log lines dropped");
            self.logs.push(RuleLogLine {
                level: "warn".to_owned(),
                message: format!("{} more log lines dropped", self.logs_dropped),
            });
        }
        self.rule = None;
        std::mem::take(&mut self.logs)
    }

    fn rule_name(&self) -> &str {
        self.rule.as_deref().map_or("", |rule| rule.name.as_str())
    }

    /// Counts one host call; the call past the rule's budget traps.
    fn charge(&mut self) -> wasmtime::Result<()> {
        self.host_calls += 1;
        if self.host_calls > self.host_calls_max {
            self.host_calls_exceeded = true;
            return Err(wasmtime::format_err!(
                "the rule made more than {} host calls",
                self.host_calls_max
            ));
        }
        Ok(())
    }

    /// The payment's facts, or a trap naming `capability` while the rule prepares.
    fn payment_facts(&self, capability: &str) -> wasmtime::Result<&PaymentFacts> {
        self.facts.as_deref().ok_or_else(|| {
            wasmtime::format_err!(
                "{capability} was called in `prepare`, where there is no payment: a \
                 preparation may read only the rule's config and lists"
            )
        })
    }

    fn rule(&self) -> wasmtime::Result<&RuleContext> {
        self.rule
            .as_deref()
            .ok_or_else(|| wasmtime::format_err!("a capability was called with no rule running"))
    }
}

impl wit::types::Host for EvalState {}

impl wit::lists::Host for EvalState {
    fn contains(
        &mut self,
        list_name: String,
        key: String,
    ) -> wasmtime::Result<Result<bool, wit::lists::ListError>> {
        self.charge()?;
        let rule = self.rule()?;
        Ok(match rule.lists.get(&list_name) {
            Some(list) => Ok(list.contains(&key)),
            None => Err(wit::lists::ListError::UnknownList(list_name)),
        })
    }

    fn fuzzy_match(
        &mut self,
        list_name: String,
        name: String,
        min_similarity: u16,
        max_results: u8,
    ) -> wasmtime::Result<Result<Vec<wit::lists::ListMatch>, wit::lists::ListError>> {
        self.charge()?;
        let rule = self.rule()?;
        let Some(list) = rule.lists.get(&list_name) else {
            return Ok(Err(wit::lists::ListError::UnknownList(list_name)));
        };
        // A name past the bound, or a look-up still going at the rule's deadline, stops
        // the rule (its failure policy applies): the host does bounded work for a rule. No
        // payment's party name comes near the bound; a look-up at a low threshold on a
        // large list can take longer than a rule's deadline (hundreds of milliseconds for a
        // long name scored against every name of an SDN-sized list).
        let matches = match list.fuzzy_match(
            &name,
            min_similarity,
            usize::from(max_results),
            self.deadline,
        ) {
            Ok(matches) => matches,
            Err(unscreened) => {
                self.deadline_passed_in_host = matches!(unscreened, Unscreened::DeadlinePassed(_));
                return Err(wasmtime::format_err!("lists.fuzzy-match: {unscreened}"));
            }
        };
        let matches = matches
            .into_iter()
            .map(|found| wit::lists::ListMatch {
                entry_id: found.entry.id,
                entry_name: found.entry.name,
                matched_name: found.matched_name,
                similarity: found.similarity,
                program: found.entry.program,
            })
            .collect();
        Ok(Ok(matches))
    }
}

impl wit::velocity::Host for EvalState {
    fn figures(
        &mut self,
        scope: wit::velocity::VelocityScope,
        window_seconds: u32,
    ) -> wasmtime::Result<Result<wit::velocity::VelocityFigures, String>> {
        self.charge()?;
        if window_seconds == 0 || window_seconds > WINDOW_SECONDS_MAX {
            return Ok(Err(format!(
                "window-seconds is {window_seconds}; it must be 1..={WINDOW_SECONDS_MAX}"
            )));
        }
        let facts = self.payment_facts("velocity.figures")?;
        let (key, scope) = match scope {
            wit::velocity::VelocityScope::DebtorAccount => {
                (0, Scope::Debtor(&facts.debtor_account))
            }
            wit::velocity::VelocityScope::CreditorAccount => {
                (1, Scope::Creditor(&facts.creditor_account))
            }
            wit::velocity::VelocityScope::DebtorToCreditor => (
                2,
                Scope::Pair(&facts.debtor_account, &facts.creditor_account),
            ),
        };
        let mut given = facts
            .velocity_given
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let figures = match given
            .iter()
            .find(|(asked, _)| *asked == (key, window_seconds))
        {
            Some((_, figures)) => *figures,
            None => {
                let figures = facts.velocity.figures(
                    scope,
                    facts.currency,
                    window_seconds,
                    facts.now_unix_ms,
                );
                given.push(((key, window_seconds), figures));
                figures
            }
        };
        Ok(Ok(wit::velocity::VelocityFigures {
            count: figures.count,
            sum_minor_units: figures.sum_minor_units,
        }))
    }
}

impl wit::clock::Host for EvalState {
    fn now(&mut self) -> wasmtime::Result<wit::clock::Instant> {
        self.charge()?;
        Ok(self.payment_facts("clock.now")?.now)
    }
}

impl wit::log::Host for EvalState {
    fn emit(&mut self, level: wit::log::Level, message: String) -> wasmtime::Result<()> {
        self.charge()?;
        if self.logs.len() >= LOG_LINES_MAX {
            self.logs_dropped += 1;
            return Ok(());
        }
        let mut message = message;
        if message.len() > LOG_MESSAGE_BYTES_MAX {
            let mut cut = LOG_MESSAGE_BYTES_MAX;
            while !message.is_char_boundary(cut) {
                cut -= 1;
            }
            message.truncate(cut);
        }
        let rule = self.rule_name();
        let level = match level {
            wit::log::Level::Debug => {
                tracing::debug!(target: "payrules::rule", rule, "{message}");
                "debug"
            }
            wit::log::Level::Info => {
                tracing::info!(target: "payrules::rule", rule, "{message}");
                "info"
            }
            wit::log::Level::Warn => {
                tracing::warn!(target: "payrules::rule", rule, "{message}");
                "warn"
            }
            wit::log::Level::Error => {
                tracing::error!(target: "payrules::rule", rule, "{message}");
                "error"
            }
        };
        self.logs.push(RuleLogLine {
            level: level.to_owned(),
            message,
        });
        Ok(())
    }
}

impl wit::config::Host for EvalState {
    fn get(&mut self, key: String) -> wasmtime::Result<Option<String>> {
        self.charge()?;
        Ok(self.rule()?.config.get(&key).cloned())
    }
}

/// Defines, among `imports`, the WASI functions std calls on ordinary paths, with fixed
/// answers so a rule decides the same way every time: `wasi:random` (std's `HashMap` seeds
/// itself from it) as a fixed stream, and `wasi:cli/environment` as an empty environment
/// (std's panic handler reads `RUST_BACKTRACE`). Everything else of std's WASI plumbing
/// traps if called.
pub(crate) fn add_deterministic_wasi(
    linker: &mut Linker<EvalState>,
    imports: &[String],
) -> wasmtime::Result<()> {
    for name in imports {
        let interface = name.split('@').next().unwrap_or(name);
        let mut instance = linker.instance(name)?;
        match interface {
            "wasi:random/random" => {
                instance.func_wrap("get-random-bytes", |_, (len,): (u64,)| {
                    Ok((deterministic_bytes(len)?,))
                })?;
                instance.func_wrap("get-random-u64", |_, (): ()| Ok((SEED_A,)))?;
            }
            "wasi:random/insecure" => {
                instance.func_wrap("get-insecure-random-bytes", |_, (len,): (u64,)| {
                    Ok((deterministic_bytes(len)?,))
                })?;
                instance.func_wrap("get-insecure-random-u64", |_, (): ()| Ok((SEED_A,)))?;
            }
            "wasi:random/insecure-seed" => {
                instance.func_wrap("insecure-seed", |_, (): ()| Ok(((SEED_A, SEED_B),)))?;
            }
            "wasi:cli/environment" => {
                instance.func_wrap("get-environment", |_, (): ()| {
                    Ok((Vec::<(String, String)>::new(),))
                })?;
                instance.func_wrap("get-arguments", |_, (): ()| Ok((Vec::<String>::new(),)))?;
                instance.func_wrap("initial-cwd", |_, (): ()| Ok((None::<String>,)))?;
            }
            _ => {}
        }
    }
    Ok(())
}

const SEED_A: u64 = 0x7061_7972_756c_6573; // "payrules"
const SEED_B: u64 = 0x7275_6c65_7365_6564; // "ruleseed"

fn deterministic_bytes(len: u64) -> wasmtime::Result<Vec<u8>> {
    if len > RANDOM_BYTES_MAX {
        return Err(wasmtime::format_err!(
            "the rule asked for {len} random bytes, more than {RANDOM_BYTES_MAX}"
        ));
    }
    // splitmix64 from a fixed seed: varied bytes, the same every time.
    let mut state = SEED_A;
    let mut bytes = Vec::with_capacity(usize::try_from(len)?);
    while (bytes.len() as u64) < len {
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        bytes.extend_from_slice(&z.to_le_bytes());
    }
    bytes.truncate(usize::try_from(len)?);
    Ok(bytes)
}

/// The calendar parts of a UTC instant.
pub(crate) fn instant(unix_ms: i64) -> wit::clock::Instant {
    let days = unix_ms.div_euclid(86_400_000);
    let ms_of_day = unix_ms.rem_euclid(86_400_000);
    let (year, month, day) = civil_from_days(days);
    wit::clock::Instant {
        unix_ms,
        date: wit::types::Date { year, month, day },
        minute_of_day: u16::try_from(ms_of_day / 60_000).unwrap_or(0),
        // 1970-01-01 was a Thursday (ISO weekday 4).
        weekday: u8::try_from((days + 3).rem_euclid(7) + 1).unwrap_or(1),
    }
}

/// The proleptic Gregorian date of a day count since 1970-01-01 (Howard Hinnant's
/// `civil_from_days`), clamped to years 0..=65535.
fn civil_from_days(days: i64) -> (u16, u8, u8) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (
        u16::try_from(year.clamp(0, 65_535)).unwrap_or(0),
        u8::try_from(month).unwrap_or(1),
        u8::try_from(day).unwrap_or(1),
    )
}

/// The date of a UTC instant, as the model spells it.
pub fn utc_date(unix_ms: i64) -> Date {
    let (year, month, day) = civil_from_days(unix_ms.div_euclid(86_400_000));
    Date { year, month, day }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every rule of a payment sees one picture of velocity: figures asked again for the
    /// same payment are the first answer, though a payment was stored meanwhile (what lets
    /// a warm answer be decided again on a fresh instance from the same facts); the next
    /// payment sees the new one.
    #[test]
    fn a_payments_velocity_figures_are_the_same_every_time_it_asks() {
        let payment = Payment::from_json(
            r#"{"end_to_end_id": "E", "amount": "10", "currency": "EUR",
                "debtor": {"name": "A", "account": {"id": "D1"}}, "debtor_agent": {"member_id": "1"},
                "creditor": {"name": "B", "account": {"id": "C1"}}, "creditor_agent": {"member_id": "2"}}"#,
        )
        .expect("a valid payment");
        let now = 1_795_327_986_000;
        let book = Arc::new(VelocityBook::new());
        let context = Arc::new(RuleContext {
            name: "r".to_owned(),
            limits: crate::runtime::RuleLimits::default(),
            config: std::collections::BTreeMap::new(),
            lists: std::collections::BTreeMap::new(),
            isolation: crate::runtime::Isolation::Fresh,
            warm: crate::runtime::WarmRecord::default(),
        });
        let ask = |state: &mut EvalState| {
            state.begin_rule(&context);
            let scope = wit::velocity::VelocityScope::DebtorAccount;
            let figures = wit::velocity::Host::figures(state, scope, 3_600)
                .expect("no trap")
                .expect("a valid window");
            (figures.count, figures.sum_minor_units)
        };
        let mut state = EvalState::new(&payment, now, Arc::clone(&book));
        assert_eq!(ask(&mut state), (0, 0));
        book.record(&payment, now - 1_000);
        assert_eq!(ask(&mut state), (0, 0), "the same payment, the same answer");
        let mut other_store = state.for_a_new_store();
        assert_eq!(
            ask(&mut other_store),
            (0, 0),
            "in another store of the payment too"
        );
        let mut next = EvalState::new(&payment, now, book);
        assert_eq!(
            ask(&mut next),
            (1, 1_000),
            "the next payment sees the stored one"
        );
    }

    #[test]
    fn instants_carry_their_utc_calendar_parts() {
        // 2026-11-22T06:13:06Z, a Sunday.
        let now = instant(1_795_327_986_000);
        assert_eq!(
            (now.date.year, now.date.month, now.date.day),
            (2026, 11, 22)
        );
        assert_eq!(now.minute_of_day, 6 * 60 + 13);
        assert_eq!(now.weekday, 7);
        let epoch = instant(0);
        assert_eq!(
            (
                epoch.date.year,
                epoch.date.month,
                epoch.date.day,
                epoch.weekday
            ),
            (1970, 1, 1, 4)
        );
        let leap = instant(951_782_400_000); // 2000-02-29T00:00:00Z, a Tuesday
        assert_eq!((leap.date.month, leap.date.day, leap.weekday), (2, 29, 2));
    }

    #[test]
    fn deterministic_random_is_the_same_every_time_and_bounded() {
        let first = deterministic_bytes(37).expect("small request");
        assert_eq!(first.len(), 37);
        assert_eq!(first, deterministic_bytes(37).expect("small request"));
        assert!(first.iter().any(|b| *b != 0));
        assert!(deterministic_bytes(RANDOM_BYTES_MAX + 1).is_err());
    }
}
