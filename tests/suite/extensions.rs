//! Extensions as their authors and pushers see them: `check` points at mistakes in
//! `[[extension]]`; a `post` endpoint receives the event with pushgate's, Standard Webhooks'
//! and GitHub's headers and signatures; the `github` format sends one GitHub push payload
//! per ref; `pre` scripts and endpoints veto pushes, with their words shown to the pusher,
//! under timeouts, `on_error`, `mode` and `enabled`; hostile commit messages and file names
//! arrive as valid JSON.

use crate::harness::{
    ALLOW_ALL, Answer, Receiver, Request, Run, TestServer, VERSION, ZERO, assert_valid, event_schema, github_schema,
    github_sha1_signature, github_signature, post_http, quoted, refused_url, spool_table, standard_signature, unix_now,
    updates,
};
use std::time::{Duration, Instant};

const RETRY: [&str; 3] = ["50ms", "50ms", "50ms"];

/// A server that lets everyone push anything, with `top` (top-level keys) and `tables`
/// (extensions) in its configuration, its spool in its temp dir.
fn server_with(top: &str, tables: &str) -> TestServer {
    let server = TestServer::new();
    let config = format!("{top}\n{}{ALLOW_ALL}{tables}", spool_table(&server, &RETRY));
    server.config(&config).install(&[])
}

/// A `pre` script extension running `script` with `/bin/sh -c`, `args` as `$1`, `$2`...
fn pre_script(name: &str, script: &str, args: &[&str], extra: &str) -> String {
    let argv: Vec<String> = ["/bin/sh", "-c", script, "sh"].iter().chain(args).map(quoted).collect();
    format!(
        "\n[[extension]]\nname = {}\ntype = \"script\"\nphase = \"pre\"\ncommand = [{}]\n{extra}\n",
        quoted(name),
        argv.join(", ")
    )
}

/// A `pre` HTTP extension.
fn pre_http(name: &str, url: &str, extra: &str) -> String {
    format!(
        "\n[[extension]]\nname = {}\ntype = \"http\"\nphase = \"pre\"\nurl = {}\n{extra}\n",
        quoted(name),
        quoted(url)
    )
}

/// `git push <args>` as `user` with extra environment (secrets, crash points).
fn push_with(server: &TestServer, user: &str, env: &[(&str, &str)], args: &[&str]) -> Run {
    let mut push = server.work().push(args).env("PUSHGATE_USER", user);
    for (key, value) in env {
        push = push.env(key, value);
    }
    push.run()
}

/// Write `path` in the work tree (creating directories).
fn write(server: &TestServer, path: &str, contents: &str) {
    let path = server.work().dir.join(path);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, contents).unwrap();
}

// ---------------------------------------------------------------------------------------
// pushgate check
// ---------------------------------------------------------------------------------------

/// `pushgate check`'s error lines, with the configuration's path shown as `CONFIG`.
fn check_errors(text: &str) -> Vec<String> {
    let server = TestServer::new().config(text);
    let run = server.pushgate(&["check"]).run();
    run.assert_code(2).assert_no_panic();
    let config = server.config_path().display().to_string();
    let lines: Vec<String> = run.stderr_lines().iter().map(|l| l.replace(&config, "CONFIG")).collect();
    let (summary, errors) = lines.split_last().unwrap();
    assert_eq!(summary, &format!("pushgate: configuration has {} error(s)", errors.len()), "{run}");
    errors.to_vec()
}

#[test]
fn check_points_at_every_mistake_in_extensions() {
    let errors = check_errors(
        r#"[[extension]]
name = "ci"
type = "http"
phase = "post"
url = "http://127.0.0.1:9/hook"

[[extension]]
name = "ci"
type = "script"
phase = "pre"
command = ["/bin/true"]

[[extension]]
name = "chat"
type = "http"
phase = "post"

[[extension]]
name = "lint"
type = "script"
phase = "pre"

[[extension]]
name = "audit"
type = "script"
phase = "later"
command = ["/bin/true"]

[[extension]]
name = "notify"
type = "http"
phase = "post"
url = "http://127.0.0.1:9/notify"
on_error = "allow"
"#,
    );

    assert_eq!(
        errors,
        [
            "CONFIG:8:8: extension name \"ci\" is already used at CONFIG:1",
            "CONFIG:13:1: an http extension needs `url`",
            "CONFIG:18:1: a script extension needs `command` (an argv list, run without a shell)",
            "CONFIG:26:9: phase \"later\" must be \"pre\", \"post\" or \"periodic\"",
            "CONFIG:34:12: `on_error` applies to pre extensions only (post failures are retried)",
        ]
    );
}

#[test]
fn check_accepts_valid_extensions_and_counts_them() {
    let server = TestServer::new().config(&format!(
        "{ALLOW_ALL}{}{}",
        post_http("ci", "http://127.0.0.1:9/hook", "format = \"github\"\nsecret_env = \"CI_SECRET\""),
        pre_script("lint", "exit 0", &[], "on_error = \"allow\"\ntimeout = \"2s\"")
    ));

    let run = server.pushgate(&["check"]).env("CI_SECRET", "s3cret").run();

    run.assert_code(0);
    assert_eq!(run.stdout, format!("pushgate: {} is valid (1 rules, 2 extensions)\n", server.config_path().display()));
    assert_eq!(run.stderr, "", "{run}");
}

