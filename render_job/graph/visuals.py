"""Picture filters of one scene (pure): fit to the frame and Ken Burns motion.

Fit (BT.709 limited range): cover = crop+scale, contain = scale+pad, blur = contain overlaid on a
downscaled, box-blurred, darkened cover copy. Motion, all sub-pixel exact or whole-copy-pixel, never
resampling from the original per frame more than once:
  still pans   the fitted still scaled ONCE (before `loop`) to k x the panned size, then an exact
               `crop` per frame and a fixed `scale` down -> constant steps, no jitter (pan_filters);
  still zooms  scaled ONCE to 2x, then a centred `crop` window resized every frame by `sendcmd`
               (zoomN.cmd, see command_files) and a `scale` down (zoom_filters);
  clips        `perspective` (sense=source, eval=frame, bilinear) maps the moving sub-pixel window
               (their frames differ: nothing to scale once) (motion_filter).
Sizes in pixels, w x h the output frame; `frames` the scene's frame count.
"""
from __future__ import annotations

import math

from render_job.plan import RenderPlan, ScenePlan

BLUR_DOWNSCALE = 8        # the blurred fill is computed at 1/8 of the frame size, then scaled up
BLUR_RADIUS = 6           # box-blur radius at that size (pixels), 2 passes
BLUR_DARKEN = 0.6         # luma gain of the blurred fill (limited range, about 16)
_SCALE_COMMON = "force_divisible_by=2:out_range=tv:out_color_matrix=bt709:flags=bicubic"


def _cover(w: int, h: int) -> str:
    """Cover as crop-then-scale: the picture is cut to the w:h aspect ratio at its own size, then
    scaled to w x h. Scaling first would hold a thin still whole at the cover scale (a 256x8192 still
    covering 1920x1080: 1920x61440 pixels, ~0.5 GB per scene; a 16x8192 one exceeds FFmpeg's largest
    picture), the same centred pixels at any memory."""
    return f"crop='min(iw,ih*{w}/{h})':'min(ih,iw*{h}/{w})',scale={w}:{h}:{_SCALE_COMMON},setsar=1"


def _fit_filters(scene: ScenePlan, w: int, h: int) -> str:
    """Cover or contain as a linear filter chain (blur needs a graph: see fit_graph)."""
    if scene.fit == "contain":
        return (f"scale={w}:{h}:force_original_aspect_ratio=decrease:{_SCALE_COMMON},"
                f"pad={w}:{h}:(ow-iw)/2:(oh-ih)/2:color=black")
    return _cover(w, h)


