"""Caption files: SRT and WebVTT sidecars, and the ASS script burned in by libass.

Text building is pure (`srt_text`, `vtt_text`, `ass_text`, `escape_ass`); `write_captions` writes
the files. Caption text must show literally: quotes, apostrophes, colons, percent signs, braces and
backslashes included. ASS escaping used (libass): `{` -> `\\{`, `}` -> `\\}`, and a backslash that
would start an escape (`\\N`, `\\n`, `\\h`, `\\{`, `\\}`) gets an invisible WORD JOINER (U+2060) after
it. Newlines in a caption become line breaks. Long lines wrap (ASS WrapStyle 0, smart wrapping).
"""
from __future__ import annotations

import os
import re
from typing import Iterable, Sequence

import pysubs2

from render_job.plan import Cue

FONT_NAME = "DejaVu Sans"
FONTS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fonts")
ASS_FILE = "captions.ass"
SRT_FILE = "captions.srt"
VTT_FILE = "captions.vtt"

_WJ = "\u2060"
_ESCAPE_START = re.compile(r"\\(?=[Nnh{}])")


def escape_ass(text: str) -> str:
    """Escape plain text for an ASS Dialogue line so libass renders it literally.

    Returns:
        The escaped text; newlines become `\\N` (ASS hard line break).
    """
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = _ESCAPE_START.sub("\\\\" + _WJ, text)
    text = text.replace("{", "\\{").replace("}", "\\}")
    return text.replace("\n", "\\N")


def _ms(seconds: float) -> int:
    return int(round(seconds * 1000))


def _plain_for_sidecar(text: str) -> str:
    """pysubs2's SRT/VTT writer turns `\\N`, `\\n`, `\\h` into whitespace: protect literal ones."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    return re.sub(r"\\(?=[Nnh])", "\\\\" + _WJ, text)


def _sidecar_file(cues: Iterable[Cue], vtt: bool) -> pysubs2.SSAFile:
    subs = pysubs2.SSAFile()
    for cue in cues:
        text = _plain_for_sidecar(cue.text)
        if vtt:
            text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
        # raw newlines are kept verbatim by the writer when keep_ssa_tags=True
        subs.append(pysubs2.SSAEvent(start=_ms(cue.start), end=_ms(cue.end), text=text))
    return subs


def srt_text(cues: Sequence[Cue]) -> str:
    """SubRip text for the cues (times rounded to milliseconds); text is literal (no tags parsed)."""
    return _sidecar_file(cues, vtt=False).to_string("srt", keep_ssa_tags=True)


def vtt_text(cues: Sequence[Cue]) -> str:
    """WebVTT text for the cues; `&`, `<`, `>` are escaped as the format requires."""
    return _sidecar_file(cues, vtt=True).to_string("vtt", keep_ssa_tags=True)


def ass_text(cues: Sequence[Cue], width: int, height: int) -> str:
    """The ASS script for burn-in at width x height pixels.

    Style: DejaVu Sans, size height/18, white text, black outline, bottom centre, side margins of
    5% of the width and a bottom margin of 6% of the height (title-safe area).
    """
    subs = pysubs2.SSAFile()
    subs.info["PlayResX"] = str(width)
    subs.info["PlayResY"] = str(height)
    subs.info["WrapStyle"] = "0"
    subs.info["ScaledBorderAndShadow"] = "yes"
    size = max(12, round(height / 18))
    subs.styles["Default"] = pysubs2.SSAStyle(
        fontname=FONT_NAME, fontsize=size,
        primarycolor=pysubs2.Color(255, 255, 255, 0), secondarycolor=pysubs2.Color(255, 255, 255, 0),
        outlinecolor=pysubs2.Color(0, 0, 0, 0), backcolor=pysubs2.Color(0, 0, 0, 128),
        bold=False, outline=max(1.0, round(size / 16, 1)), shadow=max(0.5, round(size / 40, 1)),
        alignment=pysubs2.Alignment.BOTTOM_CENTER,
        marginl=round(width * 0.05), marginr=round(width * 0.05), marginv=round(height * 0.06),
        encoding=1,
    )
    for cue in cues:
        subs.append(pysubs2.SSAEvent(start=_ms(cue.start), end=_ms(cue.end), text=escape_ass(cue.text),
                                     style="Default"))
    return subs.to_string("ass")


def write_captions(cues: Sequence[Cue], width: int, height: int, workdir: str) -> dict[str, str]:
    """Write captions.ass, captions.srt and captions.vtt into `workdir` (UTF-8).

    Returns:
        {"ass": path, "srt": path, "vtt": path} (absolute paths).
    """
    paths = {"ass": os.path.join(workdir, ASS_FILE), "srt": os.path.join(workdir, SRT_FILE),
             "vtt": os.path.join(workdir, VTT_FILE)}
    for key, text in (("ass", ass_text(cues, width, height)), ("srt", srt_text(cues)), ("vtt", vtt_text(cues))):
        with open(paths[key], "w", encoding="utf-8", newline="\n") as fh:
            fh.write(text)
    return paths
