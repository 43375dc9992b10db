//! The harness every integration test builds on: a bare "server" repository in its own temp
//! dir with pushgate's hooks installed by the real binary, a work clone that commits and
//! pushes, and what the pusher saw.
//!
//! Everything runs isolated from the machine: the environment is cleared (a developer's
//! `PUSHGATE_USER` or a `GIT_DIR` from a git hook must not leak in), git reads no system or
//! global configuration, and `HOME` and `TMPDIR` point into the test's own temp dir.

// Each test binary uses a different part of the harness.
#![allow(dead_code)]

use std::ffi::OsStr;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The binary under test.
pub const PUSHGATE: &str = env!("CARGO_BIN_EXE_pushgate");

/// An all-zero SHA-1 id: the "old" of a create, the "new" of a delete.
pub const ZERO: &str = "0000000000000000000000000000000000000000";

/// The paths and environment shared by every command of one test.
#[derive(Debug, Clone)]
pub struct Sandbox {
    pub root: PathBuf,
    pub config: PathBuf,
}

impl Sandbox {
    /// A command with a clean, test-local environment.
    fn command(&self, program: impl AsRef<OsStr>) -> Command {
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

    /// `git` in `dir`.
    pub fn git(&self, dir: &Path) -> Invocation {
        let mut command = self.command("git");
        command.current_dir(dir);
        Invocation { command, stdin: None, what: "git".into() }
    }

    /// `pushgate` (the real binary), in the sandbox root.
    pub fn pushgate(&self, args: &[&str]) -> Invocation {
        let mut command = self.command(PUSHGATE);
        command.args(args);
        Invocation { command, stdin: None, what: format!("pushgate {}", args.join(" ")) }
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

/// A command being prepared: arguments, environment, stdin.
pub struct Invocation {
    command: Command,
    stdin: Option<Vec<u8>>,
    what: String,
}

impl Invocation {
    pub fn args<S: AsRef<OsStr>>(mut self, args: impl IntoIterator<Item = S>) -> Self {
        for arg in args {
            self.what.push(' ');
            self.what.push_str(&arg.as_ref().to_string_lossy());
            self.command.arg(arg);
        }
        self
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
        if let Some(input) = self.stdin.take() {
            let mut pipe = child.stdin.take().unwrap();
            // Written on a thread: a child that prints before reading must not deadlock us.
            let writer = std::thread::spawn(move || {
                let _ = pipe.write_all(&input);
            });
            let output = child.wait_with_output().unwrap();
            writer.join().unwrap();
            return Run::from_output(self.what, output);
        }
        let output = child.wait_with_output().unwrap();
        Run::from_output(self.what, output)
    }

    /// Run, but give up after `limit`: `None` when it had not finished by then. The command
    /// runs in its own process group, all of which is killed on giving up (a hook that
    /// recurses must not outlive the test). Output goes through files, not pipes, so that a
    /// chatty child never blocks.
    pub fn run_within(mut self, limit: std::time::Duration) -> Option<Run> {
        use std::os::unix::process::CommandExt;
        let dir = tempfile::tempdir().unwrap();
        let (out, err) = (dir.path().join("stdout"), dir.path().join("stderr"));
        self.command.stdout(std::fs::File::create(&out).unwrap()).stderr(std::fs::File::create(&err).unwrap());
        self.command.stdin(Stdio::piped()).process_group(0);
        let mut child = self.command.spawn().unwrap_or_else(|e| panic!("cannot run {}: {e}", self.what));
        let input = self.stdin.take().unwrap_or_default();
        let mut pipe = child.stdin.take().unwrap();
        std::thread::spawn(move || {
            let _ = pipe.write_all(&input);
        });
        let deadline = std::time::Instant::now() + limit;
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break Some(status);
            }
            if std::time::Instant::now() > deadline {
                break None;
            }
            std::thread::park_timeout(std::time::Duration::from_millis(20));
        };
        let group = child.id() as i32;
        // Kill until no live process is left: processes forked while we kill join the group.
        loop {
            unsafe { libc::kill(-group, libc::SIGKILL) };
            let _ = child.try_wait();
            if !group_alive(group) {
                break;
            }
            std::thread::park_timeout(std::time::Duration::from_millis(20));
        }
        let status = status?;
        let read = |path: &Path| String::from_utf8_lossy(&std::fs::read(path).unwrap()).into_owned();
        Some(Run { what: self.what, code: status.code(), stdout: read(&out), stderr: read(&err) })
    }

    /// Run, insist on exit 0, return stdout without the trailing newline.
    #[track_caller]
    pub fn ok(self) -> String {
        let run = self.run();
        run.assert_code(0);
        run.stdout.trim_end_matches('\n').to_string()
    }
}

/// Whether a process group has a live (not zombie) member. Zombies count as members for
/// `kill`, and orphans may never be reaped in a container, so ask /proc.
fn group_alive(group: i32) -> bool {
    let Ok(entries) = std::fs::read_dir("/proc") else { return false };
    entries.flatten().filter(|e| e.file_name().to_string_lossy().bytes().all(|b| b.is_ascii_digit())).any(|e| {
        let stat = std::fs::read_to_string(e.path().join("stat")).unwrap_or_default();
        // pid (comm) state ppid pgrp ...: comm may hold spaces and parentheses.
        let fields: Vec<&str> = stat.rsplit_once(')').map_or("", |(_, rest)| rest).split_whitespace().collect();
        fields.len() > 2 && fields[0] != "Z" && fields[0] != "X" && fields[2] == group.to_string()
    })
}

/// What a command printed and how it ended.
#[derive(Debug, Clone)]
pub struct Run {
    pub what: String,
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    fn from_output(what: String, output: std::process::Output) -> Run {
        Run {
            what,
            code: output.status.code(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    #[track_caller]
    pub fn assert_code(&self, code: i32) -> &Run {
        assert_eq!(self.code, Some(code), "unexpected exit status of `{}`\n{self}", self.what);
        self
    }

    /// The push went through (git exits 0).
    #[track_caller]
    pub fn assert_accepted(&self) -> &Run {
        assert_eq!(self.code, Some(0), "the push was expected to be accepted\n{self}");
        self
    }

    /// The push was refused (git exits 1).
    #[track_caller]
    pub fn assert_rejected(&self) -> &Run {
        assert_eq!(self.code, Some(1), "the push was expected to be rejected\n{self}");
        self
    }

    /// The lines the server sent (`remote: ...`), without the prefix and git's padding.
    pub fn remote_lines(&self) -> Vec<String> {
        self.stderr.lines().filter_map(|l| l.strip_prefix("remote: ")).map(|l| l.trim_end().to_string()).collect()
    }

    /// The `remote:` lines pushgate wrote.
    pub fn pushgate_lines(&self) -> Vec<String> {
        self.remote_lines().into_iter().filter(|l| l.starts_with("pushgate:")).collect()
    }

    pub fn stderr_lines(&self) -> Vec<&str> {
        self.stderr.lines().collect()
    }

    pub fn stdout_lines(&self) -> Vec<&str> {
        self.stdout.lines().collect()
    }

    /// No panic message anywhere: a panic is a bug even when it fails closed.
    #[track_caller]
    pub fn assert_no_panic(&self) -> &Run {
        assert!(!self.stderr.contains("panicked") && !self.stdout.contains("panicked"), "a panic\n{self}");
        assert!(!self.stderr.contains("internal error"), "an internal error\n{self}");
        self
    }
}

impl std::fmt::Display for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "$ {}\nexit: {:?}\n--- stdout\n{}--- stderr\n{}---", self.what, self.code, self.stdout, self.stderr)
    }
}

/// A bare server repository with a configuration, and a work clone that pushes to it.
pub struct TestServer {
    _tmp: tempfile::TempDir,
    pub sandbox: Sandbox,
    /// The bare repository pushes go to (`<tmp>/server.git`).
    pub repo: PathBuf,
    work: Work,
}

impl Default for TestServer {
    fn default() -> Self {
        TestServer::new()
    }
}

impl TestServer {
    /// An empty SHA-1 server and work clone; no configuration file yet.
    pub fn new() -> TestServer {
        TestServer::with_object_format("sha1")
    }

