//! The client's typed error: one variant per thing a person must understand
//! and act on (server unreachable, handle not found, key changed, not
//! registered yet, …). The CLI maps each variant to a message and an exit
//! code ([`ClientError::exit_code`]); nothing here carries secrets.

use kv_schemas::{ErrorCode, KezError};

use crate::identity::MnemonicError;
use crate::keystore::KeystoreError;

/// Shorthand for results of the client core.
pub type Result<T, E = ClientError> = std::result::Result<T, E>;

/// Everything that can go wrong in the client core, in words a user can act on.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The HTTP API of a kez server did not answer.
    #[error("cannot reach the kez server at {url}: {detail}")]
    ServerUnreachable {
        /// Base URL tried.
        url: String,
        /// What failed (connection refused, timeout, …).
        detail: String,
    },
    /// The NATS broker did not answer.
    #[error("cannot reach the message broker at {url}: {detail}")]
    BrokerUnreachable {
        /// Broker URL tried.
        url: String,
        /// What failed.
        detail: String,
    },
    /// No such handle on its home server.
    #[error("{handle} was not found (no such user on {server})")]
    HandleNotFound {
        /// The handle looked up.
        handle: String,
        /// Where it was looked up.
        server: String,
    },
    /// The handle belongs to another key.
    #[error("the handle {0} is already taken; pick another one")]
    HandleTaken(String),
    /// The handle can never be registered.
    #[error("the handle {0} is reserved; pick another one")]
    HandleReserved(String),
    /// The text is not a handle.
    #[error("not a valid handle: {0}")]
    InvalidHandle(String),
    /// The key has no registration on the server (yet).
    #[error(
        "this key is not registered on {server} yet (run `kez-chat register <handle>`, or `kez-chat restore` if it was registered elsewhere)"
    )]
    NotRegistered {
        /// The server asked.
        server: String,
    },
    /// The key already owns another handle (one handle per key in v0).
    #[error("this key already owns another handle on the server")]
    KeyAlreadyRegistered,
    /// A known contact's handle now maps to a different key. Sending is refused
    /// until the user re-trusts explicitly.
    #[error(
        "KEY CHANGED for {handle}: you trusted the key with fingerprint\n    {pinned_fingerprint}\nbut the server now returns a different key with fingerprint\n    {new_fingerprint}\n\
         This can mean the account was reset, or that someone is impersonating {handle}.\n\
         Sending to {handle} is blocked. Check the new fingerprint with them in person or on another channel, then run\n    \
         kez-chat trust {handle} --new-key \"{new_fingerprint}\""
    )]
    KeyChanged {
        /// The contact.
        handle: String,
        /// Fingerprint of the pinned key.
        pinned_fingerprint: String,
        /// Fingerprint of the key the server returns now.
        new_fingerprint: String,
    },
    /// A sigchain did not verify, or rolled back / forked against what was seen before.
    #[error("the sigchain of {who} does not verify: {reason}")]
    ChainInvalid {
        /// Whose chain.
        who: String,
        /// Why.
        reason: String,
    },
    /// The contact's sigchain does not advertise a NATS inbox.
    #[error("{0} has no chat inbox published in their sigchain yet")]
    NoInbox(String),
    /// The handle is not in the contact list.
    #[error("{0} is not in your contacts (run `kez-chat add {0}`)")]
    NotAContact(String),
    /// A received message failed one of the checks of PROTOCOL.md §6.
    #[error("message failed to verify ({}): {}", .0.code, .0.message)]
    VerifyFailed(KezError),
    /// A group change or message this user may not make (PROTOCOL.md §6.2: not an admin,
    /// not a member, the change breaks a rule, the group is full).
    #[error("group: {}: {}", .0.code, .0.message)]
    Group(KezError),
    /// No group by that name or id on this device.
    #[error("no group {0} on this device (see `kez-chat group list`)")]
    NoGroup(String),
    /// No account in the data folder.
    #[error("no kez-chat account in {home} (run `kez-chat register <handle>` or `kez-chat restore`)")]
    NoAccount {
        /// The data folder.
        home: String,
    },
    /// An account already exists in the data folder.
    #[error("an account ({handle}) already exists in {home}; use another KEZ_HOME for a second account")]
    AccountExists {
        /// The data folder.
        home: String,
        /// Its handle.
        handle: String,
    },
    /// The key file could not be opened (wrong passphrase, damaged, …).
    #[error(transparent)]
    Keystore(#[from] KeystoreError),
    /// The 24 words did not parse.
    #[error("the recovery words are not valid: {0}")]
    Mnemonic(#[from] MnemonicError),
    /// The words are valid but belong to another key.
    #[error("these words belong to a different key than this account's")]
    MnemonicMismatch,
    /// The retyped words did not match the ones shown.
    #[error(
        "the words you typed do not match; nothing was registered. Write the 24 words down carefully and try again"
    )]
    BackupCheckFailed,
    /// The server answered with an error not covered above.
    #[error("the server refused: {code}: {message}")]
    Server {
        /// Stable code string (PROTOCOL.md §10), or the HTTP status.
        code: String,
        /// Its message.
        message: String,
    },
    /// The server sent something that does not follow the protocol.
    #[error("the server sent an invalid answer: {0}")]
    BadServerReply(String),
    /// The broker refused a request (permissions violation, reported asynchronously).
    #[error("the broker refused the request: {0}")]
    Denied(String),
    /// The server's inbox service refused a request with a stable code (PROTOCOL.md §9.3,
    /// §10): `inbox_full`, `store_full`, `key_not_found`, `rate_limited`, `device_limit`,
    /// `device_not_found`, `unavailable`, ….
    #[error("{}", refused_text(.0))]
    Refused(KezError),
    /// This device was removed from the account (on another device); it cannot enroll again.
    #[error(
        "this device ({device}) was removed from your account, so it no longer receives messages. \
         To use kez-chat here again, set it up anew in an empty data folder (`kez-chat restore`)"
    )]
    DeviceRemoved {
        /// The device id.
        device: String,
    },
    /// The device's consumer does not exist (any more): the device must enroll again.
    #[error("this device's inbox is gone on the server (it must enroll again)")]
    ConsumerGone,
    /// A broker operation failed.
    #[error("message broker: {0}")]
    Broker(String),
    /// A protocol object could not be built or parsed.
    #[error("{0}")]
    Protocol(KezError),
    /// The local database failed.
    #[error("local store: {0}")]
    Store(String),
    /// A local file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The error.
        source: std::io::Error,
    },
    /// Invalid use (bad arguments, empty input, …).
    #[error("{0}")]
    Usage(String),
    /// Waited too long.
    #[error("timed out: {0}")]
    Timeout(String),
}

