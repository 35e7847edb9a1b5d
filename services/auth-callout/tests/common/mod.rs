//! Shared set-up for the auth-callout integration tests: a real nats-server (kez-testkit), a
//! the registry service (kez_registry), the worker, and end users that connect with their own key.
#![allow(dead_code, clippy::unwrap_used)]

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_nats::{Auth, AuthError, ConnectOptions, Event};
use ed25519_dalek::SigningKey;
use kez_auth_callout::{CalloutConfig, CalloutHandle, RejectReason};
use kez_service_kit::settings::Settings;
use kez_service_kit::svc;
use kez_testkit::{NatsServer, ServiceUser};
use kv_schemas::api::RegisterReply;
use kv_schemas::subjects::svc::REGISTRY_REGISTER;
use kv_schemas::subjects::{DeviceId, device_connection_name};
use kv_schemas::{Handle, PublicKey};
use nkeys::{KeyPair, KeyPairType};

/// Connect timeout for end users: a refused login must fail fast, not hang.
pub const USER_CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// The real registry service (`kez_registry`) on its own service-user connection. Users are
/// registered through `kez.svc.registry.v1.register` with a signed registration request (§4).
pub struct TestRegistry {
    service: Option<async_nats::service::Service>,
    conn: async_nats::Client,
}

/// Home domain of the test deployment.
pub const DOMAIN: &str = "kez.test";

impl TestRegistry {
    pub async fn start(server: &NatsServer) -> Self {
        let registry = server.connect_as(ServiceUser::Registry).await.unwrap();
        let settings = Settings::local(DOMAIN, "http://kez.test");
        let service = kez_registry::start(&registry, &settings).await.unwrap();
        // Registrations are requests from outside the registry (its own user may only answer).
        let conn = server.connect_ops().await.unwrap();
        Self { service: Some(service), conn }
    }

    /// Registers `u<first 8 hex>@kez.test` for the user's key.
    pub async fn register(&self, user: &User) {
        let handle = Handle::new(&format!("u{}", &user.hex()[..8]), DOMAIN).unwrap();
        let request =
            kv_schemas::register::build(&user.signing, &handle, kv_schemas::now_ms(), kv_schemas::random_bytes());
        let reply = svc::call(&self.conn, REGISTRY_REGISTER, request.into(), Duration::from_secs(5)).await.unwrap();
        let reply: RegisterReply = serde_json::from_slice(&reply).unwrap();
        assert_eq!(reply.key, user.key);
    }

    /// Takes the registry off the bus (no responders from then on).
    pub async fn stop(&mut self) {
        if let Some(s) = self.service.take() {
            s.stop().await.unwrap();
        }
    }
}

/// Server + registry + worker.
pub struct Env {
    pub callout: CalloutHandle,
    pub registry: TestRegistry,
    pub server: NatsServer,
}

impl Env {
    pub async fn start() -> Self {
        Self::start_with(|c| c).await
    }

    pub async fn start_with(adjust: impl FnOnce(CalloutConfig) -> CalloutConfig) -> Self {
        // sync_interval off: these tests are not about durability and fsync per write is slow.
        let server = NatsServer::builder().sync_interval_always(false).start().await.unwrap();
        let registry = TestRegistry::start(&server).await;
        let auth_conn = server.connect_worker().await.unwrap();
        let app_conn = server.connect_as(ServiceUser::AuthCallout).await.unwrap();
        let mut config = CalloutConfig::new(server.issuer_key().clone());
        config.sys_conn = Some(server.connect_sys().await.unwrap());
        let config = adjust(config);
        let callout = kez_auth_callout::start(auth_conn, app_conn, config)
            .await
            .unwrap_or_else(|e| panic!("worker did not start: {e}"));
        Self { callout, registry, server }
    }

    /// A user registered through the registry service.
    pub async fn registered_user(&self) -> User {
        let u = User::new();
        self.registry.register(&u).await;
        u
    }

