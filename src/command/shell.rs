//! `pushgate shell <user>`: the SSH forced command. The key decides who you are; the rules
//! decide what you may read and write. Only git's and hg's own server commands run, on
//! repositories under `repos_root`, without a shell.

use crate::config::{Config, Mode};
use crate::env::Env;
use crate::hook::record::{self, Fetch};
use crate::identity::{Via, valid_user_name};
use crate::outcome::{Error, Outcome};
use crate::policy::{self, Subject};
use crate::push::{Op, Vcs};
use crate::text::shown;
use std::io::Write;
use std::path::{Component, Path, PathBuf};
use std::process::Command;

/// What the client asked to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// `git-receive-pack`, `git-upload-pack` or `git-upload-archive`, and the path it names.
    Git { service: &'static str, path: String },
    /// `hg -R <path> serve --stdio`.
    Hg { path: String },
}

impl Request {
    /// A git push. (`hg serve` reads and writes; its pushes are decided by pretxnclose.)
    pub fn writes(&self) -> bool {
        matches!(self, Request::Git { service: "receive-pack", .. })
    }

    fn path(&self) -> &str {
        match self {
            Request::Git { path, .. } | Request::Hg { path } => path,
        }
    }
}

/// Parse `SSH_ORIGINAL_COMMAND` as git and hg clients send it.
pub fn parse_request(command: &str) -> Result<Request, String> {
    let words = split_words(command).ok_or_else(|| format!("cannot parse the command {}", shown(command)))?;
    let words: Vec<&str> = words.iter().map(String::as_str).collect();
    match words.as_slice() {
        [program, path] | ["git", program, path] => {
            let service = match program.strip_prefix("git-").unwrap_or(program) {
                "receive-pack" => "receive-pack",
                "upload-pack" => "upload-pack",
                "upload-archive" => "upload-archive",
                _ => return Err(format!("command not allowed: {}", shown(command))),
            };
            Ok(Request::Git { service, path: path.to_string() })
        }
        ["hg", "-R", path, "serve", "--stdio"] | ["hg", "--repository", path, "serve", "--stdio"] => {
            Ok(Request::Hg { path: path.to_string() })
        }
        _ => Err(format!("command not allowed: {}", shown(command))),
    }
}

/// Split like a POSIX shell does for single quotes, double quotes and backslashes, with
/// no expansion of any kind. `None` on an unterminated quote.
fn split_words(text: &str) -> Option<Vec<String>> {
    let mut words = Vec::new();
    let mut word: Option<String> = None;
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        match c {
            ' ' | '\t' | '\n' => {
                if let Some(w) = word.take() {
                    words.push(w);
                }
            }
            '\'' => {
                let w = word.get_or_insert_with(String::new);
                loop {
                    match chars.next()? {
                        '\'' => break,
                        c => w.push(c),
                    }
                }
            }
            '"' => {
                let w = word.get_or_insert_with(String::new);
                loop {
                    match chars.next()? {
                        '"' => break,
                        '\\' => w.push(chars.next()?),
                        c => w.push(c),
                    }
                }
            }
            '\\' => word.get_or_insert_with(String::new).push(chars.next()?),
            c => word.get_or_insert_with(String::new).push(c),
        }
    }
    words.extend(word);
    Some(words)
}

