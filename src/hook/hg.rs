//! Mercurial hooks: `pretxnclose` decides (it sees the whole transaction and can veto it),
//! `txnclose` spools the event once the transaction is committed. One push is one decision
//! and one event, like Git. The computed event waits between the two in
//! `.hg/pushgate/<transaction>.json`. `pretxnclose`, `txnclose` and `prepushkey` are given
//! what pushgate's hg shim gathered inside hg, as JSON on stdin; `outgoing` runs as an
//! external hook with hg's `HG_*` variables.

use super::record::{self, Fetch};
use super::{Hook, reject, say};
use crate::config::extension::Phase;
use crate::config::{self, Config, REPO_FILE};
use crate::env::Env;
use crate::event::PushEvent;
use crate::gate::{self, Request};
use crate::hg;
use crate::identity::Via;
use crate::outcome::Outcome;
use crate::policy::{self, Subject};
use crate::push::{self, Action, Change, Push, RefUpdate, Vcs};
use crate::spool::Spool;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

/// The Mercurial hooks pushgate installs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum HgHook {
    /// Decide the push before its transaction closes.
    Pretxnclose,
    /// Spool the event of the committed transaction.
    Txnclose,
    /// Tell extensions about pulls.
    Outgoing,
    /// Decide bookmarks that old clients set outside a transaction.
    Prepushkey,
}

/// Run one of the Mercurial hooks, given what the shim sent on `stdin`.
pub fn run(hook: &Hook, which: HgHook, stdin: &mut dyn Read, err: &mut dyn Write) -> Outcome {
    let mut input = Vec::new();
    if which != HgHook::Outgoing
        && let Err(e) = stdin.read_to_end(&mut input)
    {
        return reject(err, &format!("cannot read the hook input: {e}"));
    }
    match which {
        HgHook::Pretxnclose => match decide(hook, &input, err) {
            Ok(outcome) => outcome,
            Err(e) => reject(err, &e),
        },
        HgHook::Txnclose => txnclose(hook, &input, err),
        HgHook::Outgoing => outgoing(hook, err),
        HgHook::Prepushkey => match decide_pushkey(hook, &input, err) {
            Ok(outcome) => outcome,
            Err(e) => reject(err, &e),
        },
    }
}

/// Where pretxnclose keeps the event of transaction `txn_id` for txnclose.
fn stash_path(root: &Path, txn_id: &str) -> PathBuf {
    let safe: String = txn_id.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '_' }).collect();
    root.join(".hg").join("pushgate").join(format!("{safe}.json"))
}

/// The repository the shim names, as a canonical path.
fn repository(root: &hg::HgText) -> Result<PathBuf, String> {
    let root = root.path();
    root.canonicalize().map_err(|e| format!("cannot find the repository {}: {e}", root.display()))
}

/// An external hook's working directory: the repository's root.
fn hook_root(env: &Env) -> Result<PathBuf, String> {
    env.cwd()
        .and_then(|d| d.canonicalize().map_err(|e| e.to_string()))
        .map_err(|e| format!("cannot find the repository: {e}"))
}

/// The configuration as the repository at `root` sees it, the pusher, the repository's name.
fn caller(hook: &Hook, root: &Path) -> Result<(Config, String, String), String> {
    let config = Config::load(hook.config_path, Some(&root.join(".hg").join(REPO_FILE)))
        .map_err(|e| format!("configuration error: {}", e.0[0]))?;
    let user = config.user(hook.env).map_err(|e| e.to_string())?;
    let repo = config::repo_name(root, config.repos_root.as_deref());
    Ok((config, user, repo))
}

fn decide(hook: &Hook, input: &[u8], err: &mut dyn Write) -> Result<Outcome, String> {
    let document = hg::parse_document(input)?;
    let root = repository(&document.root)?;
    let (config, user, repo) = caller(hook, &root)?;
    let push = hg::read_push(&document)?;
    if push.changes.is_empty() {
        // Fail closed: changesets that no branch, bookmark or tag accounts for are not
        // judged, so they do not land.
        if document.added > 0 {
            return Err("the pushed changesets change no branch, bookmark or tag pushgate can judge".into());
        }
        return Ok(Outcome::Success);
    }
    let request = Request { config: &config, user: &user, repo: &repo, path: &root, vcs: Vcs::Hg, env: hook.env };
    let verdict = gate::decide(&request, &push);
    say(err, &verdict.report(&user));
    super::audit(config.audit_file.as_deref(), "pretxnclose", &user, &repo, &push, &verdict)?;
    if !verdict.accepted() {
        return Ok(Outcome::Rejected);
    }
    let refs: Vec<&str> = push.changes.iter().map(|c| c.update.name.as_str()).collect();
    if record::wants_pushes(&config, &repo, &refs) {
        let path = stash_path(&root, &document.txn_id.lossy());
        stash(&path, &request.event(&push, Phase::Post), &config.spool.dir)?;
    }
    Ok(Outcome::Success)
}

/// What txnclose needs: the event and where to spool it.
#[derive(serde::Serialize, serde::Deserialize)]
struct Stashed {
    spool: PathBuf,
    event: PushEvent,
}

