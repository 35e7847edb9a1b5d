//! Settings every service shares, taken from the server's configuration.

use std::time::Duration;

use crate::kv::Replication;

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
}

impl Settings {
    /// Settings for local development and tests.
    pub fn local(domain: &str, public_url: &str) -> Self {
        Self {
            domain: domain.to_string(),
            public_url: public_url.trim_end_matches('/').to_string(),
            replication: Replication::default(),
            call_timeout: Duration::from_secs(3),
        }
    }

    /// The absolute sigchain URL of a key.
    pub fn sigchain_url(&self, key: &kv_schemas::PublicKey) -> String {
        format!("{}/v1/sigchains/ed25519/{}", self.public_url, key.hex())
    }
}
