//! Request and response bodies of the NATS services and the `/v1` HTTP API
//! (PROTOCOL.md §9), and the typed service contract: every request type names its
//! subject and its reply type ([`ServiceRequest`]). Signed objects travel as their
//! exact bytes ([`SignedRegistration`], [`AppendLink`], [`PutManifest`]); their
//! rules are in `register`, `sigchain` and `manifest`.
//!
//! Unknown fields (PROTOCOL.md §9.2): request types reject unknown keys
//! (`deny_unknown_fields`); reply types ignore them, so a newer service can add a
//! reply key without breaking an older gateway, worker or client.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{ErrorCode, KezError, err};
use crate::handle::Handle;
use crate::keys::PublicKey;
use crate::sigchain::SharedFiles;
use crate::subjects::{DeviceId, svc};

/// A request to a NATS service: its subject, its body and what a successful reply decodes to.
pub trait ServiceRequest {
    /// The subject the service serves it on.
    const SUBJECT: &'static str;
    /// The reply body of a success.
    type Reply: ServiceReply;
    /// The request body bytes.
    fn to_body(&self) -> Result<Vec<u8>, KezError>;
}

/// A reply body of a NATS service.
pub trait ServiceReply: Sized {
    /// Decodes a success reply.
    fn from_body(bytes: &[u8]) -> Result<Self, KezError>;
}

/// Encodes a JSON request body; a value serde cannot encode is `internal`, never empty bytes.
fn json_body<T: Serialize>(value: &T) -> Result<Vec<u8>, KezError> {
    serde_json::to_vec(value).map_err(|e| err(ErrorCode::Internal, format!("request could not be encoded: {e}")))
}

macro_rules! json_reply {
    ($($t:ty),* $(,)?) => {$(
        impl ServiceReply for $t {
            fn from_body(bytes: &[u8]) -> Result<Self, KezError> {
                serde_json::from_slice(bytes)
                    .map_err(|e| err(ErrorCode::Internal, format!("unreadable service reply: {e}")))
            }
        }
    )*};
}

macro_rules! json_request {
    ($($t:ty => $subject:expr, $reply:ty;)*) => {$(
        impl ServiceRequest for $t {
            const SUBJECT: &'static str = $subject;
            type Reply = $reply;
            fn to_body(&self) -> Result<Vec<u8>, KezError> {
                json_body(self)
            }
        }
    )*};
}

macro_rules! bytes_request {
    ($($(#[$doc:meta])* $t:ident => $subject:expr, $reply:ty;)*) => {$(
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq)]
        pub struct $t(pub Vec<u8>);

        impl ServiceRequest for $t {
            const SUBJECT: &'static str = $subject;
            type Reply = $reply;
            fn to_body(&self) -> Result<Vec<u8>, KezError> {
                Ok(self.0.clone())
            }
        }
    )*};
}

