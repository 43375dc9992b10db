//! The spool: a durable, ordered outbox of push events and, per connector (`post`
//! extension), of delivery jobs. Plain files, fsynced, renamed into place; `File::lock`
//! orders the writers. Any number of hooks and deliverers may work on one spool at once.
//!
//! ```text
//! spool/
//!   lock                      held briefly: the next number
//!   number                    the last number given out (numbers also follow the clock)
//!   fan-out.lock              held by the deliverer moving events into queues
//!   watch.lock                held by a running `deliver --watch` (hooks wake it, not start one)
//!   sequences.json            the last sequence of each repository (given at fan-out)
//!   incoming/N.PID.record     what the gate accepted, written before the push lands
//!   incoming/N.event          an event to fan out (a confirmed record, or a pull)
//!   connectors/C/lock         held by the one deliverer working connector C
//!   connectors/C/jobs.lock    held for a moment by whoever changes C's job files
//!   connectors/C/queue/N-S.json   jobs, oldest first by name
//!   connectors/C/dead/N-S.json    dead letters
//!   connectors/C/disabled     present after a 410, until `queue enable`
//!   aside/                    files that could not be read, kept for a look
//!   log/YYYY-MM-DD.jsonl      delivery attempts
//! ```

pub mod deliver;
mod fanout;
pub mod file;
pub mod job;
pub mod log;
pub mod record;
mod sequence;
pub mod settle;
mod waker;

pub use file::{at, lock_file, remove_durably, try_lock_existing, write_durably};
pub use record::{Record, Writer};
use serde::Serialize;
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

/// One number of `incoming/`: its event, its record (and the pid of the record's writer),
/// or both (a confirmation that crashed before removing the record: the event counts).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Incoming {
    pub number: u64,
    pub event: bool,
    pub record: Option<u32>,
}

impl Spool {
    /// Open (creating when missing) the spool at `dir`: for the hooks and deliverers that
    /// write to it.
    pub fn open(dir: &Path) -> io::Result<Spool> {
        for sub in ["incoming", "connectors", "log"] {
            file::create_private_dir(&dir.join(sub))?;
        }
        Ok(Spool { dir: dir.to_path_buf() })
    }

    /// The spool at `dir`, as it is: for the admin commands (`queue ...`, `log`, ...),
    /// which never create it (made by root, it would lock the hooks out). A missing spool
    /// reads as an empty one.
    pub fn at(dir: &Path) -> Spool {
        Spool { dir: dir.to_path_buf() }
    }

