"""A parallel render's pieces (issue 19): one part's video, and the whole timeline's audio once;
and the same pieces in one task (render_whole) for a long export's single task.
Called by a parallel render's tasks (render_job.part_task) and by render_job.job.

render_part: the part's scene_chunks, each its segment runs (the segmented render's machinery:
memory cuts inside the chunk, SegmentFeed) piped into an encoding run of its own
(graph.parts.build_part_command), then joined by stream copy (graph.parts.build_join_command) and
the frame count checked against the plan (render_job.stitch.video_frames).
render_audio: the single render's mix analysis (loudness.mix_loudness), the audio rendered once
(encode_audio, graph.parts.build_audio_command: the mix and its gain piped into the AAC encoding
run, an .m4a encoded once from the mix, as the single render encodes it) and measured, with the
second pass the single render would get (loudness.output_loudness).
render_whole: the whole timeline as one part, the audio beside it, the stitch.
prepare_workdir: what every part's graph reads from the work directory (zoom command files, the
caption overlay's atlas or captions.ass and fonts): the same files the single render writes.
Errors: what render_job.runner.run_ffmpeg raises; a part with the wrong frame count: TransientError.
"""
from __future__ import annotations

import os
import shutil
import threading
import time
from dataclasses import replace
from typing import Any, Callable

from shared import logs
from shared.errors import TransientError

from render_job import caption_overlay
from render_job.graph.captions import CaptionOverlay
from render_job.graph.command import GRAPH_FILE, build_segment_command, graph_via_file
from render_job.graph.parts import (CHUNK_LIST, build_audio_command, build_join_command, build_part_command,
                                   concat_list)
from render_job.graph.timeline import body_starts, segment_cuts, timeline_total_frames
from render_job.graph.visuals import command_files
from render_job.loudness import mix_loudness, output_loudness
from render_job.part_plan import PartPlan
from render_job.plan import RenderPlan
from render_job.memory import check_size
from render_job.runner import SegmentFeed, default_timeout_s, run_ffmpeg, stopped_by, write_graph_files
from render_job.stitch import stitch, video_frames
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


def scene_chunks(plan: RenderPlan, part: PartPlan) -> list[PartPlan]:
    """The chunks `part` is encoded in: one per scene whose body it holds (scene j's body and its
    outgoing transition, body_starts[j]..body_starts[j + 1]), as PartPlans with the part's index,
    in timeline order; their frames add up to the part's.

    Every render of an export long enough to be split (the single task's too: render_whole)
    encodes each chunk by an x264 run of its own, from an IDR frame with fresh rate control, so a
    chunk's bits depend on its frames and the plan only: a K-part render's video is the single
    task's, bit for bit, whatever K (two encodes with different history differ by ~37 dB at a
    crossfade: BENCHMARKS.md "Chunks")."""
    starts, total = body_starts(plan), timeline_total_frames(plan)
    n = len(plan.scenes)
    chunks = []
    for j in range(part.first_scene, part.last_scene + 1):
        end = starts[j + 1] if j + 1 < n else total
        if end > starts[j]:  # a scene with no frames of its own between two body starts has no chunk
            chunks.append(PartPlan(part.index, j, j, starts[j], end - starts[j]))
    if sum(c.frames for c in chunks) != part.frames:
        raise ValueError(f"{part.label}: its scenes hold {sum(c.frames for c in chunks)} frames, not {part.frames}")
    return chunks


def chunk_file(part: int, scene: int) -> str:
    """The work directory's name of the chunk of part `part` that holds scene `scene`'s body."""
    return f"part-{part:04d}-scene-{scene:04d}.mp4"


