//! `GET /v1/rules/by-name/{name}` and its console page: a rule's test vectors as they ran,
//! its measured figures by version, and what changed from the set live before — after a
//! reload that changed its failure policy and fuel limit.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::server::{OPERATOR, SUBMITTER, Server, payment};
use crate::support::{copy_dir, example_rules};

fn rule_page(server: &Server, path: &str) -> crate::server::Reply {
    server.get(path, Some(OPERATOR))
}

#[test]
fn a_rules_page_shows_its_vectors_its_measured_fuel_and_what_changed_since_the_last_set() {
    let rules = tempfile::tempdir().unwrap();
    copy_dir(&example_rules(), rules.path());
    let server = Server::with_rules(rules.path());
    let first = server.get("/v1/rules", Some(OPERATOR)).json()["version"]
        .as_str()
        .unwrap()
        .to_owned();
    let reply = server.submit(SUBMITTER, "r-1", &payment("us-payroll-fednow.json", "r-1"));
    assert_eq!(reply.status, 201, "{}", reply.body);

    // A new version of the limits rule: same component, another failure policy and a
    // fuel limit of its own.
    let manifest = rules.path().join("limits.toml");
    let text = std::fs::read_to_string(&manifest).unwrap();
    std::fs::write(
        &manifest,
        text.replacen(
            "order = 20\n",
            "order = 20\nfailure-policy = \"reject\"\n",
            1,
        ) + "\n[limits]\nfuel = 4000000\n",
    )
    .unwrap();
    let reload = server.request(
        "POST",
        "/v1/rules/reload",
        &[
            ("Authorization", &format!("Bearer {OPERATOR}")),
            ("Content-Type", "application/json"),
        ],
        Some(b"{}"),
    );
    assert_eq!(reload.status, 200, "{}", reload.body);
    let live = server.get("/v1/rules", Some(OPERATOR)).json();
    assert_ne!(live["version"], first.as_str(), "{}", reload.body);
    let component = live["rules"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "limits")
        .unwrap()["version"]
        .clone();

    // The figures reach the store within a sample (every 10 s).
    let started = Instant::now();
    let page = loop {
        let reply = rule_page(&server, "/v1/rules/by-name/limits");
        assert_eq!(reply.status, 200, "{}", reply.body);
        let page = reply.json();
        if !page["measured"].as_array().unwrap().is_empty() {
            break page;
        }
        assert!(started.elapsed() < Duration::from_secs(20), "{page}");
        std::thread::sleep(Duration::from_millis(250));
    };
    assert_eq!(page["rule"]["failure_policy"], "reject");
    assert_eq!(page["rule"]["limits"]["fuel"], 4_000_000);

    // The vectors as they ran at the reload: every case of the file, each passed.
    let file = std::fs::read_to_string(rules.path().join("limits.vectors.toml")).unwrap();
    let cases_in_file = file.matches("[[case]]").count();
    let vectors = &page["vectors"];
    assert_eq!(vectors["file"], "limits.vectors.toml");
    let cases = vectors["cases"].as_array().unwrap();
    assert_eq!(cases.len(), cases_in_file, "{vectors}");
    assert!(
        cases
            .iter()
            .all(|c| c["passed"] == true && c["fuel_used"].as_u64().unwrap() > 0)
    );

    // Measured: the one payment, by the live component.
    let measured = page["measured"].as_array().unwrap();
    assert_eq!(measured.len(), 1, "{measured:?}");
    assert_eq!(measured[0]["version"], component);
    assert_eq!(measured[0]["calls"], 1);

    // Compared with the set live before (kept): exactly the two changes.
    let comparison = &page["comparison"];
    assert_eq!(comparison["rule_set_version"], first.as_str());
    assert_eq!(comparison["present"], true);
    assert_eq!(comparison["version"], component, "the same component");
    assert_eq!(
        comparison["changes"],
        json!([
            {"field": "failure_policy", "live": "reject", "other": "review"},
            {"field": "limits.fuel", "live": "4000000", "other": "10000000"},
        ])
    );
    let p95 = comparison["fuel_p95"]["live"].as_u64().unwrap();
    assert_eq!(
        comparison["fuel_p95"]["other"], p95,
        "one component, one figure"
    );
    assert!(page["kept_versions"].as_array().unwrap().len() >= 2);

    // Against the live set itself: nothing differs.
    let live_version = live["version"].as_str().unwrap();
    let same = rule_page(
        &server,
        &format!("/v1/rules/by-name/limits?against={live_version}"),
    )
    .json();
    assert_eq!(same["comparison"]["changes"], json!([]));

    // Refusals: no such rule, a set not kept, the wrong key.
    let none = rule_page(&server, "/v1/rules/by-name/no-such-rule");
    assert_eq!(
        (none.status, none.code()),
        (404, "rule_not_found".to_owned())
    );
    let not_kept = rule_page(
        &server,
        &format!("/v1/rules/by-name/limits?against={}", "ab".repeat(32)),
    );
    assert_eq!(
        (not_kept.status, not_kept.code()),
        (404, "rule_set_not_kept".to_owned())
    );
    assert_eq!(
        server
            .get("/v1/rules/by-name/limits", Some(SUBMITTER))
            .status,
        403
    );

    // The console's page says the same.
    let session = server.console_session(OPERATOR);
    let html = server
        .request(
            "GET",
            "/console/rules/by-name/limits",
            &[("Cookie", &session)],
            None,
        )
        .body;
    for row in [
        "<tr><td>failure_policy</td><td>reject</td><td>review</td></tr>",
        "<tr><td>limits.fuel</td><td>4000000</td><td>10000000</td></tr>",
    ] {
        assert!(html.contains(row), "{row} in {html}");
    }
    for case in cases {
        let name = case["name"].as_str().unwrap();
        assert!(html.contains(&escape(name)), "{name}");
    }
    assert!(html.contains(&format!(
        "Fuel p95 measured (7 days): live {p95}; there {p95}."
    )));
    let rules_page = server
        .request("GET", "/console/rules", &[("Cookie", &session)], None)
        .body;
    assert!(rules_page.contains("href=\"/console/rules/by-name/limits\""));
}

/// `text` as askama writes it into HTML.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&#34;")
        .replace('\'', "&#39;")
}
