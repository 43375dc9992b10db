//! `SSH_ORIGINAL_COMMAND` as `pushgate shell` reads it, arbitrary UTF-8.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pushgate::command::lifecycle::Command;
use pushgate::command::shell::{Request, Service, parse_request};
use pushgate::push::Vcs;

/// `word` single-quoted for a POSIX shell.
fn quoted(word: &str) -> String {
    format!("'{}'", word.replace('\'', r"'\''"))
}

fuzz_target!(|data: &[u8]| {
    let Ok(command) = std::str::from_utf8(data) else { return };
    let Ok(request) = parse_request(command) else { return };
    // What was understood, quoted as a client would send it, is understood the same way.
    let again = match &request {
        Request::Serve(Service::Git { service, path }) => format!("git-{service} {}", quoted(path)),
        Request::Serve(Service::Hg { path }) => format!("hg -R {} serve --stdio", quoted(path)),
        Request::Lifecycle(Command::Create { name, vcs: Vcs::Git }) => format!("create {}", quoted(name)),
        Request::Lifecycle(Command::Create { name, vcs: Vcs::Hg }) => format!("create --hg {}", quoted(name)),
        Request::Lifecycle(Command::Delete { name }) => format!("delete {}", quoted(name)),
        Request::Lifecycle(Command::Info { json: false }) => "info".to_string(),
        Request::Lifecycle(Command::Info { json: true }) => "info --json".to_string(),
    };
    assert_eq!(parse_request(&again).as_ref(), Ok(&request), "{again:?}");
    if let Request::Serve(service) = &request {
        let _ = service.writes();
    }
});
