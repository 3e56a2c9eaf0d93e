//! Run: `cargo bench -p payrules --bench overview`
//!
//! What the overview's tally adds to each decision: its decision's counts and each rule's
//! time and fuel histograms, and the submission's latency, under one mutex — beside the
//! Prometheus metrics every decision records anyway (which now include the tally), and
//! serialising the decision (work every commit does anyway), on the decision of the
//! `weak-match-review` example (four rules).

#![allow(missing_docs)]

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use payrules::model::Decision;
use payrules::telemetry::Metrics;
use payrules::telemetry::overview::Overview;

const DECISION: &str = include_str!("fixtures/decision.json");

fn overview(c: &mut Criterion) {
    let decision: Decision = serde_json::from_str(DECISION.trim()).expect("the decision");
    let tally = Overview::default();
    let metrics = Metrics::new();
    let mut group = c.benchmark_group("overview");
    group.bench_function("serialise the decision (baseline)", |b| {
        b.iter(|| black_box(serde_json::to_string(black_box(&decision)).unwrap()));
    });
    group.bench_function("the overview's tally: decision and latency", |b| {
        b.iter(|| {
            tally.decision(black_box(&decision));
            tally.answered(black_box(Duration::from_micros(1_234)));
        });
    });
    group.bench_function(
        "every metric of a decision (Prometheus and the tally)",
        |b| {
            b.iter(|| {
                metrics.decision(black_box(&decision));
                metrics.request("/v1/payments", "POST", 201, black_box(0.001_234));
            });
        },
    );
    group.finish();
}

criterion_group!(benches, overview);
criterion_main!(benches);
