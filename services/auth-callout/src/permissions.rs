//! The permissions an admitted user gets: exactly PROTOCOL.md §9.5.
//!
//! Everything is an allow list; whatever is not listed is denied by the server. The user lives in
//! account `USERS`, which holds no stream, KV or service: the grants below name subjects that
//! `USERS` imports from `APP` and `INBOX`, and replies to them come back into `USERS`. So even a
//! chosen reply subject or a JetStream delivery can only land among users, where the only
//! subscriptions are users' own reply inboxes. Details:
//!
//! - `kez.u.<hex>.>`: every request to the inbox service; the second token names the caller, so
//!   the grant is what authenticates the caller to the service;
//! - pull and ack for exactly the consumer of the device named in the connection name
//!   (`kez-device:<id>`); consumer names cannot be wildcarded by prefix, and a `*` would let a
//!   user pull another user's consumer. A connection without a device name can send but not read;
//! - no consumer create/info/delete, no stream API: the inbox service creates consumers with a
//!   configuration users cannot choose (no push consumers, no deliver subjects);
//! - replies reach the user only under `_INBOX.<hex>.>`, which the client must use as its custom
//!   inbox prefix; subscribing to `_INBOX.>` would let a user read everyone's replies.

use kv_schemas::PublicKey;
use kv_schemas::subjects::{
    DeviceId, USER_REQUEST_ROOT, consumer_ack_prefix, consumer_next_subject, device_consumer, reply_prefix,
};
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
    /// PROTOCOL.md §9.5 for the user with `key` on the connection of `device` (if any).
    pub fn for_key(key: &PublicKey, device: Option<&DeviceId>) -> Self {
        let mut publish = vec![format!("{USER_REQUEST_ROOT}.{}.>", key.hex())];
        if let Some(device) = device {
            let consumer = device_consumer(key, device);
            publish.push(consumer_next_subject(&consumer));
            publish.push(format!("{}.>", consumer_ack_prefix(&consumer)));
        }
        Self { publish, subscribe: vec![format!("{}.>", reply_prefix(key))] }
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
    fn exact_lists_for_a_key_and_device() {
        let hex = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a";
        let key = PublicKey::from_hex(hex).unwrap();
        let dev: DeviceId = "0123456789abcdef".parse().unwrap();
        let p = UserPermissions::for_key(&key, Some(&dev));
        assert_eq!(
            p.publish,
            vec![
                format!("kez.u.{hex}.>"),
                format!("$JS.API.CONSUMER.MSG.NEXT.KEZ_INBOX.{hex}_0123456789abcdef"),
                format!("$JS.ACK.KEZ_INBOX.{hex}_0123456789abcdef.>"),
            ]
        );
        assert_eq!(p.subscribe, vec![format!("_INBOX.{hex}.>")]);
        let (pubc, subc) = p.to_claims();
        assert_eq!(pubc, json!({ "allow": p.publish }));
        assert_eq!(subc, json!({ "allow": p.subscribe }));
        // Without a device name: send and manage devices only.
        assert_eq!(UserPermissions::for_key(&key, None).publish, vec![format!("kez.u.{hex}.>")]);
    }

    #[test]
    fn nothing_outside_the_own_names() {
        let key = PublicKey::of(&ed25519_dalek::SigningKey::from_bytes(&[9; 32]));
        let p = UserPermissions::for_key(&key, Some(&DeviceId::random()));
        for s in p.publish.iter().chain(&p.subscribe) {
            assert!(s.contains(&key.hex()), "{s}");
            let wild: Vec<&str> = s.split('.').filter(|t| *t == "*" || *t == ">").collect();
            assert!(wild == [">"] || wild.is_empty(), "{s}");
            assert!(!s.contains("STREAM") && !s.contains("CREATE") && !s.contains("INFO") && !s.starts_with("$SYS"));
        }
    }
}
