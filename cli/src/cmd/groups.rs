//! `group create|add|remove|promote|rename|leave|list|show`, and sending to a group
//! (`send #name …`, used by `send`).
//!
//! A group lives only on its members' devices (PROTOCOL.md §6.2): its signed log is in
//! `<data folder>/groups/`. A change is signed here, applied locally, and published by
//! sealing a change notice (a group message without text, carrying the log) to every member
//! of the new state and to the own key (the other devices). A removed member gets nothing.

use std::sync::Arc;

use anyhow::{Result, bail};
use clap::{Args, Subcommand};
use futures::StreamExt as _;
use kez_client::ClientError;
use kez_client::account::Account;
use kez_client::broker::Broker;
use kez_client::groups::{self, GroupSend, GroupStore};
use kez_client::store::Store;
use kez_client::{Identity, chat};
use kv_schemas::group::{GroupLink, GroupLog, GroupOp, GroupState, Role};
use kv_schemas::{PublicKey, safety};
use serde_json::{Value, json};

use crate::cmd::chat::{connect, contact_for_send};
use crate::ctx::Ctx;
use crate::output::{fmt_time, json_doc, short_key};
use crate::say;

/// How many sends of one fan-out are in flight at once.
const FAN_OUT_PARALLEL: usize = 16;

#[derive(Args)]
pub struct GroupArgs {
    #[command(subcommand)]
    cmd: Option<GroupCmd>,
}

#[derive(Subcommand)]
enum GroupCmd {
    /// List the groups this device knows (the default).
    ///
    /// Example: kez-chat group list --json
    List,
    /// Start a group with you as its admin; the members get a notice and can write at once.
    ///
    /// Members are handles (pinned as contacts on first use, like `send`). A group has at
    /// most 100 members. Its name is 1–64 characters; refer to it as `#name` (or
    /// `group:<id>` when two groups share a name).
    ///
    /// Example: kez-chat group create friends @bob @carol
    Create {
        /// The group's name.
        name: String,
        /// The first members besides you.
        members: Vec<String>,
    },
    /// Add a member (admins only). The new member gets the whole log and sees new messages.
    ///
    /// Example: kez-chat group add '#friends' @dave
    Add {
        /// The group: `#name` or `group:<id>`.
        group: String,
        /// Who: a handle.
        member: String,
    },
    /// Remove a member (admins only). Nothing sent afterwards reaches them.
    ///
    /// Example: kez-chat group remove '#friends' @dave
    Remove {
        /// The group: `#name` or `group:<id>`.
        group: String,
        /// Who: a contact's handle or a key (`ed25519:<hex>`).
        member: String,
    },
    /// Make a member an admin (admins only).
    ///
    /// Example: kez-chat group promote '#friends' @bob
    Promote {
        /// The group: `#name` or `group:<id>`.
        group: String,
        /// Who: a contact's handle or a key (`ed25519:<hex>`).
        member: String,
    },
    /// Rename the group (admins only).
    ///
    /// Example: kez-chat group rename '#friends' "old friends"
    Rename {
        /// The group: `#name` or `group:<id>`.
        group: String,
        /// The new name.
        name: String,
    },
    /// Leave the group. The last admin must promote someone first.
    ///
    /// Example: kez-chat group leave '#friends'
    Leave {
        /// The group: `#name` or `group:<id>`.
        group: String,
    },
    /// Show a group: id, state hash, members with roles and verification, the log.
    ///
    /// Example: kez-chat group show '#friends'
    Show {
        /// The group: `#name` or `group:<id>`.
        group: String,
    },
}

pub async fn group(ctx: &mut Ctx, args: GroupArgs) -> Result<()> {
    match args.cmd.unwrap_or(GroupCmd::List) {
        GroupCmd::List => list(ctx),
        GroupCmd::Show { group } => show(ctx, &group),
        GroupCmd::Create { name, members } => create(ctx, &name, &members).await,
        GroupCmd::Add { group, member } => {
            let (account, _) = ctx.account_with_config().await?;
            let key = contact_for_send(ctx, &account, &ctx.handle(&account, &member)?).await?.key;
            change(ctx, account, &group, GroupOp::Add { key }).await
        }
        GroupCmd::Remove { group, member } => {
            let (account, _) = ctx.account_with_config().await?;
            let key = member_key(ctx, &account, &member)?;
            change(ctx, account, &group, GroupOp::Remove { key }).await
        }
        GroupCmd::Promote { group, member } => {
            let (account, _) = ctx.account_with_config().await?;
            let key = member_key(ctx, &account, &member)?;
            change(ctx, account, &group, GroupOp::Promote { key }).await
        }
        GroupCmd::Rename { group, name } => {
            kv_schemas::group::check_name(&name).map_err(|e| ClientError::Usage(e.message))?;
            let (account, _) = ctx.account_with_config().await?;
            change(ctx, account, &group, GroupOp::Rename { name }).await
        }
        GroupCmd::Leave { group } => {
            let (account, _) = ctx.account_with_config().await?;
            change(ctx, account, &group, GroupOp::Leave).await
        }
    }
}

