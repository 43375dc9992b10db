//! The Git hooks: read the input, decide, report, record. Hooks never return an error:
//! whatever goes wrong in pre-receive or update rejects the push with one clear line
//! (fail closed).

use crate::Outcome;
use crate::audit;
use crate::chain;
use crate::config::extension::{Extension, Format};
use crate::config::{Config, REPO_FILE};
use crate::event;
use crate::extension::pre;
use crate::git::{GitRepo, Quarantine, Want};
use crate::identity;
use crate::policy::{self, Subject, Verdict};
use crate::push::{self, Change, Push, RefUpdate};
use crate::record;
use crate::whole_push;
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
    pub fn from_env(chain_dir: Option<&Path>) -> Result<Site, String> {
        let cwd = std::env::current_dir().map_err(|e| format!("cannot find the repository: {e}"))?;
        let git_dir = match std::env::var_os("GIT_DIR").filter(|d| !d.is_empty()) {
            Some(dir) => cwd.join(dir),
            None => cwd,
        };
        let git_dir =
            git_dir.canonicalize().map_err(|e| format!("cannot open repository {}: {e}", git_dir.display()))?;
        let quarantine = Quarantine::from_env(
            std::env::var_os("GIT_OBJECT_DIRECTORY"),
            std::env::var_os("GIT_ALTERNATE_OBJECT_DIRECTORIES"),
        )?;
        // An installed hook passes its own directory; anything else falls back to hooks/.
        let hooks_dir = chain_dir.filter(|d| d.is_dir()).map_or_else(|| git_dir.join("hooks"), Path::to_path_buf);
        Ok(Site { git_dir, hooks_dir, quarantine })
    }
}

/// The repository's name: its path under `repos_root` without `.git`, else its directory's
/// name without `.git` (a work tree's `.git` dir is named by the work tree).
pub fn repo_name(git_dir: &Path, repos_root: Option<&Path>) -> String {
    let dir =
        if git_dir.file_name().is_some_and(|n| n == ".git") { git_dir.parent().unwrap_or(git_dir) } else { git_dir };
    let relative = repos_root
        .and_then(|root| root.canonicalize().ok())
        .and_then(|root| dir.strip_prefix(root).ok().map(Path::to_path_buf))
        .filter(|r| !r.as_os_str().is_empty());
    let name = match relative {
        Some(relative) => relative.to_string_lossy().into_owned(),
        None => {
            dir.file_name().map_or_else(|| dir.to_string_lossy().into_owned(), |n| n.to_string_lossy().into_owned())
        }
    };
    name.strip_suffix(".git").map(str::to_string).unwrap_or(name)
}

/// Everything that went into one decision.
struct Decided {
    user: String,
    repo: String,
    push: Push,
    verdict: Verdict,
    audit_file: Option<PathBuf>,
}

pub fn pre_receive(config_path: &Path, chain_dir: Option<&Path>, per_ref: bool) -> Outcome {
    if chain::run_by_ourselves() {
        return Outcome::Success;
    }
    let mut input = Vec::new();
    if let Err(e) = std::io::stdin().read_to_end(&mut input) {
        return reject(&format!("cannot read the hook input: {e}"));
    }
    let updates = match push::parse_updates(&input) {
        Ok(updates) => updates,
        Err(e) => return reject(&format!("malformed hook input: {e}")),
    };
    let site = match Site::from_env(chain_dir) {
        Ok(site) => site,
        Err(e) => return reject(&e),
    };
    if updates.is_empty() {
        return run_chain(&site, "pre-receive", &[], &input);
    }
    if per_ref {
        return match whole_push::record(&site.git_dir, &input) {
            Ok(()) => run_chain(&site, "pre-receive", &[], &input),
            Err(e) => reject(e.as_str()),
        };
    }
    match gate(config_path, &site, &updates, &updates, "pre-receive") {
        Outcome::Success => run_chain(&site, "pre-receive", &[], &input),
        Outcome::Rejected => Outcome::Rejected,
    }
}

pub fn update(config_path: &Path, chain_dir: Option<&Path>, name: &str, old: &str, new: &str) -> Outcome {
    if chain::run_by_ourselves() {
        return Outcome::Success;
    }
    let update = match push::update_from_args(name, old, new) {
        Ok(update) => update,
        Err(e) => return reject(&format!("malformed update hook arguments: {e}")),
    };
    let site = match Site::from_env(chain_dir) {
        Ok(site) => site,
        Err(e) => return reject(&e),
    };
    // Refs this push updated before this one have moved already: the recorded push says
    // what they were, so their old commits stay hidden and the new ones count as new.
    let whole = whole_push::recorded(&site.git_dir).unwrap_or_else(|| vec![update.clone()]);
    match gate(config_path, &site, &[update], &whole, "update") {
        Outcome::Success => run_chain(&site, "update", &[name, old, new], &[]),
        Outcome::Rejected => Outcome::Rejected,
    }
}

