//! Configuration: `pushgate check` points at every mistake as FILE:LINE:COL; a broken or
//! missing configuration makes pushes fail closed; a repository's own pushgate.toml comes
//! before the global rules.

use crate::harness::{Run, TestServer};

const VALID: &str = r#"
[groups]
maintainers = ["alice"]
devs = ["bob", "@maintainers"]

[limits]
max_blob_size = "5 MiB"

[[rule]]
refs = ["refs/heads/main"]
users = ["@maintainers"]
allow = ["all"]

[[rule]]
refs = ["refs/heads/**"]
users = ["@devs"]
allow = ["write"]
"#;

/// `pushgate check` on `text`: its exit code and stderr lines.
fn check(text: &str) -> (TestServer, Run) {
    let server = TestServer::new().config(text);
    let run = server.pushgate(&["check"]).run();
    (server, run)
}

/// The error lines `pushgate check` printed, with the config path replaced by `CONFIG`.
fn errors(server: &TestServer, run: &Run) -> Vec<String> {
    run.assert_code(2).assert_no_panic();
    let lines: Vec<String> =
        run.stderr_lines().iter().map(|l| l.replace(&server.config_path().display().to_string(), "CONFIG")).collect();
    let (summary, errors) = lines.split_last().unwrap();
    assert_eq!(summary, &format!("pushgate: configuration has {} error(s)", errors.len()), "{run}");
    errors.to_vec()
}

#[test]
fn a_valid_configuration_checks_clean() {
    let (server, run) = check(VALID);

    run.assert_code(0);
    assert!(
        run.stdout.starts_with(&format!("pushgate: {} is valid (2 rules", server.config_path().display())),
        "{run}"
    );
    assert_eq!(run.stdout.lines().count(), 1, "{run}");
    assert_eq!(run.stderr, "");
}

#[test]
fn check_takes_the_file_from_the_command_line_too() {
    let server = TestServer::new();
    let other = server.root().join("other.toml");
    std::fs::write(&other, VALID).unwrap();

    let run = server.pushgate(&["check", "--config"]).args([&other]).run();

    run.assert_code(0);
    assert!(run.stdout.contains("other.toml is valid"), "{run}");
}

#[test]
fn an_unknown_key_is_positioned_with_a_suggestion() {
    let (server, run) = check("[[rule]]\nrefs = [\"refs/heads/x\"]\nusers = [\"*\"]\nalow = [\"create\"]\n");

    assert_eq!(errors(&server, &run), ["CONFIG:4:1: unknown key `alow` (did you mean `allow`?)"]);
}

#[test]
fn an_unknown_key_in_a_table_is_positioned_with_a_suggestion() {
    let (server, run) = check("[limits]\nmax_blob_sise = \"1 MiB\"\n");

    assert_eq!(errors(&server, &run), ["CONFIG:2:1: unknown key `max_blob_sise` (did you mean `max_blob_size`?)"]);
}

#[test]
fn a_ref_pattern_outside_refs_suggests_the_full_name() {
    let (server, run) = check("[[rule]]\nrefs = [\"main\", \"heads/dev\"]\nusers = [\"*\"]\nallow = [\"all\"]\n");

    assert_eq!(
        errors(&server, &run),
        [
            "CONFIG:2:9: ref pattern \"main\" must be a full ref name: did you mean \"refs/heads/main\"?",
            "CONFIG:2:17: ref pattern \"heads/dev\" must be a full ref name: did you mean \"refs/heads/dev\"?",
        ]
    );
}

#[test]
fn a_bad_glob_is_positioned() {
    let (server, run) = check("[[rule]]\nrefs = [\"refs/heads/[x\"]\nusers = [\"*\"]\nallow = [\"all\"]\n");

    assert_eq!(errors(&server, &run), ["CONFIG:2:9: unclosed `[` in \"refs/heads/[x\""]);
}

#[test]
fn a_misplaced_double_star_is_an_error() {
    let (server, run) = check("[[rule]]\npaths = [\"src/**.rs\"]\nusers = [\"*\"]\ndeny = [\"update\"]\n");

    let errors = errors(&server, &run);
    assert_eq!(errors.len(), 1);
    assert!(errors[0].starts_with("CONFIG:2:10: `**` must be a whole path segment"), "{errors:?}");
}

#[test]
fn a_bad_size_is_positioned() {
    let (server, run) = check("[limits]\nmax_blob_size = \"5 parsecs\"\n");

    assert_eq!(
        errors(&server, &run),
        ["CONFIG:2:17: unknown size unit \"parsecs\" in \"5 parsecs\" (use B, KB, MB, GB, KiB, MiB or GiB)"]
    );
}

#[test]
fn a_group_cycle_is_an_error() {
    let (server, run) = check("[groups]\nops = [\"carol\", \"@devs\"]\ndevs = [\"bob\", \"@ops\"]\n");

    assert_eq!(errors(&server, &run), ["CONFIG:3:1: group cycle: @devs -> @ops -> @devs"]);
}

