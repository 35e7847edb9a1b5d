//! Sigchain links, whole-chain verification and derived state (PROTOCOL.md §5).
//!
//! A link is signed over `signing_input("sigchain.link", link without sig)` and
//! identified by `link_id = hex(SHA-256(signing input))`; each link names the
//! previous link's id, so a chain is a hash-linked, append-only log.
//!
//! Also the per-device Iroh endpoint keys a chain advertises (PROTOCOL.md §7.5):
//! [`endpoint_seed`] derives them from the identity seed and a device id.

use ed25519_dalek::SigningKey;
use hkdf::Hkdf;
use serde::Serialize;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::encoding::hex_encode;
use crate::error::{ErrorCode, KezError, err};
use crate::jcs::{Fields, canonicalize, parse_canonical};
use crate::keys::PublicKey;
use crate::sig::{Purpose, sign_canonical, verify_object};
use crate::subjects::{DeviceId, legacy_inbox_subject};

/// Largest accepted link.
pub const MAX_LINK_BYTES: usize = 8 * 1024;
/// Most links one chain may hold.
pub const MAX_CHAIN_LINKS: u64 = 10_000;

/// Where a user listens.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Endpoint {
    /// A NATS inbox.
    Nats {
        /// `kez.inbox.<hex of chain key>`.
        subject: String,
        /// The broker URL the user advertises.
        url: String,
    },
    /// An Iroh endpoint.
    Iroh {
        /// Endpoint id hex (any key that passes PROTOCOL.md §2.1).
        node_id: String,
        /// The device and role it belongs to; `None` for a wave-1 link (a serving
        /// endpoint of no particular device).
        #[serde(flatten, skip_serializing_if = "Option::is_none")]
        device: Option<IrohDevice>,
    },
}

impl Endpoint {
    /// A per-device Iroh endpoint (PROTOCOL.md §7.5).
    pub fn iroh_device(node_id: &PublicKey, device: DeviceId, role: IrohRole) -> Self {
        Endpoint::Iroh { node_id: node_id.hex(), device: Some(IrohDevice { device, role }) }
    }

    /// A wave-1 Iroh endpoint (no device, serving).
    pub fn iroh_wave1(node_id: &PublicKey) -> Self {
        Endpoint::Iroh { node_id: node_id.hex(), device: None }
    }
}

/// What an Iroh endpoint is for (PROTOCOL.md §7.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IrohRole {
    /// Serves shared blobs (`listen`, `serve`); the one fetchers dial.
    Serve,
    /// Dials other users' serving endpoints (`fetch`).
    Fetch,
}

impl IrohRole {
    /// Both roles.
    pub const ALL: [IrohRole; 2] = [IrohRole::Serve, IrohRole::Fetch];

    /// The wire text (`serve`, `fetch`), also the last part of the derivation info.
    pub fn as_str(self) -> &'static str {
        match self {
            IrohRole::Serve => "serve",
            IrohRole::Fetch => "fetch",
        }
    }

    /// Parses the wire text.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "serve" => Some(IrohRole::Serve),
            "fetch" => Some(IrohRole::Fetch),
            _ => None,
        }
    }
}

