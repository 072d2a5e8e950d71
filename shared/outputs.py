"""The scene timeline carried with an export's output. Pure.

The render job writes it twice: in its succeeded report (`output.scenes`) and as custom metadata
on the video object ("scene-starts", "scene-durations": comma-separated seconds), so the finalize
handler can mark the job succeeded with the same output whichever arrives first.
"""
from __future__ import annotations

import math
import re
import unicodedata
from typing import Any

MAX_SCENES_IN_TIMELINE = 1000


def slugify(title: str | None, default: str = "export") -> str:
    """An ASCII file-name slug of `title` (lowercase, '-' separated, at most 80 chars), else `default`."""
    if not title:
        return default
    text = unicodedata.normalize("NFKD", title).encode("ascii", "ignore").decode("ascii")
    text = re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-").lower()[:80].strip("-")
    return text or default


def video_object(job_id: str, title: str | None) -> str:
    """The video's object name in the output bucket: exports/{jobId}/{slug(title)}.mp4."""
    return f"exports/{job_id}/{slugify(title)}.mp4"


def timeline_to_metadata(timeline: list[dict]) -> dict[str, str]:
    """[{startS, durationS}] -> {"scene-starts": "0.000,5.900", "scene-durations": "6.400,8.333"}."""
    return {"scene-starts": ",".join(f"{t['startS']:.3f}" for t in timeline),
            "scene-durations": ",".join(f"{t['durationS']:.3f}" for t in timeline)}


def timeline_from_metadata(metadata: dict[str, str]) -> list[dict]:
    """The inverse of timeline_to_metadata; [] when absent or malformed (non-finite numbers like "nan"
    included: float() accepts them, JSON cannot carry them)."""
    try:
        starts = [float(x) for x in (metadata.get("scene-starts") or "").split(",") if x]
        durations = [float(x) for x in (metadata.get("scene-durations") or "").split(",") if x]
    except (ValueError, AttributeError):
        return []
    if not all(math.isfinite(v) for v in starts + durations):
        return []
    return [{"startS": a, "durationS": d} for a, d in zip(starts, durations)][:MAX_SCENES_IN_TIMELINE]


def clean_timeline(value: Any) -> list[dict]:
    """A reported timeline, keeping only well-formed {startS, durationS} numbers (seconds)."""
    if not isinstance(value, list):
        return []
    out = []
    for item in value[:MAX_SCENES_IN_TIMELINE]:
        if isinstance(item, dict) and all(isinstance(item.get(k), (int, float)) and not isinstance(item.get(k), bool)
                                          for k in ("startS", "durationS")):
            out.append({"startS": float(item["startS"]), "durationS": float(item["durationS"])})
    return out
