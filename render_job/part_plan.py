"""The part plan of a parallel render (issue 19; pure: no I/O): which contiguous scene range each
part renders, where it sits on the output timeline, and how many parts an export gets.

Parts meet where a scene's body starts (after its incoming transition), as the segments of a
segmented render do (render_job.graph.timeline.timeline_graph, body_starts): a part holds whole
transitions, never half of one, so every part's frames are exactly the single render's frames
between two body starts. Part p renders timeline frames [first_frame, first_frame + frames);
the parts' frames add up to the timeline's.

Balance: a part's work is estimated per output frame (work_units; one unit = encoding one frame,
which dominates: BENCHMARKS.md "Findings still true" 1-3), and the parts are chosen to minimise
the largest part's work (the slowest task sets the wall time), each at least a floor of frames.
Same plan and arguments -> same parts (no randomness, no dependence on the machine).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from render_job.graph.timeline import body_starts, timeline_frames, timeline_total_frames
from render_job.plan import RenderPlan, ScenePlan

# Shortest part, seconds of output (a setting later). Every part pays fixed costs whatever its
# length: its task's start, the download and probe of its assets, FFmpeg's start and x264's
# look-ahead warm-up, and one forced IDR frame. x264's own longest GOP (keyint 250) is 8.3 s at
# 30 fps, so a part of >= 10 s adds at most about one keyframe beyond those x264 places anyway,
# and its render (~0.8 CPU s per output s on 2 cores, BENCHMARKS.md "Render speed") stays well
# above those fixed seconds.
MIN_PART_S = 10.0

# Estimated CPU per output frame, relative to encoding one frame (1.0): x264 dominates a render
# (BENCHMARKS.md, "Findings still true" 1-4: ~50 ms of CPU per 1080p frame in all, a still's zoom
# ~7 ms/frame, a pan ~6, an xfade's frame copy ~1.4 ms, decoding a clip a few ms per megapixel).
WORK_ENCODE = 1.0
WORK_STILL_MOTION = 0.15      # a Ken Burns zoom or pan over a still
WORK_STILL = 0.02             # a static still: scaled once, then the same frame
WORK_CLIP = 0.1               # a clip's decode and fit, at 1080p output
WORK_CLIP_PER_MP = 0.05       # ... plus its decoding, per megapixel of the clip's frame
WORK_CARD = 0.0               # colour and title cards (the title's text is burned like a caption)
WORK_XFADE = 0.05             # each frame of a transition: both scenes rendered, then xfade


@dataclass(frozen=True)
class PartPlan:
    """One part of a parallel render.

    index: 0-based part number (the Cloud Run task index that renders it). first_scene, last_scene:
    the scenes whose bodies it holds (inclusive): it starts at first_scene's body and ends where
    last_scene + 1's body starts (the end of the timeline for the last part), so it also holds
    last_scene's outgoing transition and reads scene last_scene + 1 for that transition's frames.
    first_frame: its first frame on the output timeline; frames: how many (whole frames at plan.fps).
    """

    index: int
    first_scene: int
    last_scene: int
    first_frame: int
    frames: int

    @property
    def end_frame(self) -> int:
        """The timeline frame after the part's last one."""
        return self.first_frame + self.frames

    def segment_bounds(self, n_scenes: int) -> tuple[int, int | None]:
        """(first, last) for timeline_graph / build_segment_command: last is the scene whose body
        starts where the part ends, None for the part that ends the timeline."""
        return self.first_scene, (self.last_scene + 1 if self.last_scene + 1 < n_scenes else None)

    @property
    def label(self) -> str:
        """What the part covers, for messages: "part 2 (scenes[3]..scenes[5])"."""
        return f"part {self.index} (scenes[{self.first_scene}]..scenes[{self.last_scene}])"


def scene_frame_work(plan: RenderPlan, sc: ScenePlan) -> float:
    """Estimated work of one output frame of scene `sc`'s own picture beyond encoding (units of
    WORK_ENCODE), by kind: a still with or without motion, a clip by its frame size, a card."""
    scale = plan.width * plan.height / (1920 * 1080)
    if sc.kind == "image":
        return (WORK_STILL_MOTION if sc.motion != "none" else WORK_STILL) * scale
    if sc.kind == "video":
        return WORK_CLIP * scale + WORK_CLIP_PER_MP * sc.src_pixels / 1e6
    return WORK_CARD


