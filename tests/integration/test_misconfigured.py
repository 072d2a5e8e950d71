"""A setting that cannot be used names itself (issue 15, adversarial review finding 2): the functions
answer 503 "misconfigured" naming it (never 500 "internal"), events are redelivered, and the render
task reports its job failed "misconfigured" and exits 0 (a retry cannot help), or exits 2 when it
cannot even report."""
from __future__ import annotations

import base64
import json
import subprocess
import sys
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from shared import bootstrap
from shared.config import get_settings
from tests.integration.functions_env import make_functions_env

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "worker-secret"
MEMORY_PROBLEM = "RENDER_MEMORY_BYTES='8Gi': expected a whole number of bytes, at least 536870912, e.g. 8589934592"


@pytest.fixture
def bad_env(monkeypatch):
    """set(NAME=value) puts settings in this process's environment; forgotten after the test."""
    def set_env(**values: str) -> None:
        for name, value in values.items():
            monkeypatch.setenv(name, value)
        get_settings.cache_clear()

    yield set_env
    bootstrap.use_service(None)
    monkeypatch.undo()
    get_settings.cache_clear()


def logged(capsys) -> list[dict]:
    return [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]


def test_export_start_answers_503_misconfigured_naming_the_setting(tmp_path, bad_env, capsys):
    bad_env(EXPORT_MAX_BODY_BYTES="1MB")
    env = make_functions_env(tmp_path, input_bucket="in", output_bucket="out")
    spec = {"scenes": [{"id": "s0", "duration": 1, "visual": {"type": "color", "color": "#000000"}}]}
    r = env.c["export_start"].post("/", json={"spec": spec})
    assert r.status_code == 503, r.get_data(as_text=True)
    assert r.json == {"error": {"code": "misconfigured", "message": "invalid settings: EXPORT_MAX_BODY_BYTES='1MB': "
                                "expected a whole number of bytes, at least 1, e.g. 1000000"}}
    lines = [line for line in logged(capsys) if line.get("code") == "misconfigured"]
    assert len(lines) == 1 and lines[0]["severity"] == "ERROR" and "EXPORT_MAX_BODY_BYTES='1MB'" in lines[0]["reason"]
    bad_env(EXPORT_MAX_BODY_BYTES="1000000")  # fixed: the next request reads the environment again
    assert env.c["export_start"].post("/", json={"spec": spec}).status_code == 202


def test_every_function_names_the_settings_when_it_builds_its_service_from_them(tmp_path, bad_env):
    """No injected service: get_service() reads the environment. HTTP functions answer 503; an event
    function answers 503 too, so Pub/Sub and Eventarc redeliver it until the setting is fixed."""
    bad_env(RENDER_MEMORY_BYTES="8Gi", EXPORT_MAX_JOB_BYTES="0", DATABASE_URL=f"sqlite:///{tmp_path}/jobs.db")
    env = make_functions_env(tmp_path, input_bucket="in", output_bucket="out")
    bootstrap.use_service(None)
    status = env.c["export_status"].get("/?jobId=abc")
    body = {"message": {"data": base64.b64encode(b'{"jobId": "abc"}').decode(), "messageId": uuid.uuid4().hex},
            "subscription": "projects/p/subscriptions/dispatch"}
    pushed = env.c["dispatch_export"].post("/projects/p/topics/export-jobs", json=body)
    for r in (status, pushed):
        assert r.status_code == 503, r.get_data(as_text=True)
        assert r.json["error"]["code"] == "misconfigured"
        assert r.json["error"]["message"] == ("invalid settings: EXPORT_MAX_JOB_BYTES='0': expected a whole number "
                                              f"of bytes, at least 1, e.g. 2147483648; {MEMORY_PROBLEM}")


class Receiver:
    """A stand-in for export_complete on a loopback port: records each POST {"auth", "body"}."""

    def __init__(self) -> None:
        reports = self.reports = []

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                raw = self.rfile.read(int(self.headers["Content-Length"]))
                reports.append({"path": self.path, "auth": self.headers["Authorization"], "body": json.loads(raw)})
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def run_render_main(tmp_path: Path, **env: str) -> subprocess.CompletedProcess:
    """`python -m render_job` as Cloud Run starts it (task 0), with only `env` set."""
    base = {"PATH": "/usr/bin:/bin", "RENDER_WORKDIR": str(tmp_path / "work"), "CLOUD_RUN_TASK_ATTEMPT": "1",
            "EXPORT_STORAGE_BACKEND": "local"}
    return subprocess.run([sys.executable, "-m", "render_job"], capture_output=True, text=True, timeout=120,
                          cwd=str(ROOT), env={**base, **env})


def test_the_render_task_reports_its_job_failed_misconfigured_and_exits_0(tmp_path):
    """RENDER_MEMORY_BYTES=8Gi (what --memory takes): no traceback, no retry; the job is failed at
    once with the variable named, and the API takes the report (the receiver's copy is replayed)."""
    env = make_functions_env(tmp_path, input_bucket="in", output_bucket="out", worker_token=TOKEN)
    try:
        spec = {"scenes": [{"id": "s0", "duration": 1, "visual": {"type": "color", "color": "#000000"}}]}
        job_id = env.c["export_start"].post("/", json={"spec": spec}).json["jobId"]
        env.service.dispatch(job_id)
        receiver = Receiver()
        try:
            p = run_render_main(tmp_path, EXPORT_JOB_ID=job_id, RENDER_MEMORY_BYTES="8Gi",
                                EXPORT_API_BASE=receiver.url + "/api", EXPORT_WORKER_TOKEN=TOKEN)
        finally:
            receiver.close()
        assert p.returncode == 0, p.stderr[-2000:]
        assert "Traceback" not in p.stderr + p.stdout
        assert [(r["path"], r["auth"]) for r in receiver.reports] == [("/api/export_complete", f"Bearer {TOKEN}")]
        report = receiver.reports[0]["body"]
        assert report == {"jobId": job_id, "attempt": 1, "status": "failed",
                          "error": {"code": "misconfigured", "message": f"invalid settings: {MEMORY_PROBLEM}"}}
        line = next(json.loads(x) for x in p.stdout.splitlines() if "misconfigured" in x)
        assert line["severity"] == "ERROR" and MEMORY_PROBLEM in line["reason"] and TOKEN not in p.stdout

        r = env.c["export_complete"].post("/", json=report, headers={"Authorization": f"Bearer {TOKEN}"})
        assert r.status_code == 200, r.json
        st = env.c["export_status"].get(f"/?jobId={job_id}").json
        assert (st["status"], st["error"]["code"]) == ("failed", "misconfigured")
        assert MEMORY_PROBLEM in st["error"]["message"]
    finally:
        bootstrap.use_service(None)


def test_the_render_task_exits_2_when_it_cannot_even_report(tmp_path):
    p = run_render_main(tmp_path, EXPORT_JOB_ID="job-1", RENDER_MEMORY_BYTES="8Gi",
                        EXPORT_COMPLETE_URL="http://127.0.0.1:9/export_complete")
    assert p.returncode == 2, p.stderr[-2000:]
    assert "Traceback" not in p.stderr + p.stdout
    lines = [json.loads(x) for x in p.stdout.splitlines() if x.startswith("{")]
    assert [x["message"] for x in lines if x["severity"] == "ERROR"] == [
        "render task misconfigured: a setting cannot be used", "could not report to export_complete",
        "render task misconfigured and could not report it"]
    assert MEMORY_PROBLEM in lines[0]["reason"]
