//! The kez-chat wire contract: subjects, KV records, request and response
//! types, stable error codes, handle rules, canonical JSON and the verification
//! of every signed object. No IO lives here; `PROTOCOL.md` at the repository
//! root is the normative text this crate implements.
#![deny(missing_docs)]

pub mod api;
pub mod encoding;
pub mod envelope;
pub mod error;
pub mod files;
pub mod group;
pub mod handle;
pub mod jcs;
pub mod keys;
pub mod manifest;
pub mod nonce;
pub mod register;
pub mod safety;
pub mod sig;
pub mod sigchain;
pub mod subjects;

pub use error::{ErrorCode, KezError};
pub use handle::Handle;
pub use keys::PublicKey;

/// Allowed clock skew for signed requests the server checks against its clock
/// (registration `ts`, sigchain `ctime`), in milliseconds.
pub const TIME_WINDOW_MS: u64 = 5 * 60 * 1000;

/// The current time in milliseconds since the Unix epoch.
///
/// The only clock read in this crate; verification functions take `now` as an
/// argument so vectors and tests stay deterministic.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

/// Fills a fixed-size array from the operating system's CSPRNG.
///
/// # Panics
/// Only if the OS has no randomness source at all, in which case no key or
/// nonce could be made safely and stopping is the right outcome.
pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut out = [0u8; N];
    getrandom::fill(&mut out).expect("the operating system's random source failed");
    out
}
