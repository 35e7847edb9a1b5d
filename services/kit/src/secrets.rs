//! The stack's secrets: generated once, stored in the data folder, reused on every start.
//!
//! One file, `<data_dir>/secrets.json`, mode 0600:
//!
//! ```json
//! {
//!   "version": 1,
//!   "callout_issuer_seed": "SA…",
//!   "callout_worker_seed": "SU…",
//!   "service_seeds": { "registry": "SU…", "webfinger": "SU…", … },
//!   "sys_password": "<64 hex chars>",
//!   "sender_tag_key": "<64 hex chars>"
//! }
//! ```
//!
//! - `callout_issuer`: ACCOUNT nkey. Its public key is `auth_callout.issuer` in nats.conf; the
//!   worker signs user JWTs with the seed.
//! - `callout_worker`: USER nkey of the worker in account AUTH (subscribes `$SYS.REQ.USER.AUTH`).
//! - one USER nkey per [`ServiceUser`] in account APP. `auth-callout` has its own APP user as
//!   well, separate from the worker: the worker lives in AUTH and cannot see APP's KV, so the
//!   callout service uses this second identity to look up registrations and revocations.
//! - `sys_password`: password of the `sys` user in the system account.
//! - `sender_tag_key`: the relay's 32-byte key for per-sender inbox tags (PROTOCOL.md §9.1);
//!   every inbox worker of a stack must share it, and changing it resets every sender's quota
//!   bookkeeping and block list (tags change).
//!
//! Rules: the file is created atomically with its final permissions (a temp file created with
//! mode 0600, written, fsynced, then hard-linked into place, which fails instead of replacing a
//! file another process created first). A file that exists but cannot be parsed is an error,
//! never silently replaced: replacing it would rotate every key and lock out running services.
//! Entries for services added in a newer release are generated and the file is rewritten
//! (temp + rename). Seeds never appear in `Debug` output.

use std::collections::BTreeMap;
use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};

use nkeys::{KeyPair, KeyPairType};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

/// File name inside the data folder.
pub const SECRETS_FILE: &str = "secrets.json";
const FORMAT_VERSION: u32 = 1;

/// Backend identities that connect to account APP as nkey users.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ServiceUser {
    Registry,
    Webfinger,
    Sigchain,
    Manifest,
    Gateway,
    /// The auth-callout service's APP identity (KV lookups), not the AUTH worker.
    AuthCallout,
    /// The inbox service (relay, devices, blocks).
    Inbox,
    /// Operator/admin user with full APP permissions (`nats micro list`, KV admin).
    Ops,
}

impl ServiceUser {
    pub const ALL: [ServiceUser; 8] = [
        ServiceUser::Registry,
        ServiceUser::Webfinger,
        ServiceUser::Sigchain,
        ServiceUser::Manifest,
        ServiceUser::Gateway,
        ServiceUser::AuthCallout,
        ServiceUser::Inbox,
        ServiceUser::Ops,
    ];

    /// Stable name used in `secrets.json` and as the label in nats.conf.
    pub fn name(self) -> &'static str {
        match self {
            ServiceUser::Registry => "registry",
            ServiceUser::Webfinger => "webfinger",
            ServiceUser::Sigchain => "sigchain",
            ServiceUser::Manifest => "manifest",
            ServiceUser::Gateway => "gateway",
            ServiceUser::AuthCallout => "auth-callout",
            ServiceUser::Inbox => "inbox",
            ServiceUser::Ops => "ops",
        }
    }

    pub fn from_name(name: &str) -> Option<ServiceUser> {
        ServiceUser::ALL.into_iter().find(|s| s.name() == name)
    }
}

impl fmt::Display for ServiceUser {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SecretsError {
    #[error("{action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "{path} is corrupt: {reason}. It is not replaced automatically because that would change \
         every key of the stack; restore it from a backup, or delete it to generate new keys"
    )]
    Corrupt { path: PathBuf, reason: String },
    #[error("{path} is readable by other users (mode {mode:o}); run `chmod 600 {path}`", path = path.display())]
    Permissions { path: PathBuf, mode: u32 },
    #[error("nkey generation failed: {0}")]
    Nkeys(String),
}

