//! Reading a push from a Git repository with gix: the action of each update, its new
//! commits, the paths they change and the sizes of new blobs. No `git` subprocess.

mod quarantine;
mod walk;

pub use quarantine::Quarantine;

use crate::push::{Action, Blob, Change, Commit, FileChange, FileKind, Person, Push, RefUpdate};
use gix::ObjectId;
use gix::bstr::ByteSlice;
use gix::prelude::FindExt;
use std::collections::{HashMap, HashSet};
use std::path::Path;

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct RepoError(String);

fn fail(context: impl std::fmt::Display, e: impl std::fmt::Display) -> RepoError {
    RepoError(format!("{context}: {e}"))
}

/// Bytes of decompressed pack objects kept while reading a push.
const PACK_CACHE: usize = 64 << 20;

/// What to read beyond actions and commits: the tree diffs are the costly part.
#[derive(Debug, Clone, Copy, Default)]
pub struct Want {
    pub files: bool,
    /// Read the size of each new blob; for blobs above this many bytes, also whether the
    /// repository had them before (size limits are about new blobs).
    pub blob_sizes: Option<u64>,
    /// The tip commit of each change, with its files (for `github` payloads).
    pub heads: bool,
    /// The refs symbolic refs point at (their rules judge a push to the symbolic ref).
    pub aliases: bool,
}

/// An open repository, seeing the objects of a push still in quarantine.
pub struct GitRepo {
    repo: gix::Repository,
    /// The objects from before the push, when the push is in quarantine.
    main_objects: Option<gix::OdbHandle>,
    /// The commit-graph of the real objects directory, when there is one: gix looks for it
    /// next to the object store, which is the quarantine overlay in pre-receive.
    graph: Option<gix::commitgraph::Graph>,
    /// Kept alive: the object store reads through it.
    _quarantine: Option<quarantine::Overlay>,
}

impl GitRepo {
    pub fn open(git_dir: &Path, quarantine: &Quarantine) -> Result<GitRepo, RepoError> {
        let mut repo = gix::open_opts(git_dir, gix::open::Options::isolated())
            .map_err(|e| fail(format_args!("cannot open repository {}", git_dir.display()), e))?;
        let objects_dir = repo.objects.store_ref().path().to_path_buf();
        let overlay =
            quarantine.overlay(&objects_dir, git_dir).map_err(|e| fail("cannot see quarantined objects", e))?;
        // A hook never waits for objects to appear: no re-scan of the object dirs on a miss.
        repo.objects.refresh_never();
        let main_objects = overlay.as_ref().map(|_| repo.objects.clone());
        if let Some(overlay) = &overlay {
            let handle = gix::odb::at(overlay.objects_dir(), repo.object_hash())
                .map_err(|e| fail("cannot open quarantined objects", e))?;
            repo.objects = gix::odb::memory::Proxy::new(handle, repo.object_hash()).with_write_passthrough();
            repo.objects.refresh_never();
        }
        repo.object_cache_size_if_unset(4 << 20);
        // Without a pack cache every tree read decompresses its whole delta chain again:
        // half of a 1000-commit push's time went there.
        repo.objects.set_pack_cache(|| Box::new(gix::odb::pack::cache::lru::MemoryCappedHashmap::new(PACK_CACHE)));
        let graph = gix::commitgraph::Graph::at(&objects_dir.join("info"), repo.object_hash(), None).ok();
        Ok(GitRepo { repo, main_objects, graph, _quarantine: overlay })
    }

    /// The branch HEAD names, if it names one.
    fn default_branch(&self) -> Option<String> {
        let name = self.repo.head_name().ok()??;
        name.as_bstr().to_str().ok()?.strip_prefix("refs/heads/").map(str::to_string)
    }

    /// Whether a blob of this push was in the repository before it: known exactly while the
    /// push is in quarantine (the main store has it), else only for a mode change.
    fn had_before(&self, oid: ObjectId, previous: Option<ObjectId>) -> bool {
        use gix::objs::Exists;
        previous == Some(oid) || self.main_objects.as_ref().is_some_and(|main| main.exists(&oid))
    }

