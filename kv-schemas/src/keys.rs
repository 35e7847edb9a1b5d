//! Public identity keys (`ed25519:<hex>`, PROTOCOL.md §1–2) and the X25519
//! forms used only as KEM recipient keys.

use std::fmt;
use std::str::FromStr;

use curve25519_dalek::edwards::CompressedEdwardsY;
use ed25519_dalek::{Signature, SigningKey, VerifyingKey};
use x25519_dalek::StaticSecret;

use crate::encoding::{hex_decode_fixed, hex_encode};
use crate::error::{ErrorCode, KezError, err};

/// The text prefix of an identity key.
pub const KEY_PREFIX: &str = "ed25519:";

/// A validated Ed25519 public key: canonical point encoding, not of small order.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PublicKey([u8; 32]);

impl PublicKey {
    /// Validates raw bytes (PROTOCOL.md §2.1).
    pub fn from_bytes(bytes: [u8; 32]) -> Result<Self, KezError> {
        let point = CompressedEdwardsY(bytes)
            .decompress()
            .ok_or_else(|| err(ErrorCode::InvalidKey, "key is not a valid curve point"))?;
        if point.compress().to_bytes() != bytes {
            return Err(err(ErrorCode::InvalidKey, "key is not canonically encoded"));
        }
        if point.is_small_order() {
            return Err(err(ErrorCode::InvalidKey, "key is a small-order point"));
        }
        Ok(Self(bytes))
    }

    /// Parses 64 lowercase hex characters.
    pub fn from_hex(hex: &str) -> Result<Self, KezError> {
        let bytes = hex_decode_fixed::<32>(hex, "key").map_err(|e| err(ErrorCode::InvalidKey, e.message))?;
        Self::from_bytes(bytes)
    }

    /// The public key of a signing key.
    pub fn of(signing: &SigningKey) -> Self {
        Self(signing.verifying_key().to_bytes())
    }

    /// The 32 raw bytes (also the NATS nkey payload and the Iroh endpoint id).
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Lowercase hex of the 32 bytes, as used in subjects and URLs.
    pub fn hex(&self) -> String {
        hex_encode(&self.0)
    }

    /// The X25519 (Montgomery u) form of this key, used as a KEM recipient key.
    pub fn x25519(&self) -> [u8; 32] {
        self.verifying_key().to_montgomery().to_bytes()
    }

    /// Strict verification (PROTOCOL.md §2.1) of a signature over `msg`.
    pub fn verify_strict(&self, msg: &[u8], sig: &[u8; 64]) -> Result<(), KezError> {
        let signature = Signature::from_bytes(sig);
        self.verifying_key()
            .verify_strict(msg, &signature)
            .map_err(|_| err(ErrorCode::BadSignature, "signature does not verify"))
    }

    fn verifying_key(&self) -> VerifyingKey {
        // Validated at construction, so decompression cannot fail here.
        VerifyingKey::from_bytes(&self.0).unwrap_or_else(|_| unreachable!("validated key"))
    }
}

impl fmt::Display for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{KEY_PREFIX}{}", self.hex())
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({self})")
    }
}

impl FromStr for PublicKey {
    type Err = KezError;
    /// Parses `ed25519:<64 lowercase hex>`.
    fn from_str(s: &str) -> Result<Self, KezError> {
        let hex =
            s.strip_prefix(KEY_PREFIX).ok_or_else(|| err(ErrorCode::InvalidKey, "key must start with \"ed25519:\""))?;
        Self::from_hex(hex)
    }
}

impl serde::Serialize for PublicKey {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for PublicKey {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// The X25519 secret for a seed: `clamp(SHA-512(seed)[0..32])` (x25519-dalek clamps).
pub fn x25519_secret(signing: &SigningKey) -> StaticSecret {
    StaticSecret::from(signing.to_scalar_bytes())
}

/// Signs `msg` with the identity key.
pub fn sign_raw(signing: &SigningKey, msg: &[u8]) -> [u8; 64] {
    use ed25519_dalek::Signer as _;
    signing.sign(msg).to_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc8032_key_converts_to_the_known_montgomery_u() {
        let k = PublicKey::from_hex("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a").unwrap();
        assert_eq!(hex_encode(&k.x25519()), "d85e07ec22b0ad881537c2f44d662d1a143cf830c57aca4305d85c7a90f6b62e");
    }

    #[test]
    fn rejects_small_order_and_non_canonical_keys() {
        // identity point (small order)
        let mut id = [0u8; 32];
        id[0] = 1;
        assert!(PublicKey::from_bytes(id).is_err());
        // y = p (non-canonical encoding of 0)
        let noncanon =
            hex_decode_fixed::<32>("edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f", "k").unwrap();
        assert!(PublicKey::from_bytes(noncanon).is_err());
        assert!("ed25519:AB".parse::<PublicKey>().is_err());
        assert!("x:00".parse::<PublicKey>().is_err());
    }

    #[test]
    fn secret_and_public_x25519_agree() {
        let sk = SigningKey::from_bytes(&[7u8; 32]);
        let pk = PublicKey::of(&sk);
        let xs = x25519_secret(&sk);
        assert_eq!(x25519_dalek::PublicKey::from(&xs).to_bytes(), pk.x25519());
    }
}
