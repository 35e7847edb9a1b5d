//! Harness: a real nats-server per test (kez-testkit), the gateway's router
//! driven with `oneshot`, and tiny stand-in services built on
//! `kez_service_kit::svc` that answer on the real subjects.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::service::Service;
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::ConnectInfo;
use axum::http::{HeaderMap, Method, Request, StatusCode};
use kez_gateway::{AppState, GatewayConfig, WebAssets};
use kez_service_kit::svc;
use kez_testkit::{NatsServer, ServiceUser};
use kv_schemas::KezError;
use serde_json::Value;
use tower::ServiceExt as _;

pub const DOMAIN: &str = "kez.test";
pub const PUBLIC_URL: &str = "http://gw.kez.test";

/// A nats-server, the gateway's NATS client and the stand-in services started so far.
pub struct Env {
    pub server: NatsServer,
    pub nats: async_nats::Client,
    services: Mutex<Vec<Service>>,
}

pub fn config() -> GatewayConfig {
    GatewayConfig { domain: DOMAIN.into(), public_url: PUBLIC_URL.into(), ..GatewayConfig::default() }
}

impl Env {
    pub async fn start() -> Env {
        // Gateway warnings (5xx details) show up in the output of failing tests.
        let _ = tracing_subscriber::fmt()
            .with_env_filter(
                tracing_subscriber::EnvFilter::try_from_default_env()
                    .unwrap_or_else(|_| "kez_gateway=warn,kez_service_kit=debug".into()),
            )
            .with_test_writer()
            .try_init();
        let server = NatsServer::start().await.expect("nats-server starts");
        let nats = server.connect_as(ServiceUser::Gateway).await.expect("gateway connects");
        Env { server, nats, services: Mutex::new(Vec::new()) }
    }

    /// The router with the test config and no web app.
    pub fn app(&self) -> Router {
        self.app_with(|_| {})
    }

    /// The router with a modified test config and no web app.
    pub fn app_with(&self, edit: impl FnOnce(&mut GatewayConfig)) -> Router {
        let mut c = config();
        edit(&mut c);
        let state = AppState::with_assets(c, self.nats.clone(), WebAssets::from_files(Vec::<(String, Bytes)>::new()))
            .expect("config is valid");
        kez_gateway::app(state)
    }

    /// Starts a stand-in service `name` (a real kez service name, so `$SRV.PING`
    /// finds it) with one endpoint on `subject`.
    pub async fn fake<H, Fut>(&self, name: &str, subject: &str, handler: H)
    where
        H: Fn(Bytes) -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = Result<Bytes, KezError>> + Send + 'static,
    {
        let client = self.server.connect_ops().await.expect("responder connects");
        let service = svc::start(&client, name, "test stand-in").await.expect("service starts");
        let endpoint = subject.rsplit('.').next().unwrap_or("e");
        svc::serve(&service, endpoint, subject, handler).await.expect("endpoint added");
        settle(&client).await;
        self.services.lock().unwrap().push(service);
    }

    /// A stand-in that answers `reply` and records every request body.
    pub async fn fake_recording(&self, name: &str, subject: &str, reply: Result<&str, KezError>) -> Recorder {
        let seen = Recorder::default();
        let recorder = seen.clone();
        let reply = reply.map(|s| Bytes::from(s.to_string()));
        self.fake(name, subject, move |body| {
            recorder.0.lock().unwrap().push(body);
            let reply = reply.clone();
            async move { reply }
        })
        .await;
        seen
    }
}

/// Waits until the server has processed everything `client` sent so far.
/// (`flush` only writes the socket.) A message to itself is delivered only
/// after the server handled the earlier SUBs, which are in order on one connection.
pub async fn settle(client: &async_nats::Client) {
    use futures::StreamExt as _;
    let subject = client.new_inbox();
    let mut sub = client.subscribe(subject.clone()).await.expect("subscribe");
    client.publish(subject, Bytes::new()).await.expect("publish");
    tokio::time::timeout(Duration::from_secs(10), sub.next()).await.expect("settles").expect("message");
}

/// Request bodies a stand-in received.
#[derive(Clone, Default)]
pub struct Recorder(Arc<Mutex<Vec<Bytes>>>);

impl Recorder {
    pub fn bodies(&self) -> Vec<Bytes> {
        self.0.lock().unwrap().clone()
    }

    pub fn json(&self, i: usize) -> Value {
        serde_json::from_slice(&self.bodies()[i]).unwrap()
    }
}

/// A collected response.
#[derive(Debug)]
pub struct Resp {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Resp {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.body))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|v| v.to_str().unwrap())
    }

    /// Asserts the PROTOCOL.md §10 error shape and returns the code.
    pub fn error_code(&self) -> String {
        let v = self.json();
        assert_eq!(self.header("content-type"), Some("application/json"), "{self:?}");
        let obj = v.as_object().unwrap();
        assert_eq!(obj.len(), 1, "{v}");
        let err = v["error"].as_object().unwrap_or_else(|| panic!("no error object: {v}"));
        assert_eq!(err.len(), 2, "{v}");
        assert!(err["message"].is_string(), "{v}");
        let code = err["code"].as_str().unwrap().to_string();
        let parsed = kv_schemas::ErrorCode::parse(&code).unwrap_or_else(|| panic!("unknown code {code}"));
        assert_eq!(self.status.as_u16(), parsed.http_status(), "status of {code}");
        code
    }

    pub fn message(&self) -> String {
        self.json()["error"]["message"].as_str().unwrap().to_string()
    }
}

pub fn request(method: Method, uri: &str, body: impl Into<Body>) -> Request<Body> {
    Request::builder().method(method).uri(uri).body(body.into()).unwrap()
}

pub fn get(uri: &str) -> Request<Body> {
    request(Method::GET, uri, Body::empty())
}

pub fn post(uri: &str, body: impl Into<Body>) -> Request<Body> {
    request(Method::POST, uri, body)
}

pub fn put(uri: &str, body: impl Into<Body>) -> Request<Body> {
    request(Method::PUT, uri, body)
}

/// Sets the peer address the way `into_make_service_with_connect_info` does.
pub fn from_peer(mut req: Request<Body>, peer: &str) -> Request<Body> {
    let addr: SocketAddr = peer.parse().unwrap();
    req.extensions_mut().insert(ConnectInfo(addr));
    req
}

pub async fn send(app: &Router, req: Request<Body>) -> Resp {
    let res = tokio::time::timeout(Duration::from_secs(30), app.clone().oneshot(req))
        .await
        .expect("answer within 30 s")
        .unwrap();
    let status = res.status();
    let headers = res.headers().clone();
    let body = axum::body::to_bytes(res.into_body(), usize::MAX).await.unwrap();
    Resp { status, headers, body }
}

/// A valid key's hex (the RFC 8032 test key 1).
pub const KEY_HEX: &str = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a";

/// A registry `register` reply for [`key`].
pub fn register_reply(created: bool) -> String {
    format!(r#"{{"handle":"alice@kez.test","key":"{}","created":{created}}}"#, key())
}

pub fn key() -> String {
    format!("ed25519:{KEY_HEX}")
}
