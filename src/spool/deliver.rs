//! The deliverer: fans incoming events out into one queue per connector, then works each
//! connector's queue oldest first. A transient failure backlogs the connector (its later
//! jobs wait behind the failed one until its retry); a permanent one dead-letters the job
//! and the connector goes on. One deliverer per connector at a time (its lock); any number
//! may run.

use super::job::{Job, Shelf, delivery_id};
use super::log::Attempt;
use super::{Incoming, Journal, Spool, lock_file};
use crate::config::Config;
use crate::config::extension::{Extension, Format, Phase};
use crate::event::{self, Event, Pull, Spooled};
use crate::extension::{self, Call, GithubHeaders, Reply};
use std::ffi::OsString;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// What a deliverer needs besides the spool and the configuration.
pub struct Deliverer<'a> {
    pub spool: &'a Spool,
    pub config: &'a Config,
    /// Rebuild the event of a push whose post-receive died before writing it.
    pub rebuild: &'a (dyn Fn(&Journal) -> Result<Event, String> + Sync),
    pub env: &'a (dyn Fn(&str) -> Option<OsString> + Sync),
    /// The configuration as a repository sees it (global + its `pushgate.toml`): where
    /// connectors defined by a repository come from.
    pub repo_config: &'a (dyn Fn(&Path) -> Option<Config> + Sync),
}

/// The longest a `--watch` deliverer sleeps without looking at the queues.
const MAX_SLEEP: Duration = Duration::from_secs(5);
/// The longest a `Retry-After` is honoured.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(24 * 3600);

