"""The scene timeline and the warnings carried with an export's output (shared.artifacts.OutputRecord
`scenes` and `warnings`), and their custom-metadata encodings. Pure.

The render job writes them twice: in its succeeded report (`output.scenes`, `output.warnings`) and
as custom metadata on the video object ("scene-starts", "scene-durations": comma-separated seconds;
"warnings": a JSON list), so the finalize handler can mark the job succeeded with the same output
whichever arrives first. A warning is {path, message} (the shape of an error's `details`): a part of
the spec that does not show in the video, e.g. a caption cue cut to less than one frame.
"""
from __future__ import annotations

import json
import math
import re
from typing import Any

MAX_SCENES_IN_TIMELINE = 1000

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


MAX_WARNINGS = 20            # at most this many warnings are kept with an output (the rest counted)
WARNING_TEXT_MAX = 300       # characters of a warning's path or message
METADATA_WARNINGS_MAX = 2000  # characters of the "warnings" object metadata (GCS allows 8 KiB in all)
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def clean_warnings(value: Any) -> list[dict]:
    """Reported warnings as [{path, message}] strings (the error `details` shape), bounded: at most
    MAX_WARNINGS, each field WARNING_TEXT_MAX characters, control characters removed; anything
    malformed is dropped."""
    if not isinstance(value, list):
        return []
    out = []
    for item in value[:MAX_WARNINGS]:
        if isinstance(item, dict) and all(isinstance(item.get(k), str) for k in ("path", "message")):
            out.append({k: _CONTROL.sub(" ", item[k])[:WARNING_TEXT_MAX] for k in ("path", "message")})
    return out


def bounded_warnings(warnings: list[tuple[str, str]]) -> list[dict]:
    """(path, message) pairs as clean_warnings' list; past MAX_WARNINGS the last entry counts the rest."""
    items = [{"path": p, "message": m} for p, m in warnings]
    if len(items) > MAX_WARNINGS:
        rest = len(items) - (MAX_WARNINGS - 1)
        items = items[:MAX_WARNINGS - 1] + [{"path": "captions", "message": f"and {rest} more like these"}]
    return clean_warnings(items)


def warnings_to_metadata(warnings: list[dict]) -> dict[str, str]:
    """{"warnings": JSON list} for the video object (as many whole entries as fit in
    METADATA_WARNINGS_MAX characters), or {} when there are none."""
    kept = list(warnings)
    while kept and len(json.dumps(kept, ensure_ascii=True)) > METADATA_WARNINGS_MAX:
        kept.pop()
    return {"warnings": json.dumps(kept, ensure_ascii=True)} if kept else {}


def warnings_from_metadata(metadata: dict[str, str]) -> list[dict]:
    """The inverse of warnings_to_metadata; [] when absent or malformed. Never raises: the text is
    object metadata a client could have written ("[" * 1001 is a RecursionError in json.loads)."""
    try:
        return clean_warnings(json.loads(metadata.get("warnings") or "[]"))
    except (ValueError, TypeError, RecursionError):
        return []
