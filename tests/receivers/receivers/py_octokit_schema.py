#!/usr/bin/env python3
"""Strict shape check: the push event body against @octokit/webhooks-schemas 7.6.1 `push$event`
(JSON Schema draft-07, additionalProperties:false everywhere, formats uri/date-time checked),
using PyPI `jsonschema`.  Only applies to X-GitHub-Event: push.  Signature is not checked here.
Schema file: ../schemas/push-event.schema.json (extracted closure of push$event).
"""
import json
import os
import sys

from _common import finish, is_github, load, not_applicable

NAME = "py-octokit-schema"
HERE = os.path.dirname(os.path.abspath(__file__))


def main():
    d, headers, lower, body, secret = load(sys.argv, NAME)
    if not is_github(lower) or lower["x-github-event"] != "push":
        not_applicable(d, NAME, "not an X-GitHub-Event: push delivery")
    import jsonschema

    with open(os.path.join(HERE, "..", "schemas", "push-event.schema.json")) as f:
        schema = json.load(f)
    v = jsonschema.Draft7Validator(schema, format_checker=jsonschema.Draft7Validator.FORMAT_CHECKER)
    try:
        data = json.loads(body)
    except ValueError as e:
        finish(False, NAME, f"body is not JSON: {e}")
    errs = sorted(v.iter_errors(data), key=lambda e: list(e.absolute_path))
    if errs:
        lines = [f"/{'/'.join(str(p) for p in e.absolute_path)}: {e.message[:160]}" for e in errs]
        finish(False, NAME, f"{len(errs)} schema error(s): " + "; ".join(lines[:8]))
    finish(True, NAME, "valid against @octokit/webhooks-schemas push$event")


if __name__ == "__main__":
    main()
