"""The mix in lanes (render_job.graph.audio.audio_mix) sums the same samples as the mix it replaced:
every sound delayed from t = 0 with adelay and all summed by one amix (REFERENCE below, the graph as
it was before lanes, kept here only as the reference).

Storyboard: crossfades (1 s) between scenes, so a narration that runs into the transition overlaps
the next scene's sound; a narration with an offset, one cut at its scene's explicit end (with its
fade), a clip with its own sound under a narration (three sounds at once in a crossfade), a
narration placed at a fractional millisecond, and a short music bed looped and ducked under it all.
Both graphs' mixes (before loudnorm) are decoded as 32-bit float PCM and compared sample for sample.
"""
import re
import subprocess

import numpy as np
import pytest

from render_job.graph.audio import (AUDIO_RATE, NARRATION_FADE_S, audio_mix, clip_audio_inputs,
                                    start_sample)
from render_job.graph.common import fmt_s
from render_job.graph.scenes import clip_cut_s, clip_read_s
from render_job.plan import build_plan
from render_job.probe import probe
from render_job.runner import find_ffmpeg
from shared.spec import parse_spec

pytestmark = pytest.mark.slow

# float32 rounding: a sum of at most 3 overlapping sounds (plus music) summed in another order
MAX_DIFF = 1e-6


def reference_foreground(plan, inputs, idx, clip_inputs):
    """The foreground as audio_mix built it before lanes: (input args, statements, label, next idx)."""
    args, graph, labels = [], [], []
    for sc in plan.scenes:
        if sc.index not in clip_inputs:
            continue
        read_s, cut = clip_read_s(sc), clip_cut_s(sc)
        delay_ms = int(round(sc.start * 1000))
        graph.append(f"[{clip_inputs[sc.index]}:a]aresample={AUDIO_RATE}:async=1:first_pts=0,"
                     f"aformat=sample_fmts=fltp:channel_layouts=stereo,volume={sc.clip_volume:g},"
                     f"atrim={fmt_s(cut)}:{fmt_s(cut + read_s)},asetpts=PTS-STARTPTS,adelay={delay_ms}:all=1[c{sc.index}]")
        labels.append(f"[c{sc.index}]")
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
        graph.append(chain + f",asetpts=PTS-STARTPTS,adelay={delay_ms}:all=1[n{sc.index}]")
        labels.append(f"[n{sc.index}]")
        idx += 1
    graph.append("".join(labels) + f"amix=inputs={len(labels)}:normalize=0:duration=longest"
                 ":dropout_transition=0[narr]")
    return args, graph, "[narr]", idx


