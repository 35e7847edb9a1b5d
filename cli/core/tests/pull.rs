//! The client's NATS side against a real nats-server laid out like PROTOCOL.md §9.1 (only the
//! parts a client meets): the user in `USERS` with the §9.5 permissions of one device, the
//! stream in `INBOX` reached through the `MSG.NEXT` and `$JS.ACK` imports, and the user
//! requests imported from `APP`, where the test answers like the inbox service would.
//!
//! Checked here: raw pulls (no_wait, waiting, partial batches end promptly), acks free the
//! delivery and an unacked one comes back with the same stream sequence, a deleted consumer
//! is reported as [`ClientError::ConsumerGone`] (to enroll again), a pull for another device's
//! consumer is denied, and service errors become typed refusals with their stable codes.
#![allow(clippy::unwrap_used)]

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, consumer, stream};
use futures::StreamExt as _;
use kez_client::broker::Broker;
use kez_client::{ClientError, Identity};
use kv_schemas::ErrorCode;
use kv_schemas::subjects::{DeviceId, INBOX_STREAM, device_consumer, inbox_filters, legacy_inbox_subject};

struct Server {
    child: Child,
    url: String,
    _dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

const PW: &str = "test-password-not-a-secret";

fn start(id: &Identity, device: &DeviceId) -> Server {
    let dir = tempfile::tempdir().unwrap();
    let port = kez_testkit::free_port().unwrap();
    let hex = id.public_key().hex();
    let consumer = device_consumer(&id.public_key(), device);
    let conf = format!(
        r#"
listen: "127.0.0.1:{port}"
jetstream {{ store_dir: "{store}", max_memory_store: 64MB, max_file_store: 256MB }}
accounts {{
  INBOX {{
    jetstream: enabled
    users: [ {{ user: inbox, password: "{PW}" }} ]
    exports: [
      {{ service: "$JS.API.CONSUMER.MSG.NEXT.KEZ_INBOX.*", response_type: stream }}
      {{ service: "$JS.ACK.KEZ_INBOX.>" }}
    ]
  }}
  APP {{
    users: [ {{ user: app, password: "{PW}" }} ]
    exports: [ {{ service: "kez.u.*.>" }} ]
  }}
  USERS {{
    users: [ {{
      nkey: "{nkey}"
      permissions: {{
        publish: {{ allow: [ "kez.u.{hex}.>", "$JS.API.CONSUMER.MSG.NEXT.KEZ_INBOX.{consumer}", "$JS.ACK.KEZ_INBOX.{consumer}.>" ] }}
        subscribe: {{ allow: [ "_INBOX.{hex}.>" ] }}
      }}
    }} ]
    imports: [
      {{ service: {{ account: INBOX, subject: "$JS.API.CONSUMER.MSG.NEXT.KEZ_INBOX.*" }} }}
      {{ service: {{ account: INBOX, subject: "$JS.ACK.KEZ_INBOX.>" }} }}
      {{ service: {{ account: APP, subject: "kez.u.*.>" }} }}
    ]
  }}
}}
"#,
        store = dir.path().join("js").display(),
        nkey = id.nkey_public().unwrap(),
    );
    let path = dir.path().join("nats.conf");
    std::fs::write(&path, conf).unwrap();
    let child = Command::new(kez_testkit::nats_server_bin().unwrap())
        .arg("-c")
        .arg(&path)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "nats-server did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    Server { child, url: format!("nats://127.0.0.1:{port}"), _dir: dir }
}

async fn connect_as(url: &str, user: &str) -> async_nats::Client {
    async_nats::ConnectOptions::with_user_and_password(user.into(), PW.into()).connect(url).await.unwrap()
}

/// The stream and the device consumer, made the way the inbox service makes them.
async fn inbox_account(url: &str, id: &Identity, device: &DeviceId, ack_wait: Duration) -> jetstream::Context {
    let js = jetstream::new(connect_as(url, "inbox").await);
    js.create_stream(stream::Config {
        name: INBOX_STREAM.into(),
        subjects: vec!["kez.inbox.>".into()],
        ..Default::default()
    })
    .await
    .unwrap();
    create_consumer(&js, id, device, ack_wait).await;
    js
}

async fn create_consumer(js: &jetstream::Context, id: &Identity, device: &DeviceId, ack_wait: Duration) {
    let name = device_consumer(&id.public_key(), device);
    js.create_consumer_on_stream(
        consumer::pull::Config {
            durable_name: Some(name.clone()),
            name: Some(name),
            filter_subjects: inbox_filters(&id.public_key()).to_vec(),
            ack_policy: consumer::AckPolicy::Explicit,
            ack_wait,
            ..Default::default()
        },
        INBOX_STREAM,
    )
    .await
    .unwrap();
}

async fn store(js: &jetstream::Context, subject: String, body: &str) -> u64 {
    js.publish(subject, body.to_owned().into()).await.unwrap().await.unwrap().sequence
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_pulls_acks_and_a_vanished_consumer() {
    let id = Arc::new(Identity::from_seed([9; 32]));
    let device = DeviceId::random();
    let server = start(&id, &device);
    let js = inbox_account(&server.url, &id, &device, Duration::from_secs(1)).await;
    let me = id.public_key();
    let tagged = format!("kez.inbox.{}.{}", me.hex(), "ab".repeat(16));
    let s1 = store(&js, legacy_inbox_subject(&me), "wave-1 mail").await;
    let s2 = store(&js, tagged.clone(), "second").await;
    let s3 = store(&js, tagged.clone(), "third").await;
    // Someone else's mail is not in this device's consumer.
    store(&js, format!("kez.inbox.{}.{}", "cd".repeat(32), "ab".repeat(16)), "not mine").await;

    let broker = Broker::connect(&server.url, id.clone(), &device).await.unwrap();
    let mut inbox = broker.inbox().await.unwrap();

    // A no_wait pull for more than is there ends as soon as the server says so.
    let t = Instant::now();
    let got = inbox.pull(10, None).await.unwrap();
    assert!(t.elapsed() < Duration::from_secs(2), "took {:?}", t.elapsed());
    let seen: Vec<(u64, &[u8], u64)> = got.iter().map(|d| (d.stream_seq, &d.payload[..], d.delivered)).collect();
    assert_eq!(seen, [(s1, &b"wave-1 mail"[..], 1), (s2, &b"second"[..], 1), (s3, &b"third"[..], 1)]);
    assert_eq!(got[0].subject, legacy_inbox_subject(&me));
    // Two acked; the third is not, so it comes back after the ack wait, same sequence.
    inbox.ack(&got[0]).await.unwrap();
    inbox.ack(&got[1]).await.unwrap();
    inbox.flush().await.unwrap();
    let t = Instant::now();
    assert!(inbox.pull(10, None).await.unwrap().is_empty());
    assert!(t.elapsed() < Duration::from_secs(2));
    let again = inbox.pull(1, Some(Duration::from_secs(5))).await.unwrap();
    assert_eq!(again.iter().map(|d| (d.stream_seq, d.delivered)).collect::<Vec<_>>(), [(s3, 2)]);
    inbox.ack(&again[0]).await.unwrap();
    inbox.flush().await.unwrap();

    // A waiting pull gets a message stored while it waits, at once.
    let js2 = js.clone();
    let subject = tagged.clone();
    let later = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        store(&js2, subject, "while waiting").await
    });
    let t = Instant::now();
    let got = inbox.pull(1, Some(Duration::from_secs(20))).await.unwrap();
    let s4 = later.await.unwrap();
    assert_eq!(got.iter().map(|d| d.stream_seq).collect::<Vec<_>>(), [s4]);
    assert!(t.elapsed() < Duration::from_secs(3), "took {:?}", t.elapsed());
    inbox.ack(&got[0]).await.unwrap();
    // A waiting pull that gets nothing ends after its expiry with nothing.
    let t = Instant::now();
    assert!(inbox.pull(5, Some(Duration::from_millis(500))).await.unwrap().is_empty());
    assert!(t.elapsed() < Duration::from_secs(3), "took {:?}", t.elapsed());

