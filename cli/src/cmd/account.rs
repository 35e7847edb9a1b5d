//! `register` / `init`, `restore`, `whoami`, `mnemonic show|verify`.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context as _, Result, bail};
use clap::{Args, Subcommand};
use kez_client::account::{self, Account};
use kez_client::device::LocalDevice;
use kez_client::identity::normalize_mnemonic;
use kez_client::{ClientError, Identity};
use kv_schemas::safety;
use serde_json::json;
use zeroize::Zeroizing;

use crate::cmd::chat;
use crate::ctx::Ctx;
use crate::output::{json_doc, short_key};
use crate::say;

#[derive(Args)]
pub struct RegisterArgs {
    /// The handle to register (`tudisco` or `tudisco@<your server's domain>`); asked if omitted.
    handle: Option<String>,
    /// Skip the "have you written them down?" question. The three-word check still runs.
    #[arg(long)]
    yes_i_wrote_it_down: bool,
    /// Write the 24 words to this new file (created with mode 0600, never overwritten)
    /// instead of showing them. For scripts: copy them somewhere safe, then delete the file.
    #[arg(long, value_name = "PATH")]
    words_file: Option<PathBuf>,
    /// Do not ask for three of the words back. Only for scripts that keep the words
    /// themselves (e.g. with --words-file); a person should take the check.
    #[arg(long)]
    skip_recall_check: bool,
    /// The name of this device in `kez-chat devices` (default: the host name).
    #[arg(long, value_name = "NAME")]
    device_name: Option<String>,
}

#[derive(Args)]
pub struct RestoreArgs {
    /// Read the 24 words from standard input (after the passphrase line if --passphrase-stdin).
    #[arg(long)]
    mnemonic_stdin: bool,
    /// The name of this device in `kez-chat devices` (default: the host name).
    #[arg(long, value_name = "NAME")]
    device_name: Option<String>,
}

#[derive(Subcommand)]
pub enum MnemonicCmd {
    /// Print the 24 recovery words (unlocks the key; anyone who sees them can be you).
    ///
    /// Example: kez-chat mnemonic show
    Show,
    /// Check that words you kept belong to this account (no passphrase needed).
    ///
    /// Example: kez-chat mnemonic verify
    Verify {
        /// Read the words from standard input.
        #[arg(long)]
        mnemonic_stdin: bool,
    },
}

/// Picks `n` distinct positions in 1..=24, sorted, from the OS CSPRNG.
fn random_positions(n: usize) -> Vec<usize> {
    let mut picked = Vec::with_capacity(n);
    while picked.len() < n {
        let r = u64::from_le_bytes(kv_schemas::random_bytes::<8>());
        let pos = (r % 24) as usize + 1;
        if !picked.contains(&pos) {
            picked.push(pos);
        }
    }
    picked.sort_unstable();
    picked
}

/// How the 24 words are handed over at registration.
struct Backup<'a> {
    /// Do not ask "have you written them down?".
    skip_question: bool,
    /// Write them to this new file instead of showing them.
    words_file: Option<&'a Path>,
    /// Do not ask for three words back.
    skip_recall_check: bool,
}

impl Backup<'_> {
    /// Whether the dialogue asks anything (and so needs a person at a terminal).
    fn asks(&self) -> bool {
        !self.skip_recall_check || (!self.skip_question && self.words_file.is_none())
    }
}

/// Creates `path` with mode 0600 (refusing to overwrite anything) and writes the words.
fn write_words_file(path: &Path, mnemonic: &str) -> Result<()> {
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut o, 0o600);
    let mut f = o.open(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::AlreadyExists => ClientError::Usage(format!(
            "--words-file {}: the file exists; name a new file (it is never overwritten)",
            path.display()
        )),
        _ => ClientError::Io { path: path.display().to_string(), source: e },
    })?;
    f.write_all(format!("{mnemonic}\n").as_bytes())
        .and_then(|()| f.sync_all())
        .map_err(|e| ClientError::Io { path: path.display().to_string(), source: e })?;
    Ok(())
}

