//! Who is pushing: the first non-empty variable of `[identity] env`.

use crate::config::valid_user_name;
use std::ffi::OsString;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdentityError {
    #[error("no user identity: none of {} is set", .0.join(", "))]
    Missing(Vec<String>),
    #[error("invalid user name {value} (from {variable}): it must match [A-Za-z0-9._@+-]{{1,128}}")]
    Invalid { variable: String, value: String },
}

/// The pusher's name, from the first variable in `names` that `lookup` finds non-empty.
pub fn resolve(names: &[String], lookup: impl Fn(&str) -> Option<OsString>) -> Result<String, IdentityError> {
    for variable in names {
        let Some(value) = lookup(variable).filter(|v| !v.is_empty()) else {
            continue;
        };
        let text = value.to_str().filter(|t| valid_user_name(t));
        return match text {
            Some(name) => Ok(name.to_string()),
            None => Err(IdentityError::Invalid {
                variable: variable.clone(),
                value: crate::push::shown(&value.to_string_lossy()),
            }),
        };
    }
    Err(IdentityError::Missing(names.to_vec()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names() -> Vec<String> {
        vec!["PUSHGATE_USER".into(), "REMOTE_USER".into()]
    }

    #[test]
    fn first_non_empty_wins() {
        let env = |n: &str| match n {
            "PUSHGATE_USER" => Some(OsString::new()),
            "REMOTE_USER" => Some("alice@example.org".into()),
            _ => None,
        };
        assert_eq!(resolve(&names(), env).unwrap(), "alice@example.org");
    }

    #[test]
    fn missing_names_every_variable() {
        let e = resolve(&names(), |_| None).unwrap_err();
        assert_eq!(e.to_string(), "no user identity: none of PUSHGATE_USER, REMOTE_USER is set");
    }

    #[test]
    fn invalid_names_are_refused() {
        for bad in ["a b", "x;rm -rf /", &"a".repeat(129), "é"] {
            let e = resolve(&names(), |n| (n == "PUSHGATE_USER").then(|| bad.into())).unwrap_err();
            assert!(matches!(e, IdentityError::Invalid { .. }), "{bad}");
        }
    }
}
