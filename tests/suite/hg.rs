//! Mercurial: `pushgate install --hg`, and real `hg push`es decided by the rules, locally
//! and over `hg serve --stdio` through `pushgate shell`: branches, bookmarks and tags as
//! refs, one decision and one event per push, events through the spool.
//!
//! A local `hg push /path` runs the destination's hooks with the pusher's environment, so
//! each push says who pushes with `PUSHGATE_USER`. Every `hg` process costs a Python start:
//! the server repositories are seeded by cloning, before the hooks are installed.

use crate::harness::{ALLOW_ALL, Invocation, PUSHGATE, Run, Sandbox, ZERO, assert_valid_event, changes, shell_quoted};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// `default` is protected: only maintainers may force it; `deploy/**` is theirs too.
const PROTECTED: &str = r#"
[groups]
maintainers = ["alice"]
devs = ["bob", "@maintainers"]

[[rule]]
refs = ["refs/heads/default"]
users = ["@maintainers"]
allow = ["all"]

[[rule]]
refs = ["refs/heads/default"]
users = ["@devs"]
allow = ["create", "update", "read"]
deny = ["force", "delete"]
message = "default is protected"

[[rule]]
refs = ["refs/**"]
users = ["@devs"]
allow = ["all"]

[[rule]]
refs = ["refs/**"]
paths = ["deploy/**"]
users = ["@maintainers"]
allow = ["create", "update", "force"]

[[rule]]
refs = ["refs/**"]
paths = ["deploy/**"]
users = ["*"]
deny = ["create", "update", "force"]
"#;

/// A server repository `<repos_root>/app` with pushgate's hooks, and a client that pushes
/// to it.
struct Hg {
    site: Sandbox,
    server: PathBuf,
    client: PathBuf,
}

impl Hg {
    /// The server holds one changeset, "Start" (files `a` and `b`), which the client has too.
    fn new(config: &str) -> Hg {
        let site = Sandbox::new();
        site.configure(config);
        let client = site.root.join("client");
        site.hg(&site.root, &["init", "client"]).ok();
        write_files(&client, &[("a", "a\n"), ("b", "b\n")]);
        site.hg(&client, &["commit", "-q", "-A", "-m", "Start"]).ok();
        let server = site.repos.join("app");
        site.hg(&site.root, &["clone", "-q", "-U"]).arg(&client).arg(&server).ok();
        site.pushgate(&["install", "--hg"]).arg(&server).ok();
        Hg { site, server, client }
    }

    /// An empty server (hooks installed) and an empty client.
    fn empty(config: &str) -> Hg {
        let site = Sandbox::new();
        site.configure(config);
        let server = site.repos.join("app");
        site.hg(&site.root, &["init", "client"]).ok();
        site.hg(&site.root, &["init"]).arg(&server).ok();
        site.pushgate(&["install", "--hg"]).arg(&server).ok();
        Hg { client: site.root.join("client"), site, server }
    }

    /// `hg <args>` in the client.
    fn hg(&self, args: &[&str]) -> Invocation {
        self.site.hg(&self.client, args)
    }

    /// Write `files` in the client, remove `removed`, and commit all of it.
    fn commit(&self, files: &[(&str, &str)], removed: &[&str], message: &str) {
        write_files(&self.client, files);
        for path in removed {
            std::fs::remove_file(self.client.join(path)).unwrap();
        }
        self.hg(&["commit", "-q", "-A", "-m", message]).ok();
    }

    /// `hg push <args> <server>` from the client as `user`: what the pusher saw.
    fn push_as(&self, user: &str, args: &[&str]) -> Run {
        self.hg(&["push"]).args(args).arg(&self.server).env("PUSHGATE_USER", user).run()
    }

