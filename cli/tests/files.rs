//! Files over Iroh end to end: the real stack (`kez-server up`), real
//! `kez-chat` processes for alice, bob and carol, Iroh on 127.0.0.1 with
//! relays and address lookup off (KEZ_IROH_RELAY=off; alice's address reaches
//! the others through KEZ_IROH_PEERS).
//!
//! One test (the stack takes a few seconds to start):
//! 1. alice shares 64 MiB with bob (encrypt, manifest + set_shared_files, file_share offer);
//! 2. bob receives the offer (`listen --once`), lists it (`files`), fetches it
//!    from alice's `serve` (byte-identical);
//! 3. bob browses alice's manifest and fetches the entry from there too;
//! 4. carol browses alice and sees nothing of bob's; alice's provider refuses
//!    carol the blob even with its hash;
//! 5. alice stops: bob's fetch fails with the offline message; `fetch --wait`
//!    started while she is away completes once she serves again.
//!
//! Per-device endpoints (PROTOCOL.md §7.5) along the way: `listen` and `fetch`
//! of one home run at the same time with distinct endpoint ids; a second home
//! restored from bob's words is admitted by alice's provider; a stranger's
//! endpoint is refused; an offer naming an endpoint that is not on alice's
//! chain is refused before anything is dialled. KEZ_IROH_PEERS names alice's
//! identity key, which covers every endpoint of hers.
#![allow(clippy::unwrap_used)]

use std::io::{BufRead as _, BufReader, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use ed25519_dalek::SigningKey;
use kv_schemas::sigchain::{IrohRole, endpoint_key};
use kv_schemas::subjects::DeviceId;
use kv_schemas::{Handle, PublicKey, now_ms, register};
use serde_json::Value;

const PW: &str = "correct horse battery";
const SIZE: usize = 64 * 1024 * 1024;

fn target_dir() -> PathBuf {
    // target/<profile>/deps/files-<hash> → target/<profile>
    let exe = std::env::current_exe().expect("test exe");
    exe.parent().and_then(Path::parent).expect("target profile dir").to_path_buf()
}

/// The kez-server binary of this build profile (built on demand).
fn kez_server_bin() -> PathBuf {
    if kez_testkit::kez_server_bin(&target_dir()).is_err() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut cmd = Command::new(cargo);
        cmd.args(["build", "-p", "kez-server", "--bin", "kez-server"]);
        if target_dir().file_name().is_some_and(|n| n == "release") {
            cmd.arg("--release");
        }
        let st = cmd.status().expect("cargo build kez-server");
        assert!(st.success(), "building kez-server failed");
    }
    kez_testkit::kez_server_bin(&target_dir()).unwrap()
}

type Stack = kez_testkit::StackProcess;

fn start_stack(data: &Path) -> Stack {
    Stack::start(&kez_testkit::StackOptions::new(kez_server_bin(), data).rust_log("warn")).unwrap()
}

struct User {
    name: &'static str,
    sk: SigningKey,
    home: PathBuf,
    server: String,
    /// KEZ_IROH_PEERS for this user's processes.
    peers: String,
    bind: String,
}

impl User {
    fn pk(&self) -> PublicKey {
        PublicKey::of(&self.sk)
    }

    /// The device id of this home (device.json, written on first use).
    fn device(&self) -> DeviceId {
        let v: Value = serde_json::from_slice(&std::fs::read(self.home.join("device.json")).unwrap()).unwrap();
        v["id"].as_str().unwrap().parse().unwrap()
    }

    /// This home's endpoint id for `role` (PROTOCOL.md §7.5).
    fn endpoint(&self, role: IrohRole) -> PublicKey {
        endpoint_key(&self.sk.to_bytes(), &self.device(), role)
    }

