//! The NATS side of the client (PROTOCOL.md §9.3–§9.5): logging in as one device of the
//! identity key, requests to the inbox service (send, devices, block), and reading the
//! device's own consumer with raw pull requests.
//!
//! Login: `ConnectOptions::with_auth_callback` signs the server nonce with
//! [`Identity::sign_nats_nonce`], which refuses anything that is not a plain nonce
//! (PROTOCOL.md §2.2); the nkey is the `U…` form of the same key; the connection name is
//! `kez-device:<device id>` (the auth callout grants pull and ack rights for exactly this
//! device's consumer); replies use the custom inbox prefix `_INBOX.<hex>`, the only
//! subjects a user may subscribe to.
//!
//! Users have no JetStream API (their account has none, §9.1): the consumer is created by the
//! inbox service when the device enrolls ([`Broker::enroll`]), and the client pulls by
//! publishing `MSG.NEXT` requests whose replies arrive on one subscription under the reply
//! prefix ([`Inbox`]). Stored messages are acknowledged by publishing `+ACK` to their reply
//! subject, after the caller verified and stored them.
//!
//! A request the server denies is never answered: it looks like a timeout, and the server
//! reports a permissions violation asynchronously. Both are collected
//! ([`Broker::violations`]) and turned into [`ClientError::Denied`].

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::{AuthError, ConnectErrorKind, ConnectOptions, Event, StatusCode};
use bytes::Bytes;
use futures::StreamExt as _;
use kv_schemas::api::{BlockSender, Device, EnrollDevice, EnrollReply, RemoveDevice, RenameDevice};
use kv_schemas::subjects::{
    DeviceId, DeviceOp, INBOX_STREAM, consumer_ack_prefix, consumer_next_subject, device_connection_name,
    device_consumer, reply_prefix, user_block_subject, user_devices_subject, user_send_subject, user_unblock_subject,
};
use kv_schemas::{ErrorCode, KezError, PublicKey};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{ClientError, Result};
use crate::identity::Identity;

/// Connect timeout.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Timeout of requests to the inbox service.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// How much longer than a pull request's own expiry the client waits for its end before it
/// suspects the request was dropped (denied, or the connection broke).
const PULL_GRACE: Duration = Duration::from_secs(3);
/// Waiting pulls longer than this ask for idle heartbeats, so a silent server is noticed.
const HEARTBEAT_FROM: Duration = Duration::from_secs(10);
/// The heartbeat interval of long pulls.
const HEARTBEAT: Duration = Duration::from_secs(5);

/// The headers of a service error (ADR-32, PROTOCOL.md §9.1).
const SERVICE_ERROR_CODE: &str = "Nats-Service-Error-Code";
const SERVICE_ERROR: &str = "Nats-Service-Error";

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

/// Refuses a broker URL that would log in without TLS to a host that is not
/// loopback (PROTOCOL.md §11): the login signs the server's nonce, and only TLS
/// to the broker's name keeps a broker the client was lured to from relaying
/// that signature to the real one. `tls://` and `wss://` are always fine;
/// `nats://`, `ws://` or no scheme only for `localhost`, `127.0.0.0/8` and `::1`.
/// A comma-separated list is checked entry by entry.
pub fn check_broker_url(url: &str) -> Result<()> {
    for one in url.split(',').map(str::trim) {
        let (scheme, rest) = one.split_once("://").unwrap_or(("nats", one));
        let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
        let hostport = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
        let host = if let Some(v6) = hostport.strip_prefix('[') {
            v6.split(']').next().unwrap_or("")
        } else {
            hostport.split(':').next().unwrap_or("")
        };
        let secure = matches!(scheme.to_ascii_lowercase().as_str(), "tls" | "wss");
        let plain = matches!(scheme.to_ascii_lowercase().as_str(), "nats" | "ws");
        if secure || (plain && is_loopback(host)) {
            continue;
        }
        return Err(ClientError::Broker(format!(
            "the broker address {one} is not encrypted: kez-chat logs in to a broker that is not on this \
             machine only over TLS (tls://… or wss://…); nats:// and ws:// are for 127.0.0.1 and localhost"
        )));
    }
    Ok(())
}

