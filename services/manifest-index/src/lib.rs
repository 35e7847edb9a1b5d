//! The manifest index (`kez-manifest-index`): keeps shared-files manifests
//! (small, signed, content-addressed) so that clients that cannot speak Iroh,
//! such as the browser, can browse them over `/v1`.
//!
//! A manifest is stored under its BLAKE3 hash only when its owner signed it
//! and the owner is a registered key. "By owner" answers the manifest the
//! owner's latest `set_shared_files` sigchain link points at, checked against
//! that pointer (hash, owner, seq) before it is returned.
//!
//! Storage is bounded per owner (PROTOCOL.md §9.1): the index keeps the manifest the
//! owner's chain points at and at most [`MAX_PENDING`] newer ones (uploaded, not yet
//! pointed at: a client uploads before it appends the link). Everything else of that
//! owner is purged when the owner uploads again; a manifest whose `seq` is not above
//! the chain's `manifest_seq` can never be pointed at and is refused. The owner's
//! list lives at `owner.<key hex>` in the same bucket (never a 64-hex key, so never
//! served as a manifest), updated with compare-and-set.

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{self, kv};
use async_nats::service::Service;
use bytes::Bytes;
use kez_service_kit::kv::{BucketSpec, ensure_bucket, unavailable};
use kez_service_kit::settings::Settings;
use kez_service_kit::svc::{self, json_reply, parse_json};
use kv_schemas::api::{ByHash, GetChainState, LookupKey, ManifestByOwner, ManifestPutReply, ServiceRequest};
use kv_schemas::encoding::is_hash;
use kv_schemas::error::err;
use kv_schemas::manifest::{self, MAX_MANIFEST_BYTES};
use kv_schemas::sigchain::SharedFiles;
use kv_schemas::subjects::{BUCKET_MANIFESTS, service, svc as subj};
use kv_schemas::{ErrorCode, KezError, PublicKey};

const MANIFESTS: BucketSpec = BucketSpec {
    name: BUCKET_MANIFESTS,
    description: "kez-chat shared-files manifests: BLAKE3 hex -> manifest bytes",
    history: 1,
    max_value_size: MAX_MANIFEST_BYTES as i32,
    max_age: Duration::ZERO,
};

/// Manifests of one owner kept beyond the one its chain points at.
pub const MAX_PENDING: usize = 4;

/// One manifest of an owner's list.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
struct Kept {
    hash: String,
    seq: u64,
}

fn owner_list_key(owner: &PublicKey) -> String {
    format!("owner.{}", owner.hex())
}

/// Splits an owner's list into what stays and what goes: the manifest the chain
/// points at stays, and the [`MAX_PENDING`] newest with a seq above the pointer's.
fn keep_and_drop(list: Vec<Kept>, pointer: Option<&SharedFiles>) -> (Vec<Kept>, Vec<Kept>) {
    let (current, pointed_seq) = pointer.map_or((None, 0), |p| (Some(p.manifest.as_str()), p.manifest_seq));
    let (mut keep, mut drop): (Vec<Kept>, Vec<Kept>) = (vec![], vec![]);
    let mut pending: Vec<Kept> = vec![];
    for k in list {
        if Some(k.hash.as_str()) == current {
            keep.push(k);
        } else if k.seq > pointed_seq {
            pending.push(k);
        } else {
            drop.push(k);
        }
    }
    pending.sort_by_key(|k| std::cmp::Reverse(k.seq));
    if pending.len() > MAX_PENDING {
        drop.extend(pending.split_off(MAX_PENDING));
    }
    keep.extend(pending);
    (keep, drop)
}

struct Index {
    client: async_nats::Client,
    settings: Settings,
    store: kv::Store,
}

/// Creates the bucket if needed and starts serving the manifest endpoints.
pub async fn start(client: &async_nats::Client, settings: &Settings) -> Result<Service, async_nats::Error> {
    let js = jetstream::new(client.clone());
    let index = Arc::new(Index {
        client: client.clone(),
        settings: settings.clone(),
        store: ensure_bucket(&js, &MANIFESTS, settings.replication).await?,
    });
    let service =
        svc::start(client, service::MANIFEST, "Shared-files manifests: put, get by hash, get by owner").await?;
    let i = index.clone();
    svc::serve(&service, "put", subj::MANIFEST_PUT, move |p| {
        let i = i.clone();
        async move { json_reply(&i.put(p).await?) }
    })
    .await?;
    let i = index.clone();
    svc::serve(&service, "get", subj::MANIFEST_GET, move |p| {
        let i = i.clone();
        async move {
            let q: ByHash = parse_json(&p)?;
            i.get(&q.hash).await
        }
    })
    .await?;
    let i = index;
    svc::serve(&service, "by_owner", subj::MANIFEST_BY_OWNER, move |p| {
        let i = i.clone();
        async move {
            let q: ManifestByOwner = parse_json(&p)?;
            i.by_owner(&q.key).await
        }
    })
    .await?;
    svc::settle(client).await?;
    Ok(service)
}

