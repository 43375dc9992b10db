//! Sequences: each repository's events are numbered 1, 2, 3, ... as the deliverer fans them
//! out, in push order, so receivers can order and de-duplicate. Given once per event, under
//! the fan-out lock; an event keeps the number it was given even if the fan-out crashes
//! before its jobs exist (no gaps, no duplicates).

use super::job::Shelf;
use super::{Spool, at, write_durably};
use std::collections::BTreeMap;
use std::io;

const FILE: &str = "sequences.json";

/// The last sequence given to each repository.
#[derive(Debug, Default)]
pub struct Sequences {
    last: BTreeMap<String, u64>,
}

impl Sequences {
    /// The repository's next sequence (not yet recorded: see [`Sequences::given`]).
    pub fn next(&self, repo: &str) -> u64 {
        self.last.get(repo).copied().unwrap_or(0) + 1
    }

    /// Note that `repo` has used `sequence`.
    pub fn given(&mut self, repo: &str, sequence: u64) {
        let last = self.last.entry(repo.to_string()).or_insert(0);
        *last = (*last).max(sequence);
    }
}

impl Spool {
    /// The sequences, rebuilt from the jobs and the attempt log when the file is damaged (the
    /// damaged file is set aside).
    pub(super) fn sequences(&self) -> io::Result<Sequences> {
        let path = self.dir().join(FILE);
        match std::fs::read(&path) {
            Ok(bytes) => match serde_json::from_slice(&bytes) {
                Ok(last) => return Ok(Sequences { last }),
                Err(_) => {
                    self.set_aside(&path)?;
                }
            },
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(at(&path, e)),
        }
        Ok(self.rebuilt_sequences())
    }

    /// What the spool still shows of given sequences: jobs waiting or dead, and attempts.
    fn rebuilt_sequences(&self) -> Sequences {
        let mut sequences = Sequences::default();
        for connector in self.connectors().unwrap_or_default() {
            for shelf in [Shelf::Queue, Shelf::Dead] {
                for job in self.jobs(&connector, shelf).unwrap_or_default() {
                    if let Some(sequence) = job.sequence {
                        sequences.given(&job.repo, sequence);
                    }
                }
            }
        }
        for attempt in self.attempts().unwrap_or_default() {
            if let (Some(repo), Some(sequence)) = (&attempt.repo, attempt.sequence) {
                sequences.given(repo, sequence);
            }
        }
        sequences
    }

    pub(super) fn save_sequences(&self, sequences: &Sequences) -> io::Result<()> {
        let bytes = serde_json::to_vec(&sequences.last).map_err(io::Error::other)?;
        write_durably(self.dir(), FILE, &bytes, false).map(|_| ())
    }
}
