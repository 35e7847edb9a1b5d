//! Forwarding and reply mapping of each route, against stand-in services on
//! the real subjects; the OpenAPI document against the router.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::http::{Method, StatusCode};
use kv_schemas::subjects::{service, svc};
use kv_schemas::{ErrorCode, KezError};
use serde_json::json;

use crate::common::*;

#[tokio::test]
async fn register_forwards_exact_bytes_and_maps_created() {
    let env = Env::start().await;
    let created = env.fake_recording(service::REGISTRY, svc::REGISTRY_REGISTER, Ok(&register_reply(true))).await;
    let app = env.app();
    // Bytes the gateway must not touch: odd spacing, key order, unicode escapes.
    let body = "{ \"z\" : 1,\"a\":\"\\u00e9\" }";
    let res = send(&app, post("/v1/register", body)).await;
    assert_eq!(res.status, StatusCode::CREATED, "{res:?}");
    assert_eq!(res.header("content-type"), Some("application/json"));
    assert_eq!(res.json()["created"], true);
    assert_eq!(created.bodies(), vec![axum::body::Bytes::from(body)]);

    let env = Env::start().await;
    env.fake_recording(service::REGISTRY, svc::REGISTRY_REGISTER, Ok(&register_reply(false))).await;
    let res = send(&env.app(), post("/v1/register", "{}")).await;
    assert_eq!(res.status, StatusCode::OK);
}

#[tokio::test]
async fn register_unreadable_reply_is_a_generic_500() {
    let env = Env::start().await;
    env.fake_recording(service::REGISTRY, svc::REGISTRY_REGISTER, Ok("garbage from 10.0.0.1")).await;
    let res = send(&env.app(), post("/v1/register", "{}")).await;
    assert_eq!(res.error_code(), "internal");
    assert_eq!(res.message(), "internal error");
}

