//! The gate itself: real pushes through the installed pre-receive hook, decided by the ref
//! pass, the path pass and the size limit; the hooks run by hand on bad input.

use crate::harness::{TestServer, ZERO, updates};

/// Maintainers do anything on main, everyone else only creates and fast-forwards it; only
/// maintainers touch deploy/; any branch or tag is open otherwise.
const RULES: &str = r#"
[groups]
maintainers = ["alice"]

[[rule]]
refs = ["refs/heads/main"]
users = ["@maintainers"]
allow = ["all"]

[[rule]]
refs = ["refs/heads/main"]
users = ["*"]
allow = ["create", "update"]
deny = ["force", "delete"]
message = "main is protected"

[[rule]]
refs = ["refs/**"]
paths = ["deploy/**"]
users = ["@maintainers"]
allow = ["create", "update", "force"]

[[rule]]
refs = ["refs/**"]
paths = ["deploy/**"]
users = ["*"]
deny = ["create", "update", "force", "delete"]

[[rule]]
refs = ["refs/heads/**", "refs/tags/**"]
users = ["*"]
allow = ["all"]
"#;

fn server() -> TestServer {
    TestServer::new().config(RULES).install(&[])
}

/// A server whose main alice has pushed, holding README.md.
fn server_with_main() -> TestServer {
    let server = server();
    server.work().commit(&[("README.md", "# app\n")]);
    server.push_as("alice", &["origin", "HEAD:refs/heads/main"]).assert_accepted();
    server
}

#[test]
fn a_create_lands_when_a_rule_allows_it() {
    let server = server();
    let tip = server.work().commit(&[("README.md", "# app\n")]);

    let pushed = server.push_as("bob", &["origin", "HEAD:refs/heads/main"]);

    pushed.assert_accepted();
    assert_eq!(pushed.pushgate_lines(), Vec::<String>::new());
    assert_eq!(server.ref_target("refs/heads/main"), Some(tip));
}

#[test]
fn a_fast_forward_is_an_update() {
    let server = server_with_main();
    let tip = server.work().commit(&[("src/lib.rs", "// more\n")]);

    server.push_as("bob", &["origin", "HEAD:refs/heads/main"]).assert_accepted();

    assert_eq!(server.ref_target("refs/heads/main"), Some(tip));
}

#[test]
fn a_force_push_to_a_protected_branch_is_rejected_with_the_rule_and_its_message() {
    let server = server_with_main();
    let before = server.ref_target("refs/heads/main");
    server.work().git(&["commit", "--quiet", "--amend", "-m", "Rewrite history"]).ok();

    let pushed = server.push_as("bob", &["--force", "origin", "HEAD:refs/heads/main"]);

    pushed.assert_rejected();
    assert_eq!(
        pushed.pushgate_lines(),
        ["pushgate: push rejected for bob", "pushgate: refs/heads/main: force denied (rule 2: main is protected)"]
    );
    assert!(pushed.stderr.contains("[remote rejected] HEAD -> main (pre-receive hook declined)"), "{pushed}");
    assert_eq!(server.ref_target("refs/heads/main"), before);
}

#[test]
fn a_maintainer_may_force_push_the_protected_branch() {
    let server = server_with_main();
    let rewritten = {
        server.work().git(&["commit", "--quiet", "--amend", "-m", "Rewrite history"]).ok();
        server.work().head()
    };

    server.push_as("alice", &["--force", "origin", "HEAD:refs/heads/main"]).assert_accepted();

    assert_eq!(server.ref_target("refs/heads/main"), Some(rewritten));
}

#[test]
fn deleting_a_protected_branch_is_rejected_and_deleting_a_topic_branch_is_not() {
    let server = server_with_main();
    server.push_as("bob", &["origin", "HEAD:refs/heads/topic"]).assert_accepted();

    let pushed = server.push_as("bob", &["origin", ":refs/heads/main"]);
    pushed.assert_rejected();
    assert_eq!(
        pushed.pushgate_lines(),
        ["pushgate: push rejected for bob", "pushgate: refs/heads/main: delete denied (rule 2: main is protected)"]
    );
    assert!(server.ref_target("refs/heads/main").is_some());

    server.push_as("bob", &["origin", ":refs/heads/topic"]).assert_accepted();
    assert_eq!(server.ref_target("refs/heads/topic"), None);
}

