//! One authorization request in, one answer out (docs/nats-server.md). No IO except the registry
//! question, so the whole decision is unit-testable with a fake server key.
//!
//! Checks, in order (the first failure decides the reason):
//! 1. the request is a JWT of at most [`natsjwt::MAX_TOKEN_LEN`] bytes, signed by a *server* nkey
//!    (`N…`) that is its own `iss`, with `nats.type == "authorization_request"`, `server_id.id ==
//!    iss`, a valid `user_nkey`, and not expired. Otherwise the request names nobody we could
//!    address a response to, and we answer with an empty payload (immediate rejection);
//! 2. the request was made for our issuer (`sub`), else the server would refuse our JWTs anyway;
//! 3. the client used an nkey (`connect_opts.nkey`, a `U…` key whose 32 bytes are a canonical,
//!    non-small-order Ed25519 point, PROTOCOL.md §2.1);
//! 4. it sent a signature, the server sent a nonce (a signature over "" would be replayable);
//! 5. the signature (base64url without padding, or padded standard base64 as nats.js sends) is
//!    64 bytes and verifies *strictly* over the ASCII nonce. nats-server does not check signatures
//!    of nkeys it does not know, so this check is the only one (docs/nats-server.md);
//! 6. the key is a registered primary key (registry `lookup_key`).
//!
//! Success: an `authorization_response` whose `nats.jwt` is a user JWT binding the connection to
//! account `APP` with the §9.1 permissions and a bounded `exp`. Failure: an `authorization_response`
//! with `nats.error` (the server logs it; the client only sees "Authorization Violation").

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use bytes::Bytes;
use kv_schemas::PublicKey;
use nkeys::{KeyPair, KeyPairType};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::connections::ConnectionLimit;
use crate::natsjwt;
use crate::permissions::{ALLOWED_CONNECTION_TYPES, UserPermissions};
use crate::registry::{KeyRegistry, RegistryError};
use crate::stats::RejectReason;
use kv_schemas::subjects::{DeviceId, device_from_connection_name};
use std::sync::Arc;

/// The `aud` nats-server puts on every authorization request (docs/nats-server.md).
const REQUEST_AUDIENCE: &str = "nats-authorization-request";
/// Clock skew tolerated on the request's `exp` (the server sets it to now + auth timeout).
const EXP_SKEW_SECS: i64 = 30;

/// The signing side of the worker.
#[derive(Debug, Clone)]
pub(crate) struct Authorizer {
    /// The issuer's seed as an ed25519-dalek key: faster than `KeyPair::sign` (see natsjwt::Signer).
    issuer: ed25519_dalek::SigningKey,
    issuer_public: String,
    target_account: String,
    lifetime: Duration,
    jitter: Duration,
    limit: Option<Arc<ConnectionLimit>>,
}

/// What the client connected with, for logs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ClientSummary {
    /// `nats` or `websocket`.
    pub conn_type: String,
    /// Remote address as the server saw it.
    pub host: String,
    /// Server that asked.
    pub server: String,
}

/// The verdict on one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Decision {
    Accepted { key: PublicKey, client: ClientSummary },
    Rejected { reason: RejectReason, detail: String, client: Option<ClientSummary> },
}

/// The reply payload to publish, and the verdict.
#[derive(Debug, Clone)]
pub(crate) struct Outcome {
    pub reply: Bytes,
    pub decision: Decision,
}

// ---- request claims (server/auth_callout.go, jwt/v2 authorization_claims.go) ----------------
// Every field has a default so that a missing optional field is judged by our checks with a
// clear reason instead of failing deserialisation; unknown fields are ignored (forward compat).

#[derive(Debug, Deserialize)]
struct RequestClaims {
    #[serde(default)]
    aud: String,
    #[serde(default)]
    sub: String,
    #[serde(default)]
    exp: Option<i64>,
    nats: RequestNats,
}

#[derive(Debug, Deserialize)]
struct RequestNats {
    #[serde(rename = "type", default)]
    kind: String,
    #[serde(default)]
    user_nkey: String,
    #[serde(default)]
    server_id: ServerId,
    #[serde(default)]
    client_info: ClientInfo,
    #[serde(default)]
    connect_opts: ConnectOpts,
}

#[derive(Debug, Default, Deserialize)]
struct ServerId {
    #[serde(default)]
    id: String,
    #[serde(default)]
    name: String,
}

#[derive(Debug, Default, Deserialize)]
struct ClientInfo {
    #[serde(default)]
    host: String,
    #[serde(rename = "type", default)]
    conn_type: String,
    #[serde(default)]
    nonce: String,
}

