//! The Git hooks: `pre-receive` (the whole push), `update` (one ref, `install --per-ref`)
//! and `post-receive` (record the event, start delivery).

use super::record::{self, Confirmed, Recorded};
use super::{Decision, Hook, chain, reject, say, whole_push};
use crate::config::{self, Config, REPO_FILE};
use crate::env::Env;
use crate::gate::{self, Request};
use crate::git::{GitRepo, Quarantine};
use crate::identity::Via;
use crate::outcome::Outcome;
use crate::push::{self, RefUpdate, Vcs};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

/// Where a hook runs: the repository and the hooks directory it was started from.
pub struct Site {
    pub git_dir: PathBuf,
    pub hooks_dir: PathBuf,
    pub quarantine: Quarantine,
}

impl Site {
    /// From git's hook environment: cwd is the git dir, `GIT_DIR` may say so explicitly.
    pub fn from_env(env: &Env, chain_dir: Option<&Path>) -> Result<Site, String> {
        let cwd = env.cwd().map_err(|e| format!("cannot find the repository: {e}"))?;
        let git_dir = match env.var_os("GIT_DIR").filter(|d| !d.is_empty()) {
            Some(dir) => cwd.join(dir),
            None => cwd.to_path_buf(),
        };
        let git_dir =
            git_dir.canonicalize().map_err(|e| format!("cannot open repository {}: {e}", git_dir.display()))?;
        let quarantine = Quarantine::from_env(
            env.var_os("GIT_OBJECT_DIRECTORY").map(Into::into),
            env.var_os("GIT_ALTERNATE_OBJECT_DIRECTORIES").map(Into::into),
        )?;
        // An installed hook passes its own directory; anything else falls back to hooks/.
        let hooks_dir = chain_dir.filter(|d| d.is_dir()).map_or_else(|| git_dir.join("hooks"), Path::to_path_buf);
        Ok(Site { git_dir, hooks_dir, quarantine })
    }
}

/// `pre-receive`: decide the whole push (or, `--per-ref`, only record it for the update
/// hooks), then run the hooks pushgate replaced.
pub fn pre_receive(hook: &Hook, per_ref: bool, stdin: &mut dyn Read, err: &mut dyn Write) -> Outcome {
    if chain::run_by_ourselves(hook.env) {
        return Outcome::Success;
    }
    let mut input = Vec::new();
    if let Err(e) = stdin.read_to_end(&mut input) {
        return reject(err, &format!("cannot read the hook input: {e}"));
    }
    let updates = match push::parse_updates(&input) {
        Ok(updates) => updates,
        Err(e) => return reject(err, &format!("malformed hook input: {e}")),
    };
    let site = match Site::from_env(hook.env, hook.chain_dir) {
        Ok(site) => site,
        Err(e) => return reject(err, &e),
    };
    if updates.is_empty() {
        return run_chain(&site, "pre-receive", &[], &input, err);
    }
    if per_ref {
        if let Err(e) = whole_push::record(&site.git_dir, &input) {
            return reject(err, e.as_str());
        }
        return match pushed_pack(hook, &site, &updates, err) {
            Outcome::Success => run_chain(&site, "pre-receive", &[], &input, err),
            Outcome::Rejected => Outcome::Rejected,
        };
    }
    let chain = |err: &mut dyn Write| run_chain(&site, "pre-receive", &[], &input, err);
    gate(hook, &site, &updates, &updates, Gate::PreReceive, err, &chain)
}

/// `update <ref> <old> <new>`: decide one ref of the push (`install --per-ref`).
pub fn update(hook: &Hook, name: &str, old: &str, new: &str, err: &mut dyn Write) -> Outcome {
    if chain::run_by_ourselves(hook.env) {
        return Outcome::Success;
    }
    let update = match push::update_from_args(name, old, new) {
        Ok(update) => update,
        Err(e) => return reject(err, &format!("malformed update hook arguments: {e}")),
    };
    let site = match Site::from_env(hook.env, hook.chain_dir) {
        Ok(site) => site,
        Err(e) => return reject(err, &e),
    };
    // Refs this push updated before this one have moved already: the recorded push says
    // what they were, so their old commits stay hidden and the new ones count as new.
    let whole = whole_push::recorded(&site.git_dir).unwrap_or_else(|| vec![update.clone()]);
    let chain = |err: &mut dyn Write| run_chain(&site, "update", &[name, old, new], &[], err);
    gate(hook, &site, &[update], &whole, Gate::Update, err, &chain)
}

/// `post-receive`: confirm the push's record with the refs that moved (the gate recorded
/// it: nothing is read again), wake or start a deliverer, then run the hooks pushgate
/// replaced. The event cannot be lost here: a record left unconfirmed is finished by a
/// deliverer.
pub fn post_receive(hook: &Hook, stdin: &mut dyn Read, err: &mut dyn Write) -> Outcome {
    if chain::run_by_ourselves(hook.env) {
        return Outcome::Success;
    }
    let mut input = Vec::new();
    if let Err(e) = stdin.read_to_end(&mut input) {
        say(
            err,
            &[format!("pushgate: warning: cannot read the hook input ({e}); the push's event waits for a deliverer")],
        );
    }
    let site = match Site::from_env(hook.env, hook.chain_dir) {
        Ok(site) => site,
        Err(e) => {
            say(err, &[format!("pushgate: warning: {e}; the push's event waits for a deliverer")]);
            return Outcome::Success;
        }
    };
    match push::parse_updates(&input) {
        Ok(updates) => {
            let landed: Vec<&str> = updates.iter().map(|u| u.name.as_str()).collect();
            if let Confirmed::Left(e) = record::confirm(hook, &site.git_dir, Vcs::Git, Some(&landed)) {
                say(
                    err,
                    &[format!(
                        "pushgate: warning: cannot confirm the push's event now ({e}); it is recorded and a deliverer \
                         will send it"
                    )],
                );
            }
        }
        Err(e) => say(
            err,
            &[format!("pushgate: warning: malformed hook input ({e}); the push's event waits for a deliverer")],
        ),
    }
    if let Err(e) = chain::run(&chain::chained_hooks(&site.hooks_dir, "post-receive"), &[], &input) {
        say(err, &[format!("pushgate: {e}")]);
    }
    whole_push::forget(&site.git_dir);
    Outcome::Success
}

