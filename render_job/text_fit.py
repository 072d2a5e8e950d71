"""Burned-in text taller than its safe area is drawn smaller, just enough to fit: never cut off.

libass places a bottom-aligned event upward from the bottom margin (a top-aligned one downward, a
middle one about the centre) however many lines it has, so a long caption or title card left the
frame. fit_block() estimates the height libass will draw, conservatively: lines from a greedy fill
by measured widths (caption_wrap.TextMeasure, no kerning: wider than drawn, so at least libass's
count; libass's smart wrapping balances lines without adding any), each line as tall as the
tallest ascent plus the deepest descent among the fonts drawing the text (libass sizes each font so
that usWinAscent + usWinDescent is the font size, and takes a line's height from the fonts' hhea or
OS/2 ascent and descent: the larger of the two is used here). When that is taller than the area,
the largest size that fits is searched for by bisection (re-wrapping at each size tried).
"""
from __future__ import annotations

import functools
import struct
from dataclasses import dataclass

from render_job.caption_wrap import TextMeasure, fit_text, font_metrics


@dataclass(frozen=True)
class Fit:
    """text: the text with the line breaks caption_wrap inserts at size_px ("\\n"); size_px: the font
    size to draw at (pixels, <= the nominal size); lines: the estimated number of drawn lines."""

    text: str
    size_px: int
    lines: int


def _asc_desc(path: str, index: int) -> tuple[float, float]:
    """(ascent, descent) per pixel of font size: max(hhea, OS/2 win) / (usWinAscent + usWinDescent)."""
    try:
        _, h_asc, h_desc, w_asc, w_desc = font_metrics(path, index)
    except (OSError, struct.error, KeyError):
        return 0.8, 0.2
    height = (w_asc + w_desc) or (h_asc - h_desc)
    if height <= 0:
        return 0.8, 0.2
    return max(h_asc, w_asc) / height, max(-h_desc, w_desc) / height


def line_height(text: str, m: TextMeasure) -> float:
    """A drawn line's height in pixels per pixel of font size (>= 1 for DejaVu Sans: exactly 1)."""
    metrics = [_asc_desc(path, index) for path, index in m.faces_for(text.replace("\n", "") or " ")]
    return max(a for a, _ in metrics) + max(d for _, d in metrics)


def count_lines(text: str, m: TextMeasure, max_w: float) -> int:
    """Lines a greedy fill at spaces makes of `text` ("\\n" hard breaks) within max_w (m's pixels)."""
    space = m.advance(" ")
    n = 0
    for line in text.split("\n"):
        n += 1
        cur: float | None = None
        for word in line.split(" "):
            w = m.width(word)
            if cur is None:
                cur = w
            elif cur + space + w <= max_w:
                cur += space + w
            else:
                n, cur = n + 1, w
    return n


def fit_block(text: str, m: TextMeasure, area_w: float, area_h: float) -> Fit:
    """`text` (plain, "\\n" line breaks) wrapped within area_w pixels at m's size, or at the largest
    whole size below it whose lines (line_height each) stack within area_h pixels (at least 1 px).

    The size is bisected (about log2(size) wraps, not one per pixel): a smaller size wraps wider, so
    it never needs more lines and the height lines * size * line_height only shrinks with the size.
    The size returned fits and the next size up was wrapped and does not (or is the nominal size).
    """
    size = max(1, int(m.size_px))
    per_px = line_height(text, m)

    def attempt(n: int) -> Fit:
        max_w = area_w * size / n  # widths scale with the size: measure at m's size, wrap wider
        wrapped = fit_text(text, m, max_w)
        return Fit(wrapped, n, count_lines(wrapped, m, max_w))

    def fits(f: Fit) -> bool:
        return f.lines * f.size_px * per_px <= area_h

    best = attempt(size)
    if fits(best):
        return best
    lo, hi, best = 1, size - 1, None  # the answer is in [lo, hi], or 1 px when nothing fits
    while lo <= hi:
        mid = (lo + hi) // 2
        f = attempt(mid)
        if fits(f):
            best, lo = f, mid + 1
        else:
            hi = mid - 1
    return best or attempt(1)


@functools.lru_cache(maxsize=8)
def _measure(font: str, size_px: int, bold: bool) -> TextMeasure:
    return TextMeasure(font, size_px, bold)


@functools.lru_cache(maxsize=4096)
def fit_cached(text: str, font: str, size_px: int, bold: bool, area_w: float, area_h: float) -> Fit:
    """fit_block(text, TextMeasure(font, size_px, bold), area_w, area_h), computed once per argument
    set: a job fits each cue and title three times (ass_text, fit_warnings, the caption overlay)."""
    return fit_block(text, _measure(font, size_px, bold), area_w, area_h)
