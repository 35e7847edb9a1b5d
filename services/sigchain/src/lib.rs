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
use kv_schemas::api::{AppendReply, ChainReply, GetChain, GetChainState, LookupKey};
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
const CACHE_CHAINS: usize = 10_000;

struct Chains {
    client: async_nats::Client,
    settings: Settings,
    store: kv::Store,
    cache: Mutex<HashMap<PublicKey, Arc<Verified>>>,
}

#[derive(Clone)]
struct Verified {
    state: ChainState,
    links: Vec<Link>,
}

/// Creates the bucket if needed and starts serving the sigchain endpoints.
pub async fn start(client: &async_nats::Client, settings: &Settings) -> Result<Service, async_nats::Error> {
    let js = jetstream::new(client.clone());
    let chains = Arc::new(Chains {
        client: client.clone(),
        settings: settings.clone(),
        store: ensure_bucket(&js, &CHAINS, settings.replication).await?,
        cache: Mutex::new(HashMap::new()),
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
            json_reply(&ChainReply { key: q.key, links: v.links.iter().map(Link::to_value).collect() })
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
        let cached = self.cache.lock().ok().and_then(|c| c.get(key).cloned());
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
            if cache.len() >= CACHE_CHAINS {
                cache.clear();
            }
            cache.insert(v.state.key, Arc::new(v));
        }
    }

    fn forget(&self, key: &PublicKey) {
        if let Ok(mut cache) = self.cache.lock() {
            cache.remove(key);
        }
    }
}
