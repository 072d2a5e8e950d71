"""The stitch execution of a parallel render (issue 19; RENDER_MODE=stitch): the parts and the audio
joined into the export's video, then published exactly as a whole export's render publishes it.

It is told K (EXPORT_PART_COUNT), the part count the part tasks were told, not the k parts they
cut: plan_parts(plan, k) need not cut where plan_parts(plan, K) did (it balances exactly k parts),
so the stitch rebuilds the tasks' plan (the spec, every narration and clip probed: no picture, no
music) and cuts it with the same K and settings.render_min_part_s. Then:
1. every piece is checked against that plan by its metadata (shared.artifacts.part_from_metadata: k
   and each part's frames) and downloaded: a missing piece is a TransientError ("part_missing"); a
   piece cut for another plan is deleted, then a TransientError ("part_mismatch") naming the part;
2. render_job.stitch.stitch: the parts' real frame counts and codec parameters, the stream-copy join
   with the audio, +faststart, the result's frames, duration and A/V length. A part failing those
   checks is deleted too. A missing or deleted piece ENDS the stitch without failing the export and
   without a retry (exit 0, no report, a warning naming the piece: PIECE_CODES): nothing a retried
   stitch could do brings the piece back. The job, no longer reported on, goes stale; reconcile
   (shared.part_repairs) finds the piece gone, un-counts it, relaunches the parts execution (whose
   tasks skip the pieces still in the bucket: only that part is rendered again, render_job.part_task)
   and releases the stitch's claim, so the finalize of the new piece starts a new stitch;
3. the poster frame of the stitched file, the caption sidecars, then upload_outputs as run_export:
   the video last (its finalize event completes the job), with the loudness the audio task measured
   (the audio piece's loudness-i/-tp/-lra metadata).
A retried stitch whose video is already uploaded reports succeeded with it (upload.already_uploaded).

Reports (task {role: "stitch", index: 0} on each): running "stitching" (0..0.9), "uploading"
(0.9..1), then succeeded with the output, as today's single task. Exit codes: render_job.attempt.
"""
from __future__ import annotations

import os
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Sequence

from shared import logs
from shared.artifacts import AUDIO_PART, LOUDNESS_METADATA, part_from_metadata, part_object
from shared.config import Settings
from shared.errors import TransientError

from render_job.attempt import Canceled, RenderResult, check_canceled, failed, resumed
from render_job.graph.command import build_poster_command
from render_job.part_plan import PartPlan, plan_parts
from render_job.part_render import AUDIO_M4A, part_file
from render_job.plan import RenderPlan, build_plan
from render_job.prepare import (OUT_MP4, POSTER_JPG, check_length, read_spec, timing_srcs, with_fit_warnings,
                                write_caption_files)
from render_job.preflight import DOWNLOAD_THREADS, fetch_and_probe
from render_job.probe import probe
from render_job.runner import find_ffmpeg, run_ffmpeg
from render_job.stitch import PartMismatch, stitch
from render_job.upload import upload_outputs

PIECE_CODES = ("part_missing", "part_mismatch")  # a piece to render again, not a stitch to retry


def run_stitch(job_id: str, storage: Any, reporter: Any, settings: Settings, workdir: str, attempt: int = 0, *,
               parts: int, ffmpeg: str | None = None) -> RenderResult:
    """Stitch export `job_id`'s parts (module docstring). Never raises (except KeyboardInterrupt/
    SystemExit, and render_job.usage.Stopped).

    Args:
        parts: K, the part count the part tasks were told (EXPORT_PART_COUNT). storage, reporter,
            settings, workdir, attempt, ffmpeg: as run_export's.
    Returns:
        RenderResult: "succeeded" with the output, "failed", "retry", "canceled" or "piece_missing"
        (exit 0, unreported: a piece is missing or was deleted for not matching the plan).
    """
    timings: dict[str, float] = {}
    t0 = time.monotonic()
    plan: RenderPlan | None = None
    try:
        reporter.running("stitching", 0.0, force=True)
        check_canceled(reporter)
        spec = read_spec(storage, settings.input_bucket, job_id)
        if (done := resumed(storage, settings, job_id, spec, reporter, attempt)) is not None:
            return done  # a retried attempt after the video was uploaded: nothing left to do
        exe = ffmpeg or find_ffmpeg(settings.ffmpeg_binary)
        _, probes = fetch_and_probe(spec, job_id, storage, settings.input_bucket, workdir, settings,
                                    srcs=timing_srcs(spec))
        plan = build_plan(spec, probes)
        check_length(plan, spec, settings)
        cut = plan_parts(plan, parts, settings.render_min_part_s)
        caption_paths = write_caption_files(plan, workdir)
        plan = with_fit_warnings(plan, job_id)
        files, loudness = fetch_pieces(storage, settings.output_bucket, job_id, cut, workdir)
        timings["prepare_s"] = time.monotonic() - t0
        reporter.running("stitching", 0.3)
        check_canceled(reporter)

        t1 = time.monotonic()
        try:
            stitch(exe, plan, cut, files, AUDIO_M4A, workdir, OUT_MP4, job_id)
        except PartMismatch as exc:
            discard_part(storage, settings.output_bucket, job_id, exc.index)
            raise
        run_ffmpeg(build_poster_command(exe, OUT_MP4, plan.poster_s, POSTER_JPG), cwd=workdir, total_s=0.0,
                   timeout_s=120, what="ffmpeg poster", job_id=job_id)
        poster_path = os.path.join(workdir, POSTER_JPG)
        if not os.path.isfile(poster_path) or os.path.getsize(poster_path) == 0:
            raise TransientError("poster frame was not written")
        duration = probe(os.path.join(workdir, OUT_MP4), label="stitched output").duration_s or plan.total_s
        timings["stitch_s"] = time.monotonic() - t1
        check_canceled(reporter)

        t2 = time.monotonic()  # video last: its finalize event completes the job
        reporter.running("uploading", 0.9, force=True)
        output = upload_outputs(storage, reporter, settings.output_bucket, job_id, spec, plan,
                                os.path.join(workdir, OUT_MP4), poster_path, caption_paths, duration, loudness)
        timings["upload_s"] = time.monotonic() - t2
        reporter.succeeded(output)
        timings["total_s"] = time.monotonic() - t0
        logs.info("export stitched", job_id=job_id, attempt=attempt, parts=len(cut), output=output, timings=timings)
        return RenderResult(0, "succeeded", output=output, plan=plan, timings=timings)
    except Canceled:
        logs.warning("the API rejected our reports (job canceled or terminal); stopping", job_id=job_id)
        return RenderResult(0, "canceled", plan=plan, timings=timings)
    except TransientError as exc:
        if exc.code in PIECE_CODES:  # reconcile re-renders that part (module docstring): no retry, no report
            logs.warning("stitch ended: a piece is missing or did not match the plan; reconcile re-renders it",
                         job_id=job_id, attempt=attempt, code=exc.code, reason=exc.message)
            return RenderResult(0, "piece_missing", error={"code": exc.code, "message": exc.message}, plan=plan,
                                timings=timings)
        return failed(exc, job_id, attempt, reporter, settings, workdir, plan, timings)
    except Exception as exc:  # noqa: BLE001 - every failure is reported (render_job.attempt.failed)
        return failed(exc, job_id, attempt, reporter, settings, workdir, plan, timings)


