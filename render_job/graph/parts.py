"""argv of a parallel render (issue 19; pure): one part's video, the whole timeline's audio once,
and the stitch that joins them by stream copy.

A part (render_job.part_plan.PartPlan) is a segment range rendered on its own, in scene chunks
(render_job.part_render.scene_chunks): each chunk's segment runs (command.build_segment_command,
piped as in a segmented render) feed its own encoding run (build_part_command, with the chunk's
frames): video only, exactly those frames, the single render's encoder settings
(command.video_codec_args), starting with an IDR frame in a closed GOP, x264 zones giving the
frames next to a join the bits one encode would give them (join_zones), captions and title cards
burned on exactly those frames; the chunks are joined by stream copy (build_join_command). The audio is rendered once for the whole timeline
(build_audio_command: the single render's own mix, gain and AAC encoding, without the video, in two runs
joined by a pipe),
and the stitch (build_stitch_command) concatenates the parts with the concat demuxer and muxes the
audio, copying both streams. File names are relative to the FFmpeg working directory.
"""
from __future__ import annotations

from dataclasses import replace
from typing import Mapping, Sequence

from render_job.graph.audio import (AUDIO_BITRATE, AUDIO_RATE, PCM_PIPE_IN, PCM_PIPE_OUT, audio_mix, audio_out,
                                    clip_audio_inputs)
from render_job.graph.captions import CaptionOverlay, caption_graph
from render_job.graph.command import DEFAULT_FONTS_DIR, video_codec_args
from render_job.graph.common import fmt_s
from render_job.graph.timeline import body_starts, timeline_frames, timeline_total_frames
from render_job.plan import RenderPlan

# Every part opens a GOP of its own: x264's default is closed GOPs already (open_gop=0 in its SEI),
# +cgop says so explicitly; the first frame is forced to be a key frame and forced key frames are IDR.
PART_GOP_ARGS = ["-flags", "+cgop", "-force_key_frames", "expr:eq(n,0)", "-forced-idr", "1"]

# x264 rate factors (zones' b=: the frame's qscale divided by it, under CRF as under ABR) of the two
# frames at a join that ending and starting an encode leave worse than one encode of the timeline
# would (measured against the lossless timeline: BENCHMARKS.md "Joins"):
# - a later part's first frame (its IDR): an encode's first frame gets rate control without history,
#   while mid-stream an I frame gets the recent P frames' qp over ipratio: 1.85 dB short without;
# - a part's last frame when the timeline runs on through a transition: nothing in the part refers to
#   it, so mb-tree gives it no qp reduction (in one encode the next frame still refers to it): 2.8 dB
#   short without. Not before a cut: there one encode's next frame is a scenecut I frame that refers
#   to nothing either, so both encodes treat that frame alike.
JOIN_HEAD_RATE = 1.3
JOIN_TAIL_RATE = 2.5


def join_zones(plan: RenderPlan, first_frame: int, frames: int) -> list[str]:
    """x264 arguments for the part of timeline frames [first_frame, first_frame + frames): a zone on
    its first frame unless it starts the timeline, one on its last frame unless it ends the timeline
    or the next frame opens a scene after a cut (see JOIN_HEAD_RATE, JOIN_TAIL_RATE); [] if neither
    (a range covering the whole timeline). Zone frames count from
    the part's first frame. The zones are in x264's SEI options text of the part's first frame, not
    in the stream's parameter sets (the extradata stitch.check_parts compares)."""
    starts, (_, trans) = body_starts(plan), timeline_frames(plan)
    end = first_frame + frames
    after_cut = {starts[j] for j in range(1, len(starts)) if not trans[j - 1]}
    zones = []
    if first_frame > 0:
        zones.append(f"0,0,b={JOIN_HEAD_RATE}")
    if end < timeline_total_frames(plan) and end not in after_cut and frames > 1:
        zones.append(f"{frames - 1},{frames - 1},b={JOIN_TAIL_RATE}")
    return ["-x264-params", "zones=" + "/".join(zones)] if zones else []


def part_overlay(overlay: CaptionOverlay, first_frame: int, frames: int) -> CaptionOverlay:
    """The caption overlay of the whole output cut to timeline frames [first_frame, first_frame +
    frames): the same atlas, its (row, frames) segments cut to that range (empty rows included)."""
    segments: list[tuple[int, int]] = []
    at, end = 0, first_frame + frames
    for row, count in overlay.segments:
        lo, hi = max(at, first_frame), min(at + count, end)
        if hi > lo:
            segments.append((row, hi - lo))
        at += count
    if sum(n for _, n in segments) != frames:
        raise ValueError(f"caption overlay covers {at} frames, not frames {first_frame}..{end}")
    return replace(overlay, segments=tuple(segments))


