//! One test's temp dir and the environment every command of the test runs in, and what a
//! server there is made of: `repos_root`, repositories, a stand-in `ssh`, `post` scripts
//! that record events, the audit log.

use super::command::Invocation;
use super::{AUTHOR, PUSHGATE, json_values, quoted, shell_quoted};
use std::ffi::OsStr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;

/// A temp dir removed at the end of the test (`<tmp>/pushgate-test-XXXX`), with `home/`,
/// `tmp/` and `srv/` (`repos_root`, when the configuration says so) in it, and the global
/// configuration's path (`config.toml`).
///
/// Every command runs isolated from the machine: the environment is cleared (a developer's
/// `PUSHGATE_USER` or a `GIT_DIR` from a git hook must not leak in), git and hg read no
/// system or user configuration, and `HOME` and `TMPDIR` point into the sandbox.
#[derive(Debug, Clone)]
pub struct Sandbox {
    _dir: Arc<tempfile::TempDir>,
    pub root: PathBuf,
    pub config: PathBuf,
    /// `repos_root` of [`Sandbox::configure`].
    pub repos: PathBuf,
}

impl Default for Sandbox {
    fn default() -> Self {
        Sandbox::new()
    }
}

impl Sandbox {
    /// An empty sandbox with no configuration file yet.
    pub fn new() -> Sandbox {
        let dir = tempfile::Builder::new().prefix("pushgate-test-").tempdir().unwrap();
        let root = dir.path().canonicalize().unwrap();
        for sub in ["home", "tmp", "srv"] {
            std::fs::create_dir(root.join(sub)).unwrap();
        }
        Sandbox { config: root.join("config.toml"), repos: root.join("srv"), root, _dir: Arc::new(dir) }
    }

    /// Write the global configuration of a server of many repositories: `repos_root`, then
    /// `toml`, then a spool and an audit log inside the sandbox.
    pub fn configure(&self, toml: &str) {
        let text = format!(
            "repos_root = {}\n{toml}\n[spool]\ndir = {}\nretry = [\"1s\"]\n\n[audit]\nfile = {}\n",
            quoted(&self.repos),
            quoted(self.spool_dir()),
            quoted(self.audit_path()),
        );
        std::fs::write(&self.config, text).unwrap();
    }

    /// `program` with the sandbox's clean environment, in the sandbox's root, stdin empty:
    /// for what drives a process by hand (a CGI run by a web server written in a test).
    pub fn std_command(&self, program: impl AsRef<OsStr>) -> Command {
        let mut command = Command::new(program);
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
        command
    }

    /// `program` with the sandbox's clean environment, in the sandbox's root.
    pub fn command(&self, program: impl AsRef<OsStr>) -> Invocation {
        let what = program.as_ref().to_string_lossy().into_owned();
        Invocation::new(self.std_command(program), what)
    }

    /// `git <args>` in `dir`.
    pub fn git(&self, dir: &Path, args: &[&str]) -> Invocation {
        self.command("git").current_dir(dir).args(args)
    }

    /// `hg <args>` in `dir`.
    pub fn hg(&self, dir: &Path, args: &[&str]) -> Invocation {
        self.command("hg").current_dir(dir).args(args)
    }

    /// `pushgate <args>` (the real binary), in the sandbox's root.
    pub fn pushgate(&self, args: &[&str]) -> Invocation {
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

    /// An executable script in the sandbox.
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
        self.wait_for_detached_deliverers();
    }

    /// The spool of [`Sandbox::configure`] (and of [`spool_table`](super::spool_table)).
    pub fn spool_dir(&self) -> PathBuf {
        self.root.join("spool")
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

    /// Every file under the sandbox named `name`.
    pub fn files_named(&self, name: &str) -> Vec<PathBuf> {
        let mut found = Vec::new();
        let mut dirs = vec![self.root.clone()];
        while let Some(dir) = dirs.pop() {
            for entry in std::fs::read_dir(&dir).unwrap().flatten() {
                let path = entry.path();
                if entry.file_name() == name {
                    found.push(path.clone());
                }
                if entry.file_type().unwrap().is_dir() {
                    dirs.push(path);
                }
            }
        }
        found
    }
}
