//! Where commands write. A command is given its output as a writer; `main` gives it
//! standard output wrapped so that a reader that went away (`pushgate keys | head -1`)
//! ends the command quietly, while any other write error (a full disk) is an error.

use std::io::{self, Write};

/// A writer that turns a broken pipe into silence: once the reader is gone, every later
/// write succeeds without doing anything.
pub struct Quiet<W: Write> {
    inner: W,
    closed: bool,
}

impl<W: Write> Quiet<W> {
    pub fn new(inner: W) -> Quiet<W> {
        Quiet { inner, closed: false }
    }
}

impl<W: Write> Write for Quiet<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.closed {
            return Ok(buf.len());
        }
        match self.inner.write(buf) {
            Err(e) if e.kind() == io::ErrorKind::BrokenPipe => {
                self.closed = true;
                Ok(buf.len())
            }
            other => other,
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        if self.closed {
            return Ok(());
        }
        match self.inner.flush() {
            Err(e) if e.kind() == io::ErrorKind::BrokenPipe => {
                self.closed = true;
                Ok(())
            }
            other => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Failing(io::ErrorKind);

    impl Write for Failing {
        fn write(&mut self, _: &[u8]) -> io::Result<usize> {
            Err(self.0.into())
        }
        fn flush(&mut self) -> io::Result<()> {
            Err(self.0.into())
        }
    }

    #[test]
    fn a_closed_pipe_is_quiet_and_a_full_disk_is_not() {
        let mut closed = Quiet::new(Failing(io::ErrorKind::BrokenPipe));
        assert!(writeln!(closed, "line").is_ok());
        assert!(writeln!(closed, "more").and_then(|()| closed.flush()).is_ok());
        let mut full = Quiet::new(Failing(io::ErrorKind::StorageFull));
        assert_eq!(writeln!(full, "line").unwrap_err().kind(), io::ErrorKind::StorageFull);
    }
}
