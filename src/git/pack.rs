//! The pushed pack: every object git keeps in quarantine during pre-receive, referenced by
//! a commit or not. `[limits] max_blob_size` applies to all of its blobs, so a big blob
//! cannot be smuggled in unreferenced and used by a later, small push.

use super::{GitRepo, RepoError, fail};
use gix::ObjectId;

impl GitRepo {
    /// The blobs in quarantine bigger than `limit`, with their sizes, in id order. Empty
    /// outside pre-receive (nothing is in quarantine).
    pub fn pushed_blobs_over(&self, limit: u64) -> Result<Vec<(ObjectId, u64)>, RepoError> {
        let Some(dir) = &self.quarantine_dir else { return Ok(Vec::new()) };
        let hash = self.repo.object_hash();
        let mut ids = Vec::new();
        for id in gix::odb::loose::Store::at(dir, hash).iter() {
            ids.push(id.map_err(|e| fail("cannot list the pushed objects", e))?);
        }
        let packs = std::fs::read_dir(dir.join("pack")).into_iter().flatten().flatten();
        for entry in packs.filter(|e| e.path().extension().is_some_and(|x| x == "idx")) {
            let index = gix::odb::pack::index::File::at(entry.path(), hash)
                .map_err(|e| fail(format_args!("cannot read the pushed pack {}", entry.path().display()), e))?;
            ids.extend(index.iter().map(|e| e.oid));
        }
        ids.sort();
        ids.dedup();
        let mut over = Vec::new();
        for id in ids {
            let header = self.repo.find_header(id).map_err(|e| fail(format_args!("cannot read object {id}"), e))?;
            if header.kind() == gix::object::Kind::Blob && header.size() > limit {
                over.push((id, header.size()));
            }
        }
        Ok(over)
    }
}
