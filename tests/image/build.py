"""Building the images of the image tier and the image benchmark (make image-test, make bench-image).

The render image comes from infra/image.sh; its base is the Dockerfile's pinned python image when
podman has it or can pull it, else the stand-in of infra/local/base_image.sh (no registry here).
Builds trust the host's CA bundle for pip (a build secret, never part of the image)."""
from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CLONE = hashlib.sha1(str(ROOT).encode()).hexdigest()[:8]  # this checkout, in image tags
HOST_CA = ("/etc/ssl/certs/ca-certificates.crt", "/etc/pki/tls/certs/ca-bundle.crt")


def podman_argv(*args: str) -> list[str]:
    """A podman command line: runc where installed (crun fails on hybrid cgroup hosts); `run` with
    limits under the host's (podman's defaults exceed some hosts' hard limits)."""
    runtime = ["--runtime", "runc"] if shutil.which("runc") else []
    if args and args[0] == "run":
        args = ("run", "--ulimit=nofile=1024:1024", "--ulimit=nproc=4096:4096", *args[1:])
    return ["podman", *runtime, *args]


def podman(*args: str, timeout: float = 120, check: bool = True, text: bool = True) -> subprocess.CompletedProcess:
    """Run podman_argv(*args); raises AssertionError with its stderr when it fails and `check`."""
    r = subprocess.run(podman_argv(*args), capture_output=True, text=text, timeout=timeout)
    if check and r.returncode != 0:
        raise AssertionError(f"podman {' '.join(args)}: exit {r.returncode}\n{r.stderr[-3000:]!r}")
    return r


def pinned_base(dockerfile: Path = ROOT / "infra" / "Dockerfile") -> str:
    """The Dockerfile's default PYTHON_IMAGE (name@digest)."""
    return dockerfile.read_text().split("ARG PYTHON_IMAGE=", 1)[1].split()[0]


def host_ca() -> str | None:
    return next((p for p in (os.environ.get("SSL_CERT_FILE"), *HOST_CA) if p and os.path.isfile(p)), None)


def base() -> str | None:
    """RENDER_TEST_BASE; else None (the pinned base) when podman has it or pulls it; else the stand-in."""
    if os.environ.get("RENDER_TEST_BASE"):
        return os.environ["RENDER_TEST_BASE"]
    pinned = pinned_base()
    if podman("image", "exists", pinned, check=False).returncode == 0 \
            or podman("pull", "--quiet", pinned, timeout=600, check=False).returncode == 0:
        return None
    r = subprocess.run(["bash", str(ROOT / "infra" / "local" / "base_image.sh")], capture_output=True, text=True,
                       timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    return r.stdout.split()[-1]


def build_render_image(tag: str, base_image: str | None, no_cache: bool = False) -> None:
    """infra/image.sh --tag TAG [--base BASE] [--ca HOST_CA] [--no-cache] with podman."""
    argv = ["bash", str(ROOT / "infra" / "image.sh"), "--tag", tag, *(["--no-cache"] if no_cache else [])]
    if base_image:
        argv += ["--base", base_image]
    if host_ca():
        argv += ["--ca", host_ca()]
    r = subprocess.run(argv, capture_output=True, text=True, timeout=1800, env={**os.environ, "CONTAINER_ENGINE": "podman"})
    assert r.returncode == 0, r.stderr[-4000:]


def image_bytes(name: str) -> int:
    """The image's size as podman reports it (uncompressed layers)."""
    import json

    return json.loads(podman("image", "inspect", name).stdout)[0]["Size"]
