//! The event schemas hold for real events: every kind of push (create, fast-forward with a
//! merge, force, annotated and lightweight tags, a branch at an existing commit, deletes),
//! in SHA-1 and SHA-256 repositories, as a `pre` script and a `post` endpoint receive it,
//! validates against `docs/event.schema.json`, and every `github` payload against GitHub's
//! push-event schema, with format validation on. The schema is strict enough for that to
//! mean something.

use crate::harness::{
    ALLOW_ALL, Receiver, TestServer, assert_valid, event_schema, files_under, github_schema, post_http, quoted,
    spool_table,
};
use std::collections::BTreeMap;

/// A server whose every push is copied to `<root>/pre/<event id>.json` by a `pre` script and
/// sent to `events` (pushgate format) and `github` (github format).
fn server(format: &str, events: &Receiver, github: &Receiver) -> TestServer {
    let server = TestServer::with_object_format(format);
    let pre = server.root().join("pre");
    std::fs::create_dir(&pre).unwrap();
    let config = format!(
        "[server]\nbase_url = \"https://git.example.org\"\n{}{ALLOW_ALL}\
         \n[[extension]]\nname = \"copy\"\ntype = \"script\"\nphase = \"pre\"\n\
         command = [\"/bin/sh\", \"-c\", \"cat > \\\"$1/$PUSHGATE_EVENT_ID.json\\\"\", \"sh\", {}]\n{}{}",
        spool_table(&server, &["50ms"]),
        quoted(&pre),
        post_http("events", &events.url("/events"), ""),
        post_http("github", &github.url("/github"), "format = \"github\""),
    );
    server.config(&config).install(&[])
}

/// Push `args` as alice; the push must land.
fn push(server: &TestServer, args: &[&str]) {
    let pushed = server.push_as("alice", args);
    pushed.assert_accepted().assert_no_panic();
}

/// Every kind of push, one after the other; how many ref changes they made.
fn push_every_kind(server: &TestServer) -> usize {
    let work = server.work();
    work.commit(&[("README.md", "# app\n"), ("src/main.rs", "fn main() {}\n")]);
    push(server, &["origin", "HEAD:refs/heads/main"]);

    let base = work.head();
    work.branch("side", &base);
    work.commit(&[("side.txt", "side\n")]);
    work.checkout("main");
    work.remove(&["src/main.rs"]);
    work.git(&["merge", "--quiet", "--no-edit", "side"]).ok();
    push(server, &["origin", "HEAD:refs/heads/main"]);

    work.git(&["reset", "--quiet", "--hard", "HEAD~1"]).ok();
    work.commit(&[("README.md", "# app, rewritten\n")]);
    push(server, &["origin", "+HEAD:refs/heads/main"]);

    work.git(&["tag", "-a", "v1", "-m", "release 1"]).ok();
    push(server, &["origin", "refs/tags/v1"]);

    push(server, &["origin", "HEAD:refs/tags/light", "HEAD~1:refs/heads/copy"]);

    push(server, &["origin", ":refs/tags/light", ":refs/heads/copy"]);
    1 + 1 + 1 + 1 + 2 + 2
}

/// Push every kind, then validate what the `pre` script, the pushgate-format endpoint and
/// the github-format endpoint received.
fn every_kind_validates(format: &str, id_length: usize) {
    let (events, github) = (Receiver::ok(), Receiver::ok());
    let server = server(format, &events, &github);

    let changes = push_every_kind(&server);

    let schema = event_schema();
    let pre = files_under(&server.root().join("pre"));
    assert_eq!(pre.len(), 6, "{pre:?}");
    let mut actions = BTreeMap::new();
    for path in &pre {
        let event: serde_json::Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
        assert_valid(&schema, &event);
        assert_eq!(event["phase"], "pre");
        for change in event["changes"].as_array().unwrap() {
            *actions.entry(change["action"].as_str().unwrap().to_string()).or_insert(0) += 1;
        }
    }
    assert_eq!(
        actions,
        BTreeMap::from([("create".into(), 4), ("update".into(), 1), ("force".into(), 1), ("delete".into(), 2)])
    );
    for (n, request) in events.take(6).iter().enumerate() {
        let event = request.json();
        assert_valid(&schema, &event);
        assert_eq!((event["phase"].as_str(), event["sequence"].as_u64()), (Some("post"), Some(n as u64 + 1)));
        for change in event["changes"].as_array().unwrap() {
            assert_eq!(change["after"].as_str().unwrap().len(), id_length);
        }
    }
    let github_schema = github_schema();
    for request in github.take(changes) {
        assert_valid(&github_schema, &request.json());
    }
    server.sandbox.wait_for_detached_deliverers();
    events.assert_no_more();
    github.assert_no_more();
}

#[test]
fn events_of_every_kind_of_push_validate() {
    every_kind_validates("sha1", 40);
}

#[test]
fn events_of_a_sha256_repository_validate() {
    every_kind_validates("sha256", 64);
}

#[test]
fn the_event_schema_refuses_what_is_not_an_event() {
    let (events, github) = (Receiver::ok(), Receiver::ok());
    let server = server("sha1", &events, &github);
    server.work().commit(&[("README.md", "# app\n")]);
    push(&server, &["origin", "HEAD:refs/heads/main"]);
    let event = events.next().json();
    let schema = event_schema();
    assert_valid(&schema, &event);

    let broken = |change: &dyn Fn(&mut serde_json::Value)| {
        let mut copy = event.clone();
        change(&mut copy);
        !schema.is_valid(&copy)
    };
    assert!(broken(&|e| e["surprise"] = true.into()), "unknown fields");
    assert!(broken(&|e| e["time"] = "yesterday".into()), "formats are checked");
    assert!(broken(&|e| e["changes"][0]["action"] = "move".into()), "actions");
    assert!(broken(&|e| e["changes"][0]["after"] = "abc".into()), "object ids");
    assert!(broken(&|e| e["changes"][0]["ref"] = "main".into()), "full ref names");
    assert!(broken(&|e| e["sequence"] = 0.into()), "sequences start at 1");
    assert!(broken(&|e| e["user"]["via"] = "carrier pigeon".into()), "how the user came");
    assert!(broken(&|e| {
        e.as_object_mut().unwrap().remove("push_options");
    }));

    let payload = github.next().json();
    let github_schema = github_schema();
    assert_valid(&github_schema, &payload);
    let mut copy = payload.clone();
    copy["repository"]["html_url"] = "not a uri".into();
    assert!(!github_schema.is_valid(&copy), "GitHub's schema checks formats too");
    server.sandbox.wait_for_detached_deliverers();
}
