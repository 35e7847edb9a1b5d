//! JetStream KV buckets: idempotent creation at start-up and error mapping.

use std::time::Duration;

use async_nats::jetstream::{self, kv};
use kv_schemas::{ErrorCode, KezError};

/// How a bucket is laid out; replicas come from configuration (1 locally, 3 in a cluster).
#[derive(Debug, Clone)]
pub struct BucketSpec {
    /// Bucket name.
    pub name: &'static str,
    /// Purpose, shown in stream info.
    pub description: &'static str,
    /// Values kept per key.
    pub history: i64,
    /// Largest value.
    pub max_value_size: i32,
    /// Entries expire after this long (zero: never).
    pub max_age: Duration,
}

/// Replication settings shared by every bucket of a deployment.
#[derive(Debug, Clone, Copy)]
pub struct Replication {
    /// Replicas per bucket.
    pub replicas: usize,
}

impl Default for Replication {
    fn default() -> Self {
        Self { replicas: 1 }
    }
}

/// Opens the bucket, creating it when missing. Safe to race with other workers.
pub async fn ensure_bucket(
    js: &jetstream::Context,
    spec: &BucketSpec,
    repl: Replication,
) -> Result<kv::Store, async_nats::Error> {
    if let Ok(store) = js.get_key_value(spec.name).await {
        return Ok(store);
    }
    let config = kv::Config {
        bucket: spec.name.to_string(),
        description: spec.description.to_string(),
        history: spec.history,
        max_value_size: spec.max_value_size,
        max_age: spec.max_age,
        storage: jetstream::stream::StorageType::File,
        num_replicas: repl.replicas,
        ..Default::default()
    };
    match js.create_key_value(config).await {
        Ok(store) => Ok(store),
        // Another worker created it between our get and create.
        Err(first) => js.get_key_value(spec.name).await.map_err(|_| first.into()),
    }
}

/// Maps a KV or JetStream failure to a stable code without leaking internals.
pub fn unavailable(context: &str, e: impl std::fmt::Display) -> KezError {
    tracing::warn!("{context}: {e}");
    KezError::new(ErrorCode::Unavailable, format!("{context}: storage is unavailable"))
}
