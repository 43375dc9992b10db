//! Attacks on the gate, each beside the legitimate push that must still land: client
//! environment through the SSH forced command, commits smuggled through one ref onto
//! another, symbolic refs, blobs and tree entries that hide from the rules, Mercurial heads
//! and names, private files and environments, and the admin commands' inputs.

use crate::harness::{
    ALLOW_ALL, Answer, Invocation, Receiver, Request, Run, Sandbox, TestServer, WAIT, Work, ZERO, changes,
    connector_status, deliver_once, files_under, github_signature, json_of, json_values, log, post_http, quoted,
    shell_quoted, spool_dir, spool_table, updates,
};
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::mpsc;

// ---------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------

fn short(id: &str) -> &str {
    &id[..7]
}

/// The id `name` has in repository `repo`, if it exists.
fn rev(site: &Sandbox, repo: &Path, name: &str) -> Option<String> {
    let run = site.git(repo, &["rev-parse", "--verify", "--quiet", name]).run();
    (run.code == Some(0)).then(|| run.stdout.trim().to_string())
}

/// `git <args>` in `dir` through the stand-in ssh, with `user`'s key.
fn git_over_ssh(site: &Sandbox, dir: &Path, user: &str, args: &[&str]) -> Invocation {
    site.git(dir, args).env("GIT_SSH_COMMAND", site.ssh()).env("GIT_SSH_VARIANT", "simple").env("SSH_AS", user)
}

/// Bytes on a pseudo-random walk: they do not compress, so a blob of them stays big.
fn noise(len: usize) -> Vec<u8> {
    (0..len as u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8).collect()
}

/// 195 KiB of noise.
fn big() -> Vec<u8> {
    noise(195 * 1024)
}

/// `git <args>` in `dir` with the sandbox's environment, for binary stdout (a pack), which
/// [`Run`] would not keep.
fn raw_git(sandbox: &Sandbox, dir: &Path, args: &[&str], input: &[u8]) -> Vec<u8> {
    let mut child = sandbox
        .std_command("git")
        .args(args)
        .current_dir(dir)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let input = input.to_vec();
    let writer = std::thread::spawn(move || stdin.write_all(&input));
    let output = child.wait_with_output().unwrap();
    writer.join().unwrap().unwrap();
    assert!(output.status.success(), "git {args:?} failed: {}", String::from_utf8_lossy(&output.stderr));
    output.stdout
}

/// One pkt-line.
fn pkt_line(payload: &[u8]) -> Vec<u8> {
    [format!("{:04x}", payload.len() + 4).as_bytes(), payload].concat()
}

/// A push spoken to receive-pack directly, as no `git push` would send it: one command with
/// `report-status`, then a pack of exactly `objects` (`git pack-objects` on the list, no
/// walk), from `user`. What receive-pack reported (stdout) and the hooks said (stderr).
fn raw_push(server: &TestServer, user: &str, update: (&str, &str, &str), objects: &[&str]) -> Run {
    let (old, new, name) = update;
    let list: String = objects.iter().map(|id| format!("{id}\n")).collect();
    let pack = raw_git(&server.sandbox, &server.work().dir, &["pack-objects", "--stdout", "-q"], list.as_bytes());
    let mut input = pkt_line(format!("{old} {new} {name}\0report-status\n").as_bytes());
    input.extend_from_slice(b"0000");
    input.extend_from_slice(&pack);
    server.sandbox.git(server.root(), &["receive-pack"]).arg(&server.repo).env("PUSHGATE_USER", user).stdin(input).run()
}

/// The commit, tree and blob ids a commit of `work` consists of (`git ls-tree -r -t`).
fn objects_of(work: &Work, commit: &str) -> Vec<String> {
    let listed = work.git(&["ls-tree", "-r", "-t", "--format=%(objectname)", commit]).ok();
    let tree = work.rev(&format!("{commit}^{{tree}}"));
    [commit.to_string(), tree].into_iter().chain(listed.lines().map(str::to_string)).collect()
}

// ---------------------------------------------------------------------------------------
// 1. The SSH forced command passes no client environment
// ---------------------------------------------------------------------------------------

/// main is protected: alice may do anything, bob may fast-forward it but not force it.
const PROTECTED_MAIN: &str = r#"
[[rule]]
refs = ["refs/**"]
users = ["alice", "bob"]
allow = ["read"]

[[rule]]
refs = ["refs/heads/main"]
users = ["alice"]
allow = ["all"]

[[rule]]
refs = ["refs/heads/main"]
users = ["bob"]
allow = ["create", "update"]
deny = ["force", "delete"]
message = "main is protected"

[[rule]]
refs = ["refs/heads/**"]
users = ["alice", "bob"]
allow = ["all"]
"#;

/// What each attack in the client's environment would turn off on the server: the hooks
/// (`core.hooksPath` through both of git's configuration variables) or pushgate's own
/// decision (claiming to be a chained hook).
const CLIENT_ATTACKS: [&[(&str, &str)]; 2] = [
    &[("GIT_CONFIG_PARAMETERS", "'core.hooksPath'='/nonexistent'")],
    &[("GIT_CONFIG_COUNT", "1"), ("GIT_CONFIG_KEY_0", "core.hooksPath"), ("GIT_CONFIG_VALUE_0", "/nonexistent")],
];

/// A site with app.git whose main alice pushed through the shell, and a work repository
/// whose main is a rewrite of it (pushing it is a force).
fn site_with_rewritten_main() -> (Sandbox, PathBuf, PathBuf, String) {
    let site = Sandbox::new();
    site.configure(PROTECTED_MAIN);
    let repo = site.git_repo("app.git");
    let work = site.git_work("work");
    site.git(&work, &["commit", "--quiet", "--allow-empty", "-m", "Second"]).ok();
    git_over_ssh(&site, &work, "alice", &["push", "--quiet", "host:app.git", "main"]).ok();
    let main = rev(&site, &repo, "main").unwrap();
    site.git(&work, &["commit", "--quiet", "--amend", "--allow-empty", "-m", "Rewritten"]).ok();
    (site, repo, work, main)
}

#[test]
fn git_settings_and_chain_claims_from_the_clients_environment_do_not_switch_the_hooks_off() {
    let (site, repo, work, main) = site_with_rewritten_main();
    let expected =
        ["pushgate: push rejected for bob", "pushgate: refs/heads/main: force denied (rule 3: main is protected)"];

    for attack in CLIENT_ATTACKS {
        let mut push = git_over_ssh(&site, &work, "bob", &["push", "--force", "host:app.git", "main"]);
        for (key, value) in attack {
            push = push.env(key, value);
        }
        let run = push.run();
        assert_eq!(run.code, Some(1), "{attack:?}\n{run}");
        assert_eq!(run.all_pushgate_lines(), expected, "{attack:?}\n{run}");
        assert_eq!(rev(&site, &repo, "main").as_deref(), Some(main.as_str()), "{attack:?}");
    }

    // A chained hook was once told by PUSHGATE_CHAINED_BY=<pid of its parent>: the ssh's
    // own pid (pushgate shell's, after exec) and its parent's are all a client could name.
    for pid in ["$$", "$PPID"] {
        let ssh = site.script(
            "ssh-chained",
            &format!("#!/bin/sh\nPUSHGATE_CHAINED_BY={pid} exec {} \"$@\"\n", shell_quoted(site.ssh())),
        );
        let run = site
            .git(&work, &["push", "--force", "host:app.git", "main"])
            .env("GIT_SSH_COMMAND", &ssh)
            .env("GIT_SSH_VARIANT", "simple")
            .env("SSH_AS", "bob")
            .run();
        assert_eq!(run.code, Some(1), "PUSHGATE_CHAINED_BY={pid}\n{run}");
        assert_eq!(run.all_pushgate_lines(), expected, "{run}");
        assert_eq!(rev(&site, &repo, "main").as_deref(), Some(main.as_str()));
    }

    let run = git_over_ssh(&site, &work, "alice", &["push", "--force", "host:app.git", "main"]).run();
    assert_eq!(run.code, Some(0), "{run}");
    assert_eq!(rev(&site, &repo, "main"), rev(&site, &work, "main"));
}

