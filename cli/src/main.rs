//! `kez-chat`: the native kez-chat client. Thin binary over `kez-client`:
//! argument parsing, dialogue and output live here; every protocol step lives
//! in the core. Each subcommand is one module under `cmd/` — a new group of
//! commands (e.g. files: share/files/fetch/browse/unshare/serve) adds a module
//! and one variant to [`Command`], nothing else.

mod cmd;
mod ctx;
mod output;
mod prompt;

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use kez_client::ClientError;
use kez_client::config::Paths;

use crate::ctx::{Ctx, PassphraseSource};

const AFTER_HELP: &str = "\
Getting started:
  kez-chat register tudisco          create an account (shows 24 recovery words)
  kez-chat add @chris                look up, verify and pin a contact
  kez-chat send @chris \"hello\"       send an end-to-end encrypted message
  kez-chat listen                    show incoming messages as they arrive
  kez-chat group create friends @chris @dana   an end-to-end encrypted group
  kez-chat send '#friends' \"hi all\"  write to it

Non-interactive use (scripts, tests):
  --passphrase-env VAR   read the passphrase from the environment variable VAR
  --passphrase-stdin     the first line of standard input is the passphrase
  register --words-file PATH --skip-recall-check   the 24 words go to a new 0600 file
  Then, in this order, stdin provides: the 24 words (restore --mnemonic-stdin,
  mnemonic verify --mnemonic-stdin), dialogue answers, and the text of `send … -`.

Devices: every data folder is one device of your account, with its own inbox
reader on the server, so each device gets every message and shows what your
other devices sent. `kez-chat devices` lists them. A data folder made by
kez-chat 0.1 becomes a device the first time it connects; the messages the
server still holds (up to 30 days) are then read by that device again, and
by every device restored from your 24 words.

