//! Stable error codes (PROTOCOL.md §10) and the typed error every parser and
//! verifier in this crate returns.

use std::fmt;

macro_rules! error_codes {
    ($( $variant:ident = ($num:expr, $code:expr, $http:expr) ),* $(,)?) => {
        /// A stable wire error code. Numbers and strings are never reused or renumbered.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[allow(missing_docs)]
        pub enum ErrorCode { $( $variant ),* }

        impl ErrorCode {
            /// Every code, in table order.
            pub const ALL: &'static [ErrorCode] = &[$( ErrorCode::$variant ),*];

            /// The number carried in `Nats-Service-Error-Code`.
            pub fn number(self) -> u16 { match self { $( ErrorCode::$variant => $num ),* } }

            /// The string carried in HTTP error bodies.
            pub fn as_str(self) -> &'static str { match self { $( ErrorCode::$variant => $code ),* } }

            /// The HTTP status the gateway answers with.
            pub fn http_status(self) -> u16 { match self { $( ErrorCode::$variant => $http ),* } }

            /// Looks a code up by its number.
            pub fn from_number(n: u16) -> Option<Self> {
                match n { $( $num => Some(ErrorCode::$variant), )* _ => None }
            }

            /// Looks a code up by its string.
            pub fn parse(s: &str) -> Option<Self> {
                match s { $( $code => Some(ErrorCode::$variant), )* _ => None }
            }
        }
    };
}

error_codes! {
    InvalidJson = (1001, "invalid_json", 400),
    InvalidRequest = (1002, "invalid_request", 400),
    NotCanonical = (1003, "not_canonical", 422),
    TooLarge = (1004, "too_large", 413),
    InvalidHandle = (1010, "invalid_handle", 422),
    InvalidKey = (1011, "invalid_key", 422),
    InvalidEncoding = (1012, "invalid_encoding", 422),
    BadSignature = (2001, "bad_signature", 422),
    WrongType = (2002, "wrong_type", 422),
    WrongAudience = (2003, "wrong_audience", 422),
    StaleTimestamp = (2004, "stale_timestamp", 422),
    Replayed = (2005, "replayed", 409),
    DecryptFailed = (2101, "decrypt_failed", 422),
    WrongRecipient = (2102, "wrong_recipient", 422),
    EncMismatch = (2103, "enc_mismatch", 422),
    HandleReserved = (3001, "handle_reserved", 422),
    HandleTaken = (3002, "handle_taken", 409),
    KeyRegistered = (3003, "key_registered", 409),
    HandleNotFound = (3004, "handle_not_found", 404),
    KeyNotFound = (3005, "key_not_found", 404),
    ChainNotFound = (4001, "chain_not_found", 404),
    SeqnoConflict = (4002, "seqno_conflict", 409),
    PrevMismatch = (4003, "prev_mismatch", 409),
    InvalidLink = (4004, "invalid_link", 422),
    ChainTooLong = (4005, "chain_too_long", 413),
    ManifestNotFound = (5001, "manifest_not_found", 404),
    InvalidManifest = (5002, "invalid_manifest", 422),
    InboxFull = (6001, "inbox_full", 429),
    StoreFull = (6002, "store_full", 507),
    DeviceLimit = (6003, "device_limit", 409),
    DeviceNotFound = (6004, "device_not_found", 404),
    DeviceRemoved = (6005, "device_removed", 410),
    NotGroupAdmin = (7001, "not_group_admin", 403),
    InvalidGroupChange = (7002, "invalid_group_change", 422),
    GroupFull = (7003, "group_full", 413),
    UnknownGroupState = (7004, "unknown_group_state", 409),
    NotGroupMember = (7005, "not_group_member", 403),
    GroupFork = (7006, "group_fork", 409),
    NotFound = (9404, "not_found", 404),
    MethodNotAllowed = (9405, "method_not_allowed", 405),
    RateLimited = (9429, "rate_limited", 429),
    Internal = (9500, "internal", 500),
    Unavailable = (9503, "unavailable", 503),
    Timeout = (9504, "timeout", 504),
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An error with a stable code and a human message safe to show and log.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct KezError {
    /// The stable code.
    pub code: ErrorCode,
    /// What went wrong, in words; never contains secrets.
    pub message: String,
}

impl KezError {
    /// Builds an error from a code and a message.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self { code, message: message.into() }
    }
}

/// Shorthand for building a [`KezError`].
pub fn err(code: ErrorCode, message: impl Into<String>) -> KezError {
    KezError::new(code, message)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn numbers_and_strings_are_unique_and_round_trip() {
        let mut nums = HashSet::new();
        let mut strs = HashSet::new();
        for &c in ErrorCode::ALL {
            assert!(nums.insert(c.number()), "duplicate number {}", c.number());
            assert!(strs.insert(c.as_str()), "duplicate code {}", c.as_str());
            assert_eq!(ErrorCode::from_number(c.number()), Some(c));
            assert_eq!(ErrorCode::parse(c.as_str()), Some(c));
            assert!((400..600).contains(&c.http_status()));
        }
    }
}

#[cfg(test)]
mod protocol_table {
    use super::ErrorCode;

    /// PROTOCOL.md §10 and this enum must list the same codes, numbers and statuses.
    #[test]
    fn matches_protocol_md() {
        let text = include_str!("../../PROTOCOL.md");
        let section = text.split("## 10. Errors").nth(1).expect("PROTOCOL.md has §10");
        let mut rows = 0;
        for line in section.lines().filter(|l| l.starts_with("| `")) {
            let cells: Vec<&str> = line.split('|').map(str::trim).collect();
            let code = cells[1].trim_matches('`');
            let number: u16 = cells[2].parse().expect("number");
            let status: u16 = cells[3].parse().expect("status");
            let c = ErrorCode::parse(code).unwrap_or_else(|| panic!("{code} in PROTOCOL.md but not in ErrorCode"));
            assert_eq!((c.number(), c.http_status()), (number, status), "{code}");
            rows += 1;
        }
        assert_eq!(rows, ErrorCode::ALL.len(), "every ErrorCode is documented in PROTOCOL.md §10");
    }
}
