"""infra.local.verify.check_timeline (the demo's and system tests' output check): subtitle cues
expected from `caption.text` and from timed `caption.cues`."""
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import pysubs2  # noqa: E402
import pytest  # noqa: E402

from infra.local.verify import check_timeline  # noqa: E402

SPEC = {"scenes": [
    {"id": "a", "duration": 3, "caption": {"text": "whole scene"}, "transition": {"type": "fade", "duration": 0.5}},
    {"id": "b", "duration": 4, "caption": {"cues": [{"startS": 0.5, "endS": 1.5, "text": "one"},
                                                     {"startS": 2.0, "endS": 4.0, "text": "two"}]},
     "transition": {"type": "cut"}},
    {"id": "c", "duration": 2},
]}
OUTPUT = {"scenes": [{"startS": 0.0, "durationS": 3.0}, {"startS": 2.5, "durationS": 4.0},
                     {"startS": 6.5, "durationS": 2.0}]}


def srt(tmp_path, cues):
    subs = pysubs2.SSAFile()
    for a, b, text in cues:
        subs.append(pysubs2.SSAEvent(start=int(a * 1000), end=int(b * 1000), text=text))
    path = tmp_path / "captions.srt"
    subs.save(str(path), format_="srt")
    return path


def test_text_and_timed_cues_are_both_expected(tmp_path):
    good = srt(tmp_path, [(0.0, 2.5, "whole scene"), (3.0, 4.0, "one"), (4.5, 6.5, "two")])
    total, problems = check_timeline(SPEC, OUTPUT, 8.5, {}, [good], 30)
    assert total == 8.5 and problems == []


def test_missing_or_misplaced_cues_are_reported(tmp_path):
    only_text = srt(tmp_path, [(0.0, 2.5, "whole scene")])
    _, problems = check_timeline(SPEC, OUTPUT, 8.5, {}, [only_text], 30)
    assert problems == ["captions.srt: 1 cues, expected 3"]
    late = srt(tmp_path, [(0.0, 2.5, "whole scene"), (3.2, 4.0, "one"), (4.5, 6.5, "two")])
    _, problems = check_timeline(SPEC, OUTPUT, 8.5, {}, [late], 30)
    assert problems == ["captions.srt cue 2: 3.200-4.000 s, expected 3.000-4.000 s"]


# Storyboards that export as documented must not be reported as problems (issue 14, item 11).
from infra.local.verify import FLOW, check_history  # noqa: E402


def test_job_without_uploads_starts_queued():
    final = {"history": [{"status": s} for s in FLOW[1:]]}
    assert check_history(final, [0.0, 0.5, 1.0], with_uploads=False) == []
    assert check_history(final, [0.0, 0.5, 1.0]) == [f"states {FLOW[1:]}, expected {FLOW}"]
    assert check_history({"history": [{"status": s} for s in FLOW]}, [0.0, 1.0], with_uploads=False) == [
        f"states {FLOW}, expected {FLOW[1:]}"]


def test_colour_and_title_storyboard_without_transitions_is_fine():
    # what the embedded demo rendered for a storyboard with no uploads (720p, 25 fps)
    spec = {"scenes": [
        {"id": "a", "visual": {"type": "title", "text": "Hello"}, "duration": 2},
        {"id": "b", "visual": {"type": "color", "color": "#336699"}, "transition": {}},
        {"id": "c", "visual": {"type": "color"}, "duration": 1.5, "transition": {"type": "wipeleft", "duration": 0.4}},
    ]}
    # a: no transition = cut; b: `{}` = fade 0.5 s; c is last
    output = {"scenes": [{"startS": 0.0, "durationS": 2.0}, {"startS": 2.0, "durationS": 4.0},
                         {"startS": 5.5, "durationS": 1.52}]}
    total, problems = check_timeline(spec, output, 7.02, {}, [], 25)
    assert (round(total, 3), problems) == (7.02, [])
    late = {"scenes": [{"startS": 0.0, "durationS": 2.0}, {"startS": 2.0, "durationS": 4.0},
                       {"startS": 6.0, "durationS": 1.52}]}
    _, problems = check_timeline(spec, late, 7.52, {}, [], 25)
    assert problems == ["scene b: transition 0.000 s, expected 0.500 s"]


CLAMPED = {"scenes": [
    {"id": "a", "visual": {"type": "image", "src": "rocket.jpg"}, "duration": 1.0,
     "transition": {"type": "fade", "duration": 2.0}},
    {"id": "b", "visual": {"type": "color"}, "duration": 3.0, "transition": {"type": "dissolve", "duration": 5}},
    {"id": "c", "visual": {"type": "title", "text": "End"}, "duration": 2.0},
]}