#[test]
fn a_protocol_v2_fetch_through_the_shell_still_speaks_v2() {
    let (site, _repo, _work, main) = site_with_rewritten_main();
    let clone = site.root.join("fresh");
    site.git(&site.root, &["init", "--quiet", "fresh"]).ok();

    // The "ssh" variant is the one git sends GIT_PROTOCOL to (`-o SendEnv=GIT_PROTOCOL`).
    let run = git_over_ssh(&site, &clone, "bob", &["-c", "protocol.version=2", "fetch", "host:app.git", "main"])
        .env("GIT_SSH_VARIANT", "ssh")
        .env("GIT_TRACE_PACKET", "1")
        .run();
    assert_eq!(run.code, Some(0), "{run}");
    assert!(run.stderr.lines().any(|l| l.contains("< version 2")), "not protocol v2\n{run}");
    assert_eq!(rev(&site, &clone, "FETCH_HEAD"), Some(main));
}

/// A path for sshd: its own binary, if this machine has one.
fn sshd() -> Option<PathBuf> {
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|path| std::env::split_paths(&path).collect::<Vec<_>>())
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/usr/local/sbin")])
        .map(|dir| dir.join("sshd"))
        .find(|path| path.is_file())
}

/// `ssh-keygen` a new ed25519 key pair in `dir`: the public key's line.
fn keygen(dir: &Path, name: &str) -> String {
    let key = dir.join(name);
    let run = std::process::Command::new("ssh-keygen")
        .args(["-t", "ed25519", "-N", "", "-q", "-C", name, "-f"])
        .arg(&key)
        .output()
        .unwrap();
    assert!(run.status.success(), "ssh-keygen failed: {}", String::from_utf8_lossy(&run.stderr));
    std::fs::read_to_string(key.with_extension("pub")).unwrap().trim().to_string()
}

/// A real sshd on 127.0.0.1 that accepts every variable a client sends (`AcceptEnv *`);
/// killed when dropped.
struct Sshd {
    child: std::process::Child,
    port: u16,
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Sshd {
    fn start(site: &Sandbox, binary: &Path, authorized_keys: &Path) -> Result<Sshd, String> {
        let dir = site.root.join("sshd");
        std::fs::create_dir_all(&dir).unwrap();
        keygen(&dir, "host_key");
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let config = dir.join("sshd_config");
        std::fs::write(
            &config,
            format!(
                "ListenAddress 127.0.0.1:{port}\nHostKey {}\nAuthorizedKeysFile {}\nPidFile none\n\
                 StrictModes no\nUsePAM no\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n\
                 PubkeyAuthentication yes\nPermitRootLogin yes\nAllowTcpForwarding no\nPrintMotd no\n\
                 PermitUserEnvironment no\nAcceptEnv *\nLogLevel ERROR\n",
                dir.join("host_key").display(),
                authorized_keys.display(),
            ),
        )
        .unwrap();
        let child = std::process::Command::new(binary)
            .args(["-D", "-e", "-f"])
            .arg(&config)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(dir.join("log")).unwrap())
            .spawn()
            .unwrap();
        let mut sshd = Sshd { child, port };
        let log = || std::fs::read_to_string(dir.join("log")).unwrap_or_default();
        // Nothing to wait on but the port opening: poll it against a deadline.
        let deadline = std::time::Instant::now() + WAIT;
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if sshd.child.try_wait().unwrap().is_some() {
                return Err(log());
            }
            assert!(std::time::Instant::now() < deadline, "sshd did not start: {}", log());
            std::thread::park_timeout(std::time::Duration::from_millis(20));
        }
        Ok(sshd)
    }
}

#[test]
fn a_real_sshd_accepting_every_variable_still_cannot_switch_the_hooks_off() {
    let Some(binary) = sshd() else {
        println!("note: no sshd on this machine (PATH, /usr/sbin): the real-sshd test is skipped");
        return;
    };
    let (site, repo, work, main) = site_with_rewritten_main();
    let keys = site.root.join("keys");
    std::fs::create_dir(&keys).unwrap();
    keygen(&keys, "alice");
    keygen(&keys, "bob");
    // A key whose forced command writes down the environment sshd gives it: the attack
    // does reach the forced command.
    let probe_dir = site.root.join("probe");
    std::fs::create_dir(&probe_dir).unwrap();
    let probe = keygen(&probe_dir, "probe");
    let seen = site.root.join("probe.env");
    let lines = site.pushgate(&["keys", "--config"]).arg(&site.config).arg(&keys).ok();
    let authorized_keys = site.root.join("authorized_keys");
    std::fs::write(&authorized_keys, format!("{lines}\ncommand=\"env > {}\" {probe}\n", seen.display())).unwrap();
    let sshd = match Sshd::start(&site, &binary, &authorized_keys) {
        Ok(sshd) => sshd,
        Err(log) if log.to_lowercase().contains("privilege separation") => {
            println!("note: sshd cannot run here ({}): the real-sshd test is skipped", log.trim());
            return;
        }
        Err(log) => panic!("sshd exited: {log}"),
    };

    let me = site.command("id").arg("-un").ok();
    let known_hosts = site.root.join("known_hosts");
    let set_env = "SetEnv=\"GIT_CONFIG_PARAMETERS='core.hooksPath'='/nonexistent'\"";
    let ssh_with = |key: &Path| {
        format!(
            "ssh -F /dev/null -p {} -i {} -o IdentitiesOnly=yes -o BatchMode=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile={} -o {}",
            sshd.port,
            shell_quoted(key),
            shell_quoted(&known_hosts),
            shell_quoted(set_env),
        )
    };
    let run =
        site.command("sh").args(["-c", &format!("{} {me}@127.0.0.1 x", ssh_with(&probe_dir.join("probe")))]).run();
    assert_eq!(run.code, Some(0), "{run}");
    let env = std::fs::read_to_string(&seen).unwrap();
    assert!(
        env.lines().any(|l| l == "GIT_CONFIG_PARAMETERS='core.hooksPath'='/nonexistent'"),
        "sshd did not pass the variable on: the attack is not tried\n{env}"
    );

    let url = format!("{me}@127.0.0.1:app.git");
    let push = |key: &str| {
        site.git(&work, &["push", "--force", &url, "main"]).env("GIT_SSH_COMMAND", ssh_with(&keys.join(key))).run()
    };
    let run = push("bob");
    assert_eq!(run.code, Some(1), "{run}");
    assert_eq!(
        run.all_pushgate_lines(),
        ["pushgate: push rejected for bob", "pushgate: refs/heads/main: force denied (rule 3: main is protected)"],
        "{run}"
    );
    assert_eq!(rev(&site, &repo, "main"), Some(main));

    let run = push("alice");
    assert_eq!(run.code, Some(0), "{run}");
    assert_eq!(rev(&site, &repo, "main"), rev(&site, &work, "main"));
    drop(sshd);
}

// ---------------------------------------------------------------------------------------
// 2. Every commit is judged for every ref it lands on
// ---------------------------------------------------------------------------------------