impl std::fmt::Display for IrohRole {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The device and role of a per-device Iroh endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct IrohDevice {
    /// The device id (PROTOCOL.md §6.1).
    pub device: DeviceId,
    /// What the endpoint is for.
    pub role: IrohRole,
}

/// HKDF info prefix of [`endpoint_seed`].
pub const ENDPOINT_SEED_INFO: &[u8] = b"kez-v1/iroh-endpoint";

/// The secret of a device's Iroh endpoint for `role` (PROTOCOL.md §7.5):
/// `HKDF-SHA256(ikm = seed, salt = "", info = "kez-v1/iroh-endpoint" || 0x00 || device || 0x00 || role, 32)`.
/// The endpoint id is the Ed25519 public key of this seed ([`endpoint_key`]).
pub fn endpoint_seed(seed: &[u8; 32], device: &DeviceId, role: IrohRole) -> Zeroizing<[u8; 32]> {
    let mut info = Vec::with_capacity(ENDPOINT_SEED_INFO.len() + 2 + 16 + 5);
    info.extend_from_slice(ENDPOINT_SEED_INFO);
    info.push(0);
    info.extend_from_slice(device.as_str().as_bytes());
    info.push(0);
    info.extend_from_slice(role.as_str().as_bytes());
    let mut out = Zeroizing::new([0u8; 32]);
    // 32 bytes is far below HKDF-SHA256's 8160-byte limit: expand cannot fail.
    let _ = Hkdf::<Sha256>::new(Some(b""), seed).expand(&info, &mut out[..]);
    out
}

/// The endpoint id (Ed25519 public key) of [`endpoint_seed`].
pub fn endpoint_key(seed: &[u8; 32], device: &DeviceId, role: IrohRole) -> PublicKey {
    PublicKey::of(&SigningKey::from_bytes(&endpoint_seed(seed, device, role)))
}

/// The `set_shared_files` pointer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct SharedFiles {
    /// BLAKE3 hex of the manifest bytes.
    pub manifest: String,
    /// Strictly increasing manifest sequence.
    pub manifest_seq: u64,
    /// Manifest size in bytes.
    pub size: u64,
}

/// An external identity claim.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Claim {
    /// Service name, e.g. `kez`, `github`, `dns`.
    pub service: String,
    /// Account on that service.
    pub account: String,
    /// Where the proof is posted, if anywhere.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub proof: Option<String>,
}

/// What a link does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// Advertise an endpoint.
    AddEndpoint(Endpoint),
    /// Withdraw an endpoint by the link id that added it.
    RemoveEndpoint {
        /// Link id of the `add_endpoint`.
        target: String,
    },
    /// Point at the current shared-files manifest.
    SetSharedFiles(SharedFiles),
    /// Add an identity claim.
    AddClaim(Claim),
    /// An op this version does not know, carried with `ignore_if_unsupported`.
    Unsupported {
        /// The op name.
        op: String,
        /// Its body.
        body: Value,
    },
}

impl Op {
    fn name(&self) -> &str {
        match self {
            Op::AddEndpoint(_) => "add_endpoint",
            Op::RemoveEndpoint { .. } => "remove_endpoint",
            Op::SetSharedFiles(_) => "set_shared_files",
            Op::AddClaim(_) => "add_claim",
            Op::Unsupported { op, .. } => op,
        }
    }

    fn body(&self) -> Value {
        match self {
            Op::AddEndpoint(e) => serde_json::to_value(e).unwrap_or(Value::Null),
            Op::RemoveEndpoint { target } => json!({ "target": target }),
            Op::SetSharedFiles(s) => serde_json::to_value(s).unwrap_or(Value::Null),
            Op::AddClaim(c) => serde_json::to_value(c).unwrap_or(Value::Null),
            Op::Unsupported { body, .. } => body.clone(),
        }
    }
}

/// A parsed, signature-checked link (not yet checked against its chain).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    /// Chain owner.
    pub chain: PublicKey,
    /// Position, from 1.
    pub seqno: u64,
    /// Link id of the previous link, `None` for link 1.
    pub prev: Option<String>,
    /// Client time, ms.
    pub ctime: u64,
    /// What it does.
    pub op: Op,
    /// `hex(SHA-256(signing input))`.
    pub link_id: String,
    /// The exact canonical bytes.
    pub bytes: Vec<u8>,
}

impl Link {
    /// The link as a JSON value (for embedding in responses).
    pub fn to_value(&self) -> Value {
        serde_json::from_slice(&self.bytes).unwrap_or(Value::Null)
    }
}

