//! The signed shared-files manifest (PROTOCOL.md §7.4).

use ed25519_dalek::SigningKey;
use serde_json::{Map, json};

use crate::encoding::hex_encode;
use crate::error::{ErrorCode, KezError, err};
use crate::files::{Entry, parse_entry};
use crate::jcs::{Fields, parse_canonical};
use crate::keys::PublicKey;
use crate::sig::{Purpose, sign_canonical, verify_object};
use crate::sigchain::SharedFiles;

/// Largest accepted manifest.
pub const MAX_MANIFEST_BYTES: usize = 256 * 1024;
/// Most entries per manifest.
pub const MAX_ENTRIES: usize = 1024;

/// A verified manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    /// Owner key.
    pub owner: PublicKey,
    /// Sequence, repeated by the `set_shared_files` link that commits it.
    pub seq: u64,
    /// Owner's time, ms.
    pub ctime: u64,
    /// The entries.
    pub entries: Vec<Entry>,
    /// BLAKE3 hex of the exact bytes.
    pub hash: String,
    /// The exact bytes.
    pub bytes: Vec<u8>,
}

/// The BLAKE3 hex hash of manifest bytes.
pub fn manifest_hash(bytes: &[u8]) -> String {
    hex_encode(blake3::hash(bytes).as_bytes())
}

/// Builds and signs a manifest; returns its canonical bytes.
pub fn build(owner: &SigningKey, seq: u64, ctime: u64, entries: &[Entry]) -> Result<Vec<u8>, KezError> {
    if entries.len() > MAX_ENTRIES {
        return Err(err(ErrorCode::InvalidManifest, format!("a manifest holds at most {MAX_ENTRIES} entries")));
    }
    let unsigned = json!({
        "v": 1,
        "owner": PublicKey::of(owner).to_string(),
        "seq": seq,
        "ctime": ctime,
        "entries": entries.iter().map(Entry::to_value).collect::<Vec<_>>(),
    });
    let bytes = sign_canonical(owner, Purpose::Manifest, unsigned)?;
    if bytes.len() > MAX_MANIFEST_BYTES {
        return Err(err(ErrorCode::TooLarge, "manifest is over 256 KiB"));
    }
    Ok(bytes)
}

/// Parses and verifies a manifest's shape and owner signature.
pub fn parse(bytes: &[u8]) -> Result<Manifest, KezError> {
    if bytes.len() > MAX_MANIFEST_BYTES {
        return Err(err(ErrorCode::TooLarge, "manifest is over 256 KiB"));
    }
    let value = parse_canonical(bytes)?;
    let f = Fields::exact(&value, "manifest", &["type", "v", "owner", "seq", "ctime", "entries", "sig"], &[])?;
    let owner: PublicKey = f.str("owner")?.parse()?;
    let entries_v = f.array("entries")?;
    if entries_v.len() > MAX_ENTRIES {
        return Err(err(ErrorCode::InvalidManifest, format!("a manifest holds at most {MAX_ENTRIES} entries")));
    }
    let entries = entries_v.iter().map(parse_entry).collect::<Result<Vec<_>, _>>()?;
    let mut ids = std::collections::HashSet::new();
    if !entries.iter().all(|e| ids.insert(e.id.as_str())) {
        return Err(err(ErrorCode::InvalidManifest, "entry ids must be unique"));
    }
    let (seq, ctime) = (f.u64("seq")?, f.u64("ctime")?);
    verify_object(Purpose::Manifest, value.as_object().unwrap_or(&Map::new()), &owner)?;
    Ok(Manifest { owner, seq, ctime, entries, hash: manifest_hash(bytes), bytes: bytes.to_vec() })
}

/// Parses a manifest and checks it is the one the owner's sigchain points at.
pub fn verify_against(bytes: &[u8], owner: &PublicKey, pointer: &SharedFiles) -> Result<Manifest, KezError> {
    let hash = manifest_hash(bytes);
    if hash != pointer.manifest {
        return Err(err(ErrorCode::InvalidManifest, "manifest hash does not match the sigchain's set_shared_files"));
    }
    let m = parse(bytes)?;
    if &m.owner != owner {
        return Err(err(ErrorCode::InvalidManifest, "manifest owner is not the chain's key"));
    }
    if m.seq != pointer.manifest_seq {
        return Err(err(ErrorCode::InvalidManifest, "manifest seq does not match the sigchain's manifest_seq"));
    }
    Ok(m)
}
