//! `pushgate shell`'s repository commands: `create [--hg] <repo>` (a bare Git repository,
//! or a Mercurial one, under `repos_root`, with pushgate's hooks), `delete <repo>`, and
//! `info` (what the user may do where: [`super::info`]). Creating and deleting are decided by the rules
//! (`repo-create`, `repo-delete`), then by the `pre` extensions that hear of repositories;
//! the `post` ones are told through the spool, durably and in order, like pushes.
//!
//! A repository is made beside its place under a name the shell never serves
//! ([`WORK_PREFIX`]), hooks and all, then renamed into place: no one can push to it before
//! its hooks are there. A deleted one is renamed out of the way first, then removed.

use crate::config::Config;
use crate::config::extension::{About, Extension, Phase, wanting};
use crate::env::Env;
use crate::event::{EventKind, Lifecycle, LifecycleRepository, RepositoryEvent, User};
use crate::extension::{body, pre};
use crate::hook::record::{self, RepositoryRecorded};
use crate::hook::{self, Decision};
use crate::identity::Via;
use crate::outcome::{Error, Outcome};
use crate::policy::{self, Subject, Verdict, rule_label};
use crate::push::{Op, Push, Vcs};
use crate::repository::{self, MAX_DEPTH, WORK_PREFIX, own_config, resolve};
use crate::text::shown;
use std::ffi::OsStr;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command as Process, Stdio};

/// The longest segment of a new repository's name.
const MAX_SEGMENT: usize = 100;

/// A repository command, as the client asked it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// `create <repo>` (Git) or `create --hg <repo>`.
    Create {
        name: String,
        vcs: Vcs,
    },
    Delete {
        name: String,
    },
    Info {
        json: bool,
    },
}

/// Who asks, and what the shell knows: the configuration's path, its environment, what of
/// it git and hg may see, and the root of the repositories (canonical or not).
pub struct Asker<'a> {
    pub config_path: &'a Path,
    pub env: &'a Env,
    /// The variables of `env` git, hg and `pushgate install` are given: the server's own.
    pub passed: &'a [(&'a OsStr, &'a OsStr)],
    /// As the configuration compares it (`fold_case`).
    pub user: &'a str,
    pub root: &'a Path,
}

