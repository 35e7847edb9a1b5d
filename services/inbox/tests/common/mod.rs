//! Shared set-up of the inbox integration tests: a real nats-server with the production account
//! layout (kez-testkit), the real registry, the auth-callout worker (so end users connect into
//! `USERS` with their own key, as clients do) and the inbox service under test.
#![allow(dead_code, clippy::unwrap_used)]

use std::time::Duration;

use async_nats::HeaderMap;
use bytes::Bytes;
use kez_inbox::InboxConfig;
use kez_service_kit::settings::{SenderTagKey, Settings};
pub use kez_testkit::user::User;
use kez_testkit::user::{Events, pull};
use kez_testkit::{NatsServer, ServiceUser};
use kv_schemas::envelope::{Body, seal};
use kv_schemas::subjects::{
    DeviceId, DeviceOp, device_connection_name, device_consumer, user_block_subject, user_devices_subject,
    user_send_subject, user_unblock_subject,
};
use kv_schemas::{ErrorCode, KezError, PublicKey, now_ms};
use serde_json::{Value, json};

pub const DOMAIN: &str = "kez.test";
pub const TIMEOUT: Duration = Duration::from_secs(5);

/// A server with the production layout and permissions (sync off: not about durability).
pub async fn server() -> NatsServer {
    let mut p = kez_service_kit::stack::service_permissions(ServiceUser::Inbox).unwrap();
    // Until the stack grants it: the wave-1 migration reads the old stream with STREAM.MSG.GET,
    // which `$JS.API.STREAM.*.KEZ_INBOX` does not match (one more token).
    let msg_get = "$JS.API.STREAM.MSG.GET.KEZ_INBOX".to_owned();
    if !p.publish_allow.contains(&msg_get) {
        p.publish_allow.push(msg_get);
    }
    let builder = NatsServer::builder().sync_interval_always(false).service_permissions(ServiceUser::Inbox, p);
    builder.start().await.unwrap()
}

/// The server, the registry, the callout and one inbox worker.
pub struct Env {
    pub server: NatsServer,
    pub registry: async_nats::service::Service,
    pub registry_conn: async_nats::Client,
    /// The ops user (APP): registers users, asks for the status.
    pub ops: async_nats::Client,
    pub callout: kez_auth_callout::CalloutHandle,
    pub inbox: Option<async_nats::service::Service>,
    pub inbox_conn: async_nats::Client,
    pub settings: Settings,
}

pub fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "kez_inbox=debug".into()),
        )
        .with_test_writer()
        .try_init();
}

impl Env {
    pub async fn start() -> Env {
        Self::start_with(|_| {}).await
    }

    /// Starts everything; `adjust` changes the inbox service's tunables.
    pub async fn start_with(adjust: impl FnOnce(&mut InboxConfig)) -> Env {
        let server = server().await;
        Self::start_on(server, adjust).await
    }

    /// Starts the services on a server the test prepared (e.g. with a wave-1 stream).
    pub async fn start_on(server: NatsServer, adjust: impl FnOnce(&mut InboxConfig)) -> Env {
        init_tracing();
        let mut settings = Settings::local(DOMAIN, "http://kez.test");
        settings.sender_tag_key = Some(SenderTagKey::new(*server.secrets().sender_tag_key()));
        let registry_conn = server.connect_as(ServiceUser::Registry).await.unwrap();
        let registry = kez_registry::start(&registry_conn, &settings).await.unwrap();
        let auth_conn = server.connect_worker().await.unwrap();
        let app_conn = server.connect_as(ServiceUser::AuthCallout).await.unwrap();
        let config = kez_auth_callout::CalloutConfig::new(server.issuer_key().clone());
        let callout = kez_auth_callout::start(auth_conn, app_conn, config).await.unwrap();
        let inbox_conn = server.connect_as(ServiceUser::Inbox).await.unwrap();
        let mut config = InboxConfig::from_settings(&settings);
        adjust(&mut config);
        let inbox = kez_inbox::start_with(&inbox_conn, &settings, config).await.unwrap();
        let ops = server.connect_ops().await.unwrap();
        Env { server, registry, registry_conn, ops, callout, inbox: Some(inbox), inbox_conn, settings }
    }

    /// A user registered through the real registry.
    pub async fn registered_user(&self) -> User {
        let u = User::new();
        self.register(&u).await;
        u
    }

    pub async fn register(&self, u: &User) {
        u.register(&self.ops, DOMAIN).await.unwrap();
    }

    /// Connects a user as one device (no device: send and manage only).
    pub async fn connect(&self, u: &User, device: Option<&DeviceId>) -> Conn {
        let mut options =
            u.options(&Events::default()).unwrap().connection_timeout(TIMEOUT).request_timeout(Some(TIMEOUT));
        if let Some(d) = device {
            options = options.name(device_connection_name(d));
        }
        let client = options.connect(self.server.client_url()).await.unwrap();
        Conn { client, user: u.clone() }
    }