#[derive(Debug, Default, Deserialize)]
struct ConnectOpts {
    #[serde(default)]
    nkey: Option<String>,
    #[serde(default)]
    sig: Option<String>,
    #[serde(default)]
    jwt: Option<String>,
    #[serde(default)]
    user: Option<String>,
    #[serde(default)]
    auth_token: Option<String>,
    /// The client's connection name; `kez-device:<id>` names the device (PROTOCOL.md §9.5).
    #[serde(default)]
    name: Option<String>,
}

/// A request whose server signature verified.
struct Request {
    server_id: String,
    user_nkey: String,
    claims: RequestClaims,
}

impl Request {
    fn summary(&self) -> ClientSummary {
        let ci = &self.claims.nats.client_info;
        let name = &self.claims.nats.server_id.name;
        ClientSummary {
            conn_type: ci.conn_type.clone(),
            host: ci.host.clone(),
            server: if name.is_empty() { self.server_id.clone() } else { name.clone() },
        }
    }
}

struct Reject(RejectReason, String);

fn reject(reason: RejectReason, detail: impl Into<String>) -> Reject {
    Reject(reason, detail.into())
}

impl Authorizer {
    /// `issuer` must be a seeded key (checked by `CalloutConfig::validate`).
    pub(crate) fn new(
        issuer: &KeyPair,
        target_account: String,
        lifetime: Duration,
        jitter: Duration,
    ) -> Result<Self, natsjwt::JwtError> {
        Ok(Self {
            issuer: natsjwt::fast_signer(issuer)?,
            issuer_public: issuer.public_key(),
            target_account,
            lifetime,
            jitter,
            limit: None,
        })
    }

    /// Refuses logins of keys that already hold the most connections allowed.
    pub(crate) fn with_limit(mut self, limit: Arc<ConnectionLimit>) -> Self {
        self.limit = Some(limit);
        self
    }

    pub(crate) fn issuer_public(&self) -> &str {
        &self.issuer_public
    }

    /// Decides one request. Never panics; every path produces a reply (possibly empty).
    pub(crate) async fn handle<R: KeyRegistry>(&self, payload: &[u8], registry: &R, now: SystemTime) -> Outcome {
        let now_s = unix_secs(now);
        let request = match parse_request(payload, now_s) {
            Ok(r) => r,
            Err(Reject(reason, detail)) => {
                // Unverified: we cannot address a response to anyone. An empty reply makes the
                // server reject at once instead of after the auth timeout.
                return Outcome { reply: Bytes::new(), decision: Decision::Rejected { reason, detail, client: None } };
            }
        };
        match self.check_client(&request, registry).await {
            Ok(key) if self.limit.as_ref().is_some_and(|l| !l.try_admit(&key, &request.user_nkey)) => self.refuse(
                &request,
                reject(RejectReason::TooManyConnections, format!("{key} already holds the most connections allowed")),
                now_s,
            ),
            Ok(key) => match self.admit(&request, &key, now_s) {
                Ok(reply) => Outcome { reply, decision: Decision::Accepted { key, client: request.summary() } },
                Err(e) => self.refuse(&request, reject(RejectReason::Internal, e.to_string()), now_s),
            },
            Err(r) => self.refuse(&request, r, now_s),
        }
    }

