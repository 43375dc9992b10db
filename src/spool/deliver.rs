//! The deliverer: fans incoming events out into one queue per connector ([`super::fanout`]),
//! then works each connector's queue oldest first. A transient failure backlogs the
//! connector (its later jobs wait behind the failed one until its retry); a permanent one
//! dead-letters the job and the connector goes on. One deliverer per connector at a time
//! (its lock); any number may run.

use super::job::{Job, Shelf};
use super::log::{Attempt, AttemptOutcome};
use super::settle::{Settlement, settle};
use super::waker::Waker;
use super::{Record, Spool, lock_file};
use crate::config::Config;
use crate::config::extension::{Extension, Phase};
use crate::env::Env;
use crate::extension::{self, Call, GithubHeaders};
use std::collections::HashMap;
use std::io;
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// What a deliverer needs besides the spool and the configuration.
pub struct Deliverer<'a> {
    pub spool: &'a Spool,
    pub config: &'a Config,
    /// Which changes of a record whose writer died landed (the refs as they are now).
    pub landed: &'a (dyn Fn(&Record) -> Result<Vec<bool>, String> + Sync),
    /// Where `secret_env` values come from.
    pub env: &'a Env,
    /// The configuration as a repository sees it (global + its `pushgate.toml`): where
    /// connectors defined by a repository come from.
    pub repo_config: &'a (dyn Fn(&Path) -> Option<Config> + Sync),
    /// One line per attempt and per state change, for a service's journal.
    pub tell: &'a (dyn Fn(&str) + Sync),
    /// When jobs whose file could not be rewritten are next due (a full disk must not make
    /// a failed job due again at once).
    pub not_before: Mutex<HashMap<String, u64>>,
}

/// The longest a `--watch` deliverer sleeps without looking at the queues.
const MAX_SLEEP: Duration = Duration::from_secs(5);

