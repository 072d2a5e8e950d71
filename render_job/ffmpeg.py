"""FFmpeg argument building (pure: no I/O, no subprocess).

One FFmpeg run renders the whole export through a single -filter_complex graph (a storyboard of
more than RENDER_SEGMENT_SCENES scenes: the video timeline in segments, see segment_cuts, each an
FFmpeg run writing raw frames into the one encoding run's stdin, build_command(video_pipe=True)):

    per scene   image (decoded once, fitted once, repeated by the `loop` filter) | clip (-ss/-t from
                its first picture, bwdif if interlaced, frozen last frame via tpad if short) |
                colour or title card (lavfi `color` source)
                -> fit (BT.709 limited range): cover = crop+scale, contain = scale+pad,
                   blur = contain overlaid on a downscaled, box-blurred, darkened cover copy
                -> Ken Burns motion, all sub-pixel exact or whole-copy-pixel, never resampling from the
                   original per frame more than once:
                   still pans: the fitted still is scaled ONCE (before `loop`) to k x the panned size
                   (smallest k >= 1 making the per-frame step a whole number of pixels), then an exact
                   `crop` per frame and a fixed `scale` down -> constant steps, no jitter;
                   still zooms: scaled ONCE to 2x, then a centred `crop` window resized every frame by
                   `sendcmd` (zoomN.cmd, see command_files) and a `scale` down -> centre fixed, edges
                   within 1/2 px of the exact path, monotonic;
                   clips: `perspective` (sense=source, eval=frame, bilinear) maps the moving sub-pixel
                   window (their frames differ: nothing to scale once)
                -> setsar=1 -> fps -> yuv420p -> trim to the scene's duration => [v0] [v1] ...
    timeline    each transition a short xfade segment (offset 0) between frame-exact trims of the
                scenes, then ONE concat of all segments (timeline_graph)
    captions    pre-rendered once per caption state (render_job.caption_overlay: an atlas PNG, one
                `overlay` of a frame-aligned caption stream); title cards (and plans with more
                than caption_overlay.MAX_STATES states) burn captions.ass with `subtitles`
                (fontsdir=fonts); file names relative to the FFmpeg working directory, so no
                caption text and no user-controlled path ever enters the graph or argv
    audio       narrations (48 kHz stereo, gain, cut, adelay to scene start + offset) and clip audio
                (silence up to its first sample, gain, adelay to the scene start) -> amix
                music (looped, gain, fades, trimmed) ducked by sidechaincompress keyed on narration
                -> loudnorm (target LUFS; ceiling = target dBTP - the AAC encoder's overshoot,
                   loudnorm_ceiling_db; one linear gain from the mix's analysis by
                   build_mix_loudness_command, same graph, when the true peak allows: loudnorm_filter)
                -> 48 kHz -> padded/trimmed to the total
                no audio at all -> anullsrc silence (the output always has an AAC stereo track)

Run the command with cwd = the work directory holding `captions.ass`, `fonts/` and the files of
command_files(plan).
Local input paths must not contain '%' (the image2 demuxer treats it as a sequence pattern):
render_job.job names downloaded assets itself.
"""
from __future__ import annotations

import math
from typing import Mapping

from render_job.caption_overlay import CaptionOverlay, overlay_graph
from render_job.plan import RenderPlan, ScenePlan

# quality -> (x264 preset, CRF)
QUALITY: dict[str, tuple[str, int]] = {
    "draft": ("ultrafast", 28),
    "standard": ("veryfast", 23),
    "high": ("medium", 18),
}
AUDIO_RATE = 48000
AUDIO_BITRATE = "192k"
LOUDNESS_RANGE = 11
NARRATION_FADE_S = 0.05
DEFAULT_ASS_NAME = "captions.ass"
DEFAULT_FONTS_DIR = "fonts"

_COLOR_TAGS = ["-colorspace", "bt709", "-color_primaries", "bt709", "-color_trc", "bt709", "-color_range", "tv"]


def fmt_s(seconds: float) -> str:
    """Seconds as a compact decimal string for FFmpeg (microsecond precision, no exponent)."""
    text = f"{max(0.0, seconds):.6f}".rstrip("0").rstrip(".")
    return text or "0"


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
    """Cover or contain as a linear filter chain (blur needs a graph: see _fit_graph)."""
    if scene.fit == "contain":
        return (f"scale={w}:{h}:force_original_aspect_ratio=decrease:{_SCALE_COMMON},"
                f"pad={w}:{h}:(ow-iw)/2:(oh-ih)/2:color=black")
    return _cover(w, h)


def _fit_graph(src: str, scene: ScenePlan, w: int, h: int) -> tuple[list[str], str]:
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
    steps and no rounding jitter. 1080p30, s = 0.15, 5 s: ~1.7-2.6 s CPU instead of ~4.6 s.
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

    Instead of resampling the whole picture per frame (`perspective`: ~4 s CPU per 5 s 1080p30
    scene), the fitted frame is scaled ONCE to ZOOM_SCALE x its size; every frame then crops a
    centred window of zoom_window_sizes (resized by the commands of zoom_commands, read by
    `sendcmd` from zoom_command_file) and scales it back to w x h: ~1.1 s CPU per such scene, and
    no bilinear shimmer on fine detail (a cellular-automaton still: half the bits of `perspective`).
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


