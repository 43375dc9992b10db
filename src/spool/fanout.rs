//! Fan-out: incoming events become one job per connector that wants them, in push order,
//! each event numbered in its repository's sequence. A record whose writer died before
//! confirming it is resolved first: the changes that landed become its event.

use super::deliver::Deliverer;
use super::job::{Job, Shelf, delivery_id};
use super::{Incoming, Record};
use crate::config::extension::{About, Phase, wanting};
use crate::event::{EventKind, PullEvent, PushEvent, Spooled};
use crate::extension::body::{self, Sending};
use std::collections::BTreeMap;
use std::io;
use std::path::Path;

/// Sequences given in a fan-out pass and not yet in every job: kept, so a pass that
/// crashes gives the same events the same numbers when it runs again.
const PENDING: &str = "sequences.pending.json";

impl Deliverer<'_> {
    /// Move incoming events into connector queues, in push order. Stops at a record whose
    /// writer still runs: its confirmation may come, and later pushes wait behind it.
    pub fn fan_out(&self) -> io::Result<()> {
        let _lock = self.spool.lock_fan_out()?;
        self.sweep_leftovers();
        let entries = self.spool.incoming()?;
        let mut ready = Vec::new();
        for (i, entry) in entries.iter().enumerate() {
            if !entry.event {
                let Some(pid) = entry.record else { continue };
                let path = self.spool.record_path(entry.number, pid);
                let record = match self.spool.read_record(&path) {
                    Ok(record) => record,
                    Err(e) => {
                        self.put_aside(&path, &format!("unreadable record: {e}"));
                        continue;
                    }
                };
                if record.writer.alive() {
                    break;
                }
                match self.resolve(&record, &entries[i + 1..])? {
                    Some(true) => {}
                    Some(false) => continue,
                    // The repository cannot be read now: later pushes wait behind this one.
                    None => break,
                }
            }
            ready.push(*entry);
        }
        if ready.is_empty() {
            return Ok(());
        }
        // Sequences first, for the whole pass, durably; then the jobs.
        let mut sequences = self.spool.sequences()?;
        let mut given = self.pending_sequences();
        let mut events = Vec::with_capacity(ready.len());
        for entry in &ready {
            let path = self.spool.event_path(entry.number);
            let Ok(bytes) = std::fs::read(&path) else { continue };
            let mut spooled = match Spooled::from_json(&bytes) {
                Ok(spooled) => spooled,
                Err(e) => {
                    self.put_aside(&path, &format!("unreadable event: {e}"));
                    continue;
                }
            };
            let (repo, sequence) = match &mut spooled {
                Spooled::Push(event) => (event.repository.name.clone(), &mut event.sequence),
                Spooled::Pull(pull) => (pull.repository.name.clone(), &mut pull.sequence),
            };
            let number =
                *given.entry(entry.number).or_insert_with(|| sequence.unwrap_or_else(|| sequences.next(&repo)));
            sequences.given(&repo, number);
            *sequence = Some(number);
            events.push((*entry, spooled));
        }
        self.save_pending_sequences(&given)?;
        self.spool.save_sequences(&sequences)?;
        for (entry, spooled) in &events {
            match spooled {
                Spooled::Push(event) => self.queue_jobs(entry.number, event)?,
                Spooled::Pull(pull) => self.queue_pull_jobs(entry.number, pull)?,
            }
            super::remove_durably(&self.spool.event_path(entry.number))?;
            // A record left beside its event (a confirmation that crashed) is done with too.
            if let Some(pid) = entry.record {
                super::remove_durably(&self.spool.record_path(entry.number, pid))?;
            }
        }
        super::remove_durably(&self.spool.dir().join(PENDING))
    }

    /// Resolve a record whose writer is gone: the changes that landed (the refs show them,
    /// or a later push started from them) become its event; if none did, it is dropped.
    /// Whether an event was written; `None` when the repository cannot be read now.
    fn resolve(&self, record: &Record, later: &[Incoming]) -> io::Result<Option<bool>> {
        let mut landed = match (self.landed)(record) {
            Ok(landed) => landed,
            Err(e) => {
                self.say(&format!("cannot resolve push {} of {}: {e}", record.number, record.event.repository.name));
                return Ok(None);
            }
        };
        if landed.iter().any(|l| !l) {
            let started_from = self.later_starts(&record.event.repository.name, later);
            for (change, landed) in record.event.changes.iter().zip(landed.iter_mut()) {
                *landed = *landed || started_from.contains(&(change.name.clone(), change.after.clone()));
            }
        }
        let names: Vec<&str> =
            record.event.changes.iter().zip(&landed).filter(|(_, l)| **l).map(|(c, _)| c.name.as_str()).collect();
        self.spool.confirm(record, &names)?;
        let what = if names.is_empty() { "dropped: none of its updates landed" } else { "resolved from the refs" };
        self.say(&format!("push {} of {} {what}", record.number, record.event.repository.name));
        Ok(Some(!names.is_empty()))
    }

    /// `(ref, before)` of the changes later pushes to `repo` made: a ref a later push moved
    /// from X was at X, so a change that put it there landed.
    fn later_starts(&self, repo: &str, later: &[Incoming]) -> Vec<(String, String)> {
        let mut starts = Vec::new();
        for entry in later {
            let event = match (entry.event, entry.record) {
                (true, _) => std::fs::read(self.spool.event_path(entry.number))
                    .ok()
                    .and_then(|b| Spooled::from_json(&b).ok())
                    .and_then(|s| if let Spooled::Push(e) = s { Some(e) } else { None }),
                (false, Some(pid)) => {
                    self.spool.read_record(&self.spool.record_path(entry.number, pid)).ok().map(|r| r.event)
                }
                (false, None) => None,
            };
            if let Some(event) = event.filter(|e| e.repository.name == repo) {
                starts.extend(event.changes.into_iter().map(|c| (c.name, c.before)));
            }
        }
        starts
    }

    fn pending_sequences(&self) -> BTreeMap<u64, u64> {
        std::fs::read(self.spool.dir().join(PENDING))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default()
    }

    fn save_pending_sequences(&self, given: &BTreeMap<u64, u64>) -> io::Result<()> {
        let bytes = serde_json::to_vec(given).map_err(io::Error::other)?;
        super::write_durably(self.spool.dir(), PENDING, &bytes, false).map(|_| ())
    }

    /// Temporary files of writers that died half-way: removed.
    fn sweep_leftovers(&self) {
        let mut dirs = vec![self.spool.dir().join("incoming")];
        for connector in self.spool.connectors().unwrap_or_default() {
            for shelf in ["queue", "dead"] {
                dirs.push(self.spool.connector_dir(&connector).join(shelf));
            }
        }
        for dir in dirs {
            super::file::remove_dead_writers_leftovers(&dir);
        }
    }

    /// Keep a file that cannot be read out of the way, and say why in the log.
    fn put_aside(&self, path: &Path, why: &str) {
        let _ = self.spool.set_aside(path);
        self.say(&format!("set aside {}: {why}", path.display()));
    }

    fn queue_jobs(&self, number: u64, event: &PushEvent) -> io::Result<()> {
        let refs: Vec<&str> = event.changes.iter().map(|c| c.name.as_str()).collect();
        let repo_config = (self.repo_config)(Path::new(&event.repository.path));
        let config = repo_config.as_ref().unwrap_or(self.config);
        let about = About::Push { repo: &event.repository.name, refs: &refs };
        for ext in wanting(&config.extensions, Phase::Post, about) {
            let sending = Sending { server: &self.config.server, max_commits: config.max_commits };
            for body in body::for_push(ext, event, &sending).map_err(io::Error::other)? {
                let known = [Shelf::Queue, Shelf::Dead]
                    .iter()
                    .any(|s| self.spool.has_job(&ext.connector, *s, number, body.change));
                if known {
                    continue;
                }
                let job = Job {
                    connector: ext.connector.clone(),
                    number,
                    change: body.change,
                    event_id: event.id.clone(),
                    event: EventKind::Push,
                    delivery_id: delivery_id(&event.id, &ext.connector, body.change),
                    repo: event.repository.name.clone(),
                    git_dir: event.repository.path.clone().into(),
                    user: event.user.name.clone(),
                    sequence: event.sequence,
                    created: event.time.clone(),
                    attempts: 0,
                    next_attempt: 0,
                    last_error: None,
                    total_commits: body.total_commits,
                    body: body.json,
                };
                self.spool.put_job(&job, Shelf::Queue)?;
                crate::crashpoint::here("deliver:after-first-job");
            }
        }
        Ok(())
    }

    /// One job per interested connector, with the pull event as it is.
    fn queue_pull_jobs(&self, number: u64, pull: &PullEvent) -> io::Result<()> {
        let repo_config = (self.repo_config)(Path::new(&pull.repository.path));
        let config = repo_config.as_ref().unwrap_or(self.config);
        for ext in wanting(&config.extensions, Phase::Post, About::Pull { repo: &pull.repository.name }) {
            if [Shelf::Queue, Shelf::Dead].iter().any(|s| self.spool.has_job(&ext.connector, *s, number, 0)) {
                continue;
            }
            let body = body::for_pull(pull).map_err(io::Error::other)?;
            let job = Job {
                connector: ext.connector.clone(),
                number,
                change: body.change,
                event_id: pull.id.clone(),
                event: EventKind::Pull,
                delivery_id: delivery_id(&pull.id, &ext.connector, body.change),
                repo: pull.repository.name.clone(),
                git_dir: pull.repository.path.clone().into(),
                user: pull.user.name.clone(),
                sequence: pull.sequence,
                created: pull.time.clone(),
                attempts: 0,
                next_attempt: 0,
                last_error: None,
                total_commits: None,
                body: body.json,
            };
            self.spool.put_job(&job, Shelf::Queue)?;
        }
        Ok(())
    }
}
