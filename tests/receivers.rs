//! Deliveries as real receivers see them. One server pushes every kind of change (creates,
//! a merge bringing commits another ref already had, a force, annotated and lightweight
//! tags, a branch at an existing commit, deletes) to five endpoints: `github` (with a
//! secret), `pushgate` with a `whsec_` secret and with a plain one, `gitlab` (with a secret
//! token), and one told of forces and deletes only (`actions`). Every delivery is checked
//! field by field against SPEC §6 and the shapes of GitHub's and GitLab's own example
//! payloads (`tests/data`), then handed to pinned third-party receiver libraries
//! (`tests/receivers/`): each must accept every delivery meant for it.
//!
//! The libraries are installed by `.ci/run` into `$PUSHGATE_RECEIVERS` (default
//! `tests/receivers/deps`, see `tests/receivers/README.md`); only when that directory is
//! absent is the last step skipped, saying so.

#![allow(clippy::unwrap_used, clippy::print_stdout, clippy::print_stderr, clippy::undocumented_unsafe_blocks)]

mod common;
mod support;

use common::{TestServer, ZERO};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use support::{
    ALLOW_ALL, Receiver, Request, assert_valid, event_schema, github_signature, post_http, schema, spool_table,
    standard_signature, wait_for_detached_deliverers,
};

const GITHUB_SECRET: &str = "It's a Secret to Everybody";
/// The Standard Webhooks test vector's secret.
const WHSEC_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
/// Not base64, not ASCII: a Standard Webhooks library must take it as bytes.
const PLAIN_SECRET: &str = "plain sécret-ü-🔑";
const GITLAB_TOKEN: &str = "gl-token 4 pushgate";

const SECRETS: [(&str, &str); 4] = [
    ("GH_SECRET", GITHUB_SECRET),
    ("WHSEC_SECRET", WHSEC_SECRET),
    ("PLAIN_SECRET", PLAIN_SECRET),
    ("GL_TOKEN", GITLAB_TOKEN),
];

/// The receivers each format's deliveries must satisfy (`tests/receivers/run.sh` names).
const GITHUB_RECEIVERS: [&str; 6] = [
    "py-github-webhook",
    "js-github-webhook-handler",
    "js-octokit-webhooks",
    "py-octokit-schema",
    "py-standardwebhooks",
    "js-standardwebhooks",
];
const STANDARD_RECEIVERS: [&str; 2] = ["py-standardwebhooks", "js-standardwebhooks"];
const GITLAB_RECEIVERS: [&str; 4] =
    ["py-gidgetlab", "py-pydantic-gitlab-webhooks", "py-standardwebhooks", "js-standardwebhooks"];

/// The five endpoints.
struct Endpoints {
    github: Receiver,
    whsec: Receiver,
    plain: Receiver,
    gitlab: Receiver,
    forces: Receiver,
}

impl Endpoints {
    fn new() -> Endpoints {
        Endpoints {
            github: Receiver::ok(),
            whsec: Receiver::ok(),
            plain: Receiver::ok(),
            gitlab: Receiver::ok(),
            forces: Receiver::ok(),
        }
    }

    fn all(&self) -> [&Receiver; 5] {
        [&self.github, &self.whsec, &self.plain, &self.gitlab, &self.forces]
    }
}

fn server(to: &Endpoints) -> TestServer {
    let server = TestServer::new();
    let config = format!(
        "[server]\nbase_url = \"https://git.example.org\"\n\n[users.alice]\nemails = [\"Alice@Example.org\", \
         \"alice@elsewhere.example\"]\n\n{}{ALLOW_ALL}{}{}{}{}{}",
        spool_table(&server, &["50ms", "50ms", "50ms"]),
        post_http("github", &to.github.url("/github"), "format = \"github\"\nsecret_env = \"GH_SECRET\""),
        post_http("whsec", &to.whsec.url("/whsec"), "secret_env = \"WHSEC_SECRET\""),
        post_http("plain", &to.plain.url("/plain"), "secret_env = \"PLAIN_SECRET\""),
        post_http("gitlab", &to.gitlab.url("/gitlab"), "format = \"gitlab\"\nsecret_env = \"GL_TOKEN\""),
        post_http("forces", &to.forces.url("/forces"), "format = \"github\"\nactions = [\"force\", \"delete\"]"),
    );
    server.config(&config).install(&[])
}

