//! `testdata/groups.json` (PROTOCOL.md §6.2, format in testdata/README.md): group links,
//! logs and states, the fork rule, group message bodies and the receiver's verdict.
//! Regenerated in memory and compared byte for byte; every stored case is checked.
//! `KEZ_UPDATE_VECTORS=1` rewrites the file.
#![allow(clippy::unwrap_used, clippy::too_many_lines)]

mod common;

use ed25519_dalek::SigningKey;
use kv_schemas::encoding::b64_encode;
use kv_schemas::error::{ErrorCode, KezError};
use kv_schemas::group::{
    self, GroupId, GroupLink, GroupLog, GroupMessage, GroupOp, GroupState, Member, Role, Verdict, parse_group_link,
};
use kv_schemas::jcs::canonicalize;
use kv_schemas::keys::{PublicKey, sign_raw};
use kv_schemas::sig::{Purpose, signing_input};
use serde_json::{Map, Value, json};

use common::*;

/// The link bytes; building a link from test values cannot fail.
fn build_group_link(
    signing: &ed25519_dalek::SigningKey,
    group: &kv_schemas::group::GroupId,
    seqno: u64,
    prev: Option<&str>,
    ctime: u64,
    op: &kv_schemas::group::GroupOp,
) -> Vec<u8> {
    kv_schemas::group::build_group_link(signing, group, seqno, prev, ctime, op).unwrap()
}

const FILE: &str = "groups.json";
const NOW: u64 = 1_800_000_000_000;
const GID: GroupId = GroupId([0x42; 32]);
const OTHER_GID: GroupId = GroupId([0x43; 32]);

fn sk(n: u8) -> SigningKey {
    SigningKey::from_bytes(&[n; 32])
}
fn pk(n: u8) -> PublicKey {
    PublicKey::of(&sk(n))
}
/// alice, bob, carol, dave, erin = seeds 01…05.
const ALICE: u8 = 1;
const BOB: u8 = 2;
const CAROL: u8 = 3;
const DAVE: u8 = 4;
const ERIN: u8 = 5;

fn text(b: &[u8]) -> String {
    String::from_utf8(b.to_vec()).unwrap()
}

fn members(admin: u8, others: &[u8]) -> Vec<Member> {
    let mut m: Vec<Member> = others.iter().map(|&n| Member { key: pk(n), role: Role::Member }).collect();
    m.push(Member { key: pk(admin), role: Role::Admin });
    m.sort_by_key(|m| m.key);
    m
}

fn create_bytes(by: u8, others: &[u8], name: &str) -> Vec<u8> {
    let op = GroupOp::Create { name: name.into(), members: members(by, others) };
    build_group_link(&sk(by), &GID, 1, None, NOW, &op)
}

fn on(by: u8, st: &GroupState, ctime: u64, op: GroupOp) -> Vec<u8> {
    build_group_link(&sk(by), &GID, st.seqno + 1, Some(&st.hash()), ctime, &op)
}

fn parsed(b: &[u8]) -> GroupLink {
    parse_group_link(b).unwrap()
}

/// A hand-built link map, signed by `signer_seed` (the claimed signer may differ).
fn raw_link(signer_seed: u8, m: Value) -> Vec<u8> {
    let unsigned: Map<String, Value> = m.as_object().cloned().unwrap();
    let sig = sign_raw(&sk(signer_seed), &signing_input(Purpose::GroupLink, &unsigned).unwrap());
    let mut out = unsigned;
    out.insert("sig".into(), Value::String(b64_encode(&sig)));
    canonicalize(&Value::Object(out)).unwrap()
}

/// A create body with alice alone, as admin.
fn solo_body() -> Value {
    json!({"name": "x", "members": [{"key": pk(ALICE).to_string(), "role": "admin"}]})
}

