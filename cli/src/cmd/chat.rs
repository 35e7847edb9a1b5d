//! `send`, `listen`, `history`.
//!
//! Every connection is one device of the account (`device.json`, created on first use, so a
//! wave-1 data folder becomes a device the first time it connects). `send` hands the
//! envelope to the server's relay and, once it was accepted, sends a sealed copy to the own
//! inbox so the account's other devices show it too (PROTOCOL.md §6.1).
//!
//! `listen` enrolls the device (the server creates its consumer), then pulls with explicit
//! acks: each message is opened and verified, stored (flushed) in the replay store and
//! history, shown, and only then acknowledged. A rejected envelope is reported and
//! acknowledged so it is not redelivered. A vanished consumer is re-created by enrolling
//! again, once; a removed device stops. The store is opened per batch, so `send` in another
//! terminal can use it meanwhile.
//!
//! Extending `listen` (e.g. "also serve files"): pass futures in `extra`; they
//! run next to the receive loop and the first one to finish (or fail) ends it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use clap::Args;
use futures::future::BoxFuture;
use kez_client::account::{self, Account};
use kez_client::broker::{Broker, Delivery, Inbox};
use kez_client::chat::{self, Outgoing, Received, Sender};
use kez_client::contacts::{Change, Contact};
use kez_client::device::LocalDevice;
use kez_client::groups::{self, GroupStore, GroupUpdate};
use kez_client::search;
use kez_client::store::{Store, StoredMessage};
use kez_client::{ClientError, Identity};
use kv_schemas::ErrorCode;
use kv_schemas::group::GroupId;
use kv_schemas::{PublicKey, safety};
use serde_json::json;

use crate::cmd::contacts::refresh;
use crate::ctx::Ctx;
use crate::output::{fmt_time, json_doc, json_line, short_key};
use crate::say;

#[derive(Args)]
pub struct SendArgs {
    /// The recipient: `chris`, `@chris` or `chris@other.org`, or a group: `#name` or
    /// `group:<id>` (quote `#name` in a shell).
    handle: String,
    /// The message text; `-` reads it from standard input.
    text: String,
}

#[derive(Args)]
pub struct ListenArgs {
    /// Process what is waiting now, then exit (do not wait for new messages).
    #[arg(long)]
    once: bool,
    /// Exit after showing this many messages.
    #[arg(long, value_name = "N")]
    count: Option<u64>,
    /// Exit after this many seconds (with --count: fail if fewer arrived).
    #[arg(long, value_name = "SECONDS")]
    timeout: Option<f64>,
}

#[derive(Args)]
pub struct HistoryArgs {
    /// The contact (or `ed25519:<hex>` for an unknown sender), or a group: `#name` or `group:<id>`.
    handle: String,
    /// Show at most this many of the latest messages.
    #[arg(long, default_value_t = 50)]
    limit: usize,
}

#[derive(Args)]
pub struct SearchArgs {
    /// The words to find (all of them, in any order; case and accents are ignored).
    #[arg(required = true, num_args = 1..)]
    words: Vec<String>,
    /// Show at most this many matches, newest first.
    #[arg(long, default_value_t = 50)]
    limit: usize,
}

/// This data folder as a device: `device.json`, created on first use (a data folder of
/// kez-chat 0.1 gets its device id here, the first time it connects).
pub fn local_device(ctx: &Ctx) -> Result<LocalDevice> {
    if let Some(d) = LocalDevice::load(&ctx.paths)? {
        return Ok(d);
    }
    let d = LocalDevice::load_or_create(&ctx.paths, &kez_client::device::default_name())?;
    if !ctx.json {
        eprintln!("kez-chat: this data folder is now the device {} ({:?}) of your account", d.id, d.name);
    }
    Ok(d)
}

