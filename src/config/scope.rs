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
    /// only what applies to every repository is. A pattern with `{user}` is not (see
    /// [`Scope::covers_repo_as`]).
    pub fn covers_repo(&self, repo: Option<&str>) -> bool {
        match repo {
            Some(repo) => self.repos.iter().any(|g| g.matches(repo)),
            None => self.repos.iter().any(Glob::is_everything),
        }
    }

    /// Whether `repo` is in scope for `user` (`{user}` standing for them).
    pub fn covers_repo_as(&self, repo: Option<&str>, user: &str) -> bool {
        match repo {
            Some(repo) => self.repos.iter().any(|g| g.matches_as(repo, user)),
            None => self.repos.iter().any(Glob::is_everything),
        }
    }

    /// Whether the ref `name` is in scope for `user` (`{user}` standing for them).
    pub fn covers_ref_as(&self, name: &str, user: &str) -> bool {
        self.refs.iter().any(|g| g.matches_as(name, user))
    }

    /// Whether a pattern holds `{user}`.
    pub fn has_user(&self) -> bool {
        self.repos.iter().chain(&self.refs).any(Glob::has_user)
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

    #[test]
    fn user_patterns_cover_the_users_own_names_only() {
        let glob = |p| Glob::new(p, Anchor::Whole).unwrap();
        let personal = Scope { repos: vec![glob("users/{user}/*")], refs: vec![glob("refs/heads/users/{user}/**")] };
        assert!(personal.has_user() && !Scope::everything().has_user());
        assert!(personal.covers_repo_as(Some("users/alice/x"), "alice"));
        assert!(!personal.covers_repo_as(Some("users/alice/x"), "bob"));
        assert!(!personal.covers_repo_as(None, "alice"));
        assert!(!personal.covers_repo(Some("users/alice/x")), "without a user");
        assert!(personal.covers_ref_as("refs/heads/users/bob/wip", "bob"));
        assert!(!personal.covers_ref_as("refs/heads/users/bob/wip", "alice"));
    }
}
