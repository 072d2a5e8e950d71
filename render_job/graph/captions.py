"""Captions in the graph (pure): the pre-rendered caption overlay, or libass burning the ASS file.

Captions are static between cue boundaries, so each distinct caption *state* (the set of cues on
screen) is drawn once into an atlas PNG by render_job.caption_overlay; here the timeline is cut into
states (caption_states) and the atlas becomes a caption stream aligned frame for frame with the
video: decoded once, converted to BT.709 limited-range yuva420p once, split into one crop per
segment, each repeated (`loop`) for exactly its frames, concatenated and blended by ONE `overlay`
of the strip (overlay_graph). Without an overlay (title cards, too many states) the `subtitles`
filter burns captions.ass (fontsdir=fonts), by fixed file name only (caption_graph).

Frame rule (as libass's): a cue [start, end) is on frame n (t = n / fps) when start <= t < end.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

from render_job.plan import Cue


@dataclass(frozen=True)
class CaptionOverlay:
    """What the graph needs to overlay the captions (drawn by render_job.caption_overlay.prepare).

    x, y: the strip's top-left corner in the frame; width, height: the strip (pixels, even).
    atlas: the atlas PNG's name in the work directory (rows of `height` pixels: row 0 transparent,
    row j + 1 state j). segments: [(atlas row, frames)] covering the whole output, in order.
    """

    x: int
    y: int
    width: int
    height: int
    atlas: str
    segments: tuple[tuple[int, int], ...]


def _first_frame_at(t: float, fps: int) -> int:
    """Index of the first frame whose time n / fps is >= t (seconds)."""
    return max(0, math.ceil(t * fps - 1e-6))


def caption_states(cues: Sequence[Cue], fps: int, total_frames: int) -> tuple[list[list[Cue]], list[tuple[int, int]]]:
    """The distinct caption states and the timeline as segments.

    Returns:
        (states, segments): states[j] is the list of cues shown together (in cue order);
        segments is [(state index + 1, or 0 for no caption, number of frames)] covering frames
        0 .. total_frames - 1 in order (adjacent segments differ).
    """
    spans = []
    for c in cues:
        a, b = _first_frame_at(c.start, fps), min(total_frames, _first_frame_at(c.end, fps))
        if b > a and c.text.strip():
            spans.append((a, b, c))
    cuts = sorted({0, total_frames, *(a for a, _, _ in spans), *(b for _, b, _ in spans)})
    states: list[list[Cue]] = []
    index: dict[tuple[int, ...], int] = {}
    segments: list[tuple[int, int]] = []
    for lo, hi in zip(cuts, cuts[1:]):
        active = tuple(i for i, (a, b, _) in enumerate(spans) if a <= lo and hi <= b)
        row = 0
        if active:
            if active not in index:
                index[active] = len(states)
                states.append([spans[i][2] for i in active])
            row = index[active] + 1
        if segments and segments[-1][0] == row:
            segments[-1] = (row, segments[-1][1] + hi - lo)
        else:
            segments.append((row, hi - lo))
    return states, segments


def overlay_graph(ov: CaptionOverlay, input_index: int, video: str, out: str, fps: int) -> list[str]:
    """Filter statements overlaying the atlas input `input_index` on `video` (a label such as
    "[tl]" with pts = frame index at 1/fps), giving `out`. See the module docstring."""
    n = len(ov.segments)
    stmts = [f"[{input_index}:v]scale=out_color_matrix=bt709:out_range=tv,format=yuva420p,"
             f"split={n}" + "".join(f"[cs{k}]" for k in range(n))]
    for k, (row, frames) in enumerate(ov.segments):
        stmts.append(f"[cs{k}]crop={ov.width}:{ov.height}:0:{row * ov.height},"
                     f"loop=loop={frames - 1}:size=1:start=0,settb=1/{fps},setpts=N[cz{k}]")
    joined = "".join(f"[cz{k}]" for k in range(n))
    stmts.append(f"{joined}concat=n={n}:v=1:a=0,settb=1/{fps},setpts=N[capv]" if n > 1
                 else f"{joined}settb=1/{fps},setpts=N[capv]")
    stmts.append(f"{video}[capv]overlay=x={ov.x}:y={ov.y}:format=yuv420:eof_action=pass{out}")
    return stmts


def caption_graph(overlay: CaptionOverlay | None, ass_path: str | None, fonts_dir: str, input_index: int,
                  video: str, fps: int) -> tuple[list[str], list[str]]:
    """The captions over `video` (the timeline's label), ending in [vout] (yuv420p): the overlay's
    atlas as FFmpeg input `input_index` (overlay_graph), then `ass_path` burned with the `subtitles`
    filter (fonts from `fonts_dir`, both relative to the working directory) when given.

    Returns:
        (input arguments: the atlas or nothing, filter statements).
    """
    args: list[str] = []
    stmts: list[str] = []
    if overlay is not None:
        args += ["-i", overlay.atlas]
        stmts += overlay_graph(overlay, input_index, video, "[capo]", fps)
        video = "[capo]"
    if ass_path:
        stmts.append(f"{video}subtitles=filename={ass_path}:fontsdir={fonts_dir},format=yuv420p[vout]")
    else:
        stmts.append(f"{video}format=yuv420p[vout]")
    return args, stmts
