//! The shared-files manifest (PROTOCOL.md §7.4, §5 `set_shared_files`):
//! publishing the owner's, browsing someone else's.
//!
//! Publishing: read and verify the owner's chain, build and sign manifest
//! `seq = max(chain's manifest_seq, local) + 1` from every local share, PUT it
//! to the manifest index, then append a `set_shared_files` link naming its
//! BLAKE3 hash, seq and size (retrying on a lost seqno race).
//!
//! Browsing: verify the owner's whole chain (and that it extends what was
//! pinned), take the latest `set_shared_files`, fetch those manifest bytes by
//! hash and accept them only through `manifest::verify_against` (hash, owner,
//! seq, signature). Only entries whose wraps open for the reader are shown.

use std::future::Future;

use ed25519_dalek::SigningKey;
use kv_schemas::files::{Entry, FileMeta};
use kv_schemas::manifest::{MAX_MANIFEST_BYTES, Manifest, build, manifest_hash, verify_against};
use kv_schemas::sigchain::{Op, PinnedTail, SharedFiles, build_link, check_extends, verify_chain};

pub use super::endpoints::Chains;
use kv_schemas::{ErrorCode, PublicKey, now_ms};
use serde_json::Value;

use super::shares::Shares;
use super::{FilesError, Result};

/// The server-side operations the manifest needs (`/v1`): chains, and manifests.
pub trait Directory: Chains {
    /// Stores manifest bytes; returns the hash the index computed.
    fn put_manifest(&self, bytes: Vec<u8>) -> impl Future<Output = Result<String>> + Send;
    /// Manifest bytes by hash.
    fn manifest(&self, hash: &str) -> impl Future<Output = Result<Vec<u8>>> + Send;
}

/// The pinned own chain can publish and browse manifests too.
impl<D: Directory> Directory for super::endpoints::PinnedChains<'_, D> {
    fn put_manifest(&self, bytes: Vec<u8>) -> impl Future<Output = Result<String>> + Send {
        self.inner.put_manifest(bytes)
    }

    fn manifest(&self, hash: &str) -> impl Future<Output = Result<Vec<u8>>> + Send {
        self.inner.manifest(hash)
    }
}

/// A published manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Published {
    /// BLAKE3 hex.
    pub hash: String,
    /// Its seq.
    pub seq: u64,
    /// Entries in it.
    pub entries: usize,
    /// Bytes.
    pub size: u64,
}

/// Builds, uploads and commits a manifest of every share in `files_dir`.
pub async fn publish_manifest<D: Directory>(
    dir: &D,
    owner: &SigningKey,
    files_dir: &std::path::Path,
) -> Result<Published> {
    let pk = PublicKey::of(owner);
    let mut last_err = None;
    for _ in 0..4 {
        let shares = Shares::load(files_dir)?;
        let entries = shares.entries()?;
        let links = dir.chain(&pk).await?;
        let (state, _) = verify_chain(&pk, &links)?;
        let chain_seq = state.shared_files.as_ref().map_or(0, |s| s.manifest_seq);
        let seq = chain_seq.max(shares.manifest_seq) + 1;
        let now = now_ms();
        let bytes = build(owner, seq, now, &entries)?;
        let hash = manifest_hash(&bytes);
        let size = bytes.len() as u64;
        let stored = dir.put_manifest(bytes).await?;
        if stored != hash {
            return Err(FilesError::Other(format!("the manifest index stored {stored}, expected {hash}")));
        }
        let op = Op::SetSharedFiles(SharedFiles { manifest: hash.clone(), manifest_seq: seq, size });
        let link = build_link(owner, state.seqno + 1, state.tail.as_deref(), now, &op)?;
        match dir.append_link(&pk, link).await {
            Ok(()) => {
                let mut shares = Shares::load(files_dir)?;
                shares.manifest_seq = shares.manifest_seq.max(seq);
                shares.save(files_dir)?;
                return Ok(Published { hash, seq, entries: entries.len(), size });
            }
            Err(FilesError::Protocol(e)) if matches!(e.code, ErrorCode::SeqnoConflict | ErrorCode::PrevMismatch) => {
                last_err = Some(FilesError::Protocol(e));
            }
            Err(e) => return Err(e),
        }
    }
    Err(last_err.unwrap_or_else(|| FilesError::Other("could not append to the sigchain".into())))
}

/// An entry the reader can open.
#[derive(Debug, Clone)]
pub struct VisibleEntry {
    /// The entry as signed.
    pub entry: Entry,
    /// Its decrypted metadata.
    pub meta: FileMeta,
}

