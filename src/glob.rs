//! Glob patterns for repository names, ref names and paths: `*` and `?` within a path
//! segment, `[...]` classes, and `**` as a whole segment across segments. Compiled once to a
//! `regex::bytes::Regex`, so matching is linear time and works on non-UTF-8 paths.
//!
//! `{user}` stands for the name of the user asking (`users/{user}/*`), matched literally:
//! a pattern holding it is compiled for that user when it is first asked about them.

use regex::bytes::Regex;
use std::fmt;
use std::sync::OnceLock;

/// The placeholder for the user's name.
pub const USER: &str = "{user}";

#[derive(Clone)]
pub struct Glob {
    source: String,
    /// `None` for a pattern with `{user}`, which matches nothing until it knows the user.
    regex: Option<Regex>,
    per_user: Option<PerUser>,
}

/// A pattern with `{user}`: the regex source around each placeholder, and the regex for
/// the first user it was asked about (one user per process, in practice).
#[derive(Clone)]
struct PerUser {
    parts: Vec<String>,
    first: OnceLock<(String, Regex)>,
}

/// Whether a pattern without `/` matches a whole name or any name's last segments.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Anchor {
    /// The pattern matches the whole name (repos, refs).
    Whole,
    /// A pattern without `/` matches a file name at any depth, like `.gitignore`
    /// (`*.pem` matches `keys/server.pem`); one with `/` matches from the top.
    Path,
}

impl Glob {
    pub fn new(pattern: &str, anchor: Anchor) -> Result<Glob, String> {
        if pattern.is_empty() {
            return Err("empty pattern".into());
        }
        let mut parts = Vec::new();
        let mut re = String::from("(?s-u)^");
        if anchor == Anchor::Path && !pattern.contains('/') {
            re.push_str("(?:.*/)?");
        }
        let segments: Vec<&str> = pattern.split('/').collect();
        let last = segments.len() - 1;
        for (i, segment) in segments.iter().enumerate() {
            if *segment == "**" {
                re.push_str(match (i == 0, i == last) {
                    (true, true) => ".*",
                    (true, false) => "(?:.*/)?",
                    (false, true) => ".+",
                    (false, false) => "(?:.*/)?",
                });
                continue;
            }
            if segment.contains("**") {
                return Err(format!("`**` must be a whole path segment in {pattern:?} (use `*` within a segment)"));
            }
            translate_segment(segment, &mut re, &mut parts).map_err(|e| format!("{e} in {pattern:?}"))?;
            if i != last {
                re.push('/');
            }
        }
        re.push('$');
        let per_user = (!parts.is_empty()).then(|| {
            parts.push(std::mem::take(&mut re));
            PerUser { parts, first: OnceLock::new() }
        });
        let invalid = |e: regex::Error| format!("invalid pattern {pattern:?}: {e}");
        let regex = match &per_user {
            Some(PerUser { parts, .. }) => Regex::new(&parts.join("x")).map(|_| None).map_err(invalid)?,
            None => Some(Regex::new(&re).map_err(invalid)?),
        };
        Ok(Glob { source: pattern.to_string(), regex, per_user })
    }

    /// Whether the pattern holds `{user}`.
    pub fn has_user(&self) -> bool {
        self.per_user.is_some()
    }

    /// Whether `name` matches, `{user}` standing for `user` (taken literally: a name is never
    /// a pattern).
    pub fn matches_as(&self, name: impl AsRef<[u8]>, user: &str) -> bool {
        let Some(PerUser { parts, first: compiled }) = &self.per_user else { return self.matches(name) };
        // The user's name is escaped into the regex: it cannot make it invalid.
        let build = || Regex::new(&parts.join(&regex::escape(user))).ok();
        match compiled.get() {
            Some((first, regex)) if first == user => regex.is_match(name.as_ref()),
            Some(_) => build().is_some_and(|regex| regex.is_match(name.as_ref())),
            None => {
                let Some(regex) = build() else { return false };
                let matched = regex.is_match(name.as_ref());
                let _ = compiled.set((user.to_string(), regex));
                matched
            }
        }
    }

    /// The pattern with `{user}` replaced by `user`, as people read it.
    pub fn shown_as(&self, user: &str) -> String {
        self.source.replace(USER, user)
    }

    /// `**` alone: what a missing `repos` or `refs` key means.
    pub fn everything() -> Vec<Glob> {
        vec![Glob::new("**", Anchor::Whole).expect("`**` is a valid glob")]
    }

    /// Whether this is `**` alone, which matches every name.
    pub fn is_everything(&self) -> bool {
        self.source == "**"
    }

    /// Whether `name` matches; never, for a pattern with `{user}` (see [`Glob::matches_as`]).
    pub fn matches(&self, name: impl AsRef<[u8]>) -> bool {
        self.regex.as_ref().is_some_and(|regex| regex.is_match(name.as_ref()))
    }

    pub fn as_str(&self) -> &str {
        &self.source
    }
}

impl fmt::Debug for Glob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Glob({:?})", self.source)
    }
}

