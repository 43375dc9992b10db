//! Waking a sleeping `deliver --watch` when something lands in `incoming/` (inotify), when
//! another thread rings (the fleet's LISTEN connection), or when its time is up.

use std::path::Path;
use std::time::Duration;

/// Wakes a sleeping `--watch` deliverer when something lands in `incoming/` (inotify), or
/// when its time is up.
pub struct Waker {
    fd: Option<i32>,
    /// An eventfd other threads write to.
    bell: Option<i32>,
}

/// Rings a [`Waker`] from another thread.
#[derive(Debug, Clone, Copy)]
pub struct Ringer {
    bell: Option<i32>,
}

impl Ringer {
    pub fn ring(&self) {
        if let Some(bell) = self.bell {
            let one: u64 = 1;
            // SAFETY: writes 8 bytes from a live u64 to an eventfd the waker keeps open for
            // as long as the watch (and so every ringer's thread) runs.
            unsafe { libc::write(bell, (&one as *const u64).cast(), 8) };
        }
    }
}

impl Waker {
    pub fn new(dir: &Path) -> Waker {
        // SAFETY: a plain syscall; the descriptor is ours.
        let bell = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
        let bell = (bell >= 0).then_some(bell);
        Waker { fd: Self::inotify(dir), bell }
    }

    pub fn ringer(&self) -> Ringer {
        Ringer { bell: self.bell }
    }

    fn inotify(dir: &Path) -> Option<i32> {
        use std::os::unix::ffi::OsStrExt;
        let path = std::ffi::CString::new(dir.as_os_str().as_bytes()).ok()?;
        // SAFETY: plain syscalls on a descriptor we own and a NUL-terminated path.
        let fd = unsafe { libc::inotify_init1(libc::IN_CLOEXEC | libc::IN_NONBLOCK) };
        if fd < 0 {
            return None;
        }
        let mask = libc::IN_MOVED_TO | libc::IN_CLOSE_WRITE | libc::IN_CREATE;
        // SAFETY: as above.
        if unsafe { libc::inotify_add_watch(fd, path.as_ptr(), mask) } < 0 {
            // SAFETY: fd is ours and open.
            unsafe { libc::close(fd) };
            return None;
        }
        Some(fd)
    }

    pub fn wait(&self, timeout: Duration) {
        self.wait_woken(timeout);
    }

    /// Wait as [`Waker::wait`]; whether something woke it before its time.
    pub fn wait_woken(&self, timeout: Duration) -> bool {
        let fds: Vec<i32> = self.fd.into_iter().chain(self.bell).collect();
        if self.fd.is_none() {
            // No inotify: look at least every second.
            return self.poll(&fds, timeout.min(Duration::from_secs(1)));
        }
        self.poll(&fds, timeout)
    }

    fn poll(&self, fds: &[i32], timeout: Duration) -> bool {
        let mut polls: Vec<libc::pollfd> =
            fds.iter().map(|&fd| libc::pollfd { fd, events: libc::POLLIN, revents: 0 }).collect();
        let millis = timeout.as_millis().min(i32::MAX as u128) as i32;
        // SAFETY: valid pollfds of descriptors we own; the buffer below is ours and sized
        // as passed.
        unsafe {
            if polls.is_empty() {
                std::thread::sleep(timeout);
                return false;
            }
            let ready = libc::poll(polls.as_mut_ptr(), polls.len() as libc::nfds_t, millis) > 0;
            let mut buf = [0u8; 4096];
            for fd in fds {
                while libc::read(*fd, buf.as_mut_ptr().cast(), buf.len()) > 0 {}
            }
            ready
        }
    }
}

impl Drop for Waker {
    fn drop(&mut self) {
        for fd in self.fd.into_iter().chain(self.bell) {
            // SAFETY: fd is ours and open.
            unsafe { libc::close(fd) };
        }
    }
}
