//! Connect throughput and latency through the auth callout, against static-nkey connects to the
//! same server in the same run (targets in docs/performance-targets.md: ≥ 0.45× the static rate,
//! p99 ≤ 20 ms).
//!
//! ```text
//! cargo run --release -p kez-auth-callout --example connect_bench -- [--n 2000] [--concurrency 16] [--reps 3] [--users 256] [--registry-cache-ttl 30] [--no-registry]
//! ```
//!
//! One nats-server (kez-testkit, production-shaped config, `sync_interval: always`), the real
//! registry service (`kez_registry`: `lookup_key` reads two KV entries) in the bench process, and
//! one worker in a child process (this binary with `--worker`, as in production and as in the
//! baseline run, so it does not share a runtime with the load generator). Each rep
//! runs the static phase (the ops user's nkey, verified by the server itself) and then the
//! callout phase (registered users, verified by the worker, which also asks the registry), each
//! `n` connects from `concurrency` tasks. A connect is timed from `connect()` until the
//! CONNECT/PING/PONG handshake finished, i.e. including authorization; the client is then drained.
//! Prints per-rep numbers, medians and callout/static ratios, and the worker's mean time per
//! request and registry round trips. `--registry-cache-ttl` is the worker's
//! `registry_cache_ttl` in seconds (default 30 as in production; 0 asks the registry on every
//! login). `--no-registry` (diagnostic only) replaces the registry question by "yes" inside the
//! worker, to show what the registry costs.
#![allow(clippy::unwrap_used)]

#[path = "../tests/common/mod.rs"]
mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use std::io::{BufRead as _, Write as _};
use std::process::{Command, Stdio};

use common::{Events, TestRegistry, User};
use kez_testkit::{NatsServer, ServiceUser};

#[derive(Clone, Copy)]
struct Args {
    n: usize,
    concurrency: usize,
    reps: usize,
    users: usize,
    registry_cache_ttl: usize,
    no_registry: bool,
}

fn parse_args() -> Args {
    let mut a = Args { n: 2000, concurrency: 16, reps: 3, users: 256, registry_cache_ttl: 30, no_registry: false };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        if flag == "--no-registry" {
            a.no_registry = true;
            continue;
        }
        let v: usize = it.next().and_then(|v| v.parse().ok()).unwrap_or_else(|| panic!("{flag} needs a number"));
        match flag.as_str() {
            "--n" => a.n = v,
            "--concurrency" => a.concurrency = v,
            "--reps" => a.reps = v,
            "--users" => a.users = v,
            "--registry-cache-ttl" => a.registry_cache_ttl = v,
            _ => panic!("unknown flag {flag}"),
        }
    }
    a
}

struct Phase {
    rate: f64,
    p50: Duration,
    p99: Duration,
    failures: usize,
}

/// `n` connects from `concurrency` tasks; `make(i)` builds the options of connect `i`.
async fn run_phase<F>(url: &str, n: usize, concurrency: usize, make: F) -> Phase
where
    F: Fn(usize) -> async_nats::ConnectOptions + Send + Sync + 'static,
{
    let make = Arc::new(make);
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let tasks: Vec<_> = (0..concurrency)
        .map(|_| {
            let (make, next, url) = (make.clone(), next.clone(), url.to_owned());
            tokio::spawn(async move {
                let mut lat = Vec::new();
                let mut failures = 0;
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= n {
                        break;
                    }
                    let opts = make(i);
                    let t = Instant::now();
                    match opts.connect(url.as_str()).await {
                        Ok(c) => {
                            lat.push(t.elapsed());
                            let _ = c.drain().await;
                        }
                        Err(e) => {
                            failures += 1;
                            eprintln!("connect failed: {e}");
                        }
                    }
                }
                (lat, failures)
            })
        })
        .collect();
    let mut all = Vec::with_capacity(n);
    let mut failures = 0;
    for t in tasks {
        let (lat, f) = t.await.unwrap();
        all.extend(lat);
        failures += f;
    }
    let elapsed = started.elapsed();
    all.sort();
    let pct = |p: f64| {
        all.get(((all.len() as f64 * p) as usize).min(all.len().saturating_sub(1))).copied().unwrap_or_default()
    };
    Phase { rate: all.len() as f64 / elapsed.as_secs_f64(), p50: pct(0.50), p99: pct(0.99), failures }
}

/// CPU time (user + system) a process has used so far, from /proc (Linux only; zero elsewhere).
/// CPU per connect does not depend on what else the machine runs, unlike rates and latencies.
fn cpu_time(pid: u32) -> Duration {
    static TICKS: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    let hz = *TICKS.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
            .unwrap_or(100.0)
    });
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { return Duration::ZERO };
    // Fields after the ")" that ends the command name; utime and stime are fields 14 and 15.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = [11, 12].iter().filter_map(|&i| f.get(i)?.parse::<f64>().ok()).sum();
    Duration::from_secs_f64(ticks / hz)
}