def _common_tail(plan: RenderPlan, duration: float) -> str:
    fps = plan.fps
    return (f"setsar=1,fps={fps},format=yuv420p,"
            f"setparams=range=tv:color_primaries=bt709:color_trc=bt709:colorspace=bt709,"
            f"trim=duration={fmt_s(duration)},setpts=PTS-STARTPTS")


def _timeline_frames(plan: RenderPlan) -> tuple[list[int], list[int]]:
    """(frames of each scene, frames of each scene's outgoing transition: 0 for a cut and the last)."""
    fps, scenes = plan.fps, plan.scenes
    n = len(scenes)
    frames = [max(1, int(round(sc.duration * fps))) for sc in scenes]
    trans = [int(round(sc.transition_s * fps)) if (sc.transition != "cut" and i < n - 1) else 0
             for i, sc in enumerate(scenes)]
    return frames, trans


def timeline_graph(plan: RenderPlan, out: str = "[tl]", first: int = 0, last: int | None = None) -> list[str]:
    """Statements joining the scene streams [v<first>] ... into `out`, transitions included.

    Scene i (n_i frames) enters with the last t_{i-1} frames of scene i-1 and leaves over its own
    last t_i frames (t = transition_s in whole frames; 0 for cuts). Each scene is split (`split`,
    frames shared by reference) into head [0, t_{i-1}), body [t_{i-1}, n_i - t_i) and tail
    [n_i - t_i, n_i) by frame-exact `trim`; transition i is `xfade` (offset 0) of tail i and head
    i+1, exactly t_i frames; then one `concat` of body 0, transition 0, body 1, ... body n-1.

    Why not the usual chain of xfades ([v0][v1]xfade -> [x0][v2]xfade -> ...): every frame of
    scene k then passes through the n-1-k later xfade filters, and FFmpeg's xfade copies each
    frame it passes through (1080p: ~1.4 ms a copy; 12 scenes: ~16 s CPU for 54.5 s of video).
    Here every frame passes at most one xfade, and only during its transition.

    A segment of the timeline (segmented renders, see segment_cuts): from the start of scene
    `first`'s body up to the start of scene `last`'s body (None: to the end). Scene `first` then
    contributes its body and tail (its head belongs to the previous segment), scene `last` only its
    head (the second half of transition last-1); the segments' frames add up to the whole timeline's.

    Returns:
        filter statements (strings) ending in `out`: yuv420p, time base 1/fps, pts = frame index.
        Each scene used reads [v<i>].
    """
    fps = plan.fps
    scenes = plan.scenes
    n = len(scenes)
    frames, trans = _timeline_frames(plan)
    end = n if last is None else last  # scenes first..end-1 contribute bodies and outgoing transitions
    used = range(first, min(n, end + 1))
    stmts: list[str] = []
    heads: dict[int, str] = {}
    tails: dict[int, str] = {}
    bodies: dict[int, str] = {}
    for i in used:
        head = trans[i - 1] if i > 0 else 0
        tail = trans[i]
        body = max(0, frames[i] - head - tail)
        parts: list[tuple[str, int, int, str]] = []  # (kind, first frame, end frame, trim filter)
        if head and i > first:
            parts.append(("h", 0, head, f"trim=end_frame={head}"))
        if i < end:
            if body:
                parts.append(("b", head, head + body,
                              f"trim=start_frame={head}:end_frame={head + body},setpts=PTS-STARTPTS"))
            if tail:
                parts.append(("t", frames[i] - tail, frames[i],
                              f"trim=start_frame={frames[i] - tail},setpts=PTS-STARTPTS"))
        if not parts:
            continue
        names = {"h": heads, "b": bodies, "t": tails}
        if len(parts) == 1:
            kind, start, stop, trim = parts[0]
            if start == 0 and stop >= frames[i]:  # the whole scene
                names[kind][i] = f"[v{i}]"
            else:
                stmts.append(f"[v{i}]{trim}[{kind}{i}o]")
                names[kind][i] = f"[{kind}{i}o]"
            continue
        stmts.append(f"[v{i}]split={len(parts)}" + "".join(f"[{k}{i}]" for k, *_ in parts))
        for k, _, _, trim in parts:
            stmts.append(f"[{k}{i}]{trim}[{k}{i}o]")
            names[k][i] = f"[{k}{i}o]"
    segments: list[str] = []
    for i in range(first, min(n, end)):
        if i in bodies:
            segments.append(bodies[i])
        if trans[i]:
            label = f"[x{i}]"
            # xfade works in yuv444p (FFmpeg converts its inputs): back to yuv420p here, so that the
            # concat never negotiates yuv444p for every body (it would when a segment starts with a
            # transition: each body then goes through yuv444p and back, and its chroma changes)
            stmts.append(f"{tails[i]}{heads[i + 1]}xfade=transition={scenes[i].transition}"
                         f":duration={fmt_s(trans[i] / fps)}:offset=0,format=yuv420p{label}")
            segments.append(label)
    if len(segments) == 1:
        stmts.append(f"{segments[0]}settb=1/{fps},setpts=N{out}")
    else:
        # concat outputs in 1/1000000: back to 1/fps with pts = frame index (constant frame rate)
        stmts.append("".join(segments) + f"concat=n={len(segments)}:v=1:a=0,settb=1/{fps},setpts=N{out}")
    return stmts


