//! The `pre` phase: after the rules accept a push, every wanting `pre` extension runs in
//! parallel, each under its own timeout; any veto rejects the push.

use super::body::{self, Sending};
use super::{Call, GithubHeaders, Reply};
use crate::config::Mode;
use crate::config::extension::{Extension, OnError, Phase};
use crate::env::Env;
use crate::event::{EventKind, PushEvent};
use crate::ids;
use crate::policy::Verdict;
use std::path::Path;

/// Run `extensions` on `event` and add their vetoes and warnings to `verdict`.
pub fn run(
    extensions: &[&Extension],
    event: &PushEvent,
    sending: &Sending,
    cwd: &Path,
    env: &Env,
    verdict: &mut Verdict,
) {
    let replies: Vec<Reply> = std::thread::scope(|scope| {
        let handles: Vec<_> =
            extensions.iter().map(|ext| scope.spawn(move || ask(ext, event, sending, cwd, env))).collect();
        handles.into_iter().map(|h| h.join().unwrap_or(Reply::failed("crashed"))).collect()
    });
    for (ext, reply) in extensions.iter().zip(replies) {
        judge(ext, reply, verdict);
    }
}

/// One extension's answer for the whole push: the first non-accepting reply of its calls
/// (one call, or one per change for the `github` format).
fn ask(ext: &Extension, event: &PushEvent, sending: &Sending, cwd: &Path, env: &Env) -> Reply {
    let bodies = match body::for_push(ext, event, sending) {
        Ok(bodies) => bodies,
        Err(e) => return Reply::failed(format!("cannot build the body: {e}")),
    };
    for body in bodies {
        let bytes = serde_json::to_vec(&body.json).unwrap_or_default();
        let delivery_id = ids::new_id();
        let call = Call {
            body: &bytes,
            event: EventKind::Push,
            phase: Phase::Pre,
            user: &event.user.name,
            repo: &event.repository.name,
            event_id: &event.id,
            delivery_id: &delivery_id,
            cwd,
            github: body.total_commits.map(|total_commits| GithubHeaders { total_commits }),
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
