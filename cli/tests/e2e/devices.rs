//! Devices (PROTOCOL.md §6.1, §9.3, §9.4): one user with three data folders — the original
//! and two restored from the same 24 words — gets every message on every device, exactly
//! once and in order, also when a device was offline while the mail came; what one device
//! sends shows on the others; a removed device stops receiving. A data folder of wave 1
//! (no `device.json`) becomes a device and reads the mail stored the wave-1 way. Blocking a
//! sender drops its waiting mail and refuses the rest on every device.

use std::sync::Arc;

use kez_client::Identity;
use kv_schemas::PublicKey;
use kv_schemas::envelope::{Body, seal};
use serde_json::Value;

use crate::harness::{Run, Stack, User};

/// `listen --json` until `n` messages were shown (received or sent from another device).
fn listen(u: &User, n: usize) -> Run {
    u.ok(&["--json", "listen", "--count", &n.to_string(), "--timeout", "90"])
}

/// The shown messages of a `listen --json` run, as `"<event>:<text>"`.
fn shown(r: &Run) -> Vec<String> {
    r.inbox_events()
        .iter()
        .filter(|e| matches!(e["event"].as_str(), Some("message" | "sent")))
        .map(|e| format!("{}:{}", e["event"].as_str().unwrap(), e["text"].as_str().unwrap()))
        .collect()
}

/// Nothing is left for this device.
fn drained(u: &User) {
    let r = u.ok(&["--json", "listen", "--once"]);
    assert!(shown(&r).is_empty(), "{} got something twice: {}", u.name, r.stdout);
}