fn link_map(by: u8, seqno: u64, prev: Option<&str>, op: &str, body: Value) -> Value {
    json!({"type": "kez.group.link", "v": 1, "group": GID.to_string(), "seqno": seqno, "prev": prev,
           "signer": pk(by).to_string(), "ctime": NOW + seqno, "op": op, "body": body})
}

/// Replays links from genesis; the states after each, or the failing index and error.
fn replay(links: &[Vec<u8>]) -> Result<Vec<GroupState>, (usize, KezError)> {
    let mut states: Vec<GroupState> = vec![];
    for (i, b) in links.iter().enumerate() {
        let l = parse_group_link(b).map_err(|e| (i, e))?;
        let next = match states.last() {
            None => GroupState::genesis(&l),
            Some(s) => s.apply(&l),
        }
        .map_err(|e| (i, e))?;
        states.push(next);
    }
    Ok(states)
}

fn state_json(st: &GroupState) -> Value {
    st.to_value()
}

// ------------------------------------------------------------------ generate

fn gen_logs() -> (Vec<Value>, Vec<Vec<u8>>) {
    let mut out = vec![];
    // The full life of a group: every op once.
    let c = create_bytes(ALICE, &[BOB, CAROL], "friends");
    let s1 = GroupState::genesis(&parsed(&c)).unwrap();
    let l2 = on(ALICE, &s1, NOW + 2, GroupOp::Promote { key: pk(BOB) });
    let s2 = s1.apply(&parsed(&l2)).unwrap();
    let l3 = on(BOB, &s2, NOW + 3, GroupOp::Add { key: pk(DAVE) });
    let s3 = s2.apply(&parsed(&l3)).unwrap();
    let l4 = on(ALICE, &s3, NOW + 4, GroupOp::Rename { name: "friends ✨".into() });
    let s4 = s3.apply(&parsed(&l4)).unwrap();
    let l5 = on(BOB, &s4, NOW + 5, GroupOp::Remove { key: pk(CAROL) });
    let s5 = s4.apply(&parsed(&l5)).unwrap();
    let l6 = on(DAVE, &s5, NOW + 6, GroupOp::Leave);
    let s6 = s5.apply(&parsed(&l6)).unwrap();
    let l7 = on(ALICE, &s6, NOW + 7, GroupOp::Leave);
    let s7 = s6.apply(&parsed(&l7)).unwrap();
    let life = vec![c.clone(), l2, l3, l4, l5, l6, l7];
    let states = [s1, s2, s3, s4, s5, s6, s7];
    out.push(log_case("every_op_once", &life, &states, "alice creates with bob and carol, promotes bob; bob adds dave; alice renames; bob removes carol; dave leaves; alice leaves (bob is still an admin)"));
    let solo = create_bytes(ERIN, &[], "just me");
    let s = GroupState::genesis(&parsed(&solo)).unwrap();
    out.push(log_case("create_alone", std::slice::from_ref(&solo), &[s], "a group of one"));
    let last = create_bytes(CAROL, &[], "empty soon");
    let s1 = GroupState::genesis(&parsed(&last)).unwrap();
    let bye = on(CAROL, &s1, NOW + 1, GroupOp::Leave);
    let s2 = s1.apply(&parsed(&bye)).unwrap();
    out.push(log_case("last_member_leaves", &[last, bye], &[s1, s2], "the only member leaves: no members remain"));
    (out, life)
}

fn log_case(name: &str, links: &[Vec<u8>], states: &[GroupState], note: &str) -> Value {
    let ls: Vec<Value> = links
        .iter()
        .zip(states)
        .map(|(b, st)| json!({"bytes": text(b), "link_id": parsed(b).link_id, "state_hash": st.hash()}))
        .collect();
    let last = states.last().unwrap();
    json!({"name": name, "note": note, "links": ls, "state": state_json(last), "state_hash": last.hash()})
}

