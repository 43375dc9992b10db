#!/usr/bin/env python3
"""PyPI `github-webhook` (1.0.4, Bloomberg): Flask blueprint; verifies X-Hub-Signature (sha1 ONLY).

Runs the library's real Flask view through Flask's test client (no socket).
It requires (with a secret): X-Hub-Signature "sha1=<hex>", X-Github-Event, X-Github-Delivery
(missing header -> 400), and a JSON body (Content-Type application/json, or form `payload=`).
"""
import json
import sys

from _common import finish, is_github, load, not_applicable

NAME = "py-github-webhook"


def main():
    d, headers, lower, body, secret = load(sys.argv, NAME)
    if not is_github(lower):
        not_applicable(d, NAME, "no X-GitHub-Event header")
    from flask import Flask
    from github_webhook import Webhook

    app = Flask(__name__)
    seen = []
    wh = Webhook(app, endpoint="/postreceive", secret=secret)
    wh.hook(lower["x-github-event"])(lambda data: seen.append(data))
    send = {k: v for k, v in headers.items() if k.lower() not in ("content-length", "host")}
    with app.test_client() as c:
        r = c.post("/postreceive", data=body.encode("utf-8"), headers=send)
    if r.status_code != 204:
        text = r.get_data(as_text=True)
        # werkzeug's HTML error page: keep the description line only
        import re
        m = re.search(r"<p>(.*?)</p>", text, re.S)
        finish(False, NAME, f"HTTP {r.status_code}: {m.group(1).strip() if m else text[:200]}")
    if not seen:
        finish(False, NAME, "204 but the registered hook was not called")
    if seen[0] != json.loads(body):
        finish(False, NAME, "hook received data that differs from the body")
    finish(True, NAME, f"HTTP 204, sha1 signature ok, hook '{lower['x-github-event']}' called")


if __name__ == "__main__":
    main()