/// Logs in to the account's broker as this device; an authorization violation is
/// explained with a registry lookup ("not registered yet" or a server problem).
pub async fn connect(ctx: &Ctx, account: &Account, id: Arc<Identity>) -> Result<Broker> {
    let device = local_device(ctx)?;
    match Broker::connect(&account.nats_url, id, &device.id).await {
        Ok(b) => Ok(b),
        Err(ClientError::Denied(detail)) => {
            let api = ctx.api(Some(account))?;
            match api.lookup_key(&account.key).await {
                Ok(None) => bail!(ClientError::NotRegistered { server: api.base().to_string() }),
                _ => bail!(ClientError::Denied(format!(
                    "{detail}; the key is registered, so the server's login check failed (try again later)"
                ))),
            }
        }
        Err(e) => Err(e.into()),
    }
}

/// Publishes missing sigchain endpoints (after an interrupted registration).
async fn repair_endpoints(ctx: &Ctx, account: &mut Account, id: &Identity) {
    if account.endpoints_published {
        return;
    }
    let Ok(api) = ctx.api(Some(account)) else { return };
    match account::ensure_endpoints(&api, account, id).await {
        Ok(()) => {
            let _ = account.save(&ctx.paths);
            eprintln!("kez-chat: published your inbox and node on your sigchain");
        }
        Err(e) => eprintln!("kez-chat: warning: your endpoints are still not published: {e}"),
    }
}

/// The pinned contact for `handle`, re-checked against the server. First use pins it.
pub(crate) async fn contact_for_send(ctx: &Ctx, account: &Account, handle: &kv_schemas::Handle) -> Result<Contact> {
    match refresh(ctx, account, handle).await {
        Ok((c, Change::Added)) => {
            eprintln!(
                "kez-chat: {} was not a contact; pinned its key on first use (fingerprint {})",
                handle.display(&account.domain),
                safety::fingerprint(&c.key)
            );
            Ok(c)
        }
        Ok((c, Change::Unchanged)) => Ok(c),
        Err(e @ (ClientError::ServerUnreachable { .. } | ClientError::Server { .. })) => {
            let store = Store::open(&ctx.paths.db_dir())?;
            match store.contact(handle)? {
                Some(c) => {
                    eprintln!("kez-chat: warning: could not re-check {handle} ({e}); using the pinned key");
                    Ok(c)
                }
                None => Err(e.into()),
            }
        }
        Err(e) => Err(e.into()),
    }
}

pub async fn send(ctx: &mut Ctx, args: SendArgs) -> Result<()> {
    let text = read_text(ctx, args.text)?;
    if groups::is_group_reference(&args.handle) {
        return crate::cmd::groups::send_text(ctx, &args.handle, &text).await;
    }
    let (mut account, _) = ctx.account_with_config().await?;
    let handle = ctx.handle(&account, &args.handle)?;
    if handle == account.handle {
        bail!(ClientError::Usage("you cannot send messages to yourself".into()));
    }
    chat::check_text(&text)?;
    let contact = contact_for_send(ctx, &account, &handle).await?;
    if let Some(e) = contact.key_changed_error() {
        bail!(e);
    }
    let id = ctx.unlock(&account)?;
    repair_endpoints(ctx, &mut account, &id).await;
    let out = chat::seal_text(&id, &contact, &text)?;
    let broker = connect(ctx, &account, id.clone()).await?;
    let copied = deliver(ctx, &broker, &id, &out).await;
    broker.close().await;
    let copied = copied?;
    if ctx.json {
        json_doc(&json!({
            "status": "sent",
            "to": contact.handle,
            "key": contact.key,
            "id": out.record.id,
            "ts": out.record.ts,
            "copied_to_own_devices": copied,
        }));
    } else {
        say!("sent to {} at {}", contact.handle.display(&account.domain), fmt_time(out.record.ts));
    }
    Ok(())
}

/// The message text: the argument, or standard input for `-` (one trailing newline dropped).
fn read_text(ctx: &mut Ctx, arg: String) -> Result<String> {
    if arg != "-" {
        return Ok(arg);
    }
    let mut t = ctx.input.rest()?;
    if t.ends_with('\n') {
        t.pop();
        if t.ends_with('\r') {
            t.pop();
        }
    }
    Ok(t)
}