/// A repository under `root` from what the client named: `app.git`, `team/app`,
/// `/team/app.git`, or an absolute path inside `root`. Refuses `..`, escapes through
/// symlinks, and names that are not repositories of the requested kind.
pub fn resolve(root: &Path, asked: &str, hg: bool) -> Result<(PathBuf, String), String> {
    let root = root.canonicalize().map_err(|e| format!("repos_root {}: {e}", root.display()))?;
    let refuse = |why: &str| Err(format!("{}: {why}", shown(asked)));
    let relative = match Path::new(asked).strip_prefix(&root) {
        Ok(inside) => inside.to_path_buf(),
        Err(_) => PathBuf::from(asked.trim_start_matches('/')),
    };
    if relative.as_os_str().is_empty() {
        return refuse("no repository named");
    }
    if relative.components().any(|c| !matches!(c, Component::Normal(_))) {
        return refuse("`..` and `.` are not allowed in repository paths");
    }
    let text = relative.to_string_lossy();
    let base = text.trim_end_matches('/').to_string();
    let candidates: Vec<String> = if hg {
        vec![base.clone()]
    } else if base.ends_with(".git") {
        vec![base.clone(), base.trim_end_matches(".git").to_string()]
    } else {
        vec![format!("{base}.git"), base.clone()]
    };
    for candidate in candidates {
        let Ok(path) = root.join(&candidate).canonicalize() else { continue };
        if !path.starts_with(&root) {
            return refuse("it leads outside repos_root");
        }
        let is_repo =
            if hg { path.join(".hg").is_dir() } else { path.join("HEAD").is_file() && path.join("objects").is_dir() };
        if is_repo {
            let name = path.strip_prefix(&root).unwrap_or(&path).to_string_lossy().into_owned();
            let name = name.strip_suffix(".git").map(str::to_string).unwrap_or(name);
            return Ok((path, name));
        }
    }
    refuse(if hg { "no such Mercurial repository" } else { "no such Git repository" })
}

/// `read` on a repository (see [`policy::decide_read`]).
pub fn may_read(config: &Config, user: &str, repo: &str) -> bool {
    policy::decide_read(config, Subject { user, repo: Some(repo) }).allowed
}

/// The enforcing ref rules that apply to `user` in `repo`, in evaluation order.
fn repo_rules<'c>(config: &'c Config, user: &'c str, repo: &'c str) -> impl Iterator<Item = &'c crate::config::Rule> {
    config
        .rules
        .iter()
        .filter(|r| r.paths.is_none() && r.mode == Mode::Enforce)
        .filter(move |r| policy::applies(config, r, Subject { user, repo: Some(repo) }))
}

/// Some write on a repository: a rule for the repo and user allows one of the writes. The
/// per-ref decision stays with pre-receive.
pub fn may_write(config: &Config, user: &str, repo: &str) -> bool {
    const WRITES: [Op; 4] = [Op::Create, Op::Update, Op::Force, Op::Delete];
    repo_rules(config, user, repo).any(|r| WRITES.iter().any(|op| r.allow.contains(op)))
}

/// How the shell was started.
pub struct Shell<'a> {
    pub config_path: &'a Path,
    /// `--config` was given (and is passed on to the hooks).
    pub explicit_config: bool,
    pub user: &'a str,
    pub env: &'a Env,
}

