//! Files over Iroh at the core level: several endpoints in one process on
//! 127.0.0.1, relays and address lookup off, sigchains in memory with the
//! server's append rules. Every device has its own `serve` and `fetch`
//! endpoint keys (PROTOCOL.md §7.5), published on its user's chain.
#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ed25519_dalek::SigningKey;
use kez_client::files::config::NodeConfig;
use kez_client::files::endpoints::{Chains, DeviceEndpoints, ensure_device_endpoints, remove_device_endpoints};
use kez_client::files::fetch::{FetchEvent, FetchRequest, Fetcher, Source, fetch};
use kez_client::files::manifest_store::{Directory, browse, publish_manifest};
use kez_client::files::node::{Provider, ServeEvent, bind_endpoint};
use kez_client::files::{FILES_ALPN, FilesError, Result, share_file, unshare};
use kv_schemas::manifest::manifest_hash;
use kv_schemas::sigchain::{IrohRole, parse_link, verify_chain};
use kv_schemas::subjects::DeviceId;
use kv_schemas::{ErrorCode, KezError, PublicKey};
use serde_json::Value;
use tokio::sync::mpsc::UnboundedReceiver;

fn key(b: u8) -> SigningKey {
    SigningKey::from_bytes(&[b; 32])
}

fn pk(sk: &SigningKey) -> PublicKey {
    PublicKey::of(sk)
}

fn dev(n: u8) -> DeviceId {
    format!("{n:016x}").parse().unwrap()
}

fn random_file(dir: &Path, name: &str, len: usize) -> std::path::PathBuf {
    let mut data = vec![0u8; len];
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15 ^ len as u64;
    for b in data.iter_mut() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *b = x as u8;
    }
    let p = dir.join(name);
    std::fs::write(&p, &data).unwrap();
    p
}

fn free_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Relays off, a short connect timeout, and `owner`'s endpoints at `addr` (a
/// hint by identity key: it applies to every endpoint of that user).
fn cfg_with_hint(owner: &PublicKey, addr: SocketAddr) -> NodeConfig {
    let mut cfg = NodeConfig::loopback();
    cfg.connect_timeout = Duration::from_millis(1500);
    cfg.add_hint(*owner.as_bytes(), addr);
    cfg
}

fn request(entry: kv_schemas::files::Entry, owner: PublicKey, source: Source, target: &Path) -> FetchRequest {
    FetchRequest {
        entry,
        owner,
        source,
        owner_pin: None,
        peer_label: "alice".into(),
        target_dir: target.to_path_buf(),
        overwrite: false,
        wait: None,
    }
}

/// The `serve` endpoint id of `who`'s device `d` (what an offer names).
fn serve_of(who: &SigningKey, d: &DeviceId) -> PublicKey {
    DeviceEndpoints::derive(who, d).key(IrohRole::Serve)
}

fn fetch_of(who: &SigningKey, d: &DeviceId) -> PublicKey {
    DeviceEndpoints::derive(who, d).key(IrohRole::Fetch)
}

/// A device of a user: its key, device id and files folder.
struct Device<'a> {
    sk: &'a SigningKey,
    id: DeviceId,
    files: std::path::PathBuf,
}

impl Device<'_> {
    async fn fetch(
        &self,
        dir: &MemDirectory,
        cfg: &NodeConfig,
        req: &FetchRequest,
        on: impl FnMut(FetchEvent),
    ) -> Result<kez_client::files::Fetched> {
        let f = Fetcher { me: self.sk, device: &self.id, chains: dir, files_dir: &self.files, cfg };
        fetch(&f, req, never(), on).await
    }
}

async fn start_provider(
    sk: &SigningKey,
    device: &DeviceId,
    files: &Path,
    dir: &Arc<MemDirectory>,
    cfg: NodeConfig,
) -> (Provider, SocketAddr, UnboundedReceiver<ServeEvent>) {
    let (p, events) = Provider::start(sk, device, files, &cfg, dir.clone()).await.unwrap();
    let addr = p.direct_addrs()[0];
    (p, addr, events)
}

/// Drains provider events in the background, keeping them for assertions.
fn collect(mut events: UnboundedReceiver<ServeEvent>) -> Arc<Mutex<Vec<ServeEvent>>> {
    let seen = Arc::new(Mutex::new(vec![]));
    let s = seen.clone();
    tokio::spawn(async move {
        while let Some(e) = events.recv().await {
            s.lock().unwrap().push(e);
        }
    });
    seen
}

