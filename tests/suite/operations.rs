//! Running a server: `pushgate doctor` says what is wrong with the setup, one line each with
//! what to do, and `pushgate metrics` shows the queues to Prometheus. Both only look.

use crate::harness::{
    ALLOW_ALL, Answer, Receiver, Sandbox, files_under, parse_metrics, poll, post_http, quoted, unix_now,
};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// A server of many repositories (`repos_root`): `app.git` with pushgate's hooks, a
/// connector `ci` at `url` with `extra` keys; and a work repository that pushes to it.
fn site(url: &str, extra: &str) -> (Sandbox, PathBuf, PathBuf) {
    let site = Sandbox::new();
    site.configure(&format!("{ALLOW_ALL}{}", post_http("ci", url, extra)));
    let app = site.git_repo("app.git");
    let work = site.git_work("work");
    (site, app, work)
}

/// Push `work`'s HEAD to `repo` as a new branch `name`; the push must land.
fn push(site: &Sandbox, work: &Path, repo: &Path, name: &str, env: &[(&str, &str)]) {
    site.git(work, &["commit", "--quiet", "--allow-empty", "-m", name]).ok();
    let mut push = site.git(work, &["push", "--quiet"]).arg(repo).arg(format!("HEAD:refs/heads/{name}"));
    push = push.env("PUSHGATE_USER", "alice");
    for (key, value) in env {
        push = push.env(key, value);
    }
    push.run().assert_accepted().assert_no_panic();
}

/// `doctor`'s lines as `(level, text)`, with the sandbox's root shown as `ROOT`.
fn doctor(site: &Sandbox, env: &[(&str, &str)]) -> (Option<i32>, Vec<(String, String)>) {
    let mut run = site.pushgate(&["doctor"]);
    for (key, value) in env {
        run = run.env(key, value);
    }
    let run = run.run();
    run.assert_no_panic();
    assert_eq!(run.stderr, "", "{run}");
    let root = site.root.display().to_string();
    let lines = run
        .stdout_lines()
        .iter()
        .map(|l| {
            // `ok  `, `warn` or `FAIL`, two spaces, the text.
            let (level, text) = (l.get(..4), l.get(6..));
            let (level, text) = level.zip(text).unwrap_or_else(|| panic!("not `level  text`: {l:?}"));
            (level.trim().to_string(), text.replace(&root, "ROOT"))
        })
        .collect();
    (run.code, lines)
}

#[track_caller]
fn assert_line(lines: &[(String, String)], level: &str, starts: &str) {
    assert!(lines.iter().any(|(l, t)| l == level && t.starts_with(starts)), "no `{level}  {starts}...` in {lines:#?}");
}

// ---------------------------------------------------------------------------------------
// doctor
// ---------------------------------------------------------------------------------------

#[test]
fn doctor_says_all_ok_for_a_server_set_up_as_the_readme_says() {
    let receiver = Receiver::ok();
    let (site, app, work) = site(&receiver.url("/hook"), "");
    let secret = site.root.join("ci.secret");
    std::fs::write(&secret, "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\n").unwrap();
    site.configure(&format!(
        "{ALLOW_ALL}{}",
        post_http("ci", &receiver.url("/hook"), &format!("secret_file = {}", quoted(&secret)))
    ));
    let _watch = site.pushgate(&["deliver", "--watch"]).background();
    push(&site, &work, &app, "main", &[]);
    receiver.next();

    let (code, lines) = doctor(&site, &[]);

    assert_eq!(code, Some(0), "{lines:#?}");
    let not_ok: Vec<_> = lines.iter().filter(|(level, _)| level != "ok").collect();
    assert!(not_ok.is_empty(), "{lines:#?}");
    assert_line(&lines, "ok", "configuration ROOT/config.toml is valid (1 rules, 1 extensions)");
    assert_line(&lines, "ok", "ROOT/srv/app.git: pushgate's hooks are installed");
    assert_line(&lines, "ok", "spool ROOT/spool is writable");
    assert_line(&lines, "ok", "audit log ROOT/audit.jsonl is writable");
    assert_line(&lines, "ok", "extension ci: secret_file ROOT/ci.secret is readable");
    assert_line(&lines, "ok", "a `pushgate deliver --watch` runs");
}

