//! The NATS JWT (v2) format, hand-rolled (docs/nats-server.md).
//!
//! Why not a crate: `jsonwebtoken` can only say `"alg":"EdDSA"`, which nats-server rejects, and
//! cannot parse the server's `ed25519-nkey` tokens; `nats-jwt` 0.3 cannot express `aud` (config-mode
//! callout needs `aud: "APP"`) nor authorization requests/responses. The format is small:
//!
//! ```text
//! token = b64url_nopad(header_json) "." b64url_nopad(claims_json) "." b64url_nopad(sig64)
//! sig   = ed25519(issuer seed, ASCII bytes of  b64url_nopad(header_json) "." b64url_nopad(claims_json))
//! header = {"typ":"JWT","alg":"ed25519-nkey"}
//! ```
//!
//! The issuer is the nkey in the `iss` claim; a verifier checks the signature against it (and the
//! caller decides whether that issuer is the one it expected).

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use nkeys::{KeyPair, KeyPairType};
use serde_json::{Map, Value};

/// The only header we emit. Key order matches the Go library (`typ`, `alg`); nothing depends on it.
pub const HEADER_JSON: &str = r#"{"typ":"JWT","alg":"ed25519-nkey"}"#;

/// Largest token [`decode_verify`] looks at. The server's authorization request is ~1–2 KiB, a few
/// KiB more with client TLS certificates; anything bigger is not from a well-behaved server.
pub const MAX_TOKEN_LEN: usize = 64 * 1024;

/// Why a token could not be made or accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwtError {
    /// Over [`MAX_TOKEN_LEN`].
    #[error("token is larger than {MAX_TOKEN_LEN} bytes")]
    TooLarge,
    /// Not `a.b.c`.
    #[error("token is not three dot-separated segments")]
    Shape,
    /// A segment is not base64url without padding.
    #[error("{0} segment is not base64url without padding")]
    Encoding(&'static str),
    /// Header is not `{"typ":"JWT","alg":"ed25519-nkey"}` (or the legacy `ed25519`).
    #[error("unsupported header: {0}")]
    Header(String),
    /// Claims are not a JSON object.
    #[error("claims are not a JSON object: {0}")]
    Claims(String),
    /// `iss` missing or not a public nkey.
    #[error("issuer {0:?} is not a public nkey")]
    Issuer(String),
    /// The signature is not 64 bytes or does not verify against `iss`.
    #[error("signature does not verify against the issuer")]
    Signature,
    /// The signing key pair cannot sign (public key only).
    #[error("cannot sign: {0}")]
    Sign(String),
}

/// A token whose signature verified against its own `iss`.
#[derive(Debug, Clone, PartialEq)]
pub struct Verified {
    /// The `iss` claim (a public nkey).
    pub issuer: String,
    /// The kind of key `iss` is (server `N…`, account `A…`, …).
    pub issuer_type: KeyPairType,
    /// All claims.
    pub claims: Map<String, Value>,
}

/// Something that signs token input with an Ed25519 key.
pub trait Signer {
    /// Ed25519 signature of `input`.
    fn sign_jwt(&self, input: &[u8]) -> Result<[u8; 64], JwtError>;
}

impl Signer for KeyPair {
    fn sign_jwt(&self, input: &[u8]) -> Result<[u8; 64], JwtError> {
        let sig = self.sign(input).map_err(|e| JwtError::Sign(e.to_string()))?;
        sig.try_into().map_err(|_| JwtError::Sign("signature is not 64 bytes".into()))
    }
}

/// Preferred on hot paths: nkeys 0.4 builds ed25519-dalek 2 without its precomputed tables
/// (`default-features = false`), which makes `KeyPair::sign` about twice as slow as this.
impl Signer for ed25519_dalek::SigningKey {
    fn sign_jwt(&self, input: &[u8]) -> Result<[u8; 64], JwtError> {
        use ed25519_dalek::Signer as _;
        Ok(self.sign(input).to_bytes())
    }
}

/// The ed25519-dalek signing key of an nkey seed (same key, faster signing; see [`Signer`]).
pub fn fast_signer(kp: &KeyPair) -> Result<ed25519_dalek::SigningKey, JwtError> {
    let mut seed = zeroize::Zeroizing::new(kp.seed().map_err(|e| JwtError::Sign(e.to_string()))?);
    let (_, raw) = nkeys::decode_seed(&seed).map_err(|e| JwtError::Sign(e.to_string()))?;
    let raw = zeroize::Zeroizing::new(raw);
    zeroize::Zeroize::zeroize(&mut *seed);
    let signing = ed25519_dalek::SigningKey::from_bytes(&raw);
    let (_, public) = nkeys::from_public_key(&kp.public_key()).map_err(|e| JwtError::Sign(e.to_string()))?;
    if signing.verifying_key().to_bytes() != public {
        return Err(JwtError::Sign("seed and public key disagree".into()));
    }
    Ok(signing)
}

