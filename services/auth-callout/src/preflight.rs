//! Start-up checks that turn operator mistakes into a [`crate::StartError`] instead of every user
//! login timing out later.
//!
//! A denied SUBSCRIBE is only reported asynchronously (`-ERR Permissions Violation`, an
//! `Event::ServerError` on a callback the caller installed when connecting), so the worker asks the
//! server directly: `$SYS.REQ.USER.INFO` answers any connection with its own user, account and
//! permissions (nats-server ≥ 2.10, verified on 2.15.1). From that we check:
//! - `auth_conn` may subscribe to `$SYS.REQ.USER.AUTH` in our queue group;
//! - `auth_conn` is in the auth-callout account: nats-server adds an automatic publish deny on
//!   `$SYS.REQ.USER.AUTH` to exactly the users of that account (docs/nats-server.md), which is the only
//!   outside-visible trace of `auth_callout.account`;
//! - `app_conn` may call the registry, create the stream and serve the status endpoint.
//!
//! If USER.INFO itself is not answered (permissions deny publishing to it, an old server), the
//! checks are skipped with a warning; the stream creation still proves JetStream access.

use std::time::Duration;

use serde::Deserialize;

/// The subject of the per-user info request.
pub(crate) const USER_INFO_SUBJECT: &str = "$SYS.REQ.USER.INFO";

/// What the server told us about one connection.
#[derive(Debug, Clone, Default, Deserialize)]
pub(crate) struct UserInfo {
    #[serde(default)]
    pub user: String,
    #[serde(default)]
    pub account: String,
    #[serde(default)]
    permissions: Option<Permissions>,
}

#[derive(Debug, Clone, Default, Deserialize)]
struct Permissions {
    #[serde(default)]
    publish: Option<PermList>,
    #[serde(default)]
    subscribe: Option<PermList>,
}

#[derive(Debug, Clone, Default, Deserialize)]
struct PermList {
    #[serde(default)]
    allow: Vec<String>,
    #[serde(default)]
    deny: Vec<String>,
}

#[derive(Deserialize)]
struct Reply {
    data: Option<UserInfo>,
}

/// Asks the server who `client` is. `None` (logged) when it does not answer usefully.
pub(crate) async fn user_info(client: &async_nats::Client, what: &str) -> Option<UserInfo> {
    let request = async_nats::Request::new().timeout(Some(Duration::from_secs(2)));
    match client.send_request(USER_INFO_SUBJECT, request).await {
        Ok(msg) => match serde_json::from_slice::<Reply>(&msg.payload) {
            Ok(Reply { data: Some(info) }) => Some(info),
            _ => {
                tracing::warn!("{what}: unexpected {USER_INFO_SUBJECT} reply; start-up permission checks skipped");
                None
            }
        },
        Err(e) => {
            tracing::warn!("{what}: {USER_INFO_SUBJECT} failed ({e}); start-up permission checks skipped");
            None
        }
    }
}

impl UserInfo {
    /// Whether a publish to the literal `subject` is allowed.
    pub(crate) fn may_publish(&self, subject: &str) -> bool {
        let Some(list) = self.permissions.as_ref().and_then(|p| p.publish.as_ref()) else { return true };
        allowed(list, subject, None)
    }

    /// Whether a subscription on the literal `subject` (in `queue`, if any) is allowed.
    pub(crate) fn may_subscribe(&self, subject: &str, queue: Option<&str>) -> bool {
        let Some(list) = self.permissions.as_ref().and_then(|p| p.subscribe.as_ref()) else { return true };
        allowed(list, subject, queue)
    }

    /// Whether the publish deny list names `subject` literally (the callout-account marker).
    pub(crate) fn publish_deny_lists(&self, subject: &str) -> bool {
        self.permissions.as_ref().and_then(|p| p.publish.as_ref()).is_some_and(|l| l.deny.iter().any(|d| d == subject))
    }
}

/// nats-server semantics: an empty allow list allows everything; a deny match wins. Entries may
/// be `"<subject> <queue>"`, which only apply to queue subscriptions of a matching group.
fn allowed(list: &PermList, subject: &str, queue: Option<&str>) -> bool {
    let hit = |entry: &String| {
        let (pattern, q) = match entry.split_once(' ') {
            Some((s, q)) => (s.trim(), Some(q.trim())),
            None => (entry.as_str(), None),
        };
        subject_matches(pattern, subject)
            && match q {
                None => true,
                Some(q) => queue.is_some_and(|mine| subject_matches(q, mine)),
            }
    };
    (list.allow.is_empty() || list.allow.iter().any(hit)) && !list.deny.iter().any(hit)
}

