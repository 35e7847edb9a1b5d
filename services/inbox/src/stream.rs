//! The inbox stream `KEZ_INBOX` in account `INBOX` (PROTOCOL.md §9.1), created or brought up to
//! date at start-up through the imported JetStream API (`$JS.INBOX.API`).
//!
//! Shape and why:
//! - subjects `kez.inbox.>`: `kez.inbox.<recipient>.<sender tag>`, and the wave-1 subject
//!   `kez.inbox.<recipient>`. Only the relay publishes (users reach the subjects only through it).
//! - limits retention, `max_age` 30 days: a message stays until it ages out whether or not it was
//!   acked (every device of a user reads it); `max_age` is also the receivers' replay window `W`.
//! - at most 1 000 messages per subject with *discard new per subject*: one sender can hold at
//!   most 1 000 messages (≤ 64 MiB) in one inbox and then gets `inbox_full`, while everybody else
//!   still gets through; nothing evicts a recipient's unread mail.
//! - `max_bytes` set: a flood of many senders fills at most this store, never the `APP` store.
//! - `deny_delete`, no rollups (a `Nats-Rollup` header would wipe subjects), no direct get, no
//!   message TTLs, counters, batches or schedules. Purge stays allowed: blocking a sender purges
//!   its tag's subject, and only this service reaches the stream API.

use std::time::Duration;

use async_nats::jetstream::{self, stream};
use kez_service_kit::kv::Replication;
use kv_schemas::subjects::{INBOX_STREAM, INBOX_WILDCARD};
use tracing::{info, warn};

use crate::StartError;

/// Limits of the inbox stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboxStreamConfig {
    /// How long a message is kept (also the receivers' replay window). Default 30 days.
    pub max_age: Duration,
    /// Bytes for all inboxes together (lowered to the `INBOX` account limit at start-up).
    pub max_bytes: u64,
    /// Largest message, in bytes. Default 64 KiB (PROTOCOL.md §6: the outer envelope is at most
    /// 64 KiB). Also bounded by the server's `max_payload`.
    pub max_msg_size: u32,
    /// Messages kept per subject, i.e. per (recipient, sender tag). Default 1 000.
    pub max_msgs_per_sender: u64,
    /// `Nats-Msg-Id` de-duplication window: a relayed message resent within it (a client retry
    /// after a lost answer) is stored once; the wave-1 migration also sets message ids.
    /// Default 2 minutes (the server default).
    pub duplicate_window: Duration,
}

impl Default for InboxStreamConfig {
    fn default() -> Self {
        Self {
            max_age: Duration::from_secs(30 * 24 * 3600),
            max_bytes: kez_service_kit::settings::DEFAULT_INBOX_MAX_BYTES,
            max_msg_size: 64 * 1024,
            max_msgs_per_sender: 1_000,
            duplicate_window: Duration::from_secs(120),
        }
    }
}

impl InboxStreamConfig {
    /// Checks the limits make sense before anything is sent to the server.
    pub fn validate(&self) -> Result<(), String> {
        if self.max_age < Duration::from_secs(60) {
            return Err("inbox max_age must be at least one minute".into());
        }
        if self.duplicate_window.is_zero() || self.duplicate_window > self.max_age {
            return Err("inbox duplicate_window must be positive and not longer than max_age".into());
        }
        if self.max_msg_size == 0 || self.max_msg_size > 64 << 20 {
            return Err("inbox max_msg_size must be between 1 byte and 64 MiB".into());
        }
        if self.max_msgs_per_sender == 0 || self.max_msgs_per_sender > i64::MAX as u64 {
            return Err("inbox max_msgs_per_sender must be positive".into());
        }
        if self.max_bytes < u64::from(self.max_msg_size) || self.max_bytes > i64::MAX as u64 {
            return Err("inbox max_bytes must hold at least one message".into());
        }
        Ok(())
    }

    /// The stream configuration sent to the server.
    pub fn stream_config(&self, replication: Replication) -> stream::Config {
        stream::Config {
            name: INBOX_STREAM.to_owned(),
            description: Some("kez-chat inboxes (PROTOCOL.md §9.1); managed by kez-inbox".to_owned()),
            subjects: vec![INBOX_WILDCARD.to_owned()],
            retention: stream::RetentionPolicy::Limits,
            storage: stream::StorageType::File,
            num_replicas: replication.replicas,
            max_age: self.max_age,
            max_bytes: i64::try_from(self.max_bytes).unwrap_or(i64::MAX),
            max_messages: -1,
            max_messages_per_subject: i64::try_from(self.max_msgs_per_sender).unwrap_or(i64::MAX),
            max_message_size: i32::try_from(self.max_msg_size).unwrap_or(i32::MAX),
            discard: stream::DiscardPolicy::New,
            discard_new_per_subject: true,
            duplicate_window: self.duplicate_window,
            deny_delete: true,
            deny_purge: false,
            allow_rollup: false,
            allow_direct: false,
            ..Default::default()
        }
    }
}

