//! The configuration exactly as written: serde structs that refuse unknown keys and keep the
//! position of every value that later validation may need to point at.

use serde::Deserialize;
use std::collections::BTreeMap;
use toml::Spanned;

pub type Text = Spanned<String>;
pub type TextList = Spanned<Vec<Text>>;

/// `$PUSHGATE_CONFIG` or `/etc/pushgate/config.toml`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GlobalFile {
    pub repos_root: Option<Spanned<String>>,
    pub identity: Option<Identity>,
    #[serde(default)]
    pub groups: BTreeMap<Spanned<String>, TextList>,
    #[serde(default)]
    pub users: BTreeMap<Spanned<String>, User>,
    pub limits: Option<Limits>,
    pub audit: Option<Audit>,
    pub server: Option<Server>,
    pub spool: Option<Spool>,
    pub max_commits: Option<Spanned<i64>>,
    #[serde(default)]
    pub rule: Vec<Spanned<Rule>>,
    #[serde(default)]
    pub extension: Vec<Spanned<Extension>>,
    #[serde(default)]
    pub check: Vec<Spanned<Check>>,
}

/// A repository's own `pushgate.toml`: only what may differ per repository.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RepoFile {
    #[serde(default)]
    pub rule: Vec<Spanned<Rule>>,
    #[serde(default)]
    pub extension: Vec<Spanned<Extension>>,
    #[serde(default)]
    pub check: Vec<Spanned<Check>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Check {
    pub repos: Option<TextList>,
    pub refs: Option<TextList>,
    pub commit_message: Option<Text>,
    pub author_email: Option<Text>,
    pub committer_email: Option<Text>,
    pub linear_history: Option<bool>,
    pub max_files_changed: Option<Spanned<i64>>,
    pub max_blob_size: Option<Text>,
    pub forbid_paths: Option<TextList>,
    pub require_signed: Option<bool>,
    pub author_is_pusher: Option<bool>,
    pub exempt: Option<TextList>,
    pub mode: Option<Text>,
}

/// Keys that exist only in the global file, to explain why a repository file refuses them.
pub const GLOBAL_ONLY_KEYS: [&str; 9] =
    ["repos_root", "identity", "groups", "users", "limits", "audit", "server", "spool", "max_commits"];

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Spool {
    pub dir: Option<Text>,
    pub retry: Option<TextList>,
    pub keep_log: Option<Text>,
    pub on_full: Option<Text>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Server {
    pub base_url: Option<Text>,
    pub owner: Option<Text>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Extension {
    pub name: Text,
    #[serde(rename = "type")]
    pub kind: Text,
    pub phase: Text,
    pub url: Option<Text>,
    pub command: Option<TextList>,
    pub secret_env: Option<Text>,
    pub secret_file: Option<Text>,
    pub format: Option<Text>,
    pub headers: Option<Spanned<BTreeMap<Spanned<String>, Text>>>,
    pub refs: Option<TextList>,
    pub repos: Option<TextList>,
    pub timeout: Option<Text>,
    pub events: Option<TextList>,
    pub enabled: Option<bool>,
    pub on_error: Option<Text>,
    pub mode: Option<Text>,
    pub env: Option<TextList>,
    pub max_commits: Option<Spanned<i64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Identity {
    pub env: Option<TextList>,
    pub fold_case: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct User {
    #[serde(default)]
    pub emails: Vec<Text>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    pub max_blob_size: Option<Text>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Audit {
    pub file: Text,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    pub repos: Option<TextList>,
    pub refs: Option<TextList>,
    pub paths: Option<TextList>,
    pub users: Option<TextList>,
    pub allow: Option<TextList>,
    pub deny: Option<TextList>,
    pub message: Option<Text>,
    pub mode: Option<Text>,
}