/// What one push delivered to each endpoint.
struct Delivered {
    github: Vec<Request>,
    whsec: Request,
    plain: Request,
    gitlab: Vec<Request>,
    forces: Vec<Request>,
}

/// Push `args` as alice (the secrets in her environment reach the deliverer it starts) and
/// take what it delivers: one `github` and `gitlab` delivery per change, one event to each
/// `pushgate` endpoint, `forces` of them to the endpoint told of forces and deletes.
fn push(server: &TestServer, to: &Endpoints, args: &[&str], changes: usize, forces: usize) -> Delivered {
    let mut push = server.work().push(args).env("PUSHGATE_USER", "alice");
    for (name, value) in SECRETS {
        push = push.env(name, value);
    }
    push.run().assert_accepted().assert_no_panic();
    let by_ref = |mut requests: Vec<Request>| {
        requests.sort_by_key(|r| r.json()["ref"].as_str().unwrap_or_default().to_string());
        requests
    };
    Delivered {
        github: by_ref(to.github.take(changes)),
        whsec: to.whsec.next(),
        plain: to.plain.next(),
        gitlab: by_ref(to.gitlab.take(changes)),
        forces: by_ref(to.forces.take(forces)),
    }
}

/// An example payload of `tests/data`.
fn example(path: &str) -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data").join(path);
    serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap()
}

fn keys(value: &Value) -> BTreeSet<String> {
    value.as_object().unwrap_or_else(|| panic!("not an object: {value}")).keys().cloned().collect()
}

fn hmac_sha1(secret: &str, body: &[u8]) -> String {
    use hmac::{Hmac, KeyInit, Mac};
    let mut mac = Hmac::<sha1::Sha1>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body);
    let hex: String = mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect();
    format!("sha1={hex}")
}

/// What every endpoint gets: pushgate's and Standard Webhooks' headers, signed with `secret`.
#[track_caller]
fn assert_common_headers(request: &Request, secret: Option<&str>) {
    // Exactly: buildbot refuses a charset parameter.
    assert_eq!(request.header("Content-Type"), "application/json");
    assert_eq!(request.header("webhook-id"), request.delivery());
    let timestamp = request.header("webhook-timestamp");
    match secret {
        Some(secret) => {
            assert_eq!(
                request.header("webhook-signature"),
                standard_signature(secret, &request.delivery(), timestamp, &request.body)
            );
            assert_eq!(request.header("X-Hub-Signature-256"), github_signature(secret.as_bytes(), &request.body));
        }
        None => assert_eq!(request.try_header("webhook-signature"), None),
    }
}

