//! Where the client keeps its data and which server it talks to.
//!
//! Data folder (`home`): `--home`, else `$KEZ_HOME`, else `$XDG_DATA_HOME/kez-chat`,
//! else `~/.local/share/kez-chat`. It holds
//!
//! ```text
//! identity.json   the seed, encrypted under the passphrase (keystore.rs)
//! account.json    handle, public key, home server and its /v1/config (account.rs)
//! config.json     optional user settings: {"server": "https://kez.example"}
//! db/             sled: contacts, messages, replay store (store.rs)
//! ```
//!
//! Home server: `--server`, else `$KEZ_SERVER`, else `config.json`'s `server`, else
//! the server the account was registered on, else [`DEFAULT_SERVER`].

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{ClientError, Result};

/// The server used when nothing else says which.
pub const DEFAULT_SERVER: &str = "https://kez.lat";

/// The files of one data folder.
#[derive(Debug, Clone)]
pub struct Paths {
    home: PathBuf,
}

impl Paths {
    /// Uses `explicit` (from `--home` / `KEZ_HOME`) or the platform default.
    pub fn resolve(explicit: Option<PathBuf>) -> Result<Self> {
        if let Some(p) = explicit.filter(|p| !p.as_os_str().is_empty()) {
            return Ok(Self { home: p });
        }
        if let Some(x) = std::env::var_os("XDG_DATA_HOME").filter(|p| !p.is_empty()) {
            return Ok(Self { home: PathBuf::from(x).join("kez-chat") });
        }
        let home = std::env::var_os("HOME")
            .filter(|p| !p.is_empty())
            .ok_or_else(|| ClientError::Usage("cannot find a data folder: set KEZ_HOME or HOME".into()))?;
        Ok(Self { home: PathBuf::from(home).join(".local/share/kez-chat") })
    }

    /// A data folder at exactly `home`.
    pub fn at(home: impl Into<PathBuf>) -> Self {
        Self { home: home.into() }
    }

    /// The data folder.
    pub fn home(&self) -> &Path {
        &self.home
    }

    /// The encrypted seed.
    pub fn key_file(&self) -> PathBuf {
        self.home.join("identity.json")
    }

    /// The account description.
    pub fn account_file(&self) -> PathBuf {
        self.home.join("account.json")
    }

    /// User settings.
    pub fn config_file(&self) -> PathBuf {
        self.home.join("config.json")
    }

    /// The sled database.
    pub fn db_dir(&self) -> PathBuf {
        self.home.join("db")
    }

    /// Creates the data folder (mode 0700) if missing.
    pub fn ensure_home(&self) -> Result<()> {
        if self.home.is_dir() {
            return Ok(());
        }
        let mut b = std::fs::DirBuilder::new();
        b.recursive(true);
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut b, 0o700);
        b.create(&self.home).map_err(|e| ClientError::io(&self.home, e))
    }
}

/// `config.json`: settings a user may edit by hand. Unknown keys are refused so a
/// typo does not silently do nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// Home server base URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server: Option<String>,
}

impl FileConfig {
    /// Reads `config.json`; a missing file is the default.
    pub fn load(paths: &Paths) -> Result<Self> {
        let path = paths.config_file();
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map_err(|e| ClientError::Usage(format!("{}: not a valid kez-chat config: {e}", path.display()))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Self::default()),
            Err(e) => Err(ClientError::io(&path, e)),
        }
    }
}

/// Normalises a server given by a person: `kez.example` → `https://kez.example`,
/// trailing `/` removed. Only `http` and `https` are accepted.
pub fn normalize_server(input: &str) -> Result<String> {
    let s = input.trim().trim_end_matches('/');
    if s.is_empty() {
        return Err(ClientError::Usage("the server URL is empty".into()));
    }
    let url = if s.contains("://") { s.to_string() } else { format!("https://{s}") };
    if !(url.starts_with("https://") || url.starts_with("http://")) {
        return Err(ClientError::Usage(format!("{input:?} is not an http(s) URL")));
    }
    Ok(url)
}

/// Picks the home server: the explicit choice (flag or `KEZ_SERVER`), then
/// `config.json`, then the account's, then [`DEFAULT_SERVER`].
pub fn resolve_server(explicit: Option<&str>, file: &FileConfig, account_server: Option<&str>) -> Result<String> {
    let chosen = explicit
        .filter(|s| !s.trim().is_empty())
        .or(file.server.as_deref())
        .or(account_server)
        .unwrap_or(DEFAULT_SERVER);
    normalize_server(chosen)
}

/// The base URL that serves `/v1` for handles of `domain`: the home server for
/// the home domain, else `https://<domain>`.
pub fn server_for_domain(domain: &str, home_domain: &str, home_server: &str) -> String {
    if domain == home_domain { home_server.to_string() } else { format!("https://{domain}") }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn server_resolution_order() {
        let file = FileConfig { server: Some("file.example".into()) };
        assert_eq!(resolve_server(Some("http://127.0.0.1:8080/"), &file, None).unwrap(), "http://127.0.0.1:8080");
        assert_eq!(resolve_server(None, &file, Some("https://acct.example")).unwrap(), "https://file.example");
        assert_eq!(
            resolve_server(None, &FileConfig::default(), Some("https://acct.example")).unwrap(),
            "https://acct.example"
        );
        assert_eq!(resolve_server(None, &FileConfig::default(), None).unwrap(), DEFAULT_SERVER);
        assert!(normalize_server("ftp://x").is_err());
        assert_eq!(server_for_domain("kez.lat", "kez.lat", "http://h"), "http://h");
        assert_eq!(server_for_domain("other.org", "kez.lat", "http://h"), "https://other.org");
    }
}
