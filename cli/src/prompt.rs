//! Talking to the person at the terminal: prompts go to stderr, answers come
//! from stdin (hidden for passphrases when stdin is a terminal). Without a
//! terminal the same dialogue works line by line, which is how scripts and the
//! end-to-end tests drive it; every prompt then ends with a newline.
//!
//! Standard input is read through one [`Input`] so that several consumers
//! (`--passphrase-stdin`, `--mnemonic-stdin`, dialogue answers, `send … -`)
//! take their lines in a fixed, documented order.

use std::io::{BufRead as _, IsTerminal as _, Write as _};

use zeroize::Zeroizing;

/// Shared reader of standard input.
pub struct Input {
    stdin: std::io::StdinLock<'static>,
    eof: bool,
}

impl Input {
    pub fn new() -> Self {
        Self { stdin: std::io::stdin().lock(), eof: false }
    }

    /// Whether stdin is a terminal (a person typing).
    pub fn is_terminal(&self) -> bool {
        std::io::stdin().is_terminal()
    }

    /// One line without its line ending; `None` at end of input.
    pub fn line(&mut self) -> anyhow::Result<Option<Zeroizing<String>>> {
        if self.eof {
            return Ok(None);
        }
        let mut s = Zeroizing::new(String::new());
        let n = self.stdin.read_line(&mut s)?;
        if n == 0 {
            self.eof = true;
            return Ok(None);
        }
        while s.ends_with('\n') || s.ends_with('\r') {
            s.pop();
        }
        Ok(Some(s))
    }

    /// Everything left (for `send <handle> -`).
    pub fn rest(&mut self) -> anyhow::Result<String> {
        let mut s = String::new();
        if !self.eof {
            std::io::Read::read_to_string(&mut self.stdin, &mut s)?;
            self.eof = true;
        }
        Ok(s)
    }

    /// Prints `question` and reads the answer (visible).
    pub fn ask(&mut self, question: &str) -> anyhow::Result<Zeroizing<String>> {
        prompt(question, self.is_terminal());
        self.line()?.ok_or_else(|| anyhow::anyhow!("no answer (end of input) to: {}", question.trim()))
    }

    /// Prints `question` and reads the answer with echo off on a terminal.
    pub fn ask_hidden(&mut self, question: &str) -> anyhow::Result<Zeroizing<String>> {
        let tty = self.is_terminal();
        prompt(question, tty);
        let guard = if tty { EchoOff::new() } else { None };
        // ECHONL still echoes the Enter, so the next output starts on a new line.
        let answer = self.line();
        drop(guard);
        answer?.ok_or_else(|| anyhow::anyhow!("no answer (end of input) to: {}", question.trim()))
    }
}

fn prompt(question: &str, tty: bool) {
    let mut err = std::io::stderr().lock();
    if tty {
        let _ = write!(err, "{question}");
    } else {
        let _ = writeln!(err, "{}", question.trim_end());
    }
    let _ = err.flush();
}

/// Terminal echo switched off until dropped.
struct EchoOff {
    saved: nix::sys::termios::Termios,
}

impl EchoOff {
    fn new() -> Option<Self> {
        use nix::sys::termios::{LocalFlags, SetArg, tcgetattr, tcsetattr};
        let fd = std::io::stdin();
        let saved = tcgetattr(&fd).ok()?;
        let mut quiet = saved.clone();
        quiet.local_flags.remove(LocalFlags::ECHO);
        quiet.local_flags.insert(LocalFlags::ECHONL);
        tcsetattr(&fd, SetArg::TCSANOW, &quiet).ok()?;
        Some(Self { saved })
    }
}

impl Drop for EchoOff {
    fn drop(&mut self) {
        use nix::sys::termios::{SetArg, tcsetattr};
        let _ = tcsetattr(std::io::stdin(), SetArg::TCSANOW, &self.saved);
    }
}
