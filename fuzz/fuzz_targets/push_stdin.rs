//! pre-receive / post-receive stdin: `<old> SP <new> SP <ref>` lines, arbitrary bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pushgate::push::parse_updates;

fuzz_target!(|data: &[u8]| {
    let Ok(updates) = parse_updates(data) else { return };
    // What parsed prints back as git would send it, and reads back the same.
    let again: String = updates.iter().map(|u| format!("{} {} {}\n", u.old, u.new, u.name)).collect();
    let reparsed = parse_updates(again.as_bytes()).expect("re-printed updates parse");
    assert_eq!(updates, reparsed);
    for u in &updates {
        assert!(!(u.old.is_null() && u.new.is_null()), "both ids zero accepted");
        assert!(u.name.starts_with("refs/"), "ref outside refs/ accepted");
    }
});
