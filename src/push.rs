//! The pure model of one push: the ref updates as git hands them to the hooks, and what
//! pushgate learned about each one from the repository.
//!
//! Parsing here is strict and never panics: the lines come from git, but a hook can be run
//! by hand or fed garbage, and a hook that crashes on garbage fails closed anyway, only
//! with a worse message.

use crate::text::{shown, shown_bytes};
use gix::ObjectId;
use serde::{Deserialize, Serialize};
use std::fmt;

/// What a ref update does to its ref.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Create,
    /// A fast-forward (or no change at all).
    Update,
    /// A non-fast-forward: the old value is not an ancestor of the new one.
    Force,
    Delete,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Create => "create",
            Action::Update => "update",
            Action::Force => "force",
            Action::Delete => "delete",
        }
    }

    pub fn op(self) -> Op {
        match self {
            Action::Create => Op::Create,
            Action::Update => Op::Update,
            Action::Force => Op::Force,
            Action::Delete => Op::Delete,
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which version control system a push came through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Vcs {
    Git,
    Hg,
}

/// An operation a rule may allow or deny: the four actions plus `read` (clone/fetch), and
/// the repository operations of `pushgate shell` (`create`, `delete` of a whole repository).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, clap::ValueEnum)]
pub enum Op {
    Create,
    Update,
    Force,
    Delete,
    Read,
    RepoCreate,
    RepoDelete,
}

impl Op {
    /// What `all` stands for: every ref op and `read`, not the repository ops (creating and
    /// deleting repositories is given on purpose, never by a shorthand).
    pub const ALL: [Op; 5] = [Op::Create, Op::Update, Op::Force, Op::Delete, Op::Read];

    /// The names an `allow` or `deny` list may hold.
    pub const NAMES: [&'static str; 9] =
        ["create", "update", "force", "delete", "read", "write", "all", "repo-create", "repo-delete"];

    pub fn as_str(self) -> &'static str {
        match self {
            Op::Create => "create",
            Op::Update => "update",
            Op::Force => "force",
            Op::Delete => "delete",
            Op::Read => "read",
            Op::RepoCreate => "repo-create",
            Op::RepoDelete => "repo-delete",
        }
    }

    /// Whether this op is about a whole repository (`read`, `repo-create`, `repo-delete`)
    /// rather than a ref: only a rule over every ref decides it.
    pub fn is_whole_repository(self) -> bool {
        matches!(self, Op::Read | Op::RepoCreate | Op::RepoDelete)
    }

    /// Whether this op creates or deletes a repository.
    pub fn is_repository_op(self) -> bool {
        matches!(self, Op::RepoCreate | Op::RepoDelete)
    }

    /// The ops a name in an `allow`/`deny` list stands for, shorthands included.
    pub fn expand(name: &str) -> Option<&'static [Op]> {
        Some(match name {
            "create" => &[Op::Create],
            "update" => &[Op::Update],
            "force" => &[Op::Force],
            "delete" => &[Op::Delete],
            "read" => &[Op::Read],
            "repo-create" => &[Op::RepoCreate],
            "repo-delete" => &[Op::RepoDelete],
            "write" => &[Op::Create, Op::Update],
            "all" => &Op::ALL,
            _ => return None,
        })
    }

    pub fn parse(name: &str) -> Option<Op> {
        match Op::expand(name)? {
            [one] => Some(*one),
            _ => None,
        }
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One `<old> <new> <ref>` line: what git is about to do (pre-receive) or did (post-receive).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefUpdate {
    pub old: ObjectId,
    pub new: ObjectId,
    pub name: String,
}

impl RefUpdate {
    /// The actions this update may turn out to be before the repository is read: the
    /// obvious one, or a fast-forward or a force.
    pub fn possible_actions(&self) -> &'static [Action] {
        match self.obvious_action() {
            Some(Action::Create) => &[Action::Create],
            Some(Action::Delete) => &[Action::Delete],
            Some(_) => &[Action::Update],
            None => &[Action::Update, Action::Force],
        }
    }

    /// The action known from the ids alone; `None` when both are set and ancestry decides.
    pub fn obvious_action(&self) -> Option<Action> {
        if self.old.is_null() {
            Some(Action::Create)
        } else if self.new.is_null() {
            Some(Action::Delete)
        } else if self.old == self.new {
            Some(Action::Update)
        } else {
            None
        }
    }
}

/// One push as pushgate understands it: each ref update with its action and new commits.
#[derive(Debug, Clone, Default)]
pub struct Push {
    pub changes: Vec<Change>,
    /// The branch the repository's HEAD names, when it names one.
    pub default_branch: Option<String>,
    /// Blobs of the pushed pack that no commit of the push writes, over the size that was
    /// asked about, with their sizes (judged by `[limits] max_blob_size`).
    pub pushed_blobs: Vec<(ObjectId, u64)>,
}

/// One ref update and what it brings.
#[derive(Debug, Clone)]
pub struct Change {
    pub update: RefUpdate,
    pub action: Action,
    /// The commits new to the repository that this update makes reachable, oldest first.
    pub commits: Vec<Commit>,
    /// The commit the new value names (peeled), new or not; read only when asked for.
    pub head: Option<Commit>,
    /// Only the head's id was read (its event's `head_commit` is completed at fan-out).
    pub head_files_pending: bool,
    /// Set when the new value is not a commit (a tag of a tree, a ref to a blob): `tree` or
    /// `blob`. Its contents are not read as commits are.
    pub non_commit: Option<&'static str>,
    /// The refs this update also moves: when its ref is symbolic, the refs it points at.
    /// Their rules judge the update too.
    pub aliases: Vec<String>,
    /// For a tag: the branch whose tip, once the push has landed, is the commit the tag
    /// names (GitHub's `base_ref`).
    pub base_ref: Option<String>,
    /// For an annotated tag: its message.
    pub tag_message: Option<String>,
}

impl Push {
    /// Each change's ref and action: what decides which extensions are told of the push.
    pub fn ref_actions(&self) -> Vec<(&str, Action)> {
        self.changes.iter().map(|c| (c.update.name.as_str(), c.action)).collect()
    }
}

impl Change {
    /// The update's own ref, then the refs it moves through symbolic refs.
    pub fn judged_names(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.update.name.as_str()).chain(self.aliases.iter().map(String::as_str))
    }
}

#[derive(Debug, Clone)]
pub struct Commit {
    pub id: ObjectId,
    pub tree: ObjectId,
    pub parents: Vec<ObjectId>,
    pub author: Person,
    pub committer: Person,
    pub message: String,
    /// Whether the commit carries a signature header (`gpgsig`); the signature is not verified.
    pub signed: bool,
    /// Files changed against the first parent (every file for a root commit).
    pub files: Vec<FileChange>,
    /// No ref reached this commit before the push.
    pub distinct: bool,
    /// Paths of the tree entries this commit writes that git's fsck refuses (`.`, `..`,
    /// `.git` in any case, an empty name, a name with `/`).
    pub refused_entries: Vec<Vec<u8>>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Person {
    pub name: String,
    pub email: String,
    /// Seconds since the Unix epoch and the offset from UTC in seconds.
    pub time: i64,
    pub offset: i32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileChange {
    /// Raw bytes: git paths need not be UTF-8.
    pub path: Vec<u8>,
    pub kind: FileKind,
    /// The new blob, for added and modified files (not for removals, trees or submodules).
    pub blob: Option<Blob>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    Added,
    Modified,
    Removed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Blob {
    pub id: ObjectId,
    /// Bytes; 0 when sizes were not needed and not read.
    pub size: u64,
    /// The commit brings this blob: not a mode change, not a rename within the commit, not
    /// what a merge takes from one of its other parents. Size limits judge added blobs,
    /// whatever the object store held before.
    pub added: bool,
}

/// Malformed hook input, located by line (1-based) where it came from stdin.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}{message}", line.map(|l| format!("line {l}: ")).unwrap_or_default())]
pub struct InputError {
    pub line: Option<usize>,
    pub message: String,
}

/// Parse pre-receive/post-receive stdin: one `<old> SP <new> SP <ref>` per line.
pub fn parse_updates(input: &[u8]) -> Result<Vec<RefUpdate>, InputError> {
    let mut updates = Vec::new();
    let mut seen = std::collections::HashSet::new();
    let body = input.strip_suffix(b"\n").unwrap_or(input);
    if body.is_empty() {
        return Ok(updates);
    }
    for (index, line) in body.split(|&b| b == b'\n').enumerate() {
        let at = |message: String| InputError { line: Some(index + 1), message };
        let update = parse_line(line).map_err(at)?;
        if !seen.insert(update.name.clone()) {
            return Err(at(format!("{} appears twice", update.name)));
        }
        updates.push(update);
    }
    Ok(updates)
}

fn parse_line(line: &[u8]) -> Result<RefUpdate, String> {
    let mut fields = line.splitn(3, |&b| b == b' ');
    let (Some(old), Some(new), Some(name)) = (fields.next(), fields.next(), fields.next()) else {
        return Err("expected `<old-id> <new-id> <ref>`".into());
    };
    let name = std::str::from_utf8(name).map_err(|_| "ref name is not valid UTF-8".to_string())?;
    from_parts(name, old, new)
}

/// Build an update from the update hook's arguments (`<ref> <old> <new>`).
pub fn update_from_args(name: &str, old: &str, new: &str) -> Result<RefUpdate, InputError> {
    from_parts(name, old.as_bytes(), new.as_bytes()).map_err(|message| InputError { line: None, message })
}

fn from_parts(name: &str, old: &[u8], new: &[u8]) -> Result<RefUpdate, String> {
    let old = parse_id(old).map_err(|e| format!("old id: {e}"))?;
    let new = parse_id(new).map_err(|e| format!("new id: {e}"))?;
    if old.kind() != new.kind() {
        return Err("old and new ids are of different hash kinds".into());
    }
    if old.is_null() && new.is_null() {
        return Err("old and new ids are both zero".into());
    }
    check_ref_name(name).map_err(|e| format!("ref {}: {e}", shown(name)))?;
    Ok(RefUpdate { old, new, name: name.to_string() })
}

/// A SHA-1 (40) or SHA-256 (64) id in lowercase hex, as git writes them.
pub fn parse_id(hex: &[u8]) -> Result<ObjectId, String> {
    let valid_len = hex.len() == 40 || hex.len() == 64;
    if !valid_len || !hex.iter().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return Err(format!("{} is not a 40- or 64-digit lowercase hex object id", shown_bytes(hex)));
    }
    ObjectId::from_hex(hex).map_err(|e| e.to_string())
}

/// The rules of `git check-ref-format` for a full ref name, which pushes always carry.
pub fn check_ref_name(name: &str) -> Result<(), &'static str> {
    if !name.starts_with("refs/") {
        return Err("does not start with refs/");
    }
    if name.len() > 4096 {
        return Err("is longer than 4096 bytes");
    }
    if name.ends_with('/') || name.contains("//") {
        return Err("has an empty path component");
    }
    if name.ends_with('.') {
        return Err("ends with `.`");
    }
    if name.contains("..") {
        return Err("contains `..`");
    }
    if name.contains("@{") {
        return Err("contains `@{`");
    }
    if let Some(c) = name.chars().find(|&c| c.is_ascii_control() || " ~^:?*[\\".contains(c)) {
        return Err(match c {
            ' ' => "contains a space",
            c if c.is_ascii_control() => "contains a control character",
            _ => "contains one of ~ ^ : ? * [ \\",
        });
    }
    for component in name.split('/') {
        if component.starts_with('.') {
            return Err("has a component starting with `.`");
        }
        if component.ends_with(".lock") {
            return Err("has a component ending with `.lock`");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "1111111111111111111111111111111111111111";
    const B: &str = "2222222222222222222222222222222222222222";
    const Z: &str = "0000000000000000000000000000000000000000";

    fn line(old: &str, new: &str, name: &str) -> Vec<u8> {
        format!("{old} {new} {name}\n").into_bytes()
    }

    #[test]
    fn parses_create_update_delete() {
        let mut input = line(Z, A, "refs/heads/new");
        input.extend(line(A, B, "refs/heads/main"));
        input.extend(line(B, Z, "refs/tags/v1"));
        let updates = parse_updates(&input).unwrap();
        let actions: Vec<_> = updates.iter().map(|u| u.obvious_action()).collect();
        assert_eq!(actions, [Some(Action::Create), None, Some(Action::Delete)]);
        let possible: Vec<_> = updates.iter().map(|u| u.possible_actions()).collect();
        assert_eq!(possible, [&[Action::Create][..], &[Action::Update, Action::Force], &[Action::Delete]]);
        assert_eq!(updates[1].name, "refs/heads/main");
    }

    #[test]
    fn accepts_sha256_ids() {
        let old = "a".repeat(64);
        let new = "b".repeat(64);
        let updates = parse_updates(&line(&old, &new, "refs/heads/main")).unwrap();
        assert_eq!(updates[0].new.kind(), gix::hash::Kind::Sha256);
    }

    #[test]
    fn empty_input_is_an_empty_push() {
        assert_eq!(parse_updates(b"").unwrap(), []);
        assert_eq!(parse_updates(b"\n").unwrap(), []);
    }

    #[test]
    fn garbage_names_the_line() {
        let mut input = line(Z, A, "refs/heads/ok");
        input.extend(b"garbage\xff\x00\n");
        let err = parse_updates(&input).unwrap_err();
        assert_eq!(err.line, Some(2));
        assert!(err.to_string().starts_with("line 2: "), "{err}");
    }

    #[test]
    fn rejects_bad_ids() {
        for bad in [&A[1..], "G111111111111111111111111111111111111111", &"A".repeat(40)] {
            assert!(parse_updates(&line(bad, B, "refs/heads/x")).is_err(), "{bad}");
        }
        assert!(parse_updates(&line(Z, Z, "refs/heads/x")).is_err());
        assert!(parse_updates(&line(A, &"b".repeat(64), "refs/heads/x")).is_err());
    }

    #[test]
    fn rejects_duplicate_refs() {
        let mut input = line(Z, A, "refs/heads/x");
        input.extend(line(Z, B, "refs/heads/x"));
        assert_eq!(parse_updates(&input).unwrap_err().line, Some(2));
    }

    #[test]
    fn ref_names_follow_check_ref_format() {
        for good in
            ["refs/heads/main", "refs/heads/a/b-c_d", "refs/tags/v1.0", "refs/heads/$(id)`x`;|&>", "refs/heads/é"]
        {
            assert_eq!(check_ref_name(good), Ok(()), "{good}");
        }
        for bad in [
            "main",
            "refs/heads/",
            "refs//x",
            "refs/heads/a..b",
            "refs/heads/.hidden",
            "refs/heads/x.lock",
            "refs/heads/x.",
            "refs/heads/a b",
            "refs/heads/a~1",
            "refs/heads/a^",
            "refs/heads/a:b",
            "refs/heads/a?",
            "refs/heads/a*",
            "refs/heads/a[",
            "refs/heads/a\\b",
            "refs/heads/a@{1}",
            "refs/heads/a\tb",
            "refs/heads/a\x7f",
        ] {
            assert!(check_ref_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn op_shorthands_expand() {
        assert_eq!(Op::expand("write"), Some(&[Op::Create, Op::Update][..]));
        assert_eq!(Op::expand("all").map(<[Op]>::len), Some(5));
        assert!(!Op::expand("all").unwrap().iter().any(|op| op.is_repository_op()), "`all` is not repo-create");
        assert_eq!(Op::parse("repo-create"), Some(Op::RepoCreate));
        for name in Op::NAMES {
            assert!(Op::expand(name).is_some(), "{name}");
        }
        assert_eq!(Op::expand("push"), None);
    }
}
