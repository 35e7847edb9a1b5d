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
///
/// With replicas > 1 the bucket reads from its stream leader (direct get off): a direct get
/// may be answered by a replica that has not applied the latest write yet, and the services
/// rely on reading what they just wrote (a `create` that found the key taken reads the
/// holder; the next append reads the chain's tail).
///
/// An existing bucket with fewer replicas than configured (an R1 bucket of a single node
/// that now runs in a cluster) is scaled up in place: JetStream copies the data to the new
/// replicas and keeps serving meanwhile. A bucket with more replicas is left alone (scaling
/// down is an operator's decision). A failed scale-up is an error: running on fewer replicas
/// than configured would silently lose the fault tolerance the operator asked for.
pub async fn ensure_bucket(
    js: &jetstream::Context,
    spec: &BucketSpec,
    repl: Replication,
) -> Result<kv::Store, async_nats::Error> {
    // Workers starting together race to create the bucket; in a cluster the loser can find it
    // neither creatable nor readable for a moment while its assignment spreads.
    let mut attempt = 1;
    loop {
        match try_ensure_bucket(js, spec, repl).await {
            Ok(store) => return Ok(store),
            Err(e) if attempt < 5 => {
                tracing::debug!(bucket = spec.name, "setting up the bucket: {e}; trying again");
                tokio::time::sleep(Duration::from_millis(200 * attempt)).await;
                attempt += 1;
            }
            Err(e) => return Err(e),
        }
    }
}

async fn try_ensure_bucket(
    js: &jetstream::Context,
    spec: &BucketSpec,
    repl: Replication,
) -> Result<kv::Store, async_nats::Error> {
    if js.get_key_value(spec.name).await.is_err() {
        let config = kv::Config {
            bucket: spec.name.to_string(),
            description: spec.description.to_string(),
            history: spec.history,
            max_value_size: stream_max_message_size(spec),
            max_age: spec.max_age,
            storage: jetstream::stream::StorageType::File,
            num_replicas: repl.replicas,
            ..Default::default()
        };
        if let Err(first) = js.create_key_value(config).await {
            // Another worker created it between our get and create.
            js.get_key_value(spec.name).await.map_err(|_| first)?;
        }
    }
    ensure_replication(js, &format!("KV_{}", spec.name), repl).await?;
    ensure_header_room(js, &format!("KV_{}", spec.name), stream_max_message_size(spec)).await?;
    // Bound after the settings are final: the store picks direct or leader reads from them.
    Ok(js.get_key_value(spec.name).await?)
}

/// Room for the headers of a KV write on top of the value: JetStream counts headers in
/// `max_msg_size`, and a create carries `Nats-Expected-Last-Subject-Sequence`, so a value of
/// exactly `max_value_size` bytes would otherwise be refused.
const KV_HEADER_ROOM: i32 = 1024;

/// The KV stream's `max_msg_size` for `spec`: its largest value plus header room. The services
/// bound values themselves (e.g. a sigchain link to 8 KiB); this is the store's backstop.
fn stream_max_message_size(spec: &BucketSpec) -> i32 {
    if spec.max_value_size <= 0 { spec.max_value_size } else { spec.max_value_size.saturating_add(KV_HEADER_ROOM) }
}

/// Raises the stream's `max_msg_size` to `wanted` when a bucket created by an older version
/// has less (never lowers it).
async fn ensure_header_room(js: &jetstream::Context, name: &str, wanted: i32) -> Result<(), async_nats::Error> {
    let mut stream = js.get_stream(name).await?;
    let mut config = stream.info().await?.config.clone();
    if wanted <= 0 || config.max_message_size <= 0 || config.max_message_size >= wanted {
        return Ok(());
    }
    tracing::info!(stream = name, from = config.max_message_size, to = wanted, "raising the bucket's largest message");
    config.max_message_size = wanted;
    js.update_stream(config).await.map_err(|e| format!("raising max_msg_size of {name} failed: {e}"))?;
    Ok(())
}

/// Brings the existing stream `name` to `repl`: raises its replicas if lower, and turns
/// direct get off when replicated (see [`ensure_bucket`]).
pub async fn ensure_replication(
    js: &jetstream::Context,
    name: &str,
    repl: Replication,
) -> Result<(), async_nats::Error> {
    let mut stream = js.get_stream(name).await?;
    let mut config = stream.info().await?.config.clone();
    let scale = config.num_replicas < repl.replicas;
    let leader_reads = repl.replicas > 1 && config.allow_direct;
    if !scale && !leader_reads {
        return Ok(());
    }
    if scale {
        tracing::warn!(
            stream = name,
            from = config.num_replicas,
            to = repl.replicas,
            "scaling up the stream's replicas"
        );
        config.num_replicas = repl.replicas;
    }
    config.allow_direct = config.allow_direct && !leader_reads;
    js.update_stream(config)
        .await
        .map_err(|e| format!("updating {name} to {} replicas with leader reads failed: {e}", repl.replicas))?;
    Ok(())
}

/// Maps a KV or JetStream failure to a stable code without leaking internals.
pub fn unavailable(context: &str, e: impl std::fmt::Display) -> KezError {
    tracing::warn!("{context}: {e}");
    KezError::new(ErrorCode::Unavailable, format!("{context}: storage is unavailable"))
}
