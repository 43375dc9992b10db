//! Loading and validating configuration: the global file, then a repository's own
//! `pushgate.toml`, merged into one typed [`Config`]. Every error names the file, line and
//! column of the value at fault, with a suggestion where one is obvious.

pub mod check;
pub mod extension;
mod raw;
pub mod units;

use crate::policy::glob::{Anchor, Glob};
use crate::push::Op;
pub use check::Check;
pub use extension::Extension;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};
use toml::Spanned;
pub use units::Size;

pub const DEFAULT_PATH: &str = "/etc/pushgate/config.toml";
pub const REPO_FILE: &str = "pushgate.toml";
pub const DEFAULT_IDENTITY_ENV: [&str; 3] = ["PUSHGATE_USER", "GL_USER", "REMOTE_USER"];

/// Everything pushgate was told, validated.
#[derive(Debug, Clone)]
pub struct Config {
    pub repos_root: Option<PathBuf>,
    pub identity_env: Vec<String>,
    pub groups: Groups,
    pub max_blob_size: Option<Size>,
    pub audit_file: Option<PathBuf>,
    /// Repository rules first, then global ones, each in file order: evaluation order.
    pub rules: Vec<Rule>,
    /// Repository extensions first, then global ones.
    pub extensions: Vec<Extension>,
    /// Repository checks first, then global ones.
    pub checks: Vec<Check>,
    /// Facts about users: their emails (lowercase), for `author_is_pusher`.
    pub users: BTreeMap<String, Vec<String>>,
    pub server: Server,
    /// Commits listed per change in an event.
    pub max_commits: usize,
    pub spool: SpoolConfig,
}

impl Config {
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
}

pub const DEFAULT_SPOOL_DIR: &str = "/var/lib/pushgate/spool";
pub const DEFAULT_RETRY: [&str; 9] = ["5s", "5m", "30m", "2h", "5h", "10h", "14h", "20h", "24h"];
pub const DEFAULT_KEEP_LOG: &str = "14d";

impl SpoolConfig {
    pub fn default_with_dir(dir: PathBuf) -> SpoolConfig {
        let parse = |t: &str| units::parse_duration(t).expect("the defaults are valid durations");
        SpoolConfig { dir, retry: DEFAULT_RETRY.iter().map(|t| parse(t)).collect(), keep_log: parse(DEFAULT_KEEP_LOG) }
    }
}

/// The spool directory a configuration names, read leniently: post-receive must spool even
/// when the rest of the configuration is broken. Falls back to the default.
pub fn spool_dir_leniently(config_path: &Path) -> PathBuf {
    let dir = std::fs::read_to_string(config_path)
        .ok()
        .and_then(|text| text.parse::<toml::Table>().ok())
        .and_then(|table| table.get("spool")?.get("dir")?.as_str().map(PathBuf::from));
    dir.unwrap_or_else(|| PathBuf::from(DEFAULT_SPOOL_DIR))
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

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UserPattern {
    /// `*`: any identified user.
    Any,
    Name(String),
    Group(String),
}

#[derive(Debug, Clone)]
pub struct Rule {
    /// 1-based position in evaluation order, as messages show it (`rule 3`).
    pub number: usize,
    pub origin: Origin,
    pub repos: Vec<Glob>,
    pub refs: Vec<Glob>,
    /// Set for path rules, which the path pass evaluates.
    pub paths: Option<Vec<Glob>>,
    pub users: Vec<UserPattern>,
    pub allow: BTreeSet<Op>,
    pub deny: BTreeSet<Op>,
    pub message: Option<String>,
    pub mode: Mode,
}

/// Groups with nesting resolved: who belongs to what, directly or through other groups.
#[derive(Debug, Clone, Default)]
pub struct Groups {
    members: BTreeMap<String, BTreeSet<String>>,
}

impl Groups {
    /// The groups `user` belongs to, sorted.
    pub fn of(&self, user: &str) -> Vec<String> {
        self.members.iter().filter(|(_, users)| users.contains(user)).map(|(g, _)| g.clone()).collect()
    }

    pub fn contains(&self, group: &str, user: &str) -> bool {
        self.members.get(group).is_some_and(|users| users.contains(user))
    }
}

/// One problem in a configuration file. `line` 0 means the whole file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub file: PathBuf,
    pub line: usize,
    pub col: usize,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}: {}", self.file.display(), self.message)
        } else {
            write!(f, "{}:{}:{}: {}", self.file.display(), self.line, self.col, self.message)
        }
    }
}

