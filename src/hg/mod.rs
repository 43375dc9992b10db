//! Reading a Mercurial push from what pushgate's hg shim (`hooks-templates/pushgate_hg.py`,
//! run inside the hg process that serves the push) gathers with Mercurial's own API: the
//! state before and after the transaction, the changesets each ref brings, ancestry, the
//! files each changeset writes. Turning that into a [`Push`] is pure: no `hg` process here.

pub mod state;

use crate::push::{self, Action, Blob, Change, Commit, FileChange, FileKind, Person, Push};
use crate::text::shown;
use base64::Engine;
use gix::ObjectId;
use serde::Deserialize;
use state::{Named, Snapshot};
use std::collections::{BTreeMap, HashMap, HashSet};

/// Bytes from hg as JSON: text when they are UTF-8, else base64.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum HgText {
    Text(String),
    Bytes { b64: String },
}

impl HgText {
    pub fn bytes(&self) -> Vec<u8> {
        match self {
            HgText::Text(text) => text.clone().into_bytes(),
            HgText::Bytes { b64 } => base64::engine::general_purpose::STANDARD.decode(b64).unwrap_or_default(),
        }
    }

    pub fn lossy(&self) -> String {
        String::from_utf8_lossy(&self.bytes()).into_owned()
    }

    /// As a path (hg's paths are bytes).
    pub fn path(&self) -> std::path::PathBuf {
        use std::os::unix::ffi::OsStringExt;
        std::ffi::OsString::from_vec(self.bytes()).into()
    }
}

/// `pushgate.hg-push/1`: what the shim hands `pushgate hg pretxnclose`.
#[derive(Debug, Deserialize)]
pub struct Document {
    pub schema: String,
    pub txn_id: HgText,
    /// The repository's root (the hook's working directory is the pusher's, locally).
    pub root: HgText,
    pub before: Vec<NamedJson>,
    pub after: Vec<NamedJson>,
    /// Per ref that moved: the changesets it brings (`::after - ::before`; for a create,
    /// minus what the default branch had), in revision order.
    pub brought: BTreeMap<String, Vec<String>>,
    /// `[old, new]` pairs of a ref's old and new nodes where old is an ancestor of new.
    pub ancestors: Vec<[String; 2]>,
    pub changesets: Vec<ChangesetJson>,
    /// How many changesets the transaction adds.
    pub added: usize,
}

#[derive(Debug, Deserialize)]
pub struct NamedJson {
    pub node: String,
    pub head: bool,
    pub closed: bool,
    pub branch: HgText,
    pub bookmarks: Vec<HgText>,
    pub tags: Vec<HgText>,
}

#[derive(Debug, Deserialize)]
pub struct ChangesetJson {
    pub node: String,
    pub branch: HgText,
    pub parents: Vec<String>,
    pub user: HgText,
    /// `[unix seconds, offset west of UTC in seconds]`.
    pub date: (f64, i64),
    pub desc: HgText,
    pub manifest: Option<String>,
    pub files: Vec<FileJson>,
}

#[derive(Debug, Deserialize)]
pub struct FileJson {
    pub path: HgText,
    pub kind: String,
    pub size: u64,
    /// The changeset brings this content (not a rename, not a merge's second parent's).
    pub adds: bool,
}