def fit_graph(src: str, scene: ScenePlan, w: int, h: int) -> tuple[list[str], str]:
    """Statements fitting `src` (a pad label such as "[0:v]" plus filters, ending in a chain) to w x h.

    Returns:
        (statements to add before the scene chain, the label/chain prefix to continue from).
    """
    if scene.fit != "blur":
        return [], f"{src}{_fit_filters(scene, w, h)}"
    i = scene.index
    bw, bh = max(2, (w // BLUR_DOWNSCALE) // 2 * 2), max(2, (h // BLUR_DOWNSCALE) // 2 * 2)
    stmts = [
        f"{src}split=2[bg{i}][fg{i}]",
        f"[bg{i}]{_cover(bw, bh)},"
        f"format=yuv420p,boxblur=luma_radius={BLUR_RADIUS}:luma_power=2:chroma_radius={BLUR_RADIUS // 2}"
        f":chroma_power=2,lutyuv=y=16+(val-16)*{BLUR_DARKEN:g},"
        f"scale={w}:{h}:flags=bilinear,setsar=1[bgs{i}]",
        f"[fg{i}]scale={w}:{h}:force_original_aspect_ratio=decrease:{_SCALE_COMMON},format=yuv420p,"
        f"setsar=1[fgs{i}]",
    ]
    return stmts, f"[bgs{i}][fgs{i}]overlay=(W-w)/2:(H-h)/2:format=yuv420"


PAN_MIN_SCALE = 1.0   # still pans are cropped from a copy scaled to >= 1x the panned size ...
PAN_MAX_SCALE = 3.0   # ... and <= 3x (slower pans would need a bigger copy: `perspective` instead)


def pan_filters(scene: ScenePlan, w: int, h: int, frames: int) -> tuple[str, str] | None:
    """A still's pan as (filters before `loop`, per-frame filters), or None (not a pan, or too slow).

    Same window as motion_filter's pan (fraction 1 - s of the fitted w x h frame, travelling s * w
    (or s * h) at constant speed, centred across), without resampling the whole picture per frame:
    the fitted frame is scaled ONCE by k / (1 - s) (k in [PAN_MIN_SCALE, PAN_MAX_SCALE]), each frame
    crops a k*w x k*h window (exact=1) at x = m * n (n = frame index from 0), and a fixed `scale=w:h`
    brings it back. k is chosen so that the travel per frame, m, is a whole number of pixels of the
    scaled copy (even where k allows, so that yuv420p chroma moves with the luma): the window moves
    by exactly the same sub-pixel amount (m / k output pixels) every frame, so there are no backward
    steps and no rounding jitter. Cost: BENCHMARKS.md, "Findings still true" 2.
    """
    s = float(scene.motion_strength)
    if not scene.motion.startswith("pan-") or s <= 0 or frames < 2:
        return None
    horizontal = scene.motion in ("pan-left", "pan-right")
    along, across = (w, h) if horizontal else (h, w)
    intervals = frames - 1
    v = along * s / (1.0 - s) / intervals                  # output pixels of travel per frame
    m = max(1, math.ceil(PAN_MIN_SCALE * v - 1e-9))        # scaled-copy pixels per frame
    if m % 2 and m > 1 and (m + 1) / v <= PAN_MAX_SCALE + 1e-9:
        m += 1
    k = m / v
    if k > PAN_MAX_SCALE + 1e-9:
        return None
    # yuv420p crops move the chroma planes by x // 2: exact only for even offsets, so an odd step
    # crops a yuv444p copy instead (~1 s more CPU per 5 s 1080p scene)
    pix_fmt, even = ("yuv420p", 2) if m % 2 == 0 else ("yuv444p", 1)
    travel = m * intervals
    win_along, win_across = round(k * along), round(k * across)
    big_along, big_across = win_along + travel, round(k * across / (1.0 - s))
    offset = round((big_across - win_across) / 2 / even) * even  # centred (nearest even for yuv420p)
    forward = scene.motion in ("pan-left", "pan-up")  # the picture moves left/up: the window right/down
    pos = f"{m}*n" if forward else f"{travel}-{m}*n"
    if horizontal:
        sw, sh, cw, ch, x, y = big_along, big_across, win_along, win_across, f"'{pos}'", str(offset)
    else:
        sw, sh, cw, ch, x, y = big_across, big_along, win_across, win_along, str(offset), f"'{pos}'"
    once = f"scale={sw}:{sh}:flags=bicubic,format={pix_fmt},"
    per_frame = f"crop={cw}:{ch}:x={x}:y={y}:exact=1,scale={w}:{h}:flags=bilinear,format=yuv420p,"
    return once, per_frame


ZOOM_SCALE = 2  # still zooms crop a window out of a copy scaled ONCE to this multiple of the frame
# qualities whose still zooms keep `perspective` (exact sub-pixel path, ~4x the CPU): see zoom_filters
EXACT_ZOOM_QUALITIES = frozenset({"high"})


def zoom_command_file(scene: ScenePlan) -> str:
    """The name of scene's zoom command file (relative to the FFmpeg working directory)."""
    return f"zoom{scene.index}.cmd"


def zoom_window_sizes(scene: ScenePlan, w: int, h: int, frames: int) -> list[tuple[int, int]] | None:
    """Per-frame window sizes (width, height) in pixels of the ZOOM_SCALE copy, or None (no zoom).

    The window is the fraction f = (1 - s)^p of the picture (zoom-out: (1 - s)^(1 - p)), p = frame
    / (frames - 1), as motion_filter's: each side rounded to an EVEN number of copy pixels, so that
    the centred window starts on a whole pixel ((copy - window) / 2) and the zoom centre never moves.
    Each side is monotonic in p: no backward step; rounding moves an edge by at most 1 copy pixel
    = 1 / ZOOM_SCALE output pixels (the tracked marker in `make bench`: ~0.1 px).
    """
    s = float(scene.motion_strength)
    if scene.motion not in ("zoom-in", "zoom-out") or s <= 0 or frames < 2:
        return None
    cw, ch = ZOOM_SCALE * w, ZOOM_SCALE * h
    log_f = math.log(1.0 - s)
    sizes = []
    for n in range(frames):
        p = n / (frames - 1)
        f = math.exp((p if scene.motion == "zoom-in" else 1.0 - p) * log_f)
        sizes.append((max(2, 2 * round(cw * f / 2)), max(2, 2 * round(ch * f / 2))))
    return sizes


def zoom_commands(scene: ScenePlan, w: int, h: int, frames: int, fps: int) -> str | None:
    """The `sendcmd` file resizing scene's crop window every frame (see zoom_filters), or None.

    One line per frame n: "<time> crop@z<i> w <width>, crop@z<i> h <height>;" at (n - 0.5) / fps
    seconds (0 for n = 0), half a frame early so that float rounding never delays a command; FFmpeg's
    crop filter re-configures its output size on these commands (FFmpeg >= 7) and the `scale` after
    it follows the new size.
    """
    sizes = zoom_window_sizes(scene, w, h, frames)
    if sizes is None:
        return None
    name = f"crop@z{scene.index}"
    lines = [f"{(0.0 if n == 0 else (n - 0.5) / fps):.6f} {name} w {cw}, {name} h {ch};"
             for n, (cw, ch) in enumerate(sizes)]
    return "\n".join(lines) + "\n"


def zoom_filters(scene: ScenePlan, w: int, h: int, frames: int) -> tuple[str, str] | None:
    """A still's zoom as (filters before `loop`, per-frame filters), or None (not a zoom).

    Instead of resampling the whole picture per frame (`perspective`), the fitted frame is scaled
    ONCE to ZOOM_SCALE x its size; every frame then crops a centred window of zoom_window_sizes
    (resized by the commands of zoom_commands, read by `sendcmd` from zoom_command_file) and scales
    it back to w x h: a fraction of the CPU, and no bilinear shimmer on fine detail (BENCHMARKS.md,
    "Findings still true" 2).
    The window is whole copy pixels: the zoom centre is exact and every edge moves monotonically,
    within 1 / (2 * ZOOM_SCALE) output pixels of the exact path (step-to-step variation up to ~0.7 px
    on bars 640 px apart at 720p, against ~0.05 px for `perspective`). build_command uses it for
    draft and standard quality; `high` (EXACT_ZOOM_QUALITIES) keeps `perspective`.
    """
    if zoom_window_sizes(scene, w, h, 2) is None:
        return None
    cw, ch = ZOOM_SCALE * w, ZOOM_SCALE * h
    once = f"scale={cw}:{ch}:flags=bicubic,format=yuv420p,"
    per_frame = (f"sendcmd=f={zoom_command_file(scene)},"
                 f"crop@z{scene.index}=w={cw}:h={ch}:x='(iw-ow)/2':y='(ih-oh)/2':exact=1,"
                 f"scale={w}:{h}:flags=bilinear,format=yuv420p,")
    return once, per_frame


def command_files(plan: RenderPlan) -> dict[str, str]:
    """{file name: text} of the helper files build_command's graph reads (the zoom command files):
    write them into the FFmpeg working directory before running it."""
    files: dict[str, str] = {}
    if plan.quality in EXACT_ZOOM_QUALITIES:
        return files
    for sc in plan.scenes:
        if sc.kind == "image":
            text = zoom_commands(sc, plan.width, plan.height, max(1, int(round(sc.duration * plan.fps))), plan.fps)
            if text:
                files[zoom_command_file(sc)] = text
    return files


def motion_filter(scene: ScenePlan, w: int, h: int, frames: int) -> str:
    """The Ken Burns filter for a scene of `frames` frames, or "" for no motion.

    A window of the fitted w x h frame is mapped onto the whole frame by `perspective` (sub-pixel,
    bilinear, re-evaluated per frame), with p = frame index / (frames - 1) going 0 -> 1 (the filter
    numbers its input frames from 1: p = (in - 1) / (frames - 1)):
      zoom-in   window fraction f = (1 - s)^p, centred (zoom-out: (1 - s)^(1 - p)): constant
                perceived zoom speed; the window is never larger than the picture;
      pan-*     window fraction 1 - s, moving s * w (or s * h) at constant speed; "pan-left" moves the
                picture leftwards across the frame (the window travels towards its right edge).
    s = motion_strength (0..0.5).
    """
    s = float(scene.motion_strength)
    if scene.motion == "none" or s <= 0 or frames < 2:
        return ""
    p = f"((in-1)/{frames - 1})"  # perspective counts input frames from 1
    if scene.motion in ("zoom-in", "zoom-out"):
        q = p if scene.motion == "zoom-in" else f"(1-{p})"
        f = f"exp({q}*{math.log(1.0 - s):.9f})"
        left, top, ww, wh = f"(W*(1-{f})/2)", f"(H*(1-{f})/2)", f"(W*{f})", f"(H*{f})"
    else:
        ww, wh = f"(W*{1 - s:.9g})", f"(H*{1 - s:.9g})"
        if scene.motion in ("pan-left", "pan-right"):
            q = p if scene.motion == "pan-left" else f"(1-{p})"
            left, top = f"(W*{s:.9g}*{q})", f"(H*{s / 2:.9g})"
        else:
            q = p if scene.motion == "pan-up" else f"(1-{p})"
            left, top = f"(W*{s / 2:.9g})", f"(H*{s:.9g}*{q})"
    right, bottom = f"{left}+{ww}", f"{top}+{wh}"
    return (f"perspective=x0='{left}':y0='{top}':x1='{right}':y1='{top}':x2='{left}':y2='{bottom}'"
            f":x3='{right}':y3='{bottom}':interpolation=linear:sense=source:eval=frame,")
