//! Velocity figures: how many payments, and how much, this host has accepted from an
//! account, to an account, or between two accounts, over a recent window.
//!
//! The pipeline records every accepted payment; the `velocity` capability reads. Figures
//! are kept per currency (a sum across currencies means nothing) for at most
//! [`WINDOW_SECONDS_MAX`]. This book lives in memory, for one process.
//!
//! Each key's payments are kept in time order with a running total, so the figures of any
//! window are two binary searches and a subtraction: a merchant with 100,000 payments
//! costs about what an account with one does, and the book's lock is held for
//! microseconds whatever the account.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use crate::model::{Currency, Payment};

/// The longest window a rule can ask about: 90 days.
pub const WINDOW_SECONDS_MAX: u32 = 90 * 24 * 60 * 60;

/// The most payments remembered per account (or pair) and currency; older ones are
/// forgotten first.
pub const PAYMENTS_PER_KEY_MAX: usize = 100_000;

/// Whose payments to count.
#[derive(Clone, Copy, Debug)]
pub enum Scope<'a> {
    /// From this debtor account.
    Debtor(&'a str),
    /// To this creditor account.
    Creditor(&'a str),
    /// From this debtor account to this creditor account.
    Pair(&'a str, &'a str),
}

/// Count and sum over a window.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Figures {
    /// How many payments.
    pub count: u32,
    /// Their total in minor units (saturating).
    pub sum_minor_units: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Key {
    Debtor(String, Currency),
    Creditor(String, Currency),
    Pair(String, String, Currency),
}

/// One recorded payment.
#[derive(Clone, Copy, Debug)]
struct Entry {
    at_unix_ms: i64,
    minor_units: u64,
    /// The total of this key's payments up to and including this one, since the key was
    /// first seen (forgotten payments included: only differences are read).
    running_total: u128,
}

/// One key's payments, oldest first.
#[derive(Debug, Default)]
struct Payments(VecDeque<Entry>);

impl Payments {
    /// Adds a payment in its place by time (after any at the same instant): at the end,
    /// unless threads recorded out of order.
    fn insert(&mut self, at_unix_ms: i64, minor_units: u64) {
        let index = match self.0.back() {
            Some(last) if last.at_unix_ms > at_unix_ms => {
                self.0.partition_point(|e| e.at_unix_ms <= at_unix_ms)
            }
            _ => self.0.len(),
        };
        let before = match index {
            0 => self
                .0
                .front()
                .map_or(0, |e| e.running_total - u128::from(e.minor_units)),
            _ => self.0[index - 1].running_total,
        };
        for later in self.0.range_mut(index..) {
            later.running_total += u128::from(minor_units);
        }
        self.0.insert(
            index,
            Entry {
                at_unix_ms,
                minor_units,
                running_total: before + u128::from(minor_units),
            },
        );
    }

    /// Count and sum of the payments at `since` or later and before `until`.
    fn between(&self, since: i64, until: i64) -> Figures {
        let start = self.0.partition_point(|e| e.at_unix_ms < since);
        let end = self.0.partition_point(|e| e.at_unix_ms < until);
        if end <= start {
            return Figures::default();
        }
        let (first, last) = (&self.0[start], &self.0[end - 1]);
        let sum = last.running_total - (first.running_total - u128::from(first.minor_units));
        Figures {
            count: u32::try_from(end - start).unwrap_or(u32::MAX),
            sum_minor_units: u64::try_from(sum).unwrap_or(u64::MAX),
        }
    }

    /// Forgets the payments before `oldest_kept`, and the oldest beyond
    /// [`PAYMENTS_PER_KEY_MAX`] - 1 (room for one more).
    fn forget(&mut self, oldest_kept: i64) {
        while self.0.front().is_some_and(|e| e.at_unix_ms < oldest_kept)
            || self.0.len() >= PAYMENTS_PER_KEY_MAX
        {
            self.0.pop_front();
        }
    }
}

/// Every this many payments recorded, the book drops the keys whose payments are all
/// older than the longest window: an account that stops paying does not stay in memory
/// for good. A sweep visits every key once (≈30 ns each), so it costs each payment a few
/// nanoseconds on average.
const SWEEP_EVERY_PAYMENTS: u64 = 4_096;

/// Accepted payments by account.
#[derive(Debug, Default)]
pub struct VelocityBook {
    payments: Mutex<Book>,
}

#[derive(Debug, Default)]
struct Book {
    keys: HashMap<Key, Payments>,
    recorded: u64,
}

impl VelocityBook {
    /// An empty book.
    pub fn new() -> Self {
        VelocityBook::default()
    }

    /// Records an accepted payment at `at_unix_ms`.
    pub fn record(&self, payment: &Payment, at_unix_ms: i64) {
        let money = payment.money();
        let (debtor, creditor) = (
            payment.debtor_account().to_owned(),
            payment.creditor_account().to_owned(),
        );
        let currency = money.currency();
        let keys = [
            Key::Debtor(debtor.clone(), currency),
            Key::Creditor(creditor.clone(), currency),
            Key::Pair(debtor, creditor, currency),
        ];
        let oldest_kept = at_unix_ms - i64::from(WINDOW_SECONDS_MAX) * 1000;
        let mut book = self
            .payments
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        for key in keys {
            let entries = book.keys.entry(key).or_default();
            entries.forget(oldest_kept);
            entries.insert(at_unix_ms, money.minor_units());
        }
        book.recorded += 1;
        if book.recorded.is_multiple_of(SWEEP_EVERY_PAYMENTS) {
            book.keys.retain(|_, entries| {
                entries.forget(oldest_kept);
                !entries.0.is_empty()
            });
        }
    }

    /// How many keys (accounts and pairs, per currency) the book holds.
    pub fn keys(&self) -> usize {
        self.payments
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .keys
            .len()
    }

    /// The payments of `scope` in `currency` accepted in the `window_seconds` before
    /// `now_unix_ms` (excluding anything recorded at or after `now_unix_ms`).
    pub fn figures(
        &self,
        scope: Scope<'_>,
        currency: Currency,
        window_seconds: u32,
        now_unix_ms: i64,
    ) -> Figures {
        let key = match scope {
            Scope::Debtor(account) => Key::Debtor(account.to_owned(), currency),
            Scope::Creditor(account) => Key::Creditor(account.to_owned(), currency),
            Scope::Pair(debtor, creditor) => {
                Key::Pair(debtor.to_owned(), creditor.to_owned(), currency)
            }
        };
        let since = now_unix_ms - i64::from(window_seconds.min(WINDOW_SECONDS_MAX)) * 1000;
        let book = self
            .payments
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        book.keys
            .get(&key)
            .map_or_else(Figures::default, |entries| {
                entries.between(since, now_unix_ms)
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payment(debtor: &str, creditor: &str, amount: &str, currency: &str) -> Payment {
        let json = format!(
            r#"{{"end_to_end_id":"E","amount":"{amount}","currency":"{currency}",
            "debtor":{{"name":"D","account":{{"id":"{debtor}"}}}},"debtor_agent":{{"member_id":"1"}},
            "creditor":{{"name":"C","account":{{"id":"{creditor}"}}}},"creditor_agent":{{"member_id":"2"}}}}"#
        );
        Payment::from_json(&json).expect("test payment")
    }

    #[test]
    fn figures_count_accepted_payments_in_the_window_per_currency() {
        let book = VelocityBook::new();
        let usd = Currency::parse("USD").expect("USD");
        let hour = 3_600_000;
        book.record(&payment("A", "B", "100.00", "USD"), 0);
        book.record(&payment("A", "B", "50.00", "USD"), 2 * hour);
        book.record(&payment("A", "C", "25.00", "USD"), 3 * hour);
        book.record(&payment("A", "B", "999.00", "EUR"), 3 * hour);
        let now = 4 * hour;
        assert_eq!(
            book.figures(Scope::Debtor("A"), usd, 86_400, now),
            Figures {
                count: 3,
                sum_minor_units: 17_500
            }
        );
        assert_eq!(
            book.figures(Scope::Debtor("A"), usd, 3 * 3600, now),
            Figures {
                count: 2,
                sum_minor_units: 7_500
            }
        );
        assert_eq!(
            book.figures(Scope::Pair("A", "B"), usd, 86_400, now),
            Figures {
                count: 2,
                sum_minor_units: 15_000
            }
        );
        assert_eq!(
            book.figures(Scope::Creditor("C"), usd, 86_400, now).count,
            1
        );
        assert_eq!(book.figures(Scope::Debtor("B"), usd, 86_400, now).count, 0);
    }

    #[test]
    fn figures_match_a_count_of_every_payment_recorded_in_any_order() {
        // Payments recorded a little out of order (threads), several at one instant, over
        // two accounts; every window asked at many instants agrees with counting by hand.
        let book = VelocityBook::new();
        let usd = Currency::parse("USD").expect("USD");
        let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move |bound: u64| {
            seed = seed
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (seed >> 33) % bound
        };
        let mut recorded: Vec<(&str, i64, u64)> = Vec::new();
        let mut clock: i64 = 1_000_000;
        for _ in 0..2_000 {
            clock += i64::try_from(next(120_000)).unwrap();
            let at = clock - i64::try_from(next(30_000)).unwrap();
            let debtor = if next(3) == 0 { "A" } else { "B" };
            let cents = next(1_000_000);
            let amount = format!("{}.{:02}", cents / 100, cents % 100);
            book.record(&payment(debtor, "M", &amount, "USD"), at);
            recorded.push((debtor, at, cents));
        }
        for _ in 0..500 {
            let now = i64::try_from(next(u64::try_from(clock).unwrap() + 60_000)).unwrap();
            let window = u32::try_from(next(86_400)).unwrap() + 1;
            let since = now - i64::from(window) * 1000;
            for (scope, who) in [
                (Scope::Debtor("A"), Some("A")),
                (Scope::Creditor("M"), None),
            ] {
                let expected = recorded
                    .iter()
                    .filter(|(d, at, _)| who.is_none_or(|w| w == *d) && *at >= since && *at < now)
                    .fold(Figures::default(), |f, (_, _, cents)| Figures {
                        count: f.count + 1,
                        sum_minor_units: f.sum_minor_units + cents,
                    });
                assert_eq!(
                    book.figures(scope, usd, window, now),
                    expected,
                    "{scope:?} {window} s before {now}"
                );
            }
        }
    }

    #[test]
    fn a_key_keeps_its_newest_payments_up_to_the_most_it_may() {
        let book = VelocityBook::new();
        let usd = Currency::parse("USD").expect("USD");
        let extra = 10;
        for index in 0..PAYMENTS_PER_KEY_MAX + extra {
            let at = i64::try_from(index).unwrap();
            book.record(&payment("A", "B", "1.00", "USD"), at);
        }
        let now = i64::try_from(PAYMENTS_PER_KEY_MAX + extra).unwrap();
        let figures = book.figures(Scope::Debtor("A"), usd, 3_600, now);
        assert_eq!(figures.count, u32::try_from(PAYMENTS_PER_KEY_MAX).unwrap());
        assert_eq!(
            figures.sum_minor_units,
            100 * u64::try_from(PAYMENTS_PER_KEY_MAX).unwrap()
        );
        // The oldest went first: the newest window is whole.
        assert_eq!(book.figures(Scope::Debtor("A"), usd, 1, now).count, 1_000);
    }

    #[test]
    fn payments_at_or_after_the_instant_asked_about_do_not_count() {
        let book = VelocityBook::new();
        let usd = Currency::parse("USD").expect("USD");
        book.record(&payment("A", "B", "1.00", "USD"), 1000);
        assert_eq!(book.figures(Scope::Debtor("A"), usd, 60, 1000).count, 0);
        assert_eq!(book.figures(Scope::Debtor("A"), usd, 60, 1001).count, 1);
    }

    #[test]
    fn accounts_that_stop_paying_leave_the_book() {
        let book = VelocityBook::new();
        let day = 24 * 3_600_000_i64;
        for n in 0..100 {
            book.record(&payment(&format!("OLD{n}"), "B", "1.00", "USD"), 0);
        }
        assert_eq!(
            book.keys(),
            100 * 2 + 1,
            "a debtor and a pair each, one creditor"
        );
        // 91 days on, one account keeps paying: the sweep drops the others' keys.
        let later = 91 * day;
        for n in 0..SWEEP_EVERY_PAYMENTS {
            book.record(
                &payment("ACTIVE", "C", "1.00", "USD"),
                later + i64::try_from(n).unwrap(),
            );
        }
        assert_eq!(
            book.keys(),
            3,
            "only the active debtor, its creditor and their pair"
        );
    }
}