/// Builds and signs a link; returns its canonical bytes.
pub fn build_link(
    signing: &SigningKey,
    seqno: u64,
    prev: Option<&str>,
    ctime: u64,
    op: &Op,
) -> Result<Vec<u8>, KezError> {
    let key = PublicKey::of(signing).to_string();
    let unsigned = json!({
        "v": 1,
        "chain": key,
        "signer": key,
        "seqno": seqno,
        "prev": prev,
        "ctime": ctime,
        "op": op.name(),
        "ignore_if_unsupported": matches!(op, Op::Unsupported { .. }),
        "body": op.body(),
    });
    sign_canonical(signing, Purpose::SigchainLink, unsigned)
}

/// Parses one link: canonical bytes, exact shape, known op body, valid signature.
pub fn parse_link(bytes: &[u8]) -> Result<Link, KezError> {
    if bytes.len() > MAX_LINK_BYTES {
        return Err(err(ErrorCode::TooLarge, format!("link is over {MAX_LINK_BYTES} bytes")));
    }
    let value = parse_canonical(bytes)?;
    let f = Fields::exact(
        &value,
        "link",
        &["type", "v", "chain", "signer", "seqno", "prev", "ctime", "op", "ignore_if_unsupported", "body", "sig"],
        &[],
    )?;
    let chain: PublicKey = f.str("chain")?.parse()?;
    let signer: PublicKey = f.str("signer")?.parse()?;
    if signer != chain {
        return Err(err(ErrorCode::InvalidLink, "signer must be the chain key"));
    }
    let seqno = f.u64("seqno")?;
    if seqno == 0 {
        return Err(err(ErrorCode::InvalidLink, "seqno starts at 1"));
    }
    let prev = match f.get("prev") {
        Some(Value::Null) => None,
        Some(Value::String(s)) if crate::encoding::is_hash(s) => Some(s.clone()),
        _ => return Err(err(ErrorCode::InvalidLink, "prev must be null or a 64-hex link id")),
    };
    if (seqno == 1) != prev.is_none() {
        return Err(err(ErrorCode::InvalidLink, "prev is null exactly for seqno 1"));
    }
    let ctime = f.u64("ctime")?;
    let ignore = f.bool("ignore_if_unsupported")?;
    let body = f.object("body")?;
    let op = parse_op(f.str("op")?, body, ignore, &chain)?;
    let input = verify_object(Purpose::SigchainLink, value.as_object().unwrap_or(&Map::new()), &chain)?;
    let link_id = hex_encode(&Sha256::digest(&input));
    Ok(Link { chain, seqno, prev, ctime, op, link_id, bytes: bytes.to_vec() })
}

fn bounded(s: &str, max: usize, what: &str) -> Result<String, KezError> {
    if s.is_empty() || s.chars().count() > max {
        return Err(err(ErrorCode::InvalidLink, format!("{what} must be 1 to {max} characters")));
    }
    Ok(s.to_owned())
}