macro_rules! key_request {
    ($($(#[$doc:meta])* $t:ident;)*) => {$(
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
        #[serde(deny_unknown_fields)]
        pub struct $t {
            /// The key.
            pub key: PublicKey,
        }
    )*};
}

bytes_request! {
    /// `register`: the signed registration request bytes (PROTOCOL.md §4).
    SignedRegistration => svc::REGISTRY_REGISTER, RegisterReply;
    /// `sigchain.append`: one link's exact bytes (PROTOCOL.md §5).
    AppendLink => svc::SIGCHAIN_APPEND, AppendReply;
    /// `manifest.put`: the signed manifest bytes (PROTOCOL.md §7.4).
    PutManifest => svc::MANIFEST_PUT, ManifestPutReply;
}

key_request! {
    /// `lookup_key` request.
    LookupKey;
    /// `sigchain.state` request.
    GetChainState;
    /// `manifest.by_owner` request.
    ManifestByOwner;
}

/// `kez.svc.inbox.v1.status` request (an empty body).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GetInboxStatus;

impl ServiceRequest for GetInboxStatus {
    const SUBJECT: &'static str = svc::INBOX_STATUS;
    type Reply = InboxStatus;
    fn to_body(&self) -> Result<Vec<u8>, KezError> {
        Ok(Vec::new())
    }
}

/// Manifest bytes as stored (replies of `manifest.get` and `manifest.by_owner`), unparsed:
/// the reader verifies them with `manifest::parse` / `verify_against`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestBytes(pub Vec<u8>);

impl ServiceReply for ManifestBytes {
    fn from_body(bytes: &[u8]) -> Result<Self, KezError> {
        Ok(ManifestBytes(bytes.to_vec()))
    }
}

json_request! {
    LookupHandle => svc::REGISTRY_LOOKUP_HANDLE, UserRecord;
    LookupKey => svc::REGISTRY_LOOKUP_KEY, UserRecord;
    GetChain => svc::SIGCHAIN_GET, ChainReply;
    GetChainState => svc::SIGCHAIN_STATE, StateReply;
    ByHash => svc::MANIFEST_GET, ManifestBytes;
    ManifestByOwner => svc::MANIFEST_BY_OWNER, ManifestBytes;
    WebfingerQuery => svc::WEBFINGER_RESOLVE, Value;
}

json_reply!(UserRecord, RegisterReply, AppendReply, ChainReply, StateReply, ManifestPutReply, InboxStatus, Value);

/// `lookup_handle` request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LookupHandle {
    /// Canonical handle.
    pub handle: Handle,
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
pub struct GetChain {
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

/// Reply to `sigchain.state`: the wire form of [`crate::sigchain::ChainState`] (the service
/// serialises that type; readers get endpoints and claims as JSON objects).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateReply {
    /// Chain owner.
    pub key: PublicKey,
    /// Last seqno.
    pub seqno: u64,
    /// Last link id.
    pub tail: Option<String>,
    /// Live endpoints in the order they were added, each with its `link_id`.
    pub endpoints: Vec<Value>,
    /// The latest shared-files pointer.
    pub shared_files: Option<SharedFiles>,
    /// All claims in order, each with its `link_id`.
    pub claims: Vec<Value>,
}

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
pub struct SendReply {}

/// Longest device name, in characters.
pub const MAX_DEVICE_NAME_CHARS: usize = 64;
/// Most devices one user may have at once.
pub const MAX_DEVICES: usize = 16;

/// One device of a user, as listed to that user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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
pub struct BlockReply {
    /// Messages of that sender dropped from the inbox.
    pub purged: u64,
}

/// `kez.svc.inbox.v1.status` reply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde::de::DeserializeOwned;
    use serde_json::json;

    fn key() -> String {
        PublicKey::of(&ed25519_dalek::SigningKey::from_bytes(&[1; 32])).to_string()
    }

    fn strict<R: ServiceRequest + DeserializeOwned>(mut body: Value) {
        assert!(serde_json::from_value::<R>(body.clone()).is_ok(), "{} accepts {body}", R::SUBJECT);
        body["later"] = json!(1);
        assert!(serde_json::from_value::<R>(body).is_err(), "{} must reject an unknown key", R::SUBJECT);
    }

    fn lenient<T: ServiceReply>(mut body: Value) {
        body["later"] = json!({"added": "in a later version"});
        let bytes = serde_json::to_vec(&body).unwrap();
        if let Err(e) = T::from_body(&bytes) {
            panic!("a reply must ignore an unknown key: {body}: {e}");
        }
    }

    #[test]
    fn requests_reject_unknown_keys_and_replies_ignore_them() {
        strict::<LookupHandle>(json!({"handle": "alice@kez.lat"}));
        strict::<LookupKey>(json!({"key": key()}));
        strict::<GetChain>(json!({"key": key()}));
        strict::<GetChainState>(json!({"key": key()}));
        strict::<ManifestByOwner>(json!({"key": key()}));
        strict::<ByHash>(json!({"hash": "00"}));
        strict::<WebfingerQuery>(json!({"resource": "acct:alice@kez.lat"}));

        lenient::<UserRecord>(json!({"handle": "alice@kez.lat", "key": key(), "registered_at": 1}));
        lenient::<RegisterReply>(json!({"handle": "alice@kez.lat", "key": key(), "created": true}));
        lenient::<AppendReply>(json!({"seqno": 1, "link_id": "ab"}));
        lenient::<ChainReply>(json!({"key": key(), "links": []}));
        lenient::<StateReply>(
            json!({"key": key(), "seqno": 0, "tail": null, "endpoints": [], "shared_files": null, "claims": []}),
        );
        lenient::<ManifestPutReply>(json!({"hash": "00", "owner": key(), "seq": 1}));
        lenient::<InboxStatus>(json!({"bytes": 1, "max_bytes": 2, "messages": 3, "consumers": 4, "full": false}));
        let device = json!({"id": "0123456789abcdef", "name": "laptop", "created_at": 1, "last_active": null});
        let with_later = |mut v: Value| {
            v["later"] = json!(1);
            v
        };
        serde_json::from_value::<EnrollReply>(with_later(json!({"device": device, "consumer": "c", "created": true})))
            .unwrap();
        serde_json::from_value::<DeviceList>(with_later(json!({"devices": [with_later(device.clone())]}))).unwrap();
        serde_json::from_value::<BlockReply>(with_later(json!({"purged": 0}))).unwrap();
        serde_json::from_value::<SendReply>(with_later(json!({}))).unwrap();
    }

    #[test]
    fn a_reply_that_is_not_the_reply_type_is_an_internal_error() {
        assert_eq!(UserRecord::from_body(b"{}").unwrap_err().code, ErrorCode::Internal);
        assert_eq!(StateReply::from_body(b"not json").unwrap_err().code, ErrorCode::Internal);
        assert_eq!(ManifestBytes::from_body(b"raw").unwrap(), ManifestBytes(b"raw".to_vec()));
    }

    #[test]
    fn the_served_chain_state_reads_as_the_state_reply() {
        use crate::sigchain::{ChainState, Endpoint, Op, build_link, parse_link};
        let sk = ed25519_dalek::SigningKey::from_bytes(&[3u8; 32]);
        let mut state = ChainState::empty(PublicKey::of(&sk));
        let op = Op::AddEndpoint(Endpoint::iroh_wave1(&PublicKey::of(&sk)));
        state.apply(&parse_link(&build_link(&sk, 1, None, 1_800_000_000_000, &op).unwrap()).unwrap()).unwrap();
        let served = serde_json::to_value(&state).unwrap();
        let read = StateReply::from_body(&serde_json::to_vec(&served).unwrap()).unwrap();
        assert_eq!(read.seqno, 1);
        assert_eq!(read.endpoints.len(), 1);
        assert_eq!(serde_json::to_value(&read).unwrap(), served, "StateReply and ChainState share one wire form");
    }
}
