//! A fleet of Git servers on one PostgreSQL outbox (`[spool] backend = "postgres"`):
//! servers record locally and relay, any number of workers deliver, each connector in
//! order through a lease with a fencing token. Against a real PostgreSQL the test starts.

use crate::harness::{
    ALLOW_ALL, Answer, Background, Receiver, Request, TestDb, TestServer, json_of, log, poll, post_http, quoted,
    skip_without_postgres,
};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// `[spool]` of a fleet member whose spool is `spool`, its database's URL in a file beside.
fn fleet_spool(root: &Path, spool: &Path, db: &TestDb, lease: &str) -> String {
    let url_file = root.join("db.url");
    std::fs::write(&url_file, db.url()).unwrap();
    format!(
        "[spool]\ndir = {}\nretry = [\"1s\", \"1s\", \"1s\"]\nbackend = \"postgres\"\nurl_file = {}\nlease = {}\n",
        quoted(spool),
        quoted(&url_file),
        quoted(lease)
    )
}

/// A Git server of the fleet, its `ci` connector posting to `url`.
fn fleet_server(db: &TestDb, url: &str, lease: &str) -> TestServer {
    fleet_server_timing(db, url, lease, "1s")
}

/// As [`fleet_server`], the connector's `timeout` given.
fn fleet_server_timing(db: &TestDb, url: &str, lease: &str, timeout: &str) -> TestServer {
    let server = TestServer::new();
    let spool = fleet_spool(server.root(), &server.root().join("spool"), db, lease);
    let config = format!("{ALLOW_ALL}{spool}{}", post_http("ci", url, &format!("timeout = {}", quoted(timeout))));
    server.config(&config).install(&[])
}

/// Another worker for the same fleet (another machine: its own spool), as a config file.
fn worker_config(server: &TestServer, name: &str, db: &TestDb, url: &str, lease: &str) -> PathBuf {
    worker_config_timing(server, name, db, url, lease, "1s")
}

fn worker_config_timing(
    server: &TestServer,
    name: &str,
    db: &TestDb,
    url: &str,
    lease: &str,
    timeout: &str,
) -> PathBuf {
    let dir = server.root().join(name);
    std::fs::create_dir_all(&dir).unwrap();
    let spool = fleet_spool(&dir, &dir.join("spool"), db, lease);
    let path = dir.join("config.toml");
    let connector = post_http("ci", url, &format!("timeout = {}", quoted(timeout)));
    std::fs::write(&path, format!("{ALLOW_ALL}{spool}{connector}")).unwrap();
    path
}

fn watch(server: &TestServer, config: &Path) -> Background {
    server.pushgate(&["deliver", "--watch"]).env("PUSHGATE_CONFIG", config).background()
}

/// `(repository path, sequence)` of a delivery.
fn origin(request: &Request) -> (String, u64) {
    let event = request.json();
    (event["repository"]["path"].as_str().unwrap().to_string(), event["sequence"].as_u64().unwrap())
}

/// Each server's sequences as received, repeats of the one just before left out (a worker
/// that died after sending sends again): they must run 1, 2, 3, ... with no gap.
#[track_caller]
fn assert_in_order_per_server(received: &[Request], per_server: usize) {
    let mut seen: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for (path, sequence) in received.iter().map(origin) {
        let list = seen.entry(path).or_default();
        if list.last() != Some(&sequence) {
            list.push(sequence);
        }
    }
    for (path, list) in &seen {
        assert_eq!(list, &(1..=per_server as u64).collect::<Vec<_>>(), "{path}");
    }
}

/// Requests until every server's last event came, within a minute.
fn until_all(receiver: &Receiver, servers: usize, per_server: u64) -> Vec<Request> {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut got: Vec<Request> = Vec::new();
    let done = |got: &[Request]| {
        let last: BTreeMap<String, u64> = got.iter().map(origin).fold(BTreeMap::new(), |mut m, (p, s)| {
            let e = m.entry(p).or_insert(0);
            *e = (*e).max(s);
            m
        });
        last.len() == servers && last.values().all(|s| *s == per_server)
    };
    while !done(&got) {
        let left = deadline.saturating_duration_since(Instant::now());
        match receiver.next_within(left) {
            Some(request) => got.push(request),
            None => panic!("not every event came within a minute: {:?}", got.iter().map(origin).collect::<Vec<_>>()),
        }
    }
    got
}

