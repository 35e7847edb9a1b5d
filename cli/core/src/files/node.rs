//! The Iroh side: building endpoints whose id is the user's ed25519 key, and
//! the provider that serves shared blobs with a per-blob ACL.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime};

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
use tokio::sync::mpsc;

use super::config::NodeConfig;
use super::shares::{Shares, hex_32};
use super::{FILES_ALPN, FilesError, Result, key_of};

/// Binds an endpoint with the user's key as its id.
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
    /// A peer the ACL admits connected.
    Connected {
        /// Its key.
        peer: PublicKey,
    },
    /// A peer was refused (at connect, or for a blob not shared with it).
    Refused {
        /// Its key, if it had one.
        peer: Option<PublicKey>,
        /// The blob it asked for, if it got that far.
        blob: Option<String>,
    },
    /// A blob request was admitted.
    Serving {
        /// Who.
        peer: PublicKey,
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

type Acl = HashMap<[u8; 32], HashSet<[u8; 32]>>;

struct State {
    files_dir: PathBuf,
    owner: PublicKey,
    store: iroh_blobs::api::Store,
    acl: RwLock<Acl>,
    conns: Mutex<HashMap<u64, [u8; 32]>>,
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

    fn admits_peer(&self, peer: &[u8; 32]) -> bool {
        self.acl.read().unwrap_or_else(|p| p.into_inner()).values().any(|s| s.contains(peer))
    }

    fn admits(&self, blob: &[u8; 32], peer: &[u8; 32]) -> bool {
        self.acl.read().unwrap_or_else(|p| p.into_inner()).get(blob).is_some_and(|s| s.contains(peer))
    }

    async fn handle(&self, msg: ProviderMessage) {
        match msg {
            ProviderMessage::ClientConnected(msg) => {
                let peer = msg.endpoint_id.map(|id| *id.as_bytes());
                // Shares made or removed a moment ago by another process
                // (`share`, `unshare`) count now, not at the next poll.
                let _ = self.reload_if_changed().await;
                let ok = peer.is_some_and(|p| self.admits_peer(&p));
                let pk = peer.and_then(|p| PublicKey::from_bytes(p).ok());
                if ok && let (Some(p), Some(pk)) = (peer, pk) {
                    self.conns.lock().unwrap_or_else(|e| e.into_inner()).insert(msg.connection_id, p);
                    let _ = self.events.send(ServeEvent::Connected { peer: pk });
                    msg.tx.send(Ok(())).await.ok();
                } else {
                    let _ = self.events.send(ServeEvent::Refused { peer: pk, blob: None });
                    msg.tx.send(Err(AbortReason::Permission)).await.ok();
                }
            }
            ProviderMessage::ConnectionClosed(msg) => {
                self.conns.lock().unwrap_or_else(|e| e.into_inner()).remove(&msg.connection_id);
            }
            ProviderMessage::GetRequestReceived(msg) => {
                let peer = self.conns.lock().unwrap_or_else(|e| e.into_inner()).get(&msg.connection_id).copied();
                let blob = *msg.request.hash.as_bytes();
                // Only plain blob requests: a hash-seq request could name other blobs.
                let plain = msg.request.ranges.is_blob();
                let _ = self.reload_if_changed().await;
                let ok = plain && peer.is_some_and(|p| self.admits(&blob, &p));
                let pk = peer.and_then(|p| PublicKey::from_bytes(p).ok());
                let blob_hex = msg.request.hash.to_hex().to_string();
                if ok && let Some(pk) = pk {
                    let _ = self.events.send(ServeEvent::Serving { peer: pk, blob: blob_hex });
                    msg.tx.send(Ok(())).await.ok();
                } else {
                    let _ = self.events.send(ServeEvent::Refused { peer: pk, blob: Some(blob_hex) });
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

/// The serving endpoint: Iroh endpoint (id = user key) + persistent blob store
/// (`<files>/store`) + the blobs protocol on [`FILES_ALPN`] behind the ACL.
pub struct Provider {
    router: Router,
    store: FsStore,
    state: Arc<State>,
    poll: tokio::task::JoinHandle<()>,
}

impl Provider {
    /// Opens the store, loads `shares.json`, binds and starts serving.
    /// Returns the provider and its event stream.
    pub async fn start(
        secret: &[u8; 32],
        files_dir: &Path,
        cfg: &NodeConfig,
    ) -> Result<(Self, mpsc::UnboundedReceiver<ServeEvent>)> {
        std::fs::create_dir_all(files_dir)?;
        let store = open_store(&files_dir.join("store")).await?;
        let owner = PublicKey::of(&ed25519_dalek::SigningKey::from_bytes(secret));
        let (tx, rx) = mpsc::unbounded_channel();
        let state = Arc::new(State {
            files_dir: files_dir.to_path_buf(),
            owner,
            store: (*store).clone(),
            acl: RwLock::new(HashMap::new()),
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
                // Handled one at a time: decisions are cheap, and a reload
                // must finish before the next decision.
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

        let endpoint = match bind_endpoint(secret, cfg, cfg.bind, vec![FILES_ALPN.to_vec()]).await {
            Ok(ep) => ep,
            Err(e) => {
                poll.abort();
                store.shutdown().await.ok();
                return Err(e);
            }
        };
        let blobs = BlobsProtocol::new(&store, Some(events));
        let router = Router::builder(endpoint).accept(FILES_ALPN, blobs).spawn();
        let provider = Provider { router, store, state, poll };
        let _ = provider.write_endpoint_file();
        Ok((provider, rx))
    }

    /// The endpoint.
    pub fn endpoint(&self) -> &Endpoint {
        self.router.endpoint()
    }

    /// The endpoint id (= the user key) hex.
    pub fn id_hex(&self) -> String {
        self.endpoint().id().to_string()
    }

    /// The owner key.
    pub fn owner(&self) -> Result<PublicKey> {
        key_of(&self.endpoint().id())
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
            "addrs": self.direct_addrs().iter().map(ToString::to_string).collect::<Vec<_>>(),
            "hint": self.hint(),
            "pid": std::process::id(),
        });
        Ok(super::write_atomic(&self.state.files_dir.join("endpoint.json"), v.to_string().as_bytes())?)
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
