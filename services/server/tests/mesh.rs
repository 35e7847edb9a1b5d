//! The micro-service mesh against a real nats-server: the full request flow,
//! races between workers, bad input, and service discovery.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use ed25519_dalek::SigningKey;
use futures::future::join_all;
use kez_server::ServiceKind;
use kez_service_kit::settings::Settings;
use kez_service_kit::svc::request_raw as call;
use kez_testkit::NatsServer;
use kv_schemas::api::{AppendReply, ChainReply, ManifestPutReply, RegisterReply, UserRecord};
use kv_schemas::sigchain::{Claim, Endpoint, Op, SharedFiles, build_link, parse_link};
use kv_schemas::subjects::{BUCKET_HANDLES, BUCKET_KEYS, BUCKET_SIGCHAINS, inbox_subject, svc};
use kv_schemas::{ErrorCode, Handle, KezError, PublicKey, now_ms, register};
use serde_json::{Value, json};

const DOMAIN: &str = "kez.test";
const T: Duration = Duration::from_secs(5);

struct Mesh {
    server: NatsServer,
    ops: async_nats::Client,
    _services: Vec<async_nats::service::Service>,
}

async fn mesh(registry_workers: usize) -> Mesh {
    let server = NatsServer::start().await.expect("nats-server");
    let mut settings = Settings::local(DOMAIN, "http://127.0.0.1:8080");
    // The inbox service tags senders with the stack's key, as `kez-server` passes it.
    settings.sender_tag_key = Some(kez_service_kit::settings::SenderTagKey::new(*server.secrets().sender_tag_key()));
    let mut services = vec![];
    for kind in ServiceKind::ALL {
        let user = kind.user();
        let copies = if kind == ServiceKind::Registry { registry_workers } else { 1 };
        for _ in 0..copies {
            let client = server.connect_as(user).await.expect("connect service");
            services.push(kind.start(&client, &settings).await.expect("start service"));
        }
    }
    let ops = server.connect_ops().await.expect("ops");
    Mesh { server, ops, _services: services }
}

impl Mesh {
    async fn call(&self, subject: &str, body: impl Into<Bytes>) -> Result<Bytes, KezError> {
        call(&self.ops, subject, body.into(), T).await
    }
    async fn call_json(&self, subject: &str, body: Value) -> Result<Value, KezError> {
        let b = self.call(subject, serde_json::to_vec(&body).unwrap()).await?;
        Ok(serde_json::from_slice(&b).unwrap())
    }
    async fn register(&self, sk: &SigningKey, local: &str) -> Result<RegisterReply, KezError> {
        let h = Handle::new(local, DOMAIN).unwrap();
        let bytes = register::build(sk, &h, now_ms(), kv_schemas::random_bytes()).unwrap();
        self.call(svc::REGISTRY_REGISTER, bytes).await.map(|b| serde_json::from_slice(&b).unwrap())
    }
    async fn kv_keys(&self, bucket: &str) -> Vec<String> {
        use futures::TryStreamExt;
        let js = async_nats::jetstream::new(self.ops.clone());
        let kv = js.get_key_value(bucket).await.unwrap();
        let mut keys: Vec<String> = kv.keys().await.unwrap().try_collect().await.unwrap();
        keys.sort();
        keys
    }
}

fn key(n: u8) -> SigningKey {
    SigningKey::from_bytes(&[n; 32])
}

