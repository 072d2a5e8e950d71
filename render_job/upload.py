"""Uploading: the poster and caption sidecars, then LAST the video (its finalize event marks the job
succeeded), all with if_generation_match=0 so that a retried attempt never overwrites; and the check,
at the start of an attempt, for a video an earlier attempt already uploaded.

Objects go to gs://{output bucket}/exports/{jobId}/; the record reported is render_job.report's.
"""
from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from shared import logs
from shared.errors import Conflict, PermanentRenderError
from shared.outputs import bounded_warnings, slugify
from shared.spec import ExportSpec

from render_job.plan import RenderPlan
from render_job.report import output_from_metadata, output_record, timeline, video_metadata
from render_job.subtitles import SRT_FILE, VTT_FILE

CONTENT_TYPES = {"srt": "application/x-subrip", "vtt": "text/vtt"}


def upload_outputs(storage: Any, reporter: Any, out_bucket: str, job_id: str, spec: ExportSpec, plan: RenderPlan,
                   mp4_path: str, poster_path: str, caption_paths: dict[str, str], duration: float,
                   loudness: dict | None) -> dict:
    """Upload the export's files (poster and sidecars at once, then the video) and return the
    output record. `duration` in seconds; `loudness` as measured (None without audio).

    Raises:
        PermanentRenderError: "output_name" (a name unsafe to publish), "output_conflict" (a video
            of that name exists and was not written by this export).
    """
    prefix = f"exports/{job_id}/"
    filename = f"{slugify(spec.title)}.mp4"
    # poster and sidecars at once (one round trip instead of three), all before the video
    small = [(prefix + "poster.jpg", poster_path, "image/jpeg")]
    captions: dict[str, str] = {}
    for kind, fname in (("srt", SRT_FILE), ("vtt", VTT_FILE)):
        if kind in plan.sidecars and plan.cues:
            small.append((prefix + fname, caption_paths[kind], CONTENT_TYPES[kind]))
            captions[kind] = prefix + fname
    with ThreadPoolExecutor(max_workers=len(small)) as pool:
        for done in [pool.submit(upload_once, storage, out_bucket, *item) for item in small]:
            done.result()
    reporter.running("uploading", 0.95)
    warnings = bounded_warnings(list(plan.warnings))
    metadata = video_metadata(job_id, duration, plan, filename, captions, loudness, warnings)
    size = os.path.getsize(mp4_path)
    if not upload_once(storage, out_bucket, prefix + filename, mp4_path, "video/mp4", metadata):
        existing = storage.stat(out_bucket, prefix + filename)
        if existing is not None and existing.metadata.get("job-id") != job_id:
            # not ours (every upload of ours carries job-id): never report someone else's file
            raise PermanentRenderError(
                f"gs://{out_bucket}/{prefix}{filename} already exists and was not written by this "
                "export (no matching job-id metadata); remove it and start a new export",
                code="output_conflict")
        logs.info("video already uploaded by an earlier attempt", job_id=job_id)
        if existing is not None:
            size = existing.size
    return output_record(out_bucket, job_id, filename, duration, size, plan.width, plan.height, captions,
                         timeline(plan), loudness, warnings)


def upload_once(storage: Any, bucket: str, name: str, path: str, content_type: str,
                metadata: dict[str, str] | None = None) -> bool:
    """Upload once (if_generation_match=0). Returns False when the object already existed (a retry)."""
    try:
        storage.upload_file(bucket, name, path, content_type, if_generation_match=0, metadata=metadata)
        return True
    except Conflict:
        return False


def already_uploaded(storage: Any, out_bucket: str, job_id: str, spec: ExportSpec) -> dict | None:
    """The output of an earlier attempt when its video (uploaded last) is already in the bucket."""
    filename = f"{slugify(spec.title)}.mp4"
    info = storage.stat(out_bucket, f"exports/{job_id}/{filename}")
    if info is None or info.metadata.get("job-id") != job_id:
        return None
    return output_from_metadata(out_bucket, job_id, filename, info.size, info.metadata)
