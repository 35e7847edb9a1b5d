//! RFC 8785 canonical JSON and the KEZ JSON profile (PROTOCOL.md §1.1).
//!
//! Signed objects must arrive byte-identical to their canonical form: the
//! receiver parses with duplicate-key rejection, re-serialises and compares.
//! That leaves exactly one byte string per object, so a signature can never be
//! checked over one reading of a message and acted on under another.

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

use crate::error::{ErrorCode, KezError, err};

/// The largest integer the profile allows (2^53 − 1, exact in every JSON parser).
pub const MAX_SAFE_INTEGER: u64 = (1 << 53) - 1;

/// Serialises a value per RFC 8785. Fails (`internal`) for what RFC 8785 cannot express,
/// such as a non-finite float: a signer must never fall back to other bytes.
pub fn canonicalize<T: serde::Serialize>(value: &T) -> Result<Vec<u8>, KezError> {
    serde_json_canonicalizer::to_vec(value)
        .map_err(|e| err(ErrorCode::Internal, format!("value has no RFC 8785 canonical form: {e}")))
}

/// The map inside a JSON object built by the caller (`internal` if it is not an object).
pub fn into_object(value: Value) -> Result<Map<String, Value>, KezError> {
    match value {
        Value::Object(m) => Ok(m),
        _ => Err(err(ErrorCode::Internal, "expected a JSON object")),
    }
}

/// Canonicalises general JSON text (any numbers, duplicates rejected).
pub fn canonicalize_text(text: &str) -> Result<Vec<u8>, KezError> {
    let v: GeneralValue = serde_json::from_str(text).map_err(json_error)?;
    canonicalize(&v.0)
}

/// Parses bytes under the KEZ profile and requires them to be canonical.
pub fn parse_canonical(bytes: &[u8]) -> Result<Value, KezError> {
    let value = parse_profile(bytes)?;
    if canonicalize(&value)? != bytes {
        return Err(err(ErrorCode::NotCanonical, "object is not in RFC 8785 canonical form"));
    }
    Ok(value)
}

/// Parses bytes under the KEZ profile without requiring canonical form.
pub fn parse_profile(bytes: &[u8]) -> Result<Value, KezError> {
    let v: ProfileValue = serde_json::from_slice(bytes).map_err(json_error)?;
    Ok(v.0)
}

fn json_error(e: serde_json::Error) -> KezError {
    err(ErrorCode::InvalidJson, format!("invalid JSON: {e}"))
}

/// A JSON value whose objects have no duplicate keys (numbers unrestricted).
struct GeneralValue(Value);
/// A JSON value that satisfies the KEZ profile.
struct ProfileValue(Value);

#[derive(Clone, Copy)]
struct StrictVisitor {
    profile: bool,
}

impl<'de> Deserialize<'de> for GeneralValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(StrictVisitor { profile: false }).map(GeneralValue)
    }
}

impl<'de> Deserialize<'de> for ProfileValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(StrictVisitor { profile: true }).map(ProfileValue)
    }
}

struct Seeded(StrictVisitor);

impl<'de> de::DeserializeSeed<'de> for Seeded {
    type Value = Value;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self.0)
    }
}

impl<'de> Visitor<'de> for StrictVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Value, E> {
        if self.profile && v > MAX_SAFE_INTEGER {
            return Err(E::custom("integer above 2^53-1"));
        }
        Ok(Value::from(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Value, E> {
        if self.profile && v < 0 {
            return Err(E::custom("negative numbers are not allowed"));
        }
        Ok(Value::from(v))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        if self.profile {
            return Err(E::custom("floating-point numbers are not allowed"));
        }
        serde_json::Number::from_f64(v).map(Value::Number).ok_or_else(|| E::custom("non-finite number"))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut out = Vec::new();
        while let Some(v) = seq.next_element_seed(Seeded(self))? {
            out.push(v);
        }
        Ok(Value::Array(out))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if self.profile && !is_profile_key(&key) {
                return Err(de::Error::custom(format!("object key {key:?} is not [a-z0-9_]{{1,32}}")));
            }
            if out.contains_key(&key) {
                return Err(de::Error::custom(format!("duplicate key {key:?}")));
            }
            let v = map.next_value_seed(Seeded(self))?;
            out.insert(key, v);
        }
        Ok(Value::Object(out))
    }
}

fn is_profile_key(k: &str) -> bool {
    (1..=32).contains(&k.len()) && k.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

/// Typed access to the fields of a parsed object, with errors that name the field.
pub struct Fields<'a> {
    what: &'static str,
    map: &'a Map<String, Value>,
}

impl<'a> Fields<'a> {
    /// Views `value` as an object with exactly the keys `required` plus any of
    /// `optional`; anything else is `invalid_request`.
    pub fn exact(value: &'a Value, what: &'static str, required: &[&str], optional: &[&str]) -> Result<Self, KezError> {
        let map =
            value.as_object().ok_or_else(|| err(ErrorCode::InvalidRequest, format!("{what} must be a JSON object")))?;
        for k in required {
            if !map.contains_key(*k) {
                return Err(err(ErrorCode::InvalidRequest, format!("{what}: missing field {k:?}")));
            }
        }
        for k in map.keys() {
            if !required.contains(&k.as_str()) && !optional.contains(&k.as_str()) {
                return Err(err(ErrorCode::InvalidRequest, format!("{what}: unexpected field {k:?}")));
            }
        }
        Ok(Self { what, map })
    }