#[test]
fn a_ref_no_rule_covers_is_denied() {
    let server = server_with_main();

    let pushed = server.push_as("bob", &["origin", "HEAD:refs/review/42"]);

    pushed.assert_rejected();
    assert_eq!(
        pushed.pushgate_lines(),
        ["pushgate: push rejected for bob", "pushgate: refs/review/42: create denied (no rule allows it)"]
    );
    assert_eq!(server.ref_target("refs/review/42"), None);
}

#[test]
fn every_reason_of_a_push_is_listed() {
    let server = server_with_main();
    server.work().git(&["commit", "--quiet", "--amend", "-m", "Rewrite history"]).ok();
    server.work().commit(&[("deploy/prod.yml", "replicas: 3\n")]);

    let pushed = server.push_as("bob", &["--force", "origin", "HEAD:refs/heads/main", "HEAD:refs/review/1"]);

    pushed.assert_rejected();
    assert_eq!(
        pushed.pushgate_lines(),
        [
            "pushgate: push rejected for bob",
            "pushgate: refs/heads/main: force denied (rule 2: main is protected)",
            "pushgate: refs/heads/main: deploy/prod.yml: force denied (rule 4)",
            "pushgate: refs/review/1: create denied (no rule allows it)",
            "pushgate: refs/review/1: deploy/prod.yml: create denied (rule 4)",
        ]
    );
}

#[test]
fn garbage_on_pre_receive_stdin_is_rejected_naming_the_line() {
    let server = server_with_main();
    let main = server.ref_target("refs/heads/main").unwrap();
    let input = format!("{}this is not an update\n", updates(&[(ZERO, &main, "refs/heads/ok")]));

    let run = server.hook("bob", &["pre-receive"]).stdin(input).run();

    run.assert_code(1).assert_no_panic();
    let lines = run.stderr_lines();
    assert_eq!(lines.len(), 1, "{run}");
    assert!(lines[0].starts_with("pushgate: push rejected: malformed hook input: line 2: "), "{run}");
}

#[test]
fn pre_receive_run_by_hand_decides_like_a_push() {
    let server = server_with_main();
    let main = server.ref_target("refs/heads/main").unwrap();

    let allowed = server.hook("bob", &["pre-receive"]).stdin(updates(&[(ZERO, &main, "refs/heads/topic")])).run();
    allowed.assert_code(0);

    let denied = server.hook("bob", &["pre-receive"]).stdin(updates(&[(&main, ZERO, "refs/heads/main")])).run();
    denied.assert_code(1);
    assert_eq!(
        denied.stderr_lines(),
        ["pushgate: push rejected for bob", "pushgate: refs/heads/main: delete denied (rule 2: main is protected)"]
    );
}

#[test]
fn an_update_for_an_object_the_repository_lacks_fails_closed() {
    let server = server_with_main();
    let missing = "1234567890123456789012345678901234567890";

    let run = server.hook("bob", &["pre-receive"]).stdin(updates(&[(ZERO, missing, "refs/heads/x")])).run();

    run.assert_code(1).assert_no_panic();
    assert_eq!(run.stderr_lines().len(), 1, "{run}");
    assert!(run.stderr.starts_with("pushgate: push rejected: "), "{run}");
}

#[test]
fn the_update_hook_run_with_bad_arguments_rejects() {
    let server = server_with_main();
    let main = server.ref_target("refs/heads/main").unwrap();

    let bad_id = server.hook("bob", &["update", "refs/heads/main", "not-an-id", &main]).run();
    bad_id.assert_no_panic();
    assert_eq!(bad_id.code, Some(1), "{bad_id}");
    assert!(
        bad_id.stderr.starts_with("pushgate: push rejected: malformed update hook arguments: old id: "),
        "{bad_id}"
    );

    let bad_ref = server.hook("bob", &["update", "main", ZERO, &main]).run();
    assert_eq!(bad_ref.code, Some(1), "{bad_ref}");
    assert!(bad_ref.stderr.contains("does not start with refs/"), "{bad_ref}");

    let too_few = server.hook("bob", &["update", "refs/heads/main"]).run();
    too_few.assert_no_panic();
    assert_ne!(too_few.code, Some(0), "{too_few}");
}

