//! Run: `cargo bench -p payrules --bench velocity`
//!
//! The velocity book on a hot account: a merchant that has received 100,000 payments in
//! the last 30 days (the most a key keeps), asked for its figures over a day and over 30
//! days, beside the same question about an account with a single payment (the floor), and
//! a payment recorded to the merchant.

#![allow(missing_docs)]

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use payrules::model::{Currency, Payment};
use payrules::velocity::{PAYMENTS_PER_KEY_MAX, Scope, VelocityBook};

const DAY_MS: i64 = 86_400_000;

fn payment(debtor: &str, creditor: &str) -> Payment {
    let json = format!(
        r#"{{"end_to_end_id":"E","amount":"19.99","currency":"EUR",
        "debtor":{{"name":"D","account":{{"id":"{debtor}"}}}},"debtor_agent":{{"member_id":"1"}},
        "creditor":{{"name":"C","account":{{"id":"{creditor}"}}}},"creditor_agent":{{"member_id":"2"}}}}"#
    );
    Payment::from_json(&json).expect("bench payment")
}

fn velocity(c: &mut Criterion) {
    let book = VelocityBook::new();
    let now = 40 * DAY_MS;
    let count = PAYMENTS_PER_KEY_MAX as i64;
    // Spread over the 30 days before `now`, each from its own customer.
    for index in 0..count {
        let at = now - 30 * DAY_MS + index * (30 * DAY_MS / count);
        book.record(&payment(&format!("CUSTOMER-{index}"), "MERCHANT"), at);
    }
    book.record(&payment("LONE-DEBTOR", "SOMEONE"), now - DAY_MS / 2);
    let eur = Currency::parse("EUR").expect("EUR");

    let mut group = c.benchmark_group("velocity");
    group.bench_function("figures, one payment, 1 day (floor)", |b| {
        b.iter(|| book.figures(Scope::Debtor(black_box("LONE-DEBTOR")), eur, 86_400, now))
    });
    group.bench_function("figures, 100k payments, 1 day", |b| {
        b.iter(|| book.figures(Scope::Creditor(black_box("MERCHANT")), eur, 86_400, now))
    });
    group.bench_function("figures, 100k payments, 30 days", |b| {
        b.iter(|| {
            book.figures(
                Scope::Creditor(black_box("MERCHANT")),
                eur,
                30 * 86_400,
                now,
            )
        })
    });
    let next = payment("CUSTOMER-NEXT", "MERCHANT");
    let mut at = now;
    group.bench_function("record, to the 100k-payment merchant", |b| {
        b.iter(|| {
            at += 1;
            book.record(black_box(&next), at);
        })
    });
    group.finish();
}

criterion_group!(benches, velocity);
criterion_main!(benches);
