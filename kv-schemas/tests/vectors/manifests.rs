//! `testdata/manifests.json`: generated from fixed inputs, and every stored case checked.

use super::*;

pub(crate) fn pointer_of(v: &Value) -> kv_schemas::sigchain::SharedFiles {
    kv_schemas::sigchain::SharedFiles {
        manifest: s(v, "manifest").into(),
        manifest_seq: u(v, "manifest_seq"),
        size: u(v, "size"),
    }
}

pub(crate) fn gen_manifests() -> Value {
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

pub(crate) fn check_manifests(v: &Value) {
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
        let blob = files::encrypt_bytes(&k, n16, &pt).unwrap();
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
            meta: files::seal_meta(&k, &bh, &meta).unwrap(),
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
pub(crate) fn manifests_json() {
    run("manifests.json", gen_manifests, check_manifests);
}
