"""Render plan: scene durations, transition clamping, timeline, cues and poster time (pure, fast)."""
import sys
from pathlib import Path
from types import SimpleNamespace

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # until the project's pytest config sets pythonpath
    sys.path.insert(0, str(ROOT))

import pytest  # noqa: E402

from render_job.plan import build_plan  # noqa: E402
from shared.spec import DEFAULT_SCENE_S, NARRATION_PAUSE_S, parse_spec  # noqa: E402

FPS = 30


def media(d):
    return SimpleNamespace(duration_s=d)


def spec_of(scenes, **over):
    data = {"output": {"resolution": "720p", "fps": FPS, "quality": "draft"}, "scenes": scenes}
    data.update(over)
    return parse_spec(data)


def img(i, **kw):
    s = {"id": f"s{i}", "visual": {"type": "image", "src": f"i{i}.png"}}
    s.update(kw)
    return s


PROBES = {"n1.wav": media(5.87), "n2.mp3": media(7.83), "clip.mp4": media(4.0), "short.mp4": media(1.0)}


def test_durations_from_narration_explicit_clip_and_default():
    spec = spec_of([
        img(0, narration={"src": "n1.wav"}),
        img(1, duration=3.0),
        {"id": "s2", "visual": {"type": "video", "src": "clip.mp4", "trimStartS": 1.0}},
        {"id": "s3", "visual": {"type": "color", "color": "#112233"}},
    ])
    plan = build_plan(spec, PROBES)
    d = [s.duration for s in plan.scenes]
    assert d[0] == pytest.approx(5.87 + NARRATION_PAUSE_S, abs=1 / FPS)
    assert d[0] >= 5.87 + NARRATION_PAUSE_S - 1e-9  # rounded up: narration never cut
    assert d[1] == pytest.approx(3.0)
    assert d[2] == pytest.approx(3.0)  # 4 s clip minus 1 s trimmed
    assert d[3] == pytest.approx(DEFAULT_SCENE_S)
    for x in d:  # whole frames
        assert abs(x * FPS - round(x * FPS)) < 1e-6
    assert (plan.width, plan.height) == (1280, 720)


def test_total_is_sum_of_durations_minus_transitions_and_starts_accumulate():
    spec = spec_of([
        img(0, duration=4.0, transition={"type": "fade", "duration": 0.5}),
        img(1, duration=3.0, transition={"type": "wipeleft", "duration": 1.0}),
        img(2, duration=5.0, transition={"type": "fade", "duration": 2.0}),  # last: ignored
    ])
    plan = build_plan(spec, {})
    assert plan.starts == pytest.approx([0.0, 3.5, 5.5])
    assert plan.total_s == pytest.approx(4 + 3 + 5 - 0.5 - 1.0)
    assert plan.scenes[-1].transition_s == 0
    assert plan.scenes[-1].end == pytest.approx(plan.total_s)


def test_transition_clamped_to_half_of_shorter_neighbour_and_no_scene_dropped():
    spec = spec_of([
        img(0, duration=1.0, transition={"type": "fade", "duration": 5.0}),
        img(1, duration=6.0, transition={"type": "fade", "duration": 5.0}),
        img(2, duration=2.0),
    ])
    plan = build_plan(spec, {})
    t = [s.transition_s for s in plan.scenes]
    assert t[0] == pytest.approx(0.5)
    assert t[1] == pytest.approx(1.0)
    assert len(plan.scenes) == 3
    for i, s in enumerate(plan.scenes[:-1]):
        assert s.transition_s <= s.duration / 2 + 1e-9
        assert s.transition_s <= plan.scenes[i + 1].duration / 2 + 1e-9
        assert plan.scenes[i + 1].start > s.start  # every scene is visible
    assert plan.total_s == pytest.approx(1 + 6 + 2 - 0.5 - 1.0)


def test_cut_and_zero_duration_transitions_join_directly():
    spec = spec_of([
        img(0, duration=2.0, transition={"type": "cut", "duration": 0.5}),
        img(1, duration=2.0, transition={"type": "fade", "duration": 0}),
        img(2, duration=2.0),
    ])
    plan = build_plan(spec, {})
    assert [s.transition for s in plan.scenes] == ["cut", "cut", "cut"]
    assert plan.starts == pytest.approx([0, 2, 4])
    assert plan.total_s == pytest.approx(6)


