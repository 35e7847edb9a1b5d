//! Settings every service shares, taken from the server's configuration.

use std::fmt;
use std::time::Duration;

use zeroize::Zeroizing;

use crate::kv::Replication;

/// Default byte limit of the inbox stream (clamped to the `INBOX` account's storage limit).
pub const DEFAULT_INBOX_MAX_BYTES: u64 = 1 << 30;

/// The relay's 32-byte sender-tag secret (PROTOCOL.md §9.1, `K_tag`). Every relay worker of a
/// deployment must hold the same one, or one sender gets several tags per inbox and blocks stop
/// matching. `Debug` is redacted.
#[derive(Clone, PartialEq, Eq)]
pub struct SenderTagKey(Zeroizing<[u8; 32]>);

impl SenderTagKey {
    /// Wraps the key bytes.
    pub fn new(bytes: [u8; 32]) -> Self {
        Self(Zeroizing::new(bytes))
    }

    /// The key bytes.
    pub fn expose(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Debug for SenderTagKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SenderTagKey(<redacted>)")
    }
}

/// What every service needs to know about its deployment.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Home domain: handles are `local@domain`, registrations must name it.
    pub domain: String,
    /// Public base URL of the gateway (e.g. `https://kez.lat`), for absolute links
    /// such as sigchain URLs in WebFinger answers.
    pub public_url: String,
    /// KV and stream replication.
    pub replication: Replication,
    /// Timeout for requests one service makes to another.
    pub call_timeout: Duration,
    /// The relay's sender-tag secret, from the stack's secrets. `None` outside a stack: the
    /// inbox service refuses to start without it.
    pub sender_tag_key: Option<SenderTagKey>,
    /// Byte limit of the inbox stream `KEZ_INBOX` (PROTOCOL.md §9.1); the inbox service lowers
    /// it to the `INBOX` account's storage limit when that is smaller.
    pub inbox_max_bytes: u64,
}

impl Settings {
    /// Settings for local development and tests.
    pub fn local(domain: &str, public_url: &str) -> Self {
        Self {
            domain: domain.to_string(),
            public_url: public_url.trim_end_matches('/').to_string(),
            replication: Replication::default(),
            call_timeout: Duration::from_secs(3),
            sender_tag_key: None,
            inbox_max_bytes: DEFAULT_INBOX_MAX_BYTES,
        }
    }

    /// The absolute sigchain URL of a key.
    pub fn sigchain_url(&self, key: &kv_schemas::PublicKey) -> String {
        format!("{}/v1/sigchains/ed25519/{}", self.public_url, key.hex())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tag_key_is_redacted() {
        let mut s = Settings::local("kez.test", "http://x/");
        s.sender_tag_key = Some(SenderTagKey::new([0xab; 32]));
        let text = format!("{s:?}");
        assert!(!text.contains("171") && !text.contains("ab, ab") && text.contains("<redacted>"), "{text}");
        assert_eq!(s.public_url, "http://x");
    }
}
