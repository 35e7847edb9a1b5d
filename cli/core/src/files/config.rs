//! How the Iroh endpoint is built: relays and address lookup on (default, real
//! use) or off (tests, LANs), the bind address, local address hints for peers
//! and the connect timeout. Read from the environment by [`NodeConfig::from_env`].

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use super::{FilesError, Result};

/// Env: `on` (default) or `off`. Off = no relays, no DNS/pkarr address lookup,
/// no port mapping: peers are dialled only at direct addresses from hints.
pub const ENV_RELAY: &str = "KEZ_IROH_RELAY";
/// Env: socket address the provider binds, e.g. `127.0.0.1:7011` (default: all
/// interfaces, a random port).
pub const ENV_BIND: &str = "KEZ_IROH_BIND";
/// Env: direct-address hints, `<id hex>@<ip:port>[,<ip:port>…]`, several
/// separated by `;` or whitespace. The id is an endpoint id, or a user's identity
/// key: then the addresses are tried for every endpoint of that user (each
/// device's endpoint has its own id, PROTOCOL.md §7.5, and a test or LAN set-up
/// usually knows where a user serves, not which device key listens there).
pub const ENV_PEERS: &str = "KEZ_IROH_PEERS";
/// Env: connect timeout in milliseconds (default 10 000).
pub const ENV_CONNECT_TIMEOUT_MS: &str = "KEZ_IROH_CONNECT_TIMEOUT_MS";

/// Default bound on one connect attempt (a bare QUIC connect to an offline peer
/// otherwise takes the 30 s idle timeout to fail).
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Default for [`NodeConfig::peer_ttl`].
pub const DEFAULT_PEER_TTL: Duration = Duration::from_secs(30);

/// Endpoint configuration.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// Relays + n0 DNS/pkarr address lookup (`true`), or direct addresses only.
    pub relay: bool,
    /// Where the provider binds; `None` = the iroh default (all interfaces, random port).
    pub bind: Option<SocketAddr>,
    /// Known direct addresses of peers (endpoint id or identity key bytes → addresses).
    pub hints: HashMap<[u8; 32], Vec<SocketAddr>>,
    /// Bound on each connect attempt.
    pub connect_timeout: Duration,
    /// How long a provider trusts a user's endpoint list read from the sigchain
    /// (a removed device is refused at most this long after its removal).
    pub peer_ttl: Duration,
}

impl Default for NodeConfig {
    fn default() -> Self {
        Self {
            relay: true,
            bind: None,
            hints: HashMap::new(),
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            peer_ttl: DEFAULT_PEER_TTL,
        }
    }
}

impl NodeConfig {
    /// Loopback only, relays and lookup off, random port (tests).
    pub fn loopback() -> Self {
        Self {
            relay: false,
            bind: Some(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0)),
            hints: HashMap::new(),
            connect_timeout: Duration::from_secs(3),
            peer_ttl: DEFAULT_PEER_TTL,
        }
    }

    /// Reads [`ENV_RELAY`], [`ENV_BIND`], [`ENV_PEERS`], [`ENV_CONNECT_TIMEOUT_MS`].
    pub fn from_env() -> Result<Self> {
        let get = |k: &str| std::env::var(k).ok().map(|v| v.trim().to_string()).filter(|v| !v.is_empty());
        let mut cfg = Self::default();
        if let Some(v) = get(ENV_RELAY) {
            cfg.relay = match v.to_ascii_lowercase().as_str() {
                "on" | "1" | "true" | "yes" => true,
                "off" | "0" | "false" | "no" => false,
                _ => return Err(FilesError::Other(format!("{ENV_RELAY} must be on or off, not {v:?}"))),
            };
        }
        if let Some(v) = get(ENV_BIND) {
            cfg.bind = Some(v.parse().map_err(|_| FilesError::Other(format!("{ENV_BIND}: {v:?} is not ip:port")))?);
        }
        if let Some(v) = get(ENV_PEERS) {
            cfg.hints = parse_hints(&v)?;
        }
        if let Some(v) = get(ENV_CONNECT_TIMEOUT_MS) {
            let ms: u64 =
                v.parse().map_err(|_| FilesError::Other(format!("{ENV_CONNECT_TIMEOUT_MS} must be a number")))?;
            cfg.connect_timeout = Duration::from_millis(ms.max(1));
        }
        Ok(cfg)
    }

    /// Adds a direct-address hint for a peer.
    pub fn add_hint(&mut self, node: [u8; 32], addr: SocketAddr) {
        let v = self.hints.entry(node).or_default();
        if !v.contains(&addr) {
            v.push(addr);
        }
    }

    /// The direct addresses to try for endpoint `node` of user `owner`: the
    /// hints for the endpoint id, then those given for the user's identity key.
    pub fn addrs_for(&self, node: &kv_schemas::PublicKey, owner: &kv_schemas::PublicKey) -> Vec<SocketAddr> {
        let mut out: Vec<SocketAddr> = self.hints.get(node.as_bytes()).cloned().unwrap_or_default();
        for a in self.hints.get(owner.as_bytes()).into_iter().flatten() {
            if !out.contains(a) {
                out.push(*a);
            }
        }
        out
    }

    /// The address the fetch side binds: the bind IP with a random port (so a
    /// running provider's fixed port is not taken), or the iroh default.
    pub(crate) fn client_bind(&self) -> Option<SocketAddr> {
        self.bind.map(|b| SocketAddr::new(b.ip(), 0))
    }
}

/// Parses `<hex>@<addr>[,<addr>…]` items separated by `;` or whitespace.
pub fn parse_hints(s: &str) -> Result<HashMap<[u8; 32], Vec<SocketAddr>>> {
    let mut out: HashMap<[u8; 32], Vec<SocketAddr>> = HashMap::new();
    for item in s.split(|c: char| c == ';' || c.is_whitespace()).filter(|i| !i.is_empty()) {
        let bad = || FilesError::Other(format!("{ENV_PEERS}: {item:?} is not <node id hex>@<ip:port>[,<ip:port>]"));
        let (id, addrs) = item.split_once('@').ok_or_else(bad)?;
        let id = kv_schemas::PublicKey::from_hex(id.strip_prefix("ed25519:").unwrap_or(id)).map_err(|_| bad())?;
        for a in addrs.split(',') {
            let a: SocketAddr = a.parse().map_err(|_| bad())?;
            let v = out.entry(*id.as_bytes()).or_default();
            if !v.contains(&a) {
                v.push(a);
            }
        }
    }
    Ok(out)
}

/// Formats one hint the way [`parse_hints`] reads it.
pub fn format_hint(node_hex: &str, addrs: &[SocketAddr]) -> String {
    let a: Vec<String> = addrs.iter().map(ToString::to_string).collect();
    format!("{node_hex}@{}", a.join(","))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn hints_parse_and_round_trip() {
        let hex = kv_schemas::PublicKey::of(&ed25519_dalek::SigningKey::from_bytes(&[1; 32])).hex();
        let s = format!("{}; ed25519:{hex}@[::1]:9", format_hint(&hex, &["127.0.0.1:7".parse().unwrap()]));
        let h = parse_hints(&s).unwrap();
        assert_eq!(h.len(), 1);
        assert_eq!(h.values().next().unwrap().len(), 2);
        assert!(parse_hints("nothex@1.2.3.4:5").is_err());
        assert!(parse_hints(&format!("{hex}@nope")).is_err());
    }
}
