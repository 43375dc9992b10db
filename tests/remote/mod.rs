//! What the Mercurial, SSH and HTTP tests share beyond `common`: a site with a
//! `repos_root` in its own temp dir, `git`, `hg` and `pushgate` commands isolated from the
//! machine, a stand-in `ssh` that plays sshd running pushgate's forced command, and a `post`
//! script extension that records the events it is given, with a way to wait until every
//! spooled event has been delivered.
//!
//! Nothing here sleeps to wait for something: commands are waited for, and only the
//! deliverers that hooks detach (not our children, so there is nothing to wait on) are
//! polled, briefly, against a deadline.

// Each test binary uses a different part of it.
#![allow(dead_code)]

use crate::common::{PUSHGATE, Run};
use std::ffi::OsStr;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// How long a test waits for something that should happen promptly before it fails.
pub const WAIT: Duration = Duration::from_secs(30);

/// The author of changesets and commits unless a test says otherwise.
pub const AUTHOR: &str = "Test Author <author@example.org>";

/// A server: `repos_root` (`<tmp>/srv`), the global configuration, the spool and the audit
/// log, all in one temp dir removed at the end of the test.
pub struct Site {
    _tmp: tempfile::TempDir,
    pub root: PathBuf,
    pub config: PathBuf,
    /// `repos_root`.
    pub repos: PathBuf,
}

impl Default for Site {
    fn default() -> Self {
        Site::new()
    }
}

impl Site {
    /// An empty site with no configuration file yet.
    pub fn new() -> Site {
        let tmp = tempfile::Builder::new().prefix("pushgate-remote-").tempdir().unwrap();
        let root = tmp.path().canonicalize().unwrap();
        for dir in ["home", "tmp", "srv"] {
            std::fs::create_dir(root.join(dir)).unwrap();
        }
        Site { config: root.join("config.toml"), repos: root.join("srv"), root, _tmp: tmp }
    }

    /// Write the global configuration: `repos_root`, then `toml`, then a spool and an audit
    /// log inside the site.
    pub fn config(&self, toml: &str) {
        let text = format!(
            "repos_root = {}\n{toml}\n[spool]\ndir = {}\nretry = [\"1s\"]\n\n[audit]\nfile = {}\n",
            quoted(&self.repos),
            quoted(self.root.join("spool")),
            quoted(self.audit_path()),
        );
        std::fs::write(&self.config, text).unwrap();
    }

    /// A command with a clean, test-local environment: no system or user configuration for
    /// git or hg, `HOME` and `TMPDIR` in the site, `$PUSHGATE_CONFIG` the site's.
    pub fn command(&self, program: impl AsRef<OsStr>) -> Cmd {
        let mut command = Command::new(program.as_ref());
        command.env_clear();
        for kept in ["PATH", "LLVM_PROFILE_FILE"] {
            if let Some(value) = std::env::var_os(kept) {
                command.env(kept, value);
            }
        }
        command
            .env("HOME", self.root.join("home"))
            .env("TMPDIR", self.root.join("tmp"))
            .env("LC_ALL", "C")
            .env("HGRCPATH", "/dev/null")
            .env("HGPLAIN", "1")
            .env("HGENCODING", "utf-8")
            .env("HGUSER", AUTHOR)
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .env("GIT_TERMINAL_PROMPT", "0")
            .env("GIT_AUTHOR_NAME", "Test Author")
            .env("GIT_AUTHOR_EMAIL", "author@example.org")
            .env("GIT_COMMITTER_NAME", "Test Committer")
            .env("GIT_COMMITTER_EMAIL", "committer@example.org")
            .env("PUSHGATE_CONFIG", &self.config)
            .current_dir(&self.root)
            .stdin(Stdio::null());
        Cmd { command, stdin: None, what: program.as_ref().to_string_lossy().into_owned() }
    }

    /// `hg <args>` in `dir`.
    pub fn hg(&self, dir: &Path, args: &[&str]) -> Cmd {
        self.command("hg").current_dir(dir).args(args)
    }

    /// `git <args>` in `dir`.
    pub fn git(&self, dir: &Path, args: &[&str]) -> Cmd {
        self.command("git").current_dir(dir).args(args)
    }

    /// `pushgate <args>` (the real binary), in the site's root.
    pub fn pushgate(&self, args: &[&str]) -> Cmd {
        self.command(PUSHGATE).args(args)
    }

