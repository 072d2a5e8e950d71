"""The local Eventarc of the embedded mode: finalize CloudEvents straight from the in-process
gcp-storage-emulator's upload path (no waiting for the next bucket listing), each exactly once."""
from __future__ import annotations

import http.server
import json
import threading
import time

import requests

from infra.local.eventarc import FinalizePoller
from infra.local.storage_emulator import StorageEmulator


class _Receiver(http.server.ThreadingHTTPServer):
    def __init__(self):
        super().__init__(("127.0.0.1", 0), self._Handler)
        self.events: list[tuple[float, dict, dict]] = []

    class _Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 - http.server's naming
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            self.server.events.append((time.monotonic(), dict(self.headers), body))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            pass


def test_uploads_are_finalized_at_once_and_once(tmp_path):
    receiver = _Receiver()
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    storage = StorageEmulator("demo", ["in-bkt"]).start()
    # the listing only every 60 s: any event within the test comes from the upload hook
    poller = FinalizePoller(storage.url, ["in-bkt"], f"http://127.0.0.1:{receiver.server_port}/",
                            interval_s=60, log_path=tmp_path / "eventarc.log")
    storage.listeners.append(poller.notify)
    poller.start()
    try:
        time.sleep(0.3)  # the poller's first listing (empty bucket) is done
        sent = time.monotonic()
        url = f"{storage.url}/upload/storage/v1/b/in-bkt/o"
        r = requests.post(url, params={"uploadType": "media", "name": "jobs/j1/assets/a.png"}, data=b"x" * 1000,
                          headers={"Content-Type": "image/png"}, timeout=10)
        assert r.status_code == 200, r.text
        deadline = time.monotonic() + 5
        while not receiver.events and time.monotonic() < deadline:
            time.sleep(0.01)
        assert len(receiver.events) == 1
        at, headers, body = receiver.events[0]
        assert at - sent < 1.0  # not the 60 s listing
        assert headers["ce-type"] == "google.cloud.storage.object.v1.finalized"
        assert body["bucket"] == "in-bkt" and body["name"] == "jobs/j1/assets/a.png"
        assert int(body["size"]) == 1000 and body["generation"] == r.json()["generation"]
        # a second object: one more event; a listing of both finds nothing new to deliver
        requests.post(url, params={"uploadType": "media", "name": "b.txt"}, data=b"y", timeout=10).raise_for_status()
        deadline = time.monotonic() + 5
        while len(receiver.events) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        for obj in poller._list("in-bkt"):
            poller.notify({**obj, "bucket": "in-bkt"})
        time.sleep(0.3)
        assert sorted(e[2]["name"] for e in receiver.events) == ["b.txt", "jobs/j1/assets/a.png"]
        assert len(poller.delivered) == 2
    finally:
        poller.stop()
        storage.stop()
        receiver.shutdown()


def test_storage_emulator_queues_many_connections_at_once():
    """The render job downloads 8 assets at a time. The emulator serves one request at a time; with
    the stdlib's listen backlog (5) the kernel dropped the extra SYNs and those clients stalled for the
    1 s SYN retransmission. 20 clients connecting while the server is busy must all get through."""
    import socket

    storage = StorageEmulator("demo", ["in-bkt"]).start()
    socks: list[socket.socket] = []
    try:
        # the first connection keeps the single-threaded server busy (it waits for a request line)
        busy = socket.create_connection(("127.0.0.1", storage.port), timeout=2)
        socks.append(busy)
        time.sleep(0.2)
        connected = 0
        for _ in range(20):
            s = socket.socket()
            s.settimeout(0.5)  # well under the 1 s SYN retransmission of a dropped connection
            try:
                s.connect(("127.0.0.1", storage.port))
                connected += 1
            except OSError:
                pass
            socks.append(s)
        assert connected == 20
        for s in socks:
            s.close()
        # and it serves requests again once those connections are gone
        r = requests.get(f"{storage.url}/storage/v1/b/in-bkt/o", timeout=5)
        assert r.status_code == 200 and r.json().get("items", []) == []
    finally:
        for s in socks:
            s.close()
        storage.stop()
