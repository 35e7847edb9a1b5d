//! `kez-loadtest chat`: the chat server path against raw JetStream in the same run.
//!
//! Both paths carry the same sealed envelopes (sealed once up front, so the server path is
//! measured without client crypto) through the same nats-server (`sync_interval: always`, as in
//! production) with the same ack mode (each send waits for its store acknowledgement; each
//! message is pulled and acked explicitly):
//!
//! - **raw**: a sender in account APP publishes to a plain stream and awaits the PubAck; a
//!   receiver pulls its consumer with `MSG.NEXT` and acks;
//! - **kez**: a registered user sends through the relay (`kez.u.<me>.send.<to>`: account USERS →
//!   inbox service in APP → KEZ_INBOX in INBOX) and the recipient's device pulls its consumer
//!   through the import and acks, exactly as the clients do (PROTOCOL.md §9.3–§9.4).
//!
//! `pairs` sender/recipient pairs run at once; end-to-end latency is send start → receipt.
//! Client crypto (seal+sign, open+verify) is timed separately against the sum of its primitives.

use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, anyhow};
use async_nats::jetstream::{self, consumer, stream};
use bytes::Bytes;
use ed25519_dalek::{Signer as _, SigningKey};
use futures::StreamExt as _;
use kez_server::ServiceKind;
use kez_service_kit::settings::{SenderTagKey, Settings};
use kez_testkit::{NatsServer, ServiceUser};
use kv_schemas::api::EnrollDevice;
use kv_schemas::envelope::{self, Body};
use kv_schemas::subjects::{
    DeviceId, DeviceOp, consumer_next_subject, device_connection_name, device_consumer, user_devices_subject,
    user_send_subject,
};
use kv_schemas::{Handle, PublicKey, now_ms, register};
use serde_json::json;

const DOMAIN: &str = "kez.bench";

/// One path's numbers.
pub struct PathRun {
    pub name: &'static str,
    pub messages: u64,
    pub errors: u64,
    pub elapsed: Duration,
    /// Send → store acknowledgement.
    pub ack: Vec<Duration>,
    /// Send start → received by the recipient.
    pub e2e: Vec<Duration>,
}

impl PathRun {
    pub fn rate(&self) -> f64 {
        self.messages as f64 / self.elapsed.as_secs_f64()
    }
}