/// All the problems found, in file order; never empty.
#[derive(Debug, Clone)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// The global configuration file's path: `$PUSHGATE_CONFIG`, else the default.
pub fn global_path(env_value: Option<std::ffi::OsString>) -> PathBuf {
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
                Err(e) => return Err(whole_file(path, format!("cannot read: {e}"))),
            },
            None => None,
        };
        let repo = repo.as_ref().map(|(path, text)| (*path, text.as_str()));
        Config::parse(global, &global_text, repo)
    }

    /// Validate configuration text; `repo` is a repository file's path and text.
    pub fn parse(global: &Path, global_text: &str, repo: Option<(&Path, &str)>) -> Result<Config, ConfigErrors> {
        let global_raw: raw::GlobalFile = deserialize(global, global_text)?;
        let repo_raw: Option<raw::RepoFile> = repo.map(|(path, text)| deserialize(path, text)).transpose()?;

        let mut v = Validator { errors: Vec::new() };
        let global_at = Source { path: global, text: global_text };
        let groups = v.groups(&global_at, &global_raw.groups);
        let users = v.users(&global_at, &global_raw.users);
        let mut config = Config {
            repos_root: global_raw.repos_root.as_ref().map(|r| PathBuf::from(r.get_ref())),
            identity_env: v.identity(&global_at, global_raw.identity.as_ref()),
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
        let repo_at = repo.map(|(path, text)| Source { path, text });
        let repo_raw = repo_raw.as_ref();
        for (at, rule) in repo_first(repo_at, repo_raw.map(|r| &r.rule[..]), global_at, &global_raw.rule) {
            if let Some(rule) = v.rule(&at, rule, config.rules.len() + 1, &config.groups) {
                config.rules.push(rule);
            }
        }
        for (at, check) in repo_first(repo_at, repo_raw.map(|r| &r.check[..]), global_at, &global_raw.check) {
            if let Some(check) = v.check(&at, check, config.checks.len() + 1, &config.groups) {
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
        whole_file(path, format!("cannot read configuration: {e}{hint}"))
    })
}

fn whole_file(path: &Path, message: String) -> ConfigErrors {
    ConfigErrors(vec![ConfigError { file: path.to_path_buf(), line: 0, col: 0, message }])
}

fn deserialize<T: serde::de::DeserializeOwned>(path: &Path, text: &str) -> Result<T, ConfigErrors> {
    toml::from_str(text).map_err(|e| {
        let source = Source { path, text };
        let message = explain_toml_error(e.message(), path);
        ConfigErrors(vec![source.error(e.span().unwrap_or(0..0), message)])
    })
}

/// serde's messages, made more helpful: a likely spelling for an unknown key, and why a
/// repository file refuses global keys.
fn explain_toml_error(message: &str, path: &Path) -> String {
    let message = message.trim_end();
    let Some(rest) = message.strip_prefix("unknown field `") else {
        return message.to_string();
    };
    let Some((key, expected)) = rest.split_once('`') else {
        return message.to_string();
    };
    let is_repo_file = path.file_name().is_some_and(|n| n == REPO_FILE);
    if is_repo_file && raw::GLOBAL_ONLY_KEYS.contains(&key) {
        return format!("`{key}` may only be set in the global configuration, not in a repository's {REPO_FILE}");
    }
    let candidates: Vec<&str> = expected.split('`').skip(1).step_by(2).collect();
    match closest(key, &candidates) {
        Some(best) => format!("unknown key `{key}` (did you mean `{best}`?)"),
        None => format!("unknown key `{key}`{expected}"),
    }
}

fn closest<'a>(word: &str, candidates: &[&'a str]) -> Option<&'a str> {
    candidates
        .iter()
        .map(|c| (edit_distance(word, c), *c))
        .filter(|(d, c)| *d <= 2.max(c.len() / 3))
        .min()
        .map(|(_, c)| c)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let next = (diagonal + usize::from(ca != *cb)).min(row[j] + 1).min(row[j + 1] + 1);
            diagonal = row[j + 1];
            row[j + 1] = next;
        }
    }
    row[b.len()]
}

