//! Renders the nats-server configuration of a kez-chat node.
//!
//! Pure: no files, no sockets. [`render`] turns a [`NatsConfSpec`] into the text of a
//! `nats.conf`; the caller writes it (mode 0600: it contains the system user's password).
//! [`NatsConfSpec::validate`] catches the mistakes that `nats-server -t` does not
//! (websocket origins, key prefixes), so call it before rendering.
//!
//! The shape follows PROTOCOL.md §9 and the nats-server behaviour written down in
//! docs/nats-server.md:
//!
//! - account `AUTH`: the auth-callout worker. The server publishes `$SYS.REQ.USER.AUTH` here.
//! - account `APP`: the backend services, their KV buckets, the gateway and the ops user.
//! - account `INBOX`: the inbox stream only, under its own JetStream limit; nobody connects.
//! - account `USERS`: every end user the callout admits (the user JWT names `aud: "USERS"`). It
//!   has no JetStream and no services; users reach `APP` and `INBOX` only through the service
//!   imports below, so whatever a user makes the server publish (reply subjects, JetStream
//!   deliveries) stays in `USERS` (PROTOCOL.md §9.1).
//! - account `SYS`: the system account (monitoring over NATS, `$SYS` requests).
//!
//! All service/worker/ops users are **nkey** users. Besides being the right credential, this
//! makes the server send a nonce in INFO; with only user/password users it sends none and
//! end-user signatures would be replayable (docs/nats-server.md). They are listed in `auth_users` so
//! they skip the callout.
//!
//! `deploy/nats.conf` is the hand-annotated reference copy of this output; a unit test keeps
//! the two from drifting apart (same top-level blocks and second-level keys).

use std::fmt::Write as _;

/// Name of the account holding the callout worker.
pub const AUTH_ACCOUNT: &str = "AUTH";
/// Name of the services' account (services, KV, gateway, ops).
pub const APP_ACCOUNT: &str = "APP";
/// Name of the account holding the inbox stream.
pub const INBOX_ACCOUNT: &str = "INBOX";
/// Name of the end users' account (the callout's target account).
pub const USERS_ACCOUNT: &str = "USERS";
/// Prefix under which `APP` reaches the JetStream API of `INBOX`.
pub const INBOX_JS_API_PREFIX: &str = "$JS.INBOX.API";
/// Name of the system account.
pub const SYS_ACCOUNT: &str = "SYS";

/// How long the server waits for a client's CONNECT and, with a callout, for the worker's
/// answer. 2 s is the server default (const AUTH_TIMEOUT); we write it out so operators see
/// the bound that also applies to the callout round trip.
pub const AUTH_TIMEOUT_SECS: u32 = 2;

const MIB: u64 = 1 << 20;
const GIB: u64 = 1 << 30;

/// Everything that varies between kez-chat nats-server deployments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NatsConfSpec {
    /// Unique per node; shows in monitoring, JetStream placement and cluster routes.
    pub server_name: String,
    /// Interface for the client, websocket and monitoring listeners.
    pub host: String,
    /// Port of the NATS (TCP) client listener.
    pub client_port: u16,
    /// Port of the WebSocket listener (browsers, via nats.js).
    pub websocket_port: u16,
    /// Port of the HTTP monitoring listener; `None` turns it off.
    pub http_port: Option<u16>,
    /// Interface of the monitoring listener. It has no authentication and lists every
    /// connection's key, so it defaults to loopback whatever `host` is.
    pub monitor_host: String,
    /// JetStream store directory. The server stores under `<store_dir>/jetstream`.
    pub store_dir: String,
    /// Upper bound for file-backed JetStream data, in bytes.
    pub max_file_store: u64,
    /// File storage the `INBOX` account may use; `None` = three quarters of `max_file_store`.
    /// The rest stays for the services' KV buckets, so a full inbox store never stops
    /// registrations or sigchain appends.
    pub inbox_max_file: Option<u64>,
    /// Upper bound for memory-backed JetStream data, in bytes; `None` = server default
    /// (75% of RAM).
    pub max_memory_store: Option<u64>,
    /// `jetstream { sync_interval: always }`: fsync every write before acking it.
    pub sync_interval_always: bool,
    /// Largest message the server accepts, in bytes (server default 1 MiB).
    pub max_payload: u64,
    /// Public ACCOUNT nkey (`A…`) whose seed signs the callout's user JWTs.
    pub callout_issuer: String,
    /// Backend services, nkey users in `APP`.
    pub service_users: Vec<NkeyUser>,
    /// The auth-callout worker, nkey user in `AUTH`.
    pub callout_worker: NkeyUser,
    /// Operator/admin nkey user in `APP` with full permissions (`nats micro list`, KV admin).
    pub ops_user: NkeyUser,
    /// Password user in `SYS`.
    pub sys_user: SysUser,
    /// Absolute `http(s)://host[:port]` origins allowed to open a WebSocket.
    /// Empty = key omitted = any origin.
    pub websocket_allowed_origins: Vec<String>,
    /// Cluster block for multi-node deployments.
    pub cluster: Option<ClusterSpec>,
}

