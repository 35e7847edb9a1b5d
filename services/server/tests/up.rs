//! `kez-server up` as a user runs it: the real binary brings the stack up,
//! serves /v1, stops cleanly on SIGTERM, and keeps every registration and
//! sigchain across a restart.

use std::io::{BufRead as _, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ed25519_dalek::SigningKey;
use kv_schemas::sigchain::{Endpoint, Op, build_link};
use kv_schemas::{Handle, PublicKey, now_ms, register};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

struct Stack {
    child: Child,
    http: String,
}

impl Stack {
    fn start(data: &Path, ports: &[u16]) -> Stack {
        let mut child = Command::new(env!("CARGO_BIN_EXE_kez-server"))
            .args(["up", "--domain", "kez.test"])
            .arg("--data-dir")
            .arg(data)
            .args(["--http", &format!("127.0.0.1:{}", ports[0])])
            .args(["--nats-port", &ports[1].to_string()])
            .args(["--ws-port", &ports[2].to_string()])
            .args(["--monitor-port", &ports[3].to_string()])
            .env("NATS_SERVER_BIN", kez_testkit::nats_server_bin().expect("nats-server"))
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn kez-server");
        let stdout = child.stdout.take().expect("stdout");
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut http = None;
        for line in BufReader::new(stdout).lines() {
            let line = line.expect("read stdout");
            if let Some(url) = line.trim().strip_prefix("web app and /v1 API:") {
                http = Some(url.trim().trim_end_matches('/').to_string());
            }
            if line.starts_with("Press Ctrl-C") || Instant::now() > deadline {
                break;
            }
        }
        Stack { child, http: http.expect("kez-server printed where to open it") }
    }

    fn stop(mut self) {
        use nix::sys::signal::{Signal, kill};
        use nix::unistd::Pid;
        kill(Pid::from_raw(self.child.id() as i32), Signal::SIGTERM).unwrap();
        let status = self.child.wait().unwrap();
        assert!(status.success(), "kez-server exited with {status}");
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One HTTP/1.1 request; returns status and body.
async fn http(base: &str, method: &str, path: &str, body: &[u8]) -> (u16, String) {
    let host = base.trim_start_matches("http://");
    let mut s = tokio::net::TcpStream::connect(host).await.unwrap();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).await.unwrap();
    s.write_all(body).await.unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).await.unwrap();
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text[9..12].parse().unwrap();
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    (status, body)
}

#[tokio::test]
async fn up_serves_and_keeps_data_across_restart() {
    let dir = tempfile::tempdir().unwrap();
    let ports: Vec<u16> = (0..4).map(|_| kez_testkit::free_port().unwrap()).collect();
    let stack = Stack::start(dir.path(), &ports);

    let (status, body) = http(&stack.http, "GET", "/v1/healthz", b"").await;
    assert_eq!(status, 200, "{body}");
    let (status, config) = http(&stack.http, "GET", "/v1/config", b"").await;
    assert_eq!(status, 200);
    assert!(config.contains("kez.test"), "{config}");

    let sk = SigningKey::from_bytes(&[42; 32]);
    let pk = PublicKey::of(&sk);
    let reg = register::build(&sk, &Handle::new("erin", "kez.test").unwrap(), now_ms(), [1; 16]);
    let (status, body) = http(&stack.http, "POST", "/v1/register", &reg).await;
    assert_eq!(status, 201, "{body}");
    let link = build_link(&sk, 1, None, now_ms(), &Op::AddEndpoint(Endpoint::Iroh { node_id: pk.hex() }));
    let (status, body) = http(&stack.http, "POST", &format!("/v1/sigchains/ed25519/{}/events", pk.hex()), &link).await;
    assert_eq!(status, 201, "{body}");
    stack.stop();

    // Secrets are private and reused.
    use std::os::unix::fs::PermissionsExt as _;
    let mode = std::fs::metadata(dir.path().join("secrets.json")).unwrap().permissions().mode();
    assert_eq!(mode & 0o077, 0, "secrets.json is private");
    let secrets_before = std::fs::read(dir.path().join("secrets.json")).unwrap();

    let stack = Stack::start(dir.path(), &ports);
    assert_eq!(std::fs::read(dir.path().join("secrets.json")).unwrap(), secrets_before);
    let (status, body) = http(&stack.http, "GET", "/v1/u/erin", b"").await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains(&pk.hex()), "{body}");
    assert!(body.contains("iroh"), "endpoints survive: {body}");
    stack.stop();
}
