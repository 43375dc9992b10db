//! Reading a push from a Git repository with gix: the action of each update, the commits it
//! brings to its ref, the paths they change, the sizes of the blobs they add, the refs that
//! symbolic refs point at, and the blobs of the pushed pack. No `git` subprocess.

mod diff;
mod pack;
mod quarantine;
mod read;
mod walk;

pub use quarantine::Quarantine;
pub use read::Want;

use crate::push::Person;
use gix::ObjectId;
use gix::bstr::ByteSlice;
use gix::prelude::FindExt;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct RepoError(String);

fn fail(context: impl std::fmt::Display, e: impl std::fmt::Display) -> RepoError {
    RepoError(format!("{context}: {e}"))
}

/// Bytes of decompressed pack objects kept while reading a push.
const PACK_CACHE: usize = 64 << 20;

/// An open repository, seeing the objects of a push still in quarantine.
pub struct GitRepo {
    repo: gix::Repository,
    /// Where git keeps the pushed objects until pre-receive accepts them.
    quarantine_dir: Option<PathBuf>,
    /// The commit-graph of the real objects directory, when there is one: gix looks for it
    /// next to the object store, which is the quarantine overlay in pre-receive.
    graph: Option<gix::commitgraph::Graph>,
    /// Kept alive: the object store reads through it.
    _quarantine: Option<quarantine::Overlay>,
}

/// The refs of a repository: direct ones with what they name, symbolic ones with the ref
/// they point at (which need not exist).
#[derive(Debug, Clone, Default)]
pub struct Refs {
    pub direct: Vec<(String, ObjectId)>,
    pub symbolic: HashMap<String, String>,
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
        let quarantine_dir = overlay.as_ref().and(quarantine.object_dir());
        Ok(GitRepo { repo, quarantine_dir, graph, _quarantine: overlay })
    }

    /// The full name of the branch HEAD names (`refs/heads/main`), born or not.
    fn head_ref(&self) -> Option<String> {
        let name = self.repo.head_name().ok()??;
        name.as_bstr().to_str().ok().map(str::to_string)
    }

    /// Every ref under `refs/`: direct ones with their targets, symbolic ones with theirs.
    pub fn refs(&self) -> Result<Refs, RepoError> {
        let platform = self.repo.references().map_err(|e| fail("cannot read refs", e))?;
        let iter = platform.all().map_err(|e| fail("cannot read refs", e))?;
        let mut refs = Refs::default();
        for reference in iter {
            let reference = match reference {
                Ok(reference) => reference,
                // Deleted by another push between the listing and the read: it is not there.
                Err(e) if vanished(&e) => continue,
                Err(e) => return Err(fail("cannot read a ref", e)),
            };
            let name = reference.name().as_bstr().to_str_lossy().into_owned();
            match reference.target() {
                gix::refs::TargetRef::Object(id) => refs.direct.push((name, id.to_owned())),
                gix::refs::TargetRef::Symbolic(target) => {
                    refs.symbolic.insert(name, target.as_bstr().to_str_lossy().into_owned());
                }
            }
        }
        Ok(refs)
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

    /// The message of the annotated tag `id` is; `None` when it is not a tag.
    fn tag_message(&self, id: ObjectId) -> Result<Option<String>, RepoError> {
        let header = self.repo.find_header(id).map_err(|e| fail(format_args!("cannot read object {id}"), e))?;
        if header.kind() != gix::object::Kind::Tag {
            return Ok(None);
        }
        let tag = self.repo.find_object(id).map_err(|e| fail(format_args!("cannot read tag {id}"), e))?;
        let tag = tag.try_into_tag().map_err(|e| fail(format_args!("cannot read tag {id}"), e))?;
        let decoded = tag.decode().map_err(|e| fail(format_args!("cannot decode tag {id}"), e))?;
        Ok(Some(decoded.message.to_str_lossy().into_owned()))
    }

    /// The commits the walks need, from the commit-graph when it has them, else from the
    /// objects; each looked up once however many walks ask.
    fn commit_source(&self) -> GraphCommits<'_> {
        GraphCommits { graph: self.graph.as_ref(), objects: &self.repo.objects, buf: Vec::new(), seen: HashMap::new() }
    }
}

/// Commits as the walk needs them: from the commit-graph when it has them, else from the
/// objects (the pushed commits, and anything since the graph was written).
struct GraphCommits<'a> {
    graph: Option<&'a gix::commitgraph::Graph>,
    objects: &'a gix::OdbHandle,
    buf: Vec<u8>,
    seen: HashMap<ObjectId, (walk::Key, Vec<ObjectId>)>,
}

impl GraphCommits<'_> {
    fn read(&mut self, id: ObjectId) -> Result<(walk::Key, Vec<ObjectId>), String> {
        if let Some(commit) = self.graph.and_then(|g| g.commit_by_id(id).map(|c| (g, c))) {
            let (graph, commit) = commit;
            let key = (u64::from(commit.generation()), commit.committer_timestamp() as i64);
            let parents: Result<Vec<ObjectId>, String> = commit
                .iter_parents()
                .map(|p| p.map(|pos| graph.id_at(pos).to_owned()).map_err(|e| e.to_string()))
                .collect();
            return Ok((key, parents?));
        }
        let commit = self.objects.find_commit(&id, &mut self.buf).map_err(|e| format!("commit {id}: {e}"))?;
        let time = commit.committer().ok().and_then(|c| c.time().ok()).map_or(0, |t| t.seconds);
        Ok(((u64::MAX, time), commit.parents().collect()))
    }
}

impl walk::Commits for GraphCommits<'_> {
    fn lookup(&mut self, id: ObjectId) -> Result<(walk::Key, Vec<ObjectId>), String> {
        if let Some(known) = self.seen.get(&id) {
            return Ok(known.clone());
        }
        let found = self.read(id)?;
        self.seen.insert(id, found.clone());
        Ok(found)
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

/// Whether an error comes from a file that is no longer there.
fn vanished(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(error) = cause {
        if error.downcast_ref::<std::io::Error>().is_some_and(|io| io.kind() == std::io::ErrorKind::NotFound) {
            return true;
        }
        cause = error.source();
    }
    false
}
