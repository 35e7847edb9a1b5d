//! Request and response bodies of the NATS services and the `/v1` HTTP API
//! (PROTOCOL.md §9). Signed objects travel as their exact bytes and are not
//! modelled here; see `register`, `sigchain` and `manifest`.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::handle::Handle;
use crate::keys::PublicKey;
use crate::sigchain::ChainState;

/// `lookup_handle` request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LookupHandle {
    /// Canonical handle.
    pub handle: Handle,
}

/// Requests keyed by an identity key (`lookup_key`, `sigchain.get`, `sigchain.state`, `manifest.by_owner`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ByKey {
    /// The key.
    pub key: PublicKey,
}

/// `manifest.get` request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ByHash {
    /// BLAKE3 hex.
    pub hash: String,
}

/// `webfinger.resolve` request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebfingerQuery {
    /// The `resource` parameter, e.g. `acct:alice@kez.lat`.
    pub resource: String,
    /// Requested link relations (`rel` parameters); empty means all.
    #[serde(default)]
    pub rel: Vec<String>,
}

/// A registry record (KV value of `kez_handles`, and lookup replies).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserRecord {
    /// Canonical handle.
    pub handle: Handle,
    /// Primary key.
    pub key: PublicKey,
    /// Server time of registration, ms.
    pub registered_at: u64,
}

/// Reply to `register`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegisterReply {
    /// Handle.
    pub handle: Handle,
    /// Key.
    pub key: PublicKey,
    /// `false` when the same key re-registered the same handle.
    pub created: bool,
}

/// Reply to `sigchain.append`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppendReply {
    /// Seqno of the stored link.
    pub seqno: u64,
    /// Its id.
    pub link_id: String,
}

/// Reply to `sigchain.get`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChainReply {
    /// Chain key.
    pub key: PublicKey,
    /// Links in order, as JSON objects (their JCS form is the signed bytes).
    pub links: Vec<Value>,
}

/// Reply to `sigchain.state` (the derived state).
pub type StateReply = ChainState;

/// Reply to `manifest.put`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestPutReply {
    /// BLAKE3 hex.
    pub hash: String,
    /// Owner.
    pub owner: PublicKey,
    /// Sequence.
    pub seq: u64,
}

/// `GET /v1/u/:handle` reply.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UserView {
    /// Canonical handle.
    pub handle: Handle,
    /// Primary key.
    pub primary: PublicKey,
    /// Absolute URL of the sigchain.
    pub sigchain_url: String,
    /// Live endpoints from the sigchain (may be empty right after registration).
    pub endpoints: Vec<Value>,
}

/// `GET /v1/config` reply: what a client needs to start.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientConfig {
    /// Home domain.
    pub domain: String,
    /// Native NATS URL clients connect to.
    pub nats_url: String,
    /// NATS WebSocket URL for browsers.
    pub nats_ws_url: String,
    /// The inbox stream.
    pub inbox_stream: String,
    /// Inbox retention, ms (the replay window of PROTOCOL.md §6).
    pub inbox_max_age_ms: u64,
    /// Server software version.
    pub version: String,
    /// Protocol version.
    pub protocol: u32,
}

/// The HTTP error body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
}

/// Inside [`ErrorBody`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorDetail {
    /// Stable code string.
    pub code: String,
    /// Human message.
    pub message: String,
}