fn never() -> std::future::Pending<()> {
    std::future::pending()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn share_fetch_round_trip_acl_and_tamper() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = Arc::new(MemDirectory::default());
    let (alice, bob, carol, dave) = (key(1), key(2), key(3), key(4));
    let a = Device { sk: &alice, id: dev(0xa1), files: tmp.path().join("a/files") };
    let b = Device { sk: &bob, id: dev(0xb1), files: tmp.path().join("b/files") };
    let c = Device { sk: &carol, id: dev(0xc1), files: tmp.path().join("c/files") };
    for d in [&a, &b, &c] {
        assert_eq!(ensure_device_endpoints(&*dir, d.sk, &d.id).await.unwrap().added, 2);
        assert_eq!(ensure_device_endpoints(&*dir, d.sk, &d.id).await.unwrap().added, 0, "idempotent");
    }
    ensure_device_endpoints(&*dir, &dave, &dev(0xd1)).await.unwrap();
    let src = random_file(tmp.path(), "report.bin", 3 * 1024 * 1024 + 17);
    let out = share_file(&alice, &a.files, &src, &[pk(&bob)]).unwrap();
    assert_eq!(out.entry.wraps.len(), 2, "bob + the owner");
    // Carol gets a share of her own, so she is a known peer — but not for bob's blob.
    let other = random_file(tmp.path(), "carol.txt", 1000);
    let carol_share = share_file(&alice, &a.files, &other, &[pk(&carol)]).unwrap();

    let (provider, addr, events) = start_provider(&alice, &a.id, &a.files, &dir, NodeConfig::loopback()).await;
    let events = collect(events);
    assert_eq!(provider.id().unwrap(), serve_of(&alice, &a.id), "endpoint id = the device's serve key");
    assert_ne!(provider.id().unwrap(), pk(&alice), "not the identity key");

    // Bob fetches the offer (which names alice's serve endpoint): byte-identical,
    // temp file gone, download folder gone.
    let offer = Source::Offer(serve_of(&alice, &a.id));
    let b_dl = tmp.path().join("b/dl");
    let cfg = cfg_with_hint(&pk(&alice), addr);
    let mut seen = vec![];
    let got = b
        .fetch(&dir, &cfg, &request(out.entry.clone(), pk(&alice), offer.clone(), &b_dl), |e| seen.push(e))
        .await
        .unwrap();
    assert_eq!(std::fs::read(&got.path).unwrap(), std::fs::read(&src).unwrap());
    assert_eq!(got.meta.name, "report.bin");
    assert!(seen.iter().any(|e| matches!(e, FetchEvent::Progress { done, total } if done == total)));
    assert_eq!(std::fs::read_dir(&b_dl).unwrap().count(), 1, "no temp files left");
    assert!(!b.files.join("downloads").join(&out.entry.blob).exists());
    // The provider saw bob's fetch endpoint, not his identity key.
    assert!(events.lock().unwrap().iter().any(|e| matches!(e,
        ServeEvent::Serving { peer, endpoint, device, .. }
            if *peer == pk(&bob) && *endpoint == fetch_of(&bob, &b.id) && device.as_ref() == Some(&b.id))));
    // A second fetch into the same folder refuses to overwrite.
    let again = b.fetch(&dir, &cfg, &request(out.entry.clone(), pk(&alice), offer.clone(), &b_dl), |_| {}).await;
    assert!(matches!(again, Err(FilesError::Other(m)) if m.contains("already exists")));

    // Carol cannot open bob's entry...
    let c_dl = tmp.path().join("c/dl");
    let r = c.fetch(&dir, &cfg, &request(out.entry.clone(), pk(&alice), offer.clone(), &c_dl), |_| {}).await;
    assert!(matches!(r, Err(FilesError::NotForMe)), "{r:?}");
    // ...and alice's provider refuses her endpoint the blob even with the hash (raw iroh-blobs get).
    let alice_serve = serve_of(&alice, &a.id);
    let carol_fetch = DeviceEndpoints::derive(&carol, &c.id);
    let refused =
        raw_get(carol_fetch.secret(IrohRole::Fetch), &alice_serve, addr, &out.entry.blob, &tmp.path().join("c/raw"))
            .await;
    assert!(refused.is_err(), "carol must be refused bob's blob");
    // Carol's own blob works over the raw path, which proves the refusal was the ACL.
    raw_get(
        carol_fetch.secret(IrohRole::Fetch),
        &alice_serve,
        addr,
        &carol_share.entry.blob,
        &tmp.path().join("c/raw2"),
    )
    .await
    .unwrap();
    // Carol's serve endpoint is hers too (providers admit every role).
    raw_get(
        carol_fetch.secret(IrohRole::Serve),
        &alice_serve,
        addr,
        &carol_share.entry.blob,
        &tmp.path().join("c/raw2b"),
    )
    .await
    .unwrap();
    // Dave (endpoints published, no share at all) is refused at connect; so is a
    // stranger whose endpoint is on nobody's chain, and bob's identity key, which
    // is no endpoint of his (his chain lists only his device keys).
    let dave_fetch = DeviceEndpoints::derive(&dave, &dev(0xd1));
    for (who, secret) in [
        ("dave", *dave_fetch.secret(IrohRole::Fetch)),
        ("stranger", [0x77; 32]),
        ("bob's identity key", bob.to_bytes()),
    ] {
        let r =
            raw_get(&secret, &alice_serve, addr, &out.entry.blob, &tmp.path().join(format!("raw-{}", who.len()))).await;
        assert!(r.is_err(), "{who} must be refused");
    }
    let stranger = pk(&SigningKey::from_bytes(&[0x77; 32]));
    assert!(events.lock().unwrap().iter().any(|e| matches!(e,
        ServeEvent::Refused { endpoint: Some(ep), peer: None, blob: None } if *ep == stranger)));

    // Tamper: flip a byte in the ciphertext the provider serves by reference.
    let blob_file = a.files.join(&out.record.blob_file);
    let mut bytes = std::fs::read(&blob_file).unwrap();
    bytes[1_000_000] ^= 0x40;
    std::fs::write(&blob_file, &bytes).unwrap();
    let b2 = tmp.path().join("b/dl2");
    let r = b.fetch(&dir, &cfg, &request(out.entry.clone(), pk(&alice), offer.clone(), &b2), |_| {}).await;
    // iroh-blobs' provider notices its data no longer matches the outboard and
    // resets the stream before sending the bad chunk group; had it sent it, the
    // bao check on our side would have failed (Tampered). Either way: rejected.
    match &r {
        Err(FilesError::Tampered(_)) => {}
        Err(FilesError::Other(m)) if m.contains("broke off") => {}
        other => panic!("tampered blob accepted? {other:?}"),
    }
    assert!(!b2.join("report.bin").exists(), "nothing under the final name");
    // Repair the provider's copy.
    bytes[1_000_000] ^= 0x40;
    std::fs::write(&blob_file, &bytes).unwrap();

    // Tampered entry (commitment changed in transit): the bytes download and
    // verify against the hash, but do not decrypt under the key → rejected.
    let mut bad = out.entry.clone();
    let mut cm = bad.commit_bytes();
    cm[0] ^= 1;
    bad.commit = hex::encode(cm);
    let b3 = tmp.path().join("b/dl3");
    let r = b.fetch(&dir, &cfg, &request(bad, pk(&alice), offer.clone(), &b3), |_| {}).await;
    assert!(matches!(r, Err(FilesError::Tampered(_))), "{r:?}");
    assert!(std::fs::read_dir(&b3).map(|d| d.count()).unwrap_or(0) == 0, "no file, no temp file");
    // Tampered metadata: the entry no longer opens.
    let mut bad = out.entry.clone();
    bad.meta = kv_schemas::encoding::b64_encode(&[7u8; 64]);
    let r = b.fetch(&dir, &cfg, &request(bad, pk(&alice), offer.clone(), &b3), |_| {}).await;
    assert!(r.is_err());

    // Unshare: the provider stops serving carol's file after its reload.
    unshare(&a.files, &carol_share.entry.id).unwrap().unwrap();
    provider.reload().await.unwrap();
    let r = raw_get(
        carol_fetch.secret(IrohRole::Fetch),
        &alice_serve,
        addr,
        &carol_share.entry.blob,
        &tmp.path().join("c/raw3"),
    )
    .await;
    assert!(r.is_err());
    provider.shutdown().await;
}

