"""What one execution is told (issue 19): the variables a launcher adds to the job's own environment
when it starts a render or a stitch execution. Both launchers (shared/adapters/google_run.py as
RunJobRequest.overrides.container_overrides[0].env, shared/adapters/local_launcher.py as the task's
process environment) send exactly these; the render job reads them (`python -m render_job`).

Kinds of execution:
- whole export (today's path, task_count 1): EXPORT_JOB_ID only, so the request is the one sent
  before issue 19;
- parts (K >= 2 parts, task_count K + 1): EXPORT_JOB_ID, RENDER_MODE=part, EXPORT_PART_COUNT=K;
  each task learns its role from Cloud Run's CLOUD_RUN_TASK_INDEX (task_role): task 0 renders the
  whole timeline's audio once, alongside the parts (first, because it is the longest single piece
  and a launcher running fewer tasks at once than K + 1 starts the lowest indices first), tasks
  1..K render video part i = index - 1; each checks
  CLOUD_RUN_TASK_COUNT == K + 1. K is an upper bound: the plan may cut fewer parts k (plan_parts),
  and tasks k..K-1 then have nothing to do. Every piece's metadata names k (shared.artifacts);
- stitch (its own Cloud Run job, one task): EXPORT_JOB_ID, RENDER_MODE=stitch, EXPORT_PART_COUNT=K
  the part tasks were told.
Both parallel kinds also get EXPORT_MIN_PART_S, the part floor (seconds) K was chosen with, when the
caller knows it (stored on the job with K: every relaunch sends the same), so the tasks and the
stitch cut plan_parts(plan, K, floor) alike whatever their own RENDER_MIN_PART_S.
EXPORT_PART_COUNT is sent although Cloud Run also reports the task count: the plan's part count is
chosen once, when the parts are launched (bounded by RENDER_MAX_PARTS), and handed to every task and
to the stitch, so a setting changed in between cannot make them cut the timeline differently, and a
job run without the override (CLOUD_RUN_TASK_COUNT from the job's own template) is detected.
Cloud Run merges override env with the job's (https://cloud.google.com/run/docs/execute/jobs#override-job-configuration).
Pure: no I/O.
"""
from __future__ import annotations

JOB_ID_ENV = "EXPORT_JOB_ID"
MODE_ENV = "RENDER_MODE"
PART_COUNT_ENV = "EXPORT_PART_COUNT"
MIN_PART_ENV = "EXPORT_MIN_PART_S"  # the part floor K was cut with (seconds; render_job.task_env)
PART_MODE = "part"  # one task of a K-task render execution: renders one part
STITCH_MODE = "stitch"  # the stitch execution: joins the K parts with the audio
# Cloud Run's most tasks in one execution (https://cloud.google.com/run/quotas#cloud_run_jobs_limits)
MAX_TASKS = 10_000


AUDIO_ROLE = "audio"
PART_ROLE = "part"


def render_task_count(parts: int) -> int:
    """Tasks of a render execution of `parts` parts: 1 for one (today's whole export), else one per
    part plus the audio task."""
    return 1 if parts <= 1 else parts + 1


def task_role(task_index: int, parts: int) -> tuple[str, int]:
    """What task `task_index` of a K-part render execution does: (AUDIO_ROLE, K) for task 0,
    (PART_ROLE, task_index - 1) for tasks 1..K. The audio's index K is how its reports name it.

    Raises:
        ValueError: task_index is outside 0..K.
    """
    if not 0 <= task_index <= parts:
        raise ValueError(f"task index {task_index} is outside 0..{parts} of a {parts}-part render")
    return (AUDIO_ROLE, parts) if task_index == 0 else (PART_ROLE, task_index - 1)


def part_task_index(part: int) -> int:
    """The CLOUD_RUN_TASK_INDEX of the task rendering video part `part` (task_role's inverse)."""
    return part + 1


def render_env(job_id: str, parts: int = 1, min_part_s: float | None = None) -> list[tuple[str, str]]:
    """[(name, value)] of a render execution of `parts` parts (render_task_count(parts) tasks), in
    the order sent: EXPORT_JOB_ID only for one part (today's request; min_part_s unused), +
    RENDER_MODE=part, EXPORT_PART_COUNT=K and (when given) EXPORT_MIN_PART_S for K >= 2.

    Raises:
        ValueError: parts is not a whole number from 1 to MAX_TASKS - 1, or min_part_s is not > 0.
    """
    _check_count("parts", parts, MAX_TASKS - 1)
    if parts == 1:
        return [(JOB_ID_ENV, job_id)]
    return [(JOB_ID_ENV, job_id), (MODE_ENV, PART_MODE), (PART_COUNT_ENV, str(parts)), *_floor(min_part_s)]


def stitch_env(job_id: str, part_count: int, min_part_s: float | None = None) -> list[tuple[str, str]]:
    """[(name, value)] of the stitch execution joining `part_count` parts (2..MAX_TASKS: one part
    is today's whole export, which has no stitch), + EXPORT_MIN_PART_S when given.

    Raises:
        ValueError: part_count is out of that range, or min_part_s is not > 0.
    """
    _check_count("part_count", part_count)
    if part_count < 2:
        raise ValueError(f"part_count must be at least 2 to stitch, not {part_count}")
    return [(JOB_ID_ENV, job_id), (MODE_ENV, STITCH_MODE), (PART_COUNT_ENV, str(part_count)), *_floor(min_part_s)]


def _floor(min_part_s: float | None) -> list[tuple[str, str]]:
    if min_part_s is None:
        return []
    if isinstance(min_part_s, bool) or not isinstance(min_part_s, (int, float)) or not 0 < min_part_s < float("inf"):
        raise ValueError(f"min_part_s must be a number of seconds above 0, not {min_part_s!r}")
    return [(MIN_PART_ENV, repr(float(min_part_s)))]


def check_parts(parts: int, max_parts: int) -> None:
    """Refuse a render execution of more parts than the launcher's cap (RENDER_MAX_PARTS).

    Raises:
        ValueError: parts is below 1 or above max_parts.
    """
    _check_count("parts", parts, MAX_TASKS - 1)
    if parts > max_parts:
        raise ValueError(f"parts {parts} is over the cap of {max_parts} parts (RENDER_MAX_PARTS)")


def _check_count(name: str, value: int, most: int = MAX_TASKS) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= most:
        raise ValueError(f"{name} must be a whole number from 1 to {most}, not {value!r}")
