//! KEZ signatures (PROTOCOL.md §2.2): Ed25519 over
//! `"kez-sig-v1" || 0x00 || purpose || 0x00 || JCS(object without "sig")`.

use ed25519_dalek::SigningKey;
use serde_json::{Map, Value};

use crate::encoding::{b64_decode_fixed, b64_encode};
use crate::error::{ErrorCode, KezError, err};
use crate::jcs::canonicalize;
use crate::keys::{PublicKey, sign_raw};

/// The closed list of things the identity key signs as KEZ objects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// A registration request.
    Register,
    /// A sigchain link.
    SigchainLink,
    /// A shared-files manifest.
    Manifest,
    /// The inner part of a chat envelope.
    Msg,
    /// A group log link (PROTOCOL.md §6.2).
    GroupLink,
}

impl Purpose {
    /// The purpose string inside the signing input.
    pub fn as_str(self) -> &'static str {
        match self {
            Purpose::Register => "register",
            Purpose::SigchainLink => "sigchain.link",
            Purpose::Manifest => "manifest",
            Purpose::Msg => "msg",
            Purpose::GroupLink => "group.link",
        }
    }

    /// The `type` field the object must carry.
    pub fn object_type(self) -> &'static str {
        match self {
            Purpose::Register => "kez.register",
            Purpose::SigchainLink => "kez.sigchain.link",
            Purpose::Manifest => "kez.manifest",
            Purpose::Msg => "kez.msg",
            Purpose::GroupLink => "kez.group.link",
        }
    }
}

const PREFIX: &[u8] = b"kez-sig-v1";

/// The exact bytes a KEZ signature covers. `unsigned` must not contain `sig`.
pub fn signing_input(purpose: Purpose, unsigned: &Map<String, Value>) -> Result<Vec<u8>, KezError> {
    let body = canonicalize(unsigned)?;
    let mut out = Vec::with_capacity(PREFIX.len() + 2 + purpose.as_str().len() + body.len());
    out.extend_from_slice(PREFIX);
    out.push(0);
    out.extend_from_slice(purpose.as_str().as_bytes());
    out.push(0);
    out.extend_from_slice(&body);
    Ok(out)
}

/// Signs an object: returns it with `sig` added. `type` must match the purpose.
pub fn sign_object(
    signing: &SigningKey,
    purpose: Purpose,
    mut unsigned: Map<String, Value>,
) -> Result<Map<String, Value>, KezError> {
    unsigned.remove("sig");
    unsigned.insert("type".into(), Value::String(purpose.object_type().into()));
    let sig = sign_raw(signing, &signing_input(purpose, &unsigned)?);
    unsigned.insert("sig".into(), Value::String(b64_encode(&sig)));
    Ok(unsigned)
}

/// Signs an object and returns its canonical bytes (what goes on the wire).
pub fn sign_canonical(signing: &SigningKey, purpose: Purpose, unsigned: Value) -> Result<Vec<u8>, KezError> {
    canonicalize(&sign_object(signing, purpose, crate::jcs::into_object(unsigned)?)?)
}

/// Checks `type`/`v` and verifies the `sig` of a parsed object under `key`.
/// Returns the signing input (its hash is the object's id where one is needed).
pub fn verify_object(purpose: Purpose, obj: &Map<String, Value>, key: &PublicKey) -> Result<Vec<u8>, KezError> {
    if obj.get("type").and_then(Value::as_str) != Some(purpose.object_type()) {
        return Err(err(ErrorCode::WrongType, format!("expected an object of type {}", purpose.object_type())));
    }
    if obj.get("v").and_then(Value::as_u64) != Some(1) {
        return Err(err(ErrorCode::WrongType, "unsupported version (expected v 1)"));
    }
    let sig_text = obj
        .get("sig")
        .and_then(Value::as_str)
        .ok_or_else(|| err(ErrorCode::InvalidRequest, "missing signature field \"sig\""))?;
    let sig = b64_decode_fixed::<64>(sig_text, "sig")?;
    let mut unsigned = obj.clone();
    unsigned.remove("sig");
    let input = signing_input(purpose, &unsigned)?;
    key.verify_strict(&input, &sig)?;
    Ok(input)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn signing_input_has_nul_at_byte_ten_and_verifies() {
        let sk = SigningKey::from_bytes(&[1u8; 32]);
        let obj = json!({"v":1,"hello":"world"}).as_object().cloned().unwrap();
        let signed = sign_object(&sk, Purpose::Msg, obj).unwrap();
        let mut unsigned = signed.clone();
        unsigned.remove("sig");
        assert_eq!(signing_input(Purpose::Msg, &unsigned).unwrap()[10], 0);
        verify_object(Purpose::Msg, &signed, &PublicKey::of(&sk)).unwrap();
        // Same object under another purpose fails on type.
        assert_eq!(
            verify_object(Purpose::Manifest, &signed, &PublicKey::of(&sk)).unwrap_err().code,
            ErrorCode::WrongType
        );
        // Tampering fails.
        let mut t = signed.clone();
        t.insert("hello".into(), json!("World"));
        assert_eq!(verify_object(Purpose::Msg, &t, &PublicKey::of(&sk)).unwrap_err().code, ErrorCode::BadSignature);
    }

    #[test]
    fn a_value_without_canonical_form_is_an_error_not_other_bytes() {
        // RFC 8785 has no form for NaN; signing must refuse rather than sign serde_json's bytes.
        let sk = SigningKey::from_bytes(&[1u8; 32]);
        assert_eq!(crate::jcs::canonicalize(&f64::NAN).unwrap_err().code, ErrorCode::Internal);
        assert_eq!(sign_canonical(&sk, Purpose::Msg, json!([1])).unwrap_err().code, ErrorCode::Internal);
        assert!(sign_canonical(&sk, Purpose::Msg, json!({"v": 1})).is_ok());
    }
}
