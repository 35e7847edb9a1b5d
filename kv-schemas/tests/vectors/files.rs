//! `testdata/files.json`: generated from fixed inputs, and every stored case checked.

use super::*;

pub(crate) const STREAM_LENGTHS: &[usize] = &[0, 1, 65_535, 65_536, 65_537, 200_000];

pub(crate) fn stream_key() -> ([u8; 32], [u8; 16]) {
    let k: [u8; 32] = std::array::from_fn(|i| i as u8);
    let n: [u8; 16] = std::array::from_fn(|i| 0xa0 + i as u8);
    (k, n)
}

pub(crate) fn chunk_nonce(i: u64, last: bool) -> [u8; 12] {
    let mut n = [0u8; 12];
    n[3..11].copy_from_slice(&i.to_be_bytes());
    n[11] = u8::from(last);
    n
}

/// Independent STREAM encryption (§7.1).
pub(crate) fn stream_raw(k: &[u8; 32], n16: &[u8; 16], pt: &[u8]) -> Vec<u8> {
    let kp = hkdf32(k, n16, b"kez-v1/file/payload");
    let mut out = n16.to_vec();
    let chunks: Vec<&[u8]> = if pt.is_empty() { vec![&[]] } else { pt.chunks(65_536).collect() };
    for (i, c) in chunks.iter().enumerate() {
        out.extend(aead(&kp, chunk_nonce(i as u64, i + 1 == chunks.len()), b"", c));
    }
    out
}

pub(crate) fn assemble(parts: &[Value], blobs: &dyn Fn(&str) -> Vec<u8>) -> Vec<u8> {
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

pub(crate) fn meta_key(k: &[u8; 32]) -> [u8; 32] {
    hkdf32(k, b"", b"kez-v1/file/meta")
}

pub(crate) fn meta_aad(bh: &[u8; 32]) -> Vec<u8> {
    [b"kez-v1/file/meta\0".as_slice(), bh].concat()
}

pub(crate) fn gen_files() -> Value {
    let (k, n16) = stream_key();
    let blobs: Vec<(String, Vec<u8>)> = STREAM_LENGTHS
        .iter()
        .map(|&len| (format!("len_{len}"), files::encrypt_bytes(&k, n16, &plain(len)).unwrap()))
        .collect();
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
            let sealed = files::seal_meta(&k, &bh, m).unwrap();
            let pt = canonicalize(&json!({"name": m.name, "size": m.size, "hash": m.hash})).unwrap();
            assert_eq!(b64_encode(&aead(&meta_key(&k), [0; 12], &meta_aad(&bh), &pt)), sealed, "{n}: independent meta agrees");
            json!({"name": n, "file_key": hex_encode(&k), "blob_hash": hex_encode(&bh), "meta": {"name": m.name, "size": m.size, "hash": m.hash},
                   "meta_key": hex_encode(&meta_key(&k)), "plaintext": text(&pt), "sealed": sealed})
        })
        .collect();
    let good_meta = files::seal_meta(&k, &bh, &metas[0].1).unwrap();
    let seal_pt = |pt: &[u8]| b64_encode(&aead(&meta_key(&k), [0; 12], &meta_aad(&bh), pt));
    let h = metas[0].1.hash.clone();
    let mi: Vec<(&str, [u8; 32], [u8; 32], String, &str)> = vec![
        ("wrong_blob_hash", k, other_bh, good_meta.clone(), "decrypt_failed"),
        ("wrong_file_key", other_key, bh, good_meta.clone(), "decrypt_failed"),
        (
            "name_with_slash",
            k,
            bh,
            seal_pt(&canonicalize(&json!({"name": "a/b", "size": 1, "hash": h})).unwrap()),
            "invalid_manifest",
        ),
        (
            "name_with_nul",
            k,
            bh,
            seal_pt(&canonicalize(&json!({"name": "a\u{0}b", "size": 1, "hash": h})).unwrap()),
            "invalid_manifest",
        ),
        (
            "name_with_backslash",
            k,
            bh,
            seal_pt(&canonicalize(&json!({"name": "a\\b", "size": 1, "hash": h})).unwrap()),
            "invalid_manifest",
        ),
        (
            "name_dot_dot",
            k,
            bh,
            seal_pt(&canonicalize(&json!({"name": "..", "size": 1, "hash": h})).unwrap()),
            "invalid_manifest",
        ),
        (
            "name_dot",
            k,
            bh,
            seal_pt(&canonicalize(&json!({"name": ".", "size": 1, "hash": h})).unwrap()),
            "invalid_manifest",
        ),
        (
            "name_with_colon",
            k,
            bh,
            seal_pt(&canonicalize(&json!({"name": "a:b", "size": 1, "hash": h})).unwrap()),
            "invalid_manifest",
        ),
        (
            "name_trailing_dot",
            k,
            bh,
            seal_pt(&canonicalize(&json!({"name": "a.", "size": 1, "hash": h})).unwrap()),
            "invalid_manifest",
        ),
        (
            "name_trailing_space",
            k,
            bh,
            seal_pt(&canonicalize(&json!({"name": "a ", "size": 1, "hash": h})).unwrap()),
            "invalid_manifest",
        ),
        (
            "name_device_con",
            k,
            bh,
            seal_pt(&canonicalize(&json!({"name": "CON", "size": 1, "hash": h})).unwrap()),
            "invalid_manifest",
        ),
        (
            "name_device_nul_ext",
            k,
            bh,
            seal_pt(&canonicalize(&json!({"name": "nul.txt", "size": 1, "hash": h})).unwrap()),
            "invalid_manifest",
        ),
        (
            "name_device_com1",
            k,
            bh,
            seal_pt(&canonicalize(&json!({"name": "Com1.tar.gz", "size": 1, "hash": h})).unwrap()),
            "invalid_manifest",
        ),
        (
            "name_device_lpt9_space",
            k,
            bh,
            seal_pt(&canonicalize(&json!({"name": "lpt9 .txt", "size": 1, "hash": h})).unwrap()),
            "invalid_manifest",
        ),
        (
            "name_empty",
            k,
            bh,
            seal_pt(&canonicalize(&json!({"name": "", "size": 1, "hash": h})).unwrap()),
            "invalid_manifest",
        ),
        (
            "name_256_bytes",
            k,
            bh,
            seal_pt(&canonicalize(&json!({"name": "n".repeat(256), "size": 1, "hash": h})).unwrap()),
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
            seal_pt(&canonicalize(&json!({"name": "a", "size": 1, "hash": h, "mtime": 5})).unwrap()),
            "invalid_request",
        ),
        (
            "hash_uppercase",
            k,
            bh,
            seal_pt(&canonicalize(&json!({"name": "a", "size": 1, "hash": h.to_uppercase()})).unwrap()),
            "invalid_encoding",
        ),
        (
            "size_is_a_string",
            k,
            bh,
            seal_pt(&canonicalize(&json!({"name": "a", "size": "1", "hash": h})).unwrap()),
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

pub(crate) fn check_files(v: &Value) {
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
        let blob = files::encrypt_bytes(&k, n16, &pt).unwrap();
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
        assert_eq!(text(&canonicalize(m).unwrap()), s(c, "plaintext"), "case {}", name(c));
        assert_eq!(files::seal_meta(&k, &bh, &fm).unwrap(), s(c, "sealed"), "case {}", name(c));
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
pub(crate) fn files_json() {
    run("files.json", gen_files, check_files);
}
