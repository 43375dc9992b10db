//! The gate: one decision for a push, whatever brought it (a Git hook, a Mercurial hook,
//! `simulate`). The rules judge the push; when they accept, the `pre` extensions that want
//! it may still veto. Reading the push is the caller's (`git`, `hg`); telling the pusher and
//! the audit log is the hook's.

use crate::config::Config;
use crate::config::extension::{About, Extension, Phase, wanting};
use crate::env::Env;
use crate::event::{self, EventKind, PushEvent};
use crate::extension::body::{self, Sending};
use crate::extension::pre;
use crate::git::Want;
use crate::identity::Via;
use crate::policy::{self, Subject, Verdict};
use crate::push::{Action, Push, RefUpdate, Vcs};
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
    fn pre_extensions(&self, changes: &[(&str, Action)]) -> Vec<&Extension> {
        wanting(&self.config.extensions, Phase::Pre, About::Push { repo: self.repo, changes }).collect()
    }

    /// What deciding `updates` needs read from the repository, and what the events the
    /// extensions are told need. The tree diffs are always read: refused tree entries
    /// reject any push, whatever the rules. Before the repository is read, an update may
    /// still be a fast-forward or a force: an extension told of either wants it read.
    pub fn want(&self, updates: &[RefUpdate]) -> Want {
        let changes: Vec<(&str, Action)> = updates
            .iter()
            .flat_map(|u| u.possible_actions().iter().map(move |action| (u.name.as_str(), *action)))
            .collect();
        let about = About::Push { repo: self.repo, changes: &changes };
        let vetoing = !self.pre_extensions(&changes).is_empty();
        let told = vetoing || wanting(&self.config.extensions, Phase::Post, about).next().is_some();
        Want {
            files: true,
            blob_sizes: self.config.smallest_blob_limit(),
            heads: told,
            // `post` extensions get the heads' files filled in at fan-out.
            head_files: vetoing,
            aliases: true,
            distinct: told,
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
    let extensions = request.pre_extensions(&push.ref_actions());
    if verdict.accepted() && !extensions.is_empty() {
        let event = request.event(push, Phase::Pre);
        let config = request.config;
        let sending = Sending { server: &config.server, users: &config.users, max_commits: config.max_commits };
        let question = pre::Question {
            kind: EventKind::Push,
            user: &event.user.name,
            repo: &event.repository.name,
            event_id: &event.id,
            what: "the push",
            cwd: request.path,
            instance: &config.server.base_url,
        };
        let bodies = |ext: &Extension| body::for_push(ext, &event, &sending);
        pre::run(&extensions, &question, &bodies, request.env, &mut verdict);
    }
    verdict
}
