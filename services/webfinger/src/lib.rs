//! WebFinger (`kez-webfinger`, RFC 7033): answers `acct:local@domain` with a
//! JRD naming the user's primary key and linking their profile and sigchain.
//! It holds no state of its own; it asks the registry.

use std::sync::Arc;

use async_nats::service::Service;
use kez_service_kit::settings::Settings;
use kez_service_kit::svc::{self, json_reply, parse_json};
use kv_schemas::api::{LookupHandle, WebfingerQuery};
use kv_schemas::error::err;
use kv_schemas::subjects::{service, svc as subj};
use kv_schemas::{ErrorCode, Handle, KezError};
use serde_json::{Value, json};

/// Link relation of the sigchain (a URI we own, per RFC 7033 §4.4.4.1).
pub const REL_SIGCHAIN: &str = "https://kez.chat/rel/sigchain";
/// Property name of the primary key.
pub const PROP_PRIMARY: &str = "https://kez.chat/ns/primary";

struct Finger {
    client: async_nats::Client,
    settings: Settings,
}

/// Starts serving WebFinger resolution.
pub async fn start(client: &async_nats::Client, settings: &Settings) -> Result<Service, async_nats::Error> {
    let finger = Arc::new(Finger { client: client.clone(), settings: settings.clone() });
    let service = svc::start(client, service::WEBFINGER, "WebFinger (RFC 7033) for acct: handles").await?;
    svc::serve(&service, "resolve", subj::WEBFINGER_RESOLVE, move |p| {
        let f = finger.clone();
        async move {
            let q: WebfingerQuery = parse_json(&p)?;
            json_reply(&f.resolve(&q).await?)
        }
    })
    .await?;
    svc::settle(client).await?;
    Ok(service)
}

impl Finger {
    async fn resolve(&self, q: &WebfingerQuery) -> Result<Value, KezError> {
        let acct = q
            .resource
            .strip_prefix("acct:")
            .ok_or_else(|| err(ErrorCode::InvalidRequest, "resource must be an acct: URI"))?;
        let handle = Handle::parse_canonical(acct)
            .map_err(|_| err(ErrorCode::InvalidRequest, "resource is not acct:local@domain in canonical form"))?;
        if handle.domain() != self.settings.domain {
            return Err(err(ErrorCode::HandleNotFound, format!("{handle} is not a handle of this server")));
        }
        let record =
            svc::call(&self.client, &LookupHandle { handle: handle.clone() }, self.settings.call_timeout).await?;
        let profile = format!("{}/v1/u/{}", self.settings.public_url, handle.local());
        let links = vec![
            json!({ "rel": "self", "type": "application/json", "href": profile }),
            json!({ "rel": REL_SIGCHAIN, "type": "application/json", "href": self.settings.sigchain_url(&record.key) }),
        ];
        let links: Vec<Value> = links
            .into_iter()
            .filter(|l| q.rel.is_empty() || q.rel.iter().any(|r| Some(r.as_str()) == l["rel"].as_str()))
            .collect();
        Ok(json!({
            "subject": format!("acct:{handle}"),
            "aliases": [profile, record.key.to_string()],
            "properties": { PROP_PRIMARY: record.key.to_string() },
            "links": links,
        }))
    }
}
