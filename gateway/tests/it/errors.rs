//! Every error the gateway produces itself, and the mapping of service errors.

use std::time::Duration;

use axum::body::Bytes;
use axum::http::{Method, StatusCode};
use kv_schemas::subjects::{service, svc};
use kv_schemas::{ErrorCode, KezError};

use crate::common::*;

#[tokio::test]
async fn shape_errors_are_caught_before_nats() {
    // No service runs: any of these reaching NATS would be 503, not the code asserted.
    let env = Env::start().await;
    let app = env.app();
    let events = format!("/v1/sigchains/ed25519/{KEY_HEX}/events");
    let cases = [
        (post(&events, "{\"chain\":"), "invalid_json"),
        (post(&events, "not json"), "invalid_json"),
        (post(&events, "[1,2]"), "invalid_link"),
        (post(&events, "{\"seqno\":1}"), "invalid_link"),
        (post(&events, "{\"chain\":42}"), "invalid_link"),
        (post(&events, format!("{{\"chain\":\"ed25519:{}\"}}", "ab".repeat(32))), "invalid_link"),
        (post("/v1/sigchains/ed25519/XYZ/events", "{}"), "invalid_key"),
        (get(&format!("/v1/sigchains/ed25519/{}", KEY_HEX.to_uppercase())), "invalid_key"),
        (get("/v1/keys/ed25519/00"), "invalid_key"),
        (get(&format!("/v1/manifests/by-owner/ed25519/{}", "0".repeat(64))), "invalid_key"),
        (get("/v1/manifests/ABCDEF"), "invalid_encoding"),
        (get(&format!("/v1/manifests/{}", "A".repeat(64))), "invalid_encoding"),
        (get("/v1/u/-bad-"), "invalid_handle"),
        (get("/v1/u/al%20ice"), "invalid_handle"),
        (get("/v1/u/alice@other.example"), "handle_not_found"),
        (get("/.well-known/webfinger"), "invalid_request"),
        (get("/.well-known/webfinger?resource="), "invalid_request"),
        (get("/.well-known/webfinger?resource=acct:a@kez.test&resource=acct:b@kez.test"), "invalid_request"),
    ];
    for (req, want) in cases {
        let what = format!("{} {}", req.method(), req.uri());
        let res = send(&app, req).await;
        assert_eq!(res.error_code(), want, "{what}: {res:?}");
    }
}

