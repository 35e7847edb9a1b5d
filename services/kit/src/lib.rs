//! Shared building blocks of the kez-chat services.
//!
//! - [`natsconf`]: renders the nats-server configuration (pure, no IO).
//! - [`secrets`]: creates and reloads the stack's nkeys and passwords in a data folder.
//! - [`svc`]: serving NATS micro-service endpoints with stable error codes, and calling them.
//! - [`kv`]: idempotent KV bucket creation.
//! - [`settings`]: the deployment settings every service shares.
//! - [`signal`]: waiting for SIGINT/SIGTERM.
//! - [`stack`]: finding nats-server and the config spec of a stack from its secrets.

pub mod kv;
pub mod natsconf;
pub mod secrets;
pub mod settings;
pub mod signal;
pub mod stack;
pub mod svc;
