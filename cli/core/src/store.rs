//! The local database (sled): contacts, message history and the replay store.
//!
//! ```text
//! tree "contacts"  <handle>                          → Contact (JSON)
//! tree "messages"  <from hex>:<id>                   → StoredMessage (JSON)   (replay store, PROTOCOL.md §6 step 7)
//! tree "timeline"  <peer hex>:<ts, 16 hex>:<from hex>:<id> → <messages key>   (history order per conversation)
//! tree "copies"    <own hex>:<copy id>                → stream seq, 8 bytes BE (replay store of sent copies)
//! tree "blocked"   <key hex>                          → BlockedSender (JSON)
//! ```
//!
//! A sent copy (PROTOCOL.md §6.1) is filed as the outgoing message it describes, keyed by
//! `(own key, id of the original)`: the device that sent the original stored exactly that key
//! when it sent, so its own copy finds it and is skipped; every other device stores it once.
//! The copy's own id goes to `copies`, so a redelivered copy is told from a replayed one like
//! any other message.
//!
//! A message is keyed by `(from, id)`, so inserting is idempotent: a crash between
//! storing and acknowledging makes the broker redeliver, the insert finds the
//! record, and the message is acknowledged without being shown again. Inserts
//! are flushed to disk before they return.
//!
//! sled allows one process at a time per database. Every command opens the
//! store only for as long as it needs it, and [`Store::open`] waits for a
//! running `listen` to let go (it holds the store only while it processes a batch).

use std::path::Path;
use std::time::{Duration, Instant};

use kv_schemas::group::GroupId;
use kv_schemas::{Handle, PublicKey};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::contacts::Contact;
use crate::error::{ClientError, Result};

/// How long [`Store::open`] waits for another kez-chat process to release the database.
pub const LOCK_WAIT: Duration = Duration::from_secs(15);

/// A message in the history (sent or received).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredMessage {
    /// Sender key (proven by the inner signature for received messages).
    pub from: PublicKey,
    /// Recipient key.
    pub to: PublicKey,
    /// Message id (b64url of 16 bytes); `(from, id)` is unique.
    pub id: String,
    /// The sender's claimed time, ms (PROTOCOL.md: not a trusted clock).
    pub ts: u64,
    /// When this client stored it, ms.
    pub stored_at: u64,
    /// `true` for messages this account sent.
    pub outgoing: bool,
    /// `text` or `file_share`.
    pub kind: String,
    /// The message body as in the envelope (`{"text":…}` or `{"entry":…,"node_id":…}`).
    pub body: Value,
    /// Stream sequence of the received envelope (to tell a redelivery from a replay).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream_seq: Option<u64>,
    /// The group of a group message (PROTOCOL.md §6.2); `None` for a direct message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<GroupId>,
    /// Why a group message is not the group's (`not_group_member`, `unknown_group_state`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flag: Option<String>,
}

impl StoredMessage {
    /// The text of a text message.
    pub fn text(&self) -> Option<&str> {
        self.body.get("text").and_then(Value::as_str)
    }

    /// The other side of the conversation.
    pub fn peer(&self) -> &PublicKey {
        if self.outgoing { &self.to } else { &self.from }
    }

    fn key(&self) -> Vec<u8> {
        message_key(&self.from, &self.id)
    }

    fn timeline_key(&self) -> Vec<u8> {
        format!(
            "{}{:016x}:{}:{}",
            conversation_prefix(self.group.as_ref(), self.peer()),
            self.ts,
            self.from.hex(),
            self.id
        )
        .into_bytes()
    }
}

/// The timeline prefix of a conversation: the peer's key hex, or `g` and the group id hex (a
/// `g` is never hex, so group conversations never parse as a peer in [`Store::conversations`]).
fn conversation_prefix(group: Option<&GroupId>, peer: &PublicKey) -> String {
    match group {
        Some(g) => group_prefix(g),
        None => format!("{}:", peer.hex()),
    }
}

fn group_prefix(group: &GroupId) -> String {
    format!("g{}:", kv_schemas::encoding::hex_encode(&group.0))
}

fn message_key(from: &PublicKey, id: &str) -> Vec<u8> {
    format!("{}:{id}", from.hex()).into_bytes()
}

/// What [`Store::insert_message`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Insert {
    /// New: stored and flushed.
    Stored,
    /// `(from, id)` was already stored; here is the stored record.
    Exists(Box<StoredMessage>),
}