fn io_err<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> SecretsError + 'a {
    move |source| SecretsError::Io { action, path: path.to_owned(), source }
}

/// How [`Secrets::load_or_create`] obtained the secrets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// No file existed; new secrets were generated and written.
    Created,
    /// The file was read as is.
    Loaded,
    /// The file was read, lacked some service keys, and was rewritten with them added.
    Extended,
}

/// The system account password. `Debug` is redacted.
#[derive(Clone, PartialEq, Eq)]
pub struct SysPassword(Zeroizing<String>);

impl SysPassword {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SysPassword {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SysPassword(<redacted>)")
    }
}

/// All secrets of one kez-chat stack. `Debug` shows public keys only.
#[derive(Clone)]
pub struct Secrets {
    callout_issuer: KeyPair,
    callout_worker: KeyPair,
    services: BTreeMap<ServiceUser, KeyPair>,
    sys_password: SysPassword,
    sender_tag_key: Zeroizing<[u8; 32]>,
}

impl fmt::Debug for Secrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let services: BTreeMap<&str, String> =
            self.services.iter().map(|(s, kp)| (s.name(), kp.public_key())).collect();
        f.debug_struct("Secrets")
            .field("callout_issuer", &self.callout_issuer.public_key())
            .field("callout_worker", &self.callout_worker.public_key())
            .field("services", &services)
            .field("sys_password", &self.sys_password)
            .finish()
    }
}

/// On-disk form. Seeds are wrapped so they are wiped from memory after use.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct SecretsFile {
    version: u32,
    callout_issuer_seed: Zeroizing<String>,
    callout_worker_seed: Zeroizing<String>,
    service_seeds: BTreeMap<String, Zeroizing<String>>,
    sys_password: Zeroizing<String>,
    /// Absent in files written before the inbox relay existed; generated then.
    #[serde(default)]
    sender_tag_key: Option<Zeroizing<String>>,
}

impl Secrets {
    /// Generates a fresh set (nothing is written).
    pub fn generate() -> Secrets {
        let services = ServiceUser::ALL.into_iter().map(|s| (s, KeyPair::new_user())).collect();
        Secrets {
            callout_issuer: KeyPair::new_account(),
            callout_worker: KeyPair::new_user(),
            services,
            sys_password: random_password(),
            sender_tag_key: random_key(),
        }
    }

    /// Path of the secrets file inside `data_dir`.
    pub fn path_in(data_dir: &Path) -> PathBuf {
        data_dir.join(SECRETS_FILE)
    }

