//! Per-device Iroh endpoints (PROTOCOL.md §7.5) and the sigchain reads and
//! appends around them.
//!
//! A device has two endpoint keys derived from the identity seed and its device
//! id: `serve` (the provider of `listen` / `serve`) and `fetch` (the dialling
//! side of `fetch`). Distinct keys are what let a serving and a fetching process
//! on one machine, or two machines of one user, run at once without sharing an
//! endpoint id. Before it serves or fetches, a device makes sure both are on its
//! own sigchain ([`ensure_device_endpoints`]); removing the device withdraws them
//! ([`remove_device_endpoints`]). Providers admit every live iroh endpoint of a
//! permitted user; fetchers dial only `serve` (and wave-1) endpoints.

use std::future::Future;

use ed25519_dalek::SigningKey;
use kv_schemas::sigchain::{
    ChainState, Endpoint, IrohRole, Op, PinnedTail, build_link, check_extends, endpoint_seed, parse_link, verify_chain,
};
use kv_schemas::subjects::DeviceId;
use kv_schemas::{ErrorCode, KezError, PublicKey, now_ms};
use serde_json::Value;
use zeroize::Zeroizing;

use super::{FilesError, Result};

/// Reading and appending sigchains (`/v1/sigchains`), as the files code needs it.
pub trait Chains: Sync {
    /// The links of `key`'s chain (empty when it has none).
    fn chain(&self, key: &PublicKey) -> impl Future<Output = Result<Vec<Value>>> + Send;
    /// Appends one link (exact bytes). A lost race must surface as
    /// `FilesError::Protocol` with `SeqnoConflict` or `PrevMismatch`.
    fn append_link(&self, key: &PublicKey, link: Vec<u8>) -> impl Future<Output = Result<()>> + Send;
}

/// A shared directory (a provider keeps one for as long as it runs).
impl<T: Chains + Send> Chains for std::sync::Arc<T> {
    fn chain(&self, key: &PublicKey) -> impl Future<Output = Result<Vec<Value>>> + Send {
        T::chain(self, key)
    }

    fn append_link(&self, key: &PublicKey, link: Vec<u8>) -> impl Future<Output = Result<()>> + Send {
        T::append_link(self, key, link)
    }
}

/// A [`Chains`] (or [`super::Directory`]) that refuses, on every read, a chain of
/// one key that does not extend the position pinned for it (rollback, fork:
/// `invalid_link`). Wrapping the directory rather than each caller means every
/// path that reads the own chain (publishing endpoints or a manifest, browsing
/// the own shares) fails hard the same way. The pin moves forward with each
/// chain read that extends it; [`PinnedChains::tail`] returns it for storing.
pub struct PinnedChains<'a, D> {
    pub(super) inner: &'a D,
    key: PublicKey,
    pin: std::sync::Mutex<Option<PinnedTail>>,
}

impl<'a, D: Chains> PinnedChains<'a, D> {
    /// Pins `key`'s chain at `pin` (`None`: first use, anything valid is accepted and pinned).
    pub fn new(inner: &'a D, key: PublicKey, pin: Option<PinnedTail>) -> Self {
        Self { inner, key, pin: std::sync::Mutex::new(pin) }
    }

    /// The pinned key.
    pub fn key(&self) -> &PublicKey {
        &self.key
    }

    /// The position verified last (to store as the new pin).
    pub fn tail(&self) -> Option<PinnedTail> {
        self.pin.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }
}

