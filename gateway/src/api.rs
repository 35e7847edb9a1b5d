//! The HTTP API: one handler per route, each sending one request of the typed
//! service contract (`kv_schemas::api::ServiceRequest`, PROTOCOL.md §9) and mapping
//! the reply; `/v1/u/{handle}` is the one route that composes two (the registry
//! record and the sigchain's endpoints). Handlers validate only what is cheap and
//! shape-level (path keys, the link's `chain`); every rule of the protocol is
//! enforced by the services.

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, FromRequestParts, RawQuery, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, get, post, put};
use kv_schemas::api::{
    AppendLink, ByHash, GetChain, GetChainState, LookupHandle, LookupKey, ManifestByOwner, PutManifest,
    SignedRegistration, UserView, WebfingerQuery,
};
use kv_schemas::encoding::is_hash;
use kv_schemas::{ErrorCode, Handle};
use serde::{Deserialize, Serialize};
use tower_http::cors::{AllowOrigin, Any, CorsLayer};

use crate::config::ConfigError;
use crate::error::{ApiError, Body, KeyPath, Segment};
use crate::state::AppState;

/// Every route of the API as `(method, path template)`. [`crate::app`]
/// mounts exactly these, and `openapi.json` documents exactly these (both
/// are checked by tests).
pub const API_ROUTES: &[(&str, &str)] = &[
    ("GET", "/v1/healthz"),
    ("GET", "/v1/metrics"),
    ("GET", "/v1/config"),
    ("GET", "/v1/openapi.json"),
    ("POST", "/v1/register"),
    ("GET", "/v1/u/{handle}"),
    ("GET", "/v1/keys/ed25519/{hex}"),
    ("GET", "/v1/sigchains/ed25519/{hex}"),
    ("GET", "/v1/sigchains/ed25519/{hex}/state"),
    ("POST", "/v1/sigchains/ed25519/{hex}/events"),
    ("PUT", "/v1/manifests"),
    ("GET", "/v1/manifests/{hash}"),
    ("GET", "/v1/manifests/by-owner/ed25519/{hex}"),
    ("GET", "/.well-known/webfinger"),
];

/// The hand-written OpenAPI 3.1 document (`servers` is filled in at startup).
const OPENAPI: &str = include_str!("../openapi.json");

/// The served OpenAPI document, with `servers` set to the public URL. A document that does
/// not parse refuses to start the gateway rather than being served unchanged.
pub(crate) fn openapi_document(public_url: &str) -> Result<Bytes, ConfigError> {
    let refuse = |e: serde_json::Error| ConfigError { field: "openapi.json", reason: e.to_string() };
    let mut doc = serde_json::from_str::<serde_json::Value>(OPENAPI).map_err(refuse)?;
    doc["servers"] = serde_json::json!([{ "url": public_url }]);
    serde_json::to_vec_pretty(&doc).map(Bytes::from).map_err(refuse)
}

/// Collects routes and remembers what was mounted, so the table above and
/// the router cannot drift apart unnoticed.
struct Mount {
    router: Router<AppState>,
    mounted: Vec<(&'static str, &'static str)>,
}

impl Mount {
    fn add(mut self, method: &'static str, path: &'static str, handler: MethodRouter<AppState>) -> Self {
        self.mounted.push((method, path));
        self.router = self.router.route(path, handler);
        self
    }
}

