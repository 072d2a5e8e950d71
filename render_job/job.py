"""The render job: one Cloud Run Job task renders one export (DESIGN §1, §6).

`main()` only wires environment, settings, storage and the reporter, and runs the mode its
execution was told (render_job.task_env): a whole export (run_export, below), or a parallel
render's part or audio task (render_job.part_task) or its stitch (render_job.stitch_task).
`run_export()` runs the stages:

    preparing (0.0-0.1)  read jobs/{jobId}/spec.json, download assets, probe them all
                         (render_job.preflight), plan; long once measured: hand the export over to a
                         parallel render and stop (render_job.handoff); check the memory budget
                         (render_job.memory), captions
    rendering (0.1-0.9)  the mix's loudness (render_job.loudness), one FFmpeg run (render_job.graph;
                         progress from -progress); at or over RENDER_PARALLEL_AFTER_S instead the
                         pieces of a parallel render in this task (render_job.part_render.render_whole:
                         scene chunks, the audio, the stitch); then the poster frame and the loudness
    uploading (0.9-1.0)  exports/{jobId}/poster.jpg, captions.srt, captions.vtt, then LAST the MP4
                         (render_job.upload; its finalize event marks the job succeeded)

Exit codes (every mode): render_job.attempt.
"""
from __future__ import annotations

import os
import shutil
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from shared import logs
from shared.config import ConfigError, Settings, get_settings
from shared.errors import TransientError
from shared.executions import PART_MODE, STITCH_MODE

from render_job import caption_overlay
from render_job import memory
from render_job.attempt import Canceled, RenderResult, check_canceled, failed, resumed
from render_job.failure import public_message
from render_job.graph.command import (GRAPH_FILE, build_command, build_poster_command, build_segment_command,
                                      graph_via_file)
from render_job.graph.timeline import SEGMENT_BUDGET_MB
from render_job.graph.visuals import command_files
from render_job.loudness import mix_loudness, output_loudness
from render_job.plan import RenderPlan, build_plan
from render_job.preflight import fetch_and_probe
from render_job.probe import probe
from render_job.part_render import prepare_workdir, render_whole
from render_job.part_task import run_task
from render_job.runner import SegmentFeed, default_timeout_s, find_ffmpeg, run_ffmpeg, write_graph_files
from render_job.handoff import hand_over
from render_job.prepare import (OUT_MP4, POSTER_JPG, check_length, check_plan, read_spec, with_fit_warnings,
                                   write_caption_files)
from render_job.stitch_task import run_stitch
from render_job.subtitles import ASS_FILE
from render_job.task_env import EXPORT_MODE, Misconfigured, TaskEnv, task_env
from render_job.upload import upload_outputs
from render_job.usage import STOPPED_EXIT, Stopped, TaskUsage, stop_on_sigterm, task_cpu_s


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
        check_canceled(reporter)
        spec = read_spec(storage, settings.input_bucket, job_id)
        if (done := resumed(storage, settings, job_id, spec, reporter, attempt)) is not None:
            return done  # a retried attempt after the video was uploaded: nothing left to do
        exe = ffmpeg or find_ffmpeg(settings.ffmpeg_binary)

        local, probes = fetch_and_probe(spec, job_id, storage, settings.input_bucket, workdir, settings)
        reporter.running("preparing", 0.05)
        plan = build_plan(spec, probes)
        check_length(plan, spec, settings)  # a too-long export fails here, not in every part
        if hand_over(plan, settings, reporter, job_id, 0.05):  # long once measured: a K-part render takes it
            return RenderResult(0, "handed_over", plan=plan, timings=timings)
        check_canceled(reporter)  # the handoff was answered 409: the export is not ours any more
        cuts, budget = check_plan(plan, spec, workdir, settings, job_id)
        caption_paths = write_caption_files(plan, workdir)
        timings["prepare_s"] = time.monotonic() - t0
        plan = with_fit_warnings(plan, job_id)
        reporter.running("preparing", 0.1)
        check_canceled(reporter)

        measured = _render(exe, plan, local, cuts, budget, workdir, settings, job_id, reporter, timings)
        check_canceled(reporter)
        loudness, duration = _finish_video(exe, plan, budget, workdir, job_id, timings, measured)

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
    except Canceled:
        logs.warning("the API rejected our reports (job canceled or terminal); stopping", job_id=job_id)
        return RenderResult(0, "canceled", plan=plan, timings=timings)
    except Exception as exc:  # noqa: BLE001 - every failure is reported (render_job.attempt.failed)
        return failed(exc, job_id, attempt, reporter, settings, workdir, plan, timings)