/// Run a repository command; a refusal is one line on `err` and exit 1.
pub fn run(
    asker: &Asker,
    config: &Config,
    command: &Command,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<Outcome, Error> {
    let root = match asker.root.canonicalize() {
        Ok(root) => root,
        Err(e) => return refuse(err, &format!("repos_root {}: {e}", asker.root.display())),
    };
    let asker = Asker { root: &root, ..*asker };
    match command {
        Command::Create { name, vcs } => create(&asker, config, name, *vcs, out, err),
        Command::Delete { name } => delete(&asker, name, out, err),
        Command::Info { json } => super::info::run(&asker, config, *json, out),
    }
}

fn refuse(err: &mut dyn Write, why: &str) -> Result<Outcome, Error> {
    let _ = writeln!(err, "pushgate: {}", crate::text::one_line(why, None));
    Ok(Outcome::Rejected)
}

/// `create [--hg] <repo>`.
fn create(
    asker: &Asker,
    config: &Config,
    asked: &str,
    vcs: Vcs,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<Outcome, Error> {
    let (root, user) = (asker.root, asker.user);
    let name = match new_name(root, asked, vcs) {
        Ok(name) => name,
        Err(why) => return refuse(err, &format!("{}: {why}", shown(asked))),
    };
    let dir = dir_of(root, &name, vcs);
    let target = Target { name: &name, dir: &dir, vcs, action: Lifecycle::Created };
    // Whether the name is taken is told only to those who may create it.
    let free = || place(root, &name, vcs).map_err(|why| format!("{}: {why}", shown(&name)));
    if let Some(outcome) = decide(asker, config, &target, &free, err)? {
        return Ok(outcome);
    }
    let recording = match record::record_repository(config, target.event(config, user, Phase::Post)) {
        Ok(recorded) => recorded,
        Err(why) => return refuse(err, &format!("{name} is not created: {why}")),
    };
    warn_unrecorded(&recording, err);
    let built = build(asker, &target);
    if let RepositoryRecorded::Recorded(recording) = recording {
        recording.settle(built.is_ok(), asker.env, asker.config_path);
    }
    match built {
        Ok(warnings) => {
            for warning in warnings {
                let _ = writeln!(err, "pushgate: warning: {warning}");
            }
            writeln!(out, "created {name} ({})", vcs_name(vcs))?;
            Ok(Outcome::Success)
        }
        Err(why) => refuse(err, &format!("{name} is not created: {why}")),
    }
}

/// `delete <repo>`: the repository's own rules come first, as for pushes.
fn delete(asker: &Asker, asked: &str, out: &mut dyn Write, err: &mut dyn Write) -> Result<Outcome, Error> {
    let root = asker.root;
    let found = resolve(root, asked, Vcs::Git).map(|(dir, name)| (dir, name, Vcs::Git)).or_else(|git| {
        resolve(root, asked, Vcs::Hg).map(|(dir, name)| (dir, name, Vcs::Hg)).map_err(|_| git.replace(" Git", ""))
    });
    let (dir, name, vcs) = match found {
        Ok(found) => found,
        Err(why) => return refuse(err, &why),
    };
    let config_path = asker.config_path;
    let config = match Config::load(config_path, Some(&own_config(&dir, vcs))) {
        Ok(config) => config,
        Err(e) => return refuse(err, &format!("configuration error: {}", e.0[0])),
    };
    let target = Target { name: &name, dir: &dir, vcs, action: Lifecycle::Deleted };
    if let Some(outcome) = decide(asker, &config, &target, &|| Ok(()), err)? {
        return Ok(outcome);
    }
    let recording = match record::record_repository(&config, target.event(&config, asker.user, Phase::Post)) {
        Ok(recorded) => recorded,
        Err(why) => return refuse(err, &format!("{name} is not deleted: {why}")),
    };
    warn_unrecorded(&recording, err);
    // Out of the way first, in one step: from here on it is not served.
    let aside = work_path(&dir, "deleted");
    let moved = std::fs::rename(&dir, &aside).map_err(|e| format!("cannot move {}: {e}", dir.display()));
    if let RepositoryRecorded::Recorded(recording) = recording {
        recording.settle(moved.is_ok(), asker.env, config_path);
    }
    if let Err(why) = moved {
        return refuse(err, &format!("{name} is not deleted: {why}"));
    }
    if let Err(e) = std::fs::remove_dir_all(&aside) {
        let _ = writeln!(
            err,
            "pushgate: warning: {name} is deleted, but not all of {} could be removed: {e}",
            aside.display()
        );
    }
    writeln!(out, "deleted {name} ({})", vcs_name(vcs))?;
    Ok(Outcome::Success)
}

/// A repository to create or delete.
struct Target<'a> {
    name: &'a str,
    /// Where it goes, or is.
    dir: &'a Path,
    vcs: Vcs,
    action: Lifecycle,
}

impl Target<'_> {
    fn op(&self) -> Op {
        match self.action {
            Lifecycle::Created => Op::RepoCreate,
            Lifecycle::Deleted => Op::RepoDelete,
        }
    }

    /// `create`, `delete`: as the audit log and the messages say it.
    fn verb(&self) -> &'static str {
        match self.action {
            Lifecycle::Created => "create",
            Lifecycle::Deleted => "delete",
        }
    }

    fn event(&self, config: &Config, user: &str, phase: Phase) -> RepositoryEvent {
        RepositoryEvent {
            schema: crate::event::REPOSITORY_SCHEMA.into(),
            id: crate::ids::new_id(),
            sequence: None,
            time: crate::time::now_rfc3339(),
            phase,
            action: self.action,
            repository: LifecycleRepository {
                name: self.name.to_string(),
                path: self.dir.to_string_lossy().into_owned(),
                vcs: self.vcs,
            },
            user: User { name: user.to_string(), groups: config.groups.of(user), via: Via::Ssh },
        }
    }
}

