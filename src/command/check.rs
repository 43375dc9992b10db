//! `pushgate check`: validate the configuration (and a repository's own file).

use crate::config::{Config, REPO_FILE};
use crate::outcome::{Error, Outcome};
use serde_json::json;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Validate the configuration (and a repository's own file); print every error as
/// `FILE:LINE:COL: message` (on stderr, or as JSON on stdout with `--json`).
pub fn run(
    config_path: &Path,
    repo: Option<&Path>,
    json: bool,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<Outcome, Error> {
    let repo_file = repo.map(|r| git_dir_of(r).join(REPO_FILE));
    match Config::load(config_path, repo_file.as_deref()) {
        Ok(config) => {
            let (rules, extensions) = (config.rules.len(), config.extensions.len());
            if json {
                writeln!(out, "{}", json!({"ok": true, "rules": rules, "extensions": extensions}))?;
            } else {
                writeln!(out, "pushgate: {} is valid ({rules} rules, {extensions} extensions)", config_path.display())?;
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

/// A work tree's `.git`, or the directory itself (a bare repository).
pub fn git_dir_of(repo: &Path) -> PathBuf {
    let dot_git = repo.join(".git");
    if dot_git.is_dir() { dot_git } else { repo.to_path_buf() }
}
