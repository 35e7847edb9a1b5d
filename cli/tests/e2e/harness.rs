//! The real stack (`kez-server up` on free loopback ports, temp data folder)
//! and users driving the real `kez-chat` binary, each with its own data folder.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::Value;

/// The passphrase every test user uses (long enough for the CLI's minimum).
pub const PASSPHRASE: &str = "correct horse battery staple";
/// The home domain of test stacks.
pub const DOMAIN: &str = "kez.test";

pub fn kez_chat_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_kez-chat"))
}

/// `kez-server` next to the kez-chat binary (`kez_testkit::kez_server_bin`).
pub fn kez_server_bin() -> PathBuf {
    kez_testkit::kez_server_bin(kez_chat_bin().parent().expect("kez-chat has a folder")).expect("kez-server")
}

/// A running `kez-server up` (a `kez_testkit::StackProcess`) in a temp data folder.
pub struct Stack {
    /// Base URL of /v1.
    pub http: String,
    /// Native NATS URL.
    pub nats_url: String,
    process: kez_testkit::StackProcess,
    // After `process`: the folder goes once the server has stopped.
    _data: tempfile::TempDir,
}

impl Stack {
    pub fn start() -> Stack {
        Stack::start_with("warn")
    }

    /// As [`Stack::start`], with `RUST_LOG=filter`; [`Stack::stop_with_log`] gives what it logged.
    pub fn start_logging(filter: &str) -> Stack {
        Stack::start_with(filter)
    }

    fn start_with(filter: &str) -> Stack {
        let data = tempfile::tempdir().expect("temp dir");
        let opts = kez_testkit::StackOptions::new(kez_server_bin(), data.path()).domain(DOMAIN).rust_log(filter);
        let process = kez_testkit::StackProcess::start(&opts).expect("kez-server up");
        Stack { http: process.http().to_string(), nats_url: process.nats_url().to_string(), process, _data: data }
    }

    /// Stops the server; returns everything it (and the nats-server it runs) logged.
    pub fn stop_with_log(self) -> String {
        self.process.stop_with_stderr().expect("kez-server stops")
    }

    /// A NATS client as the stack's operator (full APP permissions).
    pub async fn ops_client(&self) -> async_nats::Client {
        self.process.ops_client().await.expect("ops connects")
    }
}

/// One person with their own data folder, driving `kez-chat`.
pub struct User {
    pub name: String,
    home: tempfile::TempDir,
    pub server: String,
}

/// The result of one run.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    fn from(o: Output) -> Run {
        Run {
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }

    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}\nstderr: {}", self.stdout, self.stderr))
    }

    /// The inbox events of `listen --json` (message, sent, rejected, redelivered, dropped);
    /// other events (e.g. the file provider's) are skipped.
    pub fn inbox_events(&self) -> Vec<Value> {
        self.json_lines()
            .into_iter()
            .filter(|v| {
                matches!(v["event"].as_str(), Some("message" | "sent" | "rejected" | "redelivered" | "dropped"))
            })
            .collect()
    }

    /// `listen --json` output: one object per line.
    pub fn json_lines(&self) -> Vec<Value> {
        self.stdout
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not a JSON line ({e}): {l}")))
            .collect()
    }
}

impl User {
    pub fn new(name: &str, stack: &Stack) -> User {
        User { name: name.into(), home: tempfile::tempdir().expect("temp home"), server: stack.http.clone() }
    }

    pub fn new_with_server(name: &str, server: &str) -> User {
        User { name: name.into(), home: tempfile::tempdir().expect("temp home"), server: server.into() }
    }

    pub fn home(&self) -> &Path {
        self.home.path()
    }

    pub fn command(&self) -> Command {
        let mut c = Command::new(kez_chat_bin());
        c.env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("KEZ_HOME", self.home.path())
            .env("KEZ_SERVER", &self.server)
            .env("KEZ_TEST_PASSPHRASE", PASSPHRASE)
            .arg("--passphrase-env")
            .arg("KEZ_TEST_PASSPHRASE");
        c
    }

    /// Runs with `stdin` as standard input.
    pub fn run_with(&self, args: &[&str], stdin: &str, env: &[(&str, &str)]) -> Run {
        let mut c = self.command();
        c.args(args).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
        for (k, v) in env {
            c.env(k, v);
        }
        let mut child = c.spawn().expect("spawn kez-chat");
        {
            let mut i = child.stdin.take().expect("stdin");
            let _ = i.write_all(stdin.as_bytes());
        }
        Run::from(child.wait_with_output().expect("kez-chat ran"))
    }

    pub fn run(&self, args: &[&str]) -> Run {
        self.run_with(args, "", &[])
    }

    /// Runs and requires success.
    pub fn ok(&self, args: &[&str]) -> Run {
        let r = self.run(args);
        assert_eq!(
            r.code, 0,
            "{} {args:?} failed ({}):\nstdout: {}\nstderr: {}",
            self.name, r.code, r.stdout, r.stderr
        );
        r
    }

