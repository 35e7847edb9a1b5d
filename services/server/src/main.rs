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
use kez_gateway::{Gateway, GatewayConfig, RateLimit};
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
    /// Replicas of every KV bucket and of the inbox stream [default: 1; 3 with `up --cluster`].
    /// Existing buckets and streams with fewer replicas are scaled up in place at start;
    /// ones with more are left alone.
    #[arg(long, env = "KEZ_REPLICAS")]
    replicas: Option<usize>,
    /// Gateway: registrations one client IP may make back to back.
    #[arg(long, env = "KEZ_REGISTER_BURST", default_value_t = RateLimit::default().burst)]
    register_burst: u32,
    /// Gateway: registrations per minute and client IP, refilling the burst.
    #[arg(long, env = "KEZ_REGISTER_PER_MINUTE", default_value_t = RateLimit::default().per_minute)]
    register_per_minute: u32,
}

impl Common {
    fn register_rate(&self) -> RateLimit {
        RateLimit { burst: self.register_burst, per_minute: self.register_per_minute }
    }
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
    /// Run a cluster of this many nats-servers (at least 3) on this machine: routes on
    /// loopback, one folder per node in --data-dir, R3 buckets and inbox stream, every
    /// service and the gateway as separate supervised `kez-server run` processes. Node 1
    /// uses --nats-port/--ws-port/--monitor-port, the others free ports.
    #[arg(long, env = "KEZ_CLUSTER", default_value_t = 1)]
    cluster: usize,
    /// With --cluster --init-only: the route URL of every node (`nats-route://nats-1:6222,…`),
    /// for nodes on separate hosts or containers. Node i then listens for routes on
    /// --nats-host and the port of URL i, and every node uses --nats-port, --ws-port and
    /// --monitor-port (deploy/docker-compose.cluster.yml).
    #[arg(long, env = "KEZ_CLUSTER_ROUTES", value_delimiter = ',')]
    cluster_routes: Vec<String>,
    /// With --cluster: processes per service and of the auth-callout worker.
    #[arg(long, env = "KEZ_WORKERS", default_value_t = 2)]
    workers: usize,
    /// The nats-server binary (>= 2.10) [default: nats-server on PATH].
    #[arg(long, env = "NATS_SERVER_BIN")]
    nats_server: Option<PathBuf>,
}

