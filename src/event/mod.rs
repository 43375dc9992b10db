//! The events extensions are told: a push (`pushgate.push/1`), built once per push from what
//! the gate computed, a fetch (`pushgate.pull/1`), and a repository created or deleted
//! (`pushgate.repository/1`). Sent as they are, or as GitHub's
//! ([`github`]) or GitLab's ([`gitlab`]) payloads. Pure: plain data in, plain data out.

pub mod github;
pub mod gitlab;

use crate::config::Server;
use crate::config::extension::Phase;
use crate::env::Env;
use crate::identity::Via;
use crate::push::{Action, Commit, FileChange, FileKind, Person, Push, Vcs};
use crate::time::rfc3339;
use gix::bstr::ByteSlice;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

pub const SCHEMA: &str = "pushgate.push/1";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PushEvent {
    pub schema: String,
    pub id: String,
    /// Grows by one with each event of a repository; set when the event is spooled (post).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sequence: Option<u64>,
    pub time: String,
    pub phase: Phase,
    pub vcs: Vcs,
    pub repository: Repository,
    pub user: User,
    pub push_options: Vec<String>,
    pub changes: Vec<Change>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Repository {
    pub name: String,
    pub path: String,
    /// The branch HEAD names, when it names one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_branch: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct User {
    pub name: String,
    pub groups: Vec<String>,
    pub via: Via,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Change {
    #[serde(rename = "ref")]
    pub name: String,
    pub before: String,
    pub after: String,
    pub action: Action,
    pub commits: Vec<EventCommit>,
    pub commits_truncated: bool,
    /// How many new commits the change brought, listed or not.
    pub total_commits: usize,
    /// The commit `after` names (peeled), new or not; null for a delete.
    #[serde(default)]
    pub head_commit: Option<EventCommit>,
    /// For a tag: the branch whose tip is the tag's commit once the push has landed.
    #[serde(default)]
    pub base_ref: Option<String>,
    /// For an annotated tag: its message.
    #[serde(default)]
    pub tag_message: Option<String>,
    /// When `commits` was cut at `max_commits`: the newest commits past it (at most
    /// [`NEWEST_KEPT`], oldest first), for the formats that list a push's newest commits
    /// (`gitlab`). Not part of the `pushgate` format: [`crate::extension::body`] leaves it
    /// out.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub newest_commits: Vec<EventCommit>,
}

/// How many of a change's newest commits an event keeps past `max_commits`: as many as
/// GitLab's payloads list.
pub const NEWEST_KEPT: usize = gitlab::MAX_COMMITS;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventCommit {
    pub id: String,
    pub tree_id: String,
    pub parents: Vec<String>,
    pub message: String,
    pub timestamp: String,
    pub author: Signature,
    pub committer: Signature,
    pub added: Vec<String>,
    pub modified: Vec<String>,
    pub removed: Vec<String>,
    /// No ref reached this commit before the push (GitHub's `distinct`).
    pub distinct: bool,
    /// A head the gate only named (its id and `distinct`): the deliverer fills in the
    /// rest at fan-out, before any extension sees the event (spooled events only).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub files_pending: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Signature {
    pub name: String,
    pub email: String,
    pub date: String,
}

pub const PULL_SCHEMA: &str = "pushgate.pull/1";

/// A fetch or clone through `pushgate shell` (`pushgate.pull/1`), for extensions with
/// `events = ["push", "pull"]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PullEvent {
    pub schema: String,
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sequence: Option<u64>,
    pub time: String,
    pub vcs: Vcs,
    pub repository: Repository,
    pub user: User,
}

pub const REPOSITORY_SCHEMA: &str = "pushgate.repository/1";

/// A repository created or deleted through `pushgate shell` (`pushgate.repository/1`), for
/// extensions with `"repository"` in their `events`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RepositoryEvent {
    pub schema: String,
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sequence: Option<u64>,
    pub time: String,
    pub phase: Phase,
    pub action: Lifecycle,
    pub repository: LifecycleRepository,
    pub user: User,
}

/// What happened to the repository.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Lifecycle {
    Created,
    Deleted,
}

