//! The relay, blocks and the store limits against a real nats-server with the production
//! account layout, with users connected into `USERS` through the auth callout.
#![allow(clippy::unwrap_used)]

mod common;

use bytes::Bytes;
use common::*;
use kez_inbox::RateLimit;
use kv_schemas::ErrorCode;
use kv_schemas::envelope::open;
use kv_schemas::subjects::{DeviceId, sender_tag, svc, tagged_inbox_subject};
use serde_json::json;

const DAY_MS: u64 = 86_400_000;

#[tokio::test]
async fn relay_stores_and_every_device_pulls_it() {
    let env = Env::start().await;
    let (alice, bob) = (env.registered_user().await, env.registered_user().await);
    let (phone, laptop) = (DeviceId::random(), DeviceId::random());
    let bob_phone = env.connect(&bob, Some(&phone)).await;
    let bob_laptop = env.connect(&bob, Some(&laptop)).await;
    let r = bob_phone.enroll(&phone, "phone").await.unwrap();
    assert_eq!(r["created"], true);
    assert_eq!(r["consumer"], format!("{}_{phone}", bob.hex()));
    bob_laptop.enroll(&laptop, "laptop").await.unwrap();

    let a = env.connect(&alice, None).await;
    let envelope = alice.seal_to(&bob, "hello bob");
    assert_eq!(a.send(&bob.key, envelope.clone()).await.unwrap(), json!({}));

    // Stored unchanged on the per-sender subject, with its message id as the only header.
    let tag = sender_tag(env.server.secrets().sender_tag_key(), &bob.key, &alice.key);
    assert_eq!(env.stored_on(&tagged_inbox_subject(&bob.key, &tag)).await, 1);
    // A resend of the same bytes (a client retry after a lost answer, PROTOCOL.md §9.7) is
    // answered like the first and stored once.
    assert_eq!(a.send(&bob.key, envelope.clone()).await.unwrap(), json!({}));
    assert_eq!(env.stored_on(&tagged_inbox_subject(&bob.key, &tag)).await, 1);
    let msg_id = {
        use sha2::Digest as _;
        let mut h = sha2::Sha256::new();
        h.update(tagged_inbox_subject(&bob.key, &tag).as_bytes());
        h.update([0u8]);
        h.update(&envelope);
        h.finalize().iter().map(|b| format!("{b:02x}")).collect::<String>()
    };
    for (conn, device) in [(&bob_phone, &phone), (&bob_laptop, &laptop)] {
        let pulled = conn.pull(device, 10, true).await;
        assert_eq!(pulled.payloads, vec![envelope.clone()], "{pulled:?}");
        assert_eq!(pulled.subjects, vec![tagged_inbox_subject(&bob.key, &tag)]);
        let headers = pulled.headers[0].as_ref().expect("the message id header");
        assert_eq!(headers.iter().count(), 1, "{headers:?}");
        assert_eq!(headers.get("Nats-Msg-Id").map(|v| v.as_str()), Some(msg_id.as_str()));
        let opened = open(&bob.signing, &pulled.payloads[0], kv_schemas::now_ms(), 30 * DAY_MS).unwrap();
        assert_eq!(opened.from, alice.key);
    }
    // Acked: the next pull finds nothing.
    let again = bob_phone.pull(&phone, 10, true).await;
    assert!(again.payloads.is_empty(), "{again:?}");
    assert!(again.statuses.iter().all(|s| [404, 408].contains(s)), "{again:?}");

    // A note to self is relayed like any other message; a device enrolled later (restored from
    // the words) still gets everything held.
    let b = env.connect(&bob, None).await;
    let note = bob.seal_to(&bob, "note");
    b.send(&bob.key, note.clone()).await.unwrap();
    assert_eq!(bob_laptop.pull(&laptop, 10, true).await.payloads, vec![note.clone()]);
    let restored = DeviceId::random();
    let bob_restored = env.connect(&bob, Some(&restored)).await;
    bob_restored.enroll(&restored, "restored").await.unwrap();
    assert_eq!(bob_restored.pull(&restored, 10, true).await.payloads, vec![envelope, note]);
}

