//! The delivery log: one JSON line per attempt, in daily files, kept for `keep_log`.

use super::{Spool, at};
use serde::{Deserialize, Serialize};
use std::io::{self, Write};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Attempt {
    pub time: String,
    pub connector: String,
    pub job: String,
    pub event_id: String,
    pub delivery_id: String,
    pub attempt: u32,
    pub outcome: AttemptOutcome,
    /// `HTTP 503`, `exit 3`, ... when there was one.
    pub status: Option<String>,
    pub duration_ms: u64,
    pub error: Option<String>,
    /// The event's repository and sequence (rebuilding lost sequences reads them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repo: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sequence: Option<u64>,
}

impl Attempt {
    /// The attempt as a service journal line:
    /// `time level connector event delivery outcome duration [status] [error]`.
    pub fn line(&self) -> String {
        let level = match self.outcome {
            AttemptOutcome::Delivered | AttemptOutcome::Dropped => "info",
            AttemptOutcome::Retry => "warn",
            AttemptOutcome::Dead | AttemptOutcome::Disabled => "error",
        };
        let show = |text: &str| crate::text::one_line(text, None);
        let status = self.status.as_deref().map(|s| format!(" {}", show(s))).unwrap_or_default();
        let error = self.error.as_deref().map(|e| format!(" {}", show(e))).unwrap_or_default();
        format!(
            "{} {level} {} {} {} {} {}ms{status}{error}",
            self.time,
            show(&self.connector),
            show(&self.event_id),
            show(&self.delivery_id),
            self.outcome.as_str(),
            self.duration_ms
        )
    }
}

/// What an attempt came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AttemptOutcome {
    Delivered,
    /// A transient failure: tried again later.
    Retry,
    /// Moved to the dead letters (or set aside, when it could not be read).
    Dead,
    /// HTTP 410: dead, and the connector disabled.
    Disabled,
    /// `queue drop` removed the job while it was being delivered.
    Dropped,
}

impl AttemptOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            AttemptOutcome::Delivered => "delivered",
            AttemptOutcome::Retry => "retry",
            AttemptOutcome::Dead => "dead",
            AttemptOutcome::Disabled => "disabled",
            AttemptOutcome::Dropped => "dropped",
        }
    }
}

impl Spool {
    pub fn log_attempt(&self, attempt: &Attempt) -> io::Result<()> {
        let day = attempt.time.get(..10).unwrap_or("unknown");
        let path = self.dir().join("log").join(format!("{day}.jsonl"));
        let mut line = crate::text::json(attempt).into_bytes();
        line.push(b'\n');
        let mut file = super::file::open_private_append(&path)?;
        file.lock().map_err(|e| at(&path, e))?;
        // Whole lines only: a write cut short (a full disk) is taken back.
        let length = file.metadata().map_err(|e| at(&path, e))?.len();
        if let Err(e) = file.write_all(&line) {
            let _ = file.set_len(length);
            return Err(at(&path, e));
        }
        Ok(())
    }

    /// Every attempt still kept, oldest first.
    pub fn attempts(&self) -> io::Result<Vec<Attempt>> {
        let mut attempts = Vec::new();
        for name in self.log_files()? {
            let text = std::fs::read_to_string(self.dir().join("log").join(&name)).unwrap_or_default();
            attempts.extend(text.lines().filter_map(|l| serde_json::from_str::<Attempt>(l).ok()));
        }
        attempts.sort_by(|a, b| a.time.cmp(&b.time));
        Ok(attempts)
    }

    /// Delete the daily files wholly older than `keep`.
    pub fn clean_log(&self, keep: Duration) -> io::Result<()> {
        let cutoff = SystemTime::now().checked_sub(keep).unwrap_or(UNIX_EPOCH);
        let cutoff_day = crate::time::rfc3339(cutoff.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64), 0);
        for name in self.log_files()? {
            if name.get(..10).is_some_and(|day| day < &cutoff_day[..10]) {
                let _ = std::fs::remove_file(self.dir().join("log").join(&name));
            }
        }
        Ok(())
    }

    fn log_files(&self) -> io::Result<Vec<String>> {
        let dir = self.dir().join("log");
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(at(&dir, e)),
        };
        let mut names: Vec<String> =
            entries.filter_map(|e| e.ok()?.file_name().into_string().ok()).filter(|n| n.ends_with(".jsonl")).collect();
        names.sort();
        Ok(names)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attempt(time: &str) -> Attempt {
        Attempt {
            time: time.into(),
            connector: "ci".into(),
            job: "ci.1.0".into(),
            event_id: "e".into(),
            delivery_id: "d".into(),
            attempt: 1,
            outcome: AttemptOutcome::Delivered,
            status: Some("HTTP 200".into()),
            duration_ms: 3,
            error: None,
            repo: None,
            sequence: None,
        }
    }

    #[test]
    fn old_days_are_cleaned_and_recent_ones_kept() {
        let tmp = tempfile::tempdir().unwrap();
        let spool = Spool::open(tmp.path()).unwrap();
        spool.log_attempt(&attempt("2001-01-01T00:00:00Z")).unwrap();
        let now = crate::time::now_rfc3339();
        spool.log_attempt(&attempt(&now)).unwrap();
        assert_eq!(spool.attempts().unwrap().len(), 2);
        spool.clean_log(Duration::from_secs(86_400 * 14)).unwrap();
        assert_eq!(spool.attempts().unwrap(), [attempt(&now)]);
    }
}
