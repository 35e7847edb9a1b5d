//! [`TestStack`]: the in-process stack — a [`NatsServer`] with the services a test starts on
//! it, each on its own service user, plus the ops user to talk to them. (The real binary is
//! [`crate::StackProcess`].) The kit cannot depend on service crates, so the test passes each
//! service's `start`.

use std::future::Future;
use std::time::Duration;

use anyhow::{Result, anyhow};
use ed25519_dalek::SigningKey;
use kez_service_kit::settings::Settings;
use kez_service_kit::svc;
use kv_schemas::api::{RegisterReply, SignedRegistration};
use kv_schemas::{Handle, KezError, now_ms};

use crate::{NatsServer, ServiceUser};

/// The home domain of test stacks.
pub const TEST_DOMAIN: &str = "kez.test";
/// Bound of one request from a test.
const CALL_TIMEOUT: Duration = Duration::from_secs(5);

/// A nats-server and the services started on it.
pub struct TestStack {
    /// The ops user (full `APP` rights): what tests send requests as.
    pub ops: async_nats::Client,
    /// The settings every service got (`TEST_DOMAIN`).
    pub settings: Settings,
    services: Vec<async_nats::service::Service>,
    /// Last: the server outlives the connections and services above.
    pub server: NatsServer,
}

impl TestStack {
    /// A server (fsync per write off: these tests are not about durability) and no services yet;
    /// links the services build point at `public_url`.
    pub async fn start(public_url: &str) -> Result<TestStack> {
        let server = NatsServer::builder().sync_interval_always(false).start().await?;
        let ops = server.connect_ops().await?;
        Ok(TestStack { ops, settings: Settings::local(TEST_DOMAIN, public_url), services: Vec::new(), server })
    }

    /// Starts one service as `user`: `start` gets the connection and the settings
    /// (e.g. `|c, s| async move { kez_registry::start(&c, &s).await }`).
    pub async fn with<F, Fut>(mut self, user: ServiceUser, start: F) -> Result<TestStack>
    where
        F: FnOnce(async_nats::Client, Settings) -> Fut,
        Fut: Future<Output = Result<async_nats::service::Service, async_nats::Error>>,
    {
        let conn = self.server.connect_as(user).await?;
        let service = start(conn, self.settings.clone()).await.map_err(|e| anyhow!("starting {user:?}: {e}"))?;
        self.services.push(service);
        Ok(self)
    }

    /// One request of the service contract, as ops.
    pub async fn call<R: kv_schemas::api::ServiceRequest>(&self, request: &R) -> Result<R::Reply, KezError> {
        svc::call(&self.ops, request, CALL_TIMEOUT).await
    }

    /// Registers `<local>@kez.test` for `signing` (needs the registry).
    pub async fn register(&self, signing: &SigningKey, local: &str) -> Result<RegisterReply, KezError> {
        let request = kv_schemas::register::build(
            signing,
            &Handle::new(local, TEST_DOMAIN)?,
            now_ms(),
            kv_schemas::random_bytes(),
        )?;
        self.call(&SignedRegistration(request)).await
    }
}
