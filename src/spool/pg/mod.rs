//! The fleet's outbox in PostgreSQL (SPEC §11): the jobs of every Git server, each
//! connector worked by one worker at a time through a lease with a fencing token.
//!
//! The hooks never see it: they record into the local spool as always. `deliver` relays
//! the local jobs here (exactly once per delivery id, whatever crashes in between) and
//! works the connectors whose lease it gets. Every statement that records an outcome
//! first checks the token in the same transaction, under the row lock of the connector:
//! a worker whose lease was taken over can no longer settle or move a job.

use super::job::{Job, Shelf, Summary, parse_id};
use super::log::Attempt;
use super::queues::Queues;
use crate::config::Postgres;
use crate::env::Env;
use postgres::config::{Host, SslMode};
use postgres::fallible_iterator::FallibleIterator;
use postgres::{Client, NoTls};
use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

mod schema;

/// The channel workers listen on: a connector's name, when jobs land for it.
pub const CHANNEL: &str = "pushgate_jobs";

/// How long connecting may take before the database counts as down.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// A connection to the outbox, with a few spare clients for the connectors' threads.
pub struct Outbox {
    config: postgres::Config,
    tls: Option<tokio_postgres_rustls::MakeRustlsConnect>,
    pool: Mutex<Vec<Client>>,
    /// This worker, as the connectors' `holder` column shows it.
    pub holder: String,
    pub lease: Duration,
    pruned: Mutex<Option<std::time::Instant>>,
}

/// A connector held by this worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lease {
    pub token: i64,
}

/// What settling an attempt came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Settled {
    Done,
    /// The job was dropped (`queue drop`) during the attempt: it stays dropped.
    Dropped,
    /// Another worker holds the connector now: this one must stop working it.
    LeaseLost,
}

