//! `pushgate.inventory/1`: every repository under `repos_root`, as periodic extensions are
//! sent it (SPEC §10): name, path, vcs, branch and tag heads, size on disk, last push.

use crate::config::Config;
use crate::git::{GitRepo, Quarantine};
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

pub const SCHEMA: &str = "pushgate.inventory/1";

#[derive(Debug, Clone, Serialize)]
pub struct Inventory {
    pub schema: &'static str,
    pub id: String,
    pub time: String,
    pub repositories: Vec<Repository>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Repository {
    pub name: String,
    pub path: String,
    pub vcs: crate::push::Vcs,
    /// Branch name (without `refs/heads/`; Mercurial: named branch) -> head id.
    pub branches: BTreeMap<String, String>,
    /// Tag name (without `refs/tags/`) -> what it points at.
    pub tags: BTreeMap<String, String>,
    /// Mercurial bookmarks (empty for Git).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub bookmarks: BTreeMap<String, String>,
    pub size_bytes: u64,
    /// When its refs last changed (RFC 3339), if that can be told.
    pub last_push: Option<String>,
    /// What could not be read (the rest of the entry stands).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The inventory of `config`'s `repos_root` (empty without one).
pub fn take(config: &Config) -> Inventory {
    let root = config.repos_root.as_deref();
    let repositories = root
        .map(crate::repository::under)
        .unwrap_or_default()
        .into_iter()
        .map(|(path, vcs)| describe(&path, vcs, root))
        .collect();
    Inventory { schema: SCHEMA, id: crate::ids::new_id(), time: crate::time::now_rfc3339(), repositories }
}

fn describe(path: &Path, vcs: crate::push::Vcs, root: Option<&Path>) -> Repository {
    let hg = vcs == crate::push::Vcs::Hg;
    let mut repo = Repository {
        name: crate::config::repo_name(path, root),
        path: path.to_string_lossy().into_owned(),
        vcs,
        branches: BTreeMap::new(),
        tags: BTreeMap::new(),
        bookmarks: BTreeMap::new(),
        size_bytes: size_of(path),
        last_push: None,
        error: None,
    };
    let read = if hg { read_hg(path, &mut repo) } else { read_git(path, &mut repo) };
    repo.error = read.err();
    repo
}

fn read_git(path: &Path, repo: &mut Repository) -> Result<(), String> {
    let git = GitRepo::open(path, &Quarantine::default()).map_err(|e| e.to_string())?;
    for (name, id) in git.refs().map_err(|e| e.to_string())?.direct {
        if let Some(branch) = name.strip_prefix("refs/heads/") {
            repo.branches.insert(branch.to_string(), id.to_string());
        } else if let Some(tag) = name.strip_prefix("refs/tags/") {
            repo.tags.insert(tag.to_string(), id.to_string());
        }
    }
    repo.last_push = newest_mtime(&[path.join("packed-refs"), path.join("refs")]);
    Ok(())
}

/// Mercurial through `hg` itself (plain mode, no user configuration): not on any push's path.
fn read_hg(path: &Path, repo: &mut Repository) -> Result<(), String> {
    let hg = |args: &[&str]| -> Result<String, String> {
        let out = std::process::Command::new("hg")
            .args(["--cwd"])
            .arg(path)
            .args(args)
            .env("HGPLAIN", "1")
            .env("HGRCPATH", "")
            .stdin(std::process::Stdio::null())
            .output()
            .map_err(|e| format!("cannot run hg: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "hg {}: {}",
                args.join(" "),
                crate::text::one_line(&String::from_utf8_lossy(&out.stderr), None)
            ));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    };
    let pairs = |text: String| -> Vec<(String, String)> {
        text.lines().filter_map(|l| l.split_once('\t')).map(|(a, b)| (a.to_string(), b.to_string())).collect()
    };
    for (branch, node) in pairs(hg(&["log", "-r", "head() and not closed()", "-T", "{branch}\t{node}\n"])?) {
        repo.branches.insert(branch, node);
    }
    for (tag, node) in pairs(hg(&["tags", "-T", "{tag}\t{node}\n"])?) {
        if tag != "tip" {
            repo.tags.insert(tag, node);
        }
    }
    for (bookmark, node) in pairs(hg(&["bookmarks", "-T", "{bookmark}\t{node}\n"])?) {
        repo.bookmarks.insert(bookmark, node);
    }
    let store = path.join(".hg").join("store");
    repo.last_push = newest_mtime(&[store.join("00changelog.i"), path.join(".hg").join("bookmarks")]);
    Ok(())
}

/// The newest modification time among `paths` (directories: their entries, one level).
fn newest_mtime(paths: &[PathBuf]) -> Option<String> {
    let mut newest = None;
    let mut consider = |path: &Path| {
        if let Ok(modified) = std::fs::metadata(path).and_then(|m| m.modified()) {
            let secs = modified.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64);
            newest = newest.max(Some(secs));
        }
    };
    for path in paths {
        consider(path);
        if path.is_dir() {
            let mut dirs = vec![path.clone()];
            while let Some(dir) = dirs.pop() {
                for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
                    if entry.file_type().is_ok_and(|t| t.is_dir()) {
                        dirs.push(entry.path());
                    }
                    consider(&entry.path());
                }
            }
        }
    }
    newest.map(|secs| crate::time::rfc3339(secs, 0))
}

/// Bytes the repository's files take (symbolic links not followed).
fn size_of(path: &Path) -> u64 {
    let mut total = 0;
    let mut dirs = vec![path.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let Ok(meta) = entry.metadata() else { continue };
            if meta.is_dir() {
                dirs.push(entry.path());
            } else if meta.is_file() {
                total += meta.len();
            }
        }
    }
    total
}
