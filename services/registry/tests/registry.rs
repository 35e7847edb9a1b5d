//! The registry on its own against a real nats-server (kez-testkit): first come first served,
//! re-registration, the key claim and its stale-claim takeover, replay, lookups, bad input.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use bytes::Bytes;
use ed25519_dalek::SigningKey;
use kez_service_kit::svc;
use kez_testkit::{ServiceUser, TEST_DOMAIN as DOMAIN, TestStack};
use kv_schemas::api::{LookupHandle, LookupKey, RegisterReply, SignedRegistration, UserRecord};
use kv_schemas::subjects::{BUCKET_HANDLES, BUCKET_KEYS};
use kv_schemas::{ErrorCode, Handle, KezError, PublicKey, now_ms, register};
use serde_json::json;

const T: Duration = Duration::from_secs(5);
/// The registry's stale-claim age (`STALE_CLAIM_MS`), plus margin.
const OLDER_THAN_STALE_MS: u64 = 31_000;

struct Registry {
    stack: TestStack,
    ops: async_nats::Client,
}

async fn registry() -> Registry {
    let stack = TestStack::start("http://kez.test").await.unwrap();
    let stack =
        stack.with(ServiceUser::Registry, |c, s| async move { kez_registry::start(&c, &s).await }).await.unwrap();
    Registry { ops: stack.ops.clone(), stack }
}

fn key(n: u8) -> SigningKey {
    SigningKey::from_bytes(&[n; 32])
}

fn request(sk: &SigningKey, local: &str) -> Vec<u8> {
    register::build(sk, &Handle::new(local, DOMAIN).unwrap(), now_ms(), kv_schemas::random_bytes()).unwrap()
}

impl Registry {
    async fn register(&self, sk: &SigningKey, local: &str) -> Result<RegisterReply, KezError> {
        self.stack.register(sk, local).await
    }

    async fn kv(&self, bucket: &str) -> async_nats::jetstream::kv::Store {
        async_nats::jetstream::new(self.ops.clone()).get_key_value(bucket).await.unwrap()
    }

    async fn handles(&self) -> Vec<String> {
        use futures::TryStreamExt as _;
        let mut keys: Vec<String> = self.kv(BUCKET_HANDLES).await.keys().await.unwrap().try_collect().await.unwrap();
        keys.sort();
        keys
    }

    /// Plants a key claim the way a worker that died between its two creates leaves one.
    async fn plant_claim(&self, sk: &SigningKey, local: &str, at: u64) {
        let value = json!({ "local": local, "at": at }).to_string();
        self.kv(BUCKET_KEYS).await.put(PublicKey::of(sk).hex(), Bytes::from(value)).await.unwrap();
    }
}

#[tokio::test]
async fn first_come_first_served_and_idempotent_for_the_same_key() {
    let r = registry().await;
    let (alice, mallory) = (key(1), key(2));
    let first = r.register(&alice, "alice").await.unwrap();
    assert!(first.created);
    assert_eq!(first.key, PublicKey::of(&alice));
    assert!(!r.register(&alice, "alice").await.unwrap().created, "the same key again changes nothing");
    assert_eq!(r.register(&mallory, "alice").await.unwrap_err().code, ErrorCode::HandleTaken);
    // The loser's key claim was given back: it can register another handle.
    assert!(r.register(&mallory, "mallory").await.unwrap().created);
    assert_eq!(r.handles().await, ["alice", "mallory"]);
    // One key, one handle.
    assert_eq!(r.register(&alice, "alice2").await.unwrap_err().code, ErrorCode::KeyRegistered);
    assert_eq!(r.handles().await, ["alice", "mallory"]);
}

#[tokio::test]
async fn a_registration_request_is_used_once() {
    let r = registry().await;
    let bytes = request(&key(3), "carol");
    svc::call(&r.ops, &SignedRegistration(bytes.clone()), T).await.unwrap();
    let again = svc::call(&r.ops, &SignedRegistration(bytes), T).await.unwrap_err();
    assert_eq!(again.code, ErrorCode::Replayed);
}

