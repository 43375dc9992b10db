//! The harness every test builds on: a [`Sandbox`] (one temp dir and the clean environment
//! every command of a test runs in), a [`TestServer`] (a bare repository with pushgate's
//! hooks and a work clone that pushes to it), commands that return what a user saw
//! ([`Run`]), an HTTP [`Receiver`] playing an endpoint, the deliverers, the schemas and the
//! webhook signatures.
//!
//! Nothing here sleeps to wait for something: commands and requests are waited for, and
//! only where no event exists to wait on (a detached process ending, a background
//! deliverer draining its queues) is a condition polled, briefly, against a deadline.

mod command;
mod deliverers;
mod receiver;
mod sandbox;
mod schema;
mod server;
mod signature;
mod spool;

pub use command::{Invocation, Run};
pub use deliverers::poll;
pub use receiver::{Answer, Receiver, Request, refused_url, summary};
pub use sandbox::Sandbox;
pub use schema::{assert_valid, assert_valid_event, event_schema, github_schema};
pub use server::{TestServer, Work};
pub use signature::{github_signature, standard_signature};
pub use spool::{
    ALLOW_ALL, connector_status, deliver_once, files_under, json_of, log, post_http, spool_dir, spool_table,
};

use std::path::Path;
use std::time::Duration;

/// The binary under test.
pub const PUSHGATE: &str = env!("CARGO_BIN_EXE_pushgate");

/// The version pushgate names itself with (`User-Agent: pushgate/<version>`).
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// An all-zero SHA-1 id: the "old" of a create, the "new" of a delete.
pub const ZERO: &str = "0000000000000000000000000000000000000000";

/// The author of changesets and commits unless a test says otherwise.
pub const AUTHOR: &str = "Test Author <author@example.org>";

/// How long a test waits for something that should happen promptly before it fails.
pub const WAIT: Duration = Duration::from_secs(20);

/// A TOML string.
pub fn quoted(text: impl AsRef<Path>) -> String {
    serde_json::to_string(&text.as_ref().to_string_lossy()).unwrap()
}

/// A word for `sh`.
pub fn shell_quoted(text: impl AsRef<Path>) -> String {
    format!("'{}'", text.as_ref().to_string_lossy().replace('\'', "'\\''"))
}

/// `<old> <new> <ref>` hook input lines.
pub fn updates(lines: &[(&str, &str, &str)]) -> String {
    lines.iter().map(|(old, new, name)| format!("{old} {new} {name}\n")).collect()
}

/// JSON values one after the other, whatever whitespace separates them.
pub fn json_values(bytes: &[u8]) -> Vec<serde_json::Value> {
    serde_json::Deserializer::from_slice(bytes).into_iter().map(|v| v.unwrap()).collect()
}

/// The `(ref, action)` pairs of an event's changes.
pub fn changes(event: &serde_json::Value) -> Vec<(String, String)> {
    event["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["ref"].as_str().unwrap().to_string(), c["action"].as_str().unwrap().to_string()))
        .collect()
}

/// Seconds since the Unix epoch, now.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs()
}
