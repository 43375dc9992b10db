//! Batched delivery (`batch = { max, wait }`): a connector's oldest jobs sent as one JSON
//! array, once `max` of them wait or the oldest waited `wait`. A batch that failed keeps
//! its events (each job remembers the batch's delivery id) and is tried again whole, at
//! the front of its queue: no later batch overtakes it.

use super::deliver::{Deliverer, Level, now_ms};
use super::job::{Job, Shelf};
use super::log::{Attempt, AttemptOutcome};
use super::settle::Settlement;
use crate::config::extension::{Batch, Extension};
use crate::extension;
use std::io;

/// The jobs the next batch is made of, from a queue's oldest first: a batch tried before
/// is exactly its own jobs; a new one takes up to `max` jobs no batch has.
pub fn next_batch(queue: &[Job], max: usize) -> &[Job] {
    let Some(head) = queue.first() else { return &[] };
    let same = queue.iter().take(max).take_while(|j| j.batch == head.batch).count();
    &queue[..same]
}

/// When a batch is due (Unix ms): a retry's time; for a new batch, at once when it is full,
/// else when its oldest event has waited `wait`.
pub fn due_at(batch: &[Job], config: Batch) -> u64 {
    let Some(head) = batch.first() else { return u64::MAX };
    if head.batch.is_some() || batch.len() >= config.max {
        return head.next_attempt;
    }
    let created = crate::time::unix_seconds(&head.created).map_or(0, |s| s.max(0) as u64 * 1000);
    head.next_attempt.max(created.saturating_add(config.wait.as_millis() as u64))
}

