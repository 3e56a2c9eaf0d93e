//! API identities with roles: bearer API keys, and client certificates (mutual TLS).
//!
//! The config holds each key's sha256, never the key. A presented key is hashed and
//! compared with every known hash in constant time (no early exit, so the time taken
//! says nothing about which key nearly matched). Keys are never logged: a request's span
//! carries the identity's name only. A client certificate the TLS handshake verified
//! authenticates as the identity that lists its sha256; a request that also sends a key
//! must send that identity's.

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::header;
use axum::http::request::Parts;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::AppState;
use super::error::ApiError;
use crate::config::{ApiKeyConfig, Role};
use crate::model::{ClientDecision, Decision, Review, Verdict};

/// The known keys: replaced whole when the config is read again (no restart).
pub struct Keys {
    keys: std::sync::RwLock<Arc<Vec<Key>>>,
}

/// Why a presented key authenticates nobody.
#[derive(Debug, PartialEq, Eq)]
pub enum KeyRefused {
    /// No configured key has its hash.
    Unknown,
    /// It is the key of an identity whose `expires_at` has passed (RFC 3339).
    Expired(String),
}

impl KeyRefused {
    /// What the 401 says.
    pub fn message(&self) -> String {
        match self {
            KeyRefused::Unknown => "the API key is not valid".to_owned(),
            KeyRefused::Expired(at) => format!("the API key expired at {at}"),
        }
    }
}

struct Key {
    name: Arc<str>,
    /// The bearer key's sha256, if it has one.
    sha256: Option<[u8; 32]>,
    /// The sha256 of each client certificate that authenticates as it (mutual TLS).
    certificates: Vec<[u8; 32]>,
    roles: Vec<Role>,
    /// When it stops authenticating, ms since the Unix epoch, and as configured.
    expires: Option<(i64, String)>,
}

/// The sha256 of the client certificate a request's TLS connection presented (verified
/// against `tls.client_ca` in the handshake).
#[derive(Clone, Copy, Debug)]
pub struct PeerCertificate(pub [u8; 32]);

/// The holder of a valid key.
#[derive(Clone, Debug)]
pub struct Principal {
    /// The key's name from the config.
    pub name: Arc<str>,
    roles: Vec<Role>,
}

impl Principal {
    /// The key's roles, by name, comma-separated.
    pub fn role_names(&self) -> String {
        self.roles
            .iter()
            .map(|r| r.name())
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Whether the key holds `role`.
    pub fn has(&self, role: Role) -> bool {
        self.roles.contains(&role)
    }

    /// Whether this key sees decisions whole (the rules' trace and findings): auditors,
    /// operators and reviewers do; a submitting system sees a [`ClientDecision`].
    pub fn sees_whole_decisions(&self) -> bool {
        self.has(Role::Auditor) || self.has(Role::Operator) || self.has(Role::Reviewer)
    }

    /// A decision as this key may see it.
    pub fn view(&self, decision: Decision) -> DecisionView {
        if self.sees_whole_decisions() {
            DecisionView::Whole(decision)
        } else {
            DecisionView::Client(ClientDecision::from(&decision))
        }
    }

    /// A review as this key may see it: whole for those who see decisions whole; for a
    /// submitting system, the verdict, its reason code and instant (not who reviewed it,
    /// nor the reviewer's note).
    pub fn view_review(&self, review: Review) -> ReviewView {
        if self.sees_whole_decisions() {
            ReviewView::Whole(review)
        } else {
            ReviewView::Client(ClientReview {
                verdict: review.verdict,
                reason_code: review.reason_code,
                reviewed_at_unix_ms: review.reviewed_at_unix_ms,
                expired: review.expired,
            })
        }
    }

    /// Refuses with 403 unless the key holds one of `roles`.
    pub fn require(&self, roles: &[Role]) -> Result<(), ApiError> {
        if roles.iter().any(|role| self.has(*role)) {
            return Ok(());
        }
        let names: Vec<&str> = roles.iter().map(|r| r.name()).collect();
        Err(ApiError::new(
            axum::http::StatusCode::FORBIDDEN,
            "role_required",
            format!("this needs the {} role", names.join(" or ")),
        ))
    }
}

/// A decision as a key may see it: whole, or the client's view.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum DecisionView {
    /// For auditors and operators: every rule's outcome, findings, fuel and time.
    Whole(Decision),
    /// For submitting systems: the answer and its reason codes.
    Client(ClientDecision),
}

