//! Push checks (`[[check]]`) through real pushes: each check, enforce and warn, exempt
//! users, and what `explain` and `simulate` say about them.

use crate::harness::{TestServer, Work, ZERO};

const BASE: &str = r#"
[groups]
maintainers = ["alice"]
[users.bob]
emails = ["bob@example.org"]
[[rule]]
users = ["*"]
allow = ["all"]
"#;

fn server(checks: &str) -> TestServer {
    TestServer::new().config(&format!("{BASE}{checks}")).install(&[])
}

/// A commit with this message, authored and committed by `email`.
fn commit_as(work: &Work, email: &str, message: &str, files: &[(&str, &str)]) -> String {
    for (path, contents) in files {
        let path = work.dir.join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, contents).unwrap();
        work.git(&["add", "-A"]).ok();
    }
    work.git(&["commit", "--quiet", "--allow-empty", "-m", message])
        .env("GIT_AUTHOR_EMAIL", email)
        .env("GIT_COMMITTER_EMAIL", email)
        .ok();
    work.head()
}

fn short(id: &str) -> &str {
    &id[..7]
}

#[test]
fn commit_message_enforced_and_fixed() {
    let server = server("[[check]]\nrefs = [\"refs/heads/main\"]\ncommit_message = \"^(feat|fix): \"\n");
    let work = server.work();
    let bad = commit_as(work, "bob@example.org", "wip stuff\n\nbody", &[]);

    let pushed = server.push_as("bob", &["origin", "HEAD:refs/heads/main"]);

    pushed.assert_rejected();
    assert_eq!(
        pushed.pushgate_lines(),
        [
            "pushgate: push rejected for bob".to_string(),
            format!(
                "pushgate: refs/heads/main: {} \"wip stuff\": message does not match \"^(feat|fix): \" (check 1)",
                short(&bad)
            ),
        ]
    );
    work.git(&["commit", "--quiet", "--amend", "--allow-empty", "-m", "fix: stuff"]).ok();
    server.push_as("bob", &["origin", "HEAD:refs/heads/main"]).assert_accepted();
    // Other refs are out of the check's scope.
    commit_as(work, "bob@example.org", "wip again", &[]);
    server.push_as("bob", &["origin", "HEAD:refs/heads/topic"]).assert_accepted();
}

#[test]
fn author_and_committer_emails() {
    let server = server("[[check]]\nauthor_email = \"@example\\\\.org$\"\ncommitter_email = \"@example\\\\.org$\"\n");
    let work = server.work();
    let bad = commit_as(work, "mallory@evil.test", "fix: x", &[]);

    let pushed = server.push_as("bob", &["origin", "HEAD:refs/heads/main"]);

    pushed.assert_rejected();
    let lines = pushed.pushgate_lines();
    assert!(lines.contains(&format!(
        "pushgate: refs/heads/main: {} \"fix: x\": author email \"mallory@evil.test\" does not match \"@example\\\\.org$\" (check 1)",
        short(&bad)
    )));
    assert!(lines.iter().any(|l| l.contains("committer email \"mallory@evil.test\"")), "{pushed}");
}

#[test]
fn linear_history_rejects_merge_commits() {
    let server = server("[[check]]\nlinear_history = true\n");
    let work = server.work();
    let base = commit_as(work, "bob@example.org", "base", &[("a", "1\n")]);
    server.push_as("bob", &["origin", "HEAD:refs/heads/main"]).assert_accepted();
    let trunk = work.git(&["symbolic-ref", "--short", "HEAD"]).ok();
    work.branch("side", &base);
    work.checkout("side");
    commit_as(work, "bob@example.org", "side", &[("b", "1\n")]);
    work.checkout(&trunk);
    commit_as(work, "bob@example.org", "main", &[("c", "1\n")]);
    work.git(&["merge", "--quiet", "--no-ff", "-m", "merge side", "side"]).ok();
    let merge = work.head();

    let pushed = server.push_as("bob", &["origin", "HEAD:refs/heads/main"]);

    pushed.assert_rejected();
    assert!(
        pushed.pushgate_lines().contains(&format!(
            "pushgate: refs/heads/main: {} \"merge side\": is a merge commit (linear_history) (check 1)",
            short(&merge)
        )),
        "{pushed}"
    );
}

