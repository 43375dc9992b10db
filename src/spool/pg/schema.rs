//! The outbox's tables: one migration per schema version, applied by the first `deliver`
//! that connects (concurrent first runs serialise on an advisory lock).

use super::db;
use postgres::Client;
use std::io;

/// The transaction-scoped advisory lock that serialises migrations ("pushgate" as bytes).
const MIGRATE_LOCK: i64 = i64::from_be_bytes(*b"pushgate");

/// The schema, one entry per version. A released entry never changes.
const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE pushgate.connectors (
    name     text PRIMARY KEY,
    disabled text,                      -- why (a 410), when it is
    holder   text,                      -- host:pid of the worker holding the lease
    token    bigint NOT NULL DEFAULT 0, -- the fencing token: +1 on every take
    expires  timestamptz                -- the lease's end, on the database's clock
);
CREATE TABLE pushgate.jobs (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, -- the fleet-wide order
    connector    text NOT NULL,
    dead         boolean NOT NULL DEFAULT false,
    next_attempt bigint NOT NULL DEFAULT 0,                       -- Unix ms
    job          text NOT NULL                                    -- the job, as JSON
);
CREATE INDEX jobs_queue ON pushgate.jobs (connector, dead, id);
CREATE TABLE pushgate.relayed (
    delivery_id text PRIMARY KEY,
    time        timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE pushgate.attempts (
    id      bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    time    timestamptz NOT NULL DEFAULT now(),
    attempt text NOT NULL
);
CREATE INDEX attempts_time ON pushgate.attempts (time);
"#,
    r#"
-- Settling an attempt in one round trip: the fence first (the connector row stays locked
-- to the end of the call), then the job, the connector and the attempt.
CREATE FUNCTION pushgate.settle(p_connector text, p_token bigint, p_lease_ms bigint, p_id bigint,
                                p_change text, p_job text, p_next bigint, p_reason text,
                                p_attempt text, p_dropped text) RETURNS text
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM set_config('synchronous_commit', 'off', true);
    UPDATE pushgate.connectors
       SET expires = clock_timestamp() + p_lease_ms * interval '1 millisecond'
     WHERE name = p_connector AND token = p_token;
    IF NOT FOUND THEN
        RETURN 'lost';
    END IF;
    PERFORM 1 FROM pushgate.jobs WHERE id = p_id AND NOT dead FOR UPDATE;
    IF NOT FOUND THEN
        INSERT INTO pushgate.attempts (attempt) VALUES (p_dropped);
        RETURN 'dropped';
    END IF;
    IF p_change = 'delete' THEN
        DELETE FROM pushgate.jobs WHERE id = p_id;
    ELSIF p_change = 'dead' THEN
        UPDATE pushgate.jobs SET dead = true, job = p_job WHERE id = p_id;
    ELSE
        UPDATE pushgate.jobs SET next_attempt = p_next, job = p_job WHERE id = p_id;
    END IF;
    IF p_reason IS NOT NULL THEN
        UPDATE pushgate.connectors SET disabled = p_reason WHERE name = p_connector;
    END IF;
    INSERT INTO pushgate.attempts (attempt) VALUES (p_attempt);
    RETURN 'done';
END
$$;
"#,
];

/// Create or migrate pushgate's tables: one transaction under an advisory lock, so
/// concurrent first runs serialise and a failed migration leaves nothing behind.
pub(super) fn migrate(client: &mut Client) -> io::Result<()> {
    let newest = MIGRATIONS.len() as i32;
    let current = |client: &mut Client| -> Result<i32, postgres::Error> {
        let exists = client.query_one("SELECT to_regclass('pushgate.schema_version') IS NOT NULL", &[])?;
        if !exists.get::<_, bool>(0) {
            return Ok(0);
        }
        let row = client.query_opt("SELECT version FROM pushgate.schema_version", &[])?;
        Ok(row.map_or(0, |r| r.get(0)))
    };
    if current(client).map_err(db)? == newest {
        return Ok(());
    }
    let mut tx = client.transaction().map_err(db)?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATE_LOCK]).map_err(db)?;
    tx.batch_execute(
        "CREATE SCHEMA IF NOT EXISTS pushgate;
         CREATE TABLE IF NOT EXISTS pushgate.schema_version (
             one     boolean PRIMARY KEY DEFAULT true CHECK (one),
             version integer NOT NULL);
         INSERT INTO pushgate.schema_version (version) VALUES (0) ON CONFLICT DO NOTHING;",
    )
    .map_err(db)?;
    let before: i32 = tx.query_one("SELECT version FROM pushgate.schema_version", &[]).map_err(db)?.get(0);
    if before > newest {
        return Err(io::Error::other(format!(
            "the database's pushgate schema is version {before}, newer than this pushgate's {newest}: upgrade pushgate"
        )));
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(before as usize) {
        tx.batch_execute(sql).map_err(db)?;
        tx.execute("UPDATE pushgate.schema_version SET version = $1", &[&(i as i32 + 1)]).map_err(db)?;
    }
    tx.commit().map_err(db)
}