#[tokio::test]
async fn register_lookup_webfinger_sigchain_manifest_flow() {
    let m = mesh(1).await;
    let alice = key(1);
    let pk = PublicKey::of(&alice);
    let r = m.register(&alice, "alice").await.unwrap();
    assert!(r.created);
    // Idempotent for the same key.
    assert!(!m.register(&alice, "alice").await.unwrap().created);

    let rec: UserRecord = serde_json::from_value(
        m.call_json(svc::REGISTRY_LOOKUP_HANDLE, json!({"handle": format!("alice@{DOMAIN}")})).await.unwrap(),
    )
    .unwrap();
    assert_eq!(rec.key, pk);
    let rec2: UserRecord =
        serde_json::from_value(m.call_json(svc::REGISTRY_LOOKUP_KEY, json!({"key": pk.to_string()})).await.unwrap())
            .unwrap();
    assert_eq!(rec2, rec);

    let jrd = m.call_json(svc::WEBFINGER_RESOLVE, json!({"resource": format!("acct:alice@{DOMAIN}")})).await.unwrap();
    assert_eq!(jrd["subject"], format!("acct:alice@{DOMAIN}"));
    assert!(jrd["links"].to_string().contains(&format!("/v1/sigchains/ed25519/{}", pk.hex())));
    let e =
        m.call_json(svc::WEBFINGER_RESOLVE, json!({"resource": format!("acct:nobody@{DOMAIN}")})).await.unwrap_err();
    assert_eq!(e.code, ErrorCode::HandleNotFound);

    // Sigchain: three links.
    let ops = [
        Op::AddEndpoint(Endpoint::Nats { subject: inbox_subject(&pk), url: "nats://127.0.0.1:4222".into() }),
        Op::AddEndpoint(Endpoint::iroh_wave1(&pk)),
        Op::AddClaim(Claim { service: "kez".into(), account: format!("alice@{DOMAIN}"), proof: None }),
    ];
    let mut prev: Option<String> = None;
    for (i, op) in ops.iter().enumerate() {
        let bytes = build_link(&alice, i as u64 + 1, prev.as_deref(), now_ms(), op).unwrap();
        let reply: AppendReply = serde_json::from_slice(&m.call(svc::SIGCHAIN_APPEND, bytes).await.unwrap()).unwrap();
        assert_eq!(reply.seqno, i as u64 + 1);
        prev = Some(reply.link_id);
    }
    let chain: ChainReply =
        serde_json::from_value(m.call_json(svc::SIGCHAIN_GET, json!({"key": pk.to_string()})).await.unwrap()).unwrap();
    let (state, _) = kv_schemas::sigchain::verify_chain(&pk, &chain.links).unwrap();
    assert_eq!(state.seqno, 3);
    let served_state = m.call_json(svc::SIGCHAIN_STATE, json!({"key": pk.to_string()})).await.unwrap();
    assert_eq!(served_state, serde_json::to_value(&state).unwrap());

    // Manifest: put, point at it from the chain, get by hash and by owner.
    let manifest = kv_schemas::manifest::build(&alice, 1, now_ms(), &[]).unwrap();
    let put: ManifestPutReply =
        serde_json::from_slice(&m.call(svc::MANIFEST_PUT, manifest.clone()).await.unwrap()).unwrap();
    assert_eq!(put.hash, kv_schemas::manifest::manifest_hash(&manifest));
    let e = m.call_json(svc::MANIFEST_BY_OWNER, json!({"key": pk.to_string()})).await.unwrap_err();
    assert_eq!(e.code, ErrorCode::ManifestNotFound);
    let link = build_link(
        &alice,
        4,
        prev.as_deref(),
        now_ms(),
        &Op::SetSharedFiles(SharedFiles { manifest: put.hash.clone(), manifest_seq: 1, size: manifest.len() as u64 }),
    )
    .unwrap();
    m.call(svc::SIGCHAIN_APPEND, link).await.unwrap();
    let by_hash = m.call(svc::MANIFEST_GET, serde_json::to_vec(&json!({"hash": put.hash})).unwrap()).await.unwrap();
    assert_eq!(by_hash.as_ref(), manifest.as_slice());
    let by_owner =
        m.call(svc::MANIFEST_BY_OWNER, serde_json::to_vec(&json!({"key": pk.to_string()})).unwrap()).await.unwrap();
    assert_eq!(by_owner.as_ref(), manifest.as_slice());
}

#[tokio::test]
async fn fifty_concurrent_registrations_of_one_handle_have_one_winner() {
    let m = Arc::new(mesh(2).await);
    let attempts = (0..50u8).map(|i| {
        let m = m.clone();
        async move { m.register(&key(100 + i), "popular").await }
    });
    let results = join_all(attempts).await;
    let wins = results.iter().filter(|r| matches!(r, Ok(r) if r.created)).count();
    let taken = results.iter().filter(|r| matches!(r, Err(e) if e.code == ErrorCode::HandleTaken)).count();
    assert_eq!((wins, taken), (1, 49), "{results:?}");
    // The losers' keys are free again: no dangling key claims.
    assert_eq!(m.kv_keys(BUCKET_KEYS).await.len(), 1);
    assert_eq!(m.kv_keys(BUCKET_HANDLES).await, vec!["popular".to_string()]);
}