/// NATS wildcard matching of a literal subject against a pattern (`*` one token, `>` the rest).
pub(crate) fn subject_matches(pattern: &str, subject: &str) -> bool {
    let mut p = pattern.split('.');
    let mut s = subject.split('.');
    loop {
        match (p.next(), s.next()) {
            (Some(">"), Some(_)) => return true,
            (Some("*"), Some(_)) => {}
            (Some(a), Some(b)) if a == b => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn matching() {
        assert!(subject_matches("a.b", "a.b"));
        assert!(subject_matches("a.*", "a.b"));
        assert!(subject_matches("a.>", "a.b.c"));
        assert!(subject_matches(">", "a"));
        assert!(!subject_matches("a.>", "a"));
        assert!(!subject_matches("a.*", "a.b.c"));
        assert!(!subject_matches("a.b", "a.b.c"));
        assert!(!subject_matches("a.b.c", "a.b"));
        assert!(subject_matches("$SYS.REQ.USER.*", "$SYS.REQ.USER.AUTH"));
    }

    fn info(json: &str) -> UserInfo {
        serde_json::from_str::<Reply>(json).unwrap().data.unwrap()
    }

    #[test]
    fn real_worker_reply_from_2_15_1() {
        let i = info(
            r#"{"server":{"name":"kez-test"},"data":{"user":"UDLK","account":"AUTH","account_name":"AUTH",
            "permissions":{"publish":{"deny":["$SYS.REQ.USER.AUTH"]},"subscribe":{}}}}"#,
        );
        assert_eq!(i.account, "AUTH");
        assert!(i.may_subscribe("$SYS.REQ.USER.AUTH", Some("kez-auth-callout")));
        assert!(i.publish_deny_lists("$SYS.REQ.USER.AUTH"));
        assert!(!i.may_publish("$SYS.REQ.USER.AUTH"));
        assert!(i.may_publish("anything"));
        // Unrestricted APP user: no permissions object at all, no marker.
        let app = info(r#"{"data":{"user":"UD4X","account":"APP","account_name":"APP"}}"#);
        assert!(app.may_publish("kez.svc.registry.v1.lookup_key") && app.may_subscribe("x", None));
        assert!(!app.publish_deny_lists("$SYS.REQ.USER.AUTH"));
    }

    #[test]
    fn allow_deny_and_queue_entries() {
        let i = info(r#"{"data":{"user":"U","account":"AUTH","permissions":{"subscribe":{"allow":["_INBOX.>"]}}}}"#);
        assert!(!i.may_subscribe("$SYS.REQ.USER.AUTH", Some("kez-auth-callout")));
        let i = info(r#"{"data":{"user":"U","account":"AUTH","permissions":{"subscribe":{"deny":["$SYS.>"]}}}}"#);
        assert!(!i.may_subscribe("$SYS.REQ.USER.AUTH", None));
        let i = info(r#"{"data":{"permissions":{"subscribe":{"allow":["$SYS.REQ.USER.AUTH other-group"]}}}}"#);
        assert!(!i.may_subscribe("$SYS.REQ.USER.AUTH", Some("kez-auth-callout")));
        assert!(!i.may_subscribe("$SYS.REQ.USER.AUTH", None));
        let i = info(r#"{"data":{"permissions":{"subscribe":{"allow":["$SYS.REQ.USER.AUTH *"]}}}}"#);
        assert!(i.may_subscribe("$SYS.REQ.USER.AUTH", Some("kez-auth-callout")));
        let i = info(r#"{"data":{"permissions":{"publish":{"allow":["kez.svc.>"],"deny":["kez.svc.registry.>"]}}}}"#);
        assert!(i.may_publish("kez.svc.sigchain.v1.get"));
        assert!(!i.may_publish("kez.svc.registry.v1.lookup_key"));
        assert!(!i.may_publish("$JS.API.STREAM.CREATE.KEZ_INBOX"));
    }
}
