//! `testdata/safety.json`: generated from fixed inputs, and every stored case checked.

use super::*;

/// F(pk) per PROTOCOL.md §8, written out independently of `kv_schemas::safety`.
pub(crate) fn f_of(pk: &PublicKey) -> [u8; 30] {
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

pub(crate) const RFC8032_TEST1_SEED: &str = "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60";
pub(crate) const RFC8032_TEST2_SEED: &str = "4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb";
pub(crate) const RFC8032_TEST3_SEED: &str = "c5aa8df43f9f837bedb7442f31dcb7b166d38535076f094b85ce3a2e0b4458f7";

pub(crate) fn seed_hex(h: &str) -> [u8; 32] {
    hex::decode(h).unwrap().try_into().unwrap()
}

pub(crate) fn gen_safety() -> Value {
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
        ("rfc8032_test1_test2_keys", 0, 1),
        ("rfc8032_keys_reversed", 1, 0),
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

pub(crate) fn digits(f: &[u8; 30]) -> String {
    f.chunks(5)
        .map(|c| format!("{:05}", c.iter().fold(0u64, |a, &b| (a << 8) | u64::from(b)) % 100_000))
        .collect::<Vec<_>>()
        .join(" ")
}

pub(crate) fn check_safety(v: &Value) {
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
pub(crate) fn safety_json() {
    run("safety.json", gen_safety, check_safety);
}
