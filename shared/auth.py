"""How a client request becomes a Caller (shared.identity): server keys, ID tokens, the client token.

EXPORT_AUTH names the enabled methods (shared.config.Settings.auth_methods; DESIGN §4):
- server_key: `Authorization: Bearer sfk_<key_id>_<secret>`, a key of an app's backend (table
  api_keys; created, listed and revoked by `python -m infra.api_keys`). It acts for the owner named
  by the X-SceneFlow-Owner header (OWNER_HEADER), else for `key:<its name>`. Every key of a
  deployment is equally trusted: it may act for any owner (one deployment serves one app).
- id_token: `Authorization: Bearer <JWT>`, an end user's OpenID Connect ID token (shared.id_tokens):
  the owner is its `sub`, the same owner a server key acting for that user names; a `sub` that is a
  reserved owner (identity.is_reserved: `default`, `key:...`) is refused.
- client_token: `Authorization: Bearer $EXPORT_CLIENT_TOKEN`, the deployment's single trusted
  client (before owners existed): owner DEFAULT_OWNER.
- open: no credential is asked for; the owner is DEFAULT_OWNER or the one X-SceneFlow-Owner names
  (local development; deployed, only behind IAM). Unset EXPORT_AUTH means client_token when
  EXPORT_CLIENT_TOKEN is set, else open, and is refused on a deployed function (K_SERVICE).

A bearer is tried as the method its shape names, in this order: `sfk_` -> server key, three dot-
separated base64url parts -> ID token, anything else -> client token. Each refusal is 401 (RFC 6750
invalid_token, shared.errors.Unauthorized) whatever the reason (missing, malformed, unknown, forged,
expired, wrong audience, revoked), so nothing tells a guesser which part was wrong; a valid caller
asking for another owner's job gets 404 from the service. X-SceneFlow-Owner with any other credential
than a server key (or open) is a 400 naming the header: a token's owner is its own.

Keys are 256 random bits, so one fast SHA-256 is the right hash (a slow password hash defends
guessable secrets; nobody can enumerate 2^256) and the stored hash is compared in constant time.
"""
from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass, field
from datetime import timedelta

from shared.api import bearer
from shared.clock import utcnow
from shared.errors import InvalidRequest, Unauthorized
from shared.id_tokens import IdTokenVerifier, looks_like_jwt
from shared.identity import DEFAULT_OWNER, OWNER_HEADER, Caller, is_owner, is_reserved, key_owner
from shared.ports import ApiKeyStore

KEY_PREFIX = "sfk_"
# sfk_ + 12 hex digits of key id + _ + 43 base64url characters of secret (32 bytes = 256 bits)
_KEY_RE = re.compile(r"sfk_([0-9a-f]{12})_([A-Za-z0-9_-]{43})")
TOUCH_EVERY = timedelta(seconds=60)  # last_used_at is written at most this often per key (one UPDATE)


@dataclass(frozen=True)
class NewKey:
    """A key just made: `text` is shown once and never stored; `secret_sha256` is what is stored."""

    key_id: str
    text: str
    secret_sha256: str


def secret_hash(secret: str) -> str:
    """Hex SHA-256 of a key's secret part (the whole key text's last 43 characters)."""
    return hashlib.sha256(secret.encode("ascii")).hexdigest()


def new_server_key() -> NewKey:
    """A fresh key: sfk_<12 hex>_<256-bit secret, base64url> (recognisable and greppable by its prefix)."""
    key_id, secret = secrets.token_hex(6), secrets.token_urlsafe(32)
    return NewKey(key_id, f"{KEY_PREFIX}{key_id}_{secret}", secret_hash(secret))


def parse_server_key(text: str) -> tuple[str, str] | None:
    """(key_id, secret) of a well-formed key text, else None."""
    m = _KEY_RE.fullmatch(text)
    return (m.group(1), m.group(2)) if m else None


def _refused(message: str) -> Unauthorized:
    return Unauthorized(message, invalid_token=True)


def _bad_owner_header(message: str) -> InvalidRequest:
    return InvalidRequest(message, details=[{"path": f"headers.{OWNER_HEADER}", "message": message}])


@dataclass
class Authenticator:
    """Authenticates client requests by EXPORT_AUTH (see the module docstring). keys: the server key
    store (needed when server_key is enabled); id_tokens: built from the settings when first needed."""

    settings: object  # shared.config.Settings
    keys: ApiKeyStore | None = None
    id_tokens: IdTokenVerifier | None = None
    _methods: tuple[str, ...] = field(init=False, default=())

    def __post_init__(self) -> None:
        self._methods = self.settings.auth_methods

    def authenticate(self, authorization: str | None, owner: str | None = None) -> Caller:
        """The Caller of a request with these Authorization and X-SceneFlow-Owner header values.

        Raises Unauthorized (401, no usable credential), InvalidRequest (400, a bad owner header),
        TransientError (the key store or the issuer's keys cannot be reached)."""
        if owner is not None and not is_owner(owner):
            raise _bad_owner_header(f"{OWNER_HEADER} must be one owner id: 1-128 printable ASCII characters, "
                                     "no space or comma (one header)")
        if self._methods == ("open",):
            return Caller(owner or DEFAULT_OWNER, "open")
        token = bearer(authorization)
        if token is None:
            raise Unauthorized("missing bearer token: send Authorization: Bearer <server key or ID token>")
        if token.startswith(KEY_PREFIX) and "server_key" in self._methods:
            return self._server_key(token, owner)
        if owner is not None:
            raise _bad_owner_header(f"{OWNER_HEADER} is accepted with a server key only")
        if "id_token" in self._methods and looks_like_jwt(token):
            if self.id_tokens is None:
                self.id_tokens = IdTokenVerifier.from_settings(self.settings)
            caller = self.id_tokens.verify(token)
            if is_reserved(caller.owner):  # `default` and `key:...` are the deployment's own owners
                raise _refused("invalid token: its sub names a reserved owner")
            return caller
        if "client_token" in self._methods and hmac.compare_digest(token.encode(), self.settings.client_token.encode()):
            return Caller(DEFAULT_OWNER, "client_token")
        raise _refused("invalid token")

    def _server_key(self, text: str, owner: str | None) -> Caller:
        parsed = parse_server_key(text)
        if parsed is None:
            raise _refused("invalid server key")
        if self.keys is None:
            raise RuntimeError("EXPORT_AUTH enables server_key but the service has no key store")
        key_id, secret = parsed
        record = self.keys.find(key_id)
        # the same answer for unknown, wrong secret and revoked: nothing to learn by trying
        if record is None or not hmac.compare_digest(secret_hash(secret), record.secret_sha256) \
                or record.revoked_at is not None:
            raise _refused("invalid server key")
        now = utcnow()
        if record.last_used_at is None or now - record.last_used_at >= TOUCH_EVERY:
            self.keys.touch(key_id, now)
        return Caller(owner or key_owner(record.name), "server_key")