#[derive(Clone, Copy)]
struct Source<'a> {
    path: &'a Path,
    text: &'a str,
}

impl Source<'_> {
    fn position(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.text.len());
        let before = self.text.get(..offset).unwrap_or(self.text);
        let line = before.matches('\n').count() + 1;
        let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        (line, col)
    }

    fn error(&self, span: Range<usize>, message: String) -> ConfigError {
        let (line, col) = self.position(span.start);
        ConfigError { file: self.path.to_path_buf(), line, col, message }
    }
}

struct Validator {
    errors: Vec<ConfigError>,
}

const USER_CHARS: &str = "A-Za-z0-9._@+-";

pub fn valid_user_name(name: &str) -> bool {
    (1..=128).contains(&name.len()) && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"._@+-".contains(&b))
}

impl Validator {
    fn fail(&mut self, at: &Source, span: Range<usize>, message: impl Into<String>) {
        self.errors.push(at.error(span, message.into()));
    }

    fn identity(&mut self, at: &Source, identity: Option<&raw::Identity>) -> Vec<String> {
        let Some(list) = identity.and_then(|i| i.env.as_ref()) else {
            return DEFAULT_IDENTITY_ENV.iter().map(|s| s.to_string()).collect();
        };
        if list.get_ref().is_empty() {
            self.fail(at, list.span(), "[identity] env is empty: name at least one variable");
        }
        for name in list.get_ref() {
            let valid =
                !name.get_ref().is_empty() && name.get_ref().bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
            if !valid {
                self.fail(at, name.span(), format!("{:?} is not an environment variable name", name.get_ref()));
            }
        }
        list.get_ref().iter().map(|n| n.get_ref().clone()).collect()
    }

    /// `[users.<name>]` tables: each user's emails, lowercase, for `author_is_pusher`.
    fn users(&mut self, at: &Source, users: &BTreeMap<Spanned<String>, raw::User>) -> BTreeMap<String, Vec<String>> {
        let mut out = BTreeMap::new();
        for (name, facts) in users {
            out.insert(name.get_ref().clone(), facts.emails.iter().map(|e| e.get_ref().to_ascii_lowercase()).collect());
            if !valid_user_name(name.get_ref()) {
                self.fail(
                    at,
                    name.span(),
                    format!("user name {:?} must match [{USER_CHARS}]{{1,128}}", name.get_ref()),
                );
            }
            for email in facts.emails.iter().filter(|e| !e.get_ref().contains('@')) {
                self.fail(at, email.span(), format!("{:?} is not an email address", email.get_ref()));
            }
        }
        out
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
        config
    }

    fn max_commits(&mut self, at: &Source, value: Option<&Spanned<i64>>) -> usize {
        let Some(value) = value else { return DEFAULT_MAX_COMMITS };
        match usize::try_from(*value.get_ref()) {
            Ok(n) if (1..=MAX_MAX_COMMITS).contains(value.get_ref()) => n,
            _ => {
                self.fail(at, value.span(), format!("max_commits must be between 1 and {MAX_MAX_COMMITS}"));
                DEFAULT_MAX_COMMITS
            }
        }
    }