def test_caption_cues_span_scene_start_to_next_start():
    spec = spec_of([
        img(0, duration=4.0, caption={"text": "one"}, transition={"type": "fade", "duration": 0.5}),
        img(1, duration=3.0, transition={"type": "fade", "duration": 0.5}),  # no caption: no cue
        img(2, duration=5.0, caption={"text": "It's 100%: three"}),
    ])
    plan = build_plan(spec, {})
    assert [(c.start, c.end, c.text) for c in plan.cues] == [
        (0.0, plan.scenes[1].start, "one"),
        (plan.scenes[2].start, plan.total_s, "It's 100%: three"),
    ]
    assert plan.cues[0].end == pytest.approx(3.5)
    assert plan.cues[1].start == pytest.approx(6.0)
    assert plan.cues[1].end == pytest.approx(11.0)


def test_narration_longer_than_explicit_duration_is_cut():
    spec = spec_of([img(0, duration=3.0, narration={"src": "n2.mp3"}), img(1, narration={"src": "n1.wav"})])
    plan = build_plan(spec, PROBES)
    assert plan.scenes[0].duration == pytest.approx(3.0)
    assert plan.scenes[0].narration_cut_s == pytest.approx(3.0)
    assert plan.scenes[1].narration_cut_s is None


def test_clip_shorter_than_duration_is_padded():
    spec = spec_of([{"id": "v", "visual": {"type": "video", "src": "short.mp4"}, "duration": 3.0}])
    plan = build_plan(spec, PROBES)
    assert plan.scenes[0].clip_pad_s == pytest.approx(2.0)


def test_poster_time_rules():
    scenes = [img(0, duration=4.0, transition={"type": "fade", "duration": 1.0}), img(1, duration=6.0)]
    assert build_plan(spec_of(scenes), {}).poster_s == pytest.approx(2.0)
    assert build_plan(spec_of(scenes, poster={"scene": 1}), {}).poster_s == pytest.approx(3.0 + 3.0)
    assert build_plan(spec_of(scenes, poster={"timeS": 2.5}), {}).poster_s == pytest.approx(2.5)
    late = build_plan(spec_of(scenes, poster={"timeS": 99}), {})
    assert late.total_s == pytest.approx(9.0)
    assert late.poster_s < late.total_s
    assert late.poster_s == pytest.approx(9.0 - 1 / FPS)


def test_audio_and_caption_settings_carried():
    spec = spec_of([img(0)], music={"src": "m.ogg", "volume": 0.3, "fadeOutS": 20},
                   audio={"loudnessLufs": -14, "truePeakDb": -2}, captions={"burnIn": False, "sidecar": ["vtt"]})
    plan = build_plan(spec, {})
    assert plan.music.volume == 0.3 and plan.music.fade_out_s == pytest.approx(plan.total_s)  # clamped
    assert plan.loudness_lufs == -14 and plan.true_peak_db == -2
    assert plan.burn_in is False and plan.sidecars == ("vtt",)
    assert plan.has_audio


def test_narration_offset_lengthens_auto_duration_and_cut_accounts_for_it():
    spec = spec_of([img(0, narration={"src": "n1.wav", "offsetS": 1.0}),
                    img(1, duration=3.0, narration={"src": "n1.wav", "offsetS": 1.0})])
    plan = build_plan(spec, PROBES)
    a, b = plan.scenes
    assert a.duration == pytest.approx(1.0 + 5.87 + NARRATION_PAUSE_S, abs=1 / FPS)
    assert a.narration_offset_s == 1.0 and a.narration_cut_s is None
    assert b.narration_cut_s == pytest.approx(2.0)  # 3 s scene - 1 s offset


