//! kez-loadtest: drives kez-chat paths and the baselines they are judged
//! against in the same run, on this machine, and prints ratios.
//!
//! ```text
//! cargo run --release -p kez-loadtest -- http --seconds 5 --concurrency 64
//! ```
//!
//! `http` starts a real nats-server (kez-testkit), every service and the
//! gateway in this process, plus two baselines: a bare axum handler and an
//! axum handler that makes one NATS request to a trivial responder (the shape
//! of every gateway route). It then loads `GET /v1/u/:handle` and
//! `POST /v1/register` and reports throughput and latency as ratios to the
//! baselines. Nothing here is a test: numbers depend on the machine.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};
use bytes::Bytes;
use clap::{Parser, Subcommand};
use ed25519_dalek::SigningKey;
use futures::StreamExt as _;
use http_body_util::{BodyExt as _, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use kez_gateway::{Gateway, GatewayConfig, RateLimit};
use kez_server::ServiceKind;
use kez_service_kit::settings::Settings;
use kez_testkit::{NatsServer, ServiceUser};
use kv_schemas::{Handle, now_ms, register};

#[derive(Parser)]
#[command(name = "kez-loadtest", about = "kez-chat load and benchmark harness")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

mod chat;

#[derive(Subcommand)]
enum Cmd {
    /// Chat: sends through the relay and device pulls against raw JetStream publish + pull,
    /// plus client crypto against its primitives.
    Chat {
        /// Sender/recipient pairs running at once.
        #[arg(long, default_value_t = 8)]
        pairs: usize,
        /// Messages each sender sends (each waits for its store acknowledgement).
        #[arg(long, default_value_t = 300)]
        messages: usize,
        /// One JSON object instead of the table.
        #[arg(long)]
        json: bool,
    },
    /// Fault injection on `kez-server up --cluster 3`: registrations, sigchain appends and chat
    /// messages while kill -9 takes out a nats-server, service workers, the KV/stream leader
    /// and the gateway in turn; then checks that nothing acknowledged was lost.
    Fault {
        /// `long` (about 4 minutes of load) or `short` (the test suite's).
        #[arg(long, default_value = "long")]
        profile: String,
        /// The kez-server binary [default: next to this one].
        #[arg(long)]
        server_bin: Option<std::path::PathBuf>,
        /// One JSON object instead of the table.
        #[arg(long)]
        json: bool,
    },
    /// Gateway routes against a bare axum handler and a bare axum→NATS hop.
    Http {
        /// Seconds per measured route (after a 1 s warm-up).
        #[arg(long, default_value_t = 5)]
        seconds: u64,
        /// Concurrent requests in flight.
        #[arg(long, default_value_t = 64)]
        concurrency: usize,
        /// Users registered before the lookup run.
        #[arg(long, default_value_t = 200)]
        users: usize,
    },
}

const DOMAIN: &str = "kez.bench";

#[tokio::main]
async fn main() -> Result<()> {
    match Cli::parse().command {
        Cmd::Http { seconds, concurrency, users } => http(Duration::from_secs(seconds), concurrency, users).await,
        Cmd::Fault { profile, server_bin, json } => fault(&profile, server_bin, json).await,
        Cmd::Chat { pairs, messages, json } => {
            let run = chat::chat(pairs, messages).await?;
            chat::print(pairs, messages, &run, json);
            Ok(())
        }
    }
}

/// Results of one measured run.
struct Run {
    name: String,
    requests: u64,
    errors: u64,
    elapsed: Duration,
    latencies: Vec<Duration>,
}

impl Run {
    fn rate(&self) -> f64 {
        self.requests as f64 / self.elapsed.as_secs_f64()
    }
    fn pct(&self, p: f64) -> Duration {
        if self.latencies.is_empty() {
            return Duration::ZERO;
        }
        let i = ((self.latencies.len() as f64 - 1.0) * p).round() as usize;
        self.latencies[i]
    }
}

type HttpClient = Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>;

/// Sends requests made by `make(i)` from `concurrency` tasks for `duration`.
async fn load<F>(name: &str, client: &HttpClient, duration: Duration, concurrency: usize, make: F) -> Run
where
    F: Fn(u64) -> hyper::Request<Full<Bytes>> + Send + Sync + 'static,
{
    let make = Arc::new(make);
    let counter = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let deadline = start + duration;
    let tasks: Vec<_> = (0..concurrency)
        .map(|_| {
            let (client, make, counter, errors) = (client.clone(), make.clone(), counter.clone(), errors.clone());
            tokio::spawn(async move {
                let mut lat = Vec::new();
                while Instant::now() < deadline {
                    let i = counter.fetch_add(1, Ordering::Relaxed);
                    let t = Instant::now();
                    match client.request(make(i)).await {
                        Ok(resp) => {
                            let ok = resp.status().is_success();
                            let _ = resp.into_body().collect().await;
                            if !ok {
                                errors.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                        Err(_) => {
                            errors.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    lat.push(t.elapsed());
                }
                lat
            })
        })
        .collect();
    let mut latencies = Vec::new();
    for t in tasks {
        latencies.extend(t.await.unwrap_or_default());
    }
    let elapsed = start.elapsed();
    latencies.sort();
    Run {
        name: name.into(),
        requests: latencies.len() as u64,
        errors: errors.load(Ordering::Relaxed),
        elapsed,
        latencies,
    }
}

fn get(addr: SocketAddr, path: &str) -> hyper::Request<Full<Bytes>> {
    hyper::Request::get(format!("http://{addr}{path}")).body(Full::new(Bytes::new())).expect("request")
}

async fn http(duration: Duration, concurrency: usize, users: usize) -> Result<()> {
    let server = NatsServer::start().await.context("starting nats-server (run scripts/ensure-nats-server)")?;
    let mut settings = Settings::local(DOMAIN, "http://127.0.0.1");
    settings.sender_tag_key = Some(kez_service_kit::settings::SenderTagKey::new(*server.secrets().sender_tag_key()));
    let mut services = vec![];
    for kind in ServiceKind::ALL {
        let user = kind.user();
        let client = server.connect_as(user).await?;
        services.push(kind.start(&client, &settings).await.map_err(|e| anyhow::anyhow!("{e}"))?);
    }
    let gw_client = server.connect_as(ServiceUser::Gateway).await?;
    let gateway = Gateway::bind(
        GatewayConfig {
            listen: "127.0.0.1:0".parse()?,
            domain: DOMAIN.into(),
            register_rate: RateLimit { burst: u32::MAX, per_minute: u32::MAX },
            ..GatewayConfig::default()
        },
        gw_client,
    )
    .await?;
    let gw = gateway.local_addr();
    tokio::spawn(gateway.run(futures::future::pending()));

    // Baselines: bare axum, and axum → one NATS request → trivial responder.
    let ops = server.connect_ops().await?;
    let mut echo = ops.subscribe("bench.echo").await?;
    let responder = ops.clone();
    tokio::spawn(async move {
        while let Some(m) = echo.next().await {
            if let Some(reply) = m.reply {
                let _ = responder.publish(reply, Bytes::from_static(br#"{"ok":true,"service":"kez","v":1}"#)).await;
            }
        }
    });
    let hop = server.connect_as(ServiceUser::Gateway).await?;
    let baseline = axum::Router::new()
        .route(
            "/bare",
            axum::routing::get(|| async { axum::Json(serde_json::json!({"ok":true,"service":"kez","v":1})) }),
        )
        .route(
            "/nats",
            axum::routing::get(move || {
                let hop = hop.clone();
                async move {
                    match hop.request("bench.echo", Bytes::new()).await {
                        Ok(m) => (axum::http::StatusCode::OK, m.payload.to_vec()),
                        Err(_) => (axum::http::StatusCode::SERVICE_UNAVAILABLE, vec![]),
                    }
                }
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = listener.local_addr()?;
    tokio::spawn(async move { axum::serve(listener, baseline).await });

    let client: HttpClient = Client::builder(TokioExecutor::new()).pool_max_idle_per_host(concurrency).build_http();

    // Register users (also the registration measurement: fresh keys each time).
    let keys: Vec<SigningKey> = (0..users).map(|_| SigningKey::from_bytes(&kv_schemas::random_bytes())).collect();
    let key_pool = Arc::new(keys);
    let warm = Duration::from_secs(1);
    let _ = load("warm-up", &client, warm, concurrency, move |_| get(base, "/bare")).await;
    let mut runs = vec![];
    runs.push(load("bare axum GET", &client, duration, concurrency, move |_| get(base, "/bare")).await);
    runs.push(load("axum→NATS→echo GET", &client, duration, concurrency, move |_| get(base, "/nats")).await);
    let pool = key_pool.clone();
    let reg = load("POST /v1/register", &client, duration, concurrency, move |i| {
        let sk = if (i as usize) < pool.len() {
            pool[i as usize].clone()
        } else {
            SigningKey::from_bytes(&kv_schemas::random_bytes())
        };
        let h = Handle::new(&format!("u{i}"), DOMAIN).expect("handle");
        let body = register::build(&sk, &h, now_ms(), kv_schemas::random_bytes()).expect("registration request");
        hyper::Request::post(format!("http://{gw}/v1/register"))
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body)))
            .expect("request")
    })
    .await;
    let registered = reg.requests - reg.errors;
    runs.push(reg);
    let n = registered.max(1);
    runs.push(
        load("GET /v1/u/:handle", &client, duration, concurrency, move |i| get(gw, &format!("/v1/u/u{}", i % n))).await,
    );

    println!(
        "\nkez-loadtest http: {concurrency} in flight, {}s per route, client+gateway+services in one process, nats-server separate\n",
        duration.as_secs()
    );
    println!(
        "{:<24} {:>10} {:>8} {:>10} {:>10} {:>9} {:>9}",
        "route", "req/s", "errors", "p50", "p99", "×bare", "×hop"
    );
    let bare = runs[0].rate();
    let hop_rate = runs[1].rate();
    for r in &runs {
        println!(
            "{:<24} {:>10.0} {:>8} {:>10?} {:>10?} {:>8.2}× {:>8.2}×",
            r.name,
            r.rate(),
            r.errors,
            r.pct(0.5),
            r.pct(0.99),
            r.rate() / bare,
            r.rate() / hop_rate
        );
    }
    println!(
        "\ntargets (docs/performance-targets.md): GET /v1/u ≥ 0.8× the hop baseline; register ≥ 0.25× the hop baseline"
    );
    drop(services);
    Ok(())
}

async fn fault(profile: &str, server_bin: Option<std::path::PathBuf>, json: bool) -> Result<()> {
    use kez_testkit::fault::{Profile, run};
    let profile = match profile {
        "long" => Profile::long(),
        "short" => Profile::short(),
        other => anyhow::bail!("unknown profile {other:?} (long or short)"),
    };
    let bin = match server_bin {
        Some(b) => b,
        None => std::env::current_exe()?.with_file_name("kez-server"),
    };
    anyhow::ensure!(
        bin.is_file(),
        "{} not found: build it (cargo build -p kez-server) or pass --server-bin",
        bin.display()
    );
    let r = run(&bin, &profile).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&r)?);
    } else {
        println!(
            "\nkez-loadtest fault ({} profile, {:.0} s): kez-server up --cluster 3, kill -9 under load\n",
            r.profile, r.seconds
        );
        println!("{:<16} {:>12} {:>10} {:>8}", "writes", "acknowledged", "retried", "lost");
        for (name, a, t, l) in [
            ("registrations", r.acknowledged.registrations, r.retried.registrations, r.lost.registrations),
            ("sigchain links", r.acknowledged.links, r.retried.links, r.lost.links),
            ("chat messages", r.acknowledged.messages, r.retried.messages, r.lost.messages),
        ] {
            println!("{name:<16} {a:>12} {t:>10} {l:>8}");
        }
        println!(
            "\nretry attempts {}, envelopes stored twice {}, client-visible errors {}",
            r.retry_attempts, r.duplicates, r.client_errors
        );
        println!(
            "\n{:<28} {:>10}  longest stretch without an ack (ms): registration / link / message",
            "fault", "back (ms)"
        );
        for f in &r.faults {
            let u = |k: &str| f.unavailable_ms.get(k).copied().unwrap_or(0);
            println!(
                "{:<28} {:>10}  {} / {} / {}   killed {}",
                f.fault,
                f.restarted_after_ms,
                u("registration"),
                u("sigchain link"),
                u("chat message"),
                f.killed.join(", ")
            );
        }
        if r.problems.is_empty() {
            println!("\nall checks passed");
        } else {
            println!("\nPROBLEMS:\n  {}", r.problems.join("\n  "));
        }
    }
    anyhow::ensure!(r.problems.is_empty(), "{} checks failed", r.problems.len());
    Ok(())
}
