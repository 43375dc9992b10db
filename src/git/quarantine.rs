//! Seeing the objects of a push that git keeps in quarantine until pre-receive succeeds.
//!
//! gix ignores `GIT_OBJECT_DIRECTORY` and `GIT_ALTERNATE_OBJECT_DIRECTORIES`, so we build a
//! throw-away objects directory whose `info/alternates` lists the quarantine and its
//! alternates, and read through it (see shared/notes/gix-in-hooks.md). It lives outside the
//! quarantine: git would otherwise migrate it into the repository.

use std::ffi::OsString;
use std::io::Write;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};

/// The quarantine as git describes it to the hooks.
#[derive(Debug, Clone, Default)]
pub struct Quarantine {
    object_dir: Option<PathBuf>,
    alternates: Vec<PathBuf>,
}

impl Quarantine {
    /// From the values of `GIT_OBJECT_DIRECTORY` and `GIT_ALTERNATE_OBJECT_DIRECTORIES`.
    pub fn from_env(object_dir: Option<OsString>, alternates: Option<OsString>) -> Result<Quarantine, String> {
        let alternates = match alternates {
            Some(list) => parse_alternates(list.as_bytes())?,
            None => Vec::new(),
        };
        Ok(Quarantine { object_dir: object_dir.filter(|d| !d.is_empty()).map(PathBuf::from), alternates })
    }

    /// The directory the pushed objects are in, when the push is in quarantine.
    pub fn object_dir(&self) -> Option<PathBuf> {
        self.object_dir.as_deref().map(absolute)
    }

    /// An overlay over `main_objects` when the objects live elsewhere; `None` when there is
    /// no quarantine (post-receive, the update hook, a manual run).
    pub(super) fn overlay(&self, main_objects: &Path, git_dir: &Path) -> std::io::Result<Option<Overlay>> {
        let Some(object_dir) = &self.object_dir else {
            return Ok(None);
        };
        let object_dir = absolute(object_dir);
        if same_dir(&object_dir, main_objects) {
            return Ok(None);
        }
        // Next to the repository (same disk, often a fast one), else in the temp dir.
        let builder = tempfile::Builder::new().prefix("pushgate-objects-").clone();
        let beside = git_dir.join("pushgate");
        let dir = std::fs::create_dir_all(&beside)
            .and_then(|()| builder.tempdir_in(&beside))
            .or_else(|_| builder.tempdir())?;
        std::fs::create_dir(dir.path().join("info"))?;
        let mut entries = vec![object_dir];
        entries.extend(self.alternates.iter().map(|a| absolute(a)));
        if !entries.iter().any(|e| same_dir(e, main_objects)) {
            entries.push(main_objects.to_path_buf());
        }
        let mut file = std::fs::File::create(dir.path().join("info/alternates"))?;
        for entry in &entries {
            file.write_all(&quote(entry.as_os_str().as_bytes()))?;
            file.write_all(b"\n")?;
        }
        Ok(Some(Overlay { dir }))
    }
}

/// The throw-away objects directory; removed when dropped.
pub(super) struct Overlay {
    dir: tempfile::TempDir,
}

impl Overlay {
    pub(super) fn objects_dir(&self) -> &Path {
        self.dir.path()
    }
}

fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

fn same_dir(a: &Path, b: &Path) -> bool {
    a == b || matches!((a.canonicalize(), b.canonicalize()), (Ok(a), Ok(b)) if a == b)
}

/// Git's `GIT_ALTERNATE_OBJECT_DIRECTORIES`: `:`-separated, an entry starting with `"` is
/// C-quoted (that is how git passes paths containing `:`).
fn parse_alternates(mut list: &[u8]) -> Result<Vec<PathBuf>, String> {
    let mut out = Vec::new();
    while !list.is_empty() {
        let entry: Vec<u8>;
        if list.starts_with(b"\"") {
            let (unquoted, consumed) = gix::quote::ansi_c::undo(list.into())
                .map_err(|e| format!("bad quoting in GIT_ALTERNATE_OBJECT_DIRECTORIES: {e}"))?;
            entry = unquoted.to_vec();
            list = &list[consumed..];
            match list.first() {
                None => {}
                Some(b':') => list = &list[1..],
                Some(_) => {
                    return Err("GIT_ALTERNATE_OBJECT_DIRECTORIES: text after a quoted entry".into());
                }
            }
        } else {
            let end = list.iter().position(|&b| b == b':').unwrap_or(list.len());
            entry = list[..end].to_vec();
            list = list.get(end + 1..).unwrap_or_default();
        }
        if !entry.is_empty() {
            out.push(PathBuf::from(OsString::from_vec(entry)));
        }
    }
    Ok(out)
}

/// An alternates-file entry, always C-quoted so that no path byte can break the format.
fn quote(path: &[u8]) -> Vec<u8> {
    let mut out = vec![b'"'];
    for &b in path {
        match b {
            b'"' => out.extend(b"\\\""),
            b'\\' => out.extend(b"\\\\"),
            b'\n' => out.extend(b"\\n"),
            b if !(0x20..0x7f).contains(&b) => out.extend(format!("\\{b:03o}").as_bytes()),
            b => out.push(b),
        }
    }
    out.push(b'"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alternates_split_on_colons_and_unquote() {
        let parsed = parse_alternates(b"/a/objects:\"/b:c/objects\":/d").unwrap();
        assert_eq!(parsed, [PathBuf::from("/a/objects"), PathBuf::from("/b:c/objects"), PathBuf::from("/d")]);
        assert!(parse_alternates(b"\"/x\"y").is_err());
        assert!(parse_alternates(b"").unwrap().is_empty());
    }

    #[test]
    fn quoting_round_trips_through_gix() {
        let path = b"/tmp/we\"ird\\ path\n\xff:x";
        let quoted = quote(path);
        let (back, _) = gix::quote::ansi_c::undo(quoted.as_slice().into()).unwrap();
        assert_eq!(back.as_ref(), &path[..]);
    }
}
