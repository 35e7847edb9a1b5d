//! WebFinger on its own (with the registry it asks) against a real nats-server.
#![allow(clippy::unwrap_used)]

use ed25519_dalek::SigningKey;
use kez_testkit::{ServiceUser, TestStack};
use kez_webfinger::{PROP_PRIMARY, REL_SIGCHAIN};
use kv_schemas::api::WebfingerQuery;
use kv_schemas::{ErrorCode, KezError, PublicKey};
use serde_json::Value;

struct Env {
    stack: TestStack,
}

async fn env() -> Env {
    let stack = TestStack::start("https://kez.test").await.unwrap();
    let stack = stack.with(ServiceUser::Registry, |c, s| async move { kez_registry::start(&c, &s).await }).await;
    let stack = stack.unwrap().with(ServiceUser::Webfinger, |c, s| async move { kez_webfinger::start(&c, &s).await });
    Env { stack: stack.await.unwrap() }
}

impl Env {
    async fn resolve(&self, resource: &str, rel: &[&str]) -> Result<Value, KezError> {
        let q = WebfingerQuery { resource: resource.into(), rel: rel.iter().map(|r| r.to_string()).collect() };
        self.stack.call(&q).await
    }
}

#[tokio::test]
async fn a_registered_handle_resolves_to_its_key_profile_and_sigchain() {
    let e = env().await;
    let alice = SigningKey::from_bytes(&[1; 32]);
    let pk = PublicKey::of(&alice);
    e.stack.register(&alice, "alice").await.unwrap();

    let jrd = e.resolve("acct:alice@kez.test", &[]).await.unwrap();
    assert_eq!(jrd["subject"], "acct:alice@kez.test");
    assert_eq!(jrd["properties"][PROP_PRIMARY], pk.to_string());
    let rels: Vec<&str> = jrd["links"].as_array().unwrap().iter().map(|l| l["rel"].as_str().unwrap()).collect();
    assert_eq!(rels, ["self", REL_SIGCHAIN]);
    let sigchain = &jrd["links"][1]["href"];
    assert_eq!(sigchain, &format!("https://kez.test/v1/sigchains/ed25519/{}", pk.hex()));
    assert_eq!(jrd["links"][0]["href"], "https://kez.test/v1/u/alice");

    // `rel` filters the links (RFC 7033 §4.3), not the rest.
    let only = e.resolve("acct:alice@kez.test", &[REL_SIGCHAIN]).await.unwrap();
    assert_eq!(only["links"].as_array().unwrap().len(), 1);
    assert_eq!(only["links"][0]["rel"], REL_SIGCHAIN);
    assert_eq!(only["properties"][PROP_PRIMARY], pk.to_string());
}

#[tokio::test]
async fn unknown_foreign_and_malformed_resources_are_refused() {
    let e = env().await;
    assert_eq!(e.resolve("acct:nobody@kez.test", &[]).await.unwrap_err().code, ErrorCode::HandleNotFound);
    assert_eq!(e.resolve("acct:alice@example.org", &[]).await.unwrap_err().code, ErrorCode::HandleNotFound);
    assert_eq!(e.resolve("mailto:alice@kez.test", &[]).await.unwrap_err().code, ErrorCode::InvalidRequest);
    assert_eq!(e.resolve("acct:Alice@kez.test", &[]).await.unwrap_err().code, ErrorCode::InvalidRequest);
}
