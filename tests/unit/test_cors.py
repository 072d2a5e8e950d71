"""shared/cors.py: EXPORT_CORS_ORIGINS's rule (exact origins, "*", malformed ones named), the
functions' preflight and actual headers, the buckets' GCS CORS JSON and its command line."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from shared import cors
from shared.config import ConfigError, Settings
from shared.identity import OWNER_HEADER

ROOT = Path(__file__).resolve().parents[2]
APP = "https://app.example.com"


def test_origins_are_exact_and_listed_once():
    assert cors.parse_origins("") == ()
    assert cors.parse_origins(f"{APP}, http://127.0.0.1:8080 {APP}") == (APP, "http://127.0.0.1:8080")
    assert cors.parse_origins(" * ") == ("*",)
    assert cors.parse_origins("http://[::1]:5173") == ("http://[::1]:5173",)


@pytest.mark.parametrize("bad, why", [
    ("https://app.example.com/", "no path or trailing slash"),
    ("https://app.example.com/upload", "no path or trailing slash"),
    ("https://App.example.com", "lower case"),
    ("app.example.com", "expected http:// or https://"),
    ("ftp://app.example.com", "expected http:// or https://"),
    ("https://app.example.com:443", "default port 443"),
    ("http://localhost:80", "default port 80"),
    ("http://localhost:99999", "1 to 65535"),
    ("http://localhost:0", "1 to 65535"),  # no browser sends port 0
    ("http://localhost:0808", "without leading zeros"),
    ("https://app_example.com", "scheme://host[:port]"),
    ("https://", "scheme://host[:port]"),
])
def test_a_malformed_origin_is_named_with_why(bad, why):
    with pytest.raises(ValueError) as exc:
        cors.parse_origins(f"{APP},{bad}")
    assert repr(bad) in str(exc.value) and why in str(exc.value)


def test_any_stands_alone():
    with pytest.raises(ValueError, match=r"\* \(any origin\) cannot be combined"):
        cors.parse_origins(f"*,{APP}")


def test_the_setting_is_checked_and_named():
    assert Settings().cors_allowed == ()  # the default: no browser origin
    assert Settings(cors_origins=f"{APP} http://localhost:5173").cors_allowed == (APP, "http://localhost:5173")
    with pytest.raises(ConfigError) as exc:
        Settings(cors_origins="https://app.example.com/")
    assert exc.value.problems == ["EXPORT_CORS_ORIGINS='https://app.example.com/': 'https://app.example.com/' "
                                  "is not an origin: no path or trailing slash (scheme://host[:port])"]


def test_matching():
    origins = (APP, "http://localhost:5173")
    assert cors.allow_origin(APP, origins) == APP
    assert cors.allow_origin("http://localhost:5173", origins) == "http://localhost:5173"
    for other in ("https://app.example.com.evil.test", "http://app.example.com", "https://APP.example.com",
                  "null", "", None):
        assert cors.allow_origin(other, origins) is None
    assert cors.allow_origin("https://any.test", ("*",)) == "*"
    assert cors.allow_origin(None, ("*",)) is None  # no Origin: not a CORS request
    assert cors.allow_origin(APP, ()) is None


def test_preflight_and_actual_headers():
    assert cors.preflight_headers(APP, (APP,), ("POST",)) == {
        "Access-Control-Allow-Origin": APP, "Vary": "Origin", "Access-Control-Allow-Methods": "POST, OPTIONS",
        "Access-Control-Allow-Headers": "Authorization, Content-Type, Idempotency-Key, X-SceneFlow-Owner, "
                                        "traceparent, X-Cloud-Trace-Context",
        "Access-Control-Max-Age": "3600"}
    assert cors.preflight_headers("https://other.test", (APP,), ("POST",)) is None
    assert cors.preflight_headers(None, ("*",), ("GET",)) is None
    assert cors.preflight_headers("https://other.test", ("*",), ("GET",))["Access-Control-Allow-Origin"] == "*"
    assert cors.actual_headers(APP, (APP,)) == {"Access-Control-Allow-Origin": APP, "Vary": "Origin",
                                                "Access-Control-Expose-Headers": "WWW-Authenticate"}
    assert cors.actual_headers("https://other.test", (APP,)) == {}
    assert OWNER_HEADER in cors.FUNCTION_REQUEST_HEADERS  # the name shared.auth reads


def test_bucket_cors_json():
    assert cors.bucket_cors("input", (APP,)) == [{
        "origin": [APP], "method": ["PUT"], "responseHeader": ["Content-Type", "x-goog-content-length-range"],
        "maxAgeSeconds": 3600}]
    out = cors.bucket_cors("output", ("*",))[0]
    assert out["origin"] == ["*"] and out["method"] == ["GET", "HEAD"]
    assert {"Content-Type", "Content-Disposition", "Content-Range", "Range"} <= set(out["responseHeader"])
    assert cors.bucket_cors("input", ()) == [] == cors.bucket_cors("output", ())


def run_cli(*args: str) -> subprocess.CompletedProcess:
    # as deploy.sh runs it: any python 3, the repository on the path, nothing installed
    return subprocess.run([sys.executable, "-I", "-c", "import sys; sys.path.insert(0, sys.argv.pop(1)); "
                           "from shared.cors import main; sys.exit(main(sys.argv[1:]))", str(ROOT), *args],
                          capture_output=True, text=True, timeout=60)


def test_the_command_line_prints_the_json_or_names_the_bad_origin():
    r = run_cli("bucket-json", "output", f"{APP},http://localhost:5173")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == cors.bucket_cors("output", (APP, "http://localhost:5173"))
    r = run_cli("bucket-json", "input", "https://app.example.com/")
    assert r.returncode == 2 and "EXPORT_CORS_ORIGINS: 'https://app.example.com/' is not an origin" in r.stderr
    assert run_cli("bucket-json", "sources", APP).returncode == 2