#[test]
fn check_warns_of_a_secret_it_cannot_find_and_still_calls_the_file_valid() {
    let server = TestServer::new();
    let missing = server.root().join("no-such.secret");
    let server = server.config(&format!(
        "{ALLOW_ALL}{}{}",
        post_http("ci", "http://127.0.0.1:9/hook", "secret_env = \"CI_SECRET\""),
        post_http("chat", "http://127.0.0.1:9/chat", &format!("secret_file = {}", quoted(&missing)))
    ));

    let run = server.pushgate(&["check"]).run();

    run.assert_code(0).assert_no_panic();
    assert_eq!(run.stdout, format!("pushgate: {} is valid (1 rules, 2 extensions)\n", server.config_path().display()));
    assert_eq!(
        run.stderr_lines(),
        [
            "pushgate: warning: extension ci: secret_env CI_SECRET is not set here: the hooks and `pushgate deliver` \
             need it in their environment (a secret_file readable by the hooks' user is simpler for a service)"
                .to_string(),
            format!(
                "pushgate: warning: extension chat: cannot read secret_file {}: entity not found as this user: the \
                 hooks and `pushgate deliver` must be able to read it",
                missing.display()
            ),
        ],
        "{run}"
    );
    let json = server.pushgate(&["check", "--json"]).ok();
    let json: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!((json["ok"].as_bool(), json["warnings"].as_array().map(Vec::len)), (Some(true), Some(2)), "{json}");
    // An empty variable is no secret either.
    let empty = server.pushgate(&["check"]).env("CI_SECRET", "").run();
    assert!(empty.stderr.contains("secret_env CI_SECRET is not set"), "{empty}");
}

#[test]
fn check_reports_a_duplicate_name_even_when_the_first_use_is_invalid() {
    let errors = check_errors(
        r#"[[extension]]
name = "ci"
type = "http"
phase = "post"

[[extension]]
name = "ci"
type = "script"
phase = "post"
command = ["/bin/true"]
"#,
    );

    assert_eq!(
        errors,
        ["CONFIG:1:1: an http extension needs `url`", "CONFIG:7:8: extension name \"ci\" is already used at CONFIG:1",]
    );
}

// ---------------------------------------------------------------------------------------
// post: what an endpoint receives
// ---------------------------------------------------------------------------------------

/// Every header pushgate promises, and both signatures recomputed with `secret`.
#[track_caller]
fn assert_signed_delivery(request: &Request, secret: &str, sent_after: u64) {
    assert_eq!(request.method, "POST");
    assert_eq!(request.path, "/hook");
    assert_eq!(request.header("Content-Type"), "application/json");
    assert_eq!(request.header("User-Agent"), format!("pushgate/{VERSION}"));
    assert_eq!(request.header("X-Pushgate-Event"), "push");
    let delivery = request.header("X-Pushgate-Delivery");
    assert!(!delivery.is_empty());
    assert_eq!(request.header("webhook-id"), delivery);
    let timestamp = request.header("webhook-timestamp");
    let seconds: u64 = timestamp.parse().unwrap_or_else(|_| panic!("webhook-timestamp {timestamp:?} is not a number"));
    assert!((sent_after..=unix_now()).contains(&seconds), "webhook-timestamp {seconds} is not the attempt's time");
    assert_eq!(request.header("X-Hub-Signature-256"), github_signature(secret.as_bytes(), &request.body));
    assert_eq!(request.header("webhook-signature"), standard_signature(secret, delivery, timestamp, &request.body));
}

#[test]
fn signature_helpers_match_the_published_examples() {
    // GitHub's "Validating webhook deliveries" and the Standard Webhooks test vector: the
    // tests' own signatures are right before they judge pushgate's.
    assert_eq!(
        github_signature(b"It's a Secret to Everybody", b"Hello, World!"),
        "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
    );
    // RFC 2202's second HMAC-SHA1 test case.
    assert_eq!(
        github_sha1_signature(b"Jefe", b"what do ya want for nothing?"),
        "sha1=effcdf6ae5eb2fa2d27416d5f184df9c259a7c79"
    );
    assert_eq!(
        standard_signature(
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            "1614265330",
            br#"{"test": 2432232314}"#
        ),
        "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
    );
}

#[test]
fn a_post_endpoint_receives_the_event_signed_with_a_whsec_secret() {
    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    let receiver = Receiver::ok();
    let server = server_with("max_commits = 2", &post_http("ci", &receiver.url("/hook"), "secret_env = \"CI_SECRET\""));
    let work = server.work();
    let env = [("CI_SECRET", SECRET)];

    // Push 1 creates main with two commits: files added, then one modified and one removed.
    let first = work.commit(&[("a.txt", "a\n"), ("b.txt", "b\n")]);
    write(&server, "a.txt", "a2\n");
    work.git(&["rm", "--quiet", "b.txt"]).ok();
    let second = work.commit(&[("a.txt", "a2\n")]);
    let started = unix_now();
    push_with(&server, "alice", &env, &["-o", "ci.skip", "-o", "x=y", "origin", "HEAD:refs/heads/main"])
        .assert_accepted();
    let one = receiver.next();

    // Push 2 brings three commits: past max_commits = 2.
    let more: Vec<String> = (3..=5).map(|i| work.commit(&[(&format!("f{i}.txt"), "x\n")])).collect();
    push_with(&server, "alice", &env, &["origin", "HEAD:refs/heads/main"]).assert_accepted();
    let two = receiver.next();

    let schema = event_schema();
    for request in [&one, &two] {
        assert_signed_delivery(request, SECRET, started);
        assert_valid(&schema, &request.json());
    }
    assert_ne!(one.delivery(), two.delivery());

    let event = one.json();
    assert_eq!(event["schema"], "pushgate.push/1");
    assert_eq!(event["phase"], "post");
    assert_eq!(event["sequence"], 1);
    assert_eq!(event["repository"]["name"], "server");
    assert_eq!(event["user"]["name"], "alice");
    assert_eq!(event["user"]["via"], "local");
    assert_eq!(event["push_options"], serde_json::json!(["ci.skip", "x=y"]));
    let change = &event["changes"][0];
    assert_eq!(event["changes"].as_array().unwrap().len(), 1);
    assert_eq!((change["ref"].as_str(), change["action"].as_str()), (Some("refs/heads/main"), Some("create")));
    assert_eq!((change["before"].as_str(), change["after"].as_str()), (Some(ZERO), Some(second.as_str())));
    let commits = change["commits"].as_array().unwrap();
    let ids: Vec<&str> = commits.iter().map(|c| c["id"].as_str().unwrap()).collect();
    assert_eq!(ids, [first.as_str(), second.as_str()], "oldest first");
    assert_eq!(commits[0]["added"], serde_json::json!(["a.txt", "b.txt"]));
    assert_eq!((&commits[0]["modified"], &commits[0]["removed"]), (&serde_json::json!([]), &serde_json::json!([])));
    assert_eq!(commits[1]["added"], serde_json::json!([]));
    assert_eq!(commits[1]["modified"], serde_json::json!(["a.txt"]));
    assert_eq!(commits[1]["removed"], serde_json::json!(["b.txt"]));
    assert_eq!(change["commits_truncated"], false);

    let event = two.json();
    assert_eq!(event["sequence"], 2);
    assert_eq!(event["push_options"], serde_json::json!([]));
    let change = &event["changes"][0];
    assert_eq!(change["action"], "update");
    assert_eq!((change["before"].as_str(), change["after"].as_str()), (Some(second.as_str()), Some(more[2].as_str())));
    let ids: Vec<&str> = change["commits"].as_array().unwrap().iter().map(|c| c["id"].as_str().unwrap()).collect();
    assert_eq!(ids, [more[0].as_str(), more[1].as_str()], "the oldest max_commits commits");
    assert_eq!(change["commits_truncated"], true);
    assert_eq!(change["total_commits"], 3);
    assert_eq!(change["head_commit"]["id"], more[2].as_str());
    receiver.assert_no_more();
}

