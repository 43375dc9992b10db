//! The PostgreSQL server the fleet backend's tests run against ([`TestDb`]): it answers
//! `psql`, keeps what was committed across a stop as abrupt as a crash, and over TCP speaks
//! TLS only, with a certificate `psql` verifies.

use crate::harness::{Options, TestDb, skip_without_postgres};

#[test]
fn a_server_answers_psql_on_its_socket() {
    if skip_without_postgres() {
        return;
    }
    let db = TestDb::start();
    assert_eq!(db.psql("select 1"), "1");
}

#[test]
fn committed_rows_outlive_an_immediate_stop() {
    if skip_without_postgres() {
        return;
    }
    let db = TestDb::start();
    db.psql("create table outbox (id int primary key, body text); insert into outbox values (1, 'a'), (2, 'b')");
    db.stop();
    let refused = db.psql_to(&db.url(), "select 1").run();
    assert_ne!(refused.code, Some(0), "a stopped server answered\n{refused}");
    db.start_again();
    assert_eq!(db.psql("select id, body from outbox order by id"), "1|a\n2|b");
}

#[test]
fn over_tcp_the_server_speaks_tls_with_a_certificate_psql_verifies() {
    if skip_without_postgres() {
        return;
    }
    let db = TestDb::start_with(Options { tls: true, ..Options::default() });
    let verified = format!("{} sslrootcert={} sslmode=verify-full", db.tls_url(), db.ca_file().display());
    assert_eq!(db.psql_to(&verified, "select ssl from pg_stat_ssl where pid = pg_backend_pid()").ok(), "t");
    let plain = format!("{} sslmode=disable", db.tls_url());
    let refused = db.psql_to(&plain, "select 1").run();
    assert_ne!(refused.code, Some(0), "a connection without TLS was let in\n{refused}");
    assert!(refused.stderr.contains("no encryption"), "{refused}");
}