def _clip_read_s(sc: ScenePlan) -> float:
    """Seconds read from a clip scene's file: the clip after trimming, at most the scene's length."""
    return min(sc.duration, sc.clip_s) if sc.clip_s else sc.duration


def _clip_open_us(sc: ScenePlan) -> tuple[int, int]:
    """(where a clip's file is opened, the trim point's offset after it), whole microseconds: the
    trim point (clip_seek_s, never after the first picture), less clip_preroll_s."""
    seek = math.floor(sc.clip_seek_s * 1e6 + 1e-3)
    pre = min(seek, round(sc.clip_preroll_s * 1e6))
    return seek - pre, pre


def _clip_input(sc: ScenePlan, path: str) -> list[str]:
    """The input arguments opening a clip scene's file at its trim point (clip_seek_s: counted from
    the first picture) for _clip_read_s seconds. FFmpeg cuts both streams at that instant of the
    file; their timestamps then count from it (the picture's and the sound's first frame may be later).
    With a preroll (clip_preroll_s) the file opens that much earlier and the graph cuts at the trim
    point (_clip_cut_s): such demuxers start decoding at the first keyframe after their seek point."""
    start, pre = _clip_open_us(sc)
    return ["-ss", fmt_s(start / 1e6), "-t", fmt_s((pre / 1e6) + _clip_read_s(sc)), "-i", path]


def _clip_cut_s(sc: ScenePlan) -> float:
    """Seconds from where a clip's file is opened to its trim point (0 without a preroll)."""
    return _clip_open_us(sc)[1] / 1e6


def _scene_video(plan: RenderPlan, sc: ScenePlan, inputs: Mapping[str, str], idx: int) -> tuple[list[str], list[str]]:
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
        pre, fitted = _fit_graph(f"[{idx}:v]", sc, w, h)
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
    cut = _clip_cut_s(sc)  # after a preroll: the frames from the trim point on, timed from it
    if cut:
        deint += f"trim=start={fmt_s(cut)},setpts=PTS-{fmt_s(cut)}/TB,"
    pre, fitted = _fit_graph(f"[{idx}:V]{deint}", sc, w, h)
    motion = motion_filter(sc, w, h, n_frames)
    if motion:  # frame-exact scene first, so the motion's frame index runs 0..n-1
        motion = f"format=yuv420p,trim=end_frame={n_frames},{motion}"
    chain = f"{fitted},setsar=1,fps={fps}:start_time=0,{pad}{motion}{_common_tail(plan, sc.duration)}"
    return _clip_input(sc, path), pre + [chain + label]


# Estimated FFmpeg memory per scene held by one graph, MB, at 1080p output (scaled by output pixels),
# measured with `make bench-segments` and tests/bench (BENCHMARKS.md finding 22): stills with Ken
# Burns and fades ~57 MB; clips ~100 MB plus ~10 MB per megapixel of the clip (decoder frames and
# threads: ~120 MB for a 1080p clip, ~185 MB for a 4K one); colour and title cards a few MB.
# A still with more pixels than the frame holds its decoded picture and its scaled, not yet cropped
# copy until the graph ends: per megapixel beyond the frame's, 1080p draft, 24 scenes of one still,
# with zoom/pan and fades (the most per scene): 4.0-5.1 MB for JPEG copies (1920x2560, 1920x4096),
# ~2.1 for RGB PNGs (1920x8192, 3840x8192); static, up to 6.7, within SCENE_MB_IMAGE's slack there.
SCENE_MB_IMAGE = 60.0
SCENE_MB_PER_IMAGE_MP = 6.0  # per megapixel of a still beyond the output frame's
SCENE_MB_CLIP = 100.0
SCENE_MB_PER_CLIP_MP = 10.0
SCENE_MB_CARD = 10.0
SEGMENT_BUDGET_MB = 1500.0  # estimated scene memory per segment (render_job.memory adds the rest of F)


def scene_memory_mb(plan: RenderPlan, sc: ScenePlan) -> float:
    """Estimated FFmpeg memory in MB that scene `sc` holds in a graph until the graph ends (see the
    SCENE_MB_* measurements): a still by its pixels beyond the frame's, a clip by its frame size."""
    scale = plan.width * plan.height / (1920 * 1080)
    if sc.kind == "image":  # src_pixels: the still as FFmpeg decodes it (0: unknown, counted frame-sized)
        return SCENE_MB_IMAGE * scale + SCENE_MB_PER_IMAGE_MP * max(0, sc.src_pixels - plan.width * plan.height) / 1e6
    if sc.kind == "video":
        return SCENE_MB_CLIP * scale + SCENE_MB_PER_CLIP_MP * sc.src_pixels / 1e6
    return SCENE_MB_CARD * scale


