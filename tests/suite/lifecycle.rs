//! Repositories created and deleted through `pushgate shell` (`create`, `create --hg`,
//! `delete`) and what `info` tells a user: decided by the rules (`repo-create`,
//! `repo-delete`, `{user}` for personal namespaces), vetoed by `pre` extensions, told to
//! `post` ones in order (and after a kill -9), through the stand-in ssh and a real sshd,
//! with the names and environments a hostile client sends.

use crate::harness::{
    Invocation, Receiver, Run, Sandbox, Sshd, VERSION, assert_valid, files_under, post_http, quoted, repository_schema,
};
use std::path::Path;

/// Everyone has a namespace of their own (`users/<name>/*`), may push to their own
/// branches of the team's repositories, and read those; nobody may commit under `secret/`.
const PERSONAL: &str = r#"
[[rule]]
repos = ["users/{user}/*"]
users = ["*"]
allow = ["all", "repo-create", "repo-delete"]

[[rule]]
repos = ["team/*"]
refs = ["refs/heads/users/{user}/**"]
users = ["*"]
allow = ["all"]

[[rule]]
repos = ["team/*"]
users = ["*"]
allow = ["read"]

[[rule]]
refs = ["refs/**"]
paths = ["secret/**"]
users = ["*"]
deny = ["create", "update", "force"]
message = "no secrets here"
"#;

/// What `ssh <host> <command>` does with `user`'s key: the stand-in ssh runs the forced
/// command with `command` as `SSH_ORIGINAL_COMMAND`.
fn ssh(site: &Sandbox, user: &str, command: &str) -> Invocation {
    site.command(site.ssh()).args(["host", command]).env("SSH_AS", user)
}

/// `git <args>` in `dir` through the stand-in ssh, with `user`'s key.
fn git_over_ssh(site: &Sandbox, dir: &Path, user: &str, args: &[&str]) -> Invocation {
    site.git(dir, args).env("GIT_SSH_COMMAND", site.ssh()).env("GIT_SSH_VARIANT", "simple").env("SSH_AS", user)
}

/// The command went through: what it printed.
#[track_caller]
fn done(run: &Run, stdout: &str) {
    assert_eq!((run.code, run.stdout.as_str(), run.stderr.as_str()), (Some(0), stdout, ""), "{run}");
}

/// The shell refused: exit 1, nothing on stdout, and one line on stderr that says why.
#[track_caller]
fn refused(run: &Run, reason: &str) {
    assert_eq!(run.code, Some(1), "{run}");
    assert_eq!(run.stdout, "", "{run}");
    let lines: Vec<&str> = run.stderr.lines().collect();
    assert_eq!(lines.len(), 1, "one line expected\n{run}");
    assert!(lines[0].starts_with("pushgate: ") && lines[0].contains(reason), "expected {reason:?}\n{run}");
}

/// What the directory holds besides what is listed: the shell's work in progress must
/// never be left behind.
#[track_caller]
fn names_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> =
        std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    names.sort();
    names
}

