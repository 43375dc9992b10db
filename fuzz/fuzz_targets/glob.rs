//! Glob patterns (repos, refs, paths) compiled and matched against arbitrary byte names.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use pushgate::glob::{Anchor, Glob};

#[derive(Debug, Arbitrary)]
struct Input {
    pattern: String,
    path_anchor: bool,
    names: Vec<Vec<u8>>,
}

fuzz_target!(|input: Input| {
    let anchor = if input.path_anchor { Anchor::Path } else { Anchor::Whole };
    let Ok(glob) = Glob::new(&input.pattern, anchor) else { return };
    assert_eq!(glob.as_str(), input.pattern);
    for name in &input.names {
        let hit = glob.matches(name);
        if glob.is_everything() {
            assert!(hit, "`**` missed {name:?}");
        }
    }
    // A pattern with no special characters matches itself, and only itself when whole.
    if !input.pattern.contains(['*', '?', '[', '\\']) {
        assert!(glob.matches(input.pattern.as_bytes()), "literal {:?} does not match itself", input.pattern);
        if anchor == Anchor::Whole {
            for name in &input.names {
                assert_eq!(
                    glob.matches(name),
                    name == input.pattern.as_bytes(),
                    "literal {:?} vs {name:?}",
                    input.pattern
                );
            }
        }
    }
});
