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

use payrules::lists::NamedList;
use payrules::model::{self, Payment, Rail, RuleKind, RuleOutcome, RuleRun};
use payrules::pipeline::{Pipeline, combine};
use payrules::registry::{Manifest, RuleSet};
use payrules::runtime::{RuleContext, Runtime, WarmInstances};
use payrules::velocity::{Scope, VelocityBook};
use payrules_sdk as sdk;

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
    let native = NativeRules::load();

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
    let warm_dir = warm_copy_of_the_example_rules();
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
            |velocity| black_box(native.evaluate(&payment, &velocity)),
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
    let floor = native.evaluate(&payment, &VelocityBook::new());
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
}

/// Each rule's answer, for comparing decisions.
fn outcomes(decision: &model::Decision) -> Vec<(String, RuleOutcome)> {
    decision
        .rules
        .iter()
        .map(|run| (run.name.clone(), run.outcome.clone()))
        .collect()
}

/// The example rules in a temporary directory, each manifest asking for warm isolation.
fn warm_copy_of_the_example_rules() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temporary directory");
    copy_dir(&workspace().join("examples/rules"), dir.path());
    for entry in std::fs::read_dir(dir.path()).expect("read the copy") {
        let path = entry.expect("entry").path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        let manifest =
            name.ends_with(".toml") && !name.ends_with(".vectors.toml") && name != "pipeline.toml";
        if manifest {
            let text = std::fs::read_to_string(&path).expect("manifest");
            std::fs::write(&path, format!("isolation = \"warm\"\n{text}")).expect("write");
        }
    }
    dir
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("create");
    for entry in std::fs::read_dir(from).expect("read") {
        let entry = entry.expect("entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy");
        }
    }
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

/// The four example rules, natively: their own code, their manifests' configuration,
/// the host's list index and velocity book.
struct NativeRules {
    sanctions: (BTreeMap<String, String>, NamedList),
    limits: BTreeMap<String, String>,
    velocity: BTreeMap<String, String>,
    router: (BTreeMap<String, String>, NamedList, NamedList),
    policy: payrules::registry::PipelinePolicy,
}

impl NativeRules {
    fn load() -> NativeRules {
        let dir = workspace().join("examples/rules");
        let config = |name: &str| {
            let text = std::fs::read_to_string(dir.join(format!("{name}.toml"))).expect("manifest");
            Manifest::parse(name, &text).expect("valid manifest").config
        };
        let list = |file: &str, csv: bool| {
            NamedList::parse(
                &std::fs::read(dir.join("lists").join(file)).expect("list"),
                csv,
            )
            .expect("valid list")
        };
        let policy = payrules::registry::PipelinePolicy::parse(
            &std::fs::read_to_string(dir.join("pipeline.toml")).expect("policy"),
        )
        .expect("valid policy");
        NativeRules {
            sanctions: (config("sanctions-screening"), list("sdn-sample.csv", true)),
            limits: config("limits"),
            velocity: config("velocity-risk"),
            router: (
                config("rail-router"),
                list("fednow-participants.txt", false),
                list("rtp-participants.txt", false),
            ),
            policy,
        }
    }