/// Run the forced command for `user`: what the client asked for is `SSH_ORIGINAL_COMMAND`.
pub fn run(shell: &Shell, err: &mut dyn Write) -> Result<Outcome, Error> {
    let (config_path, user) = (shell.config_path, shell.user);
    let mut refuse = |why: String| -> Result<Outcome, Error> {
        let _ = writeln!(err, "pushgate: {why}");
        Ok(Outcome::Rejected)
    };
    if !valid_user_name(user) {
        return refuse(format!("invalid user name {}", shown(user)));
    }
    let command = shell.env.var("SSH_ORIGINAL_COMMAND");
    let Some(command) = command.filter(|c| !c.trim().is_empty()) else {
        return refuse(format!("hi {user}: interactive logins are not allowed here; use git or hg over ssh"));
    };
    let request = match parse_request(command) {
        Ok(request) => request,
        Err(e) => return refuse(e),
    };
    let config = match Config::load(config_path, None) {
        Ok(config) => config,
        Err(e) => return refuse(format!("configuration error: {}", e.0[0])),
    };
    let Some(root) = &config.repos_root else {
        return refuse("repos_root is not set in the configuration: no repository is served".into());
    };
    let (path, name) = match resolve(root, request.path(), matches!(request, Request::Hg { .. })) {
        Ok(found) => found,
        Err(e) => return refuse(e),
    };
    // The repository's own rules come first, for reads as for pushes.
    let repo_file = match &request {
        Request::Hg { .. } => path.join(".hg").join(crate::config::REPO_FILE),
        Request::Git { .. } => path.join(crate::config::REPO_FILE),
    };
    let config = match Config::load(config_path, Some(&repo_file)) {
        Ok(config) => config,
        Err(e) => return refuse(format!("configuration error: {}", e.0[0])),
    };
    let user = &config.user_named(user);
    // A push needs some write (pre-receive decides each ref); anything else needs read.
    if request.writes() {
        if !may_write(&config, user, &name) {
            return refuse(format!("{user} may not push to {name}"));
        }
    } else if !may_read(&config, user, &name) {
        return refuse(format!("{user} may not read {name}"));
    }
    let mut child = match &request {
        Request::Git { service, .. } => {
            let mut c = Command::new("git");
            c.arg(service).arg(&path);
            c
        }
        Request::Hg { .. } => {
            let mut c = Command::new("hg");
            c.arg("-R").arg(&path).args(["serve", "--stdio"]);
            c
        }
    };
    // sshd cannot tell which variables the client sent (`AcceptEnv`): git and hg get the
    // server's own settings and nothing else, so no client variable reaches them or the
    // hooks (`GIT_CONFIG_*` could turn the hooks off, `PUSHGATE_*` could lie).
    child.env_clear().envs(passed_on(shell.env));
    child.env("PUSHGATE_USER", user).env("PUSHGATE_VIA", "ssh").env("PUSHGATE_CONFIG", config_path);
    // hg's pulls are told by its `outgoing` hook (`pushgate hg outgoing`): `hg serve`
    // carries pushes and pulls alike.
    let told = record::wants_pulls(&config, &name);
    let is_fetch = matches!(request, Request::Git { service: "upload-pack", .. });
    if !(told && is_fetch) {
        use std::os::unix::process::CommandExt;
        let error = child.exec();
        return Err(Error::new(format!("cannot run {}: {error}", child.get_program().to_string_lossy())));
    }
    // Someone wants to hear about fetches: wait for this one, then spool its event.
    let status = child.status().map_err(|e| Error::new(format!("cannot run git: {e}")))?;
    let fetch = Fetch { vcs: Vcs::Git, path: &path, repo: &name, user, via: Via::Ssh };
    if status.success()
        && let Err(e) = record::record_pull(config_path, &config, shell.env, &fetch)
    {
        let _ = writeln!(err, "pushgate: warning: the pull event is not recorded: {e}");
    }
    Ok(if status.success() { Outcome::Success } else { Outcome::Rejected })
}

/// The variables of the shell's environment that git and hg are given: the server's own
/// settings, and `GIT_PROTOCOL` (protocol v2 needs it).
fn passed_on(env: &Env) -> impl Iterator<Item = (&std::ffi::OsStr, &std::ffi::OsStr)> {
    const KEPT: [&str; 8] = ["PATH", "HOME", "LANG", "TZ", "USER", "LOGNAME", "SSH_CONNECTION", "GIT_PROTOCOL"];
    env.vars().filter(|(name, _)| {
        let name = name.to_str().unwrap_or_default();
        KEPT.contains(&name) || name.starts_with("LC_")
    })
}

