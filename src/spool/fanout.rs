//! Fan-out: incoming events become one job per connector that wants them, in push order,
//! each event numbered in its repository's sequence. A record whose writer died before
//! confirming it is resolved first: the changes that landed become its event.

use super::deliver::{Deliverer, Level};
use super::job::{Job, Shelf, delivery_id};
use super::{Incoming, Pending, Record, RepositoryRecord};
use crate::config::extension::{About, Extension, Phase, wanting};
use crate::event::{EventKind, Lifecycle, PullEvent, PushEvent, RepositoryEvent, Spooled};
use crate::extension::body::{self, Body, Dialect, Sending};
use crate::push::Action;
use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};

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
                let pending = match self.spool.read_pending(&path) {
                    Ok(pending) => pending,
                    Err(e) => {
                        self.put_aside(&path, &format!("unreadable record: {e}"));
                        continue;
                    }
                };
                if pending.writer().alive() {
                    break;
                }
                let resolved = match &pending {
                    Pending::Push(record) => self.resolve(record, &entries[i + 1..])?,
                    Pending::Repository(record) => Some(self.resolve_repository(record, &entries[i + 1..])?),
                };
                match resolved {
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
            if let Spooled::Push(event) = &mut spooled
                && let Err(e) = (self.complete)(event)
            {
                self.say(
                    Level::Warn,
                    None,
                    &format!("push {} of {}: files of a head left out: {e}", entry.number, event.repository.name),
                );
            }
            let (repo, sequence) = spooled.sequence_of();
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
                Spooled::Repository(event) => self.queue_repository_jobs(entry.number, event)?,
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
                let what = format!("cannot resolve push {} of {}: {e}", record.number, record.event.repository.name);
                self.say(Level::Warn, None, &what);
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
        self.say(Level::Info, None, &format!("push {} of {} {what}", record.number, record.event.repository.name));
        Ok(Some(!names.is_empty()))
    }

    /// Resolve a repository record whose shell is gone: its event if what it records is
    /// done (the repository is there, or gone, or a later deletion or creation of it says
    /// it was), else nothing. Whether an event was written.
    fn resolve_repository(&self, record: &RepositoryRecord, later: &[Incoming]) -> io::Result<bool> {
        let path = &record.event.repository.path;
        // Only what is there can be deleted, and only what is not, created.
        let undone = match record.event.action {
            Lifecycle::Created => Lifecycle::Deleted,
            Lifecycle::Deleted => Lifecycle::Created,
        };
        let done = record.done() || self.later_repository_actions(later).contains(&(undone, path.clone()));
        self.spool.settle_repository_record(record, done)?;
        let (name, action) = (&record.event.repository.name, record.event.action.as_str());
        let what = if done { "resolved from the disk" } else { "dropped: it did not happen" };
        self.say(Level::Info, None, &format!("repository {name} {action} {what}"));
        Ok(done)
    }

    /// `(action, path)` of the repository events and records after these.
    fn later_repository_actions(&self, later: &[Incoming]) -> Vec<(Lifecycle, String)> {
        let mut actions = Vec::new();
        for entry in later {
            let event = match (entry.event, entry.record) {
                (true, _) => std::fs::read(self.spool.event_path(entry.number))
                    .ok()
                    .and_then(|b| Spooled::from_json(&b).ok())
                    .and_then(|s| if let Spooled::Repository(e) = s { Some(e) } else { None }),
                (false, Some(pid)) => match self.spool.read_pending(&self.spool.record_path(entry.number, pid)) {
                    Ok(Pending::Repository(record)) => Some(record.event),
                    _ => None,
                },
                (false, None) => None,
            };
            actions.extend(event.map(|e| (e.action, e.repository.path)));
        }
        actions
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
        self.say(Level::Error, None, &format!("set aside {}: {why}", path.display()));
    }

    fn queue_jobs(&self, number: u64, event: &PushEvent) -> io::Result<()> {
        let changes: Vec<(&str, Action)> = event.changes.iter().map(|c| (c.name.as_str(), c.action)).collect();
        let repo_config = (self.repo_config)(Path::new(&event.repository.path));
        let config = repo_config.as_ref().unwrap_or(self.config);
        let about = About::Push { repo: &event.repository.name, changes: &changes };
        let users = &self.config.users;
        for ext in wanting(&config.extensions, Phase::Post, about) {
            let sending = Sending { server: &self.config.server, users, max_commits: config.max_commits };
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
                    total_commits: match body.dialect {
                        Dialect::Github { total_commits } => Some(total_commits),
                        _ => None,
                    },
                    gitlab: match body.dialect {
                        Dialect::Gitlab { hook } => Some(hook),
                        _ => None,
                    },
                    body: body.json,
                    batch: None,
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
        let about = About::Pull { repo: &pull.repository.name };
        let as_is = AsIs {
            id: &pull.id,
            kind: EventKind::Pull,
            repo: &pull.repository.name,
            dir: pull.repository.path.clone().into(),
            user: &pull.user.name,
            sequence: pull.sequence,
            time: &pull.time,
            body: body::as_is(pull).map_err(io::Error::other)?,
        };
        self.queue_as_is(number, wanting(&config.extensions, Phase::Post, about), &as_is)
    }

    /// One job per interested connector of the global configuration (a repository's own
    /// file goes with it when it is deleted, and is not there before it is created), with
    /// the event as it is. Scripts run in `repos_root`: the repository may not be there.
    fn queue_repository_jobs(&self, number: u64, event: &RepositoryEvent) -> io::Result<()> {
        let about = About::Repository { repo: &event.repository.name };
        let as_is = AsIs {
            id: &event.id,
            kind: EventKind::Repository,
            repo: &event.repository.name,
            dir: self.config.repos_root.clone().unwrap_or_else(|| "/".into()),
            user: &event.user.name,
            sequence: event.sequence,
            time: &event.time,
            body: body::as_is(event).map_err(io::Error::other)?,
        };
        self.queue_as_is(number, wanting(&self.config.extensions, Phase::Post, about), &as_is)
    }

    /// One job per connector of `extensions` that does not have it yet.
    fn queue_as_is<'c>(
        &self,
        number: u64,
        extensions: impl Iterator<Item = &'c Extension>,
        event: &AsIs,
    ) -> io::Result<()> {
        for ext in extensions {
            if [Shelf::Queue, Shelf::Dead].iter().any(|s| self.spool.has_job(&ext.connector, *s, number, 0)) {
                continue;
            }
            let job = Job {
                connector: ext.connector.clone(),
                number,
                change: event.body.change,
                event_id: event.id.to_string(),
                event: event.kind,
                delivery_id: delivery_id(event.id, &ext.connector, event.body.change),
                repo: event.repo.to_string(),
                git_dir: event.dir.clone(),
                user: event.user.to_string(),
                sequence: event.sequence,
                created: event.time.to_string(),
                attempts: 0,
                next_attempt: 0,
                last_error: None,
                total_commits: None,
                gitlab: None,
                body: event.body.json.clone(),
                batch: None,
            };
            self.spool.put_job(&job, Shelf::Queue)?;
        }
        Ok(())
    }
}

/// An event sent as it is, whatever the format (a pull, a repository event), and what its
/// jobs say about it.
struct AsIs<'e> {
    id: &'e str,
    kind: EventKind,
    repo: &'e str,
    /// Where scripts run.
    dir: PathBuf,
    user: &'e str,
    sequence: Option<u64>,
    time: &'e str,
    body: Body,
}