    fn evaluate(&self, payment: &Payment, velocity: &VelocityBook) -> model::Decision {
        let guest = sdk_payment(payment);
        let mut runs = Vec::with_capacity(4);

        let screening = sanctions_screening::Screening::read(&self.sanctions.0);
        let hits: Vec<_> = guest
            .named_parties()
            .into_iter()
            .filter_map(|(role, party)| {
                let name = party.name.clone()?;
                let matches: Vec<_> = self
                    .sanctions
                    .1
                    .fuzzy_match(&name, screening.weak_match, 3, None)
                    .expect("a payment's party name is within the bound")
                    .into_iter()
                    .map(|m| sdk::lists::ListMatch {
                        entry_id: m.entry.id,
                        entry_name: m.entry.name,
                        matched_name: m.matched_name,
                        similarity: m.similarity,
                        program: m.entry.program,
                    })
                    .collect();
                (!matches.is_empty()).then_some(sanctions_screening::PartyHits {
                    role,
                    name,
                    matches,
                })
            })
            .collect();
        let disguised: Vec<_> = guest
            .named_parties()
            .into_iter()
            .filter_map(|(role, party)| {
                let name = party.name.clone()?;
                let disguises = sdk::names::disguises(&name);
                (!disguises.is_empty()).then_some(sanctions_screening::DisguisedName {
                    role,
                    name,
                    disguises,
                })
            })
            .collect();
        runs.push(run(
            "sanctions-screening",
            RuleKind::Compliance,
            verdict(sanctions_screening::verdict(
                &hits,
                &disguised,
                screening.strong_match,
            )),
        ));

        let limits = limits::Limits::read(&guest, &self.limits);
        runs.push(run(
            "limits",
            RuleKind::Compliance,
            verdict(limits::verdict(&guest, &limits)),
        ));

        let (debtor, creditor) = (payment.debtor_account(), payment.creditor_account());
        let figures =
            |scope, window| velocity.figures(scope, payment.currency, window, NOW_UNIX_MS);
        let day = 86_400;
        let month = figures(Scope::Debtor(debtor), 30 * day);
        let signals = velocity_risk::Signals {
            debtor_last_hour: figures(Scope::Debtor(debtor), 3_600).count,
            debtor_last_day: figures(Scope::Debtor(debtor), day).count,
            debtor_last_30_days: (month.count, month.sum_minor_units),
            pair_last_day: figures(Scope::Pair(debtor, creditor), day).count,
            pair_last_90_days: figures(Scope::Pair(debtor, creditor), 90 * day).count,
        };
        let settings = velocity_risk::Settings::read(guest.amount.scale, &self.velocity);
        let risk = velocity_risk::score(&guest, &signals, &settings);
        runs.push(run(
            "velocity-risk",
            RuleKind::Fraud,
            RuleOutcome::Score {
                score: risk.score,
                reasons: risk
                    .reasons
                    .into_iter()
                    .map(|r| model::RiskReason {
                        code: r.code,
                        points: r.points,
                        message: r.message,
                    })
                    .collect(),
            },
        ));

        let candidates: Vec<sdk::Rail> = self
            .policy
            .routing
            .candidates
            .iter()
            .map(|rail| sdk_rail(*rail))
            .collect();
        let routing = rail_router::Routing::remembered(&guest, &candidates, &self.router.0);
        let now = sdk::clock::Instant {
            unix_ms: NOW_UNIX_MS,
            date: sdk::Date {
                year: 2026,
                month: 11,
                day: 24,
            },
            minute_of_day: 600,
            weekday: 2,
        };
        let on_list = |list: &str, id: &str| match list {
            "fednow-participants" => self.router.1.contains(id),
            "rtp-participants" => self.router.2.contains(id),
            _ => false,
        };
        let outcome = match rail_router::choose(&guest, &routing, &now, on_list) {
            Ok(choice) => RuleOutcome::Route {
                rail: model_rail(choice.rail),
                explanation: choice.explanation,
            },
            Err(reason) => RuleOutcome::Decline {
                reason: model_reason(reason),
            },
        };
        runs.push(run("rail-router", RuleKind::Routing, outcome));

        let combined = combine::combine(&runs, &self.policy.fraud);
        model::Decision {
            payment_id: "bench".to_owned(),
            end_to_end_id: payment.end_to_end_id.to_string(),
            status: combined.status,
            reasons: combined.reasons,
            risk_score: combined.risk_score,
            route: combined.route,
            rule_set_version: String::new(),
            canary: false,
            decided_at_unix_ms: NOW_UNIX_MS,
            rules: runs,
        }
    }
}

fn run(name: &str, kind: RuleKind, outcome: RuleOutcome) -> RuleRun {
    RuleRun {
        name: name.to_owned(),
        kind,
        version: String::new(),
        outcome,
        duration_us: 0,
        instantiation_us: 0,
        fuel_used: 0,
        logs: Vec::new(),
    }
}

fn model_reason(reason: sdk::Reason) -> model::Reason {
    model::Reason {
        code: reason.code,
        message: reason.message,
        rule: None,
    }
}

fn verdict(verdict: sdk::Verdict) -> RuleOutcome {
    match verdict {
        sdk::Verdict::Pass => RuleOutcome::Pass,
        sdk::Verdict::Review(findings) => RuleOutcome::Review {
            findings: findings.into_iter().map(model_reason).collect(),
        },
        sdk::Verdict::Reject(reason) => RuleOutcome::Reject {
            reason: model_reason(reason),
        },
    }
}