def encode_chunks(exe: str, plan: RenderPlan, local: dict[str, str], part: PartPlan, workdir: str, *,
                  overlay: CaptionOverlay | None, ass_path: str | None, max_scenes: int = 24, threads: int = 0,
                  timeout_s: float | None = None, stall_s: float = 60.0, job_id: str | None = None,
                  what: str | None = None, on_progress: Callable[[float], None] | None = None,
                  before_chunk: Callable[[list[str]], None] | None = None) -> list[tuple[PartPlan, str]]:
    """Encode `part`'s scene_chunks one after another into chunk_file names in `workdir`
    (prepare_workdir first; `local` holds the local path of every src the part's scenes read).
    Returns [(chunk, file name)] in timeline order.
    timeout_s: the whole part's limit (default: default_timeout_s of its length), shared by its chunks.
    what: the part's name in messages (default part.label); a chunk adds "scenes[j]".
    on_progress: called with the part's progress (0..1 of its frames encoded).
    before_chunk: called with the files written so far before each chunk (a check that may raise).
    Raises: TransientError: out of time, or FFmpeg killed/stalled; PermanentRenderError: FFmpeg
    refused the input; what before_chunk raises."""
    what = what or part.label
    limit = timeout_s if timeout_s is not None else default_timeout_s(part.frames / plan.fps)
    deadline = time.monotonic() + limit
    written: list[tuple[PartPlan, str]] = []
    done = 0
    for chunk in scene_chunks(plan, part):
        if before_chunk is not None:
            before_chunk([name for _, name in written])
        if time.monotonic() >= deadline:
            raise TransientError(f"{what} timed out after {limit:.0f} s, before scenes[{chunk.first_scene}]",
                                 code="ffmpeg_killed")
        name = chunk_file(part.index, chunk.first_scene)
        _encode_chunk(exe, plan, local, chunk, name, workdir, overlay=overlay, ass_path=ass_path,
                      max_scenes=max_scenes, threads=threads, timeout_s=deadline - time.monotonic(),
                      stall_s=stall_s, job_id=job_id, what=f"{what}, scenes[{chunk.first_scene}]",
                      on_progress=None if on_progress is None else
                      (lambda f, base=done, n=chunk.frames: on_progress((base + f * n) / part.frames)))
        written.append((chunk, name))
        done += chunk.frames
    return written


def render_part(exe: str, plan: RenderPlan, local: dict[str, str], part: PartPlan, workdir: str, *,
                overlay: CaptionOverlay | None, ass_path: str | None, max_scenes: int = 24, threads: int = 0,
                timeout_s: float | None = None, stall_s: float = 60.0, job_id: str | None = None,
                on_progress: Callable[[float], None] | None = None) -> str:
    """Render `part`'s video into part_file(part.index) in `workdir`: encode_chunks (arguments as
    there), joined by stream copy. Returns the file name.

    Raises:
        TransientError: the part has another frame count than the plan's (naming the part), or
            FFmpeg was killed/stalled; PermanentRenderError: FFmpeg refused the input.
    """
    out = part_file(part.index)
    names = [name for _, name in encode_chunks(exe, plan, local, part, workdir, overlay=overlay, ass_path=ass_path,
                                               max_scenes=max_scenes, threads=threads, timeout_s=timeout_s,
                                               stall_s=stall_s, job_id=job_id, on_progress=on_progress)]
    if len(names) == 1:
        os.replace(os.path.join(workdir, names[0]), os.path.join(workdir, out))
    else:
        with open(os.path.join(workdir, CHUNK_LIST), "w", encoding="utf-8") as fh:
            fh.write(concat_list(names))
        run_ffmpeg(build_join_command(CHUNK_LIST, out, ffmpeg=exe), cwd=workdir, total_s=part.frames / plan.fps,
                   what=f"ffmpeg join of {part.label}", job_id=job_id)
        for name in names:
            os.remove(os.path.join(workdir, name))
    got = video_frames(os.path.join(workdir, out))
    if got != part.frames:
        raise TransientError(f"{part.label}: rendered {got} frames, the plan has {part.frames}", code="part_mismatch")
    logs.info("part rendered", job_id=job_id, part=part.index, firstScene=part.first_scene,
              lastScene=part.last_scene, frames=part.frames, chunks=len(names))
    return out