def test_transitions_longer_than_half_a_scene_are_expected_clamped():
    # the render's timeline (embedded demo, 30 fps): 2.0 s -> 0.5 s (half of a), 5 s -> 1.0 s (half of c)
    output = {"scenes": [{"startS": 0.0, "durationS": 1.0}, {"startS": 0.5, "durationS": 3.0},
                         {"startS": 2.5, "durationS": 2.0}]}
    total, problems = check_timeline(CLAMPED, output, 4.5, {}, [], 30)
    assert (total, problems) == (4.5, [])
    unclamped = {"scenes": [{"startS": 0.0, "durationS": 1.0}, {"startS": 0.8, "durationS": 3.0},
                            {"startS": 2.8, "durationS": 2.0}]}
    _, problems = check_timeline(CLAMPED, unclamped, 4.8, {}, [], 30)
    assert problems == ["scene a: transition 0.200 s, expected 0.500 s (spec 2.000 s, clamped to half of the "
                        "shorter scene)"]


OFFSETS = {"scenes": [
    {"id": "a", "visual": {"type": "image", "src": "rocket.jpg"}, "narration": {"src": "n2.mp3", "offsetS": 1.0},
     "transition": {"type": "fade", "duration": 0.5}},
    {"id": "b", "visual": {"type": "image", "src": "coffee.png"}, "narration": {"src": "n4.mp3", "offsetS": 0.7}},
]}


def test_narration_offset_is_part_of_a_scene_without_duration():
    heard = {"n2.mp3": 7.830703, "n4.mp3": 4.715601}  # the sample files' decoded lengths
    # the embedded demo's timeline: ceil((1.0 + 7.8307 + 0.5) * 30) / 30, ceil((0.7 + 4.7156 + 0.5) * 30) / 30
    output = {"scenes": [{"startS": 0.0, "durationS": 9.333}, {"startS": 8.833, "durationS": 5.933}]}
    total, problems = check_timeline(OFFSETS, output, 14.767, heard, [], 30)
    assert (round(total, 3), problems) == (14.766, [])
    short = {"scenes": [{"startS": 0.0, "durationS": 8.333}, {"startS": 7.833, "durationS": 5.933}]}
    _, problems = check_timeline(OFFSETS, short, 13.767, heard, [], 30)
    assert problems == ["scene a: 8.333 s, narration offset 1.000 s + 7.831 s heard + 0.5 s pause = 9.331 s"]


def test_audio_length_is_as_heard_without_encoder_padding(tmp_path):
    import av

    from infra.local.verify import heard_seconds
    from tests import media_factory as mf

    for ext in ("m4a", "mp3", "wav"):
        path = mf.tone(tmp_path / f"half.{ext}", 0.5, rate=48000, channels=2)
        assert heard_seconds(path) == pytest.approx(0.5, abs=1e-6), ext
    with av.open(str(tmp_path / "half.m4a")) as c:  # the packets span the AAC priming and padding too
        packets = [p for p in c.demux(audio=0) if p.pts is not None]
        span = float((packets[-1].pts + packets[-1].duration - min(0, packets[0].pts)) * packets[0].time_base)
    assert span > 0.51
    # the demo's "audio ... s heard" line and A/V check: an MP4's AAC track, priming not counted
    from infra.local.verify import probe

    info = probe(mf.clip(tmp_path / "clip.mp4", seconds=1.0, audio=True))
    assert (info.video_s, info.audio_s) == (pytest.approx(1.0), pytest.approx(1.0, abs=1e-6))


# trial 2: a cue cut to exactly one frame by the next scene's start (or the end) is shown, and the
# sidecars have it; output.scenes gives times in milliseconds (3.733 for 112/30 s), so the check must
# apply the plan's rule on the frame grid, not to the rounded difference (0.033 s = 0.99 frame).
ONE_FRAME = {"scenes": [
    {"id": "a", "visual": {"type": "color"}, "duration": 3.7333333333333334,
     "caption": {"cues": [{"startS": 3.7, "endS": 9, "text": "cut to one frame by b"}]}},
    {"id": "b", "visual": {"type": "color"}, "narration": {"src": "n.ogg"},
     "caption": {"cues": [{"startS": 0, "endS": 1, "text": "ok"}, {"startS": 3.7, "endS": 9, "text": "tail"},
                          {"startS": 20, "endS": 21, "text": "gone"}]}},
]}
ONE_FRAME_OUTPUT = {"scenes": [{"startS": 0.0, "durationS": 3.733}, {"startS": 3.733, "durationS": 3.733}]}


def test_cue_cut_to_exactly_one_frame_is_expected(tmp_path):
    good = srt(tmp_path, [(3.7, 3.733, "cut to one frame by b"), (3.733, 4.733, "ok"), (7.433, 7.466, "tail")])
    total, problems = check_timeline(ONE_FRAME, ONE_FRAME_OUTPUT, 7.466, {}, [good], 30)
    assert (round(total, 3), problems) == (7.466, [])
    # a cue left under one frame (the plan warns and drops it) is still not expected
    shorter = {"scenes": [ONE_FRAME["scenes"][0], {**ONE_FRAME["scenes"][1], "caption": {"cues": [
        {"startS": 3.71, "endS": 9, "text": "under a frame"}]}}]}
    _, problems = check_timeline(shorter, ONE_FRAME_OUTPUT, 7.466, {}, [good], 30)
    assert problems == ["captions.srt: 3 cues, expected 1"]