/// Sends `out` through the relay, stores it in the history, then sends its sealed copy to
/// the own inbox (PROTOCOL.md §6.1). Only the message itself must succeed; a failed copy is
/// a warning (the other devices then miss it) and returns `false`.
pub async fn deliver(ctx: &Ctx, broker: &Broker, id: &Identity, out: &Outgoing) -> Result<bool> {
    broker.send(&out.to, out.envelope.clone()).await?;
    let store = Store::open(&ctx.paths.db_dir())?;
    store.insert_message(&out.record)?;
    drop(store);
    let Some(copy) = chat::seal_sent_copy(id, out)? else { return Ok(false) };
    match broker.send(&id.public_key(), copy).await {
        Ok(()) => Ok(true),
        Err(e) => {
            eprintln!("kez-chat: warning: sent, but your other devices will not show it: {e}");
            Ok(false)
        }
    }
}

/// Test hook (debug builds only): `KEZ_FAULT=crash-before-ack` makes `listen`
/// exit right after a message was stored and shown, before acknowledging it,
/// like a crash or power loss at the worst moment.
fn crash_before_ack() -> bool {
    cfg!(debug_assertions) && std::env::var("KEZ_FAULT").is_ok_and(|v| v == "crash-before-ack")
}

fn show_message(ctx: &Ctx, account: &Account, m: &StoredMessage, sender: &Sender) {
    let text = m.text().map(str::to_string).unwrap_or_else(|| format!("[{} message]", m.kind));
    if ctx.json {
        let mut v = json!({
            "event": "message",
            "id": m.id,
            "from": m.from,
            "ts": m.ts,
            "time": fmt_time(m.ts),
            "kind": m.kind,
            "text": m.text(),
            "stream_seq": m.stream_seq,
        });
        match sender {
            Sender::Contact { handle, verified } => {
                v["sender"] = json!("contact");
                v["handle"] = json!(handle);
                v["verified"] = json!(verified);
            }
            Sender::Unknown { fingerprint, pending_for, .. } => {
                v["sender"] = json!("unknown");
                v["handle"] = serde_json::Value::Null;
                v["fingerprint"] = json!(fingerprint);
                v["key_change_pending_for"] = json!(pending_for);
            }
        }
        json_line(&v);
        return;
    }
    match sender {
        Sender::Contact { handle, .. } => say!("[{}] {}: {text}", fmt_time(m.ts), handle.display(&account.domain)),
        Sender::Unknown { key, fingerprint, pending_for } => {
            say!("[{}] unknown sender {} (fingerprint {fingerprint}): {text}", fmt_time(m.ts), short_key(key));
            match pending_for {
                Some(h) => eprintln!(
                    "kez-chat: WARNING: this key is the NEW key of {h}, which you have not trusted; verify it before `kez-chat trust {h} --new-key …`"
                ),
                None => eprintln!(
                    "kez-chat: note: the sender above is not one of your contacts; nothing proves who they are"
                ),
            }
        }
    }
}

/// A sent copy from another device: "me → peer".
fn show_filed(ctx: &Ctx, account: &Account, store: &Store, m: &StoredMessage) {
    // The caller holds the store open (sled allows one opening per process).
    let contact = store.contact_by_key(&m.to).ok().flatten();
    let to = contact.as_ref().map(|c| c.handle.display(&account.domain)).unwrap_or_else(|| short_key(&m.to));
    if ctx.json {
        json_line(&json!({
            "event": "sent",
            "id": m.id,
            "to": m.to,
            "handle": contact.map(|c| c.handle),
            "ts": m.ts,
            "time": fmt_time(m.ts),
            "kind": m.kind,
            "text": m.text(),
            "stream_seq": m.stream_seq,
        }));
        return;
    }
    let text = m.text().map(str::to_string).unwrap_or_else(|| format!("[{} message]", m.kind));
    say!("[{}] me → {to} (from another device): {text}", fmt_time(m.ts));
}

fn report_rejected(ctx: &Ctx, seq: Option<u64>, code: &str, reason: &str) {
    let at = seq.map(|s| format!(" #{s}")).unwrap_or_default();
    eprintln!("kez-chat: rejected message{at}: {code}: {reason}");
    if ctx.json {
        json_line(&json!({ "event": "rejected", "stream_seq": seq, "code": code, "reason": reason }));
    }
}