    /// The raw value of a field, if present.
    pub fn get(&self, k: &str) -> Option<&'a Value> {
        self.map.get(k)
    }

    /// A string field.
    pub fn str(&self, k: &str) -> Result<&'a str, KezError> {
        self.map.get(k).and_then(Value::as_str).ok_or_else(|| self.wrong(k, "a string"))
    }

    /// An optional string field.
    pub fn opt_str(&self, k: &str) -> Result<Option<&'a str>, KezError> {
        match self.map.get(k) {
            None => Ok(None),
            Some(v) => v.as_str().map(Some).ok_or_else(|| self.wrong(k, "a string")),
        }
    }

    /// A non-negative integer field.
    pub fn u64(&self, k: &str) -> Result<u64, KezError> {
        self.map.get(k).and_then(Value::as_u64).ok_or_else(|| self.wrong(k, "a non-negative integer"))
    }

    /// A boolean field.
    pub fn bool(&self, k: &str) -> Result<bool, KezError> {
        self.map.get(k).and_then(Value::as_bool).ok_or_else(|| self.wrong(k, "a boolean"))
    }

    /// An object field.
    pub fn object(&self, k: &str) -> Result<&'a Value, KezError> {
        match self.map.get(k) {
            Some(v @ Value::Object(_)) => Ok(v),
            _ => Err(self.wrong(k, "an object")),
        }
    }

    /// An array field.
    pub fn array(&self, k: &str) -> Result<&'a Vec<Value>, KezError> {
        self.map.get(k).and_then(Value::as_array).ok_or_else(|| self.wrong(k, "an array"))
    }

    fn wrong(&self, k: &str, expected: &str) -> KezError {
        err(ErrorCode::InvalidRequest, format!("{}: field {k:?} must be {expected}", self.what))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profile_rejects_duplicates_floats_negatives_and_big_ints() {
        assert_eq!(parse_profile(br#"{"a":1,"a":2}"#).unwrap_err().code, ErrorCode::InvalidJson);
        assert!(parse_profile(br#"{"a":1.5}"#).is_err());
        assert!(parse_profile(br#"{"a":-1}"#).is_err());
        assert!(parse_profile(br#"{"a":9007199254740992}"#).is_err());
        assert!(parse_profile(br#"{"a":9007199254740991}"#).is_ok());
        assert!(parse_profile(br#"{"A":1}"#).is_err());
        assert!(parse_profile(br#"{"b":{"x":[1,{"y":2,"y":3}]}}"#).is_err());
    }

    #[test]
    fn canonical_check() {
        assert!(parse_canonical(br#"{"a":1,"b":"x"}"#).is_ok());
        assert_eq!(parse_canonical(br#"{"b":"x","a":1}"#).unwrap_err().code, ErrorCode::NotCanonical);
        assert_eq!(parse_canonical(br#"{"a": 1}"#).unwrap_err().code, ErrorCode::NotCanonical);
    }

    #[test]
    fn general_canonicalization_sorts_by_utf16() {
        let out = canonicalize_text(r#"{"\ud83d\ude00":1,"\uff61":2,"a":1e21,"b":-0}"#).unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), "{\"a\":1e+21,\"b\":0,\"😀\":1,\"｡\":2}");
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_crash() {
        let deep = "[".repeat(100_000);
        assert!(parse_profile(deep.as_bytes()).is_err());
    }
}