/// Which hook is the gate.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Gate {
    PreReceive,
    /// `install --per-ref`: one ref of the push.
    Update,
}

/// Decide `updates` (of the whole push `whole`), tell the pusher, audit the decision; when
/// accepted, run the chained hooks, then record the push for the `post` extensions.
fn gate(
    hook: &Hook,
    site: &Site,
    updates: &[RefUpdate],
    whole: &[RefUpdate],
    which: Gate,
    err: &mut dyn Write,
    chain: &dyn Fn(&mut dyn Write) -> Outcome,
) -> Outcome {
    let name = match which {
        Gate::PreReceive => "pre-receive",
        Gate::Update => "update",
    };
    let config = match Config::load(hook.config_path, Some(&site.git_dir.join(REPO_FILE))) {
        Ok(config) => config,
        Err(e) => return reject(err, &e.one_line()),
    };
    let user = match config.user(hook.env) {
        Ok(user) => user,
        Err(e) => return reject(err, &e.to_string()),
    };
    let repo = config::repo_name(&site.git_dir, config.repos_root.as_deref());
    let request =
        Request { config: &config, user: &user, repo: &repo, path: &site.git_dir, vcs: Vcs::Git, env: hook.env };
    let (push, verdict) = match decide(&request, &site.quarantine, updates, whole) {
        Ok(decided) => decided,
        Err(e) => return reject(err, &e),
    };
    say(err, &verdict.report(&user));
    if let Err(e) = super::audit(
        config.audit_file.as_deref(),
        &Decision { hook: name, user: &user, via: Via::of(hook.env), repo: &repo },
        &push,
        &verdict,
    ) {
        return reject(err, &e);
    }
    if !verdict.accepted() || chain(err) == Outcome::Rejected {
        return Outcome::Rejected;
    }
    let recorded = match which {
        Gate::PreReceive => record::record_push(&request, &push, &site.git_dir),
        Gate::Update => record::record_change(&request, &push, &site.git_dir),
    };
    recorded_or_rejected(recorded, err)
}

/// What the pusher is told of recording: nothing when it worked; a rejection when the spool
/// cannot take the record (`on_full = "reject"`); a loud warning when the push lands
/// anyway (`on_full = "accept"`).
pub(super) fn recorded_or_rejected(recorded: Result<Recorded, String>, err: &mut dyn Write) -> Outcome {
    match recorded {
        Ok(Recorded::NotNeeded | Recorded::Recorded) => Outcome::Success,
        Ok(Recorded::Unrecorded(why)) => {
            say(err, &[format!("pushgate: WARNING: {why}: the push lands, but its event is NOT recorded")]);
            Outcome::Success
        }
        Err(why) => reject(err, &format!("{why}; refused so that its event is not lost ([spool] on_full)")),
    }
}

/// `install --per-ref`: the update hooks judge each ref, but only pre-receive sees the
/// pushed pack; its blobs that no commit writes are judged by `[limits]` here.
fn pushed_pack(hook: &Hook, site: &Site, updates: &[RefUpdate], err: &mut dyn Write) -> Outcome {
    let config = match Config::load(hook.config_path, Some(&site.git_dir.join(REPO_FILE))) {
        Ok(config) => config,
        Err(e) => return reject(err, &e.one_line()),
    };
    let Some(limit) = config.max_blob_size.as_ref().map(|s| s.bytes) else { return Outcome::Success };
    let want = crate::git::Want { files: true, pack_limit: Some(limit), ..Default::default() };
    let read = GitRepo::open(&site.git_dir, &site.quarantine)
        .and_then(|git| git.read_push(updates, updates, None, want))
        .map_err(|e| e.to_string());
    let push = match read {
        Ok(push) => push,
        Err(e) => return reject(err, &e),
    };
    let mut verdict = crate::policy::Verdict::default();
    crate::policy::judge_pushed_blobs(&config, &push, &mut verdict);
    let user = config.user(hook.env).unwrap_or_default();
    say(err, &verdict.report(&user));
    if verdict.accepted() { Outcome::Success } else { Outcome::Rejected }
}

/// Read the push from the repository (quarantined objects included) and decide it.
pub fn decide(
    request: &Request,
    quarantine: &Quarantine,
    updates: &[RefUpdate],
    whole: &[RefUpdate],
) -> Result<(push::Push, crate::policy::Verdict), String> {
    let refs: Vec<&str> = updates.iter().map(|u| u.name.as_str()).collect();
    let git = GitRepo::open(request.path, quarantine).map_err(|e| e.to_string())?;
    let push = git.read_push(updates, whole, None, request.want(&refs)).map_err(|e| e.to_string())?;
    let verdict = gate::decide(request, &push);
    Ok((push, verdict))
}

fn run_chain(site: &Site, name: &str, args: &[&str], input: &[u8], err: &mut dyn Write) -> Outcome {
    match chain::run(&chain::chained_hooks(&site.hooks_dir, name), args, input) {
        Ok(()) => Outcome::Success,
        Err(e) => reject(err, &e),
    }
}