/// Which of `changes` landed in the repository at `root`, for a record whose txnclose never
/// came: a branch or tag whose new changeset exists, a bookmark that points where the push
/// put it. Run only by a deliverer resolving such a record (two `hg` processes).
pub fn landed(root: &std::path::Path, changes: &[crate::event::Change]) -> Result<Vec<bool>, String> {
    let hg = |args: &[&str]| -> Result<String, String> {
        let out = std::process::Command::new("hg")
            .arg("-R")
            .arg(root)
            .args(args)
            .env("HGPLAIN", "1")
            .output()
            .map_err(|e| format!("cannot run hg: {e}"))?;
        if !out.status.success() {
            return Err(format!("hg {} failed: {}", args[0], String::from_utf8_lossy(&out.stderr).trim()));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    };
    let zero = |id: &str| id.bytes().all(|b| b == b'0');
    let wanted: Vec<String> = changes
        .iter()
        .filter(|c| !zero(&c.after))
        .map(|c| hex(&c.after).map(|h| format!("present({h})")))
        .collect::<Result<_, _>>()?;
    let present: HashSet<String> = match wanted.is_empty() {
        true => HashSet::new(),
        false => hg(&["log", "-r", &wanted.join(" or "), "-T", "{node}\\n"])?.lines().map(str::to_string).collect(),
    };
    let bookmarks: HashMap<String, String> = hg(&["bookmarks", "-T", "{bookmark}\\0{node}\\n"])?
        .lines()
        .filter_map(|l| l.split_once('\0').map(|(b, n)| (b.to_string(), n.to_string())))
        .collect();
    Ok(changes
        .iter()
        .map(|c| match c.name.strip_prefix("refs/bookmarks/") {
            Some(name) => bookmarks.get(name).map_or(zero(&c.after), |node| *node == c.after),
            None => zero(&c.after) || present.contains(&c.after),
        })
        .collect())
}

/// Parse the shim's document.
pub fn parse_document(bytes: &[u8]) -> Result<Document, String> {
    let document: Document =
        serde_json::from_slice(bytes).map_err(|e| format!("cannot read what the hg hook gathered: {e}"))?;
    if document.schema != "pushgate.hg-push/1" {
        return Err(format!("unknown hg hook document {}", shown(&document.schema)));
    }
    Ok(document)
}

/// The push a document describes. Names that would not make valid ref names refuse it.
pub fn read_push(document: &Document) -> Result<Push, String> {
    let named = |list: &[NamedJson]| -> Result<Vec<Named>, String> { list.iter().map(named).collect() };
    let old = Snapshot::from_named(&named(&document.before)?);
    let new = Snapshot::from_named(&named(&document.after)?);
    let forward: HashSet<(&str, &str)> =
        document.ancestors.iter().map(|[old, new]| (old.as_str(), new.as_str())).collect();
    let changesets: HashMap<&str, &ChangesetJson> = document.changesets.iter().map(|c| (c.node.as_str(), c)).collect();
    let mut changes = Vec::new();
    for moved in state::moved(&old, &new) {
        let name = &moved.update.name;
        push::check_ref_name(name).map_err(|e| format!("{} is not a valid ref name: it {e}", shown(name)))?;
        let action = moved.action.unwrap_or_else(|| {
            let (before, after) = (moved.update.old.to_string(), moved.update.new.to_string());
            if forward.contains(&(before.as_str(), after.as_str())) { Action::Update } else { Action::Force }
        });
        let brought = match (document.brought.get(name), moved.update.new.is_null()) {
            (Some(nodes), _) => nodes.as_slice(),
            (None, true) => &[],
            (None, false) => return Err(format!("the hg hook did not say what {} brings", shown(name))),
        };
        let mut commits = Vec::with_capacity(brought.len());
        for node in brought {
            let changeset = changesets
                .get(node.as_str())
                .ok_or_else(|| format!("the hg hook did not describe changeset {}", shown(node)))?;
            commits.push(commit(changeset)?);
        }
        let head = commits.iter().find(|c| c.id == moved.update.new).cloned();
        changes.push(Change { update: moved.update, action, commits, head, non_commit: None, aliases: Vec::new() });
    }
    Ok(Push { changes, default_branch: Some("default".into()), pushed_blobs: Vec::new() })
}

fn named(json: &NamedJson) -> Result<Named, String> {
    Ok(Named {
        node: hex(&json.node)?.to_string(),
        head: json.head,
        closed: json.closed,
        branch: json.branch.lossy(),
        bookmarks: json.bookmarks.iter().map(HgText::lossy).collect(),
        tags: json.tags.iter().map(HgText::lossy).collect(),
    })
}

/// A 40-hex node.
fn hex(node: &str) -> Result<&str, String> {
    if node.len() == 40 && node.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(node)
    } else {
        Err(format!("{} is not a changeset id", shown(node)))
    }
}

fn id(node: &str) -> Result<ObjectId, String> {
    ObjectId::from_hex(hex(node)?.to_ascii_lowercase().as_bytes()).map_err(|e| e.to_string())
}

fn commit(changeset: &ChangesetJson) -> Result<Commit, String> {
    let this = id(&changeset.node)?;
    let person = person(&changeset.user.lossy(), changeset.date);
    let mut files = Vec::with_capacity(changeset.files.len());
    for file in &changeset.files {
        let kind = match file.kind.as_str() {
            "added" => FileKind::Added,
            "modified" => FileKind::Modified,
            "removed" => FileKind::Removed,
            other => return Err(format!("unknown file change {}", shown(other))),
        };
        // hg has no blob ids: the changeset stands in, with the file's size.
        let blob = (kind != FileKind::Removed).then_some(Blob { id: this, size: file.size, added: file.adds });
        files.push(FileChange { path: file.path.bytes(), kind, blob });
    }
    let parents: Result<Vec<ObjectId>, String> = changeset.parents.iter().map(|p| id(p)).collect();
    Ok(Commit {
        id: this,
        tree: changeset
            .manifest
            .as_deref()
            .map(id)
            .transpose()?
            .unwrap_or_else(|| ObjectId::null(gix::hash::Kind::Sha1)),
        parents: parents?.into_iter().filter(|p| !p.is_null()).collect(),
        author: person.clone(),
        committer: person,
        message: changeset.desc.lossy(),
        signed: false,
        files,
        distinct: true,
        refused_entries: Vec::new(),
    })
}

