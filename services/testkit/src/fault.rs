//! Fault injection on a local cluster (`kez-server up --cluster 3`) under a steady write load.
//!
//! [`run`] starts the cluster from the given `kez-server` binary, registers writers, then keeps
//! a mix of registrations (`POST /v1/register`), sigchain appends (`POST
//! /v1/sigchains/…/events`) and chat messages (`kez.u.<me>.send.<to>` as an end user through
//! the auth callout) going while it kill -9s, in turn: (a) a nats-server that leads nothing we
//! watch, (b) service workers (`registry-1`, `sigchain-1`, `inbox-1`), (c) the leader of the
//! `KV_kez_handles` stream, (d) the gateway. `up` restarts each; the load continues for the
//! profile's time after each restart.
//!
//! Clients follow PROTOCOL.md §9.7: a write whose outcome is unknown (no answer, connection
//! refused, `unavailable`, `timeout`) is retried — a registration signed anew with a fresh
//! nonce, a link or an envelope with the same bytes. Any other refusal is a client-visible
//! error and a failure of the run.
//!
//! At the end, against the buckets and the stream themselves: every acknowledged registration
//! is there (handle and key record agree), every handle has its key record, every
//! acknowledged link is at its seqno and every chain is gap-free, every acknowledged message is
//! stored exactly once and no envelope is stored twice. The report gives the counts, the
//! retries and, per fault, how long each kind of write went without an acknowledgement.

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, anyhow, bail};
use async_nats::jetstream;
use bytes::Bytes;
use ed25519_dalek::SigningKey;
use futures::StreamExt as _;
use kez_service_kit::secrets::Secrets;
use kv_schemas::sigchain::{Claim, Op, build_link, parse_link};
use kv_schemas::subjects::{BUCKET_HANDLES, BUCKET_KEYS, BUCKET_SIGCHAINS, sigchain_kv_key, user_send_subject};
use kv_schemas::{Handle, PublicKey, now_ms, register};
use serde::Serialize;
use sha2::{Digest as _, Sha256};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

const DOMAIN: &str = "kez.fault";
/// A write is given up (and counted as a client-visible failure) after this long; shorter
/// than the inbox stream's 2-minute duplicate window, so every resend of one envelope is
/// de-duplicated.
const OP_DEADLINE: Duration = Duration::from_secs(90);
const HTTP_TIMEOUT: Duration = Duration::from_secs(12);
const NATS_TIMEOUT: Duration = Duration::from_secs(5);
const PATIENCE: Duration = Duration::from_secs(180);

/// How hard and how long.
#[derive(Debug, Clone, Serialize)]
pub struct Profile {
    pub name: &'static str,
    /// Concurrent writers (each registers, appends to its own chain and sends messages).
    pub writers: usize,
    /// Load before the first fault.
    pub warmup: Duration,
    /// Load after each restart, before the next fault.
    pub after_fault: Duration,
    /// Pause of each writer between two writes.
    pub pace: Duration,
}

impl Profile {
    /// The profile of the Rust test suite: about a minute of load on a 2-core machine.
    pub fn short() -> Self {
        Self {
            name: "short",
            writers: 4,
            warmup: Duration::from_secs(3),
            after_fault: Duration::from_secs(6),
            pace: Duration::from_millis(50),
        }
    }

    /// The `kez-loadtest fault` profile.
    pub fn long() -> Self {
        Self {
            name: "long",
            writers: 16,
            warmup: Duration::from_secs(10),
            after_fault: Duration::from_secs(45),
            pace: Duration::from_millis(20),
        }
    }
}

/// Counts per kind of write.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Counts {
    pub registrations: u64,
    pub links: u64,
    pub messages: u64,
}

impl Counts {
    fn add(&mut self, kind: Kind, n: u64) {
        match kind {
            Kind::Registration => self.registrations += n,
            Kind::Link => self.links += n,
            Kind::Message => self.messages += n,
        }
    }

    pub fn total(&self) -> u64 {
        self.registrations + self.links + self.messages
    }
}