def work_units(plan: RenderPlan) -> tuple[list[int], list[float]]:
    """(frames, work) of each scene's unit: scene j's body plus its outgoing transition, the frames
    from body_starts[j] to body_starts[j + 1]. A transition frame costs both scenes' pictures and
    the xfade; every frame costs its encoding (WORK_ENCODE)."""
    frames, trans = timeline_frames(plan)
    n = len(frames)
    costs = [scene_frame_work(plan, sc) for sc in plan.scenes]
    unit_frames: list[int] = []
    unit_work: list[float] = []
    for j in range(n):
        body = frames[j] - (trans[j - 1] if j > 0 else 0) - trans[j]
        nxt = costs[j + 1] if j + 1 < n else 0.0
        unit_frames.append(body + trans[j])
        unit_work.append(body * (WORK_ENCODE + costs[j]) + trans[j] * (WORK_ENCODE + costs[j] + nxt + WORK_XFADE))
    return unit_frames, unit_work


def plan_parts(plan: RenderPlan, parts: int, min_part_s: float = MIN_PART_S) -> tuple[PartPlan, ...]:
    """Split `plan` into at most `parts` contiguous parts cut at scene-body starts, balanced by work.

    Chooses the largest k <= parts for which every part can hold at least ceil(min_part_s * fps)
    frames, then the cuts minimising the largest part's work (work_units) by dynamic programming
    over the scenes (O(k * n^2) for n scenes: the scene limit, 200 by default, keeps it < 1 s);
    ties go to the earliest cut. Deterministic.

    Args:
        plan: the RenderPlan.
        parts: the part count wanted (shared.parts.part_count); < 1 counts as 1.
        min_part_s: the shortest part, seconds of output (MIN_PART_S); a plan shorter than two such
            parts gets one part.
    Returns:
        PartPlans in timeline order, indices 0..k-1, first_frame 0 for the first, the frames adding
        up to the timeline's (timeline_total_frames). One part holding everything when k = 1.
    """
    n = len(plan.scenes)
    total = timeline_total_frames(plan)
    if n == 0:
        return ()
    floor = max(1, math.ceil(min_part_s * plan.fps - 1e-9))
    unit_frames, unit_work = work_units(plan)
    pf, pw = [0], [0.0]  # prefix sums over units
    for f, w in zip(unit_frames, unit_work):
        pf.append(pf[-1] + f)
        pw.append(pw[-1] + w)
    inf = math.inf
    # best[k][j]: the least possible largest work of units[0:j] in k parts of >= floor frames;
    # cut[k][j]: where the last of those k parts starts
    best = [[inf] * (n + 1) for _ in range(max(1, parts) + 1)]
    cut = [[-1] * (n + 1) for _ in range(max(1, parts) + 1)]
    best[0][0] = 0.0
    for k in range(1, max(1, parts) + 1):
        for j in range(1, n + 1):
            for i in range(k - 1, j):
                if best[k - 1][i] == inf or pf[j] - pf[i] < floor:
                    continue
                worst = max(best[k - 1][i], pw[j] - pw[i])
                if worst < best[k][j] - 1e-9 * max(1.0, worst):  # strictly better: ties keep the earliest cut
                    best[k][j], cut[k][j] = worst, i
    k = max((k for k in range(1, max(1, parts) + 1) if best[k][n] < inf), default=1)
    if best[k][n] == inf:  # shorter than one floor: one part anyway
        return (PartPlan(0, 0, n - 1, 0, total),)
    bounds: list[int] = [n]
    j = n
    for kk in range(k, 0, -1):
        j = cut[kk][j]
        bounds.append(j)
    bounds.reverse()  # [0, c1, ..., n]
    starts = body_starts(plan)
    out = []
    for p, (a, b) in enumerate(zip(bounds, bounds[1:])):
        end = starts[b] if b < n else total
        out.append(PartPlan(index=p, first_scene=a, last_scene=b - 1, first_frame=starts[a], frames=end - starts[a]))
    return tuple(out)