    fn size(&mut self, at: &Source, text: &raw::Text) -> Option<Size> {
        units::parse_size(text.get_ref()).map_err(|e| self.fail(at, text.span(), e)).ok()
    }

    fn groups(&mut self, at: &Source, raw: &BTreeMap<Spanned<String>, raw::TextList>) -> Groups {
        let direct: BTreeMap<&str, &raw::TextList> = raw.iter().map(|(k, v)| (k.get_ref().as_str(), v)).collect();
        for (name, members) in raw {
            if !valid_user_name(name.get_ref()) {
                self.fail(
                    at,
                    name.span(),
                    format!("group name {:?} must match [{USER_CHARS}]{{1,128}}", name.get_ref()),
                );
            }
            for member in members.get_ref() {
                match member.get_ref().strip_prefix('@') {
                    Some(group) if !direct.contains_key(group) => {
                        let hint = suggestion(group, direct.keys().copied(), "@");
                        self.fail(at, member.span(), format!("unknown group `@{group}`{hint}"));
                    }
                    Some(_) => {}
                    None if !valid_user_name(member.get_ref()) => {
                        self.fail(
                            at,
                            member.span(),
                            format!("user name {:?} must match [{USER_CHARS}]{{1,128}}", member.get_ref()),
                        );
                    }
                    None => {}
                }
            }
        }
        let mut members = BTreeMap::new();
        let mut in_reported_cycle: BTreeSet<String> = BTreeSet::new();
        for (name, list) in raw {
            let mut users = BTreeSet::new();
            let mut path = vec![name.get_ref().as_str()];
            match collect_members(&direct, list, &mut path, &mut users) {
                Ok(()) => {
                    members.insert(name.get_ref().clone(), users);
                }
                // One cycle, one error: its other groups would report it again.
                Err(cycle) if !cycle.iter().any(|g| in_reported_cycle.contains(g)) => {
                    let shown: Vec<String> = cycle.iter().map(|g| format!("@{g}")).collect();
                    self.fail(at, name.span(), format!("group cycle: {}", shown.join(" -> ")));
                    in_reported_cycle.extend(cycle);
                }
                Err(_) => {}
            }
        }
        Groups { members }
    }

    fn rule(&mut self, at: &Source, spanned: &Spanned<raw::Rule>, number: usize, groups: &Groups) -> Option<Rule> {
        let errors_before = self.errors.len();
        let rule = spanned.get_ref();
        let (line, _) = at.position(spanned.span().start);
        let origin = Origin { file: at.path.to_path_buf(), line };
        let whole = spanned.span();

        let repos = match &rule.repos {
            Some(list) => self.globs(at, list, Anchor::Whole, "repos"),
            None => Glob::everything(),
        };
        let refs = match &rule.refs {
            Some(list) => self.ref_globs(at, list),
            None => Glob::everything(),
        };
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
        let mode = rule.mode.as_ref().map_or(Mode::Enforce, |m| self.mode(at, m));
        (self.errors.len() == errors_before).then(|| Rule {
            number,
            origin,
            repos,
            refs,
            paths,
            users,
            allow,
            deny,
            message: rule.message.as_ref().map(|m| m.get_ref().clone()),
            mode,
        })
    }

    fn globs(&mut self, at: &Source, list: &raw::TextList, anchor: Anchor, key: &str) -> Vec<Glob> {
        if list.get_ref().is_empty() {
            self.fail(
                at,
                list.span(),
                format!("`{key}` is empty: it would match nothing (remove the key to match all)"),
            );
        }
        list.get_ref()
            .iter()
            .filter_map(|p| Glob::new(p.get_ref(), anchor).map_err(|e| self.fail(at, p.span(), e)).ok())
            .collect()
    }