/// Processes one delivery; returns whether a message was shown, and the group whose lost
/// changes this device re-applied (to be published once the store is closed).
async fn handle_delivery(
    ctx: &Ctx,
    account: &Account,
    id: &Identity,
    store: &Store,
    inbox: &Inbox,
    d: Delivery,
) -> Result<(bool, Option<GroupId>)> {
    let seq = Some(d.stream_seq);
    let window = if account.inbox_max_age_ms == 0 { 30 * 24 * 3600 * 1000 } else { account.inbox_max_age_ms };
    let outcome = chat::receive(store, &GroupStore::new(&ctx.paths), id, &d.payload, d.stream_seq, window)?;
    let mut republish = None;
    let shown = match outcome {
        Received::Group { message, name, sender, flag, update } => {
            if !update.reapplied.is_empty() {
                republish = message.group;
            }
            show_group_update(ctx, account, store, &name, message.group.as_ref(), &update, None);
            show_group_message(ctx, account, &message, &name, &sender, flag);
            true
        }
        Received::GroupChange { group, name, update, flag } => {
            if !update.reapplied.is_empty() {
                republish = Some(group);
            }
            show_group_update(ctx, account, store, &name, Some(&group), &update, flag);
            false
        }
        Received::Shown { message, sender } => {
            show_message(ctx, account, &message, &sender);
            true
        }
        Received::Filed { message } => {
            show_filed(ctx, account, store, &message);
            true
        }
        Received::Known => false,
        Received::Dropped { from } => {
            if ctx.json {
                json_line(&json!({ "event": "dropped", "reason": "blocked", "from": from, "stream_seq": seq }));
            }
            false
        }
        Received::Redelivered => {
            if ctx.json {
                json_line(&json!({ "event": "redelivered", "stream_seq": seq }));
            }
            false
        }
        Received::Rejected { code, reason } => {
            report_rejected(ctx, seq, code.as_str(), &reason);
            false
        }
    };
    if shown && crash_before_ack() {
        std::process::exit(86);
    }
    // A lost ack is harmless: the message is stored, so its redelivery is
    // acknowledged silently. Warn and go on.
    if let Err(e) = inbox.ack(&d).await {
        eprintln!("kez-chat: warning: {e}; the broker will redeliver, which is handled");
    }
    Ok((shown, republish))
}

/// Notice lines for the changes a group message brought (`#friends: alice added dave`).
fn show_group_update(
    ctx: &Ctx,
    account: &Account,
    store: &Store,
    name: &str,
    group: Option<&GroupId>,
    update: &GroupUpdate,
    flag: Option<ErrorCode>,
) {
    if let Some(code) = flag {
        eprintln!("kez-chat: a change notice for #{name} is not the group's ({code}); ignored");
        if ctx.json {
            json_line(&json!({ "event": "group_notice_flagged", "group": group, "name": name, "flag": code.as_str() }));
        }
        return;
    }
    if update.reorganised {
        eprintln!("kez-chat: #{name}: two admins changed the group at once; the log was settled by the fork rule");
    }
    for l in update.new_links.iter().chain(&update.reapplied) {
        let text = crate::cmd::groups::describe(store, account, l);
        if ctx.json {
            json_line(&json!({ "event": "group_change", "group": group, "name": name, "op": l.op.name(),
                               "signer": l.signer, "link_id": l.link_id, "text": text }));
        } else {
            say!("#{name}: {text}");
        }
    }
    if ctx.json && (update.new_links.is_empty() && update.reapplied.is_empty()) {
        return;
    }
    if ctx.json
        && let Some(g) = group
        && let Ok(Some(log)) = GroupStore::new(&ctx.paths).load(g)
    {
        let st = log.current();
        json_line(&json!({ "event": "group_state", "group": g, "name": st.name, "state": st.hash(),
                           "members": st.members.len() }));
    }
}