def _render(exe: str, plan: RenderPlan, local: dict[str, str], cuts: list[int], budget: memory.Budget,
            workdir: str, settings: Settings, job_id: str, reporter: Any,
            timings: dict[str, float]) -> tuple[dict | None, int] | None:
    """Render OUT_MP4: command files and caption overlay, the mix's loudness analysis, then one
    FFmpeg run (fed by the segment runs when `cuts`), its output checked against the budget.
    At or over RENDER_PARALLEL_AFTER_S: _render_chunked, returning the audio's (loudness, passes)."""
    t1 = time.monotonic()
    if plan.total_s >= settings.render_parallel_after_s:  # long enough to split: chunks, as K parts would
        measured = _render_chunked(exe, plan, local, budget, workdir, settings, job_id, reporter)
        timings["render_s"] = time.monotonic() - t1
        return measured
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
    return None


def _render_chunked(exe: str, plan: RenderPlan, local: dict[str, str], budget: memory.Budget, workdir: str,
                    settings: Settings, job_id: str, reporter: Any) -> tuple[dict | None, int]:
    """Render OUT_MP4 of an export at or over RENDER_PARALLEL_AFTER_S as a K-part render would
    (render_job.part_render.render_whole: scene chunks and the audio once, stitched; the chunks held
    to the output cap, the media freed before the stitch), so that the single task's video and any
    K-part render's are the same bits (DESIGN.md §9 "chunks"). Returns the audio's (loudness, passes)."""
    overlay, ass = prepare_workdir(exe, plan, workdir, job_id)
    reporter.running("rendering", 0.1, force=True)
    measured = render_whole(
        exe, plan, local, workdir, OUT_MP4, overlay=overlay, ass_path=ass, max_scenes=settings.render_segment_scenes,
        threads=settings.ffmpeg_threads, stall_s=settings.render_stall_s, job_id=job_id,
        timeout_s=default_timeout_s(plan.total_s, settings.render_timeout_base_s, settings.render_timeout_per_output_s),
        on_progress=lambda f: reporter.running("rendering", 0.1 + 0.8 * f),
        output_cap=budget.output_cap, cap_source=budget.output_cap_source, check=lambda: check_canceled(reporter),
        before_stitch=lambda: logs.info("media freed after the render", job_id=job_id,
                                        bytes=memory.free_after_render(workdir)))
    memory.check_output(os.path.join(workdir, OUT_MP4), budget.output_cap, budget.output_cap_source)
    return measured


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
                  timings: dict[str, float], measured: tuple[dict | None, int] | None = None) -> tuple[dict | None, float]:
    """The poster frame and the output's loudness (corrected by a second pass when needed; `measured`:
    the audio's (loudness, passes), already measured and corrected: taken as they are), then the
    video's duration: (loudness or None, seconds). Raises TransientError when no poster was written."""
    t_loud = time.monotonic()
    mp4_path = os.path.join(workdir, OUT_MP4)
    # the poster frame is taken while the loudness is measured (two short FFmpeg runs, each reading
    # the output; a loudness second pass copies the video stream, so the frame is the same)
    with ThreadPoolExecutor(max_workers=1) as side:
        poster = side.submit(run_ffmpeg, build_poster_command(exe, OUT_MP4, plan.poster_s, POSTER_JPG),
                             cwd=workdir, total_s=0.0, timeout_s=120, what="ffmpeg poster")
        second_pass = memory.second_pass_fits(os.path.getsize(mp4_path), budget.limit)
        if measured is not None:
            loudness, passes = measured
        else:
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


