//! `testdata/register.json`: generated from fixed inputs, and every stored case checked.

use super::*;

pub(crate) fn reg_unsigned(key: &PublicKey, aud: &str, handle: &str, ts: u64, nonce: &[u8]) -> Map<String, Value> {
    obj(json!({"type": "kez.register", "v": 1, "aud": aud, "handle": handle, "key": key.to_string(), "ts": ts,
               "nonce": b64_encode(nonce)}))
}

pub(crate) fn gen_register() -> Value {
    let alice = sk(ALICE);
    let ak = pk(ALICE);
    let h = |s: &str| Handle::parse_input(s, HOME).unwrap();
    let base = register::build(&alice, &h("alice"), NOW, [0x11; 16]).unwrap();
    let mut valid = vec![];
    for (n, seed, handle, ts, nonce, now) in [
        ("alice", ALICE, "alice", NOW, [0x11u8; 16], NOW),
        ("clock_behind_by_window", ALICE, "alice", NOW, [0x11; 16], NOW + 300_000),
        ("clock_ahead_by_window", ALICE, "alice", NOW, [0x11; 16], NOW - 300_000),
        ("bob_digits_dash_underscore", BOB, "b0b-x_y", NOW + 5, [0x12; 16], NOW),
    ] {
        let bytes = register::build(&sk(seed), &h(handle), ts, nonce).unwrap();
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
    add(
        "reserved_root",
        HOME,
        NOW,
        register::build(&alice, &h("root"), NOW, [0x11; 16]).unwrap(),
        "handle_reserved",
        None,
    );
    add(
        "reserved_no_reply",
        HOME,
        NOW,
        register::build(&alice, &h("no-reply"), NOW, [0x11; 16]).unwrap(),
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
        text(&canonicalize(&Value::Object(m.clone())).unwrap())
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

pub(crate) fn check_register(v: &Value) {
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
            register::build(&seed_of(c, "seed"), &Handle::parse_canonical(s(e, "handle")).unwrap(), u(e, "ts"), nonce)
                .unwrap();
        assert_eq!(rebuilt, bytes, "case {}", name(c));
    }
    for c in arr(v, "invalid") {
        expect_code(c, register::verify(&bytes_of(c, "bytes"), s(c, "domain"), u(c, "now")));
    }
}

#[test]
pub(crate) fn register_json() {
    run("register.json", gen_register, check_register);
}
