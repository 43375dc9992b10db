//! How a command ends: an [`Outcome`] when it ended normally, an [`Error`] when it could not
//! do its job. `main` turns them into exit codes (0, 1, 2) in one place.

/// How a command ended, when it ended normally.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Success,
    /// The push (or ref, or request) is refused: exit 1.
    Rejected,
}

/// A usage, configuration or I/O error: exit 2. Hooks never return one: they fail closed.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Error(String);

impl Error {
    pub fn new(message: impl Into<String>) -> Error {
        Error(message.into())
    }
}

impl From<crate::config::ConfigErrors> for Error {
    fn from(e: crate::config::ConfigErrors) -> Error {
        Error(e.to_string())
    }
}

/// Writing a command's output failed (a full disk, an I/O error; a closed pipe is not an
/// error, see [`crate::output`]).
impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Error {
        Error(format!("cannot write the output: {e}"))
    }
}
