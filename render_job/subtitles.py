"""Caption files: SRT and WebVTT sidecars, and the ASS script burned in by libass.

Text building is pure (`srt_text`, `vtt_text`, `escape_ass`; `ass_text` only reads font files to
measure text); `write_captions` writes the files. Caption text must show literally: quotes,
apostrophes, colons, percent signs, braces and backslashes included. ASS escaping used (libass):
`{` -> `\\{`, `}` -> `\\}`, and a backslash that would start an escape (`\\N`, `\\n`, `\\h`, `\\{`,
`\\}`) gets an invisible WORD JOINER (U+2060) after it. Newlines in a caption (also U+2028, U+2029
and U+0085, which splitlines() and some parsers take for line breaks) become line breaks, in the
burn-in and in the sidecars; blank lines inside a caption are dropped in both. Long lines wrap (ASS
WrapStyle 0, smart wrapping, at spaces); a token wider than the safe area (CJK text, a URL) gets
line breaks from render_job.caption_wrap, since libass cannot break it.
"""
from __future__ import annotations

import math
import os
import re
from typing import Sequence

import pysubs2

from render_job.caption_wrap import FONTS_DIR
from render_job.plan import CaptionStylePlan, Cue, RenderPlan, TitleCard
from render_job.text_fit import Fit, fit_cached

FONT_NAME = "DejaVu Sans"
ASS_FILE = "captions.ass"
SRT_FILE = "captions.srt"
VTT_FILE = "captions.vtt"

_WJ = "\u2060"
_ESCAPE_START = re.compile(r"\\(?=[Nnh{}])")
# line and paragraph separators, NEXT LINE: Python's splitlines() and some subtitle parsers break lines
# there, so they are newlines everywhere (the spec refuses the other control characters)
_NEWLINES = str.maketrans({"\u2028": "\n", "\u2029": "\n", "\x85": "\n"})


def plain_newlines(text: str) -> str:
    """`text` with CRLF, CR, U+2028, U+2029 and U+0085 as "\\n"."""
    return text.replace("\r\n", "\n").replace("\r", "\n").translate(_NEWLINES)


def escape_ass(text: str) -> str:
    """Escape plain text for an ASS Dialogue line so libass renders it literally.

    Returns:
        The escaped text; newlines (plain_newlines) become `\\N` (ASS hard line break).
    """
    text = plain_newlines(text)
    text = _ESCAPE_START.sub("\\\\" + _WJ, text)
    text = text.replace("{", "\\{").replace("}", "\\}")
    return text.replace("\n", "\\N")


def _ms(seconds: float) -> int:
    return int(round(seconds * 1000))


def _timestamp(seconds: float, sep: str) -> str:
    ms = max(0, _ms(seconds))
    h, rest = divmod(ms, 3_600_000)
    m, rest = divmod(rest, 60_000)
    sec, ms = divmod(rest, 1000)
    return f"{h:02d}:{m:02d}:{sec:02d}{sep}{ms:03d}"


_ZWSP = "\u200b"  # ZERO WIDTH SPACE: invisible, and breaks every markup and timing pattern it sits in
# a timestamp look-alike (h:mm:ss,mmm or mm:ss.mmm): pysubs2 and other lenient parsers take any line
# with two of them for a timing line, with or without the arrow
_TIMESTAMP_LIKE = re.compile(r"\d+:\d+(?::\d+)?[.,]\d+")
_SRT_BRACES = str.maketrans({"{": "\uff5b", "}": "\uff5d"})  # FULLWIDTH LEFT/RIGHT CURLY BRACKET


def _cue_lines(text: str) -> list[str]:
    """A caption's lines: newlines normalised, blank and whitespace-only lines (which end a cue in
    SRT and WebVTT) dropped. The burn-in (ass_text) drops them too: one text everywhere."""
    return [line for line in plain_newlines(text).split("\n") if line.strip()]


