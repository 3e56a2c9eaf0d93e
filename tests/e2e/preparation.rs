//! Preparation: a rule that exports `preparation` has its `prepare` run once per rule
//! version when it is loaded, under the rule's own bounds and without a payment, and
//! every instance of that version starts from what it made (wasmtime's Wizer keeps it).
//! The test rule `preparing` answers with what its preparation read; the example router
//! prepares its whole configuration.

use std::sync::Arc;

use payrules::model::{RuleKind, RuleOutcome};
use payrules::pipeline::Pipeline;
use payrules::registry::RuleSet;
use payrules::runtime::Runtime;
use payrules::velocity::VelocityBook;

use crate::support::{
    RulesDir, TUESDAY_MORNING_UNIX_MS, decide, example_payment, example_rules, pipeline, runtime,
    workspace,
};

/// The `preparing` rule's manifest with these `[config]` lines and extra manifest lines.
fn manifest(config: &str, extra: &str) -> String {
    format!(
        "kind = \"compliance\"\ncapabilities = [\"config\", \"velocity\", \"clock\", \"log\"]\n\
         {extra}\n[config]\n{config}\n"
    )
}

/// The `preparing` rule with these `[config]` lines and extra manifest lines.
fn preparing(config: &str, extra: &str) -> RulesDir {
    RulesDir::new().rule(
        "preparing",
        &manifest(config, extra),
        payrules_rule_artifacts::PREPARING,
    )
}

/// The code the `preparing` rule held the example payment for.
fn answer(rules: &RuleSet) -> String {
    answer_with(&pipeline(), rules)
}

/// The same, with the pipeline of the runtime that loaded `rules`.
fn answer_with(pipeline: &Pipeline, rules: &RuleSet) -> String {
    let decision = decide(
        pipeline,
        rules,
        &example_payment("sepa-instant-supplier.json"),
    );
    match &decision.rules[0].outcome {
        RuleOutcome::Review { findings } => findings[0].code.clone(),
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn every_instance_starts_from_what_the_preparation_read() {
    let rules = preparing("answer = \"blue\"", "").load();
    assert!(rules.rules()[0].compiled.prepared());
    assert_eq!(answer(&rules), "prepared-blue");
    // Again, on another fresh instance: the same prepared state, not a state carried
    // from the first payment.
    assert_eq!(answer(&rules), "prepared-blue");
}

#[test]
fn a_new_configuration_is_prepared_again_and_the_same_one_is_reused() {
    // A runtime of its own, so that its compile count is this test's alone.
    let runtime = Arc::new(Runtime::new().unwrap());
    let pipeline = Pipeline::new(Arc::clone(&runtime), Arc::new(VelocityBook::new()));
    let dir = preparing("answer = \"blue\"", "");
    let blue = RuleSet::load(dir.path(), &runtime).unwrap();
    let compiled = runtime.compiled_total();
    assert_eq!(
        compiled, 2,
        "the instrumented component and the prepared one"
    );
    let same = RuleSet::load_reusing(dir.path(), &runtime, Some(&blue)).unwrap();
    assert_eq!(answer_with(&pipeline, &same), "prepared-blue");
    assert_eq!(runtime.compiled_total(), compiled, "nothing compiled again");

    std::fs::write(
        dir.path().join("preparing.toml"),
        manifest("answer = \"green\"", ""),
    )
    .unwrap();
    let green = RuleSet::load_reusing(dir.path(), &runtime, Some(&same)).unwrap();
    assert_eq!(
        green.rules()[0].version,
        blue.rules()[0].version,
        "the same component"
    );
    assert_eq!(
        answer_with(&pipeline, &green),
        "prepared-green",
        "a new configuration is a new preparation, never the old one reused"
    );
    assert!(runtime.compiled_total() > compiled);
}

#[test]
fn a_preparation_that_breaks_a_bound_or_asks_for_a_payment_refuses_the_rule() {
    let bounds = "[limits]\nfuel = 50_000_000\ntimeout-ms = 200\nmemory-bytes-max = 8_388_608";
    for (prepare, expected) in [
        ("loop", ["FuelExhausted", "Timeout"]),
        ("trap", ["panicked", "panicked"]),
        ("memory", ["MemoryLimit", "MemoryLimit"]),
        ("clock", ["clock.now was called in `prepare`"; 2]),
        ("velocity", ["velocity.figures was called in `prepare`"; 2]),
    ] {
        let started = std::time::Instant::now();
        let error = preparing(&format!("prepare = \"{prepare}\""), bounds).load_error();
        assert!(
            error.contains("its preparation failed")
                && expected.iter().any(|word| error.contains(word)),
            "{prepare}: {error}"
        );
        assert!(
            started.elapsed() < std::time::Duration::from_secs(10),
            "{prepare}: refused in {:?}",
            started.elapsed()
        );
    }
}

#[test]
fn a_rule_without_a_preparation_is_compiled_as_before() {
    let rules = crate::support::load(&example_rules());
    for rule in rules.rules() {
        assert_eq!(
            rule.compiled.prepared(),
            ["rail-router", "velocity-risk"].contains(&rule.manifest.name.as_str()),
            "{}",
            rule.manifest.name
        );
    }
}

/// The example router prepared decides every example payment, at every urgency, as the
/// same component unprepared does, with a fraction of the fuel: its configuration is
/// read once per rule version, not once per payment.
#[test]
fn the_prepared_router_routes_as_before_on_a_fraction_of_the_fuel() {
    let runtime = runtime();
    let rules = crate::support::load(&example_rules());
    let router = rules
        .rules()
        .iter()
        .find(|rule| rule.manifest.name == "rail-router")
        .unwrap();
    assert!(router.compiled.prepared());
    let wasm = std::fs::read(example_rules().join("rail_router.wasm")).unwrap();
    let unprepared = runtime
        .compile(&wasm, RuleKind::Routing, &router.manifest.capabilities)
        .unwrap();
    assert!(!unprepared.prepared());
    let candidates = &rules.policy.routing.candidates;
    let (mut compared, mut routed) = (0, 0);
    let (mut fuel_prepared, mut fuel_unprepared) = (0, 0);
    for entry in std::fs::read_dir(workspace().join("examples/payments")).unwrap() {
        let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
        for urgency in ["instant", "urgent", "normal"] {
            let mut json: serde_json::Value = serde_json::from_str(&text).unwrap();
            json["urgency"] = serde_json::json!(urgency);
            let payment = payrules::model::Payment::from_json(&json.to_string()).unwrap();
            let run = |compiled| {
                let mut evaluation = runtime.evaluation(
                    &payment,
                    "pay_prepared",
                    TUESDAY_MORNING_UNIX_MS,
                    Arc::new(VelocityBook::new()),
                );
                evaluation.route(compiled, &router.context, candidates)
            };
            let (prepared, before) = (run(&router.compiled), run(&unprepared));
            assert_eq!(prepared.outcome, before.outcome, "{urgency}: {json}");
            if matches!(prepared.outcome, Ok(RuleOutcome::Route { .. })) {
                routed += 1;
            }
            fuel_prepared += prepared.fuel_used;
            fuel_unprepared += before.fuel_used;
            compared += 1;
        }
    }
    assert!(compared >= 21, "{compared}");
    assert!(
        fuel_prepared * 3 < fuel_unprepared,
        "prepared {fuel_prepared} fuel, unprepared {fuel_unprepared}"
    );
    assert!(routed >= 7, "most example payments get a rail: {routed}");
}
