"""Fitting burned-in text costs a few wraps, not one per pixel of size, and each text is fitted once
per job however many passes ask (adversarial review 3: 1.3 CPU s per cue of "x"*500 at sizePx 400)."""
import time

import pytest

from render_job import text_fit
from render_job.caption_overlay import states_ass
from render_job.graph.captions import caption_states
from render_job.caption_wrap import TextMeasure, fit_text
from render_job.plan import CaptionStylePlan, build_plan
from render_job.subtitles import FIT_SLACK, _fitters, ass_text, fit_warnings
from render_job.text_fit import Fit, count_lines, fit_block, line_height
from shared.spec import parse_spec

W, H = 1080, 1920  # 1080p 9:16



def _fit_args(size_px: int) -> tuple[float, float]:
    """The caption area (pixels, less FIT_SLACK's share of the width) as subtitles._fitters places it."""
    st = CaptionStylePlan(size_px=size_px)
    shadow = max(0.5, round(st.size_px / 40, 1)) if st.outline_width else 0
    pad = 2 * -(-(st.outline_width + shadow + 1) // 2)
    side, margin_v = round(W * 0.05) + pad, round(H * 0.06)
    return (W - 2 * side) * (1 - FIT_SLACK), H - 2 * (margin_v + pad)


def _linear(text: str, m: TextMeasure, area_w: float, area_h: float) -> Fit:
    """The first fit_block: a pixel at a time down from the nominal size."""
    size = max(1, int(m.size_px))
    per_px = line_height(text, m)
    for n in range(size, 0, -1):
        max_w = area_w * size / n
        wrapped = fit_text(text, m, max_w)
        lines = count_lines(wrapped, m, max_w)
        if lines * n * per_px <= area_h:
            break
    return Fit(wrapped, n, lines)


def _cpu(fn, repeat: int = 3) -> float:
    best = float("inf")
    for _ in range(repeat):
        c0 = time.process_time()
        fn()
        best = min(best, time.process_time() - c0)
    return best


def test_worst_case_fit_costs_a_few_plain_wraps():
    m = TextMeasure("DejaVu Sans", 400)
    area_w, area_h = _fit_args(400)
    text = "x" * 500

    def plain():
        count_lines(fit_text(text, m, area_w), m, area_w)
    fit = fit_block(text, m, area_w, area_h)
    assert fit.size_px < 100 and fit.lines * fit.size_px * line_height(text, m) <= area_h
    assert _fitters(W, H, CaptionStylePlan(size_px=400))[0](text) == fit  # the area a job fits in
    ratio = _cpu(lambda: fit_block(text, m, area_w, area_h)) / _cpu(plain, 5)
    # a pixel at a time was about 300 wraps here; bisection is about log2(400) + 1 = 10
    assert ratio < 40, f"fit_block costs {ratio:.0f} plain wraps"


SAMPLE = {
    "words": ("lorem ipsum dolor sit amet " * 20)[:500].strip(),
    "one-letter-words": ("a " * 250).strip(),
    "no-spaces": "x" * 500,
    "cjk": "漢" * 500,
    "newlines": "a\n" * 249 + "a",
    "flags": "🇺🇸" * 125,
    "short": "Hello, world",
    "mixed": "Ein Satz mit Wörtern, 漢字かな交じり文, and a verylongwordwithoutanyspacesatallreally " * 3,
}


@pytest.mark.parametrize("size_px", [400, 150, 48])
@pytest.mark.parametrize("name", list(SAMPLE))
def test_bisection_chooses_the_size_the_pixel_steps_chose(name, size_px):
    m = TextMeasure("DejaVu Sans", size_px)
    area_w, area_h = _fit_args(size_px)
    assert fit_block(SAMPLE[name], m, area_w, area_h) == _linear(SAMPLE[name], m, area_w, area_h)


def test_each_text_is_fitted_once_per_job():
    # ass_text, fit_warnings and the caption overlay's states_ass each fit every cue: 3 distinct texts
    # (cue texts repeat) are fitted 3 times in all, not 3 passes x 6 cues
    texts = ["x" * 500, "漢" * 300, "x" * 500, "short", "short", "漢" * 300]
    cues = [{"startS": k, "endS": k + 1, "text": t} for k, t in enumerate(texts)]
    spec = {"output": {"resolution": "1080p", "aspectRatio": "9:16", "fps": 30},
            "captions": {"style": {"sizePx": 400}},
            "scenes": [{"id": "a", "visual": {"type": "color"}, "duration": 6, "caption": {"cues": cues}}]}
    plan = build_plan(parse_spec(spec), {})
    text_fit.fit_cached.cache_clear()
    ass_text(plan.cues, plan.width, plan.height, plan.caption_style, fps=plan.fps)
    warned = fit_warnings(plan)
    states, _ = caption_states(plan.cues, plan.fps, int(round(plan.total_s * plan.fps)))
    states_ass(states, plan.width, plan.height, plan.caption_style)
    info = text_fit.fit_cached.cache_info()
    assert info.misses == 3, info
    assert info.hits >= 3 * len(texts) - 3, info
    assert {p for p, _ in warned} == {f"scenes[0].caption.cues[{k}]" for k in (0, 1, 2, 5)}
