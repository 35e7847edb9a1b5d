//! End users against a real nats-server with the production account layout (PROTOCOL.md §9.1,
//! §9.5): a device pulls and acks exactly its own consumer over NATS and WebSocket, every other
//! subject is refused by the server, and neither chosen reply subjects nor JetStream deliveries
//! can put a byte into a KV bucket, the inbox stream or a service.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::jetstream::{self, consumer, stream};
use bytes::Bytes;
use common::{Env, User, Violation};
use futures::StreamExt as _;
use kez_service_kit::natsconf::INBOX_JS_API_PREFIX;
use kv_schemas::subjects::{
    BUCKET_HANDLES, DeviceId, INBOX_STREAM, consumer_next_subject, device_consumer, inbox_filters, user_send_subject,
};

/// The ops user's view of the INBOX account's JetStream (through APP's prefixed import).
fn inbox_js(ops: &async_nats::Client) -> jetstream::Context {
    jetstream::with_prefix(ops.clone(), INBOX_JS_API_PREFIX)
}

/// The inbox stream and one device consumer per (user, device), created server-side the way the
/// inbox service does it (users cannot create consumers).
async fn inbox_with_devices(ops: &async_nats::Client, devices: &[(&User, &DeviceId)]) -> jetstream::stream::Stream {
    let js = inbox_js(ops);
    let stream = js
        .get_or_create_stream(stream::Config {
            name: INBOX_STREAM.into(),
            subjects: vec!["kez.inbox.>".into()],
            max_bytes: 64 << 20,
            ..Default::default()
        })
        .await
        .unwrap();
    for (user, device) in devices {
        js.create_consumer_on_stream(
            consumer::pull::Config {
                durable_name: Some(device_consumer(&user.key, device)),
                filter_subjects: inbox_filters(&user.key).to_vec(),
                ack_policy: consumer::AckPolicy::Explicit,
                // Short, so that deliveries sent elsewhere by an attack come back within the test.
                ack_wait: Duration::from_secs(1),
                ..Default::default()
            },
            INBOX_STREAM,
        )
        .await
        .unwrap();
    }
    stream
}

/// Stores a message for `to` the way the relay does (APP publishes through INBOX's export).
async fn store(ops: &async_nats::Client, to: &User, text: &str) {
    let ack = ops.request(format!("kez.inbox.{}.t0", to.hex()), text.to_owned().into()).await.unwrap();
    assert!(String::from_utf8_lossy(&ack.payload).contains(INBOX_STREAM), "{ack:?}");
}

/// One raw pull without acks (`kez_testkit::user::pull`): the stored messages only.
async fn pull(
    conn: &async_nats::Client,
    consumer: &str,
    reply: &str,
    batch: usize,
    wait: Duration,
) -> Vec<async_nats::Message> {
    kez_testkit::user::pull(conn, consumer, reply, batch, wait, false).await.unwrap().messages
}

async fn stream_messages(ops: &async_nats::Client) -> u64 {
    inbox_js(ops).get_stream(INBOX_STREAM).await.unwrap().info().await.unwrap().state.messages
}

#[tokio::test]
async fn a_device_pulls_and_acks_its_own_consumer_over_nats_and_websocket() {
    let env = Env::start().await;
    let alice = env.registered_user().await;
    let (laptop, browser) = (DeviceId::random(), DeviceId::random());
    let ops = env.server.connect_ops().await.unwrap();
    inbox_with_devices(&ops, &[(&alice, &laptop), (&alice, &browser)]).await;
    store(&ops, &alice, "first").await;
    store(&ops, &alice, "second").await;

    for (url, device) in [(env.server.client_url(), &laptop), (env.server.ws_url(), &browser)] {
        let (conn, events) = alice.connect_device(&url, device).await.unwrap();
        let consumer = device_consumer(&alice.key, device);
        let got = pull(&conn, &consumer, &format!("_INBOX.{}.pull", alice.hex()), 2, Duration::from_secs(2)).await;
        // Every device reads everything held, whatever the other devices acked.
        let texts: Vec<&[u8]> = got.iter().map(|m| m.payload.as_ref()).collect();
        assert_eq!(texts, [b"first".as_slice(), b"second"], "{url}");
        for m in &got {
            assert_eq!(m.subject.as_str(), format!("kez.inbox.{}.t0", alice.hex()));
            let ack = m.reply.clone().unwrap();
            assert!(ack.starts_with(&format!("$JS.ACK.{INBOX_STREAM}.{consumer}.")), "{ack}");
            conn.publish(ack, "+ACK".into()).await.unwrap();
        }
        conn.flush().await.unwrap();
        assert!(events.violations().is_empty(), "{url}: {:?}", events.all());
        let again =
            pull(&conn, &consumer, &format!("_INBOX.{}.pull2", alice.hex()), 10, Duration::from_millis(700)).await;
        assert!(again.is_empty(), "acked messages are not redelivered ({url})");
        // The server shows the connection under the JWT's name, in account USERS.
        let (_, connz) = env.server.monitor_get("/connz?auth=1").await.unwrap();
        assert!(connz.contains(&format!("kez:{}", alice.hex())), "{connz}");
        assert!(connz.contains("\"account\": \"USERS\""), "{connz}");
    }
}

