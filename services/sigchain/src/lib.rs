//! The sigchain store (`kez-sigchain`): appends signed links to per-key
//! chains and serves whole chains and their derived state.
//!
//! Link `n` of key `K` lives at KV key `<K hex>.<n, 10 digits>` in
//! `kez_sigchains`, written with `create`: when two appends race for one
//! seqno, exactly one create succeeds. Every append re-verifies the new link
//! against the stored chain (signature, seqno, prev hash, op rules).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::jetstream::{self, kv};
use async_nats::service::Service;
use bytes::Bytes;
use kez_service_kit::kv::{BucketSpec, ensure_bucket, unavailable};
use kez_service_kit::settings::Settings;
use kez_service_kit::svc::{self, json_reply, parse_json};
use kv_schemas::api::{AppendReply, CHAIN_PAGE_BYTES, ChainReply, GetChain, GetChainState, LookupKey};
use kv_schemas::error::err;
use kv_schemas::sigchain::{ChainState, Link, MAX_LINK_BYTES, parse_link};
use kv_schemas::subjects::{BUCKET_SIGCHAINS, service, sigchain_kv_key, svc as subj};
use kv_schemas::{ErrorCode, KezError, PublicKey, TIME_WINDOW_MS, now_ms};

const CHAINS: BucketSpec = BucketSpec {
    name: BUCKET_SIGCHAINS,
    description: "kez-chat sigchains: <key hex>.<seqno> -> link bytes",
    history: 1,
    max_value_size: MAX_LINK_BYTES as i32,
    max_age: Duration::ZERO,
};

/// Verified chain prefixes this worker has read. Links are immutable once
/// stored, so a cached prefix stays valid; reads only fetch what is newer.
/// Bounded in chains and in link bytes (a chain may reach 10 000 × 8 KiB).
const CACHE_CHAINS: usize = 10_000;
const CACHE_BYTES: usize = 64 * 1024 * 1024;

struct Chains {
    client: async_nats::Client,
    settings: Settings,
    store: kv::Store,
    cache: Mutex<ChainCache>,
}

/// The verified-chain cache: at most `max_chains` chains and `max_bytes` of link
/// bytes; when an insert would pass either bound it starts over (cheap, and a
/// miss only costs a re-read). A chain larger than a quarter of the byte bound is
/// not cached at all, so one huge chain cannot evict everything on each read.
struct ChainCache {
    map: HashMap<PublicKey, Arc<Verified>>,
    bytes: usize,
    max_chains: usize,
    max_bytes: usize,
}

impl ChainCache {
    fn new(max_chains: usize, max_bytes: usize) -> Self {
        Self { map: HashMap::new(), bytes: 0, max_chains, max_bytes }
    }

    fn get(&self, key: &PublicKey) -> Option<Arc<Verified>> {
        self.map.get(key).cloned()
    }

    fn insert(&mut self, v: Verified) {
        let size = v.bytes();
        self.remove(&v.state.key);
        if size > self.max_bytes / 4 {
            return;
        }
        if self.map.len() >= self.max_chains || self.bytes + size > self.max_bytes {
            self.map.clear();
            self.bytes = 0;
        }
        self.bytes += size;
        self.map.insert(v.state.key, Arc::new(v));
    }

    fn remove(&mut self, key: &PublicKey) {
        if let Some(old) = self.map.remove(key) {
            self.bytes -= old.bytes();
        }
    }
}

#[derive(Clone)]
struct Verified {
    state: ChainState,
    links: Vec<Link>,
}

impl Verified {
    /// Link bytes held (what the cache bound counts).
    fn bytes(&self) -> usize {
        self.links.iter().map(|l| l.bytes.len()).sum()
    }
}

/// Creates the bucket if needed and starts serving the sigchain endpoints.
pub async fn start(client: &async_nats::Client, settings: &Settings) -> Result<Service, async_nats::Error> {
    let js = jetstream::new(client.clone());
    let chains = Arc::new(Chains {
        client: client.clone(),
        settings: settings.clone(),
        store: ensure_bucket(&js, &CHAINS, settings.replication).await?,
        cache: Mutex::new(ChainCache::new(CACHE_CHAINS, CACHE_BYTES)),
    });
    let service =
        svc::start(client, service::SIGCHAIN, "Sigchains: append a signed link, get a chain, get its state").await?;
    let c = chains.clone();
    svc::serve(&service, "append", subj::SIGCHAIN_APPEND, move |p| {
        let c = c.clone();
        async move { json_reply(&c.append(&p).await?) }
    })
    .await?;
    let c = chains.clone();
    svc::serve(&service, "get", subj::SIGCHAIN_GET, move |p| {
        let c = c.clone();
        async move {
            let q: GetChain = parse_json(&p)?;
            let v = c.load_nonempty(&q.key).await?;
            json_reply(&page(&v.links, q.key, q.since))
        }
    })
    .await?;
    let c = chains;
    svc::serve(&service, "state", subj::SIGCHAIN_STATE, move |p| {
        let c = c.clone();
        async move {
            let q: GetChainState = parse_json(&p)?;
            json_reply(&c.load_nonempty(&q.key).await?.state)
        }
    })
    .await?;
    svc::settle(client).await?;
    Ok(service)
}

