//! Configuring `post` extensions and a spool for a [`TestServer`], and reading back what
//! the admin commands say about them.

use super::{TestServer, quoted};
use std::path::{Path, PathBuf};

/// Everyone may do anything: for tests about extensions, not rules.
pub const ALLOW_ALL: &str = r#"
[[rule]]
refs = ["refs/**"]
users = ["*"]
allow = ["all"]
"#;

/// The spool of a test: inside its sandbox.
pub fn spool_dir(server: &TestServer) -> PathBuf {
    server.sandbox.spool_dir()
}

/// A `[spool]` table for `server`'s own spool directory, retrying on `retry`.
pub fn spool_table(server: &TestServer, retry: &[&str]) -> String {
    let retry: Vec<String> = retry.iter().map(quoted).collect();
    format!("[spool]\ndir = {}\nretry = [{}]\n", quoted(spool_dir(server)), retry.join(", "))
}

/// A `post` HTTP extension table.
pub fn post_http(name: &str, url: &str, extra: &str) -> String {
    format!(
        "\n[[extension]]\nname = {}\ntype = \"http\"\nphase = \"post\"\nurl = {}\n{extra}\n",
        quoted(name),
        quoted(url)
    )
}

/// `pushgate <args> --json` parsed; the command must succeed.
#[track_caller]
pub fn json_of(server: &TestServer, args: &[&str]) -> serde_json::Value {
    let out = server.pushgate(args).arg("--json").ok();
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("`pushgate {}` printed no JSON ({e}):\n{out}", args.join(" ")))
}

/// `queue status --json`'s row for `connector`.
#[track_caller]
pub fn connector_status(server: &TestServer, connector: &str) -> serde_json::Value {
    let rows = json_of(server, &["queue", "status"]);
    rows.as_array()
        .unwrap()
        .iter()
        .find(|r| r["connector"] == connector)
        .cloned()
        .unwrap_or_else(|| panic!("no connector {connector} in {rows}"))
}

/// `pushgate log --json`: one object per line.
#[track_caller]
pub fn log(server: &TestServer) -> Vec<serde_json::Value> {
    let out = server.pushgate(&["log", "--json"]).ok();
    out.lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("log line is not JSON ({e}): {l}"))).collect()
}

/// Run `pushgate deliver --once` in the foreground; it must succeed.
#[track_caller]
pub fn deliver_once(server: &TestServer) {
    server.pushgate(&["deliver", "--once"]).ok();
}

/// The files under `dir`, recursively (empty when it does not exist).
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut dirs = vec![dir.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else { continue };
        for entry in entries.flatten() {
            if entry.file_type().unwrap().is_dir() {
                dirs.push(entry.path());
            } else {
                found.push(entry.path());
            }
        }
    }
    found.sort();
    found
}
