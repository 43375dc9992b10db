//! `pushgate demo`: a self-contained tour. A temporary server repository with pushgate's
//! hooks and a small configuration, and real `git push`es by a maintainer and a developer,
//! showing what each pusher sees.

use crate::outcome::{Error, Outcome};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

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
"#;

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

    writeln!(out, "pushgate demo in {}\n", tour.root.display())?;
    std::fs::write(&tour.config, CONFIG).map_err(|e| Error::new(format!("cannot write the demo config: {e}")))?;
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
    writeln!(out, "\nThe configuration ({}):\n{}", tour.config.display(), indent(CONFIG))?;

    tour.git(&tour.root, &["clone", "--quiet", server.to_str().unwrap_or_default(), "work"])?;
    tour.commit("README.md", "# demo\n", "Start the project")?;
    tour.push(out, "alice (maintainer) pushes main", "alice", &["push", "origin", "HEAD:refs/heads/main"])?;

    tour.git(&tour.work, &["commit", "--quiet", "--amend", "-m", "Rewrite history"])?;
    tour.push(out, "bob (developer) force-pushes main", "bob", &["push", "--force", "origin", "HEAD:refs/heads/main"])?;

    tour.git(&tour.work, &["reset", "--quiet", "--hard", "origin/main"])?;
    tour.git(&tour.work, &["checkout", "--quiet", "-b", "topic"])?;
    tour.commit("deploy/prod.yml", "replicas: 3\n", "Scale production")?;
    tour.push(out, "bob pushes a branch that changes deploy/", "bob", &["push", "origin", "topic"])?;

    tour.git(&tour.work, &["reset", "--quiet", "--hard", "origin/main"])?;
    tour.commit("src/app.txt", "hello\n", "Add the app")?;
    tour.push(out, "bob pushes a branch that changes src/", "bob", &["push", "origin", "topic"])?;

    tour.push(out, "alice merges bob's branch into main", "alice", &["push", "origin", "HEAD:refs/heads/main"])?;

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

impl Tour {
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
