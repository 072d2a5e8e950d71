"""Stopping a local stack stops every render task it launched (issue 14, item 10).

The local launcher runs each task in a process group of its own, so stopping the gateway (whose
group the stack kills) left a task, and its FFmpeg, running after the stack was gone. Here a
stand-in RENDER_PYTHON plays a task that will not die: it ignores SIGTERM, has a child in its group
(like FFmpeg) and one in a session of its own (like the fault tests' wrapper)."""
from __future__ import annotations

import json
import os
import signal
import stat
import sys
import time
import uuid

import pytest
import requests

from infra.local.stack import EmbeddedStack
from sceneflow_flows import wait_for_condition

pytestmark = pytest.mark.skipif(not os.path.isdir("/proc"), reason="checks processes through /proc")

STUBBORN_TASK = '''#!{python}
import json, os, signal, subprocess, sys, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)  # inherited by both children
sleeper = [{python!r}, "-c", "import time; time.sleep(600)"]
child = subprocess.Popen(sleeper)
detached = subprocess.Popen(sleeper, start_new_session=True)
with open({marker!r}, "w") as f:
    json.dump({{"task": os.getpid(), "child": child.pid, "detached": detached.pid}}, f)
time.sleep(600)
'''


def _alive(pid: int) -> bool:
    """A process exists and is not a zombie (a container's PID 1 may never reap orphans)."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_stop_ends_every_process_of_a_running_render_task(run_dir, tmp_path):
    marker = tmp_path / "task.json"
    task = tmp_path / "render-python"
    task.write_text(STUBBORN_TASK.format(python=sys.executable, marker=str(marker)))
    task.chmod(task.stat().st_mode | stat.S_IXUSR)
    stack = EmbeddedStack(run_dir=run_dir / f"stop-{uuid.uuid4().hex[:6]}", render_max_retries=0,
                          extra_env={"RENDER_PYTHON": str(task)})
    pids: list[int] = []
    try:
        stack.start()
        spec = {"scenes": [{"id": "c", "visual": {"type": "color", "color": "#123456"}, "duration": 1}]}
        r = requests.post(f"{stack.base}/export_start", json={"spec": spec}, timeout=30)
        assert r.status_code == 202, r.text
        wait_for_condition(lambda: marker.exists() and marker.stat().st_size > 0, 30, "the render task to start")
        pids = list(json.loads(marker.read_text()).values())
        assert all(_alive(p) for p in pids)
        started = time.monotonic()
        stack.stop()
        stopped_s = time.monotonic() - started
        left = [p for p in pids if _alive(p)]
        assert left == [], f"still running after stop: {left}"
        assert stopped_s < 30
        assert list((stack.run_dir / "render").glob("*.pgid")) == []
    finally:
        stack.stop()
        for p in pids:  # never leave a sleeper behind, whatever failed
            try:
                os.kill(p, signal.SIGKILL)
            except OSError:
                pass
