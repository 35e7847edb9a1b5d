//! `/v1/healthz`: the broker connection plus a `$SRV.PING` to every service and
//! the inbox store's state (`kez.svc.inbox.v1.status`), concurrently and bounded
//! in time. The answer is cached for a second so a flood of health checks cannot
//! turn into a flood of NATS requests.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::http::StatusCode;
use kv_schemas::api::GetInboxStatus;
use kv_schemas::subjects::service;
use serde::Serialize;

use crate::state::AppState;

/// The services the gateway depends on (the auth callout: clients cannot log in without it;
/// the inbox service: nobody can send or read mail without it).
pub const SERVICES: [&str; 6] = [
    service::REGISTRY,
    service::WEBFINGER,
    service::SIGCHAIN,
    service::MANIFEST,
    service::AUTH_CALLOUT,
    service::INBOX,
];

/// How long one check result is reused.
const CACHE_FOR: Duration = Duration::from_secs(1);
/// Upper bound of one ping; a healthy service answers in well under a millisecond.
const PING_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Default)]
pub(crate) struct HealthCache {
    last: tokio::sync::Mutex<Option<(Instant, StatusCode, Bytes)>>,
}

#[derive(Serialize)]
struct Report {
    status: &'static str,
    broker: &'static str,
    version: &'static str,
    /// Service name → `ok`, `unavailable` (no instance) or `timeout`.
    services: BTreeMap<&'static str, &'static str>,
    /// The inbox store: `ok`, `full` (new mail is refused or about to be), `unavailable`,
    /// `timeout`, or `internal` (an unreadable status).
    inbox: &'static str,
}

/// Status and JSON body of the health answer.
pub(crate) async fn check(state: &AppState) -> (StatusCode, Bytes) {
    // Holding the lock while checking makes concurrent callers share one check.
    let mut last = state.inner.health.last.lock().await;
    if let Some((at, status, body)) = last.as_ref()
        && at.elapsed() < CACHE_FOR
    {
        return (*status, body.clone());
    }
    let (status, body) = run(state).await;
    *last = Some((Instant::now(), status, body.clone()));
    (status, body)
}

async fn run(state: &AppState) -> (StatusCode, Bytes) {
    let connected = state.nats_connected();
    let timeout = state.inner.config.service_timeout.min(PING_TIMEOUT);
    let pings = SERVICES.iter().map(|name| async move {
        if !connected {
            return (*name, "unavailable");
        }
        let subject = format!("$SRV.PING.{name}");
        // Pings go straight to the client: they are not service requests and must not count
        // as service errors in the metrics.
        let result = kez_service_kit::svc::request_raw(&state.inner.nats, &subject, Bytes::new(), timeout).await;
        (*name, result.map(|_| "ok").unwrap_or_else(|e| e.code.as_str()))
    });
    let (services, inbox) = tokio::join!(futures::future::join_all(pings), inbox_state(state, connected, timeout));
    let services: BTreeMap<_, _> = services.into_iter().collect();
    let healthy = connected && services.values().all(|s| *s == "ok") && inbox == "ok";
    let report = Report {
        status: if healthy { "ok" } else { "unavailable" },
        broker: if connected { "connected" } else { "disconnected" },
        version: env!("CARGO_PKG_VERSION"),
        services,
        inbox,
    };
    let status = if healthy { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    match serde_json::to_vec(&report) {
        Ok(body) => (status, Bytes::from(body)),
        // Never answer an empty 200: a report that cannot be encoded is an unhealthy gateway.
        Err(_) => (StatusCode::INTERNAL_SERVER_ERROR, Bytes::from_static(br#"{"status":"internal"}"#)),
    }
}

/// Asks the inbox service how full the inbox store is. A full store means mail is refused,
/// so it makes the whole server unhealthy even though every service answers.
async fn inbox_state(state: &AppState, connected: bool, timeout: Duration) -> &'static str {
    if !connected {
        return "unavailable";
    }
    match kez_service_kit::svc::call(&state.inner.nats, &GetInboxStatus, timeout).await {
        Ok(s) if s.full => "full",
        Ok(_) => "ok",
        Err(e) => e.code.as_str(),
    }
}
