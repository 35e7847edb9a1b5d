//! Integration tests of the gateway: the router (`oneshot`) against a real
//! nats-server from kez-testkit, with stand-in or real services.
#![allow(clippy::unwrap_used)]

/// Harness: nats-server, router, stand-in services, request helpers.
mod common;
/// End to end with the real services.
mod e2e;
/// Errors the gateway produces itself and the service-error mapping.
mod errors;
/// `openapi.json`'s schemas against the Rust types.
mod openapi;
/// Forwarding and reply mapping per route; OpenAPI ↔ router.
mod routes;
/// A real socket on port 0 and graceful shutdown.
mod serve;
/// The embedded web app, SPA fallback and the placeholder page.
mod web;
