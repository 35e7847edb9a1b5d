//! The shared JSON test vectors in `kv-schemas/testdata/` (format in its
//! README.md). Each test regenerates its file in memory from fixed inputs
//! and requires the stored file to be byte-identical, and independently reads
//! every stored case and checks that the code produces / accepts it, or fails
//! with the stated code. `KEZ_UPDATE_VECTORS=1` rewrites the files.
#![allow(clippy::unwrap_used, clippy::too_many_lines, clippy::type_complexity)]

mod common;

use std::collections::BTreeSet;

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Nonce};
use curve25519_dalek::constants::EIGHT_TORSION;
use curve25519_dalek::edwards::{CompressedEdwardsY, EdwardsPoint};
use curve25519_dalek::scalar::Scalar;
use ed25519_dalek::SigningKey;
use hkdf::Hkdf;
use kv_schemas::encoding::{b64_decode, b64_encode, hex_encode};
use kv_schemas::envelope::{self, Body};
use kv_schemas::error::{ErrorCode, KezError};
use kv_schemas::files::{self, Entry, FileMeta, Wrap};
use kv_schemas::handle::{Handle, RESERVED};
use kv_schemas::jcs::{canonicalize, canonicalize_text, parse_canonical, parse_profile};
use kv_schemas::keys::{PublicKey, sign_raw};
use kv_schemas::sig::{Purpose, signing_input};
use kv_schemas::sigchain::{ChainState, IrohRole, endpoint_key, endpoint_seed, parse_link};
use kv_schemas::subjects::DeviceId;
use kv_schemas::{manifest, nonce, register, safety};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256, Sha512};

use common::*;

// ------------------------------------------------------------------ harness

/// Every vector file, and who checks it. A file not listed here fails
/// `every_vector_file_is_handled`.
const FILES: &[&str] = &[
    "keys.json", // checked here (keys) and by kez-client's identity_vectors (mnemonics, nkeys); generated there
    "nonces.json",
    "ed25519.json",
    "signatures.json",
    "jcs.json",
    "handles.json",
    "register.json",
    "sigchain.json",
    "envelopes.json",
    "files.json",
    "manifests.json",
    "safety.json",
    "iroh_endpoints.json",
];

const ALICE: [u8; 32] = [1; 32];
const BOB: [u8; 32] = [2; 32];
const CAROL: [u8; 32] = [3; 32];
const NOW: u64 = 1_800_000_000_000;
const DAY: u64 = 86_400_000;
const HOME: &str = "kez.lat";

fn sk(seed: [u8; 32]) -> SigningKey {
    SigningKey::from_bytes(&seed)
}

fn pk(seed: [u8; 32]) -> PublicKey {
    PublicKey::of(&sk(seed))
}

fn seed_of(case: &Value, k: &str) -> SigningKey {
    sk(hx32(case, k))
}

fn key_of(case: &Value, k: &str) -> PublicKey {
    s(case, k).parse().unwrap_or_else(|e| panic!("case {}: {k}: {e}", name(case)))
}

fn code_of<T>(r: Result<T, KezError>) -> String {
    match r {
        Ok(_) => "ok".into(),
        Err(e) => e.code.as_str().into(),
    }
}

/// Asserts the stored `error` of a case is a known code and is what `r` gives.
fn expect_code<T>(case: &Value, r: Result<T, KezError>) {
    let want = s(case, "error");
    assert!(ErrorCode::parse(want).is_some(), "case {}: unknown code {want}", name(case));
    let got = match r {
        Ok(_) => "ok".to_string(),
        Err(e) => {
            if e.code.as_str() != want {
                panic!("case {}: expected {want}, got {} ({})", name(case), e.code, e.message);
            }
            return;
        }
    };
    panic!("case {}: expected {want}, got {got}", name(case));
}

/// At generation time: the construction must fail exactly as intended.
fn intend<T>(what: &str, r: Result<T, KezError>, code: &str) -> String {
    let got = code_of(r);
    assert_eq!(got, code, "generator: case {what} does not fail as intended");
    got
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8(bytes.to_vec()).unwrap()
}

fn obj(v: Value) -> Map<String, Value> {
    v.as_object().cloned().unwrap()
}

/// Signs `unsigned` (which carries its own `type`) for `purpose` with `signer`
/// and returns the canonical bytes. Unlike `sig::sign_object` it leaves `type`
/// alone, so wrong-type objects can be built.
fn sign_as(signer: &SigningKey, purpose: Purpose, unsigned: &Map<String, Value>) -> Vec<u8> {
    let sig = sign_raw(signer, &signing_input(purpose, unsigned));
    let mut m = unsigned.clone();
    m.insert("sig".into(), Value::String(b64_encode(&sig)));
    canonicalize(&Value::Object(m))
}

fn run(file: &str, generate: fn() -> Value, check: fn(&Value)) {
    let generated = generate();
    if updating() {
        write_or_compare(file, &generated);
    }
    let stored = read(file);
    check_common(file, &stored);
    check(&stored);
    write_or_compare(file, &generated);
}

/// Every file: a description, and unique case names in every array of cases.
fn check_common(file: &str, v: &Value) {
    assert!(v.get("description").and_then(Value::as_str).is_some_and(|d| !d.is_empty()), "{file}: description");
    for (k, x) in v.as_object().unwrap() {
        if let Some(a) = x.as_array()
            && a.iter().all(Value::is_object)
        {
            unique_names(a, &format!("{file}/{k}"));
        }
    }
}

#[test]
fn every_vector_file_is_handled() {
    let on_disk: BTreeSet<String> = std::fs::read_dir(testdata_dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".json"))
        .collect();
    let listed: BTreeSet<String> = FILES.iter().map(|s| s.to_string()).collect();
    assert_eq!(
        on_disk, listed,
        "every *.json in testdata/ must be generated and checked (and every listed file must exist)"
    );
    let readme = std::fs::read_to_string(testdata_dir().join("README.md")).unwrap();
    for f in FILES {
        assert!(readme.contains(&format!("## {f}")), "README.md does not document {f}");
    }
}

#[test]
fn printer_is_deterministic_and_round_trips() {
    let v = json!({"b": [1, "x\u{2028}\n\"é"], "a": {"z": null, "y": []}, "c": {}});
    let p = pretty(&v);
    assert_eq!(serde_json::from_str::<Value>(&p).unwrap(), v);
    assert!(p.find("\"a\"").unwrap() < p.find("\"b\"").unwrap());
}

// ---------------------------------------------------------------- jcs.json