    /// Waits until the worker has counted `n` refusals for `reason` (counters are bumped just
    /// before the reply is sent, so they can trail the client's error by a moment).
    pub async fn wait_rejected(&self, reason: RejectReason, n: u64) {
        let deadline = Instant::now() + Duration::from_secs(3);
        while self.callout.stats().rejected_for(reason) < n {
            assert!(Instant::now() < deadline, "expected {n} × {reason}, stats: {:?}", self.callout.stats());
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

/// An end user: one Ed25519 seed, used as identity key and as NATS nkey.
#[derive(Clone)]
pub struct User {
    pub signing: SigningKey,
    pub key: PublicKey,
}

impl User {
    pub fn new() -> Self {
        let signing = SigningKey::from_bytes(&kv_schemas::random_bytes::<32>());
        Self { key: PublicKey::of(&signing), signing }
    }

    pub fn hex(&self) -> String {
        self.key.hex()
    }

    /// `U…` of the same 32 bytes (PROTOCOL.md §1).
    pub fn nkey(&self) -> String {
        KeyPair::new_from_raw(KeyPairType::User, self.signing.to_bytes()).unwrap().public_key()
    }

    /// Connect options as a kez client builds them: refuse non-nonces, sign the ASCII nonce,
    /// use the own reply prefix.
    pub fn options(&self, events: &Events) -> ConnectOptions {
        let signing = self.signing.clone();
        let nkey = self.nkey();
        self.options_with(events, move |nonce: Vec<u8>| {
            let nonce = String::from_utf8(nonce).map_err(AuthError::new)?;
            kv_schemas::nonce::check_nats_nonce(&nonce).map_err(AuthError::new)?;
            let mut auth = Auth::new();
            auth.nkey = Some(nkey.clone());
            auth.signature = Some(kv_schemas::keys::sign_raw(&signing, nonce.as_bytes()).to_vec());
            Ok(auth)
        })
    }

    /// Connect options with a custom auth callback (for the forged-signature tests).
    pub fn options_with<F>(&self, events: &Events, sign: F) -> ConnectOptions
    where
        F: Fn(Vec<u8>) -> Result<Auth, AuthError> + Send + Sync + 'static,
    {
        let sign = Arc::new(sign);
        let sink = events.clone();
        ConnectOptions::with_auth_callback(move |nonce| {
            let sign = sign.clone();
            async move { sign(nonce) }
        })
        .custom_inbox_prefix(format!("_INBOX.{}", self.hex()))
        .connection_timeout(USER_CONNECT_TIMEOUT)
        .request_timeout(Some(Duration::from_secs(1)))
        .event_callback(move |event| {
            let sink = sink.clone();
            async move { sink.push(event) }
        })
    }

    pub async fn connect(&self, url: &str) -> (async_nats::Client, Events) {
        self.connect_named(url, None).await
    }

    /// Connects as one device (connection name `kez-device:<id>`, PROTOCOL.md §9.5).
    pub async fn connect_device(&self, url: &str, device: &DeviceId) -> (async_nats::Client, Events) {
        self.connect_named(url, Some(device_connection_name(device))).await
    }

    async fn connect_named(&self, url: &str, name: Option<String>) -> (async_nats::Client, Events) {
        let events = Events::default();
        let mut options = self.options(&events);
        if let Some(name) = name {
            options = options.name(name);
        }
        let client = options
            .connect(url)
            .await
            .unwrap_or_else(|e| panic!("user {} could not connect to {url}: {e}", &self.hex()[..8]));
        (client, events)
    }
}

/// Everything the client reported through its event callback.
#[derive(Clone, Default)]
pub struct Events(Arc<Mutex<Vec<String>>>);

impl Events {
    fn push(&self, e: Event) {
        self.0.lock().unwrap().push(match e {
            Event::ServerError(err) => format!("server error: {err}"),
            other => other.to_string(),
        });
    }

    pub fn all(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }

    /// Waits for the server's asynchronous `-ERR 'Permissions Violation for <kind> to "<subject>"'`.
    pub async fn expect_violation(&self, kind: Violation, subject: &str) {
        let needle = format!("Permissions Violation for {} to \"{subject}\"", kind.word());
        let deadline = Instant::now() + Duration::from_secs(3);
        loop {
            if self.all().iter().any(|e| e.contains(&needle)) {
                return;
            }
            assert!(Instant::now() < deadline, "no {needle:?} event; events: {:#?}", self.all());
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    pub fn violations(&self) -> Vec<String> {
        self.all().into_iter().filter(|e| e.contains("Permissions Violation")).collect()
    }
}

#[derive(Clone, Copy, Debug)]
pub enum Violation {
    Publish,
    Subscription,
}

impl Violation {
    fn word(self) -> &'static str {
        match self {
            Violation::Publish => "Publish",
            Violation::Subscription => "Subscription",
        }
    }
}
