//! The HTTP API as submitting systems, operators and auditors use it: the real binary on
//! loopback, the example rules, a real SQLite file.

use std::collections::BTreeSet;

use serde_json::{Value, json};

use crate::server::{AUDITOR, OPERATOR, OTHER_SUBMITTER, SUBMITTER, Server, payment};

#[test]
fn a_submitted_payment_is_decided_stored_and_read_back() {
    let server = Server::start();
    let reply = server.submit(
        SUBMITTER,
        "k-1",
        &payment("sepa-instant-supplier.json", "1"),
    );
    assert_eq!(reply.status, 201, "{}", reply.body);
    let decision = reply.json();
    let id = decision["payment_id"].as_str().unwrap().to_owned();
    assert_eq!(
        reply.header("location"),
        Some(&*format!("/v1/payments/{id}"))
    );
    assert_eq!(decision["status"], "accepted", "{decision}");
    assert_eq!(decision["route"]["rail"], "sepa-instant", "{decision}");
    // The submitting system gets the answer; the rules' trace is for auditors.
    assert!(decision.get("rules").is_none(), "{decision}");
    let whole = server
        .get(&format!("/v1/payments/{id}"), Some(AUDITOR))
        .json()["decision"]
        .clone();
    let rules = whole["rules"].as_array().unwrap();
    assert_eq!(rules.len(), 4, "every rule ran: {whole}");
    for rule in rules {
        assert_eq!(rule["version"].as_str().unwrap().len(), 64, "{rule}");
        assert!(
            rule["duration_us"].is_u64() && rule["fuel_used"].as_u64() > Some(0),
            "{rule}"
        );
    }

    let stored = server.get(&format!("/v1/payments/{id}"), Some(SUBMITTER));
    assert_eq!(stored.status, 200, "{}", stored.body);
    let stored = stored.json();
    assert_eq!(stored["decision"], decision);
    assert_eq!(stored["payment"]["end_to_end_id"], "E2E-1");
    assert_eq!(stored["submitted_by"], "checkout");
}

#[test]
fn a_rejected_payment_names_its_iso_reason() {
    let server = Server::start();
    let reply = server.submit(SUBMITTER, "k-1", &payment("sanctioned-creditor.json", "1"));
    assert_eq!(reply.status, 201, "{}", reply.body);
    let decision = reply.json();
    assert_eq!(decision["status"], "rejected");
    assert_eq!(decision["reasons"][0]["code"], "RR04", "{decision}");
}

#[test]
fn a_retry_with_the_same_key_and_payload_gets_the_original_decision_and_says_so() {
    let server = Server::start();
    let body = payment("us-payroll-fednow.json", "1");
    let first = server.submit(SUBMITTER, "retry-1", &body);
    assert_eq!(first.status, 201, "{}", first.body);
    assert_eq!(first.header("idempotent-replayed"), None);
    // The same payment with its fields in another order and other spacing: same payload.
    let reordered: Value =
        serde_json::from_str(&serde_json::to_string_pretty(&body).unwrap()).unwrap();
    let retry = server.submit(SUBMITTER, "retry-1", &reordered);
    assert_eq!(retry.status, 200, "{}", retry.body);
    assert_eq!(retry.header("idempotent-replayed"), Some("true"));
    assert_eq!(retry.json(), first.json(), "the very same decision");
    assert_eq!(server.all_payments().len(), 1, "decided once");
}

#[test]
fn the_same_key_with_another_payload_is_refused_with_422() {
    let server = Server::start();
    let first = server.submit(SUBMITTER, "k", &payment("us-payroll-fednow.json", "1"));
    assert_eq!(first.status, 201);
    let mut changed = payment("us-payroll-fednow.json", "1");
    changed["amount"] = json!("1.00");
    let reply = server.submit(SUBMITTER, "k", &changed);
    assert_eq!(reply.status, 422, "{}", reply.body);
    assert_eq!(reply.code(), "idempotency_key_reused");
    assert_eq!(reply.json()["error"]["field"], "Idempotency-Key");
    assert_eq!(server.all_payments().len(), 1);
}

#[test]
fn idempotency_keys_are_scoped_per_api_key() {
    let server = Server::start();
    let body = payment("us-payroll-fednow.json", "1");
    assert_eq!(server.submit(SUBMITTER, "shared", &body).status, 201);
    let other = server.submit(OTHER_SUBMITTER, "shared", &body);
    assert_eq!(
        other.status, 201,
        "another system's key is another key: {}",
        other.body
    );
    assert_eq!(server.all_payments().len(), 2);
}

