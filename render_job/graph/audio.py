"""The audio graph (pure): the mix, then loudnorm, then the output track [aout].

  narrations (48 kHz stereo, gain, cut, adelay to scene start + offset) and clip sound (silence up
  to its first sample, gain, adelay to the scene start) -> amix; music (looped, gain, fades,
  trimmed) ducked by sidechaincompress keyed on narration -> loudnorm (target LUFS; ceiling =
  target dBTP - the AAC encoder's overshoot, loudnorm_ceiling_db; one linear gain when the mix's
  analysis allows it: loudnorm_filter) -> 48 kHz -> padded/trimmed to the total (seconds);
  no audio at all -> anullsrc silence (the output always has an AAC stereo track).
The mix's analysis and the output's measurement run in render_job.loudness.
"""
from __future__ import annotations

import math
from typing import Mapping

from render_job.graph.common import fmt_s
from render_job.graph.scenes import clip_cut_s, clip_input, clip_read_s
from render_job.plan import RenderPlan

AUDIO_RATE = 48000
AUDIO_BITRATE = "192k"
LOUDNESS_RANGE = 11
MAX_LOUDNESS_RANGE = 50.0  # loudnorm's largest LRA target
NARRATION_FADE_S = 0.05
# The AAC encoder (192 kb/s) puts inter-sample peaks above the PCM it is given, and the longer the
# export, the more limiter hits at loudnorm's ceiling and the higher the highest (BENCHMARKS.md,
# "Loudness"). loudnorm's ceiling is the target minus the largest measured (rounded up), so the output
# stays at or below the target at any length; the tolerance is left for rarer peaks instead of being
# used up by a long export.
ENCODER_TRUE_PEAK_MARGIN_DB = 1.0
SILENT_MIX = {"silent": "true"}  # loudnorm_filter's `measured` for a mix of digital silence


def clip_audio_inputs(plan: RenderPlan, inputs: Mapping[str, str]) -> tuple[list[str], dict[int, int]]:
    """The input arguments of every clip whose own sound is mixed, and {scene index: its input's
    index among them} (audio_mix's `clip_inputs`), for an audio-only FFmpeg run."""
    args: list[str] = []
    clip_inputs: dict[int, int] = {}
    for sc in plan.scenes:
        if sc.kind == "video" and sc.clip_audio:
            args += clip_input(sc, inputs[sc.src])  # type: ignore[index]
            clip_inputs[sc.index] = len(clip_inputs)
    return args, clip_inputs


def audio_mix(plan: RenderPlan, inputs: Mapping[str, str], idx: int,
              clip_inputs: Mapping[int, int]) -> tuple[list[str], list[str], str | None, int]:
    """The mix before loudness normalisation (module docstring), shared by the render and
    render_job.loudness.build_mix_loudness_command: (input args, graph statements, the mix's label
    or None without audio, next input index). Clip sound reads the already opened inputs `clip_inputs` ({scene
    index: input index}); narrations and music are opened here from input index `idx` on.
    """
    total = plan.total_s
    args: list[str] = []
    graph: list[str] = []
    # --- audio: clip sound and narrations form the foreground (which ducks the music)
    narr_labels: list[str] = []
    for sc in plan.scenes:
        if sc.index not in clip_inputs:
            continue
        read_s, cut = clip_read_s(sc), clip_cut_s(sc)
        delay_ms = int(round(sc.start * 1000))
        # async=1:first_pts=0: silence before sound that starts after the trim point (its timestamps
        # count from it, as the picture's do), so the file's sound stays with its picture
        graph.append(f"[{clip_inputs[sc.index]}:a]aresample={AUDIO_RATE}:async=1:first_pts=0,"
                     f"aformat=sample_fmts=fltp:channel_layouts=stereo,volume={sc.clip_volume:g},"
                     f"atrim={fmt_s(cut)}:{fmt_s(cut + read_s)},asetpts=PTS-STARTPTS,adelay={delay_ms}:all=1[c{sc.index}]")
        narr_labels.append(f"[c{sc.index}]")
    for sc in plan.scenes:
        if not sc.narration_src:
            continue
        args += ["-i", inputs[sc.narration_src]]
        chain = (f"[{idx}:a]aresample={AUDIO_RATE},aformat=sample_fmts=fltp:channel_layouts=stereo,"
                 f"volume={sc.narration_volume:g}")
        if sc.narration_cut_s is not None:
            cut = sc.narration_cut_s
            chain += (f",atrim=0:{fmt_s(cut)},"
                      f"afade=t=out:st={fmt_s(max(0.0, cut - NARRATION_FADE_S))}:d={fmt_s(NARRATION_FADE_S)}")
        delay_ms = int(round((sc.start + sc.narration_offset_s) * 1000))
        chain += f",asetpts=PTS-STARTPTS,adelay={delay_ms}:all=1"
        label = f"[n{sc.index}]"
        graph.append(chain + label)
        narr_labels.append(label)
        idx += 1

    narr = None
    if len(narr_labels) == 1:
        narr = narr_labels[0]
    elif narr_labels:
        graph.append("".join(narr_labels) + f"amix=inputs={len(narr_labels)}:normalize=0:duration=longest"
                     ":dropout_transition=0[narr]")
        narr = "[narr]"

    music = None
    if plan.music is not None:
        mu = plan.music
        if mu.loop:
            args += ["-stream_loop", "-1"]
        args += ["-i", inputs[mu.src]]
        chain = (f"[{idx}:a]aresample={AUDIO_RATE},aformat=sample_fmts=fltp:channel_layouts=stereo,"
                 f"volume={mu.volume:g},atrim=0:{fmt_s(total)},asetpts=PTS-STARTPTS")
        if mu.fade_in_s > 0:
            chain += f",afade=t=in:st=0:d={fmt_s(mu.fade_in_s)}"
        if mu.fade_out_s > 0:
            chain += f",afade=t=out:st={fmt_s(max(0.0, total - mu.fade_out_s))}:d={fmt_s(mu.fade_out_s)}"
        graph.append(chain + "[mus]")
        music = "[mus]"
        idx += 1

    if narr and music:
        if plan.music and plan.music.ducking:
            graph.append(f"{narr}asplit=2[narrmix][narrkey0]")
            # finite padding: an endless key keeps some FFmpeg versions' graphs running forever
            graph.append(f"[narrkey0]apad=whole_dur={fmt_s(total)}[narrkey]")
            graph.append("[mus][narrkey]sidechaincompress=threshold=0.03:ratio=8:attack=20:release=400[duck]")
            graph.append("[narrmix][duck]amix=inputs=2:normalize=0:duration=longest:dropout_transition=0[mix]")
        else:
            graph.append(f"{narr}{music}amix=inputs=2:normalize=0:duration=longest:dropout_transition=0[mix]")
        mix = "[mix]"
    else:
        mix = narr or music
    return args, graph, mix, idx


