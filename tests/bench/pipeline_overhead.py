"""The local pipeline's own overhead on a parallel export: bench-parallel's "overhead" term (issue 19).

    measure(spec, files, run_dir, parts=8, min_part_s=5.0, parallelism=2) -> Overhead

One export through the REAL local pipeline (infra.local.stack.EmbeddedStack: the functions behind the
gateway, the storage emulator and its finalize events, the local Pub/Sub push, the local launcher
running `python -m render_job` task subprocesses), forced down the parallel path
(RENDER_PARALLEL_AFTER_S=0, RENDER_MAX_PARTS=parts, RENDER_MIN_PART_S=min_part_s; tasks run
EXPORT_LOCAL_TASK_PARALLELISM=parallelism at once). Then

    export wall = export_start accepted -> succeeded (the job's history, ms), minus the client's
                  uploads (the client's own clock around upload_all)
    task time   = the union of the executions on the critical path, clipped to the export:
                  parts execution: its launch (history `dispatched`, written just before the launch)
                  -> its last task's exit; stitch execution: its launch (the row's stitch_claimed_at,
                  written just before launch_stitch) -> its task's exit
    overhead    = export wall - task time, in named parts (they add up to it):
                  intake (accepted -> queued, minus the uploads: export_start's answer and the
                  uploads' finalize events), dispatch (queued -> launch: the push, the claim, K),
                  pieces -> stitch (the parts' last exit -> the stitch's launch: the last piece's
                  finalize, the count, the claim; 0 when the stitch was launched before that exit),
                  completion (the stitch's exit -> succeeded; 0 when the output's finalize completed
                  the job before the stitch process exited).
Queueing of tasks behind EXPORT_LOCAL_TASK_PARALLELISM is task time, not overhead (Cloud Run runs
them at once): printed as such. Each task's start and exit come from a RENDER_PYTHON stand-in (a
shell script: `date +%s.%N` before and after the real interpreter, a few ms of its own), checked
against the launcher's "render task exited" log line (its wallS, process start to exit).
"""
from __future__ import annotations

import os
import sqlite3
import stat
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

WRAPPER = """#!/bin/sh
# RENDER_PYTHON stand-in of bench-parallel's overhead run: each task's start and exit, wall clock
echo "start $CLOUD_RUN_EXECUTION $CLOUD_RUN_TASK_INDEX $CLOUD_RUN_TASK_ATTEMPT $RENDER_MODE $(date +%s.%N)" >> {times}
{python} "$@"
rc=$?
echo "exit $CLOUD_RUN_EXECUTION $CLOUD_RUN_TASK_INDEX $CLOUD_RUN_TASK_ATTEMPT $RENDER_MODE $(date +%s.%N) $rc" >> {times}
exit $rc
"""


@dataclass
class Overhead:
    """Seconds (wall clock) of one export through the local pipeline; see the module docstring."""

    storyboard_s: float
    parts: int  # k: the part tasks that rendered a part (K told = parts_told)
    parts_told: int
    parallelism: int
    wall_s: float  # accepted -> succeeded, uploads excluded
    uploads_s: float
    intake_s: float
    dispatch_s: float
    parts_execution_s: float  # launch -> last task exit (queueing included)
    first_task_start_s: float  # launch -> first task process start (inside parts_execution_s)
    last_task_start_s: float  # launch -> the last task's start (waiting for a local slot; inside parts_execution_s)
    tasks: int  # tasks of the parts execution (K told + the audio task)
    pieces_to_stitch_s: float  # signed: negative = the stitch launched before the parts' last exit
    stitch_execution_s: float
    completion_s: float  # signed: negative = succeeded before the stitch process exited
    task_time_s: float
    overhead_s: float
    executions: dict = field(default_factory=dict)  # name -> {mode, tasks: [[index, attempt, start, exit, rc]]}
    max_log_diff_s: float | None = None  # wrapper's wall vs the launcher's wallS, largest difference

    def lines(self) -> list[str]:
        return [
            f"pipeline overhead {self.overhead_s:.2f} s (measured: {self.storyboard_s:.0f} s storyboard through the "
            f"local pipeline, {self.parts} parts of K={self.parts_told} told + the audio task, "
            f"{self.parallelism} tasks at once) = intake {self.intake_s:.2f} + dispatch {self.dispatch_s:.2f} "
            f"+ pieces->stitch {max(0.0, self.pieces_to_stitch_s):.2f} + completion {max(0.0, self.completion_s):.2f}",
            f"  export wall {self.wall_s:.2f} s (accepted -> succeeded, client uploads {self.uploads_s:.2f} s "
            f"excluded) - task time {self.task_time_s:.2f} s (parts execution {self.parts_execution_s:.2f}, "
            f"launch->first task start {self.first_task_start_s:.2f}; its {self.tasks} tasks ran {self.parallelism} at "
            f"a time, the last started {self.last_task_start_s:.2f} s after the launch: local queueing, counted as "
            f"task time, not overhead; stitch execution {self.stitch_execution_s:.2f}; "
            f"pieces->stitch {self.pieces_to_stitch_s:+.2f}, completion {self.completion_s:+.2f} signed)"
            + (f"; task clock vs launcher log: max {self.max_log_diff_s:.3f} s" if self.max_log_diff_s is not None
               else ""),
        ]


def _utc(value) -> float:
    """Epoch seconds of an ISO string ("Z" or naive = UTC) or a datetime."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value.replace("Z", "+00:00").replace(" ", "T"))
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return value.timestamp()


def _task_times(path: Path) -> dict[str, dict]:
    """{execution: {mode, tasks: {(index, attempt): [start, exit, rc]}}} from the stand-in's lines."""
    out: dict[str, dict] = {}
    for line in path.read_text().splitlines():
        kind, execution, index, attempt, mode, at, *rest = line.split()
        ex = out.setdefault(execution, {"mode": mode, "tasks": {}})
        t = ex["tasks"].setdefault((int(index), int(attempt)), [None, None, None])
        if kind == "start":
            t[0] = float(at)
        else:
            t[1], t[2] = float(at), int(rest[0])
    return out


