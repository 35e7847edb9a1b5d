//! The kez-chat server: starts any set of micro-services (each on its own
//! NATS connection as its own service user), the gateway, or the whole local
//! stack (`up`). Every service is stateless; run as many copies as you like.

use std::fmt;
use std::str::FromStr;

use async_nats::service::Service;
use kez_service_kit::settings::Settings;

/// A micro-service this binary can run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ServiceKind {
    /// Handle registry.
    Registry,
    /// WebFinger.
    Webfinger,
    /// Sigchain store.
    Sigchain,
    /// Manifest index.
    ManifestIndex,
    /// Inbox relay, devices and blocks (needs the registry for its recipient checks).
    Inbox,
}

impl ServiceKind {
    /// All services, in start order (dependencies first).
    pub const ALL: [ServiceKind; 5] = [
        ServiceKind::Registry,
        ServiceKind::Sigchain,
        ServiceKind::ManifestIndex,
        ServiceKind::Webfinger,
        ServiceKind::Inbox,
    ];

    /// The name used on the command line.
    pub fn name(self) -> &'static str {
        match self {
            ServiceKind::Registry => "registry",
            ServiceKind::Webfinger => "webfinger",
            ServiceKind::Sigchain => "sigchain",
            ServiceKind::ManifestIndex => "manifest-index",
            ServiceKind::Inbox => "inbox",
        }
    }

    /// The NATS user this service connects as.
    pub fn user(self) -> kez_service_kit::secrets::ServiceUser {
        use kez_service_kit::secrets::ServiceUser;
        match self {
            ServiceKind::Registry => ServiceUser::Registry,
            ServiceKind::Webfinger => ServiceUser::Webfinger,
            ServiceKind::Sigchain => ServiceUser::Sigchain,
            ServiceKind::ManifestIndex => ServiceUser::Manifest,
            ServiceKind::Inbox => ServiceUser::Inbox,
        }
    }

    /// Starts this service on `client`.
    pub async fn start(self, client: &async_nats::Client, settings: &Settings) -> Result<Service, async_nats::Error> {
        match self {
            ServiceKind::Registry => kez_registry::start(client, settings).await,
            ServiceKind::Webfinger => kez_webfinger::start(client, settings).await,
            ServiceKind::Sigchain => kez_sigchain::start(client, settings).await,
            ServiceKind::ManifestIndex => kez_manifest_index::start(client, settings).await,
            ServiceKind::Inbox => kez_inbox::start(client, settings).await,
        }
    }
}

impl fmt::Display for ServiceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for ServiceKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        ServiceKind::ALL.into_iter().find(|k| k.name() == s).ok_or_else(|| {
            format!("unknown service {s:?} (expected one of registry, webfinger, sigchain, manifest-index, inbox)")
        })
    }
}
pub mod cluster;
pub mod up;
