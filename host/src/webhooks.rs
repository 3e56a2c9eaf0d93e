//! Webhooks: decision and review events POSTed to the endpoints in config, signed.
//!
//! Each delivery is one HTTP POST of one event's JSON, with
//!
//! - `Payrules-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`: the
//!   receiver recomputes it with the endpoint's secret and rejects a signature that differs
//!   or a `t` too far from its clock (a replayed delivery);
//! - `Payrules-Event-Id` (the same for every delivery of one event: a receiver drops a
//!   second) and `Payrules-Event-Type`.
//!
//! A 2xx answer within `timeout_ms` delivers it; anything else (another status, a timeout,
//! no connection) fails the attempt, retried after an exponential backoff with jitter
//! ([`Endpoint::backoff_ms`]) until `attempts_max`, then dead-lettered. TLS is rustls with
//! the platform's CA certificates, or the endpoint's `tls_ca_file`.

use std::time::Duration;

use axum::body::Bytes;
use axum::http::{Request, Uri, header};
use hmac::Mac;
use http_body_util::{BodyExt, Full};

use crate::config::WebhookConfig;
use crate::store::outbox::{DELIVERY_ERROR_CHARS_MAX, Delivery, EventRoutes};

/// The shortest signing secret accepted, characters.
pub const SECRET_CHARS_MIN: usize = 32;
/// The header carrying the signature.
pub const SIGNATURE_HEADER: &str = "payrules-signature";
/// The most of a receiver's answer body read (and thrown away).
const ANSWER_BYTES_MAX: usize = 64 * 1024;

/// The configured endpoints, ready to deliver to.
pub struct Webhooks {
    endpoints: Vec<Endpoint>,
}

/// One endpoint.
pub struct Endpoint {
    /// Its name.
    pub name: String,
    uri: Uri,
    secret: Vec<u8>,
    events: Vec<String>,
    timeout: Duration,
    /// Attempts before an event is dead-lettered.
    pub attempts_max: u32,
    backoff_initial_ms: u64,
    backoff_max_ms: u64,
    client: crate::tls::HttpClient,
}

impl Webhooks {
    /// The endpoints of the config, their secrets read and their TLS set up (bad input is
    /// named: which endpoint, which file, why).
    pub fn from_config(configs: &[WebhookConfig]) -> Result<Webhooks, String> {
        let endpoints = configs
            .iter()
            .enumerate()
            .map(|(index, config)| Endpoint::new(config, &format!("webhooks[{index}]")))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Webhooks { endpoints })
    }

    /// No endpoint.
    pub fn none() -> Webhooks {
        Webhooks {
            endpoints: Vec::new(),
        }
    }

    /// Whether none is configured.
    pub fn is_empty(&self) -> bool {
        self.endpoints.is_empty()
    }

    /// The endpoints.
    pub fn endpoints(&self) -> &[Endpoint] {
        &self.endpoints
    }

    /// The endpoint named `name`.
    pub fn endpoint(&self, name: &str) -> Option<&Endpoint> {
        self.endpoints.iter().find(|e| e.name == name)
    }

    /// Which endpoint receives which event types, for the store.
    pub fn routes(&self) -> EventRoutes {
        EventRoutes::new(
            self.endpoints
                .iter()
                .map(|e| (e.name.clone(), e.events.clone()))
                .collect(),
        )
    }
}

impl Endpoint {
    fn new(config: &WebhookConfig, at: &str) -> Result<Endpoint, String> {
        let uri: Uri = config
            .url
            .parse()
            .map_err(|e| format!("{at}.url is not a URL: {e}"))?;
        let secret = match (&config.secret_file, &config.secret_env) {
            (Some(path), _) => crate::config::read_private_line(
                path,
                &format!("{at}.secret_file"),
                "the signing secret",
            )?
            .trim()
            .to_owned(),
            (None, Some(name)) => std::env::var(name)
                .map_err(|e| format!("{at}.secret_env: the variable {name} cannot be read: {e}"))?,
            (None, None) => return Err(format!("{at}: no signing secret")),
        };
        if secret.chars().count() < SECRET_CHARS_MIN {
            return Err(format!(
                "{at}: the signing secret has fewer than {SECRET_CHARS_MIN} characters"
            ));
        }
        let client = crate::tls::https_client(config.tls_ca_file.as_deref(), &uri, at)?;
        Ok(Endpoint {
            name: config.name.clone(),
            uri,
            secret: secret.into_bytes(),
            events: config.events.clone(),
            timeout: Duration::from_millis(config.timeout_ms),
            attempts_max: config.attempts_max,
            backoff_initial_ms: config.backoff_initial_ms,
            backoff_max_ms: config.backoff_max_ms,
            client,
        })
    }

    /// Where it is (never a secret: a URL's user and password are not allowed).
    pub fn url(&self) -> String {
        self.uri.to_string()
    }

    /// The event types it receives.
    pub fn events(&self) -> &[String] {
        &self.events
    }