#[test]
fn doctor_names_each_problem_with_what_to_do_and_exits_1() {
    let receiver = Receiver::always(Answer::status(503));
    let (site, app, work) = site(&receiver.url("/hook"), "secret_env = \"CI_SECRET\"");
    site.git(&site.root, &["init", "--quiet", "--bare"]).arg(site.repos.join("team/bare.git")).ok();
    // A job that waits, with no deliverer running (the one the push detached dies first).
    push(&site, &work, &app, "main", &[("PUSHGATE_CRASH_AT", "deliver:before-send"), ("CI_SECRET", "s")]);
    site.wait_for_detached_deliverers();
    // A connector no longer configured, still holding a job; a dead letter; a disabled one.
    let spool = site.spool_dir();
    let queue = spool.join("connectors/ci/queue");
    let job = files_under(&queue).remove(0);
    for (connector, shelf) in [("gone", "queue"), ("chat", "dead")] {
        let dir = spool.join("connectors").join(connector).join(shelf);
        std::fs::create_dir_all(&dir).unwrap();
        let text = std::fs::read_to_string(&job).unwrap().replace("\"ci\"", &quoted(connector));
        std::fs::write(dir.join(job.file_name().unwrap()), text).unwrap();
    }
    std::fs::write(spool.join("connectors/chat/disabled"), "http://127.0.0.1/… answered 410 Gone").unwrap();
    let config = std::fs::read_to_string(&site.config).unwrap();
    std::fs::write(&site.config, format!("{config}{}", post_http("chat", &receiver.url("/chat"), ""))).unwrap();

    let (code, lines) = doctor(&site, &[]);

    assert_eq!(code, Some(1), "{lines:#?}");
    assert_line(&lines, "ok", "ROOT/srv/app.git: pushgate's hooks are installed");
    assert_line(
        &lines,
        "FAIL",
        "ROOT/srv/team/bare.git: no pushgate pre-receive or post-receive hook: run `pushgate install ROOT/srv/team/bare.git`",
    );
    assert_line(
        &lines,
        "warn",
        "extension ci: secret_env CI_SECRET is not set here: the hooks and the deliverer need it",
    );
    assert_line(
        &lines,
        "FAIL",
        "connector chat is disabled (http://127.0.0.1/… answered 410 Gone): fix it, then `pushgate queue enable chat`",
    );
    assert_line(
        &lines,
        "warn",
        "connector chat has 1 dead letter(s): `pushgate queue list --dead`, then `queue retry` or `queue drop`",
    );
    assert_line(&lines, "warn", "connector gone is no longer configured but has 1 job(s): `pushgate queue drop` them");
    assert_line(&lines, "FAIL", "2 job(s) wait and no `pushgate deliver --watch` runs: start pushgate-deliver.service");
    let (_, with_secret) = doctor(&site, &[("CI_SECRET", "s")]);
    assert_line(&with_secret, "ok", "extension ci: secret_env CI_SECRET is set");
}

#[test]
fn doctor_names_the_owner_of_a_spool_and_of_hooks_that_are_not_the_hooks_users() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("note: not root, so no files of another user: the ownership test of doctor is skipped");
        return;
    }
    let (site, app, _) = site("http://127.0.0.1:9/hook", "");
    let spool = site.spool_dir();
    std::fs::create_dir(&spool).unwrap();
    site.command("chown").args(["nobody"]).arg(&spool).ok();
    // The repository is the git user's (here: nobody); root ran `pushgate install` in it.
    site.command("chown").args(["nobody"]).arg(&app).ok();

    let (code, lines) = doctor(&site, &[]);

    assert_eq!(code, Some(1), "{lines:#?}");
    assert_line(
        &lines,
        "FAIL",
        "spool ROOT/spool belongs to nobody (uid 65534), not to root (uid 0) (this user): `chown -R root ROOT/spool`",
    );
    assert_line(
        &lines,
        "warn",
        "ROOT/srv/app.git belongs to nobody (uid 65534) and doctor runs as root (uid 0): the hooks run as the repository's owner; run doctor as that user (sudo -u nobody pushgate doctor)",
    );
    assert_line(
        &lines,
        "warn",
        "ROOT/srv/app.git/hooks/pre-receive, ROOT/srv/app.git/hooks/post-receive belong to root in a repository of nobody (uid 65534): `chown -h nobody <hook>`",
    );
}

#[test]
fn doctor_and_metrics_create_nothing() {
    let (site, _, _) = site("http://127.0.0.1:9/hook", "");
    let spool = site.spool_dir();

    let (_, lines) = doctor(&site, &[]);
    let metrics = site.pushgate(&["metrics"]).run().stdout;

    assert_line(&lines, "ok", "spool ROOT/spool will be made on first use");
    assert_line(&lines, "ok", "audit log ROOT/audit.jsonl will be made on first use");
    assert!(!spool.exists(), "a look made the spool: {:?}", files_under(&spool));
    assert!(!site.audit_path().exists());
    let samples = parse_metrics(&metrics).unwrap_or_else(|e| panic!("{e}\n{metrics}"));
    assert_eq!(value(&samples, "pushgate_queue_pending", &[("connector", "ci")]), Some(0.0));
}

