"""Frame-grid timeline arithmetic shared by the spec checks and the render plan. Pure: no I/O.

Scene i lasts D_i seconds and overlaps the next one by its transition t_i (0 for a cut and for the
last scene). In exact time S_0 = 0, E_i = S_i + D_i, S_{i+1} = E_i - t_i, total = sum D - sum t.
Every boundary is put on the frame grid from that exact time (nearest frame, halves up):
start_i = round(S_i * fps), end_i = round(E_i * fps); a scene has end_i - start_i frames and a
transition end_i - start_{i+1}. Rounding therefore never accumulates: each start is within half a
frame of its exact time and the total within half a frame of the formula, for any number of scenes.
Times are exact fractions of the decimals written (Fraction("1.01") = 101/100), so sums are exact.

A scene lasts at least MIN_SCENE_FRAMES frames; a cue shows only when at least one frame of it
falls inside its scene's caption window (the scene's start up to the next scene's start). Both
rules count frames with frame_count: a length within FRAME_TOLERANCE_S of a whole number of frames
is that number (2/24 written as 0.08333333333333333 is 2 frames at 24 fps).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, Sequence

MIN_SCENE_FRAMES = 2  # xfade and Ken Burns motion need a first and a last frame
FRAME_TOLERANCE_S = Fraction(1, 1_000_000)  # 1 µs: far below a frame, far above a float's rounding


def exact(seconds: float | int | Fraction) -> Fraction:
    """`seconds` as the exact decimal it prints as (1.01 -> 101/100), not its binary float value."""
    if isinstance(seconds, Fraction):
        return seconds
    return Fraction(repr(float(seconds)))


def frame_count(seconds: float | Fraction, fps: int) -> Fraction:
    """How many frames `seconds` last at `fps`, exactly; a length within FRAME_TOLERANCE_S of a whole
    number of frames counts as that whole number (a duration written as the float k/fps)."""
    frames = exact(seconds) * fps
    whole = round(frames)
    return Fraction(whole) if abs(frames - whole) <= FRAME_TOLERANCE_S * fps else frames


def nearest_frame(seconds: Fraction, fps: int) -> int:
    """The frame index nearest to `seconds` (a half rounds up)."""
    return math.floor(seconds * fps + Fraction(1, 2))


def clamped_transition(duration_s: float | Fraction, before_s: Fraction, after_s: Fraction) -> Fraction:
    """A transition's length (seconds): the asked `duration_s`, at most half of either neighbour."""
    return max(Fraction(0), min(exact(duration_s), before_s / 2, after_s / 2))


@dataclass(frozen=True)
class FrameGrid:
    """Scene i starts at frame starts[i], lasts frames[i] frames and leaves over transitions[i]
    frames (0 for a cut and the last scene); the whole timeline is `total` frames."""

    starts: tuple[int, ...]
    frames: tuple[int, ...]
    transitions: tuple[int, ...]
    total: int


def frame_grid(durations: Sequence[Fraction], transitions: Sequence[Fraction], fps: int) -> FrameGrid:
    """Place scenes of `durations` seconds, overlapping by `transitions` seconds (one per scene, the
    last ignored), on the grid of `fps` frames per second (see the module docstring).

    Every transition must be at most half of either neighbour (clamped_transition): then the
    rounded positions keep their order, so no scene, transition or body is ever negative.
    """
    n = len(durations)
    starts: list[int] = []
    ends: list[int] = []
    s = Fraction(0)
    for i, d in enumerate(durations):
        starts.append(nearest_frame(s, fps))
        ends.append(nearest_frame(s + d, fps))
        s += d - (transitions[i] if i < n - 1 else 0)
    frames = tuple(e - a for a, e in zip(starts, ends))
    trans = tuple(ends[i] - starts[i + 1] for i in range(n - 1)) + (0,)
    return FrameGrid(starts=tuple(starts), frames=frames, transitions=trans, total=ends[-1] if ends else 0)


