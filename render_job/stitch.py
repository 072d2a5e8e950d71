"""The stitch of a parallel render (issue 19): the parts checked, joined by stream copy with the
audio rendered once, and the result checked. Called by render_job.stitch_task.

Checks (PyAV: packets demuxed, audio decoded; no ffprobe needed):
- each part: its frame count is the plan's (video_frames) and its codec parameters (H.264 SPS/PPS,
  avcC) are the first part's, so the concat demuxer's single stream header describes every part;
- the result: its frame count is the timeline's, its video lasts the plan's total within one frame,
  and its audio (decoded samples) lasts as long as its video within one frame.
A mismatch is a TransientError naming the part (PartMismatch, code "part_mismatch", its `index`
says which) or the stitch ("stitch_mismatch"): a part rendered again, or the stitch run again, may pass.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Sequence

import av

from shared import logs
from shared.errors import TransientError

from render_job.graph.parts import CONCAT_LIST, build_stitch_command, concat_list
from render_job.part_plan import PartPlan
from render_job.plan import RenderPlan
from render_job.runner import run_ffmpeg


class PartMismatch(TransientError):
    """A part that cannot be joined as it is (code "part_mismatch"); `index` is its part index."""

    code = "part_mismatch"

    def __init__(self, message: str, index: int) -> None:
        super().__init__(message)
        self.index = index


def video_frames(path: str) -> int:
    """Frames of the first video stream of `path`, counted as demuxed packets (one per frame for
    progressive H.264); 0 without a video stream."""
    with av.open(path) as c:
        if not c.streams.video:
            return 0
        return sum(1 for p in c.demux(c.streams.video[0]) if p.size)


def _video_extradata(path: str) -> bytes:
    with av.open(path) as c:
        return bytes(c.streams.video[0].codec_context.extradata or b"")


@dataclass(frozen=True)
class StitchResult:
    """What the stitch checked: frames (count), video_s and audio_s (seconds: the video stream's
    duration and the decoded audio's length)."""

    frames: int
    video_s: float
    audio_s: float


def result_lengths(path: str) -> StitchResult:
    """The stitched file's frame count, video duration and decoded audio length (seconds)."""
    with av.open(path) as c:
        v = c.streams.video[0]
        frames = sum(1 for p in c.demux(v) if p.size)
        video_s = float(v.duration * v.time_base) if v.duration is not None else 0.0
    samples, rate = 0, 48000
    with av.open(path) as c:
        if c.streams.audio:
            rate = c.streams.audio[0].rate or rate
            for frame in c.decode(audio=0):
                samples += frame.samples
    return StitchResult(frames, video_s, samples / rate)


def check_parts(plan: RenderPlan, parts: Sequence[PartPlan], files: Sequence[str], workdir: str) -> None:
    """Raise PartMismatch (a TransientError "part_mismatch" naming the part) unless every part file
    has its plan's frame count and the first part's codec parameters."""
    first = None
    for part, name in zip(parts, files, strict=True):
        path = os.path.join(workdir, name)
        got = video_frames(path)
        if got != part.frames:
            raise PartMismatch(f"{part.label}: {got} frames in {name}, the plan has {part.frames}", part.index)
        extradata = _video_extradata(path)
        if first is None:
            first = extradata
        elif extradata != first:
            raise PartMismatch(f"{part.label}: its H.264 parameters differ from part 0's (another encoder "
                               "build or settings): it cannot be joined by stream copy", part.index)


def stitch(exe: str, plan: RenderPlan, parts: Sequence[PartPlan], files: Sequence[str], audio: str, workdir: str,
           out_mp4: str, job_id: str | None = None) -> StitchResult:
    """Join the part files `files` (in `parts` order, names in `workdir`) and the audio file `audio`
    into `out_mp4` by stream copy (graph.parts.build_stitch_command), checking the parts first and
    the result after (module docstring).

    Raises:
        TransientError: a part or the result does not match the plan; what run_ffmpeg raises.
    """
    check_parts(plan, parts, files, workdir)
    with open(os.path.join(workdir, CONCAT_LIST), "w", encoding="utf-8") as fh:
        fh.write(concat_list(files))
    run_ffmpeg(build_stitch_command(plan, CONCAT_LIST, audio, out_mp4, ffmpeg=exe), cwd=workdir,
               total_s=plan.total_s, what="ffmpeg stitch", job_id=job_id)
    result = result_lengths(os.path.join(workdir, out_mp4))
    frame_s = 1.0 / plan.fps
    total = sum(p.frames for p in parts)
    problems = []
    if result.frames != total:
        problems.append(f"{result.frames} frames, the plan has {total}")
    if abs(result.video_s - plan.total_s) > frame_s + 1e-6:
        problems.append(f"video {result.video_s:.3f} s, the plan {plan.total_s:.3f} s")
    if abs(result.audio_s - result.video_s) > frame_s + 1e-6:
        problems.append(f"audio {result.audio_s:.3f} s against video {result.video_s:.3f} s")
    if problems:
        raise TransientError(f"stitch of {len(parts)} parts: " + "; ".join(problems), code="stitch_mismatch")
    logs.info("parts stitched", job_id=job_id, parts=len(parts), frames=result.frames, videoS=result.video_s,
              audioS=round(result.audio_s, 4))
    return result
