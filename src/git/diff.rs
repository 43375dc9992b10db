//! One commit as a push is judged: its metadata, the files it changes against its first
//! parent, the blobs it adds (with their sizes), and the tree entries it writes that git's
//! own fsck refuses.

use super::{GitRepo, RepoError, fail, person};
use crate::push::{Blob, Commit, FileChange, FileKind};
use gix::ObjectId;
use gix::bstr::{BStr, BString, ByteSlice};
use gix::diff::tree::recorder::Change as Recorded;
use gix::diff::tree::{Recorder, Visit, visit};
use gix::prelude::FindExt;
use std::collections::{HashSet, VecDeque};

impl GitRepo {
    /// A commit with, when asked, the files it changes (and, with `sizes`, each added
    /// blob's size).
    pub(super) fn commit(&self, id: ObjectId, with_files: bool, sizes: Option<u64>) -> Result<Commit, RepoError> {
        let object = self.repo.find_commit(id).map_err(|e| fail(format_args!("cannot read commit {id}"), e))?;
        let decoded = object.decode().map_err(|e| fail(format_args!("cannot decode commit {id}"), e))?;
        let parents: Vec<ObjectId> = decoded.parents().collect();
        let (files, refused_entries) = match with_files {
            true => self.changed_files(id, &parents, sizes)?,
            false => (Vec::new(), Vec::new()),
        };
        Ok(Commit {
            id,
            tree: decoded.tree(),
            parents,
            author: person(decoded.author().ok()),
            committer: person(decoded.committer().ok()),
            message: decoded.message.to_str_lossy().into_owned(),
            signed: decoded.extra_headers().pgp_signature().is_some(),
            files,
            distinct: false,
            refused_entries,
        })
    }

    /// The files `id` changes against its first parent (against nothing for a root), and
    /// the paths of refused tree entries it writes.
    fn changed_files(
        &self,
        id: ObjectId,
        parents: &[ObjectId],
        sizes: Option<u64>,
    ) -> Result<(Vec<FileChange>, Vec<Vec<u8>>), RepoError> {
        let objects = &self.repo.objects;
        let hash = self.repo.object_hash();
        let tree_of = |commit: ObjectId, buf: &mut Vec<u8>| -> Result<ObjectId, RepoError> {
            let mut iter = objects
                .find_commit_iter(&commit, buf)
                .map_err(|e| fail(format_args!("cannot read commit {commit}"), e))?;
            iter.tree_id().map_err(|e| fail(format_args!("cannot decode commit {commit}"), e))
        };
        let mut buf = Vec::new();
        let new_tree = tree_of(id, &mut buf)?;
        let old_tree = parents.first().map(|p| tree_of(*p, &mut buf)).transpose()?;
        let (mut old_buf, mut new_buf) = (Vec::new(), Vec::new());
        let old_iter = match old_tree {
            Some(tree) => objects
                .find_tree_iter(&tree, &mut old_buf)
                .map_err(|e| fail(format_args!("cannot read tree {tree}"), e))?,
            None => gix::objs::TreeRefIter::from_bytes(&[], hash),
        };
        let new_iter = objects
            .find_tree_iter(&new_tree, &mut new_buf)
            .map_err(|e| fail(format_args!("cannot read tree {new_tree}"), e))?;
        let mut entries = Entries::default();
        gix::diff::tree(old_iter, new_iter, gix::diff::tree::State::default(), objects, &mut entries)
            .map_err(|e| fail(format_args!("cannot diff commit {id}"), e))?;

        // A blob that leaves one path in the same commit is renamed, not added.
        let moved_away: HashSet<ObjectId> = entries
            .recorder
            .records
            .iter()
            .filter_map(|c| match c {
                Recorded::Deletion { entry_mode, oid, .. } if entry_mode.is_blob_or_symlink() => Some(*oid),
                _ => None,
            })
            .collect();
        let mut files = Vec::new();
        for change in entries.recorder.records {
            let (path, kind, mode, oid, previous) = match change {
                Recorded::Addition { path, entry_mode, oid, .. } => (path, FileKind::Added, entry_mode, oid, None),
                Recorded::Deletion { path, entry_mode, oid, .. } => (path, FileKind::Removed, entry_mode, oid, None),
                Recorded::Modification { path, entry_mode, oid, previous_oid, .. } => {
                    (path, FileKind::Modified, entry_mode, oid, Some(previous_oid))
                }
            };
            if mode.is_tree() {
                continue;
            }
            let blob = if kind != FileKind::Removed && mode.is_blob_or_symlink() {
                let size = match sizes {
                    Some(_) => {
                        self.repo.find_header(oid).map_err(|e| fail(format_args!("cannot read blob {oid}"), e))?.size()
                    }
                    None => 0,
                };
                let mut added = previous != Some(oid) && !moved_away.contains(&oid);
                // Only for blobs a limit cares about: what a merge takes from another parent.
                if added && parents.len() > 1 && sizes.is_some_and(|limit| size > limit) {
                    added = !self.in_other_parents(&parents[1..], path.as_bstr(), oid)?;
                }
                Some(Blob { id: oid, size, added })
            } else {
                None
            };
            files.push(FileChange { path: path.into(), kind, blob });
        }
        Ok((files, entries.refused))
    }

