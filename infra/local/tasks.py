"""Stop every render task a local stack launched (issue 14, item 10).

The functions run in the gateway process and its SubprocessLauncher starts each render task in a
process group of its own (so cancel can stop the task's FFmpeg too); stopping the gateway's group
therefore left tasks rendering on. `stop_render_tasks(log_dir)` finds them:
- on Linux, as every process whose environment has CLOUD_RUN_EXECUTION and this RENDER_LOG_DIR (what
  the launcher gives a task, inherited by FFmpeg and by anything a wrapper RENDER_PYTHON starts in
  yet another session), which also covers tasks whose launcher died before cleaning up;
- elsewhere, from the `{execution}.pgid` files the launcher keeps in RENDER_LOG_DIR while a task runs.
Each found group gets SIGTERM (the render job stops FFmpeg and exits), then SIGKILL after `grace_s`.
"""
from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from shared.adapters.local_launcher import TASK_GROUP_SUFFIX


def _environ(pid: int) -> dict[bytes, bytes]:
    try:
        with open(f"/proc/{pid}/environ", "rb") as fh:
            raw = fh.read()
    except OSError:
        return {}
    return dict(item.split(b"=", 1) for item in raw.split(b"\0") if b"=" in item)


def _pgid(pid: int) -> int | None:
    try:
        return os.getpgid(pid)
    except (ProcessLookupError, PermissionError):
        return None


def task_processes(log_dir: str | os.PathLike) -> dict[int, int]:
    """{pid: pgid} of the live processes of render tasks logging to `log_dir` (Linux /proc; {} elsewhere)."""
    if not os.path.isdir("/proc"):
        return {}
    want = os.fsencode(str(Path(log_dir).resolve()))
    found: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        env = _environ(int(entry))
        if env.get(b"CLOUD_RUN_EXECUTION") and env.get(b"RENDER_LOG_DIR") \
                and os.fsencode(str(Path(os.fsdecode(env[b"RENDER_LOG_DIR"])).resolve())) == want:
            pgid = _pgid(int(entry))
            if pgid is not None:
                found[int(entry)] = pgid
    return found


def _groups(log_dir: Path) -> set[int]:
    """Process groups of the tasks: from their environment on Linux (a pgid file left by a launcher
    that died could name a group id reused since), else from the launcher's pgid files."""
    if os.path.isdir("/proc"):
        groups = set(task_processes(log_dir).values())
    else:
        groups = set()
        for f in log_dir.glob(f"*{TASK_GROUP_SUFFIX}"):
            try:
                groups.add(int(f.read_text().strip()))
            except (OSError, ValueError):
                continue
    return {g for g in groups if g > 1 and g != os.getpgid(0)}


def _signal_groups(groups: set[int], sig: int) -> set[int]:
    """Signal each group; returns the groups that still had a member."""
    alive = set()
    for g in groups:
        try:
            os.killpg(g, sig)
            alive.add(g)
        except (ProcessLookupError, PermissionError):
            pass
    return alive


def _live(groups: set[int]) -> set[int]:
    """The groups with a member that has not exited. Zombies do not count: they stay in their group
    until reaped, and a container's PID 1 may never reap the orphans of a stopped gateway."""
    if not os.path.isdir("/proc"):
        return _signal_groups(groups, 0)
    live = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if fields[0] not in ("Z", "X") and int(fields[2]) in groups:  # state, ppid, pgrp
            live.add(int(fields[2]))
    return live


def _wait_gone(groups: set[int], timeout_s: float) -> set[int]:
    deadline = time.monotonic() + timeout_s
    while groups and time.monotonic() < deadline:
        time.sleep(0.05)
        groups = _live(groups)
    return groups


def stop_render_tasks(log_dir: str | os.PathLike, grace_s: float = 5.0) -> int:
    """SIGTERM every render task group of `log_dir`, SIGKILL what is left after `grace_s` seconds,
    and return once every process of them has exited (a SIGKILL takes effect asynchronously).
    Returns how many groups were signalled. Nothing to do (or no such folder): 0."""
    log_dir = Path(log_dir)
    if not log_dir.is_dir() or not hasattr(os, "killpg"):
        return 0
    groups = _signal_groups(_groups(log_dir), signal.SIGTERM)
    signalled = len(groups)
    left = _wait_gone(groups, grace_s) | (_groups(log_dir) - groups)  # and any that appeared meanwhile
    if left:
        _wait_gone(_signal_groups(left, signal.SIGKILL), 5.0)
    for f in log_dir.glob(f"*{TASK_GROUP_SUFFIX}"):
        f.unlink(missing_ok=True)
    return signalled