impl Default for NatsConfSpec {
    /// Single-node development defaults on loopback. The keys are empty and must be filled in
    /// (see [`crate::secrets`]); [`NatsConfSpec::validate`] rejects them until then.
    fn default() -> Self {
        Self {
            server_name: "kez-1".to_owned(),
            host: "127.0.0.1".to_owned(),
            client_port: 4222,
            websocket_port: 4280,
            http_port: Some(8222),
            monitor_host: "127.0.0.1".to_owned(),
            store_dir: "./data/jetstream".to_owned(),
            max_file_store: GIB,
            inbox_max_file: None,
            max_memory_store: Some(256 * MIB),
            sync_interval_always: true,
            max_payload: MIB,
            callout_issuer: String::new(),
            service_users: Vec::new(),
            callout_worker: NkeyUser::new("auth-callout-worker", ""),
            ops_user: NkeyUser::new("ops", ""),
            sys_user: SysUser { user: "sys".to_owned(), password: String::new() },
            websocket_allowed_origins: Vec::new(),
            cluster: None,
        }
    }
}

/// An nkey user entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NkeyUser {
    /// Label written as a comment next to the key (nkey users have no name field).
    pub label: String,
    /// Public user nkey (`U…`).
    pub nkey: String,
    /// Static permissions; `None` = everything the account allows.
    pub permissions: Option<Permissions>,
}

impl NkeyUser {
    pub fn new(label: impl Into<String>, nkey: impl Into<String>) -> Self {
        Self { label: label.into(), nkey: nkey.into(), permissions: None }
    }

    pub fn with_permissions(mut self, permissions: Permissions) -> Self {
        self.permissions = Some(permissions);
        self
    }
}

/// Static subject permissions of a configured user.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Permissions {
    pub publish_allow: Vec<String>,
    pub publish_deny: Vec<String>,
    pub subscribe_allow: Vec<String>,
    pub subscribe_deny: Vec<String>,
    /// `allow_responses: true`: may publish one reply to the reply subject of each request it
    /// received, without a publish grant on `_INBOX.>` (docs/nats-server.md).
    pub allow_responses: bool,
}

/// The system account's password user.
#[derive(Clone, PartialEq, Eq)]
pub struct SysUser {
    pub user: String,
    pub password: String,
}

impl std::fmt::Debug for SysUser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SysUser").field("user", &self.user).field("password", &"<redacted>").finish()
    }
}

/// `cluster {}` block. Every node of a cluster needs the same accounts and authorization.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterSpec {
    /// Cluster name; identical on every node.
    pub name: String,
    /// `host:port` this node listens on for routes.
    pub listen: String,
    /// `nats-route://host:port` of every node (listing this node too is harmless).
    pub routes: Vec<String>,
}

/// A spec that would render a config the server rejects, or one that is unsafe.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NatsConfError {
    #[error("{field}: {problem}")]
    Invalid { field: String, problem: String },
}

fn invalid(field: impl Into<String>, problem: impl Into<String>) -> NatsConfError {
    NatsConfError::Invalid { field: field.into(), problem: problem.into() }
}

