//! A small Prometheus registry made of atomics: request counts by route,
//! method and status, a latency histogram per route, rate-limit rejections,
//! service error codes and the NATS connection state.
//!
//! Hand-rolled on purpose: the gateway exports a dozen series, and the text
//! format is simple enough that a dependency would add more than it saves.
//! Route labels are route *templates* (or `fallback`), never raw paths, so the
//! number of series stays bounded whatever clients send.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use kv_schemas::ErrorCode;

/// Histogram bucket upper bounds, seconds.
const BUCKETS: [f64; 12] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0];

#[derive(Default)]
struct Histogram {
    buckets: [AtomicU64; BUCKETS.len()],
    count: AtomicU64,
    sum_micros: AtomicU64,
}

impl Histogram {
    fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        // Buckets are stored non-cumulatively and summed when rendering.
        if let Some(i) = BUCKETS.iter().position(|&b| secs <= b) {
            self.buckets[i].fetch_add(1, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_micros.fetch_add(d.as_micros().min(u64::MAX as u128) as u64, Ordering::Relaxed);
    }
}

type RequestKey = (&'static str, &'static str, u16);

/// The gateway's metrics. Cheap to share: clone the `Arc` it lives in.
#[derive(Default)]
pub struct Metrics {
    requests: RwLock<BTreeMap<RequestKey, Arc<AtomicU64>>>,
    latency: RwLock<BTreeMap<&'static str, Arc<Histogram>>>,
    rate_limited: AtomicU64,
    service_errors: RwLock<BTreeMap<&'static str, Arc<AtomicU64>>>,
}

/// Read-or-insert on a map of shared atomics; the write lock is taken only
/// the first time a series appears.
fn series<K: Ord + Copy, V: Default>(map: &RwLock<BTreeMap<K, Arc<V>>>, key: K) -> Arc<V> {
    if let Some(v) = map.read().unwrap_or_else(|e| e.into_inner()).get(&key) {
        return v.clone();
    }
    map.write().unwrap_or_else(|e| e.into_inner()).entry(key).or_default().clone()
}

impl Metrics {
    /// Records one answered request.
    pub fn record_request(&self, route: &'static str, method: &'static str, status: u16, elapsed: Duration) {
        series(&self.requests, (route, method, status)).fetch_add(1, Ordering::Relaxed);
        series(&self.latency, route).observe(elapsed);
    }

    /// Records a request refused by a rate limit.
    pub fn record_rate_limited(&self) {
        self.rate_limited.fetch_add(1, Ordering::Relaxed);
    }

    /// Records an error answer from (or on the way to) a service.
    pub fn record_service_error(&self, code: ErrorCode) {
        series(&self.service_errors, code.as_str()).fetch_add(1, Ordering::Relaxed);
    }

    /// The Prometheus text exposition (format 0.0.4).
    pub fn render(&self, nats_connected: bool) -> String {
        let mut out = String::with_capacity(4096);
        let _ = writeln!(out, "# HELP kez_gateway_build_info Gateway version.");
        let _ = writeln!(out, "# TYPE kez_gateway_build_info gauge");
        let _ = writeln!(out, "kez_gateway_build_info{{version=\"{}\"}} 1", env!("CARGO_PKG_VERSION"));

        let _ = writeln!(out, "# HELP kez_gateway_nats_connected 1 when the connection to the broker is up.");
        let _ = writeln!(out, "# TYPE kez_gateway_nats_connected gauge");
        let _ = writeln!(out, "kez_gateway_nats_connected {}", u8::from(nats_connected));

        let _ = writeln!(out, "# HELP kez_gateway_http_requests_total HTTP requests answered.");
        let _ = writeln!(out, "# TYPE kez_gateway_http_requests_total counter");
        for ((route, method, status), n) in self.requests.read().unwrap_or_else(|e| e.into_inner()).iter() {
            let _ = writeln!(
                out,
                "kez_gateway_http_requests_total{{route=\"{route}\",method=\"{method}\",status=\"{status}\"}} {}",
                n.load(Ordering::Relaxed)
            );
        }

        let _ = writeln!(out, "# HELP kez_gateway_http_request_duration_seconds Time to answer, by route.");
        let _ = writeln!(out, "# TYPE kez_gateway_http_request_duration_seconds histogram");
        for (route, h) in self.latency.read().unwrap_or_else(|e| e.into_inner()).iter() {
            let mut cumulative = 0;
            for (i, bound) in BUCKETS.iter().enumerate() {
                cumulative += h.buckets[i].load(Ordering::Relaxed);
                let _ = writeln!(
                    out,
                    "kez_gateway_http_request_duration_seconds_bucket{{route=\"{route}\",le=\"{bound}\"}} {cumulative}"
                );
            }
            let count = h.count.load(Ordering::Relaxed);
            let _ = writeln!(
                out,
                "kez_gateway_http_request_duration_seconds_bucket{{route=\"{route}\",le=\"+Inf\"}} {count}"
            );
            let sum = h.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
            let _ = writeln!(out, "kez_gateway_http_request_duration_seconds_sum{{route=\"{route}\"}} {sum}");
            let _ = writeln!(out, "kez_gateway_http_request_duration_seconds_count{{route=\"{route}\"}} {count}");
        }

        let _ = writeln!(out, "# HELP kez_gateway_rate_limited_total Requests refused by a per-IP rate limit.");
        let _ = writeln!(out, "# TYPE kez_gateway_rate_limited_total counter");
        let _ = writeln!(out, "kez_gateway_rate_limited_total {}", self.rate_limited.load(Ordering::Relaxed));

        let _ = writeln!(out, "# HELP kez_gateway_service_errors_total Error answers from NATS services, by code.");
        let _ = writeln!(out, "# TYPE kez_gateway_service_errors_total counter");
        for (code, n) in self.service_errors.read().unwrap_or_else(|e| e.into_inner()).iter() {
            let _ = writeln!(out, "kez_gateway_service_errors_total{{code=\"{code}\"}} {}", n.load(Ordering::Relaxed));
        }
        out
    }
}

/// Method label: the standard methods by name, anything else as `other`.
pub(crate) fn method_label(m: &axum::http::Method) -> &'static str {
    use axum::http::Method as M;
    match *m {
        M::GET => "GET",
        M::HEAD => "HEAD",
        M::POST => "POST",
        M::PUT => "PUT",
        M::DELETE => "DELETE",
        M::PATCH => "PATCH",
        M::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_cumulative_buckets() {
        let m = Metrics::default();
        m.record_request("/v1/config", "GET", 200, Duration::from_micros(500));
        m.record_request("/v1/config", "GET", 200, Duration::from_millis(30));
        m.record_rate_limited();
        m.record_service_error(ErrorCode::Timeout);
        let text = m.render(true);
        assert!(text.contains("kez_gateway_http_requests_total{route=\"/v1/config\",method=\"GET\",status=\"200\"} 2"));
        assert!(text.contains("_bucket{route=\"/v1/config\",le=\"0.001\"} 1"));
        assert!(text.contains("_bucket{route=\"/v1/config\",le=\"0.05\"} 2"));
        assert!(text.contains("_bucket{route=\"/v1/config\",le=\"+Inf\"} 2"));
        assert!(text.contains("kez_gateway_rate_limited_total 1"));
        assert!(text.contains("kez_gateway_service_errors_total{code=\"timeout\"} 1"));
        assert!(text.contains("kez_gateway_nats_connected 1"));
    }
}
