//! Reading a Mercurial push through `hg` itself (`hg log -T ...`), never by parsing the
//! store. A push costs a bounded number of `hg` processes whatever its size: the state
//! before, the pending state, the new changesets (and, when a size limit is set, which of
//! their files are too big, plus the sizes of at most a screenful of them).

pub mod state;

use crate::push::{Action, Blob, Change, Commit, FileChange, FileKind, Person, Push};
use gix::ObjectId;
use serde::Deserialize;
use state::{Changeset, Named, Snapshot};
use std::collections::{HashMap, HashSet};
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;

/// How many oversized files get their exact size read (one `hg` process each).
const MAX_SIZED: usize = 20;

/// A repository and the `HG_PENDING` value that shows its open transaction.
pub struct HgRepo {
    root: PathBuf,
    pending: Option<OsString>,
}

/// A new changeset as `hg log -T json(...)` shows it.
#[derive(Debug, Deserialize)]
pub struct Logged {
    node: String,
    branch: String,
    parents: Vec<String>,
    user: String,
    /// `[unix seconds, offset west of UTC in seconds]`.
    date: (f64, i64),
    desc: String,
    manifest: Option<String>,
    file_adds: Vec<String>,
    file_mods: Vec<String>,
    file_dels: Vec<String>,
}

const NAMED_TEMPLATE: &str = concat!(
    "{node} {ifcontains(rev, revset('head()'), 'h', '-')} {ifcontains(rev, revset('closed()'), 'c', '-')} ",
    "{branch|json} {bookmarks|json} {tags|json}\\n"
);
const NEW_TEMPLATE: &str = "json(node,branch,parents,user,date,desc,manifest,file_adds,file_mods,file_dels)";

impl HgRepo {
    pub fn new(root: &Path, pending: Option<OsString>) -> HgRepo {
        HgRepo { root: root.to_path_buf(), pending: pending.filter(|p| !p.is_empty()) }
    }

    /// Run `hg` in the repository; `pending` shows the open transaction.
    fn hg(&self, pending: bool, args: &[&str]) -> Result<Vec<u8>, String> {
        let mut command = Command::new("hg");
        command.arg("-R").arg(&self.root).args(args).current_dir(&self.root).env("HGPLAIN", "1");
        match (&self.pending, pending) {
            (Some(value), true) => command.env("HG_PENDING", value),
            _ => command.env_remove("HG_PENDING"),
        };
        let output = command.output().map_err(|e| format!("cannot run hg: {e}"))?;
        if !output.status.success() {
            let stderr = String::from_utf8_lossy(&output.stderr);
            return Err(format!("hg {} failed: {}", args.first().unwrap_or(&""), stderr.lines().next().unwrap_or("")));
        }
        Ok(output.stdout)
    }

    fn snapshot(&self, pending: bool) -> Result<Snapshot, String> {
        let out = self.hg(pending, &["log", "-r", "head() or bookmark() or tag()", "-T", NAMED_TEMPLATE])?;
        let text = String::from_utf8_lossy(&out);
        let named: Result<Vec<Named>, String> = text.lines().filter(|l| !l.is_empty()).map(parse_named).collect();
        Ok(Snapshot::from_named(&named?))
    }