impl NatsConfSpec {
    /// Checks what `nats-server -t` would miss or only report at startup.
    pub fn validate(&self) -> Result<(), NatsConfError> {
        if self.server_name.trim().is_empty() {
            return Err(invalid("server_name", "must not be empty"));
        }
        if self.host.trim().is_empty() {
            return Err(invalid("host", "must not be empty"));
        }
        if self.monitor_host.trim().is_empty() {
            return Err(invalid("monitor_host", "must not be empty"));
        }
        if self.store_dir.trim().is_empty() {
            return Err(invalid("store_dir", "must not be empty"));
        }
        // Server rule: max_payload must not exceed max_pending (64 MiB default).
        if self.max_payload == 0 || self.max_payload > 64 * MIB {
            return Err(invalid("max_payload", "must be between 1 byte and 64 MiB"));
        }
        if self.max_file_store == 0 {
            return Err(invalid("max_file_store", "must be positive"));
        }
        if let Some(inbox) = self.inbox_max_file
            && (inbox == 0 || inbox >= self.max_file_store)
        {
            return Err(invalid("inbox_max_file", "must be positive and smaller than max_file_store"));
        }
        check_public_key("callout_issuer", &self.callout_issuer, 'A')?;
        check_public_key("callout_worker", &self.callout_worker.nkey, 'U')?;
        check_public_key("ops_user", &self.ops_user.nkey, 'U')?;
        for (i, u) in self.service_users.iter().enumerate() {
            check_public_key(&format!("service_users[{i}] ({})", u.label), &u.nkey, 'U')?;
        }
        let mut seen = std::collections::BTreeSet::new();
        for key in self.all_nkeys() {
            if !seen.insert(key) {
                return Err(invalid("users", format!("nkey {key} is configured twice")));
            }
        }
        if self.sys_user.user.trim().is_empty() || self.sys_user.password.is_empty() {
            return Err(invalid("sys_user", "user and password must not be empty"));
        }
        for origin in &self.websocket_allowed_origins {
            check_origin(origin)?;
        }
        let ports = [Some(self.client_port), Some(self.websocket_port), self.http_port];
        let ports: Vec<u16> = ports.into_iter().flatten().collect();
        if ports.contains(&0) {
            return Err(invalid("ports", "port 0 cannot be advertised; pick a real port"));
        }
        for (i, p) in ports.iter().enumerate() {
            if ports[i + 1..].contains(p) {
                return Err(invalid("ports", format!("port {p} is used twice")));
            }
        }
        if let Some(c) = &self.cluster {
            if c.name.trim().is_empty() || c.listen.trim().is_empty() {
                return Err(invalid("cluster", "name and listen must not be empty"));
            }
            for r in &c.routes {
                if !r.starts_with("nats-route://") && !r.starts_with("nats://") {
                    return Err(invalid("cluster.routes", format!("{r:?} is not a nats-route:// URL")));
                }
            }
        }
        Ok(())
    }

    /// Every user that skips the callout: all nkey users plus the sys user name.
    pub fn auth_users(&self) -> Vec<&str> {
        let mut users: Vec<&str> = self.all_nkeys().collect();
        users.push(self.sys_user.user.as_str());
        users
    }

    /// The `INBOX` account's file-storage limit in bytes.
    pub fn inbox_file_limit(&self) -> u64 {
        self.inbox_max_file.unwrap_or(self.max_file_store / 4 * 3)
    }

    fn all_nkeys(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.callout_worker.nkey.as_str())
            .chain(self.service_users.iter().map(|u| u.nkey.as_str()))
            .chain(std::iter::once(self.ops_user.nkey.as_str()))
    }
}

fn check_public_key(field: &str, key: &str, prefix: char) -> Result<(), NatsConfError> {
    let kind = if prefix == 'A' { "account" } else { "user" };
    if !key.starts_with(prefix) {
        return Err(invalid(field, format!("expected a public {kind} nkey starting with '{prefix}', got {key:?}")));
    }
    nkeys::from_public_key(key).map(|_| ()).map_err(|e| invalid(field, format!("not a valid public {kind} nkey: {e}")))
}

/// nats-server needs absolute `http(s)://host[:port]` origins; `127.0.0.1:8080` passes
/// `-t` but aborts startup with "unable to parse allowed origin" (docs/nats-server.md).
fn check_origin(origin: &str) -> Result<(), NatsConfError> {
    let rest = origin.strip_prefix("http://").or_else(|| origin.strip_prefix("https://")).ok_or_else(|| {
        invalid("websocket_allowed_origins", format!("{origin:?} must start with http:// or https://"))
    })?;
    // The server compares scheme, host and port only; a path would be silently ignored
    // and mislead whoever reads the config.
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    if rest.is_empty() || rest.chars().any(|c| c.is_whitespace() || matches!(c, '/' | '?' | '#' | '"' | '\\')) {
        return Err(invalid(
            "websocket_allowed_origins",
            format!("{origin:?} must be scheme://host[:port] with no path"),
        ));
    }
    Ok(())
}

