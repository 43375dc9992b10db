//! Recording a push that landed (post-receive): a journal first, durably, before anything
//! that depends on configuration can fail; then the event; then a detached deliverer, so
//! the pusher never waits on an endpoint. Also: recording a fetch, and rebuilding the event
//! of a post-receive that died after its journal.

use super::Hook;
use crate::config::extension::{About, Phase, wanting};
use crate::config::{self, Config};
use crate::env::Env;
use crate::event::{self, PullEvent, PushEvent};
use crate::git::{GitRepo, Quarantine, Want};
use crate::identity::{self, Via};
use crate::push::{self, RefUpdate, Vcs};
use crate::spool::{Journal, Spool};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};

/// What post-receive knows about the push before reading the repository.
pub struct Landed<'a> {
    pub git_dir: &'a Path,
    pub input: &'a [u8],
    pub updates: &'a [RefUpdate],
}

/// What recording said, for the pusher.
pub enum Recorded {
    /// No `post` extension is interested: nothing to spool.
    NotNeeded,
    /// Spooled; `warning` when the configuration is broken (the event waits for a fix).
    Spooled { warning: Option<String> },
}

/// Spool the push's event. An error means the event may be lost: the caller says so loudly.
pub fn record(hook: &Hook, landed: &Landed) -> Result<Recorded, String> {
    let config_path = hook.config_path;
    let repo_file = landed.git_dir.join(config::REPO_FILE);
    // The common case, no extension at all, costs a read instead of a full validation: the
    // pusher waits for post-receive. Anything unreadable takes the careful path below.
    let repo_mentions = repo_file.exists() && config::lenient::may_define_extensions(&repo_file);
    if !config::lenient::may_define_extensions(config_path) && !repo_mentions {
        return Ok(Recorded::NotNeeded);
    }
    let loaded = Config::load(config_path, Some(&repo_file));
    if let Ok(config) = &loaded {
        let repo = config::repo_name(landed.git_dir, config.repos_root.as_deref());
        let refs: Vec<&str> = landed.updates.iter().map(|u| u.name.as_str()).collect();
        if !wants_pushes(config, &repo, &refs) {
            return Ok(Recorded::NotNeeded);
        }
    }
    let spool_dir = match &loaded {
        Ok(config) => config.spool.dir.clone(),
        Err(_) => config::lenient::spool_dir(config_path),
    };
    let config = loaded.as_ref().ok();
    let spool = Spool::open(&spool_dir).map_err(|e| format!("cannot open the spool: {e}"))?;
    let identity_env: Vec<String> = match config {
        Some(config) => config.identity_env.clone(),
        None => config::DEFAULT_IDENTITY_ENV.iter().map(|s| s.to_string()).collect(),
    };
    let repo = config::repo_name(landed.git_dir, config.and_then(|c| c.repos_root.as_deref()));
    // The refs now, for a deliverer that has to finish this work later; the journal is
    // written even when the repository cannot be read.
    let git = GitRepo::open(landed.git_dir, &Quarantine::default()).map_err(|e| e.to_string());
    let refs = git.as_ref().ok().and_then(|g| g.refs().ok());
    let journal = Journal {
        sequence: 0,
        time: crate::time::now_rfc3339(),
        git_dir: landed.git_dir.to_path_buf(),
        repo: repo.clone(),
        user: identity::resolve(&identity_env, hook.env).unwrap_or_default(),
        via: Via::of(hook.env),
        push_options: event::push_options(hook.env),
        updates: String::from_utf8_lossy(landed.input).into_owned(),
        refs: refs.map(|r| r.direct.into_iter().map(|(name, id)| (name, id.to_string())).collect()),
    };
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
    spawn_deliverer(hook.env, config_path);
    Ok(Recorded::Spooled { warning: loaded.err().map(|e| format!("configuration error: {}", e.0[0])) })
}

/// The `post` event of a push, read from the repository as it is now. With a broken
/// configuration, defaults stand in (no groups, default `max_commits`).
fn post_event(
    config: Option<&Config>,
    git: &GitRepo,
    journal: &Journal,
    updates: &[RefUpdate],
) -> Result<PushEvent, String> {
    let refs: Option<Vec<(String, gix::ObjectId)>> = journal.refs.as_ref().map(|refs| {
        refs.iter()
            .filter_map(|(name, id)| Some((name.clone(), gix::ObjectId::from_hex(id.as_bytes()).ok()?)))
            .collect()
    });
    let want = Want { files: true, blob_sizes: None, heads: true, aliases: false, distinct: true, pack_limit: None };
    let push = git.read_push(updates, updates, refs.as_deref(), want).map_err(|e| e.to_string())?;
    let context = event::Context {
        // From the journal, so an event rebuilt after a crash keeps its id (and its jobs
        // their delivery ids).
        id: crate::ids::name_based_id(&format!("{}\0{}\0{}", journal.repo, journal.sequence, journal.time)),
        time: journal.time.clone(),
        phase: Phase::Post,
        vcs: Vcs::Git,
        repository: event::Repository {
            name: journal.repo.clone(),
            path: journal.git_dir.to_string_lossy().into_owned(),
            default_branch: push.default_branch.clone(),
        },
        user: event::User {
            name: journal.user.clone(),
            groups: config.map(|c| c.groups.of(&journal.user)).unwrap_or_default(),
            via: journal.via,
        },
        push_options: journal.push_options.clone(),
        max_commits: config.map_or(config::DEFAULT_MAX_COMMITS, Config::event_max_commits),
    };
    let mut event = event::build(&push, context);
    event.sequence = Some(journal.sequence);
    Ok(event)
}

/// The deliverer's way to finish the work of a post-receive that died after its journal.
pub fn rebuild(config: &Config, journal: &Journal) -> Result<PushEvent, String> {
    let updates = push::parse_updates(journal.updates.as_bytes()).map_err(|e| e.to_string())?;
    let git = GitRepo::open(&journal.git_dir, &Quarantine::default()).map_err(|e| e.to_string())?;
    post_event(Some(config), &git, journal, &updates)
}

/// Whether a `post` extension wants to hear about a push of `refs` to `repo`.
pub fn wants_pushes(config: &Config, repo: &str, refs: &[&str]) -> bool {
    wanting(&config.extensions, Phase::Post, About::Push { repo, refs }).next().is_some()
}

/// Whether a `post` extension wants to hear about fetches of `repo`.
pub fn wants_pulls(config: &Config, repo: &str) -> bool {
    wanting(&config.extensions, Phase::Post, About::Pull { repo }).next().is_some()
}

/// A fetch, as a pull event records it.
pub struct Fetch<'a> {
    pub vcs: Vcs,
    pub path: &'a Path,
    pub repo: &'a str,
    pub user: &'a str,
    pub via: Via,
}

/// Spool a `pushgate.pull/1` event for a fetch and start a deliverer.
pub fn record_pull(config_path: &Path, config: &Config, env: &Env, fetch: &Fetch) -> std::io::Result<()> {
    let mut pull = PullEvent {
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
    {
        let lock = spool.lock()?;
        let (number, sequence) = spool.allocate(&lock, fetch.repo)?;
        pull.sequence = Some(sequence);
        spool.write_event(number, &pull)?;
    }
    spawn_deliverer(env, config_path);
    Ok(())
}

/// Start `pushgate deliver --once` detached: its own session, fds 0-2 on /dev/null and no
/// other inherited descriptors, so git does not wait for it.
pub fn spawn_deliverer(env: &Env, config_path: &Path) {
    let Ok(exe) = env.exe() else { return };
    let mut command = Command::new(exe);
    command
        .arg("--config")
        .arg(config_path)
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
