//! The 1:1 chat envelope (PROTOCOL.md §6): an ephemeral-static X25519 KEM,
//! HKDF-SHA256 and ChaCha20-Poly1305 around a signed inner message. The
//! broker stores only `{"v","enc","ct"}`; the sender's identity and signature
//! are inside the ciphertext.

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Nonce};
use ed25519_dalek::SigningKey;
use hkdf::Hkdf;
use serde_json::{Map, Value, json};
use sha2::Sha256;
use x25519_dalek::StaticSecret;

use crate::encoding::{b64_decode_fixed, b64_encode};
use crate::error::{ErrorCode, KezError, err};
use crate::files::{Entry, parse_entry};
use crate::group::GroupMessage;
use crate::jcs::{Fields, canonicalize, parse_canonical};
use crate::keys::{PublicKey, x25519_secret};
use crate::sig::{Purpose, sign_canonical, verify_object};

/// Largest outer envelope.
pub const MAX_ENVELOPE_BYTES: usize = 64 * 1024;
/// Longest text message, in characters.
pub const MAX_TEXT_CHARS: usize = 16 * 1024;
/// Allowed future skew of a message timestamp.
pub const FUTURE_SKEW_MS: u64 = 5 * 60 * 1000;
const PAD_BLOCK: usize = 256;
const LABEL: &[u8] = b"kez-v1/msg";

/// What a message carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Body {
    /// A text message.
    Text(String),
    /// A file offer: a manifest entry wrapped for the recipient, and where to fetch it.
    FileShare {
        /// The entry (PROTOCOL.md §7.3).
        entry: Entry,
        /// The sender's Iroh endpoint id hex (one of the sender's live iroh endpoints).
        node_id: String,
    },
    /// A copy, sealed to the sender's own key, of a message the sender sent to `peer` from one
    /// device, so that the sender's other devices show it (PROTOCOL.md §6.1). Valid only when
    /// `from` and `to` are both the reader's own key.
    Sent {
        /// Who the original went to.
        peer: PublicKey,
        /// The original message's id (b64url of 16 bytes).
        id: String,
        /// The original content (never itself a `Sent`).
        body: Box<Body>,
    },
    /// A message to a group, or a change notice (PROTOCOL.md §6.2).
    Group(GroupMessage),
}

impl Body {
    /// The `kind` string of this body.
    pub fn kind(&self) -> &'static str {
        match self {
            Body::Text(_) => "text",
            Body::FileShare { .. } => "file_share",
            Body::Sent { .. } => "sent",
            Body::Group(_) => "group",
        }
    }

    /// The `body` object of this body.
    pub fn to_value(&self) -> Value {
        match self {
            Body::Text(t) => json!({ "text": t }),
            Body::FileShare { entry, node_id } => json!({ "entry": entry.to_value(), "node_id": node_id }),
            Body::Sent { peer, id, body } => {
                json!({ "peer": peer.to_string(), "id": id, "kind": body.kind(), "body": body.to_value() })
            }
            Body::Group(g) => g.to_value(),
        }
    }

    /// Parses a `kind` and its `body` object (exact key sets, bounds).
    pub fn parse(kind: &str, body: &Value) -> Result<Self, KezError> {
        match kind {
            "text" => {
                let f = Fields::exact(body, "text body", &["text"], &[])?;
                let t = f.str("text")?;
                let n = t.chars().count();
                if n == 0 || n > MAX_TEXT_CHARS {
                    return Err(err(
                        ErrorCode::InvalidRequest,
                        format!("text must be 1 to {MAX_TEXT_CHARS} characters"),
                    ));
                }
                Ok(Body::Text(t.into()))
            }
            "file_share" => {
                let f = Fields::exact(body, "file_share body", &["entry", "node_id"], &[])?;
                let node_id = f.str("node_id")?;
                PublicKey::from_hex(node_id)?;
                Ok(Body::FileShare { entry: parse_entry(f.object("entry")?)?, node_id: node_id.into() })
            }
            "sent" => {
                let f = Fields::exact(body, "sent body", &["peer", "id", "kind", "body"], &[])?;
                let peer: PublicKey = f.str("peer")?.parse()?;
                let id = f.str("id")?;
                b64_decode_fixed::<16>(id, "id")?;
                let kind = f.str("kind")?;
                if kind == "sent" || kind == "group" {
                    return Err(err(ErrorCode::InvalidRequest, "a sent copy holds a direct text or file offer"));
                }
                let inner = Body::parse(kind, f.object("body")?)?;
                Ok(Body::Sent { peer, id: id.into(), body: Box::new(inner) })
            }
            "group" => Ok(Body::Group(GroupMessage::parse(body)?)),
            other => Err(err(ErrorCode::InvalidRequest, format!("unknown message kind {other:?}"))),
        }
    }
}