/// Quotes a string for the NATS config lexer (double quotes; `\\`, `\"`, `\n`, `\t`, `\r`).
/// Quoting also stops the lexer from treating a leading `$` as a variable reference.
fn q(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Sizes with binary suffixes. nats-server reads `MB`/`GB` as 1024-based (checked on 2.15.1:
/// `max_payload: 2MB` shows as 2097152 in /varz), while a bare `K`/`M`/`G` would be 1000-based.
fn size(bytes: u64) -> String {
    if bytes >= GIB && bytes.is_multiple_of(GIB) {
        format!("{}GB", bytes / GIB)
    } else if bytes >= MIB && bytes.is_multiple_of(MIB) {
        format!("{}MB", bytes / MIB)
    } else {
        bytes.to_string()
    }
}

fn list(items: &[String]) -> String {
    let quoted: Vec<String> = items.iter().map(|s| q(s)).collect();
    format!("[{}]", quoted.join(", "))
}

fn render_user(out: &mut String, indent: &str, u: &NkeyUser) {
    match &u.permissions {
        None => {
            let _ = writeln!(out, "{indent}{{ nkey: {} }}  # {}", q(&u.nkey), u.label);
        }
        Some(p) => {
            let _ = writeln!(out, "{indent}# {}", u.label);
            let _ = writeln!(out, "{indent}{{");
            let _ = writeln!(out, "{indent}  nkey: {}", q(&u.nkey));
            let _ = writeln!(out, "{indent}  permissions: {{");
            render_allow_deny(out, &format!("{indent}    "), "publish", &p.publish_allow, &p.publish_deny);
            render_allow_deny(out, &format!("{indent}    "), "subscribe", &p.subscribe_allow, &p.subscribe_deny);
            if p.allow_responses {
                let _ = writeln!(out, "{indent}    allow_responses: true");
            }
            let _ = writeln!(out, "{indent}  }}");
            let _ = writeln!(out, "{indent}}}");
        }
    }
}

fn render_allow_deny(out: &mut String, indent: &str, key: &str, allow: &[String], deny: &[String]) {
    // An empty allow list means "everything not denied" to the server; omit rather than
    // write `allow: []`, which would read as "nothing" to a human.
    if allow.is_empty() && deny.is_empty() {
        return;
    }
    let mut parts = Vec::new();
    if !allow.is_empty() {
        parts.push(format!("allow: {}", list(allow)));
    }
    if !deny.is_empty() {
        parts.push(format!("deny: {}", list(deny)));
    }
    let _ = writeln!(out, "{indent}{key}: {{ {} }}", parts.join(", "));
}

/// Renders the nats-server config text. Call [`NatsConfSpec::validate`] first: `render` does
/// not check keys or origins, it only quotes strings so they cannot break the syntax.
pub fn render(spec: &NatsConfSpec) -> String {
    let mut o = String::with_capacity(4096);
    let host = &spec.host;

    o.push_str(
        "# nats-server configuration for kez-chat, rendered by kez-service-kit (natsconf.rs).\n\
         # deploy/nats.conf is the annotated reference copy. This file contains the system\n\
         # user's password: keep it mode 0600. It contains no nkey seeds.\n\n",
    );

    o.push_str("# Unique name of this node (monitoring, JetStream placement, cluster routes).\n");
    let _ = writeln!(o, "server_name: {}\n", q(&spec.server_name));

    o.push_str("# NATS client listener (services, CLI, ops). TCP, no TLS: bind to loopback or a private\n");
    o.push_str("# interface, or put TLS in front.\n");
    let _ = writeln!(o, "listen: {}\n", q(&format!("{host}:{}", spec.client_port)));

    if let Some(port) = spec.http_port {
        o.push_str("# HTTP monitoring (/healthz, /varz, /connz, /jsz). It has no authentication: never\n");
        o.push_str("# expose it beyond loopback or the ops network.\n");
        let _ = writeln!(o, "http: {}\n", q(&format!("{}:{port}", spec.monitor_host)));
    }

    o.push_str("# Largest message the server accepts (also caps KV values and object-store chunks).\n");
    let _ = writeln!(o, "max_payload: {}\n", size(spec.max_payload));

    o.push_str("# JetStream: the services' KV buckets (account APP) and the inbox stream (account INBOX).\n");
    o.push_str("jetstream {\n");
    o.push_str("  # Data directory; the server writes under <store_dir>/jetstream.\n");
    let _ = writeln!(o, "  store_dir: {}", q(&spec.store_dir));
    if let Some(mem) = spec.max_memory_store {
        o.push_str("  # Cap for memory-backed streams.\n");
        let _ = writeln!(o, "  max_memory_store: {}", size(mem));
    }
    o.push_str("  # Cap for file-backed streams; publishes fail once it is reached.\n");
    let _ = writeln!(o, "  max_file_store: {}", size(spec.max_file_store));
    if spec.sync_interval_always {
        o.push_str("  # fsync every write before the ack. The default (2 min) acks before data is on disk;\n");
        o.push_str("  # Jepsen lost acknowledged writes that way (NATS 2.12.1). Needs a restart to change.\n");
        o.push_str("  sync_interval: always\n");
    } else {
        o.push_str("  # sync_interval left at the server default (fsync every 2 min): acknowledged writes\n");
        o.push_str("  # can be lost on power failure. kez-chat's reference config uses `always`.\n");
    }
    o.push_str("}\n\n");

    o.push_str("# Accounts are isolated subject namespaces.\n");
    o.push_str("accounts {\n");
    let _ =
        writeln!(o, "  # {AUTH_ACCOUNT}: only the auth-callout worker. The server publishes $SYS.REQ.USER.AUTH here.");
    let _ = writeln!(o, "  {AUTH_ACCOUNT}: {{");
    o.push_str("    users: [\n");
    render_user(&mut o, "      ", &spec.callout_worker);
    o.push_str("    ]\n  }\n");
    render_app_inbox_users(&mut o, spec);
    let _ = writeln!(o, "  # {SYS_ACCOUNT}: the system account (server events, $SYS requests).");
    let _ = writeln!(o, "  {SYS_ACCOUNT}: {{");
    let _ =
        writeln!(o, "    users: [ {{ user: {}, password: {} }} ]", q(&spec.sys_user.user), q(&spec.sys_user.password));
    o.push_str("  }\n}\n");
    let _ = writeln!(o, "system_account: {SYS_ACCOUNT}\n");

    o.push_str("# Every connection not listed in auth_users is handed to the auth-callout worker, which\n");
    o.push_str("# verifies the client's nkey signature over the nonce and answers with a user JWT.\n");
    o.push_str("# NOT reloadable: a SIGHUP after changing auth_callout is rejected as a whole.\n");
    o.push_str("authorization {\n");
    o.push_str("  # Bound for CONNECT and for the worker's answer.\n");
    let _ = writeln!(o, "  timeout: {AUTH_TIMEOUT_SECS}s");
    o.push_str("  auth_callout {\n");
    o.push_str("    # Public ACCOUNT nkey whose seed (held by the worker) signs the user JWTs.\n");
    let _ = writeln!(o, "    issuer: {}", q(&spec.callout_issuer));
    o.push_str("    # Account where the callout requests are published and the worker connects.\n");
    let _ = writeln!(o, "    account: {AUTH_ACCOUNT}");
    o.push_str("    # Users that skip the callout: the worker itself, services, ops, sys.\n");
    o.push_str("    auth_users: [\n");
    for u in spec.auth_users() {
        let _ = writeln!(o, "      {}", q(u));
    }
    o.push_str("    ]\n  }\n}\n\n");

    o.push_str("# WebSocket listener for browsers (nats.js). Same callout as TCP clients.\n");
    o.push_str("websocket {\n");
    let _ = writeln!(o, "  listen: {}", q(&format!("{host}:{}", spec.websocket_port)));
    o.push_str("  # Plain ws://; terminate TLS in a reverse proxy. Without this (and without tls{}) the\n");
    o.push_str("  # server refuses to start.\n");
    o.push_str("  no_tls: true\n");
    o.push_str("  # Off: saves CPU; chat payloads are ciphertext and do not compress.\n");
    o.push_str("  compression: false\n");
    if !spec.websocket_allowed_origins.is_empty() {
        o.push_str("  # Browser pages that may connect (scheme, host and port must match). Requests without\n");
        o.push_str("  # an Origin header (non-browser clients) are always accepted.\n");
        let _ = writeln!(o, "  allowed_origins: {}", list(&spec.websocket_allowed_origins));
    }
    o.push_str("}\n");

    if let Some(c) = &spec.cluster {
        o.push_str("\n# Routes to the other nodes. accounts{} and authorization{} must be identical on every\n");
        o.push_str("# node. Routes are unauthenticated here: keep them on a private network.\n");
        o.push_str("cluster {\n");
        let _ = writeln!(o, "  name: {}", q(&c.name));
        let _ = writeln!(o, "  listen: {}", q(&c.listen));
        let _ = writeln!(o, "  routes: {}", list(&c.routes));
        o.push_str("}\n");
    }
    o
}

/// One service export or import line.
fn export(o: &mut String, subject: &str, to: &str, stream_response: bool) {
    let response = if stream_response { ", response_type: stream" } else { "" };
    let _ = writeln!(o, "      {{ service: {}, accounts: [{to}]{response} }}", q(subject));
}

fn import(o: &mut String, account: &str, subject: &str, local: Option<&str>) {
    let to = local.map(|l| format!(", to: {}", q(l))).unwrap_or_default();
    let _ = writeln!(o, "      {{ service: {{ account: {account}, subject: {} }}{to} }}", q(subject));
}

/// The subjects users import: (exporting account, subject, stream responses).
pub fn user_imports() -> [(&'static str, &'static str, bool); 3] {
    [
        (APP_ACCOUNT, kv_schemas::subjects::USER_REQUEST_WILDCARD, false),
        (INBOX_ACCOUNT, "$JS.API.CONSUMER.MSG.NEXT.KEZ_INBOX.*", true),
        (INBOX_ACCOUNT, "$JS.ACK.KEZ_INBOX.>", false),
    ]
}

fn render_app_inbox_users(o: &mut String, spec: &NatsConfSpec) {
    let _ = writeln!(o, "  # {APP_ACCOUNT}: the services, their KV buckets, the gateway and ops. Reaches the inbox");
    o.push_str(
        "  # stream only through INBOX's exports.
",
    );
    let _ = writeln!(o, "  {APP_ACCOUNT}: {{");
    o.push_str(
        "    jetstream: enabled
",
    );
    o.push_str(
        "    users: [
",
    );
    for u in &spec.service_users {
        render_user(o, "      ", u);
    }
    let mut ops = spec.ops_user.clone();
    // The ops user exists to see everything in APP; a permissions block would defeat it.
    ops.permissions = None;
    render_user(o, "      ", &ops);
    o.push_str(
        "    ]
",
    );
    o.push_str(
        "    imports: [
",
    );
    o.push_str(
        "      # The inbox service manages KEZ_INBOX through this prefix and stores relayed mail.
",
    );
    import(o, INBOX_ACCOUNT, "$JS.API.>", Some(&format!("{INBOX_JS_API_PREFIX}.>")));
    import(o, INBOX_ACCOUNT, "kez.inbox.>", None);
    o.push_str(
        "    ]
",
    );
    o.push_str(
        "    exports: [
",
    );
    o.push_str(
        "      # User requests (send, devices, block); the second token is the caller's key.
",
    );
    export(o, kv_schemas::subjects::USER_REQUEST_WILDCARD, USERS_ACCOUNT, false);
    o.push_str(
        "    ]
  }
",
    );

    let _ = writeln!(o, "  # {INBOX_ACCOUNT}: the inbox stream KEZ_INBOX and nothing else; nobody connects here.");
    o.push_str(
        "  # Its own storage limit keeps a full inbox store from filling APP's.
",
    );
    let _ = writeln!(o, "  {INBOX_ACCOUNT}: {{");
    let _ = writeln!(o, "    jetstream: {{ max_file: {}, max_mem: 0 }}", size(spec.inbox_file_limit()));
    o.push_str(
        "    exports: [
",
    );
    export(o, "$JS.API.>", APP_ACCOUNT, false);
    export(o, "kez.inbox.>", APP_ACCOUNT, false);
    o.push_str(
        "      # Users pull from and ack their device consumers; permissions pick the consumer.
",
    );
    for (from, subject, stream) in user_imports() {
        if from == INBOX_ACCOUNT {
            export(o, subject, USERS_ACCOUNT, stream);
        }
    }
    o.push_str(
        "    ]
  }
",
    );

    let _ = writeln!(
        o,
        "  # {USERS_ACCOUNT}: every end user admitted by the callout (user JWT aud \"{USERS_ACCOUNT}\"). No"
    );
    o.push_str(
        "  # JetStream, no services: anything a user makes the server publish stays here.
",
    );
    let _ = writeln!(o, "  {USERS_ACCOUNT}: {{");
    o.push_str(
        "    imports: [
",
    );
    for (from, subject, _) in user_imports() {
        import(o, from, subject, None);
    }
    o.push_str(
        "    ]
  }
",
    );
}

