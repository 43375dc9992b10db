//! Commands for admins: `check`, `explain`, `simulate`. None of them changes anything.

use crate::config::{Config, ConfigErrors, Mode, REPO_FILE, Rule};
use crate::git::Quarantine;
use crate::hook::{Site, judge_push, repo_name};
use crate::policy::{self, Decision, Subject};
use crate::push::{self, Op};
use crate::{Error, Outcome};
use serde_json::json;
use std::io::Read;
use std::path::{Path, PathBuf};

/// Validate the configuration (and a repository's own file), print every error as
/// `FILE:LINE:COL: message`.
pub fn check(config_path: &Path, repo: Option<&Path>, json: bool) -> Result<Outcome, Error> {
    let repo_file = repo.map(|r| git_dir_of(r).join(REPO_FILE));
    match Config::load(config_path, repo_file.as_deref()) {
        Ok(config) => {
            if json {
                println!("{}", json!({"ok": true, "rules": config.rules.len(), "extensions": config.extensions.len()}));
            } else {
                let (rules, extensions) = (config.rules.len(), config.extensions.len());
                println!("pushgate: {} is valid ({rules} rules, {extensions} extensions)", config_path.display());
            }
            Ok(Outcome::Success)
        }
        Err(errors) => {
            if json {
                let list: Vec<_> = errors
                    .0
                    .iter()
                    .map(|e| json!({"file": e.file, "line": e.line, "col": e.col, "message": e.message}))
                    .collect();
                println!("{}", json!({"ok": false, "errors": list}));
            } else {
                eprintln!("{errors}");
            }
            Err(Error::new(format!("configuration has {} error(s)", errors.0.len())))
        }
    }
}

/// What `explain` is asked.
pub struct Question {
    pub user: String,
    pub ref_name: String,
    pub op: String,
    pub repo: Option<String>,
    pub path: Option<String>,
}

/// Which rule decides `op` on a ref (and a path) for a user, and why.
pub fn explain(config_path: &Path, q: &Question, json: bool) -> Result<Outcome, Error> {
    let op = Op::parse(&q.op).ok_or_else(|| {
        Error::new(format!("unknown operation {:?}: one of create, update, force, delete, read", q.op))
    })?;
    push::check_ref_name(&q.ref_name).map_err(|e| Error::new(format!("ref {}: {e}", push::shown(&q.ref_name))))?;
    let config = load_for_repo(config_path, q.repo.as_deref())?;
    let subject = Subject { user: &q.user, repo: q.repo.as_deref() };

    let ref_decision = policy::decide_ref(&config, subject, &q.ref_name, op);
    let path_decision = q
        .path
        .as_ref()
        .filter(|_| op != Op::Delete && op != Op::Read)
        .map(|path| (path, policy::decide_path(&config, subject, &q.ref_name, op, path.as_bytes())));
    let allowed = ref_decision.allowed && path_decision.as_ref().is_none_or(|(_, d)| d.allowed);

    if json {
        let mut out = json!({
            "user": q.user, "ref": q.ref_name, "op": op.as_str(), "repo": q.repo,
            "allowed": allowed, "ref_pass": decision_json(&ref_decision),
        });
        if let Some((path, d)) = &path_decision {
            out["path_pass"] = json!({"path": path, "decision": decision_json(d)});
        }
        println!("{out}");
        return Ok(Outcome::Success);
    }
    let groups = config.groups.of(&q.user);
    let groups = if groups.is_empty() { String::new() } else { format!(" (groups: {})", groups.join(", ")) };
    println!("{op} of {} by {}{groups} in {}", q.ref_name, q.user, q.repo.as_deref().unwrap_or("any repository"));
    print_decision("ref pass", op, &ref_decision, "no rule matched: denied");
    if let Some((path, d)) = &path_decision {
        print_decision(&format!("path pass for {path}"), op, d, "no path rule matched: allowed");
    }
    for check in crate::policy::check::applicable_ignoring_exempt(&config, subject, &q.ref_name) {
        let mode = if check.mode == Mode::Warn { " (mode = \"warn\")" } else { "" };
        let exempt = check.exempt.iter().any(|u| crate::policy::user_matches(&config, u, &q.user));
        let what = if exempt { format!("{} is exempt", q.user) } else { "applies to the new commits".to_string() };
        println!("check {} at {}: {what}{mode}", check.number, check.origin);
    }
    println!("verdict: {}", if allowed { "allowed" } else { "denied" });
    Ok(Outcome::Success)
}