/// A member named by key, or by the handle of a contact (a removed member need not be reachable).
fn member_key(ctx: &Ctx, account: &Account, member: &str) -> Result<PublicKey> {
    if let Ok(k) = member.parse::<PublicKey>() {
        return Ok(k);
    }
    let handle = ctx.handle(account, member)?;
    let store = Store::open(&ctx.paths.db_dir())?;
    let c = store.contact(&handle)?.ok_or_else(|| ClientError::NotAContact(handle.display(&account.domain)))?;
    Ok(c.key)
}

/// A member's label: the contact's handle, or the short key.
fn label(store: &Store, account: &Account, key: &PublicKey) -> String {
    if *key == account.key {
        return "me".into();
    }
    match store.contact_by_key(key).ok().flatten() {
        Some(c) => c.handle.display(&account.domain),
        None => short_key(key),
    }
}

/// One line per change, e.g. `alice added dave`.
pub fn describe(store: &Store, account: &Account, link: &GroupLink) -> String {
    let who = label(store, account, &link.signer);
    match &link.op {
        GroupOp::Create { name, members } => format!("{who} created {name:?} with {} members", members.len()),
        GroupOp::Add { key } => format!("{who} added {}", label(store, account, key)),
        GroupOp::Remove { key } => format!("{who} removed {}", label(store, account, key)),
        GroupOp::Promote { key } => format!("{who} made {} an admin", label(store, account, key)),
        GroupOp::Leave => format!("{who} left"),
        GroupOp::Rename { name } => format!("{who} renamed the group to {name:?}"),
    }
}

fn members_json(store: &Store, account: &Account, st: &GroupState) -> Vec<Value> {
    st.members
        .iter()
        .map(|m| {
            let contact = store.contact_by_key(&m.key).ok().flatten();
            json!({
                "key": m.key,
                "role": m.role.as_str(),
                "handle": contact.as_ref().map(|c| c.handle.clone()),
                "verified": contact.as_ref().map(|c| c.verified),
                "me": m.key == account.key,
                "fingerprint": safety::fingerprint(&m.key),
            })
        })
        .collect()
}

fn summary(store: &Store, account: &Account, log: &GroupLog) -> Value {
    let st = log.current();
    json!({
        "group": log.group(),
        "name": st.name,
        "state": st.hash(),
        "seqno": st.seqno,
        "members": members_json(store, account, &st),
        "my_role": st.role_of(&account.key).map(Role::as_str),
    })
}

fn list(ctx: &mut Ctx) -> Result<()> {
    let account = Account::require(&ctx.paths)?;
    let logs = GroupStore::new(&ctx.paths).list()?;
    let store = Store::open(&ctx.paths.db_dir())?;
    if ctx.json {
        json_doc(&Value::Array(logs.iter().map(|l| summary(&store, &account, l)).collect()));
        return Ok(());
    }
    if logs.is_empty() {
        say!("no groups yet (start one with `kez-chat group create <name> @member …`)");
    }
    for l in &logs {
        let st = l.current();
        let role = st.role_of(&account.key).map_or("not a member", Role::as_str);
        say!("#{}  {} members  you: {role}  group:{}", st.name, st.members.len(), l.group());
    }
    Ok(())
}

fn show(ctx: &mut Ctx, reference: &str) -> Result<()> {
    let account = Account::require(&ctx.paths)?;
    let log = GroupStore::new(&ctx.paths).resolve(reference)?;
    let store = Store::open(&ctx.paths.db_dir())?;
    let (canonical, _) = log.canonical();
    if ctx.json {
        let mut v = summary(&store, &account, &log);
        v["log"] = canonical
            .iter()
            .map(|l| {
                json!({"link_id": l.link_id, "seqno": l.seqno, "op": l.op.name(), "signer": l.signer,
                             "ctime": l.ctime, "text": describe(&store, &account, l)})
            })
            .collect();
        v["forks_held"] = json!(log.links().len() - canonical.len());
        json_doc(&v);
        return Ok(());
    }
    let st = log.current();
    say!("#{}  (group:{})", st.name, log.group());
    say!("state {} after {} changes", st.hash(), st.seqno);
    for m in members_json(&store, &account, &st) {
        let who = m["handle"]
            .as_str()
            .map(str::to_string)
            .unwrap_or_else(|| format!("unknown key {}", m["key"].as_str().unwrap_or_default()));
        let verified = match m["verified"].as_bool() {
            Some(true) => "verified",
            Some(false) => "not verified",
            None => "not a contact",
        };
        let me = if m["me"] == true { " (you)" } else { "" };
        say!("  {:<6} {who}{me}  [{verified}]", m["role"].as_str().unwrap_or_default());
    }
    say!("log:");
    for l in canonical {
        say!("  {} {}", fmt_time(l.ctime), describe(&store, &account, l));
    }
    Ok(())
}