/// One injected fault.
#[derive(Debug, Clone, Serialize)]
pub struct FaultReport {
    /// `(a) nats-server`, ….
    pub fault: String,
    /// What was killed (`kez-n2 (pid 1234)`, …).
    pub killed: Vec<String>,
    /// kill -9 → the replacement process is running.
    pub restarted_after_ms: u64,
    /// Per kind of write: the longest stretch without an acknowledgement around the fault
    /// (from the last acknowledgement before the kill to the first after, or the longest gap
    /// until the next fault). Normal load gives a few tens of milliseconds.
    pub unavailable_ms: BTreeMap<String, u64>,
}

/// What a run measured. [`Report::problems`] empty means every check passed.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    pub profile: String,
    pub seconds: f64,
    /// Writes acknowledged to the client.
    pub acknowledged: Counts,
    /// Acknowledged writes that needed more than one attempt.
    pub retried: Counts,
    /// Extra attempts in all (each after an unknown outcome).
    pub retry_attempts: u64,
    /// Acknowledged writes missing at the end (must be 0).
    pub lost: Counts,
    /// Envelopes stored more than once (must be 0).
    pub duplicates: u64,
    /// Writes that failed for the client after retries or with a definite refusal (must be 0).
    pub client_errors: u64,
    pub faults: Vec<FaultReport>,
    /// Every check that failed, in words.
    pub problems: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Kind {
    Registration,
    Link,
    Message,
}

impl Kind {
    const ALL: [Kind; 3] = [Kind::Registration, Kind::Link, Kind::Message];
    fn name(self) -> &'static str {
        match self {
            Kind::Registration => "registration",
            Kind::Link => "sigchain link",
            Kind::Message => "chat message",
        }
    }
}

/// What one attempt came to.
enum Attempt {
    Ack,
    /// No answer, or the server could not tell: retry.
    Unknown(String),
    /// A definite refusal.
    Refused(String),
}

/// Everything the writers recorded.
#[derive(Default)]
struct Log {
    acks: Vec<(Instant, Kind)>,
    report: Report,
    /// (local part, key) of acknowledged registrations.
    registrations: Vec<(String, PublicKey)>,
    /// Per chain: acknowledged (seqno, link id).
    links: HashMap<PublicKey, Vec<(u64, String)>>,
    /// SHA-256 of acknowledged envelopes.
    messages: Vec<[u8; 32]>,
}

type Shared = Arc<Mutex<Log>>;

fn lock(log: &Shared) -> std::sync::MutexGuard<'_, Log> {
    log.lock().unwrap_or_else(|e| e.into_inner())
}

/// Retries `attempt` while its outcome is unknown, for at most [`OP_DEADLINE`]; records it.
async fn write<F, Fut>(log: &Shared, kind: Kind, what: &str, mut attempt: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Attempt>,
{
    let start = Instant::now();
    let mut delay = Duration::from_millis(100);
    let mut attempts = 0u64;
    loop {
        attempts += 1;
        match attempt().await {
            Attempt::Ack => {
                let mut l = lock(log);
                l.acks.push((Instant::now(), kind));
                l.report.acknowledged.add(kind, 1);
                if attempts > 1 {
                    l.report.retried.add(kind, 1);
                    l.report.retry_attempts += attempts - 1;
                }
                return true;
            }
            Attempt::Unknown(why) if start.elapsed() < OP_DEADLINE => {
                let _ = why;
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(2));
            }
            Attempt::Unknown(why) | Attempt::Refused(why) => {
                let mut l = lock(log);
                l.report.client_errors += 1;
                l.report.problems.push(format!("{} {what}: the client saw an error: {why}", kind.name()));
                return false;
            }
        }
    }
}

