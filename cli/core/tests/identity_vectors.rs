//! Generates and checks `kv-schemas/testdata/keys.json` (seed ↔ mnemonic ↔
//! key forms), and checks `nonces.json` against `Identity::sign_nats_nonce`.
//! `KEZ_UPDATE_VECTORS=1` rewrites keys.json.
#![allow(clippy::unwrap_used)]

#[path = "../../../kv-schemas/tests/common/mod.rs"]
mod common;

use common::*;
use kez_client::Identity;
use kez_client::identity::{MnemonicError, mnemonic_to_seed};
use serde_json::{Value, json};

const ZERO_WORDS: &str = "abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon art";

/// BIP-39 reference vectors for 256-bit entropy (trezor/python-mnemonic vectors.json).
const BIP39: &[(&str, &str, &str)] = &[
    ("bip39_entropy_00", "0000000000000000000000000000000000000000000000000000000000000000", ZERO_WORDS),
    (
        "bip39_entropy_7f",
        "7f7f7f7f7f7f7f7f7f7f7f7f7f7f7f7f7f7f7f7f7f7f7f7f7f7f7f7f7f7f7f7f",
        "legal winner thank year wave sausage worth useful legal winner thank year wave sausage worth useful legal winner thank year wave sausage worth title",
    ),
    (
        "bip39_entropy_80",
        "8080808080808080808080808080808080808080808080808080808080808080",
        "letter advice cage absurd amount doctor acoustic avoid letter advice cage absurd amount doctor acoustic avoid letter advice cage absurd amount doctor acoustic bless",
    ),
    (
        "bip39_entropy_ff",
        "ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
        "zoo zoo zoo zoo zoo zoo zoo zoo zoo zoo zoo zoo zoo zoo zoo zoo zoo zoo zoo zoo zoo zoo zoo vote",
    ),
    (
        "bip39_trezor_68a79e",
        "68a79eaca2324873eacc50cb9c6eca8cc68ea5d936f98787c60c7ebc74e6ce7c",
        "hamster diagram private dutch cause delay private meat slide toddler razor book happy fancy gospel tennis maple dilemma loan word shrug inflict delay length",
    ),
    (
        "bip39_trezor_9f6a28",
        "9f6a2878b2520799a44ef18bc7df394e7061a224d2c33cd015b157d746869863",
        "panda eyebrow bullet gorilla call smoke muffin taste mesh discover soft ostrich alcohol speed nation flash devote level hobby quick inner drive ghost inside",
    ),
    (
        "bip39_trezor_066dca",
        "066dca1a2bb7e8a1db2832148ce9933eea0f3ac9548d793112d9a95c9407efad",
        "all hour make first leader extend hole alien behind guard gospel lava path output census museum junior mass reopen famous sing advance salt reform",
    ),
    (
        "bip39_trezor_f585c1",
        "f585c11aec520db57dd353c69554b21a89b20fb0650966fa0a9d6f74fd989d8f",
        "void come effort suffer camp survey warrior heavy shoot primary clutch crush open amazing screen patrol group space point ten exist slush involve unfold",
    ),
];

const OTHER_SEEDS: &[(&str, &str)] = &[
    ("rfc8032_test1", "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60"),
    ("rfc8032_test2", "4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb"),
    ("rfc8032_test3", "c5aa8df43f9f837bedb7442f31dcb7b166d38535076f094b85ce3a2e0b4458f7"),
    ("alice", "0101010101010101010101010101010101010101010101010101010101010101"),
    ("bob", "0202020202020202020202020202020202020202020202020202020202020202"),
    ("carol", "0303030303030303030303030303030303030303030303030303030303030303"),
];

fn seed32(h: &str) -> [u8; 32] {
    hex::decode(h).unwrap().try_into().unwrap()
}

fn identity_case(name: &str, seed: [u8; 32]) -> Value {
    let id = Identity::from_seed(seed);
    json!({
        "name": name,
        "seed": hex::encode(seed),
        "mnemonic": id.mnemonic().as_str(),
        "public": id.public_key().hex(),
        "key": id.key_string(),
        "nkey_public": id.nkey_public().unwrap(),
        "nkey_seed": id.nkey_seed().unwrap().as_str(),
        "x25519_public": hex::encode(id.x25519_public()),
    })
}

fn error_json(e: &MnemonicError) -> Value {
    match e {
        MnemonicError::WordCount { got } => json!({"kind": "word_count", "count": got}),
        MnemonicError::UnknownWord { position, word } => {
            json!({"kind": "unknown_word", "position": position, "word": word})
        }
        MnemonicError::Checksum => json!({"kind": "checksum"}),
    }
}