def ff(*args):
    proc = subprocess.run([find_ffmpeg(None), "-hide_banner", "-nostdin", "-v", "error", "-y", *args],
                          capture_output=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


def pcm(pre_args, graph, label):
    """The graph's `label` as interleaved stereo float32 samples."""
    raw = ff(*pre_args, "-filter_complex", ";".join(graph), "-map", label, "-f", "f32le", "-ac", "2", "pipe:1")
    return np.frombuffer(raw, dtype="<f4").reshape(-1, 2)


@pytest.fixture(scope="module")
def story(tmp_path_factory):
    d = tmp_path_factory.mktemp("lanes")
    # narrations: tones of their own pitch with a slow tremolo (no two pieces alike), various lengths
    for i, (freq, secs) in enumerate([(330, 2.6), (440, 3.4), (550, 2.2), (660, 4.0), (770, 1.7)]):
        ff("-f", "lavfi", "-i", f"aevalsrc=0.3*sin(2*PI*{freq}*t)*(0.6+0.4*sin(2*PI*1.3*t)):s=44100:d={secs}",
           "-ac", "1", str(d / f"n{i}.wav"))
    ff("-f", "lavfi", "-i", "testsrc2=s=320x240:r=30:d=5", "-f", "lavfi",
       "-i", "aevalsrc=0.2*sin(2*PI*220*t)|0.2*sin(2*PI*225*t):s=48000:d=5",
       "-c:v", "libx264", "-preset", "ultrafast", "-c:a", "aac", "-shortest", str(d / "clip.mp4"))
    ff("-f", "lavfi", "-i", "aevalsrc=0.2*sin(2*PI*110*t)*(0.5+0.5*sin(2*PI*0.7*t)):s=48000:d=1.9",
       str(d / "bed.wav"))
    fade = {"type": "fade", "duration": 1.0}
    scenes = [
        {"id": "a", "visual": {"type": "color", "color": "#101010"}, "duration": 3.0, "transition": fade,
         "narration": {"src": "n0.wav", "offsetS": 0.3}},          # runs into the crossfade: overlaps b's sounds
        {"id": "b", "visual": {"type": "video", "src": "clip.mp4", "volume": 0.7}, "duration": 3.5,
         "transition": fade, "narration": {"src": "n1.wav", "volume": 0.9}},  # clip sound + narration + a's tail
        {"id": "c", "visual": {"type": "color", "color": "#303030"}, "duration": 2.0,
         "transition": {"type": "cut"}, "narration": {"src": "n3.wav", "offsetS": 0.4}},  # cut at the end, faded
        {"id": "d", "visual": {"type": "color", "color": "#404040"}, "duration": 2.9, "transition": fade,
         "narration": {"src": "n2.wav", "offsetS": 0.0003}},       # a start between two milliseconds
        {"id": "e", "visual": {"type": "color", "color": "#505050"},
         "narration": {"src": "n4.wav", "offsetS": 0.2}},          # length from its narration
    ]
    spec = parse_spec({"version": 1, "output": {"resolution": "720p", "aspectRatio": "16:9", "fps": 30,
                                                 "quality": "draft"}, "scenes": scenes,
                       "music": {"src": "bed.wav", "volume": 0.5, "loop": True, "ducking": True,
                                 "fadeInS": 0.5, "fadeOutS": 1.0}})
    srcs = ["clip.mp4", "bed.wav"] + [f"n{i}.wav" for i in range(5)]
    probes = {s: probe(str(d / s), full=s.endswith(".wav")) for s in srcs}
    plan = build_plan(spec, probes)
    return plan, {s: str(d / s) for s in srcs}


def graphs(plan, inputs, foreground):
    """(input args, statements, mix label) of the whole mix with `foreground` building its first half."""
    clip_args, clip_inputs = clip_audio_inputs(plan, inputs)
    fg_args, fg_graph, _, idx = foreground(plan, inputs, len(clip_inputs), clip_inputs)
    if foreground is audio_mix:  # the production mix, music and ducking included
        return clip_args + fg_args, fg_graph, "[mix]"
    # the reference: today's music and ducking statements after the old foreground
    new_args, new_graph, _, _ = audio_mix(plan, inputs, len(clip_inputs), clip_inputs)
    music_at = next(i for i, st in enumerate(new_graph) if st.endswith("[mus]"))
    music_args = new_args[new_args.index("-stream_loop"):]
    assert new_graph[music_at].startswith(f"[{idx}:a]")  # the music input keeps its index
    return clip_args + fg_args + music_args, fg_graph + new_graph[music_at:], "[mix]"


def test_the_storyboard_has_what_the_lanes_must_handle(story):
    plan, _ = story
    starts = [sc.start for sc in plan.scenes]
    assert starts[1] < plan.scenes[0].start + 0.3 + 2.6  # a's narration overlaps b
    assert plan.scenes[1].clip_audio and plan.scenes[2].narration_cut_s == pytest.approx(1.6)
    assert start_sample(plan.scenes[3].start + 0.0003) % 48 == 0  # placed on whole milliseconds, as adelay did


def test_lanes_mix_equals_the_adelay_mix_sample_for_sample(story):
    plan, inputs = story
    args, graph, label = graphs(plan, inputs, audio_mix)
    assert any("[alane0][alane1][alane2]amix=inputs=3" in st for st in graph), graph  # three sounds at once: 3 lanes
    assert any("concat=n=" in st for st in graph), graph  # a lane holds several sounds in a row
    ref_args, ref_graph, ref_label = graphs(plan, inputs, reference_foreground)
    new, ref = pcm(args, graph, label), pcm(ref_args, ref_graph, ref_label)
    assert new.shape == ref.shape
    assert new.shape[0] == pytest.approx(plan.total_s * AUDIO_RATE, abs=AUDIO_RATE * 0.1)
    assert np.abs(ref).max() > 0.1  # sound, not silence
    assert float(np.abs(new - ref).max()) <= MAX_DIFF


def independent_foreground(plan, inputs):
    """The foreground summed in numpy (float64): each sound's own chain (the reference's, without
    its adelay) decoded alone, added at its delay in whole milliseconds (48 samples each)."""
    clip_args, clip_inputs = clip_audio_inputs(plan, inputs)
    args, graph, _, _ = reference_foreground(plan, inputs, len(clip_inputs), clip_inputs)
    groups, cur = [], []
    for a in clip_args + args:  # one group of input options per input, each ending in -i <path>
        cur.append(a)
        if len(cur) >= 2 and cur[-2] == "-i":
            groups.append(cur)
            cur = []
    sounds = []
    for st in graph[:-1]:
        m = re.fullmatch(r"\[(\d+):a\](.*),adelay=(\d+):all=1\[\w+\]", st)
        assert m, st
        x = pcm(groups[int(m.group(1))], [f"[0:a]{m.group(2)}[o]"], "[o]")
        sounds.append((int(m.group(3)) * 48, x))
    out = np.zeros((max(at + len(x) for at, x in sounds), 2))
    for at, x in sounds:
        out[at:at + len(x)] += x
    return out


def test_foreground_alone_is_identical(story):
    plan, inputs = story
    clip_args, clip_inputs = clip_audio_inputs(plan, inputs)
    fg_args, fg_graph, label, _ = audio_mix(plan, inputs, len(clip_inputs), clip_inputs)
    fg_graph = [st for st in fg_graph if not st.endswith(("[mus]", "[duck]", "[mix]", "[narrkey]"))
                and "asplit" not in st]
    fg_args = fg_args[:fg_args.index("-stream_loop")]
    ref_args, ref_graph, ref_label, _ = reference_foreground(plan, inputs, len(clip_inputs), clip_inputs)
    new = pcm(clip_args + fg_args, fg_graph, "[narr]")
    ref = pcm(clip_args + ref_args, ref_graph, ref_label)
    assert new.shape == ref.shape
    assert float(np.abs(new - ref).max()) <= MAX_DIFF
    # and against a mix that no FFmpeg filter placed: every sound at its sample, summed in numpy
    # (on bench-parallel's 10-minute storyboard the adelay mix put some MP3 narrations one sample early)
    ind = independent_foreground(plan, inputs)
    assert new.shape == ind.shape
    assert float(np.abs(new - ind).max()) <= MAX_DIFF
