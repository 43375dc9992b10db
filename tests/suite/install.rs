//! `pushgate install` / `uninstall`: the hooks that were there are kept and still run after
//! pushgate's verdict; installing is idempotent; uninstalling restores them exactly. Also
//! the binary behaving as a hook through a symlink, and the demo.

use crate::harness::{PUSHGATE, TestServer};
use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

const RULES: &str = r#"
[[rule]]
refs = ["refs/heads/release/**"]
users = ["*"]
deny = ["all"]

[[rule]]
users = ["*"]
allow = ["all"]
"#;

/// A pre-receive hook from before pushgate: it reports every ref and refuses `frozen`.
const LEGACY_PRE_RECEIVE: &str = r#"#!/bin/sh
# the team's old hook
while read old new ref; do
  echo "legacy hook: checked $ref"
  if [ "$ref" = refs/heads/frozen ]; then
    echo "legacy hook: $ref is frozen" >&2
    exit 1
  fi
done
"#;

fn write_hook(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// A server whose repository had `hooks/pre-receive` before pushgate was installed.
fn server_with_legacy_hook() -> TestServer {
    let server = TestServer::new().config(RULES);
    write_hook(&server.hooks().join("pre-receive"), LEGACY_PRE_RECEIVE);
    let server = server.install(&[]);
    server.work().commit(&[("README.md", "# app\n")]);
    server
}

/// Every file under `dir` with its contents and permission bits.
fn snapshot(dir: &Path) -> BTreeMap<String, (Vec<u8>, u32)> {
    let mut files = BTreeMap::new();
    let mut dirs = vec![dir.to_path_buf()];
    while let Some(current) = dirs.pop() {
        for entry in std::fs::read_dir(&current).unwrap().flatten() {
            let meta = entry.metadata().unwrap();
            let name = entry.path().strip_prefix(dir).unwrap().display().to_string();
            if meta.is_dir() {
                dirs.push(entry.path());
                files.insert(name + "/", (Vec::new(), meta.permissions().mode()));
            } else {
                files.insert(name, (std::fs::read(entry.path()).unwrap(), meta.permissions().mode()));
            }
        }
    }
    files
}

#[test]
fn an_existing_hook_is_moved_to_its_d_directory() {
    let server = server_with_legacy_hook();

    let kept = server.hooks().join("pre-receive.d/pre-receive");
    assert_eq!(std::fs::read_to_string(&kept).unwrap(), LEGACY_PRE_RECEIVE);
    let ours = std::fs::read_link(server.hooks().join("pre-receive")).unwrap();
    assert_eq!(ours, std::fs::canonicalize(PUSHGATE).unwrap(), "the hook is the binary itself");
    let entries: Vec<_> = std::fs::read_dir(server.hooks().join("pre-receive.d")).unwrap().flatten().collect();
    assert_eq!(entries.len(), 1);
}

#[test]
fn the_kept_hook_runs_after_an_accepting_verdict_and_its_output_reaches_the_pusher() {
    let server = server_with_legacy_hook();

    let pushed = server.push_as("bob", &["origin", "HEAD:refs/heads/main"]);

    pushed.assert_accepted();
    assert_eq!(pushed.remote_lines(), ["legacy hook: checked refs/heads/main"]);
    assert_eq!(server.ref_target("refs/heads/main"), Some(server.work().head()));
}

#[test]
fn the_kept_hook_can_still_reject() {
    let server = server_with_legacy_hook();

    let pushed = server.push_as("bob", &["origin", "HEAD:refs/heads/frozen"]);

    pushed.assert_rejected();
    let lines = pushed.remote_lines();
    assert_eq!(lines[..2], ["legacy hook: checked refs/heads/frozen", "legacy hook: refs/heads/frozen is frozen"]);
    assert_eq!(lines.len(), 3, "{pushed}");
    assert!(lines[2].starts_with("pushgate: push rejected: chained hook "), "{pushed}");
    assert!(lines[2].ends_with("hooks/pre-receive.d/pre-receive refused (exit 1)"), "{pushed}");
    assert_eq!(server.ref_target("refs/heads/frozen"), None);
}

#[test]
fn the_kept_hook_does_not_run_when_pushgate_rejects() {
    let server = server_with_legacy_hook();

    let pushed = server.push_as("bob", &["origin", "HEAD:refs/heads/release/1"]);

    pushed.assert_rejected();
    assert_eq!(
        pushed.remote_lines(),
        ["pushgate: push rejected for bob", "pushgate: refs/heads/release/1: create denied (rule 1)"]
    );
}

#[test]
fn installing_twice_changes_nothing() {
    let server = server_with_legacy_hook();
    let once = snapshot(&server.hooks());

    let server = server.install(&[]);

    assert_eq!(snapshot(&server.hooks()), once);
    assert!(!server.hooks().join("pre-receive.d/pre-receive.1").exists());
    server.push_as("bob", &["origin", "HEAD:refs/heads/main"]).assert_accepted();
}

#[test]
fn uninstall_restores_the_original_hooks_exactly() {
    let server = TestServer::new().config(RULES);
    write_hook(&server.hooks().join("pre-receive"), LEGACY_PRE_RECEIVE);
    write_hook(&server.hooks().join("post-receive"), "#!/bin/sh\necho 'legacy post-receive'\n");
    let before = snapshot(&server.hooks());
    let server = server.install(&[]).install(&[]);
    assert_ne!(snapshot(&server.hooks()), before);

    server.pushgate(&["uninstall"]).args([&server.repo]).ok();

    assert_eq!(snapshot(&server.hooks()), before);
    server.pushgate(&["uninstall"]).args([&server.repo]).ok();
    assert_eq!(snapshot(&server.hooks()), before, "uninstall is idempotent");
}

#[test]
fn after_uninstall_pushes_are_no_longer_gated() {
    let server = TestServer::new().config(RULES).install(&[]);
    server.work().commit(&[("README.md", "# app\n")]);
    server.pushgate(&["uninstall"]).args([&server.repo]).ok();

    server.work().push(&["origin", "HEAD:refs/heads/release/1"]).run().assert_accepted();
}

#[test]
fn install_advertises_push_options() {
    let server = TestServer::new().config(RULES).install(&[]);

    assert_eq!(server.git(&["config", "--get", "receive.advertisePushOptions"]).ok(), "true");
}

#[test]
fn the_kept_post_receive_hook_still_runs_with_the_push_input() {
    let server = TestServer::new().config(RULES);
    write_hook(
        &server.hooks().join("post-receive"),
        "#!/bin/sh\nwhile read old new ref; do echo \"post: $ref\"; done\n",
    );
    let server = server.install(&[]);
    server.work().commit(&[("README.md", "# app\n")]);

    let pushed = server.push_as("bob", &["origin", "HEAD:refs/heads/main"]);

    pushed.assert_accepted();
    assert_eq!(pushed.remote_lines(), ["post: refs/heads/main"]);
}

#[test]
fn per_ref_install_keeps_an_existing_update_hook_running_with_its_arguments() {
    let server = TestServer::new().config(RULES);
    write_hook(
        &server.hooks().join("update"),
        "#!/bin/sh\necho \"legacy update: $1\"\n[ \"$1\" != refs/heads/frozen ]\n",
    );
    let server = server.install(&["--per-ref"]);
    server.work().commit(&[("README.md", "# app\n")]);

    let pushed = server.push_as("bob", &["origin", "HEAD:refs/heads/main", "HEAD:refs/heads/frozen"]);

    assert_eq!(pushed.code, Some(1), "{pushed}");
    let lines = pushed.remote_lines();
    assert!(lines.contains(&"legacy update: refs/heads/main".to_string()), "{pushed}");
    assert!(lines.contains(&"legacy update: refs/heads/frozen".to_string()), "{pushed}");
    assert_eq!(server.ref_target("refs/heads/main"), Some(server.work().head()));
    assert_eq!(server.ref_target("refs/heads/frozen"), None);
}

#[test]
fn switching_to_per_ref_replaces_the_pre_receive_hook() {
    let server = TestServer::new().config(RULES).install(&[]);
    assert!(server.hooks().join("pre-receive").exists());

    let binary = std::fs::canonicalize(PUSHGATE).unwrap();
    let server = server.install(&["--per-ref"]);
    // Per ref, the update hook (the binary itself, beside pre-receive) decides each ref.
    assert_eq!(std::fs::read_link(server.hooks().join("pre-receive")).unwrap(), binary);
    assert_eq!(std::fs::read_link(server.hooks().join("update")).unwrap(), binary);

    let server = server.install(&[]);
    assert_eq!(std::fs::read_link(server.hooks().join("pre-receive")).unwrap(), binary);
    assert!(server.hooks().join("update").symlink_metadata().is_err());
}

#[test]
fn install_takes_a_relative_path() {
    let server = TestServer::new().config(RULES);
    server.pushgate(&["install", "server.git"]).current_dir(server.root()).ok();
    server.work().commit(&[("README.md", "# app\n")]);

    let pushed = server.push_as("bob", &["origin", "HEAD:refs/heads/release/1"]);

    pushed.assert_rejected();
    assert_eq!(pushed.pushgate_lines()[1], "pushgate: refs/heads/release/1: create denied (rule 1)");
}

#[test]
fn install_refuses_a_directory_that_is_not_a_repository() {
    let server = TestServer::new();
    let not_a_repo = server.root().join("home");

    let run = server.pushgate(&["install"]).args([&not_a_repo]).run();

    run.assert_code(2).assert_no_panic();
    assert!(run.stderr.contains("is not a Git repository"), "{run}");
}

#[test]
fn install_into_a_work_tree_uses_its_git_dir() {
    let server = TestServer::new().config(RULES);
    let target = server.clone_as("non-bare");

    server.pushgate(&["install"]).args([&target.dir]).ok();

    assert!(target.dir.join(".git/hooks/pre-receive").is_file());
    assert!(!target.dir.join("hooks").exists());
}

#[test]
fn the_binary_behaves_as_the_hook_it_is_named_after() {
    let server = TestServer::new().config(RULES);
    std::os::unix::fs::symlink(PUSHGATE, server.hooks().join("pre-receive")).unwrap();
    server.work().commit(&[("README.md", "# app\n")]);

    server.push_as("bob", &["origin", "HEAD:refs/heads/main"]).assert_accepted();
    let pushed = server.push_as("bob", &["origin", "HEAD:refs/heads/release/1"]);

    pushed.assert_rejected();
    assert_eq!(
        pushed.pushgate_lines(),
        ["pushgate: push rejected for bob", "pushgate: refs/heads/release/1: create denied (rule 1)"]
    );
    assert_eq!(server.ref_target("refs/heads/main"), Some(server.work().head()));
}

#[test]
fn the_binary_named_update_decides_per_ref() {
    let server = TestServer::new().config(RULES);
    std::os::unix::fs::symlink(PUSHGATE, server.hooks().join("update")).unwrap();
    server.work().commit(&[("README.md", "# app\n")]);

    let pushed = server.push_as("bob", &["origin", "HEAD:refs/heads/main", "HEAD:refs/heads/release/1"]);

    assert_eq!(pushed.code, Some(1), "{pushed}");
    assert_eq!(server.ref_target("refs/heads/main"), Some(server.work().head()));
    assert_eq!(server.ref_target("refs/heads/release/1"), None);
}

#[test]
fn the_demo_shows_accepted_and_rejected_pushes() {
    let server = TestServer::new();

    let run = server.pushgate(&["demo"]).run();

    run.assert_code(0).assert_no_panic();
    assert!(run.stdout.contains("* [new branch]      HEAD -> main"), "{run}");
    assert!(run.stdout.contains(": accepted"), "{run}");
    assert!(run.stdout.contains("remote: pushgate: push rejected for bob"), "{run}");
    assert!(run.stdout.contains("verdict: denied"), "{run}");
    let leftovers: Vec<_> = std::fs::read_dir(server.root().join("tmp")).unwrap().collect();
    assert!(leftovers.is_empty(), "the demo left files behind: {leftovers:?}");
}

#[test]
fn push_options_reach_an_installed_server() {
    let server = TestServer::new().config(RULES).install(&[]);
    server.work().commit(&[("README.md", "# app\n")]);

    let pushed = server.push_as("bob", &["--push-option=ci.skip", "origin", "HEAD:refs/heads/main"]);

    pushed.assert_accepted();
    assert_eq!(server.ref_target("refs/heads/main"), Some(server.work().head()));
}

#[test]
fn pushes_to_a_non_bare_repository_are_gated_and_named_by_its_work_tree() {
    let server = TestServer::new();
    let target = server.clone_as("app");
    target.commit(&[("README.md", "# app\n")]);
    let config = "[[rule]]\nrepos = [\"app\"]\nrefs = [\"refs/heads/ok/**\"]\nusers = [\"*\"]\nallow = [\"all\"]\n";
    let server = server.config(config);
    server.pushgate(&["install"]).args([&target.dir]).ok();
    server.work().commit(&[("src/x", "x\n")]);
    let app = target.dir.to_str().unwrap();

    server.work().push_as("bob", &[app, "HEAD:refs/heads/ok/1"]).assert_accepted();
    let pushed = server.work().push_as("bob", &[app, "HEAD:refs/heads/other"]);

    pushed.assert_rejected();
    assert_eq!(pushed.pushgate_lines()[1], "pushgate: refs/heads/other: create denied (no rule allows it)");
}

#[test]
fn install_gates_a_repository_that_uses_core_hooks_path() {
    let server = TestServer::new().config(RULES);
    let shared = server.root().join("shared-hooks");
    std::fs::create_dir(&shared).unwrap();
    let server = server.git_config("core.hooksPath", shared.to_str().unwrap()).install(&[]);
    server.work().commit(&[("README.md", "# app\n")]);

    let pushed = server.push_as("bob", &["origin", "HEAD:refs/heads/release/1"]);

    pushed.assert_rejected();
    assert_eq!(server.ref_target("refs/heads/release/1"), None);
}

#[test]
fn installing_over_a_pushgate_symlink_does_not_chain_pushgate_to_itself() {
    let server = TestServer::new().config(RULES);
    std::os::unix::fs::symlink(PUSHGATE, server.hooks().join("pre-receive")).unwrap();
    let server = server.install(&[]);
    server.work().commit(&[("README.md", "# app\n")]);

    let pushed = server
        .work()
        .push(&["origin", "HEAD:refs/heads/main"])
        .env("PUSHGATE_USER", "bob")
        .run_within(std::time::Duration::from_secs(5))
        .expect("the push hung: pushgate runs itself as its own chained hook, again and again");

    pushed.assert_accepted();
}
