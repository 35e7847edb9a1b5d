//! `openapi.json`'s schemas against the Rust types: each documented body is checked against a
//! value the real type (or the real builder) serialises, both ways — the value satisfies the
//! schema, and the schema's `properties` are exactly the value's keys, so a field added,
//! renamed or dropped on either side fails here. The route table is checked in `routes.rs`.

use ed25519_dalek::SigningKey;
use kv_schemas::api::{AppendReply, ChainReply, ClientConfig, ErrorBody, ErrorDetail, ManifestPutReply};
use kv_schemas::api::{RegisterReply, UserRecord, UserView};
use kv_schemas::sigchain::{ChainState, Endpoint, Op, SharedFiles, build_link, parse_link};
use kv_schemas::{ErrorCode, Handle, PublicKey, manifest, register};
use serde::Serialize;
use serde_json::{Map, Value};

const OPENAPI: &str = include_str!("../../openapi.json");

fn schemas() -> Map<String, Value> {
    let doc: Value = serde_json::from_str(OPENAPI).unwrap();
    doc["components"]["schemas"].as_object().unwrap().clone()
}

/// Checks `value` against `schema` (the subset of JSON Schema the document uses; any other
/// keyword is an error, so the checker never passes something it did not look at).
fn check(all: &Map<String, Value>, schema: &Value, value: &Value, at: &str) -> Result<(), String> {
    macro_rules! ensure {
        ($cond:expr, $($msg:tt)*) => {
            if !$cond {
                return Err(format!($($msg)*));
            }
        };
    }
    let s = schema.as_object().ok_or(format!("{at}: schema is not an object"))?;
    if let Some(r) = s.get("$ref") {
        let name = r.as_str().and_then(|r| r.strip_prefix("#/components/schemas/")).ok_or(format!("{at}: {r}"))?;
        return check(all, &all[name], value, &format!("{at}→{name}"));
    }
    for (k, v) in s {
        match k.as_str() {
            "type" => {
                let ok = match v.as_str().unwrap_or_default() {
                    "object" => value.is_object(),
                    "array" => value.is_array(),
                    "string" => value.is_string(),
                    "integer" => value.is_u64() || value.is_i64(),
                    "boolean" => value.is_boolean(),
                    "null" => value.is_null(),
                    other => return Err(format!("{at}: unsupported type {other}")),
                };
                ensure!(ok, "{at}: {value} is not of type {v}");
            }
            "required" => {
                for name in v.as_array().into_iter().flatten().filter_map(Value::as_str) {
                    ensure!(value.get(name).is_some(), "{at}: {name} is required but missing in {value}");
                }
            }
            "properties" => {
                for (name, sub) in v.as_object().into_iter().flatten() {
                    if let Some(x) = value.get(name) {
                        check(all, sub, x, &format!("{at}.{name}"))?;
                    }
                }
            }
            "additionalProperties" => {
                let known = s.get("properties").and_then(Value::as_object);
                for (name, x) in value.as_object().into_iter().flatten() {
                    if known.is_none_or(|p| !p.contains_key(name)) {
                        check(all, v, x, &format!("{at}.{name}"))?;
                    }
                }
            }
            "items" => {
                for (i, x) in value.as_array().into_iter().flatten().enumerate() {
                    check(all, v, x, &format!("{at}[{i}]"))?;
                }
            }
            "oneOf" => {
                let alts = v.as_array().ok_or(format!("{at}: oneOf is not a list"))?;
                let matching = alts.iter().filter(|alt| check(all, alt, value, at).is_ok()).count();
                ensure!(matching == 1, "{at}: {value} matches {matching} of {v}, not exactly one");
            }
            "enum" => ensure!(v.as_array().is_some_and(|e| e.contains(value)), "{at}: {value} is not one of {v}"),
            "const" => ensure!(value == v, "{at}: {value} is not {v}"),
            "minimum" => {
                let at_least = value.as_f64().zip(v.as_f64()).is_some_and(|(a, b)| a >= b);
                ensure!(at_least, "{at}: {value} < {v}")
            }
            "pattern" => {
                let text = value.as_str().ok_or(format!("{at}: {value} is not a string"))?;
                let hex64 = kv_schemas::encoding::is_hash;
                let ok = match v.as_str().unwrap_or_default() {
                    "^ed25519:[0-9a-f]{64}$" => text.strip_prefix("ed25519:").is_some_and(hex64),
                    "^[0-9a-f]{64}$" => hex64(text),
                    other => return Err(format!("{at}: teach this test the pattern {other}")),
                };
                ensure!(ok, "{at}: {text} does not match {v}");
            }
            "description" | "example" | "examples" | "format" => {}
            other => return Err(format!("{at}: unsupported schema keyword {other}")),
        }
    }
    Ok(())
}

