//! Deliveries as real receivers see them. One server is pushed every kind of change (creates,
//! a topic branch, a merge bringing a commit another ref already had, a force, an annotated
//! tag, a lightweight tag moving with its branch, one at an older commit, a branch at an
//! existing commit, deletes) and delivers each push to five endpoints: `github` (with a
//! secret), `pushgate` with a `whsec_` secret and with a plain one, `gitlab` (with a secret
//! token), and one told of forces and deletes only (`actions`). Every delivery is checked
//! field by field against SPEC §6 and against GitHub's and GitLab's own example payloads
//! (`tests/data`), then handed to pinned third-party receiver libraries
//! (`tests/receivers/`): each must accept every delivery meant for it.
//!
//! The libraries are installed by `tests/receivers/install.sh` from PyPI and npm into the
//! target directory (a virtual environment and an npm prefix, never the system); only when
//! a registry cannot be reached is that last step skipped, saying so.

use crate::harness::{
    ALLOW_ALL, Receiver, Request, TestServer, ZERO, assert_valid, event_schema, github_schema, github_sha1_signature,
    github_signature, post_http, spool_table, standard_signature,
};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

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

const BASE_URL: &str = "https://git.example.org";
/// The server repository's web URL: a top-level repository named `server`.
const WEB: &str = "https://git.example.org/server";

/// The receivers each format's deliveries must satisfy (`tests/receivers/run.sh` names):
/// two that read only the SHA-1 `X-Hub-Signature`, one that reads only the SHA-256 one,
/// GitHub's schema, and the Standard Webhooks libraries (which every delivery satisfies).
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
        "[server]\nbase_url = \"{BASE_URL}\"\n\n[users.alice]\nemails = [\"Alice@Example.org\", \
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

/// What one push delivered to each endpoint (`github`, `gitlab` and `forces` sorted by ref).
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