/// How an attempt's job changes.
pub enum Change<'a> {
    Delete,
    Dead(&'a Job),
    Disable(&'a Job, &'a str),
    Retry(&'a Job),
}

fn db(e: postgres::Error) -> io::Error {
    let detail = match (e.as_db_error(), std::error::Error::source(&e)) {
        (Some(db), _) => format!("{}: {}", db.severity(), db.message()),
        (None, Some(source)) => format!("{e}: {source}"),
        (None, None) => e.to_string(),
    };
    io::Error::other(crate::text::one_line(&format!("database: {detail}"), None))
}

fn json_error(e: serde_json::Error) -> io::Error {
    io::Error::other(format!("database: a stored job cannot be read: {e}"))
}

impl Outbox {
    /// Connect (once, to check it works) and bring the schema up to date.
    pub fn open(pg: &Postgres, env: &Env) -> io::Result<Outbox> {
        let url = read_url(pg, env)?;
        let mut config: postgres::Config = url
            .parse()
            .map_err(|_| io::Error::other(format!("{} is not a PostgreSQL connection string", url_source(pg))))?;
        // A worker stopped inside a transaction holds its connector's row lock, which the
        // next worker's SKIP LOCKED would skip for as long as the session lived: the server
        // ends a session idle in a transaction for a lease, and keepalives find a dead peer.
        let lease_ms = pg.lease.as_millis().min(i32::MAX as u128);
        config
            .connect_timeout(CONNECT_TIMEOUT)
            .application_name("pushgate")
            .options(&format!("-c idle_in_transaction_session_timeout={lease_ms}"))
            .keepalives(true)
            .keepalives_idle(pg.lease.max(Duration::from_secs(1)));
        let over_tcp = config.get_hosts().iter().any(|h| matches!(h, Host::Tcp(_)));
        let tls = match (over_tcp, config.get_ssl_mode()) {
            (false, _) | (true, SslMode::Disable) => None,
            (true, _) => {
                config.ssl_mode(SslMode::Require);
                Some(tls_connector(pg.ca_file.as_deref())?)
            }
        };
        let holder = format!("{}:{}", hostname(), std::process::id());
        let outbox =
            Outbox { config, tls, pool: Mutex::new(Vec::new()), holder, lease: pg.lease, pruned: Mutex::new(None) };
        let mut client = outbox.connect()?;
        schema::migrate(&mut client)?;
        outbox.give_back(client);
        Ok(outbox)
    }

    /// Whether the connection string turns TLS off for a TCP host (`doctor` warns).
    pub fn plain_tcp(&self) -> bool {
        self.tls.is_none() && self.config.get_hosts().iter().any(|h| matches!(h, Host::Tcp(_)))
    }

    /// A new connection.
    pub fn connect(&self) -> io::Result<Client> {
        match &self.tls {
            Some(tls) => self.config.connect(tls.clone()),
            None => self.config.connect(NoTls),
        }
        .map_err(db)
    }

    fn client(&self) -> io::Result<Client> {
        let spare = self.pool.lock().unwrap_or_else(|p| p.into_inner()).pop();
        match spare {
            Some(client) if !client.is_closed() => Ok(client),
            _ => self.connect(),
        }
    }

    fn give_back(&self, client: Client) {
        if !client.is_closed() {
            self.pool.lock().unwrap_or_else(|p| p.into_inner()).push(client);
        }
    }

    /// Run `work` on a pooled connection; a connection that failed is not pooled again. A
    /// pooled connection the server closed (a restart) is replaced and `work` run once
    /// more: every use here is one statement or one transaction, so a second run is safe.
    fn with<T>(&self, mut work: impl FnMut(&mut Client) -> Result<T, postgres::Error>) -> io::Result<T> {
        let mut client = self.client()?;
        match work(&mut client) {
            Ok(value) => {
                self.give_back(client);
                Ok(value)
            }
            Err(e) if e.is_closed() || client.is_closed() => {
                let mut fresh = self.connect()?;
                let value = work(&mut fresh).map_err(db)?;
                self.give_back(fresh);
                Ok(value)
            }
            Err(e) => Err(db(e)),
        }
    }

    /// Relay local jobs into the outbox, in order, in one transaction: each at most once
    /// (a delivery id relayed before is skipped), the connectors' workers woken at commit.
    pub fn relay(&self, jobs: &[Job]) -> io::Result<()> {
        if jobs.is_empty() {
            return Ok(());
        }
        let mut rows = Vec::with_capacity(jobs.len());
        for job in jobs {
            rows.push((job, serde_json::to_string(job).map_err(io::Error::other)?));
        }
        self.with(|client| {
            let mut tx = client.transaction()?;
            let insert = tx.prepare(
                "WITH r AS (INSERT INTO pushgate.relayed (delivery_id) VALUES ($1)
                            ON CONFLICT DO NOTHING RETURNING 1)
                 INSERT INTO pushgate.jobs (connector, job) SELECT $2, $3 FROM r",
            )?;
            let mut connectors: Vec<&str> = Vec::new();
            for (job, text) in &rows {
                tx.execute(&insert, &[&job.delivery_id, &job.connector, text])?;
                if !connectors.contains(&job.connector.as_str()) {
                    connectors.push(&job.connector);
                }
            }
            for name in connectors {
                tx.execute("INSERT INTO pushgate.connectors (name) VALUES ($1) ON CONFLICT DO NOTHING", &[&name])?;
                tx.execute("SELECT pg_notify($1, $2)", &[&CHANNEL, &name])?;
            }
            tx.commit()
        })
    }

    /// Take `connector` if it is enabled and nobody holds an unexpired lease on it.
    pub fn take(&self, connector: &str) -> io::Result<Option<Lease>> {
        let (holder, lease_ms) = (&self.holder, self.lease_ms());
        self.with(|client| {
            client
                .execute("INSERT INTO pushgate.connectors (name) VALUES ($1) ON CONFLICT DO NOTHING", &[&connector])?;
            let row = client.query_opt(
                "UPDATE pushgate.connectors c
                 SET token = c.token + 1, holder = $2,
                     expires = clock_timestamp() + $3::bigint * interval '1 millisecond'
                 FROM (SELECT name FROM pushgate.connectors
                       WHERE name = $1 AND disabled IS NULL
                         AND (expires IS NULL OR expires < clock_timestamp())
                       FOR UPDATE SKIP LOCKED) free
                 WHERE c.name = free.name
                 RETURNING c.token",
                &[&connector, holder, &lease_ms],
            )?;
            Ok(row.map(|r| Lease { token: r.get(0) }))
        })
    }

    /// Extend a lease; false when it was taken over.
    pub fn renew(&self, connector: &str, lease: Lease) -> io::Result<bool> {
        let lease_ms = self.lease_ms();
        self.with(|client| {
            let n = client.execute(
                "UPDATE pushgate.connectors
                 SET expires = clock_timestamp() + $3::bigint * interval '1 millisecond'
                 WHERE name = $1 AND token = $2 AND disabled IS NULL",
                &[&connector, &lease.token, &lease_ms],
            )?;
            Ok(n == 1)
        })
    }

    /// Give a connector back (a worker with nothing left to do, or shutting down).
    pub fn release(&self, connector: &str, lease: Lease) -> io::Result<()> {
        self.with(|client| {
            client.execute(
                "UPDATE pushgate.connectors SET holder = NULL, expires = NULL WHERE name = $1 AND token = $2",
                &[&connector, &lease.token],
            )?;
            Ok(())
        })
    }

    /// The next `limit` waiting jobs of a connector, oldest first.
    pub fn waiting(&self, connector: &str, limit: i64) -> io::Result<Vec<Job>> {
        let rows = self.with(|client| {
            client.query(
                "SELECT id, job FROM pushgate.jobs WHERE connector = $1 AND NOT dead ORDER BY id LIMIT $2",
                &[&connector, &limit],
            )
        })?;
        rows.iter().map(|r| job_of(r.get(0), r.get(1))).collect()
    }

    /// Record an attempt's outcome, if the lease is still ours: the job changes as
    /// `change` says, the attempt is logged, the lease is extended. A commit that a crash
    /// of the database loses only means the attempt is made again.
    pub fn settle(&self, lease: Lease, job: &Job, change: Change, attempt: &Attempt) -> io::Result<Settled> {
        use postgres::types::Type;
        let lease_ms = self.lease_ms();
        let text = |j: &Job| serde_json::to_string(j).map_err(io::Error::other);
        let (kind, updated, next, reason): (&str, Option<String>, i64, Option<String>) = match &change {
            Change::Delete => ("delete", None, 0, None),
            Change::Dead(j) => ("dead", Some(text(j)?), 0, None),
            Change::Disable(j, reason) => ("dead", Some(text(j)?), 0, Some(reason.to_string())),
            Change::Retry(j) => ("retry", Some(text(j)?), j.next_attempt as i64, None),
        };
        let logged = serde_json::to_string(attempt).map_err(io::Error::other)?;
        let mut dropped = attempt.clone();
        dropped.outcome = super::log::AttemptOutcome::Dropped;
        dropped.error = Some("the job was dropped during the attempt".into());
        let dropped = serde_json::to_string(&dropped).map_err(io::Error::other)?;
        let id = job.number as i64;
        let answer: String = self.with(|client| {
            client
                .query_typed_one(
                    "SELECT pushgate.settle($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
                    &[
                        (&job.connector, Type::TEXT),
                        (&lease.token, Type::INT8),
                        (&lease_ms, Type::INT8),
                        (&id, Type::INT8),
                        (&kind, Type::TEXT),
                        (&updated, Type::TEXT),
                        (&next, Type::INT8),
                        (&reason, Type::TEXT),
                        (&logged, Type::TEXT),
                        (&dropped, Type::TEXT),
                    ],
                )
                .map(|row| row.get(0))
        })?;
        Ok(match answer.as_str() {
            "done" => Settled::Done,
            "dropped" => Settled::Dropped,
            _ => Settled::LeaseLost,
        })
    }

    /// Forget attempts and relayed delivery ids older than `keep`.
    pub fn prune(&self, keep: Duration) -> io::Result<()> {
        let keep_s = keep.as_secs().min(i64::MAX as u64) as i64;
        self.with(|client| {
            client.execute(
                "DELETE FROM pushgate.attempts WHERE time < now() - $1::bigint * interval '1 second'",
                &[&keep_s],
            )?;
            client.execute(
                "DELETE FROM pushgate.relayed WHERE time < now() - $1::bigint * interval '1 second'",
                &[&keep_s],
            )?;
            Ok(())
        })
    }

    /// Hear the channel until `stop`: `ring` on each notification and after every
    /// (re)connection (what was notified while disconnected is looked at then).
    pub fn listen(&self, ring: super::waker::Ringer, stop: &AtomicBool) {
        let mut backoff = Duration::from_millis(100);
        while !stop.load(Ordering::Relaxed) {
            let mut client = match self.connect() {
                Ok(client) => client,
                Err(_) => {
                    std::thread::sleep(backoff);
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                    continue;
                }
            };
            if client.batch_execute(&format!("LISTEN {CHANNEL}")).is_err() {
                continue;
            }
            backoff = Duration::from_millis(100);
            ring.ring();
            loop {
                // A fresh wait each time: one iterator's timeout does not start again after
                // it expired (it would spin, hearing nothing).
                let heard = client.notifications().timeout_iter(Duration::from_millis(500)).next();
                match heard {
                    Ok(Some(_)) => ring.ring(),
                    Ok(None) if stop.load(Ordering::Relaxed) => return,
                    Ok(None) => {}
                    Err(_) => break,
                }
            }
        }
    }

    /// Prune at most once a minute.
    pub fn prune_now_and_then(&self, keep: Duration) -> io::Result<()> {
        let mut last = self.pruned.lock().unwrap_or_else(|p| p.into_inner());
        if last.is_some_and(|at| at.elapsed() < Duration::from_secs(60)) {
            return Ok(());
        }
        *last = Some(std::time::Instant::now());
        drop(last);
        self.prune(keep)
    }

    fn lease_ms(&self) -> i64 {
        self.lease.as_millis().min(i64::MAX as u128) as i64
    }

    fn count(&self, connector: &str, dead: bool) -> io::Result<usize> {
        let n: i64 = self.with(|client| {
            client
                .query_one(
                    "SELECT count(*) FROM pushgate.jobs WHERE connector = $1 AND dead = $2",
                    &[&connector, &dead],
                )
                .map(|r| r.get(0))
        })?;
        Ok(n as usize)
    }

    fn one_job(&self, sql: &str, connector: &str) -> io::Result<Option<Job>> {
        let row = self.with(|client| client.query_opt(sql, &[&connector]))?;
        row.map(|r| job_of(r.get(0), r.get(1))).transpose()
    }

    fn disabled_reason(&self, connector: &str) -> io::Result<Option<String>> {
        let row = self.with(|client| {
            client.query_opt("SELECT disabled FROM pushgate.connectors WHERE name = $1", &[&connector])
        })?;
        Ok(row.and_then(|r| r.get(0)))
    }

    /// How long until another worker's lease on `connector` ends (`None`: nobody else
    /// holds it).
    pub fn held_elsewhere(&self, connector: &str) -> Option<Duration> {
        let holder = &self.holder;
        let row = self
            .with(|client| {
                client.query_opt(
                    "SELECT (extract(epoch FROM expires - clock_timestamp()) * 1000)::bigint FROM pushgate.connectors
                     WHERE name = $1 AND holder IS NOT NULL AND holder <> $2 AND expires > clock_timestamp()",
                    &[&connector, holder],
                )
            })
            .ok()??;
        Some(Duration::from_millis(row.get::<_, Option<i64>>(0).unwrap_or(0).max(0) as u64))
    }

    /// Whether a connector is disabled (a 410), and why.
    pub fn disabled(&self, connector: &str) -> Option<String> {
        self.disabled_reason(connector).ok().flatten()
    }
}

