//! `kez-server up --cluster N`: a whole cluster on one machine, laid out as production runs it.
//!
//! - N nats-servers ([`crate::up::Broker`], each supervised), JetStream on, routes on loopback
//!   ports picked at start, one folder per node (`<data>/kez-n1`, …) for config, store, pid and
//!   log; accounts, users and the callout issuer come from the one shared `secrets.json`.
//! - every service, the auth-callout worker and the gateway as separate `kez-server run`
//!   processes (the production code path: `--nats-url a,b,c --replicas R`), `workers` copies of
//!   each service and the callout, one gateway. Each is a supervised child: restarted with
//!   backoff when it exits, stopped when `up` stops, SIGTERMed by the kernel when `up` dies.
//! - `<data>/cluster.json` says what runs where (pids, URLs, logs); it is rewritten whenever a
//!   child is (re)started, so fault-injection tools find their targets there.

use std::ffi::OsString;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use serde::Serialize;

use crate::up::{open_private_log, own_child, terminate, write_private};

/// File in the data folder describing the running cluster.
pub const STATE_FILE: &str = "cluster.json";
/// Folder in the data folder holding the workers' logs.
pub const LOG_DIR: &str = "logs";

const FIRST_BACKOFF: Duration = Duration::from_millis(250);
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// A worker that ran this long resets its backoff.
const STABLE_AFTER: Duration = Duration::from_secs(30);

/// One nats-server of the cluster, as written to [`STATE_FILE`].
#[derive(Debug, Clone, Serialize)]
pub struct NodeState {
    pub name: String,
    pub pid: Option<u32>,
    pub client_url: String,
    pub ws_url: String,
    pub monitor_url: String,
    pub route_url: String,
}

/// One supervised `kez-server run` child, as written to [`STATE_FILE`].
#[derive(Debug, Clone, Serialize)]
pub struct WorkerState {
    /// `<component>-<n>`, e.g. `registry-2`, `gateway-1`.
    pub name: String,
    /// The `--services` value it runs.
    pub component: String,
    pub pid: Option<u32>,
    pub restarts: u32,
    pub log: PathBuf,
}

/// What runs where.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ClusterState {
    /// The pid of `up` itself.
    pub up_pid: u32,
    pub replicas: usize,
    pub nats_urls: Vec<String>,
    pub gateway_url: String,
    pub nodes: Vec<NodeState>,
    pub workers: Vec<WorkerState>,
}

/// The state shared by the supervisors; every change is written to [`STATE_FILE`].
#[derive(Clone)]
pub struct StateFile {
    path: PathBuf,
    state: Arc<Mutex<ClusterState>>,
}

impl StateFile {
    /// A state file in `data_dir`.
    pub fn new(data_dir: &Path, state: ClusterState) -> Self {
        Self { path: data_dir.join(STATE_FILE), state: Arc::new(Mutex::new(state)) }
    }

    /// Applies `f` and rewrites the file.
    pub fn update(&self, f: impl FnOnce(&mut ClusterState)) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut state);
        let text = serde_json::to_vec_pretty(&*state).unwrap_or_default();
        if let Err(e) = write_private(&self.path, &text) {
            tracing::warn!("writing {}: {e:#}", self.path.display());
        }
    }

    /// A copy of the current state.
    pub fn snapshot(&self) -> ClusterState {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Removes the file (the cluster stopped).
    pub fn remove(&self) {
        let _ = fs::remove_file(&self.path);
    }
}

/// A supervised child process, restarted with backoff whenever it exits until [`Worker::stop`].
pub struct Worker {
    stop: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Worker {
    /// Starts `program args…` as worker number `index` of the state file, logging to `log`.
    pub fn spawn(program: PathBuf, args: Vec<OsString>, log: PathBuf, index: usize, state: StateFile) -> Self {
        let (stop, mut stopped) = tokio::sync::watch::channel(false);
        let task = tokio::spawn(async move {
            let mut failures = 0u32;
            loop {
                let child = open_private_log(&log).and_then(|out| {
                    let mut cmd = Command::new(&program);
                    cmd.args(&args).stdin(Stdio::null()).stdout(Stdio::from(out.try_clone()?)).stderr(Stdio::from(out));
                    own_child(&mut cmd);
                    cmd.spawn().with_context(|| format!("starting {}", program.display()))
                });
                let started = Instant::now();
                let mut child: Child = match child {
                    Ok(c) => c,
                    Err(e) => {
                        tracing::error!("worker {index}: {e:#}");
                        failures += 1;
                        if wait_or_stop(&mut stopped, backoff(failures)).await {
                            return;
                        }
                        continue;
                    }
                };
                let pid = child.id();
                state.update(|s| {
                    if let Some(w) = s.workers.get_mut(index) {
                        w.pid = Some(pid);
                    }
                });
                let status = loop {
                    if wait_or_stop(&mut stopped, Duration::from_millis(200)).await {
                        let _ = tokio::task::spawn_blocking(move || terminate(&mut child)).await;
                        return;
                    }
                    match child.try_wait() {
                        Ok(None) => {}
                        Ok(Some(status)) => break status.to_string(),
                        Err(e) => break format!("unknown status: {e}"),
                    }
                };
                if started.elapsed() >= STABLE_AFTER {
                    failures = 0;
                }
                failures += 1;
                let delay = backoff(failures);
                let name = state.snapshot().workers.get(index).map(|w| w.name.clone()).unwrap_or_default();
                tracing::warn!("{name} (pid {pid}) exited ({status}); restarting it in {:.2}s", delay.as_secs_f32());
                state.update(|s| {
                    if let Some(w) = s.workers.get_mut(index) {
                        w.pid = None;
                        w.restarts += 1;
                    }
                });
                if wait_or_stop(&mut stopped, delay).await {
                    return;
                }
            }
        });
        Self { stop, task }
    }

    /// Stops the child (SIGTERM, then SIGKILL after a grace period) and its supervisor.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

fn backoff(failures: u32) -> Duration {
    FIRST_BACKOFF.saturating_mul(1 << failures.saturating_sub(1).min(16)).min(MAX_BACKOFF)
}

/// Sleeps `d`; true if a stop was requested meanwhile (or the handle is gone).
async fn wait_or_stop(stopped: &mut tokio::sync::watch::Receiver<bool>, d: Duration) -> bool {
    if *stopped.borrow() {
        return true;
    }
    tokio::select! {
        r = stopped.changed() => r.is_err() || *stopped.borrow(),
        _ = tokio::time::sleep(d) => false,
    }
}

/// `GET http://addr/path` over plain HTTP/1.1; the status code, or `None` if nothing answered.
pub async fn http_status(addr: std::net::SocketAddr, path: &str) -> Option<u16> {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let attempt = async {
        let mut s = tokio::net::TcpStream::connect(addr).await.ok()?;
        let req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
        s.write_all(req.as_bytes()).await.ok()?;
        let mut head = vec![0u8; 64];
        let n = s.read(&mut head).await.ok()?;
        let text = String::from_utf8_lossy(&head[..n]);
        text.split_whitespace().nth(1)?.parse().ok()
    };
    tokio::time::timeout(Duration::from_secs(5), attempt).await.ok().flatten()
}
