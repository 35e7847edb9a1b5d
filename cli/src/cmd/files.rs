//! Files over Iroh: `share`, `files`, `fetch`, `browse`, `unshare`, `serve`
//! (and the provider that `listen` runs alongside the inbox). The protocol work
//! is in `kez_client::files`; this module is dialogue and output.
//!
//! Environment (see `kez_client::files::config`): `KEZ_IROH_RELAY=off` (no
//! relays / DNS address lookup: tests, LANs), `KEZ_IROH_BIND=ip:port`,
//! `KEZ_IROH_PEERS=<id hex>@<ip:port>,…;…` (direct-address hints; the id is an
//! endpoint id or a user's identity key), `KEZ_IROH_CONNECT_TIMEOUT_MS`.
//!
//! Each data folder is a device with two Iroh endpoints of its own (PROTOCOL.md
//! §7.5): `serve`/`listen` serve with the `serve` key, `fetch` dials with the
//! `fetch` key, so they run side by side. Both are published on the own
//! sigchain before either is used.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use clap::Args;
use futures::future::BoxFuture;
use kez_client::account::Account;
use kez_client::chat;
use kez_client::config::Paths;
use kez_client::contacts::{Change, Contact};
use kez_client::device::LocalDevice;
use kez_client::files::config::NodeConfig;
use kez_client::files::endpoints::{DeviceEndpoints, PinnedChains, ensure_device_endpoints};
use kez_client::files::fetch::{FetchEvent, FetchRequest, Fetcher, Source, fetch};
use kez_client::files::manifest_store::{HttpDirectory, browse as browse_manifest, publish_manifest};
use kez_client::files::node::{Provider, ServeEvent};
use kez_client::files::{FilesError, Shares, share_file};
use kez_client::store::{Store, StoredMessage};
use kez_client::{ClientError, Identity};
use kv_schemas::files::{Entry, FileMeta, parse_entry};
use kv_schemas::sigchain::{IrohRole, PinnedTail};
use kv_schemas::subjects::DeviceId;
use kv_schemas::{ErrorCode, Handle, PublicKey, safety};
use serde_json::json;

use crate::ctx::Ctx;
use crate::output::{fmt_time, json_doc, json_line, short_key};
use crate::say;

#[derive(Args)]
pub struct ShareArgs {
    /// Who may download it (handle of a contact or anyone registered).
    pub handle: String,
    /// The file to share.
    pub path: PathBuf,
}

#[derive(Args)]
pub struct FilesArgs {
    /// List what you shared (from this device) instead of what was offered to you.
    #[arg(long)]
    pub sent: bool,
}

#[derive(Args)]
pub struct FetchArgs {
    /// An offer's id (or the first characters of it, from `kez-chat files`), or a
    /// handle followed by an entry id from `kez-chat browse <handle>`.
    pub target: String,
    /// The entry id when the first argument is a handle.
    pub entry: Option<String>,
    /// Folder to write the file into (default: the current folder).
    #[arg(long, short = 'o', value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// If the sender is offline, wait and download when they are back online.
    #[arg(long)]
    pub wait: bool,
    /// Replace an existing file of the same name.
    #[arg(long)]
    pub force: bool,
}

#[derive(Args)]
pub struct BrowseArgs {
    /// Whose shared files to list.
    pub handle: String,
}

#[derive(Args)]
pub struct UnshareArgs {
    /// The entry id (or its first characters) from `kez-chat files --sent`.
    pub id: String,
}

#[derive(Args)]
pub struct ServeArgs {}

fn human(n: u64) -> String {
    const U: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut i = 0;
    while v >= 1024.0 && i < U.len() - 1 {
        v /= 1024.0;
        i += 1;
    }
    if i == 0 { format!("{n} B") } else { format!("{v:.1} {}", U[i]) }
}

fn files_dir(ctx: &Ctx) -> PathBuf {
    ctx.paths.home().join("files")
}

/// This data folder's device id (`device.json`, created on first use, named after the host).
fn device_id(ctx: &Ctx) -> Result<DeviceId> {
    Ok(LocalDevice::load_or_create(&ctx.paths, &kez_client::device::default_name())?.id)
}