impl Index {
    async fn put(&self, payload: Bytes) -> Result<ManifestPutReply, KezError> {
        let m = manifest::parse(&payload)?;
        self.call(&LookupKey { key: m.owner }).await.map_err(|e| {
            if e.code == ErrorCode::KeyNotFound {
                err(ErrorCode::KeyNotFound, "the manifest owner is not a registered key")
            } else {
                e
            }
        })?;
        let pointer = self.pointer(&m.owner).await?;
        if let Some(p) = &pointer
            && m.seq <= p.manifest_seq
            && m.hash != p.manifest
        {
            return Err(err(
                ErrorCode::InvalidManifest,
                format!("seq {} is not above the sigchain's manifest_seq {}", m.seq, p.manifest_seq),
            ));
        }
        match self.store.create(&m.hash, payload).await {
            Ok(_) => {}
            // Content-addressed: the same hash is the same bytes.
            Err(e) if e.kind() == kv::CreateErrorKind::AlreadyExists => {}
            Err(e) => return Err(unavailable("storing the manifest", e)),
        }
        self.keep(&m.owner, Kept { hash: m.hash.clone(), seq: m.seq }, pointer.as_ref()).await?;
        Ok(ManifestPutReply { hash: m.hash, owner: m.owner, seq: m.seq })
    }

    /// The owner's current `set_shared_files`, if any.
    async fn pointer(&self, owner: &PublicKey) -> Result<Option<SharedFiles>, KezError> {
        match self.call(&GetChainState { key: *owner }).await {
            Ok(state) => Ok(state.shared_files),
            Err(e) if e.code == ErrorCode::ChainNotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Adds `new` to the owner's list and purges what the list no longer keeps.
    async fn keep(&self, owner: &PublicKey, new: Kept, pointer: Option<&SharedFiles>) -> Result<(), KezError> {
        let key = owner_list_key(owner);
        for _ in 0..8 {
            let entry = self.store.entry(key.clone()).await.map_err(|e| unavailable("reading the owner list", e))?;
            let mut list: Vec<Kept> = match &entry {
                Some(e) => serde_json::from_slice(&e.value)
                    .map_err(|_| err(ErrorCode::Internal, "the owner's manifest list could not be read"))?,
                None => vec![],
            };
            if !list.contains(&new) {
                list.push(new.clone());
            }
            let (keep, drop) = keep_and_drop(list, pointer);
            let value = svc::to_json(&keep, "the owner's manifest list")?;
            let written = match &entry {
                Some(e) => self
                    .store
                    .update(&key, value, e.revision)
                    .await
                    .map_err(|e| (e.kind() == kv::UpdateErrorKind::WrongLastRevision, e.to_string())),
                None => self
                    .store
                    .create(&key, value)
                    .await
                    .map_err(|e| (e.kind() == kv::CreateErrorKind::AlreadyExists, e.to_string())),
            };
            match written {
                Ok(_) => {}
                Err((true, _)) => continue, // another upload of this owner won the race: redo on its list
                Err((false, e)) => return Err(unavailable("writing the owner list", e)),
            }
            for d in drop {
                if let Err(e) = self.store.purge(&d.hash).await {
                    tracing::warn!(owner = %owner, hash = %d.hash, "could not purge a dropped manifest: {e}");
                }
            }
            return Ok(());
        }
        Err(err(ErrorCode::Unavailable, "too many concurrent manifest uploads for this owner"))
    }

    async fn get(&self, hash: &str) -> Result<Bytes, KezError> {
        if !is_hash(hash) {
            return Err(err(ErrorCode::InvalidEncoding, "hash must be 64 lowercase hex characters"));
        }
        self.store
            .get(hash)
            .await
            .map_err(|e| unavailable("reading the manifest", e))?
            .ok_or_else(|| err(ErrorCode::ManifestNotFound, "no manifest with this hash"))
    }

    async fn by_owner(&self, key: &PublicKey) -> Result<Bytes, KezError> {
        let pointer =
            self.pointer(key).await?.ok_or_else(|| err(ErrorCode::ManifestNotFound, "this key shares no files"))?;
        let bytes = self.get(&pointer.manifest).await?;
        manifest::verify_against(&bytes, key, &pointer).map_err(|e| {
            tracing::error!(owner = %key, "stored manifest does not match its pointer: {e}");
            err(ErrorCode::Internal, "stored manifest does not match the sigchain")
        })?;
        Ok(bytes)
    }

    async fn call<R: ServiceRequest>(&self, request: &R) -> Result<R::Reply, KezError> {
        svc::call(&self.client, request, self.settings.call_timeout).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn k(seq: u64) -> Kept {
        Kept { hash: format!("{seq:064x}"), seq }
    }

    fn pointer(seq: u64) -> SharedFiles {
        SharedFiles { manifest: k(seq).hash, manifest_seq: seq, size: 1 }
    }

    #[test]
    fn an_owner_keeps_the_pointed_manifest_and_a_few_newer() {
        // Nothing pointed at yet: the newest MAX_PENDING stay.
        let (keep, drop) = keep_and_drop((1..=10).map(k).collect(), None);
        assert_eq!(keep.iter().map(|x| x.seq).collect::<Vec<_>>(), [10, 9, 8, 7]);
        assert_eq!(drop.len(), 6);
        // The chain points at 5: 5 stays, anything older goes, newer up to the quota stay.
        let (keep, drop) = keep_and_drop((1..=10).map(k).collect(), Some(&pointer(5)));
        assert_eq!(keep.iter().map(|x| x.seq).collect::<Vec<_>>(), [5, 10, 9, 8, 7]);
        assert_eq!(drop.iter().map(|x| x.seq).collect::<Vec<_>>(), [1, 2, 3, 4, 6]);
    }
}
