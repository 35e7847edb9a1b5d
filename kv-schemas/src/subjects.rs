//! NATS subjects, stream, consumer and KV bucket names (PROTOCOL.md §9).
//!
//! Three accounts matter to clients and services (PROTOCOL.md §9.1):
//! end users live in `USERS`, where nothing stores or serves; the inbox stream lives in
//! `INBOX`; the services and their KV buckets live in `APP`. Users reach the other two only
//! through the imports named here, and every reply to an import is routed back into `USERS`.

use crate::keys::PublicKey;

/// The JetStream stream holding every inbox (account `INBOX`).
pub const INBOX_STREAM: &str = "KEZ_INBOX";
/// Subjects captured by the inbox stream.
pub const INBOX_WILDCARD: &str = "kez.inbox.>";

/// The root of a user's inbox, `kez.inbox.<hex>`: the subject wave-1 messages were stored on
/// (still read) and the one a sigchain `nats` endpoint names.
pub fn inbox_subject(key: &PublicKey) -> String {
    format!("kez.inbox.{}", key.hex())
}

/// Same as [`inbox_subject`], named for where it is used as the wave-1 stored subject.
pub fn legacy_inbox_subject(key: &PublicKey) -> String {
    inbox_subject(key)
}

/// Wave-1 durable consumer name (`<hex>`); kept only so wave-1 code paths compile while the
/// clients move to device consumers ([`device_consumer`]).
pub fn inbox_consumer(key: &PublicKey) -> String {
    key.hex()
}

/// Wave-1 publish grant (send to any inbox directly); no longer granted (PROTOCOL.md §9.5).
pub const INBOX_ANY: &str = "kez.inbox.*";

/// The stored subject of a message from one sender: `kez.inbox.<recipient hex>.<tag>`, where
/// the tag is the relay's keyed hash of the pair ([`sender_tag`]); the sender's key is never in
/// the stored bytes.
pub fn tagged_inbox_subject(recipient: &PublicKey, tag: &str) -> String {
    format!("kez.inbox.{}.{tag}", recipient.hex())
}

/// The filter subjects of every device consumer of a user: the wave-1 subject and all tags.
pub fn inbox_filters(key: &PublicKey) -> [String; 2] {
    [legacy_inbox_subject(key), format!("kez.inbox.{}.*", key.hex())]
}

/// Length in bytes of a [`sender_tag`] key.
pub const SENDER_TAG_KEY_BYTES: usize = 32;

/// `hex(BLAKE3-keyed(tag_key, "kez-v1/sender-tag" || 0x00 || recipient || sender)[0..16])`:
/// one subject token per (recipient, sender) pair, so that JetStream's per-subject limit bounds
/// what one sender can hold in one inbox, without writing the sender's key to disk.
pub fn sender_tag(tag_key: &[u8; SENDER_TAG_KEY_BYTES], recipient: &PublicKey, sender: &PublicKey) -> String {
    let mut h = blake3::Hasher::new_keyed(tag_key);
    h.update(b"kez-v1/sender-tag\0");
    h.update(recipient.as_bytes());
    h.update(sender.as_bytes());
    hex::encode(&h.finalize().as_bytes()[..16])
}

/// A device id: 16 lowercase hex characters (8 random bytes), chosen by the device.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct DeviceId(String);

impl DeviceId {
    /// A fresh random device id.
    pub fn random() -> Self {
        Self(hex::encode(crate::random_bytes::<8>()))
    }

    /// The id text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for DeviceId {
    type Error = crate::KezError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        if s.len() == 16 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            Ok(Self(s))
        } else {
            Err(crate::error::err(crate::ErrorCode::InvalidRequest, "a device id is 16 lowercase hex characters"))
        }
    }
}

impl std::str::FromStr for DeviceId {
    type Err = crate::KezError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::try_from(s.to_owned())
    }
}

impl From<DeviceId> for String {
    fn from(d: DeviceId) -> String {
        d.0
    }
}