def _history(status: dict) -> dict[str, float]:
    """{status: epoch seconds of its first entry}."""
    seen: dict[str, float] = {}
    for h in status.get("history") or []:
        seen.setdefault(h["status"], _utc(h["at"]))
    return seen


def measure(spec: dict, files: list[Path], run_dir: Path, *, parts: int = 8, min_part_s: float = 5.0,
            parallelism: int = 2, timeout_s: float = 900, log=print) -> Overhead:
    """Run the export (module docstring) and measure; raises RuntimeError if it does not succeed."""
    from infra.local import client
    from infra.local.stack import EmbeddedStack

    run_dir.mkdir(parents=True, exist_ok=True)
    times = run_dir / "task-times.txt"
    times.unlink(missing_ok=True)
    wrapper = run_dir / "render-python"
    wrapper.write_text(WRAPPER.format(times=str(times), python=sys.executable))
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR)
    env = {"RENDER_PARALLEL_AFTER_S": "0", "RENDER_MAX_PARTS": str(parts), "RENDER_MIN_PART_S": f"{min_part_s:g}",
           "EXPORT_LOCAL_TASK_PARALLELISM": str(parallelism), "RENDER_PYTHON": str(wrapper)}
    with EmbeddedStack(run_dir=run_dir / "stack", extra_env=env) as stack:
        started = client.start_export(stack.base, spec, files)
        job_id = started["jobId"]
        u0 = time.time()
        client.upload_all(started["uploads"], files)
        uploads = time.time() - u0
        log(f"overhead run: job {job_id} uploaded in {uploads:.2f} s; waiting (logs in {stack.run_dir}) ...")
        final = client.wait_for(stack.base, job_id, timeout_s, interval_s=0.5)
        if final["status"] != "succeeded":
            raise RuntimeError(f"overhead run: export {final['status']}: {final.get('error')} ({stack.run_dir})")
        db = stack.env["DATABASE_URL"].removeprefix("sqlite:///")
        exited = stack.log_entries("render task exited", job_id)
    with sqlite3.connect(db) as conn:
        claimed, told = conn.execute("SELECT stitch_claimed_at, part_count FROM export_jobs WHERE id = ?",
                                     (job_id,)).fetchone()
    hist = _history(final)
    execs = _task_times(times)
    render = [e for e in execs.values() if e["mode"] != "stitch"]
    stitch_ex = [e for e in execs.values() if e["mode"] == "stitch"]
    if len(render) != 1 or len(stitch_ex) != 1:
        raise RuntimeError(f"overhead run: expected one parts and one stitch execution, got "
                           f"{[e['mode'] for e in execs.values()]} (a handoff or a relaunch?): {times}")
    accepted, queued, launch, done = hist["awaiting_upload"], hist["queued"], hist["dispatched"], hist["succeeded"]
    tasks = list(render[0]["tasks"].values())
    parts_end = max(t[1] for t in tasks)
    starts = sorted(t[0] for t in tasks)
    stitch_task = next(iter(stitch_ex[0]["tasks"].values()))
    s_launch = _utc(claimed) if claimed else stitch_task[0]
    s_end = stitch_task[1]
    wall = done - accepted - uploads
    gap, completion = s_launch - parts_end, done - s_end
    overlap = max(0.0, -gap)
    task_time = (parts_end - launch) + (min(s_end, done) - s_launch) - overlap
    # the tasks' own time vs the launcher's log (same process start -> exit)
    walls = {(e["taskIndex"], e["attempt"], e["execution"]): e["wallS"] for e in exited}
    diffs = [abs((t[1] - t[0]) - walls[(i, a, name)]) for name, e in execs.items()
             for (i, a), t in e["tasks"].items() if (i, a, name) in walls]
    # k: the part tasks that did render (the others exit at once having nothing to do)
    k = int(final.get("parts", {}).get("count") or 0) if isinstance(final.get("parts"), dict) else 0
    return Overhead(
        storyboard_s=float(final["output"].get("durationS") or 0), parts=k or (told or 0), parts_told=told or 0,
        parallelism=parallelism, wall_s=wall, uploads_s=uploads, intake_s=queued - accepted - uploads,
        dispatch_s=launch - queued, parts_execution_s=parts_end - launch, first_task_start_s=starts[0] - launch,
        last_task_start_s=starts[-1] - launch, tasks=len(tasks), pieces_to_stitch_s=gap,
        stitch_execution_s=s_end - s_launch, completion_s=completion, task_time_s=task_time,
        overhead_s=wall - task_time,
        executions={name: {"mode": e["mode"], "tasks": [[i, a, *t] for (i, a), t in sorted(e["tasks"].items())]}
                    for name, e in execs.items()},
        max_log_diff_s=max(diffs) if diffs else None)


if __name__ == "__main__":  # a quick run on bench-parallel's 1-minute storyboard
    HERE = Path(__file__).resolve().parent
    sys.path[:0] = [str(HERE.parents[1]), str(HERE)]
    import bench_parallel
    from render_job.runner import find_ffmpeg

    out = Path(os.environ.get("OUT", HERE.parents[1] / ".local" / "bench-parallel")).resolve()
    spec, files = bench_parallel.story(find_ffmpeg(None), out / "media", 1)
    for line in measure(spec, files, out / "overhead").lines():
        print(line)
