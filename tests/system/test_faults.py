"""Fault tests on real PostgreSQL (issue 5, item 7; RELIABILITY.md has the figures).

a. the render job SIGKILLed in its first attempt (a wrapper RENDER_PYTHON kills the task's process
   group while FFmpeg renders) finishes on the retry: one MP4, one succeeded job, attempts 2;
b. dispatch_export raising after its claim (the launcher's run_job fails once) is redelivered by
   the push publisher, and by the Pub/Sub emulator's push subscription, and starts one execution;
c. PostgreSQL restarted during a burst of export_start / export_status against the gateway: 503
   (never 500, never internals) during the outage, success on retry, every 202'd job kept, no job
   doubled (Idempotency-Key);
d. 50 concurrent deliveries of one Pub/Sub push body start exactly one execution.

Every job a test creates ends succeeded, failed or canceled (asserted). Nothing here adds a
test-only path to production code: faults come from a wrapper interpreter script, a failing
RecordingLauncher (tests/fakes.py), and pg_ctl.
"""
from __future__ import annotations

import base64
import json
import os
import stat
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests

from infra.local.postgres import Postgres, postgres_available
from infra.local.stack import EmbeddedStack, fresh_postgres_database, migrate
from sceneflow_flows import FFMPEG_FINDER, wait_for_condition
from shared import bootstrap
from shared.adapters.local_pubsub import HttpPushPublisher, push_body
from shared.adapters.local_storage import LocalStorage
from shared.config import Settings
from tests.fakes import RecordingLauncher, RecordingPublisher
from tests.invariants import check_service, check_stack

ROOT = Path(__file__).resolve().parents[2]
SOURCE = str(ROOT / "functions" / "main.py")
TERMINAL = {"succeeded", "failed", "canceled"}
PROJECT = "sceneflow-faults"
TOKEN = "faults-worker-token"

# A color-only storyboard (no uploads: queued at once, one publish). Three 1.5 s scenes at 720p
# draft with burned-in captions keep FFmpeg busy for a moment, long enough to be killed mid-run.
COLOR_SPEC = {
    "version": 1, "title": "Fault test",
    "output": {"resolution": "720p", "aspectRatio": "16:9", "fps": 30, "quality": "draft"},
    "scenes": [{"id": f"s{i}", "visual": {"type": "color", "color": c}, "duration": 1.5,
                "caption": {"text": f"Scene {i}: still here after a kill"},
                "transition": {"type": "fade", "duration": 0.4}}
               for i, c in enumerate(("#203040", "#402030", "#304020"))],
    "captions": {"burnIn": True, "sidecar": ["srt", "vtt"]},
}


def _required(var: str) -> bool:
    return os.environ.get(var, "").strip().lower() in {"1", "true", "yes", "on"}


def fresh_db(pg_url: str) -> str:
    """A new, migrated database on pg_url's server."""
    url = fresh_postgres_database(pg_url, prefix="sceneflow_faults")
    migrate(url)
    return url


def db_rows(url: str, sql: str) -> list:
    import pg8000.native
    from sqlalchemy.engine import make_url

    u = make_url(url)
    conn = pg8000.native.Connection(u.username or "postgres", host=u.host, port=u.port, password=u.password,
                                    database=u.database)
    try:
        return conn.run(sql)
    finally:
        conn.close()


def statuses_by_job(url: str) -> dict[str, str]:
    return {r[0]: r[1] for r in db_rows(url, "SELECT id, status FROM export_jobs")}


# --------------------------------------------------------------------------------------------
# in-process functions on a real server (for b and d): functions/main.py through
# functions-framework, served by a threaded werkzeug server, on a service we wire here.


class _Recorder:
    """WSGI middleware recording (path, HTTP status) of every answer."""

    def __init__(self, app):
        self.app, self.calls, self._lock = app, [], threading.Lock()

    def __call__(self, environ, start_response):
        path = environ.get("PATH_INFO", "")

        def sr(status, headers, exc_info=None):
            with self._lock:
                self.calls.append((path, int(status.split()[0])))
            return start_response(status, headers, exc_info)

        return self.app(environ, sr)

    def codes(self, prefix: str) -> list[int]:
        with self._lock:
            return [c for p, c in self.calls if p.startswith(prefix)]


