//! The Iroh side: binding endpoints with a device's endpoint key, and the
//! provider that serves shared blobs with a per-blob ACL.
//!
//! The ACL names users (the owner and each share's recipients); which endpoint
//! ids belong to a user is read from the user's verified sigchain (every live
//! iroh endpoint, any role, wave-1 included: PROTOCOL.md §7.5), cached for
//! [`NodeConfig::peer_ttl`] and re-read on a miss, so a device added a moment ago is
//! admitted on its first try.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime};

use ed25519_dalek::SigningKey;
use futures::future::BoxFuture;
use iroh::endpoint::presets;
use iroh::endpoint::{PortmapperConfig, RelayMode};
use iroh::protocol::Router;
use iroh::{Endpoint, SecretKey};
use iroh_blobs::api::blobs::{AddPathOptions, ImportMode};
use iroh_blobs::provider::events::{
    AbortReason, ConnectMode, EventMask, EventSender, ObserveMode, ProviderMessage, RequestMode, ThrottleMode,
};
use iroh_blobs::store::fs::FsStore;
use iroh_blobs::{BlobFormat, BlobsProtocol, Hash};
use kv_schemas::PublicKey;
use kv_schemas::sigchain::{IrohRole, PinnedTail, check_extends, verify_chain};
use kv_schemas::subjects::DeviceId;
use serde_json::Value;
use tokio::sync::mpsc;

use super::config::NodeConfig;
use super::endpoints::{Chains, DeviceEndpoints};
use super::shares::{Shares, hex_32};
use super::{FILES_ALPN, FilesError, Result};

/// Sigchain reads per user are at least this far apart, so that unknown
/// endpoints knocking in a loop cannot turn the provider into a load generator
/// against the server.
const PEER_MIN_REFRESH: Duration = Duration::from_secs(1);
/// Bound on one sigchain read while a peer waits to be admitted.
const PEER_READ_TIMEOUT: Duration = Duration::from_secs(5);

/// Binds an endpoint whose id is the public key of `secret` (a device endpoint key).
///
/// `relay` on: the n0 preset (relays, DNS/pkarr publishing and lookup).
/// Off: no relay, no address lookup; reachable only at direct addresses.
/// Port mapping is always off (not compiled in).
pub async fn bind_endpoint(
    secret: &[u8; 32],
    cfg: &NodeConfig,
    bind: Option<SocketAddr>,
    alpns: Vec<Vec<u8>>,
) -> Result<Endpoint> {
    let builder = if cfg.relay {
        Endpoint::builder(presets::N0)
    } else {
        Endpoint::builder(presets::Minimal).relay_mode(RelayMode::Disabled).clear_address_lookup()
    };
    let mut builder =
        builder.secret_key(SecretKey::from_bytes(secret)).portmapper_config(PortmapperConfig::Disabled).alpns(alpns);
    if let Some(addr) = bind {
        builder =
            builder.clear_ip_transports().bind_addr(addr).map_err(|e| FilesError::other("bad bind address", e))?;
    }
    builder.bind().await.map_err(|e| FilesError::other("starting the Iroh endpoint", e))
}

/// What the provider reports while it runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServeEvent {
    /// An endpoint of a permitted user connected.
    Connected {
        /// The user (identity key).
        peer: PublicKey,
        /// The endpoint id it connected with.
        endpoint: PublicKey,
        /// The device of that endpoint (`None` for a wave-1 endpoint).
        device: Option<DeviceId>,
    },
    /// An endpoint was refused (at connect, or for a blob not shared with its user).
    Refused {
        /// The endpoint id, if it had a valid one.
        endpoint: Option<PublicKey>,
        /// The user it belongs to, when it was admitted at connect.
        peer: Option<PublicKey>,
        /// The blob it asked for, if it got that far.
        blob: Option<String>,
    },
    /// A blob request was admitted.
    Serving {
        /// The user.
        peer: PublicKey,
        /// The endpoint id.
        endpoint: PublicKey,
        /// The device of that endpoint (`None` for a wave-1 endpoint).
        device: Option<DeviceId>,
        /// BLAKE3 hex of the blob.
        blob: String,
    },
    /// `shares.json` was (re)loaded.
    Reloaded {
        /// Shares now served.
        shares: usize,
    },
    /// A share could not be served (ciphertext missing or changed).
    Broken {
        /// Entry id.
        id: String,
        /// Why.
        reason: String,
    },
}

