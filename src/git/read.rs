//! Reading a push: for each ref update, its action and the commits it brings to its ref
//! (SPEC §4): `old..new` for an update or a force; for a create, what the default branch
//! did not have before the push (what no ref had, when HEAD is unborn or is the ref being
//! created). The same commits whether or not another ref already had them: pushing commits
//! through an unprotected ref first does not hide them from a protected ref's rules.

use super::{GitRepo, RepoError, fail, kind_name, walk};
use crate::push::{Action, Change, Commit, Push, RefUpdate};
use gix::ObjectId;
use std::collections::{HashMap, HashSet};

/// What to read beyond actions and commits: the tree diffs are the costly part.
#[derive(Debug, Clone, Copy, Default)]
pub struct Want {
    pub files: bool,
    /// Read the size of each added blob; for blobs above this many bytes, also whether a
    /// merge took it from one of its other parents (then it is not an addition).
    pub blob_sizes: Option<u64>,
    /// The tip commit of each change (the events' `head_commit`).
    pub heads: bool,
    /// Read the files of a head that is none of its change's commits now; otherwise the
    /// head is marked and the deliverer reads them at fan-out, off the pusher's time.
    pub head_files: bool,
    /// The refs symbolic refs point at (their rules judge a push to the symbolic ref).
    pub aliases: bool,
    /// Which commits no ref had before the push (`distinct` in events).
    pub distinct: bool,
    /// List the blobs of the pushed pack over this size that no commit of the push writes.
    pub pack_limit: Option<u64>,
}

/// How far a symbolic ref chain is followed.
const MAX_SYMREF_DEPTH: usize = 10;

