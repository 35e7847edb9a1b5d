//! kez-auth-callout: the NATS auth-callout worker of kez-chat.
//!
//! End users connect to nats-server with their own identity key as an nkey (`U…`, PROTOCOL.md §1)
//! and sign the server's nonce. nats-server does **not** check signatures of nkeys it does not
//! know; it hands the connection to this worker (`$SYS.REQ.USER.AUTH`, account AUTH), which
//! verifies the signature, asks the registry whether the key is registered, and answers with a
//! user JWT that binds the connection to account `USERS` with the permissions of PROTOCOL.md
//! §9.5: the user can send through the inbox relay and read only their own device's consumer
//! (see [`permissions`]).
//!
//! ```no_run
//! # async fn demo(auth_conn: async_nats::Client, app_conn: async_nats::Client, issuer: nkeys::KeyPair)
//! # -> Result<(), kez_auth_callout::StartError> {
//! let handle = kez_auth_callout::start(auth_conn, app_conn, kez_auth_callout::CalloutConfig::new(issuer)).await?;
//! println!("{:?}", handle.stats());
//! handle.stop().await;
//! # Ok(()) }
//! ```
//!
//! [`start`] checks the deployment so that mistakes fail at start-up with a [`StartError`] saying what to fix, and registers the NATS
//! service `kez-auth-callout` with a `status` endpoint ([`STATUS_SUBJECT`], returns [`Stats`]) so
//! `nats micro list` shows it.
//!
//! The nats-server behaviour this relies on is written down in docs/nats-server.md.

pub mod connections;
pub mod natsjwt;
pub mod permissions;
pub mod registry;
pub mod stats;

mod authorize;
mod preflight;

use std::sync::Arc;

use connections::ConnectionLimit;
use std::time::{Duration, SystemTime};

use async_nats::service::Service;
use futures::{FutureExt as _, StreamExt as _};
use kez_service_kit::natsconf::USERS_ACCOUNT;
use kez_service_kit::svc;
use kv_schemas::subjects::service::AUTH_CALLOUT;
use kv_schemas::subjects::svc::REGISTRY_LOOKUP_KEY;
use nkeys::{KeyPair, KeyPairType};
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;
use tracing::{debug, error, info, warn};

pub use registry::{CachedRegistry, KeyRegistry, NatsRegistry, RegistryError};
pub use stats::{RejectReason, Stats};

use authorize::{Authorizer, Decision};
use stats::Counters;

/// Where nats-server publishes authorization requests (in the auth-callout account).
pub const AUTH_REQUEST_SUBJECT: &str = "$SYS.REQ.USER.AUTH";
/// Queue group of the workers: with several workers, exactly one answers each request.
pub const QUEUE_GROUP: &str = "kez-auth-callout";
/// The status endpoint (NATS service API, account APP): counters of accepted/rejected logins.
pub const STATUS_SUBJECT: &str = "kez.svc.auth.v1.status";

/// Shortest allowed user-JWT lifetime: shorter makes every client re-run the callout constantly.
pub const MIN_USER_JWT_LIFETIME: Duration = Duration::from_secs(60);
/// Longest allowed user-JWT lifetime: the lifetime is also how long an admitted connection
/// outlives a registry change (revocation), so it must stay bounded.
pub const MAX_USER_JWT_LIFETIME: Duration = Duration::from_secs(24 * 3600);

