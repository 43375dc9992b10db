//! `deliver`, `queue ...` and `log`: running and inspecting the delivery queues.

use crate::cli::QueueCommand;
use crate::config::extension::Phase;
use crate::config::{self, Backend, Config};
use crate::env::Env;
use crate::outcome::{Error, Outcome};
use crate::spool::Spool;
use crate::spool::deliver::{Deliverer, now_ms};
use crate::spool::job::{Job, Shelf};
use crate::spool::pg::Outbox;
use crate::spool::queues::Queues;
use crate::text::one_line;
use serde_json::json;
use std::io::Write;
use std::path::Path;

/// `pushgate deliver [--once|--watch]`: fan out what is incoming and deliver what is due;
/// `--watch` keeps at it (one line per attempt and state change on stderr) until SIGTERM.
pub fn deliver(config_path: &Path, watch: bool, env: &Env, stop: &(dyn Fn() -> bool + Sync)) -> Result<Outcome, Error> {
    let config = Config::load(config_path, None)?;
    let spool = Spool::open(&config.spool.dir).map_err(|e| Error::new(format!("cannot open the spool: {e}")))?;
    let repo_config = |git_dir: &Path| {
        let own = [git_dir.join(config::REPO_FILE), git_dir.join(".hg").join(config::REPO_FILE)];
        let file = own.iter().find(|f| f.is_file())?;
        Config::load(config_path, Some(file)).ok()
    };
    let tell = |line: &str| {
        let _ = writeln!(std::io::stderr(), "{line}");
    };
    let outbox = match &config.spool.backend {
        Backend::File => None,
        Backend::Postgres(pg) => match open_outbox(pg, watch, env, stop, &tell)? {
            Some(outbox) => Some(outbox),
            None => return Ok(Outcome::Success),
        },
    };
    let deliverer = Deliverer {
        spool: &spool,
        config: &config,
        landed: &crate::hook::record::landed,
        complete: &crate::hook::record::complete_heads,
        env,
        repo_config: &repo_config,
        tell: &tell,
        not_before: Default::default(),
        outbox: outbox.as_ref(),
        stop,
    };
    let result = if watch { deliverer.watch(stop) } else { deliverer.run_once() };
    result.map_err(|e| Error::new(format!("deliver: {e}")))?;
    Ok(Outcome::Success)
}

/// The fleet's outbox; `--watch` waits for the database (saying so once) rather than
/// stopping: the hooks go on recording locally meanwhile. `None` inside: stopped first.
fn open_outbox(
    pg: &config::Postgres,
    watch: bool,
    env: &Env,
    stop: &dyn Fn() -> bool,
    tell: &dyn Fn(&str),
) -> Result<Option<Outbox>, Error> {
    let mut said = false;
    loop {
        match Outbox::open(pg, env) {
            Ok(outbox) => return Ok(Some(outbox)),
            Err(e) if !watch => return Err(Error::new(format!("deliver: {e}"))),
            Err(e) => {
                if !said {
                    let what = one_line(&format!("{e} (retrying)"), None);
                    tell(&format!("{} error - {what}", crate::time::now_rfc3339()));
                    said = true;
                }
                for _ in 0..10 {
                    if stop() {
                        return Ok(None);
                    }
                    std::thread::sleep(std::time::Duration::from_millis(200));
                }
            }
        }
    }
}

/// The fleet's outbox, when the configuration delivers through one.
pub(super) fn outbox_of(config: Option<&Config>, env: &Env) -> Result<Option<Outbox>, Error> {
    match config.map(|c| &c.spool.backend) {
        Some(Backend::Postgres(pg)) => Outbox::open(pg, env).map(Some).map_err(|e| Error::new(e.to_string())),
        _ => Ok(None),
    }
}

/// The spool of a configuration that may be broken (queue commands must still work), as it
/// is: never created by a look.
fn spool_of(config_path: &Path) -> (Spool, Option<Config>) {
    match Config::load(config_path, None) {
        Ok(config) => (Spool::at(&config.spool.dir), Some(config)),
        Err(_) => (Spool::at(&config::lenient::spool_dir(config_path)), None),
    }
}

/// Every connector worth showing: the configured `post` extensions, then any other queue.
pub(super) fn connectors(queues: &dyn Queues, config: Option<&Config>) -> Result<Vec<String>, Error> {
    let mut names: Vec<String> = config
        .map(|c| c.extensions.iter().filter(|e| e.phase == Phase::Post).map(|e| e.connector.clone()).collect())
        .unwrap_or_default();
    for name in queues.connectors().map_err(|e| Error::new(e.to_string()))? {
        if !names.contains(&name) {
            names.push(name);
        }
    }
    Ok(names)
}