    async fn check_client<R: KeyRegistry>(&self, req: &Request, registry: &R) -> Result<PublicKey, Reject> {
        if req.claims.sub != self.issuer_public {
            return Err(reject(
                RejectReason::IssuerMismatch,
                format!(
                    "the server's auth_callout.issuer is {} but this worker signs with {}; \
                     give the worker the seed of the configured issuer",
                    req.claims.sub, self.issuer_public
                ),
            ));
        }
        let opts = &req.claims.nats.connect_opts;
        let nkey = match opts.nkey.as_deref().filter(|s| !s.is_empty()) {
            Some(n) => n,
            None => {
                let used = if opts.jwt.as_deref().is_some_and(|s| !s.is_empty()) {
                    "a JWT"
                } else if opts.user.as_deref().is_some_and(|s| !s.is_empty()) {
                    "a user name"
                } else if opts.auth_token.as_deref().is_some_and(|s| !s.is_empty()) {
                    "a token"
                } else {
                    "no credentials"
                };
                return Err(reject(RejectReason::NkeyRequired, format!("nkey required; the client sent {used}")));
            }
        };
        let key = user_nkey_to_key(nkey).map_err(|d| reject(RejectReason::InvalidNkey, d))?;
        let sig = opts
            .sig
            .as_deref()
            .filter(|s| !s.is_empty())
            .ok_or_else(|| reject(RejectReason::MissingSignature, format!("no nonce signature from {key}")))?;
        let nonce = req.claims.nats.client_info.nonce.as_str();
        if nonce.is_empty() {
            return Err(reject(
                RejectReason::MissingNonce,
                "the server sent no nonce, so the signature would be replayable; \
                 configure at least one nkey user in nats.conf",
            ));
        }
        let sig = decode_signature(sig).ok_or_else(|| {
            reject(RejectReason::BadSignature, format!("signature of {key} is not 64 bytes of base64"))
        })?;
        key.verify_strict(nonce.as_bytes(), &sig).map_err(|_| {
            reject(RejectReason::BadSignature, format!("signature of {key} does not verify over the nonce"))
        })?;
        match registry.is_registered(&key).await {
            Ok(true) => Ok(key),
            Ok(false) => Err(reject(RejectReason::Unregistered, format!("{key} is not a registered key"))),
            Err(RegistryError::Unavailable(e)) => {
                Err(reject(RejectReason::RegistryUnavailable, format!("registry unavailable ({e})")))
            }
            Err(e @ RegistryError::Unexpected(_)) => Err(reject(RejectReason::RegistryError, e.to_string())),
        }
    }

    /// The authorization response carrying the user JWT.
    fn admit(&self, req: &Request, key: &PublicKey, now_s: i64) -> Result<Bytes, natsjwt::JwtError> {
        let device = req.claims.nats.connect_opts.name.as_deref().and_then(device_from_connection_name);
        let user_jwt = self.user_jwt(&req.user_nkey, key, device.as_ref(), now_s)?;
        self.response(req, json!({ "jwt": user_jwt }), now_s)
    }

    /// The user JWT (docs/nats-server.md): addressed to the server-generated `user_nkey`, bound to the
    /// target account by name, with exactly the §9.1 permissions and no `resp` permission.
    pub(crate) fn user_jwt(
        &self,
        user_nkey: &str,
        key: &PublicKey,
        device: Option<&DeviceId>,
        now_s: i64,
    ) -> Result<String, natsjwt::JwtError> {
        let perms = UserPermissions::for_key(key, device);
        let (pub_claim, sub_claim) = perms.to_claims();
        let lifetime = self.lifetime.as_secs() as i64;
        // Spread expiries so that users who connected together (e.g. after a restart) do not all
        // come back to the callout in the same second an hour later.
        let jitter = random_below(self.jitter.as_secs()) as i64;
        let hex = key.hex();
        let claims = object(json!({
            "jti": natsjwt::new_jti(),
            "iat": now_s,
            "exp": now_s + lifetime - jitter,
            "iss": self.issuer_public,
            "sub": user_nkey,
            "aud": self.target_account,
            // The whole key: connection events carry this name, and the per-user connection
            // limit counts by it.
            "name": format!("kez:{hex}"),
            "nats": {
                "pub": pub_claim,
                "sub": sub_claim,
                "allowed_connection_types": ALLOWED_CONNECTION_TYPES,
                "type": "user",
                "version": 2,
            },
        }));
        natsjwt::encode(&self.issuer, &claims)
    }

    fn refuse(&self, req: &Request, Reject(reason, detail): Reject, now_s: i64) -> Outcome {
        let message = format!("kez-auth-callout: {reason}: {detail}");
        let reply = match self.response(req, json!({ "error": message }), now_s) {
            Ok(r) => r,
            Err(_) => Bytes::new(),
        };
        Outcome { reply, decision: Decision::Rejected { reason, detail, client: Some(req.summary()) } }
    }

    /// An `authorization_response` (docs/nats-server.md): sub = user_nkey, aud = server id, signed by the
    /// issuer; `extra` is `{"jwt": …}` or `{"error": …}`.
    fn response(&self, req: &Request, extra: Value, now_s: i64) -> Result<Bytes, natsjwt::JwtError> {
        let mut nats = object(json!({ "type": "authorization_response", "version": 2 }));
        nats.extend(object(extra));
        let claims = object(json!({
            "jti": natsjwt::new_jti(),
            "iat": now_s,
            "iss": self.issuer_public,
            "sub": req.user_nkey,
            "aud": req.server_id,
            "nats": nats,
        }));
        natsjwt::encode(&self.issuer, &claims).map(Bytes::from)
    }
}

