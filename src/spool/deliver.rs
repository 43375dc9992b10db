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
use crate::extension::{self, Call};
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
    /// Fill in what the gate left out of an event to keep the pusher's wait short (the
    /// files of heads that are old commits).
    pub complete: &'a (dyn Fn(&mut crate::event::PushEvent) -> Result<(), String> + Sync),
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
    /// The fleet's outbox, with `[spool] backend = "postgres"`: local jobs are relayed
    /// there and delivered from there.
    pub outbox: Option<&'a super::pg::Outbox>,
    /// Set by SIGTERM: finish the attempt under way, start no other.
    pub stop: &'a (dyn Fn() -> bool + Sync),
}

/// How often a sleeping `--watch` deliverer looks whether it was told to stop.
const STOP_CHECK: Duration = Duration::from_millis(250);

/// The longest a `--watch` deliverer sleeps without looking at the queues.
const MAX_SLEEP: Duration = Duration::from_secs(5);

impl Deliverer<'_> {
    /// Fan out what is incoming, then deliver every due job once.
    pub fn run_once(&self) -> io::Result<()> {
        self.fan_out()?;
        if let Some(outbox) = self.outbox {
            self.relay(outbox)?;
            self.deliver_fleet(outbox);
            return outbox.prune_now_and_then(self.config.spool.keep_log);
        }
        self.deliver_all();
        self.spool.clean_log(self.config.spool.keep_log)
    }

    /// Deliver until `stop` says so, sleeping until the next due retry or new work. Errors
    /// (a full or failing disk) are said and waited out, never a reason to stop.
    pub fn watch(&self, stop: &dyn Fn() -> bool) -> io::Result<()> {
        let _watching = self.spool.lock_watch()?;
        let waker = Waker::new(&self.spool.dir().join("incoming"));
        let connectors: Vec<String> = match self.outbox {
            Some(outbox) => self.fleet_connectors(outbox),
            None => self.post_connectors(),
        }
        .into_iter()
        .map(|c| c.connector)
        .collect();
        self.say(Level::Info, None, &format!("watching {} for {}", self.spool.dir().display(), connectors.join(", ")));
        let stopping = std::sync::atomic::AtomicBool::new(false);
        std::thread::scope(|scope| {
            if let Some(outbox) = self.outbox {
                let ringer = waker.ringer();
                let stopping = &stopping;
                scope.spawn(move || outbox.listen(ringer, stopping));
            }
            let mut failing = false;
            while !stop() {
                match self.run_once() {
                    Ok(()) if failing => {
                        self.say(Level::Info, None, "the spool works again");
                        failing = false;
                    }
                    Ok(()) => {}
                    Err(e) if !failing => {
                        self.say(Level::Error, None, &format!("{e} (retrying)"));
                        failing = true;
                    }
                    Err(_) => {}
                }
                let periodic = self.run_periodic().unwrap_or(MAX_SLEEP);
                let sleep = self.sleep().min(periodic);
                let sleep = if failing { sleep.max(Duration::from_secs(1)) } else { sleep };
                // In slices: SIGTERM may land on another thread, leaving this poll asleep.
                let until = Instant::now() + sleep;
                while !stop() {
                    let left = until.saturating_duration_since(Instant::now());
                    if left.is_zero() || waker.wait_woken(left.min(STOP_CHECK)) {
                        break;
                    }
                }
            }
            stopping.store(true, std::sync::atomic::Ordering::Relaxed);
        });
        self.say(Level::Info, None, "stopped");
        Ok(())
    }

    /// How long a `--watch` deliverer may sleep: until the next due retry, at most
    /// [`MAX_SLEEP`]; in a fleet, at most a lease too (a dead worker's connectors are free
    /// again after it).
    fn sleep(&self) -> Duration {
        match self.outbox {
            Some(outbox) => self.fleet_next_due(outbox).unwrap_or(MAX_SLEEP).min(MAX_SLEEP).min(outbox.lease),
            None => self.next_due().map_or(MAX_SLEEP, |due| due.min(MAX_SLEEP)),
        }
    }

    /// A line for the service's journal, in the attempts' shape: `time level connector
    /// what` (`-` for the spool as a whole).
    pub(super) fn say(&self, level: Level, connector: Option<&str>, what: &str) {
        let show = |text: &str| crate::text::one_line(text, None);
        let connector = connector.map_or_else(|| "-".to_string(), show);
        (self.tell)(&format!("{} {} {connector} {}", crate::time::now_rfc3339(), level.as_str(), show(what)));
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
            match ext.batch {
                Some(batch) => self.deliver_batches(ext, &connection, batch),
                None => self.deliver_queue(ext, &connection),
            }
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
                if (self.stop)() {
                    return;
                }
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
                    self.say(Level::Error, Some(connector), &format!("set aside {name}: {e}"));
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
        self.head_due_at(ext).is_some_and(|due| due <= now_ms())
    }

    /// When the connector's next attempt is due: its head job's, or its next batch's.
    fn head_due_at(&self, ext: &Extension) -> Option<u64> {
        let head = self.head(&ext.connector)?;
        let Some(config) = ext.batch else { return Some(self.due_at(&head)) };
        let names = self.spool.job_names(&ext.connector, Shelf::Queue).ok()?;
        let jobs: Vec<Job> = names
            .iter()
            .take(config.max)
            .filter_map(|n| self.spool.read_job(&ext.connector, Shelf::Queue, n).ok())
            .collect();
        Some(super::batch::due_at(super::batch::next_batch(&jobs, config.max), config))
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
                self.say(Level::Error, Some(&ext.connector), &format!("set aside {name}: {e}"));
                return Step::Skip;
            }
        };
        if self.due_at(&job) > now_ms() {
            return Step::Stop;
        }
        let (settlement, duration_ms) = self.send(connection, &mut job);
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
            batch: None,
        };
        (self.tell)(&attempt.line());
        let _ = self.spool.log_attempt(&attempt);
        if go_on { Step::Next } else { Step::Stop }
    }

    /// Make one attempt at `job`: what its reply means, and how long it took.
    pub(super) fn send(&self, connection: &extension::Connection, job: &mut Job) -> (Settlement, u64) {
        let body = serde_json::to_vec(&job.body).unwrap_or_default();
        let delivery_id = job.delivery_id.clone();
        let (settlement, duration_ms) = self.send_as(connection, job, &body, &delivery_id);
        job.attempts += 1;
        (settlement, duration_ms)
    }

    /// Send `body` under `delivery_id` with `job`'s headers and working directory (the
    /// job's own body, or a batch `job` heads): the reply settled as its next attempt.
    pub(super) fn send_as(
        &self,
        connection: &extension::Connection,
        job: &Job,
        body: &[u8],
        delivery_id: &str,
    ) -> (Settlement, u64) {
        let call = Call {
            body,
            event: job.event,
            phase: Phase::Post,
            user: &job.user,
            repo: &job.repo,
            event_id: &job.event_id,
            delivery_id,
            cwd: &job.git_dir,
            dialect: job.dialect(),
            instance: &self.config.server.base_url,
        };
        let started = Instant::now();
        crate::crashpoint::here("deliver:before-send");
        let reply = connection.call(&call, self.env);
        crate::crashpoint::here("deliver:after-send");
        let duration_ms = started.elapsed().as_millis() as u64;
        let attempts = job.attempts + 1;
        let settlement = settle(reply, attempts, &self.config.spool.retry, now_ms(), crate::ids::random_unit());
        (settlement, duration_ms)
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
            Settlement::Delivered { status } => {
                let ok = self.spool.remove_job(job, Shelf::Queue).is_ok();
                (AttemptOutcome::Delivered, Some(status), None, ok)
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
            .filter_map(|e| self.head_due_at(e))
            .map(|due| Duration::from_millis(due.saturating_sub(now)))
            .min()
    }
}

/// How much a journal line matters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Info,
    Warn,
    Error,
}

impl Level {
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Info => "info",
            Level::Warn => "warn",
            Level::Error => "error",
        }
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
