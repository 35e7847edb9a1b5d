//! `kez-server up` as a user and an operator run it: the real binary brings the
//! stack up, serves /v1, stops cleanly on SIGTERM, keeps every registration and
//! sigchain across a restart, owns its nats-server (dies with it, stops a
//! left-over one, restarts a crashed one, refuses a port it does not own), and
//! renders a config nats-server accepts. Also checks deploy/: the backup script
//! round trip, and the compose and Caddy files where their tools exist.

// A failed unwrap is a failed test, with the location in the message.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ed25519_dalek::SigningKey;
use kez_testkit::{StackOptions, StackProcess};
use kv_schemas::sigchain::{Endpoint, Op, build_link};
use kv_schemas::{Handle, PublicKey, now_ms, register};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

/// Generous bound for anything that should take seconds (a loaded 2-core CI box).
const PATIENCE: Duration = Duration::from_secs(90);

fn repo() -> PathBuf {
    kez_testkit::repo_root()
}

/// Four distinct free loopback ports: http, nats, websocket, monitoring.
fn free_ports() -> [u16; 4] {
    kez_testkit::free_ports::<4>().unwrap()
}

fn options(data: &Path, ports: &[u16; 4]) -> StackOptions {
    StackOptions::new(env!("CARGO_BIN_EXE_kez-server"), data).ports(*ports)
}

/// `up` on these ports, for runs that are not meant to come up (`--init-only`).
fn up_command(data: &Path, ports: &[u16; 4]) -> Command {
    options(data, ports).command().unwrap()
}

fn start(data: &Path, ports: &[u16; 4]) -> StackProcess {
    StackProcess::start(&options(data, ports)).unwrap()
}

fn start_with(data: &Path, ports: &[u16; 4], extra: &[&str]) -> StackProcess {
    StackProcess::start(&extra.iter().fold(options(data, ports), |o, a| o.arg(a))).unwrap()
}

/// Stops like an operator (SIGTERM): a clean exit that removes the pid file.
fn stop(stack: StackProcess) {
    let data = stack.data_dir().to_owned();
    let status = stack.stop().unwrap();
    assert!(status.success(), "kez-server exited with {status}");
    assert!(!data.join("nats-server.pid").exists(), "a clean stop removes the pid file");
}

/// A child process killed when the test ends, passed or not.
struct Reaped(Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The nats-server pid `up` recorded in the data folder.
fn nats_pid(data: &Path) -> Option<i32> {
    std::fs::read_to_string(data.join("nats-server.pid")).ok()?.trim().parse().ok()
}

/// Whether `pid` runs (a zombie counts as gone: it no longer holds ports or files).
fn alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .is_ok_and(|s| s.rsplit_once(')').and_then(|(_, r)| r.split_whitespace().next()) != Some("Z"))
}

fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + PATIENCE;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// One HTTP/1.1 request; returns status and body, or None if the gateway is unreachable.
async fn try_http(base: &str, method: &str, path: &str, body: &[u8]) -> Option<(u16, String)> {
    let host = base.trim_start_matches("http://");
    let mut s = tokio::net::TcpStream::connect(host).await.ok()?;
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).await.ok()?;
    s.write_all(body).await.ok()?;
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(30), s.read_to_end(&mut out)).await.ok()?.ok()?;
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text.get(9..12)?.parse().ok()?;
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    Some((status, body))
}

async fn http(base: &str, method: &str, path: &str, body: &[u8]) -> (u16, String) {
    try_http(base, method, path, body).await.expect("gateway reachable")
}

