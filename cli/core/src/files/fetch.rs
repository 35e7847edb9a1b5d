//! Fetching a shared file on demand from the sender's endpoint.
//!
//! Before anything is dialled, the endpoint comes from the owner's verified
//! sigchain: an offer's `node_id` must be a live `serve` (or wave-1) endpoint of
//! the sender, and a manifest entry is fetched from each such endpoint of the
//! owner in turn (PROTOCOL.md §7.5). The fetching side uses the device's own
//! `fetch` endpoint key, so it never collides with a provider of the same user.
//!
//! The ciphertext goes into a per-blob iroh-blobs store under
//! `<files>/downloads/<blob hash>/` (verified incrementally against the BLAKE3
//! hash by bao; partial data survives interruption, so the next fetch asks
//! only for the missing ranges). Then the blob is read back, hashed again,
//! decrypted chunk by chunk into a temp file in the target folder, the
//! plaintext hash and size are checked against the signed metadata, and the
//! temp file is renamed into place. The download folder is removed at the end.

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use ed25519_dalek::SigningKey;
use futures::StreamExt as _;
use iroh::{Endpoint, EndpointAddr};
use iroh_blobs::Hash;
use iroh_blobs::api::remote::GetProgressItem;
use iroh_blobs::protocol::ERR_PERMISSION;
use kv_schemas::PublicKey;
use kv_schemas::files::{CHUNK, Decryptor, Entry, FileMeta, TAG, Unpadder};
use kv_schemas::sigchain::{IrohRole, PinnedTail};
use kv_schemas::subjects::DeviceId;

use super::config::NodeConfig;
use super::endpoints::{Chains, DeviceEndpoints, serving_endpoints, verified_chain};
use super::node::{bind_endpoint, open_store};
use super::{FILES_ALPN, FilesError, Result, endpoint_id};

/// Which of the owner's endpoints a fetch dials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// The `node_id` of a `file_share` offer: dialled only if it is a live
    /// `serve` (or wave-1) endpoint on the sender's sigchain.
    Offer(PublicKey),
    /// Every `serve` (and wave-1) endpoint on the owner's sigchain, newest
    /// device first, until one serves the blob (a manifest entry).
    Owner,
}

/// Who fetches: the reader's key (to open the entry), its device (whose
/// `fetch` endpoint dials), where sigchains come from, the files folder and
/// the endpoint configuration.
#[derive(Debug, Clone, Copy)]
pub struct Fetcher<'a, C> {
    /// The reader's identity key.
    pub me: &'a SigningKey,
    /// This device.
    pub device: &'a DeviceId,
    /// Sigchains (the owner's, to find its endpoints).
    pub chains: &'a C,
    /// `<data>/files`.
    pub files_dir: &'a Path,
    /// Endpoint configuration.
    pub cfg: &'a NodeConfig,
}

/// What to fetch and where to put it.
#[derive(Debug, Clone)]
pub struct FetchRequest {
    /// The entry (from a `file_share` offer or a verified manifest).
    pub entry: Entry,
    /// The owner who signed the offer or manifest (wraps are bound to it).
    pub owner: PublicKey,
    /// Which of the owner's endpoints to dial.
    pub source: Source,
    /// The owner's chain position verified before (a contact's pin): a chain
    /// that does not extend it is refused.
    pub owner_pin: Option<PinnedTail>,
    /// How to name the owner in messages (`alice`).
    pub peer_label: String,
    /// Folder the file is written into.
    pub target_dir: PathBuf,
    /// Replace an existing file of the same name.
    pub overwrite: bool,
    /// When the owner is offline: `None` fails at once with
    /// [`FilesError::Offline`]; `Some(interval)` retries until they are back.
    pub wait: Option<Duration>,
}