#[test]
fn max_files_changed_counts_paths_per_update() {
    let server = server("[[check]]\nmax_files_changed = 2\n");
    let work = server.work();
    commit_as(work, "bob@example.org", "one", &[("a", "1\n"), ("b", "1\n")]);
    commit_as(work, "bob@example.org", "two", &[("c", "1\n")]);

    let pushed = server.push_as("bob", &["origin", "HEAD:refs/heads/main"]);

    pushed.assert_rejected();
    assert!(
        pushed.pushgate_lines().contains(
            &"pushgate: refs/heads/main: changes 3 files, more than max_files_changed 2 (check 1)".to_string()
        ),
        "{pushed}"
    );
}

#[test]
fn a_checks_max_blob_size_overrides_the_global_limit_in_its_scope() {
    let config = "[limits]\nmax_blob_size = \"100 KiB\"\n\
                  [[check]]\nrefs = [\"refs/heads/media/**\"]\nmax_blob_size = \"1 MiB\"\n";
    let server = TestServer::new().config(&format!("{BASE}{config}")).install(&[]);
    let work = server.work();
    let big = "x".repeat(300 * 1024);
    let commit = commit_as(work, "bob@example.org", "video", &[("clip.bin", &big)]);

    let pushed = server.push_as("bob", &["origin", "HEAD:refs/heads/main"]);

    pushed.assert_rejected();
    assert_eq!(
        pushed.pushgate_lines()[1],
        format!("pushgate: refs/heads/main: clip.bin (300.0 KiB) in {} exceeds max_blob_size 100 KiB", short(&commit))
    );
    server.push_as("bob", &["origin", "HEAD:refs/heads/media/clips"]).assert_accepted();
}

#[test]
fn forbidden_paths_anywhere_in_the_tree() {
    let server = server("[[check]]\nforbid_paths = [\"*.pem\", \"**/id_rsa\"]\n");
    let work = server.work();
    let commit =
        commit_as(work, "bob@example.org", "keys", &[("certs/server.pem", "k\n"), ("home/u/.ssh/id_rsa", "k\n")]);

    let pushed = server.push_as("bob", &["origin", "HEAD:refs/heads/main"]);

    pushed.assert_rejected();
    let lines = pushed.pushgate_lines();
    assert!(lines.contains(&format!(
        "pushgate: refs/heads/main: certs/server.pem: forbidden by \"*.pem\" in {} (check 1)",
        short(&commit)
    )));
    assert!(lines.contains(&format!(
        "pushgate: refs/heads/main: home/u/.ssh/id_rsa: forbidden by \"**/id_rsa\" in {} (check 1)",
        short(&commit)
    )));
}

#[test]
fn require_signed_accepts_a_signed_commit_and_says_signatures_are_not_verified() {
    let server = server("[[check]]\nrequire_signed = true\n");
    let work = server.work();
    let unsigned = commit_as(work, "bob@example.org", "unsigned", &[]);

    let pushed = server.push_as("bob", &["origin", "HEAD:refs/heads/main"]);

    pushed.assert_rejected();
    assert!(pushed.pushgate_lines().contains(&format!(
        "pushgate: refs/heads/main: {} \"unsigned\": is not signed (require_signed; signatures are not verified) (check 1)",
        short(&unsigned)
    )));

    // An SSH signature gives the commit a gpgsig header; pushgate checks that it is there.
    let key = work.dir.join("../signing-key");
    let keygen =
        std::process::Command::new("ssh-keygen").args(["-q", "-t", "ed25519", "-N", "", "-f"]).arg(&key).status();
    if !keygen.is_ok_and(|s| s.success()) {
        eprintln!("note: ssh-keygen is missing; the signed half of this test is skipped");
        return;
    }
    work.git(&["config", "gpg.format", "ssh"]).ok();
    work.git(&["config", "user.signingkey", key.to_str().unwrap()]).ok();
    work.git(&["commit", "--quiet", "--amend", "--allow-empty", "-S", "-m", "signed"]).ok();
    server.push_as("bob", &["origin", "HEAD:refs/heads/main"]).assert_accepted();
}