    /// [`Hg::push_as`], with every `hg` that the server's hooks run written down (through a
    /// shim first on `PATH`): what the pusher saw, and the hooks' `hg` command lines.
    fn push_counting_hg(&self, user: &str, args: &[&str]) -> (Run, Vec<String>) {
        let real = self.site.command("sh").args(["-c", "command -v hg"]).ok();
        let shims = self.site.root.join("shims");
        let log = self.site.root.join("hg-calls");
        std::fs::create_dir_all(&shims).unwrap();
        let _ = std::fs::remove_file(&log);
        let shim = format!(
            "#!/bin/sh\nprintf '%s\\n' \"$*\" >> {}\nexec {} \"$@\"\n",
            shell_quoted(&log),
            shell_quoted(&real)
        );
        std::fs::write(shims.join("hg"), shim).unwrap();
        std::fs::set_permissions(shims.join("hg"), std::fs::Permissions::from_mode(0o755)).unwrap();
        let path = format!("{}:{}", shims.display(), std::env::var("PATH").unwrap_or_default());
        let run = self.hg(&["push"]).args(args).arg(&self.server).env("PUSHGATE_USER", user).env("PATH", path).run();
        let calls = std::fs::read_to_string(&log).unwrap_or_default();
        // The client's own `hg push` is not the hooks'.
        let hooks = calls.lines().filter(|l| !l.starts_with("push ")).map(str::to_string).collect();
        (run, hooks)
    }

    /// Every changeset on the server with its branch, bookmarks, tags and phase.
    fn server_state(&self) -> String {
        self.site.hg(&self.server, &["log", "--hidden", "-T", "{node} {branch} [{bookmarks}] [{tags}] {phase}\n"]).ok()
    }

    /// The full id of every client changeset, by revision number.
    fn nodes(&self) -> Vec<String> {
        self.hg(&["log", "-r", "all()", "-T", "{node}\n"]).ok().lines().map(str::to_string).collect()
    }
}

fn write_files(dir: &Path, files: &[(&str, &str)]) {
    for (path, contents) in files {
        let path = dir.join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, contents).unwrap();
    }
}

/// The push was refused: hg aborts (exit 255) and shows pushgate's reasons, and the
/// server holds what it held before.
#[track_caller]
fn assert_refused(hg: &Hg, run: &Run, before: &str, reasons: &[&str]) {
    assert_eq!(run.code, Some(255), "the push was expected to be rejected\n{run}");
    assert_eq!(run.all_pushgate_lines(), reasons, "{run}");
    assert_eq!(hg.server_state(), before, "a rejected push changed the server\n{run}");
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect()
}

#[test]
fn install_hg_adds_one_marked_block_and_uninstall_removes_only_it() {
    let site = Sandbox::new();
    site.configure(ALLOW_ALL);
    let repo = site.repos.join("app");
    site.hg(&site.root, &["init"]).arg(&repo).ok();
    let hgrc = repo.join(".hg/hgrc");
    let original = "[paths]\ndefault = /srv/elsewhere\n\n[hooks]\nchangegroup.notify = echo changed\n";
    std::fs::write(&hgrc, original).unwrap();

    let installed = site.pushgate(&["install", "--hg"]).arg(&repo).ok();
    assert!(installed.contains(".hg/hgrc"), "{installed}");
    site.pushgate(&["install", "--hg"]).arg(&repo).ok();
    let text = std::fs::read_to_string(&hgrc).unwrap();
    assert!(text.starts_with(original), "the existing entries moved:\n{text}");
    assert_eq!(text.matches("# pushgate-hook: begin").count(), 1, "installing twice left two blocks:\n{text}");
    assert_eq!(text.matches("# pushgate-hook: end").count(), 1, "{text}");

    let exe = std::fs::canonicalize(PUSHGATE).unwrap();
    let shim = repo.canonicalize().unwrap().join(".hg/pushgate_hg.py");
    assert!(shim.is_file(), "the hg shim is installed beside the hgrc");
    let seen = site.hg(&repo, &["config", "hooks", "paths", "pushgate"]).ok();
    let mut seen: Vec<&str> = seen.lines().collect();
    seen.sort();
    assert_eq!(
        seen,
        [
            "hooks.changegroup.notify=echo changed".to_string(),
            format!("hooks.outgoing.pushgate='{}' hg outgoing", exe.display()),
            format!("hooks.prepushkey.pushgate=python:{}:prepushkey", shim.display()),
            format!("hooks.pretxnclose.pushgate=python:{}:pretxnclose", shim.display()),
            format!("hooks.txnclose.pushgate=python:{}:txnclose", shim.display()),
            "paths.default=/srv/elsewhere".to_string(),
            format!("pushgate.binary={}", exe.display()),
        ]
    );

    let removed = site.pushgate(&["uninstall"]).arg(&repo).ok();
    assert!(removed.contains("uninstalled"), "{removed}");
    assert_eq!(std::fs::read_to_string(&hgrc).unwrap(), original);
    assert!(!shim.exists(), "uninstall leaves the shim");

    let not_hg = site.root.join("plain");
    std::fs::create_dir(&not_hg).unwrap();
    let run = site.pushgate(&["install", "--hg"]).arg(&not_hg).run();
    run.assert_code(2);
    assert!(run.stderr.contains("is not a Mercurial repository"), "{run}");
}