impl Deliverer<'_> {
    /// Fan out what is incoming, then deliver every due job once.
    pub fn run_once(&self) -> io::Result<()> {
        self.fan_out()?;
        self.deliver_all();
        self.spool.clean_log(self.config.spool.keep_log)
    }

    /// Deliver until `stop` says so, sleeping until the next due retry or new work. Errors
    /// (a full or failing disk) are said and waited out, never a reason to stop.
    pub fn watch(&self, stop: &dyn Fn() -> bool) -> io::Result<()> {
        let _watching = self.spool.lock_watch()?;
        let waker = Waker::new(&self.spool.dir().join("incoming"));
        let mut failing = false;
        while !stop() {
            match self.run_once() {
                Ok(()) => failing = false,
                Err(e) if !failing => {
                    self.say(&format!("error: {e} (retrying)"));
                    failing = true;
                }
                Err(_) => {}
            }
            let sleep = self.next_due().map_or(MAX_SLEEP, |due| due.min(MAX_SLEEP));
            waker.wait(if failing { sleep.max(Duration::from_secs(1)) } else { sleep });
        }
        Ok(())
    }

    pub(super) fn say(&self, line: &str) {
        (self.tell)(line);
    }

    /// The connectors to work: the global `post` extensions, then those that a repository's
    /// own file defines and that have jobs waiting.
    fn post_connectors(&self) -> Vec<Extension> {
        let mut connectors: Vec<Extension> = posts(self.config).cloned().collect();
        for name in self.spool.connectors().unwrap_or_default() {
            if connectors.iter().any(|c| c.connector == name) {
                continue;
            }
            let defined = self.head(&name).and_then(|job| (self.repo_config)(&job.git_dir));
            if let Some(ext) = defined.as_ref().and_then(|config| posts(config).find(|e| e.connector == name)) {
                connectors.push(ext.clone());
            }
        }
        connectors
    }

    /// Work every configured connector, each on its own thread so that a slow endpoint
    /// never holds up the others.
    pub fn deliver_all(&self) {
        std::thread::scope(|scope| {
            for ext in self.post_connectors() {
                scope.spawn(move || self.deliver_connector(&ext));
            }
        });
    }

    fn deliver_connector(&self, ext: &Extension) {
        let Ok(lock_path) = self.spool.connector_lock_path(&ext.connector) else { return };
        let connection = extension::Connection::new(ext);
        loop {
            let Ok(Some(lock)) = lock_file(&lock_path, false) else { return };
            self.deliver_queue(ext, &connection);
            drop(lock);
            // A deliverer that found our lock taken left its jobs to us: look once more.
            if !self.head_is_due(ext) {
                return;
            }
        }
    }

    /// Deliver the connector's due jobs in order, listing the queue once per batch (new
    /// jobs sort after the listed ones: a listing per job made delivery slow down with the
    /// backlog).
    fn deliver_queue(&self, ext: &Extension, connection: &extension::Connection) {
        loop {
            if self.spool.disabled_reason(&ext.connector).is_some() {
                return;
            }
            let Ok(names) = self.spool.job_names(&ext.connector, Shelf::Queue) else { return };
            if names.is_empty() {
                return;
            }
            for name in names {
                match self.deliver_job(ext, connection, &name) {
                    Step::Next => {}
                    Step::Skip => continue,
                    Step::Stop => return,
                }
            }
        }
    }

    /// The oldest job of a connector that is not disabled. A job file that cannot be read
    /// is set aside, so it never wedges its connector.
    fn head(&self, connector: &str) -> Option<Job> {
        if self.spool.disabled_reason(connector).is_some() {
            return None;
        }
        loop {
            let name = self.spool.job_names(connector, Shelf::Queue).ok()?.into_iter().next()?;
            match self.spool.read_job(connector, Shelf::Queue, &name) {
                Ok(job) => return Some(job),
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => {
                    let path = self.spool.connector_dir(connector).join("queue").join(&name);
                    if self.spool.set_aside(&path).is_err() {
                        return None;
                    }
                    self.say(&format!("{connector}: set aside {name}: {e}"));
                }
            }
        }
    }

    /// When a job is next due: its file says, unless rewriting the file failed.
    fn due_at(&self, job: &Job) -> u64 {
        let remembered = self.not_before.lock().ok().and_then(|m| m.get(&job.id()).copied()).unwrap_or(0);
        job.next_attempt.max(remembered)
    }

    fn head_is_due(&self, ext: &Extension) -> bool {
        self.head(&ext.connector).is_some_and(|job| self.due_at(&job) <= now_ms())
    }

    /// Try the job `name` (the oldest left) if it is due; what the connector does next.
    fn deliver_job(&self, ext: &Extension, connection: &extension::Connection, name: &str) -> Step {
        let mut job = match self.spool.read_job(&ext.connector, Shelf::Queue, name) {
            Ok(job) => job,
            // Dropped or delivered by someone else since the listing.
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Step::Skip,
            Err(e) => {
                let path = self.spool.connector_dir(&ext.connector).join("queue").join(name);
                if self.spool.set_aside(&path).is_err() {
                    return Step::Stop;
                }
                self.say(&format!("{}: set aside {name}: {e}", ext.connector));
                return Step::Skip;
            }
        };
        if self.due_at(&job) > now_ms() {
            return Step::Stop;
        }
        let body = serde_json::to_vec(&job.body).unwrap_or_default();
        let call = Call {
            body: &body,
            event: job.event,
            phase: Phase::Post,
            user: &job.user,
            repo: &job.repo,
            event_id: &job.event_id,
            delivery_id: &job.delivery_id,
            cwd: &job.git_dir,
            github: job.total_commits.map(|total_commits| GithubHeaders { total_commits }),
        };
        let started = Instant::now();
        crate::crashpoint::here("deliver:before-send");
        let reply = connection.call(&call, self.env);
        crate::crashpoint::here("deliver:after-send");
        let duration_ms = started.elapsed().as_millis() as u64;
        job.attempts += 1;
        let settlement = settle(reply, job.attempts, &self.config.spool.retry, now_ms(), crate::ids::random_unit());
        let (outcome, status, error, go_on) = self.apply(ext, &mut job, settlement);
        let attempt = Attempt {
            time: crate::time::now_rfc3339(),
            connector: ext.connector.clone(),
            job: job.id(),
            event_id: job.event_id.clone(),
            delivery_id: job.delivery_id.clone(),
            attempt: job.attempts,
            outcome,
            status,
            duration_ms,
            error,
            repo: Some(job.repo.clone()),
            sequence: job.sequence,
        };
        self.say(&attempt.line());
        let _ = self.spool.log_attempt(&attempt);
        if go_on { Step::Next } else { Step::Stop }
    }

    /// Carry out a settlement on the job's files: `(outcome, status, error, whether the
    /// connector goes on)`.
    fn apply(
        &self,
        ext: &Extension,
        job: &mut Job,
        settlement: Settlement,
    ) -> (AttemptOutcome, Option<String>, Option<String>, bool) {
        let _held = self.spool.lock_jobs(&ext.connector);
        if !self.spool.has_job(&ext.connector, Shelf::Queue, job.number, job.change) {
            // Dropped (`queue drop`) while it was being delivered: it stays dropped.
            let error = Some("the job was dropped during the attempt".to_string());
            return (AttemptOutcome::Dropped, None, error, true);
        }
        match settlement {
            Settlement::Delivered => {
                let ok = self.spool.remove_job(job, Shelf::Queue).is_ok();
                (AttemptOutcome::Delivered, None, None, ok)
            }
            Settlement::Dead { status, error } => {
                job.last_error = Some(error.clone());
                let ok = self.spool.move_job(job, Shelf::Queue, Shelf::Dead).is_ok();
                (AttemptOutcome::Dead, status, Some(error), ok)
            }
            Settlement::Disabled { reason } => {
                job.last_error = Some(reason.clone());
                let _ = self.spool.move_job(job, Shelf::Queue, Shelf::Dead);
                let _ = self.spool.disable(&ext.connector, &reason);
                (AttemptOutcome::Disabled, Some("HTTP 410".into()), Some(reason), false)
            }
            Settlement::Retry { at_ms, status, error } => {
                job.last_error = Some(error.clone());
                job.next_attempt = at_ms;
                let mut remembered = self.not_before.lock().unwrap_or_else(|p| p.into_inner());
                match self.spool.put_job(job, Shelf::Queue) {
                    Ok(()) => remembered.remove(&job.id()),
                    // The file still says "due": waiting is remembered here instead.
                    Err(_) => remembered.insert(job.id(), at_ms),
                };
                (AttemptOutcome::Retry, status, Some(error), false)
            }
        }
    }

    /// How long until the earliest backlogged job of a connector is due.
    fn next_due(&self) -> Option<Duration> {
        let now = now_ms();
        self.post_connectors()
            .iter()
            .filter_map(|e| self.head(&e.connector))
            .map(|job| Duration::from_millis(self.due_at(&job).saturating_sub(now)))
            .min()
    }
}

/// What a connector does after a job.
enum Step {
    /// Go on with the next job.
    Next,
    /// This one is gone (or set aside): go on.
    Skip,
    /// Wait: a backlog, a disabled connector, or a disk that cannot be written.
    Stop,
}

/// The enabled `post` extensions of a configuration: its connectors.
pub(super) fn posts(config: &Config) -> impl Iterator<Item = &Extension> {
    config.extensions.iter().filter(|e| e.phase == Phase::Post && e.enabled)
}

pub fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}
