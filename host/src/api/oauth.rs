//! OAuth 2 / OIDC bearer tokens: a JWT the identity provider signed, checked against its
//! JWKS — signature (asymmetric algorithms only: never `none`, never HMAC), `iss`, `aud`,
//! `exp` and `nbf` within the configured clock skew — and turned into a principal: its
//! name from a claim (prefixed, so no token acts as an API key of the same name), its
//! roles from a claim through the configured map.
//!
//! The keys come from a file (read again when it changes) or a URL (fetched at start,
//! every `jwks_refresh_seconds`, and when a token names a key not seen yet). A fetch for
//! an unknown key that does not find it holds back the next such fetch for
//! [`UNKNOWN_KID_REFETCH`], so a flood of made-up key ids cannot make payrules hammer the
//! provider; one that finds it (a rotation) holds back nothing. A fetch that fails keeps
//! the keys already held.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::{AlgorithmParameters, Jwk, JwkSet, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::Value;

use crate::config::{OAuthConfig, Role};

/// The least time between two fetches caused by tokens naming unknown keys.
pub const UNKNOWN_KID_REFETCH: Duration = Duration::from_secs(30);
/// The largest JWKS document read.
pub const JWKS_BYTES_MAX: usize = 1024 * 1024;
/// The longest name a token may give its caller.
pub const NAME_CHARS_MAX: usize = 200;

/// Checks tokens against the provider's keys.
pub struct TokenVerifier {
    config: OAuthConfig,
    algorithms: Vec<Algorithm>,
    source: Source,
    keys: RwLock<Arc<JwkSet>>,
    /// When the keys were last fetched because a token named an unknown one.
    unknown_kid_fetch: Mutex<Option<Instant>>,
}

enum Source {
    File(PathBuf),
    Url {
        uri: axum::http::Uri,
        client: Box<crate::tls::HttpClient>,
    },
}

/// A verified token's caller.
#[derive(Debug)]
pub struct TokenHolder {
    /// `name_prefix` and the `name_claim`'s value.
    pub name: String,
    /// The roles its `roles_claim` maps to.
    pub roles: Vec<Role>,
}

/// Why a token is refused (the text goes in the 401).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct TokenRefused(String);