fn gen_invalid_logs() -> Vec<Value> {
    let c = create_bytes(ALICE, &[BOB, CAROL], "friends");
    let s1 = GroupState::genesis(&parsed(&c)).unwrap();
    let h1 = s1.hash();
    let mut cases: Vec<(&str, Vec<Vec<u8>>, &str)> = vec![];
    let with = |l: Vec<u8>| vec![c.clone(), l];
    cases.push(("add_by_non_admin", with(on(BOB, &s1, NOW, GroupOp::Add { key: pk(DAVE) })), "not_group_admin"));
    cases.push(("remove_by_non_admin", with(on(CAROL, &s1, NOW, GroupOp::Remove { key: pk(BOB) })), "not_group_admin"));
    cases.push((
        "rename_by_non_admin",
        with(on(BOB, &s1, NOW, GroupOp::Rename { name: "mine".into() })),
        "not_group_admin",
    ));
    cases.push((
        "forged_signer",
        with(raw_link(CAROL, link_map(ALICE, 2, Some(&h1), "add", json!({"key": pk(DAVE).to_string()})))),
        "bad_signature",
    ));
    cases.push((
        "wrong_prev",
        with(raw_link(ALICE, link_map(ALICE, 2, Some(&"ab".repeat(32)), "add", json!({"key": pk(DAVE).to_string()})))),
        "prev_mismatch",
    ));
    cases.push((
        "wrong_seqno",
        with(raw_link(ALICE, link_map(ALICE, 3, Some(&h1), "add", json!({"key": pk(DAVE).to_string()})))),
        "seqno_conflict",
    ));
    cases.push((
        "add_existing_member",
        with(on(ALICE, &s1, NOW, GroupOp::Add { key: pk(BOB) })),
        "invalid_group_change",
    ));
    cases.push((
        "remove_non_member",
        with(on(ALICE, &s1, NOW, GroupOp::Remove { key: pk(DAVE) })),
        "invalid_group_change",
    ));
    cases.push(("remove_self", with(on(ALICE, &s1, NOW, GroupOp::Remove { key: pk(ALICE) })), "invalid_group_change"));
    cases.push((
        "promote_admin",
        with(on(ALICE, &s1, NOW, GroupOp::Promote { key: pk(ALICE) })),
        "invalid_group_change",
    ));
    cases.push(("last_admin_leaves_others_stay", with(on(ALICE, &s1, NOW, GroupOp::Leave)), "invalid_group_change"));
    cases.push(("leave_by_non_member", with(on(DAVE, &s1, NOW, GroupOp::Leave)), "not_group_member"));
    cases.push((
        "other_group",
        with(build_group_link(&sk(ALICE), &OTHER_GID, 2, Some(&h1), NOW, &GroupOp::Add { key: pk(DAVE) })),
        "invalid_group_change",
    ));
    cases.push((
        "second_create",
        with(raw_link(ALICE, link_map(ALICE, 2, Some(&h1), "create", solo_body()))),
        "invalid_group_change",
    ));
    cases.push((
        "unknown_op",
        with(raw_link(ALICE, link_map(ALICE, 2, Some(&h1), "ban", json!({"key": pk(BOB).to_string()})))),
        "invalid_group_change",
    ));
    cases.push((
        "extra_body_field",
        with(raw_link(
            ALICE,
            link_map(ALICE, 2, Some(&h1), "add", json!({"key": pk(DAVE).to_string(), "role": "admin"})),
        )),
        "invalid_request",
    ));
    cases.push((
        "bad_member_key",
        with(raw_link(
            ALICE,
            link_map(ALICE, 2, Some(&h1), "add", json!({"key": format!("ed25519:{}", "00".repeat(32))})),
        )),
        "invalid_key",
    ));
    let mut extra = link_map(ALICE, 2, Some(&h1), "leave", json!({}));
    extra["x"] = json!(1);
    cases.push(("extra_link_field", with(raw_link(ALICE, extra)), "invalid_request"));
    let mut wrong = link_map(ALICE, 2, Some(&h1), "leave", json!({}));
    wrong["type"] = json!("kez.sigchain.link");
    cases.push(("wrong_type", with(raw_link(ALICE, wrong)), "wrong_type"));
    let good = on(ALICE, &s1, NOW, GroupOp::Rename { name: "ok".into() });
    let mut spaced = text(&good).replacen(",", ", ", 1).into_bytes();
    cases.push(("not_canonical", with(std::mem::take(&mut spaced)), "not_canonical"));
    cases.push((
        "rename_to_same_name",
        with(on(ALICE, &s1, NOW, GroupOp::Rename { name: "friends".into() })),
        "invalid_group_change",
    ));
    cases.push((
        "name_too_long",
        with(raw_link(ALICE, link_map(ALICE, 2, Some(&h1), "rename", json!({"name": "n".repeat(65)})))),
        "invalid_group_change",
    ));
    cases.push((
        "name_control_char",
        with(raw_link(ALICE, link_map(ALICE, 2, Some(&h1), "rename", json!({"name": "a\u{7}b"})))),
        "invalid_group_change",
    ));
    // Link 0 itself.
    let no_admin = raw_link(
        ALICE,
        link_map(
            ALICE,
            1,
            None,
            "create",
            json!({"name": "x", "members": [{"key": pk(ALICE).to_string(), "role": "member"}]}),
        ),
    );
    cases.push(("create_creator_not_admin", vec![no_admin], "invalid_group_change"));
    let mut unsorted: Vec<Value> = members(ALICE, &[BOB, CAROL])
        .iter()
        .map(|m| json!({"key": m.key.to_string(), "role": m.role.as_str()}))
        .collect();
    unsorted.reverse();
    cases.push((
        "create_members_unsorted",
        vec![raw_link(ALICE, link_map(ALICE, 1, None, "create", json!({"name": "x", "members": unsorted})))],
        "invalid_group_change",
    ));
    let dup =
        json!([{"key": pk(ALICE).to_string(), "role": "admin"}, {"key": pk(ALICE).to_string(), "role": "member"}]);
    cases.push((
        "create_duplicate_member",
        vec![raw_link(ALICE, link_map(ALICE, 1, None, "create", json!({"name": "x", "members": dup})))],
        "invalid_group_change",
    ));
    cases.push((
        "create_with_prev",
        vec![raw_link(ALICE, link_map(ALICE, 1, Some(&h1), "create", solo_body()))],
        "invalid_group_change",
    ));
    // 101 members at create; 100 then one more added.
    let many: Vec<u8> = (10u8..=110).collect();
    let big = |n: usize| {
        let mut m: Vec<Member> = many[..n].iter().map(|&s| Member { key: pk(s), role: Role::Member }).collect();
        m.push(Member { key: pk(ALICE), role: Role::Admin });
        m.sort_by_key(|m| m.key);
        m
    };
    let c101 =
        build_group_link(&sk(ALICE), &GID, 1, None, NOW, &GroupOp::Create { name: "big".into(), members: big(100) });
    cases.push(("create_101_members", vec![c101], "group_full"));
    let c100 =
        build_group_link(&sk(ALICE), &GID, 1, None, NOW, &GroupOp::Create { name: "big".into(), members: big(99) });
    let s100 = GroupState::genesis(&parsed(&c100)).unwrap();
    assert_eq!(s100.members.len(), 100);
    let add101 = on(ALICE, &s100, NOW, GroupOp::Add { key: pk(DAVE) });
    cases.push(("add_101st_member", vec![c100, add101], "group_full"));

    cases
        .into_iter()
        .map(|(name, links, error)| {
            let (fails_at, e) = replay(&links).err().unwrap_or_else(|| panic!("generator: {name} verifies"));
            assert_eq!(e.code.as_str(), error, "generator: {name}: {}", e.message);
            assert_eq!(fails_at, links.len() - 1, "generator: {name} fails early: {}", e.message);
            json!({"name": name, "links": links.iter().map(|b| text(b)).collect::<Vec<_>>(), "fails_at": fails_at, "error": error})
        })
        .collect()
}

