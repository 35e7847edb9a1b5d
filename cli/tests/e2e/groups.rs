//! Groups (PROTOCOL.md §6.2) with four users on the real stack: create, exchange
//! messages, remove a member (it receives nothing afterwards), add another (it sees the
//! state and new messages), two admins change the group at once and every member ends with
//! the same state hash, and a change forged by a non-admin is rejected by everyone.

use std::sync::Arc;

use kez_client::Identity;
use kez_client::broker::Broker;
use kez_client::config::Paths;
use kez_client::groups::{self, GroupStore};
use kv_schemas::envelope::{self, Body};
use kv_schemas::group::{GroupId, GroupMessage, GroupOp, parse_group_link};
use kv_schemas::now_ms;
use kv_schemas::subjects::DeviceId;
use serde_json::Value;

use crate::harness::{Stack, User};

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

fn key_of(u: &User) -> String {
    u.ok(&["--json", "whoami"]).json()["key"].as_str().unwrap().to_string()
}

/// `listen --once --json`: every line.
fn listen(u: &User) -> Vec<Value> {
    u.ok(&["--json", "listen", "--once"]).json_lines()
}

fn group_texts(lines: &[Value]) -> Vec<(String, String)> {
    lines
        .iter()
        .filter(|l| l["event"] == "group_message" && l["flag"].is_null())
        .map(|l| (l["handle"].as_str().unwrap_or("?").to_string(), l["text"].as_str().unwrap().to_string()))
        .collect()
}

fn group_events(lines: &[Value]) -> Vec<&Value> {
    lines.iter().filter(|l| l["event"].as_str().is_some_and(|e| e.starts_with("group"))).collect()
}

fn show(u: &User, g: &str) -> Value {
    u.ok(&["--json", "group", "show", g]).json()
}

