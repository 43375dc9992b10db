//! The audit trail: one JSON line per decision, appended under an exclusive lock so that
//! concurrent pushes never interleave their lines.

use serde::Serialize;
use std::io::Write;
use std::path::Path;

#[derive(Debug, Serialize)]
pub struct Entry<'a> {
    pub time: String,
    pub hook: &'a str,
    pub user: &'a str,
    /// How the pusher came: `ssh`, `http` or `local`.
    pub via: &'static str,
    pub repo: &'a str,
    pub updates: Vec<Update<'a>>,
    pub verdict: &'static str,
    pub reasons: &'a [String],
    pub warnings: &'a [String],
}

#[derive(Debug, Serialize)]
pub struct Update<'a> {
    #[serde(rename = "ref")]
    pub name: &'a str,
    pub old: String,
    pub new: String,
    pub action: &'static str,
}

pub fn append(file: &Path, entry: &Entry) -> std::io::Result<()> {
    let mut line = crate::text::json(entry).into_bytes();
    line.push(b'\n');
    if let Some(dir) = file.parent().filter(|d| !d.as_os_str().is_empty()) {
        crate::spool::file::create_private_dir(dir)?;
    }
    let mut handle = crate::spool::file::open_private_append(file)?;
    handle.lock()?;
    let written = handle.write_all(&line).and_then(|()| handle.sync_data());
    handle.unlock()?;
    written
}