/// Progress and state changes, for the UI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FetchEvent {
    /// The entry opened: what is coming.
    Opened {
        /// File name.
        name: String,
        /// Plaintext size.
        size: u64,
        /// Ciphertext size (the progress total).
        ct_size: u64,
    },
    /// Bytes already here from an interrupted fetch.
    Resuming {
        /// Ciphertext bytes already local.
        have: u64,
    },
    /// Dialling the owner's endpoint.
    Connecting,
    /// The owner did not answer; with `wait` the fetch retries.
    Offline {
        /// How many attempts failed so far.
        attempts: u32,
        /// Whether it keeps trying.
        waiting: bool,
    },
    /// Connected; downloading.
    Connected,
    /// Ciphertext bytes present locally (including resumed ones) of `total`.
    Progress {
        /// Bytes so far.
        done: u64,
        /// Total ciphertext bytes.
        total: u64,
    },
    /// Downloaded; checking hashes and decrypting.
    Verifying,
}

/// A completed fetch.
#[derive(Debug, Clone)]
pub struct Fetched {
    /// Where the file is.
    pub path: PathBuf,
    /// Its metadata (name, size, plaintext hash), verified.
    pub meta: FileMeta,
    /// Ciphertext bytes transferred by this run (less than the total when resumed).
    pub transferred: u64,
    /// Time spent transferring (connect to last byte).
    pub transfer_time: Duration,
}

/// Fetches, verifies and writes `req`. `cancel` resolving interrupts the fetch
/// cleanly (partial data is kept for the next run) with [`FilesError::Interrupted`].
pub async fn fetch<C: Chains>(
    f: &Fetcher<'_, C>,
    req: &FetchRequest,
    cancel: impl Future<Output = ()>,
    mut on: impl FnMut(FetchEvent),
) -> Result<Fetched> {
    let (me, files_dir, cfg) = (f.me, f.files_dir, f.cfg);
    let (file_key, meta) = req.entry.open_for(me, &req.owner)?.ok_or(FilesError::NotForMe)?;
    let candidates = dial_candidates(f.chains, req).await?;
    let final_path = req.target_dir.join(&meta.name);
    if !req.overwrite && final_path.exists() {
        return Err(FilesError::Other(format!("{} already exists (use --force to replace it)", final_path.display())));
    }
    std::fs::create_dir_all(&req.target_dir)?;
    let hash = Hash::from_bytes(req.entry.blob_hash());
    let total = req.entry.ct_size;
    on(FetchEvent::Opened { name: meta.name.clone(), size: meta.size, ct_size: total });

    let dl_dir = files_dir.join("downloads").join(&req.entry.blob);
    let store = open_store(&dl_dir).await.map_err(|e| match e {
        FilesError::Other(t) if t.contains("in use") => {
            FilesError::Other(format!("{} is already being downloaded by another kez-chat process", meta.name))
        }
        e => e,
    })?;

    tokio::pin!(cancel);
    let keys = DeviceEndpoints::derive(me, f.device);
    let res =
        download(keys.secret(IrohRole::Fetch), cfg, req, &candidates, &store, hash, total, &mut cancel, &mut on).await;
    let (transferred, transfer_time) = match res {
        Ok(v) => v,
        Err(e) => {
            let _ = tokio::time::timeout(Duration::from_secs(5), store.shutdown()).await;
            return Err(e);
        }
    };

    on(FetchEvent::Verifying);
    let written = decrypt_to(&store, hash, &req.entry, file_key, &meta, &req.target_dir, &final_path).await;
    let _ = tokio::time::timeout(Duration::from_secs(5), store.shutdown()).await;
    match written {
        Ok(()) => {
            let _ = std::fs::remove_dir_all(&dl_dir);
            Ok(Fetched { path: final_path, meta, transferred, transfer_time })
        }
        Err(e) => {
            if matches!(e, FilesError::Tampered(_)) {
                // Verified-but-wrong bytes are useless; start over next time.
                let _ = std::fs::remove_dir_all(&dl_dir);
            }
            Err(e)
        }
    }
}

