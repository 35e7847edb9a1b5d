//! NATS subjects, stream, consumer and KV bucket names (PROTOCOL.md §9).

use crate::keys::PublicKey;

/// The JetStream stream holding every inbox.
pub const INBOX_STREAM: &str = "KEZ_INBOX";
/// Subjects captured by the inbox stream.
pub const INBOX_WILDCARD: &str = "kez.inbox.>";
/// Publish permission that lets a user send to anyone.
pub const INBOX_ANY: &str = "kez.inbox.*";

/// The inbox subject of a user.
pub fn inbox_subject(key: &PublicKey) -> String {
    format!("kez.inbox.{}", key.hex())
}

/// The durable consumer name of a user's inbox.
pub fn inbox_consumer(key: &PublicKey) -> String {
    key.hex()
}

/// The reply-inbox prefix a user's client must use.
pub fn reply_prefix(key: &PublicKey) -> String {
    format!("_INBOX.{}", key.hex())
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
    /// Auth-callout worker.
    pub const AUTH_CALLOUT: &str = "kez-auth-callout";
}

/// Request subjects of the micro-services.
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
}

/// The sigchain KV key of a link.
pub fn sigchain_kv_key(key: &PublicKey, seqno: u64) -> String {
    format!("{}.{:010}", key.hex(), seqno)
}
