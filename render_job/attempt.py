"""One render attempt's outcome, whatever the mode (render_job.job's whole export, render_job.part_task's
part and audio tasks, render_job.stitch_task's stitch): the RenderResult, and how a failure is
reported and turned into an exit code.

Exit codes (Cloud Run retries a non-zero exit): a permanent problem (bad spec, missing or corrupt
asset, FFmpeg rejecting the input) is reported `failed` and exits 0; a transient or unexpected one
exits 1 so the task is retried, and on the last attempt (attempt >= render_max_retries) it is also
reported `failed` (messages: render_job.failure).
"""
from __future__ import annotations

import traceback
from dataclasses import dataclass, field
from typing import Any

from shared import logs
from shared.config import Settings
from shared.errors import ExportError, InvalidRequest, NotFound, PermanentRenderError

from render_job.failure import failure_message, public_message
from render_job.plan import RenderPlan
from render_job.upload import already_uploaded


@dataclass
class RenderResult:
    """The outcome of one attempt.

    exit_code: the process exit code (0 done or permanently failed, 1 retry).
    status: "succeeded" | "failed" | "retry" | "canceled" | "stopped", and for a part or audio task
        "uploaded" (its piece is in the bucket) or "idle" (the plan has fewer parts than tasks), for a
        whole export "handed_over" (a parallel render took it: render_job.handoff), for the stitch
        "piece_missing" (exit 0 unreported: a piece to render again, render_job.stitch_task).
    output: the `output` object reported on success. error: {code, message} on failure.
    plan: the RenderPlan when planning got that far. timings: seconds per step.
    """

    exit_code: int
    status: str
    output: dict | None = None
    error: dict | None = None
    plan: RenderPlan | None = None
    timings: dict[str, float] = field(default_factory=dict)


class Canceled(Exception):
    """The API rejected our reports (the job was canceled or is terminal): stop quietly."""


def resumed(storage: Any, settings: Settings, job_id: str, spec: Any, reporter: Any, attempt: int) -> RenderResult | None:
    """A retried attempt after the video was uploaded: the earlier attempt's output reported
    succeeded (render_job.upload.already_uploaded), as RenderResult; None when there is none."""
    done = already_uploaded(storage, settings.output_bucket, job_id, spec)
    if done is None:
        return None
    logs.info("outputs already uploaded by an earlier attempt", job_id=job_id, attempt=attempt)
    reporter.succeeded(done)
    return RenderResult(0, "succeeded", output=done)


def check_canceled(reporter: Any) -> None:
    """Raise Canceled when the reporter's last report was rejected."""
    if getattr(reporter, "rejected", False) is True:
        raise Canceled()


def failed(exc: Exception, job_id: str, attempt: int, reporter: Any, settings: Settings, workdir: str,
           plan: RenderPlan | None, timings: dict[str, float], what: str | None = None) -> RenderResult:
    """The result of an attempt that raised `exc`, reported: a permanent problem (PermanentRenderError,
    InvalidRequest, NotFound) fails the job; anything else (TransientError, unexpected) is retried,
    and fails the job on the last attempt. `what` (e.g. a part's label) starts the reported message
    when the message does not already name it."""
    if isinstance(exc, (PermanentRenderError, InvalidRequest, NotFound)):
        error = {"code": exc.code, "message": _named(what, exc.message)}
        if exc.details:
            error["details"] = exc.details
        logs.error("export failed permanently", job_id=job_id, attempt=attempt, error=error)
        reporter.failed(exc.code, public_message(_named(what, failure_message(exc)), workdir))
        return RenderResult(0, "failed", error=error, plan=plan, timings=timings)
    if isinstance(exc, ExportError):
        error = {"code": exc.code, "message": _named(what, exc.message)}
    else:
        error = {"code": "internal", "message": _named(what, f"internal error ({type(exc).__name__})")}
    last = attempt >= settings.render_max_retries
    logs.error("export attempt failed", job_id=job_id, attempt=attempt, lastAttempt=last, error=error,
               traceback=traceback.format_exc(limit=8))
    if last:
        reporter.failed(error["code"], public_message(error["message"], workdir))
        return RenderResult(1, "failed", error=error, plan=plan, timings=timings)
    return RenderResult(1, "retry", error=error, plan=plan, timings=timings)


def _named(what: str | None, message: str) -> str:
    return message if not what or what in message else f"{what}: {message}"