def build_part_command(plan: RenderPlan, first_frame: int, frames: int, out_mp4: str,
                       ass_path: str | None = None, caption_overlay: CaptionOverlay | None = None,
                       ffmpeg: str = "ffmpeg", threads: int = 0, fonts_dir: str = DEFAULT_FONTS_DIR) -> list[str]:
    """The encoding run of one part: raw yuv420p frames of timeline frames [first_frame, first_frame
    + frames) from stdin (the part's segment runs), captions burned, video only, into `out_mp4`.

    Captions: `caption_overlay` is the whole output's overlay (caption_overlay.prepare), cut here to
    the part's frames (part_overlay); `ass_path` (title cards, many caption states) is burned with
    the frames stamped at their timeline time (pts = first_frame + n, so libass shows the cues of
    those frames), then restamped from 0. Only one of the two (as in the single render).
    Encoding: command.video_codec_args (the single render's), PART_GOP_ARGS, join_zones, exactly
    `frames` frames, no audio, +faststart.
    Raises:
        ValueError: both caption forms given, or an unsafe file name (see command.build_command).
    """
    if ass_path and caption_overlay is not None:
        raise ValueError("a part burns captions one way: the overlay or the ASS file")
    for name in (ass_path, fonts_dir):
        if name and any(c in name for c in ":,;[]\\'\"= %"):
            raise ValueError(f"unsafe file name for the filter graph: {name!r}")
    w, h, fps = plan.width, plan.height, plan.fps
    shift = f"+{first_frame}" if ass_path and first_frame else ""
    args = [ffmpeg, "-hide_banner", "-nostdin", "-loglevel", "error",
            "-f", "rawvideo", "-pix_fmt", "yuv420p", "-video_size", f"{w}x{h}", "-framerate", str(fps), "-i", "pipe:0"]
    graph = [f"[0:v]setparams=range=tv:color_primaries=bt709:color_trc=bt709:colorspace=bt709,"
             f"setsar=1,settb=1/{fps},setpts=N{shift}[tl]"]
    overlay = part_overlay(caption_overlay, first_frame, frames) if caption_overlay is not None else None
    caption_args, stmts = caption_graph(overlay, ass_path, fonts_dir, 1, "[tl]", fps)
    graph += stmts + ["[vout]setpts=N[vpart]"]
    args += caption_args + ["-filter_complex", ";".join(graph), "-map", "[vpart]", *video_codec_args(plan),
                            *PART_GOP_ARGS, *join_zones(plan, first_frame, frames), "-frames:v", str(frames),
                            "-an", "-movflags", "+faststart"]
    if threads:
        args += ["-threads", str(int(threads))]
    return args + ["-progress", "pipe:1", "-nostats", "-y", out_mp4]


def build_audio_command(plan: RenderPlan, inputs: Mapping[str, str], out_m4a: str,
                        loudness: Mapping[str, str] | None = None, ffmpeg: str = "ffmpeg") -> tuple[list[str], list[str]]:
    """The whole timeline's audio, once, as two runs joined by a pipe: (the mix run: the single
    render's mix, audio.audio_mix: clip sound, narrations, ducked music, and its gain, audio.audio_out
    with the mix's analysis `loudness`, exactly plan.total_s long, as raw PCM on stdout,
    audio.PCM_PIPE_OUT; the encoding run: that PCM from stdin, PCM_PIPE_IN, encoded as the single
    render encodes its audio into `out_m4a`, MP4 audio). Silence when the plan has none. Two
    processes, so that the gain (loudnorm) and the AAC encoder overlap on two cores; the samples
    the encoder gets are the same as in one process (f32 both ways).

    Raises:
        KeyError: a src of the plan's audio is missing from `inputs`.
    """
    args = [ffmpeg, "-hide_banner", "-nostdin", "-loglevel", "error"]
    clip_args, clip_inputs = clip_audio_inputs(plan, inputs)
    args += clip_args
    mix_args, graph, mix, _ = audio_mix(plan, inputs, len(clip_inputs), clip_inputs)
    graph.append(audio_out(plan, mix, loudness))
    mix_argv = args + mix_args + ["-filter_complex", ";".join(graph), "-map", "[aout]", "-vn", *PCM_PIPE_OUT]
    encode_argv = [ffmpeg, "-hide_banner", "-nostdin", "-loglevel", "error", *PCM_PIPE_IN,
                   "-c:a", "aac", "-b:a", AUDIO_BITRATE, "-ar", str(AUDIO_RATE), "-ac", "2",
                   "-movflags", "+faststart", "-t", fmt_s(plan.total_s), "-progress", "pipe:1", "-nostats", "-y", out_m4a]
    return mix_argv, encode_argv


CONCAT_LIST = "parts.txt"
CHUNK_LIST = "chunks.txt"


def concat_list(part_files: Sequence[str]) -> str:
    """The concat demuxer's list of `part_files` (names in the working directory, in timeline order).
    Raises ValueError for a name the list cannot hold safely (quote, backslash, newline, absolute)."""
    lines = ["ffconcat version 1.0"]
    for name in part_files:
        if not name or name.startswith("/") or any(c in name for c in "'\\\n\r"):
            raise ValueError(f"unsafe part file name: {name!r}")
        lines.append(f"file '{name}'")
    return "\n".join(lines) + "\n"


def build_join_command(list_file: str, out_mp4: str, ffmpeg: str = "ffmpeg") -> list[str]:
    """A part from its chunks (render_job.part_render.scene_chunks): the chunk files listed in
    `list_file` (concat_list) joined by the concat demuxer, video only, copied, +faststart."""
    return [ffmpeg, "-hide_banner", "-nostdin", "-loglevel", "error", "-f", "concat", "-i", list_file,
            "-map", "0:v:0", "-c", "copy", "-movflags", "+faststart", "-progress", "pipe:1", "-nostats",
            "-y", out_mp4]


def build_stitch_command(plan: RenderPlan, list_file: str, audio_m4a: str, out_mp4: str,
                         ffmpeg: str = "ffmpeg") -> list[str]:
    """The stitch: the parts listed in `list_file` (concat_list) joined by the concat demuxer and the
    audio muxed, both streams copied (no re-encode), +faststart, cut at plan.total_s like the single
    render (-t)."""
    return [ffmpeg, "-hide_banner", "-nostdin", "-loglevel", "error", "-f", "concat", "-i", list_file,
            "-i", audio_m4a, "-map", "0:v:0", "-map", "1:a:0", "-c", "copy", "-movflags", "+faststart",
            "-t", fmt_s(plan.total_s), "-progress", "pipe:1", "-nostats", "-y", out_mp4]
