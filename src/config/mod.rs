//! Loading and validating configuration: the global file, then a repository's own
//! `pushgate.toml`, merged into one typed [`Config`]. Every error names the file, line and
//! column of the value at fault, with a suggestion where one is obvious.
//!
//! `raw` is the configuration as written; `validate` and each table's own file turn it into
//! the types below; `lenient` reads what post-receive needs from a broken file.

pub mod check;
pub mod error;
pub mod extension;
pub mod groups;
mod keys;
pub mod lenient;
mod raw;
pub mod rule;
pub mod scope;
pub mod suggest;
pub mod units;
mod validate;

pub use check::Check;
use error::Source;
pub use error::{ConfigError, ConfigErrors};
pub use extension::Extension;
pub use groups::Groups;
pub use rule::{Rule, UserPattern};
pub use scope::Scope;
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use toml::Spanned;
pub use units::Size;
use validate::Validator;

pub const DEFAULT_PATH: &str = "/etc/pushgate/config.toml";
pub const REPO_FILE: &str = "pushgate.toml";
pub const DEFAULT_IDENTITY_ENV: [&str; 3] = ["PUSHGATE_USER", "GL_USER", "REMOTE_USER"];

/// Everything pushgate was told, validated.
#[derive(Debug, Clone)]
pub struct Config {
    pub repos_root: Option<PathBuf>,
    pub identity_env: Vec<String>,
    /// User names compare case-insensitively (`[identity] fold_case`): every one, in the
    /// configuration and from the environment, is lowercased.
    pub fold_case: bool,
    pub groups: Groups,
    pub max_blob_size: Option<Size>,
    pub audit_file: Option<PathBuf>,
    /// Repository rules first, then global ones, each in file order: evaluation order.
    pub rules: Vec<Rule>,
    /// Repository extensions first, then global ones.
    pub extensions: Vec<Extension>,
    /// Repository checks first, then global ones.
    pub checks: Vec<Check>,
    /// Facts about users: their emails as written (compared without case), for
    /// `author_is_pusher` and the `github` and `gitlab` formats (`pusher.email`, `username`).
    pub users: BTreeMap<String, Vec<String>>,
    pub server: Server,
    /// Commits listed per change in an event.
    pub max_commits: usize,
    pub spool: SpoolConfig,
}

impl Config {
    /// The pusher named by the `[identity] env` variables, folded to lowercase under
    /// `fold_case`.
    pub fn user(&self, env: &crate::env::Env) -> Result<String, crate::identity::IdentityError> {
        crate::identity::resolve(&self.identity_env, env).map(|name| self.user_named(&name))
    }

    /// A user name as this configuration compares it.
    pub fn user_named(&self, name: &str) -> String {
        if self.fold_case { name.to_ascii_lowercase() } else { name.to_string() }
    }

    fn fold_user_names(&mut self) {
        self.groups.fold_case();
        self.users = std::mem::take(&mut self.users).into_iter().map(|(k, v)| (k.to_ascii_lowercase(), v)).collect();
        let patterns =
            self.rules.iter_mut().flat_map(|r| &mut r.users).chain(self.checks.iter_mut().flat_map(|c| &mut c.exempt));
        for pattern in patterns {
            if let UserPattern::Name(name) = pattern {
                *name = name.to_ascii_lowercase();
            }
        }
    }

    /// How many commits per change an event carries: enough for the extension that wants
    /// the most (`max_commits` per extension, else the global one).
    pub fn event_max_commits(&self) -> usize {
        self.extensions.iter().filter_map(|e| e.max_commits).chain([self.max_commits]).max().unwrap_or(self.max_commits)
    }

    /// The smallest blob size limit anywhere (`[limits]` or a check): what must be measured.
    pub fn smallest_blob_limit(&self) -> Option<u64> {
        let checks = self.checks.iter().filter_map(|c| c.max_blob_size.as_ref());
        self.max_blob_size.iter().chain(checks).map(|s| s.bytes).min()
    }
}

/// Where post events wait for delivery, and how failures are retried.
#[derive(Debug, Clone)]
pub struct SpoolConfig {
    pub dir: PathBuf,
    /// Waits after each transient failure (+-20% jitter); past the last, the job is dead.
    pub retry: Vec<std::time::Duration>,
    pub keep_log: std::time::Duration,
    /// What the gate does when the spool cannot take a push's record.
    pub on_full: OnFull,
    /// Where delivery happens: this machine's spool, or a fleet's shared outbox.
    pub backend: Backend,
}

