//! The inbox service (`kez-inbox`, account `APP`): the only way into the inbox stream
//! `KEZ_INBOX` of account `INBOX` (PROTOCOL.md §9.1, §9.3).
//!
//! - **relay** (`kez.u.<sender>.send.<recipient>`): checks the outer envelope, the sender's
//!   rate, that the recipient is registered and has not blocked the sender, then stores the
//!   bytes on `kez.inbox.<recipient>.<sender tag>`, where the per-subject cap bounds one sender's
//!   share of an inbox ([`relay`]).
//! - **devices** (`kez.u.<hex>.devices.*`): the user's device list in `kez_devices` and one
//!   durable pull consumer per device ([`devices`]).
//! - **blocks** (`kez.u.<hex>.block`/`unblock`): markers in `kez_blocks`, purging what a blocked
//!   sender stored ([`blocks`]).
//! - **status** (`kez.svc.inbox.v1.status`): stream usage, for `/v1/healthz` and operators.
//!
//! Users reach this service through the `kez.u.*.>` export of `APP`; the second subject token is
//! the authenticated caller (the callout grants only `kez.u.<own hex>.>`). The service reaches
//! the stream through two imports from `INBOX`: `kez.inbox.>` (publish, PubAck back) and the
//! JetStream API as `$JS.INBOX.API.>`. At start it creates or updates the stream ([`stream`]),
//! its KV buckets, and moves a wave-1 stream out of `APP` ([`migrate`]).
//!
//! Logging: nothing here logs who sends to whom above debug level.

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{self, kv};
use async_nats::service::Service;
use bytes::Bytes;
use kez_service_kit::kv::{BucketSpec, ensure_bucket};
use kez_service_kit::settings::{SenderTagKey, Settings};
use kez_service_kit::svc;
use kv_schemas::api::InboxStatus;
use kv_schemas::error::err;
use kv_schemas::subjects::{BUCKET_BLOCKS, BUCKET_DEVICES, INBOX_STREAM, service, svc as subj};
use kv_schemas::{ErrorCode, KezError, PublicKey};
use tracing::info;

mod blockcache;
mod blocks;
pub mod devices;
mod jsapi;
mod limits;
pub mod migrate;
mod relay;
pub mod stream;

pub use limits::RateLimit;
pub use migrate::Migrated;
pub use stream::InboxStreamConfig;

/// The prefix under which `APP` imports the `INBOX` account's JetStream API.
pub const INBOX_API_PREFIX: &str = "$JS.INBOX.API";
/// `full` in the status once the stream holds this share of its `max_bytes` (percent).
pub const FULL_PERCENT: u64 = 95;

const DEVICES: BucketSpec = BucketSpec {
    name: BUCKET_DEVICES,
    description: "kez-chat devices: key hex -> device record",
    history: 1,
    max_value_size: 64 * 1024,
    max_age: Duration::ZERO,
};
const BLOCKS: BucketSpec = BucketSpec {
    name: BUCKET_BLOCKS,
    description: "kez-chat blocks: <recipient hex>.<sender tag> -> marker",
    history: 1,
    max_value_size: 256,
    max_age: Duration::ZERO,
};

/// Tunables of the inbox service; [`InboxConfig::from_settings`] gives the production values.
#[derive(Debug, Clone)]
pub struct InboxConfig {
    /// The stream's limits.
    pub stream: InboxStreamConfig,
    /// Per-sender rate, per worker.
    pub rate: RateLimit,
    /// Recipients remembered as registered, per worker.
    pub registered_cache: usize,
    /// How long a registration answer is reused.
    pub registered_ttl: Duration,
}

impl InboxConfig {
    /// Defaults with the deployment's `inbox_max_bytes`.
    pub fn from_settings(settings: &Settings) -> Self {
        Self {
            stream: InboxStreamConfig { max_bytes: settings.inbox_max_bytes, ..Default::default() },
            rate: RateLimit::default(),
            registered_cache: 100_000,
            registered_ttl: Duration::from_secs(600),
        }
    }
}

/// Why the service could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// No sender-tag secret in the settings.
    #[error("the inbox service needs the stack's sender-tag secret (settings.sender_tag_key is not set)")]
    NoTagKey,
    /// The configuration is invalid.
    #[error("invalid inbox configuration: {0}")]
    Config(String),
    /// The `INBOX` JetStream API did not answer.
    #[error("JetStream of account INBOX is not reachable through {INBOX_API_PREFIX}: {detail}")]
    NoJetStream {
        /// What happened.
        detail: String,
    },
    /// The stream could not be created or is unsafe.
    #[error("the inbox stream KEZ_INBOX could not be set up: {detail}")]
    InboxStream {
        /// What happened.
        detail: String,
    },
    /// A KV bucket or the service endpoints could not be set up.
    #[error("{0}")]
    Nats(String),
}

/// Everything a worker holds; shared by the endpoint handlers.
pub(crate) struct Inbox {
    client: async_nats::Client,
    inbox_js: jetstream::Context,
    tag_key: SenderTagKey,
    devices: kv::Store,
    blocks: kv::Store,
    block_cache: Arc<blockcache::BlockCache>,
    limiter: limits::Limiter,
    registered: limits::RegisteredCache,
    call_timeout: Duration,
}

/// Starts the service with the production configuration.
pub async fn start(client: &async_nats::Client, settings: &Settings) -> Result<Service, async_nats::Error> {
    start_with(client, settings, InboxConfig::from_settings(settings)).await
}

