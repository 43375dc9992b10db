//! The decision: ref pass, path pass and size limits over a [`Push`], giving a [`Verdict`].
//! Pure: plain data in, plain data out, no I/O.

pub mod check;

use crate::config::{Config, Mode, Rule, UserPattern, units::human_size};
use crate::push::{Action, Change, FileChange, Op, Push};
use crate::text;
use std::collections::BTreeSet;

/// How many denied paths or oversized blobs one ref lists before summing up the rest.
pub(crate) const MAX_LINES_PER_KIND: usize = 20;

/// What pushgate decided about a push: every reason to reject, every warning.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Verdict {
    pub rejections: Vec<String>,
    pub warnings: Vec<String>,
}

impl Verdict {
    pub fn accepted(&self) -> bool {
        self.rejections.is_empty()
    }

    /// The lines shown to the pusher, each prefixed `pushgate: `, each one line whatever
    /// the ref names and paths in it hold.
    pub fn report(&self, user: &str) -> Vec<String> {
        let line = |text: &str| text::one_line(text, None);
        let mut lines: Vec<String> = self.warnings.iter().map(|w| format!("pushgate: warning: {}", line(w))).collect();
        if !self.accepted() {
            lines.push(format!("pushgate: push rejected for {user}"));
            lines.extend(self.rejections.iter().map(|r| format!("pushgate: {}", line(r))));
        }
        lines
    }
}

/// Who is asking, and where.
#[derive(Debug, Clone, Copy)]
pub struct Subject<'a> {
    pub user: &'a str,
    /// The repository's name; `None` matches only rules that apply to every repository.
    pub repo: Option<&'a str>,
}

/// The outcome of one pass for one ref (or one path): the rule that decided, if any, and
/// the warn-mode rules that would have decided otherwise on the way.
#[derive(Debug)]
pub struct Decision<'c> {
    pub allowed: bool,
    pub rule: Option<&'c Rule>,
    pub warnings: Vec<&'c Rule>,
}

/// The ref pass: rules without `paths`, first match decides, no match denies.
pub fn decide_ref<'c>(config: &'c Config, subject: Subject, ref_name: &str, op: Op) -> Decision<'c> {
    decide(config, subject, Some(ref_name), op, None)
}

/// Whether `user` may read (clone, fetch) the repository: the first rule over every ref
/// that names `read` decides; none: denied.
pub fn decide_read<'c>(config: &'c Config, subject: Subject) -> Decision<'c> {
    decide(config, subject, None, Op::Read, None)
}

/// Whether `user` may do a whole-repository op (`read`, `repo-create`, `repo-delete`) on
/// the repository: the first rule over every ref that names it decides; none: denied.
pub fn decide_repository<'c>(config: &'c Config, subject: Subject, op: Op) -> Decision<'c> {
    decide(config, subject, None, op, None)
}

/// The path pass for one path: path rules, first match decides, no match allows.
pub fn decide_path<'c>(config: &'c Config, subject: Subject, ref_name: &str, op: Op, path: &[u8]) -> Decision<'c> {
    decide(config, subject, Some(ref_name), op, Some(path))
}

/// The first matching rule of a pass; `ref_name` `None`: the repository as a whole.
fn decide<'c>(
    config: &'c Config,
    subject: Subject,
    ref_name: Option<&str>,
    op: Op,
    path: Option<&[u8]>,
) -> Decision<'c> {
    let mut warnings = Vec::new();
    for rule in &config.rules {
        let in_pass = match (path, &rule.paths) {
            (None, None) => true,
            (Some(path), Some(globs)) => globs.iter().any(|g| g.matches(path)),
            _ => false,
        };
        if !in_pass || !rule_applies(config, rule, subject, ref_name) {
            continue;
        }
        // `read` is about a whole repository: only a rule over every ref grants or denies it
        // (a rule for `refs/heads/main` with `allow = ["all"]` does not open the repository).
        // So are `repo-create` and `repo-delete` (a rule naming them has no `refs`).
        if op.is_whole_repository() && !rule.scope.covers_every_ref() {
            continue;
        }
        let allowed = if rule.allow.contains(&op) {
            true
        } else if rule.deny.contains(&op) {
            false
        } else {
            continue;
        };
        match rule.mode {
            Mode::Warn if !allowed => warnings.push(rule),
            Mode::Warn => {}
            Mode::Enforce => {
                return Decision { allowed, rule: Some(rule), warnings };
            }
        }
    }
    Decision { allowed: path.is_some(), rule: None, warnings }
}

