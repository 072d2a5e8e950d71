"""The render job: one Cloud Run Job task renders one export (DESIGN §1, §6).

`main()` only wires environment, settings, storage and the reporter; `run_export()` runs the stages:

    preparing (0.0-0.1)  read jobs/{jobId}/spec.json, download assets, probe them all
                         (render_job.preflight), plan, check the memory budget (render_job.memory),
                         captions
    rendering (0.1-0.9)  the mix's loudness (render_job.loudness), one FFmpeg run (render_job.graph;
                         progress from -progress), then the poster frame and the output's loudness
    uploading (0.9-1.0)  exports/{jobId}/poster.jpg, captions.srt, captions.vtt, then LAST the MP4
                         (render_job.upload; its finalize event marks the job succeeded)

Exit codes (Cloud Run retries a non-zero exit): a permanent problem (bad spec, missing or corrupt
asset, FFmpeg rejecting the input) is reported `failed` and exits 0; a transient or unexpected one
exits 1 so the task is retried, and on the last attempt (attempt >= render_max_retries) it is also
reported `failed` (messages: render_job.failure).
"""
from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
import time
import traceback
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any

from shared import logs
from shared.artifacts import spec_object
from shared.config import ConfigError, Settings, get_settings
from shared.errors import ExportError, InvalidRequest, NotFound, PermanentRenderError, TransientError
from shared.limits import TOO_LONG, scene_label, total_problem
from shared.spec import ExportSpec, parse_spec
from shared.timeline import length_from_probe

from render_job import caption_overlay
from render_job import memory
from render_job.failure import failure_message, public_message
from render_job.graph.command import (GRAPH_FILE, build_command, build_poster_command, build_segment_command,
                                      graph_via_file)
from render_job.graph.timeline import SEGMENT_BUDGET_MB, segment_cuts
from render_job.graph.visuals import command_files
from render_job.loudness import mix_loudness, output_loudness
from render_job.plan import RenderPlan, build_plan
from render_job.preflight import fetch_and_probe
from render_job.probe import probe
from render_job.runner import SegmentFeed, default_timeout_s, find_ffmpeg, run_ffmpeg, write_graph_files
from render_job.subtitles import ASS_FILE, FONTS_DIR, fit_warnings, write_captions
from render_job.upload import already_uploaded, upload_outputs
from render_job.usage import STOPPED_EXIT, Stopped, TaskUsage, stop_on_sigterm, task_cpu_s

_JOB_ID_RE = re.compile(r"^[A-Za-z0-9_-]{1,128}$")
OUT_MP4 = "output.mp4"  # the rendered video and its poster frame, in the work directory
POSTER_JPG = "poster.jpg"


@dataclass
class RenderResult:
    """The outcome of one attempt.

    exit_code: the process exit code (0 done or permanently failed, 1 retry).
    status: "succeeded" | "failed" | "retry" | "canceled".
    output: the `output` object reported on success. error: {code, message} on failure.
    plan: the RenderPlan when planning got that far. timings: seconds per step.
    """

    exit_code: int
    status: str
    output: dict | None = None
    error: dict | None = None
    plan: RenderPlan | None = None
    timings: dict[str, float] = field(default_factory=dict)


class _Canceled(Exception):
    pass


