"""Break opportunities libass lacks: burned-in text that has no space to break at is broken here.

libass (WrapStyle 0) breaks a line only at spaces (not at U+200B, not between CJK characters), so
CJK text, a URL or a long compound word wider than the safe area ran off the frame. fit_text()
measures each space-separated token with the fonts libass will use; a token wider than the area
gets hard line breaks (`\\n`, written as ASS `\\N`) from a greedy fill, preferring, as UAX #14
would, a break between CJK ideographs / kana / hangul (not before closing punctuation or small kana,
not after opening brackets) or after `/ - . ? & = _`, else anywhere between two grapheme-like units
(CSS overflow-wrap: anywhere). Lines whose tokens all fit are left to libass's smart wrapping.

Fonts (TextMeasure): "DejaVu Sans" is the bundled render_job/fonts file (the one libass gets through
fontsdir); each character goes to the first font of fontconfig's sorted match for the family
(`fc-match -s`, the fallback order libass's fontconfig provider uses) whose charset has it. A missing
family is measured with fontconfig's substitute (what libass falls back to); without fontconfig, the
bundled DejaVu Sans. Sizes follow libass: a font of size S px has an em of
S * unitsPerEm / (usWinAscent + usWinDescent) pixels. Widths are sums of glyph advances (no
kerning or shaping), so callers keep a small margin.
"""
from __future__ import annotations

import bisect
import functools
import os
import struct
import subprocess
import unicodedata

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
_JOINERS = {"\u200d", "\u2060", "\ufeff"}  # ZWJ, WORD JOINER, ZWNBSP: never break next to one


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


def _em_per_size(path: str, index: int) -> float:
    """libass's em / font size: unitsPerEm / (usWinAscent + usWinDescent) (hhea height without OS/2)."""
    with open(path, "rb") as fh:
        head = fh.read(12)
        base = 0
        if head[:4] == b"ttcf":
            fh.seek(12 + 4 * index)
            base = struct.unpack(">I", fh.read(4))[0]
            fh.seek(base)
            head = fh.read(12)
        n = struct.unpack(">H", head[4:6])[0]
        fh.seek(base + 12)
        tables = {}
        for _ in range(n):
            tag, _, off, _ = struct.unpack(">4sIII", fh.read(16))
            tables[tag] = off
        fh.seek(tables[b"head"] + 18)
        upem = struct.unpack(">H", fh.read(2))[0]
        height = 0
        if b"OS/2" in tables:
            fh.seek(tables[b"OS/2"] + 74)
            asc, desc = struct.unpack(">hh", fh.read(4))
            height = asc + desc
        if height <= 0 and b"hhea" in tables:
            fh.seek(tables[b"hhea"] + 4)
            asc, desc = struct.unpack(">hh", fh.read(4))
            height = asc - desc
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


def _wide(ch: str) -> bool:
    return unicodedata.east_asian_width(ch) in ("W", "F")


def _break_kind(prev: str, cur: str) -> int:
    """0: no break between prev and cur; 1: a break anywhere (last resort); 2: a preferred break."""
    if cur in _JOINERS or prev in _JOINERS or unicodedata.category(cur).startswith("M"):
        return 0
    cp = ord(cur)
    if 0xFE00 <= cp <= 0xFE0F or 0x1F3FB <= cp <= 0x1F3FF or 0xE0000 <= cp <= 0xE01EF:
        return 0  # variation selectors, emoji skin tones, tags belong to the character before
    if 0x1F1E6 <= cp <= 0x1F1FF and 0x1F1E6 <= ord(prev) <= 0x1F1FF:
        return 0  # regional indicators (flags)
    if prev in _SOFT_AFTER and cur not in _SOFT_AFTER:
        return 2
    if (_wide(prev) or _wide(cur)) and cur not in _NO_START and prev not in _NO_END:
        return 2
    return 1


def _split_token(token: str, m: TextMeasure, first: float, full: float) -> list[str]:
    """`token` as pieces each at most `first` (the first) or `full` (the others) pixels wide."""
    adv = [m.advance(c) for c in token]
    pieces: list[str] = []
    s, budget = 0, first
    while s < len(token):
        total, p = 0.0, s
        while p < len(token) and total + adv[p] <= budget:
            total += adv[p]
            p += 1
        if p == len(token):
            pieces.append(token[s:])
            break
        best = {1: None, 2: None}
        width = 0.0
        for q in range(s + 1, p + 1):
            width += adv[q - 1]
            kind = _break_kind(token[q - 1], token[q])
            if kind == 1 or (kind == 2 and width < budget / 2):
                best[1] = q
            elif kind == 2:
                best[2] = q
        q = best[2] or best[1]
        if q is None:
            if budget < full:  # not even one unit fits after the words before it: start a new line
                pieces.append("")
                budget = full
                continue
            # one unit wider than the whole area (a huge font): keep it whole
            q = next((i for i in range(s + 1, len(token)) if _break_kind(token[i - 1], token[i])), len(token))
        pieces.append(token[s:q])
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
