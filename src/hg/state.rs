//! A Mercurial push as ref updates: named branches as `refs/heads/<branch>`, bookmarks as
//! `refs/bookmarks/<name>`, tags as `refs/tags/<name>`, compared between the state before
//! the transaction and the pending one. Pure: no `hg` here.

use crate::push::{Action, RefUpdate};
use gix::ObjectId;
use std::collections::{BTreeMap, BTreeSet};

/// A changeset that names something: a branch head, a bookmark or a tag.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Named {
    pub node: String,
    /// A head of its named branch (`head()`).
    pub head: bool,
    /// It closes its branch (`closed()`).
    pub closed: bool,
    pub branch: String,
    pub bookmarks: Vec<String>,
    pub tags: Vec<String>,
}

/// Branch heads, bookmarks and tags at one moment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// Open heads per branch, oldest first (the last is the branch's tip).
    pub branches: BTreeMap<String, Vec<String>>,
    /// Every head per branch, closed ones too: a push adding only closed heads still
    /// changes the branch, and its changesets must be judged.
    pub all_heads: BTreeMap<String, Vec<String>>,
    pub bookmarks: BTreeMap<String, String>,
    pub tags: BTreeMap<String, String>,
}

impl Snapshot {
    /// From `hg log -r 'head() or bookmark() or tag()'`, in revision order.
    pub fn from_named(changesets: &[Named]) -> Snapshot {
        let mut snapshot = Snapshot::default();
        for cs in changesets {
            if cs.head && !cs.closed {
                snapshot.branches.entry(cs.branch.clone()).or_default().push(cs.node.clone());
            }
            if cs.head {
                snapshot.all_heads.entry(cs.branch.clone()).or_default().push(cs.node.clone());
            }
            for bookmark in &cs.bookmarks {
                snapshot.bookmarks.insert(bookmark.clone(), cs.node.clone());
            }
            for tag in cs.tags.iter().filter(|t| *t != "tip") {
                snapshot.tags.insert(tag.clone(), cs.node.clone());
            }
        }
        snapshot
    }
}

/// A ref that moved, before ancestry decides between update and force.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Moved {
    pub update: RefUpdate,
    /// Known from the heads alone (create, delete, a new head = force, else update), or
    /// `None` when ancestry of `before` in `after` decides.
    pub action: Option<Action>,
}

/// Every ref that differs between `old` and `new`, branches then bookmarks then tags.
pub fn moved(old: &Snapshot, new: &Snapshot) -> Vec<Moved> {
    let mut out = Vec::new();
    let names: BTreeSet<&String> = old.all_heads.keys().chain(new.all_heads.keys()).collect();
    for name in names {
        if old.all_heads.get(name) == new.all_heads.get(name) {
            continue;
        }
        let (before, after) = (old.branches.get(name), new.branches.get(name));
        let tip = |heads: Option<&Vec<String>>| heads.and_then(|h| h.last()).cloned();
        let any_tip = |snapshot: &Snapshot| snapshot.all_heads.get(name).and_then(|h| h.last()).cloned();
        let (action, before_id, after_id) = match (before, after) {
            (None, _) if !old.all_heads.contains_key(name) => {
                (Some(Action::Create), None, tip(after).or_else(|| any_tip(new)))
            }
            (Some(_), None) => (Some(Action::Delete), tip(before), None),
            // A branch left with no head at all (its only, closed, heads gone from view, as
            // obsolescence markers hide them) is deleted too, not forced to the null id.
            (None, None) if !new.all_heads.contains_key(name) => (Some(Action::Delete), any_tip(old), None),
            // A push that adds a head to a branch is a force, like a non-fast-forward.
            (Some(b), Some(a)) if a.iter().any(|h| !b.contains(h)) && a.len() > b.len() => {
                (Some(Action::Force), tip(before), tip(after))
            }
            // Otherwise the tip moved (or changesets landed on a closed branch): ancestry
            // decides, also when the old head was closed by the same push.
            (Some(_), Some(_)) => (None, tip(before), tip(after)),
            (None, Some(_)) => (None, any_tip(old), tip(after)),
            (None, None) => (None, any_tip(old), any_tip(new)),
        };
        let action = action.or((before_id == after_id).then_some(Action::Update));
        out.push(Moved { update: update(&format!("refs/heads/{name}"), before_id, after_id), action });
    }
    for (kind, old_map, new_map) in [("bookmarks", &old.bookmarks, &new.bookmarks), ("tags", &old.tags, &new.tags)] {
        let names: BTreeSet<&String> = old_map.keys().chain(new_map.keys()).collect();
        for name in names {
            let (before, after) = (old_map.get(name), new_map.get(name));
            if before == after {
                continue;
            }
            let action = match (before, after) {
                (None, _) => Some(Action::Create),
                (_, None) => Some(Action::Delete),
                _ => None,
            };
            out.push(Moved { update: update(&format!("refs/{kind}/{name}"), before.cloned(), after.cloned()), action });
        }
    }
    out
}