/// The owner's endpoints this fetch may dial, from its verified sigchain.
async fn dial_candidates<C: Chains>(chains: &C, req: &FetchRequest) -> Result<Vec<PublicKey>> {
    let state = verified_chain(chains, &req.owner, req.owner_pin.as_ref()).await?;
    let serving = serving_endpoints(&state);
    match &req.source {
        Source::Offer(node) if serving.contains(node) => Ok(vec![*node]),
        Source::Offer(node) => Err(FilesError::NotAnEndpoint { peer: req.peer_label.clone(), node_id: node.hex() }),
        Source::Owner if serving.is_empty() => Err(FilesError::NoEndpoint { peer: req.peer_label.clone() }),
        Source::Owner => Ok(serving),
    }
}

/// Makes sure the whole blob is in `store`, dialling the owner if needed.
#[allow(clippy::too_many_arguments)]
async fn download(
    secret: &[u8; 32],
    cfg: &NodeConfig,
    req: &FetchRequest,
    candidates: &[PublicKey],
    store: &iroh_blobs::store::fs::FsStore,
    hash: Hash,
    total: u64,
    cancel: &mut std::pin::Pin<&mut impl Future<Output = ()>>,
    on: &mut impl FnMut(FetchEvent),
) -> Result<(u64, Duration)> {
    let local = store.remote().local(hash).await.map_err(|e| FilesError::other("reading the partial download", e))?;
    if local.is_complete() {
        on(FetchEvent::Progress { done: total, total });
        return Ok((0, Duration::ZERO));
    }
    let have = local.local_bytes();
    if have > 0 {
        on(FetchEvent::Resuming { have });
    }

    let mut addrs = Vec::new();
    for node in candidates {
        let hints: Vec<SocketAddr> = cfg.addrs_for(node, &req.owner);
        if !cfg.relay && hints.is_empty() {
            continue;
        }
        let mut addr = EndpointAddr::new(endpoint_id(node)?);
        for h in &hints {
            addr = addr.with_ip_addr(*h);
        }
        addrs.push(addr);
    }
    if addrs.is_empty() {
        return Err(FilesError::Other(format!(
            "no address known for {}'s device: relays are off (KEZ_IROH_RELAY=off) and KEZ_IROH_PEERS has no hint for {} (or for {})",
            req.peer_label,
            candidates.iter().map(PublicKey::hex).collect::<Vec<_>>().join(", "),
            req.owner.hex()
        )));
    }
    let endpoint = bind_endpoint(secret, cfg, cfg.client_bind(), vec![]).await?;
    let res = download_with(&endpoint, &addrs, cfg, req, store, hash, have, total, cancel, on).await;
    let _ = tokio::time::timeout(Duration::from_secs(2), endpoint.close()).await;
    res
}

