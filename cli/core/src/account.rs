//! The local account: who this client is (`account.json`), how it was created
//! (registration, design §5.1) or brought to a new machine (restore from the
//! 24 words, design §3.4), and its own sigchain endpoints.
//!
//! Order of registration, so that a failure leaves nothing half made:
//! 1. the handle is checked locally (syntax, domain, reserved) and on the server
//!    (`GET /v1/u/…` must say not found) — before any key is shown;
//! 2. the CLI shows the 24 words and checks the user wrote them down;
//! 3. `POST /v1/register`; only when the server accepted it
//! 4. the seed is written to the key store and `account.json` is written;
//! 5. the endpoints are published on the sigchain (`add_endpoint` nats, then
//!    iroh). A failure here is reported and repaired by [`ensure_endpoints`]
//!    on the next `listen`/`send`: the account exists and the words restore it.

use std::sync::Arc;

use kv_schemas::api::ClientConfig;
use kv_schemas::sigchain::{ChainState, Endpoint, Op, PinnedTail, build_link, check_extends, verify_chain};
use kv_schemas::{ErrorCode, Handle, PublicKey, now_ms, register};
use serde::{Deserialize, Serialize};

use crate::api::Api;
use crate::config::Paths;
use crate::error::{ClientError, Result};
use crate::identity::Identity;
use crate::keystore::Keystore;

/// `account.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Account {
    /// File format version (1).
    pub version: u32,
    /// Own canonical handle.
    pub handle: Handle,
    /// Own public key (the key file must decrypt to it).
    pub key: PublicKey,
    /// Base URL of the home server's `/v1` API.
    pub server: String,
    /// The home domain.
    pub domain: String,
    /// Broker URL from `/v1/config` (refreshed when the server is reachable).
    pub nats_url: String,
    /// Inbox retention = replay window, ms.
    pub inbox_max_age_ms: u64,
    /// When this account was set up on this machine, ms.
    pub created_at: u64,
    /// Own sigchain position last verified.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub own_tail: Option<PinnedTail>,
    /// Whether both endpoints are on the sigchain.
    #[serde(default)]
    pub endpoints_published: bool,
}

impl Account {
    /// Moves the own-chain pin forward to `tail` (never back); true when it changed.
    pub fn advance_own_tail(&mut self, tail: Option<PinnedTail>) -> bool {
        match tail {
            Some(t) if self.own_tail.as_ref().is_none_or(|p| t.seqno > p.seqno) => {
                self.own_tail = Some(t);
                true
            }
            _ => false,
        }
    }

    /// Reads `account.json`; `None` when there is no account.
    pub fn load(paths: &Paths) -> Result<Option<Self>> {
        let path = paths.account_file();
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| ClientError::Usage(format!("{} is damaged: {e}", path.display()))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(ClientError::io(&path, e)),
        }
    }

    /// Reads `account.json` or explains how to create one.
    pub fn require(paths: &Paths) -> Result<Self> {
        Self::load(paths)?.ok_or_else(|| ClientError::NoAccount { home: paths.home().display().to_string() })
    }

    /// Writes `account.json` atomically (0600).
    pub fn save(&self, paths: &Paths) -> Result<()> {
        paths.ensure_home()?;
        let mut bytes = serde_json::to_vec_pretty(self).map_err(|e| ClientError::Store(e.to_string()))?;
        bytes.push(b'\n');
        kez_private_file::write(&paths.account_file(), &bytes).map_err(|e| ClientError::io(paths.account_file(), e))
    }

    /// Takes the broker URL and window from a fresh `/v1/config`.
    pub fn update_config(&mut self, config: &ClientConfig) {
        self.nats_url = config.nats_url.clone();
        self.inbox_max_age_ms = config.inbox_max_age_ms;
    }

    /// Unlocks the key file and checks it is this account's key.
    pub fn unlock(&self, paths: &Paths, passphrase: &str) -> Result<Arc<Identity>> {
        let id = Keystore::new().load(&paths.key_file(), passphrase)?;
        if id.public_key() != self.key {
            return Err(ClientError::Usage(format!(
                "{} holds another key than account.json says; the data folder is inconsistent",
                paths.key_file().display()
            )));
        }
        Ok(Arc::new(id))
    }
}

/// Refuses to overwrite an existing account.
pub fn ensure_no_account(paths: &Paths) -> Result<()> {
    if let Some(a) = Account::load(paths)? {
        return Err(ClientError::AccountExists {
            home: paths.home().display().to_string(),
            handle: a.handle.to_string(),
        });
    }
    if paths.key_file().exists() {
        return Err(ClientError::AccountExists {
            home: paths.home().display().to_string(),
            handle: "(key file without account.json)".into(),
        });
    }
    Ok(())
}

/// Step 1: parses the wanted handle for this server and checks it is free.
pub async fn check_handle_available(api: &Api, config: &ClientConfig, input: &str) -> Result<Handle> {
    let handle = Handle::parse_input(input, &config.domain)?;
    if handle.domain() != config.domain {
        return Err(ClientError::InvalidHandle(format!(
            "{handle}: this server registers handles @{} only",
            config.domain
        )));
    }
    if handle.is_reserved() {
        return Err(ClientError::HandleReserved(handle.to_string()));
    }
    if api.user(&handle).await?.is_some() {
        return Err(ClientError::HandleTaken(handle.to_string()));
    }
    Ok(handle)
}

