//! The admin commands: `explain` says which rule decides and where it is written;
//! `simulate` dry-runs pre-receive against a repository without changing it.

use crate::harness::{TestServer, ZERO, updates};
use std::collections::BTreeMap;
use std::path::Path;

const RULES: &str = r#"
[groups]
maintainers = ["alice"]
devs = ["bob", "@maintainers"]

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
refs = ["refs/heads/wip/**"]
users = ["*"]
deny = ["force"]
mode = "warn"

[[rule]]
refs = ["refs/heads/**"]
paths = ["deploy/**"]
users = ["*"]
deny = ["create", "update", "force"]
message = "deploy/ is owned by the maintainers"

[[rule]]
refs = ["refs/heads/**"]
users = ["@devs"]
allow = ["all"]
"#;

/// `CONFIG:LINE` of rule `n` (1-based) in `text`.
fn rule_at(text: &str, n: usize) -> String {
    let line = text.lines().enumerate().filter(|(_, l)| l.trim() == "[[rule]]").nth(n - 1).unwrap().0 + 1;
    format!("CONFIG:{line}")
}

fn explain(args: &[&str]) -> Vec<String> {
    let server = TestServer::new().config(RULES);
    let run = server.pushgate(&["explain"]).args(args).run();
    run.assert_code(0).assert_no_panic();
    let config = server.config_path().display().to_string();
    run.stdout_lines().iter().map(|l| l.replace(&config, "CONFIG")).collect()
}

#[test]
fn explain_names_the_deciding_rule_and_where_it_is_written() {
    let lines = explain(&["--user", "bob", "--ref", "refs/heads/main", "--op", "force"]);

    assert_eq!(
        lines,
        [
            "force of refs/heads/main by bob (groups: devs) in any repository".to_string(),
            format!("ref pass: rule 2 at {}: force denied (main is protected)", rule_at(RULES, 2)),
            "verdict: denied".to_string(),
        ]
    );
}

#[test]
fn explain_shows_an_allowing_rule() {
    let lines = explain(&["--user", "alice", "--ref", "refs/heads/main", "--op", "delete", "--repo", "app"]);

    assert_eq!(
        lines,
        [
            "delete of refs/heads/main by alice (groups: devs, maintainers) in app".to_string(),
            format!("ref pass: rule 1 at {}: delete allowed", rule_at(RULES, 1)),
            "verdict: allowed".to_string(),
        ]
    );
}

#[test]
fn explain_says_when_no_rule_matches() {
    let lines = explain(&["--user", "carol", "--ref", "refs/heads/topic", "--op", "create"]);

    assert_eq!(
        lines,
        [
            "create of refs/heads/topic by carol in any repository",
            "ref pass: no rule matched: denied",
            "verdict: denied"
        ]
    );
}

#[test]
fn explain_reports_warn_rules_on_the_way() {
    let lines = explain(&["--user", "bob", "--ref", "refs/heads/wip/x", "--op", "force"]);

    assert_eq!(
        lines[1..],
        [
            format!(
                "ref pass: rule 3 at {} would deny force (mode = \"warn\": reported as a warning)",
                rule_at(RULES, 3)
            ),
            format!("ref pass: rule 5 at {}: force allowed", rule_at(RULES, 5)),
            "verdict: allowed".to_string(),
        ]
    );
}

#[test]
fn explain_with_a_path_runs_the_path_pass() {
    let denied =
        explain(&["--user", "bob", "--ref", "refs/heads/topic", "--op", "update", "--path", "deploy/prod.yml"]);
    assert_eq!(
        denied[1..],
        [
            format!("ref pass: rule 5 at {}: update allowed", rule_at(RULES, 5)),
            format!(
                "path pass for deploy/prod.yml: rule 4 at {}: update denied (deploy/ is owned by the maintainers)",
                rule_at(RULES, 4)
            ),
            "verdict: denied".to_string(),
        ]
    );

    let allowed = explain(&["--user", "bob", "--ref", "refs/heads/topic", "--op", "update", "--path", "src/main.rs"]);
    assert_eq!(allowed[2..], ["path pass for src/main.rs: no path rule matched: allowed", "verdict: allowed"]);
}

