//! The journal: what post-receive records before anything else, so that a post-receive
//! killed while it reads the repository still leaves the push to be told. A deliverer
//! rebuilds the event from it once its writer is gone (its lock is free).

use super::{Spool, write_durably};
use crate::identity::Via;
use serde::{Deserialize, Serialize};
use std::fs::File;
use std::io;
use std::path::PathBuf;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Journal {
    pub sequence: u64,
    pub time: String,
    pub git_dir: PathBuf,
    pub repo: String,
    pub user: String,
    pub via: Via,
    pub push_options: Vec<String>,
    /// The hook's stdin lines: `<old> <new> <ref>`.
    pub updates: String,
    /// Every ref and its target right after the push, when the repository could be read:
    /// a rebuilt event must count the push's commits as of then.
    #[serde(default)]
    pub refs: Option<Vec<(String, String)>>,
}

impl Spool {
    /// Write the journal for push `number`; the returned file holds its lock until dropped.
    pub fn write_journal(&self, number: u64, journal: &Journal) -> io::Result<File> {
        let bytes = serde_json::to_vec(journal).map_err(io::Error::other)?;
        let file = write_durably(&self.dir().join("incoming"), &format!("{number:020}.journal"), &bytes, true)?;
        Ok(file.expect("a locked write returns its file"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spool::{Incoming, lock_file};

    #[test]
    fn a_locked_journal_cannot_be_locked_again_until_dropped() {
        let tmp = tempfile::tempdir().unwrap();
        let spool = Spool::open(tmp.path()).unwrap();
        let journal = Journal {
            sequence: 1,
            time: "t".into(),
            git_dir: "/x".into(),
            repo: "x".into(),
            user: "u".into(),
            via: Via::Local,
            push_options: vec![],
            updates: String::new(),
            refs: None,
        };
        let held = spool.write_journal(7, &journal).unwrap();
        let path = spool.incoming_path(&Incoming::Journal(7));
        assert!(lock_file(&path, false).unwrap().is_none());
        drop(held);
        assert!(lock_file(&path, false).unwrap().is_some());
    }
}
