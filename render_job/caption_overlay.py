"""Burned-in captions as pre-rendered overlays: libass draws each distinct caption state ONCE.

The `subtitles` filter renders and blends the captions on every output frame, all in the
filter-graph thread (cost: BENCHMARKS.md, "Findings still true" 4). Captions are static between cue
boundaries, so instead prepare():

1. cuts the timeline into caption states (render_job.graph.captions.caption_states: each piece with
   at least one cue on screen, overlapping cues included);
2. draws every state with libass in one short FFmpeg run (the same ASS styles as
   render_job.subtitles.ass_text, the same fonts) on a transparent canvas, one frame per state, as
   raw RGBA through a pipe; the union of their drawn boxes (alpha > 0) is the caption *strip*.
   Each state is cropped to the strip, un-premultiplied (libass blends onto the transparent canvas,
   leaving colour x alpha: Pillow's "RGBa" -> "RGBA"), and stacked into one atlas PNG (row 0
   transparent, row j + 1 state j), which render_job.graph.captions.overlay_graph overlays.

This module is the I/O of it (an FFmpeg subprocess, Pillow, the atlas file). Title cards (faded in
and out) keep the `subtitles` filter: prepare() returns None for a plan with titles, beyond
MAX_STATES states or an atlas over ATLAS_MAX_BYTES (Python and FFmpeg both hold it; the render
job's Python process stays far under 200 MB): the `subtitles` path then renders the same captions,
only slower.
"""
from __future__ import annotations

import os
import subprocess
import threading
from typing import Sequence

from PIL import Image

from render_job.graph.captions import CaptionOverlay, caption_states
from render_job.plan import CaptionStylePlan, Cue, RenderPlan
from render_job.subtitles import ass_text

MAX_STATES = 160          # more distinct caption states than this: the `subtitles` filter instead
ATLAS_MAX_BYTES = 48 * 2**20  # RGBA bytes of the atlas (Python and FFmpeg hold it): over it, `subtitles`
STILLS_ASS = "caption_states.ass"
ATLAS_PNG = "caption_atlas.png"
RENDER_TIMEOUT_S = 120.0  # the states' FFmpeg run (a few hundred ms in practice)


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