/// Publishes this device's two Iroh endpoints on the own sigchain if they are
/// not there yet (PROTOCOL.md §7.5): peers admit and dial only what the chain lists.
async fn publish_endpoints(
    directory: &HttpDirectory,
    paths: &Paths,
    id: &Identity,
    device: &DeviceId,
    json: bool,
) -> Result<DeviceEndpoints> {
    let own = own_directory(directory, paths, id.public_key());
    let ensured = ensure_device_endpoints(&own, id.signing_key(), device).await.map_err(files_err)?;
    keep_own_tail(paths, &own)?;
    if ensured.added > 0 && !json {
        eprintln!("kez-chat: published this device's file endpoints ({device}) on your sigchain");
    }
    Ok(DeviceEndpoints::derive(id.signing_key(), device))
}

/// The directory with the own chain pinned where this data folder last verified
/// it (PROTOCOL.md §5): every read of the own chain on the way must extend that
/// position, or the command fails (rollback, fork).
fn own_directory<'a>(directory: &'a HttpDirectory, paths: &Paths, key: PublicKey) -> PinnedChains<'a, HttpDirectory> {
    let pin = Account::load(paths).ok().flatten().filter(|a| a.key == key).and_then(|a| a.own_tail);
    PinnedChains::new(directory, key, pin)
}

/// Stores the own-chain position verified last as the new pin.
fn keep_own_tail(paths: &Paths, own: &PinnedChains<'_, HttpDirectory>) -> Result<()> {
    if let Some(mut account) = Account::load(paths)?
        && own.key() == &account.key
        && account.advance_own_tail(own.tail())
    {
        account.save(paths)?;
    }
    Ok(())
}

fn node_config() -> Result<NodeConfig> {
    Ok(NodeConfig::from_env().map_err(|e| ClientError::Usage(e.to_string()))?)
}

fn files_err(e: FilesError) -> anyhow::Error {
    match e {
        FilesError::Offline { .. } => anyhow::Error::new(ClientError::Timeout(e.to_string())),
        other => anyhow::Error::new(other),
    }
}

/// The pinned contact for `handle`, re-checked against the server (first use pins it).
async fn contact(ctx: &Ctx, account: &Account, handle: &Handle) -> Result<Contact> {
    match super::contacts::refresh(ctx, account, handle).await {
        Ok((c, Change::Added)) => {
            eprintln!(
                "kez-chat: {} was not a contact; pinned its key on first use (fingerprint {})",
                handle.display(&account.domain),
                safety::fingerprint(&c.key)
            );
            Ok(c)
        }
        Ok((c, _)) => Ok(c),
        Err(e @ (ClientError::ServerUnreachable { .. } | ClientError::Server { .. })) => {
            let store = Store::open(&ctx.paths.db_dir())?;
            match store.contact(handle)? {
                Some(c) => {
                    eprintln!("kez-chat: warning: could not re-check {handle} ({e}); using the pinned key");
                    Ok(c)
                }
                None => Err(e.into()),
            }
        }
        Err(e) => Err(e.into()),
    }
}

/// The chain position pinned for a contact's key, if the key is a contact's.
fn pin_of(ctx: &Ctx, key: &PublicKey) -> Option<PinnedTail> {
    Store::open(&ctx.paths.db_dir()).ok().and_then(|s| s.contact_by_key(key).ok().flatten()).map(|c| c.tail)
}

/// How to call a key: a contact's handle, else its short form.
fn label_of(ctx: &Ctx, account: &Account, key: &PublicKey) -> String {
    Store::open(&ctx.paths.db_dir())
        .ok()
        .and_then(|s| s.contact_by_key(key).ok().flatten())
        .map(|c| c.handle.display(&account.domain))
        .unwrap_or_else(|| short_key(key))
}

