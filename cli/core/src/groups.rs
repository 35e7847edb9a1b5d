//! Groups on this device (PROTOCOL.md §6.2): the group logs on disk, making changes,
//! sealing a group message once per member, and receiving one.
//!
//! ```text
//! <data folder>/groups/<group id>.json   {"group": id, "links": ["<link bytes>", …]}   (0600, written atomically)
//! ```
//!
//! A file holds every link this device accepted for the group (forks included), root first;
//! the state is derived again on every load with the fork rule, and every link is verified
//! again, so a damaged or edited file cannot change who is in the group. Group messages go
//! to the history in [`Store`] like direct ones, under the group's timeline.
//!
//! Processes: `listen` and a command such as `group add` may both update a group file. Each
//! write replaces the whole file atomically after merging with what is on disk, so links are
//! never lost, only merged.

use std::path::PathBuf;

use kv_schemas::envelope::{self, Body, Opened};
use kv_schemas::group::{
    self, GroupId, GroupLink, GroupLog, GroupMessage, GroupOp, GroupState, Member, Role, Verdict, build_group_link,
    parse_group_link,
};
use kv_schemas::{ErrorCode, KezError, PublicKey, now_ms};
use serde::{Deserialize, Serialize};

use crate::chat::{Received, sender_of};
use crate::config::Paths;
use crate::error::{ClientError, Result};
use crate::identity::Identity;
use crate::store::{Insert, Store, StoredMessage};

/// Bytes of carried links a message may hold besides its text (the envelope must stay within
/// 64 KiB after base64url: 48 KiB of plaintext, minus the text and the rest of the message).
pub const LINK_BUDGET: usize = 44 * 1024;

#[derive(Serialize, Deserialize)]
struct GroupFile {
    group: GroupId,
    links: Vec<String>,
}

/// The group files of one data folder.
pub struct GroupStore {
    dir: PathBuf,
}

/// How a user names a group on the command line: `#name` or `group:<id>`.
pub fn is_group_reference(s: &str) -> bool {
    s.starts_with('#') || s.starts_with("group:")
}

fn group_err(e: KezError) -> ClientError {
    ClientError::Group(e)
}

impl GroupStore {
    /// The group files under `paths`.
    pub fn new(paths: &Paths) -> Self {
        Self { dir: paths.home().join("groups") }
    }

    fn path(&self, id: &GroupId) -> PathBuf {
        self.dir.join(format!("{id}.json"))
    }

    /// The log of `id`, verified again from its links; `None` when this device has no such group.
    pub fn load(&self, id: &GroupId) -> Result<Option<GroupLog>> {
        let path = self.path(id);
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(ClientError::io(&path, e)),
        };
        let file: GroupFile =
            serde_json::from_slice(&bytes).map_err(|e| ClientError::Store(format!("{}: {e}", path.display())))?;
        let bad = |e: KezError| ClientError::Store(format!("{}: {e}", path.display()));
        let mut links = file.links.iter().map(|l| parse_group_link(l.as_bytes()).map_err(bad));
        let Some(root) = links.next().transpose()? else {
            return Err(ClientError::Store(format!("{}: no links", path.display())));
        };
        let mut log = GroupLog::new(root).map_err(bad)?;
        for l in links {
            log.insert(l?).map_err(bad)?;
        }
        if log.group() != file.group || &file.group != id {
            return Err(ClientError::Store(format!("{}: holds another group", path.display())));
        }
        Ok(Some(log))
    }

    /// Writes `log` (merged with the file on disk, so a concurrent writer's links stay), 0600, atomically.
    pub fn save(&self, log: &GroupLog) -> Result<GroupLog> {
        let mut merged = log.clone();
        if let Some(on_disk) = self.load(&log.group())? {
            if on_disk.root().link_id != log.root().link_id {
                return Err(group_err(KezError::new(
                    ErrorCode::GroupFork,
                    "another create link is stored for this id",
                )));
            }
            for l in on_disk.links() {
                merged.insert(l.clone()).map_err(group_err)?;
            }
        }
        let file = GroupFile {
            group: merged.group(),
            links: merged.links().iter().map(|l| String::from_utf8_lossy(&l.bytes).into_owned()).collect(),
        };
        let mut bytes = serde_json::to_vec_pretty(&file).map_err(|e| ClientError::Store(e.to_string()))?;
        bytes.push(b'\n');
        let path = self.path(&merged.group());
        kez_private_file::write(&path, &bytes).map_err(|e| ClientError::io(&path, e))?;
        Ok(merged)
    }

    /// Every group this device knows, by name.
    pub fn list(&self) -> Result<Vec<GroupLog>> {
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(vec![]),
            Err(e) => return Err(ClientError::io(&self.dir, e)),
        };
        let mut out = vec![];
        for e in entries {
            let e = e.map_err(|err| ClientError::io(&self.dir, err))?;
            let name = e.file_name().to_string_lossy().into_owned();
            let Some(id) = name.strip_suffix(".json").and_then(|s| s.parse::<GroupId>().ok()) else { continue };
            if let Some(log) = self.load(&id)? {
                out.push(log);
            }
        }
        out.sort_by_key(|l| (l.current().name, l.group()));
        Ok(out)
    }

    /// The group `reference` names: `group:<id>`, or `#name` (must be unique among the groups
    /// this device knows).
    pub fn resolve(&self, reference: &str) -> Result<GroupLog> {
        if let Some(id) = reference.strip_prefix("group:") {
            let id: GroupId =
                id.parse().map_err(|e: KezError| ClientError::Usage(format!("{reference}: {}", e.message)))?;
            return self.load(&id)?.ok_or_else(|| ClientError::NoGroup(reference.into()));
        }
        let Some(name) = reference.strip_prefix('#') else {
            return Err(ClientError::Usage(format!("{reference:?} is not a group (use #name or group:<id>)")));
        };
        let mut found: Vec<GroupLog> = self.list()?.into_iter().filter(|l| l.current().name == name).collect();
        match found.len() {
            0 => Err(ClientError::NoGroup(reference.into())),
            1 => Ok(found.remove(0)),
            n => Err(ClientError::Usage(format!(
                "{n} groups are named {name:?}; use group:<id> (see `kez-chat group list`)"
            ))),
        }
    }
}