/// Only maintainers touch deploy/** on main; any branch or tag is open otherwise.
const DEPLOY_ON_MAIN: &str = r#"
[groups]
maintainers = ["alice"]

[[rule]]
refs = ["refs/heads/main"]
paths = ["deploy/**"]
users = ["@maintainers"]
allow = ["create", "update", "force"]

[[rule]]
refs = ["refs/heads/main"]
paths = ["deploy/**"]
users = ["*"]
deny = ["create", "update", "force"]

[[rule]]
refs = ["refs/heads/**", "refs/tags/**"]
users = ["*"]
allow = ["all"]
"#;

#[test]
fn a_deploy_change_pushed_as_a_tag_meets_mains_path_rule_when_main_moves_onto_it() {
    let server = TestServer::new().config(DEPLOY_ON_MAIN).install(&[]);
    server.work().commit(&[("README.md", "# app\n")]);
    server.push_as("alice", &["origin", "HEAD:refs/heads/main"]).assert_accepted();
    let main = server.ref_target("refs/heads/main");
    let deploy = server.work().commit(&[("deploy/prod.yml", "replicas: 3\n")]);

    server.push_as("bob", &["origin", "HEAD:refs/tags/v1"]).assert_accepted();
    assert_eq!(server.ref_target("refs/tags/v1").as_deref(), Some(deploy.as_str()));

    let pushed = server.push_as("bob", &["origin", "HEAD:refs/heads/main"]);
    pushed.assert_rejected();
    assert_eq!(
        pushed.pushgate_lines(),
        ["pushgate: push rejected for bob", "pushgate: refs/heads/main: deploy/prod.yml: update denied (rule 2)"]
    );
    assert_eq!(server.ref_target("refs/heads/main"), main);

    server.push_as("alice", &["origin", "HEAD:refs/heads/main"]).assert_accepted();
    assert_eq!(server.ref_target("refs/heads/main"), Some(deploy));
}

/// Commit `message` (no file change) in `work`.
fn commit_message(work: &Work, message: &str) -> String {
    work.git(&["commit", "--quiet", "--allow-empty", "-m", message]).ok();
    work.head()
}

#[test]
fn a_wip_commit_pushed_to_a_topic_meets_mains_message_check_when_main_moves_onto_it() {
    let config = format!("{ALLOW_ALL}\n[[check]]\nrefs = [\"refs/heads/main\"]\ncommit_message = \"^(feat|fix): \"\n");
    let server = TestServer::new().config(&config).install(&[]);
    commit_message(server.work(), "feat: start");
    server.push_as("bob", &["origin", "HEAD:refs/heads/main"]).assert_accepted();
    let main = server.ref_target("refs/heads/main");
    let wip = commit_message(server.work(), "wip");

    server.push_as("bob", &["origin", "HEAD:refs/heads/topic"]).assert_accepted();
    let pushed = server.push_as("bob", &["origin", "HEAD:refs/heads/main"]);

    pushed.assert_rejected();
    assert_eq!(
        pushed.pushgate_lines(),
        [
            "pushgate: push rejected for bob".to_string(),
            format!(
                "pushgate: refs/heads/main: {} \"wip\": message does not match \"^(feat|fix): \" (check 1)",
                short(&wip)
            ),
        ]
    );
    assert_eq!(server.ref_target("refs/heads/main"), main);

    // A commit that follows the convention goes the same way and lands.
    server.work().branch("fixed", main.as_deref().unwrap());
    let fixed = commit_message(server.work(), "fix: the real change");
    server.push_as("bob", &["--force", "origin", "HEAD:refs/heads/topic"]).assert_accepted();
    server.push_as("bob", &["origin", "HEAD:refs/heads/main"]).assert_accepted();
    assert_eq!(server.ref_target("refs/heads/main"), Some(fixed));
}

#[test]
fn an_unsigned_commit_pushed_to_a_topic_meets_mains_signature_check_when_main_moves_onto_it() {
    let config = format!("{ALLOW_ALL}\n[[check]]\nrefs = [\"refs/heads/main\"]\nrequire_signed = true\n");
    let server = TestServer::new().config(&config).install(&[]);
    let work = server.work();
    let key = server.root().join("signing-key");
    let keygen =
        std::process::Command::new("ssh-keygen").args(["-q", "-t", "ed25519", "-N", "", "-f"]).arg(&key).status();
    assert!(keygen.is_ok_and(|s| s.success()), "ssh-keygen failed");
    work.git(&["config", "gpg.format", "ssh"]).ok();
    work.git(&["config", "user.signingkey", key.to_str().unwrap()]).ok();
    work.git(&["commit", "--quiet", "--allow-empty", "-S", "-m", "signed start"]).ok();
    server.push_as("bob", &["origin", "HEAD:refs/heads/main"]).assert_accepted();
    let main = server.ref_target("refs/heads/main");
    let unsigned = commit_message(work, "wip");

    server.push_as("bob", &["origin", "HEAD:refs/heads/topic"]).assert_accepted();
    let pushed = server.push_as("bob", &["origin", "HEAD:refs/heads/main"]);

    pushed.assert_rejected();
    assert_eq!(
        pushed.pushgate_lines(),
        [
            "pushgate: push rejected for bob".to_string(),
            format!(
                "pushgate: refs/heads/main: {} \"wip\": is not signed (require_signed; signatures are not verified) (check 1)",
                short(&unsigned)
            ),
        ]
    );
    assert_eq!(server.ref_target("refs/heads/main"), main);

    work.git(&["commit", "--quiet", "--amend", "--allow-empty", "-S", "-m", "signed wip"]).ok();
    server.push_as("bob", &["--force", "origin", "HEAD:refs/heads/topic"]).assert_accepted();
    server.push_as("bob", &["origin", "HEAD:refs/heads/main"]).assert_accepted();
    assert_eq!(server.ref_target("refs/heads/main"), Some(work.head()));
}

/// A server with `rules`, a spool, and a `post` HTTP extension to `receiver`.
fn server_telling(receiver: &Receiver, rules: &str, extra: &str) -> TestServer {
    let server = TestServer::new();
    let config =
        format!("{}{rules}{}", spool_table(&server, &["50ms"]), post_http("ci", &receiver.url("/hook"), extra));
    server.config(&config).install(&[])
}

