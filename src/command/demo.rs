//! `pushgate demo`: a self-contained tour. A temporary server repository with pushgate's
//! hooks and a small configuration, real `git push`es by a maintainer and a developer
//! showing what each pusher sees, and a webhook receiver on 127.0.0.1 showing what a `post`
//! extension is told, delivered by the deliverer post-receive starts.

use crate::outcome::{Error, Outcome};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::mpsc;
use std::time::{Duration, Instant};

const CONFIG: &str = r#"# The demo's configuration (see `pushgate check` and `pushgate explain`).
[groups]
maintainers = ["alice"]
devs = ["bob", "@maintainers"]

[[rule]]                      # rule 1: maintainers may do anything on main
refs = ["refs/heads/main"]
users = ["@maintainers"]
allow = ["all"]

[[rule]]                      # rule 2: everyone else may only fast-forward main
refs = ["refs/heads/main"]
users = ["*"]
allow = ["update"]
deny = ["force", "delete"]
message = "main is protected: open a merge request"

[[rule]]                      # rule 3: maintainers own deploy/
refs = ["refs/heads/**"]
paths = ["deploy/**"]
users = ["@maintainers"]
allow = ["create", "update", "force"]

[[rule]]                      # rule 4: nobody else touches deploy/
refs = ["refs/heads/**"]
paths = ["deploy/**"]
users = ["*"]
deny = ["create", "update", "force"]
message = "deploy/ is owned by the maintainers"

[[rule]]                      # rule 5: developers may work on any other branch
refs = ["refs/heads/**"]
users = ["@devs"]
allow = ["all"]

[[extension]]                 # told of every push that lands, durably and in order
name = "ci"
type = "http"
phase = "post"
url = "@URL@"
"#;

/// How long the tour waits for the deliverer to deliver the events.
const DELIVERY_WAIT: Duration = Duration::from_secs(20);

struct Tour {
    root: PathBuf,
    work: PathBuf,
    config: PathBuf,
}

