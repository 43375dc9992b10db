//! The outbox: every push the gate accepts keeps its event, whatever dies or fills up. The
//! gate records the push in the spool before it lets it land; post-receive only confirms
//! the record. So a post-receive that never runs loses nothing, a push a later hook refuses
//! leaves nothing, a corrupt job never wedges its connector, a deliverer on a full disk
//! keeps going at the pace of its retries, and a spool the hooks cannot write is named with
//! its owner.

use crate::harness::{
    ALLOW_ALL, Answer, PUSHGATE, Receiver, Request, TestServer, deliver_once, files_under, json_of, poll, post_http,
    quoted, spool_dir, spool_table,
};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Makes the deliverer a push detaches die before it sends anything, so that the test's
/// own deliverer does the sending.
const NO_DETACHED_SEND: (&str, &str) = ("PUSHGATE_CRASH_AT", "deliver:before-send");

/// A server that lets everyone push anything to a connector `ci` at `url`, retrying on
/// `retry`, its spool in the sandbox.
fn server(url: &str, retry: &[&str]) -> TestServer {
    let server = TestServer::new();
    let config = format!("{}{ALLOW_ALL}{}", spool_table(&server, retry), post_http("ci", url, ""));
    server.config(&config).install(&[])
}

/// Commit `f<n>.txt` and push it to `refs/heads/<branch>` as alice with `env`; the push must
/// land. Returns the commit.
fn push(server: &TestServer, n: usize, branch: &str, env: &[(&str, &str)]) -> String {
    let tip = server.work().commit(&[(&format!("f{n}.txt"), &format!("{n}\n"))]);
    let mut push = server.work().push(&["origin", &format!("HEAD:refs/heads/{branch}")]).env("PUSHGATE_USER", "alice");
    for (key, value) in env {
        push = push.env(key, value);
    }
    let pushed = push.run();
    pushed.assert_accepted().assert_no_panic();
    assert_eq!(server.ref_target(&format!("refs/heads/{branch}")), Some(tip.clone()), "{pushed}");
    tip
}

fn sequences(requests: &[Request]) -> Vec<u64> {
    requests.iter().map(Request::sequence).collect()
}

