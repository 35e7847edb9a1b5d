//! Calls into the `INBOX` account's JetStream API (imported as `$JS.INBOX.API.>`) and into the
//! stream's subjects (imported `kez.inbox.>`), with every failure mapped to a stable code.

use std::time::Duration;

use async_nats::HeaderMap;
use async_nats::jetstream::{self, ErrorCode as JsCode, response::Response};
use bytes::Bytes;
use kv_schemas::{ErrorCode, KezError};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use tracing::warn;

/// A failed JetStream API call: either the API answered with an error, or nobody answered.
#[derive(Debug)]
pub(crate) enum ApiFail {
    /// The API's own error (`{"error":{"code","err_code","description"}}`).
    Api(jetstream::Error),
    /// Transport failure, already mapped (`unavailable`, `timeout`).
    Transport(KezError),
}

impl ApiFail {
    pub(crate) fn is(&self, code: JsCode) -> bool {
        matches!(self, ApiFail::Api(e) if e.error_code() == code)
    }

    /// The stable error for a caller; `context` goes to the log only.
    pub(crate) fn to_kez(&self, context: &str) -> KezError {
        match self {
            ApiFail::Transport(e) => e.clone(),
            ApiFail::Api(e) => {
                if let Some(code) = store_error(e.error_code(), &e.to_string()) {
                    return KezError::new(code, store_message(code));
                }
                warn!("{context}: {e}");
                KezError::new(ErrorCode::Unavailable, format!("{context}: the inbox store is unavailable"))
            }
        }
    }
}

impl std::fmt::Display for ApiFail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ApiFail::Api(e) => write!(f, "{e}"),
            ApiFail::Transport(e) => write!(f, "{e}"),
        }
    }
}

fn transport(e: &async_nats::RequestError) -> KezError {
    use async_nats::RequestErrorKind as K;
    match e.kind() {
        K::TimedOut => KezError::new(ErrorCode::Timeout, "the inbox store did not answer in time"),
        K::NoResponders => KezError::new(ErrorCode::Unavailable, "the inbox store is not reachable"),
        _ => KezError::new(ErrorCode::Unavailable, "the message broker is unreachable"),
    }
}

/// A JetStream API request on the INBOX context (`subject` without the API prefix).
pub(crate) async fn request<T: DeserializeOwned>(
    js: &jetstream::Context,
    subject: &str,
    body: &serde_json::Value,
) -> Result<T, ApiFail> {
    let response: Result<Response<T>, _> = js.request(subject.to_owned(), body).await;
    match response {
        Ok(Response::Ok(v)) => Ok(v),
        Ok(Response::Err { error }) => Err(ApiFail::Api(error)),
        Err(e) => {
            use jetstream::context::RequestErrorKind as K;
            Err(ApiFail::Transport(match e.kind() {
                K::TimedOut => KezError::new(ErrorCode::Timeout, "the inbox store did not answer in time"),
                K::NoResponders => KezError::new(ErrorCode::Unavailable, "the inbox store is not reachable"),
                _ => KezError::new(ErrorCode::Unavailable, "the inbox store answered something unexpected"),
            }))
        }
    }
}

/// Which stable code a store-side refusal maps to (`None`: not a capacity problem).
fn store_error(code: JsCode, description: &str) -> Option<ErrorCode> {
    let d = description.to_ascii_lowercase();
    if code == JsCode::STREAM_STORE_FAILED && d.contains("per subject") {
        return Some(ErrorCode::InboxFull);
    }
    let full_codes = [
        JsCode::INSUFFICIENT_RESOURCES,
        JsCode::STORAGE_RESOURCES_EXCEEDED,
        JsCode::MEMORY_RESOURCES_EXCEEDED,
        JsCode::ACCOUNT_RESOURCES_EXCEEDED,
    ];
    if full_codes.contains(&code)
        || (code == JsCode::STREAM_STORE_FAILED
            && (d.contains("maximum bytes") || d.contains("maximum messages") || d.contains("resources")))
    {
        return Some(ErrorCode::StoreFull);
    }
    if code == JsCode::STREAM_MESSAGE_EXCEEDS_MAXIMUM {
        return Some(ErrorCode::TooLarge);
    }
    None
}

fn store_message(code: ErrorCode) -> &'static str {
    match code {
        ErrorCode::InboxFull => "you already have the most messages this inbox holds from one sender",
        ErrorCode::StoreFull => "the inbox store is full",
        ErrorCode::TooLarge => "message is larger than the inbox accepts",
        _ => "the inbox store refused the message",
    }
}

/// The PubAck JetStream answers a stored publish with.
#[derive(Debug, Deserialize)]
pub(crate) struct PubAck {
    /// `true` when a `Nats-Msg-Id` was seen within the duplicate window (nothing new stored).
    #[serde(default)]
    pub duplicate: bool,
}

#[derive(Deserialize)]
struct PubAckReply {
    #[serde(default)]
    error: Option<jetstream::Error>,
    #[serde(flatten)]
    ack: PubAck,
    #[serde(default)]
    stream: Option<String>,
}

/// Publishes `payload` to a stream subject in `INBOX` and waits for the PubAck. A core request
/// (not the JetStream publish helper) so that every refusal keeps its JetStream error code.
pub(crate) async fn publish(
    client: &async_nats::Client,
    subject: String,
    headers: Option<HeaderMap>,
    payload: Bytes,
    timeout: Duration,
) -> Result<PubAck, KezError> {
    let mut request = async_nats::Request::new().payload(payload).timeout(Some(timeout));
    if let Some(h) = headers {
        request = request.headers(h);
    }
    let message = client.send_request(subject, request).await.map_err(|e| transport(&e))?;
    let reply: PubAckReply = serde_json::from_slice(&message.payload).map_err(|_| {
        // An empty 503 status reply (no stream listening) also lands here.
        KezError::new(ErrorCode::Unavailable, "the inbox store did not acknowledge the message")
    })?;
    if let Some(e) = reply.error {
        return Err(ApiFail::Api(e).to_kez("storing a message"));
    }
    if reply.stream.is_none() {
        return Err(KezError::new(ErrorCode::Unavailable, "the inbox store did not acknowledge the message"));
    }
    Ok(reply.ack)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_errors_map_to_stable_codes() {
        let per_subject = store_error(JsCode::STREAM_STORE_FAILED, "maximum messages per subject exceeded");
        assert_eq!(per_subject, Some(ErrorCode::InboxFull));
        assert_eq!(store_error(JsCode::STREAM_STORE_FAILED, "maximum bytes exceeded"), Some(ErrorCode::StoreFull));
        assert_eq!(store_error(JsCode::INSUFFICIENT_RESOURCES, "insufficient resources"), Some(ErrorCode::StoreFull));
        assert_eq!(store_error(JsCode::ACCOUNT_RESOURCES_EXCEEDED, "x"), Some(ErrorCode::StoreFull));
        assert_eq!(store_error(JsCode::STORAGE_RESOURCES_EXCEEDED, "x"), Some(ErrorCode::StoreFull));
        assert_eq!(store_error(JsCode::STREAM_MESSAGE_EXCEEDS_MAXIMUM, "x"), Some(ErrorCode::TooLarge));
        assert_eq!(store_error(JsCode::STREAM_NOT_FOUND, "stream not found"), None);
    }
}
