//! The whole push, for `install --per-ref`: pre-receive records git's update lines, and each
//! update hook (run by the same receive-pack, so with the same parent pid) reads them back.
//! post-receive forgets them.

use std::path::{Path, PathBuf};

/// Records older than this belong to a receive-pack that died: removed when seen.
const STALE_AFTER: std::time::Duration = std::time::Duration::from_secs(24 * 3600);

fn dir(git_dir: &Path) -> PathBuf {
    git_dir.join("pushgate")
}

/// The record of the push served by our parent (receive-pack).
fn path(git_dir: &Path) -> PathBuf {
    // SAFETY: getppid has no preconditions.
    let parent = unsafe { libc::getppid() };
    dir(git_dir).join(format!("push-{parent}"))
}

pub fn record(git_dir: &Path, input: &[u8]) -> Result<(), String> {
    let dir = dir(git_dir);
    crate::spool::file::create_private_dir(&dir)
        .map_err(|e| format!("cannot record the push in {}: {e}", dir.display()))?;
    remove_stale(&dir);
    let path = path(git_dir);
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("push");
    crate::spool::write_durably(&dir, name, input, false)
        .map(|_| ())
        .map_err(|e| format!("cannot record the push in {}: {e}", path.display()))
}

/// The recorded push, if pre-receive recorded one for this receive-pack.
pub fn recorded(git_dir: &Path) -> Option<Vec<crate::push::RefUpdate>> {
    let input = std::fs::read(path(git_dir)).ok()?;
    crate::push::parse_updates(&input).ok()
}

pub fn forget(git_dir: &Path) {
    let _ = std::fs::remove_file(path(git_dir));
}

fn remove_stale(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let old = entry.metadata().and_then(|m| m.modified()).ok().and_then(|t| t.elapsed().ok());
        if entry.file_name().to_string_lossy().starts_with("push-") && old.is_some_and(|age| age > STALE_AFTER) {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}
