//! Errors a person understands, each with its exit code, and nothing half made.

use crate::harness::{Stack, User};

#[test]
fn errors_people_understand() {
    // Server unreachable: a closed port.
    let port = kez_testkit::free_port().unwrap();
    let mut lost = User::new_with_server("carol", &format!("http://127.0.0.1:{port}"));
    let r = lost.fails(&["register", "carol", "--yes-i-wrote-it-down"], 3);
    assert!(r.stderr.contains("cannot reach the kez server"), "{}", r.stderr);
    assert!(!lost.home().join("account.json").exists());

    let stack = Stack::start();
    lost.server = stack.http.clone();
    // No account yet.
    let r = lost.fails(&["send", "bob", "hi"], 2);
    assert!(r.stderr.contains("no kez-chat account"), "{}", r.stderr);

    let alice = User::new("alice", &stack);
    alice.register(false);

    // Taken and reserved handles fail before any words are shown or anything is written.
    let second = User::new("alice", &stack);
    let r = second.fails(&["register", "alice", "--yes-i-wrote-it-down"], 10);
    assert!(r.stderr.contains("already taken"), "{}", r.stderr);
    assert!(!r.stderr.contains("recovery words"), "{}", r.stderr);
    let r = second.fails(&["register", "admin", "--yes-i-wrote-it-down"], 10);
    assert!(r.stderr.contains("reserved"), "{}", r.stderr);
    second.fails(&["register", "not a handle", "--yes-i-wrote-it-down"], 2);
    second.fails(&["register", "alice@other.example", "--yes-i-wrote-it-down"], 2);
    assert!(!second.home().join("account.json").exists() && !second.home().join("identity.json").exists());

    // Without a terminal the backup dialogue cannot run: a clear refusal, not a hang.
    let r = second.fails(&["register", "carol"], 2);
    assert!(r.stderr.contains("--words-file PATH --skip-recall-check"), "{}", r.stderr);
    assert!(!r.stderr.contains(" 1. "), "no words were shown: {}", r.stderr);
    // --words-file alone still wants the recall check, which needs a terminal.
    let words = second.home().join("words.txt");
    let words_arg = words.to_str().unwrap();
    second.fails(&["register", "carol", "--words-file", words_arg], 2);
    // An existing file is never overwritten.
    std::fs::write(&words, "keep me").unwrap();
    second.fails(&["register", "carol", "--words-file", words_arg, "--skip-recall-check"], 2);
    assert_eq!(std::fs::read_to_string(&words).unwrap(), "keep me");
    std::fs::remove_file(&words).unwrap();
    assert!(!second.home().join("account.json").exists());
    let r = alice.fails(&["add", "carol"], 4);
    assert!(r.stderr.contains("was not found"), "nothing registered: {}", r.stderr);
    // The words file of a scripted registration is private.
    {
        use std::os::unix::fs::PermissionsExt as _;
        let scripted = User::new("dave", &stack);
        let file = scripted.home().join("w.txt");
        scripted.ok(&["register", "dave", "--words-file", file.to_str().unwrap(), "--skip-recall-check"]);
        assert_eq!(std::fs::metadata(&file).unwrap().permissions().mode() & 0o777, 0o600);
        let words = std::fs::read_to_string(&file).unwrap();
        assert_eq!(words.split_whitespace().count(), 24);
        let r = scripted.run_with(&["mnemonic", "verify", "--mnemonic-stdin"], &words, &[]);
        assert_eq!(r.code, 0, "{}", r.stderr);
    }

    // A wrong word in the backup check (at a terminal): nothing is registered.
    let (r, _) = second.register_dialogue("carol", true, false);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("do not match"), "{}", r.stderr);
    assert!(!second.home().join("account.json").exists());
    let r = alice.fails(&["add", "carol"], 4);
    assert!(r.stderr.contains("carol@kez.test was not found"), "carol was not registered: {}", r.stderr);

    // Unknown handle, self, wrong passphrase, an empty message.
    alice.fails(&["add", "@nobody"], 4);
    alice.fails(&["send", "alice", "me"], 2);
    let r = alice.run_with(&["mnemonic", "show"], "", &[("KEZ_TEST_PASSPHRASE", "not the passphrase")]);
    assert_eq!(r.code, 8, "{}", r.stderr);
    assert!(r.stderr.contains("wrong passphrase"), "{}", r.stderr);
    let r = alice.run_with(&["send", "bob", "-"], "", &[]);
    assert_eq!(r.code, 2, "{}", r.stderr);

    // --json errors are machine-readable too.
    let r = alice.fails(&["--json", "add", "@nobody"], 4);
    assert_eq!(r.json()["error"]["kind"], "handle_not_found");
}