#[test]
fn concurrent_duplicates_are_decided_once() {
    let server = Server::start();
    let body = payment("cross-border-swift.json", "1");
    let statuses: Vec<(u16, Option<String>)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..16)
            .map(|_| {
                scope.spawn(|| {
                    let reply = server.submit(SUBMITTER, "same-key", &body);
                    let id = (reply.status != 409)
                        .then(|| reply.json()["payment_id"].as_str().unwrap().to_owned());
                    (reply.status, id)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let created = statuses.iter().filter(|(s, _)| *s == 201).count();
    assert_eq!(created, 1, "{statuses:?}");
    assert!(
        statuses.iter().all(|(s, _)| [200, 201, 409].contains(s)),
        "{statuses:?}"
    );
    let ids: BTreeSet<_> = statuses.iter().filter_map(|(_, id)| id.clone()).collect();
    assert_eq!(
        ids.len(),
        1,
        "every answer names the one payment: {statuses:?}"
    );
    assert_eq!(server.all_payments().len(), 1);
    // After the first commits, a retry gets the stored decision.
    assert_eq!(server.submit(SUBMITTER, "same-key", &body).status, 200);
}

#[test]
fn each_route_answers_each_role_as_documented() {
    let server = Server::start();
    let created = server.submit(SUBMITTER, "k", &payment("us-payroll-fednow.json", "1"));
    let id = created.json()["payment_id"].as_str().unwrap().to_owned();
    let one = format!("/v1/payments/{id}");
    let body = payment("us-payroll-fednow.json", "2");
    let post = |key: Option<&str>, idem: &str| {
        let auth = key.map(|k| format!("Bearer {k}"));
        let mut headers = vec![
            ("Content-Type", "application/json"),
            ("Idempotency-Key", idem),
        ];
        if let Some(auth) = auth.as_deref() {
            headers.push(("Authorization", auth));
        }
        server
            .request(
                "POST",
                "/v1/payments",
                &headers,
                Some(body.to_string().as_bytes()),
            )
            .status
    };
    assert_eq!(post(None, "a"), 401);
    assert_eq!(post(Some("pr_not_a_key"), "b"), 401);
    assert_eq!(post(Some(OPERATOR), "c"), 403);
    assert_eq!(post(Some(AUDITOR), "d"), 403);
    assert_eq!(post(Some(SUBMITTER), "e"), 201);
    let cases: &[(&str, Option<&str>, u16)] = &[
        (&one, None, 401),
        (&one, Some("pr_not_a_key"), 401),
        (&one, Some(SUBMITTER), 200),
        (&one, Some(OTHER_SUBMITTER), 404),
        (&one, Some(AUDITOR), 200),
        (&one, Some(OPERATOR), 403),
        ("/v1/payments", None, 401),
        ("/v1/payments", Some(SUBMITTER), 200),
        ("/v1/payments", Some(AUDITOR), 200),
        ("/v1/payments", Some(OPERATOR), 403),
        ("/v1/rules", None, 401),
        ("/v1/rules", Some(OPERATOR), 200),
        ("/v1/rules", Some(AUDITOR), 200),
        ("/v1/rules", Some(SUBMITTER), 403),
        ("/v1/rules/history", Some(OPERATOR), 200),
        ("/v1/rules/history", Some(AUDITOR), 200),
        ("/v1/rules/history", Some(SUBMITTER), 403),
        ("/v1/audit", Some(AUDITOR), 200),
        ("/v1/audit", Some(OPERATOR), 403),
        ("/v1/audit", Some(SUBMITTER), 403),
        ("/v1/hosts", None, 401),
        ("/v1/hosts", Some(OPERATOR), 200),
        ("/v1/hosts", Some(AUDITOR), 200),
        ("/v1/hosts", Some(SUBMITTER), 403),
        ("/healthz", None, 200),
        ("/readyz", None, 200),
        ("/metrics", None, 200),
        ("/openapi.json", None, 200),
    ];
    for (path, key, expected) in cases {
        let reply = server.get(path, *key);
        assert_eq!(
            reply.status, *expected,
            "GET {path} with {key:?}: {}",
            reply.body
        );
        if *expected == 401 {
            assert_eq!(reply.code(), "unauthenticated");
            assert!(
                reply
                    .header("www-authenticate")
                    .is_some_and(|v| v.starts_with("Bearer"))
            );
        }
        if *expected == 403 {
            assert_eq!(reply.code(), "role_required");
        }
    }
}

#[test]
fn submitters_list_their_own_payments_and_auditors_list_all() {
    let server = Server::start();
    for n in 0..3 {
        let reply = server.submit(
            SUBMITTER,
            &format!("c{n}"),
            &payment("us-payroll-fednow.json", &format!("c{n}")),
        );
        assert_eq!(reply.status, 201);
    }
    assert_eq!(
        server
            .submit(
                OTHER_SUBMITTER,
                "t0",
                &payment("us-payroll-fednow.json", "t0")
            )
            .status,
        201
    );
    let own = server.get("/v1/payments", Some(OTHER_SUBMITTER)).json();
    let own = own["payments"].as_array().unwrap();
    assert_eq!(own.len(), 1);
    assert_eq!(own[0]["submitted_by"], "treasury");
    assert_eq!(server.all_payments().len(), 4);
}

#[test]
fn listing_pages_newest_first_with_a_cursor_and_filters_by_status_and_time() {
    let server = Server::start();
    let examples = [
        "us-payroll-fednow.json",
        "sanctioned-creditor.json",
        "sepa-instant-supplier.json",
        "sanctioned-creditor.json",
        "cross-border-swift.json",
    ];
    let mut ids = Vec::new();
    for (n, example) in examples.iter().enumerate() {
        let reply = server.submit(
            SUBMITTER,
            &format!("k{n}"),
            &payment(example, &format!("{n}")),
        );
        assert_eq!(reply.status, 201, "{}", reply.body);
        ids.push(reply.json()["payment_id"].as_str().unwrap().to_owned());
    }
    let mut seen = Vec::new();
    let mut path = "/v1/payments?limit=2".to_owned();
    let mut pages = 0;
    loop {
        let page = server.get(&path, Some(SUBMITTER)).json();
        pages += 1;
        seen.extend(
            page["payments"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| p["payment_id"].as_str().unwrap().to_owned()),
        );
        match page["next_cursor"].as_str() {
            Some(cursor) => path = format!("/v1/payments?limit=2&cursor={cursor}"),
            None => break,
        }
    }
    ids.reverse();
    assert_eq!(seen, ids, "every payment once, newest first");
    assert_eq!(pages, 3);

    let rejected = server
        .get("/v1/payments?status=rejected", Some(SUBMITTER))
        .json();
    let rejected = rejected["payments"].as_array().unwrap();
    assert_eq!(rejected.len(), 2);
    assert!(rejected.iter().all(|p| p["status"] == "rejected"));

    let future = server
        .get("/v1/payments?since=2100-01-01T00:00:00Z", Some(SUBMITTER))
        .json();
    assert_eq!(future["payments"].as_array().unwrap().len(), 0);
    let past = server
        .get("/v1/payments?since=2000-01-01T00:00:00Z", Some(SUBMITTER))
        .json();
    assert_eq!(past["payments"].as_array().unwrap().len(), 5);

    for (query, code, field) in [
        ("status=approved", "status_invalid", Some("status")),
        ("since=yesterday", "since_invalid", Some("since")),
        ("limit=0", "limit_invalid", Some("limit")),
        ("limit=501", "limit_invalid", Some("limit")),
        ("cursor=abc", "cursor_invalid", Some("cursor")),
        ("limit=ten", "query_invalid", None),
        ("colour=red", "query_invalid", None),
    ] {
        let reply = server.get(&format!("/v1/payments?{query}"), Some(SUBMITTER));
        assert_eq!(reply.status, 400, "{query}: {}", reply.body);
        assert_eq!(reply.code(), code, "{query}");
        assert_eq!(reply.json()["error"]["field"].as_str(), field, "{query}");
    }
}

/// A valid payment with one change made by `edit`.
fn edited(edit: impl FnOnce(&mut Value)) -> String {
    let mut value = payment("sepa-instant-supplier.json", "bad");
    edit(&mut value);
    value.to_string()
}

#[test]
fn bad_input_is_refused_with_the_field_and_reason_and_nothing_is_stored() {
    let server = Server::start();
    let cases: Vec<(&str, String, u16, &str, Option<&str>)> = vec![
        (
            "malformed JSON",
            "{\"end_to_end_id\": ".to_owned(),
            400,
            "malformed_json",
            None,
        ),
        (
            "not an object",
            "[1, 2]".to_owned(),
            422,
            "field_type_invalid",
            None,
        ),
        (
            "wrong type",
            edited(|p| p["amount"] = json!(12.5)),
            422,
            "field_type_invalid",
            Some("amount"),
        ),
        (
            "missing field",
            edited(|p| {
                p.as_object_mut().unwrap().remove("currency");
            }),
            422,
            "field_missing",
            None,
        ),
        (
            "unknown field",
            edited(|p| p["colour"] = json!("red")),
            422,
            "field_unknown",
            None,
        ),
        (
            "negative amount",
            edited(|p| p["amount"] = json!("-5.00")),
            422,
            "amount_not_a_plain_decimal",
            Some("amount"),
        ),
        (
            "zero amount",
            edited(|p| p["amount"] = json!("0.00")),
            422,
            "amount_must_be_positive",
            Some("amount"),
        ),
        (
            "too many decimals",
            edited(|p| p["amount"] = json!("10.001")),
            422,
            "amount_has_too_many_decimals",
            Some("amount"),
        ),
        (
            "more than 18 digits",
            edited(|p| p["amount"] = json!("1234567890123456789")),
            422,
            "amount_has_too_many_digits",
            Some("amount"),
        ),
        (
            "unknown currency",
            edited(|p| p["currency"] = json!("XYZ")),
            422,
            "currency_unknown",
            Some("currency"),
        ),
        (
            "bad IBAN checksum",
            edited(|p| p["debtor"]["account"]["iban"] = json!("DE89370400440532013001")),
            422,
            "iban_invalid",
            Some("debtor.account.iban"),
        ),
        (
            "bad BIC",
            edited(|p| p["creditor_agent"]["bic"] = json!("NOT A BIC")),
            422,
            "bic_invalid",
            Some("creditor_agent.bic"),
        ),
        (
            "no debtor name",
            edited(|p| {
                p["debtor"].as_object_mut().unwrap().remove("name");
            }),
            422,
            "party_name_missing",
            Some("debtor.name"),
        ),
    ];
    for (what, body, status, code, field) in &cases {
        let key = what.replace(' ', "-");
        let reply = server.request(
            "POST",
            "/v1/payments",
            &[
                ("Authorization", &format!("Bearer {SUBMITTER}")),
                ("Content-Type", "application/json"),
                ("Idempotency-Key", &key),
            ],
            Some(body.as_bytes()),
        );
        assert_eq!(reply.status, *status, "{what}: {}", reply.body);
        assert_eq!(reply.code(), *code, "{what}: {}", reply.body);
        let error = &reply.json()["error"];
        assert!(!error["message"].as_str().unwrap().is_empty(), "{what}");
        if let Some(field) = field {
            assert_eq!(error["field"], *field, "{what}: {}", reply.body);
        }
        if *status == 422 && error["field"].is_string() {
            assert!(
                error["reason_code"].is_string(),
                "{what}: an ISO code: {}",
                reply.body
            );
        }
    }
    let good = payment("sepa-instant-supplier.json", "good").to_string();
    let auth = format!("Bearer {SUBMITTER}");
    type Headers<'a> = Vec<(&'a str, &'a str)>;
    let header_cases: Vec<(&str, Headers, u16, &str)> = vec![
        (
            "no content type",
            vec![("Authorization", &auth), ("Idempotency-Key", "h1")],
            415,
            "content_type_unsupported",
        ),
        (
            "XML content type for JSON",
            vec![
                ("Authorization", &auth),
                ("Content-Type", "text/plain"),
                ("Idempotency-Key", "h2"),
            ],
            415,
            "content_type_unsupported",
        ),
        (
            "no idempotency key",
            vec![
                ("Authorization", &auth),
                ("Content-Type", "application/json"),
            ],
            400,
            "idempotency_key_missing",
        ),
        (
            "empty idempotency key",
            vec![
                ("Authorization", &auth),
                ("Content-Type", "application/json"),
                ("Idempotency-Key", "\"\""),
            ],
            400,
            "idempotency_key_invalid",
        ),
    ];
    for (what, headers, status, code) in &header_cases {
        let reply = server.request("POST", "/v1/payments", headers, Some(good.as_bytes()));
        assert_eq!(reply.status, *status, "{what}: {}", reply.body);
        assert_eq!(reply.code(), *code, "{what}");
    }
    assert!(server.all_payments().is_empty(), "nothing was stored");
    let audit = server.get("/v1/audit", Some(AUDITOR)).json();
    let actions: Vec<_> = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].clone())
        .collect();
    assert_eq!(
        actions,
        vec![json!("rules.loaded")],
        "no decision was audited"
    );
}

#[test]
fn an_oversized_body_is_refused_with_413() {
    let server = Server::with_limits("body_bytes_max = 4096");
    let mut body = payment("sepa-instant-supplier.json", "big");
    body["remittance"] = json!("x".repeat(5000));
    let reply = server.submit(SUBMITTER, "big", &body);
    assert_eq!(reply.status, 413, "{}", reply.body);
    assert_eq!(reply.code(), "body_too_large");
    assert!(server.all_payments().is_empty());
}

#[test]
fn metrics_count_requests_decisions_and_each_rule() {
    let server = Server::start();
    assert_eq!(
        server
            .submit(SUBMITTER, "m1", &payment("us-payroll-fednow.json", "m1"))
            .status,
        201
    );
    assert_eq!(
        server
            .submit(SUBMITTER, "m2", &payment("sanctioned-creditor.json", "m2"))
            .status,
        201
    );
    assert_eq!(
        server
            .submit(SUBMITTER, "m2", &payment("sanctioned-creditor.json", "m2"))
            .status,
        200
    );
    let text = server.get("/metrics", None).body;
    for line in [
        "payrules_decisions_total{status=\"accepted\"} 1",
        "payrules_decisions_total{status=\"rejected\"} 1",
        "payrules_idempotent_replays_total 1",
        "payrules_http_request_duration_seconds_count{route=\"/v1/payments\",method=\"POST\",status=\"201\"} 2",
        "payrules_http_request_duration_seconds_count{route=\"/v1/payments\",method=\"POST\",status=\"200\"} 1",
        "payrules_rule_duration_seconds_count{rule=\"sanctions-screening\",kind=\"compliance\"} 2",
        "payrules_rule_fuel_count{rule=\"rail-router\",kind=\"routing\"} 1",
        "payrules_store_commit_batch_size_count",
        "payrules_rule_set_info{version=\"",
    ] {
        assert!(text.contains(line), "{line} in\n{text}");
    }
}

#[test]
fn the_openapi_document_matches_the_routes() {
    let server = Server::start();
    let document = server.get("/openapi.json", None).json();
    assert!(document["openapi"].as_str().unwrap().starts_with("3."));
    let paths = document["paths"].as_object().unwrap();
    let mut listed = BTreeSet::new();
    for (path, item) in paths {
        for method in item.as_object().unwrap().keys() {
            listed.insert(format!("{} {path}", method.to_uppercase()));
        }
    }
    let expected: BTreeSet<String> = [
        "POST /v1/payments",
        "GET /v1/payments",
        "GET /v1/payments/{id}",
        "GET /v1/payments/{id}/reproduction",
        "POST /v1/payments/{id}/review",
        "GET /v1/reviews",
        "GET /v1/messages/{msg_id}/status",
        "GET /v1/webhooks",
        "GET /v1/webhooks/dead-letters",
        "POST /v1/webhooks/redeliver",
        "GET /v1/rules",
        "POST /v1/rules/reload",
        "GET /v1/rules/history",
        "GET /v1/rules/by-name/{name}",
        "POST /v1/rules/rollback",
        "DELETE /v1/rules/rollback",
        "GET /v1/rules/canary",
        "POST /v1/rules/canary",
        "DELETE /v1/rules/canary",
        "POST /v1/rules/canary/percent",
        "POST /v1/rules/canary/promote",
        "POST /v1/rules/shadow",
        "GET /v1/rules/shadow",
        "DELETE /v1/rules/shadow",
        "GET /v1/rules/shadow/report",
        "POST /v1/rules/shadow/pins",
        "GET /v1/audit",
        "GET /v1/hosts",
        "GET /v1/overview",
        "GET /healthz",
        "GET /readyz",
        "GET /metrics",
        "GET /openapi.json",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    assert_eq!(listed, expected);
    // Every documented GET route is served (none falls through to route_not_found).
    for entry in &listed {
        let Some(path) = entry.strip_prefix("GET ") else {
            continue;
        };
        let path = path
            .replace("{id}", "pay_missing")
            .replace("{msg_id}", "MSG-MISSING")
            .replace("{name}", "limits");
        let reply = server.get(&path, Some(AUDITOR));
        assert!(
            reply.status != 404 || reply.code() != "route_not_found",
            "{entry}: {}",
            reply.body
        );
    }
    assert_eq!(server.get("/v1/nothing", None).code(), "route_not_found");
    let schemas = document["components"]["schemas"].as_object().unwrap();
    for schema in [
        "Payment",
        "Decision",
        "ClientDecision",
        "DecisionView",
        "ErrorBody",
        "PaymentView",
        "PaymentPage",
        "RuleSetView",
    ] {
        assert!(schemas.contains_key(schema), "{schema}");
    }
    assert_eq!(
        schemas["Payment"]["required"],
        json!([
            "end_to_end_id",
            "amount",
            "currency",
            "debtor",
            "debtor_agent",
            "creditor",
            "creditor_agent"
        ])
    );
}

#[test]
fn the_request_id_is_echoed_or_made() {
    let server = Server::start();
    let given = server.request(
        "GET",
        "/healthz",
        &[("X-Request-Id", "client-abc-123")],
        None,
    );
    assert_eq!(given.header("x-request-id"), Some("client-abc-123"));
    let made = server.get("/healthz", None);
    let id = made.header("x-request-id").unwrap();
    assert!(id.starts_with("req_"), "{id}");
    let hostile = server.request(
        "GET",
        "/healthz",
        &[("X-Request-Id", "has spaces and {braces}")],
        None,
    );
    assert!(hostile.header("x-request-id").unwrap().starts_with("req_"));
}

#[test]
fn logs_carry_neither_api_keys_nor_personal_data() {
    let server = Server::start();
    let body = payment("sepa-instant-supplier.json", "log");
    assert_eq!(server.submit(SUBMITTER, "log", &body).status, 201);
    assert_eq!(
        server.get("/v1/payments", Some("pr_wrong_key_zzz")).status,
        401
    );
    let log = server.log();
    assert!(
        log.contains("payment decided"),
        "the log has the request: {log}"
    );
    assert!(log.contains("checkout"), "the key's name is logged: {log}");
    let debtor = body["debtor"]["name"].as_str().unwrap();
    let iban = body["debtor"]["account"]["iban"].as_str().unwrap();
    for secret in [SUBMITTER, "pr_wrong_key_zzz", debtor, iban] {
        assert!(!log.contains(secret), "{secret} is in the log:\n{log}");
    }
}

#[test]
fn a_payment_printed_by_payrules_parse_can_be_posted_as_it_is() {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_payrules"))
        .arg("parse")
        .arg(
            crate::support::workspace().join("tests/fixtures/iso20022/pacs008-fednow-envelope.xml"),
        )
        .output()
        .unwrap();
    assert!(output.status.success());
    let parsed: Value = serde_json::from_slice(&output.stdout).unwrap();
    let server = Server::start();
    let reply = server.submit(SUBMITTER, "parsed", &parsed["payments"][0]);
    assert_eq!(reply.status, 201, "{}", reply.body);
}

#[test]
fn velocity_figures_are_rebuilt_from_the_store_after_a_restart() {
    // The fraud findings are read as an auditor reads them.
    let whole = |server: &Server, decision: &Value| {
        let id = decision["payment_id"].as_str().unwrap();
        server
            .get(&format!("/v1/payments/{id}"), Some(AUDITOR))
            .json()["decision"]
            .clone()
    };
    let new_creditor = |decision: &Value| {
        decision["rules"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|rule| rule["reasons"].as_array())
            .flatten()
            .any(|reason| reason["code"] == "new-creditor")
    };
    let server = Server::start();
    let first = server
        .submit(SUBMITTER, "v1", &payment("cross-border-swift.json", "v1"))
        .json();
    let first = whole(&server, &first);
    assert!(
        new_creditor(&first),
        "the first payment to this creditor: {first}"
    );
    let second = server
        .submit(SUBMITTER, "v2", &payment("cross-border-swift.json", "v2"))
        .json();
    let second = whole(&server, &second);
    assert!(
        !new_creditor(&second),
        "the creditor is known now: {second}"
    );
    let server = server.crash_and_restart();
    let third = server
        .submit(SUBMITTER, "v3", &payment("cross-border-swift.json", "v3"))
        .json();
    let third = whole(&server, &third);
    assert!(
        !new_creditor(&third),
        "still known after a restart: {third}"
    );
}

/// What a rule logs may quote the payment's parties (its text is the rule author's): it
/// is kept in the decision's trace, sealed in the store, and does not reach the service's
/// log unless the log filter names `payrules::rule` (this server logs at `debug`).
#[test]
fn what_a_rule_logs_stays_in_its_decisions_trace_not_in_the_service_log() {
    let rules = crate::support::RulesDir::new();
    crate::support::copy_dir(&crate::support::example_rules(), rules.path());
    let rules = rules.misbehaving("chatty", "chatty", "order = 0");
    let server = Server::with_rules_and_limits(rules.path(), "");
    let mut body = payment("sepa-instant-supplier.json", "chatty");
    body["end_to_end_id"] = json!("E2E-CHATTY-MARK");
    let reply = server.submit(SUBMITTER, "chatty", &body);
    assert_eq!(reply.status, 201, "{}", reply.body);
    let id = reply.json()["payment_id"].as_str().unwrap().to_owned();
    let whole = server
        .get(&format!("/v1/payments/{id}"), Some(AUDITOR))
        .json();
    let chatty = whole["decision"]["rules"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "chatty")
        .cloned()
        .unwrap();
    assert!(
        chatty["logs"].to_string().contains("about E2E-CHATTY-MARK"),
        "the trace keeps the rule's lines: {chatty}"
    );
    let log = server.log();
    assert!(log.contains("payment decided"), "{log}");
    assert!(
        !log.contains("about E2E-CHATTY-MARK"),
        "a rule's line reached the log:\n{log}"
    );
}

#[test]
fn json_logs_are_one_object_per_line_with_request_pipeline_stage_and_rule_spans() {
    let server = Server::with_json_logs();
    let reply = server.submit(
        SUBMITTER,
        "json-log",
        &payment("sepa-instant-supplier.json", "json-log"),
    );
    assert_eq!(reply.status, 201);
    let request_id = reply.header("x-request-id").unwrap().to_owned();
    let log = server.log();
    let lines: Vec<Value> = log
        .lines()
        .filter(|line| line.starts_with('{'))
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
        .collect();
    assert!(!lines.is_empty(), "{log}");
    let decided = lines
        .iter()
        .find(|line| line["message"] == "payment decided")
        .unwrap_or_else(|| panic!("no decision logged: {log}"));
    assert_eq!(
        decided["span"]["request_id"],
        request_id.as_str(),
        "{decided}"
    );
    let in_rule = lines.iter().find(|line| {
        line["spans"].as_array().is_some_and(|spans| {
            spans.iter().any(|s| s["name"] == "request")
                && spans.iter().any(|s| s["name"] == "pipeline")
                && spans
                    .iter()
                    .any(|s| s["name"] == "stage" && s["kind"] == "compliance")
                && spans.iter().any(|s| s["name"] == "rule")
        })
    });
    assert!(
        in_rule.is_some(),
        "an event inside a rule, nested under its request, pipeline and stage: {log}"
    );
}

/// The OpenAPI document says what the server enforces, so a client generated from it is
/// not refused for a request the document calls valid (issue 16, item 9): the checks are
/// each declared, and each declared bound is the one the server applies.
#[test]
fn the_openapi_document_declares_what_the_server_enforces() {
    let server = Server::start();
    let document = server.get("/openapi.json", None).json();
    let param = |path: &str, method: &str, name: &str| -> Value {
        document["paths"][path][method]["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == name)
            .unwrap_or_else(|| panic!("{method} {path} declares {name}"))
            .clone()
    };
    let key = param("/v1/payments", "post", "Idempotency-Key");
    assert_eq!(key["required"], true, "{key}");
    assert_eq!(key["schema"]["maxLength"], 255);
    let limit = param("/v1/payments", "get", "limit");
    assert_eq!(
        (
            limit["schema"]["minimum"].as_f64(),
            limit["schema"]["maximum"].as_f64()
        ),
        (Some(1.0), Some(500.0)),
        "{limit}"
    );
    assert_eq!(
        param("/v1/payments", "get", "since")["schema"]["format"],
        "date-time"
    );
    let audit_limit = param("/v1/audit", "get", "limit");
    assert_eq!(
        audit_limit["schema"]["maximum"].as_f64(),
        Some(500.0),
        "{audit_limit}"
    );
    let id = param("/v1/payments/{id}", "get", "id");
    assert_eq!(id["schema"]["maxLength"], 64);
    let metrics = &document["paths"]["/metrics"]["get"]["responses"]["200"]["content"];
    let served = server.get("/metrics", None);
    let content_type = served
        .header("content-type")
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    assert!(
        metrics.get(&content_type).is_some(),
        "{content_type} is not declared: {metrics}"
    );
    let dir = &document["components"]["schemas"]["InstallRequest"]["properties"]["dir"];
    assert_eq!(dir["maxLength"], 4096, "{dir}");

    // And the server enforces what is declared: one past each bound is refused.
    let get = |path: &str| server.get(path, Some(AUDITOR));
    assert_eq!(get("/v1/payments?limit=500").status, 200);
    assert_eq!(get("/v1/payments?limit=501").code(), "limit_invalid");
    assert_eq!(get("/v1/payments?limit=0").code(), "limit_invalid");
    assert_eq!(get("/v1/audit?limit=501").code(), "limit_invalid");
    assert_eq!(get("/v1/payments?since=2026-11-22T08:00:00Z").status, 200);
    let body = payment("us-payroll-fednow.json", "no-key").to_string();
    let without_key = server.request(
        "POST",
        "/v1/payments",
        &[
            ("Authorization", &format!("Bearer {SUBMITTER}")),
            ("Content-Type", "application/json"),
        ],
        Some(body.as_bytes()),
    );
    assert_eq!(without_key.code(), "idempotency_key_missing");
    let long_key = server.submit(
        SUBMITTER,
        &"k".repeat(256),
        &payment("us-payroll-fednow.json", "k"),
    );
    assert_eq!(long_key.code(), "idempotency_key_invalid");
}

/// The payment's schema in the OpenAPI document is the validator's, field by field (issue
/// 16, item 9): for every text field the document declares, a table of values — at the
/// length bound and one past it, empty, blank, a control character, non-ASCII letters — is
/// taken by the server exactly when the declared schema (minLength, maxLength, pattern)
/// takes it; the amount's pattern and bound likewise; and the rules that tie fields
/// together (an account is exactly one of iban and id; the debtor's and creditor's names
/// and accounts; the agents' bic or member_id; no account for an ultimate party) are in the
/// document, each checked against the server.
#[test]
fn the_payment_schema_in_the_openapi_document_is_what_the_server_takes() {
    let server = Server::start();
    let document = server.get("/openapi.json", None).json();
    let schemas = &document["components"]["schemas"];
    let mut leaves = Vec::new();
    string_leaves(schemas, &schemas["Payment"], "", &mut leaves);
    let paths: BTreeSet<&str> = leaves.iter().map(|(path, _)| path.as_str()).collect();
    for expected in [
        "end_to_end_id",
        "debtor.name",
        "debtor.account.id",
        "debtor.address.street_name",
        "debtor.address.address_lines[]",
        "creditor_agent.member_id",
        "ultimate_creditor.name",
        "intermediary_agents[].name",
        "remittance",
        "amount",
    ] {
        assert!(
            paths.contains(expected),
            "{expected} is declared: {paths:?}"
        );
    }

    let base = payment("sepa-instant-supplier.json", "schema");
    let mut n = 0;
    let mut try_value = |path: &str, value: &str| -> bool {
        n += 1;
        let mut body = base.clone();
        set(&mut body, path, json!(value));
        let reply = server.submit(SUBMITTER, &format!("schema-{n}"), &body);
        match reply.status {
            201 => true,
            400 | 422 => false,
            other => panic!("{path} = {value:?}: {other} {}", reply.body),
        }
    };
    let mut checked = 0;
    for (path, leaf) in &leaves {
        let declared = |value: &str| declared_string(leaf, value);
        if path == "amount" {
            for value in ["1", "0.01", "0042.50", "0", "0.00", "-1", "1e3", "1.", ".5"] {
                assert_eq!(
                    try_value(path, value),
                    declared(value),
                    "amount = {value:?}"
                );
            }
            let longest = leaf["maxLength"].as_u64().unwrap() as usize;
            let padded = format!("{:0>longest$}", "7.50");
            assert!(declared(&padded) && try_value(path, &padded));
            let past = format!("0{padded}");
            assert!(!declared(&past) && !try_value(path, &past));
            checked += 1;
            continue;
        }
        let Some(max) = leaf["maxLength"].as_u64().map(|max| max as usize) else {
            continue;
        };
        if leaf["minLength"] != 1 {
            // Not free text (an IBAN, a BIC, a code): its check digits or registry are
            // more than a pattern says; one well-formed value must pass.
            continue;
        }
        for value in [
            "x".repeat(max),
            "x".repeat(max + 1),
            String::new(),
            "   ".to_owned(),
            "\u{a0}\u{2003}".to_owned(),
            "a\u{7}b".to_owned(),
            "a\u{85}b".to_owned(),
            "Zoë Ñandú 李".to_owned(),
            " padded ".to_owned(),
        ] {
            assert_eq!(
                try_value(path, &value),
                declared(&value),
                "{path} = {value:?} against {leaf}"
            );
        }
        checked += 1;
    }
    assert!(checked >= 20, "{checked} text fields checked");

    // The rules between fields, as the document states them and the server applies them.
    let account = &schemas["Account"];
    assert_eq!(
        (
            account["minProperties"].as_u64(),
            account["maxProperties"].as_u64()
        ),
        (Some(1), Some(1)),
        "{account}"
    );
    let debtor = &schemas["Payment"]["properties"]["debtor"]["allOf"][1]["required"];
    assert_eq!(
        debtor,
        &json!(["name", "account"]),
        "{}",
        schemas["Payment"]
    );
    let agent = &schemas["Payment"]["properties"]["debtor_agent"]["allOf"][1]["anyOf"];
    assert_eq!(agent.as_array().map(Vec::len), Some(2), "{agent}");
    let ultimate = &schemas["Payment"]["properties"]["ultimate_debtor"];
    assert!(
        ultimate["properties"].get("account").is_none()
            && ultimate["additionalProperties"] == false,
        "{ultimate}"
    );
    let mut status_of = |edit: &dyn Fn(&mut Value)| {
        n += 1;
        let mut body = base.clone();
        edit(&mut body);
        server
            .submit(SUBMITTER, &format!("schema-{n}"), &body)
            .status
    };
    let iban = base["debtor"]["account"]["iban"].clone();
    assert_eq!(
        status_of(&|p| p["debtor"]["account"] = json!({"iban": iban, "id": "A-1"})),
        422
    );
    assert_eq!(status_of(&|p| p["debtor"]["account"] = json!({})), 422);
    assert_eq!(
        status_of(&|p| {
            p["creditor"].as_object_mut().unwrap().remove("name");
        }),
        422
    );
    assert_eq!(
        status_of(&|p| p["debtor_agent"] = json!({"name": "A bank"})),
        422
    );
    assert_eq!(
        status_of(&|p| p["debtor_agent"] = json!({"member_id": "021000021"})),
        201
    );
    assert_eq!(
        status_of(
            &|p| p["ultimate_debtor"] = json!({"name": "On behalf", "account": {"id": "U-1"}})
        ),
        422
    );
    assert_eq!(
        status_of(&|p| p["ultimate_debtor"] = json!({"name": "On behalf"})),
        201
    );
}

/// Every string-typed leaf under `schema`, by dotted path (`[]` for an array's items),
/// resolving `$ref`s and walking `oneOf`, `anyOf` and `allOf`.
fn string_leaves(schemas: &Value, schema: &Value, path: &str, out: &mut Vec<(String, Value)>) {
    if let Some(reference) = schema["$ref"].as_str() {
        let name = reference.rsplit('/').next().unwrap();
        return string_leaves(schemas, &schemas[name], path, out);
    }
    for composite in ["oneOf", "anyOf", "allOf"] {
        for item in schema[composite].as_array().into_iter().flatten() {
            string_leaves(schemas, item, path, out);
        }
    }
    match schema["type"].as_str() {
        Some("string") if !out.iter().any(|(known, _)| known == path) => {
            out.push((path.to_owned(), schema.clone()));
        }
        Some("array") => string_leaves(schemas, &schema["items"], &format!("{path}[]"), out),
        _ => {}
    }
    for (name, property) in schema["properties"].as_object().into_iter().flatten() {
        let path = if path.is_empty() {
            name.clone()
        } else {
            format!("{path}.{name}")
        };
        string_leaves(schemas, property, &path, out);
    }
}

/// Does a string schema (minLength, maxLength, pattern: ECMA-262, which the `regex` crate
/// reads for the escapes used) take `value`?
fn declared_string(schema: &Value, value: &str) -> bool {
    let length = value.chars().count() as u64;
    let min = schema["minLength"].as_u64().unwrap_or(0);
    let max = schema["maxLength"].as_u64().unwrap_or(u64::MAX);
    let pattern = schema["pattern"]
        .as_str()
        .map(|p| regex::Regex::new(p).unwrap());
    length >= min && length <= max && pattern.is_none_or(|p| p.is_match(value))
}

/// Sets the field at `path` (as [`string_leaves`] names it) in a payment, making the
/// objects on the way; an account becomes that one identifier alone (exactly one is
/// allowed) and an array gets that one item.
fn set(payment: &mut Value, path: &str, value: Value) {
    let mut at = payment;
    let parts: Vec<&str> = path.split('.').collect();
    for (i, part) in parts.iter().enumerate() {
        let last = i + 1 == parts.len();
        let (name, array) = match part.strip_suffix("[]") {
            Some(name) => (name, true),
            None => (*part, false),
        };
        if last && !array {
            if name == "id" || name == "iban" {
                *at = json!({});
            }
            at[name] = value;
            return;
        }
        if array {
            at[name] = if last { json!([value]) } else { json!([{}]) };
            if last {
                return;
            }
            at = &mut at[name][0];
        } else {
            if at.get(name).is_none_or(Value::is_null) {
                at[name] = json!({});
            }
            at = &mut at[name];
        }
    }
}

/// Over HTTP: a rule that keeps failing opens its circuit — `GET /v1/rules` shows it open,
/// the decisions' traces say it was not run, the metrics count the transition, the audit
/// log records it — and after the cool-down a payment that passes closes it, audited too.
#[test]
fn a_failing_rules_circuit_opens_and_closes_on_the_record() {
    let rules = crate::support::RulesDir::new();
    crate::support::copy_dir(&crate::support::example_rules(), rules.path());
    let rules = rules.misbehaving("flaky", "panic-on-break", "order = 0");
    let server = Server::with_rules_and_limits(
        rules.path(),
        "\n[circuit_breaker]\nfailures = 3\nfailure_rate_percent = 50\ncool_down_ms = 1000\n",
    );
    let submit = |id: &str| {
        let mut body = payment("sepa-instant-supplier.json", id);
        body["end_to_end_id"] = json!(id);
        let reply = server.submit(SUBMITTER, id, &body);
        assert_eq!(reply.status, 201, "{}", reply.body);
        let id = reply.json()["payment_id"].as_str().unwrap().to_owned();
        let whole = server
            .get(&format!("/v1/payments/{id}"), Some(AUDITOR))
            .json();
        let flaky = whole["decision"]["rules"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["name"] == "flaky")
            .cloned()
            .unwrap();
        (whole["decision"]["status"].clone(), flaky)
    };
    let circuit = || {
        let rules = server.get("/v1/rules", Some(OPERATOR)).json();
        rules["rules"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["name"] == "flaky")
            .unwrap()["circuit"]
            .clone()
    };
    let audited = |action: &str| {
        server.get("/v1/audit", Some(AUDITOR)).json()["entries"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["action"] == action && e["subject"] == "flaky")
            .count()
    };
    let eventually = |what: &str, done: &dyn Fn() -> bool| {
        let started = std::time::Instant::now();
        while !done() {
            assert!(started.elapsed().as_secs() < 20, "{what}");
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    };

    assert_eq!(circuit()["state"], "closed");
    for n in 1..=3 {
        let (status, flaky) = submit(&format!("CB-BREAK-{n}"));
        assert_eq!(status, "pending_review");
        assert_eq!(flaky["failure"], "trap", "{flaky}");
    }
    assert_eq!(circuit()["state"], "open", "{}", circuit());
    let (status, flaky) = submit("CB-FINE-1");
    assert_eq!(
        status, "pending_review",
        "its failure policy (review) applies"
    );
    assert_eq!(flaky["failure"], "circuit_open", "{flaky}");
    assert_eq!(flaky["fuel_used"], 0);
    eventually("the opening is audited", &|| {
        audited("rule.circuit_opened") == 1
    });
    let metrics = server.get("/metrics", None).body;
    assert!(
        metrics.contains("payrules_rule_circuit_transitions_total{rule=\"flaky\",to=\"open\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("payrules_rule_failures_total{rule=\"flaky\",failure=\"circuit_open\"} 1"),
        "{metrics}"
    );

    // After the cool-down, a payment that passes closes it; the next one runs it.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let (status, flaky) = submit("CB-FINE-2");
    assert_eq!(flaky["outcome"], "pass", "{flaky}");
    assert_ne!(status, "pending_review");
    assert_eq!(circuit()["state"], "closed");
    assert_eq!(circuit()["opened"], 1);
    eventually("the closing is audited", &|| {
        audited("rule.circuit_closed") == 1
    });
    let (_, flaky) = submit("CB-BREAK-4");
    assert_eq!(flaky["failure"], "trap", "{flaky}");
}

/// An auditor finds payments by end-to-end id, by a rule that fired in them, by the rule
/// set that decided them and by a time window; a malformed filter is refused naming it.
#[test]
fn payments_are_found_by_end_to_end_id_rule_fired_and_rule_set_version() {
    let server = Server::start();
    let accepted = server.submit(
        SUBMITTER,
        "find-1",
        &payment("us-payroll-fednow.json", "find-1"),
    );
    let rejected = server.submit(
        SUBMITTER,
        "find-2",
        &payment("sanctioned-creditor.json", "find-2"),
    );
    assert_eq!(rejected.json()["status"], "rejected", "{}", rejected.body);
    let id = |reply: &crate::server::Reply| reply.json()["payment_id"].as_str().unwrap().to_owned();
    let (accepted_id, rejected_id) = (id(&accepted), id(&rejected));
    let version = accepted.json()["rule_set_version"]
        .as_str()
        .unwrap()
        .to_owned();
    let found = |query: &str| {
        let reply = server.get(&format!("/v1/payments?{query}"), Some(AUDITOR));
        assert_eq!(reply.status, 200, "{query}: {}", reply.body);
        reply.json()["payments"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["payment_id"].as_str().unwrap().to_owned())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        found("end_to_end_id=E2E-find-2"),
        vec![rejected_id.as_str()]
    );
    assert_eq!(
        found("rule=sanctions-screening"),
        vec![rejected_id.as_str()]
    );
    assert_eq!(
        found("rule=rail-router"),
        vec![accepted_id.as_str()],
        "the rejected one was not routed"
    );
    assert_eq!(
        found(&format!("rule_set_version={}", &version[..8])),
        vec![rejected_id.as_str(), accepted_id.as_str()]
    );
    let other_version: String = version[..8]
        .chars()
        .map(|c| if c == '0' { '1' } else { '0' })
        .collect();
    assert!(found(&format!("rule_set_version={other_version}")).is_empty());
    assert!(found("until=2000-01-01T00:00:00Z").is_empty());
    assert_eq!(
        found("until=2999-01-01T00:00:00Z&rule=sanctions-screening"),
        vec![rejected_id.as_str()]
    );
    // A submitter's search stays within its own payments.
    let other = server.get(
        "/v1/payments?end_to_end_id=E2E-find-2",
        Some(OTHER_SUBMITTER),
    );
    assert_eq!(other.status, 200);
    assert_eq!(other.json()["payments"], json!([]));
    for (query, code) in [
        ("end_to_end_id=", "end_to_end_id_invalid"),
        (
            &format!("end_to_end_id={}", "x".repeat(36)) as &str,
            "end_to_end_id_invalid",
        ),
        ("rule=a%20b", "rule_invalid"),
        ("rule_set_version=XYZ1", "rule_set_version_invalid"),
        ("rule_set_version=abc", "rule_set_version_invalid"),
        ("until=yesterday", "until_invalid"),
    ] {
        let reply = server.get(&format!("/v1/payments?{query}"), Some(AUDITOR));
        assert_eq!(reply.status, 400, "{query}: {}", reply.body);
        assert_eq!(reply.code(), code, "{query}");
    }
}
