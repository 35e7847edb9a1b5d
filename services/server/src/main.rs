//! `kez-server`: run kez-chat's services, its gateway, or the whole stack.
//!
//! ```text
//! kez-server up                       # everything on this machine, data in ./.kez
//! kez-server run --services registry,sigchain --nats-url nats://broker:4222 --data-dir /etc/kez
//! ```

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context as _, Result, anyhow};
use clap::{Args, Parser, Subcommand};
use kez_gateway::{Gateway, GatewayConfig};
use kez_server::ServiceKind;
use kez_server::up::{Broker, BrokerOptions, connect_nkey};
use kez_service_kit::kv::Replication;
use kez_service_kit::secrets::{Secrets, ServiceUser};
use kez_service_kit::settings::Settings;
use kez_service_kit::stack::Ports;

/// Prints a line to stdout; a closed stdout (a pipe whose reader left) is not an error.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

#[derive(Parser)]
#[command(name = "kez-server", version, about = "kez-chat server: micro-services, gateway and the local stack")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Bring the whole stack up on this machine: nats-server (JetStream on disk,
    /// WebSocket on), every service, the auth-callout worker and the gateway with
    /// the web app. Data and generated secrets live in --data-dir and are reused.
    ///
    /// nats-server is a supervised child: it stops when `up` stops or dies, is
    /// restarted with backoff if it exits, and a nats-server left over on the same
    /// data folder is stopped first. Its monitoring port stays on 127.0.0.1.
    ///
    /// With --init-only, only write secrets.json and nats.conf into --data-dir and
    /// exit: the one-time setup of a deployment that runs nats-server and
    /// `kez-server run` itself (deploy/README.md).
    ///
    /// Example: kez-server up --http 127.0.0.1:8080
    Up(UpArgs),
    /// Run some services and/or the gateway against an existing NATS deployment
    /// (one process per service, or several of one kind: they share queue groups).
    ///
    /// Example: kez-server run --services registry,webfinger --nats-url nats://10.0.0.5:4222 --data-dir /etc/kez
    Run(RunArgs),
}

#[derive(Args)]
struct Common {
    /// Home domain: handles are local@DOMAIN.
    #[arg(long, env = "KEZ_DOMAIN", default_value = "kez.lat")]
    domain: String,
    /// Folder holding secrets.json (service nkeys, callout issuer key); for `up`
    /// also the nats config, JetStream store and logs.
    #[arg(long, env = "KEZ_DATA_DIR", default_value = ".kez")]
    data_dir: PathBuf,
    /// KV/stream replicas (1 on one broker, 3 in a cluster).
    #[arg(long, env = "KEZ_REPLICAS", default_value_t = 1)]
    replicas: usize,
}

#[derive(Args)]
struct UpArgs {
    #[command(flatten)]
    common: Common,
    /// Gateway HTTP listen address (the web app and /v1).
    #[arg(long, env = "KEZ_HTTP", default_value = "127.0.0.1:8080")]
    http: SocketAddr,
    /// NATS client port.
    #[arg(long, env = "KEZ_NATS_PORT", default_value_t = 4222)]
    nats_port: u16,
    /// NATS WebSocket port.
    #[arg(long, env = "KEZ_NATS_WS_PORT", default_value_t = 4280)]
    ws_port: u16,
    /// NATS monitoring port (always bound on 127.0.0.1: it has no authentication).
    #[arg(long, env = "KEZ_NATS_MONITOR_PORT", default_value_t = 8222)]
    monitor_port: u16,
    /// Interface of the NATS client and WebSocket listeners [default: the --http address].
    #[arg(long, env = "KEZ_NATS_HOST")]
    nats_host: Option<std::net::IpAddr>,
    /// Public base URL of the web app (https://chat.example), allowed to open NATS
    /// WebSockets [default: http://<--http>].
    #[arg(long, env = "KEZ_PUBLIC_URL")]
    public_url: Option<String>,
    /// NATS WebSocket URL browsers are told to use [default: wss://<host of --public-url>/nats
    /// if --public-url is https (a TLS proxy in front, deploy/Caddyfile), else the listener].
    #[arg(long, env = "KEZ_PUBLIC_NATS_WS_URL")]
    public_nats_ws_url: Option<String>,
    /// Write secrets.json and nats.conf into --data-dir, print them, and exit
    /// without starting anything.
    #[arg(long)]
    init_only: bool,
}

