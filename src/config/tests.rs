//! Loading whole configurations: positions, suggestions, defaults, evaluation order.

use super::*;
use crate::push::{Action, Op};

fn parse(text: &str) -> Result<Config, ConfigErrors> {
    Config::parse(Path::new("config.toml"), text, None)
}

fn error(text: &str) -> String {
    parse(text).unwrap_err().to_string()
}

#[test]
fn a_full_config_loads() {
    let config = parse(
        r#"
repos_root = "/srv/git"
[identity]
env = ["PUSHGATE_USER"]
[groups]
maintainers = ["alice"]
devs = ["bob", "@maintainers"]
[users.alice]
emails = ["Alice@Example.org"]
[limits]
max_blob_size = "10 MiB"
[audit]
file = "/tmp/audit.jsonl"
[[rule]]
refs = ["refs/heads/main"]
users = ["@maintainers"]
allow = ["all"]
message = "main is protected"
[[rule]]
refs = ["refs/heads/**"]
paths = ["deploy/**"]
users = ["*"]
deny = ["write", "force"]
mode = "warn"
"#,
    )
    .unwrap();
    assert_eq!(config.groups.of("alice"), ["devs", "maintainers"]);
    assert_eq!(config.groups.of("bob"), ["devs"]);
    assert_eq!(config.max_blob_size.unwrap().bytes, 10 << 20);
    assert_eq!(config.rules.len(), 2);
    assert_eq!(config.rules[0].origin.line, 14);
    assert_eq!(config.rules[1].mode, Mode::Warn);
    assert!(config.rules[1].deny.contains(&Op::Force));
}

#[test]
fn unknown_keys_name_position_and_suggest() {
    let e = error("[[rule]]\nrefs = [\"refs/heads/x\"]\nusers = [\"*\"]\nalow = [\"create\"]\n");
    assert!(e.lines().any(|l| l == "config.toml:4:1: unknown key `alow` (did you mean `allow`?)"), "{e}");
}

#[test]
fn every_error_of_a_file_is_reported_not_just_the_first() {
    let e = error(
        "repos_rot = \"/srv\"\n[server]\nbase_uri = \"x\"\n[[rule]]\nusers = [\"*\"]\nallow = [\"all\"]\nmesage = 1\n\
         [[rule]]\nusers = 7\nallow = [\"all\"]\n[[rule]]\nrefs = [\"main\"]\nusers = [\"*\"]\nallow = [\"all\"]\n",
    );
    let lines: Vec<&str> = e.lines().collect();
    assert!(lines.contains(&"config.toml:1:1: unknown key `repos_rot` (did you mean `repos_root`?)"), "{e}");
    assert!(lines.contains(&"config.toml:3:1: unknown key `base_uri` (did you mean `base_url`?)"), "{e}");
    assert!(lines.contains(&"config.toml:7:1: unknown key `mesage` (did you mean `message`?)"), "{e}");
    assert!(lines.iter().any(|l| l.starts_with("config.toml:9:9: invalid type")), "{e}");
    assert!(
        lines.iter().any(|l| l.starts_with("config.toml:12:9: ref pattern \"main\" must be a full ref name")),
        "{e}"
    );
}

#[test]
fn ref_patterns_must_be_full_names() {
    let e = error("[[rule]]\nrefs = [\"main\"]\nusers = [\"*\"]\nallow = [\"all\"]\n");
    assert_eq!(e, "config.toml:2:9: ref pattern \"main\" must be a full ref name: did you mean \"refs/heads/main\"?");
}

#[test]
fn bad_globs_sizes_and_ops_are_positioned() {
    let e = error(
        "[limits]\nmax_blob_size = \"5 parsecs\"\n[[rule]]\nrefs = [\"refs/heads/[x\"]\nusers = [\"*\"]\nallow = [\"creat\"]\n",
    );
    let lines: Vec<&str> = e.lines().collect();
    assert!(lines[0].starts_with("config.toml:2:17: unknown size unit"), "{e}");
    assert!(lines[1].starts_with("config.toml:4:9: unclosed `[`"), "{e}");
    assert!(lines[2].starts_with("config.toml:6:10: unknown operation \"creat\" (did you mean `create`?)"), "{e}");
}