#[tokio::test]
async fn consumers_other_than_the_own_device_cannot_be_read_or_created() {
    let env = Env::start().await;
    let alice = env.registered_user().await;
    let bob = env.registered_user().await;
    let (mine, other, bobs) = (DeviceId::random(), DeviceId::random(), DeviceId::random());
    let ops = env.server.connect_ops().await.unwrap();
    inbox_with_devices(&ops, &[(&alice, &mine), (&alice, &other), (&bob, &bobs)]).await;
    store(&ops, &bob, "for bob").await;
    store(&ops, &alice, "for alice").await;

    let (conn, events) = alice.connect_device(&env.server.client_url(), &mine).await.unwrap();
    let reply = format!("_INBOX.{}.x", alice.hex());
    let denied = [
        consumer_next_subject(&device_consumer(&bob.key, &bobs)),
        consumer_next_subject(&device_consumer(&alice.key, &other)),
        format!("$JS.API.CONSUMER.INFO.{INBOX_STREAM}.{}", device_consumer(&alice.key, &mine)),
        format!("$JS.API.CONSUMER.CREATE.{INBOX_STREAM}.{}", device_consumer(&alice.key, &mine)),
        format!("$JS.API.CONSUMER.CREATE.{INBOX_STREAM}.{0}_x.kez.inbox.{0}", alice.hex()),
        format!("$JS.API.CONSUMER.DURABLE.CREATE.{INBOX_STREAM}.{}_x", alice.hex()),
        format!("$JS.API.CONSUMER.DELETE.{INBOX_STREAM}.{}", device_consumer(&bob.key, &bobs)),
        format!("$JS.API.STREAM.INFO.{INBOX_STREAM}"),
        format!("$JS.API.STREAM.PURGE.{INBOX_STREAM}"),
        "$JS.API.INFO".to_owned(),
    ];
    let mut sub = conn.subscribe(reply.clone()).await.unwrap();
    for subject in &denied {
        conn.publish_with_reply(subject.clone(), reply.clone(), r#"{"batch":1}"#.into()).await.unwrap();
        events.expect_violation(Violation::Publish, subject).await.unwrap();
    }
    assert!(tokio::time::timeout(Duration::from_millis(300), sub.next()).await.is_err(), "nothing answered");

    // Without a device name the same key may send, but read nothing.
    let (plain, plain_events) = alice.connect(&env.server.client_url()).await.unwrap();
    let subject = consumer_next_subject(&device_consumer(&alice.key, &mine));
    plain.publish_with_reply(subject.clone(), reply.clone(), r#"{"batch":1}"#.into()).await.unwrap();
    plain_events.expect_violation(Violation::Publish, &subject).await.unwrap();

    // Bob's message is still there for Bob's device.
    let (bob_conn, _) = bob.connect_device(&env.server.client_url(), &bobs).await.unwrap();
    let got = pull(
        &bob_conn,
        &device_consumer(&bob.key, &bobs),
        &format!("_INBOX.{}.p", bob.hex()),
        1,
        Duration::from_secs(2),
    )
    .await;
    assert_eq!(got.len(), 1);
    assert_eq!(events.violations().len(), denied.len(), "{:#?}", events.all());
}

#[tokio::test]
async fn publishing_and_subscribing_outside_the_grants_is_denied() {
    let env = Env::start().await;
    let alice = env.registered_user().await;
    let bob = env.registered_user().await;
    let device = DeviceId::random();
    let ops = env.server.connect_ops().await.unwrap();
    inbox_with_devices(&ops, &[(&alice, &device)]).await;
    let (conn, events) = alice.connect_device(&env.server.ws_url(), &device).await.unwrap();

    let publish_denied = [
        format!("kez.inbox.{}", bob.hex()),
        format!("kez.inbox.{}.t0", bob.hex()),
        user_send_subject(&bob.key, &alice.key),
        format!("kez.u.{}.devices.list", bob.hex()),
        "kez.svc.registry.v1.register".to_owned(),
        "kez.svc.registry.v1.lookup_key".to_owned(),
        format!("$KV.{BUCKET_HANDLES}.victim"),
        "$SRV.PING".to_owned(),
        "$SYS.REQ.SERVER.PING".to_owned(),
        format!("{INBOX_JS_API_PREFIX}.STREAM.INFO.{INBOX_STREAM}"),
    ];
    for subject in &publish_denied {
        conn.publish(subject.clone(), "x".into()).await.unwrap();
        events.expect_violation(Violation::Publish, subject).await.unwrap();
    }
    let subscribe_denied = [
        ">".to_owned(),
        "kez.>".to_owned(),
        format!("kez.inbox.{}", alice.hex()),
        format!("kez.inbox.{}.*", alice.hex()),
        "kez.u.>".to_owned(),
        "_INBOX.>".to_owned(),
        format!("_INBOX.{}.>", bob.hex()),
        "$KV.>".to_owned(),
        "$JS.>".to_owned(),
    ];
    for subject in &subscribe_denied {
        let _sub = conn.subscribe(subject.clone()).await.unwrap();
        events.expect_violation(Violation::Subscription, subject).await.unwrap();
    }
    assert_eq!(events.violations().len(), publish_denied.len() + subscribe_denied.len(), "{:#?}", events.all());
    // The handles bucket got nothing.
    let kv = jetstream::new(ops.clone()).get_key_value(BUCKET_HANDLES).await.unwrap();
    assert_eq!(kv.get("victim").await.unwrap(), None);
}

/// What a stand-in relay in APP saw: every request that reached `kez.u.*.>`.
#[derive(Clone, Default)]
struct Seen(Arc<Mutex<Vec<String>>>);

/// A minimal relay in account APP (the real one is kez-inbox): records each request subject and,
/// for sends, stores the payload for the recipient and answers `{}`.
async fn spy_relay(ops: &async_nats::Client) -> Seen {
    let seen = Seen::default();
    let mut sub = ops.subscribe("kez.u.*.>").await.unwrap();
    ops.flush().await.unwrap();
    let (ops, log) = (ops.clone(), seen.clone());
    tokio::spawn(async move {
        while let Some(m) = sub.next().await {
            log.0.lock().unwrap().push(m.subject.to_string());
            let t: Vec<&str> = m.subject.split('.').collect();
            if t.len() == 5 && t[3] == "send" {
                let _ = ops.request(format!("kez.inbox.{}.t1", t[4]), m.payload.clone()).await;
            }
            if let Some(reply) = m.reply {
                let _ = ops.publish(reply, Bytes::from_static(b"{}")).await;
            }
        }
    });
    seen
}

/// Everything in APP that an attacker would like to reach, with a subscription each.
async fn spies(ops: &async_nats::Client) -> Vec<async_nats::Subscriber> {
    let mut subs = Vec::new();
    for s in ["kez.svc.>", "$KV.>", "$JS.API.>", "kez.inbox.>", "_INBOX.>"] {
        subs.push(ops.subscribe(s).await.unwrap());
    }
    ops.flush().await.unwrap();
    subs
}

async fn kv_state(ops: &async_nats::Client) -> BTreeMap<String, u64> {
    let js = jetstream::new(ops.clone());
    let mut out = BTreeMap::new();
    let mut names = js.stream_names();
    while let Some(name) = names.next().await {
        let name = name.unwrap();
        let info = js.get_stream(&name).await.unwrap().info().await.unwrap().state.messages;
        out.insert(name, info);
    }
    out
}

#[tokio::test]
async fn chosen_reply_subjects_and_deliveries_reach_no_bucket_stream_or_service() {
    let env = Env::start().await;
    let alice = env.registered_user().await;
    let bob = env.registered_user().await;
    let device = DeviceId::random();
    let ops = env.server.connect_ops().await.unwrap();
    inbox_with_devices(&ops, &[(&alice, &device)]).await;
    let relay = spy_relay(&ops).await;
    let kv_before = kv_state(&ops).await;
    assert!(kv_before.contains_key(&format!("KV_{BUCKET_HANDLES}")), "{kv_before:?}");
    let inbox_before = stream_messages(&ops).await;
    // Subscriptions in APP, made after the set-up, must see nothing of the attack.
    let mut watched = spies(&ops).await;

    let targets = [
        format!("$KV.{BUCKET_HANDLES}.victim"),
        "kez.svc.registry.v1.register".to_owned(),
        format!("kez.inbox.{}.t9", bob.hex()),
        format!("kez.inbox.{}", bob.hex()),
        user_send_subject(&bob.key, &alice.key),
        format!("$JS.API.STREAM.DELETE.{INBOX_STREAM}"),
        format!("{INBOX_JS_API_PREFIX}.STREAM.PURGE.{INBOX_STREAM}"),
    ];
    for url in [env.server.client_url(), env.server.ws_url()] {
        for i in 0..3 {
            store(&ops, &alice, &format!("held {i}")).await;
        }
        let (conn, events) = alice.connect_device(&url, &device).await.unwrap();
        let consumer = device_consumer(&alice.key, &device);
        for target in &targets {
            // A send whose answer is aimed at the target.
            conn.publish_with_reply(user_send_subject(&alice.key, &bob.key), target.clone(), "m".into()).await.unwrap();
            // JetStream deliveries of the own consumer aimed at the target.
            conn.publish_with_reply(consumer_next_subject(&consumer), target.clone(), r#"{"batch":3}"#.into())
                .await
                .unwrap();
        }
        conn.flush().await.unwrap();
        // Those deliveries went to the targets unacked; after the ack wait they come again.
        tokio::time::sleep(Duration::from_millis(1500)).await;
        // Acks whose own reply is aimed at the target (double-ack answers go there).
        let got = pull(&conn, &consumer, &format!("_INBOX.{}.p", alice.hex()), 3, Duration::from_secs(2)).await;
        assert_eq!(got.len(), 3, "{url}: the held messages were delivered to the targets, then redelivered");
        for (m, target) in got.iter().zip(targets.iter().cycle()) {
            conn.publish_with_reply(m.reply.clone().unwrap(), target.clone(), "+ACK".into()).await.unwrap();
        }
        conn.flush().await.unwrap();
        assert!(events.violations().is_empty(), "{url}: none of this needs a grant: {:?}", events.all());
    }
    tokio::time::sleep(Duration::from_millis(500)).await;

    // The relay got exactly the sends, each under alice's own key; nothing else reached APP.
    let sends = 2 * targets.len();
    let seen = relay.0.lock().unwrap().clone();
    assert_eq!(seen.len(), sends, "{seen:#?}");
    assert!(seen.iter().all(|s| *s == user_send_subject(&alice.key, &bob.key)), "{seen:#?}");
    for sub in &mut watched {
        let mut leaked = Vec::new();
        while let Ok(Some(m)) = tokio::time::timeout(Duration::from_millis(100), sub.next()).await {
            // The test's and the relay's own stores and the callout's login checks are expected traffic.
            let own = (m.subject.starts_with("kez.inbox.")
                && (m.subject.ends_with(".t0") || m.subject.ends_with(".t1")))
                || m.subject.as_str() == kv_schemas::subjects::svc::REGISTRY_LOOKUP_KEY
                || m.subject.starts_with("$JS.API.DIRECT.GET."); // the registry answering them
            if !own && !m.subject.starts_with("_INBOX.") {
                leaked.push(m.subject.to_string());
            }
        }
        assert!(leaked.is_empty(), "reached APP: {leaked:?}");
    }
    // No KV record or stream changed; the inbox holds what was stored plus the relayed sends.
    assert_eq!(kv_state(&ops).await, kv_before);
    let kv = jetstream::new(ops.clone()).get_key_value(BUCKET_HANDLES).await.unwrap();
    assert_eq!(kv.get("victim").await.unwrap(), None);
    assert_eq!(stream_messages(&ops).await, inbox_before + 6 + sends as u64);
}

#[tokio::test]
async fn one_user_holds_at_most_the_allowed_number_of_connections() {
    let env = Env::start_with(|c| kez_auth_callout::CalloutConfig { max_connections_per_user: 4, ..c }).await;
    let alice = env.registered_user().await;
    let bob = env.registered_user().await;
    let mut held = Vec::new();
    for i in 0..4 {
        let url = if i % 2 == 0 { env.server.client_url() } else { env.server.ws_url() };
        held.push(alice.connect(&url).await.unwrap());
    }
    let refused = alice.options(&common::Events::default()).unwrap().connect(env.server.client_url()).await;
    assert!(refused.is_err(), "a fifth connection is refused");
    env.wait_rejected(kez_auth_callout::RejectReason::TooManyConnections, 1).await;
    // Other users are not affected.
    let _bob = bob.connect(&env.server.client_url()).await.unwrap();

    // Past the pending window the count comes from the server's connection events alone.
    tokio::time::sleep(kez_auth_callout::connections::PENDING_TTL + Duration::from_secs(1)).await;
    assert!(alice.options(&common::Events::default()).unwrap().connect(env.server.ws_url()).await.is_err());
    // Closing one frees one place.
    let (conn, _) = held.pop().unwrap();
    conn.drain().await.unwrap();
    drop(conn);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        match alice.options(&common::Events::default()).unwrap().connect(env.server.client_url()).await {
            Ok(_) => break,
            Err(e) => assert!(tokio::time::Instant::now() < deadline, "the freed place was not reused: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
