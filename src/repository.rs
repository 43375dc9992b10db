//! Repositories on disk: whether a directory holds one (a bare Git repository, a Mercurial
//! one), and the repositories under `repos_root`. The one place that says what counts as a
//! repository, for the shell, the deliverer and `doctor` alike.

use crate::push::Vcs;
use std::path::{Path, PathBuf};

/// How deep under `repos_root` repositories are looked for (`users/alice/app.git` is 3).
pub const MAX_DEPTH: usize = 4;

/// Whether `dir` holds a repository of `vcs`: a Git dir (`HEAD` and `objects/`), or a
/// Mercurial root (`.hg/`).
pub fn is_repository(dir: &Path, vcs: Vcs) -> bool {
    match vcs {
        Vcs::Git => dir.join("HEAD").is_file() && dir.join("objects").is_dir(),
        Vcs::Hg => dir.join(".hg").is_dir(),
    }
}

/// Which kind of repository `dir` holds, if any.
pub fn vcs_of(dir: &Path) -> Option<Vcs> {
    [Vcs::Git, Vcs::Hg].into_iter().find(|vcs| is_repository(dir, *vcs))
}

/// The repositories under `root`, at most [`MAX_DEPTH`] levels down, sorted: neither inside
/// another repository, nor under a hidden directory, nor reached through a symlink.
pub fn under(root: &Path) -> Vec<(PathBuf, Vcs)> {
    let mut found = Vec::new();
    let mut dirs = vec![(root.to_path_buf(), 0)];
    while let Some((dir, depth)) = dirs.pop() {
        if let Some(vcs) = vcs_of(&dir) {
            found.push((dir, vcs));
            continue;
        }
        if depth == MAX_DEPTH {
            continue;
        }
        let Ok(entries) = std::fs::read_dir(&dir) else { continue };
        for entry in entries.flatten() {
            let hidden = entry.file_name().to_string_lossy().starts_with('.');
            if !hidden && entry.file_type().is_ok_and(|t| t.is_dir()) {
                dirs.push((entry.path(), depth + 1));
            }
        }
    }
    found.sort_by(|a, b| a.0.cmp(&b.0));
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repositories_are_found_under_the_root_only_where_they_are_served() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        for dir in
            ["team/app.git/objects", "users/alice/notes/.hg", ".hidden/x.git/objects", "team/app.git/sub.git/objects"]
        {
            std::fs::create_dir_all(root.join(dir)).unwrap();
        }
        for head in ["team/app.git/HEAD", ".hidden/x.git/HEAD", "team/app.git/sub.git/HEAD"] {
            std::fs::write(root.join(head), "ref: refs/heads/main\n").unwrap();
        }
        std::fs::create_dir_all(root.join("plain/objects")).unwrap();
        std::os::unix::fs::symlink(root.join("team"), root.join("link")).unwrap();
        assert_eq!(under(root), [(root.join("team/app.git"), Vcs::Git), (root.join("users/alice/notes"), Vcs::Hg)]);
        assert_eq!(vcs_of(&root.join("plain")), None);
    }
}