#[tokio::test]
async fn a_stale_key_claim_is_taken_over_and_a_fresh_one_is_not() {
    let r = registry().await;
    let (dave, erin) = (key(4), key(5));
    // A claim whose handle never materialised, older than the stale age: taken over.
    r.plant_claim(&dave, "ghost", now_ms() - OLDER_THAN_STALE_MS).await;
    let reply = r.register(&dave, "dave").await.unwrap();
    assert!(reply.created);
    let found: UserRecord = svc::call(&r.ops, &LookupKey { key: PublicKey::of(&dave) }, T).await.unwrap();
    assert_eq!(found.handle.local(), "dave", "the claim now names the new handle");
    assert_eq!(r.handles().await, ["dave"], "the ghost handle was never created");

    // A fresh claim may belong to a registration still in flight: refused.
    r.plant_claim(&erin, "inflight", now_ms()).await;
    assert_eq!(r.register(&erin, "erin").await.unwrap_err().code, ErrorCode::KeyRegistered);
    assert_eq!(r.handles().await, ["dave"]);
    // The in-flight registration itself goes through (the claim is its own).
    assert!(r.register(&erin, "inflight").await.unwrap().created);
}

#[tokio::test]
async fn an_old_claim_whose_handle_exists_is_never_taken_over() {
    let r = registry().await;
    let frank = key(6);
    r.register(&frank, "frank").await.unwrap();
    r.plant_claim(&frank, "frank", now_ms() - OLDER_THAN_STALE_MS).await;
    assert_eq!(r.register(&frank, "frank2").await.unwrap_err().code, ErrorCode::KeyRegistered);
    assert_eq!(r.handles().await, ["frank"]);
}

#[tokio::test]
async fn lookups_by_handle_and_by_key() {
    let r = registry().await;
    let grace = key(7);
    r.register(&grace, "grace").await.unwrap();
    let handle = Handle::new("grace", DOMAIN).unwrap();
    let by_handle = svc::call(&r.ops, &LookupHandle { handle: handle.clone() }, T).await.unwrap();
    assert_eq!((by_handle.handle, by_handle.key), (handle, PublicKey::of(&grace)));
    let by_key = svc::call(&r.ops, &LookupKey { key: PublicKey::of(&grace) }, T).await.unwrap();
    assert_eq!(by_key.handle.local(), "grace");

    let elsewhere = LookupHandle { handle: Handle::new("grace", "example.org").unwrap() };
    assert_eq!(svc::call(&r.ops, &elsewhere, T).await.unwrap_err().code, ErrorCode::HandleNotFound);
    let nobody = LookupHandle { handle: Handle::new("nobody", DOMAIN).unwrap() };
    assert_eq!(svc::call(&r.ops, &nobody, T).await.unwrap_err().code, ErrorCode::HandleNotFound);
    let stranger = LookupKey { key: PublicKey::of(&key(8)) };
    assert_eq!(svc::call(&r.ops, &stranger, T).await.unwrap_err().code, ErrorCode::KeyNotFound);
}

#[tokio::test]
async fn bad_input_gets_a_stable_code_and_stores_nothing() {
    let r = registry().await;
    let raw = |subject: &'static str, body: &'static [u8]| {
        let ops = r.ops.clone();
        async move { svc::request_raw(&ops, subject, Bytes::from_static(body), T).await.unwrap_err().code }
    };
    use kv_schemas::subjects::svc as subj;
    assert_eq!(raw(subj::REGISTRY_REGISTER, b"not json").await, ErrorCode::InvalidJson);
    assert_eq!(raw(subj::REGISTRY_REGISTER, b"{ }").await, ErrorCode::NotCanonical);
    assert_eq!(raw(subj::REGISTRY_LOOKUP_KEY, br#"{"key":"ed25519:00"}"#).await, ErrorCode::InvalidRequest);
    // Requests are strict (PROTOCOL.md §9.2): an unknown key is refused.
    let extra = br#"{"handle":"alice@kez.test","more":1}"#;
    assert_eq!(raw(subj::REGISTRY_LOOKUP_HANDLE, extra).await, ErrorCode::InvalidRequest);
    // A registration for another server's domain.
    let foreign =
        register::build(&key(9), &Handle::new("ivan", "example.org").unwrap(), now_ms(), kv_schemas::random_bytes())
            .unwrap();
    let e = svc::call(&r.ops, &SignedRegistration(foreign), T).await.unwrap_err();
    assert_eq!(e.code, ErrorCode::WrongAudience);
    assert!(r.handles().await.is_empty());
}