impl Lifecycle {
    pub fn as_str(self) -> &'static str {
        match self {
            Lifecycle::Created => "created",
            Lifecycle::Deleted => "deleted",
        }
    }
}

/// The repository a lifecycle event is about: its name under `repos_root`, its directory
/// (for `deleted`, where it was), and whether it is a Git or a Mercurial one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LifecycleRepository {
    pub name: String,
    pub path: String,
    pub vcs: Vcs,
}

/// Which kind of event a delivery carries (the `X-Pushgate-Event` header).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EventKind {
    #[default]
    Push,
    Pull,
    /// The repositories, for a periodic extension (`pushgate.inventory/1`).
    Inventory,
    /// A repository created or deleted through `pushgate shell` (`pushgate.repository/1`).
    Repository,
}

impl EventKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Push => "push",
            EventKind::Pull => "pull",
            EventKind::Inventory => "inventory",
            EventKind::Repository => "repository",
        }
    }
}

/// What the spool carries: a push, a pull or a repository's creation or deletion, told
/// apart by `schema`.
#[derive(Debug, Clone, PartialEq)]
pub enum Spooled {
    Push(PushEvent),
    Pull(PullEvent),
    Repository(RepositoryEvent),
}

impl Spooled {
    pub fn from_json(bytes: &[u8]) -> Result<Spooled, String> {
        let value: serde_json::Value = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
        match value.get("schema").and_then(|s| s.as_str()) {
            Some(PULL_SCHEMA) => serde_json::from_value(value).map(Spooled::Pull).map_err(|e| e.to_string()),
            Some(REPOSITORY_SCHEMA) => {
                serde_json::from_value(value).map(Spooled::Repository).map_err(|e| e.to_string())
            }
            _ => serde_json::from_value(value).map(Spooled::Push).map_err(|e| e.to_string()),
        }
    }

    /// The repository's name, and the event's sequence number (to be given at fan-out).
    pub fn sequence_of(&mut self) -> (String, &mut Option<u64>) {
        match self {
            Spooled::Push(event) => (event.repository.name.clone(), &mut event.sequence),
            Spooled::Pull(pull) => (pull.repository.name.clone(), &mut pull.sequence),
            Spooled::Repository(event) => (event.repository.name.clone(), &mut event.sequence),
        }
    }
}

/// What the `github` and `gitlab` formats need beyond the event: where the server is (for
/// URLs and owners), and the users' emails (`[users.<name>] emails`, as written).
#[derive(Debug, Clone, Copy)]
pub struct Forge<'a> {
    pub server: &'a Server,
    pub users: &'a BTreeMap<String, Vec<String>>,
}

impl Forge<'_> {
    /// A user's first email.
    pub fn email_of(&self, user: &str) -> Option<&str> {
        self.users.get(user).and_then(|emails| emails.first()).map(String::as_str)
    }

    /// The user one of whose emails `email` is (emails compare without case).
    pub fn user_with_email(&self, email: &str) -> Option<&str> {
        let known = |emails: &Vec<String>| emails.iter().any(|e| e.eq_ignore_ascii_case(email));
        self.users.iter().find(|(_, emails)| known(emails)).map(|(name, _)| name.as_str())
    }
}

/// Facts about a push that do not come from the repository's objects.
#[derive(Debug, Clone)]
pub struct Context {
    pub id: String,
    pub time: String,
    pub phase: Phase,
    pub vcs: Vcs,
    pub repository: Repository,
    pub user: User,
    pub push_options: Vec<String>,
    pub max_commits: usize,
}