/// hg's `user` (`Name <email>`, or anything) and `date` (offset west of UTC).
fn person(user: &str, (seconds, west): (f64, i64)) -> Person {
    let (name, email) = match (user.find('<'), user.rfind('>')) {
        (Some(open), Some(close)) if open < close => (user[..open].trim(), &user[open + 1..close]),
        _ if user.contains('@') => ("", user.trim()),
        _ => (user.trim(), ""),
    };
    let offset = west.saturating_neg().clamp(-86_400, 86_400) as i32;
    Person { name: name.to_string(), email: email.to_string(), time: seconds as i64, offset }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(c: char) -> String {
        c.to_string().repeat(40)
    }

    fn document(before: &str, after: &str, brought: &str, ancestors: &str) -> Document {
        let text = format!(
            r#"{{"schema": "pushgate.hg-push/1", "txn_id": "t", "root": "/r", "before": {before}, "after": {after},
                "brought": {brought}, "ancestors": {ancestors}, "added": 1,
                "changesets": [{{"node": "{b}", "branch": "default", "parents": ["{a}"], "user": "Al <al@x.org>",
                    "date": [10.0, -3600], "desc": "fix: it", "manifest": "{c}",
                    "files": [{{"path": "deploy/x", "kind": "added", "size": 3, "adds": true}},
                              {{"path": {{"b64": "/w=="}}, "kind": "removed", "size": 0, "adds": false}}]}}]}}"#,
            a = node('a'),
            b = node('b'),
            c = node('c'),
        );
        parse_document(text.as_bytes()).unwrap()
    }

    fn head(n: char, branch: &str, bookmarks: &str) -> String {
        format!(
            r#"{{"node": "{}", "head": true, "closed": false, "branch": "{branch}", "bookmarks": {bookmarks}, "tags": []}}"#,
            node(n)
        )
    }

    #[test]
    fn a_branch_moving_forward_brings_its_changesets() {
        let doc = document(
            &format!("[{}]", head('a', "default", "[]")),
            &format!("[{}]", head('b', "default", "[]")),
            &format!(r#"{{"refs/heads/default": ["{}"]}}"#, node('b')),
            &format!(r#"[["{}", "{}"]]"#, node('a'), node('b')),
        );
        let push = read_push(&doc).unwrap();
        let [change] = &push.changes[..] else { panic!("one change") };
        assert_eq!((change.update.name.as_str(), change.action), ("refs/heads/default", Action::Update));
        let commit = &change.commits[0];
        assert_eq!((commit.author.email.as_str(), commit.author.offset), ("al@x.org", 3600));
        assert_eq!(commit.files[0].path, b"deploy/x");
        assert_eq!(commit.files[1].path, [0xff]);
        assert!(change.head.is_some());
    }

    #[test]
    fn a_new_tip_that_does_not_descend_is_a_force_and_bad_names_refuse() {
        let doc = document(
            &format!("[{}]", head('a', "default", "[]")),
            &format!("[{}]", head('b', "default", "[]")),
            &format!(r#"{{"refs/heads/default": ["{}"]}}"#, node('b')),
            "[]",
        );
        assert_eq!(read_push(&doc).unwrap().changes[0].action, Action::Force);
        let bad = document(
            "[]",
            &format!("[{}]", head('b', "x/../default", "[]")),
            &format!(r#"{{"refs/heads/x/../default": ["{}"]}}"#, node('b')),
            "[]",
        );
        assert!(read_push(&bad).unwrap_err().contains("not a valid ref name"), "{:?}", read_push(&bad));
    }

    #[test]
    fn what_the_hook_left_out_is_an_error_not_a_pass() {
        let doc = document("[]", &format!("[{}]", head('b', "default", "[]")), "{}", "[]");
        assert!(read_push(&doc).unwrap_err().contains("did not say what"));
        assert!(parse_document(br#"{"schema": "other"}"#).is_err());
    }

    #[test]
    fn users_split_into_name_and_email() {
        assert_eq!(
            person("Al Ice <al@x.org>", (10.0, -3600)),
            Person { name: "Al Ice".into(), email: "al@x.org".into(), time: 10, offset: 3600 }
        );
        assert_eq!(person("al@x.org", (0.0, 0)).email, "al@x.org");
        assert_eq!(person("al", (0.0, 0)).name, "al");
    }
}
