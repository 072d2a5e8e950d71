"""Loudness normalisation is one constant gain over the whole export (no pumping): the mix is analysed
before the render and loudnorm applies it linearly (render_job.ffmpeg.loudnorm_filter).

Trial 4, F3: a quiet music bed under an opening without narration was boosted by ~30 dB by the
dynamic single-pass loudnorm, then fell back once the narration started.
"""
import math

import pytest

from tests.integration.test_features import audio_samples, ff, render, spec_of, tone

pytestmark = pytest.mark.slow

OPENING_S, NARRATION_S, AFTER_S = 5.0, 3.0, 5.0  # scene 0 music only; scene 1 narration, then music only
TARGET, CEILING = -16.0, -1.5


def db(ratio):
    return 20 * math.log10(ratio)


@pytest.fixture(scope="module")
def quiet_opening(tmp_path_factory):
    d = tmp_path_factory.mktemp("quiet-media")
    # music: a 300 Hz bed peaking at -40 dBFS; narration: 1 kHz at a speech-like -6 dBFS peak
    ff("-f", "lavfi", "-i", "aevalsrc=0.01*sin(2*PI*300*t):s=48000:d=2", str(d / "bed.wav"))
    ff("-f", "lavfi", "-i", f"aevalsrc=0.5*sin(2*PI*1000*t):s=48000:d={NARRATION_S}", str(d / "voice.wav"))
    scenes = [{"id": "open", "visual": {"type": "color", "color": "#101010"}, "duration": OPENING_S},
              {"id": "talk", "visual": {"type": "color", "color": "#202020"}, "duration": NARRATION_S + AFTER_S,
               "narration": {"src": "voice.wav"}, "transition": {"type": "cut"}}]
    scenes[0]["transition"] = {"type": "cut"}
    spec = spec_of(scenes, music={"src": "bed.wav", "volume": 1.0, "loop": True, "ducking": True, "fadeInS": 0, "fadeOutS": 0})
    r = render(d, "job-quiet-opening", spec, {p.name: p.read_bytes() for p in (d / "bed.wav", d / "voice.wav")})
    r["samples"] = audio_samples(r["mp4"])
    return r


def test_quiet_music_opening_keeps_its_level_relative_to_the_rest(quiet_opening):
    s = quiet_opening["samples"]
    start = OPENING_S
    opening = tone(s, 300, 1.0, start - 0.5)                       # music alone, before any narration
    under = tone(s, 300, start + 0.5, start + NARRATION_S - 0.2)   # music under the narration (ducked)
    after = tone(s, 300, start + NARRATION_S + 1.0, start + NARRATION_S + AFTER_S - 0.5)  # music alone again
    # the same bed at the same volume before and after the narration: the same level in the output
    # (the dynamic loudnorm made the opening ~27 dB louder than the rest)
    assert abs(db(opening / after)) <= 2.0, (db(opening), db(after))
    assert db(under / after) < -6, (db(under), db(after))  # ducking still works
    # the one gain is the loudness correction: target - the mix's loudness (the narration's)
    voice = tone(s, 1000, start + 0.5, start + NARRATION_S - 0.2)
    assert db(opening / voice) == pytest.approx(db(0.01 / 0.5), abs=2.0)


def test_quiet_opening_still_on_target_in_one_pass(quiet_opening):
    loud = quiet_opening["output"]["loudness"]
    assert loud["integratedLufs"] == pytest.approx(TARGET, abs=1.0), loud
    assert loud["truePeakDb"] <= CEILING, loud
    assert quiet_opening["result"].timings["loudness_passes"] == 1  # no correction pass needed
    assert quiet_opening["result"].timings["mix_loudness_s"] > 0
