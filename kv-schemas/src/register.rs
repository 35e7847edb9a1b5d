//! The signed registration request (PROTOCOL.md §4).

use ed25519_dalek::SigningKey;
use serde_json::{Map, json};

use crate::encoding::{b64_decode_fixed, b64_encode};
use crate::error::{ErrorCode, KezError, err};
use crate::handle::Handle;
use crate::jcs::{Fields, parse_canonical};
use crate::keys::PublicKey;
use crate::sig::{Purpose, sign_canonical, verify_object};

/// Largest accepted registration body.
pub const MAX_BYTES: usize = 4 * 1024;

/// A verified registration request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registration {
    /// The server domain the request is bound to.
    pub aud: String,
    /// The handle being claimed.
    pub handle: Handle,
    /// The key claiming it.
    pub key: PublicKey,
    /// Client time, ms.
    pub ts: u64,
    /// Random replay nonce (b64url of 16 bytes).
    pub nonce: String,
}

/// Builds and signs a registration request; returns its canonical bytes.
pub fn build(signing: &SigningKey, handle: &Handle, ts: u64, nonce: [u8; 16]) -> Result<Vec<u8>, KezError> {
    let unsigned = json!({
        "v": 1,
        "aud": handle.domain(),
        "handle": handle.to_string(),
        "key": PublicKey::of(signing).to_string(),
        "ts": ts,
        "nonce": b64_encode(&nonce),
    });
    sign_canonical(signing, Purpose::Register, unsigned)
}

/// Verifies a registration request for the server of `domain` at time `now`.
/// Replay of `(key, nonce)` is checked by the registry, which has the state.
pub fn verify(bytes: &[u8], domain: &str, now: u64) -> Result<Registration, KezError> {
    if bytes.len() > MAX_BYTES {
        return Err(err(ErrorCode::TooLarge, format!("registration request is over {MAX_BYTES} bytes")));
    }
    let value = parse_canonical(bytes)?;
    let f = Fields::exact(&value, "registration", &["type", "v", "aud", "handle", "key", "ts", "nonce", "sig"], &[])?;
    if f.str("type")? != Purpose::Register.object_type() || f.u64("v")? != 1 {
        return Err(err(ErrorCode::WrongType, "expected a kez.register request, version 1"));
    }
    let aud = f.str("aud")?;
    if aud != domain {
        return Err(err(ErrorCode::WrongAudience, format!("request is for {aud:?}, this server is {domain:?}")));
    }
    let handle = Handle::parse_canonical(f.str("handle")?)?;
    if handle.domain() != domain {
        return Err(err(ErrorCode::WrongAudience, format!("handle domain must be {domain:?}")));
    }
    if handle.is_reserved() {
        return Err(err(ErrorCode::HandleReserved, format!("{:?} is reserved", handle.local())));
    }
    let key: PublicKey = f.str("key")?.parse()?;
    let nonce = f.str("nonce")?;
    b64_decode_fixed::<16>(nonce, "nonce")?;
    let ts = f.u64("ts")?;
    verify_object(Purpose::Register, value.as_object().unwrap_or(&Map::new()), &key)?;
    if now.abs_diff(ts) > crate::TIME_WINDOW_MS {
        return Err(err(ErrorCode::StaleTimestamp, "request time is more than 5 minutes from the server's clock"));
    }
    Ok(Registration { aud: aud.into(), handle, key, ts, nonce: nonce.into() })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setup() -> (SigningKey, Handle) {
        (SigningKey::from_bytes(&[3u8; 32]), Handle::parse_input("alice", "kez.lat").unwrap())
    }

    #[test]
    fn round_trip_and_rules() {
        let (sk, h) = setup();
        let now = 1_800_000_000_000;
        let bytes = build(&sk, &h, now, [9u8; 16]).unwrap();
        let r = verify(&bytes, "kez.lat", now + 1000).unwrap();
        assert_eq!(r.handle, h);
        assert_eq!(verify(&bytes, "other.example", now).unwrap_err().code, ErrorCode::WrongAudience);
        assert_eq!(verify(&bytes, "kez.lat", now + 600_000).unwrap_err().code, ErrorCode::StaleTimestamp);
        let tampered = String::from_utf8(bytes.clone()).unwrap().replace("alice", "alicf");
        assert_eq!(verify(tampered.as_bytes(), "kez.lat", now).unwrap_err().code, ErrorCode::BadSignature);
        let reserved = build(&sk, &Handle::parse_input("root", "kez.lat").unwrap(), now, [1; 16]).unwrap();
        assert_eq!(verify(&reserved, "kez.lat", now).unwrap_err().code, ErrorCode::HandleReserved);
        assert_eq!(verify(b"{", "kez.lat", now).unwrap_err().code, ErrorCode::InvalidJson);
        assert_eq!(verify(&vec![b' '; 5000], "kez.lat", now).unwrap_err().code, ErrorCode::TooLarge);
    }
}
