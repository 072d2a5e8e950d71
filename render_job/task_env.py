"""What one `python -m render_job` process is told to do (issue 19), read from its environment
(names: shared.executions; Cloud Run's CLOUD_RUN_TASK_INDEX / _COUNT / _ATTEMPT / CLOUD_RUN_EXECUTION).

Modes:
- "export" (no RENDER_MODE): today's whole export; only task 0 renders (the others exit 0);
- "part" (RENDER_MODE=part, EXPORT_PART_COUNT=K >= 1, CLOUD_RUN_TASK_COUNT = K + 1): task i < K
  renders video part i (role "part"), task K the whole timeline's audio (role "audio");
- "stitch" (RENDER_MODE=stitch, EXPORT_PART_COUNT=K >= 1): joins the parts cut by plan_parts(plan, K),
  K being the count the part tasks were told (render_job.stitch_task).
Both parallel modes may be told EXPORT_MIN_PART_S, the part floor the launcher cut K with; it replaces
the task's own RENDER_MIN_PART_S (render_job.job.main), so every task and the stitch cut alike.
A variable that cannot be used raises Misconfigured naming it: main() logs it and exits 2, unreported,
as for a malformed EXPORT_JOB_ID (a retry cannot help; the job ends by reconcile's checks).
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Mapping

from shared.executions import (JOB_ID_ENV, MIN_PART_ENV, MODE_ENV, PART_COUNT_ENV, PART_MODE, STITCH_MODE,
                               task_role)

_JOB_ID_RE = re.compile(r"^[A-Za-z0-9_-]{1,128}$")
EXPORT_MODE = "export"


class Misconfigured(ValueError):
    """An execution variable that cannot be used (the message names it and its value)."""


@dataclass(frozen=True)
class TaskEnv:
    """job_id; mode: EXPORT_MODE | PART_MODE | STITCH_MODE; parts: K (None for a whole export);
    role: "export" | "part" | "audio" | "stitch" and index: the part (role "part"), K ("audio"),
    0 otherwise; task_index, task_count, attempt (0-based), execution: as Cloud Run set them."""

    job_id: str
    mode: str
    parts: int | None
    role: str
    index: int
    task_index: int
    task_count: int
    attempt: int
    execution: str

    min_part_s: float | None = None  # EXPORT_MIN_PART_S: the floor the launcher cut K with

    @property
    def task(self) -> dict | None:
        """The `task` every report of a parallel render's task carries (shared.worker_report.ReportTask), with
        its execution's short name when Cloud Run set it (attempts count per execution)."""
        if self.mode == EXPORT_MODE:
            return None
        short = self.execution.rsplit("/", 1)[-1][:200]
        return {"role": self.role, "index": self.index, **({"execution": short} if short else {})}


def _int(environ: Mapping[str, str], name: str, default: int | None = None, lenient: bool = False) -> int:
    """The whole number in `name` (unset or empty: `default`); not one: Misconfigured, or `default`
    when `lenient` (a whole export reads Cloud Run's variables as it did before issue 19)."""
    raw = (environ.get(name) or "").strip()
    if not raw and default is not None:
        return default
    try:
        return int(raw)
    except ValueError:
        if lenient and default is not None:
            return default
        raise Misconfigured(f"{name}={raw!r} is not a whole number") from None


def task_env(environ: Mapping[str, str] = os.environ) -> TaskEnv:
    """The process's TaskEnv. Raises Misconfigured: EXPORT_JOB_ID missing or malformed, an unknown
    RENDER_MODE, EXPORT_PART_COUNT not a whole number >= 1, CLOUD_RUN_TASK_COUNT not K + 1 in part
    mode, a task index outside the execution."""
    job_id = environ.get(JOB_ID_ENV, "")
    if not _JOB_ID_RE.match(job_id):
        raise Misconfigured(f"{JOB_ID_ENV} is missing or malformed")
    mode = (environ.get(MODE_ENV) or "").strip() or EXPORT_MODE
    if mode not in (EXPORT_MODE, PART_MODE, STITCH_MODE):
        raise Misconfigured(f"{MODE_ENV}={mode!r} is not a render mode ({PART_MODE!r}, {STITCH_MODE!r} or unset)")
    lenient = mode == EXPORT_MODE
    attempt = _int(environ, "CLOUD_RUN_TASK_ATTEMPT", 0, lenient)
    index = _int(environ, "CLOUD_RUN_TASK_INDEX", 0, lenient)
    count = _int(environ, "CLOUD_RUN_TASK_COUNT", 1, lenient)
    execution = environ.get("CLOUD_RUN_EXECUTION", "")
    if mode == EXPORT_MODE:  # today's whole export: as before issue 19 (index/count only logged)
        return TaskEnv(job_id, mode, None, EXPORT_MODE, 0, index, count, attempt, execution)
    parts = _int(environ, PART_COUNT_ENV)
    if parts < 1:
        raise Misconfigured(f"{PART_COUNT_ENV}={parts} must be at least 1")
    floor = _floor(environ)
    if mode == STITCH_MODE:
        if count != 1 or index != 0:
            raise Misconfigured(f"the stitch runs as one task, not task {index} of CLOUD_RUN_TASK_COUNT={count}")
        return TaskEnv(job_id, mode, parts, STITCH_MODE, 0, index, count, attempt, execution, floor)
    if count != parts + 1:
        raise Misconfigured(f"CLOUD_RUN_TASK_COUNT={count} but a render of {PART_COUNT_ENV}={parts} parts "
                            f"runs {parts + 1} tasks (one per part and the audio's)")
    try:
        role, role_index = task_role(index, parts)
    except ValueError as exc:
        raise Misconfigured(f"CLOUD_RUN_TASK_INDEX={index}: {exc}") from None
    return TaskEnv(job_id, mode, parts, role, role_index, index, count, attempt, execution, floor)


def _floor(environ: Mapping[str, str]) -> float | None:
    """EXPORT_MIN_PART_S in seconds (unset: None, the task's own RENDER_MIN_PART_S). Misconfigured
    when it is not a number > 0."""
    raw = (environ.get(MIN_PART_ENV) or "").strip()
    if not raw:
        return None
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not 0 < value < float("inf"):
        raise Misconfigured(f"{MIN_PART_ENV}={raw!r} is not a number of seconds above 0")
    return value
