//! Warm isolation: a rule whose manifest says `isolation = "warm"` keeps an instance on
//! the deciding thread from payment to payment. Each call still gets its fuel, deadline,
//! memory cap, output cap and host-call budget; the instance is replaced after a failure,
//! after a call in which its memory grew, after `recycle-after` payments, and for a new
//! rule set. The test rule `remember` answers how many payments its instance has seen.

use payrules::model::{FailureKind, RuleOutcome};
use payrules::runtime::WarmInstances;

use crate::support::{RulesDir, decide, example_payment, pipeline};

/// A compliance rule of the misbehaving component, warm, with `[warm]` and `[config]`
/// lines (and 5 million fuel, a 4 MiB memory cap).
fn warm_rule(behaviour: &str, warm: &str, config: &str) -> RulesDir {
    let manifest = format!(
        "kind = \"compliance\"\ncapabilities = [\"config\", \"log\"]\nisolation = \"warm\"\n\
         [limits]\nfuel = 5_000_000\nmemory-bytes-max = 4_194_304\n[warm]\n{warm}\n\
         [config]\nbehaviour = \"{behaviour}\"\n{config}\n"
    );
    RulesDir::new().rule("warm", &manifest, payrules_rule_artifacts::MISBEHAVING)
}

/// The payment with this end-to-end id.
fn payment(end_to_end_id: &str) -> payrules::model::Payment {
    let mut payment = example_payment("sepa-instant-supplier.json");
    let mut json = serde_json::to_value(&payment).unwrap();
    json["end_to_end_id"] = serde_json::json!(end_to_end_id);
    payment = payrules::model::Payment::from_json(&json.to_string()).unwrap();
    payment
}

/// What the rule answered: the count its instance has seen, or how it failed.
fn seen(outcome: &RuleOutcome) -> String {
    match outcome {
        RuleOutcome::Review { findings } => findings[0].message.clone(),
        RuleOutcome::Failed { failure, .. } => format!("{failure:?}"),
        other => panic!("unexpected {other:?}"),
    }
}

/// Decides the payments in order on one thread's warm instances; the rule's answers.
fn answers(
    rules: &payrules::registry::RuleSet,
    warm: &mut WarmInstances,
    ids: &[&str],
) -> Vec<String> {
    let pipeline = pipeline();
    ids.iter()
        .map(|id| {
            let decision = pipeline.evaluate_warm(warm, rules, &payment(id), "pay_warm", 0);
            seen(&decision.rules[0].outcome)
        })
        .collect()
}

#[test]
fn a_warm_rule_keeps_its_instance_until_its_recycle_after() {
    let rules = warm_rule("remember", "recycle-after = 3", "").load();
    let mut warm = WarmInstances::new();
    assert_eq!(
        answers(&rules, &mut warm, &["A", "B", "C", "D", "E"]),
        ["1", "2", "3", "1", "2"],
        "one instance for three payments, then a new one"
    );
    assert_eq!(warm.instantiated(), 2);
    // Without warm instances (a backtest, a reproduction) every payment gets a fresh one.
    for id in ["F", "G"] {
        let decision = decide(&pipeline(), &rules, &payment(id));
        assert_eq!(seen(&decision.rules[0].outcome), "1");
    }
}

#[test]
fn a_warm_instance_that_fails_is_replaced() {
    let rules = warm_rule("remember", "", "").load();
    let mut warm = WarmInstances::new();
    assert_eq!(
        answers(&rules, &mut warm, &["A", "B", "BREAK", "C", "D"]),
        ["1", "2", "Trap", "1", "2"],
        "the trap's instance is not reused"
    );
    assert_eq!(warm.instantiated(), 2);
}