/// The `(id, distinct)` of each commit of an event's change.
fn commits_of(change: &serde_json::Value) -> Vec<(String, bool)> {
    change["commits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["id"].as_str().unwrap().to_string(), c["distinct"].as_bool().unwrap()))
        .collect()
}

#[test]
fn a_new_branch_at_a_commit_main_has_brings_no_commits() {
    let receiver = Receiver::ok();
    let rules = "[[rule]]\nrefs = [\"refs/heads/**\"]\npaths = [\"deploy/**\"]\nusers = [\"bob\"]\ndeny = [\"all\"]\n\
                 [[rule]]\nrefs = [\"refs/heads/**\"]\nusers = [\"*\"]\nallow = [\"all\"]\n";
    let server = server_telling(&receiver, rules, "");
    let tip = server.work().commit(&[("deploy/prod.yml", "replicas: 1\n")]);
    server.push_as("alice", &["origin", "HEAD:refs/heads/main"]).assert_accepted();
    assert_eq!(receiver.next().json()["changes"][0]["commits"].as_array().unwrap().len(), 1);

    let pushed = server.push_as("bob", &["origin", "HEAD:refs/heads/copy"]);

    pushed.assert_accepted();
    assert_eq!(pushed.pushgate_lines(), Vec::<String>::new());
    assert_eq!(server.ref_target("refs/heads/copy").as_deref(), Some(tip.as_str()));
    let event = receiver.next().json();
    assert_eq!(changes(&event), [("refs/heads/copy".to_string(), "create".to_string())]);
    assert_eq!(event["changes"][0]["commits"], serde_json::json!([]));
    assert_eq!(event["changes"][0]["after"], tip.as_str());
}

#[test]
fn events_list_a_commit_for_each_ref_it_lands_on_and_say_whether_it_is_new() {
    let receiver = Receiver::ok();
    let server = server_telling(&receiver, ALLOW_ALL, "");
    server.work().commit(&[("README.md", "# app\n")]);
    server.push_as("alice", &["origin", "HEAD:refs/heads/main"]).assert_accepted();
    receiver.next();
    let x = server.work().commit(&[("src/x.rs", "// x\n")]);

    server.push_as("alice", &["origin", "HEAD:refs/heads/topic"]).assert_accepted();
    let topic = receiver.next().json();
    server.push_as("alice", &["origin", "HEAD:refs/heads/main"]).assert_accepted();
    let main = receiver.next().json();

    assert_eq!(changes(&topic), [("refs/heads/topic".to_string(), "create".to_string())]);
    assert_eq!(commits_of(&topic["changes"][0]), [(x.clone(), true)]);
    assert_eq!(changes(&main), [("refs/heads/main".to_string(), "update".to_string())]);
    assert_eq!(commits_of(&main["changes"][0]), [(x, false)]);
    server.sandbox.wait_for_detached_deliverers();
    receiver.assert_no_more();
}

// ---------------------------------------------------------------------------------------
// Mercurial fixtures
// ---------------------------------------------------------------------------------------

/// A Mercurial server `<repos_root>/app` with pushgate's hooks, and a client that pushes to
/// it. Both hold "Start" (files `a` and `b`); `bookmarks` are set on it before the server
/// is cloned.
struct Hg {
    site: Sandbox,
    server: PathBuf,
    client: PathBuf,
}

impl Hg {
    fn new(config: &str, bookmarks: &[&str]) -> Hg {
        let site = Sandbox::new();
        site.configure(config);
        let client = site.root.join("client");
        site.hg(&site.root, &["init", "client"]).ok();
        write_files(&client, &[("a", "a\n"), ("b", "b\n")]);
        site.hg(&client, &["commit", "-q", "-A", "-m", "Start"]).ok();
        for bookmark in bookmarks {
            // With -r, the bookmark is not made active: later commits do not move it.
            site.hg(&client, &["bookmark", "-r", "0", bookmark]).ok();
        }
        let server = site.repos.join("app");
        site.hg(&site.root, &["clone", "-q", "-U"]).arg(&client).arg(&server).ok();
        site.pushgate(&["install", "--hg"]).arg(&server).ok();
        Hg { site, server, client }
    }

    fn hg(&self, args: &[&str]) -> Invocation {
        self.site.hg(&self.client, args)
    }

    fn commit(&self, files: &[(&str, &str)], message: &str) {
        write_files(&self.client, files);
        self.hg(&["commit", "-q", "-A", "-m", message]).ok();
    }

    fn push_as(&self, user: &str, args: &[&str]) -> Run {
        self.hg(&["push"]).args(args).arg(&self.server).env("PUSHGATE_USER", user).run()
    }

    fn server_state(&self) -> String {
        self.site.hg(&self.server, &["log", "--hidden", "-T", "{node} {branch} [{bookmarks}] [{tags}] {phase}\n"]).ok()
    }

    /// The changeset `revset` names on the server.
    fn server_node(&self, revset: &str) -> String {
        self.site.hg(&self.server, &["log", "-r", revset, "-T", "{node}"]).ok()
    }

    fn client_node(&self, revset: &str) -> String {
        self.hg(&["log", "-r", revset, "-T", "{node}"]).ok()
    }
}

fn write_files(dir: &Path, files: &[(&str, &str)]) {
    for (path, contents) in files {
        let path = dir.join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, contents).unwrap();
    }
}

/// hg refused the push (exit 255) with pushgate's `reasons`, and the server is unchanged.
#[track_caller]
fn assert_hg_refused(hg: &Hg, run: &Run, before: &str, reasons: &[&str]) {
    assert_eq!(run.code, Some(255), "the push was expected to be rejected\n{run}");
    assert_eq!(run.all_pushgate_lines(), reasons, "{run}");
    assert_eq!(hg.server_state(), before, "a rejected push changed the server\n{run}");
}

#[test]
fn a_deploy_changeset_under_a_feature_bookmark_meets_stables_path_rule_when_stable_moves_onto_it() {
    let config = "[[rule]]\nrefs = [\"refs/bookmarks/stable\"]\npaths = [\"deploy/**\"]\nusers = [\"bob\"]\n\
                  deny = [\"create\", \"update\", \"force\"]\n\
                  [[rule]]\nrefs = [\"refs/**\"]\nusers = [\"*\"]\nallow = [\"all\"]\n";
    let hg = Hg::new(config, &["stable"]);
    let start = hg.server_node("stable");
    hg.hg(&["bookmark", "feature"]).ok();
    hg.commit(&[("deploy/prod.yml", "replicas: 3\n")], "Deploy");
    let deploy = hg.client_node("feature");

    hg.push_as("bob", &["-B", "feature"]).assert_accepted();
    assert_eq!(hg.server_node("feature"), deploy);
    let before = hg.server_state();

    hg.hg(&["bookmark", "-f", "-r", "feature", "stable"]).ok();
    let run = hg.push_as("bob", &["-B", "stable"]);
    assert_hg_refused(
        &hg,
        &run,
        &before,
        &[
            "pushgate: push rejected for bob",
            "pushgate: refs/bookmarks/stable: deploy/prod.yml: update denied (rule 1)",
        ],
    );
    assert_eq!(hg.server_node("stable"), start);

    // `hg push -B` exits 1 when no changesets were pushed, even though the bookmark moved.
    hg.push_as("alice", &["-B", "stable"]).assert_code(1);
    assert_eq!(hg.server_node("stable"), deploy);
}

// ---------------------------------------------------------------------------------------
// 3. Symbolic refs
// ---------------------------------------------------------------------------------------

const SYMREF_RULES: &str = r#"
[[rule]]
refs = ["refs/heads/main"]
users = ["alice"]
allow = ["all"]

[[rule]]
refs = ["refs/heads/main"]
users = ["*"]
allow = ["create", "update"]
deny = ["force", "delete"]
message = "main is protected"

[[rule]]
refs = ["refs/heads/release"]
users = ["bob"]
deny = ["create"]

[[rule]]
refs = ["refs/heads/**"]
users = ["*"]
allow = ["all"]
"#;

#[test]
fn a_force_push_through_a_chain_of_symbolic_refs_meets_mains_rules() {
    let server = TestServer::new().config(SYMREF_RULES).install(&[]);
    server.work().commit(&[("README.md", "# app\n")]);
    server.work().commit(&[("src/a.rs", "// a\n")]);
    server.push_as("alice", &["origin", "HEAD:refs/heads/main"]).assert_accepted();
    let main = server.ref_target("refs/heads/main");
    server.git(&["symbolic-ref", "refs/heads/alias", "refs/heads/main"]).ok();
    server.git(&["symbolic-ref", "refs/heads/alias2", "refs/heads/alias"]).ok();
    server.work().git(&["commit", "--quiet", "--amend", "-m", "Rewritten"]).ok();

    let pushed = server.push_as("bob", &["--force", "origin", "HEAD:refs/heads/alias2"]);

    pushed.assert_rejected();
    assert!(
        pushed.pushgate_lines().contains(&"pushgate: refs/heads/main: force denied (rule 2: main is protected)".into()),
        "{pushed}"
    );
    assert_eq!(server.ref_target("refs/heads/main"), main);

    server.push_as("alice", &["--force", "origin", "HEAD:refs/heads/alias2"]).assert_accepted();
    assert_eq!(server.ref_target("refs/heads/main"), Some(server.work().head()));
    assert_eq!(server.git(&["symbolic-ref", "--no-recurse", "refs/heads/alias2"]).ok(), "refs/heads/alias");
}

