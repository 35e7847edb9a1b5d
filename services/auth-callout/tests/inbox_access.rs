//! Admitted users against a real nats-server: they reach their own inbox over NATS and WebSocket,
//! and every attempt outside PROTOCOL.md §9.1 is refused by the server with a permissions error.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use async_nats::jetstream::{self, consumer};
use common::{Env, User, Violation};
use futures::StreamExt as _;
use kv_schemas::subjects::{INBOX_STREAM, inbox_consumer, inbox_subject};

/// JetStream context for end users: short timeout, because a denied API request is never answered.
fn user_js(client: &async_nats::Client) -> jetstream::Context {
    jetstream::ContextBuilder::new().timeout(Duration::from_secs(1)).build(client.clone())
}

fn own_consumer(user: &User) -> consumer::pull::Config {
    consumer::pull::Config {
        durable_name: Some(inbox_consumer(&user.key)),
        filter_subject: inbox_subject(&user.key),
        ack_policy: consumer::AckPolicy::Explicit,
        ..Default::default()
    }
}

async fn fetch_one(c: &consumer::PullConsumer) -> jetstream::Message {
    let mut batch = c.fetch().max_messages(1).expires(Duration::from_secs(2)).messages().await.unwrap();
    batch.next().await.expect("a message").unwrap()
}

#[tokio::test]
async fn registered_user_gets_offline_mail_over_nats_and_websocket() {
    let env = Env::start().await;
    let alice = env.registered_user().await;
    let bob = env.registered_user().await;

    // Bob writes to Alice while she has never connected (no consumer exists yet).
    let (bob_conn, bob_events) = bob.connect(&env.server.client_url()).await;
    let bob_js = user_js(&bob_conn);
    for text in ["first", "second"] {
        let ack = bob_js.publish(inbox_subject(&alice.key), text.into()).await.unwrap().await.unwrap();
        assert_eq!(ack.stream, INBOX_STREAM);
    }
    drop(bob_conn);

    // Alice, native NATS: creates her durable with the filtered create subject, reads, acks.
    let (alice_conn, alice_events) = alice.connect(&env.server.client_url()).await;
    let consumer = user_js(&alice_conn).create_consumer_on_stream(own_consumer(&alice), INBOX_STREAM).await.unwrap();
    let msg = fetch_one(&consumer).await;
    assert_eq!(msg.payload, "first");
    assert_eq!(msg.subject.as_str(), inbox_subject(&alice.key));
    msg.double_ack().await.unwrap();
    // The server shows her as the JWT's name, bound to account APP.
    let (_, connz) = env.server.monitor_get("/connz?auth=1").await.unwrap();
    assert!(connz.contains(&format!("kez:{}", &alice.hex()[..16])), "{connz}");
    alice_conn.drain().await.unwrap();

    // Alice again, over WebSocket: binds to the same durable (CONSUMER.INFO) and gets the rest.
    let (ws_conn, ws_events) = alice.connect(&env.server.ws_url()).await;
    let consumer: consumer::PullConsumer =
        user_js(&ws_conn).get_consumer_from_stream(inbox_consumer(&alice.key), INBOX_STREAM).await.unwrap();
    let msg = fetch_one(&consumer).await;
    assert_eq!(msg.payload, "second");
    msg.double_ack().await.unwrap();
    assert_eq!(consumer.cached_info().config.filter_subject, inbox_subject(&alice.key));

    // Live delivery on the own inbox subject works too.
    let mut live = ws_conn.subscribe(inbox_subject(&alice.key)).await.unwrap();
    ws_conn.flush().await.unwrap();
    let (bob_conn, _) = bob.connect(&env.server.client_url()).await;
    user_js(&bob_conn).publish(inbox_subject(&alice.key), "live".into()).await.unwrap().await.unwrap();
    let m = tokio::time::timeout(Duration::from_secs(2), live.next()).await.unwrap().unwrap();
    assert_eq!(m.payload, "live");

    for events in [&bob_events, &alice_events, &ws_events] {
        assert!(events.violations().is_empty(), "{:?}", events.all());
    }
    // bob ×2, alice ×2 (NATS, then WebSocket).
    let stats = env.callout.stats();
    assert_eq!((stats.accepted, stats.rejected), (4, 0), "{stats:?}");
}

