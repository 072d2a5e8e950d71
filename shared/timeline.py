"""Frame-grid timeline arithmetic shared by the spec checks and the render plan. Pure: no I/O.

Scene i lasts D_i seconds and overlaps the next one by its transition t_i (0 for a cut and for the
last scene). In exact time S_0 = 0, E_i = S_i + D_i, S_{i+1} = E_i - t_i, total = sum D - sum t.
Every boundary is put on the frame grid from that exact time (nearest frame, halves up):
start_i = round(S_i * fps), end_i = round(E_i * fps); a scene has end_i - start_i frames and a
transition end_i - start_{i+1}. Rounding therefore never accumulates: each start is within half a
frame of its exact time and the total within half a frame of the formula, for any number of scenes.
Times are exact fractions of the decimals written (Fraction("1.01") = 101/100), so sums are exact.

A scene lasts its explicit `duration`; else, with a narration, offsetS + the narration + NARRATION_PAUSE_S
rounded up to a whole frame; else, for a clip, the clip's length after trimming; else DEFAULT_SCENE_S
(scene_length: the render plan's rule, and the API's length check at start).

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
DEFAULT_SCENE_S = 4.0        # a scene with no narration, no clip and no duration
NARRATION_PAUSE_S = 0.5      # silence after narration when duration is null
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


def frames_up(seconds: float, fps: int) -> int:
    """Whole frames that cover `seconds` (within a millionth of a frame of a whole number: that number)."""
    return math.ceil(seconds * fps - 1e-6)


def length_from_probe(scene: Any) -> bool:
    """Whether the plan takes `scene`'s length from a probe: no `duration`, and a narration or a clip."""
    return scene.duration is None and (scene.narration is not None or scene.visual.type == "video")


def scene_length(scene: Any, fps: int, narration_s: float | None = None,
                 clip_s: float | None = None) -> Fraction | None:
    """`scene`'s length on the plan (exact seconds, at least MIN_SCENE_FRAMES frames; rule in the module
    docstring), or None when it depends on a probe not given (length_from_probe). scene: a
    shared.spec.Scene; narration_s: its narration's probed length (s); clip_s: its clip's picture
    after trimming (s; 0 when nothing is left: the default applies)."""
    if scene.duration is not None:
        d = exact(scene.duration)
    elif scene.narration is not None:
        if narration_s is None:
            return None
        # whole frames, rounded up: the narration is never cut
        d = Fraction(frames_up(float(scene.narration.offset_s) + narration_s + NARRATION_PAUSE_S, fps), fps)
    elif scene.visual.type == "video":
        if clip_s is None:
            return None
        d = exact(clip_s) if clip_s else exact(DEFAULT_SCENE_S)
    else:
        d = exact(DEFAULT_SCENE_S)
    return max(Fraction(MIN_SCENE_FRAMES, fps), d)


def least_scene_length(scene: Any, fps: int) -> Fraction:
    """The shortest length the plan can give `scene` whatever its probes find (exact seconds): its
    scene_length when the spec fixes it; else that of a 0 s narration (offsetS + the pause); else
    MIN_SCENE_FRAMES frames (a clip's length, or the default when none of it is left, is no shorter)."""
    known = scene_length(scene, fps)
    if known is None and scene.narration is not None:
        known = scene_length(scene, fps, narration_s=0.0)
    return known if known is not None else Fraction(MIN_SCENE_FRAMES, fps)


def transition_lengths(scenes: Sequence[Any], durations: Sequence[Fraction]) -> list[Fraction]:
    """Each scene's transition into the next (exact seconds, clamped_transition by the neighbours'
    `durations`); 0 for a cut, a 0 s or no transition, and for the last scene."""
    n, out = len(scenes), []
    for i, scene in enumerate(scenes):
        tr = scene.transition
        if i == n - 1 or tr is None or tr.type == "cut" or tr.duration <= 0:
            out.append(Fraction(0))
        else:
            out.append(clamped_transition(tr.duration, durations[i], durations[i + 1]))
    return out


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


def least_grid(scenes: Sequence[Any], fps: int) -> tuple[FrameGrid, bool]:
    """The frame grid the render plan will lay `scenes` (shared.spec.Scene objects) on, known before
    any probe: every scene at least_scene_length; and whether that is every scene's real length (no
    scene probed). Its total is the least the plan's can be: a scene d longer adds d to the scenes and
    at most d/2 to each of its two transitions (each at most half of either neighbour), so the total
    never shrinks, nor does its nearest frame."""
    lengths = [least_scene_length(s, fps) for s in scenes]
    known = not any(length_from_probe(s) for s in scenes)
    return frame_grid(lengths, transition_lengths(scenes, lengths), fps), known


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


def frame_problems(scenes: Sequence[Any], fps: int) -> list[str]:
    """"path: message" for each spec scene shorter than MIN_SCENE_FRAMES and each timed cue that would
    show on no frame at `fps` (scenes: shared.spec.Scene objects).

    A cue cut by the next scene's start is checked when every scene's length is known from the spec
    (explicit, or the default), by the render plan's own rule (same grid, cue_span); otherwise the
    render job reports it as a warning once the narration and clip lengths are known.
    """
    problems: list[str] = []
    cues = [(s.caption.cues if s.caption is not None else None) or [] for s in scenes]
    for i, scene in enumerate(scenes):
        if scene.duration is not None and (why := short_scene_problem(scene.duration, fps)):
            problems.append(f"scenes[{i}].duration: {why}")
        for k, cue in enumerate(cues[i]):
            if why := cue_problem(None, cue.start_s, cue.end_s, fps):
                problems.append(f"scenes[{i}].caption.cues[{k}]: {why}")
    if problems or not any(cues):
        return problems
    grid, known = least_grid(scenes, fps)
    if not known:
        return problems
    n = len(scenes)
    for i in range(n):
        window = ((grid.starts[i + 1] if i + 1 < n else grid.total) - grid.starts[i]) / fps
        for k, cue in enumerate(cues[i]):
            if why := cue_problem(window, cue.start_s, cue.end_s, fps):
                problems.append(f"scenes[{i}].caption.cues[{k}]: {why}")
    return problems
