"""The functions bundle of infra/bundle.sh: each entry point starts with functions-framework from
inside the bundle folder and answers HTTP; the bundle imports nothing of the render job."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.bundle_probe import entry_points, expected, first_answers, signature_args

ROOT = Path(__file__).resolve().parents[2]


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
    entries = entry_points(bundle)
    assert len(entries) >= 7
    ff = Path(sys.executable).parent / "functions-framework"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH",) and not k.startswith("EXPORT_")}
    env.update({"EXPORT_STORAGE_BACKEND": "local", "EXPORT_PUBLISHER_BACKEND": "local",
                "EXPORT_LAUNCHER_BACKEND": "local", "DATABASE_URL": f"sqlite:///{tmp_path}/x.db"})
    procs: list[tuple[subprocess.Popen, object]] = []

    def start(name: str, port: int):
        log_path = tmp_path / f"{name}.log"
        log = open(log_path, "wb")
        proc = subprocess.Popen(
            [str(ff), "--target", name, "--source", "main.py", "--port", str(port), "--host", "127.0.0.1",
             *signature_args(name)], cwd=bundle, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        procs.append((proc, log))
        return lambda: None if proc.poll() is None else log_path.read_text()[-2000:]

    try:
        answers = first_answers(entries, start)
        assert answers == {name: expected(kind) for kind, name in entries}
    finally:
        for proc, log in procs:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
            log.close()
