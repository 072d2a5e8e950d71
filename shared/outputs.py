"""The scene timeline carried with an export's output. Pure.

The render job writes it twice: in its succeeded report (`output.scenes`) and as custom metadata
on the video object ("scene-starts", "scene-durations": comma-separated seconds), so the finalize
handler can mark the job succeeded with the same output whichever arrives first.
"""
from __future__ import annotations

import re
import unicodedata
from typing import Any

MAX_SCENES_IN_TIMELINE = 1000

# One file name in an export's folder (exports/{jobId}/NAME): the alphabet of every name the render
# job writes (slug(title).mp4, poster.jpg, captions.srt/.vtt) and of every name the API accepts back
# from object metadata or a worker report. A leading letter or digit: never ".", ".." or "-x".
OUTPUT_NAME = r"[A-Za-z0-9][A-Za-z0-9._-]{0,199}"
_OUTPUT_NAME_RE = re.compile(OUTPUT_NAME)
# custom metadata of the video that name a file (the download name, the poster, the sidecars)
NAME_METADATA = ("filename", "poster", "srt", "vtt")


def is_output_name(name: Any) -> bool:
    """True when `name` is one path segment of OUTPUT_NAME (at most 200 characters)."""
    return isinstance(name, str) and _OUTPUT_NAME_RE.fullmatch(name) is not None


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
    """The inverse of timeline_to_metadata; [] when absent or malformed."""
    try:
        starts = [float(x) for x in (metadata.get("scene-starts") or "").split(",") if x]
        durations = [float(x) for x in (metadata.get("scene-durations") or "").split(",") if x]
    except ValueError:
        return []
    return [{"startS": a, "durationS": d} for a, d in zip(starts, durations)][:MAX_SCENES_IN_TIMELINE]
