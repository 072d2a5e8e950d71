"""Who calls the client API (export_start, export_status, export_cancel, export_list): a Caller names
the owner whose jobs it may create and see. Every job has exactly one owner; a job of another owner
is answered as if it did not exist (404, never 403). Pure: no I/O.

How a request becomes a Caller (server keys, OpenID Connect ID tokens, the deployment's single
trusted client) is decided by ExportService.authenticate; this module only holds the shape.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

# The owner of jobs made by the single trusted client (EXPORT_CLIENT_TOKEN or IAM only, no per-user
# identity), and of every job created before owners existed (migration 0004).
DEFAULT_OWNER = "default"
# the request header with which a server key names the owner it acts for (shared.auth)
OWNER_HEADER = "X-SceneFlow-Owner"
OWNER_MAX_CHARS = 128
# printable ASCII without space or comma (repeated headers arrive joined by commas): an OIDC `sub` fits
OWNER_PATTERN = r"^[\x21-\x2b\x2d-\x7e]{1,128}$"
_OWNER = re.compile(OWNER_PATTERN)
# owners no end user's ID token may name: DEFAULT_OWNER (the client token's, the jobs from before owners)
# and KEY_OWNER_PREFIX + a server key's name (a key acting for no one in particular)
KEY_OWNER_PREFIX = "key:"


@dataclass(frozen=True)
class Caller:
    """owner: the owner id (printable ASCII, 1..128 chars). via: how it was established
    ("client_token", "server_key", "id_token", "open")."""

    owner: str
    via: str = "open"


DEFAULT_CALLER = Caller(DEFAULT_OWNER, "open")


def is_owner(value: object) -> bool:
    """True for a usable owner id: 1..128 printable ASCII characters, no space or comma."""
    return isinstance(value, str) and _OWNER.fullmatch(value) is not None


def is_reserved(owner: str) -> bool:
    """True for an owner only the deployment's own credentials act as (never an ID token's `sub`)."""
    return owner == DEFAULT_OWNER or owner.startswith(KEY_OWNER_PREFIX)


def key_owner(name: str) -> str:
    """The owner a server key named `name` acts for when its request names none."""
    return KEY_OWNER_PREFIX + name
