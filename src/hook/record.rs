//! The outbox, from the hooks' side. The gate (pre-receive, the update hook under
//! `--per-ref`, hg's pretxnclose) records what it accepted, with what it read, before it
//! lets the push land; the hook after the push (post-receive, txnclose) confirms the record
//! with the refs that moved and wakes or starts a deliverer, reading nothing again. A
//! pointer in the repository (`pushgate/record-<pid>`) tells the second hook which record
//! is its push's; a record never confirmed is resolved by a deliverer ([`landed`]).

use super::Hook;
use crate::config::extension::{About, Phase, wanting};
use crate::config::{Config, OnFull};
use crate::env::Env;
use crate::event::{self, PullEvent, PushEvent};
use crate::gate::Request;
use crate::git::{GitRepo, Quarantine};
use crate::identity::Via;
use crate::push::{Push, Vcs};
use crate::spool::{Record, Spool, Writer};
use serde::{Deserialize, Serialize};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Whether a `post` extension wants to hear about a push of `refs` to `repo`.
pub fn wants_pushes(config: &Config, repo: &str, refs: &[&str]) -> bool {
    wanting(&config.extensions, Phase::Post, About::Push { repo, refs }).next().is_some()
}

/// Whether a `post` extension wants to hear about fetches of `repo`.
pub fn wants_pulls(config: &Config, repo: &str) -> bool {
    wanting(&config.extensions, Phase::Post, About::Pull { repo }).next().is_some()
}

/// What recording an accepted push came to, for the pusher.
#[derive(Debug, PartialEq, Eq)]
pub enum Recorded {
    /// No `post` extension wants it.
    NotNeeded,
    Recorded,
    /// The spool could not take it and `on_full = "accept"`: it lands unrecorded.
    Unrecorded(String),
}

/// The pointer from a repository to its current push's record.
#[derive(Debug, Serialize, Deserialize)]
struct Pointer {
    spool: PathBuf,
    number: u64,
    writer: Writer,
}

/// Where a push's pointer lives: in the repository (`.git` dir, or hg's `.hg`), named by
/// the process serving the push.
fn pointer_path(dir: &Path, vcs: Vcs, pid: u32) -> PathBuf {
    let base = match vcs {
        Vcs::Git => dir.join("pushgate"),
        Vcs::Hg => dir.join(".hg").join("pushgate"),
    };
    base.join(format!("record-{pid}"))
}

/// Record `push` as the gate accepted it, when a `post` extension wants it. `Err` is a
/// reason to reject the push (`on_full = "reject"`).
pub fn record_push(request: &Request, push: &Push, dir: &Path) -> Result<Recorded, String> {
    let config = request.config;
    let refs: Vec<&str> = push.changes.iter().map(|c| c.update.name.as_str()).collect();
    if !wants_pushes(config, request.repo, &refs) {
        return Ok(Recorded::NotNeeded);
    }
    let event = request.event(push, Phase::Post);
    match write_record(&config.spool.dir, request.vcs, dir, event) {
        Ok(()) => Ok(Recorded::Recorded),
        Err(e) if config.spool.on_full == OnFull::Accept => Ok(Recorded::Unrecorded(e)),
        Err(e) => Err(e),
    }
}

/// `install --per-ref`: add one accepted change to its push's record (made by the first).
pub fn record_change(request: &Request, push: &Push, dir: &Path) -> Result<Recorded, String> {
    let config = request.config;
    let refs: Vec<&str> = push.changes.iter().map(|c| c.update.name.as_str()).collect();
    if !wants_pushes(config, request.repo, &refs) {
        return Ok(Recorded::NotNeeded);
    }
    let writer = Writer::parent().ok_or("cannot tell which process serves the push")?;
    let event = request.event(push, Phase::Post);
    let earlier = std::fs::read(pointer_path(dir, request.vcs, writer.pid))
        .ok()
        .and_then(|b| serde_json::from_slice::<Pointer>(&b).ok())
        .filter(|p| p.writer == writer);
    let result = match earlier {
        Some(pointer) => (|| {
            let spool = Spool::open(&pointer.spool).map_err(|e| spool_problem(&pointer.spool, &e))?;
            let path = spool.record_path(pointer.number, writer.pid);
            let mut record = spool.read_record(&path).map_err(|e| format!("cannot read the push's record: {e}"))?;
            record.event.changes.extend(event.changes);
            spool.write_record(&record).map_err(|e| spool_problem(&pointer.spool, &e))
        })(),
        None => write_record(&config.spool.dir, request.vcs, dir, event),
    };
    match result {
        Ok(()) => Ok(Recorded::Recorded),
        Err(e) if config.spool.on_full == OnFull::Accept => Ok(Recorded::Unrecorded(e)),
        Err(e) => Err(e),
    }
}