async fn create(ctx: &mut Ctx, name: &str, members: &[String]) -> Result<()> {
    kv_schemas::group::check_name(name).map_err(|e| ClientError::Usage(e.message))?;
    if members.len() + 1 > kv_schemas::group::MAX_MEMBERS {
        bail!(ClientError::Usage(format!("a group has at most {} members", kv_schemas::group::MAX_MEMBERS)));
    }
    let (account, _) = ctx.account_with_config().await?;
    let mut keys = vec![];
    for m in members {
        let handle = ctx.handle(&account, m)?;
        let c = contact_for_send(ctx, &account, &handle).await?;
        if let Some(e) = c.key_changed_error() {
            bail!(e);
        }
        keys.push(c.key);
    }
    let id = ctx.unlock(&account)?;
    let log = groups::create(&id, name, &keys)?;
    publish(ctx, &account, id, log, "created").await
}

async fn change(ctx: &mut Ctx, account: Account, reference: &str, op: GroupOp) -> Result<()> {
    let gs = GroupStore::new(&ctx.paths);
    let mut log = gs.resolve(reference)?;
    let id = ctx.unlock(&account)?;
    let verb = op.name();
    groups::change(&id, &mut log, op)?;
    publish(ctx, &account, id, log, verb).await
}

/// Saves the log and sends the change notice to every recipient of the new state.
async fn publish(ctx: &Ctx, account: &Account, id: Arc<Identity>, log: GroupLog, verb: &str) -> Result<()> {
    let log = GroupStore::new(&ctx.paths).save(&log)?;
    let notice = groups::seal_group(&id, &log, None)?;
    let broker = connect(ctx, account, id.clone()).await?;
    let failed = fan_out(&broker, &notice).await;
    broker.close().await;
    report(ctx, account, &log, verb, &notice, &failed)
}

/// Sends every envelope of `send` (at most [`FAN_OUT_PARALLEL`] at once); returns the
/// recipients it could not reach, with the reason.
pub async fn fan_out(broker: &Broker, send: &GroupSend) -> Vec<(PublicKey, ClientError)> {
    let results: Vec<(PublicKey, kez_client::error::Result<()>)> = futures::stream::iter(
        send.envelopes.iter().map(|(to, env)| async move { (*to, broker.send(to, env.clone()).await) }),
    )
    .buffer_unordered(FAN_OUT_PARALLEL)
    .collect()
    .await;
    results.into_iter().filter_map(|(k, r)| r.err().map(|e| (k, e))).collect()
}

fn report(
    ctx: &Ctx,
    account: &Account,
    log: &GroupLog,
    verb: &str,
    send: &GroupSend,
    failed: &[(PublicKey, ClientError)],
) -> Result<()> {
    let st = log.current();
    for (k, e) in failed {
        eprintln!("kez-chat: warning: could not reach {}: {e}", short_key(k));
    }
    if ctx.json {
        let store = Store::open(&ctx.paths.db_dir())?;
        let mut v = summary(&store, account, log);
        v["status"] = json!(verb);
        v["sent_to"] = json!(send.envelopes.len() - failed.len());
        v["failed"] = failed.iter().map(|(k, e)| json!({"key": k, "error": e.to_string()})).collect();
        if let Some(r) = &send.record {
            v["id"] = json!(r.id);
            v["ts"] = json!(r.ts);
        }
        json_doc(&v);
    } else {
        say!("#{}: {verb} (state {}…, {} members)", st.name, &st.hash()[..12], st.members.len());
    }
    if !failed.is_empty() && failed.len() == send.envelopes.len() {
        bail!(ClientError::Broker("the group message reached no member".into()));
    }
    Ok(())
}

/// `send #name text`: seals the text once per member and sends it.
pub async fn send_text(ctx: &mut Ctx, reference: &str, text: &str) -> Result<()> {
    let (account, _) = ctx.account_with_config().await?;
    chat::check_text(text)?;
    let log = GroupStore::new(&ctx.paths).resolve(reference)?;
    let id = ctx.unlock(&account)?;
    let send = groups::seal_group(&id, &log, Some(text))?;
    let broker = connect(ctx, &account, id.clone()).await?;
    let failed = fan_out(&broker, &send).await;
    broker.close().await;
    if let Some(r) = &send.record {
        let store = Store::open(&ctx.paths.db_dir())?;
        store.insert_message(r)?;
    }
    report(ctx, &account, &log, "sent", &send, &failed)
}

/// Publishes changes this device re-applied after losing a race (from `listen`).
pub async fn publish_reapplied(ctx: &Ctx, broker: &Broker, id: &Identity, group: &kv_schemas::group::GroupId) {
    let Ok(Some(log)) = GroupStore::new(&ctx.paths).load(group) else { return };
    match groups::seal_group(id, &log, None) {
        Ok(notice) => {
            for (k, e) in fan_out(broker, &notice).await {
                eprintln!("kez-chat: warning: could not send the re-applied change to {}: {e}", short_key(&k));
            }
        }
        Err(e) => eprintln!("kez-chat: warning: could not re-publish a lost group change: {e}"),
    }
}
