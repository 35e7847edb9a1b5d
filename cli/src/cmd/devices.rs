//! `devices` (list, rename, remove), `block`, `unblock`: requests to the server's inbox
//! service on behalf of the account (PROTOCOL.md §9.3).
//!
//! Every data folder is one device of the account (`device.json`). The server keeps one
//! inbox reader (consumer) per device, so every device gets every message. Removing a device
//! deletes its reader at once and bars its id for good: the removed install stops receiving
//! (it still holds the key; see PROTOCOL.md §11).

use anyhow::{Result, bail};
use clap::{Args, Subcommand};
use kez_client::ClientError;
use kez_client::account::Account;
use kez_client::store::{BlockedSender, Store};
use kv_schemas::api::{Device, check_device_name};
use kv_schemas::subjects::DeviceId;
use kv_schemas::{Handle, PublicKey, now_ms, safety};
use serde_json::json;

use crate::cmd::chat::{connect, local_device};
use crate::ctx::Ctx;
use crate::output::{fmt_time, json_doc, short_key};
use crate::say;

#[derive(Args)]
pub struct DevicesArgs {
    #[command(subcommand)]
    cmd: Option<DevicesCmd>,
}

#[derive(Subcommand)]
enum DevicesCmd {
    /// List the devices of your account (the default).
    ///
    /// Example: kez-chat devices list --json
    List,
    /// Give a device a new name (1–64 characters).
    ///
    /// Example: kez-chat devices rename this "work laptop"
    Rename {
        /// The device id (from `kez-chat devices`), or `this` for this device.
        device: String,
        /// The new name.
        name: String,
    },
    /// Remove a device: it stops receiving messages at once and can never come back under
    /// its id.
    ///
    /// The device still holds your key: removal stops an honest install, it does not lock
    /// out a stolen one (for that you need a new account). Asks for confirmation unless --yes.
    ///
    /// Example: kez-chat devices remove 3f9a0c1d2b4e5f60
    Remove {
        /// The device id (from `kez-chat devices`), or `this` for this device.
        device: String,
        /// Do not ask for confirmation.
        #[arg(long)]
        yes: bool,
    },
}

#[derive(Args)]
pub struct BlockArgs {
    /// Who: a contact (`@chris`), a handle, or a key (`ed25519:<hex>`, e.g. an unknown sender).
    who: String,
}

/// Resolves `this` or a device id typed by the user.
fn device_arg(ctx: &Ctx, arg: &str) -> Result<DeviceId> {
    if arg == "this" {
        return Ok(local_device(ctx)?.id);
    }
    arg.parse::<DeviceId>().map_err(|_| {
        ClientError::Usage(format!("{arg:?} is not a device id (16 hex characters, see `kez-chat devices`) or `this`"))
            .into()
    })
}

fn device_json(d: &Device, this: &DeviceId) -> serde_json::Value {
    json!({
        "id": d.id,
        "name": d.name,
        "created_at": d.created_at,
        "created": fmt_time(d.created_at),
        "last_active": d.last_active,
        "last_active_time": d.last_active.map(fmt_time),
        "this_device": &d.id == this,
    })
}

pub async fn devices(ctx: &mut Ctx, args: DevicesArgs) -> Result<()> {
    match args.cmd.unwrap_or(DevicesCmd::List) {
        DevicesCmd::List => list(ctx).await,
        DevicesCmd::Rename { device, name } => rename(ctx, &device, &name).await,
        DevicesCmd::Remove { device, yes } => remove(ctx, &device, yes).await,
    }
}

async fn list(ctx: &mut Ctx) -> Result<()> {
    let (account, _) = ctx.account_with_config().await?;
    let this = local_device(ctx)?;
    let id = ctx.unlock(&account)?;
    let broker = connect(ctx, &account, id).await?;
    let listed = broker.devices().await;
    broker.close().await;
    let devices = listed?;
    let enrolled = devices.iter().any(|d| d.id == this.id);
    if ctx.json {
        json_doc(&json!({
            "this_device": this.id,
            "this_device_enrolled": enrolled,
            "devices": devices.iter().map(|d| device_json(d, &this.id)).collect::<Vec<_>>(),
        }));
        return Ok(());
    }
    say!("{:<18} {:<28} {:<20} {:<20}", "ID", "NAME", "CREATED", "LAST ACTIVE");
    for d in &devices {
        let last = d.last_active.map(fmt_time).unwrap_or_else(|| "never".into());
        let marker = if d.id == this.id { "  ← this device" } else { "" };
        let name: String = d.name.chars().take(28).collect();
        say!("{:<18} {:<28} {:<20} {:<20}{marker}", d.id, name, fmt_time(d.created_at), last);
    }
    if !enrolled {
        say!("(this device, {}, is not enrolled yet: `kez-chat listen` enrolls it)", this.id);
    }
    Ok(())
}

