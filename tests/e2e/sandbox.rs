//! Rules that break their bounds are stopped within them; their failure policy applies;
//! the host carries on with the next rule and the next payment.

use payrules::model::{FailureKind, FailurePolicy, RuleOutcome, Status};

use crate::support::{RulesDir, decide, example_payment, example_rules, load, pipeline};

/// Runs `behaviour` as the first compliance rule (with `extra` manifest lines) followed by
/// a well-behaved control rule, and returns the failure kind, the policy applied and the
/// decision's status. Asserts the control still ran and passed.
fn misbehave(behaviour: &str, extra: &str) -> (FailureKind, FailurePolicy, Status, String, u64) {
    let rules = RulesDir::new()
        .misbehaving("a-misbehaving", behaviour, &format!("order = 1\n{extra}"))
        .misbehaving("b-control", "pass", "order = 2")
        .load();
    let decision = decide(
        &pipeline(),
        &rules,
        &example_payment("sepa-instant-supplier.json"),
    );
    assert_eq!(decision.rules.len(), 2, "both rules ran: {decision:#?}");
    assert_eq!(
        decision.rules[1].outcome,
        RuleOutcome::Pass,
        "the control rule ran after the failure"
    );
    let run = &decision.rules[0];
    match &run.outcome {
        RuleOutcome::Failed {
            failure,
            policy,
            message,
        } => (
            *failure,
            *policy,
            decision.status,
            message.clone(),
            run.fuel_used,
        ),
        other => panic!("{behaviour}: expected a failure, got {other:?}"),
    }
}

#[test]
fn an_infinite_loop_is_stopped_by_its_fuel_and_held_for_review() {
    let (failure, policy, status, _, fuel_used) =
        misbehave("infinite-loop", "[limits]\nfuel = 2_000_000");
    assert_eq!(
        (failure, policy, status),
        (
            FailureKind::FuelExhausted,
            FailurePolicy::Review,
            Status::PendingReview
        )
    );
    assert_eq!(fuel_used, 2_000_000, "it used exactly its fuel");
}

#[test]
fn an_infinite_loop_with_fuel_to_spare_is_stopped_by_its_deadline() {
    let limits = "[limits]\nfuel = 1_000_000_000\ntimeout-ms = 20";
    let (failure, _, status, _, fuel_used) = misbehave("infinite-loop", limits);
    assert_eq!(
        (failure, status),
        (FailureKind::Timeout, Status::PendingReview)
    );
    // The deadline, not the fuel, stopped it: fuel was left over (no wall-clock assertion,
    // which a loaded machine would make flaky).
    assert!(fuel_used < 1_000_000_000, "{fuel_used}");
}

#[test]
fn unbounded_memory_growth_is_stopped_at_its_memory_cap() {
    let (failure, _, status, _, _) =
        misbehave("memory-growth", "[limits]\nmemory-bytes-max = 8_388_608");
    assert_eq!(
        (failure, status),
        (FailureKind::MemoryLimit, Status::PendingReview)
    );
}

#[test]
fn a_panic_is_a_trap_and_says_so() {
    let (failure, _, status, message, _) = misbehave("panic", "");
    assert_eq!(
        (failure, status),
        (FailureKind::Trap, Status::PendingReview)
    );
    assert!(message.contains("panicked"), "{message}");
}

#[test]
fn deep_recursion_is_stopped_before_it_harms_the_host() {
    let (failure, _, status, message, _) = misbehave("deep-recursion", "");
    assert_eq!(
        (failure, status),
        (FailureKind::StackOverflow, Status::PendingReview),
        "{message}"
    );
}

#[test]
fn a_huge_answer_is_refused_at_its_output_cap() {
    let (failure, _, _, message, _) = misbehave("huge-output", "[limits]\noutput-bytes-max = 4096");
    assert_eq!(failure, FailureKind::OutputTooLarge, "{message}");
}

#[test]
fn a_host_call_flood_is_stopped_at_its_budget() {
    let (failure, _, _, message, _) = misbehave("host-call-flood", "[limits]\nhost-calls-max = 50");
    assert_eq!(failure, FailureKind::HostCallLimit, "{message}");
}

#[test]
fn a_reject_without_an_iso_reason_code_is_invalid_output() {
    let (failure, _, _, message, _) = misbehave("bad-reason-code", "");
    assert_eq!(failure, FailureKind::InvalidOutput);
    assert!(message.contains("XX99"), "{message}");
}

#[test]
fn the_failure_policy_of_the_manifest_decides_what_a_failure_means() {
    let (_, policy, status, _, _) = misbehave("panic", "failure-policy = \"reject\"");
    assert_eq!((policy, status), (FailurePolicy::Reject, Status::Rejected));
    let (_, policy, status, _, _) = misbehave("panic", "failure-policy = \"skip\"");
    assert_eq!((policy, status), (FailurePolicy::Skip, Status::Accepted));
}

