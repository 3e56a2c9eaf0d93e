//! Rate limits per API key and per tenant: a token bucket (GCRA, the `governor` crate) for
//! each key that has a limit, and one for each tenant shared by its keys, beside the
//! global concurrency limit that sheds load. A key past its rate is
//! answered `429 rate_limited` with `Retry-After` and the IETF `RateLimit-Policy` /
//! `RateLimit` headers (draft-ietf-httpapi-ratelimit-headers), before any work is done for
//! it, so one client cannot take the service from the others.

use std::collections::HashMap;
use std::num::NonZeroU32;

use governor::clock::{Clock, DefaultClock};
use governor::middleware::StateInformationMiddleware;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};

use crate::config::{ApiKeyConfig, TenantConfig};

type Bucket = RateLimiter<NotKeyed, InMemoryState, DefaultClock, StateInformationMiddleware>;

/// The limits of every key that has one.
pub struct RateLimits {
    by_key: std::sync::RwLock<Buckets>,
    clock: DefaultClock,
}

/// The keys' buckets, the tenants' buckets, and which tenant each key belongs to.
#[derive(Default)]
struct Buckets {
    keys: HashMap<String, Limit>,
    tenants: HashMap<String, Limit>,
    tenant_of: HashMap<String, String>,
}

struct Limit {
    bucket: Bucket,
    per_second: u32,
    burst: u32,
    policy: &'static str,
}

/// A request refused for its key's rate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limited {
    /// When a request would be let through again, whole seconds (at least 1).
    pub retry_after_seconds: u32,
    /// The key's sustained rate, requests a second.
    pub per_second: u32,
    /// How many it may send at once.
    pub burst: u32,
    /// Whose limit it is: `key` or `tenant` (the RateLimit headers' policy name).
    pub policy: &'static str,
}

impl RateLimits {
    /// A bucket for each key: its own `requests_per_second` if set, else
    /// `default_per_second` (0: no limit); bursts of `default_burst` (0: one second's
    /// worth).
    pub fn new(
        keys: &[ApiKeyConfig],
        tenants: &[TenantConfig],
        default_per_second: u32,
        default_burst: u32,
    ) -> RateLimits {
        RateLimits {
            by_key: std::sync::RwLock::new(RateLimits::of(
                keys,
                tenants,
                default_per_second,
                default_burst,
            )),
            clock: DefaultClock::default(),
        }
    }

    /// Every limit anew (the config read again): a key or tenant whose limit is unchanged
    /// keeps its bucket.
    pub fn replace(
        &self,
        keys: &[ApiKeyConfig],
        tenants: &[TenantConfig],
        default_per_second: u32,
        default_burst: u32,
    ) {
        let mut fresh = RateLimits::of(keys, tenants, default_per_second, default_burst);
        let mut guard = self
            .by_key
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let buckets = &mut *guard;
        for (old, new) in [
            (&mut buckets.keys, &mut fresh.keys),
            (&mut buckets.tenants, &mut fresh.tenants),
        ] {
            for (name, limit) in new.iter_mut() {
                if let Some(kept) = old.remove(name)
                    && (kept.per_second, kept.burst) == (limit.per_second, limit.burst)
                {
                    *limit = kept;
                }
            }
        }
        *buckets = fresh;
    }

    fn of(
        keys: &[ApiKeyConfig],
        tenants: &[TenantConfig],
        default_per_second: u32,
        default_burst: u32,
    ) -> Buckets {
        let limit = |per_second: u32, burst: u32, policy: &'static str| {
            let per_second_nz = NonZeroU32::new(per_second)?;
            let burst = NonZeroU32::new(burst).unwrap_or(per_second_nz);
            let quota = Quota::per_second(per_second_nz).allow_burst(burst);
            Some(Limit {
                bucket: RateLimiter::direct(quota).with_middleware(),
                per_second,
                burst: burst.get(),
                policy,
            })
        };
        Buckets {
            keys: keys
                .iter()
                .filter_map(|key| {
                    let per_second = key.requests_per_second.unwrap_or(default_per_second);
                    Some((key.name.clone(), limit(per_second, default_burst, "key")?))
                })
                .collect(),
            tenants: tenants
                .iter()
                .filter_map(|tenant| {
                    let burst = tenant.burst.unwrap_or(0);
                    Some((
                        tenant.name.clone(),
                        limit(tenant.requests_per_second, burst, "tenant")?,
                    ))
                })
                .collect(),
            tenant_of: keys
                .iter()
                .filter_map(|key| Some((key.name.clone(), key.tenant.clone()?)))
                .collect(),
        }
    }

    /// Takes a token for a request of `key` from its bucket and its tenant's, or says
    /// when to come back.
    pub fn check(&self, key: &str) -> Result<(), Limited> {
        let buckets = self
            .by_key
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let tenant = buckets
            .tenant_of
            .get(key)
            .and_then(|tenant| buckets.tenants.get(tenant));
        for limit in [buckets.keys.get(key), tenant].into_iter().flatten() {
            if let Err(not_until) = limit.bucket.check() {
                let wait = not_until.wait_time_from(self.clock.now());
                let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
                return Err(Limited {
                    retry_after_seconds: u32::try_from(seconds.max(1)).unwrap_or(u32::MAX),
                    per_second: limit.per_second,
                    burst: limit.burst,
                    policy: limit.policy,
                });
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Role;

    fn key(name: &str, requests_per_second: Option<u32>) -> ApiKeyConfig {
        ApiKeyConfig {
            name: name.to_owned(),
            sha256: Some("ab".repeat(32)),
            client_certificates: Vec::new(),
            roles: vec![Role::Submitter],
            requests_per_second,
            expires_at: None,
            tenant: None,
        }
    }

    #[test]
    fn a_key_past_its_burst_waits_and_other_keys_do_not() {
        let limits = RateLimits::new(&[key("a", Some(2)), key("b", None)], &[], 0, 0);
        assert_eq!(limits.check("a"), Ok(()));
        assert_eq!(limits.check("a"), Ok(()));
        let limited = limits.check("a").unwrap_err();
        assert_eq!((limited.per_second, limited.burst), (2, 2));
        assert_eq!(limited.retry_after_seconds, 1);
        for _ in 0..100 {
            assert_eq!(limits.check("b"), Ok(()), "no limit for b");
        }
    }

    #[test]
    fn the_keys_of_a_tenant_share_its_rate_and_a_key_of_another_does_not() {
        let of = |name: &str, tenant: &str| ApiKeyConfig {
            tenant: Some(tenant.to_owned()),
            ..key(name, None)
        };
        let tenants = [TenantConfig {
            name: "acme".to_owned(),
            requests_per_second: 1,
            burst: Some(3),
        }];
        let limits = RateLimits::new(
            &[
                of("acme-1", "acme"),
                of("acme-2", "acme"),
                key("other", None),
            ],
            &tenants,
            0,
            0,
        );
        assert_eq!(limits.check("acme-1"), Ok(()));
        assert_eq!(limits.check("acme-2"), Ok(()));
        assert_eq!(limits.check("acme-1"), Ok(()));
        let limited = limits.check("acme-2").unwrap_err();
        assert_eq!(
            (limited.policy, limited.per_second, limited.burst),
            ("tenant", 1, 3)
        );
        for _ in 0..10 {
            assert_eq!(limits.check("other"), Ok(()));
        }
    }

    #[test]
    fn the_default_applies_to_keys_without_their_own() {
        let limits = RateLimits::new(&[key("a", None)], &[], 1, 3);
        for _ in 0..3 {
            assert_eq!(limits.check("a"), Ok(()));
        }
        assert!(limits.check("a").is_err());
    }
}