fn parse_request(payload: &[u8], now_s: i64) -> Result<Request, Reject> {
    if payload.starts_with(b"xkv1") {
        return Err(reject(
            RejectReason::InvalidRequest,
            "the request is encrypted (auth_callout.xkey is set) but this worker has no xkey; \
             remove xkey from nats.conf",
        ));
    }
    if payload.len() > natsjwt::MAX_TOKEN_LEN {
        return Err(reject(RejectReason::InvalidRequest, format!("request of {} bytes is too large", payload.len())));
    }
    let token =
        std::str::from_utf8(payload).map_err(|_| reject(RejectReason::InvalidRequest, "request is not UTF-8"))?;
    let verified =
        natsjwt::decode_verify(token.trim()).map_err(|e| reject(RejectReason::InvalidRequest, e.to_string()))?;
    if verified.issuer_type != KeyPairType::Server {
        return Err(reject(
            RejectReason::InvalidRequest,
            format!("request issuer {} is not a server key", verified.issuer),
        ));
    }
    let claims: RequestClaims = serde_json::from_value(Value::Object(verified.claims))
        .map_err(|e| reject(RejectReason::InvalidRequest, format!("request claims: {e}")))?;
    if claims.nats.kind != "authorization_request" {
        return Err(reject(RejectReason::InvalidRequest, format!("nats.type is {:?}", claims.nats.kind)));
    }
    if claims.nats.server_id.id != verified.issuer {
        return Err(reject(RejectReason::InvalidRequest, "server_id.id differs from the signing server key"));
    }
    match nkeys::from_public_key(&claims.nats.user_nkey) {
        Ok((_, _)) if claims.nats.user_nkey.starts_with('U') => {}
        _ => return Err(reject(RejectReason::InvalidRequest, "nats.user_nkey is not a user nkey")),
    }
    // A request JWT is meant for the callout alone: another signed token of the
    // server (a different audience) is not a login request.
    if claims.aud != REQUEST_AUDIENCE {
        return Err(reject(RejectReason::InvalidRequest, format!("request aud is {:?}", claims.aud)));
    }
    // nats-server always bounds a request by the auth timeout; one without `exp`
    // would stay valid for ever if it were ever captured.
    let Some(exp) = claims.exp else {
        return Err(reject(RejectReason::InvalidRequest, "request has no exp"));
    };
    if exp + EXP_SKEW_SECS < now_s {
        return Err(reject(RejectReason::InvalidRequest, "request expired (the server has given up on it)"));
    }
    Ok(Request { server_id: verified.issuer, user_nkey: claims.nats.user_nkey.clone(), claims })
}

/// `U…` → the identity key (PROTOCOL.md §1: the same 32 bytes), rejecting other nkey kinds and
/// keys that fail the §2.1 point checks.
pub(crate) fn user_nkey_to_key(nkey: &str) -> Result<PublicKey, String> {
    let (prefix, raw) = nkeys::from_public_key(nkey).map_err(|_| "nkey is not a valid public nkey".to_owned())?;
    if KeyPairType::from(prefix) != KeyPairType::User || !nkey.starts_with('U') {
        return Err("nkey is not a user nkey (U…)".to_owned());
    }
    PublicKey::from_bytes(raw).map_err(|e| format!("nkey: {}", e.message))
}

/// nats-server and async-nats use base64url without padding; nats.js sends padded standard
/// base64. The server accepts both, so do we.
fn decode_signature(sig: &str) -> Option<[u8; 64]> {
    if sig.len() > 128 {
        return None;
    }
    let bytes = URL_SAFE_NO_PAD.decode(sig).or_else(|_| STANDARD.decode(sig)).ok()?;
    bytes.try_into().ok()
}

