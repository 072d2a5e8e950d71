"""examples/webhook_receiver.py as a receiver sees SceneFlow's calls (signed by shared.webhook_signing):
a good call is processed (204), its replay with the same webhook-id is not processed again (200), a
bad signature or a 6-minute-old timestamp is refused (401)."""
from __future__ import annotations

import json
import threading
import time
from http.server import ThreadingHTTPServer

import pytest
import requests
from standardwebhooks import Webhook

from examples import webhook_receiver as example
from shared.webhook_signing import headers, new_secret


@pytest.fixture
def receiver(monkeypatch):
    handled = []
    monkeypatch.setattr(example, "handle_event", handled.append)
    secret = new_secret()
    server = ThreadingHTTPServer(("127.0.0.1", 0), example.make_handler(Webhook(secret), example.SeenIds()))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/", secret, handled
    server.shutdown()
    server.server_close()


def test_the_example_receiver_verifies_dedupes_and_refuses_replays(receiver):
    url, secret, handled = receiver
    body = json.dumps({"type": "export.succeeded", "timestamp": "2026-12-05T00:00:00.000Z",
                       "data": {"jobId": "j1", "status": "succeeded"}}).encode()
    now = int(time.time())
    assert requests.post(url, data=body, headers=headers(secret, "evt_1", now, body), timeout=5).status_code == 204
    assert requests.post(url, data=body, headers=headers(secret, "evt_1", now + 30, body), timeout=5).status_code == 200
    assert [e["data"]["jobId"] for e in handled] == ["j1"]  # processed once
    forged = headers(new_secret(), "evt_2", now, body)
    assert requests.post(url, data=body, headers=forged, timeout=5).status_code == 401
    old = headers(secret, "evt_3", now - 360, body)
    r = requests.post(url, data=body, headers=old, timeout=5)
    assert r.status_code == 401 and "too old" in r.json()["error"]
    assert len(handled) == 1
