//! A different key for a known handle is detected, blocks sending, and is
//! accepted only by an explicit `trust … --new-key`.
//!
//! How the key change is produced, honestly: handles cannot be re-registered
//! by another key on one server, so a second, independent stack plays the
//! home server that now answers `bob@kez.test` with another key (another
//! person registered "bob" there). Alice's client is pointed at it with
//! `--server`, exactly the situation of a reset account or a server that lies.
//! Nothing in Alice's local store is edited by the test.

use crate::harness::{Stack, User};

#[test]
fn key_change_blocks_sending_until_retrusted() {
    let home = Stack::start();
    let other = Stack::start();
    let alice = User::new("alice", &home);
    let bob = User::new("bob", &home);
    alice.register(false);
    bob.register(false);
    let pinned = alice.ok(&["--json", "add", "bob"]).json();
    let fp1 = pinned["fingerprint"].as_str().unwrap().to_string();
    let key1 = pinned["key"].as_str().unwrap().to_string();

    let impostor = User::new("bob", &other);
    impostor.register(false);
    let fp2 = impostor.ok(&["--json", "whoami"]).json()["fingerprint"].as_str().unwrap().to_string();
    assert_ne!(fp1, fp2);

    // The lookup now returns another key: loud warning, sending refused (exit 5).
    let r = alice.fails(&["--server", &other.http, "send", "bob", "hi"], 5);
    assert!(r.stderr.contains("KEY CHANGED for bob@kez.test"), "{}", r.stderr);
    assert!(r.stderr.contains(&fp1) && r.stderr.contains(&fp2), "{}", r.stderr);
    assert!(r.stderr.contains("kez-chat trust"), "says how to re-trust: {}", r.stderr);
    // `add` refuses the same way; `contacts` and `show` flag it.
    alice.fails(&["--server", &other.http, "add", "bob"], 5);
    let c = alice.ok(&["--json", "contacts"]).json();
    assert_eq!(c[0]["status"], "key_changed");
    assert_eq!(c[0]["key"], key1.as_str(), "the pinned key is kept");
    assert_eq!(c[0]["pending_fingerprint"], fp2.as_str());
    let r = alice.ok(&["--server", &other.http, "show", "bob"]);
    assert!(r.stderr.contains("KEY CHANGED"), "{}", r.stderr);
    // Still refused offline (the block is stored, not just computed).
    let r = alice.fails(&["--server", "http://127.0.0.1:9", "send", "bob", "hi"], 5);
    assert!(r.stderr.contains("KEY CHANGED"), "{}", r.stderr);

    // Re-trusting needs the new key: the old fingerprint or a typo changes nothing.
    alice.fails(&["--server", &other.http, "trust", "bob", "--new-key", &fp1], 2);
    alice.fails(&["--server", &other.http, "trust", "bob", "--new-key", "12345 12345 12345 12345 12345 12345"], 2);
    let t = alice.ok(&["--json", "--server", &other.http, "trust", "bob", "--new-key", &fp2]).json();
    assert_eq!(t["status"], "trusted");
    assert_eq!(t["fingerprint"], fp2.as_str());
    assert_eq!(t["previous_keys"][0], key1.as_str());

    // Back on the real home server, bob's real key is now the "changed" one.
    alice.fails(&["send", "bob", "hi"], 5);
    alice.ok(&["trust", "bob", "--new-key", &key1]);
    alice.ok(&["send", "bob", "hi again, real bob"]);
    let r = bob.ok(&["listen", "--count", "1", "--timeout", "30"]);
    assert!(r.stdout.contains("hi again, real bob"), "{}", r.stdout);

    // Alice's key is not registered on the other server: its broker refuses her,
    // and the client says why.
    let r = alice.fails(&["--server", &other.http, "listen", "--once"], 7);
    assert!(r.stderr.contains("not registered"), "{}", r.stderr);
}
