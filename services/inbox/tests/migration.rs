//! The wave-1 inbox stream in account APP is moved into the INBOX account at start-up.
#![allow(clippy::unwrap_used)]

mod common;

use async_nats::jetstream::{self, stream};
use bytes::Bytes;
use common::*;
use kv_schemas::subjects::{DeviceId, legacy_inbox_subject};

#[tokio::test]
async fn wave1_stream_is_moved_once_and_deleted() {
    let server = common::server().await;
    let (alice, bob, carol) = (User::new(), User::new(), User::new());
    // The wave-1 stream as the callout created it, in APP, holding two inboxes and some junk.
    let ops = server.connect_ops().await.unwrap();
    let app = jetstream::new(ops.clone());
    app.create_stream(stream::Config {
        name: "KEZ_INBOX".into(),
        subjects: vec!["kez.inbox.>".into()],
        storage: stream::StorageType::File,
        max_messages_per_subject: 10_000,
        discard: stream::DiscardPolicy::New,
        discard_new_per_subject: true,
        deny_delete: true,
        deny_purge: true,
        ..Default::default()
    })
    .await
    .unwrap();
    let old = [
        (legacy_inbox_subject(&bob.key), alice.seal_to(&bob, "one")),
        (legacy_inbox_subject(&carol.key), alice.seal_to(&carol, "two")),
        ("kez.inbox.garbage".to_owned(), alice.seal_to(&bob, "junk subject")),
        (legacy_inbox_subject(&bob.key), Bytes::from_static(b"not an envelope")),
        (legacy_inbox_subject(&bob.key), alice.seal_to(&bob, "three")),
    ];
    for (subject, payload) in &old {
        app.publish(subject.clone(), payload.clone()).await.unwrap().await.unwrap();
    }

    // Two workers start at once: one copies, the other waits for it.
    let mut settings = kez_service_kit::settings::Settings::local(DOMAIN, "http://kez.test");
    settings.sender_tag_key = Some(kez_service_kit::settings::SenderTagKey::new(*server.secrets().sender_tag_key()));
    let (c1, c2) = (
        server.connect_as(kez_testkit::ServiceUser::Inbox).await.unwrap(),
        server.connect_as(kez_testkit::ServiceUser::Inbox).await.unwrap(),
    );
    let (w1, w2) = tokio::join!(kez_inbox::start(&c1, &settings), kez_inbox::start(&c2, &settings));
    let (_w1, _w2) = (w1.unwrap(), w2.unwrap());
    assert!(app.get_stream("KEZ_INBOX").await.is_err(), "the wave-1 stream is gone");

    // A third worker (with the test's registry and callout) finds nothing left to do.
    let env = Env::start_on(server, |_| {}).await;
    assert_eq!(env.stream_messages().await, 3, "copied once; junk dropped");
    assert_eq!(env.stored_on(&legacy_inbox_subject(&bob.key)).await, 2);
    assert_eq!(env.stored_on(&legacy_inbox_subject(&carol.key)).await, 1);

    // Bob's device reads the old mail, in order, on the legacy subject.
    env.register(&bob).await;
    let device = DeviceId::random();
    let b = env.connect(&bob, Some(&device)).await;
    b.enroll(&device, "phone").await.unwrap();
    let pulled = b.pull(&device, 10, true).await;
    assert_eq!(pulled.payloads, vec![old[0].1.clone(), old[4].1.clone()], "{pulled:?}");
}