/// The rules, then `possible` (whether it can be done at all), then the `pre` extensions;
/// the decision goes to the audit log. `Some` when it is refused (what to end with).
fn decide(
    asker: &Asker,
    config: &Config,
    target: &Target,
    possible: &dyn Fn() -> Result<(), String>,
    err: &mut dyn Write,
) -> Result<Option<Outcome>, Error> {
    let (user, name) = (asker.user, target.name);
    let op = target.op();
    let decision = policy::decide_repository(config, Subject { user, repo: Some(name) }, op);
    let mut verdict = Verdict::default();
    for rule in &decision.warnings {
        verdict.warnings.push(format!("{user} may not {} {name} {}", target.verb(), rule_label(rule)));
    }
    if !decision.allowed {
        let why = decision.rule.map_or_else(|| "(no rule allows it)".to_string(), rule_label);
        verdict.rejections.push(format!("{user} may not {} {name} {why}", target.verb()));
    } else if let Err(why) = possible() {
        return refuse(err, &why).map(Some);
    } else {
        ask_extensions(asker, config, target, &mut verdict);
    }
    let audited = hook::audit(
        config.audit_file.as_deref(),
        &Decision { hook: target.verb(), user, via: Via::Ssh, repo: name },
        &Push::default(),
        &verdict,
    );
    for warning in &verdict.warnings {
        let _ = writeln!(err, "pushgate: warning: {}", crate::text::one_line(warning, None));
    }
    if let Err(e) = audited {
        return refuse(err, &format!("{name} is not {}d: {e}", target.verb())).map(Some);
    }
    match verdict.rejections.as_slice() {
        [] => Ok(None),
        [only] if !decision.allowed => refuse(err, only).map(Some),
        vetoes => {
            for veto in vetoes {
                let _ =
                    writeln!(err, "pushgate: {name} is not {}d: {}", target.verb(), crate::text::one_line(veto, None));
            }
            Ok(Some(Outcome::Rejected))
        }
    }
}

/// The `pre` extensions that hear of repositories, asked in parallel; their vetoes and
/// warnings go to `verdict`.
fn ask_extensions(asker: &Asker, config: &Config, target: &Target, verdict: &mut Verdict) {
    let about = About::Repository { repo: target.name };
    let extensions: Vec<&Extension> = wanting(&config.extensions, Phase::Pre, about).collect();
    if extensions.is_empty() {
        return;
    }
    let event = target.event(config, asker.user, Phase::Pre);
    let what = match target.action {
        Lifecycle::Created => "the creation",
        Lifecycle::Deleted => "the deletion",
    };
    let question = pre::Question {
        kind: EventKind::Repository,
        user: asker.user,
        repo: target.name,
        event_id: &event.id,
        what,
        cwd: asker.root,
        instance: &config.server.base_url,
    };
    let bodies = |_: &Extension| body::as_is(&event).map(|body| vec![body]);
    pre::run(&extensions, &question, &bodies, asker.env, verdict);
}

fn warn_unrecorded(recorded: &RepositoryRecorded, err: &mut dyn Write) {
    if let RepositoryRecorded::Unrecorded(why) = recorded {
        let _ = writeln!(err, "pushgate: warning: going ahead, but its event is NOT recorded ({why})");
    }
}

pub(super) fn vcs_name(vcs: Vcs) -> &'static str {
    match vcs {
        Vcs::Git => "git",
        Vcs::Hg => "hg",
    }
}

