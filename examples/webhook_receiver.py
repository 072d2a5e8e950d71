"""A runnable SceneFlow webhook receiver: stdlib http.server + the `standardwebhooks` package.

    SCENEFLOW_WEBHOOK_SECRET=whsec_... python examples/webhook_receiver.py [--port 8000]

It answers 204 to a call whose Standard Webhooks signature verifies (webhook-id, webhook-timestamp,
webhook-signature over "id.timestamp.body" with your secret), and refuses:
- a bad or missing signature: 401;
- a timestamp more than 5 minutes from now (a captured call replayed later): 401 (the package checks it);
- a webhook-id already processed (a retry after a lost answer, or a replay within 5 minutes): 200
  without processing it again (the sender must stop retrying it).
Get the secret from GET {base}/export_webhook_secret (README: Receive webhooks). Behind TLS in
production: SceneFlow only calls https URLs of public addresses.
"""
from __future__ import annotations

import argparse
import json
import os
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from standardwebhooks import Webhook, WebhookVerificationError

TOLERANCE_S = 5 * 60  # the package refuses older timestamps; ids are remembered a little longer


class SeenIds:
    """webhook-ids seen in the last 10 minutes (a timestamp older than 5 is refused anyway)."""

    def __init__(self) -> None:
        self._seen: dict[str, float] = {}
        self._lock = threading.Lock()

    def first_time(self, msg_id: str) -> bool:
        now = time.time()
        with self._lock:
            self._seen = {k: t for k, t in self._seen.items() if now - t < 2 * TOLERANCE_S}
            if msg_id in self._seen:
                return False
            self._seen[msg_id] = now
            return True


def handle_event(event: dict) -> None:
    """Your code: e.g. mark the author's export finished and show the video."""
    data = event["data"]
    print(f"{event['type']}: job {data['jobId']} is {data['status']}"
          + (f" ({data['output']['filename']})" if data.get("output") else ""), flush=True)


def make_handler(webhook: Webhook, seen: SeenIds):
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 - http.server's name
            body = self.rfile.read(int(self.headers.get("content-length") or 0))
            try:
                event = webhook.verify(body, dict(self.headers))  # signature and timestamp
            except WebhookVerificationError as exc:
                return self._answer(401, {"error": str(exc)})
            if not seen.first_time(self.headers["webhook-id"]):
                return self._answer(200, {"duplicate": True})
            handle_event(event)
            self._answer(204, None)

        def _answer(self, status: int, body: dict | None) -> None:
            raw = json.dumps(body).encode() if body is not None else b""
            self.send_response(status)
            self.send_header("Content-Length", str(len(raw)))
            if raw:
                self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(raw)

    return Handler


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--host", default="127.0.0.1")
    args = p.parse_args(argv)
    secret = os.environ.get("SCENEFLOW_WEBHOOK_SECRET")
    if not secret:
        raise SystemExit("set SCENEFLOW_WEBHOOK_SECRET (GET /export_webhook_secret gives it)")
    server = ThreadingHTTPServer((args.host, args.port), make_handler(Webhook(secret), SeenIds()))
    print(f"listening on http://{args.host}:{args.port}/", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
