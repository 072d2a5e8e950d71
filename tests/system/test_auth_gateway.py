"""Authentication through the real functions gateway over loopback HTTP (infra/local/stack.py with
auth=True): server keys in PostgreSQL, ID tokens of the stack's issuer, which the gateway itself
serves at {base}/issuer (discovery + JWKS) and the functions fetch over HTTP. The cross-owner table
of tests/cross_owner.py, as in tests/integration/test_auth_functions.py."""
from __future__ import annotations

import pytest
import requests

from infra.local.stack import EmbeddedStack, fresh_postgres_database
from shared.db import engine_for_url, session_factory
from shared.key_store import SqlApiKeyStore
from tests import cross_owner
from tests.cross_owner import OWNER_A, OWNER_B, SPEC, UPLOADS, bearer


@pytest.fixture(scope="module")
def stack(pg_url, run_dir):
    url = fresh_postgres_database(pg_url, "sceneflow_auth_sys")
    stack = EmbeddedStack(run_dir=run_dir / "auth-gateway", auth=True, extra_env={"DATABASE_URL": url})
    try:
        stack.start()
        yield stack
    finally:
        stack.stop()


def call_with(stack):
    def call(method: str, function: str, headers: dict, params: dict | None = None, json: dict | None = None):
        return requests.request(method, stack.url(function), headers=headers, params=params,
                                json=json if method == "POST" else None, timeout=30)
    return call


def test_the_issuer_is_served_on_the_gateway(stack):
    doc = requests.get(f"{stack.base}/issuer/.well-known/openid-configuration", timeout=10).json()
    assert doc["issuer"] == stack.env["EXPORT_OIDC_ISSUER"] == f"{stack.base}/issuer"
    keys = requests.get(doc["jwks_uri"], timeout=10).json()["keys"]
    assert [k["kid"] for k in keys] == [stack.issuer.kid] and all("d" not in k for k in keys)  # public only


def test_cross_owner_table_through_the_gateway(stack):
    active, revoked = stack.server_key("storyapp"), stack.server_key("old-app")
    call = call_with(stack)
    r = call("POST", "export_start", bearer(stack.id_token(OWNER_A)), json={"spec": SPEC, "uploads": UPLOADS})
    assert r.status_code == 202, r.text
    job = r.json()["jobId"]
    engine = engine_for_url(stack.env["DATABASE_URL"])
    try:
        SqlApiKeyStore(session_factory(engine)).revoke(revoked[4:16])
    finally:
        engine.dispose()
    creds = cross_owner.credentials(stack.issuer, stack.audience, cross_owner.Keys(active, revoked))
    assert cross_owner.run_table(call, job, creds) == cross_owner.expected()
    # B's start with A's idempotency key is B's own job
    a = call("POST", "export_start", {**bearer(active, OWNER_A), "Idempotency-Key": "k-1"},
             json={"spec": SPEC, "uploads": UPLOADS})
    b = call("POST", "export_start", {**bearer(stack.id_token(OWNER_B)), "Idempotency-Key": "k-1"},
             json={"spec": SPEC, "uploads": UPLOADS})
    assert (a.status_code, b.status_code) == (202, 202) and a.json()["jobId"] != b.json()["jobId"]

