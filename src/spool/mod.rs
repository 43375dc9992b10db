//! The spool: a durable, ordered queue of push events and, per connector (`post`
//! extension), of delivery jobs. Plain files, fsynced, renamed into place; `File::lock`
//! orders the writers. Any number of hooks and deliverers may work on one spool at once.
//!
//! ```text
//! spool/
//!   lock                      held briefly: counters
//!   fan-out.lock              held by the deliverer moving events into queues
//!   counters.json             the next global number, the last sequence of each repository
//!   incoming/N.journal        what post-receive knows at once (locked while it works)
//!   incoming/N.event          the event, ready to fan out (replaces the journal)
//!   connectors/C/lock         held by the one deliverer working connector C
//!   connectors/C/queue/N-S.json   jobs, oldest first by name
//!   connectors/C/dead/N-S.json    dead letters
//!   connectors/C/disabled     present after a 410, until `queue enable`
//!   log/YYYY-MM-DD.jsonl      delivery attempts
//! ```

pub mod deliver;
mod fanout;
pub mod file;
pub mod job;
pub mod journal;
pub mod log;
pub mod settle;
mod waker;

pub use file::{at, lock_file, remove_durably, try_lock_existing, write_durably};
pub use journal::Journal;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone)]
pub struct Spool {
    dir: PathBuf,
}

/// An exclusive lock, released when dropped (closing the file releases it).
pub struct Lock {
    _file: File,
}

impl Lock {
    fn new(file: File) -> Lock {
        Lock { _file: file }
    }
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Counters {
    next: u64,
    repos: BTreeMap<String, u64>,
}

/// One entry of `incoming/`, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Incoming {
    Event(u64),
    Journal(u64),
}

impl Spool {
    /// Open (creating when missing) the spool at `dir`.
    pub fn open(dir: &Path) -> io::Result<Spool> {
        for sub in ["incoming", "connectors", "log"] {
            file::create_private_dir(&dir.join(sub))?;
        }
        Ok(Spool { dir: dir.to_path_buf() })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The counters' lock: held for a moment by every post-receive.
    pub fn lock(&self) -> io::Result<Lock> {
        lock_file(&self.dir.join("lock"), true).map(|file| Lock { _file: file.expect("a blocking lock is taken") })
    }

    /// The fan-out lock: one deliverer at a time moves incoming events into the queues
    /// (a separate lock, so that post-receive never waits for a fan-out).
    pub fn lock_fan_out(&self) -> io::Result<Lock> {
        lock_file(&self.dir.join("fan-out.lock"), true)
            .map(|file| Lock { _file: file.expect("a blocking lock is taken") })
    }

    /// The next global number and the repository's next sequence, under the spool lock.
    pub fn allocate(&self, _held: &Lock, repo: &str) -> io::Result<(u64, u64)> {
        let path = self.dir.join("counters.json");
        let mut counters: Counters = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| at(&path, io::Error::other(e)))?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => Counters::default(),
            Err(e) => return Err(at(&path, e)),
        };
        // Never below what incoming/ already holds, even if counters.json was lost.
        let highest = self.incoming()?.iter().map(|i| i.number()).max().unwrap_or(0);
        let number = counters.next.max(highest + 1).max(1);
        counters.next = number + 1;
        let sequence = counters.repos.get(repo).copied().unwrap_or(0) + 1;
        counters.repos.insert(repo.to_string(), sequence);
        let bytes = serde_json::to_vec(&counters).map_err(io::Error::other)?;
        write_durably(&self.dir, "counters.json", &bytes, false).map(|_| (number, sequence))
    }

    /// Write the event for push `number` and drop its journal: the push is fully recorded.
    pub fn write_event(&self, number: u64, event: &impl Serialize) -> io::Result<()> {
        let bytes = serde_json::to_vec(event).map_err(io::Error::other)?;
        let incoming = self.dir.join("incoming");
        write_durably(&incoming, &format!("{number:020}.event"), &bytes, false)?;
        remove_durably(&incoming.join(format!("{number:020}.journal")))
    }

    /// `incoming/`, oldest first; a number with both files counts as its event.
    pub fn incoming(&self) -> io::Result<Vec<Incoming>> {
        let dir = self.dir.join("incoming");
        let mut found: BTreeMap<u64, Incoming> = BTreeMap::new();
        for entry in std::fs::read_dir(&dir).map_err(|e| at(&dir, e))? {
            let name = entry?.file_name();
            let Some(name) = name.to_str() else { continue };
            if let Some(n) = name.strip_suffix(".event").and_then(|n| n.parse().ok()) {
                found.insert(n, Incoming::Event(n));
            } else if let Some(n) = name.strip_suffix(".journal").and_then(|n| n.parse().ok()) {
                found.entry(n).or_insert(Incoming::Journal(n));
            }
        }
        Ok(found.into_values().collect())
    }

    pub fn incoming_path(&self, entry: &Incoming) -> PathBuf {
        let name = match entry {
            Incoming::Event(n) => format!("{n:020}.event"),
            Incoming::Journal(n) => format!("{n:020}.journal"),
        };
        self.dir.join("incoming").join(name)
    }

    pub fn connector_dir(&self, connector: &str) -> PathBuf {
        self.dir.join("connectors").join(connector)
    }

    /// The connectors that have a directory (configured now or not).
    pub fn connectors(&self) -> io::Result<Vec<String>> {
        let dir = self.dir.join("connectors");
        let mut names: Vec<String> = std::fs::read_dir(&dir)
            .map_err(|e| at(&dir, e))?
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter(|name| crate::config::extension::valid_connector(name))
            .collect();
        names.sort();
        Ok(names)
    }
}

impl Incoming {
    pub fn number(&self) -> u64 {
        match self {
            Incoming::Event(n) | Incoming::Journal(n) => *n,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_grow_globally_and_sequences_per_repository() {
        let tmp = tempfile::tempdir().unwrap();
        let spool = Spool::open(tmp.path()).unwrap();
        let lock = spool.lock().unwrap();
        assert_eq!(spool.allocate(&lock, "a").unwrap(), (1, 1));
        assert_eq!(spool.allocate(&lock, "b").unwrap(), (2, 1));
        assert_eq!(spool.allocate(&lock, "a").unwrap(), (3, 2));
    }

    #[test]
    fn a_lost_counter_file_never_reuses_a_number() {
        let tmp = tempfile::tempdir().unwrap();
        let spool = Spool::open(tmp.path()).unwrap();
        std::fs::write(tmp.path().join("incoming/00000000000000000041.event"), "{}").unwrap();
        let lock = spool.lock().unwrap();
        assert_eq!(spool.allocate(&lock, "a").unwrap().0, 42);
    }

    #[test]
    fn incoming_lists_in_order_and_an_event_wins_over_its_journal() {
        let tmp = tempfile::tempdir().unwrap();
        let spool = Spool::open(tmp.path()).unwrap();
        for name in [
            "00000000000000000002.journal",
            "00000000000000000001.event",
            "00000000000000000002.event",
            "00000000000000000003.journal",
            ".x.tmp",
        ] {
            std::fs::write(tmp.path().join("incoming").join(name), "{}").unwrap();
        }
        assert_eq!(spool.incoming().unwrap(), [Incoming::Event(1), Incoming::Event(2), Incoming::Journal(3)]);
    }
}
