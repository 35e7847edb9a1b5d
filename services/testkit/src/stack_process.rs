//! [`StackProcess`]: the real `kez-server up` binary on free loopback ports, as users and
//! operators run it. Every test that launches the binary goes through here (the server's
//! own `up` tests, the CLI's end-to-end tests); [`crate::NatsServer`] plus the services
//! started in-process is the other way to get a stack.

use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, anyhow, bail};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// How long `up` may take to print that it is ready (a loaded 2-core CI box).
const DEFAULT_STARTUP_TIMEOUT: Duration = Duration::from_secs(90);
/// How long a SIGTERM'd stack may take to stop before it is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);
/// Starts retried when nobody chose the ports (one may be taken between choosing and binding).
const START_ATTEMPTS: u32 = 3;

/// The kez-server binary next to `exe_dir`'s binaries: `$KEZ_SERVER_BIN`, else
/// `<exe_dir>/kez-server`. Cargo cannot build another package's binary for a test; `cargo
/// build -p kez-server` (or `cargo test --workspace`, as `./kez test` does) must have run.
pub fn kez_server_bin(exe_dir: &Path) -> Result<PathBuf> {
    if let Some(b) = std::env::var_os("KEZ_SERVER_BIN").filter(|b| !b.is_empty()) {
        return Ok(PathBuf::from(b));
    }
    let bin = exe_dir.join("kez-server");
    if !bin.is_file() {
        bail!("{} is missing: run `cargo build -p kez-server` first (./kez test does)", bin.display());
    }
    Ok(bin)
}

/// How to run `kez-server up`.
#[derive(Debug, Clone)]
pub struct StackOptions {
    bin: PathBuf,
    data_dir: PathBuf,
    domain: String,
    ports: Option<[u16; 4]>,
    args: Vec<String>,
    rust_log: String,
    startup_timeout: Duration,
}

impl StackOptions {
    /// `bin up --domain kez.test --data-dir <data_dir>` on free loopback ports.
    pub fn new(bin: impl Into<PathBuf>, data_dir: impl Into<PathBuf>) -> Self {
        Self {
            bin: bin.into(),
            data_dir: data_dir.into(),
            domain: "kez.test".into(),
            ports: None,
            args: Vec::new(),
            rust_log: "info,async_nats=warn".into(),
            startup_timeout: DEFAULT_STARTUP_TIMEOUT,
        }
    }

    /// The home domain.
    pub fn domain(mut self, domain: &str) -> Self {
        self.domain = domain.into();
        self
    }

    /// Fixed ports `[http, nats, websocket, monitoring]` (a restart on the same ports).
    pub fn ports(mut self, ports: [u16; 4]) -> Self {
        self.ports = Some(ports);
        self
    }

    /// One more argument of `up`.
    pub fn arg(mut self, arg: &str) -> Self {
        self.args.push(arg.into());
        self
    }

    /// `RUST_LOG` of the server.
    pub fn rust_log(mut self, filter: &str) -> Self {
        self.rust_log = filter.into();
        self
    }

    /// The `up` command on the fixed [`ports`](Self::ports), for runs that are not meant to
    /// come up (`--init-only`, expected failures).
    pub fn command(&self) -> Result<Command> {
        self.command_on(self.ports.context("StackOptions::command needs fixed ports")?)
    }

    fn command_on(&self, ports: [u16; 4]) -> Result<Command> {
        let mut cmd = Command::new(&self.bin);
        cmd.args(["up", "--domain", &self.domain])
            .arg("--data-dir")
            .arg(&self.data_dir)
            .args(["--http", &format!("127.0.0.1:{}", ports[0])])
            .args(["--nats-port", &ports[1].to_string()])
            .args(["--ws-port", &ports[2].to_string()])
            .args(["--monitor-port", &ports[3].to_string()])
            .args(&self.args)
            .env("NATS_SERVER_BIN", crate::nats_server_bin()?)
            .env("RUST_LOG", &self.rust_log)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        Ok(cmd)
    }
}

/// A running `kez-server up`. Dropping it stops it (SIGTERM, then SIGKILL after 10 s).
pub struct StackProcess {
    child: Child,
    http: String,
    nats_url: String,
    data_dir: PathBuf,
    ports: [u16; 4],
    stderr: Arc<Mutex<String>>,
}