/// Fork cases: `links[0]` is the create link; the rest arrive in each of `orders`
/// (indices into `links`); every order gives the same canonical log and state.
fn gen_forks() -> Vec<Value> {
    let c = create_bytes(ALICE, &[BOB, CAROL], "friends");
    let s1 = GroupState::genesis(&parsed(&c)).unwrap();
    let p = on(ALICE, &s1, NOW + 1, GroupOp::Promote { key: pk(BOB) });
    let s2 = s1.apply(&parsed(&p)).unwrap();
    let a_add = on(ALICE, &s2, NOW + 2, GroupOp::Add { key: pk(DAVE) });
    let b_add = on(BOB, &s2, NOW + 2, GroupOp::Add { key: pk(ERIN) });
    let a_rm = on(ALICE, &s2, NOW + 3, GroupOp::Remove { key: pk(BOB) });
    let b_rm = on(BOB, &s2, NOW + 3, GroupOp::Remove { key: pk(ALICE) });
    // Alice's add extended by a rename on top of it.
    let s3a = s2.apply(&parsed(&a_add)).unwrap();
    let a_rename = on(ALICE, &s3a, NOW + 4, GroupOp::Rename { name: "renamed".into() });
    // A link whose parent nobody has (kept, not applied).
    let orphan =
        raw_link(ALICE, link_map(ALICE, 5, Some(&"cd".repeat(32)), "add", json!({"key": pk(DAVE).to_string()})));
    let cases: Vec<(&str, Vec<Vec<u8>>, &str)> = vec![
        (
            "two_admins_add",
            vec![c.clone(), p.clone(), a_add.clone(), b_add.clone()],
            "both add at the same state: the smaller link id wins",
        ),
        (
            "removal_beats_removed_admin",
            vec![c.clone(), p.clone(), a_rm.clone(), b_add.clone()],
            "alice removes bob while bob adds erin: the removal wins whatever the ids",
        ),
        (
            "mutual_removal",
            vec![c.clone(), p.clone(), a_rm, b_rm],
            "each removes the other: both are dropped by rule 1, so rule 2 decides",
        ),
        (
            "branch_with_descendant",
            vec![c.clone(), p.clone(), a_add, a_rename, b_add.clone()],
            "alice's add already has a child when bob's add arrives",
        ),
        ("orphan_is_ignored", vec![c, p, b_add, orphan], "a link whose parent state is unknown changes nothing"),
    ];
    cases
        .into_iter()
        .map(|(name, links, note)| {
            let n = links.len();
            let forward: Vec<usize> = (0..n).collect();
            let mut backward: Vec<usize> = (1..n).rev().collect();
            backward.insert(0, 0);
            let orders = vec![forward, backward];
            let mut results = vec![];
            for order in &orders {
                let mut log = GroupLog::new(parsed(&links[0])).unwrap();
                for &i in &order[1..] {
                    log.insert(parsed(&links[i])).unwrap();
                }
                let (canon, _) = log.canonical();
                let ids: Vec<String> = canon.iter().map(|l| l.link_id.clone()).collect();
                let st = log.current();
                let lost: Vec<String> = log.lost().iter().map(|l| l.link_id.clone()).collect();
                results.push((ids, st.hash(), state_json(&st), lost));
            }
            assert!(results.windows(2).all(|w| w[0] == w[1]), "generator: {name} does not converge");
            let (ids, hash, st, mut lost) = results.remove(0);
            lost.sort();
            json!({"name": name, "note": note, "links": links.iter().map(|b| text(b)).collect::<Vec<_>>(),
                   "orders": orders, "canonical": ids, "state": st, "state_hash": hash, "lost": lost})
        })
        .collect()
}