/// Settings of the worker.
#[derive(Debug, Clone)]
pub struct CalloutConfig {
    /// ACCOUNT key pair (with seed) whose public key is `authorization.auth_callout.issuer`.
    /// Signs the authorization responses and the user JWTs.
    pub issuer: KeyPair,
    /// Name of the account users are bound to (the user JWT's `aud`). Default `USERS`.
    pub target_account: String,
    /// User JWT lifetime: the connection is closed at expiry and the client re-authenticates
    /// (a fresh callout, so a key removed from the registry loses access within this time).
    /// Default 1 hour, bounded by [`MIN_USER_JWT_LIFETIME`]..=[`MAX_USER_JWT_LIFETIME`].
    pub user_jwt_lifetime: Duration,
    /// Up to this much is subtracted at random from each expiry, so users who connected together
    /// do not all re-authenticate in the same second. Default 1/10 of the default lifetime
    /// (6 minutes); at most half the lifetime.
    pub user_jwt_jitter: Duration,
    /// Timeout of the registry question. It must leave room inside the server's
    /// `authorization.timeout` (2 s) for the rest of the round trip. Default 1 s.
    pub registry_timeout: Duration,
    /// How long a "registered" answer is reused for further logins of the same key (see
    /// [`CachedRegistry`]); zero asks the registry on every login. Default 30 s, at most 10 min.
    pub registry_cache_ttl: Duration,
    /// Keys the registry cache holds at most. Default 100 000 (a few MB).
    pub registry_cache_capacity: usize,
    /// Requests handled concurrently; more wait in the subscription. Default 1024.
    pub max_in_flight: usize,
    /// Most simultaneous connections of one user (all devices and tabs together). Default 16.
    pub max_connections_per_user: usize,
    /// A system-account connection to follow connect/disconnect events; without it the
    /// per-user connection limit is not enforced (a warning says so at start).
    pub sys_conn: Option<async_nats::Client>,
}

impl CalloutConfig {
    /// Defaults for everything but the issuer.
    pub fn new(issuer: KeyPair) -> Self {
        Self {
            issuer,
            target_account: USERS_ACCOUNT.to_owned(),
            user_jwt_lifetime: Duration::from_secs(3600),
            user_jwt_jitter: Duration::from_secs(360),
            registry_timeout: Duration::from_secs(1),
            registry_cache_ttl: Duration::from_secs(30),
            registry_cache_capacity: 100_000,
            max_in_flight: 1024,
            max_connections_per_user: 16,
            sys_conn: None,
        }
    }

    /// Checks the settings without touching the network.
    pub fn validate(&self) -> Result<(), StartError> {
        let public = self.issuer.public_key();
        if self.issuer.key_pair_type() != KeyPairType::Account {
            return Err(StartError::IssuerNotAccount { found: format!("{:?}", self.issuer.key_pair_type()), public });
        }
        if self.issuer.seed().is_err() {
            return Err(StartError::IssuerWithoutSeed { public });
        }
        let bad = |m: String| Err(StartError::Config(m));
        if self.target_account.is_empty() || self.target_account.contains(char::is_whitespace) {
            return bad("target_account must be an account name such as \"USERS\"".into());
        }
        if !(MIN_USER_JWT_LIFETIME..=MAX_USER_JWT_LIFETIME).contains(&self.user_jwt_lifetime) {
            return bad(format!(
                "user_jwt_lifetime must be between {MIN_USER_JWT_LIFETIME:?} and {MAX_USER_JWT_LIFETIME:?}, got {:?}",
                self.user_jwt_lifetime
            ));
        }
        if self.user_jwt_jitter > self.user_jwt_lifetime / 2 {
            return bad("user_jwt_jitter must be at most half of user_jwt_lifetime".into());
        }
        if self.registry_timeout.is_zero() || self.registry_timeout > Duration::from_secs(10) {
            return bad("registry_timeout must be between 1 ms and 10 s (keep it below authorization.timeout)".into());
        }
        if self.registry_cache_ttl > Duration::from_secs(600) {
            return bad("registry_cache_ttl must be at most 10 minutes (it delays revocation)".into());
        }
        if self.registry_cache_capacity == 0 {
            return bad("registry_cache_capacity must be positive (set registry_cache_ttl to zero to disable)".into());
        }
        if self.max_in_flight == 0 {
            return bad("max_in_flight must be positive".into());
        }
        if self.max_connections_per_user == 0 {
            return bad("max_connections_per_user must be positive".into());
        }
        Ok(())
    }
}

