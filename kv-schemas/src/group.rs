//! Groups (PROTOCOL.md §6.2): the signed, hash-linked group log, the state it
//! derives, the deterministic fork rule for concurrent changes, and the body of
//! a group message. Pure: no IO and no clock.
//!
//! A link names the hash of the state it changes (`prev`), and a state hash covers
//! the name, the members with their roles and the link that made it (`head`), so
//! the log is hash-linked like a sigchain. Unlike a sigchain there is no server
//! that orders appends: two admins can change the same state at once, so a
//! member keeps every link that applies anywhere ([`GroupLog`], a tree) and
//! walks it from the root with [`GroupLog::current`]'s rule.

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;

use ed25519_dalek::SigningKey;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use crate::encoding::{b64_decode_fixed, b64_encode, hex_encode};
use crate::error::{ErrorCode, KezError, err};
use crate::jcs::{Fields, canonicalize, parse_canonical};
use crate::keys::PublicKey;
use crate::sig::{Purpose, sign_object, verify_object};

/// Most members a group may have.
pub const MAX_MEMBERS: usize = 100;
/// Largest accepted group link.
pub const MAX_GROUP_LINK_BYTES: usize = 16 * 1024;
/// Most links one group log may hold (the tree, forks included).
pub const MAX_GROUP_LINKS: usize = 1000;
/// Longest group name, in characters.
pub const MAX_NAME_CHARS: usize = 64;
/// Domain label of the state hash.
pub const STATE_LABEL: &[u8] = b"kez-v1/group-state";

/// A group id: 32 random bytes, base64url on the wire.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct GroupId(pub [u8; 32]);

impl GroupId {
    /// A fresh random id.
    pub fn random() -> Self {
        Self(crate::random_bytes())
    }
}

impl fmt::Display for GroupId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&b64_encode(&self.0))
    }
}

impl fmt::Debug for GroupId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "GroupId({self})")
    }
}

impl FromStr for GroupId {
    type Err = KezError;
    fn from_str(s: &str) -> Result<Self, KezError> {
        b64_decode_fixed::<32>(s, "group id").map(Self)
    }
}

impl serde::Serialize for GroupId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for GroupId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// A member's role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// May add, remove, promote and rename.
    Admin,
    /// May send and leave.
    Member,
}

impl Role {
    /// The wire text.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Member => "member",
        }
    }

    fn parse(s: &str) -> Result<Self, KezError> {
        match s {
            "admin" => Ok(Role::Admin),
            "member" => Ok(Role::Member),
            other => Err(err(ErrorCode::InvalidGroupChange, format!("unknown role {other:?}"))),
        }
    }
}

/// One member of a group.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct Member {
    /// The member's identity key.
    pub key: PublicKey,
    /// Its role.
    pub role: Role,
}

impl Member {
    fn to_value(&self) -> Value {
        json!({ "key": self.key.to_string(), "role": self.role.as_str() })
    }
}

/// What a group link does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GroupOp {
    /// Start the group (link 1).
    Create {
        /// The group's name.
        name: String,
        /// The first members, sorted by key, the signer among them as admin.
        members: Vec<Member>,
    },
    /// Add a member (as `member`).
    Add {
        /// Who.
        key: PublicKey,
    },
    /// Remove another member.
    Remove {
        /// Who.
        key: PublicKey,
    },
    /// Make a member an admin.
    Promote {
        /// Who.
        key: PublicKey,
    },
    /// The signer leaves.
    Leave,
    /// Rename the group.
    Rename {
        /// The new name.
        name: String,
    },
}

impl GroupOp {
    /// The `op` string.
    pub fn name(&self) -> &'static str {
        match self {
            GroupOp::Create { .. } => "create",
            GroupOp::Add { .. } => "add",
            GroupOp::Remove { .. } => "remove",
            GroupOp::Promote { .. } => "promote",
            GroupOp::Leave => "leave",
            GroupOp::Rename { .. } => "rename",
        }
    }

    /// The `body` object.
    pub fn body(&self) -> Value {
        match self {
            GroupOp::Create { name, members } => {
                json!({ "name": name, "members": members.iter().map(Member::to_value).collect::<Vec<_>>() })
            }
            GroupOp::Add { key } | GroupOp::Remove { key } | GroupOp::Promote { key } => {
                json!({ "key": key.to_string() })
            }
            GroupOp::Leave => json!({}),
            GroupOp::Rename { name } => json!({ "name": name }),
        }
    }
}