/// Steps 3–5: registers `handle` for `id`, then stores the key (under
/// `passphrase`) and the account, then publishes the endpoints. Returns the
/// account and, separately, an endpoint-publishing error (not fatal).
pub async fn register(
    paths: &Paths,
    api: &Api,
    config: &ClientConfig,
    id: &Identity,
    handle: &Handle,
    passphrase: &str,
) -> Result<(Account, Option<ClientError>)> {
    ensure_no_account(paths)?;
    api.register_retrying(handle, || register::build(id.signing_key(), handle, now_ms(), kv_schemas::random_bytes()))
        .await?;
    let mut account = new_account(api, config, id, handle.clone());
    paths.ensure_home()?;
    Keystore::new().save(&paths.key_file(), id, passphrase)?;
    account.save(paths)?;
    let warning = match ensure_endpoints(api, &mut account, id).await {
        Ok(()) => {
            account.save(paths)?;
            None
        }
        Err(e) => Some(e),
    };
    Ok((account, warning))
}

fn new_account(api: &Api, config: &ClientConfig, id: &Identity, handle: Handle) -> Account {
    Account {
        version: 1,
        handle,
        key: id.public_key(),
        server: api.base().to_string(),
        domain: config.domain.clone(),
        nats_url: config.nats_url.clone(),
        inbox_max_age_ms: config.inbox_max_age_ms,
        created_at: now_ms(),
        own_tail: None,
        endpoints_published: false,
    }
}

/// What a restore found.
#[derive(Debug)]
pub struct Restored {
    /// The account now stored.
    pub account: Account,
    /// Links on the own sigchain (verified).
    pub chain_links: u64,
    /// Endpoint-publishing error, if that step failed (not fatal).
    pub warning: Option<ClientError>,
}

/// Restores the account of `id` from the server: finds the handle by key,
/// pulls and verifies the own sigchain, stores the key and the account.
pub async fn restore(
    paths: &Paths,
    api: &Api,
    config: &ClientConfig,
    id: &Identity,
    passphrase: &str,
) -> Result<Restored> {
    ensure_no_account(paths)?;
    let rec = api
        .lookup_key(&id.public_key())
        .await?
        .ok_or_else(|| ClientError::NotRegistered { server: api.base().to_string() })?;
    if rec.handle.domain() != config.domain {
        return Err(ClientError::BadServerReply(format!(
            "the registry answered with a handle of {}",
            rec.handle.domain()
        )));
    }
    let state = own_chain(api, &id.public_key(), None).await?;
    let mut account = new_account(api, config, id, rec.handle);
    account.own_tail = Some(PinnedTail { seqno: state.seqno, link_id: state.tail.clone().unwrap_or_default() });
    paths.ensure_home()?;
    Keystore::new().save(&paths.key_file(), id, passphrase)?;
    account.save(paths)?;
    let warning = match ensure_endpoints(api, &mut account, id).await {
        Ok(()) => {
            account.save(paths)?;
            None
        }
        Err(e) => Some(e),
    };
    Ok(Restored { account, chain_links: state.seqno, warning })
}

/// Fetches and verifies the own sigchain; with `pinned`, a chain that does not
/// extend the position seen before (rollback, or a fork: another link at the
/// pinned seqno) is refused like an invalid one.
pub async fn own_chain(api: &Api, key: &PublicKey, pinned: Option<&PinnedTail>) -> Result<ChainState> {
    let links = api.sigchain(key).await?;
    let invalid =
        |e: kv_schemas::KezError| ClientError::ChainInvalid { who: "your own account".into(), reason: e.to_string() };
    let (state, parsed) = verify_chain(key, &links).map_err(invalid)?;
    if let Some(p) = pinned {
        check_extends(&parsed, p).map_err(invalid)?;
    }
    Ok(state)
}

/// Makes sure the own sigchain advertises the NATS inbox (with the broker URL of
/// `/v1/config`) and the Iroh endpoint (node id = own key); appends what is missing.
pub async fn ensure_endpoints(api: &Api, account: &mut Account, id: &Identity) -> Result<()> {
    let key = id.public_key();
    let pin = account.own_tail.clone();
    let mut state = own_chain(api, &key, pin.as_ref()).await?;
    let inbox = kv_schemas::subjects::inbox_subject(&key);
    let wanted = [Endpoint::Nats { subject: inbox, url: account.nats_url.clone() }, Endpoint::iroh_wave1(&key)];
    for endpoint in wanted {
        let present = state.endpoints.iter().any(|e| e.endpoint == endpoint);
        if present {
            continue;
        }
        let mut attempt = 0;
        loop {
            let link = build_link(
                id.signing_key(),
                state.seqno + 1,
                state.tail.as_deref(),
                now_ms(),
                &Op::AddEndpoint(endpoint.clone()),
            )?;
            match api.append_link(&key, link).await {
                Ok(_) => break,
                // Another device appended meanwhile: re-read the chain and retry once.
                Err(ClientError::Server { code, .. })
                    if attempt == 0
                        && (code == ErrorCode::SeqnoConflict.as_str() || code == ErrorCode::PrevMismatch.as_str()) =>
                {
                    attempt += 1;
                    state = own_chain(api, &key, pin.as_ref()).await?;
                    if state.endpoints.iter().any(|e| e.endpoint == endpoint) {
                        break;
                    }
                }
                Err(e) => return Err(e),
            }
        }
        state = own_chain(api, &key, pin.as_ref()).await?;
    }
    account.own_tail = Some(PinnedTail { seqno: state.seqno, link_id: state.tail.clone().unwrap_or_default() });
    account.endpoints_published = true;
    Ok(())
}