    /// As [`TestServer::new`], both repositories in `format` (`sha1` or `sha256`).
    pub fn with_object_format(format: &str) -> TestServer {
        let tmp = tempfile::Builder::new().prefix("pushgate-test-").tempdir().unwrap();
        let root = tmp.path().canonicalize().unwrap();
        std::fs::create_dir(root.join("home")).unwrap();
        std::fs::create_dir(root.join("tmp")).unwrap();
        let sandbox = Sandbox { config: root.join("config.toml"), root: root.clone() };
        let repo = root.join("server.git");
        let object_format = format!("--object-format={format}");
        let init = |args: &[&str]| {
            sandbox.git(&root).args(["init", "--quiet", "--initial-branch=main", &object_format]).args(args).ok();
        };
        init(&["--bare", "server.git"]);
        init(&["work"]);
        let work = Work { sandbox: sandbox.clone(), dir: root.join("work") };
        work.git(&["remote", "add", "origin"]).args([&repo]).ok();
        TestServer { _tmp: tmp, sandbox, repo, work }
    }

    /// Write the global configuration (`$PUSHGATE_CONFIG`).
    pub fn config(self, toml: &str) -> TestServer {
        std::fs::write(&self.sandbox.config, toml).unwrap();
        self
    }

    /// Write the server repository's own `pushgate.toml`.
    pub fn repo_config(self, toml: &str) -> TestServer {
        std::fs::write(self.repo.join("pushgate.toml"), toml).unwrap();
        self
    }

