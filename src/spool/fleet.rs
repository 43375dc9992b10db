//! The deliverer with `[spool] backend = "postgres"`: this server's jobs are relayed into
//! the fleet's outbox, and the connectors this worker gets a lease on are delivered from
//! there, in the outbox's order.

use super::deliver::{Deliverer, Level, now_ms, posts};
use super::job::{Job, Shelf};
use super::log::{Attempt, AttemptOutcome};
use super::pg::{Change, Lease, Outbox, Settled};
use super::queues::Queues;
use super::settle::Settlement;
use crate::config::extension::Extension;
use crate::extension;
use std::io;
use std::time::{Duration, Instant};

/// Jobs per relay transaction, and per look at a connector's queue.
const BATCH: usize = 100;

impl Deliverer<'_> {
    /// Move the local queues into the outbox, oldest first, then remove them here. A
    /// relay that dies between the two inserts nothing twice when it runs again.
    pub(super) fn relay(&self, outbox: &Outbox) -> io::Result<()> {
        for connector in self.spool.connectors()? {
            let names = self.spool.job_names(&connector, Shelf::Queue)?;
            for chunk in names.chunks(BATCH) {
                let mut jobs = Vec::with_capacity(chunk.len());
                for name in chunk {
                    match self.spool.read_job(&connector, Shelf::Queue, name) {
                        Ok(job) => jobs.push(job),
                        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                        Err(e) => {
                            let path = self.spool.connector_dir(&connector).join("queue").join(name);
                            self.spool.set_aside(&path)?;
                            self.say(Level::Error, Some(&connector), &format!("set aside {name}: {e}"));
                        }
                    }
                }
                outbox.relay(&jobs)?;
                crate::crashpoint::here("relay:after-insert");
                for job in &jobs {
                    self.spool.remove_job(job, Shelf::Queue)?;
                }
            }
        }
        Ok(())
    }

    /// The connectors to work: the configured ones, then those with jobs in the outbox
    /// that a repository's own file defines.
    pub(super) fn fleet_connectors(&self, outbox: &Outbox) -> Vec<Extension> {
        let mut connectors: Vec<Extension> = posts(self.config).cloned().collect();
        for name in Queues::connectors(outbox).unwrap_or_default() {
            if connectors.iter().any(|c| c.connector == name) {
                continue;
            }
            let head = outbox.waiting(&name, 1).ok().and_then(|jobs| jobs.into_iter().next());
            let defined = head.and_then(|job| (self.repo_config)(&job.git_dir));
            if let Some(ext) = defined.as_ref().and_then(|config| posts(config).find(|e| e.connector == name)) {
                connectors.push(ext.clone());
            }
        }
        connectors
    }

    /// Work every connector whose lease this worker gets, each on its own thread.
    pub(super) fn deliver_fleet(&self, outbox: &Outbox) {
        std::thread::scope(|scope| {
            for ext in self.fleet_connectors(outbox) {
                scope.spawn(move || {
                    if let Err(e) = self.work_connector(outbox, &ext) {
                        self.say(Level::Error, Some(&ext.connector), &e.to_string());
                    }
                });
            }
        });
    }

    fn work_connector(&self, outbox: &Outbox, ext: &Extension) -> io::Result<()> {
        let Some(lease) = outbox.take(&ext.connector)? else { return Ok(()) };
        let connection = extension::Connection::new(ext);
        let mut held_until = Instant::now() + outbox.lease;
        let result = self.work_lease(outbox, ext, &connection, lease, &mut held_until);
        match result {
            Ok(true) => outbox.release(&ext.connector, lease),
            Ok(false) => Ok(()),
            Err(e) => {
                let _ = outbox.release(&ext.connector, lease);
                Err(e)
            }
        }
    }

    /// Deliver while the lease holds; whether it still does (false: taken over).
    fn work_lease(
        &self,
        outbox: &Outbox,
        ext: &Extension,
        connection: &extension::Connection,
        lease: Lease,
        held_until: &mut Instant,
    ) -> io::Result<bool> {
        loop {
            let jobs = outbox.waiting(&ext.connector, BATCH as i64)?;
            if jobs.is_empty() {
                return Ok(true);
            }
            for mut job in jobs {
                if job.next_attempt > now_ms() || (self.stop)() {
                    return Ok(true);
                }
                // Renew before an attempt that could outlast what is left of the lease.
                let left = held_until.saturating_duration_since(Instant::now());
                if left < outbox.lease / 2 || left < ext.timeout + Duration::from_secs(1) {
                    let asked = Instant::now();
                    if !outbox.renew(&ext.connector, lease)? {
                        self.say(Level::Warn, Some(&ext.connector), "lease lost to another worker");
                        return Ok(false);
                    }
                    *held_until = asked + outbox.lease;
                }
                let (settlement, duration_ms) = self.send(connection, &mut job);
                let (change, outcome, status, error, go_on) = fleet_change(&mut job, settlement);
                let mut attempt = Attempt {
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
                let asked = Instant::now();
                let change = match change {
                    FleetChange::Delete => Change::Delete,
                    FleetChange::Dead => Change::Dead(&job),
                    FleetChange::Disable(ref reason) => Change::Disable(&job, reason),
                    FleetChange::Retry => Change::Retry(&job),
                };
                match outbox.settle(lease, &job, change, &attempt)? {
                    Settled::LeaseLost => {
                        self.say(
                            Level::Warn,
                            Some(&ext.connector),
                            &format!("lease lost to another worker: the attempt at {} is not recorded", job.id()),
                        );
                        return Ok(false);
                    }
                    Settled::Dropped => {
                        attempt.outcome = AttemptOutcome::Dropped;
                        attempt.error = Some("the job was dropped during the attempt".into());
                        (self.tell)(&attempt.line());
                    }
                    Settled::Done => (self.tell)(&attempt.line()),
                }
                *held_until = asked + outbox.lease;
                if !go_on && attempt.outcome != AttemptOutcome::Dropped {
                    return Ok(true);
                }
            }
        }
    }

    /// How long until a connector of the outbox has a job due (capped by the caller).
    pub(super) fn fleet_next_due(&self, outbox: &Outbox) -> Option<Duration> {
        let now = now_ms();
        self.fleet_connectors(outbox)
            .iter()
            .filter(|e| outbox.disabled(&e.connector).is_none())
            .filter_map(|e| {
                let job: Job = outbox.waiting(&e.connector, 1).ok()?.into_iter().next()?;
                let due = Duration::from_millis(job.next_attempt.saturating_sub(now));
                // Another worker's: look again when its lease would end (a NOTIFY or its
                // release comes first when it is alive).
                Some(outbox.held_elsewhere(&e.connector).map_or(due, |left| due.max(left)))
            })
            .min()
    }
}

enum FleetChange {
    Delete,
    Dead,
    Disable(String),
    Retry,
}

/// What a settlement does to a job in the outbox: `(change, outcome, status, error,
/// whether the connector goes on)`, as the file backend's.
fn fleet_change(
    job: &mut Job,
    settlement: Settlement,
) -> (FleetChange, AttemptOutcome, Option<String>, Option<String>, bool) {
    match settlement {
        Settlement::Delivered { status } => (FleetChange::Delete, AttemptOutcome::Delivered, Some(status), None, true),
        Settlement::Dead { status, error } => {
            job.last_error = Some(error.clone());
            (FleetChange::Dead, AttemptOutcome::Dead, status, Some(error), true)
        }
        Settlement::Disabled { reason } => {
            job.last_error = Some(reason.clone());
            (
                FleetChange::Disable(reason.clone()),
                AttemptOutcome::Disabled,
                Some("HTTP 410".into()),
                Some(reason),
                false,
            )
        }
        Settlement::Retry { at_ms, status, error } => {
            job.last_error = Some(error.clone());
            job.next_attempt = at_ms;
            (FleetChange::Retry, AttemptOutcome::Retry, status, Some(error), false)
        }
    }
}
