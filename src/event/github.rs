//! The `github` format: one payload per change with the fields of GitHub's push webhook, so
//! receivers written for GitHub (CI servers, chat bots, webhook libraries) accept it
//! unchanged. It validates against GitHub's push-event schema; fields pushgate cannot know
//! take their neutral values (`null`, `false`, `0`, `[]`).
//!
//! GitHub's schema forbids extra top-level fields, so the count of commits (which SPEC.md
//! calls `total_commits`) travels in the `X-Pushgate-Total-Commits` header instead.

use super::{Change, EventCommit, Forge, PushEvent};
use crate::config::Server;
use crate::ids::stable_id;
use crate::push::Action;
use serde_json::{Map, Value, json};

/// The payload for `event.changes[index]`.
pub fn payload(event: &PushEvent, index: usize, forge: &Forge) -> Value {
    let change = &event.changes[index];
    let urls = Urls::new(forge.server, &event.repository.name);
    let commit = |c: &EventCommit| commit(c, &urls, forge);
    let commits: Vec<Value> = change.commits.iter().map(commit).collect();
    let default_branch = event.repository.default_branch.as_deref();
    json!({
        "ref": change.name,
        "before": change.before,
        "after": change.after,
        "created": change.action == Action::Create,
        "deleted": change.action == Action::Delete,
        "forced": change.action == Action::Force,
        "base_ref": change.base_ref,
        "compare": compare_url(change, default_branch, &urls),
        "commits": commits,
        "head_commit": change.head_commit.as_ref().map(commit),
        "repository": repository(event, forge, &urls),
        "pusher": {"name": event.user.name, "email": forge.email_of(&event.user.name)},
        "sender": user(&event.user.name, &urls),
    })
}

/// A repository's owner and name as GitHub has them (`full_name` is `owner/name`): the owner
/// is `[server] owner`, else the first segment of the repository's name (the whole name, for
/// a repository at the top of `repos_root`); the name is its last segment.
pub fn owner_and_name<'a>(server: &'a Server, repo: &'a str) -> (&'a str, &'a str) {
    let owner = server.owner.as_deref().unwrap_or_else(|| repo.split('/').next().unwrap_or(repo));
    let name = repo.rsplit('/').next().unwrap_or(repo);
    (owner, name)
}

struct Urls {
    base: String,
    api: String,
    /// The repository's name, percent-encoded for URL paths.
    path: String,
}

impl Urls {
    fn new(server: &Server, repo: &str) -> Urls {
        Urls { base: server.base_url.clone(), api: format!("{}/api/v3", server.base_url), path: encode_path(repo) }
    }

    fn html(&self) -> String {
        format!("{}/{}", self.base, self.path)
    }

    fn api_repo(&self) -> String {
        format!("{}/repos/{}", self.api, self.path)
    }
}

/// GitHub's `compare`: `<before>...<after>` (12 digits each) for updates, forces and
/// deletes; for a create, what the new ref adds to the default branch
/// (`<default branch>...<commit>`), or the commit itself when there is no other branch to
/// compare with (the default branch is the one created). An annotated tag is compared by
/// the commit it names: its own id makes no page.
fn compare_url(change: &Change, default_branch: Option<&str>, urls: &Urls) -> String {
    let short = |id: &str| id.get(..12).unwrap_or(id).to_string();
    match change.action {
        Action::Create => {
            let commit = change.head_commit.as_ref().map_or(change.after.as_str(), |c| c.id.as_str());
            let base = default_branch.filter(|b| change.name.strip_prefix("refs/heads/") != Some(*b));
            match base {
                Some(base) => format!("{}/compare/{}...{}", urls.html(), encode_path(base), short(commit)),
                None => format!("{}/commit/{commit}", urls.html()),
            }
        }
        _ => format!("{}/compare/{}...{}", urls.html(), short(&change.before), short(&change.after)),
    }
}

fn commit(c: &EventCommit, urls: &Urls, forge: &Forge) -> Value {
    json!({
        "id": c.id,
        "tree_id": c.tree_id,
        "distinct": c.distinct,
        "message": c.message.strip_suffix('\n').unwrap_or(&c.message),
        "timestamp": c.timestamp,
        "url": format!("{}/commit/{}", urls.html(), c.id),
        "author": person(&c.author.name, &c.author.email, forge),
        "committer": person(&c.committer.name, &c.committer.email, forge),
        "added": c.added,
        "removed": c.removed,
        "modified": c.modified,
    })
}

