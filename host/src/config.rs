//! The service's configuration: a TOML file read and validated once at start, then passed
//! explicitly. Every setting has a default (the named constants below), so
//! `payrules serve` with no file runs the example rules on an embedded store.
//!
//! ```toml
//! listen = "127.0.0.1:8080"
//! rules_dir = "examples/rules"
//! reload_settle_ms = 50
//!
//! [store]
//! path = "payrules.db"
//! # or, for several hosts on one PostgreSQL database:
//! # url = "postgres://payrules@db.internal:5432/payrules"
//! # password_file = "/run/secrets/payrules-db-password"
//!
//! [limits]
//! body_bytes_max = 1048576
//! request_timeout_ms = 10000
//!
//! [log]
//! format = "json"
//!
//! [audit]
//! key_file = "/run/secrets/payrules-audit.key"
//! checkpoint_file = "/var/log/payrules/audit.checkpoints"
//!
//! [[api_keys]]
//! name = "checkout"
//! sha256 = "…64 hex digits: sha256 of the key…"
//! roles = ["submitter"]
//! ```

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// Where the service listens by default: loopback only.
pub const LISTEN_DEFAULT: &str = "127.0.0.1:8080";
/// The rules directory by default: the example rules of this repository.
pub const RULES_DIR_DEFAULT: &str = "examples/rules";
/// The embedded store by default: a SQLite file in the working directory.
pub const STORE_PATH_DEFAULT: &str = "payrules.db";
/// The largest request body: 1 MiB (a pain.001 with thousands of transactions is larger:
/// raise it for bulk files).
pub const BODY_BYTES_MAX_DEFAULT: usize = 1024 * 1024;
/// How long a client may take to send its request headers.
pub const HEADER_READ_TIMEOUT_MS_DEFAULT: u64 = 5_000;
/// How long a request may take, from its first byte to its answer.
pub const REQUEST_TIMEOUT_MS_DEFAULT: u64 = 10_000;
/// How many requests are served at once; more are refused with 503 and `Retry-After`.
pub const CONCURRENCY_MAX_DEFAULT: usize = 512;
/// How many connections are held open at once; more wait in the kernel's backlog.
pub const CONNECTIONS_MAX_DEFAULT: usize = 4_096;
/// How long a graceful shutdown waits for requests in flight.
pub const SHUTDOWN_GRACE_MS_DEFAULT: u64 = 10_000;
/// How long SIGTERM leaves the service serving, not ready, before it closes the listener:
/// none by default (a service on its own stops at once); behind a load balancer, its
/// health-check interval times its failure threshold.
pub const SHUTDOWN_DRAIN_DELAY_MS_DEFAULT: u64 = 0;
/// The most decisions committed in one transaction (one fsync).
pub const COMMIT_BATCH_MAX_DEFAULT: usize = 512;
/// How long a request holds its idempotency key in the store at most, by default: 30 s
/// (longer than a request may take; a host that dies holding a key holds it this long).
pub const IDEMPOTENCY_LEASE_MS_DEFAULT: u64 = 30_000;
/// How long idempotency keys are remembered by default: 24 hours (the IETF draft's
/// guidance).
pub const IDEMPOTENCY_RETENTION_HOURS_DEFAULT: u64 = 24;
/// The most compiled rule code kept on disk: 1 GiB, a few thousand Rust rule versions
/// (≈0.3 MB each compiled) or about 25 Python ones (≈40 MB).
pub const CODE_CACHE_BYTES_MAX_DEFAULT: u64 = 1024 * 1024 * 1024;

/// The audit key file by default: beside the store, made on first start (mode 0600).
pub const AUDIT_KEY_FILE_DEFAULT: &str = "payrules-audit.key";
/// The master key file by default: beside the store, made on first start (mode 0600).
pub const MASTER_KEY_FILE_DEFAULT: &str = "payrules-master.key";
/// The audit checkpoint file by default: beside the store, named for it
/// (`payrules.db` → `payrules-audit.checkpoints`), so two stores in one directory never
/// share one.
pub const AUDIT_CHECKPOINT_FILE_SUFFIX: &str = "-audit.checkpoints";
/// How often the chain's head is checkpointed at most: entries newer than the last
/// checkpoint could be removed from the end of the log unseen.
pub const AUDIT_CHECKPOINT_INTERVAL_MS_DEFAULT: u64 = 1_000;

/// How long a held payment may wait for a review by default: 24 hours, then payrules
/// rejects it.
pub const REVIEW_DEADLINE_SECONDS_DEFAULT: u64 = 24 * 60 * 60;
/// The ISO 20022 reason a payment rejected at the review deadline gets by default: MS03,
/// "reason not specified" (configurable: `review.expiry_reason_code`).
pub const REVIEW_EXPIRY_REASON_CODE_DEFAULT: &str = "MS03";

/// How many times a webhook delivery is tried by default before it is dead-lettered:
/// with the default backoff (1 s doubling to 5 min), about 80 minutes of a receiver down.
pub const WEBHOOK_ATTEMPTS_MAX_DEFAULT: u32 = 20;
/// The first retry's delay by default, ms (doubling after each failure, with jitter).
pub const WEBHOOK_BACKOFF_INITIAL_MS_DEFAULT: u64 = 1_000;
/// The longest delay between two attempts by default, ms.
pub const WEBHOOK_BACKOFF_MAX_MS_DEFAULT: u64 = 300_000;
/// How long one delivery may take by default, ms (connect, send, answer).
pub const WEBHOOK_TIMEOUT_MS_DEFAULT: u64 = 5_000;

/// A role an API key holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Submits payments and reads its own.
    Submitter,
    /// Reads the rule set and operates the service.
    Operator,
    /// Reads every payment and the audit log.
    Auditor,
    /// Resolves the payments the rules held for review: the queue, approve, reject.
    Reviewer,
}

impl Role {
    /// Every role.
    pub const ALL: [Role; 4] = [
        Role::Submitter,
        Role::Operator,
        Role::Auditor,
        Role::Reviewer,
    ];

    /// The name the config and errors use.
    pub fn name(self) -> &'static str {
        match self {
            Role::Submitter => "submitter",
            Role::Operator => "operator",
            Role::Auditor => "auditor",
            Role::Reviewer => "reviewer",
        }
    }
}

/// One API key: its name (what logs and the audit log show), the sha256 of the secret
/// (the secret itself is never stored), and its roles.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiKeyConfig {
    /// Who holds it, e.g. `checkout-service`.
    pub name: String,
    /// sha256 of the key, 64 lowercase hex digits (`payrules keys new` prints it). May be
    /// left out when `client_certificates` names the identity's certificates.
    #[serde(default)]
    pub sha256: Option<String>,
    /// Mutual TLS: the sha256 of each client certificate (DER) that authenticates as this
    /// identity, 64 lowercase hex digits (`openssl x509 -in c.pem -outform DER | sha256sum`);
    /// two during a rotation. Needs `tls.client_ca`, which the certificate must chain to.
    #[serde(default)]
    pub client_certificates: Vec<String>,
    /// What it may do.
    pub roles: Vec<Role>,
    /// Its own rate limit, requests a second (instead of
    /// `limits.key_requests_per_second`).
    #[serde(default)]
    pub requests_per_second: Option<u32>,
    /// When it stops authenticating (its key and its certificates), an RFC 3339 instant in
    /// UTC, e.g. `2027-03-01T00:00:00Z`; none by default.
    #[serde(default)]
    pub expires_at: Option<String>,
    /// The client it belongs to (a `[[tenants]]` name): its requests count against the
    /// tenant's rate too, shared with the tenant's other keys.
    #[serde(default)]
    pub tenant: Option<String>,
}