#[test]
fn a_repository_without_an_hgrc_gets_one_that_hg_reads() {
    let site = Sandbox::new();
    site.configure(ALLOW_ALL);
    let repo = site.repos.join("fresh");
    site.hg(&site.root, &["init"]).arg(&repo).ok();
    site.pushgate(&["install", "--hg"]).arg(&repo).ok();
    let seen = site.hg(&repo, &["config", "hooks"]).ok();
    let names: Vec<&str> = seen.lines().filter_map(|l| l.split_once('=').map(|(name, _)| name)).collect();
    assert_eq!(
        names,
        [
            "hooks.pretxnclose.pushgate",
            "hooks.txnclose.pushgate",
            "hooks.outgoing.pushgate",
            "hooks.prepushkey.pushgate"
        ],
        "{seen}"
    );
    site.pushgate(&["uninstall"]).arg(&repo).ok();
    assert_eq!(site.hg(&repo, &["config", "hooks"]).run().stdout, "");
}

#[test]
fn pushes_are_decided_by_the_rules_for_each_user() {
    let hg = Hg::new(PROTECTED);
    hg.commit(&[("a", "a2\n")], &[], "Fast forward");
    hg.push_as("bob", &[]).assert_accepted();
    let before = hg.server_state();
    assert_eq!(before.lines().count(), 2, "{before}");

    // A second head on default is a force, which only maintainers may do.
    hg.hg(&["update", "-q", "-r", "0"]).ok();
    hg.commit(&[("side", "side\n")], &[], "New head");
    let run = hg.push_as("bob", &["-f"]);
    assert_refused(
        &hg,
        &run,
        &before,
        &[
            "pushgate: push rejected for bob",
            "pushgate: refs/heads/default: force denied (rule 2: default is protected)",
        ],
    );

    // A path rule: deploy/** is for maintainers.
    hg.hg(&["update", "-q", "-r", "1"]).ok();
    hg.commit(&[("deploy/prod.yml", "replicas: 3\n")], &[], "Deploy");
    let run = hg.push_as("bob", &["-r", "."]);
    assert_refused(
        &hg,
        &run,
        &before,
        &["pushgate: push rejected for bob", "pushgate: refs/heads/default: deploy/prod.yml: update denied (rule 5)"],
    );

    // Alice may do both, in one push.
    hg.push_as("alice", &["-f"]).assert_accepted();
    assert_eq!(hg.server_state().lines().count(), 4);

    let decisions: Vec<_> = (0..4).map(|i| hg.site.decision(i)).collect();
    let default = |action: &str, verdict: &str| (pairs(&[("refs/heads/default", action)]), verdict.to_string());
    assert_eq!(
        decisions,
        [
            default("update", "accepted"),
            default("force", "rejected"),
            default("update", "rejected"),
            default("force", "accepted")
        ]
    );
    assert_eq!(
        hg.site.audit().iter().map(|e| e["user"].as_str().unwrap()).collect::<Vec<_>>(),
        ["bob", "bob", "bob", "alice"]
    );
}

