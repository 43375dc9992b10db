//! A Mercurial push as ref updates: named branches as `refs/heads/<branch>`, bookmarks as
//! `refs/bookmarks/<name>`, tags as `refs/tags/<name>`, compared between the state before
//! the transaction and the pending one. Pure: no `hg` here.

use crate::push::{Action, RefUpdate};
use gix::ObjectId;
use serde::Deserialize;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

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

/// A new changeset's place in the graph.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct Changeset {
    pub node: String,
    pub branch: String,
    pub parents: Vec<String>,
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
                (Action::Create, None, tip(after).or_else(|| any_tip(new)))
            }
            // Closed before and still (or again) closed: changesets on a closed branch.
            (None, None) => (Action::Update, any_tip(old), any_tip(new)),
            (None, Some(_)) => (Action::Update, any_tip(old), tip(after)),
            (Some(_), None) => (Action::Delete, tip(before), None),
            // A push that adds a head to a branch is a force, like a non-fast-forward.
            (Some(b), Some(a)) if a.iter().any(|h| !b.contains(h)) && a.len() > b.len() => {
                (Action::Force, tip(before), tip(after))
            }
            (Some(_), Some(_)) => (Action::Update, tip(before), tip(after)),
        };
        out.push(Moved { update: update(&format!("refs/heads/{name}"), before_id, after_id), action: Some(action) });
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

/// The new changesets (in revision order, with parents) that a change brings: for a branch,
/// those on the branch; for a bookmark or tag, those its new target reaches.
pub fn new_changesets_of<'a>(change: &RefUpdate, new: &'a [Changeset]) -> Vec<&'a Changeset> {
    if change.new.is_null() {
        return Vec::new();
    }
    if let Some(branch) = change.name.strip_prefix("refs/heads/") {
        return new.iter().filter(|cs| cs.branch == branch).collect();
    }
    let by_node: HashMap<&str, &Changeset> = new.iter().map(|cs| (cs.node.as_str(), cs)).collect();
    let mut reached = HashSet::new();
    let tip = change.new.to_string();
    let mut stack = vec![tip.as_str()];
    while let Some(node) = stack.pop() {
        if let Some(cs) = by_node.get(node)
            && reached.insert(node)
        {
            stack.extend(cs.parents.iter().map(String::as_str));
        }
    }
    new.iter().filter(|cs| reached.contains(cs.node.as_str())).collect()
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
        let forward = actions(&[cs('a', "default", &[], &[], false)], &[cs('c', "default", &[], &[], false)]);
        assert_eq!(forward, [("refs/heads/default".to_string(), Some(Action::Update))]);
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
        assert_eq!(more, [("refs/heads/evil".to_string(), Some(Action::Update))]);
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

    #[test]
    fn a_bookmark_brings_what_its_target_reaches() {
        let changeset =
            |n, branch: &str, parents: Vec<String>| Changeset { node: node(n), branch: branch.into(), parents };
        let new = vec![
            changeset('a', "default", vec![node('0')]),
            changeset('b', "default", vec![node('a')]),
            changeset('c', "other", vec![]),
        ];
        let change = update("refs/bookmarks/bm", None, Some(node('b')));
        let nodes: Vec<&str> = new_changesets_of(&change, &new).iter().map(|c| c.node.as_str()).collect();
        assert_eq!(nodes, [node('a'), node('b')]);
        let branch = update("refs/heads/other", None, Some(node('c')));
        assert_eq!(new_changesets_of(&branch, &new).len(), 1);
    }
}
