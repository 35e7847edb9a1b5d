//! End to end over HTTP with the real services on a real nats-server:
//! register → lookup → WebFinger → sigchain append/get → manifest put/get.

use std::time::Duration;

use axum::http::StatusCode;
use ed25519_dalek::SigningKey;
use kez_gateway::RateLimit;
use kez_service_kit::settings::Settings;
use kez_testkit::ServiceUser;
use kv_schemas::sigchain::{Endpoint, Op, SharedFiles};
use kv_schemas::subjects::service;
use kv_schemas::{Handle, PublicKey, manifest, now_ms, random_bytes, register, sigchain};
use serde_json::json;

use crate::common::*;

/// Starts `registry_workers` registries plus one of every other service, each
/// on its own connection as its own service user, like production.
async fn start_services(env: &Env, registry_workers: usize) -> Vec<async_nats::service::Service> {
    let settings = Settings::local(DOMAIN, PUBLIC_URL);
    let mut services = Vec::new();
    for _ in 0..registry_workers {
        let c = env.server.connect_as(ServiceUser::Registry).await.unwrap();
        services.push(kez_registry::start(&c, &settings).await.unwrap());
        settle(&c).await;
    }
    let c = env.server.connect_as(ServiceUser::Sigchain).await.unwrap();
    services.push(kez_sigchain::start(&c, &settings).await.unwrap());
    settle(&c).await;
    let c = env.server.connect_as(ServiceUser::Manifest).await.unwrap();
    services.push(kez_manifest_index::start(&c, &settings).await.unwrap());
    settle(&c).await;
    let c = env.server.connect_as(ServiceUser::Webfinger).await.unwrap();
    services.push(kez_webfinger::start(&c, &settings).await.unwrap());
    settle(&c).await;
    services
}

fn signing_key(n: u8) -> SigningKey {
    SigningKey::from_bytes(&[n; 32])
}

fn events_url(key: &PublicKey) -> String {
    format!("/v1/sigchains/ed25519/{}/events", key.hex())
}

