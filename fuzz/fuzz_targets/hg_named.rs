//! The named changesets (branch heads, bookmarks, tags) before and after a transaction, as
//! the hg shim lists them, compared as ref updates: `state::Snapshot::from_named`,
//! `state::moved`, then the same lists as a shim document through `hg::read_push`.
//! Structured: nodes come from a small pool and names mostly from a few, so that states
//! share changesets and refs.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use pushgate::hg::state::{Named, Snapshot, moved};
use pushgate::hg::{ChangesetJson, Document, HgText, NamedJson, read_push};
use pushgate::push::Action;
use std::collections::BTreeMap;

const NAMES: [&str; 6] = ["default", "stable", "tip", "feature/x", "bm", "v1"];

#[derive(Debug, Arbitrary)]
enum Name {
    Pool(u8),
    Free(String),
}

impl Name {
    fn text(&self) -> String {
        match self {
            Name::Pool(i) => NAMES[usize::from(*i) % NAMES.len()].to_string(),
            Name::Free(text) => text.clone(),
        }
    }
}

#[derive(Debug, Arbitrary)]
struct Entry {
    node: u8,
    head: bool,
    closed: bool,
    branch: Name,
    bookmarks: Vec<Name>,
    tags: Vec<Name>,
}

#[derive(Debug, Arbitrary)]
struct Input {
    before: Vec<Entry>,
    after: Vec<Entry>,
    /// `[old, new]` node pairs where old is an ancestor of new.
    ancestors: Vec<(u8, u8)>,
}

/// One of 15 nodes (never hg's null node, which names nothing).
fn node(n: u8) -> String {
    format!("{:02x}", n % 15 + 1).repeat(20)
}

fn named(entries: &[Entry]) -> Vec<Named> {
    entries
        .iter()
        .map(|e| Named {
            node: node(e.node),
            head: e.head,
            closed: e.closed,
            branch: e.branch.text(),
            bookmarks: e.bookmarks.iter().map(Name::text).collect(),
            tags: e.tags.iter().map(Name::text).collect(),
        })
        .collect()
}

fn json(named: &[Named]) -> Vec<NamedJson> {
    named
        .iter()
        .map(|n| NamedJson {
            node: n.node.clone(),
            head: n.head,
            closed: n.closed,
            branch: HgText::Text(n.branch.clone()),
            bookmarks: n.bookmarks.iter().cloned().map(HgText::Text).collect(),
            tags: n.tags.iter().cloned().map(HgText::Text).collect(),
        })
        .collect()
}

fuzz_target!(|input: Input| {
    let (before, after) = (named(&input.before), named(&input.after));
    let (old, new) = (Snapshot::from_named(&before), Snapshot::from_named(&after));
    assert!(moved(&old, &old).is_empty(), "a state moved against itself");
    let changes = moved(&old, &new);
    for change in &changes {
        let name = &change.update.name;
        assert!(["refs/heads/", "refs/bookmarks/", "refs/tags/"].iter().any(|p| name.starts_with(p)), "{name:?}");
        assert_ne!(name, "refs/tags/tip", "hg's tip is no tag");
    }
    // The shim's document for these states: each moved ref brings its new node.
    let brought: BTreeMap<String, Vec<String>> = changes
        .iter()
        .filter(|c| !c.update.new.is_null())
        .map(|c| (c.update.name.clone(), vec![c.update.new.to_string()]))
        .collect();
    let changesets = after
        .iter()
        .map(|n| ChangesetJson {
            node: n.node.clone(),
            branch: HgText::Text(n.branch.clone()),
            parents: Vec::new(),
            user: HgText::Text("Al <al@example.org>".into()),
            date: (0.0, 0),
            desc: HgText::Text("fix".into()),
            manifest: None,
            files: Vec::new(),
        })
        .collect();
    let document = Document {
        schema: "pushgate.hg-push/1".into(),
        txn_id: HgText::Text("TXN:fuzz".into()),
        root: HgText::Text("/srv/hg/app".into()),
        before: json(&before),
        after: json(&after),
        brought,
        ancestors: input.ancestors.iter().map(|&(a, b)| [node(a), node(b)]).collect(),
        changesets,
        added: after.len(),
    };
    let Ok(push) = read_push(&document) else { return };
    assert_eq!(push.changes.len(), changes.len());
    for (change, moved) in push.changes.iter().zip(&changes) {
        let update = &change.update;
        assert_eq!(update, &moved.update);
        assert_eq!(update.old.is_null(), change.action == Action::Create, "{update:?} as {:?}", change.action);
        assert_eq!(update.new.is_null(), change.action == Action::Delete, "{update:?} as {:?}", change.action);
        if !update.new.is_null() {
            assert_eq!(change.head.as_ref().map(|h| h.id), Some(update.new), "{update:?}");
        }
    }
});