impl Deliverer<'_> {
    /// Fan out what is incoming, then deliver every due job once.
    pub fn run_once(&self) -> io::Result<()> {
        self.fan_out()?;
        self.deliver_all();
        self.spool.clean_log(self.config.spool.keep_log)
    }

    /// Deliver until killed, sleeping until the next due retry or new work.
    pub fn watch(&self) -> io::Result<()> {
        let waker = Waker::new(&self.spool.dir().join("incoming"));
        loop {
            self.run_once()?;
            let sleep = self.next_due().map_or(MAX_SLEEP, |due| due.min(MAX_SLEEP));
            waker.wait(sleep);
        }
    }

    /// The connectors to work: the global `post` extensions, then those that a repository's
    /// own file defines and that have jobs waiting.
    fn post_connectors(&self) -> Vec<Extension> {
        let mut connectors: Vec<Extension> = posts(self.config).cloned().collect();
        for name in self.spool.connectors().unwrap_or_default() {
            if connectors.iter().any(|c| c.queue == name) {
                continue;
            }
            let head = self.spool.jobs(&name, Shelf::Queue).ok().and_then(|jobs| jobs.into_iter().next());
            let defined = head.and_then(|job| (self.repo_config)(&job.git_dir));
            if let Some(ext) = defined.as_ref().and_then(|config| posts(config).find(|e| e.queue == name)) {
                connectors.push(ext.clone());
            }
        }
        connectors
    }

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
            outcome: "dead".into(),
            status: None,
            duration_ms: 0,
            error: Some(why.to_string()),
        });
    }

    fn queue_jobs(&self, number: u64, event: &Event) -> io::Result<()> {
        let refs: Vec<&str> = event.changes.iter().map(|c| c.name.as_str()).collect();
        let repo_config = (self.repo_config)(Path::new(&event.repository.path));
        let config = repo_config.as_ref().unwrap_or(self.config);
        for ext in posts(config).filter(|e| e.push_events) {
            if !ext.applies_to(&event.repository.name, refs.iter().copied()) {
                continue;
            }
            let wanted = event.changes.iter().enumerate().filter(|(_, c)| ext.wants_ref(&c.name));
            let bodies: Vec<(usize, serde_json::Value, Option<usize>)> = match ext.format {
                Format::Pushgate => {
                    let mut mine = event.clone();
                    mine.changes.retain(|c| ext.wants_ref(&c.name));
                    vec![(0, serde_json::to_value(&mine).map_err(io::Error::other)?, None)]
                }
                Format::Github => wanted
                    .map(|(i, c)| (i, event::github::payload(event, i, &self.config.server), Some(c.total_commits)))
                    .collect(),
            };
            for (change, body, total_commits) in bodies {
                let known =
                    [Shelf::Queue, Shelf::Dead].iter().any(|s| self.spool.has_job(&ext.queue, *s, number, change));
                if known {
                    continue;
                }
                let job = Job {
                    connector: ext.queue.clone(),
                    number,
                    change,
                    event_id: event.id.clone(),
                    event: "push".into(),
                    delivery_id: delivery_id(&event.id, &ext.queue, change),
                    repo: event.repository.name.clone(),
                    git_dir: event.repository.path.clone().into(),
                    user: event.user.name.clone(),
                    sequence: event.sequence,
                    created: event.time.clone(),
                    attempts: 0,
                    next_attempt: 0,
                    last_error: None,
                    total_commits,
                    body,
                };
                self.spool.put_job(&job, Shelf::Queue)?;
                crate::crashpoint::here("deliver:after-first-job");
            }
        }
        Ok(())
    }

    /// One job per interested connector, with the pull event as it is.
    fn queue_pull_jobs(&self, number: u64, pull: &Pull) -> io::Result<()> {
        let repo_config = (self.repo_config)(Path::new(&pull.repository.path));
        let config = repo_config.as_ref().unwrap_or(self.config);
        let interested =
            posts(config).filter(|e| e.pull_events && e.repos.iter().any(|g| g.matches(&pull.repository.name)));
        for ext in interested {
            if [Shelf::Queue, Shelf::Dead].iter().any(|s| self.spool.has_job(&ext.queue, *s, number, 0)) {
                continue;
            }
            let job = Job {
                connector: ext.queue.clone(),
                number,
                change: 0,
                event_id: pull.id.clone(),
                event: "pull".into(),
                delivery_id: delivery_id(&pull.id, &ext.queue, 0),
                repo: pull.repository.name.clone(),
                git_dir: pull.repository.path.clone().into(),
                user: pull.user.name.clone(),
                sequence: pull.sequence,
                created: pull.time.clone(),
                attempts: 0,
                next_attempt: 0,
                last_error: None,
                total_commits: None,
                body: serde_json::to_value(pull).map_err(io::Error::other)?,
            };
            self.spool.put_job(&job, Shelf::Queue)?;
        }
        Ok(())
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
        let Ok(lock_path) = self.spool.connector_lock_path(&ext.queue) else { return };
        loop {
            let Ok(Some(lock)) = lock_file(&lock_path, false) else { return };
            while self.deliver_head(ext) {}
            drop(lock);
            // A deliverer that found our lock taken left its jobs to us: look once more.
            if !self.head_is_due(ext) {
                return;
            }
        }
    }

    fn head_is_due(&self, ext: &Extension) -> bool {
        self.spool.disabled_reason(&ext.queue).is_none()
            && self
                .spool
                .job_names(&ext.queue, Shelf::Queue)
                .ok()
                .and_then(|names| names.into_iter().next())
                .and_then(|name| self.spool.read_job(&ext.queue, Shelf::Queue, &name).ok())
                .is_some_and(|job| job.next_attempt <= now_ms())
    }

    /// Try the oldest job if it is due; whether the connector may go on to the next.
    fn deliver_head(&self, ext: &Extension) -> bool {
        if self.spool.disabled_reason(&ext.queue).is_some() {
            return false;
        }
        let Some(name) = self.spool.job_names(&ext.queue, Shelf::Queue).ok().and_then(|n| n.into_iter().next()) else {
            return false;
        };
        let mut job = match self.spool.read_job(&ext.queue, Shelf::Queue, &name) {
            Ok(job) => job,
            Err(_) => return false,
        };
        if job.next_attempt > now_ms() {
            return false;
        }
        let body = serde_json::to_vec(&job.body).unwrap_or_default();
        let call = Call {
            body: &body,
            event: &job.event,
            phase: "post",
            user: &job.user,
            repo: &job.repo,
            event_id: &job.event_id,
            delivery_id: &job.delivery_id,
            cwd: &job.git_dir,
            github: job.total_commits.map(|total_commits| GithubHeaders { total_commits }),
        };
        let started = Instant::now();
        crate::crashpoint::here("deliver:before-send");
        let reply = extension::call(ext, &call, self.env);
        crate::crashpoint::here("deliver:after-send");
        let duration_ms = started.elapsed().as_millis() as u64;
        job.attempts += 1;
        let (outcome, status, error, go_on) = self.settle(ext, &mut job, reply);
        let _ = self.spool.log_attempt(&Attempt {
            time: crate::time::now_rfc3339(),
            connector: ext.queue.clone(),
            job: job.id(),
            event_id: job.event_id.clone(),
            delivery_id: job.delivery_id.clone(),
            attempt: job.attempts,
            outcome: outcome.into(),
            status,
            duration_ms,
            error,
        });
        go_on
    }

    /// Record the reply on the job: `(outcome, status, error, whether the connector goes on)`.
    fn settle(
        &self,
        ext: &Extension,
        job: &mut Job,
        reply: Reply,
    ) -> (&'static str, Option<String>, Option<String>, bool) {
        let moved = |result: io::Result<()>| result.is_ok();
        match reply {
            Reply::Accepted => {
                let ok = moved(self.spool.remove_job(job, Shelf::Queue));
                ("delivered", None, None, ok)
            }
            Reply::Refused { code, lines } => {
                let error = format!("refused ({code}){}", lines.first().map(|l| format!(": {l}")).unwrap_or_default());
                job.last_error = Some(error.clone());
                let ok = moved(self.spool.move_job(job, Shelf::Queue, Shelf::Dead));
                ("dead", Some(code), Some(error), ok)
            }
            Reply::Gone { reason } => {
                job.last_error = Some(reason.clone());
                let _ = self.spool.move_job(job, Shelf::Queue, Shelf::Dead);
                let _ = self.spool.disable(&ext.queue, &reason);
                ("disabled", Some("HTTP 410".into()), Some(reason), false)
            }
            Reply::Failed { reason, status, retry_after } => {
                job.last_error = Some(reason.clone());
                let schedule = &self.config.spool.retry;
                if job.attempts as usize > schedule.len() {
                    let error = format!("gave up after {} attempts: {reason}", job.attempts);
                    job.last_error = Some(error.clone());
                    let ok = moved(self.spool.move_job(job, Shelf::Queue, Shelf::Dead));
                    return ("dead", status, Some(error), ok);
                }
                let wait = match retry_after {
                    Some(after) => after.min(MAX_RETRY_AFTER),
                    None => jittered(schedule[job.attempts as usize - 1]),
                };
                job.next_attempt = now_ms() + wait.as_millis() as u64;
                let _ = self.spool.put_job(job, Shelf::Queue);
                ("retry", status, Some(reason), false)
            }
        }
    }

    /// How long until the earliest backlogged job of a connector is due.
    fn next_due(&self) -> Option<Duration> {
        let now = now_ms();
        self.post_connectors()
            .iter()
            .filter(|e| self.spool.disabled_reason(&e.queue).is_none())
            .filter_map(|e| {
                let name = self.spool.job_names(&e.queue, Shelf::Queue).ok()?.into_iter().next()?;
                self.spool.read_job(&e.queue, Shelf::Queue, &name).ok()
            })
            .map(|job| Duration::from_millis(job.next_attempt.saturating_sub(now)))
            .min()
    }
}

