//! `[[extension]]` tables: scripts and HTTP endpoints that veto pushes (`pre`) or are told
//! about them (`post`).

use super::error::Source;
use super::validate::Validator;
use super::{Mode, Origin, Scope, raw, units};
use std::path::PathBuf;
use std::time::Duration;
use toml::Spanned;

pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, Clone)]
pub struct Extension {
    /// Unique in its file.
    pub name: String,
    /// The connector (a `post` extension's ordered delivery queue): the name for a global
    /// extension; for one a repository's own file defines, the name and a tag of that
    /// repository, so two repositories' `notify` never share a queue (nor deliver each
    /// other's events).
    pub connector: String,
    pub kind: Kind,
    pub phase: Phase,
    pub format: Format,
    pub scope: Scope,
    pub timeout: Duration,
    /// Whether pushes reach it (`events` includes "push", the default).
    pub push_events: bool,
    /// Whether fetches through `pushgate shell` reach it (`events` includes "pull").
    pub pull_events: bool,
    pub enabled: bool,
    pub on_error: OnError,
    pub mode: Mode,
    /// Commits listed per change in what this extension is sent (default: the global
    /// `max_commits`).
    pub max_commits: Option<usize>,
}

#[derive(Debug, Clone)]
pub enum Kind {
    /// argv, run without a shell, in a clean environment.
    Script {
        command: Vec<String>,
        /// Variables passed through from pushgate's environment (`env = [...]`).
        env: Vec<String>,
    },
    Http {
        url: String,
        secret: Option<Secret>,
        headers: Vec<(String, String)>,
    },
}

/// Where an HMAC key comes from. Read when used, never shown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Secret {
    Env(String),
    File(PathBuf),
}

/// When an extension runs: `pre` before the push lands (it may veto), `post` after (it is
/// told, durably).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    Pre,
    Post,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Pre => "pre",
            Phase::Post => "post",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Pushgate,
    /// One GitHub-style push payload per change.
    Github,
}

/// What a `pre` extension's crash, timeout or transient failure means for the push.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnError {
    Reject,
    Allow,
}

/// What an extension may be told about.
#[derive(Debug, Clone, Copy)]
pub enum About<'a> {
    /// A push of these refs into this repository.
    Push { repo: &'a str, refs: &'a [&'a str] },
    /// A fetch of this repository through `pushgate shell`.
    Pull { repo: &'a str },
}

impl Extension {
    /// Whether this extension, in `phase`, wants to hear `about` this: enabled, listening
    /// to that kind of event, and in scope.
    pub fn wants(&self, phase: Phase, about: About) -> bool {
        if self.phase != phase || !self.enabled {
            return false;
        }
        match about {
            About::Push { repo, refs } => self.push_events && self.scope.covers(repo, refs.iter().copied()),
            About::Pull { repo } => self.pull_events && self.scope.covers_repo(Some(repo)),
        }
    }

    /// Whether a change of the ref `name` is for this extension.
    pub fn wants_ref(&self, name: &str) -> bool {
        self.scope.covers_ref(name)
    }
}

/// The extensions of `phase` that want to hear `about` something, in evaluation order.
pub fn wanting<'c, 'a>(
    extensions: &'c [Extension],
    phase: Phase,
    about: About<'a>,
) -> impl Iterator<Item = &'c Extension> {
    extensions.iter().filter(move |e| e.wants(phase, about))
}

fn valid_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && !name.starts_with('.')
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
}

/// Whether `name` is a connector name pushgate makes: an extension's name, and for one a
/// repository's own file defines, `~` and 8 hex digits. Nothing else names a directory
/// of the spool (`queue enable ../../x` must not reach outside it).
pub fn valid_connector(name: &str) -> bool {
    match name.split_once('~') {
        Some((base, tag)) => valid_name(base) && tag.len() == 8 && tag.bytes().all(|b| b.is_ascii_hexdigit()),
        None => valid_name(name),
    }
}

