//! A real sshd on 127.0.0.1, run as the current user with its own host key, config and
//! `authorized_keys` (lines from `pushgate keys`), and the keys of the users who log in.

use super::{Sandbox, WAIT, shell_quoted};
use std::path::{Path, PathBuf};

/// `ssh-keygen` a new ed25519 key pair `<dir>/<name>`: the public key's line.
pub fn keygen(dir: &Path, name: &str) -> String {
    let key = dir.join(name);
    let run = std::process::Command::new("ssh-keygen")
        .args(["-t", "ed25519", "-N", "", "-q", "-C", name, "-f"])
        .arg(&key)
        .output()
        .unwrap();
    assert!(run.status.success(), "ssh-keygen failed: {}", String::from_utf8_lossy(&run.stderr));
    std::fs::read_to_string(key.with_extension("pub")).unwrap().trim().to_string()
}

/// sshd's own binary, if this machine has one.
fn binary() -> Option<PathBuf> {
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|path| std::env::split_paths(&path).collect::<Vec<_>>())
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/usr/local/sbin")])
        .map(|dir| dir.join("sshd"))
        .find(|path| path.is_file())
}

/// A real sshd, killed when dropped.
pub struct Sshd {
    child: std::process::Child,
    pub port: u16,
    /// Where the users' keys are: `<keys>/<user>`.
    pub keys: PathBuf,
    known_hosts: PathBuf,
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Sshd {
    /// A key for each of `users` in `<root>/keys`, `authorized_keys` from `pushgate keys
    /// --config`, and sshd started and listening; `None` (said on stdout) when this machine
    /// has no sshd, or one that cannot run here.
    pub fn start(site: &Sandbox, users: &[&str]) -> Option<Sshd> {
        let Some(binary) = binary() else {
            println!("note: no sshd on this machine (PATH, /usr/sbin): the real-sshd test is skipped");
            return None;
        };
        let keys = site.root.join("keys");
        std::fs::create_dir_all(&keys).unwrap();
        for user in users {
            keygen(&keys, user);
        }
        let authorized_keys = site.root.join("authorized_keys");
        let lines = site.pushgate(&["keys", "--config"]).arg(&site.config).arg(&keys).ok();
        std::fs::write(&authorized_keys, format!("{lines}\n")).unwrap();
        match Sshd::run(site, &binary, &authorized_keys, keys) {
            Ok(sshd) => Some(sshd),
            // As root, sshd needs its privilege separation user and directory, which only an
            // installed openssh-server sets up.
            Err(log) if log.to_lowercase().contains("privilege separation") => {
                println!("note: sshd cannot run here ({}): the real-sshd test is skipped", log.trim());
                None
            }
            Err(log) => panic!("sshd exited: {log}"),
        }
    }

    /// Started and listening, or what sshd said when it gave up.
    fn run(site: &Sandbox, binary: &Path, authorized_keys: &Path, keys: PathBuf) -> Result<Sshd, String> {
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
        let known_hosts = site.root.join("known_hosts");
        let mut sshd = Sshd { child, port, keys, known_hosts };
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

    /// The `ssh` command line that logs in to this sshd with `user`'s key (for
    /// `GIT_SSH_COMMAND`, or `sh -c` with a host and a command after it).
    pub fn ssh_as(&self, user: &str) -> String {
        format!(
            "ssh -F /dev/null -p {} -i {} -o IdentitiesOnly=yes -o BatchMode=yes -o StrictHostKeyChecking=no \
             -o LogLevel=ERROR -o UserKnownHostsFile={}",
            self.port,
            shell_quoted(self.keys.join(user)),
            shell_quoted(&self.known_hosts),
        )
    }
}
