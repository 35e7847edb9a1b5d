//! The pieces of a kez-chat broker that the test harness and `kez-server up`
//! share: where the nats-server binary is, and the config spec of a stack
//! built from its [`Secrets`].

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::natsconf::{NatsConfSpec, NkeyUser, Permissions, SysUser};
use crate::secrets::{Secrets, ServiceUser};

/// What to tell someone who has no usable nats-server.
pub const INSTALL_HINT: &str = "pass --nats-server or set NATS_SERVER_BIN to a nats-server >= 2.10, or put one \
                                on PATH (`scripts/ensure-nats-server` installs one for development)";

/// Checks nats-server ≥ 2.10 at `explicit` (a flag or `NATS_SERVER_BIN`, read by the caller),
/// else finds it on `PATH`. Deliberately nothing else: the production binary never guesses
/// at a development install; the test kit and `./kez` pass theirs explicitly.
pub fn find_nats_server(explicit: Option<&Path>) -> Result<PathBuf, String> {
    let candidate = if let Some(p) = explicit {
        if !p.is_file() {
            return Err(format!("{} does not exist; {INSTALL_HINT}", p.display()));
        }
        p.to_path_buf()
    } else {
        std::env::var_os("PATH")
            .into_iter()
            .flat_map(|path| std::env::split_paths(&path).map(|d| d.join("nats-server")).collect::<Vec<_>>())
            .find(|p| p.is_file())
            .ok_or_else(|| format!("nats-server not found; {INSTALL_HINT}"))?
    };
    let out = Command::new(&candidate)
        .arg("--version")
        .output()
        .map_err(|e| format!("running {} --version: {e}; {INSTALL_HINT}", candidate.display()))?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    // "nats-server: v2.15.1"
    if !text.contains("nats-server") {
        return Err(format!("{} --version printed {text:?}, not a nats-server; {INSTALL_HINT}", candidate.display()));
    }
    let version = text
        .split(|c: char| c.is_whitespace() || c == 'v')
        .find_map(|w| {
            let mut it = w.split('.');
            let major: u32 = it.next()?.parse().ok()?;
            let minor: u32 = it.next()?.parse().ok()?;
            Some((major, minor))
        })
        .ok_or_else(|| format!("{} --version printed {text:?}; {INSTALL_HINT}", candidate.display()))?;
    if version < (2, 10) {
        return Err(format!(
            "{} is nats-server {}.{}, need >= 2.10 (auth callout); {INSTALL_HINT}",
            candidate.display(),
            version.0,
            version.1
        ));
    }
    Ok(candidate)
}

/// Listener ports of one broker.
#[derive(Debug, Clone, Copy)]
pub struct Ports {
    /// Native NATS clients.
    pub client: u16,
    /// WebSocket clients (browsers).
    pub websocket: u16,
    /// HTTP monitoring.
    pub monitor: u16,
}

/// JetStream API and KV subjects a service needs for one of its own buckets (create or bind,
/// get, create/compare-and-set, watch and list keys), and nothing for anyone else's.
fn kv_bucket(bucket: &str) -> Vec<String> {
    let stream = format!("KV_{bucket}");
    vec![
        format!("$KV.{bucket}.>"),
        format!("$JS.API.STREAM.INFO.{stream}"),
        format!("$JS.API.STREAM.CREATE.{stream}"),
        format!("$JS.API.STREAM.UPDATE.{stream}"),
        format!("$JS.API.STREAM.MSG.GET.{stream}"),
        format!("$JS.API.DIRECT.GET.{stream}"),
        format!("$JS.API.DIRECT.GET.{stream}.>"),
        format!("$JS.API.CONSUMER.CREATE.{stream}"),
        format!("$JS.API.CONSUMER.CREATE.{stream}.>"),
        format!("$JS.API.CONSUMER.DELETE.{stream}.>"),
        format!("$JS.API.CONSUMER.INFO.{stream}.>"),
        format!("$JS.FC.{stream}.>"),
        format!("$JS.ACK.{stream}.>"),
    ]
}

