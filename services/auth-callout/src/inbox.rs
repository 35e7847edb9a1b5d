//! The inbox stream `KEZ_INBOX` (PROTOCOL.md §9), created idempotently at start-up.
//!
//! The worker owns it because the worker hands out the permissions that only make sense if the
//! stream has exactly this shape: `kez.inbox.>`, file storage, `deny_delete`, `deny_purge`, no
//! rollups (with rollups any sender could wipe a recipient's inbox with `Nats-Rollup: sub`),
//! no message TTLs, counters, batches or schedules (senders could otherwise steer them with
//! headers), no direct get (nobody is granted it, but keep the surface closed).
//!
//! ## Discard policy (decided here; brief §2.1)
//!
//! Retention is `limits`: a message stays until `max_age` whether or not it was acked, which is
//! also the replay window `W` receivers use (PROTOCOL.md §6). When an inbox reaches its cap, the
//! default is [`InboxDiscard::RejectNew`] (`discard: new` + `discard_new_per_subject`): the *new*
//! message is refused and its sender gets an error, instead of silently evicting the recipient's
//! oldest unread mail. Reasons:
//! - a PubAck then always means "stored until max_age": senders never believe a message arrived
//!   that was dropped later, and nobody can erase another user's unread messages by flooding;
//! - the damage of a flood stays inside the one targeted inbox (per-subject cap), other inboxes
//!   keep working.
//!
//! The cost: a flooded inbox refuses new mail until old messages age out (acks do not free space
//! under `limits` retention). Senders see the error, so the failure is loud. [`InboxDiscard::DropOldest`]
//! is the other trade-off (the victim keeps receiving, but loses unread mail) for operators who
//! prefer it. Neither replaces per-sender rate limits, which NATS permissions cannot express.

use std::time::Duration;

use async_nats::jetstream::{self, stream};
use kez_service_kit::kv::Replication;
use kv_schemas::subjects::{INBOX_STREAM, INBOX_WILDCARD};
use tracing::{info, warn};

use crate::StartError;

/// What happens when an inbox is full. See the module docs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum InboxDiscard {
    /// Refuse the new message (the sender gets an error); never evict stored mail.
    #[default]
    RejectNew,
    /// Evict the oldest messages of that inbox to make room.
    DropOldest,
}

/// Limits of the inbox stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboxStreamConfig {
    /// How long a message is kept (also the receivers' replay window). Default 30 days.
    pub max_age: Duration,
    /// Bytes for all inboxes together; `None` = bounded only by the server's
    /// `jetstream.max_file_store` (a fixed value is reserved up front by the server and must fit).
    pub max_bytes: Option<u64>,
    /// Largest message, in bytes. Default 64 KiB (PROTOCOL.md §6: the outer envelope is at most
    /// 64 KiB). Also bounded by the server's `max_payload`.
    pub max_msg_size: u32,
    /// Messages kept per inbox (subject) within `max_age`. Default 10 000: with 64 KiB messages a
    /// flooder can tie up at most ~640 MiB in one inbox.
    pub max_msgs_per_inbox: u64,
    /// See [`InboxDiscard`].
    pub discard: InboxDiscard,
    /// `Nats-Msg-Id` de-duplication window (stream-wide, so clients must use random ids).
    /// Default 2 minutes (the server default).
    pub duplicate_window: Duration,
}

impl Default for InboxStreamConfig {
    fn default() -> Self {
        Self {
            max_age: Duration::from_secs(30 * 24 * 3600),
            max_bytes: None,
            max_msg_size: 64 * 1024,
            max_msgs_per_inbox: 10_000,
            discard: InboxDiscard::RejectNew,
            duplicate_window: Duration::from_secs(120),
        }
    }
}

impl InboxStreamConfig {
    pub(crate) fn validate(&self) -> Result<(), String> {
        if self.max_age < Duration::from_secs(60) {
            return Err("inbox max_age must be at least one minute".into());
        }
        if self.duplicate_window.is_zero() || self.duplicate_window > self.max_age {
            return Err("inbox duplicate_window must be positive and not longer than max_age".into());
        }
        if self.max_msg_size == 0 || self.max_msg_size > 64 << 20 {
            return Err("inbox max_msg_size must be between 1 byte and 64 MiB".into());
        }
        if self.max_msgs_per_inbox == 0 || self.max_msgs_per_inbox > i64::MAX as u64 {
            return Err("inbox max_msgs_per_inbox must be positive".into());
        }
        match self.max_bytes {
            Some(b) if b < u64::from(self.max_msg_size) || b > i64::MAX as u64 => {
                Err("inbox max_bytes must hold at least one message".into())
            }
            _ => Ok(()),
        }
    }

    /// The stream configuration sent to the server.
    pub fn stream_config(&self, replication: Replication) -> stream::Config {
        let (discard, discard_new_per_subject) = match self.discard {
            InboxDiscard::RejectNew => (stream::DiscardPolicy::New, true),
            InboxDiscard::DropOldest => (stream::DiscardPolicy::Old, false),
        };
        stream::Config {
            name: INBOX_STREAM.to_owned(),
            description: Some("kez-chat per-user inboxes (PROTOCOL.md §9); managed by kez-auth-callout".to_owned()),
            subjects: vec![INBOX_WILDCARD.to_owned()],
            retention: stream::RetentionPolicy::Limits,
            storage: stream::StorageType::File,
            num_replicas: replication.replicas,
            max_age: self.max_age,
            max_bytes: self.max_bytes.map_or(-1, |b| b as i64),
            max_messages: -1,
            max_messages_per_subject: self.max_msgs_per_inbox as i64,
            max_message_size: i32::try_from(self.max_msg_size).unwrap_or(i32::MAX),
            discard,
            discard_new_per_subject,
            duplicate_window: self.duplicate_window,
            deny_delete: true,
            deny_purge: true,
            allow_rollup: false,
            allow_direct: false,
            ..Default::default()
        }
    }
}

