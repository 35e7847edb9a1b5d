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
//!    handle, anything else as an unknown sender with its fingerprint. A sender the user
//!    blocked is dropped ([`Received::Dropped`]: acknowledged, not stored, not shown).
//!
//! A `sent` copy (PROTOCOL.md §6.1; `envelope::open` accepts it only from the own key) is
//! filed as the outgoing message it describes instead ([`Received::Filed`]), once: the
//! device that sent the original has it already ([`Received::Known`]).
//!
//! The caller acknowledges only after this returns, i.e. after the flush.

use kv_schemas::envelope::{self, Body};
use kv_schemas::files::Entry;
use kv_schemas::group::GroupId;
use kv_schemas::{ErrorCode, Handle, KezError, PublicKey, now_ms, safety};
use serde::Serialize;

use crate::contacts::Contact;
use crate::error::{ClientError, Result};
use crate::groups::{self, GroupStore, GroupUpdate};
use crate::identity::Identity;
use crate::store::{Filed, Insert, Store, StoredMessage};

/// A sealed message ready to send.
#[derive(Debug, Clone)]
pub struct Outgoing {
    /// The outer envelope bytes (what the broker stores).
    pub envelope: Vec<u8>,
    /// The recipient (the relay stores the envelope in this key's inbox).
    pub to: PublicKey,
    /// The history record (stored once the relay accepted it).
    pub record: StoredMessage,
    /// The body, for the sent copy.
    pub body: Body,
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
    seal(me, &to.key, Body::Text(text.to_string()))
}

/// Seals the chat message that offers a shared file (PROTOCOL.md §6, `file_share`) to `to`:
/// `serve_node` is the sharing device's `serve` endpoint id, which must be on the owner's
/// sigchain before the offer goes out (§7.5). Refuses a contact whose key changed.
pub fn seal_file_offer(me: &Identity, to: &Contact, entry: &Entry, serve_node: &PublicKey) -> Result<Outgoing> {
    if let Some(e) = to.key_changed_error() {
        return Err(e);
    }
    seal(me, &to.key, Body::FileShare { entry: entry.clone(), node_id: serve_node.hex() })
}

/// Seals `body` (a text or a file offer) from `me` for `to`, with a fresh id.
pub fn seal(me: &Identity, to: &PublicKey, body: Body) -> Result<Outgoing> {
    if matches!(body, Body::Sent { .. } | Body::Group(_)) {
        return Err(ClientError::Usage("sent copies and group messages have their own sealing functions".into()));
    }
    let id: [u8; 16] = kv_schemas::random_bytes();
    let ts = now_ms();
    let envelope = envelope::seal_with(me.signing_key(), to, &body, ts, id, kv_schemas::random_bytes())?;
    let (kind, value) = body_value(&body);
    Ok(Outgoing {
        envelope,
        to: *to,
        record: StoredMessage {
            from: me.public_key(),
            to: *to,
            id: kv_schemas::encoding::b64_encode(&id),
            ts,
            stored_at: ts,
            outgoing: true,
            kind,
            body: value,
            stream_seq: None,
            group: None,
            flag: None,
        },
        body,
    })
}