fn push_commit(server: &TestServer, n: usize) {
    server.work().commit(&[("n.txt", &format!("{n}\n"))]);
    server.push_as("alice", &["origin", "HEAD:refs/heads/main"]).assert_accepted();
}

#[test]
fn two_servers_deliver_each_event_once_in_each_servers_order() {
    if skip_without_postgres() {
        return;
    }
    let db = TestDb::start();
    let receiver = Receiver::ok();
    let a = fleet_server(&db, &receiver.url("/hook"), "30s");
    let b = fleet_server(&db, &receiver.url("/hook"), "30s");
    for n in 0..3 {
        push_commit(&a, n);
        push_commit(&b, n);
    }
    let got = until_all(&receiver, 2, 3);
    a.sandbox.wait_for_detached_deliverers();
    b.sandbox.wait_for_detached_deliverers();
    let got: Vec<Request> = got.into_iter().chain(receiver.drain()).collect();
    assert_eq!(got.len(), 6, "each event once: {:?}", got.iter().map(origin).collect::<Vec<_>>());
    assert_in_order_per_server(&got, 3);

    // The queue commands read the outbox: the same from either server.
    for server in [&a, &b] {
        let status = json_of(server, &["queue", "status"]);
        assert_eq!(status[0]["connector"], "ci", "{status}");
        assert_eq!(status[0]["pending"], 0, "{status}");
        assert_eq!(log(server).iter().filter(|a| a["outcome"] == "delivered").count(), 6);
    }
    assert_eq!(db.psql("select count(*) from pushgate.jobs"), "0");
}

#[test]
fn a_stopped_lease_holder_loses_its_connector_and_cannot_record_the_attempt_it_was_making() {
    if skip_without_postgres() {
        return;
    }
    let db = TestDb::start();
    // The second delivery hangs until released: its worker is stopped in the middle of it.
    let receiver = Receiver::scripted([Answer::ok(), Answer::Hang], Answer::ok());
    let url = receiver.url("/hook");
    // The held attempt must not time out before its worker is stopped, even on a busy
    // machine: a 3s timeout, a 5s lease.
    let server = fleet_server_timing(&db, &url, "5s", "3s");
    // The first worker watches the server's own spool: no push starts a deliverer beside it.
    let mut holder = watch(&server, &server.sandbox.config);
    poll("the first worker to watch", || server.root().join("spool/watch.lock").exists().then_some(()));

    push_commit(&server, 0);
    assert_eq!(origin(&receiver.next()).1, 1);
    push_commit(&server, 1);
    let held = receiver.next();
    assert_eq!(origin(&held).1, 2);
    holder.signal(libc::SIGSTOP);
    server.sandbox.wait_for_detached_deliverers();

    // Another worker takes the connector once the lease ran out, and delivers event 2.
    let second = worker_config_timing(&server, "second", &db, &url, "5s", "3s");
    let taken_at = Instant::now();
    let _taker = watch(&server, &second);
    let again = receiver.next();
    assert_eq!(origin(&again).1, 2);
    assert_eq!(again.delivery(), held.delivery(), "the same delivery, redelivered");
    assert!(taken_at.elapsed() < Duration::from_secs(15));

    // The stopped worker wakes up, gets its answer late: the outcome is not its to record.
    holder.signal(libc::SIGCONT);
    receiver.release();
    push_commit(&server, 2);
    assert_eq!(origin(&receiver.next()).1, 3);
    server.sandbox.wait_for_detached_deliverers();
    holder.assert_running();
    let attempts = log(&server);
    let of_event_2: Vec<&serde_json::Value> =
        attempts.iter().filter(|a| a["delivery_id"] == held.delivery().as_str()).collect();
    assert_eq!(
        of_event_2.iter().map(|a| a["outcome"].as_str().unwrap()).collect::<Vec<_>>(),
        ["delivered"],
        "only the new holder's attempt is recorded: {attempts:#?}"
    );
    receiver.assert_no_more();
}

