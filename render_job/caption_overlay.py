"""Burned-in captions as pre-rendered overlays: libass draws each distinct caption state ONCE.

The `subtitles` filter renders and blends the captions on every output frame (1080p30, a caption
on screen all the time: ~5 ms a frame, ~9 s CPU for the 54.5 s benchmark, all in the filter-graph
thread). Captions here are static between cue boundaries, so instead:

1. caption_states(): the timeline is cut at every cue start and end; each piece with at least one
   cue on screen is a *state* (the set of cues shown, overlapping cues included).
2. render_states(): one short FFmpeg run draws every state with libass (the same ASS styles as
   render_job.subtitles.ass_text, the same fonts) on a transparent canvas, one frame per state, as
   raw RGBA through a pipe; the union of their drawn boxes (alpha > 0) is the caption *strip*.
   Each state is cropped to the strip, un-premultiplied (libass blends onto the transparent canvas,
   leaving colour x alpha: Pillow's "RGBa" -> "RGBA"), and stacked into one atlas PNG (row 0 transparent, row j + 1 state j).
3. overlay_graph() (used by render_job.ffmpeg.build_command): the atlas is decoded once, converted
   to BT.709 limited-range yuva420p once, split into one crop per timeline segment, each repeated
   (`loop`) for exactly its number of frames and concatenated: a caption stream aligned frame for
   frame with the video, blended by ONE `overlay` (the strip only: ~1 ms a frame).

Frame rule (as libass's): a cue [start, end) is on frame n (t = n / fps) when start <= t < end.
Title cards (faded in and out) keep the `subtitles` filter: caption_overlay is not used for a plan
with titles, nor beyond MAX_STATES states or an atlas over ATLAS_MAX_BYTES (Python and FFmpeg both
hold it; the render job's Python process stays far under 200 MB): the `subtitles` path then renders
the same captions, only slower.
"""
from __future__ import annotations

import math
import os
import subprocess
import threading
from dataclasses import dataclass
from typing import Sequence

from PIL import Image

from render_job.plan import CaptionStylePlan, Cue, RenderPlan
from render_job.subtitles import ass_text

MAX_STATES = 160          # more distinct caption states than this: the `subtitles` filter instead
ATLAS_MAX_BYTES = 48 * 2**20  # RGBA bytes of the atlas (Python and FFmpeg hold it): over it, `subtitles`
STILLS_ASS = "caption_states.ass"
ATLAS_PNG = "caption_atlas.png"
RENDER_TIMEOUT_S = 120.0  # the states' FFmpeg run (a few hundred ms in practice)


