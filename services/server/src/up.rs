//! `kez-server up`: the whole stack on one machine. A local nats-server with
//! JetStream on disk under the data folder, every service, the auth-callout
//! worker and the gateway with the web app; secrets are created once in the
//! data folder (0600) and reused, so a restart keeps every registration.
//!
//! `up` owns its broker:
//! - the nats-server child runs in its own process group and gets SIGTERM when
//!   `up` dies, however it dies (Linux parent-death signal), so a kill -9 of
//!   `up` leaves no orphan holding the ports and the store;
//! - a nats-server left over from an earlier run on the same data folder (found
//!   through `nats-server.pid` and `/proc`) is stopped before starting;
//! - a listener port held by anything else is an error naming the port;
//! - `up` only reports ready once its own child has announced the client port
//!   (nats-server's ports file is named after its pid) and JetStream answers;
//! - a child that exits is restarted with exponential backoff; after
//!   [`MAX_QUICK_FAILURES`] failures in a row [`Broker::failed`] resolves and
//!   `up` exits non-zero.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, anyhow, bail};
use kez_service_kit::natsconf;
use kez_service_kit::secrets::{Secrets, ServiceUser};
use kez_service_kit::stack::{Ports, find_nats_server, stack_spec};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// File names inside the data folder.
pub const CONF_FILE: &str = "nats.conf";
/// The pid of the running nats-server child, written at each (re)start.
pub const PID_FILE: &str = "nats-server.pid";
/// nats-server's own output.
pub const LOG_FILE: &str = "nats-server.log";

/// Restarts in a row, each failing within [`STABLE_AFTER`], before `up` gives up.
pub const MAX_QUICK_FAILURES: u32 = 5;
/// A child that ran at least this long resets the failure count and the backoff.
const STABLE_AFTER: Duration = Duration::from_secs(60);
const FIRST_BACKOFF: Duration = Duration::from_millis(500);
const MAX_BACKOFF: Duration = Duration::from_secs(30);
const READY_TIMEOUT: Duration = Duration::from_secs(30);
const STOP_GRACE: Duration = Duration::from_secs(10);
/// The monitoring listener has no authentication and lists every connection's
/// (user's) public key, so it never leaves loopback.
const MONITOR_HOST: &str = "127.0.0.1";

/// Where and how the local broker runs.
pub struct BrokerOptions {
    /// Data folder: secrets, nats.conf, JetStream store, logs.
    pub data_dir: PathBuf,
    /// Interface of the client and WebSocket listeners (monitoring is always loopback).
    pub host: String,
    /// Listener ports.
    pub ports: Ports,
    /// Origins allowed to open WebSockets (the gateway's).
    pub allowed_origins: Vec<String>,
    /// The nats-server binary (`--nats-server` / `NATS_SERVER_BIN`); `None` looks on `PATH`.
    pub nats_server: Option<PathBuf>,
    /// Set for one node of a local cluster (`up --cluster`): its name, its own folder inside
    /// the data folder (config, store, logs, pid) and its routes. `None`: a single node whose
    /// files sit directly in the data folder.
    pub node: Option<Node>,
}

/// One node of a local cluster.
#[derive(Debug, Clone)]
pub struct Node {
    /// `server_name`, unique in the cluster (JetStream places replicas by it).
    pub name: String,
    /// The `cluster {}` block: name, route listener, every node's route URL.
    pub cluster: natsconf::ClusterSpec,
}

impl BrokerOptions {
    /// Where this broker's config, store, pid and log live.
    fn node_dir(&self, data_dir: &Path) -> PathBuf {
        match &self.node {
            Some(n) => data_dir.join(&n.name),
            None => data_dir.to_owned(),
        }
    }
}

/// What [`prepare`] wrote.
pub struct Prepared {
    /// The stack's secrets (`secrets.json`, created on first use).
    pub secrets: Secrets,
    /// Absolute path of the rendered `nats.conf`.
    pub conf: PathBuf,
    /// Absolute path of the data folder.
    pub data_dir: PathBuf,
    /// Absolute path of the folder of this node's config, store, pid and log (the data folder
    /// itself for a single node).
    pub node_dir: PathBuf,
}