#[tokio::test]
async fn subscriptions_outside_the_own_inbox_are_denied() {
    let env = Env::start().await;
    let alice = env.registered_user().await;
    let bob = env.registered_user().await;
    let (conn, events) = alice.connect(&env.server.client_url()).await;

    let mut denied = Vec::new();
    for subject in [
        inbox_subject(&bob.key),
        ">".to_owned(),
        "kez.>".to_owned(),
        "_INBOX.>".to_owned(),
        format!("_INBOX.{}.>", bob.hex()),
    ] {
        denied.push(conn.subscribe(subject.clone()).await.unwrap());
        events.expect_violation(Violation::Subscription, &subject).await;
    }
    // Control: her own inbox is fine.
    let mut own = conn.subscribe(inbox_subject(&alice.key)).await.unwrap();
    conn.flush().await.unwrap();

    // Mail to Bob (core publish by the ops user) reaches none of the denied subscriptions, while
    // mail to Alice reaches hers.
    let ops = env.server.connect_ops().await.unwrap();
    ops.publish(inbox_subject(&bob.key), "for bob".into()).await.unwrap();
    ops.publish(inbox_subject(&alice.key), "for alice".into()).await.unwrap();
    ops.flush().await.unwrap();
    let m = tokio::time::timeout(Duration::from_secs(2), own.next()).await.unwrap().unwrap();
    assert_eq!(m.payload, "for alice");
    for sub in &mut denied {
        assert!(tokio::time::timeout(Duration::from_millis(200), sub.next()).await.is_err());
    }
    assert_eq!(events.violations().len(), 5, "{:#?}", events.all());
}

