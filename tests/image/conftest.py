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
import time
from pathlib import Path

import pytest

from tests.conftest import _required, _unavailable
from tests.image.build import CLONE, base, build_render_image

TAG = f"localhost/sceneflow-render:test-{CLONE}"  # one per clone: clones share podman's store


def pytest_collection_modifyitems(config, items):
    if _required("SCENEFLOW_IMAGE_TESTS"):
        return
    skip = pytest.mark.skip(reason="the image tier runs with `make image-test` (podman; a build takes minutes)")
    for item in items:
        if Path(str(item.fspath)).parent == Path(__file__).parent:
            item.add_marker(skip)


_BUILT: dict = {}


def pytest_terminal_summary(terminalreporter):
    """Which image was tested, on which base, its size and build time (printed without -s)."""
    if _BUILT:
        from tests.image.build import image_bytes

        size = image_bytes(_BUILT["tag"]) / 1e6
        terminalreporter.write_line(
            f"render image {_BUILT['tag']}: {size:.0f} MB, built on {_BUILT['base'] or 'the pinned base'}"
            + (f" in {_BUILT['build_s']:.0f} s" if _BUILT["build_s"] else " (not built: RENDER_TEST_IMAGE)"))


@pytest.fixture(scope="session")
def render_image() -> dict:
    """{"tag", "base" (None: the pinned one), "build_s"} of the image under test."""
    if not shutil.which("podman"):
        _unavailable("SCENEFLOW_REQUIRE_IMAGE", "podman is not installed (apt-get install podman buildah runc "
                                                "debootstrap)")
    if os.environ.get("RENDER_TEST_IMAGE"):
        _BUILT.update(tag=os.environ["RENDER_TEST_IMAGE"], base=os.environ.get("RENDER_TEST_BASE"), build_s=None)
        return dict(_BUILT)
    base_image = base()
    started = time.monotonic()
    build_render_image(TAG, base_image)
    _BUILT.update(tag=TAG, base=base_image, build_s=round(time.monotonic() - started, 1))
    return dict(_BUILT)
