//! Durable delivery as an admin and a receiver see it: post-receive spools the push and
//! returns; each `post` extension is a connector with its own ordered queue, retried on
//! transient failures, dead-lettered on refusals, disabled by a 410, repaired with
//! `pushgate queue`; nothing is lost or reordered by concurrent pushes or a kill -9 at any
//! point.
//!
//! Where a test must decide who delivers, its pushes carry
//! `PUSHGATE_CRASH_AT=deliver:before-send`: the deliverer post-receive detaches inherits it
//! and dies just before sending, so the test's own `deliver --once` or `--watch` does the
//! sending.

use crate::harness::{
    ALLOW_ALL, Answer, Receiver, Request, Run, TestServer, WAIT, Work, ZERO, assert_valid, connector_status,
    deliver_once, event_schema, files_under, json_of, log, poll, post_http, quoted, spool_dir, spool_table,
    standard_signature, summary, unix_now, updates,
};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::mpsc;

const RETRY: [&str; 3] = ["50ms", "50ms", "50ms"];

/// Makes the deliverer a push detaches die before it sends anything.
const NO_DETACHED_SEND: (&str, &str) = ("PUSHGATE_CRASH_AT", "deliver:before-send");

/// A server that lets everyone push anything, with `tables` (extensions) and a spool in
/// its temp dir retrying on `retry`.
fn server_retrying(retry: &[&str], tables: &str) -> TestServer {
    let server = TestServer::new();
    let config = format!("{}{ALLOW_ALL}{tables}", spool_table(&server, retry));
    server.config(&config).install(&[])
}

fn server(tables: &str) -> TestServer {
    server_retrying(&RETRY, tables)
}

/// Commit `f<n>.txt` and push main as alice with `env`; the push must land. Returns the
/// commit.
fn push_next(server: &TestServer, n: usize, env: &[(&str, &str)]) -> String {
    let tip = server.work().commit(&[(&format!("f{n}.txt"), &format!("{n}\n"))]);
    let mut push = server.work().push(&["origin", "HEAD:refs/heads/main"]).env("PUSHGATE_USER", "alice");
    for (key, value) in env {
        push = push.env(key, value);
    }
    let pushed = push.run();
    pushed.assert_accepted().assert_no_panic();
    assert_eq!(server.ref_target("refs/heads/main").as_deref(), Some(tip.as_str()), "{pushed}");
    tip
}

/// The `after` of an event's first change.
fn after(request: &Request) -> String {
    request.json()["changes"][0]["after"].as_str().unwrap().to_string()
}

fn sequences(requests: &[Request]) -> Vec<u64> {
    requests.iter().map(Request::sequence).collect()
}

/// `pushgate log --json`: the attempts on `connector`. (A deliverer racing a post-receive
/// may also log a phantom dead letter for no connector: see
/// `deliverers_racing_post_receive_log_no_phantom_dead_letters`.)
fn log_of(server: &TestServer, connector: &str) -> Vec<serde_json::Value> {
    log(server).into_iter().filter(|a| a["connector"] == connector).collect()
}

/// The one job `queue list [--dead] --json` shows.
#[track_caller]
fn only_job(server: &TestServer, dead: bool) -> serde_json::Value {
    let jobs = json_of(server, if dead { &["queue", "list", "--dead"] } else { &["queue", "list"] });
    let jobs = jobs.as_array().unwrap();
    assert_eq!(jobs.len(), 1, "{jobs:#?}");
    jobs[0].clone()
}

/// `(pending, dead, disabled)` of a connector.
#[track_caller]
fn counts(server: &TestServer, connector: &str) -> (u64, u64, bool) {
    let row = connector_status(server, connector);
    (row["pending"].as_u64().unwrap(), row["dead"].as_u64().unwrap(), row["disabled"].as_bool().unwrap())
}

// ---------------------------------------------------------------------------------------
// Retries, backlog and order
// ---------------------------------------------------------------------------------------

#[test]
fn a_watching_deliverer_retries_through_503s_and_keeps_push_order() {
    let receiver = Receiver::scripted([Answer::status(503), Answer::status(503)], Answer::ok());
    let server = server(&post_http("ci", &receiver.url("/hook"), ""));
    let mut watch = server.pushgate(&["deliver", "--watch"]).background();

    let tips: Vec<String> = (1..=3).map(|n| push_next(&server, n, &[NO_DETACHED_SEND])).collect();

    let requests = receiver.take(5);
    assert_eq!(sequences(&requests), [1, 1, 1, 2, 3], "{:#?}", requests.iter().map(summary).collect::<Vec<_>>());
    let first = requests[0].delivery();
    assert!(requests[..3].iter().all(|r| r.delivery() == first), "every retry has the failed attempt's id");
    assert!(requests[..3].iter().all(|r| r.header("webhook-id") == first));
    let delivered: Vec<String> = [&requests[2], &requests[3], &requests[4]].iter().map(|r| after(r)).collect();
    assert_eq!(delivered, tips);
    let ids: BTreeSet<String> = requests.iter().map(Request::delivery).collect();
    assert_eq!(ids.len(), 3);

    let attempts = poll("three deliveries in the log", || {
        let attempts = log_of(&server, "ci");
        (attempts.iter().filter(|a| a["outcome"] == "delivered").count() == 3).then_some(attempts)
    });
    let of_first: Vec<(u64, &str, Option<&str>)> = attempts
        .iter()
        .filter(|a| a["delivery_id"] == first.as_str())
        .map(|a| (a["attempt"].as_u64().unwrap(), a["outcome"].as_str().unwrap(), a["status"].as_str()))
        .collect();
    assert_eq!(
        of_first,
        [(1, "retry", Some("HTTP 503")), (2, "retry", Some("HTTP 503")), (3, "delivered", Some("HTTP 200"))]
    );
    assert_eq!(counts(&server, "ci"), (0, 0, false));
    watch.assert_running();
    receiver.assert_no_more();
}

