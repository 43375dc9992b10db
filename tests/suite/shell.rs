//! `pushgate shell` (the SSH forced command) and `pushgate keys`: git clones and pushes
//! through a stand-in `ssh` that runs the forced command as sshd would, the refusals, the
//! identity that only the key decides, pull events, and one run through a real sshd.

use crate::harness::{Invocation, PUSHGATE, Run, Sandbox, WAIT, quoted, shell_quoted};
use std::path::{Path, PathBuf};

/// alice may do anything, bob may read.
const READ_AND_WRITE: &str = r#"
[[rule]]
refs = ["refs/**"]
users = ["alice"]
allow = ["all"]

[[rule]]
refs = ["refs/**"]
users = ["bob"]
allow = ["read"]
"#;

/// `git <args>` in `dir` through the stand-in ssh, with `user`'s key.
fn git_over_ssh(site: &Sandbox, dir: &Path, user: &str, args: &[&str]) -> Invocation {
    site.git(dir, args).env("GIT_SSH_COMMAND", site.ssh()).env("GIT_SSH_VARIANT", "simple").env("SSH_AS", user)
}

/// `pushgate shell <user>` run by hand, as sshd runs it for a client that asked for
/// `command` (`None`: an interactive login).
fn shell(site: &Sandbox, user: &str, command: Option<&str>) -> Run {
    let cmd = site.pushgate(&["shell", user]);
    match command {
        Some(command) => cmd.env("SSH_ORIGINAL_COMMAND", command),
        None => cmd,
    }
    .run()
}

/// The shell refused: exit 1, nothing on stdout, and one line on stderr that says why.
#[track_caller]
fn assert_refused(run: &Run, reason: &str) {
    assert_eq!(run.code, Some(1), "{run}");
    assert_eq!(run.stdout, "", "{run}");
    let lines: Vec<&str> = run.stderr.lines().collect();
    assert_eq!(lines.len(), 1, "one line expected\n{run}");
    assert!(lines[0].starts_with("pushgate: ") && lines[0].contains(reason), "expected {reason:?}\n{run}");
}

/// The id `name` has in repository `repo`, if it exists.
fn rev(site: &Sandbox, repo: &Path, name: &str) -> Option<String> {
    let run = site.git(repo, &["rev-parse", "--verify", "--quiet", name]).run();
    (run.code == Some(0)).then(|| run.stdout.trim().to_string())
}

#[test]
fn clone_and_push_through_the_shell_follow_read_and_write_rules() {
    let site = Sandbox::new();
    site.configure(READ_AND_WRITE);
    let repo = site.git_repo("team/app.git");
    let work = site.git_work("work");
    let url = "ssh://host/team/app.git";
    git_over_ssh(&site, &work, "alice", &["push", "--quiet", url, "main"]).ok();
    let main = rev(&site, &work, "main");
    assert_eq!(rev(&site, &repo, "main"), main);

    git_over_ssh(&site, &site.root, "bob", &["clone", "--quiet", url, "bobs"]).ok();
    let bobs = site.root.join("bobs");
    assert_eq!(std::fs::read_to_string(bobs.join("README")).unwrap(), "hello\n");
    let archive = git_over_ssh(&site, &site.root, "bob", &["archive", "--remote", url, "main", "README"]).run();
    assert_eq!(archive.code, Some(0), "{archive}");
    assert!(archive.stdout.contains("hello"), "{archive}");

    site.git(&bobs, &["commit", "--quiet", "--allow-empty", "-m", "Bob's"]).ok();
    let run = git_over_ssh(&site, &bobs, "bob", &["push", "origin", "main"]).run();
    assert_eq!(run.code, Some(128), "{run}");
    assert_eq!(run.all_pushgate_lines(), ["pushgate: bob may not push to team/app"], "{run}");
    assert_eq!(rev(&site, &repo, "main"), main);

    let run = git_over_ssh(&site, &site.root, "eve", &["clone", url, "eves"]).run();
    assert_eq!(run.code, Some(128), "{run}");
    assert_eq!(run.all_pushgate_lines(), ["pushgate: eve may not read team/app"], "{run}");
    assert!(!site.root.join("eves").exists());
}

