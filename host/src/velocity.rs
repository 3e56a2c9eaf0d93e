//! Velocity figures: how many payments, and how much, this host has accepted from an
//! account, to an account, or between two accounts, over a recent window.
//!
//! The pipeline records every accepted payment; the `velocity` capability reads. Figures
//! are kept per currency (a sum across currencies means nothing) for at most
//! [`WINDOW_SECONDS_MAX`]. This book lives in memory, for one process.

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

/// Accepted payments by account, newest last.
#[derive(Debug, Default)]
pub struct VelocityBook {
    payments: Mutex<HashMap<Key, VecDeque<(i64, u64)>>>,
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
        let mut payments = self
            .payments
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        for key in keys {
            let entries = payments.entry(key).or_default();
            while entries.front().is_some_and(|(at, _)| *at < oldest_kept)
                || entries.len() >= PAYMENTS_PER_KEY_MAX
            {
                entries.pop_front();
            }
            entries.push_back((at_unix_ms, money.minor_units()));
        }
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
        let payments = self
            .payments
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let mut figures = Figures::default();
        for (at, minor_units) in payments.get(&key).into_iter().flatten().rev() {
            if *at >= now_unix_ms {
                continue;
            }
            if *at < since {
                break;
            }
            figures.count += 1;
            figures.sum_minor_units = figures.sum_minor_units.saturating_add(*minor_units);
        }
        figures
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
    fn payments_at_or_after_the_instant_asked_about_do_not_count() {
        let book = VelocityBook::new();
        let usd = Currency::parse("USD").expect("USD");
        book.record(&payment("A", "B", "1.00", "USD"), 1000);
        assert_eq!(book.figures(Scope::Debtor("A"), usd, 60, 1000).count, 0);
        assert_eq!(book.figures(Scope::Debtor("A"), usd, 60, 1001).count, 1);
    }
}