#[test]
fn a_plain_secret_is_the_signing_key_itself() {
    const SECRET: &str = "plain shared secret, not whsec";
    let receiver = Receiver::ok();
    let server = server_with("", &post_http("ci", &receiver.url("/hook"), "secret_env = \"CI_SECRET\""));
    server.work().commit(&[("README.md", "# app\n")]);
    let started = unix_now();

    push_with(&server, "alice", &[("CI_SECRET", SECRET)], &["origin", "HEAD:refs/heads/main"]).assert_accepted();

    let request = receiver.next();
    assert_signed_delivery(&request, SECRET, started);
    assert_valid(&event_schema(), &request.json());
}

#[test]
fn without_a_secret_nothing_is_signed() {
    let receiver = Receiver::ok();
    let server = server_with("", &post_http("ci", &receiver.url("/hook"), "headers = { \"X-Team\" = \"web\" }"));
    server.work().commit(&[("README.md", "# app\n")]);

    server.push_as("alice", &["origin", "HEAD:refs/heads/main"]).assert_accepted();

    let request = receiver.next();
    assert_eq!(request.try_header("X-Hub-Signature-256"), None);
    assert_eq!(request.try_header("webhook-signature"), None);
    assert_eq!(request.header("X-Team"), "web");
    assert_eq!(request.header("webhook-id"), request.header("X-Pushgate-Delivery"));
}

// ---------------------------------------------------------------------------------------
// post, format = "github"
// ---------------------------------------------------------------------------------------

#[test]
fn the_github_format_sends_one_push_payload_per_ref() {
    let receiver = Receiver::ok();
    let server = server_with(
        "[server]\nbase_url = \"https://git.example.org\"",
        &post_http("gh", &receiver.url("/hook"), "format = \"github\"\nsecret_env = \"GH_SECRET\""),
    );
    let work = server.work();
    let env = [("GH_SECRET", "It's a Secret to Everybody")];
    let schema = github_schema();
    let base = work.commit(&[("README.md", "# app\n")]);
    let side = work.commit(&[("side.txt", "1\n")]);
    push_with(&server, "alice", &env, &["origin", &format!("{base}:refs/heads/main"), "HEAD:refs/heads/forced"])
        .assert_accepted();
    push_with(&server, "alice", &env, &["origin", &format!("{base}:refs/heads/old")]).assert_accepted();
    let created = receiver.take(3);
    for request in &created {
        assert_valid(&schema, &request.json());
        assert_eq!(request.json()["created"], true);
    }

    // One push: main fast-forwards to `next`; copy is created at `next` too (its commit is
    // already listed under main: not distinct); old is deleted; forced is rewritten.
    work.branch("scratch", &base);
    let next = work.commit(&[("next.txt", "n\n")]);
    work.branch("rewrite", &base);
    let rewritten = work.commit(&[("side.txt", "2\n")]);
    push_with(
        &server,
        "alice",
        &env,
        &[
            "origin",
            &format!("{next}:refs/heads/main"),
            &format!("{next}:refs/heads/copy"),
            ":refs/heads/old",
            &format!("+{rewritten}:refs/heads/forced"),
        ],
    )
    .assert_accepted();

    let requests = receiver.take(4);
    let deliveries: std::collections::BTreeSet<String> = requests.iter().map(Request::delivery).collect();
    assert_eq!(deliveries.len(), 4, "one delivery id per ref");
    let mut order = Vec::new();
    for request in &requests {
        let payload = request.json();
        assert_valid(&schema, &payload);
        assert_eq!(request.header("X-GitHub-Event"), "push");
        assert_eq!(request.header("X-GitHub-Delivery"), request.delivery());
        assert_eq!(request.header("X-Hub-Signature-256"), github_signature(env[0].1.as_bytes(), &request.body));
        assert_eq!(payload["repository"]["full_name"], "server/server", "a top-level repository owns itself");
        assert_eq!(payload["pusher"]["name"], "alice");
        let flags = |p: &serde_json::Value| (p["created"].clone(), p["deleted"].clone(), p["forced"].clone());
        let name = payload["ref"].as_str().unwrap().to_string();
        let (before, after) = (payload["before"].as_str().unwrap(), payload["after"].as_str().unwrap());
        match name.as_str() {
            "refs/heads/main" => {
                assert_eq!(flags(&payload), (false.into(), false.into(), false.into()));
                assert_eq!((before, after), (base.as_str(), next.as_str()));
            }
            "refs/heads/copy" => {
                assert_eq!(flags(&payload), (true.into(), false.into(), false.into()));
                assert_eq!((before, after), (ZERO, next.as_str()));
            }
            "refs/heads/old" => {
                assert_eq!(flags(&payload), (false.into(), true.into(), false.into()));
                assert_eq!((before, after), (base.as_str(), ZERO));
                assert_eq!(payload["commits"], serde_json::json!([]));
                assert_eq!(payload["head_commit"], serde_json::Value::Null);
            }
            "refs/heads/forced" => {
                assert_eq!(flags(&payload), (false.into(), false.into(), true.into()));
                assert_eq!((before, after), (side.as_str(), rewritten.as_str()));
                assert_eq!(payload["commits"][0]["id"], rewritten.as_str());
                assert_eq!(payload["commits"][0]["distinct"], true);
            }
            other => panic!("unexpected ref {other}"),
        }
        order.push((name, payload["commits"].clone()));
    }
    // main and copy both list `next`, distinct in both: no ref had it before the push.
    let listing_next: Vec<bool> = order
        .iter()
        .filter(|(name, _)| name == "refs/heads/main" || name == "refs/heads/copy")
        .map(|(_, commits)| {
            assert_eq!(commits.as_array().unwrap().len(), 1);
            assert_eq!(commits[0]["id"], next.as_str());
            commits[0]["distinct"].as_bool().unwrap()
        })
        .collect();
    assert_eq!(listing_next, [true, true]);
    receiver.assert_no_more();
}