/// A work clone of `url` (an empty repository), with one commit of `files` on `main`.
fn work_with(site: &Sandbox, user: &str, url: &str, dir: &str, files: &[(&str, &str)]) -> std::path::PathBuf {
    git_over_ssh(site, &site.root, user, &["clone", "--quiet", url, dir]).ok();
    let work = site.root.join(dir);
    site.git(&work, &["checkout", "--quiet", "-b", "main"]).ok();
    for (path, text) in files {
        let path = work.join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
    site.git(&work, &["add", "."]).ok();
    site.git(&work, &["commit", "--quiet", "-m", "First"]).ok();
    work
}

#[test]
fn a_user_creates_a_git_repository_with_pushgates_hooks_in_their_own_namespace() {
    let site = Sandbox::new();
    site.configure(PERSONAL);

    done(&ssh(&site, "alice", "create users/alice/notes").run(), "created users/alice/notes (git)\n");

    let repo = site.repos.join("users/alice/notes.git");
    assert!(repo.join("HEAD").is_file() && repo.join("objects").is_dir(), "a bare repository");
    let hook = std::fs::read_link(repo.join("hooks/pre-receive")).unwrap();
    assert_eq!(hook, std::fs::canonicalize(crate::harness::PUSHGATE).unwrap());
    assert!(repo.join("hooks/post-receive").is_symlink());
    let advertised = site.git(&repo, &["config", "receive.advertisePushOptions"]).ok();
    assert_eq!(advertised.trim(), "true");
    assert_eq!(names_in(&site.repos.join("users/alice")), ["notes.git"]);

    // Its hooks decide its pushes.
    let work = work_with(&site, "alice", "host:users/alice/notes", "work", &[("README", "notes\n")]);
    git_over_ssh(&site, &work, "alice", &["push", "--quiet", "origin", "main"]).ok();
    std::fs::create_dir(work.join("secret")).unwrap();
    std::fs::write(work.join("secret/key"), "hunter2\n").unwrap();
    site.git(&work, &["add", "."]).ok();
    site.git(&work, &["commit", "--quiet", "-m", "Oops"]).ok();
    let run = git_over_ssh(&site, &work, "alice", &["push", "origin", "main"]).run();
    assert_eq!(run.code, Some(1), "{run}");
    assert_eq!(
        run.all_pushgate_lines(),
        [
            "pushgate: push rejected for alice",
            "pushgate: refs/heads/main: secret/key: update denied (rule 4: no secrets here)"
        ]
    );
    // Bob may not even read it.
    let run = git_over_ssh(&site, &site.root, "bob", &["clone", "host:users/alice/notes", "bobs"]).run();
    assert_eq!(run.all_pushgate_lines(), ["pushgate: bob may not read users/alice/notes"], "{run}");

    refused(&ssh(&site, "alice", "create users/alice/notes.git").run(), "\"users/alice/notes\": it already exists");
    refused(&ssh(&site, "alice", "create --hg users/alice/notes").run(), "it already exists (a Git repository)");
    let decisions: Vec<(String, String, String)> = site
        .audit()
        .iter()
        .filter(|e| e["hook"] == "create")
        .map(|e| (e["user"].to_string(), e["repo"].to_string(), e["verdict"].to_string()))
        .collect();
    assert_eq!(decisions[0], ("\"alice\"".into(), "\"users/alice/notes\"".into(), "\"accepted\"".into()));
}

#[test]
fn creating_outside_ones_own_namespace_is_refused_and_leaves_nothing() {
    let site = Sandbox::new();
    site.configure(PERSONAL);

    for (command, reason) in [
        ("create users/bob/x", "alice may not create users/bob/x (no rule allows it)"),
        ("create team/x", "alice may not create team/x (no rule allows it)"),
        ("create users/alice", "alice may not create users/alice (no rule allows it)"),
        ("create users/alice/a/b", "alice may not create users/alice/a/b (no rule allows it)"),
        ("create /etc/passwd", "alice may not create etc/passwd (no rule allows it)"),
        ("create --hg users/bob/x", "alice may not create users/bob/x (no rule allows it)"),
    ] {
        refused(&ssh(&site, "alice", command).run(), reason);
    }
    assert_eq!(names_in(&site.repos), Vec::<String>::new());
    // Whether a name is taken is not told to who may not create it.
    done(&ssh(&site, "bob", "create users/bob/x").run(), "created users/bob/x (git)\n");
    refused(&ssh(&site, "alice", "create users/bob/x").run(), "alice may not create users/bob/x (no rule allows it)");
    // An absolute path inside repos_root names the same place.
    let absolute = format!("create {}/users/alice/abs.git", site.repos.display());
    done(&ssh(&site, "alice", &absolute).run(), "created users/alice/abs (git)\n");
}

#[test]
fn a_user_creates_a_mercurial_repository_whose_hooks_decide_its_pushes() {
    let site = Sandbox::new();
    site.configure(PERSONAL);

    done(&ssh(&site, "alice", "create --hg users/alice/hgnotes").run(), "created users/alice/hgnotes (hg)\n");

    let repo = site.repos.join("users/alice/hgnotes");
    let hgrc = std::fs::read_to_string(repo.join(".hg/hgrc")).unwrap();
    let shim = repo.join(".hg/pushgate_hg.py");
    assert!(hgrc.contains(&format!("python:{}:pretxnclose", shim.display())), "the shim where it is now:\n{hgrc}");
    assert!(!hgrc.contains(".pushgate-"), "{hgrc}");
    assert_eq!(names_in(&site.repos.join("users/alice")), ["hgnotes"]);

    let ssh_command = site.ssh();
    let hg = |dir: &Path, args: &[&str]| site.hg(dir, args).arg("-e").arg(&ssh_command).env("SSH_AS", "alice");
    hg(&site.root, &["clone", "-q", "ssh://host/users/alice/hgnotes", "work"]).ok();
    let work = site.root.join("work");
    std::fs::write(work.join("README"), "notes\n").unwrap();
    site.hg(&work, &["add", "-q", "README"]).ok();
    site.hg(&work, &["commit", "-q", "-m", "First"]).ok();
    hg(&work, &["push", "-q"]).ok();
    std::fs::create_dir(work.join("secret")).unwrap();
    std::fs::write(work.join("secret/key"), "hunter2\n").unwrap();
    site.hg(&work, &["add", "-q", "secret/key"]).ok();
    site.hg(&work, &["commit", "-q", "-m", "Oops"]).ok();
    let run = hg(&work, &["push"]).run();
    assert_ne!(run.code, Some(0), "{run}");
    let reason = "remote: pushgate: refs/heads/default: secret/key: update denied (rule 4: no secrets here)";
    assert!(run.stdout_lines().contains(&reason), "{run}");
}

#[test]
fn deleting_is_decided_by_the_rules_and_the_repositorys_own_file() {
    let site = Sandbox::new();
    site.configure(PERSONAL);
    for (user, command) in [
        ("alice", "create users/alice/a"),
        ("alice", "create users/alice/kept"),
        ("alice", "create --hg users/alice/h"),
        ("bob", "create users/bob/b"),
    ] {
        ssh(&site, user, command).ok();
    }
    std::fs::write(
        site.repos.join("users/alice/kept.git/pushgate.toml"),
        "[[rule]]\nusers = [\"*\"]\ndeny = [\"repo-delete\"]\nmessage = \"keep it\"\n",
    )
    .unwrap();

    refused(&ssh(&site, "alice", "delete users/bob/b").run(), "alice may not delete users/bob/b (no rule allows it)");
    refused(
        &ssh(&site, "alice", "delete users/alice/kept").run(),
        "alice may not delete users/alice/kept (repository rule 1: keep it)",
    );
    refused(&ssh(&site, "alice", "delete users/alice/nothing").run(), "\"users/alice/nothing\": no such repository");
    refused(&ssh(&site, "alice", "delete users/alice").run(), "no such repository");
    done(&ssh(&site, "alice", "delete users/alice/a.git").run(), "deleted users/alice/a (git)\n");
    done(&ssh(&site, "alice", "delete /users/alice/h").run(), "deleted users/alice/h (hg)\n");
    refused(&ssh(&site, "alice", "delete users/alice/a").run(), "no such repository");

    assert_eq!(names_in(&site.repos.join("users/alice")), ["kept.git"]);
    assert!(site.repos.join("users/bob/b.git/HEAD").is_file());
    // A name freed is free again.
    done(&ssh(&site, "alice", "create --hg users/alice/a").run(), "created users/alice/a (hg)\n");
}

/// A `pre` extension that hears of repositories: it copies each event to `<root>/pre/`,
/// refuses names with capitals, and the deletion of anything named `keep...`.
fn naming_extension(site: &Sandbox) -> String {
    let pre = site.root.join("pre");
    std::fs::create_dir(&pre).unwrap();
    let script = site.script(
        "naming",
        "#!/bin/sh\nbody=$(cat)\nprintf '%s' \"$body\" > \"$1/$PUSHGATE_EVENT_ID.json\"\n\
         echo \"$PUSHGATE_PHASE $PUSHGATE_USER $PUSHGATE_REPO $(pwd)\" >> \"$1/env\"\n\
         case \"$body\" in\n\
         *'\"action\":\"created\"'*) case \"$PUSHGATE_REPO\" in *[A-Z]*) echo 'names are lowercase'; exit 1;; esac;;\n\
         *'\"action\":\"deleted\"'*) case \"$PUSHGATE_REPO\" in *keep*) echo \"$PUSHGATE_REPO stays\" >&2; exit 3;; esac;;\n\
         esac\n",
    );
    format!(
        "[[extension]]\nname = \"naming\"\ntype = \"script\"\nphase = \"pre\"\nevents = [\"repository\"]\n\
         command = [{}, {}]\n",
        quoted(script),
        quoted(pre)
    )
}

#[test]
fn a_pre_extension_vetoes_a_creation_and_a_deletion_and_the_user_sees_why() {
    let site = Sandbox::new();
    site.configure(&format!("{PERSONAL}\n{}", naming_extension(&site)));

    let run = ssh(&site, "alice", "create users/alice/Notes").run();
    refused(&run, "users/alice/Notes is not created: naming: names are lowercase");
    assert!(!site.repos.join("users/alice").exists(), "nothing is made for a vetoed repository");
    done(&ssh(&site, "alice", "create users/alice/keepsake").run(), "created users/alice/keepsake (git)\n");
    let run = ssh(&site, "alice", "delete users/alice/keepsake").run();
    refused(&run, "users/alice/keepsake is not deleted: naming: users/alice/keepsake stays");
    assert!(site.repos.join("users/alice/keepsake.git/HEAD").is_file());
    // Not asked when the rules refuse.
    refused(&ssh(&site, "alice", "create users/bob/Notes").run(), "alice may not create users/bob/Notes");

    let schema = repository_schema();
    let mut seen = Vec::new();
    for path in files_under(&site.root.join("pre")).iter().filter(|p| p.extension().is_some_and(|e| e == "json")) {
        let event: serde_json::Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
        assert_valid(&schema, &event);
        assert_eq!(
            (&event["phase"], &event["user"]["name"], &event["user"]["via"]),
            (&"pre".into(), &"alice".into(), &"ssh".into())
        );
        seen.push((
            event["action"].as_str().unwrap().to_string(),
            event["repository"]["name"].as_str().unwrap().to_string(),
        ));
    }
    seen.sort();
    assert_eq!(
        seen,
        [
            ("created".to_string(), "users/alice/Notes".to_string()),
            ("created".to_string(), "users/alice/keepsake".to_string()),
            ("deleted".to_string(), "users/alice/keepsake".to_string()),
        ]
    );
    let env = std::fs::read_to_string(site.root.join("pre/env")).unwrap();
    let root = site.repos.display();
    assert_eq!(env.lines().next().unwrap(), format!("pre alice users/alice/Notes {root}"), "scripts run in repos_root");
}

#[test]
fn post_extensions_are_told_of_creations_and_deletions_in_order() {
    let site = Sandbox::new();
    let receiver = Receiver::ok();
    site.configure(&format!(
        "[groups]\nstaff = [\"alice\"]\n{PERSONAL}\n{}\n{}\n{}",
        site.recorder("lifecycle", "events = [\"repository\"]"),
        site.recorder("pushes", ""),
        post_http("hook", &receiver.url("/hook"), "events = [\"repository\"]"),
    ));

    ssh(&site, "alice", "create users/alice/x").ok();
    let work = work_with(&site, "alice", "host:users/alice/x", "work", &[("README", "x\n")]);
    git_over_ssh(&site, &work, "alice", &["push", "--quiet", "origin", "main"]).ok();
    ssh(&site, "alice", "delete users/alice/x").ok();
    ssh(&site, "alice", "create --hg users/alice/x").ok();
    refused(&ssh(&site, "bob", "delete users/alice/x").run(), "bob may not delete");

    let events = site.events("lifecycle");
    let told: Vec<(&str, &str)> =
        events.iter().map(|e| (e["action"].as_str().unwrap(), e["repository"]["vcs"].as_str().unwrap())).collect();
    assert_eq!(told, [("created", "git"), ("deleted", "git"), ("created", "hg")]);
    let schema = repository_schema();
    for event in &events {
        assert_valid(&schema, event);
        assert_eq!(event["phase"], "post");
        assert_eq!(event["repository"]["name"], "users/alice/x");
        assert_eq!(event["user"], serde_json::json!({"name": "alice", "groups": ["staff"], "via": "ssh"}));
    }
    assert_eq!(events[0]["repository"]["path"], site.repos.join("users/alice/x.git").to_str().unwrap());
    assert_eq!(events[2]["repository"]["path"], site.repos.join("users/alice/x").to_str().unwrap());
    // One sequence for everything that happens to a repository name, the push included.
    let pushes = site.events("pushes");
    assert_eq!(pushes.len(), 1, "{pushes:#?}");
    let sequences: Vec<u64> =
        [&events[0], &pushes[0], &events[1], &events[2]].iter().map(|e| e["sequence"].as_u64().unwrap()).collect();
    assert_eq!(sequences, [1, 2, 3, 4]);

    let requests = receiver.take(3);
    for (request, event) in requests.iter().zip(&events) {
        assert_eq!(request.header("X-Pushgate-Event"), "repository");
        assert_eq!(request.json(), *event);
    }
    site.wait_for_detached_deliverers();
    receiver.assert_no_more();
}

#[test]
fn a_shell_killed_while_it_creates_or_deletes_still_tells_what_happened_and_only_that() {
    let site = Sandbox::new();
    site.configure(&format!("{PERSONAL}\n{}", site.recorder("lifecycle", "events = [\"repository\"]")));

    // Killed after the record, before the repository is made: nothing happened.
    let run = ssh(&site, "alice", "create users/alice/never").env("PUSHGATE_CRASH_AT", "shell:after-record").run();
    assert_ne!(run.code, Some(0), "{run}");
    // Killed once the repository is in place, before its event is confirmed.
    let run = ssh(&site, "alice", "create users/alice/made").env("PUSHGATE_CRASH_AT", "shell:before-settle").run();
    assert_ne!(run.code, Some(0), "{run}");
    assert!(site.repos.join("users/alice/made.git/HEAD").is_file());
    assert!(!site.repos.join("users/alice/never.git").exists());
    let run = ssh(&site, "alice", "delete users/alice/made").env("PUSHGATE_CRASH_AT", "shell:before-settle").run();
    assert_ne!(run.code, Some(0), "{run}");
    assert!(!site.repos.join("users/alice/made.git").exists());

    let told: Vec<(String, String)> = site
        .events("lifecycle")
        .iter()
        .map(|e| (e["action"].as_str().unwrap().into(), e["repository"]["name"].as_str().unwrap().into()))
        .collect();
    assert_eq!(
        told,
        [
            ("created".to_string(), "users/alice/made".to_string()),
            ("deleted".to_string(), "users/alice/made".to_string())
        ]
    );
}

#[test]
fn info_lists_what_the_user_may_do_in_each_repository_and_what_they_may_create() {
    let site = Sandbox::new();
    site.configure(PERSONAL);
    site.git_repo("team/app.git");
    for (user, command) in
        [("alice", "create users/alice/notes"), ("alice", "create --hg users/alice/h"), ("bob", "create users/bob/x")]
    {
        ssh(&site, user, command).ok();
    }

    let run = ssh(&site, "alice", "info").run();
    done(
        &run,
        &format!(
            "hello alice, this is pushgate {VERSION}\n\
             \x20 team/app           git  read, create, update, force, delete\n\
             \x20 users/alice/h      hg   read, create, update, force, delete, repo-delete\n\
             \x20 users/alice/notes  git  read, create, update, force, delete, repo-delete\n\
             you may create (create [--hg] <name>): users/alice/*\n"
        ),
    );

    let json: serde_json::Value = serde_json::from_str(&ssh(&site, "bob", "info --json").ok()).unwrap();
    assert_eq!(json["user"], "bob");
    assert_eq!(json["create"], serde_json::json!(["users/bob/*"]));
    let names: Vec<&str> =
        json["repositories"].as_array().unwrap().iter().map(|r| r["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["team/app", "users/bob/x"]);
    assert_eq!(json["repositories"][1]["vcs"], "git");
    assert_eq!(json["repositories"][0]["ops"], serde_json::json!(["read", "create", "update", "force", "delete"]));

    site.configure("[[rule]]\nrepos = [\"team/*\"]\nusers = [\"alice\"]\nallow = [\"read\"]\n");
    done(
        &ssh(&site, "eve", "info").run(),
        &format!(
            "hello eve, this is pushgate {VERSION}\nno repository here that you may read or write\nyou may not create repositories\n"
        ),
    );
}

#[test]
fn hostile_names_and_places_are_refused_with_one_line() {
    let site = Sandbox::new();
    site.configure(PERSONAL);
    std::fs::create_dir_all(site.repos.join("users/alice/plain.git")).unwrap();
    std::fs::write(site.repos.join("users/alice/file"), "").unwrap();
    std::fs::create_dir(site.root.join("outside")).unwrap();
    std::os::unix::fs::symlink(site.root.join("outside"), site.repos.join("users/carol")).unwrap();
    ssh(&site, "alice", "create users/alice/real").ok();
    let work = site.repos.join("users/alice/.pushgate-new-1-x.git");
    std::fs::create_dir_all(work.join("objects")).unwrap();
    std::fs::write(work.join("HEAD"), "ref: refs/heads/main\n").unwrap();

    let segments = "segments of 1-100 characters of [A-Za-z0-9._@+-]";
    for (user, command, reason) in [
        ("alice", "create users/alice/../bob/x", "`..` and `.` are not allowed"),
        ("alice", "create ../x", "`..` and `.` are not allowed"),
        ("alice", "create users/alice/./x", "`..` and `.` are not allowed"),
        ("alice", "create users/alice/.hidden", segments),
        ("alice", "create users/alice/.pushgate-new-2-y", segments),
        ("alice", "create 'users/alice/$(touch pwned)'", segments),
        ("alice", "create 'users/alice/a b'", segments),
        ("alice", "create 'users/alice/a\nb'", segments),
        ("alice", "create 'users/alice/*'", segments),
        ("alice", "create users/alice/-rf", segments),
        ("alice", "create users//alice/x", segments),
        ("alice", "create users/alice/x/y/z", "at most 4 segments"),
        ("alice", "create users/alice.git/x", "only the last segment of a repository name may end in `.git`"),
        ("alice", "create --hg users/alice/x.git", "a Mercurial repository's name cannot end in `.git`"),
        ("alice", "create users/alice/x.git.git", "`.git` once at most"),
        ("alice", "create ''", "no repository named"),
        ("alice", "create /", "no repository named"),
        ("alice", "create users/alice/plain", "users/alice/plain.git exists and is not a repository"),
        ("alice", "create users/alice/real/inner", "alice may not create users/alice/real/inner"),
        ("carol", "create users/carol/x", "users/carol is a symlink"),
        ("alice", "create a b", "usage: create [--hg] <repo>, delete <repo>, info [--json]"),
        ("alice", "delete users/alice/.pushgate-new-1-x", "a repository being created or deleted is not served"),
        ("alice", "delete ../outside", "`..` and `.` are not allowed"),
        ("alice", "delete users/alice/plain", "no such repository"),
        ("alice", "info everything", "usage: "),
        ("al ice", "info", "invalid user name"),
    ] {
        refused(&ssh(&site, user, command).run(), reason);
    }
    assert!(!site.root.join("pwned").exists() && !site.root.join("home/pwned").exists(), "a name ran as a command");
    assert_eq!(names_in(&site.root.join("outside")), Vec::<String>::new());
    assert_eq!(names_in(&site.repos.join("users/alice")), [".pushgate-new-1-x.git", "file", "plain.git", "real.git"]);
    let run = git_over_ssh(&site, &site.root, "alice", &["ls-remote", "host:users/alice/.pushgate-new-1-x"]).run();
    assert_eq!(run.all_pushgate_lines().len(), 1, "{run}");
}

#[test]
fn a_clients_git_and_hg_settings_do_not_reach_the_repository_it_creates() {
    let site = Sandbox::new();
    site.configure(PERSONAL);
    // A template whose pre-receive lets everything through, and settings that move or
    // switch off the hooks: what sshd would pass on under `AcceptEnv *`.
    let template = site.root.join("evil-template");
    std::fs::create_dir_all(template.join("hooks")).unwrap();
    std::fs::write(template.join("hooks/pre-receive"), "#!/bin/sh\nexit 0\n").unwrap();
    let run = ssh(&site, "alice", "create users/alice/safe")
        .env("GIT_TEMPLATE_DIR", &template)
        .env("GIT_CONFIG_PARAMETERS", "'core.hookspath'='/nonexistent'")
        .env("GIT_CONFIG_COUNT", "1")
        .env("GIT_CONFIG_KEY_0", "core.hooksPath")
        .env("GIT_CONFIG_VALUE_0", "/nonexistent")
        .env("HGRCPATH", site.root.join("evil.hgrc"))
        .run();
    done(&run, "created users/alice/safe (git)\n");

    let repo = site.repos.join("users/alice/safe.git");
    assert!(repo.join("hooks/pre-receive").is_symlink(), "pushgate's own hook, not the template's");
    let hooks_path = site.git(&repo, &["config", "--get", "core.hooksPath"]).run();
    assert_eq!(hooks_path.stdout, "", "{hooks_path}");
    let work = work_with(&site, "alice", "host:users/alice/safe", "work", &[("secret/key", "x\n")]);
    let run = git_over_ssh(&site, &work, "alice", &["push", "origin", "main"]).run();
    assert_eq!(run.code, Some(1), "{run}");
    assert!(run.all_pushgate_lines().iter().any(|l| l.contains("secret/key: create denied")), "{run}");
}

#[test]
fn personal_branches_in_a_shared_repository_are_the_users_own() {
    let site = Sandbox::new();
    site.configure(PERSONAL);
    let repo = site.git_repo("team/app.git");
    let work = site.git_work("work");

    git_over_ssh(&site, &work, "alice", &["push", "--quiet", "host:team/app", "main:users/alice/topic"]).ok();
    let run = git_over_ssh(&site, &work, "alice", &["push", "host:team/app", "main:users/bob/topic"]).run();
    assert_eq!(run.code, Some(1), "{run}");
    assert_eq!(
        run.all_pushgate_lines(),
        [
            "pushgate: push rejected for alice",
            "pushgate: refs/heads/users/bob/topic: create denied (no rule allows it)"
        ]
    );
    git_over_ssh(&site, &work, "alice", &["push", "--quiet", "--force", "host:team/app", "main~0:users/alice/topic"])
        .ok();
    let heads = site.git(&repo, &["for-each-ref", "--format=%(refname)"]).ok();
    assert_eq!(heads.trim(), "refs/heads/users/alice/topic");
}

#[test]
fn a_real_sshd_runs_create_info_and_delete_for_the_keys_owner() {
    let site = Sandbox::new();
    site.configure(PERSONAL);
    let Some(sshd) = Sshd::start(&site, &["alice", "bob"]) else { return };
    let me = site.command("id").arg("-un").ok();
    let ssh = |key: &str, command: &str| {
        site.command("sh").args(["-c", &format!("{} {me}@127.0.0.1 {command}", sshd.ssh_as(key))]).run()
    };

    done(&ssh("alice", "create users/alice/remote"), "created users/alice/remote (git)\n");
    refused(&ssh("bob", "create users/alice/other"), "bob may not create users/alice/other (no rule allows it)");
    let url = format!("{me}@127.0.0.1:users/alice/remote");
    site.git(&site.root, &["clone", "--quiet", &url, "work"]).env("GIT_SSH_COMMAND", sshd.ssh_as("alice")).ok();
    let work = site.root.join("work");
    std::fs::write(work.join("README"), "remote\n").unwrap();
    site.git(&work, &["add", "README"]).ok();
    site.git(&work, &["commit", "--quiet", "-m", "First"]).ok();
    site.git(&work, &["push", "--quiet", "origin", "HEAD:refs/heads/main"])
        .env("GIT_SSH_COMMAND", sshd.ssh_as("alice"))
        .ok();
    let info = ssh("alice", "info");
    assert_eq!(
        info.stdout_lines()[1],
        "  users/alice/remote  git  read, create, update, force, delete, repo-delete",
        "{info}"
    );
    refused(&ssh("bob", "delete users/alice/remote"), "bob may not delete users/alice/remote (no rule allows it)");
    done(&ssh("alice", "delete users/alice/remote"), "deleted users/alice/remote (git)\n");
    assert!(!site.repos.join("users/alice/remote.git").exists());
    drop(sshd);
}

#[test]
fn a_spool_that_cannot_take_the_event_refuses_unless_on_full_accepts() {
    let site = Sandbox::new();
    let write_config = |on_full: &str| {
        let text = format!(
            "repos_root = {}\n{PERSONAL}\n{}\n[spool]\ndir = {}\non_full = {}\n",
            quoted(&site.repos),
            site.recorder("lifecycle", "events = [\"repository\"]"),
            quoted(site.root.join("not-a-dir/spool")),
            quoted(on_full),
        );
        std::fs::write(&site.config, text).unwrap();
    };
    std::fs::write(site.root.join("not-a-dir"), "a file where the spool's parent should be\n").unwrap();

    write_config("reject");
    let run = ssh(&site, "alice", "create users/alice/x").run();
    refused(&run, "users/alice/x is not created: the spool");
    assert!(!site.repos.join("users/alice/x.git").exists());

    write_config("accept");
    let run = ssh(&site, "alice", "create users/alice/x").run();
    assert_eq!((run.code, run.stdout.as_str()), (Some(0), "created users/alice/x (git)\n"), "{run}");
    assert!(
        run.stderr.starts_with("pushgate: warning: going ahead, but its event is NOT recorded (the spool "),
        "{run}"
    );
    assert!(site.repos.join("users/alice/x.git/HEAD").is_file());
}
