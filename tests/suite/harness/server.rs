//! A bare "server" repository in a sandbox with pushgate's hooks installed by the real
//! binary, and work clones that commit and push to it as a given user.

use super::{Invocation, Run, Sandbox};
use std::ffi::OsStr;
use std::path::{Path, PathBuf};

/// A bare server repository with a configuration, and a work clone that pushes to it.
pub struct TestServer {
    pub sandbox: Sandbox,
    /// The bare repository pushes go to (`<root>/server.git`).
    pub repo: PathBuf,
    work: Work,
}

impl Default for TestServer {
    fn default() -> Self {
        TestServer::new()
    }
}

impl TestServer {
    /// An empty SHA-1 server and work clone; no configuration file yet.
    pub fn new() -> TestServer {
        TestServer::with_object_format("sha1")
    }

    /// As [`TestServer::new`], both repositories in `format` (`sha1` or `sha256`).
    pub fn with_object_format(format: &str) -> TestServer {
        let sandbox = Sandbox::new();
        let root = sandbox.root.clone();
        let repo = root.join("server.git");
        let object_format = format!("--object-format={format}");
        let init = |args: &[&str]| {
            sandbox.git(&root, &["init", "--quiet", "--initial-branch=main", &object_format]).args(args).ok();
        };
        init(&["--bare", "server.git"]);
        init(&["work"]);
        let work = Work { sandbox: sandbox.clone(), dir: root.join("work") };
        work.git(&["remote", "add", "origin"]).arg(&repo).ok();
        TestServer { sandbox, repo, work }
    }

    /// Write the global configuration (`$PUSHGATE_CONFIG`).
    pub fn config(self, toml: &str) -> TestServer {
        std::fs::write(&self.sandbox.config, toml).unwrap();
        self
    }

    /// Write the server repository's own `pushgate.toml`.
    pub fn repo_config(self, toml: &str) -> TestServer {
        std::fs::write(self.repo.join("pushgate.toml"), toml).unwrap();
        self
    }

    /// `pushgate install <extra args> server.git`, which must succeed.
    pub fn install(self, args: &[&str]) -> TestServer {
        self.sandbox.pushgate(&["install"]).args(args).arg(&self.repo).ok();
        self
    }

    /// `git config <key> <value>` in the server repository.
    pub fn git_config(self, key: &str, value: &str) -> TestServer {
        self.git(&["config", key, value]).ok();
        self
    }

    pub fn root(&self) -> &Path {
        &self.sandbox.root
    }

    pub fn config_path(&self) -> &Path {
        &self.sandbox.config
    }

    pub fn hooks(&self) -> PathBuf {
        self.repo.join("hooks")
    }

    /// The default work clone.
    pub fn work(&self) -> &Work {
        &self.work
    }

    /// Another work clone named `name` pushing to this server.
    pub fn clone_as(&self, name: &str) -> Work {
        let dir = self.root().join(name);
        self.sandbox.git(self.root(), &["clone", "--quiet"]).args([&self.repo, &dir]).ok();
        Work { sandbox: self.sandbox.clone(), dir }
    }

    /// `git push <args>` from the default work clone as `user`: what the pusher saw.
    pub fn push_as(&self, user: &str, args: &[&str]) -> Run {
        self.work.push_as(user, args)
    }

    /// `git` in the server repository.
    pub fn git(&self, args: &[&str]) -> Invocation {
        self.sandbox.git(&self.repo, args)
    }

    /// `pushgate <args>`, with `$PUSHGATE_CONFIG` set to this server's configuration.
    pub fn pushgate(&self, args: &[&str]) -> Invocation {
        self.sandbox.pushgate(args)
    }

    /// A hook command (`pushgate pre-receive`, ...) run by hand the way git runs it: in the
    /// server repository, as `user`.
    pub fn hook(&self, user: &str, args: &[&str]) -> Invocation {
        self.pushgate(args).current_dir(&self.repo).env("PUSHGATE_USER", user)
    }

