//! `POST /v1/rules/shadow/pins`: a divergence between the shadow and the live set turned
//! into a test vector case — checked on both versions of the rule, pseudonymised by
//! default, refused when it would pin nothing or would need the customer's data, audited.

use serde_json::{Value, json};

use crate::server::{AUDITOR, OPERATOR, SUBMITTER, Server, payment};
use crate::support::{copy_dir, example_rules};

fn pin(server: &Server, key: &str, body: &Value) -> crate::server::Reply {
    server.request(
        "POST",
        "/v1/rules/shadow/pins",
        &[
            ("Authorization", &format!("Bearer {key}")),
            ("Content-Type", "application/json"),
        ],
        Some(body.to_string().as_bytes()),
    )
}

#[test]
fn a_shadow_divergence_is_pinned_as_a_vector_that_tells_the_two_versions_apart() {
    // The shadow set: a USD cap of 1,000 in the limits rule, and a listed supplier.
    let rules = tempfile::tempdir().unwrap();
    copy_dir(&example_rules(), rules.path());
    let shadow = rules.path().join("shadow");
    copy_dir(&example_rules(), &shadow);
    let limits = std::fs::read_to_string(shadow.join("limits.toml")).unwrap();
    std::fs::write(
        shadow.join("limits.toml"),
        limits.replacen("USD = \"25000000.00\"", "USD = \"1000.00\"", 1),
    )
    .unwrap();
    // (Its own vectors expect the old cap: the shadow copy goes without them.)
    std::fs::remove_file(shadow.join("limits.vectors.toml")).unwrap();
    let mut list = std::fs::read_to_string(shadow.join("lists/sdn-sample.csv")).unwrap();
    list.push_str("1999,VAN DIJK ONDERDELEN BV,entity,SDGT,,test entry\n");
    std::fs::write(shadow.join("lists/sdn-sample.csv"), list).unwrap();
    let server = Server::with_rules(rules.path());
    server.wait_for("/v1/rules/shadow", "the shadow set", |status, _| {
        status == 200
    });

    let payroll = server.submit(SUBMITTER, "p-1", &payment("us-payroll-fednow.json", "p-1"));
    assert_eq!(payroll.json()["status"], "accepted", "{}", payroll.body);
    let payroll = payroll.json()["payment_id"].as_str().unwrap().to_owned();
    let supplier = server.submit(
        SUBMITTER,
        "p-2",
        &payment("sepa-instant-supplier.json", "p-2"),
    );
    assert_eq!(supplier.json()["status"], "accepted", "{}", supplier.body);
    let supplier = supplier.json()["payment_id"].as_str().unwrap().to_owned();
    server.wait_for("/v1/rules/shadow/report", "two compared", |_, r| {
        r["compared"] == 2
    });

    // The limits rule: the shadow's reject pinned, pseudonymised; it holds on the shadow's
    // version and fails on the live one.
    let reply = pin(
        &server,
        OPERATOR,
        &json!({"payment_id": payroll, "rule": "limits", "expect": "shadow"}),
    );
    assert_eq!(reply.status, 200, "{}", reply.body);
    let pinned = reply.json();
    assert_eq!(pinned["file"], "limits.vectors.toml");
    assert_eq!(pinned["pseudonymised"], true);
    assert_eq!(pinned["shadow"]["holds"], true, "{pinned}");
    assert_eq!(pinned["live"]["holds"], false, "{pinned}");
    assert!(
        pinned["shadow"]["answer"]
            .as_str()
            .unwrap()
            .starts_with("reject")
    );
    assert_eq!(pinned["live"]["answer"], "pass");
    let case = pinned["case"].as_str().unwrap();
    assert!(case.starts_with("[[case]]"), "{case}");
    for personal in [
        "Harbor Coffee",
        "Maria Gonzalez",
        "44444444444",
        "Salary November",
    ] {
        assert!(!case.contains(personal), "{personal} in {case}");
    }
    assert!(
        case.contains("3250.75") && case.contains("verdict = \"reject\""),
        "{case}"
    );

    // As the shadow set's vectors, the case passes; appended to the live set's, the set is
    // refused naming it: the divergence is now a check.
    for (dir, loads) in [(&shadow, true), (&rules.path().to_path_buf(), false)] {
        let file = dir.join("limits.vectors.toml");
        let mut vectors = std::fs::read_to_string(&file).unwrap_or_default();
        vectors.push('\n');
        vectors.push_str(case);
        let check = tempfile::tempdir().unwrap();
        copy_dir(dir, check.path());
        let _ = std::fs::remove_dir_all(check.path().join("shadow"));
        std::fs::write(check.path().join("limits.vectors.toml"), vectors).unwrap();
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_payrules"))
            .args(["rules", "check"])
            .arg(check.path())
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&output.stderr).into_owned()
            + &String::from_utf8_lossy(&output.stdout);
        assert_eq!(output.status.success(), loads, "{text}");
        if !loads {
            assert!(text.contains("pinned from payment"), "{text}");
        }
    }

    // The live answer pinned instead: it holds on the live version only.
    let reply = pin(
        &server,
        OPERATOR,
        &json!({"payment_id": payroll, "rule": "limits", "expect": "live"}),
    );
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(
        (
            reply.json()["live"]["holds"].clone(),
            reply.json()["shadow"]["holds"].clone()
        ),
        (json!(true), json!(false))
    );

    // A rule that answered alike is refused, naming the ones that differed.
    let reply = pin(
        &server,
        OPERATOR,
        &json!({"payment_id": payroll, "rule": "rail-router", "expect": "shadow"}),
    );
    assert_eq!(
        (reply.status, reply.code()),
        (422, "rule_answers_agree".to_owned())
    );
    assert!(reply.body.contains("limits"), "{}", reply.body);

    // The screening divergence turns on the supplier's name: with pseudonyms it is gone,
    // so it is refused; an operator may not ask for the real data, an auditor may.
    let screening =
        json!({"payment_id": supplier, "rule": "sanctions-screening", "expect": "shadow"});
    let reply = pin(&server, OPERATOR, &screening);
    assert_eq!(
        (reply.status, reply.code()),
        (422, "pin_needs_personal_data".to_owned()),
        "{}",
        reply.body
    );
    let mut with_data = screening.clone();
    with_data["personal_data"] = json!(true);
    assert_eq!(pin(&server, OPERATOR, &with_data).status, 403);
    let reply = pin(&server, AUDITOR, &with_data);
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.json()["pseudonymised"], false);
    assert!(
        reply.json()["case"]
            .as_str()
            .unwrap()
            .contains("Van Dijk Onderdelen")
    );

    // Refusals: a payment unknown, a body that is not a pin, a submitter's key.
    let reply = pin(
        &server,
        OPERATOR,
        &json!({"payment_id": "pay_nope", "rule": "limits", "expect": "shadow"}),
    );
    assert_eq!(
        (reply.status, reply.code()),
        (404, "payment_not_found".to_owned())
    );
    let reply = pin(
        &server,
        OPERATOR,
        &json!({"payment_id": payroll, "rule": "limits"}),
    );
    assert_eq!(
        (reply.status, reply.code()),
        (400, "invalid_body".to_owned())
    );
    assert_eq!(
        pin(
            &server,
            SUBMITTER,
            &json!({"payment_id": payroll, "rule": "limits", "expect": "shadow"})
        )
        .status,
        403
    );

    // The console: the shadow report offers a pin per differing rule; posted, the page
    // shows the case (pseudonymised), checked on both versions.
    let session = server.console_session(OPERATOR);
    let report = server
        .request(
            "GET",
            "/console/rules/shadow",
            &[("Cookie", &session)],
            None,
        )
        .body;
    assert!(
        report.contains(&format!("name=\"payment_id\" value=\"{payroll}\"")),
        "{report}"
    );
    let csrf = report
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap()
        .to_owned();
    let page = server.request(
        "POST",
        "/console/rules/shadow/pin",
        &[
            ("Cookie", &session),
            ("Content-Type", "application/x-www-form-urlencoded"),
        ],
        Some(format!("csrf={csrf}&payment_id={payroll}&rule=limits&expect=shadow").as_bytes()),
    );
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(
        page.body.contains("<pre id=\"pin-case\">[[case]]"),
        "{}",
        page.body
    );
    assert!(
        page.body.contains("replaced by pseudonyms"),
        "{}",
        page.body
    );
    assert!(!page.body.contains("Harbor Coffee"));

    // Every pin is in the audit log, saying whether it carried personal data.
    let audit = server.get("/v1/audit?limit=500", Some(AUDITOR)).json();
    let pins: Vec<&Value> = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "rules.vector_pinned")
        .collect();
    assert_eq!(pins.len(), 4, "{pins:?}");
    let with_personal: Vec<bool> = pins
        .iter()
        .map(|e| {
            let detail: Value = serde_json::from_str(e["detail"].as_str().unwrap()).unwrap();
            detail["personal_data"].as_bool().unwrap()
        })
        .collect();
    assert_eq!(with_personal, [false, false, true, false]);
}
