//! Who is pushing, and how they reached the server: the first non-empty variable of
//! `[identity] env`, and `ssh`, `http` or `local`.

use crate::env::Env;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdentityError {
    #[error("no user identity: none of {} is set", .0.join(", "))]
    Missing(Vec<String>),
    #[error("invalid user name {value} (from {variable}): it must match [A-Za-z0-9._@+-]{{1,128}}")]
    Invalid { variable: String, value: String },
}

/// The characters a user (or group) name may hold, as messages show them.
pub const USER_CHARS: &str = "A-Za-z0-9._@+-";

/// A name of 1-128 characters of `[A-Za-z0-9._@+-]`.
pub fn valid_user_name(name: &str) -> bool {
    (1..=128).contains(&name.len()) && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"._@+-".contains(&b))
}

/// The pusher's name, from the first variable in `names` that is set and not empty.
pub fn resolve(names: &[String], env: &Env) -> Result<String, IdentityError> {
    for variable in names {
        let Some(value) = env.var_os(variable).filter(|v| !v.is_empty()) else {
            continue;
        };
        let text = value.to_str().filter(|t| valid_user_name(t));
        return match text {
            Some(name) => Ok(name.to_string()),
            None => Err(IdentityError::Invalid {
                variable: variable.clone(),
                value: crate::text::shown(&value.to_string_lossy()),
            }),
        };
    }
    Err(IdentityError::Missing(names.to_vec()))
}

/// How the pusher reached the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Via {
    Ssh,
    Http,
    Local,
}

impl Via {
    pub fn as_str(self) -> &'static str {
        match self {
            Via::Ssh => "ssh",
            Via::Http => "http",
            Via::Local => "local",
        }
    }

    /// `PUSHGATE_VIA` when `pushgate shell` set it, else guessed from what sshd and web
    /// servers set.
    pub fn of(env: &Env) -> Via {
        match env.var("PUSHGATE_VIA") {
            Some("ssh") => return Via::Ssh,
            Some("http") => return Via::Http,
            Some("local") => return Via::Local,
            _ => {}
        }
        if env.is_set("SSH_CONNECTION") || env.is_set("SSH_CLIENT") {
            Via::Ssh
        } else if env.is_set("GATEWAY_INTERFACE") || env.is_set("REMOTE_ADDR") {
            Via::Http
        } else {
            Via::Local
        }
    }
}

impl std::fmt::Display for Via {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names() -> Vec<String> {
        vec!["PUSHGATE_USER".into(), "REMOTE_USER".into()]
    }

    #[test]
    fn first_non_empty_wins() {
        let env = Env::from_vars([("PUSHGATE_USER", ""), ("REMOTE_USER", "alice@example.org")]);
        assert_eq!(resolve(&names(), &env).unwrap(), "alice@example.org");
    }

    #[test]
    fn missing_names_every_variable() {
        let e = resolve(&names(), &Env::default()).unwrap_err();
        assert_eq!(e.to_string(), "no user identity: none of PUSHGATE_USER, REMOTE_USER is set");
    }

    #[test]
    fn invalid_names_are_refused() {
        for bad in ["a b", "x;rm -rf /", &"a".repeat(129), "é"] {
            let e = resolve(&names(), &Env::from_vars([("PUSHGATE_USER", bad)])).unwrap_err();
            assert!(matches!(e, IdentityError::Invalid { .. }), "{bad}");
        }
    }

    #[test]
    fn via_comes_from_the_shell_or_the_server_variables() {
        assert_eq!(Via::of(&Env::from_vars([("PUSHGATE_VIA", "http"), ("SSH_CONNECTION", "x")])), Via::Http);
        assert_eq!(Via::of(&Env::from_vars([("SSH_CONNECTION", "1.2.3.4 5 6.7.8.9 22")])), Via::Ssh);
        assert_eq!(Via::of(&Env::from_vars([("REMOTE_ADDR", "::1")])), Via::Http);
        assert_eq!(Via::of(&Env::from_vars([("PUSHGATE_VIA", "bogus")])), Via::Local);
    }
}
