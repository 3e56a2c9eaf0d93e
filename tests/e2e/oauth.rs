//! OAuth 2 bearer tokens against the real binary: JWTs signed here with keys of the test's
//! own (ECDSA P-256), published as a JWKS file or from a JWKS server on loopback.

use std::io::{BufRead, BufReader, Write};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

use crate::server::{SUBMITTER, Server, payment};

const ISSUER: &str = "https://idp.bank.test/realms/payments";
const AUDIENCE: &str = "payrules";

/// A signing key of the identity provider.
struct SigningKey {
    kid: String,
    pair: rcgen::KeyPair,
}

impl SigningKey {
    fn new(kid: &str) -> SigningKey {
        SigningKey {
            kid: kid.to_owned(),
            pair: rcgen::KeyPair::generate().unwrap(),
        }
    }

    /// Its public half as a JWK.
    fn jwk(&self) -> Value {
        let point = self.pair.public_key_raw();
        assert_eq!(point.len(), 65, "an uncompressed P-256 point");
        json!({
            "kty": "EC", "crv": "P-256", "use": "sig", "alg": "ES256", "kid": self.kid,
            "x": base64url(&point[1..33]), "y": base64url(&point[33..]),
        })
    }

    /// A token of `claims`, signed with this key (or naming `kid` instead of its own).
    fn sign(&self, claims: &Value) -> String {
        self.sign_as(&self.kid, claims)
    }

    fn sign_as(&self, kid: &str, claims: &Value) -> String {
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
        header.kid = Some(kid.to_owned());
        jsonwebtoken::encode(
            &header,
            claims,
            &jsonwebtoken::EncodingKey::from_ec_der(&self.pair.serialize_der()),
        )
        .unwrap()
    }
}

fn jwks(keys: &[&SigningKey]) -> String {
    json!({"keys": keys.iter().map(|k| k.jwk()).collect::<Vec<_>>()}).to_string()
}

fn base64url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
        for i in 0..=chunk.len() {
            out.push(char::from(ALPHABET[(n >> (18 - 6 * i) & 63) as usize]));
        }
    }
    out
}

fn now() -> i64 {
    i64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs(),
    )
    .unwrap()
}

/// Claims for `client` holding `roles`, valid for an hour.
fn claims(client: &str, roles: Value) -> Value {
    json!({
        "iss": ISSUER, "aud": AUDIENCE, "exp": now() + 3600, "iat": now(),
        "client_id": client, "roles": roles,
    })
}

/// The `[oauth]` table with the JWKS from `source` (a `jwks_file = …` or `jwks_url = …`
/// line).
fn oauth_table(source: &str) -> String {
    format!(
        "\n[oauth]\nissuer = \"{ISSUER}\"\naudience = \"{AUDIENCE}\"\n{source}\n\
         name_claim = \"client_id\"\n\
         role_map = {{ \"payments.submit\" = \"submitter\", \"payments.audit\" = \"auditor\" }}\n"
    )
}

fn with_token(
    server: &Server,
    method: &str,
    path: &str,
    token: &str,
    body: Option<&Value>,
) -> crate::server::Reply {
    let auth = format!("Bearer {token}");
    let mut headers = vec![("Authorization", auth.as_str())];
    let key;
    let text = body.map(Value::to_string);
    if let Some(body) = body {
        key = format!("\"{}\"", body["end_to_end_id"].as_str().unwrap());
        headers.push(("Content-Type", "application/json"));
        headers.push(("Idempotency-Key", key.as_str()));
    }
    server.request(method, path, &headers, text.as_deref().map(str::as_bytes))
}