#[tokio::test]
async fn unregistered_recipients_and_bad_envelopes_are_refused() {
    let env = Env::start().await;
    let alice = env.registered_user().await;
    let stranger = User::new();
    let a = env.connect(&alice, None).await;
    assert_eq!(code(a.send(&stranger.key, alice.seal_to(&stranger, "hi")).await), ErrorCode::KeyNotFound);

    let bob = env.registered_user().await;
    let good = alice.seal_to(&bob, "x");
    let text = String::from_utf8(good.to_vec()).unwrap();
    let spaced = text.replacen(':', ": ", 1);
    for (body, expected) in [
        (Bytes::from_static(b"hello"), ErrorCode::InvalidJson),
        (Bytes::new(), ErrorCode::InvalidJson),
        (Bytes::from(spaced), ErrorCode::NotCanonical),
        (Bytes::from_static(br#"{"a":1}"#), ErrorCode::InvalidRequest),
        (Bytes::from(text.replace("\"v\":1", "\"v\":2")), ErrorCode::InvalidRequest),
        (Bytes::from(vec![b'{'; 64 * 1024 + 1]), ErrorCode::TooLarge),
    ] {
        assert_eq!(code(a.send(&bob.key, body.clone()).await), expected, "{:?}", &body[..body.len().min(40)]);
    }
    // Malformed recipient tokens.
    for subject in
        [format!("kez.u.{}.send.nothex", alice.hex()), format!("kez.u.{}.send.{}", alice.hex(), "0".repeat(64))]
    {
        let r = a.call(subject, good.clone()).await;
        assert!(matches!(code(r), ErrorCode::InvalidKey | ErrorCode::InvalidRequest));
    }
    assert_eq!(env.stream_messages().await, 0, "nothing stored");
    // The worker still serves.
    a.send(&bob.key, good).await.unwrap();
}

#[tokio::test]
async fn one_sender_fills_only_its_own_share_of_an_inbox() {
    let env = Env::start_with(|c| c.stream.max_msgs_per_sender = 5).await;
    let (mallory, alice, bob) = (env.registered_user().await, env.registered_user().await, env.registered_user().await);
    let m = env.connect(&mallory, None).await;
    for i in 0..5 {
        m.send(&bob.key, mallory.seal_to(&bob, &format!("spam {i}"))).await.unwrap();
    }
    assert_eq!(code(m.send(&bob.key, mallory.seal_to(&bob, "one more")).await), ErrorCode::InboxFull);
    // Everybody else still gets through to the same inbox, and mallory to other inboxes.
    let a = env.connect(&alice, None).await;
    a.send(&bob.key, alice.seal_to(&bob, "hi bob")).await.unwrap();
    m.send(&alice.key, mallory.seal_to(&alice, "hi alice")).await.unwrap();
    // Bob can still read, and block: the flood is gone and mallory is silently dropped.
    let device = DeviceId::random();
    let b = env.connect(&bob, Some(&device)).await;
    b.enroll(&device, "phone").await.unwrap();
    assert_eq!(b.block(&mallory.key).await.unwrap(), json!({"purged": 5}));
    assert_eq!(m.send(&bob.key, mallory.seal_to(&bob, "after block")).await.unwrap(), json!({}));
    let pulled = b.pull(&device, 20, true).await;
    assert_eq!(pulled.payloads.len(), 1, "only alice's message is left: {pulled:?}");
    assert_eq!(open(&bob.signing, &pulled.payloads[0], kv_schemas::now_ms(), DAY_MS).unwrap().from, alice.key);

    // Unblocking lets mallory's mail through again.
    assert_eq!(b.unblock(&mallory.key).await.unwrap(), json!({}));
    m.send(&bob.key, mallory.seal_to(&bob, "sorry")).await.unwrap();
    assert_eq!(b.pull(&device, 20, true).await.payloads.len(), 1);
    // Blocking twice or a key that never wrote is fine.
    assert_eq!(b.block(&User::new().key).await.unwrap(), json!({"purged": 0}));
}

#[tokio::test]
async fn senders_are_rate_limited_per_worker() {
    let env = Env::start_with(|c| c.rate = RateLimit { burst: 3, per_second: 0.01 }).await;
    let (alice, bob, carol) = (env.registered_user().await, env.registered_user().await, env.registered_user().await);
    let a = env.connect(&alice, None).await;
    for _ in 0..3 {
        a.send(&bob.key, alice.seal_to(&bob, "x")).await.unwrap();
    }
    assert_eq!(code(a.send(&bob.key, alice.seal_to(&bob, "x")).await), ErrorCode::RateLimited);
    assert_eq!(code(a.send(&carol.key, alice.seal_to(&carol, "x")).await), ErrorCode::RateLimited);
    // Another sender has its own bucket.
    let c = env.connect(&carol, None).await;
    c.send(&bob.key, carol.seal_to(&bob, "x")).await.unwrap();
    assert_eq!(env.stream_messages().await, 4);
}

#[tokio::test]
async fn a_full_store_refuses_mail_but_registration_keeps_working() {
    // Room for about three 20 KiB envelopes.
    let env = Env::start_with(|c| c.stream.max_bytes = 70_000).await;
    let (alice, bob) = (env.registered_user().await, env.registered_user().await);
    let a = env.connect(&alice, None).await;
    let big = "x".repeat(15_000);
    let mut refused = None;
    for i in 0..10 {
        if let Err(e) = a.send(&bob.key, alice.seal_to(&bob, &format!("{i}{big}"))).await {
            refused = Some(e.code);
            break;
        }
    }
    assert_eq!(refused, Some(ErrorCode::StoreFull));
    // Small messages fill what is left, until the store refuses again.
    let mut small = 0;
    while a.send(&bob.key, alice.seal_to(&bob, "s")).await.is_ok() {
        small += 1;
        assert!(small < 200, "the store never filled up");
    }
    assert_eq!(code(a.send(&bob.key, alice.seal_to(&bob, "s")).await), ErrorCode::StoreFull);
    let status = kez_service_kit::svc::request_raw(&env.ops, svc::INBOX_STATUS, Bytes::new(), TIMEOUT).await;
    let status: kv_schemas::api::InboxStatus = serde_json::from_slice(&status.unwrap()).unwrap();
    assert_eq!(status.max_bytes, 70_000);
    assert!(status.full, "{status:?}");
    assert!(status.messages >= 2);
    // The APP store is separate: a new user registers.
    env.registered_user().await;
}

#[tokio::test]
async fn status_reports_usage() {
    let env = Env::start().await;
    let (alice, bob) = (env.registered_user().await, env.registered_user().await);
    let device = DeviceId::random();
    env.connect(&bob, Some(&device)).await.enroll(&device, "d").await.unwrap();
    env.connect(&alice, None).await.send(&bob.key, alice.seal_to(&bob, "x")).await.unwrap();
    let body = kez_service_kit::svc::request_raw(&env.ops, svc::INBOX_STATUS, Bytes::new(), TIMEOUT).await.unwrap();
    let status: kv_schemas::api::InboxStatus = serde_json::from_slice(&body).unwrap();
    assert_eq!((status.messages, status.consumers, status.full), (1, 1, false), "{status:?}");
    assert!(status.bytes > 0 && status.max_bytes > status.bytes);
    // The stream's limits as the server holds them.
    let js = env.inbox_js().await;
    let mut stream = js.get_stream("KEZ_INBOX").await.unwrap();
    let c = stream.info().await.unwrap().config.clone();
    assert_eq!(c.max_messages_per_subject, 1_000);
    assert!(c.discard_new_per_subject && c.deny_delete && !c.deny_purge && !c.allow_rollup && !c.allow_direct);
}

#[tokio::test]
async fn a_block_holds_on_every_worker() {
    let env = Env::start().await;
    // A second worker in the same queue group: requests are spread over both.
    let conn = env.server.connect_as(kez_testkit::ServiceUser::Inbox).await.unwrap();
    let _second = kez_inbox::start(&conn, &env.settings).await.unwrap();
    let (mallory, bob) = (env.registered_user().await, env.registered_user().await);
    let (m, b) = (env.connect(&mallory, None).await, env.connect(&bob, None).await);
    m.send(&bob.key, mallory.seal_to(&bob, "before")).await.unwrap();
    assert_eq!(b.block(&mallory.key).await.unwrap(), json!({"purged": 1}));
    // The other worker learns of the block through its watch of kez_blocks.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    for i in 0..20 {
        assert_eq!(m.send(&bob.key, mallory.seal_to(&bob, &format!("after {i}"))).await.unwrap(), json!({}));
    }
    let tag = sender_tag(env.server.secrets().sender_tag_key(), &bob.key, &mallory.key);
    assert_eq!(env.stored_on(&tagged_inbox_subject(&bob.key, &tag)).await, 0);
    b.unblock(&mallory.key).await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    for i in 0..6 {
        m.send(&bob.key, mallory.seal_to(&bob, &format!("again {i}"))).await.unwrap();
    }
    assert_eq!(env.stored_on(&tagged_inbox_subject(&bob.key, &tag)).await, 6);
}