fn rule_applies(config: &Config, rule: &Rule, subject: Subject, ref_name: Option<&str>) -> bool {
    applies(config, rule, subject) && ref_name.is_none_or(|name| rule.scope.covers_ref_as(name, subject.user))
}

/// Whether `rule` is about this repository and this user (whatever its refs); `{user}` in
/// its patterns stands for the user.
pub fn applies(config: &Config, rule: &Rule, subject: Subject) -> bool {
    rule.scope.covers_repo_as(subject.repo, subject.user)
        && rule.users.iter().any(|u| user_matches(config, u, subject.user))
}

pub(crate) fn user_matches(config: &Config, pattern: &UserPattern, user: &str) -> bool {
    match pattern {
        UserPattern::Any => true,
        UserPattern::Name(name) => name == user,
        UserPattern::Group(group) => config.groups.contains(group, user),
    }
}

/// `(rule 3: main is protected)` or `(rule 3)`.
pub fn rule_label(rule: &Rule) -> String {
    match &rule.message {
        Some(message) => format!("({}: {})", rule.name(), message),
        None => format!("({})", rule.name()),
    }
}

/// Decide a whole push: every reason of every update. An update of a symbolic ref is
/// judged under its own name and under each ref it moves.
pub fn judge(config: &Config, subject: Subject, push: &Push) -> Verdict {
    let mut verdict = Verdict::default();
    for change in &push.changes {
        for name in change.judged_names() {
            judge_change(config, subject, name, change, &mut verdict);
        }
    }
    judge_pushed_blobs(config, push, &mut verdict);
    verdict
}

/// `[limits] max_blob_size` over the blobs of the pushed pack that no commit of the push
/// writes (those are judged with their ref's limits).
pub fn judge_pushed_blobs(config: &Config, push: &Push, verdict: &mut Verdict) {
    let Some(limit) = &config.max_blob_size else { return };
    let over: Vec<&(gix::ObjectId, u64)> = push.pushed_blobs.iter().filter(|(_, size)| *size > limit.bytes).collect();
    for (id, size) in over.iter().take(MAX_LINES_PER_KIND) {
        let (short, size) = (id.to_hex_with_len(7), human_size(*size));
        verdict.rejections.push(format!("pushed pack: blob {short} ({size}) exceeds max_blob_size {limit}"));
    }
    if over.len() > MAX_LINES_PER_KIND {
        let more = over.len() - MAX_LINES_PER_KIND;
        verdict.rejections.push(format!("pushed pack: … and {more} more blobs over max_blob_size"));
    }
}

/// Decide one update of the ref `name`, adding its reasons to `verdict`.
pub fn judge_change(config: &Config, subject: Subject, name: &str, change: &Change, verdict: &mut Verdict) {
    let op = change.action.op();
    let decision = decide_ref(config, subject, name, op);
    for rule in &decision.warnings {
        verdict.warnings.push(format!("{name}: {op} denied {}", rule_label(rule)));
    }
    if !decision.allowed {
        let why = decision.rule.map_or_else(|| "(no rule allows it)".to_string(), rule_label);
        verdict.rejections.push(format!("{name}: {op} denied {why}"));
    }
    // A delete brings nothing, except in Mercurial, where closing a branch is a delete that
    // can carry changesets: those are judged like any others.
    if change.action == Action::Delete && change.commits.is_empty() {
        return;
    }
    judge_tree_entries(name, change, verdict);
    if let Some(kind) = change.non_commit
        && inspects_contents(config)
    {
        verdict.rejections.push(format!(
            "{name}: points at a {kind}, not a commit: its contents cannot be checked against the path rules and limits"
        ));
    }
    judge_paths(config, subject, name, change, verdict);
    judge_blob_sizes(config, subject, name, change, verdict);
    check::judge(config, subject, name, change, verdict);
}