/// A parsed, signature-checked group link (not yet applied to a state).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupLink {
    /// The group.
    pub group: GroupId,
    /// Position, from 1.
    pub seqno: u64,
    /// State hash of the state it changes; `None` for `create`.
    pub prev: Option<String>,
    /// Who signed it.
    pub signer: PublicKey,
    /// Client time, ms (informational).
    pub ctime: u64,
    /// What it does.
    pub op: GroupOp,
    /// `hex(SHA-256(signing input))`.
    pub link_id: String,
    /// The exact canonical bytes.
    pub bytes: Vec<u8>,
}

impl GroupLink {
    /// The link as a JSON value (what a group message carries).
    pub fn to_value(&self) -> Value {
        serde_json::from_slice(&self.bytes).unwrap_or(Value::Null)
    }
}

/// Builds and signs a group link; returns its canonical bytes.
pub fn build_group_link(
    signing: &SigningKey,
    group: &GroupId,
    seqno: u64,
    prev: Option<&str>,
    ctime: u64,
    op: &GroupOp,
) -> Result<Vec<u8>, KezError> {
    let unsigned: Map<String, Value> = json!({
        "v": 1,
        "group": group.to_string(),
        "seqno": seqno,
        "prev": prev,
        "signer": PublicKey::of(signing).to_string(),
        "ctime": ctime,
        "op": op.name(),
        "body": op.body(),
    })
    .as_object()
    .cloned()
    .unwrap_or_default();
    canonicalize(&Value::Object(sign_object(signing, Purpose::GroupLink, unsigned)?))
}

fn change(m: impl Into<String>) -> KezError {
    err(ErrorCode::InvalidGroupChange, m)
}

fn is_hash_hex(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Checks a group name: 1–64 characters, no control characters.
pub fn check_name(name: &str) -> Result<(), KezError> {
    let n = name.chars().count();
    if n == 0 || n > MAX_NAME_CHARS || name.chars().any(char::is_control) {
        return Err(change(format!("a group name is 1 to {MAX_NAME_CHARS} characters without control characters")));
    }
    Ok(())
}

fn parse_members(v: &[Value]) -> Result<Vec<Member>, KezError> {
    let mut out: Vec<Member> = Vec::with_capacity(v.len());
    for m in v {
        let f = Fields::exact(m, "member", &["key", "role"], &[])?;
        let key: PublicKey = f.str("key")?.parse()?;
        let role = Role::parse(f.str("role")?)?;
        if let Some(last) = out.last()
            && last.key >= key
        {
            return Err(change("create: members must be distinct and sorted by key"));
        }
        out.push(Member { key, role });
    }
    Ok(out)
}

fn parse_op(op: &str, body: &Value) -> Result<GroupOp, KezError> {
    let key_body = |what: &'static str| -> Result<PublicKey, KezError> {
        Fields::exact(body, what, &["key"], &[])?.str("key")?.parse()
    };
    Ok(match op {
        "create" => {
            let f = Fields::exact(body, "create body", &["name", "members"], &[])?;
            let name = f.str("name")?;
            check_name(name)?;
            let members = parse_members(f.array("members")?)?;
            if members.is_empty() {
                return Err(change("create: a group starts with at least its creator"));
            }
            if members.len() > MAX_MEMBERS {
                return Err(err(ErrorCode::GroupFull, format!("a group has at most {MAX_MEMBERS} members")));
            }
            GroupOp::Create { name: name.into(), members }
        }
        "add" => GroupOp::Add { key: key_body("add body")? },
        "remove" => GroupOp::Remove { key: key_body("remove body")? },
        "promote" => GroupOp::Promote { key: key_body("promote body")? },
        "leave" => {
            Fields::exact(body, "leave body", &[], &[])?;
            GroupOp::Leave
        }
        "rename" => {
            let name = Fields::exact(body, "rename body", &["name"], &[])?.str("name")?;
            check_name(name)?;
            GroupOp::Rename { name: name.into() }
        }
        other => return Err(change(format!("unknown group op {other:?}"))),
    })
}

