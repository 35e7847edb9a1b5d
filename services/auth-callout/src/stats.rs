//! Login counters, shown by the `status` endpoint and [`crate::CalloutHandle::stats`].

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;

/// Why a login was refused. The string forms are stable (status endpoint, logs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RejectReason {
    /// The authorization request itself was unusable: too large, not a JWT signed by a server key,
    /// wrong type, expired, or encrypted (xkey) while this worker has no xkey. Answered with an
    /// empty reply, because an unverified request names no user a response could be addressed to.
    InvalidRequest,
    /// The request was for a different issuer than this worker's (operator misconfiguration).
    IssuerMismatch,
    /// The client did not authenticate with an nkey (user/password, token or JWT instead).
    NkeyRequired,
    /// `connect_opts.nkey` is not a valid user nkey, or its key is small-order / non-canonical.
    InvalidNkey,
    /// No signature was sent.
    MissingSignature,
    /// The server sent no nonce; a signature over "" would be replayable (docs/nats-server.md).
    MissingNonce,
    /// The signature is malformed or does not verify over the nonce.
    BadSignature,
    /// The key is not a registered primary key.
    Unregistered,
    /// The registry did not answer (no responders, timeout).
    RegistryUnavailable,
    /// The registry answered something unexpected.
    RegistryError,
    /// Signing the answer failed (should not happen with a seeded issuer key).
    Internal,
    /// The user already holds the most simultaneous connections allowed.
    TooManyConnections,
}

impl RejectReason {
    /// Every reason, in a fixed order.
    pub const ALL: [RejectReason; 12] = [
        RejectReason::InvalidRequest,
        RejectReason::IssuerMismatch,
        RejectReason::NkeyRequired,
        RejectReason::InvalidNkey,
        RejectReason::MissingSignature,
        RejectReason::MissingNonce,
        RejectReason::BadSignature,
        RejectReason::Unregistered,
        RejectReason::RegistryUnavailable,
        RejectReason::RegistryError,
        RejectReason::Internal,
        RejectReason::TooManyConnections,
    ];

    /// Stable snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            RejectReason::InvalidRequest => "invalid_request",
            RejectReason::IssuerMismatch => "issuer_mismatch",
            RejectReason::NkeyRequired => "nkey_required",
            RejectReason::InvalidNkey => "invalid_nkey",
            RejectReason::MissingSignature => "missing_signature",
            RejectReason::MissingNonce => "missing_nonce",
            RejectReason::BadSignature => "bad_signature",
            RejectReason::Unregistered => "unregistered",
            RejectReason::RegistryUnavailable => "registry_unavailable",
            RejectReason::RegistryError => "registry_error",
            RejectReason::Internal => "internal",
            RejectReason::TooManyConnections => "too_many_connections",
        }
    }

    fn index(self) -> usize {
        // ALL is in declaration order.
        self as usize
    }
}

impl std::fmt::Display for RejectReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Lock-free counters shared by the request tasks.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    accepted: AtomicU64,
    rejected: [AtomicU64; RejectReason::ALL.len()],
    /// Answers that could not be published (connection to the server lost mid-request).
    reply_failures: AtomicU64,
    /// Sum of the time spent deciding requests (verification, registry question, signing).
    handle_ns: AtomicU64,
}

impl Counters {
    pub(crate) fn accepted(&self) {
        self.accepted.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn rejected(&self, reason: RejectReason) {
        self.rejected[reason.index()].fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn handled_in(&self, d: std::time::Duration) {
        self.handle_ns.fetch_add(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX), Ordering::Relaxed);
    }

    pub(crate) fn reply_failed(&self) {
        self.reply_failures.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn snapshot(&self) -> Stats {
        let rejected_by_reason: BTreeMap<String, u64> = RejectReason::ALL
            .iter()
            .map(|r| (r.as_str().to_owned(), self.rejected[r.index()].load(Ordering::Relaxed)))
            .filter(|(_, n)| *n > 0)
            .collect();
        let accepted = self.accepted.load(Ordering::Relaxed);
        let rejected: u64 = rejected_by_reason.values().sum();
        let handled = accepted + rejected;
        Stats {
            accepted,
            rejected,
            rejected_by_reason,
            reply_failures: self.reply_failures.load(Ordering::Relaxed),
            mean_handle_us: self.handle_ns.load(Ordering::Relaxed).checked_div(handled).unwrap_or(0) / 1000,
        }
    }
}

/// A snapshot of the counters since start-up (the body of `kez.svc.auth.v1.status`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Stats {
    /// Logins admitted.
    pub accepted: u64,
    /// Logins refused, all reasons.
    pub rejected: u64,
    /// Refusals per [`RejectReason::as_str`]; reasons with zero count are omitted.
    pub rejected_by_reason: BTreeMap<String, u64>,
    /// Answers that could not be sent back to the server.
    pub reply_failures: u64,
    /// Mean time from receiving a request to having the answer, in µs (includes the registry
    /// round trip; excludes waiting for a free slot).
    pub mean_handle_us: u64,
}

impl Stats {
    /// Refusals for one reason.
    pub fn rejected_for(&self, reason: RejectReason) -> u64 {
        self.rejected_by_reason.get(reason.as_str()).copied().unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_names() {
        let c = Counters::default();
        c.accepted();
        c.rejected(RejectReason::Unregistered);
        c.rejected(RejectReason::Unregistered);
        c.rejected(RejectReason::Internal);
        let s = c.snapshot();
        assert_eq!(s.accepted, 1);
        assert_eq!(s.rejected, 3);
        assert_eq!(s.rejected_for(RejectReason::Unregistered), 2);
        assert_eq!(s.rejected_for(RejectReason::BadSignature), 0);
        assert_eq!(s.rejected_by_reason.len(), 2);
        for (i, r) in RejectReason::ALL.iter().enumerate() {
            assert_eq!(r.index(), i);
        }
        let names: std::collections::BTreeSet<_> = RejectReason::ALL.iter().map(|r| r.as_str()).collect();
        assert_eq!(names.len(), RejectReason::ALL.len());
    }
}