impl GitRepo {
    /// Read what each of `updates` does.
    ///
    /// `whole` is the whole push `updates` belong to: the update hook decides one ref of
    /// it, after git has already moved the refs before it, and post-receive runs after all
    /// moved; their old values say what the refs were before the push. `refs`, when given,
    /// are the refs as they were right after the push (an event rebuilt later must not see
    /// later pushes).
    pub fn read_push(
        &self,
        updates: &[RefUpdate],
        whole: &[RefUpdate],
        refs: Option<&[(String, ObjectId)]>,
        want: Want,
    ) -> Result<Push, RepoError> {
        let listed = match refs {
            Some(refs) => super::Refs { direct: refs.to_vec(), symbolic: HashMap::new() },
            None => self.refs()?,
        };
        let before = refs_before(&listed.direct, updates.iter().chain(whole));
        let after = refs_after(&before, whole.iter().chain(updates));
        let head_ref = self.head_ref();
        let mut commits = self.commit_source();

        // Each new value, peeled through tags once: a commit, or what else it is.
        let mut targets = Vec::with_capacity(updates.len());
        for update in updates {
            targets.push(if update.new.is_null() { None } else { Some(self.peel(update.new)?) });
        }
        let tip_of = |i: usize| targets[i].filter(|(_, kind)| *kind == gix::object::Kind::Commit).map(|(id, _)| id);

        // What each update brings: creates share their hidden side (one walk for all of
        // them), updates and forces hide their own old value.
        let default_before = head_ref.as_deref().and_then(|name| before.get(name)).copied();
        let mut brought: Vec<Vec<ObjectId>> = vec![Vec::new(); updates.len()];
        let (mut below_head, mut below_all) = (Vec::new(), Vec::new());
        for (i, update) in updates.iter().enumerate() {
            let Some(tip) = tip_of(i) else { continue };
            if !update.old.is_null() {
                let hidden: HashSet<ObjectId> = self.peel_to_commit(update.old)?.into_iter().collect();
                let new = walk_from(&mut commits, &[tip], &hidden)?;
                brought[i] = oldest_first(tip, &new);
            } else if head_ref.as_deref() != Some(update.name.as_str()) && default_before.is_some() {
                below_head.push(i);
            } else {
                below_all.push(i);
            }
        }
        if !below_head.is_empty() {
            let hidden: HashSet<ObjectId> =
                default_before.map(|id| self.peel_to_commit(id)).transpose()?.flatten().into_iter().collect();
            let tips: Vec<ObjectId> = below_head.iter().filter_map(|&i| tip_of(i)).collect();
            let new = walk_from(&mut commits, &tips, &hidden)?;
            for &i in &below_head {
                brought[i] = tip_of(i).map(|tip| oldest_first(tip, &new)).unwrap_or_default();
            }
        }
        // Every commit a ref reached before the push, when a walk needs it.
        let mut all_before: Option<HashSet<ObjectId>> = None;
        if !below_all.is_empty() {
            let hidden = all_before.insert(self.peel_all(before.values())?);
            let tips: Vec<ObjectId> = below_all.iter().filter_map(|&i| tip_of(i)).collect();
            let new = walk_from(&mut commits, &tips, hidden)?;
            for &i in &below_all {
                brought[i] = tip_of(i).map(|tip| oldest_first(tip, &new)).unwrap_or_default();
            }
        }
        // A push that brings no commit to any ref brings none that no ref had: every tip
        // was reachable from the ref it lands on (or the default branch) already.
        let distinct: HashSet<ObjectId> = if want.distinct && brought.iter().any(|b| !b.is_empty()) {
            let hidden = match all_before {
                Some(hidden) => hidden,
                None => self.peel_all(before.values())?,
            };
            let tips: Vec<ObjectId> = (0..updates.len()).filter_map(tip_of).collect();
            walk_from(&mut commits, &tips, &hidden)?.into_keys().collect()
        } else {
            HashSet::new()
        };

        let mut read: HashMap<ObjectId, Read> = HashMap::new();
        let mut changes = Vec::with_capacity(updates.len());
        for (i, update) in updates.iter().enumerate() {
            let action = match update.obvious_action() {
                Some(action) => action,
                None => self.ancestry_action(update)?,
            };
            let mut list = Vec::with_capacity(brought[i].len());
            for id in &brought[i] {
                list.push(self.read_commit(*id, want, &distinct, &mut read)?);
            }
            let tip = tip_of(i);
            let (head, head_files_pending) = match tip {
                Some(tip) if want.heads => match list.last() {
                    Some(last) if last.id == tip => (Some(last.clone()), false),
                    _ => {
                        let (head, pending) = self.read_head(tip, want, &distinct, &mut read)?;
                        (Some(head), pending)
                    }
                },
                _ => (None, false),
            };
            let non_commit = targets[i].filter(|_| tip.is_none()).map(|(_, kind)| kind_name(kind));
            let aliases = if want.aliases { symref_chain(&listed.symbolic, &update.name) } else { Vec::new() };
            let base_ref = base_ref(&update.name, tip, &after, head_ref.as_deref());
            let tag_message = match want.heads && !update.new.is_null() {
                true => self.tag_message(update.new)?,
                false => None,
            };
            changes.push(Change {
                update: update.clone(),
                action,
                commits: list,
                head,
                head_files_pending,
                non_commit,
                aliases,
                base_ref,
                tag_message,
            });
        }
        let default_branch = head_ref.as_deref().and_then(|n| n.strip_prefix("refs/heads/")).map(str::to_string);
        let pushed_blobs = match want.pack_limit {
            Some(limit) => {
                let written: HashSet<ObjectId> =
                    read.values().flat_map(|r| r.commit.files.iter().filter_map(|f| f.blob.map(|b| b.id))).collect();
                self.pushed_blobs_over(limit)?.into_iter().filter(|(id, _)| !written.contains(id)).collect()
            }
            None => Vec::new(),
        };
        Ok(Push { changes, default_branch, pushed_blobs })
    }

