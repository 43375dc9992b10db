//! Where a command's output goes is the user's business: a reader that went away
//! (`pushgate keys DIR | head -1`) ends a command quietly with its usual exit code, and a
//! full disk (`pushgate check > /dev/full`) is an error said in one line (exit 2), never a
//! panic.

use crate::harness::{
    ALLOW_ALL, Invocation, Run, TestServer, deliver_once, json_of, post_http, refused_url, spool_table,
};

/// A server with something to say about everything: a rule, a pushed commit, a key, and a
/// connector whose endpoint is down (so a job waits and the log has an attempt).
fn server() -> TestServer {
    let server = TestServer::new();
    let toml = format!("{ALLOW_ALL}{}{}", post_http("ci", &refused_url(), ""), spool_table(&server, &["1h"]));
    let server = server.config(&toml).install(&[]);
    server.work().commit(&[("README", "hello\n")]);
    server.push_as("alice", &["origin", "HEAD:refs/heads/main"]).assert_accepted();
    deliver_once(&server);
    let keys = server.root().join("keys");
    std::fs::create_dir(&keys).unwrap();
    for user in ["alice", "bob"] {
        std::fs::write(
            keys.join(format!("{user}.pub")),
            format!("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI{user} {user}\n"),
        )
        .unwrap();
    }
    server
}

/// Every command that prints to standard output, with its arguments.
fn commands(server: &TestServer) -> Vec<Vec<String>> {
    let job = json_of(server, &["queue", "list"])[0]["id"].as_str().unwrap().to_string();
    let repo = server.repo.display().to_string();
    let keys = server.root().join("keys").display().to_string();
    let explain = ["explain", "--user", "alice", "--ref", "refs/heads/main", "--op", "update"];
    let lists: Vec<Vec<&str>> = vec![
        vec!["keys", &keys],
        explain.to_vec(),
        [explain.as_slice(), &["--json"]].concat(),
        vec!["check"],
        vec!["check", "--json"],
        vec!["simulate", "--repo", &repo, "--user", "alice"],
        vec!["queue", "status"],
        vec!["queue", "status", "--json"],
        vec!["queue", "list"],
        vec!["queue", "show", &job],
        vec!["log"],
        vec!["log", "--json"],
        vec!["metrics"],
        vec!["doctor", "--repo", &repo],
        vec!["completions", "bash"],
        vec!["manpage"],
        vec!["--help"],
        vec!["--version"],
        vec!["queue", "--help"],
    ];
    lists.into_iter().map(|l| l.into_iter().map(str::to_string).collect()).collect()
}

fn pushgate(server: &TestServer, args: &[String]) -> Invocation {
    // simulate reads updates: one that creates a branch the rules allow.
    let head = server.work().head();
    server.pushgate(&[]).args(args).stdin(format!("{} {head} refs/heads/topic\n", "0".repeat(40)))
}

#[track_caller]
fn assert_quiet(run: &Run) {
    run.assert_no_panic();
    assert!(run.stderr.is_empty(), "a closed pipe is no error to speak of\n{run}");
}

#[test]
fn a_reader_that_went_away_ends_every_command_quietly_with_its_usual_exit_code() {
    let server = server();
    for args in commands(&server) {
        let usual = pushgate(&server, &args).run();
        assert!(!usual.stdout.is_empty(), "nothing to write\n{usual}");

        let closed = pushgate(&server, &args).stdout_closed().run();

        assert_eq!(closed.code, usual.code, "another exit status than usual\n{closed}");
        assert_quiet(&closed);
    }
}

#[test]
fn a_full_disk_under_standard_output_is_one_line_and_exit_2() {
    let server = server();
    for args in commands(&server) {
        let run = pushgate(&server, &args).stdout_full().run();

        run.assert_code(2).assert_no_panic();
        assert_eq!(
            run.stderr_lines(),
            ["pushgate: cannot write the output: No space left on device (os error 28)"],
            "\n{run}"
        );
    }
}

#[test]
fn keys_into_head_gives_the_first_line_and_exits_0() {
    let server = server();
    let keys = server.root().join("keys");
    let script = format!(
        "{} keys {} | head -1; echo \"status ${{PIPESTATUS[0]}}\"",
        crate::harness::shell_quoted(crate::harness::PUSHGATE),
        crate::harness::shell_quoted(&keys)
    );

    let run = server.sandbox.command("bash").args(["-c", &script]).run();

    run.assert_code(0).assert_no_panic();
    let lines = run.stdout_lines();
    assert_eq!(lines.len(), 2, "{run}");
    assert!(lines[0].starts_with("command=") && lines[0].contains("shell alice"), "{run}");
    assert_eq!(lines[1], "status 0");
    assert!(run.stderr.is_empty(), "{run}");
}
