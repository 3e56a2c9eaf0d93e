//! What must hold when things go wrong: a crash mid-burst, a tampered store, a shutdown
//! with requests in flight, slow or too many clients.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use crate::server::{AUDITOR, SUBMITTER, Server, audit_verify, payment};
use crate::support::RulesDir;

#[test]
fn every_payment_answered_2xx_before_a_kill_9_is_in_the_store_after_restart() {
    let server = Server::start();
    let answered = Mutex::new(Vec::<(String, String)>::new());
    let unanswered = Mutex::new(Vec::<String>::new());
    let stop = AtomicBool::new(false);
    let sent = AtomicUsize::new(0);
    std::thread::scope(|scope| {
        for worker in 0..4 {
            let (answered, unanswered, stop, sent, server) =
                (&answered, &unanswered, &stop, &sent, &server);
            scope.spawn(move || {
                let examples = [
                    "us-payroll-fednow.json",
                    "sanctioned-creditor.json",
                    "sepa-instant-supplier.json",
                ];
                for n in 0.. {
                    if stop.load(Ordering::SeqCst) {
                        return;
                    }
                    let key = format!("crash-{worker}-{n}");
                    let body = payment(examples[n % examples.len()], &key);
                    sent.fetch_add(1, Ordering::SeqCst);
                    let url = format!("{}/v1/payments", server.base);
                    let reply = ureq::post(&url)
                        .header("Authorization", &format!("Bearer {SUBMITTER}"))
                        .header("Content-Type", "application/json")
                        .header("Idempotency-Key", &key)
                        .send(body.to_string());
                    match reply {
                        Ok(mut response) if response.status().is_success() => {
                            let decision: serde_json::Value =
                                response.body_mut().read_json().expect("a decision");
                            let id = decision["payment_id"].as_str().expect("an id").to_owned();
                            answered.lock().unwrap().push((key, id));
                        }
                        Ok(response) => panic!("{key}: status {}", response.status()),
                        Err(_) => {
                            // The server died under this request: it may or may not have
                            // committed. Either is allowed; a retry must tell which.
                            unanswered.lock().unwrap().push(key);
                            return;
                        }
                    }
                }
            });
        }
        // Kill it in the middle of the burst.
        while answered.lock().unwrap().len() < 60 {
            std::thread::sleep(Duration::from_millis(5));
        }
        server.sigkill();
        stop.store(true, Ordering::SeqCst);
    });
    let answered = answered.into_inner().unwrap();
    let unanswered = unanswered.into_inner().unwrap();
    assert!(answered.len() >= 60);

    let mut server = server.crash_and_restart();
    for (key, id) in &answered {
        let stored = server.get(&format!("/v1/payments/{id}"), Some(AUDITOR));
        assert_eq!(
            stored.status, 200,
            "{key} was answered 2xx as {id} but is not stored: {}",
            stored.body
        );
    }
    // A request cut off by the crash is decided exactly once: its retry either replays
    // the committed decision or decides it now.
    for key in &unanswered {
        let worker_n = key.trim_start_matches("crash-");
        let (_, n) = worker_n.split_once('-').unwrap();
        let n: usize = n.parse().unwrap();
        let examples = [
            "us-payroll-fednow.json",
            "sanctioned-creditor.json",
            "sepa-instant-supplier.json",
        ];
        let retry = server.submit(SUBMITTER, key, &payment(examples[n % examples.len()], key));
        assert!([200, 201].contains(&retry.status), "{key}: {}", retry.body);
    }
    let stored = server.all_payments().len();
    assert!(
        stored >= answered.len() && stored <= sent.load(Ordering::SeqCst),
        "{stored} stored"
    );
    server.kill();
    let verify = audit_verify(&server.store());
    let out = String::from_utf8_lossy(&verify.stdout);
    assert!(
        verify.status.success(),
        "{out}{}",
        String::from_utf8_lossy(&verify.stderr)
    );
    assert!(out.contains("intact"), "{out}");
}

