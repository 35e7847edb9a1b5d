//! Contacts: resolving a handle to a key through `/v1/u/…`, verifying the
//! whole sigchain, and pinning the result trust-on-first-use (PROTOCOL.md §5,
//! §11; design §5.2).
//!
//! Rules:
//! - the domain after `@` decides where to look: the home server for the home
//!   domain, `https://<domain>` otherwise;
//! - the whole chain is verified from link 1 every time, and must extend the
//!   tail pinned before (a shorter chain is a rollback, a different link a fork);
//! - the first key seen for a handle is pinned. A later lookup that returns
//!   another key does **not** replace it: the new key is recorded as *pending*,
//!   [`ClientError::KeyChanged`] is returned, and sending stays refused until the
//!   user runs `trust <handle> --new-key <fingerprint>` ([`trust_new_key`]).

use kv_schemas::sigchain::{ChainState, Endpoint, Link, PinnedTail, check_extends, verify_chain};
use kv_schemas::{Handle, PublicKey, now_ms, safety};
use serde::{Deserialize, Serialize};

use crate::api::Api;
use crate::error::{ClientError, Result};
use crate::store::Store;

/// A pinned contact.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Contact {
    /// Canonical handle.
    pub handle: Handle,
    /// The pinned (trusted) key.
    pub key: PublicKey,
    /// The verified sigchain position of the pinned key.
    pub tail: PinnedTail,
    /// The advertised NATS inbox subject, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inbox: Option<String>,
    /// The advertised broker URL, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub broker: Option<String>,
    /// The advertised Iroh endpoint id, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iroh_node: Option<String>,
    /// When first pinned, ms.
    pub added_at: u64,
    /// When last checked against the server, ms.
    pub checked_at: u64,
    /// The user compared the safety number for this key out of band.
    #[serde(default)]
    pub verified: bool,
    /// A different key the server returned for this handle, not trusted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending_key: Option<PublicKey>,
    /// Keys pinned earlier and replaced by an explicit `trust`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub previous_keys: Vec<PublicKey>,
}

impl Contact {
    /// Whether sending is allowed (no unresolved key change).
    pub fn is_blocked(&self) -> bool {
        self.pending_key.is_some()
    }

    /// The inbox subject the contact advertises (PROTOCOL.md §5 makes it
    /// `kez.inbox.<hex of the key>`, which is also the fallback before one is advertised).
    /// Shown only: messages go through the relay, which picks the stored subject (§9.3).
    pub fn inbox_subject(&self) -> String {
        self.inbox.clone().unwrap_or_else(|| kv_schemas::subjects::legacy_inbox_subject(&self.key))
    }

    /// The error that blocks sending, if any.
    pub fn key_changed_error(&self) -> Option<ClientError> {
        self.pending_key.map(|new| ClientError::KeyChanged {
            handle: self.handle.to_string(),
            pinned_fingerprint: safety::fingerprint(&self.key),
            new_fingerprint: safety::fingerprint(&new),
        })
    }

    fn apply_state(&mut self, state: &ChainState) {
        self.tail = tail_of(state);
        self.inbox = None;
        self.broker = None;
        self.iroh_node = None;
        for e in &state.endpoints {
            match &e.endpoint {
                Endpoint::Nats { subject, url } if self.inbox.is_none() => {
                    self.inbox = Some(subject.clone());
                    self.broker = Some(url.clone());
                }
                Endpoint::Iroh { node_id, .. } if self.iroh_node.is_none() => self.iroh_node = Some(node_id.clone()),
                _ => {}
            }
        }
    }
}

fn tail_of(state: &ChainState) -> PinnedTail {
    PinnedTail { seqno: state.seqno, link_id: state.tail.clone().unwrap_or_default() }
}

/// What the server says about a handle, after the chain verified.
#[derive(Debug, Clone)]
pub struct Resolved {
    /// The handle.
    pub handle: Handle,
    /// Its key according to the server.
    pub key: PublicKey,
    /// The verified chain state.
    pub state: ChainState,
    /// The verified links.
    pub links: Vec<Link>,
}

/// Looks `handle` up on `api` and verifies its whole sigchain.
pub async fn resolve(api: &Api, handle: &Handle) -> Result<Resolved> {
    let view = api
        .user(handle)
        .await?
        .ok_or_else(|| ClientError::HandleNotFound { handle: handle.to_string(), server: api.base().to_string() })?;
    let key = view.primary;
    let links = api.sigchain(&key).await?;
    let (state, links) = verify_chain(&key, &links)
        .map_err(|e| ClientError::ChainInvalid { who: handle.to_string(), reason: e.to_string() })?;
    Ok(Resolved { handle: handle.clone(), key, state, links })
}

/// How a lookup changed the local contact list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Change {
    /// First use: pinned now.
    Added,
    /// Same key; the chain was re-checked (and may have grown).
    Unchanged,
}