fn gen_messages(life: &[Vec<u8>]) -> (Vec<Value>, Vec<Value>) {
    let links: Vec<Value> = life[..3].iter().map(|b| serde_json::from_slice(b).unwrap()).collect();
    let states = replay(&life[..3]).unwrap();
    let head = states.last().unwrap().hash();
    let good = json!({"group": GID.to_string(), "state": head, "links": links, "text": "hello group"});
    let mut valid = vec![
        json!({"name": "text_with_log", "body": good.clone()}),
        json!({"name": "change_notice", "body": {"group": GID.to_string(), "state": head, "links": [links[2].clone()]}}),
        json!({"name": "no_links", "body": {"group": GID.to_string(), "state": head, "links": [], "text": "hi"}}),
    ];
    for v in &mut valid {
        let m = GroupMessage::parse(&v["body"]).unwrap();
        assert_eq!(m.to_value(), v["body"]);
    }
    let mut tampered = links[1].clone();
    tampered["ctime"] = json!(1);
    let other = serde_json::from_slice::<Value>(&build_group_link(
        &sk(ALICE),
        &OTHER_GID,
        1,
        None,
        NOW,
        &GroupOp::Create { name: "x".into(), members: members(ALICE, &[]) },
    ))
    .unwrap();
    let with = |k: &str, v: Value| {
        let mut b = good.clone();
        b[k] = v;
        b
    };
    let mut extra = good.clone();
    extra["kind"] = json!("text");
    let mut no_state = good.clone();
    no_state.as_object_mut().unwrap().remove("state");
    let invalid: Vec<(&str, Value, &str)> = vec![
        ("extra_field", extra, "invalid_request"),
        ("missing_state", no_state, "invalid_request"),
        ("state_not_hex", with("state", json!("AB".repeat(32))), "invalid_request"),
        ("group_id_short", with("group", json!(b64_encode(&[1u8; 31]))), "invalid_encoding"),
        ("empty_text", with("text", json!("")), "invalid_request"),
        ("tampered_link", with("links", json!([links[0].clone(), tampered])), "bad_signature"),
        ("link_of_other_group", with("links", json!([other])), "invalid_group_change"),
    ];
    let invalid = invalid
        .into_iter()
        .map(|(name, body, error)| {
            assert_eq!(GroupMessage::parse(&body).unwrap_err().code.as_str(), error, "generator: {name}");
            json!({"name": name, "body": body, "error": error})
        })
        .collect();
    (valid, invalid)
}

