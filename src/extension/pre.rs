//! The `pre` phase: after the rules accept a push (or a repository's creation or deletion),
//! every wanting `pre` extension runs in parallel, each under its own timeout; any veto
//! refuses it.

use super::body::Body;
use super::{Call, Reply};
use crate::config::Mode;
use crate::config::extension::{Extension, OnError, Phase};
use crate::env::Env;
use crate::event::EventKind;
use crate::ids;
use crate::policy::Verdict;
use std::path::Path;

/// What the `pre` extensions are asked about.
pub struct Question<'a> {
    pub kind: EventKind,
    pub user: &'a str,
    pub repo: &'a str,
    pub event_id: &'a str,
    /// What a veto refuses, as the lines say it (`the push`, `the creation`).
    pub what: &'a str,
    /// Where scripts run.
    pub cwd: &'a Path,
    /// `[server] base_url`.
    pub instance: &'a str,
}

/// The bodies an extension is sent for the question (one, or one per change).
pub type Bodies<'a> = dyn Fn(&Extension) -> Result<Vec<Body>, serde_json::Error> + Sync + 'a;

/// Ask `extensions` and add their vetoes and warnings to `verdict`.
pub fn run(extensions: &[&Extension], question: &Question, bodies: &Bodies, env: &Env, verdict: &mut Verdict) {
    let replies: Vec<Reply> = std::thread::scope(|scope| {
        let handles: Vec<_> =
            extensions.iter().map(|ext| scope.spawn(move || ask(ext, question, bodies, env))).collect();
        handles.into_iter().map(|h| h.join().unwrap_or(Reply::failed("crashed"))).collect()
    });
    for (ext, reply) in extensions.iter().zip(replies) {
        judge(ext, reply, question.what, verdict);
    }
}

/// One extension's answer: the first non-accepting reply of its calls (one call, or one per
/// change for the `github` and `gitlab` formats).
fn ask(ext: &Extension, question: &Question, bodies: &Bodies, env: &Env) -> Reply {
    let bodies = match bodies(ext) {
        Ok(bodies) => bodies,
        Err(e) => return Reply::failed(format!("cannot build the body: {e}")),
    };
    for body in bodies {
        let bytes = serde_json::to_vec(&body.json).unwrap_or_default();
        let delivery_id = ids::new_id();
        let call = Call {
            body: &bytes,
            event: question.kind,
            phase: Phase::Pre,
            user: question.user,
            repo: question.repo,
            event_id: question.event_id,
            delivery_id: &delivery_id,
            cwd: question.cwd,
            dialect: body.dialect,
            instance: question.instance,
        };
        let reply = super::call(ext, &call, env);
        if !reply.accepted() {
            return reply;
        }
    }
    Reply::Accepted { status: "nothing to send".into() }
}

fn judge(ext: &Extension, reply: Reply, what: &str, verdict: &mut Verdict) {
    let name = &ext.name;
    let (lines, is_veto) = match reply {
        Reply::Accepted { .. } => return,
        Reply::Refused { code, lines } if lines.is_empty() => (vec![format!("{name}: refused {what} ({code})")], true),
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
