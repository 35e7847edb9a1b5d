//! Hand-built envelopes for the rejection tests: the PROTOCOL.md §6
//! construction written out step by step, so individual fields can lie
//! (a `from` that is not the signer, a `to` that is not the key it is
//! encrypted for). A correctly built one must be accepted, which checks this
//! code against the real receiver.

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Nonce};
use ed25519_dalek::SigningKey;
use hkdf::Hkdf;
use kv_schemas::PublicKey;
use kv_schemas::encoding::b64_encode;
use kv_schemas::jcs::canonicalize;
use kv_schemas::sig::{Purpose, sign_object};
use serde_json::{Value, json};
use sha2::Sha256;

/// What goes into one forged envelope.
pub struct Forge<'a> {
    /// Who signs the inner message.
    pub signer: &'a SigningKey,
    /// The `from` written inside.
    pub claimed_from: PublicKey,
    /// The `to` written inside.
    pub inner_to: PublicKey,
    /// The key the envelope is actually encrypted for.
    pub encrypt_to: PublicKey,
    /// The text.
    pub text: &'a str,
}

impl Forge<'_> {
    pub fn seal(&self) -> Vec<u8> {
        let e = x25519_dalek::StaticSecret::from(kv_schemas::random_bytes::<32>());
        let e_pub = x25519_dalek::PublicKey::from(&e).to_bytes();
        let x_r = self.encrypt_to.x25519();
        let ss = e.diffie_hellman(&x25519_dalek::PublicKey::from(x_r));
        let mut salt = e_pub.to_vec();
        salt.extend_from_slice(&x_r);
        let mut info = b"kez-v1/msg\0".to_vec();
        info.extend_from_slice(self.encrypt_to.as_bytes());
        let mut key = [0u8; 32];
        Hkdf::<Sha256>::new(Some(&salt), ss.as_bytes()).expand(&info, &mut key).expect("hkdf");
        let enc = b64_encode(&e_pub);
        let unsigned = json!({
            "v": 1,
            "from": self.claimed_from.to_string(),
            "to": self.inner_to.to_string(),
            "enc": enc,
            "id": b64_encode(&kv_schemas::random_bytes::<16>()),
            "ts": kv_schemas::now_ms(),
            "kind": "text",
            "body": { "text": self.text },
        });
        let signed = sign_object(self.signer, Purpose::Msg, unsigned.as_object().cloned().expect("object")).unwrap();
        let mut pt = canonicalize(&Value::Object(signed)).unwrap();
        pt.resize(pt.len().div_ceil(256) * 256, 0);
        let ct = ChaCha20Poly1305::new((&key).into())
            .encrypt(&Nonce::default(), Payload { msg: &pt, aad: b"kez-v1/msg\0\x01" })
            .expect("encrypt");
        canonicalize(&json!({ "v": 1, "enc": enc, "ct": b64_encode(&ct) })).unwrap()
    }
}

/// Flips one bit inside the ciphertext of a real envelope.
pub fn tamper(envelope: &[u8]) -> Vec<u8> {
    let v: Value = serde_json::from_slice(envelope).expect("envelope json");
    let ct = kv_schemas::encoding::b64_decode(v["ct"].as_str().expect("ct"), "ct").expect("b64");
    let mut ct = ct;
    ct[10] ^= 0x01;
    canonicalize(&json!({ "v": 1, "enc": v["enc"], "ct": b64_encode(&ct) })).unwrap()
}