/// Creates the data folder (0700), the secrets (0600) and `nats.conf` (0600) without
/// starting anything. `up --init-only` stops here; the JetStream store directory in the
/// config is `<data_dir>/jetstream`, so render it where the broker will see that path
/// (inside the container, for a container deployment).
pub fn prepare(opts: &BrokerOptions) -> Result<Prepared> {
    let data_dir = create_private_dir(&opts.data_dir)?;
    let (secrets, _) = Secrets::load_or_create(&data_dir).context("loading the stack's secrets")?;
    let node_dir = create_private_dir(&opts.node_dir(&data_dir))?;
    let mut spec = stack_spec(
        &secrets,
        opts.node.as_ref().map_or("kez-local", |n| n.name.as_str()),
        &opts.host,
        opts.ports,
        &node_dir.join("jetstream"),
        opts.allowed_origins.clone(),
        &BTreeMap::new(),
    )
    .map_err(|e| anyhow!(e))?;
    spec.cluster = opts.node.as_ref().map(|n| n.cluster.clone());
    // Monitoring has no authentication and lists every connection's key: loopback whatever
    // `--http` or `--nats-host` say.
    spec.monitor_host = MONITOR_HOST.to_owned();
    spec.validate().context("the generated nats config is invalid")?;
    let conf = node_dir.join(CONF_FILE);
    write_private(&conf, natsconf::render(&spec).as_bytes())?;
    Ok(Prepared { secrets, conf, data_dir, node_dir })
}

/// A supervised nats-server child: restarted when it exits, stopped (SIGTERM, then
/// SIGKILL) on [`Broker::stop`] or drop.
pub struct Broker {
    shared: Arc<Shared>,
    supervisor: tokio::task::JoinHandle<anyhow::Error>,
    /// Client URL.
    pub client_url: String,
    /// WebSocket URL.
    pub ws_url: String,
    /// The secrets of the stack.
    pub secrets: Secrets,
}

/// State shared between the [`Broker`] handle and its supervisor task.
struct Shared {
    launcher: Launcher,
    state: Mutex<State>,
    stop: tokio::sync::Notify,
}

