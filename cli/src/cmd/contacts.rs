//! `add`, `contacts`, `show`, `verify`, `trust`.

use anyhow::{Result, bail};
use clap::Args;
use kez_client::ClientError;
use kez_client::account::Account;
use kez_client::contacts::{self, Assessed, Change, Contact};
use kez_client::store::Store;
use kv_schemas::{Handle, safety};
use serde_json::{Value, json};

use crate::ctx::Ctx;
use crate::output::{fmt_time, json_doc};
use crate::say;

#[derive(Args)]
pub struct AddArgs {
    /// The handle: `chris`, `@chris` or `chris@other.org`.
    handle: String,
}

#[derive(Args)]
pub struct ShowArgs {
    /// The contact.
    handle: String,
    /// Do not re-check against the server; show what is stored.
    #[arg(long)]
    offline: bool,
}

#[derive(Args)]
pub struct VerifyArgs {
    /// The contact.
    handle: String,
    /// The 60-digit safety number the contact read to you; marks the key verified if it matches.
    #[arg(long, value_name = "DIGITS")]
    safety_number: Option<String>,
}

#[derive(Args)]
pub struct TrustArgs {
    /// The contact whose key changed.
    handle: String,
    /// The new key's fingerprint (30 digits) or the key (`ed25519:<hex>`).
    #[arg(long, value_name = "FINGERPRINT_OR_KEY")]
    new_key: String,
}

fn status(c: &Contact) -> &'static str {
    if c.is_blocked() {
        "key_changed"
    } else if c.verified {
        "verified"
    } else {
        "trusted"
    }
}

/// A contact as JSON, with fingerprint, safety number and status.
pub fn contact_json(account: &Account, c: &Contact) -> Value {
    let mut v = serde_json::to_value(c).unwrap_or_default();
    v["fingerprint"] = json!(safety::fingerprint(&c.key));
    v["safety_number"] = json!(safety::safety_number(&account.key, &c.key));
    v["status"] = json!(status(c));
    if let Some(p) = &c.pending_key {
        v["pending_fingerprint"] = json!(safety::fingerprint(p));
    }
    v
}

fn print_contact(account: &Account, c: &Contact) {
    say!("{} ({})", c.handle.display(&account.domain), status(c));
    say!("  key:           {}", c.key);
    say!("  fingerprint:   {}", safety::fingerprint(&c.key));
    say!("  safety number: {}", safety::safety_number(&account.key, &c.key));
    say!("  sigchain:      {} links, verified; last checked {}", c.tail.seqno, fmt_time(c.checked_at));
    if let Some(inbox) = &c.inbox {
        say!("  inbox:         {inbox}{}", c.broker.as_ref().map(|b| format!(" via {b}")).unwrap_or_default());
    }
    if let Some(node) = &c.iroh_node {
        say!("  iroh node:     {node}");
    }
    if let Some(p) = &c.pending_key {
        say!("  NEW KEY (not trusted): {p}");
        say!("  new fingerprint:       {}", safety::fingerprint(p));
    }
}

fn warn_key_change(c: &Contact) {
    if let Some(e) = c.key_changed_error() {
        eprintln!("kez-chat: WARNING: {e}");
    }
}

/// Looks the contact up on its server and reconciles it with the store.
/// A key change is recorded (pending) and returned as the error.
pub async fn refresh(ctx: &Ctx, account: &Account, handle: &Handle) -> Result<(Contact, Change), ClientError> {
    let api = ctx.api_for(account, handle).map_err(|e| ClientError::Usage(e.to_string()))?;
    let resolved = contacts::resolve(&api, handle).await?;
    let store = Store::open(&ctx.paths.db_dir())?;
    contacts::reconcile(&store, &resolved)
}

fn not_self(account: &Account, handle: &Handle) -> Result<()> {
    if handle == &account.handle {
        bail!(ClientError::Usage("that is your own handle".into()));
    }
    Ok(())
}

pub async fn add(ctx: &mut Ctx, args: AddArgs) -> Result<()> {
    let account = Account::require(&ctx.paths)?;
    let handle = ctx.handle(&account, &args.handle)?;
    not_self(&account, &handle)?;
    let (c, change) = refresh(ctx, &account, &handle).await?;
    if ctx.json {
        let mut v = contact_json(&account, &c);
        v["change"] = json!(change);
        json_doc(&v);
    } else {
        match change {
            Change::Added => say!("added {} — key pinned on first use", c.handle.display(&account.domain)),
            Change::Unchanged => {
                say!("{} is already a contact; key unchanged, sigchain re-checked", c.handle.display(&account.domain))
            }
        }
        print_contact(&account, &c);
        if change == Change::Added {
            eprintln!(
                "Compare the safety number with them (in person or on another channel), then run `kez-chat verify {} --safety-number \"…\"`.",
                c.handle.display(&account.domain)
            );
        }
    }
    Ok(())
}

