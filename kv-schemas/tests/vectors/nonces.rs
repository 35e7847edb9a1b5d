//! `testdata/nonces.json`: generated from fixed inputs, and every stored case checked.

use super::*;

pub(crate) fn gen_nonces() -> Value {
    let tls = format!("{}TLS 1.3, client CertificateVerify\0", " ".repeat(64));
    let link = text(&signing_input(Purpose::SigchainLink, &obj(json!({"v": 1}))).unwrap());
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

pub(crate) fn check_nonces(v: &Value) {
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
pub(crate) fn nonces_json() {
    run("nonces.json", gen_nonces, check_nonces);
}