/// Parses one link: size, canonical bytes, exact shape, op body, signature.
pub fn parse_group_link(bytes: &[u8]) -> Result<GroupLink, KezError> {
    if bytes.len() > MAX_GROUP_LINK_BYTES {
        return Err(err(ErrorCode::TooLarge, format!("group link is over {MAX_GROUP_LINK_BYTES} bytes")));
    }
    let value = parse_canonical(bytes)?;
    let f = Fields::exact(
        &value,
        "group link",
        &["type", "v", "group", "seqno", "prev", "signer", "ctime", "op", "body", "sig"],
        &[],
    )?;
    let group: GroupId = f.str("group")?.parse()?;
    let signer: PublicKey = f.str("signer")?.parse()?;
    let seqno = f.u64("seqno")?;
    if seqno == 0 {
        return Err(change("seqno starts at 1"));
    }
    let prev = match f.get("prev") {
        Some(Value::Null) => None,
        Some(Value::String(s)) if is_hash_hex(s) => Some(s.clone()),
        _ => return Err(change("prev must be null or a 64-hex state hash")),
    };
    let ctime = f.u64("ctime")?;
    let op = parse_op(f.str("op")?, f.object("body")?)?;
    let first = seqno == 1;
    if first != prev.is_none() || first != matches!(op, GroupOp::Create { .. }) {
        return Err(change("link 1 is the create link with prev null, and only it"));
    }
    let input = verify_object(Purpose::GroupLink, value.as_object().unwrap_or(&Map::new()), &signer)?;
    let link_id = hex_encode(&Sha256::digest(&input));
    Ok(GroupLink { group, seqno, prev, signer, ctime, op, link_id, bytes: bytes.to_vec() })
}

/// [`parse_group_link`] of an embedded JSON value (a link carried in a message).
pub fn parse_group_link_value(v: &Value) -> Result<GroupLink, KezError> {
    parse_group_link(&canonicalize(v)?)
}

/// The state a log describes up to one link.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct GroupState {
    /// The group.
    pub group: GroupId,
    /// Seqno of `head`.
    pub seqno: u64,
    /// Link id of the last applied link.
    pub head: String,
    /// The group's name.
    pub name: String,
    /// Members sorted by key.
    pub members: Vec<Member>,
}

impl GroupState {
    /// The state after a `create` link.
    pub fn genesis(link: &GroupLink) -> Result<Self, KezError> {
        let GroupOp::Create { name, members } = &link.op else {
            return Err(change("a group log starts with a create link"));
        };
        if !members.iter().any(|m| m.key == link.signer && m.role == Role::Admin) {
            return Err(change("create: the creator must be listed as an admin"));
        }
        Ok(Self {
            group: link.group,
            seqno: 1,
            head: link.link_id.clone(),
            name: name.clone(),
            members: members.clone(),
        })
    }

    /// The JSON object whose JCS form is hashed.
    pub fn to_value(&self) -> Value {
        json!({
            "group": self.group.to_string(),
            "seqno": self.seqno,
            "head": self.head,
            "name": self.name,
            "members": self.members.iter().map(Member::to_value).collect::<Vec<_>>(),
        })
    }

    /// `hex(SHA-256("kez-v1/group-state" || 0x00 || JCS(state)))`.
    pub fn hash(&self) -> String {
        let mut h = Sha256::new();
        h.update(STATE_LABEL);
        h.update([0u8]);
        // Strings and integers only: JCS of the state cannot fail.
        h.update(canonicalize(&self.to_value()).expect("a group state is always canonicalizable"));
        hex_encode(&h.finalize())
    }

    /// The role of `key`, if it is a member.
    pub fn role_of(&self, key: &PublicKey) -> Option<Role> {
        self.members.iter().find(|m| &m.key == key).map(|m| m.role)
    }