#[tokio::test]
async fn chain_in_body_must_match_the_path() {
    let env = Env::start().await;
    let app = env.app();
    let res = send(
        &app,
        post(
            &format!("/v1/sigchains/ed25519/{KEY_HEX}/events"),
            format!("{{\"chain\":\"ed25519:{}\"}}", "cd".repeat(32)),
        ),
    )
    .await;
    assert_eq!(res.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(res.error_code(), "invalid_link");
    assert!(res.message().contains("path"), "{}", res.message());
}

#[tokio::test]
async fn bodies_over_the_route_bound_are_413_json() {
    let env = Env::start().await;
    let app = env.app();
    let cases = [
        post("/v1/register", vec![b' '; kv_schemas::register::MAX_BYTES + 1]),
        post(&format!("/v1/sigchains/ed25519/{KEY_HEX}/events"), vec![b' '; kv_schemas::sigchain::MAX_LINK_BYTES + 1]),
        put("/v1/manifests", vec![b' '; kv_schemas::manifest::MAX_MANIFEST_BYTES + 1]),
    ];
    for req in cases {
        let what = req.uri().to_string();
        let res = send(&app, req).await;
        assert_eq!(res.status, StatusCode::PAYLOAD_TOO_LARGE, "{what}");
        assert_eq!(res.error_code(), "too_large", "{what}");
    }
    // Without Content-Length too (a streamed body is cut off while reading).
    let stream = futures::stream::iter((0..10).map(|_| Ok::<_, std::io::Error>(Bytes::from(vec![b' '; 1024]))));
    let res = send(&app, post("/v1/register", axum::body::Body::from_stream(stream))).await;
    assert_eq!(res.error_code(), "too_large");
}

#[tokio::test]
async fn unknown_routes_are_404_not_found_json() {
    let env = Env::start().await;
    let app = env.app();
    for req in [
        get("/v1"),
        get("/v1/"),
        get("/v1/nope"),
        get("/v1/u"),
        get("/v1/sigchains/ed25519/x/y/z"),
        get("/.well-known/host-meta"),
        post("/", ""),
    ] {
        let what = format!("{} {}", req.method(), req.uri());
        let res = send(&app, req).await;
        assert_eq!(res.status, StatusCode::NOT_FOUND, "{what}");
        assert_eq!(res.error_code(), "not_found", "{what}");
    }
}

#[tokio::test]
async fn known_routes_refuse_other_methods_with_405_and_allow() {
    let env = Env::start().await;
    let app = env.app();
    for (req, allow) in [
        (post("/v1/config", ""), "GET,HEAD"),
        (request(Method::DELETE, "/v1/manifests", ""), "PUT"),
        (get("/v1/register"), "POST"),
        (request(Method::TRACE, "/v1/healthz", ""), "GET,HEAD"),
        (post("/.well-known/webfinger", ""), "GET,HEAD"),
    ] {
        let what = format!("{} {}", req.method(), req.uri());
        let res = send(&app, req).await;
        assert_eq!(res.status, StatusCode::METHOD_NOT_ALLOWED, "{what}");
        assert_eq!(res.error_code(), "method_not_allowed", "{what}");
        assert_eq!(res.header("allow"), Some(allow), "{what}");
    }
}

#[tokio::test]
async fn no_responders_is_503_unavailable() {
    let env = Env::start().await;
    let app = env.app();
    let res = send(&app, get(&format!("/v1/keys/ed25519/{KEY_HEX}"))).await;
    assert_eq!(res.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(res.error_code(), "unavailable");
    let res = send(&app, post("/v1/register", "{}")).await;
    assert_eq!(res.error_code(), "unavailable");
}

#[tokio::test]
async fn broker_down_is_503_unavailable() {
    let env = Env::start().await;
    let app = env.app();
    let Env { server, nats, .. } = env;
    drop(server);
    // Wait for the client to notice.
    for _ in 0..200 {
        if nats.connection_state() != async_nats::connection::State::Connected {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let started = std::time::Instant::now();
    let res = send(&app, get(&format!("/v1/sigchains/ed25519/{KEY_HEX}"))).await;
    assert_eq!(res.error_code(), "unavailable");
    assert!(started.elapsed() < Duration::from_secs(1), "fails fast");
    let res = send(&app, get("/v1/healthz")).await;
    assert_eq!(res.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(res.json()["broker"], "disconnected");
}

#[tokio::test]
async fn slow_service_is_504_timeout() {
    let env = Env::start().await;
    env.fake(service::REGISTRY, svc::REGISTRY_LOOKUP_KEY, |_| async {
        tokio::time::sleep(Duration::from_secs(2)).await;
        Ok(Bytes::from_static(b"{}"))
    })
    .await;
    let app = env.app_with(|c| c.service_timeout = Duration::from_millis(200));
    let started = std::time::Instant::now();
    let res = send(&app, get(&format!("/v1/keys/ed25519/{KEY_HEX}"))).await;
    assert_eq!(res.status, StatusCode::GATEWAY_TIMEOUT);
    assert_eq!(res.error_code(), "timeout");
    assert!(started.elapsed() < Duration::from_millis(1500));
}

#[tokio::test]
async fn whole_request_timeout_is_504_json() {
    // Each hop of /v1/u is within service_timeout, the two together are not within request_timeout.
    let env = Env::start().await;
    let record = format!(r#"{{"handle":"alice@{DOMAIN}","key":"{}","registered_at":1}}"#, key());
    env.fake(service::REGISTRY, svc::REGISTRY_LOOKUP_HANDLE, move |_| {
        let record = record.clone();
        async move {
            tokio::time::sleep(Duration::from_millis(300)).await;
            Ok(Bytes::from(record))
        }
    })
    .await;
    env.fake(service::SIGCHAIN, svc::SIGCHAIN_STATE, |_| async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        Ok(Bytes::from_static(b"{\"endpoints\":[]}"))
    })
    .await;
    let app = env.app_with(|c| {
        c.service_timeout = Duration::from_millis(400);
        c.request_timeout = Duration::from_millis(450);
    });
    let res = send(&app, get("/v1/u/alice")).await;
    assert_eq!(res.status, StatusCode::GATEWAY_TIMEOUT);
    assert_eq!(res.error_code(), "timeout");
}

#[tokio::test]
async fn service_errors_map_through_the_one_table() {
    let env = Env::start().await;
    // The stand-in answers with the error whose number is in the request.
    env.fake(service::REGISTRY, svc::REGISTRY_LOOKUP_KEY, |_| async {
        Err(KezError::new(ErrorCode::KeyNotFound, "no such key"))
    })
    .await;
    env.fake(service::SIGCHAIN, svc::SIGCHAIN_APPEND, |body| async move {
        let n: u16 = serde_json::from_slice::<serde_json::Value>(&body).unwrap()["n"].as_u64().unwrap() as u16;
        Err(KezError::new(ErrorCode::from_number(n).unwrap(), "secret detail 10.1.2.3"))
    })
    .await;
    let app = env.app();
    let res = send(&app, get(&format!("/v1/keys/ed25519/{KEY_HEX}"))).await;
    assert_eq!(res.error_code(), "key_not_found");
    assert_eq!(res.message(), "no such key");

    for &code in ErrorCode::ALL {
        let body = format!(r#"{{"chain":"{}","n":{}}}"#, key(), code.number());
        let res = send(&app, post(&format!("/v1/sigchains/ed25519/{KEY_HEX}/events"), body)).await;
        assert_eq!(res.status.as_u16(), code.http_status(), "{code}");
        assert_eq!(res.error_code(), code.as_str());
        if res.status.is_server_error() {
            assert!(!res.message().contains("secret"), "5xx leaks: {}", res.message());
        } else {
            assert_eq!(res.message(), "secret detail 10.1.2.3");
        }
    }
}

#[tokio::test]
async fn register_rate_limit_is_429_with_retry_after() {
    let env = Env::start().await;
    let registry = env.fake_recording(service::REGISTRY, svc::REGISTRY_REGISTER, Ok(&register_reply(true))).await;
    let app = env.app_with(|c| c.register_rate = kez_gateway::RateLimit { burst: 2, per_minute: 1 });
    for _ in 0..2 {
        let res = send(&app, from_peer(post("/v1/register", "{}"), "192.0.2.1:5000")).await;
        assert_eq!(res.status, StatusCode::CREATED);
    }
    let res = send(&app, from_peer(post("/v1/register", "{}"), "192.0.2.1:5001")).await;
    assert_eq!(res.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(res.error_code(), "rate_limited");
    let retry: u64 = res.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    assert_eq!(registry.bodies().len(), 2, "refused requests are not forwarded");

    // Another address has its own bucket.
    let res = send(&app, from_peer(post("/v1/register", "{}"), "192.0.2.2:5000")).await;
    assert_eq!(res.status, StatusCode::CREATED);
    // X-Forwarded-For is ignored unless trusted: same peer, still limited.
    let mut req = from_peer(post("/v1/register", "{}"), "192.0.2.1:5002");
    req.headers_mut().insert("x-forwarded-for", "198.51.100.1".parse().unwrap());
    assert_eq!(send(&app, req).await.status, StatusCode::TOO_MANY_REQUESTS);

    let metrics = String::from_utf8(send(&app, get("/v1/metrics")).await.body.to_vec()).unwrap();
    assert!(metrics.contains("kez_gateway_rate_limited_total 2"), "{metrics}");
}

#[tokio::test]
async fn trusted_proxy_header_keys_the_bucket() {
    let env = Env::start().await;
    env.fake_recording(service::REGISTRY, svc::REGISTRY_REGISTER, Ok(&register_reply(false))).await;
    let app = env.app_with(|c| {
        c.trust_proxy_headers = true;
        c.register_rate = kez_gateway::RateLimit { burst: 1, per_minute: 1 };
    });
    let from = |client: &str| {
        let mut req = from_peer(post("/v1/register", "{}"), "127.0.0.1:9000");
        req.headers_mut().insert("x-forwarded-for", format!("203.0.113.50, {client}").parse().unwrap());
        req
    };
    let res = send(&app, from("198.51.100.1")).await;
    assert_eq!(res.status, StatusCode::OK, "{res:?}");
    assert_eq!(send(&app, from("198.51.100.1")).await.status, StatusCode::TOO_MANY_REQUESTS);
    // Same proxy peer, another client: its own bucket.
    assert_eq!(send(&app, from("198.51.100.2")).await.status, StatusCode::OK);
}