    /// POSTs `delivery`'s event, signed at `now_unix_s`: `Ok` on a 2xx answer within the
    /// timeout, else why not (bounded).
    pub async fn deliver(&self, delivery: &Delivery, now_unix_s: i64) -> Result<(), String> {
        let body = Bytes::from(delivery.payload.clone());
        let request = Request::post(self.uri.clone())
            .header(header::CONTENT_TYPE, "application/json")
            .header(
                header::USER_AGENT,
                concat!("payrules/", env!("CARGO_PKG_VERSION")),
            )
            .header(SIGNATURE_HEADER, signature(&self.secret, now_unix_s, &body))
            .header("payrules-event-id", &delivery.event_id)
            .header("payrules-event-type", &delivery.event_type)
            .body(Full::new(body))
            .map_err(|e| bounded(format!("the request cannot be made: {e}")))?;
        let answered = tokio::time::timeout(self.timeout, async {
            let response = self
                .client
                .request(request)
                .await
                .map_err(|e| format!("no answer: {}", with_causes(&e)))?;
            let status = response.status();
            // Read (a bounded part of) the answer, so the connection can be reused.
            let _ = http_body_util::Limited::new(response.into_body(), ANSWER_BYTES_MAX)
                .collect()
                .await;
            Ok::<_, String>(status)
        })
        .await;
        match answered {
            Ok(Ok(status)) if status.is_success() => Ok(()),
            Ok(Ok(status)) => Err(format!("answered {status}")),
            Ok(Err(error)) => Err(bounded(error)),
            Err(_) => Err(format!("no answer within {} ms", self.timeout.as_millis())),
        }
    }

    /// How long to wait before the next attempt after `attempts` failed ones: the first
    /// retry's delay doubled for each failure before it, at most `backoff_max_ms`, then
    /// between half of that and all of it (`random` picks where: jitter, so many events
    /// failing together do not retry together).
    pub fn backoff_ms(&self, attempts: u32, random: u64) -> u64 {
        let doublings = attempts.saturating_sub(1).min(32);
        let delay = self
            .backoff_initial_ms
            .saturating_mul(1_u64 << doublings)
            .min(self.backoff_max_ms);
        let half = delay / 2;
        delay - half + random % (half + 1)
    }
}

/// `t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`.
pub fn signature(secret: &[u8], unix_s: i64, body: &[u8]) -> String {
    let mut mac = <hmac::Hmac<sha2::Sha256> as Mac>::new_from_slice(secret)
        .unwrap_or_else(|e| unreachable!("HMAC takes a key of any length: {e}"));
    mac.update(unix_s.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!(
        "t={unix_s},v1={}",
        crate::registry::hex(&mac.finalize().into_bytes())
    )
}

fn with_causes(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

fn bounded(text: String) -> String {
    text.chars().take(DELIVERY_ERROR_CHARS_MAX).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn endpoint(initial: u64, max: u64) -> Endpoint {
        let config: WebhookConfig = toml::from_str(&format!(
            "name = \"core\"\nurl = \"http://127.0.0.1:9/events\"\nsecret_env = \"X\"\n\
             backoff_initial_ms = {initial}\nbackoff_max_ms = {max}"
        ))
        .expect("a config");
        let client =
            crate::tls::https_client(None, &config.url.parse().unwrap(), "test").expect("a client");
        Endpoint {
            name: config.name,
            uri: config.url.parse().expect("a URL"),
            secret: b"secret".to_vec(),
            events: config.events,
            timeout: Duration::from_millis(config.timeout_ms),
            attempts_max: config.attempts_max,
            backoff_initial_ms: config.backoff_initial_ms,
            backoff_max_ms: config.backoff_max_ms,
            client,
        }
    }

    #[test]
    fn retries_back_off_exponentially_with_jitter_up_to_the_bound() {
        let e = endpoint(1_000, 300_000);
        for (attempts, full) in [
            (1, 1_000),
            (2, 2_000),
            (3, 4_000),
            (9, 256_000),
            (10, 300_000),
        ] {
            for random in [0, 1, 7, 999_999, u64::MAX] {
                let delay = e.backoff_ms(attempts, random);
                assert!(
                    (full / 2..=full).contains(&delay),
                    "attempt {attempts}: {delay} outside {}..={full}",
                    full / 2
                );
            }
        }
        assert_eq!(e.backoff_ms(1_000, 3), e.backoff_ms(40, 3), "no overflow");
    }

    #[test]
    fn a_secret_others_may_read_or_too_short_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("secret");
        let config = |path: &std::path::Path| -> WebhookConfig {
            toml::from_str(&format!(
                "name = \"core\"\nurl = \"https://core/events\"\nsecret_file = {:?}",
                path.display().to_string()
            ))
            .unwrap()
        };
        std::fs::write(&file, "s".repeat(40)).unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
        let error = Webhooks::from_config(&[config(&file)])
            .err()
            .unwrap_or_default();
        assert!(error.contains("mode 644 lets others read"), "{error}");
        std::fs::write(&file, "short").unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
        let error = Webhooks::from_config(&[config(&file)])
            .err()
            .unwrap_or_default();
        assert!(error.contains("fewer than 32 characters"), "{error}");
        assert!(!error.contains("short"), "the secret is never shown");
    }

    #[test]
    fn the_signature_is_an_hmac_of_the_timestamp_and_the_body() {
        let signed = signature(b"whsec_test", 1_795_000_000, br#"{"id":"evt_1"}"#);
        let (t, v1) = signed.split_once(",v1=").expect("two parts");
        assert_eq!(t, "t=1795000000");
        let mut mac = <hmac::Hmac<sha2::Sha256> as Mac>::new_from_slice(b"whsec_test").unwrap();
        mac.update(br#"1795000000.{"id":"evt_1"}"#);
        assert_eq!(v1, crate::registry::hex(&mac.finalize().into_bytes()));
        assert_ne!(
            signature(b"whsec_test", 1_795_000_001, br#"{"id":"evt_1"}"#),
            signed,
            "another instant, another signature"
        );
    }
}