/// A review as a key may see it: whole, or the client's view.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum ReviewView {
    /// For auditors, operators and reviewers: who, what, why, the note.
    Whole(Review),
    /// For submitting systems: the outcome and its reason code.
    Client(ClientReview),
}

/// What a submitting system is told of a review.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct ClientReview {
    /// Approve or reject.
    pub verdict: Verdict,
    /// The ISO 20022 reason code of a reject.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason_code: Option<String>,
    /// When, ms since the Unix epoch.
    pub reviewed_at_unix_ms: i64,
    /// Whether nobody reviewed it in time and payrules rejected it at the deadline.
    pub expired: bool,
}

impl Keys {
    /// The keys of the config (validated: 64 hex digits each).
    pub fn new(configs: &[ApiKeyConfig]) -> Keys {
        Keys {
            keys: std::sync::RwLock::new(Arc::new(Keys::of(configs))),
        }
    }

    fn of(configs: &[ApiKeyConfig]) -> Vec<Key> {
        configs
            .iter()
            .map(|config| Key {
                name: Arc::from(config.name.as_str()),
                sha256: config.sha256.as_deref().map(from_hex),
                certificates: config
                    .client_certificates
                    .iter()
                    .map(|hex| from_hex(hex))
                    .collect(),
                roles: config.roles.clone(),
                expires: config.expires_at_unix_ms().zip(config.expires_at.clone()),
            })
            .collect()
    }

    fn current(&self) -> Arc<Vec<Key>> {
        Arc::clone(
            &self
                .keys
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        )
    }

    /// Replaces every key with those of `configs` (validated): the next request sees them.
    /// The names added and the names removed.
    pub fn replace(&self, configs: &[ApiKeyConfig]) -> (Vec<String>, Vec<String>) {
        let before = self.current();
        let after = Keys::of(configs);
        let names = |keys: &[Key]| -> std::collections::BTreeSet<String> {
            keys.iter().map(|k| k.name.to_string()).collect()
        };
        let (old, new) = (names(&before), names(&after));
        *self
            .keys
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(after);
        (
            new.difference(&old).cloned().collect(),
            old.difference(&new).cloned().collect(),
        )
    }

    /// The holder of `presented`, if it is a known key that has not expired.
    pub fn authenticate(&self, presented: &str) -> Result<Principal, KeyRefused> {
        let digest: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        let keys = self.current();
        let mut found = None;
        for key in keys.iter() {
            if let Some(sha256) = &key.sha256
                && bool::from(sha256.ct_eq(&digest))
            {
                found = Some(key);
            }
        }
        let key = found.ok_or(KeyRefused::Unknown)?;
        key.unexpired()?;
        Ok(key.principal())
    }

    /// The identity a client certificate (already verified in the TLS handshake)
    /// authenticates as, if the config names it and it has not expired.
    pub fn by_certificate(
        &self,
        certificate: &PeerCertificate,
    ) -> Option<Result<Principal, KeyRefused>> {
        self.current()
            .iter()
            .find(|key| key.certificates.contains(&certificate.0))
            .map(|key| key.unexpired().map(|()| key.principal()))
    }

    /// Whether `name` is still a configured identity that has not expired (a console
    /// session of one that is not ends).
    pub fn holds(&self, name: &str) -> bool {
        self.current()
            .iter()
            .any(|key| &*key.name == name && key.unexpired().is_ok())
    }
}

impl Key {
    fn unexpired(&self) -> Result<(), KeyRefused> {
        match &self.expires {
            Some((at, text)) if crate::store::now_unix_ms() >= *at => {
                Err(KeyRefused::Expired(text.clone()))
            }
            _ => Ok(()),
        }
    }

    fn principal(&self) -> Principal {
        Principal {
            name: Arc::clone(&self.name),
            roles: self.roles.clone(),
        }
    }
}

