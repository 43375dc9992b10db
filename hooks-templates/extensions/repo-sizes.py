#!/usr/bin/python3
"""A periodic extension: append each repository's size to a JSON-lines report.

    [[extension]]
    name = "repo-sizes"
    type = "script"
    phase = "periodic"
    every = "1h"
    command = ["/usr/bin/python3", "/usr/local/share/pushgate/hooks-templates/extensions/repo-sizes.py",
               "/var/lib/pushgate/repo-sizes.jsonl"]

`pushgate deliver --watch` runs it every hour with the inventory (pushgate.inventory/1,
docs/inventory.schema.json) on stdin; each run appends one line per repository:
{"time": ..., "repository": ..., "vcs": ..., "size_bytes": ..., "branches": N, "last_push": ...}.
Exit 0: done; 75: try again on the retry schedule; other: the run failed (see `pushgate log`).
"""
import json
import os
import sys


def main():
    if len(sys.argv) != 2:
        print("usage: repo-sizes.py REPORT.jsonl", file=sys.stderr)
        return 2
    inventory = json.load(sys.stdin)
    if inventory.get("schema") != "pushgate.inventory/1":
        print(f"not an inventory: {inventory.get('schema')!r}", file=sys.stderr)
        return 1
    lines = []
    for repo in inventory["repositories"]:
        lines.append(json.dumps({
            "time": inventory["time"],
            "repository": repo["name"],
            "vcs": repo["vcs"],
            "size_bytes": repo["size_bytes"],
            "branches": len(repo["branches"]),
            "last_push": repo["last_push"],
        }, sort_keys=True))
    try:
        # One write of whole lines: a report read meanwhile never sees half a run.
        fd = os.open(sys.argv[1], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
        with os.fdopen(fd, "a", encoding="utf-8") as report:
            report.write("".join(line + "\n" for line in lines))
    except OSError as e:
        print(f"cannot write {sys.argv[1]}: {e.strerror}", file=sys.stderr)
        return 75
    return 0


if __name__ == "__main__":
    sys.exit(main())
