//! Recording a push that landed (post-receive): a journal first, durably, before anything
//! that depends on configuration can fail; then the event; then a detached deliverer, so
//! the pusher never waits on an endpoint.

use crate::config::extension::Phase;
use crate::config::{self, Config};
use crate::event::{self, Event};
use crate::git::{GitRepo, Quarantine, Want};
use crate::push::{self, RefUpdate};
use crate::spool::{Journal, Spool};
use std::ffi::OsString;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// What post-receive knows about the push before reading the repository.
pub struct Landed<'a> {
    pub git_dir: &'a Path,
    pub input: &'a [u8],
    pub updates: &'a [RefUpdate],
    pub env: &'a dyn Fn(&str) -> Option<OsString>,
}

/// What recording said, for the pusher.
pub enum Recorded {
    /// No `post` extension is interested: nothing to spool.
    NotNeeded,
    /// Spooled; `warning` when the configuration is broken (the event waits for a fix).
    Spooled { warning: Option<String> },
}

/// Spool the push's event. An error means the event may be lost: the caller says so loudly.
pub fn record(config_path: &Path, landed: &Landed) -> Result<Recorded, String> {
    let repo_file = landed.git_dir.join(config::REPO_FILE);
    // The common case, no extension at all, costs a read instead of a full validation: the
    // pusher waits for post-receive. Anything unreadable takes the careful path below.
    let mentions_extensions = |path: &Path| std::fs::read(path).map_or(true, |text| has_extension_table(&text));
    let repo_mentions = repo_file.exists() && mentions_extensions(&repo_file);
    if !mentions_extensions(config_path) && !repo_mentions {
        return Ok(Recorded::NotNeeded);
    }
    let loaded = Config::load(config_path, Some(&repo_file));
    if let Ok(config) = &loaded {
        let repo = crate::hook::repo_name(landed.git_dir, config.repos_root.as_deref());
        let refs: Vec<&str> = landed.updates.iter().map(|u| u.name.as_str()).collect();
        if !wants_pushes(config, &repo, &refs) {
            return Ok(Recorded::NotNeeded);
        }
    }
    let spool_dir = match &loaded {
        Ok(config) => config.spool.dir.clone(),
        Err(_) => config::spool_dir_leniently(config_path),
    };
    let config = loaded.as_ref().ok();
    let spool = Spool::open(&spool_dir).map_err(|e| format!("cannot open the spool: {e}"))?;
    let identity_env: Vec<String> = match config {
        Some(config) => config.identity_env.clone(),
        None => config::DEFAULT_IDENTITY_ENV.iter().map(|s| s.to_string()).collect(),
    };
    let repo = crate::hook::repo_name(landed.git_dir, config.and_then(|c| c.repos_root.as_deref()));
    let journal = Journal {
        sequence: 0,
        time: crate::time::now_rfc3339(),
        git_dir: landed.git_dir.to_path_buf(),
        repo: repo.clone(),
        user: crate::identity::resolve(&identity_env, landed.env).unwrap_or_default(),
        via: crate::hook::via(landed.env),
        push_options: event::push_options(|n| (landed.env)(n).and_then(|v| v.into_string().ok())),
        updates: String::from_utf8_lossy(landed.input).into_owned(),
        refs: None,
    };
    // The refs now, for a deliverer that has to finish this work later; the journal is
    // written even when the repository cannot be read.
    let git = GitRepo::open(landed.git_dir, &Quarantine::default()).map_err(|e| e.to_string());
    let refs = git.as_ref().ok().and_then(|g| g.refs().ok());
    let journal =
        Journal { refs: refs.map(|r| r.into_iter().map(|(name, id)| (name, id.to_string())).collect()), ..journal };
    let (number, held, journal) = {
        let lock = spool.lock().map_err(|e| format!("cannot lock the spool: {e}"))?;
        let (number, sequence) = spool.allocate(&lock, &repo).map_err(|e| format!("cannot write the spool: {e}"))?;
        let journal = Journal { sequence, ..journal };
        let held = spool.write_journal(number, &journal).map_err(|e| format!("cannot write the spool: {e}"))?;
        (number, held, journal)
    };
    // From here on a crash leaves the journal, from which a deliverer rebuilds the event.
    crate::crashpoint::here("post-receive:after-journal");
    let event = post_event(config, &git?, &journal, landed.updates)?;
    spool.write_event(number, &event).map_err(|e| format!("cannot write the spool: {e}"))?;
    drop(held);
    crate::crashpoint::here("post-receive:after-event");
    spawn_deliverer(config_path);
    Ok(Recorded::Spooled { warning: loaded.err().map(|e| format!("configuration error: {}", e.0[0])) })
}

/// Whether TOML text may define an `[[extension]]` (a line starting a table array with
/// that name, spaces allowed): when it cannot, nothing is ever spooled.
fn has_extension_table(text: &[u8]) -> bool {
    text.split(|&b| b == b'\n').any(|line| {
        let compact: Vec<u8> = line.iter().copied().filter(|b| !b.is_ascii_whitespace()).collect();
        compact.starts_with(b"[[extension]]") || compact.starts_with(b"[[\"extension\"]]")
    })
}