def segment_cuts(plan: RenderPlan, max_scenes: int, budget_mb: float = SEGMENT_BUDGET_MB) -> list[int]:
    """Where a segmented render splits the timeline: scene indices j, each segment ending where
    scene j's body starts (after transition j-1) and the next one starting there; [] = one run.

    Why: one FFmpeg graph holds every scene's prepared picture (a zoom's 2x copy, a pan's scaled
    copy, a clip's decoder, frame pools) until it ends, so its memory grows with the scene count:
    at 1080p with cuts ~34 MB per zoom scene, ~26 MB per pan and < 10 MB per static still, with
    fades ~57 MB per scene, a 4K clip ~185 MB (measured: `make bench-segments`, BENCHMARKS.md
    finding 22), i.e. 7-11 GB for 200 still scenes, over a 4 GiB render task. A segment takes scenes
    while it has fewer than max_scenes and their scene_memory_mb stays within budget_mb (at least
    one scene), plus the next scene for its transition's head frames.

    Args:
        plan: the RenderPlan.
        max_scenes: scenes per segment at most (RENDER_SEGMENT_SCENES); 0 or less: never segment.
        budget_mb: estimated scene memory per segment, MB.
    Returns:
        Increasing scene indices in 1..len(scenes)-1 ([] when the plan fits in one graph).
    """
    if max_scenes <= 0:
        return []
    cuts: list[int] = []
    start, used = 0, 0.0
    for j, sc in enumerate(plan.scenes):
        cost = scene_memory_mb(plan, sc)
        if j > start and (j - start >= max_scenes or used + cost > budget_mb):
            cuts.append(j)
            start, used = j, 0.0
        used += cost
    return cuts


def segment_frames(plan: RenderPlan, first: int, last: int | None) -> int:
    """Frames of the timeline segment from scene `first`'s body to scene `last`'s (see timeline_graph)."""
    frames, trans = _timeline_frames(plan)
    n = len(frames)

    def body_start(j: int) -> int:  # timeline frame where scene j's body starts
        return sum(frames[:j]) - sum(trans[:j])

    end = sum(frames) - sum(trans) if last is None else body_start(last)
    return end - (body_start(first) if first else 0) if n else 0


def build_segment_command(plan: RenderPlan, inputs: Mapping[str, str], first: int, last: int | None,
                          ffmpeg: str = "ffmpeg") -> list[str]:
    """The argv of one segment of a segmented render: the timeline from scene `first`'s body to scene
    `last`'s (None: the end; see segment_cuts, timeline_graph) written to stdout as raw yuv420p
    frames (w x h, segment_frames(plan, first, last) of them), read by build_command(video_pipe=True).

    Raises:
        KeyError: a src of the segment's scenes is missing from `inputs`.
    """
    n = len(plan.scenes)
    _, trans = _timeline_frames(plan)
    end = n if last is None else last
    # scene `last` only for the head it gives transition last-1 (none after a cut)
    upto = end + 1 if end < n and trans[end - 1] else end
    args: list[str] = [ffmpeg, "-hide_banner", "-nostdin", "-loglevel", "error"]
    graph: list[str] = []
    idx = 0
    for sc in plan.scenes[first:upto]:
        in_args, stmts = _scene_video(plan, sc, inputs, idx)
        args += in_args
        graph += stmts
        idx += 1 if in_args else 0
    graph += timeline_graph(plan, "[tl]", first, last)
    return args + ["-filter_complex", ";".join(graph), "-map", "[tl]", "-fps_mode", "passthrough",
                   "-f", "rawvideo", "-pix_fmt", "yuv420p", "pipe:1"]