/// What [`Store::file_sent_copy`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Filed {
    /// New: the outgoing message is stored (flushed).
    Stored,
    /// The original is stored already (this device sent it, or filed it before).
    Known,
    /// This copy was filed before from the same delivery (a redelivery).
    Redelivered,
    /// This copy was filed before from another stream sequence (a replay).
    Replayed,
}

/// A sender this user blocked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockedSender {
    /// The sender's key.
    pub key: PublicKey,
    /// Its handle when it was blocked, if known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub handle: Option<Handle>,
    /// When it was blocked, ms.
    pub blocked_at: u64,
}

/// The open database.
pub struct Store {
    db: sled::Db,
    contacts: sled::Tree,
    messages: sled::Tree,
    timeline: sled::Tree,
    copies: sled::Tree,
    blocked: sled::Tree,
}

fn is_lock_error(e: &sled::Error) -> bool {
    matches!(e, sled::Error::Io(io) if io.kind() == std::io::ErrorKind::WouldBlock
        || io.to_string().contains("lock"))
}

impl Store {
    /// Opens (creating) the database at `dir`, waiting up to [`LOCK_WAIT`] for
    /// another kez-chat process to release it.
    pub fn open(dir: &Path) -> Result<Self> {
        let deadline = Instant::now() + LOCK_WAIT;
        let db = loop {
            match sled::Config::new().path(dir).open() {
                Ok(db) => break db,
                Err(e) if is_lock_error(&e) && Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(50))
                }
                Err(e) if is_lock_error(&e) => {
                    return Err(ClientError::Store(format!(
                        "{} is in use by another kez-chat process that did not let go for {}s",
                        dir.display(),
                        LOCK_WAIT.as_secs()
                    )));
                }
                Err(e) => return Err(ClientError::Store(format!("{}: {e}", dir.display()))),
            }
        };
        Ok(Self {
            contacts: db.open_tree("contacts")?,
            messages: db.open_tree("messages")?,
            timeline: db.open_tree("timeline")?,
            copies: db.open_tree("copies")?,
            blocked: db.open_tree("blocked")?,
            db,
        })
    }

    /// Writes everything to disk.
    pub fn flush(&self) -> Result<()> {
        self.db.flush()?;
        Ok(())
    }

    // ------------------------------------------------------------ contacts

    /// The contact with this handle.
    pub fn contact(&self, handle: &Handle) -> Result<Option<Contact>> {
        self.contacts
            .get(handle.to_string())?
            .map(|v| serde_json::from_slice(&v).map_err(|e| ClientError::Store(format!("contact {handle}: {e}"))))
            .transpose()
    }

    /// Saves a contact (flushed).
    pub fn put_contact(&self, c: &Contact) -> Result<()> {
        let v = serde_json::to_vec(c).map_err(|e| ClientError::Store(e.to_string()))?;
        self.contacts.insert(c.handle.to_string(), v)?;
        self.flush()
    }

    /// Every contact, by handle.
    pub fn contacts(&self) -> Result<Vec<Contact>> {
        self.contacts
            .iter()
            .values()
            .map(|v| {
                let v = v?;
                serde_json::from_slice(&v).map_err(|e| ClientError::Store(format!("contact: {e}")))
            })
            .collect()
    }

    /// The contact whose *pinned* key is `key` (a pending, not yet trusted key does not count).
    pub fn contact_by_key(&self, key: &PublicKey) -> Result<Option<Contact>> {
        Ok(self.contacts()?.into_iter().find(|c| &c.key == key))
    }

    // ------------------------------------------------------------ messages

    /// Stores a message unless `(from, id)` is stored already; flushed to disk
    /// before returning [`Insert::Stored`].
    pub fn insert_message(&self, m: &StoredMessage) -> Result<Insert> {
        use sled::Transactional as _;
        use sled::transaction::{ConflictableTransactionError, TransactionError};
        let key = m.key();
        let value = serde_json::to_vec(m).map_err(|e| ClientError::Store(e.to_string()))?;
        let tl_key = m.timeline_key();
        let outcome = (&self.messages, &self.timeline).transaction(|(msgs, timeline)| {
            if let Some(existing) = msgs.get(&key)? {
                return Err(ConflictableTransactionError::Abort(existing));
            }
            msgs.insert(key.as_slice(), value.as_slice())?;
            timeline.insert(tl_key.as_slice(), key.as_slice())?;
            Ok(())
        });
        match outcome {
            Ok(()) => {
                self.flush()?;
                Ok(Insert::Stored)
            }
            Err(TransactionError::Abort(existing)) => {
                let m = serde_json::from_slice(&existing).map_err(|e| ClientError::Store(format!("message: {e}")))?;
                Ok(Insert::Exists(Box::new(m)))
            }
            Err(TransactionError::Storage(e)) => Err(e.into()),
        }
    }

    /// Files the outgoing message `m` described by a sent copy whose own id is `copy_id`
    /// (from `m.from`, the own key), delivered at `stream_seq`; flushed when it stored anything.
    pub fn file_sent_copy(&self, m: &StoredMessage, copy_id: &str, stream_seq: u64) -> Result<Filed> {
        use sled::Transactional as _;
        use sled::transaction::{ConflictableTransactionError, TransactionError};
        let key = m.key();
        let value = serde_json::to_vec(m).map_err(|e| ClientError::Store(e.to_string()))?;
        let tl_key = m.timeline_key();
        let copy_key = message_key(&m.from, copy_id);
        let seq = stream_seq.to_be_bytes();
        let outcome = (&self.messages, &self.timeline, &self.copies).transaction(|(msgs, timeline, copies)| {
            if let Some(seen) = copies.get(&copy_key)? {
                let same = seen.as_ref() == seq.as_slice();
                return Err(ConflictableTransactionError::Abort(if same {
                    Filed::Redelivered
                } else {
                    Filed::Replayed
                }));
            }
            copies.insert(copy_key.as_slice(), seq.as_slice())?;
            if msgs.get(&key)?.is_some() {
                return Ok(Filed::Known);
            }
            msgs.insert(key.as_slice(), value.as_slice())?;
            timeline.insert(tl_key.as_slice(), key.as_slice())?;
            Ok(Filed::Stored)
        });
        match outcome {
            Ok(filed) => {
                self.flush()?;
                Ok(filed)
            }
            Err(TransactionError::Abort(filed)) => Ok(filed),
            Err(TransactionError::Storage(e)) => Err(e.into()),
        }
    }

    /// The stored message `(from, id)`.
    pub fn message(&self, from: &PublicKey, id: &str) -> Result<Option<StoredMessage>> {
        self.messages
            .get(message_key(from, id))?
            .map(|v| serde_json::from_slice(&v).map_err(|e| ClientError::Store(format!("message: {e}"))))
            .transpose()
    }

    /// The conversation with `peer`, oldest first; at most the last `limit`.
    pub fn history(&self, peer: &PublicKey, limit: usize) -> Result<Vec<StoredMessage>> {
        self.timeline_of(&conversation_prefix(None, peer), limit)
    }

    /// The messages of a group (flagged ones included, marked), oldest first; at most the last `limit`.
    pub fn group_history(&self, group: &GroupId, limit: usize) -> Result<Vec<StoredMessage>> {
        // The peer is unused for a group prefix.
        self.timeline_of(&group_prefix(group), limit)
    }

    fn timeline_of(&self, prefix: &str, limit: usize) -> Result<Vec<StoredMessage>> {
        let mut out = Vec::new();
        for item in self.timeline.scan_prefix(prefix.as_bytes()).rev() {
            if out.len() >= limit {
                break;
            }
            let (_, key) = item?;
            if let Some(v) = self.messages.get(&key)? {
                out.push(serde_json::from_slice(&v).map_err(|e| ClientError::Store(format!("message: {e}")))?);
            }
        }
        out.reverse();
        Ok(out)
    }

    // ------------------------------------------------------------ blocked senders

    /// Records `key` as blocked (flushed).
    pub fn block(&self, b: &BlockedSender) -> Result<()> {
        let v = serde_json::to_vec(b).map_err(|e| ClientError::Store(e.to_string()))?;
        self.blocked.insert(b.key.hex(), v)?;
        self.flush()
    }

    /// Forgets that `key` was blocked; `false` if it was not.
    pub fn unblock(&self, key: &PublicKey) -> Result<bool> {
        let had = self.blocked.remove(key.hex())?.is_some();
        self.flush()?;
        Ok(had)
    }

    /// Whether `key` is blocked.
    pub fn is_blocked(&self, key: &PublicKey) -> Result<bool> {
        Ok(self.blocked.contains_key(key.hex())?)
    }

    /// Every blocked sender.
    pub fn blocked(&self) -> Result<Vec<BlockedSender>> {
        self.blocked
            .iter()
            .values()
            .map(|v| serde_json::from_slice(&v?).map_err(|e| ClientError::Store(format!("blocked: {e}"))))
            .collect()
    }

    /// Every stored message, direct and group, in no particular order (for local search).
    pub fn all_messages(&self) -> Result<Vec<StoredMessage>> {
        self.messages
            .iter()
            .values()
            .map(|v| serde_json::from_slice(&v?).map_err(|e| ClientError::Store(format!("message: {e}"))))
            .collect()
    }

    /// Every peer that has a conversation, with its message count.
    pub fn conversations(&self) -> Result<Vec<(PublicKey, usize)>> {
        let mut out: Vec<(PublicKey, usize)> = Vec::new();
        for item in self.timeline.iter().keys() {
            let k = item?;
            let hex = String::from_utf8_lossy(&k[..64.min(k.len())]).into_owned();
            let Ok(pk) = PublicKey::from_hex(&hex) else { continue };
            match out.last_mut() {
                Some((last, n)) if *last == pk => *n += 1,
                _ => out.push((pk, 1)),
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn msg(from: &PublicKey, to: &PublicKey, id: &str, ts: u64) -> StoredMessage {
        StoredMessage {
            from: *from,
            to: *to,
            id: id.into(),
            ts,
            stored_at: ts,
            outgoing: false,
            kind: "text".into(),
            body: serde_json::json!({"text": id}),
            group: None,
            flag: None,
            stream_seq: Some(ts),
        }
    }

    #[test]
    fn insert_is_idempotent_and_survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let a = PublicKey::of(&ed25519_dalek::SigningKey::from_bytes(&[1; 32]));
        let b = PublicKey::of(&ed25519_dalek::SigningKey::from_bytes(&[2; 32]));
        {
            let s = Store::open(dir.path()).unwrap();
            assert_eq!(s.insert_message(&msg(&a, &b, "m2", 20)).unwrap(), Insert::Stored);
            assert_eq!(s.insert_message(&msg(&a, &b, "m1", 10)).unwrap(), Insert::Stored);
            assert!(matches!(s.insert_message(&msg(&a, &b, "m1", 10)).unwrap(), Insert::Exists(_)));
        }
        let s = Store::open(dir.path()).unwrap();
        let h = s.history(&a, 10).unwrap();
        assert_eq!(h.iter().map(|m| m.id.as_str()).collect::<Vec<_>>(), ["m1", "m2"]);
        assert_eq!(s.history(&a, 1).unwrap()[0].id, "m2");
        assert_eq!(s.conversations().unwrap(), vec![(a, 2)]);
    }

    #[test]
    fn sent_copies_are_filed_once_and_ordered_with_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let me = PublicKey::of(&ed25519_dalek::SigningKey::from_bytes(&[1; 32]));
        let peer = PublicKey::of(&ed25519_dalek::SigningKey::from_bytes(&[2; 32]));
        let s = Store::open(dir.path()).unwrap();
        s.insert_message(&msg(&peer, &me, "in1", 10)).unwrap();
        s.insert_message(&msg(&peer, &me, "in2", 30)).unwrap();
        let mut out = msg(&me, &peer, "out1", 20);
        out.outgoing = true;
        out.to = peer;
        assert_eq!(s.file_sent_copy(&out, "copy1", 7).unwrap(), Filed::Stored);
        // The same delivery again, and the same copy from another sequence.
        assert_eq!(s.file_sent_copy(&out, "copy1", 7).unwrap(), Filed::Redelivered);
        assert_eq!(s.file_sent_copy(&out, "copy1", 8).unwrap(), Filed::Replayed);
        // The device that sent it stored the original already.
        let mut sent_here = msg(&me, &peer, "out2", 40);
        sent_here.outgoing = true;
        assert_eq!(s.insert_message(&sent_here).unwrap(), Insert::Stored);
        assert_eq!(s.file_sent_copy(&sent_here, "copy2", 9).unwrap(), Filed::Known);
        let h = s.history(&peer, 10).unwrap();
        let got: Vec<(&str, bool)> = h.iter().map(|m| (m.id.as_str(), m.outgoing)).collect();
        assert_eq!(got, [("in1", false), ("out1", true), ("in2", false), ("out2", true)]);
    }

    #[test]
    fn blocked_senders() {
        let dir = tempfile::tempdir().unwrap();
        let k = PublicKey::of(&ed25519_dalek::SigningKey::from_bytes(&[3; 32]));
        let s = Store::open(dir.path()).unwrap();
        assert!(!s.is_blocked(&k).unwrap());
        s.block(&BlockedSender { key: k, handle: None, blocked_at: 5 }).unwrap();
        assert!(s.is_blocked(&k).unwrap());
        assert_eq!(s.blocked().unwrap().len(), 1);
        assert!(s.unblock(&k).unwrap());
        assert!(!s.unblock(&k).unwrap());
        assert!(!s.is_blocked(&k).unwrap());
    }
}
