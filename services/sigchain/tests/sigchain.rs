//! The sigchain service on its own (with the registry it asks) against a real nats-server:
//! append, get, state, and every refusal leaving the chain as it was.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use ed25519_dalek::SigningKey;
use kez_service_kit::svc;
use kez_testkit::{ServiceUser, TestStack};
use kv_schemas::api::{AppendLink, GetChain, GetChainState};
use kv_schemas::sigchain::{Endpoint, Op, build_link};
use kv_schemas::{ErrorCode, KezError, PublicKey, TIME_WINDOW_MS, now_ms};

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
    Env { ops: stack.ops.clone(), stack }
}

impl Env {
    async fn register(&self, sk: &SigningKey, local: &str) {
        self.stack.register(sk, local).await.unwrap();
    }

    async fn append(&self, link: Vec<u8>) -> Result<kv_schemas::api::AppendReply, KezError> {
        svc::call(&self.ops, &AppendLink(link), T).await
    }

    async fn seqno(&self, sk: &SigningKey) -> u64 {
        match svc::call(&self.ops, &GetChainState { key: PublicKey::of(sk) }, T).await {
            Ok(state) => state.seqno,
            Err(e) if e.code == ErrorCode::ChainNotFound => 0,
            Err(e) => panic!("{e}"),
        }
    }
}

fn key(n: u8) -> SigningKey {
    SigningKey::from_bytes(&[n; 32])
}

fn endpoint_op(n: u8) -> Op {
    Op::AddEndpoint(Endpoint::iroh_wave1(&PublicKey::of(&key(100 + n))))
}

#[tokio::test]
async fn appends_extend_the_chain_and_reads_return_it() {
    let e = env().await;
    let alice = key(1);
    e.register(&alice, "alice").await;
    let one = e.append(build_link(&alice, 1, None, now_ms(), &endpoint_op(1)).unwrap()).await.unwrap();
    assert_eq!(one.seqno, 1);
    let two = build_link(&alice, 2, Some(&one.link_id), now_ms(), &endpoint_op(2)).unwrap();
    assert_eq!(e.append(two).await.unwrap().seqno, 2);

    let chain = svc::call(&e.ops, &GetChain { key: PublicKey::of(&alice), since: 0 }, T).await.unwrap();
    assert_eq!(chain.links.len(), 2);
    let (state, _) = kv_schemas::sigchain::verify_chain(&PublicKey::of(&alice), &chain.links).unwrap();
    let served = svc::call(&e.ops, &GetChainState { key: PublicKey::of(&alice) }, T).await.unwrap();
    assert_eq!(served.seqno, state.seqno);
    assert_eq!(served.tail, state.tail);
    assert_eq!(served.endpoints.len(), 2, "the state the client derives is the state served");
}

#[tokio::test]
async fn refusals_leave_the_chain_unchanged() {
    let e = env().await;
    let (bob, stranger) = (key(2), key(3));
    // An unregistered key cannot start a chain.
    let code = e.append(build_link(&stranger, 1, None, now_ms(), &endpoint_op(3)).unwrap()).await.unwrap_err().code;
    assert_eq!(code, ErrorCode::KeyNotFound);
    assert_eq!(e.seqno(&stranger).await, 0);

    e.register(&bob, "bob").await;
    let first = e.append(build_link(&bob, 1, None, now_ms(), &endpoint_op(1)).unwrap()).await.unwrap();
    // Another link 1 (a fork attempt) and a gap are refused.
    let fork = build_link(&bob, 1, None, now_ms(), &endpoint_op(2)).unwrap();
    assert_eq!(e.append(fork).await.unwrap_err().code, ErrorCode::SeqnoConflict);
    let gap = build_link(&bob, 3, Some(&first.link_id), now_ms(), &endpoint_op(2)).unwrap();
    assert_eq!(e.append(gap).await.unwrap_err().code, ErrorCode::SeqnoConflict);
    // A link whose ctime is outside the server's window.
    let old = build_link(&bob, 2, Some(&first.link_id), now_ms() - 2 * TIME_WINDOW_MS, &endpoint_op(2)).unwrap();
    assert_eq!(e.append(old).await.unwrap_err().code, ErrorCode::StaleTimestamp);
    // Bytes that are not a canonical link.
    let code = svc::call(&e.ops, &AppendLink(b"{ }".to_vec()), T).await.unwrap_err().code;
    assert_eq!(code, ErrorCode::NotCanonical);
    assert_eq!(e.seqno(&bob).await, 1);
}

#[tokio::test]
async fn a_key_without_a_chain_is_not_found() {
    let e = env().await;
    let carol = key(4);
    e.register(&carol, "carol").await;
    let code = svc::call(&e.ops, &GetChain { key: PublicKey::of(&carol), since: 0 }, T).await.unwrap_err().code;
    assert_eq!(code, ErrorCode::ChainNotFound);
    let code = svc::call(&e.ops, &GetChainState { key: PublicKey::of(&carol) }, T).await.unwrap_err().code;
    assert_eq!(code, ErrorCode::ChainNotFound);
}