Exit codes: 0 ok, 1 other error, 2 usage, 3 server or broker unreachable,
4 not found, 5 a contact's key changed, 6 verification failed, 7 not registered,
8 wrong passphrase, 9 timed out, 10 handle taken or reserved, 11 refused for
now (recipient's inbox or server store full, sending too fast, 16 devices),
12 this device was removed from the account, 13 a group change or message
you may not make (not an admin, not a member, group full).

Environment: KEZ_HOME (data folder, default $XDG_DATA_HOME/kez-chat or
~/.local/share/kez-chat), KEZ_SERVER (home server URL).";

#[derive(Parser)]
#[command(
    name = "kez-chat",
    version,
    about = "kez-chat: verified identities and end-to-end encrypted chat",
    after_help = AFTER_HELP
)]
struct Cli {
    /// Data folder (key file, account, contacts and messages).
    #[arg(long, global = true, env = "KEZ_HOME", value_name = "DIR")]
    home: Option<PathBuf>,
    /// Home server base URL, e.g. https://kez.lat (default: config.json, then the account's server).
    #[arg(long, global = true, env = "KEZ_SERVER", value_name = "URL")]
    server: Option<String>,
    /// Machine-readable output (one JSON document; `listen` prints one object per line).
    #[arg(long, global = true)]
    json: bool,
    /// Read the passphrase from this environment variable instead of asking.
    #[arg(long, global = true, value_name = "VAR", conflicts_with = "passphrase_stdin")]
    passphrase_env: Option<String>,
    /// Read the passphrase from the first line of standard input instead of asking.
    #[arg(long, global = true)]
    passphrase_stdin: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create an account: generate a key, back up its 24 words, register the handle.
    ///
    /// The handle is checked first (nothing is generated for a taken or reserved
    /// name). You are shown 24 words and asked to retype three of them: they are
    /// the only way to recover the account. Then the handle is registered, the
    /// key is stored encrypted under your passphrase, and your inbox and Iroh
    /// endpoint are published on your sigchain.
    ///
    /// The words need a terminal. Scripts use --words-file PATH --skip-recall-check
    /// (the words are written to a new file only you can read); without a terminal and
    /// without these flags, register stops with an explanation instead of waiting.
    ///
    /// Example: kez-chat register tudisco
    /// Example: kez-chat register ci-bot --words-file ./words.txt --skip-recall-check --passphrase-env PW
    #[command(visible_alias = "init")]
    Register(cmd::account::RegisterArgs),
    /// Bring an existing account to this machine from its 24 words.
    ///
    /// Finds the handle registered for the key, pulls and verifies your
    /// sigchain, and stores the key under a new passphrase. This data folder
    /// becomes a new device of the account: it reads every message the server
    /// still holds for you (up to 30 days), whatever your other devices read.
    ///
    /// Example: kez-chat restore      (or: echo "$WORDS" | kez-chat restore --mnemonic-stdin)
    Restore(cmd::account::RestoreArgs),
    /// Show this account: handle, key, fingerprint, server, sigchain.
    ///
    /// Example: kez-chat whoami --json
    Whoami,
    /// Show or check the 24 recovery words.
    ///
    /// Example: kez-chat mnemonic verify
    #[command(subcommand)]
    Mnemonic(cmd::account::MnemonicCmd),
    /// Look up a handle, verify its sigchain and pin its key (trust on first use).
    ///
    /// `@chris` means chris on your home server; `chris@other.org` is looked up
    /// at https://other.org. Adding a known contact again re-checks it; a
    /// different key is reported loudly and not accepted (see `trust`).
    ///
    /// Example: kez-chat add @chris
    Add(cmd::contacts::AddArgs),
    /// List contacts with their fingerprints and status.
    ///
    /// Example: kez-chat contacts --json
    Contacts,
    /// Show a contact (or any handle): key, fingerprint, safety number, endpoints, sigchain.
    ///
    /// Re-checks against the server unless --offline. Changes nothing: a handle that
    /// is not a contact is shown, not pinned (that is `add`).
    ///
    /// Example: kez-chat show @chris
    Show(cmd::contacts::ShowArgs),
    /// Compare the safety number with a contact and mark the key verified.
    ///
    /// Without --safety-number it prints the number to compare (in person or on
    /// another channel); with it, marks the contact verified if it matches.
    ///
    /// Example: kez-chat verify @chris --safety-number "12345 67890 …"
    Verify(cmd::contacts::VerifyArgs),
    /// Accept a contact's new key after a key change was reported.
    ///
    /// Give the new key's fingerprint (as printed in the warning) or the key
    /// itself; it must match what the server returns now.
    ///
    /// Example: kez-chat trust @chris --new-key "12345 67890 12345 67890 12345 67890"
    Trust(cmd::contacts::TrustArgs),
    /// Send an end-to-end encrypted message (text, or `-` to read it from stdin).
    ///
    /// A handle that is not a contact yet is looked up and pinned first.
    ///
    /// Example: kez-chat send @chris "hello"
    Send(cmd::chat::SendArgs),
    /// Receive messages: print each as it arrives, after it is verified and stored.
    ///
    /// Also shows what you sent from your other devices ("me → chris"). Rejected
    /// envelopes (tampered, wrong recipient, bad signature, replayed) are reported on
    /// stderr and removed from this device's inbox. --count counts messages shown
    /// (received, or sent from another device).
    ///
    /// Example: kez-chat listen            (Ctrl-C to stop)
    /// Example: kez-chat listen --once     (what is waiting now, then exit)
    Listen(cmd::chat::ListenArgs),
    /// Show the stored conversation with a contact.
    ///
    /// Example: kez-chat history @chris --limit 20
    History(cmd::chat::HistoryArgs),
    /// Search the stored history on this device: messages containing all the words, in any
    /// order, ignoring case and accents; newest first. Nothing is sent to the server.
    ///
    /// Example: kez-chat search dinner friday
    /// Example: kez-chat --json search invoice --limit 5
    Search(cmd::chat::SearchArgs),
    /// Groups: create one, add, remove and promote members, rename, leave, list, show.
    ///
    /// A group lives only on its members' devices: the server stores nothing about it and
    /// sees only that you send one envelope to each member. Write to a group with
    /// `send '#name' "text"`, read with `listen` and `history '#name'`. Without a
    /// subcommand: `list`.
    ///
    /// Example: kez-chat group create friends @bob @carol
    /// Example: kez-chat send '#friends' "hello all"
    /// Example: kez-chat group remove '#friends' @carol
    Group(cmd::groups::GroupArgs),
    /// List, rename and remove the devices of your account.
    ///
    /// Each data folder (this one, a restored laptop, a browser) is a device with its own
    /// inbox reader on the server. Without a subcommand: `list`.
    ///
    /// Example: kez-chat devices
    /// Example: kez-chat devices rename this "work laptop"
    /// Example: kez-chat devices remove 3f9a0c1d2b4e5f60
    Devices(cmd::devices::DevicesArgs),
    /// Refuse someone's messages: the server drops what they have waiting and takes no more.
    ///
    /// The sender is not told (sending still looks successful to them). Messages already on
    /// their way to this device are dropped on arrival.
    ///
    /// Example: kez-chat block @spammer       (or a key: kez-chat block ed25519:<hex>)
    Block(cmd::devices::BlockArgs),
    /// Accept someone's messages again after `block`.
    ///
    /// Example: kez-chat unblock @chris
    Unblock(cmd::devices::BlockArgs),
    /// Share a file with someone: encrypted on this device, fetched peer to peer.
    ///
    /// The file is encrypted with a fresh key (only the recipient and you can
    /// open it), added to your shared-files manifest, and offered to the
    /// recipient in a chat message. The bytes stay here until they ask: keep
    /// `kez-chat serve` (or `listen`, which also serves) running.
    ///
    /// Example: kez-chat share @chris report.pdf
    Share(cmd::files::ShareArgs),
    /// List files offered to you (or, with --sent, the files you share).
    ///
    /// Example: kez-chat files
    Files(cmd::files::FilesArgs),
    /// Download an offered file from the sender's device, verify and decrypt it.
    ///
    /// Give an offer id from `kez-chat files`, or a handle and an id from
    /// `kez-chat browse`. If the sender is offline, --wait downloads when they
    /// are back. An interrupted download resumes where it stopped.
    ///
    /// Example: kez-chat fetch 3q2-7w --out ~/Downloads
    /// Example: kez-chat fetch @tudisco 3q2-7w --wait
    Fetch(cmd::files::FetchArgs),
    /// List someone's shared files that you can open (their signed manifest).
    ///
    /// Example: kez-chat browse @tudisco
    Browse(cmd::files::BrowseArgs),
    /// Stop sharing a file: removes it from your manifest and stops serving it.
    ///
    /// Example: kez-chat unshare 3q2-7w
    Unshare(cmd::files::UnshareArgs),
    /// Serve your shared files to their recipients until stopped (Ctrl-C).
    ///
    /// `listen` serves too. Environment: KEZ_IROH_RELAY=off (no relays / DNS
    /// lookup: LAN or tests), KEZ_IROH_BIND=ip:port, KEZ_IROH_PEERS=<node>@<ip:port>.
    ///
    /// Example: kez-chat serve
    Serve(cmd::files::ServeArgs),
}