/// `(ref, after)` of each change of an event.
fn landed(request: &Request) -> Vec<(String, String)> {
    let event = request.json();
    event["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["ref"].as_str().unwrap().to_string(), c["after"].as_str().unwrap().to_string()))
        .collect()
}

fn write_hook(server: &TestServer, name: &str, text: &str) {
    let path = server.hooks().join(name);
    let _ = std::fs::remove_file(&path);
    std::fs::write(&path, text).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

// ---------------------------------------------------------------------------------------
// What the gate recorded
// ---------------------------------------------------------------------------------------

#[test]
fn a_post_receive_that_never_runs_loses_no_event() {
    // Gone (removed by hand), or killed before pushgate could start.
    for post_receive in [None, Some("#!/bin/sh\nkill -9 $$\n")] {
        let receiver = Receiver::ok();
        let server = server(&receiver.url("/hook"), &["1s"]);
        match post_receive {
            None => std::fs::remove_file(server.hooks().join("post-receive")).unwrap(),
            Some(text) => write_hook(&server, "post-receive", text),
        }
        let tip = server.work().commit(&[("README.md", "# app\n")]);
        let pushed = server.push_as("alice", &["origin", "HEAD:refs/heads/main"]);
        pushed.assert_accepted().assert_no_panic();
        assert_eq!(pushed.pushgate_lines(), Vec::<String>::new(), "{pushed}");

        // Nothing started a deliverer; the next one finds the record of a push whose
        // receive-pack is gone, and the refs say it landed.
        receiver.assert_no_more();
        deliver_once(&server);

        let request = receiver.next();
        assert_eq!(request.sequence(), 1, "{post_receive:?}");
        assert_eq!(landed(&request), [("refs/heads/main".to_string(), tip.clone())]);
        let commits = request.json()["changes"][0]["commits"].clone();
        assert_eq!(commits.as_array().unwrap().len(), 1, "the commits the gate read: {commits}");
        assert_eq!(commits[0]["id"], tip.as_str());
        receiver.assert_no_more();
        assert!(files_under(&spool_dir(&server).join("incoming")).is_empty(), "{post_receive:?}");

        // With post-receive back, the next push is numbered after it: no gap, no duplicate.
        let _ = std::fs::remove_file(server.hooks().join("post-receive"));
        std::os::unix::fs::symlink(PUSHGATE, server.hooks().join("post-receive")).unwrap();
        let next = push(&server, 2, "main", &[]);
        deliver_once(&server);
        server.sandbox.wait_for_detached_deliverers();
        let requests = receiver.drain();
        assert_eq!(sequences(&requests), [2], "{post_receive:?}");
        assert_eq!(landed(&requests[0]), [("refs/heads/main".to_string(), next)]);
        // The dead push's pointer to its record does not stay in the repository.
        let pointers = files_under(&server.repo.join("pushgate"));
        assert!(pointers.is_empty(), "{post_receive:?}: {pointers:?}");
    }
}

#[test]
fn a_push_a_chained_hook_refuses_leaves_no_event_and_no_gap() {
    let receiver = Receiver::ok();
    let server = TestServer::new();
    // A pre-receive from before pushgate, kept by install and run after pushgate's verdict:
    // it refuses `frozen`.
    std::fs::create_dir_all(server.hooks()).unwrap();
    write_hook(
        &server,
        "pre-receive",
        "#!/bin/sh\nif grep -q ' refs/heads/frozen$'; then echo frozen >&2; exit 1; fi\n",
    );
    let config = format!("{}{ALLOW_ALL}{}", spool_table(&server, &["1s"]), post_http("ci", &receiver.url("/h"), ""));
    let server = server.config(&config).install(&[]);
    server.work().commit(&[("README.md", "# app\n")]);

    let refused = server.push_as("alice", &["origin", "HEAD:refs/heads/frozen"]);

    refused.assert_rejected().assert_no_panic();
    assert_eq!(server.ref_target("refs/heads/frozen"), None);
    let open = push(&server, 1, "main", &[]);
    deliver_once(&server);
    server.sandbox.wait_for_detached_deliverers();
    let requests = receiver.drain();
    assert_eq!(sequences(&requests), [1], "only the push that landed, numbered 1: {requests:#?}");
    assert_eq!(landed(&requests[0]), [("refs/heads/main".to_string(), open)]);
    assert!(files_under(&spool_dir(&server).join("incoming")).is_empty());
}

// ---------------------------------------------------------------------------------------
// A corrupt job
// ---------------------------------------------------------------------------------------

#[test]
fn a_corrupt_job_at_the_head_of_a_queue_is_set_aside_and_the_rest_delivered() {
    let receiver = Receiver::ok();
    let server = server(&receiver.url("/hook"), &["1s"]);
    let tips: Vec<String> = (1..=3).map(|n| push(&server, n, "main", &[NO_DETACHED_SEND])).collect();
    server.sandbox.wait_for_detached_deliverers();
    let queue = spool_dir(&server).join("connectors/ci/queue");
    let jobs = files_under(&queue);
    assert_eq!(jobs.len(), 3, "{jobs:?}");
    // Cut short, as a crash of a filesystem without data journaling leaves it.
    let head = std::fs::read(&jobs[0]).unwrap();
    std::fs::write(&jobs[0], &head[..head.len() / 2]).unwrap();

    let run = server.pushgate(&["deliver", "--once"]).run();

    run.assert_code(0).assert_no_panic();
    let name = jobs[0].file_name().unwrap().to_string_lossy().into_owned();
    assert!(run.stderr.lines().any(|l| l.contains(&format!(" error ci set aside {name}: "))), "{run}");
    let requests = receiver.take(2);
    assert_eq!(sequences(&requests), [2, 3], "the jobs behind it are delivered, in order");
    assert_eq!(landed(&requests[1]), [("refs/heads/main".to_string(), tips[2].clone())]);
    receiver.assert_no_more();
    let status = server.pushgate(&["queue", "status"]).ok();
    let aside = spool_dir(&server).join("aside");
    assert_eq!(
        status.lines().collect::<Vec<_>>(),
        [
            "ci: 0 pending, 0 dead".to_string(),
            format!("1 unreadable file(s) set aside in {} (see them, then remove them)", aside.display())
        ],
    );
    assert_eq!(std::fs::read(aside.join(format!("queue-{name}"))).unwrap(), &head[..head.len() / 2], "kept for a look");
}

// ---------------------------------------------------------------------------------------
// A full disk
// ---------------------------------------------------------------------------------------

/// A private tmpfs of `size`, unmounted when dropped; `None` where mounting is not allowed
/// (not root), so the test says so and skips.
struct SmallDisk(PathBuf);

impl SmallDisk {
    fn mount(at: &Path, size: &str) -> Option<SmallDisk> {
        std::fs::create_dir_all(at).ok()?;
        let mounted = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size},mode=0700"), "tmpfs"])
            .arg(at)
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        mounted.then(|| SmallDisk(at.to_path_buf()))
    }

    /// Fill it to the last block with `filler`.
    fn fill(&self) {
        let mut filler = std::fs::File::create(self.0.join("filler")).unwrap();
        let block = vec![0u8; 4096];
        while std::io::Write::write_all(&mut filler, &block).is_ok() {}
    }

    fn free(&self) {
        std::fs::remove_file(self.0.join("filler")).unwrap();
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn a_deliverer_on_a_full_disk_keeps_running_at_the_pace_of_its_retries() {
    const WATCHED: Duration = Duration::from_secs(3);
    let receiver = Receiver::always(Answer::status(503));
    let server = TestServer::new();
    let Some(disk) = SmallDisk::mount(&server.root().join("small-disk"), "256k") else {
        eprintln!("note: cannot mount a tmpfs here (not root?): the full-disk deliverer test is skipped");
        return;
    };
    let spool = disk.0.join("spool");
    let config = format!(
        "[spool]\ndir = {}\nretry = [{}]\n{ALLOW_ALL}{}",
        quoted(&spool),
        vec!["\"1s\""; 20].join(", "),
        post_http("ci", &receiver.url("/hook"), "")
    );
    let server = server.config(&config).install(&[]);
    // A backlog: two jobs waiting, never tried.
    for n in 1..=2 {
        push(&server, n, "main", &[NO_DETACHED_SEND]);
    }
    server.sandbox.wait_for_detached_deliverers();
    disk.fill();

    let mut watch = server.pushgate(&["deliver", "--watch"]).background();
    let started = Instant::now();
    let mut attempts = Vec::new();
    while let Some(left) = WATCHED.checked_sub(started.elapsed()) {
        attempts.extend(receiver.next_within(left));
    }

    watch.assert_running();
    assert!(!attempts.is_empty(), "the deliverer tried nothing");
    let per_second = attempts.len() as f64 / WATCHED.as_secs_f64();
    assert!(per_second < 10.0, "{} attempts in {WATCHED:?}: a tight loop", attempts.len());
    assert!(attempts.iter().all(|r| r.sequence() == 1), "the backlog holds: only its head is tried");
    // Space again: the job's file now says how often it was tried and when it is next due.
    disk.free();
    let head = poll("the head job rewritten", || {
        let jobs = json_of(&server, &["queue", "list"]);
        let head = jobs[0].clone();
        (jobs.as_array().unwrap().len() == 2 && head["attempts"].as_u64() > Some(0)).then_some(head)
    });
    assert!(head["last_error"].as_str().unwrap().contains("503"), "{head}");
    watch.assert_running();
    drop(watch);
    server.sandbox.wait_for_detached_deliverers();
    drop(disk);
}

// ---------------------------------------------------------------------------------------
// A spool the hooks cannot write
// ---------------------------------------------------------------------------------------

#[test]
fn a_spool_owned_by_another_user_rejects_the_push_naming_the_spool_and_its_owner() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("note: not root, so no other user to push as: the spool-owner test is skipped");
        return;
    }
    const NOBODY: u32 = 65534;
    let receiver = Receiver::ok();
    let server = server(&receiver.url("/hook"), &["1s"]);
    server.work().commit(&[("README.md", "# app\n")]);
    // The server belongs to the hooks' user (nobody); the spool was made by root, as
    // `pushgate deliver` run by root once makes it.
    let chown = server.sandbox.command("chown").args(["-R", &format!("{NOBODY}:{NOBODY}")]).arg(server.root());
    chown.ok();
    let chown_back = server.sandbox.command("chown").args(["-R", "0:0"]).arg(server.root());
    let spool = spool_dir(&server);
    std::fs::create_dir(&spool).unwrap();
    std::fs::set_permissions(&spool, std::fs::Permissions::from_mode(0o700)).unwrap();

    let pushed = server
        .sandbox
        .command("setpriv")
        .args(["--reuid", &NOBODY.to_string(), "--regid", &NOBODY.to_string(), "--clear-groups", "git", "push"])
        .args(["origin", "HEAD:refs/heads/main"])
        .current_dir(&server.work().dir)
        .env("PUSHGATE_USER", "alice")
        .run();

    pushed.assert_rejected().assert_no_panic();
    chown_back.ok();
    assert_eq!(server.ref_target("refs/heads/main"), None, "the push did not land");
    assert_eq!(
        pushed.pushgate_lines(),
        [format!(
            "pushgate: push rejected: the spool {} belongs to root (uid 0), and the hooks run as nobody (uid {NOBODY}): \
             give it to the hooks' user (chown -R nobody {}); refused so that its event is not lost ([spool] \
             on_full)",
            spool.display(),
            spool.display()
        )],
        "{pushed}"
    );
    receiver.assert_no_more();
}
