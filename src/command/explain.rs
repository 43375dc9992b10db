//! `pushgate explain`: which rule decides an operation, and why.

use super::check::git_dir_of;
use crate::config::{Config, Mode, REPO_FILE, Rule};
use crate::identity::valid_user_name;
use crate::outcome::{Error, Outcome};
use crate::policy::{self, Decision, Subject};
use crate::push::{self, Op};
use crate::text::shown;
use serde_json::json;
use std::io::Write;
use std::path::Path;

/// What `explain` is asked.
pub struct Question {
    pub user: String,
    /// `None` for the whole-repository ops (`read`, `repo-create`, `repo-delete`).
    pub ref_name: Option<String>,
    pub op: Op,
    pub repo: Option<String>,
    pub path: Option<String>,
}

/// Which rule decides `op` on a ref (and a path) for a user, and why.
pub fn run(config_path: &Path, q: &Question, json: bool, out: &mut dyn Write) -> Result<Outcome, Error> {
    let op = q.op;
    let ref_name = match (&q.ref_name, op) {
        (Some(_), Op::RepoCreate | Op::RepoDelete) => {
            return Err(Error::new(format!("`{op}` is about a whole repository: leave out --ref")));
        }
        (None, op) if !op.is_whole_repository() => {
            return Err(Error::new(format!("`{op}` is about a ref: name it with --ref (refs/heads/main)")));
        }
        (ref_name, _) => ref_name.as_deref(),
    };
    if let Some(ref_name) = ref_name {
        check_full_ref_name(ref_name)?;
    }
    let config = load_for_repo(config_path, q.repo.as_deref())?;
    if !valid_user_name(&q.user) {
        return Err(Error::new(format!("invalid user name {}", shown(&q.user))));
    }
    let user = config.user_named(&q.user);
    let subject = Subject { user: &user, repo: q.repo.as_deref() };

    let ref_decision = match ref_name {
        Some(ref_name) => policy::decide_ref(&config, subject, ref_name, op),
        None => policy::decide_repository(&config, subject, op),
    };
    let path_decision = q
        .path
        .as_ref()
        .zip(ref_name)
        .filter(|_| op != Op::Delete && !op.is_whole_repository())
        .map(|(path, ref_name)| (path, policy::decide_path(&config, subject, ref_name, op, path.as_bytes())));
    let allowed = ref_decision.allowed && path_decision.as_ref().is_none_or(|(_, d)| d.allowed);

    if json {
        let mut answer = json!({
            "user": user, "ref": ref_name, "op": op.as_str(), "repo": q.repo,
            "allowed": allowed, "ref_pass": decision_json(&ref_decision),
        });
        if let Some((path, d)) = &path_decision {
            answer["path_pass"] = json!({"path": path, "decision": decision_json(d)});
        }
        writeln!(out, "{answer}")?;
        return Ok(Outcome::Success);
    }
    let groups = config.groups.of(&user);
    let groups = if groups.is_empty() { String::new() } else { format!(" (groups: {})", groups.join(", ")) };
    let repo = q.repo.as_deref().unwrap_or("any repository");
    match ref_name {
        Some(ref_name) => writeln!(out, "{op} of {ref_name} by {user}{groups} in {repo}")?,
        None => writeln!(out, "{op} by {user}{groups} in {repo}")?,
    }
    write_decision(out, "ref pass", op, &ref_decision, "no rule matched: denied")?;
    if let Some((path, d)) = &path_decision {
        write_decision(out, &format!("path pass for {path}"), op, d, "no path rule matched: allowed")?;
    }
    let checked = ref_name.filter(|_| !op.is_whole_repository());
    for check in checked.map(|r| policy::check::applicable_ignoring_exempt(&config, subject, r)).unwrap_or_default() {
        let mode = if check.mode == Mode::Warn { " (mode = \"warn\")" } else { "" };
        let exempt = check.exempt.iter().any(|u| policy::user_matches(&config, u, &user));
        let what = if exempt { format!("{user} is exempt") } else { "applies to the new commits".to_string() };
        writeln!(out, "check at {}: {what}{mode}", check.origin)?;
    }
    writeln!(out, "verdict: {}", if allowed { "allowed" } else { "denied" })?;
    Ok(Outcome::Success)
}

/// A ref name as the hooks see them: full (`refs/...`) and valid.
fn check_full_ref_name(ref_name: &str) -> Result<(), Error> {
    if !ref_name.starts_with("refs/") {
        let meant = crate::config::suggest::full_ref_name(ref_name);
        return Err(Error::new(format!(
            "ref {} is not a full ref name: did you mean {}?",
            shown(ref_name),
            shown(&meant)
        )));
    }
    push::check_ref_name(ref_name).map_err(|e| Error::new(format!("ref {}: {e}", shown(ref_name))))
}

fn write_decision(out: &mut dyn Write, pass: &str, op: Op, decision: &Decision, no_match: &str) -> std::io::Result<()> {
    for rule in &decision.warnings {
        writeln!(out, "{pass}: rule at {} would deny {op} (mode = \"warn\": reported as a warning)", rule.origin)?;
    }
    match decision.rule {
        Some(rule) => {
            let verdict = if decision.allowed { "allowed" } else { "denied" };
            let message = rule.message.as_ref().map(|m| format!(" ({m})")).unwrap_or_default();
            writeln!(out, "{pass}: rule at {}: {op} {verdict}{message}", rule.origin)
        }
        None => writeln!(out, "{pass}: {no_match}"),
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