@contextmanager
def in_process_functions(db_url: str, tmp_path: Path, launcher, publisher=None):
    """Yields (base URL, service, recorder). `publisher` None: an HttpPushPublisher to this
    server's dispatch_export (the embedded mode's loopback push, with its retries)."""
    from werkzeug.serving import make_server

    from infra.local.gateway import build_app

    recorder = _Recorder(build_app(SOURCE, ("export_start", "export_status", "export_cancel", "dispatch_export")))
    server = make_server("127.0.0.1", 0, recorder, threaded=True)
    base = f"http://127.0.0.1:{server.server_port}"
    settings = Settings(project=PROJECT, database_url=db_url, input_bucket="in", output_bucket="out",
                        worker_token=TOKEN, api_base=base)
    service = bootstrap.build_service(
        settings, storage=LocalStorage(tmp_path / "gcs"), launcher=launcher,
        publisher=publisher or HttpPushPublisher(f"{base}/dispatch_export", PROJECT), migrate_db=False)
    bootstrap.use_service(service)
    thread = threading.Thread(target=server.serve_forever, daemon=True, name="faults-functions")
    thread.start()
    try:
        yield base, service, recorder
        check_service(service)  # every succeeded job has its own video (tests/invariants.py)
    finally:
        server.shutdown()
        thread.join(10)
        bootstrap.use_service(None)
        service.repo._sessions.kw["bind"].dispose()


def start_color_job(base: str, key: str | None = None) -> str:
    headers = {"Idempotency-Key": key} if key else {}
    r = requests.post(f"{base}/export_start", json={"spec": COLOR_SPEC}, headers=headers, timeout=30)
    assert r.status_code == 202, r.text
    assert r.json()["status"] == "queued"
    return r.json()["jobId"]


def get_status(base: str, job_id: str) -> dict:
    r = requests.get(f"{base}/export_status", params={"jobId": job_id}, timeout=30)
    assert r.status_code == 200, r.text
    return r.json()


def cancel(base: str, job_id: str) -> dict:
    r = requests.post(f"{base}/export_cancel", json={"jobId": job_id}, timeout=30)
    assert r.status_code == 200, r.text
    return r.json()


# --------------------------------------------------------------------------------------------
# a. render job killed in its first attempt

KILLER = '''#!{python}
"""RENDER_PYTHON stand-in: attempt 0 runs the real task in its own process group and SIGKILLs
the whole group (python -m render_job and FFmpeg) while FFmpeg renders; other attempts exec the
real interpreter. Writes what it did to {marker}."""
import json, os, signal, subprocess, sys, time

REAL, MARKER = {python!r}, {marker!r}
if os.environ.get("CLOUD_RUN_TASK_ATTEMPT", "0") != "0":
    os.execv(REAL, [REAL, *sys.argv[1:]])


''' + FFMPEG_FINDER + '''

child = subprocess.Popen([REAL, *sys.argv[1:]], start_new_session=True)
deadline = time.monotonic() + 120
while child.poll() is None and time.monotonic() < deadline:
    ff = encoding_ffmpeg(child.pid)
    if ff:
        time.sleep(0.15)
        alive = os.path.exists(f"/proc/{{ff}}") and child.poll() is None
        os.killpg(child.pid, signal.SIGKILL)
        child.wait()
        with open(MARKER, "w") as f:
            json.dump({{"killed": True, "ffmpegAliveAtKill": alive, "ffmpegPid": ff}}, f)
        sys.exit(128 + signal.SIGKILL)
    time.sleep(0.02)
with open(MARKER, "w") as f:
    json.dump({{"killed": False, "exitCode": child.returncode}}, f)
sys.exit(child.returncode or 0)
'''


