//! The gateway's configuration: documented fields, a local-development
//! default, and [`GatewayConfig::check`], which refuses unsafe or broken
//! combinations before anything binds.

use std::net::SocketAddr;
use std::time::Duration;

use kv_schemas::Handle;

/// Everything the gateway needs to know; `Default` suits local development.
///
/// The caller (the `kez-server` binary) loads it from its own config file and
/// must call [`check`](Self::check) (done by [`crate::AppState::new`] too).
#[derive(Debug, Clone, PartialEq)]
pub struct GatewayConfig {
    /// Address the HTTP listener binds. Default `127.0.0.1:8080`.
    pub listen: SocketAddr,
    /// Home domain: handles are `local@domain`. Default `kez.localhost`.
    pub domain: String,
    /// Public base URL of this gateway as clients reach it (no trailing slash),
    /// used for absolute links such as sigchain URLs. Default `http://127.0.0.1:8080`.
    pub public_url: String,
    /// Native NATS URL clients connect to (`nats://` or `tls://`), published in `/v1/config`.
    pub nats_url_public: String,
    /// NATS WebSocket URL browsers connect to (`ws://` or `wss://`), published in
    /// `/v1/config`; empty when the deployment has no WebSocket listener.
    pub nats_ws_url_public: String,
    /// Inbox retention in ms, published in `/v1/config` (the replay window of PROTOCOL.md §6).
    /// Must match the `KEZ_INBOX` stream's `max_age`. Default 30 days.
    pub inbox_max_age_ms: u64,
    /// Upper bound for one whole HTTP request, NATS hops included. Past it the
    /// client gets `504 timeout`. Default 10 s.
    pub request_timeout: Duration,
    /// Timeout of one NATS request to a service. Must be shorter than
    /// `request_timeout` so the typed service timeout wins. Default 3 s.
    pub service_timeout: Duration,
    /// Largest request body accepted on any route (routes carrying a signed
    /// object are capped further at that object's bound). Default 256 KiB, the
    /// manifest bound, which is also the smallest allowed value.
    pub max_body_bytes: usize,
    /// Per-client-IP token bucket for `POST /v1/register`.
    pub register_rate: RateLimit,
    /// Take the client IP from the last `X-Forwarded-For` entry (the one the
    /// proxy in front added) instead of the TCP peer. Only safe when every
    /// connection comes through that proxy. Default false.
    pub trust_proxy_headers: bool,
    /// Origins allowed to call `/v1/*` cross-origin (`https://app.example`).
    /// Default none: the web app is served from the same origin.
    /// WebFinger always allows any origin (RFC 7033 §5).
    pub cors_origins: Vec<String>,
}

/// A token bucket: `burst` requests at once, refilled at `per_minute`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    /// Bucket size: requests allowed back to back.
    pub burst: u32,
    /// Refill rate, requests per minute.
    pub per_minute: u32,
}

impl Default for RateLimit {
    fn default() -> Self {
        Self { burst: 10, per_minute: 20 }
    }
}

impl Default for GatewayConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            domain: "kez.localhost".into(),
            public_url: "http://127.0.0.1:8080".into(),
            nats_url_public: "nats://127.0.0.1:4222".into(),
            nats_ws_url_public: "ws://127.0.0.1:4223".into(),
            inbox_max_age_ms: 30 * 24 * 60 * 60 * 1000,
            request_timeout: Duration::from_secs(10),
            service_timeout: Duration::from_secs(3),
            max_body_bytes: MIN_BODY_LIMIT,
            register_rate: RateLimit::default(),
            trust_proxy_headers: false,
            cors_origins: Vec::new(),
        }
    }
}

/// The largest signed object (a manifest) must fit.
const MIN_BODY_LIMIT: usize = kv_schemas::manifest::MAX_MANIFEST_BYTES;
/// Above this, bodies are larger than any service accepts (and than the NATS default payload).
const MAX_BODY_LIMIT: usize = 1024 * 1024;

/// A configuration [`GatewayConfig::check`] refuses.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("gateway config: {field}: {reason}")]
pub struct ConfigError {
    /// The offending field.
    pub field: &'static str,
    /// Why it is refused.
    pub reason: String,
}

fn refuse(field: &'static str, reason: impl Into<String>) -> ConfigError {
    ConfigError { field, reason: reason.into() }
}

