//! `[[extension]]` tables: scripts and HTTP endpoints that veto pushes (`pre`) or are told
//! about them (`post`).

use super::error::Source;
use super::validate::Validator;
use super::{Mode, Origin, Scope, raw, units};
use crate::push::Action;
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
    /// Whether repositories created and deleted through `pushgate shell` reach it
    /// (`events` includes "repository").
    pub repository_events: bool,
    pub enabled: bool,
    pub on_error: OnError,
    pub mode: Mode,
    /// Commits listed per change in what this extension is sent (default: the global
    /// `max_commits`).
    pub max_commits: Option<usize>,
    /// The actions of the changes it is told about (`actions`; default: all four).
    pub actions: Vec<Action>,
    /// `phase = "periodic"`: how often `deliver --watch` runs it.
    pub every: Option<Duration>,
    /// A `post` connector's events sent as arrays (`batch = { max, wait }`).
    pub batch: Option<Batch>,
}

/// `batch`: up to `max` events per call, sent once `max` wait or the oldest waited `wait`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Batch {
    pub max: usize,
    pub wait: Duration,
}

/// The most events a batch may hold.
pub const MAX_BATCH: i64 = 10_000;

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
    /// Run by `deliver --watch` every `every` with the inventory of the repositories.
    Periodic,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Pre => "pre",
            Phase::Post => "post",
            Phase::Periodic => "periodic",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Pushgate,
    /// One GitHub push payload per change.
    Github,
    /// One GitLab Push Hook or Tag Push Hook payload per change.
    Gitlab,
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
    /// A push into this repository of these changes: each one's ref and action.
    Push { repo: &'a str, changes: &'a [(&'a str, Action)] },
    /// A fetch of this repository through `pushgate shell`.
    Pull { repo: &'a str },
    /// The creation or deletion of the repository of this name through `pushgate shell`.
    Repository { repo: &'a str },
}

impl Extension {
    /// Whether this extension, in `phase`, wants to hear `about` this: enabled, listening
    /// to that kind of event, and in scope.
    pub fn wants(&self, phase: Phase, about: About) -> bool {
        if self.phase != phase || !self.enabled {
            return false;
        }
        match about {
            About::Push { repo, changes } => {
                self.push_events
                    && self.scope.covers_repo(Some(repo))
                    && changes.iter().any(|(name, action)| self.wants_change(name, *action))
            }
            About::Pull { repo } => self.pull_events && self.scope.covers_repo(Some(repo)),
            About::Repository { repo } => self.repository_events && self.scope.covers_repo(Some(repo)),
        }
    }

    /// Whether a change of the ref `name` doing `action` is for this extension.
    pub fn wants_change(&self, name: &str, action: Action) -> bool {
        self.actions.contains(&action) && self.scope.covers_ref(name)
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
            "periodic" => Phase::Periodic,
            other => {
                self.fail(at, ext.phase.span(), format!("phase {other:?} must be \"pre\", \"post\" or \"periodic\""));
                Phase::Post
            }
        };
        let (every, batch) = self.extension_timing(at, ext, phase, whole.clone());
        let kind = self.extension_kind(at, ext, whole.clone());
        let format = match ext.format.as_ref().map(|f| (f.get_ref().as_str(), f.span())) {
            None | Some(("pushgate", _)) => Format::Pushgate,
            Some(("github", _)) => Format::Github,
            Some(("gitlab", _)) => Format::Gitlab,
            Some((other, span)) => {
                self.fail(at, span, format!("format {other:?} must be \"pushgate\", \"github\" or \"gitlab\""));
                Format::Pushgate
            }
        };
        let scope = self.scope(at, ext.repos.as_ref(), ext.refs.as_ref());
        if scope.has_user() {
            let span = ext.repos.as_ref().or(ext.refs.as_ref()).map_or(whole.clone(), |l| l.span());
            self.fail(
                at,
                span,
                format!("`{}` stands for the user in rules and checks, not in an extension's scope", crate::glob::USER),
            );
        }
        let timeout = match &ext.timeout {
            Some(text) => units::parse_duration(text.get_ref()).map_err(|e| self.fail(at, text.span(), e)).ok(),
            None => Some(DEFAULT_TIMEOUT),
        };
        if timeout.is_some_and(|t| t.is_zero()) {
            self.fail(at, ext.timeout.as_ref().map_or(whole.clone(), |t| t.span()), "timeout must be above zero");
        }
        let Events { push: push_events, pull: pull_events, repository: repository_events } =
            self.extension_events(at, ext);
        let in_repository_file = at.repository;
        if repository_events && in_repository_file {
            let span = ext.events.as_ref().map_or(whole.clone(), |e| e.span());
            self.fail(
                at,
                span,
                "repository events reach the global configuration's extensions only (a repository's own file is \
                 not there before it is created, nor after it is deleted)",
            );
        }
        let actions = self.extension_actions(at, ext);
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
        let connector = if in_repository_file {
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
            repository_events,
            enabled: ext.enabled.unwrap_or(true),
            on_error,
            mode,
            max_commits,
            actions,
            every,
            batch,
        })
    }

    /// `every` (periodic extensions only, and required there) and `batch` (post only).
    fn extension_timing(
        &mut self,
        at: &Source,
        ext: &raw::Extension,
        phase: Phase,
        whole: std::ops::Range<usize>,
    ) -> (Option<Duration>, Option<Batch>) {
        let every = match (&ext.every, phase) {
            (None, Phase::Periodic) => {
                self.fail(at, whole, "a periodic extension needs `every` (how often it runs, e.g. \"1h\")");
                None
            }
            (None, _) => None,
            (Some(text), Phase::Periodic) => match units::parse_duration(text.get_ref()) {
                Ok(d) if d >= Duration::from_secs(1) => Some(d),
                Ok(_) => {
                    self.fail(at, text.span(), "every must be at least 1s");
                    None
                }
                Err(e) => {
                    self.fail(at, text.span(), e);
                    None
                }
            },
            (Some(text), _) => {
                self.fail(at, text.span(), "`every` applies to periodic extensions only");
                None
            }
        };
        if phase == Phase::Periodic {
            if at.repository {
                self.fail(
                    at,
                    ext.phase.span(),
                    "periodic extensions belong in the global file (they see every repository)",
                );
            }
            for (key, span) in [
                ("refs", ext.refs.as_ref().map(|v| v.span())),
                ("repos", ext.repos.as_ref().map(|v| v.span())),
                ("actions", ext.actions.as_ref().map(|v| v.span())),
                ("events", ext.events.as_ref().map(|v| v.span())),
                ("format", ext.format.as_ref().map(|v| v.span())),
                ("max_commits", ext.max_commits.as_ref().map(|v| v.span())),
                ("mode", ext.mode.as_ref().map(|v| v.span())),
            ] {
                if let Some(span) = span {
                    self.fail(at, span, format!("`{key}` does not apply to periodic extensions"));
                }
            }
        }
        let Some(spanned) = &ext.batch else { return (every, None) };
        if phase != Phase::Post {
            self.fail(at, spanned.span(), "`batch` applies to post extensions only");
            return (every, None);
        }
        let batch = spanned.get_ref();
        let max = match &batch.max {
            None => {
                self.fail(at, spanned.span(), "batch needs `max` (the most events per call)");
                None
            }
            Some(n) if (1..=MAX_BATCH).contains(n.get_ref()) => Some(*n.get_ref() as usize),
            Some(n) => {
                self.fail(at, n.span(), format!("batch max must be between 1 and {MAX_BATCH}"));
                None
            }
        };
        let wait = match &batch.wait {
            None => {
                self.fail(at, spanned.span(), "batch needs `wait` (how long the oldest event may wait, e.g. \"30s\")");
                None
            }
            Some(text) => units::parse_duration(text.get_ref()).map_err(|e| self.fail(at, text.span(), e)).ok(),
        };
        (every, max.zip(wait).map(|(max, wait)| Batch { max, wait }))
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

    /// The actions of `actions`, each once, in the order given; all four without the key.
    fn extension_actions(&mut self, at: &Source, ext: &raw::Extension) -> Vec<Action> {
        const ALL: [Action; 4] = [Action::Create, Action::Update, Action::Force, Action::Delete];
        let Some(list) = &ext.actions else { return ALL.to_vec() };
        if list.get_ref().is_empty() {
            self.fail(at, list.span(), "`actions` is empty: the extension would never be told of a push");
        }
        let mut actions = Vec::new();
        for name in list.get_ref() {
            match ALL.iter().find(|a| a.as_str() == name.get_ref()) {
                Some(action) if !actions.contains(action) => actions.push(*action),
                Some(_) => {}
                None => {
                    let hint = match name.get_ref().as_str() {
                        "write" => " (`write` is a rule shorthand: list \"create\" and \"update\")".to_string(),
                        "all" => " (`all` is a rule shorthand: remove the key for every action)".to_string(),
                        other => super::suggest::suggestion(other, ALL.iter().map(|a| a.as_str()), ""),
                    };
                    self.fail(
                        at,
                        name.span(),
                        format!(
                            "action {:?} must be \"create\", \"update\", \"force\" or \"delete\"{hint}",
                            name.get_ref()
                        ),
                    );
                }
            }
        }
        actions
    }

    /// Which kinds of event `events` names (pushes only, without the key).
    fn extension_events(&mut self, at: &Source, ext: &raw::Extension) -> Events {
        let Some(list) = &ext.events else { return Events { push: true, pull: false, repository: false } };
        let mut events = Events { push: false, pull: false, repository: false };
        for event in list.get_ref() {
            match event.get_ref().as_str() {
                "push" => events.push = true,
                "pull" => events.pull = true,
                "repository" => events.repository = true,
                other => {
                    let hint = super::suggest::suggestion(other, ["push", "pull", "repository"].into_iter(), "");
                    let message = format!("event {other:?} must be \"push\", \"pull\" or \"repository\"{hint}");
                    self.fail(at, event.span(), message);
                }
            }
        }
        if list.get_ref().is_empty() {
            self.fail(at, list.span(), "`events` is empty: the extension would never run");
        }
        events
    }
}

/// The kinds of event an extension's `events` names.
struct Events {
    push: bool,
    pull: bool,
    repository: bool,
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
    fn an_extension_wants_a_push_with_a_change_of_its_refs_and_actions() {
        let text = "[[extension]]\nname = \"x\"\ntype = \"http\"\nphase = \"post\"\nurl = \"http://x\"\n\
                    refs = [\"refs/heads/**\"]\nactions = [\"force\", \"delete\"]\n";
        let config = crate::config::Config::parse(std::path::Path::new("c.toml"), text, None).unwrap();
        let ext = &config.extensions[0];
        let wants = |changes: &[(&str, Action)]| ext.wants(Phase::Post, About::Push { repo: "app", changes });
        assert!(wants(&[("refs/heads/main", Action::Update), ("refs/heads/x", Action::Force)]));
        assert!(!wants(&[("refs/heads/main", Action::Update), ("refs/heads/x", Action::Create)]), "no such action");
        assert!(!wants(&[("refs/tags/v1", Action::Delete)]), "no such ref");
        assert!(!wants(&[]));
        assert!(!ext.wants(Phase::Pre, About::Push { repo: "app", changes: &[("refs/heads/x", Action::Force)] }));
        assert!(ext.wants_change("refs/heads/x", Action::Delete) && !ext.wants_change("refs/heads/x", Action::Update));
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
