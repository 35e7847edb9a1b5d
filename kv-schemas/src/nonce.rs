//! The NATS nonce rule (PROTOCOL.md §2.2): the identity key signs a server
//! nonce only if it looks like one, so a hostile broker cannot obtain a
//! signature over a KEZ object.

use crate::error::{ErrorCode, KezError, err};

/// Whether `nonce` is a plain NATS nonce: 12–24 characters of `[A-Za-z0-9_-]`.
pub fn is_plain_nats_nonce(nonce: &str) -> bool {
    (12..=24).contains(&nonce.len()) && nonce.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Returns an error for anything the client must refuse to sign.
pub fn check_nats_nonce(nonce: &str) -> Result<(), KezError> {
    if is_plain_nats_nonce(nonce) {
        Ok(())
    } else {
        Err(err(ErrorCode::InvalidRequest, "refusing to sign a server nonce that is not 12-24 base64url characters"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_real_nonces_only() {
        assert!(is_plain_nats_nonce("Xyz_-0123456789"));
        assert!(!is_plain_nats_nonce(""));
        assert!(!is_plain_nats_nonce("short"));
        assert!(!is_plain_nats_nonce("kez-sig-v1\0sigchain.link\0{}"));
        assert!(!is_plain_nats_nonce(&"a".repeat(25)));
        assert!(!is_plain_nats_nonce("abc+/abc+/abc+/"));
    }
}