/// Blob hash → the users it is shared with (recipients and the owner).
type Acl = HashMap<[u8; 32], HashSet<[u8; 32]>>;

/// Reads chains for the provider (object-safe form of [`Chains`]).
trait ChainSource: Send + Sync {
    fn links<'a>(&'a self, key: &'a PublicKey) -> BoxFuture<'a, Result<Vec<Value>>>;
}

impl<C: Chains + Send + Sync> ChainSource for C {
    fn links<'a>(&'a self, key: &'a PublicKey) -> BoxFuture<'a, Result<Vec<Value>>> {
        Box::pin(Chains::chain(self, key))
    }
}

/// One user's live iroh endpoints as last read from the sigchain.
struct PeerView {
    /// Endpoint id → its device (`None` for wave-1).
    endpoints: HashMap<[u8; 32], Option<DeviceId>>,
    /// The chain position verified, so a later read cannot roll back past it
    /// (which would bring a removed device's endpoint back).
    tail: Option<PinnedTail>,
    /// When the endpoints were last read successfully.
    read_at: Option<Instant>,
    /// When a read was last attempted.
    tried_at: Instant,
}

/// Which endpoint ids belong to which user, from their sigchains.
struct Peers {
    source: Box<dyn ChainSource>,
    views: tokio::sync::Mutex<HashMap<PublicKey, PeerView>>,
    ttl: Duration,
}

impl Peers {
    /// The user among `users` that has `node` as a live iroh endpoint, with the
    /// endpoint's device. A miss re-reads (rate-limited) the chains that might be
    /// out of date, so an endpoint published a moment ago is found.
    async fn owner_of(&self, node: &[u8; 32], users: &[PublicKey]) -> Option<(PublicKey, Option<DeviceId>)> {
        let mut views = self.views.lock().await;
        let lookup = |views: &HashMap<PublicKey, PeerView>, u: &PublicKey, fresh_only: bool| {
            let v = views.get(u)?;
            if fresh_only && v.read_at.is_none_or(|t| t.elapsed() >= self.ttl) {
                return None;
            }
            v.endpoints.get(node).map(|d| (*u, d.clone()))
        };
        if let Some(hit) = users.iter().find_map(|u| lookup(&views, u, true)) {
            return Some(hit);
        }
        for u in users {
            if views.get(u).is_none_or(|v| v.tried_at.elapsed() >= PEER_MIN_REFRESH) {
                self.refresh(&mut views, u).await;
                if let Some(hit) = lookup(&views, u, false) {
                    return Some(hit);
                }
            }
        }
        // A chain that cannot be read right now: its last verified view still counts.
        users.iter().find_map(|u| lookup(&views, u, false))
    }

    async fn refresh(&self, views: &mut HashMap<PublicKey, PeerView>, user: &PublicKey) {
        let view = views.entry(*user).or_insert_with(|| PeerView {
            endpoints: HashMap::new(),
            tail: None,
            read_at: None,
            tried_at: Instant::now(),
        });
        view.tried_at = Instant::now();
        let pinned = view.tail.clone();
        let read = async {
            let links = tokio::time::timeout(PEER_READ_TIMEOUT, self.source.links(user))
                .await
                .map_err(|_| FilesError::Other("no answer in time".into()))??;
            let (state, parsed) = verify_chain(user, &links)?;
            if let Some(t) = &pinned {
                check_extends(&parsed, t)?;
            }
            Ok::<_, FilesError>(state)
        };
        let result = read.await;
        match result {
            Ok(state) => {
                view.endpoints = state
                    .iroh_endpoints()
                    .filter_map(|e| Some((*e.key()?.as_bytes(), e.device.map(|d| d.device.clone()))))
                    .collect();
                view.tail = Some(PinnedTail { seqno: state.seqno, link_id: state.tail.clone().unwrap_or_default() });
                view.read_at = Some(Instant::now());
            }
            Err(e) => tracing::warn!("cannot read the sigchain of {user}: {e}"),
        }
    }
}

/// An admitted connection.
#[derive(Clone, Copy)]
struct Conn {
    endpoint: [u8; 32],
    peer: PublicKey,
}

