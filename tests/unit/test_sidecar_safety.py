"""SRT and WebVTT sidecars are safe for common players and parsers (issue 14, item 8): caption text
that looks like markup (`<b>`, `<v …>`, `{\\an8}`, `{…}`, entities) or like timing lines (`-->`,
timestamps, a line of digits, blank lines) is written so that pysubs2 and a strict parser (below)
read back exactly the cues written, with the same visible text."""
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import pysubs2  # noqa: E402
import pytest  # noqa: E402

from render_job.plan import Cue  # noqa: E402
from render_job.subtitles import srt_text, vtt_text  # noqa: E402

NASTY = [
    "<b>bold</b> <i>it</i> <u>u</u> <c.red>c</c> <v Roger>voice</v> <font color=\"red\">f</font> <ruby>r<rt>t</rt></ruby>",
    "{\\an8}top {hello} {Y:i}x {\\p1}m 0 0 l 100 0{\\p0} }{",
    "00:00:01,000 --> 00:00:02,000",
    "before\n00:00:03,000 --> 00:00:04,000\nafter",
    "no arrow 00:00:01,000 00:00:02,000 and 00:01.500 00:02.000",
    "Count:\n42",
    "7\n00:00:05.000 --> 00:00:06.000\nhidden cue?",
    "paragraph one\n\n\nparagraph two\n   \nthree",
    "   \nafter a whitespace line",
    "a &lt; b &amp; c & d &#60; <3 -> -- > <!-- x -->",
    "C:\\New\\next \\h \\N done",
    "WEBVTT\nNOTE not a note\nSTYLE",
    "plain text: it's 100% \"fine\" \u2014 \U0001F680",
]

TS_SRT = r"(\d{2}):(\d{2}):(\d{2}),(\d{3})"
TS_VTT = r"(\d{2}):(\d{2}):(\d{2})\.(\d{3})"


def visible(text: str) -> str:
    """What a viewer should read: the caption without its blank lines (they would end a cue)."""
    return "\n".join(line for line in text.replace("\r\n", "\n").split("\n") if line.strip())


def unneutralise(text: str) -> str:
    """Undo the documented, invisible or look-alike neutralisation: ZWSP removed, fullwidth braces."""
    return text.replace("\u200b", "").replace("\uff5b", "{").replace("\uff5d", "}")


def ms(groups) -> int:
    h, m, s, f = map(int, groups)
    return ((h * 60 + m) * 60 + s) * 1000 + f


def strict_srt(text: str) -> list[tuple[int, int, str]]:
    """SubRip as specified: blocks separated by one blank line; each is an index line (the cue's
    number), a timing line `HH:MM:SS,mmm --> HH:MM:SS,mmm`, then at least one non-blank text line.
    Text lines must carry nothing a player reads as markup or as a timing line."""
    assert text.endswith("\n\n")
    cues = []
    for n, block in enumerate(text[:-2].split("\n\n"), 1):
        lines = block.split("\n")
        assert lines[0] == str(n), block
        m = re.fullmatch(f"{TS_SRT} --> {TS_SRT}", lines[1])
        assert m, block
        body = lines[2:]
        assert body and all(line.strip() for line in body), block
        for line in body:
            assert "-->" not in line and len(re.findall(r"\d+:\d+:\d+[.,]\d+", line)) == 0, line
            assert not line.strip().isdigit(), line
            assert not re.search(r"<\s*/?\s*[A-Za-z!]", line), line  # no tag (b, i, u, font, ...)
            assert "{" not in line and "}" not in line, line            # no ASS override block
            assert not re.search(r"\\[Nnh]", line), line               # no ASS/VLC escape
            assert not re.search(r"&[#A-Za-z]", line), line            # no entity
        cues.append((ms(m.groups()[:4]), ms(m.groups()[4:]), "\n".join(body)))
    return cues


def strict_vtt(text: str) -> list[tuple[int, int, str]]:
    """WebVTT as W3C parses it: `WEBVTT`, a blank line, then blocks separated by blank lines; a cue
    block is an optional identifier (no `-->`), a timing line, and payload lines up to the next blank
    line; the payload has no `-->`, no tag (`<` only as `&lt;`) and `&` only in an entity."""
    assert text.startswith("WEBVTT\n\n") and text.endswith("\n\n")
    cues = []
    for block in text[len("WEBVTT\n\n"):-2].split("\n\n"):
        lines = block.split("\n")
        if "-->" not in lines[0]:
            lines = lines[1:]
        m = re.fullmatch(f"{TS_VTT} --> {TS_VTT}", lines[0])
        assert m, block
        body = lines[1:]
        assert body and all(line.strip() for line in body), block
        for line in body:
            assert "-->" not in line and "<" not in line and ">" not in line, line
            assert not re.search(r"&(?!(amp|lt|gt);)", line), line
            assert not re.search(r"\d+:\d+[.,]\d+", line), line  # no timestamp for lenient parsers
            assert not line.strip().isdigit(), line
            assert not re.search(r"\{\\", line), line
        payload = "\n".join(body).replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
        cues.append((ms(m.groups()[:4]), ms(m.groups()[4:]), payload))
    return cues