def test_explicit_cues_placed_relative_to_scene_start_and_cut_at_next_scene():
    spec = spec_of([
        img(0, duration=2.0, transition={"type": "fade", "duration": 0.5}),
        img(1, duration=4.0, transition={"type": "fade", "duration": 1.0},
            caption={"cues": [{"startS": 0.5, "endS": 1.5, "text": "a"}, {"startS": 2.5, "endS": 3.9, "text": "b"}]}),
        img(2, duration=2.0, caption={"cues": [{"startS": 1.9, "endS": 2.0, "text": "late"}]}),
    ])
    plan = build_plan(spec, {})
    s1 = plan.scenes[1].start
    assert s1 == pytest.approx(1.5)
    assert [(c.start, c.end, c.text) for c in plan.cues] == [
        (pytest.approx(s1 + 0.5), pytest.approx(s1 + 1.5), "a"),
        (pytest.approx(s1 + 2.5), pytest.approx(plan.scenes[2].start), "b"),  # cut where scene 2 starts
        (pytest.approx(plan.scenes[2].start + 1.9), pytest.approx(plan.total_s), "late"),
    ]
    assert plan.warnings == ()


def test_title_cards_motion_and_clip_audio_carried():
    spec = spec_of([
        {"id": "t", "visual": {"type": "title", "text": "Part 1", "background": "#102030", "textColor": "#FFCC00"},
         "duration": 2, "transition": {"type": "fade", "duration": 0.5}},
        {"id": "v", "visual": {"type": "video", "src": "clip.mp4", "volume": 0.5, "motion": "zoom-out",
                               "motionStrength": 0.2}, "transition": {"type": "wipeleft", "duration": 0.4}},
        {"id": "m", "visual": {"type": "video", "src": "clip.mp4", "volume": 0.5}},
        {"id": "t2", "visual": {"type": "title", "text": "The end"}, "duration": 1},
    ], captions={"style": {"position": "middle", "outlineWidth": 0}})
    probes = {"clip.mp4": SimpleNamespace(duration_s=4.0, has_audio=True)}
    plan = build_plan(spec, probes)
    t, v, m, t2 = plan.scenes
    assert (t.kind, t.color, t.src) == ("title", "#102030", None)
    assert (v.motion, v.motion_strength, v.clip_volume, v.clip_audio) == ("zoom-out", 0.2, 0.5, True)
    assert plan.titles[0].text == "Part 1" and plan.titles[0].color == "#ffcc00"
    assert (plan.titles[0].start, plan.titles[0].end) == (0.0, 2.0)
    assert plan.titles[0].fade_in == 0 and plan.titles[0].fade_out == pytest.approx(0.5)
    assert plan.titles[1].fade_in == 0 and plan.titles[1].start == pytest.approx(t2.start)
    assert plan.has_audio
    st = plan.caption_style
    assert (st.size_px, st.position, st.outline_width, st.font) == (40, "middle", 0, "DejaVu Sans")  # 720 / 18
    no_audio = build_plan(spec, {"clip.mp4": SimpleNamespace(duration_s=4.0, has_audio=False)})
    assert not no_audio.scenes[1].clip_audio and not no_audio.has_audio


# ------------------------------------------------------------------ no timeline drift (issue 14, item 5)

def _formula_frames(spec, plan):
    """Σ durations − Σ (clamped) transitions, in frames of the exact decimals the spec gives."""
    from fractions import Fraction
    d = [Fraction(repr(float(s.duration))) for s in spec.scenes]
    t = []
    for i, s in enumerate(spec.scenes[:-1]):
        tr = s.transition
        t.append(Fraction(0) if tr is None or tr.type == "cut"
                 else min(Fraction(repr(tr.duration)), d[i] / 2, d[i + 1] / 2))
    return (sum(d) - sum(t)) * plan.fps, d, t


