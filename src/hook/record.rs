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
use crate::event::{self, PullEvent, PushEvent, RepositoryEvent};
use crate::gate::Request;
use crate::git::{GitRepo, Quarantine};
use crate::identity::Via;
use crate::push::{Action, Push, Vcs};
use crate::spool::{Record, RepositoryRecord, Spool, Writer};
use serde::{Deserialize, Serialize};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Whether a `post` extension wants to hear about a push of `changes` (each one's ref and
/// action) to `repo`.
pub fn wants_pushes(config: &Config, repo: &str, changes: &[(&str, Action)]) -> bool {
    wanting(&config.extensions, Phase::Post, About::Push { repo, changes }).next().is_some()
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
    if !wants_pushes(config, request.repo, &push.ref_actions()) {
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
    if !wants_pushes(config, request.repo, &push.ref_actions()) {
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
    written.map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    forget_dead_pointers(&path);
    Ok(())
}

/// The pointers of pushes whose post-receive never ran (killed, or no hook): their writers
/// are gone, a deliverer resolves their records, and nothing reads them again.
fn forget_dead_pointers(ours: &Path) {
    let Some(entries) = ours.parent().and_then(|dir| std::fs::read_dir(dir).ok()) else { return };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name();
        if path == ours || !name.to_string_lossy().starts_with("record-") {
            continue;
        }
        let pointer = std::fs::read(&path).ok().and_then(|b| serde_json::from_slice::<Pointer>(&b).ok());
        // One that does not parse may be a concurrent gate's, being written: only an old one
        // is a crash's leftover.
        let old = || {
            let age = entry.metadata().and_then(|m| m.modified()).ok().and_then(|t| t.elapsed().ok());
            age.is_some_and(|age| age > std::time::Duration::from_secs(3600))
        };
        let dead = match pointer {
            Some(pointer) => !pointer.writer.alive(),
            None => old(),
        };
        if dead {
            let _ = std::fs::remove_file(&path);
        }
    }
}

/// Why the spool cannot take a record, in words an admin can act on: the owner of a spool
/// the hooks cannot write is named (the spool, or the first of its parts that is not the
/// hooks' user's: a `pushgate deliver` once run as root leaves root's files behind).
fn spool_problem(dir: &Path, e: &std::io::Error) -> String {
    use crate::account;
    use std::os::unix::fs::MetadataExt;
    let me = account::current();
    let foreign = ["", "incoming", "lock", "number"]
        .iter()
        .map(|part| if part.is_empty() { dir.to_path_buf() } else { dir.join(part) })
        .find_map(|path| {
            std::fs::metadata(&path).ok().map(|m| m.uid()).filter(|uid| *uid != me).map(|uid| (path, uid))
        });
    match (e.kind(), foreign) {
        (std::io::ErrorKind::PermissionDenied, Some((path, uid))) => format!(
            "the spool {} belongs to {}, and the hooks run as {}: give it to the hooks' user (chown -R {} {})",
            path.display(),
            account::named(uid),
            account::named(me),
            account::chown_name(me),
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

/// Fill in the heads the gate only named (`files_pending`): the commits are in the
/// repository by now. A head that cannot be read keeps only its id.
pub fn complete_heads(event: &mut PushEvent) -> Result<(), String> {
    let mut pending: Vec<&mut event::EventCommit> =
        event.changes.iter_mut().filter_map(|c| c.head_commit.as_mut()).filter(|h| h.files_pending).collect();
    if pending.is_empty() {
        return Ok(());
    }
    let opened = GitRepo::open(Path::new(&event.repository.path), &Quarantine::default());
    let mut failed = None;
    for head in &mut pending {
        let commit = match (&opened, gix::ObjectId::from_hex(head.id.as_bytes())) {
            (Ok(git), Ok(id)) => git.commit_with_files(id).map_err(|e| e.to_string()),
            (Err(e), _) => Err(e.to_string()),
            (_, Err(e)) => Err(format!("head {}: {e}", crate::text::shown(&head.id))),
        };
        match commit {
            Ok(commit) => **head = event::EventCommit { distinct: head.distinct, ..event::event_commit(&commit) },
            Err(e) => {
                head.files_pending = false;
                failed.get_or_insert(e);
            }
        }
    }
    failed.map_or(Ok(()), Err)
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

/// Whether a `post` extension wants to hear that `repo` is created or deleted.
pub fn wants_repository_events(config: &Config, repo: &str) -> bool {
    wanting(&config.extensions, Phase::Post, About::Repository { repo }).next().is_some()
}

/// What recording a repository's creation or deletion came to.
pub enum RepositoryRecorded {
    /// No `post` extension wants it.
    NotNeeded,
    Recorded(Box<Recording>),
    /// The spool could not take it and `on_full = "accept"`: it goes ahead unrecorded.
    Unrecorded(String),
}

/// A repository's creation or deletion, recorded before the shell carries it out.
pub struct Recording {
    spool: Spool,
    record: RepositoryRecord,
}

/// Record `event` (as `post` extensions get it) before the shell creates or deletes its
/// repository, when a `post` extension wants it. `Err` is a reason not to go ahead
/// (`on_full = "reject"`).
pub fn record_repository(config: &Config, event: RepositoryEvent) -> Result<RepositoryRecorded, String> {
    if !wants_repository_events(config, &event.repository.name) {
        return Ok(RepositoryRecorded::NotNeeded);
    }
    let dir = &config.spool.dir;
    let written = (|| {
        let writer = Writer::of(std::process::id()).ok_or("cannot tell which process this is")?;
        let spool = Spool::open(dir).map_err(|e| spool_problem(dir, &e))?;
        let number = {
            let lock = spool.lock().map_err(|e| spool_problem(dir, &e))?;
            spool.next_number(&lock).map_err(|e| spool_problem(dir, &e))?
        };
        let record = RepositoryRecord { number, writer, event };
        spool.write_repository_record(&record).map_err(|e| spool_problem(dir, &e))?;
        crate::crashpoint::here("shell:after-record");
        Ok(Recording { spool, record })
    })();
    match written {
        Ok(recording) => Ok(RepositoryRecorded::Recorded(Box::new(recording))),
        Err(e) if config.spool.on_full == OnFull::Accept => Ok(RepositoryRecorded::Unrecorded(e)),
        Err(e) => Err(e),
    }
}

impl Recording {
    /// Whether it was done: the record becomes its event, or goes; then a deliverer is
    /// woken. A record that cannot be settled now is resolved by a deliverer from the disk
    /// once this process is gone.
    pub fn settle(self, done: bool, env: &Env, config_path: &Path) {
        crate::crashpoint::here("shell:before-settle");
        let _ = self.spool.settle_repository_record(&self.record, done);
        wake(env, config_path, &self.spool);
    }
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
