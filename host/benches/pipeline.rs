//! Run: `cargo bench -p payrules --bench pipeline`
//!
//! The whole pipeline with the four example rules on a realistic payment (a SEPA Instant
//! supplier payment that every rule sees), in the sandbox with a fresh instance per rule
//! per payment and every bound enforced, beside the same four rules run as plain native
//! Rust (the floor: the rules' own code and configuration parsing, the host's list index
//! and velocity book, the same combining). Then the cost per rule, split into
//! instantiation, marshalling (a rule that does nothing with the same payment) and the
//! rule's own work. See BENCHMARKS.md.

#![allow(missing_docs, clippy::float_arithmetic, clippy::print_stdout)]

use std::collections::BTreeMap;
use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};

use payrules::model::{self, Payment, RuleKind, RuleOutcome};
use payrules::pipeline::Pipeline;
use payrules::registry::RuleSet;
use payrules::runtime::{RuleContext, Runtime, WarmInstances};
use payrules::velocity::VelocityBook;

mod floor;
use floor::NativeRules;

/// Tuesday 2026-11-24 10:00 UTC.
const NOW_UNIX_MS: i64 = 1_795_514_400_000;

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn bench_payment() -> Payment {
    let text =
        std::fs::read_to_string(workspace().join("examples/payments/sepa-instant-supplier.json"))
            .expect("example payment");
    Payment::from_json(&text).expect("valid payment")
}

fn pipeline(c: &mut Criterion) {
    let runtime = Arc::new(Runtime::new().expect("runtime"));
    let rules =
        RuleSet::load(&workspace().join("examples/rules"), &runtime).expect("example rules");
    let payment = bench_payment();
    let native = NativeRules::load(&workspace().join("examples/rules"));

    let mut group = c.benchmark_group("pipeline");
    group.bench_function("wasm: 4 rules, fresh instance each", |b| {
        b.iter_batched(
            || Pipeline::new(Arc::clone(&runtime), Arc::new(VelocityBook::new())),
            |pipeline| black_box(pipeline.evaluate(&rules, &payment, "bench", NOW_UNIX_MS)),
            BatchSize::SmallInput,
        );
    });
    // The service's pipeline: the same, with each rule's circuit breaker consulted and
    // told the outcome (all closed here: what every healthy payment pays).
    group.bench_function(
        "wasm: 4 rules, fresh instance each, circuit breakers on",
        |b| {
            b.iter_batched(
                || {
                    Pipeline::new(Arc::clone(&runtime), Arc::new(VelocityBook::new()))
                        .with_breakers(payrules::registry::breaker::BreakerPolicy {
                            failures: 5,
                            failure_rate_percent: 50,
                            window: Duration::from_secs(10),
                            cool_down: Duration::from_secs(30),
                        })
                },
                |(pipeline, _transitions)| {
                    black_box(pipeline.evaluate(&rules, &payment, "bench", NOW_UNIX_MS))
                },
                BatchSize::SmallInput,
            );
        },
    );
    // The same rules with `isolation = "warm"`: each keeps an instance on the bench's
    // thread (as on a decider), every per-call bound still enforced.
    let warm_dir = floor::warm_copy_of_the_example_rules(&workspace().join("examples/rules"));
    let warm_rules = RuleSet::load(warm_dir.path(), &runtime).expect("warm example rules");
    let mut warm = WarmInstances::new();
    group.bench_function("wasm: 4 rules, warm instances", |b| {
        b.iter_batched(
            || Pipeline::new(Arc::clone(&runtime), Arc::new(VelocityBook::new())),
            |pipeline| {
                black_box(pipeline.evaluate_warm(
                    &mut warm,
                    &warm_rules,
                    &payment,
                    "bench",
                    NOW_UNIX_MS,
                ))
            },
            BatchSize::SmallInput,
        );
    });
    println!(
        "warm instances made: {} (recycled after {} payments, or when a call grows memory)",
        warm.instantiated(),
        payrules::runtime::WarmPolicy::default().recycle_after
    );
    group.bench_function("native: the same 4 rules as Rust functions", |b| {
        b.iter_batched(
            VelocityBook::new,
            |velocity| black_box(native.evaluate(&payment, &velocity, NOW_UNIX_MS)),
            BatchSize::SmallInput,
        );
    });
    group.finish();

    // Both must decide alike, or the comparison means nothing.
    let wasm = Pipeline::new(Arc::clone(&runtime), Arc::new(VelocityBook::new())).evaluate(
        &rules,
        &payment,
        "bench",
        NOW_UNIX_MS,
    );
    let floor = native.evaluate(&payment, &VelocityBook::new(), NOW_UNIX_MS);
    let warmed = Pipeline::new(Arc::clone(&runtime), Arc::new(VelocityBook::new())).evaluate_warm(
        &mut warm,
        &warm_rules,
        &payment,
        "bench",
        NOW_UNIX_MS,
    );
    assert_eq!(
        outcomes(&warmed),
        outcomes(&wasm),
        "warm and fresh instances decide alike"
    );
    assert_eq!(wasm.status, floor.status);
    assert_eq!(
        wasm.route.as_ref().map(|r| r.rail),
        floor.route.as_ref().map(|r| r.rail)
    );
    assert_eq!(wasm.risk_score, floor.risk_score);

    breakdown(&runtime, &rules, &payment);
    load_cost(&rules);
}