fn parse_op(op: &str, body: &Value, ignore: bool, chain: &PublicKey) -> Result<Op, KezError> {
    let invalid = |m: String| err(ErrorCode::InvalidLink, m);
    Ok(match op {
        "add_endpoint" => {
            let kind = body.get("kind").and_then(Value::as_str).unwrap_or("");
            match kind {
                "nats" => {
                    let f = Fields::exact(body, "nats endpoint", &["kind", "subject", "url"], &[])?;
                    let subject = f.str("subject")?;
                    if subject != legacy_inbox_subject(chain) {
                        return Err(invalid(format!("nats subject must be {}", legacy_inbox_subject(chain))));
                    }
                    Op::AddEndpoint(Endpoint::Nats {
                        subject: subject.into(),
                        url: bounded(f.str("url")?, 512, "url")?,
                    })
                }
                "iroh" => {
                    let f = Fields::exact(body, "iroh endpoint", &["kind", "node_id"], &["device", "role"])?;
                    let node_id = f.str("node_id")?;
                    PublicKey::from_hex(node_id)
                        .map_err(|e| invalid(format!("iroh node_id must be a valid key: {}", e.message)))?;
                    // A device endpoint names both its device and its role; a
                    // wave-1 endpoint names neither. Half of the pair is a shape error.
                    let device = match (f.opt_str("device")?, f.opt_str("role")?) {
                        (None, None) => None,
                        (Some(d), Some(r)) => Some(IrohDevice {
                            device: d
                                .parse()
                                .map_err(|_| invalid("device must be 16 lowercase hex characters".into()))?,
                            role: IrohRole::parse(r).ok_or_else(|| invalid("role must be serve or fetch".into()))?,
                        }),
                        _ => {
                            return Err(err(ErrorCode::InvalidRequest, "iroh endpoint: device and role go together"));
                        }
                    };
                    Op::AddEndpoint(Endpoint::Iroh { node_id: node_id.into(), device })
                }
                other => return Err(invalid(format!("unknown endpoint kind {other:?}"))),
            }
        }
        "remove_endpoint" => {
            let f = Fields::exact(body, "remove_endpoint", &["target"], &[])?;
            let target = f.str("target")?;
            if !crate::encoding::is_hash(target) {
                return Err(invalid("target must be a link id".into()));
            }
            Op::RemoveEndpoint { target: target.into() }
        }
        "set_shared_files" => {
            let f = Fields::exact(body, "set_shared_files", &["manifest", "manifest_seq", "size"], &[])?;
            let manifest = f.str("manifest")?;
            if !crate::encoding::is_hash(manifest) {
                return Err(invalid("manifest must be a BLAKE3 hex hash".into()));
            }
            Op::SetSharedFiles(SharedFiles {
                manifest: manifest.into(),
                manifest_seq: f.u64("manifest_seq")?,
                size: f.u64("size")?,
            })
        }
        "add_claim" => {
            let f = Fields::exact(body, "add_claim", &["service", "account"], &["proof"])?;
            let service = f.str("service")?;
            if service.is_empty()
                || service.len() > 32
                || !service.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"_.-".contains(&b))
            {
                return Err(invalid("claim service must be 1-32 of [a-z0-9_.-]".into()));
            }
            Op::AddClaim(Claim {
                service: service.into(),
                account: bounded(f.str("account")?, 256, "account")?,
                proof: f.opt_str("proof")?.map(|p| bounded(p, 512, "proof")).transpose()?,
            })
        }
        other if ignore => Op::Unsupported { op: other.into(), body: body.clone() },
        other => return Err(invalid(format!("unknown op {other:?}"))),
    })
}

/// A live endpoint with the id of the link that added it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EndpointEntry {
    /// The `add_endpoint` link id.
    pub link_id: String,
    /// The endpoint.
    #[serde(flatten)]
    pub endpoint: Endpoint,
}

/// A claim with the id of the link that made it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ClaimEntry {
    /// The `add_claim` link id.
    pub link_id: String,
    /// The claim.
    #[serde(flatten)]
    pub claim: Claim,
}

/// The state a chain describes, derived by replaying its links.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChainState {
    /// Chain owner.
    pub key: PublicKey,
    /// Last seqno (0 for an empty chain).
    pub seqno: u64,
    /// Last link id (`None` for an empty chain).
    pub tail: Option<String>,
    /// Live endpoints in the order they were added.
    pub endpoints: Vec<EndpointEntry>,
    /// The latest shared-files pointer.
    pub shared_files: Option<SharedFiles>,
    /// All claims in order.
    pub claims: Vec<ClaimEntry>,
}

impl ChainState {
    /// The state of an empty chain.
    pub fn empty(key: PublicKey) -> Self {
        Self { key, seqno: 0, tail: None, endpoints: vec![], shared_files: None, claims: vec![] }
    }