impl<D: Chains> Chains for PinnedChains<'_, D> {
    async fn chain(&self, key: &PublicKey) -> Result<Vec<Value>> {
        let links = self.inner.chain(key).await?;
        if *key != self.key {
            return Ok(links);
        }
        let (state, parsed) = verify_chain(key, &links)?;
        let mut pin = self.pin.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(p) = pin.as_ref() {
            check_extends(&parsed, p)?;
        }
        if let Some(tail) = state.tail {
            *pin = Some(PinnedTail { seqno: state.seqno, link_id: tail });
        }
        Ok(links)
    }

    async fn append_link(&self, key: &PublicKey, link: Vec<u8>) -> Result<()> {
        let own = if *key == self.key { parse_link(&link).ok() } else { None };
        self.inner.append_link(key, link).await?;
        // An accepted own link right after the pin moves the pin onto it.
        if let Some(l) = own {
            let mut pin = self.pin.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            let extends = match pin.as_ref() {
                Some(p) => p.seqno + 1 == l.seqno && l.prev.as_deref() == Some(p.link_id.as_str()),
                None => l.seqno == 1,
            };
            if extends {
                *pin = Some(PinnedTail { seqno: l.seqno, link_id: l.link_id });
            }
        }
        Ok(())
    }
}

/// The client's `/v1` API reads and appends chains too (e.g. for `devices remove`).
impl Chains for crate::api::Api {
    async fn chain(&self, key: &PublicKey) -> Result<Vec<Value>> {
        self.sigchain(key).await.map_err(client_error)
    }

    async fn append_link(&self, key: &PublicKey, link: Vec<u8>) -> Result<()> {
        crate::api::Api::append_link(self, key, link).await.map(|_| ()).map_err(client_error)
    }
}

/// Keeps the stable code of a server error (the append retry depends on it).
fn client_error(e: crate::ClientError) -> FilesError {
    match e {
        crate::ClientError::Server { code, message } => match ErrorCode::parse(&code) {
            Some(code) => FilesError::Protocol(KezError { code, message }),
            None => FilesError::Other(format!("{code}: {message}")),
        },
        other => FilesError::Other(other.to_string()),
    }
}

/// The two endpoint keys of one device.
pub struct DeviceEndpoints {
    device: DeviceId,
    serve: Zeroizing<[u8; 32]>,
    fetch: Zeroizing<[u8; 32]>,
}

impl std::fmt::Debug for DeviceEndpoints {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "DeviceEndpoints({}, serve {}, fetch {})",
            self.device,
            self.key(IrohRole::Serve),
            self.key(IrohRole::Fetch)
        )
    }
}

impl DeviceEndpoints {
    /// Derives both keys of `device` from the identity key's seed (PROTOCOL.md §7.5).
    pub fn derive(me: &SigningKey, device: &DeviceId) -> Self {
        let seed = Zeroizing::new(me.to_bytes());
        Self {
            device: device.clone(),
            serve: endpoint_seed(&seed, device, IrohRole::Serve),
            fetch: endpoint_seed(&seed, device, IrohRole::Fetch),
        }
    }

    /// The device id.
    pub fn device(&self) -> &DeviceId {
        &self.device
    }

    /// The secret (Iroh `SecretKey` bytes) of the endpoint for `role`.
    pub fn secret(&self, role: IrohRole) -> &[u8; 32] {
        match role {
            IrohRole::Serve => &self.serve,
            IrohRole::Fetch => &self.fetch,
        }
    }

    /// The endpoint id of `role`.
    pub fn key(&self, role: IrohRole) -> PublicKey {
        PublicKey::of(&SigningKey::from_bytes(self.secret(role)))
    }

    /// The `add_endpoint` body that publishes the endpoint of `role`.
    pub fn endpoint(&self, role: IrohRole) -> Endpoint {
        Endpoint::iroh_device(&self.key(role), self.device.clone(), role)
    }
}

/// Fetches and verifies `key`'s whole chain; with `pinned`, a chain that does
/// not extend the position seen before (rollback, fork) is refused.
pub async fn verified_chain<C: Chains>(dir: &C, key: &PublicKey, pinned: Option<&PinnedTail>) -> Result<ChainState> {
    let links = dir.chain(key).await?;
    let (state, parsed) = verify_chain(key, &links)?;
    if let Some(p) = pinned {
        check_extends(&parsed, p)?;
    }
    Ok(state)
}

