//! The `gitlab` format: one payload per change with the fields of GitLab's Push Hook (a
//! branch) or Tag Push Hook (a tag), so receivers written for GitLab (CI servers, buildbot's
//! gitlab hook, chat bots, webhook libraries) accept it unchanged. Fields pushgate cannot
//! know take neutral values (`false`, `null`, `0`).
//!
//! As GitLab does, a payload lists at most [`MAX_COMMITS`] commits, the newest ones, oldest
//! first, and counts all of them in `total_commits_count`; a tag push lists the tagged
//! commit alone; a delete lists none.

use super::{Change, EventCommit, Forge, PushEvent};
use crate::ids::stable_id;
use crate::push::Action;
use serde_json::{Map, Value, json};

/// Commits a GitLab payload lists.
pub const MAX_COMMITS: usize = 20;

/// Which of GitLab's hooks a payload is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Hook {
    Push,
    TagPush,
}

impl Hook {
    pub fn of(ref_name: &str) -> Hook {
        if ref_name.starts_with("refs/tags/") { Hook::TagPush } else { Hook::Push }
    }

    /// `object_kind` and `event_name`.
    pub fn kind(self) -> &'static str {
        match self {
            Hook::Push => "push",
            Hook::TagPush => "tag_push",
        }
    }

    /// The `X-Gitlab-Event` header.
    pub fn header(self) -> &'static str {
        match self {
            Hook::Push => "Push Hook",
            Hook::TagPush => "Tag Push Hook",
        }
    }
}

/// The payload for `event.changes[index]`, listing at most `max_commits` commits (never more
/// than [`MAX_COMMITS`]).
pub fn payload(event: &PushEvent, index: usize, forge: &Forge, max_commits: usize) -> Value {
    let change = &event.changes[index];
    let hook = Hook::of(&change.name);
    let project = Project::new(event, forge);
    let (commits, total): (Vec<&EventCommit>, usize) = match (hook, change.action) {
        (_, Action::Delete) => (Vec::new(), 0),
        // GitLab lists the tagged commit, new or not.
        (Hook::TagPush, _) => {
            let tagged: Vec<&EventCommit> = change.head_commit.iter().collect();
            let total = tagged.len();
            (tagged, total)
        }
        (Hook::Push, _) => (newest(change, max_commits.min(MAX_COMMITS)), change.total_commits),
    };
    let checkout_sha = match hook {
        _ if change.action == Action::Delete => None,
        Hook::Push => Some(change.after.as_str()),
        Hook::TagPush => change.head_commit.as_ref().map(|c| c.id.as_str()),
    };
    let message = match hook {
        Hook::Push => None,
        Hook::TagPush => change.tag_message.as_deref(),
    };
    let user = &event.user.name;
    json!({
        "object_kind": hook.kind(),
        "event_name": hook.kind(),
        "before": change.before,
        "after": change.after,
        "ref": change.name,
        "ref_protected": false,
        "checkout_sha": checkout_sha,
        "message": message,
        "user_id": stable_id(user),
        "user_name": user,
        "user_username": user,
        "user_email": forge.email_of(user),
        "user_avatar": format!("{}/avatars/{}", forge.server.base_url, super::github::encode_path(user)),
        "project_id": project.id,
        "project": project.json(event),
        "commits": commits.iter().map(|c| commit(c, &project)).collect::<Vec<_>>(),
        "total_commits_count": total,
        "push_options": push_options(&event.push_options),
        "repository": project.repository(),
    })
}

/// The change's newest `limit` commits, oldest first: the listed ones, then those kept past
/// `max_commits` ([`Change::newest_commits`]).
fn newest(change: &Change, limit: usize) -> Vec<&EventCommit> {
    let all: Vec<&EventCommit> = change.commits.iter().chain(&change.newest_commits).collect();
    all[all.len().saturating_sub(limit)..].to_vec()
}

/// The repository as GitLab's `project` describes it.
struct Project {
    id: u64,
    name: String,
    namespace: String,
    path_with_namespace: String,
    web_url: String,
    ssh_url: String,
    http_url: String,
}

