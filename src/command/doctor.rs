//! `pushgate doctor`: checks a server's setup as the user it runs as (run it as the user the
//! hooks run as), one `ok`/`warn`/`FAIL` line each with what to do. It only looks: no spool,
//! log or audit file is created.

use super::install;
use crate::config::extension::{Kind, Phase, Secret};
use crate::config::{self, Config};
use crate::env::Env;
use crate::outcome::{Error, Outcome};
use crate::spool::Spool;
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Level {
    Ok,
    Warn,
    Fail,
}

/// The findings, in the order they were made.
#[derive(Default)]
struct Findings {
    lines: Vec<(Level, String)>,
}

impl Findings {
    fn ok(&mut self, what: impl Into<String>) {
        self.lines.push((Level::Ok, what.into()));
    }

    fn warn(&mut self, what: impl Into<String>) {
        self.lines.push((Level::Warn, what.into()));
    }

    fn fail(&mut self, what: impl Into<String>) {
        self.lines.push((Level::Fail, what.into()));
    }
}

/// Check the setup: the configuration, the repositories' hooks (`repos`, or every one under
/// `repos_root`), the spool and the audit log, secrets, the deliverer, the connectors, and
/// the users the web server's processes run as when they can be seen.
pub fn run(config_path: &Path, repos: &[PathBuf], env: &Env, out: &mut dyn Write) -> Result<Outcome, Error> {
    let mut found = Findings::default();
    let me = current_uid();
    let config = match Config::load(config_path, None) {
        Ok(config) => {
            let (rules, extensions) = (config.rules.len(), config.extensions.len());
            found.ok(format!(
                "configuration {} is valid ({rules} rules, {extensions} extensions)",
                config_path.display()
            ));
            Some(config)
        }
        Err(e) => {
            found.fail(format!("configuration: {}: run `pushgate check` and fix every error", e.one_line()));
            None
        }
    };
    let binary = env.exe().ok().and_then(|e| install::own_path(e).ok());
    let listed: Vec<PathBuf> = match (repos.is_empty(), config.as_ref().and_then(|c| c.repos_root.as_deref())) {
        (false, _) => repos.to_vec(),
        (true, Some(root)) => repositories_under(root),
        (true, None) => Vec::new(),
    };
    if repos.is_empty() && listed.is_empty() {
        found.warn("no repository to check: set repos_root, or name them with --repo DIR");
    }
    let mut owners = Vec::new();
    for repo in &listed {
        if let Some(owner) = check_repository(&mut found, repo, binary.as_deref(), me) {
            owners.push(owner);
        }
    }
    let spool_dir = config.as_ref().map_or_else(|| config::lenient::spool_dir(config_path), |c| c.spool.dir.clone());
    check_writable(&mut found, "spool", &spool_dir, me);
    if let Some(audit) = config.as_ref().and_then(|c| c.audit_file.clone()) {
        check_writable(&mut found, "audit log", &audit, me);
    }
    if let Some(config) = &config {
        check_secrets(&mut found, config, env);
        check_delivery(&mut found, config, &Spool::at(&spool_dir));
    }
    check_server_processes(&mut found, &owners);

    let mut failed = false;
    for (level, line) in &found.lines {
        let label = match level {
            Level::Ok => "ok  ",
            Level::Warn => "warn",
            Level::Fail => "FAIL",
        };
        failed |= *level == Level::Fail;
        writeln!(out, "{label}  {}", crate::text::one_line(line, None))?;
    }
    Ok(if failed { Outcome::Rejected } else { Outcome::Success })
}

fn current_uid() -> u32 {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() }
}

/// Whether the running user may write `path` (the kernel's answer, root included).
fn writable(path: &Path) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let Ok(c) = std::ffi::CString::new(path.as_os_str().as_bytes()) else { return false };
    // SAFETY: a NUL-terminated path; access only reads it.
    unsafe { libc::access(c.as_ptr(), libc::W_OK) == 0 }
}

