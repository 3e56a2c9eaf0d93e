//! Run: `cargo bench -p payrules --bench sealing`
//!
//! What sealing personal data at rest adds to each stored decision: a payment (the
//! `weak-match-review` example) and its decision (2 KB, with a screening reason that quotes
//! the matched name), serialised as the store writes them — the baseline, work every
//! commit does anyway — then serialised and sealed (AES-256-GCM under the day's data key,
//! base64url), and read back: opened and parsed, beside parsing alone.

#![allow(missing_docs)]

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use payrules::model::{Decision, Payment};
use payrules::store::personal::{MasterKeys, PersonalData, context};

const PAYMENT: &str = include_str!("../../examples/payments/weak-match-review.json");
const DECISION: &str = include_str!("fixtures/decision.json");
const NOW: i64 = 1_795_000_000_000;

fn sealing(c: &mut Criterion) {
    let payment = Payment::from_json(PAYMENT).expect("the example payment");
    let decision: Decision = serde_json::from_str(DECISION.trim()).expect("the decision");
    let master = MasterKeys::parse(&format!("bench {}", "42".repeat(32)), "bench").expect("a key");
    let sealer = PersonalData::new(master);
    let keys = sealer.to_make(NOW).expect("keys");
    sealer.absorb(&keys).expect("held");
    let id = decision.payment_id.clone();
    let (payment_at, decision_at) = (context::payment(&id), context::decision(&id));

    let mut group = c.benchmark_group("sealing");
    group.bench_function("write: serialise payment and decision (baseline)", |b| {
        b.iter(|| {
            let p = serde_json::to_string(black_box(&payment)).unwrap();
            let d = serde_json::to_string(black_box(&decision)).unwrap();
            black_box((p, d))
        });
    });
    group.bench_function("write: serialise and seal both", |b| {
        b.iter(|| {
            let p = serde_json::to_string(black_box(&payment)).unwrap();
            let d = serde_json::to_string(black_box(&decision)).unwrap();
            let p = sealer.seal(&payment_at, &p, NOW).unwrap();
            let d = sealer.seal(&decision_at, &d, NOW).unwrap();
            black_box((p, d))
        });
    });
    // Five years of day keys held (a retention of 1,827 days): sealing still finds today's
    // key by its id, not by a search.
    let years = PersonalData::new(
        MasterKeys::parse(&format!("bench {}", "43".repeat(32)), "bench").expect("a key"),
    );
    for day in 0..1_827_i64 {
        let keys = years.to_make(NOW - day * 86_400_000).expect("keys");
        years.absorb(&keys).expect("held");
    }
    group.bench_function(
        "write: serialise and seal both, five years of day keys held",
        |b| {
            b.iter(|| {
                let p = serde_json::to_string(black_box(&payment)).unwrap();
                let d = serde_json::to_string(black_box(&decision)).unwrap();
                let p = years.seal(&payment_at, &p, NOW).unwrap();
                let d = years.seal(&decision_at, &d, NOW).unwrap();
                black_box((p, d))
            });
        },
    );
    let plain = (
        serde_json::to_string(&payment).unwrap(),
        serde_json::to_string(&decision).unwrap(),
    );
    let sealed = (
        sealer.seal(&payment_at, &plain.0, NOW).unwrap(),
        sealer.seal(&decision_at, &plain.1, NOW).unwrap(),
    );
    group.bench_function("read: parse payment and decision (baseline)", |b| {
        b.iter(|| {
            let p = Payment::from_json(black_box(&plain.0)).unwrap();
            let d: Decision = serde_json::from_str(black_box(&plain.1)).unwrap();
            black_box((p, d))
        });
    });
    group.bench_function("read: open and parse both", |b| {
        b.iter(|| {
            let p = sealer.open(&payment_at, black_box(&sealed.0)).unwrap();
            let d = sealer.open(&decision_at, black_box(&sealed.1)).unwrap();
            let p = Payment::from_json(&p).unwrap();
            let d: Decision = serde_json::from_str(&d).unwrap();
            black_box((p, d))
        });
    });
    group.finish();
}

criterion_group!(benches, sealing);
criterion_main!(benches);