/// A client with several keys, held to one rate across them.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantConfig {
    /// Its name, as the keys' `tenant` say it.
    pub name: String,
    /// Requests a second, across all its keys.
    pub requests_per_second: u32,
    /// Requests it may send at once (one second's worth by default).
    #[serde(default)]
    pub burst: Option<u32>,
}

impl ApiKeyConfig {
    /// `expires_at` in ms since the Unix epoch (validated by [`Config::validate`]).
    pub fn expires_at_unix_ms(&self) -> Option<i64> {
        self.expires_at.as_deref().and_then(|text| {
            humantime::parse_rfc3339(text)
                .ok()
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .and_then(|d| i64::try_from(d.as_millis()).ok())
        })
    }
}

/// Where decisions are stored.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreConfig {
    /// The SQLite file (created, with its schema, if missing), unless `url` is set.
    pub path: PathBuf,
    /// A PostgreSQL database instead, shared by several hosts:
    /// `postgres://user@host:port/database` (or `host=… user=… dbname=…`; a Unix socket
    /// directory as host). Never with a password in it: see `password_file`.
    pub url: Option<String>,
    /// The file holding the database password (its first line), readable by the
    /// service's user only.
    pub password_file: Option<PathBuf>,
    /// Or the environment variable holding it.
    pub password_env: Option<String>,
    /// TLS to the database: the CA certificate(s), PEM, that signed its certificate.
    /// Set, every connection is TLS 1.2+ with the certificate verified (chain and host
    /// name or address); unset, connections are plain (a Unix socket, a private network).
    pub tls_ca_file: Option<PathBuf>,
    /// Mutual TLS to the database: this host's certificate (PEM, its chain), presented
    /// when the server asks (PostgreSQL's `cert` authentication, or `clientcert=verify-full`
    /// in `pg_hba.conf`). Needs `tls_ca_file` and `tls_client_key`.
    pub tls_client_certificate: Option<PathBuf>,
    /// Its private key (PEM), readable by the service's user only.
    pub tls_client_key: Option<PathBuf>,
    /// This host's own files — compiled rule code, the last good rule set, and by default
    /// the audit key and checkpoints. By default the directory of `path`.
    pub local_dir: Option<PathBuf>,
    /// How long a request holds its idempotency key at most, ms: on several hosts, a key
    /// held by a host that died is taken over after this. Longer than
    /// `limits.request_timeout_ms`.
    pub idempotency_lease_ms: u64,
    /// The most decisions committed in one transaction.
    pub commit_batch_max: usize,
    /// The most compiled rule code kept beside the store (`payrules-compiled/`), bytes;
    /// the least recently used is removed beyond it.
    pub code_cache_bytes_max: u64,
    /// How long an idempotency key is remembered, hours: a retry after that is a new
    /// payment (the IETF draft's guidance is 24 h).
    pub idempotency_retention_hours: u64,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            path: PathBuf::from(STORE_PATH_DEFAULT),
            url: None,
            password_file: None,
            password_env: None,
            tls_ca_file: None,
            tls_client_certificate: None,
            tls_client_key: None,
            local_dir: None,
            idempotency_lease_ms: IDEMPOTENCY_LEASE_MS_DEFAULT,
            commit_batch_max: COMMIT_BATCH_MAX_DEFAULT,
            code_cache_bytes_max: CODE_CACHE_BYTES_MAX_DEFAULT,
            idempotency_retention_hours: IDEMPOTENCY_RETENTION_HOURS_DEFAULT,
        }
    }
}

/// Bounds on what clients can make the service do.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// The largest request body, bytes.
    pub body_bytes_max: usize,
    /// How long a client may take to send its headers, ms.
    pub header_read_timeout_ms: u64,
    /// How long a request may take, ms.
    pub request_timeout_ms: u64,
    /// Requests served at once.
    pub concurrency_max: usize,
    /// Connections held open at once.
    pub connections_max: usize,
    /// How long shutdown waits for requests in flight, ms.
    pub shutdown_grace_ms: u64,
    /// After SIGTERM, how long the service goes on serving while `/readyz` answers 503,
    /// so load balancers stop sending before the listener closes, ms (0: close at once).
    pub shutdown_drain_delay_ms: u64,
    /// Each API key's sustained rate, requests a second, unless the key sets its own
    /// (`requests_per_second`); 0: no per-key limit (the default: set one per client).
    pub key_requests_per_second: u32,
    /// How many requests a key may send at once within its rate (0: one second's worth).
    pub key_burst: u32,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            body_bytes_max: BODY_BYTES_MAX_DEFAULT,
            header_read_timeout_ms: HEADER_READ_TIMEOUT_MS_DEFAULT,
            request_timeout_ms: REQUEST_TIMEOUT_MS_DEFAULT,
            concurrency_max: CONCURRENCY_MAX_DEFAULT,
            connections_max: CONNECTIONS_MAX_DEFAULT,
            shutdown_grace_ms: SHUTDOWN_GRACE_MS_DEFAULT,
            shutdown_drain_delay_ms: SHUTDOWN_DRAIN_DELAY_MS_DEFAULT,
            key_requests_per_second: 0,
            key_burst: 0,
        }
    }
}

/// How logs are written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    /// One human-readable line per event.
    #[default]
    Text,
    /// One JSON object per event.
    Json,
}

/// Logging.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// Text or JSON lines, on stderr.
    pub format: LogFormat,
    /// A tracing filter, e.g. `info` or `payrules=debug` (`PAYRULES_LOG` overrides it).
    pub level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            format: LogFormat::Text,
            level: "info".to_owned(),
        }
    }
}

/// The whole configuration of `payrules serve`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Address and port to listen on (port 0: any free port).
    pub listen: SocketAddr,
    /// The rules directory (watched: changes go live without a restart).
    pub rules_dir: PathBuf,
    /// The directories under which an operator may name a shadow rule set to install
    /// (`POST /v1/rules/shadow`); none by default, so only the rules directory's own
    /// `shadow/` can be a shadow set until one is configured.
    pub shadow_roots: Vec<PathBuf>,
    /// How long the rules directory must be quiet after a change before it is reloaded.
    pub reload_settle_ms: u64,
    /// The store.
    pub store: StoreConfig,
    /// Request bounds.
    pub limits: LimitsConfig,
    /// Logging.
    pub log: LogConfig,
    /// The API keys; with none, `serve` makes one for local use (see the README).
    pub api_keys: Vec<ApiKeyConfig>,
    /// Clients with several keys, each held to one rate across them.
    pub tenants: Vec<TenantConfig>,
    /// How the audit log is authenticated.
    pub audit: AuditConfig,
    /// How the personal data in the store is sealed.
    pub personal_data: PersonalDataConfig,
    /// How held payments are reviewed.
    pub review: ReviewConfig,
    /// Where decision and review events are delivered (none by default: then no event is
    /// written).
    pub webhooks: Vec<WebhookConfig>,
    /// Each rule's circuit breaker.
    pub circuit_breaker: CircuitBreakerConfig,
    /// OAuth 2 / OIDC bearer tokens (JWTs) beside the API keys; none by default.
    pub oauth: Option<OAuthConfig>,
    /// HTTPS on the listener; without it, plain HTTP is served on a loopback address only,
    /// unless `tls_terminated_by_proxy`.
    pub tls: Option<TlsConfig>,
    /// A proxy in front terminates TLS, so plain HTTP may be served on a non-loopback
    /// address (to that proxy only: see the deployment guide).
    pub tls_terminated_by_proxy: bool,
    /// Traces exported over OpenTelemetry's OTLP; none by default.
    pub telemetry: TelemetryConfig,
}