    /// `pushgate install <extra args> server.git`, which must succeed.
    pub fn install(self, args: &[&str]) -> TestServer {
        self.sandbox.pushgate(&["install"]).args(args).args([&self.repo]).ok();
        self
    }

    /// `git config <key> <value>` in the server repository.
    pub fn git_config(self, key: &str, value: &str) -> TestServer {
        self.git(&["config", key, value]).ok();
        self
    }

    pub fn root(&self) -> &Path {
        &self.sandbox.root
    }

    pub fn config_path(&self) -> &Path {
        &self.sandbox.config
    }

    pub fn hooks(&self) -> PathBuf {
        self.repo.join("hooks")
    }

    /// The default work clone.
    pub fn work(&self) -> &Work {
        &self.work
    }

    /// Another work clone named `name` pushing to this server.
    pub fn clone_as(&self, name: &str) -> Work {
        let dir = self.root().join(name);
        self.sandbox.git(self.root()).args(["clone", "--quiet"]).args([&self.repo, &dir]).ok();
        Work { sandbox: self.sandbox.clone(), dir }
    }

    /// `git push <args>` from the default work clone as `user`: what the pusher saw.
    pub fn push_as(&self, user: &str, args: &[&str]) -> Run {
        self.work.push_as(user, args)
    }

    /// `git` in the server repository.
    pub fn git(&self, args: &[&str]) -> Invocation {
        self.sandbox.git(&self.repo).args(args)
    }

    /// `pushgate <args>`, with `$PUSHGATE_CONFIG` set to this server's configuration.
    pub fn pushgate(&self, args: &[&str]) -> Invocation {
        self.sandbox.pushgate(args)
    }

    /// A hook command (`pushgate pre-receive`, ...) run by hand the way git runs it: in the
    /// server repository, as `user`.
    pub fn hook(&self, user: &str, args: &[&str]) -> Invocation {
        self.pushgate(args).current_dir(&self.repo).env("PUSHGATE_USER", user)
    }

    /// The id a server ref holds (an annotated tag's own id, not peeled), if it exists.
    pub fn ref_target(&self, name: &str) -> Option<String> {
        self.refs().into_iter().find(|(n, _)| n == name).map(|(_, id)| id)
    }