def main() -> int:
    """Entry point of `python -m render_job` (Cloud Run Job task).

    Environment: EXPORT_JOB_ID (required), RENDER_MODE / EXPORT_PART_COUNT (a parallel render's part,
    audio or stitch task: render_job.task_env), CLOUD_RUN_TASK_INDEX / CLOUD_RUN_TASK_COUNT /
    CLOUD_RUN_TASK_ATTEMPT (default 0) / CLOUD_RUN_EXECUTION, plus the settings of shared.config.
    Returns:
        The process exit code: 0 done (succeeded or permanently failed, or a setting that cannot be
        used reported as failed "misconfigured"), 1 retry, 2 misconfigured and not reported (an
        execution variable: render_job.task_env), STOPPED_EXIT (143) stopped by SIGTERM after its
        last report (render_job.usage).
    """
    try:
        env = task_env(os.environ)
    except Misconfigured as exc:
        logs.error(str(exc), execution=os.environ.get("CLOUD_RUN_EXECUTION", ""))
        return 2
    job_id, attempt = env.job_id, env.attempt
    if env.mode == EXPORT_MODE and env.task_index != 0:
        logs.info("only task 0 renders; nothing to do", job_id=job_id, taskIndex=env.task_index,
                  taskCount=env.task_count)
        return 0
    from render_job.reporter import Reporter, report_misconfigured

    try:
        settings = get_settings()
    except ConfigError as exc:  # reported with the two strings it needs; a retry cannot help
        return report_misconfigured(exc, job_id, attempt, **({"task": env.task} if env.task else {}))
    logs.info("render task started", job_id=job_id, attempt=attempt, execution=env.execution,
              taskIndex=env.task_index, taskCount=env.task_count,
              **({"mode": env.mode, "role": env.role, "parts": env.parts} if env.task else {}))
    from shared.bootstrap import get_storage  # wiring point (imports cloud SDKs lazily)

    storage = get_storage(settings)
    reporter = Reporter(settings.complete_url, settings.worker_token, job_id, attempt,
                        min_interval_s=settings.render_report_interval_s, usage=TaskUsage.of(settings).snapshot,
                        task=env.task)
    if settings.render_workdir:
        os.makedirs(settings.render_workdir, exist_ok=True)
    workdir = tempfile.mkdtemp(prefix=f"render-{job_id}-", dir=settings.render_workdir)
    stop_on_sigterm()
    try:
        result = _run_mode(env, storage, reporter, settings, workdir)
    except Stopped:  # canceled (a cancel stops the execution) or out of time: the usage up to now counts
        logs.warning("render task told to stop (SIGTERM); reporting its usage", job_id=job_id, attempt=attempt)
        reporter.stopping()
        result = RenderResult(STOPPED_EXIT, "stopped")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    logs.info("render task finished", job_id=job_id, attempt=attempt, status=result.status,
              exitCode=result.exit_code, **task_cpu_s())
    return result.exit_code


def _run_mode(env: TaskEnv, storage: Any, reporter: Any, settings: Settings, workdir: str) -> RenderResult:
    """Run what `env` tells this task to do: the whole export, a part or the audio, or the stitch. The
    part floor the launcher sent (EXPORT_MIN_PART_S) replaces this task's own RENDER_MIN_PART_S."""
    if env.min_part_s is not None and env.min_part_s != settings.render_min_part_s:
        settings = settings.model_copy(update={"render_min_part_s": env.min_part_s})
    if env.mode == PART_MODE:
        return run_task(env.job_id, storage, reporter, settings, workdir, env.attempt, parts=env.parts,
                        role=env.role, index=env.index)
    if env.mode == STITCH_MODE:
        return run_stitch(env.job_id, storage, reporter, settings, workdir, env.attempt, parts=env.parts)
    return run_export(env.job_id, storage, reporter, settings, workdir, env.attempt)