@pytest.mark.slow
def test_render_killed_in_first_attempt_finishes_on_retry_with_one_output(pg_url, run_dir, tmp_path):
    marker = tmp_path / "killer.json"
    wrapper = tmp_path / "render-python"
    wrapper.write_text(KILLER.format(python=sys.executable, marker=str(marker)))
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    db = fresh_db(pg_url)
    env = {"DATABASE_URL": db, "RENDER_PYTHON": str(wrapper), "RENDER_MAX_RETRIES": "2"}
    with EmbeddedStack(run_dir=run_dir / f"faults-kill-{uuid.uuid4().hex[:6]}", extra_env=env) as stack:
        job_id = start_color_job(stack.base)
        final = wait_for_condition(lambda: (lambda s: s if s["status"] in TERMINAL else None)(
            get_status(stack.base, job_id)), 110, "the export to finish", interval_s=0.3)
        killed = json.loads(marker.read_text()) if marker.exists() else {}
        assert killed.get("killed") and killed.get("ffmpegAliveAtKill"), (killed, stack.run_dir)
        assert final["status"] == "succeeded", (final.get("error"), stack.run_dir)
        assert final["attempts"] == 2
        assert [h["status"] for h in final["history"]] == ["queued", "dispatched", "running", "succeeded"]
        # the MP4's finalize succeeds the job a moment before the second task exits
        exits = wait_for_condition(lambda: (lambda x: x if len(x) >= 2 else None)(
            [(e["attempt"], e["exitCode"]) for e in stack.log_entries("render task exited", job_id=job_id)]),
            30, "the second task to exit")
        assert exits == [(0, 137), (1, 0)], exits
        assert len(stack.log_entries("render execution started", job_id=job_id)) == 1
        r = requests.get(f"{stack.storage.url}/storage/v1/b/{stack.output_bucket}/o",
                         params={"prefix": f"exports/{job_id}/"}, timeout=10)
        names = sorted(o["name"] for o in r.json().get("items", []))
        assert [n for n in names if n.endswith(".mp4")] == [f"exports/{job_id}/fault-test.mp4"], names
        assert len(names) == len(set(names))
        video = requests.get(final["output"]["url"], timeout=30).content
        assert len(video) == final["output"]["sizeBytes"] and video[4:8] == b"ftyp"
        check_stack(stack)
    assert statuses_by_job(db) == {job_id: "succeeded"}


# --------------------------------------------------------------------------------------------
# b. dispatch raising after its claim is redelivered and starts one execution


def test_dispatch_failing_after_claim_is_redelivered_and_starts_one_execution(pg_url, tmp_path):
    db = fresh_db(pg_url)
    launcher = RecordingLauncher()
    launcher.fail_next = 1  # run_job fails once, after the claim queued -> dispatched
    with in_process_functions(db, tmp_path, launcher) as (base, service, rec):
        job_id = start_color_job(base)  # publishes once: the push publisher delivers (and retries)
        wait_for_condition(lambda: launcher.launched, 20, "the redelivered dispatch")
        st = wait_for_condition(lambda: (lambda s: s if s["executionName"] else None)(get_status(base, job_id)),
                                10, "the execution name")
        # the claim was taken, released on the failed launch, and taken again by the redelivery
        assert [h["status"] for h in st["history"]] == ["queued", "dispatched", "queued", "dispatched"]
        codes = rec.codes("/dispatch_export")
        assert codes[0] == 500 and codes[-1] == 200 and len(codes) == 2, codes
        # one more redelivery of the same message (at-least-once): no second execution
        r = requests.post(f"{base}/dispatch_export", json=push_body(job_id, PROJECT), timeout=30)
        assert r.status_code == 200
        assert launcher.launched == [job_id]
        assert get_status(base, job_id)["executionName"] == st["executionName"]
        assert cancel(base, job_id)["status"] == "canceled"
        assert launcher.cancelled == [st["executionName"]]
    assert statuses_by_job(db) == {job_id: "canceled"}


def test_dispatch_failing_after_claim_is_redelivered_by_the_pubsub_emulator(pg_url, emulated_stack, tmp_path):
    """The same fault, redelivered by a real Pub/Sub (emulator) push subscription."""
    db = fresh_db(pg_url)
    launcher = RecordingLauncher()
    launcher.fail_next = 1
    pubsub = emulated_stack.pubsub
    topic = f"faults-{uuid.uuid4().hex[:8]}"
    with in_process_functions(db, tmp_path, launcher, publisher=RecordingPublisher()) as (base, service, rec):
        pubsub.create_topic(topic)
        pubsub.create_push_subscription(f"{topic}-dispatch", topic,
                                        f"{base}/dispatch_export/projects/{pubsub.project}/topics/{topic}")
        job_id = start_color_job(base)
        assert service.publisher.messages == [job_id]
        pubsub.publish(topic, json.dumps({"jobId": job_id}).encode(), jobId=job_id)
        wait_for_condition(lambda: launcher.launched, 45, "the emulator's redelivery")
        wait_for_condition(lambda: get_status(base, job_id)["executionName"], 10, "the execution name")
        codes = rec.codes("/dispatch_export")
        assert codes[0] == 500 and codes[-1] in (200, 204), codes
        time.sleep(1.0)  # no further delivery once acknowledged
        assert launcher.launched == [job_id]
        assert cancel(base, job_id)["status"] == "canceled"
    assert statuses_by_job(db) == {job_id: "canceled"}