/// Where the request → pipeline → stage → rule spans go: an OpenTelemetry collector's
/// OTLP/HTTP endpoint (JSON encoding), plain HTTP — a collector on the host or beside it
/// (an agent, a sidecar), which forwards to the tracing backend.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TelemetryConfig {
    /// The traces endpoint, e.g. `http://127.0.0.1:4318/v1/traces`; unset, nothing is
    /// exported.
    pub otlp_endpoint: Option<String>,
    /// The `service.name` the spans carry.
    pub service_name: String,
    /// The share of traces exported, 0 to 1, chosen by trace id (so every span of a trace
    /// goes, or none); a client's trace that it marks sampled in its `traceparent` is
    /// always exported, one it marks not sampled never.
    pub sample_ratio: f64,
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        TelemetryConfig {
            otlp_endpoint: None,
            service_name: "payrules".to_owned(),
            sample_ratio: 1.0,
        }
    }
}

/// OAuth 2 / OIDC bearer tokens: JWTs an identity provider signs, checked against its
/// JWKS, with the roles taken from a claim.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OAuthConfig {
    /// The `iss` every token must carry (the provider's issuer URL).
    pub issuer: String,
    /// An `aud` every token must carry (payrules' client id or API name at the provider).
    pub audience: String,
    /// The provider's signing keys (a JWKS document), from a file (read again when it
    /// changes)…
    #[serde(default)]
    pub jwks_file: Option<PathBuf>,
    /// …or fetched from this URL (`https://`, or `http://` on loopback) at start, every
    /// `jwks_refresh_seconds`, and when a token names a key not seen yet.
    #[serde(default)]
    pub jwks_url: Option<String>,
    /// The CA certificate(s), PEM, the JWKS URL's server is verified against (default: the
    /// platform's).
    #[serde(default)]
    pub jwks_ca_file: Option<PathBuf>,
    /// How often the JWKS URL is fetched again, seconds.
    #[serde(default = "jwks_refresh_seconds")]
    pub jwks_refresh_seconds: u64,
    /// How far `exp` and `nbf` may be off, seconds.
    #[serde(default = "clock_skew_seconds")]
    pub clock_skew_seconds: u64,
    /// The signature algorithms accepted (asymmetric only): by default RS256, PS256,
    /// ES256 and EdDSA.
    #[serde(default = "oauth_algorithms")]
    pub algorithms: Vec<String>,
    /// The claim that names the caller (its payments are its own): `sub` by default, or
    /// e.g. `client_id`, `azp`, a tenant claim.
    #[serde(default = "name_claim")]
    pub name_claim: String,
    /// What the name is prefixed with, so that no token can act as an API key of the
    /// same name: `oauth:` by default.
    #[serde(default = "name_prefix")]
    pub name_prefix: String,
    /// The claim that lists the caller's roles at the provider: an array of strings, or
    /// one string of space-separated values (like `scope`). `roles` by default.
    #[serde(default = "roles_claim")]
    pub roles_claim: String,
    /// Which of those values grants which payrules role (`submitter`, `operator`,
    /// `auditor`, `reviewer`); a value not listed grants nothing.
    pub role_map: std::collections::BTreeMap<String, Role>,
}

fn jwks_refresh_seconds() -> u64 {
    300
}

fn clock_skew_seconds() -> u64 {
    60
}

fn oauth_algorithms() -> Vec<String> {
    ["RS256", "PS256", "ES256", "EdDSA"]
        .map(str::to_owned)
        .to_vec()
}

fn name_claim() -> String {
    "sub".to_owned()
}

fn name_prefix() -> String {
    "oauth:".to_owned()
}

fn roles_claim() -> String {
    "roles".to_owned()
}

/// The asymmetric JWT algorithms payrules accepts (never `none`, never HMAC: a shared
/// secret would let whoever verifies also sign).
pub const OAUTH_ALGORITHMS: [&str; 9] = [
    "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA",
];

impl OAuthConfig {
    fn validate(&self) -> Result<(), String> {
        if self.issuer.is_empty() || self.audience.is_empty() {
            return Err("oauth.issuer and oauth.audience must not be empty".to_owned());
        }
        match (&self.jwks_file, &self.jwks_url) {
            (Some(_), None) => {}
            (None, Some(url)) => {
                let uri: axum::http::Uri = url
                    .parse()
                    .map_err(|e| format!("oauth.jwks_url is not a URL: {e}"))?;
                let host = uri.host().unwrap_or("");
                match uri.scheme_str() {
                    Some("https") if !host.is_empty() => {}
                    Some("http") if is_loopback(host) => {}
                    _ => {
                        return Err(
                            "oauth.jwks_url must be https:// (http:// only on loopback): the \
                             keys decide who is who"
                                .to_owned(),
                        );
                    }
                }
            }
            _ => return Err("oauth: set one of jwks_file or jwks_url".to_owned()),
        }
        if self.jwks_refresh_seconds == 0 {
            return Err("oauth.jwks_refresh_seconds must be greater than zero".to_owned());
        }
        if self.algorithms.is_empty() {
            return Err("oauth.algorithms must name at least one algorithm".to_owned());
        }
        for algorithm in &self.algorithms {
            if !OAUTH_ALGORITHMS.contains(&algorithm.as_str()) {
                return Err(format!(
                    "oauth.algorithms: {algorithm:?} is not one of {} (asymmetric only)",
                    OAUTH_ALGORITHMS.join(", ")
                ));
            }
        }
        if self.name_claim.is_empty() || self.roles_claim.is_empty() {
            return Err("oauth.name_claim and oauth.roles_claim must not be empty".to_owned());
        }
        if self.role_map.is_empty() {
            return Err("oauth.role_map must map at least one value to a role".to_owned());
        }
        Ok(())
    }
}

/// When a rule that keeps failing stops being run (its failure policy applied at once),
/// and for how long: see [`crate::registry::breaker`].
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CircuitBreakerConfig {
    /// Whether rules have circuit breakers at all.
    pub enabled: bool,
    /// Failures within one window that open a rule's circuit…
    pub failures: u32,
    /// …if they are at least this share of its runs in the window, percent.
    pub failure_rate_percent: u32,
    /// The counting window, ms.
    pub window_ms: u64,
    /// How long an open circuit stays open before one payment probes the rule, ms.
    pub cool_down_ms: u64,
}

impl Default for CircuitBreakerConfig {
    fn default() -> Self {
        CircuitBreakerConfig {
            enabled: true,
            failures: 5,
            failure_rate_percent: 50,
            window_ms: 10_000,
            cool_down_ms: 30_000,
        }
    }
}

impl CircuitBreakerConfig {
    /// The policy, if breakers are on.
    pub fn policy(&self) -> Option<crate::registry::breaker::BreakerPolicy> {
        self.enabled
            .then(|| crate::registry::breaker::BreakerPolicy {
                failures: self.failures,
                failure_rate_percent: self.failure_rate_percent,
                window: std::time::Duration::from_millis(self.window_ms),
                cool_down: std::time::Duration::from_millis(self.cool_down_ms),
            })
    }
}