#[test]
fn named_branches_and_tags_are_refs_and_closing_a_branch_deletes_it() {
    let config = format!("[[rule]]\nrefs = [\"refs/tags/**\"]\nusers = [\"bob\"]\ndeny = [\"create\"]\n\n{ALLOW_ALL}");
    let hg = Hg::new(&config);
    hg.hg(&["branch", "-q", "stable"]).ok();
    hg.commit(&[("s", "s\n")], &[], "Start stable");
    hg.push_as("alice", &["--new-branch"]).assert_accepted();

    hg.hg(&["update", "-q", "default"]).ok();
    hg.hg(&["tag", "v1.0"]).ok();
    let before = hg.server_state();
    let run = hg.push_as("bob", &[]);
    assert_refused(
        &hg,
        &run,
        &before,
        &["pushgate: push rejected for bob", "pushgate: refs/tags/v1.0: create denied (rule 1)"],
    );
    hg.push_as("alice", &[]).assert_accepted();

    hg.hg(&["update", "-q", "stable"]).ok();
    hg.hg(&["commit", "-q", "--close-branch", "-m", "Close stable"]).ok();
    hg.push_as("alice", &[]).assert_accepted();

    let audit = hg.site.audit();
    let nodes = hg.nodes();
    let (start, stable) = (&nodes[0], &nodes[1]);
    assert_eq!(audit.len(), 4, "one decision per push: {audit:#?}");
    assert_eq!(hg.site.decision(0), (pairs(&[("refs/heads/stable", "create")]), "accepted".into()));
    assert_eq!(audit[0]["updates"][0]["old"], ZERO);
    assert_eq!(audit[0]["updates"][0]["new"], stable.as_str());
    assert_eq!(hg.site.decision(1).0, pairs(&[("refs/heads/default", "update"), ("refs/tags/v1.0", "create")]));
    assert_eq!(
        hg.site.decision(2),
        (pairs(&[("refs/heads/default", "update"), ("refs/tags/v1.0", "create")]), "accepted".into())
    );
    // The tag names the changeset that was default's tip when it was made: "Start".
    assert_eq!(audit[2]["updates"][1]["new"], start.as_str());
    assert_eq!(hg.site.decision(3), (pairs(&[("refs/heads/stable", "delete")]), "accepted".into()));
    assert_eq!(audit[3]["updates"][0]["old"], stable.as_str());
    assert_eq!(audit[3]["updates"][0]["new"], ZERO);
}

#[test]
fn bookmarks_are_refs_created_updated_forced_and_deleted() {
    let config =
        format!("[[rule]]\nrefs = [\"refs/bookmarks/**\"]\nusers = [\"bob\"]\ndeny = [\"delete\"]\n\n{ALLOW_ALL}");
    let hg = Hg::new(&config);
    hg.hg(&["bookmark", "bm"]).ok();
    // `hg push -B` exits 1 when no changesets were pushed, even though the bookmark moved.
    hg.push_as("alice", &["-B", "bm"]).assert_code(1);
    hg.commit(&[("a", "a2\n")], &[], "Move bm");
    hg.push_as("alice", &["-B", "bm"]).assert_code(0);
    let nodes = hg.nodes();
    let (start, moved) = (nodes[0].clone(), nodes[1].clone());
    hg.hg(&["bookmark", "-f", "-r", "0", "bm"]).ok();
    hg.push_as("alice", &["-B", "bm"]).assert_code(1);
    let before = hg.server_state();
    assert!(before.contains(&format!("{start} default [bm]")), "{before}");

    hg.hg(&["bookmark", "-d", "bm"]).ok();
    let run = hg.push_as("bob", &["-B", "bm"]);
    assert_refused(
        &hg,
        &run,
        &before,
        &["pushgate: push rejected for bob", "pushgate: refs/bookmarks/bm: delete denied (rule 1)"],
    );
    hg.push_as("alice", &["-B", "bm"]).assert_code(1);
    assert!(!hg.server_state().contains("[bm]"), "the bookmark is still on the server");

    let audit = hg.site.audit();
    assert_eq!(audit.len(), 5, "one decision per push: {audit:#?}");
    let bm = |action: &str| pairs(&[("refs/bookmarks/bm", action)]);
    assert_eq!(hg.site.decision(0), (bm("create"), "accepted".into()));
    assert_eq!(
        hg.site.decision(1),
        (pairs(&[("refs/heads/default", "update"), ("refs/bookmarks/bm", "update")]), "accepted".into())
    );
    assert_eq!(hg.site.decision(2), (bm("force"), "accepted".into()));
    assert_eq!(hg.site.decision(3), (bm("delete"), "rejected".into()));
    assert_eq!(hg.site.decision(4), (bm("delete"), "accepted".into()));
    let ids = |i: usize| {
        (
            audit[i]["updates"].as_array().unwrap().last().unwrap()["old"].clone(),
            audit[i]["updates"].as_array().unwrap().last().unwrap()["new"].clone(),
        )
    };
    assert_eq!(ids(0), (ZERO.into(), start.clone().into()));
    assert_eq!(ids(1), (start.clone().into(), moved.clone().into()));
    assert_eq!(ids(2), (moved.into(), start.clone().into()));
    assert_eq!(ids(4), (start.into(), ZERO.into()));
}

