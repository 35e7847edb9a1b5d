//! The public `/v1` HTTP API of a kez server (gateway/openapi.json), as the
//! client uses it. Every answer is parsed into a `kv_schemas::api` type; the
//! error body `{"error":{"code","message"}}` becomes a typed [`ClientError`].
//!
//! Nothing here trusts the server: callers verify sigchains themselves
//! (`contacts.rs`), and signed objects are sent as the exact bytes the client built.

use std::sync::Once;
use std::time::Duration;

use kv_schemas::api::{ChainReply, ClientConfig, ErrorBody, RegisterReply, UserRecord, UserView};
use kv_schemas::{ErrorCode, Handle, PublicKey};
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::error::{ClientError, Result, retry_unknown};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(20);
/// Largest answer read (a full 10 000-link sigchain is ~80 MiB in theory; cap
/// what a client will hold in memory at 16 MiB).
const MAX_BODY: usize = 16 * 1024 * 1024;

/// Installs rustls' ring provider once per process (reqwest is built without a
/// provider so that aws-lc, which needs cmake, stays out of the build).
pub fn install_crypto_provider() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // Err only when another provider is installed already: that one is used.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// The `/v1` path of the chain page after seqno `since` (PROTOCOL.md §9.6).
pub fn chain_page_path(key: &PublicKey, since: u64) -> String {
    match since {
        0 => format!("/v1/sigchains/ed25519/{}", key.hex()),
        n => format!("/v1/sigchains/ed25519/{}?since={n}", key.hex()),
    }
}

/// Reads `key`'s whole chain page by page: `page(since)` fetches the links after
/// `since` (`None`: the chain does not exist). Each page must be for `key` and
/// make progress, and the whole stays within the chain length bound, so a server
/// cannot keep the client reading forever.
pub async fn read_chain<E, F, Fut>(
    key: &PublicKey,
    bad: impl Fn(String) -> E,
    mut page: F,
) -> std::result::Result<Vec<Value>, E>
where
    F: FnMut(u64) -> Fut,
    Fut: std::future::Future<Output = std::result::Result<Option<ChainReply>, E>>,
{
    let mut links: Vec<Value> = Vec::new();
    loop {
        let Some(reply) = page(links.len() as u64).await? else {
            return if links.is_empty() { Ok(links) } else { Err(bad("the chain vanished between two pages".into())) };
        };
        if &reply.key != key {
            return Err(bad("the sigchain service answered for another key".into()));
        }
        if reply.more && reply.links.is_empty() {
            return Err(bad("the sigchain service sent an empty page that is not the last".into()));
        }
        links.extend(reply.links);
        if links.len() as u64 > kv_schemas::sigchain::MAX_CHAIN_LINKS {
            return Err(bad("the sigchain service sent more links than a chain may hold".into()));
        }
        if !reply.more {
            return Ok(links);
        }
    }
}

/// An error answer of the API.
#[derive(Debug, Clone)]
struct Failure {
    status: u16,
    code: Option<ErrorCode>,
    code_text: String,
    message: String,
}

impl Failure {
    fn into_error(self) -> ClientError {
        ClientError::Server { code: self.code_text, message: self.message }
    }
}

/// The `/v1` API of one server.
#[derive(Debug, Clone)]
pub struct Api {
    base: String,
    http: reqwest::Client,
}

