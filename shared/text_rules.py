"""What the spec's colours and texts (captions, title cards) may hold. Pure: no I/O.

Errors are ValueError with the message a client sees (pydantic puts it in the details).
"""
from __future__ import annotations

import re
import unicodedata

_COLOR_RE = re.compile(r"^#[0-9A-Fa-f]{6}$")


def check_color(v: str) -> str:
    """A #RRGGBB colour, lower-cased."""
    if not _COLOR_RE.fullmatch(v):
        raise ValueError("must be a #RRGGBB colour")
    return v.lower()


# Combining marks (Mn/Me) on one character, counted in NFD (a precomposed Ấ is A + 2 marks above):
# at most 8, of them at most 4 stacked above it and 4 below it (canonical combining classes Above* /
# Below*). Real scripts stay within (Vietnamese 2 above + 1 below, Greek 2 + 1, Hebrew with points and
# cantillation 5 / 1 below, Tibetan stacks 8 of class 0); zalgo text stacks hundreds out of the picture.
MAX_MARKS = 8
MAX_MARKS_STACKED = 4
_ABOVE = frozenset((214, 216, 228, 230, 232, 234))
_BELOW = frozenset((202, 218, 220, 222, 233, 240))


def _marks_runs(v: str) -> tuple[int, int, int]:
    """The most combining marks on one character of `v` (NFD), the most above one, the most below one;
    format characters (Cf: ZWJ, ZWNJ...) between marks neither count nor end the run."""
    most = [0, 0, 0]
    run = [0, 0, 0]
    for c in unicodedata.normalize("NFD", v):
        cat = unicodedata.category(c)
        if cat in ("Mn", "Me"):
            ccc = unicodedata.combining(c)
            run = [run[0] + 1, run[1] + (ccc in _ABOVE), run[2] + (ccc in _BELOW)]
            most = [max(a, b) for a, b in zip(most, run)]
        elif cat != "Cf":
            run = [0, 0, 0]
    return most[0], most[1], most[2]


def check_text(v: str) -> str:
    """A text to draw: no control characters but newlines, not blank, combining marks within MAX_MARKS."""
    if any(ord(c) < 32 and c not in "\n" for c in v) or "\x7f" in v:
        raise ValueError("must not contain control characters")
    if not v.strip():
        raise ValueError("must not be blank")
    marks, above, below = _marks_runs(v)
    if marks > MAX_MARKS or max(above, below) > MAX_MARKS_STACKED:
        raise ValueError(f"has {marks} combining marks on one character ({above} above it, {below} below; at "
                         f"most {MAX_MARKS}, {MAX_MARKS_STACKED} above, {MAX_MARKS_STACKED} below): stacked, "
                         "they would be drawn out of the picture")
    return v
