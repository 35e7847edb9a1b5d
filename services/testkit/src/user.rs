//! End users in tests: one Ed25519 seed used as identity key and NATS nkey, connecting into
//! `USERS` through the auth callout exactly as a kez client does, plus the raw pull of a device
//! consumer (PROTOCOL.md §9.4). Shared by the auth-callout and inbox tests (and anything else
//! that needs a user on the wire); the services themselves are started by each test crate.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, ensure};
use async_nats::{Auth, AuthError, ConnectOptions, Event};
use ed25519_dalek::SigningKey;
use futures::StreamExt as _;
use kez_service_kit::svc;
use kv_schemas::api::{RegisterReply, SignedRegistration};
use kv_schemas::subjects::{DeviceId, consumer_next_subject, device_connection_name};
use kv_schemas::{Handle, PublicKey};
use nkeys::{KeyPair, KeyPairType};

/// Connect timeout for end users: a refused login must fail fast, not hang.
pub const USER_CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// An end user.
#[derive(Clone)]
pub struct User {
    /// The identity seed.
    pub signing: SigningKey,
    /// The identity key.
    pub key: PublicKey,
}

impl Default for User {
    fn default() -> Self {
        Self::new()
    }
}

impl User {
    /// A fresh random user.
    pub fn new() -> Self {
        let signing = SigningKey::from_bytes(&kv_schemas::random_bytes::<32>());
        Self { key: PublicKey::of(&signing), signing }
    }

    /// The key's hex.
    pub fn hex(&self) -> String {
        self.key.hex()
    }

    /// `U…` of the same 32 bytes (PROTOCOL.md §1).
    pub fn nkey(&self) -> Result<String> {
        Ok(KeyPair::new_from_raw(KeyPairType::User, self.signing.to_bytes())?.public_key())
    }

    /// The handle tests give this user: `u<first 8 hex>@<domain>`.
    pub fn handle(&self, domain: &str) -> Result<Handle> {
        Ok(Handle::new(&format!("u{}", &self.hex()[..8]), domain)?)
    }

    /// Registers [`handle`](Self::handle) with the registry service, as `client` (an `APP` user
    /// such as ops), with a signed registration request (PROTOCOL.md §4).
    pub async fn register(&self, client: &async_nats::Client, domain: &str) -> Result<RegisterReply> {
        let request = kv_schemas::register::build(
            &self.signing,
            &self.handle(domain)?,
            kv_schemas::now_ms(),
            kv_schemas::random_bytes(),
        )?;
        let reply = svc::call(client, &SignedRegistration(request), Duration::from_secs(5)).await?;
        ensure!(reply.key == self.key, "the registry registered {} for {}", reply.key, self.key);
        Ok(reply)
    }

    /// Connect options as a kez client builds them: refuse non-nonces, sign the ASCII nonce,
    /// use the own reply prefix; events land in `events`.
    pub fn options(&self, events: &Events) -> Result<ConnectOptions> {
        let signing = self.signing.clone();
        let nkey = self.nkey()?;
        Ok(self.options_with(events, move |nonce: Vec<u8>| {
            let nonce = String::from_utf8(nonce).map_err(AuthError::new)?;
            kv_schemas::nonce::check_nats_nonce(&nonce).map_err(AuthError::new)?;
            let mut auth = Auth::new();
            auth.nkey = Some(nkey.clone());
            auth.signature = Some(kv_schemas::keys::sign_raw(&signing, nonce.as_bytes()).to_vec());
            Ok(auth)
        }))
    }

    /// Connect options with a custom auth callback (forged-signature tests).
    pub fn options_with<F>(&self, events: &Events, sign: F) -> ConnectOptions
    where
        F: Fn(Vec<u8>) -> Result<Auth, AuthError> + Send + Sync + 'static,
    {
        let sign = Arc::new(sign);
        let sink = events.clone();
        ConnectOptions::with_auth_callback(move |nonce| {
            let sign = sign.clone();
            async move { sign(nonce) }
        })
        .custom_inbox_prefix(format!("_INBOX.{}", self.hex()))
        .connection_timeout(USER_CONNECT_TIMEOUT)
        .request_timeout(Some(Duration::from_secs(1)))
        .event_callback(move |event| {
            let sink = sink.clone();
            async move { sink.push(event) }
        })
    }

