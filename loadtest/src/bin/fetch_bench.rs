//! Benchmark (not a test): kez-chat's file fetch against a plain iroh-blobs
//! transfer of the same bytes, in the same run, each side in its own process
//! on 127.0.0.1 with relays and address lookup off.
//!
//! ```text
//! cargo run --release -p kez-loadtest --bin fetch_bench -- [--mib 256] [--runs 2]
//! ```
//!
//! * kez: `files::share_file` encrypts the file (timed separately); a child
//!   process runs `files::Provider` (ACL, blob imported by reference); another
//!   runs `files::fetch` (connect, bao-verified download into a per-blob
//!   store, re-hash, STREAM-decrypt, plaintext hash check, atomic rename) —
//!   exactly what `kez-chat serve` / `kez-chat fetch` run.
//! * plain: a child serves the same ciphertext file with a bare
//!   `BlobsProtocol` (no events) on `/iroh-bytes/4`; another fetches it with
//!   `connect` + `remote().fetch` into an FsStore, then exports it to a file.
//!
//! Each child reports its peak RSS (`VmHWM` of /proc/self/status).

use std::io::{BufRead as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use ed25519_dalek::SigningKey;
use kez_client::files::config::NodeConfig;
use kez_client::files::endpoints::{Chains, DeviceEndpoints, ensure_device_endpoints};
use kez_client::files::fetch::{FetchRequest, Fetcher, Source, fetch};
use kez_client::files::node::{Provider, bind_endpoint, open_store};
use kez_client::files::{Shares, share_file};
use kv_schemas::PublicKey;
use kv_schemas::sigchain::IrohRole;
use kv_schemas::subjects::DeviceId;
use serde_json::{Value, json};

const ALICE: [u8; 32] = [0xA1; 32];
const BOB: [u8; 32] = [0xB0; 32];
const ALICE_DEVICE: &str = "a1a1a1a1a1a1a1a1";
const BOB_DEVICE: &str = "b0b0b0b0b0b0b0b0";

/// Sigchains in files under `<files>/chains`, shared by the provider and fetcher processes
/// (the bench has no server; the provider and fetcher verify what they read).
struct FileChains(PathBuf);

impl FileChains {
    fn at(files: &Path) -> Self {
        Self(files.join("chains"))
    }
    fn path(&self, key: &PublicKey) -> PathBuf {
        self.0.join(format!("{}.json", key.hex()))
    }
}

impl Chains for FileChains {
    async fn chain(&self, key: &PublicKey) -> kez_client::files::Result<Vec<Value>> {
        match std::fs::read(self.path(key)) {
            Ok(b) => Ok(serde_json::from_slice(&b).unwrap_or_default()),
            Err(_) => Ok(Vec::new()),
        }
    }
    async fn append_link(&self, key: &PublicKey, link: Vec<u8>) -> kez_client::files::Result<()> {
        let mut links = self.chain(key).await?;
        links.push(serde_json::from_slice(&link).unwrap_or(Value::Null));
        std::fs::create_dir_all(&self.0)?;
        std::fs::write(self.path(key), serde_json::to_vec(&links).unwrap_or_default())?;
        Ok(())
    }
}

fn device(id: &str) -> Result<DeviceId> {
    Ok(id.parse()?)
}

fn vm_hwm_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("VmHWM:")).map(str::to_string))
        .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        .unwrap_or(0)
}

fn loopback_cfg(port: u16) -> NodeConfig {
    let mut cfg = NodeConfig::loopback();
    cfg.bind = Some(format!("127.0.0.1:{port}").parse().expect("addr"));
    cfg.connect_timeout = Duration::from_secs(5);
    cfg
}