#[test]
fn repository_names_resolve_under_repos_root() {
    let site = Sandbox::new();
    site.configure("[[rule]]\nrefs = [\"refs/**\"]\nusers = [\"alice\"]\nallow = [\"read\"]\n");
    let work = site.git_work("work");
    let first = rev(&site, &work, "main").unwrap();
    site.git(&site.root, &["clone", "--quiet", "--bare", "work"]).arg(site.repos.join("app.git")).ok();
    site.git(&work, &["commit", "--quiet", "--allow-empty", "-m", "Second"]).ok();
    let second = rev(&site, &work, "main").unwrap();
    site.git(&site.root, &["clone", "--quiet", "--bare", "work"]).arg(site.repos.join("team/app.git")).ok();

    let root = site.repos.display();
    for (url, id) in [
        ("host:app.git".to_string(), &first),
        ("host:app".to_string(), &first),
        ("ssh://host/team/app.git".to_string(), &second),
        ("host:team/app".to_string(), &second),
        (format!("host:{root}/team/app.git"), &second),
        (format!("ssh://host{root}/app"), &first),
    ] {
        let heads = git_over_ssh(&site, &site.root, "alice", &["ls-remote", &url, "refs/heads/main"]).ok();
        assert_eq!(heads, format!("{id}\trefs/heads/main"), "{url}");
    }
}

#[test]
fn the_shell_refuses_with_one_line_and_a_non_zero_exit() {
    let site = Sandbox::new();
    site.configure(READ_AND_WRITE);
    site.git(&site.root, &["init", "--quiet", "--bare"]).arg(site.repos.join("app.git")).ok();
    site.git(&site.root, &["init", "--quiet", "--bare", "outside.git"]).ok();
    std::os::unix::fs::symlink(site.root.join("outside.git"), site.repos.join("link.git")).unwrap();
    std::fs::create_dir_all(site.repos.join("plain/objects")).unwrap();
    let canary = site.root.join("home/canary");
    std::fs::write(&canary, "still here\n").unwrap();
    let outside = format!("git-upload-pack '{}'", site.root.join("outside.git").display());

    let refused = [
        ("git-upload-pack 'team/../app.git'", "`..`"),
        ("git-upload-pack '../outside.git'", "`..`"),
        ("git-upload-pack 'link.git'", "outside repos_root"),
        ("git-upload-pack 'link'", "outside repos_root"),
        (outside.as_str(), "no such Git repository"),
        ("git-upload-pack 'plain'", "no such Git repository"),
        ("git-receive-pack 'missing.git'", "no such Git repository"),
        ("hg -R app.git serve --stdio", "no such Mercurial repository"),
        ("bash", "command not allowed"),
        ("git-receive-pack 'app.git'; rm -rf ~", "command not allowed"),
        ("git-upload-pack 'app.git' && rm -rf ~", "command not allowed"),
        ("git-upload-pack \"$(rm -rf ~)\"", "no such Git repository"),
        ("sh -c 'rm -rf ~'", "command not allowed"),
        ("git-upload-pack 'app.git", "cannot parse"),
    ];
    for (command, reason) in refused {
        assert_refused(&shell(&site, "alice", Some(command)), reason);
    }
    assert_refused(&shell(&site, "alice", None), "interactive logins are not allowed");
    assert_refused(&shell(&site, "alice", Some("  ")), "interactive logins are not allowed");
    assert_refused(&shell(&site, "eve", Some("git-upload-pack 'app.git'")), "eve may not read app");
    assert_refused(&shell(&site, "bob", Some("git-receive-pack 'app.git'")), "bob may not push to app");
    assert_refused(&shell(&site, "al ice", Some("git-upload-pack 'app.git'")), "invalid user name");
    assert_eq!(std::fs::read_to_string(&canary).unwrap(), "still here\n", "a command ran through a shell");
}