/// A message that opened and verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Opened {
    /// The sender, as claimed inside and proven by the signature.
    pub from: PublicKey,
    /// Random message id (b64url of 16 bytes); `(from, id)` is the replay key.
    pub id: String,
    /// Sender's claimed time, ms.
    pub ts: u64,
    /// The content.
    pub body: Body,
}

/// Derives the per-message key. Returns `None` for an all-zero shared secret.
fn kem_key(
    eph: &StaticSecret,
    eph_pub: &[u8; 32],
    recipient: &PublicKey,
    label: &[u8],
    extra: &[u8],
) -> Option<[u8; 32]> {
    let x_r = recipient.x25519();
    let ss = eph.diffie_hellman(&x25519_dalek::PublicKey::from(x_r));
    if !ss.was_contributory() {
        return None;
    }
    derive(ss.as_bytes(), eph_pub, &x_r, recipient, label, extra)
}

fn derive(
    ss: &[u8; 32],
    eph_pub: &[u8; 32],
    x_r: &[u8; 32],
    recipient: &PublicKey,
    label: &[u8],
    extra: &[u8],
) -> Option<[u8; 32]> {
    let mut salt = [0u8; 64];
    salt[..32].copy_from_slice(eph_pub);
    salt[32..].copy_from_slice(x_r);
    let mut info = Vec::with_capacity(label.len() + 1 + 32 + extra.len());
    info.extend_from_slice(label);
    info.push(0);
    info.extend_from_slice(recipient.as_bytes());
    info.extend_from_slice(extra);
    let mut key = [0u8; 32];
    Hkdf::<Sha256>::new(Some(&salt), ss).expand(&info, &mut key).ok()?;
    Some(key)
}

/// Recipient side of the KEM: the key for `eph_pub` under the recipient's seed.
pub(crate) fn kem_key_recipient(
    recipient: &SigningKey,
    eph_pub: &[u8; 32],
    label: &[u8],
    extra: &[u8],
) -> Option<[u8; 32]> {
    let me = PublicKey::of(recipient);
    let ss = x25519_secret(recipient).diffie_hellman(&x25519_dalek::PublicKey::from(*eph_pub));
    if !ss.was_contributory() {
        return None;
    }
    derive(ss.as_bytes(), eph_pub, &me.x25519(), &me, label, extra)
}

/// Sender side of the KEM with a given ephemeral secret: `(E, key)`.
pub(crate) fn kem_key_sender(
    eph_secret: [u8; 32],
    recipient: &PublicKey,
    label: &[u8],
    extra: &[u8],
) -> Result<([u8; 32], [u8; 32]), KezError> {
    let eph = StaticSecret::from(eph_secret);
    let eph_pub = x25519_dalek::PublicKey::from(&eph).to_bytes();
    let key = kem_key(&eph, &eph_pub, recipient, label, extra)
        .ok_or_else(|| err(ErrorCode::InvalidKey, "recipient key gives an all-zero shared secret"))?;
    Ok((eph_pub, key))
}