    /// Every ref on the server with its id, sorted by name.
    pub fn refs(&self) -> Vec<(String, String)> {
        let out = self.git(&["for-each-ref", "--format=%(refname) %(objectname)"]).ok();
        out.lines()
            .map(|l| {
                let (name, id) = l.rsplit_once(' ').unwrap();
                (name.to_string(), id.to_string())
            })
            .collect()
    }

    pub fn has_object(&self, id: &str) -> bool {
        self.git(&["cat-file", "-e", id]).run().code == Some(0)
    }
}

/// A non-bare repository whose `origin` is the server.
pub struct Work {
    sandbox: Sandbox,
    pub dir: PathBuf,
}

impl Work {
    /// `git <args>` in the work tree.
    pub fn git(&self, args: &[&str]) -> Invocation {
        self.sandbox.git(&self.dir).args(args)
    }

    /// Write (or overwrite) files and commit them; returns the new commit's id.
    pub fn commit(&self, files: &[(&str, &str)]) -> String {
        let bytes: Vec<(&str, &[u8])> = files.iter().map(|(p, c)| (*p, c.as_bytes())).collect();
        self.commit_bytes(&bytes)
    }

    /// [`Work::commit`] with binary contents.
    pub fn commit_bytes(&self, files: &[(&str, &[u8])]) -> String {
        for (path, contents) in files {
            let path = self.dir.join(path);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, contents).unwrap();
        }
        let paths: Vec<&str> = files.iter().map(|(p, _)| *p).collect();
        self.git(&["add", "--"]).args(&paths).ok();
        self.git(&["commit", "--quiet", "-m"]).args([format!("Change {}", paths.join(", "))]).ok();
        self.head()
    }

    /// Remove files and commit; returns the new commit's id.
    pub fn remove(&self, paths: &[&str]) -> String {
        self.git(&["rm", "--quiet", "--"]).args(paths).ok();
        self.git(&["commit", "--quiet", "-m"]).args([format!("Remove {}", paths.join(", "))]).ok();
        self.head()
    }

    /// Commit a blob at an arbitrary path (raw bytes: spaces, newlines, non-UTF-8) through
    /// the index alone, with no file on disk; returns the new commit's id.
    pub fn commit_raw_paths(&self, paths: &[&[u8]]) -> String {
        use std::os::unix::ffi::OsStrExt;
        let blob = self.git(&["hash-object", "-w", "--stdin"]).stdin("raw\n").ok();
        for path in paths {
            let info = [b"100644,".as_slice(), blob.as_bytes(), b",", path].concat();
            self.git(&["update-index", "--add", "--cacheinfo"]).args([OsStr::from_bytes(&info)]).ok();
        }
        self.git(&["commit", "--quiet", "-m", "Add raw paths"]).ok();
        self.head()
    }

    /// Start branch `name` at `start` and check it out.
    pub fn branch(&self, name: &str, start: &str) {
        self.git(&["checkout", "--quiet", "-B", name, start]).ok();
    }

    pub fn checkout(&self, name: &str) {
        self.git(&["checkout", "--quiet", name]).ok();
    }

    pub fn head(&self) -> String {
        self.rev("HEAD")
    }

    pub fn rev(&self, name: &str) -> String {
        self.git(&["rev-parse", "--verify"]).args([name]).ok()
    }

    /// `git push <args>` as `user`: what the pusher saw.
    pub fn push_as(&self, user: &str, args: &[&str]) -> Run {
        self.push(args).env("PUSHGATE_USER", user).run()
    }

    /// `git push <args>` with no identity set; add one with [`Invocation::env`].
    pub fn push(&self, args: &[&str]) -> Invocation {
        self.git(&["push"]).args(args)
    }
}

/// `<old> <new> <ref>` hook input lines.
pub fn updates(lines: &[(&str, &str, &str)]) -> String {
    lines.iter().map(|(old, new, name)| format!("{old} {new} {name}\n")).collect()
}
