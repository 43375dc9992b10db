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
    pub ref_name: String,
    pub op: Op,
    pub repo: Option<String>,
    pub path: Option<String>,
}

/// Which rule decides `op` on a ref (and a path) for a user, and why.
pub fn run(config_path: &Path, q: &Question, json: bool, out: &mut dyn Write) -> Result<Outcome, Error> {
    let op = q.op;
    push::check_ref_name(&q.ref_name).map_err(|e| Error::new(format!("ref {}: {e}", shown(&q.ref_name))))?;
    let config = load_for_repo(config_path, q.repo.as_deref())?;
    if !valid_user_name(&q.user) {
        return Err(Error::new(format!("invalid user name {}", shown(&q.user))));
    }
    let user = config.user_named(&q.user);
    let subject = Subject { user: &user, repo: q.repo.as_deref() };

    let ref_decision = policy::decide_ref(&config, subject, &q.ref_name, op);
    let path_decision = q
        .path
        .as_ref()
        .filter(|_| op != Op::Delete && op != Op::Read)
        .map(|path| (path, policy::decide_path(&config, subject, &q.ref_name, op, path.as_bytes())));
    let allowed = ref_decision.allowed && path_decision.as_ref().is_none_or(|(_, d)| d.allowed);

    if json {
        let mut answer = json!({
            "user": user, "ref": q.ref_name, "op": op.as_str(), "repo": q.repo,
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
    writeln!(out, "{op} of {} by {user}{groups} in {repo}", q.ref_name)?;
    write_decision(out, "ref pass", op, &ref_decision, "no rule matched: denied")?;
    if let Some((path, d)) = &path_decision {
        write_decision(out, &format!("path pass for {path}"), op, d, "no path rule matched: allowed")?;
    }
    for check in policy::check::applicable_ignoring_exempt(&config, subject, &q.ref_name) {
        let mode = if check.mode == Mode::Warn { " (mode = \"warn\")" } else { "" };
        let exempt = check.exempt.iter().any(|u| policy::user_matches(&config, u, &user));
        let what = if exempt { format!("{user} is exempt") } else { "applies to the new commits".to_string() };
        writeln!(out, "check {} at {}: {what}{mode}", check.number, check.origin)?;
    }
    writeln!(out, "verdict: {}", if allowed { "allowed" } else { "denied" })?;
    Ok(Outcome::Success)
}

fn write_decision(out: &mut dyn Write, pass: &str, op: Op, decision: &Decision, no_match: &str) -> std::io::Result<()> {
    for rule in &decision.warnings {
        writeln!(
            out,
            "{pass}: rule {} at {} would deny {op} (mode = \"warn\": reported as a warning)",
            rule.number, rule.origin
        )?;
    }
    match decision.rule {
        Some(rule) => {
            let verdict = if decision.allowed { "allowed" } else { "denied" };
            let message = rule.message.as_ref().map(|m| format!(" ({m})")).unwrap_or_default();
            writeln!(out, "{pass}: rule {} at {}: {op} {verdict}{message}", rule.number, rule.origin)
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