/// Block and key names of a config text, as `top` or `top.child` paths (depth ≤ 2).
///
/// A small line-oriented scanner good enough for our own rendering and `deploy/nats.conf`
/// (comments start with `#` or `//`; strings are double-quoted). Only the drift tests below
/// use it: it is compiled for tests alone, never shipped.
#[cfg(test)]
fn key_paths(text: &str) -> std::collections::BTreeSet<String> {
    let mut paths = std::collections::BTreeSet::new();
    // Stack of open `{`/`[` with the key that opened them (None for anonymous ones).
    let mut stack: Vec<Option<String>> = Vec::new();
    for raw in text.lines() {
        let line = strip_comment(raw);
        let mut chars = line.char_indices().peekable();
        let mut in_str = false;
        let mut escaped = false;
        let mut last_key: Option<String> = None;
        while let Some((i, c)) = chars.next() {
            if in_str {
                if escaped {
                    escaped = false;
                } else if c == '\\' {
                    escaped = true;
                } else if c == '"' {
                    in_str = false;
                }
                continue;
            }
            match c {
                '"' => in_str = true,
                '{' | '[' => stack.push(last_key.take()),
                '}' | ']' => {
                    stack.pop();
                    last_key = None;
                }
                c if c.is_ascii_alphabetic() || c == '_' || c == '$' => {
                    let start = i;
                    let mut end = i + c.len_utf8();
                    while let Some(&(j, d)) = chars.peek() {
                        if d.is_ascii_alphanumeric() || d == '_' || d == '-' || d == '$' {
                            end = j + d.len_utf8();
                            chars.next();
                        } else {
                            break;
                        }
                    }
                    let word = &line[start..end];
                    let after = line[end..].trim_start();
                    if after.starts_with(':') || after.starts_with('=') || after.starts_with('{') {
                        let named: Vec<&str> = stack.iter().map(|s| s.as_deref().unwrap_or("")).collect();
                        // Only record keys whose enclosing blocks are all named (skips the
                        // entries of arrays such as users: [ { nkey: … } ]).
                        if named.len() < 2 && named.iter().all(|s| !s.is_empty()) {
                            let mut p = named.join(".");
                            if !p.is_empty() {
                                p.push('.');
                            }
                            p.push_str(word);
                            paths.insert(p);
                        }
                        last_key = Some(word.to_owned());
                    } else {
                        last_key = None;
                    }
                }
                _ => {}
            }
        }
    }
    paths
}

