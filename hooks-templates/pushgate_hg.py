# pushgate's Mercurial hooks, run inside the hg process that serves the push
# (`python:` hooks in hgrc, as `pushgate install --hg` writes them).
#
# This file only gathers facts with Mercurial's own API -- the state before and after the
# transaction, the changesets each named branch, bookmark and tag brings, ancestry, the files
# each changeset writes -- and hands them as JSON to `pushgate hg <hook>`, which decides.
# Starting `hg` processes from an external hook cost ~130 ms each; this costs none.
#
# [pushgate] binary = /path/to/pushgate   (in hgrc; default: `pushgate` on PATH)

import json
import os
import subprocess

from mercurial import repoview

SOURCES = (b"push", b"serve", b"unbundle")
FILTER = b"pushgate-before"


def _text(data):
    """hg's bytes as JSON: text when UTF-8, else base64 (names need not be UTF-8)."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        import base64

        return {"b64": base64.b64encode(data).decode("ascii")}


def _hex(node):
    """A binary node id as 40 hex digits."""
    return node.hex()


def _named(repo):
    """Every changeset that names something: branch heads (closed ones too), bookmarks and
    tags, in revision order, as `pushgate hg` reads a snapshot."""
    found = {}

    def entry(ctx):
        key = ctx.rev()
        if key not in found:
            found[key] = {
                "node": ctx.hex().decode("ascii"),
                "head": False,
                "closed": ctx.closesbranch(),
                "branch": _text(ctx.branch()),
                "bookmarks": [],
                "tags": [],
            }
        return found[key]

    for _branch, heads, _tip, _closed in repo.branchmap().iterbranches():
        for head in heads:
            entry(repo[head])["head"] = True
    for name, node in repo._bookmarks.items():
        if node in repo:
            entry(repo[node])["bookmarks"].append(_text(name))
    for name, node in repo.tags().items():
        if name != b"tip" and node in repo:
            entry(repo[node])["tags"].append(_text(name))
    return [found[rev] for rev in sorted(found)]


def _refs(repo):
    """ref name -> the nodes it stands for (a branch: all its heads)."""
    refs = {}
    for branch, heads, _tip, _closed in repo.branchmap().iterbranches():
        refs[b"refs/heads/" + branch] = list(heads)
    for name, node in repo._bookmarks.items():
        refs[b"refs/bookmarks/" + name] = [node]
    for name, node in repo.tags().items():
        if name != b"tip":
            refs[b"refs/tags/" + name] = [node]
    return refs


def _files(repo, ctx):
    """What a changeset writes against its first parent: path, kind, size, and whether it
    adds the content (not for a rename, nor for what a merge takes from its second parent)."""
    status = repo.status(ctx.p1().node(), ctx.node())
    p2 = ctx.p2()
    out = []
    for kind, paths in (("added", status.added), ("modified", status.modified)):
        for path in paths:
            fctx = ctx[path]
            adds = True
            renamed = fctx.renamed()
            if renamed and renamed[0] in status.removed:
                adds = False
            if p2.rev() != -1 and path in p2 and p2[path].filenode() == fctx.filenode():
                adds = False
            out.append({"path": _text(path), "kind": kind, "size": fctx.size(), "adds": adds})
    for path in status.removed:
        out.append({"path": _text(path), "kind": "removed", "size": 0, "adds": False})
    return out


def _changeset(repo, rev):
    ctx = repo[rev]
    when, offset = ctx.date()
    return {
        "node": ctx.hex().decode("ascii"),
        "branch": _text(ctx.branch()),
        "parents": [p.hex().decode("ascii") for p in ctx.parents() if p.rev() != -1],
        "user": _text(ctx.user()),
        "date": [when, offset],
        "desc": _text(ctx.description()),
        "manifest": _hex(ctx.manifestnode()),
        "files": _files(repo, ctx),
    }


def _push(repo, tr, txnname, txnid):
    start = tr.changes[b"origrepolen"]
    new_revs = frozenset(range(start, len(repo)))
    repoview.filtertable[FILTER] = lambda r, visibilityexceptions=None: new_revs
    old = repo.unfiltered().filtered(FILTER)
    # Bookmarks are not filtered: their old values come from the transaction.
    old_bookmarks = dict(repo._bookmarks.items())
    for name, (before, _after) in tr.changes.get(b"bookmarks", {}).items():
        if before is None:
            old_bookmarks.pop(name, None)
        else:
            old_bookmarks[name] = before
    before = _named(old)
    for item in before:
        item["bookmarks"] = []
    by_rev = {}
    for name, node in old_bookmarks.items():
        if node in repo:
            rev = repo[node].rev()
            by_rev.setdefault(rev, []).append(_text(name))
    before = _merge_bookmarks(repo, before, by_rev)
    after = _named(repo)

    old_refs = _refs(old)
    old_refs = {k: v for k, v in old_refs.items() if not k.startswith(b"refs/bookmarks/")}
    for name, node in old_bookmarks.items():
        old_refs[b"refs/bookmarks/" + name] = [node]
    new_refs = _refs(repo)
    default = old_refs.get(b"refs/heads/default")
    brought = {}
    pairs = []
    wanted = set()
    for name in set(old_refs) | set(new_refs):
        was, now = old_refs.get(name), new_refs.get(name)
        if was == now or not now:
            continue
        if was:
            hidden = was
        elif default and name != b"refs/heads/default":
            hidden = default
        else:
            hidden = None
        if hidden is None:
            revs = repo.revs(b"::%ln and %ld", now, sorted(new_revs))
        else:
            revs = repo.revs(b"::%ln - ::%ln", now, hidden)
        brought[name.decode("utf-8", "surrogateescape")] = [repo[r].hex().decode("ascii") for r in revs]
        wanted.update(revs)
        for a in was or []:
            for b in now:
                if repo.changelog.isancestor(a, b):
                    pairs.append([_hex(a), _hex(b)])
    return {
        "schema": "pushgate.hg-push/1",
        "txn_name": _text(txnname),
        "txn_id": _text(txnid),
        "root": _text(repo.root),
        "before": before,
        "after": after,
        "brought": brought,
        "ancestors": pairs,
        "changesets": [_changeset(repo, r) for r in sorted(wanted)],
        "added": len(new_revs),
    }


def _merge_bookmarks(repo, named, by_rev):
    """Put the old bookmarks back on the old snapshot's changesets (adding the changesets
    that only a bookmark names)."""
    known = {item["node"]: item for item in named}
    for rev, names in by_rev.items():
        ctx = repo[rev]
        node = ctx.hex().decode("ascii")
        if node not in known:
            known[node] = {
                "node": node,
                "head": False,
                "closed": ctx.closesbranch(),
                "branch": _text(ctx.branch()),
                "bookmarks": [],
                "tags": [],
                "rev": rev,
            }
        known[node]["bookmarks"].extend(names)
    for item in known.values():
        item.setdefault("rev", repo[item["node"].encode("ascii")].rev())
    ordered = sorted(known.values(), key=lambda item: item["rev"])
    for item in ordered:
        del item["rev"]
    return ordered


def _binary(ui):
    return ui.config(b"pushgate", b"binary") or b"pushgate"


def _run(ui, hook, document):
    """`pushgate hg <hook>` with the document on stdin; its messages go to the pusher."""
    try:
        done = subprocess.run(
            [_binary(ui), b"hg", hook.encode("ascii")],
            input=json.dumps(document).encode("utf-8"),
            capture_output=True,
        )
    except OSError as e:
        ui.write_err(b"pushgate: push rejected: cannot run pushgate: %s\n" % str(e).encode("utf-8", "replace"))
        return 1
    if done.stdout:
        ui.write_err(done.stdout)
    if done.stderr:
        ui.write_err(done.stderr)
    return done.returncode


def pretxnclose(ui, repo, hooktype=None, txnname=b"", txnid=b"", **kwargs):
    """Decide the push this transaction makes (non-zero rolls it back)."""
    if txnname.split(b"\n")[0] not in SOURCES:
        return 0
    tr = repo.currenttransaction()
    try:
        document = _push(repo.unfiltered(), tr, txnname, txnid)
    except Exception as e:  # fail closed: a push pushgate cannot read does not land
        ui.write_err(b"pushgate: push rejected: cannot read the push: %s\n" % str(e).encode("utf-8", "replace"))
        return 1
    return _run(ui, "pretxnclose", document)


def txnclose(ui, repo, hooktype=None, txnname=b"", txnid=b"", **kwargs):
    """Spool the event pretxnclose computed, once the transaction is committed."""
    if txnname.split(b"\n")[0] not in SOURCES:
        return 0
    return _run(ui, "txnclose", {"schema": "pushgate.hg-txn/1", "txn_id": _text(txnid), "root": _text(repo.root)})


def prepushkey(ui, repo, hooktype=None, namespace=b"", key=b"", old=b"", new=b"", **kwargs):
    """A bookmark set through the legacy pushkey command, outside any push transaction."""
    if namespace != b"bookmarks" or kwargs.get("bundle2"):
        return 0
    forward = False
    if old and new and old in repo and new in repo:
        forward = repo.changelog.isancestor(repo[old].node(), repo[new].node())
    document = {
        "schema": "pushgate.hg-pushkey/1",
        "root": _text(repo.root),
        "key": _text(key),
        "old": _text(old),
        "new": _text(new),
        "forward": forward,
    }
    return _run(ui, "prepushkey", document)
