//! OpenTelemetry: the real binary exports its spans over OTLP/HTTP to a collector on
//! loopback (a receiver this test runs), continuing the trace the client started.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::server::{SUBMITTER, Server, payment};

/// An OTLP/HTTP traces receiver on loopback: what it was sent, as JSON.
struct Collector {
    address: SocketAddr,
    received: Arc<Mutex<Vec<Value>>>,
    _runtime: tokio::runtime::Runtime,
}

impl Collector {
    fn start() -> Collector {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("a runtime");
        let received: Arc<Mutex<Vec<Value>>> = Arc::default();
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .expect("a port on loopback");
        let address = listener.local_addr().expect("its address");
        let store = Arc::clone(&received);
        let app = axum::Router::new().route(
            "/v1/traces",
            axum::routing::post(move |body: axum::body::Bytes| {
                let store = Arc::clone(&store);
                async move {
                    let export = serde_json::from_slice(&body).unwrap_or_else(|e| {
                        Value::String(format!(
                            "not JSON ({e}): {}",
                            String::from_utf8_lossy(&body)
                        ))
                    });
                    store.lock().unwrap().push(export);
                    "{}"
                }
            }),
        );
        runtime.spawn(async move { axum::serve(listener, app).await });
        Collector {
            address,
            received,
            _runtime: runtime,
        }
    }

    /// Every span received, with its resource's attributes beside it.
    fn spans(&self) -> Vec<(Value, Value)> {
        let mut spans = Vec::new();
        for export in self.received.lock().unwrap().iter() {
            for resource in export["resourceSpans"].as_array().into_iter().flatten() {
                for scope in resource["scopeSpans"].as_array().into_iter().flatten() {
                    for span in scope["spans"].as_array().into_iter().flatten() {
                        spans.push((span.clone(), resource["resource"].clone()));
                    }
                }
            }
        }
        spans
    }

    fn everything(&self) -> String {
        serde_json::to_string(&*self.received.lock().unwrap()).unwrap()
    }
}

fn attribute<'a>(span: &'a Value, key: &str) -> Option<&'a Value> {
    span["attributes"]
        .as_array()?
        .iter()
        .find(|a| a["key"] == key)
        .map(|a| &a["value"])
}

/// A client's `traceparent` is continued: the request span is its child, the pipeline the
/// request's, each stage the pipeline's and each rule its stage's, all in the client's
/// trace, exported with the configured service name — and nothing exported names a party.
#[test]
fn spans_are_exported_over_otlp_and_continue_the_clients_trace() {
    const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
    const CLIENT_SPAN: &str = "00f067aa0ba902b7";
    let collector = Collector::start();
    let mut server = Server::with_rules_and_limits(
        &crate::support::example_rules(),
        &format!(
            "\n[telemetry]\notlp_endpoint = \"http://{}/v1/traces\"\nservice_name = \"payrules-e2e\"\n",
            collector.address
        ),
    );
    let body = payment("sepa-instant-supplier.json", "otlp");
    let reply = server.request(
        "POST",
        "/v1/payments",
        &[
            ("Authorization", &format!("Bearer {SUBMITTER}")),
            ("Content-Type", "application/json"),
            ("Idempotency-Key", "otlp"),
            ("traceparent", &format!("00-{TRACE}-{CLIENT_SPAN}-01")),
        ],
        Some(body.to_string().as_bytes()),
    );
    assert_eq!(reply.status, 201, "{}", reply.body);
    // A stop exports what is queued.
    let stopped = server.terminate();
    assert!(stopped.success(), "{stopped:?}\n{}", server.log());
    let started = Instant::now();
    let in_trace = || -> Vec<Value> {
        collector
            .spans()
            .into_iter()
            .filter(|(span, _)| span["traceId"] == TRACE)
            .map(|(span, _)| span)
            .collect()
    };
    while !in_trace().iter().any(|s| s["name"] == "rule") {
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "no rule span in the client's trace: {}\n{}",
            collector.everything(),
            server.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let spans = in_trace();
    let named =
        |name: &str| -> Vec<&Value> { spans.iter().filter(|s| s["name"] == name).collect() };
    let request = named("request");
    assert_eq!(request.len(), 1, "{spans:?}");
    assert_eq!(request[0]["parentSpanId"], CLIENT_SPAN, "{}", request[0]);
    assert_eq!(
        attribute(request[0], "route").and_then(|v| v["stringValue"].as_str()),
        Some("/v1/payments")
    );
    let pipeline = named("pipeline");
    assert_eq!(pipeline.len(), 1, "{spans:?}");
    assert_eq!(pipeline[0]["parentSpanId"], request[0]["spanId"]);
    let stages = named("stage");
    assert!(!stages.is_empty(), "{spans:?}");
    for stage in &stages {
        assert_eq!(stage["parentSpanId"], pipeline[0]["spanId"], "{stage}");
    }
    let rules = named("rule");
    assert_eq!(rules.len(), 4, "the four example rules: {spans:?}");
    for rule in &rules {
        assert!(
            stages
                .iter()
                .any(|stage| stage["spanId"] == rule["parentSpanId"]),
            "{rule}"
        );
    }
    let (_, resource) = collector
        .spans()
        .into_iter()
        .find(|(span, _)| span["traceId"] == TRACE)
        .unwrap();
    assert_eq!(
        attribute(&resource, "service.name").and_then(|v| v["stringValue"].as_str()),
        Some("payrules-e2e"),
        "{resource}"
    );
    let exported = collector.everything();
    let debtor = body["debtor"]["name"].as_str().unwrap();
    let iban = body["debtor"]["account"]["iban"].as_str().unwrap();
    for secret in [debtor, iban, SUBMITTER] {
        assert!(!exported.contains(secret), "{secret} was exported");
    }
}