#[derive(Args)]
struct RunArgs {
    #[command(flatten)]
    common: Common,
    /// Comma-separated components: registry, webfinger, sigchain, manifest-index, inbox,
    /// auth-callout, gateway, or all.
    #[arg(long, env = "KEZ_SERVICES", default_value = "all", value_delimiter = ',')]
    services: Vec<String>,
    /// NATS URL(s) of the broker or cluster.
    #[arg(long, env = "KEZ_NATS_URL", default_value = "nats://127.0.0.1:4222", value_delimiter = ',')]
    nats_url: Vec<String>,
    /// Gateway listen address.
    #[arg(long, env = "KEZ_HTTP", default_value = "127.0.0.1:8080")]
    http: SocketAddr,
    /// Public base URL of the gateway (for absolute links).
    #[arg(long, env = "KEZ_PUBLIC_URL")]
    public_url: Option<String>,
    /// NATS URL clients are told to use (GET /v1/config).
    #[arg(long, env = "KEZ_PUBLIC_NATS_URL")]
    public_nats_url: Option<String>,
    /// NATS WebSocket URL browsers are told to use.
    #[arg(long, env = "KEZ_PUBLIC_NATS_WS_URL")]
    public_nats_ws_url: Option<String>,
}

#[tokio::main]
async fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info,async_nats=warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Up(args) => up(args).await,
        Command::Run(args) => run(args).await,
    };
    if let Err(e) = result {
        eprintln!("kez-server: {e:#}");
        std::process::exit(1);
    }
}

/// The components a process runs.
#[derive(Default)]
struct Components {
    services: Vec<ServiceKind>,
    auth_callout: bool,
    gateway: bool,
}

fn parse_components(names: &[String]) -> Result<Components> {
    let mut c = Components::default();
    for n in names.iter().map(|s| s.trim()).filter(|s| !s.is_empty()) {
        match n {
            "all" => {
                c.services = ServiceKind::ALL.to_vec();
                c.auth_callout = true;
                c.gateway = true;
            }
            "auth-callout" => c.auth_callout = true,
            "gateway" => c.gateway = true,
            other => c.services.push(other.parse().map_err(|e: String| anyhow!(e))?),
        }
    }
    c.services.sort();
    c.services.dedup();
    Ok(c)
}

/// Everything a running process holds; dropping it stops the services.
struct Running {
    _services: Vec<async_nats::service::Service>,
    callout: Option<kez_auth_callout::CalloutHandle>,
    gateway: Option<tokio::task::JoinHandle<()>>,
    gateway_addr: Option<SocketAddr>,
}

struct Connector<'a> {
    urls: Vec<String>,
    secrets: &'a Secrets,
}

impl Connector<'_> {
    async fn as_user(&self, user: ServiceUser) -> Result<async_nats::Client> {
        connect_nkey(&self.urls.join(","), self.secrets.service(user), &format!("kez-{}", user.name())).await
    }
}