    /// Read the push that the open transaction makes: `first..=last` are the changesets it
    /// adds (`HG_NODE`, `HG_NODE_LAST`), if any.
    pub fn read_push(&self, added: Option<(&str, &str)>, size_limit: Option<u64>) -> Result<Push, String> {
        let old = self.snapshot(false)?;
        let new = self.snapshot(true)?;
        let moved = state::moved(&old, &new);
        let logged = match added {
            Some((first, last)) => {
                let (first, last) = (hex(first)?, hex(last)?);
                let out = self.hg(true, &["log", "-r", &format!("{first}:{last}"), "-T", NEW_TEMPLATE])?;
                parse_changesets(&out)?
            }
            None => Vec::new(),
        };
        let big = match (size_limit, added) {
            (Some(limit), Some((first, last))) if !logged.is_empty() => self.big_files(first, last, limit, &logged)?,
            _ => HashMap::new(),
        };
        let undecided: Vec<(String, String)> = moved
            .iter()
            .filter(|m| m.action.is_none())
            .map(|m| (m.update.old.to_string(), m.update.new.to_string()))
            .collect();
        let fast_forwards = self.ancestors_among(&undecided)?;

        let graph: Vec<Changeset> = logged
            .iter()
            .map(|l| Changeset { node: l.node.clone(), branch: l.branch.clone(), parents: l.parents.clone() })
            .collect();
        let commits: HashMap<&str, Commit> = logged.iter().map(|l| (l.node.as_str(), commit(l, &big))).collect();
        let changes = moved
            .into_iter()
            .map(|m| {
                let action = m.action.unwrap_or_else(|| {
                    if fast_forwards.contains(&m.update.old.to_string()) { Action::Update } else { Action::Force }
                });
                let commits: Vec<Commit> = state::new_changesets_of(&m.update, &graph)
                    .iter()
                    .filter_map(|cs| commits.get(cs.node.as_str()).cloned())
                    .collect();
                let head = commits.iter().find(|c| c.id == m.update.new).cloned();
                Change { update: m.update, action, commits, head, non_commit: None, aliases: Vec::new() }
            })
            .collect();
        Ok(Push { changes, default_branch: Some("default".into()), pushed_blobs: Vec::new() })
    }

    /// Which `old` of each `(old, new)` pair is an ancestor of its `new`: one `hg` process.
    pub fn ancestors_among(&self, pairs: &[(String, String)]) -> Result<HashSet<String>, String> {
        if pairs.is_empty() {
            return Ok(HashSet::new());
        }
        let mut revset = Vec::new();
        for (old, new) in pairs {
            revset.push(format!("({} and ::{})", hex(old)?, hex(new)?));
        }
        let out = self.hg(true, &["log", "-r", &revset.join(" or "), "-T", "{node}\\n"])?;
        Ok(String::from_utf8_lossy(&out).lines().map(str::to_string).collect())
    }

    /// Files over `limit` that the new changesets add or modify, with their sizes.
    fn big_files(
        &self,
        first: &str,
        last: &str,
        limit: u64,
        logged: &[Logged],
    ) -> Result<HashMap<(String, String), u64>, String> {
        // `files(...)` lists the whole manifest's big files: keep those the changeset writes.
        let written: HashSet<(&str, &str)> = logged
            .iter()
            .flat_map(|l| l.file_adds.iter().chain(&l.file_mods).map(move |f| (l.node.as_str(), f.as_str())))
            .collect();
        // File names cannot hold newlines in Mercurial: a line per node, then its files.
        // Only the files each changeset writes: a size fileset over the whole manifest
        // costs seconds on big trees.
        let template =
            format!("{{node}}\\n{{files(\"set:(added() or modified()) and size('>{limit}')\") % '  {{file}}\\n'}}");
        let out = self.hg(true, &["log", "-r", &format!("{}:{}", hex(first)?, hex(last)?), "-T", &template])?;
        let mut found = HashMap::new();
        let mut node = String::new();
        for line in String::from_utf8_lossy(&out).lines() {
            match line.strip_prefix("  ") {
                Some(path) if written.contains(&(node.as_str(), path)) => {
                    found.insert((node.clone(), path.to_string()), limit + 1);
                }
                Some(_) => {}
                None => node = line.to_string(),
            }
        }
        for ((node, path), size) in found.iter_mut().take(MAX_SIZED) {
            let pattern = format!("path:{path}");
            let out = self.hg(true, &["files", "-r", node, "-T", "{size}\\n", &pattern])?;
            if let Some(exact) = String::from_utf8_lossy(&out).lines().next().and_then(|l| l.trim().parse().ok()) {
                *size = exact;
            }
        }
        Ok(found)
    }
}