pub async fn share(ctx: &mut Ctx, args: ShareArgs) -> Result<()> {
    let (account, _) = ctx.account_with_config().await?;
    let handle = ctx.handle(&account, &args.handle)?;
    if handle == account.handle {
        bail!(ClientError::Usage("share a file with someone else (your own wrap is added anyway)".into()));
    }
    let meta = std::fs::metadata(&args.path).with_context(|| format!("cannot read {}", args.path.display()))?;
    if !meta.is_file() {
        bail!(ClientError::Usage(format!("{} is not a file", args.path.display())));
    }
    let to = contact(ctx, &account, &handle).await?;
    if let Some(e) = to.key_changed_error() {
        bail!(e);
    }
    let id = ctx.unlock(&account)?;
    let dir = files_dir(ctx);
    if !ctx.json {
        eprintln!("encrypting {} ({})…", args.path.display(), human(meta.len()));
    }
    let (id2, dir2, path, key) = (id.clone(), dir.clone(), args.path.clone(), to.key);
    let out = tokio::task::spawn_blocking(move || share_file(id2.signing_key(), &dir2, &path, &[key]))
        .await
        .context("the encryption task failed")?
        .map_err(files_err)?;

    // The manifest first: once it is committed, the file is browsable even if
    // the chat offer does not go out.
    let server = ctx.server(Some(&account))?;
    let directory = HttpDirectory::new(&server).map_err(files_err)?;
    let own = own_directory(&directory, &ctx.paths, id.public_key());
    let published = publish_manifest(&own, id.signing_key(), &dir).await;
    if let Err(FilesError::Protocol(e)) = &published
        && e.code == ErrorCode::InvalidLink
    {
        // A rollback or fork of the own chain is not a warning.
        bail!(ClientError::ChainInvalid { who: "your own account".into(), reason: e.message.clone() });
    }
    keep_own_tail(&ctx.paths, &own)?;
    if let Err(e) = &published {
        eprintln!("kez-chat: warning: the shared-files manifest was not updated: {e}");
    }

    // The offer names this device's serving endpoint, which must be on the chain
    // before the recipient checks it.
    let device = device_id(ctx)?;
    let endpoints = publish_endpoints(&directory, &ctx.paths, &id, &device, ctx.json).await?;
    let msg = chat::seal_file_offer(&id, &to, &out.entry, &endpoints.key(IrohRole::Serve))?;
    let broker = super::chat::connect(ctx, &account, id.clone()).await?;
    let copied = super::chat::deliver(ctx, &broker, &id, &msg).await;
    broker.close().await;
    let copied = copied?;

    let who = to.handle.display(&account.domain);
    if ctx.json {
        json_doc(&json!({
            "status": "shared",
            "to": to.handle,
            "id": out.entry.id,
            "name": out.record.name,
            "size": out.record.size,
            "blob": out.entry.blob,
            "message_id": msg.record.id,
            "copied_to_own_devices": copied,
            "manifest": published.as_ref().ok().map(|p| json!({"hash": p.hash, "seq": p.seq})),
        }));
    } else {
        say!("shared {} ({}) with {who} — id {}", out.record.name, human(out.record.size), out.entry.id);
        say!("{who} downloads it from this device: keep `kez-chat serve` (or `kez-chat listen`) running");
    }
    Ok(())
}

/// A file offer found in the message store.
struct Offer {
    msg: StoredMessage,
    entry: Entry,
    node_id: String,
}

fn offers(ctx: &Ctx) -> Result<Vec<Offer>> {
    let store = Store::open(&ctx.paths.db_dir())?;
    let mut out = Vec::new();
    for (peer, _) in store.conversations()? {
        for m in store.history(&peer, usize::MAX)? {
            if m.outgoing || m.kind != "file_share" {
                continue;
            }
            let (Some(e), Some(node)) = (m.body.get("entry"), m.body.get("node_id").and_then(|v| v.as_str())) else {
                continue;
            };
            if let Ok(entry) = parse_entry(e) {
                out.push(Offer { node_id: node.to_string(), entry, msg: m });
            }
        }
    }
    out.sort_by_key(|o| o.msg.ts);
    Ok(out)
}