# --------------------------------------------------------------------------------------------
# d. 50 concurrent deliveries of one message


@pytest.mark.parametrize("deliveries", [50])
def test_concurrent_deliveries_of_one_message_start_one_execution(pg_url, tmp_path, deliveries):
    db = fresh_db(pg_url)
    launcher = RecordingLauncher()
    with in_process_functions(db, tmp_path, launcher, publisher=RecordingPublisher()) as (base, service, rec):
        jobs = [start_color_job(base) for _ in range(3)]  # three rounds, one job each
        for job_id in jobs:
            body = push_body(job_id, PROJECT)  # one message: the same body (and messageId) every time
            barrier = threading.Barrier(deliveries)

            def deliver(_):
                with requests.Session() as s:
                    barrier.wait(30)
                    return s.post(f"{base}/dispatch_export", json=body, timeout=60).status_code

            with ThreadPoolExecutor(deliveries) as pool:
                codes = list(pool.map(deliver, range(deliveries)))
            assert codes == [200] * deliveries, codes
            assert launcher.launched.count(job_id) == 1, launcher.launched
            st = get_status(base, job_id)
            assert [h["status"] for h in st["history"]] == ["queued", "dispatched"]
            assert st["executionName"]
        assert launcher.launched == jobs
        for job_id in jobs:
            assert cancel(base, job_id)["status"] == "canceled"
    assert set(statuses_by_job(db).values()) == {"canceled"}


# --------------------------------------------------------------------------------------------
# c. PostgreSQL restarted during a burst against the gateway

_LEAKS = ("Traceback", 'File "', ".py", "SELECT", "INSERT", "UPDATE ", "sqlalchemy", "pg8000", "/work", "/tmp")


@pytest.fixture
def restartable_postgres(run_dir, pg_url):
    """A PostgreSQL cluster of our own (the shared one must not be restarted under other tests)."""
    if not postgres_available():
        if _required("SCENEFLOW_REQUIRE_POSTGRES"):
            pytest.fail("PostgreSQL server binaries are needed to restart a cluster", pytrace=False)
        pytest.skip("PostgreSQL server binaries (initdb, pg_ctl) are needed to restart a cluster")
    pg = Postgres(run_dir=run_dir / f"faults-restart-{uuid.uuid4().hex[:6]}")
    try:
        pg.start()
        yield pg
    finally:
        pg.stop()


class _Sink:
    """A push endpoint that acknowledges and records job ids (nothing renders)."""

    def __init__(self):
        from werkzeug.serving import make_server

        self.job_ids: list[str] = []
        self._lock = threading.Lock()

        def app(environ, start_response):
            body = json.loads(environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0)) or b"{}")
            data = json.loads(base64.b64decode(body["message"]["data"]))
            with self._lock:
                self.job_ids.append(data["jobId"])
            start_response("204 No Content", [])
            return [b""]

        self.server = make_server("127.0.0.1", 0, app, threaded=True)
        self.url = f"http://127.0.0.1:{self.server.server_port}/"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self):
        self.server.shutdown()
        self.thread.join(5)