/// Shows the words (or writes them to the words file) and, unless skipped, makes the user
/// prove they wrote them down.
fn backup_dialogue(ctx: &mut Ctx, id: &Identity, handle: &str, how: &Backup<'_>) -> Result<()> {
    let mnemonic = id.mnemonic();
    let words: Vec<&str> = mnemonic.split(' ').collect();
    eprintln!();
    if let Some(path) = how.words_file {
        write_words_file(path, &mnemonic)?;
        eprintln!("The 24 recovery words for {handle} are in {} (readable only by you).", path.display());
        eprintln!("They are the ONLY way to recover this account, and anyone who has them can be you:");
        eprintln!("copy them somewhere safe (paper), then delete the file.");
    } else {
        eprintln!("Your 24 recovery words for {handle}. Write them down on paper, in order, and keep them safe.");
        eprintln!("They are the ONLY way to recover this account, and anyone who has them can be you.");
        eprintln!();
        for row in words.chunks(4).enumerate() {
            let (r, chunk) = row;
            let line: Vec<String> =
                chunk.iter().enumerate().map(|(i, w)| format!("{:>2}. {:<10}", r * 4 + i + 1, w)).collect();
            eprintln!("  {}", line.join(" ").trim_end());
        }
    }
    eprintln!();
    if !how.skip_question && how.words_file.is_none() {
        let answer = ctx.input.ask("Have you written down all 24 words? Type \"yes\" to continue: ")?;
        if answer.trim() != "yes" {
            bail!(ClientError::Usage(
                "registration cancelled: the words were not confirmed; nothing was registered".into()
            ));
        }
    }
    if how.skip_recall_check {
        return Ok(());
    }
    if ctx.input.is_terminal() {
        // Clear the screen so the check is answered from paper, not from the screen.
        eprint!("\x1b[2J\x1b[H");
    }
    eprintln!("To check your copy, type three of the words.");
    for pos in random_positions(3) {
        let answer = ctx.input.ask(&format!("Word #{pos}: "))?;
        let typed = normalize_mnemonic(&answer);
        if typed.len() != 1 || typed[0] != words[pos - 1] {
            bail!(ClientError::BackupCheckFailed);
        }
    }
    eprintln!("Thank you, your copy of the words is correct.");
    Ok(())
}

/// Checks a `--device-name` before anything else happens.
fn check_device_name(name: Option<&str>) -> Result<()> {
    if let Some(n) = name {
        kv_schemas::api::check_device_name(n)
            .map_err(|e| ClientError::Usage(format!("--device-name: {}", e.message)))?;
    }
    Ok(())
}

/// Makes this data folder a device of the new account and enrolls it, so the server keeps
/// its inbox reader from now on. Failing here is not fatal: `listen` enrolls too.
async fn enroll_new_device(ctx: &Ctx, account: &Account, id: Arc<Identity>, name: Option<String>) {
    let device = match LocalDevice::load(&ctx.paths) {
        Ok(Some(d)) => d,
        _ => {
            let name = name.unwrap_or_else(kez_client::device::default_name);
            match LocalDevice::load_or_create(&ctx.paths, &name) {
                Ok(d) => d,
                Err(e) => {
                    eprintln!("kez-chat: warning: {e}");
                    return;
                }
            }
        }
    };
    let enrolled = async {
        let broker = chat::connect(ctx, account, id).await?;
        let r = chat::enroll(ctx, &broker).await;
        broker.close().await;
        r
    };
    match enrolled.await {
        Ok(_) => eprintln!("This data folder is the device {} ({:?}) of {}.", device.id, device.name, account.handle),
        Err(e) => eprintln!("kez-chat: warning: this device is not enrolled yet ({e:#}); `kez-chat listen` enrolls it"),
    }
}