fn is_loopback(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost") || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// A logged-in NATS connection of one device of a user.
pub struct Broker {
    client: async_nats::Client,
    me: PublicKey,
    device: DeviceId,
    url: String,
    events: Events,
}

/// The connect options a kez client uses for `id` on `device` (exposed so tests and other
/// tools connect exactly like the CLI).
pub fn connect_options(id: Arc<Identity>, device: &DeviceId) -> Result<ConnectOptions> {
    let nkey = id.nkey_public().map_err(|e| ClientError::Broker(e.to_string()))?;
    let me = id.public_key();
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
    // Servers the broker gossips were never checked by `check_broker_url`.
    .ignore_discovered_servers()
    .custom_inbox_prefix(reply_prefix(&me))
    .name(device_connection_name(device))
    .connection_timeout(CONNECT_TIMEOUT)
    .request_timeout(Some(REQUEST_TIMEOUT)))
}

/// Turns a service reply into its body, or the service error it carries.
fn service_reply(message: &async_nats::Message) -> std::result::Result<Bytes, KezError> {
    if let Some(headers) = &message.headers
        && let Some(code) = headers.get(SERVICE_ERROR_CODE)
    {
        let code = code.as_str().trim().parse().ok().and_then(ErrorCode::from_number).unwrap_or(ErrorCode::Internal);
        let text = headers.get(SERVICE_ERROR).map(|v| v.as_str().to_string()).unwrap_or_default();
        let message = text.split_once(": ").map(|(_, m)| m.to_string()).unwrap_or(text);
        return Err(KezError::new(code, message));
    }
    Ok(message.payload.clone())
}

/// Replies as the client reads them: unknown keys are ignored (PROTOCOL.md §9.2), unlike the
/// exact request types of `kv_schemas::api` that the services parse.
mod replies {
    use kv_schemas::api::{Device, EnrollReply};
    use kv_schemas::subjects::DeviceId;
    use serde::Deserialize;

    #[derive(Deserialize)]
    pub struct DeviceR {
        id: DeviceId,
        name: String,
        created_at: u64,
        #[serde(default)]
        last_active: Option<u64>,
    }

    impl From<DeviceR> for Device {
        fn from(d: DeviceR) -> Device {
            Device { id: d.id, name: d.name, created_at: d.created_at, last_active: d.last_active }
        }
    }

    #[derive(Deserialize)]
    pub struct Enroll {
        device: DeviceR,
        consumer: String,
        created: bool,
    }

    impl From<Enroll> for EnrollReply {
        fn from(e: Enroll) -> EnrollReply {
            EnrollReply { device: e.device.into(), consumer: e.consumer, created: e.created }
        }
    }

    #[derive(Deserialize)]
    pub struct List {
        pub devices: Vec<DeviceR>,
    }

    #[derive(Deserialize)]
    pub struct OneDevice {
        pub device: DeviceR,
    }

    #[derive(Deserialize)]
    pub struct Block {
        pub purged: u64,
    }
}

impl Broker {
    /// Logs in to `url` as `id`, as the device `device`.
    ///
    /// An authorization violation is reported as [`ClientError::Denied`]; the caller tells
    /// "not registered yet" apart with a registry lookup.
    pub async fn connect(url: &str, id: Arc<Identity>, device: &DeviceId) -> Result<Self> {
        check_broker_url(url)?;
        let me = id.public_key();
        let events = Events::default();
        let sink = events.clone();
        let client = connect_options(id, device)?
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
        Ok(Self { client, me, device: device.clone(), url: url.into(), events })
    }

    /// The broker URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// This connection's device.
    pub fn device(&self) -> &DeviceId {
        &self.device
    }

    /// Permission violations the server reported on this connection so far.
    pub fn violations(&self) -> Vec<String> {
        self.events.violations()
    }

