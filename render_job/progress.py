"""Parse FFmpeg's `-progress` output (pure: no I/O).

FFmpeg writes blocks of `key=value` lines, each block ending with `progress=continue` or
`progress=end`. The position is in `out_time_us` (microseconds), `out_time_ms` (also microseconds,
despite its name; an old FFmpeg quirk) or `out_time` (HH:MM:SS.micro); values may be `N/A`.
"""
from __future__ import annotations

from dataclasses import dataclass


def parse_progress_line(line: str) -> tuple[str, str] | None:
    """Split one `-progress` line into (key, value), both stripped.

    Returns:
        (key, value), or None for a blank or malformed line (no '=').
    """
    line = line.strip()
    if not line or "=" not in line:
        return None
    key, _, value = line.partition("=")
    key = key.strip()
    if not key:
        return None
    return key, value.strip()


def _hms_to_s(value: str) -> float | None:
    """'HH:MM:SS.ffffff' (or a bare number of seconds) to seconds; None when unparsable."""
    neg = value.startswith("-")
    if neg:
        return 0.0
    parts = value.split(":")
    try:
        total = 0.0
        for part in parts:
            total = total * 60 + float(part)
        return total
    except ValueError:
        return None


def out_time_seconds(key: str, value: str) -> float | None:
    """The output position in seconds carried by one progress key, or None if the key has none.

    `out_time_us` and `out_time_ms` are both microseconds; `out_time` is HH:MM:SS.micro.
    Negative positions (FFmpeg reports them at start-up) become 0.0.
    """
    if value in ("N/A", ""):
        return None
    if key in ("out_time_us", "out_time_ms"):
        try:
            return max(0.0, int(value) / 1_000_000)
        except ValueError:
            return None
    if key == "out_time":
        return _hms_to_s(value)
    return None


@dataclass
class ProgressTracker:
    """Turns `-progress` lines into a fraction of `total_s` (seconds of output), 0..1, never decreasing.

    feed(line) returns the new fraction when it rose (or at `progress=end`, 1.0), else None.
    `ended` is True once `progress=end` was seen.
    """

    total_s: float
    fraction: float = 0.0
    position_s: float = 0.0
    ended: bool = False
    lines_seen: int = 0

    def feed(self, line: str) -> float | None:
        """Consume one line; return the fraction (0..1) when it increased, else None."""
        kv = parse_progress_line(line)
        if kv is None:
            return None
        self.lines_seen += 1
        key, value = kv
        if key == "progress":
            if value == "end":
                self.ended = True
                if self.fraction < 1.0:
                    self.fraction = 1.0
                    return 1.0
            return None
        seconds = out_time_seconds(key, value)
        if seconds is None:
            return None
        self.position_s = max(self.position_s, seconds)
        if self.total_s <= 0:
            return None
        frac = min(1.0, self.position_s / self.total_s)
        if frac > self.fraction:
            self.fraction = frac
            return frac
        return None