#[test]
fn identity_variables_from_the_client_do_not_change_who_the_user_is() {
    let site = Sandbox::new();
    site.configure(
        r#"
[[rule]]
refs = ["refs/**"]
users = ["alice"]
allow = ["all"]

[[rule]]
refs = ["refs/heads/bob/**"]
users = ["bob"]
allow = ["all"]
"#,
    );
    let repo = site.git_repo("app.git");
    let work = site.git_work("work");
    let as_alice =
        |cmd: Invocation| cmd.env("PUSHGATE_USER", "alice").env("GL_USER", "alice").env("REMOTE_USER", "alice");

    let run = as_alice(git_over_ssh(&site, &work, "bob", &["push", "host:app.git", "main"])).run();
    assert_eq!(run.code, Some(1), "{run}");
    assert_eq!(
        run.all_pushgate_lines(),
        ["pushgate: push rejected for bob", "pushgate: refs/heads/main: create denied (no rule allows it)"],
        "{run}"
    );
    assert_eq!(rev(&site, &repo, "main"), None);
    as_alice(git_over_ssh(&site, &work, "bob", &["push", "--quiet", "host:app.git", "main:bob/topic"])).ok();

    let run = as_alice(git_over_ssh(&site, &work, "eve", &["ls-remote", "host:app.git"])).run();
    assert_eq!(run.code, Some(128), "{run}");
    assert_eq!(run.all_pushgate_lines(), ["pushgate: eve may not read app"], "{run}");
}

/// `ssh-keygen` a new ed25519 key pair: the public key's line.
fn keygen(dir: &Path, name: &str) -> String {
    let key = dir.join(name);
    let run = std::process::Command::new("ssh-keygen")
        .args(["-t", "ed25519", "-N", "", "-q", "-C", name, "-f"])
        .arg(&key)
        .output()
        .unwrap();
    assert!(run.status.success(), "ssh-keygen failed: {}", String::from_utf8_lossy(&run.stderr));
    std::fs::read_to_string(key.with_extension("pub")).unwrap().trim().to_string()
}

/// The forced command of an `authorized_keys` line as sshd reads it: inside the double
/// quotes, `\"` stands for `"` and every other character for itself.
fn forced_command(line: &str) -> (String, &str) {
    let rest = line.strip_prefix("command=\"").unwrap_or_else(|| panic!("no command= first: {line}"));
    let mut command = String::new();
    let mut chars = rest.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return (command, &rest[i + 1..]),
            '\\' if rest[i + 1..].starts_with('"') => {
                chars.next();
                command.push('"');
            }
            c => command.push(c),
        }
    }
    panic!("no closing quote: {line}")
}

#[test]
fn keys_prints_one_forced_command_per_key() {
    let site = Sandbox::new();
    let keys = site.root.join("keys");
    std::fs::create_dir(&keys).unwrap();
    let alice = keygen(&keys, "alice");
    let bob = keygen(&keys, "bob");
    std::fs::write(keys.join("notes.txt"), "not a key\n").unwrap();
    let exe = shell_quoted(std::fs::canonicalize(PUSHGATE).unwrap());

    let out = site.pushgate(&["keys"]).arg(&keys).ok();
    let restrictions = "no-port-forwarding,no-X11-forwarding,no-agent-forwarding,no-pty";
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        [
            format!("command=\"{exe} shell alice\",{restrictions} {alice}"),
            format!("command=\"{exe} shell bob\",{restrictions} {bob}"),
        ]
    );

    let config = site.root.join("etc/it's \"here\"/config.toml");
    let out = site.pushgate(&["keys", "--config"]).arg(&config).arg(&keys).ok();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "{out}");
    let (command, options) = forced_command(lines[0]);
    assert_eq!(command, format!("{exe} --config {} shell alice", shell_quoted(&config)));
    assert_eq!(options, format!(",{restrictions} {alice}"));
}