/// The API routes with their per-route body limits and CORS rules.
pub(crate) fn routes(state: &AppState) -> Router<AppState> {
    let config = state.config();
    let cap = |bound: usize| DefaultBodyLimit::max(bound.min(config.max_body_bytes));
    let v1 = Mount { router: Router::new(), mounted: Vec::new() }
        .add("GET", "/v1/healthz", get(healthz))
        .add("GET", "/v1/metrics", get(metrics))
        .add("GET", "/v1/config", get(client_config))
        .add("GET", "/v1/openapi.json", get(openapi))
        .add("POST", "/v1/register", post(register).layer(cap(kv_schemas::register::MAX_BYTES)))
        .add("GET", "/v1/u/{handle}", get(user))
        .add("GET", "/v1/keys/ed25519/{hex}", get(lookup_key))
        .add("GET", "/v1/sigchains/ed25519/{hex}", get(chain_get))
        .add("GET", "/v1/sigchains/ed25519/{hex}/state", get(chain_state))
        .add(
            "POST",
            "/v1/sigchains/ed25519/{hex}/events",
            post(chain_append).layer(cap(kv_schemas::sigchain::MAX_LINK_BYTES)),
        )
        .add("PUT", "/v1/manifests", put(manifest_put).layer(cap(kv_schemas::manifest::MAX_MANIFEST_BYTES)))
        .add("GET", "/v1/manifests/{hash}", get(manifest_get))
        .add("GET", "/v1/manifests/by-owner/ed25519/{hex}", get(manifest_by_owner));

    let wf = Mount { router: Router::new(), mounted: v1.mounted }.add("GET", "/.well-known/webfinger", get(webfinger));
    debug_assert_eq!(sorted(wf.mounted.clone()), sorted(API_ROUTES.to_vec()), "API_ROUTES and the router disagree");
    // RFC 7033 §5: WebFinger resources are public, any origin may read them.
    let webfinger = wf
        .router
        .method_not_allowed_fallback(crate::method_not_allowed)
        .layer(CorsLayer::new().allow_origin(Any).allow_methods([axum::http::Method::GET]));

    // Before any layer: the wrong-method answer must get the CORS headers too.
    let mut api = v1.router.method_not_allowed_fallback(crate::method_not_allowed);
    if !config.cors_origins.is_empty() {
        let origins: Vec<HeaderValue> =
            config.cors_origins.iter().filter_map(|o| HeaderValue::from_str(o).ok()).collect();
        api = api.layer(
            CorsLayer::new()
                .allow_origin(AllowOrigin::list(origins))
                .allow_methods([axum::http::Method::GET, axum::http::Method::POST, axum::http::Method::PUT])
                .allow_headers([header::CONTENT_TYPE])
                .expose_headers([header::RETRY_AFTER, header::LOCATION, header::ETAG])
                .max_age(std::time::Duration::from_secs(3600)),
        );
    }
    api.merge(webfinger)
}

fn sorted<T: Ord>(mut v: Vec<T>) -> Vec<T> {
    v.sort();
    v
}

/// A JSON answer from bytes a service produced.
fn json(status: StatusCode, body: Bytes) -> Response {
    let mut r = (status, body).into_response();
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}

/// A JSON answer from a typed reply.
fn json_of<T: Serialize>(status: StatusCode, value: &T) -> Result<Response, ApiError> {
    let body =
        serde_json::to_vec(value).map_err(|_| ApiError::new(ErrorCode::Internal, "the reply could not be encoded"))?;
    Ok(json(status, Bytes::from(body)))
}

// ---------------------------------------------------------------- operations

/// `GET /v1/healthz`: 200 when the broker is connected, every service
/// answers a ping and the inbox store has room, else 503; the body lists each
/// service and the inbox store's state.
async fn healthz(State(state): State<AppState>) -> Response {
    let (status, body) = crate::health::check(&state).await;
    let mut r = json(status, body);
    r.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// `GET /v1/metrics`: Prometheus text.
async fn metrics(State(state): State<AppState>) -> Response {
    let mut r = state.render_metrics().into_response();
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"));
    r
}

/// `GET /v1/config`: what a client needs to start (`ClientConfig`).
async fn client_config(State(state): State<AppState>) -> Response {
    let mut r = json(StatusCode::OK, state.inner.client_config.clone());
    r.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    r
}

/// `GET /v1/openapi.json`: this API's OpenAPI 3.1 document.
async fn openapi(State(state): State<AppState>) -> Response {
    json(StatusCode::OK, state.inner.openapi.clone())
}

// ---------------------------------------------------------------- registry

/// The client address used for rate limiting (see `ratelimit::client_ip`).
struct ClientIp(std::net::IpAddr);

impl FromRequestParts<AppState> for ClientIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        Ok(ClientIp(crate::ratelimit::client_ip(parts, state.config().trust_proxy_headers)))
    }
}