#[test]
fn explain_json_is_valid_json() {
    let server = TestServer::new().config(RULES);
    let run = server
        .pushgate(&["explain", "--json", "--user", "bob", "--ref", "refs/heads/topic", "--op", "update"])
        .args(["--path", "deploy/prod.yml"])
        .run();

    run.assert_code(0);
    let out: serde_json::Value = serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("{e}\n{run}"));
    assert_eq!(out["allowed"], false);
    assert_eq!(out["user"], "bob");
    assert_eq!(out["ref"], "refs/heads/topic");
    assert_eq!(out["op"], "update");
    assert_eq!(out["ref_pass"]["allowed"], true);
    assert_eq!(out["ref_pass"]["rule"]["number"], 5);
    assert_eq!(out["path_pass"]["path"], "deploy/prod.yml");
    assert_eq!(out["path_pass"]["decision"]["allowed"], false);
    assert_eq!(out["path_pass"]["decision"]["rule"]["number"], 4);
    assert_eq!(out["path_pass"]["decision"]["rule"]["message"], "deploy/ is owned by the maintainers");
    let line = rule_at(RULES, 4).rsplit_once(':').unwrap().1.parse::<u64>().unwrap();
    assert_eq!(out["path_pass"]["decision"]["rule"]["line"], line);
}

#[test]
fn explain_refuses_an_unknown_operation_and_a_bad_ref() {
    let server = TestServer::new().config(RULES);

    let op = server.pushgate(&["explain", "--user", "bob", "--ref", "refs/heads/main", "--op", "push"]).run();
    op.assert_code(2);
    assert!(op.stderr.contains("invalid value 'push' for '--op <OP>'"), "{op}");

    let bad_ref = server.pushgate(&["explain", "--user", "bob", "--ref", "main", "--op", "update"]).run();
    bad_ref.assert_code(2);
    assert!(bad_ref.stderr.contains("does not start with refs/"), "{bad_ref}");
}

#[test]
fn explain_includes_the_repository_file_under_repos_root() {
    let server = TestServer::new();
    let config = format!("repos_root = {:?}\n{RULES}", server.root().to_str().unwrap());
    let repo_rules = "[[rule]]\nrefs = [\"refs/heads/**\"]\nusers = [\"bob\"]\ndeny = [\"create\"]\n";
    let server = server.config(&config).repo_config(repo_rules);

    let run = server.pushgate(&["explain", "--user", "bob", "--ref", "refs/heads/x", "--op", "create"]).run();
    let in_repo = server
        .pushgate(&["explain", "--user", "bob", "--ref", "refs/heads/x", "--op", "create", "--repo", "server"])
        .run();

    assert_eq!(run.stdout_lines()[2], "verdict: allowed");
    assert_eq!(
        in_repo.stdout_lines()[1],
        format!("ref pass: rule 1 at {}:1: create denied", server.repo.join("pushgate.toml").display())
    );
    assert_eq!(in_repo.stdout_lines()[2], "verdict: denied");
}

/// Every file of a directory with its contents.
fn snapshot(dir: &Path) -> BTreeMap<std::path::PathBuf, Vec<u8>> {
    let mut files = BTreeMap::new();
    let mut dirs = vec![dir.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap().flatten() {
            if entry.file_type().unwrap().is_dir() {
                dirs.push(entry.path());
            } else {
                files.insert(entry.path(), std::fs::read(entry.path()).unwrap_or_default());
            }
        }
    }
    files
}

/// main (A) and a rewritten sibling of it on `rewrite`, pushed by alice; and a commit that
/// adds deploy/x, in the repository but on no ref.
struct Simulated {
    server: TestServer,
    main: String,
    rewrite: String,
    unreferenced: String,
}

fn simulated() -> Simulated {
    let server = TestServer::new().config(RULES).install(&[]);
    let main = server.work().commit(&[("README.md", "# app\n")]);
    server.push_as("alice", &["origin", "HEAD:refs/heads/main"]).assert_accepted();
    server.work().git(&["commit", "--quiet", "--amend", "-m", "Rewritten"]).ok();
    let rewrite = server.work().head();
    server.push_as("alice", &["origin", "HEAD:refs/heads/rewrite"]).assert_accepted();
    let unreferenced = server.work().commit(&[("deploy/x", "x\n")]);
    server.git(&["fetch", "--quiet", "--no-write-fetch-head"]).args([&server.work().dir]).args(["HEAD"]).ok();
    assert!(server.has_object(&unreferenced));
    Simulated { server, main, rewrite, unreferenced }
}

