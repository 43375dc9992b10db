#!/usr/bin/python3
"""A pre extension in Python: read the event JSON, refuse what policy forbids.

    [[extension]]
    name = "release-guard"
    type = "script"
    phase = "pre"
    command = ["/usr/bin/python3", "/usr/local/share/pushgate/hooks-templates/extensions/veto.py"]
    refs = ["refs/heads/**", "refs/tags/**"]

Refuses: deleting or moving a release tag (refs/tags/v*), and commits whose subject starts
with "fixup!" or "WIP". Lines printed on stdout/stderr are shown to the pusher, prefixed
with the extension's name. Exit 0 accepts; 1 refuses; 75 is a temporary failure.
"""
import json
import os
import sys


def reasons(event):
    for change in event["changes"]:
        ref, action = change["ref"], change["action"]
        if ref.startswith("refs/tags/v") and action in ("delete", "force", "update"):
            yield f"{ref}: release tags are immutable ({action} refused)"
        for commit in change["commits"]:
            subject = commit["message"].splitlines()[0] if commit["message"] else ""
            if subject.startswith(("fixup!", "squash!", "WIP")):
                yield f"{ref}: {commit['id'][:7]} \"{subject}\": squash it before pushing"


def main():
    try:
        event = json.load(sys.stdin)
    except ValueError as e:
        print(f"cannot read the event: {e}", file=sys.stderr)
        return 75
    found = list(reasons(event))
    for line in found:
        print(line)
    if found:
        print(f"(asked by {os.environ.get('PUSHGATE_USER', '?')} on {os.environ.get('PUSHGATE_REPO', '?')})")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
