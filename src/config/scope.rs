//! Where a rule, check or extension applies: repository names and ref names. The one place
//! that decides whether a repository and a ref are in scope.

use crate::glob::Glob;

#[derive(Debug, Clone)]
pub struct Scope {
    /// Globs on repository names; `**` when the key is missing.
    pub repos: Vec<Glob>,
    /// Globs on full ref names; `**` when the key is missing.
    pub refs: Vec<Glob>,
}

impl Scope {
    /// Every repository and every ref.
    pub fn everything() -> Scope {
        Scope { repos: Glob::everything(), refs: Glob::everything() }
    }

    /// Whether `repo` is in scope. With no repository named (`explain` without `--repo`),
    /// only what applies to every repository is.
    pub fn covers_repo(&self, repo: Option<&str>) -> bool {
        match repo {
            Some(repo) => self.repos.iter().any(|g| g.matches(repo)),
            None => self.repos.iter().any(Glob::is_everything),
        }
    }

    /// Whether every ref is in scope: no `refs` key, or `**` or `refs/**` in it.
    pub fn covers_every_ref(&self) -> bool {
        self.refs.iter().any(|g| g.is_everything() || g.as_str() == "refs/**")
    }

    pub fn covers_ref(&self, name: &str) -> bool {
        self.refs.iter().any(|g| g.matches(name))
    }

    /// Whether `repo` and at least one of `refs` are in scope.
    pub fn covers<'r>(&self, repo: &str, mut refs: impl Iterator<Item = &'r str>) -> bool {
        self.covers_repo(Some(repo)) && refs.any(|r| self.covers_ref(r))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::glob::Anchor;

    #[test]
    fn a_scope_without_a_repository_is_only_the_one_for_every_repository() {
        let team = Scope { repos: vec![Glob::new("team/*", Anchor::Whole).unwrap()], refs: Glob::everything() };
        assert!(team.covers_repo(Some("team/app")));
        assert!(!team.covers_repo(Some("other")));
        assert!(!team.covers_repo(None));
        assert!(Scope::everything().covers_repo(None));
        assert!(team.covers("team/app", ["refs/heads/x"].into_iter()));
        assert!(!team.covers("team/app", std::iter::empty()));
    }
}