/// `value` satisfies the named schema, and the schema lists exactly the keys the type writes.
fn agrees<T: Serialize>(name: &str, value: &T) {
    let all = schemas();
    let value = serde_json::to_value(value).unwrap();
    check(&all, &all[name], &value, name).unwrap();
    let documented: Vec<&String> = all[name]["properties"].as_object().unwrap().keys().collect();
    let written: Vec<&String> = value.as_object().unwrap().keys().collect();
    assert_eq!(documented, written, "{name}: openapi.json and the Rust type name different fields");
}

fn key(n: u8) -> SigningKey {
    SigningKey::from_bytes(&[n; 32])
}

fn link_value(sk: &SigningKey, op: &Op) -> Value {
    serde_json::from_slice(&build_link(sk, 1, None, 1_800_000_000_000, op).unwrap()).unwrap()
}

#[test]
fn reply_schemas_match_the_rust_types() {
    let alice = key(1);
    let pk = PublicKey::of(&alice);
    let handle = Handle::new("alice", "kez.lat").unwrap();
    agrees("UserRecord", &UserRecord { handle: handle.clone(), key: pk, registered_at: 1 });
    agrees("RegisterReply", &RegisterReply { handle: handle.clone(), key: pk, created: true });
    agrees("AppendReply", &AppendReply { seqno: 1, link_id: "a".repeat(64) });
    agrees("ManifestPutReply", &ManifestPutReply { hash: "b".repeat(64), owner: pk, seq: 1 });
    let endpoint = Op::AddEndpoint(Endpoint::iroh_wave1(&PublicKey::of(&key(2))));
    agrees("ChainReply", &ChainReply { key: pk, links: vec![link_value(&alice, &endpoint)], more: true });
    agrees(
        "UserView",
        &UserView {
            handle,
            primary: pk,
            sigchain_url: "https://kez.lat/v1/sigchains/ed25519/00".into(),
            endpoints: vec![],
        },
    );
    agrees(
        "ClientConfig",
        &ClientConfig {
            domain: "kez.lat".into(),
            nats_url: "nats://127.0.0.1:4222".into(),
            nats_ws_url: "ws://127.0.0.1:4280".into(),
            inbox_stream: "KEZ_INBOX".into(),
            inbox_max_age_ms: 1,
            version: "0.1.0".into(),
            protocol: 1,
        },
    );
}

#[test]
fn the_chain_state_schema_matches_derived_state_both_empty_and_full() {
    let alice = key(3);
    let pk = PublicKey::of(&alice);
    let mut state = ChainState::empty(pk);
    agrees("ChainState", &state);
    let endpoint = Op::AddEndpoint(Endpoint::iroh_wave1(&PublicKey::of(&key(4))));
    let one = parse_link(&build_link(&alice, 1, None, 1_800_000_000_000, &endpoint).unwrap()).unwrap();
    state.apply(&one).unwrap();
    let shared = Op::SetSharedFiles(SharedFiles { manifest: "c".repeat(64), manifest_seq: 1, size: 10 });
    let two = parse_link(&build_link(&alice, 2, Some(&one.link_id), 1_800_000_000_001, &shared).unwrap()).unwrap();
    state.apply(&two).unwrap();
    agrees("ChainState", &state);
}

#[test]
fn signed_object_schemas_match_what_the_builders_sign() {
    let alice = key(5);
    let handle = Handle::new("alice", "kez.lat").unwrap();
    let reg: Value = serde_json::from_slice(&register::build(&alice, &handle, 1, [0; 16]).unwrap()).unwrap();
    agrees("Registration", &reg);
    agrees("Link", &link_value(&alice, &Op::AddEndpoint(Endpoint::iroh_wave1(&PublicKey::of(&key(6))))));
    let m: Value = serde_json::from_slice(&manifest::build(&alice, 1, 1, &[]).unwrap()).unwrap();
    agrees("Manifest", &m);
}

#[test]
fn the_error_schema_lists_every_error_code() {
    let body = ErrorBody { error: ErrorDetail { code: "handle_taken".into(), message: "taken".into() } };
    agrees("ErrorBody", &body);
    let all = schemas();
    let documented: std::collections::BTreeSet<&str> =
        all["ErrorBody"]["properties"]["error"]["properties"]["code"]["enum"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c.as_str().unwrap())
            .collect();
    let codes: std::collections::BTreeSet<&str> = ErrorCode::ALL.iter().map(|c| c.as_str()).collect();
    // Codes only the inbox service and clients use (NATS user requests, opening messages, group
    // logs): no /v1 route can answer them. A new code must be documented or listed here.
    let not_http: std::collections::BTreeSet<&str> = [
        "decrypt_failed",
        "group_fork",
        "group_full",
        "invalid_group_change",
        "not_group_admin",
        "not_group_member",
        "unknown_group_state",
        "device_limit",
        "device_not_found",
        "device_removed",
        "enc_mismatch",
        "inbox_full",
        "store_full",
        "wrong_recipient",
    ]
    .into();
    let expected: std::collections::BTreeSet<&str> = codes.difference(&not_http).copied().collect();
    assert_eq!(documented, expected, "openapi.json's error codes and ErrorCode differ");
}