def run_export(job_id: str, storage: Any, reporter: Any, settings: Settings, workdir: str, attempt: int = 0,
               *, ffmpeg: str | None = None) -> RenderResult:
    """Render export `job_id` end to end. Never raises (except KeyboardInterrupt/SystemExit).

    Args:
        job_id: the export job id (objects live under jobs/{job_id}/ and exports/{job_id}/).
        storage: an ObjectStorage (shared.ports).
        reporter: an object with running(stage, progress, force=False), succeeded(output),
            failed(code, message), e.g. render_job.reporter.Reporter.
        settings: shared.config.Settings (input_bucket, output_bucket, render_max_retries,
            ffmpeg_binary, ffmpeg_threads, the limits and render_memory_bytes are used).
        workdir: an existing, writable scratch directory (the caller removes it).
        attempt: Cloud Run task attempt, 0-based.
        ffmpeg: FFmpeg executable (default: find_ffmpeg(settings.ffmpeg_binary)).
    Returns:
        RenderResult; exit_code 0 = done (succeeded, failed permanently or canceled), 1 = retry.
    """
    timings: dict[str, float] = {}
    t0 = time.monotonic()
    plan: RenderPlan | None = None
    try:
        reporter.running("preparing", 0.0, force=True)
        _check_canceled(reporter)
        spec = _read_spec(storage, settings.input_bucket, job_id)
        done = already_uploaded(storage, settings.output_bucket, job_id, spec)
        if done is not None:  # a retried task after the video was uploaded: nothing left to do
            logs.info("outputs already uploaded by an earlier attempt", job_id=job_id, attempt=attempt)
            reporter.succeeded(done)
            return RenderResult(0, "succeeded", output=done, timings=timings)
        exe = ffmpeg or find_ffmpeg(settings.ffmpeg_binary)

        local, probes = fetch_and_probe(spec, job_id, storage, settings.input_bucket, workdir, settings)
        reporter.running("preparing", 0.05)
        plan = build_plan(spec, probes)
        cuts, budget = _check_plan(plan, spec, workdir, settings, job_id)
        caption_paths = _write_captions(plan, workdir)
        timings["prepare_s"] = time.monotonic() - t0
        plan = _with_fit_warnings(plan, job_id)
        reporter.running("preparing", 0.1)
        _check_canceled(reporter)

        _render(exe, plan, local, cuts, budget, workdir, settings, job_id, reporter, timings)
        _check_canceled(reporter)
        loudness, duration = _finish_video(exe, plan, budget, workdir, job_id, timings)

        t2 = time.monotonic()  # video last: its finalize event completes the job
        reporter.running("uploading", 0.9, force=True)
        output = upload_outputs(storage, reporter, settings.output_bucket, job_id, spec, plan,
                                os.path.join(workdir, OUT_MP4), os.path.join(workdir, POSTER_JPG), caption_paths,
                                duration, loudness)
        timings["upload_s"] = time.monotonic() - t2
        reporter.succeeded(output)
        timings["total_s"] = time.monotonic() - t0
        logs.info("export rendered", job_id=job_id, attempt=attempt, output=output, timings=timings)
        return RenderResult(0, "succeeded", output=output, plan=plan, timings=timings)
    except _Canceled:
        logs.warning("the API rejected our reports (job canceled or terminal); stopping", job_id=job_id)
        return RenderResult(0, "canceled", plan=plan, timings=timings)
    except Exception as exc:  # noqa: BLE001 - every failure is reported (see _failed)
        return _failed(exc, job_id, attempt, reporter, settings, workdir, plan, timings)


def _read_spec(storage: Any, input_bucket: str, job_id: str) -> ExportSpec:
    """jobs/{job_id}/spec.json, parsed. Raises NotFound ("spec_not_found"), InvalidRequest."""
    try:
        raw = storage.read_bytes(input_bucket, spec_object(job_id))
    except NotFound:
        raise NotFound(f"spec not found: gs://{input_bucket}/{spec_object(job_id)}",
                       code="spec_not_found") from None
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidRequest(f"spec.json is not valid JSON: {exc}") from None
    return parse_spec(data)


def _check_plan(plan: RenderPlan, spec: ExportSpec, workdir: str, settings: Settings,
                job_id: str) -> tuple[list[int], memory.Budget]:
    """(segment cuts, memory budget) of the plan. Raises PermanentRenderError: "too_long" (lengths
    from narrations and clips are known only now: the API counted them at their least), "memory_limit"."""
    lengths = [(scene_label(i, sc.id), sc.duration) for i, sc in enumerate(plan.scenes)]
    too_long = total_problem(plan.total_s, lengths, settings.max_total_s,
                             overlap_s=sum(sc.transition_s for sc in plan.scenes),
                             probed=any(length_from_probe(sc) for sc in spec.scenes))
    if too_long:
        raise PermanentRenderError(too_long, code=TOO_LONG)
    # more scenes than one FFmpeg graph should hold: the video in segments piped into one encoding run
    cuts = segment_cuts(plan, settings.render_segment_scenes)
    return cuts, _memory_budget(plan, cuts, workdir, settings, job_id, spec.output.resolution)


