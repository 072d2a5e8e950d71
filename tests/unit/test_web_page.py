"""The example page's server (infra/local/web_page.py) and the local issuer's token endpoint, without a
browser or a stack: what /config.json says, which files are served, and the tokens it hands out."""
from __future__ import annotations

import json
from types import SimpleNamespace

import jwt
import pytest
from werkzeug.test import Client

from infra.local.issuer import LocalIssuer
from infra.local.web_page import EXAMPLE_ASSETS, WebPage


@pytest.fixture(scope="module")
def page():
    stack = SimpleNamespace(base="http://127.0.0.1:5001", issuer=LocalIssuer("http://127.0.0.1:5001/issuer"),
                            audience="sceneflow-local", auth=True)
    return WebPage(stack, port=5002)


def test_config_names_the_api_and_issuer_of_the_stack(page):
    r = Client(page.app).get("/config.json")
    assert r.status_code == 200 and r.headers["Content-Type"] == "application/json"
    assert r.get_json() == {"apiBase": "http://127.0.0.1:5001", "issuer": "http://127.0.0.1:5001/issuer",
                            "audience": "sceneflow-local", "tokenUrl": "/issuer/token",
                            "storyboardUrl": "example/storyboard.json", "assetsBase": "example/storyboard/",
                            "authRequired": True}
    assert page.origin == "http://127.0.0.1:5002"


@pytest.mark.parametrize("path, content_type", [("/", "text/html; charset=utf-8"),
                                                ("/app.js", "text/javascript; charset=utf-8"),
                                                ("/style.css", "text/css; charset=utf-8"),
                                                ("/example/storyboard/n2.mp3", "audio/mpeg"),
                                                ("/example/storyboard/music.ogg", "audio/ogg"),
                                                ("/example/storyboard/rocket.jpg", "image/jpeg")])
def test_the_page_and_the_example_are_served(page, path, content_type):
    r = Client(page.app).get(path)
    assert (r.status_code, r.headers["Content-Type"]) == (200, content_type)
    if path.startswith("/example/"):
        assert r.data == (EXAMPLE_ASSETS / path.rsplit("/", 1)[1]).read_bytes()


@pytest.mark.parametrize("path", ["/example/storyboard/../storyboard.json", "/example/storyboard/..%2Fdemo.py",
                                  "/demo.py", "/web_page.py", "/example/storyboard/", "/example/storyboard/.x"])
def test_nothing_else_is_served(page, path):
    assert Client(page.app).get(path).status_code == 404


def test_the_token_endpoint_mints_an_id_token_of_the_stacks_issuer(page):
    r = Client(page.app).post("/issuer/token", json={"sub": "author-7"})
    assert r.status_code == 200
    token = r.get_json()["idToken"]
    issuer = page.stack.issuer
    key = issuer.keys[issuer.kid].public_key()
    claims = jwt.decode(token, key, algorithms=["RS256"], audience="sceneflow-local", issuer=issuer.issuer)
    assert claims["sub"] == "author-7" and claims["exp"] - claims["iat"] == 3600


@pytest.mark.parametrize("body", [{}, {"sub": ""}, {"sub": "a b"}, {"sub": "x" * 129}, {"sub": 7}, "not json"])
def test_the_token_endpoint_names_a_bad_sub(page, body):
    data = body if isinstance(body, str) else json.dumps(body)
    r = Client(page.app).post("/issuer/token", data=data, content_type="application/json")
    assert r.status_code == 400
    assert r.get_json()["error"]["details"] == [{"path": "sub", "message": "1-128 printable ASCII characters, no spaces"}]


def test_the_token_endpoint_is_post_only(page):
    assert Client(page.app).get("/issuer/token").status_code == 405


@pytest.mark.parametrize("origin", ["https://evil.example", "http://127.0.0.1:5003", "null",
                                    "http://localhost:5002"])  # and what DNS rebinding would send
def test_the_token_endpoint_refuses_another_origin(page, origin):
    """A page elsewhere (or a rebound host name) must not mint tokens: its answer is unreadable, but
    the mint itself is the stand-in for a sign-in of whoever it names."""
    r = Client(page.app).post("/issuer/token", json={"sub": "alice"}, headers={"Origin": origin})
    assert r.status_code == 403
    assert r.get_json()["error"]["code"] == "origin_not_allowed" and "idToken" not in r.get_json()
    assert Client(page.app).post("/issuer/token", json={"sub": "alice"},
                                 headers={"Origin": page.origin}).status_code == 200


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", None])
def test_the_token_endpoint_takes_json_only(page, content_type):
    """A JSON body only: a cross-origin fetch of it is then always preflighted (and the preflight, an
    OPTIONS, is refused), never a "simple" request sent without asking."""
    r = Client(page.app).post("/issuer/token", data='{"sub": "alice"}', content_type=content_type)
    assert r.status_code == 415 and "idToken" not in r.get_json()
    assert r.get_json()["error"]["code"] == "unsupported_media_type"