/// A token the provider signed authenticates its client by its `client_id`, with the roles
/// its `roles` claim maps to; every way a token can be wrong is refused with 401 and why;
/// the JWKS file is read again when the provider rotates its key.
#[test]
fn tokens_the_provider_signed_authenticate_and_every_forgery_is_refused() {
    let idp = SigningKey::new("k1");
    let dir = tempfile::tempdir().unwrap();
    let jwks_file = dir.path().join("jwks.json");
    std::fs::write(&jwks_file, jwks(&[&idp])).unwrap();
    let server = Server::with_limits(&oauth_table(&format!(
        "jwks_file = {:?}",
        jwks_file.display().to_string()
    )));

    let submitter = idp.sign(&claims("clearing", json!(["payments.submit", "unrelated"])));
    let reply = with_token(
        &server,
        "POST",
        "/v1/payments",
        &submitter,
        Some(&payment("us-payroll-fednow.json", "oauth-1")),
    );
    assert_eq!(reply.status, 201, "{}", reply.body);
    let id = reply.json()["payment_id"].as_str().unwrap().to_owned();
    let read = with_token(
        &server,
        "GET",
        &format!("/v1/payments/{id}"),
        &submitter,
        None,
    );
    assert_eq!(read.status, 200, "{}", read.body);
    assert_eq!(read.json()["submitted_by"], "oauth:clearing");

    // Roles as a space-separated string (like `scope`): an auditor reads every payment.
    let auditor = idp.sign(&claims("audit-desk", json!("openid payments.audit")));
    let all = with_token(&server, "GET", "/v1/payments", &auditor, None);
    assert_eq!(all.status, 200, "{}", all.body);
    // No mapped role: authenticated, allowed nothing.
    let nobody = idp.sign(&claims("stranger", json!(["openid"])));
    let reply = with_token(&server, "GET", "/v1/payments", &nobody, None);
    assert_eq!(reply.status, 403, "{}", reply.body);
    // A token named like an API key is not that key: it does not see the key's payments.
    let keyed = server.submit(
        SUBMITTER,
        "oauth-2",
        &payment("us-payroll-fednow.json", "oauth-2"),
    );
    let keyed_id = keyed.json()["payment_id"].as_str().unwrap().to_owned();
    let impostor = idp.sign(&claims("checkout", json!(["payments.submit"])));
    let reply = with_token(
        &server,
        "GET",
        &format!("/v1/payments/{keyed_id}"),
        &impostor,
        None,
    );
    assert_eq!(reply.status, 404, "{}", reply.body);

    let forger = SigningKey::new("k1");
    let mut expired = claims("clearing", json!(["payments.submit"]));
    expired["exp"] = json!(now() - 3600);
    let mut early = claims("clearing", json!(["payments.submit"]));
    early["nbf"] = json!(now() + 3600);
    let mut wrong_audience = claims("clearing", json!(["payments.submit"]));
    wrong_audience["aud"] = json!("another-api");
    let mut wrong_issuer = claims("clearing", json!(["payments.submit"]));
    wrong_issuer["iss"] = json!("https://evil.test");
    let mut nameless = claims("clearing", json!(["payments.submit"]));
    nameless.as_object_mut().unwrap().remove("client_id");
    let good = claims("clearing", json!(["payments.submit"]));
    let unsigned = {
        let header = base64url(br#"{"alg":"none","kid":"k1"}"#);
        let body = base64url(good.to_string().as_bytes());
        format!("{header}.{body}.")
    };
    let hmac = {
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
        header.kid = Some("k1".to_owned());
        jsonwebtoken::encode(
            &header,
            &good,
            &jsonwebtoken::EncodingKey::from_secret(idp.jwk()["x"].as_str().unwrap().as_bytes()),
        )
        .unwrap()
    };
    for (what, token, says) in [
        ("expired", idp.sign(&expired), "ExpiredSignature"),
        ("not yet valid", idp.sign(&early), "ImmatureSignature"),
        (
            "another audience",
            idp.sign(&wrong_audience),
            "InvalidAudience",
        ),
        ("another issuer", idp.sign(&wrong_issuer), "InvalidIssuer"),
        ("no name claim", idp.sign(&nameless), "no client_id claim"),
        (
            "signed by another key",
            forger.sign(&good),
            "InvalidSignature",
        ),
        (
            "a key the issuer does not have",
            idp.sign_as("k9", &good),
            "not one of the issuer's",
        ),
        ("alg none", unsigned, "is not a JWT"),
        (
            "HMAC with the public key as secret",
            hmac,
            "HS256 is not accepted",
        ),
    ] {
        let reply = with_token(&server, "GET", "/v1/payments", &token, None);
        assert_eq!(reply.status, 401, "{what}: {}", reply.body);
        assert!(reply.body.contains(says), "{what}: {}", reply.body);
    }

    // The provider rotates: k2 replaces k1 in the file; k2's tokens pass, k1's do not.
    let next = SigningKey::new("k2");
    std::fs::write(&jwks_file, jwks(&[&next])).unwrap();
    let rotated = next.sign(&claims("clearing", json!(["payments.submit"])));
    let started = std::time::Instant::now();
    while with_token(&server, "GET", "/v1/payments", &rotated, None).status != 200 {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the new key is read"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let reply = with_token(&server, "GET", "/v1/payments", &submitter, None);
    assert_eq!(reply.status, 401, "{}", reply.body);
}

/// A JWKS server on loopback: serves `document` and counts the fetches.
struct JwksServer {
    url: String,
    document: Arc<Mutex<String>>,
    fetches: Arc<AtomicUsize>,
}

impl JwksServer {
    fn start(document: String) -> JwksServer {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/jwks", listener.local_addr().unwrap());
        let document = Arc::new(Mutex::new(document));
        let fetches = Arc::new(AtomicUsize::new(0));
        let (served, counted) = (Arc::clone(&document), Arc::clone(&fetches));
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { return };
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut line = String::new();
                while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
                    line.clear();
                }
                counted.fetch_add(1, Ordering::SeqCst);
                let body = served.lock().unwrap().clone();
                let _ = write!(
                    stream,
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        });
        JwksServer {
            url,
            document,
            fetches,
        }
    }
}

/// Keys fetched from the provider's JWKS URL: fetched at start; a token naming a key the
/// provider has just published is accepted at once (one fetch); tokens naming keys nobody
/// published cause one fetch, then none for 30 s, however many arrive.
#[test]
fn keys_are_fetched_from_the_providers_url_and_unknown_key_ids_cannot_flood_it() {
    let k1 = SigningKey::new("k1");
    let jwks_server = JwksServer::start(jwks(&[&k1]));
    let server = Server::with_limits(&oauth_table(&format!("jwks_url = \"{}\"", jwks_server.url)));
    let token = k1.sign(&claims("clearing", json!(["payments.submit"])));
    let started = std::time::Instant::now();
    while with_token(&server, "GET", "/v1/payments", &token, None).status != 200 {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the keys are fetched at start"
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    let k2 = SigningKey::new("k2");
    *jwks_server.document.lock().unwrap() = jwks(&[&k1, &k2]);
    let before = jwks_server.fetches.load(Ordering::SeqCst);
    let reply = with_token(
        &server,
        "GET",
        "/v1/payments",
        &k2.sign(&claims("clearing", json!(["payments.submit"]))),
        None,
    );
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(jwks_server.fetches.load(Ordering::SeqCst), before + 1);

    let unknown = SigningKey::new("k3");
    for n in 0..20 {
        let token = unknown.sign_as(&format!("made-up-{n}"), &claims("x", json!([])));
        let reply = with_token(&server, "GET", "/v1/payments", &token, None);
        assert_eq!(reply.status, 401, "{}", reply.body);
    }
    assert_eq!(
        jwks_server.fetches.load(Ordering::SeqCst),
        before + 2,
        "one fetch for k2, and one for all twenty made-up key ids"
    );
}
