//! Push checks (`[[check]]`): declarative rules on the new commits of each update. Every
//! failing commit is listed (short id, first line, which check), up to a readable number.

use super::{MAX_LINES_PER_KIND, Subject, Verdict, user_matches};
use crate::config::{Check, Config, Mode};
use crate::push::{Action, Change, Commit, FileKind};
use crate::text::{self, shown};
use std::collections::BTreeSet;

/// The checks that apply to this update and this pusher, in evaluation order.
pub fn applicable<'c>(config: &'c Config, subject: Subject, ref_name: &str) -> Vec<&'c Check> {
    applicable_ignoring_exempt(config, subject, ref_name)
        .into_iter()
        .filter(|c| !c.exempt.iter().any(|u| user_matches(config, u, subject.user)))
        .collect()
}

/// The checks scoped to this repository and ref, exempt pusher or not.
pub fn applicable_ignoring_exempt<'c>(config: &'c Config, subject: Subject, ref_name: &str) -> Vec<&'c Check> {
    config
        .checks
        .iter()
        .filter(|c| c.scope.covers_repo_as(subject.repo, subject.user) && c.scope.covers_ref_as(ref_name, subject.user))
        .collect()
}

/// Run the checks that apply to an update of the ref `name`, adding failures to `verdict`.
pub fn judge(config: &Config, subject: Subject, name: &str, change: &Change, verdict: &mut Verdict) {
    if change.action == Action::Delete && change.commits.is_empty() {
        return;
    }
    for check in applicable(config, subject, name) {
        let mut lines = failures(config, subject.user, name, check, change);
        let total = lines.len();
        if total > MAX_LINES_PER_KIND {
            lines.truncate(MAX_LINES_PER_KIND);
            lines.push(format!("{name}: … and {} more failing {}", total - MAX_LINES_PER_KIND, check.name()));
        }
        match check.mode {
            Mode::Enforce => verdict.rejections.extend(lines),
            Mode::Warn => verdict.warnings.extend(lines),
        }
    }
}

/// Every failure of `check` on `change`, as lines for the pusher.
fn failures(config: &Config, user: &str, name: &str, check: &Check, change: &Change) -> Vec<String> {
    let label = format!("({})", check.name());
    let mut out = Vec::new();
    for commit in &change.commits {
        for problem in commit_problems(config, user, check, commit) {
            out.push(format!("{name}: {} {}: {problem} {label}", commit.id.to_hex_with_len(7), subject(commit)));
        }
    }
    if !check.forbid_paths.is_empty() {
        for commit in &change.commits {
            for file in commit.files.iter().filter(|f| f.kind != FileKind::Removed) {
                if let Some(glob) = check.forbid_paths.iter().find(|g| g.matches(&file.path)) {
                    let path = text::path(&file.path);
                    let short = commit.id.to_hex_with_len(7);
                    out.push(format!("{name}: {path}: forbidden by {:?} in {short} {label}", glob.as_str()));
                }
            }
        }
    }
    if let Some(max) = check.max_files_changed {
        let paths: BTreeSet<&[u8]> = change.commits.iter().flat_map(|c| &c.files).map(|f| f.path.as_slice()).collect();
        if paths.len() > max {
            out.push(format!("{name}: changes {} files, more than max_files_changed {max} {label}", paths.len()));
        }
    }
    out
}

fn commit_problems(config: &Config, user: &str, check: &Check, commit: &Commit) -> Vec<String> {
    let mut problems = Vec::new();
    if let Some(re) = &check.commit_message {
        let first = commit.message.lines().next().unwrap_or("");
        if !re.is_match(first) {
            problems.push(format!("message does not match {:?}", re.as_str()));
        }
    }
    if let Some(re) = &check.author_email
        && !re.is_match(&commit.author.email)
    {
        problems.push(format!("author email {} does not match {:?}", shown(&commit.author.email), re.as_str()));
    }
    if let Some(re) = &check.committer_email
        && !re.is_match(&commit.committer.email)
    {
        problems.push(format!("committer email {} does not match {:?}", shown(&commit.committer.email), re.as_str()));
    }
    if check.linear_history && commit.parents.len() > 1 {
        problems.push("is a merge commit (linear_history)".into());
    }
    if check.require_signed && !commit.signed {
        problems.push("is not signed (require_signed; signatures are not verified)".into());
    }
    if check.author_is_pusher {
        let email = &commit.author.email;
        let known = config.users.get(user).is_some_and(|emails| emails.iter().any(|e| e.eq_ignore_ascii_case(email)));
        if !known {
            problems.push(format!(
                "author {} is not one of {user}'s emails (author_is_pusher)",
                shown(&commit.author.email)
            ));
        }
    }
    problems
}