    /// A commit, read once per push however many changes bring it.
    fn read_commit(
        &self,
        id: ObjectId,
        want: Want,
        distinct: &HashSet<ObjectId>,
        read: &mut HashMap<ObjectId, Read>,
    ) -> Result<Commit, RepoError> {
        if let Some(commit) = read.get(&id).filter(|c| !want.files || c.files_read) {
            return Ok(commit.commit.clone());
        }
        let commit = self.commit(id, want.files || want.blob_sizes.is_some(), want.blob_sizes)?;
        let commit = Commit { distinct: distinct.contains(&id), ..commit };
        read.insert(id, Read { commit: commit.clone(), files_read: want.files });
        Ok(commit)
    }

    /// The head of a change that is none of its commits, and whether its files are left for
    /// the deliverer to read: a push creating thousands of refs at old commits would
    /// otherwise diff thousands of trees while the pusher waits.
    fn read_head(
        &self,
        tip: ObjectId,
        want: Want,
        distinct: &HashSet<ObjectId>,
        read: &mut HashMap<ObjectId, Read>,
    ) -> Result<(Commit, bool), RepoError> {
        if let Some(known) = read.get(&tip).filter(|c| c.files_read) {
            return Ok((known.commit.clone(), false));
        }
        if want.head_files {
            return Ok((self.read_commit(tip, Want { files: true, ..want }, distinct, read)?, false));
        }
        // Only its id now: the deliverer reads the rest (message, people, files) at fan-out.
        let placeholder = Commit {
            id: tip,
            tree: ObjectId::null(tip.kind()),
            parents: Vec::new(),
            author: Default::default(),
            committer: Default::default(),
            message: String::new(),
            signed: false,
            files: Vec::new(),
            distinct: distinct.contains(&tip),
            refused_entries: Vec::new(),
        };
        Ok((placeholder, true))
    }

    /// Commit `id` with the files it changes against its first parent.
    pub fn commit_with_files(&self, id: ObjectId) -> Result<Commit, RepoError> {
        self.commit(id, true, None)
    }

    /// The commits `ids` stand for (trees and blobs stand for none).
    fn peel_all<'i>(&self, ids: impl Iterator<Item = &'i ObjectId>) -> Result<HashSet<ObjectId>, RepoError> {
        let mut peeled = HashSet::new();
        for id in ids {
            peeled.extend(self.peel_to_commit(*id)?);
        }
        Ok(peeled)
    }

    /// `update` when the old commit is an ancestor of the new one, else `force`.
    fn ancestry_action(&self, update: &RefUpdate) -> Result<Action, RepoError> {
        let (Some(old), Some(new)) = (self.peel_to_commit(update.old)?, self.peel_to_commit(update.new)?) else {
            return Ok(Action::Force);
        };
        if old == new {
            return Ok(Action::Update);
        }
        let mut graph = self.repo.revision_graph(self.graph.as_ref());
        let bases = gix_revision::merge_base(old, &[new], &mut graph)
            .map_err(|e| fail(format_args!("cannot compare {} with {}", update.old, update.new), e))?;
        let fast_forward = bases.is_some_and(|bases| bases.iter().any(|b| *b == old));
        Ok(if fast_forward { Action::Update } else { Action::Force })
    }
}

/// The refs before the push: as listed, with each touched ref at its old value (or gone, if
/// the push created it).
fn refs_before<'a>(
    listed: &'a [(String, ObjectId)],
    touched: impl Iterator<Item = &'a RefUpdate>,
) -> HashMap<&'a str, ObjectId> {
    let mut before: HashMap<&str, ObjectId> = listed.iter().map(|(name, id)| (name.as_str(), *id)).collect();
    for update in touched {
        if update.old.is_null() {
            before.remove(update.name.as_str());
        } else {
            before.insert(update.name.as_str(), update.old);
        }
    }
    before
}

/// The refs once the push has landed: `before` with every update's new value (or without
/// the ref, for a delete).
fn refs_after<'a>(
    before: &HashMap<&'a str, ObjectId>,
    updates: impl Iterator<Item = &'a RefUpdate>,
) -> HashMap<&'a str, ObjectId> {
    let mut after = before.clone();
    for update in updates {
        if update.new.is_null() {
            after.remove(update.name.as_str());
        } else {
            after.insert(update.name.as_str(), update.new);
        }
    }
    after
}