@pytest.mark.parametrize("fps,durations,transition", [
    (30, [1.01] * 200, None),                          # 0.3 frame each: 60 frames of drift before
    (24, [0.35] * 3, None),                            # 8.4 frames each
    (25, [0.33, 1.27, 0.5, 2.02, 0.41] * 30, 0.13),    # mixed, with fades of 3.25 frames
    (60, [0.51, 0.77] * 90, 0.31),
    (24, [0.09, 0.1, 0.11] * 20, 2.0),                 # transitions clamped to half a short scene
])
def test_plan_total_and_every_start_agree_with_the_formula_within_one_frame(fps, durations, transition):
    from fractions import Fraction
    scenes = [{"id": f"s{i}", "visual": {"type": "color"}, "duration": d,
               **({"transition": {"type": "fade", "duration": transition}} if transition else {})}
              for i, d in enumerate(durations)]
    spec = parse_spec({"output": {"resolution": "720p", "fps": fps}, "scenes": scenes})
    plan = build_plan(spec, {})
    want, d, t = _formula_frames(spec, plan)
    got = round(plan.total_s * fps)
    assert abs(got - want) <= Fraction(1, 2), (got, float(want))
    exact_start = Fraction(0)
    for i, sc in enumerate(plan.scenes):  # every boundary within half a frame of the exact time
        assert abs(round(sc.start * fps) - exact_start * fps) <= Fraction(1, 2), i
        assert abs(round(sc.end * fps) - (exact_start + d[i]) * fps) <= Fraction(1, 2), i
        assert round(sc.duration * fps) >= 2  # no scene is shorter than two frames
        if i + 1 < len(plan.scenes):
            nxt = plan.scenes[i + 1]
            assert nxt.start == pytest.approx(sc.end - sc.transition_s)  # contiguous, frame-exact
            assert sc.transition_s <= min(sc.duration, nxt.duration) + 1e-9
            exact_start += d[i] - t[i]
    body = [round((sc.duration - sc.transition_s - (plan.scenes[i - 1].transition_s if i else 0)) * fps)
            for i, sc in enumerate(plan.scenes)]
    assert min(body) >= 0  # incoming + outgoing transitions never exceed a scene


def test_narration_scenes_are_whole_frames_never_cut_and_do_not_drift():
    # 40 scenes of narration 0.617 s (+ 0.5 s pause = 1.117 s = 33.51 frames: rounded UP to 34)
    # mixed with explicit 1.01 s scenes and 0.21 s fades: the narration keeps all its frames
    probes = {"n.wav": media(0.617)}
    scenes = []
    for i in range(40):
        s = img(i, transition={"type": "fade", "duration": 0.21})
        s.update({"narration": {"src": "n.wav"}} if i % 2 else {"duration": 1.01})
        scenes.append(s)
    spec = spec_of(scenes)
    plan = build_plan(spec, probes)
    for sc in plan.scenes[1::2]:
        assert round(sc.duration * FPS) == 34
        assert sc.narration_cut_s is None
        assert sc.end >= sc.start + 0.617 + NARRATION_PAUSE_S - 1e-9
    from fractions import Fraction
    want = (20 * Fraction(101, 100) + 20 * Fraction(34, FPS) - 39 * Fraction(21, 100)) * FPS
    assert abs(round(plan.total_s * FPS) - want) <= Fraction(1, 2)


def test_a_clip_shorter_than_two_frames_lasts_two_frames():
    spec = spec_of([{"id": "v", "visual": {"type": "video", "src": "c.mp4"}}, img(1, duration=1.0)])
    plan = build_plan(spec, {"c.mp4": media(0.02)})
    assert round(plan.scenes[0].duration * FPS) == 2
    assert plan.total_s == pytest.approx(2 / FPS + 1.0)


# ------------------------------------------------------- captions that cannot show (issue 14, item 8)

def test_cue_cut_to_nothing_by_a_narration_scene_is_a_warning_not_silence():
    # scene 0's length comes from its narration (1.0 + 0.5 s): known only after probing, so the spec
    # cannot refuse the cue at 1.7 s; the plan drops it and says so
    spec = spec_of([img(0, narration={"src": "one.wav"}, transition={"type": "cut"},
                        caption={"cues": [{"startS": 0.2, "endS": 1.0, "text": "shown"},
                                          {"startS": 1.7, "endS": 2.5, "text": "after the end"}]}),
                    img(1, duration=1.0)])
    plan = build_plan(spec, {"one.wav": media(1.0)})
    assert [c.text for c in plan.cues] == ["shown"]
    assert plan.warnings == (("scenes[0].caption.cues[1]",
                              "starts 1.7 s into its scene, at or after the next scene's start (1.500 s into "
                              "this scene): it would show on no frame"),)