fn posts(config: &Config) -> impl Iterator<Item = &Extension> {
    config.extensions.iter().filter(|e| e.phase == Phase::Post && e.enabled)
}

pub fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// `wait` +-20%.
fn jittered(wait: Duration) -> Duration {
    let unit = event::random_u64() as f64 / u64::MAX as f64;
    wait.mul_f64(0.8 + 0.4 * unit)
}

/// Wakes a sleeping `--watch` deliverer when something lands in `incoming/` (inotify), or
/// when its time is up.
struct Waker {
    fd: Option<i32>,
}

impl Waker {
    fn new(dir: &Path) -> Waker {
        use std::os::unix::ffi::OsStrExt;
        let Ok(path) = std::ffi::CString::new(dir.as_os_str().as_bytes()) else { return Waker { fd: None } };
        // SAFETY: plain syscalls on a descriptor we own and a NUL-terminated path.
        let fd = unsafe { libc::inotify_init1(libc::IN_CLOEXEC | libc::IN_NONBLOCK) };
        if fd < 0 {
            return Waker { fd: None };
        }
        let mask = libc::IN_MOVED_TO | libc::IN_CLOSE_WRITE | libc::IN_CREATE;
        // SAFETY: as above.
        if unsafe { libc::inotify_add_watch(fd, path.as_ptr(), mask) } < 0 {
            // SAFETY: fd is ours and open.
            unsafe { libc::close(fd) };
            return Waker { fd: None };
        }
        Waker { fd: Some(fd) }
    }

    fn wait(&self, timeout: Duration) {
        let Some(fd) = self.fd else {
            std::thread::sleep(timeout.min(Duration::from_secs(1)));
            return;
        };
        let mut poll = libc::pollfd { fd, events: libc::POLLIN, revents: 0 };
        let millis = timeout.as_millis().min(i32::MAX as u128) as i32;
        // SAFETY: one valid pollfd; the buffer below is ours and sized as passed.
        unsafe {
            libc::poll(&mut poll, 1, millis);
            let mut buf = [0u8; 4096];
            while libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) > 0 {}
        }
    }
}

impl Drop for Waker {
    fn drop(&mut self) {
        if let Some(fd) = self.fd {
            // SAFETY: fd is ours and open.
            unsafe { libc::close(fd) };
        }
    }
}