/// How many tries an append gets when other devices append at the same time.
const APPEND_TRIES: usize = 4;

/// Appends `op` to the own chain unless `done(state)` already holds, re-reading
/// the chain after a lost seqno race. Returns the final state and whether it appended.
async fn append_unless<C: Chains>(
    dir: &C,
    me: &SigningKey,
    done: impl Fn(&ChainState) -> bool,
    op: impl Fn(&ChainState) -> Op,
) -> Result<(ChainState, bool)> {
    let key = PublicKey::of(me);
    let mut last = None;
    for _ in 0..APPEND_TRIES {
        let state = verified_chain(dir, &key, None).await?;
        if done(&state) {
            return Ok((state, false));
        }
        let link = build_link(me, state.seqno + 1, state.tail.as_deref(), now_ms(), &op(&state))?;
        match dir.append_link(&key, link).await {
            Ok(()) => return Ok((verified_chain(dir, &key, None).await?, true)),
            Err(FilesError::Protocol(e)) if matches!(e.code, ErrorCode::SeqnoConflict | ErrorCode::PrevMismatch) => {
                last = Some(FilesError::Protocol(e));
            }
            Err(e) => return Err(e),
        }
    }
    Err(last.unwrap_or_else(|| FilesError::Other("could not append to the sigchain".into())))
}

/// What [`ensure_device_endpoints`] did.
#[derive(Debug, Clone)]
pub struct Ensured {
    /// The own chain afterwards.
    pub state: ChainState,
    /// Links appended now (0 when both endpoints were already published).
    pub added: usize,
}

/// Makes sure the `serve` and `fetch` endpoints of `device` are live on the own
/// sigchain, appending an `add_endpoint` link for each one that is missing.
pub async fn ensure_device_endpoints<C: Chains>(dir: &C, me: &SigningKey, device: &DeviceId) -> Result<Ensured> {
    let eps = DeviceEndpoints::derive(me, device);
    let mut added = 0;
    let mut state = None;
    for role in IrohRole::ALL {
        let wanted = eps.endpoint(role);
        let (st, appended) = append_unless(
            dir,
            me,
            |s| s.endpoints.iter().any(|e| e.endpoint == wanted),
            |_| Op::AddEndpoint(wanted.clone()),
        )
        .await?;
        added += usize::from(appended);
        state = Some(st);
    }
    let state = state.ok_or_else(|| FilesError::Other("no endpoint roles".into()))?;
    Ok(Ensured { state, added })
}

/// Withdraws every live iroh endpoint of `device` from the own sigchain (one
/// `remove_endpoint` link each), e.g. when the device is removed. Returns how
/// many were removed (0 when the device had none). The removed endpoints stop
/// being admitted by providers once their cached view of the chain expires.
pub async fn remove_device_endpoints<C: Chains>(dir: &C, me: &SigningKey, device: &DeviceId) -> Result<usize> {
    let of_device = |s: &ChainState| -> Vec<String> {
        s.iroh_endpoints()
            .filter(|e| e.device.is_some_and(|d| &d.device == device))
            .map(|e| e.link_id.to_owned())
            .collect()
    };
    let mut removed = 0;
    loop {
        let (_, appended) = append_unless(
            dir,
            me,
            |s| of_device(s).is_empty(),
            |s| Op::RemoveEndpoint { target: of_device(s).into_iter().next().unwrap_or_default() },
        )
        .await?;
        if !appended {
            return Ok(removed);
        }
        removed += 1;
    }
}

/// The endpoints of `owner` a fetcher may dial (PROTOCOL.md §7.5): live `serve`
/// and wave-1 iroh endpoints, newest device first.
pub fn serving_endpoints(state: &ChainState) -> Vec<PublicKey> {
    state.serving_endpoints().iter().filter_map(|e| e.key()).collect()
}
