//! Who is pushing: the first non-empty variable of `[identity] env`; no identity or an
//! invalid name rejects the push.

use crate::harness::TestServer;

const OPEN_TO_ALICE: &str = r#"
[[rule]]
users = ["alice"]
allow = ["all"]
"#;

fn server(config: &str) -> TestServer {
    let server = TestServer::new().config(config).install(&[]);
    server.work().commit(&[("README.md", "# app\n")]);
    server
}

#[test]
fn a_push_without_identity_is_rejected_naming_the_variables_looked_at() {
    let server = server(OPEN_TO_ALICE);

    let pushed = server.work().push(&["origin", "HEAD:refs/heads/main"]).run();

    pushed.assert_rejected();
    assert_eq!(
        pushed.pushgate_lines(),
        ["pushgate: push rejected: no user identity: none of PUSHGATE_USER, GL_USER, REMOTE_USER is set"]
    );
    assert_eq!(server.refs(), []);
}

#[test]
fn an_empty_variable_is_no_identity() {
    let server = server(OPEN_TO_ALICE);

    let pushed = server.work().push(&["origin", "HEAD:refs/heads/main"]).env("PUSHGATE_USER", "").run();

    pushed.assert_rejected();
    assert!(pushed.pushgate_lines()[0].contains("no user identity"), "{pushed}");
}

#[test]
fn the_first_non_empty_variable_wins() {
    let server = server(OPEN_TO_ALICE);

    let as_gitlab = server.work().push(&["origin", "HEAD:refs/heads/main"]).env("GL_USER", "alice").run();
    as_gitlab.assert_accepted();

    let both = server
        .work()
        .push(&["origin", "HEAD:refs/heads/other"])
        .env("PUSHGATE_USER", "")
        .env("GL_USER", "bob")
        .env("REMOTE_USER", "alice")
        .run();
    both.assert_rejected();
    assert_eq!(both.pushgate_lines()[0], "pushgate: push rejected for bob");

    let web = server.work().push(&["origin", "HEAD:refs/heads/web"]).env("REMOTE_USER", "alice").run();
    web.assert_accepted();
}

#[test]
fn identity_env_names_the_variables_to_read() {
    let server = server(&format!("[identity]\nenv = [\"X_USER\"]\n{OPEN_TO_ALICE}"));

    let ignored = server.push_as("alice", &["origin", "HEAD:refs/heads/main"]);
    ignored.assert_rejected();
    assert_eq!(ignored.pushgate_lines(), ["pushgate: push rejected: no user identity: none of X_USER is set"]);

    let pushed = server.work().push(&["origin", "HEAD:refs/heads/main"]).env("X_USER", "alice").run();
    pushed.assert_accepted();
    assert_eq!(server.ref_target("refs/heads/main"), Some(server.work().head()));
}

#[test]
fn invalid_user_names_are_rejected_as_invalid() {
    let server = server(OPEN_TO_ALICE);

    for name in ["bob smith", "bob;rm", "alice\nalice", "$(id)", &"a".repeat(129)] {
        let pushed = server.push_as(name, &["origin", "HEAD:refs/heads/main"]);
        pushed.assert_rejected();
        let lines = pushed.pushgate_lines();
        assert_eq!(lines.len(), 1, "{pushed}");
        assert!(lines[0].starts_with("pushgate: push rejected: invalid user name "), "{pushed}");
        assert!(lines[0].ends_with("(from PUSHGATE_USER): it must match [A-Za-z0-9._@+-]{1,128}"), "{pushed}");
    }
    assert_eq!(
        server.push_as("bob smith", &["origin", "HEAD:refs/heads/main"]).pushgate_lines(),
        [
            "pushgate: push rejected: invalid user name \"bob smith\" (from PUSHGATE_USER): it must match [A-Za-z0-9._@+-]{1,128}"
        ]
    );
    assert_eq!(server.refs(), []);
}

#[test]
fn names_with_every_allowed_character_are_valid() {
    let name = "Al.ice-9+x@example.org";
    let server = server(&format!("[[rule]]\nusers = [{name:?}]\nallow = [\"all\"]\n"));

    server.push_as(name, &["origin", "HEAD:refs/heads/main"]).assert_accepted();
}