#[test]
fn a_push_to_a_dangling_symbolic_ref_meets_the_rules_of_the_ref_it_would_create() {
    let server = TestServer::new().config(SYMREF_RULES).install(&[]);
    server.work().commit(&[("README.md", "# app\n")]);
    server.push_as("alice", &["origin", "HEAD:refs/heads/main"]).assert_accepted();
    server.git(&["symbolic-ref", "refs/heads/dangling", "refs/heads/release"]).ok();
    server.work().commit(&[("src/a.rs", "// a\n")]);

    let pushed = server.push_as("bob", &["origin", "HEAD:refs/heads/dangling"]);

    pushed.assert_rejected();
    assert!(
        pushed.pushgate_lines().contains(&"pushgate: refs/heads/release: create denied (rule 3)".into()),
        "{pushed}"
    );
    assert_eq!(server.ref_target("refs/heads/release"), None);
    assert_ne!(server.git(&["rev-parse", "--verify", "--quiet", "refs/heads/release"]).run().code, Some(0));

    server.push_as("alice", &["origin", "HEAD:refs/heads/dangling"]).assert_accepted();
    assert_eq!(server.ref_target("refs/heads/release"), Some(server.work().head()));
}

// ---------------------------------------------------------------------------------------
// 4. Size limits cannot be smuggled
// ---------------------------------------------------------------------------------------

const ONE_KIB: &str = "[limits]\nmax_blob_size = \"1 KiB\"\n\n[[rule]]\nusers = [\"*\"]\nallow = [\"all\"]\n";

#[test]
fn an_unreferenced_big_blob_in_a_hand_made_pack_rejects_the_push() {
    let server = TestServer::new().config(ONE_KIB).install(&[]);
    let work = server.work();
    let _base = work.commit(&[("README.md", "# app\n")]);
    server.push_as("alice", &["origin", "HEAD:refs/heads/main"]).assert_accepted();
    let small = work.commit(&[("small.txt", "small\n")]);
    std::fs::write(work.dir.join("hidden.bin"), big()).unwrap();
    let blob = work.git(&["hash-object", "-w", "hidden.bin"]).ok();
    std::fs::remove_file(work.dir.join("hidden.bin")).unwrap();
    let commit_objects = objects_of(work, &small);
    let mut with_blob: Vec<&str> = commit_objects.iter().map(String::as_str).collect();
    with_blob.push(&blob);

    let run = raw_push(&server, "bob", (ZERO, &small, "refs/heads/topic"), &with_blob);

    assert!(run.stdout.contains("unpack ok"), "{run}");
    assert!(run.stdout.contains("ng refs/heads/topic pre-receive hook declined"), "{run}");
    assert!(
        run.all_pushgate_lines()
            .contains(&format!("pushgate: pushed pack: blob {} (195.0 KiB) exceeds max_blob_size 1 KiB", short(&blob))),
        "{run}"
    );
    assert_eq!(server.ref_target("refs/heads/topic"), None);

    let without: Vec<&str> = commit_objects.iter().map(String::as_str).collect();
    let run = raw_push(&server, "bob", (ZERO, &small, "refs/heads/topic"), &without);
    assert!(run.stdout.contains("ok refs/heads/topic"), "{run}");
    assert_eq!(run.all_pushgate_lines(), Vec::<String>::new(), "{run}");
    assert_eq!(server.ref_target("refs/heads/topic"), Some(small));
}

#[test]
fn a_big_blob_the_server_already_has_cannot_be_added_again_under_a_new_name() {
    let server = TestServer::new().config(ALLOW_ALL).install(&[]);
    let work = server.work();
    let c0 = work.commit(&[("README.md", "# app\n")]);
    work.commit_bytes(&[("big.bin", &big())]);
    server.push_as("alice", &["origin", "HEAD:refs/heads/main"]).assert_accepted();
    // The limit comes after the file did.
    std::fs::write(server.config_path(), ONE_KIB).unwrap();

    let copy = work.commit_bytes(&[("copy.bin", &big())]);
    let pushed = server.push_as("bob", &["origin", "HEAD:refs/heads/main"]);
    pushed.assert_rejected();
    assert_eq!(
        pushed.pushgate_lines(),
        [
            "pushgate: push rejected for bob".to_string(),
            format!("pushgate: refs/heads/main: copy.bin (195.0 KiB) in {} exceeds max_blob_size 1 KiB", short(&copy)),
        ]
    );
    work.git(&["reset", "--quiet", "--hard", "HEAD~1"]).ok();

    work.git(&["mv", "big.bin", "renamed.bin"]).ok();
    work.git(&["commit", "--quiet", "-m", "Rename it"]).ok();
    let pushed = server.push_as("bob", &["origin", "HEAD:refs/heads/main"]);
    pushed.assert_accepted();
    assert_eq!(pushed.pushgate_lines(), Vec::<String>::new());

    std::fs::set_permissions(work.dir.join("renamed.bin"), std::os::unix::fs::PermissionsExt::from_mode(0o755))
        .unwrap();
    work.git(&["commit", "--quiet", "-a", "-m", "Make it executable"]).ok();
    server.push_as("bob", &["origin", "HEAD:refs/heads/main"]).assert_accepted();
    let main = work.head();

    // topic forked before big.bin; merging main into it takes renamed.bin from main.
    work.branch("topic", &c0);
    work.commit(&[("src/x.rs", "// x\n")]);
    work.git(&["merge", "--quiet", "--no-ff", "-m", "Merge main", "main"]).ok();
    let merge = work.head();
    assert_eq!(work.rev("HEAD^2"), main);
    let pushed = server.push_as("bob", &["origin", "HEAD:refs/heads/main"]);
    pushed.assert_accepted();
    assert_eq!(pushed.pushgate_lines(), Vec::<String>::new());
    assert_eq!(server.ref_target("refs/heads/main"), Some(merge));
}

// ---------------------------------------------------------------------------------------
// 5. Tree entries git's fsck refuses
// ---------------------------------------------------------------------------------------

/// A tree written as raw bytes, whatever its entries' names: `(mode, name, id)`.
fn raw_tree(work: &Work, entries: &[(&str, &[u8], &str)]) -> String {
    let mut bytes = Vec::new();
    for (mode, name, id) in entries {
        bytes.extend_from_slice(mode.as_bytes());
        bytes.push(b' ');
        bytes.extend_from_slice(name);
        bytes.push(0);
        let raw: Vec<u8> = (0..id.len()).step_by(2).map(|i| u8::from_str_radix(&id[i..i + 2], 16).unwrap()).collect();
        bytes.extend_from_slice(&raw);
    }
    work.git(&["hash-object", "-w", "-t", "tree", "--literally", "--stdin"]).stdin(bytes).ok()
}

/// A commit of `tree` on `parent`.
fn commit_tree(work: &Work, tree: &str, parent: &str, message: &str) -> String {
    work.git(&["commit-tree", tree, "-p", parent, "-m", message]).ok()
}

const NO_DEPLOY_FOR_BOB: &str = r#"
[[rule]]
paths = ["deploy/**"]
users = ["bob"]
deny = ["create", "update", "force"]

