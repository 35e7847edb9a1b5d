//! Output helpers: times in the local zone, short keys, JSON lines.
//! Human text goes to stdout for results and stderr for notes and warnings;
//! `--json` prints one JSON document (or one object per line for `listen`) on stdout.

use std::io::Write as _;
use std::sync::OnceLock;

use kv_schemas::PublicKey;
use serde_json::Value;

static OFFSET: OnceLock<time::UtcOffset> = OnceLock::new();

/// Reads the local UTC offset; must run before any other thread starts
/// (the `time` crate refuses to read it in a multi-threaded process).
pub fn init_local_offset() {
    let offset = time::UtcOffset::current_local_offset().unwrap_or(time::UtcOffset::UTC);
    let _ = OFFSET.set(offset);
}

/// `2026-05-01 12:34:56` in the local zone.
pub fn fmt_time(ms: u64) -> String {
    let offset = OFFSET.get().copied().unwrap_or(time::UtcOffset::UTC);
    let Ok(t) = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000) else {
        return ms.to_string();
    };
    let t = t.to_offset(offset);
    let fmt = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second]");
    t.format(&fmt).unwrap_or_else(|_| ms.to_string())
}

/// `ed25519:d75a9801…511a`.
pub fn short_key(key: &PublicKey) -> String {
    let h = key.hex();
    format!("ed25519:{}…{}", &h[..8], &h[60..])
}

/// Prints one JSON value on its own line (stdout).
pub fn json_line(v: &Value) {
    let mut out = std::io::stdout().lock();
    let _ = serde_json::to_writer(&mut out, v);
    let _ = writeln!(out);
    let _ = out.flush();
}

/// Prints a pretty JSON document (stdout).
pub fn json_doc(v: &Value) {
    let mut out = std::io::stdout().lock();
    let _ = serde_json::to_writer_pretty(&mut out, v);
    let _ = writeln!(out);
    let _ = out.flush();
}

/// Prints a line to stdout; a closed pipe is not an error.
#[macro_export]
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, $($arg)*);
        let _ = out.flush();
    }};
}