impl ClientError {
    /// Whether a write that failed this way may nevertheless have been applied: no answer
    /// came (unreachable, timed out) or the server said it could not tell (`unavailable`,
    /// `timeout`, a proxy's 502/503/504). PROTOCOL.md §9.7: such a write is retried.
    pub fn outcome_unknown(&self) -> bool {
        let unknown_code = |c: &str| matches!(c, "unavailable" | "timeout" | "http_502" | "http_503" | "http_504");
        match self {
            ClientError::ServerUnreachable { .. } | ClientError::BrokerUnreachable { .. } | ClientError::Timeout(_) => {
                true
            }
            ClientError::Server { code, .. } => unknown_code(code),
            ClientError::Refused(e) => matches!(e.code, ErrorCode::Unavailable | ErrorCode::Timeout),
            _ => false,
        }
    }
}

/// Attempts of one write whose outcome stays unknown (PROTOCOL.md §9.7). With the broker's
/// 10 s request timeout all of them fit in the inbox stream's 2-minute duplicate window.
pub const WRITE_ATTEMPTS: u32 = 5;

/// Runs `attempt` until it succeeds, fails for a known reason, or [`WRITE_ATTEMPTS`] are
/// used up, waiting 0.25 s, 0.5 s, 1 s, … between attempts. Only for writes that are
/// idempotent when repeated (PROTOCOL.md §9.7): the same link bytes, the same envelope bytes,
/// or a freshly signed registration of the same handle.
pub async fn retry_unknown<T, F, Fut>(mut attempt: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T>>,
{
    let mut delay = std::time::Duration::from_millis(250);
    let mut n = 1;
    loop {
        match attempt().await {
            Err(e) if n < WRITE_ATTEMPTS && e.outcome_unknown() => {
                tracing::debug!("outcome unknown ({e}); retrying (attempt {} of {WRITE_ATTEMPTS})", n + 1);
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(std::time::Duration::from_secs(4));
                n += 1;
            }
            result => return result,
        }
    }
}

impl From<KezError> for ClientError {
    fn from(e: KezError) -> Self {
        match e.code {
            ErrorCode::InvalidHandle => ClientError::InvalidHandle(e.message),
            _ => ClientError::Protocol(e),
        }
    }
}

impl From<sled::Error> for ClientError {
    fn from(e: sled::Error) -> Self {
        ClientError::Store(e.to_string())
    }
}

/// Words for a refusal of the inbox service.
fn refused_text(e: &KezError) -> String {
    let hint = match e.code {
        ErrorCode::InboxFull => {
            "the recipient's inbox already holds as many of your messages as it accepts (1 000); \
             more fit once they expire or the recipient blocks and unblocks you"
        }
        ErrorCode::StoreFull => "the server's message store is full; try again later",
        ErrorCode::RateLimited => "you are sending too fast; wait a moment and try again",
        ErrorCode::KeyNotFound => "the recipient's key is not registered on this server",
        ErrorCode::DeviceLimit => {
            "your account already has 16 devices; remove one first (`kez-chat devices`, `kez-chat devices remove <id>`)"
        }
        ErrorCode::DeviceNotFound => "your account has no such device (see `kez-chat devices`)",
        ErrorCode::Unavailable => "the server's inbox service is not available; try again later",
        _ => "",
    };
    if hint.is_empty() {
        format!("the server refused: {}: {}", e.code, e.message)
    } else {
        format!("{hint} ({}: {})", e.code, e.message)
    }
}

impl ClientError {
    /// A refusal of the inbox service, typed by its code.
    pub fn refused(e: KezError) -> Self {
        match e.code {
            ErrorCode::Timeout => ClientError::Timeout(e.message),
            _ => ClientError::Refused(e),
        }
    }

    /// The stable code of a refusal, if this is one.
    pub fn refusal_code(&self) -> Option<ErrorCode> {
        match self {
            ClientError::Refused(e) => Some(e.code),
            ClientError::DeviceRemoved { .. } => Some(ErrorCode::DeviceRemoved),
            _ => None,
        }
    }

    /// The process exit code the CLI uses for this error. Stable, documented in `kez-chat --help`:
    /// 1 other, 2 usage, 3 unreachable, 4 not found, 5 key changed, 6 verification failed,
    /// 7 not registered, 8 wrong passphrase, 9 timeout, 10 handle taken/reserved,
    /// 11 refused for now (inbox or store full, rate limited, device limit), 12 this device was removed.
    pub fn exit_code(&self) -> i32 {
        use ClientError::*;
        match self {
            Usage(_) | InvalidHandle(_) | Mnemonic(_) | BackupCheckFailed | AccountExists { .. } | NoAccount { .. } => {
                2
            }
            ServerUnreachable { .. } | BrokerUnreachable { .. } => 3,
            Refused(e) if e.code == ErrorCode::Unavailable => 3,
            HandleNotFound { .. } | NotAContact(_) | NoInbox(_) | NoGroup(_) => 4,
            Group(_) => 13,
            Refused(e) if matches!(e.code, ErrorCode::KeyNotFound | ErrorCode::DeviceNotFound) => 4,
            Refused(e) if e.code == ErrorCode::InvalidRequest => 2,
            Refused(e)
                if matches!(
                    e.code,
                    ErrorCode::InboxFull | ErrorCode::StoreFull | ErrorCode::RateLimited | ErrorCode::DeviceLimit
                ) =>
            {
                11
            }
            DeviceRemoved { .. } => 12,
            KeyChanged { .. } => 5,
            ChainInvalid { .. } | VerifyFailed(_) | MnemonicMismatch => 6,
            NotRegistered { .. } => 7,
            Keystore(KeystoreError::WrongPassphrase) => 8,
            Timeout(_) => 9,
            HandleTaken(_) | HandleReserved(_) | KeyAlreadyRegistered => 10,
            _ => 1,
        }
    }

    /// A stable snake_case name of the variant, for `--json` output and scripts.
    pub fn kind(&self) -> &'static str {
        use ClientError::*;
        match self {
            ServerUnreachable { .. } => "server_unreachable",
            BrokerUnreachable { .. } => "broker_unreachable",
            HandleNotFound { .. } => "handle_not_found",
            HandleTaken(_) => "handle_taken",
            HandleReserved(_) => "handle_reserved",
            InvalidHandle(_) => "invalid_handle",
            NotRegistered { .. } => "not_registered",
            KeyAlreadyRegistered => "key_registered",
            KeyChanged { .. } => "key_changed",
            ChainInvalid { .. } => "chain_invalid",
            NoInbox(_) => "no_inbox",
            NotAContact(_) => "not_a_contact",
            Group(e) => e.code.as_str(),
            NoGroup(_) => "group_not_found",
            VerifyFailed(_) => "verify_failed",
            NoAccount { .. } => "no_account",
            AccountExists { .. } => "account_exists",
            Keystore(KeystoreError::WrongPassphrase) => "wrong_passphrase",
            Keystore(_) => "keystore",
            Mnemonic(_) => "invalid_mnemonic",
            MnemonicMismatch => "mnemonic_mismatch",
            BackupCheckFailed => "backup_check_failed",
            Server { .. } => "server_error",
            BadServerReply(_) => "bad_server_reply",
            Denied(_) => "denied",
            Refused(e) => e.code.as_str(),
            DeviceRemoved { .. } => "device_removed",
            ConsumerGone => "consumer_gone",
            Broker(_) => "broker",
            Protocol(_) => "protocol",
            Store(_) => "store",
            Io { .. } => "io",
            Usage(_) => "usage",
            Timeout(_) => "timeout",
        }
    }

    pub(crate) fn io(path: impl AsRef<std::path::Path>, source: std::io::Error) -> Self {
        ClientError::Io { path: path.as_ref().display().to_string(), source }
    }
}