/// CPU used by (server, worker, bench process incl. registry) during `f`, per connect, in µs.
async fn cpu_per_connect<F: std::future::Future<Output = Phase>>(pids: [u32; 3], n: usize, f: F) -> (Phase, [f64; 3]) {
    let before = pids.map(cpu_time);
    let phase = f.await;
    let after = pids.map(cpu_time);
    let per = |i: usize| (after[i].saturating_sub(before[i])).as_secs_f64() * 1e6 / n as f64;
    (phase, [per(0), per(1), per(2)])
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// Times the real registry client.
struct Timed {
    inner: kez_auth_callout::NatsRegistry,
    ns: Arc<std::sync::atomic::AtomicU64>,
    n: Arc<AtomicUsize>,
}

impl kez_auth_callout::KeyRegistry for Timed {
    async fn is_registered(&self, key: &kv_schemas::PublicKey) -> Result<bool, kez_auth_callout::RegistryError> {
        let t = Instant::now();
        let r = self.inner.is_registered(key).await;
        self.ns.fetch_add(t.elapsed().as_nanos() as u64, Ordering::Relaxed);
        self.n.fetch_add(1, Ordering::Relaxed);
        r
    }
}

/// Diagnostic stand-in: everyone is registered, no round trip.
struct Everyone;

impl kez_auth_callout::KeyRegistry for Everyone {
    async fn is_registered(&self, _key: &kv_schemas::PublicKey) -> Result<bool, kez_auth_callout::RegistryError> {
        Ok(true)
    }
}

/// Child mode: run the worker until stdin closes, then print its counters.
async fn worker_main() {
    let var = |k: &str| std::env::var(k).unwrap_or_else(|_| panic!("{k} not set"));
    let url = var("KEZ_BENCH_URL");
    let connect = |seed: String| async_nats::ConnectOptions::with_nkey(seed).connect(url.clone());
    let auth_conn = connect(var("KEZ_BENCH_WORKER_SEED")).await.unwrap();
    let app_conn = connect(var("KEZ_BENCH_APP_SEED")).await.unwrap();
    let issuer = nkeys::KeyPair::from_seed(&var("KEZ_BENCH_ISSUER_SEED")).unwrap();
    let mut config = kez_auth_callout::CalloutConfig::new(issuer);
    config.registry_cache_ttl = Duration::from_secs(var("KEZ_BENCH_CACHE_TTL").parse().unwrap());
    let (ns, n) = (Arc::new(std::sync::atomic::AtomicU64::new(0)), Arc::new(AtomicUsize::new(0)));
    let timed = Timed {
        inner: kez_auth_callout::NatsRegistry::new(app_conn.clone(), config.registry_timeout),
        ns: ns.clone(),
        n: n.clone(),
    };
    // Same composition as kez_auth_callout::start, with the round trips timed.
    let handle = if std::env::var_os("KEZ_BENCH_NO_REGISTRY").is_some() {
        kez_auth_callout::start_with_registry(auth_conn, app_conn, config, Everyone).await
    } else if config.registry_cache_ttl.is_zero() {
        kez_auth_callout::start_with_registry(auth_conn, app_conn, config, timed).await
    } else {
        let cached =
            kez_auth_callout::CachedRegistry::new(timed, config.registry_cache_ttl, config.registry_cache_capacity);
        kez_auth_callout::start_with_registry(auth_conn, app_conn, config, cached).await
    }
    .unwrap();
    println!("ready");
    std::io::stdout().flush().unwrap();
    // Block until the parent closes our stdin.
    tokio::task::spawn_blocking(|| std::io::stdin().lines().count()).await.unwrap();
    let trips = n.load(Ordering::Relaxed) as u64;
    let registry_mean_us = ns.load(Ordering::Relaxed).checked_div(trips).unwrap_or(0) / 1000;
    println!(
        "{}",
        serde_json::json!({ "stats": handle.stats(), "registry_trips": trips, "registry_mean_us": registry_mean_us })
    );
}

#[tokio::main]
async fn main() {
    if std::env::args().nth(1).as_deref() == Some("--worker") {
        return worker_main().await;
    }
    let args = parse_args();
    let server = NatsServer::start().await.unwrap();
    let registry = TestRegistry::start(&server).await;
    let users: Arc<Vec<User>> = Arc::new((0..args.users).map(|_| User::new()).collect());
    for u in users.iter() {
        registry.register(u).await;
    }
    let url = server.client_url();
    let seed = |kp: &nkeys::KeyPair| kp.seed().unwrap();
    let mut worker = Command::new(std::env::current_exe().unwrap())
        .arg("--worker")
        .env("KEZ_BENCH_URL", &url)
        .env("KEZ_BENCH_WORKER_SEED", seed(server.worker_key()))
        .env("KEZ_BENCH_APP_SEED", seed(server.service_key(ServiceUser::AuthCallout)))
        .env("KEZ_BENCH_ISSUER_SEED", seed(server.issuer_key()))
        .env("KEZ_BENCH_CACHE_TTL", args.registry_cache_ttl.to_string())
        .envs(args.no_registry.then_some(("KEZ_BENCH_NO_REGISTRY", "1")))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut worker_out = std::io::BufReader::new(worker.stdout.take().unwrap()).lines();
    assert_eq!(worker_out.next().unwrap().unwrap(), "ready");
    let ops_seed = server.ops_key().seed().unwrap();
    let static_opts = {
        let seed = ops_seed.clone();
        move |_i: usize| async_nats::ConnectOptions::with_nkey(seed.clone()).connection_timeout(Duration::from_secs(5))
    };
    let callout_opts = {
        let users = users.clone();
        move |i: usize| {
            users[i % users.len()].options(&Events::default()).unwrap().connection_timeout(Duration::from_secs(5))
        }
    };

    println!(
        "connect bench: n={} concurrency={} reps={} users={} registry={} cache_ttl={}s server={} nproc={}",
        args.n,
        args.concurrency,
        args.reps,
        args.users,
        if args.no_registry { "off (diagnostic)" } else { "on" },
        args.registry_cache_ttl,
        server.server_name(),
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0)
    );
    // Warm-up: both paths, not measured.
    run_phase(&url, 200, args.concurrency, static_opts.clone()).await;
    run_phase(&url, 200, args.concurrency, callout_opts.clone()).await;

    let (mut s_rate, mut s_p50, mut s_p99, mut c_rate, mut c_p50, mut c_p99) =
        (vec![], vec![], vec![], vec![], vec![], vec![]);
    let mut failures = 0;
    let pids = [server.pid().unwrap_or(0), worker.id(), std::process::id()];
    let (mut s_cpu, mut c_cpu) = (vec![], vec![]);
    for rep in 1..=args.reps {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let (s, sc) =
            cpu_per_connect(pids, args.n, run_phase(&url, args.n, args.concurrency, static_opts.clone())).await;
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let (c, cc) =
            cpu_per_connect(pids, args.n, run_phase(&url, args.n, args.concurrency, callout_opts.clone())).await;
        s_cpu.push(sc);
        c_cpu.push(cc);
        println!(
            "rep {rep}: static {:>7.0} conn/s p50 {:>6.2} ms p99 {:>6.2} ms | callout {:>7.0} conn/s p50 {:>6.2} ms p99 {:>6.2} ms",
            s.rate,
            ms(s.p50),
            ms(s.p99),
            c.rate,
            ms(c.p50),
            ms(c.p99)
        );
        failures += s.failures + c.failures;
        s_rate.push(s.rate);
        s_p50.push(ms(s.p50));
        s_p99.push(ms(s.p99));
        c_rate.push(c.rate);
        c_p50.push(ms(c.p50));
        c_p99.push(ms(c.p99));
    }
    let (sr, sp50, sp99) = (median(s_rate), median(s_p50), median(s_p99));
    let (cr, cp50, cp99) = (median(c_rate), median(c_p50), median(c_p99));
    println!("median static : {sr:>7.0} conn/s  p50 {sp50:.2} ms  p99 {sp99:.2} ms");
    println!("median callout: {cr:>7.0} conn/s  p50 {cp50:.2} ms  p99 {cp99:.2} ms");
    println!(
        "callout/static: rate {:.2}x  p50 {:.2}x  p99 {:.2}x   (target: rate >= 0.45x, callout p99 <= 20 ms)",
        cr / sr,
        cp50 / sp50,
        cp99 / sp99
    );
    let cpu = |v: &Vec<[f64; 3]>, i: usize| median(v.iter().map(|x| x[i]).collect());
    let (s_tot, c_tot) =
        (cpu(&s_cpu, 0) + cpu(&s_cpu, 1) + cpu(&s_cpu, 2), cpu(&c_cpu, 0) + cpu(&c_cpu, 1) + cpu(&c_cpu, 2));
    println!(
        "CPU per connect (median, us): static  server {:.0} + worker {:.0} + bench/clients+registry {:.0} = {:.0}",
        cpu(&s_cpu, 0),
        cpu(&s_cpu, 1),
        cpu(&s_cpu, 2),
        s_tot
    );
    println!(
        "CPU per connect (median, us): callout server {:.0} + worker {:.0} + bench/clients+registry {:.0} = {:.0}   static/callout CPU = {:.2}x (the rate ratio on a saturated idle box)",
        cpu(&c_cpu, 0),
        cpu(&c_cpu, 1),
        cpu(&c_cpu, 2),
        c_tot,
        s_tot / c_tot
    );
    // Closing stdin stops the worker, which prints its counters.
    drop(worker.stdin.take());
    let report: serde_json::Value = serde_json::from_str(&worker_out.next().unwrap().unwrap()).unwrap();
    worker.wait().unwrap();
    let stats: kez_auth_callout::Stats = serde_json::from_value(report["stats"].clone()).unwrap();
    println!(
        "worker: accepted {} rejected {} {:?}; mean handling {} us; registry round trips {} (mean {} us); failed connects {failures}",
        stats.accepted,
        stats.rejected,
        stats.rejected_by_reason,
        stats.mean_handle_us,
        report["registry_trips"],
        report["registry_mean_us"],
    );
}