def _encode_chunk(exe: str, plan: RenderPlan, local: dict[str, str], chunk: PartPlan, out: str, workdir: str, *,
                  overlay: CaptionOverlay | None, ass_path: str | None, max_scenes: int, threads: int,
                  timeout_s: float, stall_s: float, job_id: str | None, what: str,
                  on_progress: Callable[[float], None] | None) -> None:
    """One chunk: its segment runs piped into its own encoding run (build_part_command)."""
    bounds = part_segments(plan, chunk, max_scenes)
    tag = f"part{chunk.index}_scene{chunk.first_scene}"
    commands = [graph_via_file(build_part_command(plan, chunk.first_frame, chunk.frames, out, ass_path=ass_path,
                                                  caption_overlay=overlay, ffmpeg=exe, threads=threads),
                               name=f"{tag}_{GRAPH_FILE}")]
    for k, (first, last) in enumerate(bounds):
        commands.append(graph_via_file(build_segment_command(plan, local, first, last, ffmpeg=exe),
                                       name=f"{tag}_segment{k}_{GRAPH_FILE}"))
    write_graph_files(workdir, commands)
    labels = [f"{what} segment from scenes[{first}]" for first, _ in bounds]
    feed = SegmentFeed([c[0] for c in commands[1:]], cwd=workdir, labels=labels)
    run_ffmpeg(commands[0][0], cwd=workdir, total_s=chunk.frames / plan.fps, what=f"ffmpeg {what}",
               job_id=job_id, on_progress=on_progress, timeout_s=timeout_s, stall_s=stall_s, feed=feed)


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


def render_whole(exe: str, plan: RenderPlan, local: dict[str, str], workdir: str, out_mp4: str, *,
                 overlay: CaptionOverlay | None, ass_path: str | None, max_scenes: int = 24, threads: int = 0,
                 timeout_s: float | None = None, stall_s: float = 60.0, job_id: str | None = None,
                 on_progress: Callable[[float], None] | None = None, output_cap: int | None = None,
                 cap_source: str = "", before_stitch: Callable[[], None] | None = None,
                 check: Callable[[], None] | None = None) -> tuple[dict | None, int]:
    """One task's render of an export long enough to be split (render_job.job, at or over
    RENDER_PARALLEL_AFTER_S): the whole timeline's scene chunks (encode_chunks) while the audio
    renders beside it (render_audio, in a thread), then the stitch (render_job.stitch.stitch, the
    chunks as its parts) into `out_mp4` in `workdir`: the video any K-part render of the export
    makes, bit for bit, and the same audio. Returns the audio's (loudness, passes) as render_audio
    measured them.
    on_progress: the video's progress (0..1). output_cap: bytes the chunks may add up to (checked
    before each chunk; memory.check_size, naming cap_source). before_stitch: called once both are
    rendered (e.g. to free the media). check: called before each chunk (e.g. raising when the export
    was canceled). The chunks and the audio file are deleted after the stitch.
    Raises: what encode_chunks, render_audio and stitch raise (the audio's error as soon as a
    chunk ends after it); on any of them the other side's FFmpeg is stopped (runner.stopped_by).
    """
    whole = PartPlan(0, 0, len(plan.scenes) - 1, 0, timeline_total_frames(plan))
    audio: dict[str, Any] = {}
    stop = threading.Event()

    def render_the_audio() -> None:
        with stopped_by(stop):
            try:
                audio["result"] = render_audio(exe, plan, local, workdir, job_id, timeout_s=timeout_s,
                                               stall_s=stall_s)
            except BaseException as exc:  # noqa: BLE001 - raised in the render's thread
                audio["error"] = exc

    def before_chunk(written: list[str]) -> None:
        if check is not None:
            check()
        if "error" in audio:
            raise audio["error"]
        if output_cap is not None:
            check_size(sum(os.path.getsize(os.path.join(workdir, n)) for n in written), output_cap, cap_source)

    side = threading.Thread(target=render_the_audio, daemon=True, name="audio")
    side.start()
    try:
        chunks = encode_chunks(exe, plan, local, whole, workdir, overlay=overlay, ass_path=ass_path,
                               max_scenes=max_scenes, threads=threads, timeout_s=timeout_s, stall_s=stall_s,
                               job_id=job_id, what="the video", on_progress=on_progress, before_chunk=before_chunk)
        before_chunk([name for _, name in chunks])
        side.join()
    finally:
        stop.set()  # a no-op once the audio is done; else its FFmpeg is killed within 0.5 s
        side.join(timeout=10)
    if "error" in audio:
        raise audio["error"]
    if before_stitch is not None:
        before_stitch()
    files = [name for _, name in chunks]
    stitch(exe, plan, [c for c, _ in chunks], files, AUDIO_M4A, workdir, out_mp4, job_id)
    for name in files + [AUDIO_M4A]:
        os.remove(os.path.join(workdir, name))
    _, loudness, passes = audio["result"]
    return loudness, passes
