"""The embedded stack gives the functions and the storage stand-in the same EXPORT_CORS_ORIGINS: a
page's origin passes the preflights of export_start and of the signed PUT it is handed, the PUT's
answer carries its Access-Control-Allow-Origin; another origin is refused at both preflights."""
from __future__ import annotations

import requests

from infra.local.stack import EmbeddedStack

PAGE = "http://127.0.0.1:5173"
OTHER = "https://evil.example"


def test_one_setting_reaches_the_functions_and_the_buckets(tmp_path):
    with EmbeddedStack(run_dir=tmp_path, extra_env={"EXPORT_CORS_ORIGINS": PAGE}) as stack:
        start = f"{stack.base}/export_start"
        ask = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "content-type"}
        assert requests.options(start, headers={"Origin": PAGE, **ask}, timeout=30).status_code == 204
        assert requests.options(start, headers={"Origin": OTHER, **ask}, timeout=30).status_code == 403
        spec = {"scenes": [{"id": "s", "visual": {"type": "image", "src": "a.png"}, "duration": 2}]}
        r = requests.post(start, json={"spec": spec, "uploads": [{"name": "a.png", "contentType": "image/png"}]},
                          headers={"Origin": PAGE}, timeout=60)
        assert r.status_code == 202 and r.headers["Access-Control-Allow-Origin"] == PAGE
        up = r.json()["uploads"][0]
        put = {"Access-Control-Request-Method": "PUT",
               "Access-Control-Request-Headers": "content-type,x-goog-content-length-range"}
        ok = requests.options(up["url"], headers={"Origin": PAGE, **put}, timeout=30)
        assert ok.headers.get("Access-Control-Allow-Origin") == PAGE
        refused = requests.options(up["url"], headers={"Origin": OTHER, **put}, timeout=30)
        assert "Access-Control-Allow-Origin" not in refused.headers
        r = requests.put(up["url"], data=b"\x89PNG" + b"\0" * 60, headers={**up["headers"], "Origin": PAGE}, timeout=30)
        assert r.status_code == 200 and r.headers["Access-Control-Allow-Origin"] == PAGE
