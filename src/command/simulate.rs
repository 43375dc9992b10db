//! `pushgate simulate`: the pre-receive decision on given update lines, changing nothing.

use super::check::git_dir_of;
use crate::config::{self, Config, REPO_FILE};
use crate::env::Env;
use crate::gate::Request;
use crate::git::Quarantine;
use crate::identity;
use crate::outcome::{Error, Outcome};
use crate::push::{self, Vcs};
use crate::text::shown;
use serde_json::json;
use std::io::{Read, Write};
use std::path::Path;

/// Dry-run pre-receive on `<old> <new> <ref>` lines from `stdin` against a repository: the
/// rules, then the `pre` extensions (which are really called), never the audit log.
pub fn run(
    config_path: &Path,
    repo: &Path,
    user: Option<String>,
    json: bool,
    env: &Env,
    stdin: &mut dyn Read,
    out: &mut dyn Write,
) -> Result<Outcome, Error> {
    let git_dir = git_dir_of(repo)
        .canonicalize()
        .map_err(|e| Error::new(format!("cannot open repository {}: {e}", repo.display())))?;
    let config = Config::load(config_path, Some(&git_dir.join(REPO_FILE)))?;
    let user = match user {
        Some(user) => config.user_named(&user),
        None => config.user(env).map_err(|e| Error::new(e.to_string()))?,
    };
    if !identity::valid_user_name(&user) {
        return Err(Error::new(format!("invalid user name {}", shown(&user))));
    }
    let mut input = Vec::new();
    stdin.read_to_end(&mut input).map_err(|e| Error::new(format!("cannot read stdin: {e}")))?;
    let updates = push::parse_updates(&input).map_err(|e| Error::new(format!("stdin: {e}")))?;
    let name = config::repo_name(&git_dir, config.repos_root.as_deref());
    let request = Request { config: &config, user: &user, repo: &name, path: &git_dir, vcs: Vcs::Git, env };
    let (push, verdict) =
        crate::hook::git::decide(&request, &Quarantine::default(), &updates, &updates).map_err(Error::new)?;

    if json {
        let changes: Vec<_> = push
            .changes
            .iter()
            .map(|c| json!({"ref": c.update.name, "action": c.action.as_str(), "commits": c.commits.len()}))
            .collect();
        let answer = json!({"user": user, "repo": name, "accepted": verdict.accepted(), "changes": changes,
                            "rejections": verdict.rejections, "warnings": verdict.warnings});
        writeln!(out, "{answer}")?;
    } else {
        for change in &push.changes {
            writeln!(out, "{}: {} ({} new commits)", change.update.name, change.action, change.commits.len())?;
            for commit in &change.commits {
                let subject = commit.message.lines().next().unwrap_or_default();
                let author = &commit.author;
                let short = commit.id.to_hex_with_len(7);
                writeln!(out, "  {short} {} ({} <{}>)", shown(subject), author.name, author.email)?;
            }
        }
        for line in verdict.report(&user) {
            writeln!(out, "{line}")?;
        }
        let result = if verdict.accepted() { "accepted" } else { "rejected" };
        writeln!(out, "pushgate: simulate: the push would be {result}")?;
    }
    Ok(if verdict.accepted() { Outcome::Success } else { Outcome::Rejected })
}