/// `history <who> --json` as `(outgoing, text)`.
fn history(u: &User, who: &str) -> Vec<(bool, String)> {
    let h = u.ok(&["--json", "history", who, "--limit", "1000"]).json();
    h["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m["outgoing"].as_bool().unwrap(), m["text"].as_str().unwrap().to_string()))
        .collect()
}

fn devices(u: &User) -> Value {
    u.ok(&["--json", "devices"]).json()
}

#[test]
fn three_devices_get_everything_once_in_order_and_removal_stops_one() {
    let stack = Stack::start();
    let laptop = User::new("alice", &stack);
    let bob = User::new("bob", &stack);
    let carol = User::new("carol", &stack);
    let words = laptop.register(false);
    bob.register(false);
    carol.register(false);
    laptop.ok(&["devices", "rename", "this", "alice laptop"]);
    let phone = User::new("alice", &stack);
    phone.restore(&words, "alice phone");
    let desktop = User::new("alice", &stack);
    desktop.restore(&words, "alice desktop");
    for u in [&laptop, &phone, &desktop] {
        u.ok(&["add", "bob"]);
        u.ok(&["add", "carol"]);
    }
    bob.ok(&["add", "alice"]);
    carol.ok(&["add", "alice"]);

    // Three devices, each enrolled by register/restore; each list marks its own.
    let list = devices(&laptop);
    let names: Vec<&str> = list["devices"].as_array().unwrap().iter().map(|d| d["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["alice laptop", "alice phone", "alice desktop"], "{list}");
    for u in [&laptop, &phone, &desktop] {
        let l = devices(u);
        let this: Vec<&Value> = l["devices"].as_array().unwrap().iter().filter(|d| d["this_device"] == true).collect();
        assert_eq!(this.len(), 1, "{l}");
        assert_eq!(this[0]["id"], u.device_id().as_str());
    }

    // 50 messages from two senders, in three rounds; the devices listen at different times.
    let mut expected: Vec<String> = Vec::new();
    let mut send_round = |from: usize, to: usize| {
        for i in from..to {
            let (sender, name) = if i % 2 == 0 { (&bob, "bob") } else { (&carol, "carol") };
            let text = format!("{name} #{i:02}");
            sender.ok(&["send", "alice", &text]);
            expected.push(format!("message:{text}"));
        }
    };
    send_round(0, 20); // everyone offline
    let mut got_laptop = shown(&listen(&laptop, 20));
    send_round(20, 40); // the laptop is offline again; phone and desktop never listened
    let mut got_phone = shown(&listen(&phone, 40));
    send_round(40, 50);
    got_laptop.extend(shown(&listen(&laptop, 30)));
    let got_desktop = shown(&listen(&desktop, 50));
    got_phone.extend(shown(&listen(&phone, 10)));
    for (name, got) in [("laptop", &got_laptop), ("phone", &got_phone), ("desktop", &got_desktop)] {
        assert_eq!(got, &expected, "{name}: every message exactly once, in order");
    }
    for u in [&laptop, &phone, &desktop] {
        drained(u);
        let from_bob: Vec<(bool, String)> = (0..50).step_by(2).map(|i| (false, format!("bob #{i:02}"))).collect();
        assert_eq!(history(u, "bob"), from_bob);
        assert_eq!(history(u, "carol").len(), 25);
    }

    // Sent from the laptop: bob gets it once; phone and desktop show it as outgoing.
    laptop.ok(&["send", "bob", "sent from the laptop"]);
    assert_eq!(shown(&listen(&bob, 1)), ["message:sent from the laptop"]);
    drained(&bob);
    for u in [&phone, &desktop] {
        let r = listen(u, 1);
        assert_eq!(shown(&r), ["sent:sent from the laptop"], "{}", r.stdout);
        let sent = r.inbox_events().into_iter().find(|e| e["event"] == "sent").unwrap();
        assert_eq!(sent["handle"], "bob@kez.test");
        assert_eq!(history(u, "bob").last().unwrap(), &(true, "sent from the laptop".to_string()));
        drained(u);
    }
    // The laptop has it already (it stored it when sending): its own copy is not shown again.
    drained(&laptop);
    let h = history(&laptop, "bob");
    assert_eq!(h.iter().filter(|m| m.1 == "sent from the laptop").count(), 1);
    assert_eq!(h.last().unwrap(), &(true, "sent from the laptop".to_string()));

    // Removing needs confirmation: without a terminal and without --yes nothing happens.
    let desktop_id = desktop.device_id();
    let r = laptop.fails(&["devices", "remove", &desktop_id], 2);
    assert!(r.stderr.contains("--yes"), "{}", r.stderr);
    assert_eq!(devices(&laptop)["devices"].as_array().unwrap().len(), 3);
    laptop.fails(&["devices", "remove", "not-a-device", "--yes"], 2);
    laptop.fails(&["devices", "remove", "0123456789abcdef", "--yes"], 4);

    // Removing the desktop stops its delivery at once.
    let r = laptop.ok(&["--json", "devices", "remove", &desktop_id, "--yes"]).json();
    assert_eq!(r["status"], "removed");
    bob.ok(&["send", "alice", "after the removal"]);
    assert_eq!(shown(&listen(&laptop, 1)), ["message:after the removal"]);
    assert_eq!(shown(&listen(&phone, 1)), ["message:after the removal"]);
    let r = desktop.fails(&["--json", "listen", "--once"], 12);
    assert!(r.stderr.contains("was removed from your account"), "{}", r.stderr);
    assert_eq!(r.json_lines().last().unwrap()["error"]["kind"], "device_removed");
    assert!(!history(&desktop, "bob").iter().any(|m| m.1 == "after the removal"));
    let ids: Vec<String> =
        devices(&laptop)["devices"].as_array().unwrap().iter().map(|d| d["id"].as_str().unwrap().to_string()).collect();
    assert_eq!(ids, [laptop.device_id(), phone.device_id()]);
    // The removed device cannot come back under its id, and cannot remove the others.
    desktop.fails(&["listen", "--once"], 12);
}

#[test]
fn a_wave_one_data_folder_becomes_a_device_and_reads_wave_one_mail() {
    let stack = Stack::start();
    let alice = User::new("alice", &stack);
    let bob = User::new("bob", &stack);
    alice.register(false);
    let bob_words = bob.register(false);
    alice.ok(&["add", "bob"]);
    bob.ok(&["add", "alice"]);
    // What a kez-chat 0.1 data folder holds: account, key, db; no device.json.
    std::fs::remove_file(alice.home().join("device.json")).unwrap();
    let alice_key: PublicKey = alice.ok(&["--json", "whoami"]).json()["key"].as_str().unwrap().parse().unwrap();

    // Mail stored the wave-1 way: the envelope on `kez.inbox.<alice hex>`, no sender tag.
    let bob_id = Arc::new(Identity::from_mnemonic(&bob_words).unwrap());
    let env =
        seal(bob_id.signing_key(), &alice_key, &Body::Text("stored by wave 1".into()), kv_schemas::now_ms()).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let ops = stack.ops_client().await;
        let ack = ops
            .request(kv_schemas::subjects::legacy_inbox_subject(&alice_key), env.into())
            .await
            .expect("the inbox stream stores it");
        assert!(String::from_utf8_lossy(&ack.payload).contains("KEZ_INBOX"), "a PubAck: {:?}", ack.payload);
    });
    bob.ok(&["send", "alice", "sent after the upgrade"]);

    let r = listen(&alice, 2);
    assert_eq!(shown(&r), ["message:stored by wave 1", "message:sent after the upgrade"], "{}", r.stdout);
    assert!(alice.home().join("device.json").exists(), "the first connection made the folder a device");
    let list = devices(&alice);
    let this: Vec<&Value> = list["devices"].as_array().unwrap().iter().filter(|d| d["this_device"] == true).collect();
    assert_eq!(this.len(), 1, "{list}");
    assert_eq!(this[0]["id"], alice.device_id().as_str());
    drained(&alice);
    let h = history(&alice, "bob");
    assert_eq!(h, [(false, "stored by wave 1".to_string()), (false, "sent after the upgrade".to_string())]);
}

#[test]
fn blocking_drops_waiting_mail_and_refuses_more_on_every_device() {
    let stack = Stack::start();
    let alice = User::new("alice", &stack);
    let spammer = User::new("spammer", &stack);
    let bob = User::new("bob", &stack);
    let words = alice.register(false);
    spammer.register(false);
    bob.register(false);
    let phone = User::new("alice", &stack);
    phone.restore(&words, "phone");
    spammer.ok(&["add", "alice"]);
    bob.ok(&["add", "alice"]);

    spammer.ok(&["send", "alice", "buy now"]);
    spammer.ok(&["send", "alice", "buy now, really"]);
    let r = alice.ok(&["--json", "block", "@spammer"]).json();
    assert_eq!(r["status"], "blocked");
    assert_eq!(r["purged"], 2, "{r}");
    assert!(alice.ok(&["contacts"]).stdout.lines().all(|l| !l.contains("spammer")), "blocking pins no contact");
    // The spammer is not told: sending still succeeds for them.
    spammer.ok(&["send", "alice", "are you there?"]);
    bob.ok(&["send", "alice", "hi from bob"]);
    for u in [&alice, &phone] {
        let r = listen(u, 1);
        assert_eq!(shown(&r), ["message:hi from bob"], "{}", r.stdout);
        drained(u);
    }

    alice.ok(&["unblock", "@spammer"]);
    spammer.ok(&["send", "alice", "after the unblock"]);
    for u in [&alice, &phone] {
        let r = listen(u, 1);
        assert_eq!(shown(&r), ["message:after the unblock"], "{}", r.stdout);
    }
    alice.fails(&["block", "@alice"], 2);
    alice.fails(&["block", "@nobody"], 4);
}