/// The name a new repository gets from what the client asked, as the shell names
/// repositories: `users/alice/notes`, `users/alice/notes.git`, `/users/alice/notes.git`
/// (what `ssh://host/users/alice/notes.git` sends) or an absolute path inside `root`. Each
/// segment is 1-100 characters of `[A-Za-z0-9._@+-]` beginning with a letter or a digit, at
/// most [`MAX_DEPTH`] of them; a Git repository's name may end in `.git` (its directory
/// does; its name does not), a Mercurial one's may not. Pure: nothing is looked at on disk.
pub fn new_name(root: &Path, asked: &str, vcs: Vcs) -> Result<String, String> {
    let inside = Path::new(asked).strip_prefix(root).ok().and_then(Path::to_str);
    let relative = inside.unwrap_or_else(|| asked.trim_start_matches('/')).trim_end_matches('/');
    if relative.is_empty() {
        return Err("no repository named".into());
    }
    let segments: Vec<&str> = relative.split('/').collect();
    if segments.iter().any(|s| *s == "." || *s == "..") {
        return Err("`..` and `.` are not allowed in repository names".into());
    }
    if segments.len() > MAX_DEPTH {
        return Err(format!("a repository name has at most {MAX_DEPTH} segments"));
    }
    let valid = |s: &&str| {
        (1..=MAX_SEGMENT).contains(&s.len())
            && s.starts_with(|c: char| c.is_ascii_alphanumeric())
            && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"._@+-".contains(&b))
    };
    if !segments.iter().all(valid) {
        return Err(format!(
            "a repository name is `/`-separated segments of 1-{MAX_SEGMENT} characters of [A-Za-z0-9._@+-], each \
             beginning with a letter or a digit"
        ));
    }
    let (last, parents) = segments.split_last().expect("a name has a segment");
    if parents.iter().any(|s| s.ends_with(".git")) {
        return Err("only the last segment of a repository name may end in `.git`".into());
    }
    let base = match vcs {
        Vcs::Git => last.strip_suffix(".git").unwrap_or(last),
        Vcs::Hg if last.ends_with(".git") => return Err("a Mercurial repository's name cannot end in `.git`".into()),
        Vcs::Hg => last,
    };
    if base.is_empty() || base.ends_with(".git") {
        return Err("a repository name ends in `.git` once at most".into());
    }
    Ok(parents.iter().copied().chain([base]).collect::<Vec<_>>().join("/"))
}

/// Where a repository named `name` is under `root`: `<name>.git` for Git, `<name>` for
/// Mercurial.
fn dir_of(root: &Path, name: &str, vcs: Vcs) -> PathBuf {
    match vcs {
        Vcs::Git => root.join(format!("{name}.git")),
        Vcs::Hg => root.join(name),
    }
}

/// Whether a new repository named `name` can go in its place under `root` (canonical):
/// not when the name is taken (by a repository of either kind, or by anything else at its
/// place), nor when the way there goes through a symlink, something that is not a
/// directory, or another repository.
fn place(root: &Path, name: &str, vcs: Vcs) -> Result<(), String> {
    let segments: Vec<&str> = name.split('/').collect();
    let mut dir = root.to_path_buf();
    for segment in &segments[..segments.len() - 1] {
        dir.push(segment);
        let shown = dir.strip_prefix(root).unwrap_or(&dir).display().to_string();
        match dir.symlink_metadata() {
            Err(_) => break,
            Ok(meta) if meta.file_type().is_symlink() => {
                return Err(format!("{shown} is a symlink: a new repository goes in directories of repos_root"));
            }
            Ok(meta) if !meta.is_dir() => return Err(format!("{shown} is not a directory")),
            Ok(_) if repository::vcs_of(&dir).is_some() => {
                return Err(format!("{shown} is a repository: a repository does not go inside another"));
            }
            Ok(_) => {}
        }
    }
    let other_vcs = if vcs == Vcs::Git { Vcs::Hg } else { Vcs::Git };
    let (own, other) = (dir_of(root, name, vcs), dir_of(root, name, other_vcs));
    if own.symlink_metadata().is_ok() {
        return Err(match repository::vcs_of(&own) {
            Some(_) => "it already exists".into(),
            None => format!("{} exists and is not a repository", own.strip_prefix(root).unwrap_or(&own).display()),
        });
    }
    if let Some(vcs) = repository::vcs_of(&other) {
        return Err(format!("it already exists (a {} repository)", if vcs == Vcs::Git { "Git" } else { "Mercurial" }));
    }
    Ok(())
}

