"""A job's output: whether a video object is this job's, and the output record a succeeded job
stores, built from the object (finalize, reconcile) or from the render job's report. Pure: the
caller stats the object (ObjectStorage.stat) and passes the ObjectInfo.

A job is succeeded only with its own video (issue 14): the object exists, is the generation the
event names or newer, carries custom metadata `job-id` equal to the job, is not empty, and has a
name the render job writes (shared.outputs.OUTPUT_NAME + ".mp4"). Names read back from metadata
(download filename, poster, srt, vtt) must be OUTPUT_NAME too; any other is dropped.
Every stored field is bounded (what every later status poll returns).
"""
from __future__ import annotations

import math
import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from shared.outputs import OUTPUT_NAME, is_output_name, timeline_from_metadata, warnings_from_metadata
from shared.ports import ObjectInfo

MAX_DURATION_S = 7 * 86400
MAX_SIDE_PX = 16384


def event_generation(generation: Any) -> int:
    """The generation a finalize event names, as an int (0 when absent or not a number)."""
    text = str(generation or "")
    return int(text) if text.isascii() and text.isdigit() else 0


def object_not_current(info: ObjectInfo | None, min_generation: int = 0) -> str | None:
    """Why the object a finalize event names is not there (a reason for logs), or None when it
    exists at `min_generation` (the event's) or newer. Events are not trusted: the object is."""
    if info is None:
        return "the object does not exist"
    if info.generation < min_generation:
        return f"it is generation {info.generation}, older than the event's {min_generation}"
    return None


def video_not_ours(info: ObjectInfo | None, job_id: str, min_generation: int = 0) -> str | None:
    """Why `info` is not this job's video (a reason for logs and errors), or None when it is.

    info: the object as stat'd now (None: it does not exist). min_generation: the generation an
    event names (0: none), the object must be that one or newer.
    """
    if info is None:
        return object_not_current(info)
    base = info.name.rsplit("/", 1)[-1]
    if not (base.endswith(".mp4") and is_output_name(base)):
        return "its name is not a video name the render job writes"
    if why := object_not_current(info, min_generation):
        return why
    owner = info.metadata.get("job-id")
    if not owner:
        return "it has no job-id metadata (not written by the render job)"
    if owner != job_id:
        return "its job-id metadata names another job"
    if info.size <= 0:
        return "it is empty (0 bytes)"
    return None


def _num(v: Any, lo: float, hi: float) -> float | None:
    """A finite float in [lo, hi], else None (object metadata is text a client could have written)."""
    try:
        f = float(v) if v is not None else None
    except (TypeError, ValueError):
        return None
    return f if f is not None and math.isfinite(f) and lo <= f <= hi else None


def _int(v: Any, lo: int, hi: int) -> int | None:
    try:
        i = int(v) if v is not None else None
    except (TypeError, ValueError):
        return None
    return i if i is not None and lo <= i <= hi else None


_LOUDNESS = (("integratedLufs", "loudness-i"), ("truePeakDb", "loudness-tp"), ("lra", "loudness-lra"))


def output_from_object(info: ObjectInfo, max_scenes: int) -> tuple[dict, list[str]]:
    """The stored output of a job whose video `info` passed video_not_ours, from its metadata.

    Returns (output, dropped): output {object, filename, durationS, sizeBytes (the object's size),
    width, height, poster, captions {srt?, vtt?} (object names beside the video), scenes [{startS,
    durationS}] (at most max_scenes), warnings [{path, message}] (bounded), loudness}; dropped: the metadata keys whose names were unsafe.
    """
    meta, folder = info.metadata, info.name.rsplit("/", 1)[0]
    dropped = [k for k in ("filename", "poster", "srt", "vtt") if meta.get(k) and not is_output_name(meta[k])]

    def sibling(key: str) -> str | None:
        return f"{folder}/{meta[key]}" if meta.get(key) and key not in dropped else None

    output = {"object": info.name,
              "filename": meta["filename"] if meta.get("filename") and "filename" not in dropped
              else info.name.rsplit("/", 1)[-1],
              "durationS": _num(meta.get("duration-s"), 0, MAX_DURATION_S), "sizeBytes": info.size,
              "width": _int(meta.get("width"), 1, MAX_SIDE_PX), "height": _int(meta.get("height"), 1, MAX_SIDE_PX),
              "poster": sibling("poster"),
              "captions": {k: sibling(k) for k in ("srt", "vtt") if sibling(k)},
              "scenes": timeline_from_metadata(meta)[:max_scenes], "warnings": warnings_from_metadata(meta),
              "loudness": {k: _num(meta.get(m), -1000, 1000) for k, m in _LOUDNESS}
              if meta.get("loudness-i") else None}
    return output, dropped


# -- the render job's `succeeded` report --------------------------------------------------------------
class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TimelineEntry(_Strict):
    startS: float = Field(ge=0, le=MAX_DURATION_S, allow_inf_nan=False)
    durationS: float = Field(ge=0, le=MAX_DURATION_S, allow_inf_nan=False)


class Loudness(_Strict):
    integratedLufs: float | None = Field(None, ge=-1000, le=1000, allow_inf_nan=False)
    truePeakDb: float | None = Field(None, ge=-1000, le=1000, allow_inf_nan=False)
    lra: float | None = Field(None, ge=-1000, le=1000, allow_inf_nan=False)


_OBJECT_NAME = rf"^exports/[0-9a-f-]{{36}}/{OUTPUT_NAME}$"


class Captions(_Strict):
    srt: str | None = Field(None, max_length=300, pattern=_OBJECT_NAME)
    vtt: str | None = Field(None, max_length=300, pattern=_OBJECT_NAME)


class ReportOutput(BaseModel):
    """The `output` of a succeeded report: numbers finite and in range, names OUTPUT_NAME, every
    field bounded (the object name is checked against the job's folder and the bucket separately)."""

    model_config = ConfigDict(extra="ignore")  # ignored fields are never stored
    uri: str = Field(min_length=6, max_length=1100)
    filename: str | None = Field(None, max_length=200, pattern=rf"^{OUTPUT_NAME}$")
    durationS: float | None = Field(None, ge=0, le=MAX_DURATION_S, allow_inf_nan=False)
    sizeBytes: int | None = Field(None, ge=0, lt=2**63)
    width: int | None = Field(None, ge=1, le=MAX_SIDE_PX)
    height: int | None = Field(None, ge=1, le=MAX_SIDE_PX)
    poster: str | None = Field(None, max_length=300, pattern=_OBJECT_NAME)
    captions: Captions | None = None
    scenes: list[TimelineEntry] | None = Field(None, max_length=1000)
    loudness: Loudness | None = None
    warnings: list[dict[str, Any]] | None = Field(None, max_length=100)  # bounded by clean_warnings


def own_object(job_id: str, name: str | None) -> str | None:
    """`name` if it is a file in this job's output folder (exports/ID/NAME), else None."""
    if isinstance(name, str) and re.fullmatch(rf"exports/{re.escape(job_id)}/{OUTPUT_NAME}", name):
        return name
    return None