fn main() {
    // Before any thread exists (the time crate reads the zone only then).
    output::init_local_offset();
    let cli = Cli::parse();
    kez_client::api::install_crypto_provider();
    let runtime = match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("kez-chat: cannot start: {e}");
            std::process::exit(1);
        }
    };
    let json = cli.json;
    let result = runtime.block_on(run(cli));
    // Don't wait for background tasks (e.g. a NATS reconnect loop) on the way out.
    runtime.shutdown_timeout(std::time::Duration::from_millis(200));
    if let Err(e) = result {
        std::process::exit(report(&e, json));
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let passphrase = match (cli.passphrase_env, cli.passphrase_stdin) {
        (Some(var), _) => PassphraseSource::Env(var),
        (None, true) => PassphraseSource::Stdin,
        (None, false) => PassphraseSource::Prompt,
    };
    let paths = Paths::resolve(cli.home)?;
    let mut ctx = Ctx::new(paths, cli.server, cli.json, passphrase)?;
    match cli.command {
        Command::Register(a) => cmd::account::register(&mut ctx, a).await,
        Command::Restore(a) => cmd::account::restore(&mut ctx, a).await,
        Command::Whoami => cmd::account::whoami(&mut ctx).await,
        Command::Mnemonic(m) => cmd::account::mnemonic(&mut ctx, m).await,
        Command::Add(a) => cmd::contacts::add(&mut ctx, a).await,
        Command::Contacts => cmd::contacts::list(&mut ctx).await,
        Command::Show(a) => cmd::contacts::show(&mut ctx, a).await,
        Command::Verify(a) => cmd::contacts::verify(&mut ctx, a).await,
        Command::Trust(a) => cmd::contacts::trust(&mut ctx, a).await,
        Command::Send(a) => cmd::chat::send(&mut ctx, a).await,
        Command::Listen(a) => {
            let serve_files = cmd::files::provider_task(&ctx);
            cmd::chat::listen(&mut ctx, a, vec![Box::new(serve_files)]).await
        }
        Command::Share(a) => cmd::files::share(&mut ctx, a).await,
        Command::Files(a) => cmd::files::list(&mut ctx, a).await,
        Command::Fetch(a) => cmd::files::fetch_cmd(&mut ctx, a).await,
        Command::Browse(a) => cmd::files::browse(&mut ctx, a).await,
        Command::Unshare(a) => cmd::files::unshare(&mut ctx, a).await,
        Command::Serve(a) => cmd::files::serve(&mut ctx, a).await,
        Command::History(a) => cmd::chat::history(&mut ctx, a).await,
        Command::Search(a) => cmd::chat::search(&ctx, a),
        Command::Devices(a) => cmd::devices::devices(&mut ctx, a).await,
        Command::Group(a) => cmd::groups::group(&mut ctx, a).await,
        Command::Block(a) => cmd::devices::block(&mut ctx, a).await,
        Command::Unblock(a) => cmd::devices::unblock(&mut ctx, a).await,
    }
}

/// Prints an error the way a person (or, with --json, a script) can use it; returns the exit code.
fn report(e: &anyhow::Error, json: bool) -> i32 {
    let (code, kind) = match e.downcast_ref::<ClientError>() {
        Some(ce) => (ce.exit_code(), ce.kind()),
        None => (1, "error"),
    };
    eprintln!("kez-chat: error: {e:#}");
    if json {
        output::json_line(
            &serde_json::json!({ "error": { "kind": kind, "message": format!("{e:#}"), "exit_code": code } }),
        );
    }
    code
}
