//! Crash points for the crash tests: with `PUSHGATE_CRASH_AT=<point>` in its environment the
//! process kills itself with SIGKILL when it reaches that point, which is exactly what a
//! `kill -9` landing there does. Unset (always, outside tests), each point is a string
//! comparison.

use std::sync::OnceLock;

pub fn here(point: &str) {
    static AT: OnceLock<Option<String>> = OnceLock::new();
    if AT.get_or_init(|| std::env::var("PUSHGATE_CRASH_AT").ok()).as_deref() == Some(point) {
        // SAFETY: raising a signal on ourselves; SIGKILL cannot be caught.
        unsafe {
            libc::raise(libc::SIGKILL);
        }
    }
}