    /// Checks that `link` extends this chain and applies it.
    pub fn apply(&mut self, link: &Link) -> Result<(), KezError> {
        if link.chain != self.key {
            return Err(err(ErrorCode::InvalidLink, "link belongs to another chain"));
        }
        if link.seqno != self.seqno + 1 {
            return Err(err(
                ErrorCode::SeqnoConflict,
                format!("expected seqno {}, got {}", self.seqno + 1, link.seqno),
            ));
        }
        if link.prev != self.tail {
            return Err(err(ErrorCode::PrevMismatch, "prev is not the id of the previous link"));
        }
        if link.seqno > MAX_CHAIN_LINKS {
            return Err(err(ErrorCode::ChainTooLong, format!("chains hold at most {MAX_CHAIN_LINKS} links")));
        }
        match &link.op {
            Op::AddEndpoint(e) => {
                self.endpoints.push(EndpointEntry { link_id: link.link_id.clone(), endpoint: e.clone() })
            }
            Op::RemoveEndpoint { target } => {
                let before = self.endpoints.len();
                self.endpoints.retain(|e| &e.link_id != target);
                if self.endpoints.len() == before {
                    return Err(err(ErrorCode::InvalidLink, "remove_endpoint targets no live endpoint"));
                }
            }
            Op::SetSharedFiles(s) => {
                if let Some(old) = &self.shared_files
                    && s.manifest_seq <= old.manifest_seq
                {
                    return Err(err(ErrorCode::InvalidLink, "manifest_seq must increase"));
                }
                self.shared_files = Some(s.clone());
            }
            Op::AddClaim(c) => self.claims.push(ClaimEntry { link_id: link.link_id.clone(), claim: c.clone() }),
            Op::Unsupported { .. } => {}
        }
        self.seqno = link.seqno;
        self.tail = Some(link.link_id.clone());
        Ok(())
    }

    /// The NATS inbox endpoint, if advertised.
    pub fn nats_endpoint(&self) -> Option<(&str, &str)> {
        self.endpoints.iter().find_map(|e| match &e.endpoint {
            Endpoint::Nats { subject, url } => Some((subject.as_str(), url.as_str())),
            Endpoint::Iroh { .. } => None,
        })
    }

    /// The first Iroh endpoint id, if any is advertised.
    pub fn iroh_node(&self) -> Option<&str> {
        self.iroh_endpoints().next().map(|e| e.node_id)
    }

    /// Every live Iroh endpoint, in the order they were added. All of them are
    /// admitted by providers (PROTOCOL.md §7.5).
    pub fn iroh_endpoints(&self) -> impl Iterator<Item = IrohEndpointRef<'_>> {
        self.endpoints.iter().filter_map(|e| match &e.endpoint {
            Endpoint::Iroh { node_id, device } => {
                Some(IrohEndpointRef { link_id: &e.link_id, node_id, device: device.as_ref() })
            }
            Endpoint::Nats { .. } => None,
        })
    }

    /// The endpoints fetchers may dial: `serve` endpoints and wave-1 ones, newest
    /// device endpoint first (the device most likely still running) and wave-1
    /// endpoints last (they predate per-device keys).
    pub fn serving_endpoints(&self) -> Vec<IrohEndpointRef<'_>> {
        let mut out: Vec<IrohEndpointRef<'_>> = self.iroh_endpoints().filter(IrohEndpointRef::serves).collect();
        out.reverse();
        out.sort_by_key(|e| e.device.is_none());
        out
    }
}

/// A live Iroh endpoint of a chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IrohEndpointRef<'a> {
    /// The `add_endpoint` link id.
    pub link_id: &'a str,
    /// Endpoint id hex.
    pub node_id: &'a str,
    /// Device and role; `None` for a wave-1 link.
    pub device: Option<&'a IrohDevice>,
}

impl IrohEndpointRef<'_> {
    /// Whether fetchers may dial it: a `serve` endpoint, or a wave-1 one.
    pub fn serves(&self) -> bool {
        self.device.is_none_or(|d| d.role == IrohRole::Serve)
    }

    /// The endpoint id as a key (`None` only for a chain that did not come
    /// through [`parse_link`], which checks every node id).
    pub fn key(&self) -> Option<PublicKey> {
        PublicKey::from_hex(self.node_id).ok()
    }
}