def short_scene_problem(duration_s: float, fps: int) -> str | None:
    """Why an explicit scene duration is too short for `fps`, or None when it is long enough."""
    if frame_count(duration_s, fps) >= MIN_SCENE_FRAMES:
        return None
    least = math.ceil(MIN_SCENE_FRAMES * 1000 / fps) / 1000
    return (f"{duration_s:g} s is shorter than {MIN_SCENE_FRAMES} frames at {fps} fps "
            f"(a scene lasts at least {least:g} s at this rate)")


def cue_span(window_s: float, start_s: float, end_s: float, fps: int) -> tuple[float, float] | None:
    """A timed cue's part that shows: (start, end) seconds after its scene's start, cut at
    `window_s` (where the next scene starts), or None when less than one frame of it is left."""
    end = min(end_s, window_s)
    return (start_s, end) if frame_count(end - start_s, fps) >= 1 else None


def cue_problem(window_s: float | None, start_s: float, end_s: float, fps: int) -> str | None:
    """Why a timed cue cannot show (None when it can). window_s: where the next scene starts, in
    seconds after this scene's start (None: not known yet, only the cue's own length is checked)."""
    frame = 1.0 / fps
    if frame_count(end_s - start_s, fps) < 1:
        return (f"lasts {end_s - start_s:.3f} s, shorter than one frame at {fps} fps ({frame:.3f} s): "
                "it would show on no frame")
    if window_s is None or cue_span(window_s, start_s, end_s, fps) is not None:
        return None
    if start_s >= window_s:
        return (f"starts {start_s:g} s into its scene, at or after the next scene's start "
                f"({window_s:.3f} s into this scene): it would show on no frame")
    return (f"only {window_s - start_s:.3f} s of it is left before the next scene starts ({window_s:.3f} s "
            f"into this scene), less than one frame at {fps} fps: it would show on no frame")


def frame_problems(scenes: Sequence[Any], fps: int, default_s: float) -> list[str]:
    """"path: message" for each spec scene shorter than MIN_SCENE_FRAMES and each timed cue that would
    show on no frame at `fps` (scenes: shared.spec.Scene objects; default_s: the length of a still,
    colour or title scene without duration or narration).

    A cue cut by the next scene's start is checked when every scene's length is known from the spec
    (explicit, or `default_s`), by the render plan's own rule (same grid, cue_span); otherwise the
    render job reports it as a warning once the narration and clip lengths are known.
    """
    problems: list[str] = []
    lengths: list[Fraction | None] = []
    cues = [(s.caption.cues if s.caption is not None else None) or [] for s in scenes]
    for i, scene in enumerate(scenes):
        if scene.duration is not None and (why := short_scene_problem(scene.duration, fps)):
            problems.append(f"scenes[{i}].duration: {why}")
        for k, cue in enumerate(cues[i]):
            if why := cue_problem(None, cue.start_s, cue.end_s, fps):
                problems.append(f"scenes[{i}].caption.cues[{k}]: {why}")
        if scene.duration is not None:
            lengths.append(exact(scene.duration))
        elif scene.narration is None and scene.visual.type != "video":
            lengths.append(exact(default_s))
        else:
            lengths.append(None)
    if problems or not any(cues) or any(d is None for d in lengths):
        return problems
    known: list[Fraction] = [d for d in lengths if d is not None]
    n = len(scenes)
    trans = [clamped_transition(s.transition.duration, known[i], known[i + 1])
             if i < n - 1 and s.transition is not None and s.transition.type != "cut" else Fraction(0)
             for i, s in enumerate(scenes)]
    grid = frame_grid(known, trans, fps)
    for i in range(n):
        window = ((grid.starts[i + 1] if i + 1 < n else grid.total) - grid.starts[i]) / fps
        for k, cue in enumerate(cues[i]):
            if why := cue_problem(window, cue.start_s, cue.end_s, fps):
                problems.append(f"scenes[{i}].caption.cues[{k}]: {why}")
    return problems
