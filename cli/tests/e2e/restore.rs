//! The 24 words restore the same identity on a fresh data folder, and the
//! restored client receives what was sent meanwhile.

use crate::harness::{Stack, User};

#[test]
fn restore_from_words_on_a_fresh_home_gets_same_identity_and_waiting_messages() {
    let stack = Stack::start();
    let alice = User::new("alice", &stack);
    let bob = User::new("bob", &stack);
    let words = alice.register(false);
    bob.register(false);
    let before = alice.ok(&["--json", "whoami"]).json();

    // The words kept on paper match; other words do not; the shown words are these.
    let r = alice.run_with(&["--json", "mnemonic", "verify", "--mnemonic-stdin"], &format!("{words}\n"), &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.json()["matches"], true);
    let other_words = kez_client::Identity::generate().mnemonic();
    let r = alice.run_with(&["mnemonic", "verify", "--mnemonic-stdin"], &other_words, &[]);
    assert_eq!(r.code, 6, "words of another key: {}", r.stderr);
    let shown = alice.ok(&["--json", "mnemonic", "show"]).json();
    let shown: Vec<&str> = shown["words"].as_array().unwrap().iter().map(|w| w.as_str().unwrap()).collect();
    assert_eq!(shown.join(" "), words);

    // Bob writes while Alice's laptop is gone.
    bob.ok(&["add", "alice"]);
    bob.ok(&["send", "alice", "are you there?"]);
    bob.ok(&["send", "alice", "your laptop was stolen?"]);

    // New machine: the words (with a typo'd case and extra spaces, as typed) on stdin.
    let laptop2 = User::new("alice", &stack);
    let typed = format!("  {}  \n", words.to_uppercase().replace(' ', "   "));
    let r = laptop2.run_with(&["--json", "restore", "--mnemonic-stdin"], &typed, &[]);
    assert_eq!(r.code, 0, "restore failed:\n{}\n{}", r.stdout, r.stderr);
    let restored = r.json();
    assert_eq!(restored["status"], "restored");
    let after = laptop2.ok(&["--json", "whoami"]).json();
    assert_eq!(after["key"], before["key"]);
    assert_eq!(after["handle"], "alice@kez.test");
    assert_eq!(after["fingerprint"], before["fingerprint"]);
    assert_eq!(after["sigchain"]["seqno"], 2, "the registration's endpoints, not published twice");

    laptop2.ok(&["add", "bob"]);
    let r = laptop2.ok(&["--json", "listen", "--count", "2", "--timeout", "30"]);
    let texts: Vec<String> = r
        .inbox_events()
        .iter()
        .filter(|l| l["event"] == "message")
        .map(|l| format!("{}: {}", l["handle"].as_str().unwrap(), l["text"].as_str().unwrap()))
        .collect();
    assert_eq!(texts, ["bob@kez.test: are you there?", "bob@kez.test: your laptop was stolen?"]);

    // A restored account can send too.
    laptop2.ok(&["send", "bob", "new laptop, same me"]);
    let r = bob.ok(&["listen", "--count", "1", "--timeout", "30"]);
    assert!(r.stdout.contains("alice: new laptop, same me"), "{}", r.stdout);

    // Words of a key nobody registered: a clear "not registered", nothing written.
    let stranger = User::new("stranger", &stack);
    let zero = "abandon ".repeat(23) + "art";
    let r = stranger.run_with(&["restore", "--mnemonic-stdin"], &zero, &[]);
    assert_eq!(r.code, 7, "{}", r.stderr);
    assert!(r.stderr.contains("not registered"), "{}", r.stderr);
    assert!(!stranger.home().join("account.json").exists());
    // Words that are not words: the position is named, the word is not echoed.
    let mut bad: Vec<&str> = words.split(' ').collect();
    bad[4] = "notaword";
    let r = stranger.run_with(&["restore", "--mnemonic-stdin"], &bad.join(" "), &[]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("word 5") && !r.stderr.contains("notaword"), "{}", r.stderr);
}
