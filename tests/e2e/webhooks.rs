//! Decision and review events delivered to a real HTTP receiver on loopback: down, slow,
//! then up (nothing lost, every signature verifies, retries spaced, each payment's events
//! in order); the service killed with events undelivered (delivered after the restart);
//! dead letters listed and sent again.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicBool, AtomicU16, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hmac::Mac;
use serde_json::{Value, json};

use crate::server::{AUDITOR, OPERATOR, REVIEWER, SUBMITTER, Server, payment};

const SECRET: &str = "whsec_e2e_0123456789abcdef0123456789abcdef";

/// A request the receiver got.
#[derive(Clone, Debug)]
pub(crate) struct Received {
    at: Instant,
    event_id: String,
    signature: String,
    body: String,
    /// The status it was answered with.
    answered: u16,
}

/// A webhook receiver on loopback: answers each POST with the status set (after a delay,
/// if set) and keeps what it got.
pub(crate) struct Receiver {
    pub(crate) address: SocketAddr,
    status: Arc<AtomicU16>,
    delay_ms: Arc<AtomicU16>,
    got: Arc<Mutex<Vec<Received>>>,
    stop: Arc<AtomicBool>,
}

impl Receiver {
    /// A receiver at `address` (port 0: any).
    pub(crate) fn listen(address: SocketAddr) -> Receiver {
        Receiver::listen_with(address, None)
    }