/// For a tag naming the commit `tip`: the branch whose tip that commit is once the push has
/// landed (GitHub's `base_ref`). The default branch when it is one of them, else the first
/// by name; `None` for other refs, or when no branch is there.
fn base_ref(name: &str, tip: Option<ObjectId>, after: &HashMap<&str, ObjectId>, head: Option<&str>) -> Option<String> {
    let tip = tip.filter(|_| name.starts_with("refs/tags/"))?;
    let mut at_tip: Vec<&str> =
        after.iter().filter(|(n, id)| n.starts_with("refs/heads/") && **id == tip).map(|(n, _)| *n).collect();
    if let Some(head) = head.filter(|h| at_tip.contains(h)) {
        return Some(head.to_string());
    }
    at_tip.sort_unstable();
    at_tip.first().map(|n| n.to_string())
}

/// The refs a symbolic ref leads to, in order, through its whole chain; the last one need
/// not exist (a dangling symbolic ref). Empty for a direct ref.
fn symref_chain(symbolic: &HashMap<String, String>, name: &str) -> Vec<String> {
    let mut chain: Vec<String> = Vec::new();
    let mut at = name;
    while let Some(target) = symbolic.get(at) {
        if target == name || chain.contains(target) || chain.len() == MAX_SYMREF_DEPTH {
            break;
        }
        chain.push(target.clone());
        at = target;
    }
    chain
}

fn walk_from(
    commits: &mut super::GraphCommits,
    tips: &[ObjectId],
    hidden: &HashSet<ObjectId>,
) -> Result<HashMap<ObjectId, Vec<ObjectId>>, RepoError> {
    let tips: Vec<ObjectId> =
        tips.iter().filter(|t| !hidden.contains(*t)).copied().collect::<HashSet<_>>().into_iter().collect();
    if tips.is_empty() {
        return Ok(HashMap::new());
    }
    walk::new_commits(commits, &tips, hidden).map_err(|e| fail("cannot walk the new commits", e))
}

/// The commits of `new` reachable from `tip`, parents before children (oldest first), by an
/// iterative depth-first walk that stays inside `new`.
fn oldest_first(tip: ObjectId, new: &HashMap<ObjectId, Vec<ObjectId>>) -> Vec<ObjectId> {
    let mut order = Vec::new();
    let mut visited = HashSet::new();
    let mut stack = vec![(tip, 0usize)];
    if !new.contains_key(&tip) {
        return order;
    }
    visited.insert(tip);
    while let Some((id, next_parent)) = stack.pop() {
        let parents = &new[&id];
        match parents.get(next_parent) {
            Some(parent) => {
                stack.push((id, next_parent + 1));
                if new.contains_key(parent) && visited.insert(*parent) {
                    stack.push((*parent, 0));
                }
            }
            None => order.push(id),
        }
    }
    order
}

/// A commit read for this push, and whether its files were.
struct Read {
    commit: Commit,
    files_read: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(byte: u8) -> ObjectId {
        ObjectId::from_bytes_or_panic(&[byte; 20])
    }

    #[test]
    fn oldest_first_puts_parents_before_children() {
        // 1 <- 2 <- 4, 1 <- 3 <- 4 (merge), 0 is outside the new commits.
        let new: HashMap<ObjectId, Vec<ObjectId>> =
            [(id(1), vec![id(0)]), (id(2), vec![id(1)]), (id(3), vec![id(1)]), (id(4), vec![id(2), id(3)])].into();
        assert_eq!(oldest_first(id(4), &new), [id(1), id(2), id(3), id(4)]);
        assert_eq!(oldest_first(id(3), &new), [id(1), id(3)]);
        assert!(oldest_first(id(9), &new).is_empty());
    }

