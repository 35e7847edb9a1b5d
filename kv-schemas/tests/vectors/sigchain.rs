//! `testdata/sigchain.json`: generated from fixed inputs, and every stored case checked.

use super::*;

#[allow(clippy::too_many_arguments)]
pub(crate) fn link_map(
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
pub(crate) fn link(owner: &SigningKey, seqno: u64, prev: Option<&str>, op: &str, body: Value) -> Vec<u8> {
    let k = PublicKey::of(owner);
    sign_as(owner, Purpose::SigchainLink, &link_map(&k, &k, seqno, prev, NOW + seqno * 1000, op, false, body))
}

pub(crate) fn id_of(bytes: &[u8]) -> String {
    parse_link(bytes).unwrap().link_id
}

/// Replays links from an empty state: the state, or the failing index and error.
pub(crate) fn replay(key: &PublicKey, links: &[Vec<u8>]) -> Result<ChainState, (usize, KezError)> {
    let mut st = ChainState::empty(*key);
    for (i, b) in links.iter().enumerate() {
        let l = parse_link(b).map_err(|e| (i, e))?;
        st.apply(&l).map_err(|e| (i, e))?;
    }
    Ok(st)
}

pub(crate) fn nats_body(k: &PublicKey) -> Value {
    json!({"kind": "nats", "subject": format!("kez.inbox.{}", k.hex()), "url": "nats://kez.lat:4222"})
}

pub(crate) fn iroh_body(k: &PublicKey) -> Value {
    json!({"kind": "iroh", "node_id": k.hex()})
}

/// The two device ids of the per-device endpoint vectors.
pub(crate) const DEVICES: [&str; 2] = ["0123456789abcdef", "fedcba9876543210"];

pub(crate) fn device(i: usize) -> DeviceId {
    DEVICES[i].parse().unwrap()
}

/// A per-device iroh body (PROTOCOL.md §5, §7.5) of `owner`'s device `i`.
pub(crate) fn device_body(owner: [u8; 32], i: usize, role: IrohRole) -> Value {
    json!({"kind": "iroh", "node_id": endpoint_key(&owner, &device(i), role).hex(), "device": DEVICES[i], "role": role.as_str()})
}

pub(crate) fn gen_sigchain() -> Value {
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
        let bytes = build_link(&alice, i as u64 + 1, prev.as_deref(), NOW + (i as u64 + 1) * 1000, &op).unwrap();
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

pub(crate) fn check_sigchain(v: &Value) {
    for c in arr(v, "chains") {
        let key = key_of(c, "key");
        let links: Vec<Vec<u8>> = arr(c, "links").iter().map(|l| s(l, "bytes").as_bytes().to_vec()).collect();
        for (l, b) in arr(c, "links").iter().zip(&links) {
            let parsed = parse_link(b).unwrap();
            assert_eq!(parsed.link_id, s(l, "link_id"), "case {}", name(c));
            assert_eq!(parsed.seqno, u(l, "seqno"), "case {}", name(c));
            // link_id = SHA-256 of the signing input, recomputed by hand.
            assert_eq!(
                hex_encode(&Sha256::digest(signing_input(Purpose::SigchainLink, &without_sig(b)).unwrap())),
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
pub(crate) fn sigchain_json() {
    run("sigchain.json", gen_sigchain, check_sigchain);
}