def _memory_budget(plan: RenderPlan, cuts: list[int], workdir: str, settings: Settings, job_id: str,
                   resolution: str) -> memory.Budget:
    """The render's memory budget (render_job.memory), logged; raises PermanentRenderError
    ("memory_limit") when it does not fit the task's memory."""
    limit, source = memory.task_memory_limit(settings.render_memory_bytes)
    budget = memory.budget(plan, cuts, memory.tree_bytes(os.path.join(workdir, "assets")), limit, source,
                           settings.max_output_bytes)
    logs.info("memory budget", job_id=job_id, **budget.as_log())
    memory.check_budget(budget, resolution)
    return budget


def _write_captions(plan: RenderPlan, workdir: str) -> dict[str, str]:
    """The caption files (ASS, SRT, VTT: {kind: path}) and the fonts, in the work directory."""
    caption_paths = write_captions(plan.cues, plan.width, plan.height, workdir, style=plan.caption_style,
                                   titles=plan.titles, burn_in=plan.burn_in, fps=plan.fps)
    fonts_link = os.path.join(workdir, "fonts")
    if not os.path.exists(fonts_link):
        shutil.copytree(FONTS_DIR, fonts_link)
    return caption_paths


def _with_fit_warnings(plan: RenderPlan, job_id: str) -> RenderPlan:
    """The plan, logged, with the burned-in texts drawn smaller added to its warnings (every warning
    is logged here and reported in output.warnings at the end: never silently dropped)."""
    logs.info("plan ready", job_id=job_id, totalS=plan.total_s, scenes=len(plan.scenes),
              width=plan.width, height=plan.height, fps=plan.fps, quality=plan.quality)
    smaller = fit_warnings(plan)  # burned-in text drawn smaller so that it fits the frame
    for w in plan.warnings:
        logs.warning("not shown in the video", job_id=job_id, path=w[0], reason=w[1])
    for w in smaller:
        logs.warning("burned-in text drawn smaller", job_id=job_id, path=w[0], reason=w[1])
    return replace(plan, warnings=plan.warnings + smaller)


def _render(exe: str, plan: RenderPlan, local: dict[str, str], cuts: list[int], budget: memory.Budget,
            workdir: str, settings: Settings, job_id: str, reporter: Any, timings: dict[str, float]) -> None:
    """Render OUT_MP4: command files and caption overlay, the mix's loudness analysis, then one
    FFmpeg run (fed by the segment runs when `cuts`), its output checked against the budget."""
    t1 = time.monotonic()
    for name, text in command_files(plan).items():  # e.g. zoom commands, read by the graph
        with open(os.path.join(workdir, name), "w", encoding="ascii") as fh:
            fh.write(text)
    burn = (plan.burn_in and bool(plan.cues)) or bool(plan.titles)
    overlay = _caption_overlay(plan, workdir, exe, job_id) if burn else None
    timings["captions_s"] = time.monotonic() - t1
    t_mix = time.monotonic()
    mix_analysis = mix_loudness(exe, workdir, plan, local, job_id) if plan.has_audio else None
    timings["mix_loudness_s"] = time.monotonic() - t_mix
    argv = build_command(plan, local, OUT_MP4, ASS_FILE if burn and overlay is None else None,
                         ffmpeg=exe, threads=settings.ffmpeg_threads, caption_overlay=overlay,
                         video_pipe=bool(cuts), loudness=mix_analysis)
    commands = [graph_via_file(memory.with_size_limit(argv, budget.output_cap))]
    bounds = list(zip([0] + cuts, cuts + [None])) if cuts else []
    for k, (first, last) in enumerate(bounds):
        commands.append(graph_via_file(build_segment_command(plan, local, first, last, ffmpeg=exe),
                                       name=f"segment{k}_{GRAPH_FILE}"))
    write_graph_files(workdir, commands)
    n_scenes = len(plan.scenes)
    labels = [f"scenes[{first}]..scenes[{n_scenes - 1 if last is None else last}]" for first, last in bounds]
    feed = SegmentFeed([c[0] for c in commands[1:]], cwd=workdir, labels=labels,
                       on_done=memory.segment_cleaner(workdir, [c[0] for c in commands], job_id)) if cuts else None
    if cuts:
        logs.info("rendering in segments", job_id=job_id, segments=len(bounds),
                  scenesPerSegment=settings.render_segment_scenes, budgetMb=SEGMENT_BUDGET_MB,
                  firstScenes=[first for first, _ in bounds])
    reporter.running("rendering", 0.1, force=True)
    try:
        run_ffmpeg(commands[0][0], cwd=workdir, total_s=plan.total_s,
                   on_progress=lambda f: reporter.running("rendering", 0.1 + 0.8 * f), what="ffmpeg render",
                   timeout_s=default_timeout_s(plan.total_s, settings.render_timeout_base_s,
                                               settings.render_timeout_per_output_s),
                   stall_s=settings.render_stall_s, job_id=job_id, feed=feed)
    finally:  # -fs stopped the encoding run (exit 0; its segments then fail on the closed pipe)
        memory.check_output(os.path.join(workdir, OUT_MP4), budget.output_cap, budget.output_cap_source)
    logs.info("media freed after the render", job_id=job_id, bytes=memory.free_after_render(workdir))
    timings["render_s"] = time.monotonic() - t1


