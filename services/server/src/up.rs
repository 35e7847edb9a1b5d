//! `kez-server up`: the whole stack on one machine. A local nats-server with
//! JetStream on disk under the data folder, every service, the auth-callout
//! worker and the gateway with the web app; secrets are created once in the
//! data folder (0600) and reused, so a restart keeps every registration.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, anyhow, bail};
use kez_service_kit::natsconf;
use kez_service_kit::secrets::{Secrets, ServiceUser};
use kez_service_kit::stack::{Ports, find_nats_server, stack_spec};

/// A nats-server child process that is stopped (SIGTERM, then SIGKILL) on drop.
pub struct Broker {
    child: Child,
    log_path: PathBuf,
    /// Client URL on loopback.
    pub client_url: String,
    /// WebSocket URL on loopback.
    pub ws_url: String,
    /// The secrets of the stack.
    pub secrets: Secrets,
}

/// Where and how the local broker runs.
pub struct BrokerOptions {
    /// Data folder: secrets, nats.conf, JetStream store, logs.
    pub data_dir: PathBuf,
    /// Listen address.
    pub host: String,
    /// Listener ports.
    pub ports: Ports,
    /// Origins allowed to open WebSockets (the gateway's).
    pub allowed_origins: Vec<String>,
    /// The repository root, to find `.venv/bin/nats-server`.
    pub root: PathBuf,
}

impl Broker {
    /// Starts nats-server and waits until it accepts clients.
    pub async fn start(opts: &BrokerOptions) -> Result<Broker> {
        let bin = find_nats_server(&opts.root).map_err(|e| anyhow!(e))?;
        fs::create_dir_all(&opts.data_dir).with_context(|| format!("creating {}", opts.data_dir.display()))?;
        let (secrets, _) = Secrets::load_or_create(&opts.data_dir).context("loading the stack's secrets")?;
        let spec = stack_spec(
            &secrets,
            "kez-local",
            &opts.host,
            opts.ports,
            &opts.data_dir.join("jetstream"),
            opts.allowed_origins.clone(),
            &BTreeMap::new(),
        )
        .map_err(|e| anyhow!(e))?;
        spec.validate().context("the generated nats config is invalid")?;
        let conf = opts.data_dir.join("nats.conf");
        write_private(&conf, natsconf::render(&spec).as_bytes())?;
        let log_path = opts.data_dir.join("nats-server.log");
        let log = fs::OpenOptions::new().create(true).append(true).open(&log_path)?;
        let child = Command::new(&bin)
            .arg("-c")
            .arg(&conf)
            .stdin(Stdio::null())
            .stdout(Stdio::from(log.try_clone()?))
            .stderr(Stdio::from(log))
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        let mut broker = Broker {
            child,
            log_path,
            client_url: format!("nats://{}:{}", opts.host, opts.ports.client),
            ws_url: format!("ws://{}:{}", opts.host, opts.ports.websocket),
            secrets,
        };
        broker.wait_ready(&opts.host, opts.ports.client, Duration::from_secs(30)).await?;
        Ok(broker)
    }

    async fn wait_ready(&mut self, host: &str, port: u16, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait()? {
                bail!(
                    "nats-server exited at start-up ({status}). Last log lines ({}):\n{}",
                    self.log_path.display(),
                    self.log_tail(20)
                );
            }
            if tokio::net::TcpStream::connect((host, port)).await.is_ok() {
                // JetStream is ready once an APP user can reach its API.
                if let Ok(client) = self.connect(ServiceUser::Ops).await
                    && async_nats::jetstream::new(client).query_account().await.is_ok()
                {
                    return Ok(());
                }
            }
            if Instant::now() > deadline {
                bail!("nats-server did not become ready in {timeout:?}; see {}", self.log_path.display());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Connects as one of the stack's service users.
    pub async fn connect(&self, user: ServiceUser) -> Result<async_nats::Client> {
        connect_nkey(&self.client_url, self.secrets.service(user), &format!("kez-{}", user.name())).await
    }

    /// Connects as the auth-callout worker (account AUTH).
    pub async fn connect_worker(&self) -> Result<async_nats::Client> {
        connect_nkey(&self.client_url, self.secrets.callout_worker(), "kez-auth-callout-worker").await
    }

    fn log_tail(&self, lines: usize) -> String {
        let text = fs::read_to_string(&self.log_path).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// Stops the server gracefully (SIGTERM), killing it after a grace period.
    pub fn stop(&mut self) {
        use nix::sys::signal::{Signal, kill};
        use nix::unistd::Pid;
        if let Ok(pid) = i32::try_from(self.child.id()) {
            let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Connects to `url` as the nkey user `key`.
pub async fn connect_nkey(url: &str, key: &nkeys::KeyPair, name: &str) -> Result<async_nats::Client> {
    let seed = key.seed().map_err(|e| anyhow!("service key has no seed: {e}"))?;
    async_nats::ConnectOptions::with_nkey(seed)
        .name(name)
        .connection_timeout(Duration::from_secs(5))
        .connect(url)
        .await
        .with_context(|| format!("connecting to {url} as {name}"))
}

fn write_private(path: &Path, contents: &[u8]) -> Result<()> {
    use std::os::unix::fs::OpenOptionsExt as _;
    let tmp = path.with_extension("tmp");
    let _ = fs::remove_file(&tmp);
    let mut f = fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&tmp)?;
    f.write_all(contents)?;
    f.sync_all()?;
    fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))
}