pub async fn list(ctx: &mut Ctx) -> Result<()> {
    let account = Account::require(&ctx.paths)?;
    let store = Store::open(&ctx.paths.db_dir())?;
    let all = store.contacts()?;
    drop(store);
    if ctx.json {
        json_doc(&Value::Array(all.iter().map(|c| contact_json(&account, c)).collect()));
        return Ok(());
    }
    if all.is_empty() {
        say!("no contacts yet (add one with `kez-chat add @handle`)");
    }
    for c in &all {
        let flag = match status(c) {
            "key_changed" => "  !! KEY CHANGED — sending blocked",
            "verified" => "  (verified)",
            _ => "",
        };
        say!("{:<24} {}{flag}", c.handle.display(&account.domain), safety::fingerprint(&c.key));
    }
    Ok(())
}

/// Shared by `show` and `verify`: refresh (unless offline), reporting a key
/// change as a warning, and return the stored contact.
async fn fetch_for_display(ctx: &Ctx, account: &Account, handle: &Handle, offline: bool) -> Result<Contact> {
    if !offline {
        match refresh(ctx, account, handle).await {
            Ok(_) | Err(ClientError::KeyChanged { .. }) => {}
            Err(e @ ClientError::ServerUnreachable { .. }) => {
                eprintln!("kez-chat: warning: {e}; showing what is stored");
            }
            Err(ClientError::HandleNotFound { .. }) if store_has(ctx, handle)? => {
                eprintln!("kez-chat: WARNING: the server no longer knows {handle}; showing what is stored");
            }
            Err(e) => return Err(e.into()),
        }
    }
    let store = Store::open(&ctx.paths.db_dir())?;
    let c = store.contact(handle)?.ok_or_else(|| ClientError::NotAContact(handle.display(&account.domain)))?;
    warn_key_change(&c);
    Ok(c)
}

fn store_has(ctx: &Ctx, handle: &Handle) -> Result<bool> {
    Ok(Store::open(&ctx.paths.db_dir())?.contact(handle)?.is_some())
}

/// `show`: what is known about a handle, re-checked against the server unless `--offline`.
/// Changes nothing: a handle that is not a contact is shown but not pinned, and a key
/// change is reported but not recorded (`add` and `send` record it).
pub async fn show(ctx: &mut Ctx, args: ShowArgs) -> Result<()> {
    let account = Account::require(&ctx.paths)?;
    let handle = ctx.handle(&account, &args.handle)?;
    let stored = Store::open(&ctx.paths.db_dir())?.contact(&handle)?;
    let not_contact = || ClientError::NotAContact(handle.display(&account.domain));
    let (c, is_contact) = if args.offline {
        (stored.ok_or_else(not_contact)?, true)
    } else {
        let api = ctx.api_for(&account, &handle)?;
        match contacts::resolve(&api, &handle).await {
            Ok(resolved) => match contacts::assess(stored, &resolved)? {
                Assessed::New(c) => (c, false),
                Assessed::Same(c) | Assessed::KeyChanged(c) => (c, true),
            },
            Err(e @ ClientError::ServerUnreachable { .. }) => {
                let c = stored.ok_or(e)?;
                eprintln!("kez-chat: warning: the server did not answer; showing what is stored");
                (c, true)
            }
            Err(ClientError::HandleNotFound { .. }) if stored.is_some() => {
                eprintln!("kez-chat: WARNING: the server no longer knows {handle}; showing what is stored");
                (stored.ok_or_else(not_contact)?, true)
            }
            Err(e) => return Err(e.into()),
        }
    };
    warn_key_change(&c);
    if ctx.json {
        let mut v = contact_json(&account, &c);
        v["contact"] = json!(is_contact);
        json_doc(&v);
    } else {
        print_contact(&account, &c);
        if !is_contact {
            say!(
                "  (not a contact: nothing was pinned; `kez-chat add {}` pins this key)",
                c.handle.display(&account.domain)
            );
        }
    }
    Ok(())
}

pub async fn verify(ctx: &mut Ctx, args: VerifyArgs) -> Result<()> {
    let account = Account::require(&ctx.paths)?;
    let handle = ctx.handle(&account, &args.handle)?;
    let c = fetch_for_display(ctx, &account, &handle, false).await?;
    let c = match &args.safety_number {
        Some(number) => {
            let store = Store::open(&ctx.paths.db_dir())?;
            contacts::mark_verified(&store, &handle, &account.key, number)?
        }
        None => c,
    };
    if ctx.json {
        json_doc(&contact_json(&account, &c));
    } else {
        say!("Safety number of you and {}:", c.handle.display(&account.domain));
        say!("  {}", safety::safety_number(&account.key, &c.key));
        if c.verified {
            say!("{} is verified.", c.handle.display(&account.domain));
        } else {
            say!(
                "Compare it with theirs, then run: kez-chat verify {} --safety-number \"<the 60 digits>\"",
                c.handle.display(&account.domain)
            );
        }
    }
    Ok(())
}

pub async fn trust(ctx: &mut Ctx, args: TrustArgs) -> Result<()> {
    let account = Account::require(&ctx.paths)?;
    let handle = ctx.handle(&account, &args.handle)?;
    let api = ctx.api_for(&account, &handle)?;
    let resolved = contacts::resolve(&api, &handle).await?;
    let store = Store::open(&ctx.paths.db_dir())?;
    let c = contacts::trust_new_key(&store, &resolved, &args.new_key)?;
    drop(store);
    if ctx.json {
        json_doc(&contact_json(&account, &c));
    } else {
        say!("now trusting the new key of {}", c.handle.display(&account.domain));
        print_contact(&account, &c);
    }
    Ok(())
}