def test_postgres_restart_during_a_burst_gives_503_then_success_and_loses_nothing(restartable_postgres, run_dir):
    pg = restartable_postgres
    sink = _Sink()
    env = {"DATABASE_URL": pg.url, "EXPORT_LOCAL_PUSH_URL": sink.url, "RECONCILE_QUEUED_AFTER_S": "0"}
    try:
        with EmbeddedStack(run_dir=pg.run_dir, extra_env=env) as stack:
            base = stack.base
            seed = [start_color_job(base) for _ in range(3)]
            for job_id in seed:
                get_status(base, job_id)
            responses: list[tuple[str, int, str]] = []  # (kind, HTTP status, body)
            started: dict[str, str] = {}  # idempotency key -> job id
            first_code: dict[str, int] = {}  # idempotency key -> 202 (created) or 200 (replayed)
            lock = threading.Lock()
            stop_at = [None]

            def call(kind: str, key: str | None, s: requests.Session) -> requests.Response:
                if kind == "start":
                    return s.post(f"{base}/export_start", json={"spec": COLOR_SPEC},
                                  headers={"Idempotency-Key": key}, timeout=30)
                with lock:
                    ids = list(started.values()) or seed
                return s.get(f"{base}/export_status", params={"jobId": ids[hash(key) % len(ids)]}, timeout=30)

            def client(worker: int) -> int:
                # each logical request is retried (0.1 s apart) until it succeeds: what a client does with 503
                code = 0
                with requests.Session() as s:
                    n = 0
                    while stop_at[0] is None or time.monotonic() < stop_at[0]:
                        n += 1
                        kind = "start" if n % 3 == 0 else "status"
                        key = f"w{worker}-{n}"
                        deadline = time.monotonic() + 40
                        while True:
                            r = call(kind, key, s)
                            code = r.status_code
                            with lock:
                                responses.append((kind, r.status_code, r.text))
                            if r.status_code in (200, 202):
                                if kind == "start":
                                    with lock:
                                        assert started.setdefault(key, r.json()["jobId"]) == r.json()["jobId"]
                                        first_code.setdefault(key, r.status_code)
                                break
                            if r.status_code != 503 or time.monotonic() > deadline:
                                return code
                            time.sleep(0.1)
                return code

            with ThreadPoolExecutor(8) as pool:
                futures = [pool.submit(client, w) for w in range(8)]
                time.sleep(1.0)
                pg.stop_server("fast")  # every session ends (FATAL 57P01); new connections refused
                time.sleep(2.0)
                pg.start_server()
                stop_at[0] = time.monotonic() + 1.5
                last_codes = [f.result(timeout=90) for f in futures]

            codes: dict[int, int] = {}
            for _, code, _ in responses:
                codes[code] = codes.get(code, 0) + 1
            print(f"postgres restart burst: {len(responses)} responses {codes}, {len(started)} jobs started")
            assert set(codes) <= {200, 202, 503}, codes
            assert codes.get(503, 0) > 0, "the outage was not observed"
            for kind, code, text in responses:
                if code == 503:
                    err = json.loads(text)["error"]
                    assert err["code"] == "unavailable" and err["message"].startswith("database unavailable")
                    assert not any(leak in text for leak in _LEAKS), text
            # every client's last request succeeded (all retries after the outage did)
            assert all(code in (200, 202) for code in last_codes), last_codes
            assert not stack.log_entries("unexpected error")
            # nothing lost, nothing doubled: every 202'd job exists, one row per key
            all_ids = set(started.values()) | set(seed)
            for job_id in all_ids:
                assert get_status(base, job_id)["status"] == "queued"
            rows = statuses_by_job(pg.url)
            assert set(rows) == all_ids, (len(rows), len(all_ids))
            keys = db_rows(pg.url, "SELECT idempotency_key FROM export_jobs WHERE idempotency_key IS NOT NULL")
            assert sorted(k[0] for k in keys) == sorted(started)
            # every 202 was published (the push follows the commit in the same request); a start whose
            # 202 was lost (503 after the commit) is replayed as 200 and re-published by reconcile_exports
            created = {started[k] for k, c in first_code.items() if c == 202} | set(seed)
            wait_for_condition(lambda: set(sink.job_ids) >= created, 20, "the publish of every 202")
            replayed = all_ids - created
            print(f"  {len(created)} created with 202, {len(replayed)} first answered by a 200 replay")
            # reconcile_exports re-publishes at most 100 stale jobs per call, the least recently seen
            # first (each is touched), so ceil(n / 100) calls cover a burst of any size
            for _ in range(-(-len(all_ids) // 100)):
                r = requests.post(f"{base}/reconcile_exports", timeout=60)
                assert r.status_code == 200 and r.json()["republished"] == min(100, len(all_ids)), r.text
            wait_for_condition(lambda: set(sink.job_ids) >= all_ids, 20, "every publish")
            for job_id in all_ids:
                assert cancel(base, job_id)["status"] == "canceled"
            assert set(statuses_by_job(pg.url).values()) == {"canceled"}
    finally:
        sink.stop()