/// A commit's author or committer; `username` only when the email is one of a user's
/// `[users.<name>] emails` (GitHub: when the email belongs to an account).
fn person(name: &str, email: &str, forge: &Forge) -> Value {
    let mut person = Map::new();
    person.insert("name".into(), name.into());
    person.insert("email".into(), email.into());
    if let Some(login) = forge.user_with_email(email) {
        person.insert("username".into(), login.into());
    }
    Value::Object(person)
}

fn repository(event: &PushEvent, forge: &Forge, urls: &Urls) -> Value {
    let server = forge.server;
    let (owner, name) = owner_and_name(server, &event.repository.name);
    let id = stable_id(&event.repository.name);
    let html = urls.html();
    let api = urls.api_repo();
    let host = server.base_url.split_once("://").map_or(server.base_url.as_str(), |(_, h)| h);
    let pushed_at = crate::time::unix_seconds(&event.time);
    json!({
        "id": id,
        "node_id": format!("R_{id}"),
        "name": name,
        "full_name": format!("{owner}/{name}"),
        "private": true,
        "owner": owner_user(owner, forge.email_of(owner), urls),
        "html_url": html,
        "description": null,
        "fork": false,
        // Push events, unlike GitHub's others, carry the web URL here.
        "url": html,
        "forks_url": format!("{api}/forks"),
        "keys_url": format!("{api}/keys{{/key_id}}"),
        "collaborators_url": format!("{api}/collaborators{{/collaborator}}"),
        "teams_url": format!("{api}/teams"),
        "hooks_url": format!("{api}/hooks"),
        "issue_events_url": format!("{api}/issues/events{{/number}}"),
        "events_url": format!("{api}/events"),
        "assignees_url": format!("{api}/assignees{{/user}}"),
        "branches_url": format!("{api}/branches{{/branch}}"),
        "tags_url": format!("{api}/tags"),
        "blobs_url": format!("{api}/git/blobs{{/sha}}"),
        "git_tags_url": format!("{api}/git/tags{{/sha}}"),
        "git_refs_url": format!("{api}/git/refs{{/sha}}"),
        "trees_url": format!("{api}/git/trees{{/sha}}"),
        "statuses_url": format!("{api}/statuses/{{sha}}"),
        "languages_url": format!("{api}/languages"),
        "stargazers_url": format!("{api}/stargazers"),
        "contributors_url": format!("{api}/contributors"),
        "subscribers_url": format!("{api}/subscribers"),
        "subscription_url": format!("{api}/subscription"),
        "commits_url": format!("{api}/commits{{/sha}}"),
        "git_commits_url": format!("{api}/git/commits{{/sha}}"),
        "comments_url": format!("{api}/comments{{/number}}"),
        "issue_comment_url": format!("{api}/issues/comments{{/number}}"),
        "contents_url": format!("{api}/contents/{{+path}}"),
        "compare_url": format!("{api}/compare/{{base}}...{{head}}"),
        "merges_url": format!("{api}/merges"),
        "archive_url": format!("{api}/{{archive_format}}{{/ref}}"),
        "downloads_url": format!("{api}/downloads"),
        "issues_url": format!("{api}/issues{{/number}}"),
        "pulls_url": format!("{api}/pulls{{/number}}"),
        "milestones_url": format!("{api}/milestones{{/number}}"),
        "notifications_url": format!("{api}/notifications{{?since,all,participating}}"),
        "labels_url": format!("{api}/labels{{/name}}"),
        "releases_url": format!("{api}/releases{{/id}}"),
        "deployments_url": format!("{api}/deployments"),
        "created_at": 0,
        "updated_at": event.time,
        "pushed_at": pushed_at,
        "git_url": format!("git://{host}/{}.git", urls.path),
        "ssh_url": format!("git@{}:{}.git", host.split([':', '/']).next().unwrap_or(host), urls.path),
        "clone_url": format!("{html}.git"),
        "svn_url": html,
        "homepage": null,
        "size": 0,
        "stargazers_count": 0,
        "watchers_count": 0,
        "language": null,
        "has_issues": false,
        "has_projects": false,
        "has_downloads": false,
        "has_wiki": false,
        "has_pages": false,
        "forks_count": 0,
        "mirror_url": null,
        "archived": false,
        "disabled": false,
        "open_issues_count": 0,
        "license": null,
        "forks": 0,
        "open_issues": 0,
        "watchers": 0,
        "stargazers": 0,
        "default_branch": event.repository.default_branch.as_deref().unwrap_or("main"),
        "master_branch": event.repository.default_branch.as_deref().unwrap_or("main"),
        "is_template": false,
        "web_commit_signoff_required": false,
        "topics": [],
        "visibility": "private",
        "custom_properties": {},
    })
}