    /// The INBOX account's JetStream API, as the ops user in APP reaches it.
    pub async fn inbox_js(&self) -> async_nats::jetstream::Context {
        let ops = self.server.connect_ops().await.unwrap();
        async_nats::jetstream::with_prefix(ops, kez_inbox::INBOX_API_PREFIX)
    }

    /// Messages stored on one subject of the inbox stream.
    pub async fn stored_on(&self, subject: &str) -> u64 {
        let js = self.inbox_js().await;
        let info: Value =
            js.request("STREAM.INFO.KEZ_INBOX".to_owned(), &json!({"subjects_filter": subject})).await.unwrap();
        info["state"]["subjects"][subject].as_u64().unwrap_or(0)
    }

    pub async fn stream_messages(&self) -> u64 {
        let js = self.inbox_js().await;
        let mut stream = js.get_stream(kv_schemas::subjects::INBOX_STREAM).await.unwrap();
        stream.info().await.unwrap().state.messages
    }

    pub async fn consumer_exists(&self, name: &str) -> bool {
        let js = self.inbox_js().await;
        let stream = js.get_stream(kv_schemas::subjects::INBOX_STREAM).await.unwrap();
        stream.consumer_info(name).await.is_ok()
    }
}

/// Sealing test messages between [`User`]s.
pub trait SealTo {
    /// A sealed text message to `to`.
    fn seal_to(&self, to: &User, text: &str) -> Bytes;
}

impl SealTo for User {
    fn seal_to(&self, to: &User, text: &str) -> Bytes {
        Bytes::from(seal(&self.signing, &to.key, &Body::Text(text.into()), now_ms()).unwrap())
    }
}

/// A user's connection.
pub struct Conn {
    pub client: async_nats::Client,
    pub user: User,
}

/// A reply: the body, or the service error it carried.
pub type Reply = Result<Value, KezError>;

impl Conn {
    /// A request with the service-error headers mapped back to a code.
    pub async fn call(&self, subject: String, body: Bytes) -> Reply {
        let msg = self
            .client
            .send_request(subject, async_nats::Request::new().payload(body).timeout(Some(TIMEOUT)))
            .await
            .map_err(|e| KezError::new(ErrorCode::Unavailable, e.to_string()))?;
        if let Some(code) = msg.headers.as_ref().and_then(|h| h.get(async_nats::service::NATS_SERVICE_ERROR_CODE)) {
            let code = ErrorCode::from_number(code.as_str().parse().unwrap()).unwrap();
            return Err(KezError::new(code, format!("{:?}", msg.headers)));
        }
        Ok(serde_json::from_slice(&msg.payload).unwrap_or(Value::Null))
    }

    pub async fn send(&self, to: &PublicKey, envelope: Bytes) -> Reply {
        self.call(user_send_subject(&self.user.key, to), envelope).await
    }

    pub async fn devices(&self, op: DeviceOp, body: Value) -> Reply {
        self.call(user_devices_subject(&self.user.key, op), body.to_string().into()).await
    }

    pub async fn enroll(&self, device: &DeviceId, name: &str) -> Reply {
        self.devices(DeviceOp::Enroll, json!({"device": device, "name": name})).await
    }

    pub async fn block(&self, sender: &PublicKey) -> Reply {
        self.call(user_block_subject(&self.user.key), json!({"sender": sender}).to_string().into()).await
    }

    pub async fn unblock(&self, sender: &PublicKey) -> Reply {
        self.call(user_unblock_subject(&self.user.key), json!({"sender": sender}).to_string().into()).await
    }

    /// One raw pull (PROTOCOL.md §9.4): every message and status that arrives until the request
    /// expires or a status ends it. Acks each stored message when `ack`.
    pub async fn pull(&self, device: &DeviceId, batch: usize, ack: bool) -> Pulled {
        let consumer = device_consumer(&self.user.key, device);
        let reply = format!("{}.pull", self.client.new_inbox());
        let got = pull(&self.client, &consumer, &reply, batch, Duration::from_millis(1_100), ack).await.unwrap();
        Pulled {
            subjects: got.messages.iter().map(|m| m.subject.to_string()).collect(),
            payloads: got.messages.iter().map(|m| m.payload.clone()).collect(),
            headers: got.messages.iter().map(|m| m.headers.clone()).collect(),
            statuses: got.status.into_iter().collect(),
        }
    }
}

#[derive(Debug, Default)]
pub struct Pulled {
    pub subjects: Vec<String>,
    pub payloads: Vec<Bytes>,
    pub headers: Vec<Option<HeaderMap>>,
    pub statuses: Vec<u16>,
}

/// The code of a refused request.
pub fn code(r: Reply) -> ErrorCode {
    match r {
        Err(e) => e.code,
        Ok(v) => panic!("expected an error, got {v}"),
    }
}
