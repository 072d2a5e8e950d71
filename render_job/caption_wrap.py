"""Break opportunities libass lacks: burned-in text that has no space to break at is broken here.

libass (WrapStyle 0) breaks a line only at spaces (not at U+200B, not between CJK characters), so
CJK text, a URL or a long compound word wider than the safe area ran off the frame. fit_text()
measures each space-separated token with the fonts libass will use; a token wider than the area
gets hard line breaks (`\\n`, written as ASS `\\N`) from a greedy fill over its extended grapheme
clusters (UAX #29, the `regex` module's \\X: a flag, an emoji ZWJ sequence, a base and its marks stay
whole), preferring, as UAX #14 would, a break between CJK ideographs / kana / hangul / emoji / flags
(not before closing punctuation or small kana, not after opening brackets) or after `/ - . ? & = _`,
else anywhere between two clusters (CSS overflow-wrap: anywhere), next to a word joiner only when
nothing else fits; a single cluster wider than the whole area is cut after its ZWJs, then between
characters. Lines whose tokens all fit are left to libass's smart wrapping.

Fonts (TextMeasure): "DejaVu Sans" is the bundled render_job/fonts file (the one libass gets through
fontsdir); each character goes to the first font of fontconfig's sorted match for the family
(`fc-match -s`, the fallback order libass's fontconfig provider uses) whose charset has it. A missing
family is measured with fontconfig's substitute (what libass falls back to); without fontconfig, the
bundled DejaVu Sans. Sizes follow libass: a font of size S px has an em of
S * unitsPerEm / (usWinAscent + usWinDescent) pixels. Widths are sums of glyph advances (no
kerning or shaping), so callers keep a small margin; a ligature (a flag, an emoji ZWJ sequence drawn
as one glyph by a colour emoji font) is measured as its parts, i.e. wider than drawn.
"""
from __future__ import annotations

import bisect
import functools
import os
import struct
import subprocess
import unicodedata

import regex
from PIL import ImageFont

FONTS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fonts")
BUNDLED = {False: os.path.join(FONTS_DIR, "DejaVuSans.ttf"), True: os.path.join(FONTS_DIR, "DejaVuSans-Bold.ttf")}
_LOAD_PX = 256           # fonts are loaded at this em size and widths scaled linearly
_FC_TIMEOUT_S = 20.0

# after these a break is preferred inside a long Latin token (URL paths, queries, compounds)
_SOFT_AFTER = set("/-.?&=_")
# UAX #14 classes CL, CP, EX, IS, NS (kinsoku): no line starts with one of these
_NO_START = set("、。，．・：；？！‼⁇⁈⁉ー〜～ゝゞヽヾ々〻ぁぃぅぇぉっゃゅょゎゕゖァィゥェォッャュョヮヵヶㇰㇱㇲㇳㇴㇵㇶㇷㇸㇹㇺㇻㇼㇽㇾㇿ"
                "」』）］｝〕〉》】〙〗〟’”｠»›,.:;!?)]}%")
# UAX #14 class OP: no line ends with one of these
_NO_END = set("「『（［｛〔〈《【〘〖〝‘“｟«‹([{")


def _charset(spec: str) -> list[tuple[int, int]]:
    """fontconfig's charset text ("20-7e a0 ...", hex) as sorted (lo, hi) ranges."""
    out = []
    for part in spec.split():
        lo, _, hi = part.partition("-")
        out.append((int(lo, 16), int(hi or lo, 16)))
    return sorted(out)


def _has(ranges: list[tuple[int, int]] | None, cp: int) -> bool:
    if ranges is None:
        return True
    i = bisect.bisect_right(ranges, (cp, 0x7FFFFFFF)) - 1
    return i >= 0 and ranges[i][0] <= cp <= ranges[i][1]


def _run(argv: list[str]) -> str:
    try:
        proc = subprocess.run(argv, capture_output=True, timeout=_FC_TIMEOUT_S, check=False)
    except (OSError, subprocess.SubprocessError):
        return ""
    return proc.stdout.decode("utf-8", "replace") if proc.returncode == 0 else ""


