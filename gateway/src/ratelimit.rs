//! Per-client token buckets and the client-IP rule.
//!
//! IPv6 clients are keyed by their /64: one host usually owns a whole /64 and
//! could otherwise rotate addresses to get a fresh bucket per request.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::sync::Mutex;
use std::time::Instant;

use axum::extract::ConnectInfo;
use axum::http::HeaderMap;
use axum::http::request::Parts;

use crate::config::RateLimit;

/// Buckets kept before full (idle) ones are dropped.
const PRUNE_AT: usize = 50_000;
/// Hard cap: past it (after pruning) everything is forgotten, which only ever
/// errs on the side of letting clients through.
const MAX_BUCKETS: usize = 200_000;

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    updated: Instant,
}

/// A set of token buckets keyed by client.
#[derive(Debug)]
pub struct RateLimiter {
    burst: f64,
    per_sec: f64,
    table: Mutex<Table>,
}

#[derive(Debug)]
struct Table {
    buckets: HashMap<IpAddr, Bucket>,
    last_prune: Option<Instant>,
}

impl RateLimiter {
    /// A limiter with the given bucket size and refill rate.
    pub fn new(limit: RateLimit) -> Self {
        Self {
            burst: f64::from(limit.burst.max(1)),
            per_sec: f64::from(limit.per_minute.max(1)) / 60.0,
            table: Mutex::new(Table { buckets: HashMap::new(), last_prune: None }),
        }
    }

    /// Takes one token for `ip`. `Err(secs)` says when to retry (at least 1).
    pub fn check(&self, ip: IpAddr, now: Instant) -> Result<(), u64> {
        let key = bucket_key(ip);
        let mut table = self.table.lock().unwrap_or_else(|e| e.into_inner());
        // Pruning scans the table, so at most once a second (and only when it is big).
        if table.buckets.len() >= PRUNE_AT
            && table.last_prune.is_none_or(|t| now.saturating_duration_since(t).as_secs() >= 1)
        {
            table.last_prune = Some(now);
            self.prune(&mut table.buckets, now);
        }
        let bucket = table.buckets.entry(key).or_insert(Bucket { tokens: self.burst, updated: now });
        let elapsed = now.saturating_duration_since(bucket.updated).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * self.per_sec).min(self.burst);
        bucket.updated = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            Err(((1.0 - bucket.tokens) / self.per_sec).ceil().max(1.0) as u64)
        }
    }

    fn prune(&self, buckets: &mut HashMap<IpAddr, Bucket>, now: Instant) {
        // A bucket that has refilled completely carries no information.
        buckets.retain(|_, b| {
            b.tokens + now.saturating_duration_since(b.updated).as_secs_f64() * self.per_sec < self.burst
        });
        if buckets.len() >= MAX_BUCKETS {
            tracing::warn!(buckets = buckets.len(), "rate limiter table full; resetting it");
            buckets.clear();
        }
    }
}

fn bucket_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    }
}

/// The client's IP: the TCP peer, or with `trust_proxy` the last
/// `X-Forwarded-For` entry (the one our proxy appended; entries to its left
/// are whatever the client sent). Without connection info (tests using
/// `oneshot` without `MockConnectInfo`) all clients share `0.0.0.0`.
pub(crate) fn client_ip(parts: &Parts, trust_proxy: bool) -> IpAddr {
    if trust_proxy && let Some(ip) = forwarded_for(&parts.headers) {
        return ip;
    }
    parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| addr.ip())
        .unwrap_or(IpAddr::from([0, 0, 0, 0]))
}

fn forwarded_for(headers: &HeaderMap) -> Option<IpAddr> {
    // Several headers are one list, in order.
    let last_header = headers.get_all("x-forwarded-for").iter().next_back()?;
    let last = last_header.to_str().ok()?.rsplit(',').next()?.trim();
    last.parse().ok().or_else(|| last.parse::<SocketAddr>().ok().map(|a| a.ip()))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn bucket_refills_at_the_configured_rate() {
        let limiter = RateLimiter::new(RateLimit { burst: 2, per_minute: 60 });
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let t0 = Instant::now();
        assert!(limiter.check(ip, t0).is_ok());
        assert!(limiter.check(ip, t0).is_ok());
        assert_eq!(limiter.check(ip, t0), Err(1));
        // Another client has its own bucket.
        assert!(limiter.check("192.0.2.2".parse().unwrap(), t0).is_ok());
        assert!(limiter.check(ip, t0 + Duration::from_millis(1001)).is_ok());
        assert!(limiter.check(ip, t0 + Duration::from_millis(1001)).is_err());
    }

    #[test]
    fn retry_after_rounds_up() {
        let limiter = RateLimiter::new(RateLimit { burst: 1, per_minute: 2 });
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let t0 = Instant::now();
        limiter.check(ip, t0).unwrap();
        assert_eq!(limiter.check(ip, t0), Err(30));
    }

    #[test]
    fn ipv6_shares_a_bucket_per_64() {
        let limiter = RateLimiter::new(RateLimit { burst: 1, per_minute: 1 });
        let t0 = Instant::now();
        limiter.check("2001:db8:1:2::1".parse().unwrap(), t0).unwrap();
        assert!(limiter.check("2001:db8:1:2:ffff::9".parse().unwrap(), t0).is_err());
        assert!(limiter.check("2001:db8:1:3::1".parse().unwrap(), t0).is_ok());
    }

    #[test]
    fn forwarded_for_takes_the_last_entry() {
        let mut h = HeaderMap::new();
        h.append("x-forwarded-for", "203.0.113.9, 198.51.100.7".parse().unwrap());
        assert_eq!(forwarded_for(&h), Some("198.51.100.7".parse().unwrap()));
        h.append("x-forwarded-for", "198.51.100.8".parse().unwrap());
        assert_eq!(forwarded_for(&h), Some("198.51.100.8".parse().unwrap()));
        let mut bad = HeaderMap::new();
        bad.append("x-forwarded-for", "nonsense".parse().unwrap());
        assert_eq!(forwarded_for(&bad), None);
    }
}
