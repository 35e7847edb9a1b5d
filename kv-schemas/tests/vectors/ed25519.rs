//! `testdata/ed25519.json`: generated from fixed inputs, and every stored case checked.

use super::*;

/// The group order L, little-endian.
pub(crate) const L_LE: &str = "edd3f55c1a631258d69cf7a2def9de1400000000000000000000000000000010";
/// The field prime p = 2^255 − 19, little-endian.
pub(crate) const P_LE: &str = "edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f";

pub(crate) fn add_le(a: &[u8; 32], b: &[u8; 32]) -> [u8; 32] {
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

pub(crate) fn key_reason(bytes: &[u8; 32]) -> &'static str {
    match CompressedEdwardsY(*bytes).decompress() {
        None => "not_on_curve",
        Some(p) if p.compress().to_bytes() != *bytes => "non_canonical",
        Some(p) if p.is_small_order() => "small_order",
        Some(_) => "ok",
    }
}

pub(crate) fn secret_scalar(seed: &[u8; 32]) -> Scalar {
    let h = Sha512::digest(seed);
    let mut a = [0u8; 32];
    a.copy_from_slice(&h[..32]);
    a[0] &= 248;
    a[31] &= 127;
    a[31] |= 64;
    Scalar::from_bytes_mod_order(a)
}

pub(crate) fn wide(h: &[u8]) -> Scalar {
    Scalar::from_bytes_mod_order_wide(&h.try_into().unwrap())
}

pub(crate) fn challenge(r: &[u8; 32], a: &[u8; 32], m: &[u8]) -> Scalar {
    let mut h = Sha512::new();
    h.update(r);
    h.update(a);
    h.update(m);
    wide(&h.finalize())
}

/// (cofactorless, cofactored) equation results, decoding permissively.
pub(crate) fn equations(a: &[u8; 32], r: &[u8; 32], s: &[u8; 32], m: &[u8]) -> (bool, bool) {
    use curve25519_dalek::traits::IsIdentity as _;
    let (Some(ap), Some(rp)) = (CompressedEdwardsY(*a).decompress(), CompressedEdwardsY(*r).decompress()) else {
        return (false, false);
    };
    let Some(sc) = Option::<Scalar>::from(Scalar::from_canonical_bytes(*s)) else { return (false, false) };
    let k = challenge(r, a, m);
    let diff = EdwardsPoint::mul_base(&sc) - rp - ap * k;
    (diff.is_identity(), diff.mul_by_cofactor().is_identity())
}

pub(crate) fn strict_valid(a: &[u8; 32], m: &[u8], sig: &[u8; 64]) -> bool {
    PublicKey::from_bytes(*a).and_then(|k| k.verify_strict(m, sig)).is_ok()
}

pub(crate) fn gen_ed25519() -> Value {
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

pub(crate) fn check_ed25519(v: &Value) {
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
pub(crate) fn ed25519_json() {
    run("ed25519.json", gen_ed25519, check_ed25519);
}