#[test]
fn a_group_cycle_is_reported_once() {
    let (server, run) = check(
        "[groups]\nops = [\"carol\", \"@devs\"]\ndevs = [\"bob\", \"@ops\"]\nleads = [\"alice\"]\n[[rule]]\nusers = [\"@leads\"]\nallow = [\"all\"]\n",
    );

    assert_eq!(errors(&server, &run), ["CONFIG:3:1: group cycle: @devs -> @ops -> @devs"]);
}

#[test]
fn an_unknown_operation_and_group_suggest_the_right_one() {
    let (server, run) = check(
        "[groups]\nmaintainers = [\"alice\"]\n[[rule]]\nusers = [\"@maintainer\"]\nallow = [\"creat\", \"delete\"]\n",
    );

    assert_eq!(
        errors(&server, &run),
        [
            "CONFIG:4:10: unknown group `@maintainer` (did you mean `@maintainers`?)",
            "CONFIG:5:10: unknown operation \"creat\" (did you mean `create`?) (one of create, update, force, delete, read, write, all, repo-create, repo-delete)",
        ]
    );
}

#[test]
fn every_error_is_reported_in_file_order() {
    let (server, run) = check(
        "[limits]\nmax_blob_size = \"lots\"\n[[rule]]\nrefs = [\"main\"]\nusers = [\"*\"]\nallow = [\"all\"]\n[[rule]]\nallow = [\"all\"]\n",
    );

    let errors = errors(&server, &run);
    assert_eq!(errors.len(), 3, "{errors:?}");
    assert!(errors[0].starts_with("CONFIG:2:17: "), "{errors:?}");
    assert!(errors[1].starts_with("CONFIG:4:9: "), "{errors:?}");
    assert!(errors[2].starts_with("CONFIG:7:1: rule has no `users`"), "{errors:?}");
}

#[test]
fn a_toml_syntax_error_is_positioned() {
    let (server, run) = check("[[rule]]\nusers = [\"*\"\nallow = [\"all\"]\n");

    let errors = errors(&server, &run);
    assert_eq!(errors.len(), 1);
    assert!(errors[0].starts_with("CONFIG:3:"), "{errors:?}");
}

#[test]
fn check_json_lists_the_errors() {
    let server = TestServer::new().config("[limits]\nmax_blob_size = \"5 parsecs\"\n");

    let run = server.pushgate(&["check", "--json"]).run();

    run.assert_code(2);
    let out: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(out["ok"], false);
    assert_eq!(out["errors"][0]["line"], 2);
    assert_eq!(out["errors"][0]["col"], 17);
}

#[test]
fn check_with_repo_validates_the_repository_file() {
    let server = TestServer::new().config(VALID).repo_config("[limits]\nmax_blob_size = \"1 MiB\"\n");

    let run = server.pushgate(&["check", "--repo"]).args([&server.repo]).run();

    run.assert_code(2);
    assert_eq!(
        run.stderr_lines()[0],
        format!(
            "{}:1:2: `limits` may only be set in the global configuration, not in a repository's pushgate.toml",
            server.repo.join("pushgate.toml").display()
        )
    );
}

fn pushed_with_config(text: Option<&str>) -> (TestServer, Run) {
    let server = TestServer::new();
    let server = match text {
        Some(text) => server.config(text),
        None => server,
    }
    .install(&[]);
    server.work().commit(&[("README.md", "# app\n")]);
    let pushed = server.push_as("alice", &["origin", "HEAD:refs/heads/main"]);
    (server, pushed)
}

#[test]
fn a_configuration_error_rejects_the_push_with_one_line() {
    let (server, pushed) =
        pushed_with_config(Some("[[rule]]\nrefs = [\"main\"]\nusers = [\"*\"]\nallow = [\"all\"]\n"));

    pushed.assert_rejected();
    assert_eq!(
        pushed.pushgate_lines(),
        [format!(
            "pushgate: push rejected: configuration error: {}:2:9: ref pattern \"main\" must be a full ref name: did you mean \"refs/heads/main\"?",
            server.config_path().display()
        )]
    );
    assert_eq!(server.refs(), []);
}

#[test]
fn several_configuration_errors_still_make_one_line() {
    let (server, pushed) =
        pushed_with_config(Some("[limits]\nmax_blob_size = \"lots\"\n[[rule]]\nallow = [\"all\"]\n"));

    pushed.assert_rejected();
    let lines = pushed.pushgate_lines();
    assert_eq!(lines.len(), 1, "{pushed}");
    assert!(lines[0].starts_with("pushgate: push rejected: configuration error: "), "{pushed}");
    assert!(lines[0].ends_with("(and 1 more: run `pushgate check`)"), "{pushed}");
    assert_eq!(server.refs(), []);
}

