//! Nothing secret reaches a log: a realistic session (two users register with the CLI, chat
//! both ways, share and fetch a file over Iroh) runs with the server and every CLI process at
//! `RUST_LOG=debug`; the server's log (nats-server's output included) and every CLI
//! process's stdout and stderr are then searched for the session's seeds (hex and base64url),
//! runs of two consecutive mnemonic words, the passphrase and NATS seeds (`S…`, any kind).

use std::io::Write as _;
use std::process::Stdio;

use kez_client::Identity;
use kv_schemas::encoding::b64_encode;

use crate::harness::{PASSPHRASE, Run, Stack, User};

const DEBUG: (&str, &str) = ("RUST_LOG", "debug");

/// Registers like a script does (`--words-file`), keeping the CLI's output; returns the words.
fn register(u: &User, out: &mut Vec<String>) -> String {
    let file = u.home().join("words.txt");
    let r = u.run_with(
        &["--json", "register", &u.name, "--words-file", file.to_str().unwrap(), "--skip-recall-check"],
        "",
        &[DEBUG],
    );
    keep(&r, out);
    assert_eq!(r.code, 0, "register {}: {}", u.name, r.stderr);
    let words = std::fs::read_to_string(&file).unwrap().trim().to_string();
    std::fs::remove_file(&file).unwrap();
    words
}

fn keep(r: &Run, out: &mut Vec<String>) {
    out.push(r.stdout.clone());
    out.push(r.stderr.clone());
}

fn ok(u: &User, args: &[&str], env: &[(&str, &str)], out: &mut Vec<String>) -> Run {
    let mut e = vec![DEBUG];
    e.extend_from_slice(env);
    let r = u.run_with(args, "", &e);
    keep(&r, out);
    assert_eq!(r.code, 0, "{} {args:?}: {}\n{}", u.name, r.stdout, r.stderr);
    r
}

/// Tokens shaped like an nkey seed: `S` + a type letter + 56 base32 characters.
fn nkey_seeds(text: &str) -> Vec<&str> {
    text.split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|t| {
            t.len() == 58
                && t.starts_with('S')
                && t.bytes().all(|b| b.is_ascii_uppercase() || (b'2'..=b'7').contains(&b))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_debug_logged_session_leaks_no_secret() {
    let tmp = tempfile::tempdir().unwrap();
    let stack = Stack::start_logging("debug");
    let alice = User::new("alice", &stack);
    let bob = User::new("bob", &stack);
    let mut out = Vec::new();

    let a_words = register(&alice, &mut out);
    let b_words = register(&bob, &mut out);
    ok(&alice, &["add", "bob"], &[], &mut out);
    ok(&bob, &["add", "alice"], &[], &mut out);
    ok(&alice, &["send", "bob", "hello bob"], &[], &mut out);
    let r = ok(&bob, &["listen", "--count", "1", "--timeout", "30"], &[], &mut out);
    assert!(r.stdout.contains("hello bob"), "{}", r.stdout);
    ok(&bob, &["send", "alice", "hello alice"], &[], &mut out);
    let r = ok(&alice, &["listen", "--count", "1", "--timeout", "30"], &[], &mut out);
    assert!(r.stdout.contains("hello alice"), "{}", r.stdout);

    // Files over Iroh on loopback (relays off; bob finds alice through KEZ_IROH_PEERS).
    let a_id = Identity::from_mnemonic(&a_words).unwrap();
    let b_id = Identity::from_mnemonic(&b_words).unwrap();
    let port = std::net::UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let a_bind = format!("127.0.0.1:{port}");
    let peers = format!("{}@{a_bind}", a_id.public_key().hex());
    let a_iroh: [(&str, &str); 3] =
        [("KEZ_IROH_RELAY", "off"), ("KEZ_IROH_BIND", &a_bind), ("KEZ_IROH_CONNECT_TIMEOUT_MS", "5000")];
    let b_iroh: [(&str, &str); 4] = [
        ("KEZ_IROH_RELAY", "off"),
        ("KEZ_IROH_BIND", "127.0.0.1:0"),
        ("KEZ_IROH_PEERS", &peers),
        ("KEZ_IROH_CONNECT_TIMEOUT_MS", "5000"),
    ];
    let file = tmp.path().join("notes.txt");
    std::fs::File::create(&file).unwrap().write_all(&[b'k'; 100_000]).unwrap();
    let shared = ok(&alice, &["--json", "share", "bob", file.to_str().unwrap()], &a_iroh, &mut out);
    let id = shared.json()["id"].as_str().unwrap().to_string();
    ok(&bob, &["listen", "--count", "1", "--timeout", "30"], &b_iroh, &mut out);
    let serve_log = tmp.path().join("serve.log");
    let mut serve = alice.command();
    serve.arg("serve").env(DEBUG.0, DEBUG.1).stdin(Stdio::null());
    for (k, v) in a_iroh {
        serve.env(k, v);
    }
    let log = std::fs::File::create(&serve_log).unwrap();
    let mut serve = serve.stdout(log.try_clone().unwrap()).stderr(log).spawn().unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !std::fs::read_to_string(&serve_log).unwrap_or_default().contains("serving ") {
        assert!(std::time::Instant::now() < deadline, "serve did not start");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let dl = tmp.path().join("dl");
    ok(&bob, &["--json", "fetch", &id[..8], "--out", dl.to_str().unwrap()], &b_iroh, &mut out);
    assert_eq!(std::fs::read(dl.join("notes.txt")).unwrap().len(), 100_000);
    let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(serve.id() as i32), nix::sys::signal::Signal::SIGINT);
    let _ = serve.wait();
    let server = stack.stop_with_log();
    assert!(server.contains("DEBUG"), "the server did not log at debug level:\n{server}");
    out.push(server);
    out.push(std::fs::read_to_string(&serve_log).unwrap());
    let mut secrets: Vec<(String, String)> = vec![("passphrase".into(), PASSPHRASE.into())];
    for (who, words, id) in [("alice", &a_words, &a_id), ("bob", &b_words, &b_id)] {
        let seed = id.seed();
        secrets.push((format!("{who}'s seed (hex)"), kv_schemas::encoding::hex_encode(&*seed)));
        secrets.push((format!("{who}'s seed (base64url)"), b64_encode(&*seed)));
        secrets.push((format!("{who}'s nkey seed"), id.nkey_seed().unwrap().to_string()));
        let w: Vec<&str> = words.split(' ').collect();
        assert_eq!(w.len(), 24);
        for pair in w.windows(2) {
            secrets.push((format!("{who}'s mnemonic words {pair:?}"), pair.join(" ")));
        }
    }
    for (i, text) in out.iter().enumerate() {
        for (what, secret) in &secrets {
            assert!(!text.contains(secret.as_str()), "log #{i} contains {what}:\n{text}");
        }
        assert!(nkey_seeds(text).is_empty(), "log #{i} contains an nkey seed: {:?}", nkey_seeds(text));
    }
}
