"""A local OpenID Connect issuer: the JWKS stand-in the tests, examples/demo.py and the local stacks use.

    issuer = LocalIssuer("http://127.0.0.1:8080/issuer")     # an RSA key made now (kid random)
    token = issuer.mint("author-1", audience="sceneflow-local")  # a real RS256-signed ID token
    with issuer.serve() as base: ...                          # its own loopback HTTP server, or
    python -m infra.local.gateway --issuer FILE               # mounted by the gateway at /issuer

It serves what a real issuer serves (OpenID Connect Discovery 1.0): `{issuer}/.well-known/openid-
configuration` (issuer, jwks_uri, id_token_signing_alg_values_supported) and `{issuer}/jwks.json`
(the public keys as JWKs). Tokens are signed with PyJWT, so the functions verify them exactly as
Firebase Auth's (shared/id_tokens.py). `rotate()` adds a new key (kid) and signs with it from then
on; the old one stays published. The gateway, another process, serves only the public half:
`write_public(path)` hands it over as JSON ({issuer, keys}), loaded by `public_app(path)`.

LOCAL ONLY: `token_app()` answers `POST {"sub": ...}` with a fresh ID token of that author, the
stand-in for a sign-in (Firebase Auth's) that the example page (examples/web/, served by
infra/local/web_page.py in the process holding the private keys) calls. No real issuer hands
tokens to whoever asks: it is never mounted by the gateway.
"""
from __future__ import annotations

import json
import threading
import time
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

MOUNT = "/issuer"  # where the gateway serves an issuer: {base}/issuer
DISCOVERY = "/.well-known/openid-configuration"
JWKS = "/jwks.json"


def new_rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


class LocalIssuer:
    """An issuer with RSA signing keys made in memory. issuer: its URL (the tokens' `iss`)."""

    def __init__(self, issuer: str = "") -> None:
        self.issuer = issuer.rstrip("/")
        self.keys: dict[str, rsa.RSAPrivateKey] = {}
        self.kid = ""
        self.rotate()

    def rotate(self) -> str:
        """Make a new signing key; tokens are signed with it from now on. Returns its kid."""
        self.kid = uuid.uuid4().hex[:16]
        self.keys[self.kid] = new_rsa_key()
        return self.kid

    # -- what it publishes
    def jwks(self) -> dict:
        keys = []
        for kid, key in self.keys.items():
            jwk = RSAAlgorithm.to_jwk(key.public_key(), as_dict=True)
            keys.append({**jwk, "kid": kid, "use": "sig", "alg": "RS256"})
        return {"keys": keys}

    def public(self) -> dict:
        """{issuer, keys}: what public_app serves (no private part)."""
        return {"issuer": self.issuer, **self.jwks()}

    def write_public(self, path: str | Path) -> Path:
        path = Path(path)
        path.write_text(json.dumps(self.public()))
        return path

    # -- tokens
    def mint(self, sub: str | None, audience: str | list[str], *, expires_in: float = 3600,
             issued_at: float | None = None, issuer: str | None = None, kid: str | None = None,
             key: rsa.RSAPrivateKey | None = None, algorithm: str = "RS256", claims: dict | None = None) -> str:
        """A signed ID token {iss, aud, sub, iat, exp, ...claims} with header {alg, kid, typ}.

        The keyword arguments make bad tokens for tests: `expires_in` <= 0 (expired), `issuer`
        (another iss), `key` (a forged signature under our kid), `kid` (an unknown key id); sub None
        leaves `sub` out."""
        now = time.time() if issued_at is None else issued_at
        payload = {"iss": issuer if issuer is not None else self.issuer, "aud": audience,
                   "iat": int(now), "exp": int(now + expires_in), "auth_time": int(now), **(claims or {})}
        if sub is not None:
            payload["sub"] = sub
        kid = kid or self.kid
        signing_key = key or self.keys.get(kid) or self.keys[self.kid]
        return jwt.encode(payload, signing_key, algorithm=algorithm, headers={"kid": kid, "typ": "JWT"})

    # -- serving
    def app(self):
        """A WSGI app answering DISCOVERY and JWKS (relative to where it is mounted)."""
        return _wsgi(lambda: self.public())

    def token_app(self, audience: str | list[str], expires_in: float = 3600):
        """LOCAL ONLY: a WSGI app answering `POST {"sub": "<author>"}` (JSON) with 200
        {"idToken", "expiresIn" (s)} for `audience`; 400 {error: {code, message}} naming a missing
        or bad `sub` (1-128 printable ASCII characters), 405 for another method."""
        def app(environ, start_response):
            if environ.get("REQUEST_METHOD") != "POST":
                return _json(start_response, "405 Method Not Allowed",
                             {"error": {"code": "method_not_allowed", "message": "POST {\"sub\": ...}"}})
            try:
                size = int(environ.get("CONTENT_LENGTH") or 0)
                sub = json.loads(environ["wsgi.input"].read(min(size, 4096)) or b"{}").get("sub")
            except (ValueError, AttributeError):
                sub = None
            if not isinstance(sub, str) or not 1 <= len(sub) <= 128 or not all(" " < c < "\x7f" for c in sub):
                return _json(start_response, "400 Bad Request", {"error": {
                    "code": "invalid_request", "message": "sub: an author id of 1-128 printable ASCII characters",
                    "details": [{"path": "sub", "message": "1-128 printable ASCII characters, no spaces"}]}})
            return _json(start_response, "200 OK", {"idToken": self.mint(sub, audience, expires_in=expires_in),
                                                    "expiresIn": expires_in})

        return app

    @contextmanager
    def serve(self) -> Iterator[str]:
        """Serve on a loopback port in a thread; yields the base URL. Sets `issuer` to it when empty."""
        from werkzeug.serving import make_server

        server = make_server("127.0.0.1", 0, self.app(), threaded=True)
        base = f"http://127.0.0.1:{server.server_port}"
        if not self.issuer:
            self.issuer = base
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            yield base
        finally:
            server.shutdown()
            thread.join(5)


def public_app(path: str | Path):
    """The WSGI app of an issuer written by LocalIssuer.write_public (read again on each request, so
    a rotation written by the owner of the private keys is served at once)."""
    return _wsgi(lambda: json.loads(Path(path).read_text()))


def _json(start_response, status: str, body: dict) -> list[bytes]:
    data = json.dumps(body).encode()
    start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(data))),
                            ("Cache-Control", "no-store")])
    return [data]


def _wsgi(public):
    def app(environ, start_response):
        path = environ.get("PATH_INFO", "")
        doc = public()
        if path == DISCOVERY:
            body = {"issuer": doc["issuer"], "jwks_uri": doc["issuer"] + JWKS,
                    "id_token_signing_alg_values_supported": ["RS256"],
                    "subject_types_supported": ["public"], "response_types_supported": ["id_token"]}
        elif path == JWKS:
            body = {"keys": doc["keys"]}
        else:
            data = b'{"error": "not_found"}'
            start_response("404 Not Found", [("Content-Type", "application/json"), ("Content-Length", str(len(data)))])
            return [data]
        data = json.dumps(body).encode()
        start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(data))),
                                  ("Cache-Control", "public, max-age=300")])
        return [data]

    return app