    // The consumer is deleted while a pull waits (a removed device): enroll again.
    let name = device_consumer(&me, &device);
    let js2 = js.clone();
    let n2 = name.clone();
    let deleter = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(500)).await;
        js2.get_stream(INBOX_STREAM).await.unwrap().delete_consumer(&n2).await.unwrap();
    });
    let e = inbox.pull(1, Some(Duration::from_secs(20))).await.unwrap_err();
    deleter.await.unwrap();
    assert!(matches!(e, ClientError::ConsumerGone), "{e}");
    // And a pull on the missing consumer says the same.
    let e = inbox.pull(1, None).await.unwrap_err();
    assert!(matches!(e, ClientError::ConsumerGone), "{e}");
    // Re-created (as enrolling does), it delivers everything still held again.
    create_consumer(&js, &id, &device, Duration::from_secs(30)).await;
    let got = inbox.pull(10, None).await.unwrap();
    assert_eq!(got.iter().map(|d| d.stream_seq).collect::<Vec<_>>(), [s1, s2, s3, s4]);
    broker.close().await;

    // Another device's consumer: the pull is denied, and the client says so.
    let other = DeviceId::random();
    create_consumer(&js, &id, &other, Duration::from_secs(30)).await;
    let broker = Broker::connect(&server.url, id.clone(), &other).await.unwrap();
    let mut inbox = broker.inbox().await.unwrap();
    let e = inbox.pull(1, None).await.unwrap_err();
    assert!(matches!(e, ClientError::Denied(_)), "{e}");
    assert!(!broker.violations().is_empty());
    broker.close().await;
}

