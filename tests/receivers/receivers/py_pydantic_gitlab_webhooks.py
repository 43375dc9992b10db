#!/usr/bin/env python3
"""PyPI `pydantic-gitlab-webhooks` (0.3.54): validate_event_header_and_body_dict(X-Gitlab-Event, body).

Strict pydantic models for the payload (PushEvent / TagPushEvent): object_kind & event_name literals
must match the header ("Push Hook" -> push, "Tag Push Hook" -> tag_push); required: ref_protected
(bool), checkout_sha (str, NOT nullable!), user_id, project_id, project{name, web_url, git_ssh_url,
git_http_url (http URL), namespace, visibility_level, path_with_namespace, default_branch},
commits[]{id, timestamp (tz-aware), url (http URL), author{name,email}}, total_commits_count.
Extra fields are ignored.  This library does NOT check X-Gitlab-Token (see py-gidgetlab).
"""
import json
import sys

from _common import finish, is_gitlab, load, not_applicable

NAME = "py-pydantic-gitlab-webhooks"


def main():
    d, headers, lower, body, secret = load(sys.argv, NAME)
    if not is_gitlab(lower):
        not_applicable(d, NAME, "no X-Gitlab-Event header")
    from pydantic import ValidationError
    from pydantic_gitlab_webhooks import validate_event_header_and_body_dict

    try:
        data = json.loads(body)
    except ValueError as e:
        finish(False, NAME, f"body is not JSON: {e}")
    try:
        ev = validate_event_header_and_body_dict(lower["x-gitlab-event"], data)
    except ValidationError as e:
        # The union error lists every hook type; keep only the branch for this header.
        hdr = lower["x-gitlab-event"]
        errs = [x for x in e.errors() if not (x.get("loc") and x["loc"][0] != _branch(hdr))]
        lines = [f"{'.'.join(str(p) for p in x['loc'])}: {x['msg']}" for x in (errs or e.errors())]
        finish(False, NAME, f"{len(lines)} validation error(s): " + "; ".join(lines[:8]))
    finish(True, NAME, f"validated as {type(ev).__name__}")


def _branch(header):
    return {"Push Hook": "_PushHook", "Tag Push Hook": "_TagPushHook"}.get(header, "")


if __name__ == "__main__":
    main()
