//! The manifest index (`kez-manifest-index`): keeps shared-files manifests
//! (small, signed, content-addressed) so that clients that cannot speak Iroh,
//! such as the browser, can browse them over `/v1`.
//!
//! A manifest is stored under its BLAKE3 hash only when its owner signed it
//! and the owner is a registered key. "By owner" answers the manifest the
//! owner's latest `set_shared_files` sigchain link points at, checked against
//! that pointer (hash, owner, seq) before it is returned.

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
use kv_schemas::subjects::{BUCKET_MANIFESTS, service, svc as subj};
use kv_schemas::{ErrorCode, KezError, PublicKey};

const MANIFESTS: BucketSpec = BucketSpec {
    name: BUCKET_MANIFESTS,
    description: "kez-chat shared-files manifests: BLAKE3 hex -> manifest bytes",
    history: 1,
    max_value_size: MAX_MANIFEST_BYTES as i32,
    max_age: Duration::ZERO,
};

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
        match self.store.create(&m.hash, payload).await {
            Ok(_) => {}
            // Content-addressed: the same hash is the same bytes.
            Err(e) if e.kind() == kv::CreateErrorKind::AlreadyExists => {}
            Err(e) => return Err(unavailable("storing the manifest", e)),
        }
        Ok(ManifestPutReply { hash: m.hash, owner: m.owner, seq: m.seq })
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
        let state = self.call(&GetChainState { key: *key }).await.map_err(|e| {
            if e.code == ErrorCode::ChainNotFound {
                err(ErrorCode::ManifestNotFound, "this key has not published a sigchain")
            } else {
                e
            }
        })?;
        let pointer = state.shared_files.ok_or_else(|| err(ErrorCode::ManifestNotFound, "this key shares no files"))?;
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
