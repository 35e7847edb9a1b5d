//! Shared building blocks of the kez-chat services.
//!
//! - [`natsconf`]: renders the nats-server configuration (pure, no IO).
//! - [`secrets`]: creates and reloads the stack's nkeys and passwords in a data folder.

pub mod natsconf;
pub mod secrets;
