//! `kez.u.<hex>.block` / `unblock`: a recipient refuses a sender (PROTOCOL.md §9.3).
//!
//! The marker `<recipient hex>.<sender tag>` in `kez_blocks` makes the relay drop that sender's
//! mail silently; blocking also purges the tag's subject, so what the sender already stored is
//! gone on every device. A send whose block check ran just before the marker was written can
//! still land after the purge, so the purge is repeated once every such send has finished.

use std::sync::Arc;

use bytes::Bytes;
use kez_service_kit::kv::unavailable;
use kez_service_kit::svc::{self, parse_json};
use kv_schemas::api::{BlockReply, BlockSender};
use kv_schemas::subjects::{INBOX_STREAM, sender_tag, tagged_inbox_subject};
use kv_schemas::{KezError, PublicKey, now_ms};
use serde::Deserialize;
use serde_json::json;
use tracing::{debug, warn};

use crate::{Inbox, jsapi, user_token};

#[derive(Deserialize)]
struct PurgeReply {
    #[serde(default)]
    purged: u64,
}

impl Inbox {
    fn block_key(&self, recipient: &PublicKey, sender: &PublicKey) -> (String, String) {
        let tag = sender_tag(self.tag_key.expose(), recipient, sender);
        (format!("{}.{tag}", recipient.hex()), tag)
    }

    /// Whether the recipient blocked the sender whose tag this is.
    pub(crate) async fn is_blocked(&self, recipient: &PublicKey, tag: &str) -> Result<bool, KezError> {
        let key = format!("{}.{tag}", recipient.hex());
        if let Some(blocked) = self.block_cache.lookup(&key) {
            return Ok(blocked);
        }
        match self.blocks.get(key).await {
            Ok(v) => Ok(v.is_some()),
            Err(e) => Err(unavailable("reading blocks", e)),
        }
    }

    pub(crate) async fn block(self: Arc<Self>, subject: &str, payload: Bytes) -> Result<Bytes, KezError> {
        let me = user_token(subject)?;
        let q: BlockSender = parse_json(&payload)?;
        let (key, tag) = self.block_key(&me, &q.sender);
        let marker = svc::to_json(&json!({ "at": now_ms() }), "the block marker")?;
        self.blocks.put(&key, marker).await.map_err(|e| unavailable("storing the block", e))?;
        self.block_cache.apply(&key, true);
        let subject = tagged_inbox_subject(&me, &tag);
        let purged = self.purge(&subject).await?;
        // Sends that passed their block check before the marker existed finish within one call
        // timeout (their publish is bounded by it); purge once more after that.
        let inbox = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(inbox.call_timeout * 2).await;
            if let Err(e) = inbox.purge(&subject).await {
                warn!("second purge after a block failed: {e}");
            }
        });
        debug!(purged, "blocked a sender");
        svc::json_reply(&BlockReply { purged })
    }

    pub(crate) async fn unblock(&self, subject: &str, payload: Bytes) -> Result<Bytes, KezError> {
        let me = user_token(subject)?;
        let q: BlockSender = parse_json(&payload)?;
        let (key, _) = self.block_key(&me, &q.sender);
        self.blocks.purge(&key).await.map_err(|e| unavailable("removing the block", e))?;
        self.block_cache.apply(&key, false);
        svc::json_reply(&json!({}))
    }

    async fn purge(&self, subject: &str) -> Result<u64, KezError> {
        let reply: PurgeReply =
            jsapi::request(&self.inbox_js, &format!("STREAM.PURGE.{INBOX_STREAM}"), &json!({ "filter": subject }))
                .await
                .map_err(|e| e.to_kez("purging a blocked sender's messages"))?;
        Ok(reply.purged)
    }
}