#[tokio::test]
async fn concurrent_appends_of_one_seqno_have_one_winner() {
    let m = Arc::new(mesh(1).await);
    let bob = key(2);
    let pk = PublicKey::of(&bob);
    m.register(&bob, "bob").await.unwrap();
    let first = build_link(&bob, 1, None, now_ms(), &Op::AddEndpoint(Endpoint::iroh_wave1(&pk))).unwrap();
    let tail = parse_link(&first).unwrap().link_id;
    m.call(svc::SIGCHAIN_APPEND, first).await.unwrap();
    let attempts = (0..20u64).map(|i| {
        let m = m.clone();
        let bob = bob.clone();
        let tail = tail.clone();
        async move {
            let op = Op::AddClaim(Claim { service: "test".into(), account: format!("n{i}"), proof: None });
            m.call(svc::SIGCHAIN_APPEND, build_link(&bob, 2, Some(&tail), now_ms() + i, &op).unwrap()).await
        }
    });
    let results = join_all(attempts).await;
    let ok = results.iter().filter(|r| r.is_ok()).count();
    let conflicts = results.iter().filter(|r| matches!(r, Err(e) if e.code == ErrorCode::SeqnoConflict)).count();
    assert_eq!((ok, conflicts), (1, 19), "{results:?}");
    assert_eq!(m.kv_keys(BUCKET_SIGCHAINS).await.len(), 2);
}

/// PROTOCOL.md §5, §9.7: a client that lost the answer resends the same link; it gets the
/// first answer and the chain does not change. A different link at that seqno still conflicts.
#[tokio::test]
async fn a_resent_link_is_answered_like_the_first_and_stored_once() {
    let m = mesh(1).await;
    let dave = key(6);
    let pk = PublicKey::of(&dave);
    m.register(&dave, "dave").await.unwrap();
    let link = build_link(&dave, 1, None, now_ms(), &Op::AddEndpoint(Endpoint::iroh_wave1(&pk))).unwrap();
    let first = m.call(svc::SIGCHAIN_APPEND, link.clone()).await.unwrap();
    let again = m.call(svc::SIGCHAIN_APPEND, link).await.unwrap();
    assert_eq!(first, again);
    assert_eq!(m.kv_keys(BUCKET_SIGCHAINS).await.len(), 1);
    let other = Op::AddClaim(Claim { service: "test".into(), account: "x".into(), proof: None });
    let e = m.call(svc::SIGCHAIN_APPEND, build_link(&dave, 1, None, now_ms(), &other).unwrap()).await.unwrap_err();
    assert_eq!(e.code, ErrorCode::SeqnoConflict);
    assert_eq!(m.kv_keys(BUCKET_SIGCHAINS).await.len(), 1);
}