def _audio_mix(plan: RenderPlan, inputs: Mapping[str, str], idx: int,
               clip_inputs: Mapping[int, int]) -> tuple[list[str], list[str], str | None, int]:
    """The mix before loudness normalisation (module docstring, `audio`), shared by the render and
    build_mix_loudness_command: (input args, graph statements, the mix's label or None without
    audio, next input index). Clip sound reads the already opened inputs `clip_inputs` ({scene
    index: input index}); narrations and music are opened here from input index `idx` on.
    """
    total = plan.total_s
    args: list[str] = []
    graph: list[str] = []
    # --- audio: clip sound and narrations form the foreground (which ducks the music)
    narr_labels: list[str] = []
    for sc in plan.scenes:
        if sc.index not in clip_inputs:
            continue
        read_s, cut = _clip_read_s(sc), _clip_cut_s(sc)
        delay_ms = int(round(sc.start * 1000))
        # async=1:first_pts=0: silence before sound that starts after the trim point (its timestamps
        # count from it, as the picture's do), so the file's sound stays with its picture
        graph.append(f"[{clip_inputs[sc.index]}:a]aresample={AUDIO_RATE}:async=1:first_pts=0,"
                     f"aformat=sample_fmts=fltp:channel_layouts=stereo,volume={sc.clip_volume:g},"
                     f"atrim={fmt_s(cut)}:{fmt_s(cut + read_s)},asetpts=PTS-STARTPTS,adelay={delay_ms}:all=1[c{sc.index}]")
        narr_labels.append(f"[c{sc.index}]")
    for sc in plan.scenes:
        if not sc.narration_src:
            continue
        args += ["-i", inputs[sc.narration_src]]
        chain = (f"[{idx}:a]aresample={AUDIO_RATE},aformat=sample_fmts=fltp:channel_layouts=stereo,"
                 f"volume={sc.narration_volume:g}")
        if sc.narration_cut_s is not None:
            cut = sc.narration_cut_s
            chain += (f",atrim=0:{fmt_s(cut)},"
                      f"afade=t=out:st={fmt_s(max(0.0, cut - NARRATION_FADE_S))}:d={fmt_s(NARRATION_FADE_S)}")
        delay_ms = int(round((sc.start + sc.narration_offset_s) * 1000))
        chain += f",asetpts=PTS-STARTPTS,adelay={delay_ms}:all=1"
        label = f"[n{sc.index}]"
        graph.append(chain + label)
        narr_labels.append(label)
        idx += 1

    narr = None
    if len(narr_labels) == 1:
        narr = narr_labels[0]
    elif narr_labels:
        graph.append("".join(narr_labels) + f"amix=inputs={len(narr_labels)}:normalize=0:duration=longest"
                     ":dropout_transition=0[narr]")
        narr = "[narr]"

    music = None
    if plan.music is not None:
        mu = plan.music
        if mu.loop:
            args += ["-stream_loop", "-1"]
        args += ["-i", inputs[mu.src]]
        chain = (f"[{idx}:a]aresample={AUDIO_RATE},aformat=sample_fmts=fltp:channel_layouts=stereo,"
                 f"volume={mu.volume:g},atrim=0:{fmt_s(total)},asetpts=PTS-STARTPTS")
        if mu.fade_in_s > 0:
            chain += f",afade=t=in:st=0:d={fmt_s(mu.fade_in_s)}"
        if mu.fade_out_s > 0:
            chain += f",afade=t=out:st={fmt_s(max(0.0, total - mu.fade_out_s))}:d={fmt_s(mu.fade_out_s)}"
        graph.append(chain + "[mus]")
        music = "[mus]"
        idx += 1

    if narr and music:
        if plan.music and plan.music.ducking:
            graph.append(f"{narr}asplit=2[narrmix][narrkey0]")
            # finite padding: an endless key keeps some FFmpeg versions' graphs running forever
            graph.append(f"[narrkey0]apad=whole_dur={fmt_s(total)}[narrkey]")
            graph.append("[mus][narrkey]sidechaincompress=threshold=0.03:ratio=8:attack=20:release=400[duck]")
            graph.append("[narrmix][duck]amix=inputs=2:normalize=0:duration=longest:dropout_transition=0[mix]")
        else:
            graph.append(f"{narr}{music}amix=inputs=2:normalize=0:duration=longest:dropout_transition=0[mix]")
        mix = "[mix]"
    else:
        mix = narr or music
    return args, graph, mix, idx