/// Record the push for the `post` extensions (spool + detached deliverer), then run the
/// hooks pushgate replaced. Failing to spool is said loudly and exits 1: git shows it, and
/// the push itself has landed.
pub fn post_receive(config_path: &Path, chain_dir: Option<&Path>) -> Outcome {
    if chain::run_by_ourselves() {
        return Outcome::Success;
    }
    let mut input = Vec::new();
    if let Err(e) = std::io::stdin().read_to_end(&mut input) {
        say(&[format!("pushgate: ERROR: cannot read the hook input ({e}): the push event is NOT recorded")]);
        return Outcome::Rejected;
    }
    let site = match Site::from_env(chain_dir) {
        Ok(site) => site,
        Err(e) => {
            say(&[format!("pushgate: ERROR: {e}: the push event is NOT recorded")]);
            return Outcome::Rejected;
        }
    };
    let mut outcome = Outcome::Success;
    match push::parse_updates(&input) {
        Ok(updates) if updates.is_empty() => {}
        Ok(updates) => {
            let env = |name: &str| std::env::var_os(name);
            let landed = record::Landed { git_dir: &site.git_dir, input: &input, updates: &updates, env: &env };
            match record::record(config_path, &landed) {
                Ok(record::Recorded::NotNeeded) | Ok(record::Recorded::Spooled { warning: None }) => {}
                Ok(record::Recorded::Spooled { warning: Some(warning) }) => {
                    say(&[format!(
                        "pushgate: warning: {warning}; the push event is spooled and waits for a valid configuration"
                    )]);
                }
                Err(e) => {
                    say(&[format!("pushgate: ERROR: {e}: the push event is NOT recorded; tell the server's admin")]);
                    outcome = Outcome::Rejected;
                }
            }
        }
        Err(e) => {
            say(&[format!("pushgate: ERROR: malformed hook input ({e}): the push event is NOT recorded")]);
            outcome = Outcome::Rejected;
        }
    }
    if let Err(e) = chain::run(&chain::chained_hooks(&site.hooks_dir, "post-receive"), &[], &input) {
        say(&[format!("pushgate: {e}")]);
    }
    whole_push::forget(&site.git_dir);
    outcome
}

/// Decide `updates`, tell the pusher, record the decision.
fn gate(config_path: &Path, site: &Site, updates: &[RefUpdate], whole: &[RefUpdate], hook: &str) -> Outcome {
    let decided = match decide(config_path, site, updates, whole) {
        Ok(decided) => decided,
        Err(e) => return reject(&e),
    };
    say(&decided.verdict.report(&decided.user));
    let d = &decided;
    if let Err(e) = audit(d.audit_file.as_deref(), hook, &d.user, &d.repo, &d.push, &d.verdict) {
        return reject(&e);
    }
    if decided.verdict.accepted() { Outcome::Success } else { Outcome::Rejected }
}

fn decide(config_path: &Path, site: &Site, updates: &[RefUpdate], whole: &[RefUpdate]) -> Result<Decided, String> {
    let config = Config::load(config_path, Some(&site.git_dir.join(REPO_FILE))).map_err(config_failure)?;
    let user = identity::resolve(&config.identity_env, |name| std::env::var_os(name)).map_err(|e| e.to_string())?;
    let repo = repo_name(&site.git_dir, config.repos_root.as_deref());
    let (push, verdict) = judge_push(&config, site, &user, &repo, updates, whole)?;
    Ok(Decided { user, repo, push, verdict, audit_file: config.audit_file })
}

/// Read the push, apply the rules, and when they accept, ask the `pre` extensions.
pub fn judge_push(
    config: &Config,
    site: &Site,
    user: &str,
    repo: &str,
    updates: &[RefUpdate],
    whole: &[RefUpdate],
) -> Result<(Push, Verdict), String> {
    let refs: Vec<&str> = updates.iter().map(|u| u.name.as_str()).collect();
    let pre = pre::applicable(&config.extensions, repo, &refs);
    let git = GitRepo::open(&site.git_dir, &site.quarantine).map_err(|e| e.to_string())?;
    let push = git.read_push(updates, whole, None, want(config, &pre)).map_err(|e| e.to_string())?;
    // A push to a symbolic ref moves its target: the target's rules apply too.
    let aliases: Vec<Change> = push
        .changes
        .iter()
        // A symbolic ref exists before it is pushed to: creates need no look-up.
        .filter(|c| !c.update.old.is_null())
        .filter_map(|c| git.symref_target(&c.update.name).map(|target| (c, target)))
        .map(|(c, target)| Change { update: RefUpdate { name: target, ..c.update.clone() }, ..c.clone() })
        .collect();
    let mut verdict = if aliases.is_empty() {
        policy::judge(config, Subject { user, repo: Some(repo) }, &push)
    } else {
        let mut judged = push.clone();
        judged.changes.extend(aliases);
        policy::judge(config, Subject { user, repo: Some(repo) }, &judged)
    };
    if verdict.accepted() && !pre.is_empty() {
        let place = Place { path: &site.git_dir, default_branch: git.default_branch(), vcs: "git" };
        let event = event::build(&push, event_context(config, &place, user, repo, "pre"));
        pre::run(&pre, &event, &config.server, &site.git_dir, &|name| std::env::var_os(name), &mut verdict);
    }
    Ok((push, verdict))
}