// ---------------------------------------------------------------------------------------
// actions: which changes an extension is told of
// ---------------------------------------------------------------------------------------

#[test]
fn an_extension_is_told_only_of_the_actions_it_names() {
    let all = Receiver::ok();
    let deletes = Receiver::ok();
    let server = server_with(
        "",
        &format!(
            "{}{}{}",
            post_http("all", &all.url("/all"), ""),
            post_http("deletes", &deletes.url("/deletes"), "actions = [\"delete\"]"),
            pre_script("no-forces", "echo 'history is not rewritten here'; exit 1", &[], "actions = [\"force\"]"),
        ),
    );
    let work = server.work();
    let base = work.commit(&[("README.md", "# app\n")]);
    let changes = |request: &Request| crate::harness::changes(&request.json());

    // Creates: the pre extension is not asked, `deletes` is not told.
    server.push_as("alice", &["origin", "HEAD:refs/heads/main", "HEAD:refs/heads/topic"]).assert_accepted();
    assert_eq!(changes(&all.next()).len(), 2);
    server.sandbox.wait_for_detached_deliverers();
    deletes.assert_no_more();

    // An update and a delete in one push: `deletes` hears of the delete alone.
    let next = work.commit(&[("NEWS", "1\n")]);
    server.push_as("alice", &["origin", "HEAD:refs/heads/main", ":refs/heads/topic"]).assert_accepted();
    assert_eq!(
        changes(&all.next()),
        [("refs/heads/main".into(), "update".into()), ("refs/heads/topic".into(), "delete".into())]
    );
    let told = deletes.next();
    assert_eq!(changes(&told), [("refs/heads/topic".to_string(), "delete".to_string())]);
    assert_valid(&event_schema(), &told.json());

    // A force: the pre extension that names `force` is asked, and vetoes.
    work.git(&["reset", "--quiet", "--hard", &base]).ok();
    work.commit(&[("README.md", "# app, rewritten\n")]);
    let pushed = server.push_as("alice", &["origin", "+HEAD:refs/heads/main"]);
    pushed.assert_rejected().assert_no_panic();
    assert_eq!(
        pushed.pushgate_lines(),
        ["pushgate: push rejected for alice", "pushgate: no-forces: history is not rewritten here"]
    );
    assert_eq!(server.ref_target("refs/heads/main").as_deref(), Some(next.as_str()));
    server.sandbox.wait_for_detached_deliverers();
    all.assert_no_more();
    deletes.assert_no_more();
}

// ---------------------------------------------------------------------------------------
// pre scripts
// ---------------------------------------------------------------------------------------

#[test]
fn a_pre_script_vetoes_with_its_output_shown_to_the_pusher() {
    let server = server_with("", &pre_script("lint", "echo 'line one'; echo 'line two' >&2; exit 1", &[], ""));
    server.work().commit(&[("README.md", "# app\n")]);

    let pushed = server.push_as("bob", &["origin", "HEAD:refs/heads/main"]);

    pushed.assert_rejected().assert_no_panic();
    assert_eq!(
        pushed.pushgate_lines(),
        ["pushgate: push rejected for bob", "pushgate: lint: line one", "pushgate: lint: line two"]
    );
    assert_eq!(server.ref_target("refs/heads/main"), None);
}

