"""The timeline (pure): scene streams [v<i>] joined with their transitions into [tl], and where a
segmented render cuts it.

Each transition is a short xfade segment (offset 0) between frame-exact trims of the scenes, then
ONE concat of all segments (timeline_graph). More scenes than one graph should hold (memory per
scene: scene_memory_mb, MB) are rendered in segments (segment_cuts, segment_frames); frames are
whole output frames at plan.fps.
"""
from __future__ import annotations

from render_job.graph.common import fmt_s
from render_job.plan import RenderPlan, ScenePlan


def timeline_frames(plan: RenderPlan) -> tuple[list[int], list[int]]:
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
    frame it passes through (BENCHMARKS.md, "Findings still true" 3).
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
    frames, trans = timeline_frames(plan)
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


# Estimated FFmpeg memory per scene held by one graph, MB, at 1080p output (scaled by output pixels),
# measured with `make bench-segments` and tests/bench (BENCHMARKS.md, "Long storyboards in segments"): stills with Ken
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
    copy, a clip's decoder, frame pools) until it ends, so its memory grows with the scene count
    (SCENE_MB_*; BENCHMARKS.md, "Long storyboards in segments"). A segment takes scenes
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


def body_starts(plan: RenderPlan) -> list[int]:
    """The output frame where each scene's body starts (after its incoming transition): 0 for scene 0,
    then sum(frames[:j]) - sum(trans[:j - 1]); segments and parts meet there (timeline_graph)."""
    frames, trans = timeline_frames(plan)
    starts, at = [], 0
    for j in range(len(frames)):
        starts.append(at)
        # the next body starts after this scene's body and its outgoing transition (head of j+1 included)
        at += frames[j] - (trans[j - 1] if j > 0 else 0)
    return starts


def timeline_total_frames(plan: RenderPlan) -> int:
    """Frames of the whole timeline: sum of scene frames minus their transitions' overlaps."""
    frames, trans = timeline_frames(plan)
    return sum(frames) - sum(trans)


def segment_frames(plan: RenderPlan, first: int, last: int | None) -> int:
    """Frames of the timeline segment from scene `first`'s body to scene `last`'s (see timeline_graph)."""
    if not plan.scenes:
        return 0
    starts = body_starts(plan)
    end = timeline_total_frames(plan) if last is None else starts[last]
    return end - starts[first]