/// A 40-hex node, checked before it goes into a revset.
fn hex(node: &str) -> Result<&str, String> {
    if node.len() == 40 && node.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(node)
    } else {
        Err(format!("{} is not a changeset id", crate::text::shown(node)))
    }
}

/// `hg log -T json(...)` output for the new changesets, as hg prints it.
pub fn parse_changesets(out: &[u8]) -> Result<Vec<Logged>, String> {
    serde_json::from_slice::<Vec<Logged>>(out).map_err(|e| format!("cannot read hg log output: {e}"))
}

/// One line of `NAMED_TEMPLATE`: `<node> <h|-> <c|-> <branch json> <bookmarks json> <tags json>`.
pub fn parse_named(line: &str) -> Result<Named, String> {
    let bad = || format!("unexpected hg output: {}", crate::text::shown(line));
    let mut fields = line.splitn(4, ' ');
    let (Some(node), Some(head), Some(closed), Some(rest)) =
        (fields.next(), fields.next(), fields.next(), fields.next())
    else {
        return Err(bad());
    };
    let mut values = serde_json::Deserializer::from_str(rest).into_iter::<serde_json::Value>();
    let mut next = || values.next().and_then(|v| v.ok()).ok_or_else(bad);
    let (branch, bookmarks, tags) = (next()?, next()?, next()?);
    let strings = |v: serde_json::Value| -> Vec<String> { serde_json::from_value(v).unwrap_or_default() };
    Ok(Named {
        node: hex(node)?.to_string(),
        head: head == "h",
        closed: closed == "c",
        branch: branch.as_str().ok_or_else(bad)?.to_string(),
        bookmarks: strings(bookmarks),
        tags: strings(tags),
    })
}

fn commit(logged: &Logged, big: &HashMap<(String, String), u64>) -> Commit {
    let id = |node: &str| ObjectId::from_hex(node.as_bytes()).unwrap_or_else(|_| ObjectId::null(gix::hash::Kind::Sha1));
    let person = person(&logged.user, logged.date);
    let files_of = |paths: &[String], kind: FileKind| -> Vec<FileChange> {
        paths
            .iter()
            .map(|path| {
                let size = big.get(&(logged.node.clone(), path.clone())).copied().unwrap_or(0);
                let blob = (kind != FileKind::Removed).then(|| Blob { id: id(&logged.node), size, added: true });
                FileChange { path: path.clone().into_bytes(), kind, blob }
            })
            .collect()
    };
    let mut files = files_of(&logged.file_adds, FileKind::Added);
    files.extend(files_of(&logged.file_mods, FileKind::Modified));
    files.extend(files_of(&logged.file_dels, FileKind::Removed));
    Commit {
        id: id(&logged.node),
        tree: logged.manifest.as_deref().map_or_else(|| id(""), id),
        parents: logged.parents.iter().map(|p| id(p)).filter(|p| !p.is_null()).collect(),
        author: person.clone(),
        committer: person,
        message: logged.desc.clone(),
        signed: false,
        distinct: true,
        refused_entries: vec![],
        files,
    }
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

    #[test]
    fn named_lines_parse_with_hostile_names() {
        let node = "a".repeat(40);
        let line = format!(r#"{node} h - "my branch \"x\"" ["bm 1"] ["v1.0","tip"]"#);
        let named = parse_named(&line).unwrap();
        assert!(named.head && !named.closed);
        assert_eq!(named.branch, "my branch \"x\"");
        assert_eq!(named.bookmarks, ["bm 1"]);
        assert_eq!(named.tags, ["v1.0", "tip"]);
        assert!(parse_named("garbage").is_err());
        assert!(parse_named(&format!("{} h - \"b\" [] []", "z".repeat(40))).is_err());
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

    #[test]
    fn revset_input_must_be_hex() {
        assert!(hex(&"0".repeat(40)).is_ok());
        assert!(hex("0) or all() or (0").is_err());
    }
}
