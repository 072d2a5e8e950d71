"""Structured logs: one JSON object per line on stdout, as Cloud Logging parses them.

Fields: severity, message, time, and `logging.googleapis.com/labels` with the job id, plus any
extra fields passed as `fields=`.
"""
from __future__ import annotations

import json
import sys
import time
from typing import Any


def log(severity: str, message: str, *, job_id: str | None = None, **fields: Any) -> None:
    """Write one structured log line. `severity` is a Cloud Logging severity (INFO, WARNING, ERROR)."""
    entry: dict[str, Any] = {"severity": severity, "message": message,
                             "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime()) + "Z"}
    if job_id:
        entry["logging.googleapis.com/labels"] = {"jobId": job_id}
        entry["jobId"] = job_id
    entry.update(fields)
    sys.stdout.write(json.dumps(entry, default=str) + "\n")
    sys.stdout.flush()


def info(message: str, **kw: Any) -> None:
    log("INFO", message, **kw)


def warning(message: str, **kw: Any) -> None:
    log("WARNING", message, **kw)


def error(message: str, **kw: Any) -> None:
    log("ERROR", message, **kw)