pub async fn list(ctx: &mut Ctx, args: FilesArgs) -> Result<()> {
    let account = Account::require(&ctx.paths)?;
    if args.sent {
        let shares = Shares::load(&files_dir(ctx)).map_err(files_err)?;
        if ctx.json {
            json_doc(&json!({ "shares": shares.shares.iter().map(|s| json!({
                "id": s.id, "name": s.name, "size": s.size, "blob": s.blob, "recipients": s.recipients, "ctime": s.ctime,
            })).collect::<Vec<_>>(), "manifest_seq": shares.manifest_seq }));
        } else if shares.shares.is_empty() {
            say!("you have not shared any files from this device");
        } else {
            for s in &shares.shares {
                let to: Vec<String> = s
                    .recipients
                    .iter()
                    .filter_map(|h| PublicKey::from_hex(h).ok())
                    .map(|k| label_of(ctx, &account, &k))
                    .collect();
                say!("{}  {}  {}  to {}  {}", s.id, s.name, human(s.size), to.join(", "), fmt_time(s.ctime));
            }
        }
        return Ok(());
    }
    let found = offers(ctx)?;
    let id = if found.is_empty() { None } else { Some(ctx.unlock(&account)?) };
    let mut rows = Vec::new();
    for o in &found {
        let meta: Option<FileMeta> =
            id.as_ref().and_then(|id| o.entry.open_for(id.signing_key(), &o.msg.from).ok().flatten()).map(|(_, m)| m);
        rows.push((o, meta));
    }
    if ctx.json {
        json_doc(&json!({ "offers": rows.iter().map(|(o, m)| json!({
            "id": o.entry.id,
            "message_id": o.msg.id,
            "from": o.msg.from,
            "from_label": label_of(ctx, &account, &o.msg.from),
            "ts": o.msg.ts,
            "name": m.as_ref().map(|m| m.name.clone()),
            "size": m.as_ref().map(|m| m.size),
            "blob": o.entry.blob,
        })).collect::<Vec<_>>() }));
    } else if rows.is_empty() {
        say!("no files were offered to you yet (run `kez-chat listen` to receive offers)");
    } else {
        for (o, m) in rows {
            let from = label_of(ctx, &account, &o.msg.from);
            match m {
                Some(m) => say!("{}  {}  {}  from {from}  {}", o.entry.id, m.name, human(m.size), fmt_time(o.msg.ts)),
                None => say!("{}  (cannot be opened with this key)  from {from}  {}", o.entry.id, fmt_time(o.msg.ts)),
            }
        }
        say!("download one with: kez-chat fetch <id>");
    }
    Ok(())
}