    fn ref_globs(&mut self, at: &Source, list: &raw::TextList) -> Vec<Glob> {
        for pattern in list.get_ref() {
            let p = pattern.get_ref();
            if !p.starts_with("refs/") {
                let suggested = if p.starts_with("heads/") || p.starts_with("tags/") || p.starts_with('*') {
                    format!("refs/{}", p.trim_start_matches('/'))
                } else {
                    format!("refs/heads/{p}")
                };
                self.fail(
                    at,
                    pattern.span(),
                    format!("ref pattern {p:?} must be a full ref name: did you mean {suggested:?}?"),
                );
            }
        }
        self.globs(at, list, Anchor::Whole, "refs")
    }

    fn user_patterns(&mut self, at: &Source, list: &raw::TextList, groups: &Groups) -> Vec<UserPattern> {
        if list.get_ref().is_empty() {
            self.fail(at, list.span(), "`users` is empty: the rule would match nobody");
        }
        let mut out = Vec::new();
        for entry in list.get_ref() {
            let text = entry.get_ref();
            if text == "*" {
                out.push(UserPattern::Any);
            } else if let Some(group) = text.strip_prefix('@') {
                if groups.members.contains_key(group) {
                    out.push(UserPattern::Group(group.to_string()));
                } else {
                    let hint = suggestion(group, groups.members.keys().map(String::as_str), "@");
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

    fn ops(&mut self, at: &Source, list: &raw::TextList) -> BTreeSet<Op> {
        let mut ops = BTreeSet::new();
        for name in list.get_ref() {
            match Op::expand(name.get_ref()) {
                Some(expanded) => ops.extend(expanded.iter().copied()),
                None => {
                    let known = ["create", "update", "force", "delete", "read", "write", "all"];
                    let hint = suggestion(name.get_ref(), known.into_iter(), "");
                    let message = format!("unknown operation {:?}{hint} (one of {})", name.get_ref(), known.join(", "));
                    self.fail(at, name.span(), message);
                }
            }
        }
        ops
    }

    fn mode(&mut self, at: &Source, mode: &raw::Text) -> Mode {
        match mode.get_ref().as_str() {
            "enforce" => Mode::Enforce,
            "warn" => Mode::Warn,
            other => {
                self.fail(at, mode.span(), format!("mode {other:?} must be \"enforce\" or \"warn\""));
                Mode::Enforce
            }
        }
    }
}

fn suggestion<'a>(word: &str, candidates: impl Iterator<Item = &'a str>, prefix: &str) -> String {
    let candidates: Vec<&str> = candidates.collect();
    closest(word, &candidates).map(|c| format!(" (did you mean `{prefix}{c}`?)")).unwrap_or_default()
}

/// Depth-first expansion of a group's members; `path` holds the groups being expanded, so
/// meeting one of them again is a cycle.
fn collect_members<'a>(
    direct: &BTreeMap<&'a str, &'a raw::TextList>,
    list: &'a raw::TextList,
    path: &mut Vec<&'a str>,
    users: &mut BTreeSet<String>,
) -> Result<(), Vec<String>> {
    for member in list.get_ref() {
        match member.get_ref().strip_prefix('@') {
            Some(group) => {
                if let Some(start) = path.iter().position(|g| *g == group) {
                    path.push(group);
                    return Err(path[start..].iter().map(|g| g.to_string()).collect());
                }
                let Some(nested) = direct.get(group) else {
                    continue;
                };
                path.push(group);
                collect_members(direct, nested, path, users)?;
                path.pop();
            }
            None => {
                users.insert(member.get_ref().clone());
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigErrors> {
        Config::parse(Path::new("config.toml"), text, None)
    }

    fn error(text: &str) -> String {
        parse(text).unwrap_err().to_string()
    }

    #[test]
    fn a_full_config_loads() {
        let config = parse(
            r#"
repos_root = "/srv/git"
[identity]
env = ["PUSHGATE_USER"]
[groups]
maintainers = ["alice"]
devs = ["bob", "@maintainers"]
[users.alice]
emails = ["Alice@Example.org"]
[limits]
max_blob_size = "10 MiB"
[audit]
file = "/tmp/audit.jsonl"
[[rule]]
refs = ["refs/heads/main"]
users = ["@maintainers"]
allow = ["all"]
message = "main is protected"
[[rule]]
refs = ["refs/heads/**"]
paths = ["deploy/**"]
users = ["*"]
deny = ["write", "force"]
mode = "warn"
"#,
        )
        .unwrap();
        assert_eq!(config.groups.of("alice"), ["devs", "maintainers"]);
        assert_eq!(config.groups.of("bob"), ["devs"]);
        assert_eq!(config.max_blob_size.unwrap().bytes, 10 << 20);
        assert_eq!(config.rules.len(), 2);
        assert_eq!(config.rules[0].origin.line, 14);
        assert_eq!(config.rules[1].mode, Mode::Warn);
        assert!(config.rules[1].deny.contains(&Op::Force));
    }

    #[test]
    fn unknown_keys_name_position_and_suggest() {
        let e = error("[[rule]]\nrefs = [\"refs/heads/x\"]\nusers = [\"*\"]\nalow = [\"create\"]\n");
        assert!(e.starts_with("config.toml:4:1: unknown key `alow` (did you mean `allow`?)"), "{e}");
    }

    #[test]
    fn ref_patterns_must_be_full_names() {
        let e = error("[[rule]]\nrefs = [\"main\"]\nusers = [\"*\"]\nallow = [\"all\"]\n");
        assert_eq!(
            e,
            "config.toml:2:9: ref pattern \"main\" must be a full ref name: did you mean \"refs/heads/main\"?"
        );
    }

    #[test]
    fn bad_globs_sizes_and_ops_are_positioned() {
        let e = error(
            "[limits]\nmax_blob_size = \"5 parsecs\"\n[[rule]]\nrefs = [\"refs/heads/[x\"]\nusers = [\"*\"]\nallow = [\"creat\"]\n",
        );
        let lines: Vec<&str> = e.lines().collect();
        assert!(lines[0].starts_with("config.toml:2:17: unknown size unit"), "{e}");
        assert!(lines[1].starts_with("config.toml:4:9: unclosed `[`"), "{e}");
        assert!(lines[2].starts_with("config.toml:6:10: unknown operation \"creat\" (did you mean `create`?)"), "{e}");
    }

    #[test]
    fn all_in_a_path_rule_means_every_write() {
        let config = parse("[[rule]]\npaths = [\"deploy/**\"]\nusers = [\"*\"]\ndeny = [\"all\"]\n").unwrap();
        assert_eq!(config.rules[0].deny, [Op::Create, Op::Update, Op::Force, Op::Delete].into());
        let e = error("[[rule]]\npaths = [\"x\"]\nusers = [\"*\"]\nallow = [\"read\"]\n");
        assert!(e.starts_with("config.toml:4:10: a path rule cannot decide `read`"), "{e}");
    }

    #[test]
    fn extensions_load_with_defaults() {
        let config = parse(
            r#"
[server]
base_url = "https://git.example.org/"
[[extension]]
name = "ci"
type = "http"
phase = "post"
url = "http://127.0.0.1:8080/hook"
secret_env = "CI_HOOK_SECRET"
format = "github"
headers = { "X-Team" = "web" }
[[extension]]
name = "lint"
type = "script"
phase = "pre"
command = ["/usr/local/bin/lint", "--strict"]
timeout = "500ms"
on_error = "allow"
mode = "warn"
"#,
        )
        .unwrap();
        assert_eq!(config.server.base_url, "https://git.example.org");
        assert_eq!(config.max_commits, DEFAULT_MAX_COMMITS);
        let [ci, lint] = &config.extensions[..] else { panic!("two extensions") };
        assert_eq!(ci.format, extension::Format::Github);
        assert!(ci.push_events && ci.enabled);
        assert!(
            matches!(&ci.kind, extension::Kind::Http { secret: Some(extension::Secret::Env(e)), .. } if e == "CI_HOOK_SECRET")
        );
        assert_eq!(lint.timeout, std::time::Duration::from_millis(500));
        assert_eq!(lint.on_error, extension::OnError::Allow);
        assert_eq!(lint.mode, Mode::Warn);
    }

    #[test]
    fn extension_mistakes_are_positioned() {
        let e = error(
            "[[extension]]\nname = \"a\"\ntype = \"script\"\nphase = \"post\"\nurl = \"http://x\"\non_error = \"allow\"\n",
        );
        let lines: Vec<&str> = e.lines().collect();
        assert!(lines[0].starts_with("config.toml:1:1: a script extension needs `command`"), "{e}");
        assert!(lines.iter().any(|l| l.starts_with("config.toml:5:7: `url` does not apply to script")), "{e}");
        assert!(
            lines.iter().any(|l| l.starts_with("config.toml:6:12: `on_error` applies to pre extensions only")),
            "{e}"
        );
        let dup = error(
            "[[extension]]\nname = \"a\"\ntype = \"script\"\nphase = \"pre\"\ncommand = [\"x\"]\n[[extension]]\nname = \"a\"\ntype = \"script\"\nphase = \"pre\"\ncommand = [\"y\"]\n",
        );
        assert!(dup.contains("config.toml:7:8: extension name \"a\" is already used at config.toml:1"), "{dup}");
        let bad = error("[[extension]]\nname = \"a b\"\ntype = \"ftp\"\nphase = \"later\"\n");
        assert!(bad.contains("must match [A-Za-z0-9._-]"), "{bad}");
        assert!(bad.contains("type \"ftp\""), "{bad}");
        assert!(bad.contains("phase \"later\""), "{bad}");
    }

    #[test]
    fn group_cycles_are_errors() {
        let e = error("[groups]\na = [\"@b\"]\nb = [\"@a\"]\n");
        assert!(e.contains("group cycle: @a -> @b -> @a"), "{e}");
    }

    #[test]
    fn unknown_groups_are_errors() {
        let e = error("[groups]\nmaintainers = [\"alice\"]\n[[rule]]\nusers = [\"@maintainer\"]\nallow = [\"all\"]\n");
        assert!(e.contains("unknown group `@maintainer` (did you mean `@maintainers`?)"), "{e}");
    }

    #[test]
    fn rules_need_users_and_an_op_list() {
        assert!(error("[[rule]]\nallow = [\"all\"]\n").contains("rule has no `users`"));
        assert!(error("[[rule]]\nusers = [\"*\"]\n").contains("neither `allow` nor `deny`"));
        assert!(
            error("[[rule]]\nusers = [\"*\"]\nallow = [\"update\"]\ndeny = [\"write\"]\n")
                .contains("both allowed and denied")
        );
    }

    #[test]
    fn syntax_errors_are_positioned() {
        let e = error("repos_root = \n");
        assert!(e.starts_with("config.toml:1:"), "{e}");
    }

    #[test]
    fn repo_rules_come_first_and_global_keys_are_refused_there() {
        let global = "[[rule]]\nusers = [\"*\"]\nallow = [\"all\"]\n";
        let repo = "[[rule]]\nusers = [\"bob\"]\ndeny = [\"all\"]\n";
        let config = Config::parse(Path::new("g.toml"), global, Some((Path::new("pushgate.toml"), repo))).unwrap();
        assert_eq!(config.rules[0].origin.file, Path::new("pushgate.toml"));
        assert_eq!(config.rules[1].number, 2);
        let bad =
            Config::parse(Path::new("g.toml"), global, Some((Path::new("pushgate.toml"), "[groups]\n"))).unwrap_err();
        assert!(bad.to_string().contains("may only be set in the global configuration"), "{bad}");
    }

    #[test]
    fn missing_file_says_how_to_point_at_one() {
        let e = Config::load(Path::new("/nonexistent/pushgate.toml"), None).unwrap_err().to_string();
        assert!(e.contains("PUSHGATE_CONFIG"), "{e}");
    }
}