#[test]
fn all_in_a_path_rule_means_every_write() {
    let config = parse("[[rule]]\npaths = [\"deploy/**\"]\nusers = [\"*\"]\ndeny = [\"all\"]\n").unwrap();
    assert_eq!(config.rules[0].deny, [Op::Create, Op::Update, Op::Force, Op::Delete].into());
    let e = error("[[rule]]\npaths = [\"x\"]\nusers = [\"*\"]\nallow = [\"read\"]\n");
    assert!(e.starts_with("config.toml:4:10: a path rule cannot decide `read`"), "{e}");
}

#[test]
fn extensions_load_with_defaults() {
    let config = parse(
        r#"
[server]
base_url = "https://git.example.org/"
[[extension]]
name = "ci"
type = "http"
phase = "post"
url = "http://127.0.0.1:8080/hook"
secret_env = "CI_HOOK_SECRET"
format = "github"
headers = { "X-Team" = "web" }
[[extension]]
name = "lint"
type = "script"
phase = "pre"
command = ["/usr/local/bin/lint", "--strict"]
timeout = "500ms"
on_error = "allow"
mode = "warn"
"#,
    )
    .unwrap();
    assert_eq!(config.server.base_url, "https://git.example.org");
    assert_eq!(config.max_commits, DEFAULT_MAX_COMMITS);
    let [ci, lint] = &config.extensions[..] else { panic!("two extensions") };
    assert_eq!(ci.format, extension::Format::Github);
    assert!(ci.push_events && ci.enabled);
    assert!(
        matches!(&ci.kind, extension::Kind::Http { secret: Some(extension::Secret::Env(e)), .. } if e == "CI_HOOK_SECRET")
    );
    assert_eq!(lint.timeout, std::time::Duration::from_millis(500));
    assert_eq!(lint.on_error, extension::OnError::Allow);
    assert_eq!(lint.mode, Mode::Warn);
}

#[test]
fn extension_mistakes_are_positioned() {
    let e = error(
        "[[extension]]\nname = \"a\"\ntype = \"script\"\nphase = \"post\"\nurl = \"http://x\"\non_error = \"allow\"\n",
    );
    let lines: Vec<&str> = e.lines().collect();
    assert!(lines[0].starts_with("config.toml:1:1: a script extension needs `command`"), "{e}");
    assert!(lines.iter().any(|l| l.starts_with("config.toml:5:7: `url` does not apply to script")), "{e}");
    assert!(lines.iter().any(|l| l.starts_with("config.toml:6:12: `on_error` applies to pre extensions only")), "{e}");
    let dup = error(
        "[[extension]]\nname = \"a\"\ntype = \"script\"\nphase = \"pre\"\ncommand = [\"x\"]\n[[extension]]\nname = \"a\"\ntype = \"script\"\nphase = \"pre\"\ncommand = [\"y\"]\n",
    );
    assert!(dup.contains("config.toml:7:8: extension name \"a\" is already used at config.toml:1"), "{dup}");
    let bad = error("[[extension]]\nname = \"a b\"\ntype = \"ftp\"\nphase = \"later\"\n");
    assert!(bad.contains("must match [A-Za-z0-9._-]"), "{bad}");
    assert!(bad.contains("type \"ftp\""), "{bad}");
    assert!(bad.contains("phase \"later\""), "{bad}");
}

#[test]
fn extension_actions_and_formats_are_validated_with_positions() {
    let config = parse(
        "[[extension]]\nname = \"gl\"\ntype = \"http\"\nphase = \"post\"\nurl = \"http://x\"\nformat = \"gitlab\"\n\
         actions = [\"force\", \"delete\", \"force\"]\n[[extension]]\nname = \"all\"\ntype = \"http\"\n\
         phase = \"post\"\nurl = \"http://x\"\n",
    )
    .unwrap();
    let [gl, all] = &config.extensions[..] else { panic!("two extensions") };
    assert_eq!(gl.format, extension::Format::Gitlab);
    assert_eq!(gl.actions, [Action::Force, Action::Delete]);
    assert_eq!(all.actions, [Action::Create, Action::Update, Action::Force, Action::Delete], "the default");

    let table = "[[extension]]\nname = \"a\"\ntype = \"http\"\nphase = \"post\"\nurl = \"http://x\"\n";
    let e = error(&format!("{table}actions = [\"create\", \"forse\", \"write\", \"push\"]\nformat = \"gitlap\"\n"));
    let lines: Vec<&str> = e.lines().collect();
    assert_eq!(
        lines,
        [
            "config.toml:6:22: action \"forse\" must be \"create\", \"update\", \"force\" or \"delete\" (did you mean `force`?)",
            "config.toml:6:31: action \"write\" must be \"create\", \"update\", \"force\" or \"delete\" (`write` is a rule \
             shorthand: list \"create\" and \"update\")",
            "config.toml:6:40: action \"push\" must be \"create\", \"update\", \"force\" or \"delete\"",
            "config.toml:7:10: format \"gitlap\" must be \"pushgate\", \"github\" or \"gitlab\"",
        ],
        "{e}"
    );
    let empty = error(&format!("{table}actions = []\n"));
    assert!(empty.starts_with("config.toml:6:11: `actions` is empty"), "{empty}");
}

