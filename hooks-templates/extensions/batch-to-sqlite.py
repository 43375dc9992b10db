#!/usr/bin/python3
"""A batched post extension: store push events in a SQLite database (a stats sink).

    [[extension]]
    name = "stats"
    type = "script"
    phase = "post"
    batch = { max = 100, wait = "30s" }
    command = ["/usr/bin/python3", "/usr/local/share/pushgate/hooks-templates/extensions/batch-to-sqlite.py",
               "/var/lib/pushgate/pushes.sqlite"]

Each call gets a JSON array of up to `max` events (pushgate.push/1) on stdin, oldest first,
sent once `max` wait or the oldest waited `wait`. A failed batch is sent again whole, so the
inserts are idempotent on the event id; all of a batch goes in one transaction. Exit 0:
stored; 75: try again later (a locked database).
"""
import json
import sqlite3
import sys

SCHEMA = """
CREATE TABLE IF NOT EXISTS pushes (
    event_id   TEXT PRIMARY KEY,
    time       TEXT NOT NULL,
    repository TEXT NOT NULL,
    sequence   INTEGER,
    user       TEXT NOT NULL,
    refs       INTEGER NOT NULL,
    commits    INTEGER NOT NULL
);
"""


def main():
    if len(sys.argv) != 2:
        print("usage: batch-to-sqlite.py DATABASE", file=sys.stderr)
        return 2
    events = json.load(sys.stdin)
    if not isinstance(events, list):
        print("expected a batch (a JSON array): set `batch` on the extension", file=sys.stderr)
        return 1
    rows = [(
        e["id"], e["time"], e["repository"]["name"], e.get("sequence"), e["user"]["name"],
        len(e["changes"]), sum(c["total_commits"] for c in e["changes"]),
    ) for e in events if e.get("schema") == "pushgate.push/1"]
    try:
        db = sqlite3.connect(sys.argv[1], timeout=10)
        with db:
            db.executescript(SCHEMA)
            db.executemany("INSERT OR IGNORE INTO pushes VALUES (?, ?, ?, ?, ?, ?, ?)", rows)
        db.close()
    except sqlite3.OperationalError as e:
        print(f"cannot store the batch: {e}", file=sys.stderr)
        return 75
    return 0


if __name__ == "__main__":
    sys.exit(main())