def build_command(plan: RenderPlan, inputs: Mapping[str, str], out_mp4: str, ass_path: str | None = None,
                  ffmpeg: str = "ffmpeg", threads: int = 0, fonts_dir: str = DEFAULT_FONTS_DIR,
                  caption_overlay: CaptionOverlay | None = None, video_pipe: bool = False,
                  loudness: Mapping[str, str] | None = None) -> list[str]:
    """The argv of the single FFmpeg run that renders `plan` to `out_mp4`.

    With video_pipe=True it is the encoding run of a segmented render instead: the video timeline
    comes from stdin as raw yuv420p frames (w x h at plan.fps, written by the build_segment_command
    runs of segment_cuts(plan), in order); audio, captions and encoding are the same as a single run's.

    Args:
        plan: the RenderPlan (times in seconds).
        inputs: {src: local file path} for every image, clip, narration and music src in the plan.
        out_mp4: output path (relative to the FFmpeg working directory, or absolute).
        ass_path: the ASS file name for burn-in, relative to the working directory (a fixed name such
            as "captions.ass"), or None for no burn-in. Must not contain ':', ',', ';', '[', ']', '\\' or quotes.
        ffmpeg: the FFmpeg executable.
        threads: x264/encoder threads (0 = FFmpeg's choice).
        fonts_dir: directory (relative to the working directory) holding the caption fonts.
        caption_overlay: the captions pre-rendered by render_job.caption_overlay.prepare (its atlas
            in the working directory), overlaid instead of burning `ass_path` (then normally None).
        video_pipe: read the video timeline from stdin (segmented render) instead of rendering it.
        loudness: the mix's loudnorm analysis (parse_loudnorm_json of a build_mix_loudness_command
            run): the mix is normalised by one constant gain when its true peak allows
            (loudnorm_filter); None: loudnorm's dynamic mode.
    Returns:
        argv as a list of strings. Progress goes to stdout (-progress pipe:1), errors to stderr.
    Raises:
        KeyError: a src of the plan is missing from `inputs`.
        ValueError: ass_path or fonts_dir contains a character that would need filter escaping.
    """
    for name in (ass_path, fonts_dir):
        if name and any(c in name for c in ":,;[]\\'\"= %"):
            raise ValueError(f"unsafe file name for the filter graph: {name!r}")
    w, h, fps = plan.width, plan.height, plan.fps
    total = plan.total_s
    args: list[str] = [ffmpeg, "-hide_banner", "-nostdin", "-loglevel", "error"]
    graph: list[str] = []
    idx = 0
    clip_inputs: dict[int, int] = {}  # scene index -> input index of its clip (for its audio)

    if video_pipe:
        # segmented render: the timeline arrives as raw frames (build_segment_command's, one segment
        # after the other) on stdin; clips with sound are opened again here for their audio only
        args += ["-f", "rawvideo", "-pix_fmt", "yuv420p", "-video_size", f"{w}x{h}", "-framerate", str(fps),
                 "-i", "pipe:0"]
        graph.append(f"[0:v]setparams=range=tv:color_primaries=bt709:color_trc=bt709:colorspace=bt709,"
                     f"setsar=1,settb=1/{fps},setpts=N[tl]")
        idx = 1
        for sc in plan.scenes:
            if sc.kind == "video" and sc.clip_audio:
                args += _clip_input(sc, inputs[sc.src])  # type: ignore[index]
                clip_inputs[sc.index] = idx
                idx += 1
    else:
        # --- video inputs and per-scene chains, then the timeline: every transition is its own short
        # segment, then ONE concat (see timeline_graph)
        for sc in plan.scenes:
            in_args, stmts = _scene_video(plan, sc, inputs, idx)
            args += in_args
            graph += stmts
            if in_args:
                if sc.kind == "video" and sc.clip_audio:
                    clip_inputs[sc.index] = idx
                idx += 1
        graph += timeline_graph(plan)
    acc = "[tl]"
    audio_args, audio_graph, mix, idx = _audio_mix(plan, inputs, idx, clip_inputs)
    args += audio_args
    graph += audio_graph
    if mix:
        # loudnorm (dynamic mode, FFmpeg 9) stamps the frames it flushes at the end 3200 samples late: a
        # gap in the timestamps, not in the sound (its samples are complete and contiguous). Left in, the
        # last ~3 s of audio play ~67 ms after the picture and the final ~67 ms are trimmed away, while
        # the stream's duration still looks right. Timestamps from the sample count (asetpts=N/SR/TB)
        # put every sample where it belongs (tests/integration/test_render.py checks the sound heard).
        graph.append(f"{mix}{loudnorm_filter(plan, loudness)},aresample={AUDIO_RATE},asetpts=N/SR/TB,"
                     f"aformat=sample_fmts=fltp:channel_layouts=stereo,"
                     f"apad=whole_dur={fmt_s(total)},atrim=0:{fmt_s(total)},asetpts=PTS-STARTPTS[aout]")
    else:
        graph.append(f"anullsrc=r={AUDIO_RATE}:cl=stereo,atrim=0:{fmt_s(total)},"
                     f"aformat=sample_fmts=fltp:channel_layouts=stereo[aout]")

    # --- captions over the timeline [tl]
    if caption_overlay is not None:
        args += ["-i", caption_overlay.atlas]
        graph += overlay_graph(caption_overlay, idx, acc, "[capo]", plan.fps)
        acc = "[capo]"
        idx += 1
    if ass_path:
        graph.append(f"{acc}subtitles=filename={ass_path}:fontsdir={fonts_dir},format=yuv420p[vout]")
    else:
        graph.append(f"{acc}format=yuv420p[vout]")
    preset, crf = QUALITY.get(plan.quality, QUALITY["standard"])
    args += ["-filter_complex", ";".join(graph), "-map", "[vout]", "-map", "[aout]",
             "-c:v", "libx264", "-preset", preset, "-crf", str(crf), "-pix_fmt", "yuv420p", "-r", str(fps),
             *_COLOR_TAGS,
             "-c:a", "aac", "-b:a", AUDIO_BITRATE, "-ar", str(AUDIO_RATE), "-ac", "2",
             "-movflags", "+faststart", "-t", fmt_s(total)]
    if threads:
        args += ["-threads", str(int(threads))]
    args += ["-progress", "pipe:1", "-nostats", "-y", out_mp4]
    return args


GRAPH_FILE = "filter_graph.txt"
GRAPH_ARG_LIMIT = 64 * 1024  # characters; Linux refuses any single argv string over 128 KiB (E2BIG)


def graph_via_file(argv: list[str], limit: int = GRAPH_ARG_LIMIT,
                   name: str = GRAPH_FILE) -> tuple[list[str], dict[str, str]]:
    """Move a long -filter_complex graph into the file `name` (FFmpeg >= 7: `-/filter_complex FILE`).

    A 200-scene storyboard's graph is ~190 KB, over the kernel's 128 KiB limit for one argument.
    Returns:
        (argv, {file name: text to write into the FFmpeg working directory}); argv unchanged and {}
        when the graph is at most `limit` characters (or there is none).
    """
    if "-filter_complex" not in argv:
        return argv, {}
    i = argv.index("-filter_complex")
    if len(argv[i + 1]) <= limit:
        return argv, {}
    return argv[:i] + ["-/filter_complex", name] + argv[i + 2:], {name: argv[i + 1]}


def build_poster_command(ffmpeg: str, mp4: str, time_s: float, out_jpg: str) -> list[str]:
    """argv extracting the frame at `time_s` (seconds) of `mp4` as a JPEG at `out_jpg` (full size, q 2).

    The frame is converted from the video's BT.709 limited range to JPEG's BT.601 full range (what
    every JPEG decoder assumes), so the poster's colours match the video's."""
    return [ffmpeg, "-hide_banner", "-nostdin", "-loglevel", "error", "-ss", fmt_s(time_s), "-i", mp4,
            "-frames:v", "1", "-vf", "scale=in_range=tv:in_color_matrix=bt709:out_range=pc:out_color_matrix=bt601,"
            "format=yuvj420p", "-q:v", "2", "-update", "1", "-y", out_jpg]