#[test]
fn a_missing_configuration_rejects_the_push() {
    let (server, pushed) = pushed_with_config(None);

    pushed.assert_rejected();
    assert_eq!(
        pushed.pushgate_lines(),
        [format!(
            "pushgate: push rejected: configuration error: {}: cannot read configuration: No such file or directory (os error 2) (set PUSHGATE_CONFIG to its path)",
            server.config_path().display()
        )]
    );
    assert_eq!(server.refs(), []);
}

#[test]
fn an_unreadable_configuration_rejects_the_push() {
    let server = TestServer::new().install(&[]);
    std::fs::create_dir(server.config_path()).unwrap();
    server.work().commit(&[("README.md", "# app\n")]);

    let pushed = server.push_as("alice", &["origin", "HEAD:refs/heads/main"]);

    pushed.assert_rejected().assert_no_panic();
    let lines = pushed.pushgate_lines();
    assert_eq!(lines.len(), 1, "{pushed}");
    assert!(lines[0].starts_with("pushgate: push rejected: configuration error: "), "{pushed}");
}

const OPEN: &str = r#"
[[rule]]
users = ["*"]
allow = ["all"]
"#;

#[test]
fn the_repository_file_is_evaluated_before_the_global_rules() {
    let repo_rules = r#"
[[rule]]
refs = ["refs/heads/main"]
users = ["bob"]
deny = ["create", "update"]
message = "bob pushes to his fork"
"#;
    let server = TestServer::new().config(OPEN).repo_config(repo_rules).install(&[]);
    server.work().commit(&[("README.md", "# app\n")]);

    let denied = server.push_as("bob", &["origin", "HEAD:refs/heads/main"]);
    denied.assert_rejected();
    assert_eq!(
        denied.pushgate_lines(),
        [
            "pushgate: push rejected for bob",
            "pushgate: refs/heads/main: create denied (repository rule 1: bob pushes to his fork)"
        ]
    );

    server.push_as("bob", &["origin", "HEAD:refs/heads/topic"]).assert_accepted();
    server.push_as("alice", &["origin", "HEAD:refs/heads/main"]).assert_accepted();
}

#[test]
fn global_rules_keep_their_numbers_when_a_repository_adds_rules() {
    let global = r#"
[[rule]]
refs = ["refs/heads/main"]
users = ["*"]
deny = ["force"]
message = "global protection"

[[rule]]
users = ["*"]
allow = ["all"]
"#;
    let repo_rules = "[[rule]]\nrefs = [\"refs/heads/sandbox/**\"]\nusers = [\"*\"]\nallow = [\"all\"]\n";
    let server = TestServer::new().config(global).repo_config(repo_rules).install(&[]);
    server.work().commit(&[("README.md", "# app\n")]);
    server.push_as("bob", &["origin", "HEAD:refs/heads/main"]).assert_accepted();
    server.work().git(&["commit", "--quiet", "--amend", "-m", "Rewritten"]).ok();

    let pushed = server.push_as("bob", &["--force", "origin", "HEAD:refs/heads/main"]);

    pushed.assert_rejected();
    assert_eq!(pushed.pushgate_lines()[1], "pushgate: refs/heads/main: force denied (rule 1: global protection)");
}

#[test]
fn a_broken_repository_file_fails_closed() {
    let server = TestServer::new().config(OPEN).repo_config("[groups]\nx = [\"y\"]\n").install(&[]);
    server.work().commit(&[("README.md", "# app\n")]);

    let pushed = server.push_as("alice", &["origin", "HEAD:refs/heads/main"]);

    pushed.assert_rejected();
    assert_eq!(
        pushed.pushgate_lines(),
        [format!(
            "pushgate: push rejected: configuration error: {}:1:2: `groups` may only be set in the global configuration, not in a repository's pushgate.toml",
            server.repo.join("pushgate.toml").display()
        )]
    );
}

#[test]
fn repos_root_names_repositories_by_their_path() {
    let server = TestServer::new();
    // The server is <tmp>/pushgate-test-XXXX/server.git: under repos_root = <tmp> its name
    // is pushgate-test-XXXX/server.
    let config = format!(
        "repos_root = {:?}\n[[rule]]\nrepos = [\"pushgate-test-*/server\"]\nusers = [\"*\"]\nallow = [\"all\"]\n",
        server.root().parent().unwrap().to_str().unwrap()
    );
    let server = server.config(&config).install(&[]);
    server.work().commit(&[("README.md", "# app\n")]);

    server.push_as("bob", &["origin", "HEAD:refs/heads/main"]).assert_accepted();

    let bare_name = "[[rule]]\nrepos = [\"server\"]\nusers = [\"*\"]\nallow = [\"all\"]\n";
    std::fs::write(server.config_path(), format!("repos_root = {:?}\n{bare_name}", server.root().parent().unwrap()))
        .unwrap();
    let pushed = server.push_as("bob", &["origin", "HEAD:refs/heads/topic"]);
    pushed.assert_rejected();
    assert_eq!(pushed.pushgate_lines()[1], "pushgate: refs/heads/topic: create denied (no rule allows it)");
}