/// The manifest index keeps, per owner, the manifest the chain points at and at most
/// MAX_PENDING newer uploads; older ones are purged, and a seq the chain already passed
/// is refused (PROTOCOL.md §9.1).
#[tokio::test]
async fn the_manifest_index_keeps_only_what_the_chain_can_point_at() {
    let m = mesh(1).await;
    let erin = key(5);
    let pk = PublicKey::of(&erin);
    m.register(&erin, "erin").await.unwrap();
    let mut hashes = vec![String::new()];
    for seq in 1..=7u64 {
        let bytes = kv_schemas::manifest::build(&erin, seq, now_ms(), &[]).unwrap();
        let put: ManifestPutReply = serde_json::from_slice(&m.call(svc::MANIFEST_PUT, bytes).await.unwrap()).unwrap();
        hashes.push(put.hash);
    }
    let get = |seq: usize| json!({"hash": hashes[seq]});
    // Nothing pointed at yet: seq 4..7 stay, 1..3 are gone.
    for seq in 1..=3 {
        let e = m.call_json(svc::MANIFEST_GET, get(seq)).await.unwrap_err();
        assert_eq!(e.code, ErrorCode::ManifestNotFound, "seq {seq}");
    }
    for seq in 4..=7 {
        m.call(svc::MANIFEST_GET, serde_json::to_vec(&get(seq)).unwrap()).await.unwrap();
    }
    // The chain points at seq 5; a later upload purges 4 and keeps 5, 6, 7, 8.
    let op = Op::SetSharedFiles(SharedFiles { manifest: hashes[5].clone(), manifest_seq: 5, size: 1 });
    m.call(svc::SIGCHAIN_APPEND, build_link(&erin, 1, None, now_ms(), &op).unwrap()).await.unwrap();
    let bytes = kv_schemas::manifest::build(&erin, 8, now_ms(), &[]).unwrap();
    let put: ManifestPutReply = serde_json::from_slice(&m.call(svc::MANIFEST_PUT, bytes).await.unwrap()).unwrap();
    hashes.push(put.hash);
    let get = |seq: usize| json!({"hash": hashes[seq]});
    assert_eq!(m.call_json(svc::MANIFEST_GET, get(4)).await.unwrap_err().code, ErrorCode::ManifestNotFound);
    for seq in 5..=8 {
        m.call(svc::MANIFEST_GET, serde_json::to_vec(&get(seq)).unwrap()).await.unwrap();
    }
    m.call(svc::MANIFEST_BY_OWNER, serde_json::to_vec(&json!({"key": pk.to_string()})).unwrap()).await.unwrap();
    // A seq at or below the pointer's can never be pointed at: refused, nothing stored.
    let stale = kv_schemas::manifest::build(&erin, 3, now_ms() + 1, &[]).unwrap();
    assert_eq!(m.call(svc::MANIFEST_PUT, stale).await.unwrap_err().code, ErrorCode::InvalidManifest);
}

/// A chain longer than one NATS message (1 MiB here) is still readable: `get` answers in
/// pages of at most `CHAIN_PAGE_BYTES` of links, and `since` walks them (PROTOCOL.md §9.1).
#[tokio::test]
async fn a_chain_larger_than_a_nats_message_is_read_in_pages() {
    let m = mesh(1).await;
    let dave = key(4);
    let pk = PublicKey::of(&dave);
    m.register(&dave, "dave").await.unwrap();
    // ~7.9 KiB links (an op a later version might add, skipped when deriving state).
    let mut prev: Option<String> = None;
    let n = 160u64;
    for i in 1..=n {
        let op = Op::Unsupported { op: "x_future".into(), body: json!({"pad": "p".repeat(7_700)}) };
        let bytes = build_link(&dave, i, prev.as_deref(), now_ms(), &op).unwrap();
        assert!(bytes.len() > 7_700 && bytes.len() <= kv_schemas::sigchain::MAX_LINK_BYTES);
        prev = Some(
            m.call(svc::SIGCHAIN_APPEND, bytes)
                .await
                .map(|b| serde_json::from_slice::<AppendReply>(&b).unwrap().link_id)
                .unwrap(),
        );
    }
    let mut links = Vec::new();
    let mut pages = 0;
    loop {
        let reply = m
            .call(svc::SIGCHAIN_GET, serde_json::to_vec(&json!({"key": pk.to_string(), "since": links.len()})).unwrap())
            .await
            .unwrap();
        assert!(reply.len() < 1024 * 1024, "a page is one NATS message: {} bytes", reply.len());
        let page: ChainReply = serde_json::from_slice(&reply).unwrap();
        assert!(!page.links.is_empty());
        pages += 1;
        links.extend(page.links);
        if !page.more {
            break;
        }
    }
    assert!(pages >= 5, "{pages} pages for {} links", links.len());
    let (state, _) = kv_schemas::sigchain::verify_chain(&pk, &links).unwrap();
    assert_eq!((state.seqno, state.tail), (n, prev));
    // Past the tail: an empty last page. A bad `since` is a shape error.
    let past: ChainReply = serde_json::from_value(
        m.call_json(svc::SIGCHAIN_GET, json!({"key": pk.to_string(), "since": n + 5})).await.unwrap(),
    )
    .unwrap();
    assert!(past.links.is_empty() && !past.more);
    let e = m.call_json(svc::SIGCHAIN_GET, json!({"key": pk.to_string(), "since": -1})).await.unwrap_err();
    assert_eq!(e.code, ErrorCode::InvalidRequest);
}