/// A plain iroh-blobs get of `blob` from endpoint `to` at `addr`, dialling with
/// the endpoint key `secret`.
async fn raw_get(
    secret: &[u8; 32],
    to: &PublicKey,
    addr: SocketAddr,
    blob: &str,
    dir: &Path,
) -> std::result::Result<(), String> {
    let cfg = NodeConfig::loopback();
    let ep = bind_endpoint(secret, &cfg, cfg.bind, vec![]).await.unwrap();
    let to = iroh::EndpointId::from_bytes(to.as_bytes()).unwrap();
    let conn = tokio::time::timeout(
        Duration::from_secs(3),
        ep.connect(iroh::EndpointAddr::new(to).with_ip_addr(addr), FILES_ALPN),
    )
    .await
    .map_err(|_| "timeout".to_string())?
    .map_err(|e| e.to_string())?;
    let store = iroh_blobs::store::fs::FsStore::load(dir).await.unwrap();
    let hash: iroh_blobs::Hash = blob.parse().unwrap();
    let r = store.remote().fetch(conn, hash).await.map(|_| ()).map_err(|e| format!("{e:#}"));
    store.shutdown().await.ok();
    ep.close().await;
    r
}

/// A second device of bob (the same words restored elsewhere) is admitted once it
/// has published its endpoints — on its first try, though alice's provider had
/// just read bob's chain; before that, and again after its removal, it is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn second_device_admitted_and_removed_device_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = Arc::new(MemDirectory::default());
    let (alice, bob) = (key(31), key(32));
    let a = Device { sk: &alice, id: dev(0xa1), files: tmp.path().join("a/files") };
    let b1 = Device { sk: &bob, id: dev(0xb1), files: tmp.path().join("b1/files") };
    let b2 = Device { sk: &bob, id: dev(0xb2), files: tmp.path().join("b2/files") };
    ensure_device_endpoints(&*dir, &alice, &a.id).await.unwrap();
    ensure_device_endpoints(&*dir, &bob, &b1.id).await.unwrap();
    let src = random_file(tmp.path(), "notes.txt", 200_000);
    let out = share_file(&alice, &a.files, &src, &[pk(&bob)]).unwrap();
    let mut pcfg = NodeConfig::loopback();
    pcfg.peer_ttl = Duration::from_millis(200);
    let (provider, addr, events) = start_provider(&alice, &a.id, &a.files, &dir, pcfg).await;
    let events = collect(events);
    let cfg = cfg_with_hint(&pk(&alice), addr);
    let req =
        |d: &str| request(out.entry.clone(), pk(&alice), Source::Offer(serve_of(&alice, &a.id)), &tmp.path().join(d));

    b1.fetch(&dir, &cfg, &req("dl1"), |_| {}).await.unwrap();
    // bob's second device before it published anything: its endpoint is on no chain.
    let r = b2.fetch(&dir, &cfg, &req("dl2"), |_| {}).await;
    assert!(r.is_err(), "an unpublished device is refused: {r:?}");
    // Reads of one chain are at least a second apart; then the new device's first try works.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    ensure_device_endpoints(&*dir, &bob, &b2.id).await.unwrap();
    let got = b2.fetch(&dir, &cfg, &req("dl3"), |_| {}).await.unwrap();
    assert_eq!(std::fs::read(&got.path).unwrap(), std::fs::read(&src).unwrap());
    assert!(events.lock().unwrap().iter().any(|e| matches!(e,
        ServeEvent::Serving { peer, device, .. } if *peer == pk(&bob) && device.as_ref() == Some(&b2.id))));

    // Removing device 2 withdraws both of its endpoints (and nothing of device 1's).
    assert_eq!(remove_device_endpoints(&*dir, &bob, &b2.id).await.unwrap(), 2);
    assert_eq!(remove_device_endpoints(&*dir, &bob, &b2.id).await.unwrap(), 0);
    let (state, _) = verify_chain(&pk(&bob), &dir.chains.lock().unwrap()[&pk(&bob)]).unwrap();
    let left: Vec<_> = state.iroh_endpoints().map(|e| e.device.map(|d| d.device.clone())).collect();
    assert_eq!(left, [Some(b1.id.clone()), Some(b1.id.clone())]);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let r = b2.fetch(&dir, &cfg, &req("dl4"), |_| {}).await;
    assert!(r.is_err(), "a removed device is refused once the provider's view expired: {r:?}");
    b1.fetch(&dir, &cfg, &req("dl5"), |_| {}).await.unwrap();
    provider.shutdown().await;
}

