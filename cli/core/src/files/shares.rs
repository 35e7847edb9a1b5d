//! The owner's local registry of shares (`<data>/files/shares.json`): every
//! entry it has published, the recipients of each, where the ciphertext lives,
//! and the last manifest seq. It is the source of the manifest's entries and
//! the provider's per-blob ACL; `share` writes it and a running provider
//! re-reads it when it changes, so sharing works while `serve` runs.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use kv_schemas::PublicKey;
use kv_schemas::files::{Entry, parse_entry};
use serde::{Deserialize, Serialize};

use super::{FilesError, Result};

/// One share.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ShareRecord {
    /// Entry id (b64url of 16 bytes).
    pub id: String,
    /// BLAKE3 hex of the ciphertext.
    pub blob: String,
    /// The ciphertext file (`out/<id>.kez`, relative to the files folder).
    pub blob_file: PathBuf,
    /// Plaintext file name.
    pub name: String,
    /// Plaintext size.
    pub size: u64,
    /// Recipient keys, hex (the owner is admitted implicitly).
    pub recipients: Vec<String>,
    /// The entry exactly as published (JSON of PROTOCOL.md §7.3).
    pub entry: serde_json::Value,
    /// When shared, ms.
    pub ctime: u64,
}

impl ShareRecord {
    /// The parsed entry.
    pub fn entry(&self) -> Result<Entry> {
        Ok(parse_entry(&self.entry)?)
    }
}

/// The registry file.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Shares {
    /// Shares in the order they were made.
    pub shares: Vec<ShareRecord>,
    /// The seq of the last manifest this client published (0 = none).
    pub manifest_seq: u64,
}

impl Shares {
    /// `<files dir>/shares.json`.
    pub fn path(files_dir: &Path) -> PathBuf {
        files_dir.join("shares.json")
    }

    /// Loads the registry (empty when missing).
    pub fn load(files_dir: &Path) -> Result<Self> {
        match std::fs::read(Self::path(files_dir)) {
            Ok(b) => serde_json::from_slice(&b).map_err(|e| FilesError::other("shares.json is unreadable", e)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Self::default()),
            Err(e) => Err(e.into()),
        }
    }

    /// Saves atomically.
    pub fn save(&self, files_dir: &Path) -> Result<()> {
        let bytes = serde_json::to_vec_pretty(self).map_err(|e| FilesError::other("encoding shares.json", e))?;
        Ok(kez_private_file::write(&Self::path(files_dir), &bytes)?)
    }

    /// The entries for the manifest, in order.
    pub fn entries(&self) -> Result<Vec<Entry>> {
        self.shares.iter().map(ShareRecord::entry).collect()
    }

    /// A share by entry id.
    pub fn get(&self, id: &str) -> Option<&ShareRecord> {
        self.shares.iter().find(|s| s.id == id)
    }

    /// The ACL: blob hash bytes → admitted endpoint ids (recipients + owner).
    pub fn acl(&self, owner: &PublicKey) -> HashMap<[u8; 32], HashSet<[u8; 32]>> {
        let mut out: HashMap<[u8; 32], HashSet<[u8; 32]>> = HashMap::new();
        for s in &self.shares {
            let Ok(h) = hex_32(&s.blob) else { continue };
            let set = out.entry(h).or_default();
            set.insert(*owner.as_bytes());
            for r in &s.recipients {
                if let Ok(k) = PublicKey::from_hex(r) {
                    set.insert(*k.as_bytes());
                }
            }
        }
        out
    }
}

pub(crate) fn hex_32(s: &str) -> Result<[u8; 32]> {
    let v = hex::decode(s).map_err(|e| FilesError::other("hash", e))?;
    v.try_into().map_err(|_| FilesError::Other("hash is not 32 bytes".into()))
}