@functools.lru_cache(maxsize=32)
def _fc_sorted(family: str, bold: bool) -> tuple[tuple[str, int, tuple[tuple[int, int], ...]], ...]:
    """fontconfig's fallback list for the family: ((file, face index, charset ranges), ...); () without
    fontconfig."""
    pattern = f"{family}:weight={'bold' if bold else 'regular'}"
    text = _run(["fc-match", "-s", "-f", "%{file}|%{index}|%{charset}\n", pattern])
    out = []
    for line in text.splitlines():
        path, _, rest = line.partition("|")
        index, _, cs = rest.partition("|")
        try:
            if path and os.path.isfile(path) and index.isdigit():
                out.append((path, int(index), tuple(_charset(cs))))
        except ValueError:  # an unreadable charset: leave the font out
            continue
    return tuple(out)


@functools.lru_cache(maxsize=8)
def _fc_charset(path: str) -> tuple[tuple[int, int], ...] | None:
    text = _run(["fc-query", "-f", "%{charset}\n", path])
    try:
        return tuple(_charset(text.splitlines()[0])) if text.strip() else None
    except ValueError:
        return None


@functools.lru_cache(maxsize=64)
def font_metrics(path: str, index: int) -> tuple[int, int, int, int, int]:
    """(unitsPerEm, hhea ascender, hhea descender, OS/2 usWinAscent, usWinDescent) of face `index` of
    the sfnt file `path` (a TrueType/OpenType collection or a single font); 0 for a missing table.
    Raises OSError, struct.error, KeyError (no `head`) on a file that is not one."""
    with open(path, "rb") as fh:
        head = fh.read(12)
        base = 0
        if head[:4] == b"ttcf":
            fh.seek(12 + 4 * index)
            base = struct.unpack(">I", fh.read(4))[0]
            fh.seek(base)
            head = fh.read(12)
        fh.seek(base + 12)
        tables = {}
        for _ in range(struct.unpack(">H", head[4:6])[0]):
            tag, _, off, _ = struct.unpack(">4sIII", fh.read(16))
            tables[tag] = off
        fh.seek(tables[b"head"] + 18)
        upem = struct.unpack(">H", fh.read(2))[0]
        h_asc = h_desc = w_asc = w_desc = 0
        if b"hhea" in tables:
            fh.seek(tables[b"hhea"] + 4)
            h_asc, h_desc = struct.unpack(">hh", fh.read(4))
        if b"OS/2" in tables:
            fh.seek(tables[b"OS/2"] + 74)
            w_asc, w_desc = struct.unpack(">HH", fh.read(4))
    return upem, h_asc, h_desc, w_asc, w_desc


def _em_per_size(path: str, index: int) -> float:
    """libass's em / font size: unitsPerEm / (usWinAscent + usWinDescent) (hhea height without OS/2)."""
    upem, h_asc, h_desc, w_asc, w_desc = font_metrics(path, index)
    height = (w_asc + w_desc) or (h_asc - h_desc)
    return upem / height if height > 0 else 1.0


class _Face:
    """One font of the fallback list; its file is opened on first use (the list can be long)."""

    def __init__(self, path: str, index: int, ranges: tuple[tuple[int, int], ...] | None):
        self.path, self.index = path, index
        self.ranges = list(ranges) if ranges is not None else None

    @functools.cached_property
    def loaded(self) -> tuple[ImageFont.FreeTypeFont, float]:
        """(the font at _LOAD_PX or its bitmap strike size, pixels of advance per load px per size px)."""
        em_per_size = _em_per_size(self.path, self.index)
        for px in (_LOAD_PX, 109):  # a bitmap-only font (colour emoji) loads at its strike size only
            try:
                font = ImageFont.truetype(self.path, px, index=self.index, layout_engine=ImageFont.Layout.BASIC)
                return font, em_per_size / px
            except OSError:
                continue
        raise OSError(f"cannot load {self.path}")