@dataclass(frozen=True)
class CaptionOverlay:
    """What build_command needs to overlay the captions.

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


def states_ass(states: Sequence[Sequence[Cue]], width: int, height: int, style: CaptionStylePlan | None) -> str:
    """An ASS script showing state j (all its cues) over [j, j + 1) seconds, same styles as the burn-in."""
    retimed = [Cue(start=float(j), end=float(j + 1), text=c.text) for j, cues in enumerate(states) for c in cues]
    text = ass_text(retimed, width, height, style)
    # the states are drawn on RGBA: with a TV matrix FFmpeg's `subtitles` filter squeezes the script's
    # colours into 16..235 on RGB output; "None" draws them as they are (converted to BT.709 later)
    assert "YCbCr Matrix: TV.709" in text
    return text.replace("YCbCr Matrix: TV.709", "YCbCr Matrix: None", 1)


def render_states_command(ffmpeg: str, n: int, width: int, height: int, fonts_dir: str = "fonts") -> list[str]:
    """argv drawing the n states of STILLS_ASS (cwd = the work directory) as raw RGBA frames on stdout:
    a transparent canvas at 2 frames/s from which the frames at t = j + 0.5 s are kept (state j)."""
    canvas = f"color=c=black@0:s={width}x{height}:r=2:d={n},format=rgba"
    return [ffmpeg, "-hide_banner", "-nostdin", "-loglevel", "error", "-f", "lavfi", "-i", canvas,
            "-vf", f"select='mod(n\\,2)',subtitles=filename={STILLS_ASS}:fontsdir={fonts_dir}:alpha=1",
            "-fps_mode", "passthrough", "-f", "rawvideo", "-pix_fmt", "rgba", "pipe:1"]


class _TooLarge(Exception):
    """The drawn captions would exceed ATLAS_MAX_BYTES."""


def _read_states(argv: list[str], cwd: str, n: int, width: int, height: int,
                 max_bytes: int = ATLAS_MAX_BYTES) -> list[tuple[tuple[int, int], Image.Image | None]]:
    """Run `argv` and read its n RGBA frames one at a time (never more than one frame in memory):
    [((x, y) of the drawn box, that box un-premultiplied as an RGBA image) or (0, 0), None if empty].
    Raises _TooLarge (FFmpeg killed) once the boxes kept pass max_bytes, RuntimeError when FFmpeg fails."""
    frame_bytes = width * height * 4
    proc = subprocess.Popen(argv, cwd=cwd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    timer = threading.Timer(RENDER_TIMEOUT_S, proc.kill)
    timer.start()
    states: list[tuple[tuple[int, int], Image.Image | None]] = []
    kept = 0
    try:
        for _ in range(n):
            buf = proc.stdout.read(frame_bytes)  # type: ignore[union-attr]
            if len(buf) != frame_bytes:
                break
            # libass blends onto the transparent canvas: colour x alpha, i.e. premultiplied ("RGBa")
            frame = Image.frombuffer("RGBa", (width, height), buf, "raw", "RGBa", 0, 1)
            box = frame.getchannel(3).getbbox()
            states.append(((box[0], box[1]), frame.crop(box).convert("RGBA")) if box else ((0, 0), None))
            del frame, buf
            kept += (box[2] - box[0]) * (box[3] - box[1]) * 4 if box else 0
            if kept > max_bytes:
                proc.kill()
                proc.wait()
                raise _TooLarge(kept)
        proc.stdout.close()  # type: ignore[union-attr]
        err = proc.stderr.read().decode("utf-8", "replace")  # type: ignore[union-attr]
        proc.wait()
    finally:
        timer.cancel()
    if proc.returncode != 0 or len(states) != n:
        raise RuntimeError(f"caption states: FFmpeg exited {proc.returncode} after {len(states)}/{n} frames: "
                           f"{err.strip()[-300:]}")
    return states


def prepare(plan: RenderPlan, workdir: str, ffmpeg: str, fonts_dir: str = "fonts") -> CaptionOverlay | None:
    """Render the plan's caption states and write the atlas into `workdir`.

    Returns:
        the CaptionOverlay, or None when there is nothing to overlay (no burn-in, no cue on any
        frame) or the plan needs the `subtitles` filter (title cards, more than MAX_STATES states,
        an atlas over ATLAS_MAX_BYTES).
    Raises:
        RuntimeError: the FFmpeg run failed or timed out (the caller falls back to `subtitles`).
    """
    if not plan.burn_in or not plan.cues or plan.titles:
        return None
    w, h, fps = plan.width, plan.height, plan.fps
    total_frames = int(round(plan.total_s * fps))
    states, segments = caption_states(plan.cues, fps, total_frames)
    if not states or len(states) > MAX_STATES:
        return None
    with open(os.path.join(workdir, STILLS_ASS), "w", encoding="utf-8", newline="\n") as fh:
        fh.write(states_ass(states, w, h, plan.caption_style))
    try:
        drawn = _read_states(render_states_command(ffmpeg, len(states), w, h, fonts_dir), workdir, len(states), w, h,
                             max_bytes=ATLAS_MAX_BYTES)
    except _TooLarge:
        return None
    boxes = [(x, y, x + im.width, y + im.height) for (x, y), im in drawn if im is not None]
    if not boxes:
        return None
    # the strip: union of the drawn boxes, on even pixels (yuv420p chroma)
    x0, y0 = min(b[0] for b in boxes) // 2 * 2, min(b[1] for b in boxes) // 2 * 2
    x1, y1 = min(w, -(-max(b[2] for b in boxes) // 2) * 2), min(h, -(-max(b[3] for b in boxes) // 2) * 2)
    sw, sh = x1 - x0, y1 - y0
    if (len(states) + 1) * sw * sh * 4 > ATLAS_MAX_BYTES:
        return None
    atlas = Image.new("RGBA", (sw, (len(states) + 1) * sh), (0, 0, 0, 0))
    for j, ((x, y), im) in enumerate(drawn):
        if im is not None:
            atlas.paste(im, (x - x0, (j + 1) * sh + y - y0))
    atlas.save(os.path.join(workdir, ATLAS_PNG), compress_level=1)
    return CaptionOverlay(x=x0, y=y0, width=sw, height=sh, atlas=ATLAS_PNG, segments=tuple(segments))


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
