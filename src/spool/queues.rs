//! What the queue commands (`queue ...`, `log`, `metrics`, `doctor`) see of the queues,
//! the same on both backends: this machine's spool, or the fleet's outbox.

use super::Spool;
use super::job::{Job, Shelf, Summary};
use super::log::Attempt;
use std::io;

pub trait Queues {
    /// Every connector with a queue.
    fn connectors(&self) -> io::Result<Vec<String>>;
    fn summary(&self, connector: &str) -> io::Result<Summary>;
    /// A shelf's jobs, oldest first.
    fn jobs(&self, connector: &str, shelf: Shelf) -> io::Result<Vec<Job>>;
    fn find_job(&self, id: &str) -> Option<(Job, Shelf)>;
    /// Enable a disabled connector; whether it was disabled.
    fn enable(&self, connector: &str) -> io::Result<bool>;
    /// A dead job back at the front of its queue, as `job` says (attempts reset).
    fn revive(&self, job: &Job) -> io::Result<()>;
    /// Drop a job, waiting or dead: the job, if there was one.
    fn drop_job(&self, id: &str) -> io::Result<Option<Job>>;
    /// The delivery log, oldest first.
    fn attempts(&self) -> io::Result<Vec<Attempt>>;
}

impl Queues for Spool {
    fn connectors(&self) -> io::Result<Vec<String>> {
        Spool::connectors(self)
    }

    fn summary(&self, connector: &str) -> io::Result<Summary> {
        Spool::summary(self, connector)
    }

    fn jobs(&self, connector: &str, shelf: Shelf) -> io::Result<Vec<Job>> {
        Spool::jobs(self, connector, shelf)
    }

    fn find_job(&self, id: &str) -> Option<(Job, Shelf)> {
        Spool::find_job(self, id)
    }

    fn enable(&self, connector: &str) -> io::Result<bool> {
        Spool::enable(self, connector)
    }

    fn revive(&self, job: &Job) -> io::Result<()> {
        let _held = self.lock_jobs(&job.connector)?;
        self.move_job(job, Shelf::Dead, Shelf::Queue)
    }

    fn drop_job(&self, id: &str) -> io::Result<Option<Job>> {
        let Some((job, _)) = Spool::find_job(self, id) else { return Ok(None) };
        let _held = self.lock_jobs(&job.connector)?;
        // Looked up again under the lock: a deliverer may have just settled it.
        let Some((job, shelf)) = Spool::find_job(self, id) else { return Ok(None) };
        self.remove_job(&job, shelf)?;
        Ok(Some(job))
    }

    fn attempts(&self) -> io::Result<Vec<Attempt>> {
        Spool::attempts(self)
    }
}
