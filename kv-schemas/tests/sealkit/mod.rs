//! The sender side of PROTOCOL.md §6 for raw inner bytes, written out independently of
//! `kv_schemas::envelope`: lets tests seal arbitrary (or fuzzed and re-signed) inner objects
//! to reach the inner-message checks of `envelope::open`.
#![allow(dead_code, clippy::unwrap_used)]

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Nonce};
use hkdf::Hkdf;
use kv_schemas::encoding::b64_encode;
use kv_schemas::jcs::canonicalize;
use kv_schemas::keys::PublicKey;
use serde_json::json;
use sha2::Sha256;

/// Seals `inner` (padded to 256 bytes) for `recipient` with the ephemeral secret `eph`.
pub fn seal_inner_raw(eph: [u8; 32], inner: &[u8], recipient: &PublicKey) -> Vec<u8> {
    let e = x25519_dalek::StaticSecret::from(eph);
    let big_e = x25519_dalek::PublicKey::from(&e).to_bytes();
    let x_r = recipient.x25519();
    let ss = e.diffie_hellman(&x25519_dalek::PublicKey::from(x_r)).to_bytes();
    let mut key = [0u8; 32];
    let info = [b"kez-v1/msg".as_slice(), &[0], recipient.as_bytes()].concat();
    Hkdf::<Sha256>::new(Some(&[big_e, x_r].concat()), &ss).expand(&info, &mut key).unwrap();
    let mut padded = inner.to_vec();
    padded.resize(inner.len().div_ceil(256) * 256, 0);
    let ct = ChaCha20Poly1305::new((&key).into())
        .encrypt(&Nonce::default(), Payload { msg: &padded, aad: b"kez-v1/msg\x00\x01" })
        .unwrap();
    canonicalize(&json!({"v": 1, "enc": b64_encode(&big_e), "ct": b64_encode(&ct)})).unwrap()
}
