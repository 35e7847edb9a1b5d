//! The broker's stored bytes reveal neither the text nor the sender: an
//! operator with full access to the stream reads every stored message (the
//! subjects carry the recipient and a keyed sender tag, never the sender's key).

use kez_client::Identity;
use kv_schemas::PublicKey;

use crate::harness::{Stack, User};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_stores_neither_plaintext_nor_sender_key() {
    let stack = Stack::start();
    let alice = User::new("alice", &stack);
    let bob = User::new("bob", &stack);
    let words = alice.register(false);
    bob.register(false);
    alice.ok(&["add", "bob"]);
    let secret = "the vault code is 4242, purple elephants";
    alice.ok(&["send", "bob", secret]);
    alice.ok(&["send", "bob", "second message"]);

    let alice_id = Identity::from_mnemonic(&words).unwrap();
    let alice_key: PublicKey = alice_id.public_key();
    let bob_key: PublicKey = bob.ok(&["--json", "whoami"]).json()["key"].as_str().unwrap().parse().unwrap();
    let needles: Vec<(String, Vec<u8>)> = vec![
        ("text".into(), secret.as_bytes().to_vec()),
        ("text fragment".into(), b"purple elephants".to_vec()),
        ("sender key hex".into(), alice_key.hex().into_bytes()),
        ("sender key bytes".into(), alice_key.as_bytes().to_vec()),
        ("sender nkey".into(), alice_id.nkey_public().unwrap().into_bytes()),
        ("sender handle".into(), b"alice".to_vec()),
    ];

    let ops = stack.ops_client().await;
    // The stream lives in the INBOX account; the operator reaches its API through the import.
    let js = async_nats::jetstream::with_prefix(ops, "$JS.INBOX.API");
    let mut stream = js.get_stream("KEZ_INBOX").await.expect("ops reads the inbox stream");
    let info = stream.info().await.unwrap().clone();
    // Bob's two messages, and Alice's sealed copies of them in her own inbox (§6.1).
    assert_eq!(info.state.messages, 4, "both messages and their sent copies are stored");
    let mut for_bob = 0;
    for seq in info.state.first_sequence..=info.state.last_sequence {
        let m = stream.get_raw_message(seq).await.unwrap();
        let subject = m.subject.as_str();
        let tag = match subject.strip_prefix(&format!("kez.inbox.{}.", bob_key.hex())) {
            Some(tag) => {
                for_bob += 1;
                tag
            }
            None => subject.strip_prefix(&format!("kez.inbox.{}.", alice_key.hex())).expect("stored for bob or alice"),
        };
        assert_eq!(tag.len(), 32, "a sender tag, not a key: {subject}");
        let mut bytes = m.payload.to_vec();
        for (name, values) in m.headers.iter() {
            bytes.extend_from_slice(name.to_string().as_bytes());
            for v in values {
                bytes.extend_from_slice(v.as_str().as_bytes());
            }
        }
        let v: serde_json::Value = serde_json::from_slice(&m.payload).unwrap();
        let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(keys, ["ct", "enc", "v"], "only the outer envelope is stored");
        for (name, needle) in &needles {
            assert!(
                !bytes.windows(needle.len()).any(|w| w == needle.as_slice()),
                "the stored message #{seq} contains the {name}"
            );
        }
    }
    assert_eq!(for_bob, 2);

    // And it is a real message: Bob reads it.
    let r = bob.ok(&["listen", "--count", "2", "--timeout", "30"]);
    assert!(r.stdout.contains(secret), "{}", r.stdout);
}