struct State {
    files_dir: PathBuf,
    owner: PublicKey,
    store: iroh_blobs::api::Store,
    acl: RwLock<Acl>,
    peers: Peers,
    conns: Mutex<HashMap<u64, Conn>>,
    loaded_mtime: Mutex<Option<SystemTime>>,
    reload_lock: tokio::sync::Mutex<()>,
    events: mpsc::UnboundedSender<ServeEvent>,
}

impl State {
    fn mtime(&self) -> Option<SystemTime> {
        std::fs::metadata(Shares::path(&self.files_dir)).and_then(|m| m.modified()).ok()
    }

    /// Re-reads `shares.json` if it changed: imports new ciphertext files
    /// (by reference) and then swaps in the new ACL.
    async fn reload_if_changed(&self) -> Result<()> {
        let _g = self.reload_lock.lock().await;
        let now = self.mtime();
        if now.is_some() && *self.loaded_mtime.lock().unwrap_or_else(|p| p.into_inner()) == now {
            return Ok(());
        }
        let shares = Shares::load(&self.files_dir)?;
        let mut acl = shares.acl(&self.owner);
        for s in &shares.shares {
            let Ok(h) = hex_32(&s.blob) else { continue };
            let hash = Hash::from_bytes(h);
            let have = self.store.blobs().has(hash).await.unwrap_or(false);
            if have {
                continue;
            }
            let path = self.files_dir.join(&s.blob_file);
            let res = self
                .store
                .blobs()
                .add_path_with_opts(AddPathOptions { path, format: BlobFormat::Raw, mode: ImportMode::TryReference })
                .with_named_tag(format!("kez/share/{}", s.blob))
                .await;
            let reason = match res {
                Ok(hf) if hf.hash == hash => None,
                Ok(hf) => Some(format!("ciphertext changed on disk (hash {})", hf.hash.to_hex())),
                Err(e) => Some(format!("cannot import the ciphertext: {e}")),
            };
            if let Some(reason) = reason {
                acl.remove(&h);
                let _ = self.events.send(ServeEvent::Broken { id: s.id.clone(), reason });
            }
        }
        *self.acl.write().unwrap_or_else(|p| p.into_inner()) = acl;
        *self.loaded_mtime.lock().unwrap_or_else(|p| p.into_inner()) = now;
        let _ = self.events.send(ServeEvent::Reloaded { shares: shares.shares.len() });
        Ok(())
    }

    /// Users of one blob (`Some`), or of every blob (`None`).
    fn users(&self, blob: Option<&[u8; 32]>) -> Vec<PublicKey> {
        let acl = self.acl.read().unwrap_or_else(|p| p.into_inner());
        let mut set: HashSet<[u8; 32]> = HashSet::new();
        match blob {
            Some(b) => set.extend(acl.get(b).into_iter().flatten()),
            None => set.extend(acl.values().flatten()),
        }
        // The owner first: its own devices are the most frequent callers.
        let mut out: Vec<PublicKey> = set.into_iter().filter_map(|k| PublicKey::from_bytes(k).ok()).collect();
        out.sort_by_key(|k| *k != self.owner);
        out
    }