#[tokio::test]
async fn bad_requests_get_their_codes_and_change_nothing() {
    let m = mesh(1).await;
    let carol = key(3);
    let h = Handle::new("carol", DOMAIN).unwrap();
    let good = register::build(&carol, &h, now_ms(), [7; 16]).unwrap();
    let cases: Vec<(&str, Vec<u8>, ErrorCode)> = vec![
        ("not json", b"{".to_vec(), ErrorCode::InvalidJson),
        ("oversized", vec![b' '; 5000], ErrorCode::TooLarge),
        (
            "not canonical",
            String::from_utf8(good.clone()).unwrap().replacen("{", "{ ", 1).into_bytes(),
            ErrorCode::NotCanonical,
        ),
        (
            "wrong audience",
            register::build(&carol, &Handle::new("carol", "elsewhere.example").unwrap(), now_ms(), [1; 16]).unwrap(),
            ErrorCode::WrongAudience,
        ),
        (
            "reserved",
            register::build(&carol, &Handle::new("admin", DOMAIN).unwrap(), now_ms(), [2; 16]).unwrap(),
            ErrorCode::HandleReserved,
        ),
        ("stale", register::build(&carol, &h, now_ms() - 3_600_000, [3; 16]).unwrap(), ErrorCode::StaleTimestamp),
        (
            "bad signature",
            String::from_utf8(good.clone()).unwrap().replace("\"carol@", "\"carom@").into_bytes(),
            ErrorCode::BadSignature,
        ),
    ];
    for (name, body, code) in cases {
        let e = m.call(svc::REGISTRY_REGISTER, body).await.unwrap_err();
        assert_eq!(e.code, code, "{name}: {e}");
    }
    assert!(m.kv_keys(BUCKET_HANDLES).await.is_empty(), "nothing stored");
    // A replay of a used request is refused.
    m.call(svc::REGISTRY_REGISTER, good.clone()).await.unwrap();
    assert_eq!(m.call(svc::REGISTRY_REGISTER, good).await.unwrap_err().code, ErrorCode::Replayed);
    // Another key cannot take the handle; a key cannot hold two handles.
    assert_eq!(m.register(&key(4), "carol").await.unwrap_err().code, ErrorCode::HandleTaken);
    assert_eq!(m.register(&carol, "carol2").await.unwrap_err().code, ErrorCode::KeyRegistered);

    // Sigchain: unregistered key, wrong seqno, bad prev, tampered, stale.
    let pk = PublicKey::of(&carol);
    let stranger = key(5);
    let e = m
        .call(
            svc::SIGCHAIN_APPEND,
            build_link(&stranger, 1, None, now_ms(), &Op::AddEndpoint(Endpoint::iroh_wave1(&PublicKey::of(&stranger))))
                .unwrap(),
        )
        .await
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::KeyNotFound);
    let iroh = Op::AddEndpoint(Endpoint::iroh_wave1(&pk));
    assert_eq!(
        m.call(svc::SIGCHAIN_APPEND, build_link(&carol, 2, Some(&"0".repeat(64)), now_ms(), &iroh).unwrap())
            .await
            .unwrap_err()
            .code,
        ErrorCode::SeqnoConflict
    );
    assert_eq!(
        m.call(svc::SIGCHAIN_APPEND, build_link(&carol, 1, None, now_ms() - 3_600_000, &iroh).unwrap())
            .await
            .unwrap_err()
            .code,
        ErrorCode::StaleTimestamp
    );
    // An iroh node id must be a valid key (any key since per-device endpoints, PROTOCOL.md §7.5).
    let wrong_iroh = Op::AddEndpoint(Endpoint::Iroh { node_id: format!("01{}", "00".repeat(31)), device: None });
    assert_eq!(
        m.call(svc::SIGCHAIN_APPEND, build_link(&carol, 1, None, now_ms(), &wrong_iroh).unwrap())
            .await
            .unwrap_err()
            .code,
        ErrorCode::InvalidLink
    );
    let tampered = String::from_utf8(build_link(&carol, 1, None, now_ms(), &iroh).unwrap())
        .unwrap()
        .replace("\"seqno\":1", "\"seqno\":1 ");
    assert_eq!(m.call(svc::SIGCHAIN_APPEND, tampered).await.unwrap_err().code, ErrorCode::NotCanonical);
    assert!(m.kv_keys(BUCKET_SIGCHAINS).await.is_empty(), "nothing stored");
    m.call(svc::SIGCHAIN_APPEND, build_link(&carol, 1, None, now_ms(), &iroh).unwrap()).await.unwrap();
    let e = m
        .call(svc::SIGCHAIN_APPEND, build_link(&carol, 2, Some(&"a".repeat(64)), now_ms(), &iroh).unwrap())
        .await
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::PrevMismatch);

    // Lookups of malformed or unknown things.
    assert_eq!(
        m.call_json(svc::REGISTRY_LOOKUP_HANDLE, json!({"handle": "Not A Handle"})).await.unwrap_err().code,
        ErrorCode::InvalidRequest
    );
    assert_eq!(
        m.call_json(svc::REGISTRY_LOOKUP_KEY, json!({"key": PublicKey::of(&stranger).to_string()}))
            .await
            .unwrap_err()
            .code,
        ErrorCode::KeyNotFound
    );
    assert_eq!(
        m.call_json(svc::SIGCHAIN_GET, json!({"key": PublicKey::of(&stranger).to_string()})).await.unwrap_err().code,
        ErrorCode::ChainNotFound
    );
    assert_eq!(
        m.call_json(svc::MANIFEST_GET, json!({"hash": "zz"})).await.unwrap_err().code,
        ErrorCode::InvalidEncoding
    );
    assert_eq!(m.call(svc::MANIFEST_PUT, b"[]".to_vec()).await.unwrap_err().code, ErrorCode::InvalidRequest);
    // A manifest signed by someone other than its owner.
    let forged = String::from_utf8(kv_schemas::manifest::build(&carol, 1, now_ms(), &[]).unwrap())
        .unwrap()
        .replace(&pk.to_string(), &PublicKey::of(&stranger).to_string());
    assert_eq!(m.call(svc::MANIFEST_PUT, forged).await.unwrap_err().code, ErrorCode::BadSignature);
}