/// An offer whose node id is not a live serving endpoint of the sender is refused
/// before anything is dialled (a forged or outdated offer must not make the
/// reader connect to an endpoint of the forger's choosing).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offer_naming_an_endpoint_not_on_the_senders_chain_is_not_dialled() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = MemDirectory::default();
    let (alice, bob, mallory) = (key(41), key(42), key(43));
    let a = dev(0xa1);
    let b = Device { sk: &bob, id: dev(0xb1), files: tmp.path().join("b/files") };
    ensure_device_endpoints(&dir, &alice, &a).await.unwrap();
    ensure_device_endpoints(&dir, &mallory, &dev(0x31)).await.unwrap();
    let src = random_file(tmp.path(), "x.bin", 1000);
    let out = share_file(&alice, &tmp.path().join("a/files"), &src, &[pk(&bob)]).unwrap();
    // A listener where the forged node would be "reachable": it must never see a connection.
    let trap = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    trap.set_read_timeout(Some(Duration::from_millis(300))).unwrap();
    let mut cfg = cfg_with_hint(&pk(&alice), trap.local_addr().unwrap());
    let forged = [
        ("mallory's serve endpoint", serve_of(&mallory, &dev(0x31))),
        ("alice's fetch endpoint", fetch_of(&alice, &a)),
        ("alice's identity key (no wave-1 link)", pk(&alice)),
        ("a key on no chain", pk(&key(44))),
    ];
    for (what, node) in forged {
        cfg.add_hint(*node.as_bytes(), trap.local_addr().unwrap());
        let mut seen = vec![];
        let r = b
            .fetch(
                &dir,
                &cfg,
                &request(out.entry.clone(), pk(&alice), Source::Offer(node), &tmp.path().join("dl")),
                |e| seen.push(e),
            )
            .await;
        match r {
            Err(e @ FilesError::NotAnEndpoint { .. }) => assert!(e.to_string().contains(&node.hex()), "{e}"),
            other => panic!("{what}: expected NotAnEndpoint, got {other:?}"),
        }
        assert!(!seen.iter().any(|e| matches!(e, FetchEvent::Connecting)), "{what}: dialled anyway");
    }
    let mut buf = [0u8; 2048];
    assert!(trap.recv_from(&mut buf).is_err(), "no packet reached the forged address");
    assert!(!tmp.path().join("dl").exists());
    // The genuine serve endpoint passes the check (and then is merely offline).
    let r = b
        .fetch(
            &dir,
            &cfg,
            &request(out.entry.clone(), pk(&alice), Source::Offer(serve_of(&alice, &a)), &tmp.path().join("dl")),
            |_| {},
        )
        .await;
    assert!(matches!(r, Err(FilesError::Offline { .. })), "{r:?}");
}

