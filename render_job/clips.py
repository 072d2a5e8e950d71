"""What part of a clip a scene reads, checked against what the probe measured (pure, no I/O).

FFmpeg opens a clip scene's file at trimStartS after its first picture and reads the scene's length
(render_job.ffmpeg._clip_input); it keeps only the frames that START at or after that point, and its
sound chain needs at least one sample to produce any.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

# less sound than this in the part of a clip that is read counts as none (an empty clip sound chain
# ends the render with "Input contains NaN" at the AAC encoder)
CLIP_SOUND_MIN_S = 0.001
SEEK_TOLERANCE_S = 1e-6  # -ss is cut to whole microseconds


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