def _plain_timing(line: str) -> str:
    """Neutralise timing-line look-alikes and escapes: `-->`, the colons of timestamp-like numbers and
    a backslash before `N`, `n` or `h` (a line break for VLC, libass and pysubs2) get a ZWSP after
    them; a line of digits only (read as a cue number) starts with one."""
    line = re.sub(r"\\(?=[Nnh])", "\\" + _ZWSP, line.replace("-->", "--" + _ZWSP + ">"))
    line = _TIMESTAMP_LIKE.sub(lambda m: m.group(0).replace(":", ":" + _ZWSP), line)
    return _ZWSP + line if line.strip().isdigit() else line


def srt_cue_text(text: str) -> str:
    """Caption text for an SRT cue, shown literally by common players (VLC, mpv/FFmpeg, browsers'
    SRT libraries) and parsed back as one cue with the same visible text:

    - `<` and `&` get a ZWSP after them (no `<b>`, `<i>`, `<font>` tag, no `&lt;` entity);
    - `{` `}` become FULLWIDTH CURLY BRACKETS U+FF5B/U+FF5D: FFmpeg's SRT decoder (mpv, FFmpeg's
      `subtitles` filter) passes `{...}` to libass, which would hide it as an override block
      (`{\\an8}`, `{hello}`), whatever is inserted inside;
    - escapes, timing look-alikes and blank lines as in _plain_timing and _cue_lines.
    """
    return "\n".join(_plain_timing(line.translate(_SRT_BRACES).replace("<", "<" + _ZWSP).replace("&", "&" + _ZWSP))
                     for line in _cue_lines(text))


def vtt_cue_text(text: str) -> str:
    """Caption text for a WebVTT cue: `&`, `<`, `>` as entities (W3C WebVTT: no tag, no `-->`), a
    ZWSP after `{` (no `{\\an8}` for players that read SRT-style overrides), escapes, timing
    look-alikes and blank lines as in _plain_timing and _cue_lines."""
    return "\n".join(_plain_timing(line.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
                                    .replace("{", "{" + _ZWSP))
                      for line in _cue_lines(text))


def srt_text(cues: Sequence[Cue]) -> str:
    """SubRip text for the cues (times rounded to milliseconds); text through srt_cue_text.

    Written directly rather than through pysubs2, whose writers treat the text as ASS markup
    (`{\\p1}` makes a cue a "drawing" that is dropped, `\\N` becomes a line break)."""
    return "".join(f"{i}\n{_timestamp(c.start, ',')} --> {_timestamp(c.end, ',')}\n{srt_cue_text(c.text)}\n\n"
                   for i, c in enumerate(cues, 1))


def vtt_text(cues: Sequence[Cue]) -> str:
    """WebVTT text for the cues; text through vtt_cue_text."""
    body = "".join(f"{i}\n{_timestamp(c.start, '.')} --> {_timestamp(c.end, '.')}\n{vtt_cue_text(c.text)}\n\n"
                   for i, c in enumerate(cues, 1))
    return "WEBVTT\n\n" + body


_ALIGN = {"bottom": pysubs2.Alignment.BOTTOM_CENTER, "middle": pysubs2.Alignment.MIDDLE_CENTER,
          "top": pysubs2.Alignment.TOP_CENTER}
SAFE_SIDE = 0.05      # side margins (each) as a fraction of the width: text wraps within 90%
SAFE_VERTICAL = 0.06  # top/bottom margin as a fraction of the height
TITLE_SIDE = 0.10     # title cards wrap within 80% of the width
TITLE_SIZE = 1 / 12   # title text size as a fraction of the height
FIT_SLACK = 0.03      # fit_text fills 97% of the area: its widths ignore kerning and shaping


def _color(hex_rgb: str, alpha: int = 0) -> pysubs2.Color:
    v = hex_rgb.lstrip("#")
    return pysubs2.Color(int(v[0:2], 16), int(v[2:4], 16), int(v[4:6], 16), alpha)