pub async fn register(ctx: &mut Ctx, args: RegisterArgs) -> Result<()> {
    account::ensure_no_account(&ctx.paths)?;
    check_device_name(args.device_name.as_deref())?;
    let api = ctx.api(None)?;
    let config = api.config().await?;
    let input = match args.handle {
        Some(h) => h,
        None => ctx.input.ask("Handle to register (e.g. tudisco): ")?.to_string(),
    };
    let handle = account::check_handle_available(&api, &config, &input).await?;
    let how = Backup {
        skip_question: args.yes_i_wrote_it_down,
        words_file: args.words_file.as_deref(),
        skip_recall_check: args.skip_recall_check,
    };
    // A dialogue over a pipe would wait for answers a script cannot give: say what to do.
    if how.asks() && !ctx.input.is_terminal() {
        bail!(ClientError::Usage(
            "registering asks you to confirm the 24 recovery words, which needs a terminal. \
             For scripts: --words-file PATH --skip-recall-check (the words go to PATH, readable only by you); \
             nothing was registered"
                .into()
        ));
    }
    if let Some(path) = &args.words_file
        && path.exists()
    {
        bail!(ClientError::Usage(format!(
            "--words-file {}: the file exists; name a new file (it is never overwritten)",
            path.display()
        )));
    }
    eprintln!("{handle} is available on {}.", api.base());
    let id = Identity::generate();
    backup_dialogue(ctx, &id, &handle.to_string(), &how)?;
    let passphrase = ctx.new_passphrase()?;
    eprintln!("Registering {handle}…");
    let (account, warning) = account::register(&ctx.paths, &api, &config, &id, &handle, &passphrase).await?;
    if let Some(w) = &warning {
        eprintln!("kez-chat: warning: registered, but publishing your endpoints failed: {w}");
        eprintln!("kez-chat: it will be retried by the next `kez-chat listen` or `send`.");
    }
    enroll_new_device(ctx, &account, Arc::new(id), args.device_name).await;
    print_account(ctx, &account, "registered");
    Ok(())
}

fn print_account(ctx: &Ctx, account: &Account, status: &str) {
    let fingerprint = safety::fingerprint(&account.key);
    if ctx.json {
        json_doc(&json!({
            "status": status,
            "handle": account.handle,
            "key": account.key,
            "fingerprint": fingerprint,
            "server": account.server,
            "domain": account.domain,
            "nats_url": account.nats_url,
            "endpoints_published": account.endpoints_published,
            "home": ctx.paths.home(),
        }));
    } else {
        say!("{status} {}", account.handle);
        say!("  key:         {}", account.key);
        say!("  fingerprint: {fingerprint}");
        say!("  server:      {}", account.server);
    }
}

/// Reads the words: from stdin lines (until 24 words) or a hidden prompt.
fn read_words(ctx: &mut Ctx, from_stdin: bool) -> Result<Zeroizing<String>> {
    if from_stdin {
        let mut all = Zeroizing::new(String::new());
        while normalize_mnemonic(&all).len() < 24 {
            match ctx.input.line()? {
                Some(l) => {
                    all.push(' ');
                    all.push_str(&l);
                }
                None => break,
            }
        }
        return Ok(all);
    }
    ctx.input.ask_hidden("Type your 24 recovery words (separated by spaces): ")
}

