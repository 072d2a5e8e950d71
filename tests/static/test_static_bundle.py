"""The functions bundle of infra/bundle.sh: each entry point starts with functions-framework from
inside the bundle folder and answers HTTP; the bundle imports nothing of the render job."""
from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from infra.local.process import free_port

ROOT = Path(__file__).resolve().parents[2]
ENTRY = re.compile(r"@functions_framework\.(http|cloud_event)\ndef (\w+)")


@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> Path:
    dest = tmp_path_factory.mktemp("bundle") / "b"
    r = subprocess.run(["bash", str(ROOT / "infra" / "bundle.sh"), str(dest)], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0, r.stderr
    return dest


def test_bundle_layout(bundle):
    assert (bundle / "main.py").read_text() == (ROOT / "functions" / "main.py").read_text()
    assert (bundle / "shared" / "__init__.py").exists() and not (bundle / "render_job").exists()
    assert not list(bundle.rglob("__pycache__"))
    reqs = (bundle / "requirements.txt").read_text()
    assert "functions-framework" in reqs and "google-cloud-run" in reqs and "av==" not in reqs


def test_bundle_imports_without_render_job_packages(bundle):
    render_only = ["av", "pysubs2", "PIL", "imageio_ffmpeg", "render_job"]
    code = (f"import sys; sys.modules.update(dict.fromkeys({render_only!r})); sys.path.insert(0, '.'); "
            "import main")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    r = subprocess.run([sys.executable, "-c", code], cwd=bundle, env=env, capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0, r.stderr[-2000:]


def test_each_function_starts_from_the_bundle(bundle, tmp_path):
    entries = ENTRY.findall((bundle / "main.py").read_text())
    assert len(entries) >= 7
    ff = Path(sys.executable).parent / "functions-framework"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH",) and not k.startswith("EXPORT_")}
    env.update({"EXPORT_STORAGE_BACKEND": "local", "EXPORT_PUBLISHER_BACKEND": "local",
                "EXPORT_LAUNCHER_BACKEND": "local", "DATABASE_URL": f"sqlite:///{tmp_path}/x.db"})
    procs = {}
    try:
        for kind, name in entries:
            port = free_port()
            # dispatch-export is deployed with --trigger-http (our push subscription feeds it): the
            # decorator, not the deploy's signature type, must decide that it takes CloudEvents
            sig = ["--signature-type", "http"] if name == "dispatch_export" else []
            log = open(tmp_path / f"{name}.log", "wb")
            procs[name] = (kind, port, log, subprocess.Popen(
                [str(ff), "--target", name, "--source", "main.py", "--port", str(port), "--host", "127.0.0.1", *sig],
                cwd=bundle, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True))
        deadline = time.monotonic() + 60
        answers = {}
        for name, (kind, port, _log, proc) in procs.items():
            while name not in answers:
                assert proc.poll() is None, (tmp_path / f"{name}.log").read_text()[-2000:]
                try:
                    if kind == "http":  # wrong method: our 405, without touching the database
                        r = requests.request("PUT", f"http://127.0.0.1:{port}/", timeout=2)
                    else:  # not a CloudEvent: acknowledged by shared/framing.py (a 4xx would be redelivered)
                        r = requests.post(f"http://127.0.0.1:{port}/", data=b"{}", timeout=2,
                                          headers={"Content-Type": "application/json"})
                    answers[name] = (kind, r.status_code if kind == "http" else (r.status_code, r.json()))
                except requests.ConnectionError:
                    assert time.monotonic() < deadline, f"{name} did not start"
                    time.sleep(0.1)
        for name, (kind, code) in answers.items():
            assert code == (405 if kind == "http" else (200, {"acknowledged": True, "dropped": (
                "the request is not a readable CloudEvent")})), (name, code)
    finally:
        for _kind, _port, log, proc in procs.values():
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
            log.close()