/// HTTPS on the listener: rustls, HTTP/2 and HTTP/1.1 by ALPN.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// The server's certificate chain, PEM, leaf first. Reloaded when it changes.
    pub certificate: PathBuf,
    /// Its private key, PEM (PKCS#8, PKCS#1 or SEC1), readable by its owner only.
    /// Reloaded with the certificate.
    pub private_key: PathBuf,
    /// The oldest TLS version served: `"1.3"` (the default) or `"1.2"`.
    #[serde(default = "tls_min_version")]
    pub min_version: String,
    /// Mutual TLS: the CA certificate(s), PEM, client certificates must chain to. A client
    /// certificate whose sha256 an `[[api_keys]]` entry lists authenticates as it.
    #[serde(default)]
    pub client_ca: Option<PathBuf>,
    /// With `client_ca`: whether every connection must present a certificate
    /// (`"required"`) or may authenticate with a bearer key instead (`"optional"`, the
    /// default).
    #[serde(default = "client_certificate_optional")]
    pub client_certificate: String,
}

fn tls_min_version() -> String {
    "1.3".to_owned()
}

fn client_certificate_optional() -> String {
    "optional".to_owned()
}

impl TlsConfig {
    /// Whether a client certificate is required on every connection.
    pub fn client_certificate_required(&self) -> bool {
        self.client_certificate == "required"
    }

    fn validate(&self) -> Result<(), String> {
        if !matches!(self.min_version.as_str(), "1.2" | "1.3") {
            return Err(format!(
                "tls.min_version: {:?} is not \"1.3\" or \"1.2\"",
                self.min_version
            ));
        }
        if !matches!(self.client_certificate.as_str(), "optional" | "required") {
            return Err(format!(
                "tls.client_certificate: {:?} is not \"optional\" or \"required\"",
                self.client_certificate
            ));
        }
        if self.client_certificate_required() && self.client_ca.is_none() {
            return Err("tls.client_certificate = \"required\" needs tls.client_ca".to_owned());
        }
        Ok(())
    }
}

/// Whether `hex` is 64 lowercase hex digits (a sha256 as the config spells it).
fn is_sha256_hex(hex: &str) -> bool {
    hex.len() == 64
        && hex
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// An endpoint decision and review events are POSTed to, signed.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// Its name (metrics, the API, dead letters): 1 to 64 letters, digits, `-` or `_`.
    pub name: String,
    /// `https://…`; `http://` only to a loopback address.
    pub url: String,
    /// The file holding the signing secret (its first line, at least 32 characters),
    /// readable by its owner only.
    #[serde(default)]
    pub secret_file: Option<PathBuf>,
    /// Or the environment variable holding it.
    #[serde(default)]
    pub secret_env: Option<String>,
    /// The events it receives: `payment.decided`, `payment.reviewed` (both by default).
    #[serde(default = "all_event_types")]
    pub events: Vec<String>,
    /// The CA certificate(s), PEM, its server's certificate is verified against
    /// (default: the platform's CA certificates).
    #[serde(default)]
    pub tls_ca_file: Option<PathBuf>,
    /// How long one delivery may take, ms.
    #[serde(default = "webhook_timeout_ms")]
    pub timeout_ms: u64,
    /// Attempts before an event is dead-lettered.
    #[serde(default = "webhook_attempts_max")]
    pub attempts_max: u32,
    /// The first retry's delay, ms; doubled after each failure, with jitter.
    #[serde(default = "webhook_backoff_initial_ms")]
    pub backoff_initial_ms: u64,
    /// The longest delay between attempts, ms.
    #[serde(default = "webhook_backoff_max_ms")]
    pub backoff_max_ms: u64,
}

/// The event types payrules writes.
pub const EVENT_TYPES: [&str; 2] = ["payment.decided", "payment.reviewed"];

fn all_event_types() -> Vec<String> {
    EVENT_TYPES.iter().map(|t| (*t).to_owned()).collect()
}
fn webhook_timeout_ms() -> u64 {
    WEBHOOK_TIMEOUT_MS_DEFAULT
}
fn webhook_attempts_max() -> u32 {
    WEBHOOK_ATTEMPTS_MAX_DEFAULT
}
fn webhook_backoff_initial_ms() -> u64 {
    WEBHOOK_BACKOFF_INITIAL_MS_DEFAULT
}
fn webhook_backoff_max_ms() -> u64 {
    WEBHOOK_BACKOFF_MAX_MS_DEFAULT
}

impl WebhookConfig {
    /// Checks one endpoint (`at` names it in messages).
    fn validate(&self, at: &str) -> Result<(), String> {
        let plain_name = !self.name.is_empty()
            && self.name.len() <= 64
            && self
                .name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !plain_name {
            return Err(format!(
                "{at}.name must be 1 to 64 letters, digits, `-` or `_`"
            ));
        }
        let uri: axum::http::Uri = self
            .url
            .parse()
            .map_err(|e| format!("{at}.url is not a URL: {e}"))?;
        let host = uri.host().unwrap_or("");
        match uri.scheme_str() {
            Some("https") if !host.is_empty() => {}
            Some("http") if is_loopback(host) => {}
            Some("http") => {
                return Err(format!(
                    "{at}.url: plain http is only for a loopback receiver; events carry \
                     payment data: use https"
                ));
            }
            _ => return Err(format!("{at}.url must be https://host/path")),
        }
        match (&self.secret_file, &self.secret_env) {
            (Some(_), None) | (None, Some(_)) => {}
            _ => {
                return Err(format!(
                    "{at}: set one of secret_file or secret_env (the signing secret)"
                ));
            }
        }
        if self.events.is_empty() {
            return Err(format!("{at}.events must name at least one event type"));
        }
        for event in &self.events {
            if !EVENT_TYPES.contains(&event.as_str()) {
                return Err(format!(
                    "{at}.events: {event:?} is not an event type (payment.decided, \
                     payment.reviewed)"
                ));
            }
        }
        for (name, value) in [
            ("timeout_ms", self.timeout_ms),
            ("attempts_max", u64::from(self.attempts_max)),
            ("backoff_initial_ms", self.backoff_initial_ms),
            ("backoff_max_ms", self.backoff_max_ms),
        ] {
            if value == 0 {
                return Err(format!("{at}.{name} must be greater than zero"));
            }
        }
        if self.backoff_max_ms < self.backoff_initial_ms {
            return Err(format!(
                "{at}.backoff_max_ms must be at least backoff_initial_ms"
            ));
        }
        Ok(())
    }
}

/// Whether a URL's host is a loopback address (`localhost`, 127.0.0.0/8, ::1).
fn is_loopback(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// How the payments the rules hold are reviewed.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ReviewConfig {
    /// How long a held payment may wait for a review, seconds; then payrules rejects it
    /// (audited as `payment.review_expired`).
    pub deadline_seconds: u64,
    /// The ISO 20022 external status reason code a payment rejected at the deadline gets.
    pub expiry_reason_code: String,
    /// Four eyes: a key may not review a payment it submitted.
    pub four_eyes: bool,
}

impl Default for ReviewConfig {
    fn default() -> Self {
        ReviewConfig {
            deadline_seconds: REVIEW_DEADLINE_SECONDS_DEFAULT,
            expiry_reason_code: REVIEW_EXPIRY_REASON_CODE_DEFAULT.to_owned(),
            four_eyes: false,
        }
    }
}

