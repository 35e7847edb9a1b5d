//! Helpers shared by the vector tests: the deterministic JSON printer, the
//! regenerate-or-compare step and small accessors for stored cases.
#![allow(dead_code, clippy::unwrap_used)]

use std::path::PathBuf;

use serde_json::Value;

/// The folder of the shared vectors.
pub fn testdata_dir() -> PathBuf {
    let here = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    if here.ends_with("kv-schemas") {
        here.join("testdata")
    } else {
        // Included from another crate of the workspace (kez-client's tests).
        here.join("../../kv-schemas/testdata")
    }
}

/// Whether this run regenerates the files (`KEZ_UPDATE_VECTORS=1`).
pub fn updating() -> bool {
    std::env::var("KEZ_UPDATE_VECTORS").is_ok_and(|v| v == "1")
}

/// Pretty JSON with sorted keys and two-space indentation, independent of
/// serde_json's `preserve_order` feature, ending in a newline.
pub fn pretty(v: &Value) -> String {
    let mut out = String::new();
    write_value(v, 0, &mut out);
    out.push('\n');
    out
}

fn indent(n: usize, out: &mut String) {
    for _ in 0..n {
        out.push_str("  ");
    }
}

fn write_value(v: &Value, depth: usize, out: &mut String) {
    match v {
        Value::Object(m) if m.is_empty() => out.push_str("{}"),
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            out.push_str("{\n");
            for (i, k) in keys.iter().enumerate() {
                indent(depth + 1, out);
                out.push_str(&serde_json::to_string(k).unwrap());
                out.push_str(": ");
                write_value(&m[*k], depth + 1, out);
                if i + 1 < keys.len() {
                    out.push(',');
                }
                out.push('\n');
            }
            indent(depth, out);
            out.push('}');
        }
        Value::Array(a) if a.is_empty() => out.push_str("[]"),
        Value::Array(a) if a.iter().all(|x| !x.is_object() && !x.is_array()) && a.len() <= 8 && short(a) => {
            out.push('[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_value(x, depth, out);
            }
            out.push(']');
        }
        Value::Array(a) => {
            out.push_str("[\n");
            for (i, x) in a.iter().enumerate() {
                indent(depth + 1, out);
                write_value(x, depth + 1, out);
                if i + 1 < a.len() {
                    out.push(',');
                }
                out.push('\n');
            }
            indent(depth, out);
            out.push(']');
        }
        other => out.push_str(&serde_json::to_string(other).unwrap()),
    }
}

fn short(a: &[Value]) -> bool {
    a.iter().map(|x| serde_json::to_string(x).unwrap().len()).sum::<usize>() < 100
}

/// Reads a stored vector file as text.
pub fn read_text(file: &str) -> String {
    let path = testdata_dir().join(file);
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (run with KEZ_UPDATE_VECTORS=1 to create it)", path.display()))
}

/// Reads and parses a stored vector file.
pub fn read(file: &str) -> Value {
    serde_json::from_str(&read_text(file)).unwrap_or_else(|e| panic!("{file}: {e}"))
}

/// In update mode writes `generated`; otherwise requires the stored file to
/// be byte-identical to it.
pub fn write_or_compare(file: &str, generated: &Value) {
    let text = pretty(generated);
    let path = testdata_dir().join(file);
    if updating() {
        std::fs::write(&path, &text).unwrap();
        return;
    }
    let stored = read_text(file);
    if stored != text {
        let line = stored.lines().zip(text.lines()).position(|(a, b)| a != b).map_or_else(
            || format!("lengths differ ({} vs {} bytes)", stored.len(), text.len()),
            |i| {
                format!(
                    "first difference at line {}:\n  stored:    {}\n  generated: {}",
                    i + 1,
                    stored.lines().nth(i).unwrap_or("").chars().take(200).collect::<String>(),
                    text.lines().nth(i).unwrap_or("").chars().take(200).collect::<String>()
                )
            },
        );
        panic!(
            "{file} is not what the code generates; {line}\n(if PROTOCOL.md changed on purpose, regenerate with KEZ_UPDATE_VECTORS=1)"
        );
    }
}

/// A string field of a case.
pub fn s<'a>(case: &'a Value, k: &str) -> &'a str {
    case.get(k).and_then(Value::as_str).unwrap_or_else(|| panic!("case {}: missing string {k:?}", name(case)))
}

/// An integer field of a case.
pub fn u(case: &Value, k: &str) -> u64 {
    case.get(k).and_then(Value::as_u64).unwrap_or_else(|| panic!("case {}: missing integer {k:?}", name(case)))
}

/// A boolean field of a case.
pub fn b(case: &Value, k: &str) -> bool {
    case.get(k).and_then(Value::as_bool).unwrap_or_else(|| panic!("case {}: missing bool {k:?}", name(case)))
}

/// An array field.
pub fn arr<'a>(v: &'a Value, k: &str) -> &'a Vec<Value> {
    v.get(k).and_then(Value::as_array).unwrap_or_else(|| panic!("missing array {k:?}"))
}

/// The case name.
pub fn name(case: &Value) -> String {
    case.get("name").and_then(Value::as_str).unwrap_or("<unnamed>").to_string()
}

/// Decodes a lowercase hex field.
pub fn hx(case: &Value, k: &str) -> Vec<u8> {
    let t = s(case, k);
    assert!(!t.bytes().any(|c| c.is_ascii_uppercase()), "case {}: {k} must be lowercase hex", name(case));
    hex::decode(t).unwrap_or_else(|e| panic!("case {}: {k}: {e}", name(case)))
}

/// Decodes a 32-byte hex field.
pub fn hx32(case: &Value, k: &str) -> [u8; 32] {
    hx(case, k).try_into().unwrap_or_else(|_| panic!("case {}: {k} must be 32 bytes", name(case)))
}

/// Decodes a 16-byte hex field.
pub fn hx16(case: &Value, k: &str) -> [u8; 16] {
    hx(case, k).try_into().unwrap_or_else(|_| panic!("case {}: {k} must be 16 bytes", name(case)))
}

/// Bytes given either as `k` (UTF-8 text) or `k_hex`.
pub fn bytes_of(case: &Value, k: &str) -> Vec<u8> {
    if let Some(t) = case.get(k).and_then(Value::as_str) {
        t.as_bytes().to_vec()
    } else {
        hx(case, &format!("{k}_hex"))
    }
}

/// Checks that every case in an array has a unique, non-empty name.
pub fn unique_names(cases: &[Value], what: &str) {
    let mut seen = std::collections::HashSet::new();
    for c in cases {
        let n = name(c);
        assert!(!n.is_empty() && n != "<unnamed>", "{what}: case without name");
        assert!(seen.insert(n.clone()), "{what}: duplicate case name {n}");
    }
}

/// The plaintext generator `{"len": N, "byte_i": "i % 251"}`.
pub fn gen_plain(spec: &Value) -> Vec<u8> {
    assert_eq!(spec.get("byte_i").and_then(Value::as_str), Some("i % 251"), "unknown generator {spec}");
    let len = spec.get("len").and_then(Value::as_u64).unwrap() as usize;
    (0..len).map(|i| (i % 251) as u8).collect()
}

/// The generator value for a length.
pub fn plain_spec(len: usize) -> Value {
    serde_json::json!({ "len": len, "byte_i": "i % 251" })
}
