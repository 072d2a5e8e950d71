"""CORS of the client functions over real HTTP (infra/local/gateway.py's app on werkzeug's threaded
server, functions-framework underneath): a preflight from an allowed origin is 204 with the
contract's headers and no auth check, from any other origin 403 with no Access-Control-* header;
actual answers carry ACAO/Vary/Expose-Headers only for an allowed origin; "*" answers "*"; the
internal functions answer no CORS at all."""
from __future__ import annotations

import threading

import pytest
import requests

from shared import bootstrap
from shared.config import get_settings
from tests.integration.functions_env import SOURCE, make_functions_env

APP = "http://127.0.0.1:5173"
OTHER = "https://evil.example"
TOKEN = "client-token-0123456789"
SPEC = {"title": "One scene", "scenes": [{"id": "a", "visual": {"type": "color", "color": "#102030"}, "duration": 2}]}


@pytest.fixture
def gateway(tmp_path, monkeypatch, request):
    origins = getattr(request, "param", f"{APP} http://localhost:5173")
    monkeypatch.setenv("EXPORT_CORS_ORIGINS", origins)
    get_settings.cache_clear()
    make_functions_env(tmp_path, client_token=TOKEN, auth="client_token", input_bucket="in-bkt",
                       output_bucket="out-bkt", api_base="http://api.test")
    from werkzeug.serving import make_server

    from infra.local.gateway import FUNCTION_NAMES, build_app

    server = make_server("127.0.0.1", 0, build_app(SOURCE, FUNCTION_NAMES), threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join(10)
    bootstrap.use_service(None)
    monkeypatch.delenv("EXPORT_CORS_ORIGINS")
    get_settings.cache_clear()


def preflight(url: str, origin: str | None, method: str, headers: str = "authorization,content-type") -> requests.Response:
    h = {"Access-Control-Request-Method": method, "Access-Control-Request-Headers": headers}
    if origin:
        h["Origin"] = origin
    return requests.options(url, headers=h, timeout=30)


def cors_headers(r: requests.Response) -> dict[str, str]:
    return {k: v for k, v in r.headers.items() if k.lower().startswith("access-control-")}


@pytest.mark.parametrize("name, method", [("export_start", "POST"), ("export_status", "GET"),
                                          ("export_cancel", "POST"), ("export_list", "GET"),
                                          ("export_webhook_secret", "GET")])
def test_a_preflight_from_an_allowed_origin_is_204_without_auth(gateway, name, method):
    r = preflight(f"{gateway}/{name}", APP, method, "authorization,content-type,idempotency-key")
    assert r.status_code == 204, r.text
    assert r.content == b""
    assert cors_headers(r) == {
        "Access-Control-Allow-Origin": APP, "Access-Control-Allow-Methods": f"{method}, OPTIONS",
        "Access-Control-Allow-Headers": "Authorization, Content-Type, Idempotency-Key, X-SceneFlow-Owner, "
                                        "traceparent, X-Cloud-Trace-Context",
        "Access-Control-Max-Age": "3600"}
    assert r.headers["Vary"] == "Origin"
    assert "WWW-Authenticate" not in r.headers  # no auth check on a preflight


@pytest.mark.parametrize("origin", [OTHER, "http://127.0.0.1:5174", "null", None])
def test_a_preflight_from_another_origin_is_refused_without_cors_headers(gateway, origin):
    for name, method in (("export_start", "POST"), ("export_status", "GET")):
        r = preflight(f"{gateway}/{name}", origin, method)
        assert r.status_code == 403, r.text
        assert cors_headers(r) == {}
        assert r.json()["error"]["code"] == "origin_not_allowed"


def test_actual_answers_carry_cors_headers_for_allowed_origins_only(gateway):
    auth = {"Authorization": f"Bearer {TOKEN}"}
    r = requests.post(f"{gateway}/export_start", json={"spec": SPEC}, timeout=30,
                      headers={**auth, "Origin": APP, "Idempotency-Key": "k-1"})
    assert r.status_code == 202, r.text
    assert cors_headers(r) == {"Access-Control-Allow-Origin": APP, "Access-Control-Expose-Headers": "WWW-Authenticate"}
    assert r.headers["Vary"] == "Origin"
    job_id = r.json()["jobId"]
    r = requests.get(f"{gateway}/export_status", params={"jobId": job_id}, timeout=30,
                     headers={**auth, "Origin": "http://localhost:5173"})
    assert r.status_code == 200 and r.json()["jobId"] == job_id
    assert r.headers["Access-Control-Allow-Origin"] == "http://localhost:5173"
    # another origin: the same answer as today, no CORS header (the browser hides it from the page)
    r = requests.get(f"{gateway}/export_status", params={"jobId": job_id}, timeout=30, headers={**auth, "Origin": OTHER})
    assert r.status_code == 200 and r.json()["jobId"] == job_id and cors_headers(r) == {}
    r = requests.get(f"{gateway}/export_status", params={"jobId": job_id}, timeout=30, headers=auth)
    assert r.status_code == 200 and cors_headers(r) == {}
    # an error answer is readable by the page too: the 401 and its challenge
    r = requests.get(f"{gateway}/export_status", params={"jobId": job_id}, timeout=30, headers={"Origin": APP})
    assert r.status_code == 401 and r.headers["WWW-Authenticate"].startswith("Bearer")
    assert r.headers["Access-Control-Allow-Origin"] == APP
    assert r.headers["Access-Control-Expose-Headers"] == "WWW-Authenticate"


def test_internal_functions_answer_no_cors(gateway):
    for name in ("export_complete", "reconcile_exports"):
        r = preflight(f"{gateway}/{name}", APP, "POST")
        assert r.status_code == 405 and cors_headers(r) == {}
        r = requests.post(f"{gateway}/{name}", json={}, headers={"Origin": APP}, timeout=30)
        assert "Access-Control-Allow-Origin" not in r.headers


@pytest.mark.parametrize("gateway", ["*"], indirect=True)
def test_any_origin_answers_star(gateway):
    r = preflight(f"{gateway}/export_start", OTHER, "POST")
    assert r.status_code == 204 and r.headers["Access-Control-Allow-Origin"] == "*"
    assert "Access-Control-Allow-Credentials" not in r.headers  # bearer tokens, not cookies
    r = requests.get(f"{gateway}/export_list", headers={"Origin": OTHER, "Authorization": f"Bearer {TOKEN}"}, timeout=30)
    assert r.status_code == 200 and r.headers["Access-Control-Allow-Origin"] == "*"
    assert preflight(f"{gateway}/export_start", None, "POST").status_code == 403  # no Origin: no preflight


@pytest.mark.parametrize("gateway", [""], indirect=True)
def test_no_origin_by_default(gateway):
    r = preflight(f"{gateway}/export_start", APP, "POST")
    assert r.status_code == 403 and cors_headers(r) == {}


def test_a_malformed_setting_is_503_naming_it(gateway, monkeypatch):
    monkeypatch.setenv("EXPORT_CORS_ORIGINS", "https://app.example.com/")
    get_settings.cache_clear()
    r = preflight(f"{gateway}/export_start", APP, "POST")
    assert r.status_code == 503 and cors_headers(r) == {}
    assert r.json()["error"]["code"] == "misconfigured"
    assert "EXPORT_CORS_ORIGINS='https://app.example.com/'" in r.json()["error"]["message"]


def test_another_broken_setting_is_a_503_the_page_can_read(gateway, monkeypatch):
    """EXPORT_CORS_ORIGINS is fine, another setting is not: the preflight still passes and the 503
    "misconfigured" carries ACAO, else the browser shows a CORS failure instead of the reason."""
    monkeypatch.setenv("EXPORT_MAX_BODY_BYTES", "lots")
    get_settings.cache_clear()
    r = preflight(f"{gateway}/export_start", APP, "POST")
    assert r.status_code == 204 and r.headers["Access-Control-Allow-Origin"] == APP
    assert preflight(f"{gateway}/export_start", OTHER, "POST").status_code == 403
    r = requests.post(f"{gateway}/export_start", json={"spec": SPEC}, timeout=30,
                      headers={"Authorization": f"Bearer {TOKEN}", "Origin": APP})
    assert r.status_code == 503 and r.json()["error"]["code"] == "misconfigured"
    assert "EXPORT_MAX_BODY_BYTES='lots'" in r.json()["error"]["message"]
    assert cors_headers(r) == {"Access-Control-Allow-Origin": APP, "Access-Control-Expose-Headers": "WWW-Authenticate"}
    r = requests.post(f"{gateway}/export_start", json={"spec": SPEC}, timeout=30,
                      headers={"Authorization": f"Bearer {TOKEN}", "Origin": OTHER})
    assert r.status_code == 503 and cors_headers(r) == {}
