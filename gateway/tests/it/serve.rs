//! The real thing: bind port 0, talk HTTP/1.1 over TCP, shut down gracefully.

use std::time::Duration;

use axum::body::Bytes;
use axum::http::{Request, StatusCode};
use http_body_util::{BodyExt as _, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use kez_gateway::Gateway;

use crate::common::*;

#[tokio::test]
async fn binds_port_zero_serves_http_and_shuts_down() {
    let env = Env::start().await;
    let mut cfg = config();
    cfg.listen = "127.0.0.1:0".parse().unwrap();
    cfg.register_rate = kez_gateway::RateLimit { burst: 1, per_minute: 1 };
    let gateway = Gateway::bind(cfg, env.nats.clone()).await.unwrap();
    let addr = gateway.local_addr();
    assert_ne!(addr.port(), 0);
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(gateway.run(async move {
        let _ = stop_rx.await;
    }));

    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let fetch = |method: &str, path: &str| {
        let req = Request::builder()
            .method(method)
            .uri(format!("http://{addr}{path}"))
            .body(Full::new(Bytes::from_static(b"{}")))
            .unwrap();
        let client = client.clone();
        async move {
            let res = client.request(req).await.unwrap();
            let status = res.status();
            let body = res.into_body().collect().await.unwrap().to_bytes();
            (status, body)
        }
    };

    let (status, body) = fetch("GET", "/v1/config").await;
    assert_eq!(status, StatusCode::OK);
    let cfg: kv_schemas::api::ClientConfig = serde_json::from_slice(&body).unwrap();
    assert_eq!(cfg.domain, DOMAIN);

    // The peer address reaches the rate limiter through ConnectInfo: the second
    // registration from 127.0.0.1 is refused before any service is asked.
    let (status, _) = fetch("POST", "/v1/register").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    let (status, body) = fetch("POST", "/v1/register").await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body:?}");

    let (status, _) = fetch("GET", "/").await;
    assert_eq!(status, StatusCode::OK);

    stop_tx.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(15), server).await.expect("stops").unwrap().unwrap();
    // The port is closed now.
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
}

#[tokio::test]
async fn bind_reports_a_taken_port_and_a_bad_config() {
    let env = Env::start().await;
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let mut cfg = config();
    cfg.listen = taken.local_addr().unwrap();
    let err = Gateway::bind(cfg, env.nats.clone()).await.unwrap_err();
    assert!(matches!(err, kez_gateway::GatewayError::Bind { .. }), "{err}");

    let mut cfg = config();
    cfg.domain = "nodot".into();
    let err = Gateway::bind(cfg, env.nats.clone()).await.unwrap_err();
    assert!(matches!(err, kez_gateway::GatewayError::Config(_)), "{err}");
}