#[test]
fn pushes_land_while_the_database_is_down_and_are_delivered_in_order_when_it_is_back() {
    if skip_without_postgres() {
        return;
    }
    let db = TestDb::start();
    let receiver = Receiver::ok();
    let url = receiver.url("/hook");
    let server = fleet_server(&db, &url, "30s");
    let worker = worker_config(&server, "worker", &db, &url, "30s");
    let _watching = watch(&server, &worker);
    push_commit(&server, 0);
    assert_eq!(origin(&receiver.next()).1, 1);
    server.sandbox.wait_for_detached_deliverers();
    // Its outcome recorded (else a stop now would have it sent again: at least once).
    poll("the first delivery recorded", || (db.psql("select count(*) from pushgate.jobs") == "0").then_some(()));

    db.stop();
    for n in 1..4 {
        let started = Instant::now();
        push_commit(&server, n);
        assert!(started.elapsed() < Duration::from_secs(3), "a push waited for the database: {:?}", started.elapsed());
    }
    server.sandbox.wait_for_detached_deliverers();
    assert!(receiver.next_within(Duration::from_millis(300)).is_none());
    let status = server.pushgate(&["queue", "status"]).run();
    assert_eq!(status.code, Some(2), "{status}");
    assert!(status.stderr.contains("database"), "{status}");

    db.start_again();
    // The next deliverer (this server's next push, or a relay by hand) relays them.
    server.pushgate(&["deliver", "--once"]).ok();
    let got = until_all(&receiver, 1, 4);
    let sequences: Vec<u64> = got.iter().map(|r| origin(r).1).collect();
    assert_eq!(sequences, [2, 3, 4]);
}

#[test]
fn a_relay_killed_between_insert_and_acknowledgement_inserts_nothing_twice() {
    if skip_without_postgres() {
        return;
    }
    let db = TestDb::start();
    let receiver = Receiver::ok();
    let server = fleet_server(&db, &receiver.url("/hook"), "30s");
    // The database is down during the push: its job stays in the local queue.
    db.stop();
    push_commit(&server, 0);
    server.sandbox.wait_for_detached_deliverers();
    db.start_again();

    let crashed = server.pushgate(&["deliver", "--once"]).env("PUSHGATE_CRASH_AT", "relay:after-insert").run();
    assert_ne!(crashed.code, Some(0), "{crashed}");
    assert_eq!(db.psql("select count(*) from pushgate.jobs"), "1");
    assert!(receiver.next_within(Duration::from_millis(200)).is_none());

    server.pushgate(&["deliver", "--once"]).ok();
    assert_eq!(origin(&receiver.next()).1, 1);
    server.pushgate(&["deliver", "--once"]).ok();
    receiver.assert_no_more();
    assert_eq!(db.psql("select count(*) from pushgate.jobs"), "0");
    assert_eq!(db.psql("select count(*) from pushgate.relayed"), "1");
}