    /// Whether `key` is a member.
    pub fn is_member(&self, key: &PublicKey) -> bool {
        self.role_of(key).is_some()
    }

    /// Checks that `link` extends this state (PROTOCOL.md §6.2) and returns the next state.
    pub fn apply(&self, link: &GroupLink) -> Result<GroupState, KezError> {
        if link.group != self.group {
            return Err(change("link belongs to another group"));
        }
        if link.seqno != self.seqno + 1 {
            return Err(err(
                ErrorCode::SeqnoConflict,
                format!("expected seqno {}, got {}", self.seqno + 1, link.seqno),
            ));
        }
        if link.prev.as_deref() != Some(self.hash().as_str()) {
            return Err(err(ErrorCode::PrevMismatch, "prev is not the hash of this state"));
        }
        let signer_role = self.role_of(&link.signer);
        let need_admin = || match signer_role {
            Some(Role::Admin) => Ok(()),
            _ => Err(err(ErrorCode::NotGroupAdmin, "only an admin may make this change")),
        };
        let mut next = self.clone();
        match &link.op {
            GroupOp::Create { .. } => return Err(change("create only starts a log")),
            GroupOp::Add { key } => {
                need_admin()?;
                if self.is_member(key) {
                    return Err(change("already a member"));
                }
                if self.members.len() >= MAX_MEMBERS {
                    return Err(err(ErrorCode::GroupFull, format!("a group has at most {MAX_MEMBERS} members")));
                }
                let at = next.members.partition_point(|m| m.key < *key);
                next.members.insert(at, Member { key: *key, role: Role::Member });
            }
            GroupOp::Remove { key } => {
                need_admin()?;
                if key == &link.signer {
                    return Err(change("an admin leaves with leave, not remove"));
                }
                if !self.is_member(key) {
                    return Err(change("not a member"));
                }
                next.members.retain(|m| &m.key != key);
            }
            GroupOp::Promote { key } => {
                need_admin()?;
                match next.members.iter_mut().find(|m| &m.key == key) {
                    Some(m) if m.role == Role::Member => m.role = Role::Admin,
                    Some(_) => return Err(change("already an admin")),
                    None => return Err(change("not a member")),
                }
            }
            GroupOp::Leave => {
                let Some(role) = signer_role else {
                    return Err(err(ErrorCode::NotGroupMember, "only a member can leave"));
                };
                next.members.retain(|m| m.key != link.signer);
                let admins_left = next.members.iter().any(|m| m.role == Role::Admin);
                if role == Role::Admin && !admins_left && !next.members.is_empty() {
                    return Err(change("the last admin cannot leave while others stay; promote someone first"));
                }
            }
            GroupOp::Rename { name } => {
                need_admin()?;
                if name == &self.name {
                    return Err(change("the group already has this name"));
                }
                next.name = name.clone();
            }
        }
        next.seqno = link.seqno;
        next.head = link.link_id.clone();
        Ok(next)
    }
}

/// Every link a member holds for one group: a tree rooted at the `create` link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupLog {
    links: Vec<GroupLink>,
}

impl GroupLog {
    /// A log that starts with `create` (which must be a valid create link).
    pub fn new(create: GroupLink) -> Result<Self, KezError> {
        GroupState::genesis(&create)?;
        Ok(Self { links: vec![create] })
    }

    /// The group id.
    pub fn group(&self) -> GroupId {
        self.links[0].group
    }

    /// The `create` link.
    pub fn root(&self) -> &GroupLink {
        &self.links[0]
    }

    /// Every link held, the root first, then in the order they arrived.
    pub fn links(&self) -> &[GroupLink] {
        &self.links
    }

    /// Adds a link; returns whether it was new. A second `create` is `group_fork`; a link of
    /// another group `invalid_group_change`; a full log `too_large`. A link that applies to no
    /// known state is kept (a later link may connect it).
    pub fn insert(&mut self, link: GroupLink) -> Result<bool, KezError> {
        if link.group != self.group() {
            return Err(change("link belongs to another group"));
        }
        if self.links.iter().any(|l| l.link_id == link.link_id) {
            return Ok(false);
        }
        if matches!(link.op, GroupOp::Create { .. }) {
            return Err(err(ErrorCode::GroupFork, "a different create link for a known group"));
        }
        if self.links.len() >= MAX_GROUP_LINKS {
            return Err(err(ErrorCode::TooLarge, format!("a group log holds at most {MAX_GROUP_LINKS} links")));
        }
        self.links.push(link);
        Ok(true)
    }

