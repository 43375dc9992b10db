"""Shared helpers for the Python receiver programs.

Delivery file format (JSON):
  {"headers": {"Name": "value", ...},   # as sent on the wire
   "body": "<raw request body, exactly as sent>",
   "secret": "<hook secret>",
   "standardwebhooks_secret": "<optional; overrides secret for Standard Webhooks>",
   "receivers": ["optional list of receiver names that MUST accept this delivery"]}

Exit codes: 0 = library accepted, 1 = library refused (reason printed),
            2 = not applicable (delivery lacks this protocol's headers), 3 = harness error.
Env: FAKE_NOW=1  -> set the clock to the delivery's webhook-timestamp (replay old captures).
     STRICT=1    -> "not applicable" becomes a refusal (exit 1).
"""
import json
import os
import sys

ACCEPT, REFUSE, NA, HARNESS = 0, 1, 2, 3


def load(argv, name):
    if len(argv) != 2:
        print(f"usage: {os.path.basename(argv[0])} DELIVERY.json", file=sys.stderr)
        sys.exit(HARNESS)
    try:
        with open(argv[1], encoding="utf-8") as f:
            d = json.load(f)
        headers = dict(d["headers"])
        body = d["body"]
        if not isinstance(body, str):
            raise TypeError("body must be a string (the raw request body)")
        secret = d.get("secret")
    except Exception as e:  # noqa: BLE001
        print(f"{name}: HARNESS ERROR reading {argv[1]}: {e}")
        sys.exit(HARNESS)
    lower = {k.lower(): v for k, v in headers.items()}
    return d, headers, lower, body, secret


def required_by_delivery(d, name):
    return name in (d.get("receivers") or [])


def not_applicable(d, name, why):
    if os.environ.get("STRICT") == "1" or required_by_delivery(d, name):
        finish(False, name, f"not applicable but required: {why}")
    print(f"{name}: N/A ({why})")
    sys.exit(NA)


def finish(ok, name, msg):
    print(f"{name}: {'ACCEPT' if ok else 'REFUSE'}: {msg}")
    sys.exit(ACCEPT if ok else REFUSE)


def is_github(lower):
    return "x-github-event" in lower


def is_gitlab(lower):
    return "x-gitlab-event" in lower


def is_standardwebhooks(lower):
    return any(h in lower for h in ("webhook-id", "webhook-timestamp", "webhook-signature"))
