//! The `pre` phase: after the rules accept a push, every matching enabled `pre` extension
//! runs in parallel, each under its own timeout; any veto rejects the push.

use super::{Call, GithubHeaders, Reply};
use crate::config::extension::{Extension, Format, OnError, Phase};
use crate::config::{Mode, Server};
use crate::event::{self, Event};
use crate::policy::Verdict;
use std::ffi::OsString;
use std::path::Path;

/// The `pre` extensions that apply to a push of `refs` into `repo`.
pub fn applicable<'c>(extensions: &'c [Extension], repo: &str, refs: &[&str]) -> Vec<&'c Extension> {
    extensions
        .iter()
        .filter(|e| e.phase == Phase::Pre && e.enabled && e.push_events)
        .filter(|e| e.applies_to(repo, refs.iter().copied()))
        .collect()
}

/// Run `extensions` on `event` and add their vetoes and warnings to `verdict`.
pub fn run(
    extensions: &[&Extension],
    event: &Event,
    server: &Server,
    cwd: &Path,
    env: &(dyn Fn(&str) -> Option<OsString> + Sync),
    verdict: &mut Verdict,
) {
    let replies: Vec<Reply> = std::thread::scope(|scope| {
        let handles: Vec<_> =
            extensions.iter().map(|ext| scope.spawn(move || ask(ext, event, server, cwd, env))).collect();
        handles.into_iter().map(|h| h.join().unwrap_or(Reply::failed("crashed"))).collect()
    });
    for (ext, reply) in extensions.iter().zip(replies) {
        judge(ext, reply, verdict);
    }
}

/// One extension's answer for the whole push: the first non-accepting reply of its calls
/// (one call, or one per change for the `github` format).
fn ask(ext: &Extension, event: &Event, server: &Server, cwd: &Path, env: &dyn Fn(&str) -> Option<OsString>) -> Reply {
    let mut mine = event.clone();
    mine.changes.retain(|c| ext.wants_ref(&c.name));
    let bodies: Vec<(Vec<u8>, Option<GithubHeaders>)> = match ext.format {
        Format::Pushgate => vec![(serde_json::to_vec(&mine).unwrap_or_default(), None)],
        Format::Github => (0..mine.changes.len())
            .map(|i| {
                let payload = event::github::payload(&mine, i, server);
                let headers = GithubHeaders { total_commits: mine.changes[i].total_commits };
                (serde_json::to_vec(&payload).unwrap_or_default(), Some(headers))
            })
            .collect(),
    };
    for (body, github) in bodies {
        let delivery_id = event::new_id();
        let call = Call {
            body: &body,
            event: "push",
            phase: "pre",
            user: &event.user.name,
            repo: &event.repository.name,
            event_id: &event.id,
            delivery_id: &delivery_id,
            cwd,
            github,
        };
        let reply = super::call(ext, &call, env);
        if reply != Reply::Accepted {
            return reply;
        }
    }
    Reply::Accepted
}

fn judge(ext: &Extension, reply: Reply, verdict: &mut Verdict) {
    let name = &ext.name;
    let (lines, is_veto) = match reply {
        Reply::Accepted => return,
        Reply::Refused { code, lines } if lines.is_empty() => {
            (vec![format!("{name}: refused the push ({code})")], true)
        }
        Reply::Refused { lines, .. } => (lines.iter().map(|l| format!("{name}: {l}")).collect(), true),
        Reply::Failed { reason, .. } | Reply::Gone { reason } => (vec![format!("{name}: failed: {reason}")], false),
    };
    let rejects = ext.mode == Mode::Enforce && (is_veto || ext.on_error == OnError::Reject);
    if rejects {
        verdict.rejections.extend(lines);
    } else if !is_veto && ext.on_error == OnError::Allow {
        verdict.warnings.extend(lines.into_iter().map(|l| format!("{l} (allowed: on_error = \"allow\")")));
    } else {
        verdict.warnings.extend(lines);
    }
}
