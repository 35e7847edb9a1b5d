//! [`AppState`]: the configuration, the NATS client and what the handlers
//! share (metrics, rate limiter, web assets, pre-rendered documents).

use std::sync::Arc;

use async_nats::connection::State as ConnState;
use axum::body::Bytes;
use kez_service_kit::svc;
use kv_schemas::api::{ClientConfig, ServiceRequest};
use kv_schemas::{ErrorCode, KezError};

use crate::config::{ConfigError, GatewayConfig};
use crate::error::ApiError;
use crate::health::HealthCache;
use crate::metrics::Metrics;
use crate::ratelimit::RateLimiter;
use crate::web::WebAssets;

/// The protocol version `/v1/config` announces (PROTOCOL.md, version 1).
const PROTOCOL_VERSION: u32 = 1;

/// Shared state of every handler. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) config: GatewayConfig,
    pub(crate) nats: async_nats::Client,
    pub(crate) metrics: Metrics,
    pub(crate) register_limiter: RateLimiter,
    pub(crate) assets: WebAssets,
    pub(crate) client_config: Bytes,
    pub(crate) openapi: Bytes,
    pub(crate) health: HealthCache,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState")
            .field("config", &self.inner.config)
            .field("assets", &self.inner.assets)
            .finish_non_exhaustive()
    }
}

impl AppState {
    /// Checks `config` and builds the state with the web app embedded at build time.
    pub fn new(config: GatewayConfig, nats: async_nats::Client) -> Result<Self, ConfigError> {
        Self::with_assets(config, nats, WebAssets::embedded())
    }

    /// Like [`new`](Self::new), serving `assets` as the web app.
    pub fn with_assets(
        config: GatewayConfig,
        nats: async_nats::Client,
        assets: WebAssets,
    ) -> Result<Self, ConfigError> {
        config.check()?;
        let client_config = ClientConfig {
            domain: config.domain.clone(),
            nats_url: config.nats_url_public.clone(),
            nats_ws_url: config.nats_ws_url_public.clone(),
            inbox_stream: kv_schemas::subjects::INBOX_STREAM.to_string(),
            inbox_max_age_ms: config.inbox_max_age_ms,
            version: env!("CARGO_PKG_VERSION").to_string(),
            protocol: PROTOCOL_VERSION,
        };
        let client_config = serde_json::to_vec(&client_config)
            .map(Bytes::from)
            .map_err(|e| ConfigError { field: "client_config", reason: e.to_string() })?;
        let openapi = crate::api::openapi_document(config.base_url())?;
        Ok(Self {
            inner: Arc::new(Inner {
                register_limiter: RateLimiter::new(config.register_rate),
                config,
                nats,
                metrics: Metrics::default(),
                assets,
                client_config,
                openapi,
                health: HealthCache::default(),
            }),
        })
    }

    /// The checked configuration.
    pub fn config(&self) -> &GatewayConfig {
        &self.inner.config
    }

    /// The Prometheus text `/v1/metrics` serves.
    pub fn render_metrics(&self) -> String {
        self.inner.metrics.render(self.nats_connected())
    }

    pub(crate) fn nats_connected(&self) -> bool {
        self.inner.nats.connection_state() == ConnState::Connected
    }

    /// One request of the service contract ([`svc::call`]), with the configured timeout. Fails
    /// fast with `unavailable` while the broker connection is down (the client would otherwise
    /// buffer the request and report a timeout).
    pub(crate) async fn call<R: ServiceRequest>(&self, request: &R) -> Result<R::Reply, ApiError> {
        let result = if self.nats_connected() {
            svc::call(&self.inner.nats, request, self.inner.config.service_timeout).await
        } else {
            Err(KezError::new(ErrorCode::Unavailable, "not connected to the message broker"))
        };
        if let Err(e) = &result {
            self.inner.metrics.record_service_error(e.code);
        }
        Ok(result?)
    }
}