async fn rename(ctx: &mut Ctx, device: &str, name: &str) -> Result<()> {
    let device = device_arg(ctx, device)?;
    check_device_name(name).map_err(|e| ClientError::Usage(e.message))?;
    let (account, _) = ctx.account_with_config().await?;
    let id = ctx.unlock(&account)?;
    let broker = connect(ctx, &account, id).await?;
    let renamed = broker.rename_device(&device, name).await;
    broker.close().await;
    let d = renamed?;
    let mut this = local_device(ctx)?;
    if this.id == device {
        this.name = d.name.clone();
        this.save(&ctx.paths)?;
    }
    if ctx.json {
        json_doc(&json!({ "status": "renamed", "device": device_json(&d, &this.id) }));
    } else {
        say!("renamed {} to {:?}", d.id, d.name);
    }
    Ok(())
}

async fn remove(ctx: &mut Ctx, device: &str, yes: bool) -> Result<()> {
    let device = device_arg(ctx, device)?;
    let (account, _) = ctx.account_with_config().await?;
    let this = local_device(ctx)?;
    let is_this = device == this.id;
    if !yes {
        if !ctx.input.is_terminal() {
            bail!(ClientError::Usage(
                "removing a device needs confirmation: run it in a terminal, or add --yes".into()
            ));
        }
        if is_this {
            eprintln!("This is THIS device: once removed, this data folder stops receiving messages for good.");
        } else {
            eprintln!("The device {device} will stop receiving messages at once, and its id can never come back.");
        }
        let answer = ctx.input.ask(&format!("Remove the device {device}? Type \"yes\" to remove it: "))?;
        if answer.trim() != "yes" {
            bail!(ClientError::Usage("nothing was removed".into()));
        }
    }
    let id = ctx.unlock(&account)?;
    let broker = connect(ctx, &account, id.clone()).await?;
    let removed = broker.remove_device(&device).await;
    broker.close().await;
    removed?;
    // Its Iroh endpoints leave the sigchain too, so providers stop admitting it (PROTOCOL.md §7.5).
    let api = ctx.api(Some(&account))?;
    let own = kez_client::files::PinnedChains::new(&api, account.key, account.own_tail.clone());
    if let Err(e) = kez_client::files::remove_device_endpoints(&own, id.signing_key(), &device).await {
        eprintln!("kez-chat: warning: the device's file endpoints are still on your sigchain: {e}");
    }
    if ctx.json {
        json_doc(&json!({ "status": "removed", "device": device, "this_device": is_this }));
    } else {
        say!("removed the device {device}; it no longer receives messages");
        if is_this {
            eprintln!("kez-chat: warning: that was this device: it will not receive messages any more.");
        }
    }
    Ok(())
}

/// Who `block`/`unblock` mean: a key, a contact's pinned key, or a handle looked up now.
async fn block_target(ctx: &Ctx, account: &Account, who: &str) -> Result<(PublicKey, Option<Handle>)> {
    if let Ok(k) = who.parse::<PublicKey>() {
        let handle = Store::open(&ctx.paths.db_dir())?.contact_by_key(&k)?.map(|c| c.handle);
        return Ok((k, handle));
    }
    let handle = ctx.handle(account, who)?;
    if let Some(c) = Store::open(&ctx.paths.db_dir())?.contact(&handle)? {
        return Ok((c.key, Some(handle)));
    }
    // Not a contact: look it up without pinning it (blocking changes no contact).
    let api = ctx.api_for(account, &handle)?;
    let resolved = kez_client::contacts::resolve(&api, &handle).await?;
    Ok((resolved.key, Some(handle)))
}

fn label(account: &Account, key: &PublicKey, handle: &Option<Handle>) -> String {
    handle.as_ref().map(|h| h.display(&account.domain)).unwrap_or_else(|| short_key(key))
}

pub async fn block(ctx: &mut Ctx, args: BlockArgs) -> Result<()> {
    let (account, _) = ctx.account_with_config().await?;
    let (key, handle) = block_target(ctx, &account, &args.who).await?;
    if key == account.key {
        bail!(ClientError::Usage("you cannot block yourself".into()));
    }
    let id = ctx.unlock(&account)?;
    let broker = connect(ctx, &account, id).await?;
    let purged = broker.block(&key).await;
    broker.close().await;
    let purged = purged?;
    // Locally too: what was already on its way is dropped (and acknowledged) on arrival.
    Store::open(&ctx.paths.db_dir())?.block(&BlockedSender { key, handle: handle.clone(), blocked_at: now_ms() })?;
    let who = label(&account, &key, &handle);
    if ctx.json {
        json_doc(&json!({
            "status": "blocked", "key": key, "handle": handle,
            "fingerprint": safety::fingerprint(&key), "purged": purged,
        }));
    } else {
        say!("blocked {who}: the server refuses their messages; {purged} waiting message(s) removed");
    }
    Ok(())
}

pub async fn unblock(ctx: &mut Ctx, args: BlockArgs) -> Result<()> {
    let (account, _) = ctx.account_with_config().await?;
    let (key, handle) = block_target(ctx, &account, &args.who).await?;
    let id = ctx.unlock(&account)?;
    let broker = connect(ctx, &account, id).await?;
    let done = broker.unblock(&key).await;
    broker.close().await;
    done?;
    let was = Store::open(&ctx.paths.db_dir())?.unblock(&key)?;
    let who = label(&account, &key, &handle);
    if ctx.json {
        json_doc(&json!({ "status": "unblocked", "key": key, "handle": handle, "was_blocked_here": was }));
    } else {
        say!("unblocked {who}: their new messages arrive again");
    }
    Ok(())
}