#[test]
fn git_push_returns_while_the_endpoint_still_hangs() {
    let receiver = Receiver::scripted([Answer::Hang], Answer::ok());
    let server = server(&post_http("ci", &receiver.url("/hook"), "timeout = \"60s\""));
    let tip = server.work().commit(&[("README.md", "# app\n")]);
    let (done, pushed) = mpsc::channel::<Run>();

    std::thread::scope(|scope| {
        scope.spawn(|| done.send(server.push_as("alice", &["origin", "HEAD:refs/heads/main"])).unwrap());
        let held = receiver.next();
        let pushed = pushed.recv_timeout(WAIT);
        // Released before judging: a push that waits on the endpoint must fail the test,
        // not hang it.
        receiver.release();
        let pushed = pushed.expect("git push returns while the endpoint holds the request");
        pushed.assert_accepted().assert_no_panic();
        assert_eq!(after(&held), tip);
    });

    poll("the held delivery to be logged", || {
        log_of(&server, "ci").iter().any(|a| a["outcome"] == "delivered").then_some(())
    });
    assert_eq!(counts(&server, "ci"), (0, 0, false));
}

#[test]
fn deliver_watch_writes_a_line_per_attempt_and_state_change_and_stops_on_sigterm() {
    let receiver = Receiver::scripted([Answer::status(503)], Answer::status(201));
    let server = server(&post_http("ci", &receiver.url("/hook"), ""));
    let journal = server.root().join("journal");
    let mut watch = server
        .sandbox
        .std_command(crate::harness::PUSHGATE)
        .args(["deliver", "--watch"])
        .stderr(std::fs::File::create(&journal).unwrap())
        .spawn()
        .unwrap();
    push_next(&server, 1, &[NO_DETACHED_SEND]);
    receiver.take(2);
    poll("the delivery in the log", || log_of(&server, "ci").iter().any(|a| a["outcome"] == "delivered").then_some(()));

    // SAFETY: kill has no memory effects.
    unsafe { libc::kill(watch.id() as i32, libc::SIGTERM) };
    let status = watch.wait().unwrap();

    assert_eq!(status.code(), Some(0), "SIGTERM stops it cleanly");
    let text = std::fs::read_to_string(&journal).unwrap();
    let lines: Vec<Vec<&str>> = text.lines().map(|l| l.split(' ').collect()).collect();
    let time = |word: &str| word.len() == 20 && word.ends_with('Z') && word.as_bytes()[10] == b'T';
    assert!(lines.iter().all(|l| l.len() >= 4 && time(l[0])), "every line starts `time level connector`:\n{text}");
    let first = &lines[0];
    assert_eq!(first[1..3], ["info", "-"], "{text}");
    assert_eq!(first[3], "watching", "{text}");
    // time level connector event delivery outcome duration status [error]
    let attempts: Vec<(&str, &str, &str, &str)> =
        lines.iter().filter(|l| l[2] == "ci").map(|l| (l[1], l[5], l[7], l[8])).collect();
    assert_eq!(attempts, [("warn", "retry", "HTTP", "503"), ("info", "delivered", "HTTP", "201")], "{text}");
    assert!(lines.iter().filter(|l| l[2] == "ci").all(|l| l[6].ends_with("ms")), "{text}");
    assert_eq!(lines.last().unwrap()[1..], ["info", "-", "stopped"], "{text}");

    // `pushgate log` says the same, with every status.
    let logged = server.pushgate(&["log"]).ok();
    let logged: Vec<Vec<&str>> = logged.lines().map(|l| l.split(' ').collect()).collect();
    let shown: Vec<(&str, &str, &str, &str)> = logged.iter().map(|l| (l[3], l[4], l[5], l[6])).collect();
    assert_eq!(shown, [("#1", "retry", "HTTP", "503"), ("#2", "delivered", "HTTP", "201")], "{logged:?}");
}

#[test]
fn a_transient_failure_backlogs_its_connector_only() {
    let good = Receiver::ok();
    let failing = Receiver::always(Answer::status(503));
    // Retried after an hour: during the test the failing job stays at its queue's head.
    let server = server_retrying(
        &["1h"],
        &[post_http("good", &good.url("/hook"), ""), post_http("failing", &failing.url("/hook"), "")].concat(),
    );

    let tips: Vec<String> = (1..=2).map(|n| push_next(&server, n, &[])).collect();

    let delivered = good.take(2);
    assert_eq!(sequences(&delivered), [1, 2]);
    assert_eq!(delivered.iter().map(after).collect::<Vec<_>>(), tips);
    server.sandbox.wait_for_detached_deliverers();
    let tried = failing.drain();
    assert_eq!(sequences(&tried), [1], "the second event waits behind the first");
    assert_eq!(counts(&server, "good"), (0, 0, false));
    let status = connector_status(&server, "failing");
    assert_eq!((status["pending"].as_u64(), status["dead"].as_u64()), (Some(2), Some(0)));
    assert!(status["last_error"].as_str().unwrap().ends_with("/… answered 503"), "{status}");
    assert!(status["next_attempt"].is_string(), "{status}");
}