/// `ours` has the shape of `theirs`, field by field at every depth: the same keys in every
/// object (`ignored` aside at the top, `username` optional), every array element shaped
/// like their first, and
/// the same JSON type wherever neither side is `null` (the fields GitHub and GitLab leave
/// null when they have nothing to say).
#[track_caller]
fn assert_shaped_like(ours: &Value, theirs: &Value, ignored: &[&str]) {
    fn walk(ours: &Value, theirs: &Value, at: &str, ignored: &[&str], wrong: &mut Vec<String>) {
        match (ours, theirs) {
            (Value::Null, _) | (_, Value::Null) => {}
            (Value::Object(o), Value::Object(t)) => {
                let skip = |k: &String| at.is_empty() && ignored.contains(&k.as_str());
                let mine: BTreeSet<&String> = o.keys().filter(|k| !skip(k)).collect();
                let theirs: BTreeSet<&String> = t.keys().filter(|k| !skip(k)).collect();
                for extra in mine.difference(&theirs) {
                    wrong.push(format!("{at}/{extra}: not in the example"));
                }
                // GitHub leaves out a commit author's `username` when the email is no
                // account's (octokit's example of a committer without one).
                for missing in theirs.difference(&mine).filter(|k| k.as_str() != "username") {
                    wrong.push(format!("{at}/{missing}: missing"));
                }
                for key in mine.intersection(&theirs) {
                    walk(&o[*key], &t[*key], &format!("{at}/{key}"), ignored, wrong);
                }
            }
            (Value::Array(o), Value::Array(t)) => {
                if let Some(first) = t.first() {
                    for (i, item) in o.iter().enumerate() {
                        walk(item, first, &format!("{at}/{i}"), ignored, wrong);
                    }
                }
            }
            (Value::Bool(_), Value::Bool(_)) | (Value::Number(_), Value::Number(_)) => {}
            (Value::String(_), Value::String(_)) => {}
            _ => wrong.push(format!("{at}: {ours} where the example has {theirs}")),
        }
    }
    let mut wrong = Vec::new();
    walk(ours, theirs, "", ignored, &mut wrong);
    assert!(wrong.is_empty(), "not shaped like the example:\n{}\n--- ours\n{ours:#}", wrong.join("\n"));
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

/// GitHub's own payload for a change like this one: octokit's examples of a created branch
/// (every field GitHub sends today), a created tag and a deleted tag. An update or a force
/// is shaped like the created branch: octokit has no example of either (tests/data).
fn github_example(payload: &Value) -> Value {
    let tag = payload["ref"].as_str().unwrap().starts_with("refs/tags/");
    match (payload["created"].as_bool(), payload["deleted"].as_bool(), tag) {
        (_, Some(true), _) => example("github/octokit-2-tag-deleted.json"),
        (Some(true), _, true) => example("github/octokit-0-tag-created.json"),
        _ => example("github/octokit-4-branch-created-installation.json"),
    }
}

/// SPEC §6's `github` format, field by field, for one delivery: GitHub's headers and both
/// signatures, the shape of GitHub's own payload for that kind of change, the schema, the
/// repository's names and URLs, commits' messages and URLs, the pusher.
#[track_caller]
fn assert_github(request: &Request, secret: Option<&str>, total_commits: usize) -> Value {
    assert_common_headers(request, secret);
    assert_eq!(request.header("X-GitHub-Event"), "push");
    assert_eq!(request.header("X-GitHub-Delivery"), request.delivery());
    assert_eq!(request.header("X-Pushgate-Total-Commits"), total_commits.to_string());
    match secret {
        Some(secret) => {
            assert_eq!(request.header("X-Hub-Signature"), github_sha1_signature(secret.as_bytes(), &request.body));
        }
        None => assert_eq!(request.try_header("X-Hub-Signature"), None),
    }
    let payload = request.json();
    assert_valid(&github_schema(), &payload);
    let github = github_example(&payload);
    // An app's `installation` and an organization's `organization` are not push fields;
    // the repository and the sender are those of GitHub's newest example (octokit's older
    // ones lack fields GitHub added since).
    assert_shaped_like(&payload, &github, &["installation", "organization", "repository", "sender"]);
    let newest = example("github/octokit-4-branch-created-installation.json");
    assert_shaped_like(&payload["repository"], &newest["repository"], &[]);
    assert_shaped_like(&payload["sender"], &newest["sender"], &[]);
    let mut top = keys(&github);
    top.remove("installation");
    top.remove("organization");
    assert_eq!(keys(&payload), top, "the fields of GitHub's payload, no more, no fewer");
    for commit in
        payload["commits"].as_array().unwrap().iter().chain(Some(&payload["head_commit"]).filter(|c| !c.is_null()))
    {
        let message = commit["message"].as_str().unwrap();
        assert!(!message.ends_with('\n'), "git's trailing newline is not sent: {message:?}");
        assert_eq!(commit["url"], format!("{WEB}/commit/{}", commit["id"].as_str().unwrap()));
        assert!(keys(&commit["author"]).is_subset(&["name", "email", "username"].map(String::from).into()));
    }
    let repository = &payload["repository"];
    assert_eq!(repository["full_name"], "server/server", "owner/name: a top-level repository owns itself");
    assert_eq!((repository["name"].as_str(), repository["owner"]["login"].as_str()), (Some("server"), Some("server")));
    assert_eq!(repository["url"], WEB, "the web URL, as in GitHub's push events");
    assert_eq!(repository["html_url"], WEB);
    assert_eq!(repository["clone_url"], format!("{WEB}.git"));
    assert_eq!(repository["default_branch"], "main");
    assert_eq!(payload["pusher"], json!({"name": "alice", "email": "Alice@Example.org"}), "the first of her emails");
    assert_eq!(payload["sender"]["login"], "alice");
    payload
}

/// SPEC §6's `gitlab` format for one delivery: GitLab's headers as its recorded delivery
/// has them, the secret token, and the fields of the Push Hook or Tag Push Hook, shaped
/// like that recorded delivery (GitLab 17.1) at every depth.
#[track_caller]
fn assert_gitlab(request: &Request) -> Value {
    assert_common_headers(request, Some(GITLAB_TOKEN));
    let payload = request.json();
    let hook = if payload["ref"].as_str().unwrap().starts_with("refs/tags/") { "Tag Push Hook" } else { "Push Hook" };
    for name in keys(&example("gitlab/push_api_hook_event.headers.json")) {
        assert!(request.try_header(&name).is_some(), "GitLab's {name} header is missing");
    }
    assert_eq!(request.header("X-Gitlab-Event"), hook);
    assert_eq!(request.header("X-Gitlab-Token"), GITLAB_TOKEN, "the secret itself, as GitLab sends it");
    assert_eq!(request.header("X-Gitlab-Instance"), BASE_URL);
    assert_eq!(request.header("Idempotency-Key"), request.delivery());
    for uuid in ["X-Gitlab-Event-UUID", "X-Gitlab-Webhook-UUID"] {
        assert_eq!(request.header(uuid).len(), 36, "{uuid} is a UUID");
    }
    let kind = if hook == "Push Hook" { "push" } else { "tag_push" };
    assert_eq!((payload["object_kind"].as_str(), payload["event_name"].as_str()), (Some(kind), Some(kind)));
    let gitlab = example("gitlab/push_api_hook_event.json");
    assert_shaped_like(&payload, &gitlab, &[]);
    assert_eq!(keys(&payload), keys(&gitlab), "the fields of GitLab's recorded delivery");
    let commits = payload["commits"].as_array().unwrap();
    assert!(commits.len() <= 20);
    for commit in commits {
        assert_eq!(commit["url"], format!("{WEB}/-/commit/{}", commit["id"].as_str().unwrap()));
        let message = commit["message"].as_str().unwrap();
        assert!(message.ends_with('\n'), "GitLab sends the whole message: {message:?}");
        assert_eq!(commit["title"].as_str(), message.lines().next());
    }
    let project = &payload["project"];
    assert_eq!(project["web_url"], WEB);
    assert_eq!(project["git_http_url"], format!("{WEB}.git"));
    assert_eq!(project["git_ssh_url"], "git@git.example.org:server.git");
    assert_eq!(
        (project["path_with_namespace"].as_str(), project["namespace"].as_str()),
        (Some("server/server"), Some("server"))
    );
    assert_eq!(project["default_branch"], "main");
    assert_eq!(payload["project_id"], project["id"]);
    assert_eq!(payload["repository"]["homepage"], WEB);
    assert_eq!(
        (payload["user_username"].as_str(), payload["user_email"].as_str()),
        (Some("alice"), Some("Alice@Example.org"))
    );
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

fn distinct(commits: &Value) -> BTreeMap<String, bool> {
    commits
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["id"].as_str().unwrap().to_string(), c["distinct"].as_bool().unwrap()))
        .collect()
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

/// Every delivery of the push set, kept for the receivers: file name and delivery.
#[derive(Default)]
struct Kept(Vec<(String, Value)>);

impl Kept {
    fn keep(&mut self, name: &str, delivered: &Delivered) {
        for (i, r) in delivered.github.iter().enumerate() {
            self.0.push((format!("{name}-github-{i}"), delivery_file(r, GITHUB_SECRET, &GITHUB_RECEIVERS)));
        }
        self.0.push((format!("{name}-whsec"), delivery_file(&delivered.whsec, WHSEC_SECRET, &STANDARD_RECEIVERS)));
        self.0.push((format!("{name}-plain"), delivery_file(&delivered.plain, PLAIN_SECRET, &STANDARD_RECEIVERS)));
        for (i, r) in delivered.gitlab.iter().enumerate() {
            // pydantic-gitlab-webhooks types `checkout_sha` as a string, so it refuses
            // GitLab's own deletes (null): they go to the other receivers only.
            let receivers: Vec<&str> = match r.json()["checkout_sha"].is_null() {
                true => GITLAB_RECEIVERS.into_iter().filter(|n| *n != "py-pydantic-gitlab-webhooks").collect(),
                false => GITLAB_RECEIVERS.to_vec(),
            };
            self.0.push((format!("{name}-gitlab-{i}"), delivery_file(r, GITLAB_TOKEN, &receivers)));
        }
    }
}

#[test]
fn every_kind_of_push_reaches_github_gitlab_and_standard_webhooks_receivers() {
    let to = Endpoints::new();
    let server = server(&to);
    let work = server.work();
    let mut kept = Kept::default();

    // 1. main created in the empty repository: every commit is new, and there is no other
    //    branch to compare with (octokit's created branch).
    let first = work.commit(&[("README.md", "# app\n")]);
    let second = work.commit(&[("src/main.rs", "fn main() {}\n")]);
    let created = push(&server, &to, &["origin", "HEAD:refs/heads/main"], 1, 0);
    let github = assert_github(&created.github[0], Some(GITHUB_SECRET), 2);
    assert_eq!((github["created"].as_bool(), github["before"].as_str()), (Some(true), Some(ZERO)));
    assert_eq!((github["deleted"].as_bool(), github["forced"].as_bool()), (Some(false), Some(false)));
    assert_eq!(github["compare"], format!("{WEB}/commit/{second}"), "no other branch: the commit, 40 digits");
    assert_eq!(ids(&github["commits"]), [first.clone(), second.clone()], "oldest first");
    assert!(github["commits"].as_array().unwrap().iter().all(|c| c["distinct"] == true));
    assert_eq!(github["commits"][1]["message"], "Change src/main.rs");
    assert_eq!(github["commits"][1]["added"], json!(["src/main.rs"]));
    assert_eq!(github["head_commit"], github["commits"][1], "the tip, as listed");
    assert_eq!(github["base_ref"], Value::Null, "a branch has none");
    let repository_id = github["repository"]["id"].clone();
    let gitlab = assert_gitlab(&created.gitlab[0]);
    assert_eq!((gitlab["checkout_sha"].as_str(), gitlab["message"].clone()), (Some(second.as_str()), Value::Null));
    assert_eq!((gitlab["before"].as_str(), gitlab["after"].as_str()), (Some(ZERO), Some(second.as_str())));
    assert_eq!(ids(&gitlab["commits"]), [first.clone(), second.clone()]);
    assert_eq!(gitlab["commits"][1]["message"], "Change src/main.rs\n");
    assert_eq!(gitlab["total_commits_count"], 2);
    let event = assert_pushgate(&created.whsec, WHSEC_SECRET);
    assert_eq!(event["changes"][0]["base_ref"], Value::Null);
    assert_pushgate(&created.plain, PLAIN_SECRET);
    kept.keep("1-create", &created);

    // 2. A topic branch with a commit of its own, whose message has a body: GitHub sends it
    //    whole but for git's last newline.
    work.branch("topic", &second);
    work.commit(&[("topic.txt", "topic\n")]);
    let by_alice = ["commit", "--quiet", "--amend", "--author", "Alice <alice@ELSEWHERE.example>", "-m"];
    work.git(&by_alice).arg("Add a topic\n\nWith a body.\n").ok();
    let topical = work.head();
    let topic = push(&server, &to, &["origin", "HEAD:refs/heads/topic"], 1, 0);
    let github = assert_github(&topic.github[0], Some(GITHUB_SECRET), 1);
    assert_eq!(github["compare"], format!("{WEB}/compare/main...{}", short(&topical)), "against the default branch");
    assert_eq!(ids(&github["commits"]), [topical.as_str()]);
    assert_eq!(github["commits"][0]["message"], "Add a topic\n\nWith a body.");
    let author = &github["commits"][0]["author"];
    assert_eq!(author["username"], "alice", "one of her emails, whatever its case");
    assert_eq!(github["commits"][0]["committer"].get("username"), None, "an email of no user's");
    assert_eq!(github["repository"]["id"], repository_id, "ids are stable");
    let gitlab = assert_gitlab(&topic.gitlab[0]);
    assert_eq!(
        (gitlab["commits"][0]["message"].as_str(), gitlab["commits"][0]["title"].as_str()),
        (Some("Add a topic\n\nWith a body.\n"), Some("Add a topic"))
    );
    kept.keep("2-topic", &topic);

    // 3. main merges topic: the topic's commit, which topic already had (listed, not
    //    distinct, as GitHub does), a commit of main's own and the merge.
    work.checkout("main");
    work.commit(&[("README.md", "# app\n\nmerged\n")]);
    let before_merge = work.head();
    work.git(&["merge", "--quiet", "--no-edit", "topic"]).ok();
    let merge = work.head();
    let merged = push(&server, &to, &["origin", "HEAD:refs/heads/main"], 1, 0);
    let github = assert_github(&merged.github[0], Some(GITHUB_SECRET), 3);
    assert_eq!((github["created"].as_bool(), github["forced"].as_bool()), (Some(false), Some(false)));
    assert_eq!((github["before"].as_str(), github["after"].as_str()), (Some(second.as_str()), Some(merge.as_str())));
    assert_eq!(github["compare"], format!("{WEB}/compare/{}...{}", short(&second), short(&merge)));
    assert_eq!(
        distinct(&github["commits"]),
        BTreeMap::from([(topical.clone(), false), (before_merge.clone(), true), (merge.clone(), true)]),
        "the commit topic had is listed, not distinct"
    );
    assert_eq!(ids(&github["commits"]).last(), Some(&merge), "oldest first: the merge last");
    assert_eq!(github["head_commit"]["id"], merge.as_str());
    assert_eq!(github["head_commit"]["message"], "Merge branch 'topic'");
    let gitlab = assert_gitlab(&merged.gitlab[0]);
    assert_eq!(gitlab["total_commits_count"], 3);
    assert_eq!(ids(&gitlab["commits"]).last(), Some(&merge));
    let event = assert_pushgate(&merged.whsec, WHSEC_SECRET);
    assert_eq!(distinct(&event["changes"][0]["commits"]), distinct(&github["commits"]), "the same in every format");
    kept.keep("3-merge", &merged);

    // 4. main rewritten: a force, told to `forces` too.
    work.git(&["reset", "--quiet", "--hard", &second]).ok();
    let rewritten = work.commit(&[("README.md", "# app, rewritten\n")]);
    let forced = push(&server, &to, &["origin", "+HEAD:refs/heads/main"], 1, 1);
    let github = assert_github(&forced.github[0], Some(GITHUB_SECRET), 1);
    assert_eq!((github["forced"].as_bool(), github["created"].as_bool()), (Some(true), Some(false)));
    assert_eq!(github["compare"], format!("{WEB}/compare/{}...{}", short(&merge), short(&rewritten)));
    assert_eq!(ids(&github["commits"]), [rewritten.as_str()]);
    assert_eq!(github["commits"][0]["modified"], json!(["README.md"]));
    let told = assert_github(&forced.forces[0], None, 1);
    assert_eq!(told["forced"], true);
    let gitlab = assert_gitlab(&forced.gitlab[0]);
    assert_eq!(
        (gitlab["before"].as_str(), gitlab["checkout_sha"].as_str()),
        (Some(merge.as_str()), Some(rewritten.as_str()))
    );
    kept.keep("4-force", &forced);

    // 5. An annotated tag at main's tip (octokit's created tag): nothing new, the tagged
    //    commit as head_commit, main as its base_ref; GitLab's tag message and checkout_sha
    //    (the commit, not the tag), listing the tagged commit as GitLab does.
    work.git(&["tag", "-a", "v1", "-m", "release 1"]).ok();
    let tag_object = work.rev("refs/tags/v1");
    let annotated = push(&server, &to, &["origin", "refs/tags/v1"], 1, 0);
    let github = assert_github(&annotated.github[0], Some(GITHUB_SECRET), 0);
    assert_eq!((github["after"].as_str(), github["created"].as_bool()), (Some(tag_object.as_str()), Some(true)));
    assert_eq!(github["base_ref"], "refs/heads/main");
    assert_eq!(github["commits"], json!([]), "nothing new");
    assert_eq!(github["head_commit"]["id"], rewritten.as_str(), "the tagged commit");
    assert_eq!(github["compare"], format!("{WEB}/compare/main...{}", short(&rewritten)), "by the tagged commit");
    let gitlab = assert_gitlab(&annotated.gitlab[0]);
    assert_eq!(gitlab["after"], tag_object.as_str());
    assert_eq!(gitlab["checkout_sha"], rewritten.as_str());
    assert_eq!(gitlab["message"], "release 1\n");
    assert_eq!((ids(&gitlab["commits"]), gitlab["total_commits_count"].as_u64()), (vec![rewritten.clone()], Some(1)));
    let event = assert_pushgate(&annotated.whsec, WHSEC_SECRET);
    assert_eq!(event["changes"][0]["base_ref"], "refs/heads/main");
    assert_eq!(event["changes"][0]["tag_message"], "release 1\n");
    kept.keep("5-annotated", &annotated);

    // 6. main moves on and a lightweight tag marks its new tip in the same push: the tag's
    //    base_ref is main as the push left it.
    let next = work.commit(&[("NEWS", "v2\n")]);
    let moved = push(&server, &to, &["origin", "HEAD:refs/heads/main", "HEAD:refs/tags/v2"], 2, 0);
    // Both bring `next`: a created ref brings what the default branch did not have before
    // the push (SPEC §4), and no ref had it, so it is distinct in both.
    let [main, v2] = [0, 1].map(|i| assert_github(&moved.github[i], Some(GITHUB_SECRET), 1));
    assert_eq!((main["ref"].as_str(), v2["ref"].as_str()), (Some("refs/heads/main"), Some("refs/tags/v2")));
    assert_eq!((main["created"].as_bool(), main["base_ref"].clone()), (Some(false), Value::Null));
    assert_eq!(distinct(&main["commits"]), BTreeMap::from([(next.clone(), true)]));
    assert_eq!((v2["base_ref"].as_str(), v2["after"].as_str()), (Some("refs/heads/main"), Some(next.as_str())));
    assert_eq!(distinct(&v2["commits"]), distinct(&main["commits"]));
    assert_eq!(v2["head_commit"]["id"], next.as_str());
    let [_, v2] = [0, 1].map(|i| assert_gitlab(&moved.gitlab[i]));
    assert_eq!((v2["checkout_sha"].as_str(), v2["message"].clone()), (Some(next.as_str()), Value::Null));
    kept.keep("6-move-and-tag", &moved);

    // 7. A lightweight tag at a commit no branch tip is, and a branch created at commits
    //    main has (it brings none).
    let pushed = push(&server, &to, &["origin", &format!("{first}:refs/tags/light"), "HEAD:refs/heads/copy"], 2, 0);
    let [copy, light] = [0, 1].map(|i| assert_github(&pushed.github[i], Some(GITHUB_SECRET), 0));
    assert_eq!((copy["ref"].as_str(), light["ref"].as_str()), (Some("refs/heads/copy"), Some("refs/tags/light")));
    assert_eq!(light["base_ref"], Value::Null, "no branch's tip");
    assert_eq!(light["compare"], format!("{WEB}/compare/main...{}", short(&first)));
    assert_eq!((copy["created"].as_bool(), copy["commits"].clone()), (Some(true), json!([])));
    assert_eq!(copy["head_commit"]["id"], next.as_str());
    assert_eq!(copy["head_commit"]["distinct"], false, "main had it");
    let [copy, light] = [0, 1].map(|i| assert_gitlab(&pushed.gitlab[i]));
    assert_eq!((copy["total_commits_count"].as_u64(), light["message"].clone()), (Some(0), Value::Null));
    assert_eq!(light["checkout_sha"], first.as_str());
    kept.keep("7-light-and-copy", &pushed);

    // 8. Deletes: tags and branches (octokit's deleted tag); `forces` is told of each.
    let deleted = push(
        &server,
        &to,
        &["origin", ":refs/tags/light", ":refs/tags/v1", ":refs/heads/copy", ":refs/heads/topic"],
        4,
        4,
    );
    for request in &deleted.github {
        let github = assert_github(request, Some(GITHUB_SECRET), 0);
        assert_eq!((github["deleted"].as_bool(), github["after"].as_str()), (Some(true), Some(ZERO)));
        assert_eq!((github["head_commit"].clone(), github["commits"].clone()), (Value::Null, json!([])));
        let before = github["before"].as_str().unwrap();
        assert_eq!(github["compare"], format!("{WEB}/compare/{}...000000000000", short(before)));
    }
    assert_eq!(deleted.github[3].json()["before"], tag_object.as_str(), "the tag object it held");
    for request in &deleted.gitlab {
        let gitlab = assert_gitlab(request);
        assert_eq!((gitlab["checkout_sha"].clone(), gitlab["total_commits_count"].as_u64()), (Value::Null, Some(0)));
        assert_eq!((gitlab["after"].as_str(), gitlab["commits"].clone()), (Some(ZERO), json!([])));
    }
    let told: Vec<Value> = deleted.forces.iter().map(|r| assert_github(r, None, 0)).collect();
    assert!(told.iter().all(|p| p["deleted"] == true));
    kept.keep("8-delete", &deleted);

    // GitLab's ids: one event's deliveries share X-Gitlab-Event-UUID, a webhook keeps its
    // X-Gitlab-Webhook-UUID.
    let uuids = |name: &str| deleted.gitlab.iter().map(|r| r.header(name).to_string()).collect::<BTreeSet<_>>();
    assert_eq!(uuids("X-Gitlab-Event-UUID").len(), 1);
    assert_eq!(uuids("X-Gitlab-Webhook-UUID"), [created.gitlab[0].header("X-Gitlab-Webhook-UUID").to_string()].into());

    server.sandbox.wait_for_detached_deliverers();
    for receiver in to.all() {
        receiver.assert_no_more();
    }
    run_receivers(&kept.0);
}

/// Install the pinned receiver libraries (once per set of pins) and run
/// `tests/receivers/run.sh` on the deliveries: every delivery must be accepted by every
/// receiver it names. Skipped, saying why, only when a registry cannot be reached.
fn run_receivers(files: &[(String, Value)]) {
    let here = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/receivers");
    let deps = std::env::var_os("PUSHGATE_RECEIVERS")
        .map_or_else(|| Path::new(env!("CARGO_TARGET_TMPDIR")).join("receivers"), PathBuf::from);
    let install = std::process::Command::new("bash").arg(here.join("install.sh")).arg(&deps).output().unwrap();
    let said = String::from_utf8_lossy(&install.stderr);
    match install.status.code() {
        Some(0) => {}
        Some(3) => {
            eprintln!("SKIPPED: the real receivers (a registry is unreachable): {}", said.trim());
            return;
        }
        _ => panic!("tests/receivers/install.sh {} failed:\n{said}", deps.display()),
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
