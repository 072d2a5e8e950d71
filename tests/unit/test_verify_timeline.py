"""infra.local.verify.check_timeline (the demo's and system tests' output check): subtitle cues
expected from `caption.text` and from timed `caption.cues`."""
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import pysubs2  # noqa: E402

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
