"""The pure-Python gcp-storage-emulator, in this process and in memory (the embedded mode's GCS).

`StorageEmulator(project, buckets).start()` serves on 127.0.0.1:PORT with `buckets` created
(`create_buckets`, through the JSON API, also used for fake-gcs-server), calls `listeners` on each
completed upload and checks signed XML-API uploads like GCS (signed_urls.py, storage_handler.py).
"""
from __future__ import annotations

from typing import Any, Callable

import requests

from infra.local.process import Service, ServiceError, free_port, http_ok, wait_until


def create_buckets(url: str, project: str, buckets: list[str]) -> None:
    """Create `buckets` through the JSON API at `url` (an existing one is fine); both storage stand-ins."""
    for b in buckets:
        r = requests.post(f"{url}/storage/v1/b", params={"project": project}, json={"name": b},
                          timeout=10)
        if r.status_code not in (200, 409):
            raise ServiceError(f"creating bucket {b} at {url}: {r.status_code} {r.text[:300]}")


EMULATOR_LISTEN_BACKLOG = 128  # connections the storage emulator queues (the stdlib default is 5)


class StorageEmulator(Service):
    """The pure-Python gcp-storage-emulator in this process, in memory, with `buckets` created.

    `listeners` (callables taking the new object's JSON resource, with "bucket" and "name") are called
    in the emulator's request thread each time an upload completes (simple, multipart or resumable):
    the emulator has no notifications, so this is how a local Eventarc learns of a finalize at once,
    without listing the buckets over and over (FinalizePoller.notify).

    An upload to the XML API (/BUCKET/OBJECT: what signed upload URLs address; also POST & co. with
    X-HTTP-Method-Override: PUT) is checked like GCS checks a V4 signed URL (infra/local/signed_urls.py,
    storage_handler.py) against the keys in `verifier` (`verifier.trust(service_account_key)`):
    signature, expiry, signed Content-Type and x-goog-content-length-range; a refused one gets GCS's
    XML error and stores nothing. The JSON API is anonymous, as the local services use it.

    CORS: `cors` maps a bucket to its CORS configuration in GCS's JSON shape (shared.cors.bucket_cors;
    none: no CORS), applied to XML-API requests as GCS applies it (storage_handler.py, gcs_cors.py);
    `set_cors_origins` sets both buckets' from EXPORT_CORS_ORIGINS, as deploy.sh and Terraform do.
    """

    name = "storage-emulator"

    def __init__(self, project: str, buckets: list[str], port: int | None = None) -> None:
        from infra.local.signed_urls import SignedUrlVerifier

        self.project = project
        self.buckets = buckets
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._server = None
        self.listeners: list[Callable[[dict[str, Any]], None]] = []
        self.verifier = SignedUrlVerifier()
        self.cors: dict[str, list[dict]] = {}

    def set_cors_origins(self, origins: str, input_bucket: str, output_bucket: str) -> None:
        """Both buckets' CORS rule from an EXPORT_CORS_ORIGINS value (ValueError when malformed)."""
        from shared.cors import bucket_cors, parse_origins

        allowed = parse_origins(origins)
        self.cors = {input_bucket: bucket_cors("input", allowed), output_bucket: bucket_cors("output", allowed)}

    def _hook_uploads(self) -> None:
        # every completed upload ends in Storage.create_file(bucket, name, content, file_obj, file_id)
        storage = self._server._storage  # type: ignore[attr-defined]
        create_file = storage.create_file

        def create_file_and_notify(bucket_name, file_name, content, file_obj, file_id=None):
            create_file(bucket_name, file_name, content, file_obj, file_id)
            obj = {**file_obj, "bucket": bucket_name, "name": file_name}
            for listener in list(self.listeners):
                listener(obj)

        storage.create_file = create_file_and_notify

    def _deepen_backlog(self) -> None:
        # The emulator serves from one http.server.HTTPServer: one request at a time, HTTP/1.0 (a new
        # connection per request), and the stdlib's listen backlog of 5 (socketserver.TCPServer.
        # request_queue_size). When more than about 5 clients connect at once (the render job
        # downloads 8 assets at a time), the kernel drops the extra SYNs and each of those clients
        # waits for its SYN retransmission: 1 s (BENCHMARKS.md, "Findings still true" 16). A deep
        # backlog queues them instead; requests are still served one at a time, so
        # the emulator's storage (not thread-safe) is untouched.
        from functools import partial
        from http.server import HTTPServer

        from gcp_storage_emulator.server import RequestHandler

        from infra.local.storage_handler import verifying_handler

        api = self._server._api  # type: ignore[attr-defined]
        handler = verifying_handler(RequestHandler, self.verifier, lambda bucket: self.cors.get(bucket, []))

        class DeepBacklogHTTPServer(HTTPServer):
            request_queue_size = EMULATOR_LISTEN_BACKLOG

        def run() -> None:  # gcp_storage_emulator.server.APIThread.run with the deeper backlog
            api._httpd = DeepBacklogHTTPServer((api._host, api._port), partial(handler, api._storage))
            api.is_running.set()
            api._httpd.serve_forever()

        api.run = run

    def start(self) -> "StorageEmulator":
        import logging

        from gcp_storage_emulator.server import create_server

        logging.getLogger("gcp_storage_emulator").setLevel(logging.ERROR)
        self._server = create_server("127.0.0.1", self.port, in_memory=True)
        self._deepen_backlog()
        self._hook_uploads()
        self._server.start()
        wait_until(lambda: http_ok(f"{self.url}/"), 10, "gcp-storage-emulator")
        create_buckets(self.url, self.project, self.buckets)
        return self

    def stop(self) -> None:
        if self._server is not None:
            try:
                self._server.stop()
            finally:
                self._server = None
