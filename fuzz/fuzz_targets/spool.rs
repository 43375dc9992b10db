//! The spool's files, arbitrary bytes read as each of them: an event (push or pull), a job,
//! a record (what the gate accepted), a delivery log line, and (as UTF-8) a job id as
//! `pushgate queue` takes it. What parses must write back and read again.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pushgate::config::extension::valid_connector;
use pushgate::event::Spooled;
use pushgate::spool::Record;
use pushgate::spool::job::{Job, parse_id};
use pushgate::spool::log::Attempt;

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
        Ok(Spooled::Repository(event)) => {
            let bytes = serde_json::to_vec(&event).expect("a repository event serializes");
            Spooled::from_json(&bytes).expect("a written repository event reads back");
        }
        Err(_) => {}
    }
    if let Ok(job) = serde_json::from_slice::<Job>(data) {
        let bytes = serde_json::to_vec(&job).expect("a job serializes");
        let again: Job = serde_json::from_slice(&bytes).expect("a written job reads back");
        assert_eq!((&job.connector, job.number, job.change), (&again.connector, again.number, again.change));
        let _ = job.file_name();
        let id = parse_id(&job.id());
        // Ids name only connectors pushgate makes (`queue` must not reach outside the spool).
        let expected = valid_connector(&job.connector).then(|| (job.connector.clone(), job.number, job.change));
        assert_eq!(id, expected, "job id {:?}", job.id());
    }
    if let Ok(text) = std::str::from_utf8(data)
        && let Some((connector, number, change)) = parse_id(text)
    {
        let again = format!("{connector}.{number}.{change}");
        assert_eq!(parse_id(&again), Some((connector, number, change)));
    }
    if let Ok(record) = serde_json::from_slice::<Record>(data) {
        let bytes = serde_json::to_vec(&record).expect("a record serializes");
        serde_json::from_slice::<Record>(&bytes).expect("a written record reads back");
    }
    if let Ok(attempt) = serde_json::from_slice::<Attempt>(data) {
        let _ = attempt.line();
        let bytes = serde_json::to_vec(&attempt).expect("an attempt serializes");
        serde_json::from_slice::<Attempt>(&bytes).expect("a written attempt reads back");
    }
});