/// `authorized_keys` lines for every `<user>.pub` in `dir`, running `exe`.
pub fn keys(
    dir: &Path,
    config: Option<&Path>,
    exe: &Path,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<Outcome, Error> {
    let exe = super::install::own_path(exe)?;
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| Error::new(format!("{}: {e}", dir.display())))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "pub"))
        .collect();
    entries.sort();
    // sshd unescapes only `\"` inside command="...": nothing else may be escaped.
    let quote = |p: &Path| p.to_string_lossy().replace('"', "\\\"");
    let config_arg = config.map(|c| format!("--config '{}' ", quote(c).replace('\'', "'\\''"))).unwrap_or_default();
    for path in entries {
        let user = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
        if !valid_user_name(&user) {
            let _ = writeln!(err, "pushgate: skipping {}: {} is not a valid user name", path.display(), shown(&user));
            continue;
        }
        let text = std::fs::read_to_string(&path).map_err(|e| Error::new(format!("{}: {e}", path.display())))?;
        for key in text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')) {
            let known = ["ssh-", "ecdsa-", "sk-"].iter().any(|p| key.starts_with(p));
            if !known {
                let _ = writeln!(err, "pushgate: skipping a line of {}: not a public key", path.display());
                continue;
            }
            writeln!(
                out,
                "command=\"'{}' {config_arg}shell {user}\",no-port-forwarding,no-X11-forwarding,no-agent-forwarding,no-pty {key}",
                quote(&exe).replace('\'', "'\\''")
            )?;
        }
    }
    Ok(Outcome::Success)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_servers_settings_and_git_protocol_are_passed_on() {
        let env = Env::from_vars([
            ("PATH", "/usr/bin"),
            ("LC_ALL", "C"),
            ("GIT_PROTOCOL", "version=2"),
            ("GIT_CONFIG_PARAMETERS", "'core.hooksPath'='/nonexistent'"),
            ("GIT_CONFIG_COUNT", "1"),
            ("PUSHGATE_CHAINED_BY", "1"),
            ("PUSHGATE_USER", "mallory"),
            ("HGRCPATH", "/tmp/evil"),
            ("GIT_DIR", "/elsewhere"),
        ]);
        let names: Vec<&str> = passed_on(&env).map(|(n, _)| n.to_str().unwrap()).collect();
        assert_eq!(names, ["GIT_PROTOCOL", "LC_ALL", "PATH"]);
    }

    #[test]
    fn commands_parse_as_clients_send_them() {
        let git = |s: &'static str, p: &str| Request::Git { service: s, path: p.into() };
        assert_eq!(parse_request("git-receive-pack '/team/app.git'"), Ok(git("receive-pack", "/team/app.git")));
        assert_eq!(parse_request("git-upload-pack 'app.git'"), Ok(git("upload-pack", "app.git")));
        assert_eq!(parse_request("git upload-archive 'a b'"), Ok(git("upload-archive", "a b")));
        assert_eq!(parse_request("git-upload-pack 'it'\\''s'"), Ok(git("upload-pack", "it's")));
        assert_eq!(parse_request("hg -R team/app serve --stdio"), Ok(Request::Hg { path: "team/app".into() }));
        for bad in [
            "bash",
            "git-receive-pack",
            "git-receive-pack a; rm -rf /",
            "git-shell -c x",
            "hg -R x serve",
            "git-upload-pack 'x",
        ] {
            assert!(parse_request(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn repositories_resolve_under_the_root_only() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().canonicalize().unwrap();
        for dir in ["team/app.git/objects", "hgrepo/.hg", "outside.git/objects"] {
            std::fs::create_dir_all(root.join(dir)).unwrap();
        }
        std::fs::write(root.join("team/app.git/HEAD"), "ref: refs/heads/main\n").unwrap();
        let (path, name) = resolve(&root, "team/app", false).unwrap();
        assert_eq!((path.clone(), name.as_str()), (root.join("team/app.git"), "team/app"));
        assert_eq!(resolve(&root, "/team/app.git", false).unwrap().0, path);
        assert_eq!(resolve(&root, &format!("{}/team/app.git", root.display()), false).unwrap().0, path);
        assert_eq!(resolve(&root, "hgrepo", true).unwrap().1, "hgrepo");
        assert!(resolve(&root, "team/../team/app", false).is_err());
        assert!(resolve(&root, "team", false).is_err());
        assert!(resolve(&root, "", false).is_err());
        let elsewhere = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(elsewhere.path().join("x.git/objects")).unwrap();
        std::fs::write(elsewhere.path().join("x.git/HEAD"), "").unwrap();
        std::os::unix::fs::symlink(elsewhere.path().join("x.git"), root.join("link.git")).unwrap();
        assert!(resolve(&root, "link", false).unwrap_err().contains("outside repos_root"));
    }
}