# --- loudness: measure the rendered output; correct it with a linear two-pass loudnorm if needed
LOUDNESS_TOLERANCE_LU = 1.0   # a single-pass result further than this from the target gets a second pass
TRUE_PEAK_TOLERANCE_DB = 0.5  # ... as does a true peak more than this above the ceiling
# The AAC encoder (192 kb/s) puts inter-sample peaks above the PCM it is given, and the longer the
# export, the more limiter hits at loudnorm's ceiling and the higher the highest: on narration over
# music, 0.62-0.91 dB at most in 30 min (4 runs), 0.53 in 10, 0.2-0.3 in 1-2 (DESIGN.md §9). loudnorm's
# ceiling is the target minus the largest (rounded up), so the output stays at or below the target
# at any length; the tolerance is left for rarer peaks instead of being used up by a long export.
ENCODER_TRUE_PEAK_MARGIN_DB = 1.0


MAX_LOUDNESS_RANGE = 50.0  # loudnorm's largest LRA target


def loudnorm_ceiling_db(plan: RenderPlan) -> float:
    """The true-peak ceiling (dBTP) given to loudnorm, in the render and the second pass alike:
    plan.true_peak_db - ENCODER_TRUE_PEAK_MARGIN_DB, the room the AAC encoder's overshoot needs."""
    return round(plan.true_peak_db - ENCODER_TRUE_PEAK_MARGIN_DB, 2)


def loudnorm_filter(plan: RenderPlan, measured: Mapping[str, str] | None = None) -> str:
    """The loudnorm filter for `plan`'s target (TP: loudnorm_ceiling_db): dynamic mode without
    `measured`; with `measured` (parse_loudnorm_json of an analysis of the same audio) linear mode,
    i.e. one constant gain (target - input_i) over the whole stream, which FFmpeg only takes when
    that gain keeps the true peak under the ceiling (loudnorm_is_linear); otherwise it falls back
    to dynamic mode. `measured` = SILENT_MIX (mix_is_silent): no loudnorm at all, the silence is kept.
    """
    if measured is not None and measured.get("silent"):
        return "anull"  # digital silence: loudnorm's gain would be infinite (NaN samples, AAC refuses them)
    head = f"loudnorm=I={plan.loudness_lufs:g}:TP={loudnorm_ceiling_db(plan):g}"
    if measured is None:
        return f"{head}:LRA={LOUDNESS_RANGE}"
    lra = float(measured["input_lra"])
    # FFmpeg also refuses linear mode when the input's range exceeds the LRA target (a constant gain
    # keeps the range anyway), and reads measured_LRA=0 as "not measured": a steady mix has LRA 0.00
    return (f"{head}:LRA={_lra_target(lra):g}:measured_I={measured['input_i']}:measured_TP={measured['input_tp']}"
            f":measured_LRA={max(lra, 0.01):g}:measured_thresh={measured['input_thresh']}"
            f":offset={measured['target_offset']}:linear=true")


def _lra_target(measured_lra: float) -> float:
    return min(MAX_LOUDNESS_RANGE, max(float(LOUDNESS_RANGE), math.ceil(measured_lra)))


def loudnorm_is_linear(plan: RenderPlan, measured: Mapping[str, str]) -> bool:
    """True when loudnorm_filter(plan, measured) runs in linear mode (FFmpeg's own test): the gain
    target - input_i keeps input_tp under the ceiling (loudnorm_ceiling_db) and the range fits
    loudnorm's LRA target."""
    i, tp = float(measured["input_i"]), float(measured["input_tp"])
    lra, thresh = float(measured["input_lra"]), float(measured["input_thresh"])
    return (thresh != -70 and i != 0 and tp + plan.loudness_lufs - i <= loudnorm_ceiling_db(plan)
            and lra <= _lra_target(lra))


def build_mix_loudness_command(plan: RenderPlan, inputs: Mapping[str, str], ffmpeg: str = "ffmpeg") -> list[str] | None:
    """argv of the analysis run before the render: the render's own mix (_audio_mix: same inputs,
    same graph up to loudnorm), audio only, into loudnorm's analysis (JSON on stderr:
    parse_loudnorm_json; pass it to build_command(loudness=...)). None when the plan has no audio.

    Raises:
        KeyError: a src of the plan's audio is missing from `inputs`.
    """
    args: list[str] = [ffmpeg, "-hide_banner", "-nostdin", "-nostats", "-loglevel", "info"]
    clip_inputs: dict[int, int] = {}
    for sc in plan.scenes:
        if sc.kind == "video" and sc.clip_audio:
            args += _clip_input(sc, inputs[sc.src])  # type: ignore[index]
            clip_inputs[sc.index] = len(clip_inputs)
    mix_args, graph, mix, _ = _audio_mix(plan, inputs, len(clip_inputs), clip_inputs)
    if mix is None:
        return None
    graph.append(f"{mix}{loudnorm_filter(plan)}:print_format=json[aout]")
    return args + mix_args + ["-filter_complex", ";".join(graph), "-map", "[aout]", "-vn", "-sn",
                              "-f", "null", "-progress", "pipe:1", "-"]