    /// The id a server ref holds (an annotated tag's own id, not peeled), if it exists.
    pub fn ref_target(&self, name: &str) -> Option<String> {
        self.refs().into_iter().find(|(n, _)| n == name).map(|(_, id)| id)
    }

    /// Every ref on the server with its id, sorted by name.
    pub fn refs(&self) -> Vec<(String, String)> {
        let out = self.git(&["for-each-ref", "--format=%(refname) %(objectname)"]).ok();
        out.lines()
            .map(|l| {
                let (name, id) = l.rsplit_once(' ').unwrap();
                (name.to_string(), id.to_string())
            })
            .collect()
    }

    pub fn has_object(&self, id: &str) -> bool {
        self.git(&["cat-file", "-e", id]).run().code == Some(0)
    }
}

/// A non-bare repository whose `origin` is the server.
pub struct Work {
    sandbox: Sandbox,
    pub dir: PathBuf,
}

impl Work {
    /// `git <args>` in the work tree.
    pub fn git(&self, args: &[&str]) -> Invocation {
        self.sandbox.git(&self.dir, args)
    }

    /// Write (or overwrite) files and commit them; returns the new commit's id.
    pub fn commit(&self, files: &[(&str, &str)]) -> String {
        let bytes: Vec<(&str, &[u8])> = files.iter().map(|(p, c)| (*p, c.as_bytes())).collect();
        self.commit_bytes(&bytes)
    }

    /// [`Work::commit`] with binary contents.
    pub fn commit_bytes(&self, files: &[(&str, &[u8])]) -> String {
        for (path, contents) in files {
            let path = self.dir.join(path);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, contents).unwrap();
        }
        let paths: Vec<&str> = files.iter().map(|(p, _)| *p).collect();
        self.git(&["add", "--"]).args(&paths).ok();
        self.git(&["commit", "--quiet", "-m"]).arg(format!("Change {}", paths.join(", "))).ok();
        self.head()
    }

    /// Remove files and commit; returns the new commit's id.
    pub fn remove(&self, paths: &[&str]) -> String {
        self.git(&["rm", "--quiet", "--"]).args(paths).ok();
        self.git(&["commit", "--quiet", "-m"]).arg(format!("Remove {}", paths.join(", "))).ok();
        self.head()
    }

    /// Commit a blob at an arbitrary path (raw bytes: spaces, newlines, non-UTF-8) through
    /// the index alone, with no file on disk; returns the new commit's id.
    pub fn commit_raw_paths(&self, paths: &[&[u8]]) -> String {
        use std::os::unix::ffi::OsStrExt;
        let blob = self.git(&["hash-object", "-w", "--stdin"]).stdin("raw\n").ok();
        for path in paths {
            let info = [b"100644,".as_slice(), blob.as_bytes(), b",", path].concat();
            self.git(&["update-index", "--add", "--cacheinfo"]).arg(OsStr::from_bytes(&info)).ok();
        }
        self.git(&["commit", "--quiet", "-m", "Add raw paths"]).ok();
        self.head()
    }

    /// Start branch `name` at `start` and check it out.
    pub fn branch(&self, name: &str, start: &str) {
        self.git(&["checkout", "--quiet", "-B", name, start]).ok();
    }

    pub fn checkout(&self, name: &str) {
        self.git(&["checkout", "--quiet", name]).ok();
    }

    pub fn head(&self) -> String {
        self.rev("HEAD")
    }

    pub fn rev(&self, name: &str) -> String {
        self.git(&["rev-parse", "--verify", name]).ok()
    }

    /// `git push <args>` as `user`: what the pusher saw.
    pub fn push_as(&self, user: &str, args: &[&str]) -> Run {
        self.push(args).env("PUSHGATE_USER", user).run()
    }

    /// `git push <args>` with no identity set; add one with [`Invocation::env`].
    pub fn push(&self, args: &[&str]) -> Invocation {
        self.git(&["push"]).args(args)
    }
}
