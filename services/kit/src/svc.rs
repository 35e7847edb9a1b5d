//! Running NATS micro-service endpoints (ADR-32) and calling them.
//!
//! Every kez service answers with the reply body on success, or with the
//! service-API error headers on failure: `Nats-Service-Error-Code` carries the
//! number of a [`kv_schemas::ErrorCode`], `Nats-Service-Error` carries
//! `<code>: <message>`. [`call`] turns those back into a typed error, so the
//! gateway and other services never parse free text; it sends a request type of the
//! contract (`kv_schemas::api::ServiceRequest`) to its subject and decodes its reply type.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use async_nats::service::{self, Service, ServiceExt};
use bytes::Bytes;
use futures::{FutureExt, StreamExt};
use kv_schemas::api::{ServiceReply, ServiceRequest};
use kv_schemas::{ErrorCode, KezError};
use tokio::sync::Semaphore;
use tracing::{debug, warn};

/// Most requests one endpoint handles at once per worker; more wait in NATS.
const MAX_IN_FLIGHT: usize = 256;

/// Starts a service with the standard metadata. Every instance joins the
/// default queue group, so adding workers spreads requests.
pub async fn start(client: &async_nats::Client, name: &str, description: &str) -> Result<Service, async_nats::Error> {
    client
        .service_builder()
        .description(description)
        .metadata([("component".to_string(), name.to_string())].into())
        .start(name, env!("CARGO_PKG_VERSION"))
        .await
}

/// Adds an endpoint named `name` on `subject` and serves it with `handler`
/// until the service stops. Handler panics become `internal` errors: nothing
/// a client sends can take the worker down.
pub async fn serve<H, Fut>(service: &Service, name: &str, subject: &str, handler: H) -> Result<(), async_nats::Error>
where
    H: Fn(Bytes) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Bytes, KezError>> + Send + 'static,
{
    serve_inner(service, name, subject, false, move |_, payload| handler(payload)).await
}

/// Like [`serve`] for endpoints on wildcard subjects: `handler` also gets the subject the
/// request arrived on. Requests without a reply subject are dropped unhandled (a user request
/// must never have effects its sender cannot see answered).
pub async fn serve_subject<H, Fut>(
    service: &Service,
    name: &str,
    subject: &str,
    handler: H,
) -> Result<(), async_nats::Error>
where
    H: Fn(String, Bytes) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Bytes, KezError>> + Send + 'static,
{
    serve_inner(service, name, subject, true, handler).await
}

async fn serve_inner<H, Fut>(
    service: &Service,
    name: &str,
    subject: &str,
    require_reply: bool,
    handler: H,
) -> Result<(), async_nats::Error>
where
    H: Fn(String, Bytes) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Bytes, KezError>> + Send + 'static,
{
    let mut endpoint = service
        .endpoint_builder()
        .name(name)
        .metadata([("subject".to_string(), subject.to_string())].into())
        .add(subject)
        .await?;
    let handler = Arc::new(handler);
    let permits = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
    let name = name.to_string();
    tokio::spawn(async move {
        while let Some(request) = endpoint.next().await {
            if require_reply && request.message.reply.is_none() {
                debug!(endpoint = %name, "request without a reply subject dropped");
                continue;
            }
            let Ok(permit) = permits.clone().acquire_owned().await else { break };
            let handler = handler.clone();
            let name = name.clone();
            tokio::spawn(async move {
                let payload = request.message.payload.clone();
                let subject = request.message.subject.to_string();
                let result = std::panic::AssertUnwindSafe(handler(subject, payload)).catch_unwind().await;
                let reply = match result {
                    Ok(Ok(body)) => Ok(body),
                    Ok(Err(e)) => {
                        debug!(endpoint = %name, code = %e.code, "request refused: {}", e.message);
                        Err(to_service_error(&e))
                    }
                    Err(_) => {
                        warn!(endpoint = %name, "handler panicked; answered internal");
                        Err(to_service_error(&KezError::new(ErrorCode::Internal, "internal error")))
                    }
                };
                if let Err(e) = request.respond(reply).await {
                    debug!(endpoint = %name, "reply not delivered: {e}");
                }
                drop(permit);
            });
        }
    });
    Ok(())
}

fn to_service_error(e: &KezError) -> service::error::Error {
    // Header values must be one line; messages are ours, but be safe.
    let message: String = e.message.chars().filter(|c| !c.is_control()).take(300).collect();
    service::error::Error { status: format!("{}: {}", e.code.as_str(), message), code: e.code.number() as usize }
}

