"""Export spec v1: defaults, every-problem-at-once errors with paths, asset references, schema."""
import json
import unicodedata
from pathlib import Path

import pytest

from shared.errors import InvalidRequest
from shared.spec import DEFAULT_SCENE_S, json_schema, parse_spec

ROOT = Path(__file__).resolve().parents[2]


def minimal(**over):
    spec = {"scenes": [{"id": "s1", "visual": {"type": "image", "src": "a.png"},
                        "narration": {"src": "n1.wav"}, "caption": {"text": "It's 100%: {ok} \\o/"}}]}
    spec.update(over)
    return spec


def test_defaults_and_sizes():
    spec = parse_spec(minimal())
    assert spec.version == 1
    assert spec.output.size == (1920, 1080) and spec.output.fps == 30
    assert spec.scenes[0].duration is None and spec.scenes[0].visual.fit == "cover"
    assert spec.captions.sidecar == ["srt", "vtt"] and spec.audio.loudness_lufs == -16.0
    assert DEFAULT_SCENE_S == 4.0


@pytest.mark.parametrize("res,ar,size", [("720p", "9:16", (720, 1280)), ("1080p", "1:1", (1080, 1080)),
                                         ("720p", "16:9", (1280, 720))])
def test_output_presets(res, ar, size):
    assert parse_spec(minimal(output={"resolution": res, "aspectRatio": ar})).output.size == size


def test_every_problem_reported_with_paths():
    bad = {"version": 2, "output": {"fps": 29},
           "scenes": [{"id": "s1", "visual": {"type": "image", "src": "../etc/passwd"}, "duration": -1},
                      {"id": "s2", "visual": {"type": "hologram"}},
                      {"id": "s3", "visual": {"type": "image", "src": "ftp://x/y.png"},
                       "transition": {"type": "spin", "duration": 9}}],
           "surprise": True}
    with pytest.raises(InvalidRequest) as info:
        parse_spec(bad)
    paths = {d["path"] for d in info.value.details}
    assert {"version", "output.fps", "scenes[0].visual.src", "scenes[0].duration", "scenes[1].visual",
            "scenes[2].visual.src", "scenes[2].transition.type", "scenes[2].transition.duration",
            "surprise"} <= paths
    assert len(info.value.details) >= 9


def test_cross_checks_duplicate_ids_and_poster():
    spec = minimal(poster={"scene": 3})
    spec["scenes"].append(dict(spec["scenes"][0]))
    with pytest.raises(InvalidRequest) as info:
        parse_spec(spec)
    paths = [d["path"] for d in info.value.details]
    assert paths == ["scenes[1].id", "poster.scene"]


def test_asset_refs_in_order_and_distinct_names():
    spec = parse_spec(minimal(music={"src": "m.ogg"}, scenes=[
        {"id": "a", "visual": {"type": "image", "src": "a.png"}, "narration": {"src": "n.wav"}},
        {"id": "b", "visual": {"type": "video", "src": "a.png"}},
        {"id": "c", "visual": {"type": "color", "color": "#FFAA00"}}]))
    assert [(r.path, r.src) for r in spec.asset_refs()] == [
        ("scenes[0].visual.src", "a.png"), ("scenes[0].narration.src", "n.wav"),
        ("scenes[1].visual.src", "a.png"), ("music.src", "m.ogg")]
    assert [(r.role, r.scene, r.media, r.label) for r in spec.asset_refs()] == [
        ("visual", 0, "image", "scenes[0] (id 'a') visual.src"), ("narration", 0, "audio", "scenes[0] (id 'a') narration.src"),
        ("visual", 1, "video", "scenes[1] (id 'b') visual.src"), ("music", None, "audio", "music.src")]
    assert spec.bare_asset_names() == ["a.png", "n.wav", "m.ogg"]
    assert spec.scenes[2].visual.color == "#ffaa00"


def test_caption_control_characters_refused():
    with pytest.raises(InvalidRequest) as info:
        parse_spec(minimal(scenes=[{"id": "s", "visual": {"type": "color"}, "caption": {"text": "a\x00b"}}]))
    assert info.value.details[0]["path"] == "scenes[0].caption.text"


def test_published_schema_is_current():
    published = json.loads((ROOT / "shared/schema/export_spec_v1.schema.json").read_text())
    assert published == json.loads(json.dumps(json_schema())), "run `make schema`"
    assert "scenes" in published["required"]


def test_visual_motion_fit_and_title_defaults():
    spec = parse_spec(minimal(scenes=[
        {"id": "a", "visual": {"type": "image", "src": "a.png"}},
        {"id": "b", "visual": {"type": "video", "src": "b.mp4", "fit": "blur", "motion": "pan-left",
                               "motionStrength": 0.5, "volume": 0.7}},
        {"id": "c", "visual": {"type": "title", "text": "Chapter 1"}}]))
    a, b, c = (s.visual for s in spec.scenes)
    assert (a.fit, a.motion, a.motion_strength) == ("cover", "none", 0.15)
    assert (b.fit, b.motion, b.motion_strength, b.volume) == ("blur", "pan-left", 0.5, 0.7)
    assert parse_spec(minimal(scenes=[{"id": "v", "visual": {"type": "video", "src": "v.mp4"}}])).scenes[0].visual.volume == 0
    assert (c.background, c.text_color) == ("#000000", "#ffffff")
    assert [(r.path, r.src) for r in spec.asset_refs()] == [("scenes[0].visual.src", "a.png"),
                                                            ("scenes[1].visual.src", "b.mp4")]