def test_a_caption_track_left_empty_is_a_warning():
    spec = spec_of([img(0, narration={"src": "one.wav"},
                        caption={"cues": [{"startS": 1.49, "endS": 2.5, "text": "too late"}]})])
    plan = build_plan(spec, {"one.wav": media(1.0)})
    assert plan.cues == ()
    assert [w[0] for w in plan.warnings] == ["scenes[0].caption.cues[0]", "captions"]
    assert "only 0.010 s of it is left" in plan.warnings[0][1]
    assert "no caption cue is left to show" in plan.warnings[1][1]
    assert build_plan(spec_of([img(0)]), {}).warnings == ()  # no captions asked for: nothing to say


def test_a_spec_accepted_with_every_duration_known_renders_every_cue():
    # the spec check and the plan share one rule: when export_start accepts a spec whose durations are
    # all known, no cue is dropped at render time; and each refusal names a cue the plan would drop
    import random

    from shared.errors import InvalidRequest
    rng = random.Random(14)
    accepted = refused = 0
    for _ in range(400):
        fps = rng.choice([24, 25, 30, 60])
        scenes = []
        for i in range(rng.randint(1, 6)):
            d = round(rng.uniform(0.1, 2.0), 2)
            a = round(rng.uniform(0, d * 0.95), 3)
            b = round(min(d, a + rng.uniform(0.005, 0.6)), 3)
            s = {"id": f"s{i}", "visual": {"type": "color"}, "duration": d,
                 "transition": {"type": rng.choice(["fade", "cut"]), "duration": round(rng.uniform(0, 1.5), 2)}}
            if b > a:
                s["caption"] = {"cues": [{"startS": a, "endS": b, "text": f"cue {i}"}]}
            scenes.append(s)
        try:
            spec = parse_spec({"output": {"fps": fps}, "scenes": scenes})
        except InvalidRequest as exc:
            refused += 1
            assert all(".caption.cues[" in d["path"] or d["path"].endswith(".duration") for d in exc.details)
            continue
        accepted += 1
        plan = build_plan(spec, {})
        assert plan.warnings == ()
        assert len(plan.cues) == sum(1 for s in scenes if "caption" in s)
    assert accepted > 100 and refused > 20


# -- a scene of exactly two frames written as a float (adversarial review, break 6) -------------------
@pytest.mark.parametrize("fps", [24, 25, 30, 60])
def test_the_frame_rules_count_a_float_of_whole_frames_as_whole_frames(fps):
    from shared.timeline import cue_problem, frame_count, short_scene_problem

    assert frame_count(2 / fps, fps) == 2 and short_scene_problem(2 / fps, fps) is None
    assert frame_count(2 / fps - 0.5e-6, fps) == 2  # within 1 µs
    assert frame_count(2 / fps - 2e-6, fps) < 2 and short_scene_problem(2 / fps - 2e-6, fps)
    assert "shorter than 2 frames" in short_scene_problem(1.9 / fps, fps)
    assert cue_problem(None, 0.5, 0.5 + 1 / fps, fps) is None  # the cue rule: the same count
    assert "shorter than one frame" in cue_problem(None, 0.5, 0.5 + 0.9 / fps, fps)


# the first scene ends half-way between two frames, so both boundaries of the next one are rounded
HALF_FRAME_AFTER_1S = {24: 1.0625, 25: 1.02, 30: 1.05, 60: 1.025}


@pytest.mark.parametrize("fps", [24, 25, 30, 60])  # 2/60 = 0.033 s: the frame rule, not a fixed floor (trial 7)
def test_two_frames_written_as_a_float_are_accepted_and_planned_as_two_frames(fps):
    two = 2 / fps  # 0.08333333333333333 at 24 fps: a hair short of two frames
    spec = parse_spec({"output": {"resolution": "720p", "fps": fps, "quality": "draft"}, "scenes": [
        {"id": "a", "visual": {"type": "color"}, "duration": HALF_FRAME_AFTER_1S[fps]},
        {"id": "b", "visual": {"type": "color"}, "duration": two},
        {"id": "c", "visual": {"type": "color"}, "duration": two,
         "caption": {"cues": [{"startS": 0, "endS": 1 / fps, "text": "one frame"}]}}]})
    plan = build_plan(spec, {})
    starts = [round(s.start * fps, 6) for s in plan.scenes]
    frames = [round(s.duration * fps, 6) for s in plan.scenes]
    assert frames[1:] == [2, 2] and starts[2] == starts[1] + 2
    assert round(plan.total_s * fps, 6) == starts[2] + 2
    assert [c.text for c in plan.cues] == ["one frame"]