    /// Every state reachable from the root, by hash, with the indices of the links that apply to it.
    fn tree(&self) -> HashMap<String, Vec<usize>> {
        let mut by_prev: HashMap<&str, Vec<usize>> = HashMap::new();
        for (i, l) in self.links.iter().enumerate().skip(1) {
            if let Some(p) = &l.prev {
                by_prev.entry(p.as_str()).or_default().push(i);
            }
        }
        let mut out = HashMap::new();
        let Ok(root) = GroupState::genesis(&self.links[0]) else { return out };
        let mut todo = vec![root];
        while let Some(state) = todo.pop() {
            let hash = state.hash();
            let mut children = vec![];
            for &i in by_prev.get(hash.as_str()).map(Vec::as_slice).unwrap_or(&[]) {
                if let Ok(next) = state.apply(&self.links[i]) {
                    children.push(i);
                    todo.push(next);
                }
            }
            out.insert(hash, children);
        }
        out
    }

    /// The fork rule (PROTOCOL.md §6.2): among the links applying to one state, drop those
    /// whose signer another candidate removes (unless that drops all), then the smallest link id.
    fn winner(&self, candidates: &[usize]) -> Option<usize> {
        let removed_by_sibling = |i: usize| {
            let signer = self.links[i].signer;
            candidates.iter().any(|&j| j != i && matches!(self.links[j].op, GroupOp::Remove { key } if key == signer))
        };
        let kept: Vec<usize> = candidates.iter().copied().filter(|&i| !removed_by_sibling(i)).collect();
        let pool = if kept.is_empty() { candidates } else { &kept[..] };
        pool.iter().copied().min_by(|&a, &b| self.links[a].link_id.cmp(&self.links[b].link_id))
    }

    /// The canonical log: the links the fork rule picks from the root, and the states after each.
    pub fn canonical(&self) -> (Vec<&GroupLink>, Vec<GroupState>) {
        let tree = self.tree();
        let mut links = vec![&self.links[0]];
        let mut states = vec![];
        let Ok(mut state) = GroupState::genesis(&self.links[0]) else { return (links, states) };
        loop {
            let hash = state.hash();
            let next = tree.get(&hash).and_then(|children| self.winner(children));
            states.push(state);
            let Some(i) = next else { break };
            let Some(last) = states.last() else { break };
            let Ok(s) = last.apply(&self.links[i]) else { break };
            links.push(&self.links[i]);
            state = s;
        }
        (links, states)
    }

    /// The current state: the end of the canonical log.
    pub fn current(&self) -> GroupState {
        let (_, mut states) = self.canonical();
        // `new` checked the root, so there is always at least the genesis state.
        states.pop().unwrap_or_else(|| GroupState {
            group: self.group(),
            seqno: 0,
            head: String::new(),
            name: String::new(),
            members: vec![],
        })
    }

    /// Whether `hash` is the hash of a state reachable in this log.
    pub fn knows_state(&self, hash: &str) -> bool {
        self.tree().contains_key(hash)
    }

    /// Changes that lost a race (PROTOCOL.md §6.2), to be re-applied by their author: links not
    /// on the canonical log that apply to a state on it.
    pub fn lost(&self) -> Vec<&GroupLink> {
        let (links, states) = self.canonical();
        let on_path: HashMap<&str, ()> = links.iter().map(|l| (l.link_id.as_str(), ())).collect();
        let by_hash: HashMap<String, &GroupState> = states.iter().map(|s| (s.hash(), s)).collect();
        self.links
            .iter()
            .filter(|l| !on_path.contains_key(l.link_id.as_str()))
            .filter(|l| l.prev.as_ref().and_then(|p| by_hash.get(p)).is_some_and(|s| s.apply(l).is_ok()))
            .collect()
    }
}

