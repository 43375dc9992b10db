//! What an extension is sent for an event, in its `format`: the one place bodies are built,
//! for `pre` calls and `post` deliveries alike.

use crate::config::Server;
use crate::config::extension::{Extension, Format};
use crate::event::gitlab::Hook;
use crate::event::{self, Forge, PushEvent};
use serde_json::Value;
use std::collections::BTreeMap;

/// One body for one extension.
#[derive(Debug, Clone, PartialEq)]
pub struct Body {
    /// The change it is about (`github`, `gitlab`: one body per change), else 0.
    pub change: usize,
    pub json: Value,
    pub dialect: Dialect,
}

/// What a body's format adds to the request besides the body: the headers the receivers
/// of that format look for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Pushgate,
    /// GitHub's headers, and how many commits the change brought (GitHub's schema has no
    /// room for it in the body).
    Github {
        total_commits: usize,
    },
    /// GitLab's headers, for one of its hooks.
    Gitlab {
        hook: Hook,
    },
}

/// What an extension is sent besides the event: the server's URLs, the users' emails, and
/// how many commits per change when the extension does not say.
pub struct Sending<'a> {
    pub server: &'a Server,
    pub users: &'a BTreeMap<String, Vec<String>>,
    pub max_commits: usize,
}

/// The bodies `ext` is sent for a push: the event with only the changes it wants (their
/// refs and actions; `pushgate`), or one payload per such change (`github`, `gitlab`), each
/// listing at most the extension's `max_commits` commits per change (the oldest; `gitlab`,
/// as GitLab does, the newest).
pub fn for_push(ext: &Extension, event: &PushEvent, sending: &Sending) -> Result<Vec<Body>, serde_json::Error> {
    let cap = ext.max_commits.unwrap_or(sending.max_commits);
    let forge = Forge { server: sending.server, users: sending.users };
    let wanted = |i: &usize| {
        let change = &event.changes[*i];
        ext.wants_change(&change.name, change.action)
    };
    let indexes: Vec<usize> = (0..event.changes.len()).filter(wanted).collect();
    match ext.format {
        Format::Pushgate => {
            let mut mine = listing(event, cap);
            mine.changes = indexes.iter().map(|&i| mine.changes[i].clone()).collect();
            Ok(vec![Body { change: 0, json: serde_json::to_value(&mine)?, dialect: Dialect::Pushgate }])
        }
        Format::Github => {
            let mine = listing(event, cap);
            let body = |i: usize| Body {
                change: i,
                json: event::github::payload(&mine, i, &forge),
                dialect: Dialect::Github { total_commits: mine.changes[i].total_commits },
            };
            Ok(indexes.into_iter().map(body).collect())
        }
        Format::Gitlab => {
            let body = |i: usize| Body {
                change: i,
                json: event::gitlab::payload(event, i, &forge, cap),
                dialect: Dialect::Gitlab { hook: Hook::of(&event.changes[i].name) },
            };
            Ok(indexes.into_iter().map(body).collect())
        }
    }
}

/// The event as the `pushgate` and `github` formats list it: at most `cap` commits per
/// change, the oldest, without the newest ones kept for `gitlab`.
fn listing(event: &PushEvent, cap: usize) -> PushEvent {
    let mut mine = event.clone();
    for change in &mut mine.changes {
        if change.commits.len() > cap {
            change.commits.truncate(cap);
            change.commits_truncated = true;
        }
        change.newest_commits.clear();
    }
    mine
}

