//! The verdict: warnings that never reject, all-or-nothing pushes (and `--per-ref` ones),
//! and the audit trail of every decision.

use crate::harness::{TestServer, ZERO};
use serde_json::Value;

const RULES: &str = r#"
[[rule]]
refs = ["refs/heads/wip/**"]
users = ["*"]
deny = ["force"]
mode = "warn"
message = "force-pushing wip/ will be denied from March"

[[rule]]
refs = ["refs/heads/**"]
paths = ["docs/legacy/**"]
users = ["*"]
deny = ["create", "update", "force"]
mode = "warn"

[[rule]]
refs = ["refs/heads/release/**"]
users = ["*"]
deny = ["all"]
message = "releases are cut by CI"

[[rule]]
refs = ["refs/heads/**"]
users = ["*"]
allow = ["all"]
"#;

fn server(install: &[&str], config: &str) -> TestServer {
    let server = TestServer::new().config(config).install(install);
    server.work().commit(&[("README.md", "# app\n")]);
    server.push_as("bob", &["origin", "HEAD:refs/heads/main"]).assert_accepted();
    server
}

#[test]
fn a_warn_rule_reports_and_accepts() {
    let server = server(&[], RULES);
    server.push_as("bob", &["origin", "HEAD:refs/heads/wip/x"]).assert_accepted();
    server.work().git(&["commit", "--quiet", "--amend", "-m", "Rewritten"]).ok();

    let pushed = server.push_as("bob", &["--force", "origin", "HEAD:refs/heads/wip/x"]);

    pushed.assert_accepted();
    assert_eq!(
        pushed.pushgate_lines(),
        ["pushgate: warning: refs/heads/wip/x: force denied (rule 1: force-pushing wip/ will be denied from March)"]
    );
    assert_eq!(server.ref_target("refs/heads/wip/x"), Some(server.work().head()));
}

#[test]
fn a_warn_path_rule_reports_and_accepts() {
    let server = server(&[], RULES);
    let tip = server.work().commit(&[("docs/legacy/old.md", "old\n")]);

    let pushed = server.push_as("bob", &["origin", "HEAD:refs/heads/main"]);

    pushed.assert_accepted();
    assert_eq!(
        pushed.pushgate_lines(),
        ["pushgate: warning: refs/heads/main: docs/legacy/old.md: update denied (rule 2)"]
    );
    assert_eq!(server.ref_target("refs/heads/main"), Some(tip));
}

#[test]
fn warnings_are_shown_with_a_rejection() {
    let server = server(&[], RULES);
    server.work().commit(&[("docs/legacy/old.md", "old\n")]);

    let pushed = server.push_as("bob", &["origin", "HEAD:refs/heads/release/1"]);

    pushed.assert_rejected();
    assert_eq!(
        pushed.pushgate_lines(),
        [
            "pushgate: warning: refs/heads/release/1: docs/legacy/old.md: create denied (rule 2)",
            "pushgate: push rejected for bob",
            "pushgate: refs/heads/release/1: create denied (rule 3: releases are cut by CI)",
        ]
    );
}

#[test]
fn a_push_lands_all_or_nothing() {
    let server = server(&[], RULES);
    let main = server.ref_target("refs/heads/main");
    let tip = server.work().commit(&[("src/a.rs", "// a\n")]);

    let pushed = server.push_as("bob", &["origin", "HEAD:refs/heads/main", "HEAD:refs/heads/release/1"]);

    pushed.assert_rejected();
    assert_eq!(
        pushed.pushgate_lines(),
        [
            "pushgate: push rejected for bob",
            "pushgate: refs/heads/release/1: create denied (rule 3: releases are cut by CI)"
        ]
    );
    assert!(pushed.stderr.contains("[remote rejected] HEAD -> main (pre-receive hook declined)"), "{pushed}");
    assert_eq!(server.ref_target("refs/heads/main"), main);
    assert_eq!(server.ref_target("refs/heads/release/1"), None);
    assert!(!server.has_object(&tip));
}

#[test]
fn installed_per_ref_the_allowed_refs_of_a_mixed_push_land() {
    let server = server(&["--per-ref"], RULES);
    assert!(server.hooks().join("update").is_file(), "per ref, the update hook decides each ref");
    let tip = server.work().commit(&[("src/a.rs", "// a\n")]);

    let pushed = server.push_as("bob", &["origin", "HEAD:refs/heads/main", "HEAD:refs/heads/release/1"]);

    assert_eq!(pushed.code, Some(1), "git reports the refused ref\n{pushed}");
    assert_eq!(
        pushed.pushgate_lines(),
        [
            "pushgate: push rejected for bob",
            "pushgate: refs/heads/release/1: create denied (rule 3: releases are cut by CI)"
        ]
    );
    assert!(pushed.stderr.contains("[remote rejected] HEAD -> release/1 (hook declined)"), "{pushed}");
    assert_eq!(server.ref_target("refs/heads/main"), Some(tip));
    assert_eq!(server.ref_target("refs/heads/release/1"), None);
}