    /// Turns a missing answer into [`ClientError::Denied`] when the server reported a
    /// violation, else into a timeout.
    async fn explain_timeout(&self, what: &str) -> ClientError {
        // The violation arrives asynchronously; give it a moment.
        let _ = tokio::time::timeout(Duration::from_millis(300), self.client.flush()).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
        let v = self.violations();
        if v.is_empty() {
            ClientError::Timeout(format!("{what}: the broker at {} did not answer", self.url))
        } else {
            ClientError::Denied(format!("{what}: {}", v.join("; ")))
        }
    }

    /// One request to the inbox service; returns the reply body or the typed refusal.
    async fn request(&self, what: &str, subject: String, payload: Bytes) -> Result<Bytes> {
        use async_nats::RequestErrorKind as K;
        let request = async_nats::Request::new().payload(payload).timeout(Some(REQUEST_TIMEOUT));
        let message = match self.client.send_request(subject, request).await {
            Ok(m) => m,
            Err(e) => {
                return Err(match e.kind() {
                    K::TimedOut => self.explain_timeout(what).await,
                    K::NoResponders => ClientError::Refused(KezError::new(
                        ErrorCode::Unavailable,
                        format!("{what}: the server's inbox service is not running"),
                    )),
                    K::MaxPayloadExceeded => ClientError::Refused(KezError::new(
                        ErrorCode::TooLarge,
                        format!("{what}: larger than the broker accepts"),
                    )),
                    _ => ClientError::Broker(format!("{what}: {e}")),
                });
            }
        };
        service_reply(&message).map_err(ClientError::refused)
    }

    async fn request_json<Req: Serialize, Resp: DeserializeOwned>(
        &self,
        what: &str,
        subject: String,
        body: &Req,
    ) -> Result<Resp> {
        let payload = serde_json::to_vec(body).map_err(|e| ClientError::Broker(e.to_string()))?;
        let reply = self.request(what, subject, payload.into()).await?;
        serde_json::from_slice(&reply).map_err(|e| ClientError::BadServerReply(format!("{what}: {e}")))
    }

    /// Sends a sealed outer envelope to `recipient` through the relay (`kez.u.<me>.send.<to>`)
    /// and waits until it is stored. Refusals carry their stable code (`inbox_full`,
    /// `store_full`, `key_not_found`, `rate_limited`, …).
    ///
    /// While the outcome is unknown (no answer, `unavailable`) the same bytes are sent again:
    /// the relay stores them once (PROTOCOL.md §9.3, §9.7).
    pub async fn send(&self, recipient: &PublicKey, envelope: Vec<u8>) -> Result<()> {
        let envelope = Bytes::from(envelope);
        let reply = crate::error::retry_unknown(|| {
            self.request("sending the message", user_send_subject(&self.me, recipient), envelope.clone())
        })
        .await?;
        // `{}`; later versions may add keys (§9.2), so any JSON object is accepted.
        match serde_json::from_slice::<serde_json::Value>(&reply) {
            Ok(serde_json::Value::Object(_)) => Ok(()),
            _ => Err(ClientError::BadServerReply("sending the message: the reply is not a JSON object".into())),
        }
    }

    /// Enrolls this device (idempotent; creates its consumer when missing). A removed device
    /// gets [`ClientError::DeviceRemoved`].
    pub async fn enroll(&self, name: &str) -> Result<EnrollReply> {
        let req = EnrollDevice { device: self.device.clone(), name: name.to_owned() };
        let reply: replies::Enroll = self
            .request_json("enrolling this device", user_devices_subject(&self.me, DeviceOp::Enroll), &req)
            .await
            .map_err(|e| self.removed(e))?;
        let reply = EnrollReply::from(reply);
        let want = device_consumer(&self.me, &self.device);
        if reply.consumer != want || reply.device.id != self.device {
            return Err(ClientError::BadServerReply(format!(
                "enrolling this device: the server named consumer {} for device {}, expected {want}",
                reply.consumer, reply.device.id
            )));
        }
        Ok(reply)
    }