/// The `post` event of a push, read from the repository as it is now. With a broken
/// configuration, defaults stand in (no groups, default `max_commits`).
pub fn post_event(
    config: Option<&Config>,
    git: &GitRepo,
    journal: &Journal,
    updates: &[RefUpdate],
) -> Result<Event, String> {
    let refs: Option<Vec<(String, gix::ObjectId)>> = journal.refs.as_ref().map(|refs| {
        refs.iter()
            .filter_map(|(name, id)| Some((name.clone(), gix::ObjectId::from_hex(id.as_bytes()).ok()?)))
            .collect()
    });
    let want = Want { files: true, blob_sizes: None, heads: true };
    let push = git.read_push(updates, updates, refs.as_deref(), want).map_err(|e| e.to_string())?;
    let context = event::Context {
        // From the journal, so an event rebuilt after a crash keeps its id (and its jobs
        // their delivery ids).
        id: event::name_based_id(&format!("{}\0{}\0{}", journal.repo, journal.sequence, journal.time)),
        time: journal.time.clone(),
        phase: "post",
        vcs: "git",
        repository: event::Repository {
            name: journal.repo.clone(),
            path: journal.git_dir.to_string_lossy().into_owned(),
            default_branch: git.default_branch(),
        },
        user: event::User {
            name: journal.user.clone(),
            groups: config.map(|c| c.groups.of(&journal.user)).unwrap_or_default(),
            via: journal.via.clone(),
        },
        push_options: journal.push_options.clone(),
        max_commits: config.map_or(config::DEFAULT_MAX_COMMITS, |c| c.max_commits),
    };
    let mut event = event::build(&push, context);
    event.sequence = Some(journal.sequence);
    Ok(event)
}

/// The deliverer's way to finish the work of a post-receive that died after its journal.
pub fn rebuild(config: &Config, journal: &Journal) -> Result<Event, String> {
    let updates = push::parse_updates(journal.updates.as_bytes()).map_err(|e| e.to_string())?;
    let git = GitRepo::open(&journal.git_dir, &Quarantine::default()).map_err(|e| e.to_string())?;
    post_event(Some(config), &git, journal, &updates)
}

/// Whether a `post` extension wants to hear about a push of `refs` to `repo`.
pub fn wants_pushes(config: &Config, repo: &str, refs: &[&str]) -> bool {
    config
        .extensions
        .iter()
        .any(|e| e.phase == Phase::Post && e.enabled && e.push_events && e.applies_to(repo, refs.iter().copied()))
}

/// Whether a `post` extension wants to hear about fetches of `repo`.
pub fn wants_pulls(config: &Config, repo: &str) -> bool {
    config
        .extensions
        .iter()
        .any(|e| e.phase == Phase::Post && e.enabled && e.pull_events && e.repos.iter().any(|g| g.matches(repo)))
}

/// Spool a `pushgate.pull/1` event for a fetch and start a deliverer.
pub fn record_pull(
    config_path: &Path,
    config: &Config,
    vcs: &str,
    path: &Path,
    repo: &str,
    user: &str,
    via: &str,
) -> std::io::Result<()> {
    let mut pull = event::Pull {
        schema: event::PULL_SCHEMA.into(),
        id: event::new_id(),
        sequence: None,
        time: crate::time::now_rfc3339(),
        vcs: vcs.into(),
        repository: event::Repository {
            name: repo.into(),
            path: path.to_string_lossy().into_owned(),
            default_branch: None,
        },
        user: event::User { name: user.into(), groups: config.groups.of(user), via: via.into() },
    };
    let spool = Spool::open(&config.spool.dir)?;
    {
        let lock = spool.lock()?;
        let (number, sequence) = spool.allocate(&lock, repo)?;
        pull.sequence = Some(sequence);
        spool.write_event(number, &pull)?;
    }
    spawn_deliverer(config_path);
    Ok(())
}

/// Start `pushgate deliver --once` detached: its own session, fds 0-2 on /dev/null and no
/// other inherited descriptors, so git does not wait for it.
pub fn spawn_deliverer(config_path: &Path) {
    let Ok(exe) = std::env::current_exe() else { return };
    let mut command = Command::new(exe);
    command
        .arg("--config")
        .arg(PathBuf::from(config_path))
        .args(["deliver", "--once"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        command.pre_exec(|| {
            libc::setsid();
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extension_tables_are_spotted_however_written() {
        assert!(has_extension_table(b"[server]\n[[extension]]\nname = \"x\"\n"));
        assert!(has_extension_table(b"  [[ extension ]]  # note\n"));
        assert!(has_extension_table(b"[[\"extension\"]]\n"));
        assert!(!has_extension_table(b"[[rule]]\nmessage = \"no [[extension]] here\"\n"));
    }
}
