//! 1:1 chat: sealing outgoing text for a pinned contact and processing what
//! arrives in the own inbox (PROTOCOL.md §6), with the replay store and the
//! history in [`Store`].
//!
//! Receiving one envelope ([`receive`]):
//! 1. `envelope::open` does steps 1–6 (parse, decrypt, canonical inner, `to`,
//!    `enc`, signature under the claimed `from`, time window). Any failure is a
//!    [`Received::Rejected`] with its code; the caller reports it and terminates
//!    the message at the broker so it is not redelivered.
//! 2. `(from, id)` is inserted into the store (idempotent, flushed). Found with
//!    the same stream sequence: a redelivery after a crash → [`Received::Redelivered`]
//!    (ack, do not show). Found with another sequence: a replay → rejected `replayed`.
//! 3. `from` is looked up among the contacts by pinned key: a contact is shown by
//!    handle, anything else as an unknown sender with its fingerprint.
//!
//! The caller acknowledges only after this returns, i.e. after the flush.

use kv_schemas::envelope::{self, Body};
use kv_schemas::{ErrorCode, Handle, KezError, PublicKey, now_ms, safety};
use serde::Serialize;
use serde_json::json;

use crate::contacts::Contact;
use crate::error::{ClientError, Result};
use crate::identity::Identity;
use crate::store::{Insert, Store, StoredMessage};

/// A sealed message ready to publish.
#[derive(Debug, Clone)]
pub struct Outgoing {
    /// The outer envelope bytes (what the broker stores).
    pub envelope: Vec<u8>,
    /// The subject to publish on.
    pub subject: String,
    /// The history record (stored once the broker acked).
    pub record: StoredMessage,
}

/// Checks a text before sealing (PROTOCOL.md §6: 1–16384 characters).
pub fn check_text(text: &str) -> Result<()> {
    let n = text.chars().count();
    if n == 0 {
        return Err(ClientError::Usage("the message is empty".into()));
    }
    if n > envelope::MAX_TEXT_CHARS {
        return Err(ClientError::Usage(format!(
            "the message has {n} characters; at most {} fit in one message",
            envelope::MAX_TEXT_CHARS
        )));
    }
    Ok(())
}

/// Seals `text` from `me` for the pinned key of `to`. Refuses a contact whose
/// key changed and was not re-trusted.
pub fn seal_text(me: &Identity, to: &Contact, text: &str) -> Result<Outgoing> {
    if let Some(e) = to.key_changed_error() {
        return Err(e);
    }
    if to.key == me.public_key() {
        return Err(ClientError::Usage("you cannot send messages to yourself".into()));
    }
    check_text(text)?;
    let id: [u8; 16] = kv_schemas::random_bytes();
    let ts = now_ms();
    let body = Body::Text(text.to_string());
    let envelope = envelope::seal_with(me.signing_key(), &to.key, &body, ts, id, kv_schemas::random_bytes())?;
    Ok(Outgoing {
        envelope,
        subject: to.inbox_subject(),
        record: StoredMessage {
            from: me.public_key(),
            to: to.key,
            id: kv_schemas::encoding::b64_encode(&id),
            ts,
            stored_at: ts,
            outgoing: true,
            kind: "text".into(),
            body: json!({ "text": text }),
            stream_seq: None,
        },
    })
}

/// Who sent a verified message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "sender", rename_all = "snake_case")]
pub enum Sender {
    /// A contact, by the key pinned for it.
    Contact {
        /// The contact's handle.
        handle: Handle,
        /// Whether its safety number was verified.
        verified: bool,
    },
    /// A key that is no contact's pinned key (never shown as a contact).
    Unknown {
        /// The sender's key.
        key: PublicKey,
        /// Its fingerprint.
        fingerprint: String,
        /// A contact whose handle now maps to this key on the server but that
        /// was not re-trusted yet.
        #[serde(skip_serializing_if = "Option::is_none")]
        pending_for: Option<Handle>,
    },
}

/// The outcome of processing one inbox message (one per message, so the
/// size difference between variants does not matter).
#[derive(Debug, Clone, PartialEq, Eq)]
#[allow(clippy::large_enum_variant)]
pub enum Received {
    /// New, verified, stored: show it.
    Shown {
        /// The stored record.
        message: StoredMessage,
        /// Who sent it.
        sender: Sender,
    },
    /// Stored before (a redelivery after a crash): acknowledge, do not show.
    Redelivered,
    /// Failed a check: report, then terminate at the broker.
    Rejected {
        /// The stable reason code (`decrypt_failed`, `wrong_recipient`, `bad_signature`, `replayed`, …).
        code: ErrorCode,
        /// Human text.
        reason: String,
    },
}

fn body_value(body: &Body) -> (String, serde_json::Value) {
    (body.kind().into(), body.to_value())
}

fn rejected(e: KezError) -> Received {
    Received::Rejected { code: e.code, reason: e.message }
}

/// Processes one envelope from the own inbox (see the module docs).
/// `stream_seq` is the broker's sequence of this delivery; `window_ms` the inbox retention.
pub fn receive(store: &Store, me: &Identity, payload: &[u8], stream_seq: u64, window_ms: u64) -> Result<Received> {
    let now = now_ms();
    let opened = match envelope::open(me.signing_key(), payload, now, window_ms) {
        Ok(o) => o,
        Err(e) => return Ok(rejected(e)),
    };
    let (kind, body) = body_value(&opened.body);
    let record = StoredMessage {
        from: opened.from,
        to: me.public_key(),
        id: opened.id.clone(),
        ts: opened.ts,
        stored_at: now,
        outgoing: false,
        kind,
        body,
        stream_seq: Some(stream_seq),
    };
    match store.insert_message(&record)? {
        Insert::Stored => {}
        Insert::Exists(existing) if existing.stream_seq == Some(stream_seq) => return Ok(Received::Redelivered),
        Insert::Exists(_) => {
            return Ok(rejected(KezError::new(
                ErrorCode::Replayed,
                "this message (same sender and id) was received before",
            )));
        }
    }
    let sender = sender_of(store, &opened.from)?;
    Ok(Received::Shown { message: record, sender })
}

/// Names the sender of a verified message from the contact list.
pub fn sender_of(store: &Store, key: &PublicKey) -> Result<Sender> {
    let contacts = store.contacts()?;
    if let Some(c) = contacts.iter().find(|c| &c.key == key) {
        return Ok(Sender::Contact { handle: c.handle.clone(), verified: c.verified });
    }
    let pending_for = contacts.iter().find(|c| c.pending_key.as_ref() == Some(key)).map(|c| c.handle.clone());
    Ok(Sender::Unknown { key: *key, fingerprint: safety::fingerprint(key), pending_for })
}
