"""A parallel render's part and audio tasks (issue 19; shared.executions): task i < K of a K-part
render execution renders video part i, task K the whole timeline's audio, each into its piece in the
output bucket (shared.artifacts.part_object); the stitch (render_job.stitch_task) joins them.

Every task derives the same plan from the same inputs: the spec, every narration and clip probed
(render_job.prepare.timing_srcs: they set the durations and weigh in the part plan), then
plan_parts(plan, K, settings.render_min_part_s) -> k <= K parts. Then:
- a part task with i >= k has nothing to do: it exits 0 without a report;
- a piece already in the bucket with this job's metadata for this plan (part_from_metadata: k, and
  the part's frames) was uploaded by an earlier attempt: nothing to do either (a retried task);
- else the part task fetches the pictures of its scenes (first_scene..last_scene + 1, the scene its
  last transition leads into), renders the part (render_job.part_render.render_part: frames checked)
  and uploads it; the audio task fetches the music too, never a picture, renders and measures the
  audio (render_audio) and uploads it with its loudness (loudness-i/-tp/-lra, as the video's).
A piece is uploaded under its one name, overwriting (a retried task's piece replaces its earlier
one: a range never has two parts), with part_metadata (job-id, part-index, part-count = k, frames).

Reports (every one carries `task`: render_job.reporter.Reporter(task=...)): running "preparing"
(0..0.1) then "rendering" (0.1..1: this task's own progress); never succeeded (the upload's
finalize event counts the piece); a permanent failure is reported failed, its message starting
with the part's label ("part 2 (scenes[3]..scenes[5]): ...") or "audio: ...". Exit codes:
render_job.attempt.
"""
from __future__ import annotations

import os
import time
from typing import Any

from shared import logs
from shared.artifacts import AUDIO_PART, LOUDNESS_METADATA, part_from_metadata, part_metadata, part_object
from shared.config import Settings
from shared.executions import AUDIO_ROLE, PART_ROLE

from render_job.attempt import Canceled, RenderResult, check_canceled, failed
from render_job.part_plan import PartPlan, plan_parts
from render_job.part_render import prepare_workdir, render_audio, render_part
from render_job.plan import RenderPlan, build_plan
from render_job.prepare import audio_srcs, check_length, read_spec, timing_srcs, visual_srcs
from render_job.preflight import fetch_and_probe
from render_job.runner import default_timeout_s, find_ffmpeg

CONTENT_TYPES = {PART_ROLE: "video/mp4", AUDIO_ROLE: "audio/mp4"}


def run_task(job_id: str, storage: Any, reporter: Any, settings: Settings, workdir: str, attempt: int = 0, *,
             parts: int, role: str, index: int, ffmpeg: str | None = None) -> RenderResult:
    """Run task (`role`, `index`) of a `parts`-part render execution of export `job_id` (module
    docstring). Never raises (except KeyboardInterrupt/SystemExit, and render_job.usage.Stopped).

    Args:
        parts: K, EXPORT_PART_COUNT. role, index: shared.executions.task_role's (PART_ROLE, i) or
            (AUDIO_ROLE, K). storage, reporter, settings, workdir, attempt, ffmpeg: as run_export's.
    Returns:
        RenderResult with status "uploaded" (the piece is in the bucket, now or earlier), "idle"
        (a part task beyond the plan's k parts), "failed", "retry" or "canceled".
    """
    timings: dict[str, float] = {}
    t0 = time.monotonic()
    plan: RenderPlan | None = None
    what: str | None = "audio" if role == AUDIO_ROLE else None
    try:
        spec = read_spec(storage, settings.input_bucket, job_id)
        srcs = audio_srcs(spec) if role == AUDIO_ROLE else timing_srcs(spec)
        local, probes = fetch_and_probe(spec, job_id, storage, settings.input_bucket, workdir, settings, srcs=srcs)
        plan = build_plan(spec, probes)
        check_length(plan, spec, settings)
        cut = plan_parts(plan, parts, settings.render_min_part_s)
        k = len(cut)
        if role == PART_ROLE and index >= k:
            logs.info("the plan has fewer parts than tasks: nothing to render", job_id=job_id, part=index,
                      parts=k, told=parts)
            return RenderResult(0, "idle", plan=plan, timings=timings)
        part = cut[index] if role == PART_ROLE else None
        what = part.label if part is not None else what
        piece_index = part.index if part is not None else AUDIO_PART
        piece = part_object(job_id, piece_index)
        frames = part.frames if part is not None else None
        if part_from_metadata(storage.stat(settings.output_bucket, piece), job_id, piece_index) == (k, frames):
            logs.info("piece already uploaded by an earlier attempt", job_id=job_id, piece=piece, attempt=attempt)
            return RenderResult(0, "uploaded", plan=plan, timings=timings)

        reporter.running("preparing", 0.0, force=True)
        check_canceled(reporter)
        exe = ffmpeg or find_ffmpeg(settings.ffmpeg_binary)
        if part is not None:
            path, metadata, plan = _render_part(exe, spec, plan, part, local, probes, storage, reporter, settings,
                                                workdir, job_id, timings)
        else:
            path, metadata = _render_audio(exe, plan, local, reporter, settings, workdir, job_id, timings)
        check_canceled(reporter)
        t1 = time.monotonic()
        storage.upload_file(settings.output_bucket, piece, path, CONTENT_TYPES[role],
                            metadata={**part_metadata(job_id, piece_index, k, frames), **metadata})
        timings["upload_s"] = time.monotonic() - t1
        # the last report: the task's usage up to its end counts in the job's cost (a 409, when the
        # stitch already finished, still records it)
        reporter.running("rendering", 1.0, force=True)
        timings["total_s"] = time.monotonic() - t0
        logs.info("piece uploaded", job_id=job_id, attempt=attempt, piece=piece, parts=k, frames=frames,
                  timings=timings)
        return RenderResult(0, "uploaded", plan=plan, timings=timings)
    except Canceled:
        logs.warning("the API rejected our reports (job canceled or terminal); stopping", job_id=job_id)
        return RenderResult(0, "canceled", plan=plan, timings=timings)
    except Exception as exc:  # noqa: BLE001 - every failure is reported (render_job.attempt.failed)
        return failed(exc, job_id, attempt, reporter, settings, workdir, plan, timings, what=what)