/// `POST /v1/register`: the signed registration bytes (PROTOCOL.md §4) go to
/// the registry unchanged. 201 when the handle was claimed now, 200 when the
/// same key had it already. Per-IP token bucket → 429 with `Retry-After`.
async fn register(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    Body(body): Body,
) -> Result<Response, ApiError> {
    if let Err(secs) = state.inner.register_limiter.check(ip, std::time::Instant::now()) {
        state.inner.metrics.record_rate_limited();
        return Err(ApiError::new(ErrorCode::RateLimited, "too many registrations from this address").retry_after(secs));
    }
    let reply = state.call(&SignedRegistration(body.to_vec())).await?;
    json_of(if reply.created { StatusCode::CREATED } else { StatusCode::OK }, &reply)
}

/// `GET /v1/u/{handle}`: `alice`, `@alice` or `alice@<domain>` → `UserView`
/// (the key, its sigchain URL and live endpoints). The one composed route: the
/// registry's record plus the sigchain service's endpoints. A handle of another domain
/// is not found (no federation yet).
async fn user(State(state): State<AppState>, Segment(input): Segment) -> Result<Response, ApiError> {
    let domain = &state.config().domain;
    let handle = Handle::parse_input(&input, domain)?;
    // Cheap and shape-level, before any NATS round trip (the registry refuses it too).
    if handle.domain() != domain {
        return Err(ApiError::new(ErrorCode::HandleNotFound, format!("{handle} is not a handle of this server")));
    }
    let record = state.call(&LookupHandle { handle }).await?;
    let endpoints = match state.call(&GetChainState { key: record.key }).await {
        Ok(chain) => chain.endpoints,
        // Registered but nothing published yet.
        Err(e) if e.code() == ErrorCode::ChainNotFound => Vec::new(),
        Err(e) => return Err(e),
    };
    let view = UserView {
        sigchain_url: format!("{}/v1/sigchains/ed25519/{}", state.config().base_url(), record.key.hex()),
        handle: record.handle,
        primary: record.key,
        endpoints,
    };
    json_of(StatusCode::OK, &view)
}

/// `GET /v1/keys/ed25519/{hex}`: the registry record of a key (a client
/// restoring from its mnemonic finds its handle this way).
async fn lookup_key(State(state): State<AppState>, KeyPath(key): KeyPath) -> Result<Response, ApiError> {
    json_of(StatusCode::OK, &state.call(&LookupKey { key }).await?)
}

/// `GET /.well-known/webfinger?resource=acct:…&rel=…` (RFC 7033): the JRD
/// from the webfinger service. A missing or malformed resource is 400, an
/// unknown one 404.
async fn webfinger(State(state): State<AppState>, RawQuery(query): RawQuery) -> Result<Response, ApiError> {
    let bad = |m: &str| ApiError::new(ErrorCode::InvalidRequest, m);
    let mut resource = None;
    let mut rel = Vec::new();
    for (k, v) in form_urlencoded::parse(query.as_deref().unwrap_or("").as_bytes()) {
        match &*k {
            "resource" if resource.is_some() => return Err(bad("resource must be given once")),
            "resource" => resource = Some(v.into_owned()),
            "rel" => rel.push(v.into_owned()),
            _ => {}
        }
    }
    let resource = resource.filter(|r| !r.is_empty()).ok_or_else(|| bad("the resource parameter is required"))?;
    let jrd = state.call(&WebfingerQuery { resource, rel }).await.map_err(|e| {
        // RFC 7033 §4.2: a malformed resource is a bad request, whichever rule it broke.
        if e.code().http_status() == 422 { ApiError::new(ErrorCode::InvalidRequest, "malformed resource") } else { e }
    })?;
    let mut r = json_of(StatusCode::OK, &jrd)?;
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/jrd+json"));
    Ok(r)
}

// ---------------------------------------------------------------- sigchains

/// `GET /v1/sigchains/ed25519/{hex}[?since=n]`: one page of the chain, the links
/// after seqno `n` (`{"key","links"}`, plus `"more":true` when later links exist).
async fn chain_get(
    State(state): State<AppState>,
    KeyPath(key): KeyPath,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let mut since = None;
    for (k, v) in form_urlencoded::parse(query.as_deref().unwrap_or("").as_bytes()) {
        let n = (k == "since"
            && since.is_none()
            && !v.is_empty()
            && v.len() <= 16
            && v.bytes().all(|b| b.is_ascii_digit()))
        .then(|| v.parse::<u64>().ok())
        .flatten()
        .filter(|n| *n <= kv_schemas::jcs::MAX_SAFE_INTEGER)
        .ok_or_else(|| ApiError::new(ErrorCode::InvalidRequest, "the only parameter is since=<seqno>, once"))?;
        since = Some(n);
    }
    json_of(StatusCode::OK, &state.call(&GetChain { key, since: since.unwrap_or(0) }).await?)
}