/// Where the audit keys and checkpoints live: outside the database, so that whoever can
/// write the database cannot rewrite the audit log unseen (see docs/security.md).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuditConfig {
    /// A file of audit keys (`ID HEX` lines, the first signs; mode 0600). By default
    /// [`AUDIT_KEY_FILE_DEFAULT`] beside the store, made if missing.
    pub key_file: Option<PathBuf>,
    /// Or the name of an environment variable holding the same text (`;` may separate
    /// keys). Set at most one of the two.
    pub key_env: Option<String>,
    /// The file the chain's head is checkpointed to. By default the store's name with
    /// [`AUDIT_CHECKPOINT_FILE_SUFFIX`], beside it.
    pub checkpoint_file: Option<PathBuf>,
    /// How often at most, ms; by default [`AUDIT_CHECKPOINT_INTERVAL_MS_DEFAULT`].
    pub checkpoint_interval_ms: Option<u64>,
}

/// The master keys that wrap the store's data keys (see `store::personal`): outside the
/// database, so that a copy of it (a backup, a stolen volume) reads as ciphertext.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PersonalDataConfig {
    /// A file of master keys (`ID HEX` lines, the first wraps; mode 0600). By default
    /// [`MASTER_KEY_FILE_DEFAULT`] beside the store, made if missing.
    pub master_key_file: Option<PathBuf>,
    /// Or the name of an environment variable holding the same text (`;` may separate
    /// keys). Set at most one of the two.
    pub master_key_env: Option<String>,
    /// How many days personal data is kept after the UTC day it was written: then that
    /// day's data key is erased (crypto-shredding), audited, and what it sealed can no
    /// longer be read; the payments' summaries and the audit chain stay. Unset: kept. At
    /// least [`PERSONAL_DATA_RETENTION_DAYS_MIN`] (the longest velocity window, which
    /// rebuilds from stored payments), and longer than the review deadline.
    pub retention_days: Option<u32>,
}

/// The shortest personal-data retention: the longest velocity window (90 days) and one
/// day to spare.
pub const PERSONAL_DATA_RETENTION_DAYS_MIN: u32 = crate::velocity::WINDOW_SECONDS_MAX / 86_400 + 1;

/// Where a set of keys (the audit keys, the master keys) comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AuditKeySource {
    /// A file; `made_if_missing` for the default one beside the store.
    File {
        /// The key file.
        path: PathBuf,
        /// Whether a missing file is made (only the default one is).
        made_if_missing: bool,
    },
    /// An environment variable of this name.
    Env(String),
}

impl Config {
    /// Where this host's own files go: `store.local_dir`, or the directory the store's
    /// file is in.
    pub fn store_dir(&self) -> PathBuf {
        self.store
            .local_dir
            .clone()
            .unwrap_or_else(|| store_dir(&self.store.path))
    }

    /// Where the audit keys come from.
    pub fn audit_key_source(&self) -> AuditKeySource {
        match (&self.audit.key_file, &self.audit.key_env) {
            (_, Some(name)) => AuditKeySource::Env(name.clone()),
            (Some(path), None) => AuditKeySource::File {
                path: path.clone(),
                made_if_missing: false,
            },
            (None, None) => AuditKeySource::File {
                path: self.store_dir().join(AUDIT_KEY_FILE_DEFAULT),
                made_if_missing: true,
            },
        }
    }

    /// Where the master keys come from.
    pub fn master_key_source(&self) -> AuditKeySource {
        match (
            &self.personal_data.master_key_file,
            &self.personal_data.master_key_env,
        ) {
            (_, Some(name)) => AuditKeySource::Env(name.clone()),
            (Some(path), None) => AuditKeySource::File {
                path: path.clone(),
                made_if_missing: false,
            },
            (None, None) => AuditKeySource::File {
                path: self.store_dir().join(MASTER_KEY_FILE_DEFAULT),
                made_if_missing: true,
            },
        }
    }

    /// The audit checkpoint file.
    pub fn audit_checkpoint_file(&self) -> PathBuf {
        self.audit.checkpoint_file.clone().unwrap_or_else(|| {
            let stem = self
                .store
                .path
                .file_stem()
                .map_or_else(|| "payrules".into(), |s| s.to_string_lossy());
            self.store_dir()
                .join(format!("{stem}{AUDIT_CHECKPOINT_FILE_SUFFIX}"))
        })
    }
}

/// The first line of a secret file the config names (`setting`), refused unless only its
/// owner may read it: `what` says what it holds, in the messages.
pub fn read_private_line(path: &Path, setting: &str, what: &str) -> Result<String, String> {
    let at = |e: &dyn std::fmt::Display| format!("{setting} {}: {e}", path.display());
    let metadata = owner_only(path, setting, what)?;
    if metadata.len() > 4096 {
        return Err(at(&format_args!(
            "more than 4096 bytes: not a file of {what}"
        )));
    }
    let text = std::fs::read_to_string(path).map_err(|e| at(&e))?;
    let line = text.lines().next().unwrap_or("").to_owned();
    if line.is_empty() {
        return Err(at(&"the first line is empty"));
    }
    Ok(line)
}

/// The metadata of a secret file the config names (`setting`), refused unless only its
/// owner may read it (links followed: a mounted secret's mode is its target's).
pub fn owner_only(path: &Path, setting: &str, what: &str) -> Result<std::fs::Metadata, String> {
    use std::os::unix::fs::PermissionsExt;
    let at = |e: &dyn std::fmt::Display| format!("{setting} {}: {e}", path.display());
    let metadata = std::fs::metadata(path).map_err(|e| at(&e))?;
    let mode = metadata.permissions().mode();
    if mode & 0o077 != 0 {
        return Err(at(&format_args!(
            "mode {:03o} lets others read {what}; allow its owner only (chmod 600)",
            mode & 0o777
        )));
    }
    Ok(metadata)
}

/// The directory a store file is in ("." for a bare file name).
pub fn store_dir(store: &Path) -> PathBuf {
    store
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .to_owned()
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: LISTEN_DEFAULT
                .parse()
                .unwrap_or_else(|e| unreachable!("the default address parses: {e}")),
            rules_dir: PathBuf::from(RULES_DIR_DEFAULT),
            shadow_roots: Vec::new(),
            reload_settle_ms: crate::registry::watch::SETTLE_MS_DEFAULT,
            store: StoreConfig::default(),
            limits: LimitsConfig::default(),
            log: LogConfig::default(),
            api_keys: Vec::new(),
            tenants: Vec::new(),
            audit: AuditConfig::default(),
            personal_data: PersonalDataConfig::default(),
            review: ReviewConfig::default(),
            webhooks: Vec::new(),
            tls: None,
            tls_terminated_by_proxy: false,
            telemetry: TelemetryConfig::default(),
            circuit_breaker: CircuitBreakerConfig::default(),
            oauth: None,
        }
    }
}