fn generate() -> Value {
    let mut identities = vec![];
    for (n, seed, words) in BIP39 {
        let c = identity_case(n, seed32(seed));
        assert_eq!(c["mnemonic"], *words, "{n}: BIP-39 reference mnemonic");
        identities.push(c);
    }
    for (n, seed) in OTHER_SEEDS {
        identities.push(identity_case(n, seed32(seed)));
    }
    let alice_words = Identity::from_seed([1; 32]).mnemonic().to_string();
    let title_case: String = alice_words
        .split(' ')
        .map(|w| format!("{}{}", w[..1].to_ascii_uppercase(), &w[1..]))
        .collect::<Vec<_>>()
        .join(" ");
    let inputs: Vec<(&str, String)> = vec![
        ("uppercase", ZERO_WORDS.to_ascii_uppercase()),
        ("all_ascii_whitespace_kinds", format!(" \t{}\r\n\x0c ", ZERO_WORDS.replace(' ', " \t\n\r\x0c  "))),
        ("title_case_alice", title_case),
        ("one_word_per_line", format!("{}\n", alice_words.replace(' ', "\n"))),
    ];
    let mnemonic_inputs: Vec<Value> = inputs
        .iter()
        .map(|(n, i)| json!({"name": n, "input": i, "seed": hex::encode(*mnemonic_to_seed(i).unwrap())}))
        .collect();
    let mut words: Vec<String> = ZERO_WORDS.split(' ').map(String::from).collect();
    let with = |i: usize, w: &str, words: &mut Vec<String>| {
        let mut v = words.clone();
        v[i] = w.into();
        v.join(" ")
    };
    let alice: Vec<&str> = alice_words.split(' ').collect();
    let mut swapped = alice.clone();
    swapped.swap(0, 1);
    assert_ne!(swapped, alice);
    let bad: Vec<(&str, String, Value)> = vec![
        ("empty", String::new(), json!({"kind": "word_count", "count": 0})),
        ("whitespace_only", " \t\n".into(), json!({"kind": "word_count", "count": 0})),
        (
            "valid_12_word_bip39_mnemonic",
            "abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon about".into(),
            json!({"kind": "word_count", "count": 12}),
        ),
        (
            "23_words",
            ZERO_WORDS.split(' ').skip(1).collect::<Vec<_>>().join(" "),
            json!({"kind": "word_count", "count": 23}),
        ),
        ("25_words", format!("abandon {ZERO_WORDS}"), json!({"kind": "word_count", "count": 25})),
        ("count_checked_before_words", "abandon abandonn abandon".into(), json!({"kind": "word_count", "count": 3})),
        (
            "vertical_tab_is_not_whitespace",
            ZERO_WORDS.replacen(' ', "\x0b", 1),
            json!({"kind": "word_count", "count": 23}),
        ),
        ("nbsp_is_not_whitespace", ZERO_WORDS.replacen(' ', "\u{a0}", 1), json!({"kind": "word_count", "count": 23})),
        (
            "unknown_word_position_7",
            with(6, "abandonn", &mut words),
            json!({"kind": "unknown_word", "position": 7, "word": "abandonn"}),
        ),
        (
            "unknown_word_position_24",
            with(23, "artt", &mut words),
            json!({"kind": "unknown_word", "position": 24, "word": "artt"}),
        ),
        (
            "first_unknown_word_reported",
            {
                let mut v = words.clone();
                v[2] = "xyzzy".into();
                v[9] = "plugh".into();
                v.join(" ")
            },
            json!({"kind": "unknown_word", "position": 3, "word": "xyzzy"}),
        ),
        (
            "unknown_word_reported_lowercased",
            with(0, "ABANDONN", &mut words),
            json!({"kind": "unknown_word", "position": 1, "word": "abandonn"}),
        ),
        (
            "four_letter_prefix_is_not_a_word",
            with(0, "aban", &mut words),
            json!({"kind": "unknown_word", "position": 1, "word": "aban"}),
        ),
        (
            "kelvin_sign_not_folded",
            with(0, "\u{212a}ey", &mut words),
            json!({"kind": "unknown_word", "position": 1, "word": "\u{212a}ey"}),
        ),
        (
            "accented_letter",
            with(0, "abandón", &mut words),
            json!({"kind": "unknown_word", "position": 1, "word": "abandón"}),
        ),
        (
            "fullwidth_letters",
            with(0, "\u{ff41}bandon", &mut words),
            json!({"kind": "unknown_word", "position": 1, "word": "\u{ff41}bandon"}),
        ),
        ("checksum_all_abandon", "abandon ".repeat(24), json!({"kind": "checksum"})),
        ("checksum_last_word_changed", with(23, "zoo", &mut words), json!({"kind": "checksum"})),
        ("checksum_two_words_swapped", swapped.join(" "), json!({"kind": "checksum"})),
    ];
    let invalid: Vec<Value> = bad
        .into_iter()
        .map(|(n, input, want)| {
            let got = error_json(&mnemonic_to_seed(&input).unwrap_err());
            assert_eq!(got, want, "generator: {n}");
            json!({"name": n, "input": input, "error": got})
        })
        .collect();
    words.clear();
    json!({
        "description": "Seed (BIP-39 entropy) <-> 24-word mnemonic <-> Ed25519, NATS nkey and X25519 key forms (PROTOCOL.md §2). See README.md.",
        "identities": identities,
        "mnemonic_inputs": mnemonic_inputs,
        "invalid_mnemonics": invalid,
    })
}

