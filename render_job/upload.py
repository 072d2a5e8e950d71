"""Uploading: the poster and caption sidecars, then LAST the video (its finalize event marks the job
succeeded), all with if_generation_match=0 so that a retried attempt never overwrites; and the check,
at the start of an attempt, for a video an earlier attempt already uploaded.

Object names (exports/{jobId}/...) and the output record with its metadata: shared.artifacts.
"""
from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Any

from shared import logs
from shared.artifacts import POSTER_FILE, SIDECAR_FILES, OutputRecord, export_folder, unsafe_names, video_object
from shared.errors import Conflict, PermanentRenderError
from shared.outputs import bounded_warnings
from shared.spec import ExportSpec

from render_job.plan import RenderPlan

CONTENT_TYPES = {"srt": "application/x-subrip", "vtt": "text/vtt"}


def upload_outputs(storage: Any, reporter: Any, out_bucket: str, job_id: str, spec: ExportSpec, plan: RenderPlan,
                   mp4_path: str, poster_path: str, caption_paths: dict[str, str], duration: float,
                   loudness: dict | None) -> dict:
    """Upload the export's files (poster and sidecars at once, then the video) and return the
    output record's report. `duration` in seconds; `loudness` as measured (None without audio).

    Raises:
        PermanentRenderError: "output_name" (a name unsafe to publish), "output_conflict" (a video
            of that name exists and was not written by this export).
    """
    prefix = export_folder(job_id)
    video = video_object(job_id, spec.title)
    # poster and sidecars at once (one round trip instead of three), all before the video
    small = [(prefix + POSTER_FILE, poster_path, "image/jpeg")]
    captions: dict[str, str] = {}
    for kind, fname in SIDECAR_FILES.items():
        if kind in plan.sidecars and plan.cues:
            small.append((prefix + fname, caption_paths[kind], CONTENT_TYPES[kind]))
            captions[kind] = prefix + fname
    with ThreadPoolExecutor(max_workers=len(small)) as pool:
        for done in [pool.submit(upload_once, storage, out_bucket, *item) for item in small]:
            done.result()
    reporter.running("uploading", 0.95)
    record = OutputRecord(object=video, filename=video.rsplit("/", 1)[-1], duration_s=duration,
                          size_bytes=os.path.getsize(mp4_path), width=plan.width, height=plan.height,
                          poster=prefix + POSTER_FILE, captions=captions, scenes=_timeline(plan),
                          warnings=bounded_warnings(list(plan.warnings)), loudness=loudness)
    metadata = record.to_metadata(job_id)
    unsafe = unsafe_names(metadata)
    if unsafe:  # the API drops such names (shared.artifacts.OUTPUT_NAME): never publish them
        raise PermanentRenderError(f"output names {unsafe} are not safe file names", code="output_name")
    if not upload_once(storage, out_bucket, video, mp4_path, "video/mp4", metadata):
        existing = storage.stat(out_bucket, video)
        if existing is not None and existing.metadata.get("job-id") != job_id:
            # not ours (every upload of ours carries job-id): never report someone else's file
            raise PermanentRenderError(
                f"gs://{out_bucket}/{video} already exists and was not written by this "
                "export (no matching job-id metadata); remove it and start a new export",
                code="output_conflict")
        logs.info("video already uploaded by an earlier attempt", job_id=job_id)
        if existing is not None:
            record = replace(record, size_bytes=existing.size)
    return record.to_report(out_bucket)


def _timeline(plan: RenderPlan) -> list[dict]:
    """The record's scenes: [{startS, durationS}] in seconds, from the plan."""
    return [{"startS": round(sc.start, 3), "durationS": round(sc.duration, 3)} for sc in plan.scenes]


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
    done = OutputRecord.resumed(storage.stat(out_bucket, video_object(job_id, spec.title)), job_id)
    return done.to_report(out_bucket) if done else None
