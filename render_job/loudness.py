"""Loudness: the mix analysed before the render, the output measured after it, and a second pass
when the render missed the target (argv builders, parsers of FFmpeg's output, and the runs).

Units: integrated loudness in LUFS, true peak in dBTP, loudness range (LRA) in LU. The gain
itself is part of the graph (render_job.graph.audio.loudnorm_filter). Both analyses (the mix's and
the second pass's) are loudnorm's: its target_offset (how far its own dynamic pass falls short) is
what a dynamic render needs to land on the target. Parsers return None
for output they cannot read; the runs raise what render_job.runner.run_ffmpeg raises.
"""
from __future__ import annotations

import json
import math
import os
from typing import Mapping

from shared import logs

from render_job.graph.audio import (AUDIO_BITRATE, AUDIO_RATE, PCM_PIPE_IN, PCM_PIPE_OUT, SILENT_MIX, audio_mix,
                                    clip_audio_inputs, loudnorm_filter, loudnorm_is_linear)
from render_job.graph.command import GRAPH_FILE, graph_via_file
from render_job.graph.common import fmt_s
from render_job.plan import RenderPlan
from render_job.runner import SegmentFeed, run_ffmpeg

LOUDNESS_TOLERANCE_LU = 1.0   # a single-pass result further than this from the target gets a second pass
TRUE_PEAK_TOLERANCE_DB = 0.5  # ... as does a true peak more than this above the ceiling
SILENT_LUFS = -70.0  # EBU R128's absolute gate: a mix measured below it has nothing to normalise


def build_mix_loudness_command(plan: RenderPlan, inputs: Mapping[str, str],
                               ffmpeg: str = "ffmpeg") -> tuple[list[str], list[str]] | None:
    """argvs of the analysis run before the render, two processes joined by a pipe: (the mix run:
    the render's own mix, audio_mix: same inputs, same graph up to the gain, as raw PCM on stdout,
    PCM_PIPE_OUT; the measuring run: that PCM from stdin into loudnorm's analysis, JSON on stderr:
    parse_loudnorm_json; pass it to graph.command.build_command(loudness=...)). None when the plan
    has no audio. Two processes: the mix and the analysis overlap on two cores. Not ebur128 (twice
    as fast): it has no target_offset, and without it a dynamic render lands ~0.5 LU under the
    target (BENCHMARKS.md, Audio mix cost).

    Raises:
        KeyError: a src of the plan's audio is missing from `inputs`.
    """
    args: list[str] = [ffmpeg, "-hide_banner", "-nostdin", "-loglevel", "error"]
    clip_args, clip_inputs = clip_audio_inputs(plan, inputs)
    args += clip_args
    mix_args, graph, mix, _ = audio_mix(plan, inputs, len(clip_inputs), clip_inputs)
    if mix is None:
        return None
    graph.append(f"{mix}anull[aout]")
    mix_argv = args + mix_args + ["-filter_complex", ";".join(graph), "-map", "[aout]", "-vn", "-sn", *PCM_PIPE_OUT]
    measure_argv = [ffmpeg, "-hide_banner", "-nostdin", "-nostats", "-loglevel", "info", *PCM_PIPE_IN,
                    "-af", f"{loudnorm_filter(plan)}:print_format=json", "-f", "null", "-progress", "pipe:1", "-"]
    return mix_argv, measure_argv


def build_loudness_measure_command(ffmpeg: str, mp4: str) -> list[str]:
    """argv measuring `mp4`'s audio with ebur128 (EBU R128: integrated loudness, LRA, true peak).
    The summary is printed on stderr at the end (parse it with parse_ebur128_summary)."""
    return [ffmpeg, "-hide_banner", "-nostdin", "-nostats", "-loglevel", "info", "-i", mp4, "-vn", "-sn",
            "-af", "ebur128=peak=true:framelog=verbose", "-f", "null", "-progress", "pipe:1", "-"]


def build_loudnorm_analysis_command(ffmpeg: str, mp4: str, plan: RenderPlan) -> list[str]:
    """argv of loudnorm's analysis pass over `mp4`'s audio (JSON on stderr: parse_loudnorm_json)."""
    return [ffmpeg, "-hide_banner", "-nostdin", "-nostats", "-loglevel", "info", "-i", mp4, "-vn", "-sn",
            "-af", f"{loudnorm_filter(plan)}:print_format=json", "-f", "null", "-progress", "pipe:1", "-"]