def cues_of(texts):
    return [Cue(start=i * 1.5 + 0.25, end=i * 1.5 + 1.25, text=t) for i, t in enumerate(texts)]


@pytest.mark.parametrize("fmt", ["srt", "vtt"])
def test_sidecars_parse_back_to_the_same_cues_with_pysubs2_and_a_strict_parser(fmt):
    cues = cues_of(NASTY)
    text = srt_text(cues) if fmt == "srt" else vtt_text(cues)
    want = [(round(c.start * 1000), round(c.end * 1000), visible(c.text)) for c in cues]

    strict = strict_srt(text) if fmt == "srt" else strict_vtt(text)
    assert [(a, b, unneutralise(t)) for a, b, t in strict] == want

    def read(**kw):
        out = []
        for ev in pysubs2.SSAFile.from_string(text, format_=fmt, **kw):
            t = ev.text.replace("\\N", "\n")
            if fmt == "vtt":
                t = t.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
            out.append((ev.start, ev.end, unneutralise(t)))
        return out

    assert read(keep_html_tags=True) == want
    assert read() == want  # pysubs2's defaults convert or strip HTML tags: there are none to touch


def test_neutralised_text_reads_the_same():
    srt = strict_srt(srt_text(cues_of(["{\\an8}<b>x</b> --> 00:00:01,000"])))[0][2]
    assert srt == "\uff5b\\an8\uff5d<\u200bb>x<\u200b/b> --\u200b> 00:\u200b00:\u200b01,000"
    vtt = vtt_text(cues_of(["{\\an8}<b>x</b> & 42"]))
    assert "{\u200b\\an8}&lt;b&gt;x&lt;/b&gt; &amp; 42\n" in vtt
    assert "\n\u200b42\n" in srt_text(cues_of(["Count:\n42"]))


# U+2028 LINE SEPARATOR, U+2029 PARAGRAPH SEPARATOR, U+0085 NEXT LINE: line breaks for Python's
# splitlines() and some parsers, so they are newlines in every caption output
SEPARATORS = [
    "one\u2028two",
    "para\u2029\u2029after an empty paragraph",
    "next\x85line",
    "cut\u202800:00:09,000 --> 00:00:10,000\u202842\u2029hidden cue?",
    "\u2028lead and trail\u2029",
]


@pytest.mark.parametrize("fmt", ["srt", "vtt"])
def test_line_separators_are_newlines_in_the_sidecars(fmt):
    cues = cues_of(SEPARATORS)
    text = srt_text(cues) if fmt == "srt" else vtt_text(cues)
    assert not any(sep in text for sep in "\u2028\u2029\x85")
    assert text.splitlines() == text.split("\n")[:-1]  # splitlines() sees the lines a strict parser sees
    newline = str.maketrans({"\u2028": "\n", "\u2029": "\n", "\x85": "\n"})
    want = [(round(c.start * 1000), round(c.end * 1000), visible(c.text.translate(newline))) for c in cues]
    assert want[0][2] == "one\ntwo" and want[3][2] == "cut\n00:00:09,000 --> 00:00:10,000\n42\nhidden cue?"
    strict = strict_srt(text) if fmt == "srt" else strict_vtt(text)
    assert [(a, b, unneutralise(t)) for a, b, t in strict] == want
    read = [(ev.start, ev.end, unneutralise(ev.text.replace("\\N", "\n").replace("&gt;", ">").replace("&amp;", "&")))
            for ev in pysubs2.SSAFile.from_string(text, format_=fmt)]
    assert read == want


def test_line_separators_are_line_breaks_in_the_burn_in():
    from render_job.subtitles import escape_ass
    assert escape_ass("a\u2028b\u2029c\x85d\r\ne") == "a\\Nb\\Nc\\Nd\\Ne"


def test_burn_in_drops_blank_lines_like_the_sidecars():
    # trial 2: "a\n\nb" left an empty line in the burned-in caption while the SRT/VTT dropped it
    from render_job.subtitles import ass_text

    cues = [Cue(start=0.0, end=1.0, text="first\n\n  \nsecond"), Cue(start=1.0, end=2.0, text="\u2029lead\n \ntrail\n")]
    events = [line.split(",", 9)[9] for line in ass_text(cues, 1280, 720, fps=30).splitlines()
              if line.startswith("Dialogue:")]
    assert events == ["first\\Nsecond", "lead\\Ntrail"]
    assert "first\nsecond\n" in srt_text(cues) and "lead\ntrail\n" in vtt_text(cues)
