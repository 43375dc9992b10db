//! Fan-out: incoming events become one job per connector that wants them, in push order.
//! A journal whose writer died is turned into its event first.

use super::deliver::Deliverer;
use super::job::{Job, Shelf, delivery_id};
use super::log::{Attempt, AttemptOutcome};
use super::{Incoming, Journal};
use crate::config::extension::{About, Phase, wanting};
use crate::event::{EventKind, PullEvent, PushEvent, Spooled};
use crate::extension::body::{self, Sending};
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

impl Deliverer<'_> {
    /// Move incoming events into connector queues, in push order. Stops at a journal whose
    /// post-receive is still at work: later pushes wait behind it.
    pub fn fan_out(&self) -> io::Result<()> {
        let _lock = self.spool.lock_fan_out()?;
        for entry in self.spool.incoming()? {
            let number = entry.number();
            if let Incoming::Journal(_) = entry {
                let path = self.spool.incoming_path(&entry);
                match super::try_lock_existing(&path)? {
                    Some(held) => {
                        // Its writer may have finished between our listing and our lock.
                        let still_there =
                            std::fs::metadata(&path).is_ok_and(|m| held.metadata().is_ok_and(|h| h.ino() == m.ino()));
                        if still_there {
                            self.recover(number, &path)?;
                        }
                    }
                    // Gone: its writer finished and left the event. Held: still at work,
                    // and the pushes after it wait behind it.
                    None if path.exists() => break,
                    None => {}
                }
            }
            let event_path = self.spool.incoming_path(&Incoming::Event(number));
            let Ok(bytes) = std::fs::read(&event_path) else { continue };
            match Spooled::from_json(&bytes) {
                Ok(Spooled::Push(event)) => self.queue_jobs(number, &event)?,
                Ok(Spooled::Pull(pull)) => self.queue_pull_jobs(number, &pull)?,
                Err(e) => self.set_aside(&event_path, &format!("unreadable event: {e}")),
            }
            super::remove_durably(&event_path)?;
            // A journal left beside its event (a crash between the two) is done with too.
            super::remove_durably(&self.spool.incoming_path(&Incoming::Journal(number)))?;
        }
        Ok(())
    }

    /// Turn a dead writer's journal into its event (kept, so its ids never change again).
    fn recover(&self, number: u64, path: &Path) -> io::Result<()> {
        let journal = std::fs::read(path).ok().and_then(|b| serde_json::from_slice::<Journal>(&b).ok());
        let rebuilt = match journal {
            Some(journal) => (self.rebuild)(&journal),
            None => Err("unreadable journal".into()),
        };
        match rebuilt {
            Ok(event) => self.spool.write_event(number, &event),
            Err(e) => {
                self.set_aside(path, &e);
                Ok(())
            }
        }
    }

    /// Keep a file that cannot be delivered out of the way (`.failed`), and say why in the log.
    fn set_aside(&self, path: &Path, why: &str) {
        let _ = std::fs::rename(
            path,
            path.with_extension(format!("{}.failed", path.extension().and_then(|e| e.to_str()).unwrap_or(""))),
        );
        let _ = self.spool.log_attempt(&Attempt {
            time: crate::time::now_rfc3339(),
            connector: String::new(),
            job: path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default(),
            event_id: String::new(),
            delivery_id: String::new(),
            attempt: 0,
            outcome: AttemptOutcome::Dead,
            status: None,
            duration_ms: 0,
            error: Some(why.to_string()),
        });
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
