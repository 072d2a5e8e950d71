"""What every part of the graph writes the same way: seconds as FFmpeg text (pure)."""
from __future__ import annotations


def fmt_s(seconds: float) -> str:
    """Seconds as a compact decimal string for FFmpeg (microsecond precision, no exponent)."""
    text = f"{max(0.0, seconds):.6f}".rstrip("0").rstrip(".")
    return text or "0"
