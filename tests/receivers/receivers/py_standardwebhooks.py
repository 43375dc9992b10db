#!/usr/bin/env python3
"""PyPI `standardwebhooks` (1.1.0): verifies webhook-id / webhook-timestamp / webhook-signature.

Secret handling (the whole point of this receiver):
  * "whsec_<base64>"  -> passed as the str; the library strips whsec_ and base64-decodes it.
  * any other secret  -> passed as BYTES: Webhook(secret.encode("utf-8")).  A bytes secret is used
    verbatim as the HMAC key (webhooks.py: `if isinstance(whsecret, str): ...b64decode...`).
    Passing a plain *str* would be base64-decoded by `base64.b64decode(s + "==")`, which silently
    DROPS non-alphabet characters (validate=False) -> wrong key, no error.
Timestamp tolerance: +-5 minutes against the clock (FAKE_NOW=1 pins the clock to the header).
"""
import os
import sys

from _common import finish, is_standardwebhooks, load, not_applicable

NAME = "py-standardwebhooks"


def main():
    d, headers, lower, body, secret = load(sys.argv, NAME)
    if not is_standardwebhooks(lower):
        not_applicable(d, NAME, "no webhook-id/webhook-timestamp/webhook-signature headers")
    secret = d.get("standardwebhooks_secret", secret)
    import standardwebhooks.webhooks as swmod
    from standardwebhooks import Webhook

    if os.environ.get("FAKE_NOW") == "1" and "webhook-timestamp" in lower:
        import datetime as _dt

        pinned = _dt.datetime.fromtimestamp(float(lower["webhook-timestamp"]), tz=_dt.timezone.utc)

        class _FrozenDatetime(_dt.datetime):
            @classmethod
            def now(cls, tz=None):
                return pinned.astimezone(tz) if tz else pinned.replace(tzinfo=None)

        swmod.datetime = _FrozenDatetime

    if not secret:
        finish(False, NAME, "delivery has no secret")
    key = secret if secret.startswith("whsec_") else secret.encode("utf-8")
    mode = "whsec_ (base64 key)" if isinstance(key, str) else "raw bytes key"
    try:
        payload = Webhook(key).verify(body.encode("utf-8"), headers)
    except Exception as e:  # WebhookVerificationError, or ValueError on a malformed signature list
        finish(False, NAME, f"{type(e).__name__}: {e} [{mode}]")
    finish(True, NAME, f"signature ok [{mode}], JSON parsed ({type(payload).__name__})")


if __name__ == "__main__":
    main()