fn update(name: &str, before: Option<String>, after: Option<String>) -> RefUpdate {
    let id = |node: Option<String>| {
        node.and_then(|n| ObjectId::from_hex(n.as_bytes()).ok())
            .unwrap_or_else(|| ObjectId::null(gix::hash::Kind::Sha1))
    };
    RefUpdate { old: id(before), new: id(after), name: name.to_string() }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(c: char) -> String {
        c.to_string().repeat(40)
    }

    fn cs(n: char, branch: &str, bookmarks: &[&str], tags: &[&str], closed: bool) -> Named {
        Named {
            node: node(n),
            head: true,
            closed,
            branch: branch.into(),
            bookmarks: bookmarks.iter().map(|s| s.to_string()).collect(),
            tags: tags.iter().map(|s| s.to_string()).collect(),
        }
    }

    fn actions(old: &[Named], new: &[Named]) -> Vec<(String, Option<Action>)> {
        moved(&Snapshot::from_named(old), &Snapshot::from_named(new))
            .into_iter()
            .map(|m| (m.update.name, m.action))
            .collect()
    }

    #[test]
    fn branches_create_update_force_and_close() {
        let old = [cs('a', "default", &[], &[], false), cs('b', "stable", &[], &[], false)];
        let new = [
            cs('c', "default", &[], &[], false),
            cs('d', "default", &[], &[], false),
            cs('e', "stable", &[], &[], true),
            cs('f', "feature", &[], &[], false),
        ];
        let mut old_new = actions(&old, &new);
        old_new.sort_by(|a, b| a.0.cmp(&b.0));
        assert_eq!(
            old_new,
            [
                ("refs/heads/default".to_string(), Some(Action::Force)),
                ("refs/heads/feature".to_string(), Some(Action::Create)),
                ("refs/heads/stable".to_string(), Some(Action::Delete)),
            ]
        );
        // A moved tip is left to ancestry, also when the push closes the old head.
        let moved_tip = actions(&[cs('a', "default", &[], &[], false)], &[cs('c', "default", &[], &[], false)]);
        assert_eq!(moved_tip, [("refs/heads/default".to_string(), None)]);
        let closing_the_old = actions(
            &[cs('a', "default", &[], &[], false)],
            &[cs('a', "default", &[], &[], true), cs('c', "default", &[], &[], false)],
        );
        assert_eq!(closing_the_old, [("refs/heads/default".to_string(), None)]);
    }

    #[test]
    fn a_push_of_only_closed_heads_still_moves_the_branch() {
        let open = cs('a', "default", &[], &[], false);
        let closed = cs('b', "evil", &[], &[], true);
        let moved = actions(std::slice::from_ref(&open), &[open.clone(), closed.clone()]);
        assert_eq!(moved, [("refs/heads/evil".to_string(), Some(Action::Create))]);
        let mut closed_again = cs('c', "evil", &[], &[], true);
        closed_again.head = true;
        let more = actions(&[open.clone(), closed], &[open, closed_again]);
        assert_eq!(more, [("refs/heads/evil".to_string(), None)]);
    }

    #[test]
    fn a_closed_branch_whose_heads_all_go_is_a_delete() {
        // Found by fuzz/fuzz_targets/hg_named.rs: this was a force to the null id.
        let old = Snapshot::from_named(&[cs('a', "old", &[], &[], true), cs('b', "default", &[], &[], false)]);
        let new = Snapshot::from_named(&[cs('b', "default", &[], &[], false)]);
        let gone = moved(&old, &new);
        let [change] = &gone[..] else { panic!("one change: {gone:?}") };
        assert_eq!((change.update.name.as_str(), change.action), ("refs/heads/old", Some(Action::Delete)));
        assert_eq!(change.update.old.to_string(), node('a'));
        assert!(change.update.new.is_null());
    }

    #[test]
    fn bookmarked_changesets_that_are_not_heads_are_not_heads() {
        let mut bookmarked = cs('a', "default", &["bm"], &[], false);
        bookmarked.head = false;
        let snapshot = Snapshot::from_named(&[bookmarked, cs('b', "default", &[], &[], false)]);
        assert_eq!(snapshot.branches["default"], [node('b')]);
        assert_eq!(snapshot.bookmarks["bm"], node('a'));
    }

    #[test]
    fn bookmarks_and_tags_leave_moves_to_ancestry() {
        let old = [cs('a', "default", &["bm", "gone"], &["v1", "tip"], false)];
        let new = [cs('a', "default", &["new"], &["v1"], false), cs('c', "x", &["bm"], &["v2", "tip"], false)];
        let moved = actions(&old, &new);
        assert!(moved.contains(&("refs/bookmarks/bm".to_string(), None)));
        assert!(moved.contains(&("refs/bookmarks/gone".to_string(), Some(Action::Delete))));
        assert!(moved.contains(&("refs/bookmarks/new".to_string(), Some(Action::Create))));
        assert!(moved.contains(&("refs/tags/v2".to_string(), Some(Action::Create))));
        assert!(!moved.iter().any(|(n, _)| n == "refs/tags/tip" || n == "refs/tags/v1"));
    }
}