/// An HTTP header name: an RFC 9110 token.
fn valid_header_name(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

impl Validator {
    pub(super) fn extension(
        &mut self,
        at: &Source,
        spanned: &Spanned<raw::Extension>,
        taken: &mut Vec<(String, Origin)>,
    ) -> Option<Extension> {
        let errors_before = self.errors.len();
        let ext = spanned.get_ref();
        let whole = spanned.span();
        let (line, _) = at.position(whole.start);
        let name = ext.name.get_ref().clone();
        if !valid_name(&name) {
            self.fail(at, ext.name.span(), format!("extension name {name:?} must match [A-Za-z0-9._-]{{1,64}}"));
        }
        if let Some((_, first)) = taken.iter().find(|(n, _)| *n == name) {
            self.fail(at, ext.name.span(), format!("extension name {name:?} is already used at {first}"));
        }
        taken.push((name.clone(), Origin { file: at.path.to_path_buf(), line }));
        let phase = match ext.phase.get_ref().as_str() {
            "pre" => Phase::Pre,
            "post" => Phase::Post,
            other => {
                self.fail(at, ext.phase.span(), format!("phase {other:?} must be \"pre\" or \"post\""));
                Phase::Post
            }
        };
        let kind = self.extension_kind(at, ext, whole.clone());
        let format = match ext.format.as_ref().map(|f| (f.get_ref().as_str(), f.span())) {
            None | Some(("pushgate", _)) => Format::Pushgate,
            Some(("github", _)) => Format::Github,
            Some((other, span)) => {
                self.fail(at, span, format!("format {other:?} must be \"pushgate\" or \"github\""));
                Format::Pushgate
            }
        };
        let scope = self.scope(at, ext.repos.as_ref(), ext.refs.as_ref());
        let timeout = match &ext.timeout {
            Some(text) => units::parse_duration(text.get_ref()).map_err(|e| self.fail(at, text.span(), e)).ok(),
            None => Some(DEFAULT_TIMEOUT),
        };
        if timeout.is_some_and(|t| t.is_zero()) {
            self.fail(at, ext.timeout.as_ref().map_or(whole.clone(), |t| t.span()), "timeout must be above zero");
        }
        let (push_events, pull_events) = self.extension_events(at, ext);
        if pull_events && phase == Phase::Pre {
            let span = ext.events.as_ref().map_or(whole.clone(), |e| e.span());
            self.fail(at, span, "pull events reach post extensions only (a fetch cannot be vetoed by an extension)");
        }
        let on_error = match &ext.on_error {
            None => OnError::Reject,
            Some(_) if phase == Phase::Post => {
                let span = ext.on_error.as_ref().map_or(whole.clone(), |o| o.span());
                self.fail(at, span, "`on_error` applies to pre extensions only (post failures are retried)");
                OnError::Reject
            }
            Some(text) => match text.get_ref().as_str() {
                "reject" => OnError::Reject,
                "allow" => OnError::Allow,
                other => {
                    self.fail(at, text.span(), format!("on_error {other:?} must be \"reject\" or \"allow\""));
                    OnError::Reject
                }
            },
        };
        let mode = ext.mode.as_ref().map_or(Mode::Enforce, |m| self.mode(at, m));
        let max_commits = ext.max_commits.as_ref().map(|n| self.max_commits(at, Some(n)));
        if mode == Mode::Warn && phase == Phase::Post {
            let span = ext.mode.as_ref().map_or(whole.clone(), |m| m.span());
            self.fail(at, span, "mode = \"warn\" applies to pre extensions only (post extensions never reject)");
        }
        let connector = if at.path.file_name().is_some_and(|n| n == super::REPO_FILE) {
            let repo = at.path.parent().unwrap_or(at.path).to_string_lossy();
            format!("{name}~{:08x}", crate::ids::stable_id(&repo) as u32)
        } else {
            name.clone()
        };
        (self.errors.len() == errors_before).then(|| Extension {
            connector,
            name,
            kind: kind.expect("no errors means the kind is known"),
            phase,
            format,
            scope,
            timeout: timeout.unwrap_or(DEFAULT_TIMEOUT),
            push_events,
            pull_events,
            enabled: ext.enabled.unwrap_or(true),
            on_error,
            mode,
            max_commits,
        })
    }

    fn extension_kind(&mut self, at: &Source, ext: &raw::Extension, whole: std::ops::Range<usize>) -> Option<Kind> {
        let misplaced = |key: &str, kind: &str| format!("`{key}` does not apply to {kind} extensions");
        match ext.kind.get_ref().as_str() {
            "script" => {
                for (key, span) in [
                    ("url", ext.url.as_ref().map(|v| v.span())),
                    ("secret_env", ext.secret_env.as_ref().map(|v| v.span())),
                    ("secret_file", ext.secret_file.as_ref().map(|v| v.span())),
                    ("headers", ext.headers.as_ref().map(|v| v.span())),
                ] {
                    if let Some(span) = span {
                        self.fail(at, span, misplaced(key, "script"));
                    }
                }
                let Some(command) = &ext.command else {
                    self.fail(at, whole, "a script extension needs `command` (an argv list, run without a shell)");
                    return None;
                };
                if command.get_ref().is_empty() || command.get_ref()[0].get_ref().is_empty() {
                    self.fail(at, command.span(), "`command` needs at least the program to run");
                }
                let env = ext.env.as_ref().map(|list| self.env_names(at, list)).unwrap_or_default();
                let command = command.get_ref().iter().map(|a| a.get_ref().clone()).collect();
                Some(Kind::Script { command, env })
            }
            "http" => {
                if let Some(command) = &ext.command {
                    self.fail(at, command.span(), misplaced("command", "http"));
                }
                if let Some(env) = &ext.env {
                    self.fail(at, env.span(), misplaced("env", "http"));
                }
                let Some(url) = &ext.url else {
                    self.fail(at, whole, "an http extension needs `url`");
                    return None;
                };
                if let Err(e) = check_url(url.get_ref()) {
                    self.fail(at, url.span(), e);
                }
                let secret = match (&ext.secret_env, &ext.secret_file) {
                    (Some(_), Some(file)) => {
                        self.fail(at, file.span(), "set `secret_env` or `secret_file`, not both");
                        None
                    }
                    (Some(env), None) => Some(Secret::Env(env.get_ref().clone())),
                    (None, Some(file)) => Some(Secret::File(PathBuf::from(file.get_ref()))),
                    (None, None) => None,
                };
                let mut headers = Vec::new();
                for (name, value) in ext.headers.iter().flat_map(|h| h.get_ref()) {
                    if !valid_header_name(name.get_ref()) {
                        self.fail(at, name.span(), format!("{:?} is not a valid header name", name.get_ref()));
                    }
                    if value.get_ref().bytes().any(|b| b == b'\r' || b == b'\n' || b == 0) {
                        self.fail(at, value.span(), "a header value cannot contain CR, LF or NUL");
                    }
                    headers.push((name.get_ref().clone(), value.get_ref().clone()));
                }
                Some(Kind::Http { url: url.get_ref().clone(), secret, headers })
            }
            other => {
                self.fail(at, ext.kind.span(), format!("type {other:?} must be \"script\" or \"http\""));
                None
            }
        }
    }

    /// Whether `events` includes pushes, and pulls.
    fn extension_events(&mut self, at: &Source, ext: &raw::Extension) -> (bool, bool) {
        let Some(list) = &ext.events else { return (true, false) };
        let (mut push, mut pull) = (false, false);
        for event in list.get_ref() {
            match event.get_ref().as_str() {
                "push" => push = true,
                "pull" => pull = true,
                other => self.fail(at, event.span(), format!("event {other:?} must be \"push\" or \"pull\"")),
            }
        }
        if list.get_ref().is_empty() {
            self.fail(at, list.span(), "`events` is empty: the extension would never run");
        }
        (push, pull)
    }
}

/// An absolute http(s) URL with a host.
fn check_url(url: &str) -> Result<(), String> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .ok_or_else(|| "url must start with http:// or https://".to_string())?;
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host = authority.rsplit('@').next().unwrap_or_default();
    if host.is_empty() || host.starts_with(':') {
        return Err("url has no host".into());
    }
    if url.bytes().any(|b| b.is_ascii_control() || b == b' ') {
        return Err("url contains spaces or control characters".into());
    }
    Ok(())
}