#[cfg(test)]
fn strip_comment(line: &str) -> &str {
    let mut in_str = false;
    let mut escaped = false;
    let bytes = line.as_bytes();
    for (i, &b) in bytes.iter().enumerate() {
        if in_str {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_str = false;
            }
            continue;
        }
        match b {
            b'"' => in_str = true,
            b'#' => return &line[..i],
            b'/' if bytes.get(i + 1) == Some(&b'/') => return &line[..i],
            _ => {}
        }
    }
    line
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn user_key() -> String {
        nkeys::KeyPair::new_user().public_key()
    }

    fn spec() -> NatsConfSpec {
        NatsConfSpec {
            server_name: "kez-test".into(),
            client_port: 14222,
            websocket_port: 14280,
            http_port: Some(18222),
            store_dir: "/tmp/kez js".into(),
            callout_issuer: nkeys::KeyPair::new_account().public_key(),
            service_users: vec![
                NkeyUser::new("registry", user_key()),
                NkeyUser::new("gateway", user_key()).with_permissions(Permissions {
                    publish_allow: vec!["kez.svc.>".into()],
                    subscribe_allow: vec!["_INBOX.gw.>".into()],
                    allow_responses: true,
                    ..Permissions::default()
                }),
            ],
            callout_worker: NkeyUser::new("auth-callout-worker", user_key()),
            ops_user: NkeyUser::new("ops", user_key()),
            sys_user: SysUser { user: "sys".into(), password: "pw\"with\\quote".into() },
            websocket_allowed_origins: vec!["http://127.0.0.1:8080".into(), "https://chat.example".into()],
            ..NatsConfSpec::default()
        }
    }

    #[test]
    fn renders_required_blocks() {
        let s = spec();
        s.validate().unwrap();
        let text = render(&s);
        for needle in [
            "server_name: \"kez-test\"",
            "listen: \"127.0.0.1:14222\"",
            "http: \"127.0.0.1:18222\"",
            "max_payload: 1MB",
            "store_dir: \"/tmp/kez js\"",
            "max_file_store: 1GB",
            "max_memory_store: 256MB",
            "sync_interval: always",
            "AUTH: {",
            "APP: {",
            "INBOX: {",
            "USERS: {",
            "jetstream: enabled",
            "jetstream: { max_file: 768MB, max_mem: 0 }",
            "SYS: {",
            "system_account: SYS",
            "timeout: 2s",
            "account: AUTH",
            "no_tls: true",
            "compression: false",
            "listen: \"127.0.0.1:14280\"",
        ] {
            assert!(text.contains(needle), "missing {needle:?} in:\n{text}");
        }
        assert!(text.contains(&format!("issuer: \"{}\"", s.callout_issuer)));
        // Every nkey user and the sys user bypass the callout.
        let auth_block = &text[text.find("auth_users").unwrap()..];
        for u in s.auth_users() {
            assert!(auth_block.contains(&format!("\"{u}\"")), "{u} not in auth_users");
        }
        assert_eq!(s.auth_users().len(), 2 + 1 + 1 + 1);
        // Password is escaped, not raw.
        assert!(text.contains(r#"password: "pw\"with\\quote""#));
        assert!(!text.contains("cluster {"));
    }

    #[test]
    fn permissions_rendered_for_restricted_users_only() {
        let s = spec();
        let text = render(&s);
        assert!(text.contains("publish: { allow: [\"kez.svc.>\"] }"));
        assert!(text.contains("subscribe: { allow: [\"_INBOX.gw.>\"] }"));
        assert!(text.contains("allow_responses: true"));
        assert_eq!(text.matches("permissions: {").count(), 1);
        // ops never gets a permissions block even if one is set by mistake.
        let mut s2 = s.clone();
        s2.ops_user.permissions = Some(Permissions { publish_deny: vec![">".into()], ..Permissions::default() });
        assert_eq!(render(&s2).matches("permissions: {").count(), 1);
    }

    #[test]
    fn origins_formatting() {
        let text = render(&spec());
        assert!(text.contains("allowed_origins: [\"http://127.0.0.1:8080\", \"https://chat.example\"]"));
        let mut s = spec();
        s.websocket_allowed_origins.clear();
        assert!(!render(&s).contains("allowed_origins"));
    }

    #[test]
    fn origin_validation() {
        for bad in ["127.0.0.1:8080", "ftp://x", "http://", "http://a/b", "http://a b", "http://a?x"] {
            let mut s = spec();
            s.websocket_allowed_origins = vec![bad.into()];
            assert!(s.validate().is_err(), "{bad} accepted");
        }
        let mut s = spec();
        s.websocket_allowed_origins = vec!["http://localhost:5173/".into()];
        s.validate().unwrap();
    }

    #[test]
    fn key_validation() {
        let mut s = spec();
        s.callout_issuer = user_key();
        assert!(s.validate().unwrap_err().to_string().contains("account nkey"));
        let mut s = spec();
        s.service_users[0].nkey = "UNOTAKEY".into();
        assert!(s.validate().unwrap_err().to_string().contains("registry"));
        let mut s = spec();
        s.ops_user.nkey = s.callout_worker.nkey.clone();
        assert!(s.validate().unwrap_err().to_string().contains("twice"));
        let mut s = spec();
        s.http_port = Some(s.client_port);
        assert!(s.validate().is_err());
        assert!(NatsConfSpec::default().validate().is_err());
    }

    #[test]
    fn cluster_block_optional() {
        let mut s = spec();
        s.cluster = Some(ClusterSpec {
            name: "kez-local".into(),
            listen: "127.0.0.1:16231".into(),
            routes: vec!["nats-route://127.0.0.1:16231".into(), "nats-route://127.0.0.1:16232".into()],
        });
        s.validate().unwrap();
        let text = render(&s);
        assert!(text.contains("cluster {"));
        assert!(text.contains("name: \"kez-local\""));
        assert!(text.contains("routes: [\"nats-route://127.0.0.1:16231\", \"nats-route://127.0.0.1:16232\"]"));
        let paths = key_paths(&text);
        assert!(paths.contains("cluster.routes"));
    }

    #[test]
    fn sync_interval_can_be_turned_off() {
        let mut s = spec();
        s.sync_interval_always = false;
        let text = render(&s);
        assert!(!text.contains("sync_interval: always"));
    }

    #[test]
    fn sizes() {
        assert_eq!(size(MIB), "1MB");
        assert_eq!(size(8 * MIB), "8MB");
        assert_eq!(size(2 * GIB), "2GB");
        assert_eq!(size(1536 * MIB), "1536MB");
        assert_eq!(size(1000), "1000");
    }

    #[test]
    fn no_http_block_when_disabled() {
        let mut s = spec();
        s.http_port = None;
        assert!(!key_paths(&render(&s)).contains("http"));
    }

    #[test]
    fn sys_password_redacted_in_debug() {
        let s = spec();
        let dbg = format!("{s:?}");
        assert!(!dbg.contains("pw\\\"with"));
        assert!(dbg.contains("<redacted>"));
    }

    #[test]
    fn key_paths_scanner() {
        let text = "a: 1 # x: 2\nb {\n  c: \"#d: 3\"\n  e: [ { f: 1 } ]\n  g { h: 1 }\n}\n// i: 1\n";
        let p: Vec<String> = key_paths(text).into_iter().collect();
        assert_eq!(p, ["a", "b", "b.c", "b.e", "b.g"]);
    }

    /// deploy/nats.conf is the operators' annotated copy of this renderer's output. Keep
    /// their block structure identical (top level and one level down).
    #[test]
    fn deploy_reference_matches_renderer() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../deploy/nats.conf");
        let deploy = std::fs::read_to_string(path).unwrap();
        let rendered = key_paths(&render(&spec()));
        let reference = key_paths(&deploy);
        let only_rendered: Vec<_> = rendered.difference(&reference).collect();
        let only_reference: Vec<_> = reference.difference(&rendered).collect();
        assert!(
            only_rendered.is_empty() && only_reference.is_empty(),
            "deploy/nats.conf drifted from natsconf::render.\n only in render: {only_rendered:?}\n only in deploy/nats.conf: {only_reference:?}"
        );
        // The reference documents the (commented-out) cluster block and sync_interval.
        assert!(deploy.contains("# cluster {"));
        assert!(deploy.contains("sync_interval: always"));
    }
}