/// Starts a group named `name` with `me` as its admin and `others` as members.
pub fn create(me: &Identity, name: &str, others: &[PublicKey]) -> Result<GroupLog> {
    group::check_name(name).map_err(|e| ClientError::Usage(e.message))?;
    let mut members: Vec<Member> = vec![Member { key: me.public_key(), role: Role::Admin }];
    for k in others {
        if members.iter().any(|m| &m.key == k) {
            continue;
        }
        members.push(Member { key: *k, role: Role::Member });
    }
    members.sort_by_key(|m| m.key);
    let op = GroupOp::Create { name: name.into(), members };
    let bytes = build_group_link(me.signing_key(), &GroupId::random(), 1, None, now_ms(), &op).map_err(group_err)?;
    let link = parse_group_link(&bytes).map_err(group_err)?;
    GroupLog::new(link).map_err(group_err)
}

/// Signs `op` on the current state of `log`, checks it applies and adds it; returns the link.
pub fn change(me: &Identity, log: &mut GroupLog, op: GroupOp) -> Result<GroupLink> {
    let state = log.current();
    let link = sign_on(me, &state, &op)?;
    state.apply(&link).map_err(group_err)?;
    log.insert(link.clone()).map_err(group_err)?;
    Ok(link)
}

fn sign_on(me: &Identity, state: &GroupState, op: &GroupOp) -> Result<GroupLink> {
    let bytes = build_group_link(me.signing_key(), &state.group, state.seqno + 1, Some(&state.hash()), now_ms(), op)
        .map_err(group_err)?;
    parse_group_link(&bytes).map_err(group_err)
}

/// Re-applies this user's changes that lost a race (PROTOCOL.md §6.2 fork rule) on the current
/// state, where they still apply; returns the new links (to be published with a notice).
pub fn reapply_lost(me: &Identity, log: &mut GroupLog) -> Result<Vec<GroupLink>> {
    let own = me.public_key();
    let (canonical, _) = log.canonical();
    // A lost change stays in the log; once its re-applied twin is on the canonical log it is done.
    let done = |l: &GroupLink| canonical.iter().any(|c| c.signer == own && c.seqno >= l.seqno && c.op == l.op);
    let mine: Vec<GroupOp> =
        log.lost().into_iter().filter(|l| l.signer == own && !done(l)).map(|l| l.op.clone()).collect();
    let mut out = vec![];
    for op in mine {
        let state = log.current();
        // A lost change that the winner made moot (the member is in already, or gone) is dropped.
        let Ok(link) = sign_on(me, &state, &op) else { continue };
        if state.apply(&link).is_ok() && log.insert(link.clone()).map_err(group_err)? {
            out.push(link);
        }
    }
    Ok(out)
}