fn write_record(spool_dir: &Path, vcs: Vcs, dir: &Path, event: PushEvent) -> Result<(), String> {
    let writer = Writer::parent().ok_or("cannot tell which process serves the push")?;
    let spool = Spool::open(spool_dir).map_err(|e| spool_problem(spool_dir, &e))?;
    let number = {
        let lock = spool.lock().map_err(|e| spool_problem(spool_dir, &e))?;
        spool.next_number(&lock).map_err(|e| spool_problem(spool_dir, &e))?
    };
    let record = Record { number, writer, vcs, dir: dir.to_path_buf(), event };
    spool.write_record(&record).map_err(|e| spool_problem(spool_dir, &e))?;
    crate::crashpoint::here("gate:after-record");
    // The pointer only saves the confirming hook a search: it need not survive a crash
    // (a deliverer resolves the record then).
    let pointer = Pointer { spool: spool_dir.to_path_buf(), number, writer };
    let path = pointer_path(dir, vcs, writer.pid);
    let written = path
        .parent()
        .map_or(Ok(()), crate::spool::file::create_private_dir)
        .and_then(|()| crate::spool::file::write_private(&path, &serde_json::to_vec(&pointer).unwrap_or_default()));
    written.map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// Why the spool cannot take a record, in words an admin can act on: the owner of a spool
/// the hooks cannot write is named.
fn spool_problem(dir: &Path, e: &std::io::Error) -> String {
    use std::os::unix::fs::MetadataExt;
    let owner = std::fs::metadata(dir).ok().map(|m| m.uid());
    // SAFETY: geteuid has no preconditions.
    let me = unsafe { libc::geteuid() };
    match (e.kind(), owner) {
        (std::io::ErrorKind::PermissionDenied, Some(uid)) if uid != me => format!(
            "the spool {} belongs to uid {uid}, and the hooks run as uid {me}: give it to the hooks' user \
             (chown -R)",
            dir.display()
        ),
        (std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded, _) => {
            format!("the spool {} is full ({e}): free some space", dir.display())
        }
        _ => format!("the spool {} cannot take the push ({e})", dir.display()),
    }
}

/// What confirming came to.
#[derive(Debug, PartialEq, Eq)]
pub enum Confirmed {
    /// The gate recorded nothing for this push.
    NothingRecorded,
    Confirmed,
    /// The record stays; a deliverer resolves it once the push is served.
    Left(String),
}

/// post-receive / txnclose: confirm this push's record with the refs that moved (`None`:
/// all of them, a committed hg transaction), then wake or start a deliverer.
pub fn confirm(hook: &Hook, dir: &Path, vcs: Vcs, landed: Option<&[&str]>) -> Confirmed {
    let Some(writer) = Writer::parent() else { return Confirmed::NothingRecorded };
    let path = pointer_path(dir, vcs, writer.pid);
    let Some(pointer) = std::fs::read(&path)
        .ok()
        .and_then(|b| serde_json::from_slice::<Pointer>(&b).ok())
        .filter(|p| p.writer == writer)
    else {
        return Confirmed::NothingRecorded;
    };
    let _ = std::fs::remove_file(&path);
    crate::crashpoint::here("post:before-confirm");
    let confirmed = Spool::open(&pointer.spool).and_then(|spool| {
        let record = spool.read_record(&spool.record_path(pointer.number, writer.pid))?;
        let all: Vec<&str> = record.event.changes.iter().map(|c| c.name.as_str()).collect();
        spool.confirm(&record, landed.unwrap_or(&all))?;
        Ok(spool)
    });
    match confirmed {
        Ok(spool) => {
            crate::crashpoint::here("post:after-confirm");
            wake(hook.env, hook.config_path, &spool);
            Confirmed::Confirmed
        }
        Err(e) => Confirmed::Left(e.to_string()),
    }
}

/// For a deliverer: which changes of a record whose writer died landed, from the refs as
/// they are now (git), or the repository's changesets and bookmarks (hg).
pub fn landed(record: &Record) -> Result<Vec<bool>, String> {
    if !record.dir.exists() {
        return Ok(vec![false; record.event.changes.len()]);
    }
    match record.vcs {
        Vcs::Git => {
            let git = GitRepo::open(&record.dir, &Quarantine::default()).map_err(|e| e.to_string())?;
            let refs = git.refs().map_err(|e| e.to_string())?;
            let now = |name: &str| refs.direct.iter().find(|(n, _)| n == name).map(|(_, id)| id.to_string());
            Ok(record
                .event
                .changes
                .iter()
                .map(|c| match now(&c.name) {
                    Some(id) => id == c.after,
                    None => c.after.bytes().all(|b| b == b'0'),
                })
                .collect())
        }
        Vcs::Hg => crate::hg::landed(&record.dir, &record.event.changes),
    }
}

/// A fetch, as a pull event records it.
pub struct Fetch<'a> {
    pub vcs: Vcs,
    pub path: &'a Path,
    pub repo: &'a str,
    pub user: &'a str,
    pub via: Via,
}

