//! Waking a sleeping `deliver --watch` when something lands in `incoming/` (inotify), or
//! when its time is up.

use std::path::Path;
use std::time::Duration;

/// Wakes a sleeping `--watch` deliverer when something lands in `incoming/` (inotify), or
/// when its time is up.
pub struct Waker {
    fd: Option<i32>,
}

impl Waker {
    pub fn new(dir: &Path) -> Waker {
        use std::os::unix::ffi::OsStrExt;
        let Ok(path) = std::ffi::CString::new(dir.as_os_str().as_bytes()) else { return Waker { fd: None } };
        // SAFETY: plain syscalls on a descriptor we own and a NUL-terminated path.
        let fd = unsafe { libc::inotify_init1(libc::IN_CLOEXEC | libc::IN_NONBLOCK) };
        if fd < 0 {
            return Waker { fd: None };
        }
        let mask = libc::IN_MOVED_TO | libc::IN_CLOSE_WRITE | libc::IN_CREATE;
        // SAFETY: as above.
        if unsafe { libc::inotify_add_watch(fd, path.as_ptr(), mask) } < 0 {
            // SAFETY: fd is ours and open.
            unsafe { libc::close(fd) };
            return Waker { fd: None };
        }
        Waker { fd: Some(fd) }
    }

    pub fn wait(&self, timeout: Duration) {
        let Some(fd) = self.fd else {
            std::thread::sleep(timeout.min(Duration::from_secs(1)));
            return;
        };
        let mut poll = libc::pollfd { fd, events: libc::POLLIN, revents: 0 };
        let millis = timeout.as_millis().min(i32::MAX as u128) as i32;
        // SAFETY: one valid pollfd; the buffer below is ours and sized as passed.
        unsafe {
            libc::poll(&mut poll, 1, millis);
            let mut buf = [0u8; 4096];
            while libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) > 0 {}
        }
    }
}

impl Drop for Waker {
    fn drop(&mut self) {
        if let Some(fd) = self.fd {
            // SAFETY: fd is ours and open.
            unsafe { libc::close(fd) };
        }
    }
}
