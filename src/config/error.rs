//! Configuration errors, each at the file, line and column of the value at fault.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

/// One problem in a configuration file. `line` 0 means the whole file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub file: PathBuf,
    pub line: usize,
    pub col: usize,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}: {}", self.file.display(), self.message)
        } else {
            write!(f, "{}:{}:{}: {}", self.file.display(), self.line, self.col, self.message)
        }
    }
}

/// All the problems found, in file order; never empty.
#[derive(Debug, Clone)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl ConfigErrors {
    /// A problem with a file as a whole (missing, unreadable).
    pub fn whole_file(path: &Path, message: String) -> ConfigErrors {
        ConfigErrors(vec![ConfigError { file: path.to_path_buf(), line: 0, col: 0, message }])
    }

    /// One line for a pusher, however many errors there are.
    pub fn one_line(&self) -> String {
        let first = &self.0[0];
        match self.0.len() {
            1 => format!("configuration error: {first}"),
            n => format!("configuration error: {first} (and {} more: run `pushgate check`)", n - 1),
        }
    }
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// A file's text, to turn byte offsets (serde spans) into lines and columns.
#[derive(Clone, Copy)]
pub struct Source<'a> {
    pub path: &'a Path,
    pub text: &'a str,
    /// A repository's own file (not the global one, whatever its name).
    pub repository: bool,
}

impl Source<'_> {
    /// The 1-based line and column of a byte offset.
    pub fn position(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.text.len());
        let before = self.text.get(..offset).unwrap_or(self.text);
        let line = before.matches('\n').count() + 1;
        let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        (line, col)
    }

    pub fn error(&self, span: Range<usize>, message: String) -> ConfigError {
        let (line, col) = self.position(span.start);
        ConfigError { file: self.path.to_path_buf(), line, col, message }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_count_lines_and_characters() {
        let source = Source { path: Path::new("c.toml"), text: "a = 1\nbé = 2\n", repository: false };
        assert_eq!(source.position(0), (1, 1));
        assert_eq!(source.position(10), (2, 4));
        assert_eq!(source.position(999), (3, 1));
        assert_eq!(source.error(6..7, "x".into()).to_string(), "c.toml:2:1: x");
    }
}