    async fn handle(&self, msg: ProviderMessage) {
        match msg {
            ProviderMessage::ClientConnected(msg) => {
                let node = msg.endpoint_id.map(|id| *id.as_bytes());
                // Shares made or removed a moment ago by another process
                // (`share`, `unshare`) count now, not at the next poll.
                let _ = self.reload_if_changed().await;
                let who = match &node {
                    Some(n) => self.peers.owner_of(n, &self.users(None)).await,
                    None => None,
                };
                let endpoint = node.and_then(|n| PublicKey::from_bytes(n).ok());
                if let (Some(n), Some(ep), Some((peer, device))) = (node, endpoint, who) {
                    self.conns
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .insert(msg.connection_id, Conn { endpoint: n, peer });
                    let _ = self.events.send(ServeEvent::Connected { peer, endpoint: ep, device });
                    msg.tx.send(Ok(())).await.ok();
                } else {
                    let _ = self.events.send(ServeEvent::Refused { endpoint, peer: None, blob: None });
                    msg.tx.send(Err(AbortReason::Permission)).await.ok();
                }
            }
            ProviderMessage::ConnectionClosed(msg) => {
                self.conns.lock().unwrap_or_else(|e| e.into_inner()).remove(&msg.connection_id);
            }
            ProviderMessage::GetRequestReceived(msg) => {
                let conn = self.conns.lock().unwrap_or_else(|e| e.into_inner()).get(&msg.connection_id).copied();
                let blob = *msg.request.hash.as_bytes();
                // Only plain blob requests: a hash-seq request could name other blobs.
                let plain = msg.request.ranges.is_blob();
                let _ = self.reload_if_changed().await;
                let who = match &conn {
                    Some(c) if plain => self.peers.owner_of(&c.endpoint, &self.users(Some(&blob))).await,
                    _ => None,
                };
                let endpoint = conn.and_then(|c| PublicKey::from_bytes(c.endpoint).ok());
                let blob_hex = msg.request.hash.to_hex().to_string();
                if let (Some(ep), Some((peer, device))) = (endpoint, who) {
                    let _ = self.events.send(ServeEvent::Serving { peer, endpoint: ep, device, blob: blob_hex });
                    msg.tx.send(Ok(())).await.ok();
                } else {
                    let peer = conn.map(|c| c.peer);
                    let _ = self.events.send(ServeEvent::Refused { endpoint, peer, blob: Some(blob_hex) });
                    msg.tx.send(Err(AbortReason::Permission)).await.ok();
                }
            }
            ProviderMessage::ObserveRequestReceived(msg) => {
                // Nobody needs to watch our bitfields.
                msg.tx.send(Err(AbortReason::Permission)).await.ok();
            }
            ProviderMessage::GetManyRequestReceived(msg) => {
                msg.tx.send(Err(AbortReason::Permission)).await.ok();
            }
            ProviderMessage::PushRequestReceived(msg) => {
                msg.tx.send(Err(AbortReason::Permission)).await.ok();
            }
            ProviderMessage::Throttle(msg) => {
                msg.tx.send(Ok(())).await.ok();
            }
            _ => {}
        }
    }
}

/// The serving endpoint: Iroh endpoint (the device's `serve` key) + persistent
/// blob store (`<files>/store`) + the blobs protocol on [`FILES_ALPN`] behind the ACL.
pub struct Provider {
    router: Router,
    store: FsStore,
    state: Arc<State>,
    device: DeviceId,
    poll: tokio::task::JoinHandle<()>,
}