    /// Connects without a device (send and manage only).
    pub async fn connect(&self, url: &str) -> Result<(async_nats::Client, Events)> {
        self.connect_named(url, None).await
    }

    /// Connects as one device (connection name `kez-device:<id>`, PROTOCOL.md §9.5).
    pub async fn connect_device(&self, url: &str, device: &DeviceId) -> Result<(async_nats::Client, Events)> {
        self.connect_named(url, Some(device_connection_name(device))).await
    }

    async fn connect_named(&self, url: &str, name: Option<String>) -> Result<(async_nats::Client, Events)> {
        let events = Events::default();
        let mut options = self.options(&events)?;
        if let Some(name) = name {
            options = options.name(name);
        }
        let client =
            options.connect(url).await.with_context(|| format!("user {} connecting to {url}", &self.hex()[..8]))?;
        Ok((client, events))
    }
}

/// Everything a client reported through its event callback.
#[derive(Clone, Default)]
pub struct Events(Arc<Mutex<Vec<String>>>);

impl Events {
    fn push(&self, e: Event) {
        if let Ok(mut all) = self.0.lock() {
            all.push(match e {
                Event::ServerError(err) => format!("server error: {err}"),
                other => other.to_string(),
            });
        }
    }

    /// All events so far.
    pub fn all(&self) -> Vec<String> {
        self.0.lock().map(|a| a.clone()).unwrap_or_default()
    }

    /// Waits (3 s) for the server's asynchronous
    /// `-ERR 'Permissions Violation for <kind> to "<subject>"'`.
    pub async fn expect_violation(&self, kind: Violation, subject: &str) -> Result<()> {
        let needle = format!("Permissions Violation for {} to \"{subject}\"", kind.word());
        let deadline = Instant::now() + Duration::from_secs(3);
        while !self.all().iter().any(|e| e.contains(&needle)) {
            ensure!(Instant::now() < deadline, "no {needle:?} event; events: {:#?}", self.all());
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        Ok(())
    }

    /// The permission violations reported so far.
    pub fn violations(&self) -> Vec<String> {
        self.all().into_iter().filter(|e| e.contains("Permissions Violation")).collect()
    }
}

/// What a permission violation refused.
#[derive(Clone, Copy, Debug)]
pub enum Violation {
    /// A publish.
    Publish,
    /// A subscription.
    Subscription,
}

impl Violation {
    fn word(self) -> &'static str {
        match self {
            Violation::Publish => "Publish",
            Violation::Subscription => "Subscription",
        }
    }
}

/// What one raw pull got.
#[derive(Debug, Default)]
pub struct Pull {
    /// Stored messages, in delivery order.
    pub messages: Vec<async_nats::Message>,
    /// The status that ended the pull (404 no messages, 408 expired, 409 …), if one did.
    pub status: Option<u16>,
}

/// One raw pull of up to `batch` messages from `consumer` (PROTOCOL.md §9.4), the replies on
/// `reply`: the stored messages that arrive within `wait`, ending early at a status message.
/// Acks each message (`+ACK` to its reply subject) when `ack`, as a client does once it stored it.
pub async fn pull(
    conn: &async_nats::Client,
    consumer: &str,
    reply: &str,
    batch: usize,
    wait: Duration,
    ack: bool,
) -> Result<Pull> {
    let mut sub = conn.subscribe(reply.to_owned()).await?;
    let expires = (wait.as_nanos() as u64).saturating_sub(100_000_000);
    let body = format!(r#"{{"batch":{batch},"expires":{expires}}}"#);
    conn.publish_with_reply(consumer_next_subject(consumer), reply.to_owned(), body.into()).await?;
    conn.flush().await?;
    let mut pulled = Pull::default();
    let deadline = tokio::time::Instant::now() + wait;
    while pulled.messages.len() < batch
        && let Ok(Some(m)) = tokio::time::timeout_at(deadline, sub.next()).await
    {
        if let Some(status) = m.status {
            pulled.status = Some(status.as_u16());
            break;
        }
        if ack && let Some(r) = m.reply.clone() {
            conn.publish(r, "+ACK".into()).await?;
        }
        pulled.messages.push(m);
    }
    conn.flush().await?;
    Ok(pulled)
}