#[test]
fn max_blob_size_rejects_a_new_big_file_not_one_already_there() {
    let hg = Hg::new(ALLOW_ALL);
    let big = "x".repeat(3 << 19);
    hg.commit(&[("big.bin", &big), ("big2.bin", &big), ("big3.bin", &big)], &[], "Big, before the limit");
    hg.push_as("alice", &[]).assert_accepted();
    hg.site.configure(&format!("[limits]\nmax_blob_size = \"1 MiB\"\n\n{ALLOW_ALL}"));
    hg.commit(&[("a", "a2\n")], &[], "Small");
    let (run, calls) = hg.push_counting_hg("alice", &[]);
    run.assert_accepted();
    // Sizes are read for the files a changeset writes, not for every big file it holds.
    let sized: Vec<&String> = calls.iter().filter(|l| l.contains(" files ")).collect();
    assert_eq!(sized, Vec::<&String>::new(), "sizes read for files this push did not touch:\n{calls:#?}");

    let before = hg.server_state();
    hg.commit(&[("big.bin", &"y".repeat(5 << 19)), ("small.txt", "small\n")], &[], "Bigger");
    let short = hg.nodes()[3][..7].to_string();
    let run = hg.push_as("alice", &[]);
    assert_refused(
        &hg,
        &run,
        &before,
        &[
            "pushgate: push rejected for alice",
            &format!("pushgate: refs/heads/default: big.bin (2.5 MiB) in {short} exceeds max_blob_size 1 MiB"),
        ],
    );
}

#[test]
fn pushes_fail_closed_without_an_identity_a_configuration_or_hg() {
    let hg = Hg::new(ALLOW_ALL);
    let before = hg.server_state();
    hg.commit(&[("a", "a2\n")], &[], "Change");

    let run = hg.hg(&["push"]).arg(&hg.server).run();
    let reason = "pushgate: push rejected: no user identity: none of PUSHGATE_USER, GL_USER, REMOTE_USER is set";
    assert_refused(&hg, &run, &before, &[reason]);

    std::fs::write(&hg.site.config, "[[rule]]\nrefs = [\"main\"]\n").unwrap();
    let run = hg.push_as("alice", &[]);
    assert_eq!(run.code, Some(255), "{run}");
    let lines = run.all_pushgate_lines();
    assert!(lines.len() == 1 && lines[0].starts_with("pushgate: push rejected: configuration error: "), "{run}");

    hg.site.configure(ALLOW_ALL);
    let hgrc = hg.server.join(".hg/hgrc");
    let text = std::fs::read_to_string(&hgrc).unwrap();
    let exe = std::fs::canonicalize(PUSHGATE).unwrap();
    std::fs::write(&hgrc, text.replace(&format!("binary = {}", exe.display()), "binary = /nonexistent/pushgate"))
        .unwrap();
    let run = hg.push_as("alice", &[]);
    assert_refused(
        &hg,
        &run,
        &before,
        &[
            "pushgate: push rejected: cannot run pushgate: [Errno 2] No such file or directory: b'/nonexistent/pushgate'",
        ],
    );
}

