//! The NATS side of the client: logging in as the identity key (through the
//! server's auth callout), publishing envelopes to inboxes, and reading the own
//! inbox through the durable pull consumer (PROTOCOL.md §9, §9.1).
//!
//! Login: `ConnectOptions::with_auth_callback` signs the server nonce with
//! [`Identity::sign_nats_nonce`], which refuses anything that is not a plain
//! nonce (PROTOCOL.md §2.2); the nkey is the `U…` form of the same key; replies
//! use the custom inbox prefix `_INBOX.<hex>`, the only reply subjects the
//! user may subscribe to.
//!
//! The inbox consumer is created with the *filtered* create subject
//! `$JS.API.CONSUMER.CREATE.KEZ_INBOX.<hex>.kez.inbox.<hex>` (async-nats picks
//! it because both the name and `filter_subject` are set). The client never asks
//! for stream info: users are not allowed to (it would list every inbox).
//!
//! A request the server denies is never answered: it looks like a timeout,
//! and the server reports a permissions violation asynchronously. Both are
//! collected ([`Broker::violations`]) and turned into [`ClientError::Denied`].

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::jetstream::{self, consumer};
use async_nats::{AuthError, ConnectErrorKind, ConnectOptions, Event};
use futures::StreamExt as _;
use kv_schemas::PublicKey;
use kv_schemas::subjects::{INBOX_STREAM, inbox_consumer, inbox_subject, reply_prefix};

use crate::error::{ClientError, Result};
use crate::identity::Identity;

/// Connect timeout.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Timeout of JetStream API requests and publish acks.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// How long the broker waits for an ack before redelivering. Processing one
/// message takes milliseconds; a crashed client gets its unacked messages again
/// after this long.
pub const ACK_WAIT: Duration = Duration::from_secs(10);

/// What the server reported asynchronously (permissions violations, …).
#[derive(Clone, Default)]
struct Events(Arc<Mutex<Vec<String>>>);

impl Events {
    fn push(&self, e: String) {
        if let Ok(mut v) = self.0.lock() {
            v.push(e);
        }
    }

    fn violations(&self) -> Vec<String> {
        self.0
            .lock()
            .map(|v| v.iter().filter(|e| e.to_ascii_lowercase().contains("permission")).cloned().collect())
            .unwrap_or_default()
    }
}

/// A logged-in NATS connection of one user.
pub struct Broker {
    client: async_nats::Client,
    js: jetstream::Context,
    me: PublicKey,
    url: String,
    events: Events,
}

/// The connect options a kez client uses for `id` (exposed so tests and other
/// tools connect exactly like the CLI).
pub fn connect_options(id: Arc<Identity>) -> Result<ConnectOptions> {
    let nkey = id.nkey_public().map_err(|e| ClientError::Broker(e.to_string()))?;
    let hex = id.public_key().hex();
    Ok(ConnectOptions::with_auth_callback(move |nonce: Vec<u8>| {
        let id = id.clone();
        let nkey = nkey.clone();
        async move {
            let nonce = String::from_utf8(nonce).map_err(|_| AuthError::new("server nonce is not text"))?;
            // Refuses empty and non-nonce strings (PROTOCOL.md §2.2).
            let sig = id.sign_nats_nonce_raw(&nonce).map_err(|e| AuthError::new(e.message))?;
            let mut auth = async_nats::Auth::new();
            auth.nkey = Some(nkey);
            auth.signature = Some(sig.to_vec());
            Ok(auth)
        }
    })
    .custom_inbox_prefix(format!("_INBOX.{hex}"))
    .name(format!("kez-chat {}", env!("CARGO_PKG_VERSION")))
    .connection_timeout(CONNECT_TIMEOUT)
    .request_timeout(Some(REQUEST_TIMEOUT)))
}

impl Broker {
    /// Logs in to `url` as `id`.
    ///
    /// An authorization violation is reported as `auth_refused`; the caller
    /// tells "not registered yet" apart with a registry lookup.
    pub async fn connect(url: &str, id: Arc<Identity>) -> Result<Self> {
        let me = id.public_key();
        debug_assert_eq!(reply_prefix(&me), format!("_INBOX.{}", me.hex()));
        let events = Events::default();
        let sink = events.clone();
        let client = connect_options(id)?
            .event_callback(move |event| {
                let sink = sink.clone();
                async move {
                    if let Event::ServerError(e) = event {
                        sink.push(e.to_string());
                    }
                }
            })
            .connect(url)
            .await
            .map_err(|e| match e.kind() {
                ConnectErrorKind::AuthorizationViolation => {
                    ClientError::Denied("the broker refused the login (authorization violation)".into())
                }
                ConnectErrorKind::Authentication => ClientError::Broker(format!("login failed: {e}")),
                ConnectErrorKind::TimedOut => {
                    ClientError::BrokerUnreachable { url: url.into(), detail: "no answer in time".into() }
                }
                _ => ClientError::BrokerUnreachable { url: url.into(), detail: e.to_string() },
            })?;
        let js = jetstream::ContextBuilder::new().timeout(REQUEST_TIMEOUT).build(client.clone());
        Ok(Self { client, js, me, url: url.into(), events })
    }