    fn removed(&self, e: ClientError) -> ClientError {
        match e {
            ClientError::Refused(k) if k.code == ErrorCode::DeviceRemoved => {
                ClientError::DeviceRemoved { device: self.device.to_string() }
            }
            e => e,
        }
    }

    /// The user's devices.
    pub async fn devices(&self) -> Result<Vec<Device>> {
        let list: replies::List = self
            .request_json("listing devices", user_devices_subject(&self.me, DeviceOp::List), &serde_json::json!({}))
            .await?;
        Ok(list.devices.into_iter().map(Device::from).collect())
    }

    /// Renames a device of the user.
    pub async fn rename_device(&self, device: &DeviceId, name: &str) -> Result<Device> {
        let req = RenameDevice { device: device.clone(), name: name.to_owned() };
        let reply: replies::OneDevice =
            self.request_json("renaming the device", user_devices_subject(&self.me, DeviceOp::Rename), &req).await?;
        Ok(reply.device.into())
    }

    /// Removes a device of the user: its consumer is deleted and its id can never enroll again.
    pub async fn remove_device(&self, device: &DeviceId) -> Result<()> {
        let req = RemoveDevice { device: device.clone() };
        let _: serde_json::Value =
            self.request_json("removing the device", user_devices_subject(&self.me, DeviceOp::Remove), &req).await?;
        Ok(())
    }

    /// Refuses `sender` from now on and drops what it has in the inbox; returns how many
    /// messages were dropped.
    pub async fn block(&self, sender: &PublicKey) -> Result<u64> {
        let reply: replies::Block =
            self.request_json("blocking", user_block_subject(&self.me), &BlockSender { sender: *sender }).await?;
        Ok(reply.purged)
    }

    /// Accepts `sender` again.
    pub async fn unblock(&self, sender: &PublicKey) -> Result<()> {
        let _: serde_json::Value =
            self.request_json("unblocking", user_unblock_subject(&self.me), &BlockSender { sender: *sender }).await?;
        Ok(())
    }

    /// Opens this device's inbox: one subscription under the reply prefix for the answers to
    /// pull requests. The device must be enrolled (see [`Broker::enroll`]).
    pub async fn inbox(&self) -> Result<Inbox> {
        let prefix = format!("{}.pull.{}", reply_prefix(&self.me), hex::encode(kv_schemas::random_bytes::<8>()));
        let sub = self
            .client
            .subscribe(format!("{prefix}.*"))
            .await
            .map_err(|e| ClientError::Broker(format!("opening the inbox: {e}")))?;
        let consumer = device_consumer(&self.me, &self.device);
        Ok(Inbox {
            client: self.client.clone(),
            events: self.events.clone(),
            url: self.url.clone(),
            next_subject: consumer_next_subject(&consumer),
            ack_prefix: format!("{}.", consumer_ack_prefix(&consumer)),
            consumer,
            prefix,
            sub,
            request: 0,
        })
    }

    /// Flushes and closes the connection.
    pub async fn close(self) {
        let _ = tokio::time::timeout(Duration::from_secs(2), self.client.drain()).await;
    }
}

/// One stored message delivered to this device.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// The outer envelope bytes.
    pub payload: Bytes,
    /// The stored subject (`kez.inbox.<me>[.<tag>]`).
    pub subject: String,
    /// The stream sequence (the same on every device of the user).
    pub stream_seq: u64,
    /// How many times it was delivered to this device (1 the first time).
    pub delivered: u64,
    /// Where the acknowledgement goes.
    reply: String,
}

/// The device's consumer, read with raw `MSG.NEXT` requests (PROTOCOL.md §9.4).
pub struct Inbox {
    client: async_nats::Client,
    events: Events,
    url: String,
    consumer: String,
    next_subject: String,
    ack_prefix: String,
    prefix: String,
    sub: async_nats::Subscriber,
    request: u64,
}

