"""The render image tier (`make image-test`; CI runs it after `make test`): builds infra/Dockerfile
with podman through infra/image.sh, on the pinned python base when a registry answers, else on a
stand-in made here (infra/local/base_image.sh), then runs exports inside it.

`pytest tests` skips this tier unless SCENEFLOW_IMAGE_TESTS=1 (make image-test sets it: a build
takes minutes); SCENEFLOW_REQUIRE_IMAGE=1 (CI) turns a missing podman into a failure.
RENDER_TEST_IMAGE=NAME tests an image already built instead of building one (RENDER_TEST_BASE=NAME:
the base it was built on, when not the pinned one).
"""
from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import _required, _unavailable

ROOT = Path(__file__).resolve().parents[2]
TAG = "localhost/sceneflow-render:test"
HOST_CA = ("/etc/ssl/certs/ca-certificates.crt", "/etc/pki/tls/certs/ca-bundle.crt")


def pytest_collection_modifyitems(config, items):
    if _required("SCENEFLOW_IMAGE_TESTS"):
        return
    skip = pytest.mark.skip(reason="the image tier runs with `make image-test` (podman; a build takes minutes)")
    for item in items:
        if Path(str(item.fspath)).parent == Path(__file__).parent:
            item.add_marker(skip)


def podman(*args: str, timeout: float = 120, check: bool = True, text: bool = True) -> subprocess.CompletedProcess:
    """A podman command (runc where installed: crun fails on hybrid cgroup hosts; the process
    limits of infra/image.sh: podman's defaults exceed some hosts' hard limits)."""
    runtime = ["--runtime", "runc"] if shutil.which("runc") else []
    if args and args[0] == "run":
        args = ("run", "--ulimit=nofile=1024:1024", "--ulimit=nproc=4096:4096", *args[1:])
    r = subprocess.run(["podman", *runtime, *args], capture_output=True, text=text, timeout=timeout)
    if check and r.returncode != 0:
        raise AssertionError(f"podman {' '.join(args)}: exit {r.returncode}\n{r.stderr[-3000:]!r}")
    return r


def _base() -> str | None:
    """None (the Dockerfile's pinned base) when it is present or can be pulled, else the stand-in."""
    if os.environ.get("RENDER_TEST_BASE"):
        return os.environ["RENDER_TEST_BASE"]
    text = (ROOT / "infra" / "Dockerfile").read_text()
    pinned = text.split("ARG PYTHON_IMAGE=", 1)[1].split()[0]
    if podman("image", "exists", pinned, check=False).returncode == 0 \
            or podman("pull", "--quiet", pinned, timeout=600, check=False).returncode == 0:
        return None
    r = subprocess.run(["bash", str(ROOT / "infra" / "local" / "base_image.sh")], capture_output=True, text=True,
                       timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    return r.stdout.split()[-1]


@pytest.fixture(scope="session")
def render_image() -> dict:
    """{"tag", "base" (None: the pinned one), "build_s"} of the image under test."""
    if not shutil.which("podman"):
        _unavailable("SCENEFLOW_REQUIRE_IMAGE", "podman is not installed (apt-get install podman buildah runc "
                                                "debootstrap)")
    if os.environ.get("RENDER_TEST_IMAGE"):
        return {"tag": os.environ["RENDER_TEST_IMAGE"], "base": os.environ.get("RENDER_TEST_BASE"), "build_s": None}
    base = _base()
    argv = ["bash", str(ROOT / "infra" / "image.sh"), "--tag", TAG]
    if base:
        argv += ["--base", base]
    ca = next((p for p in (os.environ.get("SSL_CERT_FILE"), *HOST_CA) if p and os.path.isfile(p)), None)
    if ca:  # pip inside the build trusts what the host trusts (a build secret, not kept in the image)
        argv += ["--ca", ca]
    started = time.monotonic()
    r = subprocess.run(argv, capture_output=True, text=True, timeout=1800, env={**os.environ, "CONTAINER_ENGINE": "podman"})
    assert r.returncode == 0, r.stderr[-4000:]
    return {"tag": TAG, "base": base, "build_s": round(time.monotonic() - started, 1)}