#[tokio::test]
async fn consumers_of_other_users_cannot_be_created_bound_or_read() {
    let env = Env::start().await;
    let alice = env.registered_user().await;
    let bob = env.registered_user().await;
    // Bob's legitimate durable, holding one message.
    let (bob_conn, _) = bob.connect(&env.server.client_url()).await;
    let bob_js = user_js(&bob_conn);
    bob_js.create_consumer_on_stream(own_consumer(&bob), INBOX_STREAM).await.unwrap();
    bob_js.publish(inbox_subject(&bob.key), "secret".into()).await.unwrap().await.unwrap();

    let (conn, events) = alice.connect(&env.server.client_url()).await;
    let js = user_js(&conn);
    let (a, b) = (alice.hex(), bob.hex());
    let attempts = [
        // Bob's name and Bob's filter.
        (Some(b.clone()), inbox_subject(&bob.key), format!("$JS.API.CONSUMER.CREATE.KEZ_INBOX.{b}.kez.inbox.{b}")),
        // Her own name with Bob's filter.
        (Some(a.clone()), inbox_subject(&bob.key), format!("$JS.API.CONSUMER.CREATE.KEZ_INBOX.{a}.kez.inbox.{b}")),
        // The hijack of brief §2.3: Bob's name re-pointed at her own subject.
        (Some(b.clone()), inbox_subject(&alice.key), format!("$JS.API.CONSUMER.CREATE.KEZ_INBOX.{b}.kez.inbox.{a}")),
        // Nameless create (legacy subject, no filter check on the server).
        (None, inbox_subject(&bob.key), "$JS.API.CONSUMER.CREATE.KEZ_INBOX".to_owned()),
    ];
    for (name, filter, subject) in attempts {
        let cfg = consumer::pull::Config { durable_name: name, filter_subject: filter, ..Default::default() };
        let err = js.create_consumer_on_stream(cfg, INBOX_STREAM).await.unwrap_err();
        assert!(err.to_string().contains("timed out"), "{err}");
        events.expect_violation(Violation::Publish, &subject).await;
    }
    // CONSUMER.INFO (bind) on Bob's durable.
    let err = js.get_consumer_from_stream::<consumer::pull::Config, _, _>(b.clone(), INBOX_STREAM).await.unwrap_err();
    assert!(err.to_string().contains("timed out"), "{err}");
    events.expect_violation(Violation::Publish, &format!("$JS.API.CONSUMER.INFO.KEZ_INBOX.{b}")).await;
    // A raw pull request on Bob's durable.
    let next = format!("$JS.API.CONSUMER.MSG.NEXT.KEZ_INBOX.{b}");
    assert!(conn.request(next.clone(), r#"{"batch":1}"#.into()).await.is_err());
    events.expect_violation(Violation::Publish, &next).await;

    // Bob's durable is untouched and still holds his message.
    let ops_js = jetstream::new(env.server.connect_ops().await.unwrap());
    let mut bobs: consumer::PullConsumer = ops_js.get_consumer_from_stream(b.clone(), INBOX_STREAM).await.unwrap();
    let info = bobs.info().await.unwrap();
    assert_eq!(info.config.filter_subject, inbox_subject(&bob.key));
    assert_eq!(info.num_pending, 1);
    assert_eq!(events.violations().len(), 6, "{:#?}", events.all());
}

#[tokio::test]
async fn publishing_outside_the_grants_is_denied() {
    let env = Env::start().await;
    let alice = env.registered_user().await;
    let (conn, events) = alice.connect(&env.server.client_url()).await;

    let subjects = [
        "kez.svc.registry.v1.lookup_key",
        "$KV.kez_handles.x",
        "$JS.API.STREAM.INFO.KEZ_INBOX",
        "$JS.API.STREAM.DELETE.KEZ_INBOX",
        "$JS.API.STREAM.PURGE.KEZ_INBOX",
        "$SYS.REQ.SERVER.PING",
        "$SRV.INFO",
    ];
    // Requests, so that "denied" is also visible as "never answered": the registry, the KV
    // bucket's stream and JetStream would otherwise reply. Sent together; each waits out the 1 s request timeout.
    let body = format!(r#"{{"key":"{}"}}"#, alice.key);
    let results = futures::future::join_all(subjects.map(|s| conn.request(s, body.clone().into()))).await;
    for (subject, result) in subjects.iter().zip(results) {
        let err = result.unwrap_err();
        assert_eq!(err.kind(), async_nats::RequestErrorKind::TimedOut, "{subject}: {err}");
        events.expect_violation(Violation::Publish, subject).await;
    }

    // Control: a granted JetStream request is answered (here: "consumer not found"), so the
    // timeouts above are the denials, not a slow server.
    let err = user_js(&conn)
        .get_consumer_from_stream::<consumer::pull::Config, _, _>(alice.hex(), INBOX_STREAM)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("consumer not found"), "{err}");

    // The stream survived the delete/purge attempts, and nothing was written to the handles bucket.
    let ops_js = jetstream::new(env.server.connect_ops().await.unwrap());
    ops_js.get_stream(INBOX_STREAM).await.unwrap();
    assert_eq!(ops_js.get_key_value("kez_handles").await.unwrap().get("x").await.unwrap(), None);
    assert_eq!(events.violations().len(), 7, "{:#?}", events.all());
}

#[tokio::test]
async fn pub_ack_reply_subject_cannot_be_aimed_at_the_jetstream_api() {
    // A user may publish to an inbox with ANY reply subject; JetStream then publishes its PubAck
    // there with its own rights. Aim it at the stream API and check nothing happens.
    let env = Env::start().await;
    let alice = env.registered_user().await;
    let (conn, events) = alice.connect(&env.server.client_url()).await;
    for reply in [
        "$JS.API.STREAM.DELETE.KEZ_INBOX",
        "$JS.API.STREAM.PURGE.KEZ_INBOX",
        "$JS.API.STREAM.UPDATE.KEZ_INBOX",
        "$JS.API.CONSUMER.DELETE.KEZ_INBOX.x",
    ] {
        conn.publish_with_reply(inbox_subject(&alice.key), reply, "x".into()).await.unwrap();
    }
    conn.flush().await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let ops_js = jetstream::new(env.server.connect_ops().await.unwrap());
    let mut stream = ops_js.get_stream(INBOX_STREAM).await.unwrap();
    let info = stream.info().await.unwrap();
    // The four messages are stored; the stream, its messages and its config are untouched.
    assert_eq!(info.state.messages, 4, "{:?}", info.state);
    assert_eq!(info.config, env.callout.inbox_stream().config);
    assert!(events.violations().is_empty(), "{:?}", events.all());

    // Observation (not a grant problem, senders may write to any inbox anyway): a PubAck aimed at
    // another inbox is stored there as a message, which the recipient discards as malformed.
    let bob = env.registered_user().await;
    conn.publish_with_reply(inbox_subject(&alice.key), inbox_subject(&bob.key), "y".into()).await.unwrap();
    conn.flush().await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    // "y" in Alice's inbox plus the PubAck JSON in Bob's (no loop: the stored ack has no reply).
    let info = stream.info().await.unwrap();
    assert_eq!(info.state.messages, 6, "{:?}", info.state);
}