/// What the decision (and the extensions about to be told) need read from the repository.
pub fn want(config: &Config, extensions: &[&Extension]) -> Want {
    let checks_files = config.checks.iter().any(|c| !c.forbid_paths.is_empty() || c.max_files_changed.is_some());
    Want {
        files: config.smallest_blob_limit().is_some()
            || checks_files
            || config.rules.iter().any(|r| r.paths.is_some())
            || !extensions.is_empty(),
        blob_sizes: config.smallest_blob_limit(),
        heads: extensions.iter().any(|e| e.format == Format::Github),
    }
}

/// Where a push happens, as an event tells it.
pub struct Place<'a> {
    pub path: &'a Path,
    pub default_branch: Option<String>,
    pub vcs: &'static str,
}

/// Everything an event says that does not come from the repository's objects.
pub fn event_context(config: &Config, place: &Place, user: &str, repo: &str, phase: &'static str) -> event::Context {
    event::Context {
        id: event::new_id(),
        time: crate::time::now_rfc3339(),
        phase,
        vcs: place.vcs,
        repository: event::Repository {
            name: repo.to_string(),
            path: place.path.to_string_lossy().into_owned(),
            default_branch: place.default_branch.clone(),
        },
        user: event::User { name: user.to_string(), groups: config.groups.of(user), via: via(|n| std::env::var_os(n)) },
        push_options: event::push_options(|n| std::env::var(n).ok()),
        max_commits: config.max_commits,
    }
}

/// How the pusher reached the server: `PUSHGATE_VIA` when `pushgate shell` set it, else
/// guessed from what sshd and web servers set.
pub fn via(lookup: impl Fn(&str) -> Option<std::ffi::OsString>) -> String {
    if let Some(via) = lookup("PUSHGATE_VIA").and_then(|v| v.into_string().ok())
        && ["ssh", "http", "local"].contains(&via.as_str())
    {
        return via;
    }
    let set = |name: &str| lookup(name).is_some_and(|v| !v.is_empty());
    if set("SSH_CONNECTION") || set("SSH_CLIENT") {
        "ssh".into()
    } else if set("GATEWAY_INTERFACE") || set("REMOTE_ADDR") {
        "http".into()
    } else {
        "local".into()
    }
}

/// One line for the pusher, however many errors the configuration has.
fn config_failure(errors: crate::config::ConfigErrors) -> String {
    let first = &errors.0[0];
    match errors.0.len() {
        1 => format!("configuration error: {first}"),
        n => format!("configuration error: {first} (and {} more: run `pushgate check`)", n - 1),
    }
}

/// Append the decision to the `[audit] file`, when one is configured.
pub fn audit(
    audit_file: Option<&Path>,
    hook: &str,
    user: &str,
    repo: &str,
    push: &Push,
    verdict: &Verdict,
) -> Result<(), String> {
    let Some(file) = audit_file else {
        return Ok(());
    };
    let entry = audit::Entry {
        time: crate::time::now_rfc3339(),
        hook,
        user,
        repo,
        updates: push
            .changes
            .iter()
            .map(|c| audit::Update {
                name: &c.update.name,
                old: c.update.old.to_string(),
                new: c.update.new.to_string(),
                action: c.action.as_str(),
            })
            .collect(),
        verdict: if verdict.accepted() { "accepted" } else { "rejected" },
        reasons: &verdict.rejections,
        warnings: &verdict.warnings,
    };
    audit::append(file, &entry).map_err(|e| format!("cannot write the audit log {}: {e}", file.display()))
}

fn run_chain(site: &Site, name: &str, args: &[&str], input: &[u8]) -> Outcome {
    match chain::run(&chain::chained_hooks(&site.hooks_dir, name), args, input) {
        Ok(()) => Outcome::Success,
        Err(e) => reject(&e),
    }
}

pub fn reject(reason: &str) -> Outcome {
    say(&[format!("pushgate: push rejected: {reason}")]);
    Outcome::Rejected
}

/// Lines for the pusher (git shows hook stderr as `remote: ...`). A closed stderr is not
/// a reason to change the verdict.
pub fn say(lines: &[String]) {
    if lines.is_empty() {
        return;
    }
    let mut text = lines.join("\n");
    text.push('\n');
    let _ = std::io::stderr().lock().write_all(text.as_bytes());
}

/// A panic is a bug; in a hook it still rejects (non-zero exit), with one readable line.
pub fn install_panic_message() {
    std::panic::set_hook(Box::new(|info| {
        let _ = writeln!(std::io::stderr(), "pushgate: internal error (a bug, please report it): {info}");
    }));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repo_names() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().canonicalize().unwrap();
        std::fs::create_dir_all(root.join("team/app.git")).unwrap();
        assert_eq!(repo_name(&root.join("team/app.git"), Some(&root)), "team/app");
        assert_eq!(repo_name(&root.join("team/app.git"), None), "app");
        assert_eq!(repo_name(Path::new("/elsewhere/x.git"), Some(&root)), "x");
        assert_eq!(repo_name(Path::new("/src/work/.git"), None), "work");
    }
}
