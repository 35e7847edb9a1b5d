//! Relay cost against raw JetStream: the same number of stored messages, same concurrency, same
//! server, once through `kez.u.<me>.send.<to>` (a user in USERS → inbox service → PubAck) and
//! once as plain JetStream publishes from APP awaiting the PubAck. Prints the ratio; asserts
//! nothing about speed (PROTOCOL targets are measured by the load test).
//!
//! `cargo test -p kez-inbox --release --test bench -- --ignored --nocapture`
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Instant;

use bytes::Bytes;
use common::*;
use futures::StreamExt as _;
use kez_inbox::RateLimit;

const N: usize = 2_000;
const IN_FLIGHT: usize = 32;

#[tokio::test]
#[ignore = "benchmark; run explicitly"]
async fn relay_vs_raw_jetstream_publish() {
    let env = Env::start_with(|c| {
        c.rate = RateLimit { burst: 1_000_000, per_second: 1_000_000.0 };
        c.stream.max_msgs_per_sender = 100_000;
    })
    .await;
    let (alice, bob) = (env.registered_user().await, env.registered_user().await);
    let a = env.connect(&alice, None).await;
    let envelope = alice.seal_to(&bob, "benchmark message of a typical length, about one line of chat");
    a.send(&bob.key, envelope.clone()).await.unwrap(); // warm the registry cache

    let ops = env.server.connect_ops().await.unwrap();
    let raw_subject = format!("kez.inbox.{}.{}", bob.hex(), "0".repeat(32));
    let raw = time(N, |_| {
        let ops = ops.clone();
        let (subject, payload) = (raw_subject.clone(), envelope.clone());
        async move {
            let reply = ops.request(subject, payload).await.unwrap();
            assert!(!reply.payload.windows(7).any(|w| w == b"\"error\""));
        }
    })
    .await;
    let relay = time(N, |_| {
        let (a, to, payload) = (&a, bob.key, envelope.clone());
        async move {
            a.send(&to, payload).await.unwrap();
        }
    })
    .await;
    println!(
        "{N} messages, {IN_FLIGHT} in flight: raw JetStream {:.0}/s, relay {:.0}/s, ratio {:.2}",
        N as f64 / raw,
        N as f64 / relay,
        raw / relay
    );
    let _: Bytes = envelope;
}

async fn time<F, Fut>(n: usize, f: F) -> f64
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let start = Instant::now();
    futures::stream::iter(0..n).map(f).buffer_unordered(IN_FLIGHT).collect::<Vec<()>>().await;
    start.elapsed().as_secs_f64()
}