#[test]
fn the_update_hook_decides_one_ref() {
    let server = server_with_main();
    let main = server.ref_target("refs/heads/main").unwrap();

    server.hook("bob", &["update", "refs/heads/topic", ZERO, &main]).run().assert_code(0);
    let denied = server.hook("bob", &["update", "refs/heads/main", &main, ZERO]).run();
    denied.assert_code(1);
    assert_eq!(
        denied.stderr_lines(),
        ["pushgate: push rejected for bob", "pushgate: refs/heads/main: delete denied (rule 2: main is protected)"]
    );
}

#[test]
fn sha256_repositories_are_gated_the_same_way() {
    let server = TestServer::with_object_format("sha256").config(RULES).install(&[]);
    let first = server.work().commit(&[("README.md", "# app\n")]);
    assert_eq!(first.len(), 64);
    server.push_as("bob", &["origin", "HEAD:refs/heads/main"]).assert_accepted();
    assert_eq!(server.ref_target("refs/heads/main"), Some(first));

    let tip = server.work().commit(&[("src/lib.rs", "// lib\n")]);
    server.push_as("bob", &["origin", "HEAD:refs/heads/main"]).assert_accepted();
    assert_eq!(server.ref_target("refs/heads/main"), Some(tip.clone()));

    server.work().commit(&[("deploy/prod.yml", "replicas: 3\n")]);
    let pushed = server.push_as("bob", &["origin", "HEAD:refs/heads/main"]);
    pushed.assert_rejected();
    assert_eq!(
        pushed.pushgate_lines(),
        ["pushgate: push rejected for bob", "pushgate: refs/heads/main: deploy/prod.yml: update denied (rule 4)"]
    );

    server.work().git(&["reset", "--quiet", "--hard", "HEAD~2"]).ok();
    let forced = server.push_as("bob", &["--force", "origin", "HEAD:refs/heads/main"]);
    forced.assert_rejected();
    assert_eq!(forced.pushgate_lines()[1], "pushgate: refs/heads/main: force denied (rule 2: main is protected)");
    assert_eq!(server.ref_target("refs/heads/main"), Some(tip));
}

/// With `receive.unpackLimit` set to `limit`, a path rule sees the commits of the push
/// while they are still in quarantine.
fn path_rules_see_quarantined_objects(limit: &str) {
    let server = server().git_config("receive.unpackLimit", limit);
    server.work().commit(&[("README.md", "# app\n")]);
    server.push_as("alice", &["origin", "HEAD:refs/heads/main"]).assert_accepted();
    let main = server.work().head();

    server.work().branch("deploying", &main);
    let denied_tip = server.work().commit(&[("deploy/x", "x\n")]);
    let denied = server.push_as("bob", &["origin", "HEAD:refs/heads/deploying"]);
    denied.assert_rejected();
    assert_eq!(
        denied.pushgate_lines(),
        ["pushgate: push rejected for bob", "pushgate: refs/heads/deploying: deploy/x: create denied (rule 4)"]
    );
    assert_eq!(server.ref_target("refs/heads/deploying"), None);
    assert!(!server.has_object(&denied_tip), "a rejected push's objects stay out of the repository");

    server.work().branch("coding", &main);
    let accepted_tip = server.work().commit(&[("src/x", "x\n")]);
    server.push_as("bob", &["origin", "HEAD:refs/heads/coding"]).assert_accepted();
    assert_eq!(server.ref_target("refs/heads/coding"), Some(accepted_tip));
    let left_behind: Vec<_> = std::fs::read_dir(server.root().join("tmp")).unwrap().collect();
    assert!(left_behind.is_empty(), "the hook left temporary files: {left_behind:?}");
}

#[test]
fn quarantined_objects_are_seen_when_they_arrive_as_a_pack() {
    path_rules_see_quarantined_objects("1");
}

#[test]
fn quarantined_objects_are_seen_when_they_arrive_loose() {
    path_rules_see_quarantined_objects("100000");
}

