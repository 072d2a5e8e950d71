"""Structured logs: one JSON object per line on stdout, as Cloud Logging parses them
(https://cloud.google.com/logging/docs/structured-logging).

Fields: `severity`, `message`, `time`, `logging.googleapis.com/labels` with the job id (so
`gcloud logging read 'labels.jobId="…"'` finds every line of one export, functions and render job
alike), `logging.googleapis.com/trace` (+ `spanId`, `trace_sampled`) while a request is being
handled, plus any extra fields passed as keywords.

The request context lives in contextvars, set by the functions' wrappers (functions/main.py) from
the `X-Cloud-Trace-Context` (or W3C `traceparent`) header with `request_context(...)`. The job id
label falls back to the context's job id, then to EXPORT_JOB_ID (set in a render job execution).
"""
from __future__ import annotations

import contextlib
import contextvars
import json
import math
import os
import re
import sys
import time
from dataclasses import dataclass
from typing import Any, Iterator

_TRACE = "logging.googleapis.com/trace"
_SPAN = "logging.googleapis.com/spanId"
_SAMPLED = "logging.googleapis.com/trace_sampled"
_LABELS = "logging.googleapis.com/labels"


@dataclass(frozen=True)
class Trace:
    """A trace id (32 hex) with the span id (16 hex) and the sampled flag, when known."""

    trace_id: str
    span_id: str | None = None
    sampled: bool | None = None


_trace: contextvars.ContextVar[tuple[str, Trace] | None] = contextvars.ContextVar("sceneflow_trace", default=None)
_job_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("sceneflow_job_id", default=None)

_XCTC = re.compile(r"^\s*([0-9a-fA-F]{32})(?:/(\d+))?(?:;o=([01]))?", re.ASCII)
_TRACEPARENT = re.compile(r"^\s*[0-9a-fA-F]{2}-([0-9a-fA-F]{32})-([0-9a-fA-F]{16})-([0-9a-fA-F]{2})", re.ASCII)
_HEADER_MAX = 512  # longer trace headers are not ours to parse: no trace


def parse_trace_header(x_cloud_trace_context: object = None, traceparent: object = None) -> Trace | None:
    """The trace of `X-Cloud-Trace-Context: TRACE_ID/SPAN_ID;o=1` (span id decimal), else of a W3C
    `traceparent: 00-TRACE_ID-SPAN_ID-FLAGS` (span id hex); None when neither parses. Never raises:
    values of any type, length or content (a CloudEvent extension may be a number) give None."""
    if isinstance(x_cloud_trace_context, str) and 0 < len(x_cloud_trace_context) <= _HEADER_MAX:
        m = _XCTC.match(x_cloud_trace_context)
        if m and int(m.group(1), 16):
            # a span id of thousands of digits must not reach int() (it refuses > 4,300 digits)
            digits = m.group(2) or ""
            span = f"{int(digits):016x}" if 0 < len(digits) <= 20 and int(digits) < 2**64 else None
            sampled = None if m.group(3) is None else m.group(3) == "1"
            return Trace(m.group(1).lower(), span, sampled)
    if isinstance(traceparent, str) and 0 < len(traceparent) <= _HEADER_MAX:
        m = _TRACEPARENT.match(traceparent)
        if m and int(m.group(1), 16):
            return Trace(m.group(1).lower(), m.group(2).lower(), bool(int(m.group(3), 16) & 1))
    return None


@contextlib.contextmanager
def request_context(*, project: str | None, trace: Trace | None = None,
                    job_id: str | None = None) -> Iterator[None]:
    """Within the block, every log line carries this trace (as projects/PROJECT/traces/ID) and,
    unless given its own, this job id."""
    t1 = _trace.set((project or "", trace) if trace else None)
    t2 = _job_id.set(job_id)
    try:
        yield
    finally:
        _trace.reset(t1)
        _job_id.reset(t2)


def set_job_id(job_id: str | None) -> None:
    """Label the rest of the current context's lines with this job id (e.g. once a body is parsed)."""
    _job_id.set(job_id)


def entry(severity: str, message: str, *, job_id: str | None = None, **fields: Any) -> dict[str, Any]:
    """The log entry (a dict) `log` writes."""
    out: dict[str, Any] = {"severity": severity, "message": message,
                           "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime()) + "Z"}
    job_id = job_id or _job_id.get() or os.environ.get("EXPORT_JOB_ID") or None
    if job_id:
        out[_LABELS] = {"jobId": job_id}
        out["jobId"] = job_id
    ctx = _trace.get()
    if ctx:
        project, trace = ctx
        project = project or os.environ.get("GOOGLE_CLOUD_PROJECT", "")
        out[_TRACE] = f"projects/{project}/traces/{trace.trace_id}" if project else trace.trace_id
        if trace.span_id:
            out[_SPAN] = trace.span_id
        if trace.sampled is not None:
            out[_SAMPLED] = trace.sampled
    out.update(fields)
    return out


def _finite(value: Any) -> Any:
    """`value` with every NaN/Infinity float replaced by its text ("nan", "inf"), so the line stays
    strict JSON (Cloud Logging and any JSON.parse reject the bare NaN json.dumps would write)."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def line(fields: dict[str, Any]) -> str:
    """One log entry as a strict JSON line (no NaN/Infinity; unknown objects as str()). Never raises."""
    for make in (lambda: fields, lambda: _finite(fields)):
        try:
            return json.dumps(make(), default=str, allow_nan=False)
        except (ValueError, TypeError, RecursionError):  # a non-finite float, odd keys, a cycle, absurd nesting
            continue
    return json.dumps({k: str(fields.get(k)) for k in ("severity", "message", "time")}
                      | {"logError": "fields could not be written as JSON"})


def log(severity: str, message: str, *, job_id: str | None = None, **fields: Any) -> None:
    """Write one structured log line. `severity` is a Cloud Logging severity (INFO, WARNING, ERROR)."""
    sys.stdout.write(line(entry(severity, message, job_id=job_id, **fields)) + "\n")
    sys.stdout.flush()


def info(message: str, **kw: Any) -> None:
    log("INFO", message, **kw)


def warning(message: str, **kw: Any) -> None:
    log("WARNING", message, **kw)


def error(message: str, **kw: Any) -> None:
    log("ERROR", message, **kw)
