//! The `github` format: one payload per change with the fields of GitHub's push webhook, so
//! receivers written for GitHub (CI servers, chat bots, webhook libraries) accept it
//! unchanged. It validates against GitHub's push-event schema; fields pushgate cannot know
//! take their neutral values (`null`, `false`, `0`, `[]`).
//!
//! GitHub's schema forbids extra top-level fields, so the count of commits (which SPEC.md
//! calls `total_commits`) travels in the `X-Pushgate-Total-Commits` header instead.

use super::{Change, EventCommit, PushEvent};
use crate::config::Server;
use crate::ids::stable_id;
use crate::push::Action;
use serde_json::{Value, json};

/// The payload for `event.changes[index]`.
pub fn payload(event: &PushEvent, index: usize, server: &Server) -> Value {
    let change = &event.changes[index];
    let urls = Urls::new(server, &event.repository.name);
    let commits: Vec<Value> = change.commits.iter().map(|c| commit(c, &urls)).collect();
    json!({
        "ref": change.name,
        "before": change.before,
        "after": change.after,
        "created": change.action == Action::Create,
        "deleted": change.action == Action::Delete,
        "forced": change.action == Action::Force,
        "base_ref": null,
        "compare": compare_url(change, &urls),
        "commits": commits,
        "head_commit": change.head_commit.as_ref().map(|c| commit(c, &urls)),
        "repository": repository(event, server, &urls),
        "pusher": {"name": event.user.name, "email": null},
        "sender": user(&event.user.name, &urls),
    })
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

fn compare_url(change: &Change, urls: &Urls) -> String {
    let short = |id: &str| id.get(..12).unwrap_or(id).to_string();
    match change.action {
        Action::Create => format!("{}/commit/{}", urls.html(), short(&change.after)),
        _ => format!("{}/compare/{}...{}", urls.html(), short(&change.before), short(&change.after)),
    }
}

fn commit(c: &EventCommit, urls: &Urls) -> Value {
    json!({
        "id": c.id,
        "tree_id": c.tree_id,
        "distinct": c.distinct,
        "message": c.message,
        "timestamp": c.timestamp,
        "url": format!("{}/commit/{}", urls.html(), c.id),
        "author": {"name": c.author.name, "email": c.author.email, "date": c.author.date},
        "committer": {"name": c.committer.name, "email": c.committer.email, "date": c.committer.date},
        "added": c.added,
        "removed": c.removed,
        "modified": c.modified,
    })
}

fn repository(event: &PushEvent, server: &Server, urls: &Urls) -> Value {
    let full_name = &event.repository.name;
    let name = full_name.rsplit('/').next().unwrap_or(full_name);
    let owner = server.owner.clone().unwrap_or_else(|| full_name.split('/').next().unwrap_or(full_name).to_string());
    let id = stable_id(full_name);
    let html = urls.html();
    let api = urls.api_repo();
    let host = server.base_url.split_once("://").map_or(server.base_url.as_str(), |(_, h)| h);
    let pushed_at = unix_seconds(&event.time);
    json!({
        "id": id,
        "node_id": format!("R_{id}"),
        "name": name,
        "full_name": full_name,
        "private": true,
        "owner": user(&owner, urls),
        "html_url": html,
        "description": null,
        "fork": false,
        "url": api,
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

/// A GitHub user object for a pushgate user name.
fn user(login: &str, urls: &Urls) -> Value {
    let id = stable_id(login);
    let api = format!("{}/users/{}", urls.api, encode_path(login));
    json!({
        "login": login,
        "id": id,
        "node_id": format!("U_{id}"),
        "name": login,
        "email": null,
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
fn encode_path(path: &str) -> String {
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

/// `2026-11-22T12:00:00Z` as Unix seconds (the event's own time is always UTC).
fn unix_seconds(time: &str) -> Value {
    let parse = || -> Option<i64> {
        let (date, clock) = time.strip_suffix('Z')?.split_once('T')?;
        let mut d = date.split('-').map(|p| p.parse::<i64>().ok());
        let (y, m, day) = (d.next()??, d.next()??, d.next()??);
        let mut c = clock.split(':').map(|p| p.parse::<i64>().ok());
        let (h, min, s) = (c.next()??, c.next()??, c.next()??);
        // Days from civil (Howard Hinnant), the inverse of time::rfc3339.
        let y = if m <= 2 { y - 1 } else { y };
        let era = y.div_euclid(400);
        let yoe = y - era * 400;
        let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + day - 1;
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        Some((era * 146_097 + doe - 719_468) * 86_400 + h * 3600 + min * 60 + s)
    };
    parse().map_or(Value::Null, Value::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_percent_encoded() {
        assert_eq!(encode_path("team/my app"), "team/my%20app");
        assert_eq!(encode_path("a?b#c"), "a%3Fb%23c");
    }

    #[test]
    fn event_time_converts_to_unix_seconds() {
        assert_eq!(unix_seconds("2026-11-22T12:00:00Z"), json!(1_795_348_800));
        assert_eq!(unix_seconds("1970-01-01T00:00:00Z"), json!(0));
        assert_eq!(unix_seconds("garbage"), Value::Null);
    }
}
