//! What an extension is sent for an event, in its `format`: the one place bodies are built,
//! for `pre` calls and `post` deliveries alike.

use crate::config::Server;
use crate::config::extension::{Extension, Format};
use crate::event::{self, PullEvent, PushEvent};
use serde_json::Value;

/// One body for one extension.
#[derive(Debug, Clone, PartialEq)]
pub struct Body {
    /// The change it is about (`github`: one body per change), else 0.
    pub change: usize,
    pub json: Value,
    /// `github` bodies: how many commits the change brought (sent as a header, GitHub's
    /// schema has no room for it in the body).
    pub total_commits: Option<usize>,
}

/// What an extension is sent besides the event: the server's URLs, and how many commits
/// per change when the extension does not say.
pub struct Sending<'a> {
    pub server: &'a Server,
    pub max_commits: usize,
}

/// The bodies `ext` is sent for a push: the event with only the changes of refs it wants
/// (`pushgate`), or one payload per such change (`github`), each listing at most the
/// extension's `max_commits` commits per change.
pub fn for_push(ext: &Extension, event: &PushEvent, sending: &Sending) -> Result<Vec<Body>, serde_json::Error> {
    let mut mine = event.clone();
    let cap = ext.max_commits.unwrap_or(sending.max_commits);
    for change in &mut mine.changes {
        if change.commits.len() > cap {
            change.commits.truncate(cap);
            change.commits_truncated = true;
        }
    }
    match ext.format {
        Format::Pushgate => {
            mine.changes.retain(|c| ext.wants_ref(&c.name));
            Ok(vec![Body { change: 0, json: serde_json::to_value(&mine)?, total_commits: None }])
        }
        Format::Github => Ok(mine
            .changes
            .iter()
            .enumerate()
            .filter(|(_, c)| ext.wants_ref(&c.name))
            .map(|(i, c)| Body {
                change: i,
                json: event::github::payload(&mine, i, sending.server),
                total_commits: Some(c.total_commits),
            })
            .collect()),
    }
}

/// The body for a pull: the event as it is, whatever the format.
pub fn for_pull(pull: &PullEvent) -> Result<Body, serde_json::Error> {
    Ok(Body { change: 0, json: serde_json::to_value(pull)?, total_commits: None })
}
