//! `[[rule]]` tables: who may do which operation on which refs (ref rules) or paths (path
//! rules), in which repositories.

use super::error::Source;
use super::groups::Groups;
use super::scope::Scope;
use super::suggest::suggestion;
use super::validate::Validator;
use super::{Mode, Origin, raw};
use crate::glob::{Anchor, Glob};
use crate::identity::valid_user_name;
use crate::push::Op;
use std::collections::BTreeSet;
use toml::Spanned;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UserPattern {
    /// `*`: any identified user.
    Any,
    Name(String),
    Group(String),
}

#[derive(Debug, Clone)]
pub struct Rule {
    /// 1-based position among the rules of its own file, as messages show it (`rule 3`,
    /// `repository rule 1`): a repository's own rules do not renumber the global ones.
    pub number: usize,
    /// From the repository's own file (evaluated before the global rules).
    pub repository: bool,
    pub origin: Origin,
    pub scope: Scope,
    /// Set for path rules, which the path pass evaluates.
    pub paths: Option<Vec<Glob>>,
    pub users: Vec<UserPattern>,
    pub allow: BTreeSet<Op>,
    pub deny: BTreeSet<Op>,
    pub message: Option<String>,
    pub mode: Mode,
}

impl Rule {
    /// How messages name it: `rule 3`, or `repository rule 1` for a repository's own.
    pub fn name(&self) -> String {
        named("rule", self.number, self.repository)
    }
}

/// `rule 3`, `repository check 1`: a rule or check by its place in its own file.
pub fn named(kind: &str, number: usize, repository: bool) -> String {
    if repository { format!("repository {kind} {number}") } else { format!("{kind} {number}") }
}

impl Validator {
    pub fn rule(&mut self, at: &Source, spanned: &Spanned<raw::Rule>, number: usize, groups: &Groups) -> Option<Rule> {
        let errors_before = self.errors.len();
        let rule = spanned.get_ref();
        let (line, _) = at.position(spanned.span().start);
        let origin = Origin { file: at.path.to_path_buf(), line };
        let whole = spanned.span();

        let scope = self.scope(at, rule.repos.as_ref(), rule.refs.as_ref());
        let paths = rule.paths.as_ref().map(|list| self.globs(at, list, Anchor::Path, "paths"));
        let users = match &rule.users {
            Some(list) => self.user_patterns(at, list, groups),
            None => {
                self.fail(at, whole.clone(), "rule has no `users` (use [\"*\"] for every identified user)");
                Vec::new()
            }
        };
        let allow = rule.allow.as_ref().map(|l| self.ops(at, l)).unwrap_or_default();
        let deny = rule.deny.as_ref().map(|l| self.ops(at, l)).unwrap_or_default();
        if allow.is_empty() && deny.is_empty() && rule.allow.is_none() && rule.deny.is_none() {
            self.fail(at, whole.clone(), "rule has neither `allow` nor `deny`");
        }
        if let Some(both) = allow.intersection(&deny).next() {
            self.fail(at, whole.clone(), format!("`{both}` is both allowed and denied by this rule"));
        }
        let (mut allow, mut deny) = (allow, deny);
        if paths.is_some() {
            let named_read = [&rule.allow, &rule.deny]
                .into_iter()
                .flatten()
                .flat_map(|l| l.get_ref())
                .find(|op| op.get_ref() == "read");
            if let Some(read) = named_read {
                self.fail(at, read.span(), "a path rule cannot decide `read`: reads are decided per repository");
            }
            // `all` in a path rule means every write: a read changes no path.
            allow.remove(&Op::Read);
            deny.remove(&Op::Read);
        }
        self.repository_ops(at, rule, &allow, &deny, &scope);
        let mode = rule.mode.as_ref().map_or(Mode::Enforce, |m| self.mode(at, m));
        (self.errors.len() == errors_before).then(|| Rule {
            number,
            repository: at.repository,
            origin,
            scope,
            paths,
            users,
            allow,
            deny,
            message: rule.message.as_ref().map(|m| m.get_ref().clone()),
            mode,
        })
    }

    pub fn user_patterns(&mut self, at: &Source, list: &raw::TextList, groups: &Groups) -> Vec<UserPattern> {
        if list.get_ref().is_empty() {
            self.fail(at, list.span(), "`users` is empty: the rule would match nobody");
        }
        let mut out = Vec::new();
        for entry in list.get_ref() {
            let text = entry.get_ref();
            if text == "*" {
                out.push(UserPattern::Any);
            } else if let Some(group) = text.strip_prefix('@') {
                if groups.has(group) {
                    out.push(UserPattern::Group(group.to_string()));
                } else {
                    let hint = suggestion(group, groups.names(), "@");
                    self.fail(at, entry.span(), format!("unknown group `@{group}`{hint}"));
                }
            } else if valid_user_name(text) {
                out.push(UserPattern::Name(text.clone()));
            } else {
                self.fail(at, entry.span(), format!("{text:?} is not a user name, `@group` or `*`"));
            }
        }
        out
    }

    /// `repo-create` and `repo-delete` are about whole repositories: a rule that names them
    /// is a ref rule over every ref.
    fn repository_ops(
        &mut self,
        at: &Source,
        rule: &raw::Rule,
        allow: &BTreeSet<Op>,
        deny: &BTreeSet<Op>,
        scope: &Scope,
    ) {
        let Some(op) = allow.iter().chain(deny).find(|op| op.is_repository_op()) else { return };
        let named = [&rule.allow, &rule.deny]
            .into_iter()
            .flatten()
            .flat_map(|l| l.get_ref())
            .find(|name| name.get_ref() == op.as_str());
        // The repository ops have no shorthand: the rule names the op.
        let Some(span) = named.map(|name| name.span()) else { return };
        if rule.paths.is_some() {
            self.fail(at, span, format!("a path rule cannot decide `{op}`: it is about a whole repository"));
        } else if !scope.covers_every_ref() {
            self.fail(
                at,
                span,
                format!(
                    "`{op}` is about a whole repository: a rule deciding it has no `refs` (or `refs = [\"refs/**\"]`)"
                ),
            );
        }
    }

    fn ops(&mut self, at: &Source, list: &raw::TextList) -> BTreeSet<Op> {
        let mut ops = BTreeSet::new();
        for name in list.get_ref() {
            match Op::expand(name.get_ref()) {
                Some(expanded) => ops.extend(expanded.iter().copied()),
                None => {
                    let known = Op::NAMES;
                    let hint = suggestion(name.get_ref(), known.into_iter(), "");
                    let message = format!("unknown operation {:?}{hint} (one of {})", name.get_ref(), known.join(", "));
                    self.fail(at, name.span(), message);
                }
            }
        }
        ops
    }
}