#[test]
fn installed_per_ref_the_path_pass_still_runs() {
    let config = r#"
[[rule]]
paths = ["deploy/**"]
users = ["*"]
deny = ["create", "update", "force"]

[[rule]]
users = ["*"]
allow = ["all"]
"#;
    let server = server(&["--per-ref"], config);
    let main = server.work().head();
    server.work().commit(&[("deploy/x", "x\n")]);

    let pushed = server.push_as("bob", &["origin", "HEAD:refs/heads/deploying"]);

    pushed.assert_rejected();
    assert_eq!(
        pushed.pushgate_lines(),
        ["pushgate: push rejected for bob", "pushgate: refs/heads/deploying: deploy/x: create denied (rule 1)"]
    );
    assert_eq!(server.ref_target("refs/heads/main"), Some(main));
    assert_eq!(server.ref_target("refs/heads/deploying"), None);
}

fn audited(audit: &std::path::Path) -> String {
    format!("[audit]\nfile = {:?}\n{RULES}", audit.to_str().unwrap())
}

fn audit_lines(path: &std::path::Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap();
    assert!(text.ends_with('\n'), "{text}");
    text.lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}"))).collect()
}

#[test]
fn every_decision_is_one_audit_line() {
    let server = TestServer::new();
    let audit = server.root().join("log/audit.jsonl");
    let server = server.config(&audited(&audit)).install(&[]);
    let tip = server.work().commit(&[("README.md", "# app\n")]);

    server.push_as("bob", &["origin", "HEAD:refs/heads/main"]).assert_accepted();
    server.push_as("carol", &["origin", "HEAD:refs/heads/release/1"]).assert_rejected();

    let lines = audit_lines(&audit);
    assert_eq!(lines.len(), 2, "{lines:?}");
    let (accepted, rejected) = (&lines[0], &lines[1]);
    assert_eq!(accepted["user"], "bob");
    assert_eq!(accepted["repo"], "server");
    assert_eq!(accepted["verdict"], "accepted");
    assert_eq!(accepted["reasons"], serde_json::json!([]));
    assert_eq!(
        accepted["updates"],
        serde_json::json!([{"ref": "refs/heads/main", "old": ZERO, "new": tip, "action": "create"}])
    );
    assert!(accepted["time"].as_str().is_some_and(|t| t.ends_with('Z') || t.contains('+')), "{accepted}");
    assert_eq!(rejected["user"], "carol");
    assert_eq!(rejected["verdict"], "rejected");
    assert_eq!(
        rejected["reasons"],
        serde_json::json!(["refs/heads/release/1: create denied (rule 3: releases are cut by CI)"])
    );
    assert_eq!(rejected["updates"][0]["ref"], "refs/heads/release/1");
}

#[test]
fn concurrent_pushes_leave_one_well_formed_audit_line_each() {
    let server = TestServer::new();
    let audit = server.root().join("audit.jsonl");
    let server = server.config(&audited(&audit)).install(&[]);
    let clones: Vec<_> = (0..8)
        .map(|i| {
            let work = server.clone_as(&format!("work{i}"));
            work.commit(&[(format!("src/{i}.rs").as_str(), format!("// {i}\n").as_str())]);
            work
        })
        .collect();

    std::thread::scope(|scope| {
        for (i, work) in clones.iter().enumerate() {
            scope.spawn(move || {
                work.push_as(&format!("user{i}"), &["origin", &format!("HEAD:refs/heads/b{i}")]).assert_accepted();
            });
        }
    });

    let lines = audit_lines(&audit);
    assert_eq!(lines.len(), 8);
    let mut users: Vec<&str> = lines.iter().map(|l| l["user"].as_str().unwrap()).collect();
    users.sort();
    assert_eq!(users, (0..8).map(|i| format!("user{i}")).collect::<Vec<_>>());
    assert!(lines.iter().all(|l| l["verdict"] == "accepted"));
    assert_eq!(server.refs().len(), 8);
}

#[test]
fn installed_per_ref_each_ref_sees_the_commits_new_to_the_push() {
    let config = r#"
[[rule]]
refs = ["refs/heads/release/**"]
paths = ["deploy/**"]
users = ["*"]
deny = ["create", "update", "force"]

[[rule]]
users = ["*"]
allow = ["all"]
"#;
    let server = server(&["--per-ref"], config);
    let tip = server.work().commit(&[("deploy/x", "x\n")]);

    // The commit is new to both refs: no ref held it before the push.
    let pushed = server.push_as("bob", &["origin", "HEAD:refs/heads/feature", "HEAD:refs/heads/release/1"]);

    assert_eq!(
        pushed.pushgate_lines(),
        ["pushgate: push rejected for bob", "pushgate: refs/heads/release/1: deploy/x: create denied (rule 1)"]
    );
    assert_eq!(server.ref_target("refs/heads/feature"), Some(tip));
    assert_eq!(server.ref_target("refs/heads/release/1"), None);
}

#[test]
fn an_audit_log_that_cannot_be_written_rejects_the_push() {
    let server = TestServer::new();
    let audit = server.root().join("home/.profile/audit.jsonl");
    std::fs::write(server.root().join("home/.profile"), "not a directory\n").unwrap();
    let server = server.config(&audited(&audit)).install(&[]);
    server.work().commit(&[("README.md", "# app\n")]);

    let pushed = server.push_as("bob", &["origin", "HEAD:refs/heads/main"]);

    pushed.assert_rejected().assert_no_panic();
    let lines = pushed.pushgate_lines();
    assert_eq!(lines.len(), 1, "{pushed}");
    assert!(
        lines[0].starts_with(&format!("pushgate: push rejected: cannot write the audit log {}: ", audit.display())),
        "{pushed}"
    );
    assert_eq!(server.refs(), []);
}