fn show_group_message(
    ctx: &Ctx,
    account: &Account,
    m: &StoredMessage,
    name: &str,
    sender: &Sender,
    flag: Option<ErrorCode>,
) {
    let who = match sender {
        Sender::Contact { handle, .. } => handle.display(&account.domain),
        Sender::Unknown { key, .. } if *key == account.key => "me".into(),
        Sender::Unknown { key, fingerprint, .. } => format!("{} (fingerprint {fingerprint})", short_key(key)),
    };
    if ctx.json {
        json_line(&json!({
            "event": "group_message",
            "group": m.group,
            "name": name,
            "id": m.id,
            "from": m.from,
            "handle": match sender { Sender::Contact { handle, .. } => Some(handle), _ => None },
            "ts": m.ts,
            "time": fmt_time(m.ts),
            "text": m.text(),
            "flag": flag.map(ErrorCode::as_str),
            "stream_seq": m.stream_seq,
        }));
        return;
    }
    let text = m.text().unwrap_or_default();
    match flag {
        None => say!("[{}] #{name} {who}: {text}", fmt_time(m.ts)),
        Some(code) => {
            say!("[{}] NOT FROM #{name} ({code}) {who}: {text}", fmt_time(m.ts));
            eprintln!("kez-chat: warning: the message above names #{name} but is not the group's ({code})");
        }
    }
}

/// Enrolls this device (creating its consumer on the server when it is new or was lost).
pub async fn enroll(ctx: &Ctx, broker: &Broker) -> Result<kv_schemas::api::EnrollReply> {
    let device = local_device(ctx)?;
    Ok(broker.enroll(&device.name).await?)
}

/// A companion task of `listen`, started with the unlocked identity (e.g. the file provider).
pub type ListenExtra = Box<dyn FnOnce(Arc<Identity>) -> BoxFuture<'static, Result<()>> + Send>;

pub async fn listen(ctx: &mut Ctx, args: ListenArgs, extra: Vec<ListenExtra>) -> Result<()> {
    if args.count == Some(0) {
        bail!(ClientError::Usage("--count must be at least 1".into()));
    }
    let timeout = match args.timeout {
        Some(t) if !(t.is_finite() && t > 0.0) => {
            bail!(ClientError::Usage("--timeout must be a positive number of seconds".into()))
        }
        Some(t) => Some(Duration::from_secs_f64(t)),
        None => None,
    };
    let (mut account, _) = ctx.account_with_config().await?;
    let id = ctx.unlock(&account)?;
    repair_endpoints(ctx, &mut account, &id).await;
    let extra: Vec<BoxFuture<'static, Result<()>>> = extra.into_iter().map(|f| f(id.clone())).collect();
    let started = Instant::now();
    let broker = connect(ctx, &account, id.clone()).await?;
    enroll(ctx, &broker).await?;
    let mut inbox = broker.inbox().await?;
    if !ctx.json && !args.once {
        eprintln!("listening as {} (Ctrl-C to stop)", account.handle);
    }
    let receive = receive_loop(ctx, &account, &id, &broker, &mut inbox, &args, timeout, started);
    let extras = async move {
        if extra.is_empty() {
            futures::future::pending::<Result<()>>().await
        } else {
            futures::future::select_all(extra).await.0
        }
    };
    let result = tokio::select! {
        r = receive => r,
        r = extras => r,
        _ = tokio::signal::ctrl_c() => Ok(()),
    };
    broker.close().await;
    result
}

