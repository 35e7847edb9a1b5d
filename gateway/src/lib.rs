//! kez-gateway: the thin HTTP edge of kez-chat.
//!
//! It serves the `/v1` JSON API by forwarding each request to one NATS service
//! subject (PROTOCOL.md §9) and mapping the reply, answers WebFinger, and
//! serves the web app embedded from `web/dist`. It holds no business logic and
//! touches no KV: only the services enforce protocol rules.
//!
//! - [`app`] builds the router without a socket (tests drive it with `oneshot`);
//! - [`Gateway::bind`] binds the listener and reports the address;
//!   [`Gateway::run`] serves until a shutdown future completes, then drains;
//! - [`serve`] does both.
//!
//! Errors always have the body `{"error":{"code","message"}}` with the status
//! of [`kv_schemas::ErrorCode::http_status`] (see [`error`]).

use std::future::Future;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::{HeaderValue, Method, Uri, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::serve::ListenerExt as _;
use kv_schemas::ErrorCode;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::trace::TraceLayer;
use tracing::Span;

mod api;
pub mod config;
pub mod error;
mod health;
pub mod metrics;
mod ratelimit;
mod state;
mod web;

pub use api::API_ROUTES;
pub use config::{ConfigError, GatewayConfig, RateLimit};
pub use error::ApiError;
pub use health::SERVICES;
pub use ratelimit::RateLimiter;
pub use state::AppState;
pub use web::WebAssets;

/// The whole HTTP application for `state`, without a socket.
///
/// Layers, outermost first: tracing, security headers (`nosniff`, no framing,
/// no referrer), metrics, the request timeout (504), panic → 500; then the
/// routes, each with its own body limit and CORS rule.
/// Peer addresses come from `ConnectInfo<SocketAddr>` (set by [`Gateway`];
/// tests add `MockConnectInfo`).
pub fn app(state: AppState) -> Router {
    api::routes(&state)
        .fallback(fallback)
        .layer(DefaultBodyLimit::max(state.config().max_body_bytes))
        .layer(CatchPanicLayer::custom(error::panic_response))
        .layer(middleware::from_fn_with_state(state.clone(), request_timeout))
        .layer(middleware::from_fn_with_state(state.clone(), record_metrics))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")))
        .layer(SetResponseHeaderLayer::if_not_present(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer")))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(
                    |req: &Request| tracing::info_span!("http", method = %req.method(), path = %req.uri().path()),
                )
                .on_request(())
                .on_response(log_response)
                // Failures are logged by `log_response` with their detail.
                .on_failure(()),
        )
        .with_state(state)
}

fn log_response(response: &Response, latency: Duration, _span: &Span) {
    let status = response.status().as_u16();
    let latency_ms = latency.as_secs_f64() * 1000.0;
    match response.extensions().get::<error::InternalDetail>() {
        Some(detail) => tracing::warn!(status, latency_ms, detail = %detail.0, "request failed"),
        None => tracing::debug!(status, latency_ms, "answered"),
    }
}

/// Everything the routes do not match: the web app outside `/v1`, JSON 404 inside.
async fn fallback(State(state): State<AppState>, method: Method, uri: Uri, headers: axum::http::HeaderMap) -> Response {
    let path = uri.path();
    if path == "/v1" || path.starts_with("/v1/") || path.starts_with("/.well-known/") {
        return ApiError::new(ErrorCode::NotFound, format!("no route for {method} {path}")).into_response();
    }
    web::serve(&state.inner.assets, &method, &uri, &headers, &state.config().nats_ws_url_public)
}

/// A known path with a method it does not have: 405 `method_not_allowed` (RFC 9110 §15.5.6;
/// axum adds the `Allow` header listing the route's methods).
pub(crate) async fn method_not_allowed(method: Method, uri: Uri) -> Response {
    ApiError::new(ErrorCode::MethodNotAllowed, format!("{} does not take {method}", uri.path())).into_response()
}

/// Bounds the whole request (NATS hops included) by `request_timeout`.
async fn request_timeout(State(state): State<AppState>, req: Request, next: Next) -> Response {
    match tokio::time::timeout(state.config().request_timeout, next.run(req)).await {
        Ok(response) => response,
        Err(_) => {
            let mut r = ApiError::new(ErrorCode::Timeout, "request timed out").into_response();
            r.extensions_mut().insert(error::InternalDetail("request_timeout elapsed".into()));
            r
        }
    }
}

async fn record_metrics(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = metrics::method_label(req.method());
    let route = route_label(req.extensions().get::<MatchedPath>().map(MatchedPath::as_str), req.uri().path());
    let response = next.run(req).await;
    state.inner.metrics.record_request(route, method, response.status().as_u16(), started.elapsed());
    response
}

/// A bounded label: the route template, or `unmatched` (API) / `web` (the app).
fn route_label(matched: Option<&str>, path: &str) -> &'static str {
    if let Some(m) = matched
        && let Some((_, template)) = API_ROUTES.iter().find(|(_, t)| *t == m)
    {
        return template;
    }
    if path == "/v1" || path.starts_with("/v1/") || path.starts_with("/.well-known/") { "unmatched" } else { "web" }
}