/// `pushgate queue ...`.
pub fn run(config_path: &Path, command: QueueCommand, env: &Env, out: &mut dyn Write) -> Result<Outcome, Error> {
    let (spool, config) = spool_of(config_path);
    let outbox = outbox_of(config.as_ref(), env)?;
    let queues: &dyn Queues = match &outbox {
        Some(outbox) => outbox,
        None => &spool,
    };
    match command {
        QueueCommand::Status { json } => status(&spool, queues, config.as_ref(), json, out),
        QueueCommand::List { connector, dead, json } => {
            list(queues, config.as_ref(), connector.as_deref(), dead, json, out)
        }
        QueueCommand::Show { job, json } => show(queues, &job, json, out),
        QueueCommand::Retry { jobs, all, connector, json } => {
            retry(queues, config.as_ref(), &jobs, all, connector.as_deref(), json, out)
        }
        QueueCommand::Drop { jobs, json } => drop_jobs(queues, &jobs, json, out),
        QueueCommand::Enable { connector, json } => {
            let was = queues.enable(&connector).map_err(|e| Error::new(e.to_string()))?;
            if json {
                writeln!(
                    out,
                    "{}",
                    crate::text::json(&json!({"connector": connector, "enabled": true, "was_disabled": was}))
                )?;
            } else if was {
                writeln!(out, "{connector}: enabled")?;
            } else {
                writeln!(out, "{connector}: was not disabled")?;
            }
            Ok(Outcome::Success)
        }
    }
}

fn when(ms: u64) -> Option<String> {
    (ms > now_ms()).then(|| crate::time::rfc3339((ms / 1000) as i64, 0))
}

fn status(
    spool: &Spool,
    queues: &dyn Queues,
    config: Option<&Config>,
    json: bool,
    out: &mut dyn Write,
) -> Result<Outcome, Error> {
    let mut rows = Vec::new();
    for name in connectors(queues, config)? {
        let summary = queues.summary(&name).map_err(|e| Error::new(e.to_string()))?;
        // A repository's own connectors (`name~tag`) are configured in its own file.
        let configured = name.contains('~')
            || config.is_none_or(|c| c.extensions.iter().any(|e| e.phase == Phase::Post && e.connector == name));
        rows.push(json!({
            "connector": name,
            "pending": summary.pending,
            "dead": summary.dead,
            "disabled": summary.disabled.is_some(),
            "next_attempt": summary.head.as_ref().and_then(|j| when(j.next_attempt)),
            "last_error": summary.last_error(),
            "configured": configured,
        }));
    }
    if json {
        writeln!(out, "{}", crate::text::json(&rows))?;
        return Ok(Outcome::Success);
    }
    if rows.is_empty() {
        writeln!(out, "no connectors (no `post` extensions configured)")?;
    }
    for row in rows {
        let next = row["next_attempt"].as_str().map(|t| format!(", next attempt {t}")).unwrap_or_default();
        let disabled = if row["disabled"] == true { ", DISABLED (pushgate queue enable)" } else { "" };
        let gone = if row["configured"] == false { " (no longer configured)" } else { "" };
        let error =
            row["last_error"].as_str().map(|e| format!(", last error: {}", one_line(e, None))).unwrap_or_default();
        writeln!(
            out,
            "{}{gone}: {} pending, {} dead{disabled}{next}{error}",
            row["connector"].as_str().unwrap_or(""),
            row["pending"],
            row["dead"]
        )?;
    }
    let aside = spool.aside();
    if !aside.is_empty() {
        let dir = spool.dir().join("aside");
        writeln!(
            out,
            "{} unreadable file(s) set aside in {} (see them, then remove them)",
            aside.len(),
            dir.display()
        )?;
    }
    let records = spool.incoming().map(|i| i.iter().filter(|e| !e.event && e.record.is_some()).count()).unwrap_or(0);
    if records > 0 {
        writeln!(out, "{records} push(es) recorded and waiting for their confirmation or resolution")?;
    }
    Ok(Outcome::Success)
}

fn job_row(job: &Job) -> serde_json::Value {
    json!({
        "id": job.id(),
        "connector": job.connector,
        "event_id": job.event_id,
        "attempts": job.attempts,
        "next_attempt": when(job.next_attempt),
        "last_error": job.last_error,
    })
}

fn list(
    queues: &dyn Queues,
    config: Option<&Config>,
    only: Option<&str>,
    dead: bool,
    json: bool,
    out: &mut dyn Write,
) -> Result<Outcome, Error> {
    let shelf = if dead { Shelf::Dead } else { Shelf::Queue };
    let mut jobs = Vec::new();
    for name in connectors(queues, config)?.into_iter().filter(|n| only.is_none_or(|o| o == n)) {
        jobs.extend(queues.jobs(&name, shelf).map_err(|e| Error::new(e.to_string()))?);
    }
    jobs.sort_by_key(|j| (j.number, j.change));
    if json {
        writeln!(out, "{}", crate::text::json(&jobs.iter().map(job_row).collect::<Vec<_>>()))?;
        return Ok(Outcome::Success);
    }
    for job in &jobs {
        let next = when(job.next_attempt).map(|t| format!(" next {t}")).unwrap_or_default();
        let error = job.last_error.as_ref().map(|e| format!(" last error: {}", one_line(e, None))).unwrap_or_default();
        let (repo, event) = (one_line(&job.repo, None), one_line(&job.event_id, None));
        writeln!(out, "{} {repo} {event} attempts {}{next}{error}", job.id(), job.attempts)?;
    }
    Ok(Outcome::Success)
}