/// The nkey text encoding written out from PROTOCOL.md §2 (prefix byte(s),
/// payload, CRC-16/XMODEM little-endian, RFC 4648 base32 without padding).
fn nkey_encode(prefix: &[u8], payload: &[u8]) -> String {
    let mut raw = prefix.to_vec();
    raw.extend_from_slice(payload);
    let mut crc: u16 = 0;
    for &b in &raw {
        crc ^= u16::from(b) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 { (crc << 1) ^ 0x1021 } else { crc << 1 };
        }
    }
    raw.extend_from_slice(&crc.to_le_bytes());
    const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut out = String::new();
    let (mut acc, mut bits) = (0u32, 0);
    for &b in &raw {
        acc = (acc << 8) | u32::from(b);
        bits += 8;
        while bits >= 5 {
            out.push(A[((acc >> (bits - 5)) & 31) as usize] as char);
            bits -= 5;
        }
    }
    if bits > 0 {
        out.push(A[((acc << (5 - bits)) & 31) as usize] as char);
    }
    out
}

fn check(v: &Value) {
    assert!(v["description"].as_str().is_some());
    let ids = arr(v, "identities");
    unique_names(ids, "identities");
    for (n, _, _) in BIP39 {
        assert!(ids.iter().any(|c| c["name"] == *n), "missing {n}");
    }
    for c in ids {
        let seed = hx32(c, "seed");
        let id = Identity::from_seed(seed);
        assert_eq!(id.mnemonic().as_str(), s(c, "mnemonic"), "case {}", name(c));
        assert_eq!(*Identity::from_mnemonic(s(c, "mnemonic")).unwrap().seed(), seed, "case {}", name(c));
        assert_eq!(id.public_key().hex(), s(c, "public"), "case {}", name(c));
        assert_eq!(id.key_string(), s(c, "key"), "case {}", name(c));
        assert_eq!(id.nkey_public().unwrap(), s(c, "nkey_public"), "case {}", name(c));
        assert_eq!(id.nkey_seed().unwrap().as_str(), s(c, "nkey_seed"), "case {}", name(c));
        assert_eq!(hex::encode(id.x25519_public()), s(c, "x25519_public"), "case {}", name(c));
        // The encodings as PROTOCOL.md describes them, independently of the nkeys crate:
        // user public prefix 0xA0 (20 << 3); seed prefix 0x90 | (0xA0 >> 5), (0xA0 & 31) << 3.
        assert_eq!(nkey_encode(&[20 << 3], &hx32(c, "public")), s(c, "nkey_public"), "case {}", name(c));
        assert_eq!(nkey_encode(&[0x95, 0x00], &seed), s(c, "nkey_seed"), "case {}", name(c));
        assert_eq!(s(c, "nkey_public").len(), 56);
        assert_eq!(s(c, "nkey_seed").len(), 58);
        // The nkeys crate (used by async-nats) round-trips both.
        let kp = nkeys::KeyPair::from_seed(s(c, "nkey_seed")).unwrap();
        assert_eq!(kp.public_key(), s(c, "nkey_public"));
    }
    let inputs = arr(v, "mnemonic_inputs");
    unique_names(inputs, "mnemonic_inputs");
    for c in inputs {
        assert_eq!(*Identity::from_mnemonic(s(c, "input")).unwrap().seed(), hx32(c, "seed"), "case {}", name(c));
    }
    let invalid = arr(v, "invalid_mnemonics");
    unique_names(invalid, "invalid_mnemonics");
    let mut kinds = std::collections::BTreeSet::new();
    for c in invalid {
        let e = Identity::from_mnemonic(s(c, "input")).unwrap_err();
        assert_eq!(error_json(&e), c["error"], "case {}", name(c));
        kinds.insert(c["error"]["kind"].as_str().unwrap().to_string());
        // The message names the problem.
        let msg = e.to_string();
        match &e {
            MnemonicError::WordCount { got } => assert!(msg.contains("24") && msg.contains(&got.to_string()), "{msg}"),
            MnemonicError::UnknownWord { position, .. } => assert!(msg.contains(&format!("word {position}")), "{msg}"),
            MnemonicError::Checksum => assert!(msg.contains("checksum"), "{msg}"),
        }
    }
    assert_eq!(kinds.into_iter().collect::<Vec<_>>(), ["checksum", "unknown_word", "word_count"]);
}

#[test]
fn keys_json() {
    let generated = generate();
    if updating() {
        write_or_compare("keys.json", &generated);
    }
    check(&read("keys.json"));
    write_or_compare("keys.json", &generated);
}

#[test]
fn nonces_json_through_identity() {
    let v = read("nonces.json");
    let id = Identity::from_seed(hx32(&v, "seed"));
    for c in arr(&v, "cases") {
        let r = id.sign_nats_nonce(s(c, "nonce"));
        if b(c, "sign") {
            assert_eq!(r.unwrap(), s(c, "signature"), "case {}", name(c));
        } else {
            assert!(r.is_err(), "case {}: must refuse", name(c));
            assert!(id.sign_nats_nonce_raw(s(c, "nonce")).is_err());
        }
    }
}
