//! `GET /v1/overview`: what the console's overview charts, against a hand count of the
//! payments submitted — from this host's memory (15 minutes, 1 hour) and from the store
//! (24 hours, 7 days), across a restart.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::server::{AUDITOR, OPERATOR, SUBMITTER, Server, payment};

/// The overview of `window`, as an operator.
fn overview(server: &Server, window: &str) -> Value {
    let reply = server.get(&format!("/v1/overview?window={window}"), Some(OPERATOR));
    assert_eq!(reply.status, 200, "{}", reply.body);
    reply.json()
}

/// The decisions by status the window's total holds.
fn counted(view: &Value) -> (u64, u64, u64) {
    let d = &view["total"]["decisions"];
    (
        d["accepted"].as_u64().unwrap(),
        d["rejected"].as_u64().unwrap(),
        d["pending_review"].as_u64().unwrap(),
    )
}

/// Waits (at most 20 s: the sampler writes every 10 s) until `window` holds `expected`.
fn wait_for_counts(server: &Server, window: &str, expected: (u64, u64, u64)) -> Value {
    let started = Instant::now();
    loop {
        let view = overview(server, window);
        if counted(&view) == expected {
            return view;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "{window} never held {expected:?}: {}",
            view["total"]
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

#[test]
fn the_overview_counts_what_was_decided_in_memory_and_in_the_store_across_a_restart() {
    let server = Server::start();
    // One accepted, one rejected (a sanctioned creditor), one held (a weak match); the
    // accepted one retried: a second answer 2xx, not a second decision.
    for (key, example) in [
        ("o-1", "us-payroll-fednow.json"),
        ("o-2", "sanctioned-creditor.json"),
        ("o-3", "weak-match-review.json"),
        ("o-1", "us-payroll-fednow.json"),
    ] {
        let reply = server.submit(SUBMITTER, key, &payment(example, key));
        assert!(reply.status == 201 || reply.status == 200, "{}", reply.body);
    }
    let view = overview(&server, "15m");
    assert_eq!(counted(&view), (1, 1, 1), "{}", view["total"]);
    assert_eq!(view["source"], "this_host");
    assert_eq!(view["point_seconds"], 10);
    assert_eq!(view["points"].as_array().unwrap().len(), 90);
    let points_sum: u64 = view["points"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["decisions"]["accepted"].as_u64().unwrap())
        .sum();
    assert_eq!(points_sum, 1, "the points add up to the total");
    let latency = &view["total"]["latency_us"];
    let (p50, p99) = (
        latency["p50"].as_u64().unwrap(),
        latency["p99"].as_u64().unwrap(),
    );
    assert!(p50 > 0 && p50 <= p99, "{latency}");

    // Each rule: calls by hand (compliance rules run on every payment; a rejected payment
    // stops before fraud and routing), and its version is the live component's.
    let live = server.get("/v1/rules", Some(OPERATOR)).json();
    let rules = view["total"]["rules"].as_array().unwrap();
    for rule in live["rules"].as_array().unwrap() {
        let name = rule["name"].as_str().unwrap();
        let figures = rules
            .iter()
            .find(|r| r["name"] == name)
            .unwrap_or_else(|| panic!("{name} in {}", view["total"]));
        let expected = if rule["kind"] == "compliance" { 3 } else { 2 };
        assert_eq!(figures["calls"], expected, "{name}: {figures}");
        assert_eq!(figures["failures"], 0, "{name}");
        assert_eq!(figures["versions"][0]["version"], rule["version"], "{name}");
        assert!(figures["fuel"]["p95"].as_u64().unwrap() > 0, "{name}");
    }

    // Bad windows and the wrong role.
    let bad = server.get("/v1/overview?window=2h", Some(OPERATOR));
    assert_eq!((bad.status, bad.code()), (400, "window_invalid".to_owned()));
    assert_eq!(bad.json()["error"]["field"], "window");
    assert_eq!(server.get("/v1/overview", Some(SUBMITTER)).status, 403);
    assert_eq!(server.get("/v1/overview", Some(AUDITOR)).status, 200);

    // A deployment's stop writes the last figures; the store's windows hold them after a
    // restart, the in-memory ones start again from nothing.
    let server = server.stop_and_restart();
    let day = overview(&server, "24h");
    assert_eq!(counted(&day), (1, 1, 1), "{}", day["total"]);
    assert_eq!(day["source"], "every_host");
    assert_eq!(day["points"].as_array().unwrap().len(), 144);
    assert_eq!(
        day["hosts"].as_array().unwrap().len(),
        1,
        "{}",
        day["hosts"]
    );
    assert_eq!(counted(&overview(&server, "7d")), (1, 1, 1));
    assert_eq!(counted(&overview(&server, "15m")), (0, 0, 0));

    // The running host's sampler adds its own figures within a sample.
    let reply = server.submit(SUBMITTER, "o-4", &payment("us-payroll-fednow.json", "o-4"));
    assert_eq!(reply.status, 201, "{}", reply.body);
    let day = wait_for_counts(&server, "24h", (2, 1, 1));
    assert_eq!(
        day["hosts"].as_array().unwrap().len(),
        2,
        "two processes: {}",
        day["hosts"]
    );
    assert_eq!(counted(&overview(&server, "1h")), (1, 0, 0));
}
