//! Files over Iroh (PROTOCOL.md §7, design §5.4–5.5, §6.5).
//!
//! The bytes of a shared file go peer to peer, encrypted, and only when the
//! recipient asks; the server holds nothing but the signed manifest.
//!
//! * [`share`]: encrypts a file with a fresh key (STREAM, flat memory) into a
//!   ciphertext file under the data folder, builds the entry (`§7.3`) with a
//!   wrap per recipient plus one for the owner, and records the share in the
//!   local [`shares::Shares`] registry (which is also the provider's ACL).
//! * [`endpoints`]: each device's two endpoint keys (`serve`, `fetch`), derived
//!   from the identity seed and the device id (PROTOCOL.md §7.5), published on
//!   the own sigchain before use and withdrawn when the device is removed.
//! * [`node::Provider`]: the serving Iroh endpoint (the device's `serve` key);
//!   it imports the ciphertext files into a persistent iroh-blobs store and
//!   serves a blob only to endpoints that the sigchains of the share's users
//!   (recipients and the owner) list; everyone else is refused.
//! * [`fetch`]: downloads a blob on demand (with the device's `fetch` key) from
//!   a serving endpoint the owner's sigchain lists (bounded connect, progress,
//!   resume from a per-blob partial store), checks the BLAKE3 hash, decrypts,
//!   checks the plaintext hash and size, and renames a temp file into place.
//! * [`manifest_store`]: publishes the shared-files manifest (PUT to the
//!   manifest index, then a `set_shared_files` link) and browses another
//!   user's manifest, showing only entries whose wraps open for the reader.
//!
//! Layout under `<data>/files/`: `shares.json` (registry + ACL), `out/<id>.kez`
//! (ciphertext of each share), `store/` (the provider's iroh-blobs store),
//! `downloads/<blob hash>/` (partial downloads, removed when complete),
//! `endpoint.json` (where the running provider listens).

pub mod config;
pub mod endpoints;
pub mod fetch;
pub mod manifest_store;
pub mod node;
pub mod share;
pub mod shares;

use kv_schemas::KezError;

pub use config::NodeConfig;
pub use endpoints::{Chains, DeviceEndpoints, Ensured, PinnedChains, ensure_device_endpoints, remove_device_endpoints};
pub use fetch::{FetchEvent, FetchRequest, Fetched, Fetcher, Source, fetch};
pub use manifest_store::{Browsed, Directory, HttpDirectory, Published, VisibleEntry, browse, publish_manifest};
pub use node::{Provider, ServeEvent};
pub use share::{ShareOutcome, share_file, unshare};
pub use shares::{ShareRecord, Shares};

/// The ALPN kez-chat serves blobs on. The protocol spoken on it is iroh-blobs
/// 0.104's (`/iroh-bytes/4`); the `/1` is kez-chat's version and changes with
/// any change of that wire format (the crate is pinned exactly for this).
pub const FILES_ALPN: &[u8] = b"kez-chat/files/1";

/// What a file operation can fail with. The `Display` texts are meant for users.
#[derive(Debug, thiserror::Error)]
pub enum FilesError {
    /// The sender's endpoint did not answer within the connect timeout.
    #[error("{peer} is offline (no answer from their device within {secs} s)")]
    Offline {
        /// Who (handle or key) was dialled.
        peer: String,
        /// The timeout that elapsed, in seconds.
        secs: u64,
    },
    /// An offer names an endpoint that is not a live serving endpoint on the
    /// sender's sigchain; it is not dialled.
    #[error(
        "refusing to dial {node_id}: it is not a serving endpoint on {peer}'s sigchain (a forged or outdated offer)"
    )]
    NotAnEndpoint {
        /// Who sent the offer.
        peer: String,
        /// The endpoint id it named (hex).
        node_id: String,
    },
    /// The owner's sigchain lists no endpoint that serves files.
    #[error("{peer} has no device that serves files (no serving endpoint on their sigchain)")]
    NoEndpoint {
        /// Whose chain.
        peer: String,
    },
    /// The sender's endpoint answered but refused this reader.
    #[error("{peer}'s device refused the download: the file is not shared with this key")]
    Refused {
        /// Who refused.
        peer: String,
    },
    /// The bytes do not match what the signed entry promises.
    #[error("rejected: {0}")]
    Tampered(String),
    /// The fetch was stopped; the partial download is kept.
    #[error("download interrupted ({have} of {total} bytes kept); run the same fetch again to resume")]
    Interrupted {
        /// Ciphertext bytes kept.
        have: u64,
        /// Total ciphertext bytes.
        total: u64,
    },
    /// No wrap of the entry opens for this reader.
    #[error("this file is not shared with you")]
    NotForMe,
    /// A protocol object failed its checks.
    #[error(transparent)]
    Protocol(#[from] KezError),
    /// Local IO.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// Anything else (network, store), with context.
    #[error("{0}")]
    Other(String),
}

impl FilesError {
    /// An [`FilesError::Other`] with context.
    pub fn other(context: &str, e: impl std::fmt::Display) -> Self {
        FilesError::Other(format!("{context}: {e}"))
    }
}

/// Result of this module.
pub type Result<T, E = FilesError> = std::result::Result<T, E>;

/// The Iroh endpoint id of an endpoint key (the same 32 bytes).
pub fn endpoint_id(key: &kv_schemas::PublicKey) -> Result<iroh::EndpointId> {
    iroh::EndpointId::from_bytes(key.as_bytes()).map_err(|e| FilesError::other("endpoint id", e))
}

/// An endpoint id as a key.
pub fn key_of(id: &iroh::EndpointId) -> Result<kv_schemas::PublicKey> {
    Ok(kv_schemas::PublicKey::from_bytes(*id.as_bytes())?)
}

/// Most file systems allow 255 bytes per name.
const MAX_NAME_BYTES: usize = 255;

/// A hidden temporary name next to `name`: `.<name>.<tag>-<random hex>`, with
/// `name` cut (at a character boundary) so that the whole stays within 255 bytes
/// even for a 255-byte file name.
pub(crate) fn temp_name(name: &str, tag: &str) -> String {
    let suffix = format!(".{tag}-{}", hex::encode(kv_schemas::random_bytes::<4>()));
    let mut room = MAX_NAME_BYTES.saturating_sub(1 + suffix.len()).min(name.len());
    while !name.is_char_boundary(room) {
        room -= 1;
    }
    format!(".{}{suffix}", &name[..room])
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::temp_name;

    #[test]
    fn temp_names_fit_in_255_bytes() {
        for name in ["a".repeat(255), "é".repeat(127), format!("{}😀", "n".repeat(251)), "short.txt".into()] {
            for tag in ["kez-ct", "kez-part", "tmp"] {
                let t = temp_name(&name, tag);
                assert!(t.len() <= 255, "{} bytes for a {}-byte name", t.len(), name.len());
                assert!(t.starts_with('.') && t.contains(&format!(".{tag}-")), "{t}");
            }
        }
        assert!(temp_name("short.txt", "tmp").starts_with(".short.txt.tmp-"));
    }
}