/// Signs `claims` with `signer` and returns the token. `claims` should carry `iss` equal to the
/// signer's public nkey; that is the caller's business (the server checks it).
pub fn encode(signer: &impl Signer, claims: &Map<String, Value>) -> Result<String, JwtError> {
    // Serialising a Map<String, Value> cannot fail (string keys, no non-finite floats in Value).
    let claims_json = serde_json::to_vec(claims).map_err(|e| JwtError::Claims(e.to_string()))?;
    let mut token = String::with_capacity(HEADER_JSON.len() * 2 + claims_json.len() * 4 / 3 + 96);
    URL_SAFE_NO_PAD.encode_string(HEADER_JSON, &mut token);
    token.push('.');
    URL_SAFE_NO_PAD.encode_string(&claims_json, &mut token);
    let sig = signer.sign_jwt(token.as_bytes())?;
    token.push('.');
    URL_SAFE_NO_PAD.encode_string(sig, &mut token);
    Ok(token)
}

/// Decodes a token and verifies its signature against its `iss` (strict Ed25519 verification).
pub fn decode_verify(token: &str) -> Result<Verified, JwtError> {
    if token.len() > MAX_TOKEN_LEN {
        return Err(JwtError::TooLarge);
    }
    let mut parts = token.split('.');
    let (Some(h), Some(c), Some(s), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
        return Err(JwtError::Shape);
    };
    check_header(&b64(h, "header")?)?;
    let claims: Map<String, Value> =
        serde_json::from_slice(&b64(c, "claims")?).map_err(|e| JwtError::Claims(e.to_string()))?;
    let sig: [u8; 64] = b64(s, "signature")?.try_into().map_err(|_| JwtError::Signature)?;

    let issuer = claims.get("iss").and_then(Value::as_str).ok_or_else(|| JwtError::Issuer(String::new()))?.to_owned();
    let (prefix, raw) = nkeys::from_public_key(&issuer).map_err(|_| JwtError::Issuer(issuer.clone()))?;
    let key = ed25519_dalek::VerifyingKey::from_bytes(&raw).map_err(|_| JwtError::Issuer(issuer.clone()))?;
    // The signed input is the first two segments exactly as transmitted.
    let signed = &token[..h.len() + 1 + c.len()];
    key.verify_strict(signed.as_bytes(), &ed25519_dalek::Signature::from_bytes(&sig))
        .map_err(|_| JwtError::Signature)?;
    Ok(Verified { issuer, issuer_type: KeyPairType::from(prefix), claims })
}

/// Decodes the claims without checking anything. For tests and diagnostics only.
pub fn decode_claims_unverified(token: &str) -> Result<Map<String, Value>, JwtError> {
    let c = token.split('.').nth(1).ok_or(JwtError::Shape)?;
    serde_json::from_slice(&b64(c, "claims")?).map_err(|e| JwtError::Claims(e.to_string()))
}

fn b64(segment: &str, what: &'static str) -> Result<Vec<u8>, JwtError> {
    URL_SAFE_NO_PAD.decode(segment).map_err(|_| JwtError::Encoding(what))
}

/// jwt/v2 header.go: `typ` equals "JWT" case-insensitively; `alg` lowercased is `ed25519-nkey`
/// (or the v1 `ed25519`).
fn check_header(bytes: &[u8]) -> Result<(), JwtError> {
    let header: Map<String, Value> = serde_json::from_slice(bytes).map_err(|e| JwtError::Header(e.to_string()))?;
    let typ = header.get("typ").and_then(Value::as_str).unwrap_or_default();
    let alg = header.get("alg").and_then(Value::as_str).unwrap_or_default().to_ascii_lowercase();
    if !typ.eq_ignore_ascii_case("JWT") || !(alg == "ed25519-nkey" || alg == "ed25519") {
        return Err(JwtError::Header(format!("typ {typ:?}, alg {alg:?}")));
    }
    Ok(())
}