fn stash(path: &Path, event: &PushEvent, spool: &Path) -> Result<(), String> {
    let dir = path.parent().unwrap_or(Path::new("."));
    crate::spool::file::create_private_dir(dir).map_err(|e| format!("cannot write {}: {e}", dir.display()))?;
    let bytes =
        serde_json::to_vec(&Stashed { spool: spool.to_path_buf(), event: event.clone() }).map_err(|e| e.to_string())?;
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("txn.json");
    crate::spool::write_durably(dir, name, &bytes, false)
        .map(|_| ())
        .map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// What the shim sends for a legacy pushkey bookmark.
#[derive(serde::Deserialize)]
struct Pushkey {
    root: hg::HgText,
    key: hg::HgText,
    old: String,
    new: String,
    /// The old target is an ancestor of the new one.
    forward: bool,
}

/// `prepushkey`: a bookmark set through the legacy pushkey command, outside any push
/// transaction (`hg push` over bundle1). Bundle2 pushes carry their bookmarks in the
/// transaction pretxnclose judges, so only the legacy path is decided here.
fn decide_pushkey(hook: &Hook, input: &[u8], err: &mut dyn Write) -> Result<Outcome, String> {
    let pushkey: Pushkey =
        serde_json::from_slice(input).map_err(|e| format!("cannot read what the hg hook gathered: {e}"))?;
    let (key, old, new) = (pushkey.key.lossy(), pushkey.old.as_str(), pushkey.new.as_str());
    let root = repository(&pushkey.root)?;
    let (config, user, repo) = caller(hook, &root)?;
    let name = format!("refs/bookmarks/{key}");
    push::check_ref_name(&name).map_err(|e| format!("bookmark {}: {e}", crate::text::shown(&key)))?;
    let id = |hex: &str| -> Result<gix::ObjectId, String> {
        if hex.is_empty() {
            return Ok(gix::ObjectId::null(gix::hash::Kind::Sha1));
        }
        push::parse_id(hex.as_bytes())
    };
    let update = RefUpdate { old: id(old)?, new: id(new)?, name };
    let action = match update.obvious_action() {
        Some(action) => action,
        None if pushkey.forward => Action::Update,
        None => Action::Force,
    };
    let change = Change { update, action, commits: vec![], head: None, non_commit: None, aliases: vec![] };
    let push = Push { changes: vec![change], default_branch: Some("default".into()), pushed_blobs: Vec::new() };
    let verdict = policy::judge(&config, Subject { user: &user, repo: Some(&repo) }, &push);
    say(err, &verdict.report(&user));
    super::audit(config.audit_file.as_deref(), "prepushkey", &user, &repo, &push, &verdict)?;
    Ok(if verdict.accepted() { Outcome::Success } else { Outcome::Rejected })
}

/// `outgoing`: changesets left the repository. For a pull or clone (over `hg serve` or
/// from a local path) by a known user, extensions with `events = ["push", "pull"]` are told.
fn outgoing(hook: &Hook, err: &mut dyn Write) -> Outcome {
    if !["serve", "pull"].contains(&hook.env.var("HG_SOURCE").unwrap_or_default()) {
        return Outcome::Success;
    }
    // A pull is never refused for want of a configuration or identity: it is only told.
    let Ok(root) = hook_root(hook.env) else { return Outcome::Success };
    let Ok((config, user, repo)) = caller(hook, &root) else { return Outcome::Success };
    if record::wants_pulls(&config, &repo) {
        let fetch = Fetch { vcs: Vcs::Hg, path: &root, repo: &repo, user: &user, via: Via::of(hook.env) };
        if let Err(e) = record::record_pull(hook.config_path, &config, hook.env, &fetch) {
            say(err, &[format!("pushgate: warning: the pull event is not recorded: {e}")]);
        }
    }
    Outcome::Success
}

/// What the shim sends txnclose.
#[derive(serde::Deserialize)]
struct Txn {
    root: hg::HgText,
    txn_id: hg::HgText,
}

/// Spool the event pretxnclose computed for this (now committed) transaction.
fn txnclose(hook: &Hook, input: &[u8], err: &mut dyn Write) -> Outcome {
    let Ok(txn) = serde_json::from_slice::<Txn>(input) else { return Outcome::Success };
    let Ok(root) = repository(&txn.root) else { return Outcome::Success };
    let path = stash_path(&root, &txn.txn_id.lossy());
    let Ok(bytes) = std::fs::read(&path) else { return Outcome::Success };
    let result = serde_json::from_slice::<Stashed>(&bytes).map_err(|e| e.to_string()).and_then(|stashed| {
        let spool = Spool::open(&stashed.spool).map_err(|e| e.to_string())?;
        let lock = spool.lock().map_err(|e| e.to_string())?;
        let (number, sequence) = spool.allocate(&lock, &stashed.event.repository.name).map_err(|e| e.to_string())?;
        let mut event = stashed.event;
        event.sequence = Some(sequence);
        spool.write_event(number, &event).map_err(|e| e.to_string())
    });
    match result {
        Ok(()) => {
            let _ = std::fs::remove_file(&path);
            record::spawn_deliverer(hook.env, hook.config_path);
            Outcome::Success
        }
        Err(e) => {
            say(err, &[format!("pushgate: ERROR: cannot write the spool ({e}): the push event is NOT recorded")]);
            Outcome::Rejected
        }
    }
}
