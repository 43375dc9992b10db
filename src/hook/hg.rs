//! Mercurial hooks: `pretxnclose` decides (it sees the whole transaction and can veto it),
//! `txnclose` spools the event once the transaction is committed. One push is one decision
//! and one event, like Git: pretxnclose records the push it accepts in the
//! spool as the gate's record. `pretxnclose`, `txnclose` and `prepushkey` are given
//! what pushgate's hg shim gathered inside hg, as JSON on stdin; `outgoing` runs as an
//! external hook with hg's `HG_*` variables.

use super::record::{self, Fetch};
use super::{Decision, Hook, reject, say};
use crate::config::{self, Config, REPO_FILE};
use crate::env::Env;
use crate::gate::{self, Request};
use crate::hg;
use crate::identity::Via;
use crate::outcome::Outcome;
use crate::policy::{self, Subject};
use crate::push::{self, Action, Change, Push, RefUpdate, Vcs};
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
    super::audit(
        config.audit_file.as_deref(),
        &Decision { hook: "pretxnclose", user: &user, via: Via::of(hook.env), repo: &repo },
        &push,
        &verdict,
    )?;
    if !verdict.accepted() {
        return Ok(Outcome::Rejected);
    }
    Ok(super::git::recorded_or_rejected(record::record_push(&request, &push, &root), err))
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
    super::audit(
        config.audit_file.as_deref(),
        &Decision { hook: "prepushkey", user: &user, via: Via::of(hook.env), repo: &repo },
        &push,
        &verdict,
    )?;
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

/// Confirm the record pretxnclose made for this (now committed) transaction.
fn txnclose(hook: &Hook, input: &[u8], err: &mut dyn Write) -> Outcome {
    #[derive(serde::Deserialize)]
    struct Txn {
        root: hg::HgText,
    }
    let Ok(txn) = serde_json::from_slice::<Txn>(input) else { return Outcome::Success };
    let Ok(root) = repository(&txn.root) else { return Outcome::Success };
    if let record::Confirmed::Left(e) = record::confirm(hook, &root, Vcs::Hg, None) {
        say(
            err,
            &[format!(
                "pushgate: warning: cannot confirm the push's event now ({e}); it is recorded and a deliverer will send it"
            )],
        );
    }
    Outcome::Success
}