def _render_part(exe: str, spec: Any, plan: RenderPlan, part: PartPlan, local: dict[str, str],
                 probes: dict[str, Any], storage: Any, reporter: Any, settings: Settings, workdir: str,
                 job_id: str, timings: dict[str, float]) -> tuple[str, dict[str, str], RenderPlan]:
    """Fetch the part's pictures, render the part: (local path, extra metadata (none), the plan
    built with the pictures' probes). The plan's timing is the same with or without them."""
    t0 = time.monotonic()
    more = [s for s in visual_srcs(spec, part.first_scene, part.last_scene + 1) if s not in local]
    if more:  # the pictures only this part reads; a picture's problem fails its part, naming the scene
        more_local, more_probes = fetch_and_probe(spec, job_id, storage, settings.input_bucket, workdir, settings,
                                                  srcs=more)
        local, probes = {**local, **more_local}, {**probes, **more_probes}
        plan = build_plan(spec, probes)  # the pictures' sizes: the segment memory model's
    reporter.running("preparing", 0.05)
    overlay, ass = prepare_workdir(exe, plan, workdir, job_id)
    timings["prepare_s"] = time.monotonic() - t0
    reporter.running("rendering", 0.1, force=True)
    check_canceled(reporter)
    t1 = time.monotonic()
    seconds = part.frames / plan.fps
    name = render_part(exe, plan, local, part, workdir, overlay=overlay, ass_path=ass,
                       max_scenes=settings.render_segment_scenes, threads=settings.ffmpeg_threads,
                       timeout_s=default_timeout_s(seconds, settings.render_timeout_base_s,
                                                   settings.render_timeout_per_output_s),
                       stall_s=settings.render_stall_s, job_id=job_id,
                       on_progress=lambda f: reporter.running("rendering", 0.1 + 0.85 * f))
    timings["render_s"] = time.monotonic() - t1
    reporter.running("rendering", 0.95)
    return os.path.join(workdir, name), {}, plan


def _render_audio(exe: str, plan: RenderPlan, local: dict[str, str], reporter: Any, settings: Settings,
                  workdir: str, job_id: str, timings: dict[str, float]) -> tuple[str, dict[str, str]]:
    """Render and measure the whole timeline's audio: (local path, its loudness metadata)."""
    reporter.running("rendering", 0.1, force=True)
    check_canceled(reporter)
    t1 = time.monotonic()
    name, loudness, passes = render_audio(exe, plan, local, workdir, job_id,
                                          timeout_s=default_timeout_s(plan.total_s, settings.render_timeout_base_s,
                                                                      settings.render_timeout_per_output_s),
                                          stall_s=settings.render_stall_s,
                                          on_progress=lambda f: reporter.running("rendering", 0.1 + 0.8 * f))
    timings["render_s"] = time.monotonic() - t1
    timings["loudness_passes"] = passes
    reporter.running("rendering", 0.95)
    return os.path.join(workdir, name), loudness_metadata(loudness)


def loudness_metadata(loudness: dict | None) -> dict[str, str]:
    """{loudness-i, loudness-tp, loudness-lra} of a measured loudness (1 decimal, as the video's
    metadata: shared.artifacts.OutputRecord.to_metadata); {} when not measured."""
    if not loudness:
        return {}
    return {m: f"{loudness[k]:.1f}" for k, m in LOUDNESS_METADATA if loudness.get(k) is not None}