impl Deliverer<'_> {
    /// Deliver a batch connector's due batches, oldest first.
    pub(super) fn deliver_batches(&self, ext: &Extension, connection: &extension::Connection, config: Batch) {
        loop {
            if self.spool.disabled_reason(&ext.connector).is_some() || (self.stop)() {
                return;
            }
            let queue = match self.batch_candidates(ext, config.max) {
                Ok(queue) => queue,
                Err(_) => return,
            };
            let batch = next_batch(&queue, config.max);
            if batch.is_empty() || due_at(batch, config) > now_ms() {
                return;
            }
            if !self.send_batch(ext, connection, batch) {
                return;
            }
        }
    }

    /// The oldest `max` readable jobs of a connector (unreadable ones are set aside).
    fn batch_candidates(&self, ext: &Extension, max: usize) -> io::Result<Vec<Job>> {
        let names = self.spool.job_names(&ext.connector, Shelf::Queue)?;
        let mut jobs = Vec::new();
        for name in names.iter().take(max) {
            match self.spool.read_job(&ext.connector, Shelf::Queue, name) {
                Ok(job) => jobs.push(job),
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => {
                    let path = self.spool.connector_dir(&ext.connector).join("queue").join(name);
                    self.spool.set_aside(&path)?;
                    self.say(Level::Error, Some(&ext.connector), &format!("set aside {name}: {e}"));
                }
            }
        }
        Ok(jobs)
    }

    /// One attempt at `batch`; whether the connector goes on.
    fn send_batch(&self, ext: &Extension, connection: &extension::Connection, batch: &[Job]) -> bool {
        let head = &batch[0];
        let body: Vec<&serde_json::Value> = batch.iter().map(|j| &j.body).collect();
        let body = serde_json::to_vec(&body).unwrap_or_default();
        let last = &batch[batch.len() - 1];
        let batch_id = head.batch.clone().unwrap_or_else(|| {
            crate::ids::name_based_id(&format!("{}\0{}\0batch", head.delivery_id, last.delivery_id))
        });
        let (settlement, duration_ms) = self.send_as(connection, head, &body, &batch_id);
        let attempts = head.attempts + 1;
        let _held = self.spool.lock_jobs(&ext.connector);
        // Jobs dropped during the attempt stay dropped.
        let present: Vec<&Job> =
            batch.iter().filter(|j| self.spool.has_job(&ext.connector, Shelf::Queue, j.number, j.change)).collect();
        let (outcome, status, error, go_on) = match settlement {
            Settlement::Delivered { status } => {
                let ok = present.iter().all(|j| self.spool.remove_job(j, Shelf::Queue).is_ok());
                (AttemptOutcome::Delivered, Some(status), None, ok)
            }
            Settlement::Dead { status, error } => {
                let ok = present.iter().all(|j| self.dead_letter(j, &error));
                (AttemptOutcome::Dead, status, Some(error), ok)
            }
            Settlement::Disabled { reason } => {
                for job in &present {
                    self.dead_letter(job, &reason);
                }
                let _ = self.spool.disable(&ext.connector, &reason);
                (AttemptOutcome::Disabled, Some("HTTP 410".into()), Some(reason), false)
            }
            Settlement::Retry { at_ms, status, error } => {
                for job in &present {
                    let mut job = (*job).clone();
                    job.attempts = attempts;
                    job.next_attempt = at_ms;
                    job.last_error = Some(error.clone());
                    job.batch = Some(batch_id.clone());
                    let _ = self.spool.put_job(&job, Shelf::Queue);
                }
                (AttemptOutcome::Retry, status, Some(error), false)
            }
        };
        let attempt = Attempt {
            time: crate::time::now_rfc3339(),
            connector: ext.connector.clone(),
            job: head.id(),
            event_id: head.event_id.clone(),
            delivery_id: batch_id,
            attempt: attempts,
            outcome,
            status,
            duration_ms,
            error,
            repo: Some(head.repo.clone()),
            sequence: head.sequence,
            batch: Some(batch.len()),
        };
        (self.tell)(&attempt.line());
        let _ = self.spool.log_attempt(&attempt);
        go_on
    }

    fn dead_letter(&self, job: &Job, error: &str) -> bool {
        let mut job = job.clone();
        job.last_error = Some(error.to_string());
        job.batch = None;
        self.spool.move_job(&job, Shelf::Queue, Shelf::Dead).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn job(number: u64, batch: Option<&str>, created: &str) -> Job {
        let text = format!(
            r#"{{"connector":"c","number":{number},"change":0,"event_id":"e{number}","delivery_id":"d{number}",
                "repo":"r","git_dir":"/r","user":"u","sequence":{number},"created":"{created}","attempts":0,
                "next_attempt":0,"last_error":null,"total_commits":null,"body":{{}}}}"#
        );
        let mut job: Job = serde_json::from_str(&text).unwrap();
        job.batch = batch.map(str::to_string);
        job
    }

    #[test]
    fn a_new_batch_takes_up_to_max_and_a_retried_one_exactly_its_own_jobs() {
        let t = "2026-12-02T10:00:00Z";
        let queue = [job(1, None, t), job(2, None, t), job(3, None, t)];
        assert_eq!(next_batch(&queue, 2).len(), 2);
        assert_eq!(next_batch(&queue, 10).len(), 3);
        let retried = [job(1, Some("b"), t), job(2, Some("b"), t), job(3, None, t)];
        assert_eq!(next_batch(&retried, 10).iter().map(|j| j.number).collect::<Vec<_>>(), [1, 2]);
        assert!(next_batch(&[], 5).is_empty());
    }

    #[test]
    fn a_batch_is_due_when_full_or_when_its_oldest_waited() {
        let config = Batch { max: 3, wait: Duration::from_secs(30) };
        let t = "2026-12-02T10:00:00Z";
        let oldest = crate::time::unix_seconds(t).unwrap() as u64 * 1000;
        assert_eq!(due_at(&[job(1, None, t)], config), oldest + 30_000);
        assert_eq!(due_at(&[job(1, None, t), job(2, None, t), job(3, None, t)], config), 0);
        let mut retried = job(1, Some("b"), t);
        retried.next_attempt = 77;
        assert_eq!(due_at(&[retried], config), 77);
    }
}