/// The event for `push`.
pub fn build(push: &Push, context: Context) -> PushEvent {
    let changes = push
        .changes
        .iter()
        .map(|change| {
            let commits: Vec<EventCommit> = change.commits.iter().take(context.max_commits).map(event_commit).collect();
            let past = &change.commits[commits.len()..];
            let newest_commits = past[past.len().saturating_sub(NEWEST_KEPT)..].iter().map(event_commit).collect();
            let head_commit = change.head.as_ref().map(|head| {
                let head_id = head.id.to_string();
                let listed = commits.iter().find(|c| c.id == head_id);
                listed
                    .cloned()
                    .unwrap_or_else(|| EventCommit { files_pending: change.head_files_pending, ..event_commit(head) })
            });
            Change {
                name: change.update.name.clone(),
                before: change.update.old.to_string(),
                after: change.update.new.to_string(),
                action: change.action,
                commits_truncated: change.commits.len() > commits.len(),
                total_commits: change.commits.len(),
                commits,
                head_commit: head_commit.filter(|_| change.action != Action::Delete),
                base_ref: change.base_ref.clone(),
                tag_message: change.tag_message.clone(),
                newest_commits,
            }
        })
        .collect();
    PushEvent {
        schema: SCHEMA.to_string(),
        id: context.id,
        sequence: None,
        time: context.time,
        phase: context.phase,
        vcs: context.vcs,
        repository: context.repository,
        user: context.user,
        push_options: context.push_options,
        changes,
    }
}

/// A commit as events list it.
pub fn event_commit(commit: &Commit) -> EventCommit {
    let mut listed = EventCommit {
        id: commit.id.to_string(),
        tree_id: commit.tree.to_string(),
        parents: commit.parents.iter().map(|p| p.to_string()).collect(),
        message: commit.message.clone(),
        timestamp: rfc3339(commit.author.time, commit.author.offset),
        author: signature(&commit.author),
        committer: signature(&commit.committer),
        added: Vec::new(),
        modified: Vec::new(),
        removed: Vec::new(),
        distinct: commit.distinct,
        files_pending: false,
    };
    listed.set_files(&commit.files);
    listed
}

impl EventCommit {
    /// List `files` as added, modified and removed paths.
    pub fn set_files(&mut self, files: &[FileChange]) {
        let paths = |kind: FileKind| -> Vec<String> {
            files.iter().filter(|f| f.kind == kind).map(|f| f.path.to_str_lossy().into_owned()).collect()
        };
        self.added = paths(FileKind::Added);
        self.modified = paths(FileKind::Modified);
        self.removed = paths(FileKind::Removed);
        self.files_pending = false;
    }
}

fn signature(person: &Person) -> Signature {
    Signature { name: person.name.clone(), email: person.email.clone(), date: rfc3339(person.time, person.offset) }
}