def test_new_fields_validated_with_paths():
    bad = {"scenes": [
        {"id": "a", "visual": {"type": "image", "src": "a.png", "fit": "stretch", "motion": "spin",
                               "motionStrength": 0.6}},
        {"id": "b", "visual": {"type": "title", "text": " ", "background": "red", "textColor": "#12345"}},
        {"id": "c", "visual": {"type": "video", "src": "c.mp4", "volume": -1},
         "narration": {"src": "n.wav", "offsetS": -0.1}},
        {"id": "d", "visual": {"type": "color"}, "caption": {"text": "x", "cues": [{"startS": 0, "endS": 1, "text": "y"}]}},
    ], "captions": {"style": {"font": "Evil,Font", "position": "left", "sizePx": 2, "color": "white"}}}
    with pytest.raises(InvalidRequest) as info:
        parse_spec(bad)
    paths = {d["path"] for d in info.value.details}
    assert {"scenes[0].visual.fit", "scenes[0].visual.motion", "scenes[0].visual.motionStrength",
            "scenes[1].visual.text", "scenes[1].visual.background", "scenes[1].visual.textColor",
            "scenes[2].visual.volume", "scenes[2].narration.offsetS", "scenes[3].caption",
            "captions.style.font", "captions.style.position", "captions.style.sizePx",
            "captions.style.color"} <= paths, paths


def test_caption_cues_ordered_non_overlapping_and_within_a_known_duration():
    def scene(cues, duration=None, offset=0.0):
        s = {"id": "s", "visual": {"type": "color"}, "caption": {"cues": cues},
             "narration": {"src": "n.wav", "offsetS": offset}}
        if duration is not None:
            s["duration"] = duration
        return minimal(scenes=[s])

    ok = [{"startS": 0, "endS": 1, "text": "a"}, {"startS": 1, "endS": 2.5, "text": "b"}]
    assert len(parse_spec(scene(ok)).scenes[0].caption.cues) == 2
    assert parse_spec(scene(ok, duration=2.5)).scenes[0].caption.cues[1].end_s == 2.5
    cases = [
        (scene([{"startS": 1, "endS": 2, "text": "a"}, {"startS": 0, "endS": 0.5, "text": "b"}]),
         "scenes[0].caption.cues[1]"),
        (scene([{"startS": 0, "endS": 1.5, "text": "a"}, {"startS": 1, "endS": 2, "text": "b"}]),
         "scenes[0].caption.cues[1]"),
        (scene([{"startS": 1, "endS": 1, "text": "a"}]), "scenes[0].caption.cues[0]"),
        (scene(ok, duration=2), "scenes[0].caption.cues[1]"),
        (scene(ok[:1], duration=2, offset=2), "scenes[0]"),
    ]
    for data, path in cases:
        with pytest.raises(InvalidRequest) as info:
            parse_spec(data)
        assert [d["path"] for d in info.value.details] == [path], info.value.details


def test_caption_style_defaults():
    st = parse_spec(minimal()).captions.style
    assert (st.font, st.size_px, st.color, st.outline_color, st.outline_width, st.position) == \
        ("DejaVu Sans", None, "#ffffff", "#000000", None, "bottom")
    st = parse_spec(minimal(captions={"style": {"font": "Noto Sans CJK JP", "sizePx": 30, "color": "#FFCC00",
                                                "position": "top"}})).captions.style
    assert (st.font, st.size_px, st.color, st.position) == ("Noto Sans CJK JP", 30, "#ffcc00", "top")


REAL_SCRIPTS = {  # realistic text with many combining marks on one character (marks, above, below)
    "vietnamese": unicodedata.normalize("NFD", "Tiếng Việt có dấu: Người Việt, những ước mơ, Ậu Ặc Ễ Ộ Ợ Ữ Ỵ"),
    "hebrew": "בְּרֵאשִׁ֖ית בָּרָ֣א אֱלֹהִ֑ים אֵ֥ת הַשָּׁמַ֖יִם וְאֵ֥ת הָאָֽרֶץ׃ וְהָאָ֗רֶץ הָיְתָ֥ה תֹ֙הוּ֙ וָבֹ֔הוּ שָּֽׁ֣",
    "tibetan": "བཀྲ་ཤིས་བདེ་ལེགས། ཨོཾ་མ་ཎི་པདྨེ་ཧཱུྃ། ཀྵྨྱཱ ཧྐྵྨླྺྼྻཾ",  # the last: the Kalachakra stack
    "devanagari": "संस्कृतम् क्षत्रियः श्रीमद्भगवद्गीता अ॒ग्निमी॑ळे पु॒रोहि॑तं य॒ज्ञस्य॑ दे॒वमृ॒त्विज॑म्",
    "arabic": "بِسْمِ ٱللَّهِ ٱلرَّحْمَٰنِ ٱلرَّحِيمِ ذَٰلِكَ ٱلْكِتَٰبُ لَا رَيْبَ ۛ فِيهِ ۛ",
    "greek": "Ἐν ἀρχῇ ἦν ὁ λόγος, ᾅδης ᾯ",
    "emoji": "❤️‍🔥 1️⃣ 🏴󠁧󠁢󠁳󠁣󠁴󠁿 👍🏽",
}


