//! The permissions an admitted user gets: exactly PROTOCOL.md §9.1.
//!
//! Everything is an allow list; whatever is not listed is denied by the server. Three details
//! matter for safety (brief §2.2–2.3):
//!
//! - the consumer-create grant names the consumer **and** the filter. The server checks that the
//!   filter tokens of `$JS.API.CONSUMER.CREATE.<stream>.<name>.<filter>` equal the body's
//!   `filter_subject`, so this is an ACL on what the consumer reads. A `*` in the name token would
//!   let a user re-point someone else's durable at their own subject (verified hijack), so the name
//!   is always the user's own hex key, never a wildcard;
//! - no `$JS.API.STREAM.*` (STREAM.INFO's `subjects_filter` would list every inbox), no nameless or
//!   5-token CONSUMER.CREATE, no DURABLE.CREATE, LIST/NAMES, DIRECT.GET or `$JS.EVENT.>`;
//! - replies reach the user only under `_INBOX.<hex>.>`, which the client must use as its custom
//!   inbox prefix; subscribing to `_INBOX.>` would let a user read everyone's replies.

use kv_schemas::PublicKey;
use kv_schemas::subjects::{INBOX_ANY, INBOX_STREAM, inbox_consumer, inbox_subject, reply_prefix};
use serde_json::{Value, json};

/// Connection types an admitted user may use (server names in the user JWT).
pub const ALLOWED_CONNECTION_TYPES: [&str; 2] = ["STANDARD", "WEBSOCKET"];

/// Publish and subscribe allow lists of one user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserPermissions {
    /// Subjects the user may publish to.
    pub publish: Vec<String>,
    /// Subjects the user may subscribe to.
    pub subscribe: Vec<String>,
}

impl UserPermissions {
    /// PROTOCOL.md §9.1 for the user with `key`.
    pub fn for_key(key: &PublicKey) -> Self {
        let consumer = inbox_consumer(key);
        let own_inbox = inbox_subject(key);
        Self {
            publish: vec![
                // Send to anyone (JetStream publish; the PubAck comes back on the reply prefix).
                INBOX_ANY.to_owned(),
                // Create/update the own durable only: exact name and exact filter.
                format!("$JS.API.CONSUMER.CREATE.{INBOX_STREAM}.{consumer}.{own_inbox}"),
                // Bind (async-nats also calls this after every reconnect of `messages()`).
                format!("$JS.API.CONSUMER.INFO.{INBOX_STREAM}.{consumer}"),
                // Pull requests.
                format!("$JS.API.CONSUMER.MSG.NEXT.{INBOX_STREAM}.{consumer}"),
                // Ack/nak/term/in-progress, v1 ack subject format (js_ack_fc_v2 is off by default).
                format!("$JS.ACK.{INBOX_STREAM}.{consumer}.>"),
            ],
            subscribe: vec![
                // Optional live (core) delivery next to the durable.
                own_inbox,
                // All replies: JS API responses, pull deliveries, PubAcks.
                format!("{}.>", reply_prefix(key)),
            ],
        }
    }

    /// The `nats.pub` / `nats.sub` claims of a user JWT.
    pub fn to_claims(&self) -> (Value, Value) {
        (json!({ "allow": self.publish }), json!({ "allow": self.subscribe }))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn exact_lists_for_a_key() {
        let hex = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a";
        let key = PublicKey::from_hex(hex).unwrap();
        let p = UserPermissions::for_key(&key);
        assert_eq!(
            p.publish,
            vec![
                "kez.inbox.*".to_owned(),
                format!("$JS.API.CONSUMER.CREATE.KEZ_INBOX.{hex}.kez.inbox.{hex}"),
                format!("$JS.API.CONSUMER.INFO.KEZ_INBOX.{hex}"),
                format!("$JS.API.CONSUMER.MSG.NEXT.KEZ_INBOX.{hex}"),
                format!("$JS.ACK.KEZ_INBOX.{hex}.>"),
            ]
        );
        assert_eq!(p.subscribe, vec![format!("kez.inbox.{hex}"), format!("_INBOX.{hex}.>")]);
        let (pubc, subc) = p.to_claims();
        assert_eq!(pubc, json!({ "allow": p.publish }));
        assert_eq!(subc, json!({ "allow": p.subscribe }));
    }

    #[test]
    fn no_wildcard_except_the_intended_ones() {
        let key = PublicKey::of(&ed25519_dalek::SigningKey::from_bytes(&[9; 32]));
        let p = UserPermissions::for_key(&key);
        for s in p.publish.iter().chain(&p.subscribe) {
            let wild: Vec<&str> = s.split('.').filter(|t| *t == "*" || *t == ">").collect();
            match s.as_str() {
                "kez.inbox.*" => assert_eq!(wild, ["*"]),
                s if s.starts_with("$JS.ACK.") || s.starts_with("_INBOX.") => assert_eq!(wild, [">"]),
                s => assert!(wild.is_empty(), "unexpected wildcard in {s}"),
            }
            // Never anything outside the user's own names, the inbox stream, or the send grant.
            assert!(s == "kez.inbox.*" || s.contains(&key.hex()), "{s}");
            assert!(!s.starts_with("$JS.API.STREAM") && !s.starts_with("kez.svc") && !s.starts_with("$SYS"));
        }
    }
}