#[tokio::test]
async fn register_lookup_webfinger_sigchain_manifest() {
    let env = Env::start().await;
    let _services = start_services(&env, 1).await;
    // The auth callout needs its own deployment (AUTH account, issuer keys); a stand-in
    // answers its ping so /v1/healthz can be green.
    env.fake(service::AUTH_CALLOUT, "kez.svc.test.callout_status", |_| async { Ok("{}".into()) }).await;
    // The inbox service needs the INBOX account; a stand-in reports an inbox store with room.
    env.fake(service::INBOX, kv_schemas::subjects::svc::INBOX_STATUS, |_| async {
        Ok(r#"{"bytes":0,"max_bytes":1000,"messages":0,"consumers":0,"full":false}"#.into())
    })
    .await;
    let app = env.app();

    let res = send(&app, get("/v1/healthz")).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.json());

    // Register.
    let sk = signing_key(1);
    let key = PublicKey::of(&sk);
    let handle = Handle::parse_canonical(&format!("alice@{DOMAIN}")).unwrap();
    let reg = register::build(&sk, &handle, now_ms(), random_bytes()).unwrap();
    let res = send(&app, post("/v1/register", reg.clone())).await;
    assert_eq!(res.status, StatusCode::CREATED, "{res:?}");
    assert_eq!(res.json(), json!({"handle": handle.to_string(), "key": key.to_string(), "created": true}));
    // The same bytes again are a replay; a fresh request by the same key is idempotent.
    let res = send(&app, post("/v1/register", reg)).await;
    assert_eq!(res.error_code(), "replayed");
    let res = send(&app, post("/v1/register", register::build(&sk, &handle, now_ms(), random_bytes()).unwrap())).await;
    assert_eq!(res.status, StatusCode::OK, "{res:?}");
    assert_eq!(res.json()["created"], false);
    // Another key cannot take it; a bad signature is refused.
    let other = signing_key(2);
    let res =
        send(&app, post("/v1/register", register::build(&other, &handle, now_ms(), random_bytes()).unwrap())).await;
    assert_eq!(res.error_code(), "handle_taken");
    let mut forged =
        register::build(&other, &Handle::parse_canonical("bob@kez.test").unwrap(), now_ms(), random_bytes()).unwrap();
    // Flip the first character of the signature: still valid base64url, no longer valid.
    let at = forged.windows(7).position(|w| w == b"\"sig\":\"").unwrap() + 7;
    forged[at] = if forged[at] == b'A' { b'B' } else { b'A' };
    let res = send(&app, post("/v1/register", forged)).await;
    assert_eq!(res.error_code(), "bad_signature");

    // Lookups: registered, nothing published yet.
    let res = send(&app, get("/v1/u/@Alice")).await;
    assert_eq!(res.status, StatusCode::OK, "{res:?}");
    let sigchain_url = format!("{PUBLIC_URL}/v1/sigchains/ed25519/{}", key.hex());
    assert_eq!(
        res.json(),
        json!({"handle": handle.to_string(), "primary": key.to_string(), "sigchain_url": sigchain_url, "endpoints": []})
    );
    assert_eq!(send(&app, get("/v1/u/nobody")).await.error_code(), "handle_not_found");
    let res = send(&app, get(&format!("/v1/keys/ed25519/{}", key.hex()))).await;
    assert_eq!(res.json()["handle"], handle.to_string());
    let res = send(&app, get(&format!("/v1/keys/ed25519/{}", PublicKey::of(&other).hex()))).await;
    assert_eq!(res.error_code(), "key_not_found");

    // WebFinger.
    let res = send(&app, get(&format!("/.well-known/webfinger?resource=acct:alice@{DOMAIN}"))).await;
    assert_eq!(res.status, StatusCode::OK, "{res:?}");
    assert_eq!(res.header("content-type"), Some("application/jrd+json"));
    assert_eq!(res.header("access-control-allow-origin"), Some("*"));
    assert_eq!(res.json()["subject"], format!("acct:alice@{DOMAIN}"));
    let res = send(&app, get(&format!("/.well-known/webfinger?resource=acct:nobody@{DOMAIN}"))).await;
    assert_eq!(res.status, StatusCode::NOT_FOUND);
    let res = send(&app, get("/.well-known/webfinger?resource=mailto:alice")).await;
    assert_eq!(res.status, StatusCode::BAD_REQUEST);

    // Sigchain: no chain yet, then two links.
    let res = send(&app, get(&format!("/v1/sigchains/ed25519/{}", key.hex()))).await;
    assert_eq!(res.error_code(), "chain_not_found");
    let link1 = sigchain::build_link(&sk, 1, None, now_ms(), &Op::AddEndpoint(Endpoint::iroh_wave1(&key))).unwrap();
    let res = send(&app, post(&events_url(&key), link1.clone())).await;
    assert_eq!(res.status, StatusCode::CREATED, "{res:?}");
    assert_eq!(res.json()["seqno"], 1);
    let link1_id = res.json()["link_id"].as_str().unwrap().to_string();
    // The same link again (a client retrying after a lost answer, PROTOCOL.md §9.7) is answered
    // like the first; a different link at the same seqno conflicts.
    let res = send(&app, post(&events_url(&key), link1.clone())).await;
    assert_eq!(res.status, StatusCode::CREATED, "{res:?}");
    assert_eq!(res.json()["link_id"], link1_id.as_str());
    let rival = sigchain::build_link(&sk, 1, None, now_ms() + 1, &Op::AddEndpoint(Endpoint::iroh_wave1(&key))).unwrap();
    let res = send(&app, post(&events_url(&key), rival)).await;
    assert_eq!(res.error_code(), "seqno_conflict");
    // Someone else's link posted to alice's chain is refused by the gateway.
    let res = send(&app, post(&events_url(&PublicKey::of(&other)), link1)).await;
    assert_eq!(res.error_code(), "invalid_link");

    let res = send(&app, get("/v1/u/alice")).await;
    assert_eq!(res.json()["endpoints"], json!([{"link_id": link1_id, "kind": "iroh", "node_id": key.hex()}]));

    // Manifest: put, get, then point at it from the chain and read it by owner.
    let m = manifest::build(&sk, 1, now_ms(), &[]).unwrap();
    let hash = manifest::manifest_hash(&m);
    let res = send(&app, put("/v1/manifests", m.clone())).await;
    assert_eq!(res.status, StatusCode::CREATED, "{res:?}");
    assert_eq!(res.json(), json!({"hash": hash, "owner": key.to_string(), "seq": 1}));
    assert_eq!(res.header("location"), Some(format!("/v1/manifests/{hash}").as_str()));
    let res = send(&app, get(&format!("/v1/manifests/{hash}"))).await;
    assert_eq!(res.status, StatusCode::OK);
    assert_eq!(res.body, m);
    assert_eq!(res.header("cache-control"), Some("public, max-age=31536000, immutable"));
    let res = send(&app, get(&format!("/v1/manifests/{}", "0".repeat(64)))).await;
    assert_eq!(res.error_code(), "manifest_not_found");
    let res = send(&app, get(&format!("/v1/manifests/by-owner/ed25519/{}", key.hex()))).await;
    assert_eq!(res.error_code(), "manifest_not_found");

    let pointer = SharedFiles { manifest: hash.clone(), manifest_seq: 1, size: m.len() as u64 };
    let link2 = sigchain::build_link(&sk, 2, Some(&link1_id), now_ms(), &Op::SetSharedFiles(pointer)).unwrap();
    let res = send(&app, post(&events_url(&key), link2)).await;
    assert_eq!(res.status, StatusCode::CREATED, "{res:?}");
    let res = send(&app, get(&format!("/v1/manifests/by-owner/ed25519/{}", key.hex()))).await;
    assert_eq!(res.status, StatusCode::OK, "{res:?}");
    assert_eq!(res.body, m);
    assert_eq!(res.header("etag"), Some(format!("\"{hash}\"").as_str()));

    let res = send(&app, get(&format!("/v1/sigchains/ed25519/{}", key.hex()))).await;
    assert_eq!(res.status, StatusCode::OK);
    assert_eq!(res.json()["links"].as_array().unwrap().len(), 2);
    let res = send(&app, get(&format!("/v1/sigchains/ed25519/{}/state", key.hex()))).await;
    assert_eq!(res.json()["seqno"], 2);
    assert_eq!(res.json()["shared_files"]["manifest"], hash);
}

