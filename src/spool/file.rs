//! Files that survive crashes: durable writes (temporary file, fsync, rename, fsync of the
//! directory), durable removals, and exclusive locks (`File::lock`) that die with their
//! holder.

use std::fs::File;
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::Path;

/// Files private to the user the hooks run as: events carry commit messages and paths.
pub const FILE_MODE: u32 = 0o600;
pub const DIR_MODE: u32 = 0o700;

/// Create `dir` and its missing parents, private (`0700`).
pub fn create_private_dir(dir: &Path) -> io::Result<()> {
    std::fs::DirBuilder::new().recursive(true).mode(DIR_MODE).create(dir).map_err(|e| at(dir, e))
}

/// Open `path` for appending, created private (`0600`) when missing.
pub fn open_private_append(path: &Path) -> io::Result<File> {
    std::fs::OpenOptions::new().create(true).append(true).mode(FILE_MODE).open(path).map_err(|e| at(path, e))
}

/// Write `bytes` to `path` in place (not durably), the file private (`0600`) even when
/// it already was there with other modes.
pub fn write_private(path: &Path, bytes: &[u8]) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .mode(FILE_MODE)
        .open(path)
        .map_err(|e| at(path, e))?;
    file.set_permissions(std::fs::Permissions::from_mode(FILE_MODE)).map_err(|e| at(path, e))?;
    file.write_all(bytes).map_err(|e| at(path, e))
}

/// Open `path` (creating it) and lock it exclusively: waiting when `wait`, else `None` when
/// another process holds it.
pub fn lock_file(path: &Path, wait: bool) -> io::Result<Option<File>> {
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(FILE_MODE)
        .open(path)
        .map_err(|e| at(path, e))?;
    take_lock(file, path, wait)
}

/// Lock an existing file without waiting: `Ok(None)` when another process holds it or when
/// it is gone (never creates it).
pub fn try_lock_existing(path: &Path) -> io::Result<Option<File>> {
    match File::open(path) {
        Ok(file) => take_lock(file, path, false),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(at(path, e)),
    }
}

fn take_lock(file: File, path: &Path, wait: bool) -> io::Result<Option<File>> {
    if wait {
        file.lock().map_err(|e| at(path, e))?;
        return Ok(Some(file));
    }
    match file.try_lock() {
        Ok(()) => Ok(Some(file)),
        Err(std::fs::TryLockError::WouldBlock) => Ok(None),
        Err(std::fs::TryLockError::Error(e)) => Err(at(path, e)),
    }
}

/// Remove the temporary files in `dir` whose writer died before renaming them into place
/// (`.<name>.<pid>.tmp`, see [`write_durably`]).
pub fn remove_dead_writers_leftovers(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let Some(rest) = name.strip_prefix('.').and_then(|n| n.strip_suffix(".tmp")) else { continue };
        let pid = rest.rsplit('.').next().and_then(|p| p.parse::<u32>().ok());
        if pid.is_some_and(|pid| super::Writer::of(pid).is_none()) {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// Write `name` in `dir` so that after a crash it is either absent or complete: a
/// temporary file, fsync, rename, fsync of the directory. With `keep_locked`, the file is
/// locked before it appears and returned still locked.
pub fn write_durably(dir: &Path, name: &str, bytes: &[u8], keep_locked: bool) -> io::Result<Option<File>> {
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let target = dir.join(name);
    let result = (|| {
        let mut file =
            std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(FILE_MODE).open(&tmp)?;
        if keep_locked {
            file.lock()?;
        }
        file.write_all(bytes)?;
        file.sync_data()?;
        std::fs::rename(&tmp, &target)?;
        File::open(dir)?.sync_all()?;
        Ok(keep_locked.then_some(file))
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.map_err(|e| at(&target, e))
}

/// Remove `path` (absent is fine) and make that durable.
pub fn remove_durably(path: &Path) -> io::Result<()> {
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(at(path, e)),
    }
    let dir = path.parent().unwrap_or(Path::new("."));
    File::open(dir).and_then(|d| d.sync_all()).map_err(|e| at(dir, e))
}

/// An I/O error that names its path.
pub fn at(path: &Path, e: io::Error) -> io::Error {
    io::Error::new(e.kind(), format!("{}: {e}", path.display()))
}