/// SPEC §6's `github` format, field by field, for one delivery: GitHub's headers and both
/// signatures, the fields of GitHub's own payloads (octokit's example of a created branch
/// has every field GitHub sends today), the repository's names and URLs, the pusher.
#[track_caller]
fn assert_github(request: &Request, secret: Option<&str>, total_commits: usize) -> Value {
    assert_common_headers(request, secret);
    assert_eq!(request.header("X-GitHub-Event"), "push");
    assert_eq!(request.header("X-GitHub-Delivery"), request.delivery());
    assert_eq!(request.header("X-Pushgate-Total-Commits"), total_commits.to_string());
    match secret {
        Some(secret) => assert_eq!(request.header("X-Hub-Signature"), hmac_sha1(secret, &request.body)),
        None => assert_eq!(request.try_header("X-Hub-Signature"), None),
    }
    let payload = request.json();
    assert_valid(
        &schema(&Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/github-push-event.schema.json")),
        &payload,
    );
    let github = example("github/octokit-4-branch-created-installation.json");
    let mut top = keys(&github);
    top.remove("installation");
    assert_eq!(keys(&payload), top, "the fields of GitHub's payload (an app's `installation` aside)");
    assert_eq!(keys(&payload["repository"]), keys(&github["repository"]));
    assert_eq!(keys(&payload["repository"]["owner"]), keys(&github["repository"]["owner"]));
    assert_eq!(keys(&payload["sender"]), keys(&github["sender"]));
    let commit_keys = keys(&github["commits"][0]);
    let commits = payload["commits"].as_array().unwrap();
    for commit in commits.iter().chain(payload["head_commit"].as_object().map(|_| &payload["head_commit"])) {
        assert_eq!(keys(commit), commit_keys);
        let message = commit["message"].as_str().unwrap();
        assert!(!message.ends_with('\n'), "git's trailing newline is not sent: {message:?}");
        assert_eq!(commit["url"], format!("https://git.example.org/server/commit/{}", commit["id"].as_str().unwrap()));
        for who in ["author", "committer"] {
            assert!(keys(&commit[who]).is_subset(&["name", "email", "username"].map(String::from).into()));
        }
    }
    let repository = &payload["repository"];
    assert_eq!(repository["full_name"], "server/server", "owner/name: a top-level repository owns itself");
    assert_eq!((repository["name"].as_str(), repository["owner"]["login"].as_str()), (Some("server"), Some("server")));
    assert_eq!(repository["url"], "https://git.example.org/server", "the web URL, as in GitHub's push events");
    assert_eq!(repository["html_url"], repository["url"]);
    assert_eq!(payload["pusher"], json!({"name": "alice", "email": "Alice@Example.org"}));
    assert_eq!(payload["sender"]["login"], "alice");
    payload
}

/// SPEC §6's `gitlab` format for one delivery: GitLab's headers, the secret token, and the
/// fields of the Push Hook or Tag Push Hook GitLab recorded (`tests/data/gitlab`).
#[track_caller]
fn assert_gitlab(request: &Request) -> Value {
    assert_common_headers(request, Some(GITLAB_TOKEN));
    let payload = request.json();
    let hook = if payload["ref"].as_str().unwrap().starts_with("refs/tags/") { "Tag Push Hook" } else { "Push Hook" };
    assert_eq!(request.header("X-Gitlab-Event"), hook);
    assert_eq!(request.header("X-Gitlab-Token"), GITLAB_TOKEN, "the secret itself, as GitLab sends it");
    assert_eq!(request.header("Idempotency-Key"), request.delivery());
    for uuid in ["X-Gitlab-Event-UUID", "X-Gitlab-Webhook-UUID"] {
        assert_eq!(request.header(uuid).len(), 36, "{uuid} is a UUID");
    }
    let kind = if hook == "Push Hook" { "push" } else { "tag_push" };
    assert_eq!((payload["object_kind"].as_str(), payload["event_name"].as_str()), (Some(kind), Some(kind)));
    let gitlab = example("gitlab/push_api_hook_event.json");
    assert_eq!(keys(&payload), keys(&gitlab), "the fields of GitLab's recorded delivery");
    assert_eq!(keys(&payload["project"]), keys(&gitlab["project"]));
    assert_eq!(keys(&payload["repository"]), keys(&gitlab["repository"]));
    let commits = payload["commits"].as_array().unwrap();
    assert!(commits.len() <= 20);
    for commit in commits {
        assert_eq!(keys(commit), keys(&gitlab["commits"][0]));
        assert_eq!(
            commit["url"],
            format!("https://git.example.org/server/-/commit/{}", commit["id"].as_str().unwrap())
        );
        let message = commit["message"].as_str().unwrap();
        assert!(message.ends_with('\n'), "GitLab sends the whole message: {message:?}");
        assert_eq!(commit["title"].as_str(), message.lines().next());
    }
    assert_eq!(payload["project"]["web_url"], "https://git.example.org/server");
    assert_eq!(payload["project"]["git_http_url"], "https://git.example.org/server.git");
    assert_eq!(payload["project"]["path_with_namespace"], "server/server");
    assert_eq!(payload["user_username"], "alice");
    assert_eq!(payload["user_email"], "Alice@Example.org");
    assert_eq!(payload["push_options"], json!({}));
    payload
}

/// One `pushgate` event, signed with `secret`: valid against docs/event.schema.json.
#[track_caller]
fn assert_pushgate(request: &Request, secret: &str) -> Value {
    assert_common_headers(request, Some(secret));
    let event = request.json();
    assert_valid(&event_schema(), &event);
    event
}

fn ids(commits: &Value) -> Vec<String> {
    commits.as_array().unwrap().iter().map(|c| c["id"].as_str().unwrap().to_string()).collect()
}

fn short(id: &str) -> &str {
    &id[..12]
}

/// A delivery as the receiver programs read it (`tests/receivers/run.sh`).
fn delivery_file(request: &Request, secret: &str, receivers: &[&str]) -> Value {
    let headers: serde_json::Map<String, Value> =
        request.headers.iter().map(|(n, v)| (n.clone(), Value::String(v.clone()))).collect();
    json!({
        "headers": headers,
        "body": String::from_utf8(request.body.clone()).unwrap(),
        "secret": secret,
        "receivers": receivers,
    })
}

#[test]
fn every_kind_of_push_reaches_github_gitlab_and_standard_webhooks_receivers() {
    let to = Endpoints::new();
    let server = server(&to);
    let work = server.work();
    let base = "https://git.example.org/server";
    let mut files: Vec<(String, Value)> = Vec::new();
    let mut keep = |name: &str, delivered: &Delivered| {
        for (i, r) in delivered.github.iter().enumerate() {
            files.push((format!("{name}-github-{i}"), delivery_file(r, GITHUB_SECRET, &GITHUB_RECEIVERS)));
        }
        files.push((format!("{name}-whsec"), delivery_file(&delivered.whsec, WHSEC_SECRET, &STANDARD_RECEIVERS)));
        files.push((format!("{name}-plain"), delivery_file(&delivered.plain, PLAIN_SECRET, &STANDARD_RECEIVERS)));
        for (i, r) in delivered.gitlab.iter().enumerate() {
            // pydantic-gitlab-webhooks types `checkout_sha` as a string, so it refuses
            // GitLab's own deletes (null): they go to the other receivers only.
            let receivers: Vec<&str> = match r.json()["checkout_sha"].is_null() {
                true => GITLAB_RECEIVERS.into_iter().filter(|n| *n != "py-pydantic-gitlab-webhooks").collect(),
                false => GITLAB_RECEIVERS.to_vec(),
            };
            files.push((format!("{name}-gitlab-{i}"), delivery_file(r, GITLAB_TOKEN, &receivers)));
        }
    };

    // 1. main created in the empty repository: every commit is new.
    let first = work.commit(&[("README.md", "# app\n")]);
    let second = work.commit(&[("src/main.rs", "fn main() {}\n")]);
    let created = push(&server, &to, &["origin", "HEAD:refs/heads/main"], 1, 0);
    let github = assert_github(&created.github[0], Some(GITHUB_SECRET), 2);
    assert_eq!((github["created"].as_bool(), github["before"].as_str()), (Some(true), Some(ZERO)));
    assert_eq!(github["compare"], format!("{base}/commit/{second}"), "no other branch: the commit");
    assert_eq!(ids(&github["commits"]), [first.clone(), second.clone()], "oldest first");
    assert!(github["commits"].as_array().unwrap().iter().all(|c| c["distinct"] == true));
    assert_eq!(github["commits"][1]["message"], "Change src/main.rs");
    assert_eq!(github["head_commit"]["id"], second.as_str());
    assert_eq!(github["base_ref"], Value::Null);
    let gitlab = assert_gitlab(&created.gitlab[0]);
    assert_eq!((gitlab["checkout_sha"].as_str(), gitlab["message"].clone()), (Some(second.as_str()), Value::Null));
    assert_eq!(ids(&gitlab["commits"]), [first.clone(), second.clone()]);
    assert_eq!(gitlab["commits"][1]["message"], "Change src/main.rs\n");
    assert_eq!(gitlab["total_commits_count"], 2);
    let event = assert_pushgate(&created.whsec, WHSEC_SECRET);
    assert_eq!(event["changes"][0]["base_ref"], Value::Null);
    assert_pushgate(&created.plain, PLAIN_SECRET);
    keep("1-create", &created);

    // 2. A topic branch with a commit of its own.
    work.branch("topic", &second);
    let topical = work.commit(&[("topic.txt", "topic\n")]);
    let topic = push(&server, &to, &["origin", "HEAD:refs/heads/topic"], 1, 0);
    let github = assert_github(&topic.github[0], Some(GITHUB_SECRET), 1);
    assert_eq!(github["compare"], format!("{base}/compare/main...{}", short(&topical)), "against the default branch");
    assert_eq!(ids(&github["commits"]), [topical.as_str()]);
    assert_gitlab(&topic.gitlab[0]);
    keep("2-topic", &topic);

    // 3. main merges topic: the topic's commit, which topic already had, and the merge.
    work.checkout("main");
    work.commit(&[("README.md", "# app\n\nmerged\n")]);
    let before_merge = work.head();
    work.git(&["merge", "--quiet", "--no-edit", "topic"]).ok();
    let merge = work.head();
    let merged = push(&server, &to, &["origin", "HEAD:refs/heads/main"], 1, 0);
    let github = assert_github(&merged.github[0], Some(GITHUB_SECRET), 3);
    assert_eq!((github["created"].as_bool(), github["forced"].as_bool()), (Some(false), Some(false)));
    assert_eq!(github["compare"], format!("{base}/compare/{}...{}", short(&second), short(&merge)));
    let distinct: BTreeMap<String, bool> = github["commits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["id"].as_str().unwrap().to_string(), c["distinct"].as_bool().unwrap()))
        .collect();
    assert_eq!(
        distinct,
        BTreeMap::from([(topical.clone(), false), (before_merge.clone(), true), (merge.clone(), true)]),
        "the commit topic had is listed, not distinct"
    );
    assert_eq!(ids(&github["commits"]).last(), Some(&merge), "oldest first: the merge last");
    let gitlab = assert_gitlab(&merged.gitlab[0]);
    assert_eq!(gitlab["total_commits_count"], 3);
    assert_eq!(ids(&gitlab["commits"]).last(), Some(&merge));
    keep("3-merge", &merged);

    // 4. main rewritten: a force, told to `forces` too.
    work.git(&["reset", "--quiet", "--hard", &second]).ok();
    let rewritten = work.commit(&[("README.md", "# app, rewritten\n")]);
    let forced = push(&server, &to, &["origin", "+HEAD:refs/heads/main"], 1, 1);
    let github = assert_github(&forced.github[0], Some(GITHUB_SECRET), 1);
    assert_eq!(github["forced"], true);
    assert_eq!(github["compare"], format!("{base}/compare/{}...{}", short(&merge), short(&rewritten)));
    assert_eq!(ids(&github["commits"]), [rewritten.as_str()]);
    let told = assert_github(&forced.forces[0], None, 1);
    assert_eq!(told["forced"], true);
    assert_gitlab(&forced.gitlab[0]);
    keep("4-force", &forced);

    // 5. An annotated tag at main's tip: its base_ref is main, GitLab's tag message and
    //    checkout_sha (the commit, not the tag) are there.
    work.git(&["tag", "-a", "v1", "-m", "release 1"]).ok();
    let tag_object = work.rev("refs/tags/v1");
    let annotated = push(&server, &to, &["origin", "refs/tags/v1"], 1, 0);
    let github = assert_github(&annotated.github[0], Some(GITHUB_SECRET), 0);
    assert_eq!(github["after"], tag_object.as_str());
    assert_eq!(github["base_ref"], "refs/heads/main");
    assert_eq!(github["commits"], json!([]), "nothing new");
    assert_eq!(github["head_commit"]["id"], rewritten.as_str(), "the tagged commit");
    assert_eq!(github["compare"], format!("{base}/compare/main...{}", short(&rewritten)), "by the tagged commit");
    let gitlab = assert_gitlab(&annotated.gitlab[0]);
    assert_eq!(gitlab["after"], tag_object.as_str());
    assert_eq!(gitlab["checkout_sha"], rewritten.as_str());
    assert_eq!(gitlab["message"], "release 1\n");
    assert_eq!((ids(&gitlab["commits"]), gitlab["total_commits_count"].as_u64()), (vec![rewritten.clone()], Some(1)));
    let event = assert_pushgate(&annotated.whsec, WHSEC_SECRET);
    assert_eq!(event["changes"][0]["base_ref"], "refs/heads/main");
    assert_eq!(event["changes"][0]["tag_message"], "release 1\n");
    keep("5-annotated", &annotated);

    // 6. A lightweight tag at a commit no branch tip is, and a branch created at commits
    //    main has (it brings none).
    let pushed = push(&server, &to, &["origin", &format!("{first}:refs/tags/light"), "HEAD:refs/heads/copy"], 2, 0);
    let [copy, light] = [0, 1].map(|i| assert_github(&pushed.github[i], Some(GITHUB_SECRET), 0));
    assert_eq!((copy["ref"].as_str(), light["ref"].as_str()), (Some("refs/heads/copy"), Some("refs/tags/light")));
    assert_eq!(light["base_ref"], Value::Null, "no branch's tip");
    assert_eq!(light["compare"], format!("{base}/compare/main...{}", short(&first)));
    assert_eq!((copy["created"].as_bool(), copy["commits"].clone()), (Some(true), json!([])));
    assert_eq!(copy["head_commit"]["id"], rewritten.as_str());
    assert_eq!(copy["head_commit"]["distinct"], false, "main had it");
    let [copy, light] = [0, 1].map(|i| assert_gitlab(&pushed.gitlab[i]));
    assert_eq!((copy["total_commits_count"].as_u64(), light["message"].clone()), (Some(0), Value::Null));
    assert_eq!(light["checkout_sha"], first.as_str());
    keep("6-light-and-copy", &pushed);

    // 7. Deletes: a tag, a branch; `forces` is told of both.
    let deleted = push(&server, &to, &["origin", ":refs/tags/light", ":refs/heads/copy", ":refs/heads/topic"], 3, 3);
    for request in &deleted.github {
        let github = assert_github(request, Some(GITHUB_SECRET), 0);
        assert_eq!((github["deleted"].as_bool(), github["after"].as_str()), (Some(true), Some(ZERO)));
        assert_eq!((github["head_commit"].clone(), github["commits"].clone()), (Value::Null, json!([])));
        let before = github["before"].as_str().unwrap();
        assert_eq!(github["compare"], format!("{base}/compare/{}...000000000000", short(before)));
    }
    for request in &deleted.gitlab {
        let gitlab = assert_gitlab(request);
        assert_eq!((gitlab["checkout_sha"].clone(), gitlab["total_commits_count"].as_u64()), (Value::Null, Some(0)));
    }
    let told: Vec<Value> = deleted.forces.iter().map(|r| assert_github(r, None, 0)).collect();
    assert!(told.iter().all(|p| p["deleted"] == true));
    keep("7-delete", &deleted);

    // GitLab's ids: one event's deliveries share X-Gitlab-Event-UUID, a webhook keeps its
    // X-Gitlab-Webhook-UUID.
    let uuids = |name: &str| deleted.gitlab.iter().map(|r| r.header(name).to_string()).collect::<BTreeSet<_>>();
    assert_eq!(uuids("X-Gitlab-Event-UUID").len(), 1);
    assert_eq!(uuids("X-Gitlab-Webhook-UUID"), [created.gitlab[0].header("X-Gitlab-Webhook-UUID").to_string()].into());

    wait_for_detached_deliverers(&server.sandbox);
    for receiver in to.all() {
        receiver.assert_no_more();
    }
    run_receivers(&files);
}

/// Write the deliveries where `tests/receivers/run.sh` reads them and run it: every
/// delivery must be accepted by every receiver it names. Skipped, saying so, when the
/// receiver libraries are not installed.
fn run_receivers(files: &[(String, Value)]) {
    let here = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/receivers");
    let deps = std::env::var_os("PUSHGATE_RECEIVERS").map_or_else(|| here.join("deps"), PathBuf::from);
    if !deps.is_dir() {
        eprintln!(
            "SKIPPED: the real receivers: no receiver libraries at {} (PUSHGATE_RECEIVERS); install them as \
             tests/receivers/README.md says",
            deps.display()
        );
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    for (name, delivery) in files {
        std::fs::write(dir.path().join(format!("{name}.json")), serde_json::to_vec_pretty(delivery).unwrap()).unwrap();
    }
    let run = std::process::Command::new("bash")
        .arg(here.join("run.sh"))
        .arg(dir.path())
        .env("PUSHGATE_RECEIVERS", &deps)
        .output()
        .unwrap();
    let out = format!("{}{}", String::from_utf8_lossy(&run.stdout), String::from_utf8_lossy(&run.stderr));
    println!("{out}");
    assert_eq!(run.status.code(), Some(0), "a receiver refused a delivery:\n{out}");
    let accepted = out.matches("=ok").count();
    let expected: usize = files.iter().map(|(_, d)| d["receivers"].as_array().unwrap().len()).sum();
    assert_eq!(accepted, expected, "every receiver named took its delivery:\n{out}");
}