/// A name beside `dir` for the shell's work on it (`.pushgate-<what>-<pid>-<name>`).
fn work_path(dir: &Path, what: &str) -> PathBuf {
    let base = dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    dir.with_file_name(format!("{WORK_PREFIX}{what}-{}-{base}", std::process::id()))
}

/// Make the repository: its parents, then the repository and its hooks beside its place,
/// renamed into place. What to warn about once it is there.
fn build(asker: &Asker, target: &Target) -> Result<Vec<String>, String> {
    let root = asker.root;
    let parent = target.dir.parent().ok_or("no parent directory")?;
    std::fs::create_dir_all(parent).map_err(|e| format!("cannot make {}: {e}", parent.display()))?;
    // Made by us or by someone meanwhile: it must still be a directory of the root's own.
    if parent.canonicalize().ok().as_deref() != Some(parent) || !parent.starts_with(root) {
        return Err(format!("{} is not a directory of repos_root", parent.display()));
    }
    let work = work_path(target.dir, "new");
    let _ = std::fs::remove_dir_all(&work);
    let made = make(asker, target.vcs, &work).and_then(|()| {
        std::fs::rename(&work, target.dir).map_err(|e| match e.kind() {
            std::io::ErrorKind::AlreadyExists | std::io::ErrorKind::DirectoryNotEmpty => "it already exists".into(),
            _ => format!("cannot move it into place: {e}"),
        })
    });
    if made.is_err() {
        let _ = std::fs::remove_dir_all(&work);
        return made.map(|()| Vec::new());
    }
    // hg's hooks name the shim by its path, which moved with the repository: until this
    // rewrite, a push fails (its hook cannot be loaded) rather than slip past.
    let mut warnings = Vec::new();
    if target.vcs == Vcs::Hg
        && let Err(e) = install(asker, Vcs::Hg, target.dir)
    {
        warnings.push(format!("the hooks of {} need `pushgate install --hg` again: {e}", target.name));
    }
    Ok(warnings)
}

/// An empty repository with pushgate's hooks at `dir`.
fn make(asker: &Asker, vcs: Vcs, dir: &Path) -> Result<(), String> {
    match vcs {
        Vcs::Git => {
            tool(asker, OsStr::new("git"), &[OsStr::new("init"), "--bare".as_ref(), "--quiet".as_ref(), dir.as_ref()])?
        }
        Vcs::Hg => tool(asker, OsStr::new("hg"), &[OsStr::new("init"), dir.as_ref()])?,
    }
    install(asker, vcs, dir)
}

/// `pushgate install [--hg] <dir>`, as an admin would run it.
fn install(asker: &Asker, vcs: Vcs, dir: &Path) -> Result<(), String> {
    let exe = asker.env.exe()?;
    let config = asker.config_path.as_os_str();
    let mut args = vec![OsStr::new("--config"), config, "install".as_ref()];
    if vcs == Vcs::Hg {
        args.push("--hg".as_ref());
    }
    args.push(dir.as_os_str());
    tool(asker, exe.as_os_str(), &args)
}