#[test]
fn std_hashmap_works_because_randomness_is_deterministic() {
    let rules = RulesDir::new()
        .misbehaving("hashing", "use-hashmap", "")
        .load();
    let decision = decide(
        &pipeline(),
        &rules,
        &example_payment("sepa-instant-supplier.json"),
    );
    assert_eq!(decision.rules[0].outcome, RuleOutcome::Pass);
}

#[test]
fn rule_logs_are_kept_in_the_trace_within_their_bounds() {
    let rules = RulesDir::new().misbehaving("chatty", "chatty", "").load();
    let decision = decide(
        &pipeline(),
        &rules,
        &example_payment("sepa-instant-supplier.json"),
    );
    let run = &decision.rules[0];
    assert_eq!(run.outcome, RuleOutcome::Pass);
    // 32 lines kept, then one saying how many were dropped.
    assert_eq!(run.logs.len(), 33, "{:#?}", run.logs);
    assert_eq!(run.logs[0].level, "info");
    assert_eq!(
        run.logs[0].message.len(),
        1024,
        "cut at 1024 bytes, on a character boundary"
    );
    assert_eq!(run.logs[1].message, "line 1 about INV-2026-0418");
    assert_eq!(run.logs[32].message, "8 more log lines dropped");
}

#[test]
fn the_host_stays_healthy_after_every_kind_of_failure() {
    let pipeline = pipeline();
    let broken = RulesDir::new()
        .misbehaving("loop", "infinite-loop", "[limits]\nfuel = 1_000_000")
        .misbehaving(
            "memory",
            "memory-growth",
            "[limits]\nmemory-bytes-max = 4_194_304",
        )
        .misbehaving("panic", "panic", "")
        .misbehaving("recursion", "deep-recursion", "")
        .misbehaving("output", "huge-output", "")
        .misbehaving("flood", "host-call-flood", "")
        .load();
    let payment = example_payment("us-payroll-fednow.json");
    for _ in 0..20 {
        let decision = decide(&pipeline, &broken, &payment);
        let failures: Vec<(&str, FailureKind)> = decision
            .rules
            .iter()
            .map(|run| match &run.outcome {
                RuleOutcome::Failed { failure, .. } => (run.name.as_str(), *failure),
                other => panic!("{} did not fail: {other:?}", run.name),
            })
            .collect();
        // Rules run by name here (all order 0); each fails in its own way, not because an
        // earlier one broke the sandbox.
        assert_eq!(
            failures,
            [
                ("flood", FailureKind::HostCallLimit),
                ("loop", FailureKind::FuelExhausted),
                ("memory", FailureKind::MemoryLimit),
                ("output", FailureKind::OutputTooLarge),
                ("panic", FailureKind::Trap),
                ("recursion", FailureKind::StackOverflow),
            ]
        );
        assert_eq!(decision.status, Status::PendingReview);
    }
    let decision = decide(&pipeline, &load(&example_rules()), &payment);
    assert_eq!(decision.status, Status::Accepted, "{decision:#?}");
}

/// The example payment with this end-to-end id.
fn payment_with_id(end_to_end_id: &str) -> payrules::model::Payment {
    let path = crate::support::workspace().join("examples/payments/sepa-instant-supplier.json");
    let mut json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    json["end_to_end_id"] = serde_json::json!(end_to_end_id);
    payrules::model::Payment::from_json(&json.to_string()).unwrap()
}

