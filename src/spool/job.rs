//! Jobs: one delivery of one body to one connector. A job's file name orders its queue
//! (`<push number>-<change>.json`); its id for people is `<connector>.<number>.<change>`.

use super::{Spool, at, remove_durably, write_durably};
use crate::event::EventKind;
use serde::{Deserialize, Serialize};
use std::io;
use std::path::PathBuf;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Job {
    pub connector: String,
    /// The push's global number: the queue's order.
    pub number: u64,
    /// The change index for `github` payloads (one per change), else 0.
    pub change: usize,
    pub event_id: String,
    /// The `X-Pushgate-Event` header.
    #[serde(default)]
    pub event: EventKind,
    /// The same on every attempt: receivers de-duplicate on it.
    pub delivery_id: String,
    pub repo: String,
    pub git_dir: PathBuf,
    pub user: String,
    pub sequence: Option<u64>,
    pub created: String,
    pub attempts: u32,
    /// Unix milliseconds before which the job is not tried again (0: now).
    pub next_attempt: u64,
    pub last_error: Option<String>,
    /// Present for `github` payloads.
    pub total_commits: Option<usize>,
    /// Exactly what is sent.
    pub body: serde_json::Value,
}

/// Where a job lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shelf {
    Queue,
    Dead,
}

impl Shelf {
    fn dir_name(self) -> &'static str {
        match self {
            Shelf::Queue => "queue",
            Shelf::Dead => "dead",
        }
    }
}

impl Job {
    pub fn file_name(&self) -> String {
        file_name(self.number, self.change)
    }

    pub fn id(&self) -> String {
        format!("{}.{}.{}", self.connector, self.number, self.change)
    }
}

fn file_name(number: u64, change: usize) -> String {
    format!("{number:020}-{change:06}.json")
}

/// `<connector>.<number>.<change>` split back into its parts.
pub fn parse_id(id: &str) -> Option<(String, u64, usize)> {
    let mut parts = id.rsplitn(3, '.');
    let digits = |text: &str| !text.is_empty() && text.len() <= 20 && text.bytes().all(|b| b.is_ascii_digit());
    let change = parts.next().filter(|t| digits(t))?.parse().ok()?;
    let number = parts.next().filter(|t| digits(t))?.parse().ok()?;
    let connector = parts.next().filter(|c| crate::config::extension::valid_connector(c))?;
    Some((connector.to_string(), number, change))
}

impl Spool {
    fn shelf_dir(&self, connector: &str, shelf: Shelf) -> PathBuf {
        self.connector_dir(connector).join(shelf.dir_name())
    }

