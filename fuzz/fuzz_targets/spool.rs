//! The spool's files, arbitrary bytes read as each of them: an event (push or pull), a job,
//! a journal. What parses must write back and read again.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pushgate::event::Spooled;
use pushgate::spool::Journal;
use pushgate::spool::job::Job;

fuzz_target!(|data: &[u8]| {
    match Spooled::from_json(data) {
        Ok(Spooled::Push(event)) => {
            let bytes = serde_json::to_vec(&event).expect("a push event serializes");
            Spooled::from_json(&bytes).expect("a written push event reads back");
        }
        Ok(Spooled::Pull(event)) => {
            let bytes = serde_json::to_vec(&event).expect("a pull event serializes");
            Spooled::from_json(&bytes).expect("a written pull event reads back");
        }
        Err(_) => {}
    }
    if let Ok(job) = serde_json::from_slice::<Job>(data) {
        let bytes = serde_json::to_vec(&job).expect("a job serializes");
        let again: Job = serde_json::from_slice(&bytes).expect("a written job reads back");
        assert_eq!((&job.connector, job.number, job.change), (&again.connector, again.number, again.change));
        let _ = (job.file_name(), job.id());
    }
    if let Ok(journal) = serde_json::from_slice::<Journal>(data) {
        let bytes = serde_json::to_vec(&journal).expect("a journal serializes");
        serde_json::from_slice::<Journal>(&bytes).expect("a written journal reads back");
    }
});