/// The least-privilege permissions of each service user (PROTOCOL.md §9.5): its own endpoints,
/// its own buckets, the requests it makes, replies to its own requests (`_INBOX.>` inside APP,
/// where no end user lives) and answers to requests it receives. `None` for ops (everything).
pub fn service_permissions(user: ServiceUser) -> Option<Permissions> {
    use kv_schemas::subjects as s;
    let endpoints = |name: &str| vec![format!("kez.svc.{name}.v1.>"), "$SRV.>".to_owned(), "_INBOX.>".to_owned()];
    // `_INBOX.>`: the kit's settle check publishes to its own reply inbox.
    let mut publish = vec!["$JS.API.INFO".to_owned(), "_INBOX.>".to_owned()];
    let subscribe = match user {
        ServiceUser::Ops => return None,
        ServiceUser::Registry => {
            for b in [s::BUCKET_HANDLES, s::BUCKET_KEYS, s::BUCKET_REG_NONCES] {
                publish.extend(kv_bucket(b));
            }
            endpoints("registry")
        }
        ServiceUser::Sigchain => {
            publish.extend(kv_bucket(s::BUCKET_SIGCHAINS));
            publish.push(s::svc::REGISTRY_LOOKUP_KEY.to_owned());
            endpoints("sigchain")
        }
        ServiceUser::Manifest => {
            publish.extend(kv_bucket(s::BUCKET_MANIFESTS));
            publish.extend([s::svc::REGISTRY_LOOKUP_KEY.to_owned(), s::svc::SIGCHAIN_STATE.to_owned()]);
            endpoints("manifest")
        }
        ServiceUser::Webfinger => {
            publish.extend([
                s::svc::REGISTRY_LOOKUP_HANDLE.to_owned(),
                s::svc::SIGCHAIN_STATE.to_owned(),
                s::svc::SIGCHAIN_GET.to_owned(),
            ]);
            endpoints("webfinger")
        }
        ServiceUser::AuthCallout => {
            // USER.INFO: the start-up checks read the worker's own permissions.
            publish.extend([s::svc::REGISTRY_LOOKUP_KEY.to_owned(), "$SYS.REQ.USER.INFO".to_owned()]);
            endpoints("auth")
        }
        ServiceUser::Inbox => {
            for b in [s::BUCKET_DEVICES, s::BUCKET_BLOCKS] {
                publish.extend(kv_bucket(b));
            }
            publish.extend([
                format!("{}.>", crate::natsconf::INBOX_JS_API_PREFIX),
                s::INBOX_WILDCARD.to_owned(),
                s::svc::REGISTRY_LOOKUP_KEY.to_owned(),
                // Wave-1 migration: the old KEZ_INBOX stream in APP is read, re-pointed and deleted.
                format!("$JS.API.STREAM.*.{}", s::INBOX_STREAM),
                format!("$JS.API.STREAM.MSG.GET.{}", s::INBOX_STREAM),
                format!("$JS.API.CONSUMER.*.{}", s::INBOX_STREAM),
                format!("$JS.API.CONSUMER.*.{}.>", s::INBOX_STREAM),
                format!("$JS.API.DIRECT.GET.{}", s::INBOX_STREAM),
                format!("$JS.ACK.{}.>", s::INBOX_STREAM),
                format!("$JS.FC.{}.>", s::INBOX_STREAM),
            ]);
            let mut sub = endpoints("inbox");
            sub.push(s::USER_REQUEST_WILDCARD.to_owned());
            sub
        }
        ServiceUser::Gateway => {
            // Requests to every service endpoint and health pings; no KV, no stream, no user subjects.
            return Some(Permissions {
                publish_allow: vec!["kez.svc.*.v1.*".to_owned(), "$SRV.PING.>".to_owned()],
                subscribe_allow: vec!["_INBOX.>".to_owned()],
                ..Permissions::default()
            });
        }
    };
    Some(Permissions {
        publish_allow: publish,
        subscribe_allow: subscribe,
        allow_responses: true,
        ..Permissions::default()
    })
}

/// The config spec of a single-node stack whose users come from `secrets`.
pub fn stack_spec(
    secrets: &Secrets,
    server_name: &str,
    host: &str,
    ports: Ports,
    store_dir: &Path,
    allowed_origins: Vec<String>,
    permissions: &BTreeMap<ServiceUser, Permissions>,
) -> Result<NatsConfSpec, String> {
    let service_users = ServiceUser::ALL
        .into_iter()
        .filter(|s| *s != ServiceUser::Ops)
        .map(|s| {
            let user = NkeyUser::new(s.name(), secrets.service(s).public_key());
            match permissions.get(&s).cloned().or_else(|| service_permissions(s)) {
                Some(p) => user.with_permissions(p),
                None => user,
            }
        })
        .collect();
    let defaults = NatsConfSpec::default();
    Ok(NatsConfSpec {
        server_name: server_name.to_owned(),
        host: host.to_owned(),
        client_port: ports.client,
        websocket_port: ports.websocket,
        http_port: Some(ports.monitor),
        store_dir: store_dir
            .to_str()
            .ok_or_else(|| format!("store path is not UTF-8: {}", store_dir.display()))?
            .to_owned(),
        callout_issuer: secrets.callout_issuer().public_key(),
        service_users,
        callout_worker: NkeyUser::new("auth-callout-worker", secrets.callout_worker().public_key()),
        ops_user: NkeyUser::new("ops", secrets.ops().public_key()),
        sys_user: SysUser { user: secrets.sys_user().to_owned(), password: secrets.sys_password().expose().to_owned() },
        websocket_allowed_origins: allowed_origins,
        cluster: None,
        ..defaults
    })
}
