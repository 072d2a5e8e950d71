"""Static checks of infra/: fixtures shared by tests/static."""
from __future__ import annotations

import os
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.conftest import _unavailable

ROOT = Path(__file__).resolve().parents[2]
GCLOUD_ENV = {"CLOUDSDK_CORE_DISABLE_USAGE_REPORTING": "true", "CLOUDSDK_CORE_DISABLE_PROMPTS": "1",
              "CLOUDSDK_COMPONENT_MANAGER_DISABLE_UPDATE_CHECK": "true",
              "CLOUDSDK_CORE_CHECK_GCE_METADATA": "false"}  # else each call waits seconds probing the GCE metadata server


def gcloud_tree() -> dict:
    """The installed gcloud's static command tree (data/cli/gcloud_completions.py): used only to
    tell a command's path from its positional arguments."""
    real = Path(shutil.which("gcloud")).resolve()
    src = real.parent.parent / "data" / "cli" / "gcloud_completions.py"
    ns: dict = {}
    exec(compile(src.read_text(), str(src), "exec"), ns)  # a plain dict literal shipped with the SDK
    return ns["STATIC_COMPLETION_CLI_TREE"]


class GcloudHelp:
    """`gcloud PATH --help` texts of the installed SDK, fetched once per command path per session
    (each call takes 3-5 s offline, so they run in parallel and are cached for the session)."""

    def __init__(self) -> None:
        self.tree = gcloud_tree()
        self._cache: dict[tuple[str, ...], str] = {}
        self.seconds = 0.0

    def split(self, argv: list[str]) -> tuple[tuple[str, ...], list[str]]:
        """(command path, the rest) of a gcloud argv (without 'gcloud')."""
        node, path = self.tree, []
        for i, tok in enumerate(argv):
            if tok.startswith("-") or tok not in node.get("commands", {}):
                return tuple(path), argv[i:]
            node = node["commands"][tok]
            path.append(tok)
        return tuple(path), []

    def prefetch(self, paths) -> None:
        import time

        todo = sorted({p for p in paths if p not in self._cache})
        if not todo:
            return
        env = dict(os.environ, **GCLOUD_ENV)
        started = time.monotonic()

        def one(path):
            r = subprocess.run(["gcloud", *path, "--help"], capture_output=True, text=True, timeout=120,
                               env=env, stdin=subprocess.DEVNULL)
            assert r.returncode == 0, f"gcloud {' '.join(path)} --help failed: {r.stderr[-500:]}"
            return path, r.stdout

        with ThreadPoolExecutor(max_workers=4) as pool:
            for path, text in pool.map(one, todo):
                self._cache[path] = text
        self.seconds += time.monotonic() - started

    def text(self, path: tuple[str, ...]) -> str:
        self.prefetch([path])
        return self._cache[path]


@pytest.fixture(scope="session")
def gcloud_help() -> GcloudHelp:
    if not shutil.which("gcloud"):
        _unavailable("SCENEFLOW_REQUIRE_EMULATORS", "gcloud is not installed: cannot check deploy.sh's flags")
    return GcloudHelp()