/// `GET /v1/sigchains/ed25519/{hex}/state`: the derived state.
async fn chain_state(State(state): State<AppState>, KeyPath(key): KeyPath) -> Result<Response, ApiError> {
    json_of(StatusCode::OK, &state.call(&GetChainState { key }).await?)
}

/// `POST /v1/sigchains/ed25519/{hex}/events`: appends one link (its exact
/// bytes). The link's `chain` must be the key in the path (422 `invalid_link`).
async fn chain_append(
    State(state): State<AppState>,
    KeyPath(key): KeyPath,
    Body(body): Body,
) -> Result<Response, ApiError> {
    #[derive(Deserialize)]
    struct ChainField<'a> {
        #[serde(borrow)]
        chain: Option<std::borrow::Cow<'a, str>>,
    }
    let link: ChainField<'_> = serde_json::from_slice(&body).map_err(|e| {
        if e.is_syntax() || e.is_eof() {
            ApiError::new(ErrorCode::InvalidJson, "the link is not valid JSON")
        } else {
            ApiError::new(ErrorCode::InvalidLink, "the link is not a JSON object with a chain field")
        }
    })?;
    if link.chain.as_deref() != Some(key.to_string().as_str()) {
        return Err(ApiError::new(ErrorCode::InvalidLink, "the link's chain is not the key in the path"));
    }
    json_of(StatusCode::CREATED, &state.call(&AppendLink(body.to_vec())).await?)
}

// ---------------------------------------------------------------- manifests

/// `PUT /v1/manifests`: stores a signed manifest (its exact bytes); 201 with
/// `{"hash","owner","seq"}` and its `Location`.
async fn manifest_put(State(state): State<AppState>, Body(body): Body) -> Result<Response, ApiError> {
    let stored = state.call(&PutManifest(body.to_vec())).await?;
    let mut r = json_of(StatusCode::CREATED, &stored)?;
    if is_hash(&stored.hash)
        && let Ok(v) = HeaderValue::from_str(&format!("/v1/manifests/{}", stored.hash))
    {
        r.headers_mut().insert(header::LOCATION, v);
    }
    Ok(r)
}

fn if_none_match(headers: &HeaderMap, etag: &str) -> bool {
    headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim().trim_start_matches("W/") == etag))
}

/// `GET /v1/manifests/{hash}`: manifest bytes by BLAKE3 hash. Content-addressed,
/// so cacheable forever; a matching `If-None-Match` is answered without a lookup.
async fn manifest_get(
    State(state): State<AppState>,
    Segment(hash): Segment,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    if !is_hash(&hash) {
        return Err(ApiError::new(ErrorCode::InvalidEncoding, "a manifest hash is 64 lowercase hex characters"));
    }
    let etag = format!("\"{hash}\"");
    const IMMUTABLE: HeaderValue = HeaderValue::from_static("public, max-age=31536000, immutable");
    let mut r = if if_none_match(&headers, &etag) {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        json(StatusCode::OK, Bytes::from(state.call(&ByHash { hash }).await?.0))
    };
    r.headers_mut().insert(header::CACHE_CONTROL, IMMUTABLE);
    if let Ok(v) = HeaderValue::from_str(&etag) {
        r.headers_mut().insert(header::ETAG, v);
    }
    Ok(r)
}

/// `GET /v1/manifests/by-owner/ed25519/{hex}`: the owner's current manifest
/// (the one their latest `set_shared_files` names). Changes over time: `no-cache`,
/// with the manifest hash as ETag.
async fn manifest_by_owner(
    State(state): State<AppState>,
    KeyPath(key): KeyPath,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let bytes = state.call(&ManifestByOwner { key }).await?.0;
    let etag = format!("\"{}\"", kv_schemas::manifest::manifest_hash(&bytes));
    let mut r = if if_none_match(&headers, &etag) {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        json(StatusCode::OK, Bytes::from(bytes))
    };
    r.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    if let Ok(v) = HeaderValue::from_str(&etag) {
        r.headers_mut().insert(header::ETAG, v);
    }
    Ok(r)
}
