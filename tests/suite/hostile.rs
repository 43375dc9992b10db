//! Hostile input: ref names and repository paths full of shell syntax are data, file names
//! with any bytes are matched and shown on one line, ten thousand refs in one push, and
//! garbage on the hooks' stdin.

use crate::harness::{TestServer, ZERO, updates};

const RULES: &str = r#"
[[rule]]
refs = ["refs/heads/**"]
paths = ["deploy/*.txt", "docs/with space/**"]
users = ["*"]
deny = ["create", "update", "force"]

[[rule]]
refs = ["refs/heads/ok/**"]
users = ["*"]
allow = ["all"]

[[rule]]
refs = ["refs/heads/main", "refs/heads/b*"]
users = ["*"]
allow = ["create", "update"]
"#;

fn server() -> TestServer {
    let server = TestServer::new().config(RULES).install(&[]);
    server.work().commit(&[("README.md", "# app\n")]);
    server
}

/// Refs git accepts (check-ref-format) that a shell would execute.
const SHELL_REFS: [&str; 4] = [
    "$(touch${IFS}pwned)",
    "`touch${IFS}pwned`",
    "x;touch${IFS}pwned|cat&touch${IFS}pwned>pwned",
    "'\"$IFS\"'{a,b}!#%=",
];

#[test]
fn ref_names_with_shell_syntax_are_data() {
    let server = server();

    for name in SHELL_REFS {
        let allowed = format!("refs/heads/ok/{name}");
        let pushed = server.push_as("bob", &["origin", &format!("HEAD:{allowed}")]);
        pushed.assert_accepted().assert_no_panic();
        assert_eq!(server.ref_target(&allowed), Some(server.work().head()), "{pushed}");

        let denied = format!("refs/heads/{name}");
        let pushed = server.push_as("bob", &["origin", &format!("HEAD:{denied}")]);
        pushed.assert_rejected();
        assert_eq!(
            pushed.pushgate_lines(),
            [
                "pushgate: push rejected for bob".to_string(),
                format!("pushgate: {denied}: create denied (no rule allows it)")
            ]
        );
        assert_eq!(server.ref_target(&denied), None);
    }

    assert_eq!(server.sandbox.files_named("pwned"), Vec::<std::path::PathBuf>::new());
}

#[test]
fn shell_syntax_in_ref_names_reaches_the_audit_log_as_data() {
    let server = TestServer::new();
    let audit = server.root().join("audit.jsonl");
    let config = format!("[audit]\nfile = {:?}\n{RULES}", audit.to_str().unwrap());
    let server = server.config(&config).install(&[]);
    server.work().commit(&[("README.md", "# app\n")]);
    let name = format!("refs/heads/ok/{}", SHELL_REFS[3]);

    server.push_as("bob", &["origin", &format!("HEAD:{name}")]).assert_accepted();

    let line: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&audit).unwrap()).unwrap();
    assert_eq!(line["updates"][0]["ref"], name.as_str());
}

/// Also a `:` in the path: git C-quotes such a path in GIT_ALTERNATE_OBJECT_DIRECTORIES,
/// which pushgate must read to see the quarantine.
#[test]
fn a_repository_path_with_shell_syntax_is_data() {
    let server = TestServer::new().config(RULES);
    let repo = server.root().join("it's a \"$(touch pwned)\" `touch pwned`: repo.git");
    server.sandbox.git(server.root(), &["init", "--quiet", "--bare"]).arg(&repo).ok();
    server.pushgate(&["install"]).args([&repo]).ok();
    let repo_arg = repo.to_str().unwrap();
    server.work().commit(&[("README.md", "# app\n")]);

    server.work().push_as("bob", &[repo_arg, "HEAD:refs/heads/main"]).assert_accepted();
    let pushed = server.work().push_as("bob", &[repo_arg, "HEAD:refs/heads/elsewhere"]);

    pushed.assert_rejected();
    assert_eq!(pushed.pushgate_lines()[1], "pushgate: refs/heads/elsewhere: create denied (no rule allows it)");
    assert_eq!(server.sandbox.files_named("pwned"), Vec::<std::path::PathBuf>::new());
}