/// Receiver verdicts: `known` links (a log the reader has; empty = group unknown), a message
/// body from `from`, read by `reader`: `verdict` is `ok`, a flag code, or an `error` rejects it.
fn gen_verdicts(life: &[Vec<u8>]) -> Vec<Value> {
    let states = replay(life).unwrap();
    let v = |b: &Vec<u8>| serde_json::from_slice::<Value>(b).unwrap();
    let body = |upto: usize, carried: std::ops::Range<usize>, text: &str| {
        json!({"group": GID.to_string(), "state": states[upto].hash(),
               "links": life[carried].iter().map(v).collect::<Vec<_>>(), "text": text})
    };
    let strs = |r: std::ops::Range<usize>| life[r].iter().map(|b| text(b)).collect::<Vec<_>>();
    let mut forged_create = body(0, 0..1, "hijack");
    forged_create["links"] = json!([v(&build_group_link(
        &sk(CAROL),
        &GID,
        1,
        None,
        NOW,
        &GroupOp::Create { name: "mine".into(), members: members(CAROL, &[BOB]) }
    ))]);
    let cases: Vec<(&str, Vec<String>, u8, u8, Value)> = vec![
        ("new_member_learns_from_carried_log", vec![], DAVE, BOB, body(2, 0..3, "welcome dave")),
        ("catch_up_from_suffix", strs(0..2), CAROL, BOB, body(2, 2..3, "you missed one")),
        ("older_known_state_from_member", strs(0..3), CAROL, ALICE, body(1, 0..0, "sent before the add")),
        ("unknown_state", strs(0..2), CAROL, BOB, body(2, 0..0, "state you cannot rebuild")),
        ("removed_member_sends", strs(0..5), BOB, CAROL, body(3, 0..0, "i was removed")),
        ("stranger_sends", strs(0..3), ALICE, ERIN, body(2, 0..0, "let me in")),
        ("reader_was_removed", strs(0..5), CAROL, BOB, body(4, 0..0, "not for carol")),
        ("unknown_group_without_create", vec![], DAVE, BOB, body(2, 1..3, "no root")),
        ("second_create_for_known_group", strs(0..2), BOB, CAROL, forged_create),
    ];
    cases
        .into_iter()
        .map(|(name, known, reader, from, body)| {
            let (verdict, hash) = verdict_of(&known, reader, from, &body);
            let mut c = json!({"name": name, "known": known, "reader": pk(reader).to_string(),
                               "from": pk(from).to_string(), "body": body});
            match verdict {
                Ok(v) => {
                    c["verdict"] = json!(v);
                    c["state_hash"] = json!(hash);
                }
                Err(code) => c["error"] = json!(code),
            }
            c
        })
        .collect()
}