/// A URL as logs and messages may show it: scheme, host and port only. Credentials, the
/// query and the path (webhook URLs carry their token there) are left out.
pub fn redacted_url(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host = authority.rsplit('@').next().unwrap_or_default();
    let more = if rest.len() > authority.len() { "/…" } else { "" };
    format!("{scheme}://{host}{more}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connector_names_are_extension_names_with_an_optional_tag() {
        for good in ["ci", "chat.notify", "ci~0a1b2c3d", "a-b_c"] {
            assert!(valid_connector(good), "{good}");
        }
        for bad in ["", "..", "../../x", ".hidden", "a/b", "ci~xyz", "ci~0a1b2c3d4", "a b", &"x".repeat(65)] {
            assert!(!valid_connector(bad), "{bad}");
        }
    }

    #[test]
    fn urls_are_checked_and_redacted() {
        assert!(check_url("http://127.0.0.1:8080/hook").is_ok());
        assert!(check_url("ftp://x").is_err());
        assert!(check_url("http:///x").is_err());
        assert!(check_url("http://a b").is_err());
        assert_eq!(redacted_url("https://user:pw@example.org/hook?token=abc"), "https://example.org/…");
        assert_eq!(redacted_url("https://discord.com/api/webhooks/1/TOKEN/github"), "https://discord.com/…");
        assert_eq!(redacted_url("http://127.0.0.1:9"), "http://127.0.0.1:9");
    }
}