    /// Whether the spool has been made.
    pub fn exists(&self) -> bool {
        self.dir.join("incoming").is_dir()
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The numbers' lock: held for a moment by every hook that records.
    pub fn lock(&self) -> io::Result<Lock> {
        lock_file(&self.dir.join("lock"), true).map(|file| Lock::new(file.expect("a blocking lock is taken")))
    }

    /// The fan-out lock: one deliverer at a time moves incoming events into the queues
    /// (a separate lock, so that hooks never wait for a fan-out).
    pub fn lock_fan_out(&self) -> io::Result<Lock> {
        lock_file(&self.dir.join("fan-out.lock"), true).map(|file| Lock::new(file.expect("a blocking lock is taken")))
    }

    /// The next global number, under the spool lock: above the last one given, above
    /// anything in `incoming/`, and at least the clock's microseconds, so that numbers keep
    /// growing even when the `number` file is lost or damaged (queues sort by number).
    pub fn next_number(&self, _held: &Lock) -> io::Result<u64> {
        let path = self.dir.join("number");
        let last: u64 = std::fs::read_to_string(&path).ok().and_then(|t| t.trim().parse().ok()).unwrap_or(0);
        let highest = self.incoming()?.iter().map(|i| i.number).max().unwrap_or(0);
        let micros = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX));
        let number = last.max(highest).saturating_add(1).max(micros);
        // Not fsynced: after a crash, incoming/ and the clock keep the order.
        file::write_private(&path, number.to_string().as_bytes())?;
        Ok(number)
    }

    /// Write the event for number `number` (a confirmed record, or a pull).
    pub fn write_event(&self, number: u64, event: &impl Serialize) -> io::Result<()> {
        let bytes = serde_json::to_vec(event).map_err(io::Error::other)?;
        write_durably(&self.dir.join("incoming"), &format!("{number:020}.event"), &bytes, false).map(|_| ())
    }

    /// `incoming/`, oldest first.
    pub fn incoming(&self) -> io::Result<Vec<Incoming>> {
        let dir = self.dir.join("incoming");
        let mut found: BTreeMap<u64, Incoming> = BTreeMap::new();
        let blank = |number| Incoming { number, event: false, record: None };
        for entry in std::fs::read_dir(&dir).map_err(|e| at(&dir, e))? {
            let name = entry?.file_name();
            let Some(name) = name.to_str() else { continue };
            if let Some(n) = name.strip_suffix(".event").and_then(|n| n.parse().ok()) {
                found.entry(n).or_insert_with(|| blank(n)).event = true;
            } else if let Some((n, pid)) = name.strip_suffix(".record").and_then(|rest| rest.split_once('.'))
                && let (Ok(n), Ok(pid)) = (n.parse(), pid.parse())
            {
                found.entry(n).or_insert_with(|| blank(n)).record = Some(pid);
            }
        }
        Ok(found.into_values().collect())
    }

    /// Where number `number`'s event is (or would be).
    pub fn event_path(&self, number: u64) -> PathBuf {
        self.dir.join("incoming").join(format!("{number:020}.event"))
    }

    pub fn connector_dir(&self, connector: &str) -> PathBuf {
        self.dir.join("connectors").join(connector)
    }

    /// The connectors that have a directory (configured now or not).
    pub fn connectors(&self) -> io::Result<Vec<String>> {
        let dir = self.dir.join("connectors");
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(at(&dir, e)),
        };
        let mut names: Vec<String> = entries
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter(|name| crate::config::extension::valid_connector(name))
            .collect();
        names.sort();
        Ok(names)
    }

    /// Put a file that cannot be read out of the way, into `aside/`, keeping its name.
    pub fn set_aside(&self, path: &Path) -> io::Result<PathBuf> {
        let aside = self.dir.join("aside");
        file::create_private_dir(&aside)?;
        let stem = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let parent = path.parent().and_then(Path::file_name).map(|n| n.to_string_lossy().into_owned());
        let target = aside.join(format!("{}{stem}", parent.map(|p| format!("{p}-")).unwrap_or_default()));
        std::fs::rename(path, &target).map_err(|e| at(path, e))?;
        Ok(target)
    }

    /// The files set aside, by name.
    pub fn aside(&self) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(self.dir.join("aside"))
            .into_iter()
            .flatten()
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .collect();
        names.sort();
        names
    }

    /// Whether a `deliver --watch` runs on this spool (it holds `watch.lock`).
    pub fn watched(&self) -> bool {
        matches!(try_lock_existing(&self.dir.join("watch.lock")), Ok(None)) && self.dir.join("watch.lock").exists()
    }

    /// Taken by `deliver --watch` for as long as it runs.
    pub fn lock_watch(&self) -> io::Result<Option<Lock>> {
        Ok(lock_file(&self.dir.join("watch.lock"), false)?.map(Lock::new))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_always_grow_even_without_their_file() {
        let tmp = tempfile::tempdir().unwrap();
        let spool = Spool::open(tmp.path()).unwrap();
        let lock = spool.lock().unwrap();
        let first = spool.next_number(&lock).unwrap();
        assert!(spool.next_number(&lock).unwrap() > first);
        std::fs::write(tmp.path().join("number"), "garbage").unwrap();
        let far = u64::MAX / 2;
        std::fs::write(tmp.path().join("incoming").join(format!("{far:020}.event")), "{}").unwrap();
        assert_eq!(spool.next_number(&lock).unwrap(), far + 1);
    }

    #[test]
    fn incoming_lists_in_order_and_an_event_wins_over_its_record() {
        let tmp = tempfile::tempdir().unwrap();
        let spool = Spool::open(tmp.path()).unwrap();
        for name in [
            "00000000000000000002.77.record",
            "00000000000000000001.event",
            "00000000000000000002.event",
            "00000000000000000003.88.record",
            ".x.tmp",
            "00000000000000000004.x.record",
        ] {
            std::fs::write(tmp.path().join("incoming").join(name), "{}").unwrap();
        }
        let incoming = |number, event, record| Incoming { number, event, record };
        assert_eq!(
            spool.incoming().unwrap(),
            [incoming(1, true, None), incoming(2, true, Some(77)), incoming(3, false, Some(88))]
        );
    }

    #[test]
    fn looking_never_creates_a_spool() {
        let tmp = tempfile::tempdir().unwrap();
        let spool = Spool::at(&tmp.path().join("spool"));
        assert!(!spool.exists());
        assert!(spool.connectors().unwrap().is_empty());
        assert!(spool.attempts().unwrap().is_empty());
        assert!(!tmp.path().join("spool").exists());
    }
}