/// Tries each endpoint in turn until one delivers the blob; with `req.wait`,
/// keeps trying every `wait` until one does (or the fetch is cancelled).
#[allow(clippy::too_many_arguments)]
async fn download_with(
    endpoint: &Endpoint,
    addrs: &[EndpointAddr],
    cfg: &NodeConfig,
    req: &FetchRequest,
    store: &iroh_blobs::store::fs::FsStore,
    hash: Hash,
    mut have: u64,
    total: u64,
    cancel: &mut std::pin::Pin<&mut impl Future<Output = ()>>,
    on: &mut impl FnMut(FetchEvent),
) -> Result<(u64, Duration)> {
    let interrupted = |have: u64| FilesError::Interrupted { have, total };
    let mut attempts = 0u32;
    loop {
        // What this round of dialling every endpoint ran into.
        let (mut offline, mut refused, mut broke) = (false, false, None::<String>);
        for addr in addrs {
            on(FetchEvent::Connecting);
            let started = Instant::now();
            let conn = tokio::select! {
                r = tokio::time::timeout(cfg.connect_timeout, endpoint.connect(addr.clone(), FILES_ALPN)) => r,
                _ = cancel.as_mut() => return Err(interrupted(have)),
            };
            let conn = match conn {
                Ok(Ok(c)) => c,
                other => {
                    if let Ok(Err(e)) = &other {
                        tracing::debug!("connect to {} ({}) failed: {e:#}", req.peer_label, addr.id);
                    }
                    offline = true;
                    continue;
                }
            };
            on(FetchEvent::Connected);
            let base = have;
            let mut stream = Box::pin(store.remote().fetch(conn.clone(), hash).stream());
            let mut last_emit = 0u64;
            let outcome = loop {
                let item = tokio::select! {
                    i = stream.next() => i,
                    _ = cancel.as_mut() => {
                        drop(stream);
                        conn.close(0u32.into(), b"cancelled");
                        let now = store.remote().local(hash).await.map(|l| l.local_bytes()).unwrap_or(have);
                        return Err(interrupted(now));
                    }
                };
                match item {
                    Some(GetProgressItem::Progress(n)) => {
                        // The signed entry names the size: a provider sending more is cut
                        // off now, not after it filled the disk (the hash check comes last).
                        // Per attempt, since a resumed transfer may fetch a partial chunk group again.
                        if n > total {
                            drop(stream);
                            conn.close(0u32.into(), b"too large");
                            return Err(FilesError::Tampered(format!(
                                "{}'s device sent more than the {total} bytes the entry names",
                                req.peer_label
                            )));
                        }
                        let done = (base + n).min(total);
                        if done - last_emit.min(done) >= 256 * 1024 || done == total {
                            last_emit = done;
                            on(FetchEvent::Progress { done, total });
                        }
                    }
                    Some(GetProgressItem::Done(stats)) => break Ok(stats.payload_bytes_read),
                    Some(GetProgressItem::Error(e)) => break Err(classify(&e)),
                    None => break Err(Failure::Other("the transfer ended without a result".into())),
                }
            };
            conn.close(0u32.into(), b"done");
            match outcome {
                Ok(read) => {
                    on(FetchEvent::Progress { done: total, total });
                    return Ok((read, started.elapsed()));
                }
                // Another device of the owner may hold the share: try the next one.
                Err(Failure::Permission) => refused = true,
                Err(Failure::Mismatch(text)) => {
                    return Err(FilesError::Tampered(format!(
                        "{}'s device sent bytes that do not match the blob hash ({text})",
                        req.peer_label
                    )));
                }
                Err(Failure::Other(text)) => {
                    have = store.remote().local(hash).await.map(|l| l.local_bytes()).unwrap_or(have);
                    broke = Some(text);
                }
            }
        }
        attempts += 1;
        let Some(interval) = req.wait else {
            // No waiting: a transfer that broke off says how to resume; a device
            // that answered and refused is a clearer answer than one that did not.
            if let Some(text) = broke {
                return Err(FilesError::Other(format!(
                    "the transfer from {} broke off ({text}); {have} of {total} bytes are kept, run fetch again to resume",
                    req.peer_label
                )));
            }
            if refused {
                return Err(FilesError::Refused { peer: req.peer_label.clone() });
            }
            return Err(FilesError::Offline {
                peer: req.peer_label.clone(),
                secs: cfg.connect_timeout.as_secs().max(1),
            });
        };
        // Waiting only helps while some device may still come online or resume.
        if refused && !offline && broke.is_none() {
            return Err(FilesError::Refused { peer: req.peer_label.clone() });
        }
        on(FetchEvent::Offline { attempts, waiting: true });
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = cancel.as_mut() => return Err(interrupted(have)),
        }
    }
}

enum Failure {
    Permission,
    Mismatch(String),
    Other(String),
}

fn classify(e: &iroh_blobs::get::GetError) -> Failure {
    let text = format!("{e:#}");
    if e.iroh_error_code() == Some(ERR_PERMISSION) || text.contains("permission") {
        Failure::Permission
    } else if format!("{e:?}").contains("HashMismatch") {
        Failure::Mismatch(text)
    } else {
        Failure::Other(text)
    }
}