/// One data folder serving (`listen`) and fetching (`fetch`) at the same time:
/// two endpoints with distinct ids, both admitted where they should be.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serving_and_fetching_from_one_device_at_once() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = Arc::new(MemDirectory::default());
    let (alice, bob) = (key(51), key(52));
    let a = Device { sk: &alice, id: dev(0xa1), files: tmp.path().join("a/files") };
    let b = Device { sk: &bob, id: dev(0xb1), files: tmp.path().join("b/files") };
    ensure_device_endpoints(&*dir, &alice, &a.id).await.unwrap();
    ensure_device_endpoints(&*dir, &bob, &b.id).await.unwrap();
    let for_alice = random_file(tmp.path(), "for-alice.bin", 2 * 1024 * 1024);
    let for_bob = random_file(tmp.path(), "for-bob.bin", 2 * 1024 * 1024);
    let to_alice = share_file(&bob, &b.files, &for_alice, &[pk(&alice)]).unwrap();
    let to_bob = share_file(&alice, &a.files, &for_bob, &[pk(&bob)]).unwrap();
    // Alice's device serves (as `listen` does) and bob's serves too.
    let (a_prov, a_addr, a_events) = start_provider(&alice, &a.id, &a.files, &dir, NodeConfig::loopback()).await;
    let (b_prov, b_addr, b_events) = start_provider(&bob, &b.id, &b.files, &dir, NodeConfig::loopback()).await;
    let (a_events, b_events) = (collect(a_events), collect(b_events));
    assert_ne!(a_prov.id().unwrap(), fetch_of(&alice, &a.id));
    // While alice's provider runs, alice's same data folder fetches from bob, and
    // bob fetches from alice: all at once.
    let (a_cfg, b_cfg) = (cfg_with_hint(&pk(&bob), b_addr), cfg_with_hint(&pk(&alice), a_addr));
    let a_req =
        request(to_alice.entry.clone(), pk(&bob), Source::Offer(serve_of(&bob, &b.id)), &tmp.path().join("a/dl"));
    let b_req =
        request(to_bob.entry.clone(), pk(&alice), Source::Offer(serve_of(&alice, &a.id)), &tmp.path().join("b/dl"));
    let (ra, rb) = tokio::join!(a.fetch(&dir, &a_cfg, &a_req, |_| {}), b.fetch(&dir, &b_cfg, &b_req, |_| {}));
    assert_eq!(std::fs::read(ra.unwrap().path).unwrap(), std::fs::read(&for_alice).unwrap());
    assert_eq!(std::fs::read(rb.unwrap().path).unwrap(), std::fs::read(&for_bob).unwrap());
    // Bob's provider served alice's fetch endpoint, whose id differs from alice's serving one.
    assert!(b_events.lock().unwrap().iter().any(|e| matches!(e,
        ServeEvent::Serving { peer, endpoint, .. } if *peer == pk(&alice) && *endpoint == fetch_of(&alice, &a.id))));
    assert!(a_events.lock().unwrap().iter().any(|e| matches!(e,
        ServeEvent::Serving { peer, endpoint, .. } if *peer == pk(&bob) && *endpoint == fetch_of(&bob, &b.id))));
    a_prov.shutdown().await;
    b_prov.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offline_then_back_and_wait_and_resume() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = Arc::new(MemDirectory::default());
    let (alice, bob) = (key(11), key(12));
    let a = Device { sk: &alice, id: dev(0xa1), files: tmp.path().join("a/files") };
    let b = Device { sk: &bob, id: dev(0xb1), files: tmp.path().join("b/files") };
    ensure_device_endpoints(&*dir, &alice, &a.id).await.unwrap();
    ensure_device_endpoints(&*dir, &bob, &b.id).await.unwrap();
    let src = random_file(tmp.path(), "big.bin", 6 * 1024 * 1024);
    let out = share_file(&alice, &a.files, &src, &[pk(&bob)]).unwrap();
    let port = free_port();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let cfg = cfg_with_hint(&pk(&alice), addr);
    let offer = Source::Offer(serve_of(&alice, &a.id));

    // Alice offline: a clear error within the timeout, not 30 s.
    let t0 = std::time::Instant::now();
    let r = b
        .fetch(&dir, &cfg, &request(out.entry.clone(), pk(&alice), offer.clone(), &tmp.path().join("dl1")), |_| {})
        .await;
    match r {
        Err(e @ FilesError::Offline { .. }) => assert!(e.to_string().contains("alice is offline"), "{e}"),
        other => panic!("expected offline, got {other:?}"),
    }
    assert!(t0.elapsed() < Duration::from_secs(6), "{:?}", t0.elapsed());

    // --wait: starts while alice is offline, completes once she is back.
    let mut req = request(out.entry.clone(), pk(&alice), offer.clone(), &tmp.path().join("dl1"));
    req.wait = Some(Duration::from_millis(300));
    let (bob2, b_files2, cfg2, dir2, id2) = (bob.clone(), b.files.clone(), cfg.clone(), dir.clone(), b.id.clone());
    let waiter = tokio::spawn(async move {
        let mut offline = 0;
        let f = Fetcher { me: &bob2, device: &id2, chains: &*dir2, files_dir: &b_files2, cfg: &cfg2 };
        let r = fetch(&f, &req, never(), |e| {
            if matches!(e, FetchEvent::Offline { waiting: true, .. }) {
                offline += 1;
            }
        })
        .await;
        (r, offline)
    });
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let mut pcfg = NodeConfig::loopback();
    pcfg.bind = Some(addr);
    let (provider, _, events) = start_provider(&alice, &a.id, &a.files, &dir, pcfg).await;
    let _events = collect(events);
    let (r, offline) = tokio::time::timeout(Duration::from_secs(60), waiter).await.unwrap().unwrap();
    let got = r.unwrap();
    assert!(offline >= 1);
    assert_eq!(std::fs::read(&got.path).unwrap(), std::fs::read(&src).unwrap());

    // Resume: interrupt half-way, then the next fetch transfers only the rest.
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let mut tx = Some(tx);
    let dl2 = tmp.path().join("dl2");
    let f = Fetcher { me: &bob, device: &b.id, chains: &*dir, files_dir: &b.files, cfg: &cfg };
    let r = fetch(
        &f,
        &request(out.entry.clone(), pk(&alice), offer.clone(), &dl2),
        async {
            rx.await.ok();
        },
        |e| {
            if let FetchEvent::Progress { done, total } = e
                && done * 2 >= total
                && let Some(t) = tx.take()
            {
                let _ = t.send(());
            }
        },
    )
    .await;
    let have = match r {
        Err(FilesError::Interrupted { have, total }) => {
            assert!(have > 0 && have < total, "{have}/{total}");
            have
        }
        Ok(_) => {
            // On a very fast machine it can finish before the cancel lands.
            eprintln!("fetch finished before the interruption; resume not exercised");
            provider.shutdown().await;
            return;
        }
        Err(e) => panic!("{e:?}"),
    };
    assert!(!dl2.join("big.bin").exists(), "no half-written file under the final name");
    let mut resumed = None;
    let got = b
        .fetch(&dir, &cfg, &request(out.entry.clone(), pk(&alice), offer.clone(), &dl2), |e| {
            if let FetchEvent::Resuming { have } = e {
                resumed = Some(have);
            }
        })
        .await
        .unwrap();
    assert!(resumed.is_some_and(|h| h > 0 && h <= have + 1024 * 1024), "{resumed:?} vs {have}");
    assert!(got.transferred < out.entry.ct_size, "only the rest: {} of {}", got.transferred, out.entry.ct_size);
    assert_eq!(std::fs::read(&got.path).unwrap(), std::fs::read(&src).unwrap());
    provider.shutdown().await;
}