/// 64 hex digits (validated by the config) as 32 bytes.
fn from_hex(hex: &str) -> [u8; 32] {
    let mut bytes = [0u8; 32];
    for (index, byte) in bytes.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&hex[index * 2..index * 2 + 2], 16)
            .unwrap_or_else(|e| unreachable!("validated hex: {e}"));
    }
    bytes
}

/// A new random key, 32 bytes of the OS's randomness, as `pr_` and 64 hex digits.
pub fn new_key() -> std::io::Result<String> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(std::io::Error::other)?;
    Ok(format!("pr_{}", crate::registry::hex(&bytes)))
}

/// The sha256 of a key, as the config spells it.
pub fn key_sha256(key: &str) -> String {
    crate::registry::hex(&Sha256::digest(key.as_bytes()))
}

impl FromRequestParts<Arc<AppState>> for Principal {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, Self::Rejection> {
        let peer = parts
            .extensions
            .get::<super::TlsConnection>()
            .and_then(|tls| tls.client_certificate.as_ref());
        let by_certificate = peer
            .and_then(|peer| state.keys.by_certificate(peer))
            .transpose()
            .map_err(|refused| ApiError::unauthenticated(&refused.message()))?;
        let by_key = match parts.headers.get(header::AUTHORIZATION) {
            None => None,
            Some(value) => {
                // The scheme is case-insensitive (RFC 9110 §11.1): `bearer` is `Bearer`.
                let token = value
                    .to_str()
                    .ok()
                    .and_then(|v| v.trim_start().split_once(' '))
                    .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
                    .map(|(_, token)| token.trim())
                    .filter(|t| !t.is_empty())
                    .ok_or_else(|| {
                        ApiError::unauthenticated(
                            "the Authorization header must be `Bearer <key or token>`",
                        )
                    })?;
                match &state.tokens {
                    Some(tokens) if super::oauth::looks_like_a_jwt(token) => {
                        let holder = tokens
                            .verify(token)
                            .await
                            .map_err(|refused| ApiError::unauthenticated(&refused.to_string()))?;
                        Some(Principal {
                            name: Arc::from(holder.name),
                            roles: holder.roles,
                        })
                    }
                    _ => Some(
                        state
                            .keys
                            .authenticate(token)
                            .map_err(|refused| ApiError::unauthenticated(&refused.message()))?,
                    ),
                }
            }
        };
        let principal = match (by_certificate, by_key) {
            (Some(certificate), Some(key)) if certificate.name != key.name => {
                return Err(ApiError::unauthenticated(
                    "the API key and the client certificate are different identities",
                ));
            }
            (Some(principal), _) | (None, Some(principal)) => principal,
            (None, None) if peer.is_some() => {
                return Err(ApiError::unauthenticated(
                    "the client certificate is no API identity's: send an API key \
                     (Authorization: Bearer <key>) or a certificate the config names",
                ));
            }
            (None, None) => {
                return Err(ApiError::unauthenticated(
                    "send an API key: Authorization: Bearer <key>",
                ));
            }
        };
        tracing::Span::current().record("principal", &*principal.name);
        if let Err(limited) = state.rates.check(&principal.name) {
            return Err(ApiError::rate_limited(&limited));
        }
        Ok(principal)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_authenticates_as_its_name_and_roles_and_nothing_else_does() {
        let key = new_key().unwrap();
        let keys = Keys::new(&[ApiKeyConfig {
            requests_per_second: None,
            expires_at: None,
            tenant: None,
            name: "checkout".into(),
            sha256: Some(key_sha256(&key)),
            client_certificates: Vec::new(),
            roles: vec![Role::Submitter],
        }]);
        let principal = keys.authenticate(&key).unwrap();
        assert_eq!(&*principal.name, "checkout");
        assert!(principal.has(Role::Submitter));
        assert!(!principal.has(Role::Operator));
        assert!(principal.require(&[Role::Auditor]).is_err());
        assert_eq!(
            keys.authenticate("pr_wrong").unwrap_err(),
            KeyRefused::Unknown
        );
        assert!(keys.authenticate(&key[..key.len() - 1]).is_err());
    }
}