def audio_out(plan: RenderPlan, mix: str | None, loudness: Mapping[str, str] | None = None) -> str:
    """The statement turning the mix `mix` (audio_mix's label, or None: silence) into [aout]:
    loudnorm (loudnorm_filter(plan, loudness)), 48 kHz stereo, exactly plan.total_s long."""
    total = plan.total_s
    if mix:
        # loudnorm (dynamic mode, FFmpeg 9) stamps the frames it flushes at the end 3200 samples late: a
        # gap in the timestamps, not in the sound (its samples are complete and contiguous). Left in, the
        # last ~3 s of audio play ~67 ms after the picture and the final ~67 ms are trimmed away, while
        # the stream's duration still looks right. Timestamps from the sample count (asetpts=N/SR/TB)
        # put every sample where it belongs (tests/integration/test_render.py checks the sound heard).
        return (f"{mix}{loudnorm_filter(plan, loudness)},aresample={AUDIO_RATE},asetpts=N/SR/TB,"
                f"aformat=sample_fmts=fltp:channel_layouts=stereo,"
                f"apad=whole_dur={fmt_s(total)},atrim=0:{fmt_s(total)},asetpts=PTS-STARTPTS[aout]")
    return (f"anullsrc=r={AUDIO_RATE}:cl=stereo,atrim=0:{fmt_s(total)},"
            f"aformat=sample_fmts=fltp:channel_layouts=stereo[aout]")


def loudnorm_ceiling_db(plan: RenderPlan) -> float:
    """The true-peak ceiling (dBTP) given to loudnorm, in the render and the second pass alike:
    plan.true_peak_db - ENCODER_TRUE_PEAK_MARGIN_DB, the room the AAC encoder's overshoot needs."""
    return round(plan.true_peak_db - ENCODER_TRUE_PEAK_MARGIN_DB, 2)


def loudnorm_filter(plan: RenderPlan, measured: Mapping[str, str] | None = None) -> str:
    """The loudnorm filter for `plan`'s target (TP: loudnorm_ceiling_db): dynamic mode without
    `measured`; with `measured` (loudness.parse_loudnorm_json of an analysis of the same audio)
    linear mode, i.e. one constant gain (target - input_i) over the whole stream, which FFmpeg only
    takes when that gain keeps the true peak under the ceiling (loudnorm_is_linear); otherwise it
    falls back to dynamic mode. `measured` = SILENT_MIX (loudness.mix_is_silent): no loudnorm at
    all, the silence is kept.
    """
    if measured is not None and measured.get("silent"):
        return "anull"  # digital silence: loudnorm's gain would be infinite (NaN samples, AAC refuses them)
    head = f"loudnorm=I={plan.loudness_lufs:g}:TP={loudnorm_ceiling_db(plan):g}"
    if measured is None:
        return f"{head}:LRA={LOUDNESS_RANGE}"
    lra = float(measured["input_lra"])
    # FFmpeg also refuses linear mode when the input's range exceeds the LRA target (a constant gain
    # keeps the range anyway), and reads measured_LRA=0 as "not measured": a steady mix has LRA 0.00
    return (f"{head}:LRA={_lra_target(lra):g}:measured_I={measured['input_i']}:measured_TP={measured['input_tp']}"
            f":measured_LRA={max(lra, 0.01):g}:measured_thresh={measured['input_thresh']}"
            f":offset={measured['target_offset']}:linear=true")


def _lra_target(measured_lra: float) -> float:
    return min(MAX_LOUDNESS_RANGE, max(float(LOUDNESS_RANGE), math.ceil(measured_lra)))


def loudnorm_is_linear(plan: RenderPlan, measured: Mapping[str, str]) -> bool:
    """True when loudnorm_filter(plan, measured) runs in linear mode (FFmpeg's own test): the gain
    target - input_i keeps input_tp under the ceiling (loudnorm_ceiling_db) and the range fits
    loudnorm's LRA target."""
    i, tp = float(measured["input_i"]), float(measured["input_tp"])
    lra, thresh = float(measured["input_lra"]), float(measured["input_thresh"])
    return (thresh != -70 and i != 0 and tp + plan.loudness_lufs - i <= loudnorm_ceiling_db(plan)
            and lra <= _lra_target(lra))
