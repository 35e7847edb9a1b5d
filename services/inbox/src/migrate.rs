//! One-time move of the wave-1 inbox (stream `KEZ_INBOX` in account `APP`, subjects
//! `kez.inbox.<hex>`) into the `INBOX` account's stream, automatic at start-up.
//!
//! 1. The old stream's subjects become `kez.wave1.inbox.>`, so it stops capturing what the relay
//!    publishes (the `kez.inbox.>` import).
//! 2. Every message is copied in order onto its original subject `kez.inbox.<hex>` (device
//!    consumers read it), with `Nats-Msg-Id: wave1-<old seq>`. A recipient holding more than the
//!    per-subject cap continues on `kez.inbox.<hex>.wave1-<n>` (no sender tag is all hex, so
//!    these never meet a real sender's subject). Messages that are not on a key's subject or are
//!    not an outer envelope (wave 1 let anyone publish anything to `kez.inbox.*`) are dropped.
//! 3. The old stream is deleted.
//!
//! Several workers may start at once: a lock record in `kez_devices` (`_migration.wave1`,
//! created with KV create, refreshed with compare-and-set while copying) lets one worker copy;
//! the others wait until the old stream is gone. A worker that dies mid-copy leaves a lock that
//! goes stale; the next worker resumes after the last recorded sequence, and message ids make the
//! overlap harmless within the stream's duplicate window (clients drop replays beyond it, §6).

use std::time::{Duration, Instant};

use async_nats::HeaderMap;
use async_nats::jetstream::{self, ErrorCode as JsCode, kv, stream};
use bytes::Bytes;
use kv_schemas::envelope::check_outer;
use kv_schemas::subjects::{INBOX_STREAM, legacy_inbox_subject};
use kv_schemas::{ErrorCode, PublicKey, now_ms};
use serde::{Deserialize, Serialize};
use tracing::{info, warn};

use crate::jsapi;

/// Where the old stream's subjects are moved.
pub const WAVE1_SUBJECTS: &str = "kez.wave1.inbox.>";
/// The lock record's key in `kez_devices` (not a key hex, so it never meets a user's record).
const LOCK_KEY: &str = "_migration.wave1";
/// A lock not refreshed for this long belongs to a dead worker.
const STALE_AFTER: Duration = Duration::from_secs(30);
/// The copying worker refreshes its lock at least this often.
const REFRESH_EVERY: Duration = Duration::from_secs(5);
/// How long a worker waits for another one's copy to finish before it starts serving anyway.
const WAIT_AT_MOST: Duration = Duration::from_secs(60);

#[derive(Debug, Serialize, Deserialize)]
struct Lock {
    owner: String,
    at: u64,
    /// Highest old sequence already copied.
    done_through: u64,
}

/// What a migration did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Migrated {
    /// Messages stored in the new stream.
    pub copied: u64,
    /// Copies the new stream recognised as already stored.
    pub duplicates: u64,
    /// Messages dropped (not on a key's subject, or not an envelope).
    pub dropped: u64,
    /// Messages stored on a `wave1-<n>` overflow subject.
    pub overflow: u64,
}

/// Moves the wave-1 stream if it is still there. Failures are logged, never fatal: the new
/// inbox works without the old mail, and the next start tries again.
pub(crate) async fn run(client: &async_nats::Client, locks: &kv::Store, timeout: Duration) -> Option<Migrated> {
    let app = jetstream::new(client.clone());
    match migrate(client, &app, locks, timeout).await {
        Ok(None) => None,
        Ok(Some(m)) => {
            info!(
                copied = m.copied,
                duplicates = m.duplicates,
                dropped = m.dropped,
                overflow = m.overflow,
                "migrated the wave-1 inbox stream into account INBOX and deleted it"
            );
            Some(m)
        }
        Err(e) => {
            warn!("wave-1 inbox migration did not finish (retried at the next start): {e}");
            None
        }
    }
}

async fn old_stream(app: &jetstream::Context) -> Result<Option<stream::Stream>, String> {
    match app.get_stream(INBOX_STREAM).await {
        Ok(s) => Ok(Some(s)),
        Err(e) => match e.kind() {
            jetstream::context::GetStreamErrorKind::JetStream(api) if api.error_code() == JsCode::STREAM_NOT_FOUND => {
                Ok(None)
            }
            _ => Err(format!("looking for the wave-1 stream: {e}")),
        },
    }
}

