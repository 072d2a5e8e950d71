"""The output record of a succeeded export in the render job's two shapes: the `output` object
reported to the API (camelCase; seconds, bytes, pixels, LUFS/dBTP/LU) and the video object's
metadata (strings), from which a retried attempt rebuilds the record (output_from_metadata).
Pure: no I/O. Names and timelines are written by shared.outputs.
"""
from __future__ import annotations

from shared.errors import PermanentRenderError
from shared.outputs import (NAME_METADATA, is_output_name, timeline_from_metadata, timeline_to_metadata,
                            warnings_from_metadata, warnings_to_metadata)

from render_job.plan import RenderPlan

_LOUDNESS_KEYS = (("integratedLufs", "loudness-i"), ("truePeakDb", "loudness-tp"), ("lra", "loudness-lra"))


def output_record(out_bucket: str, job_id: str, filename: str, duration: float, size: int, width: int,
                  height: int, captions: dict[str, str], scenes: list[dict] | None = None,
                  loudness: dict | None = None, warnings: list[dict] | None = None) -> dict:
    """The `output` of a succeeded report; `scenes` is the timeline [{startS, durationS}] in seconds;
    `loudness` the measured {integratedLufs, truePeakDb, lra} of the output (absent without audio);
    `warnings` [{path, message}]: parts of the spec that do not show (shared.outputs)."""
    prefix = f"exports/{job_id}/"
    out = {"uri": f"gs://{out_bucket}/{prefix}{filename}", "filename": filename,
           "durationS": round(duration, 3), "sizeBytes": size, "width": width, "height": height,
           "poster": prefix + "poster.jpg", "captions": captions, "scenes": scenes or [],
           "warnings": warnings or []}
    if loudness:
        out["loudness"] = loudness
    return out


def timeline(plan: RenderPlan) -> list[dict]:
    return [{"startS": round(sc.start, 3), "durationS": round(sc.duration, 3)} for sc in plan.scenes]


def video_metadata(job_id: str, duration: float, plan: RenderPlan, filename: str, captions: dict[str, str],
                   loudness: dict | None, warnings: list[dict]) -> dict[str, str]:
    """The video object's metadata (`captions`: {kind: object name}).

    Raises:
        PermanentRenderError ("output_name"): a file name in it is not safe to publish.
    """
    metadata = {"job-id": job_id, "duration-s": f"{duration:.3f}", "width": str(plan.width),
                "height": str(plan.height), "filename": filename, "poster": "poster.jpg",
                **timeline_to_metadata(timeline(plan)), **warnings_to_metadata(warnings)}
    metadata.update({kind: name.rsplit("/", 1)[-1] for kind, name in captions.items()})
    if loudness:
        metadata.update(_loudness_to_metadata(loudness))
    unsafe = [k for k in NAME_METADATA if k in metadata and not is_output_name(metadata[k])]
    if unsafe:  # the API drops such names (shared.outputs.OUTPUT_NAME): never publish them
        raise PermanentRenderError(f"output names {unsafe} are not safe file names", code="output_name")
    return metadata


def output_from_metadata(out_bucket: str, job_id: str, filename: str, size: int, md: dict[str, str]) -> dict | None:
    """The output record of a video already uploaded (its metadata `md`, its size in bytes), or None
    when the metadata cannot be read."""
    try:
        duration = float(md.get("duration-s", "0"))
        width, height = int(md.get("width", "0")), int(md.get("height", "0"))
    except ValueError:
        return None
    captions = {k: f"exports/{job_id}/{md[k]}" for k in ("srt", "vtt") if md.get(k)}
    return output_record(out_bucket, job_id, filename, duration, size, width, height, captions,
                         timeline_from_metadata(md), _loudness_from_metadata(md), warnings_from_metadata(md))


def _loudness_to_metadata(loudness: dict) -> dict[str, str]:
    return {meta: f"{loudness[key]:.1f}" for key, meta in _LOUDNESS_KEYS if loudness.get(key) is not None}


def _loudness_from_metadata(md: dict[str, str]) -> dict | None:
    try:
        out = {key: float(md[meta]) for key, meta in _LOUDNESS_KEYS if md.get(meta)}
    except ValueError:
        return None
    return out if "integratedLufs" in out else None
