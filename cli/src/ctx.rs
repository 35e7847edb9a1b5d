//! What every command needs: the data folder, the server, the output mode, and
//! the passphrase / stdin plumbing. Flags are validated here once and resolved
//! into paths and URLs.

use std::sync::Arc;

use anyhow::{Context as _, Result, bail};
use kez_client::account::Account;
use kez_client::api::Api;
use kez_client::config::{FileConfig, Paths, resolve_server, server_for_domain};
use kez_client::{ClientError, Identity, KeystoreError};
use kv_schemas::Handle;
use kv_schemas::api::ClientConfig;
use zeroize::Zeroizing;

use crate::prompt::Input;

/// New passphrases must be at least this long.
pub const MIN_PASSPHRASE_CHARS: usize = 8;

/// Where the passphrase comes from.
#[derive(Debug, Clone)]
pub enum PassphraseSource {
    /// Ask at the terminal (or read a line from stdin when there is none).
    Prompt,
    /// `--passphrase-env VAR`.
    Env(String),
    /// `--passphrase-stdin`: the first line of stdin (read at start).
    Stdin,
}

pub struct Ctx {
    pub paths: Paths,
    pub server_flag: Option<String>,
    pub json: bool,
    pub input: Input,
    passphrase: PassphraseSource,
    stdin_passphrase: Option<Zeroizing<String>>,
}

impl Ctx {
    pub fn new(paths: Paths, server_flag: Option<String>, json: bool, passphrase: PassphraseSource) -> Result<Self> {
        let mut input = Input::new();
        let stdin_passphrase = match passphrase {
            PassphraseSource::Stdin => Some(
                input
                    .line()?
                    .context("--passphrase-stdin: standard input is empty (the first line is the passphrase)")?,
            ),
            _ => None,
        };
        Ok(Self { paths, server_flag, json, input, passphrase, stdin_passphrase })
    }

    /// The home server for this invocation.
    pub fn server(&self, account: Option<&Account>) -> Result<String> {
        let file = FileConfig::load(&self.paths)?;
        Ok(resolve_server(self.server_flag.as_deref(), &file, account.map(|a| a.server.as_str()))?)
    }

    /// The `/v1` API of the home server.
    pub fn api(&self, account: Option<&Account>) -> Result<Api> {
        Ok(Api::new(&self.server(account)?)?)
    }

    /// The `/v1` API that serves `handle` (home server for the home domain,
    /// `https://<domain>` otherwise).
    pub fn api_for(&self, account: &Account, handle: &Handle) -> Result<Api> {
        let home = self.server(Some(account))?;
        Ok(Api::new(&server_for_domain(handle.domain(), &account.domain, &home))?)
    }

    /// Parses a handle typed by the user (`alice`, `@alice`, `alice@kez.lat`).
    pub fn handle(&self, account: &Account, input: &str) -> Result<Handle> {
        Ok(Handle::parse_input(input, &account.domain).map_err(ClientError::from)?)
    }

    /// The account, with broker URL and window refreshed from the server when it answers.
    pub async fn account_with_config(&self) -> Result<(Account, Option<ClientConfig>)> {
        let mut account = Account::require(&self.paths)?;
        let api = self.api(Some(&account))?;
        match api.config().await {
            Ok(config) => {
                if config.domain != account.domain {
                    bail!(ClientError::BadServerReply(format!(
                        "{} serves the domain {}, but this account is {}",
                        api.base(),
                        config.domain,
                        account.handle
                    )));
                }
                if config.nats_url != account.nats_url || config.inbox_max_age_ms != account.inbox_max_age_ms {
                    account.update_config(&config);
                    // Only persist when the server is the account's own (not a one-off --server).
                    if api.base() == account.server {
                        account.save(&self.paths)?;
                    }
                }
                Ok((account, Some(config)))
            }
            Err(e @ ClientError::ServerUnreachable { .. }) => {
                eprintln!("kez-chat: warning: {e}; using the broker address saved with the account");
                Ok((account, None))
            }
            Err(e) => Err(e.into()),
        }
    }

    fn passphrase_from_source(&mut self, question: &str) -> Result<Zeroizing<String>> {
        match &self.passphrase {
            PassphraseSource::Env(var) => {
                let v = std::env::var(var)
                    .with_context(|| format!("--passphrase-env {var}: the environment variable {var} is not set"))?;
                Ok(Zeroizing::new(v))
            }
            PassphraseSource::Stdin => {
                Ok(self.stdin_passphrase.clone().context("--passphrase-stdin: the passphrase was already used")?)
            }
            PassphraseSource::Prompt => self.input.ask_hidden(question),
        }
    }

    fn interactive_passphrase(&self) -> bool {
        matches!(self.passphrase, PassphraseSource::Prompt)
    }

    /// A new passphrase (asked twice when typed), at least [`MIN_PASSPHRASE_CHARS`] long.
    pub fn new_passphrase(&mut self) -> Result<Zeroizing<String>> {
        loop {
            let p = self.passphrase_from_source("Choose a passphrase to protect the key on this machine: ")?;
            if p.chars().count() < MIN_PASSPHRASE_CHARS {
                let msg = format!("the passphrase must have at least {MIN_PASSPHRASE_CHARS} characters");
                if self.interactive_passphrase() && self.input.is_terminal() {
                    eprintln!("{msg}");
                    continue;
                }
                bail!(ClientError::Usage(msg));
            }
            if self.interactive_passphrase() {
                let again = self.passphrase_from_source("Type it again: ")?;
                if again != p {
                    if self.input.is_terminal() {
                        eprintln!("the two passphrases differ; try again");
                        continue;
                    }
                    bail!(ClientError::Usage("the two passphrases differ".into()));
                }
            }
            return Ok(p);
        }
    }

    /// Unlocks the account's key (three tries when a person types).
    pub fn unlock(&mut self, account: &Account) -> Result<Arc<Identity>> {
        let tries = if self.interactive_passphrase() && self.input.is_terminal() { 3 } else { 1 };
        for attempt in 1..=tries {
            let p = self.passphrase_from_source(&format!("Passphrase for {}: ", account.handle))?;
            match account.unlock(&self.paths, &p) {
                Ok(id) => return Ok(id),
                Err(ClientError::Keystore(KeystoreError::WrongPassphrase)) if attempt < tries => {
                    eprintln!("wrong passphrase, try again");
                }
                Err(e) => return Err(e.into()),
            }
        }
        unreachable!("the loop returns on its last attempt")
    }
}