impl std::fmt::Display for DeviceId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The durable consumer of one device: `<key hex>_<device id>` (created by the inbox service).
pub fn device_consumer(key: &PublicKey, device: &DeviceId) -> String {
    format!("{}_{device}", key.hex())
}

/// The NATS connection name a device connects with; the auth callout grants pull and ack
/// permissions for the consumer of exactly this device.
pub fn device_connection_name(device: &DeviceId) -> String {
    format!("{DEVICE_CONNECTION_PREFIX}{device}")
}

/// Prefix of [`device_connection_name`].
pub const DEVICE_CONNECTION_PREFIX: &str = "kez-device:";

/// Reads the device id back out of a connection name (`None` for any other name).
pub fn device_from_connection_name(name: &str) -> Option<DeviceId> {
    name.strip_prefix(DEVICE_CONNECTION_PREFIX)?.parse().ok()
}

/// Pull requests of a device consumer (imported into `USERS` from `INBOX`).
pub fn consumer_next_subject(consumer: &str) -> String {
    format!("$JS.API.CONSUMER.MSG.NEXT.{INBOX_STREAM}.{consumer}")
}

/// Acks of a device consumer: the reply subjects of delivered messages start with this.
pub fn consumer_ack_prefix(consumer: &str) -> String {
    format!("$JS.ACK.{INBOX_STREAM}.{consumer}")
}

/// The reply-inbox prefix a user's client must use.
pub fn reply_prefix(key: &PublicKey) -> String {
    format!("_INBOX.{}", key.hex())
}

/// Root of the subjects users publish requests on: `kez.u.<own key hex>.…`. The callout grants
/// `kez.u.<own hex>.>`, so the second token authenticates the caller to the service.
pub const USER_REQUEST_ROOT: &str = "kez.u";
/// What the services' account exports to `USERS` (and the inbox service subscribes to).
pub const USER_REQUEST_WILDCARD: &str = "kez.u.*.>";

/// Send a sealed envelope from `sender` to `recipient` through the relay.
pub fn user_send_subject(sender: &PublicKey, recipient: &PublicKey) -> String {
    format!("{USER_REQUEST_ROOT}.{}.send.{}", sender.hex(), recipient.hex())
}

/// Device operations of a user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceOp {
    /// Create (or confirm) this device and its consumer.
    Enroll,
    /// List the user's devices.
    List,
    /// Rename a device.
    Rename,
    /// Remove a device and delete its consumer.
    Remove,
}

impl DeviceOp {
    /// Every operation.
    pub const ALL: [DeviceOp; 4] = [DeviceOp::Enroll, DeviceOp::List, DeviceOp::Rename, DeviceOp::Remove];

    /// The last subject token.
    pub fn as_str(self) -> &'static str {
        match self {
            DeviceOp::Enroll => "enroll",
            DeviceOp::List => "list",
            DeviceOp::Rename => "rename",
            DeviceOp::Remove => "remove",
        }
    }
}

/// `kez.u.<hex>.devices.<op>`.
pub fn user_devices_subject(key: &PublicKey, op: DeviceOp) -> String {
    format!("{USER_REQUEST_ROOT}.{}.devices.{}", key.hex(), op.as_str())
}

/// `kez.u.<hex>.block`: refuse a sender and drop what it has in the inbox.
pub fn user_block_subject(key: &PublicKey) -> String {
    format!("{USER_REQUEST_ROOT}.{}.block", key.hex())
}

/// `kez.u.<hex>.unblock`.
pub fn user_unblock_subject(key: &PublicKey) -> String {
    format!("{USER_REQUEST_ROOT}.{}.unblock", key.hex())
}

/// KV bucket: handle local part → registration record.
pub const BUCKET_HANDLES: &str = "kez_handles";
/// KV bucket: key hex → handle local part (one handle per key).
pub const BUCKET_KEYS: &str = "kez_keys";
/// KV bucket: `<key hex>.<nonce>` → seen marker for registration replay protection.
pub const BUCKET_REG_NONCES: &str = "kez_reg_nonces";
/// KV bucket: `<key hex>.<seqno, 10 digits>` → link bytes.
pub const BUCKET_SIGCHAINS: &str = "kez_sigchains";
/// KV bucket: manifest BLAKE3 hex → manifest bytes.
pub const BUCKET_MANIFESTS: &str = "kez_manifests";
/// KV bucket: key hex → the user's device list ([`crate::api::DeviceRecord`]).
pub const BUCKET_DEVICES: &str = "kez_devices";
/// KV bucket: `<recipient hex>.<sender tag>` → block marker.
pub const BUCKET_BLOCKS: &str = "kez_blocks";

