//! `kez.u.<sender>.send.<recipient>`: the only way into an inbox (PROTOCOL.md §9.3).

use std::time::Instant;

use bytes::Bytes;
use kez_service_kit::svc;
use kv_schemas::api::{LookupKey, SendReply};
use kv_schemas::envelope::check_outer;
use kv_schemas::error::err;
use kv_schemas::subjects::{sender_tag, tagged_inbox_subject};
use kv_schemas::{ErrorCode, KezError, PublicKey};
use tracing::debug;

use crate::{Inbox, jsapi, user_token};

/// `Nats-Msg-Id` of a relayed message (PROTOCOL.md §9.3): hex SHA-256 of the inbox subject, a
/// zero byte and the envelope bytes. A client that resends the same bytes after a lost answer
/// gets the first copy's acknowledgement instead of a second stored copy (within the stream's
/// duplicate window); a fresh envelope always has a fresh id (every envelope has a fresh `enc`).
pub(crate) fn message_id(subject: &str, payload: &[u8]) -> String {
    use sha2::{Digest as _, Sha256};
    let mut h = Sha256::new();
    h.update(subject.as_bytes());
    h.update([0u8]);
    h.update(payload);
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

impl Inbox {
    /// Checks, in the order of §9.3, then stores the envelope bytes unchanged.
    pub(crate) async fn send(&self, subject: &str, payload: Bytes) -> Result<Bytes, KezError> {
        // kez.u.<sender>.send.<recipient>
        let sender = user_token(subject)?;
        let recipient = subject
            .split('.')
            .nth(4)
            .filter(|_| subject.split('.').count() == 5)
            .ok_or_else(|| err(ErrorCode::InvalidRequest, "send subject is kez.u.<own key hex>.send.<recipient hex>"))
            .and_then(PublicKey::from_hex)?;
        check_outer(&payload).map_err(|e| match e.code {
            ErrorCode::TooLarge | ErrorCode::InvalidJson | ErrorCode::NotCanonical => e,
            _ => KezError::new(ErrorCode::InvalidRequest, format!("not an outer envelope: {}", e.message)),
        })?;
        if !self.limiter.allow(&sender, Instant::now()) {
            return Err(err(ErrorCode::RateLimited, "too many messages; slow down"));
        }
        self.check_registered(&recipient).await?;
        let tag = sender_tag(self.tag_key.expose(), &recipient, &sender);
        if self.is_blocked(&recipient, &tag).await? {
            // Same answer as a stored message: a blocked sender must not learn it is blocked.
            debug!("send dropped: blocked by the recipient");
            return svc::json_reply(&SendReply {});
        }
        let subject = tagged_inbox_subject(&recipient, &tag);
        let mut headers = async_nats::HeaderMap::new();
        headers.insert("Nats-Msg-Id", message_id(&subject, &payload).as_str());
        jsapi::publish(&self.client, subject, Some(headers), payload, self.call_timeout).await?;
        svc::json_reply(&SendReply {})
    }

    async fn check_registered(&self, key: &PublicKey) -> Result<(), KezError> {
        if self.registered.contains(key, Instant::now()) {
            return Ok(());
        }
        match svc::call(&self.client, &LookupKey { key: *key }, self.call_timeout).await {
            Ok(_) => {
                self.registered.insert(*key, Instant::now());
                Ok(())
            }
            Err(e) if e.code == ErrorCode::KeyNotFound => {
                Err(err(ErrorCode::KeyNotFound, "the recipient is not registered on this server"))
            }
            Err(e) => Err(e),
        }
    }
}