/// `[spool] backend`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Backend {
    /// The embedded default: the spool directory holds the queues.
    File,
    /// PostgreSQL (SPEC §11): the hooks still record into the spool; `deliver` relays to
    /// the shared outbox and delivers from it.
    Postgres(Postgres),
}

/// `[spool] backend = "postgres"` and its keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Postgres {
    /// The connection string (a libpq `key=value` string or a `postgresql://` URL, with its
    /// password): read when connecting, never shown.
    pub url: extension::Secret,
    /// How long a worker holds a connector without renewing: a dead or stopped worker loses
    /// it after this.
    pub lease: std::time::Duration,
    /// PEM certificates the server's TLS certificate may chain to, besides the public roots.
    pub ca_file: Option<PathBuf>,
}

pub const DEFAULT_LEASE: &str = "30s";

/// `[spool] on_full`: a push whose event cannot be recorded is rejected (the default), or
/// lands with a loud warning that its event is not recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnFull {
    Reject,
    Accept,
}

pub const DEFAULT_SPOOL_DIR: &str = "/var/lib/pushgate/spool";
pub const DEFAULT_RETRY: [&str; 9] = ["5s", "5m", "30m", "2h", "5h", "10h", "14h", "20h", "24h"];
pub const DEFAULT_KEEP_LOG: &str = "14d";

impl SpoolConfig {
    pub fn default_with_dir(dir: PathBuf) -> SpoolConfig {
        let parse = |t: &str| units::parse_duration(t).expect("the defaults are valid durations");
        SpoolConfig {
            dir,
            retry: DEFAULT_RETRY.iter().map(|t| parse(t)).collect(),
            keep_log: parse(DEFAULT_KEEP_LOG),
            on_full: OnFull::Reject,
            backend: Backend::File,
        }
    }
}

/// How the server is reached, for URLs in payloads.
#[derive(Debug, Clone)]
pub struct Server {
    pub base_url: String,
    /// The owner in `github` payloads; default: the first segment of the repository name.
    pub owner: Option<String>,
}

pub const DEFAULT_BASE_URL: &str = "http://localhost";
pub const DEFAULT_MAX_COMMITS: usize = 100;
const MAX_MAX_COMMITS: i64 = 2048;

/// Where something was written: shown by `explain` and in errors.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    pub file: PathBuf,
    pub line: usize,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.file.display(), self.line)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Enforce,
    /// Evaluated and reported as a warning, never rejecting.
    Warn,
}

/// A repository's name: its path under `repos_root` without `.git`, else its directory's
/// name without `.git` (a work tree's `.git` dir is named by the work tree).
pub fn repo_name(git_dir: &Path, repos_root: Option<&Path>) -> String {
    let dir =
        if git_dir.file_name().is_some_and(|n| n == ".git") { git_dir.parent().unwrap_or(git_dir) } else { git_dir };
    let relative = repos_root
        .and_then(|root| root.canonicalize().ok())
        .and_then(|root| dir.strip_prefix(root).ok().map(Path::to_path_buf))
        .filter(|r| !r.as_os_str().is_empty());
    let name = match relative {
        Some(relative) => relative.to_string_lossy().into_owned(),
        None => {
            dir.file_name().map_or_else(|| dir.to_string_lossy().into_owned(), |n| n.to_string_lossy().into_owned())
        }
    };
    name.strip_suffix(".git").map(str::to_string).unwrap_or(name)
}

/// The global configuration file's path: `$PUSHGATE_CONFIG`, else the default.
pub fn global_path(env_value: Option<&std::ffi::OsStr>) -> PathBuf {
    env_value.filter(|v| !v.is_empty()).map(PathBuf::from).unwrap_or_else(|| PathBuf::from(DEFAULT_PATH))
}

impl Config {
    /// Load the global file and, when given and present, a repository's `pushgate.toml`.
    pub fn load(global: &Path, repo_file: Option<&Path>) -> Result<Config, ConfigErrors> {
        let global_text = read(global)?;
        let repo = match repo_file {
            Some(path) => match std::fs::read_to_string(path) {
                Ok(text) => Some((path, text)),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
                Err(e) => return Err(ConfigErrors::whole_file(path, format!("cannot read: {e}"))),
            },
            None => None,
        };
        let repo = repo.as_ref().map(|(path, text)| (*path, text.as_str()));
        Config::parse(global, &global_text, repo)
    }