#[test]
fn group_cycles_are_errors() {
    let e = error("[groups]\na = [\"@b\"]\nb = [\"@a\"]\n");
    assert!(e.contains("group cycle: @a -> @b -> @a"), "{e}");
}

#[test]
fn unknown_groups_are_errors() {
    let e = error("[groups]\nmaintainers = [\"alice\"]\n[[rule]]\nusers = [\"@maintainer\"]\nallow = [\"all\"]\n");
    assert!(e.contains("unknown group `@maintainer` (did you mean `@maintainers`?)"), "{e}");
}

#[test]
fn rules_need_users_and_an_op_list() {
    assert!(error("[[rule]]\nallow = [\"all\"]\n").contains("rule has no `users`"));
    assert!(error("[[rule]]\nusers = [\"*\"]\n").contains("neither `allow` nor `deny`"));
    assert!(
        error("[[rule]]\nusers = [\"*\"]\nallow = [\"update\"]\ndeny = [\"write\"]\n")
            .contains("both allowed and denied")
    );
}

#[test]
fn syntax_errors_are_positioned() {
    let e = error("repos_root = \n");
    assert!(e.starts_with("config.toml:1:"), "{e}");
}

#[test]
fn repo_rules_come_first_and_global_keys_are_refused_there() {
    let global = "[[rule]]\nusers = [\"*\"]\nallow = [\"all\"]\n";
    let repo = "[[rule]]\nusers = [\"bob\"]\ndeny = [\"all\"]\n";
    let config = Config::parse(Path::new("g.toml"), global, Some((Path::new("pushgate.toml"), repo))).unwrap();
    assert_eq!(config.rules[0].origin.file, Path::new("pushgate.toml"));
    // Each file numbers its own rules: the repository's do not renumber the global ones.
    assert_eq!((config.rules[0].name(), config.rules[1].name()), ("repository rule 1".into(), "rule 1".into()));
    let bad = Config::parse(Path::new("g.toml"), global, Some((Path::new("pushgate.toml"), "[groups]\n"))).unwrap_err();
    assert!(bad.to_string().contains("may only be set in the global configuration"), "{bad}");
}

#[test]
fn missing_file_says_how_to_point_at_one() {
    let e = Config::load(Path::new("/nonexistent/pushgate.toml"), None).unwrap_err().to_string();
    assert!(e.contains("PUSHGATE_CONFIG"), "{e}");
}

#[test]
fn repo_names() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().canonicalize().unwrap();
    std::fs::create_dir_all(root.join("team/app.git")).unwrap();
    assert_eq!(repo_name(&root.join("team/app.git"), Some(&root)), "team/app");
    assert_eq!(repo_name(&root.join("team/app.git"), None), "app");
    assert_eq!(repo_name(Path::new("/elsewhere/x.git"), Some(&root)), "x");
    assert_eq!(repo_name(Path::new("/src/work/.git"), None), "work");
}