/// A minimal HTTP/1.1 POST (one connection per request); the status code.
async fn post(base: &str, path: &str, body: &[u8]) -> Result<u16, String> {
    let addr = base.trim_start_matches("http://").trim_end_matches('/').to_owned();
    let go = async {
        let mut s = tokio::net::TcpStream::connect(&addr).await.map_err(|e| format!("connect: {e}"))?;
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        );
        s.write_all(head.as_bytes()).await.map_err(|e| format!("write: {e}"))?;
        s.write_all(body).await.map_err(|e| format!("write: {e}"))?;
        let mut out = Vec::new();
        s.read_to_end(&mut out).await.map_err(|e| format!("read: {e}"))?;
        let text = String::from_utf8_lossy(&out);
        text.split_whitespace().nth(1).and_then(|c| c.parse().ok()).ok_or_else(|| "no status line".to_owned())
    };
    tokio::time::timeout(HTTP_TIMEOUT, go).await.unwrap_or_else(|_| Err("no answer in time".to_owned()))
}

/// PROTOCOL.md §9.7: which HTTP outcomes leave a write unknown.
fn http_attempt(r: Result<u16, String>) -> Attempt {
    match r {
        Ok(200 | 201) => Attempt::Ack,
        Ok(502..=504) => Attempt::Unknown("HTTP 502-504".into()),
        Ok(code) => Attempt::Refused(format!("HTTP {code}")),
        Err(e) => Attempt::Unknown(e),
    }
}

async fn nats_send(client: &async_nats::Client, subject: &str, payload: &Bytes) -> Attempt {
    let req = async_nats::Request::new().payload(payload.clone()).timeout(Some(NATS_TIMEOUT));
    match client.send_request(subject.to_owned(), req).await {
        Ok(m) => match m.headers.as_ref().and_then(|h| h.get("Nats-Service-Error-Code")) {
            None => Attempt::Ack,
            // unavailable, timeout
            Some(code) if matches!(code.as_str(), "9503" | "9504") => Attempt::Unknown(format!("service error {code}")),
            Some(code) => Attempt::Refused(format!(
                "service error {code}: {}",
                m.headers.as_ref().and_then(|h| h.get("Nats-Service-Error")).map(|v| v.as_str()).unwrap_or("")
            )),
        },
        Err(e) => Attempt::Unknown(e.to_string()),
    }
}

fn sha256(bytes: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(&Sha256::digest(bytes));
    out
}

fn register_body(key: &SigningKey, local: &str) -> Vec<u8> {
    let handle = Handle::new(local, DOMAIN).unwrap_or_else(|_| unreachable!("workload handles are valid"));
    register::build(key, &handle, now_ms(), kv_schemas::random_bytes())
        .unwrap_or_else(|_| unreachable!("workload registrations have a canonical form"))
}

async fn register_user(log: &Shared, base: &str, key: &SigningKey, local: &str) -> bool {
    let ok = write(log, Kind::Registration, local, || async {
        // Signed anew each attempt: the first attempt's nonce may be recorded already.
        http_attempt(post(base, "/v1/register", &register_body(key, local)).await)
    })
    .await;
    if ok {
        lock(log).registrations.push((local.to_owned(), PublicKey::of(key)));
    }
    ok
}