/// Bare Git repositories and Mercurial ones under `root`, a few levels deep.
fn repositories_under(root: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut dirs = vec![(root.to_path_buf(), 0)];
    while let Some((dir, depth)) = dirs.pop() {
        if dir.join("HEAD").is_file() && dir.join("objects").is_dir() || dir.join(".hg").is_dir() {
            found.push(dir);
            continue;
        }
        if depth == 4 {
            continue;
        }
        let Ok(entries) = std::fs::read_dir(&dir) else { continue };
        for entry in entries.flatten() {
            let hidden = entry.file_name().to_string_lossy().starts_with('.');
            if !hidden && entry.file_type().is_ok_and(|t| t.is_dir()) {
                dirs.push((entry.path(), depth + 1));
            }
        }
    }
    found.sort();
    found
}

/// The hooks of one repository; its owner's uid.
fn check_repository(found: &mut Findings, repo: &Path, binary: Option<&Path>, me: u32) -> Option<u32> {
    let shown = repo.display();
    let owner = std::fs::metadata(repo).ok()?.uid();
    if owner != me {
        found.warn(format!(
            "{shown} belongs to uid {owner} and doctor runs as uid {me}: the hooks run as the repository's owner; \
             run doctor as that user (sudo -u <owner> pushgate doctor)"
        ));
    }
    if let Ok(dot_hg) = install::hg_repository(repo) {
        let hgrc = std::fs::read_to_string(dot_hg.join("hgrc")).unwrap_or_default();
        if hgrc.contains("# pushgate-hook: begin") && dot_hg.join("pushgate_hg.py").is_file() {
            found.ok(format!("{shown}: pushgate's hg hooks are installed"));
        } else {
            found.fail(format!("{shown}: pushgate's hg hooks are missing: run `pushgate install --hg {shown}`"));
        }
        return Some(owner);
    }
    let Ok(git_dir) = install::repository(repo) else {
        found.warn(format!("{shown}: not a Git or Mercurial repository"));
        return Some(owner);
    };
    let Ok(hooks) = install::hooks_dir(&git_dir) else {
        found.warn(format!("{shown}: cannot tell where its hooks are (git config core.hooksPath)"));
        return Some(owner);
    };
    let missing: Vec<&str> = ["pre-receive", "post-receive"]
        .into_iter()
        .filter(|name| binary.is_none_or(|b| !install::is_ours(&hooks.join(name), b)))
        .collect();
    if missing.is_empty() {
        found.ok(format!("{shown}: pushgate's hooks are installed"));
    } else {
        found.fail(format!("{shown}: no pushgate {} hook: run `pushgate install {shown}`", missing.join(" or ")));
    }
    let root_owned: Vec<String> = ["pre-receive", "update", "post-receive"]
        .iter()
        .map(|name| hooks.join(name))
        .filter(|hook| hook.symlink_metadata().is_ok_and(|m| m.uid() == 0) && owner != 0)
        .map(|hook| hook.display().to_string())
        .collect();
    if !root_owned.is_empty() {
        found.warn(format!(
            "{} belong to root in a repository of uid {owner}: `chown -h {owner} <hook>` (or install as the owner)",
            root_owned.join(", ")
        ));
    }
    Some(owner)
}

/// A file or directory the hooks write: it, or the directory it will be made in, must be
/// writable by the user doctor runs as.
fn check_writable(found: &mut Findings, what: &str, path: &Path, me: u32) {
    let shown = path.display();
    match std::fs::metadata(path) {
        Ok(meta) if meta.uid() != me => found.fail(format!(
            "{what} {shown} belongs to uid {}, not to uid {me} (this user): `chown -R {me} {shown}`",
            meta.uid()
        )),
        Ok(_) if !writable(path) => found.fail(format!("{what} {shown} is not writable by this user")),
        Ok(_) => found.ok(format!("{what} {shown} is writable")),
        Err(_) => {
            let mut parent = path.parent();
            while let Some(dir) = parent.filter(|d| !d.exists()) {
                parent = dir.parent();
            }
            match parent {
                Some(dir) if writable(dir) => found.ok(format!("{what} {shown} will be made on first use")),
                Some(dir) => found.fail(format!(
                    "{what} {shown} does not exist and {} is not writable by this user: make it, owned by this user",
                    dir.display()
                )),
                None => found.fail(format!("{what} {shown} cannot be made")),
            }
        }
    }
}