/// Child: serve until stdin closes or says "stop", then print peak RSS.
async fn child_provider(kind: &str, files: &Path, port: u16) -> Result<()> {
    let cfg = loopback_cfg(port);
    let stdin_wait = || {
        let mut line = String::new();
        let _ = std::io::stdin().lock().read_line(&mut line);
    };
    match kind {
        "kez" => {
            let alice = SigningKey::from_bytes(&ALICE);
            let (p, mut ev) =
                Provider::start(&alice, &device(ALICE_DEVICE)?, files, &cfg, FileChains::at(files)).await?;
            tokio::spawn(async move { while ev.recv().await.is_some() {} });
            println!("ready");
            std::io::stdout().flush()?;
            tokio::task::spawn_blocking(stdin_wait).await?;
            let hwm = vm_hwm_kib();
            p.shutdown().await;
            println!("{}", json!({ "vmhwm_kib": hwm }));
        }
        "plain" => {
            let shares = Shares::load(files)?;
            let rec = shares.shares.first().context("no share")?;
            let store = open_store(&files.join("plain-store")).await?;
            let tag = store
                .blobs()
                .add_path_with_opts(iroh_blobs::api::blobs::AddPathOptions {
                    path: files.join(&rec.blob_file),
                    format: iroh_blobs::BlobFormat::Raw,
                    mode: iroh_blobs::api::blobs::ImportMode::TryReference,
                })
                .await?;
            if tag.hash.to_hex() != rec.blob {
                bail!("plain import hash mismatch");
            }
            let ep = bind_endpoint(&ALICE, &cfg, cfg.bind, vec![iroh_blobs::ALPN.to_vec()]).await?;
            let blobs = iroh_blobs::BlobsProtocol::new(&store, None);
            let router = iroh::protocol::Router::builder(ep).accept(iroh_blobs::ALPN, blobs).spawn();
            println!("ready");
            std::io::stdout().flush()?;
            tokio::task::spawn_blocking(stdin_wait).await?;
            let hwm = vm_hwm_kib();
            let _ = router.shutdown().await;
            store.shutdown().await.ok();
            println!("{}", json!({ "vmhwm_kib": hwm }));
        }
        _ => bail!("unknown provider kind"),
    }
    Ok(())
}

/// Child: fetch once, print timing and peak RSS.
async fn child_fetch(kind: &str, files: &Path, port: u16, work: &Path) -> Result<()> {
    let shares = Shares::load(files)?;
    let rec = shares.shares.first().context("no share")?;
    let entry = rec.entry()?;
    let alice = PublicKey::of(&SigningKey::from_bytes(&ALICE));
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse()?;
    let t0 = Instant::now();
    let (transfer, bytes) = match kind {
        "kez" => {
            let mut cfg = NodeConfig::loopback();
            cfg.add_hint(*alice.as_bytes(), addr);
            let serve =
                DeviceEndpoints::derive(&SigningKey::from_bytes(&ALICE), &device(ALICE_DEVICE)?).key(IrohRole::Serve);
            let req = FetchRequest {
                entry: entry.clone(),
                owner: alice,
                source: Source::Offer(serve),
                owner_pin: None,
                peer_label: "alice".into(),
                target_dir: work.join("out"),
                overwrite: true,
                wait: None,
            };
            let bob = SigningKey::from_bytes(&BOB);
            let chains = FileChains::at(files);
            let bob_device = device(BOB_DEVICE)?;
            let fetcher =
                Fetcher { me: &bob, device: &bob_device, chains: &chains, files_dir: &work.join("files"), cfg: &cfg };
            let verify_at = std::cell::Cell::new(None);
            let got = fetch(&fetcher, &req, std::future::pending(), |e| {
                if e == kez_client::files::FetchEvent::Verifying {
                    verify_at.set(Some(Instant::now()));
                }
            })
            .await?;
            if let Some(v) = verify_at.get() {
                eprintln!(
                    "  kez fetch phases: before download {:.2} s, transfer {:.2} s, verify+decrypt+write {:.2} s",
                    (v - t0).as_secs_f64() - got.transfer_time.as_secs_f64(),
                    got.transfer_time.as_secs_f64(),
                    v.elapsed().as_secs_f64()
                );
            }
            (got.transfer_time.as_secs_f64(), got.meta.size)
        }
        "plain" => {
            let cfg = NodeConfig::loopback();
            let ep = bind_endpoint(&BOB, &cfg, cfg.bind, vec![]).await?;
            let store = open_store(&work.join("plain-recv")).await?;
            let id = iroh::EndpointId::from_bytes(alice.as_bytes())?;
            let t = Instant::now();
            let conn = ep.connect(iroh::EndpointAddr::new(id).with_ip_addr(addr), iroh_blobs::ALPN).await?;
            let hash: iroh_blobs::Hash = rec.blob.parse()?;
            store.remote().fetch(conn, hash).await?;
            let transfer = t.elapsed().as_secs_f64();
            std::fs::create_dir_all(work.join("out"))?;
            let n = store.blobs().export(hash, work.join("out").join("plain.bin")).await?;
            store.shutdown().await.ok();
            ep.close().await;
            (transfer, n)
        }
        _ => bail!("unknown fetch kind"),
    };
    println!(
        "{}",
        json!({ "total_s": t0.elapsed().as_secs_f64(), "transfer_s": transfer, "bytes": bytes, "vmhwm_kib": vm_hwm_kib() })
    );
    Ok(())
}

