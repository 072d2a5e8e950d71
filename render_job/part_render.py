"""A parallel render's pieces (issue 19): one part's video, and the whole timeline's audio once.
Called by a parallel render's tasks (render_job.part_task); render_job.job renders a whole export.

render_part: the part's scenes as segment runs (the segmented render's machinery: memory cuts
inside the part, SegmentFeed) piped into the part's encoding run (graph.parts.build_part_command),
then its frame count checked against the plan (render_job.stitch.video_frames).
render_audio: the single render's mix analysis (loudness.mix_loudness), the audio rendered once
(encode_audio, graph.parts.build_audio_command: the mix and its gain piped into the AAC encoding
run, an .m4a encoded once from the mix, as the single render encodes it) and measured, with the second pass the single render would get (loudness.output_loudness).
prepare_workdir: what every part's graph reads from the work directory (zoom command files, the
caption overlay's atlas or captions.ass and fonts): the same files the single render writes.
Errors: what render_job.runner.run_ffmpeg raises; a part with the wrong frame count: TransientError.
"""
from __future__ import annotations

import os
import shutil
from dataclasses import replace
from typing import Callable

from shared import logs
from shared.errors import TransientError

from render_job import caption_overlay
from render_job.graph.captions import CaptionOverlay
from render_job.graph.command import GRAPH_FILE, build_segment_command, graph_via_file
from render_job.graph.parts import build_audio_command, build_part_command
from render_job.graph.timeline import segment_cuts
from render_job.graph.visuals import command_files
from render_job.loudness import mix_loudness, output_loudness
from render_job.part_plan import PartPlan
from render_job.plan import RenderPlan
from render_job.runner import SegmentFeed, default_timeout_s, run_ffmpeg, write_graph_files
from render_job.stitch import video_frames
from render_job.subtitles import ASS_FILE, FONTS_DIR, write_captions

AUDIO_M4A = "audio.m4a"  # the whole timeline's audio, in the work directory


def part_file(index: int) -> str:
    """The work directory's name of part `index`'s video."""
    return f"part-{index:04d}.mp4"


def prepare_workdir(exe: str, plan: RenderPlan, workdir: str, job_id: str | None = None) -> tuple[CaptionOverlay | None, str | None]:
    """Write the files a part's graphs read (as render_job.job does for the single render) and
    return (caption overlay or None, ASS file name to burn or None)."""
    for name, text in command_files(plan).items():
        with open(os.path.join(workdir, name), "w", encoding="ascii") as fh:
            fh.write(text)
    write_captions(plan.cues, plan.width, plan.height, workdir, style=plan.caption_style, titles=plan.titles,
                   burn_in=plan.burn_in, fps=plan.fps)
    fonts = os.path.join(workdir, "fonts")
    if not os.path.exists(fonts):
        shutil.copytree(FONTS_DIR, fonts)
    if not ((plan.burn_in and plan.cues) or plan.titles):
        return None, None
    try:
        overlay = caption_overlay.prepare(plan, workdir, exe)
    except Exception as exc:  # noqa: BLE001 - as the single render: fall back to burning the ASS file
        logs.warning("caption pre-render failed: burning captions with the subtitles filter", job_id=job_id,
                     error=str(exc)[:500])
        overlay = None
    return overlay, (None if overlay is not None else ASS_FILE)


def part_segments(plan: RenderPlan, part: PartPlan, max_scenes: int) -> list[tuple[int, int | None]]:
    """(first, last) segment bounds of `part` (timeline_graph's), in order: the part's own range cut
    where a segmented render of its scenes alone would be (segment_cuts; max_scenes <= 0: one)."""
    n = len(plan.scenes)
    first, last = part.segment_bounds(n)
    own = replace(plan, scenes=plan.scenes[first:part.last_scene + 1])
    cuts = [first + j for j in segment_cuts(own, max_scenes)]
    return list(zip([first] + cuts, cuts + [last]))