/// Service names as they appear in `nats micro list`.
pub mod service {
    /// Handle registry.
    pub const REGISTRY: &str = "kez-registry";
    /// WebFinger resolver.
    pub const WEBFINGER: &str = "kez-webfinger";
    /// Sigchain store.
    pub const SIGCHAIN: &str = "kez-sigchain";
    /// Manifest index.
    pub const MANIFEST: &str = "kez-manifest-index";
    /// Inbox relay and devices.
    pub const INBOX: &str = "kez-inbox";
    /// Auth-callout worker.
    pub const AUTH_CALLOUT: &str = "kez-auth-callout";
}

/// Request subjects of the micro-services (account `APP`).
pub mod svc {
    /// Register a handle.
    pub const REGISTRY_REGISTER: &str = "kez.svc.registry.v1.register";
    /// Look up by handle.
    pub const REGISTRY_LOOKUP_HANDLE: &str = "kez.svc.registry.v1.lookup_handle";
    /// Look up by key.
    pub const REGISTRY_LOOKUP_KEY: &str = "kez.svc.registry.v1.lookup_key";
    /// Append one sigchain link.
    pub const SIGCHAIN_APPEND: &str = "kez.svc.sigchain.v1.append";
    /// Get a whole chain.
    pub const SIGCHAIN_GET: &str = "kez.svc.sigchain.v1.get";
    /// Get a chain's derived state.
    pub const SIGCHAIN_STATE: &str = "kez.svc.sigchain.v1.state";
    /// Store a manifest.
    pub const MANIFEST_PUT: &str = "kez.svc.manifest.v1.put";
    /// Get a manifest by hash.
    pub const MANIFEST_GET: &str = "kez.svc.manifest.v1.get";
    /// Get an owner's current manifest.
    pub const MANIFEST_BY_OWNER: &str = "kez.svc.manifest.v1.by_owner";
    /// Resolve a WebFinger resource.
    pub const WEBFINGER_RESOLVE: &str = "kez.svc.webfinger.v1.resolve";
    /// Inbox stream usage (for health checks and operators).
    pub const INBOX_STATUS: &str = "kez.svc.inbox.v1.status";
}

/// The sigchain KV key of a link.
pub fn sigchain_kv_key(key: &PublicKey, seqno: u64) -> String {
    format!("{}.{:010}", key.hex(), seqno)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn device_ids() {
        assert!("0123456789abcdef".parse::<DeviceId>().is_ok());
        for bad in ["", "0123456789abcde", "0123456789ABCDEF", "0123456789abcdeg", "0123456789abcdef0", "a.b*"] {
            assert!(bad.parse::<DeviceId>().is_err(), "{bad}");
        }
        let d = DeviceId::random();
        assert_eq!(device_from_connection_name(&device_connection_name(&d)), Some(d));
        assert_eq!(device_from_connection_name("kez-device:xyz"), None);
        assert_eq!(device_from_connection_name("other"), None);
    }

    #[test]
    fn sender_tags_are_per_pair_and_keyed() {
        let a = PublicKey::of(&ed25519_dalek::SigningKey::from_bytes(&[1; 32]));
        let b = PublicKey::of(&ed25519_dalek::SigningKey::from_bytes(&[2; 32]));
        let k = [7u8; 32];
        let t = sender_tag(&k, &a, &b);
        assert_eq!(t.len(), 32);
        assert_ne!(t, sender_tag(&k, &b, &a));
        assert_ne!(t, sender_tag(&[8u8; 32], &a, &b));
        assert_eq!(t, sender_tag(&k, &a, &b));
    }
}