    /// The broker URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Permission violations the server reported on this connection so far.
    pub fn violations(&self) -> Vec<String> {
        self.events.violations()
    }

    /// Turns a timeout into [`ClientError::Denied`] when the server reported a violation.
    async fn explain_timeout(&self, what: &str) -> ClientError {
        // The violation arrives asynchronously; give it a moment.
        let _ = tokio::time::timeout(Duration::from_millis(300), self.client.flush()).await;
        let v = self.violations();
        if v.is_empty() {
            ClientError::Timeout(format!("{what}: the broker at {} did not answer", self.url))
        } else {
            ClientError::Denied(format!("{what}: {}", v.join("; ")))
        }
    }

    /// Publishes an envelope to the inbox of `to` and waits for the stream's ack.
    /// Returns the stream sequence.
    pub async fn publish(&self, subject: &str, envelope: Vec<u8>) -> Result<u64> {
        use async_nats::jetstream::context::PublishErrorKind as K;
        let fut = self.js.publish(subject.to_string(), envelope.into()).await.map_err(|e| match e.kind() {
            K::MaxPayloadExceeded => ClientError::NotStored("the message is too large for the broker".into()),
            _ => ClientError::Broker(format!("publish: {e}")),
        })?;
        match fut.await {
            Ok(ack) => Ok(ack.sequence),
            Err(e) => Err(match e.kind() {
                K::TimedOut => self.explain_timeout("publishing the message").await,
                K::StreamNotFound => ClientError::NotStored("the broker has no inbox stream for this subject".into()),
                // e.g. "maximum messages per subject exceeded": the recipient's inbox is full.
                _ => ClientError::NotStored(e.to_string()),
            }),
        }
    }

    /// Binds the own inbox: creates (or updates) the durable pull consumer
    /// `<hex>` with filter `kez.inbox.<hex>` and explicit acks.
    pub async fn inbox(&self) -> Result<Inbox> {
        let name = inbox_consumer(&self.me);
        let config = consumer::pull::Config {
            name: Some(name.clone()),
            durable_name: Some(name),
            filter_subject: inbox_subject(&self.me),
            ack_policy: consumer::AckPolicy::Explicit,
            deliver_policy: consumer::DeliverPolicy::All,
            ack_wait: ACK_WAIT,
            description: Some("kez-chat inbox".into()),
            ..Default::default()
        };
        match self.js.create_consumer_on_stream(config, INBOX_STREAM).await {
            Ok(c) => Ok(Inbox { consumer: c }),
            Err(e) if e.kind() == jetstream::stream::ConsumerErrorKind::TimedOut => {
                Err(self.explain_timeout("opening the inbox").await)
            }
            Err(e) => Err(ClientError::Broker(format!("opening the inbox: {e}"))),
        }
    }

    /// Flushes and closes the connection.
    pub async fn close(self) {
        let _ = tokio::time::timeout(Duration::from_secs(2), self.client.drain()).await;
    }
}

/// The own inbox: a durable pull consumer with explicit acks.
pub struct Inbox {
    consumer: consumer::PullConsumer,
}

impl Inbox {
    /// Waits up to `expires` for the next message (one pull request for one
    /// message, so nothing is delivered that this client does not process).
    pub async fn next(&self, expires: Duration) -> Result<Option<jetstream::Message>> {
        let mut batch = self
            .consumer
            .batch()
            .max_messages(1)
            .expires(expires)
            .messages()
            .await
            .map_err(|e| ClientError::Broker(format!("pulling from the inbox: {e}")))?;
        match batch.next().await {
            Some(m) => Ok(Some(m.map_err(|e| ClientError::Broker(format!("inbox: {e}")))?)),
            None => Ok(None),
        }
    }

    /// The messages waiting right now (no waiting), up to `max`.
    pub async fn fetch_waiting(&self, max: usize) -> Result<Vec<jetstream::Message>> {
        let mut batch = self
            .consumer
            .fetch()
            .max_messages(max)
            .messages()
            .await
            .map_err(|e| ClientError::Broker(format!("fetching from the inbox: {e}")))?;
        let mut out = Vec::new();
        while let Some(m) = batch.next().await {
            out.push(m.map_err(|e| ClientError::Broker(format!("inbox: {e}")))?);
        }
        Ok(out)
    }
}