#[test]
fn audit_verify_names_the_first_entry_edited_behind_the_services_back() {
    let mut server = Server::start();
    for n in 0..3 {
        let key = format!("t{n}");
        assert_eq!(
            server
                .submit(SUBMITTER, &key, &payment("us-payroll-fednow.json", &key))
                .status,
            201
        );
    }
    server.kill();
    let store = server.store();
    let intact = audit_verify(&store);
    assert!(
        intact.status.success(),
        "{}",
        String::from_utf8_lossy(&intact.stdout)
    );
    assert!(String::from_utf8_lossy(&intact.stdout).contains("4 entries"));

    let db = rusqlite::Connection::open(&store).unwrap();
    let refused = db.execute("UPDATE audit_log SET actor = 'mallory' WHERE seq = 3", []);
    assert!(
        refused.unwrap_err().to_string().contains("append-only"),
        "the store itself refuses edits of the audit log"
    );
    let deleted = db.execute("DELETE FROM audit_log WHERE seq = 4", []);
    assert!(deleted.is_err());

    // A decision changed in the payments table (it is sealed: another payment's sealed
    // decision put in its place): it no longer opens, and verify names it.
    let original: String = db
        .query_row("SELECT decision FROM payments WHERE seq = 2", [], |r| {
            r.get(0)
        })
        .unwrap();
    db.execute(
        "UPDATE payments SET decision = (SELECT decision FROM payments WHERE seq = 3) \
         WHERE seq = 2",
        [],
    )
    .unwrap();
    let changed = audit_verify(&store);
    let out = String::from_utf8_lossy(&changed.stdout);
    assert_eq!(changed.status.code(), Some(1), "{out}");
    assert!(
        out.contains("BROKEN at audit entry 3") && out.contains("does not open"),
        "{out}"
    );

    // Someone with the file drops the guard and rewrites history.
    db.execute(
        "UPDATE payments SET decision = ?1 WHERE seq = 2",
        [&original],
    )
    .unwrap();
    db.execute_batch(
        "DROP TRIGGER audit_log_is_append_only_update;
         UPDATE audit_log SET actor = 'mallory' WHERE seq = 2;",
    )
    .unwrap();
    let edited = audit_verify(&store);
    let out = String::from_utf8_lossy(&edited.stdout);
    assert_eq!(edited.status.code(), Some(1), "{out}");
    assert!(out.contains("BROKEN at audit entry 2"), "{out}");
}

/// A request whose headers are sent but whose body is not finished.
fn start_slow_submission(server: &Server, key: &str) -> (TcpStream, Vec<u8>) {
    let body = payment("us-payroll-fednow.json", key)
        .to_string()
        .into_bytes();
    let mut stream = TcpStream::connect(server.address()).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    write!(
        stream,
        "POST /v1/payments HTTP/1.1\r\nHost: test\r\nAuthorization: Bearer {SUBMITTER}\r\n\
         Content-Type: application/json\r\nIdempotency-Key: {key}\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n",
        body.len()
    )
    .unwrap();
    stream.write_all(&body[..10]).unwrap();
    (stream, body[10..].to_vec())
}

fn read_all(stream: &mut TcpStream) -> String {
    let mut text = String::new();
    stream
        .read_to_string(&mut text)
        .expect("the answer arrives");
    text
}

#[test]
fn sigterm_lets_requests_in_flight_finish_and_then_exits() {
    let mut server = Server::start();
    let (mut stream, rest) = start_slow_submission(&server, "in-flight");
    // Make sure the request is in the service before it is told to stop.
    std::thread::sleep(Duration::from_millis(200));
    let status = std::thread::scope(|scope| {
        let stopping = scope.spawn(|| server.terminate());
        std::thread::sleep(Duration::from_millis(300));
        stream.write_all(&rest).unwrap();
        let answer = read_all(&mut stream);
        assert!(answer.starts_with("HTTP/1.1 201"), "{answer}");
        stopping.join().unwrap()
    });
    assert!(status.success(), "{status:?}");
    let verify = audit_verify(&server.store());
    let out = String::from_utf8_lossy(&verify.stdout);
    assert!(
        out.contains("2 entries"),
        "rules.loaded and the decision: {out}"
    );
}

#[test]
fn sigterm_with_a_drain_delay_serves_on_not_ready_then_exits() {
    let mut server = Server::with_limits("shutdown_drain_delay_ms = 2000");
    assert_eq!(server.get("/readyz", None).status, 200);
    let asked = std::time::Instant::now();
    server.send_sigterm();
    server.wait_for("/readyz", "not ready after SIGTERM", |status, _| {
        status == 503
    });
    // Still serving: a load balancer that has not noticed yet loses nothing.
    assert_eq!(server.get("/healthz", None).status, 200);
    let reply = server.submit(
        SUBMITTER,
        "while-draining",
        &payment("us-payroll-fednow.json", "while-draining"),
    );
    assert_eq!(reply.status, 201, "{}", reply.body);
    let status = server.wait_for_exit();
    assert!(status.success(), "{status:?}");
    assert!(
        asked.elapsed() >= Duration::from_millis(2000),
        "stopped {:?} after SIGTERM, before its drain delay",
        asked.elapsed()
    );
    assert!(
        server.log().contains("not ready; serving on"),
        "{}",
        server.log()
    );
    let verify = audit_verify(&server.store());
    let out = String::from_utf8_lossy(&verify.stdout);
    assert!(
        out.contains("2 entries"),
        "rules.loaded and the decision: {out}"
    );
}