/// What a fresh lookup means for the stored contact ([`assess`]); nothing is stored yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Assessed {
    /// Not a contact: the contact it would become.
    New(Contact),
    /// The pinned key; the chain extends the pinned tail. The contact, re-checked.
    Same(Contact),
    /// Another key than the pinned one: the stored contact with the new key as pending.
    KeyChanged(Contact),
}

impl Assessed {
    /// The contact in every case.
    pub fn contact(&self) -> &Contact {
        match self {
            Assessed::New(c) | Assessed::Same(c) | Assessed::KeyChanged(c) => c,
        }
    }
}

/// Compares a fresh lookup with the stored contact (`None`: not a contact) without storing
/// anything: a shorter chain is a rollback and a different one a fork ([`ClientError::ChainInvalid`]).
pub fn assess(stored: Option<Contact>, r: &Resolved) -> Result<Assessed> {
    let now = now_ms();
    match stored {
        None => {
            let mut c = Contact {
                handle: r.handle.clone(),
                key: r.key,
                tail: tail_of(&r.state),
                inbox: None,
                broker: None,
                iroh_node: None,
                added_at: now,
                checked_at: now,
                verified: false,
                pending_key: None,
                previous_keys: vec![],
            };
            c.apply_state(&r.state);
            Ok(Assessed::New(c))
        }
        Some(mut c) if c.key == r.key => {
            check_extends(&r.links, &c.tail)
                .map_err(|e| ClientError::ChainInvalid { who: r.handle.to_string(), reason: e.to_string() })?;
            c.apply_state(&r.state);
            c.checked_at = now;
            // The server is back to the pinned key: a pending change is moot.
            c.pending_key = None;
            Ok(Assessed::Same(c))
        }
        Some(mut c) => {
            c.pending_key = Some(r.key);
            c.checked_at = now;
            Ok(Assessed::KeyChanged(c))
        }
    }
}

/// Reconciles a fresh lookup with the stored contact and stores the result: pins on first
/// use, checks the chain extends the pinned tail, and records a key change as pending
/// (returning [`ClientError::KeyChanged`]).
pub fn reconcile(store: &Store, r: &Resolved) -> Result<(Contact, Change)> {
    let assessed = assess(store.contact(&r.handle)?, r)?;
    store.put_contact(assessed.contact())?;
    match assessed {
        Assessed::New(c) => Ok((c, Change::Added)),
        Assessed::Same(c) => Ok((c, Change::Unchanged)),
        Assessed::KeyChanged(c) => {
            Err(c.key_changed_error().unwrap_or_else(|| ClientError::Usage("key changed".into())))
        }
    }
}

/// Normalises what a user typed to name a key: `ed25519:<hex>`, `<hex>`, or
/// the 30-digit fingerprint with or without spaces.
fn key_matches(spec: &str, key: &PublicKey) -> bool {
    let s = spec.trim();
    if let Ok(k) = s.parse::<PublicKey>() {
        return &k == key;
    }
    if let Ok(k) = PublicKey::from_hex(s) {
        return &k == key;
    }
    let digits: String = s.chars().filter(|c| !c.is_whitespace()).collect();
    digits.len() == 30
        && digits.chars().all(|c| c.is_ascii_digit())
        && safety::fingerprint(key).replace(' ', "") == digits
}

/// `trust <handle> --new-key <spec>`: re-resolves the handle and pins the key
/// the server returns now, if and only if it is the key the user named.
pub fn trust_new_key(store: &Store, r: &Resolved, spec: &str) -> Result<Contact> {
    let mut c = store.contact(&r.handle)?.ok_or_else(|| ClientError::NotAContact(r.handle.to_string()))?;
    if c.key == r.key {
        return Err(ClientError::Usage(format!(
            "{} still has the key you trust (fingerprint {}); nothing to re-trust",
            r.handle,
            safety::fingerprint(&c.key)
        )));
    }
    if !key_matches(spec, &r.key) {
        return Err(ClientError::Usage(format!(
            "{spec:?} does not match the key the server returns for {} (fingerprint {}); nothing changed",
            r.handle,
            safety::fingerprint(&r.key)
        )));
    }
    c.previous_keys.push(c.key);
    c.key = r.key;
    c.pending_key = None;
    c.verified = false;
    c.apply_state(&r.state);
    c.checked_at = now_ms();
    store.put_contact(&c)?;
    Ok(c)
}