/// Reads the stream sequence and delivery count out of an ack subject
/// `$JS.ACK.<stream>.<consumer>.<delivered>.<stream seq>.<consumer seq>.<ms>.<pending>`
/// (or the longer form with domain and account hash in front of the stream).
fn parse_ack_subject(subject: &str, consumer: &str) -> Option<(u64, u64)> {
    let tokens: Vec<&str> = subject.strip_prefix("$JS.ACK.")?.split('.').collect();
    let rest = match tokens.len() {
        7 => &tokens[..],
        n if n >= 9 => &tokens[2..],
        _ => return None,
    };
    if rest[0] != INBOX_STREAM || rest[1] != consumer {
        return None;
    }
    Some((rest[3].parse().ok()?, rest[2].parse().ok()?))
}

impl Inbox {
    /// The consumer this inbox reads.
    pub fn consumer(&self) -> &str {
        &self.consumer
    }

    /// Pulls up to `batch` messages. With `wait` = `None` only what is waiting now (no_wait);
    /// otherwise the request ends when `batch` messages arrived or after `wait` (so waiting
    /// pulls use a batch of 1 to return as soon as something arrives).
    ///
    /// [`ClientError::ConsumerGone`] means the consumer does not exist (any more): enroll
    /// again. Messages of an earlier request that arrive late are returned too (deliveries
    /// carry their stored subject, not the request's; only status messages name it).
    pub async fn pull(&mut self, batch: usize, wait: Option<Duration>) -> Result<Vec<Delivery>> {
        let batch = batch.max(1);
        self.request += 1;
        let n = self.request;
        let reply = format!("{}.{n}", self.prefix);
        let body = match wait {
            None => serde_json::json!({ "batch": batch, "no_wait": true }),
            Some(w) if w >= HEARTBEAT_FROM => serde_json::json!({
                "batch": batch,
                "expires": w.as_nanos() as u64,
                "idle_heartbeat": HEARTBEAT.as_nanos() as u64,
            }),
            Some(w) => {
                serde_json::json!({ "batch": batch, "expires": w.max(Duration::from_millis(100)).as_nanos() as u64 })
            }
        };
        let body = serde_json::to_vec(&body).map_err(|e| ClientError::Broker(e.to_string()))?;
        self.client
            .publish_with_reply(self.next_subject.clone(), reply.clone(), body.into())
            .await
            .map_err(|e| ClientError::Broker(format!("pulling from the inbox: {e}")))?;
        self.client.flush().await.map_err(|e| ClientError::Broker(format!("pulling from the inbox: {e}")))?;

        let mut out = Vec::new();
        let mut deadline = tokio::time::Instant::now() + wait.unwrap_or_default() + PULL_GRACE;
        loop {
            let next = match tokio::time::timeout_at(deadline, self.sub.next()).await {
                Ok(m) => m,
                Err(_) if !out.is_empty() => return Ok(out),
                Err(_) => return Err(self.explain_silence().await),
            };
            let Some(m) = next else {
                return Err(ClientError::Broker("the connection to the broker closed".into()));
            };
            let mine = m.subject.as_str() == reply;
            match m.status {
                None => {
                    out.push(self.delivery(m)?);
                    if out.len() >= batch {
                        return Ok(out);
                    }
                }
                Some(StatusCode::IDLE_HEARTBEAT) => {
                    // The server is alive and holds the request; give it until the next beat.
                    deadline = deadline.max(tokio::time::Instant::now() + 2 * HEARTBEAT);
                }
                Some(StatusCode::NO_RESPONDERS) if mine => return Err(ClientError::ConsumerGone),
                Some(StatusCode::REQUEST_TERMINATED) if mine => {
                    let why = m.description.unwrap_or_default();
                    if why.to_ascii_lowercase().contains("consumer deleted") {
                        return Err(ClientError::ConsumerGone);
                    }
                    // e.g. "Exceeded MaxWaiting": this request is over, the next one may work.
                    return Ok(out);
                }
                // 404 no messages, 408 expired: this request is over.
                Some(_) if mine => return Ok(out),
                // The end of an older request: nothing to do.
                Some(_) => {}
            }
        }
    }