#[tokio::test]
async fn fifty_concurrent_registrations_of_one_handle_one_wins() {
    let env = Env::start().await;
    let services = start_services(&env, 2).await;
    let app = env.app_with(|c| {
        c.register_rate = RateLimit { burst: 1000, per_minute: 1000 };
        c.service_timeout = Duration::from_secs(8);
        c.request_timeout = Duration::from_secs(20);
    });
    let handle = Handle::parse_canonical(&format!("race@{DOMAIN}")).unwrap();
    let requests: Vec<_> = (0..50u8)
        .map(|i| {
            let body = register::build(&signing_key(100 + i), &handle, now_ms(), random_bytes()).unwrap();
            let app = app.clone();
            tokio::spawn(async move { send(&app, post("/v1/register", body)).await })
        })
        .collect();
    let mut created = 0;
    let mut taken = 0;
    for r in requests {
        let res = r.await.unwrap();
        match res.status {
            StatusCode::CREATED => created += 1,
            StatusCode::CONFLICT => {
                assert_eq!(res.error_code(), "handle_taken");
                taken += 1;
            }
            other => panic!("unexpected {other}: {res:?}"),
        }
    }
    assert_eq!((created, taken), (1, 49));
    // The queue group spread the requests over both workers.
    let mut per_worker = Vec::new();
    for s in &services[..2] {
        per_worker.push(s.stats().await.get("register").map(|e| e.requests).unwrap_or(0));
    }
    assert_eq!(per_worker.iter().sum::<usize>(), 50, "{per_worker:?}");
    assert!(per_worker.iter().all(|&n| n > 0), "{per_worker:?}");
    let res = send(&app, get("/v1/u/race")).await;
    assert_eq!(res.status, StatusCode::OK);
}

/// The real inbox service behind `/v1/healthz`: once the inbox store is full (mail is refused),
/// the server reports 503 and `"inbox":"full"` although every service still answers.
#[tokio::test]
async fn healthz_reports_a_full_inbox_store() {
    let env = Env::start().await;
    let _services = start_services(&env, 1).await;
    env.fake(service::AUTH_CALLOUT, "kez.svc.test.callout_status", |_| async { Ok("{}".into()) }).await;
    let mut settings = Settings::local(DOMAIN, PUBLIC_URL);
    settings.sender_tag_key =
        Some(kez_service_kit::settings::SenderTagKey::new(*env.server.secrets().sender_tag_key()));
    settings.inbox_max_bytes = 200_000;
    let c = env.server.connect_as(ServiceUser::Inbox).await.unwrap();
    let _inbox = kez_inbox::start(&c, &settings).await.unwrap();
    let res = send(&env.app(), get("/v1/healthz")).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.json());
    assert_eq!(res.json()["inbox"], "ok");

    // Fill the stream directly (ops, through APP's import of kez.inbox.>): big blobs first,
    // then small ones until JetStream refuses even those.
    let ops = env.server.connect_ops().await.unwrap();
    let subject = format!("kez.inbox.{}.{}", "ab".repeat(32), "0".repeat(32));
    for size in [60_000, 1_000] {
        for _ in 0..300 {
            let reply = ops.request(subject.clone(), vec![b'x'; size].into()).await.unwrap();
            let ack: serde_json::Value = serde_json::from_slice(&reply.payload).unwrap();
            if ack.get("error").is_some() {
                break;
            }
        }
    }
    let res = send(&env.app(), get("/v1/healthz")).await;
    assert_eq!(res.status, StatusCode::SERVICE_UNAVAILABLE);
    let body = res.json();
    assert_eq!((body["status"].as_str(), body["inbox"].as_str()), (Some("unavailable"), Some("full")), "{body}");
    assert_eq!(body["services"][service::INBOX], "ok");
    assert_eq!(body["services"][service::REGISTRY], "ok");
}
