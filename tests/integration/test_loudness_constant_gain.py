"""Loudness normalisation is one constant gain over the whole export (no pumping): the mix is analysed
before the render and loudnorm applies it linearly (render_job.graph.audio.loudnorm_filter).

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


def render_quiet_opening(d, voice_expr):
    """A -40 dBFS 300 Hz bed alone for OPENING_S, then `voice_expr` (aevalsrc) narrated over it."""
    ff("-f", "lavfi", "-i", "aevalsrc=0.01*sin(2*PI*300*t):s=48000:d=2", str(d / "bed.wav"))
    ff("-f", "lavfi", "-i", f"aevalsrc=exprs='{voice_expr}':s=48000:d={NARRATION_S}", str(d / "voice.wav"))
    scenes = [{"id": "open", "visual": {"type": "color", "color": "#101010"}, "duration": OPENING_S,
               "transition": {"type": "cut"}},
              {"id": "talk", "visual": {"type": "color", "color": "#202020"}, "duration": NARRATION_S + AFTER_S,
               "narration": {"src": "voice.wav"}}]
    music = {"src": "bed.wav", "volume": 1.0, "loop": True, "ducking": True, "fadeInS": 0, "fadeOutS": 0}
    spec = spec_of(scenes, music=music)
    r = render(d, f"job-{d.name}", spec, {p.name: p.read_bytes() for p in (d / "bed.wav", d / "voice.wav")})
    r["samples"] = audio_samples(r["mp4"])
    return r


@pytest.fixture(scope="module")
def quiet_opening(tmp_path_factory):
    # narration: 1 kHz at a speech-like -6 dBFS peak (one gain keeps the true peak under the ceiling)
    return render_quiet_opening(tmp_path_factory.mktemp("quiet"), "0.5*sin(2*PI*1000*t)")


@pytest.fixture(scope="module")
def peaky_narration(tmp_path_factory):
    # -20 dBFS tone with a -2 dBFS click every 0.25 s: the gain to -16 LUFS would put the peaks over
    # the -1.5 dBTP ceiling, so loudnorm cannot go linear (FFmpeg falls back to its dynamic mode)
    return render_quiet_opening(tmp_path_factory.mktemp("peaky"),
                                "0.1*sin(2*PI*1000*t)+0.8*lt(mod(t,0.25),0.0005)")


def music_levels_db(s):
    """300 Hz level (dB) of the bed alone before the narration and after it."""
    return (db(tone(s, 300, 1.0, OPENING_S - 0.5)),
            db(tone(s, 300, OPENING_S + NARRATION_S + 1.0, OPENING_S + NARRATION_S + AFTER_S - 0.5)))


def test_quiet_music_opening_keeps_its_level_relative_to_the_rest(quiet_opening):
    s = quiet_opening["samples"]
    opening, after = music_levels_db(s)  # the bed alone, before and after the narration
    # the same bed at the same volume before and after the narration: the same level in the output
    # (the blind dynamic loudnorm made the opening 27 dB louder than the rest)
    assert abs(opening - after) <= 2.0, (opening, after)
    start, end = OPENING_S + 0.5, OPENING_S + NARRATION_S - 0.2
    assert db(tone(s, 300, start, end)) < after - 6  # ducking under the narration still works
    # one gain for everything: the bed keeps its distance to the narration (-40 vs -6 dBFS in the files)
    assert opening - db(tone(s, 1000, start, end)) == pytest.approx(db(0.01 / 0.5), abs=2.0)


def test_peaky_narration_falls_back_to_dynamic_loudnorm_that_drifts_little(peaky_narration):
    opening, after = music_levels_db(peaky_narration["samples"])
    # the blind single pass: 14 dB; the dynamic fallback from the measured values: about 3 dB
    assert abs(opening - after) <= 5.0, (opening, after)
    loud = peaky_narration["output"]["loudness"]
    assert loud["integratedLufs"] == pytest.approx(TARGET, abs=1.0), loud
    assert loud["truePeakDb"] <= CEILING + 0.5, loud


def test_quiet_opening_still_on_target_in_one_pass(quiet_opening):
    loud = quiet_opening["output"]["loudness"]
    assert loud["integratedLufs"] == pytest.approx(TARGET, abs=1.0), loud
    assert loud["truePeakDb"] <= CEILING, loud
    assert quiet_opening["result"].timings["loudness_passes"] == 1  # no correction pass needed
    assert quiet_opening["result"].timings["mix_loudness_s"] > 0


@pytest.mark.parametrize("kind", ["narration", "music"])
def test_a_mix_of_digital_silence_renders_silent(tmp_path, kind):
    """A silent narration or music file is the whole mix: loudnorm's gain would be infinite (NaN
    samples, which the AAC encoder refuses: render_failed on 73c4b2d); it renders silent instead."""
    ff("-f", "lavfi", "-i", "anullsrc=r=48000:cl=mono", "-t", "2", str(tmp_path / "quiet.wav"))
    scene = {"id": "s", "visual": {"type": "color"}, "duration": 2}
    over = {"music": {"src": "quiet.wav"}} if kind == "music" else {}
    if kind == "narration":
        scene["narration"] = {"src": "quiet.wav"}
    r = render(tmp_path, f"job-silent-{kind}", spec_of([scene], **over),
               {"quiet.wav": (tmp_path / "quiet.wav").read_bytes()})
    samples = audio_samples(r["mp4"])
    assert r["output"]["durationS"] == pytest.approx(2.0, abs=0.04)
    assert len(samples) > 0 and max(abs(x) for x in samples) < 1e-4