/// Why the worker did not start. Each message says what the operator has to change.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// A setting is out of range.
    #[error("invalid auth-callout configuration: {0}")]
    Config(String),
    /// The issuer is not an account key.
    #[error(
        "the callout issuer {public} is a {found} key; it must be the ACCOUNT key (A…) whose public \
         key is authorization.auth_callout.issuer in nats.conf"
    )]
    IssuerNotAccount { found: String, public: String },
    /// The issuer has no seed.
    #[error("the callout issuer {public} is a public key only; the worker needs its seed (SA…) to sign user JWTs")]
    IssuerWithoutSeed { public: String },
    /// The server sends no nonce.
    #[error(
        "the server sends no nonce, so users' signatures would be replayable and every login would be \
         refused; configure at least one nkey user in nats.conf (the worker itself should be one)"
    )]
    NoNonce,
    /// `auth_conn` may not subscribe to the request subject.
    #[error(
        "auth_conn (user {user}, account {account}) may not subscribe to $SYS.REQ.USER.AUTH in queue group \
         kez-auth-callout; remove the subscribe restriction of the worker user in nats.conf"
    )]
    CannotSubscribe { user: String, account: String },
    /// `auth_conn` is in the wrong account.
    #[error(
        "auth_conn is user {user} in account {account}, which is not the auth-callout account (the server \
         publishes $SYS.REQ.USER.AUTH only in the account named by authorization.auth_callout.account); \
         connect auth_conn as the worker user of that account (AUTH)"
    )]
    NotCalloutAccount { user: String, account: String },
    /// Subscribing failed outright.
    #[error("subscribing to $SYS.REQ.USER.AUTH failed: {0}")]
    Subscribe(String),
    /// `app_conn` lacks a permission the worker needs.
    #[error("app_conn (user {user}, account {account}) may not {what}; grant it in nats.conf")]
    AppConnPermission { user: String, account: String, what: String },
    /// The server predates the auth callout.
    #[error("nats-server {version} is too old: the auth callout needs nats-server 2.10 or newer")]
    ServerTooOld { version: String },
    /// Registering the NATS service failed.
    #[error("registering the kez-auth-callout NATS service failed: {0}")]
    Service(String),
}

/// A running worker. Dropping it stops answering (in-flight requests finish); prefer [`stop`](Self::stop).
#[derive(Debug)]
pub struct CalloutHandle {
    counters: Arc<Counters>,
    worker: Option<JoinHandle<()>>,
    service: Option<Service>,
    issuer: String,
}

impl CalloutHandle {
    /// Counters since start-up.
    pub fn stats(&self) -> Stats {
        self.counters.snapshot()
    }

    /// Public key of the issuer this worker signs with.
    pub fn issuer_public_key(&self) -> &str {
        &self.issuer
    }

    /// Whether the request loop is still running (it ends only if `auth_conn` is closed for good).
    pub fn is_running(&self) -> bool {
        self.worker.as_ref().is_some_and(|w| !w.is_finished())
    }

    /// Stops answering requests (the subscription is dropped, so other workers of the queue group
    /// take over) and deregisters the service.
    pub async fn stop(mut self) {
        if let Some(w) = self.worker.take() {
            w.abort();
            let _ = w.await;
        }
        if let Some(s) = self.service.take()
            && let Err(e) = s.stop().await
        {
            debug!("stopping the service: {e}");
        }
    }
}

impl Drop for CalloutHandle {
    fn drop(&mut self) {
        if let Some(w) = self.worker.take() {
            w.abort();
        }
        if let Some(s) = self.service.take()
            && let Ok(rt) = tokio::runtime::Handle::try_current()
        {
            rt.spawn(async move {
                let _ = s.stop().await;
            });
        }
    }
}