/// The push options a pusher sent (`git push -o ...`), from git's variables.
pub fn push_options(env: &Env) -> Vec<String> {
    let count: usize = env.var("GIT_PUSH_OPTION_COUNT").and_then(|c| c.parse().ok()).unwrap_or(0);
    (0..count.min(1000)).filter_map(|i| env.var(&format!("GIT_PUSH_OPTION_{i}")).map(str::to_string)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::push::{Blob, Change as PushChange, FileChange, RefUpdate};
    use gix::ObjectId;

    fn id(byte: u8) -> ObjectId {
        ObjectId::from_bytes_or_panic(&[byte; 20])
    }

    fn commit(byte: u8, files: &[(&str, FileKind)]) -> Commit {
        Commit {
            id: id(byte),
            tree: id(byte + 100),
            parents: vec![id(byte - 1)],
            author: Person {
                name: "A \"quoted\"\nname".into(),
                email: "a@x".into(),
                time: 1_795_348_800,
                offset: 3600,
            },
            committer: Person { name: "C".into(), email: "c@x".into(), time: 1_795_348_800, offset: 0 },
            message: "fix: \u{0}binary\u{7f} junk\n\nbody".into(),
            signed: false,
            distinct: true,
            refused_entries: vec![],
            files: files
                .iter()
                .map(|(p, k)| FileChange {
                    path: p.as_bytes().to_vec(),
                    kind: *k,
                    blob: Some(Blob { id: id(9), size: 1, added: true }),
                })
                .collect(),
        }
    }

    fn context(max_commits: usize) -> Context {
        Context {
            id: "e1".into(),
            time: "2026-11-22T12:00:00Z".into(),
            phase: Phase::Post,
            vcs: Vcs::Git,
            repository: Repository {
                name: "team/app".into(),
                path: "/srv/git/team/app.git".into(),
                default_branch: None,
            },
            user: User { name: "alice".into(), groups: vec!["devs".into()], via: Via::Ssh },
            push_options: vec!["ci.skip".into()],
            max_commits,
        }
    }

    fn push() -> Push {
        let c1 = Commit { distinct: false, ..commit(1, &[("a.txt", FileKind::Added), ("old", FileKind::Removed)]) };
        let c2 = commit(2, &[("a.txt", FileKind::Modified)]);
        let update =
            |name: &str| RefUpdate { old: ObjectId::null(gix::hash::Kind::Sha1), new: id(2), name: name.into() };
        Push {
            changes: vec![
                PushChange {
                    update: update("refs/heads/main"),
                    action: Action::Create,
                    commits: vec![c1.clone(), c2.clone()],
                    head: Some(c2.clone()),
                    head_files_pending: false,
                    non_commit: None,
                    aliases: vec![],
                    base_ref: None,
                    tag_message: None,
                },
                PushChange {
                    update: update("refs/heads/copy"),
                    action: Action::Create,
                    commits: vec![c1, c2.clone()],
                    head: Some(c2),
                    head_files_pending: false,
                    non_commit: None,
                    aliases: vec![],
                    base_ref: None,
                    tag_message: None,
                },
            ],
            default_branch: None,
            pushed_blobs: vec![],
        }
    }

    #[test]
    fn commits_are_listed_with_their_files_and_distinct_says_which_are_new() {
        let event = build(&push(), context(100));
        assert_eq!(event.schema, "pushgate.push/1");
        let main = &event.changes[0];
        assert_eq!(main.commits[0].added, ["a.txt"]);
        assert_eq!(main.commits[0].removed, ["old"]);
        assert_eq!(main.commits[1].modified, ["a.txt"]);
        assert_eq!(main.commits[0].timestamp, "2026-11-22T13:00:00+01:00");
        assert_eq!(main.commits.iter().map(|c| c.distinct).collect::<Vec<_>>(), [false, true]);
        assert_eq!(event.changes[1].commits.iter().map(|c| c.distinct).collect::<Vec<_>>(), [false, true]);
        assert_eq!(main.head_commit.as_ref().map(|c| c.id.clone()), Some(id(2).to_string()));
    }

    #[test]
    fn commits_past_max_commits_are_truncated_and_the_newest_kept_aside() {
        let event = build(&push(), context(1));
        assert_eq!(event.changes[0].commits.len(), 1);
        assert!(event.changes[0].commits_truncated);
        assert_eq!(event.changes[0].total_commits, 2);
        let newest: Vec<&str> = event.changes[0].newest_commits.iter().map(|c| c.id.as_str()).collect();
        assert_eq!(newest, [id(2).to_string()]);
        assert!(build(&push(), context(100)).changes[0].newest_commits.is_empty());
    }

    #[test]
    fn only_the_newest_commits_past_max_commits_are_kept() {
        let mut push = push();
        push.changes[0].commits = (1..=60).map(|i| commit(i, &[])).collect();
        let event = build(&push, context(10));
        let change = &event.changes[0];
        assert_eq!(change.commits.len(), 10);
        assert_eq!(change.newest_commits.len(), NEWEST_KEPT);
        assert_eq!(change.newest_commits[0].id, id(60 - NEWEST_KEPT as u8 + 1).to_string());
        assert_eq!(change.newest_commits[NEWEST_KEPT - 1].id, id(60).to_string());
    }

    #[test]
    fn hostile_text_survives_a_json_round_trip() {
        let event = build(&push(), context(100));
        let text = serde_json::to_string(&event).unwrap();
        let back: PushEvent = serde_json::from_str(&text).unwrap();
        assert_eq!(back, event);
        assert_eq!(back.changes[0].commits[0].author.name, "A \"quoted\"\nname");
    }

    #[test]
    fn push_options_come_from_git_variables() {
        let env = Env::from_vars([
            ("GIT_PUSH_OPTION_COUNT", "2"),
            ("GIT_PUSH_OPTION_0", "ci.skip"),
            ("GIT_PUSH_OPTION_1", "a=b"),
        ]);
        assert_eq!(push_options(&env), ["ci.skip", "a=b"]);
        assert!(push_options(&Env::default()).is_empty());
    }
}