/// What [`browse`] found.
#[derive(Debug, Clone)]
pub struct Browsed {
    /// The owner.
    pub owner: PublicKey,
    /// The verified manifest, `None` when the owner shares nothing.
    pub manifest: Option<Manifest>,
    /// Entries for this reader, in manifest order.
    pub visible: Vec<VisibleEntry>,
    /// How many entries are for someone else.
    pub hidden: usize,
    /// The chain position verified (pin it to detect rollback next time).
    pub tail: PinnedTail,
}

impl Browsed {
    /// A visible entry by id or unique id prefix.
    pub fn find(&self, id: &str) -> Result<&VisibleEntry> {
        let hits: Vec<&VisibleEntry> = self.visible.iter().filter(|v| v.entry.id.starts_with(id)).collect();
        match hits.as_slice() {
            [one] => Ok(one),
            [] => Err(FilesError::Other(format!("no file with id {id} is shared with you"))),
            _ => Err(FilesError::Other(format!("{id} matches several files; give more of the id"))),
        }
    }
}

/// Reads `owner`'s chain and manifest and opens the entries meant for `me`.
/// `pinned`: a chain position seen before; a chain that does not extend it is refused.
pub async fn browse<D: Directory>(
    dir: &D,
    me: &SigningKey,
    owner: &PublicKey,
    pinned: Option<&PinnedTail>,
) -> Result<Browsed> {
    let links = dir.chain(owner).await?;
    let (state, parsed) = verify_chain(owner, &links)?;
    if let Some(p) = pinned {
        check_extends(&parsed, p)?;
    }
    let tail = PinnedTail { seqno: state.seqno, link_id: state.tail.clone().unwrap_or_default() };
    let Some(pointer) = state.shared_files.clone() else {
        return Ok(Browsed { owner: *owner, manifest: None, visible: vec![], hidden: 0, tail });
    };
    let bytes = dir.manifest(&pointer.manifest).await?;
    let manifest = verify_against(&bytes, owner, &pointer)?;
    let (visible, hidden) = open_entries(&manifest, me);
    Ok(Browsed { owner: *owner, manifest: Some(manifest), visible, hidden, tail })
}

/// Splits a verified manifest's entries into those `me` can open and a count of the rest.
pub fn open_entries(manifest: &Manifest, me: &SigningKey) -> (Vec<VisibleEntry>, usize) {
    let mut visible = Vec::new();
    let mut hidden = 0;
    for e in &manifest.entries {
        match e.open_for(me, &manifest.owner) {
            Ok(Some((_, meta))) => visible.push(VisibleEntry { entry: e.clone(), meta }),
            _ => hidden += 1,
        }
    }
    (visible, hidden)
}

/// The most one sigchain page may hold: a page carries at most 256 KiB of links
/// (PROTOCOL.md §9.1), so 1 MiB leaves room for JSON overhead.
const MAX_CHAIN_REPLY: usize = 1024 * 1024;
/// Replies that are a few keys (append, manifest upload, errors).
const MAX_SMALL_REPLY: usize = 64 * 1024;

/// [`Directory`] over the `/v1` HTTP API.
#[derive(Debug, Clone)]
pub struct HttpDirectory {
    base: String,
    http: reqwest::Client,
}

impl HttpDirectory {
    /// For the server at `base` (`http(s)://host[:port]`).
    pub fn new(base: &str) -> Result<Self> {
        // reqwest is built without a rustls provider; install ring once (an
        // already installed provider is kept).
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .connect_timeout(std::time::Duration::from_secs(5))
            .timeout(std::time::Duration::from_secs(20))
            .build()
            .map_err(|e| FilesError::other("HTTP client", e))?;
        Ok(Self { base: base.trim_end_matches('/').to_string(), http })
    }

    /// Sends `req` and reads at most `limit` body bytes: a server (or anything in
    /// between) cannot make the client buffer an unbounded reply.
    async fn call(&self, req: reqwest::RequestBuilder, what: &str, limit: usize) -> Result<(u16, Vec<u8>)> {
        let mut resp =
            req.send().await.map_err(|e| FilesError::other(&format!("{what}: {} unreachable", self.base), e))?;
        let status = resp.status().as_u16();
        let too_large = || FilesError::Other(format!("{what}: the reply is larger than {limit} bytes"));
        if resp.content_length().is_some_and(|n| n > limit as u64) {
            return Err(too_large());
        }
        let mut body = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(|e| FilesError::other(what, e))? {
            if body.len() + chunk.len() > limit {
                return Err(too_large());
            }
            body.extend_from_slice(&chunk);
        }
        Ok((status, body))
    }

    fn error(status: u16, body: &[u8], what: &str) -> FilesError {
        #[derive(serde::Deserialize)]
        struct Inner {
            code: String,
            message: String,
        }
        #[derive(serde::Deserialize)]
        struct Outer {
            error: Inner,
        }
        match serde_json::from_slice::<Outer>(body) {
            Ok(o) => match ErrorCode::parse(&o.error.code) {
                Some(code) => FilesError::Protocol(kv_schemas::KezError { code, message: o.error.message }),
                None => FilesError::Other(format!("{what}: {} {}", o.error.code, o.error.message)),
            },
            Err(_) => FilesError::Other(format!("{what}: HTTP {status}")),
        }
    }
}