#[test]
fn a_pre_script_gets_the_event_the_variables_and_the_quarantined_objects() {
    const SCRIPT: &str = r#"
out=$1 new=$2
env > "$out/env"
pwd > "$out/pwd"
cat > "$out/event.json"
if git cat-file -e "$new"; then echo visible; else echo missing; fi > "$out/quarantined"
if env -u GIT_OBJECT_DIRECTORY -u GIT_ALTERNATE_OBJECT_DIRECTORIES -u GIT_QUARANTINE_PATH git cat-file -e "$new" 2>/dev/null
then echo visible; else echo missing; fi > "$out/outside"
"#;
    let server = TestServer::new();
    let out = server.root().join("out");
    std::fs::create_dir(&out).unwrap();
    let new = server.work().commit(&[("README.md", "# app\n")]);
    let config = format!(
        "{}{ALLOW_ALL}{}",
        spool_table(&server, &RETRY),
        pre_script("inspect", SCRIPT, &[&out.to_string_lossy(), &new], "")
    );
    let server = server.config(&config).install(&[]);

    server.push_as("bob", &["origin", "HEAD:refs/heads/main"]).assert_accepted();

    let read = |name: &str| std::fs::read_to_string(out.join(name)).unwrap();
    let env: std::collections::HashMap<String, String> =
        read("env").lines().filter_map(|l| l.split_once('=')).map(|(k, v)| (k.into(), v.into())).collect();
    let event: serde_json::Value = serde_json::from_str(&read("event.json")).unwrap();
    assert_valid(&event_schema(), &event);
    assert_eq!(event["phase"], "pre");
    assert_eq!(event.get("sequence"), None, "sequence is for post events");
    assert_eq!(event["changes"][0]["after"], new.as_str());
    assert_eq!(env["PUSHGATE_PHASE"], "pre");
    assert_eq!(env["PUSHGATE_USER"], "bob");
    assert_eq!(env["PUSHGATE_REPO"], "server");
    assert_eq!(env["PUSHGATE_EVENT_ID"], event["id"].as_str().unwrap());
    assert!(!env["PUSHGATE_DELIVERY_ID"].is_empty());
    assert_ne!(env["PUSHGATE_DELIVERY_ID"], env["PUSHGATE_EVENT_ID"]);
    let quarantine = std::path::Path::new(&env["GIT_QUARANTINE_PATH"]);
    assert!(quarantine.starts_with(server.repo.join("objects")), "GIT_QUARANTINE_PATH = {}", quarantine.display());
    assert_eq!(read("pwd").trim_end(), server.repo.to_string_lossy());
    assert_eq!(read("quarantined"), "visible\n", "the pushed commit is readable through the quarantine");
    assert_eq!(read("outside"), "missing\n", "and only through it: the push had not landed yet");
}

#[test]
fn a_pre_script_past_its_timeout_is_killed_with_its_children() {
    let server = TestServer::new();
    let pid_file = server.root().join("child.pid");
    let script = "sleep 30 & echo $! > \"$1\"; wait";
    let config = format!(
        "{}{ALLOW_ALL}{}",
        spool_table(&server, &RETRY),
        pre_script("slow", script, &[&pid_file.to_string_lossy()], "timeout = \"1s\"")
    );
    let server = server.config(&config).install(&[]);
    server.work().commit(&[("README.md", "# app\n")]);

    let started = Instant::now();
    let pushed = server
        .work()
        .push(&["origin", "HEAD:refs/heads/main"])
        .env("PUSHGATE_USER", "bob")
        .run_within(Duration::from_secs(20))
        .expect("the push finishes although the script's child sleeps for 30s");

    assert!(started.elapsed() < Duration::from_secs(5), "the push waited {:?}", started.elapsed());
    pushed.assert_rejected();
    assert_eq!(
        pushed.pushgate_lines(),
        ["pushgate: push rejected for bob", "pushgate: slow: failed: timed out after 1s"]
    );
    let child = std::fs::read_to_string(&pid_file).unwrap();
    let stat = std::fs::read_to_string(format!("/proc/{}/stat", child.trim())).unwrap_or_default();
    let state = stat.rsplit_once(") ").map(|(_, rest)| &rest[..1]);
    assert!(matches!(state, None | Some("Z")), "the script's child {} still runs: {stat}", child.trim());
}

#[test]
fn on_error_decides_what_an_exit_75_or_a_timeout_means() {
    let failing = |name: &str, branch: &str, script: &str, timeout: &str, on_error: &str| {
        pre_script(
            name,
            script,
            &[],
            &format!("refs = [\"refs/heads/{branch}\"]\ntimeout = \"{timeout}\"\non_error = \"{on_error}\""),
        )
    };
    let server = server_with(
        "",
        &[
            failing("busy-reject", "a", "exit 75", "10s", "reject"),
            failing("busy-allow", "b", "exit 75", "10s", "allow"),
            failing("slow-reject", "c", "sleep 30", "300ms", "reject"),
            failing("slow-allow", "d", "sleep 30", "300ms", "allow"),
        ]
        .concat(),
    );
    server.work().commit(&[("README.md", "# app\n")]);
    let push = |branch: &str| server.push_as("bob", &["origin", &format!("HEAD:refs/heads/{branch}")]);

    let pushed = push("a");
    pushed.assert_rejected();
    assert_eq!(
        pushed.pushgate_lines(),
        ["pushgate: push rejected for bob", "pushgate: busy-reject: failed: temporary failure (exit 75)"]
    );
    let pushed = push("b");
    pushed.assert_accepted();
    assert_eq!(
        pushed.pushgate_lines(),
        ["pushgate: warning: busy-allow: failed: temporary failure (exit 75) (allowed: on_error = \"allow\")"]
    );
    let pushed = push("c");
    pushed.assert_rejected();
    assert_eq!(
        pushed.pushgate_lines(),
        ["pushgate: push rejected for bob", "pushgate: slow-reject: failed: timed out after 300ms"]
    );
    let pushed = push("d");
    pushed.assert_accepted();
    assert_eq!(
        pushed.pushgate_lines(),
        ["pushgate: warning: slow-allow: failed: timed out after 300ms (allowed: on_error = \"allow\")"]
    );
    let landed: Vec<String> = server.refs().into_iter().map(|(name, _)| name).collect();
    assert_eq!(landed, ["refs/heads/b", "refs/heads/d"]);
}

#[test]
fn a_warn_mode_veto_is_a_warning_and_the_push_lands() {
    let server = server_with("", &pre_script("advisor", "echo 'please squash'; exit 1", &[], "mode = \"warn\""));
    let tip = server.work().commit(&[("README.md", "# app\n")]);

    let pushed = server.push_as("bob", &["origin", "HEAD:refs/heads/main"]);

    pushed.assert_accepted();
    assert_eq!(pushed.pushgate_lines(), ["pushgate: warning: advisor: please squash"]);
    assert_eq!(server.ref_target("refs/heads/main"), Some(tip));
}