    /// Read what each update does. The hidden set is the same for every update: the old
    /// value of every touched ref and every ref the push does not touch. That is right in
    /// pre-receive (refs not moved yet) and in post-receive (refs already moved).
    ///
    /// `whole` is the whole push `updates` belong to (the update hook decides one ref of
    /// it, after git has already moved the refs before it). `refs`, when given, are the refs
    /// as they were right after the push (an event rebuilt later must not see later pushes).
    pub fn read_push(
        &self,
        updates: &[RefUpdate],
        whole: &[RefUpdate],
        refs: Option<&[(String, ObjectId)]>,
        want: Want,
    ) -> Result<Push, RepoError> {
        let touched: HashSet<&str> = updates.iter().chain(whole).map(|u| u.name.as_str()).collect();
        let mut hidden: HashSet<ObjectId> = HashSet::new();
        let refs = match refs {
            Some(refs) => refs.to_vec(),
            None => self.refs()?,
        };
        for (name, target) in refs {
            if !touched.contains(name.as_str()) {
                hidden.extend(self.peel_to_commit(target)?);
            }
        }
        for update in updates.iter().chain(whole).filter(|u| !u.old.is_null()) {
            hidden.extend(self.peel_to_commit(update.old)?);
        }
        // Each new value, peeled through tags once: a commit, or what else it is.
        let mut peeled = Vec::with_capacity(updates.len());
        for update in updates.iter().filter(|u| !u.new.is_null()) {
            peeled.push(self.peel(update.new)?);
        }
        let commit_tips = peeled.iter().filter(|(_, kind)| *kind == gix::object::Kind::Commit);
        let new_commits = self.walk_new(commit_tips.map(|(id, _)| *id).collect(), hidden)?;

        let mut files_by_commit: HashMap<ObjectId, Vec<FileChange>> = HashMap::new();
        let mut changes = Vec::with_capacity(updates.len());
        let mut peeled = peeled.into_iter();
        for update in updates {
            let target = if update.new.is_null() { None } else { peeled.next() };
            let tip = target.filter(|(_, kind)| *kind == gix::object::Kind::Commit).map(|(id, _)| id);
            let action = match update.obvious_action() {
                Some(action) => action,
                None => self.ancestry_action(update)?,
            };
            let ids = tip.map(|tip| oldest_first(tip, &new_commits)).unwrap_or_default();
            let read_files = want.files || want.blob_sizes.is_some();
            let mut commits = Vec::with_capacity(ids.len());
            for id in ids {
                commits.push(self.commit(id, read_files, want.blob_sizes, &mut files_by_commit)?);
            }
            let head = match tip {
                Some(tip) if want.heads => match commits.last() {
                    Some(last) if last.id == tip => Some(last.clone()),
                    _ => Some(self.commit(tip, true, want.blob_sizes, &mut files_by_commit)?),
                },
                _ => None,
            };
            let non_commit = target.filter(|_| tip.is_none()).map(|(_, kind)| kind_name(kind));
            // A symbolic ref exists before it is pushed to: creates need no look-up.
            let aliases = match want.aliases && !update.old.is_null() {
                true => self.symref_target(&update.name).into_iter().collect(),
                false => Vec::new(),
            };
            changes.push(Change { update: update.clone(), action, commits, head, non_commit, aliases });
        }
        Ok(Push { changes, default_branch: self.default_branch() })
    }

    /// Every direct ref with the object it names (symbolic refs resolve to direct ones).
    pub fn refs(&self) -> Result<Vec<(String, ObjectId)>, RepoError> {
        let platform = self.repo.references().map_err(|e| fail("cannot read refs", e))?;
        let iter = platform.all().map_err(|e| fail("cannot read refs", e))?;
        let mut out = Vec::new();
        for reference in iter {
            let reference = reference.map_err(|e| fail("cannot read a ref", e))?;
            if let Some(id) = reference.target().try_id() {
                out.push((reference.name().as_bstr().to_str_lossy().into_owned(), id.to_owned()));
            }
        }
        Ok(out)
    }

    /// The commit an object stands for, through annotated tags; `None` for trees and blobs.
    fn peel_to_commit(&self, id: ObjectId) -> Result<Option<ObjectId>, RepoError> {
        let (id, kind) = self.peel(id)?;
        Ok((kind == gix::object::Kind::Commit).then_some(id))
    }

    /// The object an id stands for through annotated tags, and its kind.
    fn peel(&self, mut id: ObjectId) -> Result<(ObjectId, gix::object::Kind), RepoError> {
        for _ in 0..32 {
            let header = self.repo.find_header(id).map_err(|e| fail(format_args!("cannot read object {id}"), e))?;
            if header.kind() != gix::object::Kind::Tag {
                return Ok((id, header.kind()));
            }
            let tag = self.repo.find_object(id).map_err(|e| fail(format_args!("cannot read tag {id}"), e))?;
            let tag = tag.try_into_tag().map_err(|e| fail(format_args!("cannot read tag {id}"), e))?;
            id = tag.target_id().map_err(|e| fail(format_args!("cannot decode tag {id}"), e))?.detach();
        }
        Err(RepoError(format!("tag chain at {id} is too long")))
    }

    /// The ref a symbolic ref under `refs/` points at, if `name` is one.
    fn symref_target(&self, name: &str) -> Option<String> {
        let reference = self.repo.try_find_reference(name).ok()??;
        match reference.target() {
            gix::refs::TargetRef::Symbolic(target) => Some(target.as_bstr().to_str_lossy().into_owned()),
            gix::refs::TargetRef::Object(_) => None,
        }
    }

