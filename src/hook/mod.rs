//! The hooks: read what git or hg hands over, build the [`Push`](crate::push::Push), ask the
//! [gate](crate::gate), tell the pusher, record. Hooks never return an error: whatever goes
//! wrong before a push lands rejects it with one clear line (fail closed); after it landed,
//! whatever goes wrong is said loudly.

pub mod chain;
pub mod git;
pub mod hg;
pub mod record;
mod whole_push;

use crate::audit;
use crate::env::Env;
use crate::outcome::Outcome;
use crate::policy::Verdict;
use crate::push::Push;
use std::io::Write;
use std::path::Path;

/// What every hook is given besides its input.
pub struct Hook<'a> {
    /// The global configuration file.
    pub config_path: &'a Path,
    /// The hooks directory an installed hook runs from (chained hooks are in `<name>.d/`).
    pub chain_dir: Option<&'a Path>,
    pub env: &'a Env,
}

/// Lines for the pusher (git shows hook stderr as `remote: ...`). A closed stderr is not
/// a reason to change the verdict.
pub fn say(err: &mut dyn Write, lines: &[String]) {
    if lines.is_empty() {
        return;
    }
    let mut text = lines.join("\n");
    text.push('\n');
    let _ = err.write_all(text.as_bytes());
}

/// Reject the push with one line saying why.
pub fn reject(err: &mut dyn Write, reason: &str) -> Outcome {
    say(err, &[format!("pushgate: push rejected: {reason}")]);
    Outcome::Rejected
}

/// Who decided what, for the audit log.
pub struct Decision<'a> {
    pub hook: &'a str,
    pub user: &'a str,
    pub via: crate::identity::Via,
    pub repo: &'a str,
}

/// Append the decision to the `[audit] file`, when one is configured.
pub fn audit(audit_file: Option<&Path>, decision: &Decision, push: &Push, verdict: &Verdict) -> Result<(), String> {
    let Decision { hook, user, via, repo } = *decision;
    let Some(file) = audit_file else {
        return Ok(());
    };
    let entry = audit::Entry {
        time: crate::time::now_rfc3339(),
        hook,
        user,
        via: via.as_str(),
        repo,
        updates: push
            .changes
            .iter()
            .map(|c| audit::Update {
                name: &c.update.name,
                old: c.update.old.to_string(),
                new: c.update.new.to_string(),
                action: c.action.as_str(),
            })
            .collect(),
        verdict: if verdict.accepted() { "accepted" } else { "rejected" },
        reasons: &verdict.rejections,
        warnings: &verdict.warnings,
    };
    audit::append(file, &entry).map_err(|e| format!("cannot write the audit log {}: {e}", file.display()))
}
