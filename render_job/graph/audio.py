"""The audio graph (pure): the mix, then loudnorm, then the output track [aout].

  narrations (48 kHz stereo, gain, cut, placed at scene start + offset) and clip sound (silence up
  to its first sample, gain, placed at the scene start) in lanes of sounds that never overlap
  (each lane one stream: sounds and exact silent gaps concatenated) -> amix of the lanes; music (looped, gain, fades,
  trimmed) ducked by sidechaincompress keyed on narration -> the gain to the target (loudnorm_filter:
  one constant gain, `volume`, when the mix's analysis allows it; else loudnorm's dynamic mode, target
  LUFS, ceiling = target dBTP - the AAC encoder's overshoot, loudnorm_ceiling_db) -> 48 kHz ->
  padded/trimmed to the total (seconds); no audio at all -> anullsrc silence (the output always has
  an AAC stereo track).
The mix's analysis and the output's measurement run in render_job.loudness. PCM_PIPE_OUT/PCM_PIPE_IN:
the raw PCM (f32le, 48 kHz stereo) one FFmpeg run writes to its stdout and the next reads from its
stdin, when the mix and what consumes it run as two processes (the analysis, the audio task).
"""
from __future__ import annotations

import math
from typing import Mapping, Sequence

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
# A sound's room in a lane beyond its planned length (seconds): the plan's narration length is the
# decoded file's, and resampling may add a few samples; a sound longer than its room would be cut at
# the next sound of its lane, so the room is generous (it only costs lanes, each O(timeline)).
LANE_SLACK_S = 0.5
SILENT_MIX = {"silent": "true"}  # loudnorm_filter's `measured` for a mix of digital silence
# A mix run's output into a pipe, and the next run's input from it: FFmpeg runs a filter graph and an
# encoder in threads of its own, yet in one process loudnorm + AAC took the sum of their times
# (BENCHMARKS.md "Audio mix cost"); as two processes joined by a pipe they overlap on two cores.
PCM_PIPE_OUT = ["-c:a", "pcm_f32le", "-ar", str(AUDIO_RATE), "-ac", "2", "-f", "f32le", "pipe:1"]
PCM_PIPE_IN = ["-f", "f32le", "-ar", str(AUDIO_RATE), "-ch_layout", "stereo", "-i", "pipe:0"]


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