/// Tree entries git's fsck refuses reject the push, whatever the rules: they slip past path
/// rules (`./deploy/x` is not `deploy/**`) and make the ref unclonable.
fn judge_tree_entries(name: &str, change: &Change, verdict: &mut Verdict) {
    let refused = change.commits.iter().flat_map(|c| c.refused_entries.iter().map(move |p| (c.id, p)));
    let mut count = 0;
    for (id, path) in refused {
        count += 1;
        if count <= MAX_LINES_PER_KIND {
            verdict.rejections.push(format!(
                "{name}: {} writes the tree entry {}, which git refuses (`.`, `..`, `.git`, empty or with `/`)",
                id.to_hex_with_len(7),
                text::shown_bytes(path)
            ));
        }
    }
    if count > MAX_LINES_PER_KIND {
        verdict.rejections.push(format!("{name}: … and {} more refused tree entries", count - MAX_LINES_PER_KIND));
    }
}

/// Whether anything judges what a push contains (paths, sizes, files): then a ref to a bare
/// tree or blob, which brings contents without commits, is refused (fail closed).
fn inspects_contents(config: &Config) -> bool {
    config.rules.iter().any(|r| r.paths.is_some())
        || config.smallest_blob_limit().is_some()
        || config.checks.iter().any(|c| !c.forbid_paths.is_empty() || c.max_files_changed.is_some())
}

fn judge_paths(config: &Config, subject: Subject, name: &str, change: &Change, verdict: &mut Verdict) {
    if !config.rules.iter().any(|r| r.paths.is_some()) {
        return;
    }
    // Paths are written, not deleted, by the changesets a closing delete carries.
    let op = if change.action == Action::Delete { Op::Update } else { change.action.op() };
    let paths: BTreeSet<&[u8]> = change.commits.iter().flat_map(|c| &c.files).map(|f| f.path.as_slice()).collect();
    let mut denied = 0;
    for path in paths {
        let decision = decide_path(config, subject, name, op, path);
        let shown = text::path(path);
        for rule in &decision.warnings {
            verdict.warnings.push(format!("{name}: {shown}: {op} denied {}", rule_label(rule)));
        }
        if !decision.allowed {
            denied += 1;
            if denied <= MAX_LINES_PER_KIND {
                let rule = decision.rule.expect("the path pass denies only through a rule");
                verdict.rejections.push(format!("{name}: {shown}: {op} denied {}", rule_label(rule)));
            }
        }
    }
    if denied > MAX_LINES_PER_KIND {
        verdict.rejections.push(format!("{name}: … and {} more paths denied", denied - MAX_LINES_PER_KIND));
    }
}

fn judge_blob_sizes(config: &Config, subject: Subject, name: &str, change: &Change, verdict: &mut Verdict) {
    // The first enforcing check with a max_blob_size overrides [limits] in its scope;
    // warn-mode checks only add warnings, never lift the enforced limit.
    let scoped = check::applicable(config, subject, name);
    let enforced = match scoped.iter().find(|c| c.mode == Mode::Enforce && c.max_blob_size.is_some()) {
        Some(c) => c.max_blob_size.as_ref().map(|s| (s, format!(" ({})", c.name()))),
        None => config.max_blob_size.as_ref().map(|s| (s, String::new())),
    };
    if let Some((limit, label)) = enforced {
        verdict.rejections.extend(oversized_lines(name, change, limit, &label));
    }
    for c in scoped.iter().filter(|c| c.mode == Mode::Warn) {
        if let Some(limit) = &c.max_blob_size {
            verdict.warnings.extend(oversized_lines(name, change, limit, &format!(" ({})", c.name())));
        }
    }
}

/// One line per new blob of `change` over `limit`, capped.
fn oversized_lines(name: &str, change: &Change, limit: &crate::config::Size, label: &str) -> Vec<String> {
    let mut seen = BTreeSet::new();
    let mut lines = Vec::new();
    let mut over = 0;
    for commit in &change.commits {
        for file in &commit.files {
            let Some(blob) = file.blob.as_ref().filter(|b| b.added) else { continue };
            if blob.size <= limit.bytes || !seen.insert((&file.path, blob.id)) {
                continue;
            }
            over += 1;
            if over <= MAX_LINES_PER_KIND {
                lines.push(format!("{}{label}", oversized(name, file, commit.id, limit)));
            }
        }
    }
    if over > MAX_LINES_PER_KIND {
        lines.push(format!("{name}: … and {} more blobs over max_blob_size", over - MAX_LINES_PER_KIND));
    }
    lines
}

