//! `SSH_ORIGINAL_COMMAND` as `pushgate shell` reads it, arbitrary UTF-8.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pushgate::command::shell::{Request, parse_request};

/// `word` single-quoted for a POSIX shell.
fn quoted(word: &str) -> String {
    format!("'{}'", word.replace('\'', r"'\''"))
}

fuzz_target!(|data: &[u8]| {
    let Ok(command) = std::str::from_utf8(data) else { return };
    let Ok(request) = parse_request(command) else { return };
    // What was understood, quoted as a client would send it, is understood the same way.
    let again = match &request {
        Request::Git { service, path } => format!("git-{service} {}", quoted(path)),
        Request::Hg { path } => format!("hg -R {} serve --stdio", quoted(path)),
    };
    assert_eq!(parse_request(&again).as_ref(), Ok(&request), "{again:?}");
    let _ = request.writes();
});
