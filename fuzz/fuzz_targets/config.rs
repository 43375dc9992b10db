//! The global configuration and a repository's `pushgate.toml`, arbitrary UTF-8. The input
//! is `<global text>` or `<global text> NUL <repository text>`. Errors are fine, panics not;
//! the errors are rendered as `pushgate check` and the hooks show them.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pushgate::config::Config;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let (global, repo) = match text.split_once('\0') {
        Some((global, repo)) => (global, Some((Path::new("/srv/git/app.git/pushgate.toml"), repo))),
        None => (text, None),
    };
    match Config::parse(Path::new("/etc/pushgate/config.toml"), global, repo) {
        Ok(config) => {
            let _ = format!("{config:?}");
        }
        Err(errors) => {
            let _ = errors.to_string();
            let _ = errors.one_line();
        }
    }
});
