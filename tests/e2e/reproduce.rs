//! A past decision reproduced: decided again by the kept copy of the rule set that made
//! it, at its instant, with the velocity figures of that instant — the same decision, rule
//! by rule, fuel included.

use serde_json::Value;

use crate::server::{AUDITOR, OPERATOR, REVIEWER, SUBMITTER, Server, payment};
use crate::support::{copy_dir, example_rules};

fn reproduction(server: &Server, id: &str, key: &str) -> crate::server::Reply {
    server.get(&format!("/v1/payments/{id}/reproduction"), Some(key))
}

fn velocity_answer(decision: &Value) -> String {
    decision["rules"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "velocity-risk")
        .map(|r| format!("{} {}", r["score"], r["reasons"]))
        .unwrap_or_default()
}

#[test]
fn a_past_decision_is_reproduced_by_the_rule_set_that_made_it_with_the_figures_of_its_instant() {
    let rules = tempfile::tempdir().unwrap();
    copy_dir(&example_rules(), rules.path());
    let server = Server::with_rules(rules.path());
    let mut ids = Vec::new();
    for (n, example) in [
        "us-payroll-fednow.json",
        "us-payroll-fednow.json",
        "sanctioned-creditor.json",
        "sepa-instant-supplier.json",
    ]
    .iter()
    .enumerate()
    {
        let key = format!("repro-{n}");
        let reply = server.submit(SUBMITTER, &key, &payment(example, &key));
        assert_eq!(reply.status, 201, "{}", reply.body);
        ids.push(reply.json()["payment_id"].as_str().unwrap().to_owned());
    }
    let first_version = server.get("/v1/rules", Some(OPERATOR)).json()["version"]
        .as_str()
        .unwrap()
        .to_owned();
    // A new version goes live: the decisions' set is kept, not live.
    let policy = std::fs::read_to_string(rules.path().join("pipeline.toml")).unwrap();
    std::fs::write(
        rules.path().join("pipeline.toml"),
        policy.replace("review-at = 600", "review-at = 500"),
    )
    .unwrap();
    server.wait_for("/v1/rules", "the new version live", |status, rules| {
        status == 200 && rules["version"] != first_version.as_str()
    });

    let mut velocity_answers = Vec::new();
    for id in &ids {
        let reply = reproduction(&server, id, AUDITOR);
        assert_eq!(reply.status, 200, "{}", reply.body);
        let done = reply.json();
        assert_eq!(done["same"], true, "{id}: {}", done["differences"]);
        assert_eq!(done["rule_set_version"], first_version.as_str());
        let fuel = |decision: &Value| -> Vec<Value> {
            decision["rules"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r["fuel_used"].clone())
                .collect()
        };
        assert_eq!(fuel(&done["reproduced"]), fuel(&done["recorded"]), "{id}");
        velocity_answers.push((
            velocity_answer(&done["recorded"]),
            done["velocity_payments"].clone(),
        ));
    }
    // The second payroll payment met the first in the velocity figures: its velocity
    // answer is not the first's, and the reproduction rebuilt that from the store.
    assert_ne!(
        velocity_answers[0].0, velocity_answers[1].0,
        "{velocity_answers:?}"
    );
    assert_eq!(velocity_answers[0].1, 0);
    assert_eq!(velocity_answers[1].1, 1);

    assert_eq!(reproduction(&server, &ids[0], REVIEWER).status, 200);
    assert_eq!(reproduction(&server, &ids[0], SUBMITTER).status, 403);
    assert_eq!(
        reproduction(&server, "pay_00", AUDITOR).code(),
        "payment_not_found"
    );
    // Once its rule set is no longer kept, it says so.
    std::fs::remove_dir_all(
        server
            .store()
            .with_file_name("payrules-rule-sets")
            .join(&first_version),
    )
    .unwrap();
    let gone = reproduction(&server, &ids[0], AUDITOR);
    assert_eq!(gone.code(), "rule_set_not_kept", "{}", gone.body);
    assert!(gone.body.contains(&first_version), "{}", gone.body);
}