    fn delivery(&self, m: async_nats::Message) -> Result<Delivery> {
        let reply = m.reply.map(|r| r.to_string()).unwrap_or_default();
        let Some((stream_seq, delivered)) =
            reply.starts_with(&self.ack_prefix).then(|| parse_ack_subject(&reply, &self.consumer)).flatten()
        else {
            return Err(ClientError::BadServerReply(format!(
                "a delivery without the ack subject of {} (reply {reply:?})",
                self.consumer
            )));
        };
        Ok(Delivery { payload: m.payload, subject: m.subject.to_string(), stream_seq, delivered, reply })
    }

    async fn explain_silence(&self) -> ClientError {
        let _ = tokio::time::timeout(Duration::from_millis(300), self.client.flush()).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
        let v = self.events.violations();
        if v.is_empty() {
            ClientError::Timeout(format!("pulling from the inbox: the broker at {} did not answer", self.url))
        } else {
            ClientError::Denied(format!("pulling from the inbox: {}", v.join("; ")))
        }
    }

    /// Acknowledges a delivery (`+ACK` to its reply subject). Call only after the message was
    /// stored (or rejected for good). [`Inbox::flush`] makes sure the acks left.
    pub async fn ack(&self, d: &Delivery) -> Result<()> {
        self.client
            .publish(d.reply.clone(), Bytes::from_static(b"+ACK"))
            .await
            .map_err(|e| ClientError::Broker(format!("acknowledging: {e}")))
    }

    /// Sends everything published so far (acks) to the server.
    pub async fn flush(&self) -> Result<()> {
        self.client.flush().await.map_err(|e| ClientError::Broker(format!("acknowledging: {e}")))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// PROTOCOL.md §11: no plain-text login to a broker off this machine.
    #[tokio::test]
    async fn plain_text_brokers_off_loopback_are_refused_before_connecting() {
        for ok in [
            "nats://127.0.0.1:4222",
            "127.0.0.1:4222",
            "nats://localhost:4222",
            "ws://[::1]:8080",
            "tls://kez.lat:4222",
            "wss://kez.lat/nats",
            "tls://a.example:4222, nats://127.0.0.2:4222",
        ] {
            check_broker_url(ok).unwrap();
        }
        for bad in [
            "nats://kez.lat:4222",
            "kez.lat:4222",
            "ws://10.0.0.1:80",
            "nats://127.0.0.1.evil.example:4222",
            "nats://user:pw@kez.lat:4222",
            "tls://a.example:4222,nats://b.example:4222",
            "http://kez.lat",
        ] {
            let e = check_broker_url(bad).unwrap_err();
            assert!(e.to_string().contains("not encrypted"), "{bad}: {e}");
        }
        // The connect itself refuses (no socket is opened: the host does not exist).
        let id = Arc::new(Identity::from_seed([5; 32]));
        let dev: DeviceId = "0123456789abcdef".parse().unwrap();
        let e = Broker::connect("nats://kez-chat.invalid:4222", id, &dev).await.err().unwrap();
        assert!(matches!(e, ClientError::Broker(ref m) if m.contains("not encrypted")), "{e}");
    }

    #[test]
    fn ack_subjects() {
        let c = "ab_0123456789abcdef";
        assert_eq!(parse_ack_subject(&format!("$JS.ACK.KEZ_INBOX.{c}.1.42.7.1700000000000000000.3"), c), Some((42, 1)));
        assert_eq!(
            parse_ack_subject(&format!("$JS.ACK.hub.ACCHASH.KEZ_INBOX.{c}.2.43.8.1700000000000000000.0.tok"), c),
            Some((43, 2))
        );
        assert_eq!(parse_ack_subject(&format!("$JS.ACK.OTHER.{c}.1.42.7.1.3"), c), None);
        assert_eq!(parse_ack_subject("$JS.ACK.KEZ_INBOX.other.1.42.7.1.3", c), None);
        assert_eq!(parse_ack_subject("kez.inbox.x", c), None);
        assert_eq!(parse_ack_subject(&format!("$JS.ACK.KEZ_INBOX.{c}.x.42.7.1.3"), c), None);
    }
}
