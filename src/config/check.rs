//! `[[check]]` tables: push rules on the new commits (message, emails, linear history, file
//! count, blob size, forbidden paths, signatures, authorship), scoped like rules.

use super::error::Source;
use super::validate::Validator;
use super::{Groups, Mode, Origin, Scope, Size, UserPattern, raw};
use crate::glob::{Anchor, Glob};
use regex::Regex;
use toml::Spanned;

#[derive(Debug, Clone)]
pub struct Check {
    /// 1-based among the checks of its own file, as messages show it (`check 2`,
    /// `repository check 1`).
    pub number: usize,
    /// From the repository's own file (evaluated before the global checks).
    pub repository: bool,
    pub origin: Origin,
    pub scope: Scope,
    /// On the first line of each new commit's message.
    pub commit_message: Option<Regex>,
    pub author_email: Option<Regex>,
    pub committer_email: Option<Regex>,
    pub linear_history: bool,
    pub max_files_changed: Option<usize>,
    /// Overrides `[limits] max_blob_size` in this check's scope.
    pub max_blob_size: Option<Size>,
    pub forbid_paths: Vec<Glob>,
    /// Commits must carry a signature header; the signature itself is not verified.
    pub require_signed: bool,
    /// The author's email must be one of the pusher's `[users.<name>] emails`.
    pub author_is_pusher: bool,
    pub exempt: Vec<UserPattern>,
    pub mode: Mode,
}

impl Check {
    /// How messages name it: `check 2`, or `repository check 1` for a repository's own.
    pub fn name(&self) -> String {
        super::rule::named("check", self.number, self.repository)
    }
}

impl Validator {
    pub(super) fn check(
        &mut self,
        at: &Source,
        spanned: &Spanned<raw::Check>,
        number: usize,
        groups: &Groups,
    ) -> Option<Check> {
        let errors_before = self.errors.len();
        let raw = spanned.get_ref();
        let (line, _) = at.position(spanned.span().start);
        let scope = self.scope(at, raw.repos.as_ref(), raw.refs.as_ref());
        let commit_message = raw.commit_message.as_ref().and_then(|r| self.regex(at, r));
        let author_email = raw.author_email.as_ref().and_then(|r| self.regex(at, r));
        let committer_email = raw.committer_email.as_ref().and_then(|r| self.regex(at, r));
        let max_files_changed = raw.max_files_changed.as_ref().and_then(|n| match usize::try_from(*n.get_ref()) {
            Ok(n) if n > 0 => Some(n),
            _ => {
                self.fail(at, n.span(), "max_files_changed must be a positive number");
                None
            }
        });
        let max_blob_size = raw.max_blob_size.as_ref().and_then(|s| self.size(at, s));
        let forbid_paths =
            raw.forbid_paths.as_ref().map(|l| self.globs(at, l, Anchor::Path, "forbid_paths")).unwrap_or_default();
        let exempt = raw.exempt.as_ref().map(|l| self.user_patterns(at, l, groups)).unwrap_or_default();
        let mode = raw.mode.as_ref().map_or(Mode::Enforce, |m| self.mode(at, m));
        let check = Check {
            number,
            repository: at.repository,
            origin: Origin { file: at.path.to_path_buf(), line },
            scope,
            commit_message,
            author_email,
            committer_email,
            linear_history: raw.linear_history.unwrap_or(false),
            max_files_changed,
            max_blob_size,
            forbid_paths,
            require_signed: raw.require_signed.unwrap_or(false),
            author_is_pusher: raw.author_is_pusher.unwrap_or(false),
            exempt,
            mode,
        };
        let checks_nothing = check.commit_message.is_none()
            && check.author_email.is_none()
            && check.committer_email.is_none()
            && !check.linear_history
            && check.max_files_changed.is_none()
            && check.max_blob_size.is_none()
            && check.forbid_paths.is_empty()
            && !check.require_signed
            && !check.author_is_pusher;
        if checks_nothing && self.errors.len() == errors_before {
            self.fail(at, spanned.span(), "this [[check]] checks nothing (set commit_message, linear_history, ...)");
        }
        (self.errors.len() == errors_before).then_some(check)
    }

    /// A regular expression (RE2 syntax: linear time on any input), compiled once.
    fn regex(&mut self, at: &Source, text: &raw::Text) -> Option<Regex> {
        regex::RegexBuilder::new(text.get_ref())
            .size_limit(1 << 20)
            .build()
            .map_err(|e| {
                let first = e.to_string().lines().last().unwrap_or("invalid").trim().to_string();
                self.fail(at, text.span(), format!("invalid regular expression {:?}: {first}", text.get_ref()))
            })
            .ok()
    }
}