/// A group message sealed for every recipient, with one id.
#[derive(Debug, Clone)]
pub struct GroupSend {
    /// One envelope per recipient (the own key included, for the other devices).
    pub envelopes: Vec<(PublicKey, Vec<u8>)>,
    /// The history record of a text message (`None` for a change notice).
    pub record: Option<StoredMessage>,
    /// The state hash it was sent under.
    pub state: String,
}

/// Who a message of `log` goes to: every member of the current state and the own key (the
/// own devices), each once. A removed member is not in the state, so nothing reaches it.
pub fn recipients(me: &Identity, log: &GroupLog) -> Vec<PublicKey> {
    let mut out: Vec<PublicKey> = log.current().members.iter().map(|m| m.key).collect();
    if !out.contains(&me.public_key()) {
        out.push(me.public_key());
    }
    out
}

/// Seals `text` (or, with `None`, a change notice) for every recipient of `log`, carrying the
/// longest suffix of the canonical log that fits. A text needs the sender to be a member.
pub fn seal_group(me: &Identity, log: &GroupLog, text: Option<&str>) -> Result<GroupSend> {
    let state = log.current();
    if text.is_some() && !state.is_member(&me.public_key()) {
        return Err(group_err(KezError::new(ErrorCode::NotGroupMember, "you are not a member of this group")));
    }
    if let Some(t) = text {
        crate::chat::check_text(t)?;
    }
    let (canonical, _) = log.canonical();
    let budget = LINK_BUDGET.saturating_sub(text.map_or(0, str::len));
    let carried = group::carried_suffix(&canonical, budget);
    let msg = GroupMessage {
        group: log.group(),
        state: state.hash(),
        links: carried.into_iter().cloned().collect(),
        text: text.map(str::to_owned),
    };
    let body = Body::Group(msg);
    let id: [u8; 16] = kv_schemas::random_bytes();
    let ts = now_ms();
    let mut envelopes = vec![];
    for to in recipients(me, log) {
        envelopes.push((to, envelope::seal_with(me.signing_key(), &to, &body, ts, id, kv_schemas::random_bytes())?));
    }
    let record = text.map(|t| StoredMessage {
        from: me.public_key(),
        to: me.public_key(),
        id: kv_schemas::encoding::b64_encode(&id),
        ts,
        stored_at: ts,
        outgoing: true,
        kind: "text".into(),
        body: serde_json::json!({ "text": t }),
        stream_seq: None,
        group: Some(log.group()),
        flag: None,
    });
    Ok(GroupSend { envelopes, record, state: state.hash() })
}

/// What a group message changed, for the notice lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupUpdate {
    /// Links that are on the canonical log now and were not before, oldest first.
    pub new_links: Vec<GroupLink>,
    /// Whether the canonical log switched away from links it had (a fork resolved against them).
    pub reorganised: bool,
    /// This user's lost changes, signed again on the new state: publish them.
    pub reapplied: Vec<GroupLink>,
}