@pytest.mark.parametrize("fps", [24, 25, 30])
def test_one_point_nine_frames_is_still_refused(fps):
    from shared.errors import InvalidRequest

    with pytest.raises(InvalidRequest) as exc:
        parse_spec({"output": {"fps": fps}, "scenes": [{"id": "a", "visual": {"type": "color"},
                                                        "duration": 1.9 / fps}]})
    assert exc.value.details[0]["path"] == "scenes[0].duration"
    assert f"shorter than 2 frames at {fps} fps" in exc.value.details[0]["message"]


def test_clip_offset_from_the_probe_and_interlaced_clips_deinterlaced():
    """trimStartS counts from the clip's first picture: a file whose sound starts 0.5 s before its
    picture is read from 0.5 s + trimStartS (the probe's stream starts); no start times known: 0."""
    spec = spec_of([{"id": "a", "visual": {"type": "video", "src": "a.mp4", "trimStartS": 1.0}},
                    {"id": "b", "visual": {"type": "video", "src": "b.mp4"}},
                    {"id": "c", "visual": {"type": "video", "src": "c.mp4"}}])
    plan = build_plan(spec, {
        "a.mp4": SimpleNamespace(duration_s=4.0, video_duration_s=3.5, start_s=-0.1, video_start_s=0.4,
                                 audio_start_s=-0.1, interlaced=True),
        "b.mp4": SimpleNamespace(duration_s=2.0, start_s=0.0, video_start_s=0.0, audio_start_s=0.977),
        "c.mp4": media(2.0)})
    a, b, c = plan.scenes
    assert (a.clip_offset_s, a.clip_seek_s, a.duration, a.deinterlace) == (pytest.approx(0.5), pytest.approx(1.5),
                                                                           pytest.approx(2.5), True)
    assert (b.clip_offset_s, b.clip_seek_s, b.deinterlace) == (0.0, 0.0, False)  # late sound: read from 0
    assert (c.clip_offset_s, c.clip_seek_s, c.deinterlace) == (0.0, 0.0, False)


def test_clip_sound_outside_the_part_read_is_not_mixed_and_is_reported():
    """A clip's sound is mixed only where it has samples in the part read (probe audio_start_s ..
    audio_end_s against trimStartS + the scene's length): a 6 s clip whose sound stops at 2 s, read
    from 3 s, is silent with a warning (FFmpeg's sound chain fails on an empty input); read from 1 s
    its last second is heard; a probe that does not say where the sound ends keeps it mixed."""
    def clip(audio_end):
        return SimpleNamespace(duration_s=6.0, video_duration_s=6.0, has_audio=True, start_s=0.0,
                               video_start_s=0.0, audio_start_s=0.0, audio_end_s=audio_end)

    spec = spec_of([{"id": "a", "visual": {"type": "video", "src": "s.mp4", "volume": 1, "trimStartS": 3}},
                    {"id": "b", "visual": {"type": "video", "src": "s.mp4", "volume": 1, "trimStartS": 1}},
                    {"id": "c", "visual": {"type": "video", "src": "u.mp4", "volume": 1, "trimStartS": 3}},
                    {"id": "d", "visual": {"type": "video", "src": "l.mp4", "volume": 1}}])
    late = SimpleNamespace(duration_s=3.0, video_duration_s=3.0, has_audio=True, start_s=0.0, video_start_s=0.0,
                           audio_start_s=9.98, audio_end_s=13.0)  # sound from 10 s, picture 0..3 s
    plan = build_plan(spec, {"s.mp4": clip(2.0), "u.mp4": clip(None), "l.mp4": late})
    assert [sc.clip_audio for sc in plan.scenes] == [False, True, True, False]
    assert plan.has_audio
    assert [p for p, _ in plan.warnings] == ["scenes[0].visual", "scenes[3].visual"]
    assert "has no sound in the part shown" in plan.warnings[0][1]