/// A random `jti`. The server never checks it (the Go library uses a hash of the claims); it only
/// needs to be unique enough to tell tokens apart in logs.
pub fn new_jti() -> String {
    URL_SAFE_NO_PAD.encode(kv_schemas::random_bytes::<16>())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    fn claims(iss: &str) -> Map<String, Value> {
        let Value::Object(m) = json!({"iss": iss, "sub": "x", "nats": {"type": "user", "version": 2}}) else {
            unreachable!()
        };
        m
    }

    #[test]
    fn round_trip_and_exact_format() {
        let kp = KeyPair::new_account();
        let token = encode(&kp, &claims(&kp.public_key())).unwrap();
        let parts: Vec<&str> = token.split('.').collect();
        assert_eq!(parts.len(), 3);
        assert_eq!(parts[0], "eyJ0eXAiOiJKV1QiLCJhbGciOiJlZDI1NTE5LW5rZXkifQ");
        assert!(!token.contains('='), "padding in {token}");
        let sig = URL_SAFE_NO_PAD.decode(parts[2]).unwrap();
        assert_eq!(sig.len(), 64);
        // The signature covers "header.claims" as ASCII.
        kp.verify(format!("{}.{}", parts[0], parts[1]).as_bytes(), &sig).unwrap();

        let v = decode_verify(&token).unwrap();
        assert_eq!(v.issuer, kp.public_key());
        assert_eq!(v.issuer_type, KeyPairType::Account);
        assert_eq!(v.claims, claims(&kp.public_key()));
        assert_eq!(decode_claims_unverified(&token).unwrap(), v.claims);
    }

    #[test]
    fn rejects_tampering_and_wrong_issuer() {
        let kp = KeyPair::new_server();
        let token = encode(&kp, &claims(&kp.public_key())).unwrap();
        let parts: Vec<&str> = token.split('.').collect();

        // Claims swapped for others: signature no longer matches.
        let other = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims(&kp.public_key()).tap_sub("y")).unwrap());
        assert_eq!(decode_verify(&format!("{}.{}.{}", parts[0], other, parts[2])), Err(JwtError::Signature));

        // Signed by someone else but claiming kp as issuer.
        let forger = KeyPair::new_server();
        let forged = encode(&forger, &claims(&kp.public_key())).unwrap();
        assert_eq!(decode_verify(&forged), Err(JwtError::Signature));

        // Truncated signature, bad shapes, padding, oversize.
        assert_eq!(decode_verify(&format!("{}.{}.AAAA", parts[0], parts[1])), Err(JwtError::Signature));
        assert_eq!(decode_verify("a.b"), Err(JwtError::Shape));
        assert_eq!(decode_verify(&format!("{token}.x")), Err(JwtError::Shape));
        assert_eq!(
            decode_verify(&format!("{}=.{}.{}", parts[0], parts[1], parts[2])),
            Err(JwtError::Encoding("header"))
        );
        assert_eq!(decode_verify(&"a".repeat(MAX_TOKEN_LEN + 1)), Err(JwtError::TooLarge));
        assert_eq!(decode_verify(""), Err(JwtError::Shape));
    }

    #[test]
    fn rejects_foreign_headers_and_bad_issuers() {
        let kp = KeyPair::new_server();
        let body = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims(&kp.public_key())).unwrap());
        for header in [r#"{"typ":"JWT","alg":"EdDSA"}"#, r#"{"typ":"JWS","alg":"ed25519-nkey"}"#, "{}", "[]", "nope"] {
            let h = URL_SAFE_NO_PAD.encode(header);
            let input = format!("{h}.{body}");
            let sig = URL_SAFE_NO_PAD.encode(kp.sign(input.as_bytes()).unwrap());
            assert!(matches!(decode_verify(&format!("{input}.{sig}")), Err(JwtError::Header(_))), "{header}");
        }
        // Legacy alg and case-insensitive typ are accepted, as by the Go library.
        let h = URL_SAFE_NO_PAD.encode(r#"{"typ":"jwt","alg":"ED25519"}"#);
        let input = format!("{h}.{body}");
        let sig = URL_SAFE_NO_PAD.encode(kp.sign(input.as_bytes()).unwrap());
        decode_verify(&format!("{input}.{sig}")).unwrap();

        for iss in [
            Value::Null,
            json!("SUACSSL3UAHUDXKFSNVUZRF5UHPMWZ6BFDTJ7M6USDXIEDNPPQYYYCU3VY"),
            json!("UNOTAKEY"),
            json!(7),
        ] {
            let mut c = claims("");
            c.insert("iss".into(), iss.clone());
            let token = encode(&kp, &c).unwrap();
            assert!(matches!(decode_verify(&token), Err(JwtError::Issuer(_))), "{iss}");
        }
        // Claims that are not an object.
        let c = URL_SAFE_NO_PAD.encode("[1,2]");
        let input = format!("{}.{c}", URL_SAFE_NO_PAD.encode(HEADER_JSON));
        let sig = URL_SAFE_NO_PAD.encode(kp.sign(input.as_bytes()).unwrap());
        assert!(matches!(decode_verify(&format!("{input}.{sig}")), Err(JwtError::Claims(_))));
    }

    #[test]
    fn public_only_key_cannot_sign() {
        let kp = KeyPair::from_public_key(&KeyPair::new_account().public_key()).unwrap();
        assert!(matches!(encode(&kp, &claims("x")), Err(JwtError::Sign(_))));
        assert!(matches!(fast_signer(&kp), Err(JwtError::Sign(_))));
    }

    #[test]
    fn fast_signer_is_the_same_key() {
        let kp = KeyPair::new_account();
        let fast = fast_signer(&kp).unwrap();
        let c = claims(&kp.public_key());
        // Ed25519 is deterministic: both paths give the identical token.
        assert_eq!(encode(&fast, &c).unwrap(), encode(&kp, &c).unwrap());
        assert_eq!(decode_verify(&encode(&fast, &c).unwrap()).unwrap().issuer, kp.public_key());
    }

    #[test]
    fn jti_is_random() {
        assert_ne!(new_jti(), new_jti());
        assert_eq!(new_jti().len(), 22);
    }

    trait TapSub {
        fn tap_sub(self, s: &str) -> Self;
    }
    impl TapSub for Map<String, Value> {
        fn tap_sub(mut self, s: &str) -> Self {
            self.insert("sub".into(), json!(s));
            self
        }
    }
}