#[test]
fn running_out_of_retries_makes_a_dead_letter_and_the_connector_goes_on() {
    let receiver = Receiver::scripted([503, 503, 503, 503].map(Answer::status), Answer::ok());
    let server = server(&post_http("ci", &receiver.url("/hook"), "secret_env = \"CI_SECRET\""));
    let secret = ("CI_SECRET", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw");
    let _watch = server.pushgate(&["deliver", "--watch"]).env(secret.0, secret.1).background();

    let tips: Vec<String> = (1..=2).map(|n| push_next(&server, n, &[NO_DETACHED_SEND])).collect();

    let requests = receiver.take(5);
    assert_eq!(sequences(&requests), [1, 1, 1, 1, 2], "three retries, then the next event");
    assert_eq!(after(&requests[4]), tips[1]);
    for request in &requests {
        let (id, timestamp) = (request.header("webhook-id"), request.header("webhook-timestamp"));
        let expected = standard_signature(secret.1, id, timestamp, &request.body);
        assert_eq!(request.header("webhook-signature"), expected, "each attempt is signed for its own time");
    }
    let dead = poll("the dead letter", || {
        let jobs = json_of(&server, &["queue", "list", "--dead"]);
        jobs.as_array().unwrap().first().cloned()
    });
    assert_eq!(dead["attempts"], 4);
    let error = dead["last_error"].as_str().unwrap();
    assert!(error.starts_with("gave up after 4 attempts: ") && error.ends_with("/… answered 503"), "{error}");
    let attempts = poll("the second event's delivery in the log", || {
        let attempts = log_of(&server, "ci");
        attempts.iter().any(|a| a["outcome"] == "delivered").then_some(attempts)
    });
    let outcomes: Vec<&str> = attempts.iter().map(|a| a["outcome"].as_str().unwrap()).collect();
    assert_eq!(outcomes, ["retry", "retry", "retry", "dead", "delivered"], "{attempts:#?}");
    assert_eq!(counts(&server, "ci"), (0, 1, false));
    for args in [&["log", "--json"][..], &["queue", "status", "--json"], &["queue", "list", "--dead", "--json"]] {
        let shown = server.pushgate(args).run();
        assert!(!format!("{}{}", shown.stdout, shown.stderr).contains(&secret.1[6..]), "the secret is shown\n{shown}");
    }
}

#[test]
fn retry_after_is_honoured() {
    let receiver = Receiver::always(Answer::status(429).header("Retry-After", "3600"));
    let server = server(&post_http("ci", &receiver.url("/hook"), ""));

    push_next(&server, 1, &[]);
    receiver.next();
    server.sandbox.wait_for_detached_deliverers();

    let job = only_job(&server, false);
    let shown = json_of(&server, &["queue", "show", job["id"].as_str().unwrap()]);
    let now_ms = unix_now() * 1000;
    let wait_ms = shown["next_attempt"].as_u64().unwrap().saturating_sub(now_ms);
    assert!(wait_ms > 3_500_000, "the next attempt is {wait_ms}ms away, not Retry-After's hour: {shown:#}");
    deliver_once(&server);
    receiver.assert_no_more();
}

// ---------------------------------------------------------------------------------------
// Dead letters, disabled connectors, repairs
// ---------------------------------------------------------------------------------------

#[test]
fn a_refusal_is_a_dead_letter_that_queue_retry_brings_back() {
    let receiver = Receiver::scripted([Answer::status(400).body("bad payload\n")], Answer::ok());
    let server = server(&post_http("ci", &receiver.url("/hook"), ""));
    let tips: Vec<String> = (1..=2).map(|n| push_next(&server, n, &[NO_DETACHED_SEND])).collect();
    server.sandbox.wait_for_detached_deliverers();

    deliver_once(&server);

    let requests = receiver.take(2);
    assert_eq!(sequences(&requests), [1, 2], "the connector goes on past the refused event");
    assert_eq!(after(&requests[1]), tips[1]);
    let dead = only_job(&server, true);
    assert_eq!(dead["connector"], "ci");
    assert_eq!(dead["event_id"], requests[0].json()["id"]);
    assert_eq!(dead["attempts"], 1);
    assert_eq!(dead["last_error"], "refused (HTTP 400): bad payload");
    assert_eq!(counts(&server, "ci"), (0, 1, false));
    let id = dead["id"].as_str().unwrap().to_string();

    let retried = json_of(&server, &["queue", "retry", &id]);
    assert_eq!(retried, serde_json::json!({"retried": [id]}));
    assert_eq!(counts(&server, "ci"), (1, 0, false));
    deliver_once(&server);

    let again = receiver.next();
    assert_eq!(again.delivery(), requests[0].delivery(), "a retried dead letter keeps its delivery id");
    assert_eq!(after(&again), tips[0]);
    assert_eq!(counts(&server, "ci"), (0, 0, false));
    let outcomes: Vec<String> =
        log_of(&server, "ci").iter().map(|a| a["outcome"].as_str().unwrap().to_string()).collect();
    assert_eq!(outcomes, ["dead", "delivered", "delivered"]);
    receiver.assert_no_more();
}

#[test]
fn queue_drop_removes_a_waiting_job() {
    let receiver = Receiver::ok();
    let server = server(&post_http("ci", &receiver.url("/hook"), ""));
    push_next(&server, 1, &[NO_DETACHED_SEND]);
    server.sandbox.wait_for_detached_deliverers();
    let job = only_job(&server, false);
    let id = job["id"].as_str().unwrap().to_string();
    assert_eq!(job["attempts"], 0);

    let dropped = json_of(&server, &["queue", "drop", &id]);

    assert_eq!(dropped, serde_json::json!({"dropped": [id]}));
    assert_eq!(counts(&server, "ci"), (0, 0, false));
    deliver_once(&server);
    receiver.assert_no_more();
    let shown = server.pushgate(&["queue", "show", &id]).run();
    shown.assert_code(2);
    assert_eq!(shown.stderr, format!("pushgate: no job {id}\n"));
}

#[test]
fn a_410_disables_the_connector_until_queue_enable() {
    let receiver = Receiver::scripted([Answer::status(410)], Answer::ok());
    let server = server(&post_http("ci", &receiver.url("/hook"), ""));
    push_next(&server, 1, &[NO_DETACHED_SEND]);
    server.sandbox.wait_for_detached_deliverers();
    deliver_once(&server);
    assert_eq!(receiver.next().sequence(), 1);
    assert_eq!(counts(&server, "ci"), (0, 1, true));

    // Later events wait, whoever delivers.
    let second = push_next(&server, 2, &[]);
    server.sandbox.wait_for_detached_deliverers();
    deliver_once(&server);
    receiver.assert_no_more();
    let status = connector_status(&server, "ci");
    assert_eq!((status["pending"].as_u64(), status["disabled"].as_bool()), (Some(1), Some(true)), "{status}");
    assert!(status["last_error"].as_str().is_some_and(|e| e.contains("410")), "{status}");

    let enabled = json_of(&server, &["queue", "enable", "ci"]);
    assert_eq!(enabled, serde_json::json!({"connector": "ci", "enabled": true, "was_disabled": true}));
    deliver_once(&server);

    let delivered = receiver.next();
    assert_eq!((delivered.sequence(), after(&delivered)), (2, second));
    assert_eq!(counts(&server, "ci"), (0, 1, false), "the 410'd event stays a dead letter");
    receiver.assert_no_more();
}

// ---------------------------------------------------------------------------------------
// Post script extensions
// ---------------------------------------------------------------------------------------

#[test]
fn a_post_script_gets_the_event_and_a_failing_one_is_dead_lettered() {
    let server = TestServer::new();
    let out = server.root().join("out");
    std::fs::create_dir(&out).unwrap();
    let script = r#"cat > "$1/$PUSHGATE_DELIVERY_ID.json"; env > "$1/$PUSHGATE_DELIVERY_ID.env"; pwd > "$1/pwd""#;
    let tables = format!(
        "\n[[extension]]\nname = \"copy\"\ntype = \"script\"\nphase = \"post\"\ncommand = [\"/bin/sh\", \"-c\", {}, \"sh\", {}]\n\
         \n[[extension]]\nname = \"broken\"\ntype = \"script\"\nphase = \"post\"\ncommand = [\"/bin/sh\", \"-c\", \"echo nope >&2; exit 3\"]\n",
        quoted(script),
        quoted(&out)
    );
    let config = format!("{}{ALLOW_ALL}{tables}", spool_table(&server, &RETRY));
    let server = server.config(&config).install(&[]);

    let tip = push_next(&server, 1, &[]);
    server.sandbox.wait_for_detached_deliverers();

    let bodies: Vec<_> = files_under(&out).into_iter().filter(|p| p.extension().is_some_and(|e| e == "json")).collect();
    assert_eq!(bodies.len(), 1, "{bodies:?}");
    let event: serde_json::Value = serde_json::from_slice(&std::fs::read(&bodies[0]).unwrap()).unwrap();
    assert_valid(&event_schema(), &event);
    assert_eq!((event["sequence"].as_u64(), event["changes"][0]["after"].as_str()), (Some(1), Some(tip.as_str())));
    let env = std::fs::read_to_string(bodies[0].with_extension("env")).unwrap();
    for expected in ["PUSHGATE_PHASE=post", "PUSHGATE_USER=alice", "PUSHGATE_REPO=server"] {
        assert!(env.lines().any(|l| l == expected), "no {expected} in\n{env}");
    }
    assert!(env.lines().any(|l| l == format!("PUSHGATE_EVENT_ID={}", event["id"].as_str().unwrap())));
    assert_eq!(std::fs::read_to_string(out.join("pwd")).unwrap().trim_end(), server.repo.to_string_lossy());
    assert_eq!(counts(&server, "copy"), (0, 0, false));
    let dead = only_job(&server, true);
    assert_eq!(
        (dead["connector"].as_str(), dead["last_error"].as_str()),
        (Some("broken"), Some("refused (exit 3): nope"))
    );
}

// ---------------------------------------------------------------------------------------
// Concurrency and crashes
// ---------------------------------------------------------------------------------------

#[test]
fn twenty_concurrent_pushes_are_all_delivered_once_in_sequence() {
    const PUSHES: usize = 20;
    let receiver = Receiver::ok();
    let server = server(&post_http("ci", &receiver.url("/hook"), ""));
    let clones: Vec<Work> = (0..PUSHES).map(|i| server.clone_as(&format!("clone{i}"))).collect();
    let tips: Vec<String> =
        clones.iter().enumerate().map(|(i, w)| w.commit(&[(&format!("c{i}.txt"), "x\n")])).collect();
    let start = std::sync::Barrier::new(PUSHES);

    let runs: Vec<Run> = std::thread::scope(|scope| {
        let handles: Vec<_> = clones
            .iter()
            .enumerate()
            .map(|(i, work)| {
                let start = &start;
                scope.spawn(move || {
                    start.wait();
                    work.push_as("alice", &["origin", &format!("HEAD:refs/heads/b{i}")])
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });

    for run in &runs {
        run.assert_accepted().assert_no_panic();
    }
    let mut requests = receiver.take(PUSHES);
    server.sandbox.wait_for_detached_deliverers();
    requests.extend(receiver.drain());
    let mut seen = BTreeSet::new();
    let unique: Vec<&Request> = requests.iter().filter(|r| seen.insert(r.delivery())).collect();
    let order: Vec<u64> = unique.iter().map(|r| r.sequence()).collect();
    assert_eq!(order, (1..=PUSHES as u64).collect::<Vec<_>>(), "each event once, in sequence order");
    assert_eq!(requests.len(), PUSHES, "no event was delivered twice");
    let mut pushed: BTreeMap<String, String> = BTreeMap::new();
    for request in &unique {
        let change = &request.json()["changes"][0];
        pushed.insert(change["ref"].as_str().unwrap().into(), change["after"].as_str().unwrap().into());
    }
    let expected: BTreeMap<String, String> =
        tips.iter().enumerate().map(|(i, tip)| (format!("refs/heads/b{i}"), tip.clone())).collect();
    assert_eq!(pushed, expected);
    assert_eq!(counts(&server, "ci"), (0, 0, false));
}

/// Push once with the process killed at `point`, deliver with a later `deliver --once`,
/// push again normally: what each of two connectors received, by connector.
fn crash_at(point: &str) -> BTreeMap<String, Vec<Request>> {
    let receiver = Receiver::ok();
    let server = server(&[post_http("a", &receiver.url("/a"), ""), post_http("b", &receiver.url("/b"), "")].concat());
    let work = server.work();

    let first = work.commit(&[("one.txt", "1\n")]);
    let pushed = work
        .push(&["-o", "note=crash", "origin", "HEAD:refs/heads/main"])
        .env("PUSHGATE_USER", "alice")
        .env("PUSHGATE_CRASH_AT", point)
        .run();
    pushed.assert_accepted();
    assert_eq!(server.ref_target("refs/heads/main").as_deref(), Some(first.as_str()), "the push landed\n{pushed}");
    server.sandbox.wait_for_detached_deliverers();
    deliver_once(&server);
    let mut received = receiver.drain();
    for connector in ["/a", "/b"] {
        let told = received.iter().any(|r| r.path == connector && r.sequence() == 1);
        assert!(told, "{connector} has the first event once a later `deliver --once` ran: {received:#?}");
    }
    let second = push_next(&server, 2, &[]);
    server.sandbox.wait_for_detached_deliverers();
    received.extend(receiver.drain());

    let mut by_connector: BTreeMap<String, Vec<Request>> = BTreeMap::new();
    for request in received {
        by_connector.entry(request.path.clone()).or_default().push(request);
    }
    assert_eq!(by_connector.keys().collect::<Vec<_>>(), ["/a", "/b"]);
    for (connector, requests) in &by_connector {
        let mut collapsed = sequences(requests);
        collapsed.dedup();
        assert_eq!(collapsed, [1, 2], "{connector}: {:#?}", requests.iter().map(summary).collect::<Vec<_>>());
        let first_ids: BTreeSet<String> =
            requests.iter().filter(|r| r.sequence() == 1).map(Request::delivery).collect();
        assert_eq!(first_ids.len(), 1, "{connector}: a repeated delivery keeps its id");
        let event = requests[0].json();
        assert_valid(&event_schema(), &event);
        assert_eq!(event["changes"][0]["after"], first.as_str());
        assert_eq!(event["changes"][0]["action"], "create");
        assert_eq!(event["user"]["name"], "alice");
        assert_eq!(event["push_options"], serde_json::json!(["note=crash"]));
        assert_eq!(after(requests.last().unwrap()), second);
        let name = connector.trim_start_matches('/');
        assert_eq!(counts(&server, name), (0, 0, false));
    }
    by_connector
}

/// Each connector got the first event exactly once, then the second.
#[track_caller]
fn assert_delivered_once(by_connector: &BTreeMap<String, Vec<Request>>) {
    for (connector, requests) in by_connector {
        assert_eq!(sequences(requests), [1, 2], "{connector}");
    }
}

#[test]
fn a_post_receive_killed_before_confirming_loses_nothing() {
    let received = crash_at("post:before-confirm");
    assert_delivered_once(&received);
}

#[test]
fn a_post_receive_killed_after_confirming_loses_nothing() {
    let received = crash_at("post:after-confirm");
    assert_delivered_once(&received);
}

#[test]
fn a_gate_killed_after_recording_leaves_no_event_of_a_push_that_did_not_land() {
    let receiver = Receiver::ok();
    let server = server(&post_http("ci", &receiver.url("/hook"), ""));
    let work = server.work();
    work.commit(&[("one.txt", "1\n")]);
    let pushed = work
        .push(&["origin", "HEAD:refs/heads/main"])
        .env("PUSHGATE_USER", "alice")
        .env("PUSHGATE_CRASH_AT", "gate:after-record")
        .run();
    pushed.assert_rejected();
    assert_eq!(server.ref_target("refs/heads/main"), None);
    deliver_once(&server);

    let second = push_next(&server, 1, &[]);
    server.sandbox.wait_for_detached_deliverers();
    let requests = receiver.take(1);
    assert_eq!(sequences(&requests), [1], "the push that did not land has no event, and no gap");
    assert_eq!(after(&requests[0]), second);
    receiver.assert_no_more();
    assert!(files_under(&spool_dir(&server).join("incoming")).is_empty());
}

#[test]
fn a_deliverer_killed_after_queueing_its_first_job_loses_nothing() {
    let received = crash_at("deliver:after-first-job");
    assert_delivered_once(&received);
}

#[test]
fn a_deliverer_killed_before_sending_loses_nothing() {
    let received = crash_at("deliver:before-send");
    assert_delivered_once(&received);
}

#[test]
fn a_deliverer_killed_after_sending_delivers_again_with_the_same_id() {
    let received = crash_at("deliver:after-send");
    let repeated: Vec<&String> = received
        .iter()
        .filter(|(_, requests)| requests.iter().filter(|r| r.sequence() == 1).count() > 1)
        .map(|(c, _)| c)
        .collect();
    assert!(!repeated.is_empty(), "the event sent before the kill is sent again: {received:#?}");
}

#[test]
fn deliverers_racing_post_receive_log_no_phantom_dead_letters() {
    const CLONES: usize = 4;
    const PUSHES: usize = 10;
    let receiver = Receiver::ok();
    let server = server(&post_http("ci", &receiver.url("/hook"), ""));
    let _watch = server.pushgate(&["deliver", "--watch"]).background();
    let clones: Vec<Work> = (0..CLONES).map(|i| server.clone_as(&format!("clone{i}"))).collect();

    std::thread::scope(|scope| {
        for (i, work) in clones.iter().enumerate() {
            scope.spawn(move || {
                for n in 0..PUSHES {
                    work.commit(&[("f.txt", &format!("{n}\n"))]);
                    work.push_as("alice", &["origin", &format!("HEAD:refs/heads/b{i}")]).assert_accepted();
                }
            });
        }
    });

    let delivered: BTreeSet<String> = receiver.take(CLONES * PUSHES).iter().map(Request::delivery).collect();
    assert_eq!(delivered.len(), CLONES * PUSHES, "every event is delivered");
    server.sandbox.wait_for_detached_deliverers();
    let attempts = poll("every delivery in the log", || {
        let attempts = log(&server);
        (attempts.iter().filter(|a| a["outcome"] == "delivered").count() == CLONES * PUSHES).then_some(attempts)
    });
    let phantoms: Vec<&serde_json::Value> = attempts.iter().filter(|a| a["outcome"] != "delivered").collect();
    let failed: Vec<_> = files_under(&spool_dir(&server).join("incoming"));
    assert!(
        phantoms.is_empty() && failed.is_empty(),
        "phantom dead letters {phantoms:#?}\nleft in incoming/: {failed:#?}"
    );
}

#[test]
fn a_recovered_event_lists_the_commits_its_push_brought() {
    let receiver = Receiver::ok();
    let server = server(&post_http("ci", &receiver.url("/hook"), ""));
    let work = server.work();
    let first = work.commit(&[("one.txt", "1\n")]);
    work.push(&["origin", "HEAD:refs/heads/main"])
        .env("PUSHGATE_USER", "alice")
        .env("PUSHGATE_CRASH_AT", "post:before-confirm")
        .run()
        .assert_accepted();

    // The usual next step: tag what was just pushed. Its deliverer finishes the first push.
    server.push_as("alice", &["origin", "HEAD:refs/tags/v1"]).assert_accepted();
    server.sandbox.wait_for_detached_deliverers();

    let requests = receiver.take(2);
    assert_eq!(sequences(&requests), [1, 2]);
    let main = &requests[0].json()["changes"][0];
    assert_eq!(main["ref"], "refs/heads/main");
    let listed: Vec<&str> = main["commits"].as_array().unwrap().iter().map(|c| c["id"].as_str().unwrap()).collect();
    assert_eq!(listed, [first.as_str()], "the push of main brought {first}");
    assert_eq!(requests[1].json()["changes"][0]["commits"], serde_json::json!([]), "the tag brought nothing new");
}

// ---------------------------------------------------------------------------------------
// A spool that cannot be written
// ---------------------------------------------------------------------------------------

/// A server whose `[spool] dir` lies under a regular file (mkdir fails with ENOTDIR, which
/// running as root does not get around), with `tables`.
fn server_with_blocked_spool(tables: &str) -> (TestServer, std::path::PathBuf) {
    server_with_blocked_spool_and(tables, "")
}

/// As [`server_with_blocked_spool`], with more `[spool]` keys.
fn server_with_blocked_spool_and(tables: &str, spool_keys: &str) -> (TestServer, std::path::PathBuf) {
    let server = TestServer::new();
    let blocker = server.root().join("blocker");
    std::fs::write(&blocker, "a file, not a directory\n").unwrap();
    let spool = blocker.join("spool");
    let config = format!("[spool]\ndir = {}\n{spool_keys}\n{ALLOW_ALL}{tables}", quoted(&spool));
    (server.config(&config).install(&[]), spool)
}

#[test]
fn a_spool_that_cannot_take_the_record_rejects_the_push_saying_why() {
    let receiver = Receiver::ok();
    let (server, spool) = server_with_blocked_spool(&post_http("ci", &receiver.url("/hook"), ""));
    server.work().commit(&[("README.md", "# app\n")]);

    let pushed = server.push_as("alice", &["origin", "HEAD:refs/heads/main"]);

    pushed.assert_rejected().assert_no_panic();
    assert_eq!(server.ref_target("refs/heads/main"), None, "the push did not land");
    let lines = pushed.pushgate_lines();
    assert_eq!(lines.len(), 1, "{pushed}");
    assert!(lines[0].starts_with("pushgate: push rejected: the spool "), "{pushed}");
    assert!(lines[0].contains(&spool.to_string_lossy().into_owned()), "{pushed}");
    assert!(lines[0].ends_with("refused so that its event is not lost ([spool] on_full)"), "{pushed}");
    receiver.assert_no_more();
}

#[test]
fn with_on_full_accept_the_push_lands_and_says_its_event_is_not_recorded() {
    let receiver = Receiver::ok();
    let (server, _) =
        server_with_blocked_spool_and(&post_http("ci", &receiver.url("/hook"), ""), "on_full = \"accept\"");
    let tip = server.work().commit(&[("README.md", "# app\n")]);

    let pushed = server.push_as("alice", &["origin", "HEAD:refs/heads/main"]);

    pushed.assert_accepted().assert_no_panic();
    assert_eq!(server.ref_target("refs/heads/main"), Some(tip), "the push landed");
    let lines = pushed.pushgate_lines();
    assert_eq!(lines.len(), 1, "{pushed}");
    assert!(lines[0].starts_with("pushgate: WARNING: the spool "), "{pushed}");
    assert!(lines[0].ends_with("the push lands, but its event is NOT recorded"), "{pushed}");
    receiver.assert_no_more();
}

#[test]
fn without_post_extensions_nothing_is_spooled_and_nothing_is_said() {
    let (server, _) = server_with_blocked_spool(
        r#"
[[extension]]
name = "lint"
type = "script"
phase = "pre"
command = ["/bin/true"]

[[extension]]
name = "off"
type = "http"
phase = "post"
url = "http://127.0.0.1:9/x"
enabled = false
"#,
    );
    let tip = server.work().commit(&[("README.md", "# app\n")]);

    let pushed = server.push_as("alice", &["origin", "HEAD:refs/heads/main"]);

    pushed.assert_accepted();
    assert_eq!(pushed.remote_lines(), Vec::<String>::new(), "{pushed}");
    let by_hand = server.hook("alice", &["post-receive"]).stdin(updates(&[(ZERO, &tip, "refs/heads/again")])).run();
    by_hand.assert_code(0);
    assert_eq!(by_hand.stderr, "");

    // With a spool directory that could be made, it is not made either.
    let server = server_retrying(&RETRY, "");
    server.work().commit(&[("README.md", "# app\n")]);
    server.push_as("alice", &["origin", "HEAD:refs/heads/main"]).assert_accepted();
    assert!(!spool_dir(&server).exists(), "a spool was made: {:?}", files_under(&spool_dir(&server)));
}

#[test]
fn an_event_recorded_before_the_configuration_broke_is_delivered_once_it_is_fixed() {
    let receiver = Receiver::ok();
    let server = server(&post_http("ci", &receiver.url("/hook"), ""));
    let tip = server.work().commit(&[("README.md", "# app\n")]);
    server.push_as("alice", &["origin", "HEAD:refs/heads/main"]).assert_accepted();
    receiver.next();
    server.sandbox.wait_for_detached_deliverers();
    let good = std::fs::read_to_string(server.config_path()).unwrap();

    // The gate records the push; the configuration breaks before post-receive runs.
    let input = updates(&[(ZERO, &tip, "refs/heads/copy")]);
    server.hook("alice", &["pre-receive"]).stdin(input.clone()).run().assert_code(0);
    std::fs::write(server.config_path(), format!("{good}\nunknown_key = 1\n")).unwrap();
    let run = server.hook("alice", &["post-receive"]).stdin(input).run();

    run.assert_code(0).assert_no_panic();
    assert_eq!(run.stderr, "", "{run}");
    server.sandbox.wait_for_detached_deliverers();
    receiver.assert_no_more();

    std::fs::write(server.config_path(), good).unwrap();
    deliver_once(&server);

    let request = receiver.next();
    assert_eq!((request.sequence(), request.json()["changes"][0]["ref"].as_str()), (2, Some("refs/heads/copy")));
    assert_valid(&event_schema(), &request.json());
}

/// A private tmpfs of `size`, unmounted when dropped; `None` where mounting is not allowed
/// (not root), so the test says so and skips.
struct SmallDisk(std::path::PathBuf);

impl SmallDisk {
    fn mount(at: &std::path::Path, size: &str) -> Option<SmallDisk> {
        std::fs::create_dir_all(at).ok()?;
        let mounted = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(at)
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        mounted.then(|| SmallDisk(at.to_path_buf()))
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn a_full_spool_disk_rejects_the_push_saying_so() {
    let receiver = Receiver::ok();
    let server = TestServer::new();
    let Some(disk) = SmallDisk::mount(&server.root().join("small-disk"), "64k") else {
        eprintln!("note: cannot mount a tmpfs here (not root?): the full-disk test is skipped");
        return;
    };
    let spool = disk.0.join("spool");
    std::fs::create_dir_all(&spool).unwrap();
    // Fill the disk to the last block.
    let mut filler = std::fs::File::create(disk.0.join("filler")).unwrap();
    let block = vec![0u8; 4096];
    while std::io::Write::write_all(&mut filler, &block).is_ok() {}
    drop(filler);
    let config =
        format!("[spool]\ndir = {}\n{ALLOW_ALL}{}", quoted(&spool), post_http("ci", &receiver.url("/hook"), ""));
    let server = server.config(&config).install(&[]);
    let tip = server.work().commit(&[("README.md", "# app\n")]);

    let pushed = server.push_as("alice", &["origin", "HEAD:refs/heads/main"]);

    pushed.assert_rejected().assert_no_panic();
    assert_ne!(server.ref_target("refs/heads/main"), Some(tip), "the push did not land");
    let lines = pushed.pushgate_lines();
    assert_eq!(lines.len(), 1, "{pushed}");
    assert!(lines[0].starts_with("pushgate: push rejected: the spool "), "{pushed}");
    assert!(lines[0].contains("is full"), "{pushed}");
    assert!(lines[0].ends_with("refused so that its event is not lost ([spool] on_full)"), "{pushed}");
    drop(disk);
}

#[test]
fn connectors_two_repositories_define_under_one_name_keep_their_own_queues() {
    let shared = tempfile::tempdir().unwrap();
    let spool = shared.path().join("spool");
    let config = format!("[spool]\ndir = {}\n{ALLOW_ALL}", quoted(&spool));
    let servers: Vec<(TestServer, std::path::PathBuf)> = ["a", "b"]
        .iter()
        .map(|name| {
            let out = shared.path().join(format!("out-{name}"));
            let script = format!("cat >> {}; echo >> {}", out.display(), out.display());
            let repo_file = format!(
                "[[extension]]\nname = \"notify\"\ntype = \"script\"\nphase = \"post\"\ncommand = [\"/bin/sh\", \"-c\", {}]\n",
                quoted(script)
            );
            (TestServer::new().config(&config).repo_config(&repo_file).install(&[]), out)
        })
        .collect();
    for (server, _) in &servers {
        server.work().commit(&[("README.md", "# app\n")]);
        server
            .work()
            .push(&["origin", "HEAD:refs/heads/main"])
            .env("PUSHGATE_USER", "alice")
            .env(NO_DETACHED_SEND.0, NO_DETACHED_SEND.1)
            .run()
            .assert_accepted();
    }
    for (server, _) in &servers {
        server.sandbox.wait_for_detached_deliverers();
    }
    servers[0].0.pushgate(&["deliver", "--once"]).ok();

    for (server, out) in &servers {
        let text = std::fs::read_to_string(out).unwrap_or_default();
        let events: Vec<serde_json::Value> =
            text.lines().filter(|l| !l.is_empty()).map(|l| serde_json::from_str(l).unwrap()).collect();
        assert_eq!(events.len(), 1, "{}: {text}", out.display());
        let path = std::fs::canonicalize(server.root().join("server.git")).unwrap();
        assert_eq!(
            events[0]["repository"]["path"],
            path.to_string_lossy().as_ref(),
            "a repository's events stay with its own connector"
        );
    }
}

/// The sequences of a batch delivery's events.
fn batch_sequences(request: &Request) -> Vec<u64> {
    let events = request.json();
    events
        .as_array()
        .unwrap_or_else(|| panic!("not an array: {events}"))
        .iter()
        .map(|e| e["sequence"].as_u64().unwrap())
        .collect()
}

#[test]
fn a_batch_connector_sends_arrays_when_full_or_when_the_oldest_waited() {
    let receiver = Receiver::ok();
    let batch = "batch = { max = 2, wait = \"2s\" }";
    let server = server(&post_http("bulk", &receiver.url("/bulk"), batch));
    // Every deliverer a push detaches dies before sending: only the watcher delivers.
    for n in 1..=3 {
        push_next(&server, n, &[NO_DETACHED_SEND]);
    }
    server.sandbox.wait_for_detached_deliverers();
    let mut watch = server.pushgate(&["deliver", "--watch"]).background();
    let full = receiver.next();
    assert_eq!(batch_sequences(&full), [1, 2], "full: sent at once");
    for event in full.json().as_array().unwrap() {
        assert_valid(&event_schema(), event);
    }
    let started = std::time::Instant::now();
    let late = receiver.next();
    assert_eq!(batch_sequences(&late), [3], "the rest once its oldest waited");
    assert!(started.elapsed() < WAIT);
    assert_ne!(full.delivery(), late.delivery());
    watch.assert_running();
    // The watcher logs an attempt once the receiver has answered: wait for the second line.
    let deadline = std::time::Instant::now() + WAIT;
    let mut attempts = log_of(&server, "bulk");
    while attempts.len() < 2 && std::time::Instant::now() < deadline {
        std::thread::park_timeout(std::time::Duration::from_millis(10));
        attempts = log_of(&server, "bulk");
    }
    assert_eq!(attempts.iter().map(|a| a["batch"].as_u64().unwrap()).collect::<Vec<_>>(), [2, 1]);
    receiver.assert_no_more();
}

#[test]
fn a_failed_batch_is_retried_whole_before_anything_after_it() {
    let receiver = Receiver::scripted([Answer::status(503)], Answer::ok());
    let batch = "batch = { max = 2, wait = \"1s\" }";
    let server = server(&post_http("bulk", &receiver.url("/bulk"), batch));
    for n in 1..=2 {
        push_next(&server, n, &[NO_DETACHED_SEND]);
    }
    server.sandbox.wait_for_detached_deliverers();
    let _watch = server.pushgate(&["deliver", "--watch"]).background();
    let failed = receiver.next();
    assert_eq!(batch_sequences(&failed), [1, 2]);
    // Events arriving meanwhile wait behind the failed batch and do not join it.
    push_next(&server, 3, &[NO_DETACHED_SEND]);
    let retried = receiver.next();
    assert_eq!(batch_sequences(&retried), [1, 2]);
    assert_eq!(retried.delivery(), failed.delivery(), "the same batch, the same delivery id");
    assert_eq!(batch_sequences(&receiver.next()), [3]);
    receiver.assert_no_more();
}

#[test]
fn the_shipped_batch_example_stores_events_in_sqlite_once_each() {
    let example =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("hooks-templates/extensions/batch-to-sqlite.py");
    let server = TestServer::new();
    let database = server.root().join("pushes.sqlite");
    let extension = format!(
        "\n[[extension]]\nname = \"stats\"\ntype = \"script\"\nphase = \"post\"\nbatch = {{ max = 3, wait = \"1s\" }}\n\
         command = [\"python3\", {}, {}]\nenv = [\"PATH\"]\n",
        quoted(&example),
        quoted(&database)
    );
    let spool = format!("[spool]\ndir = {}\nretry = [\"50ms\"]\n", quoted(server.root().join("spool")));
    let server = server.config(&format!("{ALLOW_ALL}{spool}{extension}")).install(&[]);
    for n in 1..=4 {
        push_next(&server, n, &[NO_DETACHED_SEND]);
    }
    server.sandbox.wait_for_detached_deliverers();
    let _watch = server.pushgate(&["deliver", "--watch"]).background();
    let count = |sql: &str| {
        let script = format!("import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute({sql:?}).fetchone()[0])");
        server.sandbox.command("python3").args(["-c", &script]).arg(&database).run().stdout.trim().to_string()
    };
    poll("four events stored", || (count("select count(*) from pushes") == "4").then_some(()));
    assert_eq!(count("select group_concat(sequence) from (select sequence from pushes order by sequence)"), "1,2,3,4");
    let batches: Vec<u64> = log_of(&server, "stats").iter().map(|a| a["batch"].as_u64().unwrap()).collect();
    assert_eq!(batches, [3, 1]);
}