/// The body of a `group` message (PROTOCOL.md §6.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupMessage {
    /// The group.
    pub group: GroupId,
    /// The state hash the sender sent under.
    pub state: String,
    /// A suffix of the sender's canonical log, oldest first.
    pub links: Vec<GroupLink>,
    /// The text; `None` for a change notice.
    pub text: Option<String>,
}

impl GroupMessage {
    /// The `body` object.
    pub fn to_value(&self) -> Value {
        let mut v = json!({
            "group": self.group.to_string(),
            "state": self.state,
            "links": self.links.iter().map(GroupLink::to_value).collect::<Vec<_>>(),
        });
        if let Some(t) = &self.text {
            v["text"] = json!(t);
        }
        v
    }

    /// Parses a `group` body: exact keys, the state hash form, every carried link (each must
    /// parse and verify, and belong to this group), the text bounds.
    pub fn parse(body: &Value) -> Result<Self, KezError> {
        let f = Fields::exact(body, "group body", &["group", "state", "links"], &["text"])?;
        let group: GroupId = f.str("group")?.parse()?;
        let state = f.str("state")?;
        if !is_hash_hex(state) {
            return Err(err(ErrorCode::InvalidRequest, "group body: state must be a 64-hex state hash"));
        }
        let raw = f.array("links")?;
        if raw.len() > MAX_GROUP_LINKS {
            return Err(err(ErrorCode::TooLarge, format!("a group message carries at most {MAX_GROUP_LINKS} links")));
        }
        let mut links = Vec::with_capacity(raw.len());
        for v in raw {
            let l = parse_group_link_value(v)?;
            if l.group != group {
                return Err(change("a carried link belongs to another group"));
            }
            links.push(l);
        }
        let text = f.opt_str("text")?;
        if let Some(t) = text {
            let n = t.chars().count();
            if n == 0 || n > crate::envelope::MAX_TEXT_CHARS {
                return Err(err(
                    ErrorCode::InvalidRequest,
                    format!("text must be 1 to {} characters", crate::envelope::MAX_TEXT_CHARS),
                ));
            }
        }
        Ok(Self { group, state: state.into(), links, text: text.map(str::to_owned) })
    }
}

/// How a verified group message relates to the reader's log after its links were merged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// From a member of the current state, under a known state: the group's message.
    Ok,
    /// Flagged with the code of PROTOCOL.md §6.2 receiver step 4.
    Flagged(ErrorCode),
}

/// Receiver steps 2–4 of PROTOCOL.md §6.2 on a log (`None`: the group is new to the reader).
/// Returns the updated log (unchanged when nothing could be merged) and the verdict for
/// `from`'s message as read by `me`.
pub fn receive(
    log: Option<GroupLog>,
    msg: &GroupMessage,
    from: &PublicKey,
    me: &PublicKey,
) -> Result<(GroupLog, Verdict), KezError> {
    let mut log = match log {
        Some(l) => l,
        None => {
            let Some(first) = msg.links.first().filter(|l| matches!(l.op, GroupOp::Create { .. })) else {
                return Err(err(ErrorCode::UnknownGroupState, "a group this reader does not know, without its log"));
            };
            GroupLog::new(first.clone())?
        }
    };
    if log.group() != msg.group {
        return Err(change("message names another group than the log"));
    }
    for l in &msg.links {
        match &l.op {
            GroupOp::Create { .. } if l.link_id == log.root().link_id => {}
            _ => {
                log.insert(l.clone())?;
            }
        }
    }
    let current = log.current();
    let verdict = if !log.knows_state(&msg.state) {
        Verdict::Flagged(ErrorCode::UnknownGroupState)
    } else if !current.is_member(from) || !current.is_member(me) {
        Verdict::Flagged(ErrorCode::NotGroupMember)
    } else {
        Verdict::Ok
    };
    Ok((log, verdict))
}

