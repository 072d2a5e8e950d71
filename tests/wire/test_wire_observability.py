"""Observability at the wire: the JSON lines the functions write while handling a request carry
severity, the job id label and the trace of X-Cloud-Trace-Context / traceparent, as Cloud Logging
reads them; export_status shows the execution's log URI (launcher port)."""
from __future__ import annotations

import json
import shutil
import uuid
from pathlib import Path

import pytest
from functions_framework import create_app

from infra.local.eventarc import binary_event, pubsub_source
from shared import bootstrap, logs
from shared.adapters.local_launcher import SubprocessLauncher
from shared.adapters.local_storage import LocalStorage
from shared.config import Settings, get_settings
from shared.events import PUBSUB_TYPE
from shared.ports import ExecutionStatus
from tests.fakes import RecordingLauncher, RecordingPublisher

SOURCE = str(Path(__file__).resolve().parents[2] / "functions" / "main.py")
TRACE = "105445aa7843bc8bf206b12000100000"
SPEC = {"title": "Trace me", "scenes": [{"id": "a", "visual": {"type": "color", "color": "#102030"}, "duration": 1}]}


@pytest.fixture
def env(tmp_path, monkeypatch):
    monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", "obs-proj")
    get_settings.cache_clear()
    settings = Settings(database_url=f"sqlite:///{tmp_path}/jobs.db", worker_token="w" * 24,
                        input_bucket="in-bkt", output_bucket="out-bkt", api_base="http://api.test")
    launcher = RecordingLauncher()
    service = bootstrap.build_service(settings, storage=LocalStorage(tmp_path / "gcs"), publisher=RecordingPublisher(),
                                      launcher=launcher, migrate_db=True)
    bootstrap.use_service(service)
    clients = {n: create_app(target=n, source=SOURCE).test_client()
               for n in ("export_start", "export_status", "dispatch_export")}
    yield clients, launcher
    bootstrap.use_service(None)
    get_settings.cache_clear()


def _lines(out: str) -> list[dict]:
    return [json.loads(line) for line in out.splitlines() if line.startswith("{")]


def test_request_logs_carry_trace_span_and_job_label(env, capsys):
    clients, _ = env
    capsys.readouterr()
    r = clients["export_start"].post("/", json={"spec": SPEC},
                                     headers={"X-Cloud-Trace-Context": f"{TRACE}/1234567890123;o=1"})
    assert r.status_code == 202, r.json
    job_id = r.json["jobId"]
    created = [e for e in _lines(capsys.readouterr().out) if e["message"] == "export created"]
    (e,) = created
    assert e["severity"] == "INFO"
    assert e["logging.googleapis.com/labels"] == {"jobId": job_id}
    assert e["logging.googleapis.com/trace"] == f"projects/obs-proj/traces/{TRACE}"
    assert e["logging.googleapis.com/spanId"] == f"{1234567890123:016x}"
    assert e["logging.googleapis.com/trace_sampled"] is True

    # outside a request: no trace (the context does not leak into the next line)
    logs.info("after the request")
    (after,) = _lines(capsys.readouterr().out)
    assert "logging.googleapis.com/trace" not in after and "logging.googleapis.com/labels" not in after


def test_event_logs_carry_traceparent_and_the_job_id(env, capsys):
    clients, _ = env
    job_id = clients["export_start"].post("/", json={"spec": SPEC}).json["jobId"]
    capsys.readouterr()
    import base64
    body = {"message": {"data": base64.b64encode(json.dumps({"jobId": job_id}).encode()).decode(),
                        "messageId": uuid.uuid4().hex, "attributes": {}},
            "subscription": "projects/obs-proj/subscriptions/dispatch"}
    traceparent = f"00-{TRACE}-00f067aa0ba902b7-01"
    headers, data = binary_event(PUBSUB_TYPE, pubsub_source("obs-proj", "export-jobs"), body, traceparent=traceparent)
    r = clients["dispatch_export"].post("/", data=data, headers=headers)
    assert r.status_code == 200
    lines = _lines(capsys.readouterr().out)
    handled = [e for e in lines if e["message"] == "dispatch handled"]
    assert handled and handled[0]["logging.googleapis.com/labels"] == {"jobId": job_id}
    assert all(e.get("logging.googleapis.com/trace") == f"projects/obs-proj/traces/{TRACE}" for e in lines)
    assert handled[0]["logging.googleapis.com/spanId"] == "00f067aa0ba902b7"


def test_status_shows_the_execution_log_uri(env):
    clients, launcher = env
    job_id = clients["export_start"].post("/", json={"spec": SPEC}).json["jobId"]
    st = clients["export_status"].get(f"/?jobId={job_id}").json
    assert st["executionName"] is None and st["executionLogUri"] is None
    uri = "https://console.cloud.google.com/logs/viewer?project=obs-proj&advancedFilter=x"
    next_name = f"projects/local/locations/local/jobs/render/executions/exec-{len(launcher.launched) + 1}"
    launcher.states[next_name] = ExecutionStatus("running", None, uri)
    bootstrap.get_service().dispatch(job_id)
    st = clients["export_status"].get(f"/?jobId={job_id}").json
    assert st["executionName"] == next_name and st["executionLogUri"] == uri  # asked once, at dispatch
    launcher.states[next_name] = ExecutionStatus("running", None, "https://elsewhere")
    assert clients["export_status"].get(f"/?jobId={job_id}").json["executionLogUri"] == uri  # no call per poll


@pytest.mark.parametrize("header,expected", [
    (f"{TRACE}/1;o=1", (TRACE, "0000000000000001", True)),
    (f"{TRACE.upper()};o=0", (TRACE, None, False)),
    (f"{TRACE}", (TRACE, None, None)),
    ("0" * 32 + "/1;o=1", None),
    ("not-a-trace", None),
])
def test_parse_x_cloud_trace_context(header, expected):
    t = logs.parse_trace_header(header)
    assert (t and (t.trace_id, t.span_id, t.sampled)) == expected


def test_render_job_lines_take_the_job_id_from_the_execution_env(monkeypatch, capsys):
    monkeypatch.setenv("EXPORT_JOB_ID", "job-from-env")
    logs.warning("stage failed", stage="rendering")
    (e,) = _lines(capsys.readouterr().out)
    assert e["severity"] == "WARNING" and e["logging.googleapis.com/labels"] == {"jobId": "job-from-env"}
    assert e["stage"] == "rendering"


def test_local_launcher_log_uri_is_the_attempt_log_file(tmp_path):
    true = shutil.which("true")
    launcher = SubprocessLauncher("render", max_retries=0, python=true, log_dir=str(tmp_path / "logs"))
    name = launcher.launch("job-1")
    launcher.wait(name, timeout=30)
    st = launcher.status(name)
    assert st.state == "succeeded" and st.log_uri == str((tmp_path / "logs" / f"{name}.log").resolve())
    assert SubprocessLauncher("render").status("nope").log_uri is None


def test_local_launcher_fails_an_execution_whose_command_cannot_start(tmp_path):
    # a missing interpreter (or podman, with RENDER_CONTAINER_IMAGE) used to kill the launcher's
    # thread and leave the execution "running" for ever
    launcher = SubprocessLauncher("render", max_retries=1, python=str(tmp_path / "no-such-python"))
    name = launcher.launch("job-1")
    launcher.wait(name, timeout=30)
    st = launcher.status(name)
    assert st.state == "failed" and "last exit code 127" in st.reason, st
    assert launcher.exit_codes[name] == [127, 127]