    /// Runs and requires the exit code `code`.
    pub fn fails(&self, args: &[&str], code: i32) -> Run {
        let r = self.run(args);
        assert_eq!(
            r.code, code,
            "{} {args:?}: expected exit {code}:\nstdout: {}\nstderr: {}",
            self.name, r.stdout, r.stderr
        );
        r
    }

    /// `restore --mnemonic-stdin` into this (empty) data folder; a new device of the account.
    pub fn restore(&self, words: &str, device_name: &str) {
        let r = self.run_with(
            &["--json", "restore", "--mnemonic-stdin", "--device-name", device_name],
            &format!("{words}\n"),
            &[],
        );
        assert_eq!(r.code, 0, "restore {} failed:\nstdout: {}\nstderr: {}", self.name, r.stdout, r.stderr);
    }

    /// This data folder's device id (`device.json`).
    pub fn device_id(&self) -> String {
        let bytes = std::fs::read(self.home().join("device.json")).expect("device.json");
        let v: Value = serde_json::from_slice(&bytes).expect("device.json is JSON");
        v["id"].as_str().expect("device id").to_string()
    }

    /// `register <name>`. With `confirm_by_typing_yes` through the real dialogue at a
    /// terminal (see [`User::register_dialogue`]); otherwise the way a script does it:
    /// `--words-file` and `--skip-recall-check`. Returns the words.
    pub fn register(&self, confirm_by_typing_yes: bool) -> String {
        if confirm_by_typing_yes {
            let (run, words) = self.register_dialogue(&self.name, true, true);
            assert_eq!(run.code, 0, "register {} failed:\nstdout: {}\nstderr: {}", self.name, run.stdout, run.stderr);
            return words.join(" ");
        }
        let file = self.home().join("words.txt");
        let file_arg = file.to_str().expect("utf-8 path");
        let r = self.run(&["--json", "register", &self.name, "--words-file", file_arg, "--skip-recall-check"]);
        assert_eq!(r.code, 0, "register {} failed:\nstdout: {}\nstderr: {}", self.name, r.stdout, r.stderr);
        let words = std::fs::read_to_string(&file).expect("the words file");
        std::fs::remove_file(&file).expect("delete the words file");
        words.trim().to_string()
    }

    /// The registration dialogue at a terminal (stdin is a pseudo-terminal, as for a
    /// person): reads the 24 words from stderr and answers the three-word check like a
    /// person with paper would; `answer_correctly = false` types a wrong word.
    pub fn register_dialogue(
        &self,
        handle: &str,
        confirm_by_typing_yes: bool,
        answer_correctly: bool,
    ) -> (Run, Vec<String>) {
        use std::io::Read as _;
        let pty = nix::pty::openpty(None, None).expect("openpty");
        let mut c = self.command();
        c.args(["--json", "register", handle]);
        if !confirm_by_typing_yes {
            c.arg("--yes-i-wrote-it-down");
        }
        let mut child =
            c.stdin(Stdio::from(pty.slave)).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("spawn");
        let mut terminal = std::fs::File::from(pty.master);
        let mut stderr = child.stderr.take().expect("stderr");
        let mut words: Vec<String> = Vec::new();
        let mut transcript = String::new();
        let mut line = String::new();
        let mut byte = [0u8; 1];
        // Prompts at a terminal end without a newline: read byte by byte and answer them.
        while stderr.read(&mut byte).unwrap_or(0) == 1 {
            let ch = byte[0] as char;
            transcript.push(ch);
            if ch != '\n' {
                line.push(ch);
            }
            let text = line.as_str();
            if text.starts_with("Have you written down") && text.ends_with(": ") {
                writeln!(terminal, "yes").expect("answer");
                line.clear();
            } else if let Some(rest) = text.strip_prefix("Word #").filter(|r| r.ends_with(": ")) {
                let n: usize = rest.trim_end_matches(": ").trim().parse().expect("position");
                let right = words[n - 1].clone();
                let answer = if answer_correctly {
                    right
                } else if right == "zoo" {
                    "abandon".into()
                } else {
                    "zoo".into()
                };
                writeln!(terminal, "{answer}").expect("answer");
                line.clear();
            } else if ch == '\n' {
                // "   1. word       2. word …"
                let tokens: Vec<&str> = line.split_whitespace().collect();
                if tokens.len() >= 2
                    && tokens.len().is_multiple_of(2)
                    && tokens[0].ends_with('.')
                    && tokens[0][..tokens[0].len() - 1].parse::<usize>().is_ok()
                {
                    for pair in tokens.chunks(2) {
                        let n: usize = pair[0].trim_end_matches('.').parse().expect("word number");
                        assert_eq!(n, words.len() + 1, "words are numbered in order: {line}");
                        words.push(pair[1].to_string());
                    }
                }
                line.clear();
            }
        }
        let out = child.wait_with_output().expect("register ran");
        drop(terminal);
        let mut run = Run::from(out);
        run.stderr = transcript;
        (run, words)
    }
}