/// Creates the stream, or brings an existing one to `config`. Safe to race with other workers:
/// creating with an identical config is a no-op on the server.
pub(crate) async fn ensure(js: &jetstream::Context, config: &stream::Config) -> Result<stream::Info, StartError> {
    use jetstream::context::CreateStreamErrorKind as K;
    let info = match js.create_stream(config.clone()).await {
        Ok(s) => s.cached_info().clone(),
        Err(e) => match e.kind() {
            K::JetStream(api) if api.error_code() == jetstream::ErrorCode::STREAM_NAME_EXIST => {
                // Exists with other settings (e.g. limits changed in our config): update in place.
                // Immutable fields (storage, retention) make this fail with a clear message.
                let info = js.update_stream(config.clone()).await.map_err(|e| StartError::InboxStream {
                    detail: format!("it exists with a different configuration and updating it failed: {e}"),
                })?;
                warn!(stream = INBOX_STREAM, "updated the existing inbox stream to the configured limits");
                info
            }
            _ => return Err(jetstream_error(&e.kind(), &e)),
        },
    };
    check_safe(&info.config)?;
    info!(
        stream = INBOX_STREAM,
        replicas = info.config.num_replicas,
        max_age_s = info.config.max_age.as_secs(),
        "inbox stream ready"
    );
    Ok(info)
}

/// The properties the granted permissions rely on, checked on what the server reports.
fn check_safe(c: &stream::Config) -> Result<(), StartError> {
    let mut problems = Vec::new();
    if c.subjects != [INBOX_WILDCARD] {
        problems.push(format!("subjects are {:?}, expected [\"{INBOX_WILDCARD}\"]", c.subjects));
    }
    if !c.deny_delete || !c.deny_purge {
        problems.push("deny_delete and deny_purge must both be set".to_owned());
    }
    if c.allow_rollup {
        problems.push("rollups must be off".to_owned());
    }
    if c.storage != stream::StorageType::File {
        problems.push("storage must be file".to_owned());
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(StartError::InboxStream {
            detail: format!(
                "the existing stream is unsafe to grant users access to ({}); fix or recreate it",
                problems.join("; ")
            ),
        })
    }
}

fn jetstream_error(kind: &jetstream::context::CreateStreamErrorKind, e: &dyn std::fmt::Display) -> StartError {
    use jetstream::context::CreateStreamErrorKind as K;
    match kind {
        K::JetStreamUnavailable | K::TimedOut => StartError::NoJetStream { detail: e.to_string() },
        K::JetStream(api)
            if [
                jetstream::ErrorCode::JETSTREAM_NOT_ENABLED,
                jetstream::ErrorCode::JETSTREAM_NOT_ENABLED_FOR_ACCOUNT,
            ]
            .contains(&api.error_code()) =>
        {
            StartError::NoJetStream { detail: e.to_string() }
        }
        _ => StartError::InboxStream { detail: e.to_string() },
    }
}

#[cfg(test)]
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
        assert_eq!(c.max_bytes, -1);
        assert_eq!(c.max_messages_per_subject, 10_000);
        assert_eq!(c.discard, stream::DiscardPolicy::New);
        assert!(c.discard_new_per_subject);
        assert!(c.deny_delete && c.deny_purge && !c.allow_rollup && !c.allow_direct);
        assert!(
            !c.allow_message_ttl && !c.allow_atomic_publish && !c.allow_message_schedules && !c.allow_message_counter
        );
        check_safe(&c).unwrap_or_else(|e| panic!("{e}"));

        let old =
            InboxStreamConfig { discard: InboxDiscard::DropOldest, max_bytes: Some(1 << 30), ..Default::default() }
                .stream_config(Replication::default());
        assert_eq!(old.discard, stream::DiscardPolicy::Old);
        assert!(!old.discard_new_per_subject);
        assert_eq!(old.max_bytes, 1 << 30);
    }

    #[test]
    fn validation() {
        InboxStreamConfig::default().validate().unwrap_or_else(|e| panic!("{e}"));
        for bad in [
            InboxStreamConfig { max_age: Duration::from_secs(1), ..Default::default() },
            InboxStreamConfig { max_msg_size: 0, ..Default::default() },
            InboxStreamConfig { max_msgs_per_inbox: 0, ..Default::default() },
            InboxStreamConfig { max_bytes: Some(10), ..Default::default() },
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
            stream::Config { deny_purge: false, ..good.clone() },
            stream::Config { allow_rollup: true, ..good.clone() },
            stream::Config { subjects: vec!["kez.>".into()], ..good.clone() },
            stream::Config { storage: stream::StorageType::Memory, ..good.clone() },
        ] {
            assert!(check_safe(&c).is_err());
        }
    }
}