const RAILS: [(Rail, sdk::Rail); 7] = [
    (Rail::Rtp, sdk::Rail::Rtp),
    (Rail::Fednow, sdk::Rail::Fednow),
    (Rail::Ach, sdk::Rail::Ach),
    (Rail::SepaInstant, sdk::Rail::SepaInstant),
    (Rail::SepaCreditTransfer, sdk::Rail::SepaCreditTransfer),
    (Rail::Swift, sdk::Rail::Swift),
    (Rail::BookTransfer, sdk::Rail::BookTransfer),
];

fn sdk_rail(rail: Rail) -> sdk::Rail {
    RAILS
        .iter()
        .find(|(model, _)| *model == rail)
        .map(|(_, sdk)| *sdk)
        .expect("every rail maps")
}

fn model_rail(rail: sdk::Rail) -> Rail {
    RAILS
        .iter()
        .find(|(_, sdk)| *sdk == rail)
        .map(|(model, _)| *model)
        .expect("every rail maps")
}

/// The payment as a native rule sees it: the copy the host would marshal into the guest.
fn sdk_payment(payment: &Payment) -> sdk::Payment {
    let money = payment.money();
    let text = |t: &Option<model::Text<35>>| t.as_ref().map(ToString::to_string);
    let agent = |a: &model::Agent| sdk::Agent {
        bic: a.bic.as_ref().map(|b| b.as_str().to_owned()),
        member_id: a.member_id.as_ref().map(ToString::to_string),
        name: a.name.as_ref().map(ToString::to_string),
        country: a
            .country
            .as_ref()
            .map(|c| c.as_str().to_owned())
            .or_else(|| a.bic.as_ref().map(|b| b.country().to_owned())),
    };
    let party = |p: &model::Party| sdk::Party {
        name: p.name.as_ref().map(ToString::to_string),
        country: p.country.as_ref().map(|c| c.as_str().to_owned()),
        address: p.address.as_ref().map(|a| sdk::PostalAddress {
            street_name: a.street_name.as_ref().map(ToString::to_string),
            building_number: a.building_number.as_ref().map(ToString::to_string),
            post_code: a.post_code.as_ref().map(ToString::to_string),
            town_name: a.town_name.as_ref().map(ToString::to_string),
            country_sub_division: a.country_sub_division.as_ref().map(ToString::to_string),
            address_lines: a
                .address_lines
                .lines()
                .iter()
                .map(ToString::to_string)
                .collect(),
        }),
        account: p.account.as_ref().map(|a| match &a.iban {
            Some(iban) => sdk::AccountId::Iban(iban.as_str().to_owned()),
            None => sdk::AccountId::Other(a.identifier().to_owned()),
        }),
    };
    sdk::Payment {
        payment_id: "bench".to_owned(),
        end_to_end_id: payment.end_to_end_id.to_string(),
        instruction_id: text(&payment.instruction_id),
        uetr: payment.uetr.as_ref().map(|u| u.as_str().to_owned()),
        amount: sdk::Money {
            minor_units: money.minor_units(),
            currency: money.currency().code().to_owned(),
            scale: money.currency().minor_digits(),
        },
        debtor: party(&payment.debtor),
        debtor_agent: agent(&payment.debtor_agent),
        creditor: party(&payment.creditor),
        creditor_agent: agent(&payment.creditor_agent),
        ultimate_debtor: payment.ultimate_debtor.as_ref().map(party),
        ultimate_creditor: payment.ultimate_creditor.as_ref().map(party),
        intermediary_agents: payment.intermediary_agents.iter().map(agent).collect(),
        charge_bearer: payment.charge_bearer.map(|c| match c {
            model::ChargeBearer::DEBT => sdk::ChargeBearer::Debt,
            model::ChargeBearer::CRED => sdk::ChargeBearer::Cred,
            model::ChargeBearer::SHAR => sdk::ChargeBearer::Shar,
            model::ChargeBearer::SLEV => sdk::ChargeBearer::Slev,
        }),
        purpose: text(&payment.purpose),
        category_purpose: text(&payment.category_purpose),
        remittance: payment.remittance.as_ref().map(ToString::to_string),
        requested_execution_date: payment.requested_execution_date.map(|d| sdk::Date {
            year: d.year,
            month: d.month,
            day: d.day,
        }),
        urgency: match payment.urgency {
            model::Urgency::Normal => sdk::Urgency::Normal,
            model::Urgency::Urgent => sdk::Urgency::Urgent,
            model::Urgency::Instant => sdk::Urgency::Instant,
        },
        channel: text(&payment.channel),
    }
}

criterion_group!(benches, pipeline);
criterion_main!(benches);