@pytest.mark.parametrize("name", list(REAL_SCRIPTS))
def test_real_scripts_with_combining_marks_accepted(name):
    text = REAL_SCRIPTS[name]
    spec = parse_spec(minimal(scenes=[
        {"id": "s", "visual": {"type": "title", "text": text}, "caption": {"cues": [{"startS": 0, "endS": 1, "text": text}]}},
        {"id": "t", "visual": {"type": "color"}, "caption": {"text": text}}]))
    assert spec.scenes[1].caption.text == text and spec.scenes[0].visual.text == text


@pytest.mark.parametrize("text,n", [
    ("a" + "\u0301" * 300, 300),        # adversarial review 2: drawn up to y = 0 at 1080p
    ("a" + "\u0301" * 5, 5),            # more than 4 above
    ("g" + "\u0316" * 5, 5),            # more than 4 below
    ("\u1ea4" + "\u0301" * 3, 5),       # a precomposed Ấ counts as A + 2 marks above
    ("x" + "\u0301\u200c" * 5, 5),      # ZWNJ between the marks does not end the run
    ("\u0f67" + "\u0f90" * 9, 9),       # more than 8 in all
])
def test_stacked_combining_marks_refused_in_every_text_field(text, n):
    for scene, path in [({"caption": {"text": "ok " + text}}, "scenes[0].caption.text"),
                        ({"caption": {"cues": [{"startS": 0, "endS": 1, "text": text}]}}, "scenes[0].caption.cues[0].text"),
                        ({"visual": {"type": "title", "text": text[:300]}}, "scenes[0].visual.text")]:
        with pytest.raises(InvalidRequest) as info:
            parse_spec(minimal(scenes=[{"id": "s", "visual": {"type": "color"}, **scene}]))
        detail = info.value.details[0]
        assert detail["path"] == path, info.value.details
        shown = min(n, 299) if path.endswith("visual.text") else n  # a title: its first 300 characters
        assert f"has {shown} combining marks on one character" in detail["message"], detail


def test_the_most_stacked_marks_allowed_are_accepted():
    text = "a" + "\u0301" * 4 + "\u0316" * 4 + " " + "\u0f67" + "\u0f90" * 8
    assert parse_spec(minimal(scenes=[{"id": "s", "visual": {"type": "color"}, "caption": {"text": text}}]))


def test_overlapping_cues_name_the_cue_and_the_one_it_overlaps():
    """Trial 3: the refusal named the caption only; it names the later cue and the one it overlaps."""
    cues = [{"startS": 0, "endS": 0.5, "text": "a"}, {"startS": 0.5, "endS": 1.5, "text": "b"},
            {"startS": 1.2, "endS": 2, "text": "c"}]
    data = minimal(scenes=[{"id": "x", "visual": {"type": "color"}, "duration": 4},
                           {"id": "s", "visual": {"type": "color"}, "duration": 4, "caption": {"cues": cues}}])
    with pytest.raises(InvalidRequest) as info:
        parse_spec(data)
    assert info.value.details == [{"path": "scenes[1].caption.cues[2]",
                                   "message": "starts at 1.2 s, before cues[1] ends at 1.5 s: cues must be in "
                                              "time order and must not overlap"}]


def test_a_cue_ending_after_its_scene_is_named_with_both_times():
    """Trial 7: the message named neither the cue nor the times."""
    with pytest.raises(InvalidRequest) as e:
        parse_spec({"scenes": [{"id": "a", "visual": {"type": "color"}, "duration": 1, "caption": {"cues": [
            {"startS": 0, "endS": 0.5, "text": "x"}, {"startS": 0.6, "endS": 1.5, "text": "y"}]}}]})
    assert e.value.details == [{"path": "scenes[0].caption.cues[1]",
                                "message": "ends at 1.5 s, after the scene's duration (1 s): caption cues must end "
                                           "within the scene"}]


def test_two_frames_at_60_fps_are_a_scene_and_fewer_are_refused_by_the_frame_rule():
    """Trial 7: a fixed 0.05 s floor refused 2/60 s with a message naming neither frames nor fps."""
    ok = parse_spec({"output": {"fps": 60}, "scenes": [{"id": "a", "visual": {"type": "color"}, "duration": 2 / 60}]})
    assert ok.scenes[0].duration == pytest.approx(2 / 60)
    with pytest.raises(InvalidRequest) as e:
        parse_spec({"output": {"fps": 60}, "scenes": [{"id": "a", "visual": {"type": "color"}, "duration": 0.02}]})
    assert e.value.details[0]["path"] == "scenes[0].duration"
    assert "shorter than 2 frames at 60 fps" in e.value.details[0]["message"]