    /// Whether one of `parents` has blob `oid` at `path`.
    fn in_other_parents(&self, parents: &[ObjectId], path: &BStr, oid: ObjectId) -> Result<bool, RepoError> {
        for parent in parents {
            let commit =
                self.repo.find_commit(*parent).map_err(|e| fail(format_args!("cannot read commit {parent}"), e))?;
            let tree = commit.tree().map_err(|e| fail(format_args!("cannot read the tree of {parent}"), e))?;
            let entry = tree
                .lookup_entry(path.split(|&b| b == b'/'))
                .map_err(|e| fail(format_args!("cannot read the tree of {parent}"), e))?;
            if entry.is_some_and(|e| e.object_id() == oid) {
                return Ok(true);
            }
        }
        Ok(false)
    }
}

/// Whether git's fsck refuses a tree entry of this name.
fn refused_name(name: &[u8]) -> bool {
    name.is_empty() || name == b"." || name == b".." || name.eq_ignore_ascii_case(b".git") || name.contains(&b'/')
}

/// A tree-diff delegate: gix's recorder, plus the path as its raw entry names (the
/// recorder joins them with `/`, which hides an entry named `a/b` or an empty one) to find
/// refused entries among what the commit writes.
#[derive(Default)]
struct Entries {
    recorder: Recorder,
    names: Vec<BString>,
    queued: VecDeque<Vec<BString>>,
    /// The paths, up to the first refused entry, of what the commit writes under one.
    refused: Vec<Vec<u8>>,
}

impl Visit for Entries {
    fn pop_front_tracked_path_and_set_current(&mut self) {
        self.recorder.pop_front_tracked_path_and_set_current();
        self.names = self.queued.pop_front().unwrap_or_default();
    }

    fn push_back_tracked_path_component(&mut self, component: &BStr) {
        self.recorder.push_back_tracked_path_component(component);
        self.names.push(component.to_owned());
        self.queued.push_back(self.names.clone());
    }

    fn push_path_component(&mut self, component: &BStr) {
        self.recorder.push_path_component(component);
        self.names.push(component.to_owned());
    }

    fn pop_path_component(&mut self) {
        self.recorder.pop_path_component();
        self.names.pop();
    }

    fn visit(&mut self, change: visit::Change) -> visit::Action {
        let writes = !matches!(change, visit::Change::Deletion { .. });
        if let Some(bad) = self.names.iter().position(|n| refused_name(n)).filter(|_| writes) {
            let shown: Vec<u8> = self.names[..=bad].join(&b'/');
            if !self.refused.contains(&shown) {
                self.refused.push(shown);
            }
        }
        self.recorder.visit(change)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_git_refuses() {
        for bad in [&b""[..], b".", b"..", b".git", b".GIT", b".Git", b"a/b"] {
            assert!(refused_name(bad), "{:?}", bad.as_bstr());
        }
        for good in [&b".gitignore"[..], b"git", b"...", b".github", b"a.git"] {
            assert!(!refused_name(good), "{:?}", good.as_bstr());
        }
    }
}