#[test]
fn the_postgres_backend_is_validated_with_positions() {
    let fleet =
        parse("[spool]\nbackend = \"postgres\"\nurl_file = \"/etc/pushgate/db.url\"\nlease = \"20s\"\n").unwrap();
    let Backend::Postgres(pg) = &fleet.spool.backend else { panic!("{:?}", fleet.spool.backend) };
    assert_eq!((pg.lease, pg.ca_file.clone()), (std::time::Duration::from_secs(20), None));
    assert_eq!(pg.url, extension::Secret::File("/etc/pushgate/db.url".into()));
    assert_eq!(parse("[spool]\nbackend = \"file\"\n").unwrap().spool.backend, Backend::File);
    assert!(error("[spool]\nbackend = \"pg\"\n").contains("2:11: backend \"pg\" must be \"file\" or \"postgres\""));
    assert!(error("[spool]\nbackend = \"postgres\"\n").contains("needs `url_env` or `url_file`"));
    assert!(
        error("[spool]\nbackend = \"postgres\"\nurl_env = \"1X\"\n").contains("3:11: \"1X\" is not an environment")
    );
    assert!(error("[spool]\nurl_env = \"DB\"\n").contains("2:11: url_env is for backend = \"postgres\""));
    assert!(
        error("[spool]\nbackend = \"postgres\"\nurl_env = \"DB\"\nlease = \"0s\"\n")
            .contains("lease must be at least 1s")
    );
    let slow = "[spool]\nbackend = \"postgres\"\nurl_env = \"DB\"\nlease = \"5s\"\n\
                [[extension]]\nname = \"ci\"\ntype = \"http\"\nphase = \"post\"\nurl = \"http://h/\"\ntimeout = \"10s\"\n";
    assert!(
        error(slow).contains("4:9: lease (5s) must be longer than every post extension's timeout plus 1s: ci has 10s")
    );
}

#[test]
fn repository_ops_are_decided_by_rules_over_every_ref() {
    let config = parse(
        "[[rule]]\nrepos = [\"users/{user}/*\"]\nusers = [\"*\"]\nallow = [\"repo-create\", \"repo-delete\", \"all\"]\n\
         [[rule]]\nrefs = [\"refs/**\"]\nusers = [\"*\"]\ndeny = [\"repo-delete\"]\n",
    )
    .unwrap();
    assert!(config.rules[0].allow.contains(&Op::RepoCreate) && config.rules[0].allow.contains(&Op::Read));
    assert!(config.rules[0].scope.has_user());
    let e = error("[[rule]]\nrefs = [\"refs/heads/*\"]\nusers = [\"*\"]\nallow = [\"repo-create\"]\n");
    assert_eq!(
        e,
        "config.toml:4:10: `repo-create` is about a whole repository: a rule deciding it has no `refs` (or `refs = \
         [\"refs/**\"]`)"
    );
    let e = error("[[rule]]\npaths = [\"x/**\"]\nusers = [\"*\"]\ndeny = [\"repo-delete\"]\n");
    assert_eq!(e, "config.toml:4:9: a path rule cannot decide `repo-delete`: it is about a whole repository");
    let e = error("[[rule]]\nusers = [\"*\"]\nallow = [\"repo_create\"]\n");
    assert!(e.contains("unknown operation \"repo_create\" (did you mean `repo-create`?)"), "{e}");
}

#[test]
fn the_user_placeholder_is_for_rules_and_checks_repos_and_refs() {
    assert!(parse("[[check]]\nrefs = [\"refs/heads/users/{user}/**\"]\nlinear_history = true\n").is_ok());
    let e = error("[[rule]]\nrepos = [\"users/{name}/*\"]\nusers = [\"*\"]\nallow = [\"read\"]\n");
    assert!(e.contains("unknown placeholder `{name}` (the one there is: `{user}`)"), "{e}");
    let e = error("[[rule]]\npaths = [\"home/{user}/**\"]\nusers = [\"*\"]\ndeny = [\"update\"]\n");
    assert!(e.contains("`{user}` stands for the user in `repos` and `refs` patterns, not in `paths`"), "{e}");
    let e = error(
        "[[extension]]\nname = \"x\"\ntype = \"http\"\nphase = \"post\"\nurl = \"http://x\"\nrepos = [\"users/{user}/*\"]\n",
    );
    assert!(e.contains("`{user}` stands for the user in rules and checks, not in an extension's scope"), "{e}");
}

#[test]
fn a_global_file_named_like_a_repositorys_is_still_the_global_one() {
    let text = "[[extension]]\nname = \"ci\"\ntype = \"http\"\nphase = \"post\"\nurl = \"http://h/\"\n";
    let config = Config::parse(Path::new("/etc/pushgate/pushgate.toml"), text, None).unwrap();
    assert_eq!(config.extensions[0].connector, "ci", "fleet members share the connector by its name");
    let repo =
        Config::parse(Path::new("config.toml"), "", Some((Path::new("/srv/a.git/pushgate.toml"), text))).unwrap();
    assert!(repo.extensions[0].connector.starts_with("ci~"), "{}", repo.extensions[0].connector);
}
