"""Authentication through the real functions (functions-framework test clients of functions/main.py),
server keys in a real PostgreSQL database, ID tokens of the local issuer served over loopback HTTP
(discovery document and JWKS, fetched by PyJWT as from Firebase Auth): the cross-owner table of
tests/cross_owner.py, revocation at once, idempotency keys per owner, the key CLI."""
from __future__ import annotations

import json

import pytest

from infra import api_keys
from infra.local.issuer import LocalIssuer
from infra.local.stack import fresh_postgres_database
from shared import bootstrap
from shared.auth import new_server_key
from shared.db import engine_for_url, session_factory
from shared.key_store import SqlApiKeyStore
from tests import cross_owner
from tests.cross_owner import OWNER_A, OWNER_B, SPEC, UPLOADS, bearer
from tests.integration.functions_env import make_functions_env

AUDIENCE = "sceneflow-test"


class _Response:
    """A werkzeug test response with requests' names (status_code, headers, json())."""

    def __init__(self, r) -> None:
        self.status_code, self.headers, self._r = r.status_code, r.headers, r

    def json(self):
        return self._r.get_json()


@pytest.fixture(scope="module")
def issuer():
    issuer = LocalIssuer()
    with issuer.serve():  # issuer = its loopback base URL
        yield issuer


@pytest.fixture
def env(tmp_path, pg_url, issuer):
    url = fresh_postgres_database(pg_url, "sceneflow_auth")
    env = make_functions_env(tmp_path, database_url=url, auth="server_key,id_token",
                             oidc_issuer=issuer.issuer, oidc_audience=AUDIENCE)  # JWKS by discovery
    env.url = url
    engine = engine_for_url(url)
    env.keys = SqlApiKeyStore(session_factory(engine))
    try:
        yield env
    finally:
        bootstrap.use_service(None)
        engine.dispose()


def make_key(env, name: str) -> str:
    key = new_server_key()
    env.keys.create(key.key_id, name, key.secret_sha256)
    return key.text


def caller(env):
    def call(method: str, function: str, headers: dict, params: dict | None = None, json: dict | None = None):
        client = env.c[function]
        if method == "GET":
            return _Response(client.get("/", query_string=params or {}, headers=headers))
        return _Response(client.post("/", json=json, headers=headers))
    return call


def start(env, headers: dict, key: str | None = None) -> dict:
    r = env.c["export_start"].post("/", json={"spec": SPEC, "uploads": UPLOADS},
                                   headers={**headers, **({"Idempotency-Key": key} if key else {})})
    assert r.status_code in (200, 202), r.get_json()
    return r.get_json()


def test_another_owner_or_a_bad_credential_never_reaches_a_job(env, issuer):
    active, revoked = make_key(env, "storyapp"), make_key(env, "old-app")
    job = start(env, bearer(issuer.mint(OWNER_A, AUDIENCE)))["jobId"]
    assert start(env, bearer(active, OWNER_A))["jobId"] != job  # a key acting for A starts A's jobs too
    env.keys.revoke(revoked[4:16])
    creds = cross_owner.credentials(issuer, AUDIENCE, cross_owner.Keys(active, revoked))
    assert cross_owner.run_table(caller(env), job, creds) == cross_owner.expected()
    # the job is A's, whoever asks for it: the owner is in the status body
    body = env.c["export_status"].get(f"/?jobId={job}", headers=bearer(active, OWNER_A)).get_json()
    assert (body["owner"], body["status"]) == (OWNER_A, "canceled")


def test_a_revoked_key_is_refused_at_once(env):
    text = make_key(env, "storyapp")
    job = start(env, bearer(text, OWNER_A))["jobId"]
    status = env.c["export_status"]
    assert status.get(f"/?jobId={job}", headers=bearer(text, OWNER_A)).status_code == 200
    assert api_keys_cli(env, "revoke", text[4:16]) == 0
    r = status.get(f"/?jobId={job}", headers=bearer(text, OWNER_A))  # the next request, no cache
    assert r.status_code == 401 and r.get_json()["error"] == {"code": "unauthorized", "message": "invalid server key"}
    assert r.headers["WWW-Authenticate"] == ('Bearer realm="sceneflow-export", error="invalid_token", '
                                             'error_description="invalid server key"')


def test_an_idempotency_key_is_per_owner(env, issuer):
    a, b = bearer(issuer.mint(OWNER_A, AUDIENCE)), bearer(issuer.mint(OWNER_B, AUDIENCE))
    first = start(env, a, key="render-42")
    again = env.c["export_start"].post("/", json={"spec": SPEC, "uploads": UPLOADS},
                                       headers={**a, "Idempotency-Key": "render-42"})
    assert again.status_code == 200 and again.get_json()["jobId"] == first["jobId"]  # A's replay
    r = env.c["export_start"].post("/", json={"spec": SPEC, "uploads": UPLOADS},
                                   headers={**b, "Idempotency-Key": "render-42"})
    assert r.status_code == 202 and r.get_json()["jobId"] != first["jobId"]  # B's own new job
    own = env.c["export_status"].get(f"/?jobId={r.get_json()['jobId']}", headers=b).get_json()
    assert own["owner"] == OWNER_B
    assert env.c["export_status"].get(f"/?jobId={first['jobId']}", headers=b).status_code == 404


def test_the_owner_header_is_checked(env, issuer):
    text = make_key(env, "storyapp")
    r = env.c["export_start"].post("/", json={"spec": SPEC}, headers=bearer(text, "two words"))
    assert r.status_code == 400 and r.get_json()["error"]["details"][0]["path"] == "headers.X-SceneFlow-Owner"
    r = env.c["export_start"].post("/", json={"spec": SPEC}, headers=bearer(issuer.mint(OWNER_A, AUDIENCE), OWNER_B))
    assert r.status_code == 400 and "server key only" in r.get_json()["error"]["message"]


def api_keys_cli(env, *argv: str) -> int:
    import os

    old = {k: os.environ.get(k) for k in ("DATABASE_URL", "EXPORT_AUTO_MIGRATE")}
    os.environ.update({"DATABASE_URL": env.url, "EXPORT_AUTO_MIGRATE": "0"})
    from shared.config import get_settings

    get_settings.cache_clear()
    try:
        return api_keys.main(list(argv))
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        get_settings.cache_clear()


def test_the_key_cli(env, capsys):
    assert api_keys_cli(env, "create", "--name", "storyapp") == 0
    text = capsys.readouterr().out.strip()
    assert text.startswith("sfk_") and len(text) == 4 + 12 + 1 + 43
    job = start(env, bearer(text, OWNER_A))["jobId"]  # the printed key works
    assert api_keys_cli(env, "create", "--name", "storyapp") == 1  # names are unique
    assert "exists already" in capsys.readouterr().err
    assert api_keys_cli(env, "list", "--json") == 0
    [row] = json.loads(capsys.readouterr().out)
    assert row["keyId"] == text[4:16] and row["name"] == "storyapp" and row["revokedAt"] is None
    assert row["lastUsedAt"] is not None  # the start above used it
    assert text[17:] not in json.dumps(row)  # never the secret
    assert api_keys_cli(env, "revoke", "000000000000") == 1
    assert api_keys_cli(env, "revoke", text[4:16]) == 0
    assert env.c["export_status"].get(f"/?jobId={job}", headers=bearer(text, OWNER_A)).status_code == 401
