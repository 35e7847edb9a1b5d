//! The one HTTP error shape (`{"error":{"code","message"}}`, PROTOCOL.md §10)
//! and the extractors that make every rejection use it.
//!
//! The status always comes from [`ErrorCode::http_status`]: there is no second
//! mapping table here. 5xx answers never carry the underlying message; it goes
//! into a response extension ([`InternalDetail`]) that the trace layer logs.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use kv_schemas::api::{ErrorBody, ErrorDetail};
use kv_schemas::{ErrorCode, KezError, PublicKey};

/// An error answer. Build it from a [`KezError`] (service errors arrive as one).
#[derive(Debug, Clone)]
pub struct ApiError {
    error: KezError,
    retry_after_secs: Option<u64>,
}

impl ApiError {
    /// An error with `code` and a client-visible `message` (ignored for 5xx).
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self { error: KezError::new(code, message), retry_after_secs: None }
    }

    /// Adds a `Retry-After` header (seconds).
    pub fn retry_after(mut self, secs: u64) -> Self {
        self.retry_after_secs = Some(secs);
        self
    }

    /// The stable code.
    pub fn code(&self) -> ErrorCode {
        self.error.code
    }

    pub(crate) fn not_found(what: &str) -> Self {
        Self::new(ErrorCode::NotFound, format!("no such resource: {what}"))
    }
}

impl From<KezError> for ApiError {
    fn from(error: KezError) -> Self {
        Self { error, retry_after_secs: None }
    }
}

/// The real message behind a 5xx answer, kept out of the body and logged by
/// the trace layer inside the request's span.
#[derive(Debug, Clone)]
pub struct InternalDetail(pub String);

/// The client-visible message of a server-side failure: fixed text, so no
/// internals (service messages, addresses, dependency errors) leak.
fn public_message(code: ErrorCode) -> &'static str {
    match code {
        ErrorCode::Unavailable => "the service is unavailable, try again later",
        ErrorCode::Timeout => "the service did not answer in time",
        _ => "internal error",
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let code = self.error.code;
        let status = StatusCode::from_u16(code.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let internal = status.is_server_error();
        let message = if internal { public_message(code).to_string() } else { self.error.message.clone() };
        let mut response = error_response(status, code, message);
        if let Some(secs) = self.retry_after_secs {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if internal {
            response.extensions_mut().insert(InternalDetail(self.error.message));
        }
        response
    }
}

fn error_response(status: StatusCode, code: ErrorCode, message: String) -> Response {
    let body = ErrorBody { error: ErrorDetail { code: code.as_str().to_string(), message } };
    // Serialising two strings cannot fail; fall back to a fixed body anyway.
    let bytes = serde_json::to_vec(&body)
        .unwrap_or_else(|_| br#"{"error":{"code":"internal","message":"internal error"}}"#.to_vec());
    let mut response = (status, bytes).into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// A request body as raw bytes, with the per-route size limit
/// (`DefaultBodyLimit`) turned into `413 too_large` in the JSON shape.
#[derive(Debug)]
pub struct Body(pub Bytes);

impl<S: Send + Sync> FromRequest<S> for Body {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        Bytes::from_request(req, state).await.map(Body).map_err(body_rejection)
    }
}

fn body_rejection(rejection: BytesRejection) -> ApiError {
    if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::new(ErrorCode::TooLarge, "request body is too large")
    } else {
        ApiError::new(ErrorCode::InvalidRequest, "the request body could not be read")
    }
}

/// The `{hex}` path segment of `/…/ed25519/{hex}` routes, parsed as a key
/// (`422 invalid_key` otherwise). Expects exactly one path parameter.
#[derive(Debug)]
pub struct KeyPath(pub PublicKey);

impl<S: Send + Sync> FromRequestParts<S> for KeyPath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let axum::extract::Path(hex) = axum::extract::Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(|_| ApiError::new(ErrorCode::InvalidRequest, "malformed path parameter"))?;
        Ok(KeyPath(PublicKey::from_hex(&hex)?))
    }
}

/// One `{param}` path segment as a string, with the JSON error shape on failure.
#[derive(Debug)]
pub struct Segment(pub String);

impl<S: Send + Sync> FromRequestParts<S> for Segment {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        axum::extract::Path::<String>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Path(s)| Segment(s))
            .map_err(|_| ApiError::new(ErrorCode::InvalidRequest, "malformed path parameter"))
    }
}

/// Turns a panic inside a handler into `500 internal` (the connection stays usable).
pub(crate) fn panic_response(_panic: Box<dyn std::any::Any + Send + 'static>) -> Response {
    let mut response = ApiError::new(ErrorCode::Internal, "internal error").into_response();
    response.extensions_mut().insert(InternalDetail("handler panicked".into()));
    response
}