/// Creates the stream, or brings an existing one to `config`. Safe to race with other workers:
/// whoever loses the create finds the stream and updates it (a no-op when identical).
pub(crate) async fn ensure(js: &jetstream::Context, config: &stream::Config) -> Result<stream::Info, StartError> {
    let info = match js.create_stream(config.clone()).await {
        Ok(s) => s.cached_info().clone(),
        Err(e) => {
            use jetstream::context::CreateStreamErrorKind as K;
            if matches!(e.kind(), K::JetStreamUnavailable | K::TimedOut) {
                return Err(StartError::NoJetStream { detail: format!("{e} (is the INBOX API imported?)") });
            }
            // It exists (with other limits, or created by a worker racing us: the server then
            // answers "name exists" or counts our reservation twice). Update it in place;
            // immutable fields (storage, retention) fail here with a clear message.
            let Ok(mut existing) = js.get_stream(INBOX_STREAM).await else {
                return Err(StartError::InboxStream { detail: e.to_string() });
            };
            // Replicas only ever go up here (R1 → R3 when a single node becomes a cluster);
            // scaling down is left to the operator.
            let mut config = config.clone();
            if let Ok(info) = existing.info().await {
                config.num_replicas = config.num_replicas.max(info.config.num_replicas);
            }
            let info = js.update_stream(config.clone()).await.map_err(|e| StartError::InboxStream {
                detail: format!("it exists with a different configuration and updating it failed: {e}"),
            })?;
            if info.config.max_bytes != config.max_bytes || info.config.subjects != config.subjects {
                warn!(stream = INBOX_STREAM, "updated the existing inbox stream to the configured limits");
            }
            info
        }
    };
    check_safe(&info.config)?;
    info!(
        stream = INBOX_STREAM,
        replicas = info.config.num_replicas,
        max_age_s = info.config.max_age.as_secs(),
        max_bytes = info.config.max_bytes,
        "inbox stream ready"
    );
    Ok(info)
}

/// The properties the relay's guarantees rely on, checked on what the server reports.
pub(crate) fn check_safe(c: &stream::Config) -> Result<(), StartError> {
    let mut problems = Vec::new();
    if c.subjects != [INBOX_WILDCARD] {
        problems.push(format!("subjects are {:?}, expected [\"{INBOX_WILDCARD}\"]", c.subjects));
    }
    if !c.deny_delete {
        problems.push("deny_delete must be set".to_owned());
    }
    if c.allow_rollup {
        problems.push("rollups must be off".to_owned());
    }
    if c.allow_direct || c.mirror_direct {
        problems.push("direct get must be off".to_owned());
    }
    if c.storage != stream::StorageType::File {
        problems.push("storage must be file".to_owned());
    }
    if c.discard != stream::DiscardPolicy::New || !c.discard_new_per_subject || c.max_messages_per_subject <= 0 {
        problems.push("a per-subject cap with discard new per subject is required".to_owned());
    }
    if c.max_bytes <= 0 {
        problems.push("max_bytes must be set".to_owned());
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(StartError::InboxStream {
            detail: format!("the existing stream is unsafe ({}); fix or recreate it", problems.join("; ")),
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn default_stream_shape() {
        let c = InboxStreamConfig::default().stream_config(Replication { replicas: 3 });
        assert_eq!(c.name, "KEZ_INBOX");
        assert_eq!(c.subjects, ["kez.inbox.>"]);
        assert_eq!(c.storage, stream::StorageType::File);
        assert_eq!(c.retention, stream::RetentionPolicy::Limits);
        assert_eq!(c.num_replicas, 3);
        assert_eq!(c.max_age, Duration::from_secs(2_592_000));
        assert_eq!(c.max_message_size, 65_536);
        assert_eq!(c.max_bytes, 1 << 30);
        assert_eq!(c.max_messages_per_subject, 1_000);
        assert_eq!(c.discard, stream::DiscardPolicy::New);
        assert!(c.discard_new_per_subject);
        assert!(c.deny_delete && !c.deny_purge && !c.allow_rollup && !c.allow_direct);
        assert!(
            !c.allow_message_ttl && !c.allow_atomic_publish && !c.allow_message_schedules && !c.allow_message_counter
        );
        check_safe(&c).unwrap_or_else(|e| panic!("{e}"));
    }

    #[test]
    fn validation() {
        InboxStreamConfig::default().validate().unwrap_or_else(|e| panic!("{e}"));
        for bad in [
            InboxStreamConfig { max_age: Duration::from_secs(1), ..Default::default() },
            InboxStreamConfig { max_msg_size: 0, ..Default::default() },
            InboxStreamConfig { max_msgs_per_sender: 0, ..Default::default() },
            InboxStreamConfig { max_bytes: 10, ..Default::default() },
            InboxStreamConfig { max_bytes: u64::MAX, ..Default::default() },
            InboxStreamConfig { duplicate_window: Duration::ZERO, ..Default::default() },
            InboxStreamConfig { duplicate_window: Duration::from_secs(90 * 24 * 3600), ..Default::default() },
        ] {
            assert!(bad.validate().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn unsafe_existing_streams_are_refused() {
        let good = InboxStreamConfig::default().stream_config(Replication::default());
        for c in [
            stream::Config { deny_delete: false, ..good.clone() },
            stream::Config { allow_rollup: true, ..good.clone() },
            stream::Config { allow_direct: true, ..good.clone() },
            stream::Config { subjects: vec!["kez.>".into()], ..good.clone() },
            stream::Config { storage: stream::StorageType::Memory, ..good.clone() },
            stream::Config { discard_new_per_subject: false, ..good.clone() },
            stream::Config { discard: stream::DiscardPolicy::Old, ..good.clone() },
            stream::Config { max_bytes: -1, ..good.clone() },
        ] {
            assert!(check_safe(&c).is_err(), "{c:?}");
        }
    }
}