/// The `/v1` side in memory, with the server's rules for appends.
#[derive(Default)]
struct MemDirectory {
    chains: Mutex<HashMap<PublicKey, Vec<Value>>>,
    manifests: Mutex<HashMap<String, Vec<u8>>>,
    /// Serve these bytes for any manifest hash (a lying index).
    override_manifest: Mutex<Option<Vec<u8>>>,
}

impl Chains for MemDirectory {
    async fn chain(&self, key: &PublicKey) -> Result<Vec<Value>> {
        Ok(self.chains.lock().unwrap().get(key).cloned().unwrap_or_default())
    }
    async fn append_link(&self, key: &PublicKey, link: Vec<u8>) -> Result<()> {
        let mut chains = self.chains.lock().unwrap();
        let links = chains.entry(*key).or_default();
        let (mut state, _) = verify_chain(key, links)?;
        let parsed = parse_link(&link)?;
        state.apply(&parsed)?;
        links.push(serde_json::from_slice(&link).unwrap());
        Ok(())
    }
}

impl Directory for MemDirectory {
    async fn put_manifest(&self, bytes: Vec<u8>) -> Result<String> {
        let m = kv_schemas::manifest::parse(&bytes)?;
        self.manifests.lock().unwrap().insert(m.hash.clone(), bytes);
        Ok(m.hash)
    }
    async fn manifest(&self, hash: &str) -> Result<Vec<u8>> {
        if let Some(b) = self.override_manifest.lock().unwrap().clone() {
            return Ok(b);
        }
        self.manifests
            .lock()
            .unwrap()
            .get(hash)
            .cloned()
            .ok_or_else(|| FilesError::Protocol(KezError { code: ErrorCode::ManifestNotFound, message: hash.into() }))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn manifest_publish_browse_and_rejections() {
    let tmp = tempfile::tempdir().unwrap();
    let (alice, bob, carol) = (key(21), key(22), key(23));
    let a_files = tmp.path().join("a/files");
    let dir = MemDirectory::default();

    // Nothing shared yet.
    let b = browse(&dir, &bob, &pk(&alice), None).await.unwrap();
    assert!(b.manifest.is_none() && b.visible.is_empty());

    let f1 = random_file(tmp.path(), "one.txt", 5000);
    let f2 = random_file(tmp.path(), "two.txt", 7000);
    let s1 = share_file(&alice, &a_files, &f1, &[pk(&bob)]).unwrap();
    let p1 = publish_manifest(&dir, &alice, &a_files).await.unwrap();
    assert_eq!((p1.seq, p1.entries), (1, 1));
    let s2 = share_file(&alice, &a_files, &f2, &[pk(&carol)]).unwrap();
    let p2 = publish_manifest(&dir, &alice, &a_files).await.unwrap();
    assert_eq!((p2.seq, p2.entries), (2, 2));

    // Bob sees only his; carol only hers; the owner sees both.
    let b = browse(&dir, &bob, &pk(&alice), None).await.unwrap();
    assert_eq!(b.visible.len(), 1);
    assert_eq!(b.visible[0].meta.name, "one.txt");
    assert_eq!(b.visible[0].entry, s1.entry);
    assert_eq!(b.hidden, 1);
    assert_eq!(b.find(&s1.entry.id[..6]).unwrap().entry.id, s1.entry.id);
    let c = browse(&dir, &carol, &pk(&alice), None).await.unwrap();
    assert_eq!(c.visible.len(), 1);
    assert_eq!(c.visible[0].entry.id, s2.entry.id);
    assert!(c.find(&s1.entry.id).is_err(), "carol sees none of bob's entries");
    let a = browse(&dir, &alice, &pk(&alice), None).await.unwrap();
    assert_eq!(a.visible.len(), 2);

    // A rollback of the chain is refused against the pinned tail.
    let pinned = b.tail.clone();
    let saved = dir.chains.lock().unwrap().get(&pk(&alice)).cloned().unwrap();
    dir.chains.lock().unwrap().insert(pk(&alice), saved[..saved.len() - 1].to_vec());
    assert!(browse(&dir, &bob, &pk(&alice), Some(&pinned)).await.is_err());
    dir.chains.lock().unwrap().insert(pk(&alice), saved);

    // The index serves the older manifest (a real, signed one) for the new pointer.
    let old = dir.manifests.lock().unwrap().get(&p1.hash).cloned().unwrap();
    *dir.override_manifest.lock().unwrap() = Some(old);
    let e = browse(&dir, &bob, &pk(&alice), None).await.unwrap_err();
    assert!(e.to_string().contains("does not match the sigchain"), "{e}");

    // A tampered manifest (one byte of an entry changed).
    let cur = dir.manifests.lock().unwrap().get(&p2.hash).cloned().unwrap();
    let text = String::from_utf8(cur.clone()).unwrap();
    let tampered = text.replacen(&s1.entry.id, &s2.entry.id.chars().rev().collect::<String>(), 1).into_bytes();
    assert_ne!(manifest_hash(&tampered), p2.hash);
    *dir.override_manifest.lock().unwrap() = Some(tampered);
    assert!(browse(&dir, &bob, &pk(&alice), None).await.is_err());
    *dir.override_manifest.lock().unwrap() = None;

    // Unshare: a new manifest without the entry.
    unshare(&a_files, &s1.entry.id).unwrap().unwrap();
    let p3 = publish_manifest(&dir, &alice, &a_files).await.unwrap();
    assert_eq!((p3.seq, p3.entries), (3, 1));
    let b = browse(&dir, &bob, &pk(&alice), None).await.unwrap();
    assert!(b.visible.is_empty());
    assert!(!a_files.join(&s1.record.blob_file).exists(), "ciphertext deleted");
}

/// A manifest entry is fetched from each serving endpoint of the owner in turn
/// (newest device first, wave-1 last): a device that is not running is skipped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn manifest_fetch_tries_each_serving_device() {
    use kv_schemas::sigchain::{Endpoint, Op, build_link};
    let tmp = tempfile::tempdir().unwrap();
    let dir = Arc::new(MemDirectory::default());
    let (alice, bob, carol) = (key(61), key(62), key(63));
    let a1 = Device { sk: &alice, id: dev(0xa1), files: tmp.path().join("a1/files") };
    let b = Device { sk: &bob, id: dev(0xb1), files: tmp.path().join("b/files") };
    // A wave-1 link first (as an account of the first release has), then two devices.
    dir.append_link(
        &pk(&alice),
        build_link(&alice, 1, None, kv_schemas::now_ms(), &Op::AddEndpoint(Endpoint::iroh_wave1(&pk(&alice)))).unwrap(),
    )
    .await
    .unwrap();
    ensure_device_endpoints(&*dir, &alice, &a1.id).await.unwrap();
    ensure_device_endpoints(&*dir, &alice, &dev(0xa2)).await.unwrap();
    ensure_device_endpoints(&*dir, &bob, &b.id).await.unwrap();
    let src = random_file(tmp.path(), "m.bin", 300_000);
    let s = share_file(&alice, &a1.files, &src, &[pk(&bob)]).unwrap();
    publish_manifest(&*dir, &alice, &a1.files).await.unwrap();
    let listing = browse(&*dir, &bob, &pk(&alice), None).await.unwrap();
    assert_eq!(listing.visible.len(), 1);

    let (provider, addr, events) = start_provider(&alice, &a1.id, &a1.files, &dir, NodeConfig::loopback()).await;
    let _events = collect(events);
    let cfg = cfg_with_hint(&pk(&alice), addr);
    let mut req = request(s.entry.clone(), pk(&alice), Source::Owner, &tmp.path().join("dl"));
    req.owner_pin = Some(listing.tail.clone());
    let mut connecting = 0;
    let got = b
        .fetch(&dir, &cfg, &req, |e| {
            if matches!(e, FetchEvent::Connecting) {
                connecting += 1;
            }
        })
        .await
        .unwrap();
    assert_eq!(std::fs::read(&got.path).unwrap(), std::fs::read(&src).unwrap());
    assert_eq!(connecting, 2, "device 2 (newest, not running) first, then device 1");

    // An owner without any serving endpoint: nothing to dial.
    let mut req = request(s.entry.clone(), pk(&carol), Source::Owner, &tmp.path().join("dl2"));
    req.peer_label = "carol".into();
    let carols = share_file(&carol, &tmp.path().join("c/files"), &src, &[pk(&bob)]).unwrap();
    req.entry = carols.entry;
    let r = b.fetch(&dir, &cfg, &req, |_| {}).await;
    assert!(matches!(r, Err(FilesError::NoEndpoint { .. })), "{r:?}");
    provider.shutdown().await;
}

/// The own chain is pinned too (PROTOCOL.md §5): after the server replaces the
/// own chain with a fork of the same length (another link at the pinned seqno)
/// or rolls it back, publishing a manifest, publishing endpoints and browsing the
/// own shares all fail with `invalid_link` instead of building on the server's view.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn own_chain_rollback_and_fork_fail_every_path() {
    use kez_client::files::PinnedChains;
    use kv_schemas::sigchain::{Endpoint, Op, build_link};
    let tmp = tempfile::tempdir().unwrap();
    let alice = key(71);
    let files = tmp.path().join("a/files");
    let dir = MemDirectory::default();
    let src = random_file(tmp.path(), "own.txt", 1000);
    share_file(&alice, &files, &src, &[pk(&alice)]).unwrap();

