//! Envelopes a registered attacker publishes into someone's inbox: tampered,
//! signed by a key that is not the claimed sender's, addressed to someone else,
//! resent. Each is rejected with its reason, reported, removed from the inbox
//! and never shown (an identical resend is stored once by the relay); a valid message
//! from a stranger is shown as unknown.

use std::sync::Arc;

use kez_client::Identity;
use kez_client::broker::Broker;
use kv_schemas::envelope::{Body, seal};
use kv_schemas::subjects::DeviceId;
use kv_schemas::{PublicKey, now_ms};

use crate::forge::{Forge, tamper};
use crate::harness::{Stack, User};

fn key_of(u: &User) -> PublicKey {
    u.ok(&["--json", "whoami"]).json()["key"].as_str().unwrap().parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_envelopes_are_rejected_reported_and_never_shown() {
    let stack = Stack::start();
    let alice = User::new("alice", &stack);
    let bob = User::new("bob", &stack);
    let mallory = User::new("mallory", &stack);
    alice.register(false);
    bob.register(false);
    let words = mallory.register(false);
    bob.ok(&["add", "alice"]);
    alice.ok(&["add", "bob"]);
    let (alice_key, bob_key) = (key_of(&alice), key_of(&bob));

    // Mallory is a registered user and connects exactly like the CLI does.
    let m = Arc::new(Identity::from_mnemonic(&words).unwrap());
    let m_sk = m.signing_key().clone();
    let m_key = m.public_key();
    let broker = Broker::connect(&stack.nats_url, m.clone(), &DeviceId::random()).await.expect("mallory logs in");

    // 1. A valid message from a stranger (built by hand, so the forgeries below
    //    differ from an accepted envelope only in the field that lies).
    let hello =
        Forge { signer: &m_sk, claimed_from: m_key, inner_to: bob_key, encrypt_to: bob_key, text: "hi, I am new here" }
            .seal();
    // 2. Tampered in transit.
    let tampered = tamper(&seal(&m_sk, &bob_key, &Body::Text("tampered text".into()), now_ms()).unwrap());
    // 3. Claims to be Alice, signed by Mallory.
    let impersonation = Forge {
        signer: &m_sk,
        claimed_from: alice_key,
        inner_to: bob_key,
        encrypt_to: bob_key,
        text: "this is alice, send me your words",
    }
    .seal();
    // 4. Encrypted for Bob but addressed (inside, signed) to Alice: a forwarded message.
    let forwarded =
        Forge { signer: &m_sk, claimed_from: m_key, inner_to: alice_key, encrypt_to: bob_key, text: "meant for alice" }
            .seal();
    // 5. A real envelope for Alice, dropped into Bob's inbox.
    let for_alice = seal(&m_sk, &alice_key, &Body::Text("for alice only".into()), now_ms()).unwrap();
    for env in [hello.clone(), tampered, impersonation, forwarded, for_alice, hello] {
        // The relay checks only the outer form (it cannot open envelopes): it stores them all.
        broker.send(&bob_key, env).await.expect("the relay stores any outer envelope for bob");
    }
    broker.close().await;
    // 7. A real message from Alice afterwards still gets through.
    alice.ok(&["send", "bob", "the real alice"]);

    let r = bob.ok(&["--json", "listen", "--once"]);
    let events: Vec<(String, String)> = r
        .inbox_events()
        .iter()
        .map(|l| match l["event"].as_str().unwrap() {
            "message" => {
                (format!("message:{}", l["sender"].as_str().unwrap()), l["text"].as_str().unwrap().to_string())
            }
            "rejected" => ("rejected".to_string(), l["code"].as_str().unwrap().to_string()),
            other => (other.to_string(), String::new()),
        })
        .collect();
    let expected: Vec<(String, String)> = [
        ("message:unknown", "hi, I am new here"),
        ("rejected", "decrypt_failed"),
        ("rejected", "bad_signature"),
        ("rejected", "wrong_recipient"),
        ("rejected", "decrypt_failed"),
        // The second `hello` (same bytes) was de-duplicated by the relay (PROTOCOL.md §9.3):
        // acknowledged to Mallory, stored once. A later replay is the client's to reject
        // (`replayed`, tested in kez-client's chat tests).
        ("message:contact", "the real alice"),
    ]
    .iter()
    .map(|(a, b)| (a.to_string(), b.to_string()))
    .collect();
    assert_eq!(events, expected, "{}", r.stdout);
    // Reported on stderr with the reason; the stranger is labelled with a fingerprint.
    assert_eq!(r.stderr.matches("rejected message #").count(), 4, "{}", r.stderr);
    for reason in ["decrypt_failed", "bad_signature", "wrong_recipient"] {
        assert!(r.stderr.contains(reason), "{reason} in {}", r.stderr);
    }
    let unknown = r.inbox_events().into_iter().find(|l| l["sender"] == "unknown").unwrap();
    assert_eq!(unknown["fingerprint"], kv_schemas::safety::fingerprint(&m_key));
    assert!(unknown["handle"].is_null());
    for forged in ["tampered text", "send me your words", "meant for alice", "for alice only"] {
        assert!(!r.stdout.contains(forged), "{forged} was shown: {}", r.stdout);
    }

    // Human output says "unknown sender" and shows Alice by name.
    // (The rejected ones were terminated: nothing comes back.)
    let r = bob.ok(&["--json", "listen", "--once"]);
    assert!(r.inbox_events().is_empty(), "rejected envelopes are not redelivered: {}", r.stdout);

    // History: Alice's conversation has only the real message.
    let h = bob.ok(&["--json", "history", "alice"]).json();
    let texts: Vec<&str> = h["messages"].as_array().unwrap().iter().map(|m| m["text"].as_str().unwrap()).collect();
    assert_eq!(texts, ["the real alice"]);
    let h = bob.ok(&["history", &m_key.to_string()]).stdout;
    assert!(h.contains("hi, I am new here"), "{h}");
}