/// A repository's owner: a user object, with the `name` and `email` push events add.
fn owner_user(login: &str, email: Option<&str>, urls: &Urls) -> Value {
    let mut owner = user(login, urls);
    if let Value::Object(fields) = &mut owner {
        fields.insert("name".into(), login.into());
        fields.insert("email".into(), email.into());
    }
    owner
}

/// A GitHub user object for a pushgate user name.
fn user(login: &str, urls: &Urls) -> Value {
    let id = stable_id(login);
    let api = format!("{}/users/{}", urls.api, encode_path(login));
    json!({
        "login": login,
        "id": id,
        "node_id": format!("U_{id}"),
        "avatar_url": format!("{}/avatars/{}", urls.base, encode_path(login)),
        "gravatar_id": "",
        "url": api,
        "html_url": format!("{}/{}", urls.base, encode_path(login)),
        "followers_url": format!("{api}/followers"),
        "following_url": format!("{api}/following{{/other_user}}"),
        "gists_url": format!("{api}/gists{{/gist_id}}"),
        "starred_url": format!("{api}/starred{{/owner}}{{/repo}}"),
        "subscriptions_url": format!("{api}/subscriptions"),
        "organizations_url": format!("{api}/orgs"),
        "repos_url": format!("{api}/repos"),
        "events_url": format!("{api}/events{{/privacy}}"),
        "received_events_url": format!("{api}/received_events"),
        "type": "User",
        "site_admin": false,
    })
}