#[test]
fn simulate_shows_the_rejection_and_changes_nothing() {
    let s = simulated();
    let before = snapshot(&s.server.repo);

    let run = s
        .server
        .pushgate(&["simulate", "--repo"])
        .args([&s.server.repo])
        .args(["--user", "bob"])
        .stdin(updates(&[(&s.main, &s.rewrite, "refs/heads/main")]))
        .run();

    run.assert_code(1).assert_no_panic();
    let lines = run.stdout_lines();
    // The rewritten commit is on another ref already; it is still new to main.
    assert_eq!(lines[0], "refs/heads/main: force (1 new commits)");
    assert!(lines[1].starts_with(&format!("  {} \"Rewritten\"", &s.rewrite[..7])), "{run}");
    assert_eq!(
        lines[2..],
        [
            "pushgate: push rejected for bob",
            "pushgate: refs/heads/main: force denied (rule 2: main is protected)",
            "pushgate: simulate: the push would be rejected",
        ]
    );
    assert_eq!(snapshot(&s.server.repo), before, "simulate changed the repository");
}

#[test]
fn simulate_runs_the_path_pass_on_new_commits() {
    let s = simulated();
    let before = snapshot(&s.server.repo);

    let run = s
        .server
        .pushgate(&["simulate", "--user", "bob", "--repo"])
        .args([&s.server.repo])
        .stdin(updates(&[(ZERO, &s.unreferenced, "refs/heads/feature")]))
        .run();

    run.assert_code(1);
    let lines = run.stdout_lines();
    // A create brings what the default branch does not have: the rewrite and the new commit.
    assert_eq!(lines[0], "refs/heads/feature: create (2 new commits)");
    assert!(lines[1].starts_with(&format!("  {} \"Rewritten\"", &s.rewrite[..7])), "{run}");
    assert!(
        lines[2]
            .starts_with(&format!("  {} \"Change deploy/x\" (Test Author <author@example.org>)", &s.unreferenced[..7]))
    );
    assert_eq!(
        lines[3..],
        [
            "pushgate: push rejected for bob",
            "pushgate: refs/heads/feature: deploy/x: create denied (rule 4: deploy/ is owned by the maintainers)",
            "pushgate: simulate: the push would be rejected",
        ]
    );
    assert_eq!(snapshot(&s.server.repo), before, "simulate changed the repository");
    assert_eq!(s.server.ref_target("refs/heads/feature"), None);
}

#[test]
fn simulate_accepts_an_allowed_update_without_applying_it() {
    let s = simulated();
    let before = snapshot(&s.server.repo);

    let run = s
        .server
        .pushgate(&["simulate", "--repo"])
        .args([&s.server.repo])
        .env("PUSHGATE_USER", "alice")
        .stdin(updates(&[(&s.main, &s.rewrite, "refs/heads/main")]))
        .run();

    run.assert_code(0);
    let lines = run.stdout_lines();
    assert_eq!(lines[0], "refs/heads/main: force (1 new commits)");
    assert_eq!(lines[2..], ["pushgate: simulate: the push would be accepted"]);
    assert_eq!(snapshot(&s.server.repo), before, "simulate changed the repository");
    assert_eq!(s.server.ref_target("refs/heads/main"), Some(s.main));
}

#[test]
fn simulate_json_is_valid_json() {
    let s = simulated();

    let run = s
        .server
        .pushgate(&["simulate", "--json", "--user", "bob", "--repo"])
        .args([&s.server.repo])
        .stdin(updates(&[(&s.main, &s.rewrite, "refs/heads/main")]))
        .run();

    run.assert_code(1);
    let out: serde_json::Value = serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("{e}\n{run}"));
    assert_eq!(out["accepted"], false);
    assert_eq!(out["user"], "bob");
    assert_eq!(out["repo"], "server");
    assert_eq!(out["changes"], serde_json::json!([{"ref": "refs/heads/main", "action": "force", "commits": 1}]));
    assert_eq!(out["rejections"], serde_json::json!(["refs/heads/main: force denied (rule 2: main is protected)"]));
}

#[test]
fn simulate_refuses_bad_input_and_bad_users() {
    let s = simulated();

    let garbage =
        s.server.pushgate(&["simulate", "--user", "bob", "--repo"]).args([&s.server.repo]).stdin("junk\n").run();
    garbage.assert_code(2).assert_no_panic();
    assert!(garbage.stderr.contains("line 1: "), "{garbage}");

    let user = s
        .server
        .pushgate(&["simulate", "--user", "bob smith", "--repo"])
        .args([&s.server.repo])
        .stdin(updates(&[(&s.main, &s.rewrite, "refs/heads/main")]))
        .run();
    user.assert_code(2);
    assert!(user.stderr.contains("invalid user name \"bob smith\""), "{user}");

    let nobody = s
        .server
        .pushgate(&["simulate", "--repo"])
        .args([&s.server.repo])
        .stdin(updates(&[(&s.main, &s.rewrite, "refs/heads/main")]))
        .run();
    nobody.assert_code(2);
    assert!(nobody.stderr.contains("no user identity"), "{nobody}");
}
