//! A command being prepared ([`Invocation`]), what it printed and how it ended ([`Run`]),
//! and `pushgate` left running in the background ([`Background`]).

use std::ffi::OsStr;
use std::io::Write;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A command being prepared: arguments, environment, stdin. Made by a
/// [`Sandbox`](super::Sandbox), so it starts from the sandbox's clean environment.
pub struct Invocation {
    command: Command,
    stdin: Option<Vec<u8>>,
    what: String,
}

impl Invocation {
    pub(super) fn new(command: Command, what: String) -> Invocation {
        Invocation { command, stdin: None, what }
    }

    pub fn arg(mut self, arg: impl AsRef<OsStr>) -> Self {
        self.what.push(' ');
        self.what.push_str(&arg.as_ref().to_string_lossy());
        self.command.arg(arg);
        self
    }

    pub fn args<S: AsRef<OsStr>>(self, args: impl IntoIterator<Item = S>) -> Self {
        args.into_iter().fold(self, Invocation::arg)
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

    /// Run, but give up after `limit`: `None` when it had not finished by then. The command
    /// runs in its own process group, all of which is killed on giving up (a hook that
    /// recurses must not outlive the test). Output goes through files, not pipes, so that a
    /// chatty child never blocks.
    pub fn run_within(mut self, limit: Duration) -> Option<Run> {
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
        let deadline = Instant::now() + limit;
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break Some(status);
            }
            if Instant::now() > deadline {
                break None;
            }
            std::thread::park_timeout(Duration::from_millis(20));
        };
        let group = child.id() as i32;
        // Kill until no live process is left: processes forked while we kill join the group.
        loop {
            // SAFETY: kill has no memory effects; a group that is gone gives ESRCH.
            unsafe { libc::kill(-group, libc::SIGKILL) };
            let _ = child.try_wait();
            if !group_alive(group) {
                break;
            }
            std::thread::park_timeout(Duration::from_millis(20));
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

    /// Start it in the background, in its own process group, its output discarded; killed,
    /// group and all, when the [`Background`] is dropped.
    pub fn background(mut self) -> Background {
        use std::os::unix::process::CommandExt;
        self.command.stdout(Stdio::null()).stderr(Stdio::null()).process_group(0);
        let child = self.command.spawn().unwrap_or_else(|e| panic!("cannot start {}: {e}", self.what));
        Background { child, what: self.what }
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

/// A command left running in the background; killed, group and all, when dropped.
pub struct Background {
    child: Child,
    what: String,
}

impl Background {
    /// Whether it is still running (a watcher should be).
    #[track_caller]
    pub fn assert_running(&mut self) {
        let status = self.child.try_wait().unwrap();
        assert!(status.is_none(), "`{}` ended: {status:?}", self.what);
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        let group = self.child.id() as i32;
        // SAFETY: kill has no memory effects; a group that is gone gives ESRCH.
        unsafe {
            libc::kill(-group, libc::SIGKILL);
        }
        let _ = self.child.wait();
    }
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

    /// The lines of stderr pushgate wrote, relayed by the client (`remote: `, with its
    /// padding) or not: a forced command's refusal reaches the client's stderr as it is.
    pub fn all_pushgate_lines(&self) -> Vec<String> {
        self.stderr
            .lines()
            .map(|l| l.strip_prefix("remote: ").unwrap_or(l).trim_end())
            .filter(|l| l.starts_with("pushgate:"))
            .map(str::to_string)
            .collect()
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
