//! This install as a device (PROTOCOL.md §6.1): a random device id chosen once and kept in
//! `device.json` in the data folder, and a name the user can change.

use serde::{Deserialize, Serialize};

use kv_schemas::api::check_device_name;
use kv_schemas::subjects::DeviceId;

use crate::config::Paths;
use crate::error::{ClientError, Result};
use crate::keystore;

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
        let name =
            if check_device_name(default_name).is_ok() { default_name.to_owned() } else { "kez-chat CLI".into() };
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
        keystore::write_atomic(&path, &bytes).map_err(|e| ClientError::io(&path, e))
    }
}