    /// Validate configuration text; `repo` is a repository file's path and text.
    pub fn parse(global: &Path, global_text: &str, repo: Option<(&Path, &str)>) -> Result<Config, ConfigErrors> {
        let global_read = deserialize::<raw::GlobalFile>(global, global_text, &keys::GLOBAL, false);
        let repo_read = repo.map(|(path, text)| deserialize::<raw::RepoFile>(path, text, &keys::REPOSITORY, true));
        let mut v = Validator { errors: Vec::new() };
        // Tables that lost a key do not also complain that they miss it.
        let mut tainted: Vec<(PathBuf, usize, usize)> = Vec::new();
        let mut taint = |path: &Path, text: &str, found: &keys::Found| {
            let at = Source { path, text, repository: false };
            tainted.extend(found.tainted.iter().map(|s| {
                let (line, col) = at.position(*s);
                (path.to_path_buf(), line, col)
            }));
        };
        let mut read_errors = Vec::new();
        let global_raw = match global_read {
            Ok((raw, found)) => {
                taint(global, global_text, &found);
                read_errors.extend(found.errors);
                raw
            }
            Err(errors) => {
                read_errors.extend(errors.0);
                raw::GlobalFile::default()
            }
        };
        let repo_raw = match repo_read {
            Some(Ok((raw, found))) => {
                if let Some((path, text)) = repo {
                    taint(path, text, &found);
                }
                read_errors.extend(found.errors);
                Some(raw)
            }
            Some(Err(errors)) => {
                read_errors.extend(errors.0);
                None
            }
            None => None,
        };

        let global_at = Source { path: global, text: global_text, repository: false };
        let groups = v.groups(&global_at, &global_raw.groups);
        let users = v.users(&global_at, &global_raw.users);
        let mut config = Config {
            repos_root: global_raw.repos_root.as_ref().map(|r| PathBuf::from(r.get_ref())),
            identity_env: v.identity(&global_at, global_raw.identity.as_ref()),
            fold_case: global_raw.identity.as_ref().and_then(|i| i.fold_case).unwrap_or(false),
            max_blob_size: global_raw
                .limits
                .as_ref()
                .and_then(|l| l.max_blob_size.as_ref())
                .and_then(|s| v.size(&global_at, s)),
            audit_file: global_raw.audit.as_ref().map(|a| PathBuf::from(a.file.get_ref())),
            groups,
            rules: Vec::new(),
            extensions: Vec::new(),
            checks: Vec::new(),
            users,
            server: v.server(&global_at, global_raw.server.as_ref()),
            max_commits: v.max_commits(&global_at, global_raw.max_commits.as_ref()),
            spool: v.spool(&global_at, global_raw.spool.as_ref()),
        };
        let repo_at = repo.map(|(path, text)| Source { path, text, repository: true });
        let repo_raw = repo_raw.as_ref();
        for (at, rule) in repo_first(repo_at, repo_raw.map(|r| &r.rule[..]), global_at, &global_raw.rule) {
            let number = config.rules.iter().filter(|r| r.repository == at.repository).count() + 1;
            if let Some(rule) = v.rule(&at, rule, number, &config.groups) {
                config.rules.push(rule);
            }
        }
        for (at, check) in repo_first(repo_at, repo_raw.map(|r| &r.check[..]), global_at, &global_raw.check) {
            let number = config.checks.iter().filter(|c| c.repository == at.repository).count() + 1;
            if let Some(check) = v.check(&at, check, number, &config.groups) {
                config.checks.push(check);
            }
        }
        let mut names = Vec::new();
        let extensions = repo_first(repo_at, repo_raw.map(|r| &r.extension[..]), global_at, &global_raw.extension);
        for (at, extension) in extensions {
            if let Some(extension) = v.extension(&at, extension, &mut names) {
                config.extensions.push(extension);
            }
        }
        if let Backend::Postgres(_) = &config.spool.backend
            && let Some(ext) = config.extensions.iter().find(|e| e.batch.is_some())
        {
            let spool = global_raw.spool.as_ref();
            let span = spool.and_then(|s| s.backend.as_ref()).map(|t| t.span()).unwrap_or_default();
            v.fail(
                &global_at,
                span,
                format!("extension {}: `batch` is not available with backend = \"postgres\" yet", ext.name),
            );
        }
        if let Backend::Postgres(pg) = &config.spool.backend {
            // An attempt must end well within its worker's lease, or another worker may
            // take the connector over in the middle of it.
            let slowest =
                config.extensions.iter().filter(|e| e.phase == extension::Phase::Post).max_by_key(|e| e.timeout);
            if let Some(ext) = slowest.filter(|e| e.timeout + std::time::Duration::from_secs(1) > pg.lease) {
                let spool = global_raw.spool.as_ref();
                let span =
                    spool.and_then(|s| s.lease.as_ref().or(s.backend.as_ref())).map(|t| t.span()).unwrap_or_default();
                v.fail(
                    &global_at,
                    span,
                    format!(
                        "lease ({:?}) must be longer than every post extension's timeout plus 1s: {} has {:?}",
                        pg.lease, ext.name, ext.timeout
                    ),
                );
            }
        }
        if config.fold_case {
            config.fold_user_names();
        }
        v.errors.retain(|e| !tainted.iter().any(|(f, l, c)| *f == e.file && *l == e.line && *c == e.col));
        v.errors.extend(read_errors);
        if v.errors.is_empty() {
            return Ok(config);
        }
        v.errors.sort_by(|a, b| (&a.file, a.line, a.col).cmp(&(&b.file, b.line, b.col)));
        Err(ConfigErrors(v.errors))
    }
}