pub async fn fetch_cmd(ctx: &mut Ctx, args: FetchArgs) -> Result<()> {
    let account = Account::require(&ctx.paths)?;
    let cfg = node_config()?;
    let target_dir = match &args.out {
        Some(d) => d.clone(),
        None => std::env::current_dir().context("no current folder")?,
    };
    let directory = HttpDirectory::new(&ctx.server(Some(&account))?).map_err(files_err)?;
    let (entry, owner, source, owner_pin, label) = match &args.entry {
        Some(entry_id) => {
            let handle = ctx.handle(&account, &args.target)?;
            let c = contact(ctx, &account, &handle).await?;
            let id = ctx.unlock(&account)?;
            let b = browse_manifest(&directory, id.signing_key(), &c.key, Some(&c.tail)).await.map_err(files_err)?;
            let v = b.find(entry_id).map_err(files_err)?;
            (v.entry.clone(), c.key, Source::Owner, Some(b.tail.clone()), handle.display(&account.domain))
        }
        None => {
            let all = offers(ctx)?;
            let hits: Vec<&Offer> = all
                .iter()
                .filter(|o| o.entry.id.starts_with(&args.target) || o.msg.id.starts_with(&args.target))
                .collect();
            let o = match hits.as_slice() {
                [one] => *one,
                [] => bail!(ClientError::Usage(format!(
                    "no offer {} (see `kez-chat files`; for a browsed file use `kez-chat fetch <handle> <id>`)",
                    args.target
                ))),
                many if many.iter().all(|o| o.entry.id == many[0].entry.id) => many[0],
                _ => bail!(ClientError::Usage(format!("{} matches several offers; give more of the id", args.target))),
            };
            let node = PublicKey::from_hex(&o.node_id).map_err(ClientError::from)?;
            (
                o.entry.clone(),
                o.msg.from,
                Source::Offer(node),
                pin_of(ctx, &o.msg.from),
                label_of(ctx, &account, &o.msg.from),
            )
        }
    };
    let id = ctx.unlock(&account)?;
    let device = device_id(ctx)?;
    publish_endpoints(&directory, &ctx.paths, &id, &device, ctx.json).await?;
    let req = FetchRequest {
        entry,
        owner,
        source,
        owner_pin,
        peer_label: label.clone(),
        target_dir,
        overwrite: args.force,
        wait: args.wait.then_some(Duration::from_secs(2)),
    };
    let bar = indicatif::ProgressBar::hidden();
    if !ctx.json {
        bar.set_draw_target(indicatif::ProgressDrawTarget::stderr());
    }
    bar.set_style(
        indicatif::ProgressStyle::with_template("{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} ETA {eta}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    let json = ctx.json;
    let mut said_offline = false;
    let on = |e: FetchEvent| match e {
        FetchEvent::Opened { name, ct_size, .. } => {
            bar.set_length(ct_size);
            bar.set_message(name);
        }
        FetchEvent::Resuming { have } => {
            bar.set_position(have);
            if !json {
                bar.println(format!("resuming: {} already here", human(have)));
            }
        }
        FetchEvent::Offline { .. } if !said_offline => {
            said_offline = true;
            if json {
                json_line(&json!({ "event": "offline", "peer": label, "waiting": true }));
            } else {
                bar.println(format!("{label} is offline — will download when {label} is back online (Ctrl-C to stop)"));
            }
        }
        FetchEvent::Progress { done, .. } => bar.set_position(done),
        _ => {}
    };
    let cancel = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let files = files_dir(ctx);
    let fetcher = Fetcher { me: id.signing_key(), device: &device, chains: &directory, files_dir: &files, cfg: &cfg };
    let result = fetch(&fetcher, &req, cancel, on).await;
    bar.finish_and_clear();
    let got = match result {
        Ok(g) => g,
        Err(FilesError::Offline { peer, .. }) => bail!(ClientError::Timeout(format!(
            "{peer} is offline; the file will download when {peer} is back online — run `kez-chat fetch {} --wait` to wait for it",
            if let Some(e) = &args.entry { format!("{} {e}", args.target) } else { args.target.clone() }
        ))),
        Err(e) => return Err(files_err(e)),
    };
    let secs = got.transfer_time.as_secs_f64();
    if ctx.json {
        json_doc(&json!({
            "status": "fetched",
            "path": got.path,
            "name": got.meta.name,
            "size": got.meta.size,
            "hash": got.meta.hash,
            "transferred": got.transferred,
            "seconds": secs,
        }));
    } else {
        let rate =
            if secs > 0.0 { format!(", {}/s", human((got.transferred as f64 / secs) as u64)) } else { String::new() };
        say!(
            "fetched {} ({}) from {label}: hash verified{rate} → {}",
            got.meta.name,
            human(got.meta.size),
            got.path.display()
        );
    }
    Ok(())
}

pub async fn browse(ctx: &mut Ctx, args: BrowseArgs) -> Result<()> {
    let account = Account::require(&ctx.paths)?;
    let handle = ctx.handle(&account, &args.handle)?;
    let (owner, pinned, label) = if handle == account.handle {
        (account.key, account.own_tail.clone(), handle.display(&account.domain))
    } else {
        let c = contact(ctx, &account, &handle).await?;
        (c.key, Some(c.tail.clone()), handle.display(&account.domain))
    };
    let id = ctx.unlock(&account)?;
    let directory = HttpDirectory::new(&ctx.server(Some(&account))?).map_err(files_err)?;
    let b = browse_manifest(&directory, id.signing_key(), &owner, pinned.as_ref()).await.map_err(files_err)?;
    if ctx.json {
        json_doc(&json!({
            "owner": owner,
            "manifest": b.manifest.as_ref().map(|m| json!({"hash": m.hash, "seq": m.seq, "ctime": m.ctime})),
            "entries": b.visible.iter().map(|v| json!({
                "id": v.entry.id, "name": v.meta.name, "size": v.meta.size, "hash": v.meta.hash, "blob": v.entry.blob,
            })).collect::<Vec<_>>(),
            "hidden": b.hidden,
        }));
        return Ok(());
    }
    match &b.manifest {
        None => say!("{label} shares no files"),
        Some(m) => {
            say!(
                "{label}'s shared files (manifest #{} of {}, signature and sigchain verified):",
                m.seq,
                fmt_time(m.ctime)
            );
            if b.visible.is_empty() {
                say!("  none shared with you");
            }
            for v in &b.visible {
                say!("  {}  {}  {}", v.entry.id, v.meta.name, human(v.meta.size));
            }
            if b.hidden > 0 {
                say!("  ({} more shared with others)", b.hidden);
            }
            if !b.visible.is_empty() {
                say!("download one with: kez-chat fetch {} <id>", args.handle);
            }
        }
    }
    Ok(())
}

pub async fn unshare(ctx: &mut Ctx, args: UnshareArgs) -> Result<()> {
    let account = Account::require(&ctx.paths)?;
    let dir = files_dir(ctx);
    let shares = Shares::load(&dir).map_err(files_err)?;
    let hits: Vec<_> = shares.shares.iter().filter(|s| s.id.starts_with(&args.id)).collect();
    let rec = match hits.as_slice() {
        [one] => (*one).clone(),
        [] => bail!(ClientError::Usage(format!("no share {} (see `kez-chat files --sent`)", args.id))),
        _ => bail!(ClientError::Usage(format!("{} matches several shares; give more of the id", args.id))),
    };
    let id = ctx.unlock(&account)?;
    kez_client::files::unshare(&dir, &rec.id).map_err(files_err)?;
    let directory = HttpDirectory::new(&ctx.server(Some(&account))?).map_err(files_err)?;
    let own = own_directory(&directory, &ctx.paths, id.public_key());
    let p = publish_manifest(&own, id.signing_key(), &dir).await.map_err(files_err)?;
    keep_own_tail(&ctx.paths, &own)?;
    if ctx.json {
        json_doc(&json!({ "status": "unshared", "id": rec.id, "manifest": {"hash": p.hash, "seq": p.seq} }));
    } else {
        say!("unshared {} — no longer served, and removed from your shared-files manifest (#{})", rec.name, p.seq);
    }
    Ok(())
}

/// Where the provider runs: the data folder's files, the server whose sigchains
/// say which endpoints belong to whom, and this device.
pub struct ProviderSetup {
    pub paths: Paths,
    pub files: PathBuf,
    pub server: String,
    pub device: DeviceId,
    pub handle: String,
    pub json: bool,
}

/// Whether `ip` is in a documentation range (RFC 5737, RFC 3849): placeholders, never a
/// place anyone can reach this device.
fn is_documentation(ip: std::net::IpAddr) -> bool {
    match ip {
        std::net::IpAddr::V4(v4) => {
            let o = v4.octets();
            matches!((o[0], o[1], o[2]), (192, 0, 2) | (198, 51, 100) | (203, 0, 113))
        }
        std::net::IpAddr::V6(v6) => v6.segments()[..2] == [0x2001, 0x0db8],
    }
}

/// The addresses worth printing: what the provider listens on, without placeholders.
fn reachable_addrs(provider: &Provider) -> Vec<std::net::SocketAddr> {
    provider.direct_addrs().into_iter().filter(|a| !is_documentation(a.ip())).collect()
}

/// Runs the provider until the future is dropped or fails; prints what happens.
pub async fn run_provider(setup: ProviderSetup, id: Arc<Identity>) -> Result<()> {
    let ProviderSetup { paths, files, server, device, handle, json } = setup;
    let cfg = node_config()?;
    let directory = HttpDirectory::new(&server).map_err(files_err)?;
    publish_endpoints(&directory, &paths, &id, &device, json).await?;
    let (provider, mut events) =
        Provider::start(id.signing_key(), &device, &files, &cfg, directory).await.map_err(files_err)?;
    let n = Shares::load(&files).map(|s| s.shares.len()).unwrap_or(0);
    if json {
        json_line(&json!({
            "event": "serving",
            "node_id": provider.id_hex(),
            "device": device,
            "addrs": reachable_addrs(&provider),
            "shares": n,
        }));
    } else {
        eprintln!(
            "serving {n} shared file(s) as {handle} — device {device}, node {} on {} (relays {})",
            provider.id_hex(),
            reachable_addrs(&provider).iter().map(ToString::to_string).collect::<Vec<_>>().join(", "),
            if cfg.relay { "on" } else { "off" }
        );
        eprintln!("direct-address hint for others: KEZ_IROH_PEERS={}", provider.hint());
    }
    let mut guard = ProviderGuard(Some(provider));
    loop {
        let ev = tokio::select! {
            ev = events.recv() => ev,
            _ = tokio::signal::ctrl_c() => None,
        };
        let Some(ev) = ev else { break };
        match ev {
            ServeEvent::Serving { peer, endpoint, device, blob } => {
                if json {
                    json_line(&json!({
                        "event": "serving_blob", "peer": peer, "endpoint": endpoint.hex(), "device": device, "blob": blob,
                    }));
                } else {
                    let from = device.map(|d| format!(" (device {d})")).unwrap_or_default();
                    eprintln!("sending {}… to {}{from}", &blob[..12], short_key(&peer));
                }
            }
            ServeEvent::Refused { endpoint, peer, blob } => {
                if json {
                    json_line(&json!({
                        "event": "refused", "peer": peer, "endpoint": endpoint.map(|e| e.hex()), "blob": blob,
                    }));
                } else {
                    let who = match (peer, endpoint) {
                        (Some(p), _) => short_key(&p),
                        (None, Some(e)) => format!("endpoint {}", &e.hex()[..16]),
                        (None, None) => "an unknown peer".into(),
                    };
                    eprintln!(
                        "refused {who} (not a recipient{})",
                        blob.map(|b| format!(" of {}…", &b[..12])).unwrap_or_default()
                    );
                }
            }
            ServeEvent::Broken { id, reason } => eprintln!("kez-chat: warning: share {id} cannot be served: {reason}"),
            ServeEvent::Connected { .. } | ServeEvent::Reloaded { .. } => {}
        }
    }
    if let Some(p) = guard.0.take() {
        p.shutdown().await;
    }
    Ok(())
}

/// Shuts the provider down in the background if its future is dropped (Ctrl-C
/// in `listen`), so the store is released cleanly.
struct ProviderGuard(Option<Provider>);

impl Drop for ProviderGuard {
    fn drop(&mut self) {
        if let Some(p) = self.0.take()
            && let Ok(h) = tokio::runtime::Handle::try_current()
        {
            h.spawn(p.shutdown());
        }
    }
}

/// The provider as a `listen` companion (started once the identity is unlocked).
pub fn provider_task(ctx: &Ctx) -> impl FnOnce(Arc<Identity>) -> BoxFuture<'static, Result<()>> + Send + 'static {
    let account = Account::load(&ctx.paths).ok().flatten();
    let handle = account.as_ref().map(|a| a.handle.display(&a.domain)).unwrap_or_default();
    let setup = ctx.server(account.as_ref()).and_then(|server| {
        Ok(ProviderSetup {
            paths: ctx.paths.clone(),
            files: files_dir(ctx),
            server,
            device: device_id(ctx)?,
            handle,
            json: ctx.json,
        })
    });
    move |id| {
        Box::pin(async move {
            // Listening must go on even when files cannot be served (e.g. a
            // `serve` in another terminal holds the store).
            if let Err(e) = async { run_provider(setup?, id).await }.await {
                eprintln!("kez-chat: warning: not serving files: {e:#}");
            }
            futures::future::pending::<Result<()>>().await
        })
    }
}

pub async fn serve(ctx: &mut Ctx, _args: ServeArgs) -> Result<()> {
    let account = Account::require(&ctx.paths)?;
    let id = ctx.unlock(&account)?;
    if !ctx.json {
        eprintln!("kez-chat serve: keeping your shared files available (Ctrl-C to stop)");
    }
    let setup = ProviderSetup {
        paths: ctx.paths.clone(),
        files: files_dir(ctx),
        server: ctx.server(Some(&account))?,
        device: device_id(ctx)?,
        handle: account.handle.display(&account.domain),
        json: ctx.json,
    };
    run_provider(setup, id).await?;
    if !ctx.json {
        eprintln!("stopped serving");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::is_documentation;

    #[test]
    fn documentation_addresses_are_not_printed() {
        for a in ["192.0.2.1", "198.51.100.7", "203.0.113.255", "2001:db8::1"] {
            assert!(is_documentation(a.parse().expect("ip")), "{a}");
        }
        for a in ["127.0.0.1", "192.168.1.2", "10.0.0.1", "::1", "2001:470::1"] {
            assert!(!is_documentation(a.parse().expect("ip")), "{a}");
        }
    }
}
