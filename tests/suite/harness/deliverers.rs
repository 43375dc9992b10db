//! Waiting for the deliverers post-receive detaches. They are not our children, so there is
//! no event to wait on for their end: /proc is polled, briefly, against a deadline.

use super::{Sandbox, WAIT};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, Instant};

impl Sandbox {
    /// Wait until every deliverer the hooks detached for this sandbox has ended and let go
    /// of the spool's locks.
    #[track_caller]
    pub fn wait_for_detached_deliverers(&self) {
        let deadline = Instant::now() + WAIT;
        loop {
            let alive = self.detached_deliverers();
            if alive.is_empty() {
                break;
            }
            assert!(Instant::now() < deadline, "detached deliverers still running after {WAIT:?}: {alive:?}");
            std::thread::park_timeout(Duration::from_millis(10));
        }
        if let Some(spool) = self.configured_spool() {
            wait_for_locks(spool_locks(&spool));
        }
    }

    /// The live `pushgate --config <this sandbox's config> deliver` processes (post-receive
    /// starts them so).
    fn detached_deliverers(&self) -> Vec<u32> {
        let config = self.config.as_os_str().as_encoded_bytes().to_vec();
        let mut found = Vec::new();
        for entry in std::fs::read_dir("/proc").unwrap().flatten() {
            let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else { continue };
            // A zombie's cmdline is empty: it counts as gone.
            let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else { continue };
            let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
            let ours = args.windows(2).any(|w| w[0] == b"--config" && w[1] == config.as_slice())
                && args.contains(&b"deliver".as_slice());
            if ours {
                found.push(pid);
            }
        }
        found
    }

    /// The `[spool] dir` of the sandbox's configuration, if it names one.
    fn configured_spool(&self) -> Option<PathBuf> {
        let table: toml::Table = std::fs::read_to_string(&self.config).ok()?.parse().ok()?;
        table.get("spool")?.get("dir")?.as_str().map(PathBuf::from)
    }
}

/// The spool's lock files: its own, the fan-out's and each connector's.
fn spool_locks(spool: &Path) -> Vec<PathBuf> {
    let mut locks = vec![spool.join("lock"), spool.join("fan-out.lock")];
    if let Ok(connectors) = std::fs::read_dir(spool.join("connectors")) {
        locks.extend(connectors.flatten().map(|c| c.path().join("lock")));
    }
    locks.retain(|lock| lock.is_file());
    locks
}

/// Take and release each lock in turn. A deliverer killed with SIGKILL leaves /proc's view
/// before it lets go of its locks: once its main thread has exited, the process shows as a
/// zombie with an empty cmdline while another of its threads is still exiting with a
/// connector lock held, and the kernel releases the lock only after that thread is gone.
/// `flock` returns exactly then.
#[track_caller]
fn wait_for_locks(locks: Vec<PathBuf>) {
    let (released, all_released) = mpsc::channel();
    let waited = locks.clone();
    std::thread::spawn(move || {
        for lock in &waited {
            if let Ok(file) = std::fs::File::open(lock) {
                let _ = file.lock();
            }
        }
        let _ = released.send(());
    });
    if all_released.recv_timeout(WAIT).is_err() {
        panic!("spool locks still held {WAIT:?} after the last detached deliverer ended: {locks:?}");
    }
}

/// Poll `what` every few milliseconds until it returns `Some`, failing after [`WAIT`]. For
/// conditions with no event to wait on only.
#[track_caller]
pub fn poll<T>(description: &str, mut what: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(value) = what() {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {description}");
        std::thread::park_timeout(Duration::from_millis(20));
    }
}
