//! The named-changesets template lines (`<node> <h|-> <c|-> <branch> <bookmarks> <tags>`)
//! before and after a transaction, compared as ref updates. The input is the lines before,
//! NUL, the lines after (arbitrary UTF-8; lines that do not parse are skipped).
#![no_main]

use libfuzzer_sys::fuzz_target;
use pushgate::hg::parse_named;
use pushgate::hg::state::{Changeset, Named, Snapshot, moved, new_changesets_of};

fn named(text: &str) -> Vec<Named> {
    text.lines().filter_map(|line| parse_named(line).ok()).collect()
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let (before, after) = text.split_once('\0').unwrap_or(("", text));
    let (before, after) = (named(before), named(after));
    let (old, new) = (Snapshot::from_named(&before), Snapshot::from_named(&after));
    assert!(moved(&old, &old).is_empty(), "a state moved against itself");
    let changes = moved(&old, &new);
    // Each changeset after as a new one, its parent the one listed before it.
    let changesets: Vec<Changeset> = after
        .iter()
        .enumerate()
        .map(|(i, cs)| Changeset {
            node: cs.node.clone(),
            branch: cs.branch.clone(),
            parents: i.checked_sub(1).map(|p| after[p].node.clone()).into_iter().collect(),
        })
        .collect();
    for change in &changes {
        assert!(change.update.name.starts_with("refs/"));
        let _ = change.update.obvious_action();
        let _ = new_changesets_of(&change.update, &changesets);
    }
});
