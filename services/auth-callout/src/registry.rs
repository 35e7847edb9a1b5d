//! "Is this key a registered primary key?" — asked of the registry service for every login.

use std::future::Future;
use std::time::Duration;

use kez_service_kit::svc;
use kv_schemas::api::LookupKey;
use kv_schemas::{ErrorCode, PublicKey};

/// Why the registry could not give an answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegistryError {
    /// Nobody answered (no responders, timeout, broker unreachable): transient.
    #[error("registry unavailable: {0}")]
    Unavailable(String),
    /// The registry answered with something other than a record or `key_not_found`.
    #[error("registry error: {0}")]
    Unexpected(String),
}

/// The worker's view of the registry. Implemented over NATS by [`NatsRegistry`]; tests may use
/// anything else.
pub trait KeyRegistry: Send + Sync + 'static {
    /// `Ok(true)` if `key` is a registered primary key, `Ok(false)` if it is not.
    fn is_registered(&self, key: &PublicKey) -> impl Future<Output = Result<bool, RegistryError>> + Send;
}

/// Asks `kez.svc.registry.v1.lookup_key` over a NATS connection in account APP.
#[derive(Debug, Clone)]
pub struct NatsRegistry {
    client: async_nats::Client,
    timeout: Duration,
}

impl NatsRegistry {
    /// `timeout` must leave room inside the server's `authorization.timeout` (2 s) for the rest of
    /// the callout round trip.
    pub fn new(client: async_nats::Client, timeout: Duration) -> Self {
        Self { client, timeout }
    }
}

impl KeyRegistry for NatsRegistry {
    async fn is_registered(&self, key: &PublicKey) -> Result<bool, RegistryError> {
        match svc::call(&self.client, &LookupKey { key: *key }, self.timeout).await {
            Ok(reply) => {
                if reply.key == *key {
                    Ok(true)
                } else {
                    // A registry that answers for another key is broken; never admit on that.
                    Err(RegistryError::Unexpected(format!("lookup_key for {key} answered {}", reply.key)))
                }
            }
            Err(e) if e.code == ErrorCode::KeyNotFound => Ok(false),
            Err(e) if matches!(e.code, ErrorCode::Unavailable | ErrorCode::Timeout) => {
                Err(RegistryError::Unavailable(e.to_string()))
            }
            Err(e) => Err(RegistryError::Unexpected(e.to_string())),
        }
    }
}

/// Remembers positive answers of another registry for a short time.
///
/// Why: the registry question is one NATS round trip (plus a KV read in the registry) on every
/// login, and clients on flaky networks reconnect often. Only "registered" is cached: a key that
/// was just registered gets in at once, and errors are never remembered. The cost is staleness: a
/// key removed from the registry can still log in for up to `ttl` after its last successful login
/// (on top of the user-JWT lifetime, which already bounds how long existing connections live).
#[derive(Debug)]
pub struct CachedRegistry<R> {
    inner: R,
    ttl: std::time::Duration,
    capacity: usize,
    fresh: std::sync::Mutex<std::collections::HashMap<PublicKey, std::time::Instant>>,
}

impl<R: KeyRegistry> CachedRegistry<R> {
    /// Caches up to `capacity` keys for `ttl` each.
    pub fn new(inner: R, ttl: std::time::Duration, capacity: usize) -> Self {
        Self { inner, ttl, capacity, fresh: std::sync::Mutex::default() }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, std::collections::HashMap<PublicKey, std::time::Instant>> {
        // A panic while holding this lock cannot leave the map inconsistent (single inserts and
        // removals), so a poisoned lock is still usable.
        self.fresh.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl<R: KeyRegistry> KeyRegistry for CachedRegistry<R> {
    async fn is_registered(&self, key: &PublicKey) -> Result<bool, RegistryError> {
        let now = std::time::Instant::now();
        if self.lock().get(key).is_some_and(|&expires| expires > now) {
            return Ok(true);
        }
        let answer = self.inner.is_registered(key).await;
        let mut fresh = self.lock();
        if matches!(answer, Ok(true)) {
            if fresh.len() >= self.capacity {
                fresh.retain(|_, expires| *expires > now);
                if fresh.len() >= self.capacity {
                    // Still full of live entries: start over rather than track recency.
                    fresh.clear();
                }
            }
            fresh.insert(*key, now + self.ttl);
        } else {
            fresh.remove(key);
        }
        answer
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::collections::HashSet;
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[derive(Default)]
    struct Counting {
        keys: Mutex<HashSet<PublicKey>>,
        down: std::sync::atomic::AtomicBool,
        asked: AtomicU32,
    }

    impl KeyRegistry for std::sync::Arc<Counting> {
        async fn is_registered(&self, key: &PublicKey) -> Result<bool, RegistryError> {
            self.asked.fetch_add(1, Ordering::Relaxed);
            if self.down.load(Ordering::Relaxed) {
                return Err(RegistryError::Unavailable("down".into()));
            }
            Ok(self.keys.lock().unwrap().contains(key))
        }
    }

    fn key(b: u8) -> PublicKey {
        PublicKey::of(&ed25519_dalek::SigningKey::from_bytes(&[b; 32]))
    }

    #[tokio::test]
    async fn caches_only_positive_answers_until_they_expire() {
        let inner = std::sync::Arc::new(Counting::default());
        let cache = CachedRegistry::new(inner.clone(), std::time::Duration::from_millis(200), 100);
        let (a, b) = (key(1), key(2));
        inner.keys.lock().unwrap().insert(a);

        assert!(cache.is_registered(&a).await.unwrap());
        assert!(cache.is_registered(&a).await.unwrap());
        assert_eq!(inner.asked.load(Ordering::Relaxed), 1, "second answer from the cache");

        // Negative answers are asked every time, so registering takes effect at once.
        assert!(!cache.is_registered(&b).await.unwrap());
        inner.keys.lock().unwrap().insert(b);
        assert!(cache.is_registered(&b).await.unwrap());
        assert_eq!(inner.asked.load(Ordering::Relaxed), 3);

        // While fresh, even a registry outage does not matter for a; after expiry it does.
        inner.down.store(true, Ordering::Relaxed);
        assert!(cache.is_registered(&a).await.unwrap());
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
        assert!(matches!(cache.is_registered(&a).await, Err(RegistryError::Unavailable(_))));
        // Removal from the registry is seen once the entry expired.
        inner.down.store(false, Ordering::Relaxed);
        inner.keys.lock().unwrap().remove(&a);
        assert!(!cache.is_registered(&a).await.unwrap());
    }

    #[tokio::test]
    async fn capacity_is_bounded() {
        let inner = std::sync::Arc::new(Counting::default());
        let keys: Vec<PublicKey> = (1..=10).map(key).collect();
        inner.keys.lock().unwrap().extend(keys.iter().copied());
        let cache = CachedRegistry::new(inner.clone(), std::time::Duration::from_secs(60), 4);
        for k in &keys {
            assert!(cache.is_registered(k).await.unwrap());
            assert!(cache.lock().len() <= 4);
        }
    }
}
