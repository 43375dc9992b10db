//! Running extensions: local scripts and HTTP endpoints. One call sends one body and
//! classifies the answer; what an answer means (veto, retry, dead letter) is decided by the
//! phase that called it.

pub mod body;
mod http;
pub mod pre;
mod script;
pub mod sign;

use crate::config::extension::{Extension, Kind, Phase, Secret};
use crate::env::Env;
use crate::event::EventKind;
use std::ffi::OsString;
use std::path::Path;
use std::time::Duration;

/// What an extension answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// Exit 0, or a 2xx status.
    Accepted,
    /// A refusal (other non-zero exit, other 3xx/4xx): pre: a veto; post: a permanent failure.
    Refused { code: String, lines: Vec<String> },
    /// A transient failure (exit 75, 408, 429, 5xx, timeout, crash, connection error): post:
    /// retried; pre: `on_error` decides.
    Failed { reason: String, status: Option<String>, retry_after: Option<Duration> },
    /// HTTP 410: permanent, and the connector is disabled until re-enabled.
    Gone { reason: String },
}

impl Reply {
    pub fn failed(reason: impl Into<String>) -> Reply {
        Reply::Failed { reason: reason.into(), status: None, retry_after: None }
    }
}

/// One call: the body and what describes it.
pub struct Call<'a> {
    pub body: &'a [u8],
    pub event: EventKind,
    pub phase: Phase,
    pub user: &'a str,
    pub repo: &'a str,
    pub event_id: &'a str,
    pub delivery_id: &'a str,
    /// Working directory of scripts: the repository.
    pub cwd: &'a Path,
    /// Present for `github` payloads: the headers GitHub's receivers look for.
    pub github: Option<GithubHeaders>,
}

#[derive(Debug, Clone, Copy)]
pub struct GithubHeaders {
    pub total_commits: usize,
}

/// Send `call` to `extension`. `env` holds the variables `secret_env` names.
pub fn call(extension: &Extension, call: &Call, env: &Env) -> Reply {
    Connection::new(extension).call(call, env)
}

/// Calls to one extension, keeping what can be kept between them (an HTTP connection).
pub struct Connection<'e> {
    extension: &'e Extension,
    agent: Option<ureq::Agent>,
}

impl<'e> Connection<'e> {
    pub fn new(extension: &'e Extension) -> Connection<'e> {
        let agent = matches!(extension.kind, Kind::Http { .. }).then(|| http::agent(extension.timeout));
        Connection { extension, agent }
    }

    /// Send `call`. `env` holds the variables `secret_env` names.
    pub fn call(&self, call: &Call, env: &Env) -> Reply {
        let extension = self.extension;
        match (&extension.kind, &self.agent) {
            (Kind::Script { command, env: passed }, _) => script::run(command, passed, extension.timeout, call, env),
            (Kind::Http { url, secret, headers }, Some(agent)) => {
                let key = match secret.as_ref().map(|s| read_secret(s, env)).transpose() {
                    Ok(key) => key,
                    Err(reason) => return Reply::failed(reason),
                };
                http::post(agent, url, headers, key.as_deref(), extension.timeout, call)
            }
            (Kind::Http { .. }, None) => Reply::failed("no HTTP client"),
        }
    }
}

/// The secret's bytes. Errors name where it should be, never what it is.
fn read_secret(secret: &Secret, env: &Env) -> Result<Vec<u8>, String> {
    let value = match secret {
        Secret::Env(name) => env
            .var_os(name)
            .filter(|v| !v.is_empty())
            .map(OsString::from)
            .ok_or_else(|| format!("secret_env {name} is not set"))?,
        Secret::File(path) => std::fs::read(path)
            .map(|bytes| OsString::from(String::from_utf8_lossy(&bytes).trim_end_matches(['\r', '\n']).to_string()))
            .map_err(|e| format!("cannot read secret_file {}: {}", path.display(), e.kind()))?,
    };
    Ok(value.into_encoded_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_errors_do_not_leak_values() {
        let env = Env::default();
        let e = read_secret(&Secret::Env("CI_SECRET".into()), &env).unwrap_err();
        assert_eq!(e, "secret_env CI_SECRET is not set");
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), "whsec_abc\n").unwrap();
        assert_eq!(read_secret(&Secret::File(file.path().into()), &env).unwrap(), b"whsec_abc");
    }
}