[[rule]]
users = ["*"]
allow = ["all"]
"#;

/// The line that names a refused entry.
fn refused_line(name: &str, commit: &str, entry: &str) -> String {
    format!(
        "pushgate: {name}: {} writes the tree entry {entry}, which git refuses (`.`, `..`, `.git`, empty or with `/`)",
        short(commit)
    )
}

#[test]
fn a_dot_entry_hiding_deploy_from_the_path_rules_rejects_the_push() {
    let server = TestServer::new().config(NO_DEPLOY_FOR_BOB).install(&[]);
    let work = server.work();
    let base = work.commit(&[("README.md", "# app\n")]);
    server.push_as("alice", &["origin", "HEAD:refs/heads/main"]).assert_accepted();
    let readme = work.rev("HEAD:README.md");
    let prod = work.git(&["hash-object", "-w", "--stdin"]).stdin("replicas: 3\n").ok();
    let deploy = raw_tree(work, &[("100644", b"prod.yml", &prod)]);
    let holder = raw_tree(work, &[("40000", b"deploy", &deploy)]);
    let root = raw_tree(work, &[("40000", b".", &holder), ("100644", b"README.md", &readme)]);
    let commit = commit_tree(work, &root, &base, "Deploy, hidden");

    let pushed = server.push_as("bob", &["origin", &format!("{commit}:refs/heads/main")]);

    pushed.assert_rejected();
    let lines = pushed.pushgate_lines();
    assert_eq!(lines[0], "pushgate: push rejected for bob", "{pushed}");
    assert!(lines.contains(&refused_line("refs/heads/main", &commit, "\".\"")), "{pushed}");
    assert_eq!(server.ref_target("refs/heads/main").as_deref(), Some(base.as_str()));

    // The same file where it belongs is bob's to touch only outside deploy/.
    work.git(&["checkout", "--quiet", "main"]).ok();
    let ci = work.commit(&[(".github/workflows/ci.yml", "on: push\n"), (".gitignore", "target/\n")]);
    let pushed = server.push_as("bob", &["origin", "HEAD:refs/heads/main"]);
    pushed.assert_accepted();
    assert_eq!(pushed.pushgate_lines(), Vec::<String>::new());
    assert_eq!(server.ref_target("refs/heads/main"), Some(ci));
}

#[test]
fn dot_dot_dot_git_empty_and_slashed_entries_reject_the_push() {
    let server = TestServer::new().config(NO_DEPLOY_FOR_BOB).install(&[]);
    let work = server.work();
    let base = work.commit(&[("README.md", "# app\n")]);
    server.push_as("alice", &["origin", "HEAD:refs/heads/main"]).assert_accepted();
    let readme = work.rev("HEAD:README.md");
    let blob = work.git(&["hash-object", "-w", "--stdin"]).stdin("x\n").ok();
    let inner = raw_tree(work, &[("100644", b"config", &blob)]);

    let cases: [(&[u8], &str, &str); 5] = [
        (b"..", "40000", "\"..\""),
        (b".GIT", "40000", "\".GIT\""),
        (b".gIt", "40000", "\".gIt\""),
        (b"src/x.rs", "100644", "\"src/x.rs\""),
        (b"", "100644", "\"\""),
    ];
    for (name, mode, shown) in cases {
        let id = if mode == "40000" { inner.as_str() } else { blob.as_str() };
        let root = raw_tree(work, &[("100644", b"README.md", &readme), (mode, name, id)]);
        let commit = commit_tree(work, &root, &base, "Odd entry");
        let objects: Vec<String> = [commit.clone(), root, readme.clone(), blob.clone(), inner.clone()].into();
        let objects: Vec<&str> = objects.iter().map(String::as_str).collect();

        // Spoken to receive-pack directly: a client's own walk may refuse to send some.
        let run = raw_push(&server, "bob", (&base, &commit, "refs/heads/main"), &objects);

        assert!(run.stdout.contains("ng refs/heads/main"), "{shown}\n{run}");
        assert_eq!(server.ref_target("refs/heads/main").as_deref(), Some(base.as_str()), "{shown}\n{run}");
        // (git's own connectivity check complains of the empty name too, and goes on.)
        assert!(run.all_pushgate_lines().contains(&refused_line("refs/heads/main", &commit, shown)), "{shown}\n{run}");
    }
}

// ---------------------------------------------------------------------------------------
// 6. Mercurial heads and names
// ---------------------------------------------------------------------------------------

/// `default` may be updated by bob, not forced; alice may do anything.
const HG_DEFAULT_PROTECTED: &str = r#"
[[rule]]
refs = ["refs/heads/default"]
users = ["alice"]
allow = ["all"]

[[rule]]
refs = ["refs/heads/default"]
users = ["bob"]
allow = ["create", "update", "read"]
deny = ["force", "delete"]
message = "default is protected"

[[rule]]
refs = ["refs/**"]
users = ["alice"]
allow = ["all"]
"#;

#[test]
fn a_new_head_that_closes_the_old_one_in_the_same_push_is_a_force() {
    let hg = Hg::new(HG_DEFAULT_PROTECTED, &[]);
    hg.commit(&[("a", "a2\n")], "Second");
    hg.push_as("bob", &[]).assert_accepted();
    let before = hg.server_state();

    hg.hg(&["update", "-q", "-r", "0"]).ok();
    hg.commit(&[("side", "side\n")], "New head");
    hg.hg(&["update", "-q", "-r", "1"]).ok();
    hg.hg(&["commit", "-q", "--close-branch", "-m", "Close the old head"]).ok();

    let run = hg.push_as("bob", &["-f"]);
    assert_hg_refused(
        &hg,
        &run,
        &before,
        &[
            "pushgate: push rejected for bob",
            "pushgate: refs/heads/default: force denied (rule 2: default is protected)",
        ],
    );

    hg.push_as("alice", &["-f"]).assert_accepted();
    assert_eq!(hg.server_state().lines().count(), 4);
    assert_eq!(hg.site.decision(2), (vec![("refs/heads/default".to_string(), "force".to_string())], "accepted".into()));
}

#[test]
fn a_branch_name_that_is_no_ref_name_refuses_the_push() {
    let hg = Hg::new(HG_DEFAULT_PROTECTED, &[]);
    let before = hg.server_state();
    hg.hg(&["branch", "-q", "x/../default"]).ok();
    hg.commit(&[("x", "x\n")], "Sneaky branch");

    let run = hg.push_as("alice", &["--new-branch"]);

    assert_eq!(run.code, Some(255), "{run}");
    let lines = run.all_pushgate_lines();
    assert!(lines.iter().any(|l| l.contains("x/../default") && l.contains("not a valid ref name")), "{run}");
    assert_eq!(hg.server_state(), before);

    hg.hg(&["update", "-q", "-r", "0"]).ok();
    hg.hg(&["branch", "-q", "-f", "x/default"]).ok();
    hg.commit(&[("y", "y\n")], "Plain branch");
    hg.push_as("alice", &["--new-branch", "-b", "x/default"]).assert_accepted();
}

// ---------------------------------------------------------------------------------------
// 7. Privacy: private files, clean environments
// ---------------------------------------------------------------------------------------

/// Every directory under `dir`, itself included.
fn dirs_under(dir: &Path) -> Vec<PathBuf> {
    let mut found = vec![dir.to_path_buf()];
    let mut next = vec![dir.to_path_buf()];
    while let Some(dir) = next.pop() {
        for entry in std::fs::read_dir(&dir).unwrap().flatten() {
            if entry.file_type().unwrap().is_dir() {
                found.push(entry.path());
                next.push(entry.path());
            }
        }
    }
    found
}