impl Queues for Outbox {
    fn connectors(&self) -> io::Result<Vec<String>> {
        let rows = self.with(|client| {
            client.query(
                "SELECT name FROM pushgate.connectors
                 UNION SELECT DISTINCT connector FROM pushgate.jobs ORDER BY 1",
                &[],
            )
        })?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    fn summary(&self, connector: &str) -> io::Result<Summary> {
        Ok(Summary {
            pending: self.count(connector, false)?,
            dead: self.count(connector, true)?,
            disabled: self.disabled_reason(connector)?,
            head: self.one_job(
                "SELECT id, job FROM pushgate.jobs WHERE connector = $1 AND NOT dead ORDER BY id LIMIT 1",
                connector,
            )?,
            last_dead: self.one_job(
                "SELECT id, job FROM pushgate.jobs WHERE connector = $1 AND dead ORDER BY id DESC LIMIT 1",
                connector,
            )?,
        })
    }

    fn jobs(&self, connector: &str, shelf: Shelf) -> io::Result<Vec<Job>> {
        let dead = shelf == Shelf::Dead;
        let rows = self.with(|client| {
            client.query(
                "SELECT id, job FROM pushgate.jobs WHERE connector = $1 AND dead = $2 ORDER BY id",
                &[&connector, &dead],
            )
        })?;
        rows.iter().map(|r| job_of(r.get(0), r.get(1))).collect()
    }

    fn find_job(&self, id: &str) -> Option<(Job, Shelf)> {
        let (connector, number, change) = parse_id(id)?;
        let number = i64::try_from(number).ok()?;
        let row = self
            .with(|client| {
                client.query_opt(
                    "SELECT id, job, dead FROM pushgate.jobs WHERE id = $1 AND connector = $2",
                    &[&number, &connector],
                )
            })
            .ok()??;
        let job = job_of(row.get(0), row.get(1)).ok()?;
        let shelf = if row.get::<_, bool>(2) { Shelf::Dead } else { Shelf::Queue };
        (job.change == change).then_some((job, shelf))
    }

    fn enable(&self, connector: &str) -> io::Result<bool> {
        self.with(|client| {
            let n = client.execute(
                "UPDATE pushgate.connectors SET disabled = NULL WHERE name = $1 AND disabled IS NOT NULL",
                &[&connector],
            )?;
            Ok(n == 1)
        })
    }

    fn revive(&self, job: &Job) -> io::Result<()> {
        let text = serde_json::to_string(job).map_err(io::Error::other)?;
        let id = job.number as i64;
        self.with(|client| {
            client.execute(
                "UPDATE pushgate.jobs SET dead = false, next_attempt = 0, job = $2 WHERE id = $1 AND dead",
                &[&id, &text],
            )?;
            Ok(())
        })
    }

    fn drop_job(&self, id: &str) -> io::Result<Option<Job>> {
        let Some((job, _)) = self.find_job(id) else { return Ok(None) };
        let number = job.number as i64;
        let n = self.with(|client| client.execute("DELETE FROM pushgate.jobs WHERE id = $1", &[&number]))?;
        Ok((n == 1).then_some(job))
    }

    fn attempts(&self) -> io::Result<Vec<Attempt>> {
        let rows = self.with(|client| client.query("SELECT attempt FROM pushgate.attempts ORDER BY id", &[]))?;
        Ok(rows.iter().filter_map(|r| serde_json::from_str(r.get::<_, &str>(0)).ok()).collect())
    }
}

/// A stored job, numbered by its row: its id is `<connector>.<row>.<change>` fleet-wide.
fn job_of(id: i64, text: &str) -> io::Result<Job> {
    let mut job: Job = serde_json::from_str(text).map_err(json_error)?;
    job.number = id as u64;
    Ok(job)
}

/// Where the connection string comes from, for messages (never the string itself).
fn url_source(pg: &Postgres) -> String {
    match &pg.url {
        crate::config::extension::Secret::Env(name) => format!("[spool] url_env {name}"),
        crate::config::extension::Secret::File(path) => format!("[spool] url_file {}", path.display()),
    }
}

fn read_url(pg: &Postgres, env: &Env) -> io::Result<String> {
    let url = match &pg.url {
        crate::config::extension::Secret::Env(name) => env.var(name).map(str::to_string),
        crate::config::extension::Secret::File(path) => std::fs::read_to_string(path)
            .map_err(|e| io::Error::new(e.kind(), format!("cannot read {}: {}", url_source(pg), e.kind())))
            .map(Some)?,
    };
    url.map(|u| u.trim().to_string())
        .filter(|u| !u.is_empty())
        .ok_or_else(|| io::Error::other(format!("{} is not set: it names the fleet's database", url_source(pg))))
}

/// TLS through rustls: the server's certificate must chain to a public root or to one
/// of `ca_file`'s, and name the host.
fn tls_connector(ca_file: Option<&std::path::Path>) -> io::Result<tokio_postgres_rustls::MakeRustlsConnect> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() };
    if let Some(path) = ca_file {
        let pem = std::fs::read(path).map_err(|e| {
            io::Error::new(e.kind(), format!("cannot read [spool] ca_file {}: {}", path.display(), e.kind()))
        })?;
        let mut added = 0;
        for cert in CertificateDer::pem_slice_iter(&pem) {
            let cert = cert.map_err(|e| io::Error::other(format!("[spool] ca_file {}: {e}", path.display())))?;
            roots.add(cert).map_err(|e| io::Error::other(format!("[spool] ca_file {}: {e}", path.display())))?;
            added += 1;
        }
        if added == 0 {
            return Err(io::Error::other(format!("[spool] ca_file {} holds no PEM certificate", path.display())));
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| io::Error::other(format!("TLS: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(tokio_postgres_rustls::MakeRustlsConnect::new(config))
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname").map(|h| h.trim().to_string()).unwrap_or_else(|_| "host".into())
}