/// A rule that keeps failing is opened: not run (no fuel, no time), its failure policy
/// applied; after the cool-down one payment probes it; a probe that fails opens it again,
/// one that passes closes it, and it runs again. Each transition is reported.
#[test]
fn a_rule_that_keeps_failing_is_not_run_until_a_probe_passes() {
    use payrules::registry::breaker::{BreakerPolicy, CircuitState};
    use std::time::Duration;
    let rules = RulesDir::new()
        .misbehaving("flaky", "panic-on-break", "order = 1")
        .misbehaving("control", "pass", "order = 2")
        .load();
    let cool_down = Duration::from_millis(300);
    let (pipeline, mut transitions) = pipeline().with_breakers(BreakerPolicy {
        failures: 3,
        failure_rate_percent: 50,
        window: Duration::from_secs(60),
        cool_down,
    });
    let flaky = |id: &str| {
        let decision = decide(&pipeline, &rules, &payment_with_id(id));
        assert_eq!(
            decision.rules[1].outcome,
            RuleOutcome::Pass,
            "the control runs"
        );
        decision.rules[0].clone()
    };
    let failure = |run: &payrules::model::RuleRun| match &run.outcome {
        RuleOutcome::Failed {
            failure, policy, ..
        } => {
            assert_eq!(*policy, FailurePolicy::Review);
            Some(*failure)
        }
        _ => None,
    };
    let mut states = || {
        let mut states = Vec::new();
        while let Ok(change) = transitions.try_recv() {
            assert_eq!(change.rule, "flaky");
            states.push(change.transition.to);
        }
        states
    };

    for n in 1..=3 {
        assert_eq!(
            failure(&flaky(&format!("BREAK-{n}"))),
            Some(FailureKind::Trap)
        );
    }
    assert_eq!(states(), [CircuitState::Open]);
    assert_eq!(
        rules.rules()[0].breaker.snapshot().state,
        CircuitState::Open
    );
    // Open: not run, whatever the payment; its policy (review) applies.
    for id in ["BREAK-4", "FINE-1"] {
        let run = flaky(id);
        assert_eq!(failure(&run), Some(FailureKind::CircuitOpen), "{id}");
        assert_eq!((run.fuel_used, run.duration_us), (0, 0), "{id} did not run");
    }
    // After the cool-down, a failing probe opens it again.
    std::thread::sleep(cool_down + Duration::from_millis(50));
    assert_eq!(failure(&flaky("BREAK-5")), Some(FailureKind::Trap));
    assert_eq!(states(), [CircuitState::HalfOpen, CircuitState::Open]);
    assert_eq!(failure(&flaky("FINE-2")), Some(FailureKind::CircuitOpen));
    // A passing probe closes it; then it runs, and fails, again.
    std::thread::sleep(cool_down + Duration::from_millis(50));
    assert_eq!(flaky("FINE-3").outcome, RuleOutcome::Pass);
    assert_eq!(states(), [CircuitState::HalfOpen, CircuitState::Closed]);
    assert_eq!(failure(&flaky("BREAK-6")), Some(FailureKind::Trap));
    assert_eq!(rules.rules()[0].breaker.snapshot().opened, 2);

    // Without breakers (a backtest, `evaluate`), every rule runs every time.
    let plain = crate::support::pipeline();
    for n in 1..=5 {
        let decision = decide(&plain, &rules, &payment_with_id(&format!("BREAK-1{n}")));
        assert_eq!(failure(&decision.rules[0]), Some(FailureKind::Trap));
    }
}

/// A rule cannot make the host work for it past its own deadline. The host's name look-up
/// runs inside the rule's call, where the engine's deadline (which interrupts WebAssembly
/// code) cannot stop it; asked at threshold 1 about a 140-character name, it measures every
/// name of a 30,000-entry list, far longer than the rule's 10 ms. The look-up stops at the
/// rule's deadline and the rule fails as timed out, its failure policy applying.
#[test]
fn a_host_look_up_stops_at_the_rules_deadline() {
    let mut list = String::from("id,name,aliases\n");
    for i in 0..30_000 {
        list.push_str(&format!(
            "{i},Trading House {i} Holdings,\"THH {i}; House {i} Trading\"\n"
        ));
    }
    let manifest = "kind = \"compliance\"\norder = 1\ncapabilities = [\"lists\", \"config\"]\n\
        [limits]\nfuel = 1_000_000_000\ntimeout-ms = 10\n\
        [lists]\nsanctions = \"lists/big.csv\"\n\
        [config]\nlist = \"sanctions\"\nstrong-match = 1000\nweak-match = 1\n";
    let rules = RulesDir::new()
        .file("lists/big.csv", list.as_bytes())
        .rule(
            "screening",
            manifest,
            payrules_rule_artifacts::SANCTIONS_SCREENING,
        )
        .misbehaving("b-control", "pass", "order = 2")
        .load();
    let path = crate::support::workspace().join("examples/payments/sepa-instant-supplier.json");
    let mut json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let name: String = (0..70).map(|i| format!("{} ", i % 10)).collect();
    json["debtor"]["name"] = serde_json::json!(name.trim_end());
    let payment = payrules::model::Payment::from_json(&json.to_string()).unwrap();
    let decision = decide(&pipeline(), &rules, &payment);
    assert_eq!(
        decision.rules[1].outcome,
        RuleOutcome::Pass,
        "the next rule ran"
    );
    let run = &decision.rules[0];
    let RuleOutcome::Failed {
        failure, message, ..
    } = &run.outcome
    else {
        panic!("the look-up should have been stopped: {:?}", run.outcome);
    };
    assert_eq!(*failure, FailureKind::Timeout, "{message}");
    assert!(
        message.contains("deadline passed while the host was screening"),
        "the host's look-up, not the rule's code, was stopped: {message}"
    );
    assert_eq!(decision.status, Status::PendingReview);
    // The bound, with a wide margin for a loaded machine (unbounded, the look-up takes
    // hundreds of milliseconds here).
    assert!(run.duration_us < 200_000, "{} µs", run.duration_us);
}
