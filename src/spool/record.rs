//! Records: what the gate accepted, written to the spool before it lets a push land. The
//! hook that runs after the push (post-receive, hg's txnclose) confirms a record into an
//! event with the changes that landed; a record whose confirmation never came is resolved
//! by a deliverer once its writer (the receive-pack or hg process that served the push) is
//! gone. So every accepted push that lands has its event, whatever dies when.

use super::{Spool, remove_durably, write_durably};
use crate::event::PushEvent;
use crate::push::Vcs;
use serde::{Deserialize, Serialize};
use std::io;
use std::path::{Path, PathBuf};

/// The push as the gate accepted it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    pub number: u64,
    /// The process that served the push: while it lives, its confirmation may still come.
    pub writer: Writer,
    pub vcs: Vcs,
    /// The repository's directory (git dir, or hg root).
    pub dir: PathBuf,
    /// Every accepted change, with what the gate read; no sequence yet.
    pub event: PushEvent,
}

/// A process, told apart from a later one with the same pid by its start time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Writer {
    pub pid: u32,
    /// Clock ticks since boot when it started (`/proc/<pid>/stat`, field 22).
    pub start: u64,
}

impl Writer {
    /// The process `pid`, if it runs.
    pub fn of(pid: u32) -> Option<Writer> {
        let (start, state) = proc_stat(pid)?;
        (state != 'Z' && state != 'X').then_some(Writer { pid, start })
    }

    /// Our parent: the receive-pack (or hg) that runs the hook.
    pub fn parent() -> Option<Writer> {
        // SAFETY: getppid has no preconditions.
        let pid = unsafe { libc::getppid() };
        Writer::of(u32::try_from(pid).ok()?)
    }

    /// Whether this very process still runs (not one that reused its pid).
    pub fn alive(&self) -> bool {
        Writer::of(self.pid).is_some_and(|now| now.start == self.start)
    }
}

/// The start time and state of a process, from `/proc/<pid>/stat`.
fn proc_stat(pid: u32) -> Option<(u64, char)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may hold anything: fields follow the last `)`.
    let rest = &text[text.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    let state = fields.next()?.chars().next()?;
    // Field 3 is the state; the start time is field 22, so 19 further fields on.
    let start = fields.nth(18)?.parse().ok()?;
    Some((start, state))
}

/// A record's file name: the number orders it, the writer's pid finds it.
fn record_name(number: u64, pid: u32) -> String {
    format!("{number:020}.{pid}.record")
}

impl Spool {
    /// Write `record` durably: from here on the push's event cannot be lost.
    pub fn write_record(&self, record: &Record) -> io::Result<()> {
        let bytes = serde_json::to_vec(record).map_err(io::Error::other)?;
        let name = record_name(record.number, record.writer.pid);
        write_durably(&self.dir().join("incoming"), &name, &bytes, false).map(|_| ())
    }

    /// The path of record `number` of `pid`.
    pub fn record_path(&self, number: u64, pid: u32) -> PathBuf {
        self.dir().join("incoming").join(record_name(number, pid))
    }

    pub fn read_record(&self, path: &Path) -> io::Result<Record> {
        let bytes = std::fs::read(path).map_err(|e| super::at(path, e))?;
        serde_json::from_slice(&bytes).map_err(|e| super::at(path, io::Error::other(e)))
    }

    /// Confirm a record: its event, with only the changes of refs in `landed` (the refs git
    /// or hg says moved), becomes an event to deliver; nothing when none landed.
    pub fn confirm(&self, record: &Record, landed: &[&str]) -> io::Result<()> {
        let mut event = record.event.clone();
        event.changes.retain(|c| landed.contains(&c.name.as_str()));
        if !event.changes.is_empty() {
            self.write_event(record.number, &event)?;
        }
        remove_durably(&self.record_path(record.number, record.writer.pid))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_is_alive_and_a_made_up_one_is_not() {
        let me = Writer::of(std::process::id()).unwrap();
        assert!(me.alive());
        assert!(!Writer { start: me.start + 1, ..me }.alive(), "a reused pid is another process");
        assert!(Writer::of(u32::MAX).is_none());
        assert!(Writer::parent().is_some());
    }
}