/// Run the tour in a temporary directory, removed afterwards; `exe` is pushgate itself.
pub fn run(exe: &Path, out: &mut dyn Write) -> Result<Outcome, Error> {
    let tmp = tempfile::Builder::new()
        .prefix("pushgate-demo-")
        .tempdir()
        .map_err(|e| Error::new(format!("cannot make a temporary directory: {e}")))?;
    let root = tmp.path().to_path_buf();
    let tour = Tour { work: root.join("work"), config: root.join("config.toml"), root };
    let server = tour.root.join("server.git");
    let (url, received) = receive_webhooks()?;
    let spool = tour.root.join("spool");
    let config = format!(
        "{}\n[spool]\ndir = {}\n",
        CONFIG.replace("@URL@", &url),
        serde_json::to_string(&spool.to_string_lossy()).unwrap_or_default()
    );

    writeln!(out, "pushgate demo in {}\n", tour.root.display())?;
    std::fs::write(&tour.config, &config).map_err(|e| Error::new(format!("cannot write the demo config: {e}")))?;
    tour.git(&tour.root, &["init", "--quiet", "--bare", "--initial-branch=main", "server.git"])?;
    let installed = Command::new(exe)
        .arg("install")
        .arg(&server)
        .output()
        .map_err(|e| Error::new(format!("cannot run pushgate install: {e}")))?;
    if !installed.status.success() {
        return Err(Error::new(format!("pushgate install failed: {}", String::from_utf8_lossy(&installed.stderr))));
    }
    writeln!(out, "$ pushgate install server.git")?;
    write!(out, "{}", indent(&String::from_utf8_lossy(&installed.stdout)))?;
    writeln!(out, "\nThe configuration ({}):\n{}", tour.config.display(), indent(&config))?;

    tour.git(&tour.root, &["clone", "--quiet", server.to_str().unwrap_or_default(), "work"])?;
    tour.commit("README.md", "# demo\n", "Start the project")?;
    tour.push(out, "alice (maintainer) pushes main", "alice", &["push", "origin", "HEAD:refs/heads/main"])?;

    tour.git(&tour.work, &["commit", "--quiet", "--amend", "-m", "Rewrite history"])?;
    writeln!(out, "(bob rewrote the commit alice pushed: main cannot fast-forward to it)")?;
    tour.push(out, "bob (developer) force-pushes main", "bob", &["push", "--force", "origin", "HEAD:refs/heads/main"])?;

    tour.git(&tour.work, &["reset", "--quiet", "--hard", "origin/main"])?;
    tour.git(&tour.work, &["checkout", "--quiet", "-b", "topic"])?;
    tour.commit("deploy/prod.yml", "replicas: 3\n", "Scale production")?;
    writeln!(out, "(a new branch: no ref rule stops bob, but its commit changes deploy/)")?;
    tour.push(out, "bob pushes a branch that changes deploy/", "bob", &["push", "origin", "topic"])?;

    tour.git(&tour.work, &["reset", "--quiet", "--hard", "origin/main"])?;
    tour.commit("src/app.txt", "hello\n", "Add the app")?;
    writeln!(out, "(the same branch, its commit now changing src/ instead of deploy/)")?;
    tour.push(out, "bob pushes a branch that changes src/", "bob", &["push", "origin", "topic"])?;

    writeln!(out, "(the same commit as bob's, now to main: alice is a maintainer)")?;
    tour.push(out, "alice merges bob's branch into main", "alice", &["push", "origin", "HEAD:refs/heads/main"])?;

    show_deliveries(out, exe, &tour, &received, 3)?;

    writeln!(out, "Why was bob's force push refused? `pushgate explain` says:")?;
    writeln!(out, "$ pushgate explain --user bob --ref refs/heads/main --op force")?;
    let explained = Command::new(exe)
        .arg("--config")
        .arg(&tour.config)
        .args(["explain", "--user", "bob", "--ref", "refs/heads/main", "--op", "force"])
        .output()
        .map_err(|e| Error::new(format!("cannot run pushgate explain: {e}")))?;
    write!(out, "{}", indent(&String::from_utf8_lossy(&explained.stdout)))?;
    Ok(Outcome::Success)
}

/// A webhook receiver on 127.0.0.1 answering 200 to every request: its URL, and the bodies
/// it got.
fn receive_webhooks() -> Result<(String, mpsc::Receiver<Vec<u8>>), Error> {
    let listener =
        TcpListener::bind("127.0.0.1:0").map_err(|e| Error::new(format!("cannot listen on 127.0.0.1: {e}")))?;
    let url = format!("http://{}/hook", listener.local_addr().map_err(|e| Error::new(e.to_string()))?);
    let (sender, received) = mpsc::channel();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut reader = BufReader::new(&stream);
            let mut length = 0;
            let mut line = String::new();
            while reader.read_line(&mut line).is_ok_and(|n| n > 0) && line != "\r\n" {
                let lower = line.to_ascii_lowercase();
                if let Some(value) = lower.strip_prefix("content-length:") {
                    length = value.trim().parse().unwrap_or(0);
                }
                line.clear();
            }
            let mut body = vec![0; length];
            if reader.read_exact(&mut body).is_ok() {
                let _ = (&stream).write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
                let _ = sender.send(body);
            }
        }
    });
    Ok((url, received))
}