pub async fn restore(ctx: &mut Ctx, args: RestoreArgs) -> Result<()> {
    account::ensure_no_account(&ctx.paths)?;
    check_device_name(args.device_name.as_deref())?;
    let words = read_words(ctx, args.mnemonic_stdin)?;
    let id = Identity::from_mnemonic(&words).map_err(ClientError::from)?;
    drop(words);
    let api = ctx.api(None)?;
    let config = api.config().await?;
    let rec = api
        .lookup_key(&id.public_key())
        .await?
        .ok_or_else(|| ClientError::NotRegistered { server: api.base().to_string() })?;
    eprintln!("These words belong to {} on {}.", rec.handle, api.base());
    let passphrase = ctx.new_passphrase()?;
    let restored = account::restore(&ctx.paths, &api, &config, &id, &passphrase).await?;
    if let Some(w) = &restored.warning {
        eprintln!("kez-chat: warning: restored, but publishing your endpoints failed: {w}");
    }
    eprintln!("Sigchain verified ({} links).", restored.chain_links);
    enroll_new_device(ctx, &restored.account, Arc::new(id), args.device_name).await;
    print_account(ctx, &restored.account, "restored");
    Ok(())
}

pub async fn whoami(ctx: &mut Ctx) -> Result<()> {
    let account = Account::require(&ctx.paths)?;
    let api = ctx.api(Some(&account))?;
    let chain = match account::own_chain(&api, &account.key, account.own_tail.as_ref()).await {
        Ok(state) => Ok(state),
        Err(e @ ClientError::ServerUnreachable { .. }) => Err(e.to_string()),
        Err(e) => return Err(e.into()),
    };
    let fingerprint = safety::fingerprint(&account.key);
    if ctx.json {
        let chain_json = match &chain {
            Ok(state) => serde_json::to_value(state).unwrap_or_default(),
            Err(e) => json!({ "error": e }),
        };
        json_doc(&json!({
            "handle": account.handle,
            "key": account.key,
            "fingerprint": fingerprint,
            "server": account.server,
            "domain": account.domain,
            "nats_url": account.nats_url,
            "home": ctx.paths.home(),
            "sigchain": chain_json,
        }));
    } else {
        say!("{}", account.handle);
        say!("  key:         {}", account.key);
        say!("  fingerprint: {fingerprint}");
        say!("  server:      {}", account.server);
        say!("  data:        {}", ctx.paths.home().display());
        match chain {
            Ok(state) => {
                say!("  sigchain:    {} links, verified", state.seqno);
                for e in &state.endpoints {
                    match &e.endpoint {
                        kv_schemas::sigchain::Endpoint::Nats { subject, url } => say!("    nats  {subject} via {url}"),
                        kv_schemas::sigchain::Endpoint::Iroh { node_id, device } => {
                            let key = short_key(&kv_schemas::PublicKey::from_hex(node_id)?);
                            match device {
                                Some(d) => say!("    iroh  {key} ({} of device {})", d.role, d.device),
                                None => say!("    iroh  {key}"),
                            }
                        }
                    }
                }
            }
            Err(e) => say!("  sigchain:    not checked ({e})"),
        }
    }
    Ok(())
}

pub async fn mnemonic(ctx: &mut Ctx, cmd: MnemonicCmd) -> Result<()> {
    let account = Account::require(&ctx.paths)?;
    match cmd {
        MnemonicCmd::Show => {
            let id = ctx.unlock(&account)?;
            let words = id.mnemonic();
            if ctx.json {
                json_doc(&json!({ "handle": account.handle, "words": words.split(' ').collect::<Vec<_>>() }));
            } else {
                eprintln!("The recovery words of {}. Anyone who sees them can be you.", account.handle);
                for (i, w) in words.split(' ').enumerate() {
                    say!("{:>2}. {w}", i + 1);
                }
            }
        }
        MnemonicCmd::Verify { mnemonic_stdin } => {
            let words = read_words(ctx, mnemonic_stdin)?;
            let id = Identity::from_mnemonic(&words).map_err(ClientError::from).context("checking the words")?;
            if id.public_key() != account.key {
                bail!(ClientError::MnemonicMismatch);
            }
            if ctx.json {
                json_doc(&json!({ "handle": account.handle, "matches": true }));
            } else {
                say!("These words restore {} (fingerprint {}).", account.handle, safety::fingerprint(&account.key));
            }
        }
    }
    Ok(())
}