/// Percent-encode a path for a URL, keeping `/` between segments.
pub(super) fn encode_path(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for byte in path.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~/".contains(&byte) {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::extension::Phase;
    use crate::event::{Repository, Signature, User};
    use crate::identity::Via;
    use crate::push::Vcs;
    use std::collections::BTreeMap;

    /// One of GitHub's own push payloads (octokit's examples, `tests/data/github`).
    fn example(name: &str) -> Value {
        let path = format!("{}/tests/data/github/{name}", env!("CARGO_MANIFEST_DIR"));
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
    }

    /// What pushgate would know of the push GitHub describes in `example`: the event, and
    /// `[users]` giving each account of the example its email.
    fn event_like(example: &Value) -> (PushEvent, BTreeMap<String, Vec<String>>) {
        let text = |v: &Value| v.as_str().unwrap().to_string();
        let mut users: BTreeMap<String, Vec<String>> = BTreeMap::new();
        let mut know = |person: &Value| {
            if let Some(login) = person.get("username") {
                users.entry(text(login)).or_default().push(text(&person["email"]));
            }
        };
        know(&json!({"username": example["pusher"]["name"], "email": example["pusher"]["email"]}));
        let mut commit = |c: &Value| {
            know(&c["author"]);
            know(&c["committer"]);
            let signature =
                |p: &Value| Signature { name: text(&p["name"]), email: text(&p["email"]), date: text(&c["timestamp"]) };
            let paths = |key: &str| c[key].as_array().unwrap().iter().map(text).collect();
            EventCommit {
                id: text(&c["id"]),
                tree_id: text(&c["tree_id"]),
                parents: vec![],
                message: format!("{}\n", text(&c["message"])),
                timestamp: text(&c["timestamp"]),
                author: signature(&c["author"]),
                committer: signature(&c["committer"]),
                added: paths("added"),
                modified: paths("modified"),
                removed: paths("removed"),
                distinct: c["distinct"].as_bool().unwrap(),
                files_pending: false,
            }
        };
        let commits: Vec<EventCommit> = example["commits"].as_array().unwrap().iter().map(&mut commit).collect();
        let head_commit = Some(&example["head_commit"]).filter(|c| !c.is_null()).map(&mut commit);
        let action = match (&example["created"], &example["deleted"], &example["forced"]) {
            (Value::Bool(true), _, _) => Action::Create,
            (_, Value::Bool(true), _) => Action::Delete,
            (_, _, Value::Bool(true)) => Action::Force,
            _ => Action::Update,
        };
        let change = Change {
            name: text(&example["ref"]),
            before: text(&example["before"]),
            after: text(&example["after"]),
            action,
            total_commits: commits.len(),
            commits,
            commits_truncated: false,
            head_commit,
            base_ref: example["base_ref"].as_str().map(str::to_string),
            tag_message: None,
            newest_commits: vec![],
        };
        let event = PushEvent {
            schema: crate::event::SCHEMA.into(),
            id: "e1".into(),
            sequence: Some(1),
            time: "2019-05-15T15:20:41Z".into(),
            phase: Phase::Post,
            vcs: Vcs::Git,
            repository: Repository {
                name: text(&example["repository"]["full_name"]),
                path: "/srv/git/x.git".into(),
                default_branch: Some(text(&example["repository"]["default_branch"])),
            },
            user: User { name: text(&example["pusher"]["name"]), groups: vec![], via: Via::Ssh },
            push_options: vec![],
            changes: vec![change],
        };
        (event, users)
    }

    fn github() -> Server {
        Server { base_url: "https://github.com".into(), owner: None }
    }

    fn keys(value: &Value) -> std::collections::BTreeSet<&str> {
        value.as_object().unwrap().keys().map(String::as_str).collect()
    }

    /// Our payload for the push GitHub's `example` describes.
    fn ours_for(example: &Value) -> Value {
        let (event, users) = event_like(example);
        payload(&event, 0, &Forge { server: &github(), users: &users })
    }

    /// What SPEC §6 asks of every payload, field by field against GitHub's own: the push's
    /// fields, its commits (`distinct`, messages without git's newline, authors' `username`
    /// where an email is a user's), the pusher with their email, the repository's names and
    /// web URL.
    #[track_caller]
    fn assert_like_github(example: &Value, ours: &Value) {
        for key in
            ["ref", "before", "after", "created", "deleted", "forced", "base_ref", "commits", "head_commit", "pusher"]
        {
            assert_eq!(ours[key], example[key], "{key}");
        }
        fn top(v: &Value) -> Vec<&str> {
            keys(v).into_iter().filter(|k| !["installation", "organization"].contains(k)).collect()
        }
        assert_eq!(top(ours), top(example), "the same fields (an app's `installation`, an org's `organization` aside)");
        for key in ["name", "full_name", "html_url", "url", "default_branch", "master_branch"] {
            assert_eq!(ours["repository"][key], example["repository"][key], "repository.{key}");
        }
        assert_eq!(ours["repository"]["url"], ours["repository"]["html_url"], "push events carry the web URL");
        assert_eq!(ours["repository"]["owner"]["name"], example["repository"]["owner"]["name"]);
        assert_eq!(ours["sender"]["login"], example["sender"]["login"]);
        assert!(ours["repository"]["created_at"].is_u64() && ours["repository"]["pushed_at"].is_u64(), "Unix seconds");
    }

    #[test]
    fn a_branch_created_in_an_empty_repository_is_githubs_example() {
        for name in
            ["octokit-4-branch-created-installation.json", "octokit-5-branch-created-no-username-committer.json"]
        {
            let example = example(name);
            let mut ours = ours_for(&example);
            if name.contains("no-username") {
                // Its committer has the author's email and no username (an email GitHub
                // does not show as the account's); pushgate names the user wherever an
                // email is one of theirs.
                ours["commits"][0]["committer"].as_object_mut().unwrap().remove("username");
                ours["head_commit"]["committer"].as_object_mut().unwrap().remove("username");
            }
            assert_like_github(&example, &ours);
            // No other branch to compare with: the commit's own page.
            assert_eq!(ours["compare"], example["compare"], "{name}");
            // Every field GitHub sends today, and no other.
            assert_eq!(keys(&ours["repository"]), keys(&example["repository"]), "{name}");
            assert_eq!(keys(&ours["repository"]["owner"]), keys(&example["repository"]["owner"]), "{name}");
            assert_eq!(keys(&ours["sender"]), keys(&example["sender"]), "{name}");
        }
    }

    #[test]
    fn a_tag_created_at_an_existing_commit_is_githubs_example_but_for_compare() {
        let example = example("octokit-0-tag-created.json");
        let ours = ours_for(&example);
        assert_like_github(&example, &ours);
        assert_eq!(ours["commits"], json!([]), "the commit is not new");
        assert_eq!(ours["head_commit"]["id"], example["after"]);
        // GitHub writes `compare/simple-tag`, which it reads as the default branch against
        // the tag; SPEC §6 asks for that comparison spelled out.
        assert_eq!(example["compare"], "https://github.com/Codertocat/Hello-World/compare/simple-tag");
        assert_eq!(ours["compare"], "https://github.com/Codertocat/Hello-World/compare/master...6113728f27ae");
    }

    #[test]
    fn deletes_are_githubs_examples() {
        for name in [
            "octokit-1-tag-deleted-organization.json",
            "octokit-2-tag-deleted.json",
            "octokit-3-tag-deleted-installation.json",
            "octokit-6-tag-deleted-organization-b.json",
        ] {
            let example = example(name);
            let ours = ours_for(&example);
            assert_like_github(&example, &ours);
            assert_eq!(ours["head_commit"], Value::Null);
            // (One of octokit's examples has `d70c5c6fa638^...`, a commit of another push.)
            assert_eq!(
                ours["compare"],
                "https://github.com/Codertocat/Hello-World/compare/6113728f27ae...000000000000"
            );
        }
    }

    #[test]
    fn an_update_is_githubs_capture() {
        // A real delivery from 2016 (probot's fixture): octokit has no example of an update.
        let example = example("probot-branch-update-2016.json");
        let ours = ours_for(&example);
        assert_like_github(&example, &ours);
        assert_eq!(ours["compare"], example["compare"]);
        assert_eq!(ours["commits"][0]["message"], "Update README.md", "no trailing newline");
    }

    #[test]
    fn the_owner_is_the_server_owner_or_the_first_segment() {
        let server =
            |owner: Option<&str>| Server { base_url: "https://git.example.org".into(), owner: owner.map(Into::into) };
        assert_eq!(owner_and_name(&server(None), "team/app"), ("team", "app"));
        assert_eq!(owner_and_name(&server(None), "team/sub/app"), ("team", "app"));
        assert_eq!(owner_and_name(&server(None), "app"), ("app", "app"), "a top-level repository owns itself");
        assert_eq!(owner_and_name(&server(Some("acme")), "app"), ("acme", "app"));
        assert_eq!(owner_and_name(&server(Some("acme")), "team/app"), ("acme", "app"));
    }

    #[test]
    fn compare_urls_take_githubs_forms() {
        let example = example("probot-branch-update-2016.json");
        let (mut event, users) = event_like(&example);
        let server = github();
        let forge = Forge { server: &server, users: &users };
        let base = "https://github.com/bkeepers-inc/test";
        let compare = |event: &PushEvent| payload(event, 0, &forge)["compare"].as_str().unwrap().to_string();
        event.changes[0].action = Action::Force;
        assert_eq!(compare(&event), format!("{base}/compare/f5cd85485562...738a951dba49"));
        // A branch created beside the default branch: what it adds to it.
        event.changes[0].action = Action::Create;
        event.changes[0].before = "0".repeat(40);
        assert_eq!(compare(&event), format!("{base}/compare/master...738a951dba49"));
        // The default branch created: its commit.
        event.changes[0].name = "refs/heads/master".into();
        assert_eq!(compare(&event), format!("{base}/commit/738a951dba49dfec487000ef85ae80291d7ab32a"));
        // An annotated tag: by the commit it names (its own id makes no page).
        event.changes[0].name = "refs/tags/v1".into();
        event.changes[0].after = "a".repeat(40);
        assert_eq!(compare(&event), format!("{base}/compare/master...738a951dba49"));
        // No default branch known: the commit.
        event.repository.default_branch = None;
        assert_eq!(compare(&event), format!("{base}/commit/738a951dba49dfec487000ef85ae80291d7ab32a"));
    }

    #[test]
    fn base_ref_and_usernames_come_from_the_push_and_the_users() {
        let example = example("octokit-0-tag-created.json");
        let (mut event, mut users) = event_like(&example);
        event.changes[0].base_ref = Some("refs/heads/master".into());
        users.insert("nobody".into(), vec![]);
        let server = github();
        let ours = payload(&event, 0, &Forge { server: &server, users: &users });
        assert_eq!(ours["base_ref"], "refs/heads/master");
        // Emails compare without case; the first of the pusher's is `pusher.email`.
        users.insert("Codertocat".into(), vec!["21031067+CODERTOCAT@users.noreply.github.com".into(), "x@y".into()]);
        let ours = payload(&event, 0, &Forge { server: &server, users: &users });
        assert_eq!(ours["head_commit"]["author"]["username"], "Codertocat");
        assert_eq!(ours["pusher"]["email"], "21031067+CODERTOCAT@users.noreply.github.com");
        let none = BTreeMap::new();
        let ours = payload(&event, 0, &Forge { server: &server, users: &none });
        assert_eq!(ours["pusher"]["email"], Value::Null);
        assert!(ours["head_commit"]["author"].get("username").is_none(), "{}", ours["head_commit"]);
    }

    #[test]
    fn paths_are_percent_encoded() {
        assert_eq!(encode_path("team/my app"), "team/my%20app");
        assert_eq!(encode_path("a?b#c"), "a%3Fb%23c");
    }
}
