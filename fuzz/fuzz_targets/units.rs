//! Sizes and durations as written in the configuration, and sizes as shown to people.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use pushgate::config::units::{human_size, parse_duration, parse_size};

#[derive(Debug, Arbitrary)]
struct Input {
    text: String,
    bytes: u64,
}

fuzz_target!(|input: Input| {
    if let Ok(size) = parse_size(&input.text) {
        assert_eq!(size.text, input.text.trim());
        let _ = human_size(size.bytes);
    }
    let _ = parse_duration(&input.text);
    let shown = human_size(input.bytes);
    assert!(shown.ends_with('B'), "{shown:?}");
    if input.bytes < 1024 {
        assert_eq!(shown, format!("{} B", input.bytes));
    }
});
