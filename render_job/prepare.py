"""The steps every render mode shares before it renders (render_job.job's whole export, and a
parallel render's part, audio and stitch tasks): the spec read, the assets a mode needs fetched and
probed (render_job.preflight), the plan checked (length, segments, memory) and the caption files.

Which assets a mode needs (srcs, as in the spec):
- timing_srcs: every narration and clip, whatever the scene: their lengths set the scenes' durations,
  hence the whole timeline and the part plan (a clip's frame size also weighs in the part plan's
  work model, render_job.part_plan.scene_frame_work), so every task probes them to cut the same parts;
- audio_srcs: timing_srcs and the music: all the audio task mixes;
- visual_srcs(first, last): the scene visuals a part's scenes first..last read (images are never
  needed elsewhere: a still's probe only gives its pixel count, which neither the durations nor the
  part plan use).
"""
from __future__ import annotations

import json
import os
import shutil
from dataclasses import replace
from typing import Any

from shared import logs
from shared.artifacts import spec_object
from shared.config import Settings
from shared.errors import InvalidRequest, NotFound, PermanentRenderError
from shared.limits import TOO_LONG, scene_label, total_problem
from shared.spec import ExportSpec, parse_spec
from shared.timeline import length_from_probe

from render_job import memory
from render_job.graph.timeline import segment_cuts
from render_job.plan import RenderPlan
from render_job.subtitles import FONTS_DIR, fit_warnings, write_captions

OUT_MP4 = "output.mp4"  # the export's video (rendered or stitched) and its poster frame, in the work directory
POSTER_JPG = "poster.jpg"


def read_spec(storage: Any, input_bucket: str, job_id: str) -> ExportSpec:
    """jobs/{job_id}/spec.json, parsed. Raises NotFound ("spec_not_found"), InvalidRequest."""
    try:
        raw = storage.read_bytes(input_bucket, spec_object(job_id))
    except NotFound:
        raise NotFound(f"spec not found: gs://{input_bucket}/{spec_object(job_id)}",
                       code="spec_not_found") from None
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidRequest(f"spec.json is not valid JSON: {exc}") from None
    return parse_spec(data)


def timing_srcs(spec: ExportSpec) -> list[str]:
    """The narration and clip srcs of every scene, in first-use order (module docstring)."""
    out: list[str] = []
    for sc in spec.scenes:
        if sc.visual.type == "video":
            out.append(sc.visual.src)
        if sc.narration is not None:
            out.append(sc.narration.src)
    return list(dict.fromkeys(out))


def audio_srcs(spec: ExportSpec) -> list[str]:
    """timing_srcs and the music's src."""
    return timing_srcs(spec) + ([spec.music.src] if spec.music is not None and spec.music.src not in
                                timing_srcs(spec) else [])


def visual_srcs(spec: ExportSpec, first: int, last: int) -> list[str]:
    """The visual srcs of scenes first..last (inclusive, clamped to the spec), in first-use order."""
    srcs = [getattr(sc.visual, "src", None) for sc in spec.scenes[max(0, first):last + 1]]
    return list(dict.fromkeys(s for s in srcs if s))


def check_length(plan: RenderPlan, spec: ExportSpec, settings: Settings) -> None:
    """Raise PermanentRenderError "too_long" when the plan is over settings.max_total_s (lengths from
    narrations and clips are known only now: the API counted them at their least)."""
    lengths = [(scene_label(i, sc.id), sc.duration) for i, sc in enumerate(plan.scenes)]
    too_long = total_problem(plan.total_s, lengths, settings.max_total_s,
                             overlap_s=sum(sc.transition_s for sc in plan.scenes),
                             probed=any(length_from_probe(sc) for sc in spec.scenes))
    if too_long:
        raise PermanentRenderError(too_long, code=TOO_LONG)


def check_plan(plan: RenderPlan, spec: ExportSpec, workdir: str, settings: Settings,
               job_id: str) -> tuple[list[int], memory.Budget]:
    """(segment cuts, memory budget) of the plan. Raises PermanentRenderError: "too_long"
    (check_length), "memory_limit"."""
    check_length(plan, spec, settings)
    # more scenes than one FFmpeg graph should hold: the video in segments piped into one encoding run
    cuts = segment_cuts(plan, settings.render_segment_scenes)
    return cuts, memory_budget(plan, cuts, workdir, settings, job_id, spec.output.resolution)


def memory_budget(plan: RenderPlan, cuts: list[int], workdir: str, settings: Settings, job_id: str,
                  resolution: str) -> memory.Budget:
    """The render's memory budget (render_job.memory), logged; raises PermanentRenderError
    ("memory_limit") when it does not fit the task's memory."""
    limit, source = memory.task_memory_limit(settings.render_memory_bytes)
    budget = memory.budget(plan, cuts, memory.tree_bytes(os.path.join(workdir, "assets")), limit, source,
                           settings.max_output_bytes)
    logs.info("memory budget", job_id=job_id, **budget.as_log())
    memory.check_budget(budget, resolution)
    return budget


def write_caption_files(plan: RenderPlan, workdir: str) -> dict[str, str]:
    """The caption files (ASS, SRT, VTT: {kind: path}) and the fonts, in the work directory."""
    caption_paths = write_captions(plan.cues, plan.width, plan.height, workdir, style=plan.caption_style,
                                   titles=plan.titles, burn_in=plan.burn_in, fps=plan.fps)
    fonts_link = os.path.join(workdir, "fonts")
    if not os.path.exists(fonts_link):
        shutil.copytree(FONTS_DIR, fonts_link)
    return caption_paths


def with_fit_warnings(plan: RenderPlan, job_id: str) -> RenderPlan:
    """The plan, logged, with the burned-in texts drawn smaller added to its warnings (every warning
    is logged here and reported in output.warnings at the end: never silently dropped)."""
    logs.info("plan ready", job_id=job_id, totalS=plan.total_s, scenes=len(plan.scenes),
              width=plan.width, height=plan.height, fps=plan.fps, quality=plan.quality)
    smaller = fit_warnings(plan)  # burned-in text drawn smaller so that it fits the frame
    for w in plan.warnings:
        logs.warning("not shown in the video", job_id=job_id, path=w[0], reason=w[1])
    for w in smaller:
        logs.warning("burned-in text drawn smaller", job_id=job_id, path=w[0], reason=w[1])
    return replace(plan, warnings=plan.warnings + smaller)