fn unix_secs(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

/// Uniform-enough in `0..=max` (modulo bias is irrelevant for expiry spreading).
fn random_below(max: u64) -> u64 {
    if max == 0 {
        return 0;
    }
    u64::from_le_bytes(kv_schemas::random_bytes::<8>()) % (max + 1)
}

fn object(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

#[cfg(test)]
mod fuzz;

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::collections::HashSet;
    use std::sync::Mutex;

    /// A fake registry with a fixed answer set.
    struct Fixed {
        keys: HashSet<PublicKey>,
        down: bool,
        asked: Mutex<u32>,
    }

    impl KeyRegistry for Fixed {
        async fn is_registered(&self, key: &PublicKey) -> Result<bool, RegistryError> {
            *self.asked.lock().unwrap() += 1;
            if self.down {
                return Err(RegistryError::Unavailable("no responders".into()));
            }
            Ok(self.keys.contains(key))
        }
    }

    struct World {
        server: KeyPair,
        issuer: KeyPair,
        auth: Authorizer,
        user: KeyPair,
        key: PublicKey,
        registry: Fixed,
        now: SystemTime,
    }

    const HOUR: Duration = Duration::from_secs(3600);

    fn world() -> World {
        let issuer = KeyPair::new_account();
        let user = KeyPair::new_user();
        let key = user_nkey_to_key(&user.public_key()).unwrap();
        World {
            server: KeyPair::new_server(),
            auth: Authorizer::new(&issuer, "USERS".into(), HOUR, Duration::ZERO).unwrap(),
            issuer,
            registry: Fixed { keys: [key].into(), down: false, asked: Mutex::new(0) },
            user,
            key,
            now: UNIX_EPOCH + Duration::from_secs(1_800_000_000),
        }
    }

    /// The request as nats-server 2.15.1 builds it (docs/nats-server.md, "auth callout").
    fn request_claims(w: &World, user_nkey: &str, nonce: &str, sig: Option<String>) -> Map<String, Value> {
        let now = unix_secs(w.now);
        let mut connect_opts = json!({"nkey": w.user.public_key(), "name": "kez-device:0123456789abcdef", "lang": "rust", "version": "0.51.0", "protocol": 1});
        if let Some(sig) = sig {
            connect_opts["sig"] = json!(sig);
        }
        let mut client_info =
            json!({"host": "127.0.0.1", "id": 7, "user": w.user.public_key(), "kind": "Client", "type": "websocket"});
        if !nonce.is_empty() {
            client_info["nonce"] = json!(nonce);
        }
        object(json!({
            "aud": "nats-authorization-request",
            "jti": "x",
            "iat": now,
            "exp": now + 2,
            "iss": w.server.public_key(),
            "sub": w.issuer.public_key(),
            "nats": {
                "server_id": {"name": "kez-test", "host": "127.0.0.1", "id": w.server.public_key(), "version": "2.15.1"},
                "user_nkey": user_nkey,
                "client_info": client_info,
                "connect_opts": connect_opts,
                "type": "authorization_request",
                "version": 2,
            }
        }))
    }

    fn signed_request(w: &World, claims: &Map<String, Value>) -> Vec<u8> {
        natsjwt::encode(&w.server, claims).unwrap().into_bytes()
    }

    fn good_request(w: &World, user_nkey: &str) -> Vec<u8> {
        let nonce = "Xyz_-0123456789";
        let sig = URL_SAFE_NO_PAD.encode(w.user.sign(nonce.as_bytes()).unwrap());
        signed_request(w, &request_claims(w, user_nkey, nonce, Some(sig)))
    }

    async fn run(w: &World, payload: &[u8]) -> Outcome {
        w.auth.handle(payload, &w.registry, w.now).await
    }

    fn response_claims(o: &Outcome, w: &World) -> Map<String, Value> {
        let v = natsjwt::decode_verify(std::str::from_utf8(&o.reply).unwrap()).unwrap();
        assert_eq!(v.issuer, w.issuer.public_key());
        v.claims
    }

    fn rejected_reason(o: &Outcome) -> RejectReason {
        match &o.decision {
            Decision::Rejected { reason, .. } => *reason,
            d => panic!("expected a rejection, got {d:?}"),
        }
    }

    #[tokio::test]
    async fn admits_a_registered_user_with_an_exact_user_jwt() {
        let w = world();
        let user_nkey = KeyPair::new_user().public_key();
        let o = run(&w, &good_request(&w, &user_nkey)).await;
        assert_eq!(
            o.decision,
            Decision::Accepted {
                key: w.key,
                client: ClientSummary {
                    conn_type: "websocket".into(),
                    host: "127.0.0.1".into(),
                    server: "kez-test".into()
                }
            }
        );

        // The response: for the server-generated user nkey, to this server, from the issuer.
        let resp = response_claims(&o, &w);
        let now = unix_secs(w.now);
        assert_eq!(resp["sub"], user_nkey.as_str());
        assert_eq!(resp["aud"], w.server.public_key().as_str());
        assert_eq!(resp["iss"], w.issuer.public_key().as_str());
        assert_eq!(resp["iat"], now);
        assert_eq!(resp["nats"]["type"], "authorization_response");
        assert_eq!(resp["nats"]["version"], 2);
        assert!(resp["nats"].get("error").is_none());
        assert_eq!(resp.keys().collect::<Vec<_>>(), ["aud", "iat", "iss", "jti", "nats", "sub"]);

        // The user JWT inside: verified against the issuer, every claim pinned.
        let user = natsjwt::decode_verify(resp["nats"]["jwt"].as_str().unwrap()).unwrap();
        assert_eq!(user.issuer, w.issuer.public_key());
        let c = user.claims;
        let hex = w.key.hex();
        assert_eq!(c["sub"], user_nkey.as_str());
        assert_eq!(c["aud"], "USERS");
        assert_eq!(c["name"], format!("kez:{hex}"));
        assert_eq!(c["iat"], now);
        assert_eq!(c["exp"], now + 3600, "exp is exactly iat + lifetime when jitter is off");
        assert_eq!(c.keys().collect::<Vec<_>>(), ["aud", "exp", "iat", "iss", "jti", "name", "nats", "sub"]);
        assert_eq!(
            c["nats"],
            json!({
                "pub": {"allow": [
                    format!("kez.u.{hex}.>"),
                    format!("$JS.API.CONSUMER.MSG.NEXT.KEZ_INBOX.{hex}_0123456789abcdef"),
                    format!("$JS.ACK.KEZ_INBOX.{hex}_0123456789abcdef.>"),
                ]},
                "sub": {"allow": [format!("_INBOX.{hex}.>")]},
                "allowed_connection_types": ["STANDARD", "WEBSOCKET"],
                "type": "user",
                "version": 2,
            }),
            "no resp, no deny, no issuer_account, nothing else"
        );
    }

    #[tokio::test]
    async fn expiry_is_bounded_with_jitter() {
        let mut w = world();
        w.auth = Authorizer::new(&w.issuer, "USERS".into(), HOUR, Duration::from_secs(360)).unwrap();
        let now = unix_secs(w.now);
        let mut seen = HashSet::new();
        for _ in 0..50 {
            let o = run(&w, &good_request(&w, &KeyPair::new_user().public_key())).await;
            let resp = response_claims(&o, &w);
            let user = natsjwt::decode_claims_unverified(resp["nats"]["jwt"].as_str().unwrap()).unwrap();
            let exp = user["exp"].as_i64().unwrap();
            assert!((now + 3600 - 360..=now + 3600).contains(&exp), "exp {exp} out of bounds");
            seen.insert(exp);
        }
        assert!(seen.len() > 1, "jitter had no effect");
    }

    #[tokio::test]
    async fn padded_standard_base64_signature_is_accepted() {
        let w = world();
        let nonce = "AbCdEfGhIjKlMnO";
        let sig = STANDARD.encode(w.user.sign(nonce.as_bytes()).unwrap());
        assert!(sig.ends_with("=="));
        let req = signed_request(&w, &request_claims(&w, &KeyPair::new_user().public_key(), nonce, Some(sig)));
        assert!(matches!(run(&w, &req).await.decision, Decision::Accepted { .. }));
    }

    #[tokio::test]
    async fn client_failures_get_a_signed_error_response() {
        let w = world();
        let user_nkey = KeyPair::new_user().public_key();
        let nonce = "Xyz_-0123456789";
        let good_sig = URL_SAFE_NO_PAD.encode(w.user.sign(nonce.as_bytes()).unwrap());
        let other_sig = URL_SAFE_NO_PAD.encode(w.user.sign(b"another-nonce-1").unwrap());

        let mut cases: Vec<(RejectReason, Map<String, Value>)> = vec![
            (RejectReason::MissingSignature, request_claims(&w, &user_nkey, nonce, None)),
            (RejectReason::MissingNonce, request_claims(&w, &user_nkey, "", Some(good_sig.clone()))),
            (RejectReason::BadSignature, request_claims(&w, &user_nkey, nonce, Some(other_sig))),
            (RejectReason::BadSignature, request_claims(&w, &user_nkey, nonce, Some("AQID".into()))),
            (RejectReason::BadSignature, request_claims(&w, &user_nkey, nonce, Some("!!not base64!!".into()))),
            (RejectReason::BadSignature, request_claims(&w, &user_nkey, nonce, Some("A".repeat(10_000)))),
        ];
        // A valid signature over the nonce, but by another key than the claimed nkey (and the
        // other way round): both fail the signature check before the registry is asked.
        let mut c = request_claims(&w, &user_nkey, nonce, Some(good_sig.clone()));
        c["nats"]["connect_opts"]["nkey"] = json!(KeyPair::new_user().public_key());
        cases.push((RejectReason::BadSignature, c));
        let forged = URL_SAFE_NO_PAD.encode(KeyPair::new_user().sign(nonce.as_bytes()).unwrap());
        cases.push((RejectReason::BadSignature, request_claims(&w, &user_nkey, nonce, Some(forged))));
        // Password / token / JWT clients.
        for (field, value) in [("user", "alice"), ("auth_token", "t"), ("jwt", "eyJ...")] {
            let mut c = request_claims(&w, &user_nkey, nonce, None);
            c["nats"]["connect_opts"].as_object_mut().unwrap().remove("nkey");
            c["nats"]["connect_opts"][field] = json!(value);
            cases.push((RejectReason::NkeyRequired, c));
        }
        // Non-user nkeys and garbage.
        for nkey in
            [KeyPair::new_account().public_key(), KeyPair::new_server().public_key(), "UABC".into(), String::new()]
        {
            let mut c = request_claims(&w, &user_nkey, nonce, Some(good_sig.clone()));
            c["nats"]["connect_opts"]["nkey"] = json!(nkey);
            let want = if nkey.is_empty() { RejectReason::NkeyRequired } else { RejectReason::InvalidNkey };
            cases.push((want, c));
        }
        // Wrong issuer.
        let mut c = request_claims(&w, &user_nkey, nonce, Some(good_sig.clone()));
        c["sub"] = json!(KeyPair::new_account().public_key());
        cases.push((RejectReason::IssuerMismatch, c));

        for (want, claims) in cases {
            let o = run(&w, &signed_request(&w, &claims)).await;
            assert_eq!(rejected_reason(&o), want, "{claims:?}");
            let resp = response_claims(&o, &w);
            assert_eq!(resp["sub"], user_nkey.as_str());
            assert_eq!(resp["aud"], w.server.public_key().as_str());
            assert!(resp["nats"].get("jwt").is_none());
            let err = resp["nats"]["error"].as_str().unwrap();
            assert!(err.starts_with(&format!("kez-auth-callout: {want}: ")), "{err}");
        }
    }

    #[tokio::test]
    async fn small_order_nkey_is_refused_before_anything_else() {
        let w = world();
        // The identity point encoded as a U-nkey: valid nkey checksum, invalid identity key.
        let mut id = [0u8; 32];
        id[0] = 1;
        assert!(user_nkey_to_key(&encode_user_nkey(id)).unwrap_err().contains("small-order"));
        let mut c = request_claims(&w, &KeyPair::new_user().public_key(), "Xyz_-0123456789", Some("x".into()));
        c["nats"]["connect_opts"]["nkey"] = json!(encode_user_nkey(id));
        let o = run(&w, &signed_request(&w, &c)).await;
        assert_eq!(rejected_reason(&o), RejectReason::InvalidNkey);
        assert_eq!(*w.registry.asked.lock().unwrap(), 0);
    }

    #[tokio::test]
    async fn registry_answers_map_to_reasons() {
        let mut w = world();
        w.registry.keys.clear();
        let o = run(&w, &good_request(&w, &KeyPair::new_user().public_key())).await;
        assert_eq!(rejected_reason(&o), RejectReason::Unregistered);
        w.registry.down = true;
        let o = run(&w, &good_request(&w, &KeyPair::new_user().public_key())).await;
        assert_eq!(rejected_reason(&o), RejectReason::RegistryUnavailable);
        let err = response_claims(&o, &w)["nats"]["error"].as_str().unwrap().to_owned();
        assert!(err.contains("registry unavailable"), "{err}");
    }

    #[tokio::test]
    async fn unverifiable_requests_get_an_empty_reply() {
        let w = world();
        let user_nkey = KeyPair::new_user().public_key();
        let good = request_claims(&w, &user_nkey, "Xyz_-0123456789", Some("x".into()));
        let mut payloads: Vec<Vec<u8>> = vec![
            Vec::new(),
            b"garbage".to_vec(),
            b"xkv1\x00\x01sealed".to_vec(),
            vec![0xff; 100],
            vec![b'e'; natsjwt::MAX_TOKEN_LEN + 1],
            // Signed by an account key, not a server.
            natsjwt::encode(&KeyPair::new_account(), &{
                let mut c = good.clone();
                c["iss"] = json!(w.issuer.public_key());
                c
            })
            .unwrap()
            .into_bytes(),
            // Valid signature, but the claims say another server.
            signed_request(&w, &{
                let mut c = good.clone();
                c["nats"]["server_id"]["id"] = json!(KeyPair::new_server().public_key());
                c
            }),
        ];
        for (path, value) in [
            ("type", json!("authorization_response")),
            ("user_nkey", json!(KeyPair::new_account().public_key())),
            ("user_nkey", json!(7)),
            ("connect_opts", json!("x")),
        ] {
            let mut c = good.clone();
            c["nats"][path] = value;
            payloads.push(signed_request(&w, &c));
        }
        let mut c = good.clone();
        c["exp"] = json!(unix_secs(w.now) - 3600);
        payloads.push(signed_request(&w, &c));
        // No exp, or an audience other than the callout's.
        let mut c = good.clone();
        c.remove("exp");
        payloads.push(signed_request(&w, &c));
        for aud in [json!("nats-authorization-response"), json!("APP"), json!(["nats-authorization-request"])] {
            let mut c = good.clone();
            c["aud"] = aud;
            payloads.push(signed_request(&w, &c));
        }
        let mut c = good.clone();
        c.remove("aud");
        payloads.push(signed_request(&w, &c));
        let mut c = good.clone();
        c.remove("nats");
        payloads.push(signed_request(&w, &c));

        for p in payloads {
            let o = run(&w, &p).await;
            assert_eq!(rejected_reason(&o), RejectReason::InvalidRequest, "{}", String::from_utf8_lossy(&p));
            assert!(o.reply.is_empty());
        }
        assert_eq!(*w.registry.asked.lock().unwrap(), 0);
    }

    #[tokio::test]
    async fn mutated_requests_never_panic_nor_admit() {
        let w = world();
        let good = good_request(&w, &KeyPair::new_user().public_key());
        let good_claims = natsjwt::decode_claims_unverified(std::str::from_utf8(&good).unwrap()).unwrap();
        // xorshift: deterministic, no extra dependency.
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for i in 0..3000 {
            let mut p = good.clone();
            match i % 4 {
                0 => {
                    let at = next() as usize % p.len();
                    p[at] ^= 1 << (next() % 8);
                }
                1 => p.truncate(next() as usize % p.len()),
                2 => {
                    let at = next() as usize % p.len();
                    p.insert(at, (next() % 256) as u8);
                }
                _ => {
                    // Re-signed claims with one field replaced by junk: passes the server-signature
                    // check, so it exercises the claim handling.
                    let mut c = good_claims.clone();
                    let junk = [json!(null), json!(-1), json!("x"), json!([]), json!({}), json!(u64::MAX), json!(1.5)];
                    let v = junk[next() as usize % junk.len()].clone();
                    match next() % 6 {
                        0 => c["nats"]["client_info"]["nonce"] = v,
                        1 => c["nats"]["connect_opts"]["sig"] = v,
                        2 => c["nats"]["connect_opts"]["nkey"] = v,
                        3 => c["exp"] = v,
                        4 => c["sub"] = v,
                        _ => c["nats"]["server_id"] = v,
                    }
                    p = signed_request(&w, &c);
                }
            }
            let o = run(&w, &p).await;
            if o.reply.is_empty() {
                continue;
            }
            // Any non-empty reply is a response signed by us; a mutation must never be admitted,
            // except one that changed nothing the checks look at.
            let resp = response_claims(&o, &w);
            if let Decision::Accepted { key, .. } = o.decision {
                assert_eq!(key, w.key);
                assert!(resp["nats"]["jwt"].is_string());
            }
        }
    }

    /// nkeys has no public raw→`U…` encoder; build one for the test (prefix, payload, CRC-16/XMODEM LE, base32).
    fn encode_user_nkey(raw: [u8; 32]) -> String {
        let mut data = vec![20u8 << 3];
        data.extend_from_slice(&raw);
        let mut crc: u16 = 0;
        for b in &data {
            crc ^= (*b as u16) << 8;
            for _ in 0..8 {
                crc = if crc & 0x8000 != 0 { (crc << 1) ^ 0x1021 } else { crc << 1 };
            }
        }
        data.extend_from_slice(&crc.to_le_bytes());
        base32_nopad(&data)
    }

    fn base32_nopad(data: &[u8]) -> String {
        const A: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
        let mut out = String::new();
        let (mut buf, mut bits) = (0u32, 0u32);
        for &b in data {
            buf = (buf << 8) | b as u32;
            bits += 8;
            while bits >= 5 {
                out.push(A[((buf >> (bits - 5)) & 31) as usize] as char);
                bits -= 5;
            }
        }
        if bits > 0 {
            out.push(A[((buf << (5 - bits)) & 31) as usize] as char);
        }
        out
    }

    #[test]
    fn test_encoder_matches_nkeys() {
        let kp = KeyPair::new_user();
        let (_, raw) = nkeys::from_public_key(&kp.public_key()).unwrap();
        assert_eq!(encode_user_nkey(raw), kp.public_key());
    }
}