fn self_cmd(args: &[String]) -> Command {
    let mut c = Command::new(std::env::current_exe().expect("exe"));
    c.args(args);
    c
}

fn last_json(out: &[u8]) -> Result<Value> {
    let text = String::from_utf8_lossy(out);
    let line = text.lines().rev().find(|l| l.starts_with('{')).context("child printed no result")?;
    Ok(serde_json::from_str(line)?)
}

fn start_provider(kind: &str, files: &Path, port: u16) -> Result<(Child, std::process::ChildStdout)> {
    let mut child = self_cmd(&["provider".into(), kind.into(), files.display().to_string(), port.to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()?;
    let mut out = child.stdout.take().context("stdout")?;
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    while !line.ends_with(b"ready\n") {
        if std::io::Read::read(&mut out, &mut byte)? == 0 {
            bail!("provider exited before it was ready");
        }
        line.push(byte[0]);
    }
    Ok((child, out))
}

fn stop_provider(mut child: Child, mut out: std::process::ChildStdout) -> Result<Value> {
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(b"stop\n");
    }
    let mut rest = Vec::new();
    std::io::Read::read_to_end(&mut out, &mut rest)?;
    child.wait()?;
    last_json(&rest)
}

fn run_pair(kind: &str, files: &Path, work: &Path) -> Result<(Value, Value)> {
    let port = std::net::UdpSocket::bind("127.0.0.1:0")?.local_addr()?.port();
    let (prov, out) = start_provider(kind, files, port)?;
    let _ = std::fs::remove_dir_all(work);
    std::fs::create_dir_all(work)?;
    let fetched = self_cmd(&[
        "fetcher".into(),
        kind.into(),
        files.display().to_string(),
        port.to_string(),
        work.display().to_string(),
    ])
    .stderr(Stdio::inherit())
    .output()?;
    let p = stop_provider(prov, out)?;
    if !fetched.status.success() {
        bail!("{kind} fetch failed");
    }
    Ok((last_json(&fetched.stdout)?, p))
}

fn mbps(bytes: f64, s: f64) -> f64 {
    bytes / s / 1e6
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    match args.first().map(String::as_str) {
        Some("provider") => return rt.block_on(child_provider(&args[1], Path::new(&args[2]), args[3].parse()?)),
        Some("fetcher") => {
            return rt.block_on(child_fetch(&args[1], Path::new(&args[2]), args[3].parse()?, Path::new(&args[4])));
        }
        _ => {}
    }
    let mut mib = 256u64;
    let mut runs = 2u32;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--mib" => mib = it.next().context("--mib N")?.parse()?,
            "--runs" => runs = it.next().context("--runs N")?.parse()?,
            other => bail!("unknown argument {other}"),
        }
    }
    let tmp = tempfile::tempdir()?;
    let root: PathBuf = tmp.path().to_path_buf();
    let src = root.join("payload.bin");
    {
        let mut f = std::io::BufWriter::new(std::fs::File::create(&src)?);
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut buf = vec![0u8; 1 << 20];
        for _ in 0..mib {
            for b in buf.iter_mut() {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                *b = (x >> 32) as u8;
            }
            f.write_all(&buf)?;
        }
    }
    let size = (mib << 20) as f64;
    let files = root.join("alice-files");
    let t = Instant::now();
    let bob = PublicKey::of(&SigningKey::from_bytes(&BOB));
    let shared = share_file(&SigningKey::from_bytes(&ALICE), &files, &src, &[bob])?;
    // Both devices' endpoints on their (file-backed) chains, as the CLI does before serving.
    let chains = FileChains::at(&files);
    rt.block_on(async {
        ensure_device_endpoints(&chains, &SigningKey::from_bytes(&ALICE), &device(ALICE_DEVICE)?).await?;
        ensure_device_endpoints(&chains, &SigningKey::from_bytes(&BOB), &device(BOB_DEVICE)?).await?;
        anyhow::Ok(())
    })?;
    let share_s = t.elapsed().as_secs_f64();
    println!(
        "fetch_bench: {mib} MiB, 127.0.0.1, relays off; share (encrypt + hash) {share_s:.2} s = {:.0} MB/s",
        mbps(size, share_s)
    );
    println!("ciphertext {} bytes, blob {}", shared.entry.ct_size, &shared.entry.blob[..16]);

    let mut rows = Vec::new();
    for run in 1..=runs {
        for kind in ["plain", "kez"] {
            let (f, p) = run_pair(kind, &files, &root.join(format!("work-{kind}")))?;
            let total = f["total_s"].as_f64().unwrap_or(0.0);
            let transfer = f["transfer_s"].as_f64().unwrap_or(0.0);
            println!(
                "run {run} {kind:5}: end-to-end {total:.2} s = {:6.1} MB/s | transfer {transfer:.2} s = {:6.1} MB/s | peak RSS fetcher {:>4} MiB, provider {:>4} MiB",
                mbps(size, total),
                mbps(size, transfer),
                f["vmhwm_kib"].as_u64().unwrap_or(0) / 1024,
                p["vmhwm_kib"].as_u64().unwrap_or(0) / 1024,
            );
            rows.push((
                kind,
                total,
                transfer,
                f["vmhwm_kib"].as_u64().unwrap_or(0),
                p["vmhwm_kib"].as_u64().unwrap_or(0),
            ));
        }
    }
    let best = |k: &str, sel: fn(&(&str, f64, f64, u64, u64)) -> f64| {
        rows.iter().filter(|r| r.0 == k).map(sel).fold(f64::INFINITY, f64::min)
    };
    let peak = |k: &str, sel: fn(&(&str, f64, f64, u64, u64)) -> u64| {
        rows.iter().filter(|r| r.0 == k).map(sel).max().unwrap_or(0)
    };
    let (pk_total, pl_total) = (best("kez", |r| r.1), best("plain", |r| r.1));
    let (pk_tr, pl_tr) = (best("kez", |r| r.2), best("plain", |r| r.2));
    println!("--- best of {runs} ---");
    println!(
        "end-to-end throughput: kez {:.1} MB/s, plain {:.1} MB/s, ratio kez/plain = {:.2}",
        mbps(size, pk_total),
        mbps(size, pl_total),
        pl_total / pk_total
    );
    println!(
        "transfer only:         kez {:.1} MB/s, plain {:.1} MB/s, ratio kez/plain = {:.2}",
        mbps(size, pk_tr),
        mbps(size, pl_tr),
        pl_tr / pk_tr
    );
    let (kf, pf) = (peak("kez", |r| r.3), peak("plain", |r| r.3));
    let (kp, pp) = (peak("kez", |r| r.4), peak("plain", |r| r.4));
    println!(
        "peak RSS fetcher:  kez {} MiB, plain {} MiB, ratio {:.2}",
        kf / 1024,
        pf / 1024,
        kf as f64 / pf.max(1) as f64
    );
    println!(
        "peak RSS provider: kez {} MiB, plain {} MiB, ratio {:.2}",
        kp / 1024,
        pp / 1024,
        kp as f64 / pp.max(1) as f64
    );
    Ok(())
}
