//! Periodic extensions (`phase = "periodic"`, `every`): `deliver --watch` runs each with
//! the inventory of the repositories when it is due. When it is next due is kept in the
//! spool (`periodic/<name>.json`), so a run missed while no deliverer ran happens once
//! when one starts, not once per missed interval. A failed run is retried on the retry
//! schedule (`on_error = "allow"`: it waits for the next interval instead).

use super::deliver::{Deliverer, Level, now_ms};
use super::log::{Attempt, AttemptOutcome};
use super::settle::{Settlement, settle};
use crate::config::extension::{Extension, OnError, Phase};
use crate::event::EventKind;
use crate::extension::{self, Call};
use serde::{Deserialize, Serialize};
use std::io;
use std::time::{Duration, Instant};

/// When a periodic extension is next due, and how many attempts its current run made.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    /// Unix milliseconds (0: now).
    pub next_due: u64,
    pub attempts: u32,
}

/// What becomes of a periodic extension's state after a run that settled as `settlement`
/// at `now` (pure: the schedule's decisions).
pub fn after_run(state: State, settlement: &Settlement, every: Duration, on_error: OnError, now: u64) -> State {
    let next_interval = State { next_due: now.saturating_add(every.as_millis() as u64), attempts: 0 };
    match settlement {
        Settlement::Retry { at_ms, .. } if on_error == OnError::Reject => {
            State { next_due: *at_ms, attempts: state.attempts + 1 }
        }
        _ => next_interval,
    }
}

impl Deliverer<'_> {
    /// Run the periodic extensions that are due; how long until the next one is.
    pub(super) fn run_periodic(&self) -> Option<Duration> {
        let periodic = self.config.extensions.iter().filter(|e| e.phase == Phase::Periodic && e.enabled);
        let mut next: Option<Duration> = None;
        for ext in periodic {
            let due_in = match self.run_if_due(ext) {
                Ok(due_in) => due_in,
                Err(e) => {
                    self.say(Level::Error, Some(&ext.name), &format!("periodic run: {e}"));
                    Duration::from_secs(1)
                }
            };
            next = Some(next.map_or(due_in, |n| n.min(due_in)));
        }
        next
    }

    fn run_if_due(&self, ext: &Extension) -> io::Result<Duration> {
        let every = ext.every.unwrap_or(Duration::from_secs(3600));
        let dir = self.spool.dir().join("periodic");
        super::file::create_private_dir(&dir)?;
        // One runner at a time (two watchers on one spool).
        let Some(_lock) = super::lock_file(&dir.join(format!("{}.lock", ext.name)), false)? else {
            return Ok(every.min(Duration::from_secs(5)));
        };
        let state_name = format!("{}.json", ext.name);
        let state: State =
            std::fs::read(dir.join(&state_name)).ok().and_then(|b| serde_json::from_slice(&b).ok()).unwrap_or_default();
        let now = now_ms();
        if state.next_due > now {
            return Ok(Duration::from_millis(state.next_due - now));
        }
        let inventory = crate::inventory::take(self.config);
        let body = serde_json::to_vec(&inventory).map_err(io::Error::other)?;
        let delivery_id = crate::ids::name_based_id(&format!("{}\0{}\0periodic", inventory.id, ext.name));
        let cwd = self.config.repos_root.clone().unwrap_or_else(|| self.spool.dir().to_path_buf());
        let call = Call {
            body: &body,
            event: EventKind::Inventory,
            phase: Phase::Periodic,
            user: "",
            repo: "",
            event_id: &inventory.id,
            delivery_id: &delivery_id,
            cwd: &cwd,
            dialect: extension::body::Dialect::Pushgate,
            instance: &self.config.server.base_url,
        };
        let started = Instant::now();
        let reply = extension::Connection::new(ext).call(&call, self.env);
        let duration_ms = started.elapsed().as_millis() as u64;
        let attempts = state.attempts + 1;
        let settlement = settle(reply, attempts, &self.config.spool.retry, now_ms(), crate::ids::random_unit());
        let after = after_run(state, &settlement, every, ext.on_error, now_ms());
        let bytes = serde_json::to_vec(&after).map_err(io::Error::other)?;
        super::write_durably(&dir, &state_name, &bytes, false)?;
        let (outcome, status, error) = match settlement {
            Settlement::Delivered { status } => (AttemptOutcome::Delivered, Some(status), None),
            Settlement::Retry { status, error, .. } if after.attempts > 0 => {
                (AttemptOutcome::Retry, status, Some(error))
            }
            Settlement::Retry { status, error, .. } => (
                AttemptOutcome::Dead,
                status,
                Some(format!("{error} (on_error = \"allow\": the next run is at the next interval)")),
            ),
            Settlement::Dead { status, error } => (AttemptOutcome::Dead, status, Some(error)),
            Settlement::Disabled { reason } => (AttemptOutcome::Dead, Some("HTTP 410".into()), Some(reason)),
        };
        let attempt = Attempt {
            time: crate::time::now_rfc3339(),
            connector: ext.name.clone(),
            job: format!("{}.periodic", ext.name),
            event_id: inventory.id.clone(),
            delivery_id,
            attempt: attempts,
            outcome,
            status,
            duration_ms,
            error,
            repo: None,
            sequence: None,
            batch: None,
        };
        (self.tell)(&attempt.line());
        let _ = self.spool.log_attempt(&attempt);
        Ok(Duration::from_millis(after.next_due.saturating_sub(now_ms())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: Duration = Duration::from_secs(3600);

    #[test]
    fn a_run_that_worked_or_failed_for_good_waits_for_the_next_interval() {
        let state = State { next_due: 0, attempts: 2 };
        let done = Settlement::Delivered { status: "HTTP 200".into() };
        assert_eq!(after_run(state, &done, HOUR, OnError::Reject, 1_000), State { next_due: 3_601_000, attempts: 0 });
        let dead = Settlement::Dead { status: None, error: "refused".into() };
        assert_eq!(after_run(state, &dead, HOUR, OnError::Reject, 0), State { next_due: 3_600_000, attempts: 0 });
    }

    #[test]
    fn a_failed_run_is_retried_on_the_schedule_unless_errors_are_allowed() {
        let state = State { next_due: 0, attempts: 1 };
        let failed = Settlement::Retry { at_ms: 5_000, status: None, error: "503".into() };
        assert_eq!(after_run(state, &failed, HOUR, OnError::Reject, 0), State { next_due: 5_000, attempts: 2 });
        assert_eq!(after_run(state, &failed, HOUR, OnError::Allow, 0), State { next_due: 3_600_000, attempts: 0 });
    }
}
