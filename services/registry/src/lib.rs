//! The handle registry (`kez-registry`): registers `local@domain` handles for
//! keys, first come first served, and answers lookups by handle and by key.
//!
//! State lives in two KV buckets: `kez_handles` (local part → [`UserRecord`])
//! and `kez_keys` (key hex → claim of a local part), plus `kez_reg_nonces` for
//! replay protection. Every write is a KV `create` or a revision
//! compare-and-set, so any number of workers can serve the same queue group
//! without two of them ever granting one handle twice.

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{self, kv};
use async_nats::service::Service;
use bytes::Bytes;
use kez_service_kit::kv::{BucketSpec, ensure_bucket, unavailable};
use kez_service_kit::settings::Settings;
use kez_service_kit::svc::{self, json_reply, parse_json};
use kv_schemas::api::{LookupHandle, LookupKey, RegisterReply, UserRecord};
use kv_schemas::error::err;
use kv_schemas::subjects::{BUCKET_HANDLES, BUCKET_KEYS, BUCKET_REG_NONCES, service, svc as subj};
use kv_schemas::{ErrorCode, Handle, KezError, PublicKey, now_ms, register};
use serde::{Deserialize, Serialize};

/// A key claim older than this whose handle never materialised is stale
/// (a worker died between the two creates) and may be taken over.
const STALE_CLAIM_MS: u64 = 30_000;

/// Reads of a key that a `create` reported as existing, before giving up (see
/// `Registry::existing_record`).
const STALE_READ_RETRIES: usize = 20;
const STALE_READ_PAUSE: Duration = Duration::from_millis(50);

const HANDLES: BucketSpec = BucketSpec {
    name: BUCKET_HANDLES,
    description: "kez-chat handles: local part -> registration record",
    history: 5,
    max_value_size: 4096,
    max_age: Duration::ZERO,
};
const KEYS: BucketSpec = BucketSpec {
    name: BUCKET_KEYS,
    description: "kez-chat keys: key hex -> claimed handle (one per key)",
    history: 5,
    max_value_size: 1024,
    max_age: Duration::ZERO,
};
const NONCES: BucketSpec = BucketSpec {
    name: BUCKET_REG_NONCES,
    description: "kez-chat registration nonces seen in the last 10 minutes",
    history: 1,
    max_value_size: 64,
    max_age: Duration::from_secs(600),
};

/// The value under a key in `kez_keys`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
struct KeyClaim {
    local: String,
    at: u64,
}

struct Registry {
    settings: Settings,
    handles: kv::Store,
    keys: kv::Store,
    nonces: kv::Store,
}

/// Creates the buckets if needed and starts serving the registry endpoints.
pub async fn start(client: &async_nats::Client, settings: &Settings) -> Result<Service, async_nats::Error> {
    let js = jetstream::new(client.clone());
    let registry = Arc::new(Registry {
        settings: settings.clone(),
        handles: ensure_bucket(&js, &HANDLES, settings.replication).await?,
        keys: ensure_bucket(&js, &KEYS, settings.replication).await?,
        nonces: ensure_bucket(&js, &NONCES, settings.replication).await?,
    });
    let service =
        svc::start(client, service::REGISTRY, "Handle registry: register, lookup by handle, lookup by key").await?;
    let r = registry.clone();
    svc::serve(&service, "register", subj::REGISTRY_REGISTER, move |p| {
        let r = r.clone();
        async move { r.register(p).await }
    })
    .await?;
    let r = registry.clone();
    svc::serve(&service, "lookup_handle", subj::REGISTRY_LOOKUP_HANDLE, move |p| {
        let r = r.clone();
        async move {
            let q: LookupHandle = parse_json(&p)?;
            json_reply(&r.lookup_handle(&q.handle).await?)
        }
    })
    .await?;
    let r = registry;
    svc::serve(&service, "lookup_key", subj::REGISTRY_LOOKUP_KEY, move |p| {
        let r = r.clone();
        async move {
            let q: LookupKey = parse_json(&p)?;
            json_reply(&r.lookup_key(&q.key).await?)
        }
    })
    .await?;
    svc::settle(client).await?;
    Ok(service)
}

impl Registry {
    async fn register(&self, payload: Bytes) -> Result<Bytes, KezError> {
        let reg = register::verify(&payload, &self.settings.domain, now_ms())?;
        let nonce_key = format!("{}.{}", reg.key.hex(), reg.nonce);
        match self.nonces.create(&nonce_key, Bytes::from_static(b"1")).await {
            Ok(_) => {}
            Err(e) if e.kind() == kv::CreateErrorKind::AlreadyExists => {
                return Err(err(ErrorCode::Replayed, "this registration request was already used"));
            }
            Err(e) => return Err(unavailable("recording the registration nonce", e)),
        }
        let created = self.claim(&reg.handle, &reg.key).await?;
        tracing::info!(handle = %reg.handle, created, "registration");
        json_reply(&RegisterReply { handle: reg.handle, key: reg.key, created })
    }