    /// The file names on a shelf, oldest first.
    pub fn job_names(&self, connector: &str, shelf: Shelf) -> io::Result<Vec<String>> {
        let dir = self.shelf_dir(connector, shelf);
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(at(&dir, e)),
        };
        let mut names: Vec<String> = entries
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter(|n| n.ends_with(".json") && !n.starts_with('.'))
            .collect();
        names.sort();
        Ok(names)
    }

    pub fn read_job(&self, connector: &str, shelf: Shelf, name: &str) -> io::Result<Job> {
        let path = self.shelf_dir(connector, shelf).join(name);
        let bytes = std::fs::read(&path).map_err(|e| at(&path, e))?;
        serde_json::from_slice(&bytes).map_err(|e| at(&path, io::Error::other(e)))
    }

    /// The jobs on a shelf, oldest first (unreadable files are skipped).
    pub fn jobs(&self, connector: &str, shelf: Shelf) -> io::Result<Vec<Job>> {
        Ok(self.job_names(connector, shelf)?.iter().filter_map(|n| self.read_job(connector, shelf, n).ok()).collect())
    }

    /// Write (or rewrite) a job durably.
    pub fn put_job(&self, job: &Job, shelf: Shelf) -> io::Result<()> {
        let dir = self.shelf_dir(&job.connector, shelf);
        super::file::create_private_dir(&dir)?;
        let bytes = serde_json::to_vec(job).map_err(io::Error::other)?;
        write_durably(&dir, &job.file_name(), &bytes, false).map(|_| ())
    }

    pub fn has_job(&self, connector: &str, shelf: Shelf, number: u64, change: usize) -> bool {
        self.shelf_dir(connector, shelf).join(file_name(number, change)).exists()
    }

    pub fn remove_job(&self, job: &Job, shelf: Shelf) -> io::Result<()> {
        remove_durably(&self.shelf_dir(&job.connector, shelf).join(job.file_name()))
    }

    /// Move a job to the other shelf: written there first, so a crash leaves it on both
    /// (delivered at least once) rather than on neither.
    pub fn move_job(&self, job: &Job, from: Shelf, to: Shelf) -> io::Result<()> {
        self.put_job(job, to)?;
        self.remove_job(job, from)
    }

    /// Find a job by id on either shelf.
    pub fn find_job(&self, id: &str) -> Option<(Job, Shelf)> {
        let (connector, number, change) = parse_id(id)?;
        [Shelf::Queue, Shelf::Dead]
            .into_iter()
            .find_map(|shelf| self.read_job(&connector, shelf, &file_name(number, change)).ok().map(|job| (job, shelf)))
    }

    /// What a connector's queue looks like now, reading two jobs at most.
    pub fn summary(&self, connector: &str) -> io::Result<Summary> {
        let pending = self.job_names(connector, Shelf::Queue)?;
        let dead = self.job_names(connector, Shelf::Dead)?;
        let head = pending.first().and_then(|n| self.read_job(connector, Shelf::Queue, n).ok());
        let last_dead = dead.last().and_then(|n| self.read_job(connector, Shelf::Dead, n).ok());
        Ok(Summary {
            pending: pending.len(),
            dead: dead.len(),
            disabled: self.disabled_reason(connector),
            head,
            last_dead,
        })
    }

    pub fn disabled_reason(&self, connector: &str) -> Option<String> {
        std::fs::read_to_string(self.connector_dir(connector).join("disabled")).ok()
    }

    pub fn disable(&self, connector: &str, reason: &str) -> io::Result<()> {
        let dir = self.connector_dir(connector);
        super::file::create_private_dir(&dir)?;
        write_durably(&dir, "disabled", reason.as_bytes(), false).map(|_| ())
    }

    pub fn enable(&self, connector: &str) -> io::Result<bool> {
        let path = self.connector_dir(connector).join("disabled");
        let was = path.exists();
        remove_durably(&path)?;
        Ok(was)
    }

    /// The lock on a connector's job files, held for a moment by whoever changes them (the
    /// deliverer settling an attempt, `queue drop`, `queue retry`), so that a job dropped
    /// during a slow attempt stays dropped.
    pub fn lock_jobs(&self, connector: &str) -> io::Result<super::Lock> {
        let dir = self.connector_dir(connector);
        super::file::create_private_dir(&dir)?;
        let file = super::lock_file(&dir.join("jobs.lock"), true)?;
        Ok(super::Lock::new(file.expect("a blocking lock is taken")))
    }

    pub fn connector_lock_path(&self, connector: &str) -> io::Result<PathBuf> {
        let dir = self.connector_dir(connector);
        super::file::create_private_dir(&dir)?;
        Ok(dir.join("lock"))
    }
}

/// A connector's queue at a glance (`queue status`, `metrics`, `doctor`).
#[derive(Debug, Clone)]
pub struct Summary {
    pub pending: usize,
    pub dead: usize,
    /// Why it is disabled (a 410), if it is.
    pub disabled: Option<String>,
    /// The oldest job waiting.
    pub head: Option<Job>,
    /// The newest dead letter.
    pub last_dead: Option<Job>,
}

impl Summary {
    /// The last error a person should see: the waiting head's, else the newest dead one's.
    pub fn last_error(&self) -> Option<&str> {
        self.head
            .as_ref()
            .and_then(|j| j.last_error.as_deref())
            .or(self.last_dead.as_ref().and_then(|j| j.last_error.as_deref()))
    }

    /// How long the oldest waiting job has waited, in seconds.
    pub fn oldest_pending_age(&self, now: i64) -> Option<i64> {
        let created = crate::time::unix_seconds(&self.head.as_ref()?.created)?;
        Some((now - created).max(0))
    }
}

/// A name-derived UUID (SHA-256 based), so a job rebuilt after a crash keeps its delivery id.
pub fn delivery_id(event_id: &str, connector: &str, change: usize) -> String {
    crate::ids::name_based_id(&format!("{event_id}\0{connector}\0{change}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_even_with_dots_in_names() {
        assert_eq!(parse_id("ci.hooks.42.3"), Some(("ci.hooks".to_string(), 42, 3)));
        assert_eq!(parse_id("42.3"), None);
        assert_eq!(parse_id("ci.x.3"), None);
        assert_eq!(parse_id("../../x.1.2"), None);
        assert_eq!(parse_id("ci.+1.2"), None);
    }

    #[test]
    fn delivery_ids_are_stable_per_event_connector_and_change() {
        assert_eq!(delivery_id("e", "ci", 0), delivery_id("e", "ci", 0));
        assert_ne!(delivery_id("e", "ci", 0), delivery_id("e", "ci", 1));
        assert_ne!(delivery_id("e", "ci", 0), delivery_id("e", "chat", 0));
        assert_eq!(delivery_id("e", "ci", 0).len(), 36);
    }
}