def build_loudnorm_apply_command(ffmpeg: str, mp4: str, plan: RenderPlan, measured: Mapping[str, str],
                                 out_mp4: str, video: bool = True) -> list[str]:
    """argv of the second pass: the video stream copied, the audio re-normalised from loudnorm's
    analysis values by loudnorm_filter (one constant gain, `volume`, when the true-peak ceiling, the
    render's own loudnorm_ceiling_db, allows it; else loudnorm's dynamic mode). video=False: `mp4` is audio only (a parallel render's audio,
    render_job.part_render)."""
    af = (f"{loudnorm_filter(plan, measured)},"
          f"aresample={AUDIO_RATE},asetpts=N/SR/TB,aformat=sample_fmts=fltp:channel_layouts=stereo")
    streams = ["-map", "0:v", "-map", "0:a", "-c:v", "copy"] if video else ["-map", "0:a"]
    return [ffmpeg, "-hide_banner", "-nostdin", "-loglevel", "error", "-i", mp4, *streams, "-af", af,
            "-c:a", "aac", "-b:a", AUDIO_BITRATE, "-ar", str(AUDIO_RATE), "-ac", "2",
            "-movflags", "+faststart", "-t", fmt_s(plan.total_s), "-progress", "pipe:1", "-nostats", "-y",
            out_mp4]


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


def _loudnorm_block(lines: list[str] | str) -> dict | None:
    """The last JSON object loudnorm printed (print_format=json), decoded, or None."""
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


def mix_loudness(exe: str, workdir: str, plan: RenderPlan, local: dict[str, str], job_id: str) -> dict | None:
    """Analyse the render's mix before the render (build_mix_loudness_command: the mix piped into
    loudnorm's analysis), so that the render applies one constant gain where it can (loudnorm_filter). Returns
    loudnorm's analysis (parse_loudnorm_json), SILENT_MIX for a mix of digital silence (no gain: loudnorm's
    would make NaN samples), or None (no audio, or no readable result: the render then uses dynamic
    loudnorm). Raises what run_ffmpeg raises (a failed mix run: its own error)."""
    argvs = build_mix_loudness_command(plan, local, ffmpeg=exe)
    if argvs is None:
        return None
    mix_argv, graph_files = graph_via_file(argvs[0], name=f"mix_{GRAPH_FILE}")
    for name, text in graph_files.items():
        with open(os.path.join(workdir, name), "w", encoding="utf-8") as fh:
            fh.write(text)
    lines = run_ffmpeg(argvs[1], cwd=workdir, total_s=plan.total_s, what="ffmpeg mix loudness analysis",
                       job_id=job_id, feed=SegmentFeed([mix_argv], cwd=workdir, what="ffmpeg mix"))
    if mix_is_silent(lines):
        logs.info("mix is silent: no loudness normalisation", job_id=job_id)
        return SILENT_MIX
    analysis = parse_loudnorm_json(lines)
    if analysis is None:
        logs.info("mix loudness not measurable: dynamic loudnorm", job_id=job_id)
        return None
    logs.info("mix loudness", job_id=job_id, inputI=analysis["input_i"], inputTp=analysis["input_tp"],
              inputLra=analysis["input_lra"], linear=loudnorm_is_linear(plan, analysis))
    return analysis


def output_loudness(exe: str, workdir: str, out_mp4: str, plan: RenderPlan,
                    second_pass_fits: bool = True, video: bool = True) -> tuple[dict | None, int]:
    """Measure the output's loudness (ebur128); when the render's loudnorm (one linear gain from
    mix_loudness, or dynamic where that is impossible) missed the target
    (loudness_needs_second_pass), re-normalise the audio with a linear two-pass loudnorm (video
    copied) and measure again.

    video=False: `out_mp4` holds audio only (a parallel render's audio file; any MP4 extension).
    Returns:
        ({integratedLufs, truePeakDb, lra} or None if unmeasurable, the number of loudnorm passes).
    """
    def measure() -> dict | None:
        lines = run_ffmpeg(build_loudness_measure_command(exe, out_mp4), cwd=workdir, total_s=plan.total_s,
                           what="ffmpeg loudness measurement")
        return parse_ebur128_summary(lines)

    measured = measure()
    if measured is None:
        logs.warning("could not measure the output's loudness")
        return None, 1
    passes = 1
    needs_second_pass = loudness_needs_second_pass(measured, plan.loudness_lufs, plan.true_peak_db)
    if needs_second_pass and not second_pass_fits:  # a second copy of the MP4 would not fit in memory
        logs.warning("loudness second pass skipped: two copies of the video would not fit in the task's memory")
    elif needs_second_pass:
        lines = run_ffmpeg(build_loudnorm_analysis_command(exe, out_mp4, plan), cwd=workdir,
                           total_s=plan.total_s, what="ffmpeg loudnorm analysis")
        analysis = parse_loudnorm_json(lines)
        if analysis is not None:
            fixed = "output-2pass" + os.path.splitext(out_mp4)[1]
            run_ffmpeg(build_loudnorm_apply_command(exe, out_mp4, plan, analysis, fixed, video), cwd=workdir,
                       total_s=plan.total_s, what="ffmpeg loudnorm second pass")
            os.replace(os.path.join(workdir, fixed), os.path.join(workdir, out_mp4))
            first, measured, passes = measured, (measure() or measured), 2
            logs.info("loudness corrected by a second pass", firstPass=first, secondPass=measured)
    logs.info("output loudness", passes=passes, targetLufs=plan.loudness_lufs, **measured)
    return {k: (round(v, 1) if math.isfinite(v) else None) for k, v in measured.items()}, passes
