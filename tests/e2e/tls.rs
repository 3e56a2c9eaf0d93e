//! The listener over TLS: the real binary with certificates of a CA each test makes
//! (rcgen), clients of rustls (ureq for HTTP/1.1, hyper for HTTP/2, bare handshakes to
//! see what the server offers).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::pki_types::{CertificateDer, ServerName};
use serde_json::json;

use crate::server::{OPERATOR, SUBMITTER, Server, payment};

/// A certificate authority of the test's own.
struct Ca {
    issuer: rcgen::CertifiedIssuer<'static, rcgen::KeyPair>,
}

/// A certificate a [`Ca`] signed, and its key.
struct Leaf {
    cert_pem: String,
    key_pem: String,
    der: Vec<u8>,
}

impl Ca {
    fn new(name: &str) -> Ca {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::DigitalSignature,
        ];
        let key = rcgen::KeyPair::generate().unwrap();
        Ca {
            issuer: rcgen::CertifiedIssuer::self_signed(params, key).unwrap(),
        }
    }

    fn pem(&self) -> String {
        self.issuer.pem()
    }

    fn der(&self) -> CertificateDer<'static> {
        self.issuer.der().clone()
    }

    /// A server certificate for 127.0.0.1 and localhost.
    fn server(&self, name: &str) -> Leaf {
        self.leaf(
            name,
            vec!["127.0.0.1".to_owned(), "localhost".to_owned()],
            rcgen::ExtendedKeyUsagePurpose::ServerAuth,
        )
    }

    /// A client certificate.
    fn client(&self, name: &str) -> Leaf {
        self.leaf(name, Vec::new(), rcgen::ExtendedKeyUsagePurpose::ClientAuth)
    }

    fn leaf(&self, name: &str, names: Vec<String>, usage: rcgen::ExtendedKeyUsagePurpose) -> Leaf {
        let mut params = rcgen::CertificateParams::new(names).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        params.extended_key_usages = vec![usage];
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        Leaf {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            der: cert.der().to_vec(),
        }
    }
}