#[tokio::test]
async fn every_service_is_discoverable_with_stats_that_count() {
    let m = mesh(1).await;
    m.register(&key(9), "dave").await.unwrap();
    let _ = m.call_json(svc::REGISTRY_LOOKUP_HANDLE, json!({"handle": format!("nobody@{DOMAIN}")})).await;

    let infos = collect(&m.ops, "$SRV.INFO").await;
    let names: std::collections::BTreeSet<String> =
        infos.iter().map(|i| i["name"].as_str().unwrap().to_string()).collect();
    for n in ["kez-registry", "kez-sigchain", "kez-manifest-index", "kez-webfinger", "kez-inbox"] {
        assert!(names.contains(n), "{n} missing from {names:?}");
    }
    for info in &infos {
        assert_eq!(info["type"], "io.nats.micro.v1.info_response");
        for ep in info["endpoints"].as_array().unwrap() {
            let name = ep["name"].as_str().unwrap();
            assert!(name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-'), "{name}");
            // Service requests, or (the inbox service) user requests under kez.u.*.
            let subject = ep["subject"].as_str().unwrap();
            assert!(subject.starts_with("kez.svc.") || subject.starts_with("kez.u.*."), "{subject}");
        }
    }
    let stats = collect(&m.ops, "$SRV.STATS.kez-registry").await;
    assert_eq!(stats.len(), 1);
    let eps = stats[0]["endpoints"].as_array().unwrap();
    let get = |n: &str| eps.iter().find(|e| e["name"] == n).unwrap().clone();
    assert_eq!(get("register")["num_requests"], 1);
    assert_eq!(get("lookup_handle")["num_requests"], 1);
    assert_eq!(get("lookup_handle")["num_errors"], 1);
    let _ = &m.server;
}

/// Sends a discovery request and gathers every reply within a short window.
async fn collect(client: &async_nats::Client, subject: &str) -> Vec<Value> {
    use futures::StreamExt;
    let inbox = client.new_inbox();
    let mut sub = client.subscribe(inbox.clone()).await.unwrap();
    client.publish_with_reply(subject.to_string(), inbox, Bytes::new()).await.unwrap();
    let mut out = vec![];
    while let Ok(Some(msg)) = tokio::time::timeout(Duration::from_millis(500), sub.next()).await {
        out.push(serde_json::from_slice(&msg.payload).unwrap());
    }
    out
}