/// Pulls, processes and acknowledges until `--once`, `--count` or `--timeout` says stop.
#[allow(clippy::too_many_arguments)]
async fn receive_loop(
    ctx: &Ctx,
    account: &Account,
    id: &Identity,
    broker: &Broker,
    inbox: &mut Inbox,
    args: &ListenArgs,
    timeout: Option<Duration>,
    started: Instant,
) -> Result<()> {
    let mut shown: u64 = 0;
    // Set after enrolling again because the consumer was gone; cleared by the next good pull.
    let mut reenrolled = false;
    loop {
        let remaining = timeout.map(|t| t.saturating_sub(started.elapsed()));
        if remaining == Some(Duration::ZERO) {
            if let Some(n) = args.count {
                bail!(ClientError::Timeout(format!("{shown} of {n} messages arrived")));
            }
            return Ok(());
        }
        let want = args.count.map(|n| (n - shown).min(64) as usize).unwrap_or(64);
        let pulled = async {
            let mut batch = inbox.pull(want, None).await?;
            if batch.is_empty() && !args.once {
                let wait = remaining.unwrap_or(Duration::from_secs(30)).min(Duration::from_secs(30));
                batch.extend(inbox.pull(1, Some(wait)).await?);
            }
            Ok::<_, ClientError>(batch)
        };
        let batch = match pulled.await {
            Ok(b) => {
                reenrolled = false;
                b
            }
            // The consumer was deleted (removed device, or expired after a long absence):
            // enrolling again re-creates it, or says the device was removed.
            Err(ClientError::ConsumerGone) if !reenrolled => {
                enroll(ctx, broker).await?;
                reenrolled = true;
                continue;
            }
            Err(ClientError::ConsumerGone) => {
                bail!(ClientError::Broker("this device's inbox vanished again right after enrolling".into()))
            }
            // The broker went away (restart, network): keep trying, like a chat client
            // should; --once and --timeout still end the run.
            Err(e @ (ClientError::Broker(_) | ClientError::Timeout(_))) if !args.once => {
                eprintln!("kez-chat: warning: {e}; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        // A denied pull request is never answered; the server says so asynchronously.
        let denied = broker.violations();
        if !denied.is_empty() {
            bail!(ClientError::Denied(denied.join("; ")));
        }
        if batch.is_empty() {
            if args.once {
                return Ok(());
            }
            continue;
        }
        let store = Store::open(&ctx.paths.db_dir())?;
        let mut republish = vec![];
        for d in batch {
            let (was_shown, again) = handle_delivery(ctx, account, id, &store, inbox, d).await?;
            if was_shown {
                shown += 1;
            }
            republish.extend(again.filter(|g| !republish.contains(g)));
        }
        drop(store);
        for g in &republish {
            crate::cmd::groups::publish_reapplied(ctx, broker, id, g).await;
        }
        inbox.flush().await?;
        if args.count.is_some_and(|n| shown >= n) {
            return Ok(());
        }
    }
}

pub async fn history(ctx: &mut Ctx, args: HistoryArgs) -> Result<()> {
    let account = Account::require(&ctx.paths)?;
    if groups::is_group_reference(&args.handle) {
        return group_history(ctx, &account, &args.handle, args.limit);
    }
    let store = Store::open(&ctx.paths.db_dir())?;
    let (label, keys): (String, Vec<PublicKey>) = match args.handle.parse::<PublicKey>() {
        Ok(k) => (short_key(&k), vec![k]),
        Err(_) => {
            let handle = ctx.handle(&account, &args.handle)?;
            let c = store.contact(&handle)?.ok_or_else(|| ClientError::NotAContact(handle.display(&account.domain)))?;
            let mut keys = vec![c.key];
            keys.extend(c.previous_keys.iter().copied());
            (handle.display(&account.domain), keys)
        }
    };
    let mut all = Vec::new();
    for k in &keys {
        all.extend(store.history(k, args.limit)?);
    }
    drop(store);
    all.sort_by_key(|m| (m.ts, m.stored_at));
    let skip = all.len().saturating_sub(args.limit);
    let all = &all[skip..];
    if ctx.json {
        let items: Vec<_> = all
            .iter()
            .map(|m| {
                json!({
                    "id": m.id, "from": m.from, "to": m.to, "outgoing": m.outgoing,
                    "ts": m.ts, "time": fmt_time(m.ts), "kind": m.kind, "text": m.text(),
                })
            })
            .collect();
        json_doc(&json!({ "with": label, "messages": items }));
        return Ok(());
    }
    if all.is_empty() {
        say!("no messages with {label} yet");
    }
    for m in all {
        let who = if m.outgoing { "me".to_string() } else { label.clone() };
        let text = m.text().map(str::to_string).unwrap_or_else(|| format!("[{} message]", m.kind));
        say!("[{}] {who}: {text}", fmt_time(m.ts));
    }
    Ok(())
}

/// `search <words>`: the local history's messages containing every word, newest first.
pub fn search(ctx: &Ctx, args: SearchArgs) -> Result<()> {
    let account = Account::require(&ctx.paths)?;
    let query = args.words.join(" ");
    if query.chars().count() > search::MAX_QUERY_CHARS {
        return Err(ClientError::Usage(format!("a search is at most {} characters", search::MAX_QUERY_CHARS)).into());
    }
    let words = search::query_words(&query);
    if words.is_empty() {
        return Err(ClientError::Usage("give at least one word to search for".into()).into());
    }
    let store = Store::open(&ctx.paths.db_dir())?;
    let hits = search::search(&store, &words, args.limit)?;
    let groups = GroupStore::new(&ctx.paths);
    // Where a match was said: the group, else the other side of the conversation.
    // (`full`: the whole handle, for --json).
    let place = |m: &StoredMessage, full: bool| match &m.group {
        Some(g) => {
            groups.load(g).ok().flatten().map(|l| format!("#{}", l.current().name)).unwrap_or_else(|| "#?".into())
        }
        None => match store.contact_by_key(m.peer()).ok().flatten() {
            Some(c) if full => c.handle.to_string(),
            Some(c) => c.handle.display(&account.domain),
            None => short_key(m.peer()),
        },
    };
    let who = |m: &StoredMessage| match store.contact_by_key(&m.from).ok().flatten() {
        _ if m.outgoing || m.from == account.key => "me".to_string(),
        Some(c) => c.handle.display(&account.domain),
        None => short_key(&m.from),
    };
    if ctx.json {
        let items: Vec<_> = hits
            .iter()
            .map(|m| {
                json!({
                    "id": m.id, "from": m.from, "to": m.to, "outgoing": m.outgoing, "group": m.group,
                    "in": place(m, true), "ts": m.ts, "time": fmt_time(m.ts), "text": m.text(),
                })
            })
            .collect();
        json_doc(&json!({ "query": query, "messages": items }));
        return Ok(());
    }
    if hits.is_empty() {
        say!("no stored message contains {query:?}");
    }
    for m in &hits {
        say!("[{}] {} · {}: {}", fmt_time(m.ts), place(m, false), who(m), m.text().unwrap_or_default());
    }
    Ok(())
}

/// `history #name`: the group's messages, flagged ones marked.
fn group_history(ctx: &Ctx, account: &Account, reference: &str, limit: usize) -> Result<()> {
    let log = GroupStore::new(&ctx.paths).resolve(reference)?;
    let name = log.current().name;
    let store = Store::open(&ctx.paths.db_dir())?;
    let all = store.group_history(&log.group(), limit)?;
    let who = |m: &StoredMessage| match store.contact_by_key(&m.from).ok().flatten() {
        _ if m.from == account.key => "me".to_string(),
        Some(c) => c.handle.display(&account.domain),
        None => short_key(&m.from),
    };
    if ctx.json {
        let items: Vec<_> = all
            .iter()
            .map(|m| {
                json!({
                    "id": m.id, "from": m.from, "handle": store.contact_by_key(&m.from).ok().flatten().map(|c| c.handle),
                    "outgoing": m.outgoing, "ts": m.ts, "time": fmt_time(m.ts), "text": m.text(), "flag": m.flag,
                })
            })
            .collect();
        json_doc(&json!({ "group": log.group(), "name": name, "state": log.current().hash(), "messages": items }));
        return Ok(());
    }
    if all.is_empty() {
        say!("no messages in #{name} yet");
    }
    for m in &all {
        let text = m.text().unwrap_or_default();
        match &m.flag {
            None => say!("[{}] {}: {text}", fmt_time(m.ts), who(m)),
            Some(f) => say!("[{}] NOT FROM #{name} ({f}) {}: {text}", fmt_time(m.ts), who(m)),
        }
    }
    Ok(())
}
