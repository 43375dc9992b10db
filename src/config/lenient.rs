//! Reading a configuration without validating it: post-receive must spool an event even
//! when the configuration is broken, and must not pay for a full validation when no
//! extension could want the event.

use super::DEFAULT_SPOOL_DIR;
use std::path::{Path, PathBuf};

/// The spool directory a configuration names, read leniently. Falls back to the default.
pub fn spool_dir(config_path: &Path) -> PathBuf {
    let dir = std::fs::read_to_string(config_path)
        .ok()
        .and_then(|text| text.parse::<toml::Table>().ok())
        .and_then(|table| table.get("spool")?.get("dir")?.as_str().map(PathBuf::from));
    dir.unwrap_or_else(|| PathBuf::from(DEFAULT_SPOOL_DIR))
}

/// Whether the file at `path` may define an `[[extension]]`; an unreadable file may.
pub fn may_define_extensions(path: &Path) -> bool {
    std::fs::read(path).map_or(true, |text| has_extension_table(&text))
}

/// Whether TOML text may define an `[[extension]]` (a line starting a table array with
/// that name, spaces allowed): when it cannot, nothing is ever spooled.
fn has_extension_table(text: &[u8]) -> bool {
    text.split(|&b| b == b'\n').any(|line| {
        let compact: Vec<u8> = line.iter().copied().filter(|b| !b.is_ascii_whitespace()).collect();
        compact.starts_with(b"[[extension]]") || compact.starts_with(b"[[\"extension\"]]")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extension_tables_are_spotted_however_written() {
        assert!(has_extension_table(b"[server]\n[[extension]]\nname = \"x\"\n"));
        assert!(has_extension_table(b"  [[ extension ]]  # note\n"));
        assert!(has_extension_table(b"[[\"extension\"]]\n"));
        assert!(!has_extension_table(b"[[rule]]\nmessage = \"no [[extension]] here\"\n"));
        assert!(may_define_extensions(Path::new("/nonexistent/config.toml")));
    }

    #[test]
    fn a_broken_file_still_names_its_spool() {
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), "[spool]\ndir = \"/x/spool\"\n").unwrap();
        assert_eq!(spool_dir(file.path()), Path::new("/x/spool"));
        assert_eq!(spool_dir(Path::new("/nonexistent")), Path::new(DEFAULT_SPOOL_DIR));
    }
}