#[tokio::test]
async fn user_view_combines_registry_and_sigchain() {
    let env = Env::start().await;
    let lookups = env
        .fake_recording(
            service::REGISTRY,
            svc::REGISTRY_LOOKUP_HANDLE,
            Ok(&format!(r#"{{"handle":"alice@{DOMAIN}","key":"{}","registered_at":5}}"#, key())),
        )
        .await;
    let endpoint = json!({"link_id": "ab".repeat(32), "kind": "iroh", "node_id": KEY_HEX});
    let states = env
        .fake_recording(
            service::SIGCHAIN,
            svc::SIGCHAIN_STATE,
            Ok(&json!({"key": key(), "seqno": 1, "tail": "ab".repeat(32), "endpoints": [endpoint],
                       "shared_files": null, "claims": []})
            .to_string()),
        )
        .await;
    let app = env.app();
    for input in ["alice", "%40alice", "Alice@KEZ.test", "alice@kez.test"] {
        let res = send(&app, get(&format!("/v1/u/{input}"))).await;
        assert_eq!(res.status, StatusCode::OK, "{input}: {res:?}");
        assert_eq!(
            res.json(),
            json!({
                "handle": "alice@kez.test",
                "primary": key(),
                "sigchain_url": format!("{PUBLIC_URL}/v1/sigchains/ed25519/{KEY_HEX}"),
                "endpoints": [endpoint],
            })
        );
    }
    assert_eq!(lookups.json(0), json!({"handle": "alice@kez.test"}));
    assert_eq!(states.json(0), json!({"key": key()}));
}

#[tokio::test]
async fn user_without_chain_has_no_endpoints_and_unknown_user_is_404() {
    let env = Env::start().await;
    env.fake(service::REGISTRY, svc::REGISTRY_LOOKUP_HANDLE, |body| async move {
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        if v["handle"] == "bob@kez.test" {
            Ok(format!(r#"{{"handle":"bob@kez.test","key":"{}","registered_at":5}}"#, key()).into())
        } else {
            Err(KezError::new(ErrorCode::HandleNotFound, "no such handle"))
        }
    })
    .await;
    env.fake_recording(service::SIGCHAIN, svc::SIGCHAIN_STATE, Err(KezError::new(ErrorCode::ChainNotFound, "none")))
        .await;
    let app = env.app();
    let res = send(&app, get("/v1/u/bob")).await;
    assert_eq!(res.status, StatusCode::OK);
    assert_eq!(res.json()["endpoints"], json!([]));
    let res = send(&app, get("/v1/u/carol")).await;
    assert_eq!(res.error_code(), "handle_not_found");
}

#[tokio::test]
async fn key_and_sigchain_reads_pass_replies_through() {
    let env = Env::start().await;
    let record = format!(r#"{{"handle":"alice@kez.test","key":"{}","registered_at":5}}"#, key());
    let keys = env.fake_recording(service::REGISTRY, svc::REGISTRY_LOOKUP_KEY, Ok(&record)).await;
    let chain = format!(r#"{{"key":"{}","links":[]}}"#, key());
    let gets = env.fake_recording(service::SIGCHAIN, svc::SIGCHAIN_GET, Ok(&chain)).await;
    let state =
        format!(r#"{{"key":"{}","seqno":0,"tail":null,"endpoints":[],"shared_files":null,"claims":[]}}"#, key());
    env.fake_recording(service::SIGCHAIN, svc::SIGCHAIN_STATE, Ok(&state)).await;
    let app = env.app();

    let res = send(&app, get(&format!("/v1/keys/ed25519/{KEY_HEX}"))).await;
    assert_eq!((res.status, res.body.clone()), (StatusCode::OK, record.into()));
    assert_eq!(keys.json(0), json!({"key": key()}));
    let res = send(&app, get(&format!("/v1/sigchains/ed25519/{KEY_HEX}"))).await;
    assert_eq!((res.status, res.body.clone()), (StatusCode::OK, chain.into()));
    assert_eq!(gets.json(0), json!({"key": key()}));
    // Pages: `since` goes to the service; anything else in the query is a 400 and asks nothing.
    let res = send(&app, get(&format!("/v1/sigchains/ed25519/{KEY_HEX}?since=3"))).await;
    assert_eq!(res.status, StatusCode::OK);
    assert_eq!(gets.json(1), json!({"key": key(), "since": 3}));
    for q in ["since=x", "since=-1", "since=", "since=1&since=2", "from=1", "since=9007199254740992"] {
        let res = send(&app, get(&format!("/v1/sigchains/ed25519/{KEY_HEX}?{q}"))).await;
        assert_eq!((res.status, res.error_code()), (StatusCode::BAD_REQUEST, "invalid_request".into()), "{q}");
    }
    assert_eq!(gets.bodies().len(), 2);
    let res = send(&app, get(&format!("/v1/sigchains/ed25519/{KEY_HEX}/state"))).await;
    assert_eq!((res.status, res.body.clone()), (StatusCode::OK, state.into()));
    assert_eq!(res.header("content-type"), Some("application/json"));
}

#[tokio::test]
async fn append_is_201_with_the_reply() {
    let env = Env::start().await;
    let appends = env.fake_recording(service::SIGCHAIN, svc::SIGCHAIN_APPEND, Ok(r#"{"seqno":1,"link_id":"x"}"#)).await;
    let link = format!(r#"{{"chain":"{}","seqno":1}}"#, key());
    let res = send(&env.app(), post(&format!("/v1/sigchains/ed25519/{KEY_HEX}/events"), link.clone())).await;
    assert_eq!(res.status, StatusCode::CREATED);
    assert_eq!(res.json(), json!({"seqno": 1, "link_id": "x"}));
    assert_eq!(appends.bodies(), vec![axum::body::Bytes::from(link)]);
}

#[tokio::test]
async fn manifests_put_get_and_by_owner() {
    let env = Env::start().await;
    let hash = "e".repeat(64);
    let puts = env
        .fake_recording(
            service::MANIFEST,
            svc::MANIFEST_PUT,
            Ok(&format!(r#"{{"hash":"{hash}","owner":"{}","seq":1}}"#, key())),
        )
        .await;
    let manifest = r#"{"type":"kez.manifest"}"#;
    let gets = env.fake_recording(service::MANIFEST, svc::MANIFEST_GET, Ok(manifest)).await;
    let owners = env.fake_recording(service::MANIFEST, svc::MANIFEST_BY_OWNER, Ok(manifest)).await;
    let app = env.app();

    let res = send(&app, put("/v1/manifests", manifest)).await;
    assert_eq!(res.status, StatusCode::CREATED);
    assert_eq!(res.header("location"), Some(format!("/v1/manifests/{hash}").as_str()));
    assert_eq!(puts.bodies(), vec![axum::body::Bytes::from(manifest)]);

    let res = send(&app, get(&format!("/v1/manifests/{hash}"))).await;
    assert_eq!(res.status, StatusCode::OK);
    assert_eq!(res.body, manifest);
    assert_eq!(res.header("content-type"), Some("application/json"));
    assert_eq!(res.header("cache-control"), Some("public, max-age=31536000, immutable"));
    assert_eq!(res.header("etag"), Some(format!("\"{hash}\"").as_str()));
    assert_eq!(gets.json(0), json!({"hash": hash}));
    // Content-addressed: a matching validator needs no lookup.
    let mut req = get(&format!("/v1/manifests/{hash}"));
    req.headers_mut().insert("if-none-match", format!("\"{hash}\"").parse().unwrap());
    assert_eq!(send(&app, req).await.status, StatusCode::NOT_MODIFIED);
    assert_eq!(gets.bodies().len(), 1);

    let res = send(&app, get(&format!("/v1/manifests/by-owner/ed25519/{KEY_HEX}"))).await;
    assert_eq!(res.status, StatusCode::OK);
    assert_eq!(res.body, manifest);
    assert_eq!(res.header("cache-control"), Some("no-cache"));
    let etag = format!("\"{}\"", kv_schemas::manifest::manifest_hash(manifest.as_bytes()));
    assert_eq!(res.header("etag"), Some(etag.as_str()));
    assert_eq!(owners.json(0), json!({"key": key()}));
    let mut req = get(&format!("/v1/manifests/by-owner/ed25519/{KEY_HEX}"));
    req.headers_mut().insert("if-none-match", etag.parse().unwrap());
    assert_eq!(send(&app, req).await.status, StatusCode::NOT_MODIFIED);
}

#[tokio::test]
async fn webfinger_is_jrd_with_open_cors_and_rfc7033_errors() {
    let env = Env::start().await;
    env.fake(service::WEBFINGER, svc::WEBFINGER_RESOLVE, |body| async move {
        let q: kv_schemas::api::WebfingerQuery = serde_json::from_slice(&body).unwrap();
        match q.resource.as_str() {
            "acct:alice@kez.test" => Ok(json!({"subject": q.resource, "links": [], "rel": q.rel}).to_string().into()),
            "acct:bad" => Err(KezError::new(ErrorCode::InvalidHandle, "bad handle")),
            _ => Err(KezError::new(ErrorCode::HandleNotFound, "unknown")),
        }
    })
    .await;
    let app = env.app();
    let res = send(&app, get("/.well-known/webfinger?resource=acct%3Aalice%40kez.test&rel=self&rel=x")).await;
    assert_eq!(res.status, StatusCode::OK);
    assert_eq!(res.header("content-type"), Some("application/jrd+json"));
    assert_eq!(res.header("access-control-allow-origin"), Some("*"));
    assert_eq!(res.json()["rel"], json!(["self", "x"]));

    let mut req = get("/.well-known/webfinger?resource=acct:bob@kez.test");
    req.headers_mut().insert("origin", "https://elsewhere.example".parse().unwrap());
    let res = send(&app, req).await;
    assert_eq!(res.error_code(), "handle_not_found");
    assert_eq!(res.header("access-control-allow-origin"), Some("*"));

    let res = send(&app, get("/.well-known/webfinger?resource=acct:bad")).await;
    assert_eq!(res.status, StatusCode::BAD_REQUEST);
    assert_eq!(res.error_code(), "invalid_request");
    let res = send(&app, get("/.well-known/webfinger")).await;
    assert_eq!(res.status, StatusCode::BAD_REQUEST);
    assert_eq!(res.header("access-control-allow-origin"), Some("*"));

    // Preflight.
    let mut req = request(Method::OPTIONS, "/.well-known/webfinger?resource=acct:alice@kez.test", "");
    req.headers_mut().insert("origin", "https://elsewhere.example".parse().unwrap());
    req.headers_mut().insert("access-control-request-method", "GET".parse().unwrap());
    let res = send(&app, req).await;
    assert!(res.status.is_success(), "{res:?}");
    assert_eq!(res.header("access-control-allow-origin"), Some("*"));
}

#[tokio::test]
async fn v1_cors_only_for_configured_origins() {
    let env = Env::start().await;
    let cross = |app_origin: &str| {
        let mut req = get("/v1/config");
        req.headers_mut().insert("origin", app_origin.parse().unwrap());
        req
    };
    let res = send(&env.app(), cross("https://app.example")).await;
    assert_eq!(res.status, StatusCode::OK);
    assert_eq!(res.header("access-control-allow-origin"), None);

    let app = env.app_with(|c| c.cors_origins = vec!["https://app.example".into()]);
    let res = send(&app, cross("https://app.example")).await;
    assert_eq!(res.header("access-control-allow-origin"), Some("https://app.example"));
    let res = send(&app, cross("https://evil.example")).await;
    assert_eq!(res.header("access-control-allow-origin"), None);
    let mut req = request(Method::OPTIONS, "/v1/register", "");
    req.headers_mut().insert("origin", "https://app.example".parse().unwrap());
    req.headers_mut().insert("access-control-request-method", "POST".parse().unwrap());
    req.headers_mut().insert("access-control-request-headers", "content-type".parse().unwrap());
    let res = send(&app, req).await;
    assert!(res.status.is_success(), "{res:?}");
    assert_eq!(res.header("access-control-allow-origin"), Some("https://app.example"));
}

#[tokio::test]
async fn client_config_announces_the_deployment() {
    let env = Env::start().await;
    let app = env.app_with(|c| {
        c.nats_url_public = "tls://nats.kez.test:4222".into();
        c.nats_ws_url_public = "wss://kez.test/nats".into();
        c.inbox_max_age_ms = 1234;
    });
    let res = send(&app, get("/v1/config")).await;
    assert_eq!(res.status, StatusCode::OK);
    let cfg: kv_schemas::api::ClientConfig = serde_json::from_slice(&res.body).unwrap();
    assert_eq!(cfg.domain, DOMAIN);
    assert_eq!(cfg.nats_url, "tls://nats.kez.test:4222");
    assert_eq!(cfg.nats_ws_url, "wss://kez.test/nats");
    assert_eq!(cfg.inbox_stream, "KEZ_INBOX");
    assert_eq!(cfg.inbox_max_age_ms, 1234);
    assert_eq!(cfg.protocol, 1);
    assert_eq!(res.header("x-content-type-options"), Some("nosniff"));
    assert_eq!(res.header("x-frame-options"), Some("DENY"));
    assert_eq!(res.header("referrer-policy"), Some("no-referrer"));
}

#[tokio::test]
async fn healthz_pings_every_service() {
    let env = Env::start().await;
    let app = env.app();
    let res = send(&app, get("/v1/healthz")).await;
    assert_eq!(res.status, StatusCode::SERVICE_UNAVAILABLE);
    let body = res.json();
    assert_eq!(body["broker"], "connected");
    assert_eq!(body["services"]["kez-registry"], "unavailable");

    assert_eq!(body["inbox"], "unavailable");
    let full = Arc::new(AtomicBool::new(false));
    for name in kez_gateway::SERVICES {
        if name == service::INBOX {
            let full = full.clone();
            env.fake(name, svc::INBOX_STATUS, move |_| {
                let full = full.load(Ordering::SeqCst);
                let status = json!({"bytes": 960, "max_bytes": 1000, "messages": 3, "consumers": 2, "full": full});
                async move { Ok(status.to_string().into()) }
            })
            .await;
        } else {
            env.fake(name, &format!("kez.svc.test.{}", name.replace('-', "_")), |_| async { Ok("{}".into()) }).await;
        }
    }
    // A fresh state: answers are cached for a second.
    let res = send(&env.app(), get("/v1/healthz")).await;
    assert_eq!(res.status, StatusCode::OK, "{:?}", res.json());
    let body = res.json();
    assert_eq!(body["status"], "ok");
    assert_eq!(body["broker"], "connected");
    assert_eq!(body["inbox"], "ok");
    for name in kez_gateway::SERVICES {
        assert_eq!(body["services"][name], "ok", "{body}");
    }

    // A full inbox store refuses mail: the server is not healthy although every service answers.
    full.store(true, Ordering::SeqCst);
    let res = send(&env.app(), get("/v1/healthz")).await;
    assert_eq!(res.status, StatusCode::SERVICE_UNAVAILABLE);
    let body = res.json();
    assert_eq!((body["status"].as_str(), body["inbox"].as_str()), (Some("unavailable"), Some("full")), "{body}");
    assert_eq!(body["services"][service::INBOX], "ok");
}

#[tokio::test]
async fn metrics_count_requests_by_route_and_status() {
    let env = Env::start().await;
    let app = env.app();
    send(&app, get("/v1/config")).await;
    send(&app, get("/v1/config")).await;
    send(&app, get(&format!("/v1/keys/ed25519/{KEY_HEX}"))).await; // 503: nothing answers
    send(&app, get("/v1/nope/123")).await;
    send(&app, get("/some/spa/page")).await;
    let res = send(&app, get("/v1/metrics")).await;
    assert_eq!(res.status, StatusCode::OK);
    assert!(res.header("content-type").unwrap().starts_with("text/plain; version=0.0.4"));
    let text = String::from_utf8(res.body.to_vec()).unwrap();
    for line in [
        r#"kez_gateway_http_requests_total{route="/v1/config",method="GET",status="200"} 2"#,
        r#"kez_gateway_http_requests_total{route="/v1/keys/ed25519/{hex}",method="GET",status="503"} 1"#,
        r#"kez_gateway_http_requests_total{route="unmatched",method="GET",status="404"} 1"#,
        r#"kez_gateway_http_requests_total{route="web",method="GET",status="200"} 1"#,
        r#"kez_gateway_http_request_duration_seconds_count{route="/v1/config"} 2"#,
        r#"kez_gateway_service_errors_total{code="unavailable"} 1"#,
        "kez_gateway_nats_connected 1",
    ] {
        assert!(text.lines().any(|l| l == line), "missing {line:?} in\n{text}");
    }
}

/// Fills `{param}` segments with values that pass the gateway's own checks.
fn concrete(path: &str) -> String {
    path.replace("{hex}", KEY_HEX).replace("{handle}", "alice").replace("{hash}", &"e".repeat(64))
}

#[tokio::test]
async fn openapi_document_and_router_agree() {
    let env = Env::start().await;
    let app = env.app();
    let res = send(&app, get("/v1/openapi.json")).await;
    assert_eq!(res.status, StatusCode::OK);
    let doc = res.json();
    assert_eq!(doc["openapi"], "3.1.0");
    assert_eq!(doc["servers"][0]["url"], PUBLIC_URL);

    let methods = ["get", "put", "post", "delete", "patch", "head", "options"];
    let documented: BTreeSet<(String, String)> = doc["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(path, item)| {
            item.as_object()
                .unwrap()
                .keys()
                .filter(|k| methods.contains(&k.as_str()))
                .map(move |m| (m.to_uppercase(), path.clone()))
        })
        .collect();
    let table: BTreeSet<(String, String)> =
        kez_gateway::API_ROUTES.iter().map(|(m, p)| (m.to_string(), p.to_string())).collect();
    assert_eq!(documented, table, "openapi.json and API_ROUTES differ");

    // Every documented route is served by a handler (not the 404 fallback or the
    // wrong-method answer, which both say `not_found`).
    for (method, path) in &table {
        let req = request(Method::from_bytes(method.as_bytes()).unwrap(), &concrete(path), "{}");
        let res = send(&app, req).await;
        // (healthz answers 503 with its own report, not the error shape)
        let is_error = serde_json::from_slice::<serde_json::Value>(&res.body).is_ok_and(|v| v.get("error").is_some());
        let code = is_error.then(|| res.error_code());
        assert_ne!(code.as_deref(), Some("not_found"), "{method} {path} is not routed");
    }
    // And a route that is not in the table is not served.
    let res = send(&app, get("/v1/sigchains")).await;
    assert_eq!(res.error_code(), "not_found");

    // Every $ref resolves.
    let text = doc.to_string();
    for r in text.split("\"$ref\":\"#/").skip(1) {
        let pointer = format!("/{}", &r[..r.find('"').unwrap()]);
        assert!(doc.pointer(&pointer).is_some(), "dangling $ref {pointer}");
    }
}