/// Translate one segment onto `re`; at each `{user}`, what `re` holds so far moves to
/// `parts` (the user's name goes between the parts).
fn translate_segment(segment: &str, re: &mut String, parts: &mut Vec<String>) -> Result<(), String> {
    let mut chars = segment.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '{' => {
                let rest: String = chars.clone().collect();
                let name: String = rest.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
                if rest[name.len()..].starts_with('}') && !name.is_empty() {
                    if name != "user" {
                        return Err(format!("unknown placeholder `{{{name}}}` (the one there is: `{USER}`)"));
                    }
                    for _ in 0..=name.len() {
                        chars.next();
                    }
                    parts.push(std::mem::take(re));
                } else {
                    re.push_str(&regex::escape("{"));
                }
            }
            '*' => re.push_str("[^/]*"),
            '?' => re.push_str("[^/]"),
            '[' => {
                re.push('[');
                let negated = matches!(chars.peek(), Some('!') | Some('^'));
                if negated {
                    chars.next();
                    // `[!x]` stays within a segment too: it never matches `/`.
                    re.push_str("^/");
                }
                let mut closed = false;
                let mut first = true;
                while let Some(c) = chars.next() {
                    if c == ']' && !first {
                        closed = true;
                        break;
                    }
                    first = false;
                    match c {
                        '\\' => {
                            let escaped = chars.next().ok_or("trailing `\\`")?;
                            re.push_str(&regex::escape(&escaped.to_string()));
                        }
                        '-' => re.push('-'),
                        '/' => return Err("`/` inside `[...]`".into()),
                        c => re.push_str(&regex::escape(&c.to_string())),
                    }
                }
                if !closed {
                    return Err("unclosed `[`".into());
                }
                re.push(']');
            }
            '\\' => {
                let escaped = chars.next().ok_or("trailing `\\`")?;
                re.push_str(&regex::escape(&escaped.to_string()));
            }
            c => re.push_str(&regex::escape(&c.to_string())),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn whole(p: &str) -> Glob {
        Glob::new(p, Anchor::Whole).unwrap()
    }

    fn path(p: &str) -> Glob {
        Glob::new(p, Anchor::Path).unwrap()
    }

    #[test]
    fn star_stays_within_a_segment() {
        let g = whole("refs/heads/*");
        assert!(g.matches("refs/heads/main"));
        assert!(!g.matches("refs/heads/feature/x"));
    }

    #[test]
    fn double_star_crosses_segments() {
        let g = whole("refs/heads/**");
        assert!(g.matches("refs/heads/main"));
        assert!(g.matches("refs/heads/feature/x"));
        assert!(!g.matches("refs/heads"));
        assert!(!g.matches("refs/tags/v1"));
        assert!(whole("**").matches("team/app"));
        let middle = whole("refs/**/main");
        assert!(middle.matches("refs/main"));
        assert!(middle.matches("refs/a/b/main"));
        assert!(!middle.matches("refs/a/xmain"));
    }

    #[test]
    fn paths_without_slash_match_at_any_depth() {
        assert!(path("*.pem").matches("keys/server.pem"));
        assert!(path("*.pem").matches("a.pem"));
        assert!(path("**/id_rsa").matches("id_rsa"));
        assert!(path("**/id_rsa").matches("home/x/.ssh/id_rsa"));
        assert!(!path("deploy/*").matches("src/deploy/x"));
        assert!(path("deploy/**").matches("deploy/prod/app.yml"));
    }

    #[test]
    fn classes_and_escapes() {
        assert!(whole("v[0-9]").matches("v7"));
        assert!(!whole("v[!0-9]").matches("v7"));
        assert!(!whole("a[!x]b").matches("a/b"));
        assert!(!path("deploy[!x]*").matches("deploy/prod.yml"));
        assert!(whole("a[!x]b").matches("ayb"));
        assert!(whole("a\\*").matches("a*"));
        assert!(!whole("a\\*").matches("ab"));
        assert!(whole("a.b").matches("a.b"));
        assert!(!whole("a.b").matches("axb"));
        assert!(whole("x(y)+").matches("x(y)+"));
    }

    #[test]
    fn non_utf8_names_match() {
        assert!(path("*.bin").matches(b"dir/\xff\xfe.bin"));
    }

    #[test]
    fn user_stands_for_the_users_name_taken_literally() {
        let personal = whole("users/{user}/*");
        assert!(personal.has_user() && !whole("users/*").has_user());
        assert!(personal.matches_as("users/alice/notes", "alice"));
        assert!(!personal.matches_as("users/alice/notes", "al"));
        assert!(!personal.matches_as("users/bob/notes", "alice"));
        assert!(!personal.matches_as("users/alice/a/b", "alice"));
        assert!(!personal.matches("users/alice/notes"), "no user, no match");
        // Asked about another user after the first: compiled again, still right.
        assert!(personal.matches_as("users/bob/notes", "bob"));
        assert!(!personal.matches_as("users/alice/notes", "bob"));
        // A name is never a pattern, whatever it holds.
        assert!(whole("u/{user}").matches_as("u/a.b", "a.b"));
        assert!(!whole("u/{user}").matches_as("u/axb", "a.b"));
        assert!(!whole("u/{user}").matches_as("u/anything", "*"));
        assert!(whole("u/{user}").matches_as("u/*", "*"));
        assert!(!whole("u/{user}").matches_as("u/a", "[a-z]"));
        assert!(!whole("u/{user}/x").matches_as("u/a/b/x", "**"));
        let refs = whole("refs/heads/users/{user}/**");
        assert!(refs.matches_as("refs/heads/users/bob/topic/x", "bob"));
        assert!(!refs.matches_as("refs/heads/users/bobby/x", "bob"));
        assert!(whole("{user}-{user}").matches_as("a-a", "a") && !whole("{user}-{user}").matches_as("a-b", "a"));
        assert_eq!(personal.shown_as("alice"), "users/alice/*");
        // Braces that are no placeholder are themselves.
        assert!(whole("a{b").matches("a{b") && whole("{}").matches("{}") && whole("\\{user}").matches("{user}"));
    }

    #[test]
    fn bad_patterns_are_errors() {
        for bad in ["", "a**", "[abc", "a\\", "[a/b]", "users/{usr}/*", "{USER}"] {
            assert!(Glob::new(bad, Anchor::Whole).is_err(), "{bad}");
        }
    }
}
