"""The cross-owner table (issue 18): owner B, or a bad credential, never reaches owner A's job by any
route. Used by tests/integration/test_auth_functions.py (functions-framework test clients) and
tests/system/test_auth_gateway.py (the real gateway over loopback HTTP), so both run the same table.

To add a route: one entry in ROUTES, a function (call, job_id, headers) -> HTTP status. A route that
names no job (e.g. export_list) returns 404 when A's job is absent from what the caller got and 200
when it is present, so the table's expectations hold for it unchanged.
To add a credential: one entry in CASES (its name, the status A's job answers) and one in the dict
`credentials()` builds.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Protocol

from infra.local.issuer import LocalIssuer, new_rsa_key
from shared.auth import OWNER_HEADER


class Response(Protocol):
    status_code: int
    headers: object


# call(method, function, headers, params=None, json=None) -> a response (requests' or werkzeug's)
Call = Callable[..., Response]

OWNER_A, OWNER_B = "author-a", "author-b"
SPEC = {"scenes": [{"id": "s1", "visual": {"type": "image", "src": "a.png"}, "duration": 2}]}
UPLOADS = [{"name": "a.png", "contentType": "image/png"}]  # the job waits for it: nothing renders


def _status(call: Call, job_id: str, headers: dict) -> int:
    return call("GET", "export_status", headers, params={"jobId": job_id}).status_code


def _list(call: Call, job_id: str, headers: dict) -> int:
    r = call("GET", "export_list", headers, params={"pageSize": 100})
    if r.status_code != 200:
        return r.status_code
    return 200 if job_id in [e["jobId"] for e in r.json()["exports"]] else 404


def _cancel(call: Call, job_id: str, headers: dict) -> int:
    return call("POST", "export_cancel", headers, json={"jobId": job_id}).status_code


ROUTES: dict[str, Callable[[Call, str, dict], int]] = {
    "export_status": _status,
    "export_list": _list,
    "export_cancel": _cancel,
}

# (credential, status A's job answers on every route): 200 A's own; 404 another owner (its existence is
# not revealed); 401 no usable credential (RFC 6750 invalid_token)
CASES: list[tuple[str, int]] = [
    ("A's ID token", 200),
    ("server key acting for A", 200),
    ("B's ID token", 404),
    ("server key acting for B", 404),
    ("server key without X-SceneFlow-Owner (acts as key:NAME)", 404),
    ("ID token whose sub is the reserved owner default", 401),
    ("forged ID token of A (another key under the issuer's kid)", 401),
    ("ID token of A signed by a key the issuer does not publish", 401),
    ("expired ID token of A", 401),
    ("ID token of A for another audience", 401),
    ("ID token of A from another issuer", 401),
    ("unsigned ID token of A (alg none)", 401),
    ("revoked server key acting for A", 401),
    ("server key with a wrong secret acting for A", 401),
    ("no credential", 401),
    ("Basic credentials", 401),
]


@dataclass
class Keys:
    """Server keys made for the table: `active` (acts for whoever its header names), `revoked`."""

    active: str
    revoked: str


def bearer(token: str, owner: str | None = None) -> dict:
    return {"Authorization": f"Bearer {token}", **({OWNER_HEADER: owner} if owner else {})}


def credentials(issuer: LocalIssuer, audience: str, keys: Keys) -> dict[str, dict]:
    """The headers of each credential of CASES."""
    import base64
    import json
    import time

    def unsigned(sub: str) -> str:
        def part(d: dict) -> str:
            return base64.urlsafe_b64encode(json.dumps(d).encode()).rstrip(b"=").decode()
        now = int(time.time())
        claims = {"iss": issuer.issuer, "aud": audience, "sub": sub, "iat": now, "exp": now + 600}
        return f"{part({'alg': 'none', 'kid': issuer.kid})}.{part(claims)}."

    secret = keys.active[-43:]
    wrong = keys.active[:-43] + ("A" if secret[0] != "A" else "B") + secret[1:]
    table = {
        "A's ID token": bearer(issuer.mint(OWNER_A, audience)),
        "server key acting for A": bearer(keys.active, OWNER_A),
        "B's ID token": bearer(issuer.mint(OWNER_B, audience)),
        "server key acting for B": bearer(keys.active, OWNER_B),
        "server key without X-SceneFlow-Owner (acts as key:NAME)": bearer(keys.active),
        "ID token whose sub is the reserved owner default": bearer(issuer.mint("default", audience)),
        "forged ID token of A (another key under the issuer's kid)": bearer(issuer.mint(OWNER_A, audience, key=new_rsa_key())),
        "ID token of A signed by a key the issuer does not publish": bearer(
            issuer.mint(OWNER_A, audience, kid="unpublished", key=new_rsa_key())),
        "expired ID token of A": bearer(issuer.mint(OWNER_A, audience, issued_at=time.time() - 7200)),
        "ID token of A for another audience": bearer(issuer.mint(OWNER_A, "another-project")),
        "ID token of A from another issuer": bearer(issuer.mint(OWNER_A, audience, issuer="https://evil.example/x")),
        "unsigned ID token of A (alg none)": bearer(unsigned(OWNER_A)),
        "revoked server key acting for A": bearer(keys.revoked, OWNER_A),
        "server key with a wrong secret acting for A": bearer(wrong, OWNER_A),
        "no credential": {},
        "Basic credentials": {"Authorization": "Basic " + base64.b64encode(f"{OWNER_A}:x".encode()).decode()},
    }
    assert set(table) == {name for name, _ in CASES}
    return table


def run_table(call: Call, job_id: str, creds: dict[str, dict]) -> dict[tuple[str, str], int]:
    """{(route, credential): status} for A's job: every foreign or bad credential first, then A's job
    must still be untouched (awaiting_upload: no cancel went through), then A's own credentials.
    Every 401 must carry an RFC 6750 challenge (WWW-Authenticate: Bearer ...)."""
    got: dict[tuple[str, str], int] = {}

    def run(name: str) -> None:
        for route, fn in ROUTES.items():
            got[(route, name)] = fn(call, job_id, creds[name])

    for name, status in CASES:
        if status != 200:
            run(name)
    own = call("GET", "export_status", creds["A's ID token"], params={"jobId": job_id})
    assert own.status_code == 200 and own.json()["status"] == "awaiting_upload", own.status_code
    for name, status in CASES:
        if status == 200:
            run(name)
    for route in ROUTES:  # the challenge, once per route
        r = (call("GET", route, {}, params={"jobId": job_id} if route == "export_status" else None)
             if route in ("export_status", "export_list")
             else call("POST", route, {}, json={"jobId": job_id}))
        assert r.status_code == 401 and r.headers.get("WWW-Authenticate", "").startswith("Bearer "), route
    return got


def expected() -> dict[tuple[str, str], int]:
    return {(route, name): status for name, status in CASES for route in ROUTES}