/// What preparation costs at load: each example rule's component compiled as it is, and
/// made into its rule version as a load does (prepared, for the rules that prepare: the
/// instrumented component compiled, `prepare` run, the snapshot compiled), on a fresh
/// runtime with no code cache; the median of a few rounds.
fn load_cost(rules: &RuleSet) {
    const ROUNDS: usize = 5;
    println!("\nat load, median of {ROUNDS} (ms): compiled as it is / made into its rule version");
    for rule in rules.rules() {
        let file = rule.manifest.component.clone();
        let wasm = std::fs::read(workspace().join("examples/rules").join(file)).expect("component");
        let (mut plain, mut made) = (Vec::new(), Vec::new());
        for _ in 0..ROUNDS {
            let runtime = Runtime::new().expect("runtime");
            let started = std::time::Instant::now();
            runtime
                .compile(&wasm, rule.manifest.kind, &rule.manifest.capabilities)
                .expect("compiles");
            plain.push(started.elapsed());
            let runtime = Runtime::new().expect("runtime");
            let started = std::time::Instant::now();
            let compiled = runtime
                .compile_rule(
                    &wasm,
                    rule.manifest.kind,
                    &rule.manifest.capabilities,
                    &rule.context,
                )
                .expect("compiles");
            made.push(started.elapsed());
            assert_eq!(compiled.prepared(), rule.compiled.prepared());
        }
        plain.sort();
        made.sort();
        println!(
            "{:<22} {:>8.1} {:>8.1}{}",
            rule.manifest.name,
            plain[ROUNDS / 2].as_secs_f64() * 1e3,
            made[ROUNDS / 2].as_secs_f64() * 1e3,
            if rule.compiled.prepared() {
                "  (prepared)"
            } else {
                ""
            }
        );
    }
}

/// Each rule's answer, for comparing decisions.
fn outcomes(decision: &model::Decision) -> Vec<(String, RuleOutcome)> {
    decision
        .rules
        .iter()
        .map(|run| (run.name.clone(), run.outcome.clone()))
        .collect()
}

