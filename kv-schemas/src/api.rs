//! Request and response bodies of the NATS services and the `/v1` HTTP API
//! (PROTOCOL.md §9). Signed objects travel as their exact bytes and are not
//! modelled here; see `register`, `sigchain` and `manifest`.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::handle::Handle;
use crate::keys::PublicKey;
use crate::sigchain::ChainState;
use crate::subjects::DeviceId;

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

/// `sigchain.get` request: the links after seqno `since` (absent or 0: from link 1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChainGet {
    /// The chain key.
    pub key: PublicKey,
    /// Return links with seqno > `since`.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub since: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// Link bytes one `sigchain.get` reply carries at most (PROTOCOL.md §9.1): a
/// page stays far below NATS's default 1 MiB payload whatever the chain's length.
pub const CHAIN_PAGE_BYTES: usize = 256 * 1024;

/// Reply to `sigchain.get`: one page of links.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChainReply {
    /// Chain key.
    pub key: PublicKey,
    /// Links in order, as JSON objects (their JCS form is the signed bytes).
    pub links: Vec<Value>,
    /// Present (`true`) when later links exist: ask again with `since` = the last seqno.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub more: bool,
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

/// Reply to a relayed send (`kez.u.<hex>.send.<recipient>`): stored for the recipient. It
/// carries nothing else on purpose (a stream sequence would leak the server's message volume).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SendReply {}

/// Longest device name, in characters.
pub const MAX_DEVICE_NAME_CHARS: usize = 64;
/// Most devices one user may have at once.
pub const MAX_DEVICES: usize = 16;

/// One device of a user, as listed to that user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Device {
    /// Device id.
    pub id: DeviceId,
    /// Name the user gave it (1–64 characters, no control characters).
    pub name: String,
    /// When it was enrolled, ms.
    pub created_at: u64,
    /// When its consumer last delivered a message, ms (`null` if never or unknown).
    #[serde(default)]
    pub last_active: Option<u64>,
}

/// The KV record of a user's devices (`kez_devices`, key = key hex).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceRecord {
    /// Current devices, in enrollment order.
    pub devices: Vec<Device>,
    /// Ids removed by the user; they cannot enroll again (`device_removed`).
    #[serde(default)]
    pub removed: Vec<DeviceId>,
}

/// `devices.enroll` request: create this device's consumer (idempotent).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnrollDevice {
    /// The device.
    pub device: DeviceId,
    /// Its name (used only when it is created).
    pub name: String,
}

/// `devices.enroll` reply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnrollReply {
    /// The device as stored.
    pub device: Device,
    /// The consumer the device pulls from.
    pub consumer: String,
    /// `false` when the device already existed.
    pub created: bool,
}

/// `devices.list` reply (request: `{}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceList {
    /// Current devices.
    pub devices: Vec<Device>,
}

/// `devices.rename` request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RenameDevice {
    /// The device.
    pub device: DeviceId,
    /// New name.
    pub name: String,
}

/// `devices.remove` request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RemoveDevice {
    /// The device.
    pub device: DeviceId,
}

/// Checks a device name: 1–64 characters, no control characters, not only spaces.
pub fn check_device_name(name: &str) -> Result<(), crate::KezError> {
    let n = name.chars().count();
    if n == 0 || n > MAX_DEVICE_NAME_CHARS || name.chars().any(char::is_control) || name.trim().is_empty() {
        return Err(crate::error::err(
            crate::ErrorCode::InvalidRequest,
            format!("a device name is 1 to {MAX_DEVICE_NAME_CHARS} characters without control characters"),
        ));
    }
    Ok(())
}

/// `block` / `unblock` request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BlockSender {
    /// The sender to refuse (or accept again).
    pub sender: PublicKey,
}

/// `block` reply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BlockReply {
    /// Messages of that sender dropped from the inbox.
    pub purged: u64,
}

/// `kez.svc.inbox.v1.status` reply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InboxStatus {
    /// Bytes stored in the inbox stream.
    pub bytes: u64,
    /// The stream's byte limit.
    pub max_bytes: u64,
    /// Messages stored.
    pub messages: u64,
    /// Device consumers.
    pub consumers: u64,
    /// `true` when new mail is (about to be) refused for lack of space (≥ 95 % of `max_bytes`).
    pub full: bool,
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