#[test]
fn every_bound_holds_on_a_warm_instance() {
    // Out of fuel on every payment; each payment's instance is a new one (a failure
    // recycles it), and the rule after it still runs.
    let rules = warm_rule("infinite-loop", "", "").load();
    let mut warm = WarmInstances::new();
    assert_eq!(
        answers(&rules, &mut warm, &["A", "B"]),
        ["FuelExhausted", "FuelExhausted"]
    );
    assert_eq!(warm.instantiated(), 2);
    let rules = warm_rule("memory-growth", "", "").load();
    assert_eq!(
        answers(&rules, &mut warm, &["A"]),
        [format!("{:?}", FailureKind::MemoryLimit)]
    );
    let rules = warm_rule("host-call-flood", "", "").load();
    assert_eq!(
        answers(&rules, &mut warm, &["A", "B"]),
        ["HostCallLimit", "HostCallLimit"],
        "the host-call budget is per payment, not per instance"
    );
}

#[test]
fn a_warm_instance_whose_memory_grows_is_replaced() {
    // Each payment keeps 1 MiB: the first grows the new instance's memory (allowed), the
    // second grows it again, and the instance goes after answering.
    let rules = warm_rule("remember", "", "grow-bytes = 1_048_576").load();
    let mut warm = WarmInstances::new();
    assert_eq!(
        answers(&rules, &mut warm, &["A", "B", "C", "D", "E"]),
        ["1", "2", "1", "2", "1"]
    );
    assert_eq!(warm.instantiated(), 3);
}

#[test]
fn a_new_rule_set_gets_new_warm_instances() {
    let dir = warm_rule("remember", "", "");
    let first = dir.load();
    let mut warm = WarmInstances::new();
    assert_eq!(answers(&first, &mut warm, &["A", "B"]), ["1", "2"]);
    let second = dir.load();
    assert_eq!(
        answers(&second, &mut warm, &["C", "D"]),
        ["1", "2"],
        "the same component and config in another set starts afresh"
    );
    assert_eq!(warm.len(), 2, "the first set is still loaded");
    drop(first);
    answers(&second, &mut warm, &["E"]);
    assert_eq!(
        warm.len(),
        1,
        "a set no longer loaded leaves nothing behind"
    );
}

#[test]
fn a_warm_table_needs_warm_isolation_and_sane_bounds() {
    let refused = |manifest: &str| {
        RulesDir::new()
            .rule("warm", manifest, payrules_rule_artifacts::MISBEHAVING)
            .load_error()
    };
    let error = refused("kind = \"compliance\"\n[warm]\nrecycle-after = 5\n");
    assert!(error.contains("isolation is not \"warm\""), "{error}");
    let error = refused("kind = \"compliance\"\nisolation = \"warm\"\n[warm]\nrecycle-after = 0\n");
    assert!(error.contains("warm.recycle-after is 0"), "{error}");
    let error = refused("kind = \"compliance\"\nisolation = \"hot\"\n");
    assert!(error.contains("hot"), "{error}");
}

/// The service's deciders keep warm instances: over real HTTP, payments decided one after
/// another by a warm `remember` rule meet instances that have seen earlier payments.
#[test]
fn the_service_decides_on_warm_instances() {
    use crate::server::{SUBMITTER, Server, payment as example};
    let rules = warm_rule("remember", "", "");
    let server = Server::with_rules(rules.path());
    let mut most = 0;
    for n in 0..8 {
        let key = format!("warm-{n}");
        let reply = server.submit(
            SUBMITTER,
            &key,
            &example("sepa-instant-supplier.json", &key),
        );
        assert_eq!(reply.status, 201, "{}", reply.body);
        let body = reply.json();
        let seen: u32 = body["reasons"][0]["code"]
            .as_str()
            .and_then(|code| code.strip_prefix("seen-")?.parse().ok())
            .unwrap_or_else(|| panic!("the rule's count in {body}"));
        most = most.max(seen);
    }
    // Eight payments on at most as many deciders as cores: some instance saw several.
    let deciders = std::thread::available_parallelism().map_or(1, usize::from);
    assert!(
        most as usize >= 8_usize.div_ceil(deciders),
        "the most payments one instance saw: {most}"
    );
}