def fetch_pieces(storage: Any, bucket: str, job_id: str, parts: Sequence[PartPlan],
                 workdir: str) -> tuple[list[str], dict | None]:
    """Download every part (part_file names) and the audio (AUDIO_M4A) into `workdir`, DOWNLOAD_THREADS
    at a time, once each is checked against the plan by its metadata. Returns (part file names in order, the audio's loudness
    {integratedLufs, truePeakDb, lra} or None when not measured).

    Raises:
        TransientError: "part_missing" (a piece is not in the bucket, or not this job's),
            "part_mismatch" (a piece cut for another plan: deleted first).
    """
    k = len(parts)
    for part in parts:  # every piece checked before any download
        name = part_object(job_id, part.index)
        got = part_from_metadata(storage.stat(bucket, name), job_id, part.index)
        if got is None:
            raise TransientError(f"{part.label}: not in the bucket (gs://{bucket}/{name})", code="part_missing")
        if got != (k, part.frames):
            discard_part(storage, bucket, job_id, part.index)
            raise PartMismatch(f"{part.label}: its piece was cut from a plan of {got[0]} parts with {got[1]} frames "
                               f"for it, this plan has {k} parts and {part.frames} frames", part.index)
    name = part_object(job_id, AUDIO_PART)
    info = storage.stat(bucket, name)
    got = part_from_metadata(info, job_id, AUDIO_PART)
    if got is None:
        raise TransientError(f"the audio is not in the bucket (gs://{bucket}/{name})", code="part_missing")
    if got[0] != k:
        discard_part(storage, bucket, job_id, AUDIO_PART)
        raise PartMismatch(f"the audio was rendered for a plan of {got[0]} parts, this plan has {k}", AUDIO_PART)
    files = [part_file(part.index) for part in parts]
    downloads = [(part_object(job_id, p.index), f) for p, f in zip(parts, files)] + [(name, AUDIO_M4A)]
    with ThreadPoolExecutor(max_workers=DOWNLOAD_THREADS) as pool:  # the storage client is thread-safe (preflight)
        for done in [pool.submit(storage.download_file, bucket, obj, os.path.join(workdir, f)) for obj, f in downloads]:
            done.result()
    return files, loudness_from_metadata(info.metadata if info is not None else {})


def loudness_from_metadata(metadata: dict[str, str]) -> dict | None:
    """{integratedLufs, truePeakDb?, lra?} from a piece's loudness-i/-tp/-lra metadata; None without
    a (parsable) loudness-i."""
    out = {}
    for key, meta in LOUDNESS_METADATA:
        try:
            if metadata.get(meta):
                out[key] = float(metadata[meta])
        except ValueError:
            continue
    return out if "integratedLufs" in out else None


def discard_part(storage: Any, bucket: str, job_id: str, index: int) -> None:
    """Delete piece `index` (AUDIO_PART: the audio) so that it is rendered again (module docstring).
    A failed delete is logged: the TransientError about the piece is raised by the caller anyway."""
    name = part_object(job_id, index)
    try:
        storage.delete(bucket, name)
        logs.warning("piece deleted: it does not match the plan", job_id=job_id, piece=name)
    except Exception as exc:  # noqa: BLE001 - the retry raises again about the same piece
        logs.error("could not delete a piece that does not match the plan", job_id=job_id, piece=name,
                   problem=type(exc).__name__)
