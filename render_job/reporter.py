"""Progress and result reports to the API's `export_complete` endpoint (DESIGN §4).

Body (camelCase): {jobId, status: running|succeeded|failed, stage?, progress?, task?, handoff?, output?,
error?, attempt, usage?} with `Authorization: Bearer <EXPORT_WORKER_TOKEN>`. The token is never logged. `usage` is the
attempt's usage so far (render_job.usage), in every report when the reporter is given one.
"""
from __future__ import annotations

import os
import time
from typing import Any, Callable, Mapping

import requests
from tenacity import Retrying, retry_if_exception_type, stop_after_attempt, wait_chain, wait_fixed

from shared import logs
from shared.config import ConfigError, report_target
from shared.errors import MESSAGE_MAX_CHARS

TIMEOUT_S = 10.0
RETRIES = 3  # more attempts after a network error or a 5xx
BACKOFF_S = (0.5, 1.0, 2.0)  # the waits before them, seconds (the last one repeats)


class _ServerError(Exception):
    """A 5xx answer (message "HTTP <code>"): retried like a network error."""


class Reporter:
    """Reports one render attempt of one job.

    Args:
        complete_url: the export_complete URL (Settings.complete_url: EXPORT_COMPLETE_URL, else
            {EXPORT_API_BASE}/export_complete).
        token: the worker bearer token (EXPORT_WORKER_TOKEN).
        job_id: the export job id.
        attempt: the Cloud Run task attempt (0-based).
        min_interval_s: at most one `running` report per this many seconds, unless the stage changed.
        session: a requests.Session-like object with `.post` (tests may pass a fake).
        usage: returns the attempt's usage so far (render_job.usage.TaskUsage.snapshot), sent with
            every report, throttled running reports aside (None: no usage is sent).
        task: {role: "part" | "audio" | "stitch", index} of a parallel render's task
            (shared.worker_report.ReportTask; render_job.task_env.TaskEnv.task), sent with every report;
            None (today's whole export): no `task`.

    `running` reports are throttled and their progress never decreases; `succeeded` and `failed`
    are always sent. Network errors and 5xx are retried 3 times with backoff; a 4xx (e.g. 409: the
    job is already terminal or canceled) is logged, not raised. No method raises on HTTP trouble.
    """

    def __init__(self, complete_url: str, token: str, job_id: str, attempt: int = 0, min_interval_s: float = 2.0,
                 session: Any = None, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep,
                 usage: Callable[[], dict] | None = None, task: dict | None = None) -> None:
        self.url = complete_url
        self._token = token
        self.job_id = job_id
        self.attempt = int(attempt)
        self.min_interval_s = float(min_interval_s)
        self._session = session or requests.Session()
        self._clock = clock
        self._sleep = sleep
        self._usage = usage
        self.task = dict(task) if task else None
        self._last_sent: float | None = None
        self._last_stage: str | None = None
        self._progress = 0.0
        self.rejected = False  # set when the API answered 4xx (e.g. the job was canceled)

    def __repr__(self) -> str:  # never show the token
        return f"Reporter(url={self.url!r}, job_id={self.job_id!r}, attempt={self.attempt})"

    def running(self, stage: str, progress: float, force: bool = False) -> bool:
        """Report `running` in `stage` ("preparing" | "rendering" | "stitching" | "uploading") at
        `progress` (0..1: this task's own).

        Returns:
            True when a request was sent and accepted; False when throttled or rejected.
        """
        progress = min(1.0, max(self._progress, float(progress)))
        now = self._clock()
        stage_changed = stage != self._last_stage
        if not (force or stage_changed or self._last_sent is None
                or now - self._last_sent >= self.min_interval_s):
            self._progress = progress  # remembered; sent with the next report
            return False
        self._progress = progress
        self._last_sent = now
        self._last_stage = stage
        return self._post({"status": "running", "stage": stage, "progress": round(progress, 4)})

    def succeeded(self, output: dict) -> bool:
        """Report success with `output` ({uri, filename, durationS, sizeBytes, width, height, poster, captions})."""
        self._progress = 1.0
        return self._post({"status": "succeeded", "progress": 1.0, "output": output})

    def stopping(self) -> bool:
        """The attempt's last report as its process is told to stop (SIGTERM: a cancel, a task
        timeout): `running` in the last stage, for its usage (a canceled job answers 409 and keeps it)."""
        return self._post({"status": "running", "stage": self._last_stage or "preparing",
                           "progress": round(self._progress, 4)})

    def failed(self, code: str, message: str) -> bool:
        """Report failure with error {code, message} (message: human readable, no stack trace)."""
        return self._post({"status": "failed", "error": {"code": code, "message": message[:MESSAGE_MAX_CHARS]}})

    def handoff(self, parts: int, stage: str, progress: float) -> bool | None:
        """Ask the API to hand this whole export over to a `parts`-part render (a `running` report
        with `handoff`: shared.part_lifecycle). Sent once, never retried: any trouble only means this
        task renders the export itself.

        Returns:
            True: handed over (the answer carries `handoff`): stop without rendering or reporting.
            False: rejected with 409 (the export is not this task's any more; `rejected` is set): stop.
            None: not handed over (not applied, 4xx other than 409, 5xx, no answer): render it.
        """
        resp = self._send({"status": "running", "stage": stage, "progress": round(max(self._progress, progress), 4),
                           "handoff": {"parts": int(parts)}}, retries=0)
        if resp is None or resp.status_code >= 300:
            if resp is not None and resp.status_code == 409:
                self.rejected = True
                return False
            return None
        try:
            return True if (resp.json() or {}).get("handoff") else None
        except ValueError:  # not JSON: not a handoff
            return None

    def _post(self, body: dict) -> bool:
        resp = self._send(body)
        if resp is None:
            return False
        if resp.status_code < 300:
            return True
        self.rejected = True
        logs.warning("export_complete rejected the report", job_id=self.job_id,
                     status_code=resp.status_code, reportStatus=body.get("status"))
        return False

    def _send(self, body: dict, retries: int = RETRIES) -> Any:
        """POST the report `body` (network errors and 5xx retried `retries` times); the last response
        (status_code < 500), or None when there was none (logged)."""
        payload = {"jobId": self.job_id, "attempt": self.attempt, **body}
        if self.task is not None:
            payload["task"] = self.task
        if self._usage is not None:
            payload["usage"] = self._usage()
        headers = {"Authorization": f"Bearer {self._token}", "Content-Type": "application/json"}
        retrying = Retrying(retry=retry_if_exception_type((requests.RequestException, _ServerError)),
                            wait=wait_chain(*map(wait_fixed, BACKOFF_S)), sleep=self._sleep,
                            stop=stop_after_attempt(retries + 1), reraise=True)  # reraise: the last error
        try:
            for attempt in retrying:
                with attempt:
                    resp = self._session.post(self.url, json=payload, headers=headers, timeout=TIMEOUT_S)
                    if resp.status_code >= 500:
                        raise _ServerError(f"HTTP {resp.status_code}")
        except (requests.RequestException, _ServerError) as exc:
            logs.error("could not report to export_complete", job_id=self.job_id,
                       problem=str(exc) if isinstance(exc, _ServerError) else type(exc).__name__,
                       reportStatus=body.get("status"))
            return None
        return resp


def report_misconfigured(error: ConfigError, job_id: str, attempt: int,
                         environ: Mapping[str, str] = os.environ, **reporter_args: Any) -> int:
    """The render task's answer to settings it cannot use: log `error` and report the job failed
    with code "misconfigured" and its message (each bad variable), to the export_complete URL and
    with the token read straight from `environ` (shared.config.report_target).

    Returns:
        The exit code: 0 when the report was accepted (a retry could not help), 2 when it could not
        be sent or was refused (the job then ends by reconcile's stale check).
    """
    logs.error("render task misconfigured: a setting cannot be used", job_id=job_id, attempt=attempt,
               code=error.CODE, reason=str(error))
    url, token = report_target(environ)
    if Reporter(url, token, job_id, attempt, **reporter_args).failed(error.CODE, str(error)):
        return 0
    logs.error("render task misconfigured and could not report it", job_id=job_id, attempt=attempt)
    return 2
