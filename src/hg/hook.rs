//! Mercurial hooks: `pretxnclose` decides (it sees the whole transaction and can veto it),
//! `txnclose` spools the event once the transaction is committed. One push is one decision
//! and one event, like Git. The computed event waits between the two in
//! `.hg/pushgate/<transaction>.json`.

use super::HgRepo;
use crate::Outcome;
use crate::config::{Config, REPO_FILE};
use crate::event::{self, Event};
use crate::extension::pre;
use crate::hook::{Place, event_context, reject, repo_name, say};
use crate::policy::{self, Subject};
use crate::spool::Spool;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// What Mercurial tells a hook, from its `HG_*` variables.
pub struct HgEnv {
    pub root: PathBuf,
    pub txn_name: String,
    pub txn_id: String,
    pub pending: Option<OsString>,
    pub node: Option<String>,
    pub node_last: Option<String>,
}

impl HgEnv {
    pub fn from_env() -> Result<HgEnv, String> {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        Ok(HgEnv {
            root: hook_root()?,
            txn_name: var("HG_TXNNAME").unwrap_or_default(),
            txn_id: var("HG_TXNID").unwrap_or_default(),
            pending: std::env::var_os("HG_PENDING"),
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

pub fn pretxnclose(config_path: &Path) -> Outcome {
    let env = match HgEnv::from_env() {
        Ok(env) => env,
        Err(e) => return reject(&e),
    };
    if !env.is_push() {
        return Outcome::Success;
    }
    match decide(config_path, &env) {
        Ok(outcome) => outcome,
        Err(e) => reject(&e),
    }
}

/// A hook's working directory: the repository's root.
fn hook_root() -> Result<PathBuf, String> {
    std::env::current_dir().and_then(|d| d.canonicalize()).map_err(|e| format!("cannot find the repository: {e}"))
}

/// The configuration as the repository at `root` sees it, the pusher, the repository's name.
fn caller(config_path: &Path, root: &Path) -> Result<(Config, String, String), String> {
    let config = Config::load(config_path, Some(&root.join(".hg").join(REPO_FILE)))
        .map_err(|e| format!("configuration error: {}", e.0[0]))?;
    let user = crate::identity::resolve(&config.identity_env, |n| std::env::var_os(n)).map_err(|e| e.to_string())?;
    let repo = repo_name(root, config.repos_root.as_deref());
    Ok((config, user, repo))
}

fn decide(config_path: &Path, env: &HgEnv) -> Result<Outcome, String> {
    let (config, user, repo) = caller(config_path, &env.root)?;
    let hg = HgRepo::new(&env.root, env.pending.clone());
    let added = env.node.as_deref().zip(env.node_last.as_deref());
    let push = hg.read_push(added, config.smallest_blob_limit())?;
    if push.changes.is_empty() {
        // Fail closed: changesets that no branch, bookmark or tag accounts for are not
        // judged, so they do not land.
        if added.is_some() {
            return Err("the pushed changesets change no branch, bookmark or tag pushgate can judge".into());
        }
        return Ok(Outcome::Success);
    }
    let mut verdict = policy::judge(&config, Subject { user: &user, repo: Some(&repo) }, &push);
    let refs: Vec<&str> = push.changes.iter().map(|c| c.update.name.as_str()).collect();
    let pres = pre::applicable(&config.extensions, &repo, &refs);
    let place = Place { path: &env.root, default_branch: Some("default".into()), vcs: "hg" };
    if verdict.accepted() && !pres.is_empty() {
        let event = event::build(&push, event_context(&config, &place, &user, &repo, "pre"));
        pre::run(&pres, &event, &config.server, &env.root, &|n| std::env::var_os(n), &mut verdict);
    }
    say(&verdict.report(&user));
    crate::hook::audit(config.audit_file.as_deref(), "pretxnclose", &user, &repo, &push, &verdict)?;
    if !verdict.accepted() {
        return Ok(Outcome::Rejected);
    }
    if crate::record::wants_pushes(&config, &repo, &refs) {
        let event = event::build(&push, event_context(&config, &place, &user, &repo, "post"));
        stash(&env.stash(), &event, &config.spool.dir)?;
    }
    Ok(Outcome::Success)
}

/// What txnclose needs: the event and where to spool it.
#[derive(serde::Serialize, serde::Deserialize)]
struct Stashed {
    spool: PathBuf,
    event: Event,
}

fn stash(path: &Path, event: &Event, spool: &Path) -> Result<(), String> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot write {}: {e}", dir.display()))?;
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
pub fn prepushkey(config_path: &Path) -> Outcome {
    let var = |name: &str| std::env::var(name).unwrap_or_default();
    if var("HG_NAMESPACE") != "bookmarks" || std::env::var_os("HG_BUNDLE2").is_some() {
        return Outcome::Success;
    }
    match decide_pushkey(config_path, &var("HG_KEY"), &var("HG_OLD"), &var("HG_NEW")) {
        Ok(outcome) => outcome,
        Err(e) => reject(&e),
    }
}

fn decide_pushkey(config_path: &Path, key: &str, old: &str, new: &str) -> Result<Outcome, String> {
    let root = hook_root()?;
    let (config, user, repo) = caller(config_path, &root)?;
    let name = format!("refs/bookmarks/{key}");
    crate::push::check_ref_name(&name).map_err(|e| format!("bookmark {}: {e}", crate::push::shown(key)))?;
    let id = |hex: &str| -> Result<gix::ObjectId, String> {
        if hex.is_empty() {
            return Ok(gix::ObjectId::null(gix::hash::Kind::Sha1));
        }
        crate::push::parse_id(hex.as_bytes())
    };
    let update = crate::push::RefUpdate { old: id(old)?, new: id(new)?, name };
    let action = match update.obvious_action() {
        Some(action) => action,
        None => {
            let hg = HgRepo::new(&root, None);
            let forward = hg.ancestors_among(&[(old.to_string(), new.to_string())])?.contains(old);
            if forward { crate::push::Action::Update } else { crate::push::Action::Force }
        }
    };
    let push = crate::push::Push {
        changes: vec![crate::push::Change { update, action, commits: vec![], head: None, non_commit: None }],
    };
    let verdict = policy::judge(&config, Subject { user: &user, repo: Some(&repo) }, &push);
    say(&verdict.report(&user));
    crate::hook::audit(config.audit_file.as_deref(), "prepushkey", &user, &repo, &push, &verdict)?;
    Ok(if verdict.accepted() { Outcome::Success } else { Outcome::Rejected })
}

/// `outgoing`: changesets left the repository. For a pull or clone (over `hg serve` or
/// from a local path) by a known user, extensions with `events = ["push", "pull"]` are told.
pub fn outgoing(config_path: &Path) -> Outcome {
    let source = std::env::var("HG_SOURCE").unwrap_or_default();
    if !["serve", "pull"].contains(&source.as_str()) {
        return Outcome::Success;
    }
    // A pull is never refused for want of a configuration or identity: it is only told.
    let Ok(root) = hook_root() else { return Outcome::Success };
    let Ok((config, user, repo)) = caller(config_path, &root) else { return Outcome::Success };
    if crate::record::wants_pulls(&config, &repo) {
        let via = crate::hook::via(|n| std::env::var_os(n));
        if let Err(e) = crate::record::record_pull(config_path, &config, "hg", &root, &repo, &user, &via) {
            say(&[format!("pushgate: warning: the pull event is not recorded: {e}")]);
        }
    }
    Outcome::Success
}

/// Spool the event pretxnclose computed for this (now committed) transaction.
pub fn txnclose(config_path: &Path) -> Outcome {
    let Ok(env) = HgEnv::from_env() else { return Outcome::Success };
    if !env.is_push() {
        return Outcome::Success;
    }
    let path = env.stash();
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
            crate::record::spawn_deliverer(config_path);
            Outcome::Success
        }
        Err(e) => {
            say(&[format!("pushgate: ERROR: cannot write the spool ({e}): the push event is NOT recorded")]);
            Outcome::Rejected
        }
    }
}
