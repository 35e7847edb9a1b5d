//! kez-client: the client-side core shared by the `kez` CLI and its tests —
//! the identity (seed, mnemonic, key forms, NATS nonce signing) and the
//! passphrase-encrypted local key store. Protocol objects themselves live in
//! `kv-schemas`.
#![deny(missing_docs)]

pub mod identity;
pub mod keystore;

pub use identity::{Identity, MnemonicError};
pub use keystore::{KdfParams, Keystore, KeystoreError};

// Account, contacts and chat (the `kez-chat` CLI's core).
pub mod account;
pub mod api;
pub mod broker;
pub mod chat;
pub mod config;
pub mod contacts;
pub mod device;
pub mod error;
pub mod groups;
pub mod search;
pub mod store;

pub use error::ClientError;

/// Files over Iroh: share, serve, fetch, the shared-files manifest.
pub mod files;
