"""The whole-export task's handoff to a parallel render (issue 19; shared.part_lifecycle._handoff).

Dispatch picks K from the spec at its least (shared.parts): a scene whose length comes from its
narration or clip counts at its shortest, so a storyboard of narrated scenes without durations always
starts as one task. Once that task has probed the assets and planned, the real length is known: when
the settings give that length K >= 2 parts (shared.parts.part_count, the rule dispatch applies) and
the part plan really cuts two or more (render_job.part_plan.plan_parts, what every part task cuts),
the task asks the API to hand the export over. Handed over: it stops without rendering. Refused or
no answer: it renders the whole export itself, as it would have (the ask costs one request).
"""
from __future__ import annotations

from typing import Any

from shared import logs
from shared.config import Settings
from shared.parts import part_count

from render_job.part_plan import plan_parts
from render_job.plan import RenderPlan


def handoff_parts(plan: RenderPlan, settings: Settings) -> int:
    """K for the measured `plan` (RENDER_PARALLEL_AFTER_S, RENDER_MAX_PARTS, RENDER_MIN_PART_S); 1 when
    it should render as one task (too short, parallel renders off, or the plan cuts one part only)."""
    k = part_count(plan.total_s, settings.render_parallel_after_s, settings.render_max_parts,
                   settings.render_min_part_s)
    if k < 2 or len(plan_parts(plan, k, settings.render_min_part_s)) < 2:
        return 1
    return k


def hand_over(plan: RenderPlan, settings: Settings, reporter: Any, job_id: str, progress: float) -> bool:
    """Ask for the handoff when handoff_parts(plan) >= 2 (reporter: render_job.reporter.Reporter, at
    `progress` of stage preparing). Returns True when it was made: this task stops without rendering.
    False: render the whole export (a 409 also sets reporter.rejected: the caller stops as canceled)."""
    k = handoff_parts(plan, settings)
    if k < 2:
        return False
    answer = reporter.handoff(k, "preparing", progress)
    if answer:
        logs.info(f"handed over to a {k}-part render", job_id=job_id, parts=k, totalS=plan.total_s)
        return True
    if answer is None:
        logs.info("handoff not made: this task renders the whole export", job_id=job_id, parts=k,
                  totalS=plan.total_s)
    return False