def start_sample(seconds: float) -> int:
    """The sample (at AUDIO_RATE) where a sound placed at `seconds` on the timeline starts: whole
    milliseconds, rounded (the placement the mix has always had: adelay in milliseconds)."""
    return int(round(seconds * 1000)) * (AUDIO_RATE // 1000)


def lanes(pieces: Sequence[tuple[int, int]]) -> list[list[int]]:
    """Interval colouring: the indices of `pieces` ((start sample, end sample bound)) in lanes, each
    lane in start order with no two of its pieces overlapping (a piece may start where the previous
    one's bound ends); lanes are as few as the most pieces ever overlapping (greedy by start, then
    the lowest free lane). Ties keep the given order."""
    order = sorted(range(len(pieces)), key=lambda i: pieces[i][0])
    out: list[list[int]] = []
    ends: list[int] = []
    for i in order:
        start, end = pieces[i]
        lane = next((k for k, e in enumerate(ends) if e <= start), None)
        if lane is None:
            out.append([])
            ends.append(0)
            lane = len(out) - 1
        out[lane].append(i)
        ends[lane] = max(end, start)
    return out


def _lane_graph(chains: Sequence[str], starts: Sequence[int], lane: Sequence[int], label: str) -> list[str]:
    """One lane's statements: its pieces (`chains[i]`: a chain from its input, timestamps from 0) in
    a row, the first delayed to its start, each padded with silence (or cut) to exactly the samples
    up to the next piece's start, the last left whole; concatenated into `label`."""
    out, parts = [], []
    for j, i in enumerate(lane):
        chain = chains[i]
        if j == 0 and starts[i]:
            chain += f",adelay={starts[i]}S:all=1"
        if j + 1 < len(lane):
            n = starts[lane[j + 1]] - (0 if j == 0 else starts[i])
            chain += f",apad=whole_len={n},atrim=end_sample={n}"
        part = f"{label[:-1]}_{j}]" if len(lane) > 1 else label
        out.append(chain + part)
        parts.append(part)
    if len(lane) > 1:
        out.append("".join(parts) + f"concat=n={len(lane)}:v=0:a=1{label}")
    return out


def audio_mix(plan: RenderPlan, inputs: Mapping[str, str], idx: int,
              clip_inputs: Mapping[int, int]) -> tuple[list[str], list[str], str | None, int]:
    """The mix before loudness normalisation (module docstring), shared by the render and
    render_job.loudness.build_mix_loudness_command: (input args, graph statements, the mix's label
    or None without audio, next input index). Clip sound reads the already opened inputs `clip_inputs` ({scene
    index: input index}); narrations and music are opened here from input index `idx` on.

    The foreground (clip sound and narrations) is summed in lanes (lanes(), _lane_graph): each sound
    of it delayed by adelay from t=0 and all summed at once costs every sound's start in silence, the
    timeline's length times the number of sounds; a lane of sounds that never overlap, one after the
    other with exact silent gaps, costs the timeline once. The sum is the same (adding silence is exact).
    """
    total = plan.total_s
    args: list[str] = []
    graph: list[str] = []
    slack = start_sample(LANE_SLACK_S)
    chains: list[str] = []  # foreground pieces: chain from the input, timestamps from 0, no label
    bounds: list[tuple[int, int]] = []  # (start sample, end sample bound) of each
    for sc in plan.scenes:
        if sc.index not in clip_inputs:
            continue
        read_s, cut = clip_read_s(sc), clip_cut_s(sc)
        start = start_sample(sc.start)
        # async=1:first_pts=0: silence before sound that starts after the trim point (its timestamps
        # count from it, as the picture's do), so the file's sound stays with its picture
        chains.append(f"[{clip_inputs[sc.index]}:a]aresample={AUDIO_RATE}:async=1:first_pts=0,"
                      f"aformat=sample_fmts=fltp:channel_layouts=stereo,volume={sc.clip_volume:g},"
                      f"atrim={fmt_s(cut)}:{fmt_s(cut + read_s)},asetpts=PTS-STARTPTS")
        bounds.append((start, start + math.ceil(read_s * AUDIO_RATE) + slack))
    for sc in plan.scenes:
        if not sc.narration_src:
            continue
        args += ["-i", inputs[sc.narration_src]]
        chain = (f"[{idx}:a]aresample={AUDIO_RATE},aformat=sample_fmts=fltp:channel_layouts=stereo,"
                 f"volume={sc.narration_volume:g}")
        length = sc.narration_s or 0.0
        if sc.narration_cut_s is not None:
            cut = length = sc.narration_cut_s
            chain += (f",atrim=0:{fmt_s(cut)},"
                      f"afade=t=out:st={fmt_s(max(0.0, cut - NARRATION_FADE_S))}:d={fmt_s(NARRATION_FADE_S)}")
        start = start_sample(sc.start + sc.narration_offset_s)
        chains.append(chain + ",asetpts=PTS-STARTPTS")
        bounds.append((start, start + math.ceil(length * AUDIO_RATE) + slack))
        idx += 1

    starts = [b[0] for b in bounds]
    lane_labels: list[str] = []
    for k, lane in enumerate(lanes(bounds)):
        lane_labels.append(f"[alane{k}]")
        graph += _lane_graph(chains, starts, lane, lane_labels[-1])
    narr = None
    if len(lane_labels) == 1:
        narr = lane_labels[0]
    elif lane_labels:
        graph.append("".join(lane_labels) + f"amix=inputs={len(lane_labels)}:normalize=0:duration=longest"
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
    the gain (loudnorm_filter(plan, loudness)), 48 kHz stereo, exactly plan.total_s long."""
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
    """The filter bringing the mix to `plan`'s target (TP: loudnorm_ceiling_db), from `measured`
    (loudness.parse_loudnorm_json of loudnorm's analysis of the same audio: input_i, input_tp,
    input_lra, input_thresh, target_offset; strings):
    - loudnorm_is_linear(plan, measured): `volume=<target - input_i>dB`, exactly what loudnorm's
      linear mode does (one constant gain, FFmpeg af_loudnorm.c: LINEAR_MODE multiplies every sample
      by 10^((target_i - measured_i)/20)), without its 192 kHz up- and down-sampling;
    - otherwise loudnorm started from the measured values (dynamic mode: FFmpeg falls back to it
      from linear=true), LRA target raised to the mix's range;
    - None: loudnorm's dynamic mode from nothing; SILENT_MIX (loudness.mix_is_silent): no gain at
      all, the silence is kept.
    """
    if measured is not None and measured.get("silent"):
        return "anull"  # digital silence: loudnorm's gain would be infinite (NaN samples, AAC refuses them)
    head = f"loudnorm=I={plan.loudness_lufs:g}:TP={loudnorm_ceiling_db(plan):g}"
    if measured is None:
        return f"{head}:LRA={LOUDNESS_RANGE}"
    if loudnorm_is_linear(plan, measured):
        return f"volume={plan.loudness_lufs - float(measured['input_i']):.2f}dB"
    lra = float(measured["input_lra"])
    # FFmpeg also refuses linear mode when the input's range exceeds the LRA target (a constant gain
    # keeps the range anyway), and reads measured_LRA=0 as "not measured": a steady mix has LRA 0.00
    return (f"{head}:LRA={_lra_target(lra):g}:measured_I={measured['input_i']}:measured_TP={measured['input_tp']}"
            f":measured_LRA={max(lra, 0.01):g}:measured_thresh={measured['input_thresh']}"
            f":offset={measured['target_offset']}:linear=true")


def _lra_target(measured_lra: float) -> float:
    return min(MAX_LOUDNESS_RANGE, max(float(LOUDNESS_RANGE), math.ceil(measured_lra)))


def loudnorm_is_linear(plan: RenderPlan, measured: Mapping[str, str]) -> bool:
    """True when one constant gain brings `measured` to the target (loudnorm's own test for its
    linear mode, which loudnorm_filter then applies as `volume`): the gain target - input_i keeps
    input_tp under the ceiling (loudnorm_ceiling_db) and the range fits loudnorm's LRA target."""
    i, tp = float(measured["input_i"]), float(measured["input_tp"])
    lra, thresh = float(measured["input_lra"]), float(measured["input_thresh"])
    return (thresh != -70 and i != 0 and tp + plan.loudness_lufs - i <= loudnorm_ceiling_db(plan)
            and lra <= _lra_target(lra))