fn print_decision(pass: &str, op: Op, decision: &Decision, no_match: &str) {
    for rule in &decision.warnings {
        println!(
            "{pass}: rule {} at {} would deny {op} (mode = \"warn\": reported as a warning)",
            rule.number, rule.origin
        );
    }
    match decision.rule {
        Some(rule) => {
            let verdict = if decision.allowed { "allowed" } else { "denied" };
            let message = rule.message.as_ref().map(|m| format!(" ({m})")).unwrap_or_default();
            println!("{pass}: rule {} at {}: {op} {verdict}{message}", rule.number, rule.origin);
        }
        None => println!("{pass}: {no_match}"),
    }
}

fn decision_json(decision: &Decision) -> serde_json::Value {
    let rule = |r: &Rule| {
        json!({"number": r.number, "file": r.origin.file, "line": r.origin.line, "message": r.message,
               "mode": if r.mode == Mode::Warn { "warn" } else { "enforce" }})
    };
    json!({
        "allowed": decision.allowed,
        "rule": decision.rule.map(rule),
        "warnings": decision.warnings.iter().map(|r| rule(r)).collect::<Vec<_>>(),
    })
}

/// The global config plus, when `repos_root` holds the named repository, its own file.
fn load_for_repo(config_path: &Path, repo: Option<&str>) -> Result<Config, Error> {
    let global = Config::load(config_path, None)?;
    let (Some(root), Some(name)) = (&global.repos_root, repo) else {
        return Ok(global);
    };
    let candidates = [root.join(format!("{name}.git")), root.join(name)];
    match candidates.iter().map(|dir| git_dir_of(dir).join(REPO_FILE)).find(|f| f.is_file()) {
        Some(file) => Ok(Config::load(config_path, Some(&file))?),
        None => Ok(global),
    }
}

/// Dry-run pre-receive on `<old> <new> <ref>` lines from stdin against a repository: the
/// rules, then the `pre` extensions (which are really called), never the audit log.
pub fn simulate(config_path: &Path, repo: &Path, user: Option<String>, json: bool) -> Result<Outcome, Error> {
    let git_dir = git_dir_of(repo)
        .canonicalize()
        .map_err(|e| Error::new(format!("cannot open repository {}: {e}", repo.display())))?;
    let config = Config::load(config_path, Some(&git_dir.join(REPO_FILE))).map_err(|e: ConfigErrors| Error::from(e))?;
    let user = match user {
        Some(user) => user,
        None => crate::identity::resolve(&config.identity_env, |n| std::env::var_os(n))
            .map_err(|e| Error::new(e.to_string()))?,
    };
    if !crate::config::valid_user_name(&user) {
        return Err(Error::new(format!("invalid user name {}", push::shown(&user))));
    }
    let mut input = Vec::new();
    std::io::stdin().read_to_end(&mut input).map_err(|e| Error::new(format!("cannot read stdin: {e}")))?;
    let updates = push::parse_updates(&input).map_err(|e| Error::new(format!("stdin: {e}")))?;
    let name = repo_name(&git_dir, config.repos_root.as_deref());
    let site = Site { hooks_dir: git_dir.join("hooks"), git_dir, quarantine: Quarantine::default() };
    let (push, verdict) = judge_push(&config, &site, &user, &name, &updates, &updates).map_err(Error::new)?;

    if json {
        let changes: Vec<_> = push
            .changes
            .iter()
            .map(|c| json!({"ref": c.update.name, "action": c.action.as_str(), "commits": c.commits.len()}))
            .collect();
        println!(
            "{}",
            json!({"user": user, "repo": name, "accepted": verdict.accepted(), "changes": changes,
                   "rejections": verdict.rejections, "warnings": verdict.warnings})
        );
    } else {
        for change in &push.changes {
            println!("{}: {} ({} new commits)", change.update.name, change.action.as_str(), change.commits.len());
            for commit in &change.commits {
                let subject = commit.message.lines().next().unwrap_or_default();
                let author = &commit.author;
                println!(
                    "  {} {} ({} <{}>)",
                    commit.id.to_hex_with_len(7),
                    push::shown(subject),
                    author.name,
                    author.email
                );
            }
        }
        for line in verdict.report(&user) {
            println!("{line}");
        }
        let result = if verdict.accepted() { "accepted" } else { "rejected" };
        println!("pushgate: simulate: the push would be {result}");
    }
    Ok(if verdict.accepted() { Outcome::Success } else { Outcome::Rejected })
}

/// A work tree's `.git`, or the directory itself (a bare repository).
pub fn git_dir_of(repo: &Path) -> PathBuf {
    let dot_git = repo.join(".git");
    if dot_git.is_dir() { dot_git } else { repo.to_path_buf() }
}
