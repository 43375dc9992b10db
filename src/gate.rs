//! The gate: one decision for a push, whatever brought it (a Git hook, a Mercurial hook,
//! `simulate`). The rules judge the push; when they accept, the `pre` extensions that want
//! it may still veto. Reading the push is the caller's (`git`, `hg`); telling the pusher and
//! the audit log is the hook's.

use crate::config::Config;
use crate::config::extension::{About, Extension, Phase, wanting};
use crate::env::Env;
use crate::event::{self, PushEvent};
use crate::extension::body::Sending;
use crate::extension::pre;
use crate::git::Want;
use crate::identity::Via;
use crate::policy::{self, Subject, Verdict};
use crate::push::{Push, Vcs};
use std::path::Path;

/// Who pushes where.
pub struct Request<'a> {
    pub config: &'a Config,
    pub user: &'a str,
    /// The repository's name (under `repos_root`).
    pub repo: &'a str,
    /// The repository's directory, where scripts run.
    pub path: &'a Path,
    pub vcs: Vcs,
    pub env: &'a Env,
}

impl Request<'_> {
    fn pre_extensions(&self, refs: &[&str]) -> Vec<&Extension> {
        wanting(&self.config.extensions, Phase::Pre, About::Push { repo: self.repo, refs }).collect()
    }

    /// What deciding a push of `refs` needs read from the repository, and what the events
    /// the extensions are told need. The tree diffs are always read: refused tree entries
    /// reject any push, whatever the rules.
    pub fn want(&self, refs: &[&str]) -> Want {
        let about = About::Push { repo: self.repo, refs };
        let told: Vec<&Extension> =
            self.pre_extensions(refs).into_iter().chain(wanting(&self.config.extensions, Phase::Post, about)).collect();
        Want {
            files: true,
            blob_sizes: self.config.smallest_blob_limit(),
            heads: !told.is_empty(),
            aliases: true,
            distinct: !told.is_empty(),
            pack_limit: self.config.max_blob_size.as_ref().map(|s| s.bytes),
        }
    }

    /// The push's event as `phase` extensions see it.
    pub fn event(&self, push: &Push, phase: Phase) -> PushEvent {
        let context = event::Context {
            id: crate::ids::new_id(),
            time: crate::time::now_rfc3339(),
            phase,
            vcs: self.vcs,
            repository: event::Repository {
                name: self.repo.to_string(),
                path: self.path.to_string_lossy().into_owned(),
                default_branch: push.default_branch.clone(),
            },
            user: event::User {
                name: self.user.to_string(),
                groups: self.config.groups.of(self.user),
                via: Via::of(self.env),
            },
            push_options: event::push_options(self.env),
            max_commits: self.config.event_max_commits(),
        };
        event::build(push, context)
    }
}

/// Decide `push`: every reason the rules give, then the vetoes of the `pre` extensions
/// that want it (asked only when the rules accept).
pub fn decide(request: &Request, push: &Push) -> Verdict {
    let subject = Subject { user: request.user, repo: Some(request.repo) };
    let mut verdict = policy::judge(request.config, subject, push);
    let refs: Vec<&str> = push.changes.iter().map(|c| c.update.name.as_str()).collect();
    let extensions = request.pre_extensions(&refs);
    if verdict.accepted() && !extensions.is_empty() {
        let event = request.event(push, Phase::Pre);
        let sending = Sending { server: &request.config.server, max_commits: request.config.max_commits };
        pre::run(&extensions, &event, &sending, request.path, request.env, &mut verdict);
    }
    verdict
}