/// Starts the service with explicit tunables (tests use small limits).
pub async fn start_with(
    client: &async_nats::Client,
    settings: &Settings,
    mut config: InboxConfig,
) -> Result<Service, async_nats::Error> {
    let tag_key = settings.sender_tag_key.clone().ok_or(StartError::NoTagKey)?;
    let inbox_js = jetstream::with_prefix(client.clone(), INBOX_API_PREFIX);
    config.stream.max_bytes =
        clamp_to_account(&inbox_js, config.stream.max_bytes, settings.replication.replicas).await?;
    config.stream.validate().map_err(StartError::Config)?;
    stream::ensure(&inbox_js, &config.stream.stream_config(settings.replication)).await?;

    let app = jetstream::new(client.clone());
    let bucket = |e: async_nats::Error| StartError::Nats(format!("KV bucket: {e}"));
    let devices = ensure_bucket(&app, &DEVICES, settings.replication).await.map_err(bucket)?;
    let blocks = ensure_bucket(&app, &BLOCKS, settings.replication).await.map_err(bucket)?;
    migrate::run(client, &devices, settings.call_timeout).await;

    let block_cache = Arc::new(blockcache::BlockCache::default());
    block_cache.spawn(blocks.clone());
    let inbox = Arc::new(Inbox {
        client: client.clone(),
        inbox_js,
        tag_key,
        devices,
        blocks,
        block_cache,
        limiter: limits::Limiter::new(config.rate),
        registered: limits::RegisteredCache::new(config.registered_cache, config.registered_ttl),
        call_timeout: settings.call_timeout,
    });
    let service = svc::start(client, service::INBOX, "Inbox relay, devices and blocks").await?;
    let i = inbox.clone();
    svc::serve(&service, "status", subj::INBOX_STATUS, move |_| {
        let i = i.clone();
        async move { i.status().await }
    })
    .await?;
    // Endpoint names follow ADR-32 (`[A-Za-z0-9_-]+`); the subjects are wildcards.
    macro_rules! user_endpoint {
        ($name:literal, $subject:literal, $method:ident) => {{
            let i = inbox.clone();
            svc::serve_subject(&service, $name, $subject, move |subject, payload| {
                let i = i.clone();
                async move { i.$method(&subject, payload).await }
            })
            .await?;
        }};
    }
    user_endpoint!("send", "kez.u.*.send.*", send);
    user_endpoint!("devices_enroll", "kez.u.*.devices.enroll", enroll);
    user_endpoint!("devices_list", "kez.u.*.devices.list", list);
    user_endpoint!("devices_rename", "kez.u.*.devices.rename", rename);
    user_endpoint!("devices_remove", "kez.u.*.devices.remove", remove);
    user_endpoint!("unblock", "kez.u.*.unblock", unblock);
    let i = inbox.clone();
    svc::serve_subject(&service, "block", "kez.u.*.block", move |subject, payload| {
        let i = i.clone();
        async move { i.block(&subject, payload).await }
    })
    .await?;
    svc::settle(client).await?;
    info!("inbox service ready");
    Ok(service)
}

/// The stream's `max_bytes` must fit the `INBOX` account's storage limit (the server refuses a
/// stream that reserves more than the account has). In a cluster every replica counts against
/// the limit, so R3 gets a third of it.
async fn clamp_to_account(js: &jetstream::Context, wanted: u64, replicas: usize) -> Result<u64, StartError> {
    let account = js.query_account().await.map_err(|e| StartError::NoJetStream { detail: e.to_string() })?;
    let limits = &account.limits;
    let caps = [limits.max_storage, limits.storage_max_stream_bytes];
    let cap = caps.iter().flatten().filter(|c| **c > 0).map(|c| *c as u64).min();
    let cap = cap.map(|c| c / replicas.max(1) as u64);
    match cap {
        Some(cap) if cap < wanted => {
            info!(wanted, cap, "inbox max_bytes lowered to the INBOX account's storage limit");
            Ok(cap)
        }
        _ => Ok(wanted),
    }
}

/// The caller: second token of `kez.u.<hex>.…`.
pub(crate) fn user_token(subject: &str) -> Result<PublicKey, KezError> {
    let mut tokens = subject.split('.');
    match (tokens.next(), tokens.next(), tokens.next()) {
        (Some("kez"), Some("u"), Some(hex)) => PublicKey::from_hex(hex),
        _ => Err(err(ErrorCode::InvalidRequest, "user requests are kez.u.<own key hex>.<operation>")),
    }
}

impl Inbox {
    async fn status(&self) -> Result<Bytes, KezError> {
        let info: jetstream::stream::Info =
            jsapi::request(&self.inbox_js, &format!("STREAM.INFO.{INBOX_STREAM}"), &serde_json::json!({}))
                .await
                .map_err(|e| e.to_kez("reading the inbox stream"))?;
        let max_bytes = u64::try_from(info.config.max_bytes).unwrap_or(0);
        let bytes = info.state.bytes;
        let full = max_bytes > 0 && bytes.saturating_mul(100) >= max_bytes.saturating_mul(FULL_PERCENT);
        svc::json_reply(&InboxStatus {
            bytes,
            max_bytes,
            messages: info.state.messages,
            consumers: info.state.consumer_count as u64,
            full,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[allow(clippy::unwrap_used)]
    fn user_token_is_the_callers_key() {
        let key = PublicKey::of(&ed25519_dalek::SigningKey::from_bytes(&[7; 32]));
        assert_eq!(user_token(&format!("kez.u.{}.block", key.hex())).unwrap(), key);
        assert_eq!(user_token("kez.x.y.block").unwrap_err().code, ErrorCode::InvalidRequest);
        assert_eq!(user_token("kez.u").unwrap_err().code, ErrorCode::InvalidRequest);
        assert_eq!(user_token("kez.u.nothex.block").unwrap_err().code, ErrorCode::InvalidKey);
    }
}