#[test]
fn a_push_of_two_branches_and_a_bookmark_is_one_decision_and_one_event() {
    let hg = Hg::new(ALLOW_ALL);
    hg.site.configure(&format!("{ALLOW_ALL}\n{}", hg.site.recorder("events", "")));
    hg.commit(&[("a", "a2\n"), ("c", "c\n")], &["b"], "Rework\n\nA longer story.");
    hg.hg(&["bookmark", "-r", ".", "bm"]).ok();
    hg.hg(&["branch", "-q", "feature"]).ok();
    hg.commit(&[("f", "f\n")], &[], "Start feature");
    let run = hg
        .hg(&["push", "--new-branch", "-B", "bm", "-r", "feature"])
        .arg(&hg.server)
        .env("PUSHGATE_USER", "alice")
        .env("HGUSER", "unused")
        .run();
    run.assert_accepted();
    let nodes = hg.nodes();
    let (start, rework, feature) = (nodes[0].clone(), nodes[1].clone(), nodes[2].clone());

    assert_eq!(hg.site.audit().len(), 1, "one push, one decision: {:#?}", hg.site.audit());
    let events = hg.site.events("events");
    assert_eq!(events.len(), 1, "one push, one event: {events:#?}");
    let event = &events[0];
    assert_valid_event(event);
    assert_eq!(event["schema"], "pushgate.push/1");
    assert_eq!(event["vcs"], "hg");
    assert_eq!(event["phase"], "post");
    assert_eq!(event["repository"]["name"], "app");
    assert_eq!(event["repository"]["path"], hg.server.to_str().unwrap());
    assert_eq!(event["user"]["name"], "alice");
    assert_eq!(event["user"]["via"], "local");
    let mut refs = changes(event);
    refs.sort();
    assert_eq!(
        refs,
        pairs(&[("refs/bookmarks/bm", "create"), ("refs/heads/default", "update"), ("refs/heads/feature", "create")])
    );

    let change = |name: &str| event["changes"].as_array().unwrap().iter().find(|c| c["ref"] == name).unwrap().clone();
    let default = change("refs/heads/default");
    assert_eq!((default["before"].as_str(), default["after"].as_str()), (Some(start.as_str()), Some(rework.as_str())));
    assert_eq!(default["commits_truncated"], false);
    let commits = default["commits"].as_array().unwrap();
    assert_eq!(commits.len(), 1, "{default:#}");
    let commit = &commits[0];
    assert_eq!(commit["id"], rework.as_str());
    assert_eq!(commit["message"], "Rework\n\nA longer story.");
    assert_eq!(commit["author"]["name"], "Test Author");
    assert_eq!(commit["author"]["email"], "author@example.org");
    assert_eq!(commit["added"], serde_json::json!(["c"]));
    assert_eq!(commit["modified"], serde_json::json!(["a"]));
    assert_eq!(commit["removed"], serde_json::json!(["b"]));

    let feature_change = change("refs/heads/feature");
    assert_eq!(
        (feature_change["before"].as_str(), feature_change["after"].as_str()),
        (Some(ZERO), Some(feature.as_str()))
    );
    let ids = |c: &serde_json::Value| {
        c["commits"].as_array().unwrap().iter().map(|c| c["id"].as_str().unwrap().to_string()).collect::<Vec<_>>()
    };
    // A create brings what the default branch did not have: rework too.
    assert_eq!(ids(&feature_change), [rework.clone(), feature]);
    assert_eq!(feature_change["commits"][1]["added"], serde_json::json!(["f"]));
    let bookmark = change("refs/bookmarks/bm");
    assert_eq!((bookmark["before"].as_str(), bookmark["after"].as_str()), (Some(ZERO), Some(rework.as_str())));
    assert_eq!(ids(&bookmark), [rework]);
}

#[test]
fn a_thousand_changesets_land_and_their_event_lists_max_commits() {
    let hg = Hg::empty(ALLOW_ALL);
    hg.site.configure(&format!("{ALLOW_ALL}\n{}", hg.site.recorder("events", "")));
    hg.hg(&["debugbuilddag", "+1000"]).ok();
    let (run, calls) = hg.push_counting_hg("alice", &[]);
    run.assert_accepted();
    // A handful of hg processes, whatever the size of the push.
    assert!(calls.len() <= 6, "{} hg processes for one push:\n{calls:#?}", calls.len());
    assert_eq!(hg.site.hg(&hg.server, &["log", "-r", "tip", "-T", "{rev}"]).ok(), "999");

    let events = hg.site.events("events");
    assert_eq!(events.len(), 1, "{events:#?}");
    assert_valid_event(&events[0]);
    assert_eq!(changes(&events[0]), pairs(&[("refs/heads/default", "create")]));
    let change = &events[0]["changes"][0];
    assert_eq!(change["commits_truncated"], true);
    let commits = change["commits"].as_array().unwrap();
    assert_eq!(commits.len(), 100);
    // Oldest first: debugbuilddag names changeset N "rN".
    let numbers: Vec<u32> =
        commits.iter().map(|c| c["message"].as_str().unwrap().trim_start_matches('r').parse().unwrap()).collect();
    assert!(numbers.windows(2).all(|w| w[0] < w[1]), "not oldest first: {numbers:?}");
}