#[test]
fn an_annotated_tag_brings_its_commits_paths_to_the_path_pass() {
    let server = server_with_main();
    let main = server.work().head();
    server.work().commit(&[("deploy/x", "x\n")]);
    server.work().git(&["tag", "-a", "-m", "Release 1", "v1"]).ok();

    let denied = server.push_as("bob", &["origin", "refs/tags/v1"]);
    denied.assert_rejected();
    assert_eq!(
        denied.pushgate_lines(),
        ["pushgate: push rejected for bob", "pushgate: refs/tags/v1: deploy/x: create denied (rule 4)"]
    );
    assert_eq!(server.ref_target("refs/tags/v1"), None);

    server.work().branch("coding", &main);
    server.work().commit(&[("src/x", "x\n")]);
    server.work().git(&["tag", "-a", "-m", "Release 2", "v2"]).ok();
    server.push_as("bob", &["origin", "refs/tags/v2"]).assert_accepted();
    assert_eq!(server.ref_target("refs/tags/v2"), Some(server.work().rev("refs/tags/v2")));
}

#[test]
fn only_paths_a_new_commit_changes_are_checked() {
    let server = server();
    server.work().commit(&[("deploy/prod.yml", "replicas: 1\n")]);
    server.push_as("alice", &["origin", "HEAD:refs/heads/main"]).assert_accepted();

    // deploy/ is in the tree, but this commit does not change it.
    server.work().commit(&[("src/app.rs", "fn main() {}\n")]);
    server.push_as("bob", &["origin", "HEAD:refs/heads/main"]).assert_accepted();

    server.work().commit(&[("deploy/prod.yml", "replicas: 3\n")]);
    let pushed = server.push_as("bob", &["origin", "HEAD:refs/heads/main"]);
    pushed.assert_rejected();
    assert_eq!(
        pushed.pushgate_lines(),
        ["pushgate: push rejected for bob", "pushgate: refs/heads/main: deploy/prod.yml: update denied (rule 4)"]
    );
}

#[test]
fn removing_a_protected_path_is_a_change_to_it() {
    let server = server();
    server.work().commit(&[("deploy/prod.yml", "replicas: 1\n"), ("README.md", "# app\n")]);
    server.push_as("alice", &["origin", "HEAD:refs/heads/main"]).assert_accepted();

    server.work().remove(&["deploy/prod.yml"]);
    let pushed = server.push_as("bob", &["origin", "HEAD:refs/heads/main"]);

    pushed.assert_rejected();
    assert_eq!(pushed.pushgate_lines()[1], "pushgate: refs/heads/main: deploy/prod.yml: update denied (rule 4)");
}

#[test]
fn a_new_branch_at_an_existing_commit_brings_no_new_paths() {
    let server = server();
    server.work().commit(&[("deploy/prod.yml", "replicas: 1\n")]);
    server.push_as("alice", &["origin", "HEAD:refs/heads/main"]).assert_accepted();

    server.push_as("bob", &["origin", "HEAD:refs/heads/copy"]).assert_accepted();

    assert_eq!(server.ref_target("refs/heads/copy"), server.ref_target("refs/heads/main"));
}

/// main (by alice) gained deploy/config after bob branched topic off it.
fn server_with_diverged_topic() -> TestServer {
    let server = server_with_main();
    let base = server.work().head();
    server.work().commit(&[("deploy/config", "v2\n")]);
    server.push_as("alice", &["origin", "HEAD:refs/heads/main"]).assert_accepted();
    server.work().branch("topic", &base);
    server.work().commit(&[("src/feature.rs", "// feature\n")]);
    server
}

#[test]
fn a_merge_is_checked_against_its_first_parent_only() {
    let server = server_with_diverged_topic();
    server.work().branch("main", "origin/main");
    server.work().git(&["merge", "--quiet", "--no-ff", "-m", "Merge topic", "topic"]).ok();

    // First parent main: the merge changes src/feature.rs, not deploy/config.
    server.push_as("bob", &["origin", "HEAD:refs/heads/main"]).assert_accepted();
    assert_eq!(server.ref_target("refs/heads/main"), Some(server.work().head()));
}