#[test]
fn a_client_that_trickles_its_headers_is_cut_off() {
    let server = Server::with_limits("header_read_timeout_ms = 300");
    let mut stream = TcpStream::connect(server.address()).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: test\r\n")
        .unwrap();
    let mut buffer = [0u8; 256];
    match stream.read(&mut buffer) {
        Ok(n) => {
            let text = String::from_utf8_lossy(&buffer[..n]);
            assert!(n == 0 || text.starts_with("HTTP/1.1 408"), "{text}");
        }
        Err(error) => assert!(
            !matches!(
                error.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ),
            "the connection was still open after 30 s: {error}"
        ),
    }
    assert_eq!(
        server.get("/healthz", None).status,
        200,
        "others are served"
    );

    // A kept-alive connection that sends nothing more is closed the same way.
    let mut idle = TcpStream::connect(server.address()).unwrap();
    idle.set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: test\r\n\r\n")
        .unwrap();
    let mut answer = Vec::new();
    loop {
        match idle.read(&mut buffer) {
            Ok(0) => break,
            Ok(n) => answer.extend_from_slice(&buffer[..n]),
            Err(error) => {
                assert!(
                    !matches!(
                        error.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ),
                    "an idle connection was still open after 30 s: {error}"
                );
                break;
            }
        }
    }
    assert!(String::from_utf8_lossy(&answer).starts_with("HTTP/1.1 200"));
}

#[test]
fn past_the_concurrency_limit_requests_are_shed_with_503_and_retry_after() {
    let server = Server::with_limits("concurrency_max = 1");
    // A holder takes the only slot and keeps it (its body unfinished). On a busy machine
    // a probe can reach the slot first and the holder is the one shed: then a new holder
    // tries, up to 20 times.
    let mut held = None;
    for attempt in 0..20 {
        let (stream, rest) = start_slow_submission(&server, &format!("holder-{attempt}"));
        std::thread::sleep(Duration::from_millis(200));
        let reply = server.get("/healthz", None);
        if reply.status == 503 {
            held = Some((stream, rest, reply));
            break;
        }
    }
    let (mut stream, rest, shed) = held.expect("a request was shed while the only slot was held");
    assert_eq!(shed.code(), "overloaded");
    assert_eq!(shed.header("retry-after"), Some("1"));
    stream.write_all(&rest).unwrap();
    assert!(read_all(&mut stream).starts_with("HTTP/1.1 201"));
    assert_eq!(server.get("/healthz", None).status, 200);
    assert!(
        server
            .get("/metrics", None)
            .body
            .contains("payrules_http_requests_shed_total")
    );
}

#[test]
fn a_request_past_its_timeout_is_answered_503_and_not_stored() {
    let server = Server::with_limits("request_timeout_ms = 500");
    let (mut stream, _rest) = start_slow_submission(&server, "too-slow");
    let answer = read_all(&mut stream);
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(answer.contains("request_timed_out"), "{answer}");
    assert!(server.all_payments().is_empty());
    // The key was released: the same payment can be submitted again.
    let reply = server.submit(
        SUBMITTER,
        "too-slow",
        &payment("us-payroll-fednow.json", "too-slow"),
    );
    assert_eq!(reply.status, 201, "{}", reply.body);
}

#[test]
fn a_payment_whose_request_timed_out_while_queued_is_not_decided() {
    // Every decider busy far longer than the request timeout (ten rules each spinning
    // through the most fuel a rule may have, ≈0.1 s each), then one more payment: its
    // request times out while it waits, and no decider takes it up when one frees.
    let rules = (0..10).fold(RulesDir::new(), |rules, index| {
        rules.misbehaving(
            &format!("slow-{index}"),
            "infinite-loop",
            "failure-policy = \"skip\"\n[limits]\nfuel = 1_000_000_000\ntimeout-ms = 5000",
        )
    });
    let server = Server::with_rules_and_limits(rules.path(), "request_timeout_ms = 100");
    let deciders = std::thread::available_parallelism().map_or(2, std::num::NonZero::get);
    let submit = |key: &str| {
        let body = payment("us-payroll-fednow.json", key).to_string();
        server.request(
            "POST",
            "/v1/payments",
            &[
                ("Authorization", &format!("Bearer {SUBMITTER}")),
                ("Content-Type", "application/json"),
                ("Idempotency-Key", key),
                ("X-Request-Id", key),
            ],
            Some(body.as_bytes()),
        )
    };
    std::thread::scope(|scope| {
        // Twice as many as there are deciders, so all of them are taken before the last.
        let busy: Vec<_> = (0..2 * deciders)
            .map(|index| scope.spawn(move || submit(&format!("busy-{index}")).status))
            .collect();
        // Each has been received and queued once its request timed out (not after a
        // fixed sleep: on a loaded machine they may take longer to arrive); the deciders
        // are then busy for about a second.
        for handle in busy {
            assert_eq!(handle.join().unwrap(), 503);
        }
        let late = submit("late-1");
        assert_eq!(late.status, 503, "{}", late.body);
        assert_eq!(late.code(), "request_timed_out");
    });
    // What became of it, once a decider took it up: dropped, or decided.
    let taken_up = |line: &&str| {
        line.contains("late-1")
            && (line.contains("abandoned by its request")
                || line.contains("payrules::pipeline: decided"))
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let outcome = loop {
        if let Some(line) = server.log().lines().find(taken_up) {
            break line.to_owned();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the late payment was never taken up: {}",
            server.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(outcome.contains("abandoned by its request"), "{outcome}");
    assert!(server.all_payments().is_empty());
}