async fn wait_healthy(base: &str) {
    let deadline = Instant::now() + PATIENCE;
    loop {
        match try_http(base, "GET", "/v1/healthz", b"").await {
            Some((200, _)) => return,
            other => assert!(Instant::now() < deadline, "healthz never became ok; last: {other:?}"),
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Registers `name` with a key from `seed`; returns the key.
async fn register_user(base: &str, name: &str, seed: u8) -> PublicKey {
    let sk = SigningKey::from_bytes(&[seed; 32]);
    let pk = PublicKey::of(&sk);
    let reg = register::build(&sk, &Handle::new(name, "kez.test").unwrap(), now_ms(), [seed; 16]).unwrap();
    let (status, body) = http(base, "POST", "/v1/register", &reg).await;
    assert_eq!(status, 201, "{body}");
    pk
}

fn mode(p: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

#[tokio::test]
async fn up_serves_and_keeps_data_across_restart() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let ports = free_ports();
    let stack = start(&data, &ports);

    let (status, body) = http(stack.http(), "GET", "/v1/healthz", b"").await;
    assert_eq!(status, 200, "{body}");
    let (status, config) = http(stack.http(), "GET", "/v1/config", b"").await;
    assert_eq!(status, 200);
    assert!(config.contains("kez.test"), "{config}");

    let sk = SigningKey::from_bytes(&[42; 32]);
    let pk = PublicKey::of(&sk);
    let reg = register::build(&sk, &Handle::new("erin", "kez.test").unwrap(), now_ms(), [1; 16]).unwrap();
    let (status, body) = http(stack.http(), "POST", "/v1/register", &reg).await;
    assert_eq!(status, 201, "{body}");
    let link = build_link(&sk, 1, None, now_ms(), &Op::AddEndpoint(Endpoint::iroh_wave1(&pk))).unwrap();
    let (status, body) = http(stack.http(), "POST", &format!("/v1/sigchains/ed25519/{}/events", pk.hex()), &link).await;
    assert_eq!(status, 201, "{body}");
    stop(stack);

    // The data folder, secrets, config and log are private.
    assert_eq!(mode(&data), 0o700, "data folder");
    for f in ["secrets.json", "nats.conf", "nats-server.log"] {
        assert_eq!(mode(&data.join(f)), 0o600, "{f}");
    }
    let secrets_before = std::fs::read(data.join("secrets.json")).unwrap();

    // Behind a TLS proxy (deploy/Caddyfile) browsers are sent to the proxy's /nats.
    let stack = start_with(&data, &ports, &["--public-url", "https://chat.example"]);
    assert_eq!(std::fs::read(data.join("secrets.json")).unwrap(), secrets_before, "secrets are reused");
    let (_, config) = http(stack.http(), "GET", "/v1/config", b"").await;
    assert!(config.contains("\"wss://chat.example/nats\""), "{config}");
    let (status, body) = http(stack.http(), "GET", "/v1/u/erin", b"").await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains(&pk.hex()), "{body}");
    assert!(body.contains("iroh"), "endpoints survive: {body}");
    stop(stack);
}

#[tokio::test]
async fn nats_server_dies_with_a_killed_up() {
    let dir = tempfile::tempdir().unwrap();
    let mut stack = start(dir.path(), &free_ports());
    let nats = nats_pid(dir.path()).expect("pid file");
    assert!(alive(nats));
    kill(Pid::from_raw(stack.pid()), Signal::SIGKILL).unwrap();
    stack.child_mut().wait().unwrap();
    wait_until("the nats-server of a kill -9'd `up` is gone", || !alive(nats));
}

#[tokio::test]
async fn left_over_nats_server_is_stopped_before_starting() {
    let dir = tempfile::tempdir().unwrap();
    let ports = free_ports();
    // Render the data folder's config, then start a nats-server on it by hand: what a
    // kill -9'd `up` without a parent-death signal used to leave behind.
    let status = up_command(dir.path(), &ports).arg("--init-only").status().unwrap();
    assert!(status.success());
    let mut orphan = Reaped(
        Command::new(kez_testkit::nats_server_bin().unwrap())
            .arg("-c")
            .arg(dir.path().join("nats.conf"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_until("the planted nats-server listens", || std::net::TcpStream::connect(("127.0.0.1", ports[1])).is_ok());

    let stack = start(dir.path(), &ports);
    stack
        .wait_for_log(
            &format!("stopping a nats-server left over from an earlier run (pid {})", orphan.0.id()),
            PATIENCE,
        )
        .unwrap();
    let deadline = Instant::now() + PATIENCE;
    while orphan.0.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "the left-over nats-server still runs");
        std::thread::sleep(Duration::from_millis(100));
    }
    let own = nats_pid(dir.path()).expect("pid file");
    assert_ne!(own, orphan.0.id() as i32);
    assert!(alive(own));
    let (status, body) = http(stack.http(), "GET", "/v1/healthz", b"").await;
    assert_eq!(status, 200, "{body}");
    stop(stack);
}

#[tokio::test]
async fn a_port_held_by_another_process_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let ports = free_ports();
    let _squatter = std::net::TcpListener::bind(("127.0.0.1", ports[1])).unwrap();
    // `start` fails unless up says it is ready; its error carries up's stderr.
    let Err(e) = StackProcess::start(&options(dir.path(), &ports)) else {
        panic!("up came up on a port it does not own");
    };
    let needle = format!("127.0.0.1:{} is already in use", ports[1]);
    assert!(format!("{e:#}").contains(&needle), "the error names the port: {e:#}");
}

#[tokio::test]
async fn crashed_nats_server_is_restarted() {
    let dir = tempfile::tempdir().unwrap();
    let stack = start(dir.path(), &free_ports());
    let pk = register_user(stack.http(), "frank", 7).await;
    let first = nats_pid(dir.path()).expect("pid file");
    kill(Pid::from_raw(first), Signal::SIGKILL).unwrap();

    wait_until("a new nats-server runs", || nats_pid(dir.path()).is_some_and(|p| p != first && alive(p)));
    wait_healthy(stack.http()).await;
    let (status, body) = http(stack.http(), "GET", "/v1/u/frank", b"").await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains(&pk.hex()), "{body}");
    register_user(stack.http(), "grace", 8).await;
    stack.wait_for_log("exited unexpectedly", PATIENCE).unwrap();
    stack.wait_for_log("nats-server restarted", PATIENCE).unwrap();
    stop(stack);
}

#[tokio::test]
async fn up_gives_up_when_nats_server_keeps_failing() {
    let dir = tempfile::tempdir().unwrap();
    let ports = free_ports();
    let mut stack = start(dir.path(), &ports);
    let nats = nats_pid(dir.path()).expect("pid file");
    kill(Pid::from_raw(nats), Signal::SIGKILL).unwrap();
    // Take the client port the moment it is free: every restart now fails.
    let deadline = Instant::now() + PATIENCE;
    let _squatter = loop {
        if let Ok(l) = std::net::TcpListener::bind(("127.0.0.1", ports[1])) {
            break l;
        }
        assert!(Instant::now() < deadline, "the killed nats-server's port never became free");
        std::thread::sleep(Duration::from_millis(5));
    };
    let deadline = Instant::now() + Duration::from_secs(180);
    let status = loop {
        if let Some(s) = stack.child_mut().try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "up never gave up");
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(!status.success(), "giving up is a failure: {status}");
    stack.wait_for_log("giving up on nats-server", PATIENCE).unwrap();
    stack.wait_for_log(&format!("127.0.0.1:{}", ports[1]), PATIENCE).unwrap();
}

#[test]
fn init_only_renders_a_config_nats_server_accepts() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("kez");
    let ports = free_ports();
    // As in a container: NATS on every interface, a public https origin.
    let out = up_command(&data, &ports)
        .args(["--init-only", "--nats-host", "0.0.0.0", "--public-url", "https://chat.example"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let conf = data.join("nats.conf");
    let text = std::fs::read_to_string(&conf).unwrap();
    assert!(text.contains(&format!("listen: \"0.0.0.0:{}\"", ports[1])), "{text}");
    assert!(text.contains(&format!("http: \"127.0.0.1:{}\"", ports[3])), "monitoring stays on loopback:\n{text}");
    assert!(!text.contains(&format!("0.0.0.0:{}", ports[3])), "{text}");
    assert!(text.contains("\"https://chat.example\""), "{text}");
    assert!(text.contains(&format!("store_dir: \"{}\"", data.canonicalize().unwrap().join("jetstream").display())));
    assert_eq!(mode(&data), 0o700);
    assert_eq!(mode(&conf), 0o600);
    assert_eq!(mode(&data.join("secrets.json")), 0o600);
    assert!(!data.join("jetstream").exists(), "init only writes files, it starts nothing");

    let check = Command::new(kez_testkit::nats_server_bin().unwrap()).arg("-t").arg("-c").arg(&conf).output().unwrap();
    assert!(
        check.status.success(),
        "nats-server -t rejected the config: {}{}",
        String::from_utf8_lossy(&check.stdout),
        String::from_utf8_lossy(&check.stderr)
    );

    // Rendering again is idempotent: same keys, same file.
    let again = up_command(&data, &ports)
        .args(["--init-only", "--nats-host", "0.0.0.0", "--public-url", "https://chat.example"])
        .output()
        .unwrap();
    assert!(again.status.success());
    assert_eq!(std::fs::read_to_string(&conf).unwrap(), text);
}

/// The compose and systemd path without containers: `up --init-only` renders the config,
/// a separately started nats-server runs it, `kez-server run` serves from the same folder.
#[tokio::test]
async fn init_only_config_serves_a_stack_run_separately() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("kez");
    let ports = free_ports();
    let out = up_command(&data, &ports).args(["--init-only", "--nats-host", "127.0.0.1"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let _nats = Reaped(
        Command::new(kez_testkit::nats_server_bin().unwrap())
            .arg("-c")
            .arg(data.join("nats.conf"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_until("nats-server listens", || std::net::TcpStream::connect(("127.0.0.1", ports[1])).is_ok());
    let _run = Reaped(
        Command::new(env!("CARGO_BIN_EXE_kez-server"))
            .args(["run", "--services", "all", "--domain", "kez.test"])
            .arg("--data-dir")
            .arg(&data)
            .args(["--nats-url", &format!("nats://127.0.0.1:{}", ports[1])])
            .args(["--http", &format!("127.0.0.1:{}", ports[0])])
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap(),
    );
    let base = format!("http://127.0.0.1:{}", ports[0]);
    wait_healthy(&base).await;
    let pk = register_user(&base, "ivan", 10).await;
    let (status, body) = http(&base, "GET", "/v1/u/ivan", b"").await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains(&pk.hex()), "{body}");
}

#[tokio::test]
async fn backup_and_restore_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let archive = dir.path().join("kez-backup.tar.gz");
    let script = repo().join("deploy/kez-backup");
    let ports = free_ports();
    let stack = start(&data, &ports);
    let pk = register_user(stack.http(), "heidi", 9).await;

    // A live store is refused: copying it could capture half-written blocks.
    let live = Command::new(&script).arg("backup").arg(&data).arg(&archive).output().unwrap();
    assert!(!live.status.success());
    assert!(String::from_utf8_lossy(&live.stderr).contains("is running"), "{}", String::from_utf8_lossy(&live.stderr));
    stop(stack);

    let out = Command::new(&script).arg("backup").arg(&data).arg(&archive).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(mode(&archive), 0o600, "the archive holds every service key");
    std::fs::remove_dir_all(&data).unwrap();

    let out = Command::new(&script).arg("restore").arg(&archive).arg(&data).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // Restoring over existing data is refused.
    let twice = Command::new(&script).arg("restore").arg(&archive).arg(&data).output().unwrap();
    assert!(!twice.status.success());

    let stack = start(&data, &ports);
    let (status, body) = http(stack.http(), "GET", "/v1/u/heidi", b"").await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains(&pk.hex()), "{body}");
    stop(stack);
}

/// `nats-server -t` on every config `--init-only --cluster 3` renders: for nodes on other
/// hosts (the routes of deploy/docker-compose.cluster.yml) and for the local cluster of `up`.
#[test]
fn init_only_cluster_renders_configs_nats_server_accepts() {
    let compose = std::fs::read_to_string(repo().join("deploy/docker-compose.cluster.yml")).unwrap();
    let routes = compose
        .lines()
        .map(|l| l.trim().trim_start_matches("- ").trim())
        .find(|l| l.starts_with("nats-route://nats-1:"))
        .expect("the cluster compose file names the routes")
        .to_owned();
    let dir = tempfile::tempdir().unwrap();
    let ports = free_ports();
    let elsewhere = ["--init-only", "--cluster", "3", "--nats-host", "0.0.0.0", "--cluster-routes", &routes];
    let local = ["--init-only", "--cluster", "3"];
    for (name, extra) in [("elsewhere", &elsewhere[..]), ("local", &local[..])] {
        let data = dir.path().join(name);
        let out = up_command(&data, &ports).args(extra).output().unwrap();
        assert!(out.status.success(), "{name}: {}", String::from_utf8_lossy(&out.stderr));
        let mut issuers = vec![];
        for node in ["kez-n1", "kez-n2", "kez-n3"] {
            let conf = data.join(node).join("nats.conf");
            let text = std::fs::read_to_string(&conf).unwrap();
            assert!(text.contains(&format!("server_name: \"{node}\"")), "{text}");
            assert!(text.contains("cluster {") && text.contains("routes: ["), "{text}");
            assert_eq!(mode(&conf), 0o600);
            issuers.extend(text.lines().filter(|l| l.trim().starts_with("issuer:")).map(str::to_owned));
            let check =
                Command::new(kez_testkit::nats_server_bin().unwrap()).arg("-t").arg("-c").arg(&conf).output().unwrap();
            assert!(
                check.status.success(),
                "nats-server -t rejected {}: {}{}",
                conf.display(),
                String::from_utf8_lossy(&check.stdout),
                String::from_utf8_lossy(&check.stderr)
            );
        }
        if name == "elsewhere" {
            let n2 = std::fs::read_to_string(data.join("kez-n2/nats.conf")).unwrap();
            assert!(n2.contains("listen: \"0.0.0.0:6222\"") && n2.contains("nats-route://nats-3:6222"), "{n2}");
        }
        // One set of keys for every node: the same callout issuer everywhere.
        assert_eq!(issuers.len(), 3);
        assert!(issuers.iter().all(|i| *i == issuers[0]), "{issuers:?}");
    }
}

/// `docker compose config` (or the standalone `docker-compose`) on both compose files, where
/// one is installed.
#[test]
fn compose_files_are_valid_where_compose_exists() {
    let candidates: [&[&str]; 2] = [&["docker", "compose"], &["docker-compose"]];
    for argv in candidates {
        let works = Command::new(argv[0])
            .args(&argv[1..])
            .arg("version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !works {
            continue;
        }
        for file in ["deploy/docker-compose.yml", "deploy/docker-compose.cluster.yml"] {
            let out =
                Command::new(argv[0]).args(&argv[1..]).arg("-f").arg(repo().join(file)).args(["config", "-q"]).output();
            let out = out.unwrap();
            assert!(out.status.success(), "{} config {file}: {}", argv.join(" "), String::from_utf8_lossy(&out.stderr));
        }
        return;
    }
    eprintln!("SKIP: neither `docker compose` nor `docker-compose` is installed");
}

/// `caddy validate` on deploy/Caddyfile, where caddy is installed.
#[test]
fn caddyfile_is_valid_where_caddy_exists() {
    let Ok(version) = Command::new("caddy").arg("version").output() else {
        eprintln!("SKIP: caddy is not installed");
        return;
    };
    assert!(version.status.success());
    let out = Command::new("caddy")
        .args(["adapt", "--validate", "--adapter", "caddyfile", "--config"])
        .arg(repo().join("deploy/Caddyfile"))
        .env("KEZ_SITE", "chat.example")
        .output()
        .unwrap();
    assert!(out.status.success(), "caddy adapt --validate: {}", String::from_utf8_lossy(&out.stderr));
}