#[test]
fn a_merge_lists_its_side_branch_files_against_the_first_parent() {
    let server = server_with_diverged_topic();
    server.work().git(&["merge", "--quiet", "--no-ff", "-m", "Merge main", "origin/main"]).ok();

    // First parent topic: against it, the merge adds deploy/config.
    let pushed = server.push_as("bob", &["origin", "HEAD:refs/heads/topic"]);

    pushed.assert_rejected();
    assert_eq!(
        pushed.pushgate_lines(),
        ["pushgate: push rejected for bob", "pushgate: refs/heads/topic: deploy/config: create denied (rule 4)"]
    );
}

#[test]
fn a_root_commit_changes_every_path_it_holds() {
    let server = server_with_main();
    server.work().git(&["checkout", "--quiet", "--orphan", "fresh"]).ok();
    server.work().git(&["rm", "--quiet", "-r", "--cached", "."]).ok();
    server.work().commit(&[("deploy/a", "a\n"), ("deploy/b/c", "c\n"), ("src/x", "x\n")]);

    let pushed = server.push_as("bob", &["origin", "HEAD:refs/heads/fresh"]);

    pushed.assert_rejected();
    assert_eq!(
        pushed.pushgate_lines(),
        [
            "pushgate: push rejected for bob",
            "pushgate: refs/heads/fresh: deploy/a: create denied (rule 4)",
            "pushgate: refs/heads/fresh: deploy/b/c: create denied (rule 4)",
        ]
    );
}

#[test]
fn deletes_skip_the_path_pass() {
    let server = server_with_main();
    server.work().commit(&[("deploy/x", "x\n")]);
    server.push_as("alice", &["origin", "HEAD:refs/heads/ops"]).assert_accepted();

    // Rule 4 denies `delete` on deploy/**, but a delete changes no paths.
    server.push_as("bob", &["origin", ":refs/heads/ops"]).assert_accepted();

    assert_eq!(server.ref_target("refs/heads/ops"), None);
}

const LIMITED: &str = r#"
[limits]
max_blob_size = "100 KiB"

[[rule]]
users = ["*"]
allow = ["all"]
"#;

#[test]
fn a_blob_over_max_blob_size_rejects_the_push() {
    let server = TestServer::new().config(LIMITED).install(&[]);
    server.work().commit(&[("README.md", "# app\n")]);
    server.push_as("bob", &["origin", "HEAD:refs/heads/main"]).assert_accepted();
    let big: Vec<u8> = (0..300 * 1024).map(|i: u32| (i.wrapping_mul(2_654_435_761) >> 24) as u8).collect();
    let tip = server.work().commit_bytes(&[("big.bin", &big), ("small.txt", b"small\n")]);

    let pushed = server.push_as("bob", &["origin", "HEAD:refs/heads/x"]);

    pushed.assert_rejected();
    assert_eq!(
        pushed.pushgate_lines(),
        [
            "pushgate: push rejected for bob".to_string(),
            format!("pushgate: refs/heads/x: big.bin (300.0 KiB) in {} exceeds max_blob_size 100 KiB", &tip[..7]),
        ]
    );
    assert_eq!(server.ref_target("refs/heads/x"), None);
}

#[test]
fn blobs_within_max_blob_size_pass() {
    let server = TestServer::new().config(LIMITED).install(&[]);
    let tip = server.work().commit(&[("medium.txt", "x".repeat(100 * 1024).as_str())]);

    server.push_as("bob", &["origin", "HEAD:refs/heads/x"]).assert_accepted();

    assert_eq!(server.ref_target("refs/heads/x"), Some(tip));
}

#[test]
fn rewinding_a_branch_is_a_force() {
    let server = server_with_main();
    server.work().commit(&[("src/a.rs", "// a\n")]);
    server.push_as("bob", &["origin", "HEAD:refs/heads/main"]).assert_accepted();
    let before = server.ref_target("refs/heads/main");
    server.work().git(&["reset", "--quiet", "--hard", "HEAD~1"]).ok();

    let pushed = server.push_as("bob", &["--force", "origin", "HEAD:refs/heads/main"]);

    pushed.assert_rejected();
    assert_eq!(pushed.pushgate_lines()[1], "pushgate: refs/heads/main: force denied (rule 2: main is protected)");
    assert_eq!(server.ref_target("refs/heads/main"), before);
}

