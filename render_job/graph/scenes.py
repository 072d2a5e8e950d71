"""One scene's video stream (pure): its FFmpeg input and its chain, ending in [v<index>].

  image          decoded once, fitted once, repeated by the `loop` filter, then its motion
  clip           -ss/-t from its first picture (clip_input), bwdif if interlaced, a frozen last
                 frame via tpad if short, fitted, then its motion
  colour, title  the lavfi `color` source (title text is drawn by the captions, never here)
then setsar=1 -> fps -> yuv420p -> trim to the scene's duration (seconds; round(duration x fps)
frames, time base 1/fps). Clip inputs are shared with the audio graph (clip_input, clip_cut_s).
"""
from __future__ import annotations

import math
from typing import Mapping

from render_job.graph.common import fmt_s
from render_job.graph.visuals import EXACT_ZOOM_QUALITIES, fit_graph, motion_filter, pan_filters, zoom_filters
from render_job.plan import RenderPlan, ScenePlan


def _common_tail(plan: RenderPlan, duration: float) -> str:
    fps = plan.fps
    return (f"setsar=1,fps={fps},format=yuv420p,"
            f"setparams=range=tv:color_primaries=bt709:color_trc=bt709:colorspace=bt709,"
            f"trim=duration={fmt_s(duration)},setpts=PTS-STARTPTS")


def clip_read_s(sc: ScenePlan) -> float:
    """Seconds read from a clip scene's file: the clip after trimming, at most the scene's length."""
    return min(sc.duration, sc.clip_s) if sc.clip_s else sc.duration


def _clip_open_us(sc: ScenePlan) -> tuple[int, int]:
    """(where a clip's file is opened, the trim point's offset after it), whole microseconds: the
    trim point (clip_seek_s, never after the first picture), less clip_preroll_s."""
    seek = math.floor(sc.clip_seek_s * 1e6 + 1e-3)
    pre = min(seek, round(sc.clip_preroll_s * 1e6))
    return seek - pre, pre


def clip_input(sc: ScenePlan, path: str) -> list[str]:
    """The input arguments opening a clip scene's file at its trim point (clip_seek_s: counted from
    the first picture) for clip_read_s seconds. FFmpeg cuts both streams at that instant of the
    file; their timestamps then count from it (the picture's and the sound's first frame may be later).
    With a preroll (clip_preroll_s) the file opens that much earlier and the graph cuts at the trim
    point (clip_cut_s): such demuxers start decoding at the first keyframe after their seek point."""
    start, pre = _clip_open_us(sc)
    return ["-ss", fmt_s(start / 1e6), "-t", fmt_s((pre / 1e6) + clip_read_s(sc)), "-i", path]


def clip_cut_s(sc: ScenePlan) -> float:
    """Seconds from where a clip's file is opened to its trim point (0 without a preroll)."""
    return _clip_open_us(sc)[1] / 1e6


def scene_video(plan: RenderPlan, sc: ScenePlan, inputs: Mapping[str, str], idx: int) -> tuple[list[str], list[str]]:
    """Scene `sc`'s video as (input arguments, filter statements ending in [v<index>]).

    `idx` is the FFmpeg input index its file gets (images and clips; colour and title cards have no
    input: the first list is then empty). The stream is w x h yuv420p BT.709 limited range, exactly
    round(duration x fps) frames, time base 1/fps.
    """
    w, h, fps = plan.width, plan.height, plan.fps
    label = f"[v{sc.index}]"
    n_frames = max(1, int(round(sc.duration * fps)))
    if sc.kind in ("color", "title"):
        # one RGB frame converted with the BT.709 matrix (the `color` source's own YUV output
        # uses BT.601 coefficients, a visible hue/brightness shift under BT.709 tags), then looped
        color = (sc.color or "#000000").lstrip("#")
        return [], [f"color=c=0x{color}:s={w}x{h}:r={fps},trim=end_frame=1,format=rgb24,"
                    f"scale={w}:{h}:out_range=tv:out_color_matrix=bt709,format=yuv420p,"
                    f"loop=loop={n_frames - 1}:size=1:start=0,settb=1/{fps},setpts=N,"
                    f"{_common_tail(plan, sc.duration)}{label}"]
    path = inputs[sc.src]  # type: ignore[index]
    if sc.kind == "image":
        # Decode and scale the still ONCE, then repeat the scaled frame (the `loop` filter):
        # 2-3x faster than `-loop 1` input, which decodes and rescales the image for every frame.
        pre, fitted = fit_graph(f"[{idx}:v]", sc, w, h)
        moving = pan_filters(sc, w, h, n_frames) or (
            zoom_filters(sc, w, h, n_frames) if plan.quality not in EXACT_ZOOM_QUALITIES else None)
        once, per_frame = moving if moving else ("", motion_filter(sc, w, h, n_frames))
        chain = (f"{fitted},setsar=1,format=yuv420p,{once}"
                 f"loop=loop={n_frames - 1}:size=1:start=0,settb=1/{fps},setpts=N,"
                 f"{per_frame}{_common_tail(plan, sc.duration)}")
        return ["-i", path], pre + [chain + label]
    pad = ""
    if sc.clip_pad_s > 0 or not sc.clip_s:
        pad = f"tpad=stop_mode=clone:stop_duration={fmt_s(sc.duration)},"
    # `V`: the first video stream that is not attached cover art (the picture render_job.probe measured).
    # Its timestamps count from the trim point, as the sound's do: `fps` with start_time=0 shows the
    # file's instant trim + t at scene time t (the sound is placed likewise), not the first frame at 0.
    # bwdif (interlaced clips only): one frame per frame, only frames flagged interlaced are touched
    deint = "bwdif=mode=send_frame:parity=auto:deint=interlaced," if sc.deinterlace else ""
    cut = clip_cut_s(sc)  # after a preroll: the frames from the trim point on, timed from it
    if cut:
        deint += f"trim=start={fmt_s(cut)},setpts=PTS-{fmt_s(cut)}/TB,"
    pre, fitted = fit_graph(f"[{idx}:V]{deint}", sc, w, h)
    motion = motion_filter(sc, w, h, n_frames)
    if motion:  # frame-exact scene first, so the motion's frame index runs 0..n-1
        motion = f"format=yuv420p,trim=end_frame={n_frames},{motion}"
    chain = f"{fitted},setsar=1,fps={fps}:start_time=0,{pad}{motion}{_common_tail(plan, sc.duration)}"
    return clip_input(sc, path), pre + [chain + label]
