//! Repositories on disk: whether a directory holds one (a bare Git repository, a Mercurial
//! one), which one a client names, and the repositories under `repos_root`. The one place
//! that says what counts as a repository, for the shell, the deliverer and `doctor` alike.

use crate::push::Vcs;
use crate::text::shown;
use std::path::{Component, Path, PathBuf};

/// How the names of the shell's work in progress begin (a repository being made or
/// removed): no path with a segment that begins so is served, or listed.
pub const WORK_PREFIX: &str = ".pushgate-";

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

/// A repository's own configuration file: in its git dir, or in `.hg/`.
pub fn own_config(path: &Path, vcs: Vcs) -> PathBuf {
    match vcs {
        Vcs::Git => path.join(crate::config::REPO_FILE),
        Vcs::Hg => path.join(".hg").join(crate::config::REPO_FILE),
    }
}

/// A repository under `root` from what the client named: `app.git`, `team/app`,
/// `/team/app.git`, or an absolute path inside `root`. Refuses `..`, escapes through
/// symlinks, and names that are not repositories of the requested kind.
pub fn resolve(root: &Path, asked: &str, vcs: Vcs) -> Result<(PathBuf, String), String> {
    let root = root.canonicalize().map_err(|e| format!("repos_root {}: {e}", root.display()))?;
    let refuse = |why: &str| Err(format!("{}: {why}", shown(asked)));
    let relative = match Path::new(asked).strip_prefix(&root) {
        Ok(inside) => inside.to_path_buf(),
        Err(_) => PathBuf::from(asked.trim_start_matches('/')),
    };
    if relative.as_os_str().is_empty() {
        return refuse("no repository named");
    }
    if relative.components().any(|c| !matches!(c, Component::Normal(_))) {
        return refuse("`..` and `.` are not allowed in repository paths");
    }
    if relative.components().any(|c| c.as_os_str().to_string_lossy().starts_with(WORK_PREFIX)) {
        return refuse("a repository being created or deleted is not served");
    }
    let text = relative.to_string_lossy();
    let base = text.trim_end_matches('/').to_string();
    let candidates: Vec<String> = if vcs == Vcs::Hg {
        vec![base.clone()]
    } else if base.ends_with(".git") {
        vec![base.clone(), base.trim_end_matches(".git").to_string()]
    } else {
        vec![format!("{base}.git"), base.clone()]
    };
    for candidate in candidates {
        let Ok(path) = root.join(&candidate).canonicalize() else { continue };
        if !path.starts_with(&root) {
            return refuse("it leads outside repos_root");
        }
        if is_repository(&path, vcs) {
            let name = path.strip_prefix(&root).unwrap_or(&path).to_string_lossy().into_owned();
            let name = name.strip_suffix(".git").map(str::to_string).unwrap_or(name);
            return Ok((path, name));
        }
    }
    refuse(if vcs == Vcs::Hg { "no such Mercurial repository" } else { "no such Git repository" })
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
    fn repositories_resolve_under_the_root_only() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().canonicalize().unwrap();
        for dir in ["team/app.git/objects", "hgrepo/.hg", "outside.git/objects"] {
            std::fs::create_dir_all(root.join(dir)).unwrap();
        }
        std::fs::write(root.join("team/app.git/HEAD"), "ref: refs/heads/main\n").unwrap();
        let (path, name) = resolve(&root, "team/app", Vcs::Git).unwrap();
        assert_eq!((path.clone(), name.as_str()), (root.join("team/app.git"), "team/app"));
        assert_eq!(resolve(&root, "/team/app.git", Vcs::Git).unwrap().0, path);
        assert_eq!(resolve(&root, &format!("{}/team/app.git", root.display()), Vcs::Git).unwrap().0, path);
        assert_eq!(resolve(&root, "hgrepo", Vcs::Hg).unwrap().1, "hgrepo");
        assert!(resolve(&root, "team/../team/app", Vcs::Git).is_err());
        assert!(resolve(&root, "team", Vcs::Git).is_err());
        assert!(resolve(&root, "", Vcs::Git).is_err());
        let elsewhere = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(elsewhere.path().join("x.git/objects")).unwrap();
        std::fs::write(elsewhere.path().join("x.git/HEAD"), "").unwrap();
        std::os::unix::fs::symlink(elsewhere.path().join("x.git"), root.join("link.git")).unwrap();
        assert!(resolve(&root, "link", Vcs::Git).unwrap_err().contains("outside repos_root"));
    }

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
