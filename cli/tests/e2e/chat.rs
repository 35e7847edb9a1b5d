//! Register, add each other, chat both ways; offline delivery in order,
//! exactly once; a crash between store and ack loses nothing and shows nothing twice.

use serde_json::Value;

use crate::harness::{Stack, User};

fn messages(lines: &[Value]) -> Vec<&Value> {
    lines.iter().filter(|v| v["event"] == "message").collect()
}

fn texts(lines: &[Value]) -> Vec<String> {
    messages(lines).iter().map(|v| v["text"].as_str().unwrap().to_string()).collect()
}

#[test]
fn two_users_chat_offline_delivery_in_order_exactly_once() {
    let stack = Stack::start();
    let alice = User::new("alice", &stack);
    let bob = User::new("bob", &stack);
    alice.register(true);
    bob.register(false);

    // `show` only looks: a handle that is not a contact is shown, not pinned.
    let shown = alice.ok(&["--json", "show", "@bob"]).json();
    assert_eq!(shown["contact"], false);
    assert_eq!(shown["handle"], "bob@kez.test");
    assert!(alice.ok(&["--json", "contacts"]).json().as_array().unwrap().is_empty());
    assert!(alice.ok(&["show", "bob"]).stdout.contains("not a contact"));

    // Contacts: both pin each other; the safety number is the same on both sides.
    let a = alice.ok(&["--json", "add", "@bob"]).json();
    assert_eq!(a["change"], "added");
    assert_eq!(a["handle"], "bob@kez.test");
    assert_eq!(a["status"], "trusted");
    assert_eq!(a["inbox"], format!("kez.inbox.{}", a["key"].as_str().unwrap().trim_start_matches("ed25519:")));
    let b = bob.ok(&["--json", "add", "alice"]).json();
    assert_eq!(a["safety_number"], b["safety_number"]);
    assert_eq!(a["safety_number"].as_str().unwrap().split(' ').count(), 12);
    // Adding again re-checks and keeps the key.
    assert_eq!(alice.ok(&["--json", "add", "bob"]).json()["change"], "unchanged");

    // Bob is offline (not listening) while Alice sends three messages, one from stdin.
    alice.ok(&["send", "@bob", "hello bob"]);
    alice.ok(&["send", "bob@kez.test", "second"]);
    let r = alice.run_with(&["send", "bob", "-"], "third\nwith two lines\n", &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);

    // Bob gets all three, in order, shown as Alice.
    let r = bob.ok(&["--json", "listen", "--count", "3", "--timeout", "30"]);
    let lines = r.inbox_events();
    assert_eq!(texts(&lines), ["hello bob", "second", "third\nwith two lines"], "{}", r.stdout);
    for m in messages(&lines) {
        assert_eq!(m["sender"], "contact");
        assert_eq!(m["handle"], "alice@kez.test");
    }
    assert!(lines.iter().all(|l| l["event"] != "rejected"), "{}", r.stdout);

    // Exactly once: nothing is waiting any more.
    let r = bob.ok(&["--json", "listen", "--once"]);
    assert!(r.inbox_events().is_empty(), "{}", r.stdout);

    // Both ways; human output is "handle: text".
    bob.ok(&["send", "alice", "hi alice"]);
    let r = alice.ok(&["listen", "--count", "1", "--timeout", "30"]);
    assert!(r.stdout.contains("bob: hi alice"), "{}", r.stdout);

    // History survives the processes that wrote it, in order, both directions.
    let h = bob.ok(&["--json", "history", "alice"]).json();
    let hist: Vec<(bool, String)> = h["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m["outgoing"].as_bool().unwrap(), m["text"].as_str().unwrap().to_string()))
        .collect();
    assert_eq!(
        hist,
        [
            (false, "hello bob".to_string()),
            (false, "second".into()),
            (false, "third\nwith two lines".into()),
            (true, "hi alice".into())
        ]
    );
    let h = alice.ok(&["history", "@bob"]).stdout;
    assert!(h.contains("me: hello bob") && h.contains("bob: hi alice"), "{h}");

    // Local search: all words, any order, case ignored, newest first, sent and received alike.
    let found = bob.ok(&["--json", "search", "LINES", "two"]).json();
    assert_eq!(found["messages"].as_array().unwrap().len(), 1, "{found}");
    assert_eq!(found["messages"][0]["text"], "third\nwith two lines");
    assert_eq!(found["messages"][0]["in"], "alice@kez.test");
    let found = bob.ok(&["--json", "search", "alice"]).json();
    let found: Vec<_> = found["messages"].as_array().unwrap().iter().map(|m| m["text"].clone()).collect();
    assert_eq!(found, [serde_json::json!("hi alice")]);
    assert!(bob.ok(&["search", "hello"]).stdout.contains("alice · alice: hello bob"));
    assert!(bob.ok(&["search", "nowhere"]).stdout.contains("no stored message contains"));
    let r = bob.run_with(&["search", " "], "", &[]);
    assert_ne!(r.code, 0, "an empty query is refused: {}", r.stdout);
    assert!(r.stderr.contains("at least one word"), "{}", r.stderr);

    // A crash after a message was stored and shown, before its ack: it is not
    // lost and not shown again when the broker redelivers it.
    alice.ok(&["send", "bob", "before the crash"]);
    alice.ok(&["send", "bob", "after the crash"]);
    let r = bob.run_with(
        &["--json", "listen", "--count", "2", "--timeout", "30"],
        "",
        &[("KEZ_FAULT", "crash-before-ack")],
    );
    assert_eq!(r.code, 86, "the fault hook ends the process before the ack: {}", r.stderr);
    assert_eq!(texts(&r.inbox_events()), ["before the crash"]);
    // The next run gets the second message at once, then the redelivery of the
    // first one (after the consumer's ack wait of 30 s), which it acknowledges silently.
    let r = bob.ok(&["--json", "listen", "--timeout", "40"]);
    let lines = r.inbox_events();
    assert_eq!(texts(&lines), ["after the crash"], "{}", r.stdout);
    assert_eq!(lines.iter().filter(|l| l["event"] == "redelivered").count(), 1, "{}", r.stdout);
    let r = bob.ok(&["--json", "listen", "--once"]);
    assert!(r.inbox_events().is_empty(), "nothing left after the redelivery was acked: {}", r.stdout);
    let h = bob.ok(&["--json", "history", "alice"]).json();
    let n = h["messages"].as_array().unwrap().iter().filter(|m| m["text"] == "before the crash").count();
    assert_eq!(n, 1, "stored once");

    // Contacts list.
    let c = bob.ok(&["--json", "contacts"]).json();
    assert_eq!(c.as_array().unwrap().len(), 1);
    assert_eq!(c[0]["handle"], "alice@kez.test");
}