/// Starts the worker with the registry service as the source of registered keys (behind a
/// [`CachedRegistry`] unless `registry_cache_ttl` is zero).
///
/// - `auth_conn`: the worker user of the auth-callout account (AUTH); requests arrive here.
/// - `app_conn`: a service user of account APP (the `auth-callout` service user): registry
///   questions, the inbox stream, the status endpoint.
pub async fn start(
    auth_conn: async_nats::Client,
    app_conn: async_nats::Client,
    config: CalloutConfig,
) -> Result<CalloutHandle, StartError> {
    let registry = NatsRegistry::new(app_conn.clone(), config.registry_timeout);
    if config.registry_cache_ttl.is_zero() {
        start_with_registry(auth_conn, app_conn, config, registry).await
    } else {
        let cached = CachedRegistry::new(registry, config.registry_cache_ttl, config.registry_cache_capacity);
        start_with_registry(auth_conn, app_conn, config, cached).await
    }
}

/// [`start`] with another source of registered keys (tests, or a cached registry).
pub async fn start_with_registry<R: KeyRegistry>(
    auth_conn: async_nats::Client,
    app_conn: async_nats::Client,
    config: CalloutConfig,
    registry: R,
) -> Result<CalloutHandle, StartError> {
    config.validate()?;
    let mut authorizer = Authorizer::new(
        &config.issuer,
        config.target_account.clone(),
        config.user_jwt_lifetime,
        config.user_jwt_jitter,
    )
    .map_err(|_| StartError::IssuerWithoutSeed { public: config.issuer.public_key() })?;
    match &config.sys_conn {
        Some(sys) => {
            let limit = Arc::new(ConnectionLimit::new(config.max_connections_per_user));
            limit.clone().follow(sys.clone(), &config.target_account).await.map_err(StartError::Subscribe)?;
            authorizer = authorizer.with_limit(limit);
        }
        None => warn!("no system-account connection: the per-user connection limit is not enforced"),
    }
    let authorizer = Arc::new(authorizer);

    // --- deployment checks (cheap, before anything is created) ---
    if auth_conn.server_info().nonce.is_empty() {
        return Err(StartError::NoNonce);
    }
    let auth_info = preflight::user_info(&auth_conn, "auth_conn").await;
    let app_info = preflight::user_info(&app_conn, "app_conn").await;
    if let Some(i) = &auth_info {
        let wrong_account =
            !i.publish_deny_lists(AUTH_REQUEST_SUBJECT) || app_info.as_ref().is_some_and(|a| a.account == i.account);
        if wrong_account {
            return Err(StartError::NotCalloutAccount { user: i.user.clone(), account: i.account.clone() });
        }
        if !i.may_subscribe(AUTH_REQUEST_SUBJECT, Some(QUEUE_GROUP)) {
            return Err(StartError::CannotSubscribe { user: i.user.clone(), account: i.account.clone() });
        }
    }
    if let Some(i) = &app_info {
        let needs = [
            (i.may_publish(REGISTRY_LOOKUP_KEY), format!("publish to {REGISTRY_LOOKUP_KEY} (the registry check)")),
            (
                i.may_subscribe(STATUS_SUBJECT, Some("q")),
                format!("subscribe to {STATUS_SUBJECT} (the status endpoint)"),
            ),
        ];
        if let Some((_, what)) = needs.into_iter().find(|(ok, _)| !ok) {
            return Err(StartError::AppConnPermission { user: i.user.clone(), account: i.account.clone(), what });
        }
    }
    if !app_conn.is_server_compatible(2, 10, 0) {
        return Err(StartError::ServerTooOld { version: app_conn.server_info().version });
    }
    // --- subscribe before advertising the service ---
    let subscription = auth_conn
        .queue_subscribe(AUTH_REQUEST_SUBJECT, QUEUE_GROUP.to_owned())
        .await
        .map_err(|e| StartError::Subscribe(e.to_string()))?;
    auth_conn.flush().await.map_err(|e| StartError::Subscribe(e.to_string()))?;

    let counters = Arc::new(Counters::default());
    let service =
        svc::start(&app_conn, AUTH_CALLOUT, "kez-chat auth callout: admits registered users to their own inbox")
            .await
            .map_err(|e| StartError::Service(e.to_string()))?;
    let status_counters = counters.clone();
    svc::serve(&service, "status", STATUS_SUBJECT, move |_body| {
        let snapshot = status_counters.snapshot();
        async move { svc::json_reply(&snapshot) }
    })
    .await
    .map_err(|e| StartError::Service(e.to_string()))?;

    let issuer = authorizer.issuer_public().to_owned();
    let worker = tokio::spawn(serve_requests(
        subscription,
        auth_conn,
        authorizer,
        Arc::new(registry),
        counters.clone(),
        Arc::new(Semaphore::new(config.max_in_flight)),
    ));
    info!(issuer = %issuer, queue = QUEUE_GROUP, "auth callout worker started");
    Ok(CalloutHandle { counters, worker: Some(worker), service: Some(service), issuer })
}