fn oversized(ref_name: &str, file: &FileChange, commit: gix::ObjectId, limit: &crate::config::Size) -> String {
    let size = file.blob.as_ref().map_or(0, |b| b.size);
    format!(
        "{ref_name}: {} ({}) in {} exceeds max_blob_size {limit}",
        text::path(&file.path),
        human_size(size),
        commit.to_hex_with_len(7)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::push::{Blob, Commit, FileKind, RefUpdate};
    use std::path::Path;

    const CONFIG: &str = r#"
[groups]
maintainers = ["alice"]
[limits]
max_blob_size = "1 KiB"
[[rule]]
refs = ["refs/heads/main"]
users = ["@maintainers"]
allow = ["all"]
[[rule]]
refs = ["refs/heads/main"]
users = ["*"]
allow = ["update"]
deny = ["force", "delete"]
message = "main is protected"
[[rule]]
refs = ["refs/heads/**"]
paths = ["deploy/**"]
users = ["*"]
deny = ["create", "update", "force"]
[[rule]]
refs = ["refs/heads/wip/**"]
users = ["*"]
deny = ["force"]
mode = "warn"
[[rule]]
refs = ["refs/heads/**", "refs/tags/**"]
users = ["*"]
allow = ["all"]
"#;

    fn config() -> Config {
        Config::parse(Path::new("config.toml"), CONFIG, None).unwrap()
    }

    fn id(byte: u8) -> gix::ObjectId {
        gix::ObjectId::from_bytes_or_panic(&[byte; 20])
    }

    fn change(name: &str, action: Action, files: &[(&[u8], u64)]) -> Change {
        let files = files
            .iter()
            .map(|(path, size)| FileChange {
                path: path.to_vec(),
                kind: FileKind::Added,
                blob: Some(Blob { id: id(*size as u8), size: *size, added: true }),
            })
            .collect();
        let commit = Commit {
            id: id(7),
            tree: id(8),
            parents: vec![],
            author: Default::default(),
            committer: Default::default(),
            message: String::new(),
            signed: false,
            distinct: true,
            refused_entries: vec![],
            files,
        };
        Change {
            update: RefUpdate { old: id(1), new: id(2), name: name.into() },
            action,
            commits: vec![commit],
            head: None,
            head_files_pending: false,
            non_commit: None,
            aliases: vec![],
            base_ref: None,
            tag_message: None,
        }
    }

    fn verdict(user: &str, changes: Vec<Change>) -> Verdict {
        let push = Push { changes, default_branch: None, pushed_blobs: vec![] };
        judge(&config(), Subject { user, repo: Some("app") }, &push)
    }

    #[test]
    fn first_matching_rule_decides() {
        assert!(verdict("alice", vec![change("refs/heads/main", Action::Force, &[])]).accepted());
        let v = verdict("bob", vec![change("refs/heads/main", Action::Force, &[])]);
        assert_eq!(v.rejections, ["refs/heads/main: force denied (rule 2: main is protected)"]);
        assert!(verdict("bob", vec![change("refs/heads/main", Action::Update, &[])]).accepted());
    }

    #[test]
    fn no_matching_rule_denies() {
        let v = verdict("bob", vec![change("refs/notes/x", Action::Create, &[])]);
        assert_eq!(v.rejections, ["refs/notes/x: create denied (no rule allows it)"]);
    }

    #[test]
    fn path_rules_deny_each_path_and_every_reason_is_listed() {
        let v = verdict(
            "bob",
            vec![
                change("refs/heads/main", Action::Force, &[]),
                change("refs/heads/topic", Action::Update, &[(b"deploy/prod.yml", 10), (b"src/a.rs", 10)]),
            ],
        );
        assert_eq!(
            v.report("bob"),
            [
                "pushgate: push rejected for bob",
                "pushgate: refs/heads/main: force denied (rule 2: main is protected)",
                "pushgate: refs/heads/topic: deploy/prod.yml: update denied (rule 3)",
            ]
        );
    }

    #[test]
    fn oversized_blobs_are_named() {
        let v = verdict("bob", vec![change("refs/heads/topic", Action::Update, &[(b"big.iso", 5000)])]);
        assert_eq!(v.rejections, ["refs/heads/topic: big.iso (4.9 KiB) in 0707070 exceeds max_blob_size 1 KiB"]);
    }

    #[test]
    fn deletes_skip_the_path_pass_unless_they_carry_commits() {
        let mut delete = change("refs/heads/topic", Action::Delete, &[]);
        delete.commits.clear();
        assert!(verdict("bob", vec![delete]).accepted());
        // Closing an hg branch is a delete that can bring changesets: they are judged.
        let closing = change("refs/heads/topic", Action::Delete, &[(b"deploy/x", 1)]);
        assert_eq!(verdict("bob", vec![closing]).rejections, ["refs/heads/topic: deploy/x: update denied (rule 3)"]);
    }

    #[test]
    fn warn_rules_report_but_do_not_decide() {
        let v = verdict("bob", vec![change("refs/heads/wip/x", Action::Force, &[])]);
        assert!(v.accepted());
        assert_eq!(v.report("bob"), ["pushgate: warning: refs/heads/wip/x: force denied (rule 4)"]);
    }

    #[test]
    fn many_denied_paths_are_capped() {
        let paths: Vec<Vec<u8>> = (0..25).map(|i| format!("deploy/{i}").into_bytes()).collect();
        let files: Vec<(&[u8], u64)> = paths.iter().map(|p| (p.as_slice(), 1)).collect();
        let v = verdict("bob", vec![change("refs/heads/topic", Action::Update, &files)]);
        assert_eq!(v.rejections.len(), 21);
        assert_eq!(v.rejections[20], "refs/heads/topic: … and 5 more paths denied");
    }

    #[test]
    fn hostile_paths_are_shown_on_one_line() {
        assert_eq!(text::path(b"a\nb\xff\x1b[31m"), "a\\nb\u{fffd}\\u{1b}[31m");
    }

    #[test]
    fn rules_scoped_to_repos_match_only_there() {
        let config = Config::parse(
            Path::new("c.toml"),
            "[[rule]]\nrepos = [\"team/*\"]\nusers = [\"*\"]\nallow = [\"all\"]\n",
            None,
        )
        .unwrap();
        let d = |repo| decide_ref(&config, Subject { user: "bob", repo }, "refs/heads/x", Op::Create).allowed;
        assert!(d(Some("team/app")));
        assert!(!d(Some("other")));
        assert!(!d(None));
    }

    const ALL: &str = "[[rule]]\nusers = [\"*\"]\nallow = [\"all\"]\n";

    const PERSONAL: &str = r#"
[[rule]]
repos = ["users/{user}/*"]
users = ["*"]
allow = ["repo-create", "repo-delete", "all"]
[[rule]]
repos = ["team/*"]
users = ["*"]
allow = ["read", "write"]
[[rule]]
repos = ["team/*"]
refs = ["refs/heads/users/{user}/**"]
users = ["*"]
allow = ["force"]
"#;

    #[test]
    fn personal_namespaces_are_the_users_own() {
        let config = Config::parse(Path::new("c.toml"), PERSONAL, None).unwrap();
        let repo_op = |user, repo, op| decide_repository(&config, Subject { user, repo: Some(repo) }, op).allowed;
        assert!(repo_op("alice", "users/alice/notes", Op::RepoCreate));
        assert!(repo_op("alice", "users/alice/notes", Op::RepoDelete));
        assert!(!repo_op("alice", "users/bob/notes", Op::RepoCreate));
        assert!(!repo_op("alice", "users/alice/a/b", Op::RepoCreate));
        assert!(!repo_op("alice", "users/alice/notes/", Op::RepoCreate));
        assert!(!repo_op("alice", "users/alice", Op::RepoCreate));
        assert!(repo_op("alice", "team/app", Op::Read));
        let force = |user, name| decide_ref(&config, Subject { user, repo: Some("team/app") }, name, Op::Force).allowed;
        assert!(force("bob", "refs/heads/users/bob/wip"));
        assert!(!force("bob", "refs/heads/users/alice/wip"));
        assert!(!force("alice", "refs/heads/main"));
        let config = Config::parse(Path::new("c.toml"), ALL, None).unwrap();
        let subject = Subject { user: "alice", repo: Some("team/app") };
        assert!(decide_repository(&config, subject, Op::Read).allowed);
        assert!(!decide_repository(&config, subject, Op::RepoCreate).allowed, "`all` does not create repositories");
        assert!(!decide_repository(&config, subject, Op::RepoDelete).allowed, "nor delete them");
    }
}
