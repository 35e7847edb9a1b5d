//! `testdata/signatures.json`: generated from fixed inputs, and every stored case checked.

use super::*;

pub(crate) fn purpose_of(p: &str) -> Purpose {
    match p {
        "register" => Purpose::Register,
        "sigchain.link" => Purpose::SigchainLink,
        "manifest" => Purpose::Manifest,
        "msg" => Purpose::Msg,
        other => panic!("unknown purpose {other}"),
    }
}

pub(crate) fn without_sig(bytes: &[u8]) -> Map<String, Value> {
    let mut m = obj(parse_canonical(bytes).unwrap());
    m.remove("sig");
    m
}

pub(crate) fn with_field(bytes: &[u8], k: &str, v: Value) -> Vec<u8> {
    let mut m = obj(parse_canonical(bytes).unwrap());
    m.insert(k.into(), v);
    canonicalize(&Value::Object(m)).unwrap()
}

pub(crate) fn without_field(bytes: &[u8], k: &str) -> Vec<u8> {
    let mut m = obj(parse_canonical(bytes).unwrap());
    m.remove(k);
    canonicalize(&Value::Object(m)).unwrap()
}

pub(crate) fn msg_unsigned(from: &PublicKey, to: &PublicKey, text_body: &str) -> Map<String, Value> {
    obj(json!({"type": "kez.msg", "v": 1, "from": from.to_string(), "to": to.to_string(),
               "enc": b64_encode(&[0x22; 32]), "id": b64_encode(&[0x33; 16]), "ts": NOW,
               "kind": "text", "body": {"text": text_body}}))
}

pub(crate) fn verify_signed(purpose: Purpose, bytes: &[u8], key: &PublicKey) -> Result<Vec<u8>, KezError> {
    let v = parse_canonical(bytes)?;
    kv_schemas::sig::verify_object(purpose, v.as_object().unwrap(), key)
}

pub(crate) fn gen_signatures() -> Value {
    use kv_schemas::sigchain::{Endpoint, Op, build_link};
    let alice = sk(ALICE);
    let (ak, bk) = (pk(ALICE), pk(BOB));
    let reg = register::build(&alice, &Handle::parse_input("alice", HOME).unwrap(), NOW, [0x11; 16]).unwrap();
    let link = build_link(&alice, 1, None, NOW, &Op::AddEndpoint(Endpoint::iroh_wave1(&ak))).unwrap();
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
                   "signing_input_hex": hex_encode(&signing_input(purpose_of(purpose_str), &unsigned).unwrap()),
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
    let raw_sig = sign_raw(&alice, &canonicalize(&Value::Object(unsigned.clone())).unwrap());
    let mut m = unsigned.clone();
    m.insert("sig".into(), b64_encode(&raw_sig).into());
    add("signature_without_domain_prefix", "msg", ak, canonicalize(&Value::Object(m)).unwrap(), "bad_signature");
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

pub(crate) fn check_signatures(v: &Value) {
    let purposes: BTreeSet<&str> = arr(v, "valid").iter().map(|c| s(c, "purpose")).collect();
    assert_eq!(purposes, ["manifest", "msg", "register", "sigchain.link"].into_iter().collect());
    for c in arr(v, "valid") {
        let purpose = purpose_of(s(c, "purpose"));
        let signer = seed_of(c, "seed");
        let unsigned = c["unsigned"].as_object().unwrap();
        assert_eq!(unsigned["type"], purpose.object_type(), "case {}", name(c));
        let input = signing_input(purpose, unsigned).unwrap();
        assert_eq!(hex_encode(&input), s(c, "signing_input_hex"), "case {}", name(c));
        assert_eq!(input[10], 0);
        let sig = sign_raw(&signer, &input);
        assert_eq!(b64_encode(&sig), s(c, "sig"), "case {}", name(c));
        let mut signed = unsigned.clone();
        signed.insert("sig".into(), s(c, "sig").into());
        assert_eq!(text(&canonicalize(&Value::Object(signed)).unwrap()), s(c, "signed"), "case {}", name(c));
        assert_eq!(verify_signed(purpose, s(c, "signed").as_bytes(), &key_of(c, "key")).unwrap(), input);
        assert_eq!(PublicKey::of(&signer), key_of(c, "key"));
    }
    for c in arr(v, "invalid") {
        expect_code(c, verify_signed(purpose_of(s(c, "purpose")), s(c, "signed").as_bytes(), &key_of(c, "key")));
    }
}

#[test]
pub(crate) fn signatures_json() {
    run("signatures.json", gen_signatures, check_signatures);
}