async fn start_components(
    c: &Components,
    conn: &Connector<'_>,
    settings: &Settings,
    gateway: GatewayConfig,
    shutdown: tokio::sync::watch::Receiver<bool>,
) -> Result<Running> {
    // Every inbox worker tags senders with the stack's one shared key.
    let tag_key = kez_service_kit::settings::SenderTagKey::new(*conn.secrets.sender_tag_key());
    let settings = &Settings { sender_tag_key: Some(tag_key), ..settings.clone() };
    let mut services = vec![];
    for kind in &c.services {
        let user = kind.user();
        let client = conn.as_user(user).await?;
        let svc = kind.start(&client, settings).await.map_err(|e| anyhow!("starting {kind}: {e}"))?;
        tracing::info!(service = %kind, "started");
        services.push(svc);
    }
    let callout = if c.auth_callout {
        let worker =
            connect_nkey(&conn.urls.join(","), conn.secrets.callout_worker(), "kez-auth-callout-worker").await?;
        let app = conn.as_user(ServiceUser::AuthCallout).await?;
        let mut config = kez_auth_callout::CalloutConfig::new(conn.secrets.callout_issuer().clone());
        // The system user follows connect/disconnect events for the per-user connection limit.
        let sys = async_nats::ConnectOptions::with_user_and_password(
            conn.secrets.sys_user().to_owned(),
            conn.secrets.sys_password().expose().to_owned(),
        )
        .name("kez-auth-callout-events")
        .connect(conn.urls.join(","))
        .await
        .map_err(|e| anyhow!("auth callout: connecting as the system user: {e}"))?;
        config.sys_conn = Some(sys);
        let handle = kez_auth_callout::start(worker, app, config).await.map_err(|e| anyhow!("auth callout: {e}"))?;
        tracing::info!("auth-callout worker started");
        Some(handle)
    } else {
        None
    };
    let (gateway, gateway_addr) = if c.gateway {
        let client = conn.as_user(ServiceUser::Gateway).await?;
        let gw = Gateway::bind(gateway, client).await.map_err(|e| anyhow!("gateway: {e}"))?;
        let addr = gw.local_addr();
        let mut rx = shutdown;
        let task = tokio::spawn(async move {
            let stop = async move {
                let _ = rx.wait_for(|s| *s).await;
            };
            if let Err(e) = gw.run(stop).await {
                tracing::error!("gateway stopped: {e}");
            }
        });
        (Some(task), Some(addr))
    } else {
        (None, None)
    };
    Ok(Running { _services: services, callout, gateway, gateway_addr })
}

impl Running {
    async fn stop(mut self, tx: tokio::sync::watch::Sender<bool>) {
        let _ = tx.send(true);
        if let Some(g) = self.gateway.take() {
            let _ = tokio::time::timeout(Duration::from_secs(10), g).await;
        }
        if let Some(c) = self.callout.take() {
            c.stop().await;
        }
    }
}

/// Installs the SIGINT and SIGTERM handlers now and returns a future that resolves on the
/// first of them. Now, not on first poll: until a handler exists SIGTERM kills the process
/// outright (no clean stop), and `up` says "Press Ctrl-C to stop" before it starts waiting.
fn wait_for_signal() -> impl std::future::Future<Output = ()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let handlers = signal(SignalKind::interrupt()).and_then(|int| Ok((int, signal(SignalKind::terminate())?)));
        async move {
            match handlers {
                Ok((mut int, mut term)) => {
                    tokio::select! {
                        _ = int.recv() => {}
                        _ = term.recv() => {}
                    }
                }
                Err(_) => {
                    let _ = tokio::signal::ctrl_c().await;
                }
            }
        }
    }
    #[cfg(not(unix))]
    async {
        let _ = tokio::signal::ctrl_c().await;
    }
}

fn repo_root() -> PathBuf {
    // The binary lives in <root>/target/<profile>/; fall back to the working directory.
    std::env::current_exe()
        .ok()
        .and_then(|p| p.ancestors().nth(3).map(PathBuf::from))
        .filter(|p| p.join(".venv").is_dir())
        .unwrap_or_else(|| PathBuf::from("."))
}