struct State {
    child: Option<Child>,
    started: Instant,
    stopping: bool,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves a consistent State (plain fields), so go on.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Broker {
    /// Stops any nats-server left over on this data folder, starts nats-server and waits
    /// until it is the one accepting clients and JetStream answers.
    pub async fn start(opts: &BrokerOptions) -> Result<Broker> {
        let bin = find_nats_server(opts.nats_server.as_deref()).map_err(|e| anyhow!(e))?;
        let data_dir = create_private_dir(&opts.data_dir)?;
        stop_leftovers(&opts.node_dir(&data_dir))?;
        let prepared = prepare(opts)?;
        let launcher = Launcher {
            bin,
            conf: prepared.conf,
            data_dir: prepared.node_dir,
            host: opts.host.clone(),
            ports: opts.ports,
            name: opts.node.as_ref().map_or_else(|| "kez-local".to_owned(), |n| n.name.clone()),
            client_url: format!("nats://{}:{}", opts.host, opts.ports.client),
            secrets: prepared.secrets.clone(),
        };
        let child = launcher.launch().await?.0.take();
        let shared = Arc::new(Shared {
            launcher,
            state: Mutex::new(State { child, started: Instant::now(), stopping: false }),
            stop: tokio::sync::Notify::new(),
        });
        let supervisor = tokio::spawn(supervise(shared.clone()));
        Ok(Broker {
            client_url: shared.launcher.client_url.clone(),
            ws_url: format!("ws://{}:{}", opts.host, opts.ports.websocket),
            secrets: prepared.secrets,
            shared,
            supervisor,
        })
    }

    /// Resolves only if the broker cannot be kept running (it kept exiting right after
    /// each restart); the error says why. Pending forever otherwise.
    pub async fn failed(&mut self) -> anyhow::Error {
        match (&mut self.supervisor).await {
            Ok(e) => e,
            Err(e) if e.is_cancelled() => std::future::pending().await,
            Err(e) => anyhow!("the nats-server supervisor crashed: {e}"),
        }
    }

    /// The node's `server_name`.
    pub fn name(&self) -> String {
        self.shared.launcher.name.clone()
    }

    /// The node's listener ports.
    pub fn ports(&self) -> Ports {
        self.shared.launcher.ports
    }

    /// Whether the supervisor gave up on this node ([`Broker::failed`] would resolve).
    pub fn has_failed(&self) -> bool {
        self.supervisor.is_finished()
    }

    /// Pid of the current nats-server child, if one runs.
    pub fn pid(&self) -> Option<u32> {
        self.shared.lock().child.as_ref().map(Child::id)
    }

    /// Connects as one of the stack's service users.
    pub async fn connect(&self, user: ServiceUser) -> Result<async_nats::Client> {
        connect_nkey(&self.client_url, self.secrets.service(user), &format!("kez-{}", user.name())).await
    }

    /// Connects as the auth-callout worker (account AUTH).
    pub async fn connect_worker(&self) -> Result<async_nats::Client> {
        connect_nkey(&self.client_url, self.secrets.callout_worker(), "kez-auth-callout-worker").await
    }

    /// Stops the server gracefully (SIGTERM), killing it after a grace period. No restart
    /// follows.
    pub fn stop(&mut self) {
        let child = {
            let mut state = self.shared.lock();
            state.stopping = true;
            state.child.take()
        };
        self.shared.stop.notify_one();
        self.supervisor.abort();
        if let Some(mut child) = child {
            terminate(&mut child);
        }
        let _ = fs::remove_file(self.shared.launcher.data_dir.join(PID_FILE));
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.stop();
    }
}

/// What the supervisor saw on one look at the child.
enum Seen {
    Stopping,
    Running,
    Exited(String, Duration),
}

/// Watches the child; restarts it with exponential backoff when it exits.
async fn supervise(shared: Arc<Shared>) -> anyhow::Error {
    let mut failures = 0u32;
    loop {
        let (status, ran) = loop {
            tokio::select! {
                _ = shared.stop.notified() => {}
                _ = tokio::time::sleep(Duration::from_millis(250)) => {}
            }
            match look(&shared) {
                Seen::Stopping => return std::future::pending().await,
                Seen::Running => {}
                Seen::Exited(status, ran) => break (status, ran),
            }
        };
        if ran >= STABLE_AFTER {
            failures = 0;
        }
        let mut why = format!("nats-server exited unexpectedly ({status}) after {}s", ran.as_secs());
        loop {
            failures += 1;
            if failures > MAX_QUICK_FAILURES {
                let log = shared.launcher.data_dir.join(LOG_FILE);
                let msg = format!(
                    "giving up on nats-server: it failed {MAX_QUICK_FAILURES} times in a row, each within {}s of \
                     starting (last: {why}). Last log lines ({}):\n{}",
                    STABLE_AFTER.as_secs(),
                    log.display(),
                    log_tail(&log, 20)
                );
                return anyhow!(msg);
            }
            let delay = FIRST_BACKOFF.saturating_mul(1 << (failures - 1).min(16)).min(MAX_BACKOFF);
            tracing::warn!(
                "{why}; restarting it in {:.1}s (attempt {failures} of {MAX_QUICK_FAILURES})",
                delay.as_secs_f32()
            );
            tokio::select! {
                _ = shared.stop.notified() => {}
                _ = tokio::time::sleep(delay) => {}
            }
            if shared.lock().stopping {
                return std::future::pending().await;
            }
            match shared.launcher.launch().await {
                Ok(mut spawned) => {
                    let pid = spawned.0.as_ref().map_or(0, Child::id);
                    let installed = {
                        let mut state = shared.lock();
                        if !state.stopping {
                            state.child = spawned.0.take();
                            state.started = Instant::now();
                        }
                        !state.stopping
                    };
                    if !installed {
                        // Dropping `spawned` stops the new child.
                        return std::future::pending().await;
                    }
                    tracing::info!("nats-server restarted (pid {pid}) and ready");
                    break;
                }
                Err(e) => why = format!("restarting nats-server failed: {e:#}"),
            }
        }
    }
}

fn look(shared: &Shared) -> Seen {
    let mut state = shared.lock();
    if state.stopping {
        return Seen::Stopping;
    }
    let started = state.started;
    let Some(child) = state.child.as_mut() else { return Seen::Running };
    match child.try_wait() {
        Ok(None) => Seen::Running,
        Ok(Some(status)) => {
            state.child = None;
            Seen::Exited(status.to_string(), started.elapsed())
        }
        Err(e) => {
            state.child = None;
            Seen::Exited(format!("unknown status: {e}"), started.elapsed())
        }
    }
}

/// A child being started: stopped if dropped before it is handed over (start-up failed, or
/// the supervisor was cancelled mid-launch).
struct Spawned(Option<Child>);

impl Drop for Spawned {
    fn drop(&mut self) {
        if let Some(child) = self.0.as_mut() {
            terminate(child);
        }
    }
}

/// Everything needed to start one nats-server child.
struct Launcher {
    bin: PathBuf,
    conf: PathBuf,
    data_dir: PathBuf,
    host: String,
    ports: Ports,
    name: String,
    client_url: String,
    secrets: Secrets,
}

impl Launcher {
    /// Starts nats-server and waits until it is ready; kills it again if it is not.
    async fn launch(&self) -> Result<Spawned> {
        self.check_ports_free()?;
        remove_ports_files(&self.data_dir);
        let log_path = self.data_dir.join(LOG_FILE);
        let log = open_private_log(&log_path)?;
        let mut cmd = Command::new(&self.bin);
        cmd.arg("-c")
            .arg(&self.conf)
            // nats-server writes <name>_<pid>.ports once it listens: proof that the port we
            // talk to belongs to this child and not to some other process.
            .arg("--ports_file_dir")
            .arg(&self.data_dir)
            .stdin(Stdio::null())
            .stdout(Stdio::from(log.try_clone()?))
            .stderr(Stdio::from(log));
        own_child(&mut cmd);
        let child = cmd.spawn().with_context(|| format!("starting {}", self.bin.display()))?;
        let mut spawned = Spawned(Some(child));
        let Some(child) = spawned.0.as_mut() else { bail!("the nats-server child vanished") };
        let result = async {
            write_private(&self.data_dir.join(PID_FILE), format!("{}\n", child.id()).as_bytes())?;
            self.wait_ready(child, &log_path).await
        }
        .await;
        match result {
            Ok(()) => Ok(spawned),
            Err(e) => {
                drop(spawned);
                let _ = fs::remove_file(self.data_dir.join(PID_FILE));
                Err(e)
            }
        }
    }