#[test]
fn many_denied_paths_are_summed_up() {
    let server = server_with_main();
    let names: Vec<String> = (0..25).map(|i| format!("deploy/{i:02}.yml")).collect();
    let files: Vec<(&str, &str)> = names.iter().map(|n| (n.as_str(), "x\n")).collect();
    server.work().commit(&files);

    let pushed = server.push_as("bob", &["origin", "HEAD:refs/heads/main"]);

    pushed.assert_rejected();
    let lines = pushed.pushgate_lines();
    assert_eq!(lines.len(), 22, "{pushed}");
    assert_eq!(lines[1], "pushgate: refs/heads/main: deploy/00.yml: update denied (rule 4)");
    assert_eq!(lines[20], "pushgate: refs/heads/main: deploy/19.yml: update denied (rule 4)");
    assert_eq!(lines[21], "pushgate: refs/heads/main: … and 5 more paths denied");
}

#[test]
fn a_fork_sharing_objects_through_alternates_is_read_in_full() {
    let server = server();
    let upstream = server.root().join("upstream.git");
    server.sandbox.git(server.root(), &["init", "--quiet", "--bare"]).arg(&upstream).ok();
    let base = server.work().commit(&[("README.md", "# app\n"), ("deploy/prod.yml", "replicas: 1\n")]);
    server.work().push_as("alice", &[upstream.to_str().unwrap(), "HEAD:refs/heads/main"]).assert_accepted();
    // The fork (server.git) borrows upstream's objects, like a hosting service's forks.
    std::fs::write(server.repo.join("objects/info/alternates"), format!("{}\n", upstream.join("objects").display()))
        .unwrap();
    server.git(&["update-ref", "refs/heads/main", &base]).ok();

    let tip = server.work().commit(&[("src/app.rs", "fn main() {}\n")]);
    server.push_as("bob", &["origin", "HEAD:refs/heads/main"]).assert_accepted();
    assert_eq!(server.ref_target("refs/heads/main"), Some(tip));

    server.work().commit(&[("deploy/prod.yml", "replicas: 3\n")]);
    let pushed = server.push_as("bob", &["origin", "HEAD:refs/heads/main"]);
    pushed.assert_rejected();
    assert_eq!(
        pushed.pushgate_lines(),
        ["pushgate: push rejected for bob", "pushgate: refs/heads/main: deploy/prod.yml: update denied (rule 4)"]
    );
}

#[test]
fn a_large_blob_already_in_the_repository_is_not_new() {
    let server = TestServer::new().config("[[rule]]\nusers = [\"*\"]\nallow = [\"all\"]\n").install(&[]);
    let big: Vec<u8> = (0..300 * 1024).map(|i: u32| (i.wrapping_mul(2_654_435_761) >> 24) as u8).collect();
    server.work().commit_bytes(&[("legacy.bin", &big)]);
    server.push_as("bob", &["origin", "HEAD:refs/heads/main"]).assert_accepted();
    // The limit comes after the file did.
    std::fs::write(server.config_path(), LIMITED).unwrap();

    server.work().git(&["update-index", "--chmod=+x", "legacy.bin"]).ok();
    server.work().git(&["commit", "--quiet", "-m", "Make it executable"]).ok();
    server.work().git(&["mv", "legacy.bin", "renamed.bin"]).ok();
    server.work().git(&["commit", "--quiet", "-m", "Rename it"]).ok();
    let pushed = server.push_as("bob", &["origin", "HEAD:refs/heads/main"]);

    pushed.assert_accepted();
    assert_eq!(pushed.pushgate_lines(), Vec::<String>::new());
}

const GLOBS: &str = r#"
[[rule]]
paths = ["*.pem", "deploy/**", "docs/v?/[a-c]*.md"]
users = ["*"]
deny = ["create", "update", "force"]

[[rule]]
refs = ["refs/heads/*", "refs/heads/release/v?.[0-9]", "refs/tags/**"]
users = ["*"]
allow = ["all"]
"#;