/// Sends `request` to its service subject and decodes the reply type: a typed service error,
/// `unavailable` when nobody listens, `timeout`, or `internal` for a reply that is not the
/// reply type. Every service-to-service and gateway-to-service request goes through here.
pub async fn call<R: ServiceRequest>(
    client: &async_nats::Client,
    request: &R,
    timeout: Duration,
) -> Result<R::Reply, KezError> {
    let reply = request_raw(client, R::SUBJECT, Bytes::from(request.to_body()?), timeout).await?;
    R::Reply::from_body(&reply).map_err(|e| KezError::new(e.code, format!("{}: {}", R::SUBJECT, e.message)))
}

/// [`call`] for subjects outside the contract (`$SRV.PING.*`, operator status endpoints, tests
/// that send malformed bodies on purpose): the reply body as it came.
pub async fn request_raw(
    client: &async_nats::Client,
    subject: &str,
    payload: Bytes,
    timeout: Duration,
) -> Result<Bytes, KezError> {
    let request = async_nats::Request::new().payload(payload).timeout(Some(timeout));
    let message = client.send_request(subject.to_string(), request).await.map_err(|e| {
        use async_nats::RequestErrorKind as K;
        match e.kind() {
            K::NoResponders => KezError::new(ErrorCode::Unavailable, "no service is answering"),
            K::TimedOut => KezError::new(ErrorCode::Timeout, "the service did not answer in time"),
            K::MaxPayloadExceeded => KezError::new(ErrorCode::TooLarge, "request is larger than the broker accepts"),
            K::InvalidSubject => KezError::new(ErrorCode::InvalidRequest, "invalid request subject"),
            K::Other => KezError::new(ErrorCode::Unavailable, "the message broker is unreachable"),
        }
    })?;
    if let Some(headers) = &message.headers
        && let Some(code) = headers.get(service::NATS_SERVICE_ERROR_CODE)
    {
        let number: u16 = code.as_str().parse().unwrap_or(9500);
        let code = ErrorCode::from_number(number).unwrap_or(ErrorCode::Internal);
        let text = headers.get(service::NATS_SERVICE_ERROR).map(|v| v.as_str().to_string()).unwrap_or_default();
        let message = text.split_once(": ").map(|(_, m)| m.to_string()).unwrap_or(text);
        return Err(KezError::new(code, message));
    }
    Ok(message.payload)
}

/// Parses a JSON request body into `T`, mapping failures to stable codes.
pub fn parse_json<T: serde::de::DeserializeOwned>(payload: &[u8]) -> Result<T, KezError> {
    serde_json::from_slice(payload).map_err(|e| {
        let code = if e.is_syntax() || e.is_eof() { ErrorCode::InvalidJson } else { ErrorCode::InvalidRequest };
        KezError::new(code, format!("bad request body: {e}"))
    })
}

/// Serialises a reply body.
pub fn json_reply<T: serde::Serialize>(value: &T) -> Result<Bytes, KezError> {
    to_json(value, "reply")
}

/// Serialises `value` (a KV value, a request, a reply) as JSON. A value that cannot be
/// encoded is an `internal` error: nothing is ever written or sent as empty bytes instead.
pub fn to_json<T: serde::Serialize + ?Sized>(value: &T, what: &str) -> Result<Bytes, KezError> {
    serde_json::to_vec(value)
        .map(Bytes::from)
        .map_err(|e| KezError::new(ErrorCode::Internal, format!("{what} could not be encoded: {e}")))
}

/// Waits until the server has processed everything this connection sent so
/// far (subscriptions included), by echoing a message through the server to
/// ourselves. `flush` only empties the socket buffer; without this a request
/// from another connection right after start-up can meet "no responders".
pub async fn settle(client: &async_nats::Client) -> Result<(), async_nats::Error> {
    let subject = client.new_inbox();
    let mut sub = client.subscribe(subject.clone()).await?;
    client.publish(subject, Bytes::new()).await?;
    tokio::time::timeout(Duration::from_secs(5), sub.next()).await.map_err(|_| "the server did not echo within 5 s")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A value serde refuses to encode (as a map key, a non-string).
    fn unencodable() -> std::collections::HashMap<Vec<u8>, u8> {
        [(vec![1u8], 1u8)].into()
    }

    #[test]
    fn an_unencodable_value_is_an_internal_error_not_empty_bytes() {
        let e = to_json(&unencodable(), "the record").unwrap_err();
        assert_eq!(e.code, ErrorCode::Internal);
        assert!(e.message.starts_with("the record could not be encoded"), "{}", e.message);
        assert_eq!(json_reply(&unencodable()).unwrap_err().code, ErrorCode::Internal);
        assert_eq!(&to_json(&[1, 2], "x").unwrap()[..], b"[1,2]");
    }
}