// ---------------------------------------------------------------------------------------
// metrics
// ---------------------------------------------------------------------------------------

fn value(samples: &[crate::harness::Sample], name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let labels: BTreeMap<String, String> = labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    samples.iter().find(|s| s.name == name && s.labels == labels).map(|s| s.value)
}

#[test]
fn metrics_are_prometheus_text_with_every_family_of_the_spec() {
    let receiver = Receiver::scripted([Answer::status(503)], Answer::status(410));
    let (site, app, work) = site(&receiver.url("/hook"), "");
    let config = std::fs::read_to_string(&site.config).unwrap();
    let chat = Receiver::ok();
    std::fs::write(&site.config, format!("{config}{}", post_http("chat", &chat.url("/chat"), ""))).unwrap();
    let before = unix_now();
    push(&site, &work, &app, "main", &[("PUSHGATE_CRASH_AT", "deliver:before-send")]);
    site.wait_for_detached_deliverers();
    // ci: one retry (503); chat: delivered.
    site.pushgate(&["deliver", "--once"]).ok();
    chat.next();
    receiver.next();
    // A second push waits behind the first on ci, recorded and not yet confirmed: its
    // post-receive dies before confirming.
    push(&site, &work, &app, "topic", &[("PUSHGATE_CRASH_AT", "post:before-confirm")]);

    let run = site.pushgate(&["metrics"]).run();

    run.assert_code(0).assert_no_panic();
    let samples = parse_metrics(&run.stdout).unwrap_or_else(|e| panic!("{e}\n{run}"));
    let families: Vec<&str> = {
        let mut names: Vec<&str> = samples.iter().map(|s| s.name.as_str()).collect();
        names.dedup();
        names
    };
    assert_eq!(
        families,
        [
            "pushgate_queue_pending",
            "pushgate_queue_dead",
            "pushgate_connector_disabled",
            "pushgate_queue_oldest_pending_seconds",
            "pushgate_deliveries_total",
            "pushgate_last_delivery_timestamp_seconds",
            "pushgate_spool_records_unconfirmed",
        ],
        "{run}"
    );
    let ci = [("connector", "ci")];
    let chat_label = [("connector", "chat")];
    assert_eq!(value(&samples, "pushgate_queue_pending", &ci), Some(1.0), "{run}");
    assert_eq!(value(&samples, "pushgate_queue_pending", &chat_label), Some(0.0), "{run}");
    assert_eq!(value(&samples, "pushgate_queue_dead", &ci), Some(0.0), "{run}");
    assert_eq!(value(&samples, "pushgate_connector_disabled", &ci), Some(0.0), "{run}");
    let age = value(&samples, "pushgate_queue_oldest_pending_seconds", &ci).unwrap();
    assert!((0.0..=(unix_now() - before + 1) as f64).contains(&age), "{run}");
    let outcome = |connector: &str, outcome: &str| {
        value(&samples, "pushgate_deliveries_total", &[("connector", connector), ("outcome", outcome)])
    };
    assert_eq!((outcome("ci", "retry"), outcome("chat", "delivered")), (Some(1.0), Some(1.0)), "{run}");
    let last = value(&samples, "pushgate_last_delivery_timestamp_seconds", &chat_label).unwrap();
    assert!((before as f64..=unix_now() as f64).contains(&last), "{run}");
    assert_eq!(value(&samples, "pushgate_last_delivery_timestamp_seconds", &ci), None, "ci never delivered");
    assert_eq!(value(&samples, "pushgate_spool_records_unconfirmed", &[]), Some(1.0), "{run}");

    // Once its retry is due, the 410 disables ci; its job is a dead letter.
    let samples = poll("ci disabled", || {
        site.pushgate(&["deliver", "--once"]).ok();
        let samples = parse_metrics(&site.pushgate(&["metrics"]).run().stdout).unwrap();
        (value(&samples, "pushgate_connector_disabled", &ci) == Some(1.0)).then_some(samples)
    });
    assert_eq!(value(&samples, "pushgate_queue_dead", &ci), Some(1.0));
    assert_eq!(value(&samples, "pushgate_spool_records_unconfirmed", &[]), Some(0.0), "resolved by the deliverer");
}