fn mode(path: &Path) -> u32 {
    std::fs::symlink_metadata(path).unwrap().mode() & 0o7777
}

#[test]
fn spool_log_and_audit_files_are_private() {
    let (gone, fine) = (Receiver::always(Answer::status(410)), Receiver::ok());
    let server = TestServer::new();
    let audit = server.root().join("logs/audit.jsonl");
    let config = format!(
        "{}{ALLOW_ALL}\n[audit]\nfile = {}\n{}{}\n{}",
        spool_table(&server, &["50ms"]),
        quoted(&audit),
        post_http("gone", &gone.url("/hook"), ""),
        post_http("fine", &fine.url("/hook"), ""),
        "[[extension]]\nname = \"refusing\"\ntype = \"script\"\nphase = \"post\"\ncommand = [\"/bin/sh\", \"-c\", \"exit 3\"]\n",
    );
    let server = server.config(&config).install(&[]);
    server.work().commit(&[("README.md", "# app\n")]);
    for target in ["HEAD:refs/heads/main", "HEAD:refs/heads/other"] {
        server.push_as("alice", &["origin", target]).assert_accepted();
        server.sandbox.wait_for_detached_deliverers();
    }
    deliver_once(&server);
    // Delivered, dead-lettered (refused, gone), disabled, waiting: every kind of file.
    let gone = connector_status(&server, "gone");
    assert_eq!(
        (gone["pending"].as_u64(), gone["dead"].as_u64(), gone["disabled"].as_bool()),
        (Some(1), Some(1), Some(true)),
        "{gone}"
    );
    assert_eq!(connector_status(&server, "refusing")["dead"], 2);
    assert_eq!(connector_status(&server, "fine")["pending"], 0);
    assert_eq!(fine.drain().len(), 2);

    let (mut dirs, mut files) = (dirs_under(&spool_dir(&server)), files_under(&spool_dir(&server)));
    dirs.push(audit.parent().unwrap().to_path_buf());
    files.push(audit);
    let wrong: Vec<String> = (dirs.iter().map(|d| (d, 0o700)))
        .chain(files.iter().map(|f| (f, 0o600)))
        .filter(|(path, expected)| mode(path) != *expected)
        .map(|(path, expected)| format!("{} is {:o}, not {expected:o}", path.display(), mode(path)))
        .collect();
    assert_eq!(wrong, Vec::<String>::new(), "of {dirs:#?} and {files:#?}");
}

#[test]
fn a_post_script_sees_only_its_own_variables_and_no_other_extensions_secret() {
    let receiver = Receiver::ok();
    let server = TestServer::new();
    let out = server.root().join("script.env");
    let script = format!("env > {}", shell_quoted(&out));
    let config = format!(
        "{}{ALLOW_ALL}\n[[extension]]\nname = \"mine\"\ntype = \"script\"\nphase = \"post\"\nenv = [\"MINE\"]\n\
         command = [\"/bin/sh\", \"-c\", {}]\n{}",
        spool_table(&server, &["50ms"]),
        quoted(&script),
        post_http("signed", &receiver.url("/hook"), "secret_env = \"OTHER_SECRET\""),
    );
    let server = server.config(&config).install(&[]);
    server.work().commit(&[("README.md", "# app\n")]);

    // A local push runs the hooks, and the deliverer they detach, with the pusher's variables.
    let pushed = server
        .work()
        .push(&["origin", "HEAD:refs/heads/main"])
        .env("PUSHGATE_USER", "alice")
        .env("OTHER_SECRET", "s3cret")
        .env("MINE", "mine")
        .run();
    pushed.assert_accepted();
    let request = receiver.next();
    server.sandbox.wait_for_detached_deliverers();

    // The http extension did get its secret.
    assert_eq!(request.header("X-Hub-Signature-256"), github_signature(b"s3cret", &request.body));
    let env = std::fs::read_to_string(&out).unwrap();
    let names: Vec<&str> = env.lines().filter_map(|l| l.split_once('=').map(|(n, _)| n)).collect();
    assert!(env.lines().any(|l| l == "MINE=mine"), "{env}");
    assert!(!env.contains("s3cret") && !names.contains(&"OTHER_SECRET"), "another extension's secret leaked:\n{env}");
    let mut pushgate_names: Vec<&str> = names.iter().copied().filter(|n| n.starts_with("PUSHGATE_")).collect();
    pushgate_names.sort();
    assert_eq!(
        pushgate_names,
        ["PUSHGATE_DELIVERY_ID", "PUSHGATE_EVENT_ID", "PUSHGATE_PHASE", "PUSHGATE_REPO", "PUSHGATE_USER"],
        "{env}"
    );
}

// ---------------------------------------------------------------------------------------
// 8. Smaller ones
// ---------------------------------------------------------------------------------------

#[test]
fn user_names_fold_case_only_when_configured() {
    let rules = "[[rule]]\nusers = [\"Alice\"]\nallow = [\"all\"]\n";
    let folding = TestServer::new().config(&format!("[identity]\nfold_case = true\n{rules}")).install(&[]);
    folding.work().commit(&[("README.md", "# app\n")]);
    folding.push_as("ALICE", &["origin", "HEAD:refs/heads/main"]).assert_accepted();

    let strict = TestServer::new().config(rules).install(&[]);
    strict.work().commit(&[("README.md", "# app\n")]);
    let pushed = strict.push_as("ALICE", &["origin", "HEAD:refs/heads/main"]);
    pushed.assert_rejected();
    assert_eq!(
        pushed.pushgate_lines(),
        ["pushgate: push rejected for ALICE", "pushgate: refs/heads/main: create denied (no rule allows it)"]
    );
    strict.push_as("Alice", &["origin", "HEAD:refs/heads/main"]).assert_accepted();
}

#[test]
fn queue_commands_refuse_names_that_leave_the_spool() {
    let receiver = Receiver::ok();
    let server = server_telling(&receiver, ALLOW_ALL, "");
    server.work().commit(&[("README.md", "# app\n")]);
    server.push_as("alice", &["origin", "HEAD:refs/heads/main"]).assert_accepted();
    receiver.next();
    server.sandbox.wait_for_detached_deliverers();
    let spool = spool_dir(&server);
    assert!(spool.join("connectors").is_dir());
    // Where `connectors/../../x/disabled` and `connectors/../x/queue/<job 1.2>` lead.
    let outside = server.root().join("x/disabled");
    std::fs::create_dir_all(outside.parent().unwrap()).unwrap();
    std::fs::write(&outside, "keep me\n").unwrap();
    let job = spool.join("x/queue/00000000000000000001-000002.json");
    std::fs::create_dir_all(job.parent().unwrap()).unwrap();
    std::fs::write(&job, "{}\n").unwrap();

    let run = server.pushgate(&["queue", "enable", "../../x"]).run();
    run.assert_code(2);
    assert!(outside.exists(), "queue enable removed a file outside the spool\n{run}");
    let run = server.pushgate(&["queue", "drop", "../x.1.2"]).run();
    run.assert_code(2);
    assert!(job.exists(), "queue drop removed a file outside the connectors\n{run}");

    let run = server.pushgate(&["queue", "enable", "ci"]).run();
    run.assert_code(0);
    assert_eq!(run.stdout, "ci: was not disabled\n");
}

/// An endpoint that holds each request until the test says what to answer.
struct HeldEndpoint {
    url: String,
    arrived: mpsc::Receiver<Vec<u8>>,
    answer: mpsc::Sender<u16>,
}