    /// Claims `handle` for `key`. Returns whether anything new was stored.
    async fn claim(&self, handle: &Handle, key: &PublicKey) -> Result<bool, KezError> {
        let claim_rev = self.claim_key(handle, key).await?;
        let record = UserRecord { handle: handle.clone(), key: *key, registered_at: now_ms() };
        let value = svc::to_json(&record, "the handle record")?;
        match self.handles.create(handle.local(), value).await {
            Ok(_) => Ok(true),
            Err(e) if e.kind() == kv::CreateErrorKind::AlreadyExists => {
                let existing = self.existing_record(handle.local()).await?;
                match existing {
                    Some(r) if r.key == *key => Ok(false),
                    _ => {
                        // Give the key back so it can register another handle.
                        let _ = self.keys.delete_expect_revision(key.hex(), Some(claim_rev)).await;
                        Err(err(ErrorCode::HandleTaken, format!("{handle} is already registered")))
                    }
                }
            }
            Err(e) => Err(unavailable("storing the handle", e)),
        }
    }

    /// Claims the key for `handle` in `kez_keys`; returns the claim revision.
    async fn claim_key(&self, handle: &Handle, key: &PublicKey) -> Result<u64, KezError> {
        let claim = KeyClaim { local: handle.local().to_string(), at: now_ms() };
        let value = svc::to_json(&claim, "the key claim")?;
        for _ in 0..3 {
            match self.keys.create(key.hex(), value.clone()).await {
                Ok(rev) => return Ok(rev),
                Err(e) if e.kind() == kv::CreateErrorKind::AlreadyExists => {}
                Err(e) => return Err(unavailable("claiming the key", e)),
            }
            let Some(entry) = self.keys.entry(key.hex()).await.map_err(|e| unavailable("reading the key claim", e))?
            else {
                continue;
            };
            let existing: KeyClaim = serde_json::from_slice(&entry.value)
                .map_err(|_| err(ErrorCode::Internal, "corrupt key claim record"))?;
            if existing.local == handle.local() {
                return Ok(entry.revision);
            }
            let owns_it = matches!(self.record(&existing.local).await?, Some(r) if r.key == *key);
            if owns_it || now_ms().saturating_sub(existing.at) < STALE_CLAIM_MS {
                return Err(err(
                    ErrorCode::KeyRegistered,
                    format!("this key already registered {}@{}", existing.local, self.settings.domain),
                ));
            }
            match self.keys.update(key.hex(), value.clone(), entry.revision).await {
                Ok(rev) => return Ok(rev),
                Err(e) if e.kind() == kv::UpdateErrorKind::WrongLastRevision => continue,
                Err(e) => return Err(unavailable("claiming the key", e)),
            }
        }
        Err(err(ErrorCode::Unavailable, "the key claim is contended; try again"))
    }

    /// The record of a handle a `create` just found taken. KV reads may be served by a
    /// replica that has not applied the write yet (direct get on R3), so "none" is read again
    /// rather than believed: taking it for another key's handle would give our key claim
    /// back and leave our own handle without its key record.
    async fn existing_record(&self, local: &str) -> Result<Option<UserRecord>, KezError> {
        for _ in 0..STALE_READ_RETRIES {
            if let Some(r) = self.record(local).await? {
                return Ok(Some(r));
            }
            tokio::time::sleep(STALE_READ_PAUSE).await;
        }
        Err(err(ErrorCode::Unavailable, "the handle record is not readable yet; try again"))
    }

    async fn record(&self, local: &str) -> Result<Option<UserRecord>, KezError> {
        let Some(bytes) = self.handles.get(local).await.map_err(|e| unavailable("reading the handle", e))? else {
            return Ok(None);
        };
        serde_json::from_slice(&bytes).map(Some).map_err(|_| err(ErrorCode::Internal, "corrupt handle record"))
    }

    async fn lookup_handle(&self, handle: &Handle) -> Result<UserRecord, KezError> {
        if handle.domain() != self.settings.domain {
            return Err(err(ErrorCode::HandleNotFound, format!("{handle} is not a handle of this server")));
        }
        self.record(handle.local())
            .await?
            .ok_or_else(|| err(ErrorCode::HandleNotFound, format!("{handle} is not registered")))
    }

    async fn lookup_key(&self, key: &PublicKey) -> Result<UserRecord, KezError> {
        let not_found = || err(ErrorCode::KeyNotFound, "no handle is registered for this key");
        let Some(bytes) = self.keys.get(key.hex()).await.map_err(|e| unavailable("reading the key", e))? else {
            return Err(not_found());
        };
        let claim: KeyClaim =
            serde_json::from_slice(&bytes).map_err(|_| err(ErrorCode::Internal, "corrupt key claim record"))?;
        match self.record(&claim.local).await? {
            Some(r) if r.key == *key => Ok(r),
            _ => Err(not_found()),
        }
    }
}
