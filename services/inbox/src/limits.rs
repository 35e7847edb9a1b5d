//! In-memory, per-worker bookkeeping of the relay: the senders' token buckets and the cache of
//! recipients known to be registered. Both maps are bounded; neither needs coordination between
//! workers (PROTOCOL.md §9.3: the rate is per relay worker).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use kv_schemas::PublicKey;

/// A token bucket: `burst` messages at once, refilled at `per_second`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateLimit {
    /// Bucket size.
    pub burst: u32,
    /// Refill rate, messages per second.
    pub per_second: f64,
}

impl Default for RateLimit {
    fn default() -> Self {
        Self { burst: 300, per_second: 30.0 }
    }
}

/// Buckets are dropped once full again (an absent bucket is a full one), so the map holds
/// only senders active in the last `burst / per_second` seconds; past this many entries it is
/// swept.
const SWEEP_AT: usize = 100_000;

pub(crate) struct Limiter {
    limit: RateLimit,
    buckets: Mutex<HashMap<PublicKey, (f64, Instant)>>,
}

impl Limiter {
    pub(crate) fn new(limit: RateLimit) -> Self {
        Self { limit, buckets: Mutex::new(HashMap::new()) }
    }

    /// Takes one token for `sender`; `false` when the bucket is empty.
    pub(crate) fn allow(&self, sender: &PublicKey, now: Instant) -> bool {
        let burst = f64::from(self.limit.burst);
        let rate = self.limit.per_second;
        let mut map = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() >= SWEEP_AT {
            map.retain(|_, (tokens, at)| *tokens + now.saturating_duration_since(*at).as_secs_f64() * rate < burst);
        }
        let (tokens, at) = map.entry(*sender).or_insert((burst, now));
        *tokens = (*tokens + now.saturating_duration_since(*at).as_secs_f64() * rate).min(burst);
        *at = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// Keys the registry confirmed, remembered for a while. Registrations are never withdrawn,
/// so a stale positive answer is harmless; negative answers are never cached (a new user must
/// be reachable at once).
pub(crate) struct RegisteredCache {
    capacity: usize,
    ttl: Duration,
    seen: Mutex<HashMap<PublicKey, Instant>>,
}

impl RegisteredCache {
    pub(crate) fn new(capacity: usize, ttl: Duration) -> Self {
        Self { capacity: capacity.max(1), ttl, seen: Mutex::new(HashMap::new()) }
    }

    pub(crate) fn contains(&self, key: &PublicKey, now: Instant) -> bool {
        let seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        seen.get(key).is_some_and(|at| now.saturating_duration_since(*at) < self.ttl)
    }

    pub(crate) fn insert(&self, key: PublicKey, now: Instant) {
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        if seen.len() >= self.capacity && !seen.contains_key(&key) {
            let ttl = self.ttl;
            seen.retain(|_, at| now.saturating_duration_since(*at) < ttl);
            if seen.len() >= self.capacity {
                // All fresh: start over rather than track recency (a miss costs one lookup).
                seen.clear();
            }
        }
        seen.insert(key, now);
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.seen.lock().map(|s| s.len()).unwrap_or(0)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn key(n: u8) -> PublicKey {
        PublicKey::of(&ed25519_dalek::SigningKey::from_bytes(&[n; 32]))
    }

    #[test]
    fn token_bucket() {
        let l = Limiter::new(RateLimit { burst: 3, per_second: 2.0 });
        let t0 = Instant::now();
        let (a, b) = (key(1), key(2));
        assert!(l.allow(&a, t0) && l.allow(&a, t0) && l.allow(&a, t0));
        assert!(!l.allow(&a, t0), "burst spent");
        assert!(l.allow(&b, t0), "other senders are not affected");
        assert!(!l.allow(&a, t0 + Duration::from_millis(400)));
        assert!(l.allow(&a, t0 + Duration::from_millis(1000)), "refilled 2/s");
        assert!(l.allow(&a, t0 + Duration::from_secs(100)));
        assert!(l.allow(&a, t0 + Duration::from_secs(100)) && l.allow(&a, t0 + Duration::from_secs(100)));
        assert!(!l.allow(&a, t0 + Duration::from_secs(100)), "never more than the burst");
    }

    #[test]
    fn registered_cache_is_bounded_and_expires() {
        let c = RegisteredCache::new(2, Duration::from_secs(10));
        let t0 = Instant::now();
        c.insert(key(1), t0);
        c.insert(key(2), t0);
        assert!(c.contains(&key(1), t0) && c.contains(&key(2), t0));
        assert!(!c.contains(&key(1), t0 + Duration::from_secs(11)));
        c.insert(key(3), t0 + Duration::from_secs(1));
        assert!(c.len() <= 2);
        assert!(c.contains(&key(3), t0 + Duration::from_secs(1)));
    }
}