pub fn pct(v: &[Duration], p: f64) -> Duration {
    if v.is_empty() {
        return Duration::ZERO;
    }
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

/// A sender and a receiver of one pair.
struct Pair {
    send: Box<dyn Fn(Bytes) -> futures::future::BoxFuture<'static, Result<()>> + Send + Sync>,
    receiver: async_nats::Client,
    reply_prefix: String,
    next_subject: String,
}

/// Runs `messages` sends per pair, all pairs at once, and collects timings.
async fn run_path(name: &'static str, pairs: Vec<Pair>, envelope: Bytes, messages: usize) -> Result<PathRun> {
    let start = Instant::now();
    let mut tasks = Vec::new();
    for (i, pair) in pairs.into_iter().enumerate() {
        let envelope = envelope.clone();
        tasks.push(tokio::spawn(async move {
            let Pair { send, receiver, reply_prefix, next_subject } = pair;
            // Receiver: pull continuously, ack each message, note its arrival time.
            let inbox = format!("{reply_prefix}.bench{i}");
            let mut sub = receiver.subscribe(inbox.clone()).await?;
            let pull = receiver.clone();
            let receiving = tokio::spawn(async move {
                let mut got = 0usize;
                let mut arrivals = Vec::with_capacity(messages);
                let body = Bytes::from(r#"{"batch":256,"expires":2000000000,"idle_heartbeat":500000000}"#);
                pull.publish_with_reply(next_subject.clone(), inbox.clone(), body.clone()).await?;
                let mut outstanding = 256usize;
                while got < messages {
                    let m = tokio::time::timeout(Duration::from_secs(20), sub.next())
                        .await
                        .map_err(|_| anyhow!("no delivery for 20 s"))?
                        .ok_or_else(|| anyhow!("subscription ended"))?;
                    if m.status.is_some() {
                        // Request expired or heartbeat: ask again when the batch is used up or gone.
                        if m.status != Some(async_nats::StatusCode::IDLE_HEARTBEAT) {
                            pull.publish_with_reply(next_subject.clone(), inbox.clone(), body.clone()).await?;
                            outstanding = 256;
                        }
                        continue;
                    }
                    arrivals.push(Instant::now());
                    got += 1;
                    if let Some(reply) = m.reply {
                        pull.publish(reply, Bytes::from_static(b"+ACK")).await?;
                    }
                    outstanding -= 1;
                    if outstanding == 0 {
                        pull.publish_with_reply(next_subject.clone(), inbox.clone(), body.clone()).await?;
                        outstanding = 256;
                    }
                }
                anyhow::Ok(arrivals)
            });
            // Sender: one message at a time, each waiting for its store acknowledgement.
            let mut sent = Vec::with_capacity(messages);
            let mut ack = Vec::with_capacity(messages);
            let mut errors = 0u64;
            for _ in 0..messages {
                let t = Instant::now();
                match send(envelope.clone()).await {
                    Ok(()) => {
                        ack.push(t.elapsed());
                        sent.push(t);
                    }
                    Err(_) => errors += 1,
                }
            }
            let arrivals = receiving.await??;
            let e2e: Vec<Duration> = sent.iter().zip(&arrivals).map(|(s, a)| a.saturating_duration_since(*s)).collect();
            anyhow::Ok((ack, e2e, errors))
        }));
    }
    let (mut ack, mut e2e, mut errors) = (Vec::new(), Vec::new(), 0);
    for t in tasks {
        let (a, e, err) = t.await??;
        ack.extend(a);
        e2e.extend(e);
        errors += err;
    }
    let elapsed = start.elapsed();
    ack.sort();
    e2e.sort();
    Ok(PathRun { name, messages: e2e.len() as u64, errors, elapsed, ack, e2e })
}

/// Client crypto per message against the sum of its primitives, in µs.
pub struct CryptoRun {
    pub seal_us: f64,
    pub open_us: f64,
    pub seal_primitives_us: f64,
    pub open_primitives_us: f64,
}

fn time_per_op(n: usize, mut f: impl FnMut()) -> f64 {
    let t = Instant::now();
    for _ in 0..n {
        f();
    }
    t.elapsed().as_secs_f64() * 1e6 / n as f64
}

pub fn crypto(n: usize) -> CryptoRun {
    use chacha20poly1305::aead::{Aead as _, KeyInit as _};
    let alice = SigningKey::from_bytes(&[1; 32]);
    let bob = SigningKey::from_bytes(&[2; 32]);
    let bob_key = PublicKey::of(&bob);
    let body = Body::Text("hello, this is a short chat message".into());
    let seal_us = time_per_op(n, || {
        let _ = envelope::seal(&alice, &bob_key, &body, now_ms());
    });
    let sealed = envelope::seal(&alice, &bob_key, &body, now_ms()).unwrap_or_default();
    let open_us = time_per_op(n, || {
        let _ = envelope::open(&bob, &sealed, now_ms(), 3_600_000);
    });
    // The primitives of one message: X25519 key generation + DH, HKDF, AEAD over 512 bytes,
    // Ed25519 sign (sender) / verify (receiver), JCS of the inner object.
    let x_secret = x25519_dalek::StaticSecret::from([7u8; 32]);
    let x_pub = x25519_dalek::PublicKey::from(&x25519_dalek::StaticSecret::from([9u8; 32]));
    let dh = time_per_op(n, || {
        let e = x25519_dalek::StaticSecret::from(kv_schemas::random_bytes::<32>());
        let _ = x25519_dalek::PublicKey::from(&e);
        let _ = e.diffie_hellman(&x_pub);
    });
    let dh_only = time_per_op(n, || {
        let _ = x_secret.diffie_hellman(&x_pub);
    });
    let hkdf = time_per_op(n, || {
        let mut okm = [0u8; 32];
        let _ = hkdf::Hkdf::<sha2::Sha256>::new(Some(&[1u8; 64]), &[2u8; 32]).expand(b"kez-v1/msg", &mut okm);
    });
    let aead = chacha20poly1305::ChaCha20Poly1305::new(&[3u8; 32].into());
    let plain = [0u8; 512];
    let seal_aead = time_per_op(n, || {
        let _ = aead.encrypt(&[0u8; 12].into(), plain.as_slice());
    });
    let ct = aead.encrypt(&[0u8; 12].into(), plain.as_slice()).unwrap_or_default();
    let open_aead = time_per_op(n, || {
        let _ = aead.decrypt(&[0u8; 12].into(), ct.as_slice());
    });
    let msg = [5u8; 400];
    let sign = time_per_op(n, || {
        let _ = alice.sign(&msg);
    });
    let sig = alice.sign(&msg);
    let vk = alice.verifying_key();
    let verify = time_per_op(n, || {
        let _ = vk.verify_strict(&msg, &sig);
    });
    let inner = json!({"body":{"text":"hello, this is a short chat message"},"enc":"x","from":"ed25519:00","id":"y","kind":"text","to":"ed25519:11","ts":1,"type":"kez.msg","v":1});
    let jcs = time_per_op(n, || {
        let _ = kv_schemas::jcs::canonicalize(&inner);
    });
    CryptoRun {
        seal_us,
        open_us,
        seal_primitives_us: dh + hkdf + seal_aead + sign + jcs,
        open_primitives_us: dh_only + hkdf + open_aead + verify + jcs,
    }
}

/// A registered user with a connection in USERS as one device, whose consumer exists.
struct Device {
    key: SigningKey,
    conn: async_nats::Client,
    consumer: String,
}

async fn user_device(server: &NatsServer, ops: &async_nats::Client, i: usize) -> Result<Device> {
    let key = SigningKey::from_bytes(&kv_schemas::random_bytes());
    let pk = PublicKey::of(&key);
    let handle = Handle::new(&format!("bench{i}"), DOMAIN)?;
    let req = register::build(&key, &handle, now_ms(), kv_schemas::random_bytes())?;
    ops.request(kv_schemas::subjects::svc::REGISTRY_REGISTER, req.into()).await?;
    let device = DeviceId::random();
    let nkey = nkeys::KeyPair::new_from_raw(nkeys::KeyPairType::User, key.to_bytes())?;
    let seed = nkey.seed()?;
    let conn = async_nats::ConnectOptions::with_nkey(seed)
        .custom_inbox_prefix(format!("_INBOX.{}", pk.hex()))
        .name(device_connection_name(&device))
        .connect(server.client_url())
        .await
        .context("a bench user connecting through the auth callout")?;
    let enroll = serde_json::to_vec(&EnrollDevice { device: device.clone(), name: "bench".into() })?;
    let reply = conn.request(user_devices_subject(&pk, DeviceOp::Enroll), enroll.into()).await?;
    if reply.headers.as_ref().is_some_and(|h| h.get("Nats-Service-Error-Code").is_some()) {
        return Err(anyhow!("enroll failed: {:?}", reply.headers));
    }
    Ok(Device { consumer: device_consumer(&pk, &device), key, conn })
}

/// The whole scenario.
pub async fn chat(pairs: usize, messages: usize) -> Result<ChatRun> {
    let server = NatsServer::start().await.context("starting nats-server (run scripts/ensure-nats-server)")?;
    let mut settings = Settings::local(DOMAIN, "http://127.0.0.1");
    settings.sender_tag_key = Some(SenderTagKey::new(*server.secrets().sender_tag_key()));
    let mut keep = Vec::new();
    for kind in [ServiceKind::Registry, ServiceKind::Inbox] {
        let client = server.connect_as(kind.user()).await?;
        keep.push(kind.start(&client, &settings).await.map_err(|e| anyhow!("starting {kind}: {e}"))?);
    }
    let mut callout = kez_auth_callout::CalloutConfig::new(server.issuer_key().clone());
    callout.sys_conn = Some(server.connect_sys().await?);
    callout.max_connections_per_user = 4;
    let _callout = kez_auth_callout::start(
        server.connect_worker().await?,
        server.connect_as(ServiceUser::AuthCallout).await?,
        callout,
    )
    .await
    .map_err(|e| anyhow!("auth callout: {e}"))?;
    let ops = server.connect_ops().await?;

    let probe = SigningKey::from_bytes(&[1; 32]);
    let envelope = Bytes::from(envelope::seal(
        &probe,
        &PublicKey::of(&SigningKey::from_bytes(&[2; 32])),
        &Body::Text("hello, this is a short chat message".into()),
        now_ms(),
    )?);

    // Raw: a stream in APP with one consumer per pair.
    let js = jetstream::new(ops.clone());
    let raw_pairs = raw_stream_pairs(&server, &js, "BENCH_RAW", "bench.raw", pairs).await?;
    // Relay hop: the same stream path behind a minimal request/reply relay in the same account, so
    // the report tells the cost of any relay hop apart from the cost of ours.
    let mut relay_pairs = raw_stream_pairs(&server, &js, "BENCH_HOP", "bench.hop", pairs).await?;
    let relay_conn = server.connect_ops().await?;
    let _relay = spawn_minimal_relay(relay_conn).await?;
    let hop_client = server.connect_ops().await?;
    for (i, pair) in relay_pairs.iter_mut().enumerate() {
        let (client, subject) = (hop_client.clone(), format!("bench.relay.{i}"));
        pair.send = Box::new(move |b| {
            let (client, subject) = (client.clone(), subject.clone());
            Box::pin(async move {
                client.request(subject, b).await?;
                Ok(())
            })
        });
    }
    // kez: registered users through the relay and their device consumers.
    let mut kez_pairs = Vec::new();
    for i in 0..pairs {
        let from = user_device(&server, &ops, 2 * i).await?;
        let to = user_device(&server, &ops, 2 * i + 1).await?;
        let (from_pk, to_pk) = (PublicKey::of(&from.key), PublicKey::of(&to.key));
        let subject = user_send_subject(&from_pk, &to_pk);
        let conn = from.conn.clone();
        kez_pairs.push(Pair {
            send: Box::new(move |b| {
                let (conn, subject) = (conn.clone(), subject.clone());
                Box::pin(async move {
                    let reply = conn.request(subject, b).await?;
                    if reply.headers.as_ref().is_some_and(|h| h.get("Nats-Service-Error-Code").is_some()) {
                        return Err(anyhow!("relay refused: {:?}", reply.headers));
                    }
                    Ok(())
                })
            }),
            receiver: to.conn.clone(),
            reply_prefix: format!("_INBOX.{}", to_pk.hex()),
            next_subject: consumer_next_subject(&to.consumer),
        });
    }
    let raw = run_path("raw JetStream publish+pull", raw_pairs, envelope.clone(), messages).await?;
    let hop = run_path("minimal relay hop + pull", relay_pairs, envelope.clone(), messages).await?;
    let kez = run_path("kez relay → device pull", kez_pairs, envelope, messages).await?;
    let crypto = tokio::task::spawn_blocking(|| crypto(2000)).await?;
    drop(keep);
    Ok(ChatRun { raw, hop, kez, crypto })
}

/// A plain stream in APP with one filtered pull consumer per pair; senders publish and await the
/// PubAck.
async fn raw_stream_pairs(
    server: &NatsServer,
    js: &jetstream::Context,
    stream_name: &str,
    prefix: &str,
    pairs: usize,
) -> Result<Vec<Pair>> {
    let _ = js.delete_stream(stream_name).await;
    js.create_stream(stream::Config {
        name: stream_name.into(),
        subjects: vec![format!("{prefix}.>")],
        storage: stream::StorageType::File,
        ..Default::default()
    })
    .await?;
    let mut out = Vec::new();
    for i in 0..pairs {
        let name = format!("c{i}");
        js.create_consumer_on_stream(
            consumer::pull::Config {
                durable_name: Some(name.clone()),
                filter_subject: format!("{prefix}.{i}"),
                ack_policy: consumer::AckPolicy::Explicit,
                ..Default::default()
            },
            stream_name,
        )
        .await?;
        let sender = js.clone();
        let subject = format!("{prefix}.{i}");
        out.push(Pair {
            send: Box::new(move |b| {
                let (sender, subject) = (sender.clone(), subject.clone());
                Box::pin(async move {
                    sender.publish(subject, b).await?.await?;
                    Ok(())
                })
            }),
            receiver: server.connect_ops().await?,
            reply_prefix: format!("_INBOX.{}", stream_name.to_ascii_lowercase()),
            next_subject: format!("$JS.API.CONSUMER.MSG.NEXT.{stream_name}.{name}"),
        });
    }
    Ok(out)
}

/// `bench.relay.<i>` → publish on `bench.hop.<i>`, await the PubAck, answer: a relay that does
/// nothing but the hop.
async fn spawn_minimal_relay(conn: async_nats::Client) -> Result<tokio::task::JoinHandle<()>> {
    let mut sub = conn.subscribe("bench.relay.*").await?;
    conn.flush().await?;
    Ok(tokio::spawn(async move {
        while let Some(m) = sub.next().await {
            let conn = conn.clone();
            tokio::spawn(async move {
                let Some(reply) = m.reply else { return };
                let i = m.subject.as_str().rsplit('.').next().unwrap_or("0").to_owned();
                if conn.request(format!("bench.hop.{i}"), m.payload).await.is_ok() {
                    let _ = conn.publish(reply, Bytes::from_static(b"{}")).await;
                }
            });
        }
    }))
}

/// The numbers of one `chat` run.
pub struct ChatRun {
    pub raw: PathRun,
    pub hop: PathRun,
    pub kez: PathRun,
    pub crypto: CryptoRun,
}

pub fn print(pairs: usize, messages: usize, run: &ChatRun, as_json: bool) {
    let ChatRun { raw, hop, kez, crypto: c } = run;
    let ratio = kez.rate() / raw.rate();
    let hop_ratio = hop.rate() / raw.rate();
    if as_json {
        let row = |r: &PathRun| {
            json!({"name": r.name, "messages": r.messages, "errors": r.errors, "msgs_per_s": r.rate(),
                   "ack_p50_us": pct(&r.ack, 0.5).as_micros(), "ack_p99_us": pct(&r.ack, 0.99).as_micros(),
                   "e2e_p50_us": pct(&r.e2e, 0.5).as_micros(), "e2e_p99_us": pct(&r.e2e, 0.99).as_micros()})
        };
        println!(
            "{}",
            json!({"scenario": "chat", "pairs": pairs, "messages_per_pair": messages, "raw": row(raw), "hop": row(hop),
                   "kez": row(kez), "ratio": ratio, "hop_ratio": hop_ratio, "crypto": {"seal_us": c.seal_us, "open_us": c.open_us,
                   "seal_primitives_us": c.seal_primitives_us, "open_primitives_us": c.open_primitives_us,
                   "seal_ratio": c.seal_us / c.seal_primitives_us, "open_ratio": c.open_us / c.open_primitives_us}})
        );
        return;
    }
    println!("\nkez-loadtest chat: {pairs} pairs × {messages} messages, sync_interval always, one ack per send\n");
    println!(
        "{:<28} {:>9} {:>7} {:>9} {:>9} {:>9} {:>9}",
        "path", "msg/s", "errors", "ack p50", "ack p99", "e2e p50", "e2e p99"
    );
    for r in [raw, hop, kez] {
        println!(
            "{:<28} {:>9.0} {:>7} {:>9.2?} {:>9.2?} {:>9.2?} {:>9.2?}",
            r.name,
            r.rate(),
            r.errors,
            pct(&r.ack, 0.5),
            pct(&r.ack, 0.99),
            pct(&r.e2e, 0.5),
            pct(&r.e2e, 0.99)
        );
    }
    println!("\nserver path: {ratio:.2}× raw (target ≥ 0.8×); a minimal same-account relay hop: {hop_ratio:.2}× raw");
    println!(
        "client crypto: seal+sign {:.1} µs vs primitives {:.1} µs = {:.2}×; open+verify {:.1} µs vs {:.1} µs = {:.2}× (target ≤ 1.5×)",
        c.seal_us,
        c.seal_primitives_us,
        c.seal_us / c.seal_primitives_us,
        c.open_us,
        c.open_primitives_us,
        c.open_us / c.open_primitives_us
    );
}
