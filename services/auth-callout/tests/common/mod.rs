//! Shared set-up for the auth-callout integration tests: a real nats-server (kez-testkit), a
//! the registry service (kez_registry), the worker, and end users that connect with their own key.
#![allow(dead_code, unused_imports, clippy::unwrap_used)]

use std::time::{Duration, Instant};

use kez_auth_callout::{CalloutConfig, CalloutHandle, RejectReason};
use kez_service_kit::settings::Settings;
pub use kez_testkit::user::{Events, USER_CONNECT_TIMEOUT, User, Violation};
use kez_testkit::{NatsServer, ServiceUser};

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
        user.register(&self.conn, DOMAIN).await.unwrap();
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