/// The reply to `link` if the chain already holds exactly this link at its seqno.
fn already_stored(current: &Verified, link: &Link) -> Option<AppendReply> {
    let index = usize::try_from(link.seqno).ok()?.checked_sub(1)?;
    let stored = current.links.get(index)?;
    (stored.link_id == link.link_id).then(|| AppendReply { seqno: link.seqno, link_id: link.link_id.clone() })
}

/// The links after `since`, as many as fit in [`CHAIN_PAGE_BYTES`] (at least one).
fn page(links: &[Link], key: PublicKey, since: u64) -> ChainReply {
    let rest = links.get(usize::try_from(since).unwrap_or(usize::MAX).min(links.len())..).unwrap_or_default();
    let mut bytes = 0;
    let take = rest
        .iter()
        .take_while(|l| {
            bytes += l.bytes.len();
            bytes <= CHAIN_PAGE_BYTES || bytes == l.bytes.len()
        })
        .count();
    ChainReply { key, links: rest[..take].iter().map(Link::to_value).collect(), more: take < rest.len() }
}

impl Chains {
    async fn append(&self, payload: &[u8]) -> Result<AppendReply, KezError> {
        let link = parse_link(payload)?;
        if now_ms().abs_diff(link.ctime) > TIME_WINDOW_MS {
            return Err(err(ErrorCode::StaleTimestamp, "link ctime is more than 5 minutes from the server's clock"));
        }
        let current = self.load(&link.chain).await?;
        if let Some(reply) = already_stored(&current, &link) {
            // A retry of an append whose answer was lost (PROTOCOL.md §5): same link, same answer.
            return Ok(reply);
        }
        if current.state.seqno == 0 {
            self.require_registered(&link.chain).await?;
        }
        let mut next = current.state.clone();
        next.apply(&link)?;
        match self.store.create(sigchain_kv_key(&link.chain, link.seqno), Bytes::from(link.bytes.clone())).await {
            Ok(_) => {}
            Err(e) if e.kind() == kv::CreateErrorKind::AlreadyExists => {
                self.forget(&link.chain);
                // The same link, stored by a concurrent copy of this request (a client retry
                // racing its first attempt), is a success too.
                // A replica may serve the read before it applied the write (direct get on
                // R3): read "none" again instead of believing it.
                let key = sigchain_kv_key(&link.chain, link.seqno);
                let mut stored = None;
                for _ in 0..20 {
                    stored = self.store.get(&key).await.map_err(|e| unavailable("reading the link", e))?;
                    if stored.is_some() {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                if stored.is_some_and(|b| b[..] == link.bytes[..]) {
                    return Ok(AppendReply { seqno: link.seqno, link_id: link.link_id.clone() });
                }
                return Err(err(
                    ErrorCode::SeqnoConflict,
                    format!("link {} was appended by another request", link.seqno),
                ));
            }
            Err(e) => return Err(unavailable("storing the link", e)),
        }
        let reply = AppendReply { seqno: link.seqno, link_id: link.link_id.clone() };
        let mut links = current.links.clone();
        links.push(link);
        self.remember(Verified { state: next, links });
        Ok(reply)
    }

    async fn require_registered(&self, key: &PublicKey) -> Result<(), KezError> {
        match svc::call(&self.client, &LookupKey { key: *key }, self.settings.call_timeout).await {
            Ok(_) => Ok(()),
            Err(e) if e.code == ErrorCode::KeyNotFound => {
                Err(err(ErrorCode::KeyNotFound, "register a handle for this key before publishing a sigchain"))
            }
            Err(e) => Err(e),
        }
    }

    async fn load_nonempty(&self, key: &PublicKey) -> Result<Arc<Verified>, KezError> {
        let v = self.load(key).await?;
        if v.state.seqno == 0 {
            return Err(err(ErrorCode::ChainNotFound, "this key has no sigchain"));
        }
        Ok(v)
    }

    /// The verified chain of `key`: the cached prefix plus anything newer in KV.
    async fn load(&self, key: &PublicKey) -> Result<Arc<Verified>, KezError> {
        let cached = self.cache.lock().ok().and_then(|c| c.get(key));
        let mut v = cached.map(|c| (*c).clone()).unwrap_or(Verified { state: ChainState::empty(*key), links: vec![] });
        let before = v.state.seqno;
        loop {
            let next = v.state.seqno + 1;
            let Some(bytes) =
                self.store.get(sigchain_kv_key(key, next)).await.map_err(|e| unavailable("reading the chain", e))?
            else {
                break;
            };
            let link = parse_link(&bytes).map_err(|e| {
                tracing::error!(key = %key, seqno = next, "stored link does not verify: {e}");
                err(ErrorCode::Internal, "stored chain is corrupt")
            })?;
            v.state.apply(&link).map_err(|e| {
                tracing::error!(key = %key, seqno = next, "stored link does not extend the chain: {e}");
                err(ErrorCode::Internal, "stored chain is corrupt")
            })?;
            v.links.push(link);
        }
        if v.state.seqno != before || before == 0 {
            self.remember(v.clone());
        }
        Ok(Arc::new(v))
    }

    fn remember(&self, v: Verified) {
        if v.state.seqno == 0 {
            return;
        }
        if let Ok(mut cache) = self.cache.lock() {
            cache.insert(v);
        }
    }

    fn forget(&self, key: &PublicKey) {
        if let Ok(mut cache) = self.cache.lock() {
            cache.remove(key);
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use ed25519_dalek::SigningKey;
    use kv_schemas::sigchain::{Op, build_link};
    use serde_json::json;

    use super::*;

    /// A verified chain of `n` links of about `pad` bytes each.
    fn chain(seed: u8, n: u64, pad: usize) -> Verified {
        let sk = SigningKey::from_bytes(&[seed; 32]);
        let mut v = Verified { state: ChainState::empty(PublicKey::of(&sk)), links: vec![] };
        for i in 1..=n {
            let op = Op::Unsupported { op: "x_future".into(), body: json!({ "pad": "p".repeat(pad) }) };
            let link = parse_link(&build_link(&sk, i, v.state.tail.as_deref(), 1, &op).unwrap()).unwrap();
            v.state.apply(&link).unwrap();
            v.links.push(link);
        }
        v
    }

    #[test]
    fn the_cache_is_bounded_in_bytes_not_only_in_chains() {
        let one = chain(1, 4, 1000).bytes();
        let mut c = ChainCache::new(1000, 10 * one);
        for seed in 1..=30 {
            c.insert(chain(seed, 4, 1000));
            assert!(c.bytes <= 10 * one, "{} bytes after {seed} chains", c.bytes);
            assert_eq!(c.bytes, c.map.values().map(|v| v.bytes()).sum::<usize>());
        }
        // Re-inserting a longer version of a cached chain replaces its bytes.
        let mut c = ChainCache::new(1000, 10 * one);
        c.insert(chain(7, 2, 1000));
        c.insert(chain(7, 4, 1000));
        assert_eq!((c.map.len(), c.bytes), (1, one));
        // A chain over a quarter of the bound is served but not kept.
        c.insert(chain(8, 12, 1000));
        assert!(c.get(&chain(8, 1, 1).state.key).is_none());
        assert_eq!(c.map.len(), 1);
    }

    #[test]
    fn pages_hold_at_most_the_page_budget_and_cover_the_chain() {
        let v = chain(9, 100, 7000);
        let key = v.state.key;
        let mut since = 0;
        let mut seen = 0;
        loop {
            let p = page(&v.links, key, since);
            let bytes: usize = p.links.iter().map(|l| kv_schemas::jcs::canonicalize(l).unwrap().len()).sum();
            assert!(bytes <= CHAIN_PAGE_BYTES, "{bytes}");
            assert!(!p.links.is_empty());
            seen += p.links.len();
            since += p.links.len() as u64;
            if !p.more {
                break;
            }
        }
        assert_eq!(seen, 100);
        assert!(page(&v.links, key, 100).links.is_empty() && !page(&v.links, key, 100).more);
        assert!(page(&v.links, key, u64::MAX).links.is_empty());
    }
}