def _frame_ms(seconds: float, fps: int | None) -> int:
    """An ASS time (whole centiseconds, in ms) that libass compares like our frame rule.

    Without fps: the nearest centisecond. With fps: the first frame n at or after `seconds`
    (n = ceil(seconds * fps)), then the last centisecond at or before that frame's time n / fps.
    Frames are at least 1/60 s apart, more than a centisecond, so that centisecond lies after the
    previous frame: libass (start <= t < end, t the frame time in ms) then shows a cue on exactly
    the frames n with start <= n / fps < end, like render_job.caption_overlay; rounding to the
    nearest centisecond instead loses or adds a frame where a boundary is off the 10 ms grid.
    """
    if not fps:
        return _ms(seconds)
    n = max(0, math.ceil(seconds * fps - 1e-6))
    return (n * 100 // fps) * 10


def _fitter(font: str, size_px: int, bold: bool, area_w: int, area_h: int):
    """text -> text_fit.Fit: line breaks inside the tokens wider than area_w (less FIT_SLACK), and a
    smaller size when the lines would be taller than area_h pixels; fonts are read on first use, and
    each text is fitted once per job (text_fit.fit_cached), however many passes ask."""

    def fit(text: str) -> Fit:
        return fit_cached(plain_newlines(text), font, size_px, bold, area_w * (1 - FIT_SLACK), area_h)
    return fit


def _size_tag(fit: Fit, size: int) -> str:
    """`{\\fsN}` when the text is drawn smaller than the style's size, else nothing."""
    return f"{{\\fs{fit.size_px}}}" if fit.size_px < size else ""


def _fitters(width: int, height: int, st: CaptionStylePlan):
    """(caption fitter, caption size, title fitter, title size, caption shadow, caption pad) for burn-in
    at width x height: the areas as ass_text's styles place the text (outline, shadow and a pixel of
    anti-aliasing inside them; a caption's vertical margin is the 6 % plus its pad)."""
    shadow = max(0.5, round(st.size_px / 40, 1)) if st.outline_width else 0
    # the outline, the shadow and a pixel of anti-aliasing are drawn outside the glyphs; an even pad
    # keeps the captions' 4:2:0 chroma phase (caption_overlay matches libass best there)
    pad = 2 * math.ceil((st.outline_width + shadow + 1) / 2)
    side, margin_v = round(width * SAFE_SIDE) + pad, round(height * SAFE_VERTICAL)
    title_size = max(12, round(height * TITLE_SIZE))
    caption_fit = _fitter(st.font, st.size_px, False, width - 2 * side, height - 2 * (margin_v + pad))
    title_fit = _fitter(st.font, title_size, True, width - 2 * round(width * TITLE_SIDE), height - 2 * margin_v - 2)
    return caption_fit, st.size_px, title_fit, title_size, shadow, pad


def fit_warnings(plan: RenderPlan) -> tuple[tuple[str, str], ...]:
    """(path, message) for each burned-in caption cue or title card drawn smaller than its size so
    that all its lines fit the frame's safe area (the same sizes as ass_text)."""
    st = plan.caption_style
    caption_fit, size, title_fit, title_size, _, _ = _fitters(plan.width, plan.height, st)
    items = [(t.path, t.text, title_fit, title_size) for t in plan.titles]
    if plan.burn_in:
        items += [(c.path, "\n".join(_cue_lines(c.text)), caption_fit, size) for c in plan.cues]
    out: list[tuple[str, str]] = []
    seen: set[str] = set()
    for path, text, fitter, nominal in items:
        fit = fitter(text)
        if fit.size_px < nominal and path not in seen:
            seen.add(path)
            which = f"all {fit.lines} lines fit" if fit.lines > 1 else "its line fits"
            out.append((path or "captions", f"drawn at {fit.size_px} px instead of {nominal} px so that "
                                            f"{which} inside the frame's safe area"))
    return tuple(out)


def ass_text(cues: Sequence[Cue], width: int, height: int, style: CaptionStylePlan | None = None,
             titles: Sequence[TitleCard] = (), fps: int | None = None) -> str:
    """The ASS script for burn-in at width x height pixels (PlayRes = the frame, so sizes are pixels).

    Captions ("Default" style, layer 1): `style` (default DejaVu Sans, size height/18, white with a
    black outline, bottom), centred, wrapped (WrapStyle 0) inside side margins of 5% of the width and
    a top/bottom margin of 6% of the height (the title-safe area), both grown by the outline and
    shadow so that these stay inside too.
    Title cards ("Title" style, layer 0): the same font at height/12 in the card's text colour,
    centred in the middle, wrapped inside 80% of the width, faded in/out over the card's transitions.
    Tokens wider than their area get line breaks (caption_wrap.fit_text; reads the font files).
    fps: the output frame rate: event times are then placed on the frame grid (_frame_ms).
    """
    st = style or CaptionStylePlan(size_px=max(12, round(height / 18)))
    subs = pysubs2.SSAFile()
    subs.info["PlayResX"] = str(width)
    subs.info["PlayResY"] = str(height)
    subs.info["WrapStyle"] = "0"
    subs.info["ScaledBorderAndShadow"] = "yes"
    # colours are BT.709 (our output's matrix): without this line libass / FFmpeg's `subtitles` filter
    # assume TV.601 and burn every caption colour with the wrong matrix (yellow #ffee00: Y 201, not 209)
    subs.info["YCbCr Matrix"] = "TV.709"
    caption_fit, size, title_fit, title_size, shadow, pad = _fitters(width, height, st)
    side = round(width * SAFE_SIDE) + pad
    subs.styles["Default"] = pysubs2.SSAStyle(
        fontname=st.font, fontsize=size,
        primarycolor=_color(st.color), secondarycolor=_color(st.color),
        outlinecolor=_color(st.outline_color), backcolor=pysubs2.Color(0, 0, 0, 128),
        bold=False, outline=st.outline_width, shadow=shadow,
        alignment=_ALIGN.get(st.position, pysubs2.Alignment.BOTTOM_CENTER),
        marginl=side, marginr=side, marginv=round(height * SAFE_VERTICAL) + pad,
        encoding=1,
    )
    if titles:
        subs.styles["Title"] = pysubs2.SSAStyle(
            fontname=st.font, fontsize=title_size,
            primarycolor=_color(titles[0].color), secondarycolor=_color(titles[0].color),
            outlinecolor=pysubs2.Color(0, 0, 0, 255), backcolor=pysubs2.Color(0, 0, 0, 255),
            bold=True, outline=0, shadow=0, alignment=pysubs2.Alignment.MIDDLE_CENTER,
            marginl=round(width * TITLE_SIDE), marginr=round(width * TITLE_SIDE),
            marginv=round(height * SAFE_VERTICAL), encoding=1,
        )
    for t in titles:
        c = _color(t.color)
        tags = f"{{\\fad({_ms(t.fade_in)},{_ms(t.fade_out)})\\1c&H{c.b:02X}{c.g:02X}{c.r:02X}&}}"
        fit = title_fit(t.text)
        subs.append(pysubs2.SSAEvent(start=_frame_ms(t.start, fps), end=_frame_ms(t.end, fps),
                                     text=tags + _size_tag(fit, title_size) + escape_ass(fit.text),
                                     style="Title", layer=0))
    for cue in cues:
        start, end = _frame_ms(cue.start, fps), _frame_ms(cue.end, fps)
        if end > start:  # a cue between two frames shows on none (as in caption_overlay)
            text = "\n".join(_cue_lines(cue.text))  # no empty gap where the sidecars have none
            fit = caption_fit(text)
            subs.append(pysubs2.SSAEvent(start=start, end=end, text=_size_tag(fit, size) + escape_ass(fit.text),
                                         style="Default", layer=1))
    return subs.to_string("ass")


def write_captions(cues: Sequence[Cue], width: int, height: int, workdir: str,
                   style: CaptionStylePlan | None = None, titles: Sequence[TitleCard] = (),
                   burn_in: bool = True, fps: int | None = None) -> dict[str, str]:
    """Write captions.ass (title cards, and the cues when `burn_in`), captions.srt and captions.vtt
    (the cues) into `workdir` (UTF-8).

    Returns:
        {"ass": path, "srt": path, "vtt": path} (absolute paths).
    """
    paths = {"ass": os.path.join(workdir, ASS_FILE), "srt": os.path.join(workdir, SRT_FILE),
             "vtt": os.path.join(workdir, VTT_FILE)}
    ass = ass_text(cues if burn_in else (), width, height, style, titles, fps=fps)
    for key, text in (("ass", ass), ("srt", srt_text(cues)), ("vtt", vtt_text(cues))):
        with open(paths[key], "w", encoding="utf-8", newline="\n") as fh:
            fh.write(text)
    return paths