/// Why the gateway could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    /// The configuration was refused.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The listen address could not be bound.
    #[error("binding {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// Serving failed.
    #[error("serving HTTP: {0}")]
    Serve(#[source] std::io::Error),
}

/// A bound, not yet serving gateway.
#[derive(Debug)]
pub struct Gateway {
    listener: tokio::net::TcpListener,
    local_addr: SocketAddr,
    state: AppState,
}

impl Gateway {
    /// Checks the config and binds `config.listen`. Use [`local_addr`](Self::local_addr)
    /// to learn the port when it was 0.
    pub async fn bind(config: GatewayConfig, nats: async_nats::Client) -> Result<Self, GatewayError> {
        Self::bind_state(AppState::new(config, nats)?).await
    }

    /// Binds `state.config().listen` for an already built state.
    pub async fn bind_state(state: AppState) -> Result<Self, GatewayError> {
        let addr = state.config().listen;
        let listener =
            tokio::net::TcpListener::bind(addr).await.map_err(|source| GatewayError::Bind { addr, source })?;
        let local_addr = listener.local_addr().map_err(|source| GatewayError::Bind { addr, source })?;
        Ok(Self { listener, local_addr, state })
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Serves until `shutdown` completes, then stops accepting and lets
    /// requests in flight finish for at most `request_timeout` + 1 s.
    pub async fn run<F>(self, shutdown: F) -> Result<(), GatewayError>
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let drain = self.state.config().request_timeout + Duration::from_secs(1);
        let (stopping_tx, stopping_rx) = tokio::sync::oneshot::channel::<()>();
        let listener = self.listener.tap_io(|tcp| {
            // Small JSON answers: do not wait for Nagle.
            let _ = tcp.set_nodelay(true);
        });
        let server = axum::serve(listener, app(self.state).into_make_service_with_connect_info::<SocketAddr>())
            .with_graceful_shutdown(async move {
                shutdown.await;
                let _ = stopping_tx.send(());
            });
        let server = std::future::IntoFuture::into_future(server);
        tokio::pin!(server);
        tokio::select! {
            // Biased: never poll `server` again once it has finished.
            biased;
            result = &mut server => result.map_err(GatewayError::Serve),
            _ = stopping_rx => match tokio::time::timeout(drain, &mut server).await {
                Ok(result) => result.map_err(GatewayError::Serve),
                Err(_) => {
                    tracing::warn!(?drain, "connections still open after the drain period; closing them");
                    Ok(())
                }
            },
        }
    }
}

/// Binds and serves until `shutdown` completes. `on_bound` receives the
/// bound address before serving starts (e.g. to print where to open the app).
pub async fn serve<F>(
    config: GatewayConfig,
    nats: async_nats::Client,
    shutdown: F,
    on_bound: impl FnOnce(SocketAddr),
) -> Result<(), GatewayError>
where
    F: Future<Output = ()> + Send + 'static,
{
    let gateway = Gateway::bind(config, nats).await?;
    on_bound(gateway.local_addr());
    gateway.run(shutdown).await
}