async fn up(args: UpArgs) -> Result<()> {
    let host = args.nats_host.unwrap_or(args.http.ip()).to_string();
    let public_url = args.public_url.clone().unwrap_or_else(|| format!("http://{}", args.http));
    let mut origins = vec![public_url.trim_end_matches('/').to_string()];
    if args.http.ip().is_loopback() {
        origins.push(format!("http://localhost:{}", args.http.port()));
    }
    let opts = BrokerOptions {
        data_dir: args.common.data_dir.clone(),
        host: host.clone(),
        ports: Ports { client: args.nats_port, websocket: args.ws_port, monitor: args.monitor_port },
        allowed_origins: origins,
        root: repo_root(),
    };
    if args.init_only {
        let prepared = kez_server::up::prepare(&opts)?;
        say!("wrote {}", Secrets::path_in(&prepared.data_dir).display());
        say!("wrote {}", prepared.conf.display());
        say!("check it with: nats-server -t -c {}", prepared.conf.display());
        return Ok(());
    }
    let mut broker = Broker::start(&opts).await?;
    let mut settings = Settings::local(&args.common.domain, &public_url);
    settings.replication = Replication { replicas: args.common.replicas };
    let gateway = GatewayConfig {
        listen: args.http,
        domain: args.common.domain.clone(),
        public_url: public_url.clone(),
        nats_url_public: broker.client_url.clone(),
        nats_ws_url_public: args.public_nats_ws_url.clone().unwrap_or_else(|| {
            match public_url.strip_prefix("https://").and_then(|rest| rest.split('/').next()) {
                Some(site) => format!("wss://{site}/nats"),
                None => broker.ws_url.clone(),
            }
        }),
        ..GatewayConfig::default()
    };
    let components = parse_components(&["all".to_string()])?;
    let conn = Connector { urls: vec![broker.client_url.clone()], secrets: &broker.secrets };
    let (tx, rx) = tokio::sync::watch::channel(false);
    let running = start_components(&components, &conn, &settings, gateway, rx).await?;
    let addr = running.gateway_addr.map(|a| a.to_string()).unwrap_or_default();
    let signal = wait_for_signal();
    say!("kez-chat is up.");
    say!("  web app and /v1 API:  http://{addr}/");
    say!("  NATS (native):        {}", broker.client_url);
    say!("  NATS (WebSocket):     {}", broker.ws_url);
    say!("  domain:               {}", args.common.domain);
    say!("  data:                 {}", args.common.data_dir.display());
    say!("Press Ctrl-C to stop.");
    let failed = tokio::select! {
        _ = signal => None,
        e = broker.failed() => Some(e),
    };
    if let Some(e) = failed {
        // The broker is gone for good; nothing left to drain.
        drop(running);
        return Err(e);
    }
    say!("stopping…");
    running.stop(tx).await;
    drop(broker);
    say!("stopped.");
    Ok(())
}

async fn run(args: RunArgs) -> Result<()> {
    let components = parse_components(&args.services)?;
    let (secrets, _) = Secrets::load_or_create(&args.common.data_dir)
        .with_context(|| format!("loading secrets from {}", args.common.data_dir.display()))?;
    let public_url = args.public_url.clone().unwrap_or_else(|| format!("http://{}", args.http));
    let mut settings = Settings::local(&args.common.domain, &public_url);
    settings.replication = Replication { replicas: args.common.replicas };
    let gateway = GatewayConfig {
        listen: args.http,
        domain: args.common.domain.clone(),
        public_url: public_url.clone(),
        nats_url_public: args.public_nats_url.clone().unwrap_or_else(|| args.nats_url[0].clone()),
        nats_ws_url_public: args.public_nats_ws_url.clone().unwrap_or_default(),
        ..GatewayConfig::default()
    };
    let conn = Connector { urls: args.nats_url.clone(), secrets: &secrets };
    let (tx, rx) = tokio::sync::watch::channel(false);
    let running = start_components(&components, &conn, &settings, gateway, rx).await?;
    if let Some(addr) = running.gateway_addr {
        say!("gateway listening on http://{addr}/");
    }
    wait_for_signal().await;
    running.stop(tx).await;
    Ok(())
}