impl Project {
    fn new(event: &PushEvent, forge: &Forge) -> Project {
        let (owner, name) = super::github::owner_and_name(forge.server, &event.repository.name);
        let base = &forge.server.base_url;
        let path = super::github::encode_path(&event.repository.name);
        let host = base.split_once("://").map_or(base.as_str(), |(_, h)| h);
        let host = host.split([':', '/']).next().unwrap_or(host);
        let web_url = format!("{base}/{path}");
        Project {
            id: stable_id(&event.repository.name),
            name: name.to_string(),
            namespace: owner.to_string(),
            path_with_namespace: format!("{owner}/{name}"),
            ssh_url: format!("git@{host}:{path}.git"),
            http_url: format!("{web_url}.git"),
            web_url,
        }
    }

    fn json(&self, event: &PushEvent) -> Value {
        json!({
            "id": self.id,
            "name": self.name,
            "description": null,
            "web_url": self.web_url,
            "avatar_url": null,
            "git_ssh_url": self.ssh_url,
            "git_http_url": self.http_url,
            "namespace": self.namespace,
            "visibility_level": 0,
            "path_with_namespace": self.path_with_namespace,
            "default_branch": event.repository.default_branch.as_deref().unwrap_or("main"),
            "ci_config_path": null,
            "homepage": self.web_url,
            "url": self.ssh_url,
            "ssh_url": self.ssh_url,
            "http_url": self.http_url,
        })
    }

    /// The deprecated `repository` object GitLab still sends.
    fn repository(&self) -> Value {
        json!({
            "name": self.name,
            "url": self.ssh_url,
            "description": null,
            "homepage": self.web_url,
            "git_http_url": self.http_url,
            "git_ssh_url": self.ssh_url,
            "visibility_level": 0,
        })
    }
}

/// A commit as GitLab's hooks describe it: the whole message as git has it, its first line
/// as `title`, the committer's date.
fn commit(c: &EventCommit, project: &Project) -> Value {
    json!({
        "id": c.id,
        "message": c.message,
        "title": title(&c.message),
        "timestamp": c.committer.date,
        "url": format!("{}/-/commit/{}", project.web_url, c.id),
        "author": {"name": c.author.name, "email": c.author.email},
        "added": c.added,
        "modified": c.modified,
        "removed": c.removed,
    })
}

/// GitLab's commit title: the first line, cut as Rails' `truncate(81, separator: ' ',
/// omission: '…')` does when it has 100 characters or more.
fn title(message: &str) -> String {
    let first = message.split(['\r', '\n']).next().unwrap_or_default();
    if first.trim().is_empty() {
        return "No commit message".into();
    }
    let chars: Vec<char> = first.chars().collect();
    if chars.len() < 100 {
        return first.to_string();
    }
    let room = 80;
    let stop = chars[..=room].iter().rposition(|c| *c == ' ').unwrap_or(room);
    chars[..stop].iter().collect::<String>() + "…"
}