/// The sent copy of `sent` for the own inbox (PROTOCOL.md §6.1), or `None` for a note to
/// self (sent once, without a copy). Send it only after `sent` was accepted.
pub fn seal_sent_copy(me: &Identity, sent: &Outgoing) -> Result<Option<Vec<u8>>> {
    let own = me.public_key();
    if sent.to == own {
        return Ok(None);
    }
    let body = Body::Sent { peer: sent.to, id: sent.record.id.clone(), body: Box::new(sent.body.clone()) };
    Ok(Some(envelope::seal(me.signing_key(), &own, &body, now_ms())?))
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
    /// A sent copy from another device of this user, filed as an outgoing message to its peer.
    Filed {
        /// The stored outgoing record.
        message: StoredMessage,
    },
    /// A sent copy of a message this device has already (it sent it): acknowledge, do not show.
    Known,
    /// From a sender the user blocked: acknowledge, do not store or show.
    Dropped {
        /// The blocked sender.
        from: PublicKey,
    },
    /// Stored before (a redelivery after a crash): acknowledge, do not show.
    Redelivered,
    /// A group message (PROTOCOL.md §6.2), stored in the group's history.
    Group {
        /// The stored record (`group` set; `flag` set when it is not the group's).
        message: StoredMessage,
        /// The group's current name.
        name: String,
        /// Who sent it.
        sender: Sender,
        /// `not_group_member` / `unknown_group_state`: show as flagged, never as the group's.
        flag: Option<ErrorCode>,
        /// What the carried links changed.
        update: GroupUpdate,
    },
    /// A group change notice (a group message without text).
    GroupChange {
        /// The group.
        group: GroupId,
        /// Its current name.
        name: String,
        /// What changed.
        update: GroupUpdate,
        /// Set when the notice came from a non-member or under an unknown state.
        flag: Option<ErrorCode>,
    },
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

/// Processes one envelope from the own inbox (see the module docs); group messages go to
/// [`groups::receive`]. `stream_seq` is the broker's sequence of this delivery; `window_ms`
/// the inbox retention.
pub fn receive(
    store: &Store,
    groups: &GroupStore,
    me: &Identity,
    payload: &[u8],
    stream_seq: u64,
    window_ms: u64,
) -> Result<Received> {
    let now = now_ms();
    let opened = match envelope::open(me.signing_key(), payload, now, window_ms) {
        Ok(o) => o,
        Err(e) => return Ok(rejected(e)),
    };
    if let Body::Group(msg) = &opened.body {
        if store.is_blocked(&opened.from)? {
            return Ok(Received::Dropped { from: opened.from });
        }
        return groups::receive(store, groups, me, &opened, msg, stream_seq);
    }
    if let Body::Sent { peer, id, body } = &opened.body {
        // `open` accepted it, so it comes from the own key (PROTOCOL.md §6 step 8).
        let (kind, value) = body_value(body);
        let record = StoredMessage {
            from: opened.from,
            to: *peer,
            id: id.clone(),
            ts: opened.ts,
            stored_at: now,
            outgoing: true,
            kind,
            body: value,
            stream_seq: Some(stream_seq),
            group: None,
            flag: None,
        };
        return Ok(match store.file_sent_copy(&record, &opened.id, stream_seq)? {
            Filed::Stored => Received::Filed { message: record },
            Filed::Known => Received::Known,
            Filed::Redelivered => Received::Redelivered,
            Filed::Replayed => {
                rejected(KezError::new(ErrorCode::Replayed, "this sent copy (same id) was received before"))
            }
        });
    }
    if store.is_blocked(&opened.from)? {
        return Ok(Received::Dropped { from: opened.from });
    }
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
        group: None,
        flag: None,
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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::store::BlockedSender;

    const WINDOW: u64 = 30 * 24 * 3600 * 1000;

    fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path()).unwrap();
        (dir, s)
    }

    fn receive(store: &Store, me: &Identity, payload: &[u8], seq: u64, window: u64) -> Result<Received> {
        let dir = tempfile::tempdir().unwrap();
        super::receive(store, &GroupStore::new(&crate::config::Paths::at(dir.path())), me, payload, seq, window)
    }

    #[test]
    fn sent_copies_reach_the_other_devices_once() {
        let me = Identity::from_seed([1; 32]);
        let peer = Identity::from_seed([2; 32]).public_key();
        let (_d1, laptop) = store();
        let (_d2, phone) = store();

        // The laptop sends and stores the original, then the copy goes to the own inbox.
        let out = seal(&me, &peer, Body::Text("hello from the laptop".into())).unwrap();
        laptop.insert_message(&out.record).unwrap();
        let copy = seal_sent_copy(&me, &out).unwrap().unwrap();

        // The phone files it as an outgoing message to the peer, with the original's id.
        let Received::Filed { message } = receive(&phone, &me, &copy, 5, WINDOW).unwrap() else { panic!() };
        assert!(message.outgoing);
        assert_eq!((message.from, message.to), (me.public_key(), peer));
        assert_eq!(message.id, out.record.id);
        assert_eq!(message.text(), Some("hello from the laptop"));
        assert_eq!(phone.history(&peer, 10).unwrap(), vec![message]);
        // Redelivered: acknowledged silently; the same copy at another sequence is a replay.
        assert_eq!(receive(&phone, &me, &copy, 5, WINDOW).unwrap(), Received::Redelivered);
        assert!(matches!(
            receive(&phone, &me, &copy, 6, WINDOW).unwrap(),
            Received::Rejected { code: ErrorCode::Replayed, .. }
        ));
        // The laptop has the original: nothing new.
        assert_eq!(receive(&laptop, &me, &copy, 5, WINDOW).unwrap(), Received::Known);
        assert_eq!(laptop.history(&peer, 10).unwrap().len(), 1);
    }

    #[test]
    fn a_sent_copy_from_someone_else_is_rejected() {
        let me = Identity::from_seed([1; 32]);
        let mallory = Identity::from_seed([3; 32]);
        let peer = Identity::from_seed([2; 32]).public_key();
        let (_d, s) = store();
        let body = Body::Sent { peer, id: "AAAAAAAAAAAAAAAAAAAAAA".into(), body: Box::new(Body::Text("fake".into())) };
        let forged = envelope::seal(mallory.signing_key(), &me.public_key(), &body, now_ms()).unwrap();
        assert!(matches!(
            receive(&s, &me, &forged, 1, WINDOW).unwrap(),
            Received::Rejected { code: ErrorCode::InvalidRequest, .. }
        ));
        assert!(s.history(&peer, 10).unwrap().is_empty());
    }

    #[test]
    fn notes_to_self_get_no_copy() {
        let me = Identity::from_seed([1; 32]);
        let out = seal(&me, &me.public_key(), Body::Text("note".into())).unwrap();
        assert_eq!(seal_sent_copy(&me, &out).unwrap(), None);
    }

    #[test]
    fn blocked_senders_are_dropped_not_stored() {
        let me = Identity::from_seed([1; 32]);
        let spammer = Identity::from_seed([4; 32]);
        let (_d, s) = store();
        s.block(&BlockedSender { key: spammer.public_key(), handle: None, blocked_at: 1 }).unwrap();
        let env = seal(&spammer, &me.public_key(), Body::Text("buy now".into())).unwrap().envelope;
        assert_eq!(receive(&s, &me, &env, 1, WINDOW).unwrap(), Received::Dropped { from: spammer.public_key() });
        assert!(s.history(&spammer.public_key(), 10).unwrap().is_empty());
        s.unblock(&spammer.public_key()).unwrap();
        assert!(matches!(receive(&s, &me, &env, 1, WINDOW).unwrap(), Received::Shown { .. }));
    }

    /// The relay stores identical bytes once within its duplicate window (PROTOCOL.md §9.3),
    /// so a replay reaches a reader only later, at another stream sequence: rejected then.
    #[test]
    fn the_same_envelope_at_another_sequence_is_a_replay() {
        let me = Identity::from_seed([1; 32]);
        let stranger = Identity::from_seed([5; 32]);
        let (_d, s) = store();
        let env = seal(&stranger, &me.public_key(), Body::Text("once".into())).unwrap().envelope;
        assert!(matches!(receive(&s, &me, &env, 7, WINDOW).unwrap(), Received::Shown { .. }));
        assert_eq!(receive(&s, &me, &env, 7, WINDOW).unwrap(), Received::Redelivered);
        assert!(matches!(
            receive(&s, &me, &env, 9, WINDOW).unwrap(),
            Received::Rejected { code: ErrorCode::Replayed, .. }
        ));
        assert_eq!(s.history(&stranger.public_key(), 10).unwrap().len(), 1);
    }
}