impl StackProcess {
    /// Starts `up` and waits until it says it is ready ("Press Ctrl-C"), with the URLs it
    /// printed. Fails with the server's stderr when it does not come up.
    pub fn start(opts: &StackOptions) -> Result<StackProcess> {
        let attempts = if opts.ports.is_some() { 1 } else { START_ATTEMPTS };
        let mut last = anyhow!("kez-server up was not started");
        for _ in 0..attempts {
            let ports = match opts.ports {
                Some(p) => p,
                None => crate::free_ports::<4>()?,
            };
            match Self::start_once(opts, ports) {
                Ok(stack) => return Ok(stack),
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    fn start_once(opts: &StackOptions, ports: [u16; 4]) -> Result<StackProcess> {
        let mut child = opts.command_on(ports)?.spawn().with_context(|| format!("spawning {}", opts.bin.display()))?;
        let (stderr, stderr_done) = collect(child.stderr.take().context("stderr")?);
        let stdout = child.stdout.take().context("stdout")?;
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let (mut http, mut nats) = (None, None);
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                println!("[kez-server] {line}");
                if let Some(url) = line.trim().strip_prefix("web app and /v1 API:") {
                    http = Some(url.trim().trim_end_matches('/').to_string());
                }
                if let Some(url) = line.trim().strip_prefix("NATS (native):") {
                    nats = Some(url.trim().to_string());
                }
                if line.starts_with("Press Ctrl-C") {
                    let _ = tx.send((http.take(), nats.take()));
                }
            }
            // Keep nothing back: the server never blocks on a full pipe, and a closed
            // channel tells the waiter the process is gone.
        });
        let ready = rx.recv_timeout(opts.startup_timeout);
        let mut stack = StackProcess {
            child,
            http: String::new(),
            nats_url: String::new(),
            data_dir: opts.data_dir.clone(),
            ports,
            stderr,
        };
        match ready {
            Ok((Some(http), Some(nats))) => {
                stack.http = http;
                stack.nats_url = nats;
                Ok(stack)
            }
            _ => {
                let _ = stack.child.kill();
                let _ = stack.child.wait();
                // Let the reader reach the end of what the process wrote (bounded: a grandchild
                // could hold the pipe open).
                let deadline = Instant::now() + Duration::from_secs(5);
                while !stderr_done.is_finished() && Instant::now() < deadline {
                    std::thread::sleep(Duration::from_millis(20));
                }
                bail!("kez-server up did not come up; stderr:\n{}", stack.stderr())
            }
        }
    }

    /// Base URL of the web app and `/v1` (no trailing slash).
    pub fn http(&self) -> &str {
        &self.http
    }

    /// The native NATS URL.
    pub fn nats_url(&self) -> &str {
        &self.nats_url
    }

    /// The data folder.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// `[http, nats, websocket, monitoring]`.
    pub fn ports(&self) -> [u16; 4] {
        self.ports
    }

    /// The server's process id.
    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// The process, for `try_wait` / `wait` after a test killed it.
    pub fn child_mut(&mut self) -> &mut Child {
        &mut self.child
    }

    /// Everything the server wrote to stderr so far.
    pub fn stderr(&self) -> String {
        self.stderr.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// Waits until stderr contains `needle` (logs lag behind stdout).
    pub fn wait_for_log(&self, needle: &str, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        while !self.stderr().contains(needle) {
            if Instant::now() > deadline {
                bail!("expected {needle:?} in the server's stderr:\n{}", self.stderr());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(())
    }

    /// SIGTERM and wait: how an operator stops it. Returns the exit status.
    pub fn stop(mut self) -> Result<ExitStatus> {
        kill(Pid::from_raw(self.pid()), Signal::SIGTERM).context("SIGTERM to kez-server")?;
        self.child.wait().context("waiting for kez-server")
    }

    /// [`StackProcess::stop`], then everything the server wrote to stderr, its shutdown included.
    pub fn stop_with_stderr(mut self) -> Result<String> {
        kill(Pid::from_raw(self.pid()), Signal::SIGTERM).context("SIGTERM to kez-server")?;
        self.child.wait().context("waiting for kez-server")?;
        // The reader thread drains the pipe to its end; wait until the text stops growing
        // (bounded: a grandchild could hold the pipe open).
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut seen = usize::MAX;
        while self.stderr().len() != seen && Instant::now() < deadline {
            seen = self.stderr().len();
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(self.stderr())
    }

    /// A NATS client as the stack's operator (full `APP` permissions).
    pub async fn ops_client(&self) -> Result<async_nats::Client> {
        let (secrets, _) = kez_service_kit::secrets::Secrets::load_or_create(&self.data_dir)?;
        let seed = secrets.ops().seed().map_err(|e| anyhow!("ops seed: {e}"))?;
        async_nats::ConnectOptions::with_nkey(seed)
            .connection_timeout(Duration::from_secs(5))
            .connect(&self.nats_url)
            .await
            .with_context(|| format!("connecting to {} as ops", self.nats_url))
    }
}

impl Drop for StackProcess {
    fn drop(&mut self) {
        if let Ok(Some(_)) = self.child.try_wait() {
            return;
        }
        let _ = kill(Pid::from_raw(self.pid()), Signal::SIGTERM);
        let deadline = Instant::now() + STOP_TIMEOUT;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Collects a child's stream in the background and echoes it (shown for failing tests).
fn collect(stream: impl std::io::Read + Send + 'static) -> (Arc<Mutex<String>>, std::thread::JoinHandle<()>) {
    let text = Arc::new(Mutex::new(String::new()));
    let sink = text.clone();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stream).lines().map_while(Result::ok) {
            eprintln!("[kez-server] {line}");
            if let Ok(mut t) = sink.lock() {
                t.push_str(&line);
                t.push('\n');
            }
        }
    });
    (text, reader)
}