fn check_secrets(found: &mut Findings, config: &Config, env: &Env) {
    for ext in &config.extensions {
        let Kind::Http { secret: Some(secret), .. } = &ext.kind else { continue };
        match secret {
            Secret::Env(name) if env.is_set(name) => {
                found.ok(format!("extension {}: secret_env {name} is set", ext.name))
            }
            Secret::Env(name) => found.warn(format!(
                "extension {}: secret_env {name} is not set here: the hooks and the deliverer need it in their \
                 environment; a secret_file readable by the hooks' user is simpler for a service",
                ext.name
            )),
            Secret::File(path) if std::fs::File::open(path).is_ok() => {
                found.ok(format!("extension {}: secret_file {} is readable", ext.name, path.display()))
            }
            Secret::File(path) => found.fail(format!(
                "extension {}: secret_file {} cannot be read by this user",
                ext.name,
                path.display()
            )),
        }
    }
}

fn check_delivery(found: &mut Findings, config: &Config, spool: &Spool) {
    let connectors: Vec<&str> = config
        .extensions
        .iter()
        .filter(|e| e.phase == Phase::Post && e.enabled)
        .map(|e| e.connector.as_str())
        .collect();
    if connectors.is_empty() {
        return;
    }
    let now = crate::time::unix_seconds(&crate::time::now_rfc3339()).unwrap_or(0);
    let mut waiting = 0;
    for name in spool.connectors().unwrap_or_default() {
        let Ok(summary) = spool.summary(&name) else { continue };
        waiting += summary.pending;
        if let Some(reason) = &summary.disabled {
            found.fail(format!(
                "connector {name} is disabled ({}): fix it, then `pushgate queue enable {name}`",
                reason.trim()
            ));
        }
        if summary.dead > 0 {
            found.warn(format!(
                "connector {name} has {} dead letter(s): `pushgate queue list --dead`, then `queue retry` or `queue drop`",
                summary.dead
            ));
        }
        if let Some(age) = summary.oldest_pending_age(now).filter(|age| *age > 3600) {
            let error = summary.last_error().map(|e| format!(" (last error: {e})")).unwrap_or_default();
            found.warn(format!("connector {name}: its oldest job has waited {}h{error}", age / 3600));
        }
        if !connectors.contains(&name.as_str()) && !name.contains('~') && summary.pending > 0 {
            found.warn(format!(
                "connector {name} is no longer configured but has {} job(s): `pushgate queue drop` them or configure it again",
                summary.pending
            ));
        }
    }
    match (spool.watched(), waiting) {
        (true, _) => found.ok("a `pushgate deliver --watch` runs"),
        (false, 0) => found
            .warn("no `pushgate deliver --watch` runs: retries wait for the next push; start pushgate-deliver.service"),
        (false, n) => found
            .fail(format!("{n} job(s) wait and no `pushgate deliver --watch` runs: start pushgate-deliver.service")),
    }
    if !spool.aside().is_empty() {
        found.warn(format!(
            "{} unreadable file(s) set aside in {}: look at them, then remove them",
            spool.aside().len(),
            spool.dir().join("aside").display()
        ));
    }
}

/// fcgiwrap and Apache run git http-backend, and so the hooks: as another user than the
/// repositories' owner, git refuses the repositories ("dubious ownership").
fn check_server_processes(found: &mut Findings, owners: &[u32]) {
    let Some(&owner) = owners.first() else { return };
    let Ok(entries) = std::fs::read_dir("/proc") else { return };
    let mut seen = std::collections::BTreeSet::new();
    for entry in entries.flatten() {
        let path = entry.path();
        let comm = std::fs::read_to_string(path.join("comm")).unwrap_or_default();
        let comm = comm.trim();
        if !["fcgiwrap", "apache2", "httpd"].contains(&comm) {
            continue;
        }
        let Ok(meta) = std::fs::metadata(&path) else { continue };
        if meta.uid() != 0 && seen.insert((comm.to_string(), meta.uid())) {
            if meta.uid() == owner {
                found.ok(format!("{comm} runs as uid {owner}, the repositories' owner"));
            } else {
                found.warn(format!(
                    "{comm} runs as uid {}, the repositories belong to uid {owner}: run it as their owner \
                     (see hooks-templates/nginx-git-http.conf or apache-git-http.conf)",
                    meta.uid()
                ));
            }
        }
    }
}