pub(crate) fn aead_seal(key: &[u8; 32], aad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, KezError> {
    // Only inputs over the AEAD's 256 GiB limit fail; never answer that with empty bytes.
    ChaCha20Poly1305::new(key.into())
        .encrypt(&Nonce::default(), Payload { msg: plaintext, aad })
        .map_err(|_| err(ErrorCode::TooLarge, "too large to encrypt"))
}

pub(crate) fn aead_open(key: &[u8; 32], aad: &[u8], ct: &[u8]) -> Result<Vec<u8>, KezError> {
    ChaCha20Poly1305::new(key.into())
        .decrypt(&Nonce::default(), Payload { msg: ct, aad })
        .map_err(|_| err(ErrorCode::DecryptFailed, "message does not decrypt for this key"))
}

fn aad() -> Vec<u8> {
    let mut a = LABEL.to_vec();
    a.push(0);
    a.push(1);
    a
}

/// Seals a message with explicit randomness (for vectors); see [`seal`].
pub fn seal_with(
    sender: &SigningKey,
    to: &PublicKey,
    body: &Body,
    ts: u64,
    id: [u8; 16],
    eph_secret: [u8; 32],
) -> Result<Vec<u8>, KezError> {
    let (eph_pub, key) = kem_key_sender(eph_secret, to, LABEL, &[])?;
    let enc = b64_encode(&eph_pub);
    let unsigned = json!({
        "v": 1,
        "from": PublicKey::of(sender).to_string(),
        "to": to.to_string(),
        "enc": enc,
        "id": b64_encode(&id),
        "ts": ts,
        "kind": body.kind(),
        "body": body.to_value(),
    });
    let mut plaintext = sign_canonical(sender, Purpose::Msg, unsigned)?;
    let padded_len = plaintext.len().div_ceil(PAD_BLOCK) * PAD_BLOCK;
    plaintext.resize(padded_len, 0);
    let ct = aead_seal(&key, &aad(), &plaintext)?;
    let outer = canonicalize(&json!({ "v": 1, "enc": enc, "ct": b64_encode(&ct) }))?;
    if outer.len() > MAX_ENVELOPE_BYTES {
        return Err(err(ErrorCode::TooLarge, "message is too large for one envelope"));
    }
    Ok(outer)
}

/// Seals a message for `to` with fresh randomness; returns the outer bytes.
pub fn seal(sender: &SigningKey, to: &PublicKey, body: &Body, ts: u64) -> Result<Vec<u8>, KezError> {
    seal_with(sender, to, body, ts, crate::random_bytes(), crate::random_bytes())
}

/// An outer envelope as the broker stores it, parsed but not opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outer {
    /// The ephemeral X25519 public key `E`.
    pub enc: [u8; 32],
    /// `enc` as sent (the inner `enc` must equal this text).
    pub enc_text: String,
    /// The ciphertext.
    pub ct: Vec<u8>,
}

/// Step 1 of PROTOCOL.md §6 without any key: at most 64 KiB, canonical JSON with exactly
/// `v`, `enc`, `ct`, `v == 1`, `enc` 32 bytes, `ct` base64url. The relay checks this before
/// storing (§9.3); [`open`] starts with it.
pub fn parse_outer(outer: &[u8]) -> Result<Outer, KezError> {
    if outer.len() > MAX_ENVELOPE_BYTES {
        return Err(err(ErrorCode::TooLarge, "envelope too large"));
    }
    let value = parse_canonical(outer)?;
    let f = Fields::exact(&value, "envelope", &["v", "enc", "ct"], &[])?;
    if f.u64("v")? != 1 {
        return Err(err(ErrorCode::WrongType, "unsupported envelope version"));
    }
    let enc_text = f.str("enc")?;
    let enc = b64_decode_fixed::<32>(enc_text, "enc")?;
    let ct = crate::encoding::b64_decode(f.str("ct")?, "ct")?;
    Ok(Outer { enc, enc_text: enc_text.to_owned(), ct })
}

/// [`parse_outer`] for callers that only need the verdict.
pub fn check_outer(outer: &[u8]) -> Result<(), KezError> {
    parse_outer(outer).map(|_| ())
}

