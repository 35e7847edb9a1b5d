//! End-to-end tests of the `kez-chat` binary against the real stack
//! (`kez-server up`: nats-server with JetStream and the auth callout, the
//! services and the gateway) on free loopback ports in temp folders.
//!
//! - `chat`: two users register, add each other and chat both ways; the
//!   recipient was offline and gets everything in order, exactly once; a crash
//!   between storing and acknowledging shows nothing twice.
//! - `restore`: the 24 words on a fresh data folder give the same identity,
//!   which then receives what was sent meanwhile.
//! - `devices`: three devices of one user get every message once, in order, and
//!   what the others sent; removing one stops it; a wave-1 data folder upgrades;
//!   blocking drops a sender's mail on every device.
//! - `rejects`: tampered, wrongly signed, misaddressed and replayed envelopes
//!   are rejected and reported, never shown; unknown senders are labelled.
//! - `key_change`: a different key for a known handle blocks sending until re-trusted.
//! - `privacy`: the broker's stored bytes contain neither text nor sender key.
//! - `groups`: four users in a group: messages, removal, addition, concurrent admin
//!   changes converging on one state hash, a forged change rejected.
//! - `errors`: unreachable server, taken/reserved handle, unknown handle, failed backup check.
//! - `api_properties`: the `/v1` API under schemathesis, driven by its own `/v1/openapi.json`.
//! - `secrets_in_logs`: a register/chat/files session logged at debug level leaks no seed,
//!   mnemonic word run, passphrase or nkey seed.
#![allow(clippy::unwrap_used)]

mod api_properties;
mod chat;
mod devices;
mod errors;
mod forge;
mod groups;
mod harness;
mod key_change;
mod privacy;
mod rejects;
mod restore;
mod secrets_in_logs;
