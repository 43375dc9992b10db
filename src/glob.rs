//! Glob patterns for repository names, ref names and paths: `*` and `?` within a path
//! segment, `[...]` classes, and `**` as a whole segment across segments. Compiled once to a
//! `regex::bytes::Regex`, so matching is linear time and works on non-UTF-8 paths.

use regex::bytes::Regex;
use std::fmt;

#[derive(Clone)]
pub struct Glob {
    source: String,
    regex: Regex,
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
            translate_segment(segment, &mut re).map_err(|e| format!("{e} in {pattern:?}"))?;
            if i != last {
                re.push('/');
            }
        }
        re.push('$');
        let regex = Regex::new(&re).map_err(|e| format!("invalid pattern {pattern:?}: {e}"))?;
        Ok(Glob { source: pattern.to_string(), regex })
    }

    /// `**` alone: what a missing `repos` or `refs` key means.
    pub fn everything() -> Vec<Glob> {
        vec![Glob::new("**", Anchor::Whole).expect("`**` is a valid glob")]
    }

    /// Whether this is `**` alone, which matches every name.
    pub fn is_everything(&self) -> bool {
        self.source == "**"
    }

    pub fn matches(&self, name: impl AsRef<[u8]>) -> bool {
        self.regex.is_match(name.as_ref())
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

fn translate_segment(segment: &str, re: &mut String) -> Result<(), String> {
    let mut chars = segment.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
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
    fn bad_patterns_are_errors() {
        for bad in ["", "a**", "[abc", "a\\", "[a/b]"] {
            assert!(Glob::new(bad, Anchor::Whole).is_err(), "{bad}");
        }
    }
}