/// What the receiver was told of the `expected` pushes that landed, then the queue and the
/// delivery log as an admin sees them.
fn show_deliveries(
    out: &mut dyn Write,
    exe: &Path,
    tour: &Tour,
    received: &mpsc::Receiver<Vec<u8>>,
    expected: usize,
) -> Result<(), Error> {
    writeln!(out, "== what the `ci` endpoint received (post-receive started a deliverer; nobody waited for it)")?;
    let deadline = Instant::now() + DELIVERY_WAIT;
    let mut events = Vec::new();
    while events.len() < expected {
        let left = deadline.saturating_duration_since(Instant::now());
        let Ok(body) = received.recv_timeout(left) else { break };
        events.push(serde_json::from_slice::<serde_json::Value>(&body).unwrap_or_default());
    }
    events.sort_by_key(|e| e["sequence"].as_u64());
    for event in &events {
        for change in event["changes"].as_array().into_iter().flatten() {
            writeln!(
                out,
                "    event {} (sequence {}): {} {} {} with {} new commit(s)",
                &event["id"].as_str().unwrap_or_default().get(..8).unwrap_or_default(),
                event["sequence"],
                event["user"]["name"].as_str().unwrap_or_default(),
                change["action"].as_str().unwrap_or_default(),
                change["ref"].as_str().unwrap_or_default(),
                change["commits"].as_array().map_or(0, Vec::len),
            )?;
        }
    }
    if events.len() < expected {
        writeln!(out, "    (only {} of {expected} events arrived within {DELIVERY_WAIT:?})", events.len())?;
    }
    // The deliverer removes a job, then logs its attempt, just after the receiver got it.
    while Instant::now() < deadline && tour.pushgate(exe, &["log"])?.matches(" delivered ").count() < events.len() {
        std::thread::sleep(Duration::from_millis(50));
    }
    for args in [&["queue", "status"][..], &["log"][..]] {
        writeln!(out, "\n$ pushgate {}", args.join(" "))?;
        write!(out, "{}", indent(&tour.pushgate(exe, args)?))?;
    }
    writeln!(out, "\nThe rejected pushes have no event: only what landed is delivered.\n")?;
    Ok(())
}

impl Tour {
    /// `pushgate --config <the tour's> <args>`: what it printed.
    fn pushgate(&self, exe: &Path, args: &[&str]) -> Result<String, Error> {
        let output = Command::new(exe)
            .arg("--config")
            .arg(&self.config)
            .args(args)
            .output()
            .map_err(|e| Error::new(format!("cannot run pushgate {}: {e}", args.join(" "))))?;
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    }

    fn command(&self, dir: &Path) -> Command {
        let mut command = Command::new("git");
        command
            .current_dir(dir)
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .env("PUSHGATE_CONFIG", &self.config)
            .env_remove("GIT_DIR")
            .args(["-c", "user.name=Demo", "-c", "user.email=demo@example.org", "-c", "advice.detachedHead=false"]);
        command
    }

    fn git(&self, dir: &Path, args: &[&str]) -> Result<(), Error> {
        let output = self.command(dir).args(args).output().map_err(|e| Error::new(format!("cannot run git: {e}")))?;
        if output.status.success() {
            Ok(())
        } else {
            Err(Error::new(format!("git {} failed: {}", args.join(" "), String::from_utf8_lossy(&output.stderr))))
        }
    }

    fn commit(&self, file: &str, text: &str, message: &str) -> Result<(), Error> {
        let path = self.work.join(file);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| Error::new(format!("{}: {e}", dir.display())))?;
        }
        std::fs::write(&path, text).map_err(|e| Error::new(format!("{}: {e}", path.display())))?;
        self.git(&self.work, &["add", file])?;
        self.git(&self.work, &["commit", "--quiet", "-m", message])
    }

    fn push(&self, out: &mut dyn Write, title: &str, user: &str, args: &[&str]) -> Result<(), Error> {
        let output = self
            .command(&self.work)
            .env("PUSHGATE_USER", user)
            .args(args)
            .output()
            .map_err(|e| Error::new(format!("cannot run git: {e}")))?;
        let verdict = if output.status.success() { "accepted" } else { "rejected" };
        writeln!(out, "== {title}: {verdict}")?;
        writeln!(out, "$ PUSHGATE_USER={user} git {}", args.join(" "))?;
        write!(out, "{}", indent(&String::from_utf8_lossy(&output.stderr)))?;
        writeln!(out)?;
        Ok(())
    }
}

fn indent(text: &str) -> String {
    text.lines().map(|l| format!("    {l}\n")).collect()
}