impl Provider {
    /// Opens the store, loads `shares.json`, binds the `serve` endpoint of
    /// `device` and starts serving; `chains` tells it which endpoints belong to
    /// whom. The caller publishes the endpoint first
    /// ([`super::endpoints::ensure_device_endpoints`]), or fetchers will not dial it.
    /// Returns the provider and its event stream.
    pub async fn start<C: Chains + Send + Sync + 'static>(
        me: &SigningKey,
        device: &DeviceId,
        files_dir: &Path,
        cfg: &NodeConfig,
        chains: C,
    ) -> Result<(Self, mpsc::UnboundedReceiver<ServeEvent>)> {
        std::fs::create_dir_all(files_dir)?;
        let store = open_store(&files_dir.join("store")).await?;
        let owner = PublicKey::of(me);
        let (tx, rx) = mpsc::unbounded_channel();
        let state = Arc::new(State {
            files_dir: files_dir.to_path_buf(),
            owner,
            store: (*store).clone(),
            acl: RwLock::new(HashMap::new()),
            peers: Peers {
                source: Box::new(chains),
                views: tokio::sync::Mutex::new(HashMap::new()),
                ttl: cfg.peer_ttl,
            },
            conns: Mutex::new(HashMap::new()),
            loaded_mtime: Mutex::new(None),
            reload_lock: tokio::sync::Mutex::new(()),
            events: tx,
        });
        if let Err(e) = state.reload_if_changed().await {
            store.shutdown().await.ok();
            return Err(e);
        }

        let mask = EventMask {
            connected: ConnectMode::Intercept,
            get: RequestMode::Intercept,
            get_many: RequestMode::Disabled,
            push: RequestMode::Disabled,
            observe: ObserveMode::Intercept,
            throttle: ThrottleMode::None,
        };
        let (events, mut msgs) = EventSender::channel(64, mask);
        let st = state.clone();
        tokio::spawn(async move {
            while let Some(msg) = msgs.recv().await {
                // Handled one at a time: a reload must finish before the next
                // decision, and sigchain reads are bounded and rate-limited.
                st.handle(msg).await;
            }
        });
        let st = state.clone();
        let poll = tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(1)).await;
                let _ = st.reload_if_changed().await;
            }
        });

        let keys = DeviceEndpoints::derive(me, device);
        let endpoint = match bind_endpoint(keys.secret(IrohRole::Serve), cfg, cfg.bind, vec![FILES_ALPN.to_vec()]).await
        {
            Ok(ep) => ep,
            Err(e) => {
                poll.abort();
                store.shutdown().await.ok();
                return Err(e);
            }
        };
        let blobs = BlobsProtocol::new(&store, Some(events));
        let router = Router::builder(endpoint).accept(FILES_ALPN, blobs).spawn();
        let provider = Provider { router, store, state, device: device.clone(), poll };
        let _ = provider.write_endpoint_file();
        Ok((provider, rx))
    }

    /// The endpoint.
    pub fn endpoint(&self) -> &Endpoint {
        self.router.endpoint()
    }

    /// The endpoint id (the device's `serve` key) hex.
    pub fn id_hex(&self) -> String {
        self.endpoint().id().to_string()
    }

    /// The endpoint id as a key.
    pub fn id(&self) -> Result<PublicKey> {
        super::key_of(&self.endpoint().id())
    }

    /// The owner (identity key).
    pub fn owner(&self) -> PublicKey {
        self.state.owner
    }

    /// The device this provider serves for.
    pub fn device(&self) -> &DeviceId {
        &self.device
    }

    /// Direct addresses the endpoint listens on.
    pub fn direct_addrs(&self) -> Vec<SocketAddr> {
        let mut v: Vec<SocketAddr> = self.endpoint().addr().ip_addrs().copied().collect();
        if v.is_empty() {
            v = self.endpoint().bound_sockets();
        }
        v
    }

    /// A `KEZ_IROH_PEERS` hint other clients can use to dial this endpoint directly.
    pub fn hint(&self) -> String {
        super::config::format_hint(&self.id_hex(), &self.direct_addrs())
    }

    fn write_endpoint_file(&self) -> Result<()> {
        let v = serde_json::json!({
            "node_id": self.id_hex(),
            "owner": self.state.owner.to_string(),
            "device": self.device,
            "role": IrohRole::Serve,
            "addrs": self.direct_addrs().iter().map(ToString::to_string).collect::<Vec<_>>(),
            "hint": self.hint(),
            "pid": std::process::id(),
        });
        Ok(kez_private_file::write(&self.state.files_dir.join("endpoint.json"), v.to_string().as_bytes())?)
    }

    /// Forces a re-read of `shares.json`.
    pub async fn reload(&self) -> Result<()> {
        *self.state.loaded_mtime.lock().unwrap_or_else(|p| p.into_inner()) = None;
        self.state.reload_if_changed().await
    }

    /// The blob store (for tests and tools).
    pub fn store(&self) -> &FsStore {
        &self.store
    }

    /// Stops serving, closes the endpoint and the store.
    pub async fn shutdown(self) {
        self.poll.abort();
        let _ = std::fs::remove_file(self.state.files_dir.join("endpoint.json"));
        // Router::shutdown closes the endpoint and (through BlobsProtocol) the store.
        let _ = tokio::time::timeout(Duration::from_secs(5), self.router.shutdown()).await;
        let _ = tokio::time::timeout(Duration::from_secs(5), self.store.shutdown()).await;
    }
}

/// Opens (creating) an iroh-blobs file store; a clear error when another
/// process holds it.
pub async fn open_store(dir: &Path) -> Result<FsStore> {
    std::fs::create_dir_all(dir)?;
    FsStore::load(dir).await.map_err(|e| {
        let text = format!("{e:#}");
        if text.to_ascii_lowercase().contains("lock") || text.contains("already open") {
            FilesError::Other(format!(
                "the blob store {} is in use by another kez-chat process (serve/listen/fetch): {text}",
                dir.display()
            ))
        } else {
            FilesError::other(&format!("opening the blob store {}", dir.display()), text)
        }
    })
}