/// One writer: registers itself, then cycles registration → link → message until `stop`.
async fn writer(
    w: usize,
    log: Shared,
    base: String,
    nats_urls: Vec<String>,
    keys: Arc<Vec<SigningKey>>,
    stop: Arc<AtomicBool>,
    pace: Duration,
) {
    let me = &keys[w];
    let pk = PublicKey::of(me);
    let Ok(seed) = nkeys::KeyPair::new_from_raw(nkeys::KeyPairType::User, me.to_bytes()).and_then(|k| k.seed()) else {
        return;
    };
    let Ok(user) = async_nats::ConnectOptions::with_nkey(seed)
        .custom_inbox_prefix(format!("_INBOX.{}", pk.hex()))
        .retry_on_initial_connect()
        .connect(nats_urls)
        .await
    else {
        lock(&log).report.problems.push(format!("writer {w}: cannot connect to NATS"));
        return;
    };
    let path = format!("/v1/sigchains/ed25519/{}/events", pk.hex());
    let (mut seqno, mut tail): (u64, Option<String>) = (0, None);
    let mut i = 0u64;
    while !stop.load(Ordering::Relaxed) {
        i += 1;
        match i % 3 {
            1 => {
                let key = SigningKey::from_bytes(&kv_schemas::random_bytes());
                register_user(&log, &base, &key, &format!("r{w}x{i}")).await;
            }
            2 => {
                let op = Op::AddClaim(Claim { service: "kez".into(), account: format!("c{i}"), proof: None });
                let Ok(link) = build_link(me, seqno + 1, tail.as_deref(), now_ms(), &op) else { return };
                let Ok(parsed) = parse_link(&link) else { return };
                let ok = write(&log, Kind::Link, &format!("{} #{}", pk.hex(), seqno + 1), || async {
                    http_attempt(post(&base, &path, &link).await)
                })
                .await;
                if !ok {
                    // The chain is in an unknown state now; this writer stops appending.
                    return;
                }
                seqno += 1;
                tail = Some(parsed.link_id.clone());
                lock(&log).links.entry(pk).or_default().push((seqno, parsed.link_id));
            }
            _ => {
                let to = PublicKey::of(&keys[(w + 1) % keys.len()]);
                let body = kv_schemas::envelope::Body::Text(format!("message {i} from writer {w}"));
                let Ok(sealed) = kv_schemas::envelope::seal(me, &to, &body, now_ms()) else { return };
                let sealed = Bytes::from(sealed);
                let subject = user_send_subject(&pk, &to);
                if write(&log, Kind::Message, &subject, || nats_send(&user, &subject, &sealed)).await {
                    lock(&log).messages.push(sha256(&sealed));
                }
            }
        }
        tokio::time::sleep(pace).await;
    }
}

/// A running `kez-server up --cluster 3` on free loopback ports; killed when dropped.
pub struct Cluster {
    child: Child,
    data: PathBuf,
    log: PathBuf,
}

impl Cluster {
    /// Starts it with its data in `data` (kept after it stops) and waits until it is up.
    pub fn start(server_bin: &Path, data: &Path, extra: &[&str]) -> Result<Cluster> {
        let data = data.to_owned();
        let [http, nats, ws, mon] = super::free_ports::<4>()?;
        let log_path = data.with_extension("up.log");
        let log = std::fs::File::create(&log_path)?;
        let mut child = Command::new(server_bin)
            .args(["up", "--cluster", "3", "--domain", DOMAIN])
            .arg("--data-dir")
            .arg(&data)
            .args(["--http", &format!("127.0.0.1:{http}")])
            .args(["--nats-port", &nats.to_string(), "--ws-port", &ws.to_string()])
            .args(["--monitor-port", &mon.to_string()])
            .args(["--register-burst", "1000000", "--register-per-minute", "1000000"])
            .args(extra)
            .env("NATS_SERVER_BIN", super::nats_server_bin()?)
            .env("RUST_LOG", "warn,kez_server=info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .spawn()
            .with_context(|| format!("starting {}", server_bin.display()))?;
        let stdout = child.stdout.take().ok_or_else(|| anyhow!("no stdout"))?;
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                eprintln!("[up --cluster] {line}");
                if line.starts_with("Press Ctrl-C") {
                    let _ = tx.send(());
                }
            }
        });
        let mut cluster = Cluster { child, data, log: log_path };
        if rx.recv_timeout(PATIENCE).is_err() {
            let log = std::fs::read_to_string(&cluster.log).unwrap_or_default();
            cluster.kill();
            bail!("`kez-server up --cluster 3` did not come up; its log:\n{log}");
        }
        Ok(cluster)
    }

    /// `<data>/cluster.json`: what runs where.
    pub fn state(&self) -> Result<serde_json::Value> {
        let text = std::fs::read_to_string(self.data.join("cluster.json")).context("reading cluster.json")?;
        Ok(serde_json::from_str(&text)?)
    }

    /// Pid of the node or worker called `name`.
    fn pid(&self, name: &str) -> Option<i32> {
        let s = self.state().ok()?;
        let all = s["nodes"].as_array()?.iter().chain(s["workers"].as_array()?.iter()).cloned().collect::<Vec<_>>();
        let entry = all.into_iter().find(|e| e["name"] == name)?;
        entry["pid"].as_i64().and_then(|p| i32::try_from(p).ok())
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// The client URLs of its nats-servers.
    pub fn nats_urls(&self) -> Result<Vec<String>> {
        let state = self.state()?;
        Ok(state["nats_urls"].as_array().into_iter().flatten().filter_map(|u| u.as_str().map(str::to_owned)).collect())
    }

    /// Connects as the ops user (everything in account APP).
    pub async fn connect_ops(&self) -> Result<async_nats::Client> {
        let (secrets, _) = Secrets::load_or_create(&self.data)?;
        Ok(async_nats::ConnectOptions::with_nkey(secrets.ops().seed()?).connect(self.nats_urls()?).await?)
    }

    /// SIGTERM, as an operator stops it; waits until it exited.
    pub fn stop(mut self) {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        self.kill();
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            self.kill();
        }
    }
}