#[test]
fn a_disabled_extension_never_runs() {
    let server = TestServer::new();
    let marker = server.root().join("ran");
    let config = format!(
        "{}{ALLOW_ALL}{}",
        spool_table(&server, &RETRY),
        pre_script("off", "touch \"$1\"; exit 1", &[&marker.to_string_lossy()], "enabled = false")
    );
    let server = server.config(&config).install(&[]);
    server.work().commit(&[("README.md", "# app\n")]);

    let pushed = server.push_as("bob", &["origin", "HEAD:refs/heads/main"]);

    pushed.assert_accepted();
    assert_eq!(pushed.pushgate_lines(), Vec::<String>::new());
    assert!(!marker.exists(), "the disabled extension ran");
}

#[test]
fn extensions_run_only_after_the_rules_accept() {
    let server = TestServer::new();
    let marker = server.root().join("ran");
    let config = format!(
        "{}[[rule]]\nrefs = [\"refs/heads/ok/**\"]\nusers = [\"*\"]\nallow = [\"all\"]\n{}",
        spool_table(&server, &RETRY),
        pre_script("lint", "touch \"$1\"; exit 1", &[&marker.to_string_lossy()], "")
    );
    let server = server.config(&config).install(&[]);
    server.work().commit(&[("README.md", "# app\n")]);

    let pushed = server.push_as("bob", &["origin", "HEAD:refs/heads/main"]);

    pushed.assert_rejected();
    assert_eq!(
        pushed.pushgate_lines(),
        ["pushgate: push rejected for bob", "pushgate: refs/heads/main: create denied (no rule allows it)"]
    );
    assert!(!marker.exists(), "the extension ran although the rules had rejected the push");

    let pushed = server.push_as("bob", &["origin", "HEAD:refs/heads/ok/topic"]);

    pushed.assert_rejected();
    assert_eq!(
        pushed.pushgate_lines(),
        ["pushgate: push rejected for bob", "pushgate: lint: refused the push (exit 1)"]
    );
    assert!(marker.exists(), "once the rules accept, the extension runs");
}

// ---------------------------------------------------------------------------------------
// pre HTTP endpoints
// ---------------------------------------------------------------------------------------

const PRE_SECRET: &str = "s3cr3t-Value-Never-Shown";

/// Push to main as bob through a server with `tables`, the secret in the environment.
fn pre_push(tables: &str) -> (TestServer, Run) {
    let server = server_with("", tables);
    server.work().commit(&[("README.md", "# app\n")]);
    let pushed = push_with(&server, "bob", &[("PRE_SECRET", PRE_SECRET)], &["origin", "HEAD:refs/heads/main"]);
    pushed.assert_no_panic();
    assert!(!format!("{}{}", pushed.stdout, pushed.stderr).contains(PRE_SECRET), "the secret was shown\n{pushed}");
    (server, pushed)
}

#[test]
fn a_pre_endpoint_refusing_with_a_json_message_vetoes_the_push() {
    let message = serde_json::json!({"message": "tests failed on main\nsee CI"});
    let receiver = Receiver::always(Answer::json(403, message));
    let started = unix_now();

    let (server, pushed) = pre_push(&pre_http("ci", &receiver.url("/hook"), "secret_env = \"PRE_SECRET\""));

    pushed.assert_rejected();
    assert_eq!(
        pushed.pushgate_lines(),
        ["pushgate: push rejected for bob", "pushgate: ci: tests failed on main", "pushgate: ci: see CI"]
    );
    assert_eq!(server.ref_target("refs/heads/main"), None);
    let request = receiver.next();
    assert_signed_delivery(&request, PRE_SECRET, started);
    let event = request.json();
    assert_valid(&event_schema(), &event);
    assert_eq!(event["phase"], "pre");
    assert_eq!(event["changes"][0]["after"], server.work().head().as_str());
}

#[test]
fn a_pre_endpoint_refusing_with_plain_text_shows_the_text() {
    let receiver = Receiver::always(Answer::status(422).body("no Friday deploys\n"));

    let (_server, pushed) = pre_push(&pre_http("ci", &receiver.url("/hook"), "secret_env = \"PRE_SECRET\""));

    pushed.assert_rejected();
    assert_eq!(pushed.pushgate_lines(), ["pushgate: push rejected for bob", "pushgate: ci: no Friday deploys"]);
}

#[test]
fn a_pre_endpoint_answering_200_accepts_the_push() {
    let receiver = Receiver::ok();

    let (server, pushed) = pre_push(&pre_http("ci", &receiver.url("/hook"), "secret_env = \"PRE_SECRET\""));

    pushed.assert_accepted();
    assert_eq!(pushed.pushgate_lines(), Vec::<String>::new());
    assert_eq!(server.ref_target("refs/heads/main"), Some(server.work().head()));
    assert_eq!(receiver.next().json()["phase"], "pre");
}

#[test]
fn a_redirect_is_a_veto_and_is_not_followed() {
    let target = Receiver::ok();
    let receiver = Receiver::always(Answer::status(302).header("Location", &target.url("/elsewhere")));

    let (server, pushed) = pre_push(&pre_http("ci", &receiver.url("/hook"), "secret_env = \"PRE_SECRET\""));

    pushed.assert_rejected();
    assert_eq!(
        pushed.pushgate_lines(),
        ["pushgate: push rejected for bob", "pushgate: ci: refused the push (HTTP 302)"]
    );
    assert_eq!(server.ref_target("refs/heads/main"), None);
    receiver.next();
    target.assert_no_more();
}

/// A server whose pre endpoint on `url` fails, with `on_error`; the URL carries
/// credentials and a token in its query that must not be shown.
fn failing_endpoint(url: &str, on_error: &str) -> (String, Run) {
    let url = url.replacen("http://", "http://user:hunter2@", 1) + "?token=tok-Never-Shown";
    let (server, pushed) = pre_push(&pre_http(
        "ci",
        &url,
        &format!("secret_env = \"PRE_SECRET\"\ntimeout = \"5s\"\non_error = \"{on_error}\""),
    ));
    let shown = format!("{}{}", pushed.stdout, pushed.stderr);
    assert!(!shown.contains("tok-Never-Shown") && !shown.contains("hunter2"), "the URL's secrets were shown\n{pushed}");
    let landed = server.ref_target("refs/heads/main").is_some();
    assert_eq!(landed, on_error == "allow", "{pushed}");
    (url, pushed)
}