/// Tables of one kind in evaluation order: the repository file's, then the global file's,
/// each with the file it was written in.
fn repo_first<'a, T>(
    repo: Option<Source<'a>>,
    repo_items: Option<&'a [T]>,
    global: Source<'a>,
    global_items: &'a [T],
) -> impl Iterator<Item = (Source<'a>, &'a T)> {
    let from_repo = repo.zip(repo_items).into_iter().flat_map(|(at, items)| items.iter().map(move |i| (at, i)));
    from_repo.chain(global_items.iter().map(move |i| (global, i)))
}

fn read(path: &Path) -> Result<String, ConfigErrors> {
    std::fs::read_to_string(path).map_err(|e| {
        let hint = if e.kind() == std::io::ErrorKind::NotFound { " (set PUSHGATE_CONFIG to its path)" } else { "" };
        ConfigErrors::whole_file(path, format!("cannot read configuration: {e}{hint}"))
    })
}

/// Read a file's text into `T`, finding every problem serde would stop at: syntax errors
/// (the first of each line: the parser's recovery repeats itself), unknown keys (all of
/// them, left out), and values of the wrong type (each left out in turn, so the next one
/// shows). Also where the tables that lost a key start. `Err` when nothing usable is left.
fn deserialize<T: serde::de::DeserializeOwned>(
    path: &Path,
    text: &str,
    shape: &keys::Shape,
    repository: bool,
) -> Result<(T, keys::Found), ConfigErrors> {
    let source = Source { path, text, repository };
    let positioned =
        |e: &toml::de::Error| source.error(e.span().unwrap_or(0..0), suggest::explain_toml_error(e.message(), path));
    let (mut table, syntax) = toml::de::DeTable::parse_recoverable(text);
    if !syntax.is_empty() {
        let mut errors: Vec<ConfigError> = syntax.iter().map(positioned).collect();
        errors.dedup_by_key(|e| e.line);
        return Err(ConfigErrors(errors));
    }
    let mut found = keys::Found::default();
    keys::remove_unknown(table.get_mut(), 0, shape, &source, &mut found);
    for _ in 0..64 {
        match T::deserialize(toml::de::Deserializer::from(table.clone())) {
            Ok(value) => return Ok((value, found)),
            Err(e) => {
                found.errors.push(positioned(&e));
                let at = e.span().map_or(usize::MAX, |s| s.start);
                if !keys::remove_at(table.get_mut(), 0, at, &mut found.tainted) {
                    break;
                }
            }
        }
    }
    Err(ConfigErrors(found.errors))
}

/// The global settings: everything in the global file that is not a table array.
impl Validator {
    fn identity(&mut self, at: &Source, identity: Option<&raw::Identity>) -> Vec<String> {
        let Some(list) = identity.and_then(|i| i.env.as_ref()) else {
            return DEFAULT_IDENTITY_ENV.iter().map(|s| s.to_string()).collect();
        };
        if list.get_ref().is_empty() {
            self.fail(at, list.span(), "[identity] env is empty: name at least one variable");
        }
        self.env_names(at, list)
    }

    fn server(&mut self, at: &Source, server: Option<&raw::Server>) -> Server {
        let base_url = server.and_then(|s| s.base_url.as_ref());
        if let Some(url) = base_url {
            let valid = url.get_ref().starts_with("http://") || url.get_ref().starts_with("https://");
            if !valid {
                self.fail(at, url.span(), "base_url must start with http:// or https://");
            }
        }
        Server {
            base_url: base_url.map_or(DEFAULT_BASE_URL, |u| u.get_ref()).trim_end_matches('/').to_string(),
            owner: server.and_then(|s| s.owner.as_ref()).map(|o| o.get_ref().clone()),
        }
    }

