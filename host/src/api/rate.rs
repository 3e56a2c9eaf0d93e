//! Rate limits per API key: a token bucket (GCRA, the `governor` crate) for each key that
//! has a limit, beside the global concurrency limit that sheds load. A key past its rate is
//! answered `429 rate_limited` with `Retry-After` and the IETF `RateLimit-Policy` /
//! `RateLimit` headers (draft-ietf-httpapi-ratelimit-headers), before any work is done for
//! it, so one client cannot take the service from the others.

use std::collections::HashMap;
use std::num::NonZeroU32;

use governor::clock::{Clock, DefaultClock};
use governor::middleware::StateInformationMiddleware;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};

use crate::config::ApiKeyConfig;

type Bucket = RateLimiter<NotKeyed, InMemoryState, DefaultClock, StateInformationMiddleware>;

/// The limits of every key that has one.
pub struct RateLimits {
    by_key: std::sync::RwLock<HashMap<String, Limit>>,
    clock: DefaultClock,
}

struct Limit {
    bucket: Bucket,
    per_second: u32,
    burst: u32,
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
}

impl RateLimits {
    /// A bucket for each key: its own `requests_per_second` if set, else
    /// `default_per_second` (0: no limit); bursts of `default_burst` (0: one second's
    /// worth).
    pub fn new(keys: &[ApiKeyConfig], default_per_second: u32, default_burst: u32) -> RateLimits {
        RateLimits {
            by_key: std::sync::RwLock::new(RateLimits::of(keys, default_per_second, default_burst)),
            clock: DefaultClock::default(),
        }
    }

    /// Every key's limit anew (the config read again): a key whose limit is unchanged
    /// keeps its bucket.
    pub fn replace(&self, keys: &[ApiKeyConfig], default_per_second: u32, default_burst: u32) {
        let mut fresh = RateLimits::of(keys, default_per_second, default_burst);
        let mut by_key = self
            .by_key
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for (name, limit) in fresh.iter_mut() {
            if let Some(old) = by_key.remove(name)
                && (old.per_second, old.burst) == (limit.per_second, limit.burst)
            {
                *limit = old;
            }
        }
        *by_key = fresh;
    }

    fn of(
        keys: &[ApiKeyConfig],
        default_per_second: u32,
        default_burst: u32,
    ) -> HashMap<String, Limit> {
        keys.iter()
            .filter_map(|key| {
                let per_second = key.requests_per_second.unwrap_or(default_per_second);
                let per_second_nz = NonZeroU32::new(per_second)?;
                let burst = NonZeroU32::new(default_burst).unwrap_or(per_second_nz);
                let quota = Quota::per_second(per_second_nz).allow_burst(burst);
                let limit = Limit {
                    bucket: RateLimiter::direct(quota).with_middleware(),
                    per_second,
                    burst: burst.get(),
                };
                Some((key.name.clone(), limit))
            })
            .collect()
    }

    /// Takes a token for a request of `key`, or says when to come back.
    pub fn check(&self, key: &str) -> Result<(), Limited> {
        let by_key = self
            .by_key
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let Some(limit) = by_key.get(key) else {
            return Ok(());
        };
        match limit.bucket.check() {
            Ok(_) => Ok(()),
            Err(not_until) => {
                let wait = not_until.wait_time_from(self.clock.now());
                let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
                Err(Limited {
                    retry_after_seconds: u32::try_from(seconds.max(1)).unwrap_or(u32::MAX),
                    per_second: limit.per_second,
                    burst: limit.burst,
                })
            }
        }
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
        }
    }

    #[test]
    fn a_key_past_its_burst_waits_and_other_keys_do_not() {
        let limits = RateLimits::new(&[key("a", Some(2)), key("b", None)], 0, 0);
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
    fn the_default_applies_to_keys_without_their_own() {
        let limits = RateLimits::new(&[key("a", None)], 1, 3);
        for _ in 0..3 {
            assert_eq!(limits.check("a"), Ok(()));
        }
        assert!(limits.check("a").is_err());
    }
}
