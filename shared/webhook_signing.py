"""Standard Webhooks signatures (https://www.standardwebhooks.com; spec: github.com/standard-webhooks/
standard-webhooks, spec/standard-webhooks.md, "Signature scheme", v1 symmetric). Pure.

A delivery carries three headers:
- webhook-id: the event's id, the same on every retry (receivers dedupe on it);
- webhook-timestamp: the attempt's time, integer Unix seconds (receivers refuse old ones: replays);
- webhook-signature: "v1," + base64(HMAC-SHA256(key, f"{id}.{timestamp}.{body}")), where key is the
  base64-decoded part of the secret "whsec_<base64>" (the spec's secret format, 24..64 bytes).
Ours, so that the tests' check with the `standardwebhooks` package is an independent implementation.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

SECRET_PREFIX = "whsec_"
SECRET_BYTES = 32  # the spec allows 24..64 random bytes


def new_secret() -> str:
    """A fresh signing secret: "whsec_" + base64 of SECRET_BYTES random bytes."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def signature(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """The webhook-signature value "v1,<base64>" of `body` sent as message `msg_id` at `timestamp`
    (Unix seconds). Raises ValueError for a secret that is not "whsec_<base64>"."""
    if not secret.startswith(SECRET_PREFIX):
        raise ValueError("a webhook secret starts with whsec_")
    key = base64.b64decode(secret[len(SECRET_PREFIX):], validate=True)
    mac = hmac.new(key, f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode()


def headers(secret: str, msg_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    """The three Standard Webhooks headers (and the JSON content type) of one delivery attempt."""
    return {"webhook-id": msg_id, "webhook-timestamp": str(int(timestamp)),
            "webhook-signature": signature(secret, msg_id, int(timestamp), body),
            "content-type": "application/json"}