/// Marks the pinned key as verified when `number` equals the pair's safety number.
pub fn mark_verified(store: &Store, handle: &Handle, me: &PublicKey, number: &str) -> Result<Contact> {
    let mut c = store.contact(handle)?.ok_or_else(|| ClientError::NotAContact(handle.to_string()))?;
    if c.is_blocked() {
        return Err(c.key_changed_error().unwrap_or_else(|| ClientError::Usage("key changed".into())));
    }
    let want = safety::safety_number(me, &c.key).replace(' ', "");
    let got: String = number.chars().filter(|c| !c.is_whitespace()).collect();
    if got != want {
        return Err(ClientError::Usage(format!(
            "that is not the safety number of you and {handle}; nothing was marked verified"
        )));
    }
    c.verified = true;
    store.put_contact(&c)?;
    Ok(c)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    use ed25519_dalek::SigningKey;
    use kv_schemas::sigchain::{Endpoint, Op, build_link};

    /// A verified chain of `n` links for `sk` (nats endpoint, then iroh endpoints).
    fn chain(sk: &SigningKey, n: u64, first_url: &str) -> Vec<serde_json::Value> {
        let key = PublicKey::of(sk);
        let mut out: Vec<serde_json::Value> = vec![];
        let mut prev: Option<String> = None;
        for seqno in 1..=n {
            let op = if seqno == 1 {
                Op::AddEndpoint(Endpoint::Nats {
                    subject: kv_schemas::subjects::legacy_inbox_subject(&key),
                    url: first_url.into(),
                })
            } else {
                Op::AddClaim(kv_schemas::sigchain::Claim {
                    service: "dns".into(),
                    account: format!("x{seqno}.example"),
                    proof: None,
                })
            };
            let bytes = build_link(sk, seqno, prev.as_deref(), 1_800_000_000_000 + seqno, &op).unwrap();
            let link = kv_schemas::sigchain::parse_link(&bytes).unwrap();
            prev = Some(link.link_id.clone());
            out.push(serde_json::from_slice(&bytes).unwrap());
        }
        out
    }

    fn resolved(handle: &Handle, sk: &SigningKey, links: &[serde_json::Value]) -> Resolved {
        let key = PublicKey::of(sk);
        let (state, links) = verify_chain(&key, links).unwrap();
        Resolved { handle: handle.clone(), key, state, links }
    }

    #[test]
    fn tofu_pin_rollback_fork_key_change_and_trust() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let bob = Handle::parse_input("bob", "kez.lat").unwrap();
        let sk = SigningKey::from_bytes(&[7; 32]);
        let links = chain(&sk, 3, "nats://a:4222");

        // First use pins key and tail.
        let (c, change) = reconcile(&store, &resolved(&bob, &sk, &links[..2])).unwrap();
        assert_eq!(change, Change::Added);
        assert_eq!(c.tail.seqno, 2);
        assert_eq!(c.inbox.as_deref(), Some(kv_schemas::subjects::legacy_inbox_subject(&c.key).as_str()));
        // Growing is fine.
        let (c, change) = reconcile(&store, &resolved(&bob, &sk, &links)).unwrap();
        assert_eq!((change, c.tail.seqno), (Change::Unchanged, 3));
        // Rollback (fewer links than seen) is refused.
        let e = reconcile(&store, &resolved(&bob, &sk, &links[..1])).unwrap_err();
        assert!(matches!(e, ClientError::ChainInvalid { .. }), "{e}");
        // Fork: a different chain of the same key with the same length.
        let forked = chain(&sk, 3, "nats://b:4222");
        let e = reconcile(&store, &resolved(&bob, &sk, &forked)).unwrap_err();
        assert!(matches!(e, ClientError::ChainInvalid { .. }), "{e}");

        // Another key for the same handle: pending, blocked, pinned key kept.
        let sk2 = SigningKey::from_bytes(&[8; 32]);
        let new = resolved(&bob, &sk2, &chain(&sk2, 1, "nats://a:4222"));
        let e = reconcile(&store, &new).unwrap_err();
        assert!(matches!(e, ClientError::KeyChanged { .. }), "{e}");
        let c = store.contact(&bob).unwrap().unwrap();
        assert!(c.is_blocked());
        assert_eq!(c.key, PublicKey::of(&sk));
        assert_eq!(c.pending_key, Some(PublicKey::of(&sk2)));
        // Only the new key's own fingerprint re-trusts it.
        assert!(trust_new_key(&store, &new, &safety::fingerprint(&PublicKey::of(&sk))).is_err());
        let c = trust_new_key(&store, &new, &safety::fingerprint(&PublicKey::of(&sk2))).unwrap();
        assert!(!c.is_blocked());
        assert_eq!(c.key, PublicKey::of(&sk2));
        assert_eq!(c.previous_keys, vec![PublicKey::of(&sk)]);
        assert_eq!(store.contact_by_key(&PublicKey::of(&sk2)).unwrap().unwrap().handle, bob);
    }

    #[test]
    fn key_spec_forms() {
        let k = PublicKey::of(&ed25519_dalek::SigningKey::from_bytes(&[5; 32]));
        let other = PublicKey::of(&ed25519_dalek::SigningKey::from_bytes(&[6; 32]));
        assert!(key_matches(&k.to_string(), &k));
        assert!(key_matches(&k.hex(), &k));
        assert!(key_matches(&safety::fingerprint(&k), &k));
        assert!(key_matches(&safety::fingerprint(&k).replace(' ', ""), &k));
        assert!(!key_matches(&safety::fingerprint(&other), &k));
        assert!(!key_matches("12345", &k));
    }
}