/// Spool a `pushgate.pull/1` event for a fetch and wake or start a deliverer.
pub fn record_pull(config_path: &Path, config: &Config, env: &Env, fetch: &Fetch) -> std::io::Result<()> {
    let pull = PullEvent {
        schema: event::PULL_SCHEMA.into(),
        id: crate::ids::new_id(),
        sequence: None,
        time: crate::time::now_rfc3339(),
        vcs: fetch.vcs,
        repository: event::Repository {
            name: fetch.repo.into(),
            path: fetch.path.to_string_lossy().into_owned(),
            default_branch: None,
        },
        user: event::User { name: fetch.user.into(), groups: config.groups.of(fetch.user), via: fetch.via },
    };
    let spool = Spool::open(&config.spool.dir)?;
    let number = {
        let lock = spool.lock()?;
        spool.next_number(&lock)?
    };
    spool.write_event(number, &pull)?;
    wake(env, config_path, &spool);
    Ok(())
}

/// A running `deliver --watch` sees new events by itself (it watches `incoming/`); else a
/// detached `pushgate deliver --once` is started.
fn wake(env: &Env, config_path: &Path, spool: &Spool) {
    if !spool.watched() {
        spawn_deliverer(env, config_path);
    }
}

/// Whether a process is git or hg serving a push (and so ends soon): not, say, a test that
/// runs a hook by hand.
fn serves_pushes(writer: &Writer) -> bool {
    let comm = std::fs::read_to_string(format!("/proc/{}/comm", writer.pid)).unwrap_or_default();
    let comm = comm.trim_end();
    comm == "git" || comm.starts_with("git-") || comm == "hg" || comm.starts_with("python")
}

/// Start `pushgate deliver --once` detached: its own session, fds 0-2 on /dev/null and no
/// other inherited descriptors, so git does not wait for it.
pub fn spawn_deliverer(env: &Env, config_path: &Path) {
    let Ok(exe) = env.exe() else { return };
    let mut command = Command::new(exe);
    command.arg("--config").arg(config_path).args(["deliver", "--once"]);
    // It waits for the process serving the push to finish, at a lower priority: the push
    // the pusher waits for never shares the CPU with its own delivery.
    if let Some(writer) = Writer::parent().filter(serves_pushes) {
        command.arg("--after").arg(writer.pid.to_string());
    }
    command.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null());
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        command.pre_exec(|| {
            libc::setsid();
            libc::setpriority(libc::PRIO_PROCESS, 0, 10);
            // Close-on-exec rather than closed now: std's own pipe that reports a failed
            // exec must stay open until the exec, or spawn returns before the deliverer
            // exists.
            const CLOSE_RANGE_CLOEXEC: u32 = 1 << 2;
            if libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, CLOSE_RANGE_CLOEXEC) != 0 {
                for fd in 3..1024 {
                    libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC);
                }
            }
            Ok(())
        });
    }
    // The deliverer is not ours to wait for: once detached, it is reaped by init.
    let _ = command.spawn();
}