impl GatewayConfig {
    /// Refuses broken or unsafe settings. Returns the first problem found.
    pub fn check(&self) -> Result<(), ConfigError> {
        Handle::new("a", &self.domain)
            .map_err(|_| refuse("domain", format!("{:?} is not a lowercase DNS name with a dot", self.domain)))?;

        let public = parse_base_url("public_url", &self.public_url, &["http", "https"])?;
        if public.path_and_more {
            return Err(refuse("public_url", "must be an origin without a path, query or trailing slash"));
        }
        parse_base_url("nats_url_public", &self.nats_url_public, &["nats", "tls"])?;
        // Empty: the deployment offers no WebSocket listener (native clients only).
        if !self.nats_ws_url_public.is_empty() {
            let ws = parse_base_url("nats_ws_url_public", &self.nats_ws_url_public, &["ws", "wss"])?;
            // A page loaded over https cannot open ws:// (mixed content): the web app would never connect.
            if public.scheme == "https" && ws.scheme == "ws" {
                return Err(refuse("nats_ws_url_public", "must be wss:// when public_url is https://"));
            }
        }

        if self.inbox_max_age_ms == 0 {
            return Err(refuse("inbox_max_age_ms", "must be positive"));
        }
        if self.service_timeout.is_zero() {
            return Err(refuse("service_timeout", "must be positive"));
        }
        if self.request_timeout <= self.service_timeout {
            return Err(refuse("request_timeout", "must be longer than service_timeout"));
        }
        if self.request_timeout > Duration::from_secs(120) {
            return Err(refuse("request_timeout", "must be at most 120 s"));
        }
        if !(MIN_BODY_LIMIT..=MAX_BODY_LIMIT).contains(&self.max_body_bytes) {
            return Err(refuse(
                "max_body_bytes",
                format!("must be between {MIN_BODY_LIMIT} (a manifest's bound) and {MAX_BODY_LIMIT}"),
            ));
        }
        if self.register_rate.burst == 0 || self.register_rate.per_minute == 0 {
            return Err(refuse("register_rate", "burst and per_minute must be positive"));
        }
        // Behind a proxy the gateway should listen where only the proxy reaches it. On an
        // unspecified address anyone can connect directly and forge X-Forwarded-For,
        // which would turn the per-IP limit into no limit.
        if self.trust_proxy_headers && self.listen.ip().is_unspecified() {
            return Err(refuse(
                "trust_proxy_headers",
                "cannot be used with an unspecified listen address (0.0.0.0 or [::]): \
                 clients reaching the gateway directly could forge X-Forwarded-For",
            ));
        }
        for origin in &self.cors_origins {
            if origin == "*" {
                return Err(refuse("cors_origins", "\"*\" is not allowed; list the origins"));
            }
            let o = parse_base_url("cors_origins", origin, &["http", "https"])?;
            if o.path_and_more {
                return Err(refuse("cors_origins", format!("{origin:?} must be an origin (scheme://host[:port])")));
            }
        }
        Ok(())
    }

    /// The public URL without a trailing slash.
    pub(crate) fn base_url(&self) -> &str {
        self.public_url.trim_end_matches('/')
    }
}

struct BaseUrl<'a> {
    scheme: &'a str,
    /// Anything after the authority: a path (even `/`), query or fragment.
    path_and_more: bool,
}

fn parse_base_url<'a>(field: &'static str, url: &'a str, schemes: &[&str]) -> Result<BaseUrl<'a>, ConfigError> {
    let (scheme, rest) =
        url.split_once("://").ok_or_else(|| refuse(field, format!("{url:?} is not an absolute URL")))?;
    if !schemes.contains(&scheme) {
        return Err(refuse(field, format!("{url:?}: scheme must be one of {schemes:?}")));
    }
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..end];
    if authority.is_empty() || authority.contains('@') || authority.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        return Err(refuse(field, format!("{url:?} has no valid host")));
    }
    Ok(BaseUrl { scheme, path_and_more: end < rest.len() })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn default_is_valid() {
        GatewayConfig::default().check().unwrap();
        GatewayConfig { nats_ws_url_public: String::new(), ..GatewayConfig::default() }.check().unwrap();
    }

    #[test]
    fn refuses_unsafe_and_broken_settings() {
        type Edit = Box<dyn Fn(&mut GatewayConfig)>;
        let cases: Vec<(&str, Edit)> = vec![
            ("domain", Box::new(|c| c.domain = "localhost".into())),
            ("public_url", Box::new(|c| c.public_url = "127.0.0.1:8080".into())),
            ("public_url", Box::new(|c| c.public_url = "https://kez.lat/".into())),
            ("nats_url_public", Box::new(|c| c.nats_url_public = "http://x.y".into())),
            ("nats_ws_url_public", Box::new(|c| c.public_url = "https://kez.lat".into())),
            ("nats_ws_url_public", Box::new(|c| c.nats_ws_url_public = "nats://x.y".into())),
            ("request_timeout", Box::new(|c| c.request_timeout = c.service_timeout)),
            ("service_timeout", Box::new(|c| c.service_timeout = Duration::ZERO)),
            ("max_body_bytes", Box::new(|c| c.max_body_bytes = 1024)),
            ("max_body_bytes", Box::new(|c| c.max_body_bytes = 64 << 20)),
            ("register_rate", Box::new(|c| c.register_rate.per_minute = 0)),
            ("inbox_max_age_ms", Box::new(|c| c.inbox_max_age_ms = 0)),
            (
                "trust_proxy_headers",
                Box::new(|c| {
                    c.trust_proxy_headers = true;
                    c.listen = "0.0.0.0:8080".parse().unwrap();
                }),
            ),
            ("cors_origins", Box::new(|c| c.cors_origins = vec!["*".into()])),
            ("cors_origins", Box::new(|c| c.cors_origins = vec!["https://a.example/app".into()])),
        ];
        for (field, mutate) in cases {
            let mut c = GatewayConfig::default();
            mutate(&mut c);
            assert_eq!(c.check().unwrap_err().field, field, "{c:?}");
        }
    }

    #[test]
    fn accepts_a_production_shape() {
        let c = GatewayConfig {
            listen: "127.0.0.1:8080".parse().unwrap(),
            domain: "kez.lat".into(),
            public_url: "https://kez.lat".into(),
            nats_url_public: "tls://nats.kez.lat:4222".into(),
            nats_ws_url_public: "wss://kez.lat/nats".into(),
            trust_proxy_headers: true,
            cors_origins: vec!["https://app.example".into()],
            ..GatewayConfig::default()
        };
        c.check().unwrap();
    }
}
