"""What part of a clip a scene reads, checked against what the probe measured (pure, no I/O).

FFmpeg opens a clip scene's file at trimStartS after its first picture and reads the scene's length
(render_job.graph.scenes.clip_input); it keeps only the frames that START at or after that point, and its
sound chain needs at least one sample to produce any. In containers without a seek index (MPEG-TS,
MPEG-PS, AVI, FLV...) that seek lands near the point but decoding starts at the next keyframe, so
such clips are opened `clip_preroll_s` earlier and cut exactly in the filter graph.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

# less sound than this in the part of a clip that is read counts as none (an empty clip sound chain
# ends the render with "Input contains NaN" at the AAC encoder)
CLIP_SOUND_MIN_S = 0.001
SEEK_TOLERANCE_S = 1e-6  # -ss is cut to whole microseconds

# Demuxers whose seek starts decoding at a keyframe at or before the point (FFmpeg then drops the
# frames before it): measured frame-exact, read from the trim point itself.
EXACT_SEEK_FORMATS = ("mov,mp4,m4a,3gp,3g2,mj2", "matroska,webm")
# Elementary streams without timestamps to seek by: always read from the start.
NO_SEEK_FORMATS = ("h264", "hevc", "vvc", "mpegvideo", "m4v", "cavsvideo")
# Read this much before the trim point elsewhere: longer than x264's default 250-frame GOP at 24 fps
SEEK_PREROLL_S = 12.0


def _get(info: Any, name: str) -> Any:
    value = getattr(info, name, None)
    if value is None and isinstance(info, Mapping):
        value = info.get(name)
    return value


def clip_sound_in_window(info: Any, trim_s: float, read_s: float) -> bool:
    """Whether a clip's sound has any of the part read: `read_s` seconds from `trim_s` after its
    first picture. `info`: MediaInfo-like (video_start_s; audio_start_s..audio_end_s: the sound, on
    the file's timeline, seconds). True when the probe does not say (the sound is then mixed)."""
    v0, a0, a1 = _get(info, "video_start_s"), _get(info, "audio_start_s"), _get(info, "audio_end_s")
    if v0 is None or a0 is None or a1 is None:
        return True
    w0 = float(v0) + trim_s
    return float(a1) > w0 + CLIP_SOUND_MIN_S and float(a0) < w0 + read_s - CLIP_SOUND_MIN_S


def trim_problem(vis: Any, info: Any) -> str | None:
    """Why a clip visual's trimStartS / trimEndS (seconds from its first picture) leave less than one
    frame of its picture, or None. `vis`: the spec's VideoVisual; `info`: its MediaInfo (the readable
    picture length video_duration_s, fps).

    A trim past the start of the last frame (the readable length minus one frame at the probe's fps)
    would leave the scene without picture, as would a trimStartS..trimEndS span under one frame."""
    clip_end = _get(info, "video_duration_s") or _get(info, "duration_s")
    if clip_end is None:
        return None
    trim = float(vis.trim_start_s)
    if trim >= clip_end:
        return f"trimStartS {trim:g} s is past the clip's end ({clip_end:.3f} s)"
    fps = _get(info, "fps")
    if not fps:
        return None
    frame_s = 1.0 / fps
    last = max(0.0, clip_end - frame_s)
    if trim > last + SEEK_TOLERANCE_S:
        return (f"trimStartS {trim:g} s leaves less than one frame of the clip: its picture lasts "
                f"{clip_end:.3f} s and its last frame starts at {last:.3f} s")
    if vis.trim_end_s is not None and min(float(vis.trim_end_s), clip_end) - trim < frame_s - SEEK_TOLERANCE_S:
        return (f"trimStartS {trim:g} s to trimEndS {float(vis.trim_end_s):g} s is shorter than one frame of "
                f"the clip ({frame_s:.3f} s at {fps:g} fps)")
    return None


def clip_preroll_s(info: Any, seek_s: float) -> float:
    """Seconds (0..seek_s) a clip is opened before its trim point `seek_s` (seconds after its first
    picture: never opened before it), so that decoding reaches a keyframe before it. `info`: MediaInfo-like
    (format_name, FFmpeg's demuxer name); 0 for the EXACT_SEEK_FORMATS and when the probe does not
    say, all of seek_s for NO_SEEK_FORMATS, else up to SEEK_PREROLL_S."""
    fmt = _get(info, "format_name")
    if not fmt or fmt in EXACT_SEEK_FORMATS or seek_s <= 0:
        return 0.0
    return seek_s if fmt in NO_SEEK_FORMATS else min(seek_s, SEEK_PREROLL_S)
