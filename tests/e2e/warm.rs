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
    // Nor when the set that replaces it has no warm rule at all.
    drop(second);
    let fresh_only = RulesDir::new().misbehaving("plain", "pass", "").load();
    pipeline().evaluate_warm(&mut warm, &fresh_only, &payment("F"), "pay_warm", 0);
    assert!(warm.is_empty(), "{} instances left", warm.len());
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
    let error = refused("kind = \"compliance\"\nisolation = \"warm\"\n[warm]\nverify-one-in = 0\n");
    assert!(error.contains("warm.verify-one-in is 0"), "{error}");
}

/// A warm rule that carries something from one payment to the next is caught: its answer
/// on a reused instance is decided again on a fresh one, the two differ, the fresh answer
/// decides, the mismatch is reported, and the rule version runs on fresh instances from
/// then on.
#[test]
fn a_warm_rule_that_carries_state_is_caught_and_sent_back_to_fresh_instances() {
    let rules = warm_rule("remember", "verify-one-in = 1", "").load();
    let (pipeline, mut reports) = pipeline().with_warm_mismatches();
    let mut warm = WarmInstances::new();
    let mut decide_warm = |id: &str| {
        let decision = pipeline.evaluate_warm(&mut warm, &rules, &payment(id), id, 0);
        seen(&decision.rules[0].outcome)
    };
    // The first payment is its instance's first: nothing to carry, nothing checked.
    assert_eq!(decide_warm("A"), "1");
    assert!(reports.try_recv().is_err());
    // The second is checked: the warm instance says 2, a fresh one 1; the fresh one decides.
    assert_eq!(decide_warm("B"), "1");
    let report = reports.try_recv().expect("the mismatch is reported");
    assert_eq!(
        (report.rule.as_str(), report.payment_id.as_str()),
        ("warm", "B")
    );
    assert_eq!(
        (report.warm.as_str(), report.fresh.as_str()),
        ("review [seen-2]", "review [seen-1]")
    );
    // From then on, fresh instances: every payment is the instance's first.
    assert_eq!(decide_warm("C"), "1");
    assert_eq!(decide_warm("D"), "1");
    let figures = rules.rules()[0].context.warm.figures();
    assert_eq!(
        (
            figures.runs,
            figures.verified,
            figures.mismatches,
            figures.fresh_again
        ),
        (2, 1, 1, true),
        "{figures:?}"
    );
}

/// The example rules carry nothing from one payment to the next: warm, with every answer
/// checked on a fresh instance, they decide every example payment (each several times, on
/// reused instances) as fresh instances do, and no check finds a difference.
#[test]
fn the_example_rules_warm_decide_as_they_do_fresh() {
    let dir = RulesDir::new();
    crate::support::copy_dir(&crate::support::example_rules(), dir.path());
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_str().unwrap().to_owned();
        if name.ends_with(".toml") && !name.ends_with(".vectors.toml") && name != "pipeline.toml" {
            let text = std::fs::read_to_string(&path).unwrap();
            let text = text.replacen("\n", "\nisolation = \"warm\"\n", 1)
                + "\n[warm]\nverify-one-in = 1\n";
            std::fs::write(&path, text).unwrap();
        }
    }
    let warm_rules = dir.load();
    let fresh_rules = crate::support::load(&crate::support::example_rules());
    let (pipeline, mut reports) = pipeline().with_warm_mismatches();
    let mut warm = WarmInstances::new();
    let payments: Vec<_> = std::fs::read_dir(crate::support::workspace().join("examples/payments"))
        .unwrap()
        .map(|entry| entry.unwrap().file_name().into_string().unwrap())
        .filter(|name| name.ends_with(".json"))
        .collect();
    assert!(payments.len() >= 4, "{payments:?}");
    for round in 0..3 {
        for name in &payments {
            let payment = example_payment(name);
            let id = format!("pay_{round}_{name}");
            let warm_decision = pipeline.evaluate_warm(&mut warm, &warm_rules, &payment, &id, 0);
            let fresh_decision = pipeline.evaluate(&fresh_rules, &payment, &id, 0);
            let answers = |d: &payrules::model::Decision| -> Vec<_> {
                d.rules
                    .iter()
                    .map(|r| (r.name.clone(), r.outcome.clone()))
                    .collect()
            };
            assert_eq!(answers(&warm_decision), answers(&fresh_decision), "{name}");
        }
    }
    assert!(reports.try_recv().is_err(), "no mismatch");
    for rule in warm_rules.rules() {
        let figures = rule.context.warm.figures();
        assert!(
            figures.verified > 0 && figures.mismatches == 0 && !figures.fresh_again,
            "{}: {figures:?}",
            rule.manifest.name
        );
    }
}

/// The service's deciders keep warm instances: over real HTTP, payments decided one after
/// another by a warm `remember` rule meet instances that have seen earlier payments. With
/// every answer checked, the service reports the first mismatch: `GET /v1/rules`, the
/// metrics, the audit log.
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

/// Over real HTTP, a warm rule caught carrying state: the first checked answer on a
/// reused instance differs, and the service shows it in `GET /v1/rules`, the metrics and
/// the audit log; the rule then answers as a fresh instance does.
#[test]
fn the_service_reports_a_warm_mismatch() {
    use crate::server::{AUDITOR, OPERATOR, SUBMITTER, Server, payment as example};
    let rules = warm_rule("remember", "verify-one-in = 1", "");
    let server = Server::with_rules(rules.path());
    let warm_figures = || server.get("/v1/rules", Some(OPERATOR)).json()["rules"][0].clone();
    assert_eq!(warm_figures()["isolation"], "warm");
    let mut n = 0;
    let started = std::time::Instant::now();
    while warm_figures()["warm"]["mismatches"] == 0 {
        assert!(started.elapsed().as_secs() < 30, "{}", warm_figures());
        let key = format!("mismatch-{n}");
        n += 1;
        let reply = server.submit(
            SUBMITTER,
            &key,
            &example("sepa-instant-supplier.json", &key),
        );
        assert_eq!(reply.status, 201, "{}", reply.body);
        assert_eq!(
            reply.json()["reasons"][0]["code"],
            "seen-1",
            "every answer that decides is a fresh instance's: a reused one's is checked first"
        );
    }
    let rule = warm_figures();
    assert_eq!(rule["warm"]["fresh_again"], true, "{rule}");
    assert_eq!(rule["warm"]["mismatches"], 1, "{rule}");
    let audited = || -> Vec<serde_json::Value> {
        server.get("/v1/audit", Some(AUDITOR)).json()["entries"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["action"] == "rule.warm_mismatch")
            .cloned()
            .collect()
    };
    let started = std::time::Instant::now();
    while audited().is_empty() {
        assert!(started.elapsed().as_secs() < 20, "the mismatch is audited");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let entry = &audited()[0];
    assert_eq!(entry["subject"], "warm", "{entry}");
    let detail: serde_json::Value =
        serde_json::from_str(entry["detail"].as_str().expect("the detail, as JSON text")).unwrap();
    assert_eq!(detail["warm"], "review [seen-2]", "{entry}");
    assert_eq!(detail["fresh"], "review [seen-1]", "{entry}");
    let metrics = server.get("/metrics", None).body;
    assert!(
        metrics.contains("payrules_rule_warm_mismatches_total{rule=\"warm\"} 1"),
        "{metrics}"
    );
}