    fn spool(&mut self, at: &Source, spool: Option<&raw::Spool>) -> SpoolConfig {
        let dir =
            spool.and_then(|s| s.dir.as_ref()).map_or(PathBuf::from(DEFAULT_SPOOL_DIR), |d| PathBuf::from(d.get_ref()));
        let mut config = SpoolConfig::default_with_dir(dir);
        if let Some(list) = spool.and_then(|s| s.retry.as_ref()) {
            config.retry = list
                .get_ref()
                .iter()
                .filter_map(|t| units::parse_duration(t.get_ref()).map_err(|e| self.fail(at, t.span(), e)).ok())
                .collect();
        }
        if let Some(keep) = spool.and_then(|s| s.keep_log.as_ref()) {
            config.keep_log = units::parse_duration(keep.get_ref())
                .map_err(|e| self.fail(at, keep.span(), e))
                .unwrap_or(config.keep_log);
        }
        if let Some(on_full) = spool.and_then(|s| s.on_full.as_ref()) {
            config.on_full = match on_full.get_ref().as_str() {
                "reject" => OnFull::Reject,
                "accept" => OnFull::Accept,
                other => {
                    self.fail(at, on_full.span(), format!("on_full {other:?} must be \"reject\" or \"accept\""));
                    OnFull::Reject
                }
            };
        }
        config.backend = self.backend(at, spool);
        config
    }

    fn backend(&mut self, at: &Source, spool: Option<&raw::Spool>) -> Backend {
        let Some(spool) = spool else { return Backend::File };
        let postgres = match spool.backend.as_ref() {
            None => false,
            Some(b) => match b.get_ref().as_str() {
                "file" => false,
                "postgres" => true,
                other => {
                    self.fail(at, b.span(), format!("backend {other:?} must be \"file\" or \"postgres\""));
                    false
                }
            },
        };
        let keys = [
            ("url_env", &spool.url_env),
            ("url_file", &spool.url_file),
            ("lease", &spool.lease),
            ("ca_file", &spool.ca_file),
        ];
        if !postgres {
            for (key, value) in keys {
                if let Some(value) = value {
                    self.fail(at, value.span(), format!("{key} is for backend = \"postgres\""));
                }
            }
            return Backend::File;
        }
        let url = match (&spool.url_env, &spool.url_file) {
            (Some(name), None) => {
                let text = name.get_ref();
                let valid = !text.is_empty()
                    && !text.starts_with(|c: char| c.is_ascii_digit())
                    && text.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
                if !valid {
                    self.fail(at, name.span(), format!("{text:?} is not an environment variable name"));
                }
                extension::Secret::Env(name.get_ref().clone())
            }
            (None, Some(file)) => extension::Secret::File(PathBuf::from(file.get_ref())),
            (Some(_), Some(file)) => {
                self.fail(at, file.span(), "set `url_env` or `url_file`, not both");
                extension::Secret::File(PathBuf::from(file.get_ref()))
            }
            (None, None) => {
                let span = spool.backend.as_ref().map(|b| b.span()).unwrap_or_default();
                self.fail(
                    at,
                    span,
                    "backend = \"postgres\" needs `url_env` or `url_file` (the database's connection string)",
                );
                extension::Secret::Env(String::new())
            }
        };
        let parse = |t: &str| units::parse_duration(t).expect("the default is a valid duration");
        let mut lease = parse(DEFAULT_LEASE);
        if let Some(text) = &spool.lease {
            match units::parse_duration(text.get_ref()) {
                Ok(d) if d >= std::time::Duration::from_secs(1) => lease = d,
                Ok(_) => self.fail(at, text.span(), "lease must be at least 1s"),
                Err(e) => self.fail(at, text.span(), e),
            }
        }
        Backend::Postgres(Postgres { url, lease, ca_file: spool.ca_file.as_ref().map(|f| PathBuf::from(f.get_ref())) })
    }

    pub(crate) fn max_commits(&mut self, at: &Source, value: Option<&Spanned<i64>>) -> usize {
        let Some(value) = value else { return DEFAULT_MAX_COMMITS };
        match usize::try_from(*value.get_ref()) {
            Ok(n) if (1..=MAX_MAX_COMMITS).contains(value.get_ref()) => n,
            _ => {
                self.fail(at, value.span(), format!("max_commits must be between 1 and {MAX_MAX_COMMITS}"));
                DEFAULT_MAX_COMMITS
            }
        }
    }
}

#[cfg(test)]
mod tests;