/// Opens and verifies an envelope addressed to `recipient` (PROTOCOL.md §6,
/// steps 1–6). `window_ms` is the inbox retention; replay (step 7) is the
/// caller's, who keeps the seen `(from, id)` pairs.
pub fn open(recipient: &SigningKey, outer: &[u8], now: u64, window_ms: u64) -> Result<Opened, KezError> {
    let Outer { enc: eph_pub, enc_text, ct } = parse_outer(outer)?;
    let enc_text = enc_text.as_str();
    let key = kem_key_recipient(recipient, &eph_pub, LABEL, &[])
        .ok_or_else(|| err(ErrorCode::DecryptFailed, "ephemeral key gives an all-zero shared secret"))?;
    let mut plaintext = aead_open(&key, &aad(), &ct)?;
    while plaintext.last() == Some(&0) {
        plaintext.pop();
    }
    let inner = parse_canonical(&plaintext)?;
    let g =
        Fields::exact(&inner, "message", &["type", "v", "from", "to", "enc", "id", "ts", "kind", "body", "sig"], &[])?;
    let me = PublicKey::of(recipient);
    // A malformed `to` is as much "not for me" as another key (PROTOCOL.md §6 step 4).
    let to: PublicKey =
        g.str("to")?.parse().map_err(|_| err(ErrorCode::WrongRecipient, "message is not addressed to a valid key"))?;
    if to != me {
        return Err(err(ErrorCode::WrongRecipient, "message is addressed to another key"));
    }
    if g.str("enc")? != enc_text {
        return Err(err(ErrorCode::EncMismatch, "inner enc does not match the envelope"));
    }
    // A `from` that is no valid key cannot have signed anything (step 5).
    let from: PublicKey =
        g.str("from")?.parse().map_err(|_| err(ErrorCode::BadSignature, "sender key is not a valid key"))?;
    verify_object(Purpose::Msg, inner.as_object().unwrap_or(&Map::new()), &from)?;
    let ts = g.u64("ts")?;
    if ts > now.saturating_add(FUTURE_SKEW_MS) || ts < now.saturating_sub(window_ms) {
        return Err(err(ErrorCode::StaleTimestamp, "message time is outside the accepted window"));
    }
    let id = g.str("id")?;
    b64_decode_fixed::<16>(id, "id")?;
    let body = Body::parse(g.str("kind")?, g.object("body")?)?;
    // Only the reader itself may tell the reader what it sent (step 8 of §6).
    if matches!(body, Body::Sent { .. }) && from != me {
        return Err(err(ErrorCode::InvalidRequest, "a sent copy must come from the reader's own key"));
    }
    Ok(Opened { from, id: id.into(), ts, body })
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: u64 = 86_400_000;

    #[test]
    fn seal_open_round_trip_and_failures() {
        let a = SigningKey::from_bytes(&[1u8; 32]);
        let b = SigningKey::from_bytes(&[2u8; 32]);
        let c = SigningKey::from_bytes(&[3u8; 32]);
        let now = 1_800_000_000_000;
        let outer = seal(&a, &PublicKey::of(&b), &Body::Text("hello".into()), now).unwrap();
        assert!(outer.len() % 4 != 1);
        let opened = open(&b, &outer, now, DAY).unwrap();
        assert_eq!(opened.from, PublicKey::of(&a));
        assert_eq!(opened.body, Body::Text("hello".into()));
        assert_eq!(open(&c, &outer, now, DAY).unwrap_err().code, ErrorCode::DecryptFailed);
        assert_eq!(open(&b, &outer, now + 2 * DAY, DAY).unwrap_err().code, ErrorCode::StaleTimestamp);
        // The broker-visible bytes contain neither the sender's key nor the text.
        let text = String::from_utf8(outer.clone()).unwrap();
        assert!(!text.contains(&PublicKey::of(&a).hex()));
        assert!(!text.contains("hello"));
    }

    #[test]
    #[allow(clippy::unwrap_used)]
    fn outer_checks_without_a_key() {
        let a = SigningKey::from_bytes(&[1u8; 32]);
        let outer = seal(&a, &PublicKey::of(&a), &Body::Text("hi".into()), 1_800_000_000_000).unwrap();
        let parsed = parse_outer(&outer).unwrap();
        assert_eq!(b64_encode(&parsed.enc), parsed.enc_text);
        assert!(!parsed.ct.is_empty());
        check_outer(&outer).unwrap();
        let e = b64_encode(&[9u8; 32]);
        for (bad, code) in [
            (b"not json".to_vec(), ErrorCode::InvalidJson),
            (format!(r#"{{"v":1,"enc":"{e}","ct":"AA"}}"#).into_bytes(), ErrorCode::NotCanonical),
            (format!(r#"{{"ct":"AA","enc":"{e}"}}"#).into_bytes(), ErrorCode::InvalidRequest),
            (format!(r#"{{"ct":"AA","enc":"{e}","v":1,"x":1}}"#).into_bytes(), ErrorCode::InvalidRequest),
            (format!(r#"{{"ct":"AA","enc":"{e}","v":2}}"#).into_bytes(), ErrorCode::WrongType),
            (r#"{"ct":"AA","enc":"AAAA","v":1}"#.as_bytes().to_vec(), ErrorCode::InvalidEncoding),
            (format!(r#"{{"ct":"A+A","enc":"{e}","v":1}}"#).into_bytes(), ErrorCode::InvalidEncoding),
            (vec![b' '; MAX_ENVELOPE_BYTES + 1], ErrorCode::TooLarge),
        ] {
            assert_eq!(check_outer(&bad).unwrap_err().code, code, "{}", String::from_utf8_lossy(&bad));
        }
    }
}