/// `hg` through the stand-in ssh, as `user` (the key sshd would have matched).
fn over_ssh(hg: &Hg, user: &str, args: &[&str]) -> Invocation {
    hg.hg(args).arg("-e").arg(hg.site.ssh()).env("SSH_AS", user)
}

#[test]
fn pushes_over_hg_serve_stdio_are_decided_for_the_shells_user() {
    let hg = Hg::new(PROTECTED);
    hg.site.configure(&format!("{PROTECTED}\n{}", hg.site.recorder("events", "")));
    let url = "ssh://host/app";
    hg.commit(&[("a", "a2\n")], &[], "Over ssh");
    over_ssh(&hg, "alice", &["push", url]).run().assert_accepted();
    let before = hg.server_state();

    // Bob's client claims to be alice: the shell runs for bob, whatever the environment says.
    hg.hg(&["update", "-q", "-r", "0"]).ok();
    hg.commit(&[("side", "side\n")], &[], "New head");
    let run = over_ssh(&hg, "bob", &["push", "-f", url])
        .env("PUSHGATE_USER", "alice")
        .env("GL_USER", "alice")
        .env("REMOTE_USER", "alice")
        .run();
    assert_eq!(run.code, Some(255), "{run}");
    // hg shows what the server printed, prefixed with `remote: `, on stdout and stderr.
    let shown = format!("{}{}", run.stdout, run.stderr);
    let remote: Vec<&str> = shown.lines().filter(|l| l.starts_with("remote: pushgate:")).collect();
    assert_eq!(
        remote,
        [
            "remote: pushgate: push rejected for bob",
            "remote: pushgate: refs/heads/default: force denied (rule 2: default is protected)"
        ],
        "{run}"
    );
    assert_eq!(hg.server_state(), before);

    // An absolute path inside repos_root names the same repository.
    let absolute = format!("ssh://host/{}", hg.server.display());
    let identified = over_ssh(&hg, "bob", &["identify", "--debug", "-r", "default", &absolute]).ok();
    assert_eq!(identified.lines().last(), Some(hg.nodes()[1].as_str()), "{identified}");

    let run = over_ssh(&hg, "eve", &["identify", url]).run();
    assert_eq!(run.code, Some(255), "{run}");
    let shown = format!("{}{}", run.stdout, run.stderr);
    assert!(shown.lines().any(|l| l == "remote: pushgate: eve may not read app"), "{run}");

    let events = hg.site.events("events");
    assert_eq!(events.len(), 1, "only the accepted push is an event: {events:#?}");
    assert_eq!(events[0]["vcs"], "hg");
    assert_eq!(events[0]["user"]["name"], "alice");
    assert_eq!(events[0]["user"]["via"], "ssh");
    assert_eq!(changes(&events[0]), pairs(&[("refs/heads/default", "update")]));
}

#[test]
fn hg_pulls_through_the_shell_are_pull_events() {
    let hg = Hg::new(PROTECTED);
    let pulls = hg.site.recorder("pulls", "events = [\"push\", \"pull\"]");
    hg.site.configure(&format!("{PROTECTED}\n{pulls}"));
    over_ssh(&hg, "bob", &["clone", "-q", "-U", "ssh://host/app"]).arg(hg.site.root.join("bobs")).ok();

    let events = hg.site.events("pulls");
    assert_eq!(events.len(), 1, "{events:#?}");
    assert_eq!(events[0]["schema"], "pushgate.pull/1");
    assert_eq!(events[0]["vcs"], "hg");
    assert_eq!(events[0]["user"]["name"], "bob");
    assert_eq!(events[0]["user"]["via"], "ssh");
    assert_eq!(events[0]["repository"]["name"], "app");
}