/// What the forced command of `keys --config <config>` does when sshd runs it with the
/// user's shell for a client asking for `git-upload-pack 'app.git'`.
fn run_forced_command(site: &Sandbox, config: &Path) -> Run {
    let keys = site.root.join("keys");
    std::fs::create_dir_all(&keys).unwrap();
    keygen(&keys, "alice");
    let out = site.pushgate(&["keys", "--config"]).arg(config).arg(&keys).ok();
    let (command, _) = forced_command(&out);
    site.command("sh")
        .args(["-c", &command])
        .env_remove("PUSHGATE_CONFIG")
        .env("SSH_ORIGINAL_COMMAND", "git-upload-pack 'app.git'")
        .run()
}

#[test]
fn the_forced_command_finds_a_config_whose_path_has_quotes_and_spaces() {
    let site = Sandbox::new();
    let config = site.root.join("it's \"the\" config.toml");
    std::fs::write(&config, format!("repos_root = {}\n{READ_AND_WRITE}", quoted(&site.repos))).unwrap();
    let run = run_forced_command(&site, &config);
    assert_refused(&run, "\"app.git\": no such Git repository");
}

#[test]
fn the_forced_command_finds_a_config_whose_path_has_a_backslash() {
    let site = Sandbox::new();
    let config = site.root.join("back\\slash.toml");
    std::fs::write(&config, format!("repos_root = {}\n{READ_AND_WRITE}", quoted(&site.repos))).unwrap();
    let run = run_forced_command(&site, &config);
    assert_refused(&run, "\"app.git\": no such Git repository");
}

#[test]
fn pull_events_reach_only_the_extensions_that_ask_for_them() {
    let site = Sandbox::new();
    let config = format!(
        "{READ_AND_WRITE}\n{}\n{}",
        site.recorder("pulls", "events = [\"push\", \"pull\"]"),
        site.recorder("pushes", "")
    );
    site.configure(&config);
    site.git_work("work");
    site.git(&site.root, &["clone", "--quiet", "--bare", "work"]).arg(site.repos.join("team/app.git")).ok();

    git_over_ssh(&site, &site.root, "bob", &["clone", "--quiet", "host:team/app", "bobs"]).ok();
    let pulls = site.events("pulls");
    assert_eq!(pulls.len(), 1, "{pulls:#?}");
    let pull = &pulls[0];
    assert_eq!(pull["schema"], "pushgate.pull/1");
    assert_eq!(pull["user"]["name"], "bob");
    assert_eq!(pull["user"]["via"], "ssh");
    assert_eq!(pull["repository"]["name"], "team/app");
    assert_eq!(pull["repository"]["path"], site.repos.join("team/app.git").to_str().unwrap());
    assert!(pull["time"].as_str().is_some_and(|t| t.ends_with('Z')), "{pull:#}");
    assert_eq!(site.events("pushes"), Vec::<serde_json::Value>::new());
}

/// A path for sshd: its own binary, if this machine has one.
fn sshd() -> Option<PathBuf> {
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|path| std::env::split_paths(&path).collect::<Vec<_>>())
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/usr/local/sbin")])
        .map(|dir| dir.join("sshd"))
        .find(|path| path.is_file())
}

