//! Run: `bench/peers/run.sh [ROUNDS]` (or `cargo run --release` here).
//!
//! The example rules' decision — sanctions screening, limits, velocity risk, rail routing,
//! combined as payrules' pipeline combines them — made by payrules (a fresh instance per
//! rule, and warm instances), by GoRules zen-engine (a JDM graph), by Rhai (a compiled
//! script with operation limits) and by native Rust (the floor: the rules' own code
//! compiled for this machine). First every engine decides 1,000 seeded payments and must
//! give payrules' decision for each (status, reason codes, risk score, rail); then each
//! decides them all again, `ROUNDS` times, engines interleaved, on one thread, and the
//! median time per payment is reported with its ratio to the floor.
//!
//! Its own workspace: not built by CI or the README's commands. See BENCHMARKS.md.

mod facts;
#[path = "../../../host/benches/floor/mod.rs"]
mod floor;
mod payments;
mod rhai_peer;
mod zen_peer;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use payrules::lists::NamedList;
use payrules::pipeline::Pipeline;
use payrules::registry::RuleSet;
use payrules::runtime::{Runtime, WarmInstances};

use facts::Outcome;
use payments::Seeded;
// Building it builds the example rules' components into examples/rules.
use payrules_rule_artifacts as _;

const PAYMENTS: usize = 1_000;

/// One engine: its name and how it decides a payment.
struct Engine<'a> {
    name: &'static str,
    decide: Box<dyn FnMut(&Seeded) -> Outcome + 'a>,
    /// What one decision cost, for every decision timed.
    times: Vec<Duration>,
}

fn main() -> ExitCode {
    let rounds: usize = match std::env::args().nth(1).map(|arg| arg.parse()) {
        None => 5,
        Some(Ok(rounds)) if rounds > 0 => rounds,
        Some(_) => {
            eprintln!("usage: payrules-peers [ROUNDS]   (ROUNDS: a whole number, at least 1)");
            return ExitCode::FAILURE;
        }
    };
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let rules_dir = root.join("examples/rules");
    let list = |file: &str, csv: bool| {
        let bytes = std::fs::read(rules_dir.join("lists").join(file)).expect("list");
        Arc::new(NamedList::parse(&bytes, csv).expect("valid list"))
    };
    let sanctions = list("sdn-sample.csv", true);

    let runtime = Arc::new(Runtime::new().expect("runtime"));
    let fresh_rules = RuleSet::load(&rules_dir, &runtime).expect("the example rules load");
    let warm_dir = floor::warm_copy_of_the_example_rules(&rules_dir);
    let warm_rules = RuleSet::load(warm_dir.path(), &runtime).expect("warm example rules");
    let (payments, book) = payments::seeded(PAYMENTS);
    let book = Arc::new(book);
    let pipeline = Pipeline::new(Arc::clone(&runtime), Arc::clone(&book));
    let native = floor::NativeRules::load(&rules_dir);
    let rhai = rhai_peer::RhaiPeer::new(
        Arc::clone(&sanctions),
        list("fednow-participants.txt", false),
        list("rtp-participants.txt", false),
    );
    let zen = zen_peer::ZenPeer::new();
    let mut warm = WarmInstances::new();

    let mut engines = vec![
        Engine {
            name: "payrules, fresh instance per rule",
            decide: Box::new(|s: &Seeded| {
                Outcome::of(&pipeline.evaluate(&fresh_rules, &s.payment, "peers", s.now_unix_ms))
            }),
            times: Vec::new(),
        },
        Engine {
            name: "payrules, warm instances",
            decide: Box::new(|s: &Seeded| {
                Outcome::of(&pipeline.evaluate_warm(
                    &mut warm,
                    &warm_rules,
                    &s.payment,
                    "peers",
                    s.now_unix_ms,
                ))
            }),
            times: Vec::new(),
        },
        Engine {
            name: "zen-engine (JDM graph)",
            decide: Box::new(|s: &Seeded| zen.decide(&s.payment, &book, &sanctions, s.now_unix_ms)),
            times: Vec::new(),
        },
        Engine {
            name: "Rhai (compiled script)",
            decide: Box::new(|s: &Seeded| rhai.decide(&s.payment, &book, s.now_unix_ms)),
            times: Vec::new(),
        },
        Engine {
            name: "native Rust (the floor)",
            decide: Box::new(|s: &Seeded| {
                Outcome::of(&native.evaluate(&s.payment, &book, s.now_unix_ms))
            }),
            times: Vec::new(),
        },
    ];

    // Every engine must give payrules' fresh decision for every payment, or the times
    // compare different work.
    let mut disagreements = 0;
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for (index, seeded) in payments.iter().enumerate() {
        let expected = (engines[0].decide)(seeded);
        *seen
            .entry(format!("status {}", expected.status))
            .or_default() += 1;
        for code in &expected.codes {
            *seen.entry(format!("code {code}")).or_default() += 1;
        }
        if let Some(rail) = &expected.rail {
            *seen.entry(format!("rail {rail}")).or_default() += 1;
        }
        if expected.score.is_some_and(|score| score > 0) {
            *seen.entry("a risk score above 0".to_owned()).or_default() += 1;
        }
        for engine in &mut engines[1..] {
            let got = (engine.decide)(seeded);
            if got != expected {
                disagreements += 1;
                if disagreements <= 10 {
                    eprintln!(
                        "payment {index} ({}): {} decided {got:?}, payrules {expected:?}\n{}",
                        seeded.payment.end_to_end_id,
                        engine.name,
                        serde_json::to_string(&seeded.payment).unwrap_or_default()
                    );
                }
            }
        }
    }
    if disagreements > 0 {
        eprintln!(
            "{disagreements} decisions differ from payrules': the engines do not run the same logic"
        );
        return ExitCode::FAILURE;
    }
    println!(
        "{PAYMENTS} seeded payments: every engine gives payrules' decision for each (status, reason codes, risk score, rail). What they exercise:"
    );
    for (what, count) in &seen {
        println!("  {what:<32} {count:>5}");
    }

    for _ in 0..rounds {
        for engine in &mut engines {
            for seeded in &payments {
                let started = Instant::now();
                let outcome = (engine.decide)(seeded);
                engine.times.push(started.elapsed());
                std::hint::black_box(outcome);
            }
        }
    }
    let median = |times: &mut Vec<Duration>| {
        times.sort_unstable();
        times[times.len() / 2]
    };
    let mut medians: Vec<(&str, Duration, Duration)> = engines
        .iter_mut()
        .map(|engine| {
            let total: Duration = engine.times.iter().sum();
            let mean = total / u32::try_from(engine.times.len()).expect("few samples");
            (engine.name, median(&mut engine.times), mean)
        })
        .collect();
    let floor = medians.last().expect("the floor").1;
    println!(
        "\n{rounds} rounds of {PAYMENTS} payments, one thread, engines interleaved by round:\n"
    );
    println!("| engine | median per payment | mean | median / floor |");
    println!("|---|---|---|---|");
    for (name, median, mean) in medians.drain(..) {
        println!(
            "| {name} | {:.2} µs | {:.2} µs | {:.1}× |",
            median.as_nanos() as f64 / 1e3,
            mean.as_nanos() as f64 / 1e3,
            median.as_nanos() as f64 / floor.as_nanos() as f64
        );
    }
    ExitCode::SUCCESS
}
