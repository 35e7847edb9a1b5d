//! At most N simultaneous connections per user (PROTOCOL.md §9.5).
//!
//! nats-server ignores connection limits in user JWTs issued by a callout, and an account-wide
//! `max_connections` would let one user take everybody's share. So the workers count themselves:
//! every worker listens to the server's connect and disconnect events for the users' account (on
//! a system-account connection) and counts live connections by the user JWT's name, which the
//! events report as the client's `user` (`kez:<key hex>`, set by [`crate::authorize`]). A login
//! it just admitted counts as *pending* until a connect event of that key arrives (or for
//! [`PENDING_TTL`]), so a burst of parallel logins is bounded too. Several workers see the same events and so the same counts.
//!
//! After a worker restarts it knows only connections that (re)connect from then on; connections
//! it missed are counted again once they re-authenticate at their JWT's expiry.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt as _;
use kv_schemas::PublicKey;
use serde::Deserialize;
use tracing::{debug, warn};

/// How long an admitted login counts before its connect event has been seen.
pub const PENDING_TTL: Duration = Duration::from_secs(10);

/// Live and pending connections per key.
#[derive(Debug)]
pub struct ConnectionLimit {
    max: usize,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    /// (server id, client id) → key, from connect events.
    live: HashMap<(String, u64), PublicKey>,
    /// Server-made user nkey of a login this worker admitted → key, until it is seen connecting.
    pending: HashMap<String, (PublicKey, Instant)>,
}

/// The part of a connect/disconnect advisory we read.
#[derive(Debug, Deserialize)]
struct Advisory {
    #[serde(default)]
    server: AdvisoryServer,
    #[serde(default)]
    client: AdvisoryClient,
}

#[derive(Debug, Default, Deserialize)]
struct AdvisoryServer {
    #[serde(default)]
    id: String,
}

#[derive(Debug, Default, Deserialize)]
struct AdvisoryClient {
    #[serde(default)]
    id: u64,
    /// For callout users: the user JWT's `name`.
    #[serde(default)]
    user: String,
}

impl ConnectionLimit {
    /// A limit of `max` connections per key.
    pub fn new(max: usize) -> Self {
        Self { max, state: Mutex::new(State::default()) }
    }

    /// Counts a login about to be admitted; `false` if the key already holds `max` connections.
    pub fn try_admit(&self, key: &PublicKey, user_nkey: &str) -> bool {
        let Ok(mut s) = self.state.lock() else { return true };
        let now = Instant::now();
        s.pending.retain(|_, (_, at)| now.duration_since(*at) < PENDING_TTL);
        let count =
            s.live.values().filter(|k| *k == key).count() + s.pending.values().filter(|(k, _)| k == key).count();
        if count >= self.max {
            return false;
        }
        s.pending.insert(user_nkey.to_owned(), (*key, now));
        true
    }

    /// Live connections of `key` (for tests and status).
    pub fn live(&self, key: &PublicKey) -> usize {
        self.state.lock().map(|s| s.live.values().filter(|k| *k == key).count()).unwrap_or(0)
    }

    fn on_event(&self, connect: bool, payload: &[u8]) {
        let Ok(a) = serde_json::from_slice::<Advisory>(payload) else { return };
        let Some(key) = a.client.user.strip_prefix("kez:").and_then(|h| PublicKey::from_hex(h).ok()) else {
            return;
        };
        let Ok(mut s) = self.state.lock() else { return };
        let id = (a.server.id, a.client.id);
        if connect {
            // The event names the key, not the login: retire the oldest pending login of the key.
            let oldest = s.pending.iter().filter(|(_, (k, _))| *k == key).min_by_key(|(_, (_, at))| *at);
            if let Some(nkey) = oldest.map(|(n, _)| n.clone()) {
                s.pending.remove(&nkey);
            }
            s.live.insert(id, key);
        } else {
            s.live.remove(&id);
        }
    }

    /// Follows the connect and disconnect events of `account` on a system-account connection.
    pub async fn follow(self: Arc<Self>, sys_conn: async_nats::Client, account: &str) -> Result<(), String> {
        let connects = sys_conn
            .subscribe(format!("$SYS.ACCOUNT.{account}.CONNECT"))
            .await
            .map_err(|e| format!("subscribing to connect events: {e}"))?;
        let disconnects = sys_conn
            .subscribe(format!("$SYS.ACCOUNT.{account}.DISCONNECT"))
            .await
            .map_err(|e| format!("subscribing to disconnect events: {e}"))?;
        sys_conn.flush().await.map_err(|e| format!("subscribing to connection events: {e}"))?;
        let events = futures::stream::select(connects.map(|m| (true, m)), disconnects.map(|m| (false, m)));
        tokio::spawn(async move {
            let mut events = std::pin::pin!(events);
            while let Some((connect, m)) = events.next().await {
                self.on_event(connect, &m.payload);
            }
            warn!("connection events ended; per-user connection counts are no longer updated");
            drop(sys_conn);
        });
        debug!("following connection events");
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn key(b: u8) -> PublicKey {
        PublicKey::of(&ed25519_dalek::SigningKey::from_bytes(&[b; 32]))
    }

    /// The fields nats-server 2.15.1 sends in `$SYS.ACCOUNT.<acc>.CONNECT` for a callout user.
    fn event(server: &str, cid: u64, k: &PublicKey) -> Vec<u8> {
        serde_json::to_vec(&serde_json::json!({
            "server": {"id": server},
            "client": {"id": cid, "acc": "USERS", "user": format!("kez:{}", k.hex()), "name_tag": "USERS"}
        }))
        .unwrap()
    }

    #[test]
    fn counts_pending_then_live_and_frees_on_disconnect() {
        let l = ConnectionLimit::new(2);
        let (a, b) = (key(1), key(2));
        assert!(l.try_admit(&a, "U1"));
        assert!(l.try_admit(&a, "U2"));
        assert!(!l.try_admit(&a, "U3"), "two pending already");
        assert!(l.try_admit(&b, "U4"), "other keys are not affected");
        l.on_event(true, &event("S", 1, &a));
        l.on_event(true, &event("S", 2, &a));
        assert_eq!(l.live(&a), 2);
        assert!(!l.try_admit(&a, "U5"));
        l.on_event(false, &event("S", 1, &a));
        assert!(l.try_admit(&a, "U6"));
        // Events from other servers and garbage do not disturb the count.
        l.on_event(false, &event("T", 2, &a));
        l.on_event(true, b"not json");
        l.on_event(true, br#"{"client":{"id":9,"user":"kez:zz"}}"#);
        assert_eq!(l.live(&a), 1);
    }
}