    /// Loads `<data_dir>/secrets.json`, or generates and stores a new set if it does not exist.
    /// Creates `data_dir` (mode 0700) if needed.
    pub fn load_or_create(data_dir: &Path) -> Result<(Secrets, Origin), SecretsError> {
        kez_private_file::create_dir(data_dir).map_err(io_err("creating directory", data_dir))?;
        let path = Self::path_in(data_dir);
        match Self::load(&path) {
            Ok((secrets, complete)) => {
                if complete {
                    return Ok((secrets, Origin::Loaded));
                }
                kez_private_file::write(&path, &secrets.to_file_json()?).map_err(io_err("writing", &path))?;
                return Ok((secrets, Origin::Extended));
            }
            Err(SecretsError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        let secrets = Secrets::generate();
        if kez_private_file::create_new(&path, &secrets.to_file_json()?).map_err(io_err("creating", &path))? {
            Ok((secrets, Origin::Created))
        } else {
            // Another process created the file between our read and our link: use theirs, so
            // both processes agree on the keys.
            let (secrets, _) = Self::load(&path)?;
            Ok((secrets, Origin::Loaded))
        }
    }

    /// Reads a secrets file. Returns the secrets and whether every current service had a key
    /// (missing ones are filled in with fresh keys).
    fn load(path: &Path) -> Result<(Secrets, bool), SecretsError> {
        let meta = fs::metadata(path).map_err(io_err("reading", path))?;
        check_private(path, &meta)?;
        let bytes = Zeroizing::new(fs::read(path).map_err(io_err("reading", path))?);
        let corrupt = |reason: String| SecretsError::Corrupt { path: path.to_owned(), reason };
        let file: SecretsFile = serde_json::from_slice(&bytes).map_err(|e| corrupt(format!("invalid JSON: {e}")))?;
        if file.version != FORMAT_VERSION {
            return Err(corrupt(format!(
                "format version {} is not supported (expected {FORMAT_VERSION})",
                file.version
            )));
        }
        let callout_issuer = seed_of(&file.callout_issuer_seed, KeyPairType::Account)
            .map_err(|e| corrupt(format!("callout_issuer_seed: {e}")))?;
        let callout_worker = seed_of(&file.callout_worker_seed, KeyPairType::User)
            .map_err(|e| corrupt(format!("callout_worker_seed: {e}")))?;
        let mut services = BTreeMap::new();
        for (name, seed) in &file.service_seeds {
            let service = ServiceUser::from_name(name)
                .ok_or_else(|| corrupt(format!("unknown service {name:?} (written by a newer kez?)")))?;
            let kp = seed_of(seed, KeyPairType::User).map_err(|e| corrupt(format!("service_seeds.{name}: {e}")))?;
            services.insert(service, kp);
        }
        let mut complete = true;
        for s in ServiceUser::ALL {
            services.entry(s).or_insert_with(|| {
                complete = false;
                KeyPair::new_user()
            });
        }
        if file.sys_password.len() < 16 {
            return Err(corrupt("sys_password is shorter than 16 characters".into()));
        }
        let sender_tag_key = match &file.sender_tag_key {
            Some(hex_key) => {
                let mut key = Zeroizing::new([0u8; 32]);
                hex::decode_to_slice(hex_key.as_bytes(), key.as_mut())
                    .map_err(|_| corrupt("sender_tag_key is not 64 hex characters".into()))?;
                key
            }
            None => {
                complete = false;
                random_key()
            }
        };
        let secrets = Secrets {
            callout_issuer,
            callout_worker,
            services,
            sys_password: SysPassword(file.sys_password.clone()),
            sender_tag_key,
        };
        // Two identities sharing a key would make nats.conf invalid ("configured twice").
        let mut seen = std::collections::BTreeSet::new();
        for kp in std::iter::once(&secrets.callout_worker).chain(secrets.services.values()) {
            if !seen.insert(kp.public_key()) {
                return Err(corrupt(format!("user key {} is used twice", kp.public_key())));
            }
        }
        Ok((secrets, complete))
    }

    fn to_file_json(&self) -> Result<Zeroizing<Vec<u8>>, SecretsError> {
        let seed = |kp: &KeyPair| kp.seed().map(Zeroizing::new).map_err(|e| SecretsError::Nkeys(e.to_string()));
        let mut service_seeds = BTreeMap::new();
        for (s, kp) in &self.services {
            service_seeds.insert(s.name().to_owned(), seed(kp)?);
        }
        let file = SecretsFile {
            version: FORMAT_VERSION,
            callout_issuer_seed: seed(&self.callout_issuer)?,
            callout_worker_seed: seed(&self.callout_worker)?,
            service_seeds,
            sys_password: self.sys_password.0.clone(),
            sender_tag_key: Some(Zeroizing::new(hex::encode(self.sender_tag_key.as_ref()))),
        };
        let mut json =
            serde_json::to_vec_pretty(&file).map_err(|e| SecretsError::Nkeys(format!("serialising secrets: {e}")))?;
        json.push(b'\n');
        Ok(Zeroizing::new(json))
    }

    /// ACCOUNT key pair whose public key is `auth_callout.issuer`.
    pub fn callout_issuer(&self) -> &KeyPair {
        &self.callout_issuer
    }

    /// USER key pair of the callout worker (account AUTH).
    pub fn callout_worker(&self) -> &KeyPair {
        &self.callout_worker
    }

    /// USER key pair of a service (account APP).
    pub fn service(&self, service: ServiceUser) -> &KeyPair {
        // Invariant: every ServiceUser has a key (generate/load fill all of ALL).
        match self.services.get(&service) {
            Some(kp) => kp,
            None => unreachable!("Secrets always holds a key for every ServiceUser"),
        }
    }

    /// USER key pair of the ops/admin user (account APP).
    pub fn ops(&self) -> &KeyPair {
        self.service(ServiceUser::Ops)
    }

    /// User name of the system account user.
    pub fn sys_user(&self) -> &'static str {
        "sys"
    }

    pub fn sys_password(&self) -> &SysPassword {
        &self.sys_password
    }

    /// The relay's key for per-sender inbox tags (`kv_schemas::subjects::sender_tag`).
    pub fn sender_tag_key(&self) -> &[u8; 32] {
        &self.sender_tag_key
    }

    /// Seed of a key pair as a string for `ConnectOptions::nkey`, wiped on drop.
    pub fn seed_of(kp: &KeyPair) -> Result<Zeroizing<String>, SecretsError> {
        kp.seed().map(Zeroizing::new).map_err(|e| SecretsError::Nkeys(e.to_string()))
    }
}

fn random_key() -> Zeroizing<[u8; 32]> {
    use rand::RngCore as _;
    let mut key = Zeroizing::new([0u8; 32]);
    rand::rng().fill_bytes(key.as_mut());
    key
}

fn seed_of(seed: &str, expected: KeyPairType) -> Result<KeyPair, String> {
    // The nkeys error text never contains the seed itself.
    let kp = KeyPair::from_seed(seed).map_err(|e| format!("not a valid nkey seed ({e})"))?;
    if kp.key_pair_type() != expected {
        return Err(format!("expected a {expected:?} seed, found a {:?} seed", kp.key_pair_type()));
    }
    Ok(kp)
}

fn random_password() -> SysPassword {
    use rand::RngCore as _;
    let mut bytes = Zeroizing::new([0u8; 32]);
    rand::rng().fill_bytes(bytes.as_mut());
    SysPassword(Zeroizing::new(hex::encode(bytes.as_ref())))
}

#[cfg(unix)]
fn check_private(path: &Path, meta: &fs::Metadata) -> Result<(), SecretsError> {
    use std::os::unix::fs::PermissionsExt as _;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(SecretsError::Permissions { path: path.to_owned(), mode });
    }
    Ok(())
}

