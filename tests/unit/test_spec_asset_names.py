"""The asset-name rule (shared.spec._check_src): ASCII only, one segment, refused names named in the error."""
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from shared.errors import InvalidRequest  # noqa: E402
from shared.spec import parse_spec  # noqa: E402


def details(src=None, color=None):
    visual = {"type": "image", "src": src} if src is not None else {"type": "color", "color": color}
    with pytest.raises(InvalidRequest) as exc:
        parse_spec({"scenes": [{"id": "a", "visual": visual}]})
    return exc.value.details


@pytest.mark.parametrize("name", ["a.png", "My photo 2.JPG", "_x-y.z.wav", "n" * 200])
def test_valid_names_accepted(name):
    assert parse_spec({"scenes": [{"id": "a", "visual": {"type": "image", "src": name}}]}).scenes[0].visual.src == name


@pytest.mark.parametrize("name", ["Café.png", "ümlaut.wav", "日本.jpg", "../x.png", "a/b.png", "a\\b.png",
                                  ".hidden.png", "a..b.png", "x.png\n", "x\x00.png", "", "n" * 201])
def test_refused_names_are_named_in_the_message(name):
    [d] = details(src=name)
    assert d["path"] == "scenes[0].visual.src"
    assert d["message"].startswith(f"{name[:80]!r}{'...' if len(name) > 80 else ''} is not a valid asset name: "
                                   "use a bare file name of ASCII letters, digits")


def test_message_does_not_promise_non_ascii_letters():
    [d] = details(src="Café.png")
    assert "ASCII letters" in d["message"] and "accented letters" in d["message"]


def test_gs_uri_error_names_the_uri():
    [d] = details(src="gs://bucket-in/jobs/other/assets/a.png")
    assert d["message"].startswith("'gs://bucket-in/jobs/other/assets/a.png' is not a usable gs:// URI")
    [d] = details(src="gs://bucket-in/library/a.png\n")
    assert "is not a usable gs:// URI" in d["message"]


def test_colour_with_trailing_newline_refused():
    [d] = details(color="#ffffff\n")
    assert d == {"path": "scenes[0].visual.color", "message": "must be a #RRGGBB colour"}


def test_bad_name_does_not_hide_the_timing_problems():
    # trial 2: with a bad asset name, the checks across scenes (frame counts, cues) were never run
    spec = {"output": {"fps": 30}, "scenes": [
        {"id": "a", "visual": {"type": "image", "src": "Café.png"}, "duration": 0.05,
         "caption": {"cues": [{"startS": 0, "endS": 0.01, "text": "blink"}]}},
        {"id": "a", "visual": {"type": "video", "src": "gs://elsewhere/x.mp4"}}]}
    with pytest.raises(InvalidRequest) as exc:
        parse_spec(spec)
    assert [(d["path"], d["message"][:40]) for d in exc.value.details] == [
        ("scenes[0].visual.src", "'Café.png' is not a valid asset name: us"),
        ("scenes[1].visual.src", "'gs://elsewhere/x.mp4' is not a usable g"),
        ("scenes[1].id", "duplicate scene id 'a'"),
        ("scenes[0].duration", "0.05 s is shorter than 2 frames at 30 fp"),
        ("scenes[0].caption.cues[0]", "lasts 0.010 s, shorter than one frame at"),
    ]
    assert str(exc.value) == "spec is invalid: 5 problem(s)"


def test_an_upload_name_error_does_not_offer_a_uri():
    """Trial 8: the uploads[].name message ended "... or a gs://INPUT_BUCKET/library/... URI", which an
    upload may not be."""
    from shared.assets import UPLOAD_NAME_RULE, check_upload_name
    with pytest.raises(ValueError) as e:
        check_upload_name("Café.png")
    assert str(e.value) == f"'Café.png' is not a valid upload name: use {UPLOAD_NAME_RULE}" and "gs://" not in str(e.value)
    with pytest.raises(ValueError, match="must be a bare file name, not a gs:// URI"):
        check_upload_name("gs://in/library/a.png")
    assert check_upload_name("ok name.png") == "ok name.png"
