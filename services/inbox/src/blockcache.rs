//! Each worker's copy of `kez_blocks`, kept current by a KV watch, so that the relay's block
//! check is a memory lookup instead of a store round trip per message.
//!
//! Until the watch has caught up (and whenever it fails, or the set grows past its bound) the
//! cache answers "unknown" and the relay reads the bucket itself. A block made on another worker
//! reaches this one within the watch's delivery delay; the blocking worker's second purge
//! (see `blocks`) removes anything that slipped through in that window.

use std::collections::HashSet;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use async_nats::jetstream::kv;
use futures::StreamExt as _;
use tracing::warn;

/// Most block markers one worker keeps in memory (about 100 bytes each); beyond it the relay
/// reads the bucket instead.
pub(crate) const MAX_CACHED_BLOCKS: usize = 1_000_000;

#[derive(Default)]
pub(crate) struct BlockCache {
    /// `None`: not usable now; ask the bucket.
    keys: RwLock<Option<HashSet<String>>>,
}

impl BlockCache {
    /// `Some(blocked)` when the cache is current, `None` when the bucket must be asked.
    pub(crate) fn lookup(&self, key: &str) -> Option<bool> {
        let keys = self.keys.read().unwrap_or_else(|p| p.into_inner());
        keys.as_ref().map(|k| k.contains(key))
    }

    /// Applies a change this worker made itself, without waiting for the watch.
    pub(crate) fn apply(&self, key: &str, blocked: bool) {
        let mut keys = self.keys.write().unwrap_or_else(|p| p.into_inner());
        if let Some(k) = keys.as_mut() {
            if blocked {
                k.insert(key.to_owned());
            } else {
                k.remove(key);
            }
            if k.len() > MAX_CACHED_BLOCKS {
                *keys = None;
            }
        }
    }

    fn set(&self, value: Option<HashSet<String>>) {
        *self.keys.write().unwrap_or_else(|p| p.into_inner()) = value;
    }

    /// Keeps the cache current until the process ends.
    pub(crate) fn spawn(self: &Arc<Self>, store: kv::Store) {
        let cache = self.clone();
        tokio::spawn(async move {
            loop {
                let outcome = cache.follow(&store).await;
                cache.set(None);
                match outcome {
                    Follow::TooBig => {
                        warn!("more than {MAX_CACHED_BLOCKS} blocks: the relay reads the bucket for every message");
                        return;
                    }
                    Follow::Failed(e) => warn!("block cache: {e}; reading the bucket until the watch is back"),
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        });
    }

    async fn follow(&self, store: &kv::Store) -> Follow {
        let empty = match store.status().await {
            Ok(s) => s.values() == 0,
            Err(e) => return Follow::Failed(e.to_string()),
        };
        let mut watch = match store.watch_with_history(">").await {
            Ok(w) => w,
            Err(e) => return Follow::Failed(e.to_string()),
        };
        // Entries before the watch caught up go here; the cache goes live once it has.
        let mut pending: Option<HashSet<String>> = Some(HashSet::new());
        if empty {
            self.set(pending.take());
        }
        while let Some(entry) = watch.next().await {
            let entry = match entry {
                Ok(e) => e,
                Err(e) => return Follow::Failed(e.to_string()),
            };
            let blocked = matches!(entry.operation, kv::Operation::Put);
            match pending.as_mut() {
                Some(set) => {
                    if blocked {
                        set.insert(entry.key);
                    } else {
                        set.remove(&entry.key);
                    }
                    if set.len() > MAX_CACHED_BLOCKS {
                        return Follow::TooBig;
                    }
                    if entry.seen_current || entry.delta == 0 {
                        self.set(pending.take());
                    }
                }
                None => {
                    self.apply(&entry.key, blocked);
                    if self.lookup("").is_none() {
                        return Follow::TooBig;
                    }
                }
            }
        }
        Follow::Failed("the watch ended".to_owned())
    }
}

enum Follow {
    TooBig,
    Failed(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_until_live_then_local_changes_apply() {
        let c = BlockCache::default();
        assert_eq!(c.lookup("a.b"), None);
        c.apply("a.b", true);
        assert_eq!(c.lookup("a.b"), None, "changes before the cache is live are the bucket's");
        c.set(Some(HashSet::new()));
        assert_eq!(c.lookup("a.b"), Some(false));
        c.apply("a.b", true);
        assert_eq!(c.lookup("a.b"), Some(true));
        c.apply("a.b", false);
        assert_eq!(c.lookup("a.b"), Some(false));
    }
}
