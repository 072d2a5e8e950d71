"""UTC time: now, and the one text form every timestamp of the API takes (ISO 8601, milliseconds, Z)."""
from __future__ import annotations

from datetime import datetime, timezone


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def iso(dt: datetime | None) -> str | None:
    """UTC ISO 8601 with milliseconds (truncated) and a Z, e.g. "2026-01-02T03:04:05.678Z"; or None."""
    if dt is None:
        return None
    return dt.astimezone(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")