    /// Commits reachable from `tips` and from none of `hidden`, with their parents.
    fn walk_new(
        &self,
        tips: Vec<ObjectId>,
        hidden: HashSet<ObjectId>,
    ) -> Result<HashMap<ObjectId, Vec<ObjectId>>, RepoError> {
        let mut new = HashMap::new();
        let tips: Vec<ObjectId> =
            tips.into_iter().filter(|t| !hidden.contains(t)).collect::<HashSet<_>>().into_iter().collect();
        if tips.is_empty() {
            return Ok(new);
        }
        if let Some(graph) = &self.graph {
            let mut commits = GraphCommits { graph, objects: &self.repo.objects, buf: Vec::new() };
            return walk::new_commits(&mut commits, &tips, &hidden).map_err(|e| fail("cannot walk the new commits", e));
        }
        // Without a commit-graph there are no generation numbers to stop early on.
        let walk =
            self.repo.rev_walk(tips).with_hidden(hidden).all().map_err(|e| fail("cannot walk the new commits", e))?;
        for info in walk {
            let info = info.map_err(|e| fail("cannot walk the new commits", e))?;
            new.insert(info.id, info.parent_ids.to_vec());
        }
        Ok(new)
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

    /// A commit with, when asked, the files it changes (cached: several updates of one push
    /// may share commits).
    fn commit(
        &self,
        id: ObjectId,
        with_files: bool,
        sizes: Option<u64>,
        files_by_commit: &mut HashMap<ObjectId, Vec<FileChange>>,
    ) -> Result<Commit, RepoError> {
        let object = self.repo.find_commit(id).map_err(|e| fail(format_args!("cannot read commit {id}"), e))?;
        let decoded = object.decode().map_err(|e| fail(format_args!("cannot decode commit {id}"), e))?;
        let parents: Vec<ObjectId> = decoded.parents().collect();
        let files = match files_by_commit.get(&id) {
            Some(files) => files.clone(),
            None if with_files => {
                let files = self.changed_files(id, parents.first().copied(), sizes)?;
                files_by_commit.insert(id, files.clone());
                files
            }
            None => Vec::new(),
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
        })
    }

    /// The files `id` changes against its first parent (against nothing for a root).
    fn changed_files(
        &self,
        id: ObjectId,
        parent: Option<ObjectId>,
        sizes: Option<u64>,
    ) -> Result<Vec<FileChange>, RepoError> {
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
        let old_tree = parent.map(|p| tree_of(p, &mut buf)).transpose()?;
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
        let mut recorder = gix::diff::tree::Recorder::default();
        gix::diff::tree(old_iter, new_iter, gix::diff::tree::State::default(), objects, &mut recorder)
            .map_err(|e| fail(format_args!("cannot diff commit {id}"), e))?;

        let mut files = Vec::new();
        for change in recorder.records {
            use gix::diff::tree::recorder::Change as C;
            let (path, kind, mode, oid, previous) = match change {
                C::Addition { path, entry_mode, oid, .. } => (path, FileKind::Added, entry_mode, oid, None),
                C::Deletion { path, entry_mode, oid, .. } => (path, FileKind::Removed, entry_mode, oid, None),
                C::Modification { path, entry_mode, oid, previous_oid, .. } => {
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
                // Asking the old store is a miss for most new blobs: only for the big ones.
                let preexisting = sizes.is_some_and(|limit| size > limit) && self.had_before(oid, previous);
                Some(Blob { id: oid, size, preexisting })
            } else {
                None
            };
            files.push(FileChange { path: path.into(), kind, blob });
        }
        Ok(files)
    }
}

/// Commits as the walk needs them: from the commit-graph when it has them, else from the
/// objects (the pushed commits, and anything since the graph was written).
struct GraphCommits<'a> {
    graph: &'a gix::commitgraph::Graph,
    objects: &'a gix::OdbHandle,
    buf: Vec<u8>,
}

impl walk::Commits for GraphCommits<'_> {
    fn lookup(&mut self, id: ObjectId) -> Result<(walk::Key, Vec<ObjectId>), String> {
        if let Some(commit) = self.graph.commit_by_id(id) {
            let key = (u64::from(commit.generation()), commit.committer_timestamp() as i64);
            let parents: Result<Vec<ObjectId>, String> = commit
                .iter_parents()
                .map(|p| p.map(|pos| self.graph.id_at(pos).to_owned()).map_err(|e| e.to_string()))
                .collect();
            return Ok((key, parents?));
        }
        let commit = self.objects.find_commit(&id, &mut self.buf).map_err(|e| format!("commit {id}: {e}"))?;
        let time = commit.committer().ok().and_then(|c| c.time().ok()).map_or(0, |t| t.seconds);
        Ok(((u64::MAX, time), commit.parents().collect()))
    }
}

fn kind_name(kind: gix::object::Kind) -> &'static str {
    match kind {
        gix::object::Kind::Tree => "tree",
        gix::object::Kind::Blob => "blob",
        gix::object::Kind::Commit => "commit",
        gix::object::Kind::Tag => "tag",
    }
}

fn person(signature: Option<gix::actor::SignatureRef<'_>>) -> Person {
    let Some(signature) = signature else {
        return Person::default();
    };
    let signature = signature.trim();
    let time = signature.time().unwrap_or_default();
    Person {
        name: signature.name.to_str_lossy().into_owned(),
        email: signature.email.to_str_lossy().into_owned(),
        time: time.seconds,
        offset: time.offset,
    }
}

/// The new commits reachable from `tip`, parents before children (oldest first), by an
/// iterative depth-first walk that stays inside the new commits.
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
}
