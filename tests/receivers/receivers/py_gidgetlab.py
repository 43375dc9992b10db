#!/usr/bin/env python3
"""PyPI `gidgetlab` (2.1.2): gidgetlab.sansio.Event.from_http(headers, body, secret=...).

Checks: X-Gitlab-Token == secret (plain string equality; token present but no secret, or secret but
no token -> ValidationFailure), X-Gitlab-Event present, Content-Type application/json (or form)
else BadRequest 415, body is JSON.  It does NOT look at the payload's shape.
Headers must be given with lowercase keys (as documented).
"""
import sys

from _common import finish, is_gitlab, load, not_applicable

NAME = "py-gidgetlab"


def main():
    d, headers, lower, body, secret = load(sys.argv, NAME)
    if not is_gitlab(lower):
        not_applicable(d, NAME, "no X-Gitlab-Event header")
    from gidgetlab import sansio

    try:
        ev = sansio.Event.from_http(lower, body.encode("utf-8"), secret=secret)
    except Exception as e:
        finish(False, NAME, f"{type(e).__name__}: {e}")
    if not isinstance(ev.data, dict):
        finish(False, NAME, f"decoded body is {type(ev.data).__name__}, not a JSON object")
    finish(True, NAME, f"token ok, event '{ev.event}', object_kind={ev.data.get('object_kind')!r}")


if __name__ == "__main__":
    main()