#[test]
fn author_is_pusher_uses_the_users_emails() {
    let server = server("[[check]]\nauthor_is_pusher = true\n");
    let work = server.work();
    commit_as(work, "Bob@Example.org", "mine", &[]);
    server.push_as("bob", &["origin", "HEAD:refs/heads/main"]).assert_accepted();

    let theirs = commit_as(work, "carol@example.org", "theirs", &[]);
    let pushed = server.push_as("bob", &["origin", "HEAD:refs/heads/main"]);

    pushed.assert_rejected();
    assert!(pushed.pushgate_lines().contains(&format!(
        "pushgate: refs/heads/main: {} \"theirs\": author \"carol@example.org\" is not one of bob's emails (author_is_pusher) (check 1)",
        short(&theirs)
    )));
    // A user with no [users] entry has no emails at all.
    let pushed = server.push_as("dave", &["origin", "HEAD:refs/heads/main"]);
    pushed.assert_rejected();
}

#[test]
fn warn_mode_reports_and_accepts() {
    let server = server("[[check]]\ncommit_message = \"^feat: \"\nmode = \"warn\"\n");
    let work = server.work();
    let commit = commit_as(work, "bob@example.org", "wip", &[]);

    let pushed = server.push_as("bob", &["origin", "HEAD:refs/heads/main"]);

    pushed.assert_accepted();
    assert_eq!(
        pushed.pushgate_lines(),
        [format!(
            "pushgate: warning: refs/heads/main: {} \"wip\": message does not match \"^feat: \" (check 1)",
            short(&commit)
        )]
    );
}

#[test]
fn exempt_users_are_not_checked() {
    let server = server("[[check]]\ncommit_message = \"^feat: \"\nexempt = [\"@maintainers\"]\n");
    let work = server.work();
    commit_as(work, "alice@example.org", "hotfix without ceremony", &[]);

    server.push_as("alice", &["origin", "HEAD:refs/heads/main"]).assert_accepted();
    commit_as(work, "bob@example.org", "bob's wip", &[]);
    server.push_as("bob", &["origin", "HEAD:refs/heads/main"]).assert_rejected();
}

#[test]
fn many_failing_commits_are_capped_with_a_count() {
    let server = server("[[check]]\ncommit_message = \"^feat: \"\n");
    let work = server.work();
    for i in 0..25 {
        commit_as(work, "bob@example.org", &format!("wip {i}"), &[]);
    }

    let pushed = server.push_as("bob", &["origin", "HEAD:refs/heads/main"]);

    pushed.assert_rejected();
    let lines = pushed.pushgate_lines();
    assert_eq!(lines.len(), 1 + 20 + 1, "{pushed}");
    assert_eq!(lines[21], "pushgate: refs/heads/main: … and 5 more failing check 1");
}

#[test]
fn invalid_regexes_are_configuration_errors_with_positions() {
    let server = TestServer::new().config(&format!("{BASE}[[check]]\ncommit_message = \"(feat\"\n"));

    let run = server.pushgate(&["check"]).run();

    run.assert_code(2);
    let expected = format!("{}:10:18: invalid regular expression \"(feat\"", server.config_path().display());
    assert!(run.stderr.starts_with(&expected), "{run}");
}

#[test]
fn explain_and_simulate_show_the_checks() {
    let server =
        server("[[check]]\nrefs = [\"refs/heads/main\"]\ncommit_message = \"^feat: \"\nexempt = [\"alice\"]\n");
    let work = server.work();
    let commit = commit_as(work, "bob@example.org", "wip", &[]);

    let explained = server.pushgate(&["explain", "--user", "bob", "--ref", "refs/heads/main", "--op", "update"]).ok();
    assert!(explained.contains("check 1 at "), "{explained}");
    assert!(explained.contains(": applies to the new commits"), "{explained}");
    let exempt = server.pushgate(&["explain", "--user", "alice", "--ref", "refs/heads/main", "--op", "update"]).ok();
    assert!(exempt.contains("alice is exempt"), "{exempt}");

    // simulate needs the objects in the repository, but not reachable from a ref.
    server.push_as("bob", &["origin", "HEAD:refs/heads/parking"]).assert_accepted();
    server.git(&["update-ref", "-d", "refs/heads/parking"]).ok();
    let simulated = server
        .pushgate(&["simulate", "--repo", server.root().join("server.git").to_str().unwrap(), "--user", "bob"])
        .stdin(format!("{ZERO} {commit} refs/heads/main\n"))
        .run();
    simulated.assert_code(1);
    assert!(simulated.stdout.contains("\"wip\": message does not match \"^feat: \" (check 1)"), "{simulated}");
}