impl Leaf {
    /// The sha256 of the certificate, hex: how the config names it.
    fn sha256(&self) -> String {
        use sha2::Digest;
        sha2::Sha256::digest(&self.der)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    /// Writes the key (mode 0600), then the certificate.
    fn write(&self, cert: &Path, key: &Path) {
        write_private(key, &self.key_pem);
        std::fs::write(cert, &self.cert_pem).unwrap();
    }

    fn ureq_identity(&self) -> ureq::tls::ClientCert {
        ureq::tls::ClientCert::new_with_certs(
            &[ureq::tls::Certificate::from_pem(self.cert_pem.as_bytes()).unwrap()],
            ureq::tls::PrivateKey::from_pem(self.key_pem.as_bytes()).unwrap(),
        )
    }
}

fn write_private(path: &Path, text: &str) {
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .unwrap();
    file.write_all(text.as_bytes()).unwrap();
}

/// Where a test keeps its certificates.
struct Files {
    dir: tempfile::TempDir,
}

impl Files {
    fn new() -> Files {
        Files {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// The `[tls]` table for the server certificate in this directory (and more lines).
    fn tls_table(&self, more: &str) -> String {
        format!(
            "\n[tls]\ncertificate = {:?}\nprivate_key = {:?}\n{more}\n",
            self.path("server.pem").display().to_string(),
            self.path("server.key").display().to_string(),
        )
    }
}

/// A ureq agent trusting `ca` only, presenting `identity` if given.
fn agent(ca: &Ca, identity: Option<&Leaf>) -> ureq::Agent {
    let tls = ureq::tls::TlsConfig::builder()
        .root_certs(ureq::tls::RootCerts::new_with_certs(&[
            ureq::tls::Certificate::from_pem(ca.pem().as_bytes()).unwrap(),
        ]))
        .client_cert(identity.map(Leaf::ureq_identity))
        .build();
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .timeout_global(Some(Duration::from_secs(30)))
        .tls_config(tls)
        .build()
        .into()
}

/// A rustls client trusting `ca`, of these protocol versions, offering `alpn`.
fn client_config(
    ca: &Ca,
    versions: &[&'static rustls::SupportedProtocolVersion],
    alpn: &[&[u8]],
) -> rustls::ClientConfig {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.der()).unwrap();
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_protocol_versions(versions)
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    config
}

/// A bare TLS handshake with `address`: the connection, or why it failed.
fn handshake(
    address: &str,
    config: rustls::ClientConfig,
) -> Result<rustls::ClientConnection, String> {
    let mut tcp = TcpStream::connect(address).map_err(|e| e.to_string())?;
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut connection =
        rustls::ClientConnection::new(Arc::new(config), ServerName::try_from("127.0.0.1").unwrap())
            .map_err(|e| e.to_string())?;
    while connection.is_handshaking() {
        connection
            .complete_io(&mut tcp)
            .map_err(|e| e.to_string())?;
    }
    Ok(connection)
}

/// The certificate the server at `address` presents now.
fn served_certificate(address: &str, ca: &Ca) -> Vec<u8> {
    let connection = handshake(address, client_config(ca, &[&rustls::version::TLS13], &[]))
        .expect("a TLS 1.3 handshake");
    connection.peer_certificates().unwrap()[0].to_vec()
}

/// Over TLS 1.3 a payment is submitted over HTTP/1.1 and read back over HTTP/2 (ALPN);
/// TLS 1.2, plain HTTP on the TLS port, and a client that does not trust the server's CA
/// get nothing.
#[test]
fn payments_go_over_tls_13_with_http2_and_older_tls_or_plain_http_get_nothing() {
    let ca = Ca::new("payrules test CA");
    let files = Files::new();
    ca.server("payrules")
        .write(&files.path("server.pem"), &files.path("server.key"));
    let mut server = Server::with_limits(&format!(
        "header_read_timeout_ms = 1000\n{}",
        files.tls_table("")
    ));
    assert!(
        server.base.starts_with("https://127.0.0.1:"),
        "{}",
        server.base
    );
    server.set_agent(agent(&ca, None));

    let reply = server.submit(
        SUBMITTER,
        "tls-1",
        &payment("us-payroll-fednow.json", "tls-1"),
    );
    assert_eq!(reply.status, 201, "{}", reply.body);
    let id = reply.json()["payment_id"].as_str().unwrap().to_owned();

    // HTTP/2, chosen by ALPN, answers the same payment.
    let address = server.address().to_owned();
    let config = client_config(&ca, &[&rustls::version::TLS13], &[b"h2", b"http/1.1"]);
    let [(version, status, _, body), (_, login, cookie, _)] =
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(over_http2(
                &address,
                config,
                [
                    hyper::Request::get(format!("https://{address}/v1/payments/{id}"))
                        .header("authorization", format!("Bearer {SUBMITTER}"))
                        .body(String::new())
                        .unwrap(),
                    hyper::Request::post(format!("https://{address}/console/login"))
                        .header("origin", format!("https://{address}"))
                        .header("content-type", "application/x-www-form-urlencoded")
                        .body(format!("key={OPERATOR}"))
                        .unwrap(),
                ],
            ));
    assert_eq!(version, hyper::Version::HTTP_2);
    assert_eq!(status, 200, "{body}");
    // A browser's form over HTTP/2 passes the console's same-origin check (its host is in
    // `:authority`), and the session cookie is Secure over TLS.
    assert_eq!(login, 303);
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("; Secure"),
        "{cookie}"
    );
    let over_h2: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(over_h2["payment_id"], json!(id));
    assert_eq!(
        over_h2["decision"]["status"],
        server
            .get(&format!("/v1/payments/{id}"), Some(SUBMITTER))
            .json()["decision"]["status"]
    );

    // TLS 1.2 is not offered by default.
    let refused = handshake(
        &address,
        client_config(&ca, &[&rustls::version::TLS12], &[]),
    );
    assert!(refused.is_err(), "a TLS 1.2 handshake succeeded");
    let accepted = handshake(
        &address,
        client_config(&ca, &[&rustls::version::TLS13], &[]),
    )
    .expect("a TLS 1.3 handshake");
    assert_eq!(
        accepted.protocol_version(),
        Some(rustls::ProtocolVersion::TLSv1_3)
    );

    // Plain HTTP on the TLS port gets no HTTP answer.
    let mut plain = TcpStream::connect(&address).unwrap();
    plain
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    plain
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .unwrap();
    let mut answer = Vec::new();
    let _ = plain.read_to_end(&mut answer);
    assert!(
        !String::from_utf8_lossy(&answer).contains("HTTP/1.1 200"),
        "plain HTTP was answered: {}",
        String::from_utf8_lossy(&answer)
    );

    // A client that connects and never says hello is cut off at the header-read timeout.
    let mut silent = TcpStream::connect(&address).unwrap();
    silent
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let started = Instant::now();
    let read = silent.read(&mut [0u8; 64]);
    assert!(
        matches!(read, Ok(0))
            || read
                .as_ref()
                .is_err_and(|e| e.kind() == std::io::ErrorKind::ConnectionReset),
        "{read:?}"
    );
    let waited = started.elapsed();
    assert!(waited < Duration::from_secs(5), "held for {waited:?}");

    // A client that does not trust the CA does not connect.
    let stranger = Ca::new("another CA");
    let refused = agent(&stranger, None)
        .get(format!("{}/healthz", server.base))
        .call();
    assert!(refused.is_err(), "a client trusting another CA connected");
}

/// `requests` over one HTTP/2 connection: each answer's version, status, `Set-Cookie` and
/// body.
async fn over_http2<const N: usize>(
    address: &str,
    config: rustls::ClientConfig,
    requests: [hyper::Request<String>; N],
) -> [(hyper::Version, u16, String, String); N] {
    use http_body_util::BodyExt;
    let tcp = tokio::net::TcpStream::connect(address).await.unwrap();
    let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(ServerName::try_from("127.0.0.1").unwrap(), tcp)
        .await
        .unwrap();
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let (mut sender, connection) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(tls),
    )
    .await
    .unwrap();
    tokio::spawn(connection);
    let mut answers = Vec::new();
    for request in requests {
        let response = sender.send_request(request).await.unwrap();
        let cookie = response
            .headers()
            .get("set-cookie")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let (version, status) = (response.version(), response.status().as_u16());
        let body = response.into_body().collect().await.unwrap().to_bytes();
        answers.push((
            version,
            status,
            cookie,
            String::from_utf8_lossy(&body).into_owned(),
        ));
    }
    answers.try_into().unwrap()
}

/// Waits up to 20 s for `done`.
fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    let started = Instant::now();
    while !done() {
        assert!(started.elapsed() < Duration::from_secs(20), "{what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A renewed certificate written over the old one is served to the next handshakes
/// without a restart; a broken one (garbage, a key of another certificate) is refused,
/// logged, and the one in use stays.
#[test]
fn a_renewed_certificate_is_served_without_a_restart_and_a_broken_one_is_not() {
    let ca = Ca::new("payrules test CA");
    let files = Files::new();
    let (cert, key) = (files.path("server.pem"), files.path("server.key"));
    let first = ca.server("payrules-1");
    first.write(&cert, &key);
    let mut server = Server::with_limits(&files.tls_table(""));
    server.set_agent(agent(&ca, None));
    let address = server.address().to_owned();
    assert_eq!(served_certificate(&address, &ca), first.der);

    let renewed = ca.server("payrules-2");
    renewed.write(&cert, &key);
    eventually("the renewed certificate is served", || {
        served_certificate(&address, &ca) == renewed.der
    });
    assert!(
        server.log().contains("TLS certificate reloaded"),
        "{}",
        server.log()
    );

    // Garbage in place of the certificate: refused, the renewed one stays.
    let refusals = |what: &str| server.log().matches(what).count();
    let before = refusals("TLS certificate not reloaded");
    std::fs::write(&cert, "not a certificate\n").unwrap();
    eventually("the broken certificate is logged", || {
        refusals("TLS certificate not reloaded") > before
    });
    assert_eq!(served_certificate(&address, &ca), renewed.der);

    // Another certificate with the renewed one's key: refused, named.
    let before = refusals("is not the key of");
    std::fs::write(&cert, ca.server("payrules-3").cert_pem).unwrap();
    eventually("the mismatched key is logged", || {
        refusals("is not the key of") > before
    });
    assert_eq!(served_certificate(&address, &ca), renewed.der);
    let reply = server.submit(
        SUBMITTER,
        "tls-2",
        &payment("us-payroll-fednow.json", "tls-2"),
    );
    assert_eq!(reply.status, 201, "{}", reply.body);
}

/// With mutual TLS required, a client certificate the config names authenticates as its
/// identity with no key; a certificate of the CA the config does not name needs a key; a
/// key of another identity beside a named certificate is refused; no certificate, or one
/// of another CA, gets no connection.
#[test]
fn mutual_tls_authenticates_a_client_by_its_certificate_and_refuses_the_rest() {
    let ca = Ca::new("payrules test CA");
    let clients = Ca::new("clients CA");
    let files = Files::new();
    ca.server("payrules")
        .write(&files.path("server.pem"), &files.path("server.key"));
    std::fs::write(files.path("clients.pem"), clients.pem()).unwrap();
    let clearing = clients.client("clearing-system");
    let unnamed = clients.client("someone");
    let config = format!(
        "{}\n[[api_keys]]\nname = \"clearing\"\nclient_certificates = [\"{}\"]\nroles = [\"submitter\"]\n",
        files.tls_table(&format!(
            "client_ca = {:?}\nclient_certificate = \"required\"",
            files.path("clients.pem").display().to_string()
        )),
        clearing.sha256()
    );
    let mut server = Server::with_limits(&config);

    // The named certificate, no key: the identity `clearing`.
    server.set_agent(agent(&ca, Some(&clearing)));
    let body = payment("us-payroll-fednow.json", "mtls-1");
    let reply = server.request(
        "POST",
        "/v1/payments",
        &[
            ("Content-Type", "application/json"),
            ("Idempotency-Key", "\"mtls-1\""),
        ],
        Some(body.to_string().as_bytes()),
    );
    assert_eq!(reply.status, 201, "{}", reply.body);
    let id = reply.json()["payment_id"].as_str().unwrap().to_owned();
    let read = server.request("GET", &format!("/v1/payments/{id}"), &[], None);
    assert_eq!(read.status, 200, "{}", read.body);
    assert_eq!(read.json()["submitted_by"], "clearing", "{}", read.body);

    // The named certificate with another identity's key: refused.
    let reply = server.get(&format!("/v1/payments/{id}"), Some(SUBMITTER));
    assert_eq!(reply.status, 401, "{}", reply.body);
    assert!(
        reply.body.contains("different identities"),
        "{}",
        reply.body
    );

    // A certificate of the clients' CA that no identity lists: a key is needed, and works.
    server.set_agent(agent(&ca, Some(&unnamed)));
    let reply = server.request("GET", &format!("/v1/payments/{id}"), &[], None);
    assert_eq!(reply.status, 401, "{}", reply.body);
    assert!(reply.body.contains("no API identity's"), "{}", reply.body);
    let reply = server.submit(
        SUBMITTER,
        "mtls-2",
        &payment("us-payroll-fednow.json", "mtls-2"),
    );
    assert_eq!(reply.status, 201, "{}", reply.body);

    // No certificate, or one another CA signed: no connection, whatever the key.
    for identity in [None, Some(Ca::new("stranger CA").client("clearing-system"))] {
        let refused = agent(&ca, identity.as_ref())
            .get(format!("{}/v1/payments/{id}", server.base))
            .header("Authorization", format!("Bearer {SUBMITTER}"))
            .call();
        assert!(refused.is_err(), "connected: {refused:?}");
    }
}

/// A private key others may read, or one of another certificate, stops the start-up
/// naming the setting; so does plain HTTP on an address other hosts can reach.
#[test]
fn tls_settings_that_cannot_be_served_stop_the_start_naming_the_setting() {
    use std::os::unix::fs::PermissionsExt;
    let ca = Ca::new("payrules test CA");
    let files = Files::new();
    let (cert, key) = (files.path("server.pem"), files.path("server.key"));
    let start = |config: &str| {
        let path = files.path("payrules.toml");
        std::fs::write(
            &path,
            format!(
                "rules_dir = {:?}\n{config}\n[store]\npath = {:?}\n",
                crate::support::example_rules().display().to_string(),
                files.path("payrules.db").display().to_string()
            ),
        )
        .unwrap();
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_payrules"))
            .args(["serve", "--config"])
            .arg(&path)
            .output()
            .unwrap();
        (
            output.status.code(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    };
    let tls = format!("listen = \"127.0.0.1:0\"\n{}", files.tls_table(""));

    ca.server("payrules").write(&cert, &key);
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let (code, stderr) = start(&tls);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("tls.private_key") && stderr.contains("mode 644"),
        "{stderr}"
    );

    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    std::fs::write(&cert, ca.server("another").cert_pem).unwrap();
    let (code, stderr) = start(&tls);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("tls.private_key") && stderr.contains("is not the key of"),
        "{stderr}"
    );

    let (code, stderr) = start("listen = \"0.0.0.0:0\"\n");
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("not a loopback address") && stderr.contains("[tls]"),
        "{stderr}"
    );
}