/// Verifies a whole chain of `key` from link 1 and returns its state.
pub fn verify_chain(key: &PublicKey, links: &[Value]) -> Result<(ChainState, Vec<Link>), KezError> {
    if links.len() as u64 > MAX_CHAIN_LINKS {
        return Err(err(ErrorCode::ChainTooLong, format!("chains hold at most {MAX_CHAIN_LINKS} links")));
    }
    let mut state = ChainState::empty(*key);
    let mut parsed = Vec::with_capacity(links.len());
    for v in links {
        let link = parse_link(&canonicalize(v)?)?;
        state.apply(&link)?;
        parsed.push(link);
    }
    Ok((state, parsed))
}

/// What a client knows about a chain from an earlier verification.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct PinnedTail {
    /// Seqno seen.
    pub seqno: u64,
    /// Link id at that seqno.
    pub link_id: String,
}

/// Checks a freshly verified chain against a pinned tail: a shorter chain is a
/// rollback, a different link at the pinned seqno is a fork.
pub fn check_extends(links: &[Link], pinned: &PinnedTail) -> Result<(), KezError> {
    if pinned.seqno == 0 {
        return Ok(());
    }
    match links.get((pinned.seqno - 1) as usize) {
        None => Err(err(
            ErrorCode::InvalidLink,
            format!("rollback: the server's chain has {} links, {} were seen before", links.len(), pinned.seqno),
        )),
        Some(l) if l.link_id != pinned.link_id => {
            Err(err(ErrorCode::InvalidLink, format!("fork: link {} differs from the one seen before", pinned.seqno)))
        }
        Some(_) => Ok(()),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn chain(sk: &SigningKey, ops: &[Op]) -> Vec<Value> {
        let mut prev: Option<String> = None;
        let mut out = vec![];
        for (i, op) in ops.iter().enumerate() {
            let bytes = build_link(sk, i as u64 + 1, prev.as_deref(), 1_800_000_000_000 + i as u64, op).unwrap();
            let link = parse_link(&bytes).unwrap();
            prev = Some(link.link_id.clone());
            out.push(link.to_value());
        }
        out
    }

    #[test]
    fn builds_verifies_and_derives_state() {
        let sk = SigningKey::from_bytes(&[5u8; 32]);
        let pk = PublicKey::of(&sk);
        let links = chain(
            &sk,
            &[
                Op::AddEndpoint(Endpoint::Nats {
                    subject: legacy_inbox_subject(&pk),
                    url: "nats://127.0.0.1:4222".into(),
                }),
                Op::AddEndpoint(Endpoint::iroh_wave1(&pk)),
                Op::AddClaim(Claim { service: "kez".into(), account: "alice@kez.lat".into(), proof: None }),
            ],
        );
        let (state, parsed) = verify_chain(&pk, &links).unwrap();
        assert_eq!(state.seqno, 3);
        assert_eq!(state.endpoints.len(), 2);
        assert_eq!(state.iroh_node(), Some(pk.hex().as_str()));
        check_extends(&parsed, &PinnedTail { seqno: 2, link_id: parsed[1].link_id.clone() }).unwrap();
        assert!(check_extends(&parsed[..1], &PinnedTail { seqno: 2, link_id: parsed[1].link_id.clone() }).is_err());
        // Reordering breaks the chain.
        let swapped = vec![links[1].clone(), links[0].clone()];
        assert!(verify_chain(&pk, &swapped).is_err());
        // Another key's chain is rejected.
        let other = PublicKey::of(&SigningKey::from_bytes(&[6u8; 32]));
        assert!(verify_chain(&other, &links).is_err());
    }

    #[test]
    fn device_endpoints_derive_publish_and_order() {
        let sk = SigningKey::from_bytes(&[5u8; 32]);
        let pk = PublicKey::of(&sk);
        let (d1, d2): (DeviceId, DeviceId) = ("0123456789abcdef".parse().unwrap(), "fedcba9876543210".parse().unwrap());
        let key = |d: &DeviceId, r| endpoint_key(&sk.to_bytes(), d, r);
        // Four distinct endpoint ids, none of them the identity key, all stable.
        let ids = [
            key(&d1, IrohRole::Serve),
            key(&d1, IrohRole::Fetch),
            key(&d2, IrohRole::Serve),
            key(&d2, IrohRole::Fetch),
        ];
        for (i, a) in ids.iter().enumerate() {
            assert_ne!(*a, pk);
            for b in &ids[i + 1..] {
                assert_ne!(a, b);
            }
        }
        assert_eq!(key(&d1, IrohRole::Serve), ids[0]);

        let links = chain(
            &sk,
            &[
                Op::AddEndpoint(Endpoint::iroh_wave1(&pk)),
                Op::AddEndpoint(Endpoint::iroh_device(&ids[0], d1.clone(), IrohRole::Serve)),
                Op::AddEndpoint(Endpoint::iroh_device(&ids[1], d1.clone(), IrohRole::Fetch)),
                Op::AddEndpoint(Endpoint::iroh_device(&ids[2], d2.clone(), IrohRole::Serve)),
            ],
        );
        let body = links[1]["body"].clone();
        assert_eq!(
            body,
            json!({"kind": "iroh", "node_id": ids[0].hex(), "device": "0123456789abcdef", "role": "serve"})
        );
        let (state, _) = verify_chain(&pk, &links).unwrap();
        assert_eq!(state.iroh_endpoints().count(), 4);
        let serving: Vec<String> = state.serving_endpoints().iter().map(|e| e.node_id.to_string()).collect();
        assert_eq!(serving, [ids[2].hex(), ids[0].hex(), pk.hex()], "newest device first, wave-1 last, no fetch");
        let st = serde_json::to_value(&state).unwrap();
        assert_eq!(st["endpoints"][1]["device"], "0123456789abcdef");
        assert_eq!(st["endpoints"][2]["role"], "fetch");
        assert!(st["endpoints"][0].get("device").is_none(), "wave-1 has no device key: {st}");
    }

    #[test]
    fn iroh_bodies_are_checked() {
        let sk = SigningKey::from_bytes(&[5u8; 32]);
        let pk = PublicKey::of(&sk);
        let one = |body: Value| {
            let unsigned = json!({"v": 1, "chain": pk.to_string(), "signer": pk.to_string(), "seqno": 1, "prev": null,
                "ctime": 1, "op": "add_endpoint", "ignore_if_unsupported": false, "body": body});
            let bytes = sign_canonical(&sk, Purpose::SigchainLink, unsigned).unwrap();
            parse_link(&bytes).map(|_| ()).map_err(|e| e.code)
        };
        let other = PublicKey::of(&SigningKey::from_bytes(&[6u8; 32])).hex();
        assert_eq!(one(json!({"kind": "iroh", "node_id": other})), Ok(()), "any valid key, wave-1 shape");
        let dev = |d: &str, r: &str| json!({"kind": "iroh", "node_id": other, "device": d, "role": r});
        assert_eq!(one(dev("0123456789abcdef", "fetch")), Ok(()));
        assert_eq!(one(dev("0123456789ABCDEF", "serve")), Err(ErrorCode::InvalidLink));
        assert_eq!(one(dev("0123456789abcdef", "relay")), Err(ErrorCode::InvalidLink));
        assert_eq!(
            one(json!({"kind": "iroh", "node_id": other, "device": "0123456789abcdef"})),
            Err(ErrorCode::InvalidRequest)
        );
        assert_eq!(one(json!({"kind": "iroh", "node_id": other, "role": "serve"})), Err(ErrorCode::InvalidRequest));
        assert_eq!(
            one(json!({"kind": "iroh", "node_id": format!("01{}", "00".repeat(31))})),
            Err(ErrorCode::InvalidLink)
        );
        assert_eq!(one(json!({"kind": "iroh", "node_id": other.to_uppercase()})), Err(ErrorCode::InvalidLink));
    }
}