#[test]
fn dead_letters_retry_drop_and_a_410_disable_work_on_the_outbox() {
    if skip_without_postgres() {
        return;
    }
    let db = TestDb::start();
    let receiver = Receiver::scripted([Answer::status(400), Answer::status(410)], Answer::ok());
    let server = fleet_server(&db, &receiver.url("/hook"), "30s");
    push_commit(&server, 0);
    assert_eq!(receiver.next().sequence(), 1);
    server.sandbox.wait_for_detached_deliverers();
    let dead = json_of(&server, &["queue", "list", "--dead"]);
    let id = dead[0]["id"].as_str().unwrap().to_string();
    assert!(id.starts_with("ci."), "{dead}");

    push_commit(&server, 1);
    assert_eq!(receiver.next().sequence(), 2);
    server.sandbox.wait_for_detached_deliverers();
    let status = json_of(&server, &["queue", "status"]);
    assert_eq!((status[0]["disabled"].clone(), status[0]["dead"].clone()), (true.into(), 2.into()), "{status}");

    push_commit(&server, 2);
    server.sandbox.wait_for_detached_deliverers();
    assert!(receiver.next_within(Duration::from_millis(200)).is_none(), "a disabled connector waits");
    server.pushgate(&["queue", "enable", "ci"]).ok();
    server.pushgate(&["queue", "retry", &id]).ok();
    server.pushgate(&["deliver", "--once"]).ok();
    let order: Vec<u64> = receiver.take(2).iter().map(Request::sequence).collect();
    assert_eq!(order, [1, 3], "the retried dead letter first, then what waited");
    let left = json_of(&server, &["queue", "list", "--dead"]);
    let other = left[0]["id"].as_str().unwrap().to_string();
    server.pushgate(&["queue", "drop", &other]).ok();
    assert_eq!(json_of(&server, &["queue", "status"])[0]["dead"], 0);
    receiver.assert_no_more();
}

#[test]
fn three_workers_killed_at_random_lose_nothing_and_keep_each_servers_order() {
    if skip_without_postgres() {
        return;
    }
    let db = TestDb::start();
    let receiver = Receiver::ok();
    let url = receiver.url("/hook");
    let a = fleet_server(&db, &url, "2s");
    let b = fleet_server(&db, &url, "2s");
    let configs: Vec<PathBuf> = (0..3).map(|i| worker_config(&a, &format!("worker{i}"), &db, &url, "2s")).collect();
    let mut workers: Vec<Background> = configs.iter().map(|c| watch(&a, c)).collect();
    let mut seed = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos() as u64;
    let mut random = move |n: usize| {
        seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        ((seed >> 33) % n as u64) as usize
    };
    let pushes = 8;
    for n in 0..pushes {
        push_commit(&a, n);
        push_commit(&b, n);
        // A worker dies at any moment (in the middle of an attempt, holding a lease) and
        // another starts in its place.
        let victim = random(workers.len());
        std::thread::sleep(Duration::from_millis(random(40) as u64));
        workers[victim] = watch(&a, &configs[victim]);
    }
    let got = until_all(&receiver, 2, pushes as u64);
    assert_in_order_per_server(&got, pushes);
    for worker in &mut workers {
        worker.assert_running();
    }
}

#[test]
fn a_tcp_database_is_reached_over_verified_tls_only() {
    if skip_without_postgres() {
        return;
    }
    let db = TestDb::start_with(crate::harness::Options { tls: true, ..Default::default() });
    let receiver = Receiver::ok();
    let server = TestServer::new();
    let spool = |url: &str, extra: &str| {
        let url_file = server.root().join("db.url");
        std::fs::write(&url_file, url).unwrap();
        format!(
            "{ALLOW_ALL}[spool]\ndir = {}\nbackend = \"postgres\"\nurl_file = {}\n{extra}\n{}",
            quoted(server.root().join("spool")),
            quoted(&url_file),
            post_http("ci", &receiver.url("/hook"), "")
        )
    };
    let ca = format!("ca_file = {}", quoted(db.ca_file()));
    let (unverified, verified) = (spool(&db.tls_url(), ""), spool(&db.tls_url(), &ca));
    // Without the test CA the server's certificate is not trusted: no connection.
    std::fs::write(&server.sandbox.config, unverified).unwrap();
    let refused = server.pushgate(&["queue", "status"]).run();
    assert_eq!(refused.code, Some(2), "{refused}");
    assert!(refused.stderr.contains("database"), "{refused}");
    assert!(!refused.stderr.contains("password="), "the connection string is never shown: {refused}");

    let server = server.config(&verified).install(&[]);
    push_commit(&server, 0);
    assert_eq!(receiver.next().sequence(), 1);
    server.sandbox.wait_for_detached_deliverers();
    assert_eq!(db.psql("select count(*) from pushgate.attempts"), "1");
    let doctor = server.pushgate(&["doctor"]).run();
    assert!(doctor.stdout.contains("the fleet's database answers"), "{doctor}");
}
