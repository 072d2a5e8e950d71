"""The deployed functions start from exactly what infra/bundle.sh puts in the bundle: its files and
its requirements.txt installed into a clean environment (tests/image/functions.Containerfile, on
the render image's base), each entry point started with functions-framework as Cloud Functions
does, answering HTTP. The dev venv of tests/static/test_static_bundle.py holds every package, so
only this test sees a module the bundle's requirements miss."""
from __future__ import annotations

import shutil
import subprocess
import uuid
from pathlib import Path

import pytest

from tests.bundle_probe import entry_points, expected, first_answers, signature_args
from tests.image.build import CLONE, ROOT, host_ca, pinned_base, podman, podman_argv

TAG = f"localhost/sceneflow-functions:test-{CLONE}"


@pytest.fixture(scope="module")
def functions_image(render_image, tmp_path_factory) -> tuple[str, Path]:
    bundle = tmp_path_factory.mktemp("bundle") / "b"
    r = subprocess.run(["bash", str(ROOT / "infra" / "bundle.sh"), str(bundle)], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0, r.stderr
    shutil.copy(Path(__file__).with_name("functions.Containerfile"), bundle / "Containerfile")
    argv = ["build", "-f", str(bundle / "Containerfile"), "-t", TAG,
            "--build-arg", f"PYTHON_IMAGE={render_image['base'] or pinned_base()}",
            "--ulimit=nofile=1024:1024"]
    if host_ca():  # pip trusts what the host trusts (a build secret)
        argv.append(f"--secret=id=build-ca,src={host_ca()}")
    podman(*argv, str(bundle), timeout=900)
    return TAG, bundle


def test_each_function_starts_from_the_bundle_alone(functions_image, tmp_path):
    tag, bundle = functions_image
    entries = entry_points(bundle)
    assert len(entries) >= 7
    env = {"EXPORT_STORAGE_BACKEND": "local", "EXPORT_PUBLISHER_BACKEND": "local",
           "EXPORT_LAUNCHER_BACKEND": "local", "DATABASE_URL": "sqlite:////tmp/x.db"}
    names: list[str] = []
    procs: list[subprocess.Popen] = []

    def start(name: str, port: int):
        container = f"sceneflow-fn-{name.replace('_', '-')}-{uuid.uuid4().hex[:6]}"
        names.append(container)
        log_path = tmp_path / f"{name}.log"
        proc = subprocess.Popen(
            podman_argv("run", "--rm", f"--name={container}", "--network=host",
                        *(f"--env={k}={v}" for k, v in env.items()),
                        tag, "--target", name, "--port", str(port), "--host", "127.0.0.1", *signature_args(name)),
            stdout=open(log_path, "wb"), stderr=subprocess.STDOUT)
        procs.append(proc)
        return lambda: None if proc.poll() is None else log_path.read_text()[-2000:]

    try:
        answers = first_answers(entries, start, timeout_s=180)
        assert answers == {name: expected(kind) for kind, name in entries}
    finally:
        podman("rm", "--force", "--time=2", *names, check=False, timeout=120)
        for proc in procs:
            proc.wait(30)


# what the deployed functions import at their first request (bootstrap picks them lazily)
PRODUCTION_MODULES = ["main", "shared.adapters.google_storage", "shared.adapters.google_pubsub",
                      "shared.adapters.google_run", "shared.repository", "shared.db", "google.cloud.sql.connector",
                      "pg8000", "alembic.command"]


def test_the_bundle_alone_imports_what_production_uses(functions_image):
    tag, _bundle = functions_image
    code = "import importlib, sys; [importlib.import_module(m) for m in sys.argv[1:]]; print('imported')"
    out = podman("run", "--rm", "--entrypoint", "python", tag, "-c", code, *PRODUCTION_MODULES).stdout
    assert out.strip() == "imported"