    /// Starts `listen` and waits until its file provider is serving; returns the
    /// process and the node id it printed.
    fn listen(&self) -> (Child, String) {
        let mut child = self
            .cmd(&["--passphrase-env", "KEZ_PW", "listen"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn listen");
        let stderr = child.stderr.take().unwrap();
        let mut lines = BufReader::new(stderr).lines();
        let deadline = Instant::now() + Duration::from_secs(60);
        let node = loop {
            let line = lines.next().expect("listen exited early").unwrap();
            eprintln!("[{} listen] {line}", self.name);
            if line.starts_with("serving ") {
                let node = line.split(" node ").nth(1).and_then(|r| r.split_whitespace().next()).expect("node id");
                break node.to_string();
            }
            assert!(!line.contains("not serving files"), "listen could not serve: {line}");
            assert!(Instant::now() < deadline, "listen did not start serving");
        };
        let name = self.name;
        std::thread::spawn(move || {
            for l in lines.map_while(Result::ok) {
                eprintln!("[{name} listen] {l}");
            }
        });
        (child, node)
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_kez-chat"));
        c.args(args)
            .env("KEZ_HOME", &self.home)
            .env("KEZ_SERVER", &self.server)
            .env("KEZ_PW", PW)
            .env("KEZ_IROH_RELAY", "off")
            .env("KEZ_IROH_BIND", &self.bind)
            .env("KEZ_IROH_PEERS", &self.peers)
            .env("KEZ_IROH_CONNECT_TIMEOUT_MS", "2000")
            .env_remove("XDG_DATA_HOME");
        c
    }

    fn run(&self, args: &[&str]) -> Output {
        let mut full = vec!["--passphrase-env", "KEZ_PW"];
        full.extend_from_slice(args);
        let out = self.cmd(&full).stdin(Stdio::null()).output().expect("run kez-chat");
        eprintln!(
            "[{}] kez-chat {} → {}\n  stdout: {}\n  stderr: {}",
            self.name,
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stdout).trim(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
        out
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(out.status.success(), "[{}] kez-chat {} failed", self.name, args.join(" "));
        String::from_utf8(out.stdout).unwrap()
    }

    fn json(&self, args: &[&str]) -> Value {
        let mut full = vec!["--json"];
        full.extend_from_slice(args);
        serde_json::from_str(&self.ok(&full)).expect("json output")
    }

    /// Starts `serve` and waits until it says it is serving.
    fn serve(&self) -> Child {
        let mut child = self
            .cmd(&["--passphrase-env", "KEZ_PW", "serve"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn serve");
        let stderr = child.stderr.take().unwrap();
        let mut lines = BufReader::new(stderr).lines();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let line = lines.next().expect("serve exited early").unwrap();
            eprintln!("[{} serve] {line}", self.name);
            if line.starts_with("serving ") {
                break;
            }
            assert!(Instant::now() < deadline, "serve did not start");
        }
        let name = self.name;
        std::thread::spawn(move || {
            for l in lines.map_while(Result::ok) {
                eprintln!("[{name} serve] {l}");
            }
        });
        child
    }
}

fn stop(mut child: Child) {
    use nix::sys::signal::{Signal, kill};
    use nix::unistd::Pid;
    let _ = kill(Pid::from_raw(child.id() as i32), Signal::SIGINT);
    let deadline = Instant::now() + Duration::from_secs(15);
    while Instant::now() < deadline {
        if child.try_wait().unwrap().is_some() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
}

fn http_post(base: &str, path: &str, body: &[u8]) -> (u16, String) {
    use std::io::Read as _;
    let host = base.trim_start_matches("http://");
    let mut s = std::net::TcpStream::connect(host).unwrap();
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).unwrap();
    s.write_all(body).unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).unwrap();
    let text = String::from_utf8_lossy(&out).into_owned();
    (text[9..12].parse().unwrap(), text)
}

/// Registers `name` with a fixed seed over /v1, then `restore`s it into a fresh home.
fn make_user(stack: &Stack, root: &Path, name: &'static str, seed: u8, bind: &str) -> User {
    let sk = SigningKey::from_bytes(&[seed; 32]);
    let reg = register::build(&sk, &Handle::new(name, "kez.test").unwrap(), now_ms(), [seed; 16]).unwrap();
    let (status, body) = http_post(stack.http(), "/v1/register", &reg);
    assert!(status == 201 || status == 200, "{body}");
    restore_home(stack, root.join(name), name, seed, bind)
}

/// `restore`s the account of `seed` into the home `home` (another device of the user).
fn restore_home(stack: &Stack, home: PathBuf, name: &'static str, seed: u8, bind: &str) -> User {
    let sk = SigningKey::from_bytes(&[seed; 32]);
    let user = User { name, sk, home, server: stack.http().to_string(), peers: String::new(), bind: bind.into() };
    let words = kez_client::identity::seed_to_mnemonic(&[seed; 32]);
    let mut child = user
        .cmd(&["--passphrase-env", "KEZ_PW", "restore", "--mnemonic-stdin"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(format!("{}\n", &*words).as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "restore {name}: {}", String::from_utf8_lossy(&out.stderr));
    user
}

/// `GET /v1/sigchains/ed25519/<hex>`: the live iroh endpoints as (node id, device, role).
fn iroh_endpoints(base: &str, key: &PublicKey) -> Vec<(String, Option<String>, Option<String>)> {
    use std::io::Read as _;
    let host = base.trim_start_matches("http://");
    let mut s = std::net::TcpStream::connect(host).unwrap();
    let head = format!("GET /v1/sigchains/ed25519/{} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n", key.hex());
    s.write_all(head.as_bytes()).unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).unwrap();
    let text = String::from_utf8_lossy(&out).into_owned();
    let body = &text[text.find("\r\n\r\n").unwrap() + 4..];
    let v: Value = serde_json::from_str(body).unwrap();
    let (state, _) = kv_schemas::sigchain::verify_chain(key, v["links"].as_array().unwrap()).unwrap();
    state
        .iroh_endpoints()
        .map(|e| (e.node_id.to_string(), e.device.map(|d| d.device.to_string()), e.device.map(|d| d.role.to_string())))
        .collect()
}

fn random_file(path: &Path, len: usize) {
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let mut x: u64 = 0x2545_F491_4F6C_DD1D;
    let mut buf = vec![0u8; 1 << 20];
    let mut left = len;
    while left > 0 {
        for b in buf.iter_mut() {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            *b = (x >> 24) as u8;
        }
        let n = left.min(buf.len());
        f.write_all(&buf[..n]).unwrap();
        left -= n;
    }
}

fn hash_file(p: &Path) -> String {
    let mut h = blake3::Hasher::new();
    h.update_reader(std::fs::File::open(p).unwrap()).unwrap();
    h.finalize().to_hex().to_string()
}

fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

#[test]
fn share_fetch_browse_acl_offline_between_real_processes() {
    let tmp = tempfile::tempdir().unwrap();
    let stack = start_stack(&tmp.path().join("server"));
    let a_port = free_udp_port();
    let mut alice = make_user(&stack, tmp.path(), "alice", 61, &format!("127.0.0.1:{a_port}"));
    let mut bob = make_user(&stack, tmp.path(), "bob", 62, "127.0.0.1:0");
    let mut carol = make_user(&stack, tmp.path(), "carol", 63, "127.0.0.1:0");
    // A hint by identity key: it covers alice's per-device endpoint ids too.
    let hint = format!("{}@127.0.0.1:{a_port}", alice.pk().hex());
    bob.peers = hint.clone();
    carol.peers = hint.clone();
    alice.peers = String::new();

    // 1. alice shares 64 MiB with bob.
    let src = tmp.path().join("holiday.mov");
    random_file(&src, SIZE);
    let src_hash = hash_file(&src);
    let shared = alice.json(&["share", "bob", src.to_str().unwrap()]);
    assert_eq!(shared["status"], "shared");
    let entry_id = shared["id"].as_str().unwrap().to_string();
    assert_eq!(shared["manifest"]["seq"], 1, "{shared}");

    // 2. bob receives the offer, lists it, fetches it from alice's serve.
    bob.ok(&["listen", "--once"]);
    let files = bob.json(&["files"]);
    let offers = files["offers"].as_array().unwrap();
    assert_eq!(offers.len(), 1, "{files}");
    assert_eq!(offers[0]["id"], entry_id.as_str());
    assert_eq!(offers[0]["name"], "holiday.mov");
    assert_eq!(offers[0]["size"], SIZE as u64);

    let serve = alice.serve();
    let dl = tmp.path().join("bob-dl");
    let got = bob.json(&["fetch", &entry_id[..8], "--out", dl.to_str().unwrap()]);
    assert_eq!(got["status"], "fetched");
    assert_eq!(hash_file(&dl.join("holiday.mov")), src_hash, "byte-identical");
    assert_eq!(std::fs::read_dir(&dl).unwrap().count(), 1, "no temp files left");
    // The offer named alice's serve endpoint, which is on her chain with bob's two endpoints on his.
    let a_serve = alice.endpoint(IrohRole::Serve);
    assert_ne!(a_serve, alice.pk(), "the endpoint id is not the identity key");
    let a_eps = iroh_endpoints(stack.http(), &alice.pk());
    assert!(a_eps.contains(&(a_serve.hex(), Some(alice.device().to_string()), Some("serve".into()))), "{a_eps:?}");

    // 2b. bob's `listen` (which serves bob's files) and `fetch` of the same home at the same time.
    let (listen, listen_node) = bob.listen();
    assert_eq!(listen_node, bob.endpoint(IrohRole::Serve).hex(), "listen serves with the device's serve key");
    let dl_both = tmp.path().join("bob-dl-while-listening");
    let got = bob.json(&["fetch", &entry_id[..8], "--out", dl_both.to_str().unwrap()]);
    assert_eq!(got["status"], "fetched");
    assert_eq!(hash_file(&dl_both.join("holiday.mov")), src_hash);
    stop(listen);
    let (b_serve, b_fetch) = (bob.endpoint(IrohRole::Serve).hex(), bob.endpoint(IrohRole::Fetch).hex());
    assert_ne!(b_serve, b_fetch, "distinct endpoint ids");
    let b_eps = iroh_endpoints(stack.http(), &bob.pk());
    let dev = Some(bob.device().to_string());
    assert!(b_eps.contains(&(b_serve, dev.clone(), Some("serve".into()))), "{b_eps:?}");
    assert!(b_eps.contains(&(b_fetch, dev, Some("fetch".into()))), "{b_eps:?}");

    // 2c. an offer whose node id is not a serving endpoint on alice's chain (here
    // carol's key) is refused before dialling, although alice is online.
    forge_offer(&bob, &alice.pk(), &carol.pk());
    let out = bob.run(&["fetch", FORGED_ENTRY, "--out", tmp.path().join("bob-forged").to_str().unwrap()]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("refusing to dial") && err.contains(&carol.pk().hex()), "{err}");

    // 3. browse + fetch from the manifest.
    let listing = bob.json(&["browse", "alice"]);
    let entries = listing["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 1, "{listing}");
    assert_eq!(entries[0]["id"], entry_id.as_str());
    let dl2 = tmp.path().join("bob-dl2");
    let got = bob.json(&["fetch", "alice", &entry_id, "--out", dl2.to_str().unwrap()]);
    assert_eq!(got["status"], "fetched");
    assert_eq!(hash_file(&dl2.join("holiday.mov")), src_hash);

    // 3b. a second device of bob (his words restored into another home) fetches
    // from the manifest: it publishes its endpoints and alice's provider admits it.
    let mut bob2 = restore_home(&stack, tmp.path().join("bob2"), "bob2", 62, "127.0.0.1:0");
    bob2.peers = hint.clone();
    let dl_b2 = tmp.path().join("bob2-dl");
    let got = bob2.json(&["fetch", "alice", &entry_id, "--out", dl_b2.to_str().unwrap()]);
    assert_eq!(got["status"], "fetched");
    assert_eq!(hash_file(&dl_b2.join("holiday.mov")), src_hash);
    assert_ne!(bob2.device(), bob.device());
    assert_ne!(bob2.endpoint(IrohRole::Fetch), bob.endpoint(IrohRole::Fetch));

    // 4. carol sees none of bob's entries and is refused the blob by alice's provider.
    let listing = carol.json(&["browse", "alice"]);
    assert_eq!(listing["entries"].as_array().unwrap().len(), 0, "{listing}");
    assert_eq!(listing["hidden"], 1);
    let out = carol.run(&["fetch", "alice", &entry_id, "--out", tmp.path().join("carol-dl").to_str().unwrap()]);
    assert!(!out.status.success());
    let blob = shared["blob"].as_str().unwrap().to_string();
    let rt = tokio::runtime::Runtime::new().unwrap();
    // Dialling alice's serve endpoint with carol's key, with a stranger's (on no
    // chain), and — as a control that the path works — with bob's fetch key.
    let refused = rt.block_on(raw_get(&carol.sk.to_bytes(), &a_serve, a_port, &blob, &tmp.path().join("raw-carol")));
    assert!(refused.is_err(), "alice's provider must refuse carol");
    let refused = rt.block_on(raw_get(&[0x5a; 32], &a_serve, a_port, &blob, &tmp.path().join("raw-stranger")));
    assert!(refused.is_err(), "alice's provider must refuse a stranger");
    let bob_fetch = kv_schemas::sigchain::endpoint_seed(&bob.sk.to_bytes(), &bob.device(), IrohRole::Fetch);
    rt.block_on(raw_get(&bob_fetch, &a_serve, a_port, &blob, &tmp.path().join("raw-bob"))).unwrap();

    // 5. alice goes offline: a clear message; --wait completes when she is back.
    stop(serve);
    let dl3 = tmp.path().join("bob-dl3");
    let out = bob.run(&["fetch", &entry_id, "--out", dl3.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("alice is offline"), "{err}");
    assert!(err.contains("will download when alice is back online"), "{err}");
    assert!(!dl3.join("holiday.mov").exists());

    let waiter = bob
        .cmd(&["--passphrase-env", "KEZ_PW", "--json", "fetch", &entry_id, "--wait", "--out", dl3.to_str().unwrap()])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(4));
    let serve = alice.serve();
    let out = waiter.wait_with_output().unwrap();
    eprintln!("[bob] fetch --wait stderr: {}", String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "fetch --wait: {}", String::from_utf8_lossy(&out.stdout));
    assert!(String::from_utf8_lossy(&out.stdout).contains("\"offline\""), "it reported waiting");
    assert_eq!(hash_file(&dl3.join("holiday.mov")), src_hash);

    // unshare: a new manifest without the entry, and the provider stops serving it.
    alice.ok(&["unshare", &entry_id]);
    let listing = bob.json(&["browse", "alice"]);
    assert_eq!(listing["entries"].as_array().unwrap().len(), 0, "{listing}");
    let out = bob.run(&["fetch", &entry_id, "--out", tmp.path().join("bob-dl4").to_str().unwrap()]);
    assert!(!out.status.success(), "unshared files are refused");
    assert!(String::from_utf8_lossy(&out.stderr).contains("refused"));
    stop(serve);
}

/// A plain iroh-blobs get of `blob` from endpoint `to` on 127.0.0.1:`port`, dialling with the key `secret`.
async fn raw_get(secret: &[u8; 32], to: &PublicKey, port: u16, blob: &str, store_dir: &Path) -> Result<(), String> {
    use kez_client::files::config::NodeConfig;
    let cfg = NodeConfig::loopback();
    let ep = kez_client::files::node::bind_endpoint(secret, &cfg, cfg.bind, vec![]).await.unwrap();
    let id = iroh::EndpointId::from_bytes(to.as_bytes()).unwrap();
    let addr = iroh::EndpointAddr::new(id).with_ip_addr(format!("127.0.0.1:{port}").parse().unwrap());
    let conn = tokio::time::timeout(Duration::from_secs(5), ep.connect(addr, kez_client::files::FILES_ALPN))
        .await
        .map_err(|_| "timeout".to_string())?
        .map_err(|e| e.to_string())?;
    let store = iroh_blobs::store::fs::FsStore::load(store_dir).await.unwrap();
    let r = store
        .remote()
        .fetch(conn, blob.parse::<iroh_blobs::Hash>().unwrap())
        .await
        .map(|_| ())
        .map_err(|e| format!("{e:#}"));
    store.shutdown().await.ok();
    ep.close().await;
    r
}

/// Entry id of the forged offer (b64url of 16 × 0xfe).
const FORGED_ENTRY: &str = "_v7-_v7-_v7-_v7-_v7-_g";

/// Puts into bob's message store a copy of alice's offer whose `node_id` is
/// `node` (as a forged or outdated offer would arrive), under a new entry id.
fn forge_offer(bob: &User, alice: &PublicKey, node: &PublicKey) {
    let store = kez_client::store::Store::open(&kez_client::config::Paths::at(&bob.home).db_dir()).unwrap();
    let real = store.history(alice, usize::MAX).unwrap().into_iter().find(|m| m.kind == "file_share").unwrap();
    let mut forged = real.clone();
    forged.id = kv_schemas::encoding::b64_encode(&[0xfd; 16]);
    forged.ts += 1;
    forged.body["node_id"] = node.hex().into();
    forged.body["entry"]["id"] = kv_schemas::encoding::b64_encode(&[0xfe; 16]).into();
    assert_eq!(forged.body["entry"]["id"], FORGED_ENTRY);
    store.insert_message(&forged).unwrap();
}