/// A real sshd on 127.0.0.1, as the current user, with its own host key and config;
/// killed when dropped.
struct Sshd {
    child: std::process::Child,
    port: u16,
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Sshd {
    /// Started and listening, or what sshd said when it gave up.
    fn start(site: &Sandbox, binary: &Path, authorized_keys: &Path) -> Result<Sshd, String> {
        let dir = site.root.join("sshd");
        std::fs::create_dir_all(&dir).unwrap();
        keygen(&dir, "host_key");
        // Take a free port from the kernel, then hand it to sshd. sshd says when it listens.
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let config = dir.join("sshd_config");
        std::fs::write(
            &config,
            format!(
                "ListenAddress 127.0.0.1:{port}\nHostKey {}\nAuthorizedKeysFile {}\nPidFile none\n\
                 StrictModes no\nUsePAM no\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n\
                 PubkeyAuthentication yes\nPermitRootLogin yes\nAllowTcpForwarding no\nPrintMotd no\n\
                 PermitUserEnvironment no\nAcceptEnv none\nLogLevel ERROR\n",
                dir.join("host_key").display(),
                authorized_keys.display(),
            ),
        )
        .unwrap();
        let child = std::process::Command::new(binary)
            .args(["-D", "-e", "-f"])
            .arg(&config)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(dir.join("log")).unwrap())
            .spawn()
            .unwrap();
        let mut sshd = Sshd { child, port };
        let log = || std::fs::read_to_string(dir.join("log")).unwrap_or_default();
        // Nothing to wait on but the port opening: poll it against a deadline.
        let deadline = std::time::Instant::now() + WAIT;
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if sshd.child.try_wait().unwrap().is_some() {
                return Err(log());
            }
            assert!(std::time::Instant::now() < deadline, "sshd did not start: {}", log());
            std::thread::park_timeout(std::time::Duration::from_millis(20));
        }
        Ok(sshd)
    }
}

#[test]
fn a_real_sshd_with_keys_from_pushgate_serves_clone_and_push() {
    let Some(binary) = sshd() else {
        println!("note: no sshd on this machine (PATH, /usr/sbin): the real-sshd test is skipped");
        return;
    };
    let site = Sandbox::new();
    site.configure(READ_AND_WRITE);
    let repo = site.git_repo("app.git");
    let work = site.git_work("work");
    let keys = site.root.join("keys");
    std::fs::create_dir(&keys).unwrap();
    keygen(&keys, "alice");
    keygen(&keys, "bob");
    let authorized_keys = site.root.join("authorized_keys");
    let lines = site.pushgate(&["keys", "--config"]).arg(&site.config).arg(&keys).ok();
    std::fs::write(&authorized_keys, format!("{lines}\n")).unwrap();
    let sshd = match Sshd::start(&site, &binary, &authorized_keys) {
        Ok(sshd) => sshd,
        // As root, sshd needs its privilege separation user and directory, which only an
        // installed openssh-server sets up.
        Err(log) if log.to_lowercase().contains("privilege separation") => {
            println!("note: sshd cannot run here ({}): the real-sshd test is skipped", log.trim());
            return;
        }
        Err(log) => panic!("sshd exited: {log}"),
    };

    let me = site.command("id").arg("-un").ok();
    let known_hosts = site.root.join("known_hosts");
    let ssh_as = |key: &str| {
        format!(
            "ssh -F /dev/null -p {} -i {} -o IdentitiesOnly=yes -o BatchMode=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile={}",
            sshd.port,
            shell_quoted(keys.join(key)),
            shell_quoted(&known_hosts),
        )
    };
    let url = format!("{me}@127.0.0.1:app.git");
    let git = |dir: &Path, key: &str, args: &[&str]| site.git(dir, args).env("GIT_SSH_COMMAND", ssh_as(key));

    git(&work, "alice", &["push", "--quiet", &url, "main"]).ok();
    assert_eq!(rev(&site, &repo, "main"), rev(&site, &work, "main"));
    git(&site.root, "bob", &["clone", "--quiet", &url, "bobs"]).ok();
    let bobs = site.root.join("bobs");
    site.git(&bobs, &["commit", "--quiet", "--allow-empty", "-m", "Bob's"]).ok();
    let run = git(&bobs, "bob", &["push", "origin", "main"]).run();
    assert_eq!(run.code, Some(128), "{run}");
    assert_eq!(run.all_pushgate_lines(), ["pushgate: bob may not push to app"], "{run}");
    let run = site.command("sh").args(["-c", &format!("{} {me}@127.0.0.1", ssh_as("alice"))]).run();
    assert_ne!(run.code, Some(0), "{run}");
    assert!(run.stderr.contains("pushgate: hi alice: interactive logins are not allowed"), "{run}");
    drop(sshd);
}
