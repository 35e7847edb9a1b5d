//! The manifest index on its own (with the registry and sigchain it asks) against a real
//! nats-server: put, get by hash, get by owner through the owner's sigchain pointer.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use ed25519_dalek::SigningKey;
use kez_service_kit::svc;
use kez_testkit::{ServiceUser, TestStack};
use kv_schemas::api::{AppendLink, ByHash, ManifestByOwner, PutManifest};
use kv_schemas::manifest::{self, manifest_hash};
use kv_schemas::sigchain::{Op, SharedFiles, build_link};
use kv_schemas::{ErrorCode, PublicKey, now_ms};

const T: Duration = Duration::from_secs(5);

struct Env {
    stack: TestStack,
    ops: async_nats::Client,
}

async fn env() -> Env {
    let stack = TestStack::start("http://kez.test").await.unwrap();
    let stack = stack.with(ServiceUser::Registry, |c, s| async move { kez_registry::start(&c, &s).await }).await;
    let stack = stack.unwrap().with(ServiceUser::Sigchain, |c, s| async move { kez_sigchain::start(&c, &s).await });
    let stack = stack.await.unwrap();
    let stack = stack.with(ServiceUser::Manifest, |c, s| async move { kez_manifest_index::start(&c, &s).await });
    let stack = stack.await.unwrap();
    Env { ops: stack.ops.clone(), stack }
}

impl Env {
    async fn register(&self, sk: &SigningKey, local: &str) {
        self.stack.register(sk, local).await.unwrap();
    }
}

fn key(n: u8) -> SigningKey {
    SigningKey::from_bytes(&[n; 32])
}

#[tokio::test]
async fn put_then_get_by_hash_and_by_owner() {
    let e = env().await;
    let alice = key(1);
    e.register(&alice, "alice").await;
    let bytes = manifest::build(&alice, 1, now_ms(), &[]).unwrap();
    let hash = manifest_hash(&bytes);
    let stored = svc::call(&e.ops, &PutManifest(bytes.clone()), T).await.unwrap();
    assert_eq!((stored.hash.as_str(), stored.owner, stored.seq), (hash.as_str(), PublicKey::of(&alice), 1));
    // Content-addressed: the same bytes again are fine.
    svc::call(&e.ops, &PutManifest(bytes.clone()), T).await.unwrap();
    assert_eq!(svc::call(&e.ops, &ByHash { hash: hash.clone() }, T).await.unwrap().0, bytes);

    // By owner only once the owner's chain points at it.
    let owner = ManifestByOwner { key: PublicKey::of(&alice) };
    assert_eq!(svc::call(&e.ops, &owner, T).await.unwrap_err().code, ErrorCode::ManifestNotFound);
    let op = Op::SetSharedFiles(SharedFiles { manifest: hash, manifest_seq: 1, size: bytes.len() as u64 });
    svc::call(&e.ops, &AppendLink(build_link(&alice, 1, None, now_ms(), &op).unwrap()), T).await.unwrap();
    assert_eq!(svc::call(&e.ops, &owner, T).await.unwrap().0, bytes);
}

#[tokio::test]
async fn refusals_store_nothing() {
    let e = env().await;
    let stranger = key(2);
    let bytes = manifest::build(&stranger, 1, now_ms(), &[]).unwrap();
    let hash = manifest_hash(&bytes);
    let code = svc::call(&e.ops, &PutManifest(bytes), T).await.unwrap_err().code;
    assert_eq!(code, ErrorCode::KeyNotFound, "an unregistered owner");
    assert_eq!(svc::call(&e.ops, &ByHash { hash }, T).await.unwrap_err().code, ErrorCode::ManifestNotFound);
    let bad = ByHash { hash: "ZZ".repeat(32) };
    assert_eq!(svc::call(&e.ops, &bad, T).await.unwrap_err().code, ErrorCode::InvalidEncoding);
    let code = svc::call(&e.ops, &PutManifest(b"{ }".to_vec()), T).await.unwrap_err().code;
    assert_eq!(code, ErrorCode::NotCanonical);
    let nobody = ManifestByOwner { key: PublicKey::of(&key(3)) };
    assert_eq!(svc::call(&e.ops, &nobody, T).await.unwrap_err().code, ErrorCode::ManifestNotFound);
}