/// The body for a pull or a repository event: the event as it is, whatever the format.
pub fn as_is(event: &impl serde::Serialize) -> Result<Body, serde_json::Error> {
    Ok(Body { change: 0, json: serde_json::to_value(event)?, dialect: Dialect::Pushgate })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::config::extension::Phase;
    use crate::event::{Change, EventCommit, Repository, Signature, User};
    use crate::identity::Via;
    use crate::push::{Action, Vcs};
    use std::path::Path;

    fn extension(format: &str, extra: &str) -> Extension {
        let text = format!(
            "[[extension]]\nname = \"x\"\ntype = \"http\"\nphase = \"post\"\nurl = \"http://x\"\nformat = \"{format}\"\n{extra}\n"
        );
        Config::parse(Path::new("c.toml"), &text, None).unwrap().extensions.remove(0)
    }

    fn commit(i: usize) -> EventCommit {
        let person = Signature { name: "A".into(), email: "a@x".into(), date: "2026-11-22T12:00:00Z".into() };
        EventCommit {
            id: format!("{i:040}"),
            tree_id: "f".repeat(40),
            parents: vec![],
            message: format!("commit {i}\n"),
            timestamp: "2026-11-22T12:00:00Z".into(),
            author: person.clone(),
            committer: person,
            added: vec![],
            modified: vec![],
            removed: vec![],
            distinct: true,
            files_pending: false,
        }
    }

    /// A push of four changes, one per action; `main` brings 30 commits, 25 listed and the
    /// newest 20 kept aside.
    fn event() -> PushEvent {
        let change = |name: &str, action: Action, commits: Vec<EventCommit>| Change {
            name: name.into(),
            before: "1".repeat(40),
            after: "2".repeat(40),
            action,
            total_commits: commits.len(),
            head_commit: commits.last().cloned(),
            commits,
            commits_truncated: false,
            base_ref: None,
            tag_message: None,
            newest_commits: vec![],
        };
        let mut main = change("refs/heads/main", Action::Update, (1..=25).map(commit).collect());
        main.commits_truncated = true;
        main.total_commits = 30;
        main.newest_commits = (11..=30).map(commit).collect();
        PushEvent {
            schema: event::SCHEMA.into(),
            id: "e1".into(),
            sequence: Some(1),
            time: "2026-11-22T12:00:00Z".into(),
            phase: Phase::Post,
            vcs: Vcs::Git,
            repository: Repository {
                name: "team/app".into(),
                path: "/srv/git/team/app.git".into(),
                default_branch: None,
            },
            user: User { name: "alice".into(), groups: vec![], via: Via::Ssh },
            push_options: vec![],
            changes: vec![
                change("refs/heads/new", Action::Create, vec![commit(40)]),
                main,
                change("refs/heads/rewritten", Action::Force, vec![commit(41)]),
                change("refs/tags/old", Action::Delete, vec![]),
            ],
        }
    }

    fn bodies(ext: &Extension) -> Vec<Body> {
        let server = Server { base_url: "https://git.example.org".into(), owner: None };
        let users = BTreeMap::new();
        for_push(ext, &event(), &Sending { server: &server, users: &users, max_commits: 100 }).unwrap()
    }

    #[test]
    fn actions_choose_the_changes_sent() {
        let pushgate = bodies(&extension("pushgate", "actions = [\"force\", \"delete\"]"));
        let refs: Vec<&str> =
            pushgate[0].json["changes"].as_array().unwrap().iter().map(|c| c["ref"].as_str().unwrap()).collect();
        assert_eq!(refs, ["refs/heads/rewritten", "refs/tags/old"]);

        let github = bodies(&extension("github", "actions = [\"create\"]"));
        assert_eq!(github.iter().map(|b| b.change).collect::<Vec<_>>(), [0]);
        assert_eq!(github[0].dialect, Dialect::Github { total_commits: 1 });

        let gitlab = bodies(&extension("gitlab", "actions = [\"delete\", \"update\"]"));
        assert_eq!(gitlab.iter().map(|b| b.change).collect::<Vec<_>>(), [1, 3]);
        assert_eq!(gitlab[0].dialect, Dialect::Gitlab { hook: Hook::Push });
        assert_eq!(gitlab[1].dialect, Dialect::Gitlab { hook: Hook::TagPush });
    }

    #[test]
    fn each_format_lists_its_commits() {
        // pushgate and github: the oldest, up to the extension's max_commits; the newest
        // kept for gitlab stay out.
        let pushgate = bodies(&extension("pushgate", "max_commits = 5"));
        let main = &pushgate[0].json["changes"][1];
        assert_eq!(main["commits"].as_array().unwrap().len(), 5);
        assert_eq!(main["commits"][0]["id"], format!("{:040}", 1));
        assert_eq!(main["commits_truncated"], true);
        assert!(main.get("newest_commits").is_none(), "{main}");
        let github = bodies(&extension("github", ""));
        assert_eq!(github[1].json["commits"].as_array().unwrap().len(), 25);
        assert_eq!(github[1].dialect, Dialect::Github { total_commits: 30 });
        // gitlab: GitLab's newest 20, oldest first.
        let gitlab = bodies(&extension("gitlab", ""));
        let ids: Vec<&str> =
            gitlab[1].json["commits"].as_array().unwrap().iter().map(|c| c["id"].as_str().unwrap()).collect();
        assert_eq!(ids.len(), 20);
        assert_eq!((ids[0], ids[19]), (format!("{:040}", 11).as_str(), format!("{:040}", 30).as_str()));
        assert_eq!(gitlab[1].json["total_commits_count"], 30);
    }
}