def render_part(exe: str, plan: RenderPlan, local: dict[str, str], part: PartPlan, workdir: str, *,
                overlay: CaptionOverlay | None, ass_path: str | None, max_scenes: int = 24, threads: int = 0,
                timeout_s: float | None = None, stall_s: float = 60.0, job_id: str | None = None,
                on_progress: Callable[[float], None] | None = None) -> str:
    """Render `part`'s video into part_file(part.index) in `workdir` (prepare_workdir first; `local`
    holds the local path of every src the part's scenes read). Returns the file name.
    on_progress: called with the encoding run's progress (0..1 of the part's frames).

    Raises:
        TransientError: the part has another frame count than the plan's (naming the part), or
            FFmpeg was killed/stalled; PermanentRenderError: FFmpeg refused the input.
    """
    out = part_file(part.index)
    bounds = part_segments(plan, part, max_scenes)
    commands = [graph_via_file(build_part_command(plan, part.first_frame, part.frames, out, ass_path=ass_path,
                                                  caption_overlay=overlay, ffmpeg=exe, threads=threads),
                               name=f"part{part.index}_{GRAPH_FILE}")]
    for k, (first, last) in enumerate(bounds):
        commands.append(graph_via_file(build_segment_command(plan, local, first, last, ffmpeg=exe),
                                       name=f"part{part.index}_segment{k}_{GRAPH_FILE}"))
    write_graph_files(workdir, commands)
    labels = [f"{part.label} segment from scenes[{first}]" for first, _ in bounds]
    feed = SegmentFeed([c[0] for c in commands[1:]], cwd=workdir, labels=labels)
    seconds = part.frames / plan.fps
    run_ffmpeg(commands[0][0], cwd=workdir, total_s=seconds, what=f"ffmpeg {part.label}", job_id=job_id,
               on_progress=on_progress,
               timeout_s=timeout_s if timeout_s is not None else default_timeout_s(seconds), stall_s=stall_s, feed=feed)
    got = video_frames(os.path.join(workdir, out))
    if got != part.frames:
        raise TransientError(f"{part.label}: rendered {got} frames, the plan has {part.frames}", code="part_mismatch")
    logs.info("part rendered", job_id=job_id, part=part.index, firstScene=part.first_scene,
              lastScene=part.last_scene, frames=part.frames)
    return out


def render_audio(exe: str, plan: RenderPlan, local: dict[str, str], workdir: str,
                 job_id: str | None = None, *, timeout_s: float | None = None, stall_s: float = 60.0,
                 on_progress: Callable[[float], None] | None = None) -> tuple[str, dict | None, int]:
    """The whole timeline's audio, once, into AUDIO_M4A in `workdir`: the mix analysed, rendered with
    the single render's loudnorm and AAC settings, then measured (and given the second pass the
    single render would get). Returns (file name, {integratedLufs, truePeakDb, lra} or None, passes).
    on_progress: called with the audio run's progress (0..1)."""
    analysis = mix_loudness(exe, workdir, plan, local, job_id or "") if plan.has_audio else None
    encode_audio(exe, plan, local, workdir, analysis, job_id, timeout_s=timeout_s, stall_s=stall_s,
                 on_progress=on_progress)
    loudness, passes = (output_loudness(exe, workdir, AUDIO_M4A, plan, video=False) if plan.has_audio
                        else (None, 0))
    return AUDIO_M4A, loudness, passes


def encode_audio(exe: str, plan: RenderPlan, local: dict[str, str], workdir: str, analysis: dict | None,
                 job_id: str | None = None, *, timeout_s: float | None = None, stall_s: float = 60.0,
                 on_progress: Callable[[float], None] | None = None) -> str:
    """render_audio's render: the mix with its gain from `analysis` (loudness.mix_loudness) piped
    into the AAC encoding run (graph.parts.build_audio_command), into AUDIO_M4A. Returns the name."""
    mix_argv, encode_argv = build_audio_command(plan, local, AUDIO_M4A, analysis, ffmpeg=exe)
    mix_argv, files = graph_via_file(mix_argv, name=f"audio_{GRAPH_FILE}")
    for name, text in files.items():
        with open(os.path.join(workdir, name), "w", encoding="utf-8") as fh:
            fh.write(text)
    run_ffmpeg(encode_argv, cwd=workdir, total_s=plan.total_s, what="ffmpeg audio", job_id=job_id,
               on_progress=on_progress, feed=SegmentFeed([mix_argv], cwd=workdir, what="ffmpeg audio mix"),
               timeout_s=timeout_s if timeout_s is not None else default_timeout_s(plan.total_s), stall_s=stall_s)
    return AUDIO_M4A