/// GitLab's `push_options` object from `git push -o` options: `ns.key=value` becomes
/// `{"ns": {"key": "value"}}` and `ns.key` (or an empty value) `{"ns": {"key": true}}`, as
/// GitLab parses them (`ci.skip` is `{"ci": {"skip": true}}`). The options GitLab takes
/// several times (`ci.variable`, `ci.input`, `merge_request.label`,
/// `merge_request.unlabel`) collect their values as `{"<value>": 1}`. An option without a
/// namespace (`deploy`, `env=prod`), which GitLab ignores, is kept at the top level.
pub fn push_options(options: &[String]) -> Value {
    const MULTI: [&str; 4] = ["ci.variable", "ci.input", "merge_request.label", "merge_request.unlabel"];
    let mut out = Map::new();
    for option in options {
        let (key, value) = match option.split_once('=') {
            Some((key, value)) => (key.trim(), value.trim()),
            None => (option.trim(), ""),
        };
        if key.is_empty() {
            continue;
        }
        let value = if value.is_empty() { Value::Bool(true) } else { Value::String(value.to_string()) };
        let Some((namespace, name)) = key.split_once('.') else {
            out.insert(key.to_string(), value);
            continue;
        };
        let slot = out.entry(namespace).or_insert_with(|| Value::Object(Map::new()));
        if !slot.is_object() {
            *slot = Value::Object(Map::new());
        }
        let Value::Object(space) = slot else { continue };
        if MULTI.contains(&key) {
            let values = space.entry(name).or_insert_with(|| Value::Object(Map::new()));
            if let (Value::Object(values), Value::String(value)) = (values, value) {
                values.insert(value, 1.into());
            }
        } else {
            space.insert(name.to_string(), value);
        }
    }
    Value::Object(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Server;
    use crate::config::extension::Phase;
    use crate::event::{Repository, Signature, User};
    use crate::identity::Via;
    use crate::push::Vcs;
    use std::collections::{BTreeMap, BTreeSet};

    /// One of GitLab's documented payloads (`tests/data/gitlab`).
    fn example(name: &str) -> Value {
        let path = format!("{}/tests/data/gitlab/{name}", env!("CARGO_MANIFEST_DIR"));
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
    }

    fn text(v: &Value) -> String {
        v.as_str().unwrap().to_string()
    }

    fn commit_like(c: &Value) -> EventCommit {
        let author = Signature {
            name: text(&c["author"]["name"]),
            email: text(&c["author"]["email"]),
            date: text(&c["timestamp"]),
        };
        let paths = |key: &str| c[key].as_array().unwrap().iter().map(text).collect();
        EventCommit {
            id: text(&c["id"]),
            tree_id: "0".repeat(40),
            parents: vec![],
            message: text(&c["message"]),
            timestamp: text(&c["timestamp"]),
            committer: author.clone(),
            author,
            added: paths("added"),
            modified: paths("modified"),
            removed: paths("removed"),
            distinct: true,
            files_pending: false,
        }
    }

    /// What pushgate would know of the push GitLab describes in `example`, and the server
    /// it describes.
    fn event_like(example: &Value) -> (PushEvent, BTreeMap<String, Vec<String>>, Server) {
        let project = &example["project"];
        let user = example.get("user_username").map_or_else(|| text(&example["user_name"]), text);
        let users: BTreeMap<String, Vec<String>> =
            example["user_email"].as_str().map(|email| (user.clone(), vec![email.to_string()])).into_iter().collect();
        let web_url = text(&project["web_url"]);
        let path = text(&project["path_with_namespace"]);
        let base = web_url.strip_suffix(&format!("/{path}")).unwrap().to_string();
        let commits: Vec<EventCommit> = example["commits"].as_array().unwrap().iter().map(commit_like).collect();
        let tip = text(&example["checkout_sha"]);
        let head_commit = commits.iter().find(|c| c.id == tip).cloned().or_else(|| {
            let c = json!({"id": tip, "message": "tagged\n", "timestamp": "2017-06-19T14:39:53-07:00",
                           "author": {"name": "A", "email": "a@example.com"}, "added": [], "modified": [], "removed": []});
            Some(commit_like(&c))
        });
        let change = Change {
            name: text(&example["ref"]),
            before: text(&example["before"]),
            after: text(&example["after"]),
            action: if example["before"].as_str().is_some_and(|b| b.bytes().all(|c| c == b'0')) {
                Action::Create
            } else {
                Action::Update
            },
            total_commits: example["total_commits_count"].as_u64().unwrap() as usize,
            commits,
            commits_truncated: false,
            head_commit,
            base_ref: None,
            tag_message: None,
            newest_commits: vec![],
        };
        let event = PushEvent {
            schema: crate::event::SCHEMA.into(),
            id: "e1".into(),
            sequence: Some(1),
            time: "2017-06-19T21:40:00Z".into(),
            phase: Phase::Post,
            vcs: Vcs::Git,
            repository: Repository {
                name: path,
                path: "/srv/git/x.git".into(),
                default_branch: Some(text(&project["default_branch"])),
            },
            user: User { name: user, groups: vec![], via: Via::Ssh },
            push_options: vec![],
            changes: vec![change],
        };
        (event, users, Server { base_url: base, owner: None })
    }

    fn ours_for(example: &Value) -> Value {
        let (event, users, server) = event_like(example);
        payload(&event, 0, &Forge { server: &server, users: &users }, MAX_COMMITS)
    }

    fn keys(value: &Value) -> BTreeSet<&str> {
        value.as_object().unwrap().keys().map(String::as_str).collect()
    }

    /// The commits by id (GitLab's recorded delivery lists them newest first, its code and
    /// its documentation oldest first).
    fn by_id(commits: &Value) -> BTreeMap<String, Value> {
        commits.as_array().unwrap().iter().map(|c| (text(&c["id"]), c.clone())).collect()
    }

    #[test]
    fn a_push_is_gitlabs_recorded_delivery() {
        let example = example("push_api_hook_event.json");
        let ours = ours_for(&example);
        assert_eq!(keys(&ours), keys(&example), "every field GitLab sends, and no other");
        assert_eq!(keys(&ours["project"]), keys(&example["project"]));
        assert_eq!(keys(&ours["repository"]), keys(&example["repository"]));
        for key in [
            "object_kind",
            "event_name",
            "before",
            "after",
            "ref",
            "checkout_sha",
            "message",
            "user_username",
            "user_email",
            "total_commits_count",
            "push_options",
        ] {
            assert_eq!(ours[key], example[key], "{key}");
        }
        for key in ["name", "web_url", "git_http_url", "path_with_namespace", "default_branch", "homepage", "http_url"]
        {
            assert_eq!(ours["project"][key], example["project"][key], "project.{key}");
        }
        assert_eq!(ours["project"]["url"], ours["project"]["git_ssh_url"]);
        assert_eq!(ours["project"]["ssh_url"], ours["project"]["git_ssh_url"]);
        assert_eq!(ours["project_id"], ours["project"]["id"]);
        for key in ["name", "homepage", "git_http_url"] {
            assert_eq!(ours["repository"][key], example["repository"][key], "repository.{key}");
        }
        assert_eq!(ours["repository"]["url"], ours["project"]["git_ssh_url"]);
        // Each commit field by field: the whole message with its newline, the first line
        // as title, the date, the `/-/commit/` URL, the author, the files.
        assert_eq!(by_id(&ours["commits"]), by_id(&example["commits"]));
    }

    #[test]
    fn a_push_is_gitlabs_documented_example() {
        let example = example("push.json");
        let ours = ours_for(&example);
        let documented = keys(&example);
        assert!(documented.is_subset(&keys(&ours)), "{:?}", documented.difference(&keys(&ours)));
        for key in [
            "object_kind",
            "before",
            "after",
            "ref",
            "checkout_sha",
            "user_username",
            "user_email",
            "total_commits_count",
        ] {
            assert_eq!(ours[key], example[key], "{key}");
        }
        assert_eq!(ours["project"]["git_ssh_url"], example["project"]["git_ssh_url"], "git@host:path.git");
        // Oldest first, as documented; newer GitLab writes `/-/commit/` URLs.
        let ids = |v: &Value| v.as_array().unwrap().iter().map(|c| text(&c["id"])).collect::<Vec<_>>();
        assert_eq!(ids(&ours["commits"]), ids(&example["commits"]));
        for (ours, theirs) in ours["commits"].as_array().unwrap().iter().zip(example["commits"].as_array().unwrap()) {
            for key in ["id", "message", "title", "timestamp", "author", "added", "modified", "removed"] {
                assert_eq!(ours[key], theirs[key], "{key}");
            }
            assert_eq!(ours["url"], text(&theirs["url"]).replace("/commit/", "/-/commit/"));
        }
    }

    #[test]
    fn a_tag_push_is_gitlabs_example_with_the_tagged_commit() {
        let example = example("tag_push.json");
        let ours = ours_for(&example);
        assert!(keys(&example).is_subset(&keys(&ours)));
        for key in ["object_kind", "event_name", "before", "after", "ref", "checkout_sha"] {
            assert_eq!(ours[key], example[key], "{key}");
        }
        // The documentation's example lists no commit; GitLab's code (TagHooksService)
        // lists the tagged one, and so does pushgate.
        assert_eq!(ours["commits"].as_array().unwrap().len(), 1);
        assert_eq!(ours["commits"][0]["id"], example["checkout_sha"]);
        assert_eq!(ours["total_commits_count"], 1);
        assert_eq!(ours["message"], Value::Null, "a lightweight tag has no message");
    }

    #[test]
    fn tags_deletes_and_long_pushes_follow_gitlabs_code() {
        let (mut event, users, server) = event_like(&example("push_api_hook_event.json"));
        let forge = Forge { server: &server, users: &users };
        // An annotated tag: `after` is the tag, `checkout_sha` its commit, `message` its own.
        let change = &mut event.changes[0];
        change.name = "refs/tags/v1".into();
        change.after = "a".repeat(40);
        change.tag_message = Some("release 1\n".into());
        let tag = payload(&event, 0, &forge, MAX_COMMITS);
        assert_eq!((tag["object_kind"].as_str(), tag["event_name"].as_str()), (Some("tag_push"), Some("tag_push")));
        assert_eq!(tag["checkout_sha"], "f15b32277d2c55c6c595845a87109b09c913c556");
        assert_eq!(tag["message"], "release 1\n");
        // A delete: no commit to check out, none listed.
        let change = &mut event.changes[0];
        change.action = Action::Delete;
        change.after = "0".repeat(40);
        let deleted = payload(&event, 0, &forge, MAX_COMMITS);
        assert_eq!((deleted["checkout_sha"].clone(), deleted["commits"].clone()), (Value::Null, json!([])));
        assert_eq!(deleted["total_commits_count"], 0);
        // A branch push of 60 commits, 10 listed in the event and the newest kept aside:
        // the newest 20, oldest first, and the count of all.
        let template = commit_like(&example("push_api_hook_event.json")["commits"][0]);
        let commit = |i: usize| EventCommit { id: format!("{i:040}"), ..template.clone() };
        let change = &mut event.changes[0];
        change.name = "refs/heads/master".into();
        change.action = Action::Update;
        change.commits = (1..=10).map(commit).collect();
        change.newest_commits = (41..=60).map(commit).collect();
        change.commits_truncated = true;
        change.total_commits = 60;
        let long = payload(&event, 0, &forge, 100);
        let ids: Vec<String> = long["commits"].as_array().unwrap().iter().map(|c| text(&c["id"])).collect();
        assert_eq!(ids, (41..=60).map(|i| format!("{i:040}")).collect::<Vec<_>>());
        assert_eq!(long["total_commits_count"], 60);
        // An extension's own `max_commits` lists fewer, still the newest.
        let short = payload(&event, 0, &forge, 3);
        assert_eq!(short["commits"][0]["id"], format!("{:040}", 58));
    }

    #[test]
    fn the_hook_follows_the_ref() {
        assert_eq!(Hook::of("refs/tags/v1"), Hook::TagPush);
        assert_eq!(Hook::of("refs/heads/main"), Hook::Push);
        assert_eq!(Hook::of("refs/notes/commits"), Hook::Push);
        assert_eq!((Hook::TagPush.kind(), Hook::TagPush.header()), ("tag_push", "Tag Push Hook"));
        assert_eq!((Hook::Push.kind(), Hook::Push.header()), ("push", "Push Hook"));
    }

    #[test]
    fn titles_are_first_lines_cut_as_gitlab_cuts_them() {
        assert_eq!(title("fix: it\n\nbody\n"), "fix: it");
        assert_eq!(title("one\r\ntwo"), "one");
        assert_eq!(title("\n\nbody"), "No commit message");
        let long = "word ".repeat(30);
        let cut = title(&long);
        assert!(cut.ends_with("word…") && cut.chars().count() <= 81, "{cut}");
        let unbroken = "x".repeat(120);
        assert_eq!(title(&unbroken), format!("{}…", "x".repeat(80)));
        let just_under = "y".repeat(99);
        assert_eq!(title(&just_under), just_under);
    }

    #[test]
    fn push_options_take_gitlabs_shape() {
        let options: Vec<String> = [
            "ci.skip",
            "merge_request.target=main",
            "ci.variable=A=1",
            "ci.variable=B=2",
            "merge_request.label=x",
            "deploy",
            "env=prod",
            "a.b=",
            "=nothing",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        assert_eq!(
            push_options(&options),
            json!({
                "ci": {"skip": true, "variable": {"A=1": 1, "B=2": 1}},
                "merge_request": {"target": "main", "label": {"x": 1}},
                "deploy": true,
                "env": "prod",
                "a": {"b": true},
            })
        );
        assert_eq!(push_options(&[]), json!({}));
        // A namespace first given as a plain option becomes one.
        assert_eq!(push_options(&["ci".into(), "ci.skip".into()]), json!({"ci": {"skip": true}}));
    }
}