#[test]
fn ref_globs_star_stays_in_a_segment_and_double_star_crosses_them() {
    let server = TestServer::new().config(GLOBS).install(&[]);
    server.work().commit(&[("README.md", "# app\n")]);

    for allowed in ["refs/heads/main", "refs/heads/release/v1.2", "refs/tags/v1", "refs/tags/a/b/c"] {
        server.push_as("bob", &["origin", &format!("HEAD:{allowed}")]).assert_accepted();
    }
    for denied in ["refs/heads/team/topic", "refs/heads/release/v10.2", "refs/heads/release/v1.x"] {
        let pushed = server.push_as("bob", &["origin", &format!("HEAD:{denied}")]);
        pushed.assert_rejected();
        assert_eq!(pushed.pushgate_lines()[1], format!("pushgate: {denied}: create denied (no rule allows it)"));
    }
}

#[test]
fn path_globs_without_a_slash_match_at_any_depth_and_others_from_the_top() {
    let server = TestServer::new().config(GLOBS).install(&[]);
    server.work().commit(&[("README.md", "# app\n")]);
    server.push_as("bob", &["origin", "HEAD:refs/heads/main"]).assert_accepted();
    server.work().commit(&[
        ("keys/server.pem", "secret\n"),
        ("server.pem", "secret\n"),
        ("src/deploy/x", "not the top-level deploy/\n"),
        ("docs/v1/api.md", "api\n"),
        ("docs/v1/guide.md", "guide\n"),
        ("docs/v10/api.md", "api\n"),
    ]);

    let pushed = server.push_as("bob", &["origin", "HEAD:refs/heads/main"]);

    pushed.assert_rejected();
    assert_eq!(
        pushed.pushgate_lines(),
        [
            "pushgate: push rejected for bob",
            "pushgate: refs/heads/main: docs/v1/api.md: update denied (rule 1)",
            "pushgate: refs/heads/main: keys/server.pem: update denied (rule 1)",
            "pushgate: refs/heads/main: server.pem: update denied (rule 1)",
        ]
    );
}

#[test]
fn a_ref_to_a_bare_blob_or_tree_is_refused_while_contents_are_checked() {
    let server = TestServer::new()
        .config("[limits]\nmax_blob_size = \"1 KiB\"\n[[rule]]\nusers = [\"*\"]\nallow = [\"all\"]\n")
        .install(&[]);
    let work = server.work();
    std::fs::write(work.dir.join("big.bin"), "x".repeat(100_000)).unwrap();
    let blob = work.git(&["hash-object", "-w", "big.bin"]).ok();
    let tree = work.git(&["mktree"]).stdin(format!("100644 blob {blob}\tbig.bin\n")).ok();
    work.git(&["tag", "-a", "-m", "a tree", "ttree", &tree]).ok();

    let pushed = server.push_as("bob", &["origin", &format!("{blob}:refs/tags/bigblob")]);
    pushed.assert_rejected();
    assert!(
        pushed.pushgate_lines().iter().any(|l| l.contains("refs/tags/bigblob: points at a blob, not a commit")),
        "{pushed}"
    );

    let pushed = server.push_as("bob", &["origin", "refs/tags/ttree"]);
    pushed.assert_rejected();
    assert!(
        pushed.pushgate_lines().iter().any(|l| l.contains("refs/tags/ttree: points at a tree, not a commit")),
        "{pushed}"
    );
}

#[test]
fn a_push_to_a_symbolic_ref_is_judged_by_its_targets_rules_too() {
    let server = TestServer::new()
        .config(
            "[[rule]]\nrefs = [\"refs/heads/main\"]\nusers = [\"alice\"]\nallow = [\"all\"]\n\
             [[rule]]\nrefs = [\"refs/heads/main\"]\nusers = [\"*\"]\ndeny = [\"all\"]\n\
             [[rule]]\nrefs = [\"refs/heads/**\"]\nusers = [\"*\"]\nallow = [\"all\"]\n",
        )
        .install(&[]);
    server.work().commit(&[("README.md", "# app\n")]);
    server.push_as("alice", &["origin", "HEAD:refs/heads/main"]).assert_accepted();
    server.git(&["symbolic-ref", "refs/heads/master", "refs/heads/main"]).ok();
    server.work().commit(&[("README.md", "# changed\n")]);

    let pushed = server.push_as("bob", &["origin", "HEAD:refs/heads/master"]);

    pushed.assert_rejected();
    assert!(
        pushed.pushgate_lines().iter().any(|l| l.starts_with("pushgate: refs/heads/main: update denied")),
        "{pushed}"
    );
}