/// kill -9 of `names`; waits until each runs again under a new pid.
async fn kill_and_wait(cluster: &Cluster, names: &[String]) -> Result<(Vec<String>, Duration)> {
    let mut killed = vec![];
    let mut old = vec![];
    for name in names {
        let pid = cluster.pid(name).ok_or_else(|| anyhow!("{name} has no pid in cluster.json"))?;
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL)
            .with_context(|| format!("kill -9 {name} (pid {pid})"))?;
        killed.push(format!("{name} (pid {pid})"));
        old.push(pid);
    }
    let t = Instant::now();
    loop {
        let back = names
            .iter()
            .zip(&old)
            .all(|(n, o)| cluster.pid(n).is_some_and(|p| p != *o && Path::new(&format!("/proc/{p}")).exists()));
        if back {
            return Ok((killed, t.elapsed()));
        }
        if t.elapsed() > PATIENCE {
            bail!("{names:?} were not restarted within {PATIENCE:?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The server that leads `stream` (`None`: no leader right now).
async fn leader(js: &jetstream::Context, stream: &str) -> Option<String> {
    let mut s = js.get_stream(stream).await.ok()?;
    s.info().await.ok()?.cluster.as_ref()?.leader.clone()
}

/// Waits until every replica of `stream` is current (a restarted node has caught up).
async fn wait_current(js: &jetstream::Context, stream: &str, replicas: usize) -> Result<()> {
    let t = Instant::now();
    loop {
        if let Ok(mut s) = js.get_stream(stream).await
            && let Ok(info) = s.info().await
            && let Some(c) = &info.cluster
            && c.leader.is_some()
            && c.replicas.len() + 1 == replicas
            && c.replicas.iter().all(|r| r.current)
        {
            return Ok(());
        }
        if t.elapsed() > PATIENCE {
            bail!("{stream} did not get all {replicas} replicas current within {PATIENCE:?}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Per kind: the longest stretch without an acknowledgement in `[from, to]`, counting from the
/// last acknowledgement before `from`.
fn unavailability(acks: &[(Instant, Kind)], from: Instant, to: Instant) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    for kind in Kind::ALL {
        let times: Vec<Instant> = acks.iter().filter(|(_, k)| *k == kind).map(|(t, _)| *t).collect();
        let start = times.iter().rev().find(|t| **t <= from).copied().unwrap_or(from);
        let mut prev = start;
        let mut worst = Duration::ZERO;
        for t in times.iter().filter(|t| **t > start && **t <= to) {
            worst = worst.max(*t - prev);
            prev = *t;
        }
        worst = worst.max(to.saturating_duration_since(prev).min(to - from));
        out.insert(kind.name().to_owned(), worst.as_millis() as u64);
    }
    out
}

/// Runs the whole scenario against `server_bin` (a `kez-server` binary).
pub async fn run(server_bin: &Path, profile: &Profile) -> Result<Report> {
    let started = Instant::now();
    let dir = tempfile::tempdir()?;
    let cluster = Cluster::start(server_bin, &dir.path().join("data"), &[])?;
    let state = cluster.state()?;
    let nats_urls = cluster.nats_urls()?;
    let base = state["gateway_url"].as_str().unwrap_or_default().to_owned();
    let replicas = state["replicas"].as_u64().unwrap_or(3) as usize;
    let ops = cluster.connect_ops().await?;
    let js = jetstream::new(ops.clone());
    let inbox_js = jetstream::with_prefix(ops.clone(), kez_service_kit::natsconf::INBOX_JS_API_PREFIX);

    let log: Shared = Arc::default();
    let keys: Arc<Vec<SigningKey>> =
        Arc::new((0..profile.writers).map(|_| SigningKey::from_bytes(&kv_schemas::random_bytes())).collect());
    for (w, key) in keys.iter().enumerate() {
        if !register_user(&log, &base, key, &format!("wk{w}")).await {
            bail!("registering writer {w} failed before any fault: {:?}", lock(&log).report.problems);
        }
    }
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..profile.writers)
        .map(|w| {
            tokio::spawn(writer(
                w,
                log.clone(),
                base.clone(),
                nats_urls.clone(),
                keys.clone(),
                stop.clone(),
                profile.pace,
            ))
        })
        .collect();
    tokio::time::sleep(profile.warmup).await;

    let mut faults = vec![];
    let mut windows = vec![];
    for fault in ["(a) a nats-server", "(b) service workers", "(c) the KV/stream leader", "(d) the gateway"] {
        let handles_leader = leader(&js, &format!("KV_{BUCKET_HANDLES}")).await;
        let targets: Vec<String> = match &fault[..3] {
            "(a)" => {
                // A node that leads neither the handles bucket nor the inbox stream.
                let inbox_leader = leader(&inbox_js, kv_schemas::subjects::INBOX_STREAM).await;
                let node = (1..=3)
                    .map(|i| format!("kez-n{i}"))
                    .find(|n| Some(n) != handles_leader.as_ref() && Some(n) != inbox_leader.as_ref())
                    .ok_or_else(|| anyhow!("no node without a leadership"))?;
                vec![node]
            }
            "(b)" => vec!["registry-1".into(), "sigchain-1".into(), "inbox-1".into()],
            "(c)" => vec![handles_leader.clone().ok_or_else(|| anyhow!("KV_{BUCKET_HANDLES} has no leader"))?],
            _ => vec!["gateway-1".into()],
        };
        let from = Instant::now();
        let (killed, restarted) = kill_and_wait(&cluster, &targets).await?;
        eprintln!("[fault] {fault}: killed {killed:?}, running again after {restarted:?}");
        tokio::time::sleep(profile.after_fault).await;
        if targets[0].starts_with("kez-n") {
            for s in [format!("KV_{BUCKET_HANDLES}"), format!("KV_{BUCKET_SIGCHAINS}")] {
                wait_current(&js, &s, replicas).await?;
            }
            wait_current(&inbox_js, kv_schemas::subjects::INBOX_STREAM, replicas).await?;
        }
        windows.push((from, Instant::now()));
        faults.push(FaultReport {
            fault: fault.to_owned(),
            killed,
            restarted_after_ms: restarted.as_millis() as u64,
            unavailable_ms: BTreeMap::new(),
        });
    }
    stop.store(true, Ordering::Relaxed);
    for w in writers {
        let _ = w.await;
    }

    let mut l = std::mem::take(&mut *lock(&log));
    for (f, (from, to)) in faults.iter_mut().zip(windows) {
        f.unavailable_ms = unavailability(&l.acks, from, to);
    }
    l.report.faults = faults;
    verify(&js, &inbox_js, &mut l).await?;
    cluster.stop();
    l.report.profile = profile.name.to_owned();
    l.report.seconds = started.elapsed().as_secs_f64();
    Ok(l.report)
}

/// The end-state checks, against the buckets and the stream.
async fn verify(js: &jetstream::Context, inbox_js: &jetstream::Context, l: &mut Log) -> Result<()> {
    let handles = js.get_key_value(BUCKET_HANDLES).await?;
    let keys = js.get_key_value(BUCKET_KEYS).await?;
    let chains = js.get_key_value(BUCKET_SIGCHAINS).await?;
    let report = &mut l.report;

    // Registrations: every acknowledged one is there, with its key record.
    for (local, key) in &l.registrations {
        let rec = handles.get(local).await?.and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok());
        if rec.as_ref().and_then(|r| r["key"].as_str()) != Some(key.to_string().as_str()) {
            report.lost.add(Kind::Registration, 1);
            report.problems.push(format!("acknowledged registration of {local} is missing or names another key"));
        }
    }
    // No handle without its key record (a half-applied registration would show here).
    let mut all = handles.keys().await?;
    while let Some(local) = all.next().await {
        let local = local?;
        let rec: serde_json::Value = serde_json::from_slice(&handles.get(&local).await?.unwrap_or_default())?;
        let hex = rec["key"].as_str().and_then(|k| k.strip_prefix("ed25519:")).unwrap_or_default().to_owned();
        let claim = keys.get(&hex).await?.and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok());
        if claim.as_ref().and_then(|c| c["local"].as_str()) != Some(local.as_str()) {
            report.problems.push(format!("handle {local} has no matching key record"));
        }
    }
    // Chains: acknowledged links at their seqnos, no gaps, no link twice.
    let mut seqnos: HashMap<String, Vec<u64>> = HashMap::new();
    let mut all = chains.keys().await?;
    while let Some(k) = all.next().await {
        let k = k?;
        if let Some((hex, n)) = k.split_once('.') {
            seqnos.entry(hex.to_owned()).or_default().push(n.parse().unwrap_or(0));
        }
    }
    for (hex, mut ns) in seqnos {
        ns.sort_unstable();
        if ns.iter().enumerate().any(|(i, n)| *n != i as u64 + 1) {
            report.problems.push(format!("chain {hex} has a gap: seqnos {ns:?}"));
        }
    }
    for (key, acked) in &l.links {
        for (seqno, link_id) in acked {
            let stored = chains.get(sigchain_kv_key(key, *seqno)).await?;
            if stored.and_then(|b| parse_link(&b).ok()).map(|link| link.link_id) != Some(link_id.clone()) {
                report.lost.add(Kind::Link, 1);
                report.problems.push(format!("acknowledged link {} #{seqno} is missing", key.hex()));
            }
        }
    }
    // Messages: read the whole stream (single-message gets cross the INBOX import).
    let mut stream = inbox_js.get_stream(kv_schemas::subjects::INBOX_STREAM).await?;
    let st = stream.info().await?.state.clone();
    let mut stored: HashMap<[u8; 32], u64> = HashMap::new();
    for seq in st.first_sequence..=st.last_sequence {
        if let Ok(m) = stream.get_raw_message(seq).await {
            *stored.entry(sha256(&m.payload)).or_default() += 1;
        }
    }
    report.duplicates = stored.values().filter(|n| **n > 1).map(|n| n - 1).sum();
    if report.duplicates > 0 {
        report.problems.push(format!("{} envelopes are stored more than once", report.duplicates));
    }
    for h in &l.messages {
        if !stored.contains_key(h) {
            report.lost.add(Kind::Message, 1);
        }
    }
    if report.lost.messages > 0 {
        report.problems.push(format!("{} acknowledged messages are missing", report.lost.messages));
    }
    for kind in Kind::ALL {
        let acked = match kind {
            Kind::Registration => report.acknowledged.registrations,
            Kind::Link => report.acknowledged.links,
            Kind::Message => report.acknowledged.messages,
        };
        if acked == 0 {
            report.problems.push(format!("no {} was acknowledged at all", kind.name()));
        }
    }
    Ok(())
}
