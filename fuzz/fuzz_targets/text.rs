//! The escaping of text from outside (ref names, paths, extension output): never a panic,
//! never a control character out, lengths as promised. Arbitrary bytes; the first byte picks
//! `one_line`'s limit.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pushgate::text::{MAX_LINES, lines, one_line, path, shown, shown_bytes};

fn clean(out: &str) {
    assert!(!out.chars().any(char::is_control), "control character in {out:?}");
}

fuzz_target!(|data: &[u8]| {
    let Some((&max, rest)) = data.split_first() else { return };
    clean(&shown_bytes(rest));
    clean(&path(rest));
    let shown_lines = lines(rest);
    assert!(shown_lines.len() <= MAX_LINES + 1);
    for line in &shown_lines {
        clean(line);
    }
    if let Ok(text) = std::str::from_utf8(rest) {
        clean(&shown(text));
        let max = usize::from(max);
        let cut = one_line(text, Some(max));
        clean(&cut);
        if text.chars().count() > max {
            assert!(cut.ends_with('…'));
        } else {
            assert!(!cut.ends_with('…') || text.ends_with('…'));
        }
        let whole = one_line(text, None);
        clean(&whole);
        assert!(whole.chars().count() >= text.chars().count());
    }
});