#[derive(Args)]
struct RunArgs {
    #[command(flatten)]
    common: Common,
    /// Comma-separated components: registry, webfinger, sigchain, manifest-index, inbox,
    /// auth-callout, gateway, or all.
    #[arg(long, env = "KEZ_SERVICES", default_value = "all", value_delimiter = ',')]
    services: Vec<String>,
    /// NATS URL(s) of the broker or cluster, comma-separated (`nats://a:4222,nats://b:4222`):
    /// every connection fails over between them and the nodes the cluster announces.
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
        .connect(conn.urls.clone())
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

/// The public base URL of `up` and the origins allowed to open NATS WebSockets.
fn public_url_and_origins(args: &UpArgs) -> (String, Vec<String>) {
    let public_url = args.public_url.clone().unwrap_or_else(|| format!("http://{}", args.http));
    let mut origins = vec![public_url.trim_end_matches('/').to_string()];
    if args.http.ip().is_loopback() {
        origins.push(format!("http://localhost:{}", args.http.port()));
    }
    (public_url, origins)
}

/// The NATS WebSocket URL browsers are told to use: the flag, else wss://<site>/nats behind an
/// https public URL, else the listener.
fn public_ws_url(args: &UpArgs, public_url: &str, listener: &str) -> String {
    args.public_nats_ws_url.clone().unwrap_or_else(|| {
        match public_url.strip_prefix("https://").and_then(|rest| rest.split('/').next()) {
            Some(site) => format!("wss://{site}/nats"),
            None => listener.to_owned(),
        }
    })
}

async fn up(args: UpArgs) -> Result<()> {
    if args.cluster > 1 {
        return up_cluster(args).await;
    }
    let host = args.nats_host.unwrap_or(args.http.ip()).to_string();
    let (public_url, origins) = public_url_and_origins(&args);
    let opts = BrokerOptions {
        data_dir: args.common.data_dir.clone(),
        host: host.clone(),
        ports: Ports { client: args.nats_port, websocket: args.ws_port, monitor: args.monitor_port },
        allowed_origins: origins,
        nats_server: args.nats_server.clone(),
        node: None,
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
    settings.replication = Replication { replicas: args.common.replicas.unwrap_or(1) };
    let gateway = GatewayConfig {
        listen: args.http,
        domain: args.common.domain.clone(),
        public_url: public_url.clone(),
        nats_url_public: broker.client_url.clone(),
        nats_ws_url_public: public_ws_url(&args, &public_url, &broker.ws_url),
        register_rate: args.common.register_rate(),
        ..GatewayConfig::default()
    };
    let components = parse_components(&["all".to_string()])?;
    let conn = Connector { urls: vec![broker.client_url.clone()], secrets: &broker.secrets };
    let (tx, rx) = tokio::sync::watch::channel(false);
    let running = start_components(&components, &conn, &settings, gateway, rx).await?;
    let addr = running.gateway_addr.map(|a| a.to_string()).unwrap_or_default();
    let signal = kez_service_kit::signal::wait_for_signal();
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
    settings.replication = Replication { replicas: args.common.replicas.unwrap_or(1) };
    let gateway = GatewayConfig {
        listen: args.http,
        domain: args.common.domain.clone(),
        public_url: public_url.clone(),
        nats_url_public: args.public_nats_url.clone().unwrap_or_else(|| args.nats_url[0].clone()),
        nats_ws_url_public: args.public_nats_ws_url.clone().unwrap_or_default(),
        register_rate: args.common.register_rate(),
        ..GatewayConfig::default()
    };
    let conn = Connector { urls: args.nats_url.clone(), secrets: &secrets };
    let (tx, rx) = tokio::sync::watch::channel(false);
    let running = start_components(&components, &conn, &settings, gateway, rx).await?;
    if let Some(addr) = running.gateway_addr {
        say!("gateway listening on http://{addr}/");
    }
    kez_service_kit::signal::wait_for_signal().await;
    running.stop(tx).await;
    Ok(())
}

/// `up --cluster N`: N supervised nats-servers, then every component as supervised
/// `kez-server run` children against all of them (module `kez_server::cluster`).
async fn up_cluster(args: UpArgs) -> Result<()> {
    use kez_server::cluster::{ClusterState, NodeState, StateFile, Worker, WorkerState, http_status};
    use kez_server::up::Node;
    use kez_service_kit::natsconf::ClusterSpec;

    let n = args.cluster;
    if n < 3 {
        anyhow::bail!("--cluster needs at least 3 nodes: JetStream needs a majority of the nodes to stay available");
    }
    let replicas = args.common.replicas.unwrap_or(3);
    if replicas > n {
        anyhow::bail!("--replicas {replicas} needs at least {replicas} nodes, --cluster is {n}");
    }
    let host = args.nats_host.unwrap_or(args.http.ip()).to_string();
    let (public_url, origins) = public_url_and_origins(&args);
    // Secrets first, once: the nodes start concurrently and must not race to create them.
    let data_dir = kez_server::up::create_data_dir(&args.common.data_dir)?;
    Secrets::load_or_create(&data_dir).context("loading the stack's secrets")?;
    if !args.cluster_routes.is_empty() {
        return init_cluster_elsewhere(&args, &data_dir, &origins);
    }
    // Node 1 takes the given ports, the others free ones; routes on loopback. Hold every
    // listener until all are picked so no port is handed out twice.
    let mut held = vec![];
    let mut pick = |h: &str| -> Result<u16> {
        let l = std::net::TcpListener::bind((h, 0)).with_context(|| format!("finding a free port on {h}"))?;
        let port = l.local_addr()?.port();
        held.push(l);
        Ok(port)
    };
    let mut ports = vec![Ports { client: args.nats_port, websocket: args.ws_port, monitor: args.monitor_port }];
    for _ in 1..n {
        ports.push(Ports { client: pick(&host)?, websocket: pick(&host)?, monitor: pick("127.0.0.1")? });
    }
    let routes: Vec<u16> = (0..n).map(|_| pick("127.0.0.1")).collect::<Result<_>>()?;
    drop(held);
    let route_urls: Vec<String> = routes.iter().map(|p| format!("nats-route://127.0.0.1:{p}")).collect();
    let opts: Vec<BrokerOptions> = (0..n)
        .map(|i| BrokerOptions {
            data_dir: data_dir.clone(),
            host: host.clone(),
            ports: ports[i],
            allowed_origins: origins.clone(),
            nats_server: args.nats_server.clone(),
            node: Some(Node {
                name: format!("kez-n{}", i + 1),
                cluster: ClusterSpec {
                    name: "kez-local".to_owned(),
                    listen: format!("127.0.0.1:{}", routes[i]),
                    routes: route_urls.clone(),
                },
            }),
        })
        .collect();
    if args.init_only {
        for o in &opts {
            let prepared = kez_server::up::prepare(o)?;
            say!("wrote {}", prepared.conf.display());
        }
        say!("wrote {}", Secrets::path_in(&data_dir).display());
        say!("(route and client ports of nodes 2..{n} are picked anew by every `up --cluster`)");
        return Ok(());
    }

    // A JetStream cluster is ready only once a majority runs: start every node at once.
    let mut starting = tokio::task::JoinSet::new();
    for (i, o) in opts.into_iter().enumerate() {
        starting.spawn(async move { (i, Broker::start(&o).await) });
    }
    let mut brokers: Vec<Option<Broker>> = (0..n).map(|_| None).collect();
    let mut first_error = None;
    while let Some(joined) = starting.join_next().await {
        match joined {
            Ok((i, Ok(b))) => brokers[i] = Some(b),
            Ok((i, Err(e))) => {
                first_error = first_error.or(Some(e.context(format!("starting nats-server kez-n{}", i + 1))))
            }
            Err(e) => first_error = first_error.or(Some(anyhow!("a nats-server start task failed: {e}"))),
        }
    }
    if let Some(e) = first_error {
        return Err(e);
    }
    let brokers: Vec<Broker> = brokers.into_iter().flatten().collect();
    let nats_urls: Vec<String> = brokers.iter().map(|b| b.client_url.clone()).collect();

    let nodes = brokers
        .iter()
        .zip(&routes)
        .map(|(b, route)| NodeState {
            name: b.name(),
            pid: b.pid(),
            client_url: b.client_url.clone(),
            ws_url: b.ws_url.clone(),
            monitor_url: format!("http://127.0.0.1:{}", b.ports().monitor),
            route_url: format!("nats-route://127.0.0.1:{route}"),
        })
        .collect();
    let exe = std::env::current_exe().context("finding the kez-server binary")?;
    let log_dir = data_dir.join(kez_server::cluster::LOG_DIR);
    kez_server::up::create_data_dir(&log_dir)?;
    let common = |component: &str| -> Vec<std::ffi::OsString> {
        let mut a: Vec<std::ffi::OsString> = vec!["run".into(), "--services".into(), component.into()];
        a.extend(["--nats-url".into(), nats_urls.join(",").into(), "--replicas".into(), replicas.to_string().into()]);
        a.extend(["--domain".into(), args.common.domain.clone().into(), "--data-dir".into(), data_dir.clone().into()]);
        a.extend(["--register-burst".into(), args.common.register_burst.to_string().into()]);
        a.extend(["--register-per-minute".into(), args.common.register_per_minute.to_string().into()]);
        a
    };
    let mut plan: Vec<(String, Vec<std::ffi::OsString>)> = vec![];
    // Dependencies first (the registry's buckets exist before the inbox looks keys up).
    let components: Vec<String> =
        ServiceKind::ALL.iter().map(|k| k.name().to_owned()).chain(["auth-callout".to_owned()]).collect();
    for c in &components {
        for w in 1..=args.workers.max(1) {
            plan.push((format!("{c}-{w}"), common(c)));
        }
    }
    let ws_public = public_ws_url(&args, &public_url, &brokers[0].ws_url);
    let mut gw = common("gateway");
    gw.extend(["--http".into(), args.http.to_string().into(), "--public-url".into(), public_url.clone().into()]);
    gw.extend([
        "--public-nats-url".into(),
        nats_urls[0].clone().into(),
        "--public-nats-ws-url".into(),
        ws_public.into(),
    ]);
    plan.push(("gateway-1".to_owned(), gw));

    let state = StateFile::new(
        &data_dir,
        ClusterState {
            up_pid: std::process::id(),
            replicas,
            nats_urls: nats_urls.clone(),
            gateway_url: format!("http://{}", args.http),
            nodes,
            workers: plan
                .iter()
                .map(|(name, a)| WorkerState {
                    name: name.clone(),
                    component: a[2].to_string_lossy().into_owned(),
                    pid: None,
                    restarts: 0,
                    log: log_dir.join(format!("{name}.log")),
                })
                .collect(),
        },
    );
    state.update(|_| {});
    let mut workers = vec![];
    for (i, (name, a)) in plan.into_iter().enumerate() {
        workers.push(Worker::spawn(exe.clone(), a, log_dir.join(format!("{name}.log")), i, state.clone()));
    }
    let signal = kez_service_kit::signal::wait_for_signal();
    tokio::pin!(signal);
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    while http_status(args.http, "/v1/healthz").await != Some(200) {
        let interrupted = tokio::select! {
            _ = &mut signal => true,
            _ = tokio::time::sleep(Duration::from_millis(250)) => false,
        };
        if interrupted || std::time::Instant::now() > deadline {
            stop_all(workers).await;
            if interrupted {
                return Ok(());
            }
            anyhow::bail!("the cluster did not become healthy in 120 s; see the logs in {}", log_dir.display());
        }
    }

    let snap = state.snapshot();
    say!("kez-chat is up: a cluster of {n} nats-servers, replicas {replicas}.");
    say!("  web app and /v1 API:  http://{}/", args.http);
    say!("  NATS (native):        {}", nats_urls.join(","));
    say!("  NATS (WebSocket):     {}", brokers[0].ws_url);
    say!("  domain:               {}", args.common.domain);
    say!("  data:                 {}", data_dir.display());
    say!("  what runs where ({}):", data_dir.join(kez_server::cluster::STATE_FILE).display());
    for node in &snap.nodes {
        say!(
            "    nats-server {:<16} pid {:<8} {}  route {}  monitor {}",
            node.name,
            node.pid.map(|p| p.to_string()).unwrap_or_default(),
            node.client_url,
            node.route_url,
            node.monitor_url
        );
    }
    for w in &snap.workers {
        say!("    {:<28} pid {:<8} log {}", w.name, w.pid.map(|p| p.to_string()).unwrap_or_default(), w.log.display());
    }
    say!("Press Ctrl-C to stop.");

    let failed = loop {
        tokio::select! {
            _ = &mut signal => break None,
            _ = tokio::time::sleep(Duration::from_millis(250)) => {}
        }
        // Keep cluster.json's node pids current (the supervisors restart crashed nodes).
        let pids: Vec<Option<u32>> = brokers.iter().map(Broker::pid).collect();
        if snap_pids(&state) != pids {
            state.update(|s| s.nodes.iter_mut().zip(&pids).for_each(|(n, p)| n.pid = *p));
        }
        if let Some(b) = brokers.iter().find(|b| b.has_failed()) {
            break Some(anyhow!(
                "nats-server {} cannot be kept running; see {}",
                b.name(),
                data_dir.join(b.name()).display()
            ));
        }
    };
    say!("stopping…");
    stop_all(workers).await;
    drop(brokers);
    state.remove();
    say!("stopped.");
    match failed {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// Stops every worker at once (each gets SIGTERM, then SIGKILL after a grace period).
async fn stop_all(workers: Vec<kez_server::cluster::Worker>) {
    let mut stopping = tokio::task::JoinSet::new();
    for w in workers {
        stopping.spawn(w.stop());
    }
    while stopping.join_next().await.is_some() {}
}

fn snap_pids(state: &kez_server::cluster::StateFile) -> Vec<Option<u32>> {
    state.snapshot().nodes.iter().map(|n| n.pid).collect()
}

/// `up --init-only --cluster N --cluster-routes …`: one config per node, for nodes that run on
/// separate hosts or containers (same ports on each, routes to the given URLs).
fn init_cluster_elsewhere(args: &UpArgs, data_dir: &std::path::Path, origins: &[String]) -> Result<()> {
    use kez_server::up::Node;
    use kez_service_kit::natsconf::ClusterSpec;
    let n = args.cluster;
    if !args.init_only {
        anyhow::bail!("--cluster-routes describes nodes on other hosts: use it with --init-only");
    }
    if args.cluster_routes.len() != n {
        anyhow::bail!("--cluster-routes lists {} URLs, --cluster is {n}", args.cluster_routes.len());
    }
    let host = args.nats_host.unwrap_or(args.http.ip()).to_string();
    for (i, route) in args.cluster_routes.iter().enumerate() {
        let port = route
            .rsplit_once(':')
            .and_then(|(_, p)| p.trim_end_matches('/').parse::<u16>().ok())
            .ok_or_else(|| anyhow!("route {route:?} has no port (nats-route://host:port)"))?;
        let opts = BrokerOptions {
            data_dir: data_dir.to_owned(),
            host: host.clone(),
            ports: Ports { client: args.nats_port, websocket: args.ws_port, monitor: args.monitor_port },
            allowed_origins: origins.to_vec(),
            nats_server: args.nats_server.clone(),
            node: Some(Node {
                name: format!("kez-n{}", i + 1),
                cluster: ClusterSpec {
                    name: "kez".to_owned(),
                    listen: format!("{host}:{port}"),
                    routes: args.cluster_routes.clone(),
                },
            }),
        };
        let prepared = kez_server::up::prepare(&opts)?;
        say!("wrote {}", prepared.conf.display());
    }
    say!("wrote {}", Secrets::path_in(data_dir).display());
    Ok(())
}
