//! Crash points for the crash tests: with `PUSHGATE_CRASH_AT=<point>` in its environment the
//! process kills itself with SIGKILL when it reaches that point, which is exactly what a
//! `kill -9` landing there does. Unarmed (always, outside tests), each point is a compare.

use std::sync::OnceLock;

static ARMED: OnceLock<String> = OnceLock::new();

/// Arm the point named by `PUSHGATE_CRASH_AT`, if any (once, from `main`).
pub fn arm(point: Option<&str>) {
    if let Some(point) = point {
        let _ = ARMED.set(point.to_string());
    }
}

pub fn here(point: &str) {
    if ARMED.get().is_some_and(|armed| armed == point) {
        // SAFETY: raising a signal on ourselves; SIGKILL cannot be caught.
        unsafe {
            libc::raise(libc::SIGKILL);
        }
    }
}
