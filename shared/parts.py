"""How many parts an export renders in (issue 19): the one home of the count rule, used by dispatch
(shared.service, from the spec alone) and by the render job (render_job/handoff.py). Pure: no I/O.

Dispatch knows no probe (no FFmpeg in functions): a scene whose length comes from its narration or
clip is counted at its least (shared.timeline.least_grid, the rule export_start's length check
uses). So the estimate never exceeds the real length: an export that takes the parallel path is
truly at least RENDER_PARALLEL_AFTER_S long (a short export is never made slower), and K is a
lower bound of what the real length would allow. K is an upper bound for the tasks (plan_parts
may cut fewer parts where scenes are long, never more).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from shared.spec import parse_spec
from shared.timeline import least_grid


def part_count(total_s: float, threshold_s: float, cap: int, min_part_s: float) -> int:
    """How many parts an export of `total_s` seconds gets: 1 below `threshold_s` (today's single
    task) or when cap <= 1; else as many parts of at least min_part_s as fit, at most `cap`
    (plan_parts may still make fewer where scenes are long). Seconds throughout."""
    if cap <= 1 or total_s < threshold_s or min_part_s <= 0:
        return 1
    return max(1, min(int(cap), int(total_s // min_part_s)))


def least_total_s(spec: dict[str, Any]) -> float:
    """The stored (canonical) spec's output length at its least, seconds (see the module docstring).
    Raises InvalidRequest when the spec does not parse (it did at export_start)."""
    parsed = parse_spec(spec)
    fps = int(parsed.output.fps)
    grid, _ = least_grid(parsed.scenes, fps)
    return grid.total / fps


def planned_parts(spec: dict[str, Any], threshold_s: float, cap: int, min_part_s: float) -> int:
    """The part count dispatch asks for (RENDER_PARALLEL_AFTER_S, RENDER_MAX_PARTS, RENDER_MIN_PART_S):
    part_count of least_total_s(spec)."""
    return part_count(least_total_s(spec), threshold_s, cap, min_part_s)


# -- pieces and progress of a parallel render ---------------------------------------------------------
_STAGE_RANK = {"preparing": 0, "rendering": 1, "stitching": 2, "uploading": 3}
RENDER_SHARE = (0.05, 0.85)  # job progress while the parts render: 0.05 + 0.85 x their mean
STITCH_SHARE = {"stitching": (0.90, 0.05), "uploading": (0.95, 0.05)}  # (from, span) of the stitch's stages


@dataclass(frozen=True)
class Pieces:
    """The pieces of a parallel render found in the output bucket, as counted (shared.part_store).

    told: K, the part count the render execution was told (its upper bound); video: {part index:
    (k of its metadata, frames or None)}; audio_k: the audio piece's k, None until it is in.
    """

    told: int
    video: dict[int, tuple[int, int | None]] = field(default_factory=dict)
    audio_k: int | None = None

    @property
    def count(self) -> int:
        """k: the parts the plan cut (every piece names it), K until a video piece is in."""
        return max((k for k, _ in self.video.values()), default=self.told)

    def rendered(self) -> int:
        """How many of the count's video parts are in."""
        return sum(1 for i, (k, _) in self.video.items() if k == self.count and i < self.count)

    def complete(self) -> bool:
        """Every video part 0..k-1 is in, all naming the same k <= K, and the audio is in naming that
        k too (the stitch refuses an audio cut for another plan)."""
        k = self.count
        return (self.audio_k == k and 1 <= k <= self.told and len(self.video) == k
                and all(i < k and pk == k for i, (pk, _) in self.video.items()))

    def missing(self) -> list[str]:
        """What keeps the set from complete(): "part i" for each part not in, "part i (cut for n
        parts)" for one naming another k, then the audio likewise. Empty only when complete()."""
        k = self.count
        out = [f"part {i}" if i not in self.video else f"part {i} (cut for {self.video[i][0]} parts, not {k})"
               for i in range(k) if self.video.get(i, (None,))[0] != k]
        out += [f"part {i} (beyond the {k} parts)" for i in sorted(self.video) if i >= k]
        if self.audio_k != k:
            out.append("the audio" if self.audio_k is None else f"the audio (cut for {self.audio_k} parts, not {k})")
        return out

    def view(self) -> dict[str, Any]:
        """export_status `parts`: {count, rendered, audio} (responses.PartsView)."""
        return {"count": self.count, "rendered": self.rendered(), "audio": self.audio_k is not None}


def stage_rank(stage: str | None) -> int:
    """Stages of a job only go forward: preparing < rendering < stitching < uploading (-1: none)."""
    return _STAGE_RANK.get(stage or "", -1)


def job_stage(role: str, stage: str | None) -> str | None:
    """The job's stage told by a task's report: a part or audio task is the job's rendering (its own
    upload of a piece included), or preparing; the stitch's stages are the job's."""
    if role == "stitch":
        return stage if stage in STITCH_SHARE else "stitching"
    return "preparing" if stage == "preparing" else ("rendering" if stage else None)


def render_progress(pieces: Pieces, tasks: dict[tuple[str, int], float]) -> float:
    """The job's progress while its parts render: 0.05 + 0.85 x the mean over the k video parts and
    the audio task of each one's own progress (1 once its piece is in). tasks: {(role, index):
    the task's own progress 0..1}; the audio task's index is K."""
    k = pieces.count
    done = [1.0 if i in pieces.video else tasks.get(("part", i), 0.0) for i in range(k)]
    done.append(1.0 if pieces.audio_k is not None else tasks.get(("audio", pieces.told), 0.0))
    base, span = RENDER_SHARE
    return base + span * sum(min(1.0, max(0.0, p)) for p in done) / len(done)


def stitch_progress(stage: str | None, own: float | None) -> float:
    """The job's progress while the stitch runs: 0.90 + 0.05 x its own while stitching, 0.95 + 0.05 x
    its own while uploading."""
    base, span = STITCH_SHARE.get(stage or "", STITCH_SHARE["stitching"])
    return base + span * min(1.0, max(0.0, own or 0.0))