/// Moves the verified blob out of the store (by reference: no copy when the
/// store holds it as a file), then re-hashes and decrypts it on a blocking
/// thread into a temp file next to `final_path`, checks the plaintext, and
/// renames. (Reading through the store's async reader was ~3x slower.)
async fn decrypt_to(
    store: &iroh_blobs::store::fs::FsStore,
    hash: Hash,
    entry: &Entry,
    file_key: [u8; 32],
    meta: &FileMeta,
    dir: &Path,
    final_path: &Path,
) -> Result<()> {
    use iroh_blobs::api::blobs::{ExportMode, ExportOptions};
    let ct_path = dir.join(super::temp_name(&meta.name, "kez-ct"));
    store
        .blobs()
        .export_with_opts(ExportOptions { hash, mode: ExportMode::TryReference, target: ct_path.clone() })
        .finish()
        .await
        .map_err(|e| FilesError::other("reading the downloaded blob", e))?;
    let tmp = dir.join(super::temp_name(&meta.name, "kez-part"));
    let (entry, meta2, tmp2, ct2, fin) =
        (entry.clone(), meta.clone(), tmp.clone(), ct_path.clone(), final_path.to_path_buf());
    let res = tokio::task::spawn_blocking(move || decrypt_file(&ct2, &tmp2, &fin, &entry, file_key, &meta2))
        .await
        .map_err(|e| FilesError::other("decrypting", e))
        .and_then(|r| r);
    let _ = std::fs::remove_file(&ct_path);
    if res.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    res
}

fn decrypt_file(
    ct_path: &Path,
    tmp: &Path,
    final_path: &Path,
    entry: &Entry,
    file_key: [u8; 32],
    meta: &FileMeta,
) -> Result<()> {
    use std::io::{Read as _, Write as _};
    let tampered = |m: String| FilesError::Tampered(m);
    let mut input = std::fs::File::open(ct_path)?;
    let mut out = std::io::BufWriter::with_capacity(16 * CHUNK, std::fs::File::create(tmp)?);
    let mut dec = Decryptor::new(file_key, entry.commit_bytes());
    let mut unpad = Unpadder::new(meta.size);
    let mut ct_hash = blake3::Hasher::new();
    let mut pt_hash = blake3::Hasher::new();
    let mut buf = vec![0u8; 16 * (CHUNK + TAG)];
    let mut plain = Vec::with_capacity(buf.len() + CHUNK);
    let (mut ct_len, mut pt_len) = (0u64, 0u64);
    loop {
        let mut n = 0;
        while n < buf.len() {
            match input.read(&mut buf[n..]) {
                Ok(0) => break,
                Ok(k) => n += k,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e.into()),
            }
        }
        if n == 0 {
            break;
        }
        ct_len += n as u64;
        ct_hash.update(&buf[..n]);
        for piece in buf[..n].chunks(CHUNK + TAG) {
            dec.update(piece, &mut plain).map_err(|e| tampered(format!("the file does not decrypt: {e}")))?;
        }
        let file = unpad.take(&plain).map_err(|e| tampered(e.message))?;
        pt_len += file.len() as u64;
        pt_hash.update(file);
        out.write_all(file)?;
        plain.clear();
    }
    dec.finish(&mut plain).map_err(|e| tampered(format!("the file does not decrypt: {e}")))?;
    let file = unpad.take(&plain).map_err(|e| tampered(e.message))?;
    pt_len += file.len() as u64;
    pt_hash.update(file);
    out.write_all(file)?;
    unpad.finish().map_err(|e| tampered(e.message))?;
    let f = out.into_inner().map_err(|e| e.into_error())?;
    f.sync_all()?;
    drop(f);
    if ct_hash.finalize().as_bytes() != &entry.blob_hash() || ct_len != entry.ct_size {
        return Err(tampered("the downloaded blob does not match its BLAKE3 hash or size".into()));
    }
    if pt_len != meta.size || pt_hash.finalize().to_hex().as_str() != meta.hash {
        return Err(tampered("the decrypted file does not match the hash and size in its signed metadata".into()));
    }
    std::fs::rename(tmp, final_path)?;
    Ok(())
}
