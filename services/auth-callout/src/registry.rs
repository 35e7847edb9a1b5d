//! "Is this key a registered primary key?" — asked of the registry service for every login.

use std::future::Future;
use std::time::Duration;

use bytes::Bytes;
use kez_service_kit::svc;
use kv_schemas::subjects::svc::REGISTRY_LOOKUP_KEY;
use kv_schemas::{ErrorCode, PublicKey};

/// Why the registry could not give an answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegistryError {
    /// Nobody answered (no responders, timeout, broker unreachable): transient.
    #[error("registry unavailable: {0}")]
    Unavailable(String),
    /// The registry answered with something other than a record or `key_not_found`.
    #[error("registry error: {0}")]
    Unexpected(String),
}

/// The worker's view of the registry. Implemented over NATS by [`NatsRegistry`]; tests may use
/// anything else.
pub trait KeyRegistry: Send + Sync + 'static {
    /// `Ok(true)` if `key` is a registered primary key, `Ok(false)` if it is not.
    fn is_registered(&self, key: &PublicKey) -> impl Future<Output = Result<bool, RegistryError>> + Send;
}

/// Asks `kez.svc.registry.v1.lookup_key` over a NATS connection in account APP.
#[derive(Debug, Clone)]
pub struct NatsRegistry {
    client: async_nats::Client,
    timeout: Duration,
}

impl NatsRegistry {
    /// `timeout` must leave room inside the server's `authorization.timeout` (2 s) for the rest of
    /// the callout round trip.
    pub fn new(client: async_nats::Client, timeout: Duration) -> Self {
        Self { client, timeout }
    }
}

/// Only the field we need; the registry's record has more (handle, registered_at), and being
/// lenient here keeps the worker working when the registry adds fields.
#[derive(serde::Deserialize)]
struct LookupReply {
    key: PublicKey,
}

impl KeyRegistry for NatsRegistry {
    async fn is_registered(&self, key: &PublicKey) -> Result<bool, RegistryError> {
        let body = serde_json::json!({ "key": key }).to_string();
        match svc::call(&self.client, REGISTRY_LOOKUP_KEY, Bytes::from(body), self.timeout).await {
            Ok(reply) => {
                let reply: LookupReply = serde_json::from_slice(&reply)
                    .map_err(|e| RegistryError::Unexpected(format!("unreadable lookup_key reply: {e}")))?;
                if reply.key == *key {
                    Ok(true)
                } else {
                    // A registry that answers for another key is broken; never admit on that.
                    Err(RegistryError::Unexpected(format!("lookup_key for {key} answered {}", reply.key)))
                }
            }
            Err(e) if e.code == ErrorCode::KeyNotFound => Ok(false),
            Err(e) if matches!(e.code, ErrorCode::Unavailable | ErrorCode::Timeout) => {
                Err(RegistryError::Unavailable(e.to_string()))
            }
            Err(e) => Err(RegistryError::Unexpected(e.to_string())),
        }
    }
}
