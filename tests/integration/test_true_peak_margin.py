"""The output's true peak stays at or below the target however long the export is: loudnorm's
ceiling (the target minus render_job.graph.audio.ENCODER_TRUE_PEAK_MARGIN_DB) leaves room for the AAC
encoder's overshoot.

Issue 15: with loudnorm's ceiling at the target itself, the AAC encoder put inter-sample peaks above
it, higher the longer the export (-1.4, -1.2, -1.1 dBTP at 1, 3, 10 min for a -1.5 target; -0.9 at
30 min, past the 0.5 dB tolerance). 90 s of narration over music already comes out above the target.
"""
import pytest

from tests.integration.test_features import render, spec_of, ff
from tests.bench.storyboard import SAMPLES, NARRATIONS, MUSIC

pytestmark = pytest.mark.slow

TARGET, CEILING = -16.0, -1.5
SCENES, SCENE_S = 18, 5.0
LENGTHS_S = {"n1.wav": 5.87, "n2.mp3": 7.83, "n3.wav": 9.4, "n4.mp3": 4.72, "n5.wav": 3.27, "n6.wav": 2.8}


def narration_slices(d):
    """One narration per scene: a slice of a sample narration (its own start, length and gain)."""
    names = {}
    for i in range(SCENES):
        sample = NARRATIONS[i % len(NARRATIONS)]
        length = min(LENGTHS_S[sample], 2.5 + (i * 0.37) % 2.0)
        start = (i * 1.3) % (LENGTHS_S[sample] - length + 0.01)
        gain = 0.6 + (i * 0.29) % 0.8
        name = f"narr{i:02d}.wav"
        ff("-ss", f"{start:.2f}", "-t", f"{length:.2f}", "-i", str(SAMPLES / sample),
           "-af", f"volume={gain:.2f}", str(d / name))
        names[name] = (d / name).read_bytes()
    return names


@pytest.fixture(scope="module")
def narrated(tmp_path_factory):
    d = tmp_path_factory.mktemp("tp")
    assets = narration_slices(d)
    assets[MUSIC] = (SAMPLES / MUSIC).read_bytes()
    scenes = [{"id": f"s{i:02d}", "visual": {"type": "color", "color": "#101820"}, "duration": SCENE_S,
               "transition": {"type": "cut"}, "narration": {"src": f"narr{i:02d}.wav", "offsetS": 0.3}}
              for i in range(SCENES)]
    spec = spec_of(scenes, music={"src": MUSIC, "volume": 0.25, "loop": True, "ducking": True, "fadeOutS": 2},
                   audio={"loudnessLufs": TARGET, "truePeakDb": CEILING})
    return render(d, "job-true-peak", spec, assets)


def test_narration_over_music_keeps_its_true_peak_at_or_below_the_target(narrated):
    loud = narrated["output"]["loudness"]
    assert narrated["output"]["durationS"] == pytest.approx(SCENES * SCENE_S, abs=0.04)
    # at the target itself, not just within the 0.5 dB tolerance: the margin is the encoder's largest
    # overshoot measured over 30 minutes, so 90 s has room to spare (-1.1 dBTP on 724c0f9, -2.1 now)
    assert loud["truePeakDb"] <= CEILING, loud
    assert loud["integratedLufs"] == pytest.approx(TARGET, abs=1.0), loud
    assert narrated["result"].timings["loudness_passes"] == 1  # no second pass needed