fn show(queues: &dyn Queues, id: &str, json: bool, out: &mut dyn Write) -> Result<Outcome, Error> {
    let (job, shelf) = queues.find_job(id).ok_or_else(|| Error::new(format!("no job {id}")))?;
    let mut value = serde_json::to_value(&job).map_err(|e| Error::new(e.to_string()))?;
    value["id"] = json!(job.id());
    value["dead"] = json!(shelf == Shelf::Dead);
    if json {
        writeln!(out, "{}", crate::text::json(&value))?;
    } else {
        writeln!(out, "{}", crate::text::json_pretty(&value))?;
    }
    Ok(Outcome::Success)
}

fn retry(
    queues: &dyn Queues,
    config: Option<&Config>,
    ids: &[String],
    all: bool,
    only: Option<&str>,
    json: bool,
    out: &mut dyn Write,
) -> Result<Outcome, Error> {
    let mut chosen: Vec<Job> = Vec::new();
    if all {
        for name in connectors(queues, config)?.into_iter().filter(|n| only.is_none_or(|o| o == n)) {
            chosen.extend(queues.jobs(&name, Shelf::Dead).map_err(|e| Error::new(e.to_string()))?);
        }
    } else {
        for id in ids {
            match queues.find_job(id) {
                Some((job, Shelf::Dead)) => chosen.push(job),
                Some((_, Shelf::Queue)) => return Err(Error::new(format!("job {id} is not dead: it is waiting"))),
                None => return Err(Error::new(format!("no job {id}"))),
            }
        }
    }
    // A dead job's number is older than what waits behind it, so back in the queue it sorts
    // first: the front of its connector's queue.
    for job in &mut chosen {
        job.attempts = 0;
        job.next_attempt = 0;
        queues.revive(job).map_err(|e| Error::new(e.to_string()))?;
    }
    let ids: Vec<String> = chosen.iter().map(Job::id).collect();
    if json {
        writeln!(out, "{}", crate::text::json(&json!({"retried": ids})))?;
    } else {
        let hint = if ids.is_empty() { "" } else { " (delivered by the next `pushgate deliver`)" };
        writeln!(out, "{} job(s) back at the front of their queues{hint}", ids.len())?;
    }
    Ok(Outcome::Success)
}

fn drop_jobs(queues: &dyn Queues, ids: &[String], json: bool, out: &mut dyn Write) -> Result<Outcome, Error> {
    let mut dropped = Vec::new();
    for id in ids {
        queues.find_job(id).ok_or_else(|| Error::new(format!("no job {id}")))?;
        // Gone since the look: a deliverer has just settled it.
        if let Some(job) = queues.drop_job(id).map_err(|e| Error::new(e.to_string()))? {
            dropped.push(job.id());
        }
    }
    if json {
        writeln!(out, "{}", crate::text::json(&json!({"dropped": dropped})))?;
    } else {
        writeln!(out, "{} job(s) dropped", dropped.len())?;
    }
    Ok(Outcome::Success)
}

/// `pushgate log`: every attempt kept, newest last.
pub fn log(
    config_path: &Path,
    only: Option<&str>,
    json: bool,
    env: &Env,
    out: &mut dyn Write,
) -> Result<Outcome, Error> {
    let (spool, config) = spool_of(config_path);
    let outbox = outbox_of(config.as_ref(), env)?;
    let queues: &dyn Queues = match &outbox {
        Some(outbox) => outbox,
        None => &spool,
    };
    let attempts = queues.attempts().map_err(|e| Error::new(e.to_string()))?;
    for attempt in attempts.iter().filter(|a| only.is_none_or(|o| o == a.connector)) {
        if json {
            writeln!(out, "{}", crate::text::json(attempt))?;
        } else {
            let status = one_line(attempt.status.as_deref().unwrap_or("-"), None);
            let error = attempt.error.as_ref().map(|e| format!(" {}", one_line(e, None))).unwrap_or_default();
            writeln!(
                out,
                "{} {} {} #{} {} {status} {}ms{error}",
                attempt.time,
                one_line(&attempt.connector, None),
                one_line(&attempt.job, None),
                attempt.attempt,
                attempt.outcome.as_str(),
                attempt.duration_ms
            )?;
        }
    }
    Ok(Outcome::Success)
}