fn verdict_of(known: &[String], reader: u8, from: u8, body: &Value) -> (Result<String, String>, String) {
    let mut log: Option<GroupLog> = None;
    for b in known {
        let l = parse_group_link(b.as_bytes()).unwrap();
        match &mut log {
            None => log = Some(GroupLog::new(l).unwrap()),
            Some(g) => {
                g.insert(l).unwrap();
            }
        }
    }
    let msg = match GroupMessage::parse(body) {
        Ok(m) => m,
        Err(e) => return (Err(e.code.as_str().into()), String::new()),
    };
    match group::receive(log, &msg, &pk(from), &pk(reader)) {
        Ok((log, v)) => {
            let v = match v {
                Verdict::Ok => "ok".to_string(),
                Verdict::Flagged(c) => c.as_str().to_string(),
            };
            (Ok(v), log.current().hash())
        }
        Err(e) => (Err(e.code.as_str().into()), String::new()),
    }
}

fn generate() -> Value {
    let (logs, life) = gen_logs();
    let (valid, invalid) = gen_messages(&life);
    json!({
        "description": "Group logs, states, the fork rule and group messages (PROTOCOL.md §6.2). alice…erin = seeds 01…05; group id = 0x42×32.",
        "logs": logs,
        "invalid_logs": gen_invalid_logs(),
        "forks": gen_forks(),
        "messages": valid,
        "invalid_messages": invalid,
        "verdicts": gen_verdicts(&life),
    })
}

// ------------------------------------------------------------------ check

