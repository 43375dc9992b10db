//! Mercurial hooks: `pretxnclose` decides (it sees the whole transaction and can veto it),
//! `txnclose` spools the event once the transaction is committed. One push is one decision
//! and one event, like Git. The computed event waits between the two in
//! `.hg/pushgate/<transaction>.json`.

use super::record::{self, Fetch};
use super::{Hook, reject, say};
use crate::config::extension::Phase;
use crate::config::{self, Config, REPO_FILE};
use crate::env::Env;
use crate::event::PushEvent;
use crate::gate::{self, Request};
use crate::hg::HgRepo;
use crate::identity::Via;
use crate::outcome::Outcome;
use crate::policy::{self, Subject};
use crate::push::{self, Action, Change, Push, RefUpdate, Vcs};
use crate::spool::Spool;
use std::ffi::OsString;
use std::io::Write;
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

/// Run one of the Mercurial hooks.
pub fn run(hook: &Hook, which: HgHook, err: &mut dyn Write) -> Outcome {
    match which {
        HgHook::Pretxnclose => pretxnclose(hook, err),
        HgHook::Txnclose => txnclose(hook, err),
        HgHook::Outgoing => outgoing(hook, err),
        HgHook::Prepushkey => prepushkey(hook, err),
    }
}

/// What Mercurial tells a hook, from its `HG_*` variables.
struct HgEnv {
    root: PathBuf,
    txn_name: String,
    txn_id: String,
    pending: Option<OsString>,
    node: Option<String>,
    node_last: Option<String>,
}

impl HgEnv {
    fn from_env(env: &Env) -> Result<HgEnv, String> {
        let var = |name: &str| env.var(name).map(str::to_string);
        Ok(HgEnv {
            root: hook_root(env)?,
            txn_name: var("HG_TXNNAME").unwrap_or_default(),
            txn_id: var("HG_TXNID").unwrap_or_default(),
            pending: env.var_os("HG_PENDING").map(Into::into),
            node: var("HG_NODE"),
            node_last: var("HG_NODE_LAST").or_else(|| var("HG_NODE")),
        })
    }

    /// Pushes arrive as `push` (a local `hg push`) or `serve` (over ssh or http);
    /// transactions of commits made on the server itself are not pushes.
    fn is_push(&self) -> bool {
        let source = self.txn_name.lines().next().unwrap_or("");
        ["push", "serve", "unbundle"].contains(&source)
    }

    fn stash(&self) -> PathBuf {
        let safe: String = self.txn_id.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '_' }).collect();
        self.root.join(".hg").join("pushgate").join(format!("{safe}.json"))
    }
}

fn pretxnclose(hook: &Hook, err: &mut dyn Write) -> Outcome {
    let hg_env = match HgEnv::from_env(hook.env) {
        Ok(hg_env) => hg_env,
        Err(e) => return reject(err, &e),
    };
    if !hg_env.is_push() {
        return Outcome::Success;
    }
    match decide(hook, &hg_env, err) {
        Ok(outcome) => outcome,
        Err(e) => reject(err, &e),
    }
}

/// A hook's working directory: the repository's root.
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

fn decide(hook: &Hook, hg_env: &HgEnv, err: &mut dyn Write) -> Result<Outcome, String> {
    let (config, user, repo) = caller(hook, &hg_env.root)?;
    let hg = HgRepo::new(&hg_env.root, hg_env.pending.clone());
    let added = hg_env.node.as_deref().zip(hg_env.node_last.as_deref());
    let push = hg.read_push(added, config.smallest_blob_limit())?;
    if push.changes.is_empty() {
        // Fail closed: changesets that no branch, bookmark or tag accounts for are not
        // judged, so they do not land.
        if added.is_some() {
            return Err("the pushed changesets change no branch, bookmark or tag pushgate can judge".into());
        }
        return Ok(Outcome::Success);
    }
    let request =
        Request { config: &config, user: &user, repo: &repo, path: &hg_env.root, vcs: Vcs::Hg, env: hook.env };
    let verdict = gate::decide(&request, &push);
    say(err, &verdict.report(&user));
    super::audit(config.audit_file.as_deref(), "pretxnclose", &user, &repo, &push, &verdict)?;
    if !verdict.accepted() {
        return Ok(Outcome::Rejected);
    }
    let refs: Vec<&str> = push.changes.iter().map(|c| c.update.name.as_str()).collect();
    if record::wants_pushes(&config, &repo, &refs) {
        stash(&hg_env.stash(), &request.event(&push, Phase::Post), &config.spool.dir)?;
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

/// `prepushkey`: a bookmark set through the legacy pushkey command, outside any push
/// transaction (`hg push` over bundle1). Bundle2 pushes carry their bookmarks in the
/// transaction pretxnclose judges, so only the legacy path is decided here.
fn prepushkey(hook: &Hook, err: &mut dyn Write) -> Outcome {
    let var = |name: &str| hook.env.var(name).unwrap_or_default();
    if var("HG_NAMESPACE") != "bookmarks" || hook.env.var_os("HG_BUNDLE2").is_some() {
        return Outcome::Success;
    }
    match decide_pushkey(hook, var("HG_KEY"), var("HG_OLD"), var("HG_NEW"), err) {
        Ok(outcome) => outcome,
        Err(e) => reject(err, &e),
    }
}

fn decide_pushkey(hook: &Hook, key: &str, old: &str, new: &str, err: &mut dyn Write) -> Result<Outcome, String> {
    let root = hook_root(hook.env)?;
    let (config, user, repo) = caller(hook, &root)?;
    let name = format!("refs/bookmarks/{key}");
    push::check_ref_name(&name).map_err(|e| format!("bookmark {}: {e}", crate::text::shown(key)))?;
    let id = |hex: &str| -> Result<gix::ObjectId, String> {
        if hex.is_empty() {
            return Ok(gix::ObjectId::null(gix::hash::Kind::Sha1));
        }
        push::parse_id(hex.as_bytes())
    };
    let update = RefUpdate { old: id(old)?, new: id(new)?, name };
    let action = match update.obvious_action() {
        Some(action) => action,
        None => {
            let hg = HgRepo::new(&root, None);
            let forward = hg.ancestors_among(&[(old.to_string(), new.to_string())])?.contains(old);
            if forward { Action::Update } else { Action::Force }
        }
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

/// Spool the event pretxnclose computed for this (now committed) transaction.
fn txnclose(hook: &Hook, err: &mut dyn Write) -> Outcome {
    let Ok(hg_env) = HgEnv::from_env(hook.env) else { return Outcome::Success };
    if !hg_env.is_push() {
        return Outcome::Success;
    }
    let path = hg_env.stash();
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