    fn check_ports_free(&self) -> Result<()> {
        let listeners = [
            (self.host.as_str(), self.ports.client, "NATS client", "--nats-port"),
            (self.host.as_str(), self.ports.websocket, "NATS WebSocket", "--ws-port"),
            (MONITOR_HOST, self.ports.monitor, "NATS monitoring", "--monitor-port"),
        ];
        for (host, port, what, option) in listeners {
            if let Err(e) = std::net::TcpListener::bind((host, port)) {
                bail!(
                    "the {what} port {host}:{port} is already in use by another process ({e}), not by a \
                     nats-server of this data folder; stop that process (e.g. `ss -ltnp 'sport = :{port}'` shows \
                     it) or choose another port with {option}"
                );
            }
        }
        Ok(())
    }

    async fn wait_ready(&self, child: &mut Child, log_path: &Path) -> Result<()> {
        let deadline = Instant::now() + READY_TIMEOUT;
        let pid = child.id();
        loop {
            if let Some(status) = child.try_wait()? {
                bail!(
                    "nats-server exited at start-up ({status}). Last log lines ({}):\n{}",
                    log_path.display(),
                    log_tail(log_path, 20)
                );
            }
            if self.child_listens(pid) {
                // JetStream is ready once a service user can reach its API.
                if let Ok(client) =
                    connect_nkey(&self.client_url, self.secrets.service(ServiceUser::Ops), "kez-ops").await
                    && async_nats::jetstream::new(client).query_account().await.is_ok()
                {
                    return Ok(());
                }
            }
            if Instant::now() > deadline {
                bail!("nats-server did not become ready in {READY_TIMEOUT:?}; see {}", log_path.display());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Whether the ports file of `pid` lists our client port.
    fn child_listens(&self, pid: u32) -> bool {
        let name = self.bin.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let Ok(text) = fs::read_to_string(self.data_dir.join(format!("{name}_{pid}.ports"))) else {
            return false;
        };
        let Ok(ports) = serde_json::from_str::<serde_json::Value>(&text) else { return false };
        let suffix = format!(":{}", self.ports.client);
        ports["nats"]
            .as_array()
            .is_some_and(|urls| urls.iter().any(|u| u.as_str().is_some_and(|u| u.ends_with(&suffix))))
    }
}

/// Makes the child die with us and keeps it out of the terminal's process group.
#[allow(unsafe_code)] // the crate's single exception, see Cargo.toml
pub(crate) fn own_child(cmd: &mut Command) {
    use std::os::unix::process::CommandExt as _;
    // Own group: a Ctrl-C in the terminal reaches `up` only, which stops the services
    // before the broker instead of both racing.
    cmd.process_group(0);
    #[cfg(target_os = "linux")]
    {
        let parent = std::process::id();
        // SAFETY: runs between fork and exec; prctl and getppid are async-signal-safe
        // system calls and nothing here allocates.
        unsafe {
            cmd.pre_exec(move || {
                // SIGTERM, not SIGKILL: JetStream flushes and closes its store cleanly.
                // The signal fires when the *thread* that forked exits: `up` forks from the
                // main thread or a runtime worker, which live as long as the process.
                nix::sys::prctl::set_pdeathsig(Signal::SIGTERM)?;
                // The parent may have died before prctl took effect.
                if nix::unistd::getppid().as_raw() as u32 != parent {
                    return Err(std::io::Error::from_raw_os_error(nix::libc::ESRCH));
                }
                Ok(())
            });
        }
    }
}

/// SIGTERM, then SIGKILL after [`STOP_GRACE`]; reaps the child.
pub(crate) fn terminate(child: &mut Child) {
    if let Ok(pid) = i32::try_from(child.id()) {
        let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
    }
    let deadline = Instant::now() + STOP_GRACE;
    while Instant::now() < deadline {
        if matches!(child.try_wait(), Ok(Some(_))) {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// Finds nats-servers started on this data folder's `nats.conf` whose `up` is gone (the
/// pid file, then every process in `/proc`) and stops them.
fn stop_leftovers(data_dir: &Path) -> Result<()> {
    let conf = data_dir.join(CONF_FILE);
    let Ok(conf) = conf.canonicalize() else { return Ok(()) };
    let mut pids: Vec<i32> =
        fs::read_to_string(data_dir.join(PID_FILE)).ok().and_then(|s| s.trim().parse().ok()).into_iter().collect();
    if let Ok(entries) = fs::read_dir("/proc") {
        pids.extend(entries.flatten().filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok()));
    }
    pids.sort_unstable();
    pids.dedup();
    let me = std::process::id() as i32;
    for pid in pids.into_iter().filter(|p| *p != me && runs_conf(*p, &conf)) {
        if let Some(owner) = live_kez_parent(pid) {
            bail!(
                "another kez-server (pid {owner}) is running a nats-server (pid {pid}) on {}; stop it first \
                 (two stacks cannot share a data folder)",
                data_dir.display()
            );
        }
        tracing::warn!("stopping a nats-server left over from an earlier run (pid {pid})");
        stop_pid(pid).with_context(|| format!("stopping the left-over nats-server (pid {pid})"))?;
    }
    let _ = fs::remove_file(data_dir.join(PID_FILE));
    Ok(())
}

/// Whether process `pid` is a nats-server started with `conf` (canonical path).
fn runs_conf(pid: i32, conf: &Path) -> bool {
    let Ok(raw) = fs::read(format!("/proc/{pid}/cmdline")) else { return false };
    let args: Vec<String> =
        raw.split(|b| *b == 0).filter(|a| !a.is_empty()).map(|a| String::from_utf8_lossy(a).into_owned()).collect();
    let Some(exe) = args.first() else { return false };
    if !Path::new(exe).file_name().is_some_and(|n| n.to_string_lossy().contains("nats-server")) {
        return false;
    }
    let cwd = fs::read_link(format!("/proc/{pid}/cwd")).unwrap_or_default();
    let mut it = args.iter().skip(1);
    while let Some(arg) = it.next() {
        let path = match arg.as_str() {
            "-c" | "--config" | "-config" => it.next().cloned(),
            a => a.strip_prefix("--config=").or_else(|| a.strip_prefix("-c=")).map(str::to_owned),
        };
        if let Some(p) = path
            && cwd.join(p).canonicalize().is_ok_and(|p| p == conf)
        {
            return true;
        }
    }
    false
}

/// The pid of `pid`'s parent if that parent is a live kez-server (so `pid` is no orphan).
fn live_kez_parent(pid: i32) -> Option<i32> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the parenthesised command: state, ppid, …
    let ppid: i32 = stat.rsplit_once(')')?.1.split_whitespace().nth(1)?.parse().ok()?;
    let cmdline = fs::read(format!("/proc/{ppid}/cmdline")).ok()?;
    let exe = cmdline.split(|b| *b == 0).next()?;
    Path::new(&*String::from_utf8_lossy(exe)).file_name()?.to_string_lossy().contains("kez-server").then_some(ppid)
}

/// Whether `pid` is gone (or a zombie waiting for its parent, which no longer runs it).
fn is_gone(pid: i32) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().next()) == Some("Z"),
    }
}

fn stop_pid(pid: i32) -> Result<()> {
    let target = Pid::from_raw(pid);
    kill(target, Signal::SIGTERM).context("sending SIGTERM")?;
    let wait = |limit: Duration| {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if is_gone(pid) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    };
    if wait(STOP_GRACE) {
        return Ok(());
    }
    tracing::warn!("nats-server (pid {pid}) ignored SIGTERM for {STOP_GRACE:?}; killing it");
    let _ = kill(target, Signal::SIGKILL);
    if wait(Duration::from_secs(5)) { Ok(()) } else { bail!("pid {pid} is still running after SIGKILL") }
}

/// Ports files of earlier children (a killed nats-server leaves its file behind).
fn remove_ports_files(data_dir: &Path) {
    let Ok(entries) = fs::read_dir(data_dir) else { return };
    for e in entries.flatten() {
        if e.file_name().to_string_lossy().ends_with(".ports") {
            let _ = fs::remove_file(e.path());
        }
    }
}

/// Creates `dir` with mode 0700 (it holds secrets), tightens an existing one, and returns
/// its absolute path (nats-server and `/proc` comparisons need absolute paths).
pub(crate) fn create_private_dir(dir: &Path) -> Result<PathBuf> {
    use std::os::unix::fs::PermissionsExt as _;
    kez_private_file::create_dir(dir).with_context(|| format!("creating the data folder {}", dir.display()))?;
    let meta = fs::metadata(dir).with_context(|| format!("reading {}", dir.display()))?;
    if meta.permissions().mode() & 0o077 != 0 {
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
            .with_context(|| format!("{} is readable by other users; run `chmod 700 {0}`", dir.display()))?;
        tracing::warn!("{} was readable by other users; set it to 0700 (it holds the stack's secrets)", dir.display());
    }
    dir.canonicalize().with_context(|| format!("resolving {}", dir.display()))
}

/// Opens the append-only log with mode 0600 (it names users' keys), tightening an old one.
pub(crate) fn open_private_log(path: &Path) -> Result<fs::File> {
    use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
    let log = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("opening {}", path.display()))?;
    log.set_permissions(fs::Permissions::from_mode(0o600)).with_context(|| format!("chmod 600 {}", path.display()))?;
    Ok(log)
}

fn log_tail(path: &Path, lines: usize) -> String {
    let text = fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Creates a private (0700) folder and returns its absolute path.
pub fn create_data_dir(dir: &Path) -> Result<PathBuf> {
    create_private_dir(dir)
}

/// Connects to `url` as the nkey user `key`. `url` may be a comma-separated list (the nodes
/// of a cluster): the client picks one and fails over to the others, including the ones the
/// cluster announces.
pub async fn connect_nkey(url: &str, key: &nkeys::KeyPair, name: &str) -> Result<async_nats::Client> {
    let seed = key.seed().map_err(|e| anyhow!("service key has no seed: {e}"))?;
    async_nats::ConnectOptions::with_nkey(seed)
        .name(name)
        .connection_timeout(Duration::from_secs(5))
        .connect(split_urls(url))
        .await
        .with_context(|| format!("connecting to {url} as {name}"))
}

/// Replaces `path` atomically with a 0600 file (`kez_private_file::write`).
pub(crate) fn write_private(path: &Path, contents: &[u8]) -> Result<()> {
    kez_private_file::write(path, contents).with_context(|| format!("writing {}", path.display()))
}

/// The URLs of a comma-separated list (async-nats parses a plain string as one URL).
pub fn split_urls(urls: &str) -> Vec<String> {
    urls.split(',').map(str::trim).filter(|u| !u.is_empty()).map(str::to_owned).collect()
}