def _caption_overlay(plan: RenderPlan, workdir: str, ffmpeg: str, job_id: str) -> caption_overlay.CaptionOverlay | None:
    """The captions pre-rendered as an overlay (render_job.caption_overlay), or None: burn captions.ass
    with the `subtitles` filter instead (title cards, very many caption states, or the pre-render
    failed, whatever the reason: logged, the render goes on the slower path with the same captions)."""
    try:
        return caption_overlay.prepare(plan, workdir, ffmpeg)
    except Exception as exc:  # noqa: BLE001 - an optimisation must never fail the export
        logs.warning("caption pre-render failed: burning captions with the subtitles filter", job_id=job_id,
                     error=public_message(str(exc), workdir))
        return None


def _finish_video(exe: str, plan: RenderPlan, budget: memory.Budget, workdir: str, job_id: str,
                  timings: dict[str, float]) -> tuple[dict | None, float]:
    """The poster frame and the output's loudness (corrected by a second pass when needed), then the
    video's duration: (loudness or None, seconds). Raises TransientError when no poster was written."""
    t_loud = time.monotonic()
    mp4_path = os.path.join(workdir, OUT_MP4)
    # the poster frame is taken while the loudness is measured (two short FFmpeg runs, each reading
    # the output; a loudness second pass copies the video stream, so the frame is the same)
    with ThreadPoolExecutor(max_workers=1) as side:
        poster = side.submit(run_ffmpeg, build_poster_command(exe, OUT_MP4, plan.poster_s, POSTER_JPG),
                             cwd=workdir, total_s=0.0, timeout_s=120, what="ffmpeg poster")
        second_pass = memory.second_pass_fits(os.path.getsize(mp4_path), budget.limit)
        loudness, passes = output_loudness(exe, workdir, OUT_MP4, plan, second_pass) if plan.has_audio else (None, 0)
        poster.result()
    timings["loudness_s"] = time.monotonic() - t_loud
    timings["loudness_passes"] = passes
    poster_path = os.path.join(workdir, POSTER_JPG)
    if not os.path.isfile(poster_path) or os.path.getsize(poster_path) == 0:
        raise TransientError("poster frame was not written")
    out_info = probe(mp4_path, label="rendered output")
    duration = out_info.duration_s or plan.total_s
    if abs(duration - plan.total_s) > 2.0 / plan.fps:
        logs.warning("output duration differs from the plan", job_id=job_id, durationS=duration,
                     planS=plan.total_s)
    return loudness, duration