/// Answers user requests in `APP` like the inbox service: `inbox_full` for sends, enroll
/// replies naming the right or a wrong consumer, `device_removed`, `device_not_found`.
async fn fake_inbox_service(url: &str, me_hex: String) {
    let app = connect_as(url, "app").await;
    let mut sub = app.subscribe("kez.u.*.>").await.unwrap();
    app.flush().await.unwrap();
    tokio::spawn(async move {
        while let Some(m) = sub.next().await {
            let Some(reply) = m.reply.clone() else { continue };
            let subject = m.subject.as_str();
            let fail = |code: ErrorCode, text: &str| {
                let mut h = async_nats::HeaderMap::new();
                h.insert("Nats-Service-Error-Code", code.number().to_string().as_str());
                h.insert("Nats-Service-Error", format!("{}: {text}", code.as_str()).as_str());
                h
            };
            if subject.contains(".send.") {
                let h = fail(ErrorCode::InboxFull, "you already hold 1000 messages in that inbox");
                app.publish_with_headers(reply, h, "".into()).await.unwrap();
            } else if subject.ends_with(".devices.enroll") {
                let q: serde_json::Value = serde_json::from_slice(&m.payload).unwrap();
                let device = q["device"].as_str().unwrap().to_owned();
                if q["name"] == "removed" {
                    let h = fail(ErrorCode::DeviceRemoved, "this device was removed");
                    app.publish_with_headers(reply, h, "".into()).await.unwrap();
                    continue;
                }
                let consumer = if q["name"] == "liar" {
                    format!("{me_hex}_0000000000000000")
                } else {
                    format!("{me_hex}_{device}")
                };
                let body = serde_json::json!({
                    "device": {"id": device, "name": q["name"], "created_at": 1, "last_active": null},
                    "consumer": consumer, "created": true, "a_later_key": 1,
                });
                app.publish(reply, serde_json::to_vec(&body).unwrap().into()).await.unwrap();
            } else {
                let h = fail(ErrorCode::DeviceNotFound, "no such device");
                app.publish_with_headers(reply, h, "".into()).await.unwrap();
            }
        }
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_requests_map_service_errors_to_stable_codes() {
    let id = Arc::new(Identity::from_seed([10; 32]));
    let device = DeviceId::random();
    let server = start(&id, &device);

    // Nobody answers yet: unavailable (exit code 3).
    let broker = Broker::connect(&server.url, id.clone(), &device).await.unwrap();
    let peer = Identity::from_seed([12; 32]).public_key();
    let e = broker.send(&peer, b"{}".to_vec()).await.unwrap_err();
    assert_eq!(e.refusal_code(), Some(ErrorCode::Unavailable), "{e}");
    assert_eq!(e.exit_code(), 3);

    fake_inbox_service(&server.url, id.public_key().hex()).await;
    // `flush` only writes the stand-in's SUB to the socket; under load the server may route the
    // next send before it has processed it, so sends stay `unavailable` (as during a service
    // restart) until the subscription is live.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let e = loop {
        let e = broker.send(&peer, b"{}".to_vec()).await.unwrap_err();
        if e.refusal_code() != Some(ErrorCode::Unavailable) || tokio::time::Instant::now() > deadline {
            break e;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(e.kind(), "inbox_full", "{e}");
    assert_eq!(e.exit_code(), 11);
    assert!(e.to_string().contains("inbox_full"), "{e}");

    let r = broker.enroll("laptop").await.unwrap();
    assert_eq!(r.consumer, device_consumer(&id.public_key(), &device));
    let e = broker.enroll("liar").await.unwrap_err();
    assert!(matches!(e, ClientError::BadServerReply(_)), "{e}");
    let e = broker.enroll("removed").await.unwrap_err();
    assert!(matches!(e, ClientError::DeviceRemoved { .. }), "{e}");
    assert_eq!((e.kind(), e.exit_code()), ("device_removed", 12));
    let e = broker.remove_device(&DeviceId::random()).await.unwrap_err();
    assert_eq!((e.kind(), e.exit_code()), ("device_not_found", 4));
    broker.close().await;
}