/// Receives a verified `group` envelope (PROTOCOL.md §6.2 receiver steps 2–4): merges its
/// links, recomputes the state, stores the message (flagged when it is not the group's).
pub fn receive(
    store: &Store,
    groups: &GroupStore,
    me: &Identity,
    opened: &Opened,
    msg: &GroupMessage,
    stream_seq: u64,
) -> Result<Received> {
    let now = now_ms();
    let own = me.public_key();
    // The sending device's own copy: it stored the message when it sent it.
    if opened.from == own
        && let Some(m) = store.message(&own, &opened.id)?
        && m.outgoing
        && m.stream_seq.is_none()
    {
        return Ok(Received::Known);
    }
    let before = groups.load(&msg.group)?;
    let old_canonical: Vec<String> =
        before.as_ref().map(|l| l.canonical().0.iter().map(|x| x.link_id.clone()).collect()).unwrap_or_default();
    let (mut log, verdict) = match group::receive(before, msg, &opened.from, &own) {
        Ok(r) => r,
        Err(e) => return Ok(Received::Rejected { code: e.code, reason: e.message }),
    };
    let reapplied = reapply_lost(me, &mut log)?;
    let log = groups.save(&log)?;
    let (canonical, _) = log.canonical();
    let new_links: Vec<GroupLink> =
        canonical.iter().filter(|l| !old_canonical.contains(&l.link_id)).map(|l| (*l).clone()).collect();
    let reorganised = old_canonical.iter().any(|id| !canonical.iter().any(|l| &l.link_id == id));
    let update = GroupUpdate { new_links, reorganised, reapplied };
    let flag = match verdict {
        Verdict::Ok => None,
        Verdict::Flagged(code) => Some(code),
    };
    let Some(text) = &msg.text else {
        return Ok(Received::GroupChange { group: log.group(), name: log.current().name, update, flag });
    };
    let record = StoredMessage {
        from: opened.from,
        to: own,
        id: opened.id.clone(),
        ts: opened.ts,
        stored_at: now,
        outgoing: opened.from == own,
        kind: "text".into(),
        body: serde_json::json!({ "text": text }),
        stream_seq: Some(stream_seq),
        group: Some(log.group()),
        flag: flag.map(|c| c.as_str().to_string()),
    };
    match store.insert_message(&record)? {
        Insert::Stored => {}
        Insert::Exists(existing) if existing.stream_seq == Some(stream_seq) => return Ok(Received::Redelivered),
        Insert::Exists(_) => {
            return Ok(Received::Rejected {
                code: ErrorCode::Replayed,
                reason: "this message (same sender and id) was received before".into(),
            });
        }
    }
    let sender = sender_of(store, &opened.from)?;
    Ok(Received::Group { message: record, name: log.current().name, sender, flag, update })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::chat;

    const WINDOW: u64 = 30 * 24 * 3600 * 1000;

    struct Device {
        _dir: tempfile::TempDir,
        id: Identity,
        store: Store,
        groups: GroupStore,
        seq: u64,
    }

    fn device(seed: u8) -> Device {
        let dir = tempfile::tempdir().unwrap();
        let paths = Paths::at(dir.path());
        let store = Store::open(&paths.db_dir()).unwrap();
        Device { id: Identity::from_seed([seed; 32]), store, groups: GroupStore::new(&paths), _dir: dir, seq: 0 }
    }

    fn deliver(d: &mut Device, send: &GroupSend) -> Option<Received> {
        let (_, env) = send.envelopes.iter().find(|(k, _)| *k == d.id.public_key())?;
        d.seq += 1;
        Some(chat::receive(&d.store, &d.groups, &d.id, env, d.seq, WINDOW).unwrap())
    }

    #[test]
    fn members_catch_up_and_removed_members_get_nothing() {
        let mut alice = device(1);
        let mut bob = device(2);
        let mut carol = device(3);
        let mut log = create(&alice.id, "friends", &[bob.id.public_key()]).unwrap();
        log = alice.groups.save(&log).unwrap();
        let hello = seal_group(&alice.id, &log, Some("hi bob")).unwrap();
        assert_eq!(hello.envelopes.len(), 2, "bob and alice's own devices");
        let Some(Received::Group { flag: None, message, .. }) = deliver(&mut bob, &hello) else { panic!() };
        assert_eq!(message.text(), Some("hi bob"));
        // The sending device knows its own copy.
        alice.store.insert_message(hello.record.as_ref().unwrap()).unwrap();
        assert_eq!(deliver(&mut alice, &hello), Some(Received::Known));

        // Carol is added; the notice reaches her and she learns the whole log.
        change(&alice.id, &mut log, GroupOp::Add { key: carol.id.public_key() }).unwrap();
        let notice = seal_group(&alice.id, &log, None).unwrap();
        assert!(matches!(deliver(&mut carol, &notice), Some(Received::GroupChange { flag: None, .. })));
        assert!(matches!(deliver(&mut bob, &notice), Some(Received::GroupChange { flag: None, .. })));
        assert_eq!(carol.groups.load(&log.group()).unwrap().unwrap().current(), log.current());

        // Bob is removed: no envelope for him any more.
        change(&alice.id, &mut log, GroupOp::Remove { key: bob.id.public_key() }).unwrap();
        let after = seal_group(&alice.id, &log, Some("bob is gone")).unwrap();
        assert!(deliver(&mut bob, &after).is_none());
        // Carol missed the removal notice but catches up from the carried links.
        let Some(Received::Group { flag: None, .. }) = deliver(&mut carol, &after) else { panic!() };
        assert_eq!(carol.groups.load(&log.group()).unwrap().unwrap().current(), log.current());
        // Bob, still thinking he is in, writes: carol flags it.
        let bobs = bob.groups.load(&log.group()).unwrap().unwrap();
        let sneaky = seal_group(&bob.id, &bobs, Some("still here")).unwrap();
        let Some(Received::Group { flag, .. }) = deliver(&mut carol, &sneaky) else { panic!() };
        assert_eq!(flag, Some(ErrorCode::NotGroupMember));
    }
}