@functools.lru_cache(maxsize=16)
def _faces(family: str, bold: bool) -> tuple[_Face, ...]:
    faces = [_Face(BUNDLED[bold], 0, _fc_charset(BUNDLED[bold]))] if family.casefold() == "dejavu sans" else []
    for path, index, ranges in _fc_sorted(family, bold):
        if not (faces and index == 0 and os.path.basename(path) == os.path.basename(faces[0].path)):
            faces.append(_Face(path, index, ranges))
    return tuple(faces) or (_Face(BUNDLED[bold], 0, None),)


class TextMeasure:
    """Widths in pixels of text drawn by libass in `family` at `size_px` (bold or not)."""

    def __init__(self, family: str, size_px: float, bold: bool = False):
        self.faces = _faces(family, bold)
        self.size_px = size_px
        self._cache: dict[str, float] = {}

    def advance(self, ch: str) -> float:
        """The advance of one character (pixels); a character no font has: the first font's .notdef."""
        w = self._cache.get(ch)
        if w is None:
            cp = ord(ch)
            w = None
            for face in [f for f in self.faces if _has(f.ranges, cp)] + [self.faces[0]]:
                try:
                    font, scale = face.loaded
                except (OSError, KeyError, ValueError, struct.error):  # unreadable or not a font: the next one
                    continue
                w = font.getlength(ch) * scale * self.size_px
                break
            w = w if w is not None else float(self.size_px)  # no font loads at all: a square
            self._cache[ch] = w
        return w

    def width(self, text: str) -> float:
        return sum(self.advance(c) for c in text)

    def faces_for(self, text: str) -> list[tuple[str, int]]:
        """(font file, face index) of each font that draws a character of `text` (as advance() picks)."""
        out = []
        for cp in {ord(c) for c in text}:
            face = next((f for f in self.faces if _has(f.ranges, cp)), self.faces[0])
            if (face.path, face.index) not in out:
                out.append((face.path, face.index))
        return out


# Extended grapheme clusters (UAX #29): a flag (2 regional indicators), an emoji ZWJ sequence, a base
# with its combining marks / variation selectors / skin tone, a Hangul syllable from jamo
_CLUSTER = regex.compile(r"\X")
_ZWJ_PART = regex.compile(r"[^\u200d]*\u200d|[^\u200d]+")
_CHAR_MARKS = regex.compile(r".[\p{Mn}\p{Me}]*", regex.DOTALL)
# UAX #14 classes (a cluster breaks like its first character, LB9): ideographic-like (break before and
# after: ID, EB, EM, Hangul, RI pairs (LB30a), pictographs); no line starts with CL CP EX IS NS CJ
# (kinsoku); none ends with OP; WJ and GL glue to both sides (LB11, LB12)
_IDEO = regex.compile(r"[\p{lb=ID}\p{lb=EB}\p{lb=EM}\p{lb=RI}\p{lb=H2}\p{lb=H3}\p{lb=JL}\p{lb=JV}"
                      r"\p{lb=JT}\p{Extended_Pictographic}]")
_NO_START_LB = regex.compile(r"[\p{lb=CL}\p{lb=CP}\p{lb=EX}\p{lb=IS}\p{lb=NS}\p{lb=CJ}]")
_NO_END_LB = regex.compile(r"\p{lb=OP}")
_GLUE = regex.compile(r"[\p{lb=WJ}\p{lb=GL}]")


def _ideo(ch: str) -> bool:
    return unicodedata.east_asian_width(ch) in ("W", "F") or bool(_IDEO.match(ch))


