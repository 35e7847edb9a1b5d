//! Binary-to-text encodings (PROTOCOL.md §1): lowercase hex and canonical
//! base64url without padding. Decoders are strict so every value has exactly
//! one text form.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::error::{ErrorCode, KezError, err};

/// A BLAKE3 or SHA-256 hash as the protocol writes it: 64 lowercase hex characters.
pub fn is_hash(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Encodes bytes as lowercase hex.
pub fn hex_encode(bytes: &[u8]) -> String {
    hex::encode(bytes)
}

/// Decodes lowercase hex of exactly `N` bytes.
pub fn hex_decode_fixed<const N: usize>(s: &str, what: &str) -> Result<[u8; N], KezError> {
    let v = hex_decode(s, what)?;
    v.try_into().map_err(|_| err(ErrorCode::InvalidEncoding, format!("{what}: expected {} hex characters", N * 2)))
}

/// Decodes lowercase hex; uppercase is rejected so the text form is unique.
pub fn hex_decode(s: &str, what: &str) -> Result<Vec<u8>, KezError> {
    if s.bytes().any(|b| b.is_ascii_uppercase()) {
        return Err(err(ErrorCode::InvalidEncoding, format!("{what}: hex must be lowercase")));
    }
    hex::decode(s).map_err(|_| err(ErrorCode::InvalidEncoding, format!("{what}: not valid hex")))
}

/// Encodes bytes as base64url without padding.
pub fn b64_encode(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Decodes canonical base64url without padding (padding, other alphabets and
/// non-zero trailing bits are rejected).
pub fn b64_decode(s: &str, what: &str) -> Result<Vec<u8>, KezError> {
    URL_SAFE_NO_PAD
        .decode(s)
        .map_err(|_| err(ErrorCode::InvalidEncoding, format!("{what}: not canonical base64url without padding")))
}

/// Decodes canonical base64url of exactly `N` bytes.
pub fn b64_decode_fixed<const N: usize>(s: &str, what: &str) -> Result<[u8; N], KezError> {
    let v = b64_decode(s, what)?;
    v.try_into().map_err(|_| err(ErrorCode::InvalidEncoding, format!("{what}: expected {N} bytes")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64url_is_strict() {
        assert_eq!(b64_encode(&[0xfb, 0xff]), "-_8");
        assert!(b64_decode("-_8", "x").is_ok());
        assert!(b64_decode("-_8=", "x").is_err(), "padding");
        assert!(b64_decode("+/8", "x").is_err(), "standard alphabet");
        assert!(b64_decode("-_9", "x").is_err(), "non-zero trailing bits");
    }

    #[test]
    fn hex_is_lowercase_only() {
        assert_eq!(hex_decode("ab", "x").unwrap(), vec![0xab]);
        assert!(hex_decode("AB", "x").is_err());
        assert!(hex_decode_fixed::<2>("ab", "x").is_err());
    }
}