impl Chains for HttpDirectory {
    async fn chain(&self, key: &PublicKey) -> Result<Vec<Value>> {
        crate::api::read_chain(key, FilesError::Other, move |since| async move {
            let url = format!("{}{}", self.base, crate::api::chain_page_path(key, since));
            let (status, body) = self.call(self.http.get(url), "reading the sigchain", MAX_CHAIN_REPLY).await?;
            if status == 200 {
                return serde_json::from_slice(&body).map(Some).map_err(|e| FilesError::other("sigchain reply", e));
            }
            match Self::error(status, &body, "reading the sigchain") {
                FilesError::Protocol(e) if e.code == ErrorCode::ChainNotFound => Ok(None),
                e => Err(e),
            }
        })
        .await
    }

    async fn append_link(&self, key: &PublicKey, link: Vec<u8>) -> Result<()> {
        let url = format!("{}/v1/sigchains/ed25519/{}/events", self.base, key.hex());
        let req = self.http.post(url).header("content-type", "application/json").body(link);
        let (status, body) = self.call(req, "appending to the sigchain", MAX_SMALL_REPLY).await?;
        if (200..300).contains(&status) { Ok(()) } else { Err(Self::error(status, &body, "appending to the sigchain")) }
    }
}

impl Directory for HttpDirectory {
    async fn put_manifest(&self, bytes: Vec<u8>) -> Result<String> {
        let url = format!("{}/v1/manifests", self.base);
        let req = self.http.put(url).header("content-type", "application/json").body(bytes);
        let (status, body) = self.call(req, "uploading the manifest", MAX_SMALL_REPLY).await?;
        if !(200..300).contains(&status) {
            return Err(Self::error(status, &body, "uploading the manifest"));
        }
        let v: Value = serde_json::from_slice(&body).map_err(|e| FilesError::other("manifest reply", e))?;
        v.get("hash")
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| FilesError::Other("the manifest index did not return a hash".into()))
    }

    async fn manifest(&self, hash: &str) -> Result<Vec<u8>> {
        let url = format!("{}/v1/manifests/{hash}", self.base);
        let (status, body) = self.call(self.http.get(url), "fetching the manifest", MAX_MANIFEST_BYTES).await?;
        if status == 200 { Ok(body) } else { Err(Self::error(status, &body, "fetching the manifest")) }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    /// A hostile server answering every request with `body_len` bytes, announced
    /// (`Content-Length`) or streamed (chunked, no length).
    async fn hostile_server(body_len: usize, announce: bool) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut sock, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let mut buf = [0u8; 4096];
                    let _ = sock.read(&mut buf).await;
                    let head = if announce {
                        format!("HTTP/1.1 200 OK\r\ncontent-length: {body_len}\r\nconnection: close\r\n\r\n")
                    } else {
                        "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n".into()
                    };
                    if sock.write_all(head.as_bytes()).await.is_err() {
                        return;
                    }
                    let chunk = vec![b'x'; 64 * 1024];
                    let mut sent = 0;
                    while sent < body_len {
                        let n = chunk.len().min(body_len - sent);
                        let r = if announce {
                            sock.write_all(&chunk[..n]).await
                        } else {
                            let framed = [format!("{n:x}\r\n").as_bytes(), &chunk[..n], b"\r\n"].concat();
                            sock.write_all(&framed).await
                        };
                        if r.is_err() {
                            return; // the client stopped reading: that is the point
                        }
                        sent += n;
                    }
                    if !announce {
                        let _ = sock.write_all(b"0\r\n\r\n").await;
                    }
                });
            }
        });
        format!("http://{addr}")
    }

    #[tokio::test]
    async fn replies_are_read_with_a_limit() {
        let hash = "0".repeat(64);
        for announce in [true, false] {
            let big = HttpDirectory::new(&hostile_server(MAX_MANIFEST_BYTES + 1, announce).await).unwrap();
            let e = big.manifest(&hash).await.unwrap_err();
            assert!(e.to_string().contains("larger than"), "announce={announce}: {e}");
            let ok = HttpDirectory::new(&hostile_server(1000, announce).await).unwrap();
            assert_eq!(ok.manifest(&hash).await.unwrap().len(), 1000);
        }
        let key = PublicKey::of(&SigningKey::from_bytes(&[3; 32]));
        let huge = HttpDirectory::new(&hostile_server(MAX_CHAIN_REPLY + 1, false).await).unwrap();
        let e = huge.chain(&key).await.unwrap_err();
        assert!(e.to_string().contains("larger than"), "{e}");
    }
}