impl HeldEndpoint {
    fn start() -> HeldEndpoint {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        let (arrived_tx, arrived) = mpsc::channel();
        let (answer, answers) = mpsc::channel::<u16>();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { return };
                let mut reader = BufReader::new(&stream);
                let mut length = 0;
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 {
                        break;
                    }
                    let line = line.trim_end();
                    if line.is_empty() {
                        break;
                    }
                    if let Some((name, value)) = line.split_once(':')
                        && name.eq_ignore_ascii_case("content-length")
                    {
                        length = value.trim().parse().unwrap();
                    }
                }
                let mut body = vec![0; length];
                let _ = reader.read_exact(&mut body);
                if arrived_tx.send(body).is_err() {
                    return;
                }
                let Ok(status) = answers.recv() else { return };
                let mut stream = &stream;
                let _ = write!(stream, "HTTP/1.1 {status} Whatever\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
            }
        });
        HeldEndpoint { url, arrived, answer }
    }
}

#[test]
fn a_job_dropped_during_a_slow_attempt_stays_dropped() {
    let endpoint = HeldEndpoint::start();
    let server = TestServer::new();
    let config = format!(
        "{}{ALLOW_ALL}{}",
        spool_table(&server, &["50ms"]),
        post_http("ci", &endpoint.url, "timeout = \"60s\"")
    );
    let server = server.config(&config).install(&[]);
    server.work().commit(&[("README.md", "# app\n")]);
    // The deliverer the push detaches dies before sending: the test's own one sends.
    let pushed = server
        .work()
        .push(&["origin", "HEAD:refs/heads/main"])
        .env("PUSHGATE_USER", "alice")
        .env("PUSHGATE_CRASH_AT", "deliver:before-send")
        .run();
    pushed.assert_accepted();
    server.sandbox.wait_for_detached_deliverers();
    let jobs = json_of(&server, &["queue", "list"]);
    let id = jobs[0]["id"].as_str().unwrap().to_string();

    std::thread::scope(|scope| {
        let delivering = scope.spawn(|| server.pushgate(&["deliver", "--once"]).run());
        endpoint.arrived.recv_timeout(WAIT).expect("the deliverer sends the job");
        let dropped = json_of(&server, &["queue", "drop", &id]);
        assert_eq!(dropped, serde_json::json!({"dropped": [id]}));
        endpoint.answer.send(503).unwrap();
        delivering.join().unwrap().assert_code(0);
    });

    assert_eq!(json_of(&server, &["queue", "list"]), serde_json::json!([]));
    assert_eq!(json_of(&server, &["queue", "list", "--dead"]), serde_json::json!([]));
    let ci = connector_status(&server, "ci");
    assert_eq!((ci["pending"].as_u64(), ci["dead"].as_u64()), (Some(0), Some(0)), "{ci}");
    server.pushgate(&["deliver", "--once"]).ok();
    assert!(endpoint.arrived.try_recv().is_err(), "the dropped job was delivered again");
    let outcomes: Vec<String> =
        log(&server).iter().map(|a| a["outcome"].as_str().unwrap_or_default().to_string()).collect();
    assert_eq!(outcomes, ["dropped"]);
}

#[test]
fn c1_control_characters_in_a_ref_name_are_escaped_for_the_pusher_and_the_audit_log() {
    let server = TestServer::new();
    let audit = server.root().join("audit.jsonl");
    let config = format!("[audit]\nfile = {}\n[[rule]]\nusers = [\"alice\"]\nallow = [\"all\"]\n", quoted(&audit));
    let server = server.config(&config).install(&[]);
    let tip = server.work().commit(&[("README.md", "# app\n")]);
    server.push_as("alice", &["origin", "HEAD:refs/heads/main"]).assert_accepted();
    let name = "refs/heads/a\u{9b}31mb";

    let pushed = server.push_as("mallory", &["origin", &format!("HEAD:{name}")]);
    pushed.assert_rejected();
    assert_eq!(
        pushed.pushgate_lines(),
        ["pushgate: push rejected for mallory", "pushgate: refs/heads/a\\u{9b}31mb: create denied (no rule allows it)"]
    );
    assert!(pushed.remote_lines().iter().all(|l| !l.contains('\u{9b}')), "{pushed}");
    // pushgate's own stderr, as the hook writes it.
    let by_hand = server.hook("mallory", &["pre-receive"]).stdin(updates(&[(ZERO, &tip, name)])).run();
    by_hand.assert_code(1);
    assert!(!by_hand.stderr.contains('\u{9b}'), "{by_hand}");
    assert!(by_hand.stderr.contains("refs/heads/a\\u{9b}31mb"), "{by_hand}");

    let bytes = std::fs::read(&audit).unwrap();
    assert!(!bytes.windows(2).any(|w| w == [0xc2, 0x9b]), "a raw U+009B in the audit log");
    let entries = json_values(&bytes);
    assert_eq!(entries.len(), 3, "{entries:#?}");
    assert!(entries[1..].iter().all(|e| e["updates"][0]["ref"] == name), "the name itself is kept: {entries:#?}");
    assert_eq!(server.ref_target(name), None);
}

#[test]
fn only_a_rule_over_every_ref_lets_a_user_read_through_the_shell() {
    let site = Sandbox::new();
    site.configure("[[rule]]\nrefs = [\"refs/heads/main\"]\nusers = [\"bob\"]\nallow = [\"all\"]\n");
    site.git_work("work");
    site.git(&site.root, &["clone", "--quiet", "--bare", "work"]).arg(site.repos.join("app.git")).ok();

    let run = git_over_ssh(&site, &site.root, "bob", &["clone", "host:app.git", "bobs"]).run();
    assert_eq!(run.code, Some(128), "{run}");
    assert_eq!(run.all_pushgate_lines(), ["pushgate: bob may not read app"], "{run}");
    assert!(!site.root.join("bobs").exists());

    site.configure(
        "[[rule]]\nrefs = [\"refs/**\"]\nusers = [\"bob\"]\nallow = [\"read\"]\n\
         [[rule]]\nrefs = [\"refs/heads/main\"]\nusers = [\"bob\"]\nallow = [\"all\"]\n",
    );
    git_over_ssh(&site, &site.root, "bob", &["clone", "--quiet", "host:app.git", "bobs"]).ok();
    assert_eq!(std::fs::read_to_string(site.root.join("bobs/README")).unwrap(), "hello\n");
}

#[test]
fn an_extension_with_max_commits_gets_the_oldest_commits_and_is_told_the_rest_were_cut() {
    let receiver = Receiver::ok();
    let server = TestServer::new();
    let config = format!(
        "{}{ALLOW_ALL}{}{}",
        spool_table(&server, &["50ms"]),
        post_http("short", &receiver.url("/short"), "max_commits = 2"),
        post_http("full", &receiver.url("/full"), ""),
    );
    let server = server.config(&config).install(&[]);
    let ids: Vec<String> = (1..=3).map(|n| server.work().commit(&[(&format!("f{n}"), "x\n")])).collect();

    server.push_as("alice", &["origin", "HEAD:refs/heads/main"]).assert_accepted();

    let mut requests = receiver.take(2);
    requests.sort_by(|a, b| a.path.cmp(&b.path));
    let listed = |request: &Request| {
        let change = &request.json()["changes"][0];
        let ids: Vec<String> = commits_of(change).into_iter().map(|(id, _)| id).collect();
        (ids, change["commits_truncated"].as_bool())
    };
    assert_eq!(requests[0].path, "/full");
    assert_eq!(listed(&requests[0]), (ids.clone(), Some(false)));
    assert_eq!(requests[1].path, "/short");
    assert_eq!(listed(&requests[1]), (ids[..2].to_vec(), Some(true)));
}
