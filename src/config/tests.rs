//! Loading whole configurations: positions, suggestions, defaults, evaluation order.

use super::*;
use crate::push::Op;

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
    assert_eq!(config.rules[1].number, 2);
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