impl Config {
    /// Reads and validates a config file. Relative paths in it are relative to the
    /// working directory, like those on the command line.
    pub fn load(path: &Path) -> Result<Config, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("{}: cannot read it: {e}", path.display()))?;
        Config::parse(&text).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// Parses and validates a config.
    pub fn parse(text: &str) -> Result<Config, String> {
        let config: Config = toml::from_str(text).map_err(|e| e.to_string())?;
        config.validate()?;
        Ok(config)
    }

    /// Checks what types alone cannot.
    pub fn validate(&self) -> Result<(), String> {
        let limits = &self.limits;
        for (name, value) in [
            ("limits.body_bytes_max", limits.body_bytes_max as u64),
            (
                "limits.header_read_timeout_ms",
                limits.header_read_timeout_ms,
            ),
            ("limits.request_timeout_ms", limits.request_timeout_ms),
            ("limits.concurrency_max", limits.concurrency_max as u64),
            ("limits.connections_max", limits.connections_max as u64),
            ("store.commit_batch_max", self.store.commit_batch_max as u64),
            (
                "store.code_cache_bytes_max",
                self.store.code_cache_bytes_max,
            ),
            (
                "store.idempotency_retention_hours",
                self.store.idempotency_retention_hours,
            ),
            ("reload_settle_ms", self.reload_settle_ms),
            ("review.deadline_seconds", self.review.deadline_seconds),
            (
                "circuit_breaker.failures",
                u64::from(self.circuit_breaker.failures),
            ),
            ("circuit_breaker.window_ms", self.circuit_breaker.window_ms),
            (
                "circuit_breaker.cool_down_ms",
                self.circuit_breaker.cool_down_ms,
            ),
        ] {
            if value == 0 {
                return Err(format!("{name} must be greater than zero"));
            }
        }
        if self.store.idempotency_lease_ms <= limits.request_timeout_ms {
            return Err(format!(
                "store.idempotency_lease_ms ({}) must be longer than limits.request_timeout_ms ({})",
                self.store.idempotency_lease_ms, limits.request_timeout_ms
            ));
        }
        if self.circuit_breaker.failure_rate_percent > 100 {
            return Err("circuit_breaker.failure_rate_percent must be 0 to 100".to_owned());
        }
        if self.store.password_file.is_some() && self.store.password_env.is_some() {
            return Err("store.password_file and store.password_env: set one, not both".to_owned());
        }
        if self.store.url.is_none()
            && (self.store.password_file.is_some()
                || self.store.password_env.is_some()
                || self.store.tls_ca_file.is_some())
        {
            return Err(
                "store.password_file / store.password_env / store.tls_ca_file need store.url"
                    .to_owned(),
            );
        }
        match (
            &self.store.tls_client_certificate,
            &self.store.tls_client_key,
        ) {
            (None, None) => {}
            (Some(_), Some(_)) if self.store.tls_ca_file.is_some() => {}
            (Some(_), Some(_)) => {
                return Err(
                    "store.tls_client_certificate needs store.tls_ca_file: a client \
                     certificate is only presented over TLS that verifies the server"
                        .to_owned(),
                );
            }
            _ => {
                return Err(
                    "store.tls_client_certificate and store.tls_client_key: set both or neither"
                        .to_owned(),
                );
            }
        }
        if !crate::model::reason_code::is_status_reason_code(&self.review.expiry_reason_code) {
            return Err(format!(
                "review.expiry_reason_code: {:?} is not an ISO 20022 external status reason code \
                 (e.g. MS03)",
                self.review.expiry_reason_code
            ));
        }
        let mut webhook_names = std::collections::HashSet::new();
        for (index, webhook) in self.webhooks.iter().enumerate() {
            let at = format!("webhooks[{index}]");
            webhook.validate(&at)?;
            if !webhook_names.insert(webhook.name.as_str()) {
                return Err(format!("{at}.name: `{}` is used twice", webhook.name));
            }
        }
        if self.audit.key_file.is_some() && self.audit.key_env.is_some() {
            return Err("audit.key_file and audit.key_env: set one, not both".to_owned());
        }
        if let Some(endpoint) = &self.telemetry.otlp_endpoint {
            let host = endpoint.strip_prefix("http://").unwrap_or_default();
            if host.is_empty() || endpoint.len() > 2048 || endpoint.chars().any(char::is_whitespace)
            {
                return Err(format!(
                    "telemetry.otlp_endpoint {endpoint:?}: give the collector's OTLP/HTTP traces \
                     URL, http://HOST:PORT/v1/traces (plain HTTP to a collector on the host or \
                     beside it; TLS to the collector is not built)"
                ));
            }
        }
        if !(0.0..=1.0).contains(&self.telemetry.sample_ratio) {
            return Err(format!(
                "telemetry.sample_ratio is {}; give a share of traces from 0 to 1",
                self.telemetry.sample_ratio
            ));
        }
        if self.telemetry.service_name.is_empty() || self.telemetry.service_name.len() > 128 {
            return Err("telemetry.service_name must have 1 to 128 characters".to_owned());
        }
        if self.personal_data.master_key_file.is_some()
            && self.personal_data.master_key_env.is_some()
        {
            return Err(
                "personal_data.master_key_file and personal_data.master_key_env: set one, not both"
                    .to_owned(),
            );
        }
        if let Some(days) = self.personal_data.retention_days {
            if days < PERSONAL_DATA_RETENTION_DAYS_MIN {
                return Err(format!(
                    "personal_data.retention_days is {days}; it must be at least \
                     {PERSONAL_DATA_RETENTION_DAYS_MIN} (velocity figures are rebuilt from up \
                     to 90 days of stored payments)"
                ));
            }
            if u64::from(days) * 86_400 <= self.review.deadline_seconds {
                return Err(format!(
                    "personal_data.retention_days ({days}) must be longer than \
                     review.deadline_seconds ({}): a held payment is reviewed before its data \
                     is erased",
                    self.review.deadline_seconds
                ));
            }
        }
        if self.audit.checkpoint_interval_ms == Some(0) {
            return Err("audit.checkpoint_interval_ms must be greater than zero".to_owned());
        }
        let mut tenants = std::collections::HashSet::new();
        for (index, tenant) in self.tenants.iter().enumerate() {
            let at = format!("tenants[{index}]");
            if tenant.name.is_empty() || tenant.name.len() > 64 {
                return Err(format!("{at}.name must have 1 to 64 characters"));
            }
            if !tenants.insert(tenant.name.as_str()) {
                return Err(format!("{at}.name: `{}` is used twice", tenant.name));
            }
            if tenant.requests_per_second == 0 || tenant.burst == Some(0) {
                return Err(format!(
                    "{at}: requests_per_second and burst must be greater than zero"
                ));
            }
        }
        let mut names = std::collections::HashSet::new();
        let mut hashes = std::collections::HashMap::new();
        let mut certificates = std::collections::HashMap::new();
        for (index, key) in self.api_keys.iter().enumerate() {
            let at = format!("api_keys[{index}]");
            if key.name.is_empty() || key.name.len() > 64 {
                return Err(format!("{at}.name must have 1 to 64 characters"));
            }
            // The service's own audit entries are the actor `payrules`: no key may act as it.
            if key.name == crate::store::SERVICE_ACTOR {
                return Err(format!(
                    "{at}.name: `{}` is the name payrules itself signs the audit log with; \
                     choose another",
                    key.name
                ));
            }
            if !names.insert(key.name.as_str()) {
                return Err(format!("{at}.name: `{}` is used twice", key.name));
            }
            if let Some(sha256) = &key.sha256 {
                if !is_sha256_hex(sha256) {
                    return Err(format!(
                        "{at}.sha256 must be 64 lowercase hex digits (the sha256 of the key)"
                    ));
                }
                // Two names for one key: the key would act as whichever came first.
                if let Some(first) = hashes.insert(sha256.as_str(), index) {
                    return Err(format!(
                        "{at}.sha256 is the same key as api_keys[{first}]: give each holder its \
                         own key"
                    ));
                }
            } else if key.client_certificates.is_empty() {
                return Err(format!(
                    "{at}: set sha256 (a bearer key), client_certificates, or both"
                ));
            }
            if !key.client_certificates.is_empty()
                && self.tls.as_ref().is_none_or(|tls| tls.client_ca.is_none())
            {
                return Err(format!(
                    "{at}.client_certificates needs tls.client_ca (the CA they must chain to)"
                ));
            }
            for (n, certificate) in key.client_certificates.iter().enumerate() {
                if !is_sha256_hex(certificate) {
                    return Err(format!(
                        "{at}.client_certificates[{n}] must be 64 lowercase hex digits (the \
                         sha256 of the certificate, DER)"
                    ));
                }
                if let Some(first) = certificates.insert(certificate.as_str(), index) {
                    return Err(format!(
                        "{at}.client_certificates[{n}] is already api_keys[{first}]'s: one \
                         certificate, one identity"
                    ));
                }
            }
            if key.roles.is_empty() {
                return Err(format!("{at}.roles must name at least one role"));
            }
            if let Some(tenant) = &key.tenant
                && !tenants.contains(tenant.as_str())
            {
                return Err(format!(
                    "{at}.tenant: `{tenant}` is not one of the [[tenants]]"
                ));
            }
            if key.expires_at.is_some() && key.expires_at_unix_ms().is_none() {
                return Err(format!(
                    "{at}.expires_at must be an RFC 3339 instant in UTC, e.g. 2027-03-01T00:00:00Z"
                ));
            }
        }
        if let Some(oauth) = &self.oauth {
            oauth.validate()?;
        }
        if let Some(tls) = &self.tls {
            tls.validate()?;
        } else if !self.listen.ip().is_loopback() && !self.tls_terminated_by_proxy {
            return Err(format!(
                "listen = \"{}\" is not a loopback address, and payments and keys must not \
                 cross a network in plain HTTP: set [tls] certificate and private_key, or, \
                 behind a proxy that terminates TLS, tls_terminated_by_proxy = true",
                self.listen
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn webhooks_are_refused_with_the_setting_at_fault() {
        let webhook = |fields: &str| {
            Config::parse(&format!("[[webhooks]]\nname = \"core\"\n{fields}"))
                .err()
                .unwrap_or_default()
        };
        let secret = "secret_env = \"WEBHOOK_SECRET\"";
        for (fields, expected) in [
            (
                format!("url = \"http://core.bank.internal/events\"\n{secret}"),
                "plain http is only for a loopback receiver",
            ),
            (format!("url = \"ftp://x/y\"\n{secret}"), "must be https://"),
            (
                "url = \"https://core/events\"".to_owned(),
                "set one of secret_file or secret_env",
            ),
            (
                format!("url = \"https://core/events\"\n{secret}\nevents = [\"payment.lost\"]"),
                "not an event type",
            ),
            (
                format!("url = \"https://core/events\"\n{secret}\nattempts_max = 0"),
                "attempts_max must be greater than zero",
            ),
            (
                format!(
                    "url = \"https://core/events\"\n{secret}\nbackoff_initial_ms = 10\nbackoff_max_ms = 5"
                ),
                "backoff_max_ms must be at least",
            ),
        ] {
            let error = webhook(&fields);
            assert!(error.contains(expected), "{fields}: {error}");
        }
        for url in [
            "https://core.bank.internal/events",
            "http://127.0.0.1:9000/events",
            "http://[::1]:9000/events",
            "http://localhost/events",
        ] {
            assert_eq!(webhook(&format!("url = \"{url}\"\n{secret}")), "", "{url}");
        }
        let twice = Config::parse(&format!(
            "[[webhooks]]\nname = \"a\"\nurl = \"https://x/\"\n{secret}\n\
             [[webhooks]]\nname = \"a\"\nurl = \"https://y/\"\n{secret}"
        ))
        .unwrap_err();
        assert!(twice.contains("used twice"), "{twice}");
    }

    #[test]
    fn an_empty_file_gives_the_defaults() {
        let config = Config::parse("").unwrap();
        assert_eq!(config.listen.to_string(), LISTEN_DEFAULT);
        assert_eq!(config.rules_dir, PathBuf::from(RULES_DIR_DEFAULT));
        assert_eq!(config.limits.body_bytes_max, BODY_BYTES_MAX_DEFAULT);
        assert!(config.api_keys.is_empty());
    }

    #[test]
    fn the_example_config_is_valid_and_holds_the_defaults() {
        let text = include_str!("../../examples/payrules.toml");
        let config = Config::parse(text).unwrap();
        let defaults = Config::default();
        assert_eq!(config.listen, defaults.listen);
        assert_eq!(config.store.path, defaults.store.path);
        assert_eq!(config.limits.body_bytes_max, defaults.limits.body_bytes_max);
        assert_eq!(
            config.limits.request_timeout_ms,
            defaults.limits.request_timeout_ms
        );
        assert_eq!(
            config.limits.concurrency_max,
            defaults.limits.concurrency_max
        );
        assert_eq!(
            config.limits.shutdown_grace_ms,
            defaults.limits.shutdown_grace_ms
        );
        assert_eq!(
            config.limits.shutdown_drain_delay_ms,
            defaults.limits.shutdown_drain_delay_ms
        );
        assert_eq!(
            config.store.commit_batch_max,
            defaults.store.commit_batch_max
        );
        assert_eq!(
            config.store.code_cache_bytes_max,
            defaults.store.code_cache_bytes_max
        );
        assert!(
            config.api_keys.is_empty(),
            "the example ships no usable key: a service started with it makes its own"
        );
    }

    #[test]
    fn the_deployment_guides_host_config_is_valid() {
        let guide = include_str!("../../docs/deployment.md");
        let start = guide.find("```toml\n").expect("a TOML example") + "```toml\n".len();
        let length = guide[start..].find("```").expect("its end");
        let config = Config::parse(&guide[start..start + length]).expect("the example parses");
        assert!(config.store.url.is_some() && config.store.tls_ca_file.is_some());
        assert!(
            config.audit.key_file.is_some(),
            "several hosts share explicit audit keys"
        );
    }

    #[test]
    fn an_otlp_endpoint_is_a_plain_http_url() {
        let endpoint =
            |url: &str| Config::parse(&format!("[telemetry]\notlp_endpoint = {url:?}\n"));
        let config = endpoint("http://127.0.0.1:4318/v1/traces").unwrap();
        assert_eq!(
            config.telemetry.otlp_endpoint.as_deref(),
            Some("http://127.0.0.1:4318/v1/traces")
        );
        assert_eq!(config.telemetry.service_name, "payrules");
        for refused in [
            "https://collector:4318/v1/traces",
            "collector:4318",
            "http://",
            "http://a b",
        ] {
            let error = endpoint(refused).unwrap_err();
            assert!(
                error.contains("telemetry.otlp_endpoint"),
                "{refused}: {error}"
            );
        }
        assert!(Config::parse("[telemetry]\nservice_name = \"\"\n").is_err());
        assert!(Config::parse("[telemetry]\nsample_ratio = 1.5\n").is_err());
        assert!(Config::parse("[telemetry]\nsample_ratio = 0.1\n").is_ok());
    }

    #[test]
    fn personal_data_retention_outlives_velocity_windows_and_the_review_deadline() {
        let retention = |days: u32, extra: &str| {
            Config::parse(&format!(
                "{extra}\n[personal_data]\nretention_days = {days}\n"
            ))
        };
        let short = retention(30, "").unwrap_err();
        assert!(
            short.contains("personal_data.retention_days") && short.contains("91"),
            "{short}"
        );
        assert_eq!(
            retention(400, "").unwrap().personal_data.retention_days,
            Some(400)
        );
        let deadline = retention(100, "[review]\ndeadline_seconds = 8640000").unwrap_err();
        assert!(deadline.contains("review.deadline_seconds"), "{deadline}");
        let both =
            Config::parse("[personal_data]\nmaster_key_file = \"m.key\"\nmaster_key_env = \"M\"\n")
                .unwrap_err();
        assert!(both.contains("set one, not both"), "{both}");
    }

    #[test]
    fn a_client_certificate_to_the_database_needs_its_key_and_a_verified_server() {
        let url = "[store]\nurl = \"postgres://payrules@db:5432/payrules\"\n";
        let only_cert =
            Config::parse(&format!("{url}tls_client_certificate = \"c.pem\"\n")).unwrap_err();
        assert!(only_cert.contains("set both or neither"), "{only_cert}");
        let without_ca = Config::parse(&format!(
            "{url}tls_client_certificate = \"c.pem\"\ntls_client_key = \"c.key\"\n"
        ))
        .unwrap_err();
        assert!(
            without_ca.contains("needs store.tls_ca_file"),
            "{without_ca}"
        );
        let config = Config::parse(&format!(
            "{url}tls_ca_file = \"ca.pem\"\ntls_client_certificate = \"c.pem\"\n\
             tls_client_key = \"c.key\"\n"
        ))
        .unwrap();
        assert_eq!(
            config.store.tls_client_key.as_deref(),
            Some(std::path::Path::new("c.key"))
        );
    }

    #[test]
    fn a_lease_shorter_than_a_request_and_database_settings_without_a_url_are_refused() {
        let error = Config::parse("[store]\nidempotency_lease_ms = 5000\n").unwrap_err();
        assert!(error.contains("idempotency_lease_ms"), "{error}");
        let error = Config::parse("[store]\ntls_ca_file = \"ca.pem\"\n").unwrap_err();
        assert!(error.contains("need store.url"), "{error}");
    }

    #[test]
    fn each_store_has_its_own_checkpoint_file_by_default() {
        let at = |store: &str| {
            Config::parse(&format!("[store]\npath = {store:?}"))
                .unwrap()
                .audit_checkpoint_file()
        };
        assert_eq!(
            at("payrules.db"),
            PathBuf::from(".").join("payrules-audit.checkpoints")
        );
        assert_eq!(
            at("/var/lib/a/other.db"),
            PathBuf::from("/var/lib/a/other-audit.checkpoints")
        );
    }

    #[test]
    fn plain_http_off_loopback_needs_a_proxy_that_terminates_tls() {
        for text in [
            "listen = \"127.0.0.1:8080\"",
            "listen = \"[::1]:8080\"",
            "listen = \"0.0.0.0:8080\"\ntls_terminated_by_proxy = true",
            "listen = \"0.0.0.0:8443\"\n[tls]\ncertificate = \"c\"\nprivate_key = \"k\"",
        ] {
            assert!(Config::parse(text).is_ok(), "{text}");
        }
    }

    #[test]
    fn errors_name_the_setting_at_fault() {
        for (text, expected) in [
            ("listen = \"nowhere\"", "listen"),
            ("[limits]\nbody_bytes_max = 0", "limits.body_bytes_max"),
            ("[limits]\nbody_bytes = 10", "body_bytes"),
            (
                "[[api_keys]]\nname = \"a\"\nsha256 = \"abc\"\nroles = [\"submitter\"]",
                "api_keys[0].sha256",
            ),
            (
                "[[api_keys]]\nname = \"a\"\nsha256 = \"\"\nroles = [\"root\"]",
                "root",
            ),
            (
                &format!(
                    "[[api_keys]]\nname = \"a\"\nsha256 = \"{0}\"\nroles = [\"submitter\"]\n\
                     [[api_keys]]\nname = \"b\"\nsha256 = \"{0}\"\nroles = [\"auditor\"]",
                    "ab".repeat(32)
                ),
                "api_keys[1].sha256 is the same key as api_keys[0]",
            ),
            (
                "[[api_keys]]\nname = \"a\"\nroles = [\"submitter\"]",
                "api_keys[0]: set sha256 (a bearer key), client_certificates, or both",
            ),
            (
                &format!(
                    "[[api_keys]]\nname = \"a\"\nclient_certificates = [\"{}\"]\nroles = [\"submitter\"]",
                    "ab".repeat(32)
                ),
                "api_keys[0].client_certificates needs tls.client_ca",
            ),
            (
                &format!(
                    "[tls]\ncertificate = \"c\"\nprivate_key = \"k\"\nclient_ca = \"ca\"\n\
                     [[api_keys]]\nname = \"a\"\nclient_certificates = [\"{0}\"]\nroles = [\"submitter\"]\n\
                     [[api_keys]]\nname = \"b\"\nclient_certificates = [\"{0}\"]\nroles = [\"auditor\"]",
                    "cd".repeat(32)
                ),
                "api_keys[1].client_certificates[0] is already api_keys[0]'s",
            ),
            (
                "[tls]\ncertificate = \"c\"\nprivate_key = \"k\"\nmin_version = \"1.1\"",
                "tls.min_version",
            ),
            (
                "[tls]\ncertificate = \"c\"\nprivate_key = \"k\"\nclient_certificate = \"required\"",
                "tls.client_certificate = \"required\" needs tls.client_ca",
            ),
            (
                "[oauth]\nissuer = \"i\"\naudience = \"a\"\njwks_url = \"http://idp.test/jwks\"\n\
                 role_map = { x = \"auditor\" }",
                "oauth.jwks_url must be https://",
            ),
            (
                "[oauth]\nissuer = \"i\"\naudience = \"a\"\njwks_file = \"j\"\n\
                 algorithms = [\"HS256\"]\nrole_map = { x = \"auditor\" }",
                "oauth.algorithms: \"HS256\"",
            ),
            (
                "[oauth]\nissuer = \"i\"\naudience = \"a\"\njwks_file = \"j\"\n\
                 jwks_url = \"https://idp.test/jwks\"\nrole_map = { x = \"auditor\" }",
                "oauth: set one of jwks_file or jwks_url",
            ),
            (
                "[oauth]\nissuer = \"i\"\naudience = \"a\"\njwks_file = \"j\"\nrole_map = {}",
                "oauth.role_map",
            ),
            (
                &format!(
                    "[[api_keys]]\nname = \"a\"\nsha256 = \"{}\"\nroles = [\"submitter\"]\n\
                     expires_at = \"next tuesday\"",
                    "ab".repeat(32)
                ),
                "api_keys[0].expires_at must be an RFC 3339 instant",
            ),
            (
                &format!(
                    "[[api_keys]]\nname = \"a\"\nsha256 = \"{}\"\nroles = [\"submitter\"]\n\
                     tenant = \"acme\"",
                    "ab".repeat(32)
                ),
                "api_keys[0].tenant: `acme` is not one of the [[tenants]]",
            ),
            (
                "[[tenants]]\nname = \"acme\"\nrequests_per_second = 0",
                "tenants[0]: requests_per_second and burst must be greater than zero",
            ),
            ("listen = \"0.0.0.0:8080\"", "not a loopback address"),
            ("listen = \"[::]:8080\"", "not a loopback address"),
        ] {
            let error = Config::parse(text).unwrap_err();
            assert!(error.contains(expected), "{text}: {error}");
        }
    }
}
