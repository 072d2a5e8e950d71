"""Line breaks for burned-in tokens libass cannot break (render_job.caption_wrap) and their ASS text."""
from __future__ import annotations

import pysubs2
import pytest

from render_job.caption_wrap import TextMeasure, fit_text
from render_job.plan import CaptionStylePlan, Cue, TitleCard
from render_job.subtitles import ass_text, escape_ass

M = TextMeasure("DejaVu Sans", 40)
CJK = "日本語の字幕は空白なしで長い文章になることがよくあります。「東京タワー」へようこそ！"
URL = "https://example.com/a/very/long/path/without/spaces?query=value&other=thing"


def _lines(text: str) -> list[str]:
    return text.split("\n")


def test_measure_follows_libass_font_size():
    # libass: em = size * unitsPerEm / (usWinAscent + usWinDescent); DejaVu Sans: 2048 / 2384
    w = TextMeasure("DejaVu Sans", 60).width("WWWWWWWW")
    assert 400 < w < 415  # libass draws these 8 W at 60 px 406 px wide
    assert TextMeasure("DejaVu Sans", 60, bold=True).width("abc") > TextMeasure("DejaVu Sans", 60).width("abc")


@pytest.mark.parametrize("text", [CJK, URL, 'color="red">red</font>' * 3, "x" * 120,
                                  "Donaudampfschifffahrtselektrizitätenhauptbetriebswerkbauunterbeamtengesellschaft",
                                  "한국어자막은보통띄어쓰기가있지만이것은아주긴한단어입니다"])
def test_every_line_fits_and_no_character_is_lost(text):
    out = fit_text(text, M, 300)
    assert len(_lines(out)) >= 2
    assert out.replace("\n", "") == text
    assert all(M.width(line) <= 300 for line in _lines(out)), out


def test_cjk_breaks_between_ideographs_but_not_before_closing_punctuation():
    out = fit_text(CJK, M, 300)
    for line in _lines(out)[1:]:
        assert line[0] not in "、。」！ー", out
    for line in _lines(out)[:-1]:
        assert line[-1] != "「", out


def test_urls_break_after_a_separator():
    lines = _lines(fit_text(URL, M, 400))
    assert all(line[-1] in "/-.?&=_" for line in lines[:-1]), lines


def test_emoji_sequences_and_combining_marks_stay_whole():
    family = "\U0001F468\u200d\U0001F469\u200d\U0001F467"
    text = (family + "e\u0301") * 20
    out = fit_text(text, M, 200)
    assert out.replace("\n", "") == text
    for line in _lines(out)[1:]:
        assert line[0] not in ("\u200d", "\u0301") and not line.startswith("\U0001F469")


def test_lines_with_breakable_words_are_left_to_libass():
    text = "Short words only, lots of them, so that libass wraps them by itself"
    assert fit_text(text, M, 300) == text
    # a long token after words: its first piece fills the rest of the line
    out = fit_text("see " + URL, M, 600)
    assert out.startswith("see https://") and M.width(_lines(out)[0]) <= 600


def test_ass_events_get_the_breaks_and_stay_literal():
    text = "{\\an8}" + "{x}" * 40
    style = CaptionStylePlan(size_px=40)
    ass = ass_text([Cue(0, 1, text)], 720, 1280, style, [TitleCard(0, 1, "\\N" + "W" * 40, "#ffffff")])
    subs = pysubs2.SSAFile.from_string(ass)
    caption = [e for e in subs if e.style == "Default"][0].text
    title = [e for e in subs if e.style == "Title"][0].text
    assert caption.count("\\N") >= 2 and caption.startswith("\\{\\an8\\}")
    # without the inserted breaks, the text is the escaped caption
    assert caption.replace("\\N", "") == escape_ass(text)
    assert title.split("}", 1)[1].startswith("\\\u2060N") and title.count("\\N") >= 2


FLAGS = "🇺🇸🇬🇧🇫🇷🇩🇪🇪🇸🇮🇹🇯🇵🇰🇷🇧🇷🇲🇽"  # 10 flags, 2 regional indicators each
FAMILY = "\U0001F468\u200d\U0001F469\u200d\U0001F467\u200d\U0001F466"
SKIN = "\U0001F44D\U0001F3FD\U0001F44B\U0001F3FF\U0001F64C\U0001F3FB\u270C\uFE0F"


def _check_fits(text: str, width: float, clusters: list[str]) -> list[str]:
    """fit_text's lines for `text`: none wider than `width`, nothing lost, no cluster of `clusters` split."""
    lines = _lines(fit_text(text, M, width))
    assert "".join(lines) == text
    assert all(M.width(line) <= width for line in lines), lines
    starts = {len("".join(lines[:i])) for i in range(1, len(lines))}  # where each line starts in text
    pos = 0
    for c in clusters:
        assert not any(pos < s < pos + len(c) for s in starts), (c, lines)
        pos += len(c)
    return lines


@pytest.mark.parametrize("n", [10, 30])
def test_a_row_of_flags_breaks_between_flags_never_inside_one(n):
    text = (FLAGS * 3)[:2 * n]
    lines = _check_fits(text, 300, [text[i:i + 2] for i in range(0, len(text), 2)])
    assert len(lines) >= 2
    assert all(len(line) % 2 == 0 for line in lines)  # whole flags on every line


def test_zwj_families_break_between_sequences_and_a_long_chain_still_fits():
    text = FAMILY * 12
    lines = _check_fits(text, 300, [FAMILY] * 12)
    assert len(lines) >= 2 and all(line.startswith("\U0001F468") for line in lines)
    # one grapheme cluster 200 emoji long (ZWJ after each): cut after a ZWJ, only because nothing else fits
    chain = "\U0001F468\u200d" * 200
    lines = _lines(fit_text(chain, M, 300))
    assert "".join(lines) == chain and len(lines) >= 10
    assert all(M.width(line) <= 300 and line.endswith("\u200d") for line in lines), lines


def test_skin_tones_and_variation_selectors_stay_with_their_emoji():
    text = SKIN * 8
    clusters = ["\U0001F44D\U0001F3FD", "\U0001F44B\U0001F3FF", "\U0001F64C\U0001F3FB", "\u270C\uFE0F"] * 8
    lines = _check_fits(text, 200, clusters)
    assert len(lines) >= 2


def test_word_joiners_and_combining_marks_only_break_when_nothing_else_fits():
    # a letter + ZWJ / word joiner repeated: no UAX #14 break anywhere, so the overflow fallback breaks
    for text in ["x\u200d" * 100, "x\u2060" * 100]:
        lines = _lines(fit_text(text, M, 300))
        assert "".join(lines) == text and len(lines) >= 2
        assert all(M.width(line) <= 300 for line in lines), lines
    # a word joiner is respected where another break fits: "a\u2060b" pairs stay together
    text = "ab\u2060cd-" * 20
    lines = _lines(fit_text(text, M, 300))
    assert "".join(lines) == text and all(line.endswith("-") for line in lines[:-1]), lines
    # Hangul from conjoining jamo: a syllable (L V T) is one cluster
    syllable = "\u1100\u1161\u11a8"
    _check_fits(syllable * 40, 200, [syllable] * 40)
    decomposed = "e\u0301\u0323" * 60
    _check_fits(decomposed, 200, ["e\u0301\u0323"] * 60)
