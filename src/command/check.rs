//! `pushgate check`: validate the configuration (and a repository's own file).

use crate::config::extension::{Kind, Secret};
use crate::config::{Config, REPO_FILE};
use crate::env::Env;
use crate::outcome::{Error, Outcome};
use serde_json::json;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Validate the configuration (and a repository's own file); print every error as
/// `FILE:LINE:COL: message` (on stderr, or as JSON on stdout with `--json`). A valid
/// configuration whose secrets cannot be found in this environment is still valid, with a
/// warning: the hooks and the deliverer may have them in theirs.
pub fn run(
    config_path: &Path,
    repo: Option<&Path>,
    json: bool,
    env: &Env,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<Outcome, Error> {
    let repo_file = repo.map(|r| git_dir_of(r).join(REPO_FILE));
    match Config::load(config_path, repo_file.as_deref()) {
        Ok(config) => {
            let (rules, extensions) = (config.rules.len(), config.extensions.len());
            let warnings = secret_warnings(&config, env);
            if json {
                let answer = json!({"ok": true, "rules": rules, "extensions": extensions, "warnings": warnings});
                writeln!(out, "{answer}")?;
            } else {
                writeln!(out, "pushgate: {} is valid ({rules} rules, {extensions} extensions)", config_path.display())?;
                for warning in &warnings {
                    let _ = writeln!(err, "pushgate: warning: {warning}");
                }
            }
            Ok(Outcome::Success)
        }
        Err(errors) => {
            if json {
                let list: Vec<_> = errors
                    .0
                    .iter()
                    .map(|e| json!({"file": e.file, "line": e.line, "col": e.col, "message": e.message}))
                    .collect();
                writeln!(out, "{}", json!({"ok": false, "errors": list}))?;
            } else {
                let _ = writeln!(err, "{errors}");
            }
            Err(Error::new(format!("configuration has {} error(s)", errors.0.len())))
        }
    }
}

/// A line for each extension whose secret this environment cannot resolve.
pub fn secret_warnings(config: &Config, env: &Env) -> Vec<String> {
    let mut warnings = Vec::new();
    for ext in &config.extensions {
        let Kind::Http { secret: Some(secret), .. } = &ext.kind else { continue };
        let Err(problem) = crate::extension::read_secret(secret, env) else { continue };
        let advice = match secret {
            Secret::Env(_) => {
                "here: the hooks and `pushgate deliver` need it in their environment (a secret_file readable by \
                 the hooks' user is simpler for a service)"
            }
            Secret::File(_) => "as this user: the hooks and `pushgate deliver` must be able to read it",
        };
        warnings.push(format!("extension {}: {problem} {advice}", ext.name));
    }
    warnings
}

/// A work tree's `.git`, or the directory itself (a bare repository).
pub fn git_dir_of(repo: &Path) -> PathBuf {
    let dot_git = repo.join(".git");
    if dot_git.is_dir() { dot_git } else { repo.to_path_buf() }
}