    #[test]
    fn a_long_chain_does_not_overflow_the_stack() {
        let new: HashMap<ObjectId, Vec<ObjectId>> = (1..=60_000u32)
            .map(|i| {
                let this = ObjectId::from_bytes_or_panic(&[&i.to_be_bytes()[..], &[0; 16]].concat());
                let parent = ObjectId::from_bytes_or_panic(&[&(i - 1).to_be_bytes()[..], &[0; 16]].concat());
                (this, vec![parent])
            })
            .collect();
        let tip = ObjectId::from_bytes_or_panic(&[&60_000u32.to_be_bytes()[..], &[0; 16]].concat());
        assert_eq!(oldest_first(tip, &new).len(), 60_000);
    }

    #[test]
    fn symref_chains_are_followed_to_their_end_and_cycles_stop() {
        let symbolic: HashMap<String, String> = [
            ("refs/heads/alias2", "refs/heads/alias"),
            ("refs/heads/alias", "refs/heads/main"),
            ("refs/heads/loop1", "refs/heads/loop2"),
            ("refs/heads/loop2", "refs/heads/loop1"),
            ("refs/heads/dangling", "refs/heads/nothing"),
        ]
        .into_iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
        assert_eq!(symref_chain(&symbolic, "refs/heads/alias2"), ["refs/heads/alias", "refs/heads/main"]);
        assert_eq!(symref_chain(&symbolic, "refs/heads/loop1"), ["refs/heads/loop2"]);
        assert_eq!(symref_chain(&symbolic, "refs/heads/dangling"), ["refs/heads/nothing"]);
        assert!(symref_chain(&symbolic, "refs/heads/main").is_empty());
    }

    #[test]
    fn a_tags_base_ref_is_the_branch_at_its_commit_after_the_push() {
        let after: HashMap<&str, ObjectId> = [
            ("refs/heads/main", id(1)),
            ("refs/heads/b", id(1)),
            ("refs/heads/a", id(1)),
            ("refs/heads/other", id(2)),
            ("refs/tags/old", id(3)),
        ]
        .into();
        let main = Some("refs/heads/main");
        assert_eq!(base_ref("refs/tags/v1", Some(id(1)), &after, main).as_deref(), Some("refs/heads/main"));
        assert_eq!(base_ref("refs/tags/v1", Some(id(1)), &after, None).as_deref(), Some("refs/heads/a"));
        assert_eq!(base_ref("refs/tags/v1", Some(id(2)), &after, main).as_deref(), Some("refs/heads/other"));
        assert_eq!(base_ref("refs/tags/v1", Some(id(3)), &after, main), None, "only branches");
        assert_eq!(base_ref("refs/tags/v1", None, &after, main), None, "a tag of a tree or a delete");
        assert_eq!(base_ref("refs/heads/copy", Some(id(1)), &after, main), None, "only tags");
    }

    #[test]
    fn refs_after_the_push_apply_every_update() {
        let before: HashMap<&str, ObjectId> = [("refs/heads/main", id(1)), ("refs/heads/old", id(1))].into();
        let updates = [
            RefUpdate { old: id(1), new: id(2), name: "refs/heads/main".into() },
            RefUpdate { old: id(1), new: ObjectId::null(gix::hash::Kind::Sha1), name: "refs/heads/old".into() },
            RefUpdate { old: ObjectId::null(gix::hash::Kind::Sha1), new: id(3), name: "refs/tags/v1".into() },
        ];
        let after = refs_after(&before, updates.iter());
        assert_eq!(after, [("refs/heads/main", id(2)), ("refs/tags/v1", id(3))].into());
    }

    #[test]
    fn refs_before_the_push_put_touched_refs_back() {
        let listed = vec![("refs/heads/main".to_string(), id(2)), ("refs/heads/new".to_string(), id(3))];
        let updates = [
            RefUpdate { old: id(1), new: id(2), name: "refs/heads/main".into() },
            RefUpdate { old: ObjectId::null(gix::hash::Kind::Sha1), new: id(3), name: "refs/heads/new".into() },
        ];
        let before = refs_before(&listed, updates.iter());
        assert_eq!(before.get("refs/heads/main"), Some(&id(1)));
        assert_eq!(before.get("refs/heads/new"), None);
    }
}