    // Honest start: the own chain is verified and pinned through the wrapper.
    let own = PinnedChains::new(&dir, pk(&alice), None);
    ensure_device_endpoints(&own, &alice, &dev(0x71)).await.unwrap();
    publish_manifest(&own, &alice, &files).await.unwrap();
    let pin = own.tail().unwrap();
    assert_eq!(pin.seqno, 3);
    let honest = dir.chains.lock().unwrap().get(&pk(&alice)).cloned().unwrap();

    let is_invalid_link = |e: FilesError| matches!(&e, FilesError::Protocol(k) if k.code == ErrorCode::InvalidLink);

    // A fork: same length, a different (validly signed) link 3.
    let mut forked = honest[..2].to_vec();
    let tail2 = parse_link(&serde_json::to_vec(&honest[1]).unwrap()).unwrap().link_id;
    let other = Endpoint::iroh_wave1(&pk(&alice));
    let l3 = build_link(&alice, 3, Some(&tail2), kv_schemas::now_ms(), &Op::AddEndpoint(other)).unwrap();
    forked.push(serde_json::from_slice(&l3).unwrap());
    dir.chains.lock().unwrap().insert(pk(&alice), forked);
    let own = PinnedChains::new(&dir, pk(&alice), Some(pin.clone()));
    assert!(is_invalid_link(publish_manifest(&own, &alice, &files).await.unwrap_err()), "publish on a fork");
    assert!(is_invalid_link(ensure_device_endpoints(&own, &alice, &dev(0x72)).await.unwrap_err()), "endpoints");
    assert!(is_invalid_link(browse(&own, &alice, &pk(&alice), None).await.unwrap_err()), "browse own");
    assert!(browse(&dir, &alice, &pk(&alice), Some(&pin)).await.is_err(), "browse with the pin");
    assert_eq!(dir.chains.lock().unwrap().get(&pk(&alice)).unwrap().len(), 3, "nothing was appended");

    // A rollback: the last link gone.
    dir.chains.lock().unwrap().insert(pk(&alice), honest[..2].to_vec());
    assert!(is_invalid_link(publish_manifest(&own, &alice, &files).await.unwrap_err()), "publish on a rollback");
    assert_eq!(dir.chains.lock().unwrap().get(&pk(&alice)).unwrap().len(), 2, "nothing was appended");

    // The honest chain again: everything works and the pin moves on.
    dir.chains.lock().unwrap().insert(pk(&alice), honest);
    publish_manifest(&own, &alice, &files).await.unwrap();
    assert_eq!(own.tail().unwrap().seqno, 4);
}