def build_loudness_measure_command(ffmpeg: str, mp4: str) -> list[str]:
    """argv measuring `mp4`'s audio with ebur128 (EBU R128: integrated loudness, LRA, true peak).
    The summary is printed on stderr at the end (parse it with parse_ebur128_summary)."""
    return [ffmpeg, "-hide_banner", "-nostdin", "-nostats", "-loglevel", "info", "-i", mp4, "-vn", "-sn",
            "-af", "ebur128=peak=true:framelog=verbose", "-f", "null", "-progress", "pipe:1", "-"]


def parse_ebur128_summary(lines: list[str] | str) -> dict[str, float] | None:
    """{"integratedLufs", "truePeakDb", "lra"} from ebur128's Summary (LUFS, dBTP, LU), or None."""
    text = lines if isinstance(lines, str) else "\n".join(lines)
    at = text.rfind("Summary:")
    if at < 0:
        return None
    out: dict[str, float] = {}
    for line in text[at:].splitlines():
        key, _, rest = line.strip().partition(":")
        parts = rest.split()
        if not parts:
            continue
        try:
            value = float(parts[0])
        except ValueError:
            continue
        if key == "I" and "integratedLufs" not in out:
            out["integratedLufs"] = value
        elif key == "LRA" and "lra" not in out:
            out["lra"] = value
        elif key == "Peak":
            out["truePeakDb"] = value
    if "integratedLufs" not in out:
        return None
    out.setdefault("lra", 0.0)
    out.setdefault("truePeakDb", float("-inf"))
    return out


def loudness_needs_second_pass(measured: dict[str, float], target_lufs: float, true_peak_db: float) -> bool:
    """True when the single-pass output misses the target by more than the tolerances (silence: never)."""
    i = measured.get("integratedLufs", float("-inf"))
    if not math.isfinite(i) or i < -69:  # silent output: nothing to normalise
        return False
    return (abs(i - target_lufs) > LOUDNESS_TOLERANCE_LU
            or measured.get("truePeakDb", float("-inf")) > true_peak_db + TRUE_PEAK_TOLERANCE_DB)


def build_loudnorm_analysis_command(ffmpeg: str, mp4: str, plan: RenderPlan) -> list[str]:
    """argv of loudnorm's analysis pass over `mp4`'s audio (JSON on stderr: parse_loudnorm_json)."""
    return [ffmpeg, "-hide_banner", "-nostdin", "-nostats", "-loglevel", "info", "-i", mp4, "-vn", "-sn",
            "-af", f"{loudnorm_filter(plan)}:print_format=json", "-f", "null", "-progress", "pipe:1", "-"]


SILENT_MIX = {"silent": "true"}  # loudnorm_filter's `measured` for a mix of digital silence
SILENT_LUFS = -70.0  # EBU R128's absolute gate: a mix measured below it has nothing to normalise


def _loudnorm_block(lines: list[str] | str) -> dict | None:
    """The last JSON object loudnorm printed (print_format=json), decoded, or None."""
    import json
    text = lines if isinstance(lines, str) else "\n".join(lines)
    start, end = text.rfind("{"), text.rfind("}")
    if start < 0 or end < start:
        return None
    try:
        data = json.loads(text[start:end + 1])
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def mix_is_silent(lines: list[str] | str) -> bool:
    """True when a loudnorm analysis (build_mix_loudness_command's output) measured the mix as
    silent: input_i -inf or below SILENT_LUFS."""
    try:
        i = float((_loudnorm_block(lines) or {}).get("input_i"))
    except (TypeError, ValueError):
        return False
    return math.isnan(i) or i < SILENT_LUFS


def parse_loudnorm_json(lines: list[str] | str) -> dict[str, str] | None:
    """The JSON block loudnorm prints after an analysis pass (input_i, input_tp, input_lra,
    input_thresh, target_offset, ...), or None."""
    data = _loudnorm_block(lines)
    needed = ("input_i", "input_tp", "input_lra", "input_thresh", "target_offset")
    if data is None or not all(k in data for k in needed):
        return None
    for k in needed:
        try:
            if not math.isfinite(float(data[k])):
                return None
        except (TypeError, ValueError):
            return None
    return data


def build_loudnorm_apply_command(ffmpeg: str, mp4: str, plan: RenderPlan, measured: Mapping[str, str],
                                 out_mp4: str) -> list[str]:
    """argv of the second pass: the video stream copied, the audio re-normalised with loudnorm in
    linear mode from the analysis values (a plain gain when the true-peak ceiling, the render's own
    loudnorm_ceiling_db, allows it)."""
    af = (f"{loudnorm_filter(plan, measured)},"
          f"aresample={AUDIO_RATE},asetpts=N/SR/TB,aformat=sample_fmts=fltp:channel_layouts=stereo")
    return [ffmpeg, "-hide_banner", "-nostdin", "-loglevel", "error", "-i", mp4, "-map", "0:v", "-map", "0:a",
            "-c:v", "copy", "-af", af, "-c:a", "aac", "-b:a", AUDIO_BITRATE, "-ar", str(AUDIO_RATE), "-ac", "2",
            "-movflags", "+faststart", "-t", fmt_s(plan.total_s), "-progress", "pipe:1", "-nostats", "-y",
            out_mp4]
