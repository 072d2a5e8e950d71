"""Job states and allowed transitions (DESIGN §3). Pure: no I/O.

awaiting_upload -> queued -> dispatched -> running -> succeeded | failed, and canceled from any
non-terminal state. Terminal states never change. Transitions are applied by the repository as
conditional updates (`UPDATE ... WHERE status IN (allowed sources)`), which makes every handler
idempotent under at-least-once delivery.
"""
from __future__ import annotations

from enum import StrEnum


class JobStatus(StrEnum):
    AWAITING_UPLOAD = "awaiting_upload"
    QUEUED = "queued"
    DISPATCHED = "dispatched"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELED = "canceled"


class Stage(StrEnum):
    """The step inside `running`."""

    PREPARING = "preparing"
    RENDERING = "rendering"
    STITCHING = "stitching"  # a parallel render's parts are joined (issue 19)
    UPLOADING = "uploading"


TERMINAL: frozenset[JobStatus] = frozenset({JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELED})
NON_TERMINAL: frozenset[JobStatus] = frozenset(set(JobStatus) - TERMINAL)

# target -> the states it may be entered from
_SOURCES: dict[JobStatus, frozenset[JobStatus]] = {
    JobStatus.QUEUED: frozenset({JobStatus.AWAITING_UPLOAD, JobStatus.DISPATCHED}),  # dispatched->queued: launch failed, redeliver
    JobStatus.DISPATCHED: frozenset({JobStatus.QUEUED}),
    JobStatus.RUNNING: frozenset({JobStatus.DISPATCHED}),
    # a finalize of the output may overtake the worker's first `running` report
    JobStatus.SUCCEEDED: frozenset({JobStatus.DISPATCHED, JobStatus.RUNNING}),
    JobStatus.FAILED: NON_TERMINAL,
    JobStatus.CANCELED: NON_TERMINAL,
}


def sources_for(target: JobStatus) -> frozenset[JobStatus]:
    """The states from which `target` may be entered (empty for awaiting_upload, the initial state)."""
    return _SOURCES.get(JobStatus(target), frozenset())


def can_transition(current: JobStatus, target: JobStatus) -> bool:
    """True when `current -> target` is an allowed transition. Terminal states allow none."""
    return JobStatus(current) in sources_for(JobStatus(target))


def is_terminal(status: JobStatus | str) -> bool:
    return JobStatus(status) in TERMINAL