#[cfg(not(unix))]
fn check_private(_path: &Path, _meta: &fs::Metadata) -> Result<(), SecretsError> {
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt as _;

    fn mode(p: &Path) -> u32 {
        fs::metadata(p).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn creates_then_reloads_same_keys() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let (a, origin) = Secrets::load_or_create(&data).unwrap();
        assert_eq!(origin, Origin::Created);
        let path = Secrets::path_in(&data);
        assert_eq!(mode(&path), 0o600);
        assert_eq!(mode(&data), 0o700);

        let (b, origin) = Secrets::load_or_create(&data).unwrap();
        assert_eq!(origin, Origin::Loaded);
        assert_eq!(a.callout_issuer().public_key(), b.callout_issuer().public_key());
        assert_eq!(a.callout_worker().public_key(), b.callout_worker().public_key());
        for s in ServiceUser::ALL {
            assert_eq!(a.service(s).public_key(), b.service(s).public_key());
        }
        assert_eq!(a.sys_password(), b.sys_password());
        // No temp files left behind.
        let names: Vec<_> = fs::read_dir(&data).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, vec![std::ffi::OsString::from(SECRETS_FILE)]);
    }

    #[test]
    fn key_types() {
        let s = Secrets::generate();
        assert!(s.callout_issuer().public_key().starts_with('A'));
        assert!(s.callout_worker().public_key().starts_with('U'));
        for svc in ServiceUser::ALL {
            assert!(s.service(svc).public_key().starts_with('U'));
        }
        assert_eq!(s.sys_password().expose().len(), 64);
    }

    #[test]
    fn corrupt_file_is_an_error_and_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let path = Secrets::path_in(dir.path());
        for garbage in [&b"{not json"[..], b"", b"{\"version\":1}"] {
            fs::write(&path, garbage).unwrap();
            fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
            let err = Secrets::load_or_create(dir.path()).unwrap_err();
            assert!(matches!(err, SecretsError::Corrupt { .. }), "{err}");
            assert!(err.to_string().contains("not replaced automatically"));
            assert_eq!(fs::read(&path).unwrap(), garbage);
        }
    }

    #[test]
    fn wrong_key_type_is_corrupt() {
        let dir = tempfile::tempdir().unwrap();
        Secrets::load_or_create(dir.path()).unwrap();
        let path = Secrets::path_in(dir.path());
        let mut v: serde_json::Value = serde_json::from_slice(&fs::read(&path).unwrap()).unwrap();
        // A user seed where the account seed belongs.
        v["callout_issuer_seed"] = v["callout_worker_seed"].clone();
        fs::write(&path, serde_json::to_vec(&v).unwrap()).unwrap();
        let err = Secrets::load_or_create(dir.path()).unwrap_err().to_string();
        assert!(err.contains("callout_issuer_seed"), "{err}");
        assert!(err.contains("Account"), "{err}");
        assert!(!err.contains(v["callout_worker_seed"].as_str().unwrap()), "seed leaked: {err}");
    }

    #[test]
    fn unknown_service_is_corrupt() {
        let dir = tempfile::tempdir().unwrap();
        Secrets::load_or_create(dir.path()).unwrap();
        let path = Secrets::path_in(dir.path());
        let mut v: serde_json::Value = serde_json::from_slice(&fs::read(&path).unwrap()).unwrap();
        v["service_seeds"]["mystery"] = v["service_seeds"]["registry"].clone();
        fs::write(&path, serde_json::to_vec(&v).unwrap()).unwrap();
        let err = Secrets::load_or_create(dir.path()).unwrap_err().to_string();
        assert!(err.contains("mystery"), "{err}");
    }

    #[test]
    fn missing_service_key_is_added() {
        let dir = tempfile::tempdir().unwrap();
        let (orig, _) = Secrets::load_or_create(dir.path()).unwrap();
        let path = Secrets::path_in(dir.path());
        let mut v: serde_json::Value = serde_json::from_slice(&fs::read(&path).unwrap()).unwrap();
        v["service_seeds"].as_object_mut().unwrap().remove("gateway");
        fs::write(&path, serde_json::to_vec(&v).unwrap()).unwrap();
        let (ext, origin) = Secrets::load_or_create(dir.path()).unwrap();
        assert_eq!(origin, Origin::Extended);
        assert_eq!(mode(&path), 0o600);
        assert_eq!(orig.service(ServiceUser::Registry).public_key(), ext.service(ServiceUser::Registry).public_key());
        let (again, origin) = Secrets::load_or_create(dir.path()).unwrap();
        assert_eq!(origin, Origin::Loaded);
        assert_eq!(ext.service(ServiceUser::Gateway).public_key(), again.service(ServiceUser::Gateway).public_key());
    }

    #[test]
    fn world_readable_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        Secrets::load_or_create(dir.path()).unwrap();
        let path = Secrets::path_in(dir.path());
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        let err = Secrets::load_or_create(dir.path()).unwrap_err();
        assert!(matches!(err, SecretsError::Permissions { .. }), "{err}");
        assert!(err.to_string().contains("chmod 600"));
    }

    #[test]
    fn debug_never_shows_seeds() {
        let s = Secrets::generate();
        let dbg = format!("{s:?}");
        assert!(dbg.contains(&s.callout_issuer().public_key()));
        for kp in [s.callout_issuer(), s.callout_worker(), s.ops()] {
            assert!(!dbg.contains(&kp.seed().unwrap()));
        }
        assert!(!dbg.contains(s.sys_password().expose()));
        assert!(dbg.contains("<redacted>"));
    }

    #[test]
    fn concurrent_creation_agrees_on_one_set() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().to_owned();
        let handles: Vec<_> = (0..8)
            .map(|_| {
                let data = data.clone();
                std::thread::spawn(move || Secrets::load_or_create(&data).unwrap().0)
            })
            .collect();
        let keys: std::collections::BTreeSet<String> =
            handles.into_iter().map(|h| h.join().unwrap().callout_issuer().public_key()).collect();
        assert_eq!(keys.len(), 1);
    }

    #[test]
    fn service_names_round_trip() {
        for s in ServiceUser::ALL {
            assert_eq!(ServiceUser::from_name(s.name()), Some(s));
        }
        assert_eq!(ServiceUser::from_name("nope"), None);
    }
}