def _break_kind(prev: str, cur: str) -> int:
    """Between two units (clusters): 0: only when nothing else fits (next to a joiner); 1: a break
    anywhere (CSS overflow-wrap: anywhere); 2: a preferred break (UAX #14-like)."""
    a, b = prev[0], cur[0]
    if prev[-1] == "\u200d" or _GLUE.match(a) or _GLUE.match(b):
        return 0  # LB8a (after ZWJ), LB11/LB12 (word joiner, no-break space)
    if a == "\u200b":
        return 2  # a zero-width space marks a break opportunity (libass ignores it)
    if a in _SOFT_AFTER and b not in _SOFT_AFTER:
        return 2
    if ((_ideo(a) or _ideo(b)) and b not in _NO_START and not _NO_START_LB.match(b)
            and a not in _NO_END and not _NO_END_LB.match(a)):
        return 2
    return 1


def _units(token: str, m: TextMeasure, full: float) -> list[str]:
    """`token` as grapheme clusters, never split, but for a cluster wider than `full` alone (a long
    emoji ZWJ chain, a base with a run of spacing marks): that one is cut after each ZWJ, and a part
    still wider into characters, each with its nonspacing marks."""
    out: list[str] = []
    for cluster in _CLUSTER.findall(token):
        if m.width(cluster) <= full:
            out.append(cluster)
            continue
        for part in _ZWJ_PART.findall(cluster):
            out.extend([part] if m.width(part) <= full else _CHAR_MARKS.findall(part))
    return out


def _split_token(token: str, m: TextMeasure, first: float, full: float) -> list[str]:
    """`token` as pieces each at most `first` (the first) or `full` (the others) pixels wide.

    Breaks only between units (_units); the greedy fill takes the last preferred break past half the
    line, else the last break of any kind 1 or 2; when none fits on a whole line, the last unit
    boundary that fits (kind 0 too). Only a single character wider than `full` is kept whole.
    """
    units = _units(token, m, full)
    adv = [m.width(u) for u in units]
    pieces: list[str] = []
    s, budget = 0, first
    while s < len(units):
        total, p = 0.0, s
        while p < len(units) and total + adv[p] <= budget:
            total += adv[p]
            p += 1
        if p == len(units):
            pieces.append("".join(units[s:]))
            break
        best = {1: None, 2: None}
        width = 0.0
        for q in range(s + 1, p + 1):
            width += adv[q - 1]
            kind = _break_kind(units[q - 1], units[q])
            if kind == 1 or (kind == 2 and width < budget / 2):
                best[1] = q
            elif kind == 2:
                best[2] = q
        q = best[2] or best[1]
        if q is None:
            if budget < full:  # nothing fits after the words before it: start a new line
                pieces.append("")
                budget = full
                continue
            q = max(p, s + 1)  # overflow fallback: the last unit boundary that fits (or one huge unit)
        pieces.append("".join(units[s:q]))
        s, budget = q, full
    return pieces


def fit_line(line: str, m: TextMeasure, max_w: float) -> str:
    """`line` (no newline in it) with newlines inserted inside the tokens wider than max_w pixels.

    Tokens are separated by U+0020 (where libass breaks). A too-wide token's first piece fills the
    rest of the line after the tokens before it (as libass's greedy fill would place them) when at
    least a quarter of the width is left; the other pieces fill whole lines.
    """
    words = line.split(" ")
    if all(m.width(w) <= max_w for w in words):
        return line
    space = m.advance(" ")
    out, tail = [], 0.0
    for w in words:
        ww = m.width(w)
        lead = space if tail > 0 else 0.0
        if ww <= max_w:
            tail = tail + lead + ww if tail + lead + ww <= max_w else ww
            out.append(w)
            continue
        budget = max_w - tail - lead if tail > 0 else max_w
        pieces = _split_token(w, m, budget if budget >= max_w / 4 else max_w, max_w)
        out.append("\n".join(pieces))
        tail = m.width(pieces[-1])
    return " ".join(out)


def fit_text(text: str, m: TextMeasure, max_w: float) -> str:
    """fit_line for each line of `text` (lines separated by "\\n")."""
    return "\n".join(fit_line(line, m, max_w) for line in text.split("\n"))