fn subject(commit: &Commit) -> String {
    let first = commit.message.lines().next().unwrap_or("");
    let cut: String = first.chars().take(60).collect();
    shown(if cut.len() < first.len() { &cut } else { first })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::push::{Blob, FileChange, Person, RefUpdate};
    use gix::ObjectId;
    use std::path::Path;

    const CONFIG: &str = r#"
[groups]
maintainers = ["alice"]
[users.bob]
emails = ["Bob@Example.org"]
[[rule]]
users = ["*"]
allow = ["all"]
[[check]]
refs = ["refs/heads/main"]
commit_message = "^(feat|fix): "
author_email = "@example\\.org$"
linear_history = true
require_signed = true
author_is_pusher = true
exempt = ["@maintainers"]
[[check]]
refs = ["refs/heads/**"]
forbid_paths = ["*.pem", "**/id_rsa"]
max_files_changed = 2
max_blob_size = "1 KiB"
mode = "warn"
"#;

    fn config() -> Config {
        Config::parse(Path::new("c.toml"), CONFIG, None).unwrap()
    }

    fn commit(byte: u8, message: &str, email: &str, parents: usize, files: &[(&str, u64)]) -> Commit {
        let id = ObjectId::from_bytes_or_panic(&[byte; 20]);
        let person = Person { name: "B".into(), email: email.into(), time: 0, offset: 0 };
        Commit {
            id,
            tree: id,
            parents: vec![id; parents],
            author: person.clone(),
            committer: person,
            message: message.into(),
            signed: false,
            distinct: true,
            refused_entries: vec![],
            files: files
                .iter()
                .map(|(p, size)| FileChange {
                    path: p.as_bytes().to_vec(),
                    kind: FileKind::Added,
                    blob: Some(Blob { id, size: *size, added: true }),
                })
                .collect(),
        }
    }

    fn change(name: &str, commits: Vec<Commit>) -> Change {
        let id = ObjectId::from_bytes_or_panic(&[1; 20]);
        Change {
            update: RefUpdate { old: id, new: id, name: name.into() },
            action: Action::Update,
            commits,
            head: None,
            head_files_pending: false,
            non_commit: None,
            aliases: vec![],
            base_ref: None,
            tag_message: None,
        }
    }

    fn verdict(user: &str, change: &Change) -> Verdict {
        let mut verdict = Verdict::default();
        let name = change.update.name.clone();
        super::super::judge_change(&config(), Subject { user, repo: Some("app") }, &name, change, &mut verdict);
        verdict
    }

    #[test]
    fn every_failing_commit_is_listed_with_the_check() {
        let c = change("refs/heads/main", vec![commit(0xab, "wip\nbody", "x@evil.com", 2, &[])]);
        let v = verdict("bob", &c);
        let short = "abababa";
        assert_eq!(
            v.rejections,
            [
                format!("refs/heads/main: {short} \"wip\": message does not match \"^(feat|fix): \" (check 1)"),
                format!(
                    "refs/heads/main: {short} \"wip\": author email \"x@evil.com\" does not match \"@example\\\\.org$\" (check 1)"
                ),
                format!("refs/heads/main: {short} \"wip\": is a merge commit (linear_history) (check 1)"),
                format!(
                    "refs/heads/main: {short} \"wip\": is not signed (require_signed; signatures are not verified) (check 1)"
                ),
                format!(
                    "refs/heads/main: {short} \"wip\": author \"x@evil.com\" is not one of bob's emails (author_is_pusher) (check 1)"
                ),
            ]
        );
    }

    #[test]
    fn passing_commits_and_exempt_users_pass() {
        let mut good = commit(1, "fix: it", "bob@example.org", 1, &[]);
        good.signed = true;
        assert!(verdict("bob", &change("refs/heads/main", vec![good])).accepted());
        let bad = commit(2, "wip", "x@evil.com", 2, &[]);
        assert!(verdict("alice", &change("refs/heads/main", vec![bad])).rejections.is_empty());
    }

    #[test]
    fn warn_checks_warn_and_override_the_blob_limit_in_scope() {
        let c = change(
            "refs/heads/topic",
            vec![commit(3, "x", "b@example.org", 1, &[("keys/server.pem", 10), ("a", 10), ("big", 5000)])],
        );
        let v = verdict("bob", &c);
        assert!(v.accepted());
        assert!(
            v.warnings.iter().any(|w| w.starts_with("refs/heads/topic: keys/server.pem: forbidden by \"*.pem\"")),
            "{v:?}"
        );
        assert!(
            v.warnings
                .iter()
                .any(|w| w == "refs/heads/topic: changes 3 files, more than max_files_changed 2 (check 2)"),
            "{v:?}"
        );
        assert!(
            v.warnings.iter().any(|w| w.contains("big (4.9 KiB) in 0303030 exceeds max_blob_size 1 KiB (check 2)")),
            "{v:?}"
        );
    }

    #[test]
    fn many_failures_are_capped() {
        let commits = (0..30).map(|i| commit(i, "nope", "bob@example.org", 1, &[])).collect();
        let v = verdict("bob", &change("refs/heads/main", commits));
        let messages: Vec<_> = v
            .rejections
            .iter()
            .filter(|r| r.contains("message does not match") || r.contains("more failing"))
            .collect();
        assert!(v.rejections.len() <= MAX_LINES_PER_KIND + 1, "{}", v.rejections.len());
        assert!(v.rejections.last().unwrap().contains("more failing check 1"), "{messages:?}");
    }

    #[test]
    fn invalid_regexes_are_config_errors_with_positions() {
        let e = Config::parse(Path::new("c.toml"), "[[check]]\ncommit_message = \"(unclosed\"\n", None)
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("c.toml:2:18: invalid regular expression \"(unclosed\""), "{e}");
        let e =
            Config::parse(Path::new("c.toml"), "[[check]]\nrefs = [\"refs/heads/x\"]\n", None).unwrap_err().to_string();
        assert!(e.contains("checks nothing"), "{e}");
    }
}