#[test]
fn file_names_with_any_bytes_are_matched_and_shown_on_one_line() {
    let server = server();
    server.push_as("bob", &["origin", "HEAD:refs/heads/main"]).assert_accepted();
    server.work().commit_raw_paths(&[
        b"deploy/with space.txt",
        b"deploy/\"quoted\".txt",
        b"deploy/new\nline.txt",
        b"deploy/bad\xffbyte.txt",
        b"deploy/\x1b[31mred.txt",
        b"deploy/not-text.bin",
        b"docs/with space/guide.md",
        b"docs/tab\there.md",
    ]);

    let pushed = server.push_as("bob", &["origin", "HEAD:refs/heads/main"]);

    pushed.assert_rejected().assert_no_panic();
    assert_eq!(
        pushed.remote_lines(),
        [
            "pushgate: push rejected for bob",
            "pushgate: refs/heads/main: deploy/\\u{1b}[31mred.txt: update denied (rule 1)",
            "pushgate: refs/heads/main: deploy/\"quoted\".txt: update denied (rule 1)",
            "pushgate: refs/heads/main: deploy/bad\u{fffd}byte.txt: update denied (rule 1)",
            "pushgate: refs/heads/main: deploy/new\\nline.txt: update denied (rule 1)",
            "pushgate: refs/heads/main: deploy/with space.txt: update denied (rule 1)",
            "pushgate: refs/heads/main: docs/with space/guide.md: update denied (rule 1)",
        ]
    );
}

#[test]
fn hostile_file_names_outside_the_rules_pass() {
    let server = server();
    let tip = server.work().commit_raw_paths(&[b"src/new\nline.rs", b"src/bad\xff.rs", b"src/$(touch pwned).rs"]);

    server.push_as("bob", &["origin", "HEAD:refs/heads/main"]).assert_accepted();

    assert_eq!(server.ref_target("refs/heads/main"), Some(tip));
    assert_eq!(server.sandbox.files_named("pwned"), Vec::<std::path::PathBuf>::new());
}

const MANY: usize = 10_000;

#[test]
fn ten_thousand_refs_in_one_push_land() {
    let server = server();
    let tip = server.work().head();
    let creates: String = (0..MANY).map(|i| format!("create refs/heads/b{i} {tip}\n")).collect();
    server.work().git(&["update-ref", "--stdin"]).stdin(creates).ok();

    let pushed = server.push_as("bob", &["--quiet", "origin", "refs/heads/b*:refs/heads/b*"]);

    pushed.assert_accepted().assert_no_panic();
    let refs = server.refs();
    assert_eq!(refs.len(), MANY);
    assert!(refs.iter().all(|(name, id)| name.starts_with("refs/heads/b") && *id == tip));
}

#[test]
fn ten_thousand_refs_are_decided_one_by_one() {
    let server = server();
    let tip = server.work().head();
    let mut creates: String = (0..MANY - 1).map(|i| format!("create refs/heads/b{i} {tip}\n")).collect();
    creates.push_str(&format!("create refs/heads/zzz {tip}\n"));
    server.work().git(&["update-ref", "--stdin"]).stdin(creates).ok();

    let pushed = server.push_as("bob", &["--quiet", "origin", "refs/heads/*:refs/heads/*"]);

    pushed.assert_rejected();
    assert_eq!(
        pushed.pushgate_lines(),
        ["pushgate: push rejected for bob", "pushgate: refs/heads/zzz: create denied (no rule allows it)"]
    );
    assert_eq!(server.refs(), []);
}

#[test]
fn an_empty_push_input_is_accepted() {
    let server = server();

    for input in ["", "\n"] {
        let run = server.hook("bob", &["pre-receive"]).stdin(input).run();
        run.assert_code(0);
        assert_eq!(run.stderr, "", "{run}");
    }
}