fn member_keys(v: &Value) -> Vec<String> {
    let mut k: Vec<String> =
        v["members"].as_array().unwrap().iter().map(|m| m["key"].as_str().unwrap().into()).collect();
    k.sort();
    k
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_users_share_a_group_that_converges_and_rejects_forgeries() {
    let stack = Stack::start();
    let alice = User::new("alice", &stack);
    let bob = User::new("bob", &stack);
    let carol = User::new("carol", &stack);
    let dave = User::new("dave", &stack);
    alice.register(false);
    bob.register(false);
    carol.register(false);
    let dave_words = dave.register(false);
    for u in [&bob, &carol, &dave] {
        u.ok(&["add", "alice"]);
    }
    let (a_key, b_key, c_key, d_key) = (key_of(&alice), key_of(&bob), key_of(&carol), key_of(&dave));

    // --- create: alice with bob and carol; the server is told nothing but three sends.
    let created = alice.ok(&["--json", "group", "create", "friends", "@bob", "@carol"]).json();
    let gid = created["group"].as_str().unwrap().to_string();
    let g = format!("group:{gid}");
    assert_eq!(created["status"], "created");
    assert_eq!(created["sent_to"], 3, "bob, carol and alice's own devices");
    assert_eq!(member_keys(&created), {
        let mut k = vec![a_key.clone(), b_key.clone(), c_key.clone()];
        k.sort();
        k
    });
    alice.ok(&["send", "#friends", "hello friends"]);

    // --- exchange: bob learns the group from the notice, then writes to it.
    let lines = listen(&bob);
    assert!(lines.iter().any(|l| l["event"] == "group_change" && l["op"] == "create"), "{lines:?}");
    assert_eq!(group_texts(&lines), [("alice@kez.test".to_string(), "hello friends".to_string())]);
    bob.ok(&["send", "#friends", "hi from bob"]);
    let lines = listen(&carol);
    let texts: Vec<String> = group_texts(&lines).into_iter().map(|(_, t)| t).collect();
    assert_eq!(texts, ["hello friends", "hi from bob"], "{lines:?}");
    let lines = listen(&alice);
    assert_eq!(group_texts(&lines).len(), 1, "bob's message; alice's own copy is known: {lines:?}");
    let h = alice.ok(&["--json", "history", "#friends"]).json();
    let hist: Vec<&str> = h["messages"].as_array().unwrap().iter().map(|m| m["text"].as_str().unwrap()).collect();
    assert_eq!(hist, ["hello friends", "hi from bob"]);

    // --- a non-admin cannot change the group (refused locally, nothing sent).
    let r = bob.fails(&["--json", "group", "add", &g, "@dave"], 13);
    assert!(r.stdout.contains("not_group_admin"), "{}", r.stdout);

    // --- remove carol: nothing sent afterwards reaches her.
    alice.ok(&["group", "remove", &g, "@carol"]);
    alice.ok(&["send", &g, "carol is gone"]);
    let lines = listen(&bob);
    assert!(lines.iter().any(|l| l["event"] == "group_change" && l["op"] == "remove"), "{lines:?}");
    assert_eq!(group_texts(&lines).last().unwrap().1, "carol is gone");
    let lines = listen(&carol);
    assert!(group_events(&lines).is_empty(), "carol receives nothing after her removal: {lines:?}");

    // --- add dave: he gets the log and sees new messages.
    alice.ok(&["group", "add", &g, "@dave"]);
    // A sender seals to the members of its own current state: bob learns of dave first.
    listen(&bob);
    bob.ok(&["send", &g, "welcome dave"]);
    let lines = listen(&dave);
    assert!(group_texts(&lines).iter().any(|(_, t)| t == "welcome dave"), "{lines:?}");
    assert!(!group_texts(&lines).iter().any(|(_, t)| t == "carol is gone"), "sent before he joined: {lines:?}");
    let d_view = show(&dave, &g);
    assert_eq!(d_view["state"], show(&alice, &g)["state"]);
    assert!(member_keys(&d_view).contains(&d_key));
    assert!(!member_keys(&d_view).contains(&c_key));

    // --- two admins change the group at once.
    alice.ok(&["group", "promote", &g, &b_key]);
    listen(&bob);
    listen(&dave);
    alice.ok(&["group", "add", &g, "@carol"]);
    bob.ok(&["group", "rename", &g, "renamed"]);
    // Two rounds: the loser's author re-applies its change when it sees it lost, then everyone catches up.
    for _ in 0..2 {
        for u in [&alice, &bob, &carol, &dave] {
            listen(u);
        }
    }
    let views: Vec<Value> = [&alice, &bob, &carol, &dave].iter().map(|u| show(u, &g)).collect();
    for (u, v) in ["alice", "bob", "carol", "dave"].iter().zip(&views) {
        assert_eq!(v["state"], views[0]["state"], "{u} has another state: {v}");
        assert_eq!(v["name"], "renamed", "{u}: the rename survived: {v}");
        assert!(member_keys(v).contains(&c_key), "{u}: the add survived: {v}");
    }

    // --- a forged change: dave (not an admin) signs "add <stranger>" and sends it with a text
    // under the forged state. Everyone keeps the old state and flags the text.
    let before = views[0]["state"].as_str().unwrap().to_string();
    let dave_id = Arc::new(Identity::from_mnemonic(&dave_words).unwrap());
    let gid_parsed: GroupId = gid.parse().unwrap();
    let log = GroupStore::new(&Paths::at(dave.home())).load(&gid_parsed).unwrap().unwrap();
    let st = log.current();
    let stranger = Identity::from_seed([77; 32]).public_key();
    let forged = parse_group_link(&build_group_link(
        dave_id.signing_key(),
        &gid_parsed,
        st.seqno + 1,
        Some(&st.hash()),
        now_ms(),
        &GroupOp::Add { key: stranger },
    ))
    .unwrap();
    let forged_state = {
        // What the state would be if dave were an admin (same link, hypothetical authority).
        let mut s = st.clone();
        s.seqno += 1;
        s.head = forged.link_id.clone();
        s.hash()
    };
    let mut links: Vec<_> = log.canonical().0.into_iter().cloned().collect();
    links.push(forged);
    let body = Body::Group(GroupMessage {
        group: gid_parsed,
        state: forged_state,
        links,
        text: Some("I added a friend".into()),
    });
    let broker = Broker::connect(&stack.nats_url, dave_id.clone(), &DeviceId::random()).await.expect("dave logs in");
    for to in groups::recipients(&dave_id, &log) {
        let env = envelope::seal(dave_id.signing_key(), &to, &body, now_ms()).unwrap();
        broker.send(&to, env).await.expect("the relay stores it");
    }
    broker.close().await;
    for (name, u) in [("alice", &alice), ("bob", &bob), ("carol", &carol)] {
        let lines = listen(u);
        let flagged: Vec<&Value> = lines.iter().filter(|l| l["event"] == "group_message").collect();
        assert_eq!(flagged.len(), 1, "{name}: {lines:?}");
        assert_eq!(flagged[0]["flag"], "unknown_group_state", "{name}: shown flagged, never as the group's");
        let v = show(u, &g);
        assert_eq!(v["state"], before, "{name}: the forged change was not applied");
        assert!(!member_keys(&v).contains(&stranger.to_string()));
        let h = u.ok(&["--json", "history", &g]).json();
        let last = h["messages"].as_array().unwrap().last().unwrap().clone();
        assert_eq!(last["flag"], "unknown_group_state", "{name}: history marks it: {last}");
    }
}
