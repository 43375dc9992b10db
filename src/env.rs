//! The process's environment, read once (by `main`) and passed down as data: every
//! variable, the working directory and the binary's own path. Nothing below `main` reads
//! the real environment, so a unit test can run a hook's decision from a map.

use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Default)]
pub struct Env {
    vars: BTreeMap<OsString, OsString>,
    cwd: Option<PathBuf>,
    exe: Option<PathBuf>,
}

impl Env {
    /// This process's environment, working directory and executable.
    pub fn capture() -> Env {
        Env {
            vars: std::env::vars_os().collect(),
            cwd: std::env::current_dir().ok(),
            exe: std::env::current_exe().ok(),
        }
    }

    /// An environment made of `vars` (tests, and what a child is given).
    pub fn from_vars<K: Into<OsString>, V: Into<OsString>>(vars: impl IntoIterator<Item = (K, V)>) -> Env {
        Env { vars: vars.into_iter().map(|(k, v)| (k.into(), v.into())).collect(), cwd: None, exe: None }
    }

    pub fn with_cwd(mut self, cwd: impl Into<PathBuf>) -> Env {
        self.cwd = Some(cwd.into());
        self
    }

    pub fn with_exe(mut self, exe: impl Into<PathBuf>) -> Env {
        self.exe = Some(exe.into());
        self
    }

    /// A variable's value, as the OS gave it.
    pub fn var_os(&self, name: &str) -> Option<&OsStr> {
        self.vars.get(OsStr::new(name)).map(OsString::as_os_str)
    }

    /// A variable's value when it is set, not empty and valid UTF-8.
    pub fn var(&self, name: &str) -> Option<&str> {
        self.var_os(name).and_then(OsStr::to_str).filter(|v| !v.is_empty())
    }

    /// Whether a variable is set to something.
    pub fn is_set(&self, name: &str) -> bool {
        self.var_os(name).is_some_and(|v| !v.is_empty())
    }

    /// The working directory the process started in.
    pub fn cwd(&self) -> Result<&Path, String> {
        self.cwd.as_deref().ok_or_else(|| "cannot tell the current directory".to_string())
    }

    /// The running binary's own path.
    pub fn exe(&self) -> Result<&Path, String> {
        self.exe.as_deref().ok_or_else(|| "cannot find pushgate's own path".to_string())
    }

    /// Every variable, for a child process given the same environment.
    pub fn vars(&self) -> impl Iterator<Item = (&OsStr, &OsStr)> {
        self.vars.iter().map(|(k, v)| (k.as_os_str(), v.as_os_str()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_and_non_utf8_values_are_not_text() {
        use std::os::unix::ffi::OsStringExt;
        let env = Env::from_vars([
            (OsString::from("EMPTY"), OsString::new()),
            ("BYTES".into(), OsString::from_vec(vec![0xff])),
            ("NAME".into(), "alice".into()),
        ]);
        assert_eq!(env.var("EMPTY"), None);
        assert!(!env.is_set("EMPTY"));
        assert_eq!(env.var("BYTES"), None);
        assert!(env.var_os("BYTES").is_some());
        assert_eq!(env.var("NAME"), Some("alice"));
        assert!(env.cwd().is_err());
    }
}