    /// A bare Git repository `<repos_root>/<name>` with pushgate's hooks installed.
    pub fn git_repo(&self, name: &str) -> PathBuf {
        let path = self.repos.join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        self.git(&self.root, &["init", "--quiet", "--bare", "--initial-branch=main"]).arg(&path).ok();
        self.pushgate(&["install"]).arg(&path).ok();
        path
    }

    /// A work repository `<root>/<name>` with one commit on `main`.
    pub fn git_work(&self, name: &str) -> PathBuf {
        let dir = self.root.join(name);
        self.git(&self.root, &["init", "--quiet", "--initial-branch=main", name]).ok();
        std::fs::write(dir.join("README"), "hello\n").unwrap();
        self.git(&dir, &["add", "README"]).ok();
        self.git(&dir, &["commit", "--quiet", "-m", "First"]).ok();
        dir
    }

    /// An executable script in the site.
    pub fn script(&self, name: &str, text: &str) -> PathBuf {
        let path = self.root.join(name);
        std::fs::write(&path, text).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        path
    }

    /// A stand-in for `ssh` that plays sshd with pushgate's forced command: the client's
    /// last argument is the command it asks for (`SSH_ORIGINAL_COMMAND`), and `SSH_AS` says
    /// whose key it used. Git (with `GIT_SSH_VARIANT=simple`) and hg call it as
    /// `<script> <host> <command>`.
    pub fn ssh(&self) -> PathBuf {
        let text = format!(
            "#!/bin/sh\n\
             for command; do :; done\n\
             SSH_ORIGINAL_COMMAND=$command exec {} shell \"$SSH_AS\"\n",
            shell_quoted(PUSHGATE)
        );
        self.script("ssh", &text)
    }

    /// The `[[extension]]` table of a `post` script extension named `name` that appends
    /// each event it is given to `<root>/<name>.jsonl`; `extra` adds keys.
    pub fn recorder(&self, name: &str, extra: &str) -> String {
        let script = self.script("record", "#!/bin/sh\n{ cat; echo; } >> \"$1\"\n");
        format!(
            "[[extension]]\nname = {}\ntype = \"script\"\nphase = \"post\"\ncommand = [{}, {}]\n{extra}\n",
            quoted(name),
            quoted(script),
            quoted(self.root.join(format!("{name}.jsonl"))),
        )
    }

    /// Every event the recorder `name` was given, once all spooled events are delivered.
    pub fn events(&self, name: &str) -> Vec<serde_json::Value> {
        self.settle();
        match std::fs::read(self.root.join(format!("{name}.jsonl"))) {
            Ok(bytes) => json_values(&bytes),
            Err(_) => Vec::new(),
        }
    }

    /// Deliver what is spooled: one `pushgate deliver --once` in the foreground, then wait
    /// for the deliverers the hooks detached (a connector whose lock one of them holds is
    /// left to it, and it looks again before it ends).
    pub fn settle(&self) {
        self.pushgate(&["deliver", "--once"]).ok();
        let deadline = Instant::now() + WAIT;
        loop {
            let alive = self.detached_deliverers();
            if alive.is_empty() {
                return;
            }
            assert!(Instant::now() < deadline, "detached deliverers still running after {WAIT:?}: {alive:?}");
            std::thread::park_timeout(Duration::from_millis(10));
        }
    }

    /// The live `pushgate --config <this site's config> deliver` processes.
    fn detached_deliverers(&self) -> Vec<u32> {
        let config = self.config.as_os_str().as_encoded_bytes().to_vec();
        let mut found = Vec::new();
        for entry in std::fs::read_dir("/proc").unwrap().flatten() {
            let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else { continue };
            // A zombie's cmdline is empty: it counts as gone.
            let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else { continue };
            let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
            let ours = args.windows(2).any(|w| w[0] == b"--config" && w[1] == config.as_slice())
                && args.contains(&b"deliver".as_slice());
            if ours {
                found.push(pid);
            }
        }
        found
    }

    pub fn audit_path(&self) -> PathBuf {
        self.root.join("audit.jsonl")
    }

    /// The decisions in the audit log, oldest first.
    pub fn audit(&self) -> Vec<serde_json::Value> {
        std::fs::read(self.audit_path()).map(|b| json_values(&b)).unwrap_or_default()
    }

