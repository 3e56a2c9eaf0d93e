//! The example rules decide the example payments as the README says, every decision
//! names the exact component versions, and accepted payments feed the velocity figures.

use std::sync::Arc;

use payrules::model::{Decision, Rail, RuleKind, RuleOutcome, Status};
use payrules::pipeline::Pipeline;
use payrules::registry::hex;
use payrules::velocity::VelocityBook;
use sha2::{Digest, Sha256};

use crate::support::{
    TUESDAY_MORNING_UNIX_MS, decide, example_payment, example_rules, load, pipeline, runtime,
};

fn decide_example(name: &str) -> Decision {
    decide(&pipeline(), &load(&example_rules()), &example_payment(name))
}

fn codes(decision: &Decision) -> Vec<&str> {
    decision.reasons.iter().map(|r| r.code.as_str()).collect()
}

#[test]
fn each_example_payment_gets_its_documented_decision() {
    // (file, status, reason codes, rail)
    let cases: [(&str, Status, &[&str], Option<Rail>); 7] = [
        (
            "sepa-instant-supplier.json",
            Status::Accepted,
            &[],
            Some(Rail::SepaInstant),
        ),
        (
            "us-payroll-fednow.json",
            Status::Accepted,
            &[],
            Some(Rail::Fednow),
        ),
        (
            "cross-border-swift.json",
            Status::Accepted,
            &[],
            Some(Rail::Swift),
        ),
        (
            "weak-match-review.json",
            Status::PendingReview,
            &["sanctions-weak-match"],
            Some(Rail::SepaCreditTransfer),
        ),
        (
            "sanctioned-creditor.json",
            Status::Rejected,
            &["RR04"],
            None,
        ),
        ("embargoed-country.json", Status::Rejected, &["RR04"], None),
        ("over-limit.json", Status::Rejected, &["AM02"], None),
    ];
    for (file, status, reasons, rail) in cases {
        let decision = decide_example(file);
        assert_eq!(decision.status, status, "{file}: {decision:#?}");
        assert_eq!(codes(&decision), reasons, "{file}");
        assert_eq!(decision.route.as_ref().map(|r| r.rail), rail, "{file}");
    }
}

#[test]
fn a_sanctioned_creditor_is_rejected_by_screening_and_later_stages_do_not_run() {
    let decision = decide_example("sanctioned-creditor.json");
    assert_eq!(
        decision.reasons[0].rule.as_deref(),
        Some("sanctions-screening")
    );
    assert!(
        decision.reasons[0].message.contains("1001"),
        "{}",
        decision.reasons[0].message
    );
    assert!(
        decision
            .rules
            .iter()
            .all(|run| run.kind == RuleKind::Compliance)
    );
    assert_eq!(decision.risk_score, None);
}

#[test]
fn every_rule_that_ran_is_named_with_the_sha256_of_its_component() {
    let decision = decide_example("sepa-instant-supplier.json");
    let names: Vec<&str> = decision.rules.iter().map(|run| run.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "sanctions-screening",
            "limits",
            "velocity-risk",
            "rail-router"
        ]
    );
    for run in &decision.rules {
        let wasm =
            std::fs::read(example_rules().join(format!("{}.wasm", run.name.replace('-', "_"))))
                .expect("component");
        assert_eq!(run.version, hex(&Sha256::digest(&wasm)), "{}", run.name);
        assert!(run.fuel_used > 0, "{} used fuel", run.name);
    }
    assert_eq!(decision.rule_set_version, load(&example_rules()).version);
    assert_eq!(decision.decided_at_unix_ms, TUESDAY_MORNING_UNIX_MS);
}

#[test]
fn payments_decided_on_many_threads_at_once_get_the_same_decisions() {
    fn shareable<T: Send + Sync>(_: &T) {}
    let rules = load(&example_rules());
    let pipeline = pipeline();
    shareable(&rules);
    shareable(&pipeline);
    let files = [
        "sepa-instant-supplier.json",
        "sanctioned-creditor.json",
        "weak-match-review.json",
        "over-limit.json",
    ];
    let expected: Vec<Status> = files
        .iter()
        .map(|file| decide(&crate::support::pipeline(), &rules, &example_payment(file)).status)
        .collect();
    std::thread::scope(|scope| {
        for thread in 0..4 {
            let (rules, pipeline, expected) = (&rules, &pipeline, &expected);
            scope.spawn(move || {
                for round in 0..25 {
                    let index = (thread + round) % files.len();
                    let payment = example_payment(files[index]);
                    // Instants far apart, so velocity does not change the answers.
                    let now = TUESDAY_MORNING_UNIX_MS
                        + i64::try_from(round * 4 + thread).expect("small") * 86_400_000 * 100;
                    let decision = pipeline.evaluate(rules, &payment, "p", now);
                    assert_eq!(
                        decision.status, expected[index],
                        "{} on thread {thread}",
                        files[index]
                    );
                }
            });
        }
    });
}

#[test]
fn a_rule_asking_for_a_list_it_was_not_given_gets_an_answer_not_a_crash() {
    let manifest = std::fs::read_to_string(example_rules().join("sanctions-screening.toml"))
        .expect("manifest")
        .replace("list = \"sanctions\"", "list = \"no-such-list\"");
    let dir = crate::support::RulesDir::new()
        .rule(
            "sanctions-screening",
            &manifest,
            payrules_rule_artifacts::SANCTIONS_SCREENING,
        )
        .file(
            "lists/sdn-sample.csv",
            &std::fs::read(example_rules().join("lists/sdn-sample.csv")).expect("list"),
        );
    let decision = decide(
        &pipeline(),
        &dir.load(),
        &example_payment("us-payroll-fednow.json"),
    );
    assert_eq!(decision.status, Status::PendingReview);
    assert_eq!(codes(&decision), ["sanctions-list-unavailable"]);
}

#[test]
fn accepted_payments_feed_the_velocity_of_later_ones() {
    let rules = load(&example_rules());
    let payment = example_payment("us-payroll-fednow.json");
    // What the service does once each decision is stored: accepted ones count.
    let velocity = Arc::new(VelocityBook::new());
    let pipeline = Pipeline::new(runtime(), Arc::clone(&velocity));
    let decide = |id: &str, at: i64| {
        let decision = pipeline.evaluate(&rules, &payment, id, at);
        if decision.status == Status::Accepted {
            velocity.record(&payment, at);
        }
        decision
    };
    let fraud_codes = |decision: &Decision| -> Vec<String> {
        decision
            .rules
            .iter()
            .filter_map(|run| match &run.outcome {
                RuleOutcome::Score { reasons, .. } => {
                    Some(reasons.iter().map(|r| r.code.clone()).collect::<Vec<_>>())
                }
                _ => None,
            })
            .flatten()
            .collect()
    };
    let minute = 60_000;
    let first = decide("p0", TUESDAY_MORNING_UNIX_MS);
    assert_eq!(fraud_codes(&first), ["new-creditor"]);
    let mut last = first;
    for i in 1..=5 {
        last = decide(&format!("p{i}"), TUESDAY_MORNING_UNIX_MS + i * minute);
    }
    // Five accepted in the last hour, three or more to this creditor today: no longer new.
    assert_eq!(fraud_codes(&last), ["debtor-burst", "repeated-pair"]);
    assert_eq!(last.risk_score, Some(400));
    assert_eq!(last.status, Status::Accepted);
}