/// `http://127.0.0.1:<port>/hook?…`: how messages show `url`.
/// How pushgate shows a URL: scheme, host and port (no credentials, path or query).
fn shown_url(url: &str) -> String {
    let rest = url.split_once('@').unwrap().1;
    format!("http://{}/…", rest.split('/').next().unwrap())
}

#[test]
fn a_503_rejects_or_warns_as_on_error_says() {
    let receiver = Receiver::always(Answer::status(503));

    let (url, pushed) = failing_endpoint(&receiver.url("/hook"), "reject");
    pushed.assert_rejected();
    assert_eq!(
        pushed.pushgate_lines(),
        [
            "pushgate: push rejected for bob".to_string(),
            format!("pushgate: ci: failed: {} answered 503", shown_url(&url))
        ]
    );

    let (url, pushed) = failing_endpoint(&receiver.url("/hook"), "allow");
    pushed.assert_accepted();
    assert_eq!(
        pushed.pushgate_lines(),
        [format!("pushgate: warning: ci: failed: {} answered 503 (allowed: on_error = \"allow\")", shown_url(&url))]
    );
}

#[test]
fn a_refused_connection_rejects_or_warns_as_on_error_says() {
    let (url, pushed) = failing_endpoint(&refused_url(), "reject");
    pushed.assert_rejected();
    assert_eq!(
        pushed.pushgate_lines(),
        [
            "pushgate: push rejected for bob".to_string(),
            format!("pushgate: ci: failed: {}: connection error: connection refused", shown_url(&url))
        ]
    );

    let (url, pushed) = failing_endpoint(&refused_url(), "allow");
    pushed.assert_accepted();
    assert_eq!(
        pushed.pushgate_lines(),
        [format!(
            "pushgate: warning: ci: failed: {}: connection error: connection refused (allowed: on_error = \"allow\")",
            shown_url(&url)
        )]
    );
}

// ---------------------------------------------------------------------------------------
// Hostile text
// ---------------------------------------------------------------------------------------

/// Everything JSON must escape, and what a shell would run.
const HOSTILE_MESSAGE: &str = "fix: \"quoted\" 'single' \\back\\slash\\\n\n\ttabbed\tline\r\ncontrol \u{1}\u{2}\u{1b}[31mred\u{1b}[0m \u{7f}\n$(touch pwned) `touch pwned` ${HOME}\nunicode é ✓ \u{202e}rtl \u{2028}sep\n";

const HOSTILE_PATHS: [&[u8]; 8] = [
    b"quote\"d",
    b"back\\slash",
    b"new\nline",
    b"tab\there",
    b"ctrl\x01\x1b[31m",
    b"bad-\xff\xfe-utf8",
    b"$(touch pwned)",
    b"sp ace/`touch pwned`",
];

#[test]
fn hostile_messages_and_file_names_arrive_as_valid_json() {
    let receiver = Receiver::ok();
    let server = TestServer::new();
    let pre_copy = server.root().join("pre-event.json");
    let config = format!(
        "{}{ALLOW_ALL}{}{}",
        spool_table(&server, &RETRY),
        pre_script("copy", "cat > \"$1\"", &[&pre_copy.to_string_lossy()], ""),
        post_http("ci", &receiver.url("/hook"), "")
    );
    let server = server.config(&config).install(&[]);
    let work = server.work();
    let blob = work.git(&["hash-object", "-w", "--stdin"]).stdin("raw\n").ok();
    for path in HOSTILE_PATHS {
        use std::os::unix::ffi::OsStrExt;
        let info = [b"100644,".as_slice(), blob.as_bytes(), b",", path].concat();
        work.git(&["update-index", "--add", "--cacheinfo"]).args([std::ffi::OsStr::from_bytes(&info)]).ok();
    }
    let message_file = server.root().join("message");
    std::fs::write(&message_file, HOSTILE_MESSAGE).unwrap();
    work.git(&["commit", "--quiet", "--cleanup=verbatim", "-F"]).args([&message_file]).ok();
    let tip = work.head();
    let raw = work.git(&["cat-file", "commit", &tip]).ok();
    assert!(raw.ends_with(HOSTILE_MESSAGE.trim_end_matches('\n')), "git kept the message as written");

    server.push_as("alice", &["origin", "HEAD:refs/heads/main"]).assert_accepted().assert_no_panic();

    let request = receiver.next();
    let pre_event = std::fs::read(&pre_copy).unwrap();
    let schema = event_schema();
    for body in [&request.body, &pre_event] {
        let event: serde_json::Value = serde_json::from_slice(body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(body)));
        assert_valid(&schema, &event);
        let commit = &event["changes"][0]["commits"][0];
        assert_eq!(commit["id"], tip.as_str());
        assert_eq!(commit["message"].as_str().unwrap().as_bytes(), HOSTILE_MESSAGE.as_bytes());
        let mut added: Vec<String> =
            commit["added"].as_array().unwrap().iter().map(|p| p.as_str().unwrap().to_string()).collect();
        let mut expected: Vec<String> = HOSTILE_PATHS.iter().map(|p| String::from_utf8_lossy(p).into_owned()).collect();
        added.sort();
        expected.sort();
        assert_eq!(added, expected);
    }
    server.sandbox.wait_for_detached_deliverers();
    assert_eq!(server.sandbox.files_named("pwned"), Vec::<std::path::PathBuf>::new());
}