    /// `(ref, action)` of each update of audit entry `index`, and its verdict.
    pub fn decision(&self, index: usize) -> (Vec<(String, String)>, String) {
        let audit = self.audit();
        let entry = audit.get(index).unwrap_or_else(|| panic!("no audit entry {index} in {audit:#?}"));
        let updates = entry["updates"]
            .as_array()
            .unwrap()
            .iter()
            .map(|u| (u["ref"].as_str().unwrap().to_string(), u["action"].as_str().unwrap().to_string()))
            .collect();
        (updates, entry["verdict"].as_str().unwrap().to_string())
    }
}

/// JSON values one after the other, whatever whitespace separates them.
pub fn json_values(bytes: &[u8]) -> Vec<serde_json::Value> {
    serde_json::Deserializer::from_slice(bytes).into_iter().map(|v| v.unwrap()).collect()
}

/// A TOML string.
pub fn quoted(text: impl AsRef<Path>) -> String {
    serde_json::to_string(&text.as_ref().to_string_lossy()).unwrap()
}

/// A word for `sh`.
pub fn shell_quoted(text: impl AsRef<Path>) -> String {
    format!("'{}'", text.as_ref().to_string_lossy().replace('\'', "'\\''"))
}

/// The `(ref, action)` pairs of an event's changes.
pub fn changes(event: &serde_json::Value) -> Vec<(String, String)> {
    event["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["ref"].as_str().unwrap().to_string(), c["action"].as_str().unwrap().to_string()))
        .collect()
}

/// `docs/event.schema.json`, with format validation on.
pub fn event_schema() -> jsonschema::Validator {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/event.schema.json");
    let schema: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    jsonschema::options().should_validate_formats(true).build(&schema).unwrap()
}

/// Fails the test with every violation when `event` does not validate.
#[track_caller]
pub fn assert_valid_event(event: &serde_json::Value) {
    let schema = event_schema();
    let errors: Vec<String> = schema.iter_errors(event).map(|e| format!("{e} at {}", e.instance_path())).collect();
    assert!(errors.is_empty(), "does not validate:\n{}\n--- event\n{event:#}", errors.join("\n"));
}

/// A command being prepared: arguments, environment, stdin.
pub struct Cmd {
    command: Command,
    stdin: Option<Vec<u8>>,
    what: String,
}

impl Cmd {
    pub fn arg(mut self, arg: impl AsRef<OsStr>) -> Self {
        self.what.push(' ');
        self.what.push_str(&arg.as_ref().to_string_lossy());
        self.command.arg(arg);
        self
    }

    pub fn args<S: AsRef<OsStr>>(self, args: impl IntoIterator<Item = S>) -> Self {
        args.into_iter().fold(self, Cmd::arg)
    }

    pub fn env(mut self, key: &str, value: impl AsRef<OsStr>) -> Self {
        self.command.env(key, value);
        self
    }

    pub fn env_remove(mut self, key: &str) -> Self {
        self.command.env_remove(key);
        self
    }

    pub fn current_dir(mut self, dir: &Path) -> Self {
        self.command.current_dir(dir);
        self
    }

    pub fn stdin(mut self, input: impl Into<Vec<u8>>) -> Self {
        self.stdin = Some(input.into());
        self
    }

    /// Run to completion, whatever the exit status.
    pub fn run(mut self) -> Run {
        if self.stdin.is_some() {
            self.command.stdin(Stdio::piped());
        }
        self.command.stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = self.command.spawn().unwrap_or_else(|e| panic!("cannot run {}: {e}", self.what));
        // Written on a thread: a child that prints before reading must not deadlock us.
        let writer = self.stdin.take().map(|input| {
            let mut pipe = child.stdin.take().unwrap();
            std::thread::spawn(move || {
                let _ = pipe.write_all(&input);
            })
        });
        let output = child.wait_with_output().unwrap();
        if let Some(writer) = writer {
            writer.join().unwrap();
        }
        Run {
            what: self.what,
            code: output.status.code(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    /// Run, insist on exit 0, return stdout without the trailing newline.
    #[track_caller]
    pub fn ok(self) -> String {
        let run = self.run();
        run.assert_code(0);
        run.stdout.trim_end_matches('\n').to_string()
    }
}

/// The lines of `text` that pushgate wrote, with any `remote: ` prefix and padding removed.
pub fn pushgate_lines(text: &str) -> Vec<String> {
    text.lines()
        .map(|l| l.strip_prefix("remote: ").unwrap_or(l).trim_end())
        .filter(|l| l.starts_with("pushgate:"))
        .map(str::to_string)
        .collect()
}