async fn serve_requests<R: KeyRegistry>(
    mut subscription: async_nats::Subscriber,
    client: async_nats::Client,
    authorizer: Arc<Authorizer>,
    registry: Arc<R>,
    counters: Arc<Counters>,
    permits: Arc<Semaphore>,
) {
    while let Some(msg) = subscription.next().await {
        let Some(reply_to) = msg.reply.clone() else {
            // Only the server publishes here, always with a reply subject.
            counters.rejected(RejectReason::InvalidRequest);
            continue;
        };
        let Ok(permit) = permits.clone().acquire_owned().await else { break };
        let (client, authorizer, registry, counters) =
            (client.clone(), authorizer.clone(), registry.clone(), counters.clone());
        // One task per request: signature checks and the registry round trip of different logins
        // overlap, and one slow registry answer does not hold up the others.
        tokio::spawn(async move {
            let started = std::time::Instant::now();
            let handled = std::panic::AssertUnwindSafe(authorizer.handle(&msg.payload, &*registry, SystemTime::now()))
                .catch_unwind()
                .await;
            counters.handled_in(started.elapsed());
            let reply = match handled {
                Ok(outcome) => {
                    record(&counters, &outcome.decision);
                    outcome.reply
                }
                Err(_) => {
                    // Defensive: nothing in handle() is meant to panic. An empty reply rejects.
                    error!("authorization handler panicked; login rejected");
                    counters.rejected(RejectReason::Internal);
                    bytes::Bytes::new()
                }
            };
            if let Err(e) = client.publish(reply_to, reply).await {
                counters.reply_failed();
                warn!("could not answer an authorization request: {e}");
            }
            drop(permit);
        });
    }
    error!("the $SYS.REQ.USER.AUTH subscription ended (auth_conn closed); this worker no longer admits users");
}

fn record(counters: &Counters, decision: &Decision) {
    match decision {
        Decision::Accepted { key, client } => {
            counters.accepted();
            debug!(user = %key, conn = %client.conn_type, host = %client.host, server = %client.server, "login admitted");
        }
        Decision::Rejected { reason, detail, client } => {
            counters.rejected(*reason);
            let (conn, host) = client.as_ref().map_or(("", ""), |c| (c.conn_type.as_str(), c.host.as_str()));
            match reason {
                // Operator problems: loud.
                RejectReason::IssuerMismatch
                | RejectReason::RegistryUnavailable
                | RejectReason::RegistryError
                | RejectReason::InvalidRequest
                | RejectReason::MissingNonce
                | RejectReason::Internal => warn!(%reason, conn, host, "login refused: {detail}"),
                // Client problems: expected under normal operation and under attack; keep quiet.
                _ => debug!(%reason, conn, host, "login refused: {detail}"),
            }
        }
    }
}