/// Run `program` without a shell, with the server's own settings only (no client variable
/// such as `GIT_TEMPLATE_DIR` or `GIT_CONFIG_PARAMETERS` reaches it), in `repos_root`.
fn tool(asker: &Asker, program: &OsStr, args: &[&OsStr]) -> Result<(), String> {
    let shown_program = Path::new(program).file_name().unwrap_or(program).to_string_lossy().into_owned();
    let output = Process::new(program)
        .args(args)
        .env_clear()
        .envs(asker.passed.iter().copied())
        .current_dir(asker.root)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run {shown_program}: {e}"))?;
    if output.status.success() {
        return Ok(());
    }
    let said = crate::text::lines(&output.stderr).into_iter().next().unwrap_or_else(|| output.status.to_string());
    Err(format!("{shown_program} failed: {said}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_names_are_named_as_the_shell_names_repositories() {
        let root = Path::new("/srv/git");
        let long = "x".repeat(101);
        let git = |asked| new_name(root, asked, Vcs::Git);
        for (asked, name) in [
            ("users/alice/notes", "users/alice/notes"),
            ("users/alice/notes.git", "users/alice/notes"),
            ("/users/alice/notes.git", "users/alice/notes"),
            ("/srv/git/users/alice/notes.git", "users/alice/notes"),
            ("users/alice/notes/", "users/alice/notes"),
            ("app", "app"),
            ("a.b/c_d-e+f@g", "a.b/c_d-e+f@g"),
        ] {
            assert_eq!(git(asked).as_deref(), Ok(name), "{asked}");
        }
        assert_eq!(new_name(root, "users/alice/notes", Vcs::Hg).as_deref(), Ok("users/alice/notes"));
        assert!(new_name(root, "users/alice/notes.git", Vcs::Hg).unwrap_err().contains("Mercurial"));
        for bad in [
            "",
            "/",
            "users/../etc",
            "..",
            "./x",
            "a//b",
            "a/.hidden",
            ".pushgate-new-1-x.git",
            "-rf",
            "a b",
            "a\nb",
            "a*",
            "a/[x]",
            "a/b/c/d/e",
            "x.git/y",
            ".git",
            "x.git.git",
            "é",
            &long,
        ] {
            assert!(git(bad).is_err(), "{bad:?}");
        }
        assert!(git("users/../x").unwrap_err().contains("`..`"));
    }

    #[test]
    fn a_new_repository_goes_where_nothing_is() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().canonicalize().unwrap();
        for dir in ["users/alice/taken.git/objects", "hg/.hg", "repo.git/objects", "plain"] {
            std::fs::create_dir_all(root.join(dir)).unwrap();
        }
        for head in ["users/alice/taken.git/HEAD", "repo.git/HEAD"] {
            std::fs::write(root.join(head), "").unwrap();
        }
        std::fs::write(root.join("file"), "").unwrap();
        let elsewhere = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(elsewhere.path(), root.join("link")).unwrap();

        assert_eq!(place(&root, "users/alice/new", Vcs::Git), Ok(()));
        assert_eq!(place(&root, "users/bob/new", Vcs::Hg), Ok(()));
        assert_eq!(place(&root, "plain/x", Vcs::Git), Ok(()));
        assert_eq!(dir_of(&root, "users/alice/new", Vcs::Git), root.join("users/alice/new.git"));
        assert_eq!(dir_of(&root, "users/alice/new", Vcs::Hg), root.join("users/alice/new"));
        let refused = |name, vcs| place(&root, name, vcs).unwrap_err();
        assert_eq!(refused("users/alice/taken", Vcs::Git), "it already exists");
        assert_eq!(refused("users/alice/taken", Vcs::Hg), "it already exists (a Git repository)");
        assert_eq!(refused("hg", Vcs::Git), "it already exists (a Mercurial repository)");
        assert_eq!(refused("plain", Vcs::Hg), "plain exists and is not a repository");
        assert_eq!(
            refused("repo.git/x", Vcs::Git),
            "repo.git is a repository: a repository does not go inside another"
        );
        assert_eq!(refused("hg/x", Vcs::Git), "hg is a repository: a repository does not go inside another");
        assert_eq!(refused("file/x", Vcs::Git), "file is not a directory");
        assert!(refused("link/x", Vcs::Git).starts_with("link is a symlink"));
    }
}
