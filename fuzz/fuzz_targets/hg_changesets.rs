//! `hg log -T json(...)` output for the new changesets of a push, arbitrary bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pushgate::hg::parse_changesets;

fuzz_target!(|data: &[u8]| {
    if let Ok(logged) = parse_changesets(data) {
        let _ = format!("{logged:?}");
    }
});
