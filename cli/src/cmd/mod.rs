//! One module per group of subcommands. A new group (e.g. `files` for
//! share/files/fetch/browse/unshare/serve) adds a module here and a variant to
//! `Command` in main.rs.

pub mod account;
pub mod chat;
pub mod contacts;
pub mod devices;
pub mod files;
pub mod groups;