async fn migrate(
    client: &async_nats::Client,
    app: &jetstream::Context,
    locks: &kv::Store,
    timeout: Duration,
) -> Result<Option<Migrated>, String> {
    if old_stream(app).await?.is_none() {
        return Ok(None);
    }
    let owner = hex_id();
    let started = Instant::now();
    // Take the lock, or wait for whoever holds it.
    let (mut revision, resume) = loop {
        let fresh = lock_value(&owner, 0)?;
        match locks.create(LOCK_KEY, fresh).await {
            Ok(rev) => break (rev, 0),
            Err(e) if e.kind() == kv::CreateErrorKind::AlreadyExists => {}
            Err(e) => return Err(format!("taking the migration lock: {e}")),
        }
        let entry = locks.entry(LOCK_KEY).await.map_err(|e| format!("reading the migration lock: {e}"))?;
        if let Some(entry) = entry {
            let lock: Option<Lock> = serde_json::from_slice(&entry.value).ok();
            let stale = lock.as_ref().is_none_or(|l| now_ms().saturating_sub(l.at) > STALE_AFTER.as_millis() as u64);
            if stale {
                let done = lock.map_or(0, |l| l.done_through);
                match locks.update(LOCK_KEY, lock_value(&owner, done)?, entry.revision).await {
                    Ok(rev) => break (rev, done),
                    Err(_) => continue, // someone else took it over first
                }
            }
        }
        if started.elapsed() > WAIT_AT_MOST {
            info!("another worker is still migrating the wave-1 inbox; serving meanwhile");
            return Ok(None);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        if old_stream(app).await?.is_none() {
            return Ok(None); // the other worker finished
        }
    };
    let Some(mut old) = old_stream(app).await? else {
        let _ = locks.purge(LOCK_KEY).await;
        return Ok(None);
    };
    let info = old.info().await.map_err(|e| format!("reading the wave-1 stream: {e}"))?.clone();
    if info.config.subjects != [WAVE1_SUBJECTS] {
        let config = stream::Config { subjects: vec![WAVE1_SUBJECTS.to_owned()], ..info.config.clone() };
        app.update_stream(config).await.map_err(|e| format!("moving the wave-1 stream's subjects: {e}"))?;
        info!(messages = info.state.messages, "wave-1 inbox stream found; moving it into account INBOX");
    }

    let mut stats = Migrated::default();
    let mut next = resume + 1;
    let mut refreshed = Instant::now();
    loop {
        let msg = match old.get_first_raw_message_by_subject(">", next).await {
            Ok(m) => m,
            Err(e) => match e.kind() {
                jetstream::stream::RawMessageErrorKind::NoMessageFound => break,
                jetstream::stream::RawMessageErrorKind::JetStream(api)
                    if api.error_code() == JsCode::NO_MESSAGE_FOUND =>
                {
                    break;
                }
                _ => return Err(format!("reading wave-1 message {next}: {e}")),
            },
        };
        copy_one(client, &msg.subject, msg.sequence, msg.payload, timeout, &mut stats).await?;
        next = msg.sequence + 1;
        if refreshed.elapsed() > REFRESH_EVERY {
            revision = locks
                .update(LOCK_KEY, lock_value(&owner, msg.sequence)?, revision)
                .await
                .map_err(|e| format!("another worker took over the migration ({e})"))?;
            refreshed = Instant::now();
        }
    }
    app.delete_stream(INBOX_STREAM).await.map_err(|e| format!("deleting the wave-1 stream: {e}"))?;
    let _ = locks.purge(LOCK_KEY).await;
    Ok(Some(stats))
}

/// Copies one old message; `Err` stops the migration (e.g. the new store is full).
async fn copy_one(
    client: &async_nats::Client,
    subject: &str,
    seq: u64,
    payload: Bytes,
    timeout: Duration,
    stats: &mut Migrated,
) -> Result<(), String> {
    let recipient = subject.strip_prefix("kez.inbox.").and_then(|hex| PublicKey::from_hex(hex).ok());
    let Some(recipient) = recipient.filter(|_| check_outer(&payload).is_ok()) else {
        stats.dropped += 1;
        return Ok(());
    };
    // The wave-1 cap was 10 000 per inbox; the new cap is per subject.
    for chunk in 0..=10u32 {
        let target = match chunk {
            0 => legacy_inbox_subject(&recipient),
            n => format!("{}.wave1-{n}", legacy_inbox_subject(&recipient)),
        };
        let mut headers = HeaderMap::new();
        headers.insert("Nats-Msg-Id", format!("wave1-{seq}").as_str());
        match jsapi::publish(client, target, Some(headers), payload.clone(), timeout).await {
            Ok(ack) => {
                if ack.duplicate {
                    stats.duplicates += 1;
                } else {
                    stats.copied += 1;
                }
                if chunk > 0 {
                    stats.overflow += 1;
                }
                return Ok(());
            }
            Err(e) if e.code == ErrorCode::InboxFull => continue,
            Err(e) => return Err(format!("copying wave-1 message {seq}: {e}")),
        }
    }
    stats.dropped += 1;
    Ok(())
}

fn lock_value(owner: &str, done_through: u64) -> Result<Bytes, String> {
    let lock = Lock { owner: owner.to_owned(), at: now_ms(), done_through };
    kez_service_kit::svc::to_json(&lock, "the migration lock").map_err(|e| e.message)
}

fn hex_id() -> String {
    let bytes: [u8; 8] = kv_schemas::random_bytes();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