/// Per rule: median instantiation, call, and the call of a rule that does nothing with
/// the same payment (marshalling), over many evaluations.
fn breakdown(runtime: &Runtime, rules: &RuleSet, payment: &Payment) {
    const SAMPLES: usize = 5_000;
    let noop = noop_rule(runtime);
    let minimal = Payment::from_json(
        r#"{"end_to_end_id": "E", "amount": "1", "currency": "EUR",
            "debtor": {"name": "A", "account": {"id": "1"}}, "debtor_agent": {"member_id": "1"},
            "creditor": {"name": "B", "account": {"id": "2"}}, "creditor_agent": {"member_id": "2"}}"#,
    )
    .expect("minimal payment");
    let velocity = Arc::new(VelocityBook::new());
    let mut instantiate: BTreeMap<String, Vec<Duration>> = BTreeMap::new();
    let mut call: BTreeMap<String, Vec<Duration>> = BTreeMap::new();
    let mut fuel: BTreeMap<String, u64> = BTreeMap::new();
    let mut record = |name: &str, result: &payrules::runtime::RuleRunResult| {
        assert!(result.outcome.is_ok(), "{name}: {:?}", result.outcome);
        instantiate
            .entry(name.to_owned())
            .or_default()
            .push(result.instantiation);
        call.entry(name.to_owned())
            .or_default()
            .push(result.duration - result.instantiation);
        fuel.insert(name.to_owned(), result.fuel_used);
    };
    let candidates = &rules.policy.routing.candidates;
    let mut opening = Vec::with_capacity(SAMPLES);
    let mut closing = Vec::with_capacity(SAMPLES);
    for _ in 0..SAMPLES {
        let started = std::time::Instant::now();
        let mut evaluation =
            runtime.evaluation(payment, "bench", NOW_UNIX_MS, Arc::clone(&velocity));
        opening.push(started.elapsed());
        for rule in rules.rules() {
            let result = match rule.manifest.kind {
                RuleKind::Compliance => evaluation.check(&rule.compiled, &rule.context),
                RuleKind::Fraud => evaluation.score(&rule.compiled, &rule.context),
                RuleKind::Routing => evaluation.route(&rule.compiled, &rule.context, candidates),
            };
            record(&rule.manifest.name, &result);
        }
        let result = evaluation.check(&noop.0, &noop.1);
        record("(no-op rule)", &result);
        let started = std::time::Instant::now();
        drop(evaluation);
        closing.push(started.elapsed());
        // The same no-op rule with the smallest valid payment: the difference is what
        // marshalling the realistic payment's fields costs.
        let mut minimal_evaluation =
            runtime.evaluation(&minimal, "bench", NOW_UNIX_MS, Arc::clone(&velocity));
        let result = minimal_evaluation.check(&noop.0, &noop.1);
        record("(no-op, minimal payment)", &result);
    }
    let median = |samples: &mut Vec<Duration>| {
        samples.sort();
        samples[samples.len() / 2].as_secs_f64() * 1e6
    };
    let noop_call = median(call.get_mut("(no-op rule)").expect("noop samples"));
    println!("\nper-rule breakdown, median of {SAMPLES} evaluations (µs):");
    println!(
        "{:<22} {:>12} {:>12} {:>14} {:>10}",
        "rule", "instantiate", "call", "own work*", "fuel"
    );
    let mut total = 0.0;
    for (name, samples) in &mut instantiate {
        let instantiate = median(samples);
        let call = median(call.get_mut(name).expect("call samples"));
        let own = (call - noop_call).max(0.0);
        if !name.starts_with("(no-op") {
            total += instantiate + call;
        }
        println!(
            "{name:<22} {instantiate:>12.2} {call:>12.2} {own:>14.2} {:>10}",
            fuel[name]
        );
    }
    println!("sum of the four rules' medians: {total:.2} µs");
    println!(
        "per payment: opening the store and marshalling the payment {:.2} µs, closing it (5 instances back to the pool) {:.2} µs",
        median(&mut opening),
        median(&mut closing)
    );
    println!(
        "* own work = call − the no-op rule's call (which is marshalling the payment in and the verdict out)"
    );
}

/// The test suite's misbehaving rule in its `pass` behaviour: it reads one config key
/// and passes, so its call is the cost of crossing the boundary with the payment.
fn noop_rule(runtime: &Runtime) -> (payrules::runtime::CompiledRule, Arc<RuleContext>) {
    let wasm = std::fs::read(payrules_rule_artifacts::MISBEHAVING).expect("misbehaving component");
    let compiled = runtime
        .compile(
            &wasm,
            RuleKind::Compliance,
            &[
                payrules::runtime::Capability::Config,
                payrules::runtime::Capability::Log,
            ],
        )
        .expect("compiles");
    let context = Arc::new(RuleContext {
        name: "noop".to_owned(),
        limits: payrules::runtime::RuleLimits::default(),
        config: BTreeMap::from([("behaviour".to_owned(), "pass".to_owned())]),
        lists: BTreeMap::new(),
        isolation: payrules::runtime::Isolation::Fresh,
        warm: payrules::runtime::WarmRecord::default(),
    });
    (compiled, context)
}

criterion_group!(benches, pipeline);
criterion_main!(benches);
