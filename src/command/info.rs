//! `pushgate shell info`: the repositories under `repos_root` a user may read or write, with
//! what they may do in each, and the names they may create (like gitolite's `info`).

use super::lifecycle::{Asker, vcs_name};
use crate::config::Config;
use crate::outcome::{Error, Outcome};
use crate::policy::{self, Subject};
use crate::push::{Op, Vcs};
use crate::repository::{self, own_config};
use serde_json::json;
use std::io::Write;
use std::path::Path;

/// What the user may do in a repository, and in which.
#[derive(Debug, PartialEq, Eq)]
pub struct Access {
    pub name: String,
    pub vcs: Vcs,
    pub ops: Vec<Op>,
}

/// `info`: every repository under the root the user may read or write (a write op some
/// rule allows them on some ref; pre-receive decides each ref), with what they may do
/// there, and the names they may create, as patterns.
pub fn run(asker: &Asker, config: &Config, json: bool, out: &mut dyn Write) -> Result<Outcome, Error> {
    let user = asker.user;
    let mut listed = Vec::new();
    for (dir, vcs) in repository::under(asker.root) {
        let Some(name) = repository_name(asker.root, &dir, vcs) else { continue };
        let own = own_config(&dir, vcs);
        let loaded;
        let config = if own.is_file() {
            // A repository whose own file is broken is not listed: what it allows is unknown.
            match Config::load(asker.config_path, Some(&own)) {
                Ok(c) => {
                    loaded = c;
                    &loaded
                }
                Err(_) => continue,
            }
        } else {
            config
        };
        let ops = allowed_ops(config, user, &name);
        if ops.iter().any(|op| *op != Op::RepoDelete) {
            listed.push(Access { name, vcs, ops });
        }
    }
    let creatable = creatable(config, user);
    if json {
        let repositories: Vec<_> = listed
            .iter()
            .map(|a| {
                let ops: Vec<&str> = a.ops.iter().map(|op| op.as_str()).collect();
                json!({"name": a.name, "vcs": a.vcs, "ops": ops})
            })
            .collect();
        let answer = json!({"user": user, "repositories": repositories, "create": creatable});
        writeln!(out, "{}", crate::text::json(&answer))?;
        return Ok(Outcome::Success);
    }
    writeln!(out, "hello {user}, this is pushgate {}", env!("CARGO_PKG_VERSION"))?;
    if listed.is_empty() {
        writeln!(out, "no repository here that you may read or write")?;
    }
    let width = listed.iter().map(|a| a.name.chars().count()).max().unwrap_or(0);
    for access in &listed {
        let ops: Vec<&str> = access.ops.iter().map(|op| op.as_str()).collect();
        let name = crate::text::one_line(&access.name, None);
        writeln!(out, "  {name:width$}  {:3}  {}", vcs_name(access.vcs), ops.join(", "))?;
    }
    match creatable.as_slice() {
        [] => writeln!(out, "you may not create repositories")?,
        patterns => writeln!(out, "you may create (create [--hg] <name>): {}", patterns.join(", "))?,
    }
    Ok(Outcome::Success)
}

/// A repository's name: its path under the root, without `.git` for Git.
fn repository_name(root: &Path, dir: &Path, vcs: Vcs) -> Option<String> {
    let name = dir.strip_prefix(root).ok()?.to_str()?;
    Some(match vcs {
        Vcs::Git => name.strip_suffix(".git").unwrap_or(name).to_string(),
        Vcs::Hg => name.to_string(),
    })
}

/// The ops `user` may do in `repo`: `read` and `repo-delete` as the rules decide them; a
/// ref op when a rule allows it on some ref, and no earlier rule over every ref denies it.
pub fn allowed_ops(config: &Config, user: &str, repo: &str) -> Vec<Op> {
    let subject = Subject { user, repo: Some(repo) };
    let rules: Vec<_> = config
        .rules
        .iter()
        .filter(|r| r.paths.is_none() && r.mode == crate::config::Mode::Enforce)
        .filter(|r| policy::applies(config, r, subject))
        .collect();
    let on_some_ref = |op: &Op| {
        for rule in &rules {
            if rule.allow.contains(op) {
                return true;
            }
            if rule.deny.contains(op) && rule.scope.covers_every_ref() {
                return false;
            }
        }
        false
    };
    let mut ops = Vec::new();
    if policy::decide_read(config, subject).allowed {
        ops.push(Op::Read);
    }
    ops.extend([Op::Create, Op::Update, Op::Force, Op::Delete].into_iter().filter(on_some_ref));
    if policy::decide_repository(config, subject, Op::RepoDelete).allowed {
        ops.push(Op::RepoDelete);
    }
    ops
}

/// The repository names `user` may create, as the patterns of the rules that allow it,
/// `{user}` filled in (each name is still decided by the rules in order).
pub fn creatable(config: &Config, user: &str) -> Vec<String> {
    let mut patterns: Vec<String> = Vec::new();
    for rule in config.rules.iter().filter(|r| r.paths.is_none() && r.mode == crate::config::Mode::Enforce) {
        let for_user = rule.users.iter().any(|u| policy::user_matches(config, u, user));
        if for_user && rule.allow.contains(&Op::RepoCreate) {
            for glob in &rule.scope.repos {
                let shown = glob.shown_as(user);
                if !patterns.contains(&shown) {
                    patterns.push(shown);
                }
            }
        }
    }
    patterns
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn info_lists_the_ops_and_the_patterns_of_the_user() {
        let config = Config::parse(
            Path::new("c.toml"),
            r#"
[[rule]]
repos = ["users/{user}/*"]
users = ["*"]
allow = ["all", "repo-create", "repo-delete"]
[[rule]]
repos = ["team/*"]
users = ["*"]
deny = ["force"]
[[rule]]
repos = ["team/*"]
refs = ["refs/heads/users/{user}/**"]
users = ["*"]
allow = ["force", "delete"]
[[rule]]
repos = ["team/*"]
users = ["*"]
allow = ["read", "write"]
[[rule]]
repos = ["scratch/*"]
users = ["@devs"]
allow = ["repo-create"]
[groups]
devs = ["bob"]
"#,
            None,
        )
        .unwrap();
        use Op::*;
        assert_eq!(allowed_ops(&config, "alice", "users/alice/x"), [Read, Create, Update, Force, Delete, RepoDelete]);
        assert_eq!(allowed_ops(&config, "alice", "users/bob/x"), []);
        assert_eq!(allowed_ops(&config, "alice", "team/app"), [Read, Create, Update, Delete]);
        assert_eq!(creatable(&config, "alice"), ["users/alice/*"]);
        assert_eq!(creatable(&config, "bob"), ["users/bob/*", "scratch/*"]);
    }
}