    /// A receiver at `address`, over TLS with `tls` if given.
    fn listen_with(address: SocketAddr, tls: Option<Arc<rustls::ServerConfig>>) -> Receiver {
        let listener = TcpListener::bind(address).expect("the receiver binds");
        listener.set_nonblocking(true).unwrap();
        let receiver = Receiver {
            address: listener.local_addr().unwrap(),
            status: Arc::new(AtomicU16::new(200)),
            delay_ms: Arc::new(AtomicU16::new(0)),
            got: Arc::new(Mutex::new(Vec::new())),
            stop: Arc::new(AtomicBool::new(false)),
        };
        let (status, delay, got, stop) = (
            Arc::clone(&receiver.status),
            Arc::clone(&receiver.delay_ms),
            Arc::clone(&receiver.got),
            Arc::clone(&receiver.stop),
        );
        std::thread::spawn(move || {
            while !stop.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        let (status, delay, got) =
                            (Arc::clone(&status), Arc::clone(&delay), Arc::clone(&got));
                        let tls = tls.clone();
                        std::thread::spawn(move || {
                            let _ = stream.set_nonblocking(false);
                            match tls {
                                Some(config) => {
                                    let Ok(connection) = rustls::ServerConnection::new(config)
                                    else {
                                        return;
                                    };
                                    let stream = rustls::StreamOwned::new(connection, stream);
                                    serve(stream, &status, &delay, &got);
                                }
                                None => serve(stream, &status, &delay, &got),
                            }
                        });
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        receiver
    }

    /// A port nothing listens on (yet): a receiver that is down.
    fn down() -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    }

    fn got(&self) -> Vec<Received> {
        self.got.lock().unwrap().clone()
    }

    /// The events answered 2xx, by id (first delivery).
    fn delivered(&self) -> HashMap<String, Received> {
        let mut delivered = HashMap::new();
        for r in self.got() {
            if r.answered == 200 {
                delivered.entry(r.event_id.clone()).or_insert(r);
            }
        }
        delivered
    }

    /// Waits (at most 30 s) until `n` distinct events were delivered.
    pub(crate) fn wait_for(&self, n: usize) -> HashMap<String, Received> {
        let started = Instant::now();
        loop {
            let delivered = self.delivered();
            if delivered.len() >= n {
                return delivered;
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "{} of {n} events delivered: {:?}",
                delivered.len(),
                self.got()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

fn serve(
    stream: impl Read + Write,
    status: &AtomicU16,
    delay_ms: &AtomicU16,
    got: &Mutex<Vec<Received>>,
) {
    let at = Instant::now();
    let mut reader = BufReader::new(stream);
    let mut headers = HashMap::new();
    let mut line = String::new();
    if reader.read_line(&mut line).unwrap_or(0) == 0 {
        return;
    }
    loop {
        line.clear();
        if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
            break;
        }
        if let Some((name, value)) = line.trim_end().split_once(':') {
            headers.insert(name.to_ascii_lowercase(), value.trim().to_owned());
        }
    }
    let length: usize = headers
        .get("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; length];
    if reader.read_exact(&mut body).is_err() {
        return;
    }
    std::thread::sleep(Duration::from_millis(u64::from(
        delay_ms.load(Ordering::SeqCst),
    )));
    let answered = status.load(Ordering::SeqCst);
    let mut stream = reader.into_inner();
    let written = write!(
        stream,
        "HTTP/1.1 {answered} X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .and_then(|()| stream.flush());
    got.lock().unwrap().push(Received {
        at,
        event_id: headers
            .get("payrules-event-id")
            .cloned()
            .unwrap_or_default(),
        signature: headers
            .get("payrules-signature")
            .cloned()
            .unwrap_or_default(),
        body: String::from_utf8_lossy(&body).into_owned(),
        // An answer the client never read (it gave up first) delivered nothing.
        answered: if written.is_ok() { answered } else { 0 },
    });
}

/// Whether `signature` is the endpoint's signature of `body`, and its timestamp recent.
fn verifies(signature: &str, body: &str) -> bool {
    let Some((t, v1)) = signature
        .strip_prefix("t=")
        .and_then(|rest| rest.split_once(",v1="))
    else {
        return false;
    };
    let mut mac = <hmac::Hmac<sha2::Sha256> as Mac>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(format!("{t}.{body}").as_bytes());
    let expected = payrules::registry::hex(&mac.finalize().into_bytes());
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let fresh = t.parse::<u64>().is_ok_and(|t| now.abs_diff(t) < 300);
    expected == v1 && fresh
}

/// A service whose webhook `core` points at `address`, its secret in a 0600 file.
fn service_with_webhook(address: SocketAddr, extra: &str) -> (Server, tempfile::TempDir) {
    service_with_webhook_at(&format!("http://{address}/events"), extra)
}

/// The `[[webhooks]]` table of an endpoint `core` at `url` (then `extra`), its secret in
/// a 0600 file in the directory returned with it.
pub(crate) fn webhook_table(url: &str, extra: &str) -> (String, tempfile::TempDir) {
    use std::os::unix::fs::PermissionsExt;
    let secrets = tempfile::tempdir().unwrap();
    let secret_file = secrets.path().join("core.secret");
    std::fs::write(&secret_file, format!("{SECRET}\n")).unwrap();
    std::fs::set_permissions(&secret_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let table = format!(
        "[[webhooks]]\nname = \"core\"\nurl = \"{url}\"\n\
         secret_file = {:?}\ntimeout_ms = 300\nbackoff_initial_ms = 100\n\
         backoff_max_ms = 400\n{extra}\n",
        secret_file.display().to_string()
    );
    (table, secrets)
}

/// A service whose webhook `core` points at `url`, its secret in a 0600 file.
fn service_with_webhook_at(url: &str, extra: &str) -> (Server, tempfile::TempDir) {
    let (table, secrets) = webhook_table(url, extra);
    (Server::with_limits(&table), secrets)
}

/// Submits `n` accepted payments tagged `{tag}-N`; returns their ids.
fn accepted_payments(server: &Server, tag: &str, n: usize) -> Vec<String> {
    (0..n)
        .map(|n| {
            let tag = format!("{tag}-{n}");
            let reply = server.submit(SUBMITTER, &tag, &payment("us-payroll-fednow.json", &tag));
            assert_eq!(reply.status, 201, "{}", reply.body);
            reply.json()["payment_id"].as_str().unwrap().to_owned()
        })
        .collect()
}

/// Waits (at most 20 s) until `server` lists a dead letter; returns the page.
fn first_dead_letters(server: &Server) -> Value {
    let started = Instant::now();
    loop {
        let page = server
            .get("/v1/webhooks/dead-letters", Some(AUDITOR))
            .json();
        if page["dead_letters"]
            .as_array()
            .is_some_and(|d| !d.is_empty())
        {
            return page;
        }
        assert!(started.elapsed() < Duration::from_secs(20), "{page}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn held_payment(server: &Server, tag: &str) -> String {
    let reply = server.submit(SUBMITTER, tag, &payment("weak-match-review.json", tag));
    assert_eq!(reply.json()["status"], "pending_review", "{}", reply.body);
    reply.json()["payment_id"].as_str().unwrap().to_owned()
}

#[test]
fn events_reach_a_receiver_that_was_down_then_slow_then_up_signed_spaced_and_in_order() {
    let address = Receiver::down();
    let (server, _secrets) = service_with_webhook(address, "attempts_max = 1000");
    let ids = accepted_payments(&server, "ok", 3);
    let held = held_payment(&server, "held");
    let reply = server.review(REVIEWER, &held, &json!({"verdict": "approve"}));
    assert_eq!(reply.status, 201, "{}", reply.body);

    // Down: nothing listens for a second.
    std::thread::sleep(Duration::from_secs(1));
    let waiting = server.get("/v1/webhooks", Some(OPERATOR)).json();
    assert_eq!(waiting["endpoints"][0]["pending"], 5, "{waiting}");

    // Slow: answers after the endpoint's timeout, so nothing is delivered.
    let receiver = Receiver::listen(address);
    receiver.delay_ms.store(600, Ordering::SeqCst);
    std::thread::sleep(Duration::from_millis(1_500));
    assert!(
        receiver.delivered().is_empty(),
        "a late answer delivers nothing"
    );
    let slow = receiver.got();
    assert!(!slow.is_empty(), "it was tried while slow");
    // Retries of one event are spaced by the backoff (at least half of 100 ms, doubling),
    // plus the 300 ms timeout of the attempt before.
    let mut by_event: HashMap<&str, Vec<Instant>> = HashMap::new();
    for r in &slow {
        by_event.entry(r.event_id.as_str()).or_default().push(r.at);
    }
    for (event, times) in &by_event {
        for pair in times.windows(2) {
            let gap = pair[1].duration_since(pair[0]);
            assert!(
                gap >= Duration::from_millis(340),
                "{event}: retried after {gap:?}"
            );
        }
    }

    // Up: everything arrives, once each at least, signed, each payment's events in order.
    receiver.delay_ms.store(0, Ordering::SeqCst);
    let delivered = receiver.wait_for(5);
    assert_eq!(delivered.len(), 5, "{:?}", delivered.keys());
    for id in &ids {
        assert!(delivered.contains_key(&format!("evt_decided_{id}")), "{id}");
    }
    for r in delivered.values() {
        assert!(verifies(&r.signature, &r.body), "{r:?}");
        let body: Value = serde_json::from_str(&r.body).unwrap();
        assert_eq!(body["id"], r.event_id.as_str());
    }
    let decided = &delivered[&format!("evt_decided_{held}")];
    let reviewed = &delivered[&format!("evt_reviewed_{held}")];
    assert!(decided.at <= reviewed.at, "a payment's events in order");
    let review: Value = serde_json::from_str(&reviewed.body).unwrap();
    assert_eq!(review["data"]["verdict"], "approve");
    assert_eq!(review["data"]["final_status"], "accepted");
    // A tampered body does not verify.
    assert!(decided.body.contains("pending_review"));
    assert!(!verifies(
        &decided.signature,
        &decided.body.replace("pending_review", "accepted")
    ));

    let started = Instant::now();
    loop {
        let view = server.get("/v1/webhooks", Some(AUDITOR)).json();
        if view["endpoints"][0]["pending"] == 0 {
            assert_eq!(view["endpoints"][0]["dead"], 0);
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "{view}");
        std::thread::sleep(Duration::from_millis(50));
    }
    let metrics = server.get("/metrics", None).body;
    assert!(
        metrics.contains(
            "payrules_webhook_deliveries_total{endpoint=\"core\",outcome=\"delivered\"} 5"
        ),
        "{metrics}"
    );
    assert!(
        metrics.contains("payrules_webhook_deliveries_total{endpoint=\"core\",outcome=\"failed\"}"),
        "{metrics}"
    );
}

#[test]
fn events_undelivered_when_the_service_is_killed_are_delivered_after_its_restart() {
    let address = Receiver::down();
    let (server, _secrets) = service_with_webhook(address, "attempts_max = 1000");
    let ids = accepted_payments(&server, "k", 4);
    let server = server.crash_and_restart();
    let receiver = Receiver::listen(address);
    let delivered = receiver.wait_for(4);
    for id in &ids {
        assert!(
            delivered.contains_key(&format!("evt_decided_{id}")),
            "{id}: {delivered:?}"
        );
    }
    drop(server);
}

#[test]
fn dead_letters_are_listed_and_sent_again_when_an_operator_asks() {
    let receiver = Receiver::listen("127.0.0.1:0".parse().unwrap());
    receiver.status.store(500, Ordering::SeqCst);
    let (mut server, _secrets) = service_with_webhook(receiver.address, "attempts_max = 2");
    let reply = server.submit(SUBMITTER, "d-1", &payment("us-payroll-fednow.json", "d-1"));
    let id = reply.json()["payment_id"].as_str().unwrap().to_owned();
    let dead = first_dead_letters(&server);
    let letter = &dead["dead_letters"][0];
    assert_eq!(letter["event_id"], format!("evt_decided_{id}").as_str());
    assert_eq!(letter["attempts"], 2);
    assert_eq!(letter["last_error"], "answered 500 Internal Server Error");
    assert_eq!(receiver.got().len(), 2, "two attempts, then given up");

    let redeliver = |key: &str, body: &Value| {
        server.request(
            "POST",
            "/v1/webhooks/redeliver",
            &[
                ("Authorization", &format!("Bearer {key}")),
                ("Content-Type", "application/json"),
            ],
            Some(body.to_string().as_bytes()),
        )
    };
    assert_eq!(redeliver(AUDITOR, &json!({"endpoint": "core"})).status, 403);
    let unknown = redeliver(OPERATOR, &json!({"endpoint": "nowhere"}));
    assert_eq!(unknown.code(), "webhook_not_found");
    receiver.status.store(200, Ordering::SeqCst);
    let sent = redeliver(OPERATOR, &json!({"endpoint": "core"}));
    assert_eq!(sent.status, 200, "{}", sent.body);
    assert_eq!(sent.json()["requeued"], 1);
    receiver.wait_for(1);
    let audit = server.get("/v1/audit?limit=100", Some(AUDITOR)).json();
    assert!(
        audit["entries"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["action"] == "webhook.redelivered" && e["subject"] == "core"),
        "{audit}"
    );
    server.kill();
    let verify = crate::server::audit_verify(&server.store());
    assert!(
        verify.status.success(),
        "{}",
        String::from_utf8_lossy(&verify.stdout)
    );
}

/// A certificate for 127.0.0.1, self-signed: the server's, and the only CA that trusts it.
fn certificate() -> (String, Arc<rustls::ServerConfig>) {
    use rustls::pki_types::pem::PemObject;
    let rcgen::CertifiedKey { cert, signing_key } =
        rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()]).unwrap();
    let key =
        rustls::pki_types::PrivateKeyDer::from_pem_slice(signing_key.serialize_pem().as_bytes())
            .unwrap();
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(vec![cert.der().clone()], key)
    .unwrap();
    (cert.pem(), Arc::new(config))
}

/// Over HTTPS, events reach a receiver whose certificate the configured CA signed; a
/// receiver whose certificate it did not sign gets nothing, and the reason is recorded.
#[test]
fn over_https_the_receivers_certificate_is_verified() {
    let (pem, tls) = certificate();
    let receiver = Receiver::listen_with("127.0.0.1:0".parse().unwrap(), Some(tls));
    let cas = tempfile::tempdir().unwrap();
    let trusted = cas.path().join("trusted.pem");
    std::fs::write(&trusted, &pem).unwrap();
    let url = format!("https://{}/events", receiver.address);
    let (server, _secrets) = service_with_webhook_at(
        &url,
        &format!("tls_ca_file = {:?}", trusted.display().to_string()),
    );
    let reply = server.submit(
        SUBMITTER,
        "tls-1",
        &payment("us-payroll-fednow.json", "tls-1"),
    );
    let id = reply.json()["payment_id"].as_str().unwrap().to_owned();
    let delivered = receiver.wait_for(1);
    let event = &delivered[&format!("evt_decided_{id}")];
    assert!(verifies(&event.signature, &event.body));

    // Another CA: no connection, nothing delivered, the reason kept with the delivery.
    let (other_pem, _) = certificate();
    let other = cas.path().join("other.pem");
    std::fs::write(&other, other_pem).unwrap();
    let (untrusting, _secrets) = service_with_webhook_at(
        &url,
        &format!(
            "tls_ca_file = {:?}\nattempts_max = 1",
            other.display().to_string()
        ),
    );
    let reply = untrusting.submit(
        SUBMITTER,
        "tls-2",
        &payment("us-payroll-fednow.json", "tls-2"),
    );
    assert_eq!(reply.status, 201);
    let dead = first_dead_letters(&untrusting);
    let error = dead["dead_letters"][0]["last_error"].as_str().unwrap_or("");
    assert!(
        error.contains("UnknownIssuer") || error.contains("certificate"),
        "{error}"
    );
    assert_eq!(
        receiver.delivered().len(),
        1,
        "nothing reached it from the second service"
    );
}