fn gen_jcs() -> Value {
    let general: &[(&str, &str)] = &[
        (
            "rfc8785_example",
            "{\n  \"numbers\": [333333333.33333329, 1E30, 4.50, 2e-3, 0.000000000000000000000000001],\n  \"string\": \"\\u20ac$\\u000F\\u000aA'\\u0042\\u0022\\u005c\\\\\\\"\\/\",\n  \"literals\": [null, true, false]\n}",
        ),
        (
            "rfc8785_key_sorting",
            "{\"\\u20ac\":\"Euro Sign\",\"\\r\":\"Carriage Return\",\"\\ufb33\":\"Hebrew Letter Dalet With Dagesh\",\"1\":\"One\",\"\\ud83d\\ude00\":\"Emoji: Grinning Face\",\"\\u0080\":\"Control\",\"\\u00f6\":\"Latin Small Letter O With Diaeresis\"}",
        ),
        ("utf16_order_emoji_before_ff61", "{\"\\uff61\":3,\"\\ud83d\\ude00\":2,\"a\":1,\"B\":0,\"\\u00e9\":4}"),
        ("numbers_integral_floats", "[1.0, -1.0, 0.0, 100.00, 1e2, 1E+2]"),
        ("numbers_exponent_switch", "[1e20, 1e21, 1e-6, 1e-7, 123e18, 0.000001, 0.0000001]"),
        ("numbers_negative_zero", "[-0, -0.0, 0e5]"),
        (
            "numbers_shortest_round_trip",
            "[0.1, 0.2, 0.30000000000000004, 1.5, -1.5, 3.14159, 5e-324, 1.7976931348623157e308]",
        ),
        (
            "numbers_large_integers",
            "[9007199254740991, 9007199254740992, 9007199254740993, 18446744073709551615, 123456789012345678901234567890, -9007199254740991]",
        ),
        ("escapes_control_characters", "[\"\\u0000\\u0001\\u0007\\u001f\", \"\\b\\f\\n\\r\\t\", \"\\u007f\"]"),
        ("escapes_line_separators_stay_raw", "[\"\\u2028\\u2029\"]"),
        ("escapes_quote_backslash_slash", "[\"\\\"\", \"\\\\\", \"\\/\", \"a/b\"]"),
        ("non_ascii_as_utf8", "[\"\\u00e9\", \"\\u20ac\", \"\\ud83d\\ude00\", \"é€😀\"]"),
        ("nested_and_empty", "{\"b\":[{\"z\":1,\"y\":{\"d\":null,\"c\":[]}}],\"a\":{},\"c\":[[],[{}]]}"),
        ("insignificant_whitespace", " \t\n\r{ \"a\" : [ 1 , 2 ] ,\n\"b\":true } \n"),
        ("top_level_literals", "[true, false, null, \"\", 0]"),
        ("top_level_string", "\"x\""),
    ];
    let canon: Vec<Value> = general
        .iter()
        .map(|(n, input)| json!({"name": n, "input": input, "output": text(&canonicalize_text(input).unwrap())}))
        .collect();
    // Spot checks against RFC 8785's published outputs.
    assert_eq!(
        canon[0]["output"],
        "{\"literals\":[null,true,false],\"numbers\":[333333333.3333333,1e+30,4.5,0.002,1e-27],\"string\":\"€$\\u000f\\nA'B\\\"\\\\\\\\\\\"/\"}"
    );
    assert_eq!(
        canon[1]["output"],
        "{\"\\r\":\"Carriage Return\",\"1\":\"One\",\"\u{80}\":\"Control\",\"ö\":\"Latin Small Letter O With Diaeresis\",\"€\":\"Euro Sign\",\"😀\":\"Emoji: Grinning Face\",\"\u{fb33}\":\"Hebrew Letter Dalet With Dagesh\"}"
    );
    assert_eq!(canon[4]["output"], "[100000000000000000000,1e+21,0.000001,1e-7,123000000000000000000,0.000001,1e-7]");

    let general_invalid: &[(&str, &str)] = &[
        ("duplicate_key", "{\"a\":1,\"a\":2}"),
        ("duplicate_key_nested", "[{\"b\":{\"x\":1,\"x\":1}}]"),
        ("lone_high_surrogate", "[\"\\ud800\"]"),
        ("lone_low_surrogate", "[\"\\udc00x\"]"),
        ("number_overflows_double", "[1e400]"),
        ("nan_literal", "[NaN]"),
        ("leading_zero", "[01]"),
        ("trailing_comma", "[1,]"),
        ("single_quotes", "{'a':1}"),
        ("empty_input", ""),
        ("trailing_garbage", "{\"a\":1}x"),
        ("raw_newline_in_string", "[\"a\nb\"]"),
    ];
    let canon_invalid: Vec<Value> = general_invalid
        .iter()
        .map(|(n, input)| json!({"name": n, "input": input, "error": intend(n, canonicalize_text(input), "invalid_json")}))
        .collect();

    let max_key = "k".repeat(32);
    let long_key = "k".repeat(33);
    let profile_text: Vec<(&str, String)> = vec![
        ("canonical_object", r#"{"a":1,"b":"x","c":[true,false,null],"d":{}}"#.into()),
        ("zero", r#"{"n":0}"#.into()),
        ("max_safe_integer", r#"{"n":9007199254740991}"#.into()),
        ("above_max_safe_integer", r#"{"n":9007199254740992}"#.into()),
        ("u64_overflow", r#"{"n":18446744073709551616}"#.into()),
        ("negative", r#"{"n":-1}"#.into()),
        ("negative_zero", r#"{"n":-0}"#.into()),
        ("fraction", r#"{"n":1.5}"#.into()),
        ("integral_fraction", r#"{"n":1.0}"#.into()),
        ("exponent", r#"{"n":1e2}"#.into()),
        ("zero_exponent", r#"{"n":0e0}"#.into()),
        ("leading_zero", r#"{"n":01}"#.into()),
        ("duplicate_key", r#"{"a":1,"a":1}"#.into()),
        ("duplicate_key_nested_in_array", r#"{"a":[{"b":1},{"c":1,"c":2}]}"#.into()),
        ("uppercase_key", r#"{"A":1}"#.into()),
        ("dash_in_key", r#"{"a-b":1}"#.into()),
        ("dot_in_key", r#"{"a.b":1}"#.into()),
        ("empty_key", r#"{"":1}"#.into()),
        ("key_32_chars", format!(r#"{{"{max_key}":1}}"#)),
        ("key_33_chars", format!(r#"{{"{long_key}":1}}"#)),
        ("non_ascii_key", r#"{"é":1}"#.into()),
        ("nested_bad_key", r#"{"a":{"B":1}}"#.into()),
        ("digits_and_underscore_key", r#"{"_0":1,"a_b_9":2}"#.into()),
        ("whitespace_after_colon", r#"{"a": 1}"#.into()),
        ("leading_whitespace", r#" {"a":1}"#.into()),
        ("trailing_newline", "{\"a\":1}\n".into()),
        ("key_order", r#"{"b":1,"a":2}"#.into()),
        ("unneeded_escape", r#"{"a":"\u0041"}"#.into()),
        ("escaped_slash", r#"{"a":"\/"}"#.into()),
        ("escaped_non_ascii", r#"{"a":"\u00e9"}"#.into()),
        ("escaped_surrogate_pair", r#"{"a":"\ud83d\ude00"}"#.into()),
        ("raw_non_ascii", r#"{"a":"é😀"}"#.into()),
        ("canonical_control_escapes", r#"{"a":"\u001f\n\t\"\\"}"#.into()),
        ("long_form_newline_escape", r#"{"a":"\u000a"}"#.into()),
        ("uppercase_hex_escape", r#"{"a":"\u001F"}"#.into()),
        ("raw_control_character", "{\"a\":\"\u{1}\"}".into()),
        ("lone_high_surrogate", r#"{"a":"\ud800"}"#.into()),
        ("lone_low_surrogate", r#"{"a":"\udc00"}"#.into()),
        ("byte_order_mark", "\u{feff}{\"a\":1}".into()),
        ("trailing_garbage", r#"{"a":1}x"#.into()),
        ("two_values", r#"{"a":1}{"b":2}"#.into()),
        ("empty_input", "".into()),
        ("null_value", r#"{"a":null}"#.into()),
        ("top_level_array", "[1,2]".into()),
        ("top_level_string", r#""x""#.into()),
        ("unclosed_object", r#"{"a":1"#.into()),
    ];
    let mut profile: Vec<Value> = profile_text
        .iter()
        .map(|(n, t)| {
            json!({"name": n, "input": t,
                   "parse_profile": code_of(parse_profile(t.as_bytes())),
                   "parse_canonical": code_of(parse_canonical(t.as_bytes()))})
        })
        .collect();
    let hex_inputs: &[(&str, &str)] = &[
        ("invalid_utf8_byte", "7b2261223a22ff227d"),
        ("overlong_utf8_slash", "7b2261223a22c0af227d"),
        ("utf8_encoded_surrogate", "7b2261223a22eda080227d"),
        ("truncated_utf8_sequence", "7b2261223a22e282227d"),
    ];
    for (n, h) in hex_inputs {
        let b = hex::decode(h).unwrap();
        profile.push(json!({"name": n, "input_hex": h,
            "parse_profile": intend(n, parse_profile(&b), "invalid_json"),
            "parse_canonical": code_of(parse_canonical(&b))}));
    }
    // Intent checks for the profile cases.
    let expect: &[(&str, &str, &str)] = &[
        ("canonical_object", "ok", "ok"),
        ("max_safe_integer", "ok", "ok"),
        ("above_max_safe_integer", "invalid_json", "invalid_json"),
        ("negative_zero", "invalid_json", "invalid_json"),
        ("integral_fraction", "invalid_json", "invalid_json"),
        ("key_32_chars", "ok", "ok"),
        ("key_33_chars", "invalid_json", "invalid_json"),
        ("whitespace_after_colon", "ok", "not_canonical"),
        ("trailing_newline", "ok", "not_canonical"),
        ("key_order", "ok", "not_canonical"),
        ("unneeded_escape", "ok", "not_canonical"),
        ("escaped_surrogate_pair", "ok", "not_canonical"),
        ("raw_non_ascii", "ok", "ok"),
        ("canonical_control_escapes", "ok", "ok"),
        ("uppercase_hex_escape", "ok", "not_canonical"),
        ("lone_high_surrogate", "invalid_json", "invalid_json"),
        ("byte_order_mark", "invalid_json", "invalid_json"),
        ("null_value", "ok", "ok"),
    ];
    for (n, pp, pc) in expect {
        let c = profile.iter().find(|c| c["name"] == *n).unwrap();
        assert_eq!((c["parse_profile"].as_str().unwrap(), c["parse_canonical"].as_str().unwrap()), (*pp, *pc), "{n}");
    }
    json!({
        "description": "RFC 8785 canonical JSON (general) and the KEZ JSON profile (PROTOCOL.md §1.1). See README.md.",
        "canonicalize": canon,
        "canonicalize_invalid": canon_invalid,
        "profile": profile,
    })
}

fn check_jcs(v: &Value) {
    for c in arr(v, "canonicalize") {
        let out = canonicalize_text(s(c, "input")).unwrap_or_else(|e| panic!("case {}: {e}", name(c)));
        assert_eq!(text(&out), s(c, "output"), "case {}", name(c));
        // Canonical output is a fixed point.
        assert_eq!(text(&canonicalize_text(s(c, "output")).unwrap()), s(c, "output"), "case {}", name(c));
    }
    for c in arr(v, "canonicalize_invalid") {
        expect_code(c, canonicalize_text(s(c, "input")));
    }
    for c in arr(v, "profile") {
        let b = bytes_of(c, "input");
        assert_eq!(code_of(parse_profile(&b)), s(c, "parse_profile"), "case {} (parse_profile)", name(c));
        assert_eq!(code_of(parse_canonical(&b)), s(c, "parse_canonical"), "case {} (parse_canonical)", name(c));
        if s(c, "parse_canonical") == "ok" {
            assert_eq!(canonicalize(&parse_profile(&b).unwrap()), b, "case {}", name(c));
        }
    }
}

#[test]
fn jcs_json() {
    run("jcs.json", gen_jcs, check_jcs);
}

// ------------------------------------------------------------ handles.json

fn gen_handles() -> Value {
    let l63 = "a".repeat(63);
    let d253 = format!("{l63}.{}.{}.{}", "b".repeat(63), "c".repeat(63), "d".repeat(61));
    let d254 = format!("{l63}.{}.{}.{}", "b".repeat(63), "c".repeat(63), "d".repeat(62));
    assert_eq!((d253.len(), d254.len()), (253, 254));
    let valid: Vec<(&str, String)> = vec![
        ("bare_local", "alice".into()),
        ("leading_at", "@alice".into()),
        ("mixed_case_full", "Alice@KEZ.lat".into()),
        ("surrounding_whitespace", " \t\r\n\x0calice@kez.lat\n ".into()),
        ("other_domain", "bob@example.org".into()),
        ("subdomain", "carol@chat.sub.example.org".into()),
        ("single_character", "a".into()),
        ("single_digit", "0".into()),
        ("local_32_chars", "a".repeat(32)),
        ("inner_dash_and_underscore", "a_b-c".into()),
        ("double_dash_and_underscore_runs", "a--b__c".into()),
        ("digits_only", "2026".into()),
        ("uppercase_local_only", "ALICE".into()),
        ("at_with_domain", "@Bob@Example.ORG".into()),
        ("domain_label_63", format!("x@{l63}.lat")),
        ("domain_253_chars", format!("x@{d253}")),
        ("domain_with_digits_and_dash", "x@a-1.b2.c".into()),
    ];
    let valid: Vec<Value> = valid
        .iter()
        .map(|(n, i)| json!({"name": n, "input": i, "handle": Handle::parse_input(i, HOME).unwrap().to_string()}))
        .collect();
    let invalid: Vec<(&str, String)> = vec![
        ("empty", "".into()),
        ("only_at", "@".into()),
        ("double_leading_at", "@@alice".into()),
        ("empty_domain", "alice@".into()),
        ("empty_local", "@kez.lat@kez.lat".into()),
        ("two_at_signs", "alice@kez.lat@x.org".into()),
        ("domain_without_dot", "alice@localhost".into()),
        ("leading_dash", "-alice".into()),
        ("trailing_dash", "alice-".into()),
        ("leading_underscore", "_alice".into()),
        ("trailing_underscore", "alice_".into()),
        ("local_33_chars", "a".repeat(33)),
        ("inner_space", "al ice".into()),
        ("dot_in_local", "al.ice".into()),
        ("plus_in_local", "alice+tag".into()),
        ("non_ascii_local", "ålice".into()),
        ("fullwidth_letter", "\u{ff41}lice".into()),
        ("non_ascii_domain", "alice@kéz.lat".into()),
        ("kelvin_sign", "\u{212a}ez".into()),
        ("vertical_tab_is_not_trimmed", "\x0balice".into()),
        ("nbsp_is_not_trimmed", "\u{a0}alice".into()),
        ("empty_domain_label", "alice@kez..lat".into()),
        ("trailing_dot_domain", "alice@kez.lat.".into()),
        ("leading_dot_domain", "alice@.kez.lat".into()),
        ("label_leading_dash", "alice@-kez.lat".into()),
        ("label_trailing_dash", "alice@kez-.lat".into()),
        ("underscore_in_domain", "alice@k_z.lat".into()),
        ("domain_label_64", format!("x@{}.lat", "a".repeat(64))),
        ("domain_254_chars", format!("x@{d254}")),
        ("whitespace_inside", "alice @kez.lat".into()),
    ];
    let invalid: Vec<Value> = invalid
        .iter()
        .map(
            |(n, i)| json!({"name": n, "input": i, "error": intend(n, Handle::parse_input(i, HOME), "invalid_handle")}),
        )
        .collect();
    let canonical_invalid: Vec<Value> = [
        ("uppercase", "Alice@kez.lat"),
        ("no_domain", "alice"),
        ("leading_at", "@alice@kez.lat"),
        ("whitespace", " alice@kez.lat"),
        ("uppercase_domain", "alice@KEZ.lat"),
    ]
    .iter()
    .map(|(n, i)| json!({"name": n, "input": i, "error": intend(n, Handle::parse_canonical(i), "invalid_handle")}))
    .collect();
    let mut reserved: Vec<Value> = RESERVED
        .iter()
        .map(|r| {
            let h = Handle::parse_input(r, HOME).unwrap();
            assert!(h.is_reserved());
            json!({"name": format!("reserved_{r}"), "input": r, "handle": h.to_string(), "reserved": true})
        })
        .collect();
    for (n, i) in [
        ("uppercase_reserved", "Admin"),
        ("reserved_other_domain", "root@example.org"),
        ("not_reserved_prefix", "admins"),
        ("not_reserved_suffix", "myadmin"),
        ("not_reserved_underscore_variant", "no_reply"),
        ("ordinary", "alice"),
    ] {
        let h = Handle::parse_input(i, HOME).unwrap();
        reserved.push(json!({"name": n, "input": i, "handle": h.to_string(), "reserved": h.is_reserved()}));
    }
    let display: Vec<Value> = [
        ("home_domain", "alice@kez.lat"),
        ("other_domain", "bob@example.org"),
        ("subdomain_of_home", "carol@chat.kez.lat"),
    ]
    .iter()
    .map(|(n, h)| json!({"name": n, "handle": h, "display": Handle::parse_canonical(h).unwrap().display(HOME)}))
    .collect();
    json!({
        "description": "Handle parsing, canonical form, reserved names and display (PROTOCOL.md §3). See README.md.",
        "home_domain": HOME,
        "valid": valid,
        "invalid": invalid,
        "canonical_invalid": canonical_invalid,
        "reserved": reserved,
        "display": display,
    })
}

fn check_handles(v: &Value) {
    let home = v["home_domain"].as_str().unwrap();
    for c in arr(v, "valid") {
        let h = Handle::parse_input(s(c, "input"), home).unwrap_or_else(|e| panic!("case {}: {e}", name(c)));
        assert_eq!(h.to_string(), s(c, "handle"), "case {}", name(c));
        // Canonical output parses as canonical and normalisation is idempotent.
        assert_eq!(Handle::parse_canonical(s(c, "handle")).unwrap(), h);
        assert_eq!(Handle::parse_input(s(c, "handle"), home).unwrap(), h);
    }
    for c in arr(v, "invalid") {
        expect_code(c, Handle::parse_input(s(c, "input"), home));
    }
    for c in arr(v, "canonical_invalid") {
        expect_code(c, Handle::parse_canonical(s(c, "input")));
    }
    for c in arr(v, "reserved") {
        let h = Handle::parse_input(s(c, "input"), home).unwrap();
        assert_eq!(h.to_string(), s(c, "handle"), "case {}", name(c));
        assert_eq!(h.is_reserved(), b(c, "reserved"), "case {}", name(c));
    }
    let listed: BTreeSet<&str> = arr(v, "reserved")
        .iter()
        .filter(|c| b(c, "reserved"))
        .map(|c| s(c, "handle").split('@').next().unwrap())
        .collect();
    assert!(RESERVED.iter().all(|r| listed.contains(r)), "every reserved name has a case");
    for c in arr(v, "display") {
        assert_eq!(Handle::parse_canonical(s(c, "handle")).unwrap().display(home), s(c, "display"), "case {}", name(c));
    }
}

#[test]
fn handles_json() {
    run("handles.json", gen_handles, check_handles);
}

// ------------------------------------------------------------- nonces.json

fn gen_nonces() -> Value {
    let tls = format!("{}TLS 1.3, client CertificateVerify\0", " ".repeat(64));
    let link = text(&signing_input(Purpose::SigchainLink, &obj(json!({"v": 1}))));
    let cases: Vec<(&str, String)> = vec![
        ("nats_server_15_chars", "pQ7cZ3Xb1Jm-9aE".into()),
        ("min_length_12", "abcdefghijkl".into()),
        ("max_length_24", "ABCDEFGHIJKLMNOPQRSTUVWX".into()),
        ("all_symbol_classes", "az09AZ_-_-_-".into()),
        ("only_dashes", "------------".into()),
        ("empty", "".into()),
        ("length_11", "abcdefghijk".into()),
        ("length_25", "ABCDEFGHIJKLMNOPQRSTUVWXY".into()),
        ("plus_sign", "abcdef+ghijkl".into()),
        ("slash", "abcdef/ghijkl".into()),
        ("padding", "abcdefghijkl==".into()),
        ("space", "abcdef ghijkl".into()),
        ("trailing_newline", "abcdefghijkl\n".into()),
        ("nul_byte", "abcdef\0ghijkl".into()),
        ("dot", "abcdef.ghijkl".into()),
        ("non_ascii_12_chars", "abcdéfghijkl".into()),
        ("fullwidth_digits", "１２３４５６７８９０１２".into()),
        ("kez_signing_input", link),
        ("kez_prefix_only", "kez-sig-v1".into()),
        ("tls13_certificate_verify_prefix", tls),
        ("json_object", "{\"a\":\"bcdefghij\"}".into()),
    ];
    let alice = sk(ALICE);
    let cases: Vec<Value> = cases
        .iter()
        .map(|(n, nonce)| {
            let sign = nonce::is_plain_nats_nonce(nonce);
            let mut c = json!({"name": n, "nonce": nonce, "sign": sign});
            if sign {
                c["signature"] = b64_encode(&sign_raw(&alice, nonce.as_bytes())).into();
            }
            c
        })
        .collect();
    json!({
        "description": "NATS server nonces the client signs (raw UTF-8 bytes, Ed25519, base64url) or refuses (PROTOCOL.md §2.2). See README.md.",
        "seed": hex_encode(&ALICE),
        "cases": cases,
    })
}

fn check_nonces(v: &Value) {
    let signer = seed_of(v, "seed");
    let key = PublicKey::of(&signer);
    let mut yes = 0;
    for c in arr(v, "cases") {
        let n = s(c, "nonce");
        let sign = b(c, "sign");
        assert_eq!(nonce::is_plain_nats_nonce(n), sign, "case {}", name(c));
        assert_eq!(nonce::check_nats_nonce(n).is_ok(), sign, "case {}", name(c));
        if sign {
            yes += 1;
            let sig: [u8; 64] = b64_decode(s(c, "signature"), "sig").unwrap().try_into().unwrap();
            assert_eq!(sign_raw(&signer, n.as_bytes()), sig, "case {}", name(c));
            key.verify_strict(n.as_bytes(), &sig).unwrap();
        } else {
            assert!(c.get("signature").is_none(), "case {}: refused nonce has no signature", name(c));
        }
    }
    assert!(yes >= 3);
}

#[test]
fn nonces_json() {
    run("nonces.json", gen_nonces, check_nonces);
}

// ------------------------------------------------------------- safety.json

/// F(pk) per PROTOCOL.md §8, written out independently of `kv_schemas::safety`.
fn f_of(pk: &PublicKey) -> [u8; 30] {
    let mut h = Sha512::new();
    h.update(b"kez-safety-number-v1\0");
    h.update(pk.as_bytes());
    let mut cur = h.finalize();
    for _ in 1..=5199 {
        let mut h = Sha512::new();
        h.update(cur);
        h.update(pk.as_bytes());
        cur = h.finalize();
    }
    cur[..30].try_into().unwrap()
}

const RFC8032_TEST1_SEED: &str = "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60";
const RFC8032_TEST2_SEED: &str = "4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb";
const RFC8032_TEST3_SEED: &str = "c5aa8df43f9f837bedb7442f31dcb7b166d38535076f094b85ce3a2e0b4458f7";

fn seed_hex(h: &str) -> [u8; 32] {
    hex::decode(h).unwrap().try_into().unwrap()
}

fn gen_safety() -> Value {
    let keys: Vec<(&str, PublicKey)> = vec![
        ("rfc8032_test1", pk(seed_hex(RFC8032_TEST1_SEED))),
        ("rfc8032_test2", pk(seed_hex(RFC8032_TEST2_SEED))),
        ("alice", pk(ALICE)),
        ("bob", pk(BOB)),
        ("carol", pk(CAROL)),
    ];
    let fps: Vec<Value> = keys
        .iter()
        .map(|(n, k)| json!({"name": n, "key": k.to_string(), "f_hex": hex_encode(&f_of(k)), "fingerprint": safety::fingerprint(k)}))
        .collect();
    let pairs = [
        ("brief_vector_rfc8032_test1_test2", 0, 1),
        ("brief_vector_reversed", 1, 0),
        ("alice_bob", 2, 3),
        ("bob_alice", 3, 2),
        ("alice_carol", 2, 4),
        ("same_key_twice", 3, 3),
    ];
    let sns: Vec<Value> = pairs
        .iter()
        .map(|(n, a, b)| {
            json!({"name": n, "a": keys[*a].1.to_string(), "b": keys[*b].1.to_string(),
                   "safety_number": safety::safety_number(&keys[*a].1, &keys[*b].1)})
        })
        .collect();
    assert_eq!(sns[0]["safety_number"], "48816 62298 58517 51718 87039 65081 69549 34571 82025 17408 77738 40941");
    json!({
        "description": "Fingerprints and safety numbers (PROTOCOL.md §8). See README.md.",
        "fingerprints": fps,
        "safety_numbers": sns,
    })
}

fn digits(f: &[u8; 30]) -> String {
    f.chunks(5)
        .map(|c| format!("{:05}", c.iter().fold(0u64, |a, &b| (a << 8) | u64::from(b)) % 100_000))
        .collect::<Vec<_>>()
        .join(" ")
}

fn check_safety(v: &Value) {
    for c in arr(v, "fingerprints") {
        let k = key_of(c, "key");
        let f = f_of(&k);
        assert_eq!(hex_encode(&f), s(c, "f_hex"), "case {}", name(c));
        assert_eq!(digits(&f), s(c, "fingerprint"), "case {}", name(c));
        assert_eq!(safety::fingerprint(&k), s(c, "fingerprint"), "case {}", name(c));
    }
    for c in arr(v, "safety_numbers") {
        let (a, bb) = (key_of(c, "a"), key_of(c, "b"));
        assert_eq!(safety::safety_number(&a, &bb), s(c, "safety_number"), "case {}", name(c));
        assert_eq!(safety::safety_number(&bb, &a), s(c, "safety_number"), "case {}", name(c));
        let (da, db) = (digits(&f_of(&a)), digits(&f_of(&bb)));
        let (lo, hi) = if da.replace(' ', "") <= db.replace(' ', "") { (da, db) } else { (db, da) };
        assert_eq!(format!("{lo} {hi}"), s(c, "safety_number"), "case {}", name(c));
    }
}

#[test]
fn safety_json() {
    run("safety.json", gen_safety, check_safety);
}

// --------------------------------------------------------------- keys.json

/// keys.json is generated by kez-client (it needs bip39 and nkeys); here the
/// Ed25519 and X25519 columns are checked against this crate.
fn check_keys(v: &Value) {
    let ids = arr(v, "identities");
    assert!(ids.len() >= 10);
    for c in ids {
        let signing = seed_of(c, "seed");
        let k = PublicKey::of(&signing);
        assert_eq!(k.hex(), s(c, "public"), "case {}", name(c));
        assert_eq!(k.to_string(), s(c, "key"), "case {}", name(c));
        assert_eq!(s(c, "key").parse::<PublicKey>().unwrap(), k);
        assert_eq!(hex_encode(&k.x25519()), s(c, "x25519_public"), "case {}", name(c));
        let xs = kv_schemas::keys::x25519_secret(&signing);
        assert_eq!(hex_encode(&x25519_dalek::PublicKey::from(&xs).to_bytes()), s(c, "x25519_public"));
        assert_eq!(s(c, "mnemonic").split(' ').count(), 24, "case {}", name(c));
        assert!(s(c, "nkey_public").starts_with('U') && s(c, "nkey_seed").starts_with("SU"), "case {}", name(c));
    }
    for (n, seed, x) in [
        ("rfc8032_test1", RFC8032_TEST1_SEED, "d85e07ec22b0ad881537c2f44d662d1a143cf830c57aca4305d85c7a90f6b62e"),
        ("rfc8032_test2", RFC8032_TEST2_SEED, "25c704c594b88afc00a76b69d1ed2b984d7e22550f3ed0802d04fbcd07d38d47"),
    ] {
        let c = ids.iter().find(|c| c["name"] == n).unwrap_or_else(|| panic!("keys.json lacks {n}"));
        assert_eq!((s(c, "seed"), s(c, "x25519_public")), (seed, x));
    }
    assert!(!arr(v, "invalid_mnemonics").is_empty());
    assert!(!arr(v, "mnemonic_inputs").is_empty());
}

#[test]
fn keys_json() {
    let stored = read("keys.json");
    check_common("keys.json", &stored);
    check_keys(&stored);
}

// ------------------------------------------------------------ ed25519.json

/// The group order L, little-endian.
const L_LE: &str = "edd3f55c1a631258d69cf7a2def9de1400000000000000000000000000000010";
/// The field prime p = 2^255 − 19, little-endian.
const P_LE: &str = "edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f";

fn add_le(a: &[u8; 32], b: &[u8; 32]) -> [u8; 32] {
    let mut out = [0u8; 32];
    let mut carry = 0u16;
    for i in 0..32 {
        let t = u16::from(a[i]) + u16::from(b[i]) + carry;
        out[i] = t as u8;
        carry = t >> 8;
    }
    assert_eq!(carry, 0);
    out
}

fn key_reason(bytes: &[u8; 32]) -> &'static str {
    match CompressedEdwardsY(*bytes).decompress() {
        None => "not_on_curve",
        Some(p) if p.compress().to_bytes() != *bytes => "non_canonical",
        Some(p) if p.is_small_order() => "small_order",
        Some(_) => "ok",
    }
}

fn secret_scalar(seed: &[u8; 32]) -> Scalar {
    let h = Sha512::digest(seed);
    let mut a = [0u8; 32];
    a.copy_from_slice(&h[..32]);
    a[0] &= 248;
    a[31] &= 127;
    a[31] |= 64;
    Scalar::from_bytes_mod_order(a)
}

fn wide(h: &[u8]) -> Scalar {
    Scalar::from_bytes_mod_order_wide(&h.try_into().unwrap())
}

fn challenge(r: &[u8; 32], a: &[u8; 32], m: &[u8]) -> Scalar {
    let mut h = Sha512::new();
    h.update(r);
    h.update(a);
    h.update(m);
    wide(&h.finalize())
}

/// (cofactorless, cofactored) equation results, decoding permissively.
fn equations(a: &[u8; 32], r: &[u8; 32], s: &[u8; 32], m: &[u8]) -> (bool, bool) {
    use curve25519_dalek::traits::IsIdentity as _;
    let (Some(ap), Some(rp)) = (CompressedEdwardsY(*a).decompress(), CompressedEdwardsY(*r).decompress()) else {
        return (false, false);
    };
    let Some(sc) = Option::<Scalar>::from(Scalar::from_canonical_bytes(*s)) else { return (false, false) };
    let k = challenge(r, a, m);
    let diff = EdwardsPoint::mul_base(&sc) - rp - ap * k;
    (diff.is_identity(), diff.mul_by_cofactor().is_identity())
}

fn strict_valid(a: &[u8; 32], m: &[u8], sig: &[u8; 64]) -> bool {
    PublicKey::from_bytes(*a).and_then(|k| k.verify_strict(m, sig)).is_ok()
}

fn gen_ed25519() -> Value {
    let p: [u8; 32] = hex::decode(P_LE).unwrap().try_into().unwrap();
    let mut keys: Vec<(String, [u8; 32], &str)> = vec![
        ("rfc8032_test1".into(), *pk(seed_hex(RFC8032_TEST1_SEED)).as_bytes(), "canonical, large prime order"),
        ("alice".into(), *pk(ALICE).as_bytes(), "canonical, large prime order"),
    ];
    for (i, t) in EIGHT_TORSION.iter().enumerate() {
        keys.push((format!("torsion_point_{i}"), t.compress().to_bytes(), "one of the 8 small-order points"));
    }
    // Every decodable encoding with y >= p (y = p + v, v = 0..18), sign bit 0 and 1.
    let mut not_on_curve = 0;
    for v in 0..19u8 {
        for sign in [false, true] {
            let mut e = p;
            e[0] += v;
            if sign {
                e[31] |= 0x80;
            }
            match key_reason(&e) {
                "non_canonical" => keys.push((
                    format!("y_is_p_plus_{v}{}", if sign { "_sign_set" } else { "" }),
                    e,
                    "y >= p: decodes, but not the canonical encoding",
                )),
                "not_on_curve" if not_on_curve < 2 && !sign => {
                    not_on_curve += 1;
                    keys.push((format!("y_is_p_plus_{v}_not_on_curve"), e, "y >= p and no x exists"));
                }
                _ => {}
            }
        }
    }
    // x = 0 with the sign bit set (y = 1 and y = −1).
    let mut one_neg = [0u8; 32];
    one_neg[0] = 1;
    one_neg[31] = 0x80;
    keys.push(("identity_with_sign_bit".into(), one_neg, "x = 0 with sign bit 1: non-canonical"));
    let mut minus_one_neg: [u8; 32] = hex::decode(P_LE).unwrap().try_into().unwrap();
    minus_one_neg[0] -= 1;
    minus_one_neg[31] |= 0x80;
    keys.push(("minus_one_with_sign_bit".into(), minus_one_neg, "x = 0 with sign bit 1: non-canonical"));
    // Small canonical y without a curve point.
    let mut y = 2u8;
    loop {
        let mut e = [0u8; 32];
        e[0] = y;
        if key_reason(&e) == "not_on_curve" {
            keys.push((format!("y_is_{y}_not_on_curve"), e, "no x exists for this y"));
            break;
        }
        y += 1;
    }
    let mixed =
        (CompressedEdwardsY(*pk(ALICE).as_bytes()).decompress().unwrap() + EIGHT_TORSION[1]).compress().to_bytes();
    keys.push((
        "mixed_order_alice_plus_torsion".into(),
        mixed,
        "canonical, not small order (has a torsion component): accepted by §2.1",
    ));
    let keys_v: Vec<Value> = keys
        .iter()
        .map(|(n, k, why)| {
            let reason = key_reason(k);
            assert_eq!(reason == "ok", PublicKey::from_bytes(*k).is_ok(), "{n}");
            json!({"name": n, "public_hex": hex_encode(k), "valid": reason == "ok", "reason": reason, "note": why})
        })
        .collect();

    // Signatures.
    let mut sigs: Vec<(String, [u8; 32], Vec<u8>, [u8; 64], bool, String)> = vec![];
    let rfc = [
        (
            "rfc8032_test1",
            RFC8032_TEST1_SEED,
            "",
            "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b",
        ),
        (
            "rfc8032_test2",
            RFC8032_TEST2_SEED,
            "72",
            "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00",
        ),
        (
            "rfc8032_test3",
            RFC8032_TEST3_SEED,
            "af82",
            "6291d657deec24024827e69c3abe01a30ce548a284743a445e3680d7db5ac3ac18ff9b538d16f290ae67f760984dc6594a7c15e9716ed28dc027beceea1ec40a",
        ),
    ];
    for (n, seed, msg, want) in rfc {
        let s = sk(seed_hex(seed));
        let m = hex::decode(msg).unwrap();
        let sig = sign_raw(&s, &m);
        assert_eq!(hex_encode(&sig), want, "{n}");
        sigs.push((n.into(), *PublicKey::of(&s).as_bytes(), m, sig, true, "RFC 8032 test vector".into()));
    }
    let t1 = sk(seed_hex(RFC8032_TEST1_SEED));
    let t1_pk = *PublicKey::of(&t1).as_bytes();
    let t1_sig = sign_raw(&t1, b"");
    sigs.push((
        "wrong_message".into(),
        t1_pk,
        b"x".to_vec(),
        t1_sig,
        false,
        "TEST 1 signature over another message".into(),
    ));
    let l: [u8; 32] = hex::decode(L_LE).unwrap().try_into().unwrap();
    let mut malleated = t1_sig;
    let s_plus_l = add_le(&t1_sig[32..].try_into().unwrap(), &l);
    malleated[32..].copy_from_slice(&s_plus_l);
    let (cl, _) = equations(&t1_pk, &t1_sig[..32].try_into().unwrap(), &t1_sig[32..].try_into().unwrap(), b"");
    assert!(cl);
    sigs.push((
        "s_plus_l".into(),
        t1_pk,
        vec![],
        malleated,
        false,
        "S + L: the equation holds mod L, but S >= L (malleability)".into(),
    ));
    let mut high = t1_sig;
    high[63] |= 0x80;
    sigs.push(("s_high_bit_set".into(), t1_pk, vec![], high, false, "S with bit 255 set (S >= L)".into()));
    let mut s_is_l = t1_sig;
    s_is_l[32..].copy_from_slice(&l);
    sigs.push(("s_equals_l".into(), t1_pk, vec![], s_is_l, false, "S = L".into()));

    let a_seed = ALICE;
    let a_bytes = *pk(a_seed).as_bytes();
    let a_scalar = secret_scalar(&a_seed);
    let msg = b"kez".to_vec();
    let r_nonce = wide(&Sha512::digest(b"kez-vector-nonce"));
    let make = |r_bytes: [u8; 32], a_pub: [u8; 32], m: &[u8], s: Scalar| -> [u8; 64] {
        let mut sig = [0u8; 64];
        sig[..32].copy_from_slice(&r_bytes);
        sig[32..].copy_from_slice(s.as_bytes());
        let _ = (a_pub, m);
        sig
    };
    // R = identity, S = k·a: the cofactorless equation holds, R is small order.
    let id_bytes = EdwardsPoint::default().compress().to_bytes();
    let k = challenge(&id_bytes, &a_bytes, &msg);
    let sig = make(id_bytes, a_bytes, &msg, k * a_scalar);
    assert_eq!(equations(&a_bytes, &id_bytes, &sig[32..].try_into().unwrap(), &msg), (true, true));
    sigs.push((
        "small_order_r_identity".into(),
        a_bytes,
        msg.clone(),
        sig,
        false,
        "R is the identity; both equations hold, strict rule rejects small-order R".into(),
    ));
    let r8 = EIGHT_TORSION[1].compress().to_bytes();
    let k = challenge(&r8, &a_bytes, &msg);
    let sig = make(r8, a_bytes, &msg, k * a_scalar);
    assert_eq!(equations(&a_bytes, &r8, &sig[32..].try_into().unwrap(), &msg), (false, true));
    sigs.push((
        "small_order_r_order_8".into(),
        a_bytes,
        msg.clone(),
        sig,
        false,
        "R of order 8; only the cofactored equation holds".into(),
    ));
    let r_t = (EdwardsPoint::mul_base(&r_nonce) + EIGHT_TORSION[1]).compress().to_bytes();
    let k = challenge(&r_t, &a_bytes, &msg);
    let sig = make(r_t, a_bytes, &msg, r_nonce + k * a_scalar);
    assert_eq!(equations(&a_bytes, &r_t, &sig[32..].try_into().unwrap(), &msg), (false, true));
    sigs.push((
        "r_with_torsion_component".into(),
        a_bytes,
        msg.clone(),
        sig,
        false,
        "R = rB + T8; cofactored-valid, cofactorless-invalid".into(),
    ));
    // Non-canonical R: the identity encoded as y = p + 1.
    let mut r_nc = p;
    r_nc[0] += 1;
    let k = challenge(&r_nc, &a_bytes, &msg);
    let sig = make(r_nc, a_bytes, &msg, k * a_scalar);
    sigs.push((
        "non_canonical_r".into(),
        a_bytes,
        msg.clone(),
        sig,
        false,
        "R is a non-canonical encoding (y = p + 1) of the identity".into(),
    ));
    // Mixed-order A = A + T8: find one message where k·T8 != 0 (rejected) and one where it is 0 (accepted).
    let a_mixed_pt = CompressedEdwardsY(a_bytes).decompress().unwrap() + EIGHT_TORSION[1];
    let a_mixed = a_mixed_pt.compress().to_bytes();
    let r_pt = EdwardsPoint::mul_base(&r_nonce).compress().to_bytes();
    let mut found = (false, false);
    for i in 0u32.. {
        let m = format!("kez mixed {i}").into_bytes();
        let k = challenge(&r_pt, &a_mixed, &m);
        let s = r_nonce + k * a_scalar;
        let sig = make(r_pt, a_mixed, &m, s);
        let (cl, cf) = equations(&a_mixed, &r_pt, s.as_bytes(), &m);
        assert!(cf);
        if !cl && !found.0 {
            found.0 = true;
            sigs.push((
                "mixed_order_a_cofactored_only".into(),
                a_mixed,
                m,
                sig,
                false,
                "A = A + T8 and k·T8 != 0: only the cofactored equation holds".into(),
            ));
        } else if cl && !found.1 {
            found.1 = true;
            sigs.push((
                "mixed_order_a_k_multiple_of_8".into(),
                a_mixed,
                m,
                sig,
                true,
                "A = A + T8 and k·T8 = 0: the cofactorless equation holds; the key is not small order, so §2.1 accepts"
                    .into(),
            ));
        }
        if found == (true, true) {
            break;
        }
    }
    // Small-order A: the identity key with R = identity, S = 0 "verifies" any message without the small-order checks.
    let sig = make(id_bytes, id_bytes, &msg, Scalar::ZERO);
    assert_eq!(equations(&id_bytes, &id_bytes, &[0; 32], &msg), (true, true));
    sigs.push((
        "identity_key_signs_everything".into(),
        id_bytes,
        msg.clone(),
        sig,
        false,
        "A = R = identity, S = 0: both equations hold for every message".into(),
    ));
    let t8 = EIGHT_TORSION[1].compress().to_bytes();
    let sig = make(id_bytes, t8, &msg, Scalar::ZERO);
    sigs.push(("small_order_a_order_8".into(), t8, msg.clone(), sig, false, "A of order 8".into()));
    let mut a_nc = p;
    a_nc[0] += 1;
    let sig = make(id_bytes, a_nc, &msg, Scalar::ZERO);
    sigs.push((
        "non_canonical_a".into(),
        a_nc,
        msg.clone(),
        sig,
        false,
        "A is a non-canonical encoding of the identity".into(),
    ));

    let sigs_v: Vec<Value> = sigs
        .iter()
        .map(|(n, a, m, sig, valid, why)| {
            assert_eq!(strict_valid(a, m, sig), *valid, "{n}");
            json!({"name": n, "public_hex": hex_encode(a), "message_hex": hex_encode(m), "signature_hex": hex_encode(sig),
                   "valid": valid, "reason": why})
        })
        .collect();
    json!({
        "description": "Ed25519 key validity and strict signature verification (PROTOCOL.md §2.1). Signatures in hex. See README.md.",
        "keys": keys_v,
        "signatures": sigs_v,
    })
}

fn check_ed25519(v: &Value) {
    let ks = arr(v, "keys");
    assert!(ks.iter().filter(|c| s(c, "reason") == "small_order").count() >= 8);
    assert!(ks.iter().any(|c| s(c, "reason") == "non_canonical"));
    assert!(ks.iter().any(|c| s(c, "reason") == "not_on_curve"));
    for c in ks {
        let k = hx32(c, "public_hex");
        assert_eq!(PublicKey::from_bytes(k).is_ok(), b(c, "valid"), "case {}", name(c));
        assert_eq!(PublicKey::from_hex(s(c, "public_hex")).is_ok(), b(c, "valid"), "case {}", name(c));
        assert_eq!(key_reason(&k), s(c, "reason"), "case {}", name(c));
        if !b(c, "valid") {
            assert_eq!(code_of(PublicKey::from_bytes(k)), "invalid_key");
        }
    }
    for c in arr(v, "signatures") {
        let a = hx32(c, "public_hex");
        let sig: [u8; 64] = hx(c, "signature_hex").try_into().unwrap();
        assert_eq!(strict_valid(&a, &hx(c, "message_hex"), &sig), b(c, "valid"), "case {}", name(c));
    }
}

#[test]
fn ed25519_json() {
    run("ed25519.json", gen_ed25519, check_ed25519);
}

// --------------------------------------------------------- signatures.json

fn purpose_of(p: &str) -> Purpose {
    match p {
        "register" => Purpose::Register,
        "sigchain.link" => Purpose::SigchainLink,
        "manifest" => Purpose::Manifest,
        "msg" => Purpose::Msg,
        other => panic!("unknown purpose {other}"),
    }
}

fn without_sig(bytes: &[u8]) -> Map<String, Value> {
    let mut m = obj(parse_canonical(bytes).unwrap());
    m.remove("sig");
    m
}

fn with_field(bytes: &[u8], k: &str, v: Value) -> Vec<u8> {
    let mut m = obj(parse_canonical(bytes).unwrap());
    m.insert(k.into(), v);
    canonicalize(&Value::Object(m))
}

fn without_field(bytes: &[u8], k: &str) -> Vec<u8> {
    let mut m = obj(parse_canonical(bytes).unwrap());
    m.remove(k);
    canonicalize(&Value::Object(m))
}

fn msg_unsigned(from: &PublicKey, to: &PublicKey, text_body: &str) -> Map<String, Value> {
    obj(json!({"type": "kez.msg", "v": 1, "from": from.to_string(), "to": to.to_string(),
               "enc": b64_encode(&[0x22; 32]), "id": b64_encode(&[0x33; 16]), "ts": NOW,
               "kind": "text", "body": {"text": text_body}}))
}

fn verify_signed(purpose: Purpose, bytes: &[u8], key: &PublicKey) -> Result<Vec<u8>, KezError> {
    let v = parse_canonical(bytes)?;
    kv_schemas::sig::verify_object(purpose, v.as_object().unwrap(), key)
}

fn gen_signatures() -> Value {
    use kv_schemas::sigchain::{Endpoint, Op, build_link};
    let alice = sk(ALICE);
    let (ak, bk) = (pk(ALICE), pk(BOB));
    let reg = register::build(&alice, &Handle::parse_input("alice", HOME).unwrap(), NOW, [0x11; 16]);
    let link = build_link(&alice, 1, None, NOW, &Op::AddEndpoint(Endpoint::iroh_wave1(&ak)));
    let man = manifest::build(&alice, 1, NOW, &[]).unwrap();
    let msg = sign_as(&alice, Purpose::Msg, &msg_unsigned(&ak, &bk, "hi"));
    let valid: Vec<Value> = [("register", &reg), ("sigchain_link", &link), ("manifest", &man), ("msg", &msg)]
        .iter()
        .map(|(n, bytes)| {
            let purpose_str = match *n {
                "sigchain_link" => "sigchain.link",
                other => other,
            };
            let unsigned = without_sig(bytes);
            let sig = parse_canonical(bytes).unwrap()["sig"].as_str().unwrap().to_string();
            json!({"name": n, "purpose": purpose_str, "seed": hex_encode(&ALICE), "key": ak.to_string(),
                   "unsigned": Value::Object(unsigned.clone()),
                   "signing_input_hex": hex_encode(&signing_input(purpose_of(purpose_str), &unsigned)),
                   "sig": sig, "signed": text(bytes)})
        })
        .collect();

    let sig_text = parse_canonical(&msg).unwrap()["sig"].as_str().unwrap().to_string();
    let sig_raw = b64_decode(&sig_text, "sig").unwrap();
    let mut cases: Vec<(String, &str, PublicKey, Vec<u8>, &str)> = vec![];
    let mut add = |n: &str, purpose: &'static str, key: PublicKey, bytes: Vec<u8>, code: &'static str| {
        intend(n, verify_signed(purpose_of(purpose), &bytes, &key), code);
        cases.push((n.into(), purpose, key, bytes, code));
    };
    add("msg_verified_as_manifest", "manifest", ak, msg.clone(), "wrong_type");
    add("register_verified_as_sigchain_link", "sigchain.link", ak, reg.clone(), "wrong_type");
    let mut forged = without_sig(&man);
    forged.insert("type".into(), "kez.manifest".into());
    add(
        "manifest_object_signed_under_msg_purpose",
        "manifest",
        ak,
        sign_as(&alice, Purpose::Msg, &forged),
        "bad_signature",
    );
    let unsigned = msg_unsigned(&ak, &bk, "hi");
    let raw_sig = sign_raw(&alice, &canonicalize(&Value::Object(unsigned.clone())));
    let mut m = unsigned.clone();
    m.insert("sig".into(), b64_encode(&raw_sig).into());
    add("signature_without_domain_prefix", "msg", ak, canonicalize(&Value::Object(m)), "bad_signature");
    add("tampered_field", "msg", ak, with_field(&msg, "body", json!({"text": "hi!"})), "bad_signature");
    add("other_key", "msg", bk, msg.clone(), "bad_signature");
    let mut v2 = msg_unsigned(&ak, &bk, "hi");
    v2.insert("v".into(), 2.into());
    add("version_2", "msg", ak, sign_as(&alice, Purpose::Msg, &v2), "wrong_type");
    let mut nov = msg_unsigned(&ak, &bk, "hi");
    nov.remove("v");
    add("missing_v", "msg", ak, sign_as(&alice, Purpose::Msg, &nov), "wrong_type");
    let mut notype = msg_unsigned(&ak, &bk, "hi");
    notype.remove("type");
    add("missing_type", "msg", ak, sign_as(&alice, Purpose::Msg, &notype), "wrong_type");
    add("missing_sig", "msg", ak, without_field(&msg, "sig"), "invalid_request");
    add("sig_not_a_string", "msg", ak, with_field(&msg, "sig", json!(1)), "invalid_request");
    add("sig_with_padding", "msg", ak, with_field(&msg, "sig", format!("{sig_text}==").into()), "invalid_encoding");
    add("sig_63_bytes", "msg", ak, with_field(&msg, "sig", b64_encode(&sig_raw[..63]).into()), "invalid_encoding");
    let mut long = sig_raw.clone();
    long.push(0);
    add("sig_65_bytes", "msg", ak, with_field(&msg, "sig", b64_encode(&long).into()), "invalid_encoding");
    const ALPHA: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let last = *sig_text.as_bytes().last().unwrap();
    let idx = ALPHA.iter().position(|&c| c == last).unwrap();
    assert_eq!(idx & 0x0f, 0, "64 bytes leave 4 zero trailing bits");
    let bad_tail = format!("{}{}", &sig_text[..sig_text.len() - 1], ALPHA[idx | 1] as char);
    add("sig_nonzero_trailing_bits", "msg", ak, with_field(&msg, "sig", bad_tail.into()), "invalid_encoding");
    // A signature whose base64url contains '-' or '_', rewritten in the standard alphabet.
    let (std_msg, std_sig) = (0..)
        .map(|i| sign_as(&alice, Purpose::Msg, &msg_unsigned(&ak, &bk, &format!("hi {i}"))))
        .map(|b| {
            let t = parse_canonical(&b).unwrap()["sig"].as_str().unwrap().to_string();
            (b, t)
        })
        .find(|(_, t)| t.contains(['-', '_']))
        .unwrap();
    let std_alpha = std_sig.replace('-', "+").replace('_', "/");
    add("sig_standard_base64_alphabet", "msg", ak, with_field(&std_msg, "sig", std_alpha.into()), "invalid_encoding");
    let mut mall = sig_raw.clone();
    let l: [u8; 32] = hex::decode(L_LE).unwrap().try_into().unwrap();
    let spl = add_le(&mall[32..].try_into().unwrap(), &l);
    mall[32..].copy_from_slice(&spl);
    add("s_plus_l", "msg", ak, with_field(&msg, "sig", b64_encode(&mall).into()), "bad_signature");
    let invalid: Vec<Value> = cases
        .into_iter()
        .map(|(n, p, k, bytes, code)| json!({"name": n, "purpose": p, "key": k.to_string(), "signed": text(&bytes), "error": code}))
        .collect();
    json!({
        "description": "KEZ signing inputs and object signatures for each purpose, and verification failures (PROTOCOL.md §2.2). See README.md.",
        "valid": valid,
        "invalid": invalid,
    })
}

fn check_signatures(v: &Value) {
    let purposes: BTreeSet<&str> = arr(v, "valid").iter().map(|c| s(c, "purpose")).collect();
    assert_eq!(purposes, ["manifest", "msg", "register", "sigchain.link"].into_iter().collect());
    for c in arr(v, "valid") {
        let purpose = purpose_of(s(c, "purpose"));
        let signer = seed_of(c, "seed");
        let unsigned = c["unsigned"].as_object().unwrap();
        assert_eq!(unsigned["type"], purpose.object_type(), "case {}", name(c));
        let input = signing_input(purpose, unsigned);
        assert_eq!(hex_encode(&input), s(c, "signing_input_hex"), "case {}", name(c));
        assert_eq!(input[10], 0);
        let sig = sign_raw(&signer, &input);
        assert_eq!(b64_encode(&sig), s(c, "sig"), "case {}", name(c));
        let mut signed = unsigned.clone();
        signed.insert("sig".into(), s(c, "sig").into());
        assert_eq!(text(&canonicalize(&Value::Object(signed))), s(c, "signed"), "case {}", name(c));
        assert_eq!(verify_signed(purpose, s(c, "signed").as_bytes(), &key_of(c, "key")).unwrap(), input);
        assert_eq!(PublicKey::of(&signer), key_of(c, "key"));
    }
    for c in arr(v, "invalid") {
        expect_code(c, verify_signed(purpose_of(s(c, "purpose")), s(c, "signed").as_bytes(), &key_of(c, "key")));
    }
}

#[test]
fn signatures_json() {
    run("signatures.json", gen_signatures, check_signatures);
}

// ----------------------------------------------------------- register.json

fn reg_unsigned(key: &PublicKey, aud: &str, handle: &str, ts: u64, nonce: &[u8]) -> Map<String, Value> {
    obj(json!({"type": "kez.register", "v": 1, "aud": aud, "handle": handle, "key": key.to_string(), "ts": ts,
               "nonce": b64_encode(nonce)}))
}

fn gen_register() -> Value {
    let alice = sk(ALICE);
    let ak = pk(ALICE);
    let h = |s: &str| Handle::parse_input(s, HOME).unwrap();
    let base = register::build(&alice, &h("alice"), NOW, [0x11; 16]);
    let mut valid = vec![];
    for (n, seed, handle, ts, nonce, now) in [
        ("alice", ALICE, "alice", NOW, [0x11u8; 16], NOW),
        ("clock_behind_by_window", ALICE, "alice", NOW, [0x11; 16], NOW + 300_000),
        ("clock_ahead_by_window", ALICE, "alice", NOW, [0x11; 16], NOW - 300_000),
        ("bob_digits_dash_underscore", BOB, "b0b-x_y", NOW + 5, [0x12; 16], NOW),
    ] {
        let bytes = register::build(&sk(seed), &h(handle), ts, nonce);
        let r = register::verify(&bytes, HOME, now).unwrap();
        valid.push(json!({"name": n, "seed": hex_encode(&seed), "now": now, "bytes": text(&bytes),
            "expect": {"aud": r.aud, "handle": r.handle.to_string(), "key": r.key.to_string(), "ts": r.ts, "nonce": r.nonce}}));
    }
    let mut invalid = vec![];
    let mut add = |n: &str, domain: &str, now: u64, bytes: Vec<u8>, code: &str, note: Option<&str>| {
        intend(n, register::verify(&bytes, domain, now), code);
        let mut c = json!({"name": n, "domain": domain, "now": now, "error": code});
        match String::from_utf8(bytes.clone()) {
            Ok(t) => c["bytes"] = t.into(),
            Err(_) => c["bytes_hex"] = hex_encode(&bytes).into(),
        }
        if let Some(note) = note {
            c["note"] = note.into();
        }
        invalid.push(c);
    };
    let sign = |m: &Map<String, Value>| sign_as(&alice, Purpose::Register, m);
    add("wrong_audience", "other.example", NOW, base.clone(), "wrong_audience", None);
    add("stale_past", HOME, NOW + 300_001, base.clone(), "stale_timestamp", None);
    add("stale_future", HOME, NOW - 300_001, base.clone(), "stale_timestamp", None);
    add("reserved_root", HOME, NOW, register::build(&alice, &h("root"), NOW, [0x11; 16]), "handle_reserved", None);
    add(
        "reserved_no_reply",
        HOME,
        NOW,
        register::build(&alice, &h("no-reply"), NOW, [0x11; 16]),
        "handle_reserved",
        None,
    );
    let tampered = text(&base).replace("\"alice@kez.lat\"", "\"alicf@kez.lat\"").into_bytes();
    add("tampered_handle", HOME, NOW, tampered, "bad_signature", None);
    let spaced = text(&base).replacen("\":", "\": ", 1).into_bytes();
    add("not_canonical_whitespace", HOME, NOW, spaced, "not_canonical", None);
    let m = obj(parse_canonical(&base).unwrap());
    let reordered = format!(
        "{{\"v\":1,{}}}",
        text(&canonicalize(&Value::Object(m.clone())))
            .trim_start_matches('{')
            .trim_end_matches('}')
            .replace(",\"v\":1", "")
    );
    add("not_canonical_key_order", HOME, NOW, reordered.into_bytes(), "not_canonical", None);
    add("trailing_newline", HOME, NOW, [base.clone(), b"\n".to_vec()].concat(), "not_canonical", None);
    let mut extra = reg_unsigned(&ak, HOME, "alice@kez.lat", NOW, &[0x11; 16]);
    extra.insert("device".into(), "laptop".into());
    add(
        "extra_field",
        HOME,
        NOW,
        sign(&extra),
        "invalid_request",
        Some("signed correctly, but the key set is not exact"),
    );
    let mut missing = reg_unsigned(&ak, HOME, "alice@kez.lat", NOW, &[0x11; 16]);
    missing.remove("nonce");
    add("missing_nonce", HOME, NOW, sign(&missing), "invalid_request", None);
    let mut ts_str = reg_unsigned(&ak, HOME, "alice@kez.lat", NOW, &[0x11; 16]);
    ts_str.insert("ts".into(), NOW.to_string().into());
    add("ts_is_a_string", HOME, NOW, sign(&ts_str), "invalid_request", None);
    let neg = text(&base).replace(&format!("\"ts\":{NOW}"), "\"ts\":-1").into_bytes();
    add("ts_negative", HOME, NOW, neg, "invalid_json", None);
    add(
        "handle_domain_is_not_aud",
        HOME,
        NOW,
        sign(&reg_unsigned(&ak, HOME, "alice@example.org", NOW, &[0x11; 16])),
        "wrong_audience",
        None,
    );
    add(
        "handle_not_canonical",
        HOME,
        NOW,
        sign(&reg_unsigned(&ak, HOME, "Alice@kez.lat", NOW, &[0x11; 16])),
        "invalid_handle",
        None,
    );
    add(
        "handle_without_domain",
        HOME,
        NOW,
        sign(&reg_unsigned(&ak, HOME, "alice", NOW, &[0x11; 16])),
        "invalid_handle",
        None,
    );
    let mut small = reg_unsigned(&ak, HOME, "alice@kez.lat", NOW, &[0x11; 16]);
    small.insert("key".into(), format!("ed25519:01{}", "00".repeat(31)).into());
    add("key_small_order", HOME, NOW, sign(&small), "invalid_key", None);
    let mut nc = reg_unsigned(&ak, HOME, "alice@kez.lat", NOW, &[0x11; 16]);
    nc.insert("key".into(), format!("ed25519:{P_LE}").into());
    add("key_non_canonical", HOME, NOW, sign(&nc), "invalid_key", None);
    let mut upper = reg_unsigned(&ak, HOME, "alice@kez.lat", NOW, &[0x11; 16]);
    upper.insert("key".into(), format!("ed25519:{}", ak.hex().to_uppercase()).into());
    add("key_uppercase_hex", HOME, NOW, sign(&upper), "invalid_key", None);
    let mut noprefix = reg_unsigned(&ak, HOME, "alice@kez.lat", NOW, &[0x11; 16]);
    noprefix.insert("key".into(), ak.hex().into());
    add("key_without_prefix", HOME, NOW, sign(&noprefix), "invalid_key", None);
    add(
        "nonce_15_bytes",
        HOME,
        NOW,
        sign(&reg_unsigned(&ak, HOME, "alice@kez.lat", NOW, &[0x11; 15])),
        "invalid_encoding",
        None,
    );
    let mut padded = reg_unsigned(&ak, HOME, "alice@kez.lat", NOW, &[0x11; 16]);
    padded.insert("nonce".into(), format!("{}==", b64_encode(&[0x11; 16])).into());
    add("nonce_padded", HOME, NOW, sign(&padded), "invalid_encoding", None);
    let bob_signed = sign_as(&sk(BOB), Purpose::Register, &reg_unsigned(&ak, HOME, "alice@kez.lat", NOW, &[0x11; 16]));
    add("signed_by_another_key", HOME, NOW, bob_signed, "bad_signature", None);
    let mut wt = reg_unsigned(&ak, HOME, "alice@kez.lat", NOW, &[0x11; 16]);
    wt.insert("type".into(), "kez.msg".into());
    add("wrong_type", HOME, NOW, sign(&wt), "wrong_type", None);
    let mut v2 = reg_unsigned(&ak, HOME, "alice@kez.lat", NOW, &[0x11; 16]);
    v2.insert("v".into(), 2.into());
    add("version_2", HOME, NOW, sign(&v2), "wrong_type", None);
    let big = [vec![b' '; 4097 - base.len()], base.clone()].concat();
    add("too_large", HOME, NOW, big, "too_large", Some("4097 bytes; the size is checked before anything else"));
    add("truncated", HOME, NOW, base[..base.len() - 1].to_vec(), "invalid_json", None);
    let dup = text(&base).replacen("{", "{\"v\":1,", 1).into_bytes();
    add("duplicate_key", HOME, NOW, dup, "invalid_json", None);
    add(
        "not_utf8",
        HOME,
        NOW,
        [&base[..base.len() - 2], &[0xff], &base[base.len() - 1..]].concat(),
        "invalid_json",
        None,
    );
    json!({
        "description": "Registration requests (PROTOCOL.md §4): valid requests and rejections with their codes. See README.md.",
        "domain": HOME,
        "valid": valid,
        "invalid": invalid,
    })
}

fn check_register(v: &Value) {
    let domain = v["domain"].as_str().unwrap();
    for c in arr(v, "valid") {
        let bytes = s(c, "bytes").as_bytes();
        let r = register::verify(bytes, domain, u(c, "now")).unwrap_or_else(|e| panic!("case {}: {e}", name(c)));
        let e = &c["expect"];
        assert_eq!(
            (r.aud.as_str(), r.handle.to_string(), r.key.to_string(), r.ts, r.nonce.as_str()),
            (s(e, "aud"), s(e, "handle").to_string(), s(e, "key").to_string(), u(e, "ts"), s(e, "nonce")),
            "case {}",
            name(c)
        );
        // The bytes are exactly what the builder makes from these inputs.
        let nonce: [u8; 16] = b64_decode(s(e, "nonce"), "nonce").unwrap().try_into().unwrap();
        let rebuilt =
            register::build(&seed_of(c, "seed"), &Handle::parse_canonical(s(e, "handle")).unwrap(), u(e, "ts"), nonce);
        assert_eq!(rebuilt, bytes, "case {}", name(c));
    }
    for c in arr(v, "invalid") {
        expect_code(c, register::verify(&bytes_of(c, "bytes"), s(c, "domain"), u(c, "now")));
    }
}

#[test]
fn register_json() {
    run("register.json", gen_register, check_register);
}

// ----------------------------------------------------------- sigchain.json

#[allow(clippy::too_many_arguments)]
fn link_map(
    chain: &PublicKey,
    signer: &PublicKey,
    seqno: u64,
    prev: Option<&str>,
    ctime: u64,
    op: &str,
    ignore: bool,
    body: Value,
) -> Map<String, Value> {
    obj(json!({"type": "kez.sigchain.link", "v": 1, "chain": chain.to_string(), "signer": signer.to_string(),
               "seqno": seqno, "prev": prev, "ctime": ctime, "op": op, "ignore_if_unsupported": ignore, "body": body}))
}

/// A correctly signed link of `owner`'s chain.
fn link(owner: &SigningKey, seqno: u64, prev: Option<&str>, op: &str, body: Value) -> Vec<u8> {
    let k = PublicKey::of(owner);
    sign_as(owner, Purpose::SigchainLink, &link_map(&k, &k, seqno, prev, NOW + seqno * 1000, op, false, body))
}

fn id_of(bytes: &[u8]) -> String {
    parse_link(bytes).unwrap().link_id
}

/// Replays links from an empty state: the state, or the failing index and error.
fn replay(key: &PublicKey, links: &[Vec<u8>]) -> Result<ChainState, (usize, KezError)> {
    let mut st = ChainState::empty(*key);
    for (i, b) in links.iter().enumerate() {
        let l = parse_link(b).map_err(|e| (i, e))?;
        st.apply(&l).map_err(|e| (i, e))?;
    }
    Ok(st)
}

fn nats_body(k: &PublicKey) -> Value {
    json!({"kind": "nats", "subject": format!("kez.inbox.{}", k.hex()), "url": "nats://kez.lat:4222"})
}

fn iroh_body(k: &PublicKey) -> Value {
    json!({"kind": "iroh", "node_id": k.hex()})
}

/// The two device ids of the per-device endpoint vectors.
const DEVICES: [&str; 2] = ["0123456789abcdef", "fedcba9876543210"];

fn device(i: usize) -> DeviceId {
    DEVICES[i].parse().unwrap()
}

/// A per-device iroh body (PROTOCOL.md §5, §7.5) of `owner`'s device `i`.
fn device_body(owner: [u8; 32], i: usize, role: IrohRole) -> Value {
    json!({"kind": "iroh", "node_id": endpoint_key(&owner, &device(i), role).hex(), "device": DEVICES[i], "role": role.as_str()})
}

fn gen_sigchain() -> Value {
    use kv_schemas::sigchain::{Claim, Endpoint, Op, SharedFiles, build_link};
    let alice = sk(ALICE);
    let ak = pk(ALICE);
    let m1 = manifest_fixture().hash;
    let m2 = hex_encode(blake3::hash(b"a later manifest").as_bytes());
    // Chain 1: the full lifecycle, built with the crate's builder and cross-checked by hand.
    let ops = vec![
        Op::AddEndpoint(Endpoint::Nats {
            subject: format!("kez.inbox.{}", ak.hex()),
            url: "nats://kez.lat:4222".into(),
        }),
        Op::AddEndpoint(Endpoint::iroh_wave1(&ak)),
        Op::AddClaim(Claim {
            service: "github".into(),
            account: "alice".into(),
            proof: Some("https://gist.github.com/alice/0123abcd".into()),
        }),
        Op::SetSharedFiles(SharedFiles {
            manifest: m1.clone(),
            manifest_seq: 1,
            size: manifest_fixture().bytes.len() as u64,
        }),
        Op::RemoveEndpoint { target: String::new() },
        Op::AddClaim(Claim { service: "dns".into(), account: "alice.example.org".into(), proof: None }),
        Op::SetSharedFiles(SharedFiles { manifest: m2, manifest_seq: 2, size: 4242 }),
    ];
    let mut full: Vec<Vec<u8>> = vec![];
    let mut first_id = String::new();
    for (i, op) in ops.into_iter().enumerate() {
        let op = match op {
            Op::RemoveEndpoint { .. } => Op::RemoveEndpoint { target: first_id.clone() },
            o => o,
        };
        let prev = full.last().map(|b| id_of(b));
        let bytes = build_link(&alice, i as u64 + 1, prev.as_deref(), NOW + (i as u64 + 1) * 1000, &op);
        let by_hand = link(
            &alice,
            i as u64 + 1,
            prev.as_deref(),
            parse_canonical(&bytes).unwrap()["op"].as_str().unwrap(),
            parse_canonical(&bytes).unwrap()["body"].clone(),
        );
        assert_eq!(bytes, by_hand, "builder and hand construction agree");
        if i == 0 {
            first_id = id_of(&bytes);
        }
        full.push(bytes);
    }
    // Chain 2: an unknown op with ignore_if_unsupported = true is skipped.
    let bob = sk(BOB);
    let bk = pk(BOB);
    let b1 = link(&bob, 1, None, "add_endpoint", iroh_body(&bk));
    let b2 = sign_as(
        &bob,
        Purpose::SigchainLink,
        &link_map(&bk, &bk, 2, Some(&id_of(&b1)), NOW + 2000, "set_avatar", true, json!({"blob": "ab".repeat(32)})),
    );
    let b3 = link(&bob, 3, Some(&id_of(&b2)), "add_claim", json!({"service": "kez", "account": "bob@kez.lat"}));
    let carol = sk(CAROL);
    let c1 = link(&carol, 1, None, "add_endpoint", nats_body(&pk(CAROL)));
    // Chain 4: per-device iroh endpoints (§7.5) next to a wave-1 one; removing
    // device 1 withdraws both of its endpoints. A wave-1 body may name any valid key.
    let mut dev: Vec<Vec<u8>> = vec![];
    let bodies = vec![
        iroh_body(&ak),
        device_body(ALICE, 0, IrohRole::Serve),
        device_body(ALICE, 0, IrohRole::Fetch),
        device_body(ALICE, 1, IrohRole::Serve),
        device_body(ALICE, 1, IrohRole::Fetch),
        iroh_body(&bk),
    ];
    for body in bodies {
        let prev = dev.last().map(|b| id_of(b));
        dev.push(link(&alice, dev.len() as u64 + 1, prev.as_deref(), "add_endpoint", body));
    }
    for target in [id_of(&dev[1]), id_of(&dev[2])] {
        let prev = dev.last().map(|b| id_of(b));
        dev.push(link(&alice, dev.len() as u64 + 1, prev.as_deref(), "remove_endpoint", json!({"target": target})));
    }
    let chains: Vec<Value> = [("full_lifecycle", ak, full.clone()), ("ignored_unknown_op", bk, vec![b1, b2, b3]), ("single_link", pk(CAROL), vec![c1]), ("per_device_iroh_endpoints", ak, dev)]
        .iter()
        .map(|(n, key, links)| {
            let st = replay(key, links).unwrap();
            json!({"name": n, "key": key.to_string(),
                   "links": links.iter().map(|b| { let l = parse_link(b).unwrap(); json!({"bytes": text(b), "seqno": l.seqno, "link_id": l.link_id}) }).collect::<Vec<_>>(),
                   "state": serde_json::to_value(&st).unwrap()})
        })
        .collect();

    // Broken chains.
    let l1 = link(&alice, 1, None, "add_endpoint", nats_body(&ak));
    let id1 = id_of(&l1);
    let other_hash = hex_encode(&Sha256::digest(b"not a link"));
    let mut invalid = vec![];
    let mut add = |n: &str, key: &PublicKey, links: Vec<Vec<u8>>, at: usize, code: &str| {
        match replay(key, &links) {
            Err((i, e)) => assert_eq!((i, e.code.as_str()), (at, code), "generator: {n}: {}", e.message),
            Ok(_) => panic!("generator: {n} verifies"),
        }
        invalid.push(
            json!({"name": n, "key": key.to_string(), "links": links.iter().map(|b| text(b)).collect::<Vec<_>>(),
                            "fails_at": at, "error": code}),
        );
    };
    let l2 = |op: &str, body: Value| link(&alice, 2, Some(&id1), op, body);
    add(
        "bad_prev",
        &ak,
        vec![l1.clone(), link(&alice, 2, Some(&other_hash), "add_endpoint", iroh_body(&ak))],
        1,
        "prev_mismatch",
    );
    add(
        "seqno_gap",
        &ak,
        vec![l1.clone(), link(&alice, 3, Some(&id1), "add_endpoint", iroh_body(&ak))],
        1,
        "seqno_conflict",
    );
    add(
        "seqno_repeated",
        &ak,
        vec![l1.clone(), link(&alice, 1, None, "add_endpoint", iroh_body(&ak))],
        1,
        "seqno_conflict",
    );
    let bob_link = link(&bob, 2, Some(&id1), "add_claim", json!({"service": "kez", "account": "bob"}));
    add("link_of_another_chain", &ak, vec![l1.clone(), bob_link], 1, "invalid_link");
    add("first_link_of_another_chain", &bk, vec![l1.clone()], 0, "invalid_link");
    let forged = sign_as(
        &bob,
        Purpose::SigchainLink,
        &link_map(&ak, &ak, 2, Some(&id1), NOW + 2000, "add_endpoint", false, iroh_body(&ak)),
    );
    add("signed_by_another_key", &ak, vec![l1.clone(), forged], 1, "bad_signature");
    let l2_ok = l2("add_endpoint", iroh_body(&ak));
    let tampered =
        text(&l2_ok).replace(&format!("\"ctime\":{}", NOW + 2000), &format!("\"ctime\":{}", NOW + 2001)).into_bytes();
    add("tampered_after_signing", &ak, vec![l1.clone(), tampered], 1, "bad_signature");
    add(
        "remove_unknown_target",
        &ak,
        vec![l1.clone(), l2("remove_endpoint", json!({"target": other_hash}))],
        1,
        "invalid_link",
    );
    let r2 = l2("remove_endpoint", json!({"target": id1}));
    let r3 = link(&alice, 3, Some(&id_of(&r2)), "remove_endpoint", json!({"target": id1}));
    add("remove_twice", &ak, vec![l1.clone(), r2, r3], 2, "invalid_link");
    let claim2 = l2("add_claim", json!({"service": "kez", "account": "alice"}));
    let rc = link(&alice, 3, Some(&id_of(&claim2)), "remove_endpoint", json!({"target": id_of(&claim2)}));
    add("remove_targets_a_claim", &ak, vec![l1.clone(), claim2, rc], 2, "invalid_link");
    let sf = |seq: u64| json!({"manifest": m1, "manifest_seq": seq, "size": 100});
    let s1 = link(&alice, 1, None, "set_shared_files", sf(5));
    add(
        "manifest_seq_repeated",
        &ak,
        vec![s1.clone(), link(&alice, 2, Some(&id_of(&s1)), "set_shared_files", sf(5))],
        1,
        "invalid_link",
    );
    add(
        "manifest_seq_decreasing",
        &ak,
        vec![s1.clone(), link(&alice, 2, Some(&id_of(&s1)), "set_shared_files", sf(4))],
        1,
        "invalid_link",
    );
    add("unknown_op_without_ignore_flag", &ak, vec![l1.clone(), l2("set_avatar", json!({}))], 1, "invalid_link");
    let nonobj = sign_as(
        &alice,
        Purpose::SigchainLink,
        &link_map(&ak, &ak, 2, Some(&id1), NOW + 2000, "set_avatar", true, json!([])),
    );
    add("ignored_op_body_not_an_object", &ak, vec![l1.clone(), nonobj], 1, "invalid_request");
    add(
        "first_link_with_prev",
        &ak,
        vec![link(&alice, 1, Some(&other_hash), "add_endpoint", nats_body(&ak))],
        0,
        "invalid_link",
    );
    add("first_link_seqno_2", &ak, vec![link(&alice, 2, None, "add_endpoint", nats_body(&ak))], 0, "invalid_link");
    add("seqno_zero", &ak, vec![link(&alice, 0, None, "add_endpoint", nats_body(&ak))], 0, "invalid_link");
    add(
        "prev_uppercase_hex",
        &ak,
        vec![l1.clone(), link(&alice, 2, Some(&id1.to_uppercase()), "add_endpoint", iroh_body(&ak))],
        1,
        "invalid_link",
    );
    let sn = sign_as(
        &alice,
        Purpose::SigchainLink,
        &link_map(&ak, &bk, 1, None, NOW, "add_endpoint", false, nats_body(&ak)),
    );
    add("signer_is_not_chain", &ak, vec![sn], 0, "invalid_link");
    add(
        "nats_subject_of_another_key",
        &ak,
        vec![link(&alice, 1, None, "add_endpoint", nats_body(&bk))],
        0,
        "invalid_link",
    );
    let serve0 = device_body(ALICE, 0, IrohRole::Serve);
    let iroh_case = |f: &dyn Fn(&mut Map<String, Value>)| {
        let mut b = serve0.as_object().unwrap().clone();
        f(&mut b);
        vec![link(&alice, 1, None, "add_endpoint", Value::Object(b))]
    };
    add("iroh_device_without_role", &ak, iroh_case(&|b| drop(b.remove("role"))), 0, "invalid_request");
    add("iroh_role_without_device", &ak, iroh_case(&|b| drop(b.remove("device"))), 0, "invalid_request");
    add("iroh_role_unknown", &ak, iroh_case(&|b| drop(b.insert("role".into(), "relay".into()))), 0, "invalid_link");
    add("iroh_role_uppercase", &ak, iroh_case(&|b| drop(b.insert("role".into(), "Serve".into()))), 0, "invalid_link");
    add(
        "iroh_device_uppercase",
        &ak,
        iroh_case(&|b| drop(b.insert("device".into(), DEVICES[0].to_uppercase().into()))),
        0,
        "invalid_link",
    );
    add(
        "iroh_device_15_chars",
        &ak,
        iroh_case(&|b| drop(b.insert("device".into(), DEVICES[0][..15].into()))),
        0,
        "invalid_link",
    );
    add("iroh_device_a_number", &ak, iroh_case(&|b| drop(b.insert("device".into(), 7.into()))), 0, "invalid_request");
    add("iroh_extra_field", &ak, iroh_case(&|b| drop(b.insert("name".into(), "laptop".into()))), 0, "invalid_request");
    add(
        "iroh_node_id_small_order",
        &ak,
        iroh_case(&|b| drop(b.insert("node_id".into(), format!("01{}", "00".repeat(31)).into()))),
        0,
        "invalid_link",
    );
    add(
        "iroh_node_id_non_canonical",
        &ak,
        iroh_case(&|b| {
            drop(b.insert("node_id".into(), format!("ed{}7f", "ff".repeat(30)).into()));
        }),
        0,
        "invalid_link",
    );
    add(
        "iroh_node_id_uppercase",
        &ak,
        iroh_case(&|b| drop(b.insert("node_id".into(), b["node_id"].as_str().unwrap().to_uppercase().into()))),
        0,
        "invalid_link",
    );
    add(
        "iroh_wave1_node_id_short",
        &ak,
        vec![link(&alice, 1, None, "add_endpoint", json!({"kind": "iroh", "node_id": &ak.hex()[..62]}))],
        0,
        "invalid_link",
    );
    add(
        "unknown_endpoint_kind",
        &ak,
        vec![link(&alice, 1, None, "add_endpoint", json!({"kind": "smtp", "url": "x"}))],
        0,
        "invalid_link",
    );
    let mut nb = nats_body(&ak);
    nb["extra"] = 1.into();
    add("endpoint_body_extra_field", &ak, vec![link(&alice, 1, None, "add_endpoint", nb)], 0, "invalid_request");
    add(
        "nats_url_empty",
        &ak,
        vec![link(
            &alice,
            1,
            None,
            "add_endpoint",
            json!({"kind": "nats", "subject": format!("kez.inbox.{}", ak.hex()), "url": ""}),
        )],
        0,
        "invalid_link",
    );
    add(
        "nats_url_513_chars",
        &ak,
        vec![link(
            &alice,
            1,
            None,
            "add_endpoint",
            json!({"kind": "nats", "subject": format!("kez.inbox.{}", ak.hex()), "url": "u".repeat(513)}),
        )],
        0,
        "invalid_link",
    );
    add(
        "claim_proof_empty",
        &ak,
        vec![link(&alice, 1, None, "add_claim", json!({"service": "kez", "account": "a", "proof": ""}))],
        0,
        "invalid_link",
    );
    add(
        "claim_service_uppercase",
        &ak,
        vec![link(&alice, 1, None, "add_claim", json!({"service": "GitHub", "account": "alice"}))],
        0,
        "invalid_link",
    );
    add(
        "claim_service_33_chars",
        &ak,
        vec![link(&alice, 1, None, "add_claim", json!({"service": "s".repeat(33), "account": "alice"}))],
        0,
        "invalid_link",
    );
    add(
        "claim_account_empty",
        &ak,
        vec![link(&alice, 1, None, "add_claim", json!({"service": "kez", "account": ""}))],
        0,
        "invalid_link",
    );
    add(
        "claim_account_257_chars",
        &ak,
        vec![link(&alice, 1, None, "add_claim", json!({"service": "kez", "account": "a".repeat(257)}))],
        0,
        "invalid_link",
    );
    add(
        "claim_proof_513_chars",
        &ak,
        vec![link(&alice, 1, None, "add_claim", json!({"service": "kez", "account": "a", "proof": "p".repeat(513)}))],
        0,
        "invalid_link",
    );
    add(
        "set_shared_files_uppercase_hash",
        &ak,
        vec![link(
            &alice,
            1,
            None,
            "set_shared_files",
            json!({"manifest": m1.to_uppercase(), "manifest_seq": 1, "size": 1}),
        )],
        0,
        "invalid_link",
    );
    add(
        "remove_target_not_a_hash",
        &ak,
        vec![l1.clone(), l2("remove_endpoint", json!({"target": "link-1"}))],
        1,
        "invalid_link",
    );
    add("not_canonical", &ak, vec![text(&l1).replacen("\":", "\": ", 1).into_bytes()], 0, "not_canonical");
    add("extra_top_level_field", &ak, vec![with_field(&l1, "note", "x".into())], 0, "invalid_request");
    let mut wt = link_map(&ak, &ak, 1, None, NOW, "add_endpoint", false, nats_body(&ak));
    wt.insert("type".into(), "kez.sigchain".into());
    add("wrong_type", &ak, vec![sign_as(&alice, Purpose::SigchainLink, &wt)], 0, "wrong_type");
    let big = sign_as(
        &alice,
        Purpose::SigchainLink,
        &link_map(&ak, &ak, 1, None, NOW, "set_avatar", true, json!({"data": "x".repeat(8192)})),
    );
    add("link_over_8_kib", &ak, vec![big], 0, "too_large");
    let mut badkey = link_map(&ak, &ak, 1, None, NOW, "add_claim", false, json!({"service": "kez", "account": "a"}));
    badkey.insert("chain".into(), format!("ed25519:01{}", "00".repeat(31)).into());
    badkey.insert("signer".into(), format!("ed25519:01{}", "00".repeat(31)).into());
    add("chain_key_small_order", &ak, vec![sign_as(&alice, Purpose::SigchainLink, &badkey)], 0, "invalid_key");
    json!({
        "description": "Sigchains (PROTOCOL.md §5): valid chains with link ids and derived state, and broken chains with the failing link and code. See README.md.",
        "chains": chains,
        "invalid_chains": invalid,
    })
}

fn check_sigchain(v: &Value) {
    for c in arr(v, "chains") {
        let key = key_of(c, "key");
        let links: Vec<Vec<u8>> = arr(c, "links").iter().map(|l| s(l, "bytes").as_bytes().to_vec()).collect();
        for (l, b) in arr(c, "links").iter().zip(&links) {
            let parsed = parse_link(b).unwrap();
            assert_eq!(parsed.link_id, s(l, "link_id"), "case {}", name(c));
            assert_eq!(parsed.seqno, u(l, "seqno"), "case {}", name(c));
            // link_id = SHA-256 of the signing input, recomputed by hand.
            assert_eq!(
                hex_encode(&Sha256::digest(signing_input(Purpose::SigchainLink, &without_sig(b)))),
                s(l, "link_id")
            );
        }
        let st = replay(&key, &links).unwrap_or_else(|(i, e)| panic!("case {}: link {i}: {e}", name(c)));
        assert_eq!(serde_json::to_value(&st).unwrap(), c["state"], "case {}", name(c));
        // The service-side verifier (links as JSON values) agrees.
        let values: Vec<Value> = links.iter().map(|b| serde_json::from_slice(b).unwrap()).collect();
        assert_eq!(kv_schemas::sigchain::verify_chain(&key, &values).unwrap().0, st);
    }
    for c in arr(v, "invalid_chains") {
        let key = key_of(c, "key");
        let links: Vec<Vec<u8>> = arr(c, "links").iter().map(|l| l.as_str().unwrap().as_bytes().to_vec()).collect();
        match replay(&key, &links) {
            Ok(_) => panic!("case {}: chain verifies", name(c)),
            Err((i, e)) => {
                assert_eq!(i as u64, u(c, "fails_at"), "case {}: failed at {i} with {e}", name(c));
                assert_eq!(e.code.as_str(), s(c, "error"), "case {}: {}", name(c), e.message);
            }
        }
    }
}

#[test]
fn sigchain_json() {
    run("sigchain.json", gen_sigchain, check_sigchain);
}

// -------------------------------------------- KEM, written out independently

fn hkdf32(ikm: &[u8], salt: &[u8], info: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    Hkdf::<Sha256>::new(Some(salt), ikm).expand(info, &mut out).unwrap();
    out
}

/// X25519 secret of a seed: clamp(SHA-512(seed)[0..32]) (StaticSecret clamps).
fn x_secret(seed: &[u8; 32]) -> x25519_dalek::StaticSecret {
    let h = Sha512::digest(seed);
    let mut a = [0u8; 32];
    a.copy_from_slice(&h[..32]);
    x25519_dalek::StaticSecret::from(a)
}

/// Sender side of §6/§7.2: (E, ss, key).
fn kem(eph: [u8; 32], recipient: &PublicKey, label: &[u8], extra: &[u8]) -> ([u8; 32], [u8; 32], [u8; 32]) {
    let e = x25519_dalek::StaticSecret::from(eph);
    let big_e = x25519_dalek::PublicKey::from(&e).to_bytes();
    let x_r = recipient.x25519();
    let ss = e.diffie_hellman(&x25519_dalek::PublicKey::from(x_r)).to_bytes();
    assert_ne!(ss, [0; 32]);
    let info = [label, &[0], recipient.as_bytes(), extra].concat();
    (big_e, ss, hkdf32(&ss, &[big_e, x_r].concat(), &info))
}

const MSG_AAD: &[u8] = b"kez-v1/msg\x00\x01";

fn aead(key: &[u8; 32], nonce: [u8; 12], aad: &[u8], pt: &[u8]) -> Vec<u8> {
    ChaCha20Poly1305::new(key.into()).encrypt(&Nonce::from(nonce), Payload { msg: pt, aad }).unwrap()
}

fn aead_open(key: &[u8; 32], nonce: [u8; 12], aad: &[u8], ct: &[u8]) -> Option<Vec<u8>> {
    ChaCha20Poly1305::new(key.into()).decrypt(&Nonce::from(nonce), Payload { msg: ct, aad }).ok()
}

/// Seals arbitrary inner bytes as an envelope (pads with zeros to 256).
fn seal_raw(eph: [u8; 32], recipient: &PublicKey, inner: &[u8]) -> Vec<u8> {
    let (big_e, _, key) = kem(eph, recipient, b"kez-v1/msg", &[]);
    let mut padded = inner.to_vec();
    padded.resize(inner.len().div_ceil(256) * 256, 0);
    let ct = aead(&key, [0; 12], MSG_AAD, &padded);
    canonicalize(&json!({"v": 1, "enc": b64_encode(&big_e), "ct": b64_encode(&ct)}))
}

/// Opens an envelope's AEAD layer: the padded plaintext.
fn open_raw(seed: &[u8; 32], outer: &[u8]) -> Vec<u8> {
    let v: Value = serde_json::from_slice(outer).unwrap();
    let big_e: [u8; 32] = b64_decode(v["enc"].as_str().unwrap(), "enc").unwrap().try_into().unwrap();
    let ct = b64_decode(v["ct"].as_str().unwrap(), "ct").unwrap();
    let me = pk(*seed);
    let ss = x_secret(seed).diffie_hellman(&x25519_dalek::PublicKey::from(big_e)).to_bytes();
    let key = hkdf32(&ss, &[big_e, me.x25519()].concat(), &[b"kez-v1/msg".as_slice(), &[0], me.as_bytes()].concat());
    aead_open(&key, [0; 12], MSG_AAD, &ct).unwrap()
}

// -------------------------------------------------------- file fixtures

struct FileSpec {
    id: [u8; 16],
    key: [u8; 32],
    n16: [u8; 16],
    len: usize,
    name: &'static str,
    recipients: Vec<[u8; 32]>,
    ephs: Vec<[u8; 32]>,
}

fn plain(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8).collect()
}

fn build_entry(owner: &PublicKey, f: &FileSpec) -> (Entry, Vec<u8>, FileMeta) {
    let pt = plain(f.len);
    let blob = files::encrypt_bytes(&f.key, f.n16, &pt);
    let bh = *blake3::hash(&blob).as_bytes();
    let meta = FileMeta { name: f.name.into(), size: f.len as u64, hash: hex_encode(blake3::hash(&pt).as_bytes()) };
    let wraps = f
        .recipients
        .iter()
        .zip(&f.ephs)
        .map(|(r, e)| files::wrap_with(*e, &pk(*r), owner, &bh, &f.key).unwrap())
        .collect();
    let entry = Entry {
        id: b64_encode(&f.id),
        blob: hex_encode(&bh),
        ct_size: blob.len() as u64,
        commit: hex_encode(&files::commitment(&f.key, &f.n16)),
        meta: files::seal_meta(&f.key, &bh, &meta),
        wraps,
    };
    (entry, blob, meta)
}

struct ManifestFixture {
    files: Vec<FileSpec>,
    entries: Vec<Entry>,
    bytes: Vec<u8>,
    hash: String,
}

fn manifest_files() -> Vec<FileSpec> {
    vec![
        FileSpec {
            id: [0x61; 16],
            key: [0x62; 32],
            n16: [0x63; 16],
            len: 1000,
            name: "notes.txt",
            recipients: vec![BOB],
            ephs: vec![[0x64; 32]],
        },
        FileSpec {
            id: [0x71; 16],
            key: [0x72; 32],
            n16: [0x73; 16],
            len: 70_000,
            name: "photo.jpg",
            recipients: vec![CAROL],
            ephs: vec![[0x74; 32]],
        },
        FileSpec {
            id: [0x81; 16],
            key: [0x82; 32],
            n16: [0x83; 16],
            len: 0,
            name: "empty for both.txt",
            recipients: vec![BOB, CAROL],
            ephs: vec![[0x84; 32], [0x85; 32]],
        },
    ]
}

fn manifest_fixture() -> ManifestFixture {
    let owner = pk(ALICE);
    let files = manifest_files();
    let entries: Vec<Entry> = files.iter().map(|f| build_entry(&owner, f).0).collect();
    let bytes = manifest::build(&sk(ALICE), 1, NOW, &entries).unwrap();
    let hash = manifest::manifest_hash(&bytes);
    ManifestFixture { files, entries, bytes, hash }
}

// ----------------------------------------------------------- envelopes.json

fn body_json(b: &Body) -> (&'static str, Value) {
    (b.kind(), b.to_value())
}

fn body_from(kind: &str, v: &Value) -> Body {
    match kind {
        "text" => Body::Text(v["text"].as_str().unwrap().into()),
        "file_share" => Body::FileShare {
            entry: files::parse_entry(&v["entry"]).unwrap(),
            node_id: v["node_id"].as_str().unwrap().into(),
        },
        "sent" => Body::Sent {
            peer: v["peer"].as_str().unwrap().parse().unwrap(),
            id: v["id"].as_str().unwrap().into(),
            body: Box::new(body_from(v["kind"].as_str().unwrap(), &v["body"])),
        },
        other => panic!("kind {other}"),
    }
}

fn strip_zeros(mut v: Vec<u8>) -> Vec<u8> {
    while v.last() == Some(&0) {
        v.pop();
    }
    v
}

#[allow(clippy::too_many_arguments)]
fn inner_map(
    from: &PublicKey,
    to: &PublicKey,
    enc: &str,
    id: &[u8],
    ts: u64,
    kind: &str,
    body: Value,
) -> Map<String, Value> {
    obj(json!({"type": "kez.msg", "v": 1, "from": from.to_string(), "to": to.to_string(), "enc": enc,
               "id": b64_encode(id), "ts": ts, "kind": kind, "body": body}))
}

fn eph_pub(eph: [u8; 32]) -> String {
    b64_encode(&x25519_dalek::PublicKey::from(&x25519_dalek::StaticSecret::from(eph)).to_bytes())
}

fn gen_envelopes() -> Value {
    let fx = manifest_fixture();
    let base_len = {
        // Inner length with an empty-ish text, to find a text that fills a 256-byte block exactly.
        let o =
            envelope::seal_with(&sk(ALICE), &pk(BOB), &Body::Text("x".into()), NOW, [0x35; 16], [0x45; 32]).unwrap();
        strip_zeros(open_raw(&BOB, &o)).len() - 1
    };
    let fill = 512 - base_len;
    let valid_specs: Vec<(&str, [u8; 32], [u8; 32], [u8; 32], [u8; 16], u64, Body, u64)> = vec![
        ("text_hello", ALICE, BOB, [0x41; 32], [0x31; 16], NOW, Body::Text("hello".into()), NOW),
        (
            "text_unicode_and_escapes",
            ALICE,
            BOB,
            [0x42; 32],
            [0x32; 16],
            NOW,
            Body::Text("héllo 😀 \u{2028} \"quoted\" \\ \n end".into()),
            NOW,
        ),
        (
            "text_fills_block_exactly_no_padding",
            ALICE,
            BOB,
            [0x45; 32],
            [0x35; 16],
            NOW,
            Body::Text("x".repeat(fill)),
            NOW,
        ),
        (
            "text_16384_chars_some_non_bmp",
            ALICE,
            BOB,
            [0x43; 32],
            [0x33; 16],
            NOW,
            Body::Text(format!("{}{}", "a".repeat(16_000), "😀".repeat(384))),
            NOW,
        ),
        (
            "file_share",
            ALICE,
            BOB,
            [0x44; 32],
            [0x34; 16],
            NOW,
            Body::FileShare { entry: fx.entries[0].clone(), node_id: pk(ALICE).hex() },
            NOW,
        ),
        (
            "ts_at_future_skew_limit",
            BOB,
            CAROL,
            [0x46; 32],
            [0x36; 16],
            NOW + 300_000,
            Body::Text("from the future".into()),
            NOW,
        ),
        ("ts_at_retention_window_start", BOB, CAROL, [0x47; 32], [0x37; 16], NOW - DAY, Body::Text("old".into()), NOW),
        ("note_to_self", ALICE, ALICE, [0x48; 32], [0x38; 16], NOW, Body::Text("remember".into()), NOW),
        (
            "sent_copy_text",
            ALICE,
            ALICE,
            [0x4b; 32],
            [0x3b; 16],
            NOW,
            Body::Sent { peer: pk(BOB), id: b64_encode(&[0x31; 16]), body: Box::new(Body::Text("hello".into())) },
            NOW,
        ),
        (
            "sent_copy_file_share",
            ALICE,
            ALICE,
            [0x4c; 32],
            [0x3c; 16],
            NOW,
            Body::Sent {
                peer: pk(CAROL),
                id: b64_encode(&[0x34; 16]),
                body: Box::new(Body::FileShare { entry: fx.entries[0].clone(), node_id: pk(ALICE).hex() }),
            },
            NOW,
        ),
    ];
    let valid: Vec<Value> = valid_specs
        .iter()
        .map(|(n, from, to, eph, id, ts, body, now)| {
            let outer = envelope::seal_with(&sk(*from), &pk(*to), body, *ts, *id, *eph).unwrap();
            let padded = open_raw(to, &outer);
            assert_eq!(padded.len() % 256, 0);
            let inner = strip_zeros(padded);
            assert_eq!(seal_raw(*eph, &pk(*to), &inner), outer, "{n}: independent construction agrees");
            let opened = envelope::open(&sk(*to), &outer, *now, DAY).unwrap();
            let (kind, bj) = body_json(&opened.body);
            json!({"name": n, "sender_seed": hex_encode(from), "recipient_seed": hex_encode(to), "eph_secret": hex_encode(eph),
                   "id_hex": hex_encode(id), "ts": ts, "kind": body_json(body).0, "body": body_json(body).1,
                   "now": now, "window_ms": DAY, "inner": text(&inner), "outer": text(&outer),
                   "expect": {"from": opened.from.to_string(), "id": opened.id, "ts": opened.ts, "kind": kind, "body": bj}})
        })
        .collect();
    assert_eq!(valid[2]["inner"].as_str().unwrap().len(), 512);

    let (alice, carol) = (sk(ALICE), sk(CAROL));
    let (ak, bk, ck) = (pk(ALICE), pk(BOB), pk(CAROL));
    let hello = envelope::seal_with(&alice, &bk, &Body::Text("hello".into()), NOW, [0x31; 16], [0x41; 32]).unwrap();
    let hv: Value = serde_json::from_slice(&hello).unwrap();
    let (enc, ct) = (hv["enc"].as_str().unwrap().to_string(), hv["ct"].as_str().unwrap().to_string());
    let outer_of = |v: Value| canonicalize(&v);
    let mut invalid = vec![];
    let mut add = |n: &str, recipient: [u8; 32], now: u64, outer: Vec<u8>, code: &str, note: Option<&str>| {
        intend(n, envelope::open(&sk(recipient), &outer, now, DAY), code);
        let mut c = json!({"name": n, "recipient_seed": hex_encode(&recipient), "now": now, "window_ms": DAY, "outer": text(&outer), "error": code});
        if let Some(note) = note {
            c["note"] = note.into();
        }
        invalid.push(c);
    };
    add("wrong_recipient_seed", CAROL, NOW, hello.clone(), "decrypt_failed", Some("text_hello opened by carol"));
    let mut ctb = b64_decode(&ct, "ct").unwrap();
    ctb[0] ^= 1;
    add("tampered_ct", BOB, NOW, outer_of(json!({"v": 1, "enc": enc, "ct": b64_encode(&ctb)})), "decrypt_failed", None);
    add(
        "tampered_enc",
        BOB,
        NOW,
        outer_of(json!({"v": 1, "enc": eph_pub([0x49; 32]), "ct": ct})),
        "decrypt_failed",
        None,
    );
    add(
        "enc_low_order_u0",
        BOB,
        NOW,
        outer_of(json!({"v": 1, "enc": b64_encode(&[0; 32]), "ct": ct})),
        "decrypt_failed",
        Some("all-zero shared secret"),
    );
    let mut u1 = [0u8; 32];
    u1[0] = 1;
    add(
        "enc_low_order_u1",
        BOB,
        NOW,
        outer_of(json!({"v": 1, "enc": b64_encode(&u1), "ct": ct})),
        "decrypt_failed",
        Some("all-zero shared secret"),
    );
    add("stale", BOB, NOW + DAY + 1, hello.clone(), "stale_timestamp", Some("ts is older than now - window_ms"));
    add("from_the_future", BOB, NOW - 300_001, hello.clone(), "stale_timestamp", Some("ts is later than now + 5 min"));
    add("outer_not_canonical", BOB, NOW, text(&hello).replacen("\":", "\": ", 1).into_bytes(), "not_canonical", None);
    add(
        "outer_key_order",
        BOB,
        NOW,
        format!("{{\"v\":1,\"enc\":\"{enc}\",\"ct\":\"{ct}\"}}").into_bytes(),
        "not_canonical",
        None,
    );
    add(
        "outer_extra_key",
        BOB,
        NOW,
        outer_of(json!({"v": 1, "enc": enc, "ct": ct, "from": ak.to_string()})),
        "invalid_request",
        None,
    );
    add("outer_missing_v", BOB, NOW, outer_of(json!({"enc": enc, "ct": ct})), "invalid_request", None);
    add("outer_v2", BOB, NOW, outer_of(json!({"v": 2, "enc": enc, "ct": ct})), "wrong_type", None);
    add(
        "outer_enc_31_bytes",
        BOB,
        NOW,
        outer_of(json!({"v": 1, "enc": b64_encode(&[7; 31]), "ct": ct})),
        "invalid_encoding",
        None,
    );
    add(
        "outer_ct_padded",
        BOB,
        NOW,
        outer_of(json!({"v": 1, "enc": enc, "ct": format!("{ct}=")})),
        "invalid_encoding",
        None,
    );
    add("outer_not_json", BOB, NOW, b"{\"v\":1,".to_vec(), "invalid_json", None);
    add(
        "outer_duplicate_key",
        BOB,
        NOW,
        format!("{{\"ct\":\"{ct}\",\"enc\":\"{enc}\",\"v\":1,\"v\":1}}").into_bytes(),
        "invalid_json",
        None,
    );
    // Hand-built inner messages, sealed to bob with the right KEM key.
    let eph = [0x4a; 32];
    let e = eph_pub(eph);
    let good = |m: &Map<String, Value>| sign_as(&alice, Purpose::Msg, m);
    let base = || inner_map(&ak, &bk, &e, &[0x3a; 16], NOW, "text", json!({"text": "hi"}));
    add(
        "inner_signed_by_another_key",
        BOB,
        NOW,
        seal_raw(eph, &bk, &sign_as(&carol, Purpose::Msg, &base())),
        "bad_signature",
        Some("from is alice, signed by carol"),
    );
    let sent_to_bob = Body::Sent { peer: ck, id: b64_encode(&[0x3d; 16]), body: Box::new(Body::Text("hi".into())) };
    add(
        "sent_copy_from_another_key",
        BOB,
        NOW,
        envelope::seal_with(&alice, &bk, &sent_to_bob, NOW, [0x3d; 16], [0x4d; 32]).unwrap(),
        "invalid_request",
        Some("a sent copy is only valid from the reader's own key"),
    );
    let bob_sk = sk(BOB);
    let self_sent = |body: Value| {
        seal_raw(eph, &bk, &sign_as(&bob_sk, Purpose::Msg, &inner_map(&bk, &bk, &e, &[0x3e; 16], NOW, "sent", body)))
    };
    let hi = json!({"text": "hi"});
    let sent_id = b64_encode(&[0x3f; 16]);
    add(
        "sent_copy_nested",
        BOB,
        NOW,
        self_sent(json!({"peer": ck.to_string(), "id": sent_id, "kind": "sent",
                         "body": {"peer": ck.to_string(), "id": sent_id, "kind": "text", "body": hi}})),
        "invalid_request",
        Some("a sent copy cannot contain another sent copy"),
    );
    add(
        "sent_copy_bad_peer",
        BOB,
        NOW,
        self_sent(json!({"peer": "ed25519:00", "id": sent_id, "kind": "text", "body": hi})),
        "invalid_key",
        None,
    );
    add(
        "sent_copy_extra_key",
        BOB,
        NOW,
        self_sent(json!({"peer": ck.to_string(), "id": sent_id, "kind": "text", "body": hi, "ts": 1})),
        "invalid_request",
        None,
    );
    add(
        "inner_to_another_key",
        BOB,
        NOW,
        seal_raw(eph, &bk, &good(&inner_map(&ak, &ck, &e, &[0x3a; 16], NOW, "text", json!({"text": "hi"})))),
        "wrong_recipient",
        Some("KEM to bob, inner to = carol"),
    );
    add(
        "inner_enc_mismatch",
        BOB,
        NOW,
        seal_raw(
            eph,
            &bk,
            &good(&inner_map(&ak, &bk, &eph_pub([0x4b; 32]), &[0x3a; 16], NOW, "text", json!({"text": "hi"}))),
        ),
        "enc_mismatch",
        None,
    );
    add(
        "inner_not_canonical",
        BOB,
        NOW,
        seal_raw(eph, &bk, text(&good(&base())).replacen("\":", "\": ", 1).as_bytes()),
        "not_canonical",
        None,
    );
    let mut extra = base();
    extra.insert("reply_to".into(), "x".into());
    add("inner_extra_field", BOB, NOW, seal_raw(eph, &bk, &good(&extra)), "invalid_request", None);
    add(
        "inner_missing_sig",
        BOB,
        NOW,
        seal_raw(eph, &bk, &canonicalize(&Value::Object(base()))),
        "invalid_request",
        None,
    );
    let mut wt = base();
    wt.insert("type".into(), "kez.message".into());
    add("inner_wrong_type", BOB, NOW, seal_raw(eph, &bk, &good(&wt)), "wrong_type", None);
    let mut v2 = base();
    v2.insert("v".into(), 2.into());
    add("inner_v2", BOB, NOW, seal_raw(eph, &bk, &good(&v2)), "wrong_type", None);
    add(
        "inner_empty_text",
        BOB,
        NOW,
        seal_raw(eph, &bk, &good(&inner_map(&ak, &bk, &e, &[0x3a; 16], NOW, "text", json!({"text": ""})))),
        "invalid_request",
        None,
    );
    add(
        "inner_text_16385_chars",
        BOB,
        NOW,
        seal_raw(
            eph,
            &bk,
            &good(&inner_map(&ak, &bk, &e, &[0x3a; 16], NOW, "text", json!({"text": "a".repeat(16_385)}))),
        ),
        "invalid_request",
        None,
    );
    add(
        "inner_unknown_kind",
        BOB,
        NOW,
        seal_raw(eph, &bk, &good(&inner_map(&ak, &bk, &e, &[0x3a; 16], NOW, "sticker", json!({"text": "hi"})))),
        "invalid_request",
        None,
    );
    add(
        "inner_id_15_bytes",
        BOB,
        NOW,
        seal_raw(eph, &bk, &good(&inner_map(&ak, &bk, &e, &[0x3a; 15], NOW, "text", json!({"text": "hi"})))),
        "invalid_encoding",
        None,
    );
    let mut small = base();
    small.insert("from".into(), format!("ed25519:01{}", "00".repeat(31)).into());
    add("inner_from_small_order_key", BOB, NOW, seal_raw(eph, &bk, &good(&small)), "bad_signature", None);
    let mut bad_to = base();
    bad_to.insert("to".into(), format!("ed25519:01{}", "00".repeat(31)).into());
    add(
        "inner_to_not_a_valid_key",
        BOB,
        NOW,
        seal_raw(eph, &bk, &good(&bad_to)),
        "wrong_recipient",
        Some("a malformed to is not the reader"),
    );
    add(
        "inner_garbage_after_padding",
        BOB,
        NOW,
        seal_raw(eph, &bk, &[good(&base()), vec![0, b'x']].concat()),
        "invalid_json",
        Some("only trailing 0x00 bytes are padding"),
    );
    json!({
        "description": "Chat envelopes (PROTOCOL.md §6): deterministic seals with their opened fields, and opening failures with codes. See README.md.",
        "valid": valid,
        "invalid": invalid,
    })
}

fn check_envelopes(v: &Value) {
    for c in arr(v, "valid") {
        let (from, to) = (hx32(c, "sender_seed"), hx32(c, "recipient_seed"));
        let body = body_from(s(c, "kind"), &c["body"]);
        let outer =
            envelope::seal_with(&sk(from), &pk(to), &body, u(c, "ts"), hx16(c, "id_hex"), hx32(c, "eph_secret"))
                .unwrap();
        assert_eq!(text(&outer), s(c, "outer"), "case {}", name(c));
        let padded = open_raw(&to, s(c, "outer").as_bytes());
        assert_eq!(padded.len() % 256, 0, "case {}", name(c));
        assert_eq!(text(&strip_zeros(padded)), s(c, "inner"), "case {}", name(c));
        assert_eq!(seal_raw(hx32(c, "eph_secret"), &pk(to), s(c, "inner").as_bytes()), outer, "case {}", name(c));
        let o = envelope::open(&sk(to), s(c, "outer").as_bytes(), u(c, "now"), u(c, "window_ms"))
            .unwrap_or_else(|e| panic!("case {}: {e}", name(c)));
        let e = &c["expect"];
        let (kind, bj) = body_json(&o.body);
        assert_eq!(
            (o.from.to_string(), o.id.as_str(), o.ts, kind, bj),
            (s(e, "from").to_string(), s(e, "id"), u(e, "ts"), s(e, "kind"), e["body"].clone()),
            "case {}",
            name(c)
        );
        assert_eq!(o.id, b64_encode(&hx16(c, "id_hex")));
        assert_eq!(o.from, pk(from));
    }
    for c in arr(v, "invalid") {
        expect_code(
            c,
            envelope::open(&seed_of(c, "recipient_seed"), s(c, "outer").as_bytes(), u(c, "now"), u(c, "window_ms")),
        );
    }
}

#[test]
fn envelopes_json() {
    run("envelopes.json", gen_envelopes, check_envelopes);
}

// --------------------------------------------------------------- files.json

const STREAM_LENGTHS: &[usize] = &[0, 1, 65_535, 65_536, 65_537, 200_000];

fn stream_key() -> ([u8; 32], [u8; 16]) {
    let k: [u8; 32] = std::array::from_fn(|i| i as u8);
    let n: [u8; 16] = std::array::from_fn(|i| 0xa0 + i as u8);
    (k, n)
}

fn chunk_nonce(i: u64, last: bool) -> [u8; 12] {
    let mut n = [0u8; 12];
    n[3..11].copy_from_slice(&i.to_be_bytes());
    n[11] = u8::from(last);
    n
}

/// Independent STREAM encryption (§7.1).
fn stream_raw(k: &[u8; 32], n16: &[u8; 16], pt: &[u8]) -> Vec<u8> {
    let kp = hkdf32(k, n16, b"kez-v1/file/payload");
    let mut out = n16.to_vec();
    let chunks: Vec<&[u8]> = if pt.is_empty() { vec![&[]] } else { pt.chunks(65_536).collect() };
    for (i, c) in chunks.iter().enumerate() {
        out.extend(aead(&kp, chunk_nonce(i as u64, i + 1 == chunks.len()), b"", c));
    }
    out
}

fn assemble(parts: &[Value], blobs: &dyn Fn(&str) -> Vec<u8>) -> Vec<u8> {
    let mut out = vec![];
    for p in parts {
        if let Some(h) = p.get("hex") {
            out.extend(hex::decode(h.as_str().unwrap()).unwrap());
        } else {
            let b = blobs(p["source"].as_str().unwrap());
            out.extend_from_slice(&b[p["start"].as_u64().unwrap() as usize..p["end"].as_u64().unwrap() as usize]);
        }
    }
    out
}

fn meta_key(k: &[u8; 32]) -> [u8; 32] {
    hkdf32(k, b"", b"kez-v1/file/meta")
}

fn meta_aad(bh: &[u8; 32]) -> Vec<u8> {
    [b"kez-v1/file/meta\0".as_slice(), bh].concat()
}

fn gen_files() -> Value {
    let (k, n16) = stream_key();
    let blobs: Vec<(String, Vec<u8>)> =
        STREAM_LENGTHS.iter().map(|&len| (format!("len_{len}"), files::encrypt_bytes(&k, n16, &plain(len)))).collect();
    let stream: Vec<Value> = STREAM_LENGTHS
        .iter()
        .zip(&blobs)
        .map(|(&len, (n, blob))| {
            assert_eq!(blob, &stream_raw(&k, &n16, &plain(len)), "{n}: independent STREAM agrees");
            assert_eq!(blob.len() as u64, files::blob_size(len as u64));
            json!({"name": n, "file_key": hex_encode(&k), "n16": hex_encode(&n16), "plaintext": plain_spec(len),
                   "plaintext_blake3": hex_encode(blake3::hash(&plain(len)).as_bytes()),
                   "payload_key": hex_encode(&hkdf32(&k, &n16, b"kez-v1/file/payload")),
                   "commit": hex_encode(&files::commitment(&k, &n16)), "blob_len": blob.len(),
                   "blob_blake3": hex_encode(blake3::hash(blob).as_bytes()),
                   "blob_head_hex": hex_encode(&blob[..blob.len().min(64)]),
                   "blob_tail_hex": hex_encode(&blob[blob.len().saturating_sub(64)..])})
        })
        .collect();
    let blob_of = |n: &str| blobs.iter().find(|(m, _)| m == n).unwrap().1.clone();
    let commit = hex_encode(&files::commitment(&k, &n16));
    let kp = hkdf32(&k, &n16, b"kez-v1/file/payload");
    let src = |s: &str, a: usize, b: usize| json!({"source": s, "start": a, "end": b});
    let hexp = |b: &[u8]| json!({"hex": hex_encode(b)});
    let full = 16 + 65_536 + 16;
    let l1 = blob_of("len_1");
    let mut flipped_tag = l1.clone();
    *flipped_tag.last_mut().unwrap() ^= 1;
    let other_key = [0x99u8; 32];
    let specs: Vec<(&str, [u8; 32], String, Vec<Value>, &str)> = vec![
        ("flipped_tag_byte", k, commit.clone(), vec![src("len_1", 0, 32), hexp(&flipped_tag[32..])], "aead"),
        (
            "flipped_ciphertext_byte",
            k,
            commit.clone(),
            vec![src("len_1", 0, 16), hexp(&[l1[16] ^ 0x80]), src("len_1", 17, 33)],
            "aead",
        ),
        ("flipped_header_byte", k, commit.clone(), vec![hexp(&[l1[0] ^ 1]), src("len_1", 1, 33)], "commit"),
        (
            "commit_of_another_key",
            k,
            hex_encode(&files::commitment(&other_key, &n16)),
            vec![src("len_1", 0, 33)],
            "commit",
        ),
        (
            "another_key_with_its_own_commit",
            other_key,
            hex_encode(&files::commitment(&other_key, &n16)),
            vec![src("len_1", 0, 33)],
            "aead",
        ),
        ("last_byte_missing", k, commit.clone(), vec![src("len_65537", 0, full + 16)], "aead"),
        ("final_chunk_dropped_at_boundary", k, commit.clone(), vec![src("len_65537", 0, full)], "truncated"),
        ("final_chunk_dropped_of_four", k, commit.clone(), vec![src("len_200000", 0, 16 + 3 * 65_552)], "truncated"),
        (
            "chunks_reordered",
            k,
            commit.clone(),
            vec![
                src("len_200000", 0, 16),
                src("len_200000", 16 + 65_552, 16 + 2 * 65_552),
                src("len_200000", 16, 16 + 65_552),
                src("len_200000", 16 + 2 * 65_552, 200_000 + 16 + 4 * 16),
            ],
            "aead",
        ),
        (
            "empty_final_chunk_after_full_chunk",
            k,
            commit.clone(),
            vec![src("len_65537", 0, full), hexp(&aead(&kp, chunk_nonce(1, true), b"", b""))],
            "empty_final",
        ),
        (
            "full_chunk_marked_final_then_more",
            k,
            commit.clone(),
            vec![src("len_65536", 0, full), src("len_65537", full, full + 17)],
            "aead",
        ),
        ("extra_trailing_byte", k, commit.clone(), vec![src("len_1", 0, 33), hexp(&[0])], "aead"),
        ("header_only", k, commit.clone(), vec![src("len_0", 0, 16)], "truncated"),
        ("short_header", k, commit.clone(), vec![src("len_0", 0, 10)], "truncated"),
        ("empty_blob", k, commit.clone(), vec![], "truncated"),
    ];
    let stream_invalid: Vec<Value> = specs
        .into_iter()
        .map(|(n, key, commit, parts, reason)| {
            let blob = assemble(&parts, &blob_of);
            let c: [u8; 32] = hex::decode(&commit).unwrap().try_into().unwrap();
            intend(n, files::decrypt_bytes(key, c, &blob), "decrypt_failed");
            json!({"name": n, "file_key": hex_encode(&key), "commit": commit, "blob": parts, "error": "decrypt_failed", "reason": reason})
        })
        .collect();

    // Wraps.
    let bh = *blake3::hash(&blob_of("len_65537")).as_bytes();
    let ak = pk(ALICE);
    let wraps: Vec<Value> = [
        ("wrap_for_bob", [0x51u8; 32], BOB),
        ("wrap_for_carol", [0x52; 32], CAROL),
        ("wrap_for_owner_self", [0x53; 32], ALICE),
    ]
    .iter()
    .map(|(n, eph, r)| {
        let rk = pk(*r);
        let w = files::wrap_with(*eph, &rk, &ak, &bh, &k).unwrap();
        let extra = [ak.as_bytes().as_slice(), &bh].concat();
        let (big_e, ss, key) = kem(*eph, &rk, b"kez-v1/file-key", &extra);
        let ct = aead(&key, [0; 12], b"kez-v1/file-key", &k);
        assert_eq!(
            (w.enc.clone(), w.ct.clone()),
            (b64_encode(&big_e), b64_encode(&ct)),
            "{n}: independent wrap agrees"
        );
        json!({"name": n, "eph_secret": hex_encode(eph), "recipient_seed": hex_encode(r), "recipient": rk.to_string(),
                   "owner": ak.to_string(), "blob_hash": hex_encode(&bh), "file_key": hex_encode(&k),
                   "shared_secret_hex": hex_encode(&ss), "wrap_key_hex": hex_encode(&key), "enc": w.enc, "ct": w.ct})
    })
    .collect();
    let wb = files::wrap_with([0x51; 32], &pk(BOB), &ak, &bh, &k).unwrap();
    let ctb = b64_decode(&wb.ct, "ct").unwrap();
    let mut tampered = ctb.clone();
    tampered[47] ^= 1;
    let other_bh = *blake3::hash(b"another blob").as_bytes();
    let winv: Vec<(&str, [u8; 32], PublicKey, [u8; 32], String, String)> = vec![
        ("wrong_reader", CAROL, ak, bh, wb.enc.clone(), wb.ct.clone()),
        ("wrong_owner", BOB, pk(CAROL), bh, wb.enc.clone(), wb.ct.clone()),
        ("wrong_blob_hash", BOB, ak, other_bh, wb.enc.clone(), wb.ct.clone()),
        ("ct_47_bytes", BOB, ak, bh, wb.enc.clone(), b64_encode(&ctb[..47])),
        ("ct_49_bytes", BOB, ak, bh, wb.enc.clone(), b64_encode(&[ctb.as_slice(), &[0]].concat())),
        ("ct_tampered", BOB, ak, bh, wb.enc.clone(), b64_encode(&tampered)),
        ("enc_low_order_u0", BOB, ak, bh, b64_encode(&[0; 32]), wb.ct.clone()),
        ("enc_not_base64url", BOB, ak, bh, "!".repeat(43), wb.ct.clone()),
    ];
    let wraps_invalid: Vec<Value> = winv
        .into_iter()
        .map(|(n, reader, owner, bhx, enc, ct)| {
            assert!(files::unwrap(&Wrap { enc: enc.clone(), ct: ct.clone() }, &sk(reader), &owner, &bhx).is_none(), "{n}");
            json!({"name": n, "reader_seed": hex_encode(&reader), "owner": owner.to_string(), "blob_hash": hex_encode(&bhx),
                   "wrap": {"enc": enc, "ct": ct}, "reason": n})
        })
        .collect();

    // Metadata.
    let metas = [
        (
            "ascii_name",
            FileMeta { name: "notes.txt".into(), size: 1000, hash: hex_encode(blake3::hash(&plain(1000)).as_bytes()) },
        ),
        (
            "unicode_name",
            FileMeta {
                name: "Résumé 2026 😀.pdf".into(),
                size: 65_537,
                hash: hex_encode(blake3::hash(&plain(65_537)).as_bytes()),
            },
        ),
        ("name_255_bytes", FileMeta { name: "n".repeat(255), size: 0, hash: hex_encode(blake3::hash(b"").as_bytes()) }),
        (
            "name_near_device_names",
            FileMeta { name: "console.com10 .txt".into(), size: 0, hash: hex_encode(blake3::hash(b"").as_bytes()) },
        ),
    ];
    let meta: Vec<Value> = metas
        .iter()
        .map(|(n, m)| {
            let sealed = files::seal_meta(&k, &bh, m);
            let pt = canonicalize(&json!({"name": m.name, "size": m.size, "hash": m.hash}));
            assert_eq!(b64_encode(&aead(&meta_key(&k), [0; 12], &meta_aad(&bh), &pt)), sealed, "{n}: independent meta agrees");
            json!({"name": n, "file_key": hex_encode(&k), "blob_hash": hex_encode(&bh), "meta": {"name": m.name, "size": m.size, "hash": m.hash},
                   "meta_key": hex_encode(&meta_key(&k)), "plaintext": text(&pt), "sealed": sealed})
        })
        .collect();
    let good_meta = files::seal_meta(&k, &bh, &metas[0].1);
    let seal_pt = |pt: &[u8]| b64_encode(&aead(&meta_key(&k), [0; 12], &meta_aad(&bh), pt));
    let h = metas[0].1.hash.clone();
    let mi: Vec<(&str, [u8; 32], [u8; 32], String, &str)> = vec![
        ("wrong_blob_hash", k, other_bh, good_meta.clone(), "decrypt_failed"),
        ("wrong_file_key", other_key, bh, good_meta.clone(), "decrypt_failed"),
        (
            "name_with_slash",
            k,
            bh,
            seal_pt(&canonicalize(&json!({"name": "a/b", "size": 1, "hash": h}))),
            "invalid_manifest",
        ),
        (
            "name_with_nul",
            k,
            bh,
            seal_pt(&canonicalize(&json!({"name": "a\u{0}b", "size": 1, "hash": h}))),
            "invalid_manifest",
        ),
        (
            "name_with_backslash",
            k,
            bh,
            seal_pt(&canonicalize(&json!({"name": "a\\b", "size": 1, "hash": h}))),
            "invalid_manifest",
        ),
        (
            "name_dot_dot",
            k,
            bh,
            seal_pt(&canonicalize(&json!({"name": "..", "size": 1, "hash": h}))),
            "invalid_manifest",
        ),
        ("name_dot", k, bh, seal_pt(&canonicalize(&json!({"name": ".", "size": 1, "hash": h}))), "invalid_manifest"),
        (
            "name_with_colon",
            k,
            bh,
            seal_pt(&canonicalize(&json!({"name": "a:b", "size": 1, "hash": h}))),
            "invalid_manifest",
        ),
        (
            "name_trailing_dot",
            k,
            bh,
            seal_pt(&canonicalize(&json!({"name": "a.", "size": 1, "hash": h}))),
            "invalid_manifest",
        ),
        (
            "name_trailing_space",
            k,
            bh,
            seal_pt(&canonicalize(&json!({"name": "a ", "size": 1, "hash": h}))),
            "invalid_manifest",
        ),
        (
            "name_device_con",
            k,
            bh,
            seal_pt(&canonicalize(&json!({"name": "CON", "size": 1, "hash": h}))),
            "invalid_manifest",
        ),
        (
            "name_device_nul_ext",
            k,
            bh,
            seal_pt(&canonicalize(&json!({"name": "nul.txt", "size": 1, "hash": h}))),
            "invalid_manifest",
        ),
        (
            "name_device_com1",
            k,
            bh,
            seal_pt(&canonicalize(&json!({"name": "Com1.tar.gz", "size": 1, "hash": h}))),
            "invalid_manifest",
        ),
        (
            "name_device_lpt9_space",
            k,
            bh,
            seal_pt(&canonicalize(&json!({"name": "lpt9 .txt", "size": 1, "hash": h}))),
            "invalid_manifest",
        ),
        ("name_empty", k, bh, seal_pt(&canonicalize(&json!({"name": "", "size": 1, "hash": h}))), "invalid_manifest"),
        (
            "name_256_bytes",
            k,
            bh,
            seal_pt(&canonicalize(&json!({"name": "n".repeat(256), "size": 1, "hash": h}))),
            "invalid_manifest",
        ),
        (
            "plaintext_not_canonical",
            k,
            bh,
            seal_pt(format!("{{\"size\":1,\"name\":\"a\",\"hash\":\"{h}\"}}").as_bytes()),
            "not_canonical",
        ),
        (
            "extra_field",
            k,
            bh,
            seal_pt(&canonicalize(&json!({"name": "a", "size": 1, "hash": h, "mtime": 5}))),
            "invalid_request",
        ),
        (
            "hash_uppercase",
            k,
            bh,
            seal_pt(&canonicalize(&json!({"name": "a", "size": 1, "hash": h.to_uppercase()}))),
            "invalid_encoding",
        ),
        (
            "size_is_a_string",
            k,
            bh,
            seal_pt(&canonicalize(&json!({"name": "a", "size": "1", "hash": h}))),
            "invalid_request",
        ),
        ("sealed_not_base64url", k, bh, format!("{good_meta}="), "invalid_encoding"),
    ];
    let meta_invalid: Vec<Value> = mi
        .into_iter()
        .map(|(n, key, bhx, sealed, code)| {
            intend(n, files::open_meta(&key, &bhx, &sealed), code);
            json!({"name": n, "file_key": hex_encode(&key), "blob_hash": hex_encode(&bhx), "sealed": sealed, "error": code})
        })
        .collect();

    // Entry validation.
    let base = manifest_fixture().entries[0].to_value();
    let with = |k: &str, v: Value| {
        let mut e = base.clone();
        e[k] = v;
        e
    };
    let wrap0 = base["wraps"][0].clone();
    let mut wrap_extra = wrap0.clone();
    wrap_extra["x"] = 1.into();
    let mut wrap47 = wrap0.clone();
    wrap47["ct"] = b64_encode(&b64_decode(wrap0["ct"].as_str().unwrap(), "ct").unwrap()[..47]).into();
    let mut wrap_enc33 = wrap0.clone();
    wrap_enc33["enc"] = b64_encode(&[9; 33]).into();
    let mut no_wraps = base.clone();
    no_wraps.as_object_mut().unwrap().remove("wraps");
    let ei: Vec<(&str, Value, &str)> = vec![
        ("extra_field", with("name", "x".into()), "invalid_request"),
        ("missing_wraps", no_wraps, "invalid_request"),
        ("zero_wraps", with("wraps", json!([])), "invalid_manifest"),
        ("65_wraps", with("wraps", Value::Array(vec![wrap0.clone(); 65])), "invalid_manifest"),
        ("id_15_bytes", with("id", b64_encode(&[1; 15]).into()), "invalid_encoding"),
        ("blob_uppercase_hex", with("blob", base["blob"].as_str().unwrap().to_uppercase().into()), "invalid_encoding"),
        ("commit_31_bytes", with("commit", hex_encode(&[1; 31]).into()), "invalid_encoding"),
        ("meta_not_base64url", with("meta", "a+b/".into()), "invalid_encoding"),
        ("meta_2050_chars", with("meta", b64_encode(&[7; 1537]).into()), "invalid_manifest"),
        ("ct_size_is_a_string", with("ct_size", "1048".into()), "invalid_request"),
        ("wrap_extra_field", with("wraps", json!([wrap_extra])), "invalid_request"),
        ("wrap_ct_47_bytes", with("wraps", json!([wrap47])), "invalid_encoding"),
        ("wrap_enc_33_bytes", with("wraps", json!([wrap_enc33])), "invalid_encoding"),
        ("not_an_object", json!([]), "invalid_request"),
    ];
    let entries_invalid: Vec<Value> = ei
        .into_iter()
        .map(|(n, e, code)| {
            intend(n, files::parse_entry(&e), code);
            json!({"name": n, "entry": e, "error": code})
        })
        .collect();
    json!({
        "description": "File encryption (PROTOCOL.md §7.1–7.3): STREAM blobs, key wraps, encrypted metadata and entry validation. See README.md.",
        "stream": stream,
        "stream_invalid": stream_invalid,
        "wraps": wraps,
        "wraps_invalid": wraps_invalid,
        "meta": meta,
        "meta_invalid": meta_invalid,
        "entries_invalid": entries_invalid,
        "padding": PADDING_SIZES.iter().map(|&n| json!({"name": format!("size_{n}"), "size": n, "padded": files::padded_len(n)})).collect::<Vec<_>>(),
        "unpad": unpad_cases(),
    })
}

/// Plaintext sizes whose padded length (PROTOCOL.md §7.1) is pinned.
const PADDING_SIZES: [u64; 16] =
    [0, 1, 255, 256, 257, 272, 273, 1000, 1024, 1025, 4097, 65_535, 65_536, 65_537, 1_000_000, 1_000_000_000_000];

/// Padding as §7.1 states it, written out independently of `files::padded_len`.
fn padme_spec(len: u64) -> u64 {
    if len <= 256 {
        return 256;
    }
    // E = ⌊log2 len⌋, S = ⌊log2 E⌋ + 1, counted out.
    let mut e = 0u32;
    while e < 63 && 1u64 << (e + 1) <= len {
        e += 1;
    }
    let mut s = 0u32;
    while 1u32 << s <= e {
        s += 1;
    }
    let unit = 1u64 << (e - s);
    len.div_ceil(unit) * unit
}

/// Decrypted lengths and tails a receiver accepts or refuses for a file of `size` bytes.
fn unpad_cases() -> Vec<Value> {
    let case = |name: &str, size: u64, tail: Vec<u8>, ok: bool| {
        // The decrypted plaintext: `size` bytes of 0x61 then `tail`.
        let mut u = files::Unpadder::new(size);
        let mut plain = vec![0x61u8; size as usize];
        plain.extend_from_slice(&tail);
        let got = u.take(&plain).map(|f| f.len() as u64).and_then(|n| u.finish().map(|()| n));
        assert_eq!(got.is_ok(), ok, "{name}: {got:?}");
        if ok {
            assert_eq!(got.unwrap(), size, "{name}");
        } else {
            assert_eq!(got.unwrap_err().code, ErrorCode::DecryptFailed, "{name}");
        }
        let mut c = json!({"name": name, "size": size, "tail_hex": hex_encode(&tail)});
        c[if ok { "ok" } else { "error" }] = if ok { json!(true) } else { json!("decrypt_failed") };
        c
    };
    vec![
        case("padded_to_class", 300, vec![0; 4], true),
        case("unpadded_older_blob", 300, vec![], true),
        case("empty_file_padded", 0, vec![0; 256], true),
        case("nonzero_padding", 300, vec![0, 0, 1, 0], false),
        case("padding_short_of_class", 300, vec![0; 2], false),
        case("padding_beyond_class", 300, vec![0; 5], false),
        case("empty_file_pad_255", 0, vec![0; 255], false),
    ]
}

fn check_files(v: &Value) {
    for c in arr(v, "padding") {
        assert_eq!(files::padded_len(u(c, "size")), u(c, "padded"), "case {}", name(c));
        assert_eq!(padme_spec(u(c, "size")), u(c, "padded"), "case {} against the text", name(c));
    }
    for c in arr(v, "unpad") {
        let size = u(c, "size");
        let mut plain = vec![0x61u8; size as usize];
        plain.extend_from_slice(&hex::decode(s(c, "tail_hex")).unwrap());
        let mut un = files::Unpadder::new(size);
        let got = un.take(&plain).map(|_| ()).and_then(|()| un.finish());
        match c.get("error") {
            Some(_) => expect_code(c, got),
            None => got.unwrap(),
        }
    }
    let mut blobs = std::collections::HashMap::new();
    let lens: Vec<u64> = arr(v, "stream").iter().map(|c| u(&c["plaintext"], "len")).collect();
    assert_eq!(lens, STREAM_LENGTHS.iter().map(|&l| l as u64).collect::<Vec<_>>());
    for c in arr(v, "stream") {
        let (k, n16) = (hx32(c, "file_key"), hx16(c, "n16"));
        let pt = gen_plain(&c["plaintext"]);
        assert_eq!(hex_encode(blake3::hash(&pt).as_bytes()), s(c, "plaintext_blake3"));
        assert_eq!(hex_encode(&hkdf32(&k, &n16, b"kez-v1/file/payload")), s(c, "payload_key"), "case {}", name(c));
        let commit = files::commitment(&k, &n16);
        assert_eq!(hex_encode(&commit), s(c, "commit"), "case {}", name(c));
        assert_eq!(hex_encode(&hkdf32(&k, &n16, b"kez-v1/file/commit")), s(c, "commit"));
        let blob = files::encrypt_bytes(&k, n16, &pt);
        assert_eq!(blob, stream_raw(&k, &n16, &pt), "case {}", name(c));
        assert_eq!(blob.len() as u64, u(c, "blob_len"), "case {}", name(c));
        assert_eq!(hex_encode(blake3::hash(&blob).as_bytes()), s(c, "blob_blake3"), "case {}", name(c));
        assert_eq!(hex_encode(&blob[..blob.len().min(64)]), s(c, "blob_head_hex"), "case {}", name(c));
        assert_eq!(hex_encode(&blob[blob.len().saturating_sub(64)..]), s(c, "blob_tail_hex"), "case {}", name(c));
        assert_eq!(files::decrypt_bytes(k, commit, &blob).unwrap(), pt, "case {}", name(c));
        blobs.insert(name(c), blob);
    }
    for c in arr(v, "stream_invalid") {
        let blob =
            assemble(arr(c, "blob"), &|n: &str| blobs.get(n).unwrap_or_else(|| panic!("unknown source {n}")).clone());
        expect_code(c, files::decrypt_bytes(hx32(c, "file_key"), hx32(c, "commit"), &blob));
        assert!(["aead", "commit", "truncated", "empty_final"].contains(&s(c, "reason")));
    }
    for c in arr(v, "wraps") {
        let (r, owner, bh, k) = (key_of(c, "recipient"), key_of(c, "owner"), hx32(c, "blob_hash"), hx32(c, "file_key"));
        assert_eq!(pk(hx32(c, "recipient_seed")), r);
        let w = files::wrap_with(hx32(c, "eph_secret"), &r, &owner, &bh, &k).unwrap();
        assert_eq!((w.enc.as_str(), w.ct.as_str()), (s(c, "enc"), s(c, "ct")), "case {}", name(c));
        let (big_e, ss, key) =
            kem(hx32(c, "eph_secret"), &r, b"kez-v1/file-key", &[owner.as_bytes().as_slice(), &bh].concat());
        assert_eq!(
            (b64_encode(&big_e), hex_encode(&ss), hex_encode(&key)),
            (s(c, "enc").into(), s(c, "shared_secret_hex").into(), s(c, "wrap_key_hex").into())
        );
        assert_eq!(files::unwrap(&w, &seed_of(c, "recipient_seed"), &owner, &bh), Some(k), "case {}", name(c));
    }
    for c in arr(v, "wraps_invalid") {
        let w = Wrap { enc: s(&c["wrap"], "enc").into(), ct: s(&c["wrap"], "ct").into() };
        assert!(
            files::unwrap(&w, &seed_of(c, "reader_seed"), &key_of(c, "owner"), &hx32(c, "blob_hash")).is_none(),
            "case {}",
            name(c)
        );
    }
    for c in arr(v, "meta") {
        let (k, bh) = (hx32(c, "file_key"), hx32(c, "blob_hash"));
        let m = &c["meta"];
        let fm = FileMeta { name: s(m, "name").into(), size: u(m, "size"), hash: s(m, "hash").into() };
        assert_eq!(hex_encode(&meta_key(&k)), s(c, "meta_key"));
        assert_eq!(text(&canonicalize(m)), s(c, "plaintext"), "case {}", name(c));
        assert_eq!(files::seal_meta(&k, &bh, &fm), s(c, "sealed"), "case {}", name(c));
        assert_eq!(files::open_meta(&k, &bh, s(c, "sealed")).unwrap(), fm, "case {}", name(c));
    }
    for c in arr(v, "meta_invalid") {
        expect_code(c, files::open_meta(&hx32(c, "file_key"), &hx32(c, "blob_hash"), s(c, "sealed")));
    }
    for c in arr(v, "entries_invalid") {
        expect_code(c, files::parse_entry(&c["entry"]));
    }
}

#[test]
fn files_json() {
    run("files.json", gen_files, check_files);
}

// ----------------------------------------------------------- manifests.json

fn pointer_of(v: &Value) -> kv_schemas::sigchain::SharedFiles {
    kv_schemas::sigchain::SharedFiles {
        manifest: s(v, "manifest").into(),
        manifest_seq: u(v, "manifest_seq"),
        size: u(v, "size"),
    }
}

fn gen_manifests() -> Value {
    let fx = manifest_fixture();
    let owner = pk(ALICE);
    let pointer = json!({"manifest": fx.hash, "manifest_seq": 1, "size": fx.bytes.len()});
    let files_v: Vec<Value> = fx
        .files
        .iter()
        .map(|f| {
            json!({"id_hex": hex_encode(&f.id), "file_key": hex_encode(&f.key), "n16": hex_encode(&f.n16), "plaintext": plain_spec(f.len),
                   "name": f.name, "recipients": f.recipients.iter().map(|r| pk(*r).to_string()).collect::<Vec<_>>(),
                   "wrap_eph_secrets": f.ephs.iter().map(|e| hex_encode(e)).collect::<Vec<_>>()})
        })
        .collect();
    let readers: Vec<Value> = [("bob", BOB), ("carol", CAROL), ("alice_owner_without_wrap", ALICE)]
        .iter()
        .map(|(n, seed)| {
            let opens: Vec<Value> = fx
                .entries
                .iter()
                .filter_map(|e| e.open_for(&sk(*seed), &owner).unwrap().map(|(k, m)| (e, k, m)))
                .map(|(e, k, m)| json!({"id": e.id, "file_key": hex_encode(&k), "meta": {"name": m.name, "size": m.size, "hash": m.hash}}))
                .collect();
            json!({"name": n, "seed": hex_encode(seed), "key": pk(*seed).to_string(), "opens": opens})
        })
        .collect();
    assert_eq!(readers.iter().map(|r| r["opens"].as_array().unwrap().len()).collect::<Vec<_>>(), vec![2, 2, 0]);
    let manifest_v = json!({"owner_seed": hex_encode(&ALICE), "owner": owner.to_string(), "seq": 1, "ctime": NOW, "files": files_v,
                            "bytes": text(&fx.bytes), "hash": fx.hash, "pointer": pointer, "readers": readers});

    let alice = sk(ALICE);
    let ptr = |bytes: &[u8], seq: u64| json!({"manifest": manifest::manifest_hash(bytes), "manifest_seq": seq, "size": bytes.len()});
    let unsigned = without_sig(&fx.bytes);
    let mut invalid = vec![];
    let mut add = |n: &str, owner: PublicKey, pointer: Value, bytes: Vec<u8>, code: &str| {
        intend(n, manifest::verify_against(&bytes, &owner, &pointer_of(&pointer)), code);
        invalid.push(
            json!({"name": n, "owner": owner.to_string(), "pointer": pointer, "bytes": text(&bytes), "error": code}),
        );
    };
    let tampered = text(&fx.bytes).replacen("\"seq\":1", "\"seq\":2", 1).into_bytes();
    add("tampered_seq_pointer_matches", owner, ptr(&tampered, 2), tampered, "bad_signature");
    add("seq_differs_from_pointer", owner, ptr(&fx.bytes, 2), fx.bytes.clone(), "invalid_manifest");
    add(
        "hash_differs_from_pointer",
        owner,
        json!({"manifest": hex_encode(blake3::hash(b"other").as_bytes()), "manifest_seq": 1, "size": fx.bytes.len()}),
        fx.bytes.clone(),
        "invalid_manifest",
    );
    add("owner_is_not_chain_key", pk(BOB), ptr(&fx.bytes, 1), fx.bytes.clone(), "invalid_manifest");
    let spaced = [b" ".as_slice(), &fx.bytes].concat();
    add("not_canonical", owner, ptr(&spaced, 1), spaced, "not_canonical");
    let mut dup = unsigned.clone();
    let mut entries = dup["entries"].as_array().unwrap().clone();
    let mut copy = entries[1].clone();
    copy["id"] = entries[0]["id"].clone();
    entries[1] = copy;
    dup.insert("entries".into(), Value::Array(entries));
    let dupb = sign_as(&alice, Purpose::Manifest, &dup);
    add("duplicate_entry_ids", owner, ptr(&dupb, 1), dupb, "invalid_manifest");
    let mut nowrap = unsigned.clone();
    nowrap["entries"][0]["wraps"] = json!([]);
    let nwb = sign_as(&alice, Purpose::Manifest, &nowrap);
    add("entry_without_wraps", owner, ptr(&nwb, 1), nwb, "invalid_manifest");
    let mut wt = unsigned.clone();
    wt.insert("type".into(), "kez.msg".into());
    let wtb = sign_as(&alice, Purpose::Manifest, &wt);
    add("wrong_type", owner, ptr(&wtb, 1), wtb, "wrong_type");
    let mut ex = unsigned.clone();
    ex.insert("title".into(), "my files".into());
    let exb = sign_as(&alice, Purpose::Manifest, &ex);
    add("extra_field", owner, ptr(&exb, 1), exb, "invalid_request");
    let bob_signed = sign_as(&sk(BOB), Purpose::Manifest, &unsigned);
    add("signed_by_another_key", owner, ptr(&bob_signed, 1), bob_signed, "bad_signature");
    let mut bad_owner = unsigned.clone();
    bad_owner.insert("owner".into(), format!("ed25519:01{}", "00".repeat(31)).into());
    let bob_b = sign_as(&alice, Purpose::Manifest, &bad_owner);
    add("owner_small_order_key", owner, ptr(&bob_b, 1), bob_b, "invalid_key");
    json!({
        "description": "Shared-files manifests (PROTOCOL.md §7.4): a signed manifest, who can open which entry, and rejections. See README.md.",
        "manifest": manifest_v,
        "invalid": invalid,
    })
}

fn check_manifests(v: &Value) {
    let m = &v["manifest"];
    let owner_sk = seed_of(m, "owner_seed");
    let owner = key_of(m, "owner");
    assert_eq!(PublicKey::of(&owner_sk), owner);
    // Rebuild every entry from the inputs and the whole manifest from them.
    let mut entries = vec![];
    let mut blobs = vec![];
    for f in arr(m, "files") {
        let pt = gen_plain(&f["plaintext"]);
        let (k, n16) = (hx32(f, "file_key"), hx16(f, "n16"));
        let blob = files::encrypt_bytes(&k, n16, &pt);
        let bh = *blake3::hash(&blob).as_bytes();
        let meta = FileMeta {
            name: s(f, "name").into(),
            size: pt.len() as u64,
            hash: hex_encode(blake3::hash(&pt).as_bytes()),
        };
        let recips = arr(f, "recipients");
        let ephs = arr(f, "wrap_eph_secrets");
        assert_eq!(recips.len(), ephs.len());
        let wraps = recips
            .iter()
            .zip(ephs)
            .map(|(r, e)| {
                let e: [u8; 32] = hex::decode(e.as_str().unwrap()).unwrap().try_into().unwrap();
                files::wrap_with(e, &r.as_str().unwrap().parse().unwrap(), &owner, &bh, &k).unwrap()
            })
            .collect();
        entries.push(Entry {
            id: b64_encode(&hx16(f, "id_hex")),
            blob: hex_encode(&bh),
            ct_size: blob.len() as u64,
            commit: hex_encode(&files::commitment(&k, &n16)),
            meta: files::seal_meta(&k, &bh, &meta),
            wraps,
        });
        blobs.push((pt, blob));
    }
    let bytes = manifest::build(&owner_sk, u(m, "seq"), u(m, "ctime"), &entries).unwrap();
    assert_eq!(text(&bytes), s(m, "bytes"));
    assert_eq!(manifest::manifest_hash(&bytes), s(m, "hash"));
    let pointer = pointer_of(&m["pointer"]);
    assert_eq!(
        (pointer.manifest.as_str(), pointer.manifest_seq, pointer.size),
        (s(m, "hash"), u(m, "seq"), bytes.len() as u64)
    );
    let parsed = manifest::verify_against(&bytes, &owner, &pointer).unwrap();
    assert_eq!(parsed.entries, entries);
    for r in arr(m, "readers") {
        let me = seed_of(r, "seed");
        assert_eq!(PublicKey::of(&me), key_of(r, "key"));
        let mut opened = vec![];
        for (e, (pt, blob)) in parsed.entries.iter().zip(&blobs) {
            if let Some((k, meta)) = e.open_for(&me, &owner).unwrap() {
                // After download: blob hash, decryption, plaintext hash and size.
                assert_eq!(hex_encode(blake3::hash(blob).as_bytes()), e.blob);
                let back = files::decrypt_bytes(k, e.commit_bytes(), blob).unwrap();
                assert_eq!(&back, pt);
                assert_eq!(
                    (hex_encode(blake3::hash(&back).as_bytes()), back.len() as u64),
                    (meta.hash.clone(), meta.size)
                );
                opened.push(json!({"id": e.id, "file_key": hex_encode(&k), "meta": {"name": meta.name, "size": meta.size, "hash": meta.hash}}));
            }
        }
        assert_eq!(&Value::Array(opened), &r["opens"], "reader {}", name(r));
    }
    for c in arr(v, "invalid") {
        expect_code(
            c,
            manifest::verify_against(s(c, "bytes").as_bytes(), &key_of(c, "owner"), &pointer_of(&c["pointer"])),
        );
    }
}

#[test]
fn manifests_json() {
    run("manifests.json", gen_manifests, check_manifests);
}

// ------------------------------------------------------ iroh_endpoints.json

/// `endpoint_seed` written out by hand (PROTOCOL.md §7.5), to cross-check the crate.
fn endpoint_seed_by_hand(seed: &[u8; 32], device: &str, role: &str) -> (Vec<u8>, [u8; 32]) {
    let info = [b"kez-v1/iroh-endpoint".as_slice(), &[0], device.as_bytes(), &[0], role.as_bytes()].concat();
    (info.clone(), hkdf32(seed, b"", &info))
}

fn gen_iroh_endpoints() -> Value {
    let mut endpoints = vec![];
    for (who, seed) in [("alice", ALICE), ("bob", BOB)] {
        for (i, d) in DEVICES.iter().enumerate() {
            for role in IrohRole::ALL {
                let (info, eseed) = endpoint_seed_by_hand(&seed, d, role.as_str());
                let public = pk(eseed);
                endpoints.push(json!({
                    "name": format!("{who}_device{}_{role}", i + 1),
                    "seed": hex_encode(&seed),
                    "key": pk(seed).to_string(),
                    "device": d,
                    "role": role.as_str(),
                    "info_hex": hex_encode(&info),
                    "endpoint_seed": hex_encode(&eseed),
                    "endpoint_public": public.hex(),
                    "body": {"kind": "iroh", "node_id": public.hex(), "device": d, "role": role.as_str()},
                }));
            }
        }
    }
    let invalid_devices: Vec<Value> = [
        ("uppercase", DEVICES[0].to_uppercase()),
        ("15_chars", DEVICES[0][..15].to_string()),
        ("17_chars", format!("{}0", DEVICES[0])),
        ("not_hex", "0123456789abcdeg".to_string()),
        ("empty", String::new()),
    ]
    .into_iter()
    .map(|(n, d)| {
        intend(n, d.parse::<DeviceId>(), "invalid_request");
        json!({"name": n, "device": d, "error": "invalid_request"})
    })
    .collect();
    json!({
        "description": "Per-device Iroh endpoint keys (PROTOCOL.md §7.5): endpoint_seed = HKDF-SHA256(seed, salt \"\", info), endpoint id = its Ed25519 public key, and the add_endpoint body that publishes it. See README.md.",
        "endpoints": endpoints,
        "invalid_devices": invalid_devices,
    })
}

fn check_iroh_endpoints(v: &Value) {
    use kv_schemas::sigchain::{Endpoint, Op, build_link};
    for c in arr(v, "endpoints") {
        let seed = hx32(c, "seed");
        let device: DeviceId = s(c, "device").parse().unwrap();
        let role = IrohRole::parse(s(c, "role")).unwrap();
        assert_eq!(PublicKey::of(&sk(seed)), key_of(c, "key"), "case {}", name(c));
        assert_eq!(hex_encode(&*endpoint_seed(&seed, &device, role)), s(c, "endpoint_seed"), "case {}", name(c));
        let public = endpoint_key(&seed, &device, role);
        assert_eq!(public.hex(), s(c, "endpoint_public"), "case {}", name(c));
        // The body the crate publishes for it, and it parses back as that endpoint.
        let op = Op::AddEndpoint(Endpoint::iroh_device(&public, device, role));
        let link = parse_link(&build_link(&sk(seed), 1, None, NOW, &op)).unwrap();
        assert_eq!(link.to_value()["body"], c["body"], "case {}", name(c));
        assert_eq!(link.op, op, "case {}", name(c));
    }
    for c in arr(v, "invalid_devices") {
        expect_code(c, s(c, "device").parse::<DeviceId>());
    }
}

#[test]
fn iroh_endpoints_json() {
    run("iroh_endpoints.json", gen_iroh_endpoints, check_iroh_endpoints);
}