fn check(v: &Value) {
    for c in arr(v, "logs") {
        let links: Vec<Vec<u8>> = arr(c, "links").iter().map(|l| s(l, "bytes").as_bytes().to_vec()).collect();
        let states = replay(&links).unwrap_or_else(|(i, e)| panic!("case {}: link {i}: {e}", name(c)));
        for ((l, b), st) in arr(c, "links").iter().zip(&links).zip(&states) {
            assert_eq!(parsed(b).link_id, s(l, "link_id"), "case {}", name(c));
            assert_eq!(st.hash(), s(l, "state_hash"), "case {}", name(c));
        }
        let last = states.last().unwrap();
        assert_eq!(state_json(last), c["state"], "case {}", name(c));
        assert_eq!(last.hash(), s(c, "state_hash"), "case {}", name(c));
        // The log as a tree gives the same state.
        let mut log = GroupLog::new(parsed(&links[0])).unwrap();
        for b in &links[1..] {
            log.insert(parsed(b)).unwrap();
        }
        assert_eq!(&log.current(), last, "case {}", name(c));
    }
    for c in arr(v, "invalid_logs") {
        let links: Vec<Vec<u8>> = arr(c, "links").iter().map(|l| l.as_str().unwrap().as_bytes().to_vec()).collect();
        match replay(&links) {
            Ok(_) => panic!("case {}: log verifies", name(c)),
            Err((i, e)) => {
                assert_eq!(i as u64, u(c, "fails_at"), "case {}: failed at {i} with {e}", name(c));
                assert_eq!(e.code.as_str(), s(c, "error"), "case {}: {}", name(c), e.message);
            }
        }
    }
    for c in arr(v, "forks") {
        let links: Vec<&str> = arr(c, "links").iter().map(|l| l.as_str().unwrap()).collect();
        for order in arr(c, "orders") {
            let order: Vec<usize> = order.as_array().unwrap().iter().map(|i| i.as_u64().unwrap() as usize).collect();
            let mut log = GroupLog::new(parsed(links[order[0]].as_bytes())).unwrap();
            for &i in &order[1..] {
                log.insert(parsed(links[i].as_bytes())).unwrap();
            }
            let (canon, _) = log.canonical();
            let ids: Vec<Value> = canon.iter().map(|l| json!(l.link_id)).collect();
            assert_eq!(&ids, arr(c, "canonical"), "case {} order {order:?}", name(c));
            assert_eq!(log.current().hash(), s(c, "state_hash"), "case {}", name(c));
            assert_eq!(state_json(&log.current()), c["state"], "case {}", name(c));
            let mut lost: Vec<String> = log.lost().iter().map(|l| l.link_id.clone()).collect();
            lost.sort();
            assert_eq!(json!(lost), c["lost"], "case {}", name(c));
        }
    }
    for c in arr(v, "messages") {
        let m = GroupMessage::parse(&c["body"]).unwrap_or_else(|e| panic!("case {}: {e}", name(c)));
        assert_eq!(m.to_value(), c["body"], "case {}", name(c));
    }
    for c in arr(v, "invalid_messages") {
        let got = GroupMessage::parse(&c["body"]).map(|_| ()).map_err(|e| e.code);
        assert_eq!(got.map_err(ErrorCode::as_str), Err(s(c, "error")), "case {}", name(c));
    }
    for c in arr(v, "verdicts") {
        let known: Vec<String> = arr(c, "known").iter().map(|l| l.as_str().unwrap().to_string()).collect();
        let seed_of = |k: &str| (1u8..=5).find(|&n| pk(n).to_string() == s(c, k)).unwrap();
        let (got, hash) = verdict_of(&known, seed_of("reader"), seed_of("from"), &c["body"]);
        match c.get("error") {
            Some(e) => assert_eq!(got, Err(e.as_str().unwrap().to_string()), "case {}", name(c)),
            None => {
                assert_eq!(got, Ok(s(c, "verdict").to_string()), "case {}", name(c));
                assert_eq!(hash, s(c, "state_hash"), "case {}", name(c));
            }
        }
    }
}

#[test]
fn groups_json() {
    let generated = generate();
    if updating() {
        write_or_compare(FILE, &generated);
    }
    let stored = read(FILE);
    assert!(stored["description"].as_str().is_some_and(|d| !d.is_empty()));
    for (k, x) in stored.as_object().unwrap() {
        if let Some(a) = x.as_array() {
            unique_names(a, &format!("{FILE}/{k}"));
        }
    }
    check(&stored);
    write_or_compare(FILE, &generated);
}

/// A non-admin's change is rejected by everyone, and a forged change never enters the log.
#[test]
fn forged_changes_never_enter_a_log() {
    let c = create_bytes(ALICE, &[BOB, CAROL], "friends");
    let mut log = GroupLog::new(parsed(&c)).unwrap();
    let s1 = log.current();
    let forged = parsed(&on(BOB, &s1, NOW, GroupOp::Add { key: pk(ERIN) }));
    log.insert(forged.clone()).unwrap();
    assert_eq!(log.current(), s1, "a non-admin's add changes nothing");
    assert!(log.lost().is_empty(), "and is not a lost change to re-apply");
    assert!(!log.knows_state(&s1.apply(&forged).map(|s| s.hash()).unwrap_or_default()));
}
