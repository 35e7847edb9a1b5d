//! `testdata/envelopes.json`: generated from fixed inputs, and every stored case checked.

use super::*;

pub(crate) fn body_json(b: &Body) -> (&'static str, Value) {
    (b.kind(), b.to_value())
}

pub(crate) fn body_from(kind: &str, v: &Value) -> Body {
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

pub(crate) fn strip_zeros(mut v: Vec<u8>) -> Vec<u8> {
    while v.last() == Some(&0) {
        v.pop();
    }
    v
}

#[allow(clippy::too_many_arguments)]
pub(crate) fn inner_map(
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

pub(crate) fn eph_pub(eph: [u8; 32]) -> String {
    b64_encode(&x25519_dalek::PublicKey::from(&x25519_dalek::StaticSecret::from(eph)).to_bytes())
}

pub(crate) fn gen_envelopes() -> Value {
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
    let outer_of = |v: Value| canonicalize(&v).unwrap();
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
        seal_raw(eph, &bk, &canonicalize(&Value::Object(base())).unwrap()),
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

pub(crate) fn check_envelopes(v: &Value) {
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
pub(crate) fn envelopes_json() {
    run("envelopes.json", gen_envelopes, check_envelopes);
}