/// post-receive run by hand (as a mirror or a chained hook would) for a new ref at a commit
/// the server already has: no new commits, and the head commit's hostile message intact.
#[test]
fn post_receive_by_hand_spools_hostile_text_as_valid_json() {
    let receiver = Receiver::ok();
    let server = server_with("", &post_http("ci", &receiver.url("/hook"), ""));
    let work = server.work();
    let message_file = server.root().join("message");
    std::fs::write(&message_file, HOSTILE_MESSAGE).unwrap();
    work.commit(&[("README.md", "# app\n")]);
    work.git(&["commit", "--quiet", "--allow-empty", "--cleanup=verbatim", "-F"]).args([&message_file]).ok();
    let tip = work.head();
    server.push_as("alice", &["origin", "HEAD:refs/heads/main"]).assert_accepted();
    receiver.next();
    server.sandbox.wait_for_detached_deliverers();

    let input = updates(&[(ZERO, &tip, "refs/heads/topic")]);
    server.hook("alice", &["pre-receive"]).stdin(input.clone()).run().assert_code(0).assert_no_panic();
    let run = server.hook("alice", &["post-receive"]).stdin(input).run();

    run.assert_code(0).assert_no_panic();
    let event = receiver.next().json();
    assert_valid(&event_schema(), &event);
    assert_eq!(event["sequence"], 2);
    let commits = event["changes"][0]["commits"].as_array().unwrap();
    assert!(commits.is_empty(), "nothing new: every commit was on main already");
    assert_eq!(event["changes"][0]["head_commit"]["message"], HOSTILE_MESSAGE);
}

// ---------------------------------------------------------------------------------------
// What the pusher is shown, and where extensions may be configured
// ---------------------------------------------------------------------------------------

#[test]
fn a_vetoing_scripts_output_is_escaped_and_capped() {
    let script = "printf 'red \\033[31malert\\033[0m bell\\a\\n'; i=0; while [ $i -lt 100 ]; do echo \"line $i\"; i=$((i+1)); done; exit 1";
    let server = server_with("", &pre_script("noisy", script, &[], ""));
    server.work().commit(&[("README.md", "# app\n")]);

    let pushed = server.push_as("bob", &["origin", "HEAD:refs/heads/main"]);

    pushed.assert_rejected();
    assert!(!pushed.stderr.contains('\u{1b}') && !pushed.stderr.contains('\u{7}'), "raw control characters\n{pushed}");
    let lines = pushed.pushgate_lines();
    assert_eq!(lines[1], "pushgate: noisy: red \\u{1b}[31malert\\u{1b}[0m bell\\u{7}");
    assert_eq!(lines[2], "pushgate: noisy: line 0");
    assert_eq!(lines.last().unwrap(), "pushgate: noisy: … and 61 more lines");
    assert_eq!(lines.len(), 1 + 40 + 1, "the header, 40 lines, the count of the rest");
}

#[test]
fn a_pre_endpoint_that_hangs_past_its_timeout_is_an_error_for_on_error() {
    let receiver = Receiver::always(Answer::Hang);
    let tables = pre_http("ci", &receiver.url("/hook"), "timeout = \"300ms\"");
    let started = Instant::now();

    let (server, pushed) = pre_push(&tables);

    assert!(started.elapsed() < Duration::from_secs(10), "the push waited {:?}", started.elapsed());
    pushed.assert_rejected();
    assert_eq!(
        pushed.pushgate_lines(),
        [
            "pushgate: push rejected for bob".to_string(),
            format!("pushgate: ci: failed: {}/…: timed out after 300ms", receiver.url(""))
        ]
    );
    assert_eq!(server.ref_target("refs/heads/main"), None);
}

#[test]
fn a_pre_extension_in_the_repository_file_runs() {
    let server =
        server_with("", "").repo_config(&pre_script("repo-lint", "echo 'from the repository'; exit 1", &[], ""));
    server.work().commit(&[("README.md", "# app\n")]);

    let pushed = server.push_as("bob", &["origin", "HEAD:refs/heads/main"]);

    pushed.assert_rejected();
    assert_eq!(
        pushed.pushgate_lines(),
        ["pushgate: push rejected for bob", "pushgate: repo-lint: from the repository"]
    );
}

#[test]
fn a_post_extension_in_the_repository_file_receives_the_event() {
    let receiver = Receiver::ok();
    let server = server_with("", "").repo_config(&post_http("repo-ci", &receiver.url("/hook"), ""));
    let tip = server.work().commit(&[("README.md", "# app\n")]);

    server.push_as("alice", &["origin", "HEAD:refs/heads/main"]).assert_accepted().assert_no_panic();

    let request = receiver.next_within(Duration::from_secs(5)).expect("the repository's post extension is told");
    assert_eq!(request.json()["changes"][0]["after"], tip.as_str());
}

/// A new ref at an old commit: the head commit's files reach a `post` extension (the
/// deliverer reads them after the push), and nothing of how they got there shows.
#[test]
fn a_new_ref_at_an_old_commit_tells_its_head_commits_files() {
    let receiver = Receiver::ok();
    let server = server_with("", &post_http("ci", &receiver.url("/hook"), ""));
    let work = server.work();
    work.commit(&[("README.md", "# app\n")]);
    work.commit(&[("src/a.rs", "fn a() {}\n"), ("README.md", "# app, again\n")]);
    let old = work.head();
    work.commit(&[("src/b.rs", "fn b() {}\n")]);
    server.push_as("alice", &["origin", "HEAD:refs/heads/main"]).assert_accepted();
    receiver.next();

    server.push_as("alice", &["origin", &format!("{old}:refs/heads/old")]).assert_accepted();
    let event = receiver.next().json();
    assert_valid(&event_schema(), &event);
    let change = &event["changes"][0];
    assert_eq!(change["commits"], serde_json::json!([]));
    let head = &change["head_commit"];
    assert_eq!(head["id"], old.as_str());
    assert_eq!(head["added"], serde_json::json!(["src/a.rs"]));
    assert_eq!(head["modified"], serde_json::json!(["README.md"]));
    assert_eq!(head["removed"], serde_json::json!([]));
    assert!(head.get("files_pending").is_none(), "{head}");
}