def _failed(exc: Exception, job_id: str, attempt: int, reporter: Any, settings: Settings, workdir: str,
            plan: RenderPlan | None, timings: dict[str, float]) -> RenderResult:
    """The result of an attempt that raised `exc`, reported: a permanent problem (PermanentRenderError,
    InvalidRequest, NotFound) fails the job; anything else (TransientError, unexpected) is retried,
    and fails the job on the last attempt."""
    if isinstance(exc, (PermanentRenderError, InvalidRequest, NotFound)):
        error = {"code": exc.code, "message": exc.message}
        if exc.details:
            error["details"] = exc.details
        logs.error("export failed permanently", job_id=job_id, attempt=attempt, error=error)
        reporter.failed(exc.code, public_message(failure_message(exc), workdir))
        return RenderResult(0, "failed", error=error, plan=plan, timings=timings)
    if isinstance(exc, ExportError):
        error = {"code": exc.code, "message": exc.message}
    else:
        error = {"code": "internal", "message": f"internal error ({type(exc).__name__})"}
    last = attempt >= settings.render_max_retries
    logs.error("export attempt failed", job_id=job_id, attempt=attempt, lastAttempt=last, error=error,
               traceback=traceback.format_exc(limit=8))
    if last:
        reporter.failed(error["code"], public_message(error["message"], workdir))
        return RenderResult(1, "failed", error=error, plan=plan, timings=timings)
    return RenderResult(1, "retry", error=error, plan=plan, timings=timings)


def _check_canceled(reporter: Any) -> None:
    if getattr(reporter, "rejected", False) is True:
        raise _Canceled()


def _env_int(name: str, default: int) -> int:
    try:
        return int(os.environ.get(name) or default)
    except ValueError:
        return default


def main() -> int:
    """Entry point of `python -m render_job` (Cloud Run Job task).

    Environment: EXPORT_JOB_ID (required), CLOUD_RUN_TASK_INDEX / CLOUD_RUN_TASK_COUNT /
    CLOUD_RUN_TASK_ATTEMPT (default 0) / CLOUD_RUN_EXECUTION, plus the settings of shared.config.
    Returns:
        The process exit code: 0 done (succeeded or permanently failed, or a setting that cannot be
        used reported as failed "misconfigured"), 1 retry, 2 misconfigured and not reported,
        STOPPED_EXIT (143) stopped by SIGTERM after its last report (render_job.usage).
    """
    job_id = os.environ.get("EXPORT_JOB_ID", "")
    task_index = _env_int("CLOUD_RUN_TASK_INDEX", 0)
    task_count = _env_int("CLOUD_RUN_TASK_COUNT", 1)
    attempt = _env_int("CLOUD_RUN_TASK_ATTEMPT", 0)
    execution = os.environ.get("CLOUD_RUN_EXECUTION", "")
    if not _JOB_ID_RE.match(job_id):
        logs.error("EXPORT_JOB_ID is missing or malformed", execution=execution)
        return 2
    if task_index != 0:
        logs.info("only task 0 renders; nothing to do", job_id=job_id, taskIndex=task_index, taskCount=task_count)
        return 0
    from render_job.reporter import Reporter, report_misconfigured

    try:
        settings = get_settings()
    except ConfigError as exc:  # reported with the two strings it needs; a retry cannot help
        return report_misconfigured(exc, job_id, attempt)
    logs.info("render task started", job_id=job_id, attempt=attempt, execution=execution,
              taskIndex=task_index, taskCount=task_count)
    from shared.bootstrap import get_storage  # wiring point (imports cloud SDKs lazily)

    storage = get_storage(settings)
    reporter = Reporter(settings.complete_url, settings.worker_token, job_id, attempt,
                        min_interval_s=settings.render_report_interval_s, usage=TaskUsage.of(settings).snapshot)
    if settings.render_workdir:
        os.makedirs(settings.render_workdir, exist_ok=True)
    workdir = tempfile.mkdtemp(prefix=f"render-{job_id}-", dir=settings.render_workdir)
    stop_on_sigterm()
    try:
        result = run_export(job_id, storage, reporter, settings, workdir, attempt)
    except Stopped:  # canceled (a cancel stops the execution) or out of time: the usage up to now counts
        logs.warning("render task told to stop (SIGTERM); reporting its usage", job_id=job_id, attempt=attempt)
        reporter.stopping()
        result = RenderResult(STOPPED_EXIT, "stopped")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    logs.info("render task finished", job_id=job_id, attempt=attempt, status=result.status,
              exitCode=result.exit_code, **task_cpu_s())
    return result.exit_code