/// The longest suffix of `links` whose bytes fit in `budget` (PROTOCOL.md §6.2: what a
/// message carries). Always at least the last link, so a change notice names its change.
pub fn carried_suffix<'a>(links: &[&'a GroupLink], budget: usize) -> Vec<&'a GroupLink> {
    let mut used = 0usize;
    let mut start = links.len();
    while start > 0 {
        let n = links[start - 1].bytes.len() + 1;
        if used + n > budget && start < links.len() {
            break;
        }
        used += n;
        start -= 1;
    }
    links[start..].to_vec()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn sk(n: u8) -> SigningKey {
        SigningKey::from_bytes(&[n; 32])
    }
    fn pk(n: u8) -> PublicKey {
        PublicKey::of(&sk(n))
    }
    const GID: GroupId = GroupId([7u8; 32]);

    fn create(by: u8, others: &[u8]) -> GroupLink {
        let mut members: Vec<Member> = others.iter().map(|&n| Member { key: pk(n), role: Role::Member }).collect();
        members.push(Member { key: pk(by), role: Role::Admin });
        members.sort_by_key(|m| m.key);
        let op = GroupOp::Create { name: "friends".into(), members };
        parse_group_link(&build_group_link(&sk(by), &GID, 1, None, 1, &op).unwrap()).unwrap()
    }

    fn next(by: u8, state: &GroupState, op: GroupOp) -> GroupLink {
        parse_group_link(&build_group_link(&sk(by), &GID, state.seqno + 1, Some(&state.hash()), 2, &op).unwrap())
            .unwrap()
    }

    #[test]
    fn log_applies_and_rejects_non_admins() {
        let root = create(1, &[2, 3]);
        let s1 = GroupState::genesis(&root).unwrap();
        let add = next(1, &s1, GroupOp::Add { key: pk(4) });
        let s2 = s1.apply(&add).unwrap();
        assert!(s2.is_member(&pk(4)));
        assert_eq!(s1.apply(&next(2, &s1, GroupOp::Add { key: pk(5) })).unwrap_err().code, ErrorCode::NotGroupAdmin);
        assert_eq!(s2.apply(&add).unwrap_err().code, ErrorCode::SeqnoConflict);
        assert_eq!(s1.apply(&next(1, &s1, GroupOp::Leave)).unwrap_err().code, ErrorCode::InvalidGroupChange);
        assert_eq!(
            s1.apply(&next(9, &s1, GroupOp::Leave)).unwrap_err().code,
            ErrorCode::NotGroupMember,
            "a stranger cannot leave"
        );
    }

    #[test]
    fn concurrent_changes_converge_whatever_the_order() {
        let root = create(1, &[2, 3]);
        let s1 = GroupState::genesis(&root).unwrap();
        let promote = next(1, &s1, GroupOp::Promote { key: pk(2) });
        let s2 = s1.apply(&promote).unwrap();
        let a = next(1, &s2, GroupOp::Add { key: pk(4) });
        let b = next(2, &s2, GroupOp::Add { key: pk(5) });
        let mut x = GroupLog::new(root.clone()).unwrap();
        let mut y = GroupLog::new(root).unwrap();
        for l in [&promote, &a, &b] {
            x.insert(l.clone()).unwrap();
        }
        for l in [&b, &a, &promote] {
            y.insert(l.clone()).unwrap();
        }
        assert_eq!(x.current(), y.current());
        assert_eq!(x.current().seqno, 3);
        assert_eq!(x.lost().len(), 1);
        // A removal beats a concurrent change by the removed admin, whatever the ids.
        let rm = next(1, &s2, GroupOp::Remove { key: pk(2) });
        for order in [[&b, &rm], [&rm, &b]] {
            let mut z = GroupLog::new(x.root().clone()).unwrap();
            z.insert(promote.clone()).unwrap();
            for l in order {
                z.insert(l.clone()).unwrap();
            }
            assert_eq!(z.current().head, rm.link_id);
        }
    }

    #[test]
    fn carried_suffix_keeps_at_least_the_head() {
        let root = create(1, &[2]);
        let s1 = GroupState::genesis(&root).unwrap();
        let l2 = next(1, &s1, GroupOp::Rename { name: "x".into() });
        let all = [&root, &l2];
        assert_eq!(carried_suffix(&all, 1).len(), 1);
        assert_eq!(carried_suffix(&all, 1 << 20).len(), 2);
    }
}
