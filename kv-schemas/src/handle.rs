//! Handles (`local@domain`, PROTOCOL.md §3): parsing user input, the
//! canonical wire form, reserved names and display.

use std::fmt;

use crate::error::{ErrorCode, KezError, err};

/// Local parts that can never be registered.
pub const RESERVED: &[&str] = &[
    "admin",
    "administrator",
    "root",
    "support",
    "help",
    "postmaster",
    "abuse",
    "hostmaster",
    "webmaster",
    "security",
    "kez",
    "system",
    "sys",
    "nats",
    "api",
    "www",
    "mail",
    "noreply",
    "no-reply",
    "null",
    "undefined",
    "everyone",
    "operator",
    "staff",
    "official",
];

/// A canonical, fully qualified handle such as `alice@kez.lat`.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Handle {
    local: String,
    domain: String,
}

impl Handle {
    /// Parses what a person typed: trims, drops one leading `@`, lowercases
    /// ASCII, and fills in `home_domain` when no domain is given.
    pub fn parse_input(input: &str, home_domain: &str) -> Result<Self, KezError> {
        let s = input.trim_matches(|c: char| c.is_ascii_whitespace());
        let s = s.strip_prefix('@').unwrap_or(s);
        if !s.is_ascii() {
            return Err(err(ErrorCode::InvalidHandle, "handles use ASCII letters, digits, '_' and '-' only"));
        }
        let s = s.to_ascii_lowercase();
        let (local, domain) = match s.split_once('@') {
            Some((l, d)) => (l.to_string(), d.to_string()),
            None => (s.clone(), home_domain.to_ascii_lowercase()),
        };
        Self::new(&local, &domain)
    }

    /// Parses the canonical wire form; anything not already canonical is an error.
    pub fn parse_canonical(s: &str) -> Result<Self, KezError> {
        let (local, domain) =
            s.split_once('@').ok_or_else(|| err(ErrorCode::InvalidHandle, "handle must be local@domain"))?;
        Self::new(local, domain)
    }

    /// Builds a handle from parts already in lowercase.
    pub fn new(local: &str, domain: &str) -> Result<Self, KezError> {
        validate_local(local)?;
        validate_domain(domain)?;
        Ok(Self { local: local.into(), domain: domain.into() })
    }

    /// The part before `@`.
    pub fn local(&self) -> &str {
        &self.local
    }

    /// The part after `@`.
    pub fn domain(&self) -> &str {
        &self.domain
    }

    /// Whether the local part is on the reserved list.
    pub fn is_reserved(&self) -> bool {
        RESERVED.contains(&self.local.as_str())
    }

    /// Bare local part for the home domain, full handle otherwise.
    pub fn display(&self, home_domain: &str) -> String {
        if self.domain == home_domain { self.local.clone() } else { self.to_string() }
    }
}

fn validate_local(local: &str) -> Result<(), KezError> {
    let b = local.as_bytes();
    if b.is_empty() || b.len() > 32 {
        return Err(err(ErrorCode::InvalidHandle, "the name part must be 1 to 32 characters"));
    }
    if !b.iter().all(|&c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'_' || c == b'-') {
        return Err(err(ErrorCode::InvalidHandle, "the name part may contain only a-z, 0-9, '_' and '-'"));
    }
    let alnum = |c: u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    if !alnum(b[0]) || !alnum(b[b.len() - 1]) {
        return Err(err(ErrorCode::InvalidHandle, "the name part must start and end with a letter or digit"));
    }
    Ok(())
}

fn validate_domain(domain: &str) -> Result<(), KezError> {
    let bad = || err(ErrorCode::InvalidHandle, format!("{domain:?} is not a valid domain"));
    if domain.is_empty() || domain.len() > 253 || !domain.contains('.') {
        return Err(bad());
    }
    for label in domain.split('.') {
        let b = label.as_bytes();
        let alnum = |c: u8| c.is_ascii_lowercase() || c.is_ascii_digit();
        if b.is_empty()
            || b.len() > 63
            || !alnum(b[0])
            || !alnum(b[b.len() - 1])
            || !b.iter().all(|&c| alnum(c) || c == b'-')
        {
            return Err(bad());
        }
    }
    Ok(())
}

impl fmt::Display for Handle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.local, self.domain)
    }
}

impl fmt::Debug for Handle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Handle({self})")
    }
}

impl serde::Serialize for Handle {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Handle {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Handle::parse_canonical(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises_the_three_forms() {
        for input in ["alice", "@alice", "Alice@KEZ.lat", "  alice@kez.lat\n"] {
            assert_eq!(Handle::parse_input(input, "kez.lat").unwrap().to_string(), "alice@kez.lat");
        }
    }

    #[test]
    fn rejects_bad_input() {
        for bad in ["", "@", "-a", "a-", "a b", "ålice", "a@b", "a@-b.c", "a@b..c", &"x".repeat(33), "a@@b.c"] {
            assert!(Handle::parse_input(bad, "kez.lat").is_err(), "{bad:?}");
        }
        assert!(Handle::parse_canonical("Alice@kez.lat").is_err());
    }

    #[test]
    fn reserved_and_display() {
        let h = Handle::parse_input("admin", "kez.lat").unwrap();
        assert!(h.is_reserved());
        assert_eq!(Handle::parse_input("bob@x.org", "kez.lat").unwrap().display("kez.lat"), "bob@x.org");
        assert_eq!(Handle::parse_input("bob", "kez.lat").unwrap().display("kez.lat"), "bob");
    }
}
