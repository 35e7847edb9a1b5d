//! This install as a device (PROTOCOL.md §6.1): a random device id chosen once and kept in
//! `device.json` in the data folder, and a name the user can change.

use serde::{Deserialize, Serialize};

use kv_schemas::api::check_device_name;
use kv_schemas::subjects::DeviceId;

use crate::config::Paths;
use crate::error::{ClientError, Result};

/// The name of a device when the user gives none.
pub const FALLBACK_NAME: &str = "kez-chat CLI";

/// The default name of this install: the host name (`$HOSTNAME`, else `/etc/hostname`),
/// else [`FALLBACK_NAME`].
pub fn default_name() -> String {
    let from_env = std::env::var("HOSTNAME").ok();
    let from_file = || std::fs::read_to_string("/etc/hostname").ok();
    from_env
        .into_iter()
        .chain(std::iter::from_fn(from_file).take(1))
        .map(|h| h.trim().to_owned())
        .find(|h| check_device_name(h).is_ok())
        .unwrap_or_else(|| FALLBACK_NAME.into())
}

/// `device.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LocalDevice {
    /// The device id (also in the consumer name and the Iroh endpoint derivation).
    pub id: DeviceId,
    /// The name shown in `devices` lists.
    pub name: String,
}

impl LocalDevice {
    /// Reads `device.json`, or creates it with a fresh id and `default_name` (e.g. the host
    /// name) on first use. The id never changes afterwards.
    pub fn load_or_create(paths: &Paths, default_name: &str) -> Result<Self> {
        if let Some(d) = Self::load(paths)? {
            return Ok(d);
        }
        let name = if check_device_name(default_name).is_ok() { default_name.to_owned() } else { FALLBACK_NAME.into() };
        let d = LocalDevice { id: DeviceId::random(), name };
        d.save(paths)?;
        Ok(d)
    }

    /// Reads `device.json` if it exists.
    pub fn load(paths: &Paths) -> Result<Option<Self>> {
        let path = paths.home().join("device.json");
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| ClientError::Usage(format!("{} is damaged: {e}", path.display()))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(ClientError::io(&path, e)),
        }
    }

    /// Writes `device.json` atomically (0600).
    pub fn save(&self, paths: &Paths) -> Result<()> {
        paths.ensure_home()?;
        let path = paths.home().join("device.json");
        let mut bytes = serde_json::to_vec_pretty(self).map_err(|e| ClientError::Store(e.to_string()))?;
        bytes.push(b'\n');
        kez_private_file::write(&path, &bytes).map_err(|e| ClientError::io(&path, e))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn created_once_then_kept() {
        let dir = tempfile::tempdir().unwrap();
        let paths = Paths::at(dir.path());
        assert_eq!(LocalDevice::load(&paths).unwrap(), None);
        let d = LocalDevice::load_or_create(&paths, "laptop").unwrap();
        assert_eq!(d.name, "laptop");
        assert_eq!(LocalDevice::load_or_create(&paths, "other").unwrap(), d);
        let bad = tempfile::tempdir().unwrap();
        let d = LocalDevice::load_or_create(&Paths::at(bad.path()), "tab\there").unwrap();
        assert_eq!(d.name, FALLBACK_NAME);
        assert!(check_device_name(&default_name()).is_ok());
    }
}