impl Api {
    /// A client for the server at `base` (`http(s)://host[:port]`, no trailing `/`).
    pub fn new(base: &str) -> Result<Self> {
        install_crypto_provider();
        let http = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(REQUEST_TIMEOUT)
            .user_agent(concat!("kez-chat/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| ClientError::Usage(format!("cannot set up HTTPS: {e}")))?;
        Ok(Self { base: base.trim_end_matches('/').to_string(), http })
    }

    /// The base URL.
    pub fn base(&self) -> &str {
        &self.base
    }

    fn unreachable(&self, e: &reqwest::Error) -> ClientError {
        let detail = if e.is_timeout() {
            "no answer in time".to_string()
        } else if e.is_connect() {
            "connection failed (is the server running and the URL right?)".to_string()
        } else {
            // reqwest's Display chain names the URL and the cause; no secrets in it.
            let mut s = e.to_string();
            let mut src = std::error::Error::source(e);
            while let Some(inner) = src {
                s.push_str(": ");
                s.push_str(&inner.to_string());
                src = inner.source();
            }
            s
        };
        ClientError::ServerUnreachable { url: self.base.clone(), detail }
    }

    async fn send(&self, req: reqwest::RequestBuilder) -> Result<std::result::Result<Vec<u8>, Failure>> {
        let resp = req.send().await.map_err(|e| self.unreachable(&e))?;
        let status = resp.status().as_u16();
        let mut body = Vec::new();
        let mut resp = resp;
        while let Some(chunk) = resp.chunk().await.map_err(|e| self.unreachable(&e))? {
            if body.len() + chunk.len() > MAX_BODY {
                return Err(ClientError::BadServerReply("answer too large".into()));
            }
            body.extend_from_slice(&chunk);
        }
        if (200..300).contains(&status) {
            return Ok(Ok(body));
        }
        let failure = match serde_json::from_slice::<ErrorBody>(&body) {
            Ok(b) => Failure {
                status,
                code: ErrorCode::parse(&b.error.code),
                code_text: b.error.code,
                message: b.error.message,
            },
            Err(_) => Failure {
                status,
                code: None,
                code_text: format!("http_{status}"),
                message: String::from_utf8_lossy(&body).chars().take(200).collect(),
            },
        };
        if failure.code.is_none() && status == 404 {
            // Something answers, but not a kez server (or an old one).
            return Err(ClientError::BadServerReply(format!(
                "{} does not look like a kez server (404 without a kez error body)",
                self.base
            )));
        }
        Ok(Err(failure))
    }

    fn parse<T: DeserializeOwned>(&self, what: &str, body: &[u8]) -> Result<T> {
        serde_json::from_slice(body).map_err(|e| ClientError::BadServerReply(format!("{what}: {e}")))
    }

    async fn get(&self, path: &str) -> Result<std::result::Result<Vec<u8>, Failure>> {
        self.send(self.http.get(format!("{}{path}", self.base))).await
    }

    async fn post(&self, path: &str, body: Vec<u8>) -> Result<std::result::Result<Vec<u8>, Failure>> {
        self.send(
            self.http
                .post(format!("{}{path}", self.base))
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body),
        )
        .await
    }

    /// `GET /v1/config`.
    pub async fn config(&self) -> Result<ClientConfig> {
        match self.get("/v1/config").await? {
            Ok(b) => self.parse("/v1/config", &b),
            Err(f) => Err(f.into_error()),
        }
    }

    /// `GET /v1/u/:handle`; `Ok(None)` when the handle is not registered.
    pub async fn user(&self, handle: &Handle) -> Result<Option<UserView>> {
        match self.get(&format!("/v1/u/{handle}")).await? {
            Ok(b) => {
                let view: UserView = self.parse("/v1/u", &b)?;
                if &view.handle != handle {
                    return Err(ClientError::BadServerReply(format!(
                        "asked for {handle}, the server answered for {}",
                        view.handle
                    )));
                }
                Ok(Some(view))
            }
            Err(f) if f.code == Some(ErrorCode::HandleNotFound) => Ok(None),
            Err(f) => Err(f.into_error()),
        }
    }

    /// `GET /v1/keys/ed25519/:hex`; `Ok(None)` when the key is not registered.
    pub async fn lookup_key(&self, key: &PublicKey) -> Result<Option<UserRecord>> {
        match self.get(&format!("/v1/keys/ed25519/{}", key.hex())).await? {
            Ok(b) => {
                let rec: UserRecord = self.parse("/v1/keys", &b)?;
                if &rec.key != key {
                    return Err(ClientError::BadServerReply("the registry answered for another key".into()));
                }
                Ok(Some(rec))
            }
            Err(f) if f.code == Some(ErrorCode::KeyNotFound) => Ok(None),
            Err(f) => Err(f.into_error()),
        }
    }

    /// `GET /v1/sigchains/ed25519/:hex`: the links as JSON values (not yet
    /// verified); an unknown chain is empty.
    pub async fn sigchain(&self, key: &PublicKey) -> Result<Vec<Value>> {
        read_chain(key, ClientError::BadServerReply, move |since| async move {
            match self.get(&chain_page_path(key, since)).await? {
                Ok(b) => Ok(Some(self.parse::<ChainReply>("/v1/sigchains", &b)?)),
                Err(f) if f.code == Some(ErrorCode::ChainNotFound) => Ok(None),
                Err(f) => Err(f.into_error()),
            }
        })
        .await
    }

    /// `POST /v1/sigchains/ed25519/:hex/events` with the exact link bytes; resent as they are
    /// while the outcome is unknown (the server answers a stored link's retry like the first
    /// attempt, PROTOCOL.md §5).
    pub async fn append_link(&self, key: &PublicKey, link: Vec<u8>) -> Result<kv_schemas::api::AppendReply> {
        let path = format!("/v1/sigchains/ed25519/{}/events", key.hex());
        retry_unknown(|| async {
            match self.post(&path, link.clone()).await? {
                Ok(b) => self.parse("sigchain append", &b),
                Err(f) => Err(ClientError::Server { code: f.code_text, message: f.message }),
            }
        })
        .await
    }

    /// `POST /v1/register` with a request `build` signs anew for every attempt: while the
    /// outcome is unknown it is resent with a fresh nonce (the first attempt's nonce may be
    /// recorded already), and a registration that did land answers `created: false`.
    pub async fn register_retrying(
        &self,
        handle: &Handle,
        build: impl Fn() -> std::result::Result<Vec<u8>, kv_schemas::KezError>,
    ) -> Result<RegisterReply> {
        retry_unknown(|| async { self.register(handle, build()?).await }).await
    }

    /// `POST /v1/register` with the exact signed request bytes, once.
    pub async fn register(&self, handle: &Handle, request: Vec<u8>) -> Result<RegisterReply> {
        match self.post("/v1/register", request).await? {
            Ok(b) => self.parse("/v1/register", &b),
            Err(f) => Err(match f.code {
                Some(ErrorCode::HandleTaken) => ClientError::HandleTaken(handle.to_string()),
                Some(ErrorCode::HandleReserved) => ClientError::HandleReserved(handle.to_string()),
                Some(ErrorCode::KeyRegistered) => ClientError::KeyAlreadyRegistered,
                Some(ErrorCode::InvalidHandle) => ClientError::InvalidHandle(f.message),
                _ if f.status == 429 => {
                    ClientError::Server { code: f.code_text, message: format!("{} (try again in a minute)", f.message) }
                }
                _ => f.into_error(),
            }),
        }
    }
}