impl TokenVerifier {
    /// A verifier as the config says; a JWKS file is read now (an error stops the start),
    /// a URL is fetched by [`TokenVerifier::refresh`].
    pub fn new(config: &OAuthConfig) -> Result<TokenVerifier, String> {
        let algorithms = config
            .algorithms
            .iter()
            .map(|name| {
                name.parse::<Algorithm>()
                    .map_err(|e| format!("oauth.algorithms: {name}: {e}"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let (source, keys) = match (&config.jwks_file, &config.jwks_url) {
            (Some(path), _) => {
                let keys = read_file(path)?;
                (Source::File(path.clone()), keys)
            }
            (None, Some(url)) => {
                let uri: axum::http::Uri = url
                    .parse()
                    .map_err(|e| format!("oauth.jwks_url is not a URL: {e}"))?;
                let client =
                    crate::tls::https_client(config.jwks_ca_file.as_deref(), &uri, "oauth.jwks")?;
                (
                    Source::Url {
                        uri,
                        client: Box::new(client),
                    },
                    JwkSet { keys: Vec::new() },
                )
            }
            (None, None) => return Err("oauth: set one of jwks_file or jwks_url".to_owned()),
        };
        Ok(TokenVerifier {
            config: config.clone(),
            algorithms,
            source,
            keys: RwLock::new(Arc::new(keys)),
            unknown_kid_fetch: Mutex::new(None),
        })
    }

    /// The JWKS file, if the keys come from one (what to watch).
    pub fn jwks_file(&self) -> Option<&std::path::Path> {
        match &self.source {
            Source::File(path) => Some(path),
            Source::Url { .. } => None,
        }
    }

    /// Reads or fetches the keys again; on a fault the keys held stay, and the fault is the
    /// answer. The number of signing keys now held.
    pub async fn refresh(&self) -> Result<usize, String> {
        let keys = match &self.source {
            Source::File(path) => read_file(path)?,
            Source::Url { uri, client } => fetch(client, uri).await?,
        };
        let count = keys.keys.len();
        *self.keys.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(keys);
        Ok(count)
    }

    /// Fetches the URL's keys now and every `jwks_refresh_seconds` (a tokio task; a JWKS
    /// file is watched by the caller instead).
    pub fn refresh_periodically(self: &Arc<Self>) {
        if matches!(self.source, Source::File(_)) {
            return;
        }
        let verifier = Arc::clone(self);
        let every = Duration::from_secs(self.config.jwks_refresh_seconds);
        tokio::spawn(async move {
            loop {
                match verifier.refresh().await {
                    Ok(count) => tracing::debug!(keys = count, "JWKS fetched"),
                    Err(error) => tracing::error!("JWKS not fetched, the keys held stay: {error}"),
                }
                // Until it has keys, try again soon.
                let held = !verifier.current().keys.is_empty();
                tokio::time::sleep(if held {
                    every
                } else {
                    every.min(Duration::from_secs(10))
                })
                .await;
            }
        });
    }

    fn current(&self) -> Arc<JwkSet> {
        Arc::clone(&self.keys.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// The caller of `token`, or why not.
    pub async fn verify(&self, token: &str) -> Result<TokenHolder, TokenRefused> {
        let refused = |why: String| TokenRefused(why);
        let header = jsonwebtoken::decode_header(token)
            .map_err(|e| refused(format!("the bearer token is not a JWT: {e}")))?;
        if !self.algorithms.contains(&header.alg) {
            return Err(refused(format!(
                "the token's algorithm {:?} is not accepted",
                header.alg
            )));
        }
        let kid = header
            .kid
            .as_deref()
            .ok_or_else(|| refused("the token names no key (kid)".to_owned()))?;
        let key = match find(&self.current(), kid) {
            Some(key) => key,
            None => {
                // A key the provider started signing with since the last fetch.
                if self.may_fetch_for_unknown_kid()
                    && let Err(error) = self.refresh().await
                {
                    tracing::warn!("JWKS not fetched for an unknown key id: {error}");
                }
                let found = find(&self.current(), kid).ok_or_else(|| {
                    refused(format!(
                        "the token's key {kid:?} is not one of the issuer's"
                    ))
                })?;
                // The provider had published it: a key rotation, not a made-up id, and no
                // reason to hold back the next one.
                *self
                    .unknown_kid_fetch
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner) = None;
                found
            }
        };
        if let Some(algorithm) = key.common.key_algorithm
            && format!("{algorithm:?}") != format!("{:?}", header.alg)
        {
            return Err(refused(format!(
                "the token's algorithm {:?} is not its key's ({algorithm:?})",
                header.alg
            )));
        }
        let decoding = DecodingKey::from_jwk(&key)
            .map_err(|e| refused(format!("the issuer's key {kid:?} is not usable: {e}")))?;
        let mut validation = Validation::new(header.alg);
        validation.set_issuer(&[&self.config.issuer]);
        validation.set_audience(&[&self.config.audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud"]);
        validation.leeway = self.config.clock_skew_seconds;
        validation.validate_nbf = true;
        let claims =
            jsonwebtoken::decode::<serde_json::Map<String, Value>>(token, &decoding, &validation)
                .map_err(|e| refused(format!("the token is not valid: {e}")))?
                .claims;
        let name = claims
            .get(&self.config.name_claim)
            .and_then(Value::as_str)
            .filter(|name| !name.is_empty() && name.chars().count() <= NAME_CHARS_MAX)
            .ok_or_else(|| {
                refused(format!(
                    "the token has no {} claim (a string of 1 to {NAME_CHARS_MAX} characters)",
                    self.config.name_claim
                ))
            })?;
        let granted: Vec<&str> = match claims.get(&self.config.roles_claim) {
            Some(Value::Array(values)) => values.iter().filter_map(Value::as_str).collect(),
            Some(Value::String(values)) => values.split_whitespace().collect(),
            _ => Vec::new(),
        };
        let mut roles: Vec<Role> = granted
            .iter()
            .filter_map(|value| self.config.role_map.get(*value).copied())
            .collect();
        roles.sort_by_key(|role| role.name());
        roles.dedup();
        Ok(TokenHolder {
            name: format!("{}{name}", self.config.name_prefix),
            roles,
        })
    }

    fn may_fetch_for_unknown_kid(&self) -> bool {
        if matches!(self.source, Source::File(_)) {
            return false;
        }
        let mut last = self
            .unknown_kid_fetch
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if last.is_some_and(|at| at.elapsed() < UNKNOWN_KID_REFETCH) {
            return false;
        }
        *last = Some(Instant::now());
        true
    }
}

/// Whether a bearer credential is a JWT (three base64url parts) rather than an API key.
pub fn looks_like_a_jwt(credential: &str) -> bool {
    credential.split('.').count() == 3
}

/// The signing key `kid` of `keys`.
fn find(keys: &JwkSet, kid: &str) -> Option<Jwk> {
    keys.find(kid).cloned()
}

/// The signing keys of a JWKS document: asymmetric keys with an id, not marked for
/// encryption; keys of other kinds are left out, not refused (a provider publishes more
/// than payrules uses).
fn parse(bytes: &[u8], at: &str) -> Result<JwkSet, String> {
    let document: Value =
        serde_json::from_slice(bytes).map_err(|e| format!("{at}: not a JWKS document: {e}"))?;
    let listed = document
        .get("keys")
        .and_then(Value::as_array)
        .ok_or_else(|| format!("{at}: not a JWKS document: no \"keys\" array"))?;
    let keys = listed
        .iter()
        .filter_map(|key| serde_json::from_value::<Jwk>(key.clone()).ok())
        .filter(|key| key.common.key_id.is_some())
        .filter(|key| !matches!(key.common.public_key_use, Some(PublicKeyUse::Encryption)))
        .filter(|key| !matches!(key.algorithm, AlgorithmParameters::OctetKey(_)))
        .collect();
    Ok(JwkSet { keys })
}

fn read_file(path: &std::path::Path) -> Result<JwkSet, String> {
    let at = format!("oauth.jwks_file {}", path.display());
    let bytes = std::fs::read(path).map_err(|e| format!("{at}: {e}"))?;
    if bytes.len() > JWKS_BYTES_MAX {
        return Err(format!("{at}: more than {JWKS_BYTES_MAX} bytes"));
    }
    parse(&bytes, &at)
}

async fn fetch(client: &crate::tls::HttpClient, uri: &axum::http::Uri) -> Result<JwkSet, String> {
    use http_body_util::BodyExt;
    let at = format!("oauth.jwks_url {uri}");
    let request = hyper::Request::get(uri.clone())
        .header(hyper::header::ACCEPT, "application/json")
        .body(http_body_util::Full::new(hyper::body::Bytes::new()))
        .map_err(|e| format!("{at}: {e}"))?;
    let response = tokio::time::timeout(Duration::from_secs(10), client.request(request))
        .await
        .map_err(|_| format!("{at}: no answer within 10 s"))?
        .map_err(|e| format!("{at}: {e}"))?;
    if !response.status().is_success() {
        return Err(format!("{at}: answered {}", response.status()));
    }
    let body = http_body_util::Limited::new(response.into_body(), JWKS_BYTES_MAX);
    let bytes = tokio::time::timeout(Duration::from_secs(10), body.collect())
        .await
        .map_err(|_| format!("{at}: the document took more than 10 s"))?
        .map_err(|e| format!("{at}: {e}"))?
        .to_bytes();
    parse(&bytes, &at)
}