#[test]
fn binary_garbage_on_stdin_is_rejected() {
    let server = server();
    let garbage: Vec<u8> = (0..4096u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();

    let run = server.hook("bob", &["pre-receive"]).stdin(garbage).run();

    run.assert_code(1).assert_no_panic();
    assert_eq!(run.stderr_lines().len(), 1, "{run}");
    assert!(run.stderr.starts_with("pushgate: push rejected: malformed hook input: line 1: "), "{run}");
}

#[test]
fn malformed_update_lines_are_rejected_naming_the_line() {
    let server = server();
    let id = server.work().head();
    let ok = updates(&[(ZERO, &id, "refs/heads/ok/a")]);
    let cases: Vec<(String, &str)> = vec![
        (format!("{ok}{ZERO} {id} refs/heads/ok/a\n"), "line 2: refs/heads/ok/a appears twice"),
        (
            format!("{ok}{ZERO} {id} refs/heads/ok/b\r\n"),
            "line 2: ref \"refs/heads/ok/b\\r\": contains a control character",
        ),
        (format!("{ZERO} {} refs/heads/ok/a\n", id.to_uppercase()), "line 1: new id: "),
        (format!("{ZERO} {id}\n"), "line 1: expected `<old-id> <new-id> <ref>`"),
        (format!("{ZERO} {ZERO} refs/heads/ok/a\n"), "line 1: old and new ids are both zero"),
        (format!("{ZERO} {id} refs/heads/ok/a b\n"), "line 1: ref \"refs/heads/ok/a b\": contains a space"),
        (format!("{ZERO} {id} refs/heads/../../etc\n"), "line 1: ref \"refs/heads/../../etc\": contains `..`"),
        (format!("{ok}{ZERO} {id} refs/heads/\u{0}nul\n"), "line 2: "),
        (format!("{ZERO} {id} {}\n", "refs/heads/x".repeat(1000)), "line 1: ref "),
    ];

    for (input, expected) in cases {
        let run = server.hook("bob", &["pre-receive"]).stdin(input.clone()).run();
        run.assert_code(1).assert_no_panic();
        assert_eq!(run.stderr_lines().len(), 1, "{input:?}\n{run}");
        let line = run.stderr_lines()[0];
        let reason = line.strip_prefix("pushgate: push rejected: malformed hook input: ").unwrap_or(line);
        assert!(reason.starts_with(expected), "{input:?}: {line}");
        assert!(line.len() < 400, "the reason is cut to a readable length: {line}");
    }
}

#[test]
fn non_utf8_ref_names_are_rejected() {
    let server = server();
    let id = server.work().head();
    let mut input = format!("{ZERO} {id} refs/heads/").into_bytes();
    input.extend(b"\xff\xfe\n");

    let run = server.hook("bob", &["pre-receive"]).stdin(input).run();

    run.assert_code(1).assert_no_panic();
    assert_eq!(run.stderr, "pushgate: push rejected: malformed hook input: line 1: ref name is not valid UTF-8\n");
}

#[test]
fn trees_blobs_and_submodules_are_not_commits_but_do_not_break_the_gate() {
    let server = TestServer::new().config("[limits]\nmax_blob_size = \"1 KiB\"\n[[rule]]\npaths = [\"deploy/**\"]\nusers = [\"*\"]\ndeny = [\"create\", \"update\", \"force\"]\n[[rule]]\nusers = [\"*\"]\nallow = [\"all\"]\n").install(&[]);
    let base = server.work().commit(&[("README.md", "# app\n")]);
    let info = format!("160000,{base},vendor/lib");
    server.work().git(&["update-index", "--add", "--cacheinfo", &info]).ok();
    server.work().git(&["commit", "--quiet", "-m", "Add a submodule"]).ok();
    let tip = server.work().head();

    server.push_as("bob", &["origin", "HEAD:refs/heads/main"]).assert_accepted().assert_no_panic();
    // A bare tree or blob brings contents no commit carries: while path rules and size limits
    // apply, it is refused (fail closed) rather than let through unchecked.
    let tree = server.push_as("bob", &["origin", "HEAD^{tree}:refs/tags/tree"]);
    tree.assert_rejected().assert_no_panic();
    assert!(
        tree.pushgate_lines().iter().any(|l| l.contains("refs/tags/tree: points at a tree, not a commit")),
        "{tree}"
    );
    let blob = server.push_as("bob", &["origin", "HEAD:README.md:refs/tags/blob"]);
    blob.assert_rejected().assert_no_panic();
    assert!(
        blob.pushgate_lines().iter().any(|l| l.contains("refs/tags/blob: points at a blob, not a commit")),
        "{blob}"
    );

    assert_eq!(server.ref_target("refs/heads/main"), Some(tip));
    assert_eq!(server.ref_target("refs/tags/tree"), None);
    assert_eq!(server.ref_target("refs/tags/blob"), None);
}
